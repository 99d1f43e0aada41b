# The fault suite: five real nodes in network namespaces (or 127.0.0.x),
# the shopping cart under kills, pauses and partitions. make test runs one
# fixed seed; make soak runs more seeds, longer.
if(TARGET kvorumd AND TARGET kvorum_cli)
  find_program(KV_PYTHON3 python3 PATHS /usr/bin NO_DEFAULT_PATH)
  if(NOT KV_PYTHON3)
    find_program(KV_PYTHON3 python3 REQUIRED)
  endif()
  add_test(NAME fault_cart
           COMMAND ${KV_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_cart.py
                   $<TARGET_FILE:kvorumd> $<TARGET_FILE:kvorum_cli>
                   --seed 1 --duration 20)
  set_tests_properties(fault_cart PROPERTIES TIMEOUT 300 LABELS fault)
  foreach(seed 2 3 4 5)
    add_test(NAME fault_cart_soak_${seed}
             COMMAND ${KV_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_cart.py
                     $<TARGET_FILE:kvorumd> $<TARGET_FILE:kvorum_cli>
                     --seed ${seed} --duration 120)
    set_tests_properties(fault_cart_soak_${seed} PROPERTIES TIMEOUT 600
                         LABELS soak)
  endforeach()
endif()
