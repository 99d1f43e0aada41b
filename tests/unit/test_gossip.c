/*
 * test_gossip.c: unit tests of gossip/ (membership, phi-accrual detection,
 * ring agreement), all in one process over a tiny simulated network: a
 * queue of messages with delivery times, random latency and loss drawn from
 * a seed. Time is simulated; nothing sleeps. A failing check prints the
 * seed of the simulation it ran in.
 * Depends on: kvgossip (and through it kvring, kvproto).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gossip.h"
#include "kv_err.h"
#include "mp.h"
#include "phi.h"

#define CHECK_SEED cur_seed
#include "unit/check.h"

#define SIM_NODES_MAX 48 /* the large cluster tests use 40 */
#define SIM_QUEUE_MAX 16384
#define SIM_STEP_MS 10
#define SIM_TICK_MS 50
#define SIM_CAPTURE_MAX 64
#define SIM_Q 64

static int passed, failed; /* tests, not checks */
static uint64_t cur_seed;  /* reported by CHECK only */

/* ---- the simulated network ---- */

typedef struct sim sim;

typedef struct sim_node {
  sim *s;
  gossip *g;
  char id[16];
  char addr[32];
  bool up;
  int side; /* partition side: messages cross only between equal sides */
  int ring_changes;
  int member_changes;
} sim_node;

typedef struct sim_msg {
  int to;
  int side; /* the sender's side when sent */
  uint64_t at;
  uint8_t *data;
  size_t len;
} sim_msg;

typedef struct sim_capture {
  uint8_t *data;
  size_t len;
} sim_capture;

struct sim {
  sim_node nodes[SIM_NODES_MAX];
  int n;
  sim_msg *q;
  size_t nq;
  uint64_t now;
  uint64_t rng;
  uint32_t lat_max_ms;
  uint32_t loss_pct;
  size_t overflow;
  size_t bad_receive;
  size_t sent;
  size_t biggest; /* largest payload sent */
  sim_capture cap[SIM_CAPTURE_MAX];
  size_t ncap;
};

static uint64_t sim_rand(sim *s) {
  uint64_t x = s->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return s->rng = x;
}

static void sim_send(void *ctx, const char *addr, const uint8_t *p,
                     size_t len) {
  sim_node *from = ctx;
  sim *s = from->s;
  s->sent++;
  if (len > s->biggest)
    s->biggest = len;
  if (s->ncap < SIM_CAPTURE_MAX) {
    s->cap[s->ncap].data = malloc(len);
    if (s->cap[s->ncap].data) {
      memcpy(s->cap[s->ncap].data, p, len);
      s->cap[s->ncap++].len = len;
    }
  }
  int to = -1;
  for (int i = 0; i < s->n; i++)
    if (strcmp(s->nodes[i].addr, addr) == 0)
      to = i;
  if (to < 0 || !from->up || s->nodes[to].side != from->side)
    return;
  if (s->loss_pct && sim_rand(s) % 100 < s->loss_pct)
    return;
  if (s->nq >= SIM_QUEUE_MAX) {
    s->overflow++;
    return;
  }
  uint8_t *copy = malloc(len);
  if (!copy) {
    s->overflow++;
    return;
  }
  memcpy(copy, p, len);
  uint64_t lat = s->lat_max_ms ? sim_rand(s) % (s->lat_max_ms + 1) : 0;
  s->q[s->nq++] = (sim_msg){.to = to, .side = from->side,
                            .at = s->now + lat, .data = copy, .len = len};
}

static void sim_ring_changed(void *ctx, const ring *r) {
  sim_node *nd = ctx;
  (void)r;
  nd->ring_changes++;
}

static void sim_member_changed(void *ctx, const gossip_member *m) {
  sim_node *nd = ctx;
  (void)m;
  nd->member_changes++;
}

static int sim_init(sim *s, uint64_t seed, uint32_t lat_max_ms,
                    uint32_t loss_pct) {
  memset(s, 0, sizeof(*s));
  s->q = calloc(SIM_QUEUE_MAX, sizeof(*s->q));
  s->rng = seed * 2654435761u + 88172645463325252ull;
  s->lat_max_ms = lat_max_ms;
  s->loss_pct = loss_pct;
  s->now = 1000000; /* not zero: no special meaning of time 0 */
  cur_seed = seed;
  return s->q ? 0 : -1;
}

static void sim_free(sim *s) {
  for (int i = 0; i < s->n; i++)
    gossip_free(s->nodes[i].g);
  for (size_t i = 0; i < s->nq; i++)
    free(s->q[i].data);
  for (size_t i = 0; i < s->ncap; i++)
    free(s->cap[i].data);
  free(s->q);
}

/* Starts (or restarts) node i with the given seeds and saved ring. */
static int sim_start(sim *s, int i, const char *const *seeds, size_t nseeds,
                     const ring *saved, uint64_t incarnation) {
  sim_node *nd = &s->nodes[i];
  if (i >= s->n)
    s->n = i + 1;
  gossip_free(nd->g);
  nd->s = s;
  snprintf(nd->id, sizeof(nd->id), "n%d", i + 1);
  snprintf(nd->addr, sizeof(nd->addr), "10.0.0.%d:7000", i + 1);
  gossip_config cfg = {
      .id = nd->id,
      .region = "eu",
      .zone = "",
      .client_addr = "client",
      .peer_addr = nd->addr,
      .incarnation = incarnation,
      .seeds = seeds,
      .nseeds = nseeds,
      .q = SIM_Q,
      .n = 3,
      .rng_seed = sim_rand(s),
  };
  gossip_io io = {.ctx = nd,
                  .send = sim_send,
                  .ring_changed = sim_ring_changed,
                  .member_changed = sim_member_changed};
  nd->up = true;
  nd->ring_changes = 0;
  nd->member_changes = 0;
  nd->g = gossip_new(&cfg, &io, saved, s->now);
  return nd->g ? 0 : -1;
}

static void sim_kill(sim *s, int i) { s->nodes[i].up = false; }

/* Advances the simulation by one step: delivers due messages, ticks. */
static void sim_step(sim *s) {
  s->now += SIM_STEP_MS;
  size_t i = 0;
  while (i < s->nq) {
    if (s->q[i].at > s->now) {
      i++;
      continue;
    }
    sim_msg m = s->q[i];
    s->q[i] = s->q[--s->nq];
    sim_node *nd = &s->nodes[m.to];
    if (nd->up && nd->side == m.side &&
        gossip_receive(nd->g, m.data, m.len, s->now) != 0)
      s->bad_receive++;
    free(m.data);
    i = 0; /* the queue changed under us; rescan (bounded by its size) */
  }
  if (s->now % SIM_TICK_MS == 0)
    for (int k = 0; k < s->n; k++)
      if (s->nodes[k].up)
        gossip_tick(s->nodes[k].g, s->now);
}

typedef bool (*sim_pred)(sim *s, void *arg);

/* Runs until pred holds or max_ms passed. Returns ms taken, or -1. */
static long sim_run_until(sim *s, uint64_t max_ms, sim_pred pred, void *arg) {
  uint64_t start = s->now;
  while (s->now - start <= max_ms) {
    if (pred(s, arg))
      return (long)(s->now - start);
    sim_step(s);
  }
  return -1;
}

static void sim_run(sim *s, uint64_t ms) {
  uint64_t end = s->now + ms;
  while (s->now < end)
    sim_step(s);
}

/* Every up node sees every up node valid and alive, and all up nodes hold
 * one identical ring containing exactly the up nodes. */
static bool sim_converged(sim *s, void *arg) {
  (void)arg;
  const ring *first = NULL;
  int up = 0;
  for (int i = 0; i < s->n; i++)
    up += s->nodes[i].up;
  for (int i = 0; i < s->n; i++) {
    if (!s->nodes[i].up)
      continue;
    const gossip *g = s->nodes[i].g;
    const ring *r = gossip_ring(g);
    if ((int)ring_node_count(r) != up)
      return false;
    if (!first)
      first = r;
    else if (!ring_equal(first, r))
      return false;
    for (int j = 0; j < s->n; j++) {
      if (!s->nodes[j].up)
        continue;
      const gossip_member *m = gossip_find(g, s->nodes[j].id);
      if (!m || m->status != GOSSIP_VALID || !m->alive ||
          ring_node_index(r, s->nodes[j].id) < 0)
        return false;
    }
  }
  for (uint32_t p = 0; first && p < ring_q(first); p++)
    if (ring_owner(first, p) < 0)
      return false;
  return first != NULL;
}

