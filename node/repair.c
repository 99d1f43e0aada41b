/*
 * repair.c: how replicas find each other again, in the node core.
 *
 *  - Hinted handoff: a fallback keeps a write for a primary that is down
 *    (PM_HINT_PUT, hints column family) and hands it over when the primary
 *    is back, REPAIR_HINT_BATCH hints per owner per round; a hint is deleted
 *    only after its owner acknowledged it and only if it did not change
 *    meanwhile.
 *  - Anti-entropy: per-partition Tictac trees (core_int.h) updated on every
 *    local write. Every aae_interval_ms a node exchanges one partition's
 *    tree with another primary of it: branches, then the leaves of the
 *    differing branches, then (key, hash) lists of the differing segments,
 *    then the objects that differ. The bytes exchanged grow with the
 *    differences, not with the data.
 *  - Ownership handoff: a node that holds data of a partition it is no
 *    longer a primary of streams it in batches to every current primary,
 *    and drops the partition (range delete) only after each confirmed. A
 *    node that is leaving stops once it holds nothing.
 *  - Tombstone reaping: tombstones are dropped only when every primary
 *    holds the same all-tombstone object and the newest tombstone is older
 *    than the grace period; each replica reaps only if its copy is still
 *    that object. The key keeps its version vector (a few bytes per actor)
 *    so that no late hint, handoff or returning replica can resurrect a
 *    value the delete saw.
 *
 * Pure: acts only through node_io, like the rest of the core.
 */
#include "core_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* ---- trees ---- */

static uint32_t repair__segment(const uint8_t *key, size_t klen) {
  return (uint32_t)(XXH3_64bits(key, klen) & (AAE_SEGMENTS - 1));
}

static uint64_t repair__leaf_part(const uint8_t *key, size_t klen,
                                  uint64_t obj_hash) {
  return XXH3_64bits_withSeed(key, klen, obj_hash);
}

void repair_tree_update(node *n, uint32_t part, const uint8_t *key,
                        size_t klen, uint64_t old_hash, uint64_t new_hash) {
  if (part >= n->trees_q || old_hash == new_hash)
    return;
  aae_tree *t = n->trees[part];
  if (!t) {
    t = calloc(1, sizeof(*t));
    if (!t)
      return; /* the next rebuild fixes it */
    n->trees[part] = t;
  }
  uint32_t seg = repair__segment(key, klen);
  uint64_t delta = 0;
  if (old_hash)
    delta ^= repair__leaf_part(key, klen, old_hash);
  if (new_hash)
    delta ^= repair__leaf_part(key, klen, new_hash);
  t->leaf[seg] ^= delta;
  t->branch[seg / AAE_LEAVES_PER_BRANCH] ^= delta;
}

/* Remembers key as the point a paged scan resumes after. Returns 0 or
 * KV_ENOMEM. */
static int repair__cursor(uint8_t **last, size_t *last_len,
                          const uint8_t *key, size_t klen) {
  uint8_t *p = realloc(*last, klen ? klen : 1);
  if (!p)
    return KV_ENOMEM;
  memcpy(p, key, klen);
  *last = p;
  *last_len = klen;
  return 0;
}

typedef struct repair__build {
  node *n;
  uint32_t part;
  uint8_t *last;
  size_t last_len;
  size_t seen;
} repair__build;

static int repair__build_fn(void *arg, const uint8_t *key, size_t klen,
                            const uint8_t *val, size_t vlen) {
  repair__build *b = arg;
  repair_tree_update(b->n, b->part, key, klen, 0, XXH3_64bits(val, vlen));
  if (repair__cursor(&b->last, &b->last_len, key, klen))
    return KV_ENOMEM;
  b->seen++;
  return 0;
}

/* Builds every partition's tree from storage. */
static int repair__build_trees(node *n, uint32_t q) {
  for (uint32_t p = 0; p < n->trees_q; p++)
    free(n->trees[p]);
  free(n->trees);
  n->trees = calloc(q, sizeof(*n->trees));
  if (!n->trees) {
    n->trees_q = 0;
    return KV_ENOMEM;
  }
  n->trees_q = q;
  for (uint32_t p = 0; p < q; p++) {
    repair__build b = {.n = n, .part = p};
    for (;;) {
      b.seen = 0;
      int rc = n->io.store_scan(n->io.ctx, p, b.last, b.last_len, 1024,
                                repair__build_fn, &b);
      if (rc) {
        free(b.last);
        return rc;
      }
      if (b.seen < 1024)
        break;
    }
    free(b.last);
  }
  return 0;
}

static int repair__count_fn(void *arg, uint32_t part, const uint8_t *key,
                            size_t klen, const uint8_t *val, size_t vlen) {
  (void)part;
  (void)key;
  (void)klen;
  (void)val;
  (void)vlen;
  (*(uint64_t *)arg)++;
  return 0;
}

/* Counts the hints kept by an earlier run, so hints_max, hints_pending and
 * a leaving node's wait for its hints hold across restarts. */
static void repair__count_hints(node *n) {
  char after[RING_NAME_MAX] = "", owner[RING_NAME_MAX];
  uint64_t count = 0;
  while (n->io.hint_owner_next &&
         n->io.hint_owner_next(n->io.ctx, after, owner, sizeof(owner)) == 0) {
    memcpy(after, owner, sizeof(after));
    n->io.hint_scan(n->io.ctx, owner, SIZE_MAX, repair__count_fn, &count);
  }
  n->hints_count = count;
  if (count)
    core__log(n, NODE_LOG_INFO, "%llu hints kept from an earlier run",
              (unsigned long long)count);
}

int repair_init(node *n, const node_config *cfg) {
  n->aae_interval_ms = cfg->aae_interval_ms ? cfg->aae_interval_ms : 10000;
  n->hint_interval_ms = cfg->hint_interval_ms ? cfg->hint_interval_ms : 1000;
  n->handoff_interval_ms =
      cfg->handoff_interval_ms ? cfg->handoff_interval_ms : 1000;
  n->tombstone_grace_ms =
      cfg->tombstone_grace_ms ? cfg->tombstone_grace_ms : 86400000ull;
  n->hints_max = cfg->hints_max ? cfg->hints_max : 1000000ull;
  uint64_t now = core__now(n);
  n->next_aae_ms = now + n->aae_interval_ms;
  n->next_hint_ms = now + n->hint_interval_ms;
  n->next_handoff_ms = now + n->handoff_interval_ms;
  n->reaps = calloc(REPAIR_REAP_QUEUE_MAX, sizeof(*n->reaps));
  if (!n->reaps)
    return KV_ENOMEM;
  repair__count_hints(n);
  return repair__build_trees(n, ring_q(gossip_ring(n->gossip)));
}

void repair_free(node *n) {
  for (uint32_t p = 0; p < n->trees_q; p++)
    free(n->trees[p]);
  free(n->trees);
  n->trees = NULL;
  n->trees_q = 0;
  for (uint32_t i = 0; i < REPAIR_TRANSFERS_MAX; i++)
    free(n->transfers[i].last_key);
  memset(n->transfers, 0, sizeof(n->transfers));
  if (n->reaps)
    for (uint32_t i = 0; i < n->reap_len; i++)
      free(n->reaps[(n->reap_head + i) % REPAIR_REAP_QUEUE_MAX].key);
  free(n->reaps);
  n->reaps = NULL;
}

/* ---- sending PEER_MSG ---- */

/* Sends a PEER_MSG of kind with payload pl to addr as request r's target
 * ti (r may be NULL: fire and forget). Returns the connection or 0. */
static uint64_t repair__send(node *n, const char *addr, core_req *r,
                             uint32_t ti, uint32_t kind, const kvbuf *pl) {
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
  if (kind >= PM_AAE_BRANCHES && kind <= PM_AAE_OBJS)
    n->stats.aae_bytes += n->out.len;
  uint64_t c = n->io.peer_send(n->io.ctx, addr, n->out.data, n->out.len);
  n->out.len = 0;
  return c;
}

