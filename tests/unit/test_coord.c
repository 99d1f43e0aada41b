/*
 * test_coord.c: unit tests of the node core's request coordination
 * (node/coord.c, node/core.c), driven by the simulation harness
 * (tests/sim/sim.h): a three-node cluster with a fake clock, transport and
 * store, and frame filters that silence, delay or duplicate one replica.
 *
 * Each test builds its own cluster, so tests are independent; the program
 * ends with "N passed, M failed" and exits non-zero on a failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_err.h"
#include "ring.h"
#include "crdt.h"
#include "sim/sim.h"
#include "types.h"

#define CHECK_HEAD "  %s:%d: check failed: %s"
#include "unit/check.h"

#define TC_REPLIES_MAX 32

/* ---- a recording client ---- */

typedef struct tc_reply {
  uint32_t type;
  uint64_t req_id;
  int32_t code;
  char text[WIRE_ERRMSG_MAX];
  uint32_t nsiblings;
  uint64_t at_ms;
} tc_reply;

typedef struct tc_client {
  sim *s;
  int handle;
  tc_reply r[TC_REPLIES_MAX];
  size_t n;       /* replies other than HELLO_OK */
  bool closed;
} tc_client;

static void tc_client_fn(void *arg, sim *s, int handle, const wire_msg *m) {
  tc_client *c = arg;
  (void)handle;
  if (!m) {
    c->closed = true;
    return;
  }
  if (m->type == WIRE_HELLO_OK || c->n == TC_REPLIES_MAX)
    return;
  tc_reply *r = &c->r[c->n++];
  memset(r, 0, sizeof(*r));
  r->type = m->type;
  r->req_id = m->req_id;
  r->code = m->code;
  r->at_ms = sim_now(s);
  r->nsiblings = m->nsiblings;
  if (m->type == WIRE_ERROR) {
    size_t l = m->text.len < sizeof(r->text) - 1 ? m->text.len
                                                 : sizeof(r->text) - 1;
    memcpy(r->text, m->text.ptr, l);
  }
}

static void tc_open(tc_client *c, sim *s, int target, bool hello) {
  memset(c, 0, sizeof(*c));
  c->s = s;
  c->handle = sim_client_open(s, target, tc_client_fn, c);
  if (hello)
    sim_client_hello(s, c->handle, 1);
}

static void tc_put(tc_client *c, uint64_t id, const char *key,
                   const char *val, const wire_opts *o) {
  wire_msg m = {.type = WIRE_PUT, .req_id = id};
  m.key.ptr = (const uint8_t *)key;
  m.key.len = strlen(key);
  m.value.ptr = (const uint8_t *)val;
  m.value.len = strlen(val);
  if (o)
    m.opts = *o;
  sim_client_send_msg(c->s, c->handle, &m);
}

static void tc_get(tc_client *c, uint64_t id, const char *key,
                   const wire_opts *o) {
  wire_msg m = {.type = WIRE_GET, .req_id = id};
  m.key.ptr = (const uint8_t *)key;
  m.key.len = strlen(key);
  if (o)
    m.opts = *o;
  sim_client_send_msg(c->s, c->handle, &m);
}

/* ---- cluster helpers ---- */

static sim *tc_cluster(uint64_t seed, uint32_t aae_interval_ms) {
  sim_config cfg;
  sim_config_default(&cfg, seed, 3);
  cfg.aae_interval_ms = aae_interval_ms;
  /* These tests count the coordinator's own frames; the hints it keeps
   * for a replica that missed a write (and their deliveries, which are
   * REPL_PUTs too) are tests/sim/sim_catchup.c's. */
  cfg.hint_interval_ms = 3600000;
  cfg.log_level = NODE_LOG_ERROR;
  sim *s = sim_new(&cfg);
  if (!s || !sim_wait_ring(s, 20000)) {
    fprintf(stderr, "  the cluster did not form\n");
    check_failed++;
    sim_free(s);
    return NULL;
  }
  return s;
}

