/*
 * wire_pm.c: the PEER_MSG payload codecs of the kvorum wire protocol, one
 * pair per kind of WIRE_PM_MAP (see wire.h, "Peer message payloads", and
 * docs/protocol.md section 6).
 *
 * Payloads are checked against the same rules on both sides: a decoder
 * walks every list once before handing it out (so its iterators cannot
 * fail), and an encoder walks the lists it is given before packing them.
 * Decoders never allocate; slices point into the payload.
 * Depends on: mp.h, kv_err.h, msgpack-c (pack only).
 */
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_err.h"

/* Bytes reserved for the fixed parts of a payload before packing. */
#define WIRE__FIXED_RESERVE 96

static void wire__pack_bin(msgpack_packer *pk, kv_slice s) {
  mp_pack_bin(pk, s.ptr, s.len);
}

static void wire__pack_str(msgpack_packer *pk, kv_slice s) {
  mp_pack_str(pk, (const char *)s.ptr, s.len);
}

/* ==== peer message payloads ==== */

_Static_assert(WIRE_AAE_BRANCHES == 32,
               "wire_pm_aae_leaves.branches has one bit per branch");
_Static_assert(WIRE_AAE_SEGMENTS % 64 == 0,
               "wire_pm_aae_keys.segs has one bit per segment");

const char *wire_pm_name(uint32_t kind) {
  switch (kind) {
#define WIRE__PM_NAME(name, num, str, field)                                   \
  case (num):                                                                  \
    return str;
    WIRE_PM_MAP(WIRE__PM_NAME)
#undef WIRE__PM_NAME
  default:
    return "unknown";
  }
}

/* The shapes of list elements. */
typedef enum wire__shape {
  WIRE__KEY_HASH,   /* [key:bin, hash:uint] */
  WIRE__KEY_OBJECT, /* [key:bin, object:bin] */
  WIRE__KEY,        /* key:bin */
} wire__shape;

/* Marks r failed and returns KV_EPROTO. */
static int wire__fail(mp_reader *r) {
  if (!r->err)
    r->err = KV_EPROTO;
  return KV_EPROTO;
}

/* A reader over (p, len); p may be NULL when len is 0. */
static void wire__reader(mp_reader *r, const uint8_t *p, size_t len) {
  static const uint8_t none[1];
  if (!p) {
    p = none;
    len = 0;
  }
  mp_reader_init(r, p, len);
}

/* True when s can be read: bytes behind it, or empty. */
static bool wire__slice_ok(kv_slice s) { return s.len == 0 || s.ptr != NULL; }

/* True when s is a valid node id in a payload: 1..WIRE_NAME_MAX-1 bytes
 * without NUL (it becomes a C string on the receiver). */
static bool wire__pm_name_ok(kv_slice s) {
  return s.len > 0 && s.len < WIRE_NAME_MAX && s.ptr &&
         memchr(s.ptr, 0, s.len) == NULL;
}

/* Reads a key of a payload: str or bin of at most KV_KEY_MAX bytes. */
static int wire__pm_key(mp_reader *r, kv_slice *out) {
  if (mp_read_bytes(r, out))
    return KV_EPROTO;
  return out->len > KV_KEY_MAX ? wire__fail(r) : 0;
}

/* Bytewise order of keys, a prefix before the longer key. */
static int wire__key_cmp(kv_slice a, kv_slice b) {
  size_t l = a.len < b.len ? a.len : b.len;
  int c = l ? memcmp(a.ptr, b.ptr, l) : 0;
  if (c)
    return c;
  return a.len < b.len ? -1 : a.len > b.len;
}

/* Reads one list element of shape: key always, hash or object when the
 * shape has them. */
static int wire__pm_elem(mp_reader *r, wire__shape shape, kv_slice *key,
                         kv_slice *object, uint64_t *hash) {
  if (shape == WIRE__KEY)
    return wire__pm_key(r, key);
  uint32_t n;
  if (mp_read_array(r, &n))
    return KV_EPROTO;
  if (n != 2)
    return wire__fail(r);
  if (wire__pm_key(r, key))
    return KV_EPROTO;
  if (shape == WIRE__KEY_HASH)
    return mp_read_uint(r, hash);
  return mp_read_bytes(r, object);
}

/* Reads count elements of shape; with ascending, their keys must be
 * strictly ascending. */
