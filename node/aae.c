/*
 * aae.c: the anti-entropy exchange (aae.h).
 */
#include "aae.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core_int.h"

typedef struct aae__build {
  node *n;
  uint32_t part;
  uint8_t *last;
  size_t last_len;
  size_t seen;
} aae__build;

static int aae__build_fn(void *arg, const uint8_t *key, size_t klen,
                            const uint8_t *val, size_t vlen) {
  aae__build *b = arg;
  core__tree_update(b->n, b->part, key, klen, 0, XXH3_64bits(val, vlen));
  if (core__cursor(&b->last, &b->last_len, key, klen))
    return KV_ENOMEM;
  b->seen++;
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
    for (;;) {
      b.seen = 0;
      int rc = n->io.store_scan(n->io.ctx, p, b.last, b.last_len, 1024,
                                aae__build_fn, &b);
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

/* ---- anti-entropy ---- */

static const aae_tree *aae__tree(node *n, uint32_t p) {
  static const aae_tree empty; /* all zero: a partition without data */
  return p < n->trees_q && n->trees[p] ? n->trees[p] : &empty;
}

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
    core_req *r = core__peer_req(n, CORE_REQ_AAE, peer->id, peer->peer_addr);
    if (!r)
      return;
    r->part = p;
    r->u.aae.phase = AAE_PHASE_LEAVES;
    const aae_tree *t = aae__tree(n, p);
    kvbuf pl;
    kvbuf_init(&pl);
    msgpack_packer pk;
    mp_packer_init(&pk, &pl);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint32(&pk, p);
    msgpack_pack_array(&pk, AAE_BRANCHES);
    for (uint32_t b = 0; b < AAE_BRANCHES; b++)
      msgpack_pack_uint64(&pk, t->branch[b]);
    uint64_t c = core__peer_send(n, peer->peer_addr, r, 0, PM_AAE_BRANCHES, &pl);
    kvbuf_free(&pl);
    if (!c) {
      core__req_free(n, r);
      return;
    }
    r->targets[0].conn = c;
    r->targets[0].state = CORE_T_WAIT;
    n->aae.running = true;
    return;
  }
}

/* B: answers a tree's branches with its leaves of the differing ones. */
void aae_on_branches(node *n, uint64_t conn, const wire_msg *m,
                                 mp_reader *rd) {
  uint32_t p, cnt;
  if (mp_read_u32(rd, &p) || p >= n->trees_q || mp_read_array(rd, &cnt) ||
      cnt != AAE_BRANCHES) {
    core__send_error(n, conn, m->req_id, KV_EPROTO, "malformed aae branches");
    return;
  }
  n->stats.aae_bytes += m->raw.len;
  const aae_tree *t = aae__tree(n, p);
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
  core__peer_reply(n, conn, m->req_id, PM_AAE_LEAVES, &pl);
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
  msgpack_packer *pk;
  kvbuf *items; /* packed entries, counted in count */
  uint32_t count;
  bool objects; /* pack [key, object] instead of [key, hash] */
  uint8_t *last;
  size_t last_len;
  size_t seen;
} aae__keys;

