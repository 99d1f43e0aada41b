/*
 * core.c: the node core's lifecycle, frame dispatch, the replica side of
 * replication (REPL_PUT, REPL_GET), operator commands (ADMIN) and the glue
 * to the gossip state machine. Request coordination lives in coord.c.
 * See core.h for the design. Pure: no libuv, no RocksDB.
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

uint64_t core__now(node *n) { return n->io.now_ms(n->io.ctx); }

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

static void core__copy(char *dst, size_t cap, const char *src) {
  snprintf(dst, cap, "%s", src ? src : "");
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
  kvbuf_init(&r->enc);
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
  for (uint32_t i = 0; i < r->ntargets; i++)
    obj_free(r->targets[i].answer);
  obj_free(r->result);
  kvbuf_free(&r->enc);
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
    core__log(n, NODE_LOG_ERROR, "stored object of a key in partition %u "
              "does not decode: %s", part, kv_strerror(rc));
  return rc;
}

int core__local_write(node *n, uint32_t part, const uint8_t *key,
                      size_t klen, const uint8_t *enc, size_t enc_len,
                      uint64_t old_hash, uint64_t token) {
  int rc = n->io.store_put(n->io.ctx, part, key, klen, enc, enc_len, token);
  if (rc == 0)
    repair_tree_update(n, part, key, klen, old_hash,
                       XXH3_64bits(enc, enc_len));
  return rc;
}

int core__local_merge(node *n, uint32_t part, const uint8_t *key,
                      size_t klen, const obj *incoming, uint64_t token,
                      bool *changed) {
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

bool core__is_primary(node *n, uint32_t p) {
  const ring *rg = gossip_ring(n->gossip);
  size_t idx[NODE_FANOUT_MAX];
  size_t np = 0;
  core__preflist(rg, p, idx, &np);
  for (size_t i = 0; i < np; i++)
    if (strcmp(ring_node_id(rg, idx[i]), n->id) == 0)
      return true;
  return false;
}

/* ---- replica side ---- */

/* REPL_PUT: merge the coordinator's object into ours; ack after commit
 * (and fsync when asked). */
static void core__repl_put(node *n, uint64_t conn, const wire_msg *m) {
  n->stats.repl_puts++;
  obj *remote = NULL;
  int rc = obj_decode(m->object.ptr, m->object.len, &remote);
  if (rc) {
    core__send_error(n, conn, m->req_id, rc, "replicated object is invalid");
    return;
  }
  uint32_t part = ring_partition(gossip_ring(n->gossip), m->key.ptr,
                                 m->key.len);
  core_req *r = core__req_new(n, CORE_REQ_REPLICA);
  if (!r) {
    obj_free(remote);
    core__send_error(n, conn, m->req_id, KV_EOVERLOAD,
                     "replica %s is overloaded", n->id);
    return;
  }
  r->conn = conn;
  r->reply_id = m->req_id;
  r->durable = (m->flags & WIRE_REPL_DURABLE) != 0;
  r->deadline_ms = core__now(n) + n->timeout_ms * 4u;
  rc = core__local_merge(n, part, m->key.ptr, m->key.len, remote,
                         core__req_wire_id(r, 0), NULL);
  obj_free(remote);
  if (rc) {
    core__req_free(n, r);
    core__send_error(n, conn, m->req_id, rc, "replica %s cannot store: %s",
                     n->id, kv_strerror(rc));
  }
}

/* A replica write committed (or fsynced): ack it. */
static void core__replica_done(node *n, core_req *r, bool synced,
                               int status) {
  if (status) {
    core__send_error(n, r->conn, r->reply_id, status,
                     "replica %s failed to store: %s", n->id,
                     kv_strerror(status));
    core__req_free(n, r);
    return;
  }
  if (r->durable && !synced) {
    int rc = n->io.store_sync(n->io.ctx,
                              core__req_wire_id(r, 0) | CORE_TOKEN_SYNC);
    if (rc == 0)
      return;
    core__send_error(n, r->conn, r->reply_id, rc, "replica %s cannot sync",
                     n->id);
    core__req_free(n, r);
    return;
  }
  wire_msg ok = {.type = WIRE_REPL_PUT_OK, .req_id = r->reply_id};
  wire_encode(&n->out, &ok);
  core__send_conn(n, r->conn);
  core__req_free(n, r);
}

