# A full disk (a small tmpfs made by the test; skipped without root).
if(TARGET kvorumd AND TARGET kvorum_cli)
  add_test(NAME cluster_disk_full
           COMMAND ${KV_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_disk_full.py
                   $<TARGET_FILE:kvorumd> $<TARGET_FILE:kvorum_cli>)
  set_tests_properties(cluster_disk_full PROPERTIES TIMEOUT 120
                       LABELS cluster SKIP_RETURN_CODE 77)
endif()