static int sim_start_cluster(sim *s, int count) {
  static const char *const seeds[] = {"10.0.0.1:7000", "10.0.0.2:7000"};
  for (int i = 0; i < count; i++)
    if (sim_start(s, i, seeds, 2, NULL, 1))
      return -1;
  return 0;
}

/* ---- phi ---- */

static int test_phi_detector(void) {
  gossip_phi d;
  gossip_phi_init(&d, 1000, 500);
  CHECK(gossip_phi_value(&d, 5000) == 0.0);
  uint64_t t = 10000;
  for (int i = 0; i < 30; i++, t += 1000)
    gossip_phi_heartbeat(&d, t);
  t -= 1000; /* last arrival */
  double mean, std;
  gossip_phi_stats(&d, &mean, &std);
  CHECK(fabs(mean - 1000) < 1e-9);
  CHECK(std == 500); /* the floor */
  CHECK(gossip_phi_value(&d, t + 500) < 0.5);
  CHECK(gossip_phi_value(&d, t + 1000) < 1.0);
  double prev = -1;
  for (uint64_t dt = 0; dt <= 20000; dt += 100) {
    double phi = gossip_phi_value(&d, t + dt);
    CHECK(isfinite(phi) && phi >= 0);
    CHECK(phi >= prev);
    prev = phi;
  }
  CHECK(gossip_phi_value(&d, t + 3000) < 8.0);
  CHECK(gossip_phi_value(&d, t + 4000) > 8.0);
  CHECK(gossip_phi_value(&d, t + 100000) > 100.0);
  /* A gap of more than GOSSIP_PHI_GAP_MAX_INTERVALS is not a sample. */
  gossip_phi_heartbeat(&d, t + 60000);
  gossip_phi_stats(&d, &mean, &std);
  CHECK(fabs(mean - 1000) < 1e-9);
  /* Jittery arrivals raise the deviation above the floor. */
  gossip_phi j;
  gossip_phi_init(&j, 1000, 10);
  for (int i = 0; i < 40; i++)
    gossip_phi_heartbeat(&j, 1000 + (uint64_t)i * 1000 + (i % 2) * 300);
  gossip_phi_stats(&j, &mean, &std);
  CHECK(std > 100 && std < 400);
  /* First estimate: one arrival only, mean = interval. */
  gossip_phi f;
  gossip_phi_init(&f, 1000, 500);
  gossip_phi_heartbeat(&f, 7000);
  CHECK(gossip_phi_value(&f, 8000) < 1.0);
  CHECK(gossip_phi_value(&f, 12000) > 8.0);
  return 0;
}

/* Phi as gossip reports it: low under regular heartbeats, rising with
 * silence. */
static int test_phi_in_gossip(void) {
  sim s;
  CHECK(sim_init(&s, 11, 50, 0) == 0);
  CHECK(sim_start_cluster(&s, 2) == 0);
  CHECK(sim_run_until(&s, 5000, sim_converged, NULL) >= 0);
  double max_phi = 0;
  for (int i = 0; i < 2000; i++) {
    sim_step(&s);
    const gossip_member *m = gossip_find(s.nodes[0].g, "n2");
    CHECK(m && m->alive);
    if (m->phi > max_phi)
      max_phi = m->phi;
  }
  CHECK(max_phi < 3.0);
  sim_kill(&s, 1);
  double prev = 0;
  for (int i = 0; i < 1000; i++) {
    sim_step(&s);
    const gossip_member *m = gossip_find(s.nodes[0].g, "n2");
    CHECK(m->phi >= prev - 1e-9 || i < 30);
    prev = m->phi;
  }
  CHECK(prev > 20);
  CHECK(!gossip_alive(s.nodes[0].g, "n2"));
  CHECK(strcmp(gossip_status_name(GOSSIP_VALID, false), "down") == 0);
  sim_free(&s);
  return 0;
}

/* ---- convergence ---- */

static int converge(int count, uint64_t seed, uint32_t loss, long *took) {
  sim s;
  CHECK(sim_init(&s, seed, 200, loss) == 0);
  CHECK(sim_start_cluster(&s, count) == 0);
  *took = sim_run_until(&s, 5000, sim_converged, NULL);
  if (*took < 0)
    for (int i = 0; i < count; i++)
      fprintf(stderr, "  %s: ring v%llu %zu nodes, %zu members\n",
              s.nodes[i].id,
              (unsigned long long)ring_version(gossip_ring(s.nodes[i].g)),
              ring_node_count(gossip_ring(s.nodes[i].g)),
              gossip_member_count(s.nodes[i].g));
  CHECK(*took >= 0);
  CHECK(s.bad_receive == 0 && s.overflow == 0);
  /* One ring: every node saw the same ring version, one claimant. */
  const char *c = gossip_claimant(s.nodes[0].g);
  CHECK(strcmp(c, "n1") == 0);
  sim_free(&s);
  return 0;
}

static int test_converge3(void) {
  long worst = 0, took;
  for (uint64_t seed = 1; seed <= 20; seed++) {
    if (converge(3, seed, 0, &took))
      return 1;
    if (took > worst)
      worst = took;
  }
  printf("  3 nodes converge: worst %ld ms over 20 seeds\n", worst);
  return 0;
}

static int test_converge5(void) {
  long worst = 0, took;
  for (uint64_t seed = 100; seed < 120; seed++) {
    if (converge(5, seed, 0, &took))
      return 1;
    if (took > worst)
      worst = took;
  }
  printf("  5 nodes converge: worst %ld ms over 20 seeds\n", worst);
  return 0;
}

/* ---- failure detection ---- */

typedef struct down_arg {
  int victim;
} down_arg;

static bool sim_all_see_down(sim *s, void *arg) {
  const down_arg *a = arg;
  for (int i = 0; i < s->n; i++)
    if (s->nodes[i].up && gossip_alive(s->nodes[i].g, s->nodes[a->victim].id))
      return false;
  return true;
}

static int kill_detected(uint32_t loss_pct, uint64_t seed0, long limit_ms) {
  long worst = 0;
  for (uint64_t seed = seed0; seed < seed0 + 10; seed++) {
    sim s;
    CHECK(sim_init(&s, seed, 200, loss_pct) == 0);
    CHECK(sim_start_cluster(&s, 5) == 0);
    CHECK(sim_run_until(&s, 5000, sim_converged, NULL) >= 0);
    sim_run(&s, 20000);
    down_arg a = {.victim = (int)(seed % 5)};
    sim_kill(&s, a.victim);
    long took = sim_run_until(&s, 10000, sim_all_see_down, &a);
    CHECK(took >= 0);
    CHECK(took <= limit_ms);
    if (took > worst)
      worst = took;
    sim_free(&s);
  }
  printf("  killed node seen down by all (%u%% loss): worst %ld ms over 10 "
         "seeds\n",
         loss_pct, worst);
  return 0;
}

static int test_kill_detected(void) { return kill_detected(0, 200, 5000); }

/* With 10% loss the last heartbeat may come late (relayed); the same 5 s
 * hold. */
static int test_kill_detected_lossy(void) {
  return kill_detected(10, 250, 5000);
}

