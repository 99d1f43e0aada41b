/*
 * test_mp.c: unit tests of the bounded msgpack reader and the kvbuf
 * (proto/mp.h): every msgpack type read back from msgpack-c's
 * packer, integer range checks, declared counts and lengths larger than
 * the input, nesting limits, sticky errors, kvbuf growth and consumption.
 * Depends on: kvproto.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_err.h"
#include "mp.h"
#include "unit/check.h"

/* A reader over an exact-size heap copy of b, so ASan sees overreads. */
typedef struct exact {
  uint8_t *p;
  mp_reader r;
} exact;

static void exact_init(exact *e, const void *b, size_t len) {
  e->p = malloc(len ? len : 1);
  memcpy(e->p, b, len);
  mp_reader_init(&e->r, e->p, len);
}

static void exact_free(exact *e) { free(e->p); }

static void test_scalars(void) {
  kvbuf b;
  kvbuf_init(&b);
  msgpack_packer pk;
  mp_packer_init(&pk, &b);
  msgpack_pack_nil(&pk);
  msgpack_pack_true(&pk);
  msgpack_pack_false(&pk);
  msgpack_pack_uint64(&pk, 5);          /* positive fixint */
  msgpack_pack_uint64(&pk, 200);        /* uint8 */
  msgpack_pack_uint64(&pk, 60000);      /* uint16 */
  msgpack_pack_uint64(&pk, 4000000000); /* uint32 */
  msgpack_pack_uint64(&pk, UINT64_MAX); /* uint64 */
  msgpack_pack_int64(&pk, -3);          /* negative fixint */
  msgpack_pack_int64(&pk, -100);        /* int8 */
  msgpack_pack_int64(&pk, -30000);      /* int16 */
  msgpack_pack_int64(&pk, -2000000000); /* int32 */
  msgpack_pack_int64(&pk, INT64_MIN);   /* int64 */
  msgpack_pack_float(&pk, 1.5f);
  msgpack_pack_double(&pk, -2.25);
  exact e;
  exact_init(&e, b.data, b.len);
  mp_reader *r = &e.r;
  bool bv;
  uint64_t u;
  int64_t i;
  double d;
  CHECK(mp_peek(r) == MP_NIL && mp_read_nil(r) == 0);
  CHECK(mp_peek(r) == MP_BOOL && mp_read_bool(r, &bv) == 0 && bv);
  CHECK(mp_read_bool(r, &bv) == 0 && !bv);
  CHECK(mp_peek(r) == MP_UINT && mp_read_uint(r, &u) == 0 && u == 5);
  CHECK(mp_read_uint(r, &u) == 0 && u == 200);
  CHECK(mp_read_uint(r, &u) == 0 && u == 60000);
  CHECK(mp_read_uint(r, &u) == 0 && u == 4000000000u);
  CHECK(mp_read_uint(r, &u) == 0 && u == UINT64_MAX);
  CHECK(mp_peek(r) == MP_INT && mp_read_int(r, &i) == 0 && i == -3);
  CHECK(mp_read_int(r, &i) == 0 && i == -100);
  CHECK(mp_read_int(r, &i) == 0 && i == -30000);
  CHECK(mp_read_int(r, &i) == 0 && i == -2000000000);
  CHECK(mp_read_int(r, &i) == 0 && i == INT64_MIN);
  CHECK(mp_peek(r) == MP_FLOAT && mp_read_double(r, &d) == 0 && d == 1.5);
  CHECK(mp_read_double(r, &d) == 0 && d == -2.25);
  CHECK(mp_remaining(r) == 0 && r->err == 0);
  CHECK(mp_peek(r) == MP_INVALID);
  CHECK(mp_read_nil(r) == KV_EPROTO);
  exact_free(&e);
  kvbuf_free(&b);
}

