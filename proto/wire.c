/*
 * wire.c: framing, message codecs and PEER_MSG payload codecs of the kvorum
 * wire protocol (see wire.h and docs/protocol.md).
 *
 * Decoding walks the body once with the bounded reader of mp.h and never
 * allocates: every slice of a decoded message points into the body.
 * Encoding reserves the 4-byte header, packs the body with msgpack-c's
 * packer straight into the caller's kvbuf, then patches the length.
 * Peer payloads are checked against the same rules on both sides: a
 * decoder walks every list once before handing it out, and an encoder
 * walks the lists it is given before packing them.
 * Depends on: mp.h, kv_err.h, msgpack-c (pack only).
 */
#include "wire.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kv_err.h"

/* Bytes reserved for the fixed parts of a message (array header, type,
 * req_id, integers, headers of strings and binaries) before packing. */
#define WIRE__FIXED_RESERVE 96

const wire_limits wire_limits_default = {WIRE_FRAME_MAX, KV_VALUE_MAX_DEFAULT};

const char *wire_type_name(uint32_t type) {
  switch (type) {
#define WIRE__TYPE_NAME(name, num, str)                                        \
  case (num):                                                                  \
    return str;
    WIRE_MSG_MAP(WIRE__TYPE_NAME)
#undef WIRE__TYPE_NAME
  default:
    return "unknown";
  }
}

/* ---- consistency levels ---- */

static const struct {
  const char *name;
  int32_t q;
} wire__qnames[] = {
    {"default", WIRE_Q_DEFAULT},
    {"one", WIRE_Q_ONE},
    {"quorum", WIRE_Q_QUORUM},
    {"all", WIRE_Q_ALL},
    {"local_one", WIRE_Q_LOCAL_ONE},
    {"local_quorum", WIRE_Q_LOCAL_QUORUM},
    {"each_quorum", WIRE_Q_EACH_QUORUM},
};
#define WIRE__NQNAMES (sizeof(wire__qnames) / sizeof(wire__qnames[0]))

int wire_parse_quorum(const char *s, int32_t *out) {
  if (!s || !*s)
    return KV_EINVAL;
  for (size_t i = 0; i < WIRE__NQNAMES; i++) {
    if (strcasecmp(s, wire__qnames[i].name) == 0) {
      *out = wire__qnames[i].q;
      return 0;
    }
  }
  int32_t v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9')
      return KV_EINVAL;
    v = v * 10 + (*p - '0');
    if (v > WIRE_Q_NUMBER_MAX)
      return KV_EINVAL;
  }
  *out = v;
  return 0;
}

const char *wire_quorum_str(int32_t q, char *buf, size_t cap) {
  if (!buf || cap == 0)
    return "";
  for (size_t i = 0; i < WIRE__NQNAMES; i++) {
    if (wire__qnames[i].q == q) {
      snprintf(buf, cap, "%s", wire__qnames[i].name);
      return buf;
    }
  }
  snprintf(buf, cap, "%ld", (long)q);
  return buf;
}

/* ---- framing ---- */

/* The effective body limit of lim (never above WIRE_FRAME_MAX). */
static uint32_t wire__frame_max(const wire_limits *lim) {
  if (!lim || lim->frame_max == 0 || lim->frame_max > WIRE_FRAME_MAX)
    return WIRE_FRAME_MAX;
  return lim->frame_max;
}

int wire_frame_check(const uint8_t *buf, size_t len, const wire_limits *lim,
                     uint32_t *body_len) {
  if (len < WIRE_HEADER_BYTES)
    return KV_EBUSY;
  uint32_t n = ((uint32_t)buf[0] << 24) | ((uint32_t)buf[1] << 16) |
               ((uint32_t)buf[2] << 8) | (uint32_t)buf[3];
  if (body_len)
    *body_len = n;
  if (n > wire__frame_max(lim))
    return KV_ETOOBIG;
  if (len - WIRE_HEADER_BYTES < n)
    return KV_EBUSY;
  return 0;
}

/* ---- decoding ---- */

/* Number of fields after [type, req_id] that a message of type must have,
 * or -1 for an unknown type. */
static int wire__nfields(uint32_t type) {
  switch (type) {
  case WIRE_HELLO: return 2;
  case WIRE_HELLO_OK: return 4;
  case WIRE_ERROR: return 2;
  case WIRE_GET: return 2;
  case WIRE_GET_OK: return 2;
  case WIRE_PUT: return 4;
  case WIRE_PUT_OK: return 1;
  case WIRE_DEL: return 3;
  case WIRE_DEL_OK: return 1;
  case WIRE_ADMIN: return 2;
  case WIRE_ADMIN_OK: return 1;
  case WIRE_PEER_HELLO: return 3;
  case WIRE_REPL_PUT: return 3;
  case WIRE_REPL_PUT_OK: return 0;
  case WIRE_REPL_GET: return 1;
  case WIRE_REPL_GET_OK: return 1;
  case WIRE_COORD_PUT: return 5;
  case WIRE_GOSSIP: return 1;
  case WIRE_PEER_MSG: return 2;
  default: return -1;
  }
}

/* Reads a key: str or bin of at most KV_KEY_MAX bytes. */
static int wire__dec_key(mp_reader *r, kv_slice *out) {
  if (mp_read_bytes(r, out))
    return KV_EPROTO;
  return out->len > KV_KEY_MAX ? KV_ETOOBIG : 0;
}

/* Reads a value: str or bin of at most max bytes. */
static int wire__dec_value(mp_reader *r, kv_slice *out, uint32_t max) {
  if (mp_read_bytes(r, out))
    return KV_EPROTO;
  return out->len > max ? KV_ETOOBIG : 0;
}

/* Reads a name (node id, region): a str shorter than WIRE_NAME_MAX, so it
 * fits a WIRE_NAME_MAX buffer with its NUL. */
static int wire__dec_name(mp_reader *r, kv_slice *out) {
  if (mp_read_str(r, out))
    return KV_EPROTO;
  if (out->len >= WIRE_NAME_MAX) {
    r->err = KV_EPROTO;
    return KV_EPROTO;
  }
  return 0;
}