static int test_no_false_down(void) {
  size_t sent = 0;
  for (uint64_t seed = 300; seed < 305; seed++) {
    sim s;
    CHECK(sim_init(&s, seed, 200, 10) == 0);
    CHECK(sim_start_cluster(&s, 5) == 0);
    CHECK(sim_run_until(&s, 10000, sim_converged, NULL) >= 0);
    double max_phi = 0;
    uint64_t end = s.now + 60000;
    while (s.now < end) {
      sim_step(&s);
      for (int i = 0; i < s.n; i++)
        for (size_t k = 0; k < gossip_member_count(s.nodes[i].g); k++) {
          const gossip_member *m = gossip_member_at(s.nodes[i].g, k);
          CHECK(m->alive);
          if (m->phi > max_phi)
            max_phi = m->phi;
        }
    }
    CHECK(sim_converged(&s, NULL));
    sent += s.sent;
    printf("  60 s, 0-200 ms latency, 10%% loss, seed %llu: max phi %.2f\n",
           (unsigned long long)seed, max_phi);
    sim_free(&s);
  }
  printf("  (%zu messages sent in 5 x 60 s)\n", sent);
  return 0;
}

/* ---- join, leave, remove, merge, restart ---- */

static int test_join_running(void) {
  long worst = 0;
  for (uint64_t seed = 400; seed < 410; seed++) {
    sim s;
    CHECK(sim_init(&s, seed, 200, 0) == 0);
    CHECK(sim_start_cluster(&s, 5) == 0);
    CHECK(sim_run_until(&s, 5000, sim_converged, NULL) >= 0);
    sim_run(&s, 5000);
    uint64_t v = ring_version(gossip_ring(s.nodes[0].g));
    static const char *const seeds[] = {"10.0.0.3:7000"};
    CHECK(sim_start(&s, 5, seeds, 1, NULL, 1) == 0);
    long took = sim_run_until(&s, 5000, sim_converged, NULL);
    CHECK(took >= 0);
    CHECK(ring_version(gossip_ring(s.nodes[5].g)) == v + 1);
    CHECK(ring_owned_count(gossip_ring(s.nodes[5].g),
                           (size_t)ring_node_index(gossip_ring(s.nodes[5].g),
                                                   "n6")) >= SIM_Q / 6);
    if (took > worst)
      worst = took;
    sim_free(&s);
  }
  printf("  join into 5 nodes, all agree: worst %ld ms over 10 seeds\n",
         worst);
  return 0;
}

typedef struct out_arg {
  const char *id;
} out_arg;

/* Every up node has id out of its ring and sees it removed; rings agree. */
static bool sim_all_out(sim *s, void *arg) {
  const out_arg *a = arg;
  const ring *first = NULL;
  for (int i = 0; i < s->n; i++) {
    if (!s->nodes[i].up || strcmp(s->nodes[i].id, a->id) == 0)
      continue;
    const ring *r = gossip_ring(s->nodes[i].g);
    const gossip_member *m = gossip_find(s->nodes[i].g, a->id);
    if (ring_node_index(r, a->id) >= 0 || !m || m->status != GOSSIP_REMOVED)
      return false;
    if (!first)
      first = r;
    else if (!ring_equal(first, r))
      return false;
  }
  return true;
}

static int test_leave_remove(void) {
  sim s;
  CHECK(sim_init(&s, 500, 200, 0) == 0);
  CHECK(sim_start_cluster(&s, 5) == 0);
  CHECK(sim_run_until(&s, 5000, sim_converged, NULL) >= 0);
  gossip *g1 = s.nodes[0].g;
  CHECK(gossip_leave(g1, "nobody", s.now) == KV_ENOTFOUND);
  CHECK(gossip_remove(g1, "nobody", s.now) == KV_ENOTFOUND);
  /* n3 leaves (the operator asks n3 itself). */
  CHECK(gossip_leave(s.nodes[2].g, "n3", s.now) == 0);
  CHECK(gossip_leave(s.nodes[2].g, "n3", s.now) == KV_ESTATE);
  out_arg a = {.id = "n3"};
  long took = sim_run_until(&s, 5000, sim_all_out, &a);
  CHECK(took >= 0);
  printf("  leave: n3 out of every ring after %ld ms\n", took);
  CHECK(ring_node_count(gossip_ring(g1)) == 4);
  /* The node that left learns it too. */
  sim_run(&s, 2000);
  CHECK(gossip_self(s.nodes[2].g)->status == GOSSIP_REMOVED);
  CHECK(ring_node_index(gossip_ring(s.nodes[2].g), "n3") < 0);
  /* n4 dies; an operator removes it through n2. */
  sim_kill(&s, 3);
  sim_kill(&s, 2);
  sim_run(&s, 6000);
  CHECK(!gossip_alive(s.nodes[1].g, "n4"));
  CHECK(gossip_remove(s.nodes[1].g, "n4", s.now) == 0);
  CHECK(gossip_remove(s.nodes[1].g, "n4", s.now) == KV_ESTATE);
  a.id = "n4";
  took = sim_run_until(&s, 5000, sim_all_out, &a);
  CHECK(took >= 0);
  printf("  remove: dead n4 out of every ring after %ld ms\n", took);
  CHECK(ring_node_count(gossip_ring(g1)) == 3);
  for (uint32_t p = 0; p < SIM_Q; p++)
    CHECK(ring_owner(gossip_ring(g1), p) >= 0);
  /* Removing the claimant itself hands the claim to the next one. */
  CHECK(gossip_remove(s.nodes[1].g, "n1", s.now) == 0);
  a.id = "n1";
  CHECK(sim_run_until(&s, 5000, sim_all_out, &a) >= 0);
  CHECK(strcmp(gossip_claimant(s.nodes[1].g), "n2") == 0);
  CHECK(s.bad_receive == 0);
  sim_free(&s);
  return 0;
}

static int test_merge_one_node_clusters(void) {
  sim s;
  CHECK(sim_init(&s, 600, 200, 0) == 0);
  /* No seeds: each forms a cluster of one at once. */
  CHECK(sim_start(&s, 0, NULL, 0, NULL, 1) == 0);
  static const char *const self_seed[] = {"10.0.0.2:7000"};
  CHECK(sim_start(&s, 1, self_seed, 1, NULL, 1) == 0);
  for (int i = 0; i < 2; i++) {
    const ring *r = gossip_ring(s.nodes[i].g);
    CHECK(ring_node_count(r) == 1 && ring_version(r) == 1);
    CHECK(gossip_self(s.nodes[i].g)->status == GOSSIP_VALID);
    CHECK(ring_owned_count(r, 0) == SIM_Q);
  }
  sim_run(&s, 3000);
  CHECK(ring_node_count(gossip_ring(s.nodes[1].g)) == 1);
  CHECK(gossip_join(s.nodes[1].g, "", s.now) == KV_EINVAL);
  CHECK(gossip_join(s.nodes[1].g, "10.0.0.1:7000", s.now) == 0);
  CHECK(gossip_self(s.nodes[1].g)->status == GOSSIP_JOINING);
  CHECK(gossip_member_count(s.nodes[1].g) == 1);
  long took = sim_run_until(&s, 5000, sim_converged, NULL);
  CHECK(took >= 0);
  printf("  two one-node clusters merged after %ld ms\n", took);
  CHECK(ring_version(gossip_ring(s.nodes[0].g)) == 2);
  /* A node in a bigger cluster cannot join another one. */
  CHECK(gossip_join(s.nodes[0].g, "10.0.0.9:7000", s.now) == KV_ESTATE);
  CHECK(s.nodes[0].ring_changes >= 2 && s.nodes[1].ring_changes >= 2);
  sim_free(&s);
  return 0;
}