/* The three primaries of key, in preference order. */
static void tc_primaries(sim *s, const char *key, int out[3]) {
  const ring *rg = gossip_ring(node_gossip(sim_node_core(s, 0)));
  uint32_t p = ring_partition(rg, key, strlen(key));
  size_t idx[NODE_FANOUT_MAX], np = 0;
  ring_preflist(rg, p, idx, NODE_FANOUT_MAX, &np);
  for (int i = 0; i < 3; i++)
    out[i] = sim_node_by_name(s, ring_node_id(rg, idx[i]));
}

/* Filters: what to do with frames of one type towards or from one node. */
typedef struct tc_filter {
  int to, from;    /* -1: any */
  uint32_t type;   /* WIRE_NONE: any */
  int fate;        /* SIM_* */
  uint64_t delay_ms;
  uint32_t hits;
} tc_filter;

static int tc_filter_fn(void *arg, sim *s, int from, int to, uint64_t conn,
                        const wire_msg *m, uint64_t *extra) {
  (void)s;
  (void)conn;
  /* arg is an array of filters ended by one with fate < 0. */
  for (tc_filter *f = arg; f->fate >= 0; f++) {
    if ((f->to >= 0 && to != f->to) || (f->from >= 0 && from != f->from))
      continue;
    if (f->type != WIRE_NONE && (!m || m->type != f->type))
      continue;
    f->hits++;
    *extra += f->delay_ms;
    return f->fate;
  }
  return SIM_PASS;
}

static size_t tc_siblings(sim *s, int target, const char *key, bool *present) {
  obj *o = NULL;
  *present = false;
  if (sim_store_get(s, target, key, strlen(key), &o) || !o)
    return 0;
  *present = true;
  size_t n = obj_sibling_count(o);
  obj_free(o);
  return n;
}

/* ---- tests ---- */

/* A put with one replica silent times out, and says how many answered. */
static void test_put_timeout_counts(void) {
  sim *s = tc_cluster(11, 0);
  if (!s)
    return;
  int p[3];
  tc_primaries(s, "k", p);
  tc_filter f[] = {{.to = p[2], .from = -1, .type = WIRE_REPL_PUT,
                    .fate = SIM_DROP},
                   {.fate = -1}};
  sim_set_filter(s, tc_filter_fn, f);
  tc_client c;
  tc_open(&c, s, p[0], true);
  wire_opts o = {.w = WIRE_Q_ALL, .timeout_ms = 300};
  uint64_t t0 = sim_now(s);
  tc_put(&c, 7, "k", "v", &o);
  sim_run_for(s, 1000);
  CHECK(f[0].hits == 1);
  CHECK(c.n == 1);
  if (c.n >= 1) {
    CHECK(c.r[0].type == WIRE_ERROR);
    CHECK(c.r[0].req_id == 7);
    CHECK(c.r[0].code == KV_ETIMEDOUT);
    CHECK(strstr(c.r[0].text, "only 2 of 3") != NULL);
    CHECK(strstr(c.r[0].text, "300 ms") != NULL);
    CHECK(c.r[0].at_ms >= t0 + 300 && c.r[0].at_ms < t0 + 400);
  }
  CHECK(!c.closed);
  /* /metrics counts it as a put that timed out, after about 300 ms. */
  const node_stats *st = node_stats_get(sim_node_core(s, p[0]));
  CHECK(st->requests[NODE_OP_PUT][NODE_RES_TIMEOUT] == 1);
  CHECK(st->requests[NODE_OP_PUT][NODE_RES_OK] == 0);
  CHECK(st->latency[NODE_OP_PUT].count == 1);
  CHECK(st->latency[NODE_OP_PUT].sum >= 300000 &&
        st->latency[NODE_OP_PUT].sum < 400000);
  sim_free(s);
}

/* A reply that arrives after the timeout is ignored: one reply, no crash,
 * and the node keeps working. */
