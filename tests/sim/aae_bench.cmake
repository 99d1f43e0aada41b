# kvorum-aae-bench (bench/aae_bench.c): the bytes anti-entropy exchanges
# against the number of differing keys and the amount of data, in the
# simulator. The harness target is defined by sim.cmake, which is included
# after this file (alphabetical), so this builds the harness source itself,
# as regions.cmake does.
#   kvorum-aae-bench                 the table of bench/README.md
#   ctest -L bench -R aae_bench      K=2000, D in {0, 50}, with checks
if(TARGET kvcore AND EXISTS ${PROJECT_SOURCE_DIR}/tests/sim/sim.c)
  add_executable(kvorum-aae-bench ${PROJECT_SOURCE_DIR}/bench/aae_bench.c
                                  ${PROJECT_SOURCE_DIR}/tests/sim/sim.c)
  target_link_libraries(kvorum-aae-bench PRIVATE kvcore)
  target_include_directories(kvorum-aae-bench PRIVATE
                             ${PROJECT_SOURCE_DIR}/tests)
  add_test(NAME aae_bench
           COMMAND kvorum-aae-bench --keys 2000 --diffs 0,50 --check)
  set_tests_properties(aae_bench PROPERTIES TIMEOUT 120 LABELS bench)
endif()
