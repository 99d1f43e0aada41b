/*
 * resp.c: the Redis protocol request parser and reply writer. See resp.h.
 *
 * The parser reads left to right and decides at the first byte that
 * settles an answer; it returns KV_EAGAIN only when it runs out of bytes
 * before that. So any prefix of the bytes gives KV_EAGAIN or the answer
 * the whole gives, which is what makes the parse independent of how the
 * bytes were split, and lets resp_parse_resume skip what was checked.
 * Depends on: mp.h (kvbuf, kv_slice), kv_err.h, kv_str.h, libc.
 */
#include "resp.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_err.h"
#include "kv_str.h"

const resp_limits resp_limits_default = {RESP_ARGS_MAX_DEFAULT,
                                         RESP_BULK_MAX_DEFAULT,
                                         RESP_INLINE_MAX_DEFAULT};

/* Redis's messages where Redis has one. */
#define RESP__E_MBULK "Protocol error: invalid multibulk length"
#define RESP__E_BULK "Protocol error: invalid bulk length"
#define RESP__E_CRLF "Protocol error: bulk data not followed by CRLF"
#define RESP__E_QUOTES "Protocol error: unbalanced quotes in request"
#define RESP__E_INLINE "Protocol error: too big inline request"
#define RESP__E_INLINE_ARGS                                                    \
  "Protocol error: too many arguments in inline request"

/* resp__multibulk's answer when rs turned out not to match buf. */
#define RESP__RESTART 1

static int resp__fail(resp_cmd *out, int rc, const char *msg) {
  kv_strcopy(out->err, sizeof(out->err), msg);
  return rc;
}

void resp_cmd_init(resp_cmd *cmd, uint8_t *scratch, size_t cap) {
  cmd->argc = 0;
  cmd->is_inline = false;
  cmd->need = 0;
  cmd->err[0] = '\0';
  cmd->resp__rest = NULL;
  cmd->resp__end = NULL;
  cmd->scratch = scratch;
  cmd->scratch_cap = scratch ? cap : 0;
}

/* ---- multibulk ---- */

/*
 * Reads the number after a header's type byte (buf[*pos] is its first
 * byte) and the \r\n after it. Returns 0 (*pos past the \n, *mag and *neg
 * the value), KV_EAGAIN when the bytes end first, KV_ETOOBIG as soon as a
 * non-negative value passes max, KV_EPROTO for anything else (no digits,
 * a leading zero, a '-' when neg_ok is false, "-0", a negative value
 * beyond INT64_MIN, a byte other than a digit or \r\n).
 */
static int resp__number(const uint8_t *buf, size_t len, size_t *pos,
                        uint64_t max, bool neg_ok, uint64_t *mag, bool *neg) {
  size_t p = *pos;
  uint64_t v = 0;
  *neg = false;
  if (p == len)
    return KV_EAGAIN;
  if (buf[p] == '-') {
    if (!neg_ok)
      return KV_EPROTO;
    *neg = true;
    max = INT64_MAX;
    p++;
    if (p == len)
      return KV_EAGAIN;
  }
  if (buf[p] < '0' || buf[p] > '9')
    return KV_EPROTO;
  if (buf[p] == '0') {
    if (*neg)
      return KV_EPROTO;
    p++;
  } else {
    while (p < len && buf[p] >= '0' && buf[p] <= '9') {
      uint64_t d = (uint64_t)(buf[p] - '0');
      if (d > max || v > (max - d) / 10)
        return *neg ? KV_EPROTO : KV_ETOOBIG;
      v = v * 10 + d;
      p++;
    }
  }
  if (p == len)
    return KV_EAGAIN;
  if (buf[p] != '\r')
    return KV_EPROTO;
  if (++p == len)
    return KV_EAGAIN;
  if (buf[p] != '\n')
    return KV_EPROTO;
  *pos = p + 1;
  *mag = v;
  return 0;
}

/* Reads one checked bulk "$<len>\r\n<bytes>\r\n" at p (before end) into
 * *arg. Returns the byte after it, or NULL when the bytes are not one. */
static const uint8_t *resp__walk(const uint8_t *p, const uint8_t *end,
                                 kv_slice *arg) {
  if (!p || p >= end || *p != '$')
    return NULL;
  size_t len = (size_t)(end - p), pos = 1;
  uint64_t n;
  bool neg;
  if (resp__number(p, len, &pos, UINT64_MAX, false, &n, &neg) != 0)
    return NULL;
  if (n > len - pos || len - pos - n < 2)
    return NULL;
  if (p[pos + n] != '\r' || p[pos + n + 1] != '\n')
    return NULL;
  arg->ptr = p + pos;
  arg->len = (size_t)n;
  return p + pos + n + 2;
}