static void test_late_reply_ignored(void) {
  sim *s = tc_cluster(12, 0);
  if (!s)
    return;
  int p[3];
  tc_primaries(s, "k", p);
  tc_filter f[] = {{.to = p[0], .from = p[2], .type = WIRE_REPL_PUT_OK,
                    .fate = SIM_PASS, .delay_ms = 600},
                   {.fate = -1}};
  sim_set_filter(s, tc_filter_fn, f);
  tc_client c;
  tc_open(&c, s, p[0], true);
  wire_opts o = {.w = WIRE_Q_ALL, .timeout_ms = 300};
  tc_put(&c, 8, "k", "v", &o);
  sim_run_for(s, 2000);
  CHECK(f[0].hits == 1);
  CHECK(c.n == 1);
  if (c.n >= 1)
    CHECK(c.r[0].type == WIRE_ERROR && c.r[0].code == KV_ETIMEDOUT);
  CHECK(node_requests_in_flight(sim_node_core(s, p[0])) == 0);
  sim_set_filter(s, NULL, NULL);
  tc_get(&c, 9, "k", NULL);
  sim_run_for(s, 200);
  CHECK(c.n == 2);
  if (c.n >= 2)
    CHECK(c.r[1].type == WIRE_GET_OK && c.r[1].nsiblings == 1);
  sim_free(s);
}

/* Duplicated acknowledgements do not count twice. */
static void test_duplicate_acks(void) {
  sim *s = tc_cluster(13, 0);
  if (!s)
    return;
  int p[3];
  tc_primaries(s, "k", p);
  /* p[1] acknowledges twice; p[2] never hears of the write. */
  tc_filter f[] = {{.to = p[0], .from = p[1], .type = WIRE_REPL_PUT_OK,
                    .fate = SIM_DUP},
                   {.to = p[2], .from = -1, .type = WIRE_REPL_PUT,
                    .fate = SIM_DROP},
                   {.fate = -1}};
  sim_set_filter(s, tc_filter_fn, f);
  tc_client c;
  tc_open(&c, s, p[0], true);
  wire_opts o = {.w = WIRE_Q_ALL, .timeout_ms = 300};
  tc_put(&c, 10, "k", "v", &o);
  sim_run_for(s, 600);
  CHECK(f[0].hits == 1 && f[1].hits == 1);
  CHECK(c.n == 1);
  if (c.n >= 1) {
    CHECK(c.r[0].type == WIRE_ERROR);
    CHECK(strstr(c.r[0].text, "only 2 of 3") != NULL);
  }
  sim_free(s);
}

/* A replica that answers ERROR counts as failed: the put fails at once. */
static void test_replica_error_fails(void) {
  sim *s = tc_cluster(14, 0);
  if (!s)
    return;
  int p[3];
  tc_primaries(s, "k", p);
  sim_store_fail(s, p[2], KV_EIO);
  tc_client c;
  tc_open(&c, s, p[0], true);
  wire_opts o = {.w = WIRE_Q_ALL, .timeout_ms = 1000};
  uint64_t t0 = sim_now(s);
  tc_put(&c, 11, "k", "v", &o);
  sim_run_for(s, 1500);
  CHECK(c.n == 1);
  if (c.n >= 1) {
    CHECK(c.r[0].type == WIRE_ERROR);
    CHECK(c.r[0].code == KV_EQUORUM);
    CHECK(strstr(c.r[0].text, "only 2 of 3") != NULL);
    CHECK(strstr(c.r[0].text, "1 failed") != NULL);
    CHECK(c.r[0].at_ms < t0 + 100); /* not a timeout */
  }
  /* With w=2 the same failure is tolerated. */
  o.w = 2;
  tc_put(&c, 12, "k", "v2", &o);
  sim_run_for(s, 200);
  CHECK(c.n == 2);
  if (c.n >= 2)
    CHECK(c.r[1].type == WIRE_PUT_OK);
  sim_store_fail(s, p[2], 0);
  sim_free(s);
}

