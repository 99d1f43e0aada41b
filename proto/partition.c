/*
 * partition.c: key to partition (partition.h).
 */
#include "partition.h"

#include <xxhash.h>

uint64_t kv_key_hash(const void *key, size_t len) {
  return XXH3_64bits(key, len);
}

uint32_t kv_partition_of_hash(uint32_t q, uint64_t hash) {
  if (q <= 1)
    return 0;
  /* floor(log2 q): equal to log2 q for the powers of two rings use, and
   * still below q for anything else. */
  unsigned bits = 31u - (unsigned)__builtin_clz(q);
  return (uint32_t)(hash >> (64u - bits));
}

uint32_t kv_partition(uint32_t q, const void *key, size_t len) {
  return kv_partition_of_hash(q, kv_key_hash(key, len));
}