/* REPL_GET: answer with our object (or nil). */
static void core__repl_get(node *n, uint64_t conn, const wire_msg *m) {
  n->stats.repl_gets++;
  uint32_t part = ring_partition(gossip_ring(n->gossip), m->key.ptr,
                                 m->key.len);
  const uint8_t *val = NULL;
  size_t vlen = 0;
  int rc = n->io.store_get(n->io.ctx, part, m->key.ptr, m->key.len, &val,
                           &vlen);
  if (rc && rc != KV_ENOTFOUND) {
    core__send_error(n, conn, m->req_id, rc, "replica %s cannot read: %s",
                     n->id, kv_strerror(rc));
    return;
  }
  wire_msg ok = {.type = WIRE_REPL_GET_OK, .req_id = m->req_id};
  if (rc == 0) {
    ok.object.ptr = val;
    ok.object.len = vlen;
  }
  wire_encode(&n->out, &ok);
  core__send_conn(n, conn);
}

void node_store_done(node *n, uint64_t token, int status) {
  uint32_t target;
  core_req *r = core__req_find(n, token & ~(uint64_t)CORE_TOKEN_SYNC, &target);
  if (!r)
    return;
  bool synced = (token & CORE_TOKEN_SYNC) != 0;
  target &= CORE_TARGET_MASK;
  if (r->kind == CORE_REQ_REPLICA)
    core__replica_done(n, r, synced, status);
  else if (r->kind == CORE_REQ_PUT)
    coord_store_done(n, r, target, synced, status);
  else
    repair_req_done(n, r, target, status);
}

/* ---- operator commands ---- */

static const char *core__member_state(const gossip_member *m) {
  return gossip_status_name(m->status, m->alive);
}

static void core__pack_kv_str(msgpack_packer *pk, const char *k,
                              const char *v) {
  mp_pack_cstr(pk, k);
  mp_pack_cstr(pk, v);
}

static void core__pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v) {
  mp_pack_cstr(pk, k);
  msgpack_pack_uint64(pk, v);
}

static void core__admin_status(node *n, msgpack_packer *pk) {
  const ring *rg = gossip_ring(n->gossip);
  size_t cnt = gossip_member_count(n->gossip);
  msgpack_pack_map(pk, 3);
  core__pack_kv_str(pk, "node", n->id);
  core__pack_kv_u64(pk, "ring_version", ring_version(rg));
  mp_pack_cstr(pk, "members");
  size_t shown = 0;
  for (size_t i = 0; i < cnt; i++)
    if (gossip_member_at(n->gossip, i)->status != GOSSIP_REMOVED)
      shown++;
  msgpack_pack_array(pk, shown);
  for (size_t i = 0; i < cnt; i++) {
    const gossip_member *m = gossip_member_at(n->gossip, i);
    if (m->status == GOSSIP_REMOVED)
      continue;
    int idx = ring_node_index(rg, m->id);
    msgpack_pack_map(pk, 7);
    core__pack_kv_str(pk, "id", m->id);
    core__pack_kv_str(pk, "peer", m->peer_addr);
    core__pack_kv_str(pk, "listen", m->client_addr);
    core__pack_kv_str(pk, "region", m->region);
    core__pack_kv_str(pk, "zone", m->zone);
    core__pack_kv_str(pk, "state", core__member_state(m));
    core__pack_kv_u64(pk, "partitions",
                      idx < 0 ? 0 : ring_owned_count(rg, (size_t)idx));
  }
}

