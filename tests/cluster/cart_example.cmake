# Cluster test of examples/cart (tests/cluster/test_cart_example.py):
# concurrent adds through different nodes become siblings and merge, add
# wins over a concurrent remove, a remove of a seen item removes it.
# The glob of tests/CMakeLists.txt includes this file before the examples
# exist; tests/unit/examples.cmake includes it again after adding them.
if(TARGET kvorum-cart AND TARGET kvorumd AND TARGET kvorum_cli AND
   NOT TEST cluster_cart_example)
  add_test(NAME cluster_cart_example
           COMMAND ${KV_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_cart_example.py
                   $<TARGET_FILE:kvorumd> $<TARGET_FILE:kvorum_cli>
                   $<TARGET_FILE:kvorum-cart>)
  set_tests_properties(cluster_cart_example PROPERTIES TIMEOUT 120
                       LABELS cluster)
endif()