/* kvorumd restarts with a new incarnation; the same one is tested too. */
static int restart_with_ring(uint64_t incarnation) {
  sim s;
  CHECK(sim_init(&s, 700 + incarnation, 200, 0) == 0);
  CHECK(sim_start_cluster(&s, 3) == 0);
  CHECK(sim_run_until(&s, 5000, sim_converged, NULL) >= 0);
  sim_run(&s, 5000);
  ring *saved = ring_clone(gossip_ring(s.nodes[1].g));
  CHECK(saved);
  uint64_t v = ring_version(saved);
  sim_kill(&s, 1);
  sim_run(&s, 8000);
  CHECK(!gossip_alive(s.nodes[0].g, "n2"));
  /* Same id; heartbeats start again from 1. */
  static const char *const seeds[] = {"10.0.0.1:7000"};
  CHECK(sim_start(&s, 1, seeds, 1, saved, incarnation) == 0);
  ring_free(saved);
  CHECK(gossip_self(s.nodes[1].g)->status == GOSSIP_VALID);
  int before[3];
  for (int i = 0; i < 3; i++)
    before[i] = s.nodes[i].ring_changes;
  long took = sim_run_until(&s, 5000, sim_converged, NULL);
  CHECK(took >= 0);
  printf("  restarted node (incarnation %llu) valid and alive again after "
         "%ld ms\n",
         (unsigned long long)incarnation, took);
  sim_run(&s, 10000);
  CHECK(sim_converged(&s, NULL));
  /* No ring change anywhere: same version, nothing reported. */
  for (int i = 0; i < 3; i++) {
    CHECK(ring_version(gossip_ring(s.nodes[i].g)) == v);
    CHECK(s.nodes[i].ring_changes == before[i]);
  }
  CHECK(strcmp(gossip_claimant(s.nodes[1].g), "n1") == 0);
  CHECK(gossip_find(s.nodes[0].g, "n2")->incarnation == incarnation);
  sim_free(&s);
  return 0;
}

static int test_restart_with_ring(void) {
  return restart_with_ring(1) || restart_with_ring(2);
}

/* A partition: each side sees the other down; an operator removes n5 on
 * the side that cannot reach it; after healing everyone is alive again and
 * the removal wins over n5's newer heartbeats. */
static int test_partition_heal(void) {
  sim s;
  CHECK(sim_init(&s, 1000, 200, 0) == 0);
  CHECK(sim_start_cluster(&s, 5) == 0);
  CHECK(sim_run_until(&s, 5000, sim_converged, NULL) >= 0);
  sim_run(&s, 5000);
  for (int i = 2; i < 5; i++)
    s.nodes[i].side = 1;
  sim_run(&s, 10000);
  CHECK(!gossip_alive(s.nodes[0].g, "n3") && !gossip_alive(s.nodes[4].g, "n1"));
  CHECK(gossip_alive(s.nodes[0].g, "n2") && gossip_alive(s.nodes[4].g, "n3"));
  CHECK(gossip_remove(s.nodes[1].g, "n5", s.now) == 0);
  sim_run(&s, 3000);
  CHECK(gossip_find(s.nodes[0].g, "n5")->status == GOSSIP_REMOVED);
  CHECK(gossip_find(s.nodes[2].g, "n5")->status == GOSSIP_VALID);
  for (int i = 0; i < 5; i++)
    s.nodes[i].side = 0;
  out_arg a = {.id = "n5"};
  long took = sim_run_until(&s, 5000, sim_all_out, &a);
  CHECK(took >= 0);
  s.nodes[4].up = false; /* n5 stays running but is out: leave it aside */
  long alive = sim_run_until(&s, 5000, sim_converged, NULL);
  CHECK(alive >= 0);
  printf("  partition healed: n5 removed everywhere after %ld ms, all alive "
         "%ld ms later\n",
         took, alive);
  CHECK(s.bad_receive == 0);
  sim_free(&s);
  return 0;
}

/* Nodes started at random times within 3 s still end with one ring. */
static int test_staggered_start(void) {
  static const char *const seeds[] = {"10.0.0.1:7000", "10.0.0.2:7000"};
  long worst = 0;
  for (uint64_t seed = 1400; seed < 1410; seed++) {
    sim s;
    CHECK(sim_init(&s, seed, 200, 0) == 0);
    uint64_t start[5], t0 = s.now, last = 0;
    for (int i = 0; i < 5; i++) {
      start[i] = t0 + (sim_rand(&s) % 300) * SIM_STEP_MS;
      if (start[i] > last)
        last = start[i];
    }
    bool started[5] = {false};
    while (s.now <= last) {
      for (int i = 0; i < 5; i++)
        if (!started[i] && s.now >= start[i]) {
          CHECK(sim_start(&s, i, seeds, 2, NULL, 1) == 0);
          started[i] = true;
        }
      sim_step(&s);
    }
    long took = sim_run_until(&s, 5000, sim_converged, NULL);
    CHECK(took >= 0);
    if (took > worst)
      worst = took;
    sim_free(&s);
  }
  printf("  staggered starts: one ring at most %ld ms after the last start\n",
         worst);
  return 0;
}

/* The only seed starts late: the others formed clusters of one meanwhile;
 * once the seed is up they merge into one ring. */
static int test_late_seed(void) {
  sim s;
  CHECK(sim_init(&s, 1500, 200, 0) == 0);
  static const char *const seeds[] = {"10.0.0.1:7000"};
  s.n = 5;
  for (int i = 1; i < 5; i++)
    CHECK(sim_start(&s, i, seeds, 1, NULL, 1) == 0);
  s.nodes[0].up = false;
  snprintf(s.nodes[0].addr, sizeof(s.nodes[0].addr), "10.0.0.1:7000");
  sim_run(&s, 4000);
  for (int i = 1; i < 5; i++)
    CHECK(ring_node_count(gossip_ring(s.nodes[i].g)) == 1);
  CHECK(sim_start(&s, 0, seeds, 1, NULL, 1) == 0);
  long took = sim_run_until(&s, 10000, sim_converged, NULL);
  CHECK(took >= 0);
  printf("  late seed: four clusters of one merged after %ld ms\n", took);
  sim_free(&s);
  return 0;
}

/* A brand-new node with seeds does not claim a ring of its own at once. */
static int test_boot_waits_for_seeds(void) {
  sim s;
  CHECK(sim_init(&s, 800, 200, 0) == 0);
  static const char *const seeds[] = {"10.0.0.2:7000"};
  CHECK(sim_start(&s, 0, seeds, 1, NULL, 1) == 0);
  CHECK(ring_node_count(gossip_ring(s.nodes[0].g)) == 0);
  sim_run(&s, 1500);
  CHECK(ring_node_count(gossip_ring(s.nodes[0].g)) == 0);
  /* Nobody answers: after the boot rounds it forms a cluster of one. */
  sim_run(&s, 2000);
  CHECK(ring_node_count(gossip_ring(s.nodes[0].g)) == 1);
  sim_free(&s);
  return 0;
}

/* ---- malformed payloads ---- */

typedef struct snapshot {
  size_t count;
  gossip_member m[16];
  uint64_t sv[16];
  ring *r;
  char claimant[RING_NAME_MAX];
} snapshot;

static void snap_take(const gossip *g, snapshot *sn) {
  sn->count = gossip_member_count(g);
  for (size_t i = 0; i < sn->count && i < 16; i++) {
    sn->m[i] = *gossip_member_at(g, i);
    sn->sv[i] = gossip_status_version(g, sn->m[i].id);
  }
  sn->r = ring_clone(gossip_ring(g));
  snprintf(sn->claimant, sizeof(sn->claimant), "%s", gossip_claimant(g));
}

static bool snap_same(const gossip *g, snapshot *sn) {
  snapshot now;
  snap_take(g, &now);
  bool same = now.count == sn->count && ring_equal(now.r, sn->r) &&
              strcmp(now.claimant, sn->claimant) == 0;
  for (size_t i = 0; same && i < sn->count && i < 16; i++)
    same = memcmp(&now.m[i], &sn->m[i], sizeof(now.m[i])) == 0 &&
           now.sv[i] == sn->sv[i];
  ring_free(now.r);
  return same;
}

