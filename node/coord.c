/*
 * coord.c: coordination of client requests (coord.h): put and delete (a
 * tombstone put) with W/DW/PW, get with R/PR and read repair, forwarding
 * of writes to a replica, and request timeouts. The state machine is drawn
 * in core.h; the level arithmetic is levels.h's and the targets apl.h's. A
 * write always goes to every primary at once; only the condition for the
 * acknowledgement differs by level.
 *
 * Pure: no libuv, no RocksDB; all effects go through node_io.
 */
#include "coord.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apl.h"
#include "core_int.h"
#include "hints.h"
#include "levels.h"
#include "reap.h"
#include "types.h"

/* The NODE_OP_* of a put, get or forward. */
static int coord__op(const core_req *r) {
  if (r->kind == CORE_REQ_GET)
    return NODE_OP_GET;
  return r->u.coord.reply_type == WIRE_DEL_OK ? NODE_OP_DEL : NODE_OP_PUT;
}

/* Counts r's answer to its client (a forwarded write's coordinator does
 * not count it: the node the client asked does). */
static void coord__answered(node *n, const core_req *r, int code) {
  if (!r->from_peer)
    core__answered(n, coord__op(r), code, r->start_us);
}

/* Replies with an error to r's client and frees r. */
static void coord__fail(node *n, core_req *r, int code, const char *msg) {
  n->stats.errors++;
  if (!r->replied) {
    coord__answered(n, r, code);
    core__send_error(n, r->conn, r->reply_id, code, "%s", msg);
  }
  core__req_free(n, r);
}

/* The NODE_OP_* of a client's GET, PUT or DEL frame, or -1 (COORD_PUT:
 * counted where the client asked). */
static int coord__msg_op(const wire_msg *m) {
  switch (m->type) {
  case WIRE_GET: return NODE_OP_GET;
  case WIRE_PUT: return NODE_OP_PUT;
  case WIRE_DEL: return NODE_OP_DEL;
  default: return -1;
  }
}

/* Answers a client frame with an error before it became a request. */
static void coord__refuse(node *n, uint64_t conn, const wire_msg *m, int code,
                          const char *msg) {
  n->stats.errors++;
  int op = coord__msg_op(m);
  if (op >= 0)
    core__answered(n, op, code, core__now_us(n));
  core__send_error(n, conn, m->req_id, code, "%s", msg);
}

/* Copies the request's key and sets up reply routing. */
static int coord__init(node *n, core_req *r, uint64_t conn, const wire_msg *m) {
  r->conn = conn;
  r->reply_id = m->req_id;
  r->opts = m->opts;
  r->opts.region.ptr = NULL; /* points into the frame; copied to region */
  r->opts.region.len = 0;
  size_t rl = m->opts.region.len < sizeof(r->u.coord.region) - 1
                  ? m->opts.region.len
                  : sizeof(r->u.coord.region) - 1;
  if (rl)
    memcpy(r->u.coord.region, m->opts.region.ptr, rl);
  r->u.coord.region[rl] = '\0';
  r->timeout_ms = m->opts.timeout_ms ? m->opts.timeout_ms : n->timeout_ms;
  r->deadline_ms = r->start_ms + r->timeout_ms;
  if (core__req_set_key(r, m->key.ptr, m->key.len))
    return KV_ENOMEM;
  r->part = ring_partition(gossip_ring(n->gossip), m->key.ptr, m->key.len);
  return 0;
}

/* The admission of a put or get: a request slot (or ERROR EOVERLOAD),
 * its key and reply routing, and its targets (or ERROR EUNAVAIL without a
 * ring). Returns the request with *nrep, the key's N, or NULL when the
 * client already has its error. */
static core_req *coord__admit(node *n, core_req_kind kind, uint64_t conn,
                              const wire_msg *m, bool sloppy, uint32_t *nrep) {
  core_req *r = core__req_new(n, kind);
  if (!r) {
    char msg[WIRE_ERRMSG_MAX];
    snprintf(msg, sizeof(msg), "node %s has %u requests in flight", n->id,
             n->nslots);
    coord__refuse(n, conn, m, KV_EOVERLOAD, msg);
    return NULL;
  }
  if (coord__init(n, r, conn, m)) {
    coord__fail(n, r, KV_ENOMEM, "out of memory");
    return NULL;
  }
  *nrep = apl_targets(n, r, sloppy);
  if (*nrep == 0) {
    coord__fail(n, r, KV_EUNAVAIL,
                "this node is not in a cluster yet (no ring)");
    return NULL;
  }
  return r;
}

/* Sends frame n->out built for target t of r, recording the connection. */
static void coord__send_target(node *n, core_req *r, uint32_t ti) {
  core_target *t = &r->targets[ti];
  uint64_t c = 0;
  if (!n->out.oom && t->addr[0])
    c = n->io.peer_send(n->io.ctx, t->addr, n->out.data, n->out.len);
  n->out.len = 0;
  n->out.oom = 0;
  if (c == 0) {
    t->state = CORE_T_FAILED;
    r->fails++;
    return;
  }
  t->conn = c;
  t->state = CORE_T_WAIT;
}

