/*
 * sim_epoch.c: a node that dropped a partition and coordinates its keys
 * again must not lose the writes it coordinated before (issue #20).
 *
 *   sim_epoch [--seed S] [--seeds COUNT] [-v]
 *
 * The sequence, scripted in the simulator:
 *  1. n1, n2, n3 (N=3: each is a primary of every key); through n1, a
 *     blind put of "old" to each of SE_KEYS keys, w=all: n1 coordinates
 *     them all, so their dots are n1's.
 *  2. n4 starts and joins: some partitions move to it; n1 hands those off
 *     and drops them.
 *  3. n4 dies and an operator removes it: n1 is a primary of those
 *     partitions again, with an empty copy (anti-entropy is off, so
 *     nothing refills it).
 *  4. Through n1, a blind put of "new" to a key n1 had dropped, w=all.
 *
 * A blind put never destroys data: both "old" and "new" must be siblings
 * on n2 and n3. Before the fix n1 made the new dot under the actor of
 * its old dots with its clock entry raised past them (the dot floor), so
 * the replicas merged "old" away.
 *
 * Depends on: sim.h (the harness), wire.h, kv_err.h, obj.h.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_err.h"
#include "ring.h"
#include "sim.h"

#define SE_NODES 4
#define SE_KEYS 32
#define SE_REPLY_MAX_MS 5000
#define SE_WAIT_MAX_MS 60000

typedef struct se_state {
  sim_rc rc;
  int failures;
  uint64_t seed;
} se_state;

#define se_fail(st, ...)                                                       \
  ((st)->failures++, sim_script_fail("sim_epoch", (st)->seed, __VA_ARGS__))

/* A blind put of value to key, w=all. Returns whether it was acked. */
static bool se_put(se_state *st, const char *key, const char *value) {
  wire_msg m = {.type = WIRE_PUT};
  m.key.ptr = (const uint8_t *)key;
  m.key.len = strlen(key);
  m.value.ptr = (const uint8_t *)value;
  m.value.len = strlen(value);
  m.opts.w = WIRE_Q_ALL;
  return sim_rc_call(&st->rc, &m, SE_REPLY_MAX_MS) != UINT64_MAX &&
         st->rc.type == WIRE_PUT_OK;
}

static void se_key(int k, char *buf, size_t cap) {
  snprintf(buf, cap, "cart%d", k);
}

/* Whether n1 is a primary of key in n1's ring. */
static bool se_n1_owns(sim *s, const char *key) {
  const ring *rg = gossip_ring(node_gossip(sim_node_core(s, 0)));
  uint32_t p = ring_partition(rg, key, strlen(key));
  size_t idx[NODE_FANOUT_MAX], np = 0;
  size_t total = ring_preflist(rg, p, idx, NODE_FANOUT_MAX, &np);
  for (size_t k = 0; k < np && k < total; k++)
    if (strcmp(ring_node_id(rg, idx[k]), sim_node_name(s, 0)) == 0)
      return true;
  return false;
}

typedef struct se_wait {
  const char *key;
  size_t nodes; /* ring size every up node must see */
} se_wait;

static bool se_dropped(void *arg, sim *s) {
  const se_wait *w = arg;
  obj *o = NULL;
  bool gone = sim_store_get(s, 0, w->key, strlen(w->key), &o) == 0 && !o;
  obj_free(o);
  return gone;
}

static bool se_ring_of(void *arg, sim *s) {
  const se_wait *w = arg;
  for (int i = 0; i < 3; i++) {
    if (!sim_node_up(s, i))
      return false;
    const ring *rg = gossip_ring(node_gossip(sim_node_core(s, i)));
    if (ring_node_count(rg) != w->nodes)
      return false;
  }
  return true;
}

/* Counts the siblings of key on node i holding value. */
static int se_count(sim *s, int i, const char *key, const char *value,
                    size_t *siblings) {
  obj *o = NULL;
  *siblings = 0;
  if (sim_store_get(s, i, key, strlen(key), &o) || !o)
    return 0;
  int found = 0;
  *siblings = obj_sibling_count(o);
  for (size_t k = 0; k < *siblings; k++) {
    obj_value v;
    if (obj_sibling(o, k, &v) == 0 && v.len == strlen(value) &&
        memcmp(v.data, value, v.len) == 0)
      found++;
  }
  obj_free(o);
  return found;
}

