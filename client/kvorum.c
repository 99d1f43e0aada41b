/*
 * kvorum.c: libkvorum's public API (kvorum.h is the contract): the
 * kv_client, connecting and closing, consistency levels, results, and the
 * asynchronous and blocking requests. kv_poll, which drives them, is in
 * poll.c.
 *
 * The library's other files, whose internals kvorum_int.h declares:
 * conn.c (connections), route.c (the ring copy and routing), req.c
 * (the request table and completion) and poll.c (the I/O loop and
 * timeouts); kvtls.c is the TLS layer under conn.c, and proto/kv_json.c
 * renders kv_admin's JSON.
 *
 * kv_update sends an operation on a data type (storage/crdt.h builds it)
 * as a put flagged WIRE_OPT_TYPED; its PUT_OK brings the new state.
 *
 * Depends on: kvorum_int.h, kvtls.h, kvproto (wire.h, mp.h, kv_err.h).
 */
#include "kvorum.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kvorum_int.h"
#include "wire.h"

#define KV__HOSTS_MAX 16 /* hosts in a kv_connect list */
#define KV__CONNECT_TIMEOUT_MS_DEFAULT 2000
#define KV__TIMEOUT_MS_DEFAULT 5000
#define KV__TIMEOUT_GRACE_MS 100 /* lets the server's message win */
#define KV__SLOTS_INIT 256u
#define KV__VALUE_MAX (WIRE_FRAME_MAX - KV_KEY_MAX - 4096u)
#define KV__ADMIN_ARGS_MAX 32 /* name/value pairs of kv_admin */

uint64_t kv__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void kv__seterr(kv_client *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
  va_end(ap);
}

/* ---- consistency levels ---- */

int kv_parse_level(const char *s, int32_t *out) {
  static const struct {
    const char *name;
    int32_t v;
  } names[] = {{"one", KV_ONE},
               {"quorum", KV_QUORUM},
               {"all", KV_ALL},
               {"local_one", KV_LOCAL_ONE},
               {"local_quorum", KV_LOCAL_QUORUM},
               {"each_quorum", KV_EACH_QUORUM},
               {"default", 0}};
  if (!s || !*s || !out)
    return KV_EINVAL;
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    if (strcasecmp(s, names[i].name) == 0) {
      *out = names[i].v;
      return 0;
    }
  }
  long v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9')
      return KV_EINVAL;
    v = v * 10 + (*p - '0');
    if (v > INT32_MAX)
      return KV_EINVAL;
  }
  *out = (int32_t)v;
  return 0;
}

/* ---- results ---- */

void kv_result_free(kv_result *res) { free(res); }

/* Copies res into one malloc'd block (struct, siblings, bytes). */
static kv_result *kv__result_dup(const kv_result *res) {
  size_t bytes = res->context_len + res->state_len;
  for (size_t i = 0; i < res->nsiblings; i++)
    bytes += res->siblings[i].len;
  size_t head = sizeof(kv_result) + res->nsiblings * sizeof(kv_sibling);
  kv_result *d = malloc(head + bytes + 1);
  if (!d)
    return NULL;
  kv_sibling *sibs = (kv_sibling *)(d + 1);
  uint8_t *p = (uint8_t *)d + head;
  d->found = res->found;
  d->nsiblings = res->nsiblings;
  d->siblings = res->nsiblings ? sibs : NULL;
  for (size_t i = 0; i < res->nsiblings; i++) {
    sibs[i] = res->siblings[i];
    if (res->siblings[i].value) {
      if (res->siblings[i].len)
        memcpy(p, res->siblings[i].value, res->siblings[i].len);
      sibs[i].value = p;
      p += res->siblings[i].len;
    }
  }
  d->context = p;
  d->context_len = res->context_len;
  if (res->context_len)
    memcpy(p, res->context, res->context_len);
  p += res->context_len;
  d->state = res->state_len ? p : NULL;
  d->state_len = res->state_len;
  if (res->state_len)
    memcpy(p, res->state, res->state_len);
  d->added = res->added;
  d->removed = res->removed;
  d->value = res->value;
  return d;
}

/* ---- encoding requests ---- */

static void kv__opts_to_wire(kv_client *c, const kv_options *o,
                             wire_opts *w) {
  memset(w, 0, sizeof(*w));
  w->flags = WIRE_OPT_SLOPPY;
  if (o) {
    w->r = o->r;
    w->w = o->w;
    w->dw = o->dw;
    w->pr = o->pr;
    w->pw = o->pw;
    w->timeout_ms = o->timeout_ms;
    w->ttl_ms = o->ttl_ms;
    if (o->no_sloppy)
      w->flags = WIRE_OPT_NO_SLOPPY;
    if (o->local)
      w->flags |= WIRE_OPT_LOCAL;
  }
  if (c->region[0]) {
    w->region.ptr = (const uint8_t *)c->region;
    w->region.len = strlen(c->region);
  }
}