static void core__admin_ring(node *n, msgpack_packer *pk) {
  const ring *rg = gossip_ring(n->gossip);
  uint32_t q = ring_q(rg);
  size_t nn = ring_node_count(rg);
  size_t nreg = ring_region_count(rg);
  uint32_t n_total = ring_n(rg);
  if (nreg) {
    n_total = 0;
    for (size_t i = 0; i < nreg; i++)
      n_total += ring_region_replicas(rg, i);
  }
  msgpack_pack_map(pk, 6);
  core__pack_kv_u64(pk, "version", ring_version(rg));
  core__pack_kv_u64(pk, "q", q);
  core__pack_kv_u64(pk, "n", n_total);
  /* Replicas per region ({} when the cluster uses plain n). */
  mp_pack_cstr(pk, "replicas");
  msgpack_pack_map(pk, nreg);
  for (size_t i = 0; i < nreg; i++)
    core__pack_kv_u64(pk, ring_region_name(rg, i), ring_region_replicas(rg, i));
  mp_pack_cstr(pk, "nodes");
  msgpack_pack_array(pk, nn);
  for (size_t i = 0; i < nn; i++) {
    const char *id = ring_node_id(rg, i);
    const gossip_member *m = gossip_find(n->gossip, id);
    msgpack_pack_map(pk, 6);
    core__pack_kv_str(pk, "id", id);
    core__pack_kv_str(pk, "listen", m ? m->client_addr : "");
    core__pack_kv_str(pk, "peer", m ? m->peer_addr : "");
    core__pack_kv_str(pk, "region", ring_node_region(rg, i));
    core__pack_kv_str(pk, "zone", ring_node_zone(rg, i));
    core__pack_kv_str(pk, "state", m ? core__member_state(m) : "unknown");
  }
  mp_pack_cstr(pk, "partitions");
  msgpack_pack_array(pk, q);
  size_t pl[NODE_FANOUT_MAX];
  for (uint32_t p = 0; p < q; p++) {
    size_t np = 0;
    core__preflist(rg, p, pl, &np);
    msgpack_pack_map(pk, 2);
    core__pack_kv_u64(pk, "partition", p);
    mp_pack_cstr(pk, "owners");
    msgpack_pack_array(pk, np);
    for (size_t i = 0; i < np; i++)
      mp_pack_cstr(pk, ring_node_id(rg, pl[i]));
  }
}

static void core__admin_stats(node *n, msgpack_packer *pk) {
  const core_stats *s = &n->stats;
  msgpack_pack_map(pk, n->io.cpu_us ? 30 : 28);
  core__pack_kv_str(pk, "node", n->id);
  core__pack_kv_u64(pk, "incarnation", n->incarnation);
  core__pack_kv_u64(pk, "gets", s->gets);
  core__pack_kv_u64(pk, "local_gets", s->local_gets);
  core__pack_kv_u64(pk, "puts", s->puts);
  core__pack_kv_u64(pk, "dels", s->dels);
  core__pack_kv_u64(pk, "forwards", s->forwards);
  core__pack_kv_u64(pk, "coord_puts", s->coord_puts);
  core__pack_kv_u64(pk, "repl_puts", s->repl_puts);
  core__pack_kv_u64(pk, "repl_gets", s->repl_gets);
  core__pack_kv_u64(pk, "read_repairs", s->read_repairs);
  core__pack_kv_u64(pk, "errors", s->errors);
  core__pack_kv_u64(pk, "timeouts", s->timeouts);
  core__pack_kv_u64(pk, "unavailable", s->unavailable);
  core__pack_kv_u64(pk, "bad_frames", s->bad_frames);
  core__pack_kv_u64(pk, "sibling_warnings", s->sibling_warnings);
  core__pack_kv_u64(pk, "requests_in_flight", n->nactive);
  core__pack_kv_u64(pk, "hints_stored", s->hints_stored);
  core__pack_kv_u64(pk, "hints_delivered", s->hints_delivered);
  core__pack_kv_u64(pk, "hints_refused", s->hints_refused);
  core__pack_kv_u64(pk, "hints_pending", n->hints_count);
  core__pack_kv_u64(pk, "aae_exchanges", s->aae_exchanges);
  core__pack_kv_u64(pk, "aae_bytes", s->aae_bytes);
  core__pack_kv_u64(pk, "aae_keys_repaired", s->aae_keys_repaired);
  core__pack_kv_u64(pk, "handoff_keys_sent", s->handoff_keys_sent);
  core__pack_kv_u64(pk, "handoff_keys_received", s->handoff_keys_received);
  core__pack_kv_u64(pk, "partitions_dropped", s->partitions_dropped);
  core__pack_kv_u64(pk, "tombstones_reaped", s->tombstones_reaped);
  if (n->io.cpu_us) {
    uint64_t user = 0, sys = 0;
    n->io.cpu_us(n->io.ctx, &user, &sys);
    core__pack_kv_u64(pk, "cpu_user_us", user);
    core__pack_kv_u64(pk, "cpu_sys_us", sys);
  }
}

