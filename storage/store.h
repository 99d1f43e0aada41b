/*
 * store.h: the RocksDB storage engine of a node.
 *
 * Three column families: "default" holds objects, "hints" holds writes kept
 * for another node (sloppy quorum), "meta" holds node metadata (incarnation,
 * ring, ...). Object keys are prefixed by their partition number (2 bytes,
 * big-endian), so a partition is one key range: cheap to scan for
 * anti-entropy, to stream on handoff and to drop with a range delete.
 *
 * Group commit: writes are staged into one pending WriteBatch and are
 * visible to store_get at once (an overlay of staged keys is consulted
 * first); store_commit writes the batch to RocksDB (WAL written, not
 * fsynced: survives a killed process); store_sync fsyncs the WAL and is the
 * one call meant to run off the event loop, on another thread.
 *
 * Reads of committed objects go through a byte-bounded cache (cache.h)
 * kept write-through by store_commit, so a working set that fits in memory
 * is served without RocksDB's memtable and block lookups.
 *
 * RocksDB's errptr strings become KV_E* codes and a message in exactly one
 * place (store.c). Not thread-safe except store_sync, which may run on a
 * worker thread concurrently with everything but store_close.
 * Depends on: RocksDB C API, kv_err.h.
 */
#ifndef KV_STORE_H
#define KV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct store store; /* opaque */

/* Partition numbers are 0 .. STORE_PARTS_MAX - 1 (2-byte key prefixes, the
 * last one kept free so that every partition ends where the next prefix
 * starts); others give KV_EINVAL. */
#define STORE_PARTS_MAX 0xffffu

typedef struct store_config {
  const char *dir;         /* data directory; created if missing */
  size_t write_buffer_mb;  /* memtable size; 0 = default 8 */
  size_t block_cache_mb;   /* 0 = default 128 */
  size_t object_cache_mb;  /* cache of committed objects in front of
                              RocksDB; 0 = default 256 */
  bool object_cache_off;   /* no object cache at all */
} store_config;

/* Opens (creating if needed) the database in cfg->dir. Returns 0 and *out,
 * or KV_EBUSY when another process holds the directory ("data directory
 * DIR is in use by another kvorumd"), KV_ESTORAGE/KV_EIO/KV_ENOSPC/
 * KV_ECORRUPT with a message in err. *fresh is set when the directory held
 * no database before (the caller then picks a new incarnation). */
int store_open(const store_config *cfg, store **out, bool *fresh, char *err,
               size_t errlen);
/* Commits what is staged, then closes; store_close(NULL) is a no-op. */
void store_close(store *s);

/* Reads the object of key in partition part: staged writes first, then the
 * database. Returns 0 with *val (malloc'd, caller frees) and *vlen,
 * KV_ENOTFOUND, or a KV_E* code with a message from store_errmsg. */
/* RocksDB's estimate of the objects stored (tombstones and keys being
 * compacted away included): cheap, and only an estimate. */
uint64_t store_estimate_keys(store *s);

/* What /metrics shows of the storage engine; every field is RocksDB's own
 * figure (properties and its stats dump), read on the loop thread. */
typedef struct store_metrics {
  uint64_t keys;                     /* store_estimate_keys */
  uint64_t live_sst_bytes;           /* all column families */
  uint64_t memtable_bytes;           /* active and immutable memtables */
  uint64_t pending_compaction_bytes; /* RocksDB's estimate */
  uint64_t block_cache_bytes;
  uint64_t write_stalls;       /* stall events since open (cfstats) */
  double write_stall_seconds;  /* time writes were stalled (dbstats) */
  bool write_stopped;          /* writes are stopped right now */
  uint64_t ocache_hits, ocache_misses, ocache_bytes, ocache_entries;
} store_metrics;
void store_metrics_get(store *s, store_metrics *out);
int store_get(store *s, uint32_t part, const void *key, size_t klen,
              uint8_t **val, size_t *vlen);
/* Like store_get, without a copy: *val is lent, valid until the next call
 * into the store (a read, a staged write, a commit). */
int store_get_view(store *s, uint32_t part, const void *key, size_t klen,
                   const uint8_t **val, size_t *vlen);
/* Stages a put / delete of key in part into the pending batch. Returns 0 or
 * KV_ENOMEM. */
int store_stage_put(store *s, uint32_t part, const void *key, size_t klen,
                    const void *val, size_t vlen);