/* Reads a consistency level: an integer within int32. */
static int wire__dec_q(mp_reader *r, int32_t *out) {
  int64_t v;
  if (mp_read_int(r, &v))
    return KV_EPROTO;
  if (v < INT32_MIN || v > INT32_MAX) {
    r->err = KV_EPROTO;
    return KV_EPROTO;
  }
  *out = (int32_t)v;
  return 0;
}

/* Compares a map key with a short literal. */
static bool wire__key_is(kv_slice k, const char *lit, size_t n) {
  return k.len == n && memcmp(k.ptr, lit, n) == 0;
}
#define WIRE__KEY_IS(k, lit) wire__key_is((k), (lit), sizeof(lit) - 1)

/* Reads an opts map (or nil: all defaults). Unknown keys, and keys that
 * are not strings, are skipped with their values. */
static int wire__dec_opts(mp_reader *r, wire_opts *o) {
  memset(o, 0, sizeof(*o));
  if (mp_peek(r) == MP_NIL)
    return mp_read_nil(r);
  uint32_t n;
  if (mp_read_map(r, &n))
    return KV_EPROTO;
  for (uint32_t i = 0; i < n; i++) {
    kv_slice k;
    if (mp_peek(r) != MP_STR) {
      if (mp_skip(r) || mp_skip(r))
        return KV_EPROTO;
      continue;
    }
    if (mp_read_str(r, &k))
      return KV_EPROTO;
    int rc;
    if (WIRE__KEY_IS(k, "r"))
      rc = wire__dec_q(r, &o->r);
    else if (WIRE__KEY_IS(k, "w"))
      rc = wire__dec_q(r, &o->w);
    else if (WIRE__KEY_IS(k, "dw"))
      rc = wire__dec_q(r, &o->dw);
    else if (WIRE__KEY_IS(k, "pr"))
      rc = wire__dec_q(r, &o->pr);
    else if (WIRE__KEY_IS(k, "pw"))
      rc = wire__dec_q(r, &o->pw);
    else if (WIRE__KEY_IS(k, "t"))
      rc = mp_read_u32(r, &o->timeout_ms);
    else if (WIRE__KEY_IS(k, "f"))
      rc = mp_read_u32(r, &o->flags);
    else if (WIRE__KEY_IS(k, "rg"))
      rc = wire__dec_name(r, &o->region);
    else
      rc = mp_skip(r);
    if (rc)
      return KV_EPROTO;
  }
  return 0;
}

int wire_sibling_next(mp_reader *r, wire_sibling *out) {
  uint32_t n;
  if (mp_read_array(r, &n))
    return KV_EPROTO;
  if (n < 3) {
    r->err = KV_EPROTO;
    return KV_EPROTO;
  }
  if (mp_read_u32(r, &out->flags) || mp_read_uint(r, &out->ts_ms) ||
      mp_read_bytes(r, &out->value))
    return KV_EPROTO;
  for (uint32_t i = 3; i < n; i++)
    if (mp_skip(r))
      return KV_EPROTO;
  return 0;
}

/* Reads the siblings array of a GET_OK, checking every sibling. */
static int wire__dec_siblings(mp_reader *r, wire_msg *m) {
  const uint8_t *start = r->p;
  uint32_t n;
  if (mp_read_array(r, &n))
    return KV_EPROTO;
  for (uint32_t i = 0; i < n; i++) {
    wire_sibling s;
    if (wire_sibling_next(r, &s))
      return KV_EPROTO;
  }
  m->nsiblings = n;
  m->raw.ptr = start;
  m->raw.len = (size_t)(r->p - start);
  return 0;
}

/* Reads an ADMIN args field: a map or nil, kept as its encoded bytes. */
static int wire__dec_args(mp_reader *r, kv_slice *out) {
  mp_type t = mp_peek(r);
  if (t != MP_MAP && t != MP_NIL) {
    r->err = KV_EPROTO;
    return KV_EPROTO;
  }
  return mp_read_raw(r, out);
}

/* Decodes the fields of a known type. Returns 0, KV_EPROTO or
 * KV_ETOOBIG. */
static int wire__dec_fields(mp_reader *r, const wire_limits *lim,
                            wire_msg *m) {
  uint32_t vmax = lim ? lim->value_max : KV_VALUE_MAX_DEFAULT;
  int rc;
  switch (m->type) {
  case WIRE_HELLO:
    if (mp_read_uint(r, &m->version) || mp_read_str(r, &m->text))
      return KV_EPROTO;
    return 0;
  case WIRE_HELLO_OK:
    if (mp_read_uint(r, &m->version) || wire__dec_name(r, &m->text) ||
        mp_read_u32(r, &m->partitions) || wire__dec_name(r, &m->region))
      return KV_EPROTO;
    return 0;
  case WIRE_ERROR: {
    int64_t code;
    if (mp_read_int(r, &code))
      return KV_EPROTO;
    if (code < INT32_MIN || code > INT32_MAX)
      return KV_EPROTO;
    m->code = (int32_t)code;
    return mp_read_str(r, &m->text) ? KV_EPROTO : 0;
  }
  case WIRE_GET:
    if ((rc = wire__dec_key(r, &m->key)))
      return rc;
    return wire__dec_opts(r, &m->opts);
  case WIRE_GET_OK:
    if (wire__dec_siblings(r, m))
      return KV_EPROTO;
    return mp_read_bytes_or_nil(r, &m->context) ? KV_EPROTO : 0;
  case WIRE_PUT:
  case WIRE_COORD_PUT:
    if ((rc = wire__dec_key(r, &m->key)))
      return rc;
    if ((rc = wire__dec_value(r, &m->value, vmax)))
      return rc;
    if (mp_read_bytes_or_nil(r, &m->context) || wire__dec_opts(r, &m->opts))
      return KV_EPROTO;
    if (m->type == WIRE_COORD_PUT && mp_read_u32(r, &m->flags))
      return KV_EPROTO;
    return 0;
  case WIRE_PUT_OK:
  case WIRE_DEL_OK:
    return mp_read_bytes_or_nil(r, &m->context) ? KV_EPROTO : 0;
  case WIRE_DEL:
    if ((rc = wire__dec_key(r, &m->key)))
      return rc;
    if (mp_read_bytes_or_nil(r, &m->context) || wire__dec_opts(r, &m->opts))
      return KV_EPROTO;
    return 0;
  case WIRE_ADMIN:
    if (mp_read_str(r, &m->text) || wire__dec_args(r, &m->raw))
      return KV_EPROTO;
    return 0;
  case WIRE_ADMIN_OK:
    return mp_read_raw(r, &m->raw) ? KV_EPROTO : 0;
  case WIRE_PEER_HELLO:
    if (mp_read_uint(r, &m->version) || wire__dec_name(r, &m->text) ||
        mp_read_uint(r, &m->incarnation))
      return KV_EPROTO;
    return 0;
  case WIRE_REPL_PUT:
    if ((rc = wire__dec_key(r, &m->key)))
      return rc;
    if (mp_read_bytes(r, &m->object) || mp_read_u32(r, &m->flags))
      return KV_EPROTO;
    return 0;
  case WIRE_REPL_PUT_OK:
    return 0;
  case WIRE_REPL_GET:
    return wire__dec_key(r, &m->key);
  case WIRE_REPL_GET_OK:
    return mp_read_bytes_or_nil(r, &m->object) ? KV_EPROTO : 0;
  case WIRE_GOSSIP:
    return mp_read_bytes(r, &m->raw) ? KV_EPROTO : 0;
  case WIRE_PEER_MSG:
    if (mp_read_u32(r, &m->flags) || mp_read_bytes(r, &m->raw))
      return KV_EPROTO;
    return 0;
  default:
    return KV_EUNKNOWN;
  }
}

