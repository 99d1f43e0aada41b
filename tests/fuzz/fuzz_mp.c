/*
 * fuzz_mp.c: libFuzzer target for the bounded msgpack reader
 * (proto/mp.h), the base of every other decoder.
 *
 * The input is a sequence of msgpack objects. Beyond "no crash, no
 * out-of-bounds read" (ASan) it checks:
 *   - mp_skip and mp_read_raw consume the same bytes, at least one, never
 *     more than remain, and a failed read leaves the sticky error set;
 *   - every array/map count the reader hands out is bounded by the bytes
 *     that remain (the property that keeps decoders from over-allocating);
 *   - a typed walk (mp_peek + mp_read_*) accepts exactly what mp_skip
 *     accepts and ends at the same place;
 *   - differential: an object our reader accepts is also accepted by
 *     msgpack-c's own unpacker, and both repack (through msgpack-c's
 *     packer, which writes the canonical form) to the same bytes.
 * Depends on: kvproto, msgpack-c.
 */
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_err.h"
#include "mp.h"
#include "tests/fuzz/fz.h"


/* Depth below which we compare with msgpack-c (its stack holds 32 levels). */
#define FZ_DIFF_DEPTH_MAX 16

/* Walks one object with the typed readers and packs its canonical form into
 * pk. Returns 0 or KV_EPROTO; *depth_seen gets the deepest nesting. */
static int walk(mp_reader *r, msgpack_packer *pk, int depth, int *depth_seen) {
  if (depth > *depth_seen)
    *depth_seen = depth;
  if (depth > MP_DEPTH_MAX)
    return KV_EPROTO;
  const uint8_t *start = r->p;
  switch (mp_peek(r)) {
  case MP_NIL:
    if (mp_read_nil(r))
      return KV_EPROTO;
    msgpack_pack_nil(pk);
    return 0;
  case MP_BOOL: {
    bool b;
    if (mp_read_bool(r, &b))
      return KV_EPROTO;
    if (b)
      msgpack_pack_true(pk);
    else
      msgpack_pack_false(pk);
    return 0;
  }
  case MP_UINT: {
    uint64_t u;
    if (mp_read_uint(r, &u))
      return KV_EPROTO;
    msgpack_pack_uint64(pk, u);
    return 0;
  }
  case MP_INT: {
    int64_t i;
    if (mp_read_int(r, &i))
      return KV_EPROTO;
    if (i >= 0)
      msgpack_pack_uint64(pk, (uint64_t)i);
    else
      msgpack_pack_int64(pk, i);
    return 0;
  }
  case MP_FLOAT: {
    int is32 = *r->p == 0xca;
    double d;
    if (mp_read_double(r, &d))
      return KV_EPROTO;
    FZ_CHECK(r->p - start == (is32 ? 5 : 9));
    if (is32)
      msgpack_pack_float(pk, (float)d);
    else
      msgpack_pack_double(pk, d);
    return 0;
  }
  case MP_STR: {
    kv_slice s;
    if (mp_read_str(r, &s))
      return KV_EPROTO;
    FZ_CHECK(s.ptr >= start && s.ptr + s.len == r->p);
    msgpack_pack_str(pk, s.len);
    msgpack_pack_str_body(pk, s.ptr, s.len);
    return 0;
  }
  case MP_BIN: {
    kv_slice s;
    if (mp_read_bytes(r, &s))
      return KV_EPROTO;
    FZ_CHECK(s.ptr >= start && s.ptr + s.len == r->p);
    msgpack_pack_bin(pk, s.len);
    msgpack_pack_bin_body(pk, s.ptr, s.len);
    return 0;
  }
  case MP_ARRAY: {
    uint32_t n;
    if (mp_read_array(r, &n))
      return KV_EPROTO;
    FZ_CHECK(n <= mp_remaining(r));
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++)
      if (walk(r, pk, depth + 1, depth_seen))
        return KV_EPROTO;
    return 0;
  }
  case MP_MAP: {
    uint32_t n;
    if (mp_read_map(r, &n))
      return KV_EPROTO;
    FZ_CHECK((uint64_t)n * 2 <= mp_remaining(r));
    msgpack_pack_map(pk, n);
    for (uint32_t i = 0; i < 2 * n; i++)
      if (walk(r, pk, depth + 1, depth_seen))
        return KV_EPROTO;
    return 0;
  }
  case MP_EXT: {
    kv_slice raw;
    if (mp_read_raw(r, &raw))
      return KV_EPROTO;
    /* Decode the ext header ourselves to repack it canonically. */
    size_t hdr, len;
    switch (raw.ptr[0]) {
    case 0xd4: hdr = 1; len = 1; break;
    case 0xd5: hdr = 1; len = 2; break;
    case 0xd6: hdr = 1; len = 4; break;
    case 0xd7: hdr = 1; len = 8; break;
    case 0xd8: hdr = 1; len = 16; break;
    case 0xc7: hdr = 2; len = raw.ptr[1]; break;
    case 0xc8: hdr = 3; len = ((size_t)raw.ptr[1] << 8) | raw.ptr[2]; break;
    default:
      hdr = 5;
      len = ((size_t)raw.ptr[1] << 24) | ((size_t)raw.ptr[2] << 16) |
            ((size_t)raw.ptr[3] << 8) | raw.ptr[4];
      break;
    }
    FZ_CHECK(raw.len == hdr + 1 + len);
    msgpack_pack_ext(pk, len, (int8_t)raw.ptr[hdr]);
    msgpack_pack_ext_body(pk, raw.ptr + hdr + 1, len);
    return 0;
  }
  default:
    return KV_EPROTO;
  }
}

