/*
 * core_int.h: internals of the node core shared by core.c (lifecycle,
 * dispatch, replica side, admin) and coord.c (request coordination). Not a
 * public header: nothing outside node/core*.c and node/coord.c includes it.
 */
#ifndef KV_NODE_CORE_INT_H
#define KV_NODE_CORE_INT_H

#include "core.h"

#include "kv_err.h"
#include "mp.h"
#include "ring.h"

/* Request ids and storage tokens: the request's id shifted left by
 * CORE_TARGET_BITS, plus the target's index (and a sync flag for tokens). */
#define CORE_TARGET_BITS 5u
#define CORE_TARGET_MASK 0xfu
#define CORE_TOKEN_SYNC 0x10u
#define CORE_SLOT_BITS 16u /* NODE_REQUESTS_MAX == 1 << CORE_SLOT_BITS */

/* PEER_MSG kinds: node-to-node messages beyond plain replication. The
 * payload is a msgpack array; docs/protocol.md lists the fields. */
enum {
  PM_HINT_PUT = 1,     /* [owner, key, object, durable] -> REPL_PUT_OK */
  PM_AAE_BRANCHES = 10, /* [part, [branch hash x AAE_BRANCHES]] */
  PM_AAE_LEAVES = 11,  /* reply: [part, [[branch, [leaf hash x 32]]...]] */
  PM_AAE_KEYS = 12,    /* [part, [segment...], [[key, hash]...]] */
  PM_AAE_OBJS = 13,    /* reply: [part, [[key, object]...], [key...]] */
  PM_HANDOFF = 20,     /* [part, [[key, object]...], last] */
  PM_HANDOFF_ACK = 21, /* reply: [part, count] */
  PM_REAP = 30,        /* [part, key, reaped object]: merge it (the
                          tombstones' clock without values) */
};

/* Tictac anti-entropy trees: per partition, AAE_SEGMENTS leaves, each the
 * XOR of hash(key, object hash) over the keys of its segment, grouped into
 * AAE_BRANCHES branches. A write updates one leaf and one branch: O(1). */
#define AAE_BRANCHES 32u
#define AAE_LEAVES_PER_BRANCH 32u
#define AAE_SEGMENTS (AAE_BRANCHES * AAE_LEAVES_PER_BRANCH)
typedef struct aae_tree {
  uint64_t branch[AAE_BRANCHES];
  uint64_t leaf[AAE_SEGMENTS];
} aae_tree;

#define REPAIR_HINT_BATCH 64u       /* hints delivered per owner per round */
#define REPAIR_HANDOFF_BATCH 64u    /* objects per handoff message */
#define REPAIR_TRANSFERS_MAX 16u    /* transfers running at once */
#define REPAIR_REAP_QUEUE_MAX 65536u
#define REPAIR_AAE_KEYS_MAX 100000u /* keys one exchange may compare */
/* A partition hands off to all its primaries at once (repair.c). */
_Static_assert(REPAIR_TRANSFERS_MAX >= NODE_FANOUT_MAX,
               "every primary of a partition fits in the transfer slots");

typedef struct core_transfer {
  bool active;
  bool inflight;
  bool done;
  uint32_t part;
  char target[RING_NAME_MAX];
  char addr[GOSSIP_ADDR_MAX];
  uint8_t *last_key; /* resume after this key */
  size_t last_len;
  bool last_batch;   /* the batch in flight is the final one */
  uint64_t keys_sent;
  uint64_t started_ms;
  uint64_t req_gen;  /* the request slot waiting for the ack */
} core_transfer;

typedef struct core_reap {
  uint32_t part;
  uint64_t due_ms;
  uint8_t *key;
  size_t klen;
} core_reap;

