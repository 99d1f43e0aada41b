/*
 * test_wire.c: unit tests of the wire protocol codecs (proto/wire.h):
 * a round trip of every message type, framing edge cases, truncation at
 * every byte, wrong field types, limits, unknown types, forward
 * compatibility, and a seeded run of random and mutated frames (the seed
 * is printed; set KV_TEST_SEED to replay one). For the PEER_MSG payloads
 * (WIRE_PM_MAP): a round trip of every kind, byte equality with msgpack
 * packed by hand the way node/ packed each payload, every prefix and
 * malformed payloads refused, encoders refusing what decoders would, and
 * seeded random and mutated payloads through every decoder.
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
#include "unit/check.h"
#include "wire.h"

#define RANDOM_ROUNDS 4000  /* random and mutated frames per run */
#define RANDOM_BODY_MAX 300 /* bytes of a random body */

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
      m.server_version = S("0.1.0");
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
            seq(d.region, m.region) && seq(d.server_version, S("0.1.0")));
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

  /* HELLO_OK: the server's version is a trailing field; a node before it
   * sends four fields (no version), a later one may send more. */
  for (int extra = 0; extra < 3; extra++) {
    kvbuf_init(&b);
    mp_packer_init(&pk, &b);
    msgpack_pack_array(&pk, (uint32_t)(6 + extra));
    msgpack_pack_uint32(&pk, WIRE_HELLO_OK);
    msgpack_pack_uint64(&pk, 5);
    msgpack_pack_uint32(&pk, WIRE_PROTOCOL_VERSION);
    mp_pack_cstr(&pk, "n1");
    msgpack_pack_uint32(&pk, 64);
    mp_pack_cstr(&pk, "r1");
    if (extra >= 1)
      mp_pack_cstr(&pk, "0.2.0");
    if (extra >= 2)
      msgpack_pack_uint32(&pk, 99);
    CHECK(wire_decode(b.data, b.len, NULL, &d) == 0 && d.partitions == 64);
    CHECK(extra ? seq(d.server_version, S("0.2.0"))
                : d.server_version.ptr == NULL);
    kvbuf_free(&b);
  }

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

  /* A sibling's fourth field is its expiry; a fifth is skipped. */
  kvbuf_init(&b);
  mp_packer_init(&pk, &b);
  msgpack_pack_array(&pk, 4);
  msgpack_pack_uint32(&pk, WIRE_GET_OK);
  msgpack_pack_uint64(&pk, 3);
  msgpack_pack_array(&pk, 1);
  msgpack_pack_array(&pk, 5);
  msgpack_pack_uint32(&pk, 0);
  msgpack_pack_uint64(&pk, 9);
  mp_pack_bin(&pk, "v", 1);
  msgpack_pack_uint64(&pk, 1234);
  mp_pack_cstr(&pk, "extra");
  mp_pack_bin(&pk, "c", 1);
  CHECK(wire_decode(b.data, b.len, NULL, &d) == 0 && d.nsiblings == 1);
  mp_reader r;
  uint32_t n;
  wire_sibling s;
  mp_reader_init(&r, d.raw.ptr, d.raw.len);
  CHECK(mp_read_array(&r, &n) == 0 && n == 1);
  CHECK(wire_sibling_next(&r, &s) == 0 && s.ts_ms == 9 &&
        seq(s.value, S("v")) && s.expires_ms == 1234 &&
        mp_remaining(&r) == 0);
  kvbuf_free(&b);

  /* REPL_PUT's base: with WIRE_REPL_BASE it round-trips (0 included);
   * without the flag none is sent; the flag without the field (not sent
   * by any version, but possible) reads as no base. */
  static const uint64_t bases[] = {0, 1, 0xfedcba9876543210ull};
  for (size_t i = 0; i < 4; i++) {
    wire_msg m = {.type = WIRE_REPL_PUT, .req_id = 8};
    m.key = S("k");
    m.object = S("o");
    m.flags = i < 3 ? WIRE_REPL_BASE | WIRE_REPL_DURABLE : WIRE_REPL_DURABLE;
    m.base_hash = i < 3 ? bases[i] : 77;
    kvbuf_init(&b);
    CHECK(wire_encode(&b, &m) == 0);
    CHECK(wire_decode(b.data + WIRE_HEADER_BYTES, b.len - WIRE_HEADER_BYTES,
                      NULL, &d) == 0);
    CHECK(d.flags == m.flags && d.base_hash == (i < 3 ? bases[i] : 0));
    kvbuf_free(&b);
  }
  kvbuf_init(&b);
  mp_packer_init(&pk, &b);
  msgpack_pack_array(&pk, 5);
  msgpack_pack_uint32(&pk, WIRE_REPL_PUT);
  msgpack_pack_uint64(&pk, 3);
  mp_pack_bin(&pk, "k", 1);
  mp_pack_bin(&pk, "o", 1);
  msgpack_pack_uint32(&pk, WIRE_REPL_BASE);
  CHECK(wire_decode(b.data, b.len, NULL, &d) == 0 && d.flags == 0 &&
        d.base_hash == 0);
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

/* The seed of this run's random tests: KV_TEST_SEED or the time and pid;
 * printed once. */
static uint64_t run_seed(void) {
  static uint64_t seed;
  if (seed)
    return seed;
  seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
  const char *env = getenv("KV_TEST_SEED");
  if (env)
    seed = strtoull(env, NULL, 0);
  if (!seed)
    seed = 1;
  printf("test_wire random seed %" PRIu64 " (KV_TEST_SEED to replay)\n",
         seed);
  return seed;
}