/* Queues an ADMIN on k: kind KV__K_RING or KV__K_ADMIN. */
int kv__admin_send(kv_client *c, kv__conn *k, int kind, const char *cmd,
                   const char *const *args, kv__wait *w, uint64_t now) {
  size_t nargs = 0;
  if (args)
    while (args[2 * nargs] && args[2 * nargs + 1] && nargs < KV__ADMIN_ARGS_MAX)
      nargs++;
  int rc = 0;
  kv__req *q = kv__req_new(c, kind, k, c->timeout_ms + KV__TIMEOUT_GRACE_MS,
                           now, &rc);
  if (!q)
    return rc;
  q->arg = w;
  size_t before = k->out.len;
  msgpack_packer pk;
  size_t start;
  wire_begin(&k->out, &pk, &start, WIRE_ADMIN, q->id, 2);
  mp_pack_cstr(&pk, cmd);
  msgpack_pack_map(&pk, nargs);
  for (size_t i = 0; i < nargs; i++) {
    mp_pack_cstr(&pk, args[2 * i]);
    mp_pack_cstr(&pk, args[2 * i + 1]);
  }
  rc = wire_end(&k->out, start);
  if (rc || k->out.oom) {
    k->out.len = before;
    k->out.oom = 0;
    kv__req_unlink(c, q);
    kv__req_recycle(c, q);
    return KV_ENOMEM;
  }
  return 0;
}

/* ---- public API: connecting ---- */

static kv_client *kv__client_new(const kv_connect_opts *opts) {
  kv_client *c = calloc(1, sizeof(*c));
  if (!c)
    return NULL;
  c->slots = calloc(KV__SLOTS_INIT, sizeof(*c->slots));
  if (!c->slots) {
    free(c);
    return NULL;
  }
  c->slot_mask = KV__SLOTS_INIT - 1;
  c->head.next = c->head.prev = &c->head;
  c->next_id = 1;
  c->min_deadline_ms = UINT64_MAX;
  c->route = !(opts && opts->no_route);
  c->connect_timeout_ms = opts && opts->connect_timeout_ms
                              ? opts->connect_timeout_ms
                              : KV__CONNECT_TIMEOUT_MS_DEFAULT;
  c->timeout_ms =
      opts && opts->timeout_ms ? opts->timeout_ms : KV__TIMEOUT_MS_DEFAULT;
  if (opts && opts->region)
    snprintf(c->region, sizeof(c->region), "%s", opts->region);
  return c;
}

/* Takes the TLS settings and credentials of opts into c. Returns 0, or
 * KV_EINVAL/KV_ENOMEM with c->errmsg set. */
static int kv__client_secure(kv_client *c, const kv_connect_opts *opts) {
  if (!opts)
    return 0;
  if (opts->tls || opts->tls_ca || opts->tls_cert || opts->tls_key ||
      opts->tls_server_name) {
    kvtls_opts t = {.ca_file = opts->tls_ca,
                    .cert_file = opts->tls_cert,
                    .key_file = opts->tls_key,
                    .server_name = opts->tls_server_name};
    char why[KVTLS_ERR_MAX];
    c->tls = kvtls_ctx_new(&t, why, sizeof(why));
    if (!c->tls) {
      kv__seterr(c, "TLS: %s", why);
      return KV_EINVAL;
    }
  }
  if (!opts->user) {
    if (opts->password) {
      kv__seterr(c, "a password needs a user");
      return KV_EINVAL;
    }
    return 0;
  }
  size_t ulen = strlen(opts->user);
  size_t plen = opts->password_len || !opts->password
                    ? opts->password_len
                    : strlen(opts->password);
  if (ulen == 0 || ulen >= WIRE_NAME_MAX) {
    kv__seterr(c, "a user name is 1 to %d bytes", WIRE_NAME_MAX - 1);
    return KV_EINVAL;
  }
  if (plen > WIRE_SECRET_MAX) {
    kv__seterr(c, "a password is at most %u bytes", (unsigned)WIRE_SECRET_MAX);
    return KV_EINVAL;
  }
  c->user = strdup(opts->user);
  c->secret = malloc(plen ? plen : 1);
  if (!c->user || !c->secret) {
    kv__seterr(c, "out of memory");
    return KV_ENOMEM;
  }
  if (plen)
    memcpy(c->secret, opts->password, plen);
  c->secret_len = plen;
  return 0;
}

