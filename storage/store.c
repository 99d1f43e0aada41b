/*
 * store.c: the RocksDB storage engine of a node (see store.h).
 *
 * One database, three column families ("default" objects, "hints", "meta").
 * Writes of the event loop are staged into one rocksdb_writebatch_t and,
 * for store_get, into an overlay: an open-addressing hash table from the
 * prefixed key to its latest staged value or deletion. store_commit writes
 * the batch (WAL written, not fsynced) and empties both. store_sync fsyncs
 * the WAL (rocksdb_flush_wal with sync, which calls DB::SyncWAL whatever
 * manual_wal_flush says) and is the one call made from another thread; it
 * touches only the database handle and, on failure, the error message,
 * which a mutex guards.
 *
 * Every RocksDB errptr string becomes a KV_E* code here, in store__error.
 * Depends on: RocksDB C API (rocksdb/c.h), pthreads, kv_err.h.
 */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "kv_err.h"
#include "cache.h"

#define STORE_ERRMSG_MAX 512
#define STORE_PATH_MAX 4096
#define STORE_WRITE_BUFFER_MB_DEFAULT 8
#define STORE_BLOCK_CACHE_MB_DEFAULT 128
#define STORE_OBJECT_CACHE_MB_DEFAULT 256
#define STORE_PARALLELISM 2
#define STORE_LEVELS 7
#define STORE_BLOOM_BITS_PER_KEY 10.0
#define STORE_PREFIX_LEN 2
#define STORE_ROCKSDB_LOG_FATAL 4 /* rocksdb::InfoLogLevel::FATAL_LEVEL */
/* Hint keys: owner, STORE_HINT_SEP, partition, key. */
#define STORE_HINT_SEP 0x00
#define STORE_OVERLAY_CAP_MIN 64 /* slots; a power of two */

enum { STORE_CF_DEFAULT, STORE_CF_HINTS, STORE_CF_META, STORE_CF_COUNT };
static const char *const store__cf_names[STORE_CF_COUNT] = {"default",
                                                            "hints", "meta"};

/* A staged write: key and value share one allocation (key first). */
typedef struct store__staged {
  uint64_t hash;
  uint8_t *key; /* NULL: free slot */
  size_t klen;
  uint8_t *val; /* points into the key's allocation */
  size_t vlen;
  bool deleted;
} store__staged;

struct store {
  rocksdb_t *db;
  rocksdb_options_t *opts;
  rocksdb_env_t *env; /* a handle on RocksDB's default env */
  rocksdb_pinnableslice_t *pinned; /* lent out by store_get_view */
  rocksdb_block_based_table_options_t *bbto;
  rocksdb_cache_t *cache;
  rocksdb_column_family_handle_t *cf[STORE_CF_COUNT];
  rocksdb_writeoptions_t *wo;      /* WAL written, not fsynced */
  rocksdb_writeoptions_t *wo_sync; /* fsynced (meta) */
  rocksdb_readoptions_t *ro;
  /* Committed objects, write-through (loop thread only). */
  kvcache *ocache;
  /* After a failed write (a full disk) RocksDB must not be written again
   * until the database is reopened (its WAL writer asserts otherwise):
   * every write fails at once with this code until store_recover. Read by
   * store_sync's thread, hence atomic. */
  int broken;
  uint64_t recover_free_min; /* bytes free before store_recover reopens */
  /* Group commit (loop thread only). */
  rocksdb_writebatch_t *batch;
  size_t staged;
  store__staged *slots;
  size_t slots_cap; /* power of two */
  size_t slots_used;
  /* Scratch for building keys (loop thread only). */
  uint8_t *kbuf;
  size_t kbuf_cap;
  char *dir;
  pthread_mutex_t err_mu; /* guards errmsg (store_sync may fail off-loop) */
  char errmsg[STORE_ERRMSG_MAX];
};

/* ---- errors ---- */

__attribute__((format(printf, 2, 3))) static void
store__msg(store *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  pthread_mutex_lock(&s->err_mu);
  vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
  pthread_mutex_unlock(&s->err_mu);
  va_end(ap);
}

/*
 * store__code turns a RocksDB error string into a KV_E* code; store__error
 * also makes it the store's message ("what: rocksdb text"), frees errptr,
 * and returns the code. A lock failure (another process has the directory
 * open) becomes KV_EBUSY with a message naming the directory.
 */
static int store__code(const char *e) {
  if (strstr(e, "No space left"))
    return KV_ENOSPC;
  if (strstr(e, "While lock file") || strstr(e, "/LOCK") ||
      strstr(e, "Resource temporarily unavailable"))
    return KV_EBUSY;
  if (strstr(e, "Corruption"))
    return KV_ECORRUPT;
  if (strstr(e, "IO error"))
    return KV_EIO;
  return KV_ESTORAGE;
}

static int store__error(store *s, char *errptr, const char *what) {
  const char *e = errptr ? errptr : "unknown error";
  int rc = store__code(e);
  if (rc == KV_EBUSY)
    store__msg(s, "data directory %s is in use by another kvorumd (%s)",
               s->dir, e);
  else
    store__msg(s, "%s: %s", what, e);
  rocksdb_free(errptr);
  return rc;
}

const char *store_errmsg(const store *s) { return s->errmsg; }

static void store__close_db(store *s);

/* The code every write fails with while the store is broken, else 0. */
static int store__fenced(const store *s) {
  return __atomic_load_n(&s->broken, __ATOMIC_ACQUIRE);
}

