/*
 * test_obj.c: unit tests of storage/obj.c (DVVSet objects): siblings from
 * context-less writes, replacement with a context, stale contexts,
 * tombstones, sibling limits, pruning, incarnations, and a decoder that
 * rejects every truncation and survives every single-byte corruption.
 * Depends on: kvobj (kvproto).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_err.h"
#include "obj.h"
#include "unit/check.h"

#define ACT_A 0xa1u
#define ACT_B 0xb2u
#define ACT_C 0xc3u
#define NOW_MS 1700000000000ull

static obj_limits lax(void) {
  obj_limits l = obj_limits_default;
  l.siblings_max = 100000;
  l.siblings_warn = 100000;
  l.entries_max = 100000;
  return l;
}

/* Writes the string s as a new event of actor with context ctx (may be an
 * empty kvbuf = no context). Returns the obj_update result. */
static int put(obj *o, const kvbuf *ctx, uint64_t actor, const char *s,
               uint32_t flags, const obj_limits *lim, bool *warn) {
  obj_value v = {.flags = flags,
                 .ts_ms = NOW_MS,
                 .data = (const uint8_t *)s,
                 .len = s ? strlen(s) : 0};
  return obj_update(o, ctx ? ctx->data : NULL, ctx ? ctx->len : 0, actor, &v,
                    NOW_MS, lim, warn);
}

/* True when o holds a sibling with bytes s. */
static bool has(const obj *o, const char *s) {
  for (size_t i = 0; i < obj_sibling_count(o); i++) {
    obj_value v;
    if (obj_sibling(o, i, &v) == 0 && v.len == strlen(s) &&
        memcmp(v.data, s, v.len) == 0)
      return true;
  }
  return false;
}

static void get_ctx(const obj *o, kvbuf *ctx) {
  kvbuf_free(ctx);
  kvbuf_init(ctx);
  CHECK(obj_context(o, ctx) == 0);
  CHECK(obj_context_check(ctx->data, ctx->len) == 0);
}

/* Encodes o, decodes it and checks the copy is equal. */
static void roundtrip(const obj *o) {
  kvbuf b;
  obj *d = NULL;
  kvbuf_init(&b);
  CHECK(obj_encode(o, &b) == 0);
  CHECK(obj_decode(b.data, b.len, &d) == 0);
  CHECK(d && obj_equal(o, d));
  obj_free(d);
  kvbuf_free(&b);
}

static void test_siblings_and_replace(void) {
  obj_limits lim = lax();
  obj *o = obj_new();
  kvbuf ctx;
  kvbuf_init(&ctx);
  CHECK(put(o, NULL, ACT_A, "x", 0, &lim, NULL) == 0);
  CHECK(put(o, NULL, ACT_A, "y", 0, &lim, NULL) == 0);
  CHECK(obj_sibling_count(o) == 2);
  CHECK(has(o, "x") && has(o, "y"));
  roundtrip(o);
  /* A write with the context of both replaces both. */
  get_ctx(o, &ctx);
  CHECK(put(o, &ctx, ACT_B, "z", 0, &lim, NULL) == 0);
  CHECK(obj_sibling_count(o) == 1);
  CHECK(has(o, "z"));
  obj_value v;
  CHECK(obj_sibling(o, 0, &v) == 0);
  CHECK(v.actor == ACT_B && v.counter == 1 && v.flags == 0);
  CHECK(obj_sibling(o, 1, &v) == KV_EINVAL);
  roundtrip(o);
  kvbuf_free(&ctx);
  obj_free(o);
}