static int wire__pm_walk(mp_reader *r, uint32_t count, wire__shape shape,
                         bool ascending) {
  kv_slice prev = {NULL, 0};
  for (uint32_t i = 0; i < count; i++) {
    kv_slice key, object;
    uint64_t hash;
    if (wire__pm_elem(r, shape, &key, &object, &hash))
      return KV_EPROTO;
    if (ascending && i > 0 && wire__key_cmp(prev, key) >= 0)
      return wire__fail(r);
    prev = key;
  }
  return 0;
}

/* Reads a list field: an array of at most max elements of shape, checked
 * whole; out gets the count and the elements' bytes. */
static int wire__pm_list(mp_reader *r, uint32_t max, wire__shape shape,
                         bool ascending, wire_pm_list *out) {
  uint32_t n;
  if (mp_read_array(r, &n))
    return KV_EPROTO;
  if (n > max)
    return wire__fail(r);
  const uint8_t *start = r->p;
  if (wire__pm_walk(r, n, shape, ascending))
    return KV_EPROTO;
  out->count = n;
  out->items.ptr = start;
  out->items.len = (size_t)(r->p - start);
  return 0;
}

/* True when l, about to be encoded, is what wire__pm_list accepts: at most
 * max elements, its items exactly count elements of shape. */
static bool wire__pm_list_ok(const wire_pm_list *l, uint32_t max,
                             wire__shape shape, bool ascending) {
  if (l->count > max || !wire__slice_ok(l->items))
    return false;
  mp_reader r;
  wire__reader(&r, l->items.ptr, l->items.len);
  return wire__pm_walk(&r, l->count, shape, ascending) == 0 && r.p == r.end;
}

/* Starts decoding a payload: one array of at least need fields; *extra is
 * the number of fields after those. */
static int wire__pm_open(mp_reader *r, const uint8_t *p, size_t len,
                         uint32_t need, uint32_t *extra) {
  wire__reader(r, p, len);
  uint32_t n;
  if (mp_read_array(r, &n))
    return KV_EPROTO;
  if (n < need)
    return wire__fail(r);
  *extra = n - need;
  return 0;
}

/* Finishes decoding: skips the extra fields; the payload must end there. */
static int wire__pm_close(mp_reader *r, uint32_t extra) {
  for (uint32_t i = 0; i < extra; i++)
    if (mp_skip(r))
      return KV_EPROTO;
  return r->err || r->p != r->end ? KV_EPROTO : 0;
}

/* Starts encoding into out: KV_ENOMEM when out already failed. */
static int wire__pm_begin(kvbuf *out, msgpack_packer *pk, size_t *start,
                          size_t reserve) {
  if (out->oom || kvbuf_reserve(out, reserve))
    return KV_ENOMEM;
  *start = out->len;
  mp_packer_init(pk, out);
  return 0;
}

/* Finishes encoding: on a failed growth the partial payload is removed. */
static int wire__pm_end(kvbuf *out, size_t start) {
  if (out->oom) {
    if (start < out->len)
      out->len = start;
    return KV_ENOMEM;
  }
  return 0;
}

static void wire__pm_pack_list(kvbuf *out, msgpack_packer *pk,
                               const wire_pm_list *l) {
  msgpack_pack_array(pk, l->count);
  if (l->items.len)
    kvbuf_append(out, l->items.ptr, l->items.len);
}

static void wire__pack_bool(msgpack_packer *pk, bool v) {
  if (v)
    msgpack_pack_true(pk);
  else
    msgpack_pack_false(pk);
}

/* ---- HINT_PUT ---- */

int wire_pm_encode_hint_put(kvbuf *out, const wire_pm_hint_put *m) {
  if (!wire__pm_name_ok(m->owner) || !wire__slice_ok(m->key) ||
      m->key.len > KV_KEY_MAX || !wire__slice_ok(m->object))
    return KV_EINVAL;
  msgpack_packer pk;
  size_t start;
  if (wire__pm_begin(out, &pk, &start,
                     WIRE__FIXED_RESERVE + m->owner.len + m->key.len +
                         m->object.len))
    return KV_ENOMEM;
  msgpack_pack_array(&pk, 4);
  wire__pack_str(&pk, m->owner);
  wire__pack_bin(&pk, m->key);
  wire__pack_bin(&pk, m->object);
  wire__pack_bool(&pk, m->durable);
  return wire__pm_end(out, start);
}

