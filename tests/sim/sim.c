/*
 * sim.c: the deterministic cluster simulator (see sim.h for the model).
 *
 * Layout: an in-memory sorted map (sim_map) is the storage engine; a node's
 * store keeps a committed map, a synced ("durable") map, the staged writes
 * of the current loop turn and the log of committed writes not yet
 * fsynced. Hints and metadata live in the same maps under reserved
 * partition numbers. Connections are records indexed by id (ids are never
 * reused); events live in a binary heap. The node_io callbacks at the end
 * tie one node core to all of this.
 *
 * Depends on: kvcore (node/core.h), obj, wire, rng.h; libc only otherwise.
 */
#include "sim.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_err.h"
#include "mp.h"
#include "ring.h"
#include "rng.h"

#define SIM_NS_HINT 0xfffffff0u /* partition number of the hints */
#define SIM_NS_META 0xfffffff1u /* partition number of the metadata */
#define SIM_COMMIT_ROUNDS 8     /* as kvorumd's group commit */

/* ---- helpers ---- */

static void *sim__xalloc(size_t n) {
  void *p = calloc(1, n ? n : 1);
  if (!p) {
    fprintf(stderr, "sim: out of memory\n");
    abort();
  }
  return p;
}

static void *sim__xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (!p) {
    fprintf(stderr, "sim: out of memory\n");
    abort();
  }
  return p;
}

static uint8_t *sim__dup(const void *p, size_t n) {
  uint8_t *d = sim__xalloc(n);
  if (n)
    memcpy(d, p, n);
  return d;
}

/* ---- the sorted map ---- */

typedef struct sim_kv {
  uint32_t part;
  uint8_t *key;
  size_t klen;
  uint8_t *val;
  size_t vlen;
} sim_kv;

typedef struct sim_map {
  sim_kv *v;
  size_t len, cap;
} sim_map;

static int sim__cmp(uint32_t pa, const uint8_t *ka, size_t la, uint32_t pb,
                    const uint8_t *kb, size_t lb) {
  if (pa != pb)
    return pa < pb ? -1 : 1;
  size_t m = la < lb ? la : lb;
  int c = m ? memcmp(ka, kb, m) : 0;
  if (c)
    return c;
  return la < lb ? -1 : la > lb ? 1 : 0;
}