/* ---- put ---- */

static void coord__put_reply(node *n, core_req *r) {
  n->scratch.len = 0;
  obj_context(r->result, &n->scratch);
  wire_msg ok = {.type = r->u.coord.reply_type, .req_id = r->reply_id};
  ok.context.ptr = n->scratch.data;
  ok.context.len = n->scratch.len;
  if (r->typed.len) { /* a typed put: its new state and what it did */
    ok.value.ptr = r->typed.data;
    ok.value.len = r->typed.len;
    memcpy(ok.result, r->typed_result, sizeof(ok.result));
  }
  wire_encode(&n->out, &ok);
  core__send_conn(n, r->conn);
  coord__answered(n, r, 0);
  r->replied = true;
}

/* Decides a put: replies when W, DW and PW are met, fails when they no
 * longer can be. Frees r when it is decided. */
/* Judges the regional parts of a put's W, DW and PW: 1 met, -1 lost (msg
 * says where), 0 undecided. Levels that are not regional count as met. */
static int coord__put_regions(node *n, core_req *r, char *msg, size_t msglen) {
  int32_t qs[3] = {r->opts.w, r->opts.dw, r->opts.pw};
  static const char *const names[3] = {"w", "dw", "pw"};
  if (!levels_regional(qs[0]) && !levels_regional(qs[1]) &&
      !levels_regional(qs[2]))
    return 1;
  levels_tally t;
  apl_tally(n, r, &t);
  int res = 1;
  for (int i = 0; i < 3; i++) {
    if (!levels_regional(qs[i]))
      continue;
    int j = levels_judge(&t, qs[i], i == 2, false, names[i],
                         "acknowledged the write", msg, msglen);
    if (j < 0)
      return -1;
    if (j == 0)
      res = 0;
  }
  return res;
}

/* Whether an alive fallback of r stands in for primary t (and, with
 * ok_only, has taken the write). */
static bool coord__covered(const core_req *r, const core_target *t,
                           bool ok_only) {
  for (uint32_t i = 0; i < r->ntargets; i++) {
    const core_target *f = &r->targets[i];
    if (f->hint_for[0] && strcmp(f->hint_for, t->id) == 0 && f->alive &&
        (!ok_only || f->state == CORE_T_OK))
      return true;
  }
  return false;
}

/* Coordinator hints (hints.h): the write r, committed locally, is kept as
 * a hint for every primary that is down and has no fallback to keep one. */
static void coord__hint_down(node *n, core_req *r) {
  for (uint32_t i = 0; i < r->ntargets; i++) {
    core_target *t = &r->targets[i];
    if (!t->primary || t->self || t->alive || coord__covered(r, t, false))
      continue;
    hints_keep(n, t->id, r->part, r->key, r->klen, r->enc.data, r->enc.len);
    t->hinted = true;
  }
}

/* The end of a put whose own write committed: a hint for every primary
 * that did not take it (failed, unreachable, or no answer in time) and
 * whose fallback did not either, so it gets the write when it is back. */
static void coord__hint_rest(node *n, core_req *r) {
  int self = apl_self(r);
  if (self < 0 || r->targets[self].state != CORE_T_OK)
    return;
  for (uint32_t i = 0; i < r->ntargets; i++) {
    core_target *t = &r->targets[i];
    if (!t->primary || t->self || t->hinted || t->state == CORE_T_OK ||
        coord__covered(r, t, true))
      continue;
    hints_keep(n, t->id, r->part, r->key, r->klen, r->enc.data, r->enc.len);
    t->hinted = true;
  }
}

static void coord__put_check(node *n, core_req *r) {
  uint32_t waiting = apl_waiting(r);
  if (!r->replied) {
    char rmsg[WIRE_ERRMSG_MAX];
    int regions = coord__put_regions(n, r, rmsg, sizeof(rmsg));
    if (regions < 0) {
      coord__hint_rest(n, r);
      coord__fail(n, r, KV_EQUORUM, rmsg);
      return;
    }
    if (regions > 0 && r->acks >= r->need && r->dw_acks >= r->need_dw &&
        r->p_acks >= r->need_p) {
      /* Replied; the request stays until every replica answered (or its
       * deadline), to know which ones need a hint. */
      coord__put_reply(n, r);
    } else if (r->acks + waiting < r->need ||
               r->dw_acks + waiting < r->need_dw ||
               r->p_acks + waiting < r->need_p) {
      /* The local write counts as waiting until its commit. */
      char msg[WIRE_ERRMSG_MAX];
      snprintf(msg, sizeof(msg),
               "only %u of %u required replicas acknowledged the write "
               "(%u failed)",
               r->acks, r->need, r->fails);
      coord__hint_rest(n, r);
      coord__fail(n, r, KV_EQUORUM, msg);
      return;
    }
  }
  if (r->replied && waiting == 0) {
    /* A delete that every primary took may have its tombstone reaped once
     * the grace period has passed. */
    bool all = true;
    for (uint32_t i = 0; i < r->ntargets; i++)
      if (r->targets[i].primary && r->targets[i].state != CORE_T_OK)
        all = false;
    if (all && r->is_delete)
      reap_schedule(n, r->part, r->key, r->klen, 0);
    else if (all && r->opts.ttl_ms)
      reap_schedule(n, r->part, r->key, r->klen, r->opts.ttl_ms);
    coord__hint_rest(n, r);
    core__req_free(n, r);
  }
}

