/*
 * core.h: the sans-IO heart of a kvorum node.
 *
 * The core owns everything a node decides: request coordination (put, get,
 * delete with per-request N/R/W/DW/PR/PW), replica handling, read repair,
 * forwarding to a replica that coordinates, and membership through the
 * gossip state machine. It performs no I/O of its own: frames arrive
 * through node_on_frame, time through node_tick and io->now_ms, and
 * everything it does goes out through the node_io interface (send a frame
 * on a connection or to a peer address, read and stage storage writes).
 * kvorumd drives it with libuv (uv_node.c); the deterministic simulator in
 * tests/sim drives it with a simulated network, disk and clock.
 *
 * Request lifecycle (one slot in the request table per request):
 *
 *   PUT at a replica:  READ local -> UPDATE (new dot) -> STAGE local write
 *        -> (commit done) SEND REPL_PUT to the other replicas
 *        -> count acks -> W (and DW, PW) met: reply PUT_OK
 *                      -> timeout / too many failures: reply ERROR
 *   PUT at a non-replica: FORWARD as COORD_PUT to an alive primary -> relay
 *   GET: local read (if a replica) + REPL_GET to the others -> R answers:
 *        merge, reply GET_OK -> all answers or timeout: read repair
 *
 * Replication messages are sent only after the coordinator's own write is
 * committed (in the WAL), so a dot a replica has seen is never handed out
 * twice by a crashed and restarted coordinator; in addition every start of
 * a node takes a new incarnation, so its actor id is new as well.
 *
 * Invariants: every request ends with exactly one reply (or is dropped when
 * its client connection is gone); the request table and every queue are
 * bounded (NODE_REQUESTS_MAX); a frame a peer or client sends never
 * crashes the node: it is answered with ERROR or the connection closed.
 *
 * Depends on: ring, gossip, obj (storage/obj.h), wire. Pure: no libuv, no
 * RocksDB.
 */
#ifndef KV_NODE_CORE_H
#define KV_NODE_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gossip.h"
#include "kv_hist.h"
#include "obj.h"
#include "wire.h"

#define NODE_REQUESTS_MAX 65536u    /* requests in flight per node */
#define NODE_TIMEOUT_MS_DEFAULT 5000u
#define NODE_FANOUT_MAX 16u         /* replicas one request contacts */

typedef enum node_conn_kind {
  NODE_CONN_CLIENT,   /* accepted on the client port */
  NODE_CONN_PEER_IN,  /* accepted on the peer port */
  NODE_CONN_PEER_OUT, /* opened by this node to a peer address */
} node_conn_kind;

typedef enum node_log_level {
  NODE_LOG_ERROR,
  NODE_LOG_WARN,
  NODE_LOG_INFO,
  NODE_LOG_DEBUG,
} node_log_level;

typedef struct node node; /* opaque */

/* Client requests as the metrics count them: by operation and by result. */
enum { NODE_OP_GET, NODE_OP_PUT, NODE_OP_DEL, NODE_OPS };
enum {
  NODE_RES_OK,
  NODE_RES_NOT_FOUND,
  NODE_RES_TIMEOUT,     /* KV_ETIMEDOUT */
  NODE_RES_UNAVAILABLE, /* KV_EQUORUM, KV_EUNAVAIL */
  NODE_RES_OVERLOAD,    /* KV_EOVERLOAD */
  NODE_RES_BAD_REQUEST, /* KV_EINVAL, KV_ETOOBIG, KV_EPROTO */
  NODE_RES_ERROR,       /* anything else */
  NODE_RESULTS
};
const char *node_op_name(int op);         /* "get", "put", "del" */
const char *node_result_name(int result); /* "ok", "not_found", ... */
/* The NODE_RES_* of a KV_E* code (0: NODE_RES_OK). */
int node_result_of(int code);

/* What a node has done since it started (kvorum stats, /metrics). */
typedef struct node_stats {
  uint64_t gets, puts, dels, local_gets;
  uint64_t forwards, coord_puts;
  uint64_t repl_puts, repl_gets;
  uint64_t repl_puts_fast; /* stored as they came (WIRE_REPL_BASE) */
  uint64_t read_repairs;
  uint64_t errors, timeouts, unavailable;
  uint64_t bad_frames;
  uint64_t sibling_warnings;
  uint64_t hints_stored, hints_delivered, hints_refused;
  uint64_t hints_kept, hints_window_skipped; /* coordinator hints */
  uint64_t catchup_exchanges, catchup_keys_sent, catchup_keys_repaired;
  uint64_t repair_exchanges, repair_keys_repaired; /* kvorum repair */
  uint64_t aae_exchanges, aae_bytes, aae_keys_repaired;
  uint64_t handoff_keys_sent, handoff_keys_received, partitions_dropped;
  uint64_t tombstones_reaped;
  /* Client requests answered by this node (the one the client asked):
   * counts by operation and result, and the time from the request's
   * arrival to its answer in microseconds (kv_hist_latency_us). */
  uint64_t requests[NODE_OPS][NODE_RESULTS];
  kv_hist latency[NODE_OPS];
  kv_hist siblings;     /* live values per read that found the key */
  kv_hist object_bytes; /* encoded size of each object this node wrote as
                           coordinator (kv_hist_bytes) */
} node_stats;

