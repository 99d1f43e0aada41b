/*
 * fuzz_http.c: libFuzzer target for the request targets of kvorumd's HTTP
 * front end (node/http_req.h): http_target_parse, which reads the path and
 * query of every HTTP request, and http_unescape.
 *
 * The input is a request target as h2o hands it over: path and query, any
 * bytes. Beyond "no crash" (ASan, UBSan) it checks:
 *   - the result is 0, KV_EINVAL or KV_ETOOBIG (only for a key); after an
 *     error err holds a non-empty message NUL-terminated inside errlen;
 *     nothing is written past errlen, and a small errlen gets the same
 *     result with the message cut short;
 *   - the route is the one the path names (docs/http.md), compared with a
 *     table here; a path that names nothing is never an error and leaves
 *     the options unset; only HTTP_R_KV has a key, only HTTP_R_ADMIN an
 *     admin command, equal to the path's;
 *   - HTTP_R_KV: 1 <= klen <= KV_KEY_MAX, and the result and key are what
 *     a reference percent-decoder (here) gives for the path after /kv/,
 *     then what the query alone gives (the same query behind /health);
 *   - the levels lie in WIRE_Q_EACH_QUORUM..WIRE_Q_NUMBER_MAX; flags and
 *     region stay empty;
 *   - round trip: the options written back as a query (level names from
 *     wire_quorum_str, with empty parameters between them, which are
 *     passed over) and the key with every byte escaped parse to the same
 *     key and options; the whole input as a key, every byte escaped,
 *     is that key;
 *   - the key limit: for one input in FZ_LONG_EVERY, the input's path
 *     behind "/kv/" and filler that leaves the key a few bytes short of
 *     KV_KEY_MAX gives KV_ETOOBIG exactly when the reference key is longer
 *     than KV_KEY_MAX, and otherwise that key;
 *   - http_unescape of the whole input into exact-size buffers of small
 *     caps: the reference length when it fits, -2 when it does not, -1 for
 *     a malformed escape before that; never a byte past the cap.
 * Depends on: node/http_req.c (compiled in), kvproto.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_req.h"
#include "kv_err.h"
#include "tests/fuzz/fz.h"
#include "wire.h"

#define FZ_UNESCAPE_CAP_MAX 16 /* http_unescape runs with caps 0..this */
#define FZ_SMALL_ERR_MAX 24    /* the small errlen is 1..this */
#define FZ_LONG_EVERY 64       /* one input in this many gets a long key */
#define FZ_LONG_SLACK 8        /* the filler leaves up to this many bytes */
#define FZ_QUERY_MAX 256       /* bytes of a written-back query */
#define FZ_ERR_FILL 0xa5       /* what err holds before a parse */

/* http_target holds a KV_KEY_MAX key: static, one per use. */
static http_target fz_t, fz_t2;
static char fz_err[WIRE_ERRMSG_MAX], fz_err2[WIRE_ERRMSG_MAX];

static void *fz_alloc(size_t n) {
  void *p = malloc(n ? n : 1);
  FZ_CHECK(p != NULL);
  return p;
}

static uint64_t fz_fnv(const void *p, size_t n) {
  const uint8_t *b = p;
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

/* Reference percent-decoder: decodes s[0..n) into out (room for n bytes)
 * up to the first malformed escape. Returns the bytes written; *bad tells
 * whether it stopped at a malformed escape. */
static size_t fz_ref_decode(const uint8_t *s, size_t n, uint8_t *out,
                            int *bad) {
  size_t o = 0;
  *bad = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '%') {
      out[o++] = s[i];
      continue;
    }
    if (n - i < 3 || !isxdigit(s[i + 1]) || !isxdigit(s[i + 2])) {
      *bad = 1;
      return o;
    }
    char hex[3] = {(char)s[i + 1], (char)s[i + 2], '\0'};
    out[o++] = (uint8_t)strtoul(hex, NULL, 16);
    i += 2;
  }
  return o;
}

/* What http_unescape must return, with cap, for input whose reference
 * decode wrote len bytes and stopped at a malformed escape if bad. */
static long fz_expect(size_t len, int bad, size_t cap) {
  if (len > cap)
    return -2;
  return bad ? -1 : (long)len;
}

