/*
 * aae.c: the anti-entropy exchange (aae.h).
 */
#include "aae.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core_int.h"

_Static_assert(AAE_BRANCHES == WIRE_AAE_BRANCHES &&
                   AAE_LEAVES_PER_BRANCH == WIRE_AAE_LEAVES_PER_BRANCH,
               "our trees are the shape the wire carries");
_Static_assert(AAE_KEYS_MAX <= WIRE_AAE_KEYS_MAX,
               "an exchange's key lists fit in one message");

typedef struct aae__build {
  node *n;
  uint32_t part;
} aae__build;

static int aae__build_fn(void *arg, const uint8_t *key, size_t klen,
                         const uint8_t *val, size_t vlen) {
  aae__build *b = arg;
  core__tree_update(b->n, b->part, key, klen, 0, XXH3_64bits(val, vlen));
  return 0;
}

/* Builds every partition's tree from storage. */
int aae_build_trees(node *n, uint32_t q) {
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
    aae__build b = {.n = n, .part = p};
    int rc = core__scan(n, p, aae__build_fn, &b);
    if (rc)
      return rc;
  }
  return 0;
}

/* ---- anti-entropy ---- */

static const aae_tree *aae__tree(node *n, uint32_t p) {
  static const aae_tree empty; /* all zero: a partition without data */
  return p < n->trees_q && n->trees[p] ? n->trees[p] : &empty;
}

/* Starts an exchange of partition p with peer: a catch-up or repair one
 * (queued), or one of the slow round. Returns whether it is under way. */
static bool aae__exchange(node *n, uint32_t p, const gossip_member *peer,
                          bool catchup, bool repair, uint32_t round) {
  core_req *r = core__peer_req(n, CORE_REQ_AAE, peer->id, peer->peer_addr);
  if (!r)
    return false;
  r->part = p;
  r->u.aae.phase = AAE_PHASE_LEAVES;
  r->u.aae.catchup = catchup;
  r->u.aae.repair = repair;
  r->u.aae.round = round;
  const aae_tree *t = aae__tree(n, p);
  wire_pm_aae_branches br = {.part = p};
  memcpy(br.branch, t->branch, sizeof(br.branch));
  kvbuf pl;
  kvbuf_init(&pl);
  if (wire_pm_encode_aae_branches(&pl, &br))
    pl.oom = 1; /* core__peer_send sends nothing */
  uint64_t c =
      core__peer_send(n, peer->peer_addr, r, 0, WIRE_PM_AAE_BRANCHES, &pl);
  kvbuf_free(&pl);
  if (!c) {
    core__req_free(n, r);
    return false;
  }
  r->targets[0].conn = c;
  r->targets[0].state = CORE_T_WAIT;
  n->aae.running = true;
  if (catchup)
    n->stats.catchup_exchanges++;
  if (repair)
    n->stats.repair_exchanges++;
  return true;
}

/* The slow round: the next partition this node is a primary of, with a
 * random other alive primary. */
static void aae__start(node *n) {
  uint32_t q = n->trees_q;
  const ring *rg = gossip_ring(n->gossip);
  if (q == 0 || ring_q(rg) != q)
    return;
  for (uint32_t tries = 0; tries < q; tries++) {
    uint32_t p = n->aae.next_part++ % q;
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
      else if (core__member_up(n, id))
        peers[npeers++] = core__member_up(n, id);
    }
    if (!mine || npeers == 0)
      continue;
    const gossip_member *peer = peers[n->io.random(n->io.ctx) % npeers];
    aae__exchange(n, p, peer, false, false, 0);
    return;
  }
}

/* Queues a catch-up (or repair) exchange of p with peer, unless one is
 * queued (which then counts as a repair too when this one would).
 * Returns whether it is queued now. */
