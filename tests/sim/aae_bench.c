/*
 * aae_bench.c: what anti-entropy costs, in the deterministic simulator.
 *
 *   kvorum-aae-bench [--keys K[,K...]] [--diffs D[,D...]] [--value-size B]
 *                    [--seed S] [--check] [-v]
 *
 * Three node cores (tests/sim) with N=3 and Q=16 hold K keys on every
 * replica (loaded with w=all). Node n3 is then cut off while D of those
 * keys are overwritten (w=2: n1 and n2 take them, n3 does not, and with
 * three nodes there is no fallback to keep a hint), so n3 differs on
 * exactly D keys. After the heal, anti-entropy runs until n3 holds every
 * overwritten object and at least one whole round of tree exchanges
 * (Q intervals) has passed. The bytes are the sum over the nodes of the
 * core's aae_bytes counter (each node counts the anti-entropy frames it
 * sends and the payloads it receives), read through ADMIN "stats" from a
 * simulated client, over that window ("node_bytes"), and the bytes of
 * the anti-entropy frames that entered the simulated network in it
 * ("wire_bytes": each frame once, measured by a filter).
 *
 * Prints a table (bytes, wire bytes per differing key, the data size of
 * one replica, the simulated time to converge) and, for each D, wire
 * bytes at the largest K against the smallest. With --check it asserts
 * behaviour, not speed: D=0 puts at most the tree branches and empty leaf
 * answers on the wire (AB_IDLE_EXCHANGE_MAX per node per partition per
 * round), and D>0 far less than the data (under AB_DATA_FRACTION_MAX).
 * Exits 1 on a failed check or when a run does not converge.
 *
 * Depends on: sim.h (the harness, kvcore), ring.h, obj.h, mp.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv_err.h"
#include "mp.h"
#include "ring.h"
#include "sim.h"

#define AB_NODES 3
#define AB_Q 16u
#define AB_AAE_INTERVAL_MS 100u
#define AB_STALE 2                /* the node that misses the D writes */
#define AB_INFLIGHT_MAX 256u      /* puts in flight while loading */
#define AB_LIST_MAX 8             /* values in --keys / --diffs */
#define AB_KEY_MAX 32
#define AB_VALUE_MAX 65536u
#define AB_RING_MAX_MS 30000u
#define AB_LOAD_MAX_MS 600000u
#define AB_DOWN_MAX_MS 20000u
#define AB_REPLY_MAX_MS 5000u
#define AB_CONVERGE_MAX_MS 60000u
/* One idle exchange on the wire: PEER_MSG branches (32 uint64, about
 * 300 bytes) one way and an empty leaf answer (about 20) back. */
#define AB_IDLE_EXCHANGE_MAX 400u
/* The anti-entropy kinds of PEER_MSG (node/core_int.h: PM_AAE_BRANCHES
 * to PM_AAE_OBJS), internal to the core, hence repeated here. */
#define AB_PM_AAE_FIRST 10u
#define AB_PM_AAE_LAST 13u
#define AB_DATA_FRACTION_MAX 0.2 /* D>0 bytes vs the data, with --check */

typedef struct ab_key {
  uint32_t part;
  char name[AB_KEY_MAX];
} ab_key;

typedef struct ab_state {
  sim *s;
  int client;
  uint64_t req_id;
  uint64_t replies, failures; /* puts answered, of which failed */
  uint64_t stats_req;         /* the ADMIN request waited for */
  bool stats_got;
  uint64_t stats_aae_bytes, stats_repaired;
  const ab_key *diff_keys; /* the keys overwritten while n3 was away */
  size_t ndiff;
  uint64_t wire_bytes; /* anti-entropy frames on the network */
  kvbuf enc;           /* scratch for measuring frames */
} ab_state;

typedef struct ab_result {
  uint32_t k, d;
  uint64_t wire, bytes, repaired, data_bytes, converge_ms, exchanges_window_ms;
  double wall_s;
  bool ok;
} ab_result;