static int resp__fail_dollar(resp_cmd *out, uint8_t got) {
  if (got > ' ' && got < 0x7f)
    snprintf(out->err, sizeof(out->err),
             "Protocol error: expected '$', got '%c'", (char)got);
  else
    snprintf(out->err, sizeof(out->err),
             "Protocol error: expected '$', got '\\x%02x'", (unsigned)got);
  return KV_EPROTO;
}

/* Parses a multibulk command (buf[0] is '*'), going on from rs when rs
 * recorded this command. Returns as resp_parse, or RESP__RESTART when rs
 * does not match buf. */
static int resp__multibulk(resp_resume *rs, const uint8_t *buf, size_t len,
                           const resp_limits *lim, resp_cmd *out,
                           size_t *consumed) {
  size_t pos = 1;
  uint64_t n;
  bool neg;
  int rc = resp__number(buf, len, &pos, lim->args_max, true, &n, &neg);
  if (rc == KV_EAGAIN) {
    out->need = (uint64_t)len + 1;
    return rc;
  }
  if (rc)
    return resp__fail(out, rc, RESP__E_MBULK);
  out->is_inline = false;
  out->resp__rest = NULL;
  if (neg || n == 0) {
    out->argc = 0;
    out->resp__end = buf + pos;
    *consumed = pos;
    return 0;
  }
  out->argc = (uint32_t)n;

  const size_t first = pos; /* header of argument 0 */
  uint32_t argi = 0;
  if (rs->len && rs->argc == n && rs->argi < n && rs->off >= first &&
      rs->off <= len) {
    pos = rs->off;
    argi = rs->argi;
  }
  const uint32_t resumed = argi; /* argv below it is filled at the end */

  for (; argi < n; argi++) {
    size_t hdr = pos;
    uint64_t blen;
    bool bneg;
    if (pos == len) {
      out->need = (uint64_t)len + 1;
      goto again;
    }
    if (buf[pos] != '$')
      return resp__fail_dollar(out, buf[pos]);
    pos++;
    rc = resp__number(buf, len, &pos, lim->bulk_max, false, &blen, &bneg);
    if (rc == KV_EAGAIN) {
      pos = hdr;
      out->need = (uint64_t)len + 1;
      goto again;
    }
    if (rc)
      return resp__fail(out, rc, RESP__E_BULK);
    size_t avail = len - pos;
    if (blen >= avail || avail - blen < 2) {
      if (blen < avail && buf[pos + blen] != '\r')
        return resp__fail(out, KV_EPROTO, RESP__E_CRLF);
      out->need = blen > UINT64_MAX - 2 - pos ? UINT64_MAX : pos + blen + 2;
      pos = hdr;
      goto again;
    }
    if (buf[pos + blen] != '\r' || buf[pos + blen + 1] != '\n')
      return resp__fail(out, KV_EPROTO, RESP__E_CRLF);
    if (argi < RESP_ARGV_MAX) {
      out->argv[argi].ptr = buf + pos;
      out->argv[argi].len = (size_t)blen;
    } else if (argi == RESP_ARGV_MAX) {
      out->resp__rest = buf + hdr;
    }
    pos += (size_t)blen + 2;
  }
  out->resp__end = buf + pos;

  /* Arguments checked by earlier calls: fill argv from buf again (at most
   * RESP_ARGV_MAX of them, once per command). */
  if (resumed > 0) {
    uint32_t fill = resumed < RESP_ARGV_MAX ? resumed : RESP_ARGV_MAX;
    const uint8_t *p = buf + first;
    for (uint32_t i = 0; i < fill; i++) {
      p = resp__walk(p, out->resp__end, &out->argv[i]);
      if (!p)
        return RESP__RESTART;
    }
    if (fill == RESP_ARGV_MAX && n > RESP_ARGV_MAX)
      out->resp__rest = p;
  }
  *consumed = pos;
  return 0;

again:
  rs->len = len;
  rs->off = pos;
  rs->argc = (uint32_t)n;
  rs->argi = argi;
  return KV_EAGAIN;
}

/* ---- inline ---- */

/* Blanks between inline arguments (C's isspace). */
static bool resp__blank(uint8_t c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
         c == '\f';
}