/* A get merges the siblings the replicas hold and repairs a stale one. */
/* Every one of the three replicas p holds key, with nsib siblings, and
 * all three hold the same object. */
static void tc_replicas_equal(sim *s, const int *p, const char *key,
                              size_t nsib) {
  obj *o[3] = {NULL, NULL, NULL};
  for (int i = 0; i < 3; i++)
    sim_store_get(s, p[i], key, strlen(key), &o[i]);
  CHECK(o[0] && o[1] && o[2]);
  if (o[0] && o[1] && o[2]) {
    CHECK(obj_sibling_count(o[0]) == nsib);
    CHECK(obj_equal(o[0], o[1]));
    CHECK(obj_equal(o[0], o[2]));
  }
  for (int i = 0; i < 3; i++)
    obj_free(o[i]);
}

static void test_get_merges_and_repairs(void) {
  /* Anti-entropy off (one exchange per hour): only read repair fixes. */
  sim *s = tc_cluster(15, 3600000);
  if (!s)
    return;
  int p[3];
  tc_primaries(s, "k", p);
  tc_filter f[] = {{.to = -1, .from = -1, .type = WIRE_REPL_PUT,
                    .fate = SIM_DROP},
                   {.fate = -1}};
  sim_set_filter(s, tc_filter_fn, f);
  tc_client a, b;
  tc_open(&a, s, p[0], true);
  tc_open(&b, s, p[1], true);
  wire_opts w1 = {.w = 1, .timeout_ms = 300};
  tc_put(&a, 1, "k", "from-a", &w1);
  tc_put(&b, 1, "k", "from-b", &w1);
  sim_run_for(s, 500);
  CHECK(a.n == 1 && a.r[0].type == WIRE_PUT_OK);
  CHECK(b.n == 1 && b.r[0].type == WIRE_PUT_OK);
  bool present;
  CHECK(tc_siblings(s, p[0], "k", &present) == 1 && present);
  CHECK(tc_siblings(s, p[1], "k", &present) == 1 && present);
  tc_siblings(s, p[2], "k", &present);
  CHECK(!present);
  sim_set_filter(s, NULL, NULL);
  wire_opts r3 = {.r = WIRE_Q_ALL};
  tc_get(&a, 2, "k", &r3);
  sim_run_for(s, 300);
  CHECK(a.n == 2);
  if (a.n >= 2)
    CHECK(a.r[1].type == WIRE_GET_OK && a.r[1].nsiblings == 2);
  tc_replicas_equal(s, p, "k", 2);
  sim_free(s);
}

static bool tc_sees_down(void *arg, sim *s) {
  const int *p = arg;
  return !gossip_alive(node_gossip(sim_node_core(s, p[0])),
                       sim_node_name(s, p[2]));
}

