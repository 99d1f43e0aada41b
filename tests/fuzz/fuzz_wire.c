/*
 * fuzz_wire.c: libFuzzer target for the wire protocol decoder
 * (proto/wire.h): wire_frame_check, wire_decode and
 * wire_sibling_next, which read every client and peer frame, and the
 * PEER_MSG payload decoders (wire_pm_decode_*, the wire_pm_next_*
 * iterators).
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
 * Peer payloads: the payload of every decoded PEER_MSG frame goes to the
 * decoder of its kind, and the whole input to the decoder of every kind.
 * Beyond "no crash" it checks:
 *   - a decoder returns 0 or KV_EPROTO (wire_pm_decode: KV_EUNKNOWN exactly
 *     for kinds outside WIRE_PM_MAP);
 *   - a decoded payload's slices lie inside it, and its lists iterate
 *     exactly count elements, each inside the list, then KV_ENOTFOUND;
 *   - shortened by one byte, or cut in half, the payload is refused;
 *   - round trip: the decoded payload re-encodes (wire_pm_encode) to bytes
 *     that decode to the same values and re-encode to the same bytes, and
 *     wire_encode_pm wraps those bytes in a PEER_MSG frame of its kind.
 * Depends on: kvproto.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_err.h"
#include "mp.h"
#include "wire.h"
#include "tests/fuzz/fz.h"


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
  FZ_CHECK(slice_in(m->server_version, body, len));
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
    FZ_CHECK(nilable_eq(a->server_version, b->server_version));
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

/* ---- PEER_MSG payloads ---- */

/* Iterates list l of shape (0 [key, hash], 1 [key, object], 2 key): every
 * element reads and lies inside the list, then KV_ENOTFOUND. */
static void check_list(const wire_pm_list *l, int shape) {
  FZ_CHECK(l->items.len == 0 || l->items.ptr != NULL);
  wire_pm_iter it;
  wire_pm_iter_init(&it, l);
  for (uint32_t i = 0; i < l->count; i++) {
    if (shape == 0) {
      wire_pm_key_hash e;
      FZ_CHECK(wire_pm_next_key_hash(&it, &e) == 0);
      FZ_CHECK(slice_in(e.key, l->items.ptr, l->items.len));
      FZ_CHECK(e.key.len <= KV_KEY_MAX);
    } else if (shape == 1) {
      wire_pm_key_object e;
      FZ_CHECK(wire_pm_next_key_object(&it, &e) == 0);
      FZ_CHECK(slice_in(e.key, l->items.ptr, l->items.len));
      FZ_CHECK(slice_in(e.object, l->items.ptr, l->items.len));
      FZ_CHECK(e.key.len <= KV_KEY_MAX);
    } else {
      kv_slice k;
      FZ_CHECK(wire_pm_next_key(&it, &k) == 0);
      FZ_CHECK(slice_in(k, l->items.ptr, l->items.len));
      FZ_CHECK(k.len <= KV_KEY_MAX);
    }
  }
  kv_slice k;
  FZ_CHECK(wire_pm_next_key(&it, &k) == KV_ENOTFOUND);
  FZ_CHECK(mp_remaining(&it.r) == 0);
}

/* Lists a and b hold the same elements of shape. */
static int list_eq(const wire_pm_list *a, const wire_pm_list *b, int shape) {
  if (a->count != b->count)
    return 0;
  wire_pm_iter ia, ib;
  wire_pm_iter_init(&ia, a);
  wire_pm_iter_init(&ib, b);
  for (uint32_t i = 0; i < a->count; i++) {
    if (shape == 0) {
      wire_pm_key_hash x, y;
      if (wire_pm_next_key_hash(&ia, &x) || wire_pm_next_key_hash(&ib, &y) ||
          !slice_eq(x.key, y.key) || x.hash != y.hash)
        return 0;
    } else if (shape == 1) {
      wire_pm_key_object x, y;
      if (wire_pm_next_key_object(&ia, &x) ||
          wire_pm_next_key_object(&ib, &y) || !slice_eq(x.key, y.key) ||
          !slice_eq(x.object, y.object))
        return 0;
    } else {
      kv_slice x, y;
      if (wire_pm_next_key(&ia, &x) || wire_pm_next_key(&ib, &y) ||
          !slice_eq(x, y))
        return 0;
    }
  }
  return 1;
}