static void test_stale_context(void) {
  obj_limits lim = lax();
  obj *o = obj_new();
  kvbuf ctx;
  kvbuf_init(&ctx);
  CHECK(put(o, NULL, ACT_A, "v1", 0, &lim, NULL) == 0);
  get_ctx(o, &ctx); /* a client reads v1 */
  CHECK(put(o, &ctx, ACT_A, "v2", 0, &lim, NULL) == 0); /* replaces v1 */
  CHECK(obj_sibling_count(o) == 1 && has(o, "v2"));
  /* A second client with the stale context (v1 only) writes concurrently:
   * v2 must stay as a sibling. */
  CHECK(put(o, &ctx, ACT_A, "v3", 0, &lim, NULL) == 0);
  CHECK(obj_sibling_count(o) == 2 && has(o, "v2") && has(o, "v3"));
  /* The same through another replica: B learns v1 only, writes w. */
  obj *b = obj_new();
  CHECK(put(b, &ctx, ACT_B, "w", 0, &lim, NULL) == 0);
  bool changed = false;
  CHECK(obj_sync(o, b, &changed) == 0 && changed);
  CHECK(obj_sibling_count(o) == 3 && has(o, "w") && has(o, "v3"));
  CHECK(obj_descends(o, b) && !obj_descends(b, o));
  CHECK(obj_sync(o, b, &changed) == 0 && !changed);
  roundtrip(o);
  kvbuf_free(&ctx);
  obj_free(b);
  obj_free(o);
}

static void test_tombstones(void) {
  obj_limits lim = lax();
  obj *o = obj_new();
  kvbuf ctx;
  kvbuf_init(&ctx);
  CHECK(!obj_all_deleted(o));
  CHECK(put(o, NULL, ACT_A, "x", 0, &lim, NULL) == 0);
  get_ctx(o, &ctx);
  CHECK(put(o, &ctx, ACT_A, NULL, OBJ_DELETED, &lim, NULL) == 0);
  CHECK(obj_sibling_count(o) == 1 && obj_all_deleted(o));
  obj_value v;
  CHECK(obj_sibling(o, 0, &v) == 0 && (v.flags & OBJ_DELETED) && v.len == 0);
  roundtrip(o);
  /* A concurrent write next to a tombstone: not all deleted. */
  CHECK(put(o, NULL, ACT_B, "y", 0, &lim, NULL) == 0);
  CHECK(obj_sibling_count(o) == 2 && !obj_all_deleted(o));
  kvbuf_free(&ctx);
  obj_free(o);
}

/* A value with an expiry keeps it through encode, decode and sync, reads
 * as gone from its expiry on, and equal expired copies are equal. */
static void test_expiry(void) {
  obj *o = obj_new();
  obj_value v = {.flags = OBJ_EXPIRES, .ts_ms = NOW_MS,
                 .expires_ms = NOW_MS + 500,
                 .data = (const uint8_t *)"x", .len = 1};
  CHECK(obj_update(o, NULL, 0, 7, &v, NOW_MS, NULL, NULL) == 0);
  CHECK(put(o, NULL, 8, "y", 0, NULL, NULL) == 0);
  kvbuf b;
  kvbuf_init(&b);
  CHECK(obj_encode(o, &b) == 0);
  obj *d = NULL;
  CHECK(obj_decode(b.data, b.len, &d) == 0 && d);
  CHECK(d && obj_equal(o, d));
  obj_value got;
  bool seen = false;
  for (size_t i = 0; d && i < obj_sibling_count(d); i++)
    if (obj_sibling(d, i, &got) == 0 && got.len == 1 && got.data[0] == 'x') {
      seen = true;
      CHECK(got.flags & OBJ_EXPIRES);
      CHECK(got.expires_ms == NOW_MS + 500);
      CHECK(!obj_value_gone(&got, NOW_MS + 499));
      CHECK(obj_value_gone(&got, NOW_MS + 500));
    }
  CHECK(seen);
  /* Not all gone while "y" lives; all gone for an object of "x" alone. */
  CHECK(!obj_all_gone(d, NOW_MS + 1000));
  obj *x = obj_new();
  CHECK(obj_update(x, NULL, 0, 7, &v, NOW_MS, NULL, NULL) == 0);
  CHECK(!obj_all_gone(x, NOW_MS) && obj_all_gone(x, NOW_MS + 500));
  obj *y = obj_clone(x);
  bool changed = true;
  CHECK(y && obj_sync(y, x, &changed) == 0 && !changed && obj_equal(x, y));
  /* A decoder refuses an expiry flag without its field, and the reverse. */
  b.len = 0;
  CHECK(obj_encode(x, &b) == 0);
  for (size_t i = 0; i < b.len; i++)
    if (b.data[i] == 0x94) { /* the value's 4-field array */
      b.data[i] = 0x93;
      obj *bad = NULL;
      CHECK(obj_decode(b.data, b.len, &bad) != 0);
      obj_free(bad);
      break;
    }
  kvbuf_free(&b);
  obj_free(o);
  obj_free(d);
  obj_free(x);
  obj_free(y);
}