/* Records a failed write: the store refuses writes until recovered. */
static int store__break(store *s, int rc) {
  if (rc)
    __atomic_store_n(&s->broken, rc, __ATOMIC_RELEASE);
  return rc;
}

bool store_broken(const store *s) { return store__fenced(s) != 0; }

int store_recover(store *s) {
  int fenced = store__fenced(s);
  if (!fenced)
    return 0;
  /* Reopening replays the WAL into a new table: without room for it the
   * reopen fails and leaves no database to read from, so wait for space. */
  struct statvfs vfs;
  if (statvfs(s->dir, &vfs) == 0 &&
      (uint64_t)vfs.f_bavail * vfs.f_frsize < s->recover_free_min) {
    store__msg(s, "waiting for %llu MB free in %s before reopening",
               (unsigned long long)(s->recover_free_min >> 20), s->dir);
    return fenced;
  }
  store__close_db(s);
  const rocksdb_options_t *cf_opts[STORE_CF_COUNT];
  for (int i = 0; i < STORE_CF_COUNT; i++)
    cf_opts[i] = s->opts;
  char *e = NULL;
  s->db = rocksdb_open_column_families(s->opts, s->dir, STORE_CF_COUNT,
                                       store__cf_names, cf_opts, s->cf, &e);
  if (e || !s->db) {
    int rc = store__error(s, e, "cannot reopen the database");
    store__close_db(s);
    return rc;
  }
  __atomic_store_n(&s->broken, 0, __ATOMIC_RELEASE);
  return 0;
}

/* ---- keys ---- */

/* Makes room for n bytes in the key scratch. Returns 0 or KV_ENOMEM. */
static int store__kreserve(store *s, size_t n) {
  if (n <= s->kbuf_cap)
    return 0;
  size_t cap = s->kbuf_cap ? s->kbuf_cap : 256;
  while (cap < n)
    cap *= 2;
  uint8_t *p = realloc(s->kbuf, cap);
  if (!p)
    return KV_ENOMEM;
  s->kbuf = p;
  s->kbuf_cap = cap;
  return 0;
}

static void store__prefix(uint8_t *out, uint32_t part) {
  out[0] = (uint8_t)(part >> 8);
  out[1] = (uint8_t)part;
}

/* Builds the object key of (part, key) in the scratch. Returns 0,
 * KV_EINVAL (partition out of range) or KV_ENOMEM. */
static int store__okey(store *s, uint32_t part, const void *key, size_t klen) {
  if (part >= STORE_PARTS_MAX) {
    store__msg(s, "partition %u out of range", part);
    return KV_EINVAL;
  }
  if (store__kreserve(s, STORE_PREFIX_LEN + klen))
    return KV_ENOMEM;
  store__prefix(s->kbuf, part);
  if (klen)
    memcpy(s->kbuf + STORE_PREFIX_LEN, key, klen);
  return 0;
}

/* Builds the hint key owner \0 part key in the scratch; *len gets its
 * length. */
static int store__hkey(store *s, const char *owner, uint32_t part,
                       const void *key, size_t klen, size_t *len) {
  size_t olen = strlen(owner);
  if (part >= STORE_PARTS_MAX) {
    store__msg(s, "partition %u out of range", part);
    return KV_EINVAL;
  }
  if (store__kreserve(s, olen + 1 + STORE_PREFIX_LEN + klen))
    return KV_ENOMEM;
  memcpy(s->kbuf, owner, olen);
  s->kbuf[olen] = STORE_HINT_SEP;
  store__prefix(s->kbuf + olen + 1, part);
  if (klen)
    memcpy(s->kbuf + olen + 1 + STORE_PREFIX_LEN, key, klen);
  *len = olen + 1 + STORE_PREFIX_LEN + klen;
  return 0;
}

/* ---- overlay of staged writes ---- */

