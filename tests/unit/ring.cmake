# ring/ unit tests: partitioner, claim balance and movement, preference
# lists, zone and region spread, encoding.
if(TARGET kvring)
  kv_test(test_ring SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/test_ring.c
          LIBS kvring ${XXHASH_LIB} TIMEOUT 60 LABELS unit)
endif()
