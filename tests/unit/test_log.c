/*
 * test_log.c: kvorumd's log lines (node/uv_log.h). Every line is read
 * back by a small reader written here, independent of the formatter: a
 * logfmt reader and a JSON reader that rejects what JSON forbids (raw
 * control bytes, bad escapes, invalid UTF-8), so "the line is valid" and
 * "it reads back as the message" are both checked, for quotes,
 * backslashes, newlines, control bytes, invalid UTF-8, empty values and
 * values cut at KV_LOG_VALUE_MAX.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "kv_err.h"
#include "unit/check.h"
#include "uv_log.h"

#define FIELD_MAX (6 * KV_LOG_VALUE_MAX + 64)

/* The four values of a line, as read back. */
typedef struct fields {
  char v[4][FIELD_MAX];
  size_t len[4];
} fields;

static const char *const keys[] = {"ts", "level", "node", "msg"};

/* Appends code point cp to out as UTF-8. */
static size_t put_utf8(char *out, uint32_t cp) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | cp >> 6);
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  out[0] = (char)(0xE0 | cp >> 12);
  out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[2] = (char)(0x80 | (cp & 0x3F));
  return 3;
}

/* The length of the UTF-8 sequence at s if it decodes to a code point
 * that its length may carry (no overlong form, no surrogate, at most
 * U+10FFFF); else 0. */
static size_t utf8_ok(const uint8_t *s) {
  static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
  size_t len = s[0] < 0x80 ? 1 : s[0] >> 5 == 6 ? 2 : s[0] >> 4 == 14 ? 3
             : s[0] >> 3 == 30 ? 4 : 0;
  if (len <= 1)
    return len;
  uint32_t cp = s[0] & (0x7F >> len);
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    cp = cp << 6 | (s[i] & 0x3F);
  }
  if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

/* Reads the JSON string body at *p (after the opening quote) up to and
 * past its closing quote, decoded into f's value i. Returns false on
 * anything JSON forbids in a string. */
static bool read_quoted(const char **p, fields *f, int i) {
  const uint8_t *s = (const uint8_t *)*p;
  size_t n = 0;
  while (*s != '"') {
    if (*s < 0x20 || n + 8 > FIELD_MAX)
      return false;
    if (*s != '\\') {
      size_t len = utf8_ok(s);
      if (len == 0)
        return false;
      memcpy(f->v[i] + n, s, len);
      n += len;
      s += len;
      continue;
    }
    s++;
    const char *plain = strchr("\"\\/bfnrt", *s);
    if (*s && plain) {
      static const char dec[] = "\"\\/\b\f\n\r\t";
      f->v[i][n++] = dec[plain - "\"\\/bfnrt"];
      s++;
      continue;
    }
    if (*s != 'u')
      return false;
    uint32_t cp = 0;
    for (int k = 1; k <= 4; k++) {
      char c = (char)s[k];
      int d = c >= '0' && c <= '9'   ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                     : -1;
      if (d < 0)
        return false;
      cp = cp << 4 | (uint32_t)d;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) /* the formatter writes no pairs */
      return false;
    n += put_utf8(f->v[i] + n, cp);
    s += 5;
  }
  f->v[i][n] = '\0';
  f->len[i] = n;
  *p = (const char *)s + 1;
  return true;
}

/* Reads a JSON line {"ts":..,"level":..,"node":..,"msg":..}\n. */
static bool read_json(const char *line, fields *f) {
  const char *p = line;
  if (*p++ != '{')
    return false;
  for (int i = 0; i < 4; i++) {
    size_t kl = strlen(keys[i]);
    if (i && *p++ != ',')
      return false;
    if (*p != '"' || strncmp(p + 1, keys[i], kl) != 0 || p[kl + 1] != '"' ||
        p[kl + 2] != ':' || p[kl + 3] != '"')
      return false;
    p += kl + 4;
    if (!read_quoted(&p, f, i))
      return false;
  }
  return strcmp(p, "}\n") == 0;
}

