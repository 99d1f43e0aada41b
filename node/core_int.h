/*
 * core_int.h: internals of the node core shared by core.c (lifecycle,
 * dispatch, replica side, admin) and coord.c (request coordination). Not a
 * public header: nothing outside node/core*.c and node/coord.c includes it.
 */
#ifndef KV_NODE_CORE_INT_H
#define KV_NODE_CORE_INT_H

#include "core.h"

#include "../client/proto/kv_err.h"
#include "../client/proto/mp.h"
#include "../ring/ring.h"

/* Request ids and storage tokens: the request's id shifted left by
 * CORE_TARGET_BITS, plus the target's index (and a sync flag for tokens). */
#define CORE_TARGET_BITS 5u
#define CORE_TARGET_MASK 0xfu
#define CORE_TOKEN_SYNC 0x10u
#define CORE_SLOT_BITS 16u /* NODE_REQUESTS_MAX == 1 << CORE_SLOT_BITS */

typedef enum core_req_kind {
  CORE_REQ_FREE = 0,
  CORE_REQ_PUT,      /* coordinating a put or delete */
  CORE_REQ_GET,      /* coordinating a get (then its read repair) */
  CORE_REQ_FWD,      /* a client write forwarded to another coordinator */
  CORE_REQ_REPLICA,  /* a replica write waiting for commit/fsync to ack */
} core_req_kind;

typedef enum core_target_state {
  CORE_T_IDLE = 0, /* not contacted */
  CORE_T_WAIT,     /* request sent, no answer yet */
  CORE_T_OK,       /* answered */
  CORE_T_FAILED,   /* error, unreachable, or connection lost */
} core_target_state;

typedef struct core_target {
  char id[RING_NAME_MAX];
  char addr[GOSSIP_ADDR_MAX];
  bool self;
  bool primary;
  bool alive;
  uint8_t state;   /* core_target_state */
  uint64_t conn;   /* connection the request went out on */
  obj *answer;     /* GET: the replica's object (NULL: not found) */
} core_target;

typedef struct core_req {
  uint8_t kind;
  bool replied;     /* the client has its answer */
  bool is_delete;
  bool durable;     /* DW > 0: replicas ack after fsync */
  bool from_peer;   /* reply goes to a peer connection (COORD_PUT) */
  uint32_t gen;     /* bumped when the slot is reused */
  uint32_t slot;
  struct core_req *prev, *next; /* active list */
  uint64_t conn;     /* where the reply goes */
  uint64_t reply_id; /* the req_id to echo */
  uint64_t start_ms, deadline_ms;
  uint32_t timeout_ms;
  uint32_t part;
  uint8_t *key;
  size_t klen;
  /* Requirements and counts. */
  uint32_t need, need_dw, need_p; /* W or R; DW; PW or PR */
  uint32_t acks, dw_acks, p_acks, fails;
  uint32_t ntargets;
  core_target targets[NODE_FANOUT_MAX];
  obj *result;   /* PUT: the coordinator's new object; GET: merged */
  kvbuf enc;     /* PUT: the encoded object sent to replicas */
  wire_opts opts;
  uint32_t reply_type; /* PUT_OK or DEL_OK */
} core_req;

typedef struct core_stats {
  uint64_t gets, puts, dels, local_gets;
  uint64_t forwards, coord_puts;
  uint64_t repl_puts, repl_gets;
  uint64_t read_repairs;
  uint64_t errors, timeouts, unavailable;
  uint64_t bad_frames;
  uint64_t sibling_warnings;
} core_stats;

struct node {
  node_io io;
  char id[RING_NAME_MAX];
  char region[RING_NAME_MAX];
  char zone[RING_NAME_MAX];
  char client_addr[GOSSIP_ADDR_MAX];
  char peer_addr[GOSSIP_ADDR_MAX];
  uint64_t incarnation;
  uint64_t actor;
  uint32_t def_r, def_w;
  uint32_t timeout_ms;
  obj_limits limits;
  wire_limits wlim;
  node_log_level log_level;
  gossip *gossip;
  core_req *slots;      /* NODE_REQUESTS_MAX slots */
  uint32_t *free_slots; /* stack of free slot numbers */
  uint32_t nfree;
  core_req *active;     /* doubly linked list of requests in flight */
  size_t nactive;
  kvbuf out;            /* scratch for encoding frames */
  kvbuf scratch;        /* scratch for object encodings */
  core_stats stats;
};

/* core.c */
void core__log(node *n, node_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
uint64_t core__now(node *n);
core_req *core__req_new(node *n, core_req_kind kind);
void core__req_free(node *n, core_req *r);
core_req *core__req_find(node *n, uint64_t wire_id, uint32_t *target);
uint64_t core__req_wire_id(const core_req *r, uint32_t target);
void core__send_conn(node *n, uint64_t conn);
void core__send_error(node *n, uint64_t conn, uint64_t req_id, int code,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Reads and decodes the local object of key. Returns 0 with *out (NULL
 * when not found) or an error. */
int core__local_read(node *n, uint32_t part, const uint8_t *key, size_t klen,
                     obj **out);
/* Encodes and stages o as the local object of key with the given token. */
int core__local_write(node *n, uint32_t part, const uint8_t *key,
                      size_t klen, const uint8_t *enc, size_t enc_len,
                      uint64_t token);

/* coord.c */
void coord_put(node *n, uint64_t conn, const wire_msg *m, bool is_delete,
               bool from_peer);
void coord_get(node *n, uint64_t conn, const wire_msg *m);
void coord_on_reply(node *n, uint64_t conn, const wire_msg *m);
void coord_store_done(node *n, core_req *r, uint32_t target, bool synced,
                      int status);
void coord_conn_closed(node *n, uint64_t conn);
void coord_tick(node *n, uint64_t now);

#endif