/* Replies with a PEER_MSG on conn (the answer to req_id). */
static void repair__reply(node *n, uint64_t conn, uint64_t req_id,
                          uint32_t kind, const kvbuf *pl) {
  if (pl->oom)
    return;
  wire_msg m = {.type = WIRE_PEER_MSG, .req_id = req_id, .flags = kind};
  m.raw.ptr = pl->data;
  m.raw.len = pl->len;
  wire_encode(&n->out, &m);
  if (kind >= PM_AAE_BRANCHES && kind <= PM_AAE_OBJS)
    n->stats.aae_bytes += n->out.len;
  core__send_conn(n, conn);
}

/* Starts request r with one remote target (id, addr). */
static core_req *repair__req(node *n, core_req_kind kind, const char *id,
                             const char *addr) {
  core_req *r = core__req_new(n, kind);
  if (!r)
    return NULL;
  r->deadline_ms = r->start_ms + n->timeout_ms;
  r->timeout_ms = n->timeout_ms;
  r->ntargets = 1;
  snprintf(r->targets[0].id, sizeof(r->targets[0].id), "%s", id);
  snprintf(r->targets[0].addr, sizeof(r->targets[0].addr), "%s", addr);
  r->targets[0].alive = true;
  return r;
}

static const gossip_member *repair__member_up(node *n, const char *id) {
  const gossip_member *m = gossip_find(n->gossip, id);
  if (!m || !m->alive || m->status == GOSSIP_REMOVED ||
      strcmp(m->id, n->id) == 0)
    return NULL;
  return m;
}

/* ---- hints ---- */

/* Merges in into the hint kept for owner (part, key), making it when there
 * is none (then *fresh, and hints_count counts it). With enforce_max a new
 * hint past hints_max is refused with KV_EFULL. Returns 0 or an error. */
static int repair__hint_merge(node *n, const char *owner, uint32_t part,
                              kv_slice key, const obj *in, bool enforce_max,
                              bool *fresh) {
  uint8_t *old = NULL;
  size_t old_len = 0;
  int rc = n->io.hint_get(n->io.ctx, owner, part, key.ptr, key.len, &old,
                          &old_len);
  *fresh = rc == KV_ENOTFOUND;
  if (rc && !*fresh)
    return rc;
  if (*fresh && enforce_max && n->hints_count >= n->hints_max)
    return KV_EFULL;
  kvbuf enc;
  kvbuf_init(&enc);
  if (*fresh) {
    rc = obj_encode(in, &enc);
  } else {
    obj *cur = NULL;
    rc = obj_decode(old, old_len, &cur);
    if (rc == 0)
      rc = obj_sync(cur, in, NULL);
    if (rc == 0)
      rc = obj_encode(cur, &enc);
    obj_free(cur);
  }
  free(old);
  if (rc == 0)
    rc = n->io.hint_put(n->io.ctx, owner, part, key.ptr, key.len, enc.data,
                        enc.len);
  kvbuf_free(&enc);
  if (rc == 0 && *fresh)
    n->hints_count++;
  return rc;
}

static void repair__hint_put(node *n, uint64_t conn, const wire_msg *m,
                             mp_reader *rd) {
  char owner[RING_NAME_MAX];
  kv_slice key, object;
  bool durable = false;
  if (mp_read_cstr(rd, owner, sizeof(owner)) || mp_read_bytes(rd, &key) ||
      mp_read_bytes(rd, &object) || mp_read_bool(rd, &durable) ||
      key.len > KV_KEY_MAX) {
    core__send_error(n, conn, m->req_id, KV_EPROTO, "malformed hint");
    return;
  }
  obj *in = NULL;
  if (obj_decode(object.ptr, object.len, &in)) {
    core__send_error(n, conn, m->req_id, KV_EPROTO, "hinted object is "
                     "invalid");
    return;
  }
  uint32_t part = ring_partition(gossip_ring(n->gossip), key.ptr, key.len);
  bool fresh = false;
  int rc = repair__hint_merge(n, owner, part, key, in, true, &fresh);
  obj_free(in);
  if (rc == KV_EFULL) {
    n->stats.hints_refused++;
    core__log(n, NODE_LOG_WARN, "hint store is full (%llu hints): refusing "
              "a hint for %s", (unsigned long long)n->hints_max, owner);
    core__send_error(n, conn, m->req_id, KV_EFULL,
                     "the hint store of %s is full (%llu hints)", n->id,
                     (unsigned long long)n->hints_max);
    return;
  }
  if (rc) {
    core__send_error(n, conn, m->req_id, rc, "%s cannot keep the hint: %s",
                     n->id, kv_strerror(rc));
    return;
  }
  n->stats.hints_stored++;
  if (durable) {
    core_req *r = core__req_new(n, CORE_REQ_REPLICA);
    if (r) {
      r->conn = conn;
      r->reply_id = m->req_id;
      r->durable = true;
      r->deadline_ms = core__now(n) + n->timeout_ms * 4u;
      if (n->io.store_sync(n->io.ctx,
                           core__req_wire_id(r, 0) | CORE_TOKEN_SYNC) == 0)
        return;
      core__req_free(n, r);
    }
    core__send_error(n, conn, m->req_id, KV_EIO, "cannot sync the hint");
    return;
  }
  wire_msg ok = {.type = WIRE_REPL_PUT_OK, .req_id = m->req_id};
  wire_encode(&n->out, &ok);
  core__send_conn(n, conn);
}

typedef struct repair__hint_ctx {
  node *n;
  const gossip_member *owner;
} repair__hint_ctx;

/* A HINT request about owner's hint (part, key, whose bytes are val),
 * sent to id at addr; repair__hint_done deletes the hint if it is still
 * those bytes. NULL when the request table is full. */
static core_req *repair__hint_req(node *n, const char *id, const char *addr,
                                  const char *owner, uint32_t part,
                                  const uint8_t *key, size_t klen,
                                  const uint8_t *val, size_t vlen) {
  core_req *r = repair__req(n, CORE_REQ_HINT, id, addr);
  if (!r)
    return NULL;
  if (core__req_set_key(r, key, klen)) {
    core__req_free(n, r);
    return NULL;
  }
  r->part = part;
  r->hash = XXH3_64bits(val, vlen);
  snprintf(r->owner, sizeof(r->owner), "%s", owner);
  return r;
}

static int repair__hint_fn(void *arg, uint32_t part, const uint8_t *key,
                           size_t klen, const uint8_t *val, size_t vlen) {
  repair__hint_ctx *h = arg;
  node *n = h->n;
  core_req *r = repair__hint_req(n, h->owner->id, h->owner->peer_addr,
                                 h->owner->id, part, key, klen, val, vlen);
  if (!r)
    return 1;
  wire_msg rp = {.type = WIRE_REPL_PUT, .req_id = core__req_wire_id(r, 0)};
  rp.key.ptr = key;
  rp.key.len = klen;
  rp.object.ptr = val;
  rp.object.len = vlen;
  n->out.len = 0;
  wire_encode(&n->out, &rp);
  uint64_t c = n->out.oom ? 0
                          : n->io.peer_send(n->io.ctx, h->owner->peer_addr,
                                            n->out.data, n->out.len);
  n->out.len = 0;
  n->out.oom = 0;
  if (!c) {
    core__req_free(n, r);
    return 1;
  }
  r->targets[0].conn = c;
  r->targets[0].state = CORE_T_WAIT;
  n->hint_inflight++;
  return 0;
}

typedef struct repair__rehome_ctx {
  node *n;
  const char *owner;
} repair__rehome_ctx;

/* One hint of an owner that left the ring: kept instead as a hint for each
 * current primary of its key, and merged here when this node is one (the
 * old hint then goes once that write is committed). */
