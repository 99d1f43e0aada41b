/*
 * resp.c: RESP2 encoding and parsing for resp.h.
 *
 * A reply is parsed only once it is complete, so a caller keeps unparsed
 * bytes and calls again when more arrive. Depends on libc and kv_err.h.
 */
#include "resp.h"

#include <string.h>

#include "kv_err.h"

/* Finds the CRLF ending the line that starts at p; returns its offset from
 * p, -1 if not there yet, KV_EPROTO if the line is too long or has a bare
 * CR. */
static long resp__line(const char *p, size_t avail) {
  size_t lim = avail < RESP_LINE_MAX + 2 ? avail : RESP_LINE_MAX + 2;
  for (size_t i = 0; i < lim; i++) {
    if (p[i] == '\r') {
      if (i + 1 >= avail)
        return -1;
      return p[i + 1] == '\n' ? (long)i : KV_EPROTO;
    }
    if (p[i] == '\n')
      return KV_EPROTO;
  }
  return avail < RESP_LINE_MAX + 2 ? -1 : KV_EPROTO;
}

/* Parses a decimal integer filling exactly p[0..n). */
static int resp__int(const char *p, size_t n, int64_t *out) {
  size_t i = 0;
  int neg = 0;
  if (n == 0)
    return KV_EPROTO;
  if (p[0] == '-') {
    neg = 1;
    i = 1;
    if (n == 1)
      return KV_EPROTO;
  }
  if (n - i > 18)
    return KV_EPROTO;
  int64_t v = 0;
  for (; i < n; i++) {
    if (p[i] < '0' || p[i] > '9')
      return KV_EPROTO;
    v = v * 10 + (p[i] - '0');
  }
  *out = neg ? -v : v;
  return 0;
}

static long resp__parse(const char *buf, size_t len, resp_reply *out,
                        int depth) {
  if (len < 1)
    return 0;
  long eol = resp__line(buf + 1, len - 1);
  if (eol == -1)
    return 0;
  if (eol < 0)
    return eol;
  const char *body = buf + 1;
  size_t hdr = 1 + (size_t)eol + 2;
  int64_t n;
  switch (buf[0]) {
  case RESP_STATUS:
  case RESP_ERROR:
    out->type = (resp_type)buf[0];
    out->str = body;
    out->len = (size_t)eol;
    out->num = 0;
    return (long)hdr;
  case RESP_INT:
    if (resp__int(body, (size_t)eol, &n) < 0)
      return KV_EPROTO;
    out->type = RESP_INT;
    out->str = NULL;
    out->len = 0;
    out->num = n;
    return (long)hdr;
  case RESP_BULK:
    if (resp__int(body, (size_t)eol, &n) < 0 || n < -1 ||
        n > (int64_t)RESP_BULK_MAX)
      return KV_EPROTO;
    out->type = RESP_BULK;
    out->num = n;
    if (n == -1) {
      out->str = NULL;
      out->len = 0;
      return (long)hdr;
    }
    if (len - hdr < (size_t)n + 2)
      return 0;
    if (buf[hdr + (size_t)n] != '\r' || buf[hdr + (size_t)n + 1] != '\n')
      return KV_EPROTO;
    out->str = buf + hdr;
    out->len = (size_t)n;
    return (long)(hdr + (size_t)n + 2);
  case RESP_ARRAY: {
    if (resp__int(body, (size_t)eol, &n) < 0 || n < -1 ||
        n > (int64_t)RESP_ARRAY_MAX)
      return KV_EPROTO;
    if (depth >= RESP_DEPTH_MAX)
      return KV_EPROTO;
    size_t off = hdr;
    for (int64_t i = 0; i < n; i++) {
      resp_reply el;
      long r = resp__parse(buf + off, len - off, &el, depth + 1);
      if (r <= 0)
        return r;
      off += (size_t)r;
    }
    out->type = RESP_ARRAY;
    out->str = NULL;
    out->len = 0;
    out->num = n;
    return (long)off;
  }
  default:
    return KV_EPROTO;
  }
}

long resp_parse(const char *buf, size_t len, resp_reply *out) {
  return resp__parse(buf, len, out, 0);
}

/* Decimal digits of n. */
static size_t resp__digits(size_t n) {
  size_t d = 1;
  while (n >= 10) {
    n /= 10;
    d++;
  }
  return d;
}

static size_t resp__put_uint(char *dst, size_t n) {
  size_t d = resp__digits(n);
  for (size_t i = d; i > 0; i--) {
    dst[i - 1] = (char)('0' + n % 10);
    n /= 10;
  }
  return d;
}

/* Appends "$<len>\r\n<bytes>\r\n". */
static size_t resp__bulk(char *dst, const void *p, size_t n) {
  size_t o = 0;
  dst[o++] = '$';
  o += resp__put_uint(dst + o, n);
  dst[o++] = '\r';
  dst[o++] = '\n';
  if (n)
    memcpy(dst + o, p, n);
  o += n;
  dst[o++] = '\r';
  dst[o++] = '\n';
  return o;
}

static size_t resp__bulk_size(size_t n) { return 1 + resp__digits(n) + 4 + n; }

size_t resp_get_size(size_t klen) {
  return 4 + resp__bulk_size(3) + resp__bulk_size(klen);
}

size_t resp_set_size(size_t klen, size_t vlen) {
  return 4 + resp__bulk_size(3) + resp__bulk_size(klen) +
         resp__bulk_size(vlen);
}

size_t resp_encode_get(char *dst, const void *key, size_t klen) {
  memcpy(dst, "*2\r\n", 4);
  size_t o = 4;
  o += resp__bulk(dst + o, "GET", 3);
  o += resp__bulk(dst + o, key, klen);
  return o;
}

size_t resp_encode_set(char *dst, const void *key, size_t klen,
                       const void *val, size_t vlen) {
  memcpy(dst, "*3\r\n", 4);
  size_t o = 4;
  o += resp__bulk(dst + o, "SET", 3);
  o += resp__bulk(dst + o, key, klen);
  o += resp__bulk(dst + o, val, vlen);
  return o;
}

size_t resp_cmd_size(size_t argc, const size_t *lens) {
  size_t n = 1 + resp__digits(argc) + 2;
  for (size_t i = 0; i < argc; i++)
    n += resp__bulk_size(lens[i]);
  return n;
}

size_t resp_encode_cmd(char *dst, size_t argc, const char *const *argv,
                       const size_t *lens) {
  size_t o = 0;
  dst[o++] = '*';
  o += resp__put_uint(dst + o, argc);
  dst[o++] = '\r';
  dst[o++] = '\n';
  for (size_t i = 0; i < argc; i++)
    o += resp__bulk(dst + o, argv[i], lens[i]);
  return o;
}
