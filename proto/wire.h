/*
 * wire.h: kvorum's wire protocol: framing and message codecs, shared by the
 * node (kvorumd) and the client library. docs/protocol.md is the
 * specification; this file follows it.
 *
 * A frame is a 4-byte big-endian body length followed by a msgpack body.
 * Every body is one msgpack array [type, req_id, fields...] whose fields
 * depend on type (the WIRE_MSG_MAP list below, one place for the enum, the
 * names and the decoder dispatch). Decoding is zero-copy: slices in a
 * decoded wire_msg point into the frame body and live as long as it does.
 *
 * Limits are checked before anything is allocated: the frame length against
 * WIRE_FRAME_MAX (or the caller's smaller maximum), keys against
 * KV_KEY_MAX, values against the caller's value maximum, every count
 * against the bytes that remain (mp.h).
 * Depends on: mp.h, kv_err.h.
 */
#ifndef KV_WIRE_H
#define KV_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mp.h"

#define WIRE_PROTOCOL_VERSION 1
#define WIRE_HEADER_BYTES 4
#define KV_KEY_MAX (64u * 1024u)                /* bytes */
#define KV_VALUE_MAX_DEFAULT (1024u * 1024u)    /* bytes, configurable */
#define WIRE_FRAME_MAX (16u * 1024u * 1024u)    /* absolute cap on a body */
#define WIRE_ERRMSG_MAX 512                     /* bytes of an error text */
#define WIRE_NAME_MAX 64                        /* node ids, regions, zones */

/*
 * X(NAME, number, "name"). Numbers are stable wire values.
 * Client messages (1..31) travel between clients and any node; peer
 * messages (32..) only between nodes, on the peer port.
 *
 * Fields after [type, req_id], in order:
 *   HELLO        version:uint, agent:str
 *   HELLO_OK     version:uint, node_id:str, partitions:uint (Q), region:str
 *   ERROR        code:int (KV_E*), message:str
 *   GET          key:bin, opts:map
 *   GET_OK       siblings:[[flags:uint, ts_ms:uint, value:bin]...], context:bin
 *                (no siblings = not found; a tombstone has WIRE_SIB_DELETED
 *                set and an empty value)
 *   PUT          key:bin, value:bin, context:bin|nil, opts:map
 *   PUT_OK       context:bin
 *   DEL          key:bin, context:bin|nil, opts:map
 *   DEL_OK       context:bin
 *   ADMIN        command:str, args:map   (status, ring, stats, join, leave,
 *                remove, transfers, ...)
 *   ADMIN_OK     result: any msgpack object (rendered as JSON by the CLI)
 *   PEER_HELLO   version:uint, node_id:str, incarnation:uint
 *   REPL_PUT     key:bin, object:bin (encoded obj, storage/obj.h), flags:uint
 *                (WIRE_REPL_DURABLE: ack after fsync)
 *   REPL_PUT_OK  (nothing)            -- errors come back as ERROR
 *   REPL_GET     key:bin
 *   REPL_GET_OK  object:bin|nil       (nil: no such key on this replica)
 *   COORD_PUT    key:bin, value:bin, context:bin|nil, opts:map, flags:uint
 *                (WIRE_COORD_DELETE) -- a client write forwarded to a replica
 *                that will coordinate it; answered with PUT_OK or ERROR
 *   GOSSIP       payload:bin (gossip/gossip.h encodes it)
 *   PEER_MSG     kind:uint, payload:bin (extension point for handoff/AAE)
 */
#define WIRE_MSG_MAP(X)                                                        \
  X(HELLO, 1, "hello")                                                         \
  X(HELLO_OK, 2, "hello_ok")                                                   \
  X(ERROR, 3, "error")                                                         \
  X(GET, 4, "get")                                                             \
  X(GET_OK, 5, "get_ok")                                                       \
  X(PUT, 6, "put")                                                             \
  X(PUT_OK, 7, "put_ok")                                                       \
  X(DEL, 8, "del")                                                             \
  X(DEL_OK, 9, "del_ok")                                                       \
  X(ADMIN, 10, "admin")                                                        \
  X(ADMIN_OK, 11, "admin_ok")                                                  \
  X(PEER_HELLO, 32, "peer_hello")                                              \
  X(REPL_PUT, 33, "repl_put")                                                  \
  X(REPL_PUT_OK, 34, "repl_put_ok")                                            \
  X(REPL_GET, 35, "repl_get")                                                  \
  X(REPL_GET_OK, 36, "repl_get_ok")                                            \
  X(COORD_PUT, 37, "coord_put")                                                \
  X(GOSSIP, 40, "gossip")                                                      \
  X(PEER_MSG, 41, "peer_msg")