/* Forwards a client write to an alive primary that coordinates it. */
static void coord__forward(node *n, core_req *r, const wire_msg *m,
                           bool is_delete) {
  /* A primary in the local region first, so the write is coordinated
   * next to its client; else any alive primary. */
  const char *local = apl_local_region(n, r);
  int ti = -1;
  for (int pass = 0; pass < 2 && ti < 0; pass++)
    for (uint32_t i = 0; i < r->ntargets && ti < 0; i++)
      if (r->targets[i].alive && !r->targets[i].self &&
          (pass == 1 ||
           strcmp(apl_target_region(n, &r->targets[i]), local) == 0))
        ti = (int)i;
  if (ti < 0) {
    n->stats.unavailable++;
    coord__fail(n, r, KV_EUNAVAIL, "no replica of this key is up");
    return;
  }
  n->stats.forwards++;
  r->kind = CORE_REQ_FWD;
  /* Keep only the chosen coordinator as the request's one target. */
  if (ti != 0)
    r->targets[0] = r->targets[ti];
  r->ntargets = 1;
  wire_msg f = {.type = WIRE_COORD_PUT, .req_id = core__req_wire_id(r, 0)};
  f.key = m->key;
  f.value = m->value;
  f.context = m->context;
  f.opts = m->opts;
  /* The coordinator judges local levels by our local region. */
  f.opts.region.ptr = (const uint8_t *)local;
  f.opts.region.len = strlen(local);
  f.flags = is_delete ? WIRE_COORD_DELETE : 0;
  wire_encode(&n->out, &f);
  coord__send_target(n, r, 0);
  if (r->targets[0].state == CORE_T_FAILED)
    coord__fail(n, r, KV_EUNAVAIL, "cannot reach the replica to forward to");
}