static void test_sibling_limits(void) {
  obj_limits lim = lax();
  lim.siblings_warn = 2;
  lim.siblings_max = 3;
  obj *o = obj_new();
  bool warn = true;
  CHECK(put(o, NULL, ACT_A, "1", 0, &lim, &warn) == 0 && !warn);
  CHECK(put(o, NULL, ACT_A, "2", 0, &lim, &warn) == 0 && !warn);
  CHECK(put(o, NULL, ACT_A, "3", 0, &lim, &warn) == 0 && warn);
  kvbuf before, after;
  kvbuf_init(&before);
  kvbuf_init(&after);
  CHECK(obj_encode(o, &before) == 0);
  CHECK(put(o, NULL, ACT_A, "4", 0, &lim, &warn) == KV_ESIBLINGS);
  CHECK(obj_encode(o, &after) == 0);
  CHECK(before.len == after.len && memcmp(before.data, after.data, before.len) == 0);
  CHECK(obj_sibling_count(o) == 3);
  /* Resolving with the context is always possible. */
  kvbuf ctx;
  kvbuf_init(&ctx);
  get_ctx(o, &ctx);
  CHECK(put(o, &ctx, ACT_A, "r", 0, &lim, &warn) == 0 && !warn);
  CHECK(obj_sibling_count(o) == 1);
  /* Too big a value is refused before anything changes. */
  lim.value_max = 4;
  CHECK(put(o, NULL, ACT_A, "12345", 0, &lim, NULL) == KV_ETOOBIG);
  kvbuf_free(&ctx);
  kvbuf_free(&before);
  kvbuf_free(&after);
  obj_free(o);
}

/* Counts the entries of an object's context. */
static size_t ctx_entries(const obj *o) {
  kvbuf b;
  kvbuf_init(&b);
  obj_context(o, &b);
  mp_reader r;
  uint32_t n = 0, cnt = 0;
  uint64_t ver;
  mp_reader_init(&r, b.data, b.len);
  mp_read_array(&r, &n);
  mp_read_uint(&r, &ver);
  mp_read_array(&r, &cnt);
  kvbuf_free(&b);
  return cnt;
}

