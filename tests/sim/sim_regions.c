/*
 * sim_regions.c: two regions in the deterministic simulator.
 *
 *   sim_regions [--seed S] [--seeds COUNT] [-v]
 *
 * Six nodes, us-east n1-n3 and eu-west n4-n6, with replicas us-east=3,
 * eu-west=3 (every key has six primaries). Frames between the regions take
 * SR_INTER_MS more one way (a filter adds it); inside a region 1-5 ms. A
 * client next to n1 measures puts and gets:
 *
 *  - local_quorum (2 of the 3 us-east replicas) stays at local latency:
 *    every request under SR_INTER_MS;
 *  - each_quorum (2 of 3 in each region) and quorum (4 of 6) pay the round
 *    trip: every request at least 2 * SR_INTER_MS.
 *
 * Then eu-west is cut off: local_quorum writes go on, each_quorum fails
 * with KV_EUNAVAIL naming eu-west; after the heal eu-west holds every
 * write made meanwhile (hints and anti-entropy). Prints the latencies of
 * the first seed; exits 1 on a failed check, with the seed that replays
 * it.
 *
 * Depends on: sim.h (the harness), wire.h, kv_err.h.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_err.h"
#include "sim.h"

#define SR_NODES 6
#define SR_INTER_MS 80u      /* one way between the regions */
#define SR_OPS 20            /* requests measured per level */
#define SR_REPLY_MAX_MS 5000 /* simulated time a request may take */
#define SR_RING_MAX_MS 30000
#define SR_DOWN_MAX_MS 20000
#define SR_CONVERGE_MAX_MS 30000
#define SR_CUT_KEYS 10

static const char *const sr_region[SR_NODES] = {
    "us-east", "us-east", "us-east", "eu-west", "eu-west", "eu-west"};
static const gossip_replicas sr_replicas[] = {{"us-east", 3},
                                              {"eu-west", 3}};

typedef struct sr_state {
  sim *s;
  sim_rc rc; /* the client next to n1 */
  int failures;
  uint64_t seed;
} sr_state;

typedef struct sr_lat {
  uint64_t min, max, sum;
  int count;
} sr_lat;

#define sr_fail(st, ...)                                                       \
  ((st)->failures++, sim_script_fail("sim_regions", (st)->seed, __VA_ARGS__))

/* Adds SR_INTER_MS to every frame between the two regions. */
static int sr_filter(void *arg, sim *s, int from, int to, uint64_t conn,
                     const wire_msg *m, uint64_t *extra_delay_ms) {
  (void)arg;
  (void)s;
  (void)conn;
  (void)m;
  if (strcmp(sr_region[from], sr_region[to]) != 0)
    *extra_delay_ms += SR_INTER_MS;
  return SIM_PASS;
}

/* Sends a put (value != NULL) or get of key at level q and runs until the
 * reply. Returns the simulated milliseconds it took, or UINT64_MAX when no
 * reply came in SR_REPLY_MAX_MS. */
static uint64_t sr_request(sr_state *st, const char *key, const char *value,
                           int32_t q) {
  wire_msg m = {.type = value ? WIRE_PUT : WIRE_GET};
  m.key.ptr = (const uint8_t *)key;
  m.key.len = strlen(key);
  if (value) {
    m.value.ptr = (const uint8_t *)value;
    m.value.len = strlen(value);
    m.opts.w = q;
  } else {
    m.opts.r = q;
  }
  return sim_rc_call(&st->rc, &m, SR_REPLY_MAX_MS);
}

/* Measures SR_OPS puts then SR_OPS gets at level q on fresh keys. */
static void sr_measure(sr_state *st, const char *name, int32_t q,
                       sr_lat *put, sr_lat *get) {
  sr_lat *lats[2] = {put, get};
  for (int phase = 0; phase < 2; phase++) {
    sr_lat *l = lats[phase];
    memset(l, 0, sizeof(*l));
    l->min = UINT64_MAX;
    for (int i = 0; i < SR_OPS; i++) {
      char key[64];
      snprintf(key, sizeof(key), "%s-%d", name, i);
      uint64_t ms = sr_request(st, key, phase == 0 ? "v" : NULL, q);
      bool ok = ms != UINT64_MAX &&
                st->rc.type == (phase == 0 ? WIRE_PUT_OK : WIRE_GET_OK);
      if (!ok) {
        char what[SIM_RC_TEXT_MAX + 160];
        snprintf(what, sizeof(what), "%s %s %s: %s", name,
                 phase == 0 ? "put" : "get", key,
                 ms == UINT64_MAX ? "no reply" : st->rc.text);
        sr_fail(st, "%s failed", what);
        continue;
      }
      l->count++;
      l->sum += ms;
      if (ms < l->min)
        l->min = ms;
      if (ms > l->max)
        l->max = ms;
    }
  }
}

static bool sr_eu_down(void *arg, sim *s) {
  (void)arg;
  const gossip *g = node_gossip(sim_node_core(s, 0));
  for (int i = 3; i < SR_NODES; i++)
    if (gossip_alive(g, sim_node_name(s, i)))
      return false;
  return true;
}

static bool sr_eu_caught_up(void *arg, sim *s) {
  (void)arg;
  for (int i = 3; i < SR_NODES; i++)
    for (int k = 0; k < SR_CUT_KEYS; k++) {
      char key[32];
      snprintf(key, sizeof(key), "cut-%d", k);
      obj *o = NULL;
      if (sim_store_get(s, i, key, strlen(key), &o) || !o)
        return false;
      obj_free(o);
    }
  return true;
}