static void test_integer_ranges(void) {
  kvbuf b;
  kvbuf_init(&b);
  msgpack_packer pk;
  mp_packer_init(&pk, &b);
  msgpack_pack_uint64(&pk, UINT64_MAX);
  msgpack_pack_int64(&pk, -1);
  msgpack_pack_uint64(&pk, (uint64_t)UINT32_MAX + 1);
  msgpack_pack_uint64(&pk, UINT32_MAX);
  msgpack_pack_int64(&pk, 7); /* as fixint: read as double */
  mp_pack_cstr(&pk, "x");
  size_t offs[6] = {0};
  {
    mp_reader r;
    mp_reader_init(&r, b.data, b.len);
    for (int k = 0; k < 6; k++) {
      offs[k] = (size_t)(r.p - b.data);
      if (k < 5)
        mp_skip(&r);
    }
  }
  mp_reader r;
  int64_t i;
  uint64_t u;
  uint32_t u32;
  double d;
  /* uint64 above INT64_MAX is not an int64. */
  mp_reader_init(&r, b.data + offs[0], b.len - offs[0]);
  CHECK(mp_read_int(&r, &i) == KV_EPROTO && r.err == KV_EPROTO);
  /* A negative number is not a uint. */
  mp_reader_init(&r, b.data + offs[1], b.len - offs[1]);
  CHECK(mp_read_uint(&r, &u) == KV_EPROTO);
  mp_reader_init(&r, b.data + offs[1], b.len - offs[1]);
  CHECK(mp_read_int(&r, &i) == 0 && i == -1);
  /* u32 range. */
  mp_reader_init(&r, b.data + offs[2], b.len - offs[2]);
  CHECK(mp_read_u32(&r, &u32) == KV_EPROTO);
  mp_reader_init(&r, b.data + offs[3], b.len - offs[3]);
  CHECK(mp_read_u32(&r, &u32) == 0 && u32 == UINT32_MAX);
  mp_reader_init(&r, b.data + offs[4], b.len - offs[4]);
  CHECK(mp_read_double(&r, &d) == 0 && d == 7.0);
  /* Wrong types fail and leave the error sticky. */
  mp_reader_init(&r, b.data + offs[5], b.len - offs[5]);
  CHECK(mp_read_uint(&r, &u) == KV_EPROTO);
  CHECK(mp_read_nil(&r) == KV_EPROTO);
  kv_slice s;
  CHECK(mp_read_str(&r, &s) == KV_EPROTO); /* still failing: sticky */
  CHECK(mp_peek(&r) == MP_INVALID);
  kvbuf_free(&b);

  /* Signed encodings of non-negative values are uints too. */
  const uint8_t int8_pos[] = {0xd0, 0x05};
  mp_reader_init(&r, int8_pos, sizeof(int8_pos));
  CHECK(mp_read_uint(&r, &u) == 0 && u == 5);
  /* Truncated integers. */
  const uint8_t u32_cut[] = {0xce, 0x00, 0x01};
  exact e;
  exact_init(&e, u32_cut, sizeof(u32_cut));
  CHECK(mp_read_uint(&e.r, &u) == KV_EPROTO);
  exact_free(&e);
  const uint8_t f64_cut[] = {0xcb, 0, 0, 0};
  exact_init(&e, f64_cut, sizeof(f64_cut));
  CHECK(mp_read_double(&e.r, &d) == KV_EPROTO);
  exact_free(&e);
}