static uint64_t store__hash(const uint8_t *p, size_t n) { /* FNV-1a */
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

/* The slot of key, or the free slot where it would go. */
static store__staged *store__slot(store__staged *slots, size_t cap,
                                  uint64_t h, const uint8_t *key,
                                  size_t klen) {
  size_t i = (size_t)h & (cap - 1);
  for (;;) {
    store__staged *e = &slots[i];
    if (!e->key || (e->hash == h && e->klen == klen &&
                    memcmp(e->key, key, klen) == 0))
      return e;
    i = (i + 1) & (cap - 1);
  }
}

static int store__overlay_grow(store *s) {
  size_t cap = s->slots_cap ? s->slots_cap * 2 : STORE_OVERLAY_CAP_MIN;
  store__staged *n = calloc(cap, sizeof(*n));
  if (!n)
    return KV_ENOMEM;
  for (size_t i = 0; i < s->slots_cap; i++) {
    store__staged *e = &s->slots[i];
    if (e->key)
      *store__slot(n, cap, e->hash, e->key, e->klen) = *e;
  }
  free(s->slots);
  s->slots = n;
  s->slots_cap = cap;
  return 0;
}

static void store__overlay_clear(store *s) {
  for (size_t i = 0; i < s->slots_cap && s->slots_used; i++) {
    if (s->slots[i].key) {
      free(s->slots[i].key);
      memset(&s->slots[i], 0, sizeof(s->slots[i]));
      s->slots_used--;
    }
  }
  s->slots_used = 0;
}

/* Records the latest staged state of the key in the scratch (klen bytes).
 * Returns 0 or KV_ENOMEM (nothing changed). */
static int store__overlay_set(store *s, size_t klen, const void *val,
                              size_t vlen, bool deleted) {
  if ((s->slots_used + 1) * 2 > s->slots_cap && store__overlay_grow(s))
    return KV_ENOMEM;
  uint8_t *mem = malloc(klen + vlen + 1);
  if (!mem)
    return KV_ENOMEM;
  memcpy(mem, s->kbuf, klen);
  if (vlen)
    memcpy(mem + klen, val, vlen);
  uint64_t h = store__hash(s->kbuf, klen);
  store__staged *e = store__slot(s->slots, s->slots_cap, h, s->kbuf, klen);
  if (e->key)
    free(e->key);
  else
    s->slots_used++;
  e->hash = h;
  e->key = mem;
  e->klen = klen;
  e->val = mem + klen;
  e->vlen = vlen;
  e->deleted = deleted;
  return 0;
}

static const store__staged *store__overlay_get(const store *s, size_t klen) {
  if (!s->slots_used)
    return NULL;
  uint64_t h = store__hash(s->kbuf, klen);
  const store__staged *e =
      store__slot(s->slots, s->slots_cap, h, s->kbuf, klen);
  return e->key ? e : NULL;
}

/* ---- open and close ---- */

/* Closes the database handles (not the options). */
static void store__close_db(store *s) {
  if (s->pinned) {
    rocksdb_pinnableslice_destroy(s->pinned);
    s->pinned = NULL;
  }
  for (int i = 0; i < STORE_CF_COUNT; i++)
    if (s->cf[i])
      rocksdb_column_family_handle_destroy(s->cf[i]);
  memset(s->cf, 0, sizeof(s->cf));
  if (s->db)
    rocksdb_close(s->db);
  s->db = NULL;
}

static void store__destroy(store *s) {
  store__close_db(s);
  if (s->batch)
    rocksdb_writebatch_destroy(s->batch);
  if (s->wo)
    rocksdb_writeoptions_destroy(s->wo);
  if (s->wo_sync)
    rocksdb_writeoptions_destroy(s->wo_sync);
  if (s->ro)
    rocksdb_readoptions_destroy(s->ro);
  kvcache_free(s->ocache);
  if (s->opts)
    rocksdb_options_destroy(s->opts);
  if (s->env)
    rocksdb_env_destroy(s->env); /* the default env itself lives on */
  if (s->bbto)
    rocksdb_block_based_options_destroy(s->bbto);
  if (s->cache)
    rocksdb_cache_destroy(s->cache);
  store__overlay_clear(s);
  free(s->slots);
  free(s->kbuf);
  free(s->dir);
  pthread_mutex_destroy(&s->err_mu);
  free(s);
}

/* Sets the options: sizes from cfg, bloom filters, a block cache. */
static void store__options(store *s, const store_config *cfg) {
  size_t wb = cfg->write_buffer_mb ? cfg->write_buffer_mb
                                   : STORE_WRITE_BUFFER_MB_DEFAULT;
  size_t bc = cfg->block_cache_mb ? cfg->block_cache_mb
                                  : STORE_BLOCK_CACHE_MB_DEFAULT;
  s->opts = rocksdb_options_create();
  rocksdb_options_set_create_if_missing(s->opts, 1);
  /* RocksDB's own LOG file: fatal messages only. Its writer asserts when it
   * is written again after a failed write (a full disk), which would take
   * the node down; kvorumd logs storage errors itself. */
  rocksdb_options_set_info_log_level(s->opts, STORE_ROCKSDB_LOG_FATAL);
  rocksdb_options_set_create_missing_column_families(s->opts, 1);
  rocksdb_options_increase_parallelism(s->opts, STORE_PARALLELISM);
  /* Compactions run at the lowest CPU priority, as Cassandra's do: they
   * take idle time, not the loop thread's. Flushes keep theirs: a starved
   * flush would fill the memtables and stall every write. */
  rocksdb_env_t *env = rocksdb_create_default_env();
  rocksdb_env_lower_thread_pool_cpu_priority(env);
  rocksdb_options_set_env(s->opts, env);
  s->env = env;
  /* No compression where data is young and rewritten soon (L0, L1): it
   * cost a few percent of a loaded node for little space. LZ4 below. */
  int comp[STORE_LEVELS] = {rocksdb_no_compression, rocksdb_no_compression};
  for (size_t i = 2; i < STORE_LEVELS; i++)
    comp[i] = rocksdb_lz4_compression;
  rocksdb_options_set_num_levels(s->opts, STORE_LEVELS);
  rocksdb_options_set_compression_per_level(s->opts, comp, STORE_LEVELS);
  rocksdb_options_set_write_buffer_size(s->opts, wb * 1024 * 1024);
  /* An overwrite of a key the memtable holds, no larger than the value
   * there, replaces it in place: the memtable keeps one entry per hot key
   * instead of one per write, so inserts search a smaller skiplist and
   * flushes write less (bench/README.md: 6% less CPU per request on three
   * nodes). It gives up point-in-time iterators over the memtable, which
   * kvorum does not use: every scan runs to its end on the loop thread,
   * the only writer, and needs only a key's latest value. One writer
   * thread, so no concurrent memtable writes, which it excludes. */
  rocksdb_options_set_allow_concurrent_memtable_write(s->opts, 0);
  rocksdb_options_set_inplace_update_support(s->opts, 1);
  s->recover_free_min = (uint64_t)(2 * wb + 8) * 1024 * 1024;
  s->cache = rocksdb_cache_create_lru(bc * 1024 * 1024);
  s->bbto = rocksdb_block_based_options_create();
  rocksdb_block_based_options_set_block_cache(s->bbto, s->cache);
  /* The table options take ownership of the filter policy. */
  rocksdb_block_based_options_set_filter_policy(
      s->bbto, rocksdb_filterpolicy_create_bloom(STORE_BLOOM_BITS_PER_KEY));
  rocksdb_options_set_block_based_table_factory(s->opts, s->bbto);
  s->wo = rocksdb_writeoptions_create();
  rocksdb_writeoptions_set_sync(s->wo, 0);
  s->wo_sync = rocksdb_writeoptions_create();
  rocksdb_writeoptions_set_sync(s->wo_sync, 1);
  s->ro = rocksdb_readoptions_create();
  if (!cfg->object_cache_off) {
    size_t oc = cfg->object_cache_mb ? cfg->object_cache_mb
                                     : STORE_OBJECT_CACHE_MB_DEFAULT;
    s->ocache = kvcache_new(oc * 1024 * 1024);
  }
  s->batch = rocksdb_writebatch_create();
}

/* Creates dir and any missing parents (mkdir -p). Returns 0 or -1 with
 * errno set. */
static int store__mkdirs(const char *dir) {
  char path[STORE_PATH_MAX];
  size_t n = strlen(dir);
  if (n == 0 || n >= sizeof(path)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(path, dir, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (path[i] != '/' && path[i] != '\0')
      continue;
    char c = path[i];
    path[i] = '\0';
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
      return -1;
    path[i] = c;
  }
  return 0;
}

int store_open(const store_config *cfg, store **out, bool *fresh, char *err,
               size_t errlen) {
  char path[STORE_PATH_MAX];
  *out = NULL;
  if (fresh)
    *fresh = false;
  if (!cfg || !cfg->dir || !*cfg->dir) {
    snprintf(err, errlen, "no data directory given");
    return KV_EINVAL;
  }
  if ((size_t)snprintf(path, sizeof(path), "%s/CURRENT", cfg->dir) >=
      sizeof(path)) {
    snprintf(err, errlen, "data directory path too long");
    return KV_EINVAL;
  }
  store *s = calloc(1, sizeof(*s));
  if (!s || !(s->dir = strdup(cfg->dir))) {
    free(s);
    snprintf(err, errlen, "out of memory");
    return KV_ENOMEM;
  }
  pthread_mutex_init(&s->err_mu, NULL);
  snprintf(s->errmsg, sizeof(s->errmsg), "no error");
  if (store__mkdirs(cfg->dir) != 0) {
    int e = errno;
    snprintf(err, errlen, "cannot create data directory %s: %s", cfg->dir,
             strerror(e));
    store__destroy(s);
    return e == ENOSPC ? KV_ENOSPC : KV_EIO;
  }
  bool had_db = access(path, F_OK) == 0;
  store__options(s, cfg);
  const rocksdb_options_t *cf_opts[STORE_CF_COUNT];
  for (int i = 0; i < STORE_CF_COUNT; i++)
    cf_opts[i] = s->opts;
  char *e = NULL;
  s->db = rocksdb_open_column_families(s->opts, cfg->dir, STORE_CF_COUNT,
                                       store__cf_names, cf_opts, s->cf, &e);
  if (e || !s->db) {
    int rc = store__error(s, e, "cannot open the database");
    snprintf(err, errlen, "%s", s->errmsg);
    if (s->db) {
      rocksdb_close(s->db);
      s->db = NULL;
    }
    memset(s->cf, 0, sizeof(s->cf));
    store__destroy(s);
    return rc;
  }
  if (fresh)
    *fresh = !had_db;
  *out = s;
  return 0;
}

void store_close(store *s) {
  if (!s)
    return;
  store_commit(s);
  store__destroy(s);
}

/* ---- objects ---- */

/* Copies n bytes at p into a malloc'd buffer for the caller. */
static int store__copy(const void *p, size_t n, uint8_t **val, size_t *vlen) {
  uint8_t *v = malloc(n ? n : 1);
  if (!v)
    return KV_ENOMEM;
  if (n)
    memcpy(v, p, n);
  *val = v;
  *vlen = n;
  return 0;
}

/* Copies a pinnable slice out for the caller and destroys it. */
static int store__take(rocksdb_pinnableslice_t *ps, uint8_t **val,
                       size_t *vlen) {
  size_t n = 0;
  const char *p = rocksdb_pinnableslice_value(ps, &n);
  int rc = store__copy(p, n, val, vlen);
  rocksdb_pinnableslice_destroy(ps);
  return rc;
}

/* Reads key (klen bytes of the scratch) from column family cf into a
 * pinned slice (the caller destroys it). */
static int store__pin(store *s, int cf, size_t klen,
                      rocksdb_pinnableslice_t **out, const char *what) {
  *out = NULL;
  if (!s->db)
    return store__fenced(s) ? store__fenced(s) : KV_ESTORAGE;
  char *e = NULL;
  rocksdb_pinnableslice_t *ps = rocksdb_get_pinned_cf(
      s->db, s->ro, s->cf[cf], (const char *)s->kbuf, klen, &e);
  if (e) {
    rocksdb_pinnableslice_destroy(ps);
    return store__error(s, e, what);
  }
  if (!ps)
    return KV_ENOTFOUND;
  *out = ps;
  return 0;
}

/* Reads key (klen bytes of the scratch) from column family cf. */
static int store__get(store *s, int cf, size_t klen, uint8_t **val,
                      size_t *vlen, const char *what) {
  rocksdb_pinnableslice_t *ps;
  int rc = store__pin(s, cf, klen, &ps, what);
  return rc ? rc : store__take(ps, val, vlen);
}

/* Drops the slice the last store_get_view read from RocksDB lent out. */
static void store__unpin(store *s) {
  if (s->pinned) {
    rocksdb_pinnableslice_destroy(s->pinned);
    s->pinned = NULL;
  }
}

int store_get_view(store *s, uint32_t part, const void *key, size_t klen,
                   const uint8_t **val, size_t *vlen) {
  *val = NULL;
  *vlen = 0;
  store__unpin(s);
  int rc = store__okey(s, part, key, klen);
  if (rc)
    return rc;
  klen += STORE_PREFIX_LEN;
  const store__staged *st = store__overlay_get(s, klen);
  if (st) {
    if (st->deleted)
      return KV_ENOTFOUND;
    *val = st->val;
    *vlen = st->vlen;
    return 0;
  }
  if (s->ocache && kvcache_get(s->ocache, s->kbuf, klen, val, vlen))
    return 0;
  rc = store__pin(s, STORE_CF_DEFAULT, klen, &s->pinned, "read failed");
  if (rc)
    return rc;
  const char *p = rocksdb_pinnableslice_value(s->pinned, vlen);
  *val = (const uint8_t *)p;
  if (s->ocache)
    kvcache_put(s->ocache, s->kbuf, klen, *val, *vlen);
  return 0;
}

int store_get(store *s, uint32_t part, const void *key, size_t klen,
              uint8_t **val, size_t *vlen) {
  const uint8_t *v;
  size_t n;
  *val = NULL;
  *vlen = 0;
  int rc = store_get_view(s, part, key, klen, &v, &n);
  if (rc)
    return rc;
  rc = store__copy(v, n, val, vlen);
  store__unpin(s);
  return rc;
}

int store_stage_put(store *s, uint32_t part, const void *key, size_t klen,
                    const void *val, size_t vlen) {
  if (store__fenced(s))
    return store__fenced(s);
  int rc = store__okey(s, part, key, klen);
  if (rc)
    return rc;
  klen += STORE_PREFIX_LEN;
  if ((rc = store__overlay_set(s, klen, val, vlen, false)))
    return rc;
  rocksdb_writebatch_put_cf(s->batch, s->cf[STORE_CF_DEFAULT],
                            (const char *)s->kbuf, klen, val, vlen);
  s->staged++;
  return 0;
}

int store_stage_delete(store *s, uint32_t part, const void *key,
                       size_t klen) {
  if (store__fenced(s))
    return store__fenced(s);
  int rc = store__okey(s, part, key, klen);
  if (rc)
    return rc;
  klen += STORE_PREFIX_LEN;
  if ((rc = store__overlay_set(s, klen, NULL, 0, true)))
    return rc;
  rocksdb_writebatch_delete_cf(s->batch, s->cf[STORE_CF_DEFAULT],
                               (const char *)s->kbuf, klen);
  s->staged++;
  return 0;
}

size_t store_staged(const store *s) { return s->staged; }

int store_commit(store *s) {
  if (!s->staged)
    return 0;
  char *e = NULL;
  int fenced = store__fenced(s);
  if (!fenced)
    rocksdb_write(s->db, s->wo, s->batch, &e);
  /* Committed or failed as a whole: either way the batch is done with. */
  rocksdb_writebatch_clear(s->batch);
  /* What was committed becomes what the cache holds. */
  for (size_t i = 0; i < s->slots_cap && s->ocache; i++) {
    store__staged *st = &s->slots[i];
    if (!st->key)
      continue;
    if (st->deleted || e || fenced) {
      kvcache_del(s->ocache, st->key, st->klen);
      continue;
    }
    kvcache_put_owned(s->ocache, st->key, st->klen, st->vlen);
    memset(st, 0, sizeof(*st));
    s->slots_used--;
  }
  store__overlay_clear(s);
  s->staged = 0;
  if (fenced)
    return fenced;
  return e ? store__break(s, store__error(s, e, "write failed")) : 0;
}

int store_sync(store *s) {
  int fenced = store__fenced(s);
  if (fenced)
    return fenced;
  char *e = NULL;
  rocksdb_flush_wal(s->db, 1, &e);
  return e ? store__break(s, store__error(s, e, "fsync of the write-ahead "
                                                  "log failed"))
           : 0;
}

/* ---- meta ---- */

uint64_t store_estimate_keys(store *s) {
  char *v = s && s->db ? rocksdb_property_value_cf(
                             s->db, s->cf[STORE_CF_DEFAULT],
                             "rocksdb.estimate-num-keys")
                       : NULL;
  uint64_t n = v ? strtoull(v, NULL, 10) : 0;
  rocksdb_free(v);
  return n;
}

/* Sum of an integer property over every column family. */
static uint64_t store__prop_sum(store *s, const char *name) {
  uint64_t sum = 0;
  for (int i = 0; i < STORE_CF_COUNT; i++) {
    uint64_t v = 0;
    if (rocksdb_property_int_cf(s->db, s->cf[i], name, &v) == 0)
      sum += v;
  }
  return sum;
}

/* The stall events in RocksDB's cfstats text: the line "Stalls(count):
 * 0 level0_slowdown, 0 level0_slowdown_with_compaction, ..., interval 0
 * total count" holds one cumulative count per cause, then the interval's
 * total; the sum of the causes is the total since open. */
static uint64_t store__stall_count(const char *text) {
  const char *p = text ? strstr(text, "Stalls(count):") : NULL;
  if (!p)
    return 0;
  p += strlen("Stalls(count):");
  uint64_t sum = 0;
  while (*p && *p != '\n') {
    while (*p == ' ' || *p == ',')
      p++;
    if (strncmp(p, "interval", 8) == 0)
      break;
    char *end;
    uint64_t v = strtoull(p, &end, 10);
    if (end == p)
      break;
    sum += v;
    p = end;
    while (*p && *p != ',' && *p != '\n')
      p++; /* the cause's name */
  }
  return sum;
}

/* "Cumulative stall: 00:01:2.500 H:M:S" -> 62.5 seconds, or 0. */
static double store__stall_seconds(const char *text) {
  const char *p = text ? strstr(text, "Cumulative stall: ") : NULL;
  unsigned h = 0, m = 0;
  double sec = 0;
  if (!p || sscanf(p + 18, "%u:%u:%lf", &h, &m, &sec) != 3)
    return 0;
  return h * 3600.0 + m * 60.0 + sec;
}

void store_metrics_get(store *s, store_metrics *out) {
  memset(out, 0, sizeof(*out));
  if (s->ocache) {
    kvcache_stats cs;
    kvcache_stats_get(s->ocache, &cs);
    out->ocache_hits = cs.hits;
    out->ocache_misses = cs.misses;
    out->ocache_bytes = cs.bytes;
    out->ocache_entries = cs.entries;
  }
  if (!s->db)
    return;
  out->keys = store_estimate_keys(s);
  out->live_sst_bytes = store__prop_sum(s, "rocksdb.live-sst-files-size");
  out->memtable_bytes = store__prop_sum(s, "rocksdb.cur-size-all-mem-tables");
  out->pending_compaction_bytes =
      store__prop_sum(s, "rocksdb.estimate-pending-compaction-bytes");
  out->block_cache_bytes = s->cache ? rocksdb_cache_get_usage(s->cache) : 0;
  uint64_t stopped = 0;
  for (int i = 0; i < STORE_CF_COUNT; i++) {
    char *cf = rocksdb_property_value_cf(s->db, s->cf[i], "rocksdb.cfstats");
    out->write_stalls += store__stall_count(cf);
    rocksdb_free(cf);
  }
  char *db = rocksdb_property_value(s->db, "rocksdb.dbstats");
  out->write_stall_seconds = store__stall_seconds(db);
  rocksdb_free(db);
  if (rocksdb_property_int(s->db, "rocksdb.is-write-stopped", &stopped) == 0)
    out->write_stopped = stopped != 0;
}

int store_meta_get(store *s, const char *name, uint8_t **val, size_t *vlen) {
  if (!s->db)
    return store__fenced(s) ? store__fenced(s) : KV_ESTORAGE;
  size_t n = strlen(name);
  *val = NULL;
  *vlen = 0;
  if (store__kreserve(s, n + 1))
    return KV_ENOMEM;
  memcpy(s->kbuf, name, n);
  return store__get(s, STORE_CF_META, n, val, vlen, "metadata read failed");
}

int store_meta_put(store *s, const char *name, const void *val, size_t vlen) {
  if (store__fenced(s))
    return store__fenced(s);
  char *e = NULL;
  rocksdb_put_cf(s->db, s->wo_sync, s->cf[STORE_CF_META], name, strlen(name),
                 val, vlen, &e);
  return e ? store__break(s, store__error(s, e, "metadata write failed")) : 0;
}

/* ---- scans ---- */

/* Iterates column family cf over [lo, hi) on a snapshot, starting at seek
 * (skipping a key equal to it when skip_eq). Calls visit for each key; a
 * non-zero return stops the scan and is returned. At most limit keys (0 =
 * no limit). The bounds and seek key must stay valid and unchanged during
 * the whole scan (visit may use the store's key scratch). */
typedef int (*store__visit_fn)(void *arg, const uint8_t *key, size_t klen,
                               const uint8_t *val, size_t vlen);

static int store__iterate(store *s, int cf, const uint8_t *lo, size_t lolen,
                          const uint8_t *hi, size_t hilen,
                          const uint8_t *seek, size_t seeklen, bool skip_eq,
                          size_t limit, store__visit_fn visit, void *arg) {
  const rocksdb_snapshot_t *snap = rocksdb_create_snapshot(s->db);
  rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
  rocksdb_readoptions_set_snapshot(ro, snap);
  rocksdb_readoptions_set_iterate_lower_bound(ro, (const char *)lo, lolen);
  if (hi)
    rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, hilen);
  rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, s->cf[cf]);
  int rc = 0;
  size_t n = 0;
  rocksdb_iter_seek(it, (const char *)seek, seeklen);
  if (skip_eq && rocksdb_iter_valid(it)) {
    size_t kl = 0;
    const char *k = rocksdb_iter_key(it, &kl);
    if (kl == seeklen && memcmp(k, seek, kl) == 0)
      rocksdb_iter_next(it);
  }
  for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
    size_t kl = 0, vl = 0;
    const char *k = rocksdb_iter_key(it, &kl);
    if (limit && n == limit)
      break;
    const char *v = rocksdb_iter_value(it, &vl);
    n++;
    if ((rc = visit(arg, (const uint8_t *)k, kl, (const uint8_t *)v, vl)))
      break;
  }
  if (!rc) {
    char *e = NULL;
    rocksdb_iter_get_error(it, &e);
    if (e)
      rc = store__error(s, e, "scan failed");
  }
  rocksdb_iter_destroy(it);
  rocksdb_readoptions_destroy(ro);
  rocksdb_release_snapshot(s->db, snap);
  return rc;
}