/* Repacks one object decoded by msgpack-c. */
static void repack_msgpack_c(const uint8_t *p, size_t len, size_t *consumed,
                             kvbuf *out, int *ok) {
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  msgpack_unpack_return rc =
      msgpack_unpack_next(&u, (const char *)p, len, &off);
  *ok = rc == MSGPACK_UNPACK_SUCCESS;
  if (*ok) {
    msgpack_packer pk;
    mp_packer_init(&pk, out);
    msgpack_pack_object(&pk, u.data);
    *consumed = off;
  }
  msgpack_unpacked_destroy(&u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mp_reader sk, raw, tw;
  mp_reader_init(&sk, data, size);
  mp_reader_init(&raw, data, size);
  mp_reader_init(&tw, data, size);

  for (int objects = 0; objects < 64 && mp_remaining(&sk) > 0; objects++) {
    const uint8_t *before = sk.p;
    int rs = mp_skip(&sk);
    kv_slice rawobj;
    int rr = mp_read_raw(&raw, &rawobj);
    kvbuf walked;
    kvbuf_init(&walked);
    msgpack_packer pk;
    mp_packer_init(&pk, &walked);
    int depth = 0;
    int rw = walk(&tw, &pk, 0, &depth);

    FZ_CHECK((rs == 0) == (rr == 0));
    FZ_CHECK((rs == 0) == (rw == 0));
    if (rs != 0) {
      FZ_CHECK(rs == KV_EPROTO && sk.err == KV_EPROTO);
      FZ_CHECK(raw.err == KV_EPROTO);
      /* Errors are sticky: a later read must fail too. */
      FZ_CHECK(mp_peek(&sk) == MP_INVALID);
      FZ_CHECK(mp_skip(&sk) == KV_EPROTO);
      kvbuf_free(&walked);
      break;
    }
    FZ_CHECK(sk.p > before && sk.p <= sk.end);
    FZ_CHECK(rawobj.ptr == before &&
             rawobj.len == (size_t)(sk.p - before));
    FZ_CHECK(raw.p == sk.p && tw.p == sk.p);
    FZ_CHECK(!walked.oom);

    if (depth <= FZ_DIFF_DEPTH_MAX) {
      kvbuf theirs;
      kvbuf_init(&theirs);
      size_t consumed = 0;
      int ok = 0;
      repack_msgpack_c(rawobj.ptr, rawobj.len, &consumed, &theirs, &ok);
      FZ_CHECK(ok);
      FZ_CHECK(consumed == rawobj.len);
      FZ_CHECK(theirs.len == walked.len);
      FZ_CHECK(memcmp(theirs.data, walked.data, walked.len) == 0);
      kvbuf_free(&theirs);

      /* The canonical form reads back to itself. */
      mp_reader again;
      mp_reader_init(&again, walked.data, walked.len);
      kvbuf twice;
      kvbuf_init(&twice);
      msgpack_packer pk2;
      mp_packer_init(&pk2, &twice);
      int d2 = 0;
      FZ_CHECK(walk(&again, &pk2, 0, &d2) == 0);
      FZ_CHECK(mp_remaining(&again) == 0);
      FZ_CHECK(twice.len == walked.len &&
               memcmp(twice.data, walked.data, walked.len) == 0);
      kvbuf_free(&twice);
    }
    kvbuf_free(&walked);
  }

  /* The scalar readers on the raw input: whatever they return, a success
   * consumes bytes within the input and a failure sets the error. */
  if (size > 0) {
    mp_reader r;
    uint8_t which = data[0] % 8;
    mp_reader_init(&r, data + 1, size - 1);
    int rc = 0;
    char cbuf[16];
    kv_slice s;
    uint32_t n32;
    uint64_t u64;
    int64_t i64;
    switch (which) {
    case 0: rc = mp_read_u32(&r, &n32); break;
    case 1: rc = mp_read_uint(&r, &u64); break;
    case 2: rc = mp_read_int(&r, &i64); break;
    case 3: rc = mp_read_cstr(&r, cbuf, sizeof(cbuf));
      if (rc == 0)
        FZ_CHECK(memchr(cbuf, 0, sizeof(cbuf)) != NULL);
      break;
    case 4: rc = mp_read_bytes_or_nil(&r, &s);
      if (rc == 0 && s.ptr == NULL)
        FZ_CHECK(s.len == 0);
      break;
    case 5: rc = mp_read_str(&r, &s); break;
    case 6: rc = mp_read_map(&r, &n32);
      if (rc == 0)
        FZ_CHECK((uint64_t)n32 * 2 <= mp_remaining(&r));
      break;
    default: rc = mp_read_array(&r, &n32);
      if (rc == 0)
        FZ_CHECK(n32 <= mp_remaining(&r));
      break;
    }
    FZ_CHECK(r.p >= data + 1 && r.p <= r.end);
    if (rc == KV_EPROTO)
      FZ_CHECK(r.err == KV_EPROTO);
    else
      FZ_CHECK(rc == 0 || (which == 3 && rc == KV_ETOOBIG));
  }
  return 0;
}
