/*
 * uv_resp.c: the Redis protocol front end of kvorumd (--resp HOST:PORT).
 *
 * A front end only parses and renders: each Redis command becomes one or
 * more native requests (GET, PUT, DEL frames) handed to the core as if
 * they came from a greeted client connection, and the core's answers are
 * rendered back as RESP. Coordination happens once, in the core.
 *
 * Pipelining: a connection may have up to UVR_OPS_MAX commands in flight.
 * Their native requests go out at once; the core answers in any order
 * (each answer names its request id: the command's serial, its phase and
 * the key's index), and replies leave in command order, as RESP requires:
 * a command's reply is queued only when it and every command before it
 * are complete.
 *
 * Commands that read before they write (SET NX/XX/GET, DEL, GETDEL) run
 * in two phases: quorum reads of their keys first, then the writes. The
 * Dynamo semantics (siblings, contexts) are in docs/resp.md.
 *
 * Depends on: uv_int.h (the shell), resp.h (the codec), wire.h, core.h.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "kv_base64.h"
#include "kv_err.h"
#include "kv_str.h"
#include "resp.h"
#include "uv_int.h"
#include "uv_resp.h"
#include "uv_resp_int.h"
#include "uv_auth.h"
#include "wire.h"

static resp_cmd uvr__cmd; /* one per process: the loop is single-threaded */
static uint8_t uvr__scratch[RESP_INLINE_MAX_DEFAULT];

/* ---- ops ---- */

static uvr_op *uvr__op_at(uvr_conn *rc, uint64_t serial) {
  if (serial < rc->head_serial || serial >= rc->head_serial + rc->len)
    return NULL;
  return &rc->ops[(rc->head + (serial - rc->head_serial)) % UVR_OPS_MAX];
}

static void uvr__op_clear(uvr_op *op) {
  free(op->keys);
  kvbuf_free(&op->store);
  kvbuf_free(&op->out);
  memset(op, 0, sizeof(*op));
}

/* A new op at the tail, or NULL when UVR_OPS_MAX are in flight. */
static uvr_op *uvr__op_new(uvr_conn *rc, uvr_kind kind, uint32_t n) {
  if (rc->len == UVR_OPS_MAX)
    return NULL;
  uvr_op *op = &rc->ops[(rc->head + rc->len) % UVR_OPS_MAX];
  memset(op, 0, sizeof(*op));
  op->keys = calloc(n ? n : 1, sizeof(*op->keys));
  if (!op->keys)
    return NULL;
  op->kind = kind;
  op->n = n;
  op->opts = rc->defaults;
  kvbuf_init(&op->store);
  kvbuf_init(&op->out);
  if (rc->len == 0)
    rc->head_serial = rc->next_serial;
  rc->len++;
  rc->next_serial++;
  return op;
}

/* Copies s into op's store; returns its offset (the length is s.len). */
static uint32_t uvr__keep(uvr_op *op, kv_slice s) {
  uint32_t off = (uint32_t)op->store.len;
  kvbuf_append(&op->store, s.ptr, s.len);
  return off;
}

static kv_slice uvr__slice(const uvr_op *op, uint32_t off, uint32_t len) {
  kv_slice s = {op->store.data + off, len};
  if (!len)
    s.ptr = (const uint8_t *)"";
  return s;
}

/* Queues the replies of the complete commands at the head, in order. */
static void uvr__flush(uvn_conn *c) {
  uvr_conn *rc = c->resp;
  while (rc->len && rc->ops[rc->head].done) {
    uvr_op *op = &rc->ops[rc->head];
    if (op->out.oom) {
      op->out.len = 0;
      op->out.oom = 0;
      resp_add_error(&op->out, "ERR out of memory");
    }
    uvn__queue(c, op->out.data, op->out.len);
    uvr__op_clear(op);
    rc->head = (rc->head + 1) % UVR_OPS_MAX;
    rc->len--;
    rc->head_serial++;
    if (c->closing)
      return;
  }
  if (rc->quit && rc->len == 0) {
    c->close_after_write = true;
    uvn__mark_dirty(c);
  }
  if (rc->stalled && rc->len < UVR_OPS_MAX / 2)
    uvn__mark_dirty(c); /* uvr_resume parses what waited in c->in */
}

void uvr_resume(uvn_conn *c) {
  if (c->resp && c->resp->stalled && !c->resp->parsing &&
      c->resp->len < UVR_OPS_MAX / 2) {
    c->resp->stalled = false;
    uvr_on_read(c);
  }
}

/* A reply that needs no request. */
static void uvr__now(uvn_conn *c, const kvbuf *reply) {
  uvr_conn *rc = c->resp;
  if (rc->len == 0) {
    uvn__queue(c, reply->data, reply->len);
    return;
  }
  uvr_op *op = uvr__op_new(rc, UVR_GET, 0);
  if (!op)
    return;
  kvbuf_append(&op->out, reply->data, reply->len);
  op->done = true;
  uvr__flush(c);
}

