/*
 * sim_scale.c: kvsim-scale, what a membership change costs at N nodes.
 *
 * Runs the real gossip, ring and failure-detection state machines of N
 * nodes (gossip/, ring/; no node core, no storage: the data paths are left
 * out so that 1000 nodes fit in memory and run in seconds) over a simulated
 * network in one process, and measures:
 *
 *   steady    bytes and messages each node sends per second, the largest
 *             message, CPU time spent inside gossip per node and round;
 *   join      a new node starts with one seed: time and rounds until every
 *             node holds the ring with it, partitions moved (ideal Q/N);
 *   leave     a node leaves: the same, until no ring names it;
 *   kill      a node dies: time until every live node marks it down;
 *   remove    the dead node is removed by an operator: the same as leave;
 *   loss      1% of messages lost for 10 simulated minutes: members that a
 *             live node marks down although they run (false down).
 *
 * The cluster starts as after a full restart: every node has the same saved
 * ring of N nodes (3 zones) and saved membership (gossip_members_restore:
 * every member, not heard yet), and the seeds kv-0001..3; measuring starts
 * when every node sees every node alive and phi has a window of samples.
 * --cold starts every node knowing only itself and the seeds instead (the
 * warm-up figure is then what a cold start of N nodes at once costs).
 *
 *   kvsim-scale --nodes N [--partitions Q] [--seed S] [--json] [--check]
 *               [--loss-minutes M] [--loss-pct P] [--interval-ms I]
 *               [--fanout F] [--msg-bound B] [--cold] [-v]
 *
 * --check exits 1 when a figure misses its bound (issue #18): rounds to
 * agree on a join, leave or remove above 3 log2 N, a killed node not down
 * everywhere within 10 s, a false down, a join moving more than 1.1 Q/N
 * partitions, steady gossip above 20 KB/s per node, a message above the
 * bound (--msg-bound, default scale__msg_bound below), or a steady-state
 * message above 2 N + 1 KB. Every run is a pure function of its flags: the
 * seed replays it.
 *
 * Network: one-way latency uniform in 1..SCALE_LAT_MAX_MS, losses drawn
 * from the seed, no reordering beyond what latency gives. Every node ticks
 * every SCALE_TICK_MS at its own phase, so rounds are not in lock-step.
 *
 * Depends on: kvgossip (and through it kvring, kvproto).
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "gossip.h"
#include "mp.h"
#include "rng.h"

#define SCALE_STEP_MS 5     /* the simulated clock advances by this */
#define SCALE_TICK_MS 100   /* gossip_tick period of every node */
#define SCALE_LAT_MAX_MS 20 /* one-way latency, uniform in 1..this */
#define SCALE_ZONES 3
#define SCALE_REGION "eu-west-1"
#define SCALE_SEEDS 3
#define SCALE_WARMUP_MS_MAX 300000u
#define SCALE_WARMUP_SETTLE_MS 20000u /* after all see all: phi windows */
#define SCALE_STEADY_MS 20000u
#define SCALE_CHANGE_MS_MAX 120000u   /* a change that takes longer fails */
#define SCALE_CHANGE_WINDOW_MS 10000u /* bytes of a change: at least this */
#define SCALE_SETTLE_MS 5000u         /* quiet time between experiments */
#define SCALE_DOWN_LIMIT_MS 10000u
#define SCALE_STEADY_BYTES_MAX 20480.0 /* per node and second */
#define SCALE_MOVE_FACTOR 1.1

/* ---- the simulated cluster ---- */

typedef struct scale_msg {
  uint32_t to;
  uint32_t len;
  uint8_t *data;
} scale_msg;

/* The messages due at one step: a slot of the time wheel, in the order
 * they were sent. */
typedef struct scale_slot {
  scale_msg *v;
  size_t n, cap;
} scale_slot;

/* Latency is at most SCALE_LAT_MAX_MS, so a wheel of this many steps
 * holds every message in flight. */
#define SCALE_SLOTS (SCALE_LAT_MAX_MS / SCALE_STEP_MS + 2)

typedef struct scale_node {
  struct scale *s;
  gossip *g;
  char id[16];
  char addr[32]; /* peer address */
  char client_addr[32];
  uint32_t idx;
  uint32_t phase_ms; /* ticks at now % SCALE_TICK_MS == phase */
  bool up;
  bool gone; /* left or removed: not counted for false downs */
} scale_node;

/* What one measuring window saw. */
typedef struct scale_win {
  uint64_t start_ms;
  uint64_t bytes, msgs;
  uint64_t cpu_ns; /* in the steps: gossip_tick, gossip_receive, delivery */
  size_t max_msg;
} scale_win;

typedef struct scale {
  uint32_t n;   /* nodes at the start */
  uint32_t cap; /* slots: n + 1 (the joiner) */
  uint32_t q;
  uint32_t interval_ms;
  uint32_t fanout;
  uint32_t loss_pm; /* per mille */
  uint64_t seed, rng;
  bool verbose;
  scale_node *nodes;
  uint32_t nnodes; /* started so far */
  uint64_t now;
  scale_slot wheel[SCALE_SLOTS]; /* slot (t / SCALE_STEP_MS) % SCALE_SLOTS */
  scale_win win;                 /* the window being measured */
  uint64_t bytes_total;          /* every message ever sent */
  size_t max_msg_total;
  uint64_t false_down; /* live member marked down by a live node */
  uint64_t delivered, lost;
  uint8_t *counting; /* nodes for which false downs count (cap) */
  uint8_t *view;     /* cap x cap: observer i sees member j alive */
} scale;

