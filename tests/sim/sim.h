/*
 * sim.h: a deterministic whole-cluster simulator for the node core.
 *
 * Several node cores (node/core.h) run in one process, each behind a node_io
 * that this harness implements: a simulated clock (with per-node wall-clock
 * skew), a seeded RNG (splitmix64), a simulated network and an in-memory
 * store with kvorumd's three durability levels (staged, committed, synced).
 * Everything that happens is an event in one priority queue ordered by
 * (time, sequence), so a run is a pure function of the seed and of the
 * calls the test makes: the same seed replays the same run exactly.
 *
 * Loop turns: every event that reaches a node (a frame, a tick, an fsync
 * completion, a closed connection) is part of a loop turn; the turn ends
 * with a flush event 0-1 ms later that commits what the turn staged (then
 * calls node_store_done for each staged token, as uv_node.c does), starts an
 * fsync when durable writes wait for one, and only then lets the turn's
 * output onto the network. A process crash between two events therefore
 * loses staged writes and unsent output, never committed writes.
 *
 * Network: one connection per ordered pair of nodes (opened by the sender,
 * PEER_HELLO first, re-created after a crash or a partition), FIFO like TCP
 * unless a frame is picked for reordering. Peer frames may be lost,
 * duplicated or reordered (per mille rates in sim_net); a symmetric
 * partition closes the connections between the two sides and refuses new
 * ones; a one-way partition silently drops frames in one direction. Client
 * connections see latency only.
 *
 * Depends on: node/core.h (kvcore), storage/obj.h, proto/wire.h.
 */
#ifndef KV_SIM_H
#define KV_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"

#define SIM_NODES_MAX 8
#define SIM_CLIENTS_MAX 64
#define SIM_TICK_MS 10u         /* node_tick period */
#define SIM_RECONNECT_MS 250u   /* as kvorumd: wait after a failed connect */
#define SIM_WALL_EPOCH_MS 1700000000000ull /* wall clock at time 0 */

typedef struct sim sim; /* opaque */

typedef struct sim_config {
  uint64_t seed;
  uint32_t nodes;               /* 1..SIM_NODES_MAX */
  uint32_t q;                   /* partitions (16) */
  uint32_t n, r, w;             /* cluster defaults (3, 2, 2) */
  uint32_t timeout_ms;          /* default request timeout (1000) */
  uint32_t gossip_interval_ms;  /* (200) */
  uint32_t aae_interval_ms;     /* 0: the core's default */
  uint32_t hint_interval_ms;    /* 0: the core's default */
  uint32_t handoff_interval_ms; /* 0: the core's default */
  uint64_t tombstone_grace_ms;  /* 0: the core's default (one day) */
  uint32_t fsync_min_ms, fsync_max_ms; /* simulated fsync delay (1..5) */
  /* Regions: the region of each node (NULL: "default"), and replicas per
   * region for the ring (nreplicas 0: n over the cluster). The strings and
   * the array must outlive the sim (restarts read them again). */
  const char *regions[SIM_NODES_MAX];
  const gossip_replicas *replicas;
  size_t nreplicas;
  uint32_t requests_max;        /* per node; 0: NODE_REQUESTS_MAX */
  /* Nodes (bit i: node i) that sim_new does not start: they are started
   * later with sim_restart and then join the running cluster, as a new
   * kvorumd given the others as seeds does. */
  uint32_t late_mask;
  node_log_level log_level;     /* what the cores log (WARN) */
  bool verbose;                 /* print logs and harness events */
} sim_config;

/* Network fault knobs; may be changed at any time. Rates are per mille and
 * apply to peer frames only (never to hellos). */
typedef struct sim_net {
  uint32_t lat_min_ms, lat_max_ms; /* one-way latency, uniform */
  uint32_t loss_pm;
  uint32_t dup_pm;
  uint32_t reorder_pm; /* frame may overtake earlier ones on its conn */
} sim_net;

/* The fate of a peer frame, decided by a filter when it enters the
 * network. */
enum { SIM_PASS = 0, SIM_DROP = 1, SIM_DUP = 2 };