typedef enum wire_type {
  WIRE_NONE = 0,
#define WIRE__TYPE_ENUM(name, num, str) WIRE_##name = (num),
  WIRE_MSG_MAP(WIRE__TYPE_ENUM)
#undef WIRE__TYPE_ENUM
} wire_type;

/* Returns the protocol name of a type ("get"), or "unknown". */
const char *wire_type_name(uint32_t type);

/* Consistency levels inside opts: a positive number means that many
 * replicas; 0 means "the cluster default"; the negative values are names. */
enum {
  WIRE_Q_DEFAULT = 0,
  WIRE_Q_ONE = -1,
  WIRE_Q_QUORUM = -2,
  WIRE_Q_ALL = -3,
  WIRE_Q_LOCAL_ONE = -4,
  WIRE_Q_LOCAL_QUORUM = -5,
  WIRE_Q_EACH_QUORUM = -6,
};
/* Largest replica count wire_parse_quorum accepts as a number. */
#define WIRE_Q_NUMBER_MAX 255
/* Parses "one|quorum|all|local_one|local_quorum|each_quorum|default|
 * <number>" (names case-insensitive, numbers 0..WIRE_Q_NUMBER_MAX).
 * Returns 0 and sets *out, or KV_EINVAL. */
int wire_parse_quorum(const char *s, int32_t *out);
/* Writes the name of q ("quorum", "2", "default") into buf and returns
 * buf ("" when cap is 0). */
const char *wire_quorum_str(int32_t q, char *buf, size_t cap);

/* Option flags. */
#define WIRE_OPT_SLOPPY 0x1u  /* sloppy quorum allowed (default on) */
#define WIRE_OPT_LOCAL 0x2u   /* get: read only this node's replica */
#define WIRE_OPT_NO_SLOPPY 0x4u /* explicit --no-sloppy */

/* Request options; encoded as a msgpack map with short keys ("r", "w",
 * "dw", "pr", "pw", "t" timeout_ms, "f" flags, "rg" client region). Absent
 * keys mean default (0). Unknown keys are ignored (forward compatibility). */
typedef struct wire_opts {
  int32_t r, w, dw, pr, pw;
  uint32_t timeout_ms; /* 0: server default */
  uint32_t flags;      /* WIRE_OPT_* */
  kv_slice region;     /* client's region (may be empty) */
} wire_opts;

#define WIRE_SIB_DELETED 0x1u
#define WIRE_REPL_DURABLE 0x1u
#define WIRE_COORD_DELETE 0x1u

/* One decoded message. Only the fields of its type are meaningful; slices
 * point into the decoded body. */
typedef struct wire_msg {
  uint32_t type;
  uint64_t req_id;
  uint64_t version;     /* HELLO, HELLO_OK, PEER_HELLO */
  uint64_t incarnation; /* PEER_HELLO */
  uint32_t partitions;  /* HELLO_OK */
  uint32_t flags;       /* REPL_PUT, COORD_PUT, PEER_MSG kind */
  int32_t code;         /* ERROR */
  kv_slice key;
  kv_slice value;
  kv_slice context;     /* ptr NULL when nil/absent */
  kv_slice object;      /* REPL_PUT, REPL_GET_OK (ptr NULL when nil) */
  kv_slice text;        /* ERROR message, HELLO agent, ADMIN command,
                           HELLO_OK / PEER_HELLO node id */
  kv_slice region;      /* HELLO_OK */
  kv_slice raw;         /* ADMIN args map, ADMIN_OK result, GOSSIP and
                           PEER_MSG payload, GET_OK siblings array */
  uint32_t nsiblings;   /* GET_OK */
  wire_opts opts;       /* GET, PUT, DEL, COORD_PUT */
} wire_msg;