static void ab_client_fn(void *arg, sim *s, int client, const wire_msg *m) {
  ab_state *st = arg;
  (void)s;
  (void)client;
  if (!m || m->type == WIRE_HELLO_OK)
    return;
  if (m->req_id == st->stats_req && m->type == WIRE_ADMIN_OK) {
    mp_reader rd;
    uint32_t cnt;
    mp_reader_init(&rd, m->raw.ptr, m->raw.len);
    if (mp_read_map(&rd, &cnt))
      return;
    for (uint32_t i = 0; i < cnt; i++) {
      kv_slice name;
      if (mp_read_str(&rd, &name))
        return;
      if (mp_slice_eq(name, "aae_bytes")) {
        if (mp_read_uint(&rd, &st->stats_aae_bytes))
          return;
      } else if (mp_slice_eq(name, "aae_keys_repaired")) {
        if (mp_read_uint(&rd, &st->stats_repaired))
          return;
      } else if (mp_skip(&rd)) {
        return;
      }
    }
    st->stats_got = true;
    return;
  }
  st->replies++;
  if (m->type != WIRE_PUT_OK)
    st->failures++;
}

/* Counts the anti-entropy frames entering the network: PEER_MSG of the
 * AAE kinds, and the REPL_PUTs without a request id that an exchange
 * sends (nothing else sends those while the bench measures). */
static int ab_filter(void *arg, sim *s, int from, int to, uint64_t conn,
                     const wire_msg *m, uint64_t *extra_delay_ms) {
  ab_state *st = arg;
  (void)s;
  (void)from;
  (void)to;
  (void)conn;
  (void)extra_delay_ms;
  if (!m)
    return SIM_PASS;
  bool aae = (m->type == WIRE_PEER_MSG && m->flags >= AB_PM_AAE_FIRST &&
              m->flags <= AB_PM_AAE_LAST) ||
             (m->type == WIRE_REPL_PUT && m->req_id == 0);
  if (!aae)
    return SIM_PASS;
  st->enc.len = 0;
  if (wire_encode(&st->enc, m) == 0)
    st->wire_bytes += st->enc.len;
  return SIM_PASS;
}

static bool ab_stats_got(void *arg, sim *s) {
  (void)s;
  return ((ab_state *)arg)->stats_got;
}

/* Sums aae_bytes and aae_keys_repaired over the nodes, through an ADMIN
 * "stats" request to each. Returns 0 or -1 when a node did not answer. */
static int ab_stats(ab_state *st, uint64_t *bytes, uint64_t *repaired) {
  *bytes = 0;
  *repaired = 0;
  for (int i = 0; i < AB_NODES; i++) {
    int c = sim_client_open(st->s, i, ab_client_fn, st);
    if (c < 0)
      return -1;
    sim_client_hello(st->s, c, ++st->req_id);
    wire_msg m = {.type = WIRE_ADMIN, .req_id = ++st->req_id};
    m.text.ptr = (const uint8_t *)"stats";
    m.text.len = strlen("stats");
    st->stats_req = m.req_id;
    st->stats_got = false;
    sim_client_send_msg(st->s, c, &m);
    bool got = sim_run_while_not(st->s, ab_stats_got, st, AB_REPLY_MAX_MS);
    sim_client_close(st->s, c);
    if (!got)
      return -1;
    *bytes += st->stats_aae_bytes;
    *repaired += st->stats_repaired;
  }
  return 0;
}

static void ab_put(ab_state *st, const char *key, const uint8_t *val,
                   size_t vlen, int32_t w) {
  wire_msg m = {.type = WIRE_PUT, .req_id = ++st->req_id};
  m.key.ptr = (const uint8_t *)key;
  m.key.len = strlen(key);
  m.value.ptr = val;
  m.value.len = vlen;
  m.opts.w = w;
  sim_client_send_msg(st->s, st->client, &m);
}

typedef struct ab_wait {
  ab_state *st;
  uint64_t until; /* replies wanted */
} ab_wait;

static bool ab_replies(void *arg, sim *s) {
  (void)s;
  const ab_wait *w = arg;
  return w->st->replies >= w->until;
}

/* Writes keys[0..n) with w, at most AB_INFLIGHT_MAX in flight. Returns 0
 * or -1 when replies stop coming or a put failed. */
