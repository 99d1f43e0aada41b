# Unit tests of kvorum-bench's internals (library kvbench). The test also
# runs the kvorum-bench binary to check that bad flags exit with status 2.
if(TARGET kvbench AND TARGET kvorum-bench)
  add_executable(test_bench ${PROJECT_SOURCE_DIR}/tests/unit/test_bench.c)
  target_link_libraries(test_bench PRIVATE kvbench m)
  target_include_directories(test_bench PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  add_dependencies(test_bench kvorum-bench)
  add_test(NAME test_bench COMMAND test_bench $<TARGET_FILE:kvorum-bench>)
  set_tests_properties(test_bench PROPERTIES TIMEOUT 60 LABELS unit)
endif()