static void test_bytes(void) {
  char big[70000];
  memset(big, 'z', sizeof(big));
  const size_t lens[] = {0, 31, 32, 255, 256, 65535, 65536, sizeof(big)};
  for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
    kvbuf b;
    kvbuf_init(&b);
    msgpack_packer pk;
    mp_packer_init(&pk, &b);
    mp_pack_str(&pk, big, lens[k]);
    mp_pack_bin(&pk, big, lens[k]);
    exact e;
    exact_init(&e, b.data, b.len);
    kv_slice s;
    CHECK(mp_peek(&e.r) == MP_STR);
    CHECK(mp_read_str(&e.r, &s) == 0 && s.len == lens[k]);
    CHECK(mp_peek(&e.r) == MP_BIN);
    mp_reader save = e.r;
    CHECK(mp_read_str(&e.r, &s) == KV_EPROTO); /* bin is not a str */
    e.r = save;
    CHECK(mp_read_bytes(&e.r, &s) == 0 && s.len == lens[k]);
    CHECK(s.len == 0 || (s.ptr >= e.p && s.ptr + s.len <= e.p + b.len));
    CHECK(mp_remaining(&e.r) == 0);
    /* Every truncation fails. */
    int bad = 0;
    for (size_t cut = 0; cut < b.len; cut += 1 + cut / 8) {
      exact t;
      exact_init(&t, b.data, cut);
      kv_slice a, c;
      if (mp_read_str(&t.r, &a) == 0 && mp_read_bytes(&t.r, &c) == 0)
        bad++;
      exact_free(&t);
    }
    CHECK(bad == 0);
    exact_free(&e);
    kvbuf_free(&b);
  }

  /* cstr, bytes_or_nil and slice_eq. */
  kvbuf b;
  kvbuf_init(&b);
  msgpack_packer pk;
  mp_packer_init(&pk, &b);
  mp_pack_cstr(&pk, "hello");
  mp_pack_cstr(&pk, "hello");
  msgpack_pack_nil(&pk);
  mp_pack_bin(&pk, "", 0);
  mp_reader r;
  mp_reader_init(&r, b.data, b.len);
  char buf6[6], buf5[5];
  CHECK(mp_read_cstr(&r, buf6, sizeof(buf6)) == 0 &&
        strcmp(buf6, "hello") == 0);
  CHECK(mp_read_cstr(&r, buf5, sizeof(buf5)) == KV_ETOOBIG);
  kv_slice s;
  CHECK(mp_read_bytes_or_nil(&r, &s) == 0 && s.ptr == NULL && s.len == 0);
  CHECK(mp_read_bytes_or_nil(&r, &s) == 0 && s.ptr != NULL && s.len == 0);
  kv_slice hs = {(const uint8_t *)"hello", 5};
  CHECK(mp_slice_eq(hs, "hello") && !mp_slice_eq(hs, "hell") &&
        !mp_slice_eq(hs, "hello!"));
  kv_slice empty = {NULL, 0};
  CHECK(mp_slice_eq(empty, ""));
  kvbuf_free(&b);
}

static void test_containers_and_ext(void) {
  const uint32_t counts[] = {0, 15, 16, 65535, 65536};
  for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
    kvbuf b;
    kvbuf_init(&b);
    msgpack_packer pk;
    mp_packer_init(&pk, &b);
    msgpack_pack_array(&pk, counts[k]);
    for (uint32_t i = 0; i < counts[k]; i++)
      msgpack_pack_uint32(&pk, i & 0x7f);
    msgpack_pack_map(&pk, counts[k]);
    for (uint32_t i = 0; i < counts[k]; i++) {
      msgpack_pack_uint32(&pk, i & 0x7f);
      msgpack_pack_nil(&pk);
    }
    exact e;
    exact_init(&e, b.data, b.len);
    uint32_t n;
    const uint8_t *start = e.r.p;
    CHECK(mp_peek(&e.r) == MP_ARRAY);
    CHECK(mp_read_array(&e.r, &n) == 0 && n == counts[k]);
    e.r.p = start;
    kv_slice raw;
    CHECK(mp_read_raw(&e.r, &raw) == 0 && raw.ptr == start);
    CHECK(mp_peek(&e.r) == MP_MAP);
    start = e.r.p;
    CHECK(mp_read_map(&e.r, &n) == 0 && n == counts[k]);
    e.r.p = start;
    CHECK(mp_skip(&e.r) == 0 && mp_remaining(&e.r) == 0);
    exact_free(&e);
    kvbuf_free(&b);
  }
  /* Ext of every size class is skipped whole. */
  kvbuf b;
  kvbuf_init(&b);
  msgpack_packer pk;
  mp_packer_init(&pk, &b);
  const size_t exts[] = {1, 2, 4, 8, 16, 3, 300, 70000};
  static char data[70000];
  for (size_t k = 0; k < sizeof(exts) / sizeof(exts[0]); k++) {
    msgpack_pack_ext(&pk, exts[k], 7);
    msgpack_pack_ext_body(&pk, data, exts[k]);
  }
  msgpack_pack_true(&pk);
  exact e;
  exact_init(&e, b.data, b.len);
  for (size_t k = 0; k < sizeof(exts) / sizeof(exts[0]); k++) {
    CHECK(mp_peek(&e.r) == MP_EXT);
    CHECK(mp_skip(&e.r) == 0);
  }
  bool bv;
  CHECK(mp_read_bool(&e.r, &bv) == 0 && bv);
  exact_free(&e);
  /* A truncated ext fails. */
  exact_init(&e, b.data, 2);
  CHECK(mp_skip(&e.r) == KV_EPROTO);
  exact_free(&e);
  kvbuf_free(&b);

  /* 0xc1 is never valid. */
  const uint8_t c1[] = {0xc1};
  mp_reader r;
  mp_reader_init(&r, c1, 1);
  CHECK(mp_peek(&r) == MP_INVALID && mp_skip(&r) == KV_EPROTO);
}

