/*
 * replica.c: the replica side of coordination (replica.h).
 */
#include "replica.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core_int.h"

/* ---- replica side ---- */

/* With WIRE_REPL_BASE: when this replica holds exactly the bytes the
 * coordinator made the object from (base), the object descends what is
 * here, so it is stored as it came, without decoding, merging and
 * encoding ours. Returns 1 when it was (*rc the write's result), 0 when
 * the merge is needed. */
static int replica__fast(node *n, uint32_t part, const wire_msg *m,
                         uint64_t token, int *rc) {
  if (!(m->flags & WIRE_REPL_BASE))
    return 0;
  const uint8_t *val = NULL;
  size_t vlen = 0;
  int g = n->io.store_get(n->io.ctx, part, m->key.ptr, m->key.len, &val,
                          &vlen);
  if (g && g != KV_ENOTFOUND)
    return 0;
  uint64_t cur = g == 0 ? XXH3_64bits(val, vlen) : 0;
  if (cur != m->base_hash)
    return 0;
  n->stats.repl_puts_fast++;
  *rc = core__local_write(n, part, m->key.ptr, m->key.len, m->object.ptr,
                          m->object.len, cur, token);
  return 1;
}

/* REPL_PUT: merge the coordinator's object into ours; ack after commit
 * (and fsync when asked). */
void replica_on_put(node *n, uint64_t conn, const wire_msg *m) {
  n->stats.repl_puts++;
  int rc = obj_check(m->object.ptr, m->object.len);
  if (rc) {
    core__send_error(n, conn, m->req_id, rc, "replicated object is invalid");
    return;
  }
  uint32_t part =
      ring_partition(gossip_ring(n->gossip), m->key.ptr, m->key.len);
  core_req *r = core__req_new(n, CORE_REQ_REPLICA);
  if (!r) {
    core__send_error(n, conn, m->req_id, KV_EOVERLOAD,
                     "replica %s is overloaded", n->id);
    return;
  }
  r->conn = conn;
  r->reply_id = m->req_id;
  r->durable = (m->flags & WIRE_REPL_DURABLE) != 0;
  r->deadline_ms = core__now(n) + n->timeout_ms * 4u;
  if (!replica__fast(n, part, m, core__req_wire_id(r, 0), &rc)) {
    obj *remote = NULL;
    rc = obj_decode(m->object.ptr, m->object.len, &remote);
    if (rc == 0)
      rc = core__local_merge(n, part, m->key.ptr, m->key.len, remote,
                             core__req_wire_id(r, 0), NULL);
    obj_free(remote);
  }
  if (rc) {
    core__req_free(n, r);
    core__send_error(n, conn, m->req_id, rc, "replica %s cannot store: %s",
                     n->id, kv_strerror(rc));
  }
}

/* A replica write committed (or fsynced): ack it. */
void replica_store_done(node *n, core_req *r, bool synced, int status) {
  if (status) {
    core__send_error(n, r->conn, r->reply_id, status,
                     "replica %s failed to store: %s", n->id,
                     kv_strerror(status));
    core__req_free(n, r);
    return;
  }
  if (r->durable && !synced) {
    int rc =
        n->io.store_sync(n->io.ctx, core__req_wire_id(r, 0) | CORE_TOKEN_SYNC);
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
void replica_on_get(node *n, uint64_t conn, const wire_msg *m) {
  n->stats.repl_gets++;
  uint32_t part =
      ring_partition(gossip_ring(n->gossip), m->key.ptr, m->key.len);
  const uint8_t *val = NULL;
  size_t vlen = 0;
  int rc =
      n->io.store_get(n->io.ctx, part, m->key.ptr, m->key.len, &val, &vlen);
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
