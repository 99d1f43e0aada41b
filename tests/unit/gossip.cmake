# gossip/ unit tests: phi, convergence, failure detection, join/leave/remove,
# malformed payloads, over a simulated network inside the test process.
if(TARGET kvgossip AND TARGET kvring)
  kv_test(test_gossip SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/test_gossip.c
          LIBS kvgossip TIMEOUT 120 LABELS unit)
endif()