int wire_pm_decode_hint_put(const uint8_t *p, size_t len,
                            wire_pm_hint_put *out) {
  memset(out, 0, sizeof(*out));
  mp_reader r;
  uint32_t extra;
  if (wire__pm_open(&r, p, len, 4, &extra) || mp_read_str(&r, &out->owner))
    return KV_EPROTO;
  if (!wire__pm_name_ok(out->owner))
    return wire__fail(&r);
  if (wire__pm_key(&r, &out->key) || mp_read_bytes(&r, &out->object) ||
      mp_read_bool(&r, &out->durable))
    return KV_EPROTO;
  return wire__pm_close(&r, extra);
}

/* ---- AAE_BRANCHES ---- */

int wire_pm_encode_aae_branches(kvbuf *out, const wire_pm_aae_branches *m) {
  msgpack_packer pk;
  size_t start;
  if (wire__pm_begin(out, &pk, &start, 16 + 9 * WIRE_AAE_BRANCHES))
    return KV_ENOMEM;
  msgpack_pack_array(&pk, 2);
  msgpack_pack_uint32(&pk, m->part);
  msgpack_pack_array(&pk, WIRE_AAE_BRANCHES);
  for (uint32_t b = 0; b < WIRE_AAE_BRANCHES; b++)
    msgpack_pack_uint64(&pk, m->branch[b]);
  return wire__pm_end(out, start);
}

int wire_pm_decode_aae_branches(const uint8_t *p, size_t len,
                                wire_pm_aae_branches *out) {
  memset(out, 0, sizeof(*out));
  mp_reader r;
  uint32_t extra, n;
  if (wire__pm_open(&r, p, len, 2, &extra) || mp_read_u32(&r, &out->part) ||
      mp_read_array(&r, &n))
    return KV_EPROTO;
  if (n != WIRE_AAE_BRANCHES)
    return wire__fail(&r);
  for (uint32_t b = 0; b < WIRE_AAE_BRANCHES; b++)
    if (mp_read_uint(&r, &out->branch[b]))
      return KV_EPROTO;
  return wire__pm_close(&r, extra);
}

/* ---- AAE_LEAVES ---- */

/* Number of bits set in v. */
static uint32_t wire__popcount64(uint64_t v) {
  uint32_t n = 0;
  for (; v; v &= v - 1)
    n++;
  return n;
}

int wire_pm_encode_aae_leaves(kvbuf *out, const wire_pm_aae_leaves *m) {
  uint32_t nb = wire__popcount64(m->branches);
  msgpack_packer pk;
  size_t start;
  if (wire__pm_begin(out, &pk, &start,
                     16 + (size_t)nb * (8 + 9 * WIRE_AAE_LEAVES_PER_BRANCH)))
    return KV_ENOMEM;
  msgpack_pack_array(&pk, 2);
  msgpack_pack_uint32(&pk, m->part);
  msgpack_pack_array(&pk, nb);
  for (uint32_t b = 0; b < WIRE_AAE_BRANCHES; b++) {
    if (!((m->branches >> b) & 1u))
      continue;
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint32(&pk, b);
    msgpack_pack_array(&pk, WIRE_AAE_LEAVES_PER_BRANCH);
    for (uint32_t l = 0; l < WIRE_AAE_LEAVES_PER_BRANCH; l++)
      msgpack_pack_uint64(&pk, m->leaf[b * WIRE_AAE_LEAVES_PER_BRANCH + l]);
  }
  return wire__pm_end(out, start);
}

int wire_pm_decode_aae_leaves(const uint8_t *p, size_t len,
                              wire_pm_aae_leaves *out) {
  memset(out, 0, sizeof(*out));
  mp_reader r;
  uint32_t extra, n;
  if (wire__pm_open(&r, p, len, 2, &extra) || mp_read_u32(&r, &out->part) ||
      mp_read_array(&r, &n))
    return KV_EPROTO;
  if (n > WIRE_AAE_BRANCHES)
    return wire__fail(&r);
  for (uint32_t i = 0; i < n; i++) {
    uint32_t two, b, nl;
    if (mp_read_array(&r, &two))
      return KV_EPROTO;
    if (two != 2)
      return wire__fail(&r);
    if (mp_read_u32(&r, &b))
      return KV_EPROTO;
    /* Strictly ascending: each branch at most once. */
    if (b >= WIRE_AAE_BRANCHES || (out->branches >> b) != 0)
      return wire__fail(&r);
    if (mp_read_array(&r, &nl))
      return KV_EPROTO;
    if (nl != WIRE_AAE_LEAVES_PER_BRANCH)
      return wire__fail(&r);
    for (uint32_t l = 0; l < WIRE_AAE_LEAVES_PER_BRANCH; l++)
      if (mp_read_uint(&r, &out->leaf[b * WIRE_AAE_LEAVES_PER_BRANCH + l]))
        return KV_EPROTO;
    out->branches |= 1u << b;
  }
  return wire__pm_close(&r, extra);
}

