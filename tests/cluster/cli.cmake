# Cluster test of the kvorum CLI against one real kvorumd.
if(TARGET kvorumd AND TARGET kvorum_cli)
  add_test(NAME cluster_cli
           COMMAND ${CMAKE_CURRENT_LIST_DIR}/test_cli.sh
                   $<TARGET_FILE:kvorumd> $<TARGET_FILE:kvorum_cli>)
  set_tests_properties(cluster_cli PROPERTIES TIMEOUT 300 LABELS cluster)
endif()