typedef enum core_req_kind {
  CORE_REQ_FREE = 0,
  CORE_REQ_PUT,      /* coordinating a put or delete */
  CORE_REQ_GET,      /* coordinating a get (then its read repair) */
  CORE_REQ_FWD,      /* a client write forwarded to another coordinator */
  CORE_REQ_REPLICA,  /* a replica write waiting for commit/fsync to ack */
  CORE_REQ_HINT,     /* a hint being delivered to its owner */
  CORE_REQ_AAE,      /* an anti-entropy exchange this node started */
  CORE_REQ_HANDOFF,  /* a handoff batch waiting for its ack */
  CORE_REQ_REAP,     /* reading every replica before reaping a tombstone */
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
  char hint_for[RING_NAME_MAX]; /* fallback: the primary it stands in for */
} core_target;

/* Keys up to this long live in the request itself (no allocation). */
#define CORE_KEY_INLINE 64u

typedef struct core_req {
  uint8_t kind;
  bool replied;     /* the client has its answer */
  bool is_delete;
  bool durable;     /* DW > 0: replicas ack after fsync */
  bool from_peer;   /* reply goes to a peer connection (COORD_PUT) */
  bool spares;      /* GET: replicas beyond R are asked only on failure */
  uint32_t gen;     /* bumped when the slot is reused */
  uint32_t slot;
  struct core_req *prev, *next; /* active list */
  uint64_t conn;     /* where the reply goes */
  uint64_t reply_id; /* the req_id to echo */
  uint64_t start_ms, deadline_ms;
  uint32_t timeout_ms;
  uint32_t part;
  uint8_t *key;     /* key_inline, or malloc'd when longer */
  size_t klen;
  uint8_t key_inline[CORE_KEY_INLINE];
  /* Requirements and counts. */
  uint32_t need, need_dw, need_p; /* W or R; DW; PW or PR */
  uint32_t acks, dw_acks, p_acks, fails;
  uint32_t ntargets;
  core_target targets[NODE_FANOUT_MAX];
  obj *result;   /* PUT: the coordinator's new object; GET: merged */
  kvbuf enc;     /* PUT: the encoded object sent to replicas */
  wire_opts opts;
  uint32_t reply_type; /* PUT_OK or DEL_OK */
  uint64_t hash;       /* HINT: hash of the hint sent; REAP: unused */
  uint32_t aux;        /* HANDOFF: transfer index; AAE: phase */
  char owner[RING_NAME_MAX]; /* HINT: the owner */
  char region[RING_NAME_MAX]; /* PUT/GET: the client's region ("" = the
                                 coordinator's), for local levels */
} core_req;

typedef struct core_stats {
  uint64_t gets, puts, dels, local_gets;
  uint64_t forwards, coord_puts;
  uint64_t repl_puts, repl_gets;
  uint64_t read_repairs;
  uint64_t errors, timeouts, unavailable;
  uint64_t bad_frames;
  uint64_t sibling_warnings;
  uint64_t hints_stored, hints_delivered, hints_refused;
  uint64_t aae_exchanges, aae_bytes, aae_keys_repaired;
  uint64_t handoff_keys_sent, handoff_keys_received, partitions_dropped;
  uint64_t tombstones_reaped;
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
  core_req *slots;      /* nslots slots */
  uint32_t nslots;      /* a power of two, at most NODE_REQUESTS_MAX */
  uint32_t *free_slots; /* stack of free slot numbers */
  uint32_t nfree;
  core_req *active;     /* doubly linked list of requests in flight */
  size_t nactive;
  kvbuf out;            /* scratch for encoding frames */
  kvbuf scratch;        /* scratch for object encodings */
  core_stats stats;
  /* Repair. */
  uint32_t aae_interval_ms, hint_interval_ms, handoff_interval_ms;
  uint64_t tombstone_grace_ms, hints_max, hints_count;
  uint64_t next_aae_ms, next_hint_ms, next_handoff_ms;
  uint32_t aae_next_part;
  bool aae_running;
  uint32_t hint_inflight;
  aae_tree **trees;           /* one per partition, NULL until it has data */
  uint32_t trees_q;
  core_transfer transfers[REPAIR_TRANSFERS_MAX];
  core_reap *reaps;           /* ring buffer of scheduled reap checks */
  uint32_t reap_head, reap_len;
  bool leaving_done;
  /* The largest dot counter any of this node's actors has handed out on
   * any key. A key whose object lacks live values of the coordinating
   * actor (never written by it, reaped, or its entry pruned) starts the
   * actor's counter above it, so no dot is handed out twice; sound only
   * because the actor holds all its dots of the partition (part_epoch). */
  uint64_t dot_floor;
  /* Actor epochs, one per partition: bumped whenever this node drops a
   * partition's data, so the actor that makes dots for a partition's keys
   * always holds every dot it made there before (docs/architecture.md,
   * "What a dot promises"). In memory only: a restart takes a new
   * incarnation, which renews every actor anyway. */
  uint32_t part_epoch[RING_Q_MAX];
};