/* --pw / --pr above the alive primaries fail at once with KV_EUNAVAIL. */
static void test_pw_pr_unavailable(void) {
  sim *s = tc_cluster(16, 0);
  if (!s)
    return;
  int p[3];
  tc_primaries(s, "k", p);
  sim_crash(s, p[2], false);
  CHECK(sim_run_while_not(s, tc_sees_down, p, 20000));
  tc_client c;
  tc_open(&c, s, p[0], true);
  sim_run_for(s, 20);
  wire_opts pw = {.pw = 3, .timeout_ms = 1000};
  uint64_t t0 = sim_now(s);
  tc_put(&c, 1, "k", "v", &pw);
  sim_run_for(s, 100);
  CHECK(c.n == 1);
  if (c.n >= 1) {
    CHECK(c.r[0].type == WIRE_ERROR && c.r[0].code == KV_EUNAVAIL);
    CHECK(c.r[0].at_ms < t0 + 20);
    CHECK(strstr(c.r[0].text, "only 2 of 3") != NULL);
  }
  wire_opts pr = {.pr = 3, .timeout_ms = 1000};
  t0 = sim_now(s);
  tc_get(&c, 2, "k", &pr);
  sim_run_for(s, 100);
  CHECK(c.n == 2);
  if (c.n >= 2) {
    CHECK(c.r[1].type == WIRE_ERROR && c.r[1].code == KV_EUNAVAIL);
    CHECK(c.r[1].at_ms < t0 + 20);
  }
  /* The defaults still work with two primaries (a fallback holds a hint
   * only when there is a fourth node; here W=2 is met by primaries). */
  tc_put(&c, 3, "k", "v", NULL);
  sim_run_for(s, 100);
  CHECK(c.n == 3);
  if (c.n >= 3)
    CHECK(c.r[2].type == WIRE_PUT_OK);
  tc_get(&c, 4, "k", NULL);
  tc_get(&c, 5, "nokey", NULL);
  sim_run_for(s, 100);
  CHECK(c.n == 5);
  /* /metrics: each answer counted once under its op and result, and a
   * read of one value in the siblings histogram. */
  const node_stats *st = node_stats_get(sim_node_core(s, p[0]));
  CHECK(st->requests[NODE_OP_PUT][NODE_RES_UNAVAILABLE] == 1);
  CHECK(st->requests[NODE_OP_PUT][NODE_RES_OK] == 1);
  CHECK(st->requests[NODE_OP_GET][NODE_RES_UNAVAILABLE] == 1);
  CHECK(st->requests[NODE_OP_GET][NODE_RES_OK] == 1);
  CHECK(st->requests[NODE_OP_GET][NODE_RES_NOT_FOUND] == 1);
  CHECK(st->latency[NODE_OP_GET].count == 3);
  CHECK(st->siblings.count == 1 && st->siblings.sum == 1);
  CHECK(st->object_bytes.count == 1);
  sim_free(s);
}

/* A value written with a time to live reads as found until it expires,
 * then as not found on every replica; a later write without one keeps the
 * key (docs/data-types.md). */
static void test_ttl_expires(void) {
  sim *s = tc_cluster(17, 0);
  if (!s)
    return;
  int p[3];
  tc_primaries(s, "t", p);
  tc_client c;
  tc_open(&c, s, p[0], true);
  sim_run_for(s, 20);
  wire_opts ttl = {.ttl_ms = 2000};
  wire_opts all = {.r = WIRE_Q_ALL};
  tc_put(&c, 1, "t", "v", &ttl);
  sim_run_for(s, 100);
  tc_get(&c, 2, "t", &all);
  sim_run_for(s, 100);
  CHECK(c.n == 2);
  if (c.n >= 2)
    CHECK(c.r[0].type == WIRE_PUT_OK && c.r[1].type == WIRE_GET_OK &&
          c.r[1].nsiblings == 1);
  sim_run_for(s, 2500);
  tc_get(&c, 3, "t", &all);
  sim_run_for(s, 100);
  CHECK(c.n == 3);
  if (c.n >= 3)
    CHECK(c.r[2].type == WIRE_GET_OK && c.r[2].nsiblings == 0);
  tc_put(&c, 4, "t", "w", NULL);
  sim_run_for(s, 100);
  sim_run_for(s, 5000);
  tc_get(&c, 5, "t", &all);
  sim_run_for(s, 100);
  CHECK(c.n == 5);
  if (c.n >= 5)
    CHECK(c.r[4].type == WIRE_GET_OK && c.r[4].nsiblings == 1);
  sim_free(s);
}

/* Set operations through two coordinators at once merge on the server: a
 * read returns one typed sibling holding every member; a plain write's
 * key refuses a set operation (WRONGTYPE). */