/* Finds string argument name in an ADMIN args map. */
static bool core__admin_arg(kv_slice args, const char *name, char *out,
                            size_t cap) {
  mp_reader rd;
  uint32_t cnt;
  mp_reader_init(&rd, args.ptr, args.len);
  if (args.len == 0 || mp_read_map(&rd, &cnt))
    return false;
  for (uint32_t i = 0; i < cnt; i++) {
    kv_slice k;
    if (mp_read_bytes(&rd, &k))
      return false;
    if (mp_slice_eq(k, name))
      return mp_read_cstr(&rd, out, cap) == 0;
    if (mp_skip(&rd))
      return false;
  }
  return false;
}

/* "preflist" {"key": K}: the partition of K and its replicas, primaries
 * first, as this node's ring says (like riak-admin's preflist). */
static void core__admin_preflist(node *n, uint64_t conn, const wire_msg *m) {
  mp_reader rd;
  uint32_t cnt;
  kv_slice key = {0};
  bool found = false;
  mp_reader_init(&rd, m->raw.ptr, m->raw.len);
  if (m->raw.len && mp_read_map(&rd, &cnt) == 0) {
    for (uint32_t i = 0; i < cnt && !found; i++) {
      kv_slice k;
      if (mp_read_bytes(&rd, &k))
        break;
      if (mp_slice_eq(k, "key"))
        found = mp_read_bytes(&rd, &key) == 0 && key.len <= KV_KEY_MAX;
      else if (mp_skip(&rd))
        break;
    }
  }
  if (!found) {
    core__send_error(n, conn, m->req_id, KV_EINVAL, "preflist needs a key");
    return;
  }
  const ring *rg = gossip_ring(n->gossip);
  uint32_t p = ring_partition(rg, key.ptr, key.len);
  size_t idx[NODE_FANOUT_MAX];
  size_t np = 0;
  size_t total = core__preflist(rg, p, idx, &np);
  msgpack_packer pk;
  size_t start;
  wire_begin(&n->out, &pk, &start, WIRE_ADMIN_OK, m->req_id, 1);
  msgpack_pack_map(&pk, 3);
  core__pack_kv_u64(&pk, "partition", p);
  mp_pack_cstr(&pk, "primaries");
  msgpack_pack_array(&pk, np);
  for (size_t i = 0; i < np; i++)
    mp_pack_cstr(&pk, ring_node_id(rg, idx[i]));
  mp_pack_cstr(&pk, "fallbacks");
  msgpack_pack_array(&pk, total - np);
  for (size_t i = np; i < total; i++)
    mp_pack_cstr(&pk, ring_node_id(rg, idx[i]));
  wire_end(&n->out, start);
  core__send_conn(n, conn);
}

static void core__admin_done(node *n, uint64_t conn, uint64_t req_id,
                             const char *what) {
  msgpack_packer pk;
  size_t start;
  wire_begin(&n->out, &pk, &start, WIRE_ADMIN_OK, req_id, 1);
  msgpack_pack_map(&pk, 2);
  core__pack_kv_str(&pk, "ok", "true");
  core__pack_kv_str(&pk, "message", what);
  wire_end(&n->out, start);
  core__send_conn(n, conn);
}