static int ab_load(ab_state *st, const ab_key *keys, size_t n,
                   const uint8_t *val, size_t vlen, int32_t w) {
  uint64_t base = st->replies, fail0 = st->failures;
  size_t sent = 0;
  while (sent < n) {
    size_t batch = n - sent < AB_INFLIGHT_MAX ? n - sent : AB_INFLIGHT_MAX;
    for (size_t i = 0; i < batch; i++)
      ab_put(st, keys[sent + i].name, val, vlen, w);
    sent += batch;
    ab_wait wt = {.st = st, .until = base + sent};
    if (!sim_run_while_not(st->s, ab_replies, &wt, AB_LOAD_MAX_MS))
      return -1;
  }
  return st->failures == fail0 ? 0 : -1;
}

static int ab_key_cmp(const void *a, const void *b) {
  const ab_key *x = a, *y = b;
  if (x->part != y->part)
    return x->part < y->part ? -1 : 1;
  return strcmp(x->name, y->name);
}

/* Whether the stale node holds every overwritten object as n1 does. */
static bool ab_converged(void *arg, sim *s) {
  const ab_state *st = arg;
  for (size_t i = 0; i < st->ndiff; i++) {
    const char *k = st->diff_keys[i].name;
    obj *a = NULL, *b = NULL;
    bool same = sim_store_get(s, 0, k, strlen(k), &a) == 0 &&
                sim_store_get(s, AB_STALE, k, strlen(k), &b) == 0 && a &&
                b && obj_equal(a, b);
    obj_free(a);
    obj_free(b);
    if (!same)
      return false;
  }
  return true;
}

static bool ab_stale_down(void *arg, sim *s) {
  (void)arg;
  const gossip *g = node_gossip(sim_node_core(s, 0));
  return !gossip_alive(g, sim_node_name(s, AB_STALE));
}