/* Polls c until conns[0] is READY or DOWN. */
static void kv__wait_home(kv_client *c) {
  kv__conn *home = c->conns[0];
  while (home->state != KV__READY && home->state != KV__DOWN) {
    kv_client *cs[1] = {c};
    if (kv_poll(cs, 1, -1) < 0)
      break;
  }
}

int kv_connect(const char *hosts, const kv_connect_opts *opts,
               kv_client **out, char *err, size_t errlen) {
  if (err && errlen)
    err[0] = '\0';
  if (!out || !hosts || !*hosts) {
    if (err && errlen)
      snprintf(err, errlen, "no host given");
    return KV_EINVAL;
  }
  *out = NULL;
  kv_client *c = kv__client_new(opts);
  if (!c) {
    if (err && errlen)
      snprintf(err, errlen, "out of memory");
    return KV_ENOMEM;
  }
  int rc = kv__client_secure(c, opts);
  if (rc) {
    if (err && errlen)
      snprintf(err, errlen, "%s", c->errmsg);
    kv_close(c);
    return rc;
  }
  rc = KV_ECONN;
  const char *p = hosts;
  size_t tried = 0;
  while (*p && tried < KV__HOSTS_MAX) {
    const char *comma = strchr(p, ',');
    size_t l = comma ? (size_t)(comma - p) : strlen(p);
    char addr[KV__ADDR_MAX];
    if (l == 0 || l >= sizeof(addr)) {
      kv__seterr(c, "bad host \"%.*s\"", (int)(l < 64 ? l : 64), p);
      rc = KV_EINVAL;
    } else {
      memcpy(addr, p, l);
      addr[l] = '\0';
      tried++;
      if (c->nconns == 0) {
        if (!kv__conn_new(c, addr)) {
          rc = KV_ENOMEM;
          break;
        }
      } else {
        strcpy(c->conns[0]->addr, addr);
      }
      rc = kv__conn_open(c, c->conns[0], kv__now_ms());
      if (rc == 0) {
        kv__wait_home(c);
        if (c->conns[0]->state == KV__READY)
          break;
        /* The node's answer to HELLO says why; anything else is ECONN. */
        int why = c->conns[0]->fail_code;
        rc = why == KV_EVERSION || why == KV_EAUTH || why == KV_EPERM
                 ? why
                 : KV_ECONN;
        if (rc == KV_EAUTH || rc == KV_EPERM)
          break; /* refused credentials: do not try them on more nodes */
      }
    }
    if (!comma)
      break;
    p = comma + 1;
  }
  if (c->nconns == 0 || c->conns[0]->state != KV__READY) {
    if (err && errlen)
      snprintf(err, errlen, "%s", c->errmsg[0] ? c->errmsg : kv_strerror(rc));
    kv_close(c);
    return rc ? rc : KV_ECONN;
  }
  if (c->route) {
    uint64_t now = kv__now_ms();
    kv__ring_refresh(c, now);
    while (c->ring_pending) {
      kv_client *cs[1] = {c};
      if (kv_poll(cs, 1, -1) < 0)
        break;
    }
  }
  c->errmsg[0] = '\0';
  *out = c;
  return 0;
}

void kv_close(kv_client *c) {
  if (!c)
    return;
  /* Fail what is in flight; the callbacks must not use c afterwards. */
  for (size_t i = 0; i < c->nconns; i++) {
    kv__conn *k = c->conns[i];
    kv__conn_close_fd(k);
  }
  while (c->head.next != &c->head) {
    kv__req *q = c->head.next;
    kv__req_unlink(c, q);
    char text[64];
    snprintf(text, sizeof(text), "the client was closed");
    if (q->kind == KV__K_RING)
      q->kind = KV__K_HELLO; /* no ring handling while closing */
    kv__complete(c, q, KV_ECLOSED, text, NULL);
  }
  for (size_t i = 0; i < c->nconns; i++)
    kv__conn_free(c->conns[i]);
  free(c->conns);
  while (c->free_reqs) {
    kv__req *q = c->free_reqs;
    c->free_reqs = q->next;
    free(q);
  }
  free(c->slots);
  free(c->sibs);
  kv__ring_free(c->ring);
  kvtls_ctx_free(c->tls);
  free(c->user);
  if (c->secret)
    explicit_bzero(c->secret, c->secret_len);
  free(c->secret);
  free(c);
}

