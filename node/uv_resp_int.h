/*
 * uv_resp_int.h: internals shared by the Redis front end's files:
 * uv_resp.c (commands in flight, native requests, replies in order) and
 * uv_resp_cmd.c (the commands answered without a request, and levels),
 * which uv_resp.c calls and which calls nothing back.
 */
#ifndef KV_UV_RESP_INT_H
#define KV_UV_RESP_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "crdt.h"
#include "resp.h"
#include "uv_int.h"
#include "wire.h"

#define UVR_OPS_MAX 1024u        /* commands in flight per connection */
#define UVR_IDX_BITS 20u         /* key index in a request id */
#define UVR_KEYS_MAX (1u << UVR_IDX_BITS)
#define UVR_NAME_MAX 64

typedef enum uvr_kind {
  UVR_GET,    /* GET key */
  UVR_MGET,   /* MGET key... */
  UVR_EXISTS, /* EXISTS key... */
  UVR_TYPE,   /* TYPE key */
  UVR_SET,    /* SET key value [NX|XX] [GET] */
  UVR_MSET,   /* MSET key value... */
  UVR_DEL,    /* DEL / UNLINK key... */
  UVR_GETDEL, /* GETDEL key */
  UVR_KVGET,  /* KV.GET key [R n] [PR n] [TIMEOUT ms] */
  UVR_KVPUT,  /* KV.PUT key value [CONTEXT c] [W n] [DW n] [PW n] ... */
  UVR_KVDEL,  /* KV.DEL key [CONTEXT c] [W n] ... */
  UVR_AUTH,   /* AUTH, HELLO ... AUTH: a login being checked */
  UVR_EXPIRE, /* EXPIRE/PEXPIRE key n, PERSIST key: rewrite with a ttl */
  UVR_TTL,    /* TTL/PTTL key */
  UVR_TREAD,  /* SMEMBERS, SISMEMBER, SCARD, HGET, HGETALL: a typed read */
  UVR_TWRITE, /* SADD, SREM, INCRBY..., HSET, HDEL, HINCRBY: a typed put */
} uvr_kind;

/* The data type commands (docs/resp.md, docs/data-types.md). */
typedef enum uvr_tcmd {
  UVR_T_NONE,
  UVR_T_SADD,
  UVR_T_SREM,
  UVR_T_SMEMBERS,
  UVR_T_SISMEMBER,
  UVR_T_SCARD,
  UVR_T_INCRBY,
  UVR_T_DECRBY,
  UVR_T_INCR,
  UVR_T_DECR,
  UVR_T_HSET,
  UVR_T_HGET,
  UVR_T_HGETALL,
  UVR_T_HDEL,
  UVR_T_HINCRBY,
} uvr_tcmd;

/* Redis's reply to an operation on a key of another type. */
#define UVR_WRONGTYPE \
  "WRONGTYPE Operation against a key holding the wrong kind of value"

/* One key of a command: where its bytes are in the op's store, and what
 * its read found. */
typedef struct uvr_key {
  uint32_t key_off, key_len;
  uint32_t val_off, val_len; /* SET, MSET, KV.PUT: the value */
  uint32_t ctx_off, ctx_len; /* the context read, or given */
  uint32_t out_off, out_len; /* MGET: this key's rendered reply */
  uint64_t expires_ms;       /* the value read expires then (0: never) */
  bool found;
} uvr_key;

typedef struct uvr_op {
  uvr_kind kind;
  uint8_t phase;    /* 0: the reads (or the only requests), 1: the writes */
  bool nx, xx, get; /* SET's options */
  bool failed;      /* out holds an error reply */
  bool ms;          /* TTL: in milliseconds (PTTL) */
  bool done;
  uint8_t tcmd;     /* UVR_TREAD, UVR_TWRITE: the uvr_tcmd */
  uint32_t n;       /* keys */
  uint32_t left;    /* answers still awaited in this phase */
  uint32_t count;   /* EXISTS, DEL: keys found */
  uvr_key *keys;
  wire_opts opts;   /* the levels of the native requests */
  kvbuf store;      /* copies of keys, values, contexts, rendered parts */
  kvbuf out;        /* the reply, once done */
} uvr_op;

typedef struct uvr_conn uvr_conn;
struct uvr_conn {
  int proto;        /* RESP_PROTO2 or RESP_PROTO3 */
  bool quit;        /* QUIT: close after the replies before it */
  bool parsing;     /* uvr_on_read is running */
  bool stalled;     /* parsing stopped at UVR_OPS_MAX commands in flight */
  char name[UVR_NAME_MAX];
  wire_opts defaults; /* KV.LEVELS */
  resp_resume rs;
  uvr_op *ops;      /* ring of UVR_OPS_MAX */
  uint32_t head, len;
  uint64_t head_serial; /* serial of ops[head] */
  uint64_t next_serial;
};

/* uv_resp_cmd.c */
/* A level: a number or one/quorum/all/local_one/local_quorum/each_quorum.
 * Returns 0 or -1. */
int uvr__level(kv_slice s, int32_t *out);
int uvr__uint(kv_slice s, uint32_t *out);
/* Parses the option pairs of KV.* and KV.LEVELS from argument first on
 * into o (and *ctx for CONTEXT when ctx is not NULL). Returns NULL or the
 * error message. */
const char *uvr__options(const resp_cmd *cmd, uint32_t first, wire_opts *o,
                         kv_slice *ctx);
/* Answers cmd into reply when it needs no request (PING, HELLO, INFO,
 * CLIENT, ...). Returns whether it was one. */
bool uvr__local(uvn_conn *c, const resp_cmd *cmd, kvbuf *reply);

/* uv_resp_cmd.c: data types. The uvr_tcmd cmd's name is (UVR_T_NONE: not
 * one); *write says whether it writes. */
uvr_tcmd uvr__tcmd(kv_slice name, bool *write);
/* Checks the arguments of the typed write cmd and appends its operation
 * (storage/crdt.h) to op. Returns NULL or the error message. */
const char *uvr__top(const resp_cmd *cmd, uvr_tcmd t, kvbuf *op);
/* Renders the reply of typed command t from its native answer m (a GET_OK
 * for a read, whose argument is arg; a PUT_OK for a write). */
void uvr__tread(int proto, uvr_tcmd t, const wire_msg *m, kv_slice arg,
                kvbuf *out);
void uvr__twrite(uvr_tcmd t, const wire_msg *m, kvbuf *out);
/* The joined state among m's siblings (a GET_OK) in *st (NULL: none) and
 * whether a live plain sibling is there. Returns 0 or -1 (undecodable). */
int uvr__tstate(const wire_msg *m, crdt **st, bool *plain);

#endif