typedef struct store__scan_ctx {
  store_scan_fn fn;
  void *arg;
} store__scan_ctx;

static int store__scan_visit(void *arg, const uint8_t *key, size_t klen,
                             const uint8_t *val, size_t vlen) {
  store__scan_ctx *c = arg;
  return c->fn(c->arg, key + STORE_PREFIX_LEN, klen - STORE_PREFIX_LEN, val,
               vlen);
}

int store_scan_from(store *s, uint32_t part, const void *after,
                    size_t after_len, size_t limit, store_scan_fn fn,
                    void *arg) {
  if (!s->db)
    return store__fenced(s) ? store__fenced(s) : KV_ESTORAGE;
  uint8_t lo[STORE_PREFIX_LEN], hi[STORE_PREFIX_LEN];
  size_t alen = after ? after_len : 0;
  if (part >= STORE_PARTS_MAX) {
    store__msg(s, "partition %u out of range", part);
    return KV_EINVAL;
  }
  /* The seek key gets its own copy: fn may use the key scratch. */
  uint8_t *seek = malloc(STORE_PREFIX_LEN + alen);
  if (!seek)
    return KV_ENOMEM;
  store__prefix(seek, part);
  if (alen)
    memcpy(seek + STORE_PREFIX_LEN, after, alen);
  store__prefix(lo, part);
  store__prefix(hi, part + 1);
  store__scan_ctx c = {fn, arg};
  int rc = store__iterate(s, STORE_CF_DEFAULT, lo, sizeof(lo), hi, sizeof(hi),
                          seek, STORE_PREFIX_LEN + alen, after != NULL, limit,
                          store__scan_visit, &c);
  free(seek);
  return rc;
}