static int repair__rehome_fn(void *arg, uint32_t part, const uint8_t *key,
                             size_t klen, const uint8_t *val, size_t vlen) {
  repair__rehome_ctx *c = arg;
  node *n = c->n;
  const ring *rg = gossip_ring(n->gossip);
  obj *o = NULL;
  if (obj_decode(val, vlen, &o)) {
    core__log(n, NODE_LOG_ERROR, "a hint for %s does not decode; dropping "
              "it", c->owner);
    if (n->io.hint_del(n->io.ctx, c->owner, part, key, klen) == 0 &&
        n->hints_count)
      n->hints_count--;
    return 0;
  }
  uint32_t p = ring_partition(rg, key, klen);
  size_t idx[NODE_FANOUT_MAX], np = 0;
  core__preflist(rg, p, idx, &np);
  bool self = false;
  int rc = 0;
  for (size_t i = 0; i < np && rc == 0; i++) {
    const char *id = ring_node_id(rg, idx[i]);
    bool fresh;
    if (strcmp(id, n->id) == 0)
      self = true;
    else
      rc = repair__hint_merge(n, id, p, (kv_slice){key, klen}, o, false,
                              &fresh);
  }
  core_req *r = NULL;
  if (rc == 0 && self) {
    r = repair__hint_req(n, n->id, n->peer_addr, c->owner, part, key, klen,
                         val, vlen);
    if (!r)
      rc = KV_EOVERLOAD;
  }
  if (r && rc == 0) {
    rc = core__local_merge(n, p, key, klen, o, core__req_wire_id(r, 0), NULL);
    if (rc == 0)
      n->hint_inflight++; /* repair__hint_done when it is committed */
  }
  obj_free(o);
  if (rc) {
    if (r)
      core__req_free(n, r);
    return 1; /* try again next round */
  }
  if (!self && n->io.hint_del(n->io.ctx, c->owner, part, key, klen) == 0 &&
      n->hints_count)
    n->hints_count--;
  return 0;
}

/* Owners with hints that are no longer in the ring (left, or removed while
 * down) will never take them: their hints go to the keys' current
 * primaries, as Riak's fallback vnodes hand off to the new owners. */
static void repair__rehome_hints(node *n) {
  const ring *rg = gossip_ring(n->gossip);
  if (!n->io.hint_owner_next || ring_node_count(rg) == 0)
    return;
  char after[RING_NAME_MAX] = "", owner[RING_NAME_MAX];
  while (n->io.hint_owner_next(n->io.ctx, after, owner, sizeof(owner)) == 0) {
    memcpy(after, owner, sizeof(after));
    /* Out of the ring is what counts: a node that restarted may know a
     * removed member as valid again (the removal is not kept across
     * restarts, the ring is). A joining member owns nothing yet. */
    const gossip_member *m = gossip_find(n->gossip, owner);
    if (ring_node_index(rg, owner) >= 0 ||
        (m && m->status == GOSSIP_JOINING))
      continue;
    repair__rehome_ctx c = {.n = n, .owner = owner};
    n->io.hint_scan(n->io.ctx, owner, REPAIR_HINT_BATCH, repair__rehome_fn,
                    &c);
  }
}

static void repair__deliver_hints(node *n) {
  if (n->hint_inflight)
    return; /* throttle: one batch per owner at a time */
  size_t cnt = gossip_member_count(n->gossip);
  for (size_t i = 0; i < cnt; i++) {
    const gossip_member *m = gossip_member_at(n->gossip, i);
    if (!repair__member_up(n, m->id))
      continue;
    repair__hint_ctx h = {.n = n, .owner = m};
    n->io.hint_scan(n->io.ctx, m->id, REPAIR_HINT_BATCH, repair__hint_fn, &h);
  }
  repair__rehome_hints(n);
}

static void repair__hint_done(node *n, core_req *r, bool ok) {
  if (ok) {
    uint8_t *cur = NULL;
    size_t len = 0;
    if (n->io.hint_get(n->io.ctx, r->owner, r->part, r->key, r->klen, &cur,
                       &len) == 0 &&
        XXH3_64bits(cur, len) == r->hash &&
        n->io.hint_del(n->io.ctx, r->owner, r->part, r->key, r->klen) == 0) {
      n->stats.hints_delivered++;
      if (n->hints_count)
        n->hints_count--;
    }
    free(cur);
  }
  if (n->hint_inflight)
    n->hint_inflight--;
  core__req_free(n, r);
}

/* ---- anti-entropy ---- */

static const aae_tree *repair__tree(node *n, uint32_t p) {
  static const aae_tree empty; /* all zero: a partition without data */
  return p < n->trees_q && n->trees[p] ? n->trees[p] : &empty;
}

static void repair__aae_start(node *n) {
  uint32_t q = n->trees_q;
  const ring *rg = gossip_ring(n->gossip);
  if (q == 0 || ring_q(rg) != q)
    return;
  for (uint32_t tries = 0; tries < q; tries++) {
    uint32_t p = n->aae_next_part++ % q;
    size_t idx[NODE_FANOUT_MAX];
    size_t np = 0;
    core__preflist(rg, p, idx, &np);
    bool mine = false;
    const gossip_member *peers[NODE_FANOUT_MAX];
    size_t npeers = 0;
    for (size_t i = 0; i < np; i++) {
      const char *id = ring_node_id(rg, idx[i]);
      if (strcmp(id, n->id) == 0)
        mine = true;
      else if (repair__member_up(n, id))
        peers[npeers++] = repair__member_up(n, id);
    }
    if (!mine || npeers == 0)
      continue;
    const gossip_member *peer = peers[n->io.random(n->io.ctx) % npeers];
    core_req *r = repair__req(n, CORE_REQ_AAE, peer->id, peer->peer_addr);
    if (!r)
      return;
    r->part = p;
    r->aux = 1;
    const aae_tree *t = repair__tree(n, p);
    kvbuf pl;
    kvbuf_init(&pl);
    msgpack_packer pk;
    mp_packer_init(&pk, &pl);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint32(&pk, p);
    msgpack_pack_array(&pk, AAE_BRANCHES);
    for (uint32_t b = 0; b < AAE_BRANCHES; b++)
      msgpack_pack_uint64(&pk, t->branch[b]);
    uint64_t c = repair__send(n, peer->peer_addr, r, 0, PM_AAE_BRANCHES, &pl);
    kvbuf_free(&pl);
    if (!c) {
      core__req_free(n, r);
      return;
    }
    r->targets[0].conn = c;
    r->targets[0].state = CORE_T_WAIT;
    n->aae_running = true;
    return;
  }
}

/* B: answers a tree's branches with its leaves of the differing ones. */
static void repair__aae_branches(node *n, uint64_t conn, const wire_msg *m,
                                 mp_reader *rd) {
  uint32_t p, cnt;
  if (mp_read_u32(rd, &p) || p >= n->trees_q || mp_read_array(rd, &cnt) ||
      cnt != AAE_BRANCHES) {
    core__send_error(n, conn, m->req_id, KV_EPROTO, "malformed aae branches");
    return;
  }
  n->stats.aae_bytes += m->raw.len;
  const aae_tree *t = repair__tree(n, p);
  bool diff[AAE_BRANCHES];
  uint32_t ndiff = 0;
  for (uint32_t b = 0; b < AAE_BRANCHES; b++) {
    uint64_t h;
    if (mp_read_uint(rd, &h)) {
      core__send_error(n, conn, m->req_id, KV_EPROTO, "malformed branch");
      return;
    }
    diff[b] = h != t->branch[b];
    ndiff += diff[b];
  }
  kvbuf pl;
  kvbuf_init(&pl);
  msgpack_packer pk;
  mp_packer_init(&pk, &pl);
  msgpack_pack_array(&pk, 2);
  msgpack_pack_uint32(&pk, p);
  msgpack_pack_array(&pk, ndiff);
  for (uint32_t b = 0; b < AAE_BRANCHES; b++) {
    if (!diff[b])
      continue;
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint32(&pk, b);
    msgpack_pack_array(&pk, AAE_LEAVES_PER_BRANCH);
    for (uint32_t l = 0; l < AAE_LEAVES_PER_BRANCH; l++)
      msgpack_pack_uint64(&pk, t->leaf[b * AAE_LEAVES_PER_BRANCH + l]);
  }
  repair__reply(n, conn, m->req_id, PM_AAE_LEAVES, &pl);
  kvbuf_free(&pl);
}

/* A bitmap of segments. */
typedef struct repair__segs {
  uint64_t bits[AAE_SEGMENTS / 64];
  uint32_t count;
} repair__segs;

