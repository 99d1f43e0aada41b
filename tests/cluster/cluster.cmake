# Cluster tests: real kvorumd processes on 127.0.0.1, driven through the
# kvorum CLI by tests/cluster/kvtest.py.
if(TARGET kvorumd AND TARGET kvorum_cli)
  foreach(t membership quorum siblings hints hints_remove aae join_leave
            tombstones)
    add_test(NAME cluster_${t}
             COMMAND ${KV_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_${t}.py
                     $<TARGET_FILE:kvorumd> $<TARGET_FILE:kvorum_cli>
                     ${KV_LIGHT})
    set_tests_properties(cluster_${t} PROPERTIES TIMEOUT 180
                         LABELS cluster)
  endforeach()
  # Hundreds of CLI processes: slow under the sanitizers.
  set_tests_properties(cluster_join_leave PROPERTIES TIMEOUT 400)
endif()