/* Called for every peer frame entering the network (after the random
 * faults chose to deliver it). m is the decoded frame (NULL when it does
 * not decode). May add delay through *extra_delay_ms. Returns SIM_*. */
typedef int (*sim_filter_fn)(void *arg, sim *s, int from, int to,
                             uint64_t conn, const wire_msg *m,
                             uint64_t *extra_delay_ms);

/* Observers, all optional. on_frame: a frame is about to be handed to node
 * i (m NULL when it does not decode); on_frame_end: it was handled.
 * on_stage: node i stages a write (val NULL: a delete); the returned tag
 * is kept with the staged write and passed to on_commit when the write is
 * committed (tag 0: no callback). */
typedef struct sim_hooks {
  void *arg;
  void (*on_frame)(void *arg, sim *s, int i, node_conn_kind kind,
                   const wire_msg *m);
  void (*on_frame_end)(void *arg, sim *s, int i);
  uint64_t (*on_stage)(void *arg, sim *s, int i, uint32_t part,
                       const uint8_t *key, size_t klen, const uint8_t *val,
                       size_t vlen);
  void (*on_commit)(void *arg, sim *s, int i, uint64_t tag);
} sim_hooks;

/* A reply (or the close, m NULL) on a client connection. */
typedef void (*sim_client_fn)(void *arg, sim *s, int client,
                              const wire_msg *m);

/* Fills cfg with the defaults above for seed. */
void sim_config_default(sim_config *cfg, uint64_t seed, uint32_t nodes);

/* Returns a new cluster with every node started (fresh stores, each
 * node's seeds being every node), or NULL with a message on stderr. Free
 * with sim_free. Call sim_wait_ring before sending requests. */
sim *sim_new(const sim_config *cfg);
void sim_free(sim *s); /* NULL is a no-op */

void sim_set_hooks(sim *s, const sim_hooks *h);
void sim_set_filter(sim *s, sim_filter_fn fn, void *arg);
void sim_set_net(sim *s, const sim_net *net);
const sim_net *sim_get_net(const sim *s);

/* Time. */
uint64_t sim_now(const sim *s);
/* Runs every event due up to and including time t. */
void sim_run_until(sim *s, uint64_t t_ms);
void sim_run_for(sim *s, uint64_t ms);
/* Runs until pred(arg) holds (checked after each event) or max_ms pass.
 * Returns whether pred held. */
bool sim_run_while_not(sim *s, bool (*pred)(void *arg, sim *s), void *arg,
                       uint64_t max_ms);
/* Runs until every up node has the same ring, with every node that was
 * ever started valid in it, and sees every up node alive. Returns false
 * after max_ms. */
bool sim_wait_ring(sim *s, uint64_t max_ms);

/* Randomness from the seed: the harness's own kv_splitmix64 stream. */
uint64_t sim_rand(sim *s);
/* Uniform in [lo, hi]. */
uint64_t sim_rand_range(sim *s, uint64_t lo, uint64_t hi);

/* Nodes. */
uint32_t sim_nodes(const sim *s);
bool sim_node_up(const sim *s, int i);
/* Whether node i was ever started (see late_mask). */
bool sim_node_started(const sim *s, int i);
node *sim_node_core(sim *s, int i); /* NULL when down */
const char *sim_node_name(const sim *s, int i);
int sim_node_by_name(const sim *s, const char *id); /* -1 when unknown */
/* Kills node i: a process crash (kill -9) loses staged writes, unsent
 * output and every connection; a machine crash also loses committed
 * writes that were not fsynced. */
void sim_crash(sim *s, int i, bool machine);
/* Starts node i again on its store with a new incarnation and its saved
 * ring. Returns 0 or -1. */
int sim_restart(sim *s, int i);
/* Wall-clock skew of node i, in ms (applies from now on). */
void sim_set_skew(sim *s, int i, int64_t skew_ms);

/* Partitions: frames from a to b are dropped (one-way). */
void sim_block(sim *s, int a, int b, bool blocked);
/* Cuts a and b apart both ways: closes their connections. */
void sim_cut(sim *s, int a, int b);
/* Cuts node i from every other node. */
void sim_isolate(sim *s, int i);
/* Cuts the nodes whose bit is set in side from the others. */
void sim_split(sim *s, uint32_t side);
/* Removes every partition. */
void sim_heal(sim *s);
bool sim_blocked(const sim *s, int a, int b);