/* Returns the first index whose entry is >= (part, key). */
static size_t sim__lower(const sim_map *m, uint32_t part, const uint8_t *key,
                         size_t klen) {
  size_t lo = 0, hi = m->len;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const sim_kv *e = &m->v[mid];
    if (sim__cmp(e->part, e->key, e->klen, part, key, klen) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static sim_kv *sim__map_find(sim_map *m, uint32_t part, const uint8_t *key,
                             size_t klen) {
  size_t i = sim__lower(m, part, key, klen);
  if (i < m->len &&
      sim__cmp(m->v[i].part, m->v[i].key, m->v[i].klen, part, key, klen) == 0)
    return &m->v[i];
  return NULL;
}

/* Sets (part, key) to a copy of val, or deletes it when val is NULL. */
static void sim__map_set(sim_map *m, uint32_t part, const uint8_t *key,
                         size_t klen, const uint8_t *val, size_t vlen) {
  size_t i = sim__lower(m, part, key, klen);
  bool found = i < m->len && sim__cmp(m->v[i].part, m->v[i].key,
                                      m->v[i].klen, part, key, klen) == 0;
  if (!val) {
    if (!found)
      return;
    free(m->v[i].key);
    free(m->v[i].val);
    memmove(&m->v[i], &m->v[i + 1], (m->len - i - 1) * sizeof(*m->v));
    m->len--;
    return;
  }
  if (found) {
    free(m->v[i].val);
    m->v[i].val = sim__dup(val, vlen);
    m->v[i].vlen = vlen;
    return;
  }
  if (m->len == m->cap) {
    m->cap = m->cap ? m->cap * 2 : 64;
    m->v = sim__xrealloc(m->v, m->cap * sizeof(*m->v));
  }
  memmove(&m->v[i + 1], &m->v[i], (m->len - i) * sizeof(*m->v));
  m->v[i] = (sim_kv){.part = part,
                     .key = sim__dup(key, klen),
                     .klen = klen,
                     .val = sim__dup(val, vlen),
                     .vlen = vlen};
  m->len++;
}

static void sim__map_clear(sim_map *m) {
  for (size_t i = 0; i < m->len; i++) {
    free(m->v[i].key);
    free(m->v[i].val);
  }
  free(m->v);
  memset(m, 0, sizeof(*m));
}

static void sim__map_copy(sim_map *dst, const sim_map *src) {
  sim__map_clear(dst);
  dst->cap = dst->len = src->len;
  dst->v = sim__xalloc((src->len ? src->len : 1) * sizeof(*dst->v));
  for (size_t i = 0; i < src->len; i++) {
    const sim_kv *e = &src->v[i];
    dst->v[i] = (sim_kv){.part = e->part,
                         .key = sim__dup(e->key, e->klen),
                         .klen = e->klen,
                         .val = sim__dup(e->val, e->vlen),
                         .vlen = e->vlen};
  }
}

/* ---- the store of one node ---- */

typedef struct sim_op {
  uint32_t part;
  uint8_t *key;
  size_t klen;
  uint8_t *val; /* NULL: delete */
  size_t vlen;
  uint64_t token;
  uint64_t tag;
} sim_op;

typedef struct sim_ops {
  sim_op *v;
  size_t len, cap;
} sim_ops;

typedef struct sim_tokens {
  uint64_t *v;
  size_t len, cap;
} sim_tokens;

typedef struct sim_store {
  sim_map live;      /* committed (in the WAL) */
  sim_map durable;   /* fsynced */
  sim_ops staged;    /* this turn's writes */
  sim_ops unsynced;  /* committed, not yet fsynced, in order */
  sim_tokens sync_wait, sync_run;
  bool syncing;
  size_t sync_upto;  /* unsynced ops the running fsync covers */
} sim_store;

static void sim__ops_push(sim_ops *o, sim_op op) {
  if (o->len == o->cap) {
    o->cap = o->cap ? o->cap * 2 : 32;
    o->v = sim__xrealloc(o->v, o->cap * sizeof(*o->v));
  }
  o->v[o->len++] = op;
}

static void sim__op_free(sim_op *op) {
  free(op->key);
  free(op->val);
}

static void sim__ops_clear(sim_ops *o) {
  for (size_t i = 0; i < o->len; i++)
    sim__op_free(&o->v[i]);
  o->len = 0;
}

static void sim__tokens_push(sim_tokens *t, uint64_t v) {
  if (t->len == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 32;
    t->v = sim__xrealloc(t->v, t->cap * sizeof(*t->v));
  }
  t->v[t->len++] = v;
}

static void sim__store_free(sim_store *st) {
  sim__map_clear(&st->live);
  sim__map_clear(&st->durable);
  sim__ops_clear(&st->staged);
  sim__ops_clear(&st->unsynced);
  free(st->staged.v);
  free(st->unsynced.v);
  free(st->sync_wait.v);
  free(st->sync_run.v);
  memset(st, 0, sizeof(*st));
}

/* A write that bypasses staging (hints): committed at once, unsynced. */
static void sim__store_write_now(sim_store *st, uint32_t part,
                                 const uint8_t *key, size_t klen,
                                 const uint8_t *val, size_t vlen) {
  sim__map_set(&st->live, part, key, klen, val, vlen);
  sim_op op = {.part = part, .key = sim__dup(key, klen), .klen = klen,
               .val = val ? sim__dup(val, vlen) : NULL, .vlen = vlen};
  sim__ops_push(&st->unsynced, op);
}

/* ---- connections, events ---- */

enum { SIM_CONN_PEER, SIM_CONN_CLIENT };

typedef struct sim_conn {
  uint64_t id;
  int kind;          /* SIM_CONN_* */
  int a, b;          /* initiator (node or client index), acceptor node */
  uint64_t epoch_a, epoch_b; /* process epochs of the nodes at creation */
  bool dead_a, dead_b;       /* that side closed (receives nothing more) */
  bool b_greeted;
  bool cut;                  /* frames in flight are lost */
  bool close_after_flush_b;  /* b asked to close after its output */
  bool close_after_flush_a;
  uint64_t last_t[2];        /* latest delivery time per direction */
  uint64_t first_t;          /* delivery time of the first a->b frame */
} sim_conn;

enum {
  SIM_EV_DELIVER,
  SIM_EV_TICK,
  SIM_EV_FLUSH,
  SIM_EV_SYNC_DONE,
  SIM_EV_CLOSED,
};

typedef struct sim_ev {
  uint64_t t, seq;
  int type;
  int node;       /* TICK, FLUSH, SYNC_DONE */
  uint64_t epoch; /* the node process the event belongs to */
  uint64_t conn;  /* DELIVER, CLOSED */
  int dir;        /* 0: to the acceptor (b), 1: to the initiator (a) */
  uint8_t *body;  /* DELIVER: one frame body (owned) */
  size_t len;
} sim_ev;

typedef struct sim_out {
  uint64_t conn;
  int dir;
  uint8_t *frame; /* one whole frame with its header (owned) */
  size_t len;
} sim_out;

typedef struct sim_node {
  sim *s;
  int idx;
  node *core;
  bool up;
  bool started; /* ever: a late node is not until sim_restart */
  bool want_stop;
  uint64_t epoch;
  uint64_t incarnation;
  uint64_t rng;
  int64_t skew_ms;
  int store_err; /* injected storage failure (0: none) */
  char name[32], peer_addr[40], client_addr[40];
  sim_store st;
  bool flush_pending;
  sim_out *out;
  size_t nout, capout;
  uint64_t peer_conn[SIM_NODES_MAX];
  uint64_t connect_fail_ms[SIM_NODES_MAX];
} sim_node;

typedef struct sim_client {
  bool used;
  uint64_t conn;
  int node;
  sim_client_fn fn;
  void *arg;
  bool notified;
} sim_client;

struct sim {
  sim_config cfg;
  sim_net net;
  uint64_t now;
  uint64_t rng;
  uint64_t seq;
  uint64_t epochs;
  sim_ev *heap;
  size_t nheap, capheap;
  sim_conn *conns; /* conns[id - 1] */
  size_t nconns, capconns;
  sim_node nodes[SIM_NODES_MAX];
  sim_client clients[SIM_CLIENTS_MAX];
  bool blocked[SIM_NODES_MAX][SIM_NODES_MAX];
  const char *seeds[SIM_NODES_MAX];
  sim_hooks hooks;
  sim_filter_fn filter;
  void *filter_arg;
};

void sim_logf(sim *s, const char *fmt, ...) {
  if (!s->cfg.verbose)
    return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "[%8llu] ", (unsigned long long)s->now);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

bool sim_verbose(const sim *s) { return s->cfg.verbose; }

uint64_t sim_rand(sim *s) { return kv_splitmix64(&s->rng); }

uint64_t sim_rand_range(sim *s, uint64_t lo, uint64_t hi) {
  if (hi <= lo)
    return lo;
  return lo + sim_rand(s) % (hi - lo + 1);
}

static bool sim__chance_pm(sim *s, uint32_t pm) {
  return pm && sim_rand(s) % 1000 < pm;
}

static void sim__heap_push(sim *s, sim_ev ev) {
  ev.seq = s->seq++;
  if (s->nheap == s->capheap) {
    s->capheap = s->capheap ? s->capheap * 2 : 1024;
    s->heap = sim__xrealloc(s->heap, s->capheap * sizeof(*s->heap));
  }
  size_t i = s->nheap++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    sim_ev *pe = &s->heap[p];
    if (pe->t < ev.t || (pe->t == ev.t && pe->seq < ev.seq))
      break;
    s->heap[i] = *pe;
    i = p;
  }
  s->heap[i] = ev;
}

static bool sim__ev_less(const sim_ev *a, const sim_ev *b) {
  return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static sim_ev sim__heap_pop(sim *s) {
  sim_ev top = s->heap[0];
  sim_ev last = s->heap[--s->nheap];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    const sim_ev *best = &last;
    if (l < s->nheap && sim__ev_less(&s->heap[l], best)) {
      m = l;
      best = &s->heap[l];
    }
    if (r < s->nheap && sim__ev_less(&s->heap[r], best))
      m = r;
    if (m == i)
      break;
    s->heap[i] = s->heap[m];
    i = m;
  }
  if (s->nheap)
    s->heap[i] = last;
  return top;
}

static sim_conn *sim__conn(sim *s, uint64_t id) {
  if (id == 0 || id > s->nconns)
    return NULL;
  return &s->conns[id - 1];
}

static sim_conn *sim__conn_new(sim *s, int kind, int a, int b) {
  if (s->nconns == s->capconns) {
    s->capconns = s->capconns ? s->capconns * 2 : 256;
    s->conns = sim__xrealloc(s->conns, s->capconns * sizeof(*s->conns));
  }
  sim_conn *c = &s->conns[s->nconns++];
  memset(c, 0, sizeof(*c));
  c->id = s->nconns;
  c->kind = kind;
  c->a = a;
  c->b = b;
  c->epoch_b = s->nodes[b].epoch;
  if (kind == SIM_CONN_PEER)
    c->epoch_a = s->nodes[a].epoch;
  return c;
}

static uint64_t sim__latency(sim *s) {
  return sim_rand_range(s, s->net.lat_min_ms, s->net.lat_max_ms);
}

/* The node at side dir of c (-1 for a client). */
static int sim__conn_node(const sim_conn *c, int dir) {
  if (dir == 0)
    return c->b;
  return c->kind == SIM_CONN_PEER ? c->a : -1;
}

/* Schedules one frame body on c towards side dir. */
static void sim__schedule(sim *s, sim_conn *c, int dir, const uint8_t *body,
                          size_t len, uint64_t extra, bool reorder) {
  uint64_t t = s->now + sim__latency(s) + extra;
  if (!reorder && t < c->last_t[dir])
    t = c->last_t[dir];
  if (dir == 0 && c->first_t && t < c->first_t)
    t = c->first_t; /* nothing overtakes the hello */
  if (t > c->last_t[dir])
    c->last_t[dir] = t;
  if (dir == 0 && !c->first_t)
    c->first_t = t;
  sim_ev ev = {.t = t, .type = SIM_EV_DELIVER, .conn = c->id, .dir = dir,
               .body = sim__dup(body, len), .len = len};
  sim__heap_push(s, ev);
}

/* Tells side dir of c that the connection closed, after what is in flight
 * towards it. */
static void sim__schedule_closed(sim *s, sim_conn *c, int dir) {
  uint64_t t = s->now + 1;
  if (!c->cut && c->last_t[dir] + 1 > t)
    t = c->last_t[dir] + 1;
  sim_ev ev = {.t = t, .type = SIM_EV_CLOSED, .conn = c->id, .dir = dir};
  sim__heap_push(s, ev);
}

static void sim__schedule_node(sim *s, int i, int type, uint64_t delay) {
  sim_ev ev = {.t = s->now + delay, .type = type, .node = i,
               .epoch = s->nodes[i].epoch};
  sim__heap_push(s, ev);
}

/* The node's loop turn has work: make sure it ends with a flush. */
static void sim__turn(sim *s, int i) {
  sim_node *nd = &s->nodes[i];
  if (!nd->up || nd->flush_pending)
    return;
  nd->flush_pending = true;
  sim__schedule_node(s, i, SIM_EV_FLUSH, sim_rand_range(s, 0, 1));
}

/* Forgets the peer connection c in its initiator's table. */
static void sim__forget_peer(sim *s, sim_conn *c) {
  if (c->kind != SIM_CONN_PEER)
    return;
  sim_node *a = &s->nodes[c->a];
  if (a->peer_conn[c->b] == c->id)
    a->peer_conn[c->b] = 0;
}

/* Side dir of c closes now (its node learns at once); the other side
 * learns after what is in flight to it. */
static void sim__close_side(sim *s, sim_conn *c, int dir, bool tell_self) {
  bool *dead = dir == 0 ? &c->dead_b : &c->dead_a;
  if (*dead)
    return;
  *dead = true;
  sim__forget_peer(s, c);
  int me = sim__conn_node(c, dir);
  if (tell_self && me >= 0 && s->nodes[me].up && s->nodes[me].core) {
    node_conn_kind kind = c->kind == SIM_CONN_CLIENT ? NODE_CONN_CLIENT
                          : dir == 0 ? NODE_CONN_PEER_IN
                                     : NODE_CONN_PEER_OUT;
    node_on_close(s->nodes[me].core, c->id, kind);
    sim__turn(s, me);
  }
  bool *other_dead = dir == 0 ? &c->dead_a : &c->dead_b;
  if (!*other_dead)
    sim__schedule_closed(s, c, 1 - dir);
}

/* ---- node_io ---- */

static uint64_t sim__io_now(void *ctx) {
  sim_node *nd = ctx;
  return nd->s->now;
}

static uint64_t sim__io_wall(void *ctx) {
  sim_node *nd = ctx;
  int64_t w = (int64_t)SIM_WALL_EPOCH_MS + (int64_t)nd->s->now + nd->skew_ms;
  return w < 0 ? 0 : (uint64_t)w;
}

static uint64_t sim__io_random(void *ctx) {
  sim_node *nd = ctx;
  return kv_splitmix64(&nd->rng);
}

static void sim__out_push(sim_node *nd, uint64_t conn, int dir,
                          const uint8_t *frame, size_t len) {
  if (nd->nout == nd->capout) {
    nd->capout = nd->capout ? nd->capout * 2 : 64;
    nd->out = sim__xrealloc(nd->out, nd->capout * sizeof(*nd->out));
  }
  nd->out[nd->nout++] = (sim_out){.conn = conn, .dir = dir,
                                  .frame = sim__dup(frame, len), .len = len};
}

/* The direction from node nd's side of c, or -1 when nd is not on it. */
static int sim__dir_from(const sim_node *nd, const sim_conn *c) {
  if (c->b == nd->idx && c->epoch_b == nd->epoch)
    return 1; /* b sends towards a */
  if (c->kind == SIM_CONN_PEER && c->a == nd->idx && c->epoch_a == nd->epoch)
    return 0;
  return -1;
}

static void sim__io_conn_send(void *ctx, uint64_t conn, const uint8_t *frame,
                              size_t len) {
  sim_node *nd = ctx;
  sim_conn *c = sim__conn(nd->s, conn);
  if (!c)
    return;
  int dir = sim__dir_from(nd, c);
  if (dir < 0)
    return;
  sim__out_push(nd, conn, dir, frame, len);
  sim__turn(nd->s, nd->idx);
}

static void sim__io_conn_close(void *ctx, uint64_t conn) {
  sim_node *nd = ctx;
  sim_conn *c = sim__conn(nd->s, conn);
  if (!c)
    return;
  int dir = sim__dir_from(nd, c);
  if (dir == 1)
    c->close_after_flush_b = true;
  else if (dir == 0)
    c->close_after_flush_a = true;
  sim__turn(nd->s, nd->idx);
}

static uint64_t sim__io_peer_send(void *ctx, const char *addr,
                                  const uint8_t *frame, size_t len) {
  sim_node *nd = ctx;
  sim *s = nd->s;
  int j = -1;
  for (uint32_t k = 0; k < s->cfg.nodes; k++)
    if (strcmp(s->nodes[k].peer_addr, addr) == 0)
      j = (int)k;
  if (j < 0 || j == nd->idx)
    return 0;
  sim_conn *c = sim__conn(s, nd->peer_conn[j]);
  if (!c || c->dead_a) {
    nd->peer_conn[j] = 0;
    if (nd->connect_fail_ms[j] &&
        s->now - nd->connect_fail_ms[j] < SIM_RECONNECT_MS)
      return 0;
    if (!s->nodes[j].up || s->blocked[nd->idx][j] || s->blocked[j][nd->idx]) {
      nd->connect_fail_ms[j] = s->now;
      return 0;
    }
    nd->connect_fail_ms[j] = 0;
    c = sim__conn_new(s, SIM_CONN_PEER, nd->idx, j);
    nd->peer_conn[j] = c->id;
    kvbuf hb;
    kvbuf_init(&hb);
    wire_msg h = {.type = WIRE_PEER_HELLO, .version = WIRE_PROTOCOL_VERSION};
    h.text.ptr = (const uint8_t *)nd->name;
    h.text.len = strlen(nd->name);
    h.incarnation = nd->incarnation;
    wire_encode(&hb, &h);
    sim__out_push(nd, c->id, 0, hb.data, hb.len);
    kvbuf_free(&hb);
    sim_logf(s, "%s connects to %s (conn %llu)", nd->name, s->nodes[j].name,
             (unsigned long long)c->id);
  }
  sim__out_push(nd, c->id, 0, frame, len);
  sim__turn(s, nd->idx);
  return c->id;
}

static int sim__io_store_get(void *ctx, uint32_t part, const void *key,
                             size_t klen, const uint8_t **val, size_t *vlen) {
  sim_node *nd = ctx;
  sim_store *st = &nd->st;
  for (size_t i = st->staged.len; i-- > 0;) {
    sim_op *op = &st->staged.v[i];
    if (sim__cmp(op->part, op->key, op->klen, part, key, klen) == 0) {
      if (!op->val)
        return KV_ENOTFOUND;
      *val = op->val;
      *vlen = op->vlen;
      return 0;
    }
  }
  sim_kv *e = sim__map_find(&st->live, part, key, klen);
  if (!e)
    return KV_ENOTFOUND;
  *val = e->val;
  *vlen = e->vlen;
  return 0;
}

static int sim__stage(sim_node *nd, uint32_t part, const void *key,
                      size_t klen, const void *val, size_t vlen,
                      uint64_t token) {
  sim *s = nd->s;
  if (nd->store_err)
    return nd->store_err;
  if (!val)
    sim_logf(s, "%s deletes %.*s (partition %u)", nd->name,
             (int)(klen > 32 ? 32 : klen), (const char *)key, part);
  sim_op op = {.part = part, .key = sim__dup(key, klen), .klen = klen,
               .val = val ? sim__dup(val, vlen) : NULL, .vlen = vlen,
               .token = token};
  if (s->hooks.on_stage)
    op.tag = s->hooks.on_stage(s->hooks.arg, s, nd->idx, part, key, klen,
                               val, vlen);
  sim__ops_push(&nd->st.staged, op);
  sim__turn(s, nd->idx);
  return 0;
}

static int sim__io_store_put(void *ctx, uint32_t part, const void *key,
                             size_t klen, const void *val, size_t vlen,
                             uint64_t token) {
  return sim__stage(ctx, part, key, klen, val ? val : "", vlen, token);
}

static int sim__io_store_del(void *ctx, uint32_t part, const void *key,
                             size_t klen, uint64_t token) {
  return sim__stage(ctx, part, key, klen, NULL, 0, token);
}

static int sim__io_store_sync(void *ctx, uint64_t token) {
  sim_node *nd = ctx;
  sim__tokens_push(&nd->st.sync_wait, token);
  sim__turn(nd->s, nd->idx);
  return 0;
}

static void sim__commit(sim *s, int i);

static int sim__io_store_scan(void *ctx, uint32_t part, const void *after,
                              size_t after_len, size_t limit,
                              node_scan_fn fn, void *arg) {
  sim_node *nd = ctx;
  /* Scans see committed data: commit what is staged first (kvorumd). */
  sim__commit(nd->s, nd->idx);
  sim_map *m = &nd->st.live;
  uint8_t *last = after ? sim__dup(after, after_len) : NULL;
  size_t last_len = after_len;
  size_t done = 0;
  int rc = 0;
  while (done < limit) {
    size_t i = last ? sim__lower(m, part, last, last_len)
                    : sim__lower(m, part, (const uint8_t *)"", 0);
    if (i < m->len && last &&
        sim__cmp(m->v[i].part, m->v[i].key, m->v[i].klen, part, last,
                 last_len) == 0)
      i++;
    if (i >= m->len || m->v[i].part != part)
      break;
    /* Copy: fn may write to the store. */
    uint8_t *k = sim__dup(m->v[i].key, m->v[i].klen);
    size_t kl = m->v[i].klen;
    uint8_t *v = sim__dup(m->v[i].val, m->v[i].vlen);
    size_t vl = m->v[i].vlen;
    free(last);
    last = k;
    last_len = kl;
    done++;
    rc = fn(arg, k, kl, v, vl);
    free(v);
    if (rc)
      break;
  }
  free(last);
  return rc > 0 ? 0 : rc;
}

static int sim__io_store_drop(void *ctx, uint32_t part) {
  sim_node *nd = ctx;
  sim__commit(nd->s, nd->idx);
  sim_map *m = &nd->st.live;
  for (;;) {
    size_t i = sim__lower(m, part, (const uint8_t *)"", 0);
    if (i >= m->len || m->v[i].part != part)
      break;
    uint8_t *k = sim__dup(m->v[i].key, m->v[i].klen);
    size_t kl = m->v[i].klen;
    sim__store_write_now(&nd->st, part, k, kl, NULL, 0);
    free(k);
  }
  return 0;
}

/* Hint keys: owner, NUL, partition (4 bytes big-endian), object key. */
static uint8_t *sim__hint_key(const char *owner, uint32_t part,
                              const void *key, size_t klen, size_t *out_len) {
  size_t ol = strlen(owner);
  uint8_t *b = sim__xalloc(ol + 1 + 4 + klen);
  memcpy(b, owner, ol);
  b[ol] = 0;
  for (int i = 0; i < 4; i++)
    b[ol + 1 + (size_t)i] = (uint8_t)(part >> (24 - 8 * i));
  if (klen)
    memcpy(b + ol + 5, key, klen);
  *out_len = ol + 5 + klen;
  return b;
}

static int sim__io_hint_put(void *ctx, const char *owner, uint32_t part,
                            const void *key, size_t klen, const void *val,
                            size_t vlen) {
  sim_node *nd = ctx;
  size_t hl;
  uint8_t *hk = sim__hint_key(owner, part, key, klen, &hl);
  sim__store_write_now(&nd->st, SIM_NS_HINT, hk, hl, val ? val : "", vlen);
  free(hk);
  return 0;
}

static int sim__io_hint_get(void *ctx, const char *owner, uint32_t part,
                            const void *key, size_t klen, uint8_t **val,
                            size_t *vlen) {
  sim_node *nd = ctx;
  size_t hl;
  uint8_t *hk = sim__hint_key(owner, part, key, klen, &hl);
  sim_kv *e = sim__map_find(&nd->st.live, SIM_NS_HINT, hk, hl);
  free(hk);
  if (!e)
    return KV_ENOTFOUND;
  *val = sim__dup(e->val, e->vlen);
  *vlen = e->vlen;
  return 0;
}

static int sim__io_hint_del(void *ctx, const char *owner, uint32_t part,
                            const void *key, size_t klen) {
  sim_node *nd = ctx;
  size_t hl;
  uint8_t *hk = sim__hint_key(owner, part, key, klen, &hl);
  if (sim__map_find(&nd->st.live, SIM_NS_HINT, hk, hl))
    sim__store_write_now(&nd->st, SIM_NS_HINT, hk, hl, NULL, 0);
  free(hk);
  return 0;
}

static int sim__io_hint_owner_next(void *ctx, const char *after, char *out,
                                   size_t cap) {
  sim_node *nd = ctx;
  sim_map *m = &nd->st.live;
  size_t alen = strlen(after);
  uint8_t *seek = sim__xalloc(alen + 1);
  memcpy(seek, after, alen);
  seek[alen] = 1; /* past every key of after: name, NUL, ... */
  size_t i = sim__lower(m, SIM_NS_HINT, seek, alen ? alen + 1 : 0);
  free(seek);
  if (i >= m->len || m->v[i].part != SIM_NS_HINT)
    return KV_ENOTFOUND;
  const uint8_t *sep = memchr(m->v[i].key, 0, m->v[i].klen);
  size_t n = sep ? (size_t)(sep - m->v[i].key) : m->v[i].klen;
  if (n + 1 > cap)
    return KV_ETOOBIG;
  memcpy(out, m->v[i].key, n);
  out[n] = '\0';
  return 0;
}

static int sim__io_hint_scan(void *ctx, const char *owner, size_t limit,
                             node_hint_fn fn, void *arg) {
  sim_node *nd = ctx;
  sim_map *m = &nd->st.live;
  size_t ol = strlen(owner);
  size_t pl;
  uint8_t *prefix = sim__hint_key(owner, 0, NULL, 0, &pl);
  pl = ol + 1; /* owner and NUL */
  uint8_t *last = NULL;
  size_t last_len = 0;
  size_t done = 0;
  int rc = 0;
  while (done < limit) {
    size_t i = last ? sim__lower(m, SIM_NS_HINT, last, last_len)
                    : sim__lower(m, SIM_NS_HINT, prefix, pl);
    if (i < m->len && last &&
        sim__cmp(m->v[i].part, m->v[i].key, m->v[i].klen, SIM_NS_HINT, last,
                 last_len) == 0)
      i++;
    if (i >= m->len || m->v[i].part != SIM_NS_HINT || m->v[i].klen < pl + 4 ||
        memcmp(m->v[i].key, prefix, pl) != 0)
      break;
    uint8_t *k = sim__dup(m->v[i].key, m->v[i].klen);
    size_t kl = m->v[i].klen;
    uint8_t *v = sim__dup(m->v[i].val, m->v[i].vlen);
    size_t vl = m->v[i].vlen;
    free(last);
    last = k;
    last_len = kl;
    done++;
    uint32_t part = ((uint32_t)k[pl] << 24) | ((uint32_t)k[pl + 1] << 16) |
                    ((uint32_t)k[pl + 2] << 8) | k[pl + 3];
    rc = fn(arg, part, k + pl + 4, kl - pl - 4, v, vl);
    free(v);
    if (rc)
      break;
  }
  free(last);
  free(prefix);
  return rc > 0 ? 0 : rc;
}

static void sim__io_shutdown(void *ctx) {
  sim_node *nd = ctx;
  nd->want_stop = true;
  sim__turn(nd->s, nd->idx);
}

static int sim__io_meta_put(void *ctx, const char *name, const void *val,
                            size_t len) {
  sim_node *nd = ctx;
  /* Metadata is written synchronously and fsynced. */
  sim__map_set(&nd->st.live, SIM_NS_META, (const uint8_t *)name,
               strlen(name), val ? val : "", len);
  sim__map_set(&nd->st.durable, SIM_NS_META, (const uint8_t *)name,
               strlen(name), val ? val : "", len);
  return 0;
}

static void sim__io_log(void *ctx, node_log_level lvl, const char *msg) {
  sim_node *nd = ctx;
  static const char *const names[] = {"error", "warn", "info", "debug"};
  sim_logf(nd->s, "%s %s: %s", nd->name, names[lvl & 3], msg);
}

/* ---- commit, fsync, flush ---- */

/* Commits node i's staged writes and runs their callbacks (which may stage
 * more), as kvorumd's uvn__commit does. */
static void sim__commit(sim *s, int i) {
  sim_node *nd = &s->nodes[i];
  sim_store *st = &nd->st;
  for (int round = 0; round < SIM_COMMIT_ROUNDS && st->staged.len; round++) {
    sim_ops batch = st->staged;
    memset(&st->staged, 0, sizeof(st->staged));
    size_t n = batch.len;
    uint64_t *tokens = sim__xalloc(n * sizeof(*tokens));
    uint64_t *tags = sim__xalloc(n * sizeof(*tags));
    for (size_t k = 0; k < n; k++) {
      sim_op *op = &batch.v[k];
      sim__map_set(&st->live, op->part, op->key, op->klen, op->val,
                   op->vlen);
      tokens[k] = op->token;
      tags[k] = op->tag;
      sim__ops_push(&st->unsynced, *op);
    }
    free(batch.v);
    for (size_t k = 0; k < n; k++)
      if (tags[k] && s->hooks.on_commit)
        s->hooks.on_commit(s->hooks.arg, s, i, tags[k]);
    for (size_t k = 0; k < n && nd->core; k++)
      node_store_done(nd->core, tokens[k], 0);
    free(tokens);
    free(tags);
  }
}

static void sim__start_sync(sim *s, int i) {
  sim_store *st = &s->nodes[i].st;
  if (st->syncing || st->sync_wait.len == 0)
    return;
  sim_tokens t = st->sync_run;
  st->sync_run = st->sync_wait;
  st->sync_wait = t;
  st->sync_wait.len = 0;
  st->syncing = true;
  st->sync_upto = st->unsynced.len;
  sim__schedule_node(s, i, SIM_EV_SYNC_DONE,
                     sim_rand_range(s, s->cfg.fsync_min_ms,
                                    s->cfg.fsync_max_ms));
}

static void sim__sync_done(sim *s, int i) {
  sim_node *nd = &s->nodes[i];
  sim_store *st = &nd->st;
  for (size_t k = 0; k < st->sync_upto; k++) {
    sim_op *op = &st->unsynced.v[k];
    sim__map_set(&st->durable, op->part, op->key, op->klen, op->val,
                 op->vlen);
    sim__op_free(op);
  }
  memmove(st->unsynced.v, st->unsynced.v + st->sync_upto,
          (st->unsynced.len - st->sync_upto) * sizeof(*st->unsynced.v));
  st->unsynced.len -= st->sync_upto;
  st->sync_upto = 0;
  st->syncing = false;
  sim_tokens run = st->sync_run;
  memset(&st->sync_run, 0, sizeof(st->sync_run));
  for (size_t k = 0; k < run.len && nd->core; k++)
    node_store_done(nd->core, run.v[k], 0);
  run.len = 0;
  if (!st->sync_run.v)
    st->sync_run = run;
  else
    free(run.v);
  sim__turn(s, i);
}

static void sim__apply_faults_and_send(sim *s, sim_node *nd, sim_out *o) {
  sim_conn *c = sim__conn(s, o->conn);
  if (!c)
    return;
  bool mine_dead = o->dir == 0 ? c->dead_a : c->dead_b;
  bool theirs_dead = o->dir == 0 ? c->dead_b : c->dead_a;
  if (mine_dead || theirs_dead || c->cut)
    return;
  /* Split into frames: faults apply frame by frame. */
  size_t off = 0;
  while (off < o->len) {
    uint32_t blen = 0;
    if (wire_frame_check(o->frame + off, o->len - off, &wire_limits_default,
                         &blen) != 0)
      break;
    const uint8_t *body = o->frame + off + WIRE_HEADER_BYTES;
    off += WIRE_HEADER_BYTES + blen;
    if (c->kind == SIM_CONN_CLIENT) {
      sim__schedule(s, c, o->dir, body, blen, 0, false);
      continue;
    }
    int to = sim__conn_node(c, o->dir);
    wire_msg m;
    bool ok = wire_decode(body, blen, &wire_limits_default, &m) == 0;
    bool hello = ok && m.type == WIRE_PEER_HELLO;
    if (s->blocked[nd->idx][to])
      continue;
    int fate = SIM_PASS;
    uint64_t extra = 0;
    bool reorder = false;
    if (!hello) {
      if (sim__chance_pm(s, s->net.loss_pm)) {
        sim_logf(s, "net: lost %s %s->%s", ok ? wire_type_name(m.type) : "?",
                 nd->name, s->nodes[to].name);
        continue;
      }
      /* Client requests forwarded between nodes are new requests, not
       * retransmissions: never duplicated. */
      if (ok && m.type != WIRE_COORD_PUT && sim__chance_pm(s, s->net.dup_pm))
        fate = SIM_DUP;
      reorder = sim__chance_pm(s, s->net.reorder_pm);
      if (reorder)
        extra = sim_rand_range(s, 1, 50);
    }
    if (s->filter) {
      int f = s->filter(s->filter_arg, s, nd->idx, to, c->id, ok ? &m : NULL,
                        &extra);
      if (f != SIM_PASS)
        fate = f;
    }
    if (fate == SIM_DROP)
      continue;
    sim__schedule(s, c, o->dir, body, blen, extra, reorder);
    if (fate == SIM_DUP)
      sim__schedule(s, c, o->dir, body, blen, extra + 1, true);
  }
}

static void sim__crash(sim *s, int i, bool machine, const char *why);

/* Ends node i's loop turn: commit, start an fsync, write the output. */
static void sim__flush(sim *s, int i) {
  sim_node *nd = &s->nodes[i];
  nd->flush_pending = false;
  if (!nd->up)
    return;
  sim__commit(s, i);
  sim__start_sync(s, i);
  /* Output: callbacks above may add more; take it all. */
  size_t n = nd->nout;
  sim_out *out = nd->out;
  nd->out = NULL;
  nd->nout = nd->capout = 0;
  for (size_t k = 0; k < n; k++) {
    sim__apply_faults_and_send(s, nd, &out[k]);
    free(out[k].frame);
  }
  free(out);
  /* Connections asked to close after their output. */
  for (size_t k = 0; k < s->nconns; k++) {
    sim_conn *c = &s->conns[k];
    if (c->close_after_flush_b && c->b == i && c->epoch_b == nd->epoch) {
      c->close_after_flush_b = false;
      sim__close_side(s, c, 0, true);
    }
    if (c->close_after_flush_a && c->kind == SIM_CONN_PEER && c->a == i &&
        c->epoch_a == nd->epoch) {
      c->close_after_flush_a = false;
      sim__close_side(s, c, 1, true);
    }
  }
  if (nd->want_stop)
    sim__crash(s, i, false, "asked to stop");
}

/* ---- events ---- */

static void sim__deliver_client(sim *s, sim_conn *c, const uint8_t *body,
                                size_t len) {
  sim_client *cl = &s->clients[c->a];
  if (!cl->used || cl->conn != c->id)
    return;
  wire_msg m;
  if (wire_decode(body, len, &wire_limits_default, &m) != 0) {
    sim_logf(s, "client %d: undecodable frame from the node", c->a);
    return;
  }
  if (cl->fn)
    cl->fn(cl->arg, s, c->a, &m);
}

static void sim__deliver(sim *s, sim_ev *ev) {
  sim_conn *c = sim__conn(s, ev->conn);
  if (!c || c->cut)
    return;
  if ((ev->dir == 0 && c->dead_b) || (ev->dir == 1 && c->dead_a))
    return;
  if (c->kind == SIM_CONN_CLIENT && ev->dir == 1) {
    sim__deliver_client(s, c, ev->body, ev->len);
    return;
  }
  int to = sim__conn_node(c, ev->dir);
  sim_node *nd = &s->nodes[to];
  uint64_t ep = ev->dir == 0 ? c->epoch_b : c->epoch_a;
  if (!nd->up || nd->epoch != ep)
    return;
  if (c->kind == SIM_CONN_PEER) {
    int from = sim__conn_node(c, 1 - ev->dir);
    if (s->blocked[from][to])
      return;
  }
  node_conn_kind kind;
  bool greeted;
  if (c->kind == SIM_CONN_CLIENT) {
    kind = NODE_CONN_CLIENT;
    greeted = c->b_greeted;
  } else if (ev->dir == 0) {
    kind = NODE_CONN_PEER_IN;
    greeted = c->b_greeted;
  } else {
    kind = NODE_CONN_PEER_OUT;
    greeted = true; /* we speak first; answers need no hello */
  }
  if (s->hooks.on_frame) {
    wire_msg m;
    bool ok = wire_decode(ev->body, ev->len, &wire_limits_default, &m) == 0;
    s->hooks.on_frame(s->hooks.arg, s, to, kind, ok ? &m : NULL);
  }
  int act = node_on_frame(nd->core, c->id, kind, greeted, ev->body, ev->len);
  if (s->hooks.on_frame_end)
    s->hooks.on_frame_end(s->hooks.arg, s, to);
  if (act == NODE_FRAME_GREETED)
    c->b_greeted = true;
  else if (act == NODE_FRAME_CLOSE) {
    if (ev->dir == 0)
      c->close_after_flush_b = true;
    else
      c->close_after_flush_a = true;
  }
  sim__turn(s, to);
}

static void sim__closed(sim *s, sim_ev *ev) {
  sim_conn *c = sim__conn(s, ev->conn);
  if (!c)
    return;
  if (c->kind == SIM_CONN_CLIENT && ev->dir == 1) {
    if (c->dead_a)
      return;
    c->dead_a = true;
    sim_client *cl = &s->clients[c->a];
    if (cl->used && cl->conn == c->id && !cl->notified) {
      cl->notified = true;
      if (cl->fn)
        cl->fn(cl->arg, s, c->a, NULL);
    }
    return;
  }
  int me = sim__conn_node(c, ev->dir);
  uint64_t ep = ev->dir == 0 ? c->epoch_b : c->epoch_a;
  bool alive = s->nodes[me].up && s->nodes[me].epoch == ep;
  bool *dead = ev->dir == 0 ? &c->dead_b : &c->dead_a;
  if (*dead)
    return;
  *dead = true;
  sim__forget_peer(s, c);
  if (alive && s->nodes[me].core) {
    node_conn_kind kind = c->kind == SIM_CONN_CLIENT ? NODE_CONN_CLIENT
                          : ev->dir == 0 ? NODE_CONN_PEER_IN
                                         : NODE_CONN_PEER_OUT;
    node_on_close(s->nodes[me].core, c->id, kind);
    sim__turn(s, me);
  }
}

static void sim__event(sim *s, sim_ev *ev) {
  switch (ev->type) {
  case SIM_EV_DELIVER:
    sim__deliver(s, ev);
    break;
  case SIM_EV_CLOSED:
    sim__closed(s, ev);
    break;
  case SIM_EV_TICK: {
    sim_node *nd = &s->nodes[ev->node];
    if (!nd->up || nd->epoch != ev->epoch)
      break;
    node_tick(nd->core);
    sim__turn(s, ev->node);
    sim__schedule_node(s, ev->node, SIM_EV_TICK, SIM_TICK_MS);
    break;
  }
  case SIM_EV_FLUSH: {
    sim_node *nd = &s->nodes[ev->node];
    if (!nd->up || nd->epoch != ev->epoch)
      break;
    sim__flush(s, ev->node);
    break;
  }
  case SIM_EV_SYNC_DONE: {
    sim_node *nd = &s->nodes[ev->node];
    if (!nd->up || nd->epoch != ev->epoch)
      break;
    sim__sync_done(s, ev->node);
    break;
  }
  default:
    break;
  }
}

/* Runs the next event if it is due by t. Returns false when none is. */
static bool sim__step(sim *s, uint64_t t) {
  if (s->nheap == 0 || s->heap[0].t > t)
    return false;
  sim_ev ev = sim__heap_pop(s);
  if (ev.t > s->now)
    s->now = ev.t;
  sim__event(s, &ev);
  free(ev.body);
  return true;
}

void sim_run_until(sim *s, uint64_t t_ms) {
  while (sim__step(s, t_ms))
    ;
  if (t_ms > s->now)
    s->now = t_ms;
}

void sim_run_for(sim *s, uint64_t ms) { sim_run_until(s, s->now + ms); }

bool sim_run_while_not(sim *s, bool (*pred)(void *arg, sim *s), void *arg,
                       uint64_t max_ms) {
  uint64_t end = s->now + max_ms;
  if (pred(arg, s))
    return true;
  while (sim__step(s, end))
    if (pred(arg, s))
      return true;
  if (end > s->now)
    s->now = end;
  return pred(arg, s);
}

static bool sim__ring_ready(void *arg, sim *s) {
  (void)arg;
  int first = -1;
  size_t started = 0;
  for (uint32_t i = 0; i < s->cfg.nodes; i++)
    started += s->nodes[i].started;
  for (uint32_t i = 0; i < s->cfg.nodes; i++) {
    if (!s->nodes[i].up)
      continue;
    const gossip *g = node_gossip(s->nodes[i].core);
    const ring *rg = gossip_ring(g);
    if (ring_node_count(rg) != started)
      return false;
    if (first < 0)
      first = (int)i;
    else if (!ring_equal(rg, gossip_ring(node_gossip(s->nodes[first].core))))
      return false;
    for (uint32_t j = 0; j < s->cfg.nodes; j++) {
      if (!s->nodes[j].started)
        continue;
      const gossip_member *m = gossip_find(g, s->nodes[j].name);
      if (!m || m->status != GOSSIP_VALID)
        return false;
      if (s->nodes[j].up && !gossip_alive(g, s->nodes[j].name))
        return false;
    }
  }
  return true;
}

bool sim_wait_ring(sim *s, uint64_t max_ms) {
  return sim_run_while_not(s, sim__ring_ready, NULL, max_ms);
}

/* ---- nodes ---- */

static int sim__start(sim *s, int i) {
  sim_node *nd = &s->nodes[i];
  nd->epoch = ++s->epochs;
  nd->rng = s->cfg.seed ^ (0x51ed2701u * (uint64_t)(i + 1)) ^
            (nd->epoch << 32);
  uint64_t wall = sim__io_wall(nd);
  nd->incarnation = nd->incarnation + 1 > wall ? nd->incarnation + 1 : wall;
  memset(nd->peer_conn, 0, sizeof(nd->peer_conn));
  memset(nd->connect_fail_ms, 0, sizeof(nd->connect_fail_ms));
  sim_kv *saved = sim__map_find(&nd->st.live, SIM_NS_META,
                                (const uint8_t *)"ring", 4);
  uint8_t *ring_copy = saved ? sim__dup(saved->val, saved->vlen) : NULL;
  node_config nc = {
      .id = nd->name,
      .client_addr = nd->client_addr,
      .peer_addr = nd->peer_addr,
      .seeds = s->seeds,
      .nseeds = s->cfg.nodes,
      .incarnation = nd->incarnation,
      .q = s->cfg.q,
      .n = s->cfg.n,
      .region = s->cfg.regions[i],
      .replicas = s->cfg.replicas,
      .nreplicas = s->cfg.nreplicas,
      .r = s->cfg.r,
      .w = s->cfg.w,
      .timeout_ms = s->cfg.timeout_ms,
      .gossip_interval_ms = s->cfg.gossip_interval_ms,
      .ring_saved = ring_copy,
      .ring_saved_len = saved ? saved->vlen : 0,
      .log_level = s->cfg.log_level,
      .aae_interval_ms = s->cfg.aae_interval_ms,
      .hint_interval_ms = s->cfg.hint_interval_ms,
      .handoff_interval_ms = s->cfg.handoff_interval_ms,
      .tombstone_grace_ms = s->cfg.tombstone_grace_ms,
      .requests_max = s->cfg.requests_max,
  };
  node_io io = {
      .ctx = nd,
      .now_ms = sim__io_now,
      .wall_ms = sim__io_wall,
      .random = sim__io_random,
      .conn_send = sim__io_conn_send,
      .conn_close = sim__io_conn_close,
      .peer_send = sim__io_peer_send,
      .store_get = sim__io_store_get,
      .store_put = sim__io_store_put,
      .store_sync = sim__io_store_sync,
      .store_del = sim__io_store_del,
      .store_scan = sim__io_store_scan,
      .store_drop = sim__io_store_drop,
      .hint_put = sim__io_hint_put,
      .hint_get = sim__io_hint_get,
      .hint_del = sim__io_hint_del,
      .hint_scan = sim__io_hint_scan,
      .hint_owner_next = sim__io_hint_owner_next,
      .shutdown = sim__io_shutdown,
      .meta_put = sim__io_meta_put,
      .log = sim__io_log,
  };
  char err[256];
  nd->up = true;
  nd->started = true;
  nd->want_stop = false;
  nd->flush_pending = false;
  nd->core = node_new(&nc, &io, err, sizeof(err));
  free(ring_copy);
  if (!nd->core) {
    nd->up = false;
    fprintf(stderr, "sim: cannot start %s: %s\n", nd->name, err);
    return -1;
  }
  sim_logf(s, "%s starts (incarnation %llu)", nd->name,
           (unsigned long long)nd->incarnation);
  sim__schedule_node(s, i, SIM_EV_TICK, sim_rand_range(s, 1, SIM_TICK_MS));
  sim__turn(s, i);
  return 0;
}

static void sim__crash(sim *s, int i, bool machine, const char *why) {
  sim_node *nd = &s->nodes[i];
  if (!nd->up)
    return;
  sim_logf(s, "%s crashes (%s%s)", nd->name, machine ? "machine, " : "",
           why);
  nd->up = false;
  node *core = nd->core;
  nd->core = NULL;
  /* The process is gone: staged writes and unsent output with it. */
  sim__ops_clear(&nd->st.staged);
  for (size_t k = 0; k < nd->nout; k++)
    free(nd->out[k].frame);
  nd->nout = 0;
  nd->st.sync_wait.len = 0;
  nd->st.sync_run.len = 0;
  nd->st.syncing = false;
  nd->st.sync_upto = 0;
  nd->flush_pending = false;
  if (machine) {
    sim__map_copy(&nd->st.live, &nd->st.durable);
    sim__ops_clear(&nd->st.unsynced);
  }
  /* Every connection of the process closes; the other sides learn. */
  for (size_t k = 0; k < s->nconns; k++) {
    sim_conn *c = &s->conns[k];
    if (c->b == i && c->epoch_b == nd->epoch && !c->dead_b) {
      c->close_after_flush_b = false;
      sim__close_side(s, c, 0, false);
    }
    if (c->kind == SIM_CONN_PEER && c->a == i && c->epoch_a == nd->epoch &&
        !c->dead_a) {
      c->close_after_flush_a = false;
      sim__close_side(s, c, 1, false);
    }
  }
  node_free(core);
}

void sim_crash(sim *s, int i, bool machine) {
  if (i >= 0 && (uint32_t)i < s->cfg.nodes)
    sim__crash(s, i, machine, "killed");
}

int sim_restart(sim *s, int i) {
  if (i < 0 || (uint32_t)i >= s->cfg.nodes || s->nodes[i].up)
    return -1;
  return sim__start(s, i);
}

void sim_set_skew(sim *s, int i, int64_t skew_ms) {
  s->nodes[i].skew_ms = skew_ms;
}

uint32_t sim_nodes(const sim *s) { return s->cfg.nodes; }
bool sim_node_up(const sim *s, int i) { return s->nodes[i].up; }
bool sim_node_started(const sim *s, int i) { return s->nodes[i].started; }
node *sim_node_core(sim *s, int i) { return s->nodes[i].core; }
const char *sim_node_name(const sim *s, int i) { return s->nodes[i].name; }

int sim_node_by_name(const sim *s, const char *id) {
  for (uint32_t i = 0; i < s->cfg.nodes; i++)
    if (strcmp(s->nodes[i].name, id) == 0)
      return (int)i;
  return -1;
}

/* ---- partitions ---- */

void sim_block(sim *s, int a, int b, bool blocked) {
  if (a != b)
    s->blocked[a][b] = blocked;
}

bool sim_blocked(const sim *s, int a, int b) { return s->blocked[a][b]; }

void sim_cut(sim *s, int a, int b) {
  if (a == b)
    return;
  s->blocked[a][b] = s->blocked[b][a] = true;
  for (size_t k = 0; k < s->nconns; k++) {
    sim_conn *c = &s->conns[k];
    if (c->kind != SIM_CONN_PEER || c->cut)
      continue;
    if (!((c->a == a && c->b == b) || (c->a == b && c->b == a)))
      continue;
    if (c->dead_a && c->dead_b)
      continue;
    c->cut = true;
    if (!c->dead_a)
      sim__schedule_closed(s, c, 1);
    if (!c->dead_b)
      sim__schedule_closed(s, c, 0);
    sim__forget_peer(s, c);
  }
}

void sim_isolate(sim *s, int i) {
  for (uint32_t j = 0; j < s->cfg.nodes; j++)
    sim_cut(s, i, (int)j);
}

void sim_split(sim *s, uint32_t side) {
  for (uint32_t i = 0; i < s->cfg.nodes; i++)
    for (uint32_t j = 0; j < s->cfg.nodes; j++)
      if (((side >> i) & 1) && !((side >> j) & 1))
        sim_cut(s, (int)i, (int)j);
}

void sim_heal(sim *s) { memset(s->blocked, 0, sizeof(s->blocked)); }

/* ---- store access ---- */

int sim_store_get(sim *s, int i, const void *key, size_t klen, obj **out) {
  *out = NULL;
  const ring *rg = NULL;
  for (uint32_t k = 0; k < s->cfg.nodes && !rg; k++)
    if (s->nodes[k].up)
      rg = gossip_ring(node_gossip(s->nodes[k].core));
  uint32_t part = rg ? ring_partition(rg, key, klen)
                     : ring_partition_of_hash(s->cfg.q, ring_hash(key, klen));
  const uint8_t *val = NULL;
  size_t vlen = 0;
  int rc = sim__io_store_get(&s->nodes[i], part, key, klen, &val, &vlen);
  if (rc == KV_ENOTFOUND)
    return 0;
  if (rc)
    return rc;
  return obj_decode(val, vlen, out);
}

size_t sim_store_hints(sim *s, int i) {
  size_t n = 0;
  const sim_map *m = &s->nodes[i].st.live;
  for (size_t k = 0; k < m->len; k++)
    n += m->v[k].part == SIM_NS_HINT;
  return n;
}

size_t sim_store_staged(sim *s, int i) { return s->nodes[i].st.staged.len; }

void sim_store_fail(sim *s, int i, int err) { s->nodes[i].store_err = err; }

/* ---- clients ---- */

int sim_client_open(sim *s, int i, sim_client_fn fn, void *arg) {
  if (i < 0 || (uint32_t)i >= s->cfg.nodes || !s->nodes[i].up)
    return -1;
  int c = -1;
  for (int k = 0; k < SIM_CLIENTS_MAX && c < 0; k++)
    if (!s->clients[k].used)
      c = k;
  if (c < 0)
    return -1;
  sim_conn *cn = sim__conn_new(s, SIM_CONN_CLIENT, c, i);
  s->clients[c] = (sim_client){.used = true, .conn = cn->id, .node = i,
                               .fn = fn, .arg = arg};
  return c;
}

void sim_client_send(sim *s, int c, const uint8_t *frame, size_t len) {
  sim_client *cl = &s->clients[c];
  sim_conn *cn = sim__conn(s, cl->conn);
  if (!cl->used || !cn || cn->dead_a || cn->dead_b)
    return;
  size_t off = 0;
  while (off < len) {
    uint32_t blen = 0;
    if (wire_frame_check(frame + off, len - off, &wire_limits_default,
                         &blen) != 0)
      break;
    sim__schedule(s, cn, 0, frame + off + WIRE_HEADER_BYTES, blen, 0, false);
    off += WIRE_HEADER_BYTES + blen;
  }
}

void sim_client_send_body(sim *s, int c, const uint8_t *body, size_t len) {
  sim_client *cl = &s->clients[c];
  sim_conn *cn = sim__conn(s, cl->conn);
  if (!cl->used || !cn || cn->dead_a || cn->dead_b)
    return;
  sim__schedule(s, cn, 0, body, len, 0, false);
}

bool sim_peer_send_body(sim *s, int from, int to, bool answer,
                        const uint8_t *body, size_t len) {
  if (from < 0 || to < 0 || (uint32_t)from >= s->cfg.nodes ||
      (uint32_t)to >= s->cfg.nodes || from == to)
    return false;
  /* A request travels on the connection its sender opened (dir 0); an
   * answer on the one the receiver opened (dir 1). */
  int opener = answer ? to : from, other = answer ? from : to;
  sim_conn *c = sim__conn(s, s->nodes[opener].peer_conn[other]);
  if (!c || c->dead_a || c->dead_b)
    return false;
  sim__schedule(s, c, answer ? 1 : 0, body, len, 0, false);
  return true;
}

void sim_client_admin(sim *s, int c, uint64_t req_id, const char *cmd,
                      const char *name, const char *value) {
  kvbuf args;
  kvbuf_init(&args);
  msgpack_packer pk;
  mp_packer_init(&pk, &args);
  msgpack_pack_map(&pk, name ? 1 : 0);
  if (name) {
    mp_pack_cstr(&pk, name);
    mp_pack_cstr(&pk, value);
  }
  wire_msg m = {.type = WIRE_ADMIN, .req_id = req_id};
  m.text.ptr = (const uint8_t *)cmd;
  m.text.len = strlen(cmd);
  m.raw.ptr = args.data;
  m.raw.len = args.len;
  sim_client_send_msg(s, c, &m);
  kvbuf_free(&args);
}

void sim_client_send_msg(sim *s, int c, const wire_msg *m) {
  kvbuf b;
  kvbuf_init(&b);
  if (wire_encode(&b, m) == 0)
    sim_client_send(s, c, b.data, b.len);
  kvbuf_free(&b);
}

void sim_client_hello(sim *s, int c, uint64_t req_id) {
  wire_msg h = {.type = WIRE_HELLO, .req_id = req_id,
                .version = WIRE_PROTOCOL_VERSION};
  h.text.ptr = (const uint8_t *)"kvsim";
  h.text.len = 5;
  sim_client_send_msg(s, c, &h);
}

void sim_client_close(sim *s, int c) {
  sim_client *cl = &s->clients[c];
  if (!cl->used)
    return;
  sim_conn *cn = sim__conn(s, cl->conn);
  if (cn && !cn->dead_a) {
    cn->dead_a = true;
    if (!cn->dead_b)
      sim__schedule_closed(s, cn, 0);
  }
  memset(cl, 0, sizeof(*cl));
}

bool sim_client_connected(const sim *s, int c) {
  const sim_client *cl = &s->clients[c];
  if (!cl->used || cl->conn == 0 || cl->conn > s->nconns)
    return false;
  const sim_conn *cn = &s->conns[cl->conn - 1];
  return !cn->dead_a && !cn->dead_b;
}

int sim_client_node(const sim *s, int c) { return s->clients[c].node; }

/* ---- lifecycle ---- */

void sim_config_default(sim_config *cfg, uint64_t seed, uint32_t nodes) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->seed = seed;
  cfg->nodes = nodes;
  cfg->q = 16;
  cfg->n = 3;
  cfg->r = 2;
  cfg->w = 2;
  cfg->timeout_ms = 1000;
  cfg->gossip_interval_ms = 200;
  cfg->fsync_min_ms = 1;
  cfg->fsync_max_ms = 5;
  cfg->log_level = NODE_LOG_WARN;
}

