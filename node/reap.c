/*
 * reap.c: tombstone reaping (reap.h).
 */
#include "reap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_int.h"

static void reap__answer(node *n, core_req *r);

/* ---- tombstone reaping ---- */

void reap_schedule(node *n, uint32_t part, const uint8_t *key, size_t klen,
                   uint64_t delay_ms) {
  if (!n->reap.queue || n->reap.len >= REAP_QUEUE_MAX)
    return;
  uint8_t *k = malloc(klen ? klen : 1);
  if (!k)
    return;
  memcpy(k, key, klen);
  reap_entry *e = &n->reap.queue[(n->reap.head + n->reap.len) % REAP_QUEUE_MAX];
  e->part = part;
  e->key = k;
  e->klen = klen;
  e->due_ms = core__now(n) + delay_ms + n->reap.grace_ms;
  n->reap.len++;
}

/* Reaps the local copy of key by merging the reaped object (the clock of
 * the tombstones every primary held, without values): tombstones whose
 * dots it covers go, anything newer stays, and the clock stays, so a late
 * hint, handoff or replica that still holds a deleted value can never
 * bring it back. Counts a reap when the local copy held only tombstones
 * and now holds nothing. */
static void reap__local(node *n, uint32_t part, const uint8_t *key, size_t klen,
                        const obj *reaped) {
  obj *o = NULL;
  if (core__local_read(n, part, key, klen, &o, NULL) || !o)
    return;
  bool was_tombstones = obj_all_gone(o, n->io.wall_ms(n->io.ctx));
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
void reap_maybe(node *n, core_req *r) {
  uint64_t wall = n->io.wall_ms(n->io.ctx);
  if (!r->result || !obj_all_gone(r->result, wall))
    return;
  /* Gone since: a tombstone's write, an expired value's expiry. */
  uint64_t newest = 0;
  for (size_t i = 0; i < obj_sibling_count(r->result); i++) {
    obj_value v;
    if (obj_sibling(r->result, i, &v))
      continue;
    uint64_t since = (v.flags & OBJ_DELETED) ? v.ts_ms : v.expires_ms;
    if (since > newest)
      newest = since;
  }
  if (wall < newest + n->reap.grace_ms)
    return;
  uint32_t nprim = 0;
  for (uint32_t i = 0; i < r->ntargets; i++) {
    core_target *t = &r->targets[i];
    if (!t->primary)
      continue;
    nprim++;
    if (t->state != CORE_T_OK || !t->answer || !obj_equal(t->answer, r->result))
      return;
  }
  if (nprim == 0)
    return;
  kvbuf enc;
  kvbuf_init(&enc);
  obj *reaped = NULL;
  if (obj_encode_clock(r->result, &enc) ||
      obj_decode(enc.data, enc.len, &reaped)) {
    kvbuf_free(&enc);
    return;
  }
  wire_pm_reap rp = {.part = r->part};
  rp.key.ptr = r->key;
  rp.key.len = r->klen;
  rp.object.ptr = enc.data;
  rp.object.len = enc.len;
  kvbuf pl;
  kvbuf_init(&pl);
  if (wire_pm_encode_reap(&pl, &rp))
    pl.oom = 1; /* core__peer_send sends nothing */
  kvbuf_free(&enc);
  for (uint32_t i = 0; i < r->ntargets; i++) {
    core_target *t = &r->targets[i];
    if (t->self)
      reap__local(n, r->part, r->key, r->klen, reaped);
    else if (t->primary)
      core__peer_send(n, t->addr, NULL, 0, WIRE_PM_REAP, &pl);
  }
  kvbuf_free(&pl);
  obj_free(reaped);
}

/* Starts a REAP check: read every primary of the key. */
static void reap__check(node *n, reap_entry *e) {
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
    kv_strcopy(t->id, sizeof(t->id), id);
    t->primary = true;
    t->self = strcmp(id, n->id) == 0;
    if (t->self) {
      if (core__local_read(n, r->part, r->key, r->klen, &t->answer, NULL) == 0)
        t->state = CORE_T_OK;
      else
        t->state = CORE_T_FAILED;
      continue;
    }
    const gossip_member *m = core__member_up(n, id);
    if (!m) {
      core__req_free(n, r); /* every primary must answer: try no more */
      return;
    }
    kv_strcopy(t->addr, sizeof(t->addr), m->peer_addr);
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
  reap__answer(n, r);
}

static void reap__answer(node *n, core_req *r) {
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
  reap_maybe(n, r);
out:
  core__req_free(n, r);
}

void reap_on_msg(node *n, const wire_pm_reap *rp) {
  obj *reaped = NULL;
  if (obj_decode(rp->object.ptr, rp->object.len, &reaped))
    return;
  /* A reaped object carries no value: anything else is not a reap. */
  if (obj_sibling_count(reaped) == 0)
    reap__local(n, rp->part, rp->key.ptr, rp->key.len, reaped);
  obj_free(reaped);
}

int reap_init(node *n, const node_config *cfg) {
  n->reap.grace_ms =
      cfg->tombstone_grace_ms ? cfg->tombstone_grace_ms : 86400000ull;
  n->reap.queue = calloc(REAP_QUEUE_MAX, sizeof(*n->reap.queue));
  return n->reap.queue ? 0 : KV_ENOMEM;
}

void reap_free(node *n) {
  if (n->reap.queue)
    for (uint32_t i = 0; i < n->reap.len; i++)
      free(n->reap.queue[(n->reap.head + i) % REAP_QUEUE_MAX].key);
  free(n->reap.queue);
  n->reap.queue = NULL;
}

void reap_tick(node *n, uint64_t now) {
  while (n->reap.len) {
    reap_entry *e = &n->reap.queue[n->reap.head];
    if (e->due_ms > now)
      break;
    n->reap.head = (n->reap.head + 1) % REAP_QUEUE_MAX;
    n->reap.len--;
    reap__check(n, e);
    free(e->key);
    e->key = NULL;
  }
}

void reap_on_reply(node *n, core_req *r, core_target *t, const wire_msg *m) {
  assert(core__req_check(n, r) && r->kind == CORE_REQ_REAP);
  if (m->type == WIRE_REPL_GET_OK) {
    t->state = CORE_T_OK;
    if (m->object.ptr && obj_decode(m->object.ptr, m->object.len, &t->answer))
      t->state = CORE_T_FAILED;
  } else {
    t->state = CORE_T_FAILED;
  }
  reap__answer(n, r);
}

void reap_store_done(node *n, core_req *r) {
  assert(core__req_check(n, r) && r->kind == CORE_REQ_REAP);
  reap__answer(n, r);
}