const char *kv_errmsg(const kv_client *c) {
  if (!c)
    return "no client";
  return c->errmsg;
}

size_t kv_inflight(const kv_client *c) { return c ? c->nuser : 0; }

/* ---- public API: asynchronous requests ---- */

static int kv__submit(kv_client *c, int kind, const void *key, size_t klen,
                      const void *val, size_t vlen, const void *ctx,
                      size_t ctx_len, const kv_options *o, kv_cb cb,
                      void *arg) {
  if (!c || !cb || (!key && klen))
    return KV_EINVAL;
  if (klen > KV_KEY_MAX) {
    kv__seterr(c, "key of %zu bytes is over the limit of %u", klen,
               (unsigned)KV_KEY_MAX);
    return KV_ETOOBIG;
  }
  if (vlen > KV__VALUE_MAX || ctx_len > KV__VALUE_MAX) {
    kv__seterr(c, "value of %zu bytes is too large", vlen);
    return KV_ETOOBIG;
  }
  uint64_t now = kv__now_ms();
  kv__conn *k = kv__route(c, key ? key : "", klen, now);
  if (!k)
    return KV_ECONN;
  uint32_t tmo = o && o->timeout_ms ? o->timeout_ms : c->timeout_ms;
  int rc = 0;
  kv__req *q = kv__req_new(c, kind, k, tmo, now, &rc);
  if (!q) {
    kv__seterr(c, "cannot queue a request: %s", kv_strerror(rc));
    return rc;
  }
  q->deadline_ms += KV__TIMEOUT_GRACE_MS;
  if (q->deadline_ms < c->min_deadline_ms)
    c->min_deadline_ms = q->deadline_ms;
  q->cb = cb;
  q->arg = arg;
  wire_msg m;
  memset(&m, 0, sizeof(m));
  m.type = kind == KV__K_GET                            ? WIRE_GET
           : kind == KV__K_PUT || kind == KV__K_UPDATE ? WIRE_PUT
                                                       : WIRE_DEL;
  m.req_id = q->id;
  m.key.ptr = key ? key : (const void *)"";
  m.key.len = klen;
  m.value.ptr = val ? val : (const void *)"";
  m.value.len = vlen;
  m.context.ptr = ctx;
  m.context.len = ctx ? ctx_len : 0;
  kv__opts_to_wire(c, o, &m.opts);
  if (kind == KV__K_UPDATE)
    m.opts.flags |= WIRE_OPT_TYPED;
  size_t before = k->out.len;
  rc = wire_encode(&k->out, &m);
  if (rc || k->out.oom) {
    k->out.len = before;
    k->out.oom = 0;
    kv__req_unlink(c, q);
    kv__req_recycle(c, q);
    kv__seterr(c, "cannot encode a request: %s", kv_strerror(KV_ENOMEM));
    return KV_ENOMEM;
  }
  return 0;
}

int kv_get_async(kv_client *c, const void *key, size_t klen,
                 const kv_options *o, kv_cb cb, void *arg) {
  return kv__submit(c, KV__K_GET, key, klen, NULL, 0, NULL, 0, o, cb, arg);
}

int kv_put_async(kv_client *c, const void *key, size_t klen, const void *val,
                 size_t vlen, const void *ctx, size_t ctx_len,
                 const kv_options *o, kv_cb cb, void *arg) {
  return kv__submit(c, KV__K_PUT, key, klen, val, vlen, ctx, ctx_len, o, cb,
                    arg);
}

int kv_del_async(kv_client *c, const void *key, size_t klen, const void *ctx,
                 size_t ctx_len, const kv_options *o, kv_cb cb, void *arg) {
  return kv__submit(c, KV__K_DEL, key, klen, NULL, 0, ctx, ctx_len, o, cb,
                    arg);
}

int kv_update_async(kv_client *c, const void *key, size_t klen,
                    const void *op, size_t oplen, const kv_options *o,
                    kv_cb cb, void *arg) {
  if (!op || !oplen) {
    if (c)
      kv__seterr(c, "an update needs an operation (crdt.h's builders)");
    return KV_EINVAL;
  }
  return kv__submit(c, KV__K_UPDATE, key, klen, op, oplen, NULL, 0, o, cb,
                    arg);
}

/* ---- public API: blocking requests ---- */