/* ---- AAE_KEYS ---- */

int wire_pm_encode_aae_keys(kvbuf *out, const wire_pm_aae_keys *m) {
  if (!wire__pm_list_ok(&m->keys, WIRE_AAE_KEYS_MAX, WIRE__KEY_HASH, true))
    return KV_EINVAL;
  uint32_t nsegs = 0;
  for (uint32_t i = 0; i < WIRE_AAE_SEGMENTS / 64; i++)
    nsegs += wire__popcount64(m->segs[i]);
  msgpack_packer pk;
  size_t start;
  if (wire__pm_begin(out, &pk, &start,
                     24 + 3 * (size_t)nsegs + m->keys.items.len))
    return KV_ENOMEM;
  msgpack_pack_array(&pk, 3);
  msgpack_pack_uint32(&pk, m->part);
  msgpack_pack_array(&pk, nsegs);
  for (uint32_t s = 0; s < WIRE_AAE_SEGMENTS; s++)
    if ((m->segs[s / 64] >> (s % 64)) & 1u)
      msgpack_pack_uint32(&pk, s);
  wire__pm_pack_list(out, &pk, &m->keys);
  return wire__pm_end(out, start);
}

int wire_pm_decode_aae_keys(const uint8_t *p, size_t len,
                            wire_pm_aae_keys *out) {
  memset(out, 0, sizeof(*out));
  mp_reader r;
  uint32_t extra, n;
  if (wire__pm_open(&r, p, len, 3, &extra) || mp_read_u32(&r, &out->part) ||
      mp_read_array(&r, &n))
    return KV_EPROTO;
  if (n > WIRE_AAE_SEGMENTS)
    return wire__fail(&r);
  for (uint32_t i = 0, prev = 0; i < n; i++) {
    uint32_t s;
    if (mp_read_u32(&r, &s))
      return KV_EPROTO;
    if (s >= WIRE_AAE_SEGMENTS || (i > 0 && s <= prev))
      return wire__fail(&r);
    out->segs[s / 64] |= 1ull << (s % 64);
    prev = s;
  }
  if (wire__pm_list(&r, WIRE_AAE_KEYS_MAX, WIRE__KEY_HASH, true, &out->keys))
    return KV_EPROTO;
  return wire__pm_close(&r, extra);
}

/* ---- AAE_OBJS ---- */

int wire_pm_encode_aae_objs(kvbuf *out, const wire_pm_aae_objs *m) {
  if (!wire__pm_list_ok(&m->objs, WIRE_AAE_KEYS_MAX, WIRE__KEY_OBJECT,
                        false) ||
      !wire__pm_list_ok(&m->want, WIRE_AAE_KEYS_MAX, WIRE__KEY, false))
    return KV_EINVAL;
  msgpack_packer pk;
  size_t start;
  if (wire__pm_begin(out, &pk, &start,
                     24 + m->objs.items.len + m->want.items.len))
    return KV_ENOMEM;
  msgpack_pack_array(&pk, 3);
  msgpack_pack_uint32(&pk, m->part);
  wire__pm_pack_list(out, &pk, &m->objs);
  wire__pm_pack_list(out, &pk, &m->want);
  return wire__pm_end(out, start);
}

int wire_pm_decode_aae_objs(const uint8_t *p, size_t len,
                            wire_pm_aae_objs *out) {
  memset(out, 0, sizeof(*out));
  mp_reader r;
  uint32_t extra;
  if (wire__pm_open(&r, p, len, 3, &extra) || mp_read_u32(&r, &out->part) ||
      wire__pm_list(&r, WIRE_AAE_KEYS_MAX, WIRE__KEY_OBJECT, false,
                    &out->objs) ||
      wire__pm_list(&r, WIRE_AAE_KEYS_MAX, WIRE__KEY, false, &out->want))
    return KV_EPROTO;
  return wire__pm_close(&r, extra);
}

/* ---- HANDOFF ---- */

int wire_pm_encode_handoff(kvbuf *out, const wire_pm_handoff *m) {
  if (!wire__pm_list_ok(&m->objs, WIRE_HANDOFF_BATCH_MAX, WIRE__KEY_OBJECT,
                        false))
    return KV_EINVAL;
  msgpack_packer pk;
  size_t start;
  if (wire__pm_begin(out, &pk, &start, 24 + m->objs.items.len))
    return KV_ENOMEM;
  msgpack_pack_array(&pk, 3);
  msgpack_pack_uint32(&pk, m->part);
  wire__pm_pack_list(out, &pk, &m->objs);
  wire__pack_bool(&pk, m->last);
  return wire__pm_end(out, start);
}