static void test_random(void) {
  uint64_t seed = run_seed();
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

/* ==== PEER_MSG payloads (WIRE_PM_MAP) ==== */

/* The kinds and their wire numbers: these must never change. */
static const struct {
  uint32_t kind;
  uint32_t number;
  const char *name;
} pm_kinds[] = {
    {WIRE_PM_HINT_PUT, 1, "hint_put"},
    {WIRE_PM_AAE_BRANCHES, 10, "aae_branches"},
    {WIRE_PM_AAE_LEAVES, 11, "aae_leaves"},
    {WIRE_PM_AAE_KEYS, 12, "aae_keys"},
    {WIRE_PM_AAE_OBJS, 13, "aae_objs"},
    {WIRE_PM_HANDOFF, 20, "handoff"},
    {WIRE_PM_HANDOFF_ACK, 21, "handoff_ack"},
    {WIRE_PM_REAP, 30, "reap"},
};
#define PM_NKINDS (sizeof(pm_kinds) / sizeof(pm_kinds[0]))

/* Hashes that take every msgpack integer width. */
static const uint64_t pm_hashes[] = {0,          5,          127,
                                     128,        255,        256,
                                     65535,      65536,      UINT32_MAX,
                                     1ull << 32, UINT64_MAX, 0x0123456789abcdefull};
#define PM_NHASHES (sizeof(pm_hashes) / sizeof(pm_hashes[0]))

/* Sample keys, objects and owner of the payloads below. */
static uint8_t pm_long_key[300]; /* a bin 16 key */
static uint8_t pm_big_obj[70000]; /* a bin 32 object */

static void pm_fill_samples(void) {
  for (size_t i = 0; i < sizeof(pm_long_key); i++)
    pm_long_key[i] = (uint8_t)('a' + (i + 2) % 26); /* "cde..." */
  for (size_t i = 0; i < sizeof(pm_big_obj); i++)
    pm_big_obj[i] = (uint8_t)(i * 7);
}

/* The i-th of a few keys, ascending: "", "a", "a\0", "ab", "b", "cde...". */
static kv_slice pm_key(uint32_t i) {
  static const struct {
    const char *p;
    size_t len;
  } k[] = {{"", 0}, {"a", 1}, {"a\0", 2}, {"ab", 2}, {"b", 1}};
  if (i < 5) {
    kv_slice s = {(const uint8_t *)k[i].p, k[i].len};
    return s;
  }
  kv_slice s = {pm_long_key, sizeof(pm_long_key)};
  return s;
}
#define PM_NKEYS 6u

static kv_slice pm_obj(uint32_t i) {
  if (i == 3) {
    kv_slice s = {pm_big_obj, sizeof(pm_big_obj)};
    return s;
  }
  static const char *o[] = {"obj-0", "", "\x92\x01\x91\x94\x01\x02\x03\x90",
                            "", "o4", "o5"};
  return S(o[i % 6]);
}

/* Fills m with a sample payload of kind (variant 0: full, 1: empty lists
 * and small numbers); list items go into a and b, which the caller frees. */
static void pm_sample(uint32_t kind, int variant, wire_pm *m,
                      wire_pm_items *a, wire_pm_items *b) {
  memset(m, 0, sizeof(*m));
  m->kind = kind;
  wire_pm_items_init(a);
  wire_pm_items_init(b);
  uint32_t n = variant ? 0 : PM_NKEYS;
  uint32_t part = variant ? 0 : 70000;
  switch (kind) {
  case WIRE_PM_HINT_PUT:
    m->hint_put.owner = S(variant ? "n" : "node-2.eu-west");
    m->hint_put.key = pm_key(variant ? 0 : 5);
    m->hint_put.object = pm_obj(variant ? 1 : 3);
    m->hint_put.durable = !variant;
    break;
  case WIRE_PM_AAE_BRANCHES:
    m->aae_branches.part = part;
    for (uint32_t i = 0; i < WIRE_AAE_BRANCHES; i++)
      m->aae_branches.branch[i] = variant ? 0 : pm_hashes[i % PM_NHASHES];
    break;
  case WIRE_PM_AAE_LEAVES:
    m->aae_leaves.part = part;
    m->aae_leaves.branches = variant ? 0 : 0x80000015u;
    for (uint32_t i = 0; i < WIRE_AAE_SEGMENTS; i++)
      if ((m->aae_leaves.branches >> (i / WIRE_AAE_LEAVES_PER_BRANCH)) & 1u)
        m->aae_leaves.leaf[i] = pm_hashes[(i * 5) % PM_NHASHES];
    break;
  case WIRE_PM_AAE_KEYS:
    m->aae_keys.part = part;
    if (!variant) {
      const uint32_t segs[] = {0, 1, 63, 64, 127, 128, 255, 256, 1023};
      for (size_t i = 0; i < sizeof(segs) / sizeof(segs[0]); i++)
        m->aae_keys.segs[segs[i] / 64] |= 1ull << (segs[i] % 64);
    }
    for (uint32_t i = 0; i < n; i++)
      CHECK(wire_pm_items_add_key_hash(a, pm_key(i).ptr, pm_key(i).len,
                                       pm_hashes[i * 2 % PM_NHASHES]) == 0);
    m->aae_keys.keys = wire_pm_items_list(a);
    break;
  case WIRE_PM_AAE_OBJS:
    m->aae_objs.part = part;
    for (uint32_t i = 0; i < n; i++)
      CHECK(wire_pm_items_add_key_object(a, pm_key(i).ptr, pm_key(i).len,
                                         pm_obj(i).ptr, pm_obj(i).len) == 0);
    for (uint32_t i = 0; i < n; i += 2)
      CHECK(wire_pm_items_add_key(b, pm_key(i).ptr, pm_key(i).len) == 0);
    m->aae_objs.objs = wire_pm_items_list(a);
    m->aae_objs.want = wire_pm_items_list(b);
    break;
  case WIRE_PM_HANDOFF:
    m->handoff.part = part;
    for (uint32_t i = 0; i < n; i++)
      CHECK(wire_pm_items_add_key_object(a, pm_key(i).ptr, pm_key(i).len,
                                         pm_obj(i).ptr, pm_obj(i).len) == 0);
    m->handoff.objs = wire_pm_items_list(a);
    m->handoff.last = variant != 0;
    break;
  case WIRE_PM_HANDOFF_ACK:
    m->handoff_ack.part = part;
    m->handoff_ack.count = variant ? 0 : WIRE_HANDOFF_BATCH_MAX;
    break;
  case WIRE_PM_REAP:
    m->reap.part = part;
    m->reap.key = pm_key(variant ? 0 : 3);
    m->reap.object = pm_obj(variant ? 1 : 2);
    break;
  default:
    CHECK(!"kind without a sample");
  }
}

/* Lists a and b hold the same elements of shape (0 key+hash, 1 key+object,
 * 2 key), each read without error. */
static int pm_list_eq(const wire_pm_list *a, const wire_pm_list *b,
                      int shape) {
  if (a->count != b->count)
    return 0;
  wire_pm_iter ia, ib;
  wire_pm_iter_init(&ia, a);
  wire_pm_iter_init(&ib, b);
  for (;;) {
    int ra, rb;
    if (shape == 0) {
      wire_pm_key_hash x, y;
      ra = wire_pm_next_key_hash(&ia, &x);
      rb = wire_pm_next_key_hash(&ib, &y);
      if (ra == 0 && rb == 0 && (!seq(x.key, y.key) || x.hash != y.hash))
        return 0;
    } else if (shape == 1) {
      wire_pm_key_object x, y;
      ra = wire_pm_next_key_object(&ia, &x);
      rb = wire_pm_next_key_object(&ib, &y);
      if (ra == 0 && rb == 0 &&
          (!seq(x.key, y.key) || !seq(x.object, y.object)))
        return 0;
    } else {
      kv_slice x, y;
      ra = wire_pm_next_key(&ia, &x);
      rb = wire_pm_next_key(&ib, &y);
      if (ra == 0 && rb == 0 && !seq(x, y))
        return 0;
    }
    if (ra != rb)
      return 0;
    if (ra == KV_ENOTFOUND)
      return 1;
    if (ra != 0)
      return 0;
  }
}

/* The fields of a's kind are equal in a and b. */
static int pm_eq(const wire_pm *a, const wire_pm *b) {
  if (a->kind != b->kind)
    return 0;
  switch (a->kind) {
  case WIRE_PM_HINT_PUT:
    return seq(a->hint_put.owner, b->hint_put.owner) &&
           seq(a->hint_put.key, b->hint_put.key) &&
           seq(a->hint_put.object, b->hint_put.object) &&
           a->hint_put.durable == b->hint_put.durable;
  case WIRE_PM_AAE_BRANCHES:
    return a->aae_branches.part == b->aae_branches.part &&
           memcmp(a->aae_branches.branch, b->aae_branches.branch,
                  sizeof(a->aae_branches.branch)) == 0;
  case WIRE_PM_AAE_LEAVES:
    if (a->aae_leaves.part != b->aae_leaves.part ||
        a->aae_leaves.branches != b->aae_leaves.branches)
      return 0;
    for (uint32_t i = 0; i < WIRE_AAE_SEGMENTS; i++)
      if (((a->aae_leaves.branches >> (i / WIRE_AAE_LEAVES_PER_BRANCH)) & 1u) &&
          a->aae_leaves.leaf[i] != b->aae_leaves.leaf[i])
        return 0;
    return 1;
  case WIRE_PM_AAE_KEYS:
    return a->aae_keys.part == b->aae_keys.part &&
           memcmp(a->aae_keys.segs, b->aae_keys.segs,
                  sizeof(a->aae_keys.segs)) == 0 &&
           pm_list_eq(&a->aae_keys.keys, &b->aae_keys.keys, 0);
  case WIRE_PM_AAE_OBJS:
    return a->aae_objs.part == b->aae_objs.part &&
           pm_list_eq(&a->aae_objs.objs, &b->aae_objs.objs, 1) &&
           pm_list_eq(&a->aae_objs.want, &b->aae_objs.want, 2);
  case WIRE_PM_HANDOFF:
    return a->handoff.part == b->handoff.part &&
           a->handoff.last == b->handoff.last &&
           pm_list_eq(&a->handoff.objs, &b->handoff.objs, 1);
  case WIRE_PM_HANDOFF_ACK:
    return a->handoff_ack.part == b->handoff_ack.part &&
           a->handoff_ack.count == b->handoff_ack.count;
  case WIRE_PM_REAP:
    return a->reap.part == b->reap.part && seq(a->reap.key, b->reap.key) &&
           seq(a->reap.object, b->reap.object);
  default:
    return 0;
  }
}

/* Decodes a payload from an exact-size copy (so ASan sees any overread). */
static int pm_decode_copy(uint32_t kind, const uint8_t *p, size_t len) {
  uint8_t *cut = malloc(len ? len : 1);
  if (len)
    memcpy(cut, p, len);
  static wire_pm d;
  int rc = wire_pm_decode(kind, cut, len, &d);
  free(cut);
  return rc;
}

static void test_pm_names(void) {
  uint32_t seen = 0;
#define PM_COUNT(name, num, str, field) seen++;
  WIRE_PM_MAP(PM_COUNT)
#undef PM_COUNT
  CHECK(seen == PM_NKINDS);
  for (size_t i = 0; i < PM_NKINDS; i++) {
    CHECK(pm_kinds[i].kind == pm_kinds[i].number);
    CHECK(strcmp(wire_pm_name(pm_kinds[i].kind), pm_kinds[i].name) == 0);
  }
  CHECK(strcmp(wire_pm_name(0), "unknown") == 0);
  CHECK(strcmp(wire_pm_name(2), "unknown") == 0);
  CHECK(strcmp(wire_pm_name(UINT32_MAX), "unknown") == 0);
  CHECK(WIRE_AAE_SEGMENTS == 1024);
}

static void test_pm_roundtrip(void) {
  for (size_t i = 0; i < PM_NKINDS; i++) {
    for (int variant = 0; variant <= 1; variant++) {
      wire_pm m, d;
      wire_pm_items a, b;
      pm_sample(pm_kinds[i].kind, variant, &m, &a, &b);
      kvbuf e1, e2;
      kvbuf_init(&e1);
      kvbuf_init(&e2);
      CHECK(wire_pm_encode(&e1, &m) == 0);
      memset(&d, 0xa5, sizeof(d));
      CHECK(wire_pm_decode(m.kind, e1.data, e1.len, &d) == 0);
      CHECK(d.kind == m.kind);
      if (!pm_eq(&m, &d))
        fprintf(stderr, "  kind %s variant %d differs\n", pm_kinds[i].name,
                variant);
      CHECK(pm_eq(&m, &d));
      CHECK(wire_pm_encode(&e2, &d) == 0);
      CHECK(e1.len == e2.len && memcmp(e1.data, e2.data, e1.len) == 0);

      /* Within a PEER_MSG frame, as the nodes send it. */
      kvbuf f;
      kvbuf_init(&f);
      CHECK(kvbuf_append(&f, "x", 1) == 0);
      CHECK(wire_encode_pm(&f, 77, &m) == 0);
      uint32_t blen = 0;
      CHECK(wire_frame_check(f.data + 1, f.len - 1, NULL, &blen) == 0);
      wire_msg fm;
      CHECK(wire_decode(f.data + 1 + WIRE_HEADER_BYTES, blen, NULL, &fm) ==
            0);
      CHECK(fm.type == WIRE_PEER_MSG && fm.req_id == 77 &&
            fm.flags == m.kind && seq(fm.raw, (kv_slice){e1.data, e1.len}));
      kvbuf_free(&f);
      kvbuf_free(&e1);
      kvbuf_free(&e2);
      wire_pm_items_free(&a);
      wire_pm_items_free(&b);
    }
  }
  /* Decoded slices point into the payload. */
  wire_pm m, d;
  wire_pm_items a, b;
  pm_sample(WIRE_PM_AAE_OBJS, 0, &m, &a, &b);
  kvbuf e;
  kvbuf_init(&e);
  CHECK(wire_pm_encode(&e, &m) == 0);
  CHECK(wire_pm_decode(WIRE_PM_AAE_OBJS, e.data, e.len, &d) == 0);
  CHECK(d.aae_objs.objs.items.ptr > e.data &&
        d.aae_objs.want.items.ptr + d.aae_objs.want.items.len ==
            e.data + e.len);
  wire_pm_iter it;
  wire_pm_iter_init(&it, &d.aae_objs.objs);
  wire_pm_key_object ko;
  uint32_t got = 0;
  while (wire_pm_next_key_object(&it, &ko) == 0) {
    CHECK(ko.key.len == 0 || (ko.key.ptr > e.data &&
                              ko.key.ptr + ko.key.len <= e.data + e.len));
    got++;
  }
  CHECK(got == PM_NKEYS);
  CHECK(wire_pm_next_key_object(&it, &ko) == KV_ENOTFOUND);
  kvbuf_free(&e);
  wire_pm_items_free(&a);
  wire_pm_items_free(&b);
}

/* The encoders give exactly the bytes node/coord.c and node/repair.c
 * packed by hand (the same msgpack-c calls, copied here). */
static void test_pm_hand_packed(void) {
  for (size_t i = 0; i < PM_NKINDS; i++) {
    for (int variant = 0; variant <= 1; variant++) {
      wire_pm m;
      wire_pm_items a, b;
      uint32_t kind = pm_kinds[i].kind;
      pm_sample(kind, variant, &m, &a, &b);
      kvbuf hand, enc;
      kvbuf_init(&hand);
      kvbuf_init(&enc);
      msgpack_packer pk;
      mp_packer_init(&pk, &hand);
      uint32_t n = variant ? 0 : PM_NKEYS;
      switch (kind) {
      case WIRE_PM_HINT_PUT: { /* coord__put_local_committed */
        char owner[WIRE_NAME_MAX];
        snprintf(owner, sizeof(owner), "%.*s", (int)m.hint_put.owner.len,
                 (const char *)m.hint_put.owner.ptr);
        msgpack_pack_array(&pk, 4);
        mp_pack_cstr(&pk, owner);
        mp_pack_bin(&pk, m.hint_put.key.ptr, m.hint_put.key.len);
        mp_pack_bin(&pk, m.hint_put.object.ptr, m.hint_put.object.len);
        if (m.hint_put.durable)
          msgpack_pack_true(&pk);
        else
          msgpack_pack_false(&pk);
        break;
      }
      case WIRE_PM_AAE_BRANCHES: /* repair__aae_start */
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint32(&pk, m.aae_branches.part);
        msgpack_pack_array(&pk, 32);
        for (uint32_t k = 0; k < 32; k++)
          msgpack_pack_uint64(&pk, m.aae_branches.branch[k]);
        break;
      case WIRE_PM_AAE_LEAVES: { /* repair__aae_branches */
        bool diff[32];
        uint32_t ndiff = 0;
        for (uint32_t k = 0; k < 32; k++) {
          diff[k] = (m.aae_leaves.branches >> k) & 1u;
          ndiff += diff[k];
        }
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint32(&pk, m.aae_leaves.part);
        msgpack_pack_array(&pk, ndiff);
        for (uint32_t k = 0; k < 32; k++) {
          if (!diff[k])
            continue;
          msgpack_pack_array(&pk, 2);
          msgpack_pack_uint32(&pk, k);
          msgpack_pack_array(&pk, 32);
          for (uint32_t l = 0; l < 32; l++)
            msgpack_pack_uint64(&pk, m.aae_leaves.leaf[k * 32 + l]);
        }
        break;
      }
      case WIRE_PM_AAE_KEYS: { /* repair__collect + repair__aae_leaves */
        kvbuf items;
        kvbuf_init(&items);
        msgpack_packer ipk;
        mp_packer_init(&ipk, &items);
        for (uint32_t k = 0; k < n; k++) {
          msgpack_pack_array(&ipk, 2);
          mp_pack_bin(&ipk, pm_key(k).ptr, pm_key(k).len);
          msgpack_pack_uint64(&ipk, pm_hashes[k * 2 % PM_NHASHES]);
        }
        uint32_t count = 0;
        for (uint32_t s = 0; s < 1024; s++)
          count += (m.aae_keys.segs[s / 64] >> (s % 64)) & 1u;
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint32(&pk, m.aae_keys.part);
        msgpack_pack_array(&pk, count);
        for (uint32_t s = 0; s < 1024; s++)
          if ((m.aae_keys.segs[s / 64] >> (s % 64)) & 1u)
            msgpack_pack_uint32(&pk, s);
        msgpack_pack_array(&pk, n);
        kvbuf_append(&hand, items.data, items.len);
        kvbuf_free(&items);
        break;
      }
      case WIRE_PM_AAE_OBJS: { /* repair__join_fn + repair__aae_keys */
        kvbuf objs, want;
        kvbuf_init(&objs);
        kvbuf_init(&want);
        msgpack_packer opk, wpk;
        mp_packer_init(&opk, &objs);
        mp_packer_init(&wpk, &want);
        uint32_t nwant = 0;
        for (uint32_t k = 0; k < n; k++) {
          msgpack_pack_array(&opk, 2);
          mp_pack_bin(&opk, pm_key(k).ptr, pm_key(k).len);
          mp_pack_bin(&opk, pm_obj(k).ptr, pm_obj(k).len);
        }
        for (uint32_t k = 0; k < n; k += 2, nwant++)
          mp_pack_bin(&wpk, pm_key(k).ptr, pm_key(k).len);
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint32(&pk, m.aae_objs.part);
        msgpack_pack_array(&pk, n);
        kvbuf_append(&hand, objs.data, objs.len);
        msgpack_pack_array(&pk, nwant);
        kvbuf_append(&hand, want.data, want.len);
        kvbuf_free(&objs);
        kvbuf_free(&want);
        break;
      }
      case WIRE_PM_HANDOFF: { /* repair__batch_fn + repair__handoff_send */
        kvbuf items;
        kvbuf_init(&items);
        msgpack_packer ipk;
        mp_packer_init(&ipk, &items);
        for (uint32_t k = 0; k < n; k++) {
          msgpack_pack_array(&ipk, 2);
          mp_pack_bin(&ipk, pm_key(k).ptr, pm_key(k).len);
          mp_pack_bin(&ipk, pm_obj(k).ptr, pm_obj(k).len);
        }
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint32(&pk, m.handoff.part);
        msgpack_pack_array(&pk, n);
        kvbuf_append(&hand, items.data, items.len);
        if (m.handoff.last)
          msgpack_pack_true(&pk);
        else
          msgpack_pack_false(&pk);
        kvbuf_free(&items);
        break;
      }
      case WIRE_PM_HANDOFF_ACK: /* the documented [part, count] */
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint32(&pk, m.handoff_ack.part);
        msgpack_pack_uint32(&pk, m.handoff_ack.count);
        break;
      case WIRE_PM_REAP: /* repair_maybe_reap */
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint32(&pk, m.reap.part);
        mp_pack_bin(&pk, m.reap.key.ptr, m.reap.key.len);
        mp_pack_bin(&pk, m.reap.object.ptr, m.reap.object.len);
        break;
      default:
        CHECK(!"kind without a hand-packed layout");
      }
      CHECK(!hand.oom);
      CHECK(wire_pm_encode(&enc, &m) == 0);
      int same = enc.len == hand.len &&
                 memcmp(enc.data, hand.data, hand.len) == 0;
      if (!same)
        fprintf(stderr, "  kind %s variant %d: encoder differs from node/\n",
                pm_kinds[i].name, variant);
      CHECK(same);
      /* The typed encoder gives the same bytes as the dispatch. */
      kvbuf typed;
      kvbuf_init(&typed);
      int rc = -1;
      switch (kind) {
#define PM_TYPED(name, num, str, field)                                        \
  case (num):                                                                  \
    rc = wire_pm_encode_##field(&typed, &m.field);                             \
    break;
        WIRE_PM_MAP(PM_TYPED)
#undef PM_TYPED
      default:
        break;
      }
      CHECK(rc == 0 && typed.len == enc.len &&
            memcmp(typed.data, enc.data, enc.len) == 0);
      kvbuf_free(&typed);
      kvbuf_free(&hand);
      kvbuf_free(&enc);
      wire_pm_items_free(&a);
      wire_pm_items_free(&b);
    }
  }

  /* A few payloads spelled out byte by byte, as docs/protocol.md shows. */
  wire_pm m;
  memset(&m, 0, sizeof(m));
  m.kind = WIRE_PM_HINT_PUT;
  m.hint_put.owner = S("n2");
  m.hint_put.key = S("k");
  m.hint_put.object = S("\x90");
  m.hint_put.durable = true;
  const uint8_t hint[] = {0x94, 0xa2, 'n', '2', 0xc4, 0x01,
                          'k',  0xc4, 0x01, 0x90, 0xc3};
  kvbuf e;
  kvbuf_init(&e);
  CHECK(wire_pm_encode(&e, &m) == 0 && e.len == sizeof(hint) &&
        memcmp(e.data, hint, sizeof(hint)) == 0);
  memset(&m, 0, sizeof(m));
  m.kind = WIRE_PM_HANDOFF_ACK;
  m.handoff_ack.part = 300;
  m.handoff_ack.count = 64;
  const uint8_t ack[] = {0x92, 0xcd, 0x01, 0x2c, 0x40};
  e.len = 0;
  CHECK(wire_pm_encode(&e, &m) == 0 && e.len == sizeof(ack) &&
        memcmp(e.data, ack, sizeof(ack)) == 0);
  memset(&m, 0, sizeof(m));
  m.kind = WIRE_PM_REAP;
  m.reap.part = 5;
  m.reap.key = S("k");
  m.reap.object = S("");
  const uint8_t reap[] = {0x93, 0x05, 0xc4, 0x01, 'k', 0xc4, 0x00};
  e.len = 0;
  CHECK(wire_pm_encode(&e, &m) == 0 && e.len == sizeof(reap) &&
        memcmp(e.data, reap, sizeof(reap)) == 0);
  kvbuf_free(&e);
}

/* Every prefix of every valid payload is refused, and so is a payload with
 * a byte after it; fields added after the listed ones are skipped. */
static void test_pm_truncations(void) {
  for (size_t i = 0; i < PM_NKINDS; i++) {
    for (int variant = 0; variant <= 1; variant++) {
      wire_pm m;
      wire_pm_items a, b;
      uint32_t kind = pm_kinds[i].kind;
      pm_sample(kind, variant, &m, &a, &b);
      kvbuf e;
      kvbuf_init(&e);
      CHECK(wire_pm_encode(&e, &m) == 0);
      int bad = 0;
      for (size_t k = 0; k < e.len; k++) {
        if (pm_decode_copy(kind, e.data, k) != KV_EPROTO)
          bad++;
        /* A long payload: every prefix near its ends and some between. */
        if (k > 4096 && k < e.len - 4096)
          k += 997;
      }
      if (bad)
        fprintf(stderr, "  kind %s: %d prefixes accepted\n",
                pm_kinds[i].name, bad);
      CHECK(bad == 0);
      CHECK(pm_decode_copy(kind, e.data, e.len) == 0);

      /* A trailing byte. */
      kvbuf t;
      kvbuf_init(&t);
      CHECK(kvbuf_append(&t, e.data, e.len) == 0);
      CHECK(kvbuf_append(&t, "\xc0", 1) == 0);
      CHECK(pm_decode_copy(kind, t.data, t.len) == KV_EPROTO);

      /* Two more fields of a later version: accepted, same values. The
       * array header grows by one (fixarray, counts under 14). */
      CHECK(e.data[0] >= 0x92 && e.data[0] <= 0x94);
      t.len = 0;
      uint8_t hdr = (uint8_t)(e.data[0] + 2);
      CHECK(kvbuf_append(&t, &hdr, 1) == 0);
      CHECK(kvbuf_append(&t, e.data + 1, e.len - 1) == 0);
      CHECK(kvbuf_append(&t, "\x81\xa1x\x92\x01\xc0\xa5later", 12) == 0);
      wire_pm d;
      CHECK(wire_pm_decode(kind, t.data, t.len, &d) == 0 && pm_eq(&m, &d));
      /* ... but not one field fewer. */
      hdr = (uint8_t)(e.data[0] - 1);
      t.len = 0;
      CHECK(kvbuf_append(&t, &hdr, 1) == 0);
      CHECK(kvbuf_append(&t, e.data + 1, e.len - 1) == 0);
      CHECK(pm_decode_copy(kind, t.data, t.len) == KV_EPROTO);
      kvbuf_free(&t);
      kvbuf_free(&e);
      wire_pm_items_free(&a);
      wire_pm_items_free(&b);
    }
  }
}

/* Builds one malformed payload. */
typedef void (*pm_fn)(msgpack_packer *pk);

static void pm_branches(msgpack_packer *pk, uint32_t n) {
  msgpack_pack_array(pk, n);
  for (uint32_t i = 0; i < n; i++)
    msgpack_pack_uint64(pk, i);
}
static void pm_leafgroup(msgpack_packer *pk, uint32_t b, uint32_t nleaves) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint32(pk, b);
  pm_branches(pk, nleaves);
}

