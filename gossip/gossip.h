/*
 * gossip.h: cluster membership, failure detection and ring agreement, as a
 * sans-IO state machine (riak_core_gossip, Cassandra's Gossiper, the
 * phi-accrual detector of Hayashibara et al.).
 *
 * Each member has an id, an incarnation, a heartbeat version that its owner
 * bumps every round, a status (joining, valid, leaving, removed), a region,
 * a zone, its client and peer addresses and its software version. Every
 * gossip_config.interval_ms a node syncs with a few peers (and sends a
 * digest to a seed until it has peers); newer entries win by
 * (incarnation, heartbeat).
 *
 * Liveness is local: phi-accrual over the arrivals of news that each
 * member is alive (its messages, newer heartbeats relayed by others);
 * alive when phi < phi_threshold.
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
 *
 * Choices made (the details):
 *
 * - Scuttlebutt, not whole tables (issue #18, docs/scaling.md): a round's
 *   message is a "sync": the sender's entry, its ring's (version,
 *   claimant, hash), a hash of its member table, the news vector (two
 *   bytes per member, in table order: the low byte of the heartbeat of the
 *   sender's newest news of the member, and how long ago that news says
 *   it was alive) and the entries that changed there in the last
 *   GOSSIP_RECENT_ROUNDS rounds (at most GOSSIP_RECENT_MAX). The table
 *   hash is the XOR of an XXH3 of every member's entry without its
 *   heartbeat, so equal hashes mean equal tables but heartbeats, and the
 *   vector is read by position. A receiver merges the entries first; if
 *   the hashes then differ it answers with its own recent entries
 *   (MISMATCH), the other answers that with its own again if they still
 *   differ (MISMATCH_AGAIN: changes that crossed), and if that does not
 *   make them agree either, the two swap whole tables (digests, at most
 *   GOSSIP_FULL_PER_ROUND a round). 1000 members: ~2 KB a sync instead of
 *   ~107 KB of table and ring.
 * - Small clusters (at most GOSSIP_DIRECT_MAX other members not removed):
 *   every round a node syncs with every one of them, down ones included,
 *   so every node sees every heartbeat within one latency (a dead node is
 *   seen down in ~4 s) and a partition heals; fanout of them answer with
 *   theirs. Larger ones: bounded fan-out and push-pull: fanout random
 *   alive members get a sync that asks for theirs back, and one random
 *   down member gets a probe (a sync without the vector) that asks for an
 *   answer, so a partition heals too. (Tables of more than 4 *
 *   GOSSIP_DIRECT_MAX members always use fan-out and pick peers by
 *   sampling.)
 * - News with a time: every node keeps, per member, its newest news: a
 *   heartbeat and the time the member was alive then (a message from it:
 *   now; a vector: now minus the age, in units of interval_ms /
 *   GOSSIP_AGE_STEPS rounded up; 255 units or more is "no news"). A
 *   vector's byte ahead of ours by 1..127 is newer news (a member we have
 *   down takes any byte whose time is newer than ours: it may have counted
 *   on for more than 127 rounds); its time is a phi arrival, and phi
 *   measures the silence since then (gossip/phi.h, gossip_phi_evidence).
 *   So a node that heard a member directly does not take the older news
 *   relays bring next for silence, and a large cluster's detector learns
 *   how old news usually is there. Heartbeats alone could not say that: a
 *   fresh one from a direct message, then relayed older ones, looked like
 *   seconds of silence (docs/scaling.md). Times alone could not either:
 *   relayed round and round, news looks fresher at every hop by its time
 *   in transit, so a dead node never went down; the heartbeat is what
 *   makes news new. A message held up in transit still makes its news
 *   look fresher by the delay (once). Heartbeats also travel in entries:
 *   they order entries, and a node seeing its own ahead of it jumps past
 *   it; a relayed entry with a newer heartbeat is no news for phi (its
 *   time is unknown), the member's own entry is.
 * - Rings by delta: a sync says which ring its sender has; the one behind
 *   asks (WANT_RING) and gets the chain of ring deltas (ring.h) from its
 *   ring to the sender's, kept for the last GOSSIP_RING_HISTORY changes,
 *   or the whole ring when there is no chain (WANT_FULL: a delta did not
 *   give the ring its hash says). A node that adopts a new ring, or makes
 *   one as claimant, pushes the delta at once to every alive member of a
 *   small cluster, else to fanout random ones: a rumour that reaches
 *   everyone in ~log(N) latencies, with the rounds' syncs for stragglers.
 *   A join of 1000 nodes and 4096 partitions: a delta of ~100 bytes.
 * - Entries merge field by field: (incarnation, heartbeat) belongs to the
 *   member itself, and the higher pair's addresses, region, zone and
 *   version win. The status carries its own status version, bumped by whoever
 *   changes it (claimant or operator); the higher status version wins, and
 *   on equal versions the later status (joining < valid < leaving <
 *   removed) wins, so an operator's leave/remove beats older entries. A
 *   node that sees a copy of its own heartbeat ahead of it (a restart with
 *   the same incarnation) jumps past it. A status remembers the member's
 *   incarnation it was decided for: a node removed in an earlier
 *   incarnation that starts again as joining (no ring with itself in it)
 *   joins again, even when a stale entry of that life made it valid
 *   meanwhile; a remove of the running incarnation sticks.
 * - Phi: a normal model of the recent silences, exponentially weighted over
 *   ~GOSSIP_PHI_WINDOW of them (gossip/phi.h), standard deviation at least
 *   interval_ms / GOSSIP_PHI_MIN_STD_DIVISOR, first estimate mean =
 *   interval_ms (plus the age of the first news). With 1 s rounds and
 *   threshold 8 a member heard directly is down after ~3.6 s of silence;
 *   in a cluster of 1000 news is ~3 s old and a dead member is down
 *   everywhere after ~5 s.
 *   Each arrival sets the time at which phi will reach the threshold; a
 *   check compares times (and in tables of more than GOSSIP_PHI_EAGER_MAX
 *   members runs only once the earliest of them passed), so
 *   gossip_member.phi is refreshed at every check in small tables and
 *   when a member goes down in large ones.
 * - Rings are ordered by (version, claimant id, hash): a higher version
 *   wins; on equal versions the smaller claimant id wins, and a known
 *   claimant beats "" (a ring restored from disk); with equal claimants
 *   (both "" after restarts) the smaller XXH3 of the ring's encoding wins,
 *   so two rings that claimants on both sides of a partition made with the
 *   same version converge even after every node restarted. The claimant
 *   adds every alive joining (or valid but missing) member, takes out
 *   leaving and removed ones, claims, bumps the version, marks the added
 *   valid and the taken out removed, and spreads the change (above), to
 *   the members whose status it set too. An operator's leave or remove
 *   spreads the same way.
 * - Start: a node with no seeds but itself forms a one-node cluster in
 *   gossip_new. A node with seeds waits GOSSIP_BOOT_ROUNDS rounds; then, if
 *   it still has no ring and knows no alive valid member, the smallest
 *   alive joining member it knows creates the first ring with every alive
 *   joining member. A node restarted with its persisted ring and its id in
 *   it starts valid, and the ring does not change.
 * - Dead members stay in the table (down) until an operator removes them;
 *   removed ones stay as tombstones so that old gossip cannot revive them.
 * - Limits: a node with seeds that hears from none within the boot rounds
 *   forms a cluster of its own (and merges when a seed answers later, as
 *   clusters of one do); the last valid member cannot leave (no claimant
 *   is left to take it out); a message that would exceed GOSSIP_MSG_MAX
 *   is not sent (a digest of GOSSIP_MEMBERS_MAX members with the longest
 *   names, and the ring, stays under it); ring_changed is not called when
 *   gossip_join drops the old ring, only when the new one arrives;
 *   io->send must not call back into gossip (a round builds its vector
 *   once for all its syncs).
 *
 * Wire format (msgpack; GOSSIP_WIRE_VERSION):
 *   entry     = [id, region, zone, client_addr, peer_addr, incarnation,
 *                heartbeat, status, status_version, status_incarnation,
 *                software_version]
 *   heartbeat = [version, 1, sender entry, ring version, claimant]
 *               (taken from older nodes; no longer sent)
 *   digest    = [version, 2, sender entry, ring version, claimant,
 *                want_reply, [entry...], ring_encode() bin | nil]
 *   sync      = [version, 3, sender entry, ring version, claimant,
 *                ring hash, flags, members hash, age unit, vector bin |
 *                nil, [recent entry...], ring part | nil]
 *     ring hash     XXH3-64 of the sender's ring_encode() (0: no ring)
 *     flags         1 REPLY: answer with a sync (with your vector);
 *                   2 MISMATCH: an answer to a sync whose members hash
 *                     differed from ours (after its entries were merged);
 *                   4 WANT_RING: your ring beats mine, send deltas from
 *                     mine (whose version and hash this sync's header
 *                     holds); 8 WANT_FULL: send the whole ring;
 *                   16 MISMATCH_AGAIN: an answer to a MISMATCH whose
 *                     entries did not make the hashes equal either
 *     members hash  XOR over the table of XXH3 of each entry without its
 *                   heartbeat
 *     age unit      milliseconds per unit of the ages
 *     vector        2 bytes per member in table order: the low byte of
 *                   the heartbeat of the sender's newest news of it, and
 *                   how many units ago that news says it was alive (0 for
 *                   the sender itself; 255: no news); read only when the
 *                   members hashes are equal
 *     ring part     [0, ring_encode() bin] | [1, base ring version, base
 *                   ring hash, [ring delta bin...]] (ring_delta_encode,
 *                   oldest first, leading from the base to the header's
 *                   ring)
 *   Kind 3 is an addition: kinds 1 and 2 are unchanged, and a digest is
 *   still what a node with no peers sends to its seeds and what two nodes
 *   whose tables disagree swap.
 * Decoders take fields after the listed ones and skip them, so a field
 * added at the end of an entry or a message reaches nodes that do not
 * know it yet without upsetting them. software_version (the member's
 * kvorumd version, "0.1.0") is such a field: entries of nodes that do not
 * send it decode with an empty version.
 *
 * Saved membership (gossip_members_encode, for the node's next start):
 *   [GOSSIP_WIRE_VERSION, [entry...]]  every member but this node, each
 *   with heartbeat 0 (the heartbeat changes every round; what is saved is
 *   who the members are and their status).
 */