static bool repair__seg_has(const repair__segs *s, uint32_t seg) {
  return (s->bits[seg / 64] >> (seg % 64)) & 1u;
}

typedef struct repair__keys {
  node *n;
  const repair__segs *segs;
  msgpack_packer *pk;
  kvbuf *items; /* packed entries, counted in count */
  uint32_t count;
  bool objects; /* pack [key, object] instead of [key, hash] */
  uint8_t *last;
  size_t last_len;
  size_t seen;
} repair__keys;

static int repair__keys_fn(void *arg, const uint8_t *key, size_t klen,
                           const uint8_t *val, size_t vlen) {
  repair__keys *k = arg;
  k->seen++;
  if (repair__cursor(&k->last, &k->last_len, key, klen))
    return KV_ENOMEM;
  if (!repair__seg_has(k->segs, repair__segment(key, klen)))
    return 0;
  if (k->count >= REPAIR_AAE_KEYS_MAX)
    return 1;
  msgpack_pack_array(k->pk, 2);
  mp_pack_bin(k->pk, key, klen);
  if (k->objects)
    mp_pack_bin(k->pk, val, vlen);
  else
    msgpack_pack_uint64(k->pk, XXH3_64bits(val, vlen));
  k->count++;
  return 0;
}

/* Packs [key, hash] (or [key, object]) of every local key of p in segs
 * into items; returns the count. */
static uint32_t repair__collect(node *n, uint32_t p, const repair__segs *segs,
                                bool objects, kvbuf *items) {
  msgpack_packer pk;
  mp_packer_init(&pk, items);
  repair__keys k = {.n = n, .segs = segs, .pk = &pk, .items = items,
                    .objects = objects};
  for (;;) {
    k.seen = 0;
    int rc = n->io.store_scan(n->io.ctx, p, k.last, k.last_len, 1024,
                              repair__keys_fn, &k);
    if (rc || k.seen < 1024)
      break;
  }
  free(k.last);
  return k.count;
}

/* A: the leaves of the differing branches came back. */
static void repair__aae_leaves(node *n, core_req *r, mp_reader *rd) {
  uint32_t p, cnt;
  if (mp_read_u32(rd, &p) || p != r->part || mp_read_array(rd, &cnt) ||
      cnt > AAE_BRANCHES)
    goto done;
  const aae_tree *t = repair__tree(n, p);
  repair__segs segs;
  memset(&segs, 0, sizeof(segs));
  for (uint32_t i = 0; i < cnt; i++) {
    uint32_t two, b, nl;
    if (mp_read_array(rd, &two) || two != 2 || mp_read_u32(rd, &b) ||
        b >= AAE_BRANCHES || mp_read_array(rd, &nl) ||
        nl != AAE_LEAVES_PER_BRANCH)
      goto done;
    for (uint32_t l = 0; l < nl; l++) {
      uint64_t h;
      if (mp_read_uint(rd, &h))
        goto done;
      uint32_t seg = b * AAE_LEAVES_PER_BRANCH + l;
      if (h != t->leaf[seg]) {
        segs.bits[seg / 64] |= 1ull << (seg % 64);
        segs.count++;
      }
    }
  }
  if (segs.count == 0)
    goto done;
  /* Send our (key, hash) list for the differing segments. */
  kvbuf items;
  kvbuf_init(&items);
  uint32_t nkeys = repair__collect(n, p, &segs, false, &items);
  kvbuf pl;
  kvbuf_init(&pl);
  msgpack_packer pk;
  mp_packer_init(&pk, &pl);
  msgpack_pack_array(&pk, 3);
  msgpack_pack_uint32(&pk, p);
  msgpack_pack_array(&pk, segs.count);
  for (uint32_t s = 0; s < AAE_SEGMENTS; s++)
    if (repair__seg_has(&segs, s))
      msgpack_pack_uint32(&pk, s);
  msgpack_pack_array(&pk, nkeys);
  kvbuf_append(&pl, items.data, items.len);
  kvbuf_free(&items);
  r->aux = 2;
  r->targets[0].state = CORE_T_IDLE;
  uint64_t c = repair__send(n, r->targets[0].addr, r, 0, PM_AAE_KEYS, &pl);
  kvbuf_free(&pl);
  if (c) {
    r->targets[0].conn = c;
    r->targets[0].state = CORE_T_WAIT;
    r->deadline_ms = core__now(n) + n->timeout_ms;
    return;
  }
done:
  n->stats.aae_exchanges++;
  n->aae_running = false;
  core__req_free(n, r);
}

/* The (key, hash) list A sent, for a merge join with our own keys. */
typedef struct repair__theirs {
  kv_slice key;
  uint64_t hash;
} repair__theirs;

static int repair__key_cmp(kv_slice a, kv_slice b) {
  size_t l = a.len < b.len ? a.len : b.len;
  int c = l ? memcmp(a.ptr, b.ptr, l) : 0;
  if (c)
    return c;
  return a.len < b.len ? -1 : a.len > b.len;
}

typedef struct repair__join {
  node *n;
  const repair__segs *segs;
  repair__theirs *theirs;
  uint32_t ntheirs, pos;
  uint8_t *matched; /* per key of theirs: 0 we lack it, 1 differs, 2 same */
  msgpack_packer *objs_pk;
  uint32_t nobjs;
  uint8_t *last;
  size_t last_len;
  size_t seen;
} repair__join;

static int repair__join_fn(void *arg, const uint8_t *key, size_t klen,
                           const uint8_t *val, size_t vlen) {
  repair__join *j = arg;
  j->seen++;
  if (repair__cursor(&j->last, &j->last_len, key, klen))
    return KV_ENOMEM;
  if (!repair__seg_has(j->segs, repair__segment(key, klen)))
    return 0;
  kv_slice mine = {.ptr = key, .len = klen};
  while (j->pos < j->ntheirs &&
         repair__key_cmp(j->theirs[j->pos].key, mine) < 0)
    j->pos++;
  bool same_key = j->pos < j->ntheirs &&
                  repair__key_cmp(j->theirs[j->pos].key, mine) == 0;
  uint64_t h = XXH3_64bits(val, vlen);
  if (same_key) {
    j->matched[j->pos] = j->theirs[j->pos].hash == h ? 2 : 1;
    if (j->matched[j->pos] == 2)
      return 0;
  }
  if (j->nobjs >= REPAIR_AAE_KEYS_MAX)
    return 1;
  msgpack_pack_array(j->objs_pk, 2);
  mp_pack_bin(j->objs_pk, key, klen);
  mp_pack_bin(j->objs_pk, val, vlen);
  j->nobjs++;
  return 0;
}

/* B: A's (key, hash) list for the differing segments: send back our
 * objects that differ or that A lacks, and ask for what we lack. */