/* Hands one native request for key index idx of op to the core. */
static void uvr__send(uvn_conn *c, uvr_op *op, uint64_t serial,
                      uint32_t idx, uint32_t type, kv_slice key,
                      kv_slice value, kv_slice ctx, uint32_t flags) {
  uvn *u = c->u;
  wire_msg m = {.type = type,
                .req_id = (serial << (UVR_IDX_BITS + 1)) |
                          ((uint64_t)op->phase << UVR_IDX_BITS) | idx};
  m.key = key;
  m.value = value;
  m.context = ctx;
  m.opts = op->opts;
  m.opts.flags |= flags;
  kvbuf f;
  kvbuf_init(&f);
  if (wire_encode(&f, &m) == 0)
    node_on_frame(u->core, c->id, NODE_CONN_CLIENT, true,
                  f.data + WIRE_HEADER_BYTES, f.len - WIRE_HEADER_BYTES);
  kvbuf_free(&f);
}

/* Issues the requests of op's current phase. */
static void uvr__issue(uvn_conn *c, uvr_op *op, uint64_t serial) {
  kv_slice none = {NULL, 0};
  uint32_t n = op->n;
  op->left = n;
  /* Answers may come back while we issue: count them all first. */
  for (uint32_t i = 0; i < n; i++) {
    uvr_key *k = &op->keys[i];
    kv_slice key = uvr__slice(op, k->key_off, k->key_len);
    kv_slice ctx = k->ctx_len ? uvr__slice(op, k->ctx_off, k->ctx_len) : none;
    bool write = op->phase == 1 || op->kind == UVR_MSET ||
                 op->kind == UVR_KVPUT || op->kind == UVR_KVDEL;
    if (!write) {
      uvr__send(c, op, serial, i, WIRE_GET, key, none, none, 0);
    } else if (op->kind == UVR_DEL || op->kind == UVR_GETDEL ||
               op->kind == UVR_KVDEL) {
      uvr__send(c, op, serial, i, WIRE_DEL, key, none, ctx,
                ctx.ptr || op->kind == UVR_KVDEL ? 0 : WIRE_OPT_REPLACE);
    } else {
      kv_slice val = uvr__slice(op, k->val_off, k->val_len);
      uint32_t fl = op->kind == UVR_TWRITE ? WIRE_OPT_TYPED
                    : ctx.ptr || op->kind == UVR_KVPUT ? 0
                                                       : WIRE_OPT_REPLACE;
      uvr__send(c, op, serial, i, WIRE_PUT, key, val, ctx, fl);
    }
    if (c->closing || !c->resp)
      return;
  }
}

/* ---- answers ---- */

/* The error reply of a native ERROR: a code-specific prefix a client can
 * match, then kvorum's message. */
static void uvr__error(uvr_op *op, const wire_msg *m) {
  if (op->failed)
    return;
  const char *pre = "ERR";
  switch (m->code) {
  case KV_EQUORUM:
    pre = "QUORUM";
    break;
  case KV_EUNAVAIL:
    pre = "UNAVAIL";
    break;
  case KV_ETOOBIG:
    pre = "TOOBIG";
    break;
  case KV_ETIMEDOUT:
    pre = "TIMEOUT";
    break;
  case KV_EOVERLOAD:
    pre = "BUSY";
    break;
  case KV_ESIBLINGS:
    pre = "SIBLINGS";
    break;
  case KV_ETYPE: /* "WRONGTYPE ...", as Redis says it */
    pre = m->text.len >= 9 && memcmp(m->text.ptr, "WRONGTYPE", 9) == 0
              ? NULL
              : "WRONGTYPE";
    break;
  default:
    break;
  }
  op->out.len = 0;
  if (!pre)
    resp_add_errorf(&op->out, "%.*s", (int)m->text.len,
                    (const char *)m->text.ptr);
  else
    resp_add_errorf(&op->out, "%s %.*s", pre, (int)m->text.len,
                  (const char *)m->text.ptr);
  op->failed = true;
}

/* The value a plain GET shows of a GET_OK: the live plain sibling with
 * the latest timestamp, ties broken by the bytes (the same on every node).
 * A data type's state is not one (uvr__read_done shows a counter's value).
 * Returns whether there is one. */
