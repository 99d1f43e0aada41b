# The object cache in front of RocksDB (storage/cache.c), pure.
kv_test(test_cache SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/test_cache.c
        LIBS kvcache TIMEOUT 60 LABELS unit)