static bool aae__enqueue(node *n, uint32_t p, const char *peer,
                         uint32_t round, bool repair) {
  aae_state *a = &n->aae;
  if (!a->queue || a->len == AAE_CATCHUP_MAX)
    return false; /* full: before the scan, which a full queue makes long */
  for (uint32_t i = 0; i < a->len; i++) {
    aae_catchup *e = &a->queue[(a->head + i) % AAE_CATCHUP_MAX];
    if (e->part == p && strcmp(e->peer, peer) == 0) {
      e->repair |= repair;
      return true;
    }
  }
  aae_catchup *e = &a->queue[(a->head + a->len) % AAE_CATCHUP_MAX];
  e->part = p;
  e->round = round;
  e->repair = repair;
  kv_strcopy(e->peer, sizeof(e->peer), peer);
  a->len++;
  return true;
}

/* Queues every partition this node and peer are both primaries of. */
static void aae__catchup_with(node *n, const char *peer) {
  const ring *rg = gossip_ring(n->gossip);
  uint32_t q = ring_q(rg);
  if (ring_node_count(rg) == 0 || q != n->trees_q)
    return;
  uint32_t queued = 0;
  for (uint32_t p = 0; p < q; p++)
    if (core__is_primary_of(rg, p, n->id) && core__is_primary_of(rg, p, peer)) {
      aae__enqueue(n, p, peer, 0, false);
      queued++;
    }
  if (queued)
    core__log(n, NODE_LOG_INFO, "catching up with %s: %u partitions queued",
              peer, queued);
}

/* Starts the next queued catch-up exchange, within the byte budget (with
 * catch-up off, only repair exchanges are queued, at the default rate). */
static void aae__catchup_next(node *n, uint64_t now) {
  aae_state *a = &n->aae;
  if (now - a->window_ms >= 1000) {
    a->window_ms = now;
    a->window_bytes = n->stats.aae_bytes;
  }
  uint64_t budget = a->catchup_bytes_per_s
                        ? a->catchup_bytes_per_s
                        : (uint64_t)AAE_CATCHUP_MB_PER_S << 20;
  if (n->stats.aae_bytes - a->window_bytes >= budget)
    return; /* this second's budget is spent */
  const ring *rg = gossip_ring(n->gossip);
  while (a->len && !a->running) {
    aae_catchup e = a->queue[a->head];
    a->head = (a->head + 1) % AAE_CATCHUP_MAX;
    a->len--;
    const gossip_member *peer = core__member_up(n, e.peer);
    if (!peer || e.part >= n->trees_q || !core__is_primary_of(rg, e.part, n->id) ||
        !core__is_primary_of(rg, e.part, e.peer))
      continue; /* the ring or the peer changed: nothing to catch up */
    if (!aae__exchange(n, e.part, peer, !e.repair, e.repair, e.round))
      aae__enqueue(n, e.part, e.peer, e.round, e.repair); /* later */
    return;
  }
}

/* An exchange ended (differed: it found keys to repair). A catch-up
 * exchange that found differences is queued again, so the partition is
 * exchanged until the trees agree. */
static void aae__finish(node *n, core_req *r, bool differed) {
  n->stats.aae_exchanges++;
  n->aae.running = false;
  if ((r->u.aae.catchup || r->u.aae.repair) && differed &&
      r->u.aae.round + 1 < AAE_CATCHUP_ROUNDS)
    aae__enqueue(n, r->part, r->targets[0].id, r->u.aae.round + 1,
                 r->u.aae.repair);
  core__req_free(n, r);
}

void aae_member_changed(node *n, const gossip_member *m) {
  if (strcmp(m->id, n->id) == 0)
    return;
  aae_state *a = &n->aae;
  uint32_t i = 0;
  while (i < a->npeers && strcmp(a->peers[i].id, m->id) != 0)
    i++;
  if (i == a->npeers) {
    if (a->npeers == AAE_PEERS_MAX)
      return;
    memset(&a->peers[i], 0, sizeof(a->peers[i]));
    kv_strcopy(a->peers[i].id, sizeof(a->peers[i].id), m->id);
    a->npeers++;
  }
  aae_peer *e = &a->peers[i];
  bool back = a->catchup_bytes_per_s && m->alive &&
              m->status != GOSSIP_REMOVED &&
              (!e->alive || e->incarnation != m->incarnation);
  e->alive = m->alive;
  e->incarnation = m->incarnation;
  if (back)
    aae__catchup_with(n, m->id);
}