static void repair__aae_keys(node *n, uint64_t conn, const wire_msg *m,
                             mp_reader *rd) {
  n->stats.aae_bytes += m->raw.len;
  uint32_t p, nsegs, nkeys;
  repair__segs segs;
  memset(&segs, 0, sizeof(segs));
  if (mp_read_u32(rd, &p) || p >= n->trees_q || mp_read_array(rd, &nsegs) ||
      nsegs > AAE_SEGMENTS)
    goto bad;
  for (uint32_t i = 0; i < nsegs; i++) {
    uint32_t s;
    if (mp_read_u32(rd, &s) || s >= AAE_SEGMENTS)
      goto bad;
    if (!repair__seg_has(&segs, s)) {
      segs.bits[s / 64] |= 1ull << (s % 64);
      segs.count++;
    }
  }
  if (mp_read_array(rd, &nkeys) || nkeys > REPAIR_AAE_KEYS_MAX)
    goto bad;
  repair__theirs *theirs = calloc(nkeys ? nkeys : 1, sizeof(*theirs));
  uint8_t *matched = calloc(nkeys ? nkeys : 1, sizeof(*matched));
  if (!theirs || !matched) {
    free(theirs);
    free(matched);
    core__send_error(n, conn, m->req_id, KV_ENOMEM, "out of memory");
    return;
  }
  for (uint32_t i = 0; i < nkeys; i++) {
    uint32_t two;
    if (mp_read_array(rd, &two) || two != 2 ||
        mp_read_bytes(rd, &theirs[i].key) ||
        mp_read_uint(rd, &theirs[i].hash) || theirs[i].key.len > KV_KEY_MAX ||
        (i && repair__key_cmp(theirs[i - 1].key, theirs[i].key) >= 0)) {
      free(theirs);
      free(matched);
      goto bad;
    }
  }
  kvbuf objs, want;
  kvbuf_init(&objs);
  kvbuf_init(&want);
  msgpack_packer opk;
  mp_packer_init(&opk, &objs);
  repair__join j = {.n = n, .segs = &segs, .theirs = theirs,
                    .ntheirs = nkeys, .matched = matched, .objs_pk = &opk};
  for (;;) {
    j.seen = 0;
    int rc = n->io.store_scan(n->io.ctx, p, j.last, j.last_len, 1024,
                              repair__join_fn, &j);
    if (rc || j.seen < 1024)
      break;
  }
  free(j.last);
  /* We want every key of theirs that we lack or hold differently (the
   * differing ones also went into objs: each side merges the other's). */
  msgpack_packer want_pk;
  mp_packer_init(&want_pk, &want);
  uint32_t nwant = 0;
  for (uint32_t i = 0; i < nkeys; i++) {
    if (matched[i] == 2)
      continue;
    mp_pack_bin(&want_pk, theirs[i].key.ptr, theirs[i].key.len);
    nwant++;
  }
  kvbuf pl;
  kvbuf_init(&pl);
  msgpack_packer pk;
  mp_packer_init(&pk, &pl);
  msgpack_pack_array(&pk, 3);
  msgpack_pack_uint32(&pk, p);
  msgpack_pack_array(&pk, j.nobjs);
  kvbuf_append(&pl, objs.data, objs.len);
  msgpack_pack_array(&pk, nwant);
  kvbuf_append(&pl, want.data, want.len);
  repair__reply(n, conn, m->req_id, PM_AAE_OBJS, &pl);
  kvbuf_free(&pl);
  kvbuf_free(&objs);
  kvbuf_free(&want);
  free(theirs);
  free(matched);
  return;
bad:
  core__send_error(n, conn, m->req_id, KV_EPROTO, "malformed aae keys");
}

/* A: objects to merge, and the keys B wants from us. */
static void repair__aae_objs(node *n, core_req *r, mp_reader *rd) {
  uint32_t p, nobjs, nwant;
  if (mp_read_u32(rd, &p) || p != r->part || mp_read_array(rd, &nobjs))
    goto done;
  for (uint32_t i = 0; i < nobjs; i++) {
    uint32_t two;
    kv_slice key, val;
    if (mp_read_array(rd, &two) || two != 2 || mp_read_bytes(rd, &key) ||
        mp_read_bytes(rd, &val) || key.len > KV_KEY_MAX)
      goto done;
    obj *o = NULL;
    if (obj_decode(val.ptr, val.len, &o))
      continue;
    bool changed = false;
    if (core__local_merge(n, p, key.ptr, key.len, o, 0, &changed) == 0 &&
        changed)
      n->stats.aae_keys_repaired++;
    obj_free(o);
  }
  if (mp_read_array(rd, &nwant))
    goto done;
  for (uint32_t i = 0; i < nwant; i++) {
    kv_slice key;
    if (mp_read_bytes(rd, &key) || key.len > KV_KEY_MAX)
      goto done;
    const uint8_t *val = NULL;
    size_t vlen = 0;
    if (n->io.store_get(n->io.ctx, p, key.ptr, key.len, &val, &vlen) != 0)
      continue;
    wire_msg rp = {.type = WIRE_REPL_PUT, .req_id = 0};
    rp.key = key;
    rp.object.ptr = val;
    rp.object.len = vlen;
    n->out.len = 0;
    wire_encode(&n->out, &rp);
    n->stats.aae_bytes += n->out.len;
    if (!n->out.oom)
      n->io.peer_send(n->io.ctx, r->targets[0].addr, n->out.data,
                      n->out.len);
    n->out.len = 0;
    n->out.oom = 0;
  }
done:
  n->stats.aae_exchanges++;
  n->aae_running = false;
  core__req_free(n, r);
}

/* ---- ownership handoff ---- */

typedef struct repair__batch {
  msgpack_packer *pk;
  uint32_t count;
  uint8_t *last;
  size_t last_len;
} repair__batch;

static int repair__batch_fn(void *arg, const uint8_t *key, size_t klen,
                            const uint8_t *val, size_t vlen) {
  repair__batch *b = arg;
  msgpack_pack_array(b->pk, 2);
  mp_pack_bin(b->pk, key, klen);
  mp_pack_bin(b->pk, val, vlen);
  b->count++;
  if (repair__cursor(&b->last, &b->last_len, key, klen))
    return KV_ENOMEM;
  return 0;
}

static void repair__handoff_send(node *n, uint32_t ti) {
  core_transfer *t = &n->transfers[ti];
  if (!repair__member_up(n, t->target))
    return;
  kvbuf items;
  kvbuf_init(&items);
  msgpack_packer ipk;
  mp_packer_init(&ipk, &items);
  repair__batch b = {.pk = &ipk};
  int rc = n->io.store_scan(n->io.ctx, t->part, t->last_key, t->last_len,
                            REPAIR_HANDOFF_BATCH, repair__batch_fn, &b);
  if (rc) {
    kvbuf_free(&items);
    free(b.last);
    return;
  }
  core_req *r = repair__req(n, CORE_REQ_HANDOFF, t->target, t->addr);
  if (!r) {
    kvbuf_free(&items);
    free(b.last);
    return;
  }
  r->aux = ti;
  r->part = t->part;
  r->key = b.last; /* the resume point once this batch is acknowledged */
  r->klen = b.last_len;
  r->hash = b.count;
  t->last_batch = b.count < REPAIR_HANDOFF_BATCH;
  kvbuf pl;
  kvbuf_init(&pl);
  msgpack_packer pk;
  mp_packer_init(&pk, &pl);
  msgpack_pack_array(&pk, 3);
  msgpack_pack_uint32(&pk, t->part);
  msgpack_pack_array(&pk, b.count);
  kvbuf_append(&pl, items.data, items.len);
  if (t->last_batch)
    msgpack_pack_true(&pk);
  else
    msgpack_pack_false(&pk);
  kvbuf_free(&items);
  uint64_t c = repair__send(n, t->addr, r, 0, PM_HANDOFF, &pl);
  kvbuf_free(&pl);
  if (!c) {
    core__req_free(n, r);
    return;
  }
  r->targets[0].conn = c;
  r->targets[0].state = CORE_T_WAIT;
  t->inflight = true;
  t->req_gen = core__req_wire_id(r, 0);
}

/* Receiver: merge a batch, ack after it is committed. */
static void repair__handoff_recv(node *n, uint64_t conn, const wire_msg *m,
                                 mp_reader *rd) {
  uint32_t p, cnt;
  if (mp_read_u32(rd, &p) || mp_read_array(rd, &cnt)) {
    core__send_error(n, conn, m->req_id, KV_EPROTO, "malformed handoff");
    return;
  }
  core_req *r = core__req_new(n, CORE_REQ_REPLICA);
  if (!r) {
    core__send_error(n, conn, m->req_id, KV_EOVERLOAD, "%s is overloaded",
                     n->id);
    return;
  }
  r->conn = conn;
  r->reply_id = m->req_id;
  r->deadline_ms = core__now(n) + n->timeout_ms * 4u;
  int rc = 0;
  for (uint32_t i = 0; i < cnt && !rc; i++) {
    uint32_t two;
    kv_slice key, val;
    if (mp_read_array(rd, &two) || two != 2 || mp_read_bytes(rd, &key) ||
        mp_read_bytes(rd, &val) || key.len > KV_KEY_MAX) {
      rc = KV_EPROTO;
      break;
    }
    obj *o = NULL;
    rc = obj_decode(val.ptr, val.len, &o);
    if (rc)
      break;
    uint32_t kp = ring_partition(gossip_ring(n->gossip), key.ptr, key.len);
    uint64_t tok = i + 1 == cnt ? core__req_wire_id(r, 0) : 0;
    rc = core__local_merge(n, kp, key.ptr, key.len, o, tok, NULL);
    obj_free(o);
    n->stats.handoff_keys_received++;
  }
  if (rc || cnt == 0) {
    core__req_free(n, r);
    if (rc)
      core__send_error(n, conn, m->req_id, rc, "handoff batch failed: %s",
                       kv_strerror(rc));
    else {
      wire_msg ok = {.type = WIRE_REPL_PUT_OK, .req_id = m->req_id};
      wire_encode(&n->out, &ok);
      core__send_conn(n, conn);
    }
  }
}

