/*
 * cache.h: a byte-bounded hash cache of stored objects, in front of
 * RocksDB (store.c keeps it write-through: committed writes go in, deletes
 * and dropped partitions go out). Keys and values are opaque bytes; an
 * entry owns one allocation holding both. When the bytes held pass the
 * budget, entries are evicted in CLOCK order (a second chance for entries
 * read since the hand last passed).
 *
 * Pure: depends on nothing but libc. Not thread-safe (loop thread only).
 */
#ifndef KV_CACHE_H
#define KV_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KVCACHE_SLOTS_MIN 1024u /* a power of two */

typedef struct kvcache kvcache; /* opaque */

/* Returns a cache holding at most budget bytes of keys and values (0: a
 * cache that holds nothing), or NULL on OOM. Free with kvcache_free. */
kvcache *kvcache_new(size_t budget);
void kvcache_free(kvcache *c); /* NULL is a no-op */

/* Looks key up. Returns true and points *val and *vlen at the cached value
 * (valid until the next change to the cache), or false. */
bool kvcache_get(kvcache *c, const uint8_t *key, size_t klen,
                 const uint8_t **val, size_t *vlen);
/* Inserts or replaces key with a copy of val. Returns 0 or KV_ENOMEM (then
 * key is no longer cached, which is always safe). */
int kvcache_put(kvcache *c, const uint8_t *key, size_t klen,
                const uint8_t *val, size_t vlen);
/* Like kvcache_put, but takes ownership of mem (malloc'd, key at mem,
 * value at mem + klen). */
int kvcache_put_owned(kvcache *c, uint8_t *mem, size_t klen, size_t vlen);
/* Forgets key. */
void kvcache_del(kvcache *c, const uint8_t *key, size_t klen);
/* Forgets every key starting with prefix (plen bytes). */
void kvcache_del_prefix(kvcache *c, const uint8_t *prefix, size_t plen);

/* Entries and bytes held, and lookups that hit / missed. */
typedef struct kvcache_stats {
  size_t entries, bytes, budget;
  uint64_t hits, misses, evictions;
} kvcache_stats;
void kvcache_stats_get(const kvcache *c, kvcache_stats *out);

#endif