/* One run: K keys, D of them differing. */
static int ab_run(uint64_t seed, uint32_t k, uint32_t d, size_t vsize,
                  bool verbose, ab_result *res) {
  memset(res, 0, sizeof(*res));
  res->k = k;
  res->d = d;
  struct timespec w0, w1;
  clock_gettime(CLOCK_MONOTONIC, &w0);
  sim_config cfg;
  sim_config_default(&cfg, seed, AB_NODES);
  cfg.q = AB_Q;
  cfg.aae_interval_ms = AB_AAE_INTERVAL_MS;
  cfg.timeout_ms = 5000;
  cfg.verbose = verbose;
  ab_state st = {.client = -1};
  kvbuf_init(&st.enc);
  st.s = sim_new(&cfg);
  if (!st.s)
    return -1;
  sim_set_filter(st.s, ab_filter, &st);
  int rc = -1;
  ab_key *keys = calloc(k ? k : 1, sizeof(*keys));
  uint8_t *val = malloc(vsize ? vsize : 1);
  ab_key *dk = calloc(d ? d : 1, sizeof(*dk));
  if (!keys || !val || !dk)
    goto out;
  for (size_t i = 0; i < vsize; i++)
    val[i] = (uint8_t)('a' + i % 26);
  if (!sim_wait_ring(st.s, AB_RING_MAX_MS)) {
    fprintf(stderr, "aae_bench: the nodes did not agree on a ring\n");
    goto out;
  }
  /* Keys in store order (partition, then bytes): the simulator's store is
   * a sorted array, so loading in order keeps every insert an append. */
  for (uint32_t i = 0; i < k; i++) {
    snprintf(keys[i].name, sizeof(keys[i].name), "key-%08" PRIu32, i);
    keys[i].part = ring_partition_of_hash(
        AB_Q, ring_hash(keys[i].name, strlen(keys[i].name)));
  }
  qsort(keys, k, sizeof(*keys), ab_key_cmp);
  st.client = sim_client_open(st.s, 0, ab_client_fn, &st);
  sim_client_hello(st.s, st.client, ++st.req_id);
  if (ab_load(&st, keys, k, val, vsize, WIRE_Q_ALL)) {
    fprintf(stderr, "aae_bench: loading %" PRIu32 " keys failed\n", k);
    goto out;
  }
  /* The data: one replica's encoded objects. */
  for (uint32_t i = 0; i < k; i++) {
    obj *o = NULL;
    kvbuf b;
    kvbuf_init(&b);
    if (sim_store_get(st.s, 0, keys[i].name, strlen(keys[i].name), &o) ==
            0 && o && obj_encode(o, &b) == 0)
      res->data_bytes += b.len;
    kvbuf_free(&b);
    obj_free(o);
  }
  /* Overwrite D keys spread over the key space while n3 is away. */
  sim_isolate(st.s, AB_STALE);
  if (!sim_run_while_not(st.s, ab_stale_down, NULL, AB_DOWN_MAX_MS)) {
    fprintf(stderr, "aae_bench: n1 did not see n3 down\n");
    goto out;
  }
  for (uint32_t i = 0; i < d && k; i++)
    dk[i] = keys[(uint64_t)i * k / d];
  if (d > k)
    d = k;
  val[0] = 'Z';
  if (ab_load(&st, dk, d, val, vsize, 2)) {
    fprintf(stderr, "aae_bench: the %" PRIu32 " overwrites failed\n", d);
    goto out;
  }
  st.diff_keys = dk;
  st.ndiff = d;
  if (d && ab_converged(&st, st.s)) {
    fprintf(stderr, "aae_bench: n3 got the overwrites while cut off\n");
    goto out;
  }
  uint64_t bytes0, rep0, bytes1, rep1;
  if (ab_stats(&st, &bytes0, &rep0))
    goto out;
  uint64_t wire0 = st.wire_bytes;
  sim_heal(st.s);
  uint64_t t0 = sim_now(st.s);
  if (!sim_run_while_not(st.s, ab_converged, &st, AB_CONVERGE_MAX_MS)) {
    fprintf(stderr, "aae_bench: K=%" PRIu32 " D=%" PRIu32
            ": n3 did not converge in %u ms (seed %" PRIu64 ")\n",
            k, d, AB_CONVERGE_MAX_MS, seed);
    goto out;
  }
  res->converge_ms = sim_now(st.s) - t0;
  /* At least one whole round of exchanges in the window, so D=0 pays the
   * idle cost of comparing trees as every other run does. */
  uint64_t round_ms = (uint64_t)AB_Q * AB_AAE_INTERVAL_MS;
  if (sim_now(st.s) < t0 + round_ms)
    sim_run_until(st.s, t0 + round_ms);
  res->exchanges_window_ms = sim_now(st.s) - t0;
  if (ab_stats(&st, &bytes1, &rep1))
    goto out;
  res->wire = st.wire_bytes - wire0;
  res->bytes = bytes1 - bytes0;
  res->repaired = rep1 - rep0;
  res->ok = true;
  rc = 0;
out:
  if (st.client >= 0)
    sim_client_close(st.s, st.client);
  sim_free(st.s);
  free(keys);
  free(val);
  free(dk);
  kvbuf_free(&st.enc);
  clock_gettime(CLOCK_MONOTONIC, &w1);
  res->wall_s = (double)(w1.tv_sec - w0.tv_sec) +
                (double)(w1.tv_nsec - w0.tv_nsec) / 1e9;
  return rc;
}

/* Parses "a,b,c" into out (at most AB_LIST_MAX). Returns the count or -1. */
static int ab_parse_list(const char *s, uint32_t *out) {
  int n = 0;
  while (*s) {
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || n == AB_LIST_MAX || v > 10000000ul)
      return -1;
    out[n++] = (uint32_t)v;
    s = end;
    if (*s == ',')
      s++;
    else if (*s)
      return -1;
  }
  return n;
}

static void ab_usage(void) {
  fprintf(stderr,
          "usage: kvorum-aae-bench [--keys K[,K...]] [--diffs D[,D...]] "
          "[--value-size B] [--seed S] [--check] [-v]\n"
          "  defaults: --keys 1000,10000,50000 --diffs 0,10,100,1000 "
          "--value-size 100 --seed 1\n");
}