static void core__admin(node *n, uint64_t conn, const wire_msg *m) {
  char arg[GOSSIP_ADDR_MAX];
  char msg[160];
  uint64_t now = core__now(n);
  if (mp_slice_eq(m->text, "status") || mp_slice_eq(m->text, "ring") ||
      mp_slice_eq(m->text, "stats")) {
    msgpack_packer pk;
    size_t start;
    wire_begin(&n->out, &pk, &start, WIRE_ADMIN_OK, m->req_id, 1);
    if (mp_slice_eq(m->text, "status"))
      core__admin_status(n, &pk);
    else if (mp_slice_eq(m->text, "ring"))
      core__admin_ring(n, &pk);
    else
      core__admin_stats(n, &pk);
    wire_end(&n->out, start);
    core__send_conn(n, conn);
    return;
  }
  if (mp_slice_eq(m->text, "preflist")) {
    core__admin_preflist(n, conn, m);
    return;
  }
  int rc;
  if (mp_slice_eq(m->text, "join")) {
    if (!core__admin_arg(m->raw, "seed", arg, sizeof(arg))) {
      core__send_error(n, conn, m->req_id, KV_EINVAL,
                       "join needs a seed address (host:port)");
      return;
    }
    rc = gossip_join(n->gossip, arg, now);
    snprintf(msg, sizeof(msg), "%s is joining the cluster of %s", n->id, arg);
  } else if (mp_slice_eq(m->text, "leave")) {
    const gossip_member *self = gossip_self(n->gossip);
    if (self && self->status == GOSSIP_JOINING) {
      core__send_error(n, conn, m->req_id, KV_ESTATE,
                       "%s is still joining (not in the ring it knows); "
                       "leave once `kvorum status` shows it up, or remove it "
                       "from another node", n->id);
      return;
    }
    rc = gossip_leave(n->gossip, n->id, now);
    snprintf(msg, sizeof(msg), "%s is leaving the cluster", n->id);
  } else if (mp_slice_eq(m->text, "remove")) {
    if (!core__admin_arg(m->raw, "node", arg, sizeof(arg))) {
      core__send_error(n, conn, m->req_id, KV_EINVAL,
                       "remove needs a node id");
      return;
    }
    if (strcmp(arg, n->id) == 0) {
      core__send_error(n, conn, m->req_id, KV_ESTATE,
                       "a node cannot remove itself; use leave, or remove it "
                       "from another node");
      return;
    }
    rc = gossip_remove(n->gossip, arg, now);
    snprintf(msg, sizeof(msg), "%s was removed from the cluster", arg);
  } else if (mp_slice_eq(m->text, "transfers")) {
    msgpack_packer pk;
    size_t start;
    wire_begin(&n->out, &pk, &start, WIRE_ADMIN_OK, m->req_id, 1);
    repair_admin_transfers(n, &pk);
    wire_end(&n->out, start);
    core__send_conn(n, conn);
    return;
  } else {
    core__send_error(n, conn, m->req_id, KV_EUNKNOWN,
                     "unknown admin command '%.*s' (known: status, ring, "
                     "stats, join, leave, remove, transfers, preflist)",
                     (int)(m->text.len > 64 ? 64 : m->text.len),
                     (const char *)m->text.ptr);
    return;
  }
  if (rc == KV_ENOTFOUND)
    core__send_error(n, conn, m->req_id, rc, "no such node: %s", arg);
  else if (rc)
    core__send_error(n, conn, m->req_id, rc, "%s", kv_strerror(rc));
  else
    core__admin_done(n, conn, m->req_id, msg);
}

/* ---- frame dispatch ---- */