int wire_decode(const uint8_t *body, size_t len, const wire_limits *lim,
                wire_msg *msg) {
  memset(msg, 0, sizeof(*msg));
  if (!lim)
    lim = &wire_limits_default;
  mp_reader r;
  mp_reader_init(&r, body, len);
  uint32_t n;
  if (mp_read_array(&r, &n) || n == 0)
    return KV_EPROTO;
  uint32_t type;
  if (mp_read_u32(&r, &type))
    return KV_EPROTO;
  msg->type = type;
  uint64_t id;
  if (n < 2 || mp_read_uint(&r, &id))
    return KV_EPROTO;
  msg->req_id = id;
  uint32_t nf = n - 2;
  int need = wire__nfields(type);
  if (need < 0) {
    /* Unknown type: still well-formed if every field parses. */
    for (uint32_t i = 0; i < nf; i++)
      if (mp_skip(&r))
        return KV_EPROTO;
    return r.p == r.end ? KV_EUNKNOWN : KV_EPROTO;
  }
  if (nf < (uint32_t)need)
    return KV_EPROTO;
  int rc = wire__dec_fields(&r, lim, msg);
  if (rc)
    return rc;
  /* Fields added by later versions are skipped. */
  for (uint32_t i = (uint32_t)need; i < nf; i++)
    if (mp_skip(&r))
      return KV_EPROTO;
  if (r.err || r.p != r.end)
    return KV_EPROTO;
  return 0;
}

/* ---- encoding ---- */

void wire_begin(kvbuf *out, msgpack_packer *pk, size_t *frame_start,
                uint32_t type, uint64_t req_id, uint32_t nfields) {
  static const uint8_t zero[WIRE_HEADER_BYTES] = {0};
  *frame_start = out->len;
  kvbuf_append(out, zero, sizeof(zero));
  mp_packer_init(pk, out);
  msgpack_pack_array(pk, 2 + (size_t)nfields);
  msgpack_pack_uint32(pk, type);
  msgpack_pack_uint64(pk, req_id);
}

int wire_end(kvbuf *out, size_t frame_start) {
  if (out->oom) {
    if (frame_start < out->len)
      out->len = frame_start;
    return KV_ENOMEM;
  }
  size_t body = out->len - frame_start - WIRE_HEADER_BYTES;
  if (body > WIRE_FRAME_MAX) {
    out->len = frame_start;
    return KV_ETOOBIG;
  }
  uint8_t *h = out->data + frame_start;
  h[0] = (uint8_t)(body >> 24);
  h[1] = (uint8_t)(body >> 16);
  h[2] = (uint8_t)(body >> 8);
  h[3] = (uint8_t)body;
  return 0;
}

/* Number of options of o that differ from the default. */
static uint32_t wire__nopts(const wire_opts *o) {
  return (uint32_t)(o->r != 0) + (o->w != 0) + (o->dw != 0) + (o->pr != 0) +
         (o->pw != 0) + (o->timeout_ms != 0) + (o->flags != 0) +
         (o->region.len != 0);
}

/* Packs one string-keyed integer option when it is not the default. */
static void wire__pack_q(msgpack_packer *pk, const char *k, int32_t v) {
  if (v == 0)
    return;
  mp_pack_cstr(pk, k);
  msgpack_pack_int32(pk, v);
}

void wire_pack_opts(msgpack_packer *pk, const wire_opts *o) {
  msgpack_pack_map(pk, wire__nopts(o));
  wire__pack_q(pk, "r", o->r);
  wire__pack_q(pk, "w", o->w);
  wire__pack_q(pk, "dw", o->dw);
  wire__pack_q(pk, "pr", o->pr);
  wire__pack_q(pk, "pw", o->pw);
  if (o->timeout_ms) {
    mp_pack_cstr(pk, "t");
    msgpack_pack_uint32(pk, o->timeout_ms);
  }
  if (o->flags) {
    mp_pack_cstr(pk, "f");
    msgpack_pack_uint32(pk, o->flags);
  }
  if (o->region.len) {
    mp_pack_cstr(pk, "rg");
    mp_pack_str(pk, (const char *)o->region.ptr, o->region.len);
  }
}

/* Packs s as a bin, or nil when s.ptr is NULL. */
static void wire__pack_bin_or_nil(msgpack_packer *pk, kv_slice s) {
  if (!s.ptr)
    msgpack_pack_nil(pk);
  else
    mp_pack_bin(pk, s.ptr, s.len);
}

static void wire__pack_bin(msgpack_packer *pk, kv_slice s) {
  mp_pack_bin(pk, s.ptr, s.len);
}

static void wire__pack_str(msgpack_packer *pk, kv_slice s) {
  mp_pack_str(pk, (const char *)s.ptr, s.len);
}

/* Appends already-encoded msgpack bytes (or the object in dflt when there
 * are none). */
static void wire__append_raw(kvbuf *out, kv_slice s, uint8_t dflt) {
  if (s.len)
    kvbuf_append(out, s.ptr, s.len);
  else
    kvbuf_append(out, &dflt, 1);
}