/* Bytes that end an unquoted inline argument (not \v, \f: as Redis). */
static bool resp__ends(uint8_t c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* An inline argument being decoded: a run of buf while its bytes are buf's
 * own, moved to the scratch buffer at the first byte that is not. */
typedef struct resp__tok {
  const uint8_t *run; /* start of the run in buf; NULL while empty */
  uint8_t *copy;      /* in scratch, once moved; NULL before */
  size_t len;
} resp__tok;

/* Adds byte c to t; src is where c is in buf when it stands for itself,
 * else NULL. *used counts the scratch bytes taken. Returns 0 or
 * KV_ETOOBIG when scratch is full. */
static int resp__put(resp__tok *t, resp_cmd *cmd, size_t *used, uint8_t c,
                     const uint8_t *src) {
  if (!t->copy) {
    if (src && t->len == 0) {
      t->run = src;
      t->len = 1;
      return 0;
    }
    if (src && src == t->run + t->len) {
      t->len++;
      return 0;
    }
    if (cmd->scratch_cap - *used < t->len + 1)
      return KV_ETOOBIG;
    t->copy = cmd->scratch + *used;
    if (t->len)
      memcpy(t->copy, t->run, t->len);
    *used += t->len;
  }
  if (*used == cmd->scratch_cap)
    return KV_ETOOBIG;
  cmd->scratch[(*used)++] = c;
  t->len++;
  return 0;
}

/* What a backslash and c stand for inside double quotes. */
static uint8_t resp__unescape(uint8_t c) {
  switch (c) {
  case 'n':
    return '\n';
  case 'r':
    return '\r';
  case 't':
    return '\t';
  case 'b':
    return '\b';
  case 'a':
    return '\a';
  default:
    return c;
  }
}

/* Splits the line buf[0, end) into out->argv. Returns 0, KV_EPROTO
 * (quotes) or KV_ETOOBIG (arguments or scratch). */
static int resp__split(const uint8_t *buf, size_t end, const resp_limits *lim,
                       resp_cmd *out) {
  uint32_t cap = lim->args_max < RESP_ARGV_MAX ? lim->args_max : RESP_ARGV_MAX;
  size_t p = 0, used = 0;
  uint32_t argc = 0;
  for (;;) {
    while (p < end && resp__blank(buf[p]))
      p++;
    if (p == end)
      break;
    if (argc == cap)
      return resp__fail(out, KV_ETOOBIG, RESP__E_INLINE_ARGS);
    resp__tok t = {NULL, NULL, 0};
    const uint8_t *start = buf + p;
    uint8_t quote = 0; /* '"' or '\'' inside quotes */
    int rc = 0;
    for (;;) {
      if (quote && p == end)
        return resp__fail(out, KV_EPROTO, RESP__E_QUOTES);
      if (!quote && (p == end || resp__ends(buf[p])))
        break;
      uint8_t c = buf[p];
      if (quote == '"' && c == '\\' && end - p >= 4 && buf[p + 1] == 'x' &&
          kv_hexval(buf[p + 2]) >= 0 && kv_hexval(buf[p + 3]) >= 0) {
        uint8_t v =
            (uint8_t)(kv_hexval(buf[p + 2]) * 16 + kv_hexval(buf[p + 3]));
        rc = resp__put(&t, out, &used, v, NULL);
        p += 4;
      } else if (quote == '"' && c == '\\' && end - p >= 2) {
        rc = resp__put(&t, out, &used, resp__unescape(buf[p + 1]), NULL);
        p += 2;
      } else if (quote == '\'' && c == '\\' && end - p >= 2 &&
                 buf[p + 1] == '\'') {
        rc = resp__put(&t, out, &used, '\'', NULL);
        p += 2;
      } else if (quote && c == quote) {
        p++;
        if (p < end && !resp__blank(buf[p]))
          return resp__fail(out, KV_EPROTO, RESP__E_QUOTES);
        break;
      } else if (!quote && (c == '"' || c == '\'')) {
        quote = c;
        p++;
      } else {
        rc = resp__put(&t, out, &used, c, buf + p);
        p++;
      }
      if (rc)
        return resp__fail(out, rc, RESP__E_INLINE);
    }
    out->argv[argc].ptr = t.copy ? t.copy : t.run ? t.run : start;
    out->argv[argc].len = t.len;
    argc++;
  }
  out->argc = argc;
  return 0;
}

/* Parses an inline command (buf[0] is not '*'), going on from rs. */
static int resp__inline(resp_resume *rs, const uint8_t *buf, size_t len,
                        const resp_limits *lim, resp_cmd *out,
                        size_t *consumed) {
  /* The line may have inline_max bytes before its \n. */
  size_t scan = (uint64_t)len > (uint64_t)lim->inline_max + 1
                    ? (size_t)lim->inline_max + 1
                    : len;
  size_t from = rs->len && rs->argc == 0 && rs->off < scan ? rs->off : 0;
  const uint8_t *nl = memchr(buf + from, '\n', scan - from);
  if (!nl) {
    if ((uint64_t)len > lim->inline_max)
      return resp__fail(out, KV_ETOOBIG, RESP__E_INLINE);
    rs->len = len;
    rs->off = len;
    rs->argc = 0;
    rs->argi = 0;
    out->need = (uint64_t)len + 1;
    return KV_EAGAIN;
  }
  size_t eol = (size_t)(nl - buf);
  size_t end = eol > 0 && buf[eol - 1] == '\r' ? eol - 1 : eol;
  out->is_inline = true;
  out->resp__rest = NULL;
  int rc = resp__split(buf, end, lim, out);
  if (rc)
    return rc;
  out->resp__end = buf + eol + 1;
  *consumed = eol + 1;
  return 0;
}

/* ---- parse ---- */

int resp_parse_resume(resp_resume *rs, const uint8_t *buf, size_t len,
                      const resp_limits *lim, resp_cmd *out, size_t *consumed) {
  static const resp_resume none = RESP_RESUME_INIT;
  if (!lim)
    lim = &resp_limits_default;
  if (rs->len > len)
    *rs = none; /* the caller's promise is broken: start afresh */
  out->err[0] = '\0';
  if (len == 0) {
    out->need = 1;
    return KV_EAGAIN;
  }
  int rc;
  if (buf[0] == '*') {
    rc = resp__multibulk(rs, buf, len, lim, out, consumed);
    if (rc == RESP__RESTART) {
      *rs = none;
      rc = resp__multibulk(rs, buf, len, lim, out, consumed);
      assert(rc != RESP__RESTART);
    }
  } else {
    rc = resp__inline(rs, buf, len, lim, out, consumed);
  }
  if (rc != KV_EAGAIN)
    *rs = none;
  return rc;
}

int resp_parse(const uint8_t *buf, size_t len, const resp_limits *lim,
               resp_cmd *out, size_t *consumed) {
  resp_resume rs = RESP_RESUME_INIT;
  return resp_parse_resume(&rs, buf, len, lim, out, consumed);
}

/* ---- arguments ---- */

void resp_iter_init(resp_iter *it, const resp_cmd *cmd) {
  it->cmd = cmd;
  it->i = 0;
  it->at = cmd->resp__rest;
}

int resp_iter_next(resp_iter *it, kv_slice *arg) {
  const resp_cmd *cmd = it->cmd;
  if (it->i >= cmd->argc)
    return KV_ENOTFOUND;
  if (it->i < RESP_ARGV_MAX) {
    *arg = cmd->argv[it->i++];
    return 0;
  }
  const uint8_t *next = resp__walk(it->at, cmd->resp__end, arg);
  if (!next)
    return KV_EPROTO;
  it->at = next;
  it->i++;
  return 0;
}

kv_slice resp_cmd_arg(const resp_cmd *cmd, uint32_t i) {
  kv_slice arg = {NULL, 0};
  if (i >= cmd->argc)
    return arg;
  if (i < RESP_ARGV_MAX)
    return cmd->argv[i];
  const uint8_t *p = cmd->resp__rest;
  for (uint32_t k = RESP_ARGV_MAX; k <= i && p; k++)
    p = resp__walk(p, cmd->resp__end, &arg);
  if (!p)
    arg = (kv_slice){NULL, 0};
  return arg;
}

static uint8_t resp__lower(uint8_t c) {
  return c >= 'A' && c <= 'Z' ? (uint8_t)(c + ('a' - 'A')) : c;
}

bool resp_arg_is(kv_slice arg, const char *name) {
  size_t n = strlen(name);
  if (arg.len != n)
    return false;
  for (size_t i = 0; i < n; i++)
    if (resp__lower(arg.ptr[i]) != resp__lower((uint8_t)name[i]))
      return false;
  return true;
}

bool resp_cmd_is(const resp_cmd *cmd, const char *name) {
  return cmd->argc > 0 && resp_arg_is(cmd->argv[0], name);
}

/* ---- replies ---- */

/* Writes v in decimal at out (room for 20 bytes); returns the digits. */
static size_t resp__u64(char *out, uint64_t v) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++)
    out[i] = tmp[n - 1 - i];
  return n;
}