/* Parses t[0..n) into *out with err[0..errlen) filled with FZ_ERR_FILL
 * first (err has room for WIRE_ERRMSG_MAX bytes). Checks the result's
 * range, the message after an error, and that nothing past errlen was
 * written. */
static int fz_parse(const char *t, size_t n, http_target *out, char *err,
                    size_t errlen) {
  memset(err, FZ_ERR_FILL, WIRE_ERRMSG_MAX);
  int rc = http_target_parse(t, n, out, err, errlen);
  FZ_CHECK(rc == 0 || rc == KV_EINVAL || rc == KV_ETOOBIG);
  for (size_t i = errlen; i < WIRE_ERRMSG_MAX; i++)
    FZ_CHECK((uint8_t)err[i] == FZ_ERR_FILL);
  if (rc) {
    FZ_CHECK(memchr(err, '\0', errlen) != NULL);
    FZ_CHECK(errlen == 1 || err[0] != '\0');
  }
  return rc;
}

static int fz_opts_equal(const wire_opts *a, const wire_opts *b) {
  return a->r == b->r && a->pr == b->pr && a->w == b->w && a->dw == b->dw &&
         a->pw == b->pw && a->timeout_ms == b->timeout_ms &&
         a->ttl_ms == b->ttl_ms && a->flags == b->flags &&
         a->region.len == b->region.len;
}

static int fz_opts_unset(const wire_opts *o) {
  static const wire_opts unset; /* WIRE_Q_DEFAULT is 0 */
  return fz_opts_equal(o, &unset);
}

/* The route docs/http.md gives the path p[0..n); *admin is the admin
 * command's name for HTTP_R_ADMIN. */
static http_route fz_route_of(const char *p, size_t n, const char **admin) {
  static const struct {
    const char *path;
    http_route route;
  } exact[] = {{"/metrics", HTTP_R_METRICS},
               {"/health", HTTP_R_HEALTH},
               {"/ready", HTTP_R_READY},
               {"/admin/status", HTTP_R_ADMIN},
               {"/admin/ring", HTTP_R_ADMIN},
               {"/admin/stats", HTTP_R_ADMIN},
               {"/admin/transfers", HTTP_R_ADMIN}};
  *admin = "";
  for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
    if (n == strlen(exact[i].path) && memcmp(p, exact[i].path, n) == 0) {
      if (exact[i].route == HTTP_R_ADMIN)
        *admin = exact[i].path + strlen("/admin/");
      return exact[i].route;
    }
  if (n > 4 && memcmp(p, "/kv/", 4) == 0)
    return HTTP_R_KV;
  return HTTP_R_UNKNOWN;
}

/* Writes o as a query (no '?') into q, with empty parameters around and
 * between the others ("&r=2&&pr=default...&"). Returns its length. */
static size_t fz_query_of(const wire_opts *o, char *q) {
  static const char *const names[] = {"r", "pr", "w", "dw", "pw"};
  const int32_t levels[] = {o->r, o->pr, o->w, o->dw, o->pw};
  char b[32];
  int n = 0;
  for (size_t i = 0; i < 5; i++)
    n += snprintf(q + n, FZ_QUERY_MAX - (size_t)n, "%s%s=%s", i ? "&&" : "&",
                  names[i], wire_quorum_str(levels[i], b, sizeof(b)));
  if (o->timeout_ms)
    n += snprintf(q + n, FZ_QUERY_MAX - (size_t)n, "&timeout=%" PRIu32,
                  o->timeout_ms);
  if (o->ttl_ms)
    n += snprintf(q + n, FZ_QUERY_MAX - (size_t)n, "&ttl=%" PRIu64,
                  o->ttl_ms / 1000u);
  n += snprintf(q + n, FZ_QUERY_MAX - (size_t)n, "&");
  FZ_CHECK(n > 0 && n < FZ_QUERY_MAX);
  return (size_t)n;
}

/* Parses "/kv/" + key[0..n) with every byte escaped (upper or lower case
 * hex as lower_mask's bits say) + "?" + query[0..qn) into fz_t2. */
