/*
 * fuzz_wire.c: libFuzzer target for the wire protocol decoder
 * (proto/wire.h): wire_frame_check, wire_decode and
 * wire_sibling_next, which read every client and peer frame.
 *
 * The input is a byte stream as it arrives on a connection: frames are cut
 * with wire_frame_check and each body is decoded; the bytes after the first
 * 4 are also decoded as one body whatever the header says, so mutations of
 * the length do not hide the decoder. Beyond "no crash" (ASan, UBSan) it
 * checks:
 *   - wire_frame_check: a complete frame fits in the input and under the
 *     limit; KV_EBUSY only when bytes are missing; KV_ETOOBIG only over it;
 *   - a decoded message respects its limits (key, value) and every slice
 *     points inside the body;
 *   - round trip: a decoded message re-encodes (wire_encode, or the GET_OK
 *     writer for GET_OK) to one whole frame that decodes to the same type,
 *     request id and fields, and re-encoding that gives the same bytes;
 *   - a smaller value limit turns an over-limit value into KV_ETOOBIG.
 * Depends on: kvproto.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_err.h"
#include "mp.h"
#include "wire.h"

#define FZ_CHECK(cond)                                                         \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

#define FZ_SIBLINGS_MAX 256 /* siblings compared per GET_OK */
#define FZ_SMALL_VALUE_MAX 8

