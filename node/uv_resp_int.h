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
} uvr_kind;

/* One key of a command: where its bytes are in the op's store, and what
 * its read found. */
typedef struct uvr_key {
  uint32_t key_off, key_len;
  uint32_t val_off, val_len; /* SET, MSET, KV.PUT: the value */
  uint32_t ctx_off, ctx_len; /* the context read, or given */
  uint32_t out_off, out_len; /* MGET: this key's rendered reply */
  bool found;
} uvr_key;

typedef struct uvr_op {
  uvr_kind kind;
  uint8_t phase;    /* 0: the reads (or the only requests), 1: the writes */
  bool nx, xx, get; /* SET's options */
  bool failed;      /* out holds an error reply */
  bool done;
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

#endif