static void test_typed_set(void) {
  sim *s = tc_cluster(18, 0);
  if (!s)
    return;
  int p[3];
  tc_primaries(s, "cart", p);
  tc_client a, b;
  tc_open(&a, s, p[0], true);
  tc_open(&b, s, p[1], true);
  sim_run_for(s, 20);
  wire_opts typed = {.flags = WIRE_OPT_TYPED};
  kvbuf op1, op2;
  kvbuf_init(&op1);
  kvbuf_init(&op2);
  kv_slice milk = {(const uint8_t *)"milk", 4}, eggs = {(const uint8_t *)"eggs", 4};
  CHECK(crdt_op_set_add(&op1, &milk, 1) == 0);
  CHECK(crdt_op_set_add(&op2, &eggs, 1) == 0);
  wire_msg m = {.type = WIRE_PUT, .req_id = 1, .opts = typed};
  m.key.ptr = (const uint8_t *)"cart";
  m.key.len = 4;
  m.value.ptr = op1.data;
  m.value.len = op1.len;
  sim_client_send_msg(s, a.handle, &m);
  m.value.ptr = op2.data;
  m.value.len = op2.len;
  sim_client_send_msg(s, b.handle, &m);
  sim_run_for(s, 200);
  CHECK(a.n == 1 && b.n == 1);
  if (a.n && b.n)
    CHECK(a.r[0].type == WIRE_PUT_OK && b.r[0].type == WIRE_PUT_OK);
  wire_opts all = {.r = WIRE_Q_ALL};
  tc_get(&a, 2, "cart", &all);
  sim_run_for(s, 200);
  CHECK(a.n == 2);
  if (a.n >= 2)
    CHECK(a.r[1].type == WIRE_GET_OK && a.r[1].nsiblings == 1);
  /* The state in the store: both members, however the writes raced. */
  obj *o = NULL;
  crdt *st = NULL;
  CHECK(sim_store_get(s, p[2], "cart", 4, &o) == 0 && o);
  CHECK(o && types_join(o, 0, false, &st) == 0 && st);
  CHECK(st && crdt_set_count(st) == 2 && crdt_set_contains(st, milk) &&
        crdt_set_contains(st, eggs));
  crdt_free(st);
  obj_free(o);
  tc_put(&a, 3, "plain", "v", NULL);
  sim_run_for(s, 200);
  m.req_id = 4;
  m.key.ptr = (const uint8_t *)"plain";
  m.key.len = 5;
  sim_client_send_msg(s, a.handle, &m);
  sim_run_for(s, 200);
  CHECK(a.n == 4);
  if (a.n >= 4)
    CHECK(a.r[3].type == WIRE_ERROR && a.r[3].code == KV_ETYPE);
  kvbuf_free(&op1);
  kvbuf_free(&op2);
  sim_free(s);
}

/* Hints: node f keeps one for primary p[2] (down); f restarts. */
typedef struct tc_rehome {
  int p[3];
  int f;
  int live; /* a node whose ring view the checks use */
} tc_rehome;

static bool tc_hint_gone(void *arg, sim *s) {
  tc_rehome *t = arg;
  return sim_store_hints(s, t->f) == 0;
}

static bool tc_p2_gone(void *arg, sim *s) {
  tc_rehome *t = arg;
  const ring *rg = gossip_ring(node_gossip(sim_node_core(s, t->live)));
  return ring_node_index(rg, sim_node_name(s, t->p[2])) < 0;
}

/* A hint for a node removed while down goes to the key's new primaries
 * (it would otherwise wait forever), and a restarted node still counts
 * the hints it keeps. */
