/*
 * uv_log.h: one log line of kvorumd, as logfmt or as JSON. Pure: it
 * formats into a buffer and does no I/O; the shell (uv_node.c) writes the
 * line to stderr.
 *
 *   logfmt: ts=2026-12-06T06:14:26.123Z level=info node=n1 msg="a b"
 *   json:   {"ts":"2026-12-06T06:14:26.123Z","level":"info","node":"n1","msg":"a b"}
 *
 * Promises: a line always ends in one "\n" and holds no other control
 * byte (so no raw newline); a JSON line is always valid JSON, and valid
 * UTF-8, whatever bytes the message holds.
 *
 * Escaping, the same in both formats: a quoted value is a JSON string as
 * kv_json_str (kv_json.h) writes it (escapes logfmt readers such as
 * go-logfmt's accept): backslash and double quote as \\ and \", newline, carriage return, tab,
 * backspace and form feed as \n, \r, \t, \b and \f, every other byte below
 * 0x20 and 0x7f as \u00XX; a byte that does not start a valid UTF-8
 * sequence (also an overlong form, a surrogate, or past U+10FFFF) becomes
 * U+FFFD, one per byte; valid UTF-8 is copied. In logfmt a value goes in
 * double quotes when it is empty or holds a space, '=', '"', '\\', a
 * control byte, 0x7f or invalid UTF-8; otherwise it goes bare.
 *
 * A value longer than KV_LOG_VALUE_MAX bytes is cut there (at the start of
 * a UTF-8 sequence) and ends in "...".
 *
 * Depends on: mp.h (kvbuf), kv_json.h (JSON strings), kv_err.h.
 */
#ifndef KV_NODE_UV_LOG_H
#define KV_NODE_UV_LOG_H

#include <stdint.h>

#include "mp.h"

#define KV_LOG_VALUE_MAX 16384u /* bytes of one value before it is cut */

typedef enum kv_log_format {
  KV_LOG_LOGFMT, /* key=value pairs (the default) */
  KV_LOG_JSON,   /* one JSON object */
} kv_log_format;

/* Appends one line to out: the time wall_ms (milliseconds since the Unix
 * epoch, shown in UTC), then level, node and msg (NULL reads as "").
 * Returns 0, or KV_ENOMEM with out->len as it was (and out->oom set). */
int kv_log_line(kvbuf *out, kv_log_format fmt, uint64_t wall_ms,
                const char *level, const char *node, const char *msg);

/* Reads a format name, "logfmt" or "json", into *out. Returns 0 or
 * KV_EINVAL (*out unchanged). */
int kv_log_format_parse(const char *name, kv_log_format *out);

#endif
