/*
 * http_req.h: what an HTTP request to kvorumd asks for, read from its
 * target (path and query) alone. The pure part of the HTTP front end
 * (uv_http.c): no h2o, no I/O, so it is unit-tested and fuzzed
 * (tests/fuzz/fuzz_http.c) on its own.
 *
 * Routes (docs/http.md):
 *   /metrics  /health  /ready
 *   /kv/{key}         key percent-encoded; query r, pr, w, dw, pw, timeout, ttl
 *   /admin/{command}  status, ring, stats, transfers
 *
 * Depends on: wire.h (wire_opts, KV_KEY_MAX, wire_parse_quorum).
 */
#ifndef KV_HTTP_REQ_H
#define KV_HTTP_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

typedef enum http_route {
  HTTP_R_UNKNOWN, /* no such resource: 404 */
  HTTP_R_METRICS,
  HTTP_R_HEALTH,
  HTTP_R_READY,
  HTTP_R_KV,
  HTTP_R_ADMIN,
} http_route;

#define HTTP_ADMIN_NAME_MAX 16

typedef struct http_target {
  http_route route;
  size_t klen;                     /* HTTP_R_KV: the decoded key */
  char admin[HTTP_ADMIN_NAME_MAX]; /* HTTP_R_ADMIN: the command */
  wire_opts opts;                  /* from the query; unset levels are
                                      WIRE_Q_DEFAULT, timeout 0 */
  uint8_t key[KV_KEY_MAX];
} http_target;

/* Reads target[0..len) (the path as received, query included) into *out.
 * Returns 0, or KV_EINVAL (a bad escape, an unknown or malformed query
 * parameter) or KV_ETOOBIG (a key over KV_KEY_MAX) with a
 * message for the client in err. A path that names no resource is not an
 * error: out->route is HTTP_R_UNKNOWN. */
int http_target_parse(const char *target, size_t len, http_target *out,
                      char *err, size_t errlen);

/* Whether target[0..len) is /types/{key} (docs/http.md, data types):
 * then the decoded key in out->key, out->klen, and the query (after '?',
 * still escaped) in *query, *qlen, and returns 0; KV_EINVAL (a bad escape,
 * an empty key) or KV_ETOOBIG (a key over KV_KEY_MAX) with a message in
 * err; 1 when the path is another. out->route is left as it was
 * (http_target_parse knows nothing of /types). */
int http_types_target(const char *target, size_t len, http_target *out,
                      const char **query, size_t *qlen, char *err,
                      size_t errlen);

/* The next name=value pair of the query q[0..len) from *pos on (empty
 * pairs passed over): the decoded name, NUL-terminated, in name (ncap
 * bytes with the NUL), the decoded value in val (vcap bytes) and *vlen.
 * Returns 1 and moves *pos past it, 0 at the end, or KV_EINVAL (a bad
 * escape, a name or value too long, a NUL in the name) with a message. */
int http_query_next(const char *q, size_t len, size_t *pos, char *name,
                    size_t ncap, uint8_t *val, size_t vcap, size_t *vlen,
                    char *err, size_t errlen);

/* Decodes %XX escapes of s[0..len) into out (cap bytes; '+' stays '+').
 * Returns the decoded length, -1 for a malformed escape, -2 when it does
 * not fit. */
long http_unescape(const char *s, size_t len, uint8_t *out, size_t cap);

#endif