static int test_malformed(void) {
  sim s;
  CHECK(sim_init(&s, 900, 0, 0) == 0);
  CHECK(sim_start_cluster(&s, 3) == 0);
  CHECK(sim_run_until(&s, 5000, sim_converged, NULL) >= 0);
  /* Collect fresh heartbeats and digests. */
  for (size_t i = 0; i < s.ncap; i++)
    free(s.cap[i].data);
  s.ncap = 0;
  sim_run(&s, 3000);
  CHECK(s.ncap > 4);
  gossip *g = s.nodes[2].g;
  uint64_t now = s.now;
  size_t bad = 0, ok = 0;
  snapshot sn;
  snap_take(g, &sn);
  CHECK(gossip_receive(g, NULL, 0, now) == KV_EPROTO);
  CHECK(gossip_receive(g, s.cap[0].data, GOSSIP_MSG_MAX + 1, now) ==
        KV_EPROTO);
  CHECK(snap_same(g, &sn));
  uint8_t buf[8192];
  for (size_t c = 0; c < s.ncap; c++) {
    const sim_capture *cp = &s.cap[c];
    if (cp->len > sizeof(buf) - 8)
      continue;
    /* Every truncation is rejected and changes nothing. */
    for (size_t len = 0; len < cp->len; len++) {
      memcpy(buf, cp->data, len);
      CHECK(gossip_receive(g, buf, len, now) == KV_EPROTO);
    }
    CHECK(snap_same(g, &sn));
    /* Trailing garbage is rejected. */
    memcpy(buf, cp->data, cp->len);
    buf[cp->len] = 0xc0;
    CHECK(gossip_receive(g, buf, cp->len + 1, now) == KV_EPROTO);
    CHECK(snap_same(g, &sn));
    /* Byte flips: rejected without change, or accepted. */
    for (int k = 0; k < 200; k++) {
      memcpy(buf, cp->data, cp->len);
      size_t at = (size_t)(sim_rand(&s) % cp->len);
      buf[at] ^= (uint8_t)(1 + sim_rand(&s) % 255);
      int rc = gossip_receive(g, buf, cp->len, now);
      CHECK(rc == 0 || rc == KV_EPROTO);
      if (rc) {
        bad++;
        CHECK(snap_same(g, &sn));
      } else {
        ok++;
        ring_free(sn.r);
        snap_take(g, &sn);
      }
    }
  }
  /* Random bytes. */
  for (int k = 0; k < 5000; k++) {
    size_t len = (size_t)(sim_rand(&s) % 300);
    for (size_t i = 0; i < len; i++)
      buf[i] = (uint8_t)sim_rand(&s);
    if (len)
      buf[0] = (uint8_t)(0x90 | (sim_rand(&s) % 16)); /* a fixarray */
    int rc = gossip_receive(g, buf, len, now);
    CHECK(rc == 0 || rc == KV_EPROTO);
    if (rc)
      CHECK(snap_same(g, &sn));
  }
  ring_free(sn.r);
  /* Hand-made: bad status, too many members, long id, wrong version. */
  kvbuf b;
  msgpack_packer pk;
  static const struct {
    uint32_t ver, status, count;
    size_t idlen;
  } cases[] = {{GOSSIP_WIRE_VERSION, 9, 0, 2},
               {GOSSIP_WIRE_VERSION, 1, GOSSIP_MEMBERS_MAX + 1, 2},
               {GOSSIP_WIRE_VERSION, 1, 0, RING_NAME_MAX},
               {GOSSIP_WIRE_VERSION, 1, 0, 0},
               {GOSSIP_WIRE_VERSION + 1, 1, 0, 2}};
  char longid[RING_NAME_MAX + 1];
  memset(longid, 'x', sizeof(longid));
  for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
    kvbuf_init(&b);
    mp_packer_init(&pk, &b);
    msgpack_pack_array(&pk, 8);
    msgpack_pack_uint32(&pk, cases[c].ver);
    msgpack_pack_uint32(&pk, 2);
    msgpack_pack_array(&pk, 10);
    mp_pack_str(&pk, longid, cases[c].idlen);
    mp_pack_cstr(&pk, "eu");
    mp_pack_cstr(&pk, "");
    mp_pack_cstr(&pk, "c");
    mp_pack_cstr(&pk, "10.0.0.9:7000");
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_uint64(&pk, 5);
    msgpack_pack_uint32(&pk, cases[c].status);
    msgpack_pack_uint64(&pk, 0);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_uint64(&pk, 0);
    mp_pack_cstr(&pk, "");
    msgpack_pack_false(&pk);
    msgpack_pack_array(&pk, cases[c].count);
    for (uint32_t i = 0; i < cases[c].count; i++)
      msgpack_pack_nil(&pk);
    msgpack_pack_nil(&pk);
    snap_take(g, &sn);
    CHECK(gossip_receive(g, b.data, b.len, now) == KV_EPROTO);
    CHECK(snap_same(g, &sn));
    ring_free(sn.r);
    kvbuf_free(&b);
  }
  printf("  malformed: %zu flips rejected, %zu accepted; truncations and "
         "5000 random payloads rejected\n",
         bad, ok);
  sim_free(&s);
  return 0;
}

/* A crafted member entry for hand-made digests. */
typedef struct craft {
  const char *id;
  uint64_t incarnation, heartbeat, status_version;
  uint32_t status;
} craft;

static void craft_entry(msgpack_packer *pk, const char *id, size_t idlen,
                        uint64_t inc, uint64_t hb, uint32_t st, uint64_t sv) {
  char addr[GOSSIP_ADDR_MAX];
  snprintf(addr, sizeof(addr), "%.*s:7000", (int)(idlen > 40 ? 40 : idlen),
           id);
  msgpack_pack_array(pk, 10);
  mp_pack_str(pk, id, idlen);
  mp_pack_cstr(pk, "eu");
  mp_pack_cstr(pk, "z");
  mp_pack_cstr(pk, "client");
  mp_pack_cstr(pk, addr);
  msgpack_pack_uint64(pk, inc);
  msgpack_pack_uint64(pk, hb);
  msgpack_pack_uint32(pk, st);
  msgpack_pack_uint64(pk, sv);
  msgpack_pack_uint64(pk, inc);
}

/* Builds a digest from "x" (joining, no ring) carrying one entry. */
/* Starts a hand-made message of kind (gossip.h) with fields elements
 * from id (joining, incarnation 1, heartbeat hb) with no ring: up to the
 * ring version and claimant, in b (initialised here). */
static void craft_begin(kvbuf *b, msgpack_packer *pk, uint32_t fields,
                        uint32_t kind, const char *id, uint64_t hb) {
  kvbuf_init(b);
  mp_packer_init(pk, b);
  msgpack_pack_array(pk, fields);
  msgpack_pack_uint32(pk, GOSSIP_WIRE_VERSION);
  msgpack_pack_uint32(pk, kind);
  craft_entry(pk, id, strlen(id), 1, hb, GOSSIP_JOINING, 0);
  msgpack_pack_uint64(pk, 0); /* ring version */
  mp_pack_cstr(pk, "");       /* claimant */
}

static int craft_digest(kvbuf *b, const craft *c) {
  msgpack_packer pk;
  craft_begin(b, &pk, 8, 2, "x", 1);
  msgpack_pack_false(&pk);
  msgpack_pack_array(&pk, 1);
  craft_entry(&pk, c->id, strlen(c->id), c->incarnation, c->heartbeat,
              c->status, c->status_version);
  msgpack_pack_nil(&pk);
  return b->oom ? -1 : 0;
}

/* Status precedence: a higher status version wins, on a tie the later
 * status wins, and newer heartbeats never undo an operator's change. */