static void kv__block_cb(void *arg, int status, const char *errmsg,
                         const kv_result *res) {
  kv__wait *w = arg;
  w->done = true;
  w->status = status;
  if (status) {
    snprintf(w->c->errmsg, sizeof(w->c->errmsg), "%s",
             errmsg ? errmsg : kv_strerror(status));
    return;
  }
  if (w->want) {
    w->res = kv__result_dup(res);
    if (!w->res) {
      w->status = KV_ENOMEM;
      snprintf(w->c->errmsg, sizeof(w->c->errmsg), "out of memory");
    }
  }
}

static int kv__block(kv_client *c, kv__wait *w) {
  while (!w->done) {
    kv_client *cs[1] = {c};
    int rc = kv_poll(cs, 1, -1);
    if (rc < 0) {
      /* kv_poll failed before the request could end; it is still queued
       * with w as its argument, so finish it here. */
      kv__seterr(c, "poll failed: %s", kv_strerror(rc));
      for (kv__req *q = c->head.next; q != &c->head; q = q->next) {
        if (q->arg == w) {
          kv__req_unlink(c, q);
          kv__complete(c, q, rc, c->errmsg, NULL);
          break;
        }
      }
      return rc;
    }
  }
  return w->status;
}

/* A blocking request of kind: submits it and polls until it ends. */
static int kv__blocking(kv_client *c, int kind, const void *key, size_t klen,
                        const void *val, size_t vlen, const void *ctx,
                        size_t ctx_len, const kv_options *o,
                        kv_result **out) {
  if (out)
    *out = NULL;
  kv__wait w = {.c = c, .want = out != NULL};
  int rc = kv__submit(c, kind, key, klen, val, vlen, ctx, ctx_len, o,
                      kv__block_cb, &w);
  if (rc)
    return rc;
  rc = kv__block(c, &w);
  if (out)
    *out = w.res;
  else
    kv_result_free(w.res);
  return rc;
}

int kv_get(kv_client *c, const void *key, size_t klen, const kv_options *o,
           kv_result **out) {
  return kv__blocking(c, KV__K_GET, key, klen, NULL, 0, NULL, 0, o, out);
}

int kv_put(kv_client *c, const void *key, size_t klen, const void *val,
           size_t vlen, const void *ctx, size_t ctx_len, const kv_options *o,
           kv_result **out) {
  return kv__blocking(c, KV__K_PUT, key, klen, val, vlen, ctx, ctx_len, o,
                      out);
}

int kv_del(kv_client *c, const void *key, size_t klen, const void *ctx,
           size_t ctx_len, const kv_options *o, kv_result **out) {
  return kv__blocking(c, KV__K_DEL, key, klen, NULL, 0, ctx, ctx_len, o, out);
}

int kv_update(kv_client *c, const void *key, size_t klen, const void *op,
              size_t oplen, const kv_options *o, kv_result **out) {
  if (out)
    *out = NULL;
  if (!op || !oplen) {
    if (c)
      kv__seterr(c, "an update needs an operation (crdt.h's builders)");
    return KV_EINVAL;
  }
  return kv__blocking(c, KV__K_UPDATE, key, klen, op, oplen, NULL, 0, o, out);
}

int kv__admin_msgpack(kv_client *c, const char *cmd, const char *const *args,
                      uint8_t **out, size_t *len) {
  if (out)
    *out = NULL;
  if (!c || !cmd || !out || !len)
    return KV_EINVAL;
  uint64_t now = kv__now_ms();
  kv__conn *home = c->conns[0];
  if (!kv__conn_usable(c, home, now))
    return KV_ECONN;
  kv__wait w = {.c = c};
  int rc = kv__admin_send(c, home, KV__K_ADMIN, cmd, args, &w, now);
  if (rc) {
    kv__seterr(c, "cannot queue the admin command: %s", kv_strerror(rc));
    return rc;
  }
  rc = kv__block(c, &w);
  if (rc) {
    free(w.raw);
    return rc;
  }
  *out = w.raw;
  *len = w.raw_len;
  return 0;
}

int kv_admin(kv_client *c, const char *cmd, const char *const *args,
             char **json) {
  if (json)
    *json = NULL;
  if (!json)
    return KV_EINVAL;
  uint8_t *raw;
  size_t len;
  int rc = kv__admin_msgpack(c, cmd, args, &raw, &len);
  if (rc)
    return rc;
  kvbuf b;
  kvbuf_init(&b);
  rc = kv_json_from_msgpack(&b, raw, len);
  free(raw);
  if (rc) {
    kvbuf_free(&b);
    kv__seterr(c, "could not render the admin reply as JSON: %s",
               kv_strerror(rc));
    return rc;
  }
  *json = (char *)kvbuf_steal(&b, &len);
  return 0;
}
