/*
 * core.c: the base of the node core (core_int.h): the request table, local
 * storage helpers that keep the anti-entropy trees, sending to clients and
 * peers, logging, and the actors and dot floor of new dots. It calls no
 * module of node/; the modules call it.
 *
 * Pure: acts only through node_io, like the rest of the core.
 */
#include "core_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* ---- small helpers ---- */

void core__log(node *n, node_log_level lvl, const char *fmt, ...) {
  if (lvl > n->log_level)
    return;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  n->io.log(n->io.ctx, lvl, buf);
}

static const char *const core__level_names[] = {
    [NODE_LOG_ERROR] = "error",
    [NODE_LOG_WARN] = "warn",
    [NODE_LOG_INFO] = "info",
    [NODE_LOG_DEBUG] = "debug",
};

const char *node_log_level_name(node_log_level lvl) {
  return (unsigned)lvl <= NODE_LOG_DEBUG ? core__level_names[lvl] : "debug";
}

int node_log_level_parse(const char *name, node_log_level *out) {
  for (unsigned l = NODE_LOG_ERROR; l <= NODE_LOG_DEBUG; l++) {
    if (strcmp(name, core__level_names[l]) == 0) {
      *out = (node_log_level)l;
      return 0;
    }
  }
  return KV_EINVAL;
}

uint64_t core__now(node *n) { return n->io.now_ms(n->io.ctx); }

uint64_t core__now_us(node *n) {
  return n->io.now_us ? n->io.now_us(n->io.ctx)
                      : n->io.now_ms(n->io.ctx) * 1000u;
}

const char *node_op_name(int op) {
  static const char *const names[NODE_OPS] = {"get", "put", "del"};
  return op >= 0 && op < NODE_OPS ? names[op] : "unknown";
}

const char *node_result_name(int result) {
  static const char *const names[NODE_RESULTS] = {
      "ok", "not_found", "timeout", "unavailable", "overload", "bad_request",
      "error"};
  return result >= 0 && result < NODE_RESULTS ? names[result] : "error";
}

int node_result_of(int code) {
  switch (code) {
  case 0: return NODE_RES_OK;
  case KV_ENOTFOUND: return NODE_RES_NOT_FOUND;
  case KV_ETIMEDOUT: return NODE_RES_TIMEOUT;
  case KV_EQUORUM:
  case KV_EUNAVAIL: return NODE_RES_UNAVAILABLE;
  case KV_EOVERLOAD: return NODE_RES_OVERLOAD;
  case KV_EINVAL:
  case KV_ETOOBIG:
  case KV_EPROTO: return NODE_RES_BAD_REQUEST;
  default: return NODE_RES_ERROR;
  }
}

void core__answered(node *n, int op, int code, uint64_t start_us) {
  uint64_t now = core__now_us(n);
  n->stats.requests[op][node_result_of(code)]++;
  kv_hist_add(&n->stats.latency[op], &kv_hist_latency_us,
              now > start_us ? now - start_us : 0);
}

uint64_t node_actor_of(const char *id, uint64_t incarnation) {
  uint8_t buf[RING_NAME_MAX + 8];
  size_t len = strnlen(id, RING_NAME_MAX - 1);
  memcpy(buf, id, len);
  for (int i = 0; i < 8; i++)
    buf[len + (size_t)i] = (uint8_t)(incarnation >> (8 * i));
  return XXH3_64bits(buf, len + 8);
}

uint64_t node_actor_epoch(const char *id, uint64_t incarnation, uint32_t part,
                          uint32_t epoch) {
  if (epoch == 0)
    return node_actor_of(id, incarnation);
  uint8_t buf[RING_NAME_MAX + 16];
  size_t len = strnlen(id, RING_NAME_MAX - 1);
  memcpy(buf, id, len);
  for (int i = 0; i < 8; i++)
    buf[len + (size_t)i] = (uint8_t)(incarnation >> (8 * i));
  for (int i = 0; i < 4; i++) {
    buf[len + 8 + (size_t)i] = (uint8_t)(part >> (8 * i));
    buf[len + 12 + (size_t)i] = (uint8_t)(epoch >> (8 * i));
  }
  return XXH3_64bits(buf, len + 16);
}

uint64_t core__actor(const node *n, uint32_t part) {
  if (part >= RING_Q_MAX || n->part_epoch[part] == 0)
    return n->actor;
  return node_actor_epoch(n->id, n->incarnation, part, n->part_epoch[part]);
}

