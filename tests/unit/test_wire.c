/*
 * test_wire.c: unit tests of the wire protocol codecs (proto/wire.h):
 * a round trip of every message type, framing edge cases, truncation at
 * every byte, wrong field types, limits, unknown types, forward
 * compatibility, and a seeded run of random and mutated frames (the seed
 * is printed; set KV_TEST_SEED to replay one).
 * Depends on: kvproto.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kv_err.h"
#include "mp.h"
#include "wire.h"

#define RANDOM_ROUNDS 4000  /* random and mutated frames per run */
#define RANDOM_BODY_MAX 300 /* bytes of a random body */

static int g_pass, g_fail;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (cond) {                                                                \
      g_pass++;                                                                \
    } else {                                                                   \
      g_fail++;                                                                \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,        \
              #cond);                                                          \
    }                                                                          \
  } while (0)

static kv_slice S(const char *s) {
  kv_slice r = {(const uint8_t *)s, strlen(s)};
  return r;
}

static int seq(kv_slice a, kv_slice b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static int seq_nil(kv_slice a, kv_slice b) {
  return (a.ptr == NULL) == (b.ptr == NULL) && seq(a, b);
}

static int opts_eq(const wire_opts *a, const wire_opts *b) {
  return a->r == b->r && a->w == b->w && a->dw == b->dw && a->pr == b->pr &&
         a->pw == b->pw && a->timeout_ms == b->timeout_ms &&
         a->flags == b->flags && seq(a->region, b->region);
}

/* ---- helpers ---- */

/* Encodes m, checks the frame, decodes it into *out (pointing into buf,
 * which the caller frees). Returns the decode result. */
static int roundtrip(const wire_msg *m, kvbuf *buf, wire_msg *out) {
  kvbuf_init(buf);
  int rc = wire_encode(buf, m);
  CHECK(rc == 0);
  if (rc)
    return rc;
  uint32_t blen = 0;
  CHECK(wire_frame_check(buf->data, buf->len, &wire_limits_default, &blen) ==
        0);
  CHECK((size_t)blen + WIRE_HEADER_BYTES == buf->len);
  return wire_decode(buf->data + WIRE_HEADER_BYTES, blen, &wire_limits_default,
                     out);
}

/* Checks that every truncation of the body of the frame in f fails with
 * KV_EPROTO and never succeeds. */
static void check_truncations(const kvbuf *f) {
  const uint8_t *body = f->data + WIRE_HEADER_BYTES;
  size_t len = f->len - WIRE_HEADER_BYTES;
  int bad = 0;
  for (size_t k = 0; k < len; k++) {
    /* A copy of exactly k bytes so ASan sees any overread. */
    uint8_t *cut = malloc(k ? k : 1);
    memcpy(cut, body, k);
    wire_msg m;
    if (wire_decode(cut, k, &wire_limits_default, &m) != KV_EPROTO)
      bad++;
    free(cut);
  }
  CHECK(bad == 0);
}

static wire_opts sample_opts(void) {
  wire_opts o;
  memset(&o, 0, sizeof(o));
  o.r = 2;
  o.w = WIRE_Q_QUORUM;
  o.dw = WIRE_Q_ONE;
  o.pr = 1;
  o.pw = WIRE_Q_LOCAL_QUORUM;
  o.timeout_ms = 1500;
  o.flags = WIRE_OPT_SLOPPY | WIRE_OPT_LOCAL;
  o.region = S("eu-west");
  return o;
}

/* ---- round trips ---- */

static void test_roundtrip_all(void) {
  uint8_t admin_args[16];
  kvbuf ab;
  kvbuf_init(&ab);
  msgpack_packer pk;
  mp_packer_init(&pk, &ab);
  msgpack_pack_map(&pk, 1);
  mp_pack_cstr(&pk, "node");
  mp_pack_cstr(&pk, "n2");
  CHECK(ab.len <= sizeof(admin_args));
  memcpy(admin_args, ab.data, ab.len);
  size_t admin_len = ab.len;
  kvbuf_free(&ab);

  for (int t = 0; t < 64; t++) {
    if (strcmp(wire_type_name((uint32_t)t), "unknown") == 0)
      continue;
    wire_msg m, d;
    memset(&m, 0, sizeof(m));
    m.type = (uint32_t)t;
    m.req_id = 0x0102030405060708ull + (uint64_t)t;
    switch (t) {
    case WIRE_HELLO:
      m.version = WIRE_PROTOCOL_VERSION;
      m.text = S("kvorum-test/1");
      break;
    case WIRE_HELLO_OK:
      m.version = 7;
      m.text = S("node-a");
      m.partitions = 64;
      m.region = S("r1");
      break;
    case WIRE_ERROR:
      m.code = KV_EQUORUM;
      m.text = S("only 1 of 2");
      break;
    case WIRE_GET:
      m.key = S("k\0ey");
      m.key.len = 4;
      m.opts = sample_opts();
      break;
    case WIRE_GET_OK:
      m.context = S("ctx");
      break; /* siblings: empty raw encodes [] */
    case WIRE_PUT:
    case WIRE_COORD_PUT:
      m.key = S("key");
      m.value = S("value");
      m.context = S("c");
      m.opts = sample_opts();
      m.flags = t == WIRE_COORD_PUT ? WIRE_COORD_DELETE : 0;
      break;
    case WIRE_PUT_OK:
    case WIRE_DEL_OK:
      m.context = S("ctx2");
      break;
    case WIRE_DEL:
      m.key = S("gone");
      m.opts.w = 3;
      break; /* context nil */
    case WIRE_ADMIN:
      m.text = S("remove");
      m.raw.ptr = admin_args;
      m.raw.len = admin_len;
      break;
    case WIRE_ADMIN_OK:
      m.raw.ptr = admin_args;
      m.raw.len = admin_len;
      break;
    case WIRE_PEER_HELLO:
      m.version = 1;
      m.text = S("peer-9");
      m.incarnation = 123456789012ull;
      break;
    case WIRE_REPL_PUT:
      m.key = S("rk");
      m.object = S("\x01obj");
      m.flags = WIRE_REPL_DURABLE;
      break;
    case WIRE_REPL_PUT_OK:
      break;
    case WIRE_REPL_GET:
      m.key = S("rk");
      break;
    case WIRE_REPL_GET_OK:
      m.object = S("o");
      break;
    case WIRE_GOSSIP:
      m.raw = S("gossip payload");
      break;
    case WIRE_PEER_MSG:
      m.flags = 5;
      m.raw = S("aae");
      break;
    default:
      CHECK(!"type without a round-trip case");
    }
    kvbuf buf;
    int rc = roundtrip(&m, &buf, &d);
    CHECK(rc == 0);
    if (rc) {
      fprintf(stderr, "  type %s: %s\n", wire_type_name((uint32_t)t),
              kv_errname(rc));
      kvbuf_free(&buf);
      continue;
    }
    CHECK(d.type == m.type && d.req_id == m.req_id);
    switch (t) {
    case WIRE_HELLO:
      CHECK(d.version == m.version && seq(d.text, m.text));
      break;
    case WIRE_HELLO_OK:
      CHECK(d.version == 7 && seq(d.text, m.text) && d.partitions == 64 &&
            seq(d.region, m.region));
      break;
    case WIRE_ERROR:
      CHECK(d.code == KV_EQUORUM && seq(d.text, m.text));
      break;
    case WIRE_GET:
      CHECK(seq(d.key, m.key) && opts_eq(&d.opts, &m.opts));
      break;
    case WIRE_GET_OK:
      CHECK(d.nsiblings == 0 && seq(d.context, m.context));
      CHECK(d.raw.len == 1 && d.raw.ptr[0] == 0x90);
      break;
    case WIRE_PUT:
    case WIRE_COORD_PUT:
      CHECK(seq(d.key, m.key) && seq(d.value, m.value) &&
            seq_nil(d.context, m.context) && opts_eq(&d.opts, &m.opts) &&
            d.flags == m.flags);
      break;
    case WIRE_PUT_OK:
    case WIRE_DEL_OK:
      CHECK(seq(d.context, m.context));
      break;
    case WIRE_DEL:
      CHECK(seq(d.key, m.key) && d.context.ptr == NULL &&
            opts_eq(&d.opts, &m.opts));
      break;
    case WIRE_ADMIN:
      CHECK(seq(d.text, m.text) && seq(d.raw, m.raw));
      break;
    case WIRE_ADMIN_OK:
    case WIRE_GOSSIP:
      CHECK(seq(d.raw, m.raw));
      break;
    case WIRE_PEER_HELLO:
      CHECK(d.version == 1 && seq(d.text, m.text) &&
            d.incarnation == m.incarnation);
      break;
    case WIRE_REPL_PUT:
      CHECK(seq(d.key, m.key) && seq(d.object, m.object) &&
            d.flags == WIRE_REPL_DURABLE);
      break;
    case WIRE_REPL_GET:
      CHECK(seq(d.key, m.key));
      break;
    case WIRE_REPL_GET_OK:
      CHECK(seq_nil(d.object, m.object));
      break;
    case WIRE_PEER_MSG:
      CHECK(d.flags == 5 && seq(d.raw, m.raw));
      break;
    default:
      break;
    }
    check_truncations(&buf);
    kvbuf_free(&buf);
  }
}

/* Nil-able fields keep their nil-ness; empty binaries stay non-nil. */
static void test_roundtrip_nil_and_empty(void) {
  wire_msg m, d;
  kvbuf buf;
  memset(&m, 0, sizeof(m));
  m.type = WIRE_PUT;
  m.key = S("k");
  m.value = S("");
  m.context = S(""); /* empty but present */
  CHECK(roundtrip(&m, &buf, &d) == 0);
  CHECK(d.context.ptr != NULL && d.context.len == 0 && d.value.len == 0);
  CHECK(opts_eq(&d.opts, &m.opts));
  kvbuf_free(&buf);

  m.context.ptr = NULL;
  CHECK(roundtrip(&m, &buf, &d) == 0);
  CHECK(d.context.ptr == NULL);
  kvbuf_free(&buf);

  memset(&m, 0, sizeof(m));
  m.type = WIRE_REPL_GET_OK; /* object nil: no such key */
  CHECK(roundtrip(&m, &buf, &d) == 0);
  CHECK(d.object.ptr == NULL);
  kvbuf_free(&buf);

  memset(&m, 0, sizeof(m));
  m.type = WIRE_ADMIN; /* args absent: sent as {} */
  m.text = S("status");
  CHECK(roundtrip(&m, &buf, &d) == 0);
  CHECK(d.raw.len == 1 && d.raw.ptr[0] == 0x80);
  kvbuf_free(&buf);

  memset(&m, 0, sizeof(m));
  m.type = WIRE_ADMIN_OK; /* no result: nil */
  CHECK(roundtrip(&m, &buf, &d) == 0);
  CHECK(d.raw.len == 1 && d.raw.ptr[0] == 0xc0);
  kvbuf_free(&buf);
}

static void test_get_ok_writer(void) {
  kvbuf out;
  kvbuf_init(&out);
  wire_get_ok_writer w;
  wire_begin_get_ok(&w, &out, 42, 3);
  wire_add_sibling(&w, 0, 1000, "alpha", 5);
  wire_add_sibling(&w, WIRE_SIB_DELETED, 2000, NULL, 0);
  wire_add_sibling(&w, 0, UINT64_MAX, "", 0);
  CHECK(wire_end_get_ok(&w, "ctx", 3) == 0);
  uint32_t blen;
  CHECK(wire_frame_check(out.data, out.len, NULL, &blen) == 0);
  wire_msg d;
  CHECK(wire_decode(out.data + 4, blen, NULL, &d) == 0);
  CHECK(d.type == WIRE_GET_OK && d.req_id == 42 && d.nsiblings == 3);
  CHECK(seq(d.context, S("ctx")));
  mp_reader r;
  uint32_t n;
  mp_reader_init(&r, d.raw.ptr, d.raw.len);
  CHECK(mp_read_array(&r, &n) == 0 && n == 3);
  wire_sibling s;
  CHECK(wire_sibling_next(&r, &s) == 0 && s.flags == 0 && s.ts_ms == 1000 &&
        seq(s.value, S("alpha")));
  CHECK(wire_sibling_next(&r, &s) == 0 && s.flags == WIRE_SIB_DELETED &&
        s.ts_ms == 2000 && s.value.len == 0);
  CHECK(wire_sibling_next(&r, &s) == 0 && s.ts_ms == UINT64_MAX);
  CHECK(mp_remaining(&r) == 0);
  CHECK(wire_sibling_next(&r, &s) == KV_EPROTO);
  check_truncations(&out);

  /* Re-encoding through wire_encode with raw gives the same bytes. */
  kvbuf again;
  kvbuf_init(&again);
  CHECK(wire_encode(&again, &d) == 0);
  CHECK(again.len == out.len && memcmp(again.data, out.data, out.len) == 0);
  kvbuf_free(&again);

  /* A count other than the announced one is refused and leaves nothing. */
  size_t before = out.len;
  wire_begin_get_ok(&w, &out, 43, 2);
  wire_add_sibling(&w, 0, 1, "x", 1);
  CHECK(wire_end_get_ok(&w, NULL, 0) == KV_EINVAL);
  CHECK(out.len == before);
  kvbuf_free(&out);
}

/* ---- framing ---- */

static void test_frame_check(void) {
  uint8_t hdr[8] = {0, 0, 0, 4, 1, 2, 3, 4};
  uint32_t blen = 999;
  for (size_t k = 0; k < WIRE_HEADER_BYTES; k++)
    CHECK(wire_frame_check(hdr, k, &wire_limits_default, &blen) == KV_EBUSY);
  CHECK(blen == 999); /* untouched until the header is complete */
  for (size_t k = 4; k < 8; k++) {
    blen = 0;
    CHECK(wire_frame_check(hdr, k, &wire_limits_default, &blen) == KV_EBUSY);
    CHECK(blen == 4);
  }
  CHECK(wire_frame_check(hdr, 8, &wire_limits_default, &blen) == 0);
  CHECK(blen == 4);

  /* Two frames back to back. */
  kvbuf b;
  kvbuf_init(&b);
  wire_msg m;
  memset(&m, 0, sizeof(m));
  m.type = WIRE_GET;
  m.req_id = 1;
  m.key = S("a");
  CHECK(wire_encode(&b, &m) == 0);
  size_t first = b.len;
  m.req_id = 2;
  m.key = S("bb");
  CHECK(wire_encode(&b, &m) == 0);
  CHECK(wire_frame_check(b.data, b.len, NULL, &blen) == 0);
  CHECK(blen + 4 == first);
  wire_msg d;
  CHECK(wire_decode(b.data + 4, blen, NULL, &d) == 0 && d.req_id == 1 &&
        seq(d.key, S("a")));
  CHECK(wire_frame_check(b.data + first, b.len - first, NULL, &blen) == 0);
  CHECK(first + 4 + blen == b.len);
  CHECK(wire_decode(b.data + first + 4, blen, NULL, &d) == 0 &&
        d.req_id == 2 && seq(d.key, S("bb")));
  kvbuf_free(&b);

  /* Oversized length: refused as soon as the header is there. */
  uint8_t big[4] = {0x01, 0x00, 0x00, 0x01}; /* 16 MiB + 1 */
  CHECK(wire_frame_check(big, 4, NULL, &blen) == KV_ETOOBIG);
  CHECK(blen == WIRE_FRAME_MAX + 1);
  uint8_t max[4] = {0x01, 0x00, 0x00, 0x00};
  CHECK(wire_frame_check(max, 4, NULL, &blen) == KV_EBUSY);
  uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
  CHECK(wire_frame_check(huge, 4, NULL, &blen) == KV_ETOOBIG);
  wire_limits small = {100, 50};
  uint8_t h101[4] = {0, 0, 0, 101};
  uint8_t h100[4] = {0, 0, 0, 100};
  CHECK(wire_frame_check(h101, 4, &small, &blen) == KV_ETOOBIG);
  CHECK(wire_frame_check(h100, 4, &small, &blen) == KV_EBUSY);
  /* A limit above the hard cap is clamped to it. */
  wire_limits loose = {UINT32_MAX, 0};
  CHECK(wire_frame_check(big, 4, &loose, &blen) == KV_ETOOBIG);
  /* An empty body is a frame (that then fails to decode). */
  uint8_t zero[4] = {0, 0, 0, 0};
  CHECK(wire_frame_check(zero, 4, NULL, &blen) == 0 && blen == 0);
  CHECK(wire_decode(zero + 4, 0, NULL, &d) == KV_EPROTO);
}

/* ---- malformed bodies ---- */

/* Packs a body with the given builder and decodes it. */
typedef void (*body_fn)(msgpack_packer *pk);

static int decode_built(body_fn fn, const wire_limits *lim, wire_msg *d,
                        kvbuf *keep) {
  kvbuf_init(keep);
  msgpack_packer pk;
  mp_packer_init(&pk, keep);
  fn(&pk);
  return wire_decode(keep->data, keep->len, lim, d);
}

static void b_get_key_int(msgpack_packer *pk) {
  msgpack_pack_array(pk, 4);
  msgpack_pack_uint32(pk, WIRE_GET);
  msgpack_pack_uint64(pk, 9);
  msgpack_pack_int(pk, 5);
  msgpack_pack_map(pk, 0);
}
static void b_put_value_map(msgpack_packer *pk) {
  msgpack_pack_array(pk, 6);
  msgpack_pack_uint32(pk, WIRE_PUT);
  msgpack_pack_uint64(pk, 9);
  mp_pack_bin(pk, "k", 1);
  msgpack_pack_map(pk, 0);
  msgpack_pack_nil(pk);
  msgpack_pack_map(pk, 0);
}
static void b_hello_version_str(msgpack_packer *pk) {
  msgpack_pack_array(pk, 4);
  msgpack_pack_uint32(pk, WIRE_HELLO);
  msgpack_pack_uint64(pk, 9);
  mp_pack_cstr(pk, "1");
  mp_pack_cstr(pk, "agent");
}
static void b_get_opts_array(msgpack_packer *pk) {
  msgpack_pack_array(pk, 4);
  msgpack_pack_uint32(pk, WIRE_GET);
  msgpack_pack_uint64(pk, 9);
  mp_pack_bin(pk, "k", 1);
  msgpack_pack_array(pk, 0);
}
static void b_get_opt_r_str(msgpack_packer *pk) {
  msgpack_pack_array(pk, 4);
  msgpack_pack_uint32(pk, WIRE_GET);
  msgpack_pack_uint64(pk, 9);
  mp_pack_bin(pk, "k", 1);
  msgpack_pack_map(pk, 1);
  mp_pack_cstr(pk, "r");
  mp_pack_cstr(pk, "quorum");
}
static void b_get_opt_r_big(msgpack_packer *pk) {
  msgpack_pack_array(pk, 4);
  msgpack_pack_uint32(pk, WIRE_GET);
  msgpack_pack_uint64(pk, 9);
  mp_pack_bin(pk, "k", 1);
  msgpack_pack_map(pk, 1);
  mp_pack_cstr(pk, "r");
  msgpack_pack_int64(pk, (int64_t)INT32_MAX + 1);
}
static void b_type_str(msgpack_packer *pk) {
  msgpack_pack_array(pk, 3);
  mp_pack_cstr(pk, "get");
  msgpack_pack_uint64(pk, 9);
  mp_pack_bin(pk, "k", 1);
}
static void b_reqid_negative(msgpack_packer *pk) {
  msgpack_pack_array(pk, 4);
  msgpack_pack_uint32(pk, WIRE_GET);
  msgpack_pack_int(pk, -1);
  mp_pack_bin(pk, "k", 1);
  msgpack_pack_map(pk, 0);
}
static void b_not_array(msgpack_packer *pk) {
  msgpack_pack_map(pk, 0);
}
static void b_too_few_fields(msgpack_packer *pk) {
  msgpack_pack_array(pk, 3);
  msgpack_pack_uint32(pk, WIRE_PUT);
  msgpack_pack_uint64(pk, 77);
  mp_pack_bin(pk, "k", 1);
}
static void b_trailing_bytes(msgpack_packer *pk) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint32(pk, WIRE_REPL_PUT_OK);
  msgpack_pack_uint64(pk, 9);
  msgpack_pack_nil(pk); /* outside the array */
}
static void b_admin_args_int(msgpack_packer *pk) {
  msgpack_pack_array(pk, 4);
  msgpack_pack_uint32(pk, WIRE_ADMIN);
  msgpack_pack_uint64(pk, 9);
  mp_pack_cstr(pk, "status");
  msgpack_pack_int(pk, 3);
}
static void b_sibling_short(msgpack_packer *pk) {
  msgpack_pack_array(pk, 4);
  msgpack_pack_uint32(pk, WIRE_GET_OK);
  msgpack_pack_uint64(pk, 9);
  msgpack_pack_array(pk, 1);
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint32(pk, 0);
  msgpack_pack_uint64(pk, 1);
  mp_pack_bin(pk, "c", 1);
}
static void b_node_id_long(msgpack_packer *pk) {
  char id[WIRE_NAME_MAX];
  memset(id, 'n', sizeof(id));
  msgpack_pack_array(pk, 5);
  msgpack_pack_uint32(pk, WIRE_PEER_HELLO);
  msgpack_pack_uint64(pk, 9);
  msgpack_pack_uint32(pk, 1);
  mp_pack_str(pk, id, sizeof(id)); /* one byte too long for a buffer */
  msgpack_pack_uint32(pk, 1);
}

