/*
 * handoff.c: ownership handoff (handoff.h).
 */
#include "handoff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_int.h"

/* ---- ownership handoff ---- */

_Static_assert(HANDOFF_BATCH <= WIRE_HANDOFF_BATCH_MAX,
               "a handoff batch fits in one HANDOFF message");

typedef struct handoff__batch {
  wire_pm_items *items;
  uint32_t count;
  uint8_t *last;
  size_t last_len;
} handoff__batch;

static int handoff__batch_fn(void *arg, const uint8_t *key, size_t klen,
                             const uint8_t *val, size_t vlen) {
  handoff__batch *b = arg;
  int rc = wire_pm_items_add_key_object(b->items, key, klen, val, vlen);
  if (rc)
    return rc;
  b->count++;
  if (core__cursor(&b->last, &b->last_len, key, klen))
    return KV_ENOMEM;
  return 0;
}

static void handoff__send(node *n, uint32_t ti) {
  handoff_transfer *t = &n->handoff.transfers[ti];
  if (!core__member_up(n, t->target))
    return;
  wire_pm_items items;
  wire_pm_items_init(&items);
  handoff__batch b = {.items = &items};
  int rc = n->io.store_scan(n->io.ctx, t->part, t->last_key, t->last_len,
                            HANDOFF_BATCH, handoff__batch_fn, &b);
  if (rc) {
    wire_pm_items_free(&items);
    free(b.last);
    return;
  }
  core_req *r = core__peer_req(n, CORE_REQ_HANDOFF, t->target, t->addr);
  if (!r) {
    wire_pm_items_free(&items);
    free(b.last);
    return;
  }
  r->u.handoff.transfer = ti;
  r->part = t->part;
  r->key = b.last; /* the resume point once this batch is acknowledged */
  r->klen = b.last_len;
  r->u.handoff.count = b.count;
  t->last_batch = b.count < HANDOFF_BATCH;
  wire_pm_handoff h = {.part = t->part,
                       .objs = wire_pm_items_list(&items),
                       .last = t->last_batch};
  kvbuf pl;
  kvbuf_init(&pl);
  if (wire_pm_encode_handoff(&pl, &h))
    pl.oom = 1; /* core__peer_send sends nothing */
  wire_pm_items_free(&items);
  uint64_t c = core__peer_send(n, t->addr, r, 0, WIRE_PM_HANDOFF, &pl);
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
void handoff_on_batch(node *n, uint64_t conn, const wire_msg *m,
                      const wire_pm_handoff *h) {
  uint32_t cnt = h->objs.count;
  wire_pm_iter it;
  wire_pm_iter_init(&it, &h->objs);
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
    wire_pm_key_object ko;
    if (wire_pm_next_key_object(&it, &ko)) {
      rc = KV_EPROTO;
      break;
    }
    kv_slice key = ko.key, val = ko.object;
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

static void handoff__ack(node *n, core_req *r, bool ok) {
  uint32_t ti = r->u.handoff.transfer;
  if (ti < HANDOFF_TRANSFERS_MAX && n->handoff.transfers[ti].active &&
      n->handoff.transfers[ti].req_gen == core__req_wire_id(r, 0)) {
    handoff_transfer *t = &n->handoff.transfers[ti];
    t->inflight = false;
    if (ok) {
      t->keys_sent += r->u.handoff.count;
      n->stats.handoff_keys_sent += r->u.handoff.count;
      free(t->last_key);
      t->last_key = r->key;
      t->last_len = r->klen;
      r->key = NULL;
      if (t->last_batch)
        t->done = true;
      else
        handoff__send(n, ti);
    }
  }
  core__req_free(n, r);
}

static int handoff__find(node *n, uint32_t p, const char *target) {
  for (uint32_t i = 0; i < HANDOFF_TRANSFERS_MAX; i++)
    if (n->handoff.transfers[i].active && n->handoff.transfers[i].part == p &&
        strcmp(n->handoff.transfers[i].target, target) == 0)
      return (int)i;
  return -1;
}

static void handoff__clear(node *n, uint32_t p) {
  for (uint32_t i = 0; i < HANDOFF_TRANSFERS_MAX; i++) {
    handoff_transfer *t = &n->handoff.transfers[i];
    if (t->active && t->part == p && !t->inflight) {
      free(t->last_key);
      memset(t, 0, sizeof(*t));
    }
  }
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
static void handoff__run(node *n) {
  const ring *rg = gossip_ring(n->gossip);
  uint32_t q = ring_q(rg);
  if (q != n->trees_q || ring_node_count(rg) == 0)
    return;
  uint32_t free_slots = 0;
  for (uint32_t i = 0; i < HANDOFF_TRANSFERS_MAX; i++) {
    handoff_transfer *t = &n->handoff.transfers[i];
    if (t->active && !t->inflight &&
        (t->part >= q || core__is_primary(n, t->part) ||
         !core__is_primary_of(rg, t->part, t->target))) {
      free(t->last_key);
      memset(t, 0, sizeof(*t));
    }
    if (t->active && !t->inflight && !t->done && core__member_up(n, t->target))
      handoff__send(n, i);
    free_slots += !t->active;
  }
  for (uint32_t p = 0; p < q; p++) {
    if (core__is_primary(n, p))
      continue;
    if (!n->trees[p] && !core__has_data(n, p))
      continue;
    if (!core__has_data(n, p)) {
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
      int ti = handoff__find(n, p, ring_node_id(rg, idx[k]));
      if (ti >= 0)
        all_done &= n->handoff.transfers[ti].done;
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
        if (!m || handoff__find(n, p, id) >= 0)
          continue;
        for (uint32_t s = 0; s < HANDOFF_TRANSFERS_MAX; s++) {
          handoff_transfer *t = &n->handoff.transfers[s];
          if (t->active)
            continue;
          memset(t, 0, sizeof(*t));
          t->active = true;
          t->part = p;
          kv_strcopy(t->target, sizeof(t->target), id);
          kv_strcopy(t->addr, sizeof(t->addr), m->peer_addr);
          t->started_ms = core__now(n);
          free_slots--;
          core__log(n, NODE_LOG_INFO, "handing partition %u off to %s", p, id);
          if (core__member_up(n, id))
            handoff__send(n, s);
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
      for (uint32_t i = 0; i < HANDOFF_TRANSFERS_MAX; i++)
        free_slots += n->handoff.transfers[i].active &&
                      n->handoff.transfers[i].part == p &&
                      !n->handoff.transfers[i].inflight;
      handoff__clear(n, p);
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
static void handoff__maybe_exit(node *n) {
  const gossip_member *self = gossip_self(n->gossip);
  if (n->handoff.leaving_done || !self || self->status != GOSSIP_REMOVED)
    return;
  const ring *rg = gossip_ring(n->gossip);
  if (ring_node_index(rg, n->id) >= 0 || ring_node_count(rg) == 0)
    return;
  for (uint32_t i = 0; i < HANDOFF_TRANSFERS_MAX; i++)
    if (n->handoff.transfers[i].active)
      return;
  for (uint32_t p = 0; p < ring_q(rg); p++)
    if (core__has_data(n, p))
      return;
  if (n->hints.count)
    return;
  n->handoff.leaving_done = true;
  core__log(n, NODE_LOG_INFO,
            "left the cluster: every partition is handed "
            "off; stopping");
  n->io.shutdown(n->io.ctx);
}

uint32_t node_handoff_pending(node *n) {
  const ring *rg = gossip_ring(n->gossip);
  uint32_t q = ring_q(rg), cnt = 0;
  if (q != n->trees_q || ring_node_count(rg) == 0)
    return 0;
  for (uint32_t p = 0; p < q; p++)
    cnt += !core__is_primary(n, p) && core__has_data(n, p);
  return cnt;
}

void handoff_admin_transfers(node *n, msgpack_packer *pk) {
  uint32_t cnt = 0;
  for (uint32_t i = 0; i < HANDOFF_TRANSFERS_MAX; i++)
    cnt += n->handoff.transfers[i].active;
  msgpack_pack_map(pk, 11);
  mp_pack_cstr(pk, "node");
  mp_pack_cstr(pk, n->id);
  mp_pack_cstr(pk, "hints_pending");
  msgpack_pack_uint64(pk, n->hints.count);
  mp_pack_cstr(pk, "aae_exchanges");
  msgpack_pack_uint64(pk, n->stats.aae_exchanges);
  /* Catch-up anti-entropy with returning replicas (aae.h). */
  mp_pack_cstr(pk, "catchup_partitions_left");
  msgpack_pack_uint64(pk, aae_catchup_left(n));
  mp_pack_cstr(pk, "catchup_exchanges");
  msgpack_pack_uint64(pk, n->stats.catchup_exchanges);
  mp_pack_cstr(pk, "catchup_keys_sent");
  msgpack_pack_uint64(pk, n->stats.catchup_keys_sent);
  mp_pack_cstr(pk, "catchup_keys_repaired");
  msgpack_pack_uint64(pk, n->stats.catchup_keys_repaired);
  /* kvorum repair's exchanges (queued with the catch-up ones). */
  mp_pack_cstr(pk, "repair_exchanges_left");
  msgpack_pack_uint64(pk, aae_repair_left(n));
  mp_pack_cstr(pk, "repair_exchanges");
  msgpack_pack_uint64(pk, n->stats.repair_exchanges);
  mp_pack_cstr(pk, "repair_keys_repaired");
  msgpack_pack_uint64(pk, n->stats.repair_keys_repaired);
  mp_pack_cstr(pk, "transfers");
  msgpack_pack_array(pk, cnt);
  for (uint32_t i = 0; i < HANDOFF_TRANSFERS_MAX; i++) {
    const handoff_transfer *t = &n->handoff.transfers[i];
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

void handoff_init(node *n, const node_config *cfg, uint64_t now) {
  n->handoff.interval_ms =
      cfg->handoff_interval_ms ? cfg->handoff_interval_ms : 1000;
  n->handoff.next_ms = now + n->handoff.interval_ms;
}

void handoff_free(node *n) {
  for (uint32_t i = 0; i < HANDOFF_TRANSFERS_MAX; i++)
    free(n->handoff.transfers[i].last_key);
  memset(n->handoff.transfers, 0, sizeof(n->handoff.transfers));
}

void handoff_tick(node *n, uint64_t now) {
  if (now < n->handoff.next_ms)
    return;
  n->handoff.next_ms = now + n->handoff.interval_ms;
  handoff__run(n);
  handoff__maybe_exit(n);
}

void handoff_on_reply(node *n, core_req *r, core_target *t, const wire_msg *m) {
  assert(core__req_check(n, r) && r->kind == CORE_REQ_HANDOFF);
  bool ok = m->type != WIRE_ERROR;
  t->state = ok ? CORE_T_OK : CORE_T_FAILED;
  handoff__ack(n, r, ok && m->type == WIRE_REPL_PUT_OK);
}

void handoff_expired(node *n, core_req *r) {
  assert(core__req_check(n, r) && r->kind == CORE_REQ_HANDOFF);
  handoff__ack(n, r, false);
}