static void test_pruning(void) {
  obj_limits lim = lax();
  obj *o = obj_new();
  kvbuf ctx;
  kvbuf_init(&ctx);
  /* Eight actors each write, and every write is then overwritten by one
   * write of actor C carrying the whole context: eight value-less entries
   * plus C. */
  for (uint64_t a = 1; a <= 8; a++) {
    obj_value v = {.ts_ms = a, .data = (const uint8_t *)"v", .len = 1};
    CHECK(obj_update(o, NULL, 0, a, &v, a * 1000, &lim, NULL) == 0);
  }
  /* Two concurrent survivors of old actors keep values. */
  get_ctx(o, &ctx);
  obj_value keep = {.ts_ms = 5, .data = (const uint8_t *)"k", .len = 1};
  CHECK(obj_update(o, NULL, 0, 1, &keep, 500, &lim, NULL) == 0);
  CHECK(put(o, &ctx, ACT_C, "c", 0, &lim, NULL) == 0);
  CHECK(obj_sibling_count(o) == 2 && has(o, "k") && has(o, "c"));
  CHECK(ctx_entries(o) == 9);
  /* Now prune to at most 3 entries: actors 1 (value k) and C (value c) must
   * survive; of the value-less ones the newest (8) stays. */
  lim.entries_max = 3;
  obj_value v = {.ts_ms = NOW_MS, .data = (const uint8_t *)"d", .len = 1};
  CHECK(obj_update(o, NULL, 0, ACT_C, &v, NOW_MS, &lim, NULL) == 0);
  CHECK(obj_sibling_count(o) == 3 && has(o, "k") && has(o, "c") &&
        has(o, "d"));
  CHECK(ctx_entries(o) == 3);
  char dbg[256];
  obj_debug(o, dbg, sizeof(dbg));
  CHECK(strstr(dbg, "8:1[]") != NULL);
  /* Pruning cannot go below the entries that hold values. */
  lim.entries_max = 1;
  CHECK(obj_update(o, NULL, 0, ACT_C, &v, NOW_MS, &lim, NULL) == 0);
  CHECK(obj_sibling_count(o) == 4 && ctx_entries(o) == 2);
  /* Age pruning drops value-less entries older than the age only. */
  obj *p = obj_new();
  lim = lax();
  for (uint64_t a = 1; a <= 4; a++) {
    obj_value w = {.ts_ms = a, .data = (const uint8_t *)"w", .len = 1};
    CHECK(obj_update(p, NULL, 0, a, &w, a * 1000, &lim, NULL) == 0);
  }
  get_ctx(p, &ctx);
  CHECK(put(p, &ctx, ACT_C, "c", 0, &lim, NULL) == 0); /* entries 1-4 empty */
  lim.prune_age_ms = NOW_MS - 2500; /* entries 1, 2 are older than this */
  CHECK(put(p, NULL, ACT_C, "c2", 0, &lim, NULL) == 0);
  CHECK(ctx_entries(p) == 3 && obj_sibling_count(p) == 2);
  kvbuf_free(&ctx);
  obj_free(p);
  obj_free(o);
}

static void test_incarnation(void) {
  obj_limits lim = lax();
  /* Node A wrote 3 times; A's data is lost, it restarts as actor A2 with a
   * fresh object and writes once. Syncing must keep both histories. */
  obj *old = obj_new(), *fresh = obj_new();
  kvbuf ctx;
  kvbuf_init(&ctx);
  CHECK(put(old, NULL, ACT_A, "a1", 0, &lim, NULL) == 0);
  get_ctx(old, &ctx);
  CHECK(put(old, &ctx, ACT_A, "a2", 0, &lim, NULL) == 0);
  get_ctx(old, &ctx);
  CHECK(put(old, &ctx, ACT_A, "a3", 0, &lim, NULL) == 0);
  CHECK(put(fresh, NULL, ACT_A + 0x100000000ull, "new", 0, &lim, NULL) == 0);
  obj_value v;
  CHECK(obj_sibling(fresh, 0, &v) == 0 && v.counter == 1);
  bool changed = false;
  CHECK(obj_sync(old, fresh, &changed) == 0 && changed);
  CHECK(obj_sibling_count(old) == 2 && has(old, "a3") && has(old, "new"));
  /* Had the node reused its actor, counter 1 would collide with a1: the
   * fresh write would vanish as already overwritten (the doomstone bug). */
  obj *reused = obj_new();
  CHECK(put(reused, NULL, ACT_A, "lost", 0, &lim, NULL) == 0);
  CHECK(obj_sync(old, reused, &changed) == 0);
  CHECK(!has(old, "lost"));
  kvbuf_free(&ctx);
  obj_free(reused);
  obj_free(old);
  obj_free(fresh);
}