void coord_put(node *n, uint64_t conn, const wire_msg *m, bool is_delete,
               bool from_peer) {
  if (is_delete)
    n->stats.dels++;
  else
    n->stats.puts++;
  if (m->context.ptr && obj_context_check(m->context.ptr, m->context.len)) {
    coord__refuse(n, conn, m, KV_EINVAL,
                  "the context is not one this store gave out");
    return;
  }
  uint32_t nrep;
  core_req *r = coord__admit(n, CORE_REQ_PUT, conn, m,
                             !(m->opts.flags & WIRE_OPT_NO_SLOPPY), &nrep);
  if (!r)
    return;
  r->is_delete = is_delete;
  r->from_peer = from_peer;
  r->u.coord.reply_type = is_delete ? WIRE_DEL_OK : WIRE_PUT_OK;
  char err[WIRE_ERRMSG_MAX];
  levels_tally tally;
  apl_tally(n, r, &tally);
  if (levels_resolve("w", m->opts.w, n->def_w, nrep, &tally, &r->need, err,
                     sizeof(err)) ||
      levels_resolve("dw", m->opts.dw, 0, nrep, &tally, &r->need_dw, err,
                     sizeof(err)) ||
      levels_resolve("pw", m->opts.pw, 0, nrep, &tally, &r->need_p, err,
                     sizeof(err))) {
    coord__fail(n, r, KV_EINVAL, err);
    return;
  }
  if (r->need == 0)
    r->need = 1;
  if (r->need < r->need_dw)
    r->need = r->need_dw;
  r->durable = r->need_dw > 0;
  /* A node that is no replica hands the write to one that is; that one
   * judges availability with its own fallbacks. */
  int self = apl_self(r);
  if (self < 0 && !from_peer) {
    coord__forward(n, r, m, is_delete);
    return;
  }
  /* Regional levels first: their message names the region. */
  static const char *const put_names[3] = {"w", "dw", "pw"};
  int32_t put_qs[3] = {m->opts.w, m->opts.dw, m->opts.pw};
  for (int i = 0; i < 3; i++) {
    if (levels_regional(put_qs[i]) &&
        levels_judge(&tally, put_qs[i], i == 2, true, put_names[i], "", err,
                     sizeof(err)) < 0) {
      n->stats.unavailable++;
      coord__fail(n, r, KV_EUNAVAIL, err);
      return;
    }
  }
  uint32_t alive = apl_alive(r);
  uint32_t alive_p = apl_alive_primaries(r);
  if (alive < r->need || alive_p < r->need_p) {
    n->stats.unavailable++;
    uint32_t need_up = r->need > r->need_p ? r->need : r->need_p;
    snprintf(err, sizeof(err),
             "only %u of %u replicas of this key are up%s; the write needs "
             "%u (w=%u, pw=%u, dw=%u)",
             alive_p, nrep, alive > alive_p ? " (plus fallbacks)" : "", need_up,
             r->need, r->need_p, r->need_dw);
    coord__fail(n, r, KV_EUNAVAIL, err);
    return;
  }

  /* Coordinate: the new dot is ours. */
  obj *local = NULL;
  uint64_t old_hash = 0;
  int rc = core__local_read(n, r->part, r->key, r->klen, &local, &old_hash);
  if (rc) {
    coord__fail(n, r, rc, "the coordinator cannot read its replica");
    return;
  }
  if (!local && !(local = obj_new())) {
    coord__fail(n, r, KV_ENOMEM, "out of memory");
    return;
  }
  /* Our actor for this partition holds every dot it ever made here: a
   * partition this node dropped got a new actor epoch (repair.c). */
  uint64_t actor = core__actor(n, r->part);
  if (core__dot_floor(n, actor, local)) {
    obj_free(local);
    coord__fail(n, r, KV_ENOMEM, "out of memory");
    return;
  }
  obj_value v = {.flags = is_delete ? OBJ_DELETED : 0,
                 .ts_ms = n->io.wall_ms(n->io.ctx),
                 .data = is_delete ? NULL : m->value.ptr,
                 .len = is_delete ? 0 : m->value.len};
  if (!is_delete && m->opts.ttl_ms) {
    /* The expiry is part of the version: every replica stores it. */
    v.flags |= OBJ_EXPIRES;
    v.expires_ms = v.ts_ms + m->opts.ttl_ms;
  }
  bool warn = false;
  kv_slice ctx = m->context;
  bool typed = !is_delete && (m->opts.flags & WIRE_OPT_TYPED);
  if (typed) {
    /* An operation on a data type: the new state of everything this
     * replica holds, written over all of it. */
    crdt_result tres;
    memset(&tres, 0, sizeof(tres));
    rc = types_apply(local, m->value.ptr, m->value.len, actor, v.ts_ms,
                     NULL, &r->typed, &tres, err, sizeof(err));
    if (rc) {
      obj_free(local);
      coord__fail(n, r, rc, err);
      return;
    }
    r->typed_result[0] = tres.added;
    r->typed_result[1] = tres.removed;
    r->typed_result[2] = tres.value;
    v.flags |= OBJ_TYPED;
    v.data = r->typed.data;
    v.len = r->typed.len;
    ctx.ptr = NULL;
  }
  if (!ctx.ptr && (typed || (m->opts.flags & WIRE_OPT_REPLACE))) {
    /* Replace what this replica holds: its own clock is the context. */
    n->scratch.len = 0;
    if (obj_context(local, &n->scratch) == 0 && !n->scratch.oom) {
      ctx.ptr = n->scratch.data;
      ctx.len = n->scratch.len;
    }
  }
  rc = obj_update(local, ctx.ptr, ctx.len, actor, &v, v.ts_ms,
                  &n->limits, &warn);
  if (rc == KV_ESIBLINGS) {
    obj_free(local);
    snprintf(err, sizeof(err),
             "the key has too many siblings (limit %u): read it, resolve the "
             "siblings, and write back with the context",
             n->limits.siblings_max);
    coord__fail(n, r, rc, err);
    return;
  }
  if (rc) {
    obj_free(local);
    coord__fail(n, r, rc,
                rc == KV_EPROTO ? "the context is malformed"
                                : "cannot apply the write");
    return;
  }
  if (warn) {
    n->stats.sibling_warnings++;
    core__log(n, NODE_LOG_WARN, "a key in partition %u has %zu siblings",
              r->part, obj_sibling_count(local));
  }
  core__dot_floor_bump(n, actor, local);
  r->result = local;
  r->base_hash = old_hash;
  if (obj_encode(local, &r->enc)) {
    coord__fail(n, r, KV_ENOMEM, "out of memory");
    return;
  }
  kv_hist_add(&n->stats.object_bytes, &kv_hist_bytes, r->enc.len);
  if (self < 0) {
    /* A forwarded write reached a node that is no primary in its own ring
     * view: it stores a copy and replicates to the primaries it knows. */
    if (r->ntargets >= NODE_FANOUT_MAX) {
      coord__fail(n, r, KV_EUNAVAIL, "ring views disagree");
      return;
    }
    core_target *t = &r->targets[r->ntargets];
    memset(t, 0, sizeof(*t));
    kv_strcopy(t->id, sizeof(t->id), n->id);
    t->self = true;
    t->alive = true;
    self = (int)r->ntargets++;
  }
  r->targets[self].state = CORE_T_WAIT;
  rc = core__local_write(n, r->part, r->key, r->klen, r->enc.data, r->enc.len,
                         old_hash, core__req_wire_id(r, (uint32_t)self));
  if (rc == 0)
    return;
  /* Our storage refuses writes (a full disk): another primary that is up
   * coordinates instead, if there is one and the client came to us. */
  r->targets[self].state = CORE_T_FAILED;
  r->targets[self].alive = false;
  if (!from_peer && apl_alive_primaries(r) > 0) {
    core__log(n, NODE_LOG_WARN,
              "local storage refuses writes (%s): "
              "forwarding a write",
              kv_strerror(rc));
    coord__forward(n, r, m, is_delete);
    return;
  }
  char msg[WIRE_ERRMSG_MAX];
  snprintf(msg, sizeof(msg),
           "the coordinator %s cannot write to its "
           "storage: %s",
           n->id, kv_strerror(rc));
  coord__fail(n, r, rc, msg);
}

