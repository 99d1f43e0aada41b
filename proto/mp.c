/* mp.c: bounded msgpack reader and kvbuf-backed packer. See mp.h. */
#include "mp.h"

#include <stdlib.h>
#include <string.h>

#include "kv_err.h"

/* First allocation of a kvbuf, in bytes. */
#define MP__KVBUF_MIN 256

/* ---- kvbuf ---- */

void kvbuf_init(kvbuf *b) { memset(b, 0, sizeof(*b)); }

void kvbuf_free(kvbuf *b) {
  free(b->data);
  memset(b, 0, sizeof(*b));
}

int kvbuf_reserve(kvbuf *b, size_t extra) {
  if (b->oom)
    return KV_ENOMEM;
  if (b->cap - b->len >= extra)
    return 0;
  if (extra > KVBUF_MAX - b->len) {
    b->oom = 1;
    return KV_ENOMEM;
  }
  size_t need = b->len + extra;
  size_t cap = b->cap ? b->cap : MP__KVBUF_MIN;
  while (cap < need)
    cap = cap > KVBUF_MAX / 2 ? KVBUF_MAX : cap * 2;
  uint8_t *p = realloc(b->data, cap);
  if (!p) {
    b->oom = 1;
    return KV_ENOMEM;
  }
  b->data = p;
  b->cap = cap;
  return 0;
}

int kvbuf_append(kvbuf *b, const void *p, size_t len) {
  if (len == 0)
    return 0;
  int rc = kvbuf_reserve(b, len);
  if (rc)
    return rc;
  memcpy(b->data + b->len, p, len);
  b->len += len;
  return 0;
}