static void test_wrong_types(void) {
  static const struct {
    body_fn fn;
    const char *name;
    int type_known;
  } cases[] = {
      {b_get_key_int, "get key int", 1},
      {b_put_value_map, "put value map", 1},
      {b_hello_version_str, "hello version str", 1},
      {b_get_opts_array, "get opts array", 1},
      {b_get_opt_r_str, "get opt r str", 1},
      {b_get_opt_r_big, "get opt r over int32", 1},
      {b_type_str, "type str", 0},
      {b_reqid_negative, "req_id negative", 1},
      {b_not_array, "not an array", 0},
      {b_too_few_fields, "too few fields", 1},
      {b_trailing_bytes, "bytes after the array", 1},
      {b_admin_args_int, "admin args int", 1},
      {b_sibling_short, "sibling of 2 fields", 1},
      {b_node_id_long, "node id too long", 1},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    wire_msg d;
    kvbuf keep;
    int rc = decode_built(cases[i].fn, NULL, &d, &keep);
    if (rc != KV_EPROTO)
      fprintf(stderr, "  case %s: %s\n", cases[i].name, kv_errname(rc));
    CHECK(rc == KV_EPROTO);
    if (cases[i].type_known)
      CHECK(d.type != 0);
    kvbuf_free(&keep);
  }
  /* When the req_id was readable it is reported, so ERROR can echo it. */
  wire_msg d;
  kvbuf keep;
  CHECK(decode_built(b_too_few_fields, NULL, &d, &keep) == KV_EPROTO);
  CHECK(d.type == WIRE_PUT && d.req_id == 77);
  kvbuf_free(&keep);
}