int wire_encode(kvbuf *out, const wire_msg *m) {
  int need = wire__nfields(m->type);
  if (need < 0)
    return KV_EINVAL;
  size_t est = WIRE_HEADER_BYTES + WIRE__FIXED_RESERVE + m->key.len +
               m->value.len + m->context.len + m->object.len + m->text.len +
               m->region.len + m->raw.len + m->opts.region.len;
  if (kvbuf_reserve(out, est))
    return KV_ENOMEM;
  msgpack_packer pk;
  size_t start;
  wire_begin(out, &pk, &start, m->type, m->req_id, (uint32_t)need);
  switch (m->type) {
  case WIRE_HELLO:
    msgpack_pack_uint64(&pk, m->version);
    wire__pack_str(&pk, m->text);
    break;
  case WIRE_HELLO_OK:
    msgpack_pack_uint64(&pk, m->version);
    wire__pack_str(&pk, m->text);
    msgpack_pack_uint32(&pk, m->partitions);
    wire__pack_str(&pk, m->region);
    break;
  case WIRE_ERROR:
    msgpack_pack_int32(&pk, m->code);
    wire__pack_str(&pk, m->text);
    break;
  case WIRE_GET:
    wire__pack_bin(&pk, m->key);
    wire_pack_opts(&pk, &m->opts);
    break;
  case WIRE_GET_OK:
    wire__append_raw(out, m->raw, 0x90); /* empty array */
    wire__pack_bin(&pk, m->context);
    break;
  case WIRE_PUT:
  case WIRE_COORD_PUT:
    wire__pack_bin(&pk, m->key);
    wire__pack_bin(&pk, m->value);
    wire__pack_bin_or_nil(&pk, m->context);
    wire_pack_opts(&pk, &m->opts);
    if (m->type == WIRE_COORD_PUT)
      msgpack_pack_uint32(&pk, m->flags);
    break;
  case WIRE_PUT_OK:
  case WIRE_DEL_OK:
    wire__pack_bin(&pk, m->context);
    break;
  case WIRE_DEL:
    wire__pack_bin(&pk, m->key);
    wire__pack_bin_or_nil(&pk, m->context);
    wire_pack_opts(&pk, &m->opts);
    break;
  case WIRE_ADMIN:
    wire__pack_str(&pk, m->text);
    wire__append_raw(out, m->raw, 0x80); /* empty map */
    break;
  case WIRE_ADMIN_OK:
    wire__append_raw(out, m->raw, 0xc0); /* nil */
    break;
  case WIRE_PEER_HELLO:
    msgpack_pack_uint64(&pk, m->version);
    wire__pack_str(&pk, m->text);
    msgpack_pack_uint64(&pk, m->incarnation);
    break;
  case WIRE_REPL_PUT:
    wire__pack_bin(&pk, m->key);
    wire__pack_bin(&pk, m->object);
    msgpack_pack_uint32(&pk, m->flags);
    break;
  case WIRE_REPL_PUT_OK:
    break;
  case WIRE_REPL_GET:
    wire__pack_bin(&pk, m->key);
    break;
  case WIRE_REPL_GET_OK:
    wire__pack_bin_or_nil(&pk, m->object);
    break;
  case WIRE_GOSSIP:
    wire__pack_bin(&pk, m->raw);
    break;
  case WIRE_PEER_MSG:
    msgpack_pack_uint32(&pk, m->flags);
    wire__pack_bin(&pk, m->raw);
    break;
  default:
    break;
  }
  return wire_end(out, start);
}

