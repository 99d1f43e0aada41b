# Cluster-tier tests of kvorum-bench: against a throwaway redis-server over
# RESP (plain, and TLS with a user when openssl is there), and (when the
# node and client exist) against one kvorumd natively.
if(TARGET kvorum-bench)
  find_program(KV_REDIS_SERVER redis-server)
  # With openssl (and a redis-server built with TLS, as Redis 6 and later
  # packages are), the same driver also runs over TLS with an ACL user.
  find_program(KV_OPENSSL openssl)
  set(KV_BENCH_OPENSSL "")
  if(KV_OPENSSL)
    set(KV_BENCH_OPENSSL ${KV_OPENSSL})
  endif()
  if(KV_REDIS_SERVER)
    add_test(NAME cluster_bench_resp
             COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/test_bench_resp.sh
                     $<TARGET_FILE:kvorum-bench> ${KV_REDIS_SERVER}
                     ${KV_BENCH_OPENSSL})
    set_tests_properties(cluster_bench_resp PROPERTIES TIMEOUT 120
                         LABELS cluster)
  endif()
endif()
if(TARGET kvorum-bench AND TARGET kvorumd AND TARGET kvorum_client)
  add_test(NAME cluster_bench_native
           COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/test_bench_native.sh
                   $<TARGET_FILE:kvorum-bench> $<TARGET_FILE:kvorumd>)
  set_tests_properties(cluster_bench_native PROPERTIES TIMEOUT 120
                       LABELS cluster)
endif()
