# Unit tests of the authentication module (node/auth.h: auth files, checks,
# the cache, the file writer), and `kvorum user-add` through the real CLI
# binary (test_auth_cli.sh: no node involved).
if(TARGET kvauth)
  kv_test(test_auth
          SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/test_auth.c
          LIBS kvauth
          TIMEOUT 60 LABELS unit)
endif()
if(TARGET kvauth AND TARGET kvorum_cli)
  add_test(NAME test_auth_cli
           COMMAND ${CMAKE_CURRENT_LIST_DIR}/test_auth_cli.sh
                   $<TARGET_FILE:kvorum_cli>)
  set_tests_properties(test_auth_cli PROPERTIES TIMEOUT 30 LABELS unit)
endif()
