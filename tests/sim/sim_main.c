/*
 * sim_main.c: kvsim, the randomized whole-cluster simulation ("proof under
 * faults").
 *
 *   kvsim --seed S [--seeds COUNT] [--nodes 3..8] [--steps N] [--machine]
 *         [--reap|--no-reap] [--remove] [--churn] [-v]
 *
 * Each seed builds a cluster of 3-5 nodes (N=3 R=2 W=2) in the simulator
 * (sim.h) and lets a few clients issue gets, blind puts, read-modify-write
 * puts and deletes (with and without contexts) while random faults happen:
 * latency changes, loss, duplication, reordering, partitions (isolated
 * node, majority/minority, one-way), process crashes and restarts, clock
 * skew, and (with --machine) machine crashes. Then everything heals, repair
 * runs (short anti-entropy and hint intervals) and the final state is
 * checked against a causal model built from what the clients did:
 *
 *  - every write the coordinator committed has a dot (found by watching its
 *    store); a write's context covers the dots it had seen;
 *  - the expected siblings of a key are the committed dots that no
 *    committed write's context covers;
 *  - [acked]      every acknowledged write is present or causally
 *                 superseded on every primary replica;
 *  - [resurrected] nothing superseded comes back;
 *  - [converged]  all primary replicas of a key are identical (obj_equal);
 *  - [siblings]   the sibling set is exactly the model's;
 *  - [dot-reuse]  a coordinator never hands out a dot twice.
 *
 * With --churn, the ring changes under load: the last node starts only a
 * quarter of the way through and joins (partitions move to it, their old
 * owners hand them off and drop them), and half way through another node
 * is asked to leave (its partitions move back to nodes that may have
 * dropped them before); every acknowledged write must survive both.
 *
 * With --remove, half way through one node dies for good and an operator
 * removes it (kvorum remove): its partitions get new owners, the hints
 * kept for it must follow them, and the checks use the ring without it;
 * writes it alone may have committed are not expected, acknowledged ones
 * are.
 *
 * Machine crashes lose committed but unsynced writes, so with --machine all
 * writes ask for dw=all and only the acked/resurrected/converged properties
 * are checked for acknowledged writes. A failing seed prints the violated
 * property and the command that replays it.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv_err.h"
#include "ring.h"
#include "sim.h"

#define SIMM_KEYS 8
#define SIMM_CLIENTS_MAX 8
#define SIMM_VV_MAX 64
#define SIMM_DOTS_MAX 4
#define SIMM_STEPS_DEFAULT 120 /* client operations per seed */

typedef struct simm_dot {
  uint64_t actor, counter;
} simm_dot;

typedef struct simm_vv {
  uint32_t n;
  simm_dot e[SIMM_VV_MAX];
} simm_vv;

enum { SIMM_PENDING, SIMM_ACKED, SIMM_FAILED, SIMM_UNKNOWN };

typedef struct simm_write {
  uint32_t id;
  int key;
  bool del;
  bool has_ctx;
  simm_vv ctx;
  int status;
  int32_t w, dw;
  int client;
  uint64_t sent_ms;
  uint32_t ndots;
  simm_dot dots[SIMM_DOTS_MAX];
  bool committed[SIMM_DOTS_MAX];
  int coord[SIMM_DOTS_MAX];
} simm_write;

enum { SIMM_C_IDLE, SIMM_C_GET, SIMM_C_WRITE };

typedef struct simm_client {
  int handle; /* sim client, -1 when not connected */
  int state;
  uint64_t req_id;
  uint64_t deadline;
  uint64_t next_ms;
  int key;
  bool rmw;        /* the get is the read of a read-modify-write */
  bool rmw_delete; /* ... which ends in a delete */
  uint32_t write;  /* write id in flight */
} simm_client;

typedef struct simm {
  sim *s;
  uint64_t seed;
  uint32_t nodes;
  bool machine;
  bool reap;
  bool verbose;
  simm_write *w;
  size_t nw, capw;
  simm_client cl[SIMM_CLIENTS_MAX];
  uint32_t nclients;
  uint64_t next_req;
  uint32_t ops_started;
  /* Frame being handled: the write it carries. */
  uint32_t cur_write;
  int cur_node;
  /* Faults. */
  uint64_t heal_at;
  uint64_t restart_at[SIM_NODES_MAX];
  uint64_t next_fault;
  uint32_t violations;
  uint64_t acked, failed, unknown, gets_ok;
  /* --remove: the node crashed for good and removed (-1: none yet), and
   * when to ask for its removal again if the ring still has it. */
  int removed;
  uint64_t remove_retry;
  int op_client; /* the operator's connection, -1: none */
  /* --churn: the node started late that joins a quarter of the way
   * through (-1: none), the node asked to leave half way (-1: none yet),
   * when to ask it again, and the connection the request goes on. */
  int late;
  int left;
  uint64_t leave_retry;
  int leave_client;
} simm;

/* Whether node i is out of the cluster at the end: removed, or left. */
static bool simm_out(const simm *m, int i) {
  return i == m->removed || i == m->left;
}

/* A node that stays in the cluster (whose ring the checks use). */
static int simm_live(const simm *m) {
  for (uint32_t i = 0; i < m->nodes; i++)
    if (!simm_out(m, (int)i) && sim_node_started(m->s, (int)i))
      return (int)i;
  return 0;
}