/* ---- limits ---- */

static void test_limits(void) {
  size_t klen = KV_KEY_MAX + 1;
  uint8_t *big = calloc(1, KV_VALUE_MAX_DEFAULT + 2);
  const uint32_t keyed[] = {WIRE_GET,     WIRE_PUT,      WIRE_DEL,
                            WIRE_REPL_PUT, WIRE_REPL_GET, WIRE_COORD_PUT};
  for (size_t i = 0; i < sizeof(keyed) / sizeof(keyed[0]); i++) {
    for (int over = 0; over <= 1; over++) {
      wire_msg m, d;
      memset(&m, 0, sizeof(m));
      m.type = keyed[i];
      m.req_id = 5;
      m.key.ptr = big;
      m.key.len = over ? klen : KV_KEY_MAX;
      kvbuf buf;
      kvbuf_init(&buf);
      CHECK(wire_encode(&buf, &m) == 0);
      int rc = wire_decode(buf.data + 4, buf.len - 4, NULL, &d);
      CHECK(rc == (over ? KV_ETOOBIG : 0));
      CHECK(d.type == keyed[i] && d.req_id == 5);
      kvbuf_free(&buf);
    }
  }
  /* Values: the default limit, then a configured smaller one. */
  const uint32_t valued[] = {WIRE_PUT, WIRE_COORD_PUT};
  for (size_t i = 0; i < 2; i++) {
    wire_msg m, d;
    memset(&m, 0, sizeof(m));
    m.type = valued[i];
    m.key = S("k");
    m.value.ptr = big;
    m.value.len = KV_VALUE_MAX_DEFAULT;
    kvbuf buf;
    kvbuf_init(&buf);
    CHECK(wire_encode(&buf, &m) == 0);
    CHECK(wire_decode(buf.data + 4, buf.len - 4, NULL, &d) == 0);
    wire_limits small = {WIRE_FRAME_MAX, KV_VALUE_MAX_DEFAULT - 1};
    CHECK(wire_decode(buf.data + 4, buf.len - 4, &small, &d) == KV_ETOOBIG);
    kvbuf_free(&buf);
    kvbuf_init(&buf);
    m.value.len = KV_VALUE_MAX_DEFAULT + 1;
    CHECK(wire_encode(&buf, &m) == 0);
    CHECK(wire_decode(buf.data + 4, buf.len - 4, NULL, &d) == KV_ETOOBIG);
    kvbuf_free(&buf);
  }
  free(big);

  /* A body over the hard cap is not encoded; out is left as it was. */
  uint8_t *huge = malloc(WIRE_FRAME_MAX + 1);
  if (huge) {
    kvbuf buf;
    kvbuf_init(&buf);
    CHECK(kvbuf_append(&buf, "x", 1) == 0);
    wire_msg m;
    memset(&m, 0, sizeof(m));
    m.type = WIRE_REPL_PUT;
    m.key = S("k");
    m.object.ptr = huge;
    m.object.len = WIRE_FRAME_MAX;
    CHECK(wire_encode(&buf, &m) == KV_ETOOBIG);
    CHECK(buf.len == 1);
    kvbuf_free(&buf);
    free(huge);
  }

  /* An encoder never appends to a buffer that ran out of memory. */
  kvbuf buf;
  kvbuf_init(&buf);
  buf.oom = 1;
  CHECK(wire_encode_error(&buf, 1, KV_EIO, "x") == KV_ENOMEM);
  CHECK(buf.len == 0);
  kvbuf_free(&buf);
}