static int test_status_precedence(void) {
  sim s;
  CHECK(sim_init(&s, 1100, 0, 0) == 0);
  CHECK(sim_start(&s, 0, NULL, 0, NULL, 1) == 0);
  gossip *g = s.nodes[0].g;
  static const craft steps[] = {
      /* id, inc, hb, sv, status -> expected status, hb below */
      {"m", 1, 10, 1, GOSSIP_VALID},
      {"m", 1, 20, 0, GOSSIP_JOINING},  /* older status, newer heartbeat */
      {"m", 1, 15, 1, GOSSIP_LEAVING},  /* same version, later status */
      {"m", 1, 30, 1, GOSSIP_VALID},    /* same version, earlier status */
      {"m", 1, 31, 2, GOSSIP_REMOVED},  /* an operator's remove */
      {"m", 2, 1, 1, GOSSIP_VALID},     /* new incarnation, old status */
  };
  static const struct {
    gossip_status status;
    uint64_t hb, inc;
  } want[] = {{GOSSIP_VALID, 10, 1},   {GOSSIP_VALID, 20, 1},
              {GOSSIP_LEAVING, 20, 1}, {GOSSIP_LEAVING, 30, 1},
              {GOSSIP_REMOVED, 31, 1}, {GOSSIP_REMOVED, 1, 2}};
  for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
    kvbuf b;
    CHECK(craft_digest(&b, &steps[i]) == 0);
    CHECK(gossip_receive(g, b.data, b.len, s.now) == 0);
    kvbuf_free(&b);
    const gossip_member *m = gossip_find(g, "m");
    CHECK(m);
    CHECK(m->status == want[i].status);
    CHECK(m->heartbeat == want[i].hb && m->incarnation == want[i].inc);
  }
  CHECK(gossip_status_version(g, "m") == 2);
  /* Our own entry: a copy ahead of us moves our heartbeat past it; a
   * remove of us is taken. */
  craft me = {"n1", 1, 500, 0, GOSSIP_VALID};
  kvbuf b;
  CHECK(craft_digest(&b, &me) == 0);
  CHECK(gossip_receive(g, b.data, b.len, s.now) == 0);
  kvbuf_free(&b);
  CHECK(gossip_self(g)->heartbeat == 501);
  CHECK(gossip_self(g)->status == GOSSIP_VALID);
  me = (craft){"n1", 1, 1, 5, GOSSIP_REMOVED};
  CHECK(craft_digest(&b, &me) == 0);
  CHECK(gossip_receive(g, b.data, b.len, s.now) == 0);
  kvbuf_free(&b);
  CHECK(gossip_self(g)->status == GOSSIP_REMOVED);
  CHECK(gossip_self(g)->heartbeat == 501);
  sim_free(&s);
  return 0;
}

/* A full table of GOSSIP_MEMBERS_MAX members with the longest names still
 * makes a digest under GOSSIP_MSG_MAX that a peer accepts; more members
 * than that are ignored, not stored. */
static int test_table_limits(void) {
  sim s;
  CHECK(sim_init(&s, 1200, 0, 0) == 0);
  CHECK(sim_start(&s, 0, NULL, 0, NULL, 1) == 0);
  static const char *const seeds[] = {"10.0.0.1:7000"};
  CHECK(sim_start(&s, 1, seeds, 1, NULL, 1) == 0);
  gossip *g = s.nodes[0].g;
  kvbuf b;
  msgpack_packer pk;
  craft_begin(&b, &pk, 8, 2, "x", 1);
  msgpack_pack_false(&pk);
  msgpack_pack_array(&pk, GOSSIP_MEMBERS_MAX);
  char id[RING_NAME_MAX];
  for (int i = 0; i < GOSSIP_MEMBERS_MAX; i++) {
    memset(id, 'a' + i % 26, sizeof(id));
    snprintf(id, 8, "%05d", i);
    id[5] = 'y';
    craft_entry(&pk, id, RING_NAME_MAX - 1, 1, 1, GOSSIP_JOINING, 0);
  }
  msgpack_pack_nil(&pk);
  CHECK(!b.oom);
  CHECK(gossip_receive(g, b.data, b.len, s.now) == 0);
  kvbuf_free(&b);
  CHECK(gossip_member_count(g) == GOSSIP_MEMBERS_MAX);
  CHECK(gossip_find(g, "n1") != NULL);
  /* n1 now sends its full table to n2 (the only address the sim knows). */
  s.biggest = 0;
  for (int k = 0; k < 300; k++)
    sim_step(&s);
  size_t biggest = s.biggest;
  CHECK(biggest > (size_t)GOSSIP_MEMBERS_MAX * RING_NAME_MAX);
  CHECK(biggest <= GOSSIP_MSG_MAX);
  CHECK(s.bad_receive == 0);
  CHECK(gossip_member_count(s.nodes[1].g) == GOSSIP_MEMBERS_MAX);
  printf("  a full table of %d members: digest of %zu bytes (max %u)\n",
         GOSSIP_MEMBERS_MAX, biggest, GOSSIP_MSG_MAX);
  sim_free(&s);
  return 0;
}

/* A removed node restarted with a new incarnation (its data lost) joins
 * again. */
static int test_rejoin_after_remove(void) {
  sim s;
  CHECK(sim_init(&s, 1300, 200, 0) == 0);
  CHECK(sim_start_cluster(&s, 3) == 0);
  CHECK(sim_run_until(&s, 5000, sim_converged, NULL) >= 0);
  sim_kill(&s, 2);
  sim_run(&s, 6000);
  CHECK(gossip_remove(s.nodes[0].g, "n3", s.now) == 0);
  out_arg a = {.id = "n3"};
  CHECK(sim_run_until(&s, 5000, sim_all_out, &a) >= 0);
  static const char *const seeds[] = {"10.0.0.1:7000"};
  CHECK(sim_start(&s, 2, seeds, 1, NULL, 2) == 0);
  long took = sim_run_until(&s, 5000, sim_converged, NULL);
  CHECK(took >= 0);
  printf("  removed node back with a new incarnation after %ld ms\n", took);
  sim_free(&s);
  return 0;
}

/* Every node restarts from its saved ring but one, which stays dead: the
 * others never hear from it, yet an operator can still remove it, and a
 * member known only from a peer's table is not taken for alive. */
static int test_remove_unseen_owner(void) {
  sim s;
  CHECK(sim_init(&s, 1400, 200, 0) == 0);
  CHECK(sim_start_cluster(&s, 3) == 0);
  CHECK(sim_run_until(&s, 5000, sim_converged, NULL) >= 0);
  ring *saved = ring_clone(gossip_ring(s.nodes[0].g));
  CHECK(saved && ring_node_index(saved, "n3") >= 0);
  for (int i = 0; i < 3; i++)
    sim_kill(&s, i);
  sim_run(&s, 1000);
  static const char *const seeds[] = {"10.0.0.1:7000", "10.0.0.2:7000"};
  CHECK(sim_start(&s, 0, seeds, 2, saved, 2) == 0);
  CHECK(sim_start(&s, 1, seeds, 2, saved, 2) == 0);
  sim_run(&s, 6000);
  CHECK(gossip_find(s.nodes[0].g, "n3") == NULL);
  CHECK(ring_node_index(gossip_ring(s.nodes[0].g), "n3") >= 0);
  CHECK(gossip_remove(s.nodes[0].g, "n3", s.now) == 0);
  CHECK(gossip_leave(s.nodes[1].g, "n9", s.now) == KV_ENOTFOUND);
  out_arg a = {.id = "n3"};
  long took = sim_run_until(&s, 5000, sim_all_out, &a);
  CHECK(took >= 0);
  printf("  an owner nobody heard from since a restart removed after %ld "
         "ms\n", took);
  ring_free(saved);
  sim_free(&s);
  return 0;
}

/* Two claimants made different rings of the same version, and every node
 * restarted from disk, which keeps the ring but not who made it: the rings
 * still converge to one (the smaller hash of the encoding wins), where
 * before they stayed apart for good (kvsim --churn --remove). */
static int test_restored_rings_tie(void) {
  sim s;
  CHECK(sim_init(&s, 1500, 200, 0) == 0);
  CHECK(sim_start_cluster(&s, 3) == 0);
  CHECK(sim_run_until(&s, 5000, sim_converged, NULL) >= 0);
  ring *a = ring_clone(gossip_ring(s.nodes[0].g));
  ring *b = ring_clone(gossip_ring(s.nodes[0].g));
  CHECK(a && b);
  /* The same members, other owners: b gives n1's partitions away and
   * claims them back. */
  CHECK(ring_remove_node(b, "n1") == 0);
  ring_claim(b);
  CHECK(ring_add_node(b, "n1", NULL, NULL) >= 0);
  ring_claim(b);
  uint64_t v = ring_version(a) + 1;
  ring_set_version(a, v);
  ring_set_version(b, v);
  CHECK(!ring_equal(a, b));
  for (int i = 0; i < 3; i++)
    sim_kill(&s, i);
  sim_run(&s, 1000);
  static const char *const seeds[] = {"10.0.0.1:7000", "10.0.0.2:7000"};
  CHECK(sim_start(&s, 0, seeds, 2, a, 2) == 0);
  CHECK(sim_start(&s, 1, seeds, 2, b, 2) == 0);
  CHECK(sim_start(&s, 2, seeds, 2, b, 2) == 0);
  long took = sim_run_until(&s, 10000, sim_converged, NULL);
  CHECK(took >= 0);
  CHECK(ring_version(gossip_ring(s.nodes[0].g)) == v);
  printf("  rings of one version from unknown claimants agree after %ld "
         "ms\n", took);
  ring_free(a);
  ring_free(b);
  sim_free(&s);
  return 0;
}