static void test_hints_rehomed(void) {
  sim_config cfg;
  sim_config_default(&cfg, 21, 4);
  cfg.log_level = NODE_LOG_ERROR;
  cfg.hint_interval_ms = 100;
  sim *s = sim_new(&cfg);
  if (!s || !sim_wait_ring(s, 20000)) {
    CHECK(!"the cluster did not form");
    sim_free(s);
    return;
  }
  tc_rehome t;
  const ring *rg = gossip_ring(node_gossip(sim_node_core(s, 0)));
  size_t idx[NODE_FANOUT_MAX], np = 0;
  ring_preflist(rg, ring_partition(rg, "k", 1), idx, NODE_FANOUT_MAX, &np);
  for (int i = 0; i < 3; i++)
    t.p[i] = sim_node_by_name(s, ring_node_id(rg, idx[i]));
  t.f = 0 + 1 + 2 + 3 - t.p[0] - t.p[1] - t.p[2];
  t.live = t.p[0];
  sim_crash(s, t.p[2], false);
  CHECK(sim_run_while_not(s, tc_sees_down, t.p, 20000));
  tc_client c;
  tc_open(&c, s, t.p[0], true);
  sim_run_for(s, 20);
  tc_put(&c, 1, "k", "v", NULL);
  sim_run_for(s, 200);
  CHECK(c.n == 1 && c.r[0].type == WIRE_PUT_OK);
  CHECK(sim_store_hints(s, t.f) == 1);
  /* A restart keeps counting it. */
  sim_crash(s, t.f, false);
  CHECK(sim_restart(s, t.f) == 0);
  CHECK(sim_node_core(s, t.f) &&
        node_hints_pending(sim_node_core(s, t.f)) == 1);
  sim_run_for(s, 2000);
  CHECK(sim_store_hints(s, t.f) == 1); /* p[2] is down: nowhere to go */
  /* Remove p[2]: its partitions get new owners, and f's hint follows. */
  sim_client_admin(s, c.handle, 2, "remove", "node", sim_node_name(s, t.p[2]));
  CHECK(sim_run_while_not(s, tc_p2_gone, &t, 30000));
  CHECK(sim_run_while_not(s, tc_hint_gone, &t, 30000));
  CHECK(node_hints_pending(sim_node_core(s, t.f)) == 0);
  /* Every primary of k under the new ring holds the write. */
  sim_run_for(s, 2000);
  rg = gossip_ring(node_gossip(sim_node_core(s, t.live)));
  np = 0;
  ring_preflist(rg, ring_partition(rg, "k", 1), idx, NODE_FANOUT_MAX, &np);
  CHECK(np == 3);
  for (size_t i = 0; i < np && i < 3; i++) {
    int q = sim_node_by_name(s, ring_node_id(rg, idx[i]));
    bool present = false;
    CHECK(q >= 0 && q != t.p[2]);
    CHECK(tc_siblings(s, q, "k", &present) == 1 && present);
  }
  sim_free(s);
}

/* A client that sends anything before HELLO gets ERROR and is closed. */
static void test_hello_first(void) {
  sim *s = tc_cluster(17, 0);
  if (!s)
    return;
  tc_client c;
  tc_open(&c, s, 0, false);
  tc_get(&c, 5, "k", NULL);
  sim_run_for(s, 100);
  CHECK(c.n == 1);
  if (c.n >= 1) {
    CHECK(c.r[0].type == WIRE_ERROR && c.r[0].code == KV_EPROTO);
    CHECK(c.r[0].req_id == 5);
  }
  CHECK(c.closed);
  sim_free(s);
}

/* Malformed frames get ERROR without affecting another client. */
static void test_malformed_isolated(void) {
  sim *s = tc_cluster(18, 0);
  if (!s)
    return;
  tc_client bad, good;
  tc_open(&bad, s, 0, true);
  tc_open(&good, s, 0, true);
  sim_run_for(s, 20);
  /* A PUT whose key is an integer, and a body that is not msgpack. */
  kvbuf b;
  kvbuf_init(&b);
  msgpack_packer pk;
  size_t start;
  wire_begin(&b, &pk, &start, WIRE_PUT, 42, 2);
  msgpack_pack_int(&pk, 7);
  msgpack_pack_int(&pk, 8);
  wire_end(&b, start);
  const uint8_t junk[] = {0, 0, 0, 3, 0xc1, 0xc1, 0xc1};
  tc_put(&good, 1, "k", "v", NULL);
  sim_client_send(s, bad.handle, b.data, b.len);
  sim_client_send(s, bad.handle, junk, sizeof(junk));
  kvbuf_free(&b);
  sim_run_for(s, 200);
  CHECK(good.n == 1);
  if (good.n >= 1)
    CHECK(good.r[0].type == WIRE_PUT_OK && good.r[0].req_id == 1);
  CHECK(!good.closed);
  CHECK(bad.n == 2);
  if (bad.n >= 2) {
    CHECK(bad.r[0].type == WIRE_ERROR && bad.r[0].req_id == 42);
    CHECK(bad.r[1].type == WIRE_ERROR);
  }
  CHECK(!bad.closed); /* a greeted client survives a bad frame */
  tc_get(&bad, 43, "k", NULL);
  sim_run_for(s, 100);
  CHECK(bad.n == 3);
  if (bad.n >= 3)
    CHECK(bad.r[2].type == WIRE_GET_OK && bad.r[2].nsiblings == 1);
  sim_free(s);
}