/* Reads a logfmt line ts=.. level=.. node=.. msg=..\n (values bare or
 * quoted with JSON's escapes). */
static bool read_logfmt(const char *line, fields *f) {
  const char *p = line;
  for (int i = 0; i < 4; i++) {
    size_t kl = strlen(keys[i]);
    if (i && *p++ != ' ')
      return false;
    if (strncmp(p, keys[i], kl) != 0 || p[kl] != '=')
      return false;
    p += kl + 1;
    if (*p == '"') {
      p++;
      if (!read_quoted(&p, f, i))
        return false;
      continue;
    }
    size_t n = strcspn(p, " \n");
    if (n == 0 || n >= FIELD_MAX || memchr(p, '"', n) || memchr(p, '=', n))
      return false;
    memcpy(f->v[i], p, n);
    f->v[i][n] = '\0';
    f->len[i] = n;
    p += n;
  }
  return strcmp(p, "\n") == 0;
}

/* One line as a C string (malloc'd; the caller frees it). */
static char *line_of(kv_log_format fmt, uint64_t ms, const char *level,
                     const char *id, const char *msg) {
  kvbuf b;
  kvbuf_init(&b);
  CHECK(kv_log_line(&b, fmt, ms, level, id, msg) == 0);
  CHECK(kvbuf_append(&b, "", 1) == 0);
  size_t len;
  return (char *)kvbuf_steal(&b, &len);
}

/* Whether line holds exactly one newline, at its end, and no other
 * control byte. */
static bool one_line(const char *line) {
  size_t n = strlen(line);
  if (n == 0 || line[n - 1] != '\n')
    return false;
  for (size_t i = 0; i + 1 < n; i++)
    if ((uint8_t)line[i] < 0x20 || line[i] == 0x7F)
      return false;
  return true;
}

/* Formats msg (and node id) both ways; checks that each line is one valid
 * line and reads back as want (NULL: as msg). */
static void round_trip(const char *id, const char *msg, const char *want) {
  static fields f;
  want = want ? want : msg;
  for (int fmt = KV_LOG_LOGFMT; fmt <= KV_LOG_JSON; fmt++) {
    char *line = line_of((kv_log_format)fmt, 1796537666123ull, "info", id,
                         msg);
    bool ok = fmt == KV_LOG_JSON ? read_json(line, &f) : read_logfmt(line, &f);
    CHECK(one_line(line));
    CHECK(ok);
    if (!ok)
      fprintf(stderr, "  unreadable line: %s", line);
    if (ok) {
      CHECK(strcmp(f.v[0], "2026-12-06T06:14:26.123Z") == 0);
      CHECK(strcmp(f.v[1], "info") == 0);
      CHECK(strcmp(f.v[2], id) == 0);
      CHECK(f.len[3] == strlen(want) && memcmp(f.v[3], want, f.len[3]) == 0);
    }
    free(line);
  }
}