static void repair__handoff_ack(node *n, core_req *r, bool ok) {
  uint32_t ti = r->aux;
  if (ti < REPAIR_TRANSFERS_MAX && n->transfers[ti].active &&
      n->transfers[ti].req_gen == core__req_wire_id(r, 0)) {
    core_transfer *t = &n->transfers[ti];
    t->inflight = false;
    if (ok) {
      t->keys_sent += r->hash;
      n->stats.handoff_keys_sent += r->hash;
      free(t->last_key);
      t->last_key = r->key;
      t->last_len = r->klen;
      r->key = NULL;
      if (t->last_batch)
        t->done = true;
      else
        repair__handoff_send(n, ti);
    }
  }
  core__req_free(n, r);
}

static int repair__any_fn(void *arg, const uint8_t *key, size_t klen,
                          const uint8_t *val, size_t vlen) {
  *(bool *)arg = true;
  return 1;
}

static bool repair__has_data(node *n, uint32_t p) {
  bool any = false;
  n->io.store_scan(n->io.ctx, p, NULL, 0, 1, repair__any_fn, &any);
  return any;
}

static int repair__transfer_find(node *n, uint32_t p, const char *target) {
  for (uint32_t i = 0; i < REPAIR_TRANSFERS_MAX; i++)
    if (n->transfers[i].active && n->transfers[i].part == p &&
        strcmp(n->transfers[i].target, target) == 0)
      return (int)i;
  return -1;
}

static void repair__transfer_clear(node *n, uint32_t p) {
  for (uint32_t i = 0; i < REPAIR_TRANSFERS_MAX; i++) {
    core_transfer *t = &n->transfers[i];
    if (t->active && t->part == p && !t->inflight) {
      free(t->last_key);
      memset(t, 0, sizeof(*t));
    }
  }
}

/* Whether id is a primary of partition p in rg. */
static bool repair__is_target(const ring *rg, uint32_t p, const char *id) {
  size_t idx[NODE_FANOUT_MAX];
  size_t np = 0;
  core__preflist(rg, p, idx, &np);
  for (size_t k = 0; k < np; k++)
    if (strcmp(ring_node_id(rg, idx[k]), id) == 0)
      return true;
  return false;
}

/* Finds partitions this node holds but no longer owns, starts transfers
 * to their primaries, and drops a partition every primary confirmed.
 *
 * A partition takes the transfer slots for all its primaries at once, or
 * waits until there are enough: a partition only drops when every one of
 * its transfers is done, so slots held by partitions that each still miss
 * a target would otherwise never come free. Transfers whose target is no
 * longer a primary of their partition (the ring changed again), or whose
 * partition is ours again, are forgotten. */
static void repair__handoff(node *n) {
  const ring *rg = gossip_ring(n->gossip);
  uint32_t q = ring_q(rg);
  if (q != n->trees_q || ring_node_count(rg) == 0)
    return;
  uint32_t free_slots = 0;
  for (uint32_t i = 0; i < REPAIR_TRANSFERS_MAX; i++) {
    core_transfer *t = &n->transfers[i];
    if (t->active && !t->inflight &&
        (t->part >= q || core__is_primary(n, t->part) ||
         !repair__is_target(rg, t->part, t->target))) {
      free(t->last_key);
      memset(t, 0, sizeof(*t));
    }
    if (t->active && !t->inflight && !t->done &&
        repair__member_up(n, t->target))
      repair__handoff_send(n, i);
    free_slots += !t->active;
  }
  for (uint32_t p = 0; p < q; p++) {
    if (core__is_primary(n, p))
      continue;
    if (!n->trees[p] && !repair__has_data(n, p))
      continue;
    if (!repair__has_data(n, p)) {
      free(n->trees[p]);
      n->trees[p] = NULL;
      continue;
    }
    size_t idx[NODE_FANOUT_MAX];
    size_t np = 0;
    core__preflist(rg, p, idx, &np);
    bool all_done = np > 0;
    uint32_t missing = 0;
    for (size_t k = 0; k < np; k++) {
      int ti = repair__transfer_find(n, p, ring_node_id(rg, idx[k]));
      if (ti >= 0)
        all_done &= n->transfers[ti].done;
      else
        missing++;
    }
    if (missing > 0) {
      all_done = false;
      if (missing > free_slots)
        continue; /* later, when enough slots are free */
      for (size_t k = 0; k < np; k++) {
        const char *id = ring_node_id(rg, idx[k]);
        const gossip_member *m = gossip_find(n->gossip, id);
        if (!m || repair__transfer_find(n, p, id) >= 0)
          continue;
        for (uint32_t s = 0; s < REPAIR_TRANSFERS_MAX; s++) {
          core_transfer *t = &n->transfers[s];
          if (t->active)
            continue;
          memset(t, 0, sizeof(*t));
          t->active = true;
          t->part = p;
          snprintf(t->target, sizeof(t->target), "%s", id);
          snprintf(t->addr, sizeof(t->addr), "%s", m->peer_addr);
          t->started_ms = core__now(n);
          free_slots--;
          core__log(n, NODE_LOG_INFO, "handing partition %u off to %s", p,
                    id);
          if (repair__member_up(n, id))
            repair__handoff_send(n, s);
          break;
        }
      }
    }
    if (all_done) {
      /* Every primary confirmed every key: the partition is safe. */
      n->io.store_drop(n->io.ctx, p);
      /* Our dots on this partition's keys are gone from here: dots made
       * from now on come from a new actor, which never claims to have
       * seen the old ones (basho/riak_kv#679). */
      n->part_epoch[p]++;
      free(n->trees[p]);
      n->trees[p] = NULL;
      for (uint32_t i = 0; i < REPAIR_TRANSFERS_MAX; i++)
        free_slots += n->transfers[i].active && n->transfers[i].part == p &&
                      !n->transfers[i].inflight;
      repair__transfer_clear(n, p);
      n->stats.partitions_dropped++;
      core__log(n, NODE_LOG_INFO,
                "partition %u handed off and dropped (actor epoch %u)", p,
                n->part_epoch[p]);
    }
  }
}

/* A leaving node stops once the claimant took it out (status removed: the
 * others know it is gone) and it holds no data and sends nothing. Its own
 * ring lacking it is not enough: a node asked to leave before the ring
 * that added it reached it would stop unseen and stay in everyone else's
 * ring as a dead owner (kvsim --churn). */
static void repair__maybe_exit(node *n) {
  const gossip_member *self = gossip_self(n->gossip);
  if (n->leaving_done || !self || self->status != GOSSIP_REMOVED)
    return;
  const ring *rg = gossip_ring(n->gossip);
  if (ring_node_index(rg, n->id) >= 0 || ring_node_count(rg) == 0)
    return;
  for (uint32_t i = 0; i < REPAIR_TRANSFERS_MAX; i++)
    if (n->transfers[i].active)
      return;
  for (uint32_t p = 0; p < ring_q(rg); p++)
    if (repair__has_data(n, p))
      return;
  if (n->hints_count)
    return;
  n->leaving_done = true;
  core__log(n, NODE_LOG_INFO, "left the cluster: every partition is handed "
            "off; stopping");
  n->io.shutdown(n->io.ctx);
}

/* ---- tombstone reaping ---- */