static void test_unknown_type(void) {
  kvbuf b;
  kvbuf_init(&b);
  msgpack_packer pk;
  mp_packer_init(&pk, &b);
  msgpack_pack_array(&pk, 4);
  msgpack_pack_uint32(&pk, 99);
  msgpack_pack_uint64(&pk, 123456);
  mp_pack_cstr(&pk, "future");
  msgpack_pack_map(&pk, 0);
  wire_msg d;
  CHECK(wire_decode(b.data, b.len, NULL, &d) == KV_EUNKNOWN);
  CHECK(d.type == 99 && d.req_id == 123456);
  CHECK(strcmp(wire_type_name(99), "unknown") == 0);
  /* Unknown and malformed: malformed wins. */
  CHECK(wire_decode(b.data, b.len - 1, NULL, &d) == KV_EPROTO);
  CHECK(d.type == 99 && d.req_id == 123456);
  kvbuf_free(&b);

  wire_msg m;
  memset(&m, 0, sizeof(m));
  m.type = 99;
  kvbuf_init(&b);
  CHECK(wire_encode(&b, &m) == KV_EINVAL && b.len == 0);
  kvbuf_free(&b);
}

/* Newer peers may add fields and options; older decoders skip them. */
static void test_forward_compat(void) {
  kvbuf b;
  kvbuf_init(&b);
  msgpack_packer pk;
  mp_packer_init(&pk, &b);
  msgpack_pack_array(&pk, 7);
  msgpack_pack_uint32(&pk, WIRE_GET);
  msgpack_pack_uint64(&pk, 3);
  mp_pack_str(&pk, "key", 3); /* a str key is accepted too */
  msgpack_pack_map(&pk, 5);
  mp_pack_cstr(&pk, "r");
  msgpack_pack_int(&pk, WIRE_Q_ALL);
  mp_pack_cstr(&pk, "zz");
  msgpack_pack_array(&pk, 2);
  msgpack_pack_nil(&pk);
  msgpack_pack_true(&pk);
  msgpack_pack_uint32(&pk, 17); /* non-string key */
  mp_pack_cstr(&pk, "v");
  mp_pack_cstr(&pk, "t");
  msgpack_pack_uint32(&pk, 250);
  mp_pack_cstr(&pk, "rg");
  mp_pack_cstr(&pk, "us");
  msgpack_pack_uint32(&pk, 42); /* extra fields */
  mp_pack_cstr(&pk, "later");
  msgpack_pack_map(&pk, 1);
  msgpack_pack_nil(&pk);
  msgpack_pack_double(&pk, 1.5);
  wire_msg d;
  CHECK(wire_decode(b.data, b.len, NULL, &d) == 0);
  CHECK(d.type == WIRE_GET && d.req_id == 3 && seq(d.key, S("key")));
  CHECK(d.opts.r == WIRE_Q_ALL && d.opts.timeout_ms == 250 &&
        seq(d.opts.region, S("us")) && d.opts.w == 0);
  kvbuf_free(&b);

  /* nil opts mean all defaults. */
  kvbuf_init(&b);
  mp_packer_init(&pk, &b);
  msgpack_pack_array(&pk, 4);
  msgpack_pack_uint32(&pk, WIRE_GET);
  msgpack_pack_uint64(&pk, 3);
  mp_pack_bin(&pk, "k", 1);
  msgpack_pack_nil(&pk);
  CHECK(wire_decode(b.data, b.len, NULL, &d) == 0 && d.opts.r == 0);
  kvbuf_free(&b);

  /* A sibling with a fourth field is read, the field skipped. */
  kvbuf_init(&b);
  mp_packer_init(&pk, &b);
  msgpack_pack_array(&pk, 4);
  msgpack_pack_uint32(&pk, WIRE_GET_OK);
  msgpack_pack_uint64(&pk, 3);
  msgpack_pack_array(&pk, 1);
  msgpack_pack_array(&pk, 4);
  msgpack_pack_uint32(&pk, 0);
  msgpack_pack_uint64(&pk, 9);
  mp_pack_bin(&pk, "v", 1);
  mp_pack_cstr(&pk, "extra");
  mp_pack_bin(&pk, "c", 1);
  CHECK(wire_decode(b.data, b.len, NULL, &d) == 0 && d.nsiblings == 1);
  mp_reader r;
  uint32_t n;
  wire_sibling s;
  mp_reader_init(&r, d.raw.ptr, d.raw.len);
  CHECK(mp_read_array(&r, &n) == 0 && n == 1);
  CHECK(wire_sibling_next(&r, &s) == 0 && s.ts_ms == 9 &&
        seq(s.value, S("v")) && mp_remaining(&r) == 0);
  kvbuf_free(&b);
}