/* One sibling of a GET_OK, read with wire_sibling_next. */
typedef struct wire_sibling {
  uint32_t flags; /* WIRE_SIB_* */
  uint64_t ts_ms;
  kv_slice value;
} wire_sibling;

/* Limits a decoder enforces. */
typedef struct wire_limits {
  uint32_t frame_max; /* <= WIRE_FRAME_MAX */
  uint32_t value_max; /* KV_VALUE_MAX_DEFAULT unless configured */
} wire_limits;
extern const wire_limits wire_limits_default;

/*
 * Framing. wire_frame_check looks at the bytes received so far:
 * returns 0 when a whole frame is present (*body_len set, the body starts
 * at buf + WIRE_HEADER_BYTES), KV_EBUSY when more bytes are needed
 * (*body_len set once the header is complete), KV_ETOOBIG when the header
 * announces a body larger than limits->frame_max (the connection must be
 * closed: the stream cannot be resynchronised).
 */
int wire_frame_check(const uint8_t *buf, size_t len, const wire_limits *lim,
                     uint32_t *body_len);

/*
 * Decodes one body. Returns 0, KV_EPROTO (malformed; *msg->type and
 * req_id are filled when they could be read, so an ERROR can be answered),
 * KV_ETOOBIG (a key or value over its limit), or KV_EUNKNOWN (well-formed
 * but unknown type).
 */
int wire_decode(const uint8_t *body, size_t len, const wire_limits *lim,
                wire_msg *msg);

/* Iterates the siblings of a GET_OK: call with a reader over msg->raw after
 * mp_read_array; returns 0 or KV_EPROTO. */
int wire_sibling_next(mp_reader *r, wire_sibling *out);

/*
 * Encoders append one whole frame (header + body) to out. They return 0,
 * KV_ENOMEM, KV_ETOOBIG (body over WIRE_FRAME_MAX) or, for wire_encode,
 * KV_EINVAL (unknown type); on error nothing of the frame stays in out.
 * The encoder of each type writes the fields listed above; wire_encode
 * takes a wire_msg with the fields of msg->type set. raw is copied as
 * encoded msgpack for ADMIN (empty: {}), ADMIN_OK (empty: nil) and GET_OK
 * (empty: []), and packed as a bin for GOSSIP and PEER_MSG. A context or
 * object whose ptr is NULL is sent as nil where the field allows nil. For
 * GET_OK use wire_begin_get_ok / wire_add_sibling / wire_end_get_ok, which
 * stream siblings without an intermediate array.
 */
int wire_encode(kvbuf *out, const wire_msg *msg);
int wire_encode_error(kvbuf *out, uint64_t req_id, int code, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));

typedef struct wire_get_ok_writer {
  kvbuf *out;
  size_t frame_start;
  msgpack_packer pk;
  uint32_t nsiblings; /* announced by wire_begin_get_ok */
  uint32_t added;     /* wire_add_sibling calls so far */
} wire_get_ok_writer;
void wire_begin_get_ok(wire_get_ok_writer *w, kvbuf *out, uint64_t req_id,
                       uint32_t nsiblings);
void wire_add_sibling(wire_get_ok_writer *w, uint32_t flags, uint64_t ts_ms,
                      const void *value, size_t len);
/* Finishes the frame. Returns 0, KV_ENOMEM, KV_ETOOBIG (body over
 * WIRE_FRAME_MAX) or KV_EINVAL (a sibling count other than the one
 * announced); on error the partial frame is removed from out. */
int wire_end_get_ok(wire_get_ok_writer *w, const void *context, size_t len);

/* Lower-level helpers for messages with free-form bodies (ADMIN_OK):
 * wire_begin starts a frame and packs [type, req_id] plus nfields more
 * array slots into pk; wire_end patches the length. wire_end returns 0,
 * KV_ENOMEM or KV_ETOOBIG (body over WIRE_FRAME_MAX); on error the partial
 * frame is removed from out (out->oom stays set after KV_ENOMEM). */
void wire_begin(kvbuf *out, msgpack_packer *pk, size_t *frame_start,
                uint32_t type, uint64_t req_id, uint32_t nfields);
int wire_end(kvbuf *out, size_t frame_start);
void wire_pack_opts(msgpack_packer *pk, const wire_opts *o);

#endif
