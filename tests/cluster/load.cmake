# Failure detection under full load (60 s of kvorum-bench): plain build only
# (label nosan), since the sanitizer build's slowness is not what it tests.
if(TARGET kvorumd AND TARGET kvorum_cli AND TARGET kvorum-bench)
  add_test(NAME cluster_load_fd
           COMMAND ${KV_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_load_fd.py
                   $<TARGET_FILE:kvorumd> $<TARGET_FILE:kvorum_cli>
                   $<TARGET_FILE:kvorum-bench> 60)
  set_tests_properties(cluster_load_fd PROPERTIES TIMEOUT 240
                       LABELS "cluster;nosan")
endif()