int wire_pm_decode_handoff(const uint8_t *p, size_t len,
                           wire_pm_handoff *out) {
  memset(out, 0, sizeof(*out));
  mp_reader r;
  uint32_t extra;
  if (wire__pm_open(&r, p, len, 3, &extra) || mp_read_u32(&r, &out->part) ||
      wire__pm_list(&r, WIRE_HANDOFF_BATCH_MAX, WIRE__KEY_OBJECT, false,
                    &out->objs) ||
      mp_read_bool(&r, &out->last))
    return KV_EPROTO;
  return wire__pm_close(&r, extra);
}

/* ---- HANDOFF_ACK ---- */

int wire_pm_encode_handoff_ack(kvbuf *out, const wire_pm_handoff_ack *m) {
  if (m->count > WIRE_HANDOFF_BATCH_MAX)
    return KV_EINVAL;
  msgpack_packer pk;
  size_t start;
  if (wire__pm_begin(out, &pk, &start, 16))
    return KV_ENOMEM;
  msgpack_pack_array(&pk, 2);
  msgpack_pack_uint32(&pk, m->part);
  msgpack_pack_uint32(&pk, m->count);
  return wire__pm_end(out, start);
}

int wire_pm_decode_handoff_ack(const uint8_t *p, size_t len,
                               wire_pm_handoff_ack *out) {
  memset(out, 0, sizeof(*out));
  mp_reader r;
  uint32_t extra;
  if (wire__pm_open(&r, p, len, 2, &extra) || mp_read_u32(&r, &out->part) ||
      mp_read_u32(&r, &out->count))
    return KV_EPROTO;
  if (out->count > WIRE_HANDOFF_BATCH_MAX)
    return wire__fail(&r);
  return wire__pm_close(&r, extra);
}

/* ---- REAP ---- */

int wire_pm_encode_reap(kvbuf *out, const wire_pm_reap *m) {
  if (!wire__slice_ok(m->key) || m->key.len > KV_KEY_MAX ||
      !wire__slice_ok(m->object))
    return KV_EINVAL;
  msgpack_packer pk;
  size_t start;
  if (wire__pm_begin(out, &pk, &start,
                     WIRE__FIXED_RESERVE + m->key.len + m->object.len))
    return KV_ENOMEM;
  msgpack_pack_array(&pk, 3);
  msgpack_pack_uint32(&pk, m->part);
  wire__pack_bin(&pk, m->key);
  wire__pack_bin(&pk, m->object);
  return wire__pm_end(out, start);
}

int wire_pm_decode_reap(const uint8_t *p, size_t len, wire_pm_reap *out) {
  memset(out, 0, sizeof(*out));
  mp_reader r;
  uint32_t extra;
  if (wire__pm_open(&r, p, len, 3, &extra) || mp_read_u32(&r, &out->part) ||
      wire__pm_key(&r, &out->key) || mp_read_bytes(&r, &out->object))
    return KV_EPROTO;
  return wire__pm_close(&r, extra);
}

/* ---- dispatch ---- */

int wire_pm_encode(kvbuf *out, const wire_pm *m) {
  switch (m->kind) {
#define WIRE__PM_ENC(name, num, str, field)                                    \
  case (num):                                                                  \
    return wire_pm_encode_##field(out, &m->field);
    WIRE_PM_MAP(WIRE__PM_ENC)
#undef WIRE__PM_ENC
  default:
    return KV_EINVAL;
  }
}

int wire_pm_decode(uint32_t kind, const uint8_t *p, size_t len,
                   wire_pm *out) {
  out->kind = kind;
  switch (kind) {
#define WIRE__PM_DEC(name, num, str, field)                                    \
  case (num):                                                                  \
    return wire_pm_decode_##field(p, len, &out->field);
    WIRE_PM_MAP(WIRE__PM_DEC)
#undef WIRE__PM_DEC
  default:
    return KV_EUNKNOWN;
  }
}

