/*
 * gossip.h: cluster membership, failure detection and ring agreement, as a
 * sans-IO state machine (riak_core_gossip, Cassandra's Gossiper, the
 * phi-accrual detector of Hayashibara et al.).
 *
 * Each member has an id, an incarnation, a heartbeat version that its owner
 * bumps every round, a status (joining, valid, leaving, removed), a region,
 * a zone, and its client and peer addresses. Every gossip_config.interval_ms
 * a node sends a push-pull digest to a few random peers (and to a seed
 * until it has peers); newer entries win by (incarnation, heartbeat).
 *
 * Liveness is local: phi-accrual over the arrival times of each member's
 * heartbeat updates; alive when phi < phi_threshold.
 *
 * The ring is versioned and spread by gossip; the highest version wins.
 * Only one node decides ring changes at a time: the claimant, the member
 * with the smallest id among alive valid members. It adds joining members
 * and takes out leaving and removed ones by ring_claim, bumping the
 * version. So two nodes never hand out the same partitions differently.
 *
 *   joining --(claimant puts it in the ring)--> valid
 *   valid --(gossip_leave)--> leaving --(claimant takes it out)--> removed
 *   any --(gossip_remove, operator, node dead)--> removed
 *
 * All I/O goes through gossip_io: time is passed in, randomness comes from
 * a seeded generator inside, messages go out through io->send.
 * Pure: depends on ring.h and mp.h.
 */
#ifndef KV_GOSSIP_H
#define KV_GOSSIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../ring/ring.h"

#define GOSSIP_ADDR_MAX 64    /* "host:port" with NUL */
#define GOSSIP_MEMBERS_MAX RING_NODES_MAX
#define GOSSIP_SEEDS_MAX 16
#define GOSSIP_MSG_MAX (1024u * 1024u) /* largest payload we build or take */

typedef enum gossip_status {
  GOSSIP_JOINING,
  GOSSIP_VALID,
  GOSSIP_LEAVING,
  GOSSIP_REMOVED,
} gossip_status;

/* "joining", "up"/"down" (valid, by liveness), "leaving", "removed". */
const char *gossip_status_name(gossip_status s, bool alive);

typedef struct gossip_member {
  char id[RING_NAME_MAX];
  char region[RING_NAME_MAX];
  char zone[RING_NAME_MAX];
  char client_addr[GOSSIP_ADDR_MAX]; /* --listen */
  char peer_addr[GOSSIP_ADDR_MAX];   /* --peer */
  uint64_t incarnation;
  uint64_t heartbeat;
  gossip_status status;
  bool alive;  /* local view (phi < threshold); self is always alive */
  double phi;  /* last computed phi */
} gossip_member;

typedef struct gossip_io {
  void *ctx;
  /* Send payload to the node listening for peers at peer_addr. Best
   * effort: loss is fine, gossip repeats. */
  void (*send)(void *ctx, const char *peer_addr, const uint8_t *payload,
               size_t len);
  /* A new ring version was adopted (r stays owned by gossip; clone it to
   * keep it). May be NULL. */
  void (*ring_changed)(void *ctx, const ring *r);
  /* A member's status or liveness changed in this node's view. May be
   * NULL. */
  void (*member_changed)(void *ctx, const gossip_member *m);
} gossip_io;

typedef struct gossip_config {
  const char *id, *region, *zone; /* zone may be "" */
  const char *client_addr, *peer_addr;
  uint64_t incarnation;
  const char *const *seeds; /* peer addresses; may include our own */
  size_t nseeds;
  uint32_t q;                /* partitions of a ring this node creates */
  uint32_t n;                /* replicas of a ring this node creates */
  uint32_t interval_ms;      /* default 1000 */
  uint32_t fanout;           /* default 3 */
  double phi_threshold;      /* default 8.0 */
  uint64_t rng_seed;
} gossip_config;

typedef struct gossip gossip; /* opaque */

/*
 * Returns a new gossip state for one node, or NULL on OOM/bad config.
 * initial: the ring persisted from a previous run (copied), or NULL. With
 * no seeds (or only itself) and no ring, the node forms a cluster of one
 * and owns every partition. Free with gossip_free.
 */
gossip *gossip_new(const gossip_config *cfg, const gossip_io *io,
                   const ring *initial, uint64_t now_ms);
void gossip_free(gossip *g); /* NULL is a no-op */

/* Advances time: runs a round when one is due, recomputes liveness, lets
 * the claimant decide. Call at least every 100 ms. */
void gossip_tick(gossip *g, uint64_t now_ms);
/* Takes a payload a peer sent. Returns 0 or KV_EPROTO (ignored message). */
int gossip_receive(gossip *g, const uint8_t *payload, size_t len,
                   uint64_t now_ms);

/* The current ring (never NULL; owned by g). */
const ring *gossip_ring(const gossip *g);
size_t gossip_member_count(const gossip *g);
const gossip_member *gossip_member_at(const gossip *g, size_t i);
const gossip_member *gossip_find(const gossip *g, const char *id);
const gossip_member *gossip_self(const gossip *g);
/* True when id is alive in this node's view (self: always). */
bool gossip_alive(const gossip *g, const char *id);

/* Operator actions. gossip_join: this node (alone) joins the cluster that
 * seed_addr belongs to, dropping its own one-node ring. gossip_leave: id
 * starts leaving. gossip_remove: id is taken out (a dead node). Return 0,
 * KV_ENOTFOUND or KV_ESTATE. */
int gossip_join(gossip *g, const char *seed_addr, uint64_t now_ms);
int gossip_leave(gossip *g, const char *id, uint64_t now_ms);
int gossip_remove(gossip *g, const char *id, uint64_t now_ms);

#endif