static int se_run(uint64_t seed, bool verbose) {
  se_state st = {.rc = {.handle = -1}, .seed = seed};
  sim_config cfg;
  sim_config_default(&cfg, seed, SE_NODES);
  cfg.late_mask = 1u << 3;
  cfg.aae_interval_ms = 3600000; /* off: nothing refills n1's copy */
  cfg.handoff_interval_ms = 100;
  cfg.verbose = verbose;
  cfg.log_level = verbose ? NODE_LOG_INFO : NODE_LOG_ERROR;
  sim *s = sim_new(&cfg);
  if (!s)
    return 2;
  char key[32];
  if (!sim_wait_ring(s, SE_WAIT_MAX_MS) || !sim_rc_open(&st.rc, s, 0)) {
    se_fail(&st, "the first three nodes did not form a cluster");
    goto out;
  }
  for (int k = 0; k < SE_KEYS; k++) {
    se_key(k, key, sizeof(key));
    if (!se_put(&st, key, "old"))
      se_fail(&st, "put of %s through n1 failed (%d)", key, st.rc.code);
  }
  /* n4 joins; n1 hands the partitions it lost off and drops them. */
  if (sim_restart(s, 3) || !sim_wait_ring(s, SE_WAIT_MAX_MS)) {
    se_fail(&st, "n4 did not join");
    goto out;
  }
  int lost = -1;
  for (int k = 0; k < SE_KEYS && lost < 0; k++) {
    se_key(k, key, sizeof(key));
    if (!se_n1_owns(s, key))
      lost = k;
  }
  if (lost < 0) {
    se_fail(&st, "n1 kept every key after n4 joined");
    goto out;
  }
  se_key(lost, key, sizeof(key));
  se_wait w = {.key = key, .nodes = 4};
  if (!sim_run_while_not(s, se_dropped, &w, SE_WAIT_MAX_MS)) {
    se_fail(&st, "n1 never dropped %s after handing it off", key);
    goto out;
  }
  /* n4 dies for good and is removed: n1 owns the key again, empty. */
  sim_crash(s, 3, false);
  int op = sim_client_open(s, 1, NULL, NULL);
  sim_client_hello(s, op, 1);
  sim_client_admin(s, op, 2, "remove", "node", "n4");
  w.nodes = 3;
  if (op < 0 || !sim_run_while_not(s, se_ring_of, &w, SE_WAIT_MAX_MS) ||
      !se_n1_owns(s, key)) {
    se_fail(&st, "removing n4 did not give %s back to n1", key);
    goto out;
  }
  if (!se_dropped(&w, s)) {
    se_fail(&st, "n1 got %s back before the test's write", key);
    goto out;
  }
  if (!sim_rc_open(&st.rc, s, 0) || !se_put(&st, key, "new")) {
    se_fail(&st, "the second put of %s through n1 failed (%d)", key,
            st.rc.code);
    goto out;
  }
  /* n2 and n3 held "old" all along; n1's empty copy gets it back only by
   * repair later. */
  for (int i = 1; i < 3; i++) {
    size_t sib = 0;
    int olds = se_count(s, i, key, "old", &sib);
    int news = se_count(s, i, key, "new", &sib);
    if (olds != 1 || news != 1 || sib != 2)
      se_fail(&st, "%s on %s: %d \"old\", %d \"new\" in %zu siblings; a "
              "blind put must keep both", key, sim_node_name(s, i), olds,
              news, sib);
  }
  if (node_actor_part(sim_node_core(s, 0),
                      ring_partition(gossip_ring(node_gossip(
                                         sim_node_core(s, 0))),
                                     key, strlen(key))) ==
      node_actor(sim_node_core(s, 0)))
    se_fail(&st, "n1 dropped the partition of %s and kept its actor", key);
out:
  sim_rc_close(&st.rc);
  sim_free(s);
  return st.failures ? 1 : 0;
}

int main(int argc, char **argv) {
  uint64_t seed = 1, count = 1;
  bool verbose = false;
  if (!sim_seed_args(argc, argv, "sim_epoch", &seed, &count, &verbose))
    return 2;
  uint64_t failed = 0;
  for (uint64_t k = 0; k < count; k++)
    failed += se_run(seed + k, verbose) != 0;
  printf("sim_epoch: %" PRIu64 " seeds from %" PRIu64 ", %" PRIu64
         " failed\n", count, seed, failed);
  return failed ? 1 : 0;
}
