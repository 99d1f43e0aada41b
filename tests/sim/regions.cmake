# Two regions in the simulator (tests/sim/sim_regions.c): local_quorum stays
# at local latency while each_quorum and quorum pay the inter-region round
# trip (80 ms one way), and a cut-off region fails each_quorum and catches
# up after the heal.
# This file is included before sim.cmake (alphabetical), so it builds the
# harness source itself rather than using kvsim_harness.
if(TARGET kvcore AND EXISTS ${PROJECT_SOURCE_DIR}/tests/sim/sim.c)
  add_executable(sim_regions ${PROJECT_SOURCE_DIR}/tests/sim/sim_regions.c
                             ${PROJECT_SOURCE_DIR}/tests/sim/sim.c)
  target_link_libraries(sim_regions PRIVATE kvcore)
  target_include_directories(sim_regions PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  if(KV_SANITIZE)
    set(KV_SIM_REGION_SEEDS 2)
  else()
    set(KV_SIM_REGION_SEEDS 10)
  endif()
  add_test(NAME sim_regions
           COMMAND sim_regions --seed 1 --seeds ${KV_SIM_REGION_SEEDS})
  set_tests_properties(sim_regions PROPERTIES TIMEOUT 120 LABELS sim)
endif()
