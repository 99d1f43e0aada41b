# Deterministic whole-cluster simulation (tests/sim): the harness library
# (sim.c: node cores driven by a simulated clock, network and disk), built
# once and linked by every program here: kvsim, the randomized fault
# simulation (sim_main.c), kvorum-aae-bench, sim_regions and sim_epoch.
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

  # kvorum-aae-bench (tests/sim/aae_bench.c): the bytes anti-entropy
  # exchanges against the number of differing keys and the amount of data,
  # in the simulator.
  #   kvorum-aae-bench                 the table of bench/README.md
  #   ctest -L bench -R aae_bench      K=2000, D in {0, 50}, with checks
  add_executable(kvorum-aae-bench ${PROJECT_SOURCE_DIR}/tests/sim/aae_bench.c)
  target_link_libraries(kvorum-aae-bench PRIVATE kvsim_harness)
  add_test(NAME aae_bench
           COMMAND kvorum-aae-bench --keys 2000 --diffs 0,50 --check)
  set_tests_properties(aae_bench PROPERTIES TIMEOUT 120 LABELS bench)

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
    set(KV_SIM_SEEDS_WIDE 10)
  else()
    set(KV_SIM_SEEDS 500)
    set(KV_SIM_SEEDS_SMALL 100)
    set(KV_SIM_SEEDS_WIDE 200)
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
  # Ring changes under load (a node joins, another leaves; with --remove a
  # third is removed), and eight nodes with 800 steps: the shapes that
  # found lost acknowledged writes after a handoff (issue #20).
  kv_sim_test(sim_churn 180 sim --seed 500001 --seeds ${KV_SIM_SEEDS_WIDE}
              --churn)
  kv_sim_test(sim_churn_remove 180 sim --seed 600001
              --seeds ${KV_SIM_SEEDS_WIDE} --churn --remove)
  kv_sim_test(sim_wide 300 sim --seed 700001 --seeds ${KV_SIM_SEEDS_WIDE}
              --nodes 8 --steps 800)
  kv_sim_test(sim_wide_6 300 sim --seed 800001 --seeds ${KV_SIM_SEEDS_WIDE}
              --nodes 6 --steps 800 --churn)

  # Two regions (tests/sim/sim_regions.c): local_quorum stays at local
  # latency while each_quorum and quorum pay the inter-region round trip
  # (80 ms one way), and a cut-off region fails each_quorum and catches up
  # after the heal.
  add_executable(sim_regions ${PROJECT_SOURCE_DIR}/tests/sim/sim_regions.c)
  target_link_libraries(sim_regions PRIVATE kvsim_harness)
  if(KV_SANITIZE)
    set(KV_SIM_REGION_SEEDS 2)
  else()
    set(KV_SIM_REGION_SEEDS 10)
  endif()
  add_test(NAME sim_regions
           COMMAND sim_regions --seed 1 --seeds ${KV_SIM_REGION_SEEDS})
  set_tests_properties(sim_regions PROPERTIES TIMEOUT 120 LABELS sim)

  # The scripted sequence of issue #20: a node drops a partition, gets it
  # back empty, and coordinates a blind put on a key it wrote before.
  add_executable(sim_epoch ${PROJECT_SOURCE_DIR}/tests/sim/sim_epoch.c)
  target_link_libraries(sim_epoch PRIVATE kvsim_harness)
  add_test(NAME sim_epoch COMMAND sim_epoch --seed 1 --seeds 20)
  set_tests_properties(sim_epoch PROPERTIES TIMEOUT 120 LABELS sim)

  # A replica that returns holds what it missed within a bound, by hints
  # alone (anti-entropy off): three nodes N=3, and two regions, one cut off.
  add_executable(sim_catchup ${PROJECT_SOURCE_DIR}/tests/sim/sim_catchup.c)
  target_link_libraries(sim_catchup PRIVATE kvsim_harness)
  add_test(NAME sim_catchup COMMAND sim_catchup --seed 1 --seeds 10)
  set_tests_properties(sim_catchup PROPERTIES TIMEOUT 120 LABELS sim)

  kv_sim_test(sim_soak 7200 soak --seed 1000001 --seeds 20000 --steps 400)
  # The acceptance shapes of issue #20, 3000 seeds each.
  kv_sim_test(sim_soak_3nodes 3600 soak --seed 1 --seeds 3000 --nodes 3)
  kv_sim_test(sim_soak_machine 3600 soak --seed 1000001 --seeds 3000
              --nodes 5 --machine --reap)
  kv_sim_test(sim_soak_wide 3600 soak --seed 8000001 --seeds 3000 --nodes 8
              --steps 800)
  kv_sim_test(sim_soak_churn 3600 soak --seed 2000001 --seeds 3000 --churn)
  kv_sim_test(sim_soak_churn_remove 3600 soak --seed 3000001 --seeds 3000
              --churn --remove)
endif()