int store_scan(store *s, uint32_t part, store_scan_fn fn, void *arg) {
  return store_scan_from(s, part, NULL, 0, 0, fn, arg);
}

int store_drop_partition(store *s, uint32_t part) {
  if (store__fenced(s))
    return store__fenced(s);
  uint8_t lo[STORE_PREFIX_LEN], hi[STORE_PREFIX_LEN];
  if (part >= STORE_PARTS_MAX) {
    store__msg(s, "partition %u out of range", part);
    return KV_EINVAL;
  }
  store__prefix(lo, part);
  store__prefix(hi, part + 1);
  if (s->ocache)
    kvcache_del_prefix(s->ocache, lo, sizeof(lo));
  char *e = NULL;
  rocksdb_delete_range_cf(s->db, s->wo, s->cf[STORE_CF_DEFAULT],
                          (const char *)lo, sizeof(lo), (const char *)hi,
                          sizeof(hi), &e);
  return e ? store__break(s, store__error(s, e, "dropping a partition failed")) : 0;
}

/* ---- hints ---- */

int store_hint_put(store *s, const char *owner, uint32_t part, const void *key,
                   size_t klen, const void *val, size_t vlen) {
  if (store__fenced(s))
    return store__fenced(s);
  size_t n = 0;
  int rc = store__hkey(s, owner, part, key, klen, &n);
  if (rc)
    return rc;
  char *e = NULL;
  rocksdb_put_cf(s->db, s->wo, s->cf[STORE_CF_HINTS], (const char *)s->kbuf,
                 n, val, vlen, &e);
  return e ? store__break(s, store__error(s, e, "hint write failed")) : 0;
}

