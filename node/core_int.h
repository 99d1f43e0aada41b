/*
 * core_int.h: the base of the node core, which every module of node/
 * builds on: the request table, local storage helpers, sending, logging,
 * the actor of new dots, and struct node with each module's state. Not a
 * public header: only the pure core's files in node/ include it (not the
 * uv_ shell).
 *
 * The files of node/ and what each may call (docs/architecture.md has the
 * table; scripts/callgraph.py checks there is no cycle):
 *
 *   node.c      entry points (core.h): dispatch to the modules below
 *   admin.c     ADMIN commands                 -> handoff, base
 *   coord.c     client requests                -> apl, levels, reap, base
 *   apl.c       preference lists of requests   -> levels, base
 *   levels.c    consistency level arithmetic (pure)
 *   replica.c   REPL_PUT / REPL_GET            -> base
 *   hints.c     hinted handoff                 -> base
 *   aae.c       anti-entropy exchange          -> base, tree
 *   handoff.c   ownership handoff              -> base
 *   reap.c      tombstone reaping              -> base
 *   core.c      the base                       -> tree
 *   tree.c      Tictac hash trees (pure)
 */
#ifndef KV_NODE_CORE_INT_H
#define KV_NODE_CORE_INT_H

#include "core.h"

#include <assert.h>

#include "aae.h"
#include "handoff.h"
#include "hints.h"
#include "kv_err.h"
#include "kv_str.h"
#include "mp.h"
#include "reap.h"
#include "ring.h"
#include "tree.h"

/* Request ids and storage tokens: the request's id shifted left by
 * CORE_TARGET_BITS, plus the target's index (and a sync flag for tokens). */
#define CORE_TARGET_BITS 5u
#define CORE_TARGET_MASK 0xfu
#define CORE_TOKEN_SYNC 0x10u
#define CORE_SLOT_BITS 16u
_Static_assert(NODE_REQUESTS_MAX == 1u << CORE_SLOT_BITS,
               "a request's slot fits in CORE_SLOT_BITS");
_Static_assert(NODE_FANOUT_MAX <= CORE_TARGET_MASK + 1,
               "a target index fits in the low bits of a request id");
_Static_assert((CORE_TOKEN_SYNC & CORE_TARGET_MASK) == 0 &&
                   CORE_TOKEN_SYNC < (1u << CORE_TARGET_BITS),
               "the sync flag sits between target index and request id");

typedef enum core_req_kind {
  CORE_REQ_FREE = 0,
  CORE_REQ_PUT,     /* coordinating a put or delete */
  CORE_REQ_GET,     /* coordinating a get (then its read repair) */
  CORE_REQ_FWD,     /* a client write forwarded to another coordinator */
  CORE_REQ_REPLICA, /* a replica write waiting for commit/fsync to ack */
  CORE_REQ_HINT,    /* a hint being delivered to its owner */
  CORE_REQ_AAE,     /* an anti-entropy exchange this node started */
  CORE_REQ_HANDOFF, /* a handoff batch waiting for its ack */
  CORE_REQ_REAP,    /* reading every replica before reaping a tombstone */
  CORE_REQ_KINDS,   /* the count, not a kind */
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
  bool hinted;   /* PUT: the coordinator keeps a hint for this primary */
  uint8_t state; /* core_target_state */
  uint64_t conn; /* connection the request went out on */
  obj *answer;   /* GET: the replica's object (NULL: not found) */
  char hint_for[RING_NAME_MAX]; /* fallback: the primary it stands in for */
} core_target;

/* Keys up to this long live in the request itself (no allocation). */
#define CORE_KEY_INLINE 64u