typedef int (*node_scan_fn)(void *arg, const uint8_t *key, size_t klen,
                            const uint8_t *val, size_t vlen);
typedef int (*node_hint_fn)(void *arg, uint32_t part, const uint8_t *key,
                            size_t klen, const uint8_t *val, size_t vlen);

/* What the core needs from its environment. Every function must be set. */
typedef struct node_io {
  void *ctx;
  uint64_t (*now_ms)(void *ctx);   /* monotonic milliseconds */
  /* Optional (NULL: now_ms * 1000): monotonic microseconds, for the
   * request latency histograms. */
  uint64_t (*now_us)(void *ctx);
  uint64_t (*wall_ms)(void *ctx);  /* wall clock (sibling timestamps) */
  uint64_t (*random)(void *ctx);
  /* Queue a whole frame on connection conn (dropped if it is gone). */
  void (*conn_send)(void *ctx, uint64_t conn, const uint8_t *frame,
                    size_t len);
  /* Ask to close connection conn after what is queued is written. */
  void (*conn_close)(void *ctx, uint64_t conn);
  /* Queue a frame to the node whose peer port is addr, connecting if
   * needed. Returns the connection id it went on (0 when it could not be
   * queued); replies to it arrive on that connection as PEER_OUT frames. */
  uint64_t (*peer_send)(void *ctx, const char *addr, const uint8_t *frame,
                        size_t len);
  /* Storage. get: 0 with a lent value (valid until the next call into
   * io; the core copies what it keeps), KV_ENOTFOUND or an error. put: stage a write; when it is committed (in the WAL) the
   * environment calls node_store_done(token, status), later, never from
   * inside put. sync: when every write committed so far is fsynced, the
   * environment calls node_store_done(token, status). put and sync return
   * 0 or an error (then no callback comes). */
  int (*store_get)(void *ctx, uint32_t part, const void *key, size_t klen,
                   const uint8_t **val, size_t *vlen);
  int (*store_put)(void *ctx, uint32_t part, const void *key, size_t klen,
                   const void *val, size_t vlen, uint64_t token);
  int (*store_sync)(void *ctx, uint64_t token);
  /* A staged delete, reported like store_put. */
  int (*store_del)(void *ctx, uint32_t part, const void *key, size_t klen,
                   uint64_t token);
  /* Calls fn for up to limit objects of part in key order, starting after
   * key `after` (NULL: from the first). fn returns non-zero to stop.
   * Returns 0 or an error. */
  int (*store_scan)(void *ctx, uint32_t part, const void *after,
                    size_t after_len, size_t limit, node_scan_fn fn,
                    void *arg);
  /* Deletes every object of part. */
  int (*store_drop)(void *ctx, uint32_t part);
  /* Hints: writes kept for another node (owner). put/del are written at
   * once (WAL); get returns a malloc'd value or KV_ENOTFOUND; scan visits
   * up to limit hints of owner (key is the object key, part its
   * partition). */
  int (*hint_put)(void *ctx, const char *owner, uint32_t part,
                  const void *key, size_t klen, const void *val, size_t vlen);
  int (*hint_get)(void *ctx, const char *owner, uint32_t part,
                  const void *key, size_t klen, uint8_t **val, size_t *vlen);
  int (*hint_del)(void *ctx, const char *owner, uint32_t part,
                  const void *key, size_t klen);
  int (*hint_scan)(void *ctx, const char *owner, size_t limit,
                   node_hint_fn fn, void *arg);
  /* The first owner holding hints whose name sorts after `after` (""
   * for the first): 0 with the name in out (cap bytes), KV_ENOTFOUND when
   * there is none, or an error. */
  int (*hint_owner_next)(void *ctx, const char *after, char *out,
                         size_t cap);
  /* The node asks its environment to stop (it left the cluster). */
  void (*shutdown)(void *ctx);
  /* Metadata: the ring ("ring") and the membership ("members") are saved
   * here when they change. */
  int (*meta_put)(void *ctx, const char *name, const void *val, size_t len);
  void (*log)(void *ctx, node_log_level lvl, const char *msg);
  /* Optional (NULL: not told): the log level changed at run time (ADMIN
   * log-level). The core already filters its own messages by it; the
   * environment applies it to the lines it logs itself. */
  void (*log_level_set)(void *ctx, node_log_level lvl);
  /* Optional (NULL: not reported): CPU time the process has used, user and
   * system, in microseconds; shown by the stats command. */
  void (*cpu_us)(void *ctx, uint64_t *user_us, uint64_t *sys_us);
  /* Optional (NULL: the command answers that this node cannot): the ADMIN
   * commands that work on the storage itself, which only the environment
   * can do. backup: a consistent copy of the data under dir (an absolute
   * path on the node's machine); compact: a manual compaction. Each
   * starts the work and returns 0, and the environment then answers the
   * request (req_id on conn) itself, with ADMIN_OK or ERROR, through the
   * same path as conn_send; or returns a KV_E* code with a message in err
   * (errlen bytes), and then the core answers with it and the environment
   * never does. */
  int (*backup)(void *ctx, uint64_t conn, uint64_t req_id, const char *dir,
                char *err, size_t errlen);
  int (*compact)(void *ctx, uint64_t conn, uint64_t req_id, char *err,
                 size_t errlen);
} node_io;

