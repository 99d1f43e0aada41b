# Unit tests of the Redis protocol codec (proto/resp.h): the request parser
# and the reply writer.
if(TARGET kvproto AND EXISTS ${PROJECT_SOURCE_DIR}/proto/resp.c)
  kv_test(test_resp
          SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/test_resp.c
          LIBS kvproto
          TIMEOUT 60 LABELS unit)
endif()