uint32_t aae_catchup_left(const node *n) { return n->aae.len; }

uint32_t aae_repair_left(const node *n) {
  const aae_state *a = &n->aae;
  uint32_t left = 0;
  for (uint32_t i = 0; i < a->len; i++)
    left += a->queue[(a->head + i) % AAE_CATCHUP_MAX].repair;
  return left;
}

uint32_t aae_repair(node *n, uint32_t part, uint32_t *parts) {
  const ring *rg = gossip_ring(n->gossip);
  uint32_t q = ring_q(rg), queued = 0;
  *parts = 0;
  if (ring_node_count(rg) == 0 || q != n->trees_q)
    return 0;
  /* Every partition: from where the last repair found the queue full, so
   * that asking again covers the rest. */
  bool all = part == UINT32_MAX;
  uint32_t start = all ? n->aae.repair_next % q : part;
  uint32_t count = all ? q : 1;
  for (uint32_t k = 0; k < count; k++) {
    uint32_t p = (start + k) % q;
    if (!core__is_primary_of(rg, p, n->id))
      continue;
    size_t idx[NODE_FANOUT_MAX];
    size_t np = 0;
    core__preflist(rg, p, idx, &np);
    bool any = false, full = false;
    for (size_t i = 0; i < np && !full; i++) {
      const char *id = ring_node_id(rg, idx[i]);
      if (strcmp(id, n->id) == 0 || !core__member_up(n, id))
        continue;
      if (aae__enqueue(n, p, id, 0, true)) {
        queued++;
        any = true;
      } else {
        full = true;
      }
    }
    *parts += any;
    if (full) {
      if (all)
        n->aae.repair_next = p;
      break;
    }
  }
  if (queued)
    core__log(n, NODE_LOG_INFO,
              "repair: %u exchanges of %u partitions queued", queued, *parts);
  return queued;
}

/* B: answers a tree's branches with its leaves of the differing ones. */
void aae_on_branches(node *n, uint64_t conn, const wire_msg *m,
                     const wire_pm_aae_branches *br) {
  uint32_t p = br->part;
  if (p >= n->trees_q) {
    core__send_error(n, conn, m->req_id, KV_EPROTO, "malformed aae branches");
    return;
  }
  n->stats.aae_bytes += m->raw.len;
  const aae_tree *t = aae__tree(n, p);
  wire_pm_aae_leaves *lv = malloc(sizeof(*lv));
  if (!lv) {
    core__send_error(n, conn, m->req_id, KV_ENOMEM, "out of memory");
    return;
  }
  lv->part = p;
  lv->branches = 0;
  for (uint32_t b = 0; b < AAE_BRANCHES; b++) {
    if (br->branch[b] == t->branch[b])
      continue;
    lv->branches |= 1u << b;
    memcpy(&lv->leaf[b * AAE_LEAVES_PER_BRANCH],
           &t->leaf[b * AAE_LEAVES_PER_BRANCH],
           AAE_LEAVES_PER_BRANCH * sizeof(lv->leaf[0]));
  }
  kvbuf pl;
  kvbuf_init(&pl);
  if (wire_pm_encode_aae_leaves(&pl, lv))
    pl.oom = 1; /* core__peer_reply sends nothing */
  free(lv);
  core__peer_reply(n, conn, m->req_id, WIRE_PM_AAE_LEAVES, &pl);
  kvbuf_free(&pl);
}

/* A bitmap of segments. */
typedef struct aae__segs {
  uint64_t bits[AAE_SEGMENTS / 64];
  uint32_t count;
} aae__segs;

static bool aae__seg_has(const aae__segs *s, uint32_t seg) {
  return (s->bits[seg / 64] >> (seg % 64)) & 1u;
}

typedef struct aae__keys {
  node *n;
  const aae__segs *segs;
  wire_pm_items *items; /* the entries, counted in count */
  uint32_t count;
  bool objects; /* pack [key, object] instead of [key, hash] */
} aae__keys;

