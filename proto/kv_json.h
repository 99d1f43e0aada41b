/*
 * kv_json.h: JSON output shared by the CLI and the node's HTTP front end:
 * UTF-8 checking, JSON strings, and a msgpack -> JSON renderer for ADMIN
 * replies. Depends on: mp.h.
 */
#ifndef KV_JSON_H
#define KV_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "mp.h"

/* True when p[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
bool kv_utf8_valid(const void *p, size_t len);

/* Appends p[0..len) as a quoted JSON string: quotes, backslashes and
 * control characters escaped; bytes that are not valid UTF-8 become
 * U+FFFD. Returns 0 or KV_ENOMEM. */
int kv_json_str(kvbuf *out, const void *p, size_t len);

/* Renders one msgpack object (the whole of buf) as JSON appended to out,
 * NUL-terminated (the NUL not counted in out->len). bin and ext become
 * base64 strings, map keys that are not strings are rendered and quoted,
 * nesting is bounded by MP_DEPTH_MAX. Returns 0, KV_EPROTO for malformed
 * msgpack, or KV_ENOMEM. */
int kv_json_from_msgpack(kvbuf *out, const void *buf, size_t len);

#endif