static void sr_print(const char *what, const sr_lat *l) {
  if (l->count == 0) {
    printf("  %-18s no successful requests\n", what);
    return;
  }
  printf("  %-18s min %3" PRIu64 " ms  mean %5.1f ms  max %3" PRIu64
         " ms  (%d requests)\n",
         what, l->min, (double)l->sum / l->count, l->max, l->count);
}

/* One seed: returns the number of failed checks. */
static int sr_run(uint64_t seed, bool verbose, bool report) {
  sim_config cfg;
  sim_config_default(&cfg, seed, SR_NODES);
  for (int i = 0; i < SR_NODES; i++)
    cfg.regions[i] = sr_region[i];
  cfg.replicas = sr_replicas;
  cfg.nreplicas = sizeof(sr_replicas) / sizeof(sr_replicas[0]);
  cfg.aae_interval_ms = 100;
  cfg.hint_interval_ms = 100;
  cfg.timeout_ms = 2000;
  cfg.verbose = verbose;
  sr_state st = {.seed = seed, .rc = {.handle = -1}};
  st.s = sim_new(&cfg);
  if (!st.s)
    return 1;
  sim_set_filter(st.s, sr_filter, NULL);
  if (!sim_wait_ring(st.s, SR_RING_MAX_MS)) {
    sr_fail(&st, "the six nodes did not agree on a ring");
    sim_free(st.s);
    return st.failures;
  }
  sim_rc_open(&st.rc, st.s, 0);
  /* Warm up: open every node-to-node connection. */
  for (int i = 0; i < 3; i++) {
    char key[32];
    snprintf(key, sizeof(key), "warm-%d", i);
    sr_request(&st, key, "w", WIRE_Q_ALL);
  }

  sr_lat lq_put, lq_get, eq_put, eq_get, q_put, q_get;
  sr_measure(&st, "local_quorum", WIRE_Q_LOCAL_QUORUM, &lq_put, &lq_get);
  sr_measure(&st, "each_quorum", WIRE_Q_EACH_QUORUM, &eq_put, &eq_get);
  sr_measure(&st, "quorum", WIRE_Q_QUORUM, &q_put, &q_get);
  if (report) {
    printf("sim_regions seed %" PRIu64 ": client next to n1 (us-east), "
           "%u ms one way between regions, 1-5 ms within\n",
           seed, SR_INTER_MS);
    sr_print("local_quorum put", &lq_put);
    sr_print("local_quorum get", &lq_get);
    sr_print("each_quorum put", &eq_put);
    sr_print("each_quorum get", &eq_get);
    sr_print("quorum (4/6) put", &q_put);
    sr_print("quorum (4/6) get", &q_get);
  }
  const sr_lat *local[2] = {&lq_put, &lq_get};
  const sr_lat *remote[4] = {&eq_put, &eq_get, &q_put, &q_get};
  for (int i = 0; i < 2; i++)
    if (local[i]->count && local[i]->max >= SR_INTER_MS)
      sr_fail(&st, "local_quorum paid the inter-region latency");
  for (int i = 0; i < 4; i++)
    if (remote[i]->count && remote[i]->min < 2 * SR_INTER_MS)
      sr_fail(&st, "each_quorum or quorum answered before a round trip "
              "to the other region");

  /* eu-west cut off. */
  sim_split(st.s, 0x7u);
  if (!sim_run_while_not(st.s, sr_eu_down, NULL, SR_DOWN_MAX_MS))
    sr_fail(&st, "n1 did not see eu-west down after the cut");
  for (int k = 0; k < SR_CUT_KEYS; k++) {
    char key[32];
    snprintf(key, sizeof(key), "cut-%d", k);
    uint64_t ms = sr_request(&st, key, "c", WIRE_Q_LOCAL_QUORUM);
    if (ms == UINT64_MAX || st.rc.type != WIRE_PUT_OK)
      sr_fail(&st, "local_quorum write with eu-west cut off failed: %s",
              st.rc.text);
  }
  uint64_t ms = sr_request(&st, "cut-each", "c", WIRE_Q_EACH_QUORUM);
  if (ms == UINT64_MAX || st.rc.type != WIRE_ERROR || st.rc.code != KV_EUNAVAIL ||
      !strstr(st.rc.text, "eu-west"))
    sr_fail(&st, "each_quorum write with eu-west cut off did not fail with "
            "EUNAVAIL naming eu-west: %s", st.rc.text);
  else if (report)
    printf("  each_quorum, eu-west cut off: %s\n", st.rc.text);
  ms = sr_request(&st, "cut-0", NULL, WIRE_Q_EACH_QUORUM);
  if (ms == UINT64_MAX || st.rc.type != WIRE_ERROR || st.rc.code != KV_EUNAVAIL)
    sr_fail(&st, "each_quorum read with eu-west cut off did not fail: %s",
            st.rc.text);

  sim_heal(st.s);
  uint64_t t0 = sim_now(st.s);
  if (!sim_run_while_not(st.s, sr_eu_caught_up, NULL, SR_CONVERGE_MAX_MS))
    sr_fail(&st, "eu-west did not catch up on the writes made while it "
            "was cut off");
  else if (report)
    printf("  eu-west caught up %" PRIu64 " ms after the heal\n",
           sim_now(st.s) - t0);
  sim_rc_close(&st.rc);
  sim_free(st.s);
  return st.failures;
}

int main(int argc, char **argv) {
  uint64_t seed = 1, count = 1;
  bool verbose = false;
  if (!sim_seed_args(argc, argv, "sim_regions", &seed, &count, &verbose))
    return 2;
  int failed = 0;
  for (uint64_t i = 0; i < count; i++)
    failed += sr_run(seed + i, verbose, i == 0) > 0;
  printf("sim_regions: %" PRIu64 " seeds, %d failed\n", count, failed);
  return failed ? 1 : 0;
}
