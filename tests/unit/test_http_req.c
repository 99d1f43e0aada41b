/*
 * test_http_req.c: unit tests of kvorumd's HTTP request targets
 * (node/http_req.h): every route and the paths next to them that name no
 * resource, percent-decoding (http_unescape and keys: %2F, %00, '+',
 * malformed and truncated escapes, a key of exactly KV_KEY_MAX bytes and
 * one over), the query parameters r, pr, w, dw, pw (numbers and names) and
 * timeout, unknown, empty, over-long and NUL-holding parameters, and the
 * error message: after every error NUL-terminated inside errlen, never
 * written past it.
 * Every target is parsed from an exact-size copy, so a sanitizer build
 * sees any read past it.
 * Depends on: node/http_req.c (compiled in), kvproto.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_req.h"
#include "kv_err.h"
#include "wire.h"

#define CHECK_MESSAGE
#include "unit/check.h"

#define ERR_SIZE 256 /* the err buffer the tests hand to the parser */
#define ERR_FILL 'x' /* what err holds before each parse */
#define SHOWN_MAX 80 /* bytes of a target a failure prints */

/* http_target holds a KV_KEY_MAX key: one for the whole program. */
static http_target tgt;
static char err[ERR_SIZE];
/* The target of the last parse, for failure messages. */
static const char *cur = "";

/* CHECK with the target under test in the failure message. */
#define CHECK_T(cond) CHECK(cond, "target \"%.*s\"", SHOWN_MAX, cur)

/* Returns n bytes (at least 1) from malloc, or ends the test. The caller
 * frees them. */
static void *alloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  return p;
}

/* Parses s[0..n) from an exact-size copy into tgt with err (filled with
 * ERR_FILL first) of errlen bytes. On an error checks that err holds a
 * non-empty message, NUL-terminated inside errlen. Returns the result. */
static int parse_n_err(const char *s, size_t n, size_t errlen) {
  char *copy = alloc(n);
  memcpy(copy, s, n);
  memset(err, ERR_FILL, sizeof(err));
  cur = s;
  int rc = http_target_parse(copy, n, &tgt, err, errlen);
  free(copy);
  CHECK_T(rc == 0 || rc == KV_EINVAL || rc == KV_ETOOBIG);
  if (rc && errlen) {
    CHECK_T(memchr(err, '\0', errlen) != NULL);
    CHECK_T(errlen == 1 || err[0] != '\0');
  }
  return rc;
}

static int parse_n(const char *s, size_t n) {
  return parse_n_err(s, n, sizeof(err));
}

static int parse(const char *s) { return parse_n(s, strlen(s)); }

/* Parses "/kv/k?" + query into tgt. Returns the result. */
static int parse_query(const char *query) {
  static char t[128]; /* cur points at it until the next parse */
  snprintf(t, sizeof(t), "/kv/k?%s", query);
  return parse(t);
}

/* Whether err holds a NUL-terminated message with s in it. */
static int err_has(const char *s) {
  return memchr(err, '\0', sizeof(err)) && strstr(err, s);
}

/* Whether the last parse left no option set. */
static int opts_unset(void) {
  const wire_opts *o = &tgt.opts;
  return o->r == WIRE_Q_DEFAULT && o->pr == WIRE_Q_DEFAULT &&
         o->w == WIRE_Q_DEFAULT && o->dw == WIRE_Q_DEFAULT &&
         o->pw == WIRE_Q_DEFAULT && o->timeout_ms == 0 && o->flags == 0 &&
         o->region.len == 0;
}

/* Whether the last parse gave HTTP_R_KV with the key k[0..n). */
static int key_is(const void *k, size_t n) {
  return tgt.route == HTTP_R_KV && tgt.klen == n &&
         (n == 0 || memcmp(tgt.key, k, n) == 0);
}

