# Unit tests of libkvorum (client/): base64, JSON rendering, levels, and the
# library against fake servers on 127.0.0.1 inside the test process.
if(TARGET kvorum_client)
  kv_test(test_client
          SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/test_client.c
          LIBS kvorum_client Threads::Threads
          TIMEOUT 60 LABELS unit)
endif()

# libkvorum's TLS, and the kvorum CLI's TLS and login flags, against
# `openssl s_server` and a throwaway CA the test makes with the openssl
# command (tests/unit/test_client_tls.c).
find_program(KV_OPENSSL openssl)
if(TARGET kvorum_client AND KV_OPENSSL)
  add_executable(test_client_tls
                 ${PROJECT_SOURCE_DIR}/tests/unit/test_client_tls.c)
  target_link_libraries(test_client_tls PRIVATE kvorum_client Threads::Threads)
  target_include_directories(test_client_tls PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  add_test(NAME test_client_tls
           COMMAND test_client_tls ${KV_OPENSSL} $<TARGET_FILE:kvorum_cli>)
  add_dependencies(test_client_tls kvorum_cli)
  set_tests_properties(test_client_tls PROPERTIES TIMEOUT 120 LABELS unit)
endif()