static void test_decoder(void) {
  obj_limits lim = lax();
  obj *o = obj_new();
  kvbuf ctx, enc;
  kvbuf_init(&ctx);
  kvbuf_init(&enc);
  CHECK(put(o, NULL, ACT_A, "hello", 0, &lim, NULL) == 0);
  CHECK(put(o, NULL, ACT_B, "world", 0, &lim, NULL) == 0);
  get_ctx(o, &ctx);
  CHECK(put(o, NULL, ACT_C, NULL, OBJ_DELETED, &lim, NULL) == 0);
  CHECK(put(o, &ctx, ACT_A, "again", 0, &lim, NULL) == 0);
  CHECK(obj_encode(o, &enc) == 0);
  /* Every strict prefix is rejected. */
  int bad_prefix = 0;
  for (size_t n = 0; n < enc.len; n++) {
    obj *d = NULL;
    if (obj_decode(enc.data, n, &d) == 0 || d != NULL ||
        obj_check(enc.data, n) == 0)
      bad_prefix++;
    obj_free(d);
  }
  CHECK(bad_prefix == 0);
  /* Trailing garbage is rejected. */
  uint8_t *longer = malloc(enc.len + 1);
  memcpy(longer, enc.data, enc.len);
  longer[enc.len] = 0;
  obj *d = NULL;
  CHECK(obj_decode(longer, enc.len + 1, &d) != 0 && d == NULL);
  free(longer);
  /* Every byte flipped in several ways: no crash; what decodes re-encodes
   * and decodes to an equal object. */
  uint8_t *buf = malloc(enc.len);
  static const uint8_t flips[] = {0x00, 0xff, 0x01, 0x80, 0xc1, 0xdd};
  int bad_reencode = 0;
  for (size_t i = 0; i < enc.len; i++) {
    for (size_t f = 0; f < sizeof(flips); f++) {
      memcpy(buf, enc.data, enc.len);
      buf[i] = (f == 0) ? (uint8_t)(buf[i] ^ 0xff) : flips[f];
      d = NULL;
      int drc = obj_decode(buf, enc.len, &d);
      if (obj_check(buf, enc.len) != drc)
        bad_reencode++; /* obj_check must judge as obj_decode does */
      if (drc == 0) {
        kvbuf e2;
        obj *d2 = NULL;
        kvbuf_init(&e2);
        if (obj_encode(d, &e2) || obj_decode(e2.data, e2.len, &d2) ||
            !obj_equal(d, d2))
          bad_reencode++;
        obj_free(d2);
        kvbuf_free(&e2);
      }
      obj_free(d);
    }
  }
  CHECK(bad_reencode == 0);
  free(buf);
  /* Contexts: prefixes are rejected, the full one accepted. */
  int bad_ctx = 0;
  for (size_t n = 0; n < ctx.len; n++)
    if (obj_context_check(ctx.data, n) == 0)
      bad_ctx++;
  CHECK(bad_ctx == 0);
  CHECK(obj_context_check(ctx.data, ctx.len) == 0);
  kvbuf_free(&ctx);
  kvbuf_free(&enc);
  obj_free(o);
}