int store_hint_get(store *s, const char *owner, uint32_t part, const void *key,
                   size_t klen, uint8_t **val, size_t *vlen) {
  size_t n = 0;
  *val = NULL;
  *vlen = 0;
  int rc = store__hkey(s, owner, part, key, klen, &n);
  if (rc)
    return rc;
  return store__get(s, STORE_CF_HINTS, n, val, vlen, "hint read failed");
}

int store_hint_delete(store *s, const char *owner, uint32_t part,
                      const void *key, size_t klen) {
  if (store__fenced(s))
    return store__fenced(s);
  size_t n = 0;
  int rc = store__hkey(s, owner, part, key, klen, &n);
  if (rc)
    return rc;
  char *e = NULL;
  rocksdb_delete_cf(s->db, s->wo, s->cf[STORE_CF_HINTS],
                    (const char *)s->kbuf, n, &e);
  return e ? store__break(s, store__error(s, e, "hint delete failed")) : 0;
}

typedef struct store__hint_ctx {
  size_t olen;
  store_hint_fn fn;
  void *arg;
} store__hint_ctx;

static int store__hint_visit(void *arg, const uint8_t *key, size_t klen,
                             const uint8_t *val, size_t vlen) {
  store__hint_ctx *c = arg;
  size_t head = c->olen + 1 + STORE_PREFIX_LEN;
  if (klen < head)
    return 0; /* not a hint key of ours; cannot happen within bounds */
  uint32_t part = ((uint32_t)key[c->olen + 1] << 8) | key[c->olen + 2];
  return c->fn(c->arg, part, key + head, klen - head, val, vlen);
}