/* A replica holding the version the coordinator started from stores the
 * coordinator's object as it came (REPL_PUT's base); one that missed a
 * write merges instead, and both end with the same object. */
static void test_replica_fast_path(void) {
  sim *s = tc_cluster(21, 3600000);
  if (!s)
    return;
  int p[3];
  tc_primaries(s, "k", p);
  tc_client a;
  tc_open(&a, s, p[0], true);
  wire_opts w = {.w = 3, .timeout_ms = 300};
  tc_put(&a, 1, "k", "v1", &w);
  sim_run_for(s, 300);
  CHECK(a.n == 1 && a.r[0].type == WIRE_PUT_OK);
  const node_stats *s1 = node_stats_get(sim_node_core(s, p[1]));
  const node_stats *s2 = node_stats_get(sim_node_core(s, p[2]));
  CHECK(s1->repl_puts == 1 && s1->repl_puts_fast == 1);
  CHECK(s2->repl_puts == 1 && s2->repl_puts_fast == 1);
  /* p[2] misses the second write; the third finds it a version behind. */
  tc_filter f[] = {{.to = p[2], .from = -1, .type = WIRE_REPL_PUT,
                    .fate = SIM_DROP},
                   {.fate = -1}};
  sim_set_filter(s, tc_filter_fn, f);
  wire_opts w2 = {.w = 2, .timeout_ms = 300, .flags = WIRE_OPT_REPLACE};
  tc_put(&a, 2, "k", "v2", &w2);
  sim_run_for(s, 300);
  sim_set_filter(s, NULL, NULL);
  tc_put(&a, 3, "k", "v3", &w2);
  sim_run_for(s, 300);
  CHECK(a.n == 3 && a.r[1].type == WIRE_PUT_OK && a.r[2].type == WIRE_PUT_OK);
  CHECK(s1->repl_puts == 3 && s1->repl_puts_fast == 3);
  CHECK(s2->repl_puts == 2 && s2->repl_puts_fast == 1);
  tc_replicas_equal(s, p, "k", 1);
  sim_free(s);
}

typedef struct tc_case {
  const char *name;
  void (*fn)(void);
} tc_case;

int main(void) {
  static const tc_case cases[] = {
      {"put_timeout_counts", test_put_timeout_counts},
      {"late_reply_ignored", test_late_reply_ignored},
      {"duplicate_acks", test_duplicate_acks},
      {"replica_error_fails", test_replica_error_fails},
      {"get_merges_and_repairs", test_get_merges_and_repairs},
      {"pw_pr_unavailable", test_pw_pr_unavailable},
      {"hello_first", test_hello_first},
      {"malformed_isolated", test_malformed_isolated},
      {"hints_rehomed", test_hints_rehomed},
      {"ttl_expires", test_ttl_expires},
      {"typed_set", test_typed_set},
      {"replica_fast_path", test_replica_fast_path},
  };
  int passed = 0, failed = 0;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int failed_before = check_failed;
    cases[i].fn();
    if (check_failed != failed_before) {
      failed++;
      printf("FAIL %s\n", cases[i].name);
    } else {
      passed++;
      printf("ok   %s\n", cases[i].name);
    }
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