typedef struct core_req {
  uint8_t kind;
  bool replied; /* the client has its answer */
  bool is_delete;
  bool durable;   /* DW > 0: replicas ack after fsync */
  bool from_peer; /* reply goes to a peer connection (COORD_PUT) */
  bool spares;    /* GET: replicas beyond R are asked only on failure */
  bool late;      /* GET: an answer came after the client's */
  uint32_t gen;   /* bumped when the slot is reused */
  uint32_t slot;
  struct core_req *prev, *next; /* active list */
  uint64_t conn;                /* where the reply goes */
  uint64_t reply_id;            /* the req_id to echo */
  uint64_t start_ms, deadline_ms;
  uint64_t start_us; /* for the latency histograms (core__answered) */
  uint32_t timeout_ms;
  uint32_t part;
  uint8_t *key; /* key_inline, or malloc'd when longer */
  size_t klen;
  uint8_t key_inline[CORE_KEY_INLINE];
  /* Requirements and counts. */
  uint32_t need, need_dw, need_p; /* W or R; DW; PW or PR */
  uint32_t acks, dw_acks, p_acks, fails;
  uint32_t ntargets;
  core_target targets[NODE_FANOUT_MAX];
  obj *result; /* PUT: the coordinator's new object; GET, REAP: merged */
  kvbuf enc;   /* PUT: the encoded object sent to replicas */
  uint64_t base_hash; /* PUT: XXH3 of the local bytes enc was made from */
  kvbuf typed; /* a typed PUT: the new state, for PUT_OK */
  int64_t typed_result[3]; /* and what the operation did (types.h) */
  wire_opts opts;
  union {                         /* what only one kind of request needs */
    struct {                      /* PUT, GET, FWD */
      uint32_t reply_type;        /* PUT_OK or DEL_OK */
      char region[RING_NAME_MAX]; /* the client's region ("" = the
                                     coordinator's), for local levels */
    } coord;
    struct {                     /* HINT */
      uint64_t hash;             /* of the hint sent */
      char owner[RING_NAME_MAX]; /* whose hint it is */
    } hint;
    struct {             /* HANDOFF */
      uint32_t transfer; /* index into the transfer table */
      uint64_t count;    /* objects in the batch in flight */
    } handoff;
    struct {           /* AAE */
      aae_phase phase; /* what the exchange waits for */
      bool catchup;    /* a queued catch-up exchange */
      bool repair;     /* a queued repair exchange (kvorum repair) */
      uint32_t round;  /* its round (aae_catchup) */
    } aae;
  } u;
} core_req;

typedef node_stats core_stats;

#define CORE_MEMBERS_SAVE_MS 1000u

