# Unit tests of libkvorum (client/): base64, JSON rendering, levels, and the
# library against fake servers on 127.0.0.1 inside the test process.
if(TARGET kvorum_client)
  kv_test(test_client
          SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/test_client.c
          LIBS kvorum_client Threads::Threads
          TIMEOUT 60 LABELS unit)
endif()