/* The coordinator's own write is in the WAL: now replicate. */
static void coord__put_local_committed(node *n, core_req *r, uint32_t self) {
  /* Hints only now that our own copy is committed: a dot must never reach
   * another node before its coordinator holds it (a crash in between
   * would leave it unknown to the coordinator). The fsync of a durable
   * write, requested below, covers the hints too. */
  coord__hint_down(n, r);
  for (uint32_t i = 0; i < r->ntargets; i++) {
    core_target *t = &r->targets[i];
    if (t->self)
      continue;
    if (!t->alive) {
      t->state = CORE_T_FAILED;
      r->fails++;
      continue;
    }
    if (t->hint_for[0]) {
      /* A fallback: it keeps the write as a hint for the primary. */
      wire_pm hm = {.kind = WIRE_PM_HINT_PUT};
      hm.hint_put.owner.ptr = (const uint8_t *)t->hint_for;
      hm.hint_put.owner.len = strlen(t->hint_for);
      hm.hint_put.key.ptr = r->key;
      hm.hint_put.key.len = r->klen;
      hm.hint_put.object.ptr = r->enc.data;
      hm.hint_put.object.len = r->enc.len;
      hm.hint_put.durable = r->durable;
      wire_encode_pm(&n->out, core__req_wire_id(r, i), &hm);
      coord__send_target(n, r, i);
      continue;
    }
    wire_msg rp = {.type = WIRE_REPL_PUT, .req_id = core__req_wire_id(r, i)};
    rp.key.ptr = r->key;
    rp.key.len = r->klen;
    rp.object.ptr = r->enc.data;
    rp.object.len = r->enc.len;
    rp.flags = WIRE_REPL_BASE | (r->durable ? WIRE_REPL_DURABLE : 0);
    rp.base_hash = r->base_hash;
    wire_encode(&n->out, &rp);
    coord__send_target(n, r, i);
  }
  if (r->durable) {
    uint64_t tok = core__req_wire_id(r, self) | CORE_TOKEN_SYNC;
    if (n->io.store_sync(n->io.ctx, tok)) {
      r->targets[self].state = CORE_T_FAILED;
      r->fails++;
    }
    return;
  }
  r->targets[self].state = CORE_T_OK;
  r->acks++;
  r->p_acks += r->targets[self].primary;
}

void coord_store_done(node *n, core_req *r, uint32_t target, bool synced,
                      int status) {
  if (r->kind != CORE_REQ_PUT || target >= r->ntargets ||
      !r->targets[target].self)
    return;
  if (status) {
    char msg[WIRE_ERRMSG_MAX];
    snprintf(msg, sizeof(msg),
             "the coordinator %s could not store the "
             "write: %s",
             n->id, kv_strerror(status));
    coord__fail(n, r, status, msg);
    return;
  }
  if (!synced) {
    coord__put_local_committed(n, r, target);
  } else {
    core_target *t = &r->targets[target];
    t->state = CORE_T_OK;
    r->acks++;
    r->dw_acks++;
    r->p_acks += t->primary;
  }
  coord__put_check(n, r);
}

/* ---- get ---- */

/* Merges the answers into r->result. Returns 0 or KV_ENOMEM. */
static int coord__merge(core_req *r) {
  for (uint32_t i = 0; i < r->ntargets; i++) {
    core_target *t = &r->targets[i];
    if (t->state != CORE_T_OK || !t->answer)
      continue;
    if (!r->result) {
      r->result = obj_clone(t->answer);
      if (!r->result)
        return KV_ENOMEM;
    } else if (obj_sync(r->result, t->answer, NULL)) {
      return KV_ENOMEM;
    }
  }
  return 0;
}

/* Writes a GET_OK for o (NULL: not found) to conn. A key whose siblings
 * are all tombstones reads as not found (with its context). */
/* Answers a read with o's siblings; returns how many (0: not found).
 * Expired values are absent; tombstones show only beside live values; a
 * data type's states are joined into one sibling (WIRE_SIB_TYPED). */