sim *sim_new(const sim_config *cfg) {
  if (cfg->nodes == 0 || cfg->nodes > SIM_NODES_MAX) {
    fprintf(stderr, "sim: %u nodes (1..%d)\n", cfg->nodes, SIM_NODES_MAX);
    return NULL;
  }
  sim *s = sim__xalloc(sizeof(*s));
  s->cfg = *cfg;
  s->rng = cfg->seed * 0x2545f4914f6cdd1dull + 1;
  s->net = (sim_net){.lat_min_ms = 1, .lat_max_ms = 5};
  for (uint32_t i = 0; i < cfg->nodes; i++) {
    sim_node *nd = &s->nodes[i];
    nd->s = s;
    nd->idx = (int)i;
    snprintf(nd->name, sizeof(nd->name), "n%u", i + 1);
    snprintf(nd->peer_addr, sizeof(nd->peer_addr), "10.0.0.%u:7001", i + 1);
    snprintf(nd->client_addr, sizeof(nd->client_addr), "10.0.0.%u:7000",
             i + 1);
    s->seeds[i] = nd->peer_addr;
  }
  for (uint32_t i = 0; i < cfg->nodes; i++) {
    if (cfg->late_mask & (1u << i))
      continue;
    if (sim__start(s, (int)i)) {
      sim_free(s);
      return NULL;
    }
  }
  return s;
}

