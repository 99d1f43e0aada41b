/*
 * kvorum.c: libkvorum's public API (kvorum.h is the contract): the
 * kv_client, connecting and closing, consistency levels, results, and the
 * asynchronous and blocking requests. kv_poll, which drives them, is in
 * poll.c.
 *
 * The library's other files, whose internals kvorum_int.h declares:
 * conn.c (connections), route.c (the ring copy and routing), req.c
 * (the request table and completion), poll.c (the I/O loop and timeouts)
 * and json.c (base64 and JSON rendering for kv_admin).
 *
 * Depends on: kvorum_int.h, kvproto (wire.h, mp.h, kv_err.h).
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
  size_t bytes = res->context_len;
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
  int rc = KV_ECONN;
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
        rc = c->conns[0]->fail_code == KV_EVERSION ? KV_EVERSION : KV_ECONN;
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
  m.type = kind == KV__K_GET ? WIRE_GET : kind == KV__K_PUT ? WIRE_PUT
                                                            : WIRE_DEL;
  m.req_id = q->id;
  m.key.ptr = key ? key : (const void *)"";
  m.key.len = klen;
  m.value.ptr = val ? val : (const void *)"";
  m.value.len = vlen;
  m.context.ptr = ctx;
  m.context.len = ctx ? ctx_len : 0;
  kv__opts_to_wire(c, o, &m.opts);
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

int kv_get(kv_client *c, const void *key, size_t klen, const kv_options *o,
           kv_result **out) {
  if (out)
    *out = NULL;
  kv__wait w = {.c = c, .want = out != NULL};
  int rc = kv_get_async(c, key, klen, o, kv__block_cb, &w);
  if (rc)
    return rc;
  rc = kv__block(c, &w);
  if (out)
    *out = w.res;
  else
    kv_result_free(w.res);
  return rc;
}

int kv_put(kv_client *c, const void *key, size_t klen, const void *val,
           size_t vlen, const void *ctx, size_t ctx_len, const kv_options *o,
           kv_result **out) {
  if (out)
    *out = NULL;
  kv__wait w = {.c = c, .want = out != NULL};
  int rc = kv_put_async(c, key, klen, val, vlen, ctx, ctx_len, o,
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

int kv_del(kv_client *c, const void *key, size_t klen, const void *ctx,
           size_t ctx_len, const kv_options *o, kv_result **out) {
  if (out)
    *out = NULL;
  kv__wait w = {.c = c, .want = out != NULL};
  int rc = kv_del_async(c, key, klen, ctx, ctx_len, o, kv__block_cb, &w);
  if (rc)
    return rc;
  rc = kv__block(c, &w);
  if (out)
    *out = w.res;
  else
    kv_result_free(w.res);
  return rc;
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
