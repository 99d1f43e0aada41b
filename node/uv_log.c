/*
 * uv_log.c: kvorumd's log lines as logfmt or JSON (uv_log.h). Pure.
 */
#include "uv_log.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "kv_err.h"
#include "kv_json.h"

/* Whether logfmt may write the n bytes at s bare: they are valid UTF-8
 * and hold none of space, '=', '"', '\\', a control byte or 0x7f. */
static bool log__bare(const char *s, size_t n) {
  if (n == 0 || !kv_utf8_valid(s, n))
    return false;
  for (size_t i = 0; i < n; i++) {
    uint8_t c = (uint8_t)s[i];
    if (c <= ' ' || c == 0x7F || c == '=' || c == '"' || c == '\\')
      return false;
  }
  return true;
}

/* The bytes of v that go in a line: all of them, or, past
 * KV_LOG_VALUE_MAX, up to the last UTF-8 sequence start at or before it
 * (*cut set). */
static size_t log__span(const char *v, bool *cut) {
  size_t n = strnlen(v, KV_LOG_VALUE_MAX + 1);
  *cut = n > KV_LOG_VALUE_MAX;
  if (!*cut)
    return n;
  n = KV_LOG_VALUE_MAX;
  while (n > 0 && ((uint8_t)v[n] & 0xC0) == 0x80)
    n--;
  return n;
}

/* Appends the n bytes of value v, quoted (as a JSON string) when fmt
 * needs it, with "..." after them when cut. Like kvbuf_append, does
 * nothing once out->oom is set. */
static void log__value(kvbuf *out, kv_log_format fmt, const char *v,
                       size_t n, bool cut) {
  if (fmt == KV_LOG_LOGFMT && log__bare(v, n)) {
    kvbuf_append(out, v, n);
    if (cut)
      kvbuf_append(out, "...", 3);
    return;
  }
  if (kv_json_str(out, v, n) == 0 && cut) {
    out->len--; /* the closing quote, put back after the marker */
    kvbuf_append(out, "...\"", 4);
  }
}

/* Writes wall_ms as 2026-12-06T06:14:26.123Z into buf (days to a civil
 * date as in H. Hinnant's "chrono-Compatible Low-Level Date Algorithms";
 * no time zone is read). */
static void log__time(char *buf, size_t cap, uint64_t wall_ms) {
  uint64_t secs = wall_ms / 1000, z = secs / 86400 + 719468;
  uint64_t era = z / 146097, doe = z - era * 146097;
  uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  uint64_t mp = (5 * doy + 2) / 153;
  uint64_t day = doy - (153 * mp + 2) / 5 + 1;
  uint64_t month = mp < 10 ? mp + 3 : mp - 9;
  uint64_t year = yoe + era * 400 + (month <= 2);
  unsigned sod = (unsigned)(secs % 86400);
  snprintf(buf, cap, "%04llu-%02u-%02uT%02u:%02u:%02u.%03uZ",
           (unsigned long long)year, (unsigned)month % 100u,
           (unsigned)day % 100u, sod / 3600 % 100u, sod / 60 % 60,
           sod % 60, (unsigned)(wall_ms % 1000));
}

int kv_log_line(kvbuf *out, kv_log_format fmt, uint64_t wall_ms,
                const char *level, const char *node, const char *msg) {
  static const char *const keys[] = {"ts", "level", "node", "msg"};
  char ts[64];
  log__time(ts, sizeof(ts), wall_ms);
  const char *vals[] = {ts, level ? level : "", node ? node : "",
                        msg ? msg : ""};
  bool json = fmt == KV_LOG_JSON;
  size_t start = out->len;
  /* Appends after a failed growth do nothing; oom is checked once. */
  if (json)
    kvbuf_append(out, "{", 1);
  for (size_t i = 0; i < 4; i++) {
    if (i)
      kvbuf_append(out, json ? "," : " ", 1);
    log__value(out, fmt, keys[i], strlen(keys[i]), false);
    kvbuf_append(out, json ? ":" : "=", 1);
    bool cut;
    size_t n = log__span(vals[i], &cut);
    log__value(out, fmt, vals[i], n, cut);
  }
  kvbuf_append(out, json ? "}\n" : "\n", json ? 2 : 1);
  if (out->oom) {
    out->len = start;
    return KV_ENOMEM;
  }
  return 0;
}

int kv_log_format_parse(const char *name, kv_log_format *out) {
  if (strcmp(name, "logfmt") == 0)
    *out = KV_LOG_LOGFMT;
  else if (strcmp(name, "json") == 0)
    *out = KV_LOG_JSON;
  else
    return KV_EINVAL;
  return 0;
}