/* Whole lines, byte for byte (level "warn"). */
static void test_exact(void) {
#define T0 "ts=1970-01-01T00:00:00.000Z level=warn "
#define J0 "{\"ts\":\"1970-01-01T00:00:00.000Z\",\"level\":\"warn\","
  static const struct {
    kv_log_format fmt;
    uint64_t ms;
    const char *id, *msg, *want;
  } cases[] = {
      {KV_LOG_LOGFMT, 0, "n1", "hello", T0 "node=n1 msg=hello\n"},
      {KV_LOG_LOGFMT, 1796537666123ull, "n1", "ring version 3",
       "ts=2026-12-06T06:14:26.123Z level=warn node=n1 "
       "msg=\"ring version 3\"\n"},
      {KV_LOG_JSON, 1796537666123ull, "n1", "ring version 3",
       "{\"ts\":\"2026-12-06T06:14:26.123Z\",\"level\":\"warn\","
       "\"node\":\"n1\",\"msg\":\"ring version 3\"}\n"},
      /* Empty values are quoted; =, ", \ and control bytes force quotes. */
      {KV_LOG_LOGFMT, 0, "", "", T0 "node=\"\" msg=\"\"\n"},
      {KV_LOG_LOGFMT, 0, "n1", "a=b", T0 "node=n1 msg=\"a=b\"\n"},
      {KV_LOG_LOGFMT, 0, "n1", "say \"hi\"\\",
       T0 "node=n1 msg=\"say \\\"hi\\\"\\\\\"\n"},
      {KV_LOG_LOGFMT, 0, "n1", "a\nb\tc\rd\x01\x1f\x7f",
       T0 "node=n1 msg=\"a\\nb\\tc\\rd\\u0001\\u001f\\u007f\"\n"},
      /* Valid UTF-8 is copied and needs no quotes; invalid bytes become
       * U+FFFD, in node ids too. */
      {KV_LOG_LOGFMT, 0, "n1", "h\xc3\xa9llo", T0 "node=n1 msg=h\xc3\xa9llo\n"},
      {KV_LOG_LOGFMT, 0, "bad\xfe", "x",
       T0 "node=\"bad\xef\xbf\xbd\" msg=x\n"},
      {KV_LOG_JSON, 0, "n1", "a\xff" "b\xc3",
       J0 "\"node\":\"n1\",\"msg\":\"a\xef\xbf\xbd" "b\xef\xbf\xbd\"}\n"},
  };
#undef T0
#undef J0
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *line = line_of(cases[i].fmt, cases[i].ms, "warn", cases[i].id,
                         cases[i].msg);
    CHECK(strcmp(line, cases[i].want) == 0);
    if (strcmp(line, cases[i].want) != 0)
      fprintf(stderr, "  got:  %s  want: %s", line, cases[i].want);
    free(line);
  }
}

static void test_time(void) {
  static const struct {
    uint64_t ms;
    const char *ts;
  } cases[] = {
      {951868800000ull, "2000-03-01T00:00:00.000Z"},
      {1709251199999ull, "2024-02-29T23:59:59.999Z"},
      {4107499200000ull, "2100-02-28T12:00:00.000Z"},
      {253402300799999ull, "9999-12-31T23:59:59.999Z"},
  };
  static fields f;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *line = line_of(KV_LOG_JSON, cases[i].ms, "info", "n1", "x");
    CHECK(read_json(line, &f) && strcmp(f.v[0], cases[i].ts) == 0);
    free(line);
  }
}