static int test_config(void) {
  gossip_io io = {.send = sim_send};
  gossip_config cfg = {.id = "a", .peer_addr = "a:1"};
  CHECK(gossip_new(NULL, &io, NULL, 0) == NULL);
  CHECK(gossip_new(&cfg, NULL, NULL, 0) == NULL);
  gossip_config bad = cfg;
  bad.id = "";
  CHECK(gossip_new(&bad, &io, NULL, 0) == NULL);
  bad = cfg;
  bad.q = 3;
  CHECK(gossip_new(&bad, &io, NULL, 0) == NULL);
  bad = cfg;
  bad.nseeds = GOSSIP_SEEDS_MAX + 1;
  CHECK(gossip_new(&bad, &io, NULL, 0) == NULL);
  gossip_free(NULL);
  gossip *g = gossip_new(&cfg, &io, NULL, 0);
  CHECK(g);
  CHECK(strcmp(gossip_self(g)->region, GOSSIP_REGION_DEFAULT) == 0);
  CHECK(ring_q(gossip_ring(g)) == RING_Q_DEFAULT);
  CHECK(gossip_alive(g, "a") && !gossip_alive(g, "b"));
  CHECK(gossip_find(g, "b") == NULL && gossip_member_at(g, 1) == NULL);
  gossip_free(g);
  CHECK(strcmp(gossip_status_name(GOSSIP_JOINING, true), "joining") == 0);
  CHECK(strcmp(gossip_status_name(GOSSIP_VALID, true), "up") == 0);
  CHECK(strcmp(gossip_status_name(GOSSIP_LEAVING, true), "leaving") == 0);
  CHECK(strcmp(gossip_status_name(GOSSIP_REMOVED, false), "removed") == 0);
  return 0;
}

/* ---- phi on relayed news ---- */

/* News relayed by others says when the member was alive, which is before
 * it arrives: phi measures the silence from then, a sample is the silence
 * the news ended, and news no newer than what the detector has changes
 * nothing. The deadline is where phi crosses the threshold. */
static int test_phi_evidence(void) {
  gossip_phi d;
  gossip_phi_init(&d, 1000, 500);
  /* First news 3 s old: the first estimate expects news as old again. */
  gossip_phi_evidence(&d, 10000, 7000);
  double mean, std;
  gossip_phi_stats(&d, &mean, &std);
  CHECK(fabs(mean - 4000) < 1e-6);
  CHECK(gossip_phi_value(&d, 10000) < 1.0);
  /* Older news than we have: nothing. */
  gossip_phi before = d;
  gossip_phi_evidence(&d, 10500, 6000);
  CHECK(memcmp(&before, &d, sizeof(d)) == 0);
  /* Regular relayed news, 2.5 s old, every second. */
  for (uint64_t t = 11000; t < 80000; t += 1000)
    gossip_phi_evidence(&d, t, t - 2500);
  gossip_phi_stats(&d, &mean, &std);
  CHECK(fabs(mean - 3500) < 100); /* silence ended: 1 s + 2.5 s of age */
  uint64_t last = 79000 - 2500;
  double y = gossip_phi_y(8.0);
  uint64_t dl = gossip_phi_deadline(&d, y);
  CHECK(dl > last + 3500 && dl < last + 10000);
  CHECK(gossip_phi_value(&d, dl - 1) < 8.0);
  CHECK(gossip_phi_value(&d, dl) >= 8.0 - 1e-9);
  /* y inverts the model for any threshold. */
  for (double phi = 0.5; phi < 20; phi += 1.5) {
    gossip_phi h;
    gossip_phi_init(&h, 1000, 500);
    gossip_phi_heartbeat(&h, 1000);
    uint64_t t = gossip_phi_deadline(&h, gossip_phi_y(phi));
    CHECK(gossip_phi_value(&h, t - 1) < phi);
    CHECK(gossip_phi_value(&h, t) >= phi - 1e-9);
  }
  gossip_phi none;
  gossip_phi_init(&none, 1000, 500);
  CHECK(gossip_phi_deadline(&none, y) == UINT64_MAX);
  return 0;
}

/* ---- a larger cluster: fan-out, vectors, ring deltas ---- */

#define BIG_N 40

/* Every up node sees every up node alive (the large cluster's check; the
 * rings are checked by sim_converged). */
static bool sim_all_alive(sim *s) {
  for (int i = 0; i < s->n; i++) {
    if (!s->nodes[i].up)
      continue;
    for (int j = 0; j < s->n; j++)
      if (s->nodes[j].up && !gossip_alive(s->nodes[i].g, s->nodes[j].id))
        return false;
  }
  return true;
}

static bool sim_all_alive_p(sim *s, void *arg) {
  (void)arg;
  return sim_all_alive(s);
}

static int start_big(sim *s, int count) {
  static const char *const seeds[] = {"10.0.0.1:7000", "10.0.0.2:7000",
                                      "10.0.0.3:7000"};
  for (int i = 0; i < count; i++)
    if (sim_start(s, i, seeds, 3, NULL, 1))
      return -1;
  return 0;
}

/* 40 nodes (more than GOSSIP_DIRECT_MAX others: bounded fan-out,
 * push-pull): a cold start converges; at 5% loss nobody is taken for down
 * for a minute, while every message stays near 2 bytes per member; a
 * killed node is seen down by all within 10 s; a join and a leave agree
 * within 3 log2 N rounds. */
static int test_large_cluster(void) {
  sim s;
  CHECK(sim_init(&s, 1600, 50, 0) == 0);
  CHECK(start_big(&s, BIG_N) == 0);
  long took = sim_run_until(&s, 30000, sim_converged, NULL);
  CHECK(took >= 0);
  printf("  %d nodes from a cold start: one ring after %ld ms\n", BIG_N, took);
  sim_run(&s, 20000);
  s.loss_pct = 5;
  s.biggest = 0;
  uint64_t end = s.now + 60000;
  while (s.now < end) {
    sim_step(&s);
    if (s.now % 500 == 0)
      CHECK(sim_all_alive(&s));
  }
  size_t steady_max = s.biggest;
  CHECK(steady_max < 2 * BIG_N + 600);
  s.loss_pct = 0;
  down_arg a = {.victim = 17};
  sim_kill(&s, a.victim);
  long down = sim_run_until(&s, 15000, sim_all_see_down, &a);
  CHECK(down >= 0 && down <= 10000);
  CHECK(gossip_remove(s.nodes[3].g, s.nodes[17].id, s.now) == 0);
  out_arg out = {.id = s.nodes[17].id};
  CHECK(sim_run_until(&s, 10000, sim_all_out, &out) >= 0);
  /* log2(41) ~ 5.4: 16 rounds of 1 s. */
  long bound = (long)(3 * log2(BIG_N + 1)) * 1000;
  static const char *const seed[] = {"10.0.0.30:7000"};
  CHECK(sim_start(&s, BIG_N, seed, 1, NULL, 1) == 0);
  uint64_t v0 = ring_version(gossip_ring(s.nodes[0].g));
  long join = -1;
  for (long t = 0; t <= bound + 5000; t += SIM_STEP_MS) {
    bool all = true;
    for (int i = 0; i <= BIG_N && all; i++)
      if (s.nodes[i].up)
        all = ring_node_index(gossip_ring(s.nodes[i].g), s.nodes[BIG_N].id) >=
                  0 &&
              ring_version(gossip_ring(s.nodes[i].g)) > v0;
    if (all) {
      join = t;
      break;
    }
    sim_step(&s);
  }
  CHECK(join >= 0 && join <= bound);
  CHECK(gossip_leave(s.nodes[9].g, s.nodes[9].id, s.now) == 0);
  out.id = s.nodes[9].id;
  long leave = sim_run_until(&s, (uint64_t)bound, sim_all_out, &out);
  CHECK(leave >= 0);
  CHECK(s.bad_receive == 0 && s.overflow == 0);
  printf("  %d nodes, 5%% loss for 60 s: nobody down, largest message %zu "
         "bytes; kill seen by all after %ld ms; join agreed after %ld ms, "
         "leave after %ld ms (bound %ld)\n",
         BIG_N, steady_max, down, join, leave, bound);
  sim_free(&s);
  return 0;
}