/* ---- request slots ---- */

core_req *core__req_new(node *n, core_req_kind kind) {
  if (n->nfree == 0)
    return NULL;
  uint32_t slot = n->free_slots[--n->nfree];
  core_req *r = &n->slots[slot];
  uint32_t gen = r->gen + 1;
  memset(r, 0, sizeof(*r));
  r->gen = gen;
  r->slot = slot;
  r->kind = (uint8_t)kind;
  r->start_ms = core__now(n);
  r->start_us = core__now_us(n);
  kvbuf_init(&r->enc);
  kvbuf_init(&r->typed);
  r->next = n->active;
  if (n->active)
    n->active->prev = r;
  n->active = r;
  n->nactive++;
  return r;
}

void core__req_free(node *n, core_req *r) {
  if (r->kind == CORE_REQ_FREE)
    return;
  assert(core__req_check(n, r));
  for (uint32_t i = 0; i < r->ntargets; i++)
    obj_free(r->targets[i].answer);
  obj_free(r->result);
  kvbuf_free(&r->enc);
  kvbuf_free(&r->typed);
  if (r->key != r->key_inline)
    free(r->key);
  if (r->prev)
    r->prev->next = r->next;
  else
    n->active = r->next;
  if (r->next)
    r->next->prev = r->prev;
  n->nactive--;
  uint32_t gen = r->gen;
  uint32_t slot = r->slot;
  memset(r, 0, sizeof(*r));
  r->gen = gen;
  n->free_slots[n->nfree++] = slot;
}

int core__req_set_key(core_req *r, const uint8_t *key, size_t klen) {
  uint8_t *k = r->key_inline;
  if (klen > sizeof(r->key_inline) && !(k = malloc(klen)))
    return KV_ENOMEM;
  if (klen)
    memcpy(k, key, klen);
  r->key = k;
  r->klen = klen;
  return 0;
}

/* Wire ids: [gen (rest) | slot (16 bits) | target (5 bits)]. */
uint64_t core__req_wire_id(const core_req *r, uint32_t target) {
  uint64_t id = ((uint64_t)r->gen << CORE_SLOT_BITS) | r->slot;
  return (id << CORE_TARGET_BITS) | target;
}

core_req *core__req_find(node *n, uint64_t wire_id, uint32_t *target) {
  uint64_t id = wire_id >> CORE_TARGET_BITS;
  uint32_t slot = (uint32_t)(id & (NODE_REQUESTS_MAX - 1));
  uint32_t gen = (uint32_t)(id >> CORE_SLOT_BITS);
  if (slot >= n->nslots)
    return NULL; /* not one of ours: a peer's garbage */
  core_req *r = &n->slots[slot];
  if (r->kind == CORE_REQ_FREE || r->gen != gen)
    return NULL; /* a late answer to a finished request */
  *target = (uint32_t)(wire_id & ((1u << CORE_TARGET_BITS) - 1));
  return r;
}

/* ---- sending ---- */

/* Sends what n->out holds on conn and clears it. */
void core__send_conn(node *n, uint64_t conn) {
  if (n->out.len && !n->out.oom)
    n->io.conn_send(n->io.ctx, conn, n->out.data, n->out.len);
  n->out.len = 0;
  n->out.oom = 0;
}