#ifndef KV_GOSSIP_H
#define KV_GOSSIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ring.h"

#define GOSSIP_ADDR_MAX 64    /* "host:port" with NUL */
#define GOSSIP_MEMBERS_MAX RING_NODES_MAX /* removed ones included */
#define GOSSIP_SEEDS_MAX 16
#define GOSSIP_MSG_MAX (1024u * 1024u) /* largest payload we build or take */
#define GOSSIP_INTERVAL_MS_DEFAULT 1000
#define GOSSIP_FANOUT_DEFAULT 3
#define GOSSIP_FANOUT_MAX 16
#define GOSSIP_PHI_THRESHOLD_DEFAULT 8.0
#define GOSSIP_PHI_MIN_STD_DIVISOR 2 /* min std dev = interval_ms / this */
#define GOSSIP_BOOT_ROUNDS 2 /* rounds to hear from seeds before a new ring */
#define GOSSIP_CHECK_MS 50   /* liveness and claimant at most this often */
#define GOSSIP_N_DEFAULT 3
#define GOSSIP_REGION_DEFAULT "default"
#define GOSSIP_WIRE_VERSION 1
#define GOSSIP_VERSION_MAX 32 /* a member's software version, NUL included */
/* Scale (docs/scaling.md): */
#define GOSSIP_DIRECT_MAX 16    /* up to this many others: sync with them all */
#define GOSSIP_RECENT_MAX 16    /* changed entries a sync carries, at most */
#define GOSSIP_RECENT_ROUNDS 10 /* ... changed within this many rounds */
#define GOSSIP_RING_HISTORY 8   /* ring deltas kept for peers behind */
#define GOSSIP_FULL_PER_ROUND 4 /* digests (whole tables) sent per round */
#define GOSSIP_PHI_EAGER_MAX 64 /* tables up to this: phi at every check */
#define GOSSIP_AGE_STEPS 16     /* units of an age per interval_ms */
#define GOSSIP_AGE_UNIT_MS_MAX 65535 /* largest age unit a sync may say */

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
  uint64_t heartbeat; /* as its entries carried it (vectors only feed phi) */
  gossip_status status;
  bool alive;  /* local view (phi < threshold); self is always alive */
  double phi;  /* last computed phi */
  char version[GOSSIP_VERSION_MAX]; /* its software version; "" unknown */
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