/* Appends <type>[-]<mag>\r\n. */
static int resp__head(kvbuf *b, char type, bool neg, uint64_t mag) {
  char h[24];
  size_t n = 0;
  h[n++] = type;
  if (neg)
    h[n++] = '-';
  n += resp__u64(h + n, mag);
  h[n++] = '\r';
  h[n++] = '\n';
  return kvbuf_append(b, h, n);
}

/* Appends <type><s>\r\n with \r and \n in s made spaces. */
static int resp__line(kvbuf *b, char type, const char *s) {
  size_t n = strlen(s);
  if (kvbuf_reserve(b, n + 3))
    return KV_ENOMEM;
  uint8_t *d = b->data + b->len;
  d[0] = (uint8_t)type;
  for (size_t i = 0; i < n; i++)
    d[1 + i] = s[i] == '\r' || s[i] == '\n' ? ' ' : (uint8_t)s[i];
  d[n + 1] = '\r';
  d[n + 2] = '\n';
  b->len += n + 3;
  return 0;
}

int resp_add_simple(kvbuf *b, const char *s) { return resp__line(b, '+', s); }

int resp_add_error(kvbuf *b, const char *msg) {
  return resp__line(b, '-', msg);
}

int resp_add_errorf(kvbuf *b, const char *fmt, ...) {
  char line[RESP_ERRLINE_MAX];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  if (n < 0)
    line[0] = '\0';
  return resp__line(b, '-', line);
}