struct node {
  node_io io;
  char id[RING_NAME_MAX];
  char region[RING_NAME_MAX];
  char zone[RING_NAME_MAX];
  char client_addr[GOSSIP_ADDR_MAX];
  char peer_addr[GOSSIP_ADDR_MAX];
  uint64_t incarnation;
  uint64_t actor;
  char version[GOSSIP_VERSION_MAX]; /* software version (HELLO_OK, status) */
  /* The membership saved for the next start (meta "members"): saved at
   * most every CORE_MEMBERS_SAVE_MS after gossip reports a change, and
   * only when its encoding differs from what was saved. */
  bool members_dirty;
  uint64_t members_save_ms; /* no save before this */
  uint64_t members_hash;    /* XXH3 of the last encoding saved */
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
  core_req *active; /* doubly linked list of requests in flight */
  size_t nactive;
  kvbuf out;     /* scratch for encoding frames */
  kvbuf scratch; /* scratch for object encodings */
  core_stats stats;
  /* Anti-entropy trees, kept by every local write (core__local_write). */
  aae_tree **trees; /* one per partition, NULL until it has data */
  uint32_t trees_q;
  /* The modules' own state. */
  hints_state hints;
  aae_state aae;
  handoff_state handoff;
  reap_state reap;
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
/* Monotonic microseconds (io.now_us, or now_ms * 1000 without it). */
uint64_t core__now_us(node *n);
/* Counts a client request answered by this node: op (NODE_OP_*), its
 * result (code: 0 or KV_E*) and its latency since start_us. */
void core__answered(node *n, int op, int code, uint64_t start_us);
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
                      const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Reads and decodes the local object of key. Returns 0 with *out (NULL
 * when not found) and *hash (the hash of its encoding, 0 when not found;
 * hash may be NULL), or an error. */
int core__local_read(node *n, uint32_t part, const uint8_t *key, size_t klen,
                     obj **out, uint64_t *hash);
/* Stages enc as the local object of key (replacing one whose hash was
 * old_hash, 0 for none) with the given token, and updates the partition's
 * anti-entropy tree. */
int core__local_write(node *n, uint32_t part, const uint8_t *key, size_t klen,
                      const uint8_t *enc, size_t enc_len, uint64_t old_hash,
                      uint64_t token);
/* Merges incoming into the local object of key and writes the result when
 * it changed (always when token is not 0, so the caller gets its
 * callback). *changed may be NULL. Returns 0 or an error. */
int core__local_merge(node *n, uint32_t part, const uint8_t *key, size_t klen,
                      const obj *incoming, uint64_t token, bool *changed);
/* Fills idx (NODE_FANOUT_MAX entries) with the preference list of p:
 * returns how many it wrote (primaries first, then fallbacks) and sets
 * *nprimary to how many of those are primaries. */
size_t core__preflist(const ring *rg, uint32_t p, size_t *idx,
                      size_t *nprimary);
/* True when this node is a primary replica of partition p. */
bool core__is_primary(node *n, uint32_t p);
/* True when id is a primary replica of partition p in rg. */
bool core__is_primary_of(const ring *rg, uint32_t p, const char *id);
/* Whether r is a consistent request in the table (for assertions). */
bool core__req_check(const node *n, const core_req *r);
/* Remembers key as the point a paged scan resumes after (*last is
 * realloc'd). Returns 0 or KV_ENOMEM. */
int core__cursor(uint8_t **last, size_t *last_len, const uint8_t *key,
                 size_t klen);
/* Calls fn for every key of partition p in key order, reading pages of
 * CORE_SCAN_PAGE keys (each resuming after the last key seen). Returns 0,
 * the first non-zero value fn returned (which ends the scan), or a
 * storage error. */
#define CORE_SCAN_PAGE 1024u
int core__scan(node *n, uint32_t p, node_scan_fn fn, void *arg);
/* Whether this node stores any key of partition p. */
bool core__has_data(node *n, uint32_t p);
/* Updates partition part's tree for key: its object hash old_hash becomes
 * new_hash (0: none). */
void core__tree_update(node *n, uint32_t part, const uint8_t *key, size_t klen,
                       uint64_t old_hash, uint64_t new_hash);
void core__trees_free(node *n);
/* The member id when it is up, not removed and not this node; else NULL. */
const gossip_member *core__member_up(node *n, const char *id);
/* Starts a request of kind with one remote target (id, addr), with the
 * node's timeout. Returns NULL when the table is full. */
core_req *core__peer_req(node *n, core_req_kind kind, const char *id,
                         const char *addr);
/* Sends a PEER_MSG of kind with payload pl to addr as request r's target
 * ti (r may be NULL: fire and forget). Returns the connection or 0. */
uint64_t core__peer_send(node *n, const char *addr, core_req *r, uint32_t ti,
                         uint32_t kind, const kvbuf *pl);
/* Replies with a PEER_MSG of kind on conn (the answer to req_id). */
void core__peer_reply(node *n, uint64_t conn, uint64_t req_id, uint32_t kind,
                      const kvbuf *pl);
/* Before actor makes a new dot on o: raises actor's entry in o's clock to
 * the node's dot floor when o holds no live value of actor. Returns 0 or
 * KV_ENOMEM. */
int core__dot_floor(node *n, uint64_t actor, obj *o);
/* After a new dot: remembers the largest counter actor used. */
void core__dot_floor_bump(node *n, uint64_t actor, const obj *o);

#endif
