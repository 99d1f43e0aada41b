# Deterministic whole-cluster simulation (tests/sim): the harness library
# (sim.c: node cores driven by a simulated clock, network and disk) and
# kvsim, the randomized fault simulation (sim_main.c).
#   ctest -L sim   500 seeds of the default fault mix without tombstone
#                  reaping, 100 five-node seeds, 100 seeds with machine
#                  crashes (dw=all), 100 seeds with reaping on, and 100
#                  seeds where a node dies for good and is removed
#                  (about a minute in all).
#   ctest -L soak  many more seeds, longer runs.
# A failure prints the violated property, the seed and the command that
# replays it (build/tests/kvsim --seed S -v).
if(TARGET kvcore AND EXISTS ${PROJECT_SOURCE_DIR}/tests/sim/sim_main.c)
  add_library(kvsim_harness STATIC ${PROJECT_SOURCE_DIR}/tests/sim/sim.c)
  target_link_libraries(kvsim_harness PUBLIC kvcore)
  target_include_directories(kvsim_harness PUBLIC ${PROJECT_SOURCE_DIR}/tests)

  add_executable(kvsim ${PROJECT_SOURCE_DIR}/tests/sim/sim_main.c)
  target_link_libraries(kvsim PRIVATE kvsim_harness)

  function(kv_sim_test name timeout labels)
    add_test(NAME ${name} COMMAND kvsim ${ARGN})
    set_tests_properties(${name} PROPERTIES TIMEOUT ${timeout}
                         LABELS "${labels}")
  endfunction()
  # Under ASan/UBSan a seed costs ~20x more (every node_new maps its
  # request table), so the sanitizer build runs a tenth of the seeds.
  if(KV_SANITIZE)
    set(KV_SIM_SEEDS 50)
    set(KV_SIM_SEEDS_SMALL 10)
  else()
    set(KV_SIM_SEEDS 500)
    set(KV_SIM_SEEDS_SMALL 100)
  endif()
  kv_sim_test(sim_seeds 180 sim --seed 1 --seeds ${KV_SIM_SEEDS} --no-reap)
  kv_sim_test(sim_seeds_5nodes 120 sim --seed 100001
              --seeds ${KV_SIM_SEEDS_SMALL} --nodes 5 --no-reap)
  kv_sim_test(sim_machine 120 sim --seed 300001 --seeds ${KV_SIM_SEEDS_SMALL}
              --machine --no-reap)
  kv_sim_test(sim_reap 120 sim --seed 200001 --seeds ${KV_SIM_SEEDS_SMALL}
              --reap)
  kv_sim_test(sim_remove 120 sim --seed 400001 --seeds ${KV_SIM_SEEDS_SMALL}
              --remove)
  kv_sim_test(sim_soak 7200 soak --seed 1000001 --seeds 20000 --steps 400)
endif()