int store_stage_delete(store *s, uint32_t part, const void *key, size_t klen);
/* Number of staged, uncommitted writes. */
size_t store_staged(const store *s);
/* Writes the staged batch (one RocksDB write, WAL not fsynced) and clears
 * it. Returns 0 or a KV_E* code (KV_ENOSPC on a full disk): then none of
 * the staged writes happened. */
int store_commit(store *s);
/* Fsyncs the WAL: every write committed before the call is durable when it
 * returns 0. Thread-safe with respect to the loop thread. */
int store_sync(store *s);

/* Metadata (column family "meta"), written synchronously and fsynced.
 * store_meta_get returns 0 with a malloc'd *val, or KV_ENOTFOUND. */
int store_meta_get(store *s, const char *name, uint8_t **val, size_t *vlen);
int store_meta_put(store *s, const char *name, const void *val, size_t vlen);

/* Calls fn for every object of partition part, in key order, with the key
 * (without prefix) and value; fn returns 0 to go on, non-zero to stop (that
 * value is returned). Reads a consistent snapshot. */
typedef int (*store_scan_fn)(void *arg, const uint8_t *key, size_t klen,
                             const uint8_t *val, size_t vlen);
int store_scan(store *s, uint32_t part, store_scan_fn fn, void *arg);
/* Like store_scan, for at most limit objects (0 = no limit) whose keys
 * come strictly after after (NULL = from the first). Returns 0 when it
 * reached the end of the partition or the limit, fn's non-zero value, or a
 * KV_E* code. */
int store_scan_from(store *s, uint32_t part, const void *after,
                    size_t after_len, size_t limit, store_scan_fn fn,
                    void *arg);
/* Deletes every object of partition part (range delete). */
int store_drop_partition(store *s, uint32_t part);

/* Hints (column family "hints"): a write held for node owner. Keys are
 * owner \0 partition key; store_hint_scan visits one owner's hints. */
int store_hint_put(store *s, const char *owner, uint32_t part, const void *key,
                   size_t klen, const void *val, size_t vlen);
int store_hint_delete(store *s, const char *owner, uint32_t part,
                      const void *key, size_t klen);
/* Reads one hint: 0 with a malloc'd *val (caller frees), KV_ENOTFOUND, or
 * a KV_E* code. */
int store_hint_get(store *s, const char *owner, uint32_t part, const void *key,
                   size_t klen, uint8_t **val, size_t *vlen);
typedef int (*store_hint_fn)(void *arg, uint32_t part, const uint8_t *key,
                             size_t klen, const uint8_t *val, size_t vlen);
int store_hint_scan(store *s, const char *owner, store_hint_fn fn, void *arg);
/* The first owner with hints whose name sorts after `after` ("" for the
 * first): 0 with the name in out, KV_ENOTFOUND when there is none,
 * KV_ETOOBIG when it does not fit in cap, or an error. */
int store_hint_owner_next(store *s, const char *after, char *out, size_t cap);

/* After a failed write (a full disk, an I/O error) the store refuses every
 * write with that error, at once, and keeps serving reads: RocksDB must not
 * be written again before the database is reopened. store_broken tells
 * whether that is the case; store_recover reopens the database (call it on
 * the loop thread while no store_sync runs) and returns 0 when writes work
 * again, or the error (still broken). */
bool store_broken(const store *s);
int store_recover(store *s);

/* The sequence number of the last committed write (RocksDB's). */
uint64_t store_sequence(store *s);

/* Backup and maintenance. These two may run on a worker thread while the
 * loop thread reads and writes, but not together with store_recover or
 * store_close. Each returns 0 or a KV_E* code with a message in err (the
 * store's own message is not touched).
 *
 * store_checkpoint writes a consistent copy of the database into dir,
 * which must not exist (its parents are created): a RocksDB checkpoint,
 * the memtables flushed first, table files hard-linked where dir is on
 * the same file system (copied otherwise). Every write committed before
 * the call is in it; the copy is a data directory store_open (kvorumd
 * --data) opens as it is. *bytes: the size of its files (hard links
 * counted whole).
 *
 * store_compact compacts every column family over its whole key range,
 * the last level included, and returns when it is done (or, early, once
 * store_compact_cancel was called: at shutdown). */
int store_checkpoint(store *s, const char *dir, uint64_t *bytes, char *err,
                     size_t errlen);
int store_compact(store *s, char *err, size_t errlen);
void store_compact_cancel(store *s);

/* The message of the last error of this store (never NULL). */
const char *store_errmsg(const store *s);

#endif