static int aae__keys_fn(void *arg, const uint8_t *key, size_t klen,
                           const uint8_t *val, size_t vlen) {
  aae__keys *k = arg;
  k->seen++;
  if (core__cursor(&k->last, &k->last_len, key, klen))
    return KV_ENOMEM;
  if (!aae__seg_has(k->segs, tree_segment(key, klen)))
    return 0;
  if (k->count >= AAE_KEYS_MAX)
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
static uint32_t aae__collect(node *n, uint32_t p, const aae__segs *segs,
                                bool objects, kvbuf *items) {
  msgpack_packer pk;
  mp_packer_init(&pk, items);
  aae__keys k = {.n = n, .segs = segs, .pk = &pk, .items = items,
                    .objects = objects};
  for (;;) {
    k.seen = 0;
    int rc = n->io.store_scan(n->io.ctx, p, k.last, k.last_len, 1024,
                              aae__keys_fn, &k);
    if (rc || k.seen < 1024)
      break;
  }
  free(k.last);
  return k.count;
}

/* A: the leaves of the differing branches came back. */
static void aae__leaves(node *n, core_req *r, mp_reader *rd) {
  uint32_t p, cnt;
  if (mp_read_u32(rd, &p) || p != r->part || mp_read_array(rd, &cnt) ||
      cnt > AAE_BRANCHES)
    goto done;
  const aae_tree *t = aae__tree(n, p);
  aae__segs segs;
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
  uint32_t nkeys = aae__collect(n, p, &segs, false, &items);
  kvbuf pl;
  kvbuf_init(&pl);
  msgpack_packer pk;
  mp_packer_init(&pk, &pl);
  msgpack_pack_array(&pk, 3);
  msgpack_pack_uint32(&pk, p);
  msgpack_pack_array(&pk, segs.count);
  for (uint32_t s = 0; s < AAE_SEGMENTS; s++)
    if (aae__seg_has(&segs, s))
      msgpack_pack_uint32(&pk, s);
  msgpack_pack_array(&pk, nkeys);
  kvbuf_append(&pl, items.data, items.len);
  kvbuf_free(&items);
  r->u.aae.phase = AAE_PHASE_OBJS;
  r->targets[0].state = CORE_T_IDLE;
  uint64_t c = core__peer_send(n, r->targets[0].addr, r, 0, PM_AAE_KEYS, &pl);
  kvbuf_free(&pl);
  if (c) {
    r->targets[0].conn = c;
    r->targets[0].state = CORE_T_WAIT;
    r->deadline_ms = core__now(n) + n->timeout_ms;
    return;
  }
done:
  n->stats.aae_exchanges++;
  n->aae.running = false;
  core__req_free(n, r);
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
  msgpack_packer *objs_pk;
  uint32_t nobjs;
  uint8_t *last;
  size_t last_len;
  size_t seen;
} aae__join;

static int aae__join_fn(void *arg, const uint8_t *key, size_t klen,
                           const uint8_t *val, size_t vlen) {
  aae__join *j = arg;
  j->seen++;
  if (core__cursor(&j->last, &j->last_len, key, klen))
    return KV_ENOMEM;
  if (!aae__seg_has(j->segs, tree_segment(key, klen)))
    return 0;
  kv_slice mine = {.ptr = key, .len = klen};
  while (j->pos < j->ntheirs &&
         aae__key_cmp(j->theirs[j->pos].key, mine) < 0)
    j->pos++;
  bool same_key = j->pos < j->ntheirs &&
                  aae__key_cmp(j->theirs[j->pos].key, mine) == 0;
  uint64_t h = XXH3_64bits(val, vlen);
  if (same_key) {
    j->matched[j->pos] = j->theirs[j->pos].hash == h ? 2 : 1;
    if (j->matched[j->pos] == 2)
      return 0;
  }
  if (j->nobjs >= AAE_KEYS_MAX)
    return 1;
  msgpack_pack_array(j->objs_pk, 2);
  mp_pack_bin(j->objs_pk, key, klen);
  mp_pack_bin(j->objs_pk, val, vlen);
  j->nobjs++;
  return 0;
}

/* B: A's (key, hash) list for the differing segments: send back our
 * objects that differ or that A lacks, and ask for what we lack. */
void aae_on_keys(node *n, uint64_t conn, const wire_msg *m,
                             mp_reader *rd) {
  n->stats.aae_bytes += m->raw.len;
  uint32_t p, nsegs, nkeys;
  aae__segs segs;
  memset(&segs, 0, sizeof(segs));
  if (mp_read_u32(rd, &p) || p >= n->trees_q || mp_read_array(rd, &nsegs) ||
      nsegs > AAE_SEGMENTS)
    goto bad;
  for (uint32_t i = 0; i < nsegs; i++) {
    uint32_t s;
    if (mp_read_u32(rd, &s) || s >= AAE_SEGMENTS)
      goto bad;
    if (!aae__seg_has(&segs, s)) {
      segs.bits[s / 64] |= 1ull << (s % 64);
      segs.count++;
    }
  }
  if (mp_read_array(rd, &nkeys) || nkeys > AAE_KEYS_MAX)
    goto bad;
  aae__theirs *theirs = calloc(nkeys ? nkeys : 1, sizeof(*theirs));
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
        (i && aae__key_cmp(theirs[i - 1].key, theirs[i].key) >= 0)) {
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
  aae__join j = {.n = n, .segs = &segs, .theirs = theirs,
                    .ntheirs = nkeys, .matched = matched, .objs_pk = &opk};
  for (;;) {
    j.seen = 0;
    int rc = n->io.store_scan(n->io.ctx, p, j.last, j.last_len, 1024,
                              aae__join_fn, &j);
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
  core__peer_reply(n, conn, m->req_id, PM_AAE_OBJS, &pl);
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
static void aae__objs(node *n, core_req *r, mp_reader *rd) {
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
  n->aae.running = false;
  core__req_free(n, r);
}

void aae_init(node *n, const node_config *cfg, uint64_t now) {
  n->aae.interval_ms = cfg->aae_interval_ms ? cfg->aae_interval_ms : 10000;
  n->aae.next_ms = now + n->aae.interval_ms;
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
  if (now < n->aae.next_ms)
    return;
  n->aae.next_ms = now + n->aae.interval_ms;
  if (!n->aae.running)
    aae__start(n);
}

void aae_on_reply(node *n, core_req *r, core_target *t, const wire_msg *m) {
  assert(core__req_check(n, r) && r->kind == CORE_REQ_AAE);
  bool ok = m->type != WIRE_ERROR;
  t->state = CORE_T_OK;
  mp_reader rd;
  uint32_t cnt;
  mp_reader_init(&rd, m->raw.ptr, m->raw.len);
  if (!ok || m->type != WIRE_PEER_MSG || mp_read_array(&rd, &cnt)) {
    n->aae.running = false;
    core__req_free(n, r);
    return;
  }
  n->stats.aae_bytes += m->raw.len;
  if (r->u.aae.phase == AAE_PHASE_LEAVES && m->flags == PM_AAE_LEAVES)
    aae__leaves(n, r, &rd);
  else if (r->u.aae.phase == AAE_PHASE_OBJS && m->flags == PM_AAE_OBJS)
    aae__objs(n, r, &rd);
  else {
    n->aae.running = false;
    core__req_free(n, r);
  }
}

void aae_expired(node *n, core_req *r) {
  assert(core__req_check(n, r) && r->kind == CORE_REQ_AAE);
  n->aae.running = false;
  core__req_free(n, r);
}
