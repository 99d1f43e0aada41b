# Data types (sets, counters, maps: docs/data-types.md) through the Redis
# front end (redis-cli, the Python redis client) and HTTP /types (curl) on
# a three-node cluster (tests/cluster/test_types.py). The sanitizer build
# runs it with smaller loads (--light).
if(TARGET kvorumd AND TARGET kvorum_cli)
  add_test(NAME cluster_types
           COMMAND ${KV_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_types.py
                   $<TARGET_FILE:kvorumd> $<TARGET_FILE:kvorum_cli>
                   ${KV_LIGHT})
  set_tests_properties(cluster_types PROPERTIES TIMEOUT 120 LABELS cluster)
endif()
