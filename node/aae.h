/*
 * aae.h: active anti-entropy exchange between replicas (node/aae.c), over
 * the per-partition Tictac trees the base keeps up to date (tree.h).
 *
 * Every interval_ms a node that is not already exchanging picks the next
 * partition it is a primary of and exchanges its tree with another alive
 * primary of it:
 *
 *   idle --(tick)--> AAE_BRANCHES sent       (phase LEAVES)
 *   <-- AAE_LEAVES of the differing branches
 *   --> AAE_KEYS: (key, hash) of the differing segments  (phase OBJS)
 *   <-- AAE_OBJS: their objects that differ, and the keys they lack
 *   merge theirs, send ours for what they lack (REPL_PUT) --> idle
 *   any error, timeout or lost connection --> idle
 *
 * The bytes exchanged grow with the differences, not with the data; an
 * exchange compares at most AAE_KEYS_MAX keys.
 *
 * Catch-up: when a peer comes (back) up, as gossip sees it (up after down,
 * a new incarnation, or first heard after our own start), every partition
 * both nodes are primaries of is queued for an exchange with it. Queued
 * exchanges run back to back, one at a time, ahead of the slow round and
 * throttled to catchup_bytes_per_s (AAE_CATCHUP_MB_PER_S by default); a partition whose exchange found
 * differences is queued again (up to AAE_CATCHUP_ROUNDS) until the trees
 * agree. So a node that returns, or returns empty, is caught up in seconds
 * whatever aae_interval_ms is.
 *
 * Repair (kvorum repair, aae_repair): the same queue, on demand: every
 * partition this node is a primary of (or one) with each other alive
 * primary, counted apart from catch-up (repair_* in stats and transfers).
 *
 * Depends on: core_int.h (the base), tree.h.
 */
#ifndef KV_NODE_AAE_H
#define KV_NODE_AAE_H

#include <stdbool.h>
#include <stdint.h>

#include "core.h"
#include "mp.h"

#define AAE_KEYS_MAX 100000u  /* keys one exchange may compare */
#define AAE_CATCHUP_MAX 8192u /* catch-up exchanges queued at most */
#define AAE_CATCHUP_ROUNDS 4u /* exchanges of one partition with one peer */
#define AAE_CATCHUP_MB_PER_S 32u /* catch-up traffic, by default */
#define AAE_PEERS_MAX 256u /* members whose liveness is remembered */

typedef struct core_req core_req;
typedef struct core_target core_target;

/* What an exchange this node started waits for. */
typedef enum aae_phase {
  AAE_PHASE_LEAVES = 1, /* the leaves of the branches that differ */
  AAE_PHASE_OBJS = 2,   /* the objects of the segments that differ */
} aae_phase;

/* A queued catch-up (or repair) exchange: partition part with peer. */
typedef struct aae_catchup {
  uint32_t part;
  uint32_t round; /* exchanges of it so far */
  bool repair;    /* asked for by kvorum repair */
  char peer[RING_NAME_MAX];
} aae_catchup;

/* What gossip last said of a member: a change to up, or a new
 * incarnation, starts a catch-up with it. */
typedef struct aae_peer {
  char id[RING_NAME_MAX];
  uint64_t incarnation;
  bool alive;
} aae_peer;

typedef struct aae_state {
  uint32_t interval_ms; /* one exchange per interval */
  uint64_t next_ms;
  uint32_t next_part; /* where the round-robin over partitions resumes */
  bool running;       /* an exchange this node started is under way */
  aae_catchup *queue; /* ring buffer of AAE_CATCHUP_MAX */
  uint32_t head, len;
  aae_peer peers[AAE_PEERS_MAX];
  uint32_t npeers;
  uint64_t window_ms;    /* start of the current second of catch-up */
  uint64_t window_bytes; /* stats.aae_bytes at its start */
  uint64_t catchup_bytes_per_s; /* 0: catch-up is off */
  uint32_t repair_next; /* where kvorum repair resumes after a full queue */
} aae_state;

/* Returns 0 or KV_ENOMEM. */
int aae_init(node *n, const node_config *cfg, uint64_t now);
void aae_free(node *n);
/* Gossip's news about m: queues a catch-up with it when it came up. */
void aae_member_changed(node *n, const gossip_member *m);
/* Catch-up exchanges still queued (repair ones included). */
uint32_t aae_catchup_left(const node *n);
/* The part of those that kvorum repair queued. */
uint32_t aae_repair_left(const node *n);
/* kvorum repair: queues an exchange of partition part (every partition
 * when part is UINT32_MAX) with each other alive primary, for each
 * partition this node is a primary of. Returns the exchanges queued and
 * sets *parts to the partitions they cover (0 and 0 when this node is no
 * primary of part, or nobody else is up). The queue holds at most
 * AAE_CATCHUP_MAX; what does not fit is left out, and the next repair of
 * every partition starts where this one stopped. */
uint32_t aae_repair(node *n, uint32_t part, uint32_t *parts);
/* Builds every partition's tree (q of them) from storage. Returns 0 or an
 * error. */
int aae_build_trees(node *n, uint32_t q);
/* Rebuilds the trees when the ring's partition count changed (a node that
 * joined a cluster created with another one). */
void aae_check_ring(node *n);
void aae_tick(node *n, uint64_t now);
/* AAE_BRANCHES and AAE_KEYS from the node that started an exchange. */
void aae_on_branches(node *n, uint64_t conn, const wire_msg *m,
                     const wire_pm_aae_branches *br);
void aae_on_keys(node *n, uint64_t conn, const wire_msg *m,
                 const wire_pm_aae_keys *ks);
/* The other replica's answer to an exchange this node started. */
void aae_on_reply(node *n, core_req *r, core_target *t, const wire_msg *m);
void aae_expired(node *n, core_req *r);

#endif