/* ---- small helpers ---- */

static void test_error_and_names(void) {
  kvbuf b;
  kvbuf_init(&b);
  CHECK(wire_encode_error(&b, 8, KV_ETIMEDOUT, "only %d of %d in %u ms", 1, 2,
                          1000u) == 0);
  wire_msg d;
  CHECK(wire_decode(b.data + 4, b.len - 4, NULL, &d) == 0);
  CHECK(d.type == WIRE_ERROR && d.req_id == 8 && d.code == KV_ETIMEDOUT &&
        seq(d.text, S("only 1 of 2 in 1000 ms")));
  kvbuf_free(&b);

  /* A long message is cut below WIRE_ERRMSG_MAX, on a UTF-8 boundary. */
  char longmsg[WIRE_ERRMSG_MAX * 2];
  size_t k = 0;
  longmsg[k++] = 'a'; /* makes every 2-byte char straddle the cut */
  while (k + 2 < sizeof(longmsg)) {
    longmsg[k++] = (char)0xc3;
    longmsg[k++] = (char)0xa9; /* é */
  }
  longmsg[k] = '\0';
  kvbuf_init(&b);
  CHECK(wire_encode_error(&b, 1, KV_EIO, "%s", longmsg) == 0);
  CHECK(wire_decode(b.data + 4, b.len - 4, NULL, &d) == 0);
  CHECK(d.text.len < WIRE_ERRMSG_MAX && d.text.len > WIRE_ERRMSG_MAX - 4);
  CHECK((d.text.len - 1) % 2 == 0); /* whole characters only */
  kvbuf_free(&b);

  int32_t q;
  CHECK(wire_parse_quorum("one", &q) == 0 && q == WIRE_Q_ONE);
  CHECK(wire_parse_quorum("QUORUM", &q) == 0 && q == WIRE_Q_QUORUM);
  CHECK(wire_parse_quorum("all", &q) == 0 && q == WIRE_Q_ALL);
  CHECK(wire_parse_quorum("local_one", &q) == 0 && q == WIRE_Q_LOCAL_ONE);
  CHECK(wire_parse_quorum("local_quorum", &q) == 0 &&
        q == WIRE_Q_LOCAL_QUORUM);
  CHECK(wire_parse_quorum("each_quorum", &q) == 0 && q == WIRE_Q_EACH_QUORUM);
  CHECK(wire_parse_quorum("default", &q) == 0 && q == WIRE_Q_DEFAULT);
  CHECK(wire_parse_quorum("3", &q) == 0 && q == 3);
  CHECK(wire_parse_quorum("0", &q) == 0 && q == 0);
  q = 77;
  CHECK(wire_parse_quorum("", &q) == KV_EINVAL && q == 77);
  CHECK(wire_parse_quorum("-1", &q) == KV_EINVAL);
  CHECK(wire_parse_quorum("2x", &q) == KV_EINVAL);
  CHECK(wire_parse_quorum("99999999999", &q) == KV_EINVAL);
  CHECK(wire_parse_quorum("256", &q) == KV_EINVAL);
  CHECK(wire_parse_quorum(NULL, &q) == KV_EINVAL);
  char buf[32];
  CHECK(strcmp(wire_quorum_str(WIRE_Q_QUORUM, buf, sizeof(buf)), "quorum") ==
        0);
  CHECK(strcmp(wire_quorum_str(2, buf, sizeof(buf)), "2") == 0);
  CHECK(strcmp(wire_quorum_str(-99, buf, sizeof(buf)), "-99") == 0);
  for (int32_t v = WIRE_Q_EACH_QUORUM; v <= 5; v++) {
    int32_t back;
    CHECK(wire_parse_quorum(wire_quorum_str(v, buf, sizeof(buf)), &back) ==
              0 &&
          back == v);
  }
  CHECK(strcmp(wire_type_name(WIRE_GET), "get") == 0);
  CHECK(strcmp(wire_type_name(WIRE_PEER_MSG), "peer_msg") == 0);
  CHECK(strcmp(wire_type_name(0), "unknown") == 0);
}