static void test_routes(void) {
  static const struct {
    const char *target;
    http_route route;
    const char *admin;
  } cases[] = {
      {"/metrics", HTTP_R_METRICS, ""},
      {"/health", HTTP_R_HEALTH, ""},
      {"/ready", HTTP_R_READY, ""},
      {"/kv/k", HTTP_R_KV, ""},
      {"/admin/status", HTTP_R_ADMIN, "status"},
      {"/admin/ring", HTTP_R_ADMIN, "ring"},
      {"/admin/stats", HTTP_R_ADMIN, "stats"},
      {"/admin/transfers", HTTP_R_ADMIN, "transfers"},
      {"/metrics?", HTTP_R_METRICS, ""},
      {"/admin/ring?", HTTP_R_ADMIN, "ring"},
      /* Next to a route, but none. */
      {"", HTTP_R_UNKNOWN, ""},
      {"/", HTTP_R_UNKNOWN, ""},
      {"/kv", HTTP_R_UNKNOWN, ""},
      {"/kv/", HTTP_R_UNKNOWN, ""},
      {"/kv/?r=1", HTTP_R_UNKNOWN, ""},
      {"/kvx", HTTP_R_UNKNOWN, ""},
      {"/admin", HTTP_R_UNKNOWN, ""},
      {"/admin/", HTTP_R_UNKNOWN, ""},
      {"/admin/join", HTTP_R_UNKNOWN, ""},
      {"/admin/statu", HTTP_R_UNKNOWN, ""},
      {"/admin/statuss", HTTP_R_UNKNOWN, ""},
      {"/admin/status/", HTTP_R_UNKNOWN, ""},
      {"/admin/STATUS", HTTP_R_UNKNOWN, ""},
      {"/metricsx", HTTP_R_UNKNOWN, ""},
      {"/metrics/", HTTP_R_UNKNOWN, ""},
      {"/METRICS", HTTP_R_UNKNOWN, ""},
      {"metrics", HTTP_R_UNKNOWN, ""},
      {"//metrics", HTTP_R_UNKNOWN, ""},
      {"/healthz", HTTP_R_UNKNOWN, ""},
      {"/read", HTTP_R_UNKNOWN, ""},
      {"/%6detrics", HTTP_R_UNKNOWN, ""}, /* paths are not decoded */
      /* The query of a path that names nothing is not read. */
      {"/nope?foo=%zz", HTTP_R_UNKNOWN, ""},
      {"/admin/join?node=n3", HTTP_R_UNKNOWN, ""},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    CHECK_T(parse(cases[i].target) == 0);
    CHECK_T(tgt.route == cases[i].route);
    CHECK_T(strcmp(tgt.admin, cases[i].admin) == 0);
    CHECK_T(tgt.route == HTTP_R_KV || tgt.klen == 0);
    CHECK_T(opts_unset());
  }
  /* A key route's key, before any query. */
  CHECK_T(parse("/kv/cart?r=2") == 0 && key_is("cart", 4));
  CHECK_T(parse("/kv/a/b") == 0 && key_is("a/b", 3));
  CHECK_T(parse("/kv/kv/") == 0 && key_is("kv/", 3));
  CHECK_T(parse("/kv/a%3Fb?w=1") == 0 && key_is("a?b", 3));
  CHECK_T(tgt.opts.w == 1);
  /* The known query parameters are read on every route. */
  CHECK_T(parse("/admin/status?timeout=5") == 0);
  CHECK_T(tgt.route == HTTP_R_ADMIN && tgt.opts.timeout_ms == 5);
  CHECK_T(parse("/metrics?foo=1") == KV_EINVAL);

  /* Whatever the last parse left is reset. */
  CHECK_T(parse("/kv/abc?r=3&timeout=9") == 0 && tgt.klen == 3);
  CHECK_T(parse("/admin/ring") == 0 && tgt.klen == 0 && opts_unset());
  CHECK_T(parse("/health") == 0 && tgt.admin[0] == '\0');
  CHECK_T(tgt.route == HTTP_R_HEALTH);
}

