/*
 * hints.c: hinted handoff (hints.h).
 */
#include "hints.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core_int.h"

static int hints__count_fn(void *arg, uint32_t part, const uint8_t *key,
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
void hints_load(node *n) {
  char after[RING_NAME_MAX] = "", owner[RING_NAME_MAX];
  uint64_t count = 0;
  while (n->io.hint_owner_next &&
         n->io.hint_owner_next(n->io.ctx, after, owner, sizeof(owner)) == 0) {
    memcpy(after, owner, sizeof(after));
    n->io.hint_scan(n->io.ctx, owner, SIZE_MAX, hints__count_fn, &count);
  }
  n->hints.count = count;
  if (count)
    core__log(n, NODE_LOG_INFO, "%llu hints kept from an earlier run",
              (unsigned long long)count);
}

/* ---- hints ---- */

/* Merges in into the hint kept for owner (part, key), making it when there
 * is none (then *fresh, and hints_count counts it). With enforce_max a new
 * hint past hints_max is refused with KV_EFULL. Returns 0 or an error. */
static int hints__merge(node *n, const char *owner, uint32_t part, kv_slice key,
                        const obj *in, bool enforce_max, bool *fresh) {
  uint8_t *old = NULL;
  size_t old_len = 0;
  int rc =
      n->io.hint_get(n->io.ctx, owner, part, key.ptr, key.len, &old, &old_len);
  *fresh = rc == KV_ENOTFOUND;
  if (rc && !*fresh)
    return rc;
  if (*fresh && enforce_max && n->hints.count >= n->hints.max)
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
    n->hints.count++;
  return rc;
}

void hints_on_put(node *n, uint64_t conn, const wire_msg *m,
                  const wire_pm_hint_put *h) {
  char owner[RING_NAME_MAX];
  if (h->owner.len >= sizeof(owner)) {
    core__send_error(n, conn, m->req_id, KV_EPROTO, "malformed hint");
    return;
  }
  memcpy(owner, h->owner.ptr, h->owner.len);
  owner[h->owner.len] = '\0';
  kv_slice key = h->key, object = h->object;
  bool durable = h->durable;
  obj *in = NULL;
  if (obj_decode(object.ptr, object.len, &in)) {
    core__send_error(n, conn, m->req_id, KV_EPROTO,
                     "hinted object is "
                     "invalid");
    return;
  }
  uint32_t part = ring_partition(gossip_ring(n->gossip), key.ptr, key.len);
  bool fresh = false;
  int rc = hints__merge(n, owner, part, key, in, true, &fresh);
  obj_free(in);
  if (rc == KV_EFULL) {
    n->stats.hints_refused++;
    core__log(n, NODE_LOG_WARN,
              "hint store is full (%llu hints): refusing "
              "a hint for %s",
              (unsigned long long)n->hints.max, owner);
    core__send_error(n, conn, m->req_id, KV_EFULL,
                     "the hint store of %s is full (%llu hints)", n->id,
                     (unsigned long long)n->hints.max);
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

typedef struct hints__ctx {
  node *n;
  const gossip_member *owner;
} hints__ctx;

/* A HINT request about owner's hint (part, key, whose bytes are val),
 * sent to id at addr; hints__done deletes the hint if it is still
 * those bytes. NULL when the request table is full. */
static core_req *hints__req(node *n, const char *id, const char *addr,
                            const char *owner, uint32_t part,
                            const uint8_t *key, size_t klen, const uint8_t *val,
                            size_t vlen) {
  core_req *r = core__peer_req(n, CORE_REQ_HINT, id, addr);
  if (!r)
    return NULL;
  if (core__req_set_key(r, key, klen)) {
    core__req_free(n, r);
    return NULL;
  }
  r->part = part;
  r->u.hint.hash = XXH3_64bits(val, vlen);
  kv_strcopy(r->u.hint.owner, sizeof(r->u.hint.owner), owner);
  return r;
}

static int hints__fn(void *arg, uint32_t part, const uint8_t *key, size_t klen,
                     const uint8_t *val, size_t vlen) {
  hints__ctx *h = arg;
  node *n = h->n;
  core_req *r = hints__req(n, h->owner->id, h->owner->peer_addr, h->owner->id,
                           part, key, klen, val, vlen);
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
  n->hints.inflight++;
  return 0;
}

typedef struct hints__rehome_ctx {
  node *n;
  const char *owner;
} hints__rehome_ctx;

/* One hint of an owner that left the ring: kept instead as a hint for each
 * current primary of its key, and merged here when this node is one (the
 * old hint then goes once that write is committed). */
static int hints__rehome_fn(void *arg, uint32_t part, const uint8_t *key,
                            size_t klen, const uint8_t *val, size_t vlen) {
  hints__rehome_ctx *c = arg;
  node *n = c->n;
  const ring *rg = gossip_ring(n->gossip);
  obj *o = NULL;
  if (obj_decode(val, vlen, &o)) {
    core__log(n, NODE_LOG_ERROR,
              "a hint for %s does not decode; dropping "
              "it",
              c->owner);
    if (n->io.hint_del(n->io.ctx, c->owner, part, key, klen) == 0 &&
        n->hints.count)
      n->hints.count--;
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
      rc = hints__merge(n, id, p, (kv_slice){key, klen}, o, false, &fresh);
  }
  core_req *r = NULL;
  if (rc == 0 && self) {
    r = hints__req(n, n->id, n->peer_addr, c->owner, part, key, klen, val,
                   vlen);
    if (!r)
      rc = KV_EOVERLOAD;
  }
  if (r && rc == 0) {
    rc = core__local_merge(n, p, key, klen, o, core__req_wire_id(r, 0), NULL);
    if (rc == 0)
      n->hints.inflight++; /* hints__done when it is committed */
  }
  obj_free(o);
  if (rc) {
    if (r)
      core__req_free(n, r);
    return 1; /* try again next round */
  }
  if (!self && n->io.hint_del(n->io.ctx, c->owner, part, key, klen) == 0 &&
      n->hints.count)
    n->hints.count--;
  return 0;
}

/* Owners with hints that are no longer in the ring (left, or removed while
 * down) will never take them: their hints go to the keys' current
 * primaries, as Riak's fallback vnodes hand off to the new owners. */
static void hints__rehome(node *n) {
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
    if (ring_node_index(rg, owner) >= 0 || (m && m->status == GOSSIP_JOINING))
      continue;
    hints__rehome_ctx c = {.n = n, .owner = owner};
    n->io.hint_scan(n->io.ctx, owner, HINTS_BATCH, hints__rehome_fn, &c);
  }
}

static void hints__deliver(node *n) {
  if (n->hints.inflight)
    return; /* throttle: one batch per owner at a time */
  size_t cnt = gossip_member_count(n->gossip);
  for (size_t i = 0; i < cnt; i++) {
    const gossip_member *m = gossip_member_at(n->gossip, i);
    if (!core__member_up(n, m->id))
      continue;
    hints__ctx h = {.n = n, .owner = m};
    n->io.hint_scan(n->io.ctx, m->id, HINTS_BATCH, hints__fn, &h);
  }
  hints__rehome(n);
}

static void hints__done(node *n, core_req *r, bool ok) {
  if (ok) {
    uint8_t *cur = NULL;
    size_t len = 0;
    if (n->io.hint_get(n->io.ctx, r->u.hint.owner, r->part, r->key, r->klen,
                       &cur, &len) == 0 &&
        XXH3_64bits(cur, len) == r->u.hint.hash &&
        n->io.hint_del(n->io.ctx, r->u.hint.owner, r->part, r->key, r->klen) ==
            0) {
      n->stats.hints_delivered++;
      if (n->hints.count)
        n->hints.count--;
    }
    free(cur);
  }
  if (n->hints.inflight)
    n->hints.inflight--;
  core__req_free(n, r);
  /* The owner keeps up: the next batch at once, not at the next round. */
  if (ok && n->hints.inflight == 0 && n->hints.count)
    n->hints.next_ms = 0;
}

void hints_keep(node *n, const char *owner, uint32_t part, const uint8_t *key,
                size_t klen, const uint8_t *enc, size_t enc_len) {
  uint64_t now = core__now(n);
  for (uint32_t i = 0; i < n->hints.ndown; i++)
    if (strcmp(n->hints.down[i].id, owner) == 0 &&
        now - n->hints.down[i].since_ms > n->hints.window_ms) {
      n->stats.hints_window_skipped++;
      return;
    }
  obj *o = NULL;
  if (obj_decode(enc, enc_len, &o))
    return;
  bool fresh = false;
  int rc = hints__merge(n, owner, part, (kv_slice){key, klen}, o, true, &fresh);
  obj_free(o);
  if (rc == 0)
    n->stats.hints_kept++;
  else
    n->stats.hints_refused++;
}

void hints_member_changed(node *n, const gossip_member *m) {
  hints_state *h = &n->hints;
  uint32_t i = 0;
  while (i < h->ndown && strcmp(h->down[i].id, m->id) != 0)
    i++;
  if (!m->alive) {
    if (i == h->ndown && h->ndown < HINTS_DOWN_MAX) {
      kv_strcopy(h->down[i].id, sizeof(h->down[i].id), m->id);
      h->down[i].since_ms = core__now(n);
      h->ndown++;
    }
    return;
  }
  if (i < h->ndown) {
    h->down[i] = h->down[--h->ndown];
    h->next_ms = 0; /* it is back: deliver its hints at the next tick */
  }
}

void hints_init(node *n, const node_config *cfg, uint64_t now) {
  n->hints.window_ms =
      cfg->hint_window_ms ? cfg->hint_window_ms : HINTS_WINDOW_MS_DEFAULT;
  n->hints.interval_ms = cfg->hint_interval_ms ? cfg->hint_interval_ms : 1000;
  n->hints.max = cfg->hints_max ? cfg->hints_max : 1000000ull;
  n->hints.next_ms = now + n->hints.interval_ms;
}

void hints_tick(node *n, uint64_t now) {
  if (now < n->hints.next_ms)
    return;
  n->hints.next_ms = now + n->hints.interval_ms;
  hints__deliver(n);
}

void hints_on_reply(node *n, core_req *r, core_target *t, const wire_msg *m) {
  assert(core__req_check(n, r) && r->kind == CORE_REQ_HINT);
  bool ok = m->type != WIRE_ERROR;
  t->state = ok ? CORE_T_OK : CORE_T_FAILED;
  hints__done(n, r, ok && m->type == WIRE_REPL_PUT_OK);
}

void hints_store_done(node *n, core_req *r, int status) {
  assert(core__req_check(n, r) && r->kind == CORE_REQ_HINT);
  hints__done(n, r, status == 0);
}

void hints_expired(node *n, core_req *r) {
  assert(core__req_check(n, r) && r->kind == CORE_REQ_HINT);
  hints__done(n, r, false);
}
