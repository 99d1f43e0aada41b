/*
 * kv_base64.h: standard base64 (RFC 4648, with padding), as kvorum shows
 * binary contexts to people and to text protocols: the kvorum CLI, and
 * the Redis front end's KV.* commands.
 *
 * Depends on: mp.h (kvbuf), kv_err.h.
 */
#ifndef KV_BASE64_H
#define KV_BASE64_H

#include <stddef.h>
#include <stdint.h>

#include "mp.h"

/* Bytes base64 needs for n input bytes, without the NUL. */
#define KV_B64_LEN(n) ((((n) + 2u) / 3u) * 4u)

/* Encodes len bytes as standard base64 (with padding) appended to out,
 * followed by a NUL that is not counted in out->len. Returns 0 or
 * KV_ENOMEM. */
int kv_b64_encode(kvbuf *out, const void *p, size_t len);

/* Decodes standard base64 (padding optional, no whitespace) into a malloc'd
 * buffer *out of *outlen bytes (caller frees; an empty input gives a
 * non-NULL empty buffer). Returns 0, KV_EINVAL for bad input, or
 * KV_ENOMEM. */
int kv_b64_decode(const char *s, size_t len, uint8_t **out, size_t *outlen);

#endif