static uint64_t scale_rand(scale *s) { return kv_splitmix64(&s->rng); }

static uint64_t scale_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double scale_wall_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Queues m for delivery at the step of time at_ms (> now, < now +
 * SCALE_SLOTS steps). */
static int scale_queue(scale *s, uint64_t at_ms, scale_msg m) {
  scale_slot *sl = &s->wheel[(at_ms / SCALE_STEP_MS) % SCALE_SLOTS];
  if (sl->n == sl->cap) {
    size_t cap = sl->cap ? sl->cap * 2 : 1024;
    scale_msg *v = realloc(sl->v, cap * sizeof(*v));
    if (!v)
      return -1;
    sl->v = v;
    sl->cap = cap;
  }
  sl->v[sl->n++] = m;
  return 0;
}

/* Node index of a peer address "10.0.X.Y:7380" (node X * 256 + Y, from
 * 1), or -1. Addresses and names are as long as a real deployment's. */
static int scale_addr_index(const scale *s, const char *addr) {
  if (strncmp(addr, "10.0.", 5) != 0)
    return -1;
  const char *p = addr + 5;
  uint32_t part[2] = {0, 0};
  for (int k = 0; k < 2; k++) {
    if (*p < '0' || *p > '9')
      return -1;
    while (*p >= '0' && *p <= '9')
      part[k] = part[k] * 10 + (uint32_t)(*p++ - '0');
    if (*p++ != (k == 0 ? '.' : ':'))
      return -1;
  }
  uint32_t v = part[0] * 256 + part[1];
  if (v == 0 || v > s->nnodes)
    return -1;
  return (int)(v - 1);
}

/* Writes node i's peer (port 7380) or client (7379) address. */
static void scale_addr(char *buf, size_t cap, uint32_t i, int port) {
  snprintf(buf, cap, "10.0.%u.%u:%d", (i + 1) / 256, (i + 1) % 256, port);
}

static void scale_send(void *ctx, const char *addr, const uint8_t *payload,
                       size_t len) {
  scale_node *from = ctx;
  scale *s = from->s;
  s->win.bytes += len;
  s->win.msgs++;
  s->bytes_total += len;
  if (len > s->win.max_msg)
    s->win.max_msg = len;
  if (len > s->max_msg_total)
    s->max_msg_total = len;
  int to = scale_addr_index(s, addr);
  if (to < 0 || !from->up)
    return;
  if (s->loss_pm && scale_rand(s) % 1000 < s->loss_pm) {
    s->lost++;
    return;
  }
  uint8_t *copy = malloc(len);
  if (!copy)
    return;
  memcpy(copy, payload, len);
  /* Delivered at the first step at or after now + latency. */
  uint64_t lat = 1 + scale_rand(s) % SCALE_LAT_MAX_MS;
  uint64_t at =
      (s->now + lat + SCALE_STEP_MS - 1) / SCALE_STEP_MS * SCALE_STEP_MS;
  if (scale_queue(
          s, at,
          (scale_msg){.to = (uint32_t)to, .len = (uint32_t)len, .data = copy}))
    free(copy);
}

static void scale_member_changed(void *ctx, const gossip_member *m) {
  scale_node *obs = ctx;
  scale *s = obs->s;
  int j = scale_addr_index(s, m->peer_addr);
  if (j < 0)
    return;
  uint8_t *was = &s->view[(size_t)obs->idx * s->cap + (size_t)j];
  bool was_alive = *was;
  *was = m->alive;
  /* Only a change from alive to down counts, of a running member. */
  if (m->alive || !was_alive || !obs->up || m->status == GOSSIP_REMOVED ||
      m->status == GOSSIP_JOINING)
    return;
  if (!s->nodes[j].up || s->nodes[j].gone || !s->counting[j])
    return;
  s->false_down++;
  if (s->verbose) {
    const gossip_member *self = gossip_self(s->nodes[j].g);
    fprintf(stderr,
            "  t=%llu ms: %s marks %s down (phi %.2f; it knows %zu "
            "members, ring v%llu, heartbeat %llu; here %zu, v%llu, "
            "heartbeat %llu)\n",
            (unsigned long long)s->now, obs->id, m->id, m->phi,
            gossip_member_count(s->nodes[j].g),
            (unsigned long long)ring_version(gossip_ring(s->nodes[j].g)),
            (unsigned long long)self->heartbeat, gossip_member_count(obs->g),
            (unsigned long long)ring_version(gossip_ring(obs->g)),
            (unsigned long long)m->heartbeat);
  }
}

/* Node i's zone: SCALE_ZONES zones of one region, round-robin. */
static void scale_zone(char *buf, size_t cap, uint32_t i) {
  snprintf(buf, cap, "%s%c", SCALE_REGION, 'a' + (int)(i % SCALE_ZONES));
}

