/*
 * wire.h: kvorum's wire protocol: framing and message codecs, shared by the
 * node (kvorumd) and the client library. docs/protocol.md is the
 * specification; this file follows it.
 *
 * A frame is a 4-byte big-endian body length followed by a msgpack body.
 * Every body is one msgpack array [type, req_id, fields...] whose fields
 * depend on type (the WIRE_MSG_MAP list below, one place for the enum, the
 * names and the decoder dispatch). PEER_MSG frames carry node-to-node
 * payloads whose kinds and codecs come from a second list, WIRE_PM_MAP.
 * Decoding is zero-copy: slices in a decoded wire_msg (or wire_pm) point
 * into the frame body (or payload) and live as long as it does.
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
#define WIRE_SECRET_MAX 1024u /* bytes of a HELLO password */
#define WIRE_USER_MAX 64u      /* bytes of a HELLO user (AUTH_USER_MAX) */
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
 *   HELLO        version:uint, agent:str [, user:str, secret:bin]
 *                (the credentials when the node has --auth-file)
 *   HELLO_OK     version:uint, node_id:str, partitions:uint (Q), region:str
 *                [, server_version:str]  (the node's software version,
 *                "0.1.0"; nodes before it send none)
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
 *                (WIRE_REPL_DURABLE: ack after fsync) [, base:uint]
 *                (with WIRE_REPL_BASE: the XXH3-64 of the stored bytes the
 *                coordinator made the object from, 0 for none; a replica
 *                holding exactly those bytes stores the object as it is,
 *                since it descends them, without decoding and merging)
 *   REPL_PUT_OK  (nothing)            -- errors come back as ERROR
 *   REPL_GET     key:bin
 *   REPL_GET_OK  object:bin|nil       (nil: no such key on this replica)
 *   COORD_PUT    key:bin, value:bin, context:bin|nil, opts:map, flags:uint
 *                (WIRE_COORD_DELETE) -- a client write forwarded to a replica
 *                that will coordinate it; answered with PUT_OK or ERROR
 *   GOSSIP       payload:bin (gossip/gossip.h encodes it)
 *   PEER_MSG     kind:uint, payload:bin: a WIRE_PM_MAP kind and its payload
 *                (hints, anti-entropy, handoff, reaping; see below)
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

/*
 * PEER_MSG kinds: X(NAME, number, "name", field). The number travels in the
 * kind (wire_msg.flags) of a WIRE_PEER_MSG frame and is a stable wire value;
 * the payload (wire_msg.raw) is one msgpack array whose layout depends on
 * the kind. field names the payload's struct (wire_pm_<field>), its member
 * of wire_pm and its codec (wire_pm_encode_<field>, wire_pm_decode_<field>),
 * all declared under "Peer message payloads" below.
 *
 * Payload layouts (docs/protocol.md section 6), in order:
 *   HINT_PUT      [owner:str, key:bin, object:bin, durable:bool]
 *                 keep the write for owner (sloppy quorum); answered with
 *                 REPL_PUT_OK or ERROR
 *   AAE_BRANCHES  [part:uint, [hash:uint x WIRE_AAE_BRANCHES]]
 *                 answered with PEER_MSG AAE_LEAVES
 *   AAE_LEAVES    [part:uint, [[branch:uint, [hash:uint x
 *                 WIRE_AAE_LEAVES_PER_BRANCH]]...]]  branches ascending
 *   AAE_KEYS      [part:uint, [segment:uint...], [[key:bin, hash:uint]...]]
 *                 segments and keys ascending; answered with AAE_OBJS
 *   AAE_OBJS      [part:uint, [[key:bin, object:bin]...], [key:bin...]]
 *   HANDOFF       [part:uint, [[key:bin, object:bin]...], last:bool]
 *                 answered with REPL_PUT_OK (or ERROR)
 *   HANDOFF_ACK   [part:uint, count:uint]
 *   REAP          [part:uint, key:bin, object:bin]  no answer
 */