/* core.c */
void core__log(node *n, node_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
uint64_t core__now(node *n);
/* The actor that makes this node's new dots on keys of partition part. */
uint64_t core__actor(const node *n, uint32_t part);
core_req *core__req_new(node *n, core_req_kind kind);
void core__req_free(node *n, core_req *r);
/* Copies key into r (inline when it fits). Returns 0 or KV_ENOMEM. */
int core__req_set_key(core_req *r, const uint8_t *key, size_t klen);
core_req *core__req_find(node *n, uint64_t wire_id, uint32_t *target);
uint64_t core__req_wire_id(const core_req *r, uint32_t target);
void core__send_conn(node *n, uint64_t conn);
void core__send_error(node *n, uint64_t conn, uint64_t req_id, int code,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Reads and decodes the local object of key. Returns 0 with *out (NULL
 * when not found) and *hash (the hash of its encoding, 0 when not found;
 * hash may be NULL), or an error. */
int core__local_read(node *n, uint32_t part, const uint8_t *key, size_t klen,
                     obj **out, uint64_t *hash);
/* Stages enc as the local object of key (replacing one whose hash was
 * old_hash, 0 for none) with the given token, and updates the partition's
 * anti-entropy tree. */
int core__local_write(node *n, uint32_t part, const uint8_t *key,
                      size_t klen, const uint8_t *enc, size_t enc_len,
                      uint64_t old_hash, uint64_t token);
/* Merges incoming into the local object of key and writes the result when
 * it changed (always when token is not 0, so the caller gets its
 * callback). *changed may be NULL. Returns 0 or an error. */
int core__local_merge(node *n, uint32_t part, const uint8_t *key,
                      size_t klen, const obj *incoming, uint64_t token,
                      bool *changed);
/* Fills idx (NODE_FANOUT_MAX entries) with the preference list of p:
 * returns how many it wrote (primaries first, then fallbacks) and sets
 * *nprimary to how many of those are primaries. */
size_t core__preflist(const ring *rg, uint32_t p, size_t *idx,
                      size_t *nprimary);
/* True when this node is a primary replica of partition p. */
bool core__is_primary(node *n, uint32_t p);

/* repair.c */
int repair_init(node *n, const node_config *cfg);
void repair_free(node *n);
void repair_tree_update(node *n, uint32_t part, const uint8_t *key,
                        size_t klen, uint64_t old_hash, uint64_t new_hash);
void repair_tick(node *n, uint64_t now);
void repair_on_request(node *n, uint64_t conn, const wire_msg *m);
void repair_on_reply(node *n, uint64_t conn, const wire_msg *m);
void repair_req_done(node *n, core_req *r, uint32_t target, int status);
void repair_req_expired(node *n, core_req *r);
void repair_conn_closed(node *n, uint64_t conn);
void repair_schedule_reap(node *n, uint32_t part, const uint8_t *key,
                          size_t klen);
void repair_maybe_reap(node *n, core_req *get);
void repair_admin_transfers(node *n, msgpack_packer *pk);

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
