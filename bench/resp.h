/*
 * resp.h: a small encoder and bounds-checked incremental parser for the
 * Redis serialization protocol (RESP2), enough to drive GET and SET (and
 * AUTH, INFO).
 *
 * The parser never reads past the bytes it is given, never allocates, and
 * tells "need more bytes" apart from "this is not RESP". Depends on libc
 * and kv_err.h.
 */
#ifndef BENCH_RESP_H
#define BENCH_RESP_H

#include <stddef.h>
#include <stdint.h>

#define RESP_LINE_MAX 1024             /* longest header or status line */
#define RESP_BULK_MAX (512u << 20)     /* Redis's own proto-max-bulk-len */
#define RESP_ARRAY_MAX (1u << 20)      /* elements in one array */
#define RESP_DEPTH_MAX 8               /* nesting of arrays */

typedef enum resp_type {
  RESP_STATUS = '+',
  RESP_ERROR = '-',
  RESP_INT = ':',
  RESP_BULK = '$',
  RESP_ARRAY = '*',
} resp_type;

/* The top-level reply parsed; str points into the caller's buffer. */
typedef struct resp_reply {
  resp_type type;
  const char *str; /* status/error text or bulk bytes; NULL for nil */
  size_t len;
  int64_t num; /* integer value, or element count of an array (-1: nil) */
} resp_reply;

/* Parses one complete reply at buf[0..len). Returns the number of bytes it
 * takes (> 0) and fills *out; 0 when more bytes are needed; KV_EPROTO for
 * input that is not RESP or breaks a limit. Nested array elements are
 * checked and skipped; only the top level is described in *out. */
long resp_parse(const char *buf, size_t len, resp_reply *out);

/* Bytes resp_encode_* needs for a command with these argument sizes. */
size_t resp_get_size(size_t klen);
size_t resp_set_size(size_t klen, size_t vlen);
/* Encode GET key / SET key value into dst, which has room for
 * resp_*_size bytes. Return the bytes written. */
size_t resp_encode_get(char *dst, const void *key, size_t klen);
size_t resp_encode_set(char *dst, const void *key, size_t klen,
                       const void *val, size_t vlen);
/* The same for any command of argc arguments (argv[i] of lens[i] bytes;
 * the command's name is argv[0]), e.g. AUTH user password. */
size_t resp_cmd_size(size_t argc, const size_t *lens);
size_t resp_encode_cmd(char *dst, size_t argc, const char *const *argv,
                       const size_t *lens);

#endif