static size_t coord__get_ok(node *n, uint64_t conn, uint64_t req_id,
                            const obj *o) {
  uint64_t now = n->io.wall_ms(n->io.ctx);
  size_t all = o ? obj_sibling_count(o) : 0, cnt = 0;
  uint64_t typed_ts = 0;
  bool typed = false;
  obj_value v;
  if (o && !obj_all_gone(o, now))
    for (size_t i = 0; i < all; i++) {
      if (obj_sibling(o, i, &v) ||
          (!(v.flags & OBJ_DELETED) && obj_value_gone(&v, now)))
        continue;
      if (v.flags & OBJ_TYPED) {
        typed = true;
        typed_ts = v.ts_ms > typed_ts ? v.ts_ms : typed_ts;
      } else {
        cnt++;
      }
    }
  crdt *st = NULL;
  kvbuf tenc;
  kvbuf_init(&tenc);
  if (typed && types_join(o, now, true, &st) == 0 && st &&
      crdt_encode(st, &tenc) == 0)
    cnt++;
  else
    typed = false;
  crdt_free(st);
  n->scratch.len = 0;
  if (o)
    obj_context(o, &n->scratch);
  wire_get_ok_writer w;
  wire_begin_get_ok(&w, &n->out, req_id, (uint32_t)cnt);
  if (typed)
    wire_add_sibling(&w, WIRE_SIB_TYPED, typed_ts, tenc.data, tenc.len);
  for (size_t i = 0; cnt && i < all; i++) {
    obj_sibling(o, i, &v);
    if ((v.flags & OBJ_TYPED) ||
        (!(v.flags & OBJ_DELETED) && obj_value_gone(&v, now)))
      continue;
    wire_add_sibling_exp(&w, (v.flags & OBJ_DELETED) ? WIRE_SIB_DELETED : 0,
                         v.ts_ms, v.expires_ms, v.data, v.len);
  }
  kvbuf_free(&tenc);
  wire_end_get_ok(&w, n->scratch.data, n->scratch.len);
  core__send_conn(n, conn);
  if (cnt)
    kv_hist_add(&n->stats.siblings, &kv_hist_count, cnt);
  return cnt;
}

/* After every replica answered (or the deadline): send the merged object
 * to the replicas that lack part of it. */
static void coord__read_repair(node *n, core_req *r) {
  if (!r->result)
    return;
  kvbuf enc; /* encoded when the first remote replica needs it */
  kvbuf_init(&enc);
  for (uint32_t i = 0; i < r->ntargets; i++) {
    core_target *t = &r->targets[i];
    if (t->state != CORE_T_OK)
      continue;
    if (t->answer && obj_descends(t->answer, r->result))
      continue;
    n->stats.read_repairs++;
    if (t->self) {
      core__local_merge(n, r->part, r->key, r->klen, r->result, 0, NULL);
      continue;
    }
    if (!enc.len && obj_encode(r->result, &enc))
      break;
    wire_msg rp = {.type = WIRE_REPL_PUT, .req_id = 0};
    rp.key.ptr = r->key;
    rp.key.len = r->klen;
    rp.object.ptr = enc.data;
    rp.object.len = enc.len;
    wire_encode(&n->out, &rp);
    if (t->addr[0] && !n->out.oom)
      n->io.peer_send(n->io.ctx, t->addr, n->out.data, n->out.len);
    n->out.len = 0;
    n->out.oom = 0;
  }
  kvbuf_free(&enc);
}

/* Judges the regional parts of a get's R and PR, as coord__put_regions. */
static int coord__get_regions(node *n, core_req *r, char *msg, size_t msglen) {
  int32_t qs[2] = {r->opts.r, r->opts.pr};
  static const char *const names[2] = {"r", "pr"};
  if (!levels_regional(qs[0]) && !levels_regional(qs[1]))
    return 1;
  levels_tally t;
  apl_tally(n, r, &t);
  int res = 1;
  for (int i = 0; i < 2; i++) {
    if (!levels_regional(qs[i]))
      continue;
    int j = levels_judge(&t, qs[i], i == 1, false, names[i],
                         "answered the read", msg, msglen);
    if (j < 0)
      return -1;
    if (j == 0)
      res = 0;
  }
  return res;
}

/* Sends REPL_GET to target i of r. */
static void coord__ask(node *n, core_req *r, uint32_t i) {
  wire_msg rg = {.type = WIRE_REPL_GET, .req_id = core__req_wire_id(r, i)};
  rg.key.ptr = r->key;
  rg.key.len = r->klen;
  wire_encode(&n->out, &rg);
  coord__send_target(n, r, i);
}

/* A read that can no longer reach R with the replicas it asked asks its
 * spares, one per missing answer. */
static void coord__ask_spares(node *n, core_req *r) {
  if (!r->spares || r->replied)
    return;
  uint32_t want = r->need > r->need_p ? r->need : r->need_p;
  for (uint32_t i = 0; i < r->ntargets; i++) {
    if (r->acks + apl_waiting(r) >= want)
      return;
    core_target *t = &r->targets[i];
    if (t->state == CORE_T_IDLE && t->alive && !t->self)
      coord__ask(n, r, i);
  }
}