/* ---- random and mutated frames ---- */

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

/* Every slice of d is empty or inside [body, body + len). */
static int slices_inside(const wire_msg *d, const uint8_t *body, size_t len) {
  const kv_slice *all[] = {&d->key,  &d->value,  &d->context,
                           &d->object, &d->text, &d->region,
                           &d->raw,  &d->opts.region};
  for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
    kv_slice s = *all[i];
    if (s.len && (s.ptr < body || s.ptr + s.len > body + len))
      return 0;
  }
  return 1;
}

/* Decodes a body held in an exact-size allocation; checks the result. */
static void fuzz_one(const uint8_t *src, size_t len, int *bad) {
  uint8_t *body = malloc(len ? len : 1);
  memcpy(body, src, len);
  wire_msg d;
  int rc = wire_decode(body, len, NULL, &d);
  if (rc != 0 && rc != KV_EPROTO && rc != KV_ETOOBIG && rc != KV_EUNKNOWN)
    (*bad)++;
  if (rc == 0) {
    if (!slices_inside(&d, body, len))
      (*bad)++;
    if (d.type == WIRE_GET_OK) {
      mp_reader r;
      uint32_t n;
      wire_sibling s;
      mp_reader_init(&r, d.raw.ptr, d.raw.len);
      if (mp_read_array(&r, &n) || n != d.nsiblings)
        (*bad)++;
      for (uint32_t i = 0; i < n; i++)
        if (wire_sibling_next(&r, &s))
          (*bad)++;
    } else {
      /* What decodes re-encodes to a frame that decodes again. */
      kvbuf e;
      kvbuf_init(&e);
      wire_msg d2;
      if (wire_encode(&e, &d) ||
          wire_decode(e.data + 4, e.len - 4, NULL, &d2) ||
          d2.type != d.type || d2.req_id != d.req_id)
        (*bad)++;
      kvbuf_free(&e);
    }
  }
  free(body);
}