void core__send_error(node *n, uint64_t conn, uint64_t req_id, int code,
                      const char *fmt, ...) {
  char msg[WIRE_ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  wire_encode_error(&n->out, req_id, code, "%s", msg);
  core__send_conn(n, conn);
}

/* ---- storage helpers ---- */

int core__local_read(node *n, uint32_t part, const uint8_t *key, size_t klen,
                     obj **out, uint64_t *hash) {
  const uint8_t *val = NULL;
  size_t vlen = 0;
  *out = NULL;
  if (hash)
    *hash = 0;
  int rc = n->io.store_get(n->io.ctx, part, key, klen, &val, &vlen);
  if (rc == KV_ENOTFOUND)
    return 0;
  if (rc)
    return rc;
  if (hash)
    *hash = XXH3_64bits(val, vlen);
  rc = obj_decode(val, vlen, out);
  if (rc)
    core__log(n, NODE_LOG_ERROR,
              "stored object of a key in partition %u "
              "does not decode: %s",
              part, kv_strerror(rc));
  return rc;
}

int core__local_write(node *n, uint32_t part, const uint8_t *key, size_t klen,
                      const uint8_t *enc, size_t enc_len, uint64_t old_hash,
                      uint64_t token) {
  int rc = n->io.store_put(n->io.ctx, part, key, klen, enc, enc_len, token);
  if (rc == 0)
    core__tree_update(n, part, key, klen, old_hash, XXH3_64bits(enc, enc_len));
  return rc;
}

int core__local_merge(node *n, uint32_t part, const uint8_t *key, size_t klen,
                      const obj *incoming, uint64_t token, bool *changed) {
  obj *local = NULL;
  uint64_t old_hash = 0;
  bool ch = true;
  int rc = core__local_read(n, part, key, klen, &local, &old_hash);
  if (rc)
    return rc;
  if (local)
    rc = obj_sync(local, incoming, &ch);
  if (changed)
    *changed = ch;
  if (rc || (!ch && token == 0)) {
    obj_free(local);
    return rc;
  }
  kvbuf enc;
  kvbuf_init(&enc);
  rc = obj_encode(local ? local : incoming, &enc);
  if (!rc)
    rc = core__local_write(n, part, key, klen, enc.data, enc.len, old_hash,
                           token);
  kvbuf_free(&enc);
  obj_free(local);
  return rc;
}

size_t core__preflist(const ring *rg, uint32_t p, size_t *idx,
                      size_t *nprimary) {
  size_t np = 0;
  size_t total = ring_preflist(rg, p, idx, NODE_FANOUT_MAX, &np);
  if (total > NODE_FANOUT_MAX)
    total = NODE_FANOUT_MAX;
  *nprimary = np < total ? np : total;
  return total;
}

bool core__is_primary_of(const ring *rg, uint32_t p, const char *id) {
  size_t idx[NODE_FANOUT_MAX];
  size_t np = 0;
  core__preflist(rg, p, idx, &np);
  for (size_t k = 0; k < np; k++)
    if (strcmp(ring_node_id(rg, idx[k]), id) == 0)
      return true;
  return false;
}

bool core__is_primary(node *n, uint32_t p) {
  return core__is_primary_of(gossip_ring(n->gossip), p, n->id);
}

void core__tree_update(node *n, uint32_t part, const uint8_t *key, size_t klen,
                       uint64_t old_hash, uint64_t new_hash) {
  if (part >= n->trees_q || old_hash == new_hash)
    return;
  aae_tree *t = n->trees[part];
  if (!t) {
    t = calloc(1, sizeof(*t));
    if (!t)
      return; /* the next rebuild fixes it */
    n->trees[part] = t;
  }
  tree_update(t, key, klen, old_hash, new_hash);
}

void core__trees_free(node *n) {
  for (uint32_t p = 0; p < n->trees_q; p++)
    free(n->trees[p]);
  free(n->trees);
  n->trees = NULL;
  n->trees_q = 0;
}

/* Remembers key as the point a paged scan resumes after. Returns 0 or
 * KV_ENOMEM. */
int core__cursor(uint8_t **last, size_t *last_len, const uint8_t *key,
                 size_t klen) {
  uint8_t *p = realloc(*last, klen ? klen : 1);
  if (!p)
    return KV_ENOMEM;
  memcpy(p, key, klen);
  *last = p;
  *last_len = klen;
  return 0;
}

/* ---- sending PEER_MSG ---- */

/* Sends a PEER_MSG of kind with payload pl to addr as request r's target
 * ti (r may be NULL: fire and forget). Returns the connection or 0. */
uint64_t core__peer_send(node *n, const char *addr, core_req *r, uint32_t ti,
                         uint32_t kind, const kvbuf *pl) {
  if (pl->oom)
    return 0;
  wire_msg m = {.type = WIRE_PEER_MSG,
                .req_id = r ? core__req_wire_id(r, ti) : 0,
                .flags = kind};
  m.raw.ptr = pl->data;
  m.raw.len = pl->len;
  n->out.len = 0;
  n->out.oom = 0;
  if (wire_encode(&n->out, &m))
    return 0;
  if (kind >= WIRE_PM_AAE_BRANCHES && kind <= WIRE_PM_AAE_OBJS)
    n->stats.aae_bytes += n->out.len;
  uint64_t c = n->io.peer_send(n->io.ctx, addr, n->out.data, n->out.len);
  n->out.len = 0;
  return c;
}

/* Replies with a PEER_MSG on conn (the answer to req_id). */
void core__peer_reply(node *n, uint64_t conn, uint64_t req_id, uint32_t kind,
                      const kvbuf *pl) {
  if (pl->oom)
    return;
  wire_msg m = {.type = WIRE_PEER_MSG, .req_id = req_id, .flags = kind};
  m.raw.ptr = pl->data;
  m.raw.len = pl->len;
  wire_encode(&n->out, &m);
  if (kind >= WIRE_PM_AAE_BRANCHES && kind <= WIRE_PM_AAE_OBJS)
    n->stats.aae_bytes += n->out.len;
  core__send_conn(n, conn);
}

/* Starts request r with one remote target (id, addr). */
core_req *core__peer_req(node *n, core_req_kind kind, const char *id,
                         const char *addr) {
  core_req *r = core__req_new(n, kind);
  if (!r)
    return NULL;
  r->deadline_ms = r->start_ms + n->timeout_ms;
  r->timeout_ms = n->timeout_ms;
  r->ntargets = 1;
  kv_strcopy(r->targets[0].id, sizeof(r->targets[0].id), id);
  kv_strcopy(r->targets[0].addr, sizeof(r->targets[0].addr), addr);
  r->targets[0].alive = true;
  return r;
}

const gossip_member *core__member_up(node *n, const char *id) {
  const gossip_member *m = gossip_find(n->gossip, id);
  if (!m || !m->alive || m->status == GOSSIP_REMOVED ||
      strcmp(m->id, n->id) == 0)
    return NULL;
  return m;
}

typedef struct core__pager {
  node_scan_fn fn;
  void *arg;
  uint8_t *last; /* the key the next page resumes after */
  size_t last_len;
  uint32_t seen; /* keys of the current page */
} core__pager;

static int core__page_fn(void *arg, const uint8_t *key, size_t klen,
                         const uint8_t *val, size_t vlen) {
  core__pager *pg = arg;
  pg->seen++;
  if (core__cursor(&pg->last, &pg->last_len, key, klen))
    return KV_ENOMEM;
  return pg->fn(pg->arg, key, klen, val, vlen);
}

int core__scan(node *n, uint32_t p, node_scan_fn fn, void *arg) {
  core__pager pg = {.fn = fn, .arg = arg};
  int rc;
  do {
    pg.seen = 0;
    rc = n->io.store_scan(n->io.ctx, p, pg.last, pg.last_len, CORE_SCAN_PAGE,
                          core__page_fn, &pg);
  } while (rc == 0 && pg.seen == CORE_SCAN_PAGE);
  free(pg.last);
  return rc;
}

static int core__any_fn(void *arg, const uint8_t *key, size_t klen,
                        const uint8_t *val, size_t vlen) {
  *(bool *)arg = true;
  return 1;
}

bool core__has_data(node *n, uint32_t p) {
  bool any = false;
  n->io.store_scan(n->io.ctx, p, NULL, 0, 1, core__any_fn, &any);
  return any;
}

/* Before actor (ours for o's partition) makes a new dot on o: when o
 * holds no live value of actor, its entry in o's clock (if any) is raised
 * to n->dot_floor, so the new dot is above every dot this node handed out
 * on any key, also on this key before its entry was pruned. Raising loses
 * nothing because this node holds every dot actor made on the key (a
 * dropped partition gets a new actor: docs/architecture.md, "What a dot
 * promises"). Returns 0 or KV_ENOMEM. */
int core__dot_floor(node *n, uint64_t actor, obj *o) {
  if (n->dot_floor == 0)
    return 0;
  for (size_t i = 0; i < obj_sibling_count(o); i++) {
    obj_value v;
    if (obj_sibling(o, i, &v) == 0 && v.actor == actor)
      return 0; /* our counter continues from our live values */
  }
  return obj_raise(o, actor, n->dot_floor, n->io.wall_ms(n->io.ctx));
}

/* After a new dot: remember the largest counter our actor used. */
void core__dot_floor_bump(node *n, uint64_t actor, const obj *o) {
  for (size_t i = 0; i < obj_sibling_count(o); i++) {
    obj_value v;
    if (obj_sibling(o, i, &v) == 0 && v.actor == actor &&
        v.counter > n->dot_floor)
      n->dot_floor = v.counter;
  }
}

bool core__req_check(const node *n, const core_req *r) {
  return r && r->slot < n->nslots && &n->slots[r->slot] == r &&
         r->kind > CORE_REQ_FREE && r->kind < CORE_REQ_KINDS &&
         r->ntargets <= NODE_FANOUT_MAX && n->nactive + n->nfree == n->nslots;
}