#define WIRE_PM_MAP(X)                                                         \
  X(HINT_PUT, 1, "hint_put", hint_put)                                         \
  X(AAE_BRANCHES, 10, "aae_branches", aae_branches)                            \
  X(AAE_LEAVES, 11, "aae_leaves", aae_leaves)                                  \
  X(AAE_KEYS, 12, "aae_keys", aae_keys)                                        \
  X(AAE_OBJS, 13, "aae_objs", aae_objs)                                        \
  X(HANDOFF, 20, "handoff", handoff)                                           \
  X(HANDOFF_ACK, 21, "handoff_ack", handoff_ack)                               \
  X(REAP, 30, "reap", reap)

typedef enum wire_pm_kind {
  WIRE_PM_NONE = 0,
#define WIRE__PM_ENUM(name, num, str, field) WIRE_PM_##name = (num),
  WIRE_PM_MAP(WIRE__PM_ENUM)
#undef WIRE__PM_ENUM
} wire_pm_kind;

/* Returns the protocol name of a PEER_MSG kind ("hint_put"), or
 * "unknown". */
const char *wire_pm_name(uint32_t kind);

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
/* put/del without a context: replace what the coordinating replica holds
 * (write with its current context), as a Redis SET does. Concurrent writes
 * and a replica that missed one still give siblings. */
#define WIRE_OPT_REPLACE 0x8u
/* put: the value is an operation on a data type (storage/crdt.h: a set,
 * counter or map the node merges), not bytes to store; PUT_OK then also
 * carries the new state and the operation's result (docs/data-types.md). */
#define WIRE_OPT_TYPED 0x10u

/* Request options; encoded as a msgpack map with short keys ("r", "w",
 * "dw", "pr", "pw", "t" timeout_ms, "f" flags, "rg" client region). Absent
 * keys mean default (0). Unknown keys are ignored (forward compatibility). */
typedef struct wire_opts {
  int32_t r, w, dw, pr, pw;
  uint32_t timeout_ms; /* 0: server default */
  uint32_t flags;      /* WIRE_OPT_* */
  uint64_t ttl_ms;     /* PUT: the value expires this long after it is
                          written (0: never; "ttl") */
  kv_slice region;     /* client's region (may be empty) */
} wire_opts;

#define WIRE_SIB_DELETED 0x1u
#define WIRE_SIB_TYPED 0x2u /* the value is a data type's merged state */
#define WIRE_REPL_DURABLE 0x1u
#define WIRE_REPL_BASE 0x2u /* REPL_PUT carries base (wire_msg.base_hash) */
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
  uint64_t base_hash;   /* REPL_PUT with WIRE_REPL_BASE */
  int32_t code;         /* ERROR */
  kv_slice key;
  kv_slice value;
  kv_slice context;     /* ptr NULL when nil/absent */
  kv_slice object;      /* REPL_PUT, REPL_GET_OK (ptr NULL when nil) */
  kv_slice user;        /* HELLO: the user (ptr NULL: no credentials) */
  kv_slice secret;      /* HELLO: the user's password */
  kv_slice text;        /* ERROR message, HELLO agent, ADMIN command,
                           HELLO_OK / PEER_HELLO node id */
  kv_slice region;      /* HELLO_OK */
  kv_slice server_version; /* HELLO_OK: the node's software version ("0.1.0";
                              ptr NULL: not sent, an older node) */
  kv_slice raw;         /* ADMIN args map, ADMIN_OK result, GOSSIP and
                           PEER_MSG payload, GET_OK siblings array */
  uint32_t nsiblings;   /* GET_OK */
  int64_t result[3];    /* PUT_OK of a typed put: what the operation did:
                           members or fields added, removed, and a
                           counter's value; its new state is in value */
  wire_opts opts;       /* GET, PUT, DEL, COORD_PUT */
} wire_msg;

