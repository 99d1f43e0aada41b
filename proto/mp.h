/*
 * mp.h: bounded msgpack reading and buffered msgpack writing.
 *
 * Reading is our own zero-copy cursor: every length and element count is
 * checked against the bytes that remain before anything is trusted, so a
 * hostile frame cannot make us allocate or read out of bounds (msgpack-c's
 * unpacker has no such limits: msgpack/msgpack-c#1013). Strings and binaries
 * come back as pointers into the input buffer.
 *
 * Writing uses msgpack-c's packer over a growable kvbuf.
 * Depends on: msgpack-c (pack only), kv_err.h.
 */
#ifndef KV_MP_H
#define KV_MP_H

#include <msgpack/pack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A view of bytes owned by someone else. */
typedef struct kv_slice {
  const uint8_t *ptr;
  size_t len;
} kv_slice;

/* ---- growable output buffer ---- */

/* Most bytes a kvbuf holds; growing past it fails with KV_ENOMEM. */
#define KVBUF_MAX ((size_t)UINT32_MAX)

typedef struct kvbuf {
  uint8_t *data; /* malloc'd; owned by the kvbuf */
  size_t len;
  size_t cap;
  int oom; /* set when a growth failed; later appends are dropped */
} kvbuf;

void kvbuf_init(kvbuf *b);
/* Frees the storage; the kvbuf may be reused after kvbuf_init. */
void kvbuf_free(kvbuf *b);
/* Makes room for extra more bytes. Returns 0 or KV_ENOMEM (and sets oom)
 * when memory runs out or len + extra would pass KVBUF_MAX. */
int kvbuf_reserve(kvbuf *b, size_t extra);
/* Appends len bytes. Returns 0 or KV_ENOMEM. */
int kvbuf_append(kvbuf *b, const void *p, size_t len);
/* Drops the first n bytes (n <= len). */
void kvbuf_consume(kvbuf *b, size_t n);
/* Hands the storage to the caller (free() it) and resets b. */
uint8_t *kvbuf_steal(kvbuf *b, size_t *len);

/* A msgpack packer writing into b (msgpack_pack_* functions apply). */
void mp_packer_init(msgpack_packer *pk, kvbuf *b);
/* Packs a binary (bin 8/16/32) of len bytes. */
void mp_pack_bin(msgpack_packer *pk, const void *p, size_t len);
/* Packs a UTF-8 string. */
void mp_pack_str(msgpack_packer *pk, const char *s, size_t len);
void mp_pack_cstr(msgpack_packer *pk, const char *s);

/* ---- bounded reader ---- */

typedef struct mp_reader {
  const uint8_t *p;
  const uint8_t *end;
  int err; /* first error seen (KV_EPROTO); sticky */
} mp_reader;

typedef enum mp_type {
  MP_NIL,
  MP_BOOL,
  MP_UINT,
  MP_INT, /* negative integer */
  MP_FLOAT,
  MP_STR,
  MP_BIN,
  MP_ARRAY,
  MP_MAP,
  MP_EXT,
  MP_INVALID /* truncated or reserved byte 0xc1 */
} mp_type;

void mp_reader_init(mp_reader *r, const void *buf, size_t len);
static inline size_t mp_remaining(const mp_reader *r) {
  return (size_t)(r->end - r->p);
}
/* Type of the next object without consuming it. */
mp_type mp_peek(const mp_reader *r);

/* Each reader below returns 0 or KV_EPROTO (wrong type, truncated, count
 * larger than the bytes that remain). On error r->err is set and stays set;
 * later reads fail too, so a decoder may check once at the end. */
int mp_read_nil(mp_reader *r);
int mp_read_bool(mp_reader *r, bool *out);
int mp_read_uint(mp_reader *r, uint64_t *out);  /* non-negative ints only */
int mp_read_int(mp_reader *r, int64_t *out);    /* any int within int64 */
int mp_read_u32(mp_reader *r, uint32_t *out);   /* uint that fits 32 bits */
int mp_read_double(mp_reader *r, double *out);  /* float32/64 or int */
/* Array/map headers: *n is checked against remaining bytes (every element
 * takes at least one byte, every map entry two). */
int mp_read_array(mp_reader *r, uint32_t *n);
int mp_read_map(mp_reader *r, uint32_t *n);
/* str or bin; out points into the input. */
int mp_read_bytes(mp_reader *r, kv_slice *out);
int mp_read_str(mp_reader *r, kv_slice *out); /* str only */
/* Reads a str or bin into a NUL-terminated buffer of cap bytes; fails with
 * KV_ETOOBIG when it does not fit. */
int mp_read_cstr(mp_reader *r, char *buf, size_t cap);
/* nil reads as an empty slice with ptr NULL; otherwise like mp_read_bytes. */
int mp_read_bytes_or_nil(mp_reader *r, kv_slice *out);
/* Skips one complete object (nesting bounded by MP_DEPTH_MAX). */
int mp_skip(mp_reader *r);
/* Skips one object and returns its encoded bytes. */
int mp_read_raw(mp_reader *r, kv_slice *out);

#define MP_DEPTH_MAX 32

/* Compares a str slice with a C string. */
bool mp_slice_eq(kv_slice s, const char *cstr);

#endif