/* Hand-made inconsistent objects are rejected. */
static void test_decoder_semantics(void) {
  struct {
    const char *what;
    uint64_t a1, c1, nv1, a2, c2;
    uint64_t version;
    int expect;
  } cases[] = {
      {"valid", 1, 2, 2, 2, 1, OBJ_FORMAT_VERSION, 0},
      {"more values than counter", 1, 1, 2, 2, 1, OBJ_FORMAT_VERSION,
       KV_ECORRUPT},
      {"duplicate actors", 1, 2, 1, 1, 3, OBJ_FORMAT_VERSION, KV_ECORRUPT},
      {"unsorted actors", 5, 2, 1, 1, 3, OBJ_FORMAT_VERSION, KV_ECORRUPT},
      {"zero counter", 1, 0, 0, 2, 1, OBJ_FORMAT_VERSION, KV_ECORRUPT},
      {"future version", 1, 2, 1, 2, 1, OBJ_FORMAT_VERSION + 1, KV_EVERSION},
  };
  for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
    kvbuf b;
    msgpack_packer pk;
    kvbuf_init(&b);
    mp_packer_init(&pk, &b);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, cases[k].version);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint64(&pk, cases[k].a1);
    msgpack_pack_uint64(&pk, cases[k].c1);
    msgpack_pack_uint64(&pk, 0);
    msgpack_pack_array(&pk, (size_t)cases[k].nv1);
    for (uint64_t i = 0; i < cases[k].nv1; i++) {
      msgpack_pack_array(&pk, 3);
      msgpack_pack_uint32(&pk, 0);
      msgpack_pack_uint64(&pk, 0);
      mp_pack_bin(&pk, "v", 1);
    }
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint64(&pk, cases[k].a2);
    msgpack_pack_uint64(&pk, cases[k].c2);
    msgpack_pack_uint64(&pk, 0);
    msgpack_pack_array(&pk, 0);
    obj *d = NULL;
    int rc = obj_decode(b.data, b.len, &d);
    if (rc != cases[k].expect)
      fprintf(stderr, "case %s: got %d\n", cases[k].what, rc);
    CHECK(rc == cases[k].expect);
    CHECK((rc == 0) == (d != NULL));
    obj_free(d);
    kvbuf_free(&b);
  }
  /* An array count beyond the input is rejected without allocating. */
  static const uint8_t huge[] = {0x92, 0x01, 0xdd, 0x7f, 0xff, 0xff, 0xff};
  obj *d = NULL;
  CHECK(obj_decode(huge, sizeof(huge), &d) == KV_EPROTO && d == NULL);
  /* Malformed contexts are refused by obj_update, which leaves o alone. */
  static const uint8_t badctx[] = {0x92, 0x01, 0x91, 0x92, 0x01, 0x00};
  CHECK(obj_context_check(badctx, sizeof(badctx)) == KV_EPROTO);
  obj *o = obj_new();
  obj_limits lim = lax();
  CHECK(put(o, NULL, ACT_A, "x", 0, &lim, NULL) == 0);
  obj_value v = {.data = (const uint8_t *)"y", .len = 1};
  CHECK(obj_update(o, badctx, sizeof(badctx), ACT_A, &v, NOW_MS, &lim, NULL) ==
        KV_EPROTO);
  CHECK(obj_sibling_count(o) == 1 && has(o, "x"));
  obj_free(o);
}

static void test_clone_debug(void) {
  obj_limits lim = lax();
  obj *o = obj_new();
  CHECK(put(o, NULL, ACT_A, "abc", 0, &lim, NULL) == 0);
  CHECK(put(o, NULL, ACT_B, NULL, OBJ_DELETED, &lim, NULL) == 0);
  obj *c = obj_clone(o);
  CHECK(c && obj_equal(o, c) && obj_descends(o, c) && obj_descends(c, o));
  char dbg[64];
  CHECK(strcmp(obj_debug(o, dbg, sizeof(dbg)), "{a1:1[abc] b2:1[~]}") == 0);
  char tiny[5];
  obj_debug(o, tiny, sizeof(tiny));
  CHECK(strlen(tiny) == 4);
  obj *e = obj_new();
  CHECK(strcmp(obj_debug(e, dbg, sizeof(dbg)), "{}") == 0);
  CHECK(obj_descends(o, e) && !obj_descends(e, o));
  roundtrip(e);
  obj_free(e);
  obj_free(c);
  obj_free(o);
  obj_free(NULL);
}

int main(void) {
  test_siblings_and_replace();
  test_stale_context();
  test_tombstones();
  test_expiry();
  test_sibling_limits();
  test_pruning();
  test_incarnation();
  test_decoder();
  test_decoder_semantics();
  test_clone_debug();
  return check_summary(NULL);
}