static void test_random(void) {
  uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
  const char *env = getenv("KV_TEST_SEED");
  if (env)
    seed = strtoull(env, NULL, 0);
  if (!seed)
    seed = 1;
  printf("test_wire random seed %" PRIu64 " (KV_TEST_SEED to replay)\n",
         seed);
  uint64_t s = seed;

  /* A corpus of valid frames to mutate. */
  kvbuf corpus;
  kvbuf_init(&corpus);
  size_t offs[32];
  size_t ncorp = 0;
  for (uint32_t t = 0; t < 64 && ncorp < 31; t++) {
    if (strcmp(wire_type_name(t), "unknown") == 0)
      continue;
    wire_msg m;
    memset(&m, 0, sizeof(m));
    m.type = t;
    m.req_id = t * 1000u;
    m.key = S("some-key");
    m.value = S("some value");
    m.context = S("ctx");
    m.object = S("obj");
    m.text = S("text");
    m.region = S("r1");
    m.opts = sample_opts();
    if (t == WIRE_ADMIN || t == WIRE_ADMIN_OK || t == WIRE_GET_OK) {
      m.raw.ptr = NULL;
      m.raw.len = 0;
    } else {
      m.raw = S("raw");
    }
    offs[ncorp++] = corpus.len;
    CHECK(wire_encode(&corpus, &m) == 0);
  }
  wire_get_ok_writer w;
  offs[ncorp++] = corpus.len;
  wire_begin_get_ok(&w, &corpus, 1, 2);
  wire_add_sibling(&w, 0, 5, "v1", 2);
  wire_add_sibling(&w, 1, 6, NULL, 0);
  CHECK(wire_end_get_ok(&w, "c", 1) == 0);
  offs[ncorp] = corpus.len;

  int bad = 0;
  uint8_t tmp[RANDOM_BODY_MAX + 64];
  for (int round = 0; round < RANDOM_ROUNDS; round++) {
    size_t len;
    if (round % 4 == 0) {
      /* Random bytes, often starting like a message. */
      len = (size_t)(xorshift(&s) % RANDOM_BODY_MAX);
      for (size_t i = 0; i < len; i++)
        tmp[i] = (uint8_t)xorshift(&s);
      if (len > 2 && (xorshift(&s) & 1)) {
        tmp[0] = (uint8_t)(0x90 | (xorshift(&s) % 8));
        tmp[1] = (uint8_t)(xorshift(&s) % 48);
      }
    } else {
      /* A valid body with a few mutations. */
      size_t i = (size_t)(xorshift(&s) % ncorp);
      const uint8_t *src = corpus.data + offs[i] + WIRE_HEADER_BYTES;
      len = offs[i + 1] - offs[i] - WIRE_HEADER_BYTES;
      if (len > RANDOM_BODY_MAX)
        len = RANDOM_BODY_MAX;
      memcpy(tmp, src, len);
      int muts = 1 + (int)(xorshift(&s) % 4);
      for (int k = 0; k < muts && len > 0; k++) {
        size_t at = (size_t)(xorshift(&s) % len);
        switch (xorshift(&s) % 5) {
        case 0:
          tmp[at] = (uint8_t)xorshift(&s);
          break;
        case 1:
          tmp[at] ^= (uint8_t)(1u << (xorshift(&s) % 8));
          break;
        case 2: /* interesting bytes: big counts and lengths */
          tmp[at] = (const uint8_t[]){0xdd, 0xdf, 0xdb, 0xc6, 0xcf, 0xd3,
                                      0xc1, 0xff, 0x00, 0x7f}[xorshift(&s) %
                                                              10];
          break;
        case 3: /* delete a byte */
          memmove(tmp + at, tmp + at + 1, len - at - 1);
          len--;
          break;
        default: /* duplicate a byte */
          if (len < RANDOM_BODY_MAX) {
            memmove(tmp + at + 1, tmp + at, len - at);
            len++;
          }
        }
      }
    }
    fuzz_one(tmp, len, &bad);
  }
  CHECK(bad == 0);

  /* The corpus as a stream cut at random places: frame_check never
   * reports more than is there. */
  int fbad = 0;
  for (int round = 0; round < 500; round++) {
    size_t cut = (size_t)(xorshift(&s) % (corpus.len + 1));
    size_t off = 0;
    while (off < cut) {
      uint32_t blen;
      int rc = wire_frame_check(corpus.data + off, cut - off, NULL, &blen);
      if (rc == KV_EBUSY)
        break;
      if (rc != 0 || off + 4 + blen > cut) {
        fbad++;
        break;
      }
      off += 4 + blen;
    }
  }
  CHECK(fbad == 0);
  kvbuf_free(&corpus);
  if (bad || fbad)
    printf("random failures with seed %" PRIu64 "\n", seed);
}