static void g_hint_owner_bin(msgpack_packer *pk) {
  msgpack_pack_array(pk, 4);
  mp_pack_bin(pk, "n2", 2);
  mp_pack_bin(pk, "k", 1);
  mp_pack_bin(pk, "o", 1);
  msgpack_pack_true(pk);
}
static void g_hint_owner_empty(msgpack_packer *pk) {
  msgpack_pack_array(pk, 4);
  mp_pack_str(pk, "", 0);
  mp_pack_bin(pk, "k", 1);
  mp_pack_bin(pk, "o", 1);
  msgpack_pack_true(pk);
}
static void g_hint_owner_long(msgpack_packer *pk) {
  char id[WIRE_NAME_MAX];
  memset(id, 'n', sizeof(id));
  msgpack_pack_array(pk, 4);
  mp_pack_str(pk, id, sizeof(id));
  mp_pack_bin(pk, "k", 1);
  mp_pack_bin(pk, "o", 1);
  msgpack_pack_true(pk);
}
static void g_hint_owner_nul(msgpack_packer *pk) {
  msgpack_pack_array(pk, 4);
  mp_pack_str(pk, "n\0x", 3);
  mp_pack_bin(pk, "k", 1);
  mp_pack_bin(pk, "o", 1);
  msgpack_pack_true(pk);
}
static void g_hint_durable_int(msgpack_packer *pk) {
  msgpack_pack_array(pk, 4);
  mp_pack_cstr(pk, "n2");
  mp_pack_bin(pk, "k", 1);
  mp_pack_bin(pk, "o", 1);
  msgpack_pack_uint32(pk, 1);
}
static void g_hint_object_nil(msgpack_packer *pk) {
  msgpack_pack_array(pk, 4);
  mp_pack_cstr(pk, "n2");
  mp_pack_bin(pk, "k", 1);
  msgpack_pack_nil(pk);
  msgpack_pack_false(pk);
}
static void g_hint_key_long(msgpack_packer *pk) {
  static uint8_t big[KV_KEY_MAX + 1];
  msgpack_pack_array(pk, 4);
  mp_pack_cstr(pk, "n2");
  mp_pack_bin(pk, big, sizeof(big));
  mp_pack_bin(pk, "o", 1);
  msgpack_pack_false(pk);
}
static void g_not_array(msgpack_packer *pk) {
  msgpack_pack_map(pk, 1);
  msgpack_pack_uint32(pk, 1);
  msgpack_pack_uint32(pk, 2);
}
static void g_huge_array(msgpack_packer *pk) {
  msgpack_pack_array(pk, UINT32_MAX);
  msgpack_pack_uint32(pk, 1);
}
static void g_branches_31(msgpack_packer *pk) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint32(pk, 1);
  pm_branches(pk, 31);
}
static void g_branches_33(msgpack_packer *pk) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint32(pk, 1);
  pm_branches(pk, 33);
}
static void g_branches_part_neg(msgpack_packer *pk) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_int32(pk, -1);
  pm_branches(pk, 32);
}
static void g_branches_part_big(msgpack_packer *pk) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint64(pk, 1ull << 32);
  pm_branches(pk, 32);
}
static void g_branches_hash_neg(msgpack_packer *pk) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint32(pk, 1);
  msgpack_pack_array(pk, 32);
  for (uint32_t i = 0; i < 32; i++)
    msgpack_pack_int64(pk, i == 31 ? -1 : 1);
}
static void g_leaves_branch_32(msgpack_packer *pk) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint32(pk, 1);
  msgpack_pack_array(pk, 1);
  pm_leafgroup(pk, 32, 32);
}
static void g_leaves_unsorted(msgpack_packer *pk) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint32(pk, 1);
  msgpack_pack_array(pk, 2);
  pm_leafgroup(pk, 5, 32);
  pm_leafgroup(pk, 4, 32);
}
static void g_leaves_duplicate(msgpack_packer *pk) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint32(pk, 1);
  msgpack_pack_array(pk, 2);
  pm_leafgroup(pk, 5, 32);
  pm_leafgroup(pk, 5, 32);
}
static void g_leaves_31(msgpack_packer *pk) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint32(pk, 1);
  msgpack_pack_array(pk, 1);
  pm_leafgroup(pk, 0, 31);
}
static void g_leaves_group_3(msgpack_packer *pk) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint32(pk, 1);
  msgpack_pack_array(pk, 1);
  msgpack_pack_array(pk, 3);
  msgpack_pack_uint32(pk, 0);
  pm_branches(pk, 32);
  msgpack_pack_nil(pk);
}
static void g_leaves_33_groups(msgpack_packer *pk) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint32(pk, 1);
  msgpack_pack_array(pk, 33);
  for (uint32_t b = 0; b < 33; b++)
    pm_leafgroup(pk, b, 32);
}
static void g_keys_seg_1024(msgpack_packer *pk) {
  msgpack_pack_array(pk, 3);
  msgpack_pack_uint32(pk, 1);
  msgpack_pack_array(pk, 1);
  msgpack_pack_uint32(pk, 1024);
  msgpack_pack_array(pk, 0);
}
static void g_keys_seg_unsorted(msgpack_packer *pk) {
  msgpack_pack_array(pk, 3);
  msgpack_pack_uint32(pk, 1);
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint32(pk, 9);
  msgpack_pack_uint32(pk, 3);
  msgpack_pack_array(pk, 0);
}
static void g_keys_seg_duplicate(msgpack_packer *pk) {
  msgpack_pack_array(pk, 3);
  msgpack_pack_uint32(pk, 1);
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint32(pk, 3);
  msgpack_pack_uint32(pk, 3);
  msgpack_pack_array(pk, 0);
}
static void pm_keys_head(msgpack_packer *pk, uint32_t nkeys) {
  msgpack_pack_array(pk, 3);
  msgpack_pack_uint32(pk, 1);
  msgpack_pack_array(pk, 1);
  msgpack_pack_uint32(pk, 0);
  msgpack_pack_array(pk, nkeys);
}
static void pm_key_hash(msgpack_packer *pk, const char *k, uint64_t h) {
  msgpack_pack_array(pk, 2);
  mp_pack_bin(pk, k, strlen(k));
  msgpack_pack_uint64(pk, h);
}
static void g_keys_unsorted(msgpack_packer *pk) {
  pm_keys_head(pk, 2);
  pm_key_hash(pk, "b", 1);
  pm_key_hash(pk, "a", 2);
}
static void g_keys_duplicate(msgpack_packer *pk) {
  pm_keys_head(pk, 2);
  pm_key_hash(pk, "a", 1);
  pm_key_hash(pk, "a", 2);
}
static void g_keys_longer_first(msgpack_packer *pk) {
  pm_keys_head(pk, 2);
  pm_key_hash(pk, "ab", 1);
  pm_key_hash(pk, "a", 2);
}
static void g_keys_pair_of_3(msgpack_packer *pk) {
  pm_keys_head(pk, 1);
  msgpack_pack_array(pk, 3);
  mp_pack_bin(pk, "a", 1);
  msgpack_pack_uint64(pk, 1);
  msgpack_pack_nil(pk);
}
static void g_keys_hash_bin(msgpack_packer *pk) {
  pm_keys_head(pk, 1);
  msgpack_pack_array(pk, 2);
  mp_pack_bin(pk, "a", 1);
  mp_pack_bin(pk, "h", 1);
}
static void g_keys_over_max(msgpack_packer *pk) {
  pm_keys_head(pk, WIRE_AAE_KEYS_MAX + 1);
  for (uint32_t i = 0; i < WIRE_AAE_KEYS_MAX + 1; i++) {
    char k[16];
    snprintf(k, sizeof(k), "%08u", (unsigned)i);
    pm_key_hash(pk, k, i);
  }
}
static void g_objs_want_pairs(msgpack_packer *pk) {
  msgpack_pack_array(pk, 3);
  msgpack_pack_uint32(pk, 1);
  msgpack_pack_array(pk, 0);
  msgpack_pack_array(pk, 1);
  pm_key_hash(pk, "a", 1);
}
static void g_objs_obj_hash(msgpack_packer *pk) {
  msgpack_pack_array(pk, 3);
  msgpack_pack_uint32(pk, 1);
  msgpack_pack_array(pk, 1);
  pm_key_hash(pk, "a", 1);
  msgpack_pack_array(pk, 0);
}
static void g_objs_want_over_max(msgpack_packer *pk) {
  msgpack_pack_array(pk, 3);
  msgpack_pack_uint32(pk, 1);
  msgpack_pack_array(pk, 0);
  msgpack_pack_array(pk, WIRE_AAE_KEYS_MAX + 1);
  for (uint32_t i = 0; i < WIRE_AAE_KEYS_MAX + 1; i++)
    mp_pack_bin(pk, "", 0);
}
static void g_handoff_over_max(msgpack_packer *pk) {
  msgpack_pack_array(pk, 3);
  msgpack_pack_uint32(pk, 1);
  msgpack_pack_array(pk, WIRE_HANDOFF_BATCH_MAX + 1);
  for (uint32_t i = 0; i < WIRE_HANDOFF_BATCH_MAX + 1; i++) {
    msgpack_pack_array(pk, 2);
    mp_pack_bin(pk, "k", 1);
    mp_pack_bin(pk, "o", 1);
  }
  msgpack_pack_true(pk);
}
static void g_handoff_last_nil(msgpack_packer *pk) {
  msgpack_pack_array(pk, 3);
  msgpack_pack_uint32(pk, 1);
  msgpack_pack_array(pk, 0);
  msgpack_pack_nil(pk);
}
static void g_handoff_count_lies(msgpack_packer *pk) {
  msgpack_pack_array(pk, 3);
  msgpack_pack_uint32(pk, 1);
  msgpack_pack_array(pk, 2); /* but one pair, then the bool */
  msgpack_pack_array(pk, 2);
  mp_pack_bin(pk, "k", 1);
  mp_pack_bin(pk, "o", 1);
  msgpack_pack_true(pk);
}
static void g_ack_over_max(msgpack_packer *pk) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint32(pk, 1);
  msgpack_pack_uint32(pk, WIRE_HANDOFF_BATCH_MAX + 1);
}
static void g_reap_key_int(msgpack_packer *pk) {
  msgpack_pack_array(pk, 3);
  msgpack_pack_uint32(pk, 1);
  msgpack_pack_uint32(pk, 7);
  mp_pack_bin(pk, "o", 1);
}
static void g_reap_key_long(msgpack_packer *pk) {
  static uint8_t big[KV_KEY_MAX + 1];
  msgpack_pack_array(pk, 3);
  msgpack_pack_uint32(pk, 1);
  mp_pack_bin(pk, big, sizeof(big));
  mp_pack_bin(pk, "o", 1);
}
/* The want list of an AAE_OBJS is the reserved byte 0xc1 (never valid
 * msgpack): packed as nil, then patched by test_pm_garbage. */