/* Counts and lengths that the remaining bytes cannot hold are refused
 * before anything trusts them. */
static void test_huge_declared(void) {
  static const struct {
    uint8_t bytes[10];
    size_t len;
    const char *what;
  } cases[] = {
      {{0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5}, 10, "array32 2^32-1"},
      {{0xdf, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5}, 10, "map32 2^32-1"},
      {{0xdc, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7}, 10, "array16 65535"},
      {{0xde, 0x00, 0x05, 1, 2, 3, 4, 5, 6, 7}, 10, "map16 5 in 7 bytes"},
      {{0xdb, 0xff, 0xff, 0xff, 0xff, 'a', 'b', 'c', 'd', 'e'}, 10,
       "str32 2^32-1"},
      {{0xc6, 0xff, 0xff, 0xff, 0xff, 'a', 'b', 'c', 'd', 'e'}, 10,
       "bin32 2^32-1"},
      {{0xc9, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5}, 10, "ext32 2^32-1"},
      {{0xc9, 0xff, 0xff, 0xff, 0xfe, 1, 2, 3, 4, 5}, 10, "ext32 2^32-2"},
      {{0x9f, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 10, "fixarray 15 in 9 bytes"},
      {{0xbf, 'a', 'b'}, 3, "fixstr 31 in 2 bytes"},
  };
  for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
    exact e;
    exact_init(&e, cases[k].bytes, cases[k].len);
    int rc = mp_skip(&e.r);
    if (rc != KV_EPROTO)
      fprintf(stderr, "  case %s accepted\n", cases[k].what);
    CHECK(rc == KV_EPROTO && e.r.err == KV_EPROTO);
    exact_free(&e);
  }
  uint32_t n = 12345;
  exact e;
  exact_init(&e, cases[0].bytes, 10);
  CHECK(mp_read_array(&e.r, &n) == KV_EPROTO && n == 12345);
  exact_free(&e);
  exact_init(&e, cases[1].bytes, 10);
  CHECK(mp_read_map(&e.r, &n) == KV_EPROTO && n == 12345);
  exact_free(&e);
  /* A map of 5 entries needs at least 10 bytes; 9 are not enough. */
  const uint8_t m5[] = {0x85, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  exact_init(&e, m5, 10);
  CHECK(mp_read_map(&e.r, &n) == KV_EPROTO);
  exact_free(&e);
}

/* An object may sit at most MP_DEPTH_MAX levels below the top one. */
static void test_depth(void) {
  uint8_t deep[MP_DEPTH_MAX + 4];
  /* MP_DEPTH_MAX + 1 nested arrays: the innermost (empty) one is at depth
   * MP_DEPTH_MAX: accepted. */
  size_t k = MP_DEPTH_MAX + 1;
  for (size_t i = 0; i + 1 < k; i++)
    deep[i] = 0x91;
  deep[k - 1] = 0x90;
  exact e;
  exact_init(&e, deep, k);
  CHECK(mp_skip(&e.r) == 0 && mp_remaining(&e.r) == 0);
  exact_free(&e);
  /* One level more: refused. */
  k = MP_DEPTH_MAX + 2;
  for (size_t i = 0; i + 1 < k; i++)
    deep[i] = 0x91;
  deep[k - 1] = 0x90;
  exact_init(&e, deep, k);
  kv_slice raw;
  CHECK(mp_read_raw(&e.r, &raw) == KV_EPROTO);
  exact_free(&e);
  /* Deep maps too. */
  uint8_t maps[2 * (MP_DEPTH_MAX + 2)];
  size_t m = 0;
  for (int i = 0; i < MP_DEPTH_MAX + 1; i++) {
    maps[m++] = 0x81;
    maps[m++] = 0x00; /* key */
  }
  maps[m++] = 0xc0; /* innermost value */
  exact_init(&e, maps, m);
  CHECK(mp_skip(&e.r) == KV_EPROTO);
  exact_free(&e);
  /* A very deep input does not recurse without bound. */
  static uint8_t abyss[100000];
  memset(abyss, 0x91, sizeof(abyss));
  mp_reader r;
  mp_reader_init(&r, abyss, sizeof(abyss));
  CHECK(mp_skip(&r) == KV_EPROTO);
}

static void test_kvbuf(void) {
  kvbuf b;
  kvbuf_init(&b);
  CHECK(b.data == NULL && b.len == 0);
  CHECK(kvbuf_append(&b, NULL, 0) == 0 && b.len == 0);
  uint8_t chunk[1000];
  for (size_t i = 0; i < sizeof(chunk); i++)
    chunk[i] = (uint8_t)i;
  size_t total = 0;
  for (int i = 0; i < 300; i++) {
    CHECK(kvbuf_append(&b, chunk, (size_t)(i % 7) * 100 + 1) == 0);
    total += (size_t)(i % 7) * 100 + 1;
  }
  CHECK(b.len == total && b.cap >= b.len && !b.oom);
  CHECK(b.data[0] == 0 && b.data[1] == 0 && b.data[2] == 1);
  size_t cap = b.cap;
  CHECK(kvbuf_reserve(&b, b.cap - b.len) == 0 && b.cap == cap);
  CHECK(kvbuf_reserve(&b, b.cap - b.len + 1) == 0 && b.cap > cap);
  /* Consume keeps the remainder in order. */
  kvbuf_consume(&b, 1);
  CHECK(b.len == total - 1 && b.data[0] == 0 && b.data[1] == 1);
  kvbuf_consume(&b, b.len + 5);
  CHECK(b.len == 0);
  /* An impossible reservation fails, sets oom, and later appends fail. */
  CHECK(kvbuf_reserve(&b, SIZE_MAX) == KV_ENOMEM && b.oom);
  CHECK(kvbuf_append(&b, "x", 1) == KV_ENOMEM && b.len == 0);
  kvbuf_free(&b);
  CHECK(b.data == NULL && b.oom == 0);
  /* A reservation whose doubling would wrap fails instead of looping. */
  kvbuf_init(&b);
  CHECK(kvbuf_append(&b, "ab", 2) == 0);
  CHECK(kvbuf_reserve(&b, SIZE_MAX / 2 + 10) == KV_ENOMEM && b.oom);
  kvbuf_free(&b);

  kvbuf_init(&b);
  CHECK(kvbuf_append(&b, "xyz", 3) == 0);
  size_t len = 0;
  uint8_t *p = kvbuf_steal(&b, &len);
  CHECK(p && len == 3 && memcmp(p, "xyz", 3) == 0);
  CHECK(b.data == NULL && b.len == 0);
  free(p);
  kvbuf_free(&b); /* no-op after steal */
}

int main(void) {
  test_scalars();
  test_integer_ranges();
  test_bytes();
  test_containers_and_ext();
  test_huge_declared();
  test_depth();
  test_kvbuf();
  return check_summary(NULL);
}
