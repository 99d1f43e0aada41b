# Unit tests of kvproto (proto/): the bounded msgpack reader and
# buffer (test_mp), the wire codecs and framing (test_wire).
if(TARGET kvproto)
  if(EXISTS ${PROJECT_SOURCE_DIR}/tests/unit/test_mp.c)
    kv_test(test_mp
            SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/test_mp.c
            LIBS kvproto
            TIMEOUT 60 LABELS unit)
  endif()
  kv_test(test_wire
          SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/test_wire.c
          LIBS kvproto
          TIMEOUT 60 LABELS unit)
endif()
