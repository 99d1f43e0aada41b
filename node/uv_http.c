/*
 * uv_http.c: the HTTP front end of kvorumd (--http HOST:PORT; uv_http.h,
 * docs/http.md).
 *
 * libh2o (Debian's libh2o-dev, built on libuv) owns the sockets and the
 * HTTP/1.1 protocol: parsing, keep-alive, pipelining, chunked bodies, the
 * request timeout that closes slow clients, and the body limit. This file
 * routes what h2o parsed (http_req.h reads the target) and renders the
 * answers: /metrics (uv_metrics.c), /health and /ready here, and the key
 * and admin API by handing one native frame per request to the core.
 *
 * Requests waiting for the core sit in a table of UVH_PENDING_MAX slots;
 * a request's id names its slot and the slot's generation. When the
 * client goes away first, h2o disposes the request's memory pool, whose
 * dispose callback forgets the request; the core's late answer then finds
 * no request and is dropped.
 *
 * h2o's state is static: there is one loop per process, and a context h2o
 * cannot dispose while HTTP/1 connections are open (h2o 2.2 has no way to
 * ask them to close) stays reachable until exit instead of leaking.
 *
 * Depends on: uv_int.h (the shell), http_req.h, wire.h, kv_json.h, h2o.
 */
#define H2O_USE_LIBUV 1
#include "uv_http.h"

#include <errno.h>
#include <h2o.h>
#include <openssl/crypto.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_req.h"
#include "uv_auth.h"
#include "kv_base64.h"
#include "kv_err.h"
#include "crdt.h"
#include "kv_json.h"
#include "wire.h"

#define UVH_PENDING_BITS 12u
#define UVH_PENDING_MAX (1u << UVH_PENDING_BITS)
#define UVH_REQ_TIMEOUT_MS 10000u /* a request's headers and body must
                                     arrive within this */
#define UVH_CONTEXT_HEADER "x-kvorum-context"
#define UVH_JSON "application/json"

/* What a waiting request asked the core. */
typedef enum uvh_kind {
  UVH_GET,
  UVH_PUT,
  UVH_DEL,
  UVH_ADMIN,
  UVH_AUTH,
  UVH_TGET, /* GET /types/{key} */
  UVH_TPOST /* POST /types/{key} */
} uvh_kind;

typedef struct uvh_pending {
  h2o_req_t *req; /* NULL when the client went away */
  uint32_t gen;
  bool used;
  bool json;      /* GET: Accept: application/json */
  char user[AUTH_USER_MAX + 1]; /* UVH_AUTH: who is logging in (logs) */
  uvh_kind kind;
} uvh_pending;

/* Kept in a request's pool: its dispose callback forgets the request. */
typedef struct uvh_ref {
  uint32_t slot, gen;
} uvh_ref;

/* One accepted connection: h2o's socket over our uv_tcp_t. */
typedef struct uvh_sock {
  uv_tcp_t tcp;
  h2o_socket_t *sock;
  struct uvh_sock *prev, *next;
} uvh_sock;

static struct {
  uvn *u;
  bool open;
  h2o_globalconf_t config;
  h2o_context_t ctx;
  h2o_accept_ctx_t accept;
  uv_tcp_t srv;
  uvh_sock *socks;
  uvh_pending pending[UVH_PENDING_MAX];
  uint32_t next_slot;
  kvbuf buf; /* frames and bodies being built */
} uvh;

static http_target uvh__target; /* 64 KiB: one per process, like uvh */

/* ---- responses ---- */

static void uvh__header(h2o_req_t *req, const char *name, const char *val,
                        size_t len) {
  h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1,
                        NULL, val, len);
}

static void uvh__send(h2o_req_t *req, int status, const char *reason,
                      const char *ctype, const void *body, size_t len) {
  req->res.status = status;
  req->res.reason = reason;
  req->res.content_length = len;
  if (ctype)
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE,
                   NULL, ctype, strlen(ctype));
  uvh.u->net[UVN_PORT_HTTP].bytes_out += len;
  h2o_send_inline(req, body ? body : "", len);
}

static const char *uvh__reason(int status) {
  switch (status) {
  case 200: return "OK";
  case 204: return "No Content";
  case 300: return "Multiple Choices";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 413: return "Payload Too Large";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 507: return "Insufficient Storage";
  default: return "Error";
  }
}