static void simm_violation(simm *m, const char *prop, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void simm_violation(simm *m, const char *prop, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (m->violations < 20) {
    fprintf(stderr, "seed %" PRIu64 ": VIOLATION [%s] ", m->seed, prop);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
  }
  va_end(ap);
  m->violations++;
}

/* ---- contexts ---- */

/* Parses a context ([version, [[actor, counter]...]]). */
static bool simm_vv_parse(const uint8_t *p, size_t len, simm_vv *vv) {
  mp_reader r;
  uint32_t nf, cnt;
  uint64_t ver;
  vv->n = 0;
  mp_reader_init(&r, p, len);
  if (mp_read_array(&r, &nf) || nf < 2 || mp_read_uint(&r, &ver) ||
      mp_read_array(&r, &cnt))
    return false;
  for (uint32_t i = 0; i < cnt; i++) {
    uint32_t two;
    simm_dot d;
    if (mp_read_array(&r, &two) || two != 2 || mp_read_uint(&r, &d.actor) ||
        mp_read_uint(&r, &d.counter))
      return false;
    if (vv->n < SIMM_VV_MAX)
      vv->e[vv->n++] = d;
  }
  return true;
}

static bool simm_covers(const simm_vv *vv, simm_dot d) {
  for (uint32_t i = 0; i < vv->n; i++)
    if (vv->e[i].actor == d.actor)
      return vv->e[i].counter >= d.counter;
  return false;
}

static bool simm_obj_vv(const obj *o, simm_vv *vv) {
  kvbuf b;
  kvbuf_init(&b);
  bool ok = obj_context(o, &b) == 0 && simm_vv_parse(b.data, b.len, vv);
  kvbuf_free(&b);
  return ok;
}

/* ---- the model ---- */

static simm_write *simm_write_new(simm *m, int key, bool del, int client) {
  if (m->nw == m->capw) {
    m->capw = m->capw ? m->capw * 2 : 256;
    m->w = realloc(m->w, m->capw * sizeof(*m->w));
    if (!m->w) {
      fprintf(stderr, "kvsim: out of memory\n");
      exit(2);
    }
  }
  simm_write *w = &m->w[m->nw++];
  memset(w, 0, sizeof(*w));
  w->id = (uint32_t)m->nw;
  w->key = key;
  w->del = del;
  w->client = client;
  return w;
}

static simm_write *simm_write_get(simm *m, uint32_t id) {
  return id && id <= m->nw ? &m->w[id - 1] : NULL;
}

/* The write whose dot d is, with *idx its dot index, or NULL. */
static simm_write *simm_by_dot(simm *m, int key, simm_dot d, uint32_t *idx) {
  for (size_t i = 0; i < m->nw; i++) {
    simm_write *w = &m->w[i];
    if (w->key != key)
      continue;
    for (uint32_t k = 0; k < w->ndots; k++)
      if (w->dots[k].actor == d.actor && w->dots[k].counter == d.counter) {
        if (idx)
          *idx = k;
        return w;
      }
  }
  return NULL;
}

/* True when a committed write of key has a context that covers d. */
/* A write that survives the loss of any one node: acknowledged by at
 * least two replicas. */
static bool simm_durable(const simm_write *w) {
  return w->status == SIMM_ACKED && w->w != 1;
}

/* Whether a committed write's context covers d (durable_only: a write
 * that survives losing a node, see simm_durable). */
static bool simm_superseded(simm *m, int key, simm_dot d, uint32_t *by,
                            bool durable_only) {
  for (size_t i = 0; i < m->nw; i++) {
    simm_write *w = &m->w[i];
    if (w->key != key || !w->has_ctx || (durable_only && !simm_durable(w)))
      continue;
    bool committed = false;
    for (uint32_t k = 0; k < w->ndots; k++)
      committed |= w->committed[k];
    if (committed && simm_covers(&w->ctx, d)) {
      if (by)
        *by = w->id;
      return true;
    }
  }
  return false;
}

static void simm_key_name(int key, char *buf, size_t cap) {
  snprintf(buf, cap, "key%d", key);
}

/* ---- hooks: learn the dot of every coordinated write ---- */

static void simm_on_frame(void *arg, sim *s, int i, node_conn_kind kind,
                          const wire_msg *msg) {
  simm *m = arg;
  (void)s;
  m->cur_write = 0;
  if (!msg)
    return;
  bool client_write = kind == NODE_CONN_CLIENT &&
                      (msg->type == WIRE_PUT || msg->type == WIRE_DEL);
  bool fwd_write = kind == NODE_CONN_PEER_IN && msg->type == WIRE_COORD_PUT;
  if (!client_write && !fwd_write)
    return;
  const kv_slice *rg = &msg->opts.region;
  if (rg->len < 2 || rg->len > 20 || rg->ptr[0] != 'w')
    return;
  char buf[24];
  memcpy(buf, rg->ptr + 1, rg->len - 1);
  buf[rg->len - 1] = 0;
  m->cur_write = (uint32_t)strtoul(buf, NULL, 10);
  m->cur_node = i;
}

static void simm_on_frame_end(void *arg, sim *s, int i) {
  simm *m = arg;
  (void)s;
  (void)i;
  m->cur_write = 0;
}

static uint64_t simm_on_stage(void *arg, sim *s, int i, uint32_t part,
                              const uint8_t *key, size_t klen,
                              const uint8_t *val, size_t vlen) {
  simm *m = arg;
  (void)key;
  (void)klen;
  if (!m->cur_write || i != m->cur_node || !val)
    return 0;
  simm_write *w = simm_write_get(m, m->cur_write);
  m->cur_write = 0; /* one coordinator write per frame */
  if (!w)
    return 0;
  obj *o = NULL;
  if (obj_decode(val, vlen, &o) != 0)
    return 0;
  uint64_t actor = node_actor_part(sim_node_core(s, i), part);
  simm_dot d = {actor, 0};
  size_t cnt = obj_sibling_count(o);
  for (size_t k = 0; k < cnt; k++) {
    obj_value v;
    if (obj_sibling(o, k, &v) == 0 && v.actor == actor && v.counter > d.counter)
      d.counter = v.counter;
  }
  obj_free(o);
  if (d.counter == 0 || w->ndots >= SIMM_DOTS_MAX)
    return 0;
  uint32_t idx;
  simm_write *other = simm_by_dot(m, w->key, d, &idx);
  if (other)
    simm_violation(m, "dot-reuse",
                   "%s coordinated write %u of key%d with dot (%016" PRIx64
                   ", %" PRIu64 ") that write %u already had",
                   sim_node_name(s, i), w->id, w->key, d.actor, d.counter,
                   other->id);
  w->dots[w->ndots] = d;
  w->coord[w->ndots] = i;
  w->ndots++;
  return ((uint64_t)w->id << 4) | w->ndots;
}

static void simm_on_commit(void *arg, sim *s, int i, uint64_t tag) {
  simm *m = arg;
  (void)s;
  (void)i;
  simm_write *w = simm_write_get(m, (uint32_t)(tag >> 4));
  uint32_t k = (uint32_t)(tag & 0xf);
  if (w && k >= 1 && k <= w->ndots)
    w->committed[k - 1] = true;
}

/* ---- clients ---- */

static void simm_client_fn(void *arg, sim *s, int handle, const wire_msg *msg);

static int simm_pick_up_node(simm *m) {
  int up[SIM_NODES_MAX], n = 0;
  for (uint32_t i = 0; i < m->nodes; i++)
    if (sim_node_up(m->s, (int)i))
      up[n++] = (int)i;
  return n ? up[sim_rand(m->s) % (uint64_t)n] : -1;
}

static simm_client *simm_client_of(simm *m, int handle) {
  for (uint32_t i = 0; i < m->nclients; i++)
    if (m->cl[i].handle == handle)
      return &m->cl[i];
  return NULL;
}

static void simm_connect(simm *m, simm_client *c) {
  int target = simm_pick_up_node(m);
  if (target < 0)
    return;
  c->handle = sim_client_open(m->s, target, simm_client_fn, m);
  if (c->handle >= 0)
    sim_client_hello(m->s, c->handle, m->next_req++);
}

/* The request in flight has no answer: its outcome is unknown. */
static void simm_abandon(simm *m, simm_client *c) {
  if (c->state == SIMM_C_WRITE) {
    simm_write *w = simm_write_get(m, c->write);
    if (w && w->status == SIMM_PENDING) {
      w->status = SIMM_UNKNOWN;
      m->unknown++;
    }
  }
  c->state = SIMM_C_IDLE;
  c->next_ms = sim_now(m->s) + sim_rand_range(m->s, 10, 200);
}

static void simm_opts(simm *m, wire_opts *o, bool write) {
  memset(o, 0, sizeof(*o));
  uint64_t r = sim_rand(m->s) % 100;
  if (write) {
    if (m->machine)
      o->dw = WIRE_Q_ALL;
    else if (r < 10)
      o->w = 1;
    else if (r < 20)
      o->w = WIRE_Q_ALL;
    else if (r < 30)
      o->dw = 1;
  } else {
    if (r < 10)
      o->r = 1;
    else if (r < 20)
      o->r = WIRE_Q_ALL;
  }
  if (sim_rand(m->s) % 10 == 0)
    o->flags |= WIRE_OPT_NO_SLOPPY;
}

static void simm_send_write(simm *m, simm_client *c, int key, bool del,
                            const uint8_t *ctx, size_t ctxlen) {
  simm_write *w = simm_write_new(m, key, del, (int)(c - m->cl));
  char kb[16], vb[32], rb[24];
  simm_key_name(key, kb, sizeof(kb));
  snprintf(vb, sizeof(vb), "v%u", w->id);
  snprintf(rb, sizeof(rb), "w%u", w->id);
  if (ctx && !simm_vv_parse(ctx, ctxlen, &w->ctx))
    simm_violation(m, "context", "a context from GET_OK does not parse");
  w->has_ctx = ctx != NULL;
  w->status = SIMM_PENDING;
  w->sent_ms = sim_now(m->s);
  wire_msg msg = {.type = del ? WIRE_DEL : WIRE_PUT, .req_id = m->next_req++};
  msg.key.ptr = (const uint8_t *)kb;
  msg.key.len = strlen(kb);
  if (!del) {
    msg.value.ptr = (const uint8_t *)vb;
    msg.value.len = strlen(vb);
  }
  msg.context.ptr = ctx;
  msg.context.len = ctx ? ctxlen : 0;
  simm_opts(m, &msg.opts, true);
  w->w = msg.opts.w;
  w->dw = msg.opts.dw;
  msg.opts.region.ptr = (const uint8_t *)rb;
  msg.opts.region.len = strlen(rb);
  c->state = SIMM_C_WRITE;
  c->write = w->id;
  c->req_id = msg.req_id;
  c->deadline = sim_now(m->s) + 5000;
  sim_logf(m->s, "client %d: %s %s as write %u%s via %s",
           (int)(c - m->cl), del ? "DEL" : "PUT", kb, w->id,
           ctx ? " with context" : "",
           sim_node_name(m->s, sim_client_node(m->s, c->handle)));
  sim_client_send_msg(m->s, c->handle, &msg);
}

static void simm_send_get(simm *m, simm_client *c, int key) {
  char kb[16];
  simm_key_name(key, kb, sizeof(kb));
  wire_msg msg = {.type = WIRE_GET, .req_id = m->next_req++};
  msg.key.ptr = (const uint8_t *)kb;
  msg.key.len = strlen(kb);
  simm_opts(m, &msg.opts, false);
  c->state = SIMM_C_GET;
  c->key = key;
  c->req_id = msg.req_id;
  c->deadline = sim_now(m->s) + 5000;
  sim_client_send_msg(m->s, c->handle, &msg);
}

static void simm_client_start(simm *m, simm_client *c) {
  int key = (int)(sim_rand(m->s) % SIMM_KEYS);
  uint64_t r = sim_rand(m->s) % 100;
  m->ops_started++;
  c->rmw = false;
  if (r < 20) {
    simm_send_get(m, c, key);
  } else if (r < 45) {
    simm_send_write(m, c, key, false, NULL, 0);
  } else if (r < 50) {
    simm_send_write(m, c, key, true, NULL, 0);
  } else {
    c->rmw = true;
    c->rmw_delete = r >= 88;
    simm_send_get(m, c, key);
  }
}

static void simm_client_fn(void *arg, sim *s, int handle, const wire_msg *msg) {
  simm *m = arg;
  simm_client *c = simm_client_of(m, handle);
  if (!c)
    return;
  if (!msg) {
    sim_logf(s, "client %d: connection closed", (int)(c - m->cl));
    simm_abandon(m, c);
    sim_client_close(s, handle);
    c->handle = -1;
    return;
  }
  if (msg->type == WIRE_HELLO_OK || c->state == SIMM_C_IDLE ||
      msg->req_id != c->req_id)
    return;
  if (c->state == SIMM_C_WRITE) {
    simm_write *w = simm_write_get(m, c->write);
    if (msg->type == WIRE_PUT_OK || msg->type == WIRE_DEL_OK) {
      w->status = SIMM_ACKED;
      m->acked++;
      sim_logf(s, "client %d: write %u acknowledged", (int)(c - m->cl),
               w->id);
    } else {
      w->status = SIMM_FAILED;
      m->failed++;
      sim_logf(s, "client %d: write %u failed: %.*s", (int)(c - m->cl),
               w->id, (int)msg->text.len, (const char *)msg->text.ptr);
    }
    c->state = SIMM_C_IDLE;
    c->next_ms = sim_now(s) + sim_rand_range(s, 0, 150);
    return;
  }
  /* A get. */
  c->state = SIMM_C_IDLE;
  c->next_ms = sim_now(s) + sim_rand_range(s, 0, 150);
  if (msg->type != WIRE_GET_OK)
    return;
  m->gets_ok++;
  if (c->rmw && msg->context.ptr && msg->context.len) {
    uint8_t ctx[4096];
    size_t len = msg->context.len < sizeof(ctx) ? msg->context.len : 0;
    if (len) {
      memcpy(ctx, msg->context.ptr, len);
      simm_send_write(m, c, c->key, c->rmw_delete, ctx, len);
    }
  } else if (c->rmw) {
    simm_send_write(m, c, c->key, c->rmw_delete, NULL, 0);
  }
}

static void simm_clients_poll(simm *m, bool issue) {
  uint64_t now = sim_now(m->s);
  for (uint32_t i = 0; i < m->nclients; i++) {
    simm_client *c = &m->cl[i];
    if (c->handle >= 0 && !sim_client_connected(m->s, c->handle) &&
        c->state == SIMM_C_IDLE) {
      sim_client_close(m->s, c->handle);
      c->handle = -1;
    }
    if (c->state != SIMM_C_IDLE && now > c->deadline) {
      sim_logf(m->s, "client %d: no answer, giving up", (int)i);
      simm_abandon(m, c);
      if (c->handle >= 0)
        sim_client_close(m->s, c->handle);
      c->handle = -1;
    }
    if (!issue || c->state != SIMM_C_IDLE || now < c->next_ms)
      continue;
    if (c->handle < 0) {
      simm_connect(m, c);
      c->next_ms = now + 5;
      continue;
    }
    simm_client_start(m, c);
  }
}

static bool simm_clients_idle(simm *m) {
  for (uint32_t i = 0; i < m->nclients; i++)
    if (m->cl[i].state != SIMM_C_IDLE)
      return false;
  return true;
}

/* ---- faults ---- */

static uint32_t simm_down_count(simm *m) {
  uint32_t d = 0;
  for (uint32_t i = 0; i < m->nodes; i++)
    d += !sim_node_up(m->s, (int)i);
  return d;
}

static void simm_fault(simm *m) {
  sim *s = m->s;
  uint64_t now = sim_now(s);
  uint64_t r = sim_rand(s) % 100;
  int a = (int)(sim_rand(s) % m->nodes);
  int b = (int)(sim_rand(s) % m->nodes);
  if (r < 20) {
    sim_net net = {.lat_min_ms = 1, .lat_max_ms = 5};
    switch (sim_rand(s) % 4) {
    case 0:
      break;
    case 1:
      net.lat_max_ms = 50;
      break;
    case 2:
      net.lat_min_ms = 20;
      net.lat_max_ms = 300;
      break;
    default:
      net.lat_max_ms = 20;
    }
    net.loss_pm = (uint32_t)(sim_rand(s) % 3 ? 0 : sim_rand(s) % 50);
    net.dup_pm = (uint32_t)(sim_rand(s) % 3 ? 0 : sim_rand(s) % 30);
    net.reorder_pm = (uint32_t)(sim_rand(s) % 2 ? 0 : sim_rand(s) % 100);
    sim_set_net(s, &net);
    sim_logf(s, "fault: latency %u-%u ms, loss %u, dup %u, reorder %u "
             "per mille", net.lat_min_ms, net.lat_max_ms, net.loss_pm,
             net.dup_pm, net.reorder_pm);
  } else if (r < 50 && !m->heal_at) {
    uint64_t k = sim_rand(s) % 3;
    if (k == 0) {
      sim_isolate(s, a);
      sim_logf(s, "fault: %s isolated", sim_node_name(s, a));
    } else if (k == 1) {
      uint32_t side = 0;
      for (uint32_t i = 0; i < m->nodes / 2; i++)
        side |= 1u << ((uint32_t)a + i) % m->nodes;
      sim_split(s, side);
      sim_logf(s, "fault: split, minority mask 0x%x", side);
    } else if (a != b) {
      sim_block(s, a, b, true);
      sim_logf(s, "fault: one-way partition %s -> %s", sim_node_name(s, a),
               sim_node_name(s, b));
    }
    m->heal_at = now + sim_rand_range(s, 500, 4000);
  } else if (r < 75) {
    if (!simm_out(m, a) && sim_node_up(s, a) &&
        simm_down_count(m) + 1 < m->nodes) {
      bool machine = m->machine && sim_rand(s) % 2;
      sim_crash(s, a, machine);
      m->restart_at[a] = now + sim_rand_range(s, 200, 4000);
    }
  } else if (r < 85) {
    int64_t skew = (int64_t)sim_rand_range(s, 0, 10000) - 5000;
    sim_set_skew(s, a, skew);
    sim_logf(s, "fault: %s clock skew %" PRId64 " ms", sim_node_name(s, a),
             skew);
  }
  /* else: a quiet period */
}

static void simm_fault_timers(simm *m) {
  uint64_t now = sim_now(m->s);
  if (m->heal_at && now >= m->heal_at) {
    sim_heal(m->s);
    sim_logf(m->s, "fault: partitions healed");
    m->heal_at = 0;
  }
  for (uint32_t i = 0; i < m->nodes; i++)
    if (m->restart_at[i] && now >= m->restart_at[i] && !simm_out(m, (int)i)) {
      m->restart_at[i] = 0;
      if (!sim_node_up(m->s, (int)i) && sim_restart(m->s, (int)i))
        simm_violation(m, "restart", "%s does not start again",
                       sim_node_name(m->s, (int)i));
    }
}

/* Whether the late node's join is finished, as an operator checks with
 * `kvorum status` before the next ring change: it and a node that was
 * there from the start each have the other in their ring (a late node
 * started while cut off forms a cluster of its own first). Always true
 * without a late node. */
static bool simm_joined(simm *m) {
  if (m->late < 0)
    return true;
  int first = m->late == 0 ? 1 : 0;
  if (!sim_node_up(m->s, m->late) || !sim_node_up(m->s, first))
    return false;
  const ring *a = gossip_ring(node_gossip(sim_node_core(m->s, m->late)));
  const ring *b = gossip_ring(node_gossip(sim_node_core(m->s, first)));
  return ring_node_index(a, sim_node_name(m->s, first)) >= 0 &&
         ring_node_index(b, sim_node_name(m->s, m->late)) >= 0;
}

/* --remove: asks a live node to remove the dead one (again, until its
 * ring no longer has it: a node that still sees it up refuses nothing, but
 * the request may be lost to a partition). */
static void simm_remove_step(simm *m) {
  sim *s = m->s;
  uint64_t now = sim_now(s);
  if (m->removed < 0) {
    int a = (int)(sim_rand(s) % m->nodes);
    /* Not the node that joined late: started while cut off, it forms a
     * cluster of its own first (gossip.h), and acknowledges writes with
     * W clamped to its one node, which removing it would lose. */
    if (a == m->left || a == m->late || !sim_node_started(s, a) ||
        !simm_joined(m))
      return; /* drawn again next step */
    m->removed = a;
    m->restart_at[a] = 0;
    if (sim_node_up(s, a))
      sim_crash(s, a, false);
    sim_logf(s, "fault: %s dies for good; it will be removed",
             sim_node_name(s, a));
    m->remove_retry = now + 500;
    return;
  }
  int live = simm_live(m);
  if (now < m->remove_retry || !sim_node_up(s, live))
    return;
  const ring *rg = gossip_ring(node_gossip(sim_node_core(s, live)));
  if (ring_node_index(rg, sim_node_name(s, m->removed)) < 0)
    return;
  m->remove_retry = now + 1000;
  /* One operator connection, opened again when a crash closed it. */
  if (m->op_client < 0 || !sim_client_connected(s, m->op_client)) {
    if (m->op_client >= 0)
      sim_client_close(s, m->op_client);
    m->op_client = sim_client_open(s, live, NULL, NULL);
    if (m->op_client < 0)
      return;
    sim_client_hello(s, m->op_client, m->next_req++);
  }
  sim_client_admin(s, m->op_client, m->next_req++, "remove", "node",
                   sim_node_name(s, m->removed));
  sim_logf(s, "operator: remove %s (through %s)",
           sim_node_name(s, m->removed), sim_node_name(s, live));
}

/* --churn, half way: asks one node that was there from the start to
 * leave (again, until it is leaving: the request may find it busy), as
 * `kvorum leave` does. From then on faults never crash it: it stops by
 * itself once it handed every partition off. */
static void simm_leave_step(simm *m) {
  sim *s = m->s;
  uint64_t now = sim_now(s);
  if (m->left < 0) {
    int cand[SIM_NODES_MAX], n = 0;
    /* Every other seed the joiner itself leaves again: its partitions go
     * back to the nodes that handed them off and dropped them, the
     * re-acquisition that made old dots vanish (issue #20). */
    bool back = m->late >= 0 && sim_rand(s) % 2;
    for (uint32_t i = 0; i < m->nodes; i++)
      if (sim_node_up(s, (int)i) && (int)i != m->removed &&
          ((int)i == m->late) == back && simm_joined(m))
        cand[n++] = (int)i;
    if (n == 0)
      return;
    m->left = cand[sim_rand(s) % (uint64_t)n];
    m->restart_at[m->left] = 0;
    m->leave_retry = now;
  }
  if (now < m->leave_retry || !sim_node_up(s, m->left))
    return;
  const gossip_member *self =
      gossip_self(node_gossip(sim_node_core(s, m->left)));
  if (self && (self->status == GOSSIP_LEAVING ||
               self->status == GOSSIP_REMOVED))
    return;
  m->leave_retry = now + 1000;
  if (m->leave_client < 0 || !sim_client_connected(s, m->leave_client)) {
    if (m->leave_client >= 0)
      sim_client_close(s, m->leave_client);
    m->leave_client = sim_client_open(s, m->left, NULL, NULL);
    if (m->leave_client < 0)
      return;
    sim_client_hello(s, m->leave_client, m->next_req++);
  }
  sim_client_admin(s, m->leave_client, m->next_req++, "leave", NULL, NULL);
  sim_logf(s, "operator: %s leaves", sim_node_name(s, m->left));
}

/* Prints every up node's ring and member table, for a [ring] or [leave]
 * violation. */
static void simm_dump_membership(simm *m) {
  sim *s = m->s;
  for (uint32_t i = 0; i < m->nodes; i++) {
    if (!sim_node_up(s, (int)i))
      continue;
    const gossip *g = node_gossip(sim_node_core(s, (int)i));
    const ring *rg = gossip_ring(g);
    fprintf(stderr, "seed %" PRIu64 ":   %s: ring version %" PRIu64
            " by '%s' {", m->seed, sim_node_name(s, (int)i), ring_version(rg),
            gossip_claimant(g));
    for (size_t k = 0; k < ring_node_count(rg); k++)
      fprintf(stderr, "%s%s", k ? " " : "", ring_node_id(rg, k));
    fprintf(stderr, "}, members");
    for (uint32_t j = 0; j < m->nodes; j++) {
      const gossip_member *gm = gossip_find(g, sim_node_name(s, (int)j));
      if (gm)
        fprintf(stderr, " %s:%s", gm->id,
                gossip_status_name(gm->status, gm->alive));
    }
    fprintf(stderr, "\n");
  }
}

/* After a removal or a leave: every node that stays agrees on a ring of
 * exactly them and sees every other one up, and a node that left has
 * stopped by itself (it handed everything off). */
static bool simm_ring_settled(void *arg, sim *s) {
  simm *m = arg;
  const ring *first = NULL;
  uint32_t stay = 0;
  for (uint32_t i = 0; i < m->nodes; i++)
    stay += !simm_out(m, (int)i);
  if (m->left >= 0 && sim_node_up(s, m->left))
    return false;
  for (uint32_t i = 0; i < m->nodes; i++) {
    if (simm_out(m, (int)i))
      continue;
    if (!sim_node_up(s, (int)i))
      return false;
    const gossip *g = node_gossip(sim_node_core(s, (int)i));
    const ring *rg = gossip_ring(g);
    if (ring_node_count(rg) != stay ||
        (m->removed >= 0 &&
         ring_node_index(rg, sim_node_name(s, m->removed)) >= 0) ||
        (m->left >= 0 && ring_node_index(rg, sim_node_name(s, m->left)) >= 0))
      return false;
    if (!first)
      first = rg;
    else if (!ring_equal(rg, first))
      return false;
    for (uint32_t j = 0; j < m->nodes; j++)
      if (!simm_out(m, (int)j) && !gossip_alive(g, sim_node_name(s, (int)j)))
        return false;
  }
  return true;
}

/* ---- final checks ---- */

/* The primaries of key in node i's ring. */
static size_t simm_primaries(simm *m, int i, int key, int *out) {
  char kb[16];
  simm_key_name(key, kb, sizeof(kb));
  const ring *rg = gossip_ring(node_gossip(sim_node_core(m->s, i)));
  uint32_t p = ring_partition(rg, kb, strlen(kb));
  size_t idx[NODE_FANOUT_MAX], np = 0;
  size_t total = ring_preflist(rg, p, idx, NODE_FANOUT_MAX, &np);
  if (np > total)
    np = total;
  size_t n = 0;
  for (size_t k = 0; k < np && k < NODE_FANOUT_MAX; k++) {
    int j = sim_node_by_name(m->s, ring_node_id(rg, idx[k]));
    if (j >= 0)
      out[n++] = j;
  }
  return n;
}

static bool simm_key_converged(simm *m, int key) {
  int prim[NODE_FANOUT_MAX];
  size_t np = simm_primaries(m, simm_live(m), key, prim);
  char kb[16];
  simm_key_name(key, kb, sizeof(kb));
  obj *first = NULL;
  bool same = true;
  for (size_t k = 0; k < np && same; k++) {
    obj *o = NULL;
    if (sim_store_get(m->s, prim[k], kb, strlen(kb), &o)) {
      same = false;
      break;
    }
    if (k == 0)
      first = o;
    else {
      if ((first == NULL) != (o == NULL) || (o && !obj_equal(first, o)))
        same = false;
      obj_free(o);
    }
  }
  obj_free(first);
  return same;
}

static bool simm_converged(void *arg, sim *s) {
  simm *m = arg;
  for (uint32_t i = 0; i < m->nodes; i++)
    if (!simm_out(m, (int)i) &&
        (!sim_node_up(s, (int)i) || sim_store_hints(s, (int)i)))
      return false;
  for (int k = 0; k < SIMM_KEYS; k++)
    if (!simm_key_converged(m, k))
      return false;
  return true;
}

static void simm_check_key(simm *m, int key) {
  sim *s = m->s;
  char kb[16], dbg[1024];
  simm_key_name(key, kb, sizeof(kb));
  int prim[NODE_FANOUT_MAX];
  size_t np = simm_primaries(m, simm_live(m), key, prim);
  obj *objs[NODE_FANOUT_MAX] = {0};
  for (size_t k = 0; k < np; k++)
    if (sim_store_get(s, prim[k], kb, strlen(kb), &objs[k]))
      simm_violation(m, "storage", "%s's copy of %s does not decode",
                     sim_node_name(s, prim[k]), kb);
  for (size_t k = 1; k < np; k++) {
    bool eq = (objs[0] == NULL) == (objs[k] == NULL) &&
              (!objs[0] || obj_equal(objs[0], objs[k]));
    if (!eq) {
      char d2[1024];
      simm_violation(m, "converged",
                     "%s differs between primaries %s %s and %s %s", kb,
                     sim_node_name(s, prim[0]),
                     objs[0] ? obj_debug(objs[0], dbg, sizeof(dbg)) : "-",
                     sim_node_name(s, prim[k]),
                     objs[k] ? obj_debug(objs[k], d2, sizeof(d2)) : "-");
    }
  }
  for (size_t k = 0; k < np; k++) {
    obj *o = objs[k];
    const char *who = sim_node_name(s, prim[k]);
    simm_vv clock = {0};
    if (o && !simm_obj_vv(o, &clock))
      simm_violation(m, "context", "context of %s on %s does not parse", kb,
                     who);
    /* What the replica holds. */
    size_t cnt = o ? obj_sibling_count(o) : 0;
    for (size_t i = 0; i < cnt; i++) {
      obj_value v;
      if (obj_sibling(o, i, &v))
        continue;
      simm_dot d = {v.actor, v.counter};
      uint32_t di = 0, by = 0;
      simm_write *w = simm_by_dot(m, key, d, &di);
      if (!w) {
        simm_violation(m, "siblings", "%s on %s has a value with dot "
                       "(%016" PRIx64 ", %" PRIu64 ") no client wrote", kb,
                       who, d.actor, d.counter);
        continue;
      }
      if (!m->machine && !w->committed[di])
        simm_violation(m, "siblings", "%s on %s holds write %u, which its "
                       "coordinator never committed", kb, who, w->id);
      /* With a node removed, a write only it had may be gone, and what
       * it superseded back: only writes that survive that count. */
      if (simm_superseded(m, key, d, &by, m->removed >= 0))
        simm_violation(m, "resurrected", "%s on %s holds write %u%s, which "
                       "write %u superseded", kb, who, w->id,
                       w->status == SIMM_ACKED ? " (acked)" : "", by);
    }
    /* What the model expects. */
    for (size_t wi = 0; wi < m->nw; wi++) {
      simm_write *w = &m->w[wi];
      if (w->key != key)
        continue;
      for (uint32_t di = 0; di < w->ndots; di++) {
        if (!w->committed[di])
          continue;
        simm_dot d = w->dots[di];
        if (simm_superseded(m, key, d, NULL, false))
          continue;
        bool present = false;
        for (size_t i = 0; i < cnt && !present; i++) {
          obj_value v;
          present = obj_sibling(o, i, &v) == 0 && v.actor == d.actor &&
                    v.counter == d.counter;
        }
        if (present)
          continue;
        bool covered = o && simm_covers(&clock, d);
        bool acked = w->status == SIMM_ACKED;
        if (m->machine && !(acked && w->dw == WIRE_Q_ALL))
          continue; /* may be lost with an unsynced machine */
        if (m->removed >= 0 && !simm_durable(w))
          continue; /* may have been on the removed node only */
        if (w->del && m->reap)
          continue; /* a tombstone that was reaped; a later write on the key
                       may cover its dot (the coordinator's dot floor), and
                       [resurrected] still catches a value it deleted */
        if (acked)
          simm_violation(m, "acked", "acknowledged %s %u of %s (dot "
                         "%016" PRIx64 ":%" PRIu64 ", by %s) is %s on "
                         "primary %s: %s", w->del ? "delete" : "write",
                         w->id, kb, d.actor, d.counter,
                         sim_node_name(s, w->coord[di]),
                         covered ? "lost (covered, not superseded)"
                                 : "missing",
                         who, o ? obj_debug(o, dbg, sizeof(dbg)) : "-");
        else
          simm_violation(m, "siblings", "committed %s %u of %s (by %s) is "
                         "%s on primary %s: %s", w->del ? "delete" : "write",
                         w->id, kb, sim_node_name(s, w->coord[di]),
                         covered ? "lost (covered, not superseded)"
                                 : "missing",
                         who, o ? obj_debug(o, dbg, sizeof(dbg)) : "-");
      }
    }
  }
  for (size_t k = 0; k < np; k++)
    obj_free(objs[k]);
}

/* ---- one seed ---- */

typedef struct simm_opts {
  uint32_t nodes; /* 0: 3..5 from the seed */
  uint32_t steps;
  bool machine;
  bool no_reap; /* --no-reap: never reap tombstones */
  bool reap;    /* --reap: always (default: one seed in three) */
  bool remove;  /* --remove: half way, a node dies for good and is removed */
  bool churn;   /* --churn: a node joins at 1/4, another leaves at 1/2 */
  bool verbose;
} simm_opts_t;

static int simm_run(uint64_t seed, const simm_opts_t *o) {
  simm m;
  memset(&m, 0, sizeof(m));
  m.seed = seed;
  uint64_t pick = seed * 0x9e3779b97f4a7c15ull;
  pick ^= pick >> 29;
  m.nodes = o->nodes ? o->nodes : (uint32_t)(3 + pick % 3);
  m.machine = o->machine;
  m.reap = !o->no_reap && (o->reap || (pick >> 8) % 3 == 0);
  m.verbose = o->verbose;
  m.nclients = 2 + (uint32_t)((pick >> 16) % 4);
  m.removed = -1;
  m.op_client = -1;
  m.late = -1;
  m.left = -1;
  m.leave_client = -1;
  sim_config cfg;
  sim_config_default(&cfg, seed, m.nodes);
  cfg.aae_interval_ms = 50;
  cfg.hint_interval_ms = 100;
  cfg.handoff_interval_ms = 200;
  cfg.tombstone_grace_ms = m.reap ? 1000 : 0;
  if (o->churn) {
    m.late = (int)m.nodes - 1;
    cfg.late_mask = 1u << m.late;
  }
  cfg.verbose = o->verbose;
  cfg.log_level = o->verbose ? NODE_LOG_INFO : NODE_LOG_ERROR;
  m.s = sim_new(&cfg);
  if (!m.s)
    return 2;
  sim *s = m.s;
  sim_hooks h = {.arg = &m,
                 .on_frame = simm_on_frame,
                 .on_frame_end = simm_on_frame_end,
                 .on_stage = simm_on_stage,
                 .on_commit = simm_on_commit};
  sim_set_hooks(s, &h);
  sim_logf(s, "seed %" PRIu64 ": %u nodes, %u clients, reaping %s", seed,
           m.nodes, m.nclients, m.reap ? "on" : "off");
  if (!sim_wait_ring(s, 30000)) {
    simm_violation(&m, "ring", "the cluster did not form within 30 s");
    goto out;
  }
  for (uint32_t i = 0; i < m.nclients; i++)
    m.cl[i].handle = -1;

  /* Chaos: clients run while faults happen. */
  m.next_fault = sim_now(s) + sim_rand_range(s, 100, 1000);
  while (m.ops_started < o->steps) {
    sim_run_for(s, 5);
    simm_fault_timers(&m);
    if (sim_now(s) >= m.next_fault) {
      simm_fault(&m);
      m.next_fault = sim_now(s) + sim_rand_range(s, 200, 1500);
    }
    if (m.late >= 0 && m.ops_started >= o->steps / 4 &&
        !sim_node_started(s, m.late)) {
      sim_logf(s, "operator: %s starts and joins", sim_node_name(s, m.late));
      if (sim_restart(s, m.late))
        simm_violation(&m, "join", "%s does not start",
                       sim_node_name(s, m.late));
    }
    if (o->churn && m.ops_started >= o->steps / 2)
      simm_leave_step(&m);
    if (o->remove && m.ops_started >= o->steps / 2)
      simm_remove_step(&m);
    simm_clients_poll(&m, true);
  }

  /* Heal: no more faults; let the last requests finish. */
  sim_heal(s);
  sim_net clean = {.lat_min_ms = 1, .lat_max_ms = 5};
  sim_set_net(s, &clean);
  for (uint32_t i = 0; i < m.nodes; i++) {
    m.restart_at[i] = 0;
    if (!simm_out(&m, (int)i) && !sim_node_up(s, (int)i) &&
        sim_restart(s, (int)i))
      simm_violation(&m, "restart", "%s does not start again",
                     sim_node_name(s, (int)i));
  }
  sim_logf(s, "heal: everything healed, waiting for repair");
  for (int k = 0; k < 2000 && !simm_clients_idle(&m); k++) {
    sim_run_for(s, 5);
    simm_clients_poll(&m, false);
  }
  if (m.removed >= 0 || m.left >= 0) {
    /* The operator's remove may have been lost: ask until it took. */
    for (int k = 0; k < 12000 && !simm_ring_settled(&m, s); k++) {
      sim_run_for(s, 5);
      if (m.removed >= 0)
        simm_remove_step(&m);
      if (m.left >= 0)
        simm_leave_step(&m);
    }
  }
  if (m.removed >= 0 || m.left >= 0 ? !simm_ring_settled(&m, s)
                                    : !sim_wait_ring(s, 30000)) {
    simm_dump_membership(&m);
    if (m.left >= 0 && sim_node_up(s, m.left))
      simm_violation(&m, "leave", "%s did not finish leaving within 60 s "
                     "of healing (%zu hints kept, %zu requests in flight)",
                     sim_node_name(s, m.left), sim_store_hints(s, m.left),
                     node_requests_in_flight(sim_node_core(s, m.left)));
    else
      simm_violation(&m, "ring", "the ring did not converge within 60 s of "
                     "healing");
    goto out;
  }
  if (!sim_run_while_not(s, simm_converged, &m, 60000)) {
    /* Reported per key below. */
    for (uint32_t i = 0; i < m.nodes; i++)
      if (!simm_out(&m, (int)i) && sim_store_hints(s, (int)i))
        simm_violation(&m, "converged", "%s still keeps %zu hints 60 s "
                       "after healing", sim_node_name(s, (int)i),
                       sim_store_hints(s, (int)i));
  }
  sim_run_for(s, 500);
  /* Repair may still act after the replicas first agreed (a tombstone
   * reap whose messages were lost is finished by anti-entropy): give it
   * the same bounded time again before judging. */
  sim_run_while_not(s, simm_converged, &m, 60000);
  for (int k = 0; k < SIMM_KEYS; k++)
    simm_check_key(&m, k);

out:
  if (o->verbose || m.violations)
    fprintf(stderr,
            "seed %" PRIu64 ": %u nodes, %zu writes (%" PRIu64 " acked, %" PRIu64
            " failed, %" PRIu64 " unknown), %" PRIu64 " gets, %.1f s "
            "simulated\n",
            seed, m.nodes, m.nw, m.acked, m.failed, m.unknown, m.gets_ok,
            (double)sim_now(s) / 1000.0);
  sim_free(s);
  free(m.w);
  return m.violations ? 1 : 0;
}

static void simm_usage(void) {
  fprintf(stderr,
          "usage: kvsim --seed S [--seeds COUNT] [--nodes 3..%d] "
          "[--steps N] [--machine] [--reap|--no-reap] [--remove] [--churn] [-v]\n",
          SIM_NODES_MAX);
}

int main(int argc, char **argv) {
  uint64_t seed = 1, count = 1;
  simm_opts_t o = {.steps = SIMM_STEPS_DEFAULT};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--seed") == 0 && v) {
      seed = strtoull(v, NULL, 0);
      i++;
    } else if (strcmp(a, "--seeds") == 0 && v) {
      count = strtoull(v, NULL, 0);
      i++;
    } else if (strcmp(a, "--nodes") == 0 && v) {
      o.nodes = (uint32_t)strtoul(v, NULL, 0);
      i++;
    } else if (strcmp(a, "--steps") == 0 && v) {
      o.steps = (uint32_t)strtoul(v, NULL, 0);
      i++;
    } else if (strcmp(a, "--machine") == 0) {
      o.machine = true;
    } else if (strcmp(a, "--no-reap") == 0) {
      o.no_reap = true;
    } else if (strcmp(a, "--reap") == 0) {
      o.reap = true;
    } else if (strcmp(a, "--remove") == 0) {
      o.remove = true;
    } else if (strcmp(a, "--churn") == 0) {
      o.churn = true;
    } else if (strcmp(a, "-v") == 0) {
      o.verbose = true;
    } else {
      simm_usage();
      return 2;
    }
  }
  if (o.nodes && (o.nodes < 3 || o.nodes > SIM_NODES_MAX)) {
    simm_usage();
    return 2;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  uint64_t failed = 0;
  for (uint64_t k = 0; k < count; k++) {
    uint64_t sd = seed + k;
    int rc = simm_run(sd, &o);
    if (rc) {
      failed++;
      char extra[96] = "";
      size_t el = 0;
      if (o.nodes)
        el += (size_t)snprintf(extra + el, sizeof(extra) - el, " --nodes %u",
                               o.nodes);
      if (o.steps != SIMM_STEPS_DEFAULT)
        el += (size_t)snprintf(extra + el, sizeof(extra) - el, " --steps %u",
                               o.steps);
      if (o.machine)
        el += (size_t)snprintf(extra + el, sizeof(extra) - el, " --machine");
      if (o.remove)
        el += (size_t)snprintf(extra + el, sizeof(extra) - el, " --remove");
      if (o.churn)
        el += (size_t)snprintf(extra + el, sizeof(extra) - el, " --churn");
      if (o.no_reap)
        snprintf(extra + el, sizeof(extra) - el, " --no-reap");
      else if (o.reap)
        snprintf(extra + el, sizeof(extra) - el, " --reap");
      fprintf(stderr, "seed %" PRIu64 " FAILED; replay with: "
              "build/tests/kvsim --seed %" PRIu64 "%s -v\n", sd, sd, extra);
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double)(t1.tv_sec - t0.tv_sec) +
                (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("kvsim: %" PRIu64 " seeds from %" PRIu64 ", %" PRIu64
         " failed, %.1f s\n", count, seed, failed, secs);
  return failed ? 1 : 0;
}
