# The HTTP front end (kvorumd --http) through curl, promtool, a real
# Prometheus server and raw sockets (tests/cluster/test_http.py). The
# sanitizer build runs it with smaller loads (--light).
if(TARGET kvorumd AND TARGET kvorum_cli)
  find_program(KV_CURL curl)
  find_program(KV_PROMTOOL promtool)
  find_program(KV_PROMETHEUS prometheus)
  if(KV_CURL AND KV_PROMTOOL AND KV_PROMETHEUS)
    set(KV_HTTP_ARGS $<TARGET_FILE:kvorumd> $<TARGET_FILE:kvorum_cli>)
    if(KV_SANITIZE)
      list(APPEND KV_HTTP_ARGS --light)
    endif()
    add_test(NAME cluster_http
             COMMAND ${KV_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_http.py
                     ${KV_HTTP_ARGS})
    set_tests_properties(cluster_http PROPERTIES TIMEOUT 240 LABELS cluster)
  else()
    message(STATUS "cluster_http needs curl, promtool and prometheus: "
                   "not registered")
  endif()
endif()