/* One sibling of a GET_OK, read with wire_sibling_next. */
typedef struct wire_sibling {
  uint32_t flags; /* WIRE_SIB_* */
  uint64_t ts_ms;
  kv_slice value;
  uint64_t expires_ms; /* wall-clock ms it expires at; 0: never (an
                          optional fourth field) */
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

/* Reads only the type and req_id of a frame body (cheap: what a filter in
 * front of the core needs). Returns 0 or KV_EPROTO. */
int wire_peek(const uint8_t *body, size_t len, uint32_t *type,
              uint64_t *req_id);

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
/* The same for a value that expires at expires_ms (wall clock; 0: never). */
void wire_add_sibling_exp(wire_get_ok_writer *w, uint32_t flags,
                          uint64_t ts_ms, uint64_t expires_ms,
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

/* ==== Peer message payloads (PEER_MSG kinds, WIRE_PM_MAP) ====
 *
 * One struct per kind, an encoder that appends the payload (not a frame:
 * the payload travels as the raw bin of a WIRE_PEER_MSG frame whose flags
 * hold the kind; wire_encode_pm writes that frame in one call) and a
 * decoder that reads it back.
 *
 * Decoders take the payload bytes (ptr, len), never allocate and never read
 * outside them: every count is checked against the bytes that remain and
 * against its limit below, every key against KV_KEY_MAX. They fill their
 * struct with slices pointing into the payload (valid as long as it is) and
 * return 0 or KV_EPROTO (then the struct's contents are unspecified). They
 * accept str where bin is listed, any msgpack width of an integer, and
 * fields after the listed ones (skipped: later versions may add fields);
 * anything else, bytes after the array included, is KV_EPROTO.
 *
 * List-valued fields (wire_pm_list) are checked whole by the decoder and
 * then read lazily with an iterator (wire_pm_iter_init, wire_pm_next_*),
 * which cannot fail on a list its decoder accepted. To encode one, build
 * it with a wire_pm_items builder (one wire_pm_items_add_* call per
 * element, in order) and pass wire_pm_items_list().
 *
 * Encoders append the payload to out and return 0, KV_ENOMEM (out->oom
 * stays set) or KV_EINVAL (m breaks a rule its decoder checks: a count over
 * its limit, a key over KV_KEY_MAX, a list whose items are not count
 * elements of the right shape, segments or keys out of order, ...); on
 * error nothing is appended. What an encoder accepts, its decoder accepts
 * and decodes to the same values; re-encoding a decoded payload gives the
 * canonical bytes (the smallest msgpack forms, as node/ always produced).
 */

/* Limits of the anti-entropy tree exchanged on the wire. A tree has
 * WIRE_AAE_BRANCHES branches of WIRE_AAE_LEAVES_PER_BRANCH leaves each;
 * segment s is leaf s % WIRE_AAE_LEAVES_PER_BRANCH of branch
 * s / WIRE_AAE_LEAVES_PER_BRANCH. */
#define WIRE_AAE_BRANCHES 32u
#define WIRE_AAE_LEAVES_PER_BRANCH 32u
#define WIRE_AAE_SEGMENTS (WIRE_AAE_BRANCHES * WIRE_AAE_LEAVES_PER_BRANCH)
/* Most entries of any AAE_KEYS or AAE_OBJS list. */
#define WIRE_AAE_KEYS_MAX 100000u
/* Most objects of one HANDOFF batch (and the largest HANDOFF_ACK count). */
#define WIRE_HANDOFF_BATCH_MAX 1024u

/* A list field: count elements, their msgpack encodings back to back in
 * items (without the array header). In a decoded payload items points into
 * the payload. */
typedef struct wire_pm_list {
  uint32_t count;
  kv_slice items;
} wire_pm_list;

/* HINT_PUT: a replica write kept by a fallback for its owner. */
typedef struct wire_pm_hint_put {
  kv_slice owner;  /* node id: a str of 1..WIRE_NAME_MAX-1 bytes, no NUL */
  kv_slice key;    /* at most KV_KEY_MAX bytes */
  kv_slice object; /* an encoded stored object (storage/obj.h) */
  bool durable;    /* ack after fsync */
} wire_pm_hint_put;

/* AAE_BRANCHES: the sender's branch hashes of partition part. */
typedef struct wire_pm_aae_branches {
  uint32_t part;
  uint64_t branch[WIRE_AAE_BRANCHES];
} wire_pm_aae_branches;

/* AAE_LEAVES: the leaf hashes of the branches that differ. Branch b is in
 * the payload when bit b of branches is set; its leaves are
 * leaf[b * WIRE_AAE_LEAVES_PER_BRANCH ...]. The leaves of absent branches
 * are ignored by the encoder and zero after decoding. */
typedef struct wire_pm_aae_leaves {
  uint32_t part;
  uint32_t branches; /* bit b: branch b present */
  uint64_t leaf[WIRE_AAE_SEGMENTS];
} wire_pm_aae_leaves;

/* AAE_KEYS: the sender's keys of the differing segments. */
typedef struct wire_pm_aae_keys {
  uint32_t part;
  uint64_t segs[WIRE_AAE_SEGMENTS / 64]; /* bit s % 64 of segs[s / 64]:
                                            segment s differs */
  wire_pm_list keys; /* [key, hash] (wire_pm_next_key_hash), keys strictly
                        ascending (bytewise, a prefix first), at most
                        WIRE_AAE_KEYS_MAX */
} wire_pm_aae_keys;

/* AAE_OBJS: objects the sender holds differently or the receiver lacks,
 * and the keys the sender wants. */
typedef struct wire_pm_aae_objs {
  uint32_t part;
  wire_pm_list objs; /* [key, object] (wire_pm_next_key_object), at most
                        WIRE_AAE_KEYS_MAX */
  wire_pm_list want; /* key (wire_pm_next_key), at most WIRE_AAE_KEYS_MAX */
} wire_pm_aae_objs;

/* HANDOFF: one batch of a partition moving to a new owner. */
typedef struct wire_pm_handoff {
  uint32_t part;
  wire_pm_list objs; /* [key, object] (wire_pm_next_key_object), at most
                        WIRE_HANDOFF_BATCH_MAX */
  bool last;         /* the final batch of the partition */
} wire_pm_handoff;

/* HANDOFF_ACK: count objects of a HANDOFF batch of part are committed. */
typedef struct wire_pm_handoff_ack {
  uint32_t part;
  uint32_t count; /* at most WIRE_HANDOFF_BATCH_MAX */
} wire_pm_handoff_ack;

/* REAP: the reaped object of key (the tombstones' clock, no values). */
typedef struct wire_pm_reap {
  uint32_t part;
  kv_slice key;    /* at most KV_KEY_MAX bytes */
  kv_slice object; /* an encoded stored object */
} wire_pm_reap;

/* Any payload: the member named by kind (WIRE_PM_MAP's field) is set. */
typedef struct wire_pm {
  uint32_t kind; /* WIRE_PM_* */
  union {
#define WIRE__PM_MEMBER(name, num, str, field) wire_pm_##field field;
    WIRE_PM_MAP(WIRE__PM_MEMBER)
#undef WIRE__PM_MEMBER
  };
} wire_pm;

/* Typed codecs, one pair per kind: wire_pm_encode_<field> appends the
 * payload of m to out; wire_pm_decode_<field> reads (p, len) into out.
 * Both return as the section comment above says. wire.c's dispatch expands
 * these names from WIRE_PM_MAP, so every kind must have its pair. */
int wire_pm_encode_hint_put(kvbuf *out, const wire_pm_hint_put *m);
int wire_pm_decode_hint_put(const uint8_t *p, size_t len,
                            wire_pm_hint_put *out);
int wire_pm_encode_aae_branches(kvbuf *out, const wire_pm_aae_branches *m);
int wire_pm_decode_aae_branches(const uint8_t *p, size_t len,
                                wire_pm_aae_branches *out);
/* Packs the branches whose bit is set, ascending. */
int wire_pm_encode_aae_leaves(kvbuf *out, const wire_pm_aae_leaves *m);
int wire_pm_decode_aae_leaves(const uint8_t *p, size_t len,
                              wire_pm_aae_leaves *out);
/* Packs the segments whose bit is set, ascending. */
int wire_pm_encode_aae_keys(kvbuf *out, const wire_pm_aae_keys *m);
int wire_pm_decode_aae_keys(const uint8_t *p, size_t len,
                            wire_pm_aae_keys *out);
int wire_pm_encode_aae_objs(kvbuf *out, const wire_pm_aae_objs *m);
int wire_pm_decode_aae_objs(const uint8_t *p, size_t len,
                            wire_pm_aae_objs *out);
int wire_pm_encode_handoff(kvbuf *out, const wire_pm_handoff *m);
int wire_pm_decode_handoff(const uint8_t *p, size_t len,
                           wire_pm_handoff *out);
int wire_pm_encode_handoff_ack(kvbuf *out, const wire_pm_handoff_ack *m);
int wire_pm_decode_handoff_ack(const uint8_t *p, size_t len,
                               wire_pm_handoff_ack *out);
int wire_pm_encode_reap(kvbuf *out, const wire_pm_reap *m);
int wire_pm_decode_reap(const uint8_t *p, size_t len, wire_pm_reap *out);

/* Encodes the payload of m->kind. Returns like the typed encoders, or
 * KV_EINVAL for an unknown kind. */
int wire_pm_encode(kvbuf *out, const wire_pm *m);

/* Decodes a payload of kind into out (out->kind set). Returns 0, KV_EPROTO,
 * or KV_EUNKNOWN for a kind not in WIRE_PM_MAP (the payload unread). */
int wire_pm_decode(uint32_t kind, const uint8_t *p, size_t len, wire_pm *out);

/* Appends one whole WIRE_PEER_MSG frame (kind m->kind, payload encoded from
 * m) with req_id. Returns 0, KV_ENOMEM, KV_EINVAL (as wire_pm_encode) or
 * KV_ETOOBIG (body over WIRE_FRAME_MAX); on error nothing of the frame
 * stays in out. */
int wire_encode_pm(kvbuf *out, uint64_t req_id, const wire_pm *m);

/* ---- list elements ---- */

typedef struct wire_pm_key_hash {
  kv_slice key;
  uint64_t hash; /* of the object's encoding */
} wire_pm_key_hash;

typedef struct wire_pm_key_object {
  kv_slice key;
  kv_slice object;
} wire_pm_key_object;

/* Builds the items of a list. The caller owns the builder: init, add,
 * pass wire_pm_items_list(b) to an encoder, free. */
typedef struct wire_pm_items {
  kvbuf buf;      /* the encoded elements */
  uint32_t count; /* elements added */
} wire_pm_items;

void wire_pm_items_init(wire_pm_items *b);
/* Frees the builder's memory; it may be reused after wire_pm_items_init. */
void wire_pm_items_free(wire_pm_items *b);
/* Empties the builder, keeping its memory. */
void wire_pm_items_reset(wire_pm_items *b);
/* Each appends one element. Returns 0, KV_ENOMEM, or KV_EINVAL (a key over
 * KV_KEY_MAX, or UINT32_MAX elements already); on error nothing is added.
 * A builder whose add failed with KV_ENOMEM refuses further adds. */
int wire_pm_items_add_key_hash(wire_pm_items *b, const void *key, size_t klen,
                               uint64_t hash);
int wire_pm_items_add_key_object(wire_pm_items *b, const void *key,
                                 size_t klen, const void *object, size_t olen);
int wire_pm_items_add_key(wire_pm_items *b, const void *key, size_t klen);
/* The list built so far: a view of b, valid until b changes or is freed. */
wire_pm_list wire_pm_items_list(const wire_pm_items *b);

/* Reads the elements of a list one by one. */
typedef struct wire_pm_iter {
  mp_reader r;
  uint32_t left; /* elements not read yet */
} wire_pm_iter;

void wire_pm_iter_init(wire_pm_iter *it, const wire_pm_list *l);
/* Each reads the next element into *out (slices point into the list's
 * items). Returns 0, KV_ENOTFOUND when every element has been read, or
 * KV_EPROTO when the element does not have the shape asked for (never for
 * a list its decoder accepted, read with the function its field names);
 * after KV_EPROTO every later call fails too. */
int wire_pm_next_key_hash(wire_pm_iter *it, wire_pm_key_hash *out);
int wire_pm_next_key_object(wire_pm_iter *it, wire_pm_key_object *out);
int wire_pm_next_key(wire_pm_iter *it, kv_slice *out);

#endif