static void test_unescape(void) {
  static const struct {
    const char *in;
    long rc;
    const char *out;
    size_t outlen;
  } cases[] = {
      {"", 0, "", 0},
      {"plain", 5, "plain", 5},
      {"a%2Fb", 3, "a/b", 3},
      {"a%2fb", 3, "a/b", 3},
      {"%41%42%43", 3, "ABC", 3},
      {"%00", 1, "\0", 1},
      {"a%00b", 3, "a\0b", 3},
      {"%ff%FE", 2, "\xff\xfe", 2},
      {"a+b", 3, "a+b", 3},
      {"%2B", 1, "+", 1},
      {"%25", 1, "%", 1},
      {"%2541", 3, "%41", 3}, /* decoded once */
      {"%zz", -1, NULL, 0},
      {"%g0", -1, NULL, 0},
      {"%0g", -1, NULL, 0},
      {"%4", -1, NULL, 0},
      {"abc%4", -1, NULL, 0},
      {"%", -1, NULL, 0},
      {"ab%", -1, NULL, 0},
      {"%%41", -1, NULL, 0},
      {"% 41", -1, NULL, 0},
  };
  uint8_t out[16];
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const char *in = cases[i].in;
    long rc = http_unescape(in, strlen(in), out, sizeof(out));
    CHECK(rc == cases[i].rc, "\"%s\": %ld", in, rc);
    if (cases[i].out)
      CHECK(rc >= 0 && (size_t)rc == cases[i].outlen &&
                memcmp(out, cases[i].out, cases[i].outlen) == 0,
            "\"%s\"", in);
  }
  /* The escape ends exactly at the end of the input. */
  CHECK(http_unescape("%41", 3, out, 1) == 1 && out[0] == 'A', "at end");
  /* Only len bytes are read: the rest of an escape beyond them is not. */
  CHECK(http_unescape("%41", 2, out, sizeof(out)) == -1, "cut escape");
  /* The cap: exactly full, one over, nothing fits. */
  memset(out, 0, sizeof(out));
  CHECK(http_unescape("abcd", 4, out, 4) == 4, "exact cap");
  CHECK(http_unescape("abcde", 5, out, 4) == -2, "over cap");
  CHECK(out[4] == 0, "nothing written past the cap");
  CHECK(http_unescape("%41%42%43", 9, out, 2) == -2, "escapes over cap");
  CHECK(http_unescape("", 0, out, 0) == 0, "empty, cap 0");
  CHECK(http_unescape("a", 1, out, 0) == -2, "cap 0");
  /* A malformed escape right at the cap is still malformed. */
  CHECK(http_unescape("ab%zz", 5, out, 2) == -1, "bad escape at cap");
}

