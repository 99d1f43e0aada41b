# The example programs (examples/CMakeLists.txt), built with the rest when
# the client library exists, then their cluster tests, whose fragments
# (tests/cluster/*.cmake) are included before this file and so could not
# see the example targets yet.
if(TARGET kvorum_client AND EXISTS ${PROJECT_SOURCE_DIR}/examples/CMakeLists.txt)
  add_subdirectory(${PROJECT_SOURCE_DIR}/examples
                   ${PROJECT_BINARY_DIR}/examples)
  include(${PROJECT_SOURCE_DIR}/tests/cluster/cart_example.cmake OPTIONAL)
endif()