/* Checks the slices and lists of a decoded payload d of (p, len). */
static void check_pm_decoded(const wire_pm *d, const uint8_t *p, size_t len) {
  switch (d->kind) {
  case WIRE_PM_HINT_PUT:
    FZ_CHECK(slice_in(d->hint_put.owner, p, len));
    FZ_CHECK(slice_in(d->hint_put.key, p, len));
    FZ_CHECK(slice_in(d->hint_put.object, p, len));
    FZ_CHECK(d->hint_put.owner.len > 0 &&
             d->hint_put.owner.len < WIRE_NAME_MAX);
    FZ_CHECK(memchr(d->hint_put.owner.ptr, 0, d->hint_put.owner.len) == NULL);
    FZ_CHECK(d->hint_put.key.len <= KV_KEY_MAX);
    break;
  case WIRE_PM_AAE_LEAVES:
    for (uint32_t i = 0; i < WIRE_AAE_SEGMENTS; i++)
      if (!((d->aae_leaves.branches >> (i / WIRE_AAE_LEAVES_PER_BRANCH)) & 1u))
        FZ_CHECK(d->aae_leaves.leaf[i] == 0);
    break;
  case WIRE_PM_AAE_KEYS:
    FZ_CHECK(slice_in(d->aae_keys.keys.items, p, len));
    FZ_CHECK(d->aae_keys.keys.count <= WIRE_AAE_KEYS_MAX);
    check_list(&d->aae_keys.keys, 0);
    break;
  case WIRE_PM_AAE_OBJS:
    FZ_CHECK(slice_in(d->aae_objs.objs.items, p, len));
    FZ_CHECK(slice_in(d->aae_objs.want.items, p, len));
    FZ_CHECK(d->aae_objs.objs.count <= WIRE_AAE_KEYS_MAX);
    FZ_CHECK(d->aae_objs.want.count <= WIRE_AAE_KEYS_MAX);
    check_list(&d->aae_objs.objs, 1);
    check_list(&d->aae_objs.want, 2);
    break;
  case WIRE_PM_HANDOFF:
    FZ_CHECK(slice_in(d->handoff.objs.items, p, len));
    FZ_CHECK(d->handoff.objs.count <= WIRE_HANDOFF_BATCH_MAX);
    check_list(&d->handoff.objs, 1);
    break;
  case WIRE_PM_HANDOFF_ACK:
    FZ_CHECK(d->handoff_ack.count <= WIRE_HANDOFF_BATCH_MAX);
    break;
  case WIRE_PM_REAP:
    FZ_CHECK(slice_in(d->reap.key, p, len));
    FZ_CHECK(slice_in(d->reap.object, p, len));
    FZ_CHECK(d->reap.key.len <= KV_KEY_MAX);
    break;
  default:
    break;
  }
}

/* The fields of a's kind are equal in a and b. */
static void check_pm_same(const wire_pm *a, const wire_pm *b) {
  FZ_CHECK(a->kind == b->kind);
  switch (a->kind) {
  case WIRE_PM_HINT_PUT:
    FZ_CHECK(slice_eq(a->hint_put.owner, b->hint_put.owner));
    FZ_CHECK(slice_eq(a->hint_put.key, b->hint_put.key));
    FZ_CHECK(slice_eq(a->hint_put.object, b->hint_put.object));
    FZ_CHECK(a->hint_put.durable == b->hint_put.durable);
    break;
  case WIRE_PM_AAE_BRANCHES:
    FZ_CHECK(a->aae_branches.part == b->aae_branches.part);
    FZ_CHECK(memcmp(a->aae_branches.branch, b->aae_branches.branch,
                    sizeof(a->aae_branches.branch)) == 0);
    break;
  case WIRE_PM_AAE_LEAVES:
    FZ_CHECK(a->aae_leaves.part == b->aae_leaves.part);
    FZ_CHECK(a->aae_leaves.branches == b->aae_leaves.branches);
    FZ_CHECK(memcmp(a->aae_leaves.leaf, b->aae_leaves.leaf,
                    sizeof(a->aae_leaves.leaf)) == 0);
    break;
  case WIRE_PM_AAE_KEYS:
    FZ_CHECK(a->aae_keys.part == b->aae_keys.part);
    FZ_CHECK(memcmp(a->aae_keys.segs, b->aae_keys.segs,
                    sizeof(a->aae_keys.segs)) == 0);
    FZ_CHECK(list_eq(&a->aae_keys.keys, &b->aae_keys.keys, 0));
    break;
  case WIRE_PM_AAE_OBJS:
    FZ_CHECK(a->aae_objs.part == b->aae_objs.part);
    FZ_CHECK(list_eq(&a->aae_objs.objs, &b->aae_objs.objs, 1));
    FZ_CHECK(list_eq(&a->aae_objs.want, &b->aae_objs.want, 2));
    break;
  case WIRE_PM_HANDOFF:
    FZ_CHECK(a->handoff.part == b->handoff.part);
    FZ_CHECK(a->handoff.last == b->handoff.last);
    FZ_CHECK(list_eq(&a->handoff.objs, &b->handoff.objs, 1));
    break;
  case WIRE_PM_HANDOFF_ACK:
    FZ_CHECK(a->handoff_ack.part == b->handoff_ack.part);
    FZ_CHECK(a->handoff_ack.count == b->handoff_ack.count);
    break;
  case WIRE_PM_REAP:
    FZ_CHECK(a->reap.part == b->reap.part);
    FZ_CHECK(slice_eq(a->reap.key, b->reap.key));
    FZ_CHECK(slice_eq(a->reap.object, b->reap.object));
    break;
  default:
    FZ_CHECK(!"kind outside WIRE_PM_MAP decoded");
  }
}

