# Unit tests of the server-merged data types (storage/crdt.h): semantics,
# a seeded property test of the join laws, a brute-force model of the set,
# and the decoders against bad input. Pure: links kvobj only.
if(TARGET kvobj AND EXISTS ${PROJECT_SOURCE_DIR}/storage/crdt.c)
  kv_test(test_crdt
          SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/test_crdt.c
          LIBS kvobj TIMEOUT 120 LABELS unit)
endif()
