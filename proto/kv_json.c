/*
 * kv_json.c: UTF-8 validation, JSON strings and the msgpack -> JSON
 * renderer (kv_json.h), shared by the CLI (admin replies) and the node's
 * HTTP front end. The renderer reads with the bounded reader of mp.h, so a
 * hostile ADMIN_OK cannot make it read out of bounds or recurse without
 * limit. Depends on: mp.h, kv_base64.h, kv_err.h.
 */
#include "kv_json.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_base64.h"
#include "kv_err.h"

/* Returns the length of the well-formed UTF-8 sequence at p (1..4), or 0
 * when the bytes there are not one. */
static size_t kv__utf8_seq(const uint8_t *p, size_t len) {
  uint8_t c = p[0];
  if (c < 0x80)
    return 1;
  size_t n;
  uint32_t cp;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (len < n)
    return 0;
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xc0) != 0x80)
      return 0;
    cp = cp << 6 | (p[i] & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

bool kv_utf8_valid(const void *p, size_t len) {
  const uint8_t *s = p;
  size_t i = 0;
  while (i < len) {
    size_t n = kv__utf8_seq(s + i, len - i);
    if (n == 0)
      return false;
    i += n;
  }
  return true;
}

int kv_json_str(kvbuf *out, const void *p, size_t len) {
  const uint8_t *s = p;
  static const char hex[] = "0123456789abcdef";
  kvbuf_append(out, "\"", 1);
  size_t i = 0;
  while (i < len) {
    uint8_t c = s[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      kvbuf_append(out, e, 2);
      i++;
    } else if (c < 0x20 || c == 0x7f) {
      char e[6];
      size_t el = 2;
      e[0] = '\\';
      switch (c) {
      case '\n': e[1] = 'n'; break;
      case '\r': e[1] = 'r'; break;
      case '\t': e[1] = 't'; break;
      case '\b': e[1] = 'b'; break;
      case '\f': e[1] = 'f'; break;
      default:
        e[1] = 'u';
        e[2] = '0';
        e[3] = '0';
        e[4] = hex[c >> 4];
        e[5] = hex[c & 15];
        el = 6;
      }
      kvbuf_append(out, e, el);
      i++;
    } else {
      size_t n = kv__utf8_seq(s + i, len - i);
      if (n == 0) {
        kvbuf_append(out, "\xef\xbf\xbd", 3); /* U+FFFD */
        i++;
      } else {
        kvbuf_append(out, s + i, n);
        i += n;
      }
    }
  }
  kvbuf_append(out, "\"", 1);
  return out->oom ? KV_ENOMEM : 0;
}

static int kv__json_value(kvbuf *out, mp_reader *r, int depth);

static int kv__json_b64_str(kvbuf *out, kv_slice s) {
  kvbuf_append(out, "\"", 1);
  if (kv_b64_encode(out, s.ptr, s.len))
    return KV_ENOMEM;
  kvbuf_append(out, "\"", 1);
  return 0;
}

static int kv__json_scalar_fmt(kvbuf *out, const char *txt) {
  return kvbuf_append(out, txt, strlen(txt));
}

static int kv__json_value(kvbuf *out, mp_reader *r, int depth) {
  char num[64];
  if (depth > MP_DEPTH_MAX)
    return KV_EPROTO;
  switch (mp_peek(r)) {
  case MP_NIL:
    if (mp_read_nil(r))
      return KV_EPROTO;
    return kv__json_scalar_fmt(out, "null");
  case MP_BOOL: {
    bool b;
    if (mp_read_bool(r, &b))
      return KV_EPROTO;
    return kv__json_scalar_fmt(out, b ? "true" : "false");
  }
  case MP_UINT: {
    uint64_t u;
    if (mp_read_uint(r, &u))
      return KV_EPROTO;
    snprintf(num, sizeof(num), "%" PRIu64, u);
    return kv__json_scalar_fmt(out, num);
  }
  case MP_INT: {
    int64_t v;
    if (mp_read_int(r, &v))
      return KV_EPROTO;
    snprintf(num, sizeof(num), "%" PRId64, v);
    return kv__json_scalar_fmt(out, num);
  }
  case MP_FLOAT: {
    double d;
    if (mp_read_double(r, &d))
      return KV_EPROTO;
    if (!isfinite(d))
      return kv__json_scalar_fmt(out, "null");
    snprintf(num, sizeof(num), "%.17g", d);
    return kv__json_scalar_fmt(out, num);
  }
  case MP_STR: {
    kv_slice s;
    if (mp_read_str(r, &s))
      return KV_EPROTO;
    return kv_json_str(out, s.ptr, s.len);
  }
  case MP_BIN: {
    kv_slice s;
    if (mp_read_bytes(r, &s))
      return KV_EPROTO;
    return kv__json_b64_str(out, s);
  }
  case MP_EXT: {
    kv_slice s;
    if (mp_read_raw(r, &s))
      return KV_EPROTO;
    return kv__json_b64_str(out, s);
  }
  case MP_ARRAY: {
    uint32_t n;
    if (mp_read_array(r, &n))
      return KV_EPROTO;
    kvbuf_append(out, "[", 1);
    for (uint32_t i = 0; i < n; i++) {
      if (i)
        kvbuf_append(out, ", ", 2);
      int rc = kv__json_value(out, r, depth + 1);
      if (rc)
        return rc;
    }
    return kvbuf_append(out, "]", 1);
  }
  case MP_MAP: {
    uint32_t n;
    if (mp_read_map(r, &n))
      return KV_EPROTO;
    kvbuf_append(out, "{", 1);
    for (uint32_t i = 0; i < n; i++) {
      if (i)
        kvbuf_append(out, ", ", 2);
      int rc;
      if (mp_peek(r) == MP_STR) {
        rc = kv__json_value(out, r, depth + 1);
      } else {
        /* JSON keys are strings: render the key, then quote the text. */
        kvbuf key;
        kvbuf_init(&key);
        rc = kv__json_value(&key, r, depth + 1);
        if (rc == 0)
          rc = kv_json_str(out, key.data, key.len);
        kvbuf_free(&key);
      }
      if (rc)
        return rc;
      kvbuf_append(out, ": ", 2);
      rc = kv__json_value(out, r, depth + 1);
      if (rc)
        return rc;
    }
    return kvbuf_append(out, "}", 1);
  }
  default:
    return KV_EPROTO;
  }
}

int kv_json_from_msgpack(kvbuf *out, const void *buf, size_t len) {
  mp_reader r;
  mp_reader_init(&r, buf, len);
  int rc = kv__json_value(out, &r, 0);
  if (rc == 0 && (r.err || mp_remaining(&r) != 0))
    rc = KV_EPROTO;
  if (rc == 0 && (kvbuf_reserve(out, 1) || out->oom))
    rc = KV_ENOMEM;
  if (rc == 0)
    out->data[out->len] = '\0';
  return rc;
}