static void test_keys(void) {
  CHECK_T(parse("/kv/a%2Fb") == 0 && key_is("a/b", 3));
  CHECK_T(parse("/kv/cart%3aalice") == 0 && key_is("cart:alice", 10));
  CHECK_T(parse("/kv/a+b") == 0 && key_is("a+b", 3));
  CHECK_T(parse("/kv/a%20b") == 0 && key_is("a b", 3));
  /* Keys are bytes: NUL and high bytes are allowed. */
  CHECK_T(parse("/kv/a%00b") == 0 && key_is("a\0b", 3));
  CHECK_T(parse("/kv/%00") == 0 && key_is("\0", 1));
  CHECK_T(parse("/kv/%ff%80") == 0 && key_is("\xff\x80", 2));
  CHECK_T(parse_n("/kv/\xc3\xa9", 6) == 0 && key_is("\xc3\xa9", 2));
  /* An escape that decodes to the query mark is part of the key. */
  CHECK_T(parse("/kv/%3F") == 0 && key_is("?", 1) && opts_unset());

  static const char *const bad[] = {"/kv/%zz",     "/kv/abc%4", "/kv/%",
                                    "/kv/a%4?r=1", "/kv/%G1",   "/kv/%%"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    CHECK_T(parse(bad[i]) == KV_EINVAL);
    CHECK_T(err_has("escape"));
  }

  /* A key of exactly KV_KEY_MAX bytes, and one over: plain and escaped. */
  size_t cap = 4 + 3 * ((size_t)KV_KEY_MAX + 1) + 8;
  char *t = alloc(cap);
  uint8_t *want = alloc(KV_KEY_MAX + 1);
  for (size_t i = 0; i <= KV_KEY_MAX; i++)
    want[i] = (uint8_t)('a' + i % 26);
  memcpy(t, "/kv/", 4);
  memcpy(t + 4, want, KV_KEY_MAX + 1);
  CHECK_T(parse_n(t, 4 + KV_KEY_MAX) == 0 && key_is(want, KV_KEY_MAX));
  CHECK_T(parse_n(t, 4 + KV_KEY_MAX - 1) == 0 && key_is(want, KV_KEY_MAX - 1));
  CHECK_T(parse_n(t, 4 + KV_KEY_MAX + 1) == KV_ETOOBIG);
  CHECK_T(err_has("65536"));
  memcpy(t + 4 + KV_KEY_MAX, "?r=1", 4);
  CHECK_T(parse_n(t, 4 + KV_KEY_MAX + 4) == 0 && key_is(want, KV_KEY_MAX));
  CHECK_T(tgt.opts.r == 1);

  size_t n = 4;
  for (size_t i = 0; i < KV_KEY_MAX; i++)
    n += (size_t)snprintf(t + n, cap - n, "%%%02X", (unsigned)want[i]);
  CHECK_T(parse_n(t, n) == 0 && key_is(want, KV_KEY_MAX));
  n += (size_t)snprintf(t + n, cap - n, "%%%02x", (unsigned)want[KV_KEY_MAX]);
  CHECK_T(parse_n(t, n) == KV_ETOOBIG);
  /* Over the limit, then a malformed escape: the size is what is told. */
  memcpy(t + n, "%zz", 3);
  CHECK_T(parse_n(t, n + 3) == KV_ETOOBIG);
  /* A malformed escape where the first byte over would be: it is. */
  memcpy(t + n - 3, "%zz", 3);
  CHECK_T(parse_n(t, n) == KV_EINVAL);
  free(want);
  free(t);
}