static int core__hello(node *n, uint64_t conn, const wire_msg *m) {
  if (m->version != WIRE_PROTOCOL_VERSION) {
    core__send_error(n, conn, m->req_id, KV_EVERSION,
                     "protocol version %llu is not supported (this node "
                     "speaks %d)",
                     (unsigned long long)m->version, WIRE_PROTOCOL_VERSION);
    return NODE_FRAME_CLOSE;
  }
  wire_msg ok = {.type = WIRE_HELLO_OK, .req_id = m->req_id,
                 .version = WIRE_PROTOCOL_VERSION};
  ok.text.ptr = (const uint8_t *)n->id;
  ok.text.len = strlen(n->id);
  ok.region.ptr = (const uint8_t *)n->region;
  ok.region.len = strlen(n->region);
  ok.partitions = ring_q(gossip_ring(n->gossip));
  wire_encode(&n->out, &ok);
  core__send_conn(n, conn);
  return NODE_FRAME_GREETED;
}

static int core__client_frame(node *n, uint64_t conn, bool greeted,
                              const wire_msg *m) {
  if (!greeted) {
    if (m->type == WIRE_HELLO)
      return core__hello(n, conn, m);
    core__send_error(n, conn, m->req_id, KV_EPROTO,
                     "a connection must start with hello");
    return NODE_FRAME_CLOSE;
  }
  switch (m->type) {
  case WIRE_GET:
    coord_get(n, conn, m);
    return NODE_FRAME_OK;
  case WIRE_PUT:
    coord_put(n, conn, m, false, false);
    return NODE_FRAME_OK;
  case WIRE_DEL:
    coord_put(n, conn, m, true, false);
    return NODE_FRAME_OK;
  case WIRE_ADMIN:
    core__admin(n, conn, m);
    return NODE_FRAME_OK;
  case WIRE_HELLO:
    return core__hello(n, conn, m);
  default:
    core__send_error(n, conn, m->req_id, KV_EUNKNOWN,
                     "message type %s (%u) is not a client request",
                     wire_type_name(m->type), m->type);
    return NODE_FRAME_OK;
  }
}

static int core__peer_frame(node *n, uint64_t conn, node_conn_kind kind,
                            bool greeted, const wire_msg *m) {
  if (kind == NODE_CONN_PEER_OUT) {
    /* Answers to what we asked. */
    switch (m->type) {
    case WIRE_REPL_PUT_OK:
    case WIRE_REPL_GET_OK:
    case WIRE_PUT_OK:
    case WIRE_DEL_OK:
    case WIRE_ERROR:
    case WIRE_PEER_MSG: {
      uint32_t t;
      core_req *r = core__req_find(n, m->req_id, &t);
      if (!r)
        return NODE_FRAME_OK;
      if (r->kind == CORE_REQ_PUT || r->kind == CORE_REQ_GET ||
          r->kind == CORE_REQ_FWD)
        coord_on_reply(n, conn, m);
      else
        repair_on_reply(n, conn, m);
      return NODE_FRAME_OK;
    }
    default:
      n->stats.bad_frames++;
      return NODE_FRAME_OK;
    }
  }
  if (!greeted) {
    if (m->type != WIRE_PEER_HELLO) {
      core__send_error(n, conn, m->req_id, KV_EPROTO,
                       "a peer connection must start with peer_hello");
      return NODE_FRAME_CLOSE;
    }
    if (m->version != WIRE_PROTOCOL_VERSION) {
      core__send_error(n, conn, m->req_id, KV_EVERSION,
                       "peer protocol version %llu is not supported",
                       (unsigned long long)m->version);
      return NODE_FRAME_CLOSE;
    }
    return NODE_FRAME_GREETED;
  }
  switch (m->type) {
  case WIRE_REPL_PUT:
    core__repl_put(n, conn, m);
    break;
  case WIRE_REPL_GET:
    core__repl_get(n, conn, m);
    break;
  case WIRE_COORD_PUT:
    n->stats.coord_puts++;
    coord_put(n, conn, m, (m->flags & WIRE_COORD_DELETE) != 0, true);
    break;
  case WIRE_PEER_MSG:
    repair_on_request(n, conn, m);
    break;
  case WIRE_GOSSIP:
    if (gossip_receive(n->gossip, m->raw.ptr, m->raw.len, core__now(n)))
      n->stats.bad_frames++;
    break;
  default:
    n->stats.bad_frames++;
    core__send_error(n, conn, m->req_id, KV_EUNKNOWN,
                     "message type %s (%u) is not a peer request",
                     wire_type_name(m->type), m->type);
  }
  return NODE_FRAME_OK;
}

