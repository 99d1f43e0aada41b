/*
 * ring.h: the consistent-hash ring: Q equal partitions of the 64-bit
 * XXH3 hash space, a claim function that assigns them to nodes, and
 * preference lists (Dynamo's strategy 3; riak_core's chash/claim/apl).
 *
 * Partition p covers hashes [p * 2^64/Q, (p+1) * 2^64/Q): the partition of a
 * key is the top log2(Q) bits of XXH3-64(key). Q is a power of two fixed
 * when the cluster is created.
 *
 * A ring holds its member nodes (id, region, zone; looked up by id in
 * O(log M)), the owner of every partition, and a version. Claim is
 * balanced (every node within one partition of its fair share), moves
 * about Q/(M+1) partitions on a join and no more than it must on a leave,
 * and places the N replicas of a partition on distinct nodes, spread over
 * zones and regions when the cluster has them.
 *
 * Pure: depends on xxHash and mp.h (encoding) only; no I/O, no clock.
 */
#ifndef KV_RING_H
#define KV_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mp.h"

#define RING_Q_DEFAULT 64
#define RING_Q_MAX 65536    /* claim stays well under a second up to here */
#define RING_NODES_MAX 2048 /* members of one cluster, removed ones included   \
                             */
#define RING_REGIONS_MAX 16
#define RING_NAME_MAX 64 /* node ids, regions, zones, NUL included */
#define RING_N_MAX RING_NODES_MAX /* largest replica count, plain or per region */

typedef struct ring ring; /* opaque */

/* Hash of a key (XXH3-64) and its partition in a ring of q partitions. */
uint64_t ring_hash(const void *key, size_t len);
uint32_t ring_partition_of_hash(uint32_t q, uint64_t hash);
uint32_t ring_partition(const ring *r, const void *key, size_t len);

/* Returns a new ring with q partitions (power of two, 1..RING_Q_MAX) and no
 * nodes, version 0; NULL on bad q or OOM. Free with ring_free. */
ring *ring_new(uint32_t q);
void ring_free(ring *r); /* NULL is a no-op */
ring *ring_clone(const ring *r);

uint32_t ring_q(const ring *r);
uint64_t ring_version(const ring *r);
void ring_set_version(ring *r, uint64_t v);

/* Members. Node indices are stable until a node is removed. */
size_t ring_node_count(const ring *r);
/* Returns the index of node id, or -1. */
int ring_node_index(const ring *r, const char *id);
const char *ring_node_id(const ring *r, size_t idx);
const char *ring_node_region(const ring *r, size_t idx);
const char *ring_node_zone(const ring *r, size_t idx);
/* Adds a node (no partitions until ring_claim). Returns its index,
 * KV_EINVAL (duplicate id, name too long) or KV_EFULL. */
int ring_add_node(ring *r, const char *id, const char *region,
                  const char *zone);
/* Removes a node; its partitions are unowned until ring_claim. Returns 0 or
 * KV_ENOTFOUND. */
int ring_remove_node(ring *r, const char *id);

/* Replication: n replicas in total (one region), or per region
 * (ring_set_region_replicas, like Cassandra's NetworkTopologyStrategy).
 * The default is n = 3 and no per-region setting. */
/* ring_set_n clamps n to 1..RING_N_MAX. ring_set_region_replicas returns 0,
 * KV_EINVAL (empty or long name, n > RING_N_MAX) or KV_EFULL (more than
 * RING_REGIONS_MAX regions); n == 0 removes the region's setting. */
void ring_set_n(ring *r, uint32_t n);
uint32_t ring_n(const ring *r);
int ring_set_region_replicas(ring *r, const char *region, uint32_t n);
/* Number of regions with a per-region replica count (0 = plain n). */
size_t ring_region_count(const ring *r);
const char *ring_region_name(const ring *r, size_t i);
uint32_t ring_region_replicas(const ring *r, size_t i);

/* Reassigns partitions after membership changed: every partition owned by
 * a present node, balanced, minimal movement from the current assignment.
 * Returns the number of partitions whose owner changed. Does not change the
 * version. */
uint32_t ring_claim(ring *r);

/* Owner (node index) of partition p, or -1 when unowned. */
int ring_owner(const ring *r, uint32_t p);
/* Number of partitions node idx owns. */
uint32_t ring_owned_count(const ring *r, size_t idx);

/*
 * Preference list of partition p: the primaries first (n distinct nodes
 * clockwise from p, or each region's count of distinct nodes per region,
 * preferring distinct zones), then every other node in clockwise order as
 * fallbacks. Writes up to cap node indices into out and returns how many
 * there are in total; *nprimary is the number of primaries (fewer than N
 * only when the cluster has fewer nodes).
 */
size_t ring_preflist(const ring *r, uint32_t p, size_t *out, size_t cap,
                     size_t *nprimary);

/* Encoding (for gossip and the meta column family). ring_decode checks
 * every count against the input and every invariant (q a power of two,
 * owners in range). Returns 0/KV_ENOMEM; 0/KV_EPROTO/KV_ENOMEM. */
int ring_encode(const ring *r, kvbuf *out);
int ring_decode(const uint8_t *buf, size_t len, ring **out);
/* True when both rings have the same version, members and owners. */
bool ring_equal(const ring *a, const ring *b);

/*
 * Deltas: what turns one ring into another, for gossip to send a ring
 * change instead of the whole ring (a join moves ~Q/N partitions; the ring
 * of 1000 nodes and 4096 partitions encodes to ~40 KB, its join delta to
 * ~100 bytes). A delta names the nodes removed, the nodes appended and the
 * (partition, owner) pairs that differ once the removals renumbered the
 * rest; it applies to exactly one ring (same q, base version), and the
 * receiver checks the result (gossip compares the hash of its encoding).
 *
 * ring_delta_encode appends the delta from -> to to out. Returns 0,
 * KV_EINVAL (not expressible: another q, n or per-region replicas, or the
 * kept nodes not in the same order, as a claimant's rings always are) or
 * KV_ENOMEM. ring_delta_apply makes a new ring (*out, free with ring_free)
 * from `from` and a delta, checking every count, name, partition and owner.
 * Returns 0, KV_EPROTO (malformed, or not a delta of this ring) or
 * KV_ENOMEM; *out is NULL on error.
 */
int ring_delta_encode(const ring *from, const ring *to, kvbuf *out);
int ring_delta_apply(const ring *from, const uint8_t *buf, size_t len,
                     ring **out);

#endif