/* A node cut off for longer than the recent entries are carried (an
 * operator removed a node meanwhile) disagrees on the table when it comes
 * back: the syncs' hashes differ, recent entries do not help, and whole
 * tables are swapped until they agree; then it sees everyone alive
 * again. */
static int test_table_mismatch_heals(void) {
  sim s;
  CHECK(sim_init(&s, 1700, 50, 0) == 0);
  CHECK(start_big(&s, 30) == 0);
  CHECK(sim_run_until(&s, 30000, sim_converged, NULL) >= 0);
  sim_run(&s, 10000);
  s.nodes[5].side = 1; /* cut off */
  sim_kill(&s, 20);
  sim_run(&s, 8000);
  CHECK(gossip_remove(s.nodes[0].g, s.nodes[20].id, s.now) == 0);
  sim_run(&s, (GOSSIP_RECENT_ROUNDS + 5) * 1000);
  CHECK(gossip_find(s.nodes[5].g, s.nodes[20].id)->status != GOSSIP_REMOVED);
  s.nodes[5].side = 0;
  s.biggest = 0;
  out_arg out = {.id = s.nodes[20].id};
  long took = sim_run_until(&s, 10000, sim_all_out, &out);
  CHECK(took >= 0);
  CHECK(s.biggest > 30 * 30); /* a whole table went over */
  long alive = sim_run_until(&s, 10000, sim_all_alive_p, NULL);
  CHECK(alive >= 0);
  printf("  a node cut off for %d rounds agrees on the table %ld ms after "
         "it is back, sees all alive %ld ms later\n",
         GOSSIP_RECENT_ROUNDS + 13, took, alive);
  sim_free(&s);
  return 0;
}

/* ---- the sync message ---- */

/* Starts a sync (gossip.h) from "x" in b, up to the vector. */
static void craft_sync_head(kvbuf *b, msgpack_packer *pk, uint32_t fields,
                            uint32_t flags) {
  craft_begin(b, pk, fields, 3, "x", 1);
  msgpack_pack_uint64(pk, 0); /* ring hash */
  msgpack_pack_uint32(pk, flags);
  msgpack_pack_uint64(pk, 12345); /* members hash */
  msgpack_pack_uint32(pk, 62);    /* age unit */
}

/* Hand-made syncs: malformed parts are rejected without a change; a
 * vector for another table is no error (it starts the table exchange);
 * fields after the known ones are skipped; the old heartbeat is still
 * taken. */
static int test_sync_wire(void) {
  sim s;
  CHECK(sim_init(&s, 1800, 0, 0) == 0);
  CHECK(sim_start(&s, 0, NULL, 0, NULL, 1) == 0);
  gossip *g = s.nodes[0].g;
  snapshot sn;
  static const uint8_t odd[3] = {1, 2, 3};
  struct {
    int what; /* 0 odd vector, 1 bad ring part, 2 deltas: empty list,
               * 3 whole ring of the wrong hash, 4 ok + trailing fields,
               * 5 vector of another table, 6 REPLY */
    int rc;
  } cases[] = {{0, KV_EPROTO}, {1, KV_EPROTO}, {2, KV_EPROTO}, {3, KV_EPROTO},
               {4, 0},         {5, 0},         {6, 0}};
  for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
    kvbuf b;
    msgpack_packer pk;
    int what = cases[c].what;
    craft_sync_head(&b, &pk, what == 4 ? 13 : 12, what == 6 ? 1 : 0);
    if (what == 0)
      mp_pack_bin(&pk, odd, sizeof(odd));
    else if (what == 5)
      mp_pack_bin(&pk, odd, 2);
    else
      msgpack_pack_nil(&pk);
    msgpack_pack_array(&pk, 0); /* recent entries */
    if (what == 1) {
      msgpack_pack_array(&pk, 2);
      msgpack_pack_uint32(&pk, 7);
      msgpack_pack_nil(&pk);
    } else if (what == 2) {
      msgpack_pack_array(&pk, 4);
      msgpack_pack_uint32(&pk, 1);
      msgpack_pack_uint64(&pk, 1);
      msgpack_pack_uint64(&pk, 1);
      msgpack_pack_array(&pk, 0);
    } else if (what == 3) {
      kvbuf enc;
      kvbuf_init(&enc);
      CHECK(ring_encode(gossip_ring(g), &enc) == 0);
      msgpack_pack_array(&pk, 2);
      msgpack_pack_uint32(&pk, 0);
      mp_pack_bin(&pk, enc.data, enc.len); /* header says version 0 */
      kvbuf_free(&enc);
    } else {
      msgpack_pack_nil(&pk);
    }
    if (what == 4)
      mp_pack_cstr(&pk, "a field of a later version");
    CHECK(!b.oom);
    snap_take(g, &sn);
    size_t sent = s.sent;
    int rc = gossip_receive(g, b.data, b.len, s.now);
    CHECK(rc == cases[c].rc);
    if (rc)
      CHECK(snap_same(g, &sn));
    else
      CHECK(gossip_find(g, "x") != NULL);
    if (what == 5 || what == 6)
      CHECK(s.sent > sent); /* MISMATCH answer, or the asked-for sync */
    ring_free(sn.r);
    kvbuf_free(&b);
  }
  /* A heartbeat (kind 1) of an older node is still taken. */
  kvbuf b;
  msgpack_packer pk;
  craft_begin(&b, &pk, 5, 1, "y", 7);
  CHECK(gossip_receive(g, b.data, b.len, s.now) == 0);
  CHECK(gossip_find(g, "y") && gossip_find(g, "y")->heartbeat == 7);
  kvbuf_free(&b);
  sim_free(&s);
  return 0;
}

typedef struct test_case {
  const char *name;
  int (*fn)(void);
} test_case;

int main(void) {
  static const test_case tests[] = {
      {"phi_detector", test_phi_detector},
      {"phi_in_gossip", test_phi_in_gossip},
      {"config", test_config},
      {"converge3", test_converge3},
      {"converge5", test_converge5},
      {"boot_waits_for_seeds", test_boot_waits_for_seeds},
      {"staggered_start", test_staggered_start},
      {"late_seed", test_late_seed},
      {"remove_unseen_owner", test_remove_unseen_owner},
      {"kill_detected", test_kill_detected},
      {"kill_detected_lossy", test_kill_detected_lossy},
      {"no_false_down", test_no_false_down},
      {"join_running", test_join_running},
      {"leave_remove", test_leave_remove},
      {"merge_one_node_clusters", test_merge_one_node_clusters},
      {"partition_heal", test_partition_heal},
      {"restart_with_ring", test_restart_with_ring},
      {"malformed", test_malformed},
      {"status_precedence", test_status_precedence},
      {"table_limits", test_table_limits},
      {"phi_evidence", test_phi_evidence},
      {"large_cluster", test_large_cluster},
      {"table_mismatch_heals", test_table_mismatch_heals},
      {"sync_wire", test_sync_wire},
      {"rejoin_after_remove", test_rejoin_after_remove},
      {"restored_rings_tie", test_restored_rings_tie},
  };
  for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
    printf("%s\n", tests[i].name);
    fflush(stdout);
    if (tests[i].fn() == 0) {
      passed++;
    } else {
      failed++;
      printf("FAIL %s\n", tests[i].name);
    }
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