static int fz_parse_escaped(const uint8_t *key, size_t n, const char *query,
                            size_t qn, uint64_t lower_mask) {
  static const char hex[2][17] = {"0123456789ABCDEF", "0123456789abcdef"};
  size_t len = 4 + 3 * n + 1 + qn;
  char *t = fz_alloc(len);
  memcpy(t, "/kv/", 4);
  for (size_t i = 0; i < n; i++) {
    const char *h = hex[(lower_mask >> (i % 64)) & 1];
    t[4 + 3 * i] = '%';
    t[4 + 3 * i + 1] = h[key[i] >> 4];
    t[4 + 3 * i + 2] = h[key[i] & 15];
  }
  t[4 + 3 * n] = '?';
  memcpy(t + 4 + 3 * n + 1, query, qn);
  int rc = fz_parse(t, len, &fz_t2, fz_err2, sizeof(fz_err2));
  free(t);
  return rc;
}

/* The result of the query q[0..n) alone (behind /health), into fz_t2. */
static int fz_query_rc(const char *q, size_t n) {
  char *t = fz_alloc(8 + n);
  memcpy(t, "/health?", 8);
  memcpy(t + 8, q, n);
  int rc = fz_parse(t, 8 + n, &fz_t2, fz_err2, sizeof(fz_err2));
  free(t);
  return rc;
}

/* The input's path behind "/kv/" and filler that leaves the key slack
 * bytes short of KV_KEY_MAX (query kept). */
static void fz_long_key(const char *data, size_t size, size_t pl, size_t slack,
                        int rq) {
  size_t fill = KV_KEY_MAX - slack;
  size_t len = 4 + fill + size;
  char *t = fz_alloc(len);
  memcpy(t, "/kv/", 4);
  memset(t + 4, 'k', fill);
  memcpy(t + 4 + fill, data, size);
  uint8_t *ref = fz_alloc(pl);
  int bad;
  size_t rl = fz_ref_decode((const uint8_t *)data, pl, ref, &bad);
  long want = fz_expect(fill + rl, bad, KV_KEY_MAX);
  int rc = fz_parse(t, len, &fz_t2, fz_err2, sizeof(fz_err2));
  if (want == -1) {
    FZ_CHECK(rc == KV_EINVAL);
  } else if (want == -2) {
    FZ_CHECK(rc == KV_ETOOBIG);
  } else {
    FZ_CHECK(rc == rq && fz_t2.route == HTTP_R_KV);
    FZ_CHECK(fz_t2.klen == fill + rl && fz_t2.klen <= KV_KEY_MAX);
    FZ_CHECK(fz_t2.key[0] == 'k' && fz_t2.key[fill - 1] == 'k');
    FZ_CHECK(rl == 0 || memcmp(fz_t2.key + fill, ref, rl) == 0);
  }
  free(ref);
  free(t);
}

