/*
 * wire.c: framing and message codecs of the kvorum wire protocol (see
 * wire.h and docs/protocol.md); the PEER_MSG payload codecs are in
 * wire_pm.c.
 *
 * Decoding walks the body once with the bounded reader of mp.h and never
 * allocates: every slice of a decoded message points into the body.
 * Encoding reserves the 4-byte header, packs the body with msgpack-c's
 * packer straight into the caller's kvbuf, then patches the length.
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
    else if (WIRE__KEY_IS(k, "ttl"))
      rc = mp_read_uint(r, &o->ttl_ms);
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
  out->expires_ms = 0;
  if (n >= 4 && mp_read_uint(r, &out->expires_ms))
    return KV_EPROTO;
  for (uint32_t i = n >= 4 ? 4 : 3; i < n; i++)
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
  /* A typed PUT_OK's trailing state (bin) and result [added, removed,
   * value]. */
  if (type == WIRE_PUT_OK && nf >= (uint32_t)need + 2) {
    uint32_t k;
    if (mp_read_bytes(&r, &msg->value) || mp_read_array(&r, &k) || k != 3 ||
        mp_read_int(&r, &msg->result[0]) || mp_read_int(&r, &msg->result[1]) ||
        mp_read_int(&r, &msg->result[2]))
      return KV_EPROTO;
    need += 2;
  }
  /* HELLO's optional credentials: user (str), secret (bin or str). */
  if (type == WIRE_HELLO && nf >= (uint32_t)need + 2) {
    if (mp_read_str(&r, &msg->user) || msg->user.len > WIRE_USER_MAX)
      return KV_EPROTO;
    if (mp_peek(&r) == MP_STR ? mp_read_str(&r, &msg->secret)
                              : mp_read_bytes(&r, &msg->secret))
      return KV_EPROTO;
    if (msg->secret.len > WIRE_SECRET_MAX)
      return KV_EPROTO;
    need += 2;
  }
  /* REPL_PUT's base (uint), which WIRE_REPL_BASE announces. */
  if (type == WIRE_REPL_PUT && (msg->flags & WIRE_REPL_BASE)) {
    if (nf > (uint32_t)need) {
      if (mp_read_uint(&r, &msg->base_hash))
        return KV_EPROTO;
      need++;
    } else {
      msg->flags &= ~WIRE_REPL_BASE;
    }
  }
  /* HELLO_OK's optional server version (str). */
  if (type == WIRE_HELLO_OK && nf > (uint32_t)need) {
    if (mp_read_str(&r, &msg->server_version) ||
        msg->server_version.len >= WIRE_NAME_MAX)
      return KV_EPROTO;
    need++;
  }
  /* Fields added by later versions are skipped. */
  for (uint32_t i = (uint32_t)need; i < nf; i++)
    if (mp_skip(&r))
      return KV_EPROTO;
  if (r.err || r.p != r.end)
    return KV_EPROTO;
  return 0;
}

int wire_peek(const uint8_t *body, size_t len, uint32_t *type,
              uint64_t *req_id) {
  mp_reader r;
  uint32_t n;
  mp_reader_init(&r, body, len);
  if (mp_read_array(&r, &n) || n < 2 || mp_read_u32(&r, type) ||
      mp_read_uint(&r, req_id))
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
         (o->region.len != 0) + (o->ttl_ms != 0);
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
  if (o->ttl_ms) {
    mp_pack_cstr(pk, "ttl");
    msgpack_pack_uint64(pk, o->ttl_ms);
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
               m->region.len + m->raw.len + m->opts.region.len + m->user.len +
               m->secret.len + m->server_version.len;
  if (kvbuf_reserve(out, est))
    return KV_ENOMEM;
  msgpack_packer pk;
  size_t start;
  /* Two trailing fields: HELLO's credentials, a typed PUT_OK's state. */
  bool pair = (m->type == WIRE_HELLO && m->user.ptr) ||
              (m->type == WIRE_PUT_OK && m->value.ptr);
  bool server = m->type == WIRE_HELLO_OK && m->server_version.ptr;
  bool base = m->type == WIRE_REPL_PUT && (m->flags & WIRE_REPL_BASE);
  wire_begin(out, &pk, &start, m->type, m->req_id,
             (uint32_t)need + (pair ? 2u : 0u) + (server || base ? 1u : 0u));
  switch (m->type) {
  case WIRE_HELLO:
    msgpack_pack_uint64(&pk, m->version);
    wire__pack_str(&pk, m->text);
    if (pair) {
      wire__pack_str(&pk, m->user);
      wire__pack_bin(&pk, m->secret);
    }
    break;
  case WIRE_HELLO_OK:
    msgpack_pack_uint64(&pk, m->version);
    wire__pack_str(&pk, m->text);
    msgpack_pack_uint32(&pk, m->partitions);
    wire__pack_str(&pk, m->region);
    if (server)
      wire__pack_str(&pk, m->server_version);
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
    if (pair) { /* a typed put's state and result */
      wire__pack_bin(&pk, m->value);
      msgpack_pack_array(&pk, 3);
      for (int i = 0; i < 3; i++)
        msgpack_pack_int64(&pk, m->result[i]);
    }
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
    if (base)
      msgpack_pack_uint64(&pk, m->base_hash);
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
  wire_add_sibling_exp(w, flags, ts_ms, 0, value, len);
}

void wire_add_sibling_exp(wire_get_ok_writer *w, uint32_t flags,
                          uint64_t ts_ms, uint64_t expires_ms,
                          const void *value, size_t len) {
  w->added++;
  kvbuf_reserve(w->out, WIRE__FIXED_RESERVE + len);
  msgpack_pack_array(&w->pk, expires_ms ? 4 : 3);
  msgpack_pack_uint32(&w->pk, flags);
  msgpack_pack_uint64(&w->pk, ts_ms);
  mp_pack_bin(&w->pk, value, len);
  if (expires_ms)
    msgpack_pack_uint64(&w->pk, expires_ms);
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