static int scale_start_node(scale *s, uint32_t i, const ring *saved,
                            const char *const *seeds, size_t nseeds,
                            const kvbuf *members) {
  scale_node *nd = &s->nodes[i];
  nd->s = s;
  nd->idx = i;
  snprintf(nd->id, sizeof(nd->id), "kv-%04u", i + 1);
  scale_addr(nd->addr, sizeof(nd->addr), i, 7380);
  scale_addr(nd->client_addr, sizeof(nd->client_addr), i, 7379);
  char zone[16];
  scale_zone(zone, sizeof(zone), i);
  gossip_config cfg = {
      .id = nd->id,
      .region = SCALE_REGION,
      .zone = zone,
      .client_addr = nd->client_addr,
      .peer_addr = nd->addr,
      .incarnation = 1,
      .seeds = seeds,
      .nseeds = nseeds,
      .q = s->q,
      .n = 3,
      .interval_ms = s->interval_ms,
      .fanout = s->fanout,
      .rng_seed = scale_rand(s),
  };
  gossip_io io = {.ctx = nd,
                  .send = scale_send,
                  .member_changed = scale_member_changed};
  nd->phase_ms = (uint32_t)(scale_rand(s) % (SCALE_TICK_MS / SCALE_STEP_MS)) *
                 SCALE_STEP_MS;
  nd->up = true;
  if (i >= s->nnodes)
    s->nnodes = i + 1;
  uint64_t t0 = scale_cpu_ns();
  nd->g = gossip_new(&cfg, &io, saved, s->now);
  if (nd->g && members &&
      gossip_members_restore(nd->g, members->data, members->len, s->now)) {
    gossip_free(nd->g);
    nd->g = NULL;
  }
  s->win.cpu_ns += scale_cpu_ns() - t0;
  return nd->g ? 0 : -1;
}

/* Advances the clock by one step: delivers what is due, ticks the nodes
 * whose phase it is. */
static void scale_step(scale *s) {
  s->now += SCALE_STEP_MS;
  uint64_t t0 = scale_cpu_ns();
  scale_slot *sl = &s->wheel[(s->now / SCALE_STEP_MS) % SCALE_SLOTS];
  for (size_t k = 0; k < sl->n; k++) { /* nothing is sent into this slot */
    scale_msg m = sl->v[k];
    scale_node *nd = &s->nodes[m.to];
    if (nd->up) {
      gossip_receive(nd->g, m.data, m.len, s->now);
      s->delivered++;
    }
    free(m.data);
  }
  sl->n = 0;
  uint32_t phase = (uint32_t)(s->now % SCALE_TICK_MS);
  for (uint32_t i = 0; i < s->nnodes; i++)
    if (s->nodes[i].up && s->nodes[i].phase_ms == phase)
      gossip_tick(s->nodes[i].g, s->now);
  s->win.cpu_ns += scale_cpu_ns() - t0;
}

static void scale_run(scale *s, uint64_t ms) {
  uint64_t end = s->now + ms;
  while (s->now < end)
    scale_step(s);
}

static void scale_win_start(scale *s) {
  memset(&s->win, 0, sizeof(s->win));
  s->win.start_ms = s->now;
}

static uint32_t scale_live(const scale *s) {
  uint32_t c = 0;
  for (uint32_t i = 0; i < s->nnodes; i++)
    c += s->nodes[i].up;
  return c;
}

/* Bytes per live node and second in the current window. */
static double scale_win_rate(const scale *s, uint64_t bytes) {
  double sec = (double)(s->now - s->win.start_ms) / 1000.0;
  uint32_t live = scale_live(s);
  return sec > 0 && live ? (double)bytes / live / sec : 0;
}

/* True when every up node knows every up node and sees it alive. */
static bool scale_all_see_all(const scale *s) {
  uint32_t live = scale_live(s);
  for (uint32_t i = 0; i < s->nnodes; i++) {
    const scale_node *nd = &s->nodes[i];
    if (!nd->up)
      continue;
    if (gossip_member_count(nd->g) < live)
      return false;
    for (uint32_t j = 0; j < s->nnodes; j++)
      if (s->nodes[j].up && !gossip_alive(nd->g, s->nodes[j].id))
        return false;
  }
  return true;
}

/* ---- one ring change ---- */

typedef bool (*scale_ring_pred)(const ring *r, const char *id);

static bool scale_has(const ring *r, const char *id) {
  return ring_node_index(r, id) >= 0;
}

static bool scale_lacks(const ring *r, const char *id) {
  return ring_node_index(r, id) < 0;
}

typedef struct scale_change {
  long converge_ms; /* -1: did not converge */
  uint32_t rounds;
  uint32_t moved;
  uint64_t version;
  double bytes_per_node_s;
  size_t max_msg;
  bool rings_equal;
} scale_change;

/* Partitions whose owner (by id) differs between a and b. */
static uint32_t scale_moved(const ring *a, const ring *b) {
  uint32_t moved = 0;
  for (uint32_t p = 0; p < ring_q(a) && p < ring_q(b); p++) {
    int oa = ring_owner(a, p), ob = ring_owner(b, p);
    const char *ia = oa >= 0 ? ring_node_id(a, (size_t)oa) : "";
    const char *ib = ob >= 0 ? ring_node_id(b, (size_t)ob) : "";
    moved += strcmp(ia, ib) != 0;
  }
  return moved;
}

/* The claimant in the view of the first up node (its smallest alive valid
 * member), as an index, or -1. */