int node_on_frame(node *n, uint64_t conn, node_conn_kind kind, bool greeted,
                  const uint8_t *body, size_t len) {
  wire_msg m;
  int rc = wire_decode(body, len, &n->wlim, &m);
  if (rc) {
    n->stats.bad_frames++;
    if (kind == NODE_CONN_PEER_OUT)
      return NODE_FRAME_OK; /* never answer an answer */
    if (rc == KV_ETOOBIG)
      core__send_error(n, conn, m.req_id, rc,
                       "key or value too large (key at most %u bytes, value "
                       "at most %u bytes)",
                       KV_KEY_MAX, n->wlim.value_max);
    else if (rc == KV_EUNKNOWN)
      core__send_error(n, conn, m.req_id, rc, "unknown message type %u",
                       m.type);
    else
      core__send_error(n, conn, m.req_id, rc, "malformed %s message",
                       wire_type_name(m.type));
    return greeted ? NODE_FRAME_OK : NODE_FRAME_CLOSE;
  }
  if (kind == NODE_CONN_CLIENT)
    return core__client_frame(n, conn, greeted, &m);
  return core__peer_frame(n, conn, kind, greeted, &m);
}

void node_on_close(node *n, uint64_t conn, node_conn_kind kind) {
  if (kind == NODE_CONN_PEER_OUT) {
    coord_conn_closed(n, conn);
    repair_conn_closed(n, conn);
  }
}

void node_tick(node *n) {
  uint64_t now = core__now(n);
  gossip_tick(n->gossip, now);
  coord_tick(n, now);
  repair_tick(n, now);
}

/* ---- gossip glue ---- */

static void core__gossip_send(void *ctx, const char *addr,
                              const uint8_t *payload, size_t len) {
  node *n = ctx;
  if (strcmp(addr, n->peer_addr) == 0)
    return;
  wire_msg g = {.type = WIRE_GOSSIP};
  g.raw.ptr = payload;
  g.raw.len = len;
  kvbuf b;
  kvbuf_init(&b);
  if (wire_encode(&b, &g) == 0)
    n->io.peer_send(n->io.ctx, addr, b.data, b.len);
  kvbuf_free(&b);
}

static void core__ring_changed(void *ctx, const ring *r) {
  node *n = ctx;
  kvbuf b;
  kvbuf_init(&b);
  if (ring_encode(r, &b) == 0)
    n->io.meta_put(n->io.ctx, "ring", b.data, b.len);
  kvbuf_free(&b);
  core__log(n, NODE_LOG_INFO, "ring version %llu: %zu nodes",
            (unsigned long long)ring_version(r), ring_node_count(r));
}

static void core__member_changed(void *ctx, const gossip_member *m) {
  node *n = ctx;
  core__log(n, NODE_LOG_INFO, "member %s (%s) is %s", m->id, m->peer_addr,
            gossip_status_name(m->status, m->alive));
}

/* ---- lifecycle ---- */