static int aae__keys_fn(void *arg, const uint8_t *key, size_t klen,
                        const uint8_t *val, size_t vlen) {
  aae__keys *k = arg;
  if (!aae__seg_has(k->segs, tree_segment(key, klen)))
    return 0;
  if (k->count >= AAE_KEYS_MAX)
    return 1;
  int rc = k->objects
               ? wire_pm_items_add_key_object(k->items, key, klen, val, vlen)
               : wire_pm_items_add_key_hash(k->items, key, klen,
                                            XXH3_64bits(val, vlen));
  if (rc)
    return rc;
  k->count++;
  return 0;
}

/* Packs [key, hash] (or [key, object]) of every local key of p in segs
 * into items; returns the count. */
static uint32_t aae__collect(node *n, uint32_t p, const aae__segs *segs,
                             bool objects, wire_pm_items *items) {
  aae__keys k = {.n = n, .segs = segs, .items = items, .objects = objects};
  core__scan(n, p, aae__keys_fn, &k);
  return k.count;
}

/* A: the leaves of the differing branches came back. */
static void aae__leaves(node *n, core_req *r, const wire_pm_aae_leaves *lv) {
  uint32_t p = lv->part;
  if (p != r->part)
    goto done;
  const aae_tree *t = aae__tree(n, p);
  aae__segs segs;
  memset(&segs, 0, sizeof(segs));
  for (uint32_t b = 0; b < AAE_BRANCHES; b++) {
    if (!((lv->branches >> b) & 1u))
      continue;
    for (uint32_t l = 0; l < AAE_LEAVES_PER_BRANCH; l++) {
      uint32_t seg = b * AAE_LEAVES_PER_BRANCH + l;
      if (lv->leaf[seg] != t->leaf[seg]) {
        segs.bits[seg / 64] |= 1ull << (seg % 64);
        segs.count++;
      }
    }
  }
  if (segs.count == 0) {
    aae__finish(n, r, false); /* the trees agree */
    return;
  }
  /* Send our (key, hash) list for the differing segments. */
  wire_pm_items items;
  wire_pm_items_init(&items);
  aae__collect(n, p, &segs, false, &items);
  wire_pm_aae_keys ks = {.part = p, .keys = wire_pm_items_list(&items)};
  _Static_assert(sizeof(ks.segs) == sizeof(segs.bits), "one segment bitmap");
  memcpy(ks.segs, segs.bits, sizeof(ks.segs));
  kvbuf pl;
  kvbuf_init(&pl);
  if (wire_pm_encode_aae_keys(&pl, &ks))
    pl.oom = 1; /* core__peer_send sends nothing */
  wire_pm_items_free(&items);
  r->u.aae.phase = AAE_PHASE_OBJS;
  r->targets[0].state = CORE_T_IDLE;
  uint64_t c =
      core__peer_send(n, r->targets[0].addr, r, 0, WIRE_PM_AAE_KEYS, &pl);
  kvbuf_free(&pl);
  if (c) {
    r->targets[0].conn = c;
    r->targets[0].state = CORE_T_WAIT;
    r->deadline_ms = core__now(n) + n->timeout_ms;
    return;
  }
done:
  aae__finish(n, r, true);
}

/* The (key, hash) list A sent, for a merge join with our own keys. */
typedef struct aae__theirs {
  kv_slice key;
  uint64_t hash;
} aae__theirs;

static int aae__key_cmp(kv_slice a, kv_slice b) {
  size_t l = a.len < b.len ? a.len : b.len;
  int c = l ? memcmp(a.ptr, b.ptr, l) : 0;
  if (c)
    return c;
  return a.len < b.len ? -1 : a.len > b.len;
}

typedef struct aae__join {
  node *n;
  const aae__segs *segs;
  aae__theirs *theirs;
  uint32_t ntheirs, pos;
  uint8_t *matched; /* per key of theirs: 0 we lack it, 1 differs, 2 same */
  wire_pm_items *objs;
  uint32_t nobjs;
} aae__join;