/* http_unescape of the input with small caps, into exact-size buffers. */
static void fz_unescape(const uint8_t *data, size_t size) {
  uint8_t *ref = fz_alloc(size);
  int bad;
  size_t rl = fz_ref_decode(data, size, ref, &bad);
  FZ_CHECK(rl <= size);
  for (size_t cap = 0; cap <= FZ_UNESCAPE_CAP_MAX; cap++) {
    uint8_t *out = fz_alloc(cap);
    long n = http_unescape((const char *)data, size, out, cap);
    FZ_CHECK(n == fz_expect(rl, bad, cap));
    FZ_CHECK(n <= 0 || memcmp(out, ref, (size_t)n) == 0);
    free(out);
  }
  /* Decoding never grows: a cap of the input's size always fits. */
  uint8_t *out = fz_alloc(size);
  long n = http_unescape((const char *)data, size, out, size);
  FZ_CHECK(n == (bad ? -1 : (long)rl));
  FZ_CHECK(n <= 0 || memcmp(out, ref, (size_t)n) == 0);
  free(out);
  free(ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *t = (const char *)data;
  uint64_t h = fz_fnv(data, size);
  const char *qm = size ? memchr(t, '?', size) : NULL;
  size_t pl = qm ? (size_t)(qm - t) : size;
  const char *q = qm ? qm + 1 : "";
  size_t ql = qm ? size - pl - 1 : 0;

  int rc = fz_parse(t, size, &fz_t, fz_err, sizeof(fz_err));
  const http_target *r = &fz_t;

  /* A small err: the same result, the message cut short. */
  size_t small = 1 + h % FZ_SMALL_ERR_MAX;
  FZ_CHECK(fz_parse(t, size, &fz_t2, fz_err2, small) == rc);
  if (rc) {
    size_t full = strlen(fz_err);
    size_t want = full < small - 1 ? full : small - 1;
    FZ_CHECK(strlen(fz_err2) == want);
    FZ_CHECK(memcmp(fz_err2, fz_err, want) == 0);
  }

  /* The route, the key, the admin command. */
  const char *admin;
  http_route route = fz_route_of(t, pl, &admin);
  if (rc == KV_ETOOBIG)
    FZ_CHECK(route == HTTP_R_KV);
  if (route == HTTP_R_UNKNOWN)
    FZ_CHECK(rc == 0 && fz_opts_unset(&r->opts));
  if (rc == 0) {
    FZ_CHECK(r->route == route && strcmp(r->admin, admin) == 0);
    FZ_CHECK(route == HTTP_R_KV ? r->klen >= 1 && r->klen <= KV_KEY_MAX
                                : r->klen == 0);
  }

  /* The options' ranges, and the query alone decides them. */
  const wire_opts *o = &r->opts;
  const int32_t levels[] = {o->r, o->pr, o->w, o->dw, o->pw};
  for (size_t i = 0; i < 5; i++)
    FZ_CHECK(levels[i] >= WIRE_Q_EACH_QUORUM && levels[i] <= WIRE_Q_NUMBER_MAX);
  FZ_CHECK(o->flags == 0 && o->region.len == 0);
  int rq = route == HTTP_R_UNKNOWN ? 0 : fz_query_rc(q, ql);
  if (route != HTTP_R_UNKNOWN && route != HTTP_R_KV) {
    FZ_CHECK(rc == rq);
    if (rc == 0)
      FZ_CHECK(fz_opts_equal(o, &fz_t2.opts));
  }

  /* A key: the reference decoder, then the query. */
  if (route == HTTP_R_KV) {
    uint8_t *ref = fz_alloc(pl - 4);
    int bad;
    size_t rl = fz_ref_decode(data + 4, pl - 4, ref, &bad);
    long want = fz_expect(rl, bad, KV_KEY_MAX);
    if (want == -1) {
      FZ_CHECK(rc == KV_EINVAL);
    } else if (want == -2) {
      FZ_CHECK(rc == KV_ETOOBIG);
    } else {
      FZ_CHECK(rc == rq);
      FZ_CHECK(r->klen == rl && memcmp(r->key, ref, rl) == 0);
      if (rc == 0)
        FZ_CHECK(fz_opts_equal(o, &fz_t2.opts));
    }
    free(ref);
  }

  /* Round trips: the options as a query, the key escaped. */
  if (rc == 0 && route != HTTP_R_UNKNOWN) {
    char query[FZ_QUERY_MAX];
    size_t qn = fz_query_of(o, query);
    FZ_CHECK(fz_query_rc(query, qn) == 0);
    FZ_CHECK(fz_opts_equal(o, &fz_t2.opts));
    if (route == HTTP_R_KV) {
      FZ_CHECK(fz_parse_escaped(r->key, r->klen, query, qn, h) == 0);
      FZ_CHECK(fz_t2.route == HTTP_R_KV && fz_t2.klen == r->klen);
      FZ_CHECK(memcmp(fz_t2.key, r->key, r->klen) == 0);
      FZ_CHECK(fz_opts_equal(o, &fz_t2.opts));
    }
  }
  /* The whole input as a key. */
  if (size) {
    int rk = fz_parse_escaped(data, size, "", 0, ~h);
    FZ_CHECK(rk == (size <= KV_KEY_MAX ? 0 : KV_ETOOBIG));
    if (rk == 0)
      FZ_CHECK(fz_t2.klen == size && memcmp(fz_t2.key, data, size) == 0 &&
               fz_opts_unset(&fz_t2.opts));
  }

  /* A key at the limit. */
  if ((h >> 8) % FZ_LONG_EVERY == 0) {
    if (route == HTTP_R_UNKNOWN)
      rq = fz_query_rc(q, ql);
    fz_long_key(t, size, pl, (h >> 16) % (FZ_LONG_SLACK + 1), rq);
  }

  fz_unescape(data, size);
  return 0;
}
