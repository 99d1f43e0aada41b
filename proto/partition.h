/*
 * partition.h: which partition of a ring a key belongs to. The ring
 * (ring/) and every client that routes requests (client/) use this one
 * function, so they can never disagree.
 *
 * A key's hash is XXH3-64 of its bytes; with q partitions (a power of
 * two) its partition is the top log2(q) bits of the hash, so partitions
 * are equal ranges of the hash space (Dynamo's strategy 3, Riak's chash).
 *
 * Depends on: xxHash.
 */
#ifndef KV_PARTITION_H
#define KV_PARTITION_H

#include <stddef.h>
#include <stdint.h>

/* XXH3-64 of key. */
uint64_t kv_key_hash(const void *key, size_t len);

/* The partition of a hash among q partitions: the top floor(log2 q) bits
 * (0 when q <= 1), so always below q. */
uint32_t kv_partition_of_hash(uint32_t q, uint64_t hash);

/* kv_partition_of_hash(q, kv_key_hash(key, len)). */
uint32_t kv_partition(uint32_t q, const void *key, size_t len);

#endif
