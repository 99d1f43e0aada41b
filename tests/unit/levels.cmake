# The consistency level arithmetic of the node core (node/levels.c), pure.
kv_test(test_levels SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/test_levels.c
        LIBS kvcore TIMEOUT 30 LABELS unit)