static void test_round_trips(void) {
#define FFFD "\xef\xbf\xbd"
  static const struct {
    const char *id, *msg, *want; /* want NULL: msg itself */
  } cases[] = {
      {"n1", "plain", NULL},
      {"n1", "", NULL},
      {"", "empty node", NULL},
      {"node one", "a node id with a space", NULL},
      {"n1", "quotes \"inside\" and 'single'", NULL},
      {"n1", "back\\slash\\", NULL},
      {"n1", "\\", NULL},
      {"n1", "\"", NULL},
      {"n1", "line one\nline two\n", NULL},
      {"n1", "\r\n\t\b\f\x01\x02\x1b[31mred\x1b[0m\x7f", NULL},
      {"n1", "key=value k2=v2", NULL},
      {"n1", "\xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf", NULL},
      /* Invalid UTF-8: a lone continuation byte, a cut sequence, overlong
       * forms, a surrogate, past U+10FFFF, 0xFF: U+FFFD for each byte. */
      {"n1", "\x80", FFFD},
      {"n1", "x\xe2\x82", "x" FFFD FFFD},
      {"n1", "\xc0\xaf", FFFD FFFD},
      {"n1", "\xe0\x80\xaf", FFFD FFFD FFFD},
      {"n1", "\xed\xa0\x80", FFFD FFFD FFFD},
      {"n1", "\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD},
      {"n1", "ok\xffok", "ok" FFFD "ok"},
  };
#undef FFFD
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    round_trip(cases[i].id, cases[i].msg, cases[i].want);
}

/* Every byte value alone, and every pair with a lead byte: each line is
 * one valid line in both formats. */
static void test_all_bytes(void) {
  static fields f;
  char msg[4] = {0};
  for (int a = 1; a < 256; a++) {
    for (int b = 0; b < 256; b += (a >= 0xC0 ? 1 : 255)) {
      msg[0] = (char)a;
      msg[1] = (char)b;
      char *j = line_of(KV_LOG_JSON, 0, "debug", "n1", msg);
      char *l = line_of(KV_LOG_LOGFMT, 0, "debug", "n1", msg);
      CHECK(one_line(j) && read_json(j, &f));
      CHECK(one_line(l) && read_logfmt(l, &f));
      free(j);
      free(l);
    }
  }
}

/* A long value is cut at KV_LOG_VALUE_MAX, before a whole UTF-8
 * sequence, and ends in "...". */
static void test_cut(void) {
  static fields f;
  size_t n = KV_LOG_VALUE_MAX + 100;
  char *msg = malloc(n + 1);
  msg[0] = 'x'; /* so every two-byte sequence straddles an odd offset */
  for (size_t i = 1; i + 1 < n; i += 2)
    memcpy(msg + i, "\xc3\xa9", 2);
  msg[n - 1] = 'y';
  msg[n] = '\0';
  for (int fmt = KV_LOG_LOGFMT; fmt <= KV_LOG_JSON; fmt++) {
    char *line = line_of((kv_log_format)fmt, 0, "info", "n1", msg);
    bool ok = fmt == KV_LOG_JSON ? read_json(line, &f) : read_logfmt(line, &f);
    CHECK(ok);
    CHECK(f.len[3] <= KV_LOG_VALUE_MAX + 3 && f.len[3] >= KV_LOG_VALUE_MAX);
    CHECK(memcmp(f.v[3] + f.len[3] - 3, "...", 3) == 0);
    CHECK(memcmp(f.v[3], msg, f.len[3] - 3) == 0);
    CHECK(strstr(line, "\xef\xbf\xbd") == NULL);
    free(line);
  }
  free(msg);
}

/* Lines append to what the buffer holds. */
static void test_append(void) {
  kvbuf b;
  kvbuf_init(&b);
  CHECK(kv_log_line(&b, KV_LOG_LOGFMT, 0, "info", "n1", "one") == 0);
  size_t first = b.len;
  CHECK(kv_log_line(&b, KV_LOG_LOGFMT, 0, "info", "n1", "two") == 0);
  CHECK(b.len == 2 * first);
  CHECK(memcmp(b.data, "ts=", 3) == 0 && memcmp(b.data + first, "ts=", 3) == 0);
  kvbuf_free(&b);
}

static void test_names(void) {
  kv_log_format fmt = KV_LOG_LOGFMT;
  CHECK(kv_log_format_parse("json", &fmt) == 0 && fmt == KV_LOG_JSON);
  CHECK(kv_log_format_parse("logfmt", &fmt) == 0 && fmt == KV_LOG_LOGFMT);
  CHECK(kv_log_format_parse("JSON", &fmt) == KV_EINVAL && fmt == KV_LOG_LOGFMT);
  CHECK(kv_log_format_parse("", &fmt) == KV_EINVAL);
  static const char *const names[] = {"error", "warn", "info", "debug"};
  for (int i = 0; i < 4; i++) {
    node_log_level lvl = NODE_LOG_ERROR;
    CHECK(node_log_level_parse(names[i], &lvl) == 0 && (int)lvl == i);
    CHECK(strcmp(node_log_level_name(lvl), names[i]) == 0);
  }
  node_log_level lvl = NODE_LOG_INFO;
  CHECK(node_log_level_parse("verbose", &lvl) == KV_EINVAL &&
        lvl == NODE_LOG_INFO);
}

int main(void) {
  test_exact();
  test_time();
  test_round_trips();
  test_all_bytes();
  test_cut();
  test_append();
  test_names();
  return check_summary("test_log");
}
