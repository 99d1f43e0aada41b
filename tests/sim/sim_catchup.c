/*
 * sim_catchup.c: a replica that comes back holds what it missed within a
 * bound of simulated time, by hints alone (issue #12).
 *
 *   sim_catchup [--seed S] [--seeds COUNT] [-v]
 *
 * Anti-entropy is off (an interval of an hour) in both cases, so only the
 * coordinators' hints can bring the writes over:
 *  1. Three nodes, N=3 (no node outside a key's preference list to keep a
 *     fallback hint): n3 crashes, SC_WRITES acknowledged writes (w=2)
 *     through n1 and n2, n3 restarts; n3's own store must hold every one of
 *     them within SC_BOUND_MS of its restart.
 *  2. Two regions, us-east n1-n3 and eu-west n4-n6, replicas 3+3: eu-west
 *     is cut off, SC_WRITES local_quorum writes through n1, the cut heals;
 *     every eu-west node must hold every write within SC_BOUND_MS of the
 *     heal.
 * Prints the time each took for the first seed; exits 1 on a failed check
 * with the seed that replays it.
 *
 * Depends on: sim.h (the harness), wire.h, obj.h.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_err.h"
#include "sim.h"

#define SC_WRITES 100
#define SC_BOUND_MS 10000u /* simulated time a returning replica may take */
#define SC_REPLY_MAX_MS 5000
#define SC_WAIT_MAX_MS 60000

static const char *const sc_region[6] = {"us-east", "us-east", "us-east",
                                         "eu-west", "eu-west", "eu-west"};
static const gossip_replicas sc_replicas[] = {{"us-east", 3},
                                              {"eu-west", 3}};

typedef struct sc_state {
  sim_rc rc;
  int failures;
  uint64_t seed;
} sc_state;

#define sc_fail(st, ...)                                                       \
  ((st)->failures++, sim_script_fail("sim_catchup", (st)->seed, __VA_ARGS__))

/* A blind put at level w, its value the key. Returns whether it was
 * acknowledged. */
static bool sc_put(sc_state *st, const char *key, int32_t w) {
  wire_msg m = {.type = WIRE_PUT};
  m.key.ptr = (const uint8_t *)key;
  m.key.len = strlen(key);
  m.value = m.key;
  m.opts.w = w;
  return sim_rc_call(&st->rc, &m, SC_REPLY_MAX_MS) != UINT64_MAX &&
         st->rc.type == WIRE_PUT_OK;
}

static void sc_key(int k, char *buf, size_t cap) {
  snprintf(buf, cap, "cart%d", k);
}

/* Whether node i's store holds the value of key (its own name). */
static bool sc_holds(sim *s, int i, const char *key) {
  obj *o = NULL;
  if (sim_store_get(s, i, key, strlen(key), &o) || !o)
    return false;
  bool found = false;
  for (size_t k = 0; k < obj_sibling_count(o) && !found; k++) {
    obj_value v;
    found = obj_sibling(o, k, &v) == 0 && v.len == strlen(key) &&
            memcmp(v.data, key, v.len) == 0;
  }
  obj_free(o);
  return found;
}

typedef struct sc_wait {
  int first, last; /* nodes that must hold every acknowledged write */
  const bool *acked;
} sc_wait;

static bool sc_all_held(void *arg, sim *s) {
  const sc_wait *w = arg;
  char key[32];
  for (int i = w->first; i <= w->last; i++)
    for (int k = 0; k < SC_WRITES; k++) {
      sc_key(k, key, sizeof(key));
      if (w->acked[k] && !sc_holds(s, i, key))
        return false;
    }
  return true;
}