static bool uvr__winner(const wire_msg *m, kv_slice *out,
                         uint64_t *expires_ms) {
  mp_reader r;
  uint32_t cnt;
  mp_reader_init(&r, m->raw.ptr, m->raw.len);
  if (mp_read_array(&r, &cnt))
    return false;
  bool found = false;
  uint64_t best_ts = 0;
  for (uint32_t i = 0; i < cnt; i++) {
    wire_sibling s;
    if (wire_sibling_next(&r, &s))
      return found;
    if (s.flags & (WIRE_SIB_DELETED | WIRE_SIB_TYPED))
      continue;
    int cmp = 0;
    if (found) {
      size_t l = s.value.len < out->len ? s.value.len : out->len;
      cmp = l ? memcmp(s.value.ptr, out->ptr, l) : 0;
      if (!cmp)
        cmp = s.value.len < out->len ? -1 : s.value.len > out->len;
    }
    if (!found || s.ts_ms > best_ts || (s.ts_ms == best_ts && cmp > 0)) {
      *out = s.value;
      *expires_ms = s.expires_ms;
      best_ts = s.ts_ms;
      found = true;
    }
  }
  return found;
}

/* A context as KV.* show it: base64, as the kvorum CLI does. */
static void uvr__add_context(kvbuf *out, kv_slice ctx) {
  kvbuf b;
  kvbuf_init(&b);
  kv_b64_encode(&b, ctx.ptr ? ctx.ptr : (const uint8_t *)"", ctx.len);
  resp_add_bulk(out, b.data ? b.data : (const uint8_t *)"", b.len);
  kvbuf_free(&b);
}

/* KV.GET's reply: the context and every sibling (a tombstone as nil). */
static void uvr__kvget(uvr_conn *rc, uvr_op *op, const wire_msg *m) {
  /* RESP3: {"context": ctx, "siblings": [...]}; RESP2: [ctx, [...]]. */
  if (rc->proto == RESP_PROTO3) {
    resp_add_map(&op->out, rc->proto, 2);
    resp_add_bulk(&op->out, "context", 7);
  } else {
    resp_add_array(&op->out, 2);
  }
  uvr__add_context(&op->out, m->context);
  if (rc->proto == RESP_PROTO3)
    resp_add_bulk(&op->out, "siblings", 8);
  mp_reader r;
  uint32_t cnt = 0;
  mp_reader_init(&r, m->raw.ptr, m->raw.len);
  if (mp_read_array(&r, &cnt))
    cnt = 0;
  resp_add_array(&op->out, cnt);
  for (uint32_t i = 0; i < cnt; i++) {
    wire_sibling s;
    if (wire_sibling_next(&r, &s))
      s.flags = WIRE_SIB_DELETED;
    if (s.flags & WIRE_SIB_DELETED)
      resp_add_null(&op->out, rc->proto);
    else
      resp_add_bulk(&op->out, s.value.ptr, s.value.len);
  }
}

/* A read of phase 0 answered for key k. */
static void uvr__read_done(uvr_conn *rc, uvr_op *op, uvr_key *k,
                           const wire_msg *m) {
  kv_slice v = {NULL, 0};
  uint64_t exp = 0;
  bool found = m->type == WIRE_GET_OK && uvr__winner(m, &v, &exp);
  if (op->kind == UVR_TREAD) {
    uvr__tread(rc->proto, (uvr_tcmd)op->tcmd, m,
               uvr__slice(op, k->val_off, k->val_len), &op->out);
    return;
  }
  /* A data type's state: its type, a counter's value (as Redis shows a
   * key after INCR), or WRONGTYPE for the value of a set or map. */
  crdt *st = NULL;
  bool plain = false;
  char num[24];
  if (uvr__tstate(m, &st, &plain) == 0 && st) {
    crdt_type ty = crdt_type_of(st);
    const char *tn = ty == CRDT_SET ? "set" : ty == CRDT_COUNTER ? "string"
                                                                  : "hash";
    k->out_off = uvr__keep(op, (kv_slice){(const uint8_t *)tn, strlen(tn)});
    k->out_len = (uint32_t)strlen(tn);
    if (ty == CRDT_COUNTER && op->kind != UVR_EXPIRE) {
      int l = snprintf(num, sizeof(num), "%lld",
                       (long long)crdt_counter_value(st));
      v = (kv_slice){(const uint8_t *)num, l > 0 ? (size_t)l : 0};
      exp = 0;
      found = true;
    } else if (op->kind == UVR_GET || op->kind == UVR_GETDEL ||
               (op->kind == UVR_SET && op->get)) {
      crdt_free(st);
      if (!op->failed) {
        op->out.len = 0;
        resp_add_error(&op->out, UVR_WRONGTYPE);
        op->failed = true;
      }
      return;
    } else if (op->kind != UVR_EXPIRE && op->kind != UVR_MGET) {
      found = true; /* it exists (EXISTS, TYPE, DEL, SET NX/XX) */
    }
  }
  crdt_free(st);
  if (op->kind == UVR_TYPE) {
    if (!found || !k->out_len) {
      const char *tn = found ? "string" : "none";
      k->out_off = uvr__keep(op, (kv_slice){(const uint8_t *)tn, strlen(tn)});
      k->out_len = (uint32_t)strlen(tn);
    }
    return;
  }
  k->found = found;
  k->expires_ms = exp;
  if (found && op->kind == UVR_EXPIRE) { /* written back in phase 1 */
    k->val_off = uvr__keep(op, v);
    k->val_len = (uint32_t)v.len;
  }
  op->count += found;
  if (m->context.ptr && m->context.len) {
    k->ctx_off = uvr__keep(op, m->context);
    k->ctx_len = (uint32_t)m->context.len;
  }
  switch (op->kind) {
  case UVR_GET:
  case UVR_MGET:
  case UVR_SET:
  case UVR_GETDEL: {
    /* Rendered now: the frame goes away after this call. */
    kvbuf one;
    kvbuf_init(&one);
    if (found)
      resp_add_bulk(&one, v.ptr, v.len);
    else
      resp_add_null(&one, rc->proto);
    k->out_off = uvr__keep(op, (kv_slice){one.data, one.len});
    k->out_len = (uint32_t)one.len;
    kvbuf_free(&one);
    break;
  }
  case UVR_KVGET:
    uvr__kvget(rc, op, m);
    break;
  default:
    break;
  }
}

