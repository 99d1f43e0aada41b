# Unit tests of the metrics writers: fixed-bucket histograms (proto/kv_hist.h)
# and the Prometheus text format (proto/prom.h), whose output is also checked
# with `promtool check metrics` when /usr/bin/promtool is installed.
if(TARGET kvproto AND EXISTS ${PROJECT_SOURCE_DIR}/proto/prom.c)
  kv_test(test_prom
          SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/test_prom.c
          LIBS kvproto
          TIMEOUT 60 LABELS unit)
endif()