static void coord__get_check(node *n, core_req *r) {
  coord__ask_spares(n, r);
  uint32_t waiting = apl_waiting(r);
  if (!r->replied) {
    char rmsg[WIRE_ERRMSG_MAX];
    int regions = coord__get_regions(n, r, rmsg, sizeof(rmsg));
    if (regions < 0) {
      coord__fail(n, r, KV_EQUORUM, rmsg);
      return;
    }
    if (regions > 0 && r->acks >= r->need && r->p_acks >= r->need_p) {
      if (coord__merge(r)) {
        coord__fail(n, r, KV_ENOMEM, "out of memory");
        return;
      }
      size_t cnt = coord__get_ok(n, r->conn, r->reply_id, r->result);
      coord__answered(n, r, cnt ? 0 : KV_ENOTFOUND);
      r->replied = true;
    } else if (r->acks + waiting < r->need || r->p_acks + waiting < r->need_p) {
      char msg[WIRE_ERRMSG_MAX];
      snprintf(msg, sizeof(msg),
               "only %u of %u required replicas answered the read "
               "(%u failed)",
               r->acks, r->need, r->fails);
      coord__fail(n, r, KV_EQUORUM, msg);
      return;
    }
  }
  if (r->replied && waiting == 0) {
    /* Late answers may have added to what the client saw: merge again
     * (what every answer made is r->result already when none came late). */
    int rc = 0;
    if (r->late || !r->result) {
      obj_free(r->result);
      r->result = NULL;
      rc = coord__merge(r);
    }
    if (rc == 0) {
      coord__read_repair(n, r);
      reap_maybe(n, r);
    }
    core__req_free(n, r);
  }
}

void coord_get(node *n, uint64_t conn, const wire_msg *m) {
  if (m->opts.flags & WIRE_OPT_LOCAL) {
    n->stats.local_gets++;
    uint64_t t0 = core__now_us(n);
    uint32_t part =
        ring_partition(gossip_ring(n->gossip), m->key.ptr, m->key.len);
    obj *o = NULL;
    int rc = core__local_read(n, part, m->key.ptr, m->key.len, &o, NULL);
    if (rc) {
      char msg[WIRE_ERRMSG_MAX];
      snprintf(msg, sizeof(msg), "local read failed: %s", kv_strerror(rc));
      coord__refuse(n, conn, m, rc, msg);
      return;
    }
    size_t cnt = coord__get_ok(n, conn, m->req_id, o);
    core__answered(n, NODE_OP_GET, cnt ? 0 : KV_ENOTFOUND, t0);
    obj_free(o);
    return;
  }
  n->stats.gets++;
  uint32_t nrep;
  core_req *r = coord__admit(n, CORE_REQ_GET, conn, m, false, &nrep);
  if (!r)
    return;
  char err[WIRE_ERRMSG_MAX];
  levels_tally tally;
  apl_tally(n, r, &tally);
  if (levels_resolve("r", m->opts.r, n->def_r, nrep, &tally, &r->need, err,
                     sizeof(err)) ||
      levels_resolve("pr", m->opts.pr, 0, nrep, &tally, &r->need_p, err,
                     sizeof(err))) {
    coord__fail(n, r, KV_EINVAL, err);
    return;
  }
  if (r->need == 0)
    r->need = 1;
  /* Regional levels first: their message names the region. */
  if ((levels_regional(m->opts.r) &&
       levels_judge(&tally, m->opts.r, false, true, "r", "", err, sizeof(err)) <
           0) ||
      (levels_regional(m->opts.pr) &&
       levels_judge(&tally, m->opts.pr, true, true, "pr", "", err,
                    sizeof(err)) < 0)) {
    n->stats.unavailable++;
    coord__fail(n, r, KV_EUNAVAIL, err);
    return;
  }
  uint32_t alive = apl_alive(r);
  uint32_t need_up = r->need > r->need_p ? r->need : r->need_p;
  if (alive < need_up) {
    n->stats.unavailable++;
    snprintf(err, sizeof(err),
             "only %u of %u replicas of this key are up; the read needs %u "
             "(r=%u, pr=%u)",
             alive, nrep, need_up, r->need, r->need_p);
    coord__fail(n, r, KV_EUNAVAIL, err);
    return;
  }
  /* Ask only as many replicas as R (and PR) need, the local one first, and
   * keep the rest as spares for failures (as Cassandra does; Riak asks
   * all N). Read repair then covers the replicas a read asked; anti-entropy
   * covers the others. Regional levels ask every replica. */
  int self = apl_self(r);
  r->spares = !levels_regional(m->opts.r) && !levels_regional(m->opts.pr);
  uint32_t want = r->need > r->need_p ? r->need : r->need_p;
  uint32_t remote = want - (self >= 0 ? 1u : 0u);
  uint32_t asked = 0;
  /* Ask the others first, then read locally (which may decide at once). */
  for (uint32_t i = 0; i < r->ntargets; i++) {
    core_target *t = &r->targets[i];
    if (t->self)
      continue;
    if (!t->alive) {
      t->state = CORE_T_FAILED;
      r->fails++;
      continue;
    }
    if (r->spares && asked >= remote)
      continue; /* a spare: CORE_T_IDLE until needed */
    coord__ask(n, r, i);
    asked++;
  }
  if (self >= 0) {
    core_target *t = &r->targets[self];
    int rc = core__local_read(n, r->part, r->key, r->klen, &t->answer, NULL);
    if (rc) {
      t->state = CORE_T_FAILED;
      r->fails++;
    } else {
      t->state = CORE_T_OK;
      r->acks++;
      r->p_acks++;
    }
  }
  coord__get_check(n, r);
}

/* ---- answers from peers ---- */