static int scale_claimant(const scale *s) {
  for (uint32_t i = 0; i < s->nnodes; i++) {
    if (!s->nodes[i].up)
      continue;
    const gossip *g = s->nodes[i].g;
    for (size_t k = 0; k < gossip_member_count(g); k++) {
      const gossip_member *m = gossip_member_at(g, k);
      if (m->alive && m->status == GOSSIP_VALID)
        return scale_addr_index(s, m->peer_addr);
    }
  }
  return -1;
}

/* Runs until every up node but skip holds a ring for which pred(r, id)
 * holds, the first such ring the claimant made. The window (bytes) runs
 * for at least SCALE_CHANGE_WINDOW_MS. before: the claimant's ring when
 * the change started. */
static void scale_await(scale *s, const ring *before, scale_ring_pred pred,
                        const char *id, int skip, scale_change *out) {
  memset(out, 0, sizeof(*out));
  out->converge_ms = -1;
  uint64_t start = s->win.start_ms;
  uint64_t target = 0;
  ring *after = NULL;
  while (s->now - start < SCALE_CHANGE_MS_MAX) {
    scale_step(s);
    if (!target) {
      int c = scale_claimant(s);
      if (c < 0)
        continue;
      const ring *r = gossip_ring(s->nodes[c].g);
      if (!pred(r, id))
        continue;
      target = ring_version(r);
      after = ring_clone(r);
    }
    bool all = true;
    for (uint32_t i = 0; i < s->nnodes && all; i++)
      if (s->nodes[i].up && (int)i != skip &&
          ring_version(gossip_ring(s->nodes[i].g)) < target)
        all = false;
    if (all) {
      out->converge_ms = (long)(s->now - start);
      break;
    }
  }
  if (out->converge_ms >= 0) {
    out->rounds =
        (uint32_t)((out->converge_ms + s->interval_ms - 1) / s->interval_ms);
    out->version = target;
    out->moved = after ? scale_moved(before, after) : 0;
    out->rings_equal = true;
    for (uint32_t i = 0; i < s->nnodes; i++)
      if (s->nodes[i].up && (int)i != skip &&
          ring_version(gossip_ring(s->nodes[i].g)) == target &&
          !ring_equal(gossip_ring(s->nodes[i].g), after))
        out->rings_equal = false;
  }
  while (s->now - start < SCALE_CHANGE_WINDOW_MS)
    scale_step(s);
  out->bytes_per_node_s = scale_win_rate(s, s->win.bytes);
  out->max_msg = s->win.max_msg;
  ring_free(after);
}

/* ---- the experiment ---- */

typedef struct scale_result {
  double warmup_ms;
  double steady_bytes, steady_msgs;
  size_t steady_max_msg;
  double cpu_us_per_round;     /* per node */
  double cpu_ms_per_round_all; /* the whole cluster */
  scale_change join, leave, remove;
  long down_seen_ms;
  double down_seen_median_ms;
  uint64_t false_down_loss; /* during the loss run */
  double loss_bytes;
  double change_bytes;
  size_t max_msg;
  double wall_s;
  long rss_kb;
} scale_result;

static void scale_log(const scale *s, const char *what) {
  if (s->verbose)
    fprintf(stderr, "t=%.1f s: %s\n", (double)s->now / 1000.0, what);
}

/* The saved membership every node restores (gossip.h: [wire version,
 * [entry...]]): the n nodes as they are when the cluster stops, valid,
 * incarnation 1. Each node skips its own entry. */
static int scale_members(const scale *s, kvbuf *out) {
  msgpack_packer pk;
  mp_packer_init(&pk, out);
  msgpack_pack_array(&pk, 2);
  msgpack_pack_uint32(&pk, GOSSIP_WIRE_VERSION);
  msgpack_pack_array(&pk, s->n);
  for (uint32_t i = 0; i < s->n; i++) {
    char id[16], zone[16], peer[32], client[32];
    snprintf(id, sizeof(id), "kv-%04u", i + 1);
    scale_zone(zone, sizeof(zone), i);
    scale_addr(peer, sizeof(peer), i, 7380);
    scale_addr(client, sizeof(client), i, 7379);
    msgpack_pack_array(&pk, 11);
    mp_pack_cstr(&pk, id);
    mp_pack_cstr(&pk, SCALE_REGION);
    mp_pack_cstr(&pk, zone);
    mp_pack_cstr(&pk, client);
    mp_pack_cstr(&pk, peer);
    msgpack_pack_uint64(&pk, 1);            /* incarnation */
    msgpack_pack_uint64(&pk, 0);            /* heartbeat */
    msgpack_pack_uint32(&pk, GOSSIP_VALID); /* status */
    msgpack_pack_uint64(&pk, 0);            /* status version */
    msgpack_pack_uint64(&pk, 1);            /* status incarnation */
    mp_pack_cstr(&pk, "");                  /* software version */
  }
  return out->oom ? -1 : 0;
}

