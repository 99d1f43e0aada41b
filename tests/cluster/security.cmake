# TLS and users (docs/security.md) through openssl s_client, the kvorum
# CLI, redis-cli, curl and Python's ssl module: handshakes, refused nodes,
# roles on every port, SIGHUP reloads and a rolling upgrade from plain
# (tests/cluster/test_security.py). The sanitizer build gives it looser
# time bounds (--light).
if(TARGET kvorumd AND TARGET kvorum_cli)
  find_program(KV_OPENSSL openssl)
  find_program(KV_CURL curl)
  find_program(KV_REDIS_CLI redis-cli)
  if(KV_OPENSSL AND KV_CURL AND KV_REDIS_CLI)
    add_test(NAME cluster_security
             COMMAND ${KV_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_security.py
                     $<TARGET_FILE:kvorumd> $<TARGET_FILE:kvorum_cli>
                     ${KV_LIGHT})
    set_tests_properties(cluster_security PROPERTIES TIMEOUT 300
                         LABELS cluster)
  else()
    message(STATUS "cluster_security needs openssl, curl and redis-cli: "
                   "not registered")
  endif()
endif()