void sim_free(sim *s) {
  if (!s)
    return;
  for (uint32_t i = 0; i < s->cfg.nodes; i++) {
    sim_node *nd = &s->nodes[i];
    node_free(nd->core);
    nd->core = NULL;
    for (size_t k = 0; k < nd->nout; k++)
      free(nd->out[k].frame);
    free(nd->out);
    sim__store_free(&nd->st);
  }
  for (size_t k = 0; k < s->nheap; k++)
    free(s->heap[k].body);
  free(s->heap);
  free(s->conns);
  free(s);
}

void sim_set_hooks(sim *s, const sim_hooks *h) {
  if (h)
    s->hooks = *h;
  else
    memset(&s->hooks, 0, sizeof(s->hooks));
}

void sim_set_filter(sim *s, sim_filter_fn fn, void *arg) {
  s->filter = fn;
  s->filter_arg = arg;
}

void sim_set_net(sim *s, const sim_net *net) { s->net = *net; }
const sim_net *sim_get_net(const sim *s) { return &s->net; }
uint64_t sim_now(const sim *s) { return s->now; }

bool sim_seed_args(int argc, char **argv, const char *prog, uint64_t *seed,
                   uint64_t *count, bool *verbose) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
      *seed = strtoull(argv[++i], NULL, 0);
    else if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc)
      *count = strtoull(argv[++i], NULL, 0);
    else if (strcmp(argv[i], "-v") == 0)
      *verbose = true;
    else {
      fprintf(stderr, "usage: %s [--seed S] [--seeds COUNT] [-v]\n", prog);
      return false;
    }
  }
  return true;
}