static int scale_experiment(scale *s, double loss_minutes, uint32_t loss_pm,
                            bool cold, scale_result *res) {
  memset(res, 0, sizeof(*res));
  double wall0 = scale_wall_s();
  /* The saved ring of N nodes. */
  ring *saved = ring_new(s->q);
  if (!saved)
    return -1;
  ring_set_n(saved, 3);
  for (uint32_t i = 0; i < s->n; i++) {
    char id[16], zone[16];
    snprintf(id, sizeof(id), "kv-%04u", i + 1);
    scale_zone(zone, sizeof(zone), i);
    if (ring_add_node(saved, id, SCALE_REGION, zone) < 0) {
      fprintf(stderr, "kvsim-scale: the ring takes at most %d nodes\n",
              RING_NODES_MAX);
      ring_free(saved);
      return -1;
    }
  }
  ring_claim(saved);
  ring_set_version(saved, 1);
  static char seedbuf[SCALE_SEEDS][32];
  const char *seeds[SCALE_SEEDS];
  for (int i = 0; i < SCALE_SEEDS; i++) {
    scale_addr(seedbuf[i], sizeof(seedbuf[i]), (uint32_t)i, 7380);
    seeds[i] = seedbuf[i];
  }
  size_t nseeds = s->n < SCALE_SEEDS ? s->n : SCALE_SEEDS;
  kvbuf members;
  kvbuf_init(&members);
  if (!cold && scale_members(s, &members)) {
    ring_free(saved);
    return -1;
  }
  for (uint32_t i = 0; i < s->n; i++)
    if (scale_start_node(s, i, saved, seeds, nseeds, cold ? NULL : &members)) {
      fprintf(stderr, "kvsim-scale: gossip_new failed for node %u\n", i + 1);
      ring_free(saved);
      kvbuf_free(&members);
      return -1;
    }
  ring_free(saved);
  kvbuf_free(&members);

  /* Warm-up: everyone sees everyone, then phi fills its window. */
  scale_log(s, "warm-up");
  uint64_t t0 = s->now;
  while (!scale_all_see_all(s)) {
    scale_run(s, 1000);
    if (s->now - t0 > SCALE_WARMUP_MS_MAX) {
      fprintf(stderr,
              "kvsim-scale: nodes did not learn each other within "
              "%u s (seed %llu)\n",
              SCALE_WARMUP_MS_MAX / 1000, (unsigned long long)s->seed);
      return -1;
    }
  }
  res->warmup_ms = (double)(s->now - t0);
  scale_run(s, SCALE_WARMUP_SETTLE_MS);
  memset(s->counting, 1, s->cap);
  s->false_down = 0;

  /* Steady state. */
  scale_log(s, "steady state");
  scale_win_start(s);
  scale_run(s, SCALE_STEADY_MS);
  res->steady_bytes = scale_win_rate(s, s->win.bytes);
  res->steady_msgs = scale_win_rate(s, s->win.msgs);
  res->steady_max_msg = s->win.max_msg;
  double rounds = (double)SCALE_STEADY_MS / s->interval_ms;
  res->cpu_ms_per_round_all = (double)s->win.cpu_ns / 1e6 / rounds;
  res->cpu_us_per_round = (double)s->win.cpu_ns / 1e3 / rounds / s->n;

  /* A join: a new node with one seed (a random member). */
  scale_log(s, "join");
  int c = scale_claimant(s);
  if (c < 0)
    return -1;
  ring *before = ring_clone(gossip_ring(s->nodes[c].g));
  uint32_t j = s->n;
  uint32_t seed_node = (uint32_t)(scale_rand(s) % s->n);
  const char *jseed[1] = {s->nodes[seed_node].addr};
  scale_win_start(s);
  s->counting[j] = 0; /* not heard of yet: joining */
  if (scale_start_node(s, j, NULL, jseed, 1, NULL))
    return -1;
  if (s->verbose)
    fprintf(stderr, "  %s joins through %s\n", s->nodes[j].id,
            s->nodes[seed_node].id);
  scale_await(s, before, scale_has, s->nodes[j].id, -1, &res->join);
  ring_free(before);
  scale_run(s, SCALE_SETTLE_MS);
  s->counting[j] = 1;

  /* A leave: a random node that is neither the claimant nor the joiner. */
  scale_log(s, "leave");
  uint32_t l;
  do
    l = 1 + (uint32_t)(scale_rand(s) % (s->n - 1));
  while ((int)l == scale_claimant(s));
  c = scale_claimant(s);
  before = ring_clone(gossip_ring(s->nodes[c].g));
  scale_win_start(s);
  if (s->verbose)
    fprintf(stderr, "  %s leaves\n", s->nodes[l].id);
  if (gossip_leave(s->nodes[l].g, s->nodes[l].id, s->now) != 0)
    fprintf(stderr, "kvsim-scale: gossip_leave refused\n");
  s->nodes[l].gone = true;
  scale_await(s, before, scale_lacks, s->nodes[l].id, (int)l, &res->leave);
  ring_free(before);
  s->nodes[l].up = false; /* it left: the process stops */
  scale_run(s, SCALE_SETTLE_MS);

  /* A kill, then the operator removes the dead node. */
  scale_log(s, "kill");
  uint32_t k;
  do
    k = 1 + (uint32_t)(scale_rand(s) % (s->n - 1));
  while (k == l || (int)k == scale_claimant(s));
  s->nodes[k].up = false;
  uint64_t killed_at = s->now;
  if (s->verbose)
    fprintf(stderr, "  %s killed\n", s->nodes[k].id);
  uint64_t *seen = calloc(s->cap, sizeof(*seen));
  if (!seen)
    return -1;
  res->down_seen_ms = -1;
  while (s->now - killed_at < SCALE_CHANGE_MS_MAX) {
    scale_step(s);
    bool all = true;
    for (uint32_t i = 0; i < s->nnodes; i++) {
      if (!s->nodes[i].up)
        continue;
      if (gossip_alive(s->nodes[i].g, s->nodes[k].id)) {
        seen[i] = 0;
        all = false;
      } else if (!seen[i]) {
        seen[i] = s->now - killed_at;
      }
    }
    if (all) {
      res->down_seen_ms = (long)(s->now - killed_at);
      break;
    }
  }
  {
    uint32_t cnt = 0;
    for (uint32_t i = 0; i < s->nnodes; i++)
      if (s->nodes[i].up)
        seen[cnt++] = seen[i];
    for (uint32_t a = 1; a < cnt; a++) /* insertion sort; once */
      for (uint32_t b = a; b > 0 && seen[b - 1] > seen[b]; b--) {
        uint64_t t = seen[b];
        seen[b] = seen[b - 1];
        seen[b - 1] = t;
      }
    res->down_seen_median_ms = cnt ? (double)seen[cnt / 2] : 0;
  }
  free(seen);
  scale_run(s, SCALE_SETTLE_MS);
  scale_log(s, "remove");
  uint32_t op;
  do
    op = (uint32_t)(scale_rand(s) % s->n);
  while (op == k || op == l);
  c = scale_claimant(s);
  before = ring_clone(gossip_ring(s->nodes[c].g));
  scale_win_start(s);
  s->nodes[k].gone = true;
  if (gossip_remove(s->nodes[op].g, s->nodes[k].id, s->now) != 0)
    fprintf(stderr, "kvsim-scale: gossip_remove refused\n");
  scale_await(s, before, scale_lacks, s->nodes[k].id, (int)k, &res->remove);
  ring_free(before);
  scale_run(s, SCALE_SETTLE_MS);

  /* Loss. */
  scale_log(s, "loss");
  uint64_t fd0 = s->false_down;
  s->loss_pm = loss_pm;
  scale_win_start(s);
  scale_run(s, (uint64_t)(loss_minutes * 60000.0));
  res->loss_bytes = scale_win_rate(s, s->win.bytes);
  res->false_down_loss = s->false_down - fd0;
  s->loss_pm = 0;

  res->change_bytes = res->join.bytes_per_node_s;
  if (res->leave.bytes_per_node_s > res->change_bytes)
    res->change_bytes = res->leave.bytes_per_node_s;
  if (res->remove.bytes_per_node_s > res->change_bytes)
    res->change_bytes = res->remove.bytes_per_node_s;
  res->max_msg = s->max_msg_total;
  res->wall_s = scale_wall_s() - wall0;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  res->rss_kb = ru.ru_maxrss;
  return 0;
}