/* The HTTP status of a KV_E* code. */
static int uvh__status_of(int code) {
  switch (code) {
  case KV_ENOTFOUND: return 404;
  case KV_EQUORUM:
  case KV_EUNAVAIL:
  case KV_EOVERLOAD:
  case KV_ECONN:
  case KV_ECLOSED: return 503;
  case KV_ETOOBIG:
  case KV_ESIBLINGS: return 413;
  case KV_EINVAL:
  case KV_EPROTO:
  case KV_EVERSION:
  case KV_EUNKNOWN: return 400;
  case KV_ETIMEDOUT: return 504;
  case KV_ESTATE:
  case KV_ETYPE: return 409;
  case KV_EAUTH: return 401;
  case KV_EPERM: return 403;
  case KV_ENOSPC:
  case KV_EFULL: return 507;
  default: return 500;
  }
}

/* {"error": "EQUORUM", "message": "..."} with the status of code. */
static void uvh__error(h2o_req_t *req, int status, int code, const char *msg,
                       size_t len) {
  kvbuf *b = &uvh.buf;
  b->len = 0;
  kvbuf_append(b, "{\"error\": ", 10);
  const char *name = kv_errname(code);
  kv_json_str(b, name, strlen(name));
  kvbuf_append(b, ", \"message\": ", 13);
  kv_json_str(b, msg, len);
  kvbuf_append(b, "}\n", 2);
  if (b->oom) {
    b->oom = 0;
    b->len = 0;
  }
  uvh__send(req, status, uvh__reason(status), UVH_JSON, b->data, b->len);
}