/* Case 1: three nodes, n3 down while writes go on. */
static uint64_t sc_three_nodes(sc_state *st, bool verbose) {
  sim_config cfg;
  sim_config_default(&cfg, st->seed, 3);
  cfg.aae_interval_ms = 3600000;
  cfg.verbose = verbose;
  cfg.log_level = verbose ? NODE_LOG_INFO : NODE_LOG_ERROR;
  sim *s = sim_new(&cfg);
  uint64_t took = UINT64_MAX;
  bool acked[SC_WRITES] = {false};
  if (!s || !sim_wait_ring(s, SC_WAIT_MAX_MS)) {
    sc_fail(st, "three nodes did not form a cluster");
    goto out;
  }
  sim_crash(s, 2, false);
  char key[32];
  for (int k = 0; k < SC_WRITES; k++) {
    if (k % 50 == 0 && !sim_rc_open(&st->rc, s, k / 50 % 2)) {
      sc_fail(st, "cannot connect a client");
      goto out;
    }
    sc_key(k, key, sizeof(key));
    acked[k] = sc_put(st, key, 2);
    if (!acked[k])
      sc_fail(st, "write %d (w=2) was not acknowledged with n3 down", k);
  }
  if (sim_restart(s, 2)) {
    sc_fail(st, "n3 does not start again");
    goto out;
  }
  uint64_t t0 = sim_now(s);
  sc_wait w = {.first = 2, .last = 2, .acked = acked};
  if (sim_run_while_not(s, sc_all_held, &w, SC_BOUND_MS))
    took = sim_now(s) - t0;
  else
    sc_fail(st, "n3 does not hold every acknowledged write %u ms after its "
            "restart (anti-entropy off: hints alone)", SC_BOUND_MS);
out:
  sim_rc_close(&st->rc);
  sim_free(s);
  return took;
}

/* Case 2: two regions, eu-west cut off while us-east writes locally. */
static uint64_t sc_two_regions(sc_state *st, bool verbose) {
  sim_config cfg;
  sim_config_default(&cfg, st->seed, 6);
  for (int i = 0; i < 6; i++)
    cfg.regions[i] = sc_region[i];
  cfg.replicas = sc_replicas;
  cfg.nreplicas = sizeof(sc_replicas) / sizeof(sc_replicas[0]);
  cfg.aae_interval_ms = 3600000;
  cfg.verbose = verbose;
  cfg.log_level = verbose ? NODE_LOG_INFO : NODE_LOG_ERROR;
  sim *s = sim_new(&cfg);
  uint64_t took = UINT64_MAX;
  bool acked[SC_WRITES] = {false};
  if (!s || !sim_wait_ring(s, SC_WAIT_MAX_MS) || !sim_rc_open(&st->rc, s, 0)) {
    sc_fail(st, "two regions did not form a cluster");
    goto out;
  }
  sim_split(s, 0x38); /* n4, n5, n6 */
  char key[32];
  for (int k = 0; k < SC_WRITES; k++) {
    sc_key(k, key, sizeof(key));
    acked[k] = sc_put(st, key, WIRE_Q_LOCAL_QUORUM);
    if (!acked[k])
      sc_fail(st, "local_quorum write %d failed with eu-west cut off", k);
  }
  sim_heal(s);
  uint64_t t0 = sim_now(s);
  sc_wait w = {.first = 3, .last = 5, .acked = acked};
  if (sim_run_while_not(s, sc_all_held, &w, SC_BOUND_MS))
    took = sim_now(s) - t0;
  else
    sc_fail(st, "eu-west does not hold every local_quorum write %u ms after "
            "the cut healed (anti-entropy off: hints alone)", SC_BOUND_MS);
out:
  sim_rc_close(&st->rc);
  sim_free(s);
  return took;
}

int main(int argc, char **argv) {
  uint64_t seed = 1, count = 1;
  bool verbose = false;
  if (!sim_seed_args(argc, argv, "sim_catchup", &seed, &count, &verbose))
    return 2;
  uint64_t failed = 0;
  for (uint64_t k = 0; k < count; k++) {
    sc_state st = {.rc = {.handle = -1}, .seed = seed + k};
    uint64_t a = sc_three_nodes(&st, verbose);
    uint64_t b = sc_two_regions(&st, verbose);
    if (k == 0 && a != UINT64_MAX && b != UINT64_MAX)
      printf("sim_catchup: seed %" PRIu64 ": n3 caught up %" PRIu64
             " ms after its restart; eu-west %" PRIu64
             " ms after the heal (%d writes, hints alone)\n",
             st.seed, a, b, SC_WRITES);
    failed += st.failures != 0;
  }
  printf("sim_catchup: %" PRIu64 " seeds from %" PRIu64 ", %" PRIu64
         " failed\n", count, seed, failed);
  return failed ? 1 : 0;
}
