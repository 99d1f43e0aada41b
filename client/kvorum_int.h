/*
 * kvorum_int.h: internals of libkvorum shared by the library, the kvorum
 * CLI and the unit tests: base64, UTF-8 checking, JSON string escaping and
 * the msgpack -> JSON renderer used by kv_admin.
 * Not installed; not part of the public API. Depends on: mp.h (kvproto).
 */
#ifndef KVORUM_INT_H
#define KVORUM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mp.h"

/* Bytes base64 needs for n input bytes, without the NUL. */
#define KV__B64_LEN(n) ((((n) + 2u) / 3u) * 4u)

/* Encodes len bytes as standard base64 (with padding) appended to out,
 * followed by a NUL that is not counted in out->len. Returns 0 or
 * KV_ENOMEM. */
int kv__b64_encode(kvbuf *out, const void *p, size_t len);

/* Decodes standard base64 (padding optional, no whitespace) into a malloc'd
 * buffer *out of *outlen bytes (caller frees; an empty input gives a
 * non-NULL empty buffer). Returns 0, KV_EINVAL for bad input, or
 * KV_ENOMEM. */
int kv__b64_decode(const char *s, size_t len, uint8_t **out, size_t *outlen);

/* True when p[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
bool kv__utf8_valid(const void *p, size_t len);

/* Appends p[0..len) as a quoted JSON string: quotes, backslashes and
 * control characters escaped; bytes that are not valid UTF-8 become
 * U+FFFD. Returns 0 or KV_ENOMEM. */
int kv__json_str(kvbuf *out, const void *p, size_t len);

/* Renders one msgpack object (the whole of buf) as JSON appended to out,
 * NUL-terminated (the NUL not counted in out->len). bin and ext become
 * base64 strings, map keys that are not strings are rendered and quoted,
 * nesting is bounded by MP_DEPTH_MAX. Returns 0, KV_EPROTO for malformed
 * msgpack, or KV_ENOMEM. */
int kv__json_from_msgpack(kvbuf *out, const void *buf, size_t len);

struct kv_client;

/* Like kv_admin but hands back the result as msgpack: *out is malloc'd
 * (caller frees) and holds *len bytes. Returns 0 or a KV_E* code with
 * kv_errmsg set. */
int kv__admin_msgpack(struct kv_client *c, const char *cmd,
                      const char *const *args, uint8_t **out, size_t *len);

#endif