int resp_add_int(kvbuf *b, int64_t v) {
  uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  return resp__head(b, ':', v < 0, mag);
}

int resp_add_bulk(kvbuf *b, const void *p, size_t len) {
  if (kvbuf_reserve(b, len + 24)) /* the header has at most 23 bytes */
    return KV_ENOMEM;
  resp__head(b, '$', false, len);
  kvbuf_append(b, p, len);
  return kvbuf_append(b, "\r\n", 2);
}

int resp_add_null(kvbuf *b, int proto) {
  return proto == RESP_PROTO3 ? kvbuf_append(b, "_\r\n", 3)
                              : kvbuf_append(b, "$-1\r\n", 5);
}

int resp_add_null_array(kvbuf *b, int proto) {
  return proto == RESP_PROTO3 ? kvbuf_append(b, "_\r\n", 3)
                              : kvbuf_append(b, "*-1\r\n", 5);
}

int resp_add_array(kvbuf *b, size_t n) { return resp__head(b, '*', false, n); }

int resp_add_map(kvbuf *b, int proto, size_t npairs) {
  if (proto == RESP_PROTO3)
    return resp__head(b, '%', false, npairs);
  return resp__head(b, '*', false, (uint64_t)npairs * 2);
}

int resp_add_double(kvbuf *b, int proto, double v) {
  char num[32];
  if (isnan(v)) {
    kv_strcopy(num, sizeof(num), "nan");
  } else if (isinf(v)) {
    kv_strcopy(num, sizeof(num), v > 0 ? "inf" : "-inf");
  } else {
    for (int prec = 15; prec <= 17; prec++) {
      snprintf(num, sizeof(num), "%.*g", prec, v);
      if (strtod(num, NULL) == v)
        break;
    }
  }
  if (proto != RESP_PROTO3)
    return resp_add_bulk(b, num, strlen(num));
  return resp__line(b, ',', num);
}

int resp_add_bool(kvbuf *b, int proto, bool v) {
  if (proto == RESP_PROTO3)
    return kvbuf_append(b, v ? "#t\r\n" : "#f\r\n", 4);
  return kvbuf_append(b, v ? ":1\r\n" : ":0\r\n", 4);
}

int resp_add_verbatim(kvbuf *b, int proto, const char *fmt, const void *p,
                      size_t len) {
  if (proto != RESP_PROTO3)
    return resp_add_bulk(b, p, len);
  assert(fmt && strlen(fmt) == 3);
  if (!fmt || strlen(fmt) != 3)
    fmt = "txt";
  if (kvbuf_reserve(b, len + 28))
    return KV_ENOMEM;
  resp__head(b, '=', false, (uint64_t)len + 4);
  kvbuf_append(b, fmt, 3);
  kvbuf_append(b, ":", 1);
  kvbuf_append(b, p, len);
  return kvbuf_append(b, "\r\n", 2);
}