int main(int argc, char **argv) {
  uint32_t ks[AB_LIST_MAX] = {1000, 10000, 50000};
  uint32_t ds[AB_LIST_MAX] = {0, 10, 100, 1000};
  int nk = 3, nd = 4;
  size_t vsize = 100;
  uint64_t seed = 1;
  bool check = false, verbose = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--keys") == 0 && v) {
      nk = ab_parse_list(v, ks);
      i++;
    } else if (strcmp(a, "--diffs") == 0 && v) {
      nd = ab_parse_list(v, ds);
      i++;
    } else if (strcmp(a, "--value-size") == 0 && v) {
      unsigned long sz = strtoul(v, NULL, 10);
      if (sz == 0 || sz > AB_VALUE_MAX) {
        ab_usage();
        return 2;
      }
      vsize = sz;
      i++;
    } else if (strcmp(a, "--seed") == 0 && v) {
      seed = strtoull(v, NULL, 10);
      i++;
    } else if (strcmp(a, "--check") == 0) {
      check = true;
    } else if (strcmp(a, "-v") == 0) {
      verbose = true;
    } else {
      ab_usage();
      return 2;
    }
    if (nk <= 0 || nd <= 0) {
      ab_usage();
      return 2;
    }
  }
  ab_result res[AB_LIST_MAX][AB_LIST_MAX];
  int failed = 0;
  printf("anti-entropy: %d nodes, N=3, Q=%u, %zu-byte values, one exchange "
         "per node every %u ms (seed %" PRIu64 ")\n",
         AB_NODES, AB_Q, vsize, AB_AAE_INTERVAL_MS, seed);
  printf("%7s %5s %10s %9s %11s %11s %8s %9s %8s\n", "K", "D",
         "wire_bytes", "per_diff", "node_bytes", "data_bytes", "wire/data",
         "converge", "wall_s");
  for (int a = 0; a < nk; a++) {
    for (int b = 0; b < nd; b++) {
      ab_result *r = &res[a][b];
      if (ab_run(seed, ks[a], ds[b], vsize, verbose, r)) {
        failed++;
        printf("%7" PRIu32 " %5" PRIu32 "  FAILED\n", ks[a], ds[b]);
        continue;
      }
      char per[32] = "-";
      if (r->d)
        snprintf(per, sizeof(per), "%.0f", (double)r->wire / r->d);
      printf("%7" PRIu32 " %5" PRIu32 " %10" PRIu64 " %9s %11" PRIu64
             " %11" PRIu64 " %8.4f %6" PRIu64 " ms %8.2f\n",
             r->k, r->d, r->wire, per, r->bytes, r->data_bytes,
             r->data_bytes ? (double)r->wire / (double)r->data_bytes : 0.0,
             r->converge_ms, r->wall_s);
      fflush(stdout);
      if (!check)
        continue;
      uint64_t rounds =
          r->exchanges_window_ms / ((uint64_t)AB_Q * AB_AAE_INTERVAL_MS) + 1;
      uint64_t idle_max =
          (uint64_t)AB_NODES * AB_Q * AB_IDLE_EXCHANGE_MAX * rounds;
      if (r->d == 0 && r->wire > idle_max) {
        printf("CHECK FAILED: K=%" PRIu32 " D=0 put %" PRIu64
               " bytes on the wire, more than the tree branches of %" PRIu64
               " round(s) (%" PRIu64 ")\n",
               r->k, r->wire, rounds, idle_max);
        failed++;
      }
      if (r->d > 0 &&
          (double)r->wire > AB_DATA_FRACTION_MAX * (double)r->data_bytes) {
        printf("CHECK FAILED: K=%" PRIu32 " D=%" PRIu32 " put %" PRIu64
               " bytes on the wire, not far below the data (%" PRIu64 ")\n",
               r->k, r->d, r->wire, r->data_bytes);
        failed++;
      }
    }
  }
  if (nk > 1) {
    printf("wire bytes at K=%" PRIu32 " vs K=%" PRIu32 " for the same D:\n",
           ks[nk - 1], ks[0]);
    for (int b = 0; b < nd; b++) {
      const ab_result *lo = &res[0][b], *hi = &res[nk - 1][b];
      if (!lo->ok || !hi->ok || lo->wire == 0)
        continue;
      printf("  D=%-5" PRIu32 " %.2fx (%" PRIu64 " vs %" PRIu64 ")\n",
             ds[b], (double)hi->wire / (double)lo->wire, hi->wire, lo->wire);
    }
  }
  printf("aae_bench: %d failed\n", failed);
  return failed ? 1 : 0;
}