static int aae__join_fn(void *arg, const uint8_t *key, size_t klen,
                        const uint8_t *val, size_t vlen) {
  aae__join *j = arg;
  if (!aae__seg_has(j->segs, tree_segment(key, klen)))
    return 0;
  kv_slice mine = {.ptr = key, .len = klen};
  while (j->pos < j->ntheirs && aae__key_cmp(j->theirs[j->pos].key, mine) < 0)
    j->pos++;
  bool same_key =
      j->pos < j->ntheirs && aae__key_cmp(j->theirs[j->pos].key, mine) == 0;
  uint64_t h = XXH3_64bits(val, vlen);
  if (same_key) {
    j->matched[j->pos] = j->theirs[j->pos].hash == h ? 2 : 1;
    if (j->matched[j->pos] == 2)
      return 0;
  }
  if (j->nobjs >= AAE_KEYS_MAX)
    return 1;
  int rc = wire_pm_items_add_key_object(j->objs, key, klen, val, vlen);
  if (rc)
    return rc;
  j->nobjs++;
  return 0;
}

/* B: A's (key, hash) list for the differing segments: send back our
 * objects that differ or that A lacks, and ask for what we lack. */
void aae_on_keys(node *n, uint64_t conn, const wire_msg *m,
                 const wire_pm_aae_keys *ks) {
  n->stats.aae_bytes += m->raw.len;
  uint32_t p = ks->part, nkeys = ks->keys.count;
  if (p >= n->trees_q) {
    core__send_error(n, conn, m->req_id, KV_EPROTO, "malformed aae keys");
    return;
  }
  aae__segs segs;
  memcpy(segs.bits, ks->segs, sizeof(segs.bits));
  segs.count = 0;
  for (uint32_t w = 0; w < AAE_SEGMENTS / 64; w++)
    segs.count += (uint32_t)__builtin_popcountll(segs.bits[w]);
  aae__theirs *theirs = calloc(nkeys ? nkeys : 1, sizeof(*theirs));
  uint8_t *matched = calloc(nkeys ? nkeys : 1, sizeof(*matched));
  if (!theirs || !matched) {
    free(theirs);
    free(matched);
    core__send_error(n, conn, m->req_id, KV_ENOMEM, "out of memory");
    return;
  }
  wire_pm_iter it;
  wire_pm_iter_init(&it, &ks->keys);
  for (uint32_t i = 0; i < nkeys; i++) {
    wire_pm_key_hash kh;
    int rc = wire_pm_next_key_hash(&it, &kh);
    assert(rc == 0); /* the decoder checked the list whole */
    (void)rc;
    theirs[i].key = kh.key;
    theirs[i].hash = kh.hash;
  }
  wire_pm_items objs, want;
  wire_pm_items_init(&objs);
  wire_pm_items_init(&want);
  aae__join j = {.n = n,
                 .segs = &segs,
                 .theirs = theirs,
                 .ntheirs = nkeys,
                 .matched = matched,
                 .objs = &objs};
  core__scan(n, p, aae__join_fn, &j);
  /* We want every key of theirs that we lack or hold differently (the
   * differing ones also went into objs: each side merges the other's). */
  for (uint32_t i = 0; i < nkeys; i++)
    if (matched[i] != 2)
      wire_pm_items_add_key(&want, theirs[i].key.ptr, theirs[i].key.len);
  wire_pm_aae_objs ob = {.part = p,
                         .objs = wire_pm_items_list(&objs),
                         .want = wire_pm_items_list(&want)};
  kvbuf pl;
  kvbuf_init(&pl);
  if (wire_pm_encode_aae_objs(&pl, &ob))
    pl.oom = 1; /* core__peer_reply sends nothing */
  core__peer_reply(n, conn, m->req_id, WIRE_PM_AAE_OBJS, &pl);
  kvbuf_free(&pl);
  wire_pm_items_free(&objs);
  wire_pm_items_free(&want);
  free(theirs);
  free(matched);
}

