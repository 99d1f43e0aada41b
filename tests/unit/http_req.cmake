# Unit tests of the HTTP request targets (node/http_req.h): routes,
# percent-decoding of keys and the query parameters. http_req.c belongs to
# no library (kvorumd compiles it directly), so the test compiles it too;
# it needs only kvproto (wire_parse_quorum).
if(TARGET kvproto AND EXISTS ${PROJECT_SOURCE_DIR}/node/http_req.c
   AND EXISTS ${PROJECT_SOURCE_DIR}/proto/wire.c)
  kv_test(test_http_req
          SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/test_http_req.c
                  ${PROJECT_SOURCE_DIR}/node/http_req.c
          LIBS kvproto
          TIMEOUT 60 LABELS unit)
  target_include_directories(test_http_req PRIVATE ${PROJECT_SOURCE_DIR}/node)
endif()