static void uvh__errorf(h2o_req_t *req, int status, int code, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));
static void uvh__errorf(h2o_req_t *req, int status, int code, const char *fmt,
                        ...) {
  char msg[WIRE_ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  uvh__error(req, status, code, msg, strlen(msg));
}

static void uvh__json(h2o_req_t *req, int status, const kvbuf *b) {
  uvh__send(req, status, uvh__reason(status), UVH_JSON, b->data, b->len);
}

/* ---- the core's answers ---- */

/* Adds the X-Kvorum-Context header (base64 of ctx). */
static void uvh__context_header(h2o_req_t *req, kv_slice ctx) {
  kvbuf b;
  kvbuf_init(&b);
  if (kv_b64_encode(&b, ctx.ptr, ctx.len) == 0 && !b.oom) {
    char *v = h2o_mem_alloc_pool(&req->pool, b.len ? b.len : 1);
    memcpy(v, b.data, b.len);
    uvh__header(req, UVH_CONTEXT_HEADER, v, b.len);
  }
  kvbuf_free(&b);
}

/* GET_OK: 200 with the value of one sibling, 300 with every sibling as
 * JSON, 404 without any; the JSON form whenever the client asked for it. */
static void uvh__get_ok(h2o_req_t *req, bool json, const wire_msg *m) {
  uvh__context_header(req, m->context);
  mp_reader rd;
  mp_reader_init(&rd, m->raw.ptr, m->raw.len);
  uint32_t cnt = 0;
  if (mp_read_array(&rd, &cnt) || cnt != m->nsiblings) {
    uvh__errorf(req, 500, KV_EPROTO, "malformed answer from the core");
    return;
  }
  if (cnt == 0) {
    uvh__errorf(req, 404, KV_ENOTFOUND, "not found");
    return;
  }
  wire_sibling s;
  if (cnt == 1 && !json) {
    if (wire_sibling_next(&rd, &s)) {
      uvh__errorf(req, 500, KV_EPROTO, "malformed answer from the core");
      return;
    }
    uvh__send(req, 200, "OK", "application/octet-stream", s.value.ptr,
              s.value.len);
    return;
  }
  kvbuf *b = &uvh.buf;
  b->len = 0;
  kvbuf_append(b, "{\"siblings\": [", 14);
  for (uint32_t i = 0; i < cnt; i++) {
    if (wire_sibling_next(&rd, &s)) {
      uvh__errorf(req, 500, KV_EPROTO, "malformed answer from the core");
      return;
    }
    char meta[96];
    int ml = snprintf(meta, sizeof(meta),
                      "%s{\"deleted\": %s, \"last_modified_ms\": %llu, "
                      "\"value\": \"",
                      i ? ", " : "",
                      (s.flags & WIRE_SIB_DELETED) ? "true" : "false",
                      (unsigned long long)s.ts_ms);
    kvbuf_append(b, meta, (size_t)ml);
    kv_b64_encode(b, s.value.ptr, s.value.len);
    kvbuf_append(b, "\"}", 2);
  }
  kvbuf_append(b, "], \"context\": \"", 15);
  kv_b64_encode(b, m->context.ptr, m->context.len);
  kvbuf_append(b, "\"}\n", 3);
  if (b->oom) {
    b->oom = 0;
    uvh__errorf(req, 500, KV_ENOMEM, "out of memory");
    return;
  }
  uvh__json(req, cnt > 1 ? 300 : 200, b);
}

/* A data type's state as JSON (crdt_render_json), 200. */
static void uvh__state(h2o_req_t *req, kv_slice enc) {
  crdt *st = NULL;
  if (crdt_decode(enc.ptr, enc.len, &st)) {
    uvh__errorf(req, 500, KV_ECORRUPT, "the key's state does not decode");
    return;
  }
  kvbuf *b = &uvh.buf;
  b->len = 0;
  int rc = crdt_render_json(st, b);
  crdt_free(st);
  if (rc || b->oom || kvbuf_append(b, "\n", 1)) {
    b->oom = 0;
    uvh__errorf(req, 500, KV_ENOMEM, "out of memory");
    return;
  }
  uvh__json(req, 200, b);
}

/* GET /types/{key}: the joined state of a data type, 404 when there is no
 * key, 409 when it holds plain values only. */
static void uvh__types_get_ok(h2o_req_t *req, const wire_msg *m) {
  uvh__context_header(req, m->context);
  mp_reader rd;
  mp_reader_init(&rd, m->raw.ptr, m->raw.len);
  uint32_t cnt = 0;
  if (mp_read_array(&rd, &cnt)) {
    uvh__errorf(req, 500, KV_EPROTO, "malformed answer from the core");
    return;
  }
  bool plain = false;
  for (uint32_t i = 0; i < cnt; i++) {
    wire_sibling s;
    if (wire_sibling_next(&rd, &s))
      break;
    if (s.flags & WIRE_SIB_TYPED) {
      uvh__state(req, s.value);
      return;
    }
    plain |= !(s.flags & WIRE_SIB_DELETED);
  }
  if (plain)
    uvh__errorf(req, 409, KV_ETYPE,
                "WRONGTYPE the key holds plain values, not a data type");
  else
    uvh__errorf(req, 404, KV_ENOTFOUND, "not found");
}

static void uvh__answer(h2o_req_t *req, const uvh_pending *p,
                        const wire_msg *m) {
  if (m->type == WIRE_ERROR) {
    uvh__error(req, uvh__status_of(m->code), m->code,
               (const char *)m->text.ptr, m->text.len);
    return;
  }
  switch (p->kind) {
  case UVH_GET:
    if (m->type == WIRE_GET_OK) {
      uvh__get_ok(req, p->json, m);
      return;
    }
    break;
  case UVH_PUT:
  case UVH_DEL:
    if (m->type == WIRE_PUT_OK || m->type == WIRE_DEL_OK) {
      uvh__context_header(req, m->context);
      uvh__send(req, 204, "No Content", NULL, NULL, 0);
      return;
    }
    break;
  case UVH_AUTH:
    break; /* answered by uvh__login_done */
  case UVH_TGET:
    if (m->type == WIRE_GET_OK) {
      uvh__types_get_ok(req, m);
      return;
    }
    break;
  case UVH_TPOST:
    if (m->type == WIRE_PUT_OK) {
      uvh__context_header(req, m->context);
      uvh__state(req, m->value);
      return;
    }
    break;
  case UVH_ADMIN:
    if (m->type == WIRE_ADMIN_OK) {
      kvbuf *b = &uvh.buf;
      b->len = 0;
      if (kv_json_from_msgpack(b, m->raw.ptr, m->raw.len) == 0 &&
          kvbuf_append(b, "\n", 1) == 0) {
        uvh__json(req, 200, b);
        return;
      }
    }
    break;
  }
  uvh__errorf(req, 500, KV_EPROTO, "unexpected %s answer from the core",
              wire_type_name(m->type));
}

void uvh_on_frame(uvn *u, const uint8_t *frame, size_t len) {
  (void)u;
  wire_msg m;
  if (len < WIRE_HEADER_BYTES ||
      wire_decode(frame + WIRE_HEADER_BYTES, len - WIRE_HEADER_BYTES,
                  &wire_limits_default, &m))
    return;
  uint32_t slot = (uint32_t)(m.req_id & (UVH_PENDING_MAX - 1));
  uvh_pending *p = &uvh.pending[slot];
  if (!p->used || p->gen != (uint32_t)(m.req_id >> UVH_PENDING_BITS))
    return;
  h2o_req_t *req = p->req;
  uvh_pending done = *p;
  p->used = false;
  p->req = NULL;
  if (req)
    uvh__answer(req, &done, &m);
}

/* ---- requests to the core ---- */

static void uvh__req_gone(void *arg) {
  uvh_ref *ref = arg;
  uvh_pending *p = &uvh.pending[ref->slot];
  if (p->used && p->gen == ref->gen)
    p->req = NULL;
}

/* A pending slot for req, or NULL when UVH_PENDING_MAX are waiting. */
static uvh_pending *uvh__pending_new(h2o_req_t *req, uvh_kind kind,
                                     uint64_t *id) {
  for (uint32_t i = 0; i < UVH_PENDING_MAX; i++) {
    uint32_t slot = (uvh.next_slot + i) & (UVH_PENDING_MAX - 1);
    uvh_pending *p = &uvh.pending[slot];
    if (p->used)
      continue;
    uvh.next_slot = slot + 1;
    p->used = true;
    p->gen = (p->gen + 1) & 0xfffffffu;
    p->req = req;
    p->kind = kind;
    p->json = false;
    uvh_ref *ref = h2o_mem_alloc_shared(&req->pool, sizeof(*ref),
                                        uvh__req_gone);
    ref->slot = slot;
    ref->gen = p->gen;
    *id = (uint64_t)p->gen << UVH_PENDING_BITS | slot;
    return p;
  }
  return NULL;
}

/* Hands msg (its req_id set here) to the core for req. */
static void uvh__to_core(h2o_req_t *req, uvh_kind kind, wire_msg *msg,
                         bool json) {
  uvh_pending *p = uvh__pending_new(req, kind, &msg->req_id);
  if (!p) {
    uvh__errorf(req, 503, KV_EOVERLOAD,
                "%u HTTP requests are waiting for the node",
                UVH_PENDING_MAX);
    return;
  }
  p->json = json;
  kvbuf *b = &uvh.buf;
  b->len = 0;
  if (wire_encode(b, msg) || b->oom) {
    b->oom = 0;
    p->used = false;
    p->req = NULL;
    uvh__errorf(req, 500, KV_ENOMEM, "cannot encode the request");
    return;
  }
  /* The core may answer at once, through uvh_on_frame, which reuses buf:
   * hand it a copy. */
  size_t blen = b->len - WIRE_HEADER_BYTES;
  uint8_t *body = malloc(blen ? blen : 1);
  if (!body) {
    p->used = false;
    p->req = NULL;
    uvh__errorf(req, 500, KV_ENOMEM, "out of memory");
    return;
  }
  memcpy(body, b->data + WIRE_HEADER_BYTES, blen);
  node_on_frame(uvh.u->core, UVN_CONN_HTTP, NODE_CONN_CLIENT, true, body,
                blen);
  free(body);
}

static bool uvh__method(const h2o_req_t *req, const char *m) {
  return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

/* The value of request header name (lower case), or NULL. */
static const h2o_iovec_t *uvh__req_header(const h2o_req_t *req,
                                          const char *name) {
  ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
  return i < 0 ? NULL : &req->headers.entries[i].value;
}

static void uvh__kv(h2o_req_t *req, http_target *t) {
  bool get = uvh__method(req, "GET") || uvh__method(req, "HEAD");
  bool put = uvh__method(req, "PUT");
  bool del = uvh__method(req, "DELETE");
  if (!get && !put && !del) {
    uvh__header(req, "allow", H2O_STRLIT("GET, HEAD, PUT, DELETE"));
    uvh__errorf(req, 405, KV_EINVAL, "/kv/{key} takes GET, PUT or DELETE");
    return;
  }
  wire_msg m = {.type = get ? WIRE_GET : put ? WIRE_PUT : WIRE_DEL};
  m.key.ptr = t->key;
  m.key.len = t->klen;
  m.opts = t->opts;
  uint8_t *ctx = NULL;
  size_t ctx_len = 0;
  const h2o_iovec_t *ch = uvh__req_header(req, UVH_CONTEXT_HEADER);
  if (ch && !get) {
    if (kv_b64_decode(ch->base, ch->len, &ctx, &ctx_len)) {
      uvh__errorf(req, 400, KV_EINVAL,
                  "X-Kvorum-Context is not the base64 of a context");
      return;
    }
    m.context.ptr = ctx;
    m.context.len = ctx_len;
  }
  if (put) {
    uint32_t max = uvh.u->cfg->core.limits.value_max
                       ? uvh.u->cfg->core.limits.value_max
                       : KV_VALUE_MAX_DEFAULT;
    if (req->entity.len > max) {
      free(ctx);
      uvh__errorf(req, 413, KV_ETOOBIG,
                  "the value is %zu bytes; the limit is %u bytes",
                  req->entity.len, max);
      return;
    }
    m.value.ptr = (const uint8_t *)(req->entity.base ? req->entity.base : "");
    m.value.len = req->entity.len;
  }
  bool json = false;
  const h2o_iovec_t *acc = uvh__req_header(req, "accept");
  if (acc)
    json = h2o_strstr(acc->base, acc->len, H2O_STRLIT(UVH_JSON)) != SIZE_MAX;
  uvh__to_core(req, get ? UVH_GET : put ? UVH_PUT : UVH_DEL, &m, json);
  free(ctx);
}

static void uvh__admin(h2o_req_t *req, const http_target *t) {
  wire_msg m = {.type = WIRE_ADMIN};
  m.text.ptr = (const uint8_t *)t->admin;
  m.text.len = strlen(t->admin);
  uvh__to_core(req, UVH_ADMIN, &m, true);
}

/* ---- data types (docs/http.md) ---- */

#define UVH_TNAME_MAX 16

static bool uvh__slice_is(kv_slice v, const char *lit) {
  return v.len == strlen(lit) && memcmp(v.ptr, lit, v.len) == 0;
}

/* Builds the operation that POST /types/{key}'s query names (docs/http.md)
 * into op. dec: room for the decoded values (qlen bytes). Returns NULL or
 * the error message. */
static const char *uvh__types_op(const char *q, size_t qlen, uint8_t *dec,
                                 kvbuf *op, char *err, size_t errlen) {
  char name[UVH_TNAME_MAX];
  size_t pos = 0, used = 0, vlen, nel = 0;
  crdt_type type = CRDT_NONE;
  bool have_type = false, adds = false, rems = false, incr = false;
  int64_t delta = 0;
  kv_slice *el = calloc(qlen / 2 + 1, sizeof(*el)), field = {NULL, 0};
  kv_slice ctx = {NULL, 0};
  crdt_mapb b;
  crdt_mapb_init(&b, CRDT_NONE);
  const char *bad = NULL;
  int rc = 0;
  if (!el)
    bad = "out of memory";
  while (!bad && (rc = http_query_next(q, qlen, &pos, name, sizeof(name),
                                       dec + used, qlen - used, &vlen, err,
                                       errlen)) == 1) {
    kv_slice v = {dec + used, vlen};
    used += vlen;
    if (strcmp(name, "type") == 0) {
      have_type = true;
      type = uvh__slice_is(v, "set")       ? CRDT_SET
             : uvh__slice_is(v, "counter") ? CRDT_COUNTER
                                         : CRDT_NONE;
      if (type == CRDT_NONE && !uvh__slice_is(v, "map"))
        bad = "type is set, counter or map";
    } else if (!have_type) {
      bad = "type=set, counter or map comes first";
    } else if (strcmp(name, "context") == 0) {
      uint8_t *raw = NULL;
      size_t rl = 0;
      if (kv_b64_decode((const char *)v.ptr, v.len, &raw, &rl) ||
          rl > v.len) {
        free(raw);
        bad = "context is not the base64 of a context";
      } else {
        memcpy((uint8_t *)v.ptr, raw, rl); /* shorter: fits in place */
        free(raw);
        ctx = (kv_slice){v.ptr, rl};
      }
    } else if (strcmp(name, "field") == 0 && type == CRDT_NONE) {
      field = v;
    } else if (strcmp(name, "delete") == 0 && type == CRDT_NONE) {
      nel++;
      if (crdt_mapb_remove(&b, v, CRDT_KIND_ANY))
        bad = "out of memory";
    } else if (strcmp(name, "incr") == 0) {
      char num[24];
      char *end = NULL;
      snprintf(num, sizeof(num), "%.*s", (int)(v.len < 23 ? v.len : 23),
               (const char *)v.ptr);
      errno = 0;
      long long d = strtoll(num, &end, 10);
      if (!v.len || v.len > 20 || *end || errno)
        bad = "incr takes an integer";
      else if (type == CRDT_SET)
        bad = "a set takes add and remove";
      else if (type == CRDT_COUNTER)
        incr = true, delta = d;
      else if (!field.ptr)
        bad = "field=NAME comes before incr";
      else if (crdt_mapb_incr(&b, field, d))
        bad = "out of memory";
      nel++;
    } else if (strcmp(name, "add") == 0 || strcmp(name, "remove") == 0) {
      bool add = name[0] == 'a';
      if (type == CRDT_COUNTER)
        bad = "a counter takes incr";
      else if (type == CRDT_SET)
        el[nel++] = v, adds |= add, rems |= !add;
      else if (!field.ptr)
        bad = "field=NAME comes before add and remove";
      else if (add ? crdt_mapb_set_add(&b, field, &v, 1)
                   : crdt_mapb_set_rem(&b, field, &v, 1))
        bad = "out of memory";
      else
        nel++;
    } else if (strcmp(name, "set") == 0 && type == CRDT_NONE) {
      if (!field.ptr)
        bad = "field=NAME comes before set";
      else if (crdt_mapb_assign(&b, field, v, 0))
        bad = "out of memory";
      nel++;
    } else {
      snprintf(err, errlen, "unknown or misplaced query parameter \"%s\"",
               name);
      bad = err;
    }
  }
  if (!bad && rc < 0)
    bad = err;
  if (!bad && !have_type)
    bad = "type=set, counter or map is required";
  if (!bad && type == CRDT_SET && adds && rems)
    bad = "add and remove go in separate requests";
  if (!bad && !nel && !incr)
    bad = "no operation: see docs/http.md for add, remove, incr, set, delete";
  bool mapb_live = true;
  if (!bad) {
    int r;
    if (type == CRDT_SET)
      r = adds ? crdt_op_set_add(op, el, nel)
               : crdt_op_set_rem(op, el, nel, ctx.ptr, ctx.len);
    else if (type == CRDT_COUNTER)
      r = crdt_op_counter_incr(op, delta);
    else {
      r = crdt_mapb_finish(&b, ctx.ptr, ctx.len, op); /* frees b */
      mapb_live = false;
    }
    if (r)
      bad = "out of memory";
  }
  if (mapb_live)
    crdt_mapb_free(&b);
  free(el);
  return bad;
}

static void uvh__types(h2o_req_t *req, http_target *t, const char *q,
                       size_t qlen) {
  bool get = uvh__method(req, "GET") || uvh__method(req, "HEAD");
  if (!get && !uvh__method(req, "POST")) {
    uvh__header(req, "allow", H2O_STRLIT("GET, HEAD, POST"));
    uvh__errorf(req, 405, KV_EINVAL, "/types/{key} takes GET or POST");
    return;
  }
  wire_msg m = {.type = get ? WIRE_GET : WIRE_PUT};
  m.key.ptr = t->key;
  m.key.len = t->klen;
  m.opts.r = m.opts.w = m.opts.dw = m.opts.pr = m.opts.pw = WIRE_Q_DEFAULT;
  if (get) {
    uvh__to_core(req, UVH_TGET, &m, true);
    return;
  }
  char err[WIRE_ERRMSG_MAX];
  kvbuf op;
  kvbuf_init(&op);
  uint8_t *dec = malloc(qlen + 1);
  const char *bad = dec ? uvh__types_op(q, qlen, dec, &op, err, sizeof(err))
                        : "out of memory";
  if (bad || op.oom) {
    uvh__errorf(req, 400, KV_EINVAL, "%s", bad ? bad : "out of memory");
  } else {
    m.value.ptr = op.data;
    m.value.len = op.len;
    m.opts.flags = WIRE_OPT_TYPED;
    uvh__to_core(req, UVH_TPOST, &m, true);
  }
  free(dec);
  kvbuf_free(&op);
}

/* ---- health ---- */

static void uvh__ready(h2o_req_t *req) {
  const char *why = uvn__not_ready(uvh.u);
  kvbuf *b = &uvh.buf;
  b->len = 0;
  kvbuf_append(b, "{\"ready\": ", 10);
  if (why) {
    kvbuf_append(b, "false, \"reason\": ", 17);
    kv_json_str(b, why, strlen(why));
  } else {
    kvbuf_append(b, "true", 4);
  }
  kvbuf_append(b, ", \"node\": ", 10);
  kv_json_str(b, uvh.u->id, strlen(uvh.u->id));
  kvbuf_append(b, "}\n", 2);
  uvh__json(req, why ? 503 : 200, b);
}

static void uvh__health(h2o_req_t *req) {
  kvbuf *b = &uvh.buf;
  b->len = 0;
  kvbuf_append(b, "{\"status\": \"ok\", \"node\": ", 25);
  kv_json_str(b, uvh.u->id, strlen(uvh.u->id));
  kvbuf_append(b, "}\n", 2);
  uvh__json(req, 200, b);
}

static void uvh__metrics(h2o_req_t *req) {
  kvbuf *b = &uvh.buf;
  b->len = 0;
  uvm_render(uvh.u, b);
  if (b->oom) {
    b->oom = 0;
    uvh__errorf(req, 500, KV_ENOMEM, "out of memory");
    return;
  }
  uvh__send(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
            b->data, b->len);
}

/* ---- h2o ---- */

/* What a request asks of a user's role (--auth-file). */
static auth_op uvh__op(const h2o_req_t *req, const http_target *t) {
  if (t->route == HTTP_R_KV)
    return uvh__method(req, "GET") || uvh__method(req, "HEAD")
               ? AUTH_OP_READ
               : AUTH_OP_WRITE;
  if (t->route == HTTP_R_ADMIN)
    return strcmp(t->admin, "status") == 0 || strcmp(t->admin, "ring") == 0
               ? AUTH_OP_TOPOLOGY
               : AUTH_OP_ADMIN;
  return AUTH_OP_READ;
}

/* Serves req for a client with role (AUTH_ROLE_ADMIN without
 * --auth-file). */
static void uvh__serve(h2o_req_t *req, auth_role role) {
  char err[WIRE_ERRMSG_MAX];
  http_target *t = &uvh__target;
  const char *tq = NULL;
  size_t tql = 0;
  int rc = http_types_target(req->path.base, req->path.len, t, &tq, &tql,
                             err, sizeof(err));
  if (rc == 0) {
    bool rd = uvh__method(req, "GET") || uvh__method(req, "HEAD");
    if (!auth_allows(role, rd ? AUTH_OP_READ : AUTH_OP_WRITE)) {
      uvh__errorf(req, 403, KV_EPERM, "role %s may not %.*s %.*s",
                  auth_role_name(role), (int)req->method.len,
                  req->method.base, (int)req->path.len, req->path.base);
      return;
    }
    uvh__types(req, t, tq, tql);
    return;
  }
  if (rc != 1) {
    uvh__error(req, uvh__status_of(rc), rc, err, strlen(err));
    return;
  }
  rc = http_target_parse(req->path.base, req->path.len, t, err,
                             sizeof(err));
  if (rc) {
    uvh__error(req, uvh__status_of(rc), rc, err, strlen(err));
    return;
  }
  bool read_only = t->route != HTTP_R_KV && t->route != HTTP_R_UNKNOWN;
  if (read_only && !uvh__method(req, "GET") && !uvh__method(req, "HEAD")) {
    uvh__header(req, "allow", H2O_STRLIT("GET, HEAD"));
    uvh__errorf(req, 405, KV_EINVAL, "%.*s takes GET", (int)req->path.len,
                req->path.base);
    return;
  }
  if (t->route != HTTP_R_UNKNOWN && !auth_allows(role, uvh__op(req, t))) {
    uvh__errorf(req, 403, KV_EPERM, "role %s may not %.*s %.*s",
                auth_role_name(role), (int)req->method.len, req->method.base,
                (int)req->path.len, req->path.base);
    return;
  }
  switch (t->route) {
  case HTTP_R_METRICS: uvh__metrics(req); break;
  case HTTP_R_HEALTH: uvh__health(req); break;
  case HTTP_R_READY: uvh__ready(req); break;
  case HTTP_R_KV: uvh__kv(req, t); break;
  case HTTP_R_ADMIN: uvh__admin(req, t); break;
  default:
    uvh__errorf(req, 404, KV_ENOTFOUND,
                "no such resource (see /metrics, /health, /ready, "
                "/kv/{key}, /admin/status)");
  }
}

static void uvh__unauthorized(h2o_req_t *req, const char *msg) {
  uvh__header(req, "www-authenticate",
              H2O_STRLIT("Basic realm=\"kvorum\", charset=\"UTF-8\""));
  uvh__errorf(req, 401, KV_EAUTH, "%s", msg);
}

static void uvh__login_done(uvn *u, uint64_t id, uint64_t unused,
                            auth_role role) {
  (void)unused;
  uvh_pending *p = &uvh.pending[id & (UVH_PENDING_MAX - 1)];
  if (!p->used || p->kind != UVH_AUTH ||
      p->gen != (uint32_t)(id >> UVH_PENDING_BITS))
    return;
  h2o_req_t *req = p->req;
  p->used = false;
  p->req = NULL;
  if (!req)
    return;
  if (role == AUTH_ROLE_NONE) {
    uva_failed(u, "HTTP",
               (kv_slice){(const uint8_t *)p->user, strlen(p->user)});
    uvh__unauthorized(req, "authentication failed: wrong user or password");
    return;
  }
  uvh__serve(req, role);
}

/* With --auth-file, every path but /health and /ready needs HTTP Basic
 * credentials of a user whose role allows the request. */
static void uvh__login(h2o_req_t *req) {
  const h2o_iovec_t *h = uvh__req_header(req, "authorization");
  if (!h || h->len < 6 || strncasecmp(h->base, "Basic ", 6) != 0) {
    uvh__unauthorized(req, "this node requires a user and password (HTTP "
                           "Basic authentication)");
    return;
  }
  uint8_t *dec = NULL;
  size_t dlen = 0;
  const uint8_t *colon = NULL;
  if (kv_b64_decode(h->base + 6, h->len - 6, &dec, &dlen) == 0)
    colon = memchr(dec, ':', dlen);
  if (!colon) {
    free(dec);
    uvh__unauthorized(req, "malformed Basic credentials");
    return;
  }
  kv_slice user = {dec, (size_t)(colon - dec)};
  kv_slice pw = {colon + 1, dlen - user.len - 1};
  uint64_t id = 0;
  uvh_pending *p = uvh__pending_new(req, UVH_AUTH, &id);
  if (p) {
    size_t ul = user.len < AUTH_USER_MAX ? user.len : AUTH_USER_MAX;
    memcpy(p->user, user.ptr, ul);
    p->user[ul] = '\0';
  }
  int r = p ? uva_check(uvh.u, user, pw, uvh__login_done, id, 0)
            : UVA_REFUSED;
  if (r != UVA_PENDING) {
    if (p) {
      p->used = false;
      p->req = NULL;
    }
    if (r > 0) {
      uvh__serve(req, (auth_role)r);
    } else {
      uva_failed(uvh.u, "HTTP", user);
      uvh__unauthorized(req, "authentication failed: wrong user or password");
    }
  }
  OPENSSL_cleanse(dec, dlen);
  free(dec);
}

static int uvh__on_req(h2o_handler_t *self, h2o_req_t *req) {
  (void)self;
  uvn *u = uvh.u;
  u->net[UVN_PORT_HTTP].bytes_in += req->path.len + req->entity.len;
  for (size_t i = 0; i < req->headers.size; i++)
    u->net[UVN_PORT_HTTP].bytes_in +=
        req->headers.entries[i].name->len + req->headers.entries[i].value.len;
  bool open = h2o_memis(req->path.base, req->path.len, H2O_STRLIT("/health")) ||
              h2o_memis(req->path.base, req->path.len, H2O_STRLIT("/ready"));
  if (uva_on(u) && !open)
    uvh__login(req);
  else
    uvh__serve(req, AUTH_ROLE_ADMIN);
  return 0;
}

static void uvh__sock_closed(uv_handle_t *h) {
  uvh_sock *s = (uvh_sock *)h;
  if (s->prev)
    s->prev->next = s->next;
  else
    uvh.socks = s->next;
  if (s->next)
    s->next->prev = s->prev;
  uvh.u->net[UVN_PORT_HTTP].open--;
  free(s);
}

static void uvh__tmp_closed(uv_handle_t *h) { free(h); }

static void uvh__on_accept(uv_stream_t *srv, int status) {
  uvn *u = uvh.u;
  if (status < 0 || u->stopping)
    return;
  uvh_sock *s = calloc(1, sizeof(*s));
  if (!s)
    return;
  uv_tcp_init(srv->loop, &s->tcp);
  if (uv_accept(srv, (uv_stream_t *)&s->tcp)) {
    uv_close((uv_handle_t *)&s->tcp, uvh__tmp_closed);
    return;
  }
  uv_tcp_nodelay(&s->tcp, 1);
  s->sock = h2o_uv_socket_create((uv_stream_t *)&s->tcp, uvh__sock_closed);
  s->next = uvh.socks;
  if (uvh.socks)
    uvh.socks->prev = s;
  uvh.socks = s;
  u->net[UVN_PORT_HTTP].open++;
  h2o_accept(&uvh.accept, s->sock);
}

int uvh_open(uvn *u, const char *addr) {
  uvh.u = u;
  kvbuf_init(&uvh.buf);
  h2o_config_init(&uvh.config);
  uvh.config.server_name = h2o_iovec_init(H2O_STRLIT("kvorum/" KVORUM_VERSION));
  uint32_t max = u->cfg->core.limits.value_max ? u->cfg->core.limits.value_max
                                                : KV_VALUE_MAX_DEFAULT;
  /* Bodies up to the value limit are read and refused with a clear
   * message; h2o itself refuses anything much larger (413). */
  uvh.config.max_request_entity_size = (size_t)max + 64u * 1024u;
  uvh.config.http1.req_timeout = UVH_REQ_TIMEOUT_MS;
  h2o_hostconf_t *host = h2o_config_register_host(
      &uvh.config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
  h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
  h2o_handler_t *h = h2o_create_handler(path, sizeof(*h));
  h->on_req = uvh__on_req;
  h2o_context_init(&uvh.ctx, u->loop, &uvh.config);
  uvh.accept.ctx = &uvh.ctx;
  uvh.accept.hosts = uvh.config.hosts;
  uvh_tls_reloaded(u);
  int rc = uvn__listen(u, &uvh.srv, addr, uvh__on_accept, "HTTP clients");
  uvh.open = rc == 0;
  return rc;
}

/* HTTPS only with --client-tls tls: h2o cannot tell TLS from plain on one
 * port, and `both` exists so that nothing breaks during a rolling
 * upgrade, so with `both` HTTP stays plain (docs/security.md). */
void uvh_tls_reloaded(uvn *u) {
  uvh.accept.ssl_ctx = u->tls && u->cfg->client_tls == UVT_TLS
                           ? uvt_ctx_https(u->tls)
                           : NULL;
}

void uvh_close(uvn *u) {
  (void)u;
  if (!uvh.open)
    return;
  uvh.open = false;
  /* Close every connection (h2o's sockets close their handles), then let
   * the shell close the rest: the listener and h2o's timers. */
  for (uvh_sock *s = uvh.socks; s; s = s->next)
    if (!uv_is_closing((uv_handle_t *)&s->tcp))
      h2o_socket_close(s->sock);
  kvbuf_free(&uvh.buf);
}