void repair_schedule_reap(node *n, uint32_t part, const uint8_t *key,
                          size_t klen) {
  if (!n->reaps || n->reap_len >= REPAIR_REAP_QUEUE_MAX)
    return;
  uint8_t *k = malloc(klen ? klen : 1);
  if (!k)
    return;
  memcpy(k, key, klen);
  core_reap *e = &n->reaps[(n->reap_head + n->reap_len) %
                           REPAIR_REAP_QUEUE_MAX];
  e->part = part;
  e->key = k;
  e->klen = klen;
  e->due_ms = core__now(n) + n->tombstone_grace_ms;
  n->reap_len++;
}

/* Encodes the clock of o without any value: [version, [[actor, counter,
 * ts, []]...]]. Such an object reads as not found but still dominates
 * every dot it has seen. Returns 0 or an error. */
static int repair__clock_only(node *n, const obj *o, kvbuf *out) {
  kvbuf ctx;
  kvbuf_init(&ctx);
  int rc = obj_context(o, &ctx);
  mp_reader rd;
  uint32_t two, cnt;
  mp_reader_init(&rd, ctx.data, ctx.len);
  uint64_t ver;
  if (!rc && (mp_read_array(&rd, &two) || two != 2 ||
              mp_read_uint(&rd, &ver) || mp_read_array(&rd, &cnt)))
    rc = KV_ECORRUPT;
  msgpack_packer pk;
  mp_packer_init(&pk, out);
  if (!rc) {
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint32(&pk, OBJ_FORMAT_VERSION);
    msgpack_pack_array(&pk, cnt);
  }
  /* Every replica must build the same bytes: stamp the entries with the
   * newest tombstone's time, which all replicas of an equal object share. */
  uint64_t now = 0;
  for (size_t i = 0; i < obj_sibling_count(o); i++) {
    obj_value v;
    if (obj_sibling(o, i, &v) == 0 && v.ts_ms > now)
      now = v.ts_ms;
  }
  for (uint32_t i = 0; !rc && i < cnt; i++) {
    uint32_t pair;
    uint64_t actor, counter;
    if (mp_read_array(&rd, &pair) || pair != 2 ||
        mp_read_uint(&rd, &actor) || mp_read_uint(&rd, &counter)) {
      rc = KV_ECORRUPT;
      break;
    }
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint64(&pk, actor);
    msgpack_pack_uint64(&pk, counter);
    msgpack_pack_uint64(&pk, now);
    msgpack_pack_array(&pk, 0);
  }
  kvbuf_free(&ctx);
  if (!rc && out->oom)
    rc = KV_ENOMEM;
  return rc;
}

/* Reaps the local copy of key by merging the reaped object (the clock of
 * the tombstones every primary held, without values): tombstones whose
 * dots it covers go, anything newer stays, and the clock stays, so a late
 * hint, handoff or replica that still holds a deleted value can never
 * bring it back. Counts a reap when the local copy held only tombstones
 * and now holds nothing. */
static void repair__reap_local(node *n, uint32_t part, const uint8_t *key,
                               size_t klen, const obj *reaped) {
  obj *o = NULL;
  if (core__local_read(n, part, key, klen, &o, NULL) || !o)
    return;
  bool was_tombstones = obj_all_deleted(o);
  obj_free(o);
  bool changed = false;
  if (core__local_merge(n, part, key, klen, reaped, 0, &changed) != 0 ||
      !changed || !was_tombstones)
    return;
  if (core__local_read(n, part, key, klen, &o, NULL) == 0 && o &&
      obj_sibling_count(o) == 0)
    n->stats.tombstones_reaped++;
  obj_free(o);
}

/* r holds every primary's answer (a GET or a REAP check): reap when all
 * hold the same all-tombstone object older than the grace period. */
void repair_maybe_reap(node *n, core_req *r) {
  if (!r->result || !obj_all_deleted(r->result))
    return;
  uint64_t newest = 0;
  for (size_t i = 0; i < obj_sibling_count(r->result); i++) {
    obj_value v;
    if (obj_sibling(r->result, i, &v) == 0 && v.ts_ms > newest)
      newest = v.ts_ms;
  }
  uint64_t wall = n->io.wall_ms(n->io.ctx);
  if (wall < newest + n->tombstone_grace_ms)
    return;
  uint32_t nprim = 0;
  for (uint32_t i = 0; i < r->ntargets; i++) {
    core_target *t = &r->targets[i];
    if (!t->primary)
      continue;
    nprim++;
    if (t->state != CORE_T_OK || !t->answer ||
        !obj_equal(t->answer, r->result))
      return;
  }
  if (nprim == 0)
    return;
  kvbuf enc;
  kvbuf_init(&enc);
  obj *reaped = NULL;
  if (repair__clock_only(n, r->result, &enc) ||
      obj_decode(enc.data, enc.len, &reaped)) {
    kvbuf_free(&enc);
    return;
  }
  kvbuf pl;
  kvbuf_init(&pl);
  msgpack_packer pk;
  mp_packer_init(&pk, &pl);
  msgpack_pack_array(&pk, 3);
  msgpack_pack_uint32(&pk, r->part);
  mp_pack_bin(&pk, r->key, r->klen);
  mp_pack_bin(&pk, enc.data, enc.len);
  kvbuf_free(&enc);
  for (uint32_t i = 0; i < r->ntargets; i++) {
    core_target *t = &r->targets[i];
    if (t->self)
      repair__reap_local(n, r->part, r->key, r->klen, reaped);
    else if (t->primary)
      repair__send(n, t->addr, NULL, 0, PM_REAP, &pl);
  }
  kvbuf_free(&pl);
  obj_free(reaped);
}

/* Starts a REAP check: read every primary of the key. */
static void repair__reap_check(node *n, core_reap *e) {
  core_req *r = core__req_new(n, CORE_REQ_REAP);
  if (!r)
    return;
  r->deadline_ms = r->start_ms + n->timeout_ms;
  r->timeout_ms = n->timeout_ms;
  r->part = e->part;
  r->key = e->key;
  r->klen = e->klen;
  e->key = NULL;
  const ring *rg = gossip_ring(n->gossip);
  size_t idx[NODE_FANOUT_MAX];
  size_t np = 0;
  core__preflist(rg, r->part, idx, &np);
  for (size_t i = 0; i < np; i++) {
    core_target *t = &r->targets[r->ntargets++];
    const char *id = ring_node_id(rg, idx[i]);
    snprintf(t->id, sizeof(t->id), "%s", id);
    t->primary = true;
    t->self = strcmp(id, n->id) == 0;
    if (t->self) {
      if (core__local_read(n, r->part, r->key, r->klen, &t->answer, NULL) ==
          0)
        t->state = CORE_T_OK;
      else
        t->state = CORE_T_FAILED;
      continue;
    }
    const gossip_member *m = repair__member_up(n, id);
    if (!m) {
      core__req_free(n, r); /* every primary must answer: try no more */
      return;
    }
    snprintf(t->addr, sizeof(t->addr), "%s", m->peer_addr);
    wire_msg rg_msg = {.type = WIRE_REPL_GET,
                       .req_id = core__req_wire_id(r, r->ntargets - 1)};
    rg_msg.key.ptr = r->key;
    rg_msg.key.len = r->klen;
    n->out.len = 0;
    wire_encode(&n->out, &rg_msg);
    uint64_t c = n->out.oom ? 0
                            : n->io.peer_send(n->io.ctx, t->addr, n->out.data,
                                              n->out.len);
    n->out.len = 0;
    n->out.oom = 0;
    if (!c) {
      core__req_free(n, r);
      return;
    }
    t->conn = c;
    t->state = CORE_T_WAIT;
  }
  repair_req_done(n, r, 0, 0);
}

static void repair__reap_answer(node *n, core_req *r) {
  for (uint32_t i = 0; i < r->ntargets; i++)
    if (r->targets[i].state == CORE_T_WAIT)
      return;
  for (uint32_t i = 0; i < r->ntargets; i++) {
    core_target *t = &r->targets[i];
    if (t->state != CORE_T_OK || !t->answer)
      goto out;
    if (!r->result)
      r->result = obj_clone(t->answer);
    else
      obj_sync(r->result, t->answer, NULL);
  }
  repair_maybe_reap(n, r);
out:
  core__req_free(n, r);
}