/* Store access for checks (committed state with staged writes on top).
 * sim_store_get: 0 and *out (NULL when absent; caller frees), or an error.
 * sim_store_hints: number of hints node i keeps. sim_store_keys: calls fn
 * for every object key of node i (every partition). */
int sim_store_get(sim *s, int i, const void *key, size_t klen, obj **out);
size_t sim_store_hints(sim *s, int i);
size_t sim_store_staged(sim *s, int i);
/* From now on node i's store_put and store_del fail with err (a KV_E*
 * code; 0 ends the failure), as a full or broken disk would. */
void sim_store_fail(sim *s, int i, int err);

/* Clients. sim_client_open connects a client to node i (which must be up)
 * and returns its handle (>= 0) or -1; nothing is sent, not even HELLO.
 * fn gets every frame the node sends back and, once, NULL when the
 * connection closes. */
int sim_client_open(sim *s, int i, sim_client_fn fn, void *arg);
/* Sends one whole frame (header and body, as wire_encode makes it). */
void sim_client_send(sim *s, int c, const uint8_t *frame, size_t len);
/* Sends one frame body as it is (no header, any bytes): for fuzzing. */
void sim_client_send_body(sim *s, int c, const uint8_t *body, size_t len);
/* Delivers one frame body (any bytes) to node to as if from node from: on
 * the connection from opened to to (to sees it as PEER_IN), or with answer
 * on the one to opened to from (PEER_OUT). false when that connection is
 * not open. For fuzzing. */
bool sim_peer_send_body(sim *s, int from, int to, bool answer,
                        const uint8_t *body, size_t len);
/* Sends a wire message (encoded here). */
void sim_client_send_msg(sim *s, int c, const wire_msg *m);
/* Sends ADMIN cmd with one string argument (name NULL: none), e.g.
 * ("remove", "node", "n3"). */
void sim_client_admin(sim *s, int c, uint64_t req_id, const char *cmd,
                      const char *name, const char *value);
/* Sends HELLO. */
void sim_client_hello(sim *s, int c, uint64_t req_id);
void sim_client_close(sim *s, int c);
bool sim_client_connected(const sim *s, int c);
int sim_client_node(const sim *s, int c);

/* ---- scripted requests: one at a time, waiting for each answer ---- */

#define SIM_RC_TEXT_MAX 256

/* A client for scripted simulations (sim_epoch, sim_catchup,
 * sim_regions): it sends one request and runs the simulation until that
 * request's answer comes. */
typedef struct sim_rc {
  sim *s;
  int handle;       /* -1: not connected */
  uint64_t req_id;  /* the request waited for */
  bool got;         /* its answer came */
  uint32_t type;    /* the answer's type */
  int code;         /* ERROR: its code, else 0 */
  char text[SIM_RC_TEXT_MAX]; /* ERROR: its message, else "" */
} sim_rc;

/* Connects rc to node i (closing an earlier connection) and sends HELLO.
 * Returns false when node i is down. */
bool sim_rc_open(sim_rc *rc, sim *s, int i);
/* Sends m with a new req_id and runs until its answer, at most max_ms.
 * Returns the simulated ms it took, or UINT64_MAX without an answer. */
uint64_t sim_rc_call(sim_rc *rc, wire_msg *m, uint64_t max_ms);
void sim_rc_close(sim_rc *rc);
/* Reports a failed check of a scripted simulation on stderr: "PROG: seed
 * S: MESSAGE (replay: PROG --seed S -v)". */
void sim_script_fail(const char *prog, uint64_t seed, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parses a scripted simulation's command line, [--seed S] [--seeds COUNT]
 * [-v], into the defaults the caller set. Returns false (after printing
 * the usage of prog) on anything else. */
bool sim_seed_args(int argc, char **argv, const char *prog, uint64_t *seed,
                   uint64_t *count, bool *verbose);

/* Prints a message prefixed with the simulated time when verbose. */
void sim_logf(sim *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
bool sim_verbose(const sim *s);

#endif