static void coord__fwd_reply(node *n, core_req *r, const wire_msg *m) {
  if (m->type == WIRE_ERROR) {
    char msg[WIRE_ERRMSG_MAX];
    snprintf(msg, sizeof(msg), "%.*s",
             (int)(m->text.len < sizeof(msg) ? m->text.len : sizeof(msg) - 1),
             (const char *)m->text.ptr);
    coord__fail(n, r, m->code, msg);
    return;
  }
  wire_msg ok = {.type = r->u.coord.reply_type, .req_id = r->reply_id};
  ok.context = m->context;
  ok.value = m->value; /* a typed put's state and result */
  memcpy(ok.result, m->result, sizeof(ok.result));
  wire_encode(&n->out, &ok);
  core__send_conn(n, r->conn);
  coord__answered(n, r, 0);
  core__req_free(n, r);
}

void coord_on_reply(node *n, core_req *r, core_target *t, const wire_msg *m) {
  assert(core__req_check(n, r));
  bool ok = m->type != WIRE_ERROR;
  switch (r->kind) {
  case CORE_REQ_FWD:
    if (m->type == WIRE_ERROR || m->type == WIRE_PUT_OK ||
        m->type == WIRE_DEL_OK)
      coord__fwd_reply(n, r, m);
    return;
  case CORE_REQ_PUT:
    if (ok && m->type != WIRE_REPL_PUT_OK)
      return;
    if (ok) {
      t->state = CORE_T_OK;
      r->acks++;
      r->dw_acks += r->durable;
      r->p_acks += t->primary;
    } else {
      t->state = CORE_T_FAILED;
      r->fails++;
    }
    coord__put_check(n, r);
    return;
  case CORE_REQ_GET:
    if (ok && m->type != WIRE_REPL_GET_OK)
      return;
    r->late = r->replied;
    if (ok && m->object.ptr &&
        obj_decode(m->object.ptr, m->object.len, &t->answer) != 0)
      ok = false;
    if (ok) {
      t->state = CORE_T_OK;
      r->acks++;
      r->p_acks += t->primary;
    } else {
      t->state = CORE_T_FAILED;
      r->fails++;
    }
    coord__get_check(n, r);
    return;
  default:
    return;
  }
}

void coord_conn_lost(node *n, core_req *r) {
  assert(core__req_check(n, r));
  if (r->kind == CORE_REQ_PUT)
    coord__put_check(n, r);
  else if (r->kind == CORE_REQ_GET)
    coord__get_check(n, r);
  else
    coord__fail(n, r, KV_EUNAVAIL,
                "the connection to the coordinating replica was lost");
}

/* The message of a put or get that timed out: how many answered, and for
 * a regional level which region fell short. */
static void coord__timeout_msg(node *n, core_req *r, const char *verb,
                               char *msg, size_t msglen) {
  bool put = r->kind == CORE_REQ_PUT;
  int32_t qs[3] = {put ? r->opts.w : r->opts.r, put ? r->opts.dw : 0,
                   put ? r->opts.pw : r->opts.pr};
  char where[WIRE_ERRMSG_MAX] = "";
  for (int i = 0; i < 3 && !where[0]; i++) {
    if (!levels_regional(qs[i]))
      continue;
    levels_tally t;
    apl_tally(n, r, &t);
    char shortfall[WIRE_ERRMSG_MAX / 2];
    levels_shortfall(&t, qs[i], i == 2, shortfall, sizeof(shortfall));
    if (shortfall[0])
      snprintf(where, sizeof(where), "%s (%s) %s within %u ms", shortfall,
               levels_name(qs[i]), verb, r->timeout_ms);
  }
  if (where[0])
    snprintf(msg, msglen, "%s", where);
  else
    snprintf(msg, msglen, "only %u of %u required replicas %s within %u ms",
             r->acks, r->need, verb, r->timeout_ms);
}

void coord_expired(node *n, core_req *r) {
  assert(core__req_check(n, r));
  char msg[WIRE_ERRMSG_MAX];
  switch (r->kind) {
  case CORE_REQ_PUT:
    coord__hint_rest(n, r);
    if (r->replied) {
      core__req_free(n, r);
      break;
    }
    n->stats.timeouts++;
    coord__timeout_msg(n, r, "acknowledged the write", msg, sizeof(msg));
    coord__fail(n, r, KV_ETIMEDOUT, msg);
    break;
  case CORE_REQ_GET:
    if (r->replied) {
      obj_free(r->result);
      r->result = NULL;
      if (coord__merge(r) == 0)
        coord__read_repair(n, r);
      core__req_free(n, r);
      break;
    }
    n->stats.timeouts++;
    coord__timeout_msg(n, r, "answered the read", msg, sizeof(msg));
    coord__fail(n, r, KV_ETIMEDOUT, msg);
    break;
  default: /* CORE_REQ_FWD */
    n->stats.timeouts++;
    snprintf(msg, sizeof(msg),
             "the coordinating replica %s did not answer within %u ms",
             r->targets[0].id, r->timeout_ms);
    coord__fail(n, r, KV_ETIMEDOUT, msg);
    break;
  }
}