/* The bounds --check holds a run's gossip messages to (docs/scaling.md):
 * any message at most the full state a joining node gets (every member
 * entry, at most SCALE_ENTRY_BYTES_MAX each with the names this simulator
 * uses, and the ring: ~3 bytes per partition and ~40 per node) plus a
 * fixed allowance, unless --msg-bound says otherwise; a message of the
 * steady state at most the news vector (2 bytes per member) plus
 * SCALE_STEADY_EXTRA_MAX (header, the sender's entry). */
#define SCALE_ENTRY_BYTES_MAX 120u
#define SCALE_STEADY_EXTRA_MAX 1024u
static size_t scale__msg_bound(uint32_t n, uint32_t q) {
  return 4096u + (size_t)(n + 2) * (SCALE_ENTRY_BYTES_MAX + 40u) +
         (size_t)q * 3u;
}

static size_t scale__steady_bound(uint32_t n) {
  return 2u * (size_t)n + SCALE_STEADY_EXTRA_MAX;
}

static void scale_print_change(const char *name, const scale_change *c) {
  printf("  %-7s converged in %ld ms (%u rounds), %u partitions moved, "
         "%.0f B/s per node, largest message %zu B%s\n",
         name, c->converge_ms, c->rounds, c->moved, c->bytes_per_node_s,
         c->max_msg, c->rings_equal ? "" : " (RINGS DIFFER)");
}

static void scale_usage(void) {
  fprintf(stderr, "usage: kvsim-scale --nodes N [--partitions Q] [--seed S] "
                  "[--json] [--check]\n"
                  "                   [--loss-minutes M] [--loss-pct P] "
                  "[--interval-ms I] [--fanout F]\n"
                  "                   [--msg-bound BYTES] [--cold] [-v]\n");
}

/* A command-line option: a flag, or one that takes a number. */
typedef struct scale_opt {
  const char *name;
  enum { SCALE_FLAG, SCALE_UINT, SCALE_REAL } kind;
  void *to; /* bool, uint64_t or double */
} scale_opt;

/* Reads argv into the options' variables. Returns 0, or -1 on an unknown
 * option or a missing or bad number. */