void kvbuf_consume(kvbuf *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

uint8_t *kvbuf_steal(kvbuf *b, size_t *len) {
  uint8_t *p = b->data;
  if (len)
    *len = b->len;
  memset(b, 0, sizeof(*b));
  return p;
}

static int mp__write(void *data, const char *buf, size_t len) {
  return kvbuf_append((kvbuf *)data, buf, len) ? -1 : 0;
}

void mp_packer_init(msgpack_packer *pk, kvbuf *b) {
  msgpack_packer_init(pk, b, mp__write);
}

void mp_pack_bin(msgpack_packer *pk, const void *p, size_t len) {
  msgpack_pack_bin(pk, len);
  msgpack_pack_bin_body(pk, p, len);
}

void mp_pack_str(msgpack_packer *pk, const char *s, size_t len) {
  msgpack_pack_str(pk, len);
  msgpack_pack_str_body(pk, s, len);
}

void mp_pack_cstr(msgpack_packer *pk, const char *s) {
  mp_pack_str(pk, s, strlen(s));
}

/* ---- reader ---- */

void mp_reader_init(mp_reader *r, const void *buf, size_t len) {
  r->p = buf;
  r->end = r->p + len;
  r->err = 0;
}

static int mp__fail(mp_reader *r) {
  if (!r->err)
    r->err = KV_EPROTO;
  return KV_EPROTO;
}

static uint64_t mp__be(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

mp_type mp_peek(const mp_reader *r) {
  if (r->err || r->p >= r->end)
    return MP_INVALID;
  uint8_t c = *r->p;
  if (c <= 0x7f || c == 0xcc || c == 0xcd || c == 0xce || c == 0xcf)
    return MP_UINT;
  if (c >= 0xe0 || c == 0xd0 || c == 0xd1 || c == 0xd2 || c == 0xd3)
    return MP_INT;
  if ((c & 0xf0) == 0x80 || c == 0xde || c == 0xdf)
    return MP_MAP;
  if ((c & 0xf0) == 0x90 || c == 0xdc || c == 0xdd)
    return MP_ARRAY;
  if ((c & 0xe0) == 0xa0 || c == 0xd9 || c == 0xda || c == 0xdb)
    return MP_STR;
  switch (c) {
  case 0xc0:
    return MP_NIL;
  case 0xc2:
  case 0xc3:
    return MP_BOOL;
  case 0xc4:
  case 0xc5:
  case 0xc6:
    return MP_BIN;
  case 0xca:
  case 0xcb:
    return MP_FLOAT;
  case 0xc7:
  case 0xc8:
  case 0xc9:
  case 0xd4:
  case 0xd5:
  case 0xd6:
  case 0xd7:
  case 0xd8:
    return MP_EXT;
  default:
    return MP_INVALID;
  }
}

/* Takes n bytes from r; NULL (and error) when fewer remain. */
static const uint8_t *mp__take(mp_reader *r, size_t n) {
  if (r->err || (size_t)(r->end - r->p) < n) {
    mp__fail(r);
    return NULL;
  }
  const uint8_t *p = r->p;
  r->p += n;
  return p;
}

int mp_read_nil(mp_reader *r) {
  const uint8_t *p = mp__take(r, 1);
  if (!p)
    return KV_EPROTO;
  if (*p != 0xc0) {
    r->p--;
    return mp__fail(r);
  }
  return 0;
}

int mp_read_bool(mp_reader *r, bool *out) {
  const uint8_t *p = mp__take(r, 1);
  if (!p)
    return KV_EPROTO;
  if (*p != 0xc2 && *p != 0xc3) {
    r->p--;
    return mp__fail(r);
  }
  *out = *p == 0xc3;
  return 0;
}

/* Reads any integer into *u (as unsigned) with *neg telling the sign. */
static int mp__read_integer(mp_reader *r, uint64_t *u, int *neg) {
  const uint8_t *p = mp__take(r, 1);
  if (!p)
    return KV_EPROTO;
  uint8_t c = *p;
  *neg = 0;
  if (c <= 0x7f) {
    *u = c;
    return 0;
  }
  if (c >= 0xe0) {
    *neg = 1;
    *u = (uint64_t)(int64_t)(int8_t)c;
    return 0;
  }
  int n = 0, sgn = 0;
  switch (c) {
  case 0xcc: n = 1; break;
  case 0xcd: n = 2; break;
  case 0xce: n = 4; break;
  case 0xcf: n = 8; break;
  case 0xd0: n = 1; sgn = 1; break;
  case 0xd1: n = 2; sgn = 1; break;
  case 0xd2: n = 4; sgn = 1; break;
  case 0xd3: n = 8; sgn = 1; break;
  default:
    r->p--;
    return mp__fail(r);
  }
  const uint8_t *b = mp__take(r, (size_t)n);
  if (!b)
    return KV_EPROTO;
  uint64_t v = mp__be(b, n);
  if (sgn) {
    int64_t s;
    switch (n) {
    case 1: s = (int8_t)v; break;
    case 2: s = (int16_t)v; break;
    case 4: s = (int32_t)v; break;
    default: s = (int64_t)v; break;
    }
    *neg = s < 0;
    *u = (uint64_t)s;
  } else {
    *u = v;
  }
  return 0;
}

int mp_read_uint(mp_reader *r, uint64_t *out) {
  uint64_t u;
  int neg;
  if (mp__read_integer(r, &u, &neg))
    return KV_EPROTO;
  if (neg)
    return mp__fail(r);
  *out = u;
  return 0;
}

int mp_read_u32(mp_reader *r, uint32_t *out) {
  uint64_t u;
  if (mp_read_uint(r, &u))
    return KV_EPROTO;
  if (u > UINT32_MAX)
    return mp__fail(r);
  *out = (uint32_t)u;
  return 0;
}

int mp_read_int(mp_reader *r, int64_t *out) {
  uint64_t u;
  int neg;
  if (mp__read_integer(r, &u, &neg))
    return KV_EPROTO;
  if (!neg && u > (uint64_t)INT64_MAX)
    return mp__fail(r);
  *out = (int64_t)u;
  return 0;
}

int mp_read_double(mp_reader *r, double *out) {
  if (r->err || r->p >= r->end)
    return mp__fail(r);
  uint8_t c = *r->p;
  if (c == 0xca || c == 0xcb) {
    r->p++;
    int n = c == 0xca ? 4 : 8;
    const uint8_t *b = mp__take(r, (size_t)n);
    if (!b)
      return KV_EPROTO;
    uint64_t v = mp__be(b, n);
    if (n == 4) {
      uint32_t v32 = (uint32_t)v;
      float f;
      memcpy(&f, &v32, 4);
      *out = f;
    } else {
      memcpy(out, &v, 8);
    }
    return 0;
  }
  int64_t i;
  if (mp_read_int(r, &i))
    return KV_EPROTO;
  *out = (double)i;
  return 0;
}

/* Reads a container header; min_bytes_per is the smallest encoding of one
 * element, used to bound *n by the bytes that remain. */
static int mp__read_container(mp_reader *r, uint32_t *n, int is_map) {
  const uint8_t *p = mp__take(r, 1);
  if (!p)
    return KV_EPROTO;
  uint8_t c = *p;
  uint64_t count;
  if (!is_map && (c & 0xf0) == 0x90) {
    count = c & 0x0f;
  } else if (is_map && (c & 0xf0) == 0x80) {
    count = c & 0x0f;
  } else if (c == (is_map ? 0xde : 0xdc)) {
    const uint8_t *b = mp__take(r, 2);
    if (!b)
      return KV_EPROTO;
    count = mp__be(b, 2);
  } else if (c == (is_map ? 0xdf : 0xdd)) {
    const uint8_t *b = mp__take(r, 4);
    if (!b)
      return KV_EPROTO;
    count = mp__be(b, 4);
  } else {
    r->p--;
    return mp__fail(r);
  }
  if (count * (is_map ? 2u : 1u) > mp_remaining(r))
    return mp__fail(r);
  *n = (uint32_t)count;
  return 0;
}

int mp_read_array(mp_reader *r, uint32_t *n) {
  return mp__read_container(r, n, 0);
}

int mp_read_map(mp_reader *r, uint32_t *n) {
  return mp__read_container(r, n, 1);
}

/* Reads a str (allow_bin=0) or str/bin (allow_bin=1). */
static int mp__read_blob(mp_reader *r, kv_slice *out, int allow_bin) {
  const uint8_t *p = mp__take(r, 1);
  if (!p)
    return KV_EPROTO;
  uint8_t c = *p;
  size_t len;
  int n = 0;
  if ((c & 0xe0) == 0xa0) {
    len = c & 0x1f;
  } else if (c == 0xd9 || (allow_bin && c == 0xc4)) {
    n = 1;
  } else if (c == 0xda || (allow_bin && c == 0xc5)) {
    n = 2;
  } else if (c == 0xdb || (allow_bin && c == 0xc6)) {
    n = 4;
  } else {
    r->p--;
    return mp__fail(r);
  }
  if (n) {
    const uint8_t *b = mp__take(r, (size_t)n);
    if (!b)
      return KV_EPROTO;
    len = (size_t)mp__be(b, n);
  }
  const uint8_t *body = mp__take(r, len);
  if (!body)
    return KV_EPROTO;
  out->ptr = body;
  out->len = len;
  return 0;
}

int mp_read_bytes(mp_reader *r, kv_slice *out) {
  return mp__read_blob(r, out, 1);
}

int mp_read_str(mp_reader *r, kv_slice *out) {
  return mp__read_blob(r, out, 0);
}

int mp_read_bytes_or_nil(mp_reader *r, kv_slice *out) {
  if (mp_peek(r) == MP_NIL) {
    r->p++;
    out->ptr = NULL;
    out->len = 0;
    return 0;
  }
  return mp_read_bytes(r, out);
}

int mp_read_cstr(mp_reader *r, char *buf, size_t cap) {
  kv_slice s;
  if (mp_read_bytes(r, &s))
    return KV_EPROTO;
  if (s.len + 1 > cap)
    return KV_ETOOBIG;
  memcpy(buf, s.ptr, s.len);
  buf[s.len] = '\0';
  return 0;
}

static int mp__skip(mp_reader *r, int depth) {
  if (depth > MP_DEPTH_MAX)
    return mp__fail(r);
  mp_type t = mp_peek(r);
  uint64_t u;
  int neg;
  bool b;
  double d;
  kv_slice s;
  uint32_t n;
  switch (t) {
  case MP_NIL:
    return mp_read_nil(r);
  case MP_BOOL:
    return mp_read_bool(r, &b);
  case MP_UINT:
  case MP_INT:
    return mp__read_integer(r, &u, &neg);
  case MP_FLOAT:
    return mp_read_double(r, &d);
  case MP_STR:
  case MP_BIN:
    return mp_read_bytes(r, &s);
  case MP_ARRAY:
    if (mp_read_array(r, &n))
      return KV_EPROTO;
    for (uint32_t i = 0; i < n; i++)
      if (mp__skip(r, depth + 1))
        return KV_EPROTO;
    return 0;
  case MP_MAP:
    if (mp_read_map(r, &n))
      return KV_EPROTO;
    for (uint32_t i = 0; i < 2 * n; i++)
      if (mp__skip(r, depth + 1))
        return KV_EPROTO;
    return 0;
  case MP_EXT: {
    uint8_t c = *r->p++;
    size_t len;
    switch (c) {
    case 0xd4: len = 1; break;
    case 0xd5: len = 2; break;
    case 0xd6: len = 4; break;
    case 0xd7: len = 8; break;
    case 0xd8: len = 16; break;
    default: {
      int nb = c == 0xc7 ? 1 : c == 0xc8 ? 2 : 4;
      const uint8_t *lb = mp__take(r, (size_t)nb);
      if (!lb)
        return KV_EPROTO;
      len = (size_t)mp__be(lb, nb);
    }
    }
    return mp__take(r, len + 1) ? 0 : KV_EPROTO; /* type byte + data */
  }
  default:
    return mp__fail(r);
  }
}

int mp_skip(mp_reader *r) { return mp__skip(r, 0); }

int mp_read_raw(mp_reader *r, kv_slice *out) {
  const uint8_t *start = r->p;
  if (mp_skip(r))
    return KV_EPROTO;
  out->ptr = start;
  out->len = (size_t)(r->p - start);
  return 0;
}

bool mp_slice_eq(kv_slice s, const char *cstr) {
  size_t n = strlen(cstr);
  return s.len == n && (n == 0 || memcmp(s.ptr, cstr, n) == 0);
}