int wire_encode_pm(kvbuf *out, uint64_t req_id, const wire_pm *m) {
  if (out->oom)
    return KV_ENOMEM;
  kvbuf pl;
  kvbuf_init(&pl);
  int rc = wire_pm_encode(&pl, m);
  if (rc == 0) {
    wire_msg f;
    memset(&f, 0, sizeof(f));
    f.type = WIRE_PEER_MSG;
    f.req_id = req_id;
    f.flags = m->kind;
    f.raw.ptr = pl.data;
    f.raw.len = pl.len;
    rc = wire_encode(out, &f);
  }
  kvbuf_free(&pl);
  return rc;
}

/* ---- list builders and iterators ---- */

void wire_pm_items_init(wire_pm_items *b) {
  kvbuf_init(&b->buf);
  b->count = 0;
}

void wire_pm_items_free(wire_pm_items *b) {
  kvbuf_free(&b->buf);
  b->count = 0;
}

void wire_pm_items_reset(wire_pm_items *b) {
  b->buf.len = 0;
  b->buf.oom = 0;
  b->count = 0;
}

/* Checks an element's key before it is added. */
static int wire__items_check(const wire_pm_items *b, const void *key,
                             size_t klen) {
  if (klen > KV_KEY_MAX || (klen && !key) || b->count == UINT32_MAX)
    return KV_EINVAL;
  return b->buf.oom ? KV_ENOMEM : 0;
}

/* Counts the element just packed, or removes it after a failed growth. */
static int wire__items_done(wire_pm_items *b, size_t start) {
  if (b->buf.oom) {
    if (start < b->buf.len)
      b->buf.len = start;
    return KV_ENOMEM;
  }
  b->count++;
  return 0;
}

int wire_pm_items_add_key_hash(wire_pm_items *b, const void *key, size_t klen,
                               uint64_t hash) {
  int rc = wire__items_check(b, key, klen);
  if (rc)
    return rc;
  size_t start = b->buf.len;
  msgpack_packer pk;
  mp_packer_init(&pk, &b->buf);
  msgpack_pack_array(&pk, 2);
  mp_pack_bin(&pk, key, klen);
  msgpack_pack_uint64(&pk, hash);
  return wire__items_done(b, start);
}

int wire_pm_items_add_key_object(wire_pm_items *b, const void *key,
                                 size_t klen, const void *object,
                                 size_t olen) {
  int rc = wire__items_check(b, key, klen);
  if (rc)
    return rc;
  if (olen && !object)
    return KV_EINVAL;
  size_t start = b->buf.len;
  msgpack_packer pk;
  mp_packer_init(&pk, &b->buf);
  msgpack_pack_array(&pk, 2);
  mp_pack_bin(&pk, key, klen);
  mp_pack_bin(&pk, object, olen);
  return wire__items_done(b, start);
}

int wire_pm_items_add_key(wire_pm_items *b, const void *key, size_t klen) {
  int rc = wire__items_check(b, key, klen);
  if (rc)
    return rc;
  size_t start = b->buf.len;
  msgpack_packer pk;
  mp_packer_init(&pk, &b->buf);
  mp_pack_bin(&pk, key, klen);
  return wire__items_done(b, start);
}

wire_pm_list wire_pm_items_list(const wire_pm_items *b) {
  wire_pm_list l;
  l.count = b->count;
  l.items.ptr = b->buf.data;
  l.items.len = b->buf.len;
  return l;
}

void wire_pm_iter_init(wire_pm_iter *it, const wire_pm_list *l) {
  wire__reader(&it->r, l->items.ptr, l->items.len);
  it->left = l->count;
}

/* Reads the next element of shape. */
static int wire__pm_next(wire_pm_iter *it, wire__shape shape, kv_slice *key,
                         kv_slice *object, uint64_t *hash) {
  if (it->r.err)
    return KV_EPROTO;
  if (it->left == 0)
    return KV_ENOTFOUND;
  if (wire__pm_elem(&it->r, shape, key, object, hash))
    return wire__fail(&it->r);
  it->left--;
  return 0;
}

int wire_pm_next_key_hash(wire_pm_iter *it, wire_pm_key_hash *out) {
  kv_slice object;
  return wire__pm_next(it, WIRE__KEY_HASH, &out->key, &object, &out->hash);
}

int wire_pm_next_key_object(wire_pm_iter *it, wire_pm_key_object *out) {
  uint64_t hash;
  return wire__pm_next(it, WIRE__KEY_OBJECT, &out->key, &out->object, &hash);
}

int wire_pm_next_key(wire_pm_iter *it, kv_slice *out) {
  kv_slice object;
  uint64_t hash;
  return wire__pm_next(it, WIRE__KEY, out, &object, &hash);
}
