# kvsim-scale (tests/sim/sim_scale.c): the real gossip, ring and failure
# detection of N nodes in one process, without the data paths: what a join,
# a leave, a kill and a remove cost at N nodes, and false downs under loss
# (issue #18; the table of docs/scaling.md, scripts/scaling-table.sh).
#   kvsim-scale --nodes 1000 --json      the acceptance run (~1 min)
#   ctest -L sim -R sim_scale            N=200 with --check: fails when a
#                                        change needs more than 3 log2 N
#                                        rounds or a message exceeds the
#                                        bound kvsim-scale states
if(TARGET kvgossip)
  add_executable(kvsim-scale ${PROJECT_SOURCE_DIR}/tests/sim/sim_scale.c)
  target_link_libraries(kvsim-scale PRIVATE kvgossip m)
  # Under ASan/UBSan gossip costs several times more: one minute of loss
  # instead of ten keeps the check under a minute there too.
  if(KV_SANITIZE)
    set(KV_SCALE_LOSS_MINUTES 1)
  else()
    set(KV_SCALE_LOSS_MINUTES 10)
  endif()
  add_test(NAME sim_scale
           COMMAND kvsim-scale --nodes 200 --seed 1 --check
                   --loss-minutes ${KV_SCALE_LOSS_MINUTES})
  set_tests_properties(sim_scale PROPERTIES TIMEOUT 120 LABELS sim)
endif()