static void g_reserved_byte(msgpack_packer *pk) {
  msgpack_pack_array(pk, 3);
  msgpack_pack_uint32(pk, 1);
  msgpack_pack_array(pk, 0);
  msgpack_pack_nil(pk);
}

static void test_pm_garbage(void) {
  static const struct {
    uint32_t kind;
    pm_fn fn;
    const char *name;
  } cases[] = {
      {WIRE_PM_HINT_PUT, g_hint_owner_bin, "hint owner bin"},
      {WIRE_PM_HINT_PUT, g_hint_owner_empty, "hint owner empty"},
      {WIRE_PM_HINT_PUT, g_hint_owner_long, "hint owner too long"},
      {WIRE_PM_HINT_PUT, g_hint_owner_nul, "hint owner with NUL"},
      {WIRE_PM_HINT_PUT, g_hint_durable_int, "hint durable int"},
      {WIRE_PM_HINT_PUT, g_hint_object_nil, "hint object nil"},
      {WIRE_PM_HINT_PUT, g_hint_key_long, "hint key over KV_KEY_MAX"},
      {WIRE_PM_AAE_BRANCHES, g_branches_31, "31 branches"},
      {WIRE_PM_AAE_BRANCHES, g_branches_33, "33 branches"},
      {WIRE_PM_AAE_BRANCHES, g_branches_part_neg, "negative partition"},
      {WIRE_PM_AAE_BRANCHES, g_branches_part_big, "partition over 32 bits"},
      {WIRE_PM_AAE_BRANCHES, g_branches_hash_neg, "negative hash"},
      {WIRE_PM_AAE_LEAVES, g_leaves_branch_32, "branch 32"},
      {WIRE_PM_AAE_LEAVES, g_leaves_unsorted, "branches unsorted"},
      {WIRE_PM_AAE_LEAVES, g_leaves_duplicate, "branch twice"},
      {WIRE_PM_AAE_LEAVES, g_leaves_31, "31 leaves"},
      {WIRE_PM_AAE_LEAVES, g_leaves_group_3, "leaf group of 3"},
      {WIRE_PM_AAE_LEAVES, g_leaves_33_groups, "33 leaf groups"},
      {WIRE_PM_AAE_KEYS, g_keys_seg_1024, "segment 1024"},
      {WIRE_PM_AAE_KEYS, g_keys_seg_unsorted, "segments unsorted"},
      {WIRE_PM_AAE_KEYS, g_keys_seg_duplicate, "segment twice"},
      {WIRE_PM_AAE_KEYS, g_keys_unsorted, "keys unsorted"},
      {WIRE_PM_AAE_KEYS, g_keys_duplicate, "key twice"},
      {WIRE_PM_AAE_KEYS, g_keys_longer_first, "longer key first"},
      {WIRE_PM_AAE_KEYS, g_keys_pair_of_3, "key entry of 3"},
      {WIRE_PM_AAE_KEYS, g_keys_hash_bin, "hash bin"},
      {WIRE_PM_AAE_KEYS, g_keys_over_max, "keys over WIRE_AAE_KEYS_MAX"},
      {WIRE_PM_AAE_OBJS, g_objs_want_pairs, "want holds pairs"},
      {WIRE_PM_AAE_OBJS, g_objs_obj_hash, "object as hash"},
      {WIRE_PM_AAE_OBJS, g_objs_want_over_max, "want over the max"},
      {WIRE_PM_HANDOFF, g_handoff_over_max, "handoff batch over the max"},
      {WIRE_PM_HANDOFF, g_handoff_last_nil, "handoff last nil"},
      {WIRE_PM_HANDOFF, g_handoff_count_lies, "handoff count lies"},
      {WIRE_PM_HANDOFF_ACK, g_ack_over_max, "ack count over the max"},
      {WIRE_PM_REAP, g_reap_key_int, "reap key int"},
      {WIRE_PM_REAP, g_reap_key_long, "reap key over KV_KEY_MAX"},
      {WIRE_PM_AAE_OBJS, g_reserved_byte, "reserved byte 0xc1"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    kvbuf b;
    kvbuf_init(&b);
    msgpack_packer pk;
    mp_packer_init(&pk, &b);
    cases[i].fn(&pk);
    CHECK(!b.oom);
    if (cases[i].fn == g_reserved_byte) {
      CHECK(b.data[b.len - 1] == 0xc0);
      b.data[b.len - 1] = 0xc1;
    }
    int rc = pm_decode_copy(cases[i].kind, b.data, b.len);
    if (rc != KV_EPROTO)
      fprintf(stderr, "  case %s: %s\n", cases[i].name, kv_errname(rc));
    CHECK(rc == KV_EPROTO);
    kvbuf_free(&b);
  }
  /* Shapes that are not arrays, for every kind. */
  const pm_fn any[] = {g_not_array, g_huge_array};
  for (size_t i = 0; i < PM_NKINDS; i++) {
    for (size_t k = 0; k < 2; k++) {
      kvbuf b;
      kvbuf_init(&b);
      msgpack_packer pk;
      mp_packer_init(&pk, &b);
      any[k](&pk);
      CHECK(pm_decode_copy(pm_kinds[i].kind, b.data, b.len) == KV_EPROTO);
      kvbuf_free(&b);
    }
    CHECK(pm_decode_copy(pm_kinds[i].kind, NULL, 0) == KV_EPROTO);
    wire_pm d;
    CHECK(wire_pm_decode(pm_kinds[i].kind, NULL, 0, &d) == KV_EPROTO);
  }
  /* At the limits: accepted. */
  kvbuf b;
  kvbuf_init(&b);
  msgpack_packer pk;
  mp_packer_init(&pk, &b);
  msgpack_pack_array(&pk, 2);
  msgpack_pack_uint32(&pk, UINT32_MAX);
  msgpack_pack_array(&pk, 32);
  for (uint32_t k = 0; k < 32; k++)
    msgpack_pack_uint64(&pk, UINT64_MAX - k);
  wire_pm d;
  CHECK(wire_pm_decode(WIRE_PM_AAE_BRANCHES, b.data, b.len, &d) == 0 &&
        d.aae_branches.part == UINT32_MAX &&
        d.aae_branches.branch[31] == UINT64_MAX - 31);
  /* Non-canonical integers and str keys are read too. */
  b.len = 0;
  msgpack_pack_array(&pk, 3);
  b.data[b.len++] = 0xce; /* part as uint32 */
  b.data[b.len++] = 0;
  b.data[b.len++] = 0;
  b.data[b.len++] = 0;
  b.data[b.len++] = 9;
  mp_pack_str(&pk, "key", 3);
  mp_pack_str(&pk, "obj", 3);
  CHECK(wire_pm_decode(WIRE_PM_REAP, b.data, b.len, &d) == 0 &&
        d.reap.part == 9 && seq(d.reap.key, S("key")) &&
        seq(d.reap.object, S("obj")));
  kvbuf_free(&b);
  /* Unknown kinds. */
  const uint8_t one[] = {0x91, 0x01};
  CHECK(wire_pm_decode(2, one, sizeof(one), &d) == KV_EUNKNOWN &&
        d.kind == 2);
  CHECK(wire_pm_decode(0, one, sizeof(one), &d) == KV_EUNKNOWN);
}

/* Encoders refuse what the decoders would refuse and leave out as it was;
 * builders and iterators keep their promises. */
static void test_pm_encoder_rules(void) {
  kvbuf out;
  kvbuf_init(&out);
  CHECK(kvbuf_append(&out, "keep", 4) == 0);
  wire_pm m;
  wire_pm_items a, b;

  pm_sample(WIRE_PM_HINT_PUT, 0, &m, &a, &b);
  char longname[WIRE_NAME_MAX];
  memset(longname, 'x', sizeof(longname));
  const kv_slice owners[] = {S(""), {(const uint8_t *)longname, WIRE_NAME_MAX},
                             {(const uint8_t *)"a\0b", 3}, {NULL, 2}};
  for (size_t i = 0; i < 4; i++) {
    m.hint_put.owner = owners[i];
    CHECK(wire_pm_encode(&out, &m) == KV_EINVAL && out.len == 4);
  }
  m.hint_put.owner = (kv_slice){(const uint8_t *)longname, WIRE_NAME_MAX - 1};
  CHECK(wire_pm_encode(&out, &m) == 0 && out.len > 4);
  out.len = 4;
  uint8_t *bigkey = calloc(1, KV_KEY_MAX + 1);
  m.hint_put.key = (kv_slice){bigkey, KV_KEY_MAX + 1};
  CHECK(wire_pm_encode(&out, &m) == KV_EINVAL && out.len == 4);
  m.hint_put.key.len = KV_KEY_MAX;
  CHECK(wire_pm_encode(&out, &m) == 0);
  out.len = 4;
  m.hint_put.object = (kv_slice){NULL, 1};
  CHECK(wire_pm_encode(&out, &m) == KV_EINVAL && out.len == 4);

  memset(&m, 0, sizeof(m));
  m.kind = WIRE_PM_REAP;
  m.reap.key = (kv_slice){bigkey, KV_KEY_MAX + 1};
  CHECK(wire_pm_encode(&out, &m) == KV_EINVAL && out.len == 4);
  m.reap.key.len = 0;
  CHECK(wire_pm_encode(&out, &m) == 0);
  out.len = 4;

  memset(&m, 0, sizeof(m));
  m.kind = WIRE_PM_HANDOFF_ACK;
  m.handoff_ack.count = WIRE_HANDOFF_BATCH_MAX + 1;
  CHECK(wire_pm_encode(&out, &m) == KV_EINVAL && out.len == 4);

  /* Lists whose count does not match their items, or of the wrong shape. */
  pm_sample(WIRE_PM_AAE_KEYS, 0, &m, &a, &b);
  m.aae_keys.keys.count--;
  CHECK(wire_pm_encode(&out, &m) == KV_EINVAL && out.len == 4);
  m.aae_keys.keys.count += 2;
  CHECK(wire_pm_encode(&out, &m) == KV_EINVAL && out.len == 4);
  m.aae_keys.keys.count = 0;
  CHECK(wire_pm_encode(&out, &m) == KV_EINVAL && out.len == 4);
  m.aae_keys.keys.items.ptr = NULL;
  m.aae_keys.keys.items.len = 0;
  CHECK(wire_pm_encode(&out, &m) == 0);
  out.len = 4;
  wire_pm_items_free(&a);
  wire_pm_items_free(&b);

  wire_pm_items it;
  wire_pm_items_init(&it);
  CHECK(wire_pm_items_add_key_hash(&it, "b", 1, 1) == 0);
  CHECK(wire_pm_items_add_key_hash(&it, "a", 1, 2) == 0);
  memset(&m, 0, sizeof(m));
  m.kind = WIRE_PM_AAE_KEYS;
  m.aae_keys.keys = wire_pm_items_list(&it);
  CHECK(wire_pm_encode(&out, &m) == KV_EINVAL && out.len == 4); /* order */
  wire_pm_items_reset(&it);
  CHECK(it.count == 0 && it.buf.len == 0);
  CHECK(wire_pm_items_add_key_object(&it, "a", 1, "o", 1) == 0);
  m.aae_keys.keys = wire_pm_items_list(&it);
  CHECK(wire_pm_encode(&out, &m) == KV_EINVAL && out.len == 4); /* shape */
  memset(&m, 0, sizeof(m));
  m.kind = WIRE_PM_AAE_OBJS;
  m.aae_objs.want = wire_pm_items_list(&it);
  CHECK(wire_pm_encode(&out, &m) == KV_EINVAL && out.len == 4);
  m.aae_objs.objs = wire_pm_items_list(&it);
  m.aae_objs.want.count = 0;
  m.aae_objs.want.items.len = 0;
  CHECK(wire_pm_encode(&out, &m) == 0);
  out.len = 4;
  memset(&m, 0, sizeof(m));
  m.kind = WIRE_PM_HANDOFF;
  m.handoff.objs = wire_pm_items_list(&it);
  m.handoff.objs.count = WIRE_HANDOFF_BATCH_MAX + 1;
  CHECK(wire_pm_encode(&out, &m) == KV_EINVAL && out.len == 4);
  /* Well-formed lists one element over their limits. */
  wire_pm_items_reset(&it);
  int failed_adds = 0;
  for (uint32_t i = 0; i < WIRE_HANDOFF_BATCH_MAX; i++)
    failed_adds += wire_pm_items_add_key_object(&it, "k", 1, "o", 1) != 0;
  CHECK(failed_adds == 0);
  m.handoff.objs = wire_pm_items_list(&it);
  CHECK(wire_pm_encode(&out, &m) == 0);
  out.len = 4;
  CHECK(wire_pm_items_add_key_object(&it, "k", 1, "o", 1) == 0);
  m.handoff.objs = wire_pm_items_list(&it);
  CHECK(wire_pm_encode(&out, &m) == KV_EINVAL && out.len == 4);
  wire_pm_items_reset(&it);
  size_t at_max = 0;
  for (uint32_t i = 0; i <= WIRE_AAE_KEYS_MAX; i++) {
    uint8_t key[4] = {(uint8_t)(i >> 24), (uint8_t)(i >> 16),
                      (uint8_t)(i >> 8), (uint8_t)i};
    if (i == WIRE_AAE_KEYS_MAX)
      at_max = it.buf.len;
    failed_adds += wire_pm_items_add_key_hash(&it, key, sizeof(key), i) != 0;
  }
  CHECK(failed_adds == 0 && it.count == WIRE_AAE_KEYS_MAX + 1);
  memset(&m, 0, sizeof(m));
  m.kind = WIRE_PM_AAE_KEYS;
  m.aae_keys.keys = wire_pm_items_list(&it);
  CHECK(wire_pm_encode(&out, &m) == KV_EINVAL && out.len == 4);
  m.aae_keys.keys.count--;
  m.aae_keys.keys.items.len = at_max;
  CHECK(wire_pm_encode(&out, &m) == 0);
  out.len = 4;

  /* Builders refuse keys over KV_KEY_MAX and adds after a failed growth. */
  wire_pm_items_reset(&it);
  CHECK(wire_pm_items_add_key(&it, bigkey, KV_KEY_MAX + 1) == KV_EINVAL);
  CHECK(wire_pm_items_add_key_hash(&it, bigkey, KV_KEY_MAX + 1, 0) ==
        KV_EINVAL);
  CHECK(wire_pm_items_add_key_object(&it, bigkey, KV_KEY_MAX + 1, "", 0) ==
        KV_EINVAL);
  CHECK(wire_pm_items_add_key_object(&it, "k", 1, NULL, 3) == KV_EINVAL);
  CHECK(it.count == 0 && it.buf.len == 0);
  CHECK(wire_pm_items_add_key(&it, bigkey, KV_KEY_MAX) == 0 && it.count == 1);
  it.buf.oom = 1;
  size_t before = it.buf.len;
  CHECK(wire_pm_items_add_key(&it, "k", 1) == KV_ENOMEM);
  CHECK(it.count == 1 && it.buf.len == before);
  wire_pm_items_free(&it);
  free(bigkey);

  /* Iterators: the end, and the wrong shape (sticky). */
  wire_pm_items_init(&it);
  CHECK(wire_pm_items_add_key(&it, "k1", 2) == 0);
  CHECK(wire_pm_items_add_key(&it, "k2", 2) == 0);
  wire_pm_list l = wire_pm_items_list(&it);
  wire_pm_iter iter;
  kv_slice k;
  wire_pm_iter_init(&iter, &l);
  CHECK(wire_pm_next_key(&iter, &k) == 0 && seq(k, S("k1")));
  CHECK(wire_pm_next_key(&iter, &k) == 0 && seq(k, S("k2")));
  CHECK(wire_pm_next_key(&iter, &k) == KV_ENOTFOUND);
  CHECK(wire_pm_next_key(&iter, &k) == KV_ENOTFOUND);
  wire_pm_key_object ko;
  wire_pm_iter_init(&iter, &l);
  CHECK(wire_pm_next_key_object(&iter, &ko) == KV_EPROTO);
  CHECK(wire_pm_next_key(&iter, &k) == KV_EPROTO);
  /* A list that claims more elements than it holds. */
  l.count = 3;
  wire_pm_iter_init(&iter, &l);
  CHECK(wire_pm_next_key(&iter, &k) == 0 && wire_pm_next_key(&iter, &k) == 0);
  CHECK(wire_pm_next_key(&iter, &k) == KV_EPROTO);
  wire_pm_list empty = {0, {NULL, 0}};
  wire_pm_iter_init(&iter, &empty);
  CHECK(wire_pm_next_key(&iter, &k) == KV_ENOTFOUND);
  wire_pm_items_free(&it);

  /* Unknown kinds; an out of memory buffer is left alone. */
  memset(&m, 0, sizeof(m));
  m.kind = 99;
  CHECK(wire_pm_encode(&out, &m) == KV_EINVAL && out.len == 4);
  CHECK(wire_encode_pm(&out, 1, &m) == KV_EINVAL && out.len == 4);
  for (size_t i = 0; i < PM_NKINDS; i++) {
    pm_sample(pm_kinds[i].kind, 0, &m, &a, &b);
    out.oom = 1;
    CHECK(wire_pm_encode(&out, &m) == KV_ENOMEM && out.len == 4);
    CHECK(wire_encode_pm(&out, 1, &m) == KV_ENOMEM && out.len == 4);
    out.oom = 0;
    wire_pm_items_free(&a);
    wire_pm_items_free(&b);
  }
  kvbuf_free(&out);
}

/* Every slice of a decoded d lies inside [p, p + len). */
static int pm_inside(kv_slice s, const uint8_t *p, size_t len) {
  return s.len == 0 || (s.ptr >= p && s.ptr + s.len <= p + len);
}

static int pm_slices_inside(const wire_pm *d, const uint8_t *p, size_t len) {
  switch (d->kind) {
  case WIRE_PM_HINT_PUT:
    return pm_inside(d->hint_put.owner, p, len) &&
           pm_inside(d->hint_put.key, p, len) &&
           pm_inside(d->hint_put.object, p, len);
  case WIRE_PM_AAE_KEYS:
    return pm_inside(d->aae_keys.keys.items, p, len);
  case WIRE_PM_AAE_OBJS:
    return pm_inside(d->aae_objs.objs.items, p, len) &&
           pm_inside(d->aae_objs.want.items, p, len);
  case WIRE_PM_HANDOFF:
    return pm_inside(d->handoff.objs.items, p, len);
  case WIRE_PM_REAP:
    return pm_inside(d->reap.key, p, len) && pm_inside(d->reap.object, p, len);
  default:
    return 1;
  }
}

/* Feeds one payload (an exact-size copy) to every decoder; what decodes
 * lies inside the payload, re-encodes, and decodes to the same values. */
static void pm_fuzz_one(const uint8_t *src, size_t len, int *bad) {
  uint8_t *p = malloc(len ? len : 1);
  if (len)
    memcpy(p, src, len);
  for (size_t i = 0; i < PM_NKINDS; i++) {
    static wire_pm d, d2;
    int rc = wire_pm_decode(pm_kinds[i].kind, p, len, &d);
    if (rc != 0 && rc != KV_EPROTO)
      (*bad)++;
    if (rc != 0)
      continue;
    if (!pm_slices_inside(&d, p, len))
      (*bad)++;
    kvbuf e;
    kvbuf_init(&e);
    if (wire_pm_encode(&e, &d) ||
        wire_pm_decode(d.kind, e.data, e.len, &d2) || !pm_eq(&d, &d2))
      (*bad)++;
    kvbuf_free(&e);
  }
  free(p);
}

static void test_pm_random(void) {
  uint64_t seed = run_seed();
  uint64_t s = seed ^ 0x9e3779b97f4a7c15ull;
  /* Valid payloads of every kind to mutate (the big object left out). */
  kvbuf corpus;
  kvbuf_init(&corpus);
  size_t offs[2 * PM_NKINDS + 1];
  size_t ncorp = 0;
  for (size_t i = 0; i < PM_NKINDS; i++) {
    for (int variant = 0; variant <= 1; variant++) {
      wire_pm m;
      wire_pm_items a, b;
      pm_sample(pm_kinds[i].kind, variant, &m, &a, &b);
      if (m.kind == WIRE_PM_HINT_PUT)
        m.hint_put.object = S("obj");
      offs[ncorp++] = corpus.len;
      CHECK(wire_pm_encode(&corpus, &m) == 0);
      wire_pm_items_free(&a);
      wire_pm_items_free(&b);
    }
  }
  offs[ncorp] = corpus.len;

  enum { BODY_MAX = 4096 };
  static uint8_t tmp[BODY_MAX + 1];
  int bad = 0;
  for (int round = 0; round < RANDOM_ROUNDS; round++) {
    size_t len;
    if (round % 4 == 0) {
      len = (size_t)(xorshift(&s) % RANDOM_BODY_MAX);
      for (size_t i = 0; i < len; i++)
        tmp[i] = (uint8_t)xorshift(&s);
      if (len > 1)
        tmp[0] = (uint8_t)(0x92 + xorshift(&s) % 3);
    } else {
      size_t i = (size_t)(xorshift(&s) % ncorp);
      len = offs[i + 1] - offs[i];
      if (len > BODY_MAX)
        len = BODY_MAX;
      memcpy(tmp, corpus.data + offs[i], len);
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
        case 2:
          tmp[at] = (const uint8_t[]){0xdd, 0xdc, 0xc4, 0xc5, 0xcf, 0xd3,
                                      0xc1, 0xc2, 0x00, 0x7f}[xorshift(&s) %
                                                              10];
          break;
        case 3:
          memmove(tmp + at, tmp + at + 1, len - at - 1);
          len--;
          break;
        default:
          if (len < BODY_MAX) {
            memmove(tmp + at + 1, tmp + at, len - at);
            len++;
          }
        }
      }
    }
    pm_fuzz_one(tmp, len, &bad);
  }
  CHECK(bad == 0);
  if (bad)
    printf("peer payload random failures with seed %" PRIu64 "\n", seed);
  kvbuf_free(&corpus);
}

int main(void) {
  pm_fill_samples();
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
  test_pm_names();
  test_pm_roundtrip();
  test_pm_hand_packed();
  test_pm_truncations();
  test_pm_garbage();
  test_pm_encoder_rules();
  test_pm_random();
  return check_summary(NULL);
}