typedef struct store__owner_ctx {
  char *out;
  size_t cap;
  int rc;
} store__owner_ctx;

static int store__owner_visit(void *arg, const uint8_t *key, size_t klen,
                              const uint8_t *val, size_t vlen) {
  store__owner_ctx *c = arg;
  (void)val;
  (void)vlen;
  const uint8_t *sep = memchr(key, STORE_HINT_SEP, klen);
  if (!sep)
    return 0; /* not a hint key: look further */
  size_t n = (size_t)(sep - key);
  if (n + 1 > c->cap) {
    c->rc = KV_ETOOBIG;
    return 1;
  }
  memcpy(c->out, key, n);
  c->out[n] = '\0';
  c->rc = 0;
  return 1;
}

int store_hint_owner_next(store *s, const char *after, char *out,
                          size_t cap) {
  if (!s->db)
    return store__fenced(s) ? store__fenced(s) : KV_ESTORAGE;
  size_t alen = strlen(after);
  /* Past every key of `after`: its name, then a byte above the separator. */
  uint8_t *seek = malloc(alen + 1);
  if (!seek)
    return KV_ENOMEM;
  memcpy(seek, after, alen);
  seek[alen] = STORE_HINT_SEP + 1;
  size_t slen = alen ? alen + 1 : 0;
  store__owner_ctx c = {out, cap, KV_ENOTFOUND};
  int rc = store__iterate(s, STORE_CF_HINTS, seek, slen, NULL, 0, seek, slen,
                          false, 0, store__owner_visit, &c);
  free(seek);
  if (rc < 0)
    return rc;
  return c.rc;
}

