# Unit tests of storage/: object causality (plain and model-based, pure)
# and the RocksDB engine (temporary directories under /tmp).
if(TARGET kvobj)
  kv_test(test_obj
          SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/test_obj.c
          LIBS kvobj TIMEOUT 60 LABELS unit)
  kv_test(test_obj_model
          SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/test_obj_model.c
          LIBS kvobj TIMEOUT 120 LABELS unit)
endif()
if(TARGET kvstore)
  kv_test(test_store
          SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/test_store.c
          LIBS kvstore Threads::Threads TIMEOUT 60 LABELS unit)
endif()
