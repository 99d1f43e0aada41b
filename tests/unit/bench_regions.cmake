# kvorum-bench's --region and --regions (per-region latency): parsing, the
# runner's per-region figures against a fake driver, the JSON shape.
if(TARGET kvbench)
  kv_test(test_bench_regions
          SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/test_bench_regions.c
          LIBS kvbench LABELS unit TIMEOUT 60)
endif()
