# The Redis protocol front end through redis-cli, redis-benchmark and the
# Python redis client (tests/cluster/test_resp.py). The sanitizer build runs
# it with smaller loads.
if(TARGET kvorumd AND TARGET kvorum_cli)
  add_test(NAME cluster_resp
           COMMAND ${KV_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_resp.py
                   $<TARGET_FILE:kvorumd> $<TARGET_FILE:kvorum_cli>
                   ${KV_LIGHT})
  set_tests_properties(cluster_resp PROPERTIES TIMEOUT 400 LABELS cluster)
endif()