/* ---- scripted requests ---- */

static void sim__rc_fn(void *arg, sim *s, int client, const wire_msg *m) {
  sim_rc *rc = arg;
  (void)s;
  (void)client;
  if (!m || m->req_id != rc->req_id || m->type == WIRE_HELLO_OK)
    return;
  rc->got = true;
  rc->type = m->type;
  rc->code = m->type == WIRE_ERROR ? m->code : 0;
  size_t n = m->type == WIRE_ERROR ? m->text.len : 0;
  if (n > SIM_RC_TEXT_MAX - 1)
    n = SIM_RC_TEXT_MAX - 1;
  if (n)
    memcpy(rc->text, m->text.ptr, n);
  rc->text[n] = '\0';
}

static bool sim__rc_got(void *arg, sim *s) {
  (void)s;
  return ((sim_rc *)arg)->got;
}

bool sim_rc_open(sim_rc *rc, sim *s, int i) {
  if (rc->s && rc->handle >= 0)
    sim_client_close(rc->s, rc->handle);
  rc->s = s;
  rc->handle = sim_client_open(s, i, sim__rc_fn, rc);
  if (rc->handle < 0)
    return false;
  sim_client_hello(s, rc->handle, ++rc->req_id);
  return true;
}

uint64_t sim_rc_call(sim_rc *rc, wire_msg *m, uint64_t max_ms) {
  m->req_id = ++rc->req_id;
  rc->got = false;
  rc->text[0] = '\0';
  uint64_t t0 = sim_now(rc->s);
  sim_client_send_msg(rc->s, rc->handle, m);
  if (!sim_run_while_not(rc->s, sim__rc_got, rc, max_ms))
    return UINT64_MAX;
  return sim_now(rc->s) - t0;
}

void sim_rc_close(sim_rc *rc) {
  if (rc->s && rc->handle >= 0)
    sim_client_close(rc->s, rc->handle);
  rc->handle = -1;
}

void sim_script_fail(const char *prog, uint64_t seed, const char *fmt, ...) {
  fprintf(stderr, "%s: seed %" PRIu64 ": ", prog, seed);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, " (replay: %s --seed %" PRIu64 " -v)\n", prog, seed);
}