typedef struct node_config {
  const char *id;
  const char *region; /* default "default" */
  const char *zone;   /* default "" */
  const char *client_addr, *peer_addr;
  const char *const *seeds;
  size_t nseeds;
  uint64_t incarnation;
  uint32_t q;          /* partitions for a new cluster */
  uint32_t n, r, w;    /* cluster defaults */
  /* Replicas per region for a new cluster (--replicas); nreplicas == 0:
   * n replicas over the whole cluster. */
  const gossip_replicas *replicas;
  size_t nreplicas;
  uint32_t timeout_ms; /* default request timeout */
  uint32_t gossip_interval_ms;
  double phi_threshold;
  obj_limits limits;
  const uint8_t *ring_saved; /* a ring persisted by an earlier run */
  size_t ring_saved_len;
  /* The membership persisted by an earlier run (meta "members",
   * gossip_members_encode), or NULL. */
  const uint8_t *members_saved;
  size_t members_saved_len;
  const char *version; /* software version shown to clients and peers
                          (NULL: KVORUM_VERSION) */
  node_log_level log_level;
  /* Repair (0 = the default in parentheses). */
  uint32_t aae_interval_ms;     /* one tree exchange per interval (10000) */
  uint32_t hint_interval_ms;    /* hint delivery rounds (1000) */
  /* Hints are kept for a replica only while it has been down less than
   * this; past it, anti-entropy repairs it (3 hours, as Cassandra's
   * max_hint_window). */
  uint64_t hint_window_ms;
  /* Catch-up anti-entropy with a returning replica, in MiB a second of
   * exchanged bytes (32); catchup_off turns it off. */
  uint32_t catchup_mb_per_s;
  bool catchup_off;
  uint32_t handoff_interval_ms; /* ownership handoff rounds (1000) */
  uint64_t tombstone_grace_ms;  /* tombstones older than this may be
                                   reaped once every replica has them
                                   (86400000: one day) */
  uint64_t hints_max;           /* hints kept for all owners (1000000) */
  uint32_t requests_max;        /* requests in flight, a power of two up to
                                   NODE_REQUESTS_MAX (NODE_REQUESTS_MAX);
                                   smaller for tests and fuzzing */
} node_config;

/* Returns a new node core, or NULL with a message in err. The core keeps
 * io (copied) and copies what it needs of cfg. Free with node_free. */
node *node_new(const node_config *cfg, const node_io *io, char *err,
               size_t errlen);
/* Frees n; requests in flight are dropped without replies. NULL: no-op. */
void node_free(node *n);

/* Result of node_on_frame. */
enum {
  NODE_FRAME_OK = 0,
  NODE_FRAME_GREETED = 1, /* the hello was accepted: mark the connection */
  NODE_FRAME_CLOSE = 2,   /* close the connection after queued output */
};

/* A frame body arrived on conn. greeted: whether this connection's hello
 * was accepted before. Returns NODE_FRAME_*. */
int node_on_frame(node *n, uint64_t conn, node_conn_kind kind, bool greeted,
                  const uint8_t *body, size_t len);
/* A connection closed (requests waiting on it fail over or time out). */
void node_on_close(node *n, uint64_t conn, node_conn_kind kind);
/* A staged write finished (status 0 or a KV_E* code). */
void node_store_done(node *n, uint64_t token, int status);
/* Advances time: expires requests, drives gossip. Call every ~10 ms. */
void node_tick(node *n);

/* Introspection for logs, admin and tests. */
const char *node_id(const node *n);
uint64_t node_actor(const node *n);
/* The actor of this node's new dots on keys of partition part: node_actor
 * until the node first drops that partition's data, a new one after each
 * drop. */
uint64_t node_actor_part(const node *n, uint32_t part);
const gossip *node_gossip(const node *n);
/* Hints this node keeps for other nodes (the stats' hints_pending). */
uint64_t node_hints_pending(const node *n);
size_t node_requests_in_flight(const node *n);
const node_stats *node_stats_get(const node *n);
/* Partitions this node still has to hand to their new owners (a scan
 * of one key per partition it holds but does not own). */
uint32_t node_handoff_pending(node *n);

/* The name of a log level: "error", "warn", "info" or "debug". */
const char *node_log_level_name(node_log_level lvl);
/* Reads a log level name into *out. Returns 0 or KV_EINVAL (*out
 * unchanged). */
int node_log_level_parse(const char *name, node_log_level *out);

/* The actor id of a node incarnation (XXH3 of id and incarnation). */
uint64_t node_actor_of(const char *id, uint64_t incarnation);
/* The actor of a node incarnation's epoch of one partition; epoch 0 is
 * node_actor_of(id, incarnation). */
uint64_t node_actor_epoch(const char *id, uint64_t incarnation, uint32_t part,
                          uint32_t epoch);

#endif