node *node_new(const node_config *cfg, const node_io *io, char *err,
               size_t errlen) {
  node *n = calloc(1, sizeof(*n));
  if (!n) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  n->io = *io;
  core__copy(n->id, sizeof(n->id), cfg->id);
  core__copy(n->region, sizeof(n->region),
             cfg->region && *cfg->region ? cfg->region : "default");
  core__copy(n->zone, sizeof(n->zone), cfg->zone);
  core__copy(n->client_addr, sizeof(n->client_addr), cfg->client_addr);
  core__copy(n->peer_addr, sizeof(n->peer_addr), cfg->peer_addr);
  n->incarnation = cfg->incarnation;
  n->actor = node_actor_of(n->id, n->incarnation);
  n->def_r = cfg->r ? cfg->r : 2;
  n->def_w = cfg->w ? cfg->w : 2;
  n->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : NODE_TIMEOUT_MS_DEFAULT;
  n->limits = cfg->limits.siblings_max ? cfg->limits : obj_limits_default;
  n->wlim = wire_limits_default;
  if (n->limits.value_max)
    n->wlim.value_max = n->limits.value_max;
  n->log_level = cfg->log_level;
  kvbuf_init(&n->out);
  kvbuf_init(&n->scratch);
  n->nslots = NODE_REQUESTS_MAX;
  if (cfg->requests_max && cfg->requests_max < NODE_REQUESTS_MAX) {
    n->nslots = 1;
    while (n->nslots * 2 <= cfg->requests_max)
      n->nslots *= 2;
  }
  n->slots = calloc(n->nslots, sizeof(*n->slots));
  n->free_slots = calloc(n->nslots, sizeof(*n->free_slots));
  if (!n->slots || !n->free_slots) {
    snprintf(err, errlen, "out of memory");
    node_free(n);
    return NULL;
  }
  for (uint32_t i = 0; i < n->nslots; i++)
    n->free_slots[i] = n->nslots - 1 - i;
  n->nfree = n->nslots;

  ring *saved = NULL;
  if (cfg->ring_saved && ring_decode(cfg->ring_saved, cfg->ring_saved_len,
                                     &saved) != 0) {
    core__log(n, NODE_LOG_WARN, "the saved ring does not decode; "
              "starting without it");
    saved = NULL;
  }
  if (saved && ring_q(saved) != cfg->q && cfg->q)
    core__log(n, NODE_LOG_WARN, "--partitions %u ignored: the cluster was "
              "created with %u partitions", cfg->q, ring_q(saved));
  gossip_config gc = {
      .id = n->id,
      .region = n->region,
      .zone = n->zone,
      .client_addr = n->client_addr,
      .peer_addr = n->peer_addr,
      .incarnation = n->incarnation,
      .seeds = cfg->seeds,
      .nseeds = cfg->nseeds,
      .q = cfg->q ? cfg->q : RING_Q_DEFAULT,
      .n = cfg->n ? cfg->n : 3,
      .replicas = cfg->replicas,
      .nreplicas = cfg->nreplicas,
      .interval_ms = cfg->gossip_interval_ms,
      .fanout = 3,
      .phi_threshold = cfg->phi_threshold,
      .rng_seed = io->random(io->ctx),
  };
  gossip_io gio = {.ctx = n,
                   .send = core__gossip_send,
                   .ring_changed = core__ring_changed,
                   .member_changed = core__member_changed};
  n->gossip = gossip_new(&gc, &gio, saved, core__now(n));
  ring_free(saved);
  if (!n->gossip) {
    snprintf(err, errlen, "cannot start membership (bad configuration?)");
    node_free(n);
    return NULL;
  }
  if (repair_init(n, cfg)) {
    snprintf(err, errlen, "cannot build the anti-entropy trees");
    node_free(n);
    return NULL;
  }
  return n;
}

void node_free(node *n) {
  if (!n)
    return;
  if (n->slots)
    while (n->active)
      core__req_free(n, n->active);
  repair_free(n);
  gossip_free(n->gossip);
  free(n->slots);
  free(n->free_slots);
  kvbuf_free(&n->out);
  kvbuf_free(&n->scratch);
  free(n);
}

const char *node_id(const node *n) { return n->id; }
uint64_t node_actor(const node *n) { return n->actor; }
uint64_t node_actor_part(const node *n, uint32_t part) {
  return core__actor(n, part);
}
const gossip *node_gossip(const node *n) { return n->gossip; }
uint64_t node_hints_pending(const node *n) { return n->hints_count; }
size_t node_requests_in_flight(const node *n) { return n->nactive; }
