# kvorumd's log lines (node/uv_log.c), pure: logfmt and JSON, escaping,
# invalid UTF-8, cut values; and the level names of the core (kvcore).
if(TARGET kvcore AND EXISTS ${PROJECT_SOURCE_DIR}/node/uv_log.c)
  kv_test(test_log
          SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/test_log.c
                  ${PROJECT_SOURCE_DIR}/node/uv_log.c
          LIBS kvcore TIMEOUT 60 LABELS unit)
endif()