/* Decodes the first n bytes of p from an exact-size copy, so ASan sees a
 * read past them. */
static int decode_pm_prefix(uint32_t kind, const uint8_t *p, size_t n) {
  static wire_pm d;
  uint8_t *cut = malloc(n ? n : 1);
  FZ_CHECK(cut != NULL);
  if (n)
    memcpy(cut, p, n);
  int rc = wire_pm_decode(kind, cut, n, &d);
  free(cut);
  return rc;
}

/* Feeds payload (p, len) to the decoder of kind and checks the result. */
static void decode_pm(uint32_t kind, const uint8_t *p, size_t len) {
  /* static: a wire_pm holds a whole tree of leaves (8 KiB). */
  static wire_pm d, d2;
  int rc = wire_pm_decode(kind, p, len, &d);
  FZ_CHECK(d.kind == kind);
  int known = strcmp(wire_pm_name(kind), "unknown") != 0;
  if (!known) {
    FZ_CHECK(rc == KV_EUNKNOWN);
    return;
  }
  FZ_CHECK(rc == 0 || rc == KV_EPROTO);
  if (rc != 0)
    return;
  check_pm_decoded(&d, p, len);
  FZ_CHECK(len > 0);
  FZ_CHECK(decode_pm_prefix(kind, p, len - 1) == KV_EPROTO);
  FZ_CHECK(decode_pm_prefix(kind, p, len / 2) == KV_EPROTO);

  /* Round trip. */
  kvbuf e1, e2, f;
  kvbuf_init(&e1);
  kvbuf_init(&e2);
  kvbuf_init(&f);
  FZ_CHECK(wire_pm_encode(&e1, &d) == 0 && !e1.oom);
  FZ_CHECK(wire_pm_decode(kind, e1.data, e1.len, &d2) == 0);
  check_pm_decoded(&d2, e1.data, e1.len);
  check_pm_same(&d, &d2);
  FZ_CHECK(wire_pm_encode(&e2, &d2) == 0);
  FZ_CHECK(e2.len == e1.len && memcmp(e1.data, e2.data, e1.len) == 0);

  /* In a PEER_MSG frame of its kind. */
  FZ_CHECK(wire_encode_pm(&f, 7, &d) == 0);
  uint32_t blen = 0;
  FZ_CHECK(wire_frame_check(f.data, f.len, &wire_limits_default, &blen) == 0);
  wire_msg m;
  FZ_CHECK(wire_decode(f.data + WIRE_HEADER_BYTES, blen, &wire_limits_default,
                       &m) == 0);
  FZ_CHECK(m.type == WIRE_PEER_MSG && m.req_id == 7 && m.flags == kind);
  FZ_CHECK(m.raw.len == e1.len && memcmp(m.raw.ptr, e1.data, e1.len) == 0);
  kvbuf_free(&f);
  kvbuf_free(&e2);
  kvbuf_free(&e1);
}

/* Every PEER_MSG kind, and two that are not. */
static const uint32_t pm_kinds[] = {
#define FZ_PM_KIND(name, num, str, field) (num),
    WIRE_PM_MAP(FZ_PM_KIND)
#undef FZ_PM_KIND
    0, 2};

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
  if (m.type == WIRE_PEER_MSG)
    decode_pm(m.flags, m.raw.ptr, m.raw.len);
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
  /* The input as the payload of every kind of PEER_MSG. */
  for (size_t k = 0; k < sizeof(pm_kinds) / sizeof(pm_kinds[0]); k++)
    decode_pm(pm_kinds[k], data, size);
  return 0;
}
