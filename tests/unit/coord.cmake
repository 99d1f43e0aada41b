# Coordinator unit tests: the node core's request state machines driven by
# the simulation harness (tests/sim/sim.c) with a fake clock and transport.
if(TARGET kvsim_harness AND EXISTS ${PROJECT_SOURCE_DIR}/tests/unit/test_coord.c)
  kv_test(test_coord
          SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/test_coord.c
          LIBS kvsim_harness
          TIMEOUT 60 LABELS unit)
endif()