/* A: objects to merge, and the keys B wants from us. */
static void aae__objs(node *n, core_req *r, const wire_pm_aae_objs *ob) {
  uint32_t p = ob->part;
  if (p != r->part)
    goto done;
  wire_pm_iter it;
  wire_pm_iter_init(&it, &ob->objs);
  wire_pm_key_object ko;
  while (wire_pm_next_key_object(&it, &ko) == 0) {
    obj *o = NULL;
    if (obj_decode(ko.object.ptr, ko.object.len, &o))
      continue;
    bool changed = false;
    if (core__local_merge(n, p, ko.key.ptr, ko.key.len, o, 0, &changed) == 0 &&
        changed) {
      n->stats.aae_keys_repaired++;
      n->stats.catchup_keys_repaired += r->u.aae.catchup;
      n->stats.repair_keys_repaired += r->u.aae.repair;
    }
    obj_free(o);
  }
  wire_pm_iter_init(&it, &ob->want);
  kv_slice key;
  while (wire_pm_next_key(&it, &key) == 0) {
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
    n->stats.catchup_keys_sent += r->u.aae.catchup;
    if (!n->out.oom)
      n->io.peer_send(n->io.ctx, r->targets[0].addr, n->out.data, n->out.len);
    n->out.len = 0;
    n->out.oom = 0;
  }
done:
  aae__finish(n, r, true);
}

int aae_init(node *n, const node_config *cfg, uint64_t now) {
  n->aae.interval_ms = cfg->aae_interval_ms ? cfg->aae_interval_ms : 10000;
  n->aae.next_ms = now + n->aae.interval_ms;
  n->aae.catchup_bytes_per_s =
      cfg->catchup_off ? 0
                       : (uint64_t)(cfg->catchup_mb_per_s
                                        ? cfg->catchup_mb_per_s
                                        : AAE_CATCHUP_MB_PER_S)
                             << 20;
  n->aae.queue = calloc(AAE_CATCHUP_MAX, sizeof(*n->aae.queue));
  return n->aae.queue ? 0 : KV_ENOMEM;
}

void aae_free(node *n) {
  free(n->aae.queue);
  n->aae.queue = NULL;
  n->aae.len = 0;
}

void aae_check_ring(node *n) {
  const ring *rg = gossip_ring(n->gossip);
  if (ring_q(rg) != n->trees_q && ring_node_count(rg) > 0) {
    /* Joined a cluster with another partition count: rebuild. */
    if (aae_build_trees(n, ring_q(rg)))
      core__log(n, NODE_LOG_ERROR, "cannot rebuild anti-entropy trees");
  }
}

void aae_tick(node *n, uint64_t now) {
  if (!n->aae.running && n->aae.len)
    aae__catchup_next(n, now);
  if (now < n->aae.next_ms)
    return;
  n->aae.next_ms = now + n->aae.interval_ms;
  if (!n->aae.running)
    aae__start(n);
}

void aae_on_reply(node *n, core_req *r, core_target *t, const wire_msg *m) {
  assert(core__req_check(n, r) && r->kind == CORE_REQ_AAE);
  t->state = CORE_T_OK;
  uint32_t want = r->u.aae.phase == AAE_PHASE_LEAVES ? WIRE_PM_AAE_LEAVES
                                                     : WIRE_PM_AAE_OBJS;
  wire_pm *pm = NULL;
  if (m->type != WIRE_PEER_MSG || m->flags != want ||
      !(pm = malloc(sizeof(*pm))) ||
      wire_pm_decode(m->flags, m->raw.ptr, m->raw.len, pm)) {
    free(pm);
    n->aae.running = false;
    core__req_free(n, r);
    return;
  }
  n->stats.aae_bytes += m->raw.len;
  if (want == WIRE_PM_AAE_LEAVES)
    aae__leaves(n, r, &pm->aae_leaves);
  else
    aae__objs(n, r, &pm->aae_objs);
  free(pm);
}

void aae_expired(node *n, core_req *r) {
  assert(core__req_check(n, r) && r->kind == CORE_REQ_AAE);
  n->aae.running = false;
  core__req_free(n, r);
}