static void repair__reap_recv(node *n, mp_reader *rd) {
  uint32_t p;
  kv_slice key, object;
  obj *reaped = NULL;
  if (mp_read_u32(rd, &p) || mp_read_bytes(rd, &key) ||
      mp_read_bytes(rd, &object) || key.len > KV_KEY_MAX ||
      obj_decode(object.ptr, object.len, &reaped))
    return;
  /* A reaped object carries no value: anything else is not a reap. */
  if (obj_sibling_count(reaped) == 0)
    repair__reap_local(n, p, key.ptr, key.len, reaped);
  obj_free(reaped);
}

/* ---- dispatch ---- */

void repair_on_request(node *n, uint64_t conn, const wire_msg *m) {
  mp_reader rd;
  uint32_t cnt;
  mp_reader_init(&rd, m->raw.ptr, m->raw.len);
  if (mp_read_array(&rd, &cnt)) {
    core__send_error(n, conn, m->req_id, KV_EPROTO, "malformed peer message");
    return;
  }
  switch (m->flags) {
  case PM_HINT_PUT:
    repair__hint_put(n, conn, m, &rd);
    break;
  case PM_AAE_BRANCHES:
    repair__aae_branches(n, conn, m, &rd);
    break;
  case PM_AAE_KEYS:
    repair__aae_keys(n, conn, m, &rd);
    break;
  case PM_HANDOFF:
    repair__handoff_recv(n, conn, m, &rd);
    break;
  case PM_REAP:
    repair__reap_recv(n, &rd);
    break;
  default:
    core__send_error(n, conn, m->req_id, KV_EUNKNOWN,
                     "unknown peer message kind %u", m->flags);
  }
}

void repair_on_reply(node *n, uint64_t conn, const wire_msg *m) {
  uint32_t ti;
  core_req *r = core__req_find(n, m->req_id, &ti);
  if (!r || ti >= r->ntargets)
    return;
  core_target *t = &r->targets[ti];
  if (t->state != CORE_T_WAIT || t->conn != conn)
    return;
  bool ok = m->type != WIRE_ERROR;
  switch (r->kind) {
  case CORE_REQ_HINT:
    t->state = ok ? CORE_T_OK : CORE_T_FAILED;
    repair__hint_done(n, r, ok && m->type == WIRE_REPL_PUT_OK);
    return;
  case CORE_REQ_HANDOFF:
    t->state = ok ? CORE_T_OK : CORE_T_FAILED;
    repair__handoff_ack(n, r, ok && m->type == WIRE_REPL_PUT_OK);
    return;
  case CORE_REQ_AAE: {
    t->state = CORE_T_OK;
    mp_reader rd;
    uint32_t cnt;
    mp_reader_init(&rd, m->raw.ptr, m->raw.len);
    if (!ok || m->type != WIRE_PEER_MSG || mp_read_array(&rd, &cnt)) {
      n->aae_running = false;
      core__req_free(n, r);
      return;
    }
    n->stats.aae_bytes += m->raw.len;
    if (r->aux == 1 && m->flags == PM_AAE_LEAVES)
      repair__aae_leaves(n, r, &rd);
    else if (r->aux == 2 && m->flags == PM_AAE_OBJS)
      repair__aae_objs(n, r, &rd);
    else {
      n->aae_running = false;
      core__req_free(n, r);
    }
    return;
  }
  case CORE_REQ_REAP:
    if (ok && m->type == WIRE_REPL_GET_OK) {
      t->state = CORE_T_OK;
      if (m->object.ptr &&
          obj_decode(m->object.ptr, m->object.len, &t->answer))
        t->state = CORE_T_FAILED;
    } else {
      t->state = CORE_T_FAILED;
    }
    repair__reap_answer(n, r);
    return;
  default:
    return;
  }
}

void repair_req_done(node *n, core_req *r, uint32_t target, int status) {
  if (r->kind == CORE_REQ_REAP)
    repair__reap_answer(n, r);
  else if (r->kind == CORE_REQ_HINT) /* a re-homed hint merged here */
    repair__hint_done(n, r, status == 0);
}

void repair_req_expired(node *n, core_req *r) {
  switch (r->kind) {
  case CORE_REQ_HINT:
    repair__hint_done(n, r, false);
    return;
  case CORE_REQ_HANDOFF:
    repair__handoff_ack(n, r, false);
    return;
  case CORE_REQ_AAE:
    n->aae_running = false;
    core__req_free(n, r);
    return;
  default:
    core__req_free(n, r);
  }
}

void repair_conn_closed(node *n, uint64_t conn) {
  core_req *next;
  for (core_req *r = n->active; r; r = next) {
    next = r->next;
    if (r->kind < CORE_REQ_HINT)
      continue;
    for (uint32_t i = 0; i < r->ntargets; i++) {
      if (r->targets[i].state == CORE_T_WAIT && r->targets[i].conn == conn) {
        r->targets[i].state = CORE_T_FAILED;
        if (r->kind == CORE_REQ_REAP)
          repair__reap_answer(n, r);
        else
          repair_req_expired(n, r);
        break;
      }
    }
  }
}

void repair_tick(node *n, uint64_t now) {
  const ring *rg = gossip_ring(n->gossip);
  if (ring_q(rg) != n->trees_q && ring_node_count(rg) > 0) {
    /* Joined a cluster with another partition count: rebuild. */
    if (repair__build_trees(n, ring_q(rg)))
      core__log(n, NODE_LOG_ERROR, "cannot rebuild anti-entropy trees");
  }
  if (now >= n->next_hint_ms) {
    n->next_hint_ms = now + n->hint_interval_ms;
    repair__deliver_hints(n);
  }
  if (now >= n->next_aae_ms) {
    n->next_aae_ms = now + n->aae_interval_ms;
    if (!n->aae_running)
      repair__aae_start(n);
  }
  if (now >= n->next_handoff_ms) {
    n->next_handoff_ms = now + n->handoff_interval_ms;
    repair__handoff(n);
    repair__maybe_exit(n);
  }
  while (n->reap_len) {
    core_reap *e = &n->reaps[n->reap_head];
    if (e->due_ms > now)
      break;
    n->reap_head = (n->reap_head + 1) % REPAIR_REAP_QUEUE_MAX;
    n->reap_len--;
    repair__reap_check(n, e);
    free(e->key);
    e->key = NULL;
  }
}

void repair_admin_transfers(node *n, msgpack_packer *pk) {
  uint32_t cnt = 0;
  for (uint32_t i = 0; i < REPAIR_TRANSFERS_MAX; i++)
    cnt += n->transfers[i].active;
  msgpack_pack_map(pk, 4);
  mp_pack_cstr(pk, "node");
  mp_pack_cstr(pk, n->id);
  mp_pack_cstr(pk, "hints_pending");
  msgpack_pack_uint64(pk, n->hints_count);
  mp_pack_cstr(pk, "aae_exchanges");
  msgpack_pack_uint64(pk, n->stats.aae_exchanges);
  mp_pack_cstr(pk, "transfers");
  msgpack_pack_array(pk, cnt);
  for (uint32_t i = 0; i < REPAIR_TRANSFERS_MAX; i++) {
    const core_transfer *t = &n->transfers[i];
    if (!t->active)
      continue;
    msgpack_pack_map(pk, 5);
    mp_pack_cstr(pk, "partition");
    msgpack_pack_uint32(pk, t->part);
    mp_pack_cstr(pk, "from");
    mp_pack_cstr(pk, n->id);
    mp_pack_cstr(pk, "to");
    mp_pack_cstr(pk, t->target);
    mp_pack_cstr(pk, "keys_sent");
    msgpack_pack_uint64(pk, t->keys_sent);
    mp_pack_cstr(pk, "state");
    mp_pack_cstr(pk, t->done ? "done" : t->inflight ? "sending" : "waiting");
  }
}
