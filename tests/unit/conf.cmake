# kvorumd's settings (node/conf.c, kvconf): config files, flags, defaults,
# errors with file:line, --print-config's round trip. uv_log.c is compiled
# in for the log formats' names (as test_log does).
if(TARGET kvconf AND TARGET kvcore)
  kv_test(test_conf
          SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/test_conf.c
                  ${PROJECT_SOURCE_DIR}/node/uv_log.c
          LIBS kvconf kvcore TIMEOUT 60 LABELS "unit;quick")
endif()
