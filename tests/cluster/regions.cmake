# Cluster test of multi-region replication (--replicas, local and
# each_quorum levels, a paused region): tests/cluster/test_regions.py.
if(TARGET kvorumd AND TARGET kvorum_cli)
  add_test(NAME cluster_regions
           COMMAND ${KV_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_regions.py
                   $<TARGET_FILE:kvorumd> $<TARGET_FILE:kvorum_cli>)
  set_tests_properties(cluster_regions PROPERTIES TIMEOUT 180
                       LABELS cluster)
endif()
