# Operating kvorum (issue #16) through the real binaries: --version, config
# files (and their errors), systemd readiness through a fake NOTIFY_SOCKET,
# backup and restore under load, an old backup catching up, repair and
# compact (tests/cluster/test_ops.py). kvtest-keys comes from catchup.cmake.
# The sanitizer build runs it with fewer keys (--light).
if(TARGET kvorumd AND TARGET kvorum_cli AND TARGET kvorum-bench
   AND TARGET kvtest-keys)
  set(KV_OPS_ARGS $<TARGET_FILE:kvorumd> $<TARGET_FILE:kvorum_cli>
      $<TARGET_FILE:kvorum-bench> $<TARGET_FILE:kvtest-keys>)
  if(KV_SANITIZE)
    list(APPEND KV_OPS_ARGS --light)
  endif()
  add_test(NAME cluster_ops
           COMMAND ${KV_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_ops.py
                   ${KV_OPS_ARGS})
  set_tests_properties(cluster_ops PROPERTIES TIMEOUT 240 LABELS cluster)
endif()