int wire_encode_error(kvbuf *out, uint64_t req_id, int code, const char *fmt,
                      ...) {
  char text[WIRE_ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  size_t len;
  if (n < 0) {
    len = 0;
  } else if ((size_t)n >= sizeof(text)) {
    /* Truncated: cut at a character boundary so the str stays UTF-8. */
    len = sizeof(text) - 1;
    while (len > 0 && ((uint8_t)text[len] & 0xc0) == 0x80)
      len--;
  } else {
    len = (size_t)n;
  }
  wire_msg m;
  memset(&m, 0, sizeof(m));
  m.type = WIRE_ERROR;
  m.req_id = req_id;
  m.code = code;
  m.text.ptr = (const uint8_t *)text;
  m.text.len = len;
  return wire_encode(out, &m);
}

/* ---- GET_OK streaming writer ---- */

void wire_begin_get_ok(wire_get_ok_writer *w, kvbuf *out, uint64_t req_id,
                       uint32_t nsiblings) {
  w->out = out;
  w->nsiblings = nsiblings;
  w->added = 0;
  wire_begin(out, &w->pk, &w->frame_start, WIRE_GET_OK, req_id, 2);
  msgpack_pack_array(&w->pk, nsiblings);
}

void wire_add_sibling(wire_get_ok_writer *w, uint32_t flags, uint64_t ts_ms,
                      const void *value, size_t len) {
  w->added++;
  kvbuf_reserve(w->out, WIRE__FIXED_RESERVE + len);
  msgpack_pack_array(&w->pk, 3);
  msgpack_pack_uint32(&w->pk, flags);
  msgpack_pack_uint64(&w->pk, ts_ms);
  mp_pack_bin(&w->pk, value, len);
}

int wire_end_get_ok(wire_get_ok_writer *w, const void *context, size_t len) {
  if (w->added != w->nsiblings) {
    /* A programming error: the array header announced another count. */
    if (w->frame_start < w->out->len)
      w->out->len = w->frame_start;
    return KV_EINVAL;
  }
  mp_pack_bin(&w->pk, context, len);
  return wire_end(w->out, w->frame_start);
}

/* ==== peer message payloads ==== */

_Static_assert(WIRE_AAE_BRANCHES == 32,
               "wire_pm_aae_leaves.branches has one bit per branch");
_Static_assert(WIRE_AAE_SEGMENTS % 64 == 0,
               "wire_pm_aae_keys.segs has one bit per segment");

const char *wire_pm_name(uint32_t kind) {
  switch (kind) {
#define WIRE__PM_NAME(name, num, str, field)                                   \
  case (num):                                                                  \
    return str;
    WIRE_PM_MAP(WIRE__PM_NAME)
#undef WIRE__PM_NAME
  default:
    return "unknown";
  }
}

/* The shapes of list elements. */
typedef enum wire__shape {
  WIRE__KEY_HASH,   /* [key:bin, hash:uint] */
  WIRE__KEY_OBJECT, /* [key:bin, object:bin] */
  WIRE__KEY,        /* key:bin */
} wire__shape;

/* Marks r failed and returns KV_EPROTO. */
static int wire__fail(mp_reader *r) {
  if (!r->err)
    r->err = KV_EPROTO;
  return KV_EPROTO;
}

/* A reader over (p, len); p may be NULL when len is 0. */
static void wire__reader(mp_reader *r, const uint8_t *p, size_t len) {
  static const uint8_t none[1];
  if (!p) {
    p = none;
    len = 0;
  }
  mp_reader_init(r, p, len);
}

/* True when s can be read: bytes behind it, or empty. */
static bool wire__slice_ok(kv_slice s) { return s.len == 0 || s.ptr != NULL; }

/* True when s is a valid node id in a payload: 1..WIRE_NAME_MAX-1 bytes
 * without NUL (it becomes a C string on the receiver). */
static bool wire__pm_name_ok(kv_slice s) {
  return s.len > 0 && s.len < WIRE_NAME_MAX && s.ptr &&
         memchr(s.ptr, 0, s.len) == NULL;
}

/* Reads a key of a payload: str or bin of at most KV_KEY_MAX bytes. */
static int wire__pm_key(mp_reader *r, kv_slice *out) {
  if (mp_read_bytes(r, out))
    return KV_EPROTO;
  return out->len > KV_KEY_MAX ? wire__fail(r) : 0;
}

/* Bytewise order of keys, a prefix before the longer key. */
static int wire__key_cmp(kv_slice a, kv_slice b) {
  size_t l = a.len < b.len ? a.len : b.len;
  int c = l ? memcmp(a.ptr, b.ptr, l) : 0;
  if (c)
    return c;
  return a.len < b.len ? -1 : a.len > b.len;
}

/* Reads one list element of shape: key always, hash or object when the
 * shape has them. */
static int wire__pm_elem(mp_reader *r, wire__shape shape, kv_slice *key,
                         kv_slice *object, uint64_t *hash) {
  if (shape == WIRE__KEY)
    return wire__pm_key(r, key);
  uint32_t n;
  if (mp_read_array(r, &n))
    return KV_EPROTO;
  if (n != 2)
    return wire__fail(r);
  if (wire__pm_key(r, key))
    return KV_EPROTO;
  if (shape == WIRE__KEY_HASH)
    return mp_read_uint(r, hash);
  return mp_read_bytes(r, object);
}

/* Reads count elements of shape; with ascending, their keys must be
 * strictly ascending. */
static int wire__pm_walk(mp_reader *r, uint32_t count, wire__shape shape,
                         bool ascending) {
  kv_slice prev = {NULL, 0};
  for (uint32_t i = 0; i < count; i++) {
    kv_slice key, object;
    uint64_t hash;
    if (wire__pm_elem(r, shape, &key, &object, &hash))
      return KV_EPROTO;
    if (ascending && i > 0 && wire__key_cmp(prev, key) >= 0)
      return wire__fail(r);
    prev = key;
  }
  return 0;
}

/* Reads a list field: an array of at most max elements of shape, checked
 * whole; out gets the count and the elements' bytes. */
static int wire__pm_list(mp_reader *r, uint32_t max, wire__shape shape,
                         bool ascending, wire_pm_list *out) {
  uint32_t n;
  if (mp_read_array(r, &n))
    return KV_EPROTO;
  if (n > max)
    return wire__fail(r);
  const uint8_t *start = r->p;
  if (wire__pm_walk(r, n, shape, ascending))
    return KV_EPROTO;
  out->count = n;
  out->items.ptr = start;
  out->items.len = (size_t)(r->p - start);
  return 0;
}

/* True when l, about to be encoded, is what wire__pm_list accepts: at most
 * max elements, its items exactly count elements of shape. */
static bool wire__pm_list_ok(const wire_pm_list *l, uint32_t max,
                             wire__shape shape, bool ascending) {
  if (l->count > max || !wire__slice_ok(l->items))
    return false;
  mp_reader r;
  wire__reader(&r, l->items.ptr, l->items.len);
  return wire__pm_walk(&r, l->count, shape, ascending) == 0 && r.p == r.end;
}

/* Starts decoding a payload: one array of at least need fields; *extra is
 * the number of fields after those. */
static int wire__pm_open(mp_reader *r, const uint8_t *p, size_t len,
                         uint32_t need, uint32_t *extra) {
  wire__reader(r, p, len);
  uint32_t n;
  if (mp_read_array(r, &n))
    return KV_EPROTO;
  if (n < need)
    return wire__fail(r);
  *extra = n - need;
  return 0;
}

/* Finishes decoding: skips the extra fields; the payload must end there. */
static int wire__pm_close(mp_reader *r, uint32_t extra) {
  for (uint32_t i = 0; i < extra; i++)
    if (mp_skip(r))
      return KV_EPROTO;
  return r->err || r->p != r->end ? KV_EPROTO : 0;
}

/* Starts encoding into out: KV_ENOMEM when out already failed. */
static int wire__pm_begin(kvbuf *out, msgpack_packer *pk, size_t *start,
                          size_t reserve) {
  if (out->oom || kvbuf_reserve(out, reserve))
    return KV_ENOMEM;
  *start = out->len;
  mp_packer_init(pk, out);
  return 0;
}

/* Finishes encoding: on a failed growth the partial payload is removed. */
static int wire__pm_end(kvbuf *out, size_t start) {
  if (out->oom) {
    if (start < out->len)
      out->len = start;
    return KV_ENOMEM;
  }
  return 0;
}

static void wire__pm_pack_list(kvbuf *out, msgpack_packer *pk,
                               const wire_pm_list *l) {
  msgpack_pack_array(pk, l->count);
  if (l->items.len)
    kvbuf_append(out, l->items.ptr, l->items.len);
}

static void wire__pack_bool(msgpack_packer *pk, bool v) {
  if (v)
    msgpack_pack_true(pk);
  else
    msgpack_pack_false(pk);
}

/* ---- HINT_PUT ---- */

int wire_pm_encode_hint_put(kvbuf *out, const wire_pm_hint_put *m) {
  if (!wire__pm_name_ok(m->owner) || !wire__slice_ok(m->key) ||
      m->key.len > KV_KEY_MAX || !wire__slice_ok(m->object))
    return KV_EINVAL;
  msgpack_packer pk;
  size_t start;
  if (wire__pm_begin(out, &pk, &start,
                     WIRE__FIXED_RESERVE + m->owner.len + m->key.len +
                         m->object.len))
    return KV_ENOMEM;
  msgpack_pack_array(&pk, 4);
  wire__pack_str(&pk, m->owner);
  wire__pack_bin(&pk, m->key);
  wire__pack_bin(&pk, m->object);
  wire__pack_bool(&pk, m->durable);
  return wire__pm_end(out, start);
}

int wire_pm_decode_hint_put(const uint8_t *p, size_t len,
                            wire_pm_hint_put *out) {
  memset(out, 0, sizeof(*out));
  mp_reader r;
  uint32_t extra;
  if (wire__pm_open(&r, p, len, 4, &extra) || mp_read_str(&r, &out->owner))
    return KV_EPROTO;
  if (!wire__pm_name_ok(out->owner))
    return wire__fail(&r);
  if (wire__pm_key(&r, &out->key) || mp_read_bytes(&r, &out->object) ||
      mp_read_bool(&r, &out->durable))
    return KV_EPROTO;
  return wire__pm_close(&r, extra);
}

/* ---- AAE_BRANCHES ---- */

int wire_pm_encode_aae_branches(kvbuf *out, const wire_pm_aae_branches *m) {
  msgpack_packer pk;
  size_t start;
  if (wire__pm_begin(out, &pk, &start, 16 + 9 * WIRE_AAE_BRANCHES))
    return KV_ENOMEM;
  msgpack_pack_array(&pk, 2);
  msgpack_pack_uint32(&pk, m->part);
  msgpack_pack_array(&pk, WIRE_AAE_BRANCHES);
  for (uint32_t b = 0; b < WIRE_AAE_BRANCHES; b++)
    msgpack_pack_uint64(&pk, m->branch[b]);
  return wire__pm_end(out, start);
}

int wire_pm_decode_aae_branches(const uint8_t *p, size_t len,
                                wire_pm_aae_branches *out) {
  memset(out, 0, sizeof(*out));
  mp_reader r;
  uint32_t extra, n;
  if (wire__pm_open(&r, p, len, 2, &extra) || mp_read_u32(&r, &out->part) ||
      mp_read_array(&r, &n))
    return KV_EPROTO;
  if (n != WIRE_AAE_BRANCHES)
    return wire__fail(&r);
  for (uint32_t b = 0; b < WIRE_AAE_BRANCHES; b++)
    if (mp_read_uint(&r, &out->branch[b]))
      return KV_EPROTO;
  return wire__pm_close(&r, extra);
}

/* ---- AAE_LEAVES ---- */

/* Number of bits set in v. */
static uint32_t wire__popcount64(uint64_t v) {
  uint32_t n = 0;
  for (; v; v &= v - 1)
    n++;
  return n;
}

int wire_pm_encode_aae_leaves(kvbuf *out, const wire_pm_aae_leaves *m) {
  uint32_t nb = wire__popcount64(m->branches);
  msgpack_packer pk;
  size_t start;
  if (wire__pm_begin(out, &pk, &start,
                     16 + (size_t)nb * (8 + 9 * WIRE_AAE_LEAVES_PER_BRANCH)))
    return KV_ENOMEM;
  msgpack_pack_array(&pk, 2);
  msgpack_pack_uint32(&pk, m->part);
  msgpack_pack_array(&pk, nb);
  for (uint32_t b = 0; b < WIRE_AAE_BRANCHES; b++) {
    if (!((m->branches >> b) & 1u))
      continue;
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint32(&pk, b);
    msgpack_pack_array(&pk, WIRE_AAE_LEAVES_PER_BRANCH);
    for (uint32_t l = 0; l < WIRE_AAE_LEAVES_PER_BRANCH; l++)
      msgpack_pack_uint64(&pk, m->leaf[b * WIRE_AAE_LEAVES_PER_BRANCH + l]);
  }
  return wire__pm_end(out, start);
}

int wire_pm_decode_aae_leaves(const uint8_t *p, size_t len,
                              wire_pm_aae_leaves *out) {
  memset(out, 0, sizeof(*out));
  mp_reader r;
  uint32_t extra, n;
  if (wire__pm_open(&r, p, len, 2, &extra) || mp_read_u32(&r, &out->part) ||
      mp_read_array(&r, &n))
    return KV_EPROTO;
  if (n > WIRE_AAE_BRANCHES)
    return wire__fail(&r);
  for (uint32_t i = 0; i < n; i++) {
    uint32_t two, b, nl;
    if (mp_read_array(&r, &two))
      return KV_EPROTO;
    if (two != 2)
      return wire__fail(&r);
    if (mp_read_u32(&r, &b))
      return KV_EPROTO;
    /* Strictly ascending: each branch at most once. */
    if (b >= WIRE_AAE_BRANCHES || (out->branches >> b) != 0)
      return wire__fail(&r);
    if (mp_read_array(&r, &nl))
      return KV_EPROTO;
    if (nl != WIRE_AAE_LEAVES_PER_BRANCH)
      return wire__fail(&r);
    for (uint32_t l = 0; l < WIRE_AAE_LEAVES_PER_BRANCH; l++)
      if (mp_read_uint(&r, &out->leaf[b * WIRE_AAE_LEAVES_PER_BRANCH + l]))
        return KV_EPROTO;
    out->branches |= 1u << b;
  }
  return wire__pm_close(&r, extra);
}

/* ---- AAE_KEYS ---- */

int wire_pm_encode_aae_keys(kvbuf *out, const wire_pm_aae_keys *m) {
  if (!wire__pm_list_ok(&m->keys, WIRE_AAE_KEYS_MAX, WIRE__KEY_HASH, true))
    return KV_EINVAL;
  uint32_t nsegs = 0;
  for (uint32_t i = 0; i < WIRE_AAE_SEGMENTS / 64; i++)
    nsegs += wire__popcount64(m->segs[i]);
  msgpack_packer pk;
  size_t start;
  if (wire__pm_begin(out, &pk, &start,
                     24 + 3 * (size_t)nsegs + m->keys.items.len))
    return KV_ENOMEM;
  msgpack_pack_array(&pk, 3);
  msgpack_pack_uint32(&pk, m->part);
  msgpack_pack_array(&pk, nsegs);
  for (uint32_t s = 0; s < WIRE_AAE_SEGMENTS; s++)
    if ((m->segs[s / 64] >> (s % 64)) & 1u)
      msgpack_pack_uint32(&pk, s);
  wire__pm_pack_list(out, &pk, &m->keys);
  return wire__pm_end(out, start);
}

int wire_pm_decode_aae_keys(const uint8_t *p, size_t len,
                            wire_pm_aae_keys *out) {
  memset(out, 0, sizeof(*out));
  mp_reader r;
  uint32_t extra, n;
  if (wire__pm_open(&r, p, len, 3, &extra) || mp_read_u32(&r, &out->part) ||
      mp_read_array(&r, &n))
    return KV_EPROTO;
  if (n > WIRE_AAE_SEGMENTS)
    return wire__fail(&r);
  for (uint32_t i = 0, prev = 0; i < n; i++) {
    uint32_t s;
    if (mp_read_u32(&r, &s))
      return KV_EPROTO;
    if (s >= WIRE_AAE_SEGMENTS || (i > 0 && s <= prev))
      return wire__fail(&r);
    out->segs[s / 64] |= 1ull << (s % 64);
    prev = s;
  }
  if (wire__pm_list(&r, WIRE_AAE_KEYS_MAX, WIRE__KEY_HASH, true, &out->keys))
    return KV_EPROTO;
  return wire__pm_close(&r, extra);
}

/* ---- AAE_OBJS ---- */

int wire_pm_encode_aae_objs(kvbuf *out, const wire_pm_aae_objs *m) {
  if (!wire__pm_list_ok(&m->objs, WIRE_AAE_KEYS_MAX, WIRE__KEY_OBJECT,
                        false) ||
      !wire__pm_list_ok(&m->want, WIRE_AAE_KEYS_MAX, WIRE__KEY, false))
    return KV_EINVAL;
  msgpack_packer pk;
  size_t start;
  if (wire__pm_begin(out, &pk, &start,
                     24 + m->objs.items.len + m->want.items.len))
    return KV_ENOMEM;
  msgpack_pack_array(&pk, 3);
  msgpack_pack_uint32(&pk, m->part);
  wire__pm_pack_list(out, &pk, &m->objs);
  wire__pm_pack_list(out, &pk, &m->want);
  return wire__pm_end(out, start);
}

int wire_pm_decode_aae_objs(const uint8_t *p, size_t len,
                            wire_pm_aae_objs *out) {
  memset(out, 0, sizeof(*out));
  mp_reader r;
  uint32_t extra;
  if (wire__pm_open(&r, p, len, 3, &extra) || mp_read_u32(&r, &out->part) ||
      wire__pm_list(&r, WIRE_AAE_KEYS_MAX, WIRE__KEY_OBJECT, false,
                    &out->objs) ||
      wire__pm_list(&r, WIRE_AAE_KEYS_MAX, WIRE__KEY, false, &out->want))
    return KV_EPROTO;
  return wire__pm_close(&r, extra);
}

/* ---- HANDOFF ---- */

int wire_pm_encode_handoff(kvbuf *out, const wire_pm_handoff *m) {
  if (!wire__pm_list_ok(&m->objs, WIRE_HANDOFF_BATCH_MAX, WIRE__KEY_OBJECT,
                        false))
    return KV_EINVAL;
  msgpack_packer pk;
  size_t start;
  if (wire__pm_begin(out, &pk, &start, 24 + m->objs.items.len))
    return KV_ENOMEM;
  msgpack_pack_array(&pk, 3);
  msgpack_pack_uint32(&pk, m->part);
  wire__pm_pack_list(out, &pk, &m->objs);
  wire__pack_bool(&pk, m->last);
  return wire__pm_end(out, start);
}

int wire_pm_decode_handoff(const uint8_t *p, size_t len,
                           wire_pm_handoff *out) {
  memset(out, 0, sizeof(*out));
  mp_reader r;
  uint32_t extra;
  if (wire__pm_open(&r, p, len, 3, &extra) || mp_read_u32(&r, &out->part) ||
      wire__pm_list(&r, WIRE_HANDOFF_BATCH_MAX, WIRE__KEY_OBJECT, false,
                    &out->objs) ||
      mp_read_bool(&r, &out->last))
    return KV_EPROTO;
  return wire__pm_close(&r, extra);
}

/* ---- HANDOFF_ACK ---- */

int wire_pm_encode_handoff_ack(kvbuf *out, const wire_pm_handoff_ack *m) {
  if (m->count > WIRE_HANDOFF_BATCH_MAX)
    return KV_EINVAL;
  msgpack_packer pk;
  size_t start;
  if (wire__pm_begin(out, &pk, &start, 16))
    return KV_ENOMEM;
  msgpack_pack_array(&pk, 2);
  msgpack_pack_uint32(&pk, m->part);
  msgpack_pack_uint32(&pk, m->count);
  return wire__pm_end(out, start);
}

int wire_pm_decode_handoff_ack(const uint8_t *p, size_t len,
                               wire_pm_handoff_ack *out) {
  memset(out, 0, sizeof(*out));
  mp_reader r;
  uint32_t extra;
  if (wire__pm_open(&r, p, len, 2, &extra) || mp_read_u32(&r, &out->part) ||
      mp_read_u32(&r, &out->count))
    return KV_EPROTO;
  if (out->count > WIRE_HANDOFF_BATCH_MAX)
    return wire__fail(&r);
  return wire__pm_close(&r, extra);
}

/* ---- REAP ---- */

int wire_pm_encode_reap(kvbuf *out, const wire_pm_reap *m) {
  if (!wire__slice_ok(m->key) || m->key.len > KV_KEY_MAX ||
      !wire__slice_ok(m->object))
    return KV_EINVAL;
  msgpack_packer pk;
  size_t start;
  if (wire__pm_begin(out, &pk, &start,
                     WIRE__FIXED_RESERVE + m->key.len + m->object.len))
    return KV_ENOMEM;
  msgpack_pack_array(&pk, 3);
  msgpack_pack_uint32(&pk, m->part);
  wire__pack_bin(&pk, m->key);
  wire__pack_bin(&pk, m->object);
  return wire__pm_end(out, start);
}

int wire_pm_decode_reap(const uint8_t *p, size_t len, wire_pm_reap *out) {
  memset(out, 0, sizeof(*out));
  mp_reader r;
  uint32_t extra;
  if (wire__pm_open(&r, p, len, 3, &extra) || mp_read_u32(&r, &out->part) ||
      wire__pm_key(&r, &out->key) || mp_read_bytes(&r, &out->object))
    return KV_EPROTO;
  return wire__pm_close(&r, extra);
}

/* ---- dispatch ---- */

int wire_pm_encode(kvbuf *out, const wire_pm *m) {
  switch (m->kind) {
#define WIRE__PM_ENC(name, num, str, field)                                    \
  case (num):                                                                  \
    return wire_pm_encode_##field(out, &m->field);
    WIRE_PM_MAP(WIRE__PM_ENC)
#undef WIRE__PM_ENC
  default:
    return KV_EINVAL;
  }
}

int wire_pm_decode(uint32_t kind, const uint8_t *p, size_t len,
                   wire_pm *out) {
  out->kind = kind;
  switch (kind) {
#define WIRE__PM_DEC(name, num, str, field)                                    \
  case (num):                                                                  \
    return wire_pm_decode_##field(p, len, &out->field);
    WIRE_PM_MAP(WIRE__PM_DEC)
#undef WIRE__PM_DEC
  default:
    return KV_EUNKNOWN;
  }
}

int wire_encode_pm(kvbuf *out, uint64_t req_id, const wire_pm *m) {
  if (out->oom)
    return KV_ENOMEM;
  kvbuf pl;
  kvbuf_init(&pl);
  int rc = wire_pm_encode(&pl, m);
  if (rc == 0) {
    wire_msg f;
    memset(&f, 0, sizeof(f));
    f.type = WIRE_PEER_MSG;
    f.req_id = req_id;
    f.flags = m->kind;
    f.raw.ptr = pl.data;
    f.raw.len = pl.len;
    rc = wire_encode(out, &f);
  }
  kvbuf_free(&pl);
  return rc;
}

/* ---- list builders and iterators ---- */

void wire_pm_items_init(wire_pm_items *b) {
  kvbuf_init(&b->buf);
  b->count = 0;
}

void wire_pm_items_free(wire_pm_items *b) {
  kvbuf_free(&b->buf);
  b->count = 0;
}

void wire_pm_items_reset(wire_pm_items *b) {
  b->buf.len = 0;
  b->buf.oom = 0;
  b->count = 0;
}

/* Checks an element's key before it is added. */
static int wire__items_check(const wire_pm_items *b, const void *key,
                             size_t klen) {
  if (klen > KV_KEY_MAX || (klen && !key) || b->count == UINT32_MAX)
    return KV_EINVAL;
  return b->buf.oom ? KV_ENOMEM : 0;
}

/* Counts the element just packed, or removes it after a failed growth. */
static int wire__items_done(wire_pm_items *b, size_t start) {
  if (b->buf.oom) {
    if (start < b->buf.len)
      b->buf.len = start;
    return KV_ENOMEM;
  }
  b->count++;
  return 0;
}

int wire_pm_items_add_key_hash(wire_pm_items *b, const void *key, size_t klen,
                               uint64_t hash) {
  int rc = wire__items_check(b, key, klen);
  if (rc)
    return rc;
  size_t start = b->buf.len;
  msgpack_packer pk;
  mp_packer_init(&pk, &b->buf);
  msgpack_pack_array(&pk, 2);
  mp_pack_bin(&pk, key, klen);
  msgpack_pack_uint64(&pk, hash);
  return wire__items_done(b, start);
}

int wire_pm_items_add_key_object(wire_pm_items *b, const void *key,
                                 size_t klen, const void *object,
                                 size_t olen) {
  int rc = wire__items_check(b, key, klen);
  if (rc)
    return rc;
  if (olen && !object)
    return KV_EINVAL;
  size_t start = b->buf.len;
  msgpack_packer pk;
  mp_packer_init(&pk, &b->buf);
  msgpack_pack_array(&pk, 2);
  mp_pack_bin(&pk, key, klen);
  mp_pack_bin(&pk, object, olen);
  return wire__items_done(b, start);
}

int wire_pm_items_add_key(wire_pm_items *b, const void *key, size_t klen) {
  int rc = wire__items_check(b, key, klen);
  if (rc)
    return rc;
  size_t start = b->buf.len;
  msgpack_packer pk;
  mp_packer_init(&pk, &b->buf);
  mp_pack_bin(&pk, key, klen);
  return wire__items_done(b, start);
}

wire_pm_list wire_pm_items_list(const wire_pm_items *b) {
  wire_pm_list l;
  l.count = b->count;
  l.items.ptr = b->buf.data;
  l.items.len = b->buf.len;
  return l;
}

void wire_pm_iter_init(wire_pm_iter *it, const wire_pm_list *l) {
  wire__reader(&it->r, l->items.ptr, l->items.len);
  it->left = l->count;
}

/* Reads the next element of shape. */
static int wire__pm_next(wire_pm_iter *it, wire__shape shape, kv_slice *key,
                         kv_slice *object, uint64_t *hash) {
  if (it->r.err)
    return KV_EPROTO;
  if (it->left == 0)
    return KV_ENOTFOUND;
  if (wire__pm_elem(&it->r, shape, key, object, hash))
    return wire__fail(&it->r);
  it->left--;
  return 0;
}

int wire_pm_next_key_hash(wire_pm_iter *it, wire_pm_key_hash *out) {
  kv_slice object;
  return wire__pm_next(it, WIRE__KEY_HASH, &out->key, &object, &out->hash);
}

int wire_pm_next_key_object(wire_pm_iter *it, wire_pm_key_object *out) {
  uint64_t hash;
  return wire__pm_next(it, WIRE__KEY_OBJECT, &out->key, &out->object, &hash);
}

int wire_pm_next_key(wire_pm_iter *it, kv_slice *out) {
  kv_slice object;
  uint64_t hash;
  return wire__pm_next(it, WIRE__KEY, out, &object, &hash);
}