static int slice_eq(kv_slice a, kv_slice b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* Slice s is empty or lies inside [body, body + len). */
static int slice_in(kv_slice s, const uint8_t *body, size_t len) {
  if (s.len == 0)
    return 1;
  return s.ptr >= body && s.ptr <= body + len &&
         s.len <= (size_t)(body + len - s.ptr);
}

static void check_slices(const wire_msg *m, const uint8_t *body, size_t len) {
  FZ_CHECK(slice_in(m->key, body, len));
  FZ_CHECK(slice_in(m->value, body, len));
  FZ_CHECK(slice_in(m->context, body, len));
  FZ_CHECK(slice_in(m->object, body, len));
  FZ_CHECK(slice_in(m->text, body, len));
  FZ_CHECK(slice_in(m->region, body, len));
  FZ_CHECK(slice_in(m->raw, body, len));
  FZ_CHECK(slice_in(m->opts.region, body, len));
}

static int opts_eq(const wire_opts *a, const wire_opts *b) {
  return a->r == b->r && a->w == b->w && a->dw == b->dw && a->pr == b->pr &&
         a->pw == b->pw && a->timeout_ms == b->timeout_ms &&
         a->flags == b->flags && slice_eq(a->region, b->region);
}

/* bin|nil fields: same nil-ness and same bytes. */
static int nilable_eq(kv_slice a, kv_slice b) {
  return (a.ptr == NULL) == (b.ptr == NULL) && slice_eq(a, b);
}

/* Reads up to FZ_SIBLINGS_MAX siblings of a GET_OK. Returns how many, or -1
 * when the siblings do not parse. */
static int read_siblings(const wire_msg *m, wire_sibling *out) {
  mp_reader r;
  uint32_t n;
  mp_reader_init(&r, m->raw.ptr, m->raw.len);
  if (mp_read_array(&r, &n))
    return -1;
  FZ_CHECK(n == m->nsiblings);
  if (n > FZ_SIBLINGS_MAX)
    return -1;
  for (uint32_t i = 0; i < n; i++) {
    if (wire_sibling_next(&r, &out[i]))
      return -1;
    FZ_CHECK(slice_in(out[i].value, m->raw.ptr, m->raw.len));
  }
  return (int)n;
}

/* Fields of m's type are equal in a and b. */
static void check_same(const wire_msg *a, const wire_msg *b) {
  FZ_CHECK(a->type == b->type);
  FZ_CHECK(a->req_id == b->req_id);
  switch (a->type) {
  case WIRE_HELLO:
    FZ_CHECK(a->version == b->version && slice_eq(a->text, b->text));
    break;
  case WIRE_HELLO_OK:
    FZ_CHECK(a->version == b->version && slice_eq(a->text, b->text));
    FZ_CHECK(a->partitions == b->partitions && slice_eq(a->region, b->region));
    break;
  case WIRE_ERROR:
    FZ_CHECK(a->code == b->code && slice_eq(a->text, b->text));
    break;
  case WIRE_GET:
    FZ_CHECK(slice_eq(a->key, b->key) && opts_eq(&a->opts, &b->opts));
    break;
  case WIRE_GET_OK:
    FZ_CHECK(a->nsiblings == b->nsiblings && slice_eq(a->context, b->context));
    break;
  case WIRE_PUT:
  case WIRE_COORD_PUT:
    FZ_CHECK(slice_eq(a->key, b->key) && slice_eq(a->value, b->value));
    FZ_CHECK(nilable_eq(a->context, b->context));
    FZ_CHECK(opts_eq(&a->opts, &b->opts));
    if (a->type == WIRE_COORD_PUT)
      FZ_CHECK(a->flags == b->flags);
    break;
  case WIRE_PUT_OK:
  case WIRE_DEL_OK:
    FZ_CHECK(slice_eq(a->context, b->context));
    break;
  case WIRE_DEL:
    FZ_CHECK(slice_eq(a->key, b->key) && nilable_eq(a->context, b->context));
    FZ_CHECK(opts_eq(&a->opts, &b->opts));
    break;
  case WIRE_ADMIN:
    FZ_CHECK(slice_eq(a->text, b->text) && slice_eq(a->raw, b->raw));
    break;
  case WIRE_ADMIN_OK:
  case WIRE_GOSSIP:
    FZ_CHECK(slice_eq(a->raw, b->raw));
    break;
  case WIRE_PEER_HELLO:
    FZ_CHECK(a->version == b->version && slice_eq(a->text, b->text));
    FZ_CHECK(a->incarnation == b->incarnation);
    break;
  case WIRE_REPL_PUT:
    FZ_CHECK(slice_eq(a->key, b->key) && slice_eq(a->object, b->object));
    FZ_CHECK(a->flags == b->flags);
    break;
  case WIRE_REPL_GET:
    FZ_CHECK(slice_eq(a->key, b->key));
    break;
  case WIRE_REPL_GET_OK:
    FZ_CHECK(nilable_eq(a->object, b->object));
    break;
  case WIRE_PEER_MSG:
    FZ_CHECK(a->flags == b->flags && slice_eq(a->raw, b->raw));
    break;
  default:
    break;
  }
}

/* Encodes m as one frame into out. Returns 0, or 1 when m cannot be
 * re-encoded (a GET_OK whose siblings do not parse). */
static int encode(const wire_msg *m, kvbuf *out) {
  if (m->type != WIRE_GET_OK) {
    FZ_CHECK(wire_encode(out, m) == 0);
    return 0;
  }
  static wire_sibling sibs[FZ_SIBLINGS_MAX];
  int n = read_siblings(m, sibs);
  if (n < 0)
    return 1;
  wire_get_ok_writer w;
  wire_begin_get_ok(&w, out, m->req_id, (uint32_t)n);
  for (int i = 0; i < n; i++)
    wire_add_sibling(&w, sibs[i].flags, sibs[i].ts_ms, sibs[i].value.ptr,
                     sibs[i].value.len);
  FZ_CHECK(wire_end_get_ok(&w, m->context.ptr, m->context.len) == 0);
  return 0;
}

/* Checks that the siblings of two GET_OKs are the same. */
static void check_same_siblings(const wire_msg *a, const wire_msg *b) {
  static wire_sibling sa[FZ_SIBLINGS_MAX], sb[FZ_SIBLINGS_MAX];
  int na = read_siblings(a, sa);
  int nb = read_siblings(b, sb);
  FZ_CHECK(na == nb);
  for (int i = 0; i < na; i++) {
    FZ_CHECK(sa[i].flags == sb[i].flags && sa[i].ts_ms == sb[i].ts_ms);
    FZ_CHECK(slice_eq(sa[i].value, sb[i].value));
  }
}

static void decode_body(const uint8_t *body, size_t len) {
  wire_msg m;
  memset(&m, 0, sizeof(m));
  int rc = wire_decode(body, len, &wire_limits_default, &m);
  FZ_CHECK(rc == 0 || rc == KV_EPROTO || rc == KV_ETOOBIG ||
           rc == KV_EUNKNOWN);
  FZ_CHECK(wire_type_name(m.type) != NULL);

  /* A tighter value limit: an over-limit value is refused. */
  wire_limits small = wire_limits_default;
  small.value_max = FZ_SMALL_VALUE_MAX;
  wire_msg ms;
  memset(&ms, 0, sizeof(ms));
  int rcs = wire_decode(body, len, &small, &ms);
  if (rcs == 0 && (ms.type == WIRE_PUT || ms.type == WIRE_COORD_PUT))
    FZ_CHECK(ms.value.len <= FZ_SMALL_VALUE_MAX);
  if (rc == 0 && (m.type == WIRE_PUT || m.type == WIRE_COORD_PUT) &&
      m.value.len > FZ_SMALL_VALUE_MAX)
    FZ_CHECK(rcs == KV_ETOOBIG);

  if (rc != 0)
    return;
  check_slices(&m, body, len);
  FZ_CHECK(m.key.len <= KV_KEY_MAX);
  if (m.type == WIRE_PUT || m.type == WIRE_COORD_PUT)
    FZ_CHECK(m.value.len <= wire_limits_default.value_max);

  /* Round trip. */
  kvbuf e1;
  kvbuf_init(&e1);
  if (encode(&m, &e1)) {
    kvbuf_free(&e1);
    return;
  }
  FZ_CHECK(!e1.oom);
  uint32_t blen = 0;
  FZ_CHECK(wire_frame_check(e1.data, e1.len, &wire_limits_default, &blen) ==
           0);
  FZ_CHECK((size_t)blen + WIRE_HEADER_BYTES == e1.len);
  wire_msg m2;
  memset(&m2, 0, sizeof(m2));
  FZ_CHECK(wire_decode(e1.data + WIRE_HEADER_BYTES, blen,
                       &wire_limits_default, &m2) == 0);
  check_same(&m, &m2);
  if (m.type == WIRE_GET_OK)
    check_same_siblings(&m, &m2);

  kvbuf e2;
  kvbuf_init(&e2);
  FZ_CHECK(encode(&m2, &e2) == 0);
  FZ_CHECK(e2.len == e1.len && memcmp(e1.data, e2.data, e1.len) == 0);
  kvbuf_free(&e2);
  kvbuf_free(&e1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* The input as a stream of frames. */
  size_t off = 0;
  int frames = 0;
  while (off < size && frames < 16) {
    uint32_t blen = UINT32_MAX;
    int rc = wire_frame_check(data + off, size - off, &wire_limits_default,
                              &blen);
    if (rc == 0) {
      FZ_CHECK(blen <= wire_limits_default.frame_max);
      FZ_CHECK((size_t)blen + WIRE_HEADER_BYTES <= size - off);
      decode_body(data + off + WIRE_HEADER_BYTES, blen);
      off += WIRE_HEADER_BYTES + (size_t)blen;
      frames++;
      continue;
    }
    FZ_CHECK(rc == KV_EBUSY || rc == KV_ETOOBIG);
    if (rc == KV_EBUSY && size - off >= WIRE_HEADER_BYTES)
      FZ_CHECK((size_t)blen + WIRE_HEADER_BYTES > size - off);
    if (rc == KV_ETOOBIG)
      FZ_CHECK(size - off >= WIRE_HEADER_BYTES);
    break;
  }
  /* The bytes after the header as one body, whatever the header says. */
  if (size >= WIRE_HEADER_BYTES && frames == 0)
    decode_body(data + WIRE_HEADER_BYTES, size - WIRE_HEADER_BYTES);
  return 0;
}