static int scale_parse(int argc, char **argv, const scale_opt *opts,
                       size_t nopts) {
  for (int i = 1; i < argc; i++) {
    const scale_opt *o = NULL;
    for (size_t k = 0; k < nopts && !o; k++)
      if (strcmp(argv[i], opts[k].name) == 0)
        o = &opts[k];
    if (!o)
      return -1;
    if (o->kind == SCALE_FLAG) {
      *(bool *)o->to = true;
      continue;
    }
    if (++i >= argc)
      return -1;
    char *end;
    if (o->kind == SCALE_UINT)
      *(uint64_t *)o->to = strtoull(argv[i], &end, 10);
    else
      *(double *)o->to = strtod(argv[i], &end);
    if (end == argv[i] || *end)
      return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  uint64_t a_n = 100, a_q = 0, a_interval = GOSSIP_INTERVAL_MS_DEFAULT;
  uint64_t a_fanout = 0, seed = 1, msg_bound = 0;
  double loss_minutes = 10, loss_pct = 1;
  bool json = false, check = false, verbose = false, cold = false;
  const scale_opt opts[] = {
      {"--json", SCALE_FLAG, &json},
      {"--check", SCALE_FLAG, &check},
      {"-v", SCALE_FLAG, &verbose},
      {"--cold", SCALE_FLAG, &cold},
      {"--nodes", SCALE_UINT, &a_n},
      {"--partitions", SCALE_UINT, &a_q},
      {"--seed", SCALE_UINT, &seed},
      {"--interval-ms", SCALE_UINT, &a_interval},
      {"--fanout", SCALE_UINT, &a_fanout},
      {"--msg-bound", SCALE_UINT, &msg_bound},
      {"--loss-minutes", SCALE_REAL, &loss_minutes},
      {"--loss-pct", SCALE_REAL, &loss_pct},
  };
  if (scale_parse(argc, argv, opts, sizeof(opts) / sizeof(opts[0])) ||
      a_n > 9998 || a_q > RING_Q_MAX || a_interval > 60000 ||
      a_fanout > GOSSIP_FANOUT_MAX) {
    scale_usage();
    return 2;
  }
  uint32_t n = (uint32_t)a_n, q = (uint32_t)a_q;
  uint32_t interval = (uint32_t)a_interval, fanout = (uint32_t)a_fanout;
  if (q == 0) { /* the smallest power of two >= 4N, at least 64 */
    q = 64;
    while (q < 4 * n && q < RING_Q_MAX)
      q *= 2;
  }
  if (n < 4 || n + 1 > RING_NODES_MAX || n > 9998 || interval < 100 ||
      (q & (q - 1)) != 0 || q > RING_Q_MAX || loss_minutes < 0 ||
      loss_pct < 0 || loss_pct > 100) {
    fprintf(stderr,
            "kvsim-scale: need 4 <= N < %d, Q a power of two <= %d, "
            "interval >= 100 ms\n",
            RING_NODES_MAX, RING_Q_MAX);
    return 2;
  }
  if (!msg_bound)
    msg_bound = scale__msg_bound(n, q);

  scale s;
  memset(&s, 0, sizeof(s));
  s.n = n;
  s.cap = n + 1;
  s.q = q;
  s.interval_ms = interval;
  s.fanout = fanout;
  s.seed = seed;
  s.rng = seed * 0x9e3779b97f4a7c15ull + 1;
  s.verbose = verbose;
  s.now = 1000000;
  s.nodes = calloc(s.cap, sizeof(*s.nodes));
  s.counting = calloc(s.cap, 1);
  s.view = calloc((size_t)s.cap * s.cap, 1);
  if (!s.nodes || !s.counting || !s.view)
    return 1;
  scale_result r;
  int rc = scale_experiment(&s, loss_minutes, (uint32_t)(loss_pct * 10 + 0.5),
                            cold, &r);
  if (rc) {
    fprintf(stderr, "kvsim-scale: failed (seed %llu)\n",
            (unsigned long long)seed);
    return 1;
  }
  double ideal = (double)q / (n + 1);
  double log2n = log2((double)n);
  uint32_t rounds_max = (uint32_t)floor(3.0 * log2n);
  if (json) {
    printf("{\"nodes\": %u, \"partitions\": %u, \"seed\": %llu, "
           "\"interval_ms\": %u, \"fanout\": %u, "
           "\"join_converge_ms\": %ld, \"join_rounds\": %u, "
           "\"partitions_moved\": %u, \"partitions_moved_ideal\": %.2f, "
           "\"leave_converge_ms\": %ld, \"leave_rounds\": %u, "
           "\"leave_partitions_moved\": %u, "
           "\"remove_converge_ms\": %ld, \"remove_rounds\": %u, "
           "\"remove_partitions_moved\": %u, "
           "\"down_seen_ms\": %ld, \"down_seen_median_ms\": %.0f, "
           "\"false_down\": %llu, \"false_down_all\": %llu, "
           "\"loss_minutes\": %.2f, \"loss_pct\": %.2f, "
           "\"gossip_bytes_per_node_s\": %.0f, "
           "\"gossip_msgs_per_node_s\": %.2f, "
           "\"gossip_bytes_per_node_s_change\": %.0f, "
           "\"gossip_bytes_per_node_s_join\": %.0f, "
           "\"gossip_bytes_per_node_s_leave\": %.0f, "
           "\"gossip_bytes_per_node_s_remove\": %.0f, "
           "\"gossip_bytes_per_node_s_loss\": %.0f, "
           "\"gossip_message_max_bytes\": %zu, "
           "\"gossip_message_max_bytes_steady\": %zu, "
           "\"gossip_message_bound_bytes\": %zu, "
           "\"gossip_message_steady_bound_bytes\": %zu, "
           "\"cpu_us_per_round\": %.1f, \"cpu_ms_per_round_cluster\": %.2f, "
           "\"warmup_ms\": %.0f, \"wall_s\": %.1f, \"max_rss_kb\": %ld, "
           "\"rounds_max\": %u}\n",
           n, q, (unsigned long long)seed, interval,
           fanout ? fanout : GOSSIP_FANOUT_DEFAULT, r.join.converge_ms,
           r.join.rounds, r.join.moved, ideal, r.leave.converge_ms,
           r.leave.rounds, r.leave.moved, r.remove.converge_ms, r.remove.rounds,
           r.remove.moved, r.down_seen_ms, r.down_seen_median_ms,
           (unsigned long long)r.false_down_loss,
           (unsigned long long)s.false_down, loss_minutes, loss_pct,
           r.steady_bytes, r.steady_msgs, r.change_bytes,
           r.join.bytes_per_node_s, r.leave.bytes_per_node_s,
           r.remove.bytes_per_node_s, r.loss_bytes, r.max_msg, r.steady_max_msg,
           msg_bound, scale__steady_bound(n), r.cpu_us_per_round,
           r.cpu_ms_per_round_all, r.warmup_ms, r.wall_s, r.rss_kb, rounds_max);
  } else {
    printf("kvsim-scale: %u nodes, %u partitions, seed %llu, %u ms rounds\n", n,
           q, (unsigned long long)seed, interval);
    printf("  warm-up  every node saw every node after %.0f ms\n", r.warmup_ms);
    printf("  steady   %.0f B/s and %.1f messages/s per node, largest "
           "message %zu B, %.1f us CPU per node and round\n",
           r.steady_bytes, r.steady_msgs, r.steady_max_msg, r.cpu_us_per_round);
    scale_print_change("join", &r.join);
    printf("           (ideal Q/N = %.2f partitions)\n", ideal);
    scale_print_change("leave", &r.leave);
    printf("  kill     every live node saw it down after %ld ms (median "
           "%.0f ms)\n",
           r.down_seen_ms, r.down_seen_median_ms);
    scale_print_change("remove", &r.remove);
    printf("  loss     %.1f%% for %.1f min: %llu false downs (%llu in the "
           "whole run), %.0f B/s per node\n",
           loss_pct, loss_minutes, (unsigned long long)r.false_down_loss,
           (unsigned long long)s.false_down, r.loss_bytes);
    printf("  largest message %zu B (bound %zu B); wall %.1f s, max RSS "
           "%ld MB\n",
           r.max_msg, msg_bound, r.wall_s, r.rss_kb / 1024);
  }
  int bad = 0;
  if (check) {
    const scale_change *ch[3] = {&r.join, &r.leave, &r.remove};
    const char *names[3] = {"join", "leave", "remove"};
    for (int i = 0; i < 3; i++) {
      if (ch[i]->converge_ms < 0 || ch[i]->rounds > rounds_max) {
        fprintf(stderr, "FAIL %s: %u rounds to agree, bound 3 log2 N = %u\n",
                names[i], ch[i]->rounds, rounds_max);
        bad = 1;
      }
      if (!ch[i]->rings_equal) {
        fprintf(stderr, "FAIL %s: rings of one version differ\n", names[i]);
        bad = 1;
      }
    }
    if (r.join.moved > SCALE_MOVE_FACTOR * q / n) {
      fprintf(stderr, "FAIL join moved %u partitions, bound 1.1 Q/N = %.2f\n",
              r.join.moved, SCALE_MOVE_FACTOR * q / n);
      bad = 1;
    }
    if (r.down_seen_ms < 0 || r.down_seen_ms > (long)SCALE_DOWN_LIMIT_MS) {
      fprintf(stderr,
              "FAIL a killed node seen down by all after %ld ms, "
              "bound %u\n",
              r.down_seen_ms, SCALE_DOWN_LIMIT_MS);
      bad = 1;
    }
    if (s.false_down) {
      fprintf(stderr, "FAIL %llu false downs\n",
              (unsigned long long)s.false_down);
      bad = 1;
    }
    if (r.steady_bytes > SCALE_STEADY_BYTES_MAX) {
      fprintf(stderr, "FAIL steady gossip %.0f B/s per node, bound %.0f\n",
              r.steady_bytes, SCALE_STEADY_BYTES_MAX);
      bad = 1;
    }
    if (r.steady_max_msg > scale__steady_bound(n)) {
      fprintf(stderr,
              "FAIL a steady-state gossip message of %zu B, bound "
              "2 N + %u = %zu\n",
              r.steady_max_msg, SCALE_STEADY_EXTRA_MAX, scale__steady_bound(n));
      bad = 1;
    }
    if (r.max_msg > msg_bound) {
      fprintf(stderr, "FAIL a gossip message of %zu B, bound %zu\n", r.max_msg,
              msg_bound);
      bad = 1;
    }
    if (bad)
      fprintf(stderr,
              "replay: kvsim-scale --nodes %u --partitions %u "
              "--seed %llu --loss-minutes %g -v\n",
              n, q, (unsigned long long)seed, loss_minutes);
  }
  for (uint32_t i = 0; i < s.nnodes; i++)
    gossip_free(s.nodes[i].g);
  for (int k = 0; k < SCALE_SLOTS; k++) {
    for (size_t i = 0; i < s.wheel[k].n; i++)
      free(s.wheel[k].v[i].data);
    free(s.wheel[k].v);
  }
  free(s.nodes);
  free(s.counting);
  free(s.view);
  return bad;
}