/* Every answer of op's phase is in: the next phase, or the reply. */
static void uvr__phase_done(uvn_conn *c, uvr_op *op, uint64_t serial) {
  uvr_conn *rc = c->resp;
  if (!op->failed && op->phase == 0) {
    bool go = false;
    if (op->kind == UVR_SET)
      go = !(op->nx && op->keys[0].found) && !(op->xx && !op->keys[0].found);
    else if (op->kind == UVR_GETDEL || op->kind == UVR_EXPIRE)
      go = op->keys[0].found;
    else if (op->kind == UVR_DEL)
      go = op->count > 0;
    if (go) {
      op->phase = 1;
      if (op->kind == UVR_DEL) {
        /* Delete only what was found, with the context read. */
        uint32_t w = 0;
        for (uint32_t i = 0; i < op->n; i++)
          if (op->keys[i].found)
            op->keys[w++] = op->keys[i];
        op->n = w;
      }
      uvr__issue(c, op, serial);
      return;
    }
  }
  if (!op->failed) {
    kvbuf *o = &op->out;
    switch (op->kind) {
    case UVR_GET:
    case UVR_GETDEL:
      kvbuf_append(o, op->store.data + op->keys[0].out_off,
                   op->keys[0].out_len);
      break;
    case UVR_MGET:
      resp_add_array(o, op->n);
      for (uint32_t i = 0; i < op->n; i++)
        kvbuf_append(o, op->store.data + op->keys[i].out_off,
                     op->keys[i].out_len);
      break;
    case UVR_EXISTS:
    case UVR_DEL:
      resp_add_int(o, op->count);
      break;
    case UVR_TYPE: {
      kvbuf_append(o, "+", 1);
      kvbuf_append(o, op->store.data + op->keys[0].out_off,
                   op->keys[0].out_len);
      kvbuf_append(o, "\r\n", 2);
      break;
    }
    case UVR_TREAD:
    case UVR_TWRITE:
      break; /* rendered when the answer came */
    case UVR_SET:
      if (op->get)
        kvbuf_append(o, op->store.data + op->keys[0].out_off,
                     op->keys[0].out_len);
      else if (op->phase == 1)
        resp_add_simple(o, "OK");
      else
        resp_add_null(o, rc->proto); /* NX or XX not met */
      break;
    case UVR_MSET:
      resp_add_simple(o, "OK");
      break;
    case UVR_KVGET:
      break; /* rendered when the answer came */
    case UVR_KVPUT:
    case UVR_KVDEL:
      break; /* the context, rendered when the answer came */
    case UVR_AUTH:
      break; /* answered by uvr__login_end */
    case UVR_EXPIRE:
      resp_add_int(o, op->keys[0].found);
      break;
    case UVR_TTL: {
      /* -2: no such key, -1: no expiry, else what is left. */
      const uvr_key *k = &op->keys[0];
      struct timeval tv;
      gettimeofday(&tv, NULL);
      uint64_t now = (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
      int64_t left = !k->found ? -2 : !k->expires_ms ? -1
                     : k->expires_ms > now ? (int64_t)(k->expires_ms - now) : 0;
      if (left > 0 && !op->ms)
        left = (left + 999) / 1000;
      resp_add_int(o, left);
      break;
    }
    }
  }
  op->done = true;
  uvr__flush(c);
}

void uvr_on_frame(uvn_conn *c, const uint8_t *frame, size_t len) {
  uvr_conn *rc = c->resp;
  if (len < WIRE_HEADER_BYTES)
    return;
  wire_msg m;
  wire_limits lim = wire_limits_default;
  lim.value_max = UINT32_MAX / 2;
  if (wire_decode(frame + WIRE_HEADER_BYTES, len - WIRE_HEADER_BYTES, &lim,
                  &m))
    return;
  uint64_t serial = m.req_id >> (UVR_IDX_BITS + 1);
  uint8_t phase = (uint8_t)((m.req_id >> UVR_IDX_BITS) & 1u);
  uint32_t idx = (uint32_t)(m.req_id & (UVR_KEYS_MAX - 1));
  uvr_op *op = uvr__op_at(rc, serial);
  if (!op || op->done || op->phase != phase || idx >= op->n || !op->left)
    return;
  if (m.type == WIRE_ERROR) {
    uvr__error(op, &m);
  } else if (phase == 0 && (op->kind != UVR_MSET && op->kind != UVR_KVPUT &&
                            op->kind != UVR_KVDEL)) {
    uvr__read_done(rc, op, &op->keys[idx], &m);
  } else if (op->kind == UVR_KVPUT || op->kind == UVR_KVDEL) {
    uvr__add_context(&op->out, m.context);
  } else if (op->kind == UVR_TWRITE && m.type == WIRE_PUT_OK) {
    uvr__twrite((uvr_tcmd)op->tcmd, &m, &op->out);
  }
  if (--op->left == 0)
    uvr__phase_done(c, op, serial);
}

/* ---- commands ---- */

static void uvr__reply_error(uvn_conn *c, const char *msg) {
  kvbuf b;
  kvbuf_init(&b);
  resp_add_error(&b, msg);
  uvr__now(c, &b);
  kvbuf_free(&b);
}

static void uvr__reply_errorf(uvn_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void uvr__reply_errorf(uvn_conn *c, const char *fmt, ...) {
  char msg[RESP_ERRLINE_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  uvr__reply_error(c, msg);
}

static void uvr__wrong_args(uvn_conn *c, kv_slice name) {
  uvr__reply_errorf(c, "ERR wrong number of arguments for '%.*s' command",
                    (int)(name.len > 32 ? 32 : name.len),
                    (const char *)name.ptr);
}

/* Starts a command that reads or writes keys. */
static void uvr__keys_cmd(uvn_conn *c, const resp_cmd *cmd) {
  uvr_conn *rc = c->resp;
  kv_slice name = resp_cmd_arg(cmd, 0);
  uvr_kind kind;
  uint32_t n, step = 1;
  bool nx = false, xx = false, get = false;
  kv_slice ctx = {NULL, 0};
  wire_opts o = rc->defaults;
  bool twrite = false;
  uvr_tcmd tcmd = uvr__tcmd(name, &twrite);
  kvbuf top; /* a typed write's operation */
  kvbuf_init(&top);
  if (tcmd != UVR_T_NONE) {
    if (twrite) {
      const char *err = uvr__top(cmd, tcmd, &top);
      if (err && strncmp(err, "ERR wrong number", 16) == 0) {
        kvbuf_free(&top);
        uvr__wrong_args(c, name);
        return;
      }
      if (err) {
        kvbuf_free(&top);
        uvr__reply_error(c, err);
        return;
      }
    } else if (cmd->argc != (tcmd == UVR_T_SISMEMBER || tcmd == UVR_T_HGET
                                 ? 3u
                                 : 2u)) {
      uvr__wrong_args(c, name);
      return;
    }
    kind = twrite ? UVR_TWRITE : UVR_TREAD;
    n = 1;
    step = !twrite && cmd->argc == 3 ? 2 : 1;
  } else if (resp_arg_is(name, "GET") || resp_arg_is(name, "TYPE") ||
      resp_arg_is(name, "GETDEL")) {
    if (cmd->argc != 2) {
      uvr__wrong_args(c, name);
      return;
    }
    kind = resp_arg_is(name, "GET")    ? UVR_GET
           : resp_arg_is(name, "TYPE") ? UVR_TYPE
                                       : UVR_GETDEL;
    n = 1;
  } else if (resp_arg_is(name, "MGET") || resp_arg_is(name, "EXISTS") ||
             resp_arg_is(name, "DEL") || resp_arg_is(name, "UNLINK")) {
    if (cmd->argc < 2) {
      uvr__wrong_args(c, name);
      return;
    }
    kind = resp_arg_is(name, "MGET")     ? UVR_MGET
           : resp_arg_is(name, "EXISTS") ? UVR_EXISTS
                                         : UVR_DEL;
    n = cmd->argc - 1;
  } else if (resp_arg_is(name, "SET")) {
    if (cmd->argc < 3) {
      uvr__wrong_args(c, name);
      return;
    }
    for (uint32_t i = 3; i < cmd->argc; i++) {
      kv_slice a = resp_cmd_arg(cmd, i);
      if (resp_arg_is(a, "NX") && !xx)
        nx = true;
      else if (resp_arg_is(a, "XX") && !nx)
        xx = true;
      else if (resp_arg_is(a, "GET"))
        get = true;
      else if ((resp_arg_is(a, "EX") || resp_arg_is(a, "PX")) &&
               i + 1 < cmd->argc && !o.ttl_ms) {
        uint32_t t;
        if (uvr__uint(resp_cmd_arg(cmd, ++i), &t) || t == 0) {
          uvr__reply_error(c, "ERR invalid expire time in 'set' command");
          return;
        }
        o.ttl_ms = resp_arg_is(a, "EX") ? (uint64_t)t * 1000u : t;
      } else if (resp_arg_is(a, "EXAT") || resp_arg_is(a, "PXAT") ||
                 resp_arg_is(a, "KEEPTTL")) {
        uvr__reply_error(c, "ERR kvorum supports EX and PX; EXAT, PXAT and "
                            "KEEPTTL are not supported");
        return;
      } else {
        uvr__reply_error(c, "ERR syntax error");
        return;
      }
    }
    kind = UVR_SET;
    n = 1;
    step = 2;
  } else if (resp_arg_is(name, "EXPIRE") || resp_arg_is(name, "PEXPIRE") ||
             resp_arg_is(name, "PERSIST")) {
    bool persist = resp_arg_is(name, "PERSIST");
    uint32_t t = 0;
    if (cmd->argc != (persist ? 2u : 3u)) {
      uvr__wrong_args(c, name);
      return;
    }
    if (!persist && (uvr__uint(resp_cmd_arg(cmd, 2), &t) || t == 0)) {
      uvr__reply_error(c, "ERR invalid expire time (kvorum takes a positive "
                          "number)");
      return;
    }
    /* Read, then write the value back with the new time to live (none:
     * PERSIST) and the context read: a new version of the key. */
    o.ttl_ms = resp_arg_is(name, "EXPIRE") ? (uint64_t)t * 1000u : t;
    kind = UVR_EXPIRE;
    n = 1;
    step = persist ? 1 : 2;
  } else if (resp_arg_is(name, "TTL") || resp_arg_is(name, "PTTL")) {
    if (cmd->argc != 2) {
      uvr__wrong_args(c, name);
      return;
    }
    kind = UVR_TTL;
    n = 1;
  } else if (resp_arg_is(name, "MSET")) {
    if (cmd->argc < 3 || cmd->argc % 2 == 0) {
      uvr__wrong_args(c, name);
      return;
    }
    kind = UVR_MSET;
    n = (cmd->argc - 1) / 2;
    step = 2;
  } else if (resp_arg_is(name, "KV.GET") || resp_arg_is(name, "KV.DEL") ||
             resp_arg_is(name, "KV.PUT")) {
    bool put = resp_arg_is(name, "KV.PUT");
    if (cmd->argc < (put ? 3u : 2u)) {
      uvr__wrong_args(c, name);
      return;
    }
    const char *err = uvr__options(cmd, put ? 3 : 2, &o,
                                   resp_arg_is(name, "KV.GET") ? NULL : &ctx);
    if (err) {
      uvr__reply_error(c, err);
      return;
    }
    kind = put ? UVR_KVPUT : resp_arg_is(name, "KV.GET") ? UVR_KVGET
                                                         : UVR_KVDEL;
    n = 1;
    step = put ? 2 : 1;
  } else {
    uvr__reply_errorf(c, "ERR unknown command '%.*s'",
                      (int)(name.len > 64 ? 64 : name.len),
                      (const char *)name.ptr);
    return;
  }
  if (n > UVR_KEYS_MAX) {
    uvr__reply_error(c, "ERR too many keys in one command");
    return;
  }
  uvr_op *op = uvr__op_new(rc, kind, n);
  if (!op) {
    kvbuf_free(&top);
    uvr__reply_error(c, "ERR too many commands in flight");
    return;
  }
  uint64_t serial = rc->next_serial - 1;
  op->nx = nx;
  op->xx = xx;
  op->get = get;
  op->opts = o;
  op->ms = kind == UVR_TTL && resp_arg_is(name, "PTTL");
  /* A plain SET writes at once, replacing what its coordinator holds. */
  if (kind == UVR_SET && !nx && !xx && !get)
    op->phase = 1;
  /* A typed write too: its coordinator reads, applies and writes. */
  op->tcmd = (uint8_t)tcmd;
  if (kind == UVR_TWRITE)
    op->phase = 1;
  resp_iter it;
  resp_iter_init(&it, cmd);
  kv_slice a;
  resp_iter_next(&it, &a); /* the command's name */
  for (uint32_t i = 0; i < n; i++) {
    uvr_key *k = &op->keys[i];
    resp_iter_next(&it, &a);
    k->key_off = uvr__keep(op, a);
    k->key_len = (uint32_t)a.len;
    if (step == 2) {
      resp_iter_next(&it, &a);
      k->val_off = uvr__keep(op, a);
      k->val_len = (uint32_t)a.len;
    }
  }
  if (kind == UVR_TWRITE) {
    op->keys[0].val_off = uvr__keep(op, (kv_slice){top.data, top.len});
    op->keys[0].val_len = (uint32_t)top.len;
    if (top.oom)
      op->store.oom = 1;
  }
  kvbuf_free(&top);
  if (ctx.ptr) {
    uint8_t *raw = NULL;
    size_t rlen = 0;
    if (kv_b64_decode((const char *)ctx.ptr, ctx.len, &raw, &rlen)) {
      free(raw);
      op->done = true;
      op->failed = true;
      resp_add_error(&op->out, "ERR CONTEXT is not a base64 context this "
                               "store gave out");
      uvr__flush(c);
      return;
    }
    op->keys[0].ctx_off = uvr__keep(op, (kv_slice){raw, rlen});
    op->keys[0].ctx_len = (uint32_t)rlen;
    free(raw);
  }
  if (op->store.oom) {
    op->done = true;
    op->failed = true;
    resp_add_error(&op->out, "ERR out of memory");
    uvr__flush(c);
    return;
  }
  uvr__issue(c, op, serial);
}

/* ---- the connection ---- */

int uvr_open(uvn_conn *c) {
  uvr_conn *rc = calloc(1, sizeof(*rc));
  if (!rc)
    return KV_ENOMEM;
  rc->ops = calloc(UVR_OPS_MAX, sizeof(*rc->ops));
  if (!rc->ops) {
    free(rc);
    return KV_ENOMEM;
  }
  rc->proto = RESP_PROTO2;
  rc->rs = (resp_resume)RESP_RESUME_INIT;
  c->resp = rc;
  c->greeted = true; /* the front end speaks for its clients */
  return 0;
}

void uvr_close(uvn_conn *c) {
  uvr_conn *rc = c->resp;
  if (!rc)
    return;
  for (uint32_t i = 0; i < rc->len; i++)
    uvr__op_clear(&rc->ops[(rc->head + i) % UVR_OPS_MAX]);
  free(rc->ops);
  free(rc);
  c->resp = NULL;
}

/* ---- users (--auth-file) ---- */

/* A login's answer: op's reply (HELLO's map, kept in its store, or +OK),
 * or WRONGPASS, and after UVA_FAILS_MAX failures the connection closes. */
static void uvr__login_end(uvn_conn *c, uvr_op *op, auth_role role) {
  uvr_conn *rc = c->resp;
  kv_slice user = uvr__slice(op, op->keys[0].key_off, op->keys[0].key_len);
  if (role != AUTH_ROLE_NONE) {
    c->role = (uint8_t)role;
    size_t ul = user.len < sizeof(c->user) - 1 ? user.len
                                                : sizeof(c->user) - 1;
    memcpy(c->user, user.ptr, ul);
    c->user[ul] = '\0';
    if (op->keys[0].out_len)
      kvbuf_append(&op->out, op->store.data + op->keys[0].out_off,
                   op->keys[0].out_len);
    else
      resp_add_simple(&op->out, "OK");
  } else {
    uva_failed(c->u, "the Redis protocol", user);
    resp_add_error(&op->out, "WRONGPASS invalid username-password pair or "
                             "user is disabled.");
    if (++c->auth_fails >= UVA_FAILS_MAX)
      rc->quit = true;
  }
  op->done = true;
  uvr__flush(c);
}

static void uvr__login_done(uvn *u, uint64_t conn, uint64_t serial,
                            auth_role role) {
  uvn_conn *c = uvn__conn_get(u, conn);
  uvr_op *op = c && c->resp ? uvr__op_at(c->resp, serial) : NULL;
  if (op && op->kind == UVR_AUTH && !op->done)
    uvr__login_end(c, op, role);
}

/* Starts a login; hello: HELLO's rendered reply, sent if it passes. */
static void uvr__login(uvn_conn *c, kv_slice user, kv_slice pw,
                       const kvbuf *hello) {
  uvr_conn *rc = c->resp;
  uvr_op *op = uvr__op_new(rc, UVR_AUTH, 1);
  if (!op) {
    uvr__reply_error(c, "ERR out of memory");
    return;
  }
  uint64_t serial = rc->next_serial - 1;
  op->keys[0].key_off = uvr__keep(op, user);
  op->keys[0].key_len = (uint32_t)user.len;
  if (hello) {
    op->keys[0].out_off = uvr__keep(op, (kv_slice){hello->data, hello->len});
    op->keys[0].out_len = (uint32_t)hello->len;
  }
  int r = uva_check(c->u, user, pw, uvr__login_done, c->id, serial);
  if (r != UVA_PENDING)
    uvr__login_end(c, op, r > 0 ? (auth_role)r : AUTH_ROLE_NONE);
}

/* The commands that write keys (the rest of the keys commands read). */
static bool uvr__writes(kv_slice name) {
  static const char *const w[] = {"SET",    "MSET",    "DEL",     "UNLINK",
                                  "GETDEL", "KV.PUT",  "KV.DEL",  "EXPIRE",
                                  "PEXPIRE", "PERSIST", "SADD",  "SREM",
                                  "INCRBY",  "DECRBY",  "INCR",  "DECR",
                                  "HSET",    "HDEL",    "HINCRBY"};
  for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
    if (resp_arg_is(name, w[i]))
      return true;
  return false;
}

/* With --auth-file: AUTH and HELLO ... AUTH log in; before a login only
 * QUIT goes through (NOAUTH, as Redis); after it, a command that reads or
 * writes keys must be one the user's role allows (NOPERM). Returns true
 * when it answered cmd. local: whether cmd is one uvr__local answers. */
static bool uvr__auth_gate(uvn_conn *c, const resp_cmd *cmd) {
  kv_slice name = resp_cmd_arg(cmd, 0);
  if (resp_arg_is(name, "AUTH")) {
    if (cmd->argc != 2 && cmd->argc != 3) {
      uvr__wrong_args(c, name);
      return true;
    }
    kv_slice def = {(const uint8_t *)"default", 7};
    uvr__login(c, cmd->argc == 3 ? resp_cmd_arg(cmd, 1) : def,
               resp_cmd_arg(cmd, cmd->argc - 1), NULL);
    return true;
  }
  if (resp_arg_is(name, "HELLO")) {
    for (uint32_t i = 2; i + 2 < cmd->argc; i++) {
      if (!resp_arg_is(resp_cmd_arg(cmd, i), "AUTH"))
        continue;
      kvbuf reply;
      kvbuf_init(&reply);
      uvr__local(c, cmd, &reply); /* checks and renders HELLO itself */
      if (reply.len && reply.data[0] == '-')
        uvr__now(c, &reply);
      else
        uvr__login(c, resp_cmd_arg(cmd, i + 1), resp_cmd_arg(cmd, i + 2),
                   &reply);
      kvbuf_free(&reply);
      return true;
    }
  }
  if (c->role == AUTH_ROLE_NONE) {
    if (resp_arg_is(name, "QUIT"))
      return false;
    uvr__reply_error(c, "NOAUTH Authentication required.");
    return true;
  }
  auth_op op = uvr__writes(name) ? AUTH_OP_WRITE : AUTH_OP_READ;
  if (auth_allows((auth_role)c->role, op))
    return false;
  uvr__reply_errorf(c, "NOPERM User %s has no permissions to run the '%.*s' "
                       "command",
                    c->user, (int)(name.len > 32 ? 32 : name.len),
                    (const char *)name.ptr);
  return true;
}

void uvr_on_read(uvn_conn *c) {
  size_t off = 0;
  resp_cmd *cmd = &uvr__cmd;
  uvr_conn *rconn = c->resp;
  if (!rconn || rconn->parsing)
    return;
  rconn->parsing = true;
  while (!c->closing && c->resp && !c->resp->quit) {
    if (c->resp->len >= UVR_OPS_MAX - 1) {
      c->resp->stalled = true; /* parse the rest when replies went out */
      break;
    }
    resp_cmd_init(cmd, uvr__scratch, sizeof(uvr__scratch));
    size_t used = 0;
    int rc = resp_parse_resume(&c->resp->rs, c->in.data + off,
                               c->in.len - off, NULL, cmd, &used);
    if (rc == KV_EAGAIN)
      break;
    if (rc) {
      char msg[RESP_ERR_MAX + 8];
      snprintf(msg, sizeof(msg), "ERR %.*s", RESP_ERR_MAX - 1, cmd->err);
      uvr__reply_error(c, msg);
      c->resp->quit = true; /* the stream cannot be resynchronised */
      uvr__flush(c);
      off = c->in.len;
      break;
    }
    if (cmd->argc && c->u->auth && uvr__auth_gate(c, cmd)) {
      /* answered, or a login under way */
    } else if (cmd->argc) {
      kvbuf reply;
      kvbuf_init(&reply);
      if (uvr__local(c, cmd, &reply))
        uvr__now(c, &reply);
      else
        uvr__keys_cmd(c, cmd);
      kvbuf_free(&reply);
    }
    off += used;
  }
  if (c->closing)
    return;
  rconn->parsing = false;
  if (off)
    kvbuf_consume(&c->in, off);
  if (c->resp && c->resp->quit)
    uvr__flush(c);
}