/* The example frames of docs/protocol.md decode as the document says. */
static void test_spec_examples(void) {
  const uint8_t hello[] = {0x00, 0x00, 0x00, 0x08, 0x94, 0x01,
                           0x01, 0x01, 0xa3, 'c',  'l',  'i'};
  const uint8_t get[] = {0x00, 0x00, 0x00, 0x07, 0x94, 0x04,
                         0x02, 0xc4, 0x01, 'k',  0x80};
  uint32_t blen;
  wire_msg d;
  CHECK(wire_frame_check(hello, sizeof(hello), NULL, &blen) == 0 &&
        blen == 8);
  CHECK(wire_decode(hello + 4, blen, NULL, &d) == 0);
  CHECK(d.type == WIRE_HELLO && d.req_id == 1 && d.version == 1 &&
        seq(d.text, S("cli")));
  CHECK(wire_frame_check(get, sizeof(get), NULL, &blen) == 0 && blen == 7);
  CHECK(wire_decode(get + 4, blen, NULL, &d) == 0);
  CHECK(d.type == WIRE_GET && d.req_id == 2 && seq(d.key, S("k")) &&
        d.opts.r == 0 && d.opts.flags == 0);
  /* Our encoder produces exactly these bytes. */
  wire_msg m;
  memset(&m, 0, sizeof(m));
  m.type = WIRE_HELLO;
  m.req_id = 1;
  m.version = 1;
  m.text = S("cli");
  kvbuf b;
  kvbuf_init(&b);
  CHECK(wire_encode(&b, &m) == 0 && b.len == sizeof(hello) &&
        memcmp(b.data, hello, sizeof(hello)) == 0);
  b.len = 0;
  memset(&m, 0, sizeof(m));
  m.type = WIRE_GET;
  m.req_id = 2;
  m.key = S("k");
  CHECK(wire_encode(&b, &m) == 0 && b.len == sizeof(get) &&
        memcmp(b.data, get, sizeof(get)) == 0);
  kvbuf_free(&b);
}

int main(void) {
  test_roundtrip_all();
  test_roundtrip_nil_and_empty();
  test_get_ok_writer();
  test_frame_check();
  test_wrong_types();
  test_limits();
  test_unknown_type();
  test_forward_compat();
  test_error_and_names();
  test_spec_examples();
  test_random();
  printf("%d passed, %d failed\n", g_pass, g_fail);
  return g_fail ? 1 : 0;
}
