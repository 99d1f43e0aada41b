# The fault suite: five real nodes in network namespaces (or 127.0.0.x),
# the shopping cart under kills, pauses and partitions. make test runs one
# fixed seed, in the clear and with TLS and users; make soak runs more
# seeds, longer.
if(TARGET kvorumd AND TARGET kvorum_cli)
  add_test(NAME fault_cart
           COMMAND ${KV_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_cart.py
                   $<TARGET_FILE:kvorumd> $<TARGET_FILE:kvorum_cli>
                   --seed 1 --duration 20)
  set_tests_properties(fault_cart PROPERTIES TIMEOUT 300 LABELS fault)
  # The same with TLS on every port and users (docs/security.md): every
  # node gets certificates and --auth-file, every CLI call --tls-ca and
  # --user. A CLI call costs more with TLS (about 1.6 times, more under
  # the sanitizers), so the run is longer to acknowledge as many writes.
  add_test(NAME fault_cart_secure
           COMMAND ${KV_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_cart.py
                   $<TARGET_FILE:kvorumd> $<TARGET_FILE:kvorum_cli>
                   --seed 1 --duration 30 --secure)
  set_tests_properties(fault_cart_secure PROPERTIES TIMEOUT 300 LABELS fault)
  foreach(seed 2 3 4 5)
    add_test(NAME fault_cart_soak_${seed}
             COMMAND ${KV_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_cart.py
                     $<TARGET_FILE:kvorumd> $<TARGET_FILE:kvorum_cli>
                     --seed ${seed} --duration 120)
    set_tests_properties(fault_cart_soak_${seed} PROPERTIES TIMEOUT 600
                         LABELS soak)
  endforeach()
endif()