static void test_levels(void) {
  static const struct {
    const char *query;
    int32_t r, pr, w, dw, pw;
  } cases[] = {
      {"r=2", 2, 0, 0, 0, 0},
      {"pr=1", 0, 1, 0, 0, 0},
      {"w=3", 0, 0, 3, 0, 0},
      {"dw=0", 0, 0, 0, 0, 0},
      {"pw=255", 0, 0, 0, 0, 255},
      {"r=one", WIRE_Q_ONE, 0, 0, 0, 0},
      {"r=quorum", WIRE_Q_QUORUM, 0, 0, 0, 0},
      {"r=QUORUM", WIRE_Q_QUORUM, 0, 0, 0, 0},
      {"w=all", 0, 0, WIRE_Q_ALL, 0, 0},
      {"dw=local_one", 0, 0, 0, WIRE_Q_LOCAL_ONE, 0},
      {"pw=LOCAL_QUORUM", 0, 0, 0, 0, WIRE_Q_LOCAL_QUORUM},
      {"pr=Local_Quorum", 0, WIRE_Q_LOCAL_QUORUM, 0, 0, 0},
      {"w=each_quorum", 0, 0, WIRE_Q_EACH_QUORUM, 0, 0},
      {"r=default", WIRE_Q_DEFAULT, 0, 0, 0, 0},
      {"r=1&pr=2&w=3&dw=4&pw=5", 1, 2, 3, 4, 5},
      {"r=1&r=quorum", WIRE_Q_QUORUM, 0, 0, 0, 0}, /* the last one counts */
      {"r=%71uorum", WIRE_Q_QUORUM, 0, 0, 0, 0},   /* escapes in values */
      {"%72=2", 2, 0, 0, 0, 0},                    /* and in names */
      {"r=local%5Fquorum", WIRE_Q_LOCAL_QUORUM, 0, 0, 0, 0},
      /* Empty parameters are passed over. */
      {"", 0, 0, 0, 0, 0},
      {"&", 0, 0, 0, 0, 0},
      {"&&r=1&", 1, 0, 0, 0, 0},
      {"w=2&&&dw=1&&", 0, 0, 2, 1, 0},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    CHECK_T(parse_query(cases[i].query) == 0 && key_is("k", 1));
    const wire_opts *o = &tgt.opts;
    CHECK_T(o->r == cases[i].r && o->pr == cases[i].pr && o->w == cases[i].w &&
            o->dw == cases[i].dw && o->pw == cases[i].pw);
    CHECK_T(o->timeout_ms == 0 && o->flags == 0 && o->region.len == 0);
  }

  static const char *const bad[] = {
      "r=256", "r=-1",  "r=+1",   "r=1.5",     "r=",    "r",    "w=two",
      "dw= 1", "pw=1 ", "pr=0x1", "r=quorum_", "r=%zz", "w=%4",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    CHECK_T(parse_query(bad[i]) == KV_EINVAL);
  /* The message names the parameter and what it takes. */
  CHECK_T(parse("/kv/k?w=two") == KV_EINVAL);
  CHECK_T(err_has("w=two") && err_has("quorum"));
  CHECK_T(parse("/kv/k?r=%zz") == KV_EINVAL);
  CHECK_T(err_has("malformed") && err_has("r=%zz"));
  /* A good parameter before a bad one does not make it good. */
  CHECK_T(parse("/kv/k?r=1&w=nope&dw=2") == KV_EINVAL);
}

static void test_timeout(void) {
  static const struct {
    const char *query;
    uint32_t ms;
  } good[] = {
      {"timeout=1", 1},           {"timeout=1500", 1500},
      {"timeout=0001500", 1500},  {"timeout=4294967295", UINT32_MAX},
      {"timeout=%31%30", 10},     {"r=2&timeout=250&w=1", 250},
      {"timeout=5&timeout=7", 7},
  };
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    CHECK_T(parse_query(good[i].query) == 0 &&
            tgt.opts.timeout_ms == good[i].ms);
  static const char *const bad[] = {
      "timeout=0",
      "timeout=000",
      "timeout=",
      "timeout",
      "timeout=abc",
      "timeout=12a",
      "timeout=a12",
      "timeout=-5",
      "timeout=+5",
      "timeout= 5",
      "timeout=1.5",
      "timeout=4294967296",
      "timeout=42949672950",
      "timeout=99999999999999999999",
      "timeout=1e3",
      "timeout=%zz",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    CHECK_T(parse_query(bad[i]) == KV_EINVAL);
  CHECK_T(parse("/kv/k?timeout=0") == KV_EINVAL);
  CHECK_T(err_has("timeout=0") && err_has("milliseconds"));
  CHECK_T(parse("/kv/k?timeout=4294967296") == KV_EINVAL);
  CHECK_T(err_has("timeout=4294967296"));
}

static void test_unknown_params(void) {
  static const struct {
    const char *target;
    const char *named; /* what the message must hold */
  } cases[] = {
      {"/kv/k?foo=1", "\"foo\""},
      {"/kv/k?foo", "\"foo\""},
      {"/kv/k?R=1", "\"R\""}, /* names are case-sensitive */
      {"/kv/k?Timeout=5", "\"Timeout\""},
      {"/kv/k?r=1&bogus=2", "\"bogus\""},
      {"/kv/k?=1", "\"\""},
      {"/kv/k?n_val=3", "\"n_val\""},
      {"/admin/status?verbose", "\"verbose\""},
      {"/ready?x=", "\"x\""},
      /* Longer than any known name: malformed, named as sent. */
      {"/kv/k?averyveryverylongname=1", "averyveryverylongname=1"},
      /* A value longer than any known value likewise. */
      {"/kv/k?timeout=1000000000000000000000000000000000000",
       "timeout=1000000000000000000000000000000000000"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    CHECK_T(parse(cases[i].target) == KV_EINVAL);
    CHECK_T(err_has(cases[i].named));
  }
  CHECK_T(parse("/kv/k?foo=1") == KV_EINVAL);
  CHECK_T(err_has("unknown") && err_has("timeout") && err_has("ttl"));
  /* ttl: seconds, kept in milliseconds. */
  CHECK_T(parse("/kv/k?ttl=90") == 0 && tgt.opts.ttl_ms == 90000);
  CHECK_T(parse("/kv/k?ttl=0") == KV_EINVAL && err_has("ttl=0"));
  CHECK_T(parse("/kv/k?ttl=x") == KV_EINVAL);

  /* Names are read up to 15 bytes, values up to 31 (decoded): one more is
   * malformed. */
  CHECK_T(parse("/kv/k?abcdefghijklmno=1") == KV_EINVAL);
  CHECK_T(err_has("unknown") && err_has("\"abcdefghijklmno\""));
  CHECK_T(parse("/kv/k?%61bcdefghijklmno=1") == KV_EINVAL);
  CHECK_T(err_has("unknown") && err_has("\"abcdefghijklmno\""));
  CHECK_T(parse("/kv/k?abcdefghijklmnop=1") == KV_EINVAL);
  CHECK_T(err_has("malformed") && err_has("abcdefghijklmnop=1"));
  CHECK_T(parse("/kv/k?timeout=0000000000000000000000000001500") == 0);
  CHECK_T(tgt.opts.timeout_ms == 1500);
  CHECK_T(parse("/kv/k?timeout=%30000000000000000000000000001500") == 0);
  CHECK_T(tgt.opts.timeout_ms == 1500);
  CHECK_T(parse("/kv/k?timeout=00000000000000000000000000001500") == KV_EINVAL);
  CHECK_T(err_has("malformed"));
  CHECK_T(parse("/kv/k?r=0000000000000000000000000000002") == 0);
  CHECK_T(tgt.opts.r == 2);
  CHECK_T(parse("/kv/k?r=00000000000000000000000000000002") == KV_EINVAL);
}

static void test_nul_params(void) {
  static const char *const bad[] = {
      "/kv/k?r=%00",  "/kv/k?r=1%00",       "/kv/k?r%00=1",
      "/kv/k?%00r=1", "/kv/k?timeout=1%00", "/kv/k?timeout=%005",
      "/kv/k?%00",    "/kv/k?foo%00=1",     "/kv/k?w=quorum%00x",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    CHECK_T(parse(bad[i]) == KV_EINVAL);
    CHECK_T(err_has("NUL"));
  }
  /* A raw NUL byte in the query is an unknown or malformed parameter. */
  CHECK_T(parse_n("/kv/k?r=1\0", 10) == KV_EINVAL);
  CHECK_T(parse_n("/kv/k?\0=1", 9) == KV_EINVAL);
  /* A raw NUL byte in a key is part of the key. */
  CHECK_T(parse_n("/kv/a\0b", 7) == 0 && key_is("a\0b", 3));
}

/* Small err buffers: the message is cut, NUL-terminated, and nothing past
 * errlen is written. */
static void test_err_buffer(void) {
  static const char *const bad[] = {
      "/kv/%zz",     "/kv/k?r=nope", "/kv/k?timeout=0",
      "/kv/k?foo=1", "/kv/k?r=%00",  "/kv/k?averyveryverylongname=1",
  };
  static const size_t lens[] = {1, 2, 8, 17};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
      size_t errlen = lens[l];
      CHECK_T(parse_n_err(bad[i], strlen(bad[i]), errlen) == KV_EINVAL);
      CHECK_T(strnlen(err, sizeof(err)) < errlen);
      CHECK_T(errlen == 1 || strnlen(err, sizeof(err)) == errlen - 1);
      for (size_t k = errlen; k < sizeof(err); k++)
        CHECK_T(err[k] == ERR_FILL);
    }
    /* errlen 0: err is not touched at all. */
    CHECK_T(parse_n_err(bad[i], strlen(bad[i]), 0) == KV_EINVAL);
    CHECK_T(err[0] == ERR_FILL);
  }
  /* The key's size error, cut too. */
  size_t n = 4 + (size_t)KV_KEY_MAX + 1;
  char *t = alloc(n);
  memcpy(t, "/kv/", 4);
  memset(t + 4, 'k', n - 4);
  CHECK_T(parse_n_err(t, n, 8) == KV_ETOOBIG && strnlen(err, sizeof(err)) == 7);
  CHECK_T(err[8] == ERR_FILL);
  free(t);
}

/* /types/{key} (http_types_target) and its query (http_query_next). */
static void test_types(void) {
  const char *q = NULL;
  size_t ql = 0;
  cur = "types";
  const char *p = "/types/a%20b?type=set&add=x";
  CHECK_T(http_types_target(p, strlen(p), &tgt, &q, &ql, err, sizeof(err)) == 0);
  CHECK_T(tgt.klen == 3 && memcmp(tgt.key, "a b", 3) == 0);
  CHECK_T(ql == strlen("type=set&add=x") && memcmp(q, "type=set&add=x", ql) == 0);
  p = "/types/k";
  CHECK_T(http_types_target(p, strlen(p), &tgt, &q, &ql, err, sizeof(err)) == 0);
  CHECK_T(ql == 0 && tgt.klen == 1);
  p = "/kv/k";
  CHECK_T(http_types_target(p, strlen(p), &tgt, &q, &ql, err, sizeof(err)) == 1);
  p = "/types/";
  CHECK_T(http_types_target(p, strlen(p), &tgt, &q, &ql, err, sizeof(err)) ==
        KV_EINVAL);
  p = "/types/%zz";
  CHECK_T(http_types_target(p, strlen(p), &tgt, &q, &ql, err, sizeof(err)) ==
        KV_EINVAL);
  /* http_target_parse itself knows nothing of /types. */
  CHECK_T(parse("/types/k?type=set") == 0 && tgt.route == HTTP_R_UNKNOWN);

  const char *qs = "&type=map&&field=a%26b&set=&x=1%";
  size_t pos = 0, vl = 0;
  char name[16];
  uint8_t val[16];
  CHECK_T(http_query_next(qs, strlen(qs), &pos, name, sizeof(name), val,
                        sizeof(val), &vl, err, sizeof(err)) == 1);
  CHECK_T(strcmp(name, "type") == 0 && vl == 3 && memcmp(val, "map", 3) == 0);
  CHECK_T(http_query_next(qs, strlen(qs), &pos, name, sizeof(name), val,
                        sizeof(val), &vl, err, sizeof(err)) == 1);
  CHECK_T(strcmp(name, "field") == 0 && vl == 3 && memcmp(val, "a&b", 3) == 0);
  CHECK_T(http_query_next(qs, strlen(qs), &pos, name, sizeof(name), val,
                        sizeof(val), &vl, err, sizeof(err)) == 1);
  CHECK_T(strcmp(name, "set") == 0 && vl == 0);
  CHECK_T(http_query_next(qs, strlen(qs), &pos, name, sizeof(name), val,
                        sizeof(val), &vl, err, sizeof(err)) == KV_EINVAL);
  pos = strlen(qs);
  CHECK_T(http_query_next(qs, strlen(qs), &pos, name, sizeof(name), val,
                        sizeof(val), &vl, err, sizeof(err)) == 0);
  const char *lng = "add=0123456789abcdefg";
  pos = 0;
  CHECK_T(http_query_next(lng, strlen(lng), &pos, name, sizeof(name), val,
                        sizeof(val), &vl, err, sizeof(err)) == KV_EINVAL);
}

int main(void) {
  test_routes();
  test_unescape();
  test_keys();
  test_levels();
  test_timeout();
  test_unknown_params();
  test_nul_params();
  test_err_buffer();
  test_types();
  return check_summary("test_http_req");
}