/* Replicas kept in one region (gossip_config.replicas). */
typedef struct gossip_replicas {
  const char *region;
  uint32_t n;
} gossip_replicas;

typedef struct gossip_config {
  const char *id, *region, *zone; /* zone may be "" */
  const char *client_addr, *peer_addr;
  uint64_t incarnation;
  const char *const *seeds; /* peer addresses; may include our own */
  size_t nseeds;
  uint32_t q;                /* partitions of a ring this node creates */
  uint32_t n;                /* replicas of a ring this node creates */
  /* Per-region replicas of a ring this node creates (Cassandra's
   * NetworkTopologyStrategy): nreplicas entries, each a region and its
   * count; 0 entries means n replicas over the whole cluster. At most
   * RING_REGIONS_MAX; gossip_new fails on a bad entry. */
  const gossip_replicas *replicas;
  size_t nreplicas;
  uint32_t interval_ms;      /* default 1000 */
  uint32_t fanout;           /* default 3 */
  double phi_threshold;      /* default 8.0 */
  uint64_t rng_seed;
  const char *version; /* this node's software version (NULL: "") */
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
 * starts leaving (KV_ESTATE while it is still joining in this view, or
 * already leaving). gossip_remove: id is taken out (a dead node). Return
 * 0, KV_ENOTFOUND or KV_ESTATE. */
int gossip_join(gossip *g, const char *seed_addr, uint64_t now_ms);
int gossip_leave(gossip *g, const char *id, uint64_t now_ms);
int gossip_remove(gossip *g, const char *id, uint64_t now_ms);

/* The status version of member id (0 when unknown): bumped by every status
 * change, so that the newest change wins across the cluster. */
uint64_t gossip_status_version(const gossip *g, const char *id);
/* The id of the node that made the current ring ("" when not known, as for
 * a ring restored from disk). Owned by g. */
const char *gossip_claimant(const gossip *g);

/* Membership across restarts. gossip_members_encode appends what this node
 * knows of the other members (ids, addresses, incarnations, statuses and
 * their versions, removals included) to out: the node saves it whenever it
 * changes and hands it to gossip_members_restore at its next start, right
 * after gossip_new. Restored members are not alive until they are heard
 * from (like members learned from another node's table), and what gossip
 * says later wins as usual. encode returns 0 or KV_ENOMEM; restore returns
 * 0, or KV_EPROTO (nothing restored) for bytes encode did not make. */
int gossip_members_encode(const gossip *g, kvbuf *out);
int gossip_members_restore(gossip *g, const uint8_t *buf, size_t len,
                           uint64_t now_ms);

#endif