int store_hint_scan(store *s, const char *owner, store_hint_fn fn, void *arg) {
  if (!s->db)
    return store__fenced(s) ? store__fenced(s) : KV_ESTORAGE;
  size_t olen = strlen(owner);
  /* The bounds get their own copy: fn may use the key scratch. */
  uint8_t *lo = malloc(2 * (olen + 1));
  if (!lo)
    return KV_ENOMEM;
  uint8_t *hi = lo + olen + 1;
  memcpy(lo, owner, olen);
  lo[olen] = STORE_HINT_SEP;
  memcpy(hi, owner, olen);
  hi[olen] = STORE_HINT_SEP + 1;
  store__hint_ctx c = {olen, fn, arg};
  int rc = store__iterate(s, STORE_CF_HINTS, lo, olen + 1, hi, olen + 1, lo,
                          olen + 1, false, 0, store__hint_visit, &c);
  free(lo);
  return rc;
}

/* ---- backup and compaction (thread-safe: see store.h) ---- */

/* Frees errptr after turning it into a code and a message in err. */
static int store__error_to(char *errptr, const char *what, char *err,
                           size_t errlen) {
  const char *e = errptr ? errptr : "unknown error";
  int rc = store__code(e);
  snprintf(err, errlen, "%s: %s", what, e);
  rocksdb_free(errptr);
  return rc;
}

uint64_t store_sequence(store *s) {
  return s->db ? rocksdb_get_latest_sequence_number(s->db) : 0;
}

/* The bytes of the regular files directly in dir (a checkpoint is flat). */
static uint64_t store__dir_bytes(const char *dir) {
  uint64_t total = 0;
  DIR *d = opendir(dir);
  if (!d)
    return 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    struct stat st;
    if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(st.st_mode))
      total += (uint64_t)st.st_size;
  }
  closedir(d);
  return total;
}

int store_checkpoint(store *s, const char *dir, uint64_t *bytes, char *err,
                     size_t errlen) {
  *bytes = 0;
  int fenced = store__fenced(s);
  if (fenced) {
    snprintf(err, errlen, "the storage refuses writes; no backup now");
    return fenced;
  }
  char parent[STORE_PATH_MAX];
  size_t n = strlen(dir);
  if (n == 0 || n >= sizeof(parent)) {
    snprintf(err, errlen, "bad backup directory '%s'", dir);
    return KV_EINVAL;
  }
  memcpy(parent, dir, n + 1);
  char *slash = strrchr(parent, '/');
  if (slash && slash != parent) {
    *slash = '\0';
    if (store__mkdirs(parent) != 0) {
      int e = errno;
      snprintf(err, errlen, "cannot create %s: %s", parent, strerror(e));
      return e == ENOSPC ? KV_ENOSPC : KV_EIO;
    }
  }
  char *e = NULL;
  rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(s->db, &e);
  if (e)
    return store__error_to(e, "cannot start a checkpoint", err, errlen);
  /* log_size_for_flush 0: flush the memtables first, so the copy needs no
   * write-ahead log replay and holds every committed write in tables. */
  rocksdb_checkpoint_create(cp, dir, 0, &e);
  rocksdb_checkpoint_object_destroy(cp);
  if (e)
    return store__error_to(e, "checkpoint failed", err, errlen);
  *bytes = store__dir_bytes(dir);
  return 0;
}

int store_compact(store *s, char *err, size_t errlen) {
  int fenced = store__fenced(s);
  if (fenced) {
    snprintf(err, errlen, "the storage refuses writes; no compaction now");
    return fenced;
  }
  rocksdb_compactoptions_t *co = rocksdb_compactoptions_create();
  /* Rewrite the last level too (kForce): a manual compaction is asked for
   * to drop what deletes and overwrites left behind. */
  rocksdb_compactoptions_set_bottommost_level_compaction(co, 2);
  for (int i = 0; i < STORE_CF_COUNT; i++)
    rocksdb_compact_range_cf_opt(s->db, s->cf[i], co, NULL, 0, NULL, 0);
  rocksdb_compactoptions_destroy(co);
  return 0;
}

void store_compact_cancel(store *s) {
  if (s->db)
    rocksdb_disable_manual_compaction(s->db);
}
