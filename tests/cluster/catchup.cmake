# Catch-up of a returning replica through the real binaries (issue #12):
# coordinator hints, fast delivery, catch-up anti-entropy.
# tests/cluster/test_catchup.py writes and counts keys with kvtest-keys
# (tests/cluster/kvtest_keys.c, libkvorum), which it builds here.
if(TARGET kvorumd AND TARGET kvorum_cli AND TARGET kvorum_client)
  add_executable(kvtest-keys ${CMAKE_CURRENT_LIST_DIR}/kvtest_keys.c)
  target_link_libraries(kvtest-keys PRIVATE kvorum_client)
  add_test(NAME cluster_catchup
           COMMAND ${KV_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_catchup.py
                   $<TARGET_FILE:kvorumd> $<TARGET_FILE:kvorum_cli>
                   $<TARGET_FILE:kvtest-keys>)
  set_tests_properties(cluster_catchup PROPERTIES TIMEOUT 300
                       LABELS cluster)
endif()
