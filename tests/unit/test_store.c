/*
 * test_store.c: unit tests of storage/store.c on a real RocksDB in a
 * temporary directory: reopening keeps data, staged writes are visible
 * before commit, the directory lock gives KV_EBUSY with a message,
 * partition scans and drops, hints, metadata, and store_sync on a second
 * thread while the main thread stages and commits.
 * Depends on: kvstore (RocksDB), pthreads.
 */
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_err.h"
#include "store.h"
#include "unit/check.h"

#define TEST_SYNC_ROUNDS 200
#define TEST_COMMIT_ROUNDS 400
#define TEST_WRITES_PER_COMMIT 5
#define TEST_OVERLAY_KEYS 1000
#define TEST_NFTW_FDS 16

static char g_root[64];

static store *open_at(const char *dir, bool *fresh) {
  store_config cfg = {.dir = dir, .write_buffer_mb = 4, .block_cache_mb = 8};
  char err[256];
  store *s = NULL;
  int rc = store_open(&cfg, &s, fresh, err, sizeof(err));
  if (rc)
    fprintf(stderr, "store_open(%s): %s\n", dir, err);
  return s;
}

/* True when key in part holds exactly the string want (NULL: absent). */
static bool holds(store *s, uint32_t part, const char *key, const char *want) {
  uint8_t *v = NULL;
  size_t n = 0;
  int rc = store_get(s, part, key, strlen(key), &v, &n);
  bool ok = want ? (rc == 0 && n == strlen(want) && memcmp(v, want, n) == 0)
                 : (rc == KV_ENOTFOUND && v == NULL);
  free(v);
  return ok;
}

static int put(store *s, uint32_t part, const char *key, const char *val) {
  return store_stage_put(s, part, key, strlen(key), val, strlen(val));
}

static void test_basic(const char *dir) {
  bool fresh = false;
  store *s = open_at(dir, &fresh);
  CHECK(s != NULL && fresh);
  if (!s)
    return;
  CHECK(holds(s, 1, "a", NULL));
  CHECK(put(s, 1, "a", "one") == 0);
  CHECK(put(s, 1, "b", "two") == 0);
  CHECK(put(s, 2, "a", "other partition") == 0);
  CHECK(store_staged(s) == 3);
  /* Visible before commit, latest staged value wins. */
  CHECK(holds(s, 1, "a", "one") && holds(s, 2, "a", "other partition"));
  CHECK(put(s, 1, "a", "uno") == 0);
  CHECK(holds(s, 1, "a", "uno"));
  CHECK(store_stage_delete(s, 1, "b", 1) == 0);
  CHECK(holds(s, 1, "b", NULL));
  CHECK(store_commit(s) == 0 && store_staged(s) == 0);
  CHECK(holds(s, 1, "a", "uno") && holds(s, 1, "b", NULL));
  CHECK(store_commit(s) == 0); /* nothing staged */
  /* A delete staged over committed data hides it until committed. */
  CHECK(store_stage_delete(s, 2, "a", 1) == 0);
  CHECK(holds(s, 2, "a", NULL));
  CHECK(store_commit(s) == 0);
  CHECK(put(s, 1, "staged-at-close", "x") == 0);
  /* Empty values and keys work. */
  CHECK(store_stage_put(s, 3, "", 0, "", 0) == 0);
  CHECK(store_commit(s) == 0);
  CHECK(holds(s, 3, "", ""));
  CHECK(store_get(s, STORE_PARTS_MAX, "a", 1, &(uint8_t *){NULL},
                  &(size_t){0}) == KV_EINVAL);
  CHECK(put(s, STORE_PARTS_MAX, "a", "x") == KV_EINVAL);
  CHECK(store_sync(s) == 0);
  store_close(s); /* commits what is staged */
  store_close(NULL);

  s = open_at(dir, &fresh);
  CHECK(s != NULL && !fresh);
  if (!s)
    return;
  CHECK(holds(s, 1, "a", "uno") && holds(s, 1, "b", NULL) &&
        holds(s, 2, "a", NULL) && holds(s, 3, "", ""));
  CHECK(holds(s, 1, "staged-at-close", "x"));
  store_close(s);
}

static void test_busy(const char *dir) {
  bool fresh = false;
  store *s = open_at(dir, &fresh);
  CHECK(s != NULL);
  store_config cfg = {.dir = dir};
  char err[512] = "";
  store *t = NULL;
  int rc = store_open(&cfg, &t, &fresh, err, sizeof(err));
  CHECK(rc == KV_EBUSY && t == NULL);
  CHECK(strstr(err, "is in use by another kvorumd") != NULL);
  CHECK(strstr(err, dir) != NULL);
  store_close(s);
  /* Free again once closed. */
  s = open_at(dir, &fresh);
  CHECK(s != NULL);
  store_close(s);
}

typedef struct scan_rec {
  char keys[16][16];
  char vals[16][16];
  int n;
  int stop_at; /* return 7 after this many; -1 never */
} scan_rec;

static int scan_fn(void *arg, const uint8_t *key, size_t klen,
                   const uint8_t *val, size_t vlen) {
  scan_rec *r = arg;
  if (r->n >= 16 || klen >= 16 || vlen >= 16)
    return -100;
  memcpy(r->keys[r->n], key, klen);
  r->keys[r->n][klen] = 0;
  memcpy(r->vals[r->n], val, vlen);
  r->vals[r->n][vlen] = 0;
  r->n++;
  return r->n == r->stop_at ? 7 : 0;
}

static void test_scan_drop(const char *dir) {
  bool fresh;
  store *s = open_at(dir, &fresh);
  CHECK(s != NULL);
  if (!s)
    return;
  static const char *order[] = {"m", "a", "z", "b", "y", "c"};
  for (uint32_t p = 1; p <= 3; p++)
    for (size_t i = 0; i < 6; i++) {
      char v[8];
      snprintf(v, sizeof(v), "%u%s", p, order[i]);
      CHECK(put(s, p, order[i], v) == 0);
    }
  CHECK(put(s, 0x00ff, "edge", "e") == 0); /* byte order of the prefix */
  CHECK(put(s, 0x0100, "edge", "f") == 0);
  CHECK(store_commit(s) == 0);
  scan_rec r = {.stop_at = -1};
  CHECK(store_scan(s, 2, scan_fn, &r) == 0);
  CHECK(r.n == 6);
  static const char *sorted[] = {"a", "b", "c", "m", "y", "z"};
  int bad = 0;
  for (int i = 0; i < r.n && i < 6; i++)
    if (strcmp(r.keys[i], sorted[i]) || r.vals[i][0] != '2')
      bad++;
  CHECK(bad == 0);
  memset(&r, 0, sizeof(r));
  r.stop_at = 2;
  CHECK(store_scan(s, 3, scan_fn, &r) == 7 && r.n == 2);
  memset(&r, 0, sizeof(r));
  r.stop_at = -1;
  CHECK(store_scan_from(s, 1, "b", 1, 3, scan_fn, &r) == 0);
  CHECK(r.n == 3 && !strcmp(r.keys[0], "c") && !strcmp(r.keys[2], "y"));
  memset(&r, 0, sizeof(r));
  r.stop_at = -1;
  CHECK(store_scan_from(s, 1, "bb", 2, 0, scan_fn, &r) == 0);
  CHECK(r.n == 4 && !strcmp(r.keys[0], "c"));
  memset(&r, 0, sizeof(r));
  r.stop_at = -1;
  CHECK(store_scan(s, 0x00ff, scan_fn, &r) == 0 && r.n == 1 &&
        !strcmp(r.vals[0], "e"));
  memset(&r, 0, sizeof(r));
  r.stop_at = -1;
  CHECK(store_scan(s, 9, scan_fn, &r) == 0 && r.n == 0);
  /* Drop partition 2: 1 and 3 stay. */
  CHECK(store_drop_partition(s, 2) == 0);
  memset(&r, 0, sizeof(r));
  r.stop_at = -1;
  CHECK(store_scan(s, 2, scan_fn, &r) == 0 && r.n == 0);
  CHECK(holds(s, 2, "a", NULL) && holds(s, 1, "a", "1a") &&
        holds(s, 3, "z", "3z"));
  CHECK(store_drop_partition(s, STORE_PARTS_MAX) == KV_EINVAL);
  store_close(s);
}

typedef struct hint_rec {
  uint32_t parts[8];
  char keys[8][16];
  int n;
} hint_rec;

static int hint_fn(void *arg, uint32_t part, const uint8_t *key, size_t klen,
                   const uint8_t *val, size_t vlen) {
  hint_rec *r = arg;
  (void)val;
  (void)vlen;
  if (r->n >= 8 || klen >= 16)
    return -100;
  r->parts[r->n] = part;
  memcpy(r->keys[r->n], key, klen);
  r->keys[r->n][klen] = 0;
  r->n++;
  return 0;
}

static void test_hints_meta(const char *dir) {
  bool fresh;
  store *s = open_at(dir, &fresh);
  CHECK(s != NULL);
  if (!s)
    return;
  CHECK(store_hint_put(s, "n1", 7, "k1", 2, "v1", 2) == 0);
  CHECK(store_hint_put(s, "n1", 300, "k0", 2, "v2", 2) == 0);
  CHECK(store_hint_put(s, "n10", 7, "k1", 2, "other", 5) == 0);
  CHECK(store_hint_put(s, "n", 7, "k1", 2, "other", 5) == 0);
  hint_rec r = {0};
  CHECK(store_hint_scan(s, "n1", hint_fn, &r) == 0);
  CHECK(r.n == 2);
  CHECK(r.parts[0] == 7 && !strcmp(r.keys[0], "k1"));
  CHECK(r.parts[1] == 300 && !strcmp(r.keys[1], "k0"));
  uint8_t *v = NULL;
  size_t n = 0;
  CHECK(store_hint_get(s, "n1", 300, "k0", 2, &v, &n) == 0 && n == 2 &&
        !memcmp(v, "v2", 2));
  free(v);
  CHECK(store_hint_delete(s, "n1", 7, "k1", 2) == 0);
  CHECK(store_hint_get(s, "n1", 7, "k1", 2, &v, &n) == KV_ENOTFOUND);
  memset(&r, 0, sizeof(r));
  CHECK(store_hint_scan(s, "n1", hint_fn, &r) == 0 && r.n == 1);
  memset(&r, 0, sizeof(r));
  CHECK(store_hint_scan(s, "nobody", hint_fn, &r) == 0 && r.n == 0);
  /* Every owner with hints, in byte order, each once. */
  char own[8], small[2];
  CHECK(store_hint_owner_next(s, "", own, sizeof(own)) == 0 &&
        !strcmp(own, "n"));
  CHECK(store_hint_owner_next(s, "n", own, sizeof(own)) == 0 &&
        !strcmp(own, "n1"));
  CHECK(store_hint_owner_next(s, "n1", own, sizeof(own)) == 0 &&
        !strcmp(own, "n10"));
  CHECK(store_hint_owner_next(s, "n10", own, sizeof(own)) == KV_ENOTFOUND);
  CHECK(store_hint_owner_next(s, "n", small, sizeof(small)) == KV_ETOOBIG);
  /* Meta. */
  CHECK(store_meta_get(s, "incarnation", &v, &n) == KV_ENOTFOUND);
  CHECK(store_meta_put(s, "incarnation", "\x01\x02", 2) == 0);
  CHECK(store_meta_put(s, "empty", "", 0) == 0);
  store_close(s);
  s = open_at(dir, &fresh);
  CHECK(s != NULL);
  if (!s)
    return;
  CHECK(store_meta_get(s, "incarnation", &v, &n) == 0 && n == 2 &&
        v[0] == 1 && v[1] == 2);
  free(v);
  CHECK(store_meta_get(s, "empty", &v, &n) == 0 && n == 0);
  free(v);
  CHECK(store_hint_get(s, "n10", 7, "k1", 2, &v, &n) == 0 && n == 5);
  free(v);
  store_close(s);
}

static void test_overlay_growth(const char *dir) {
  bool fresh;
  store *s = open_at(dir, &fresh);
  CHECK(s != NULL);
  if (!s)
    return;
  char k[32], v[32];
  for (int i = 0; i < TEST_OVERLAY_KEYS; i++) {
    snprintf(k, sizeof(k), "key%d", i);
    snprintf(v, sizeof(v), "val%d", i);
    if (put(s, (uint32_t)i % 7, k, v))
      check_failed++;
  }
  for (int i = 0; i < TEST_OVERLAY_KEYS; i += 3) {
    snprintf(k, sizeof(k), "key%d", i);
    if (store_stage_delete(s, (uint32_t)i % 7, k, strlen(k)))
      check_failed++;
  }
  int bad = 0;
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < TEST_OVERLAY_KEYS; i++) {
      snprintf(k, sizeof(k), "key%d", i);
      snprintf(v, sizeof(v), "val%d", i);
      if (!holds(s, (uint32_t)i % 7, k, i % 3 ? v : NULL))
        bad++;
    }
    if (pass == 0)
      CHECK(store_commit(s) == 0);
  }
  CHECK(bad == 0);
  store_close(s);
}

typedef struct syncer {
  store *s;
  int failures;
} syncer;

static void *sync_thread(void *arg) {
  syncer *y = arg;
  for (int i = 0; i < TEST_SYNC_ROUNDS; i++)
    if (store_sync(y->s))
      y->failures++;
  return NULL;
}

static void test_sync_thread(const char *dir) {
  bool fresh;
  store *s = open_at(dir, &fresh);
  CHECK(s != NULL);
  if (!s)
    return;
  syncer y = {s, 0};
  pthread_t th;
  CHECK(pthread_create(&th, NULL, sync_thread, &y) == 0);
  int bad = 0;
  char k[32];
  for (int i = 0; i < TEST_COMMIT_ROUNDS; i++) {
    for (int j = 0; j < TEST_WRITES_PER_COMMIT; j++) {
      snprintf(k, sizeof(k), "k%d.%d", i, j);
      if (put(s, 5, k, k))
        bad++;
    }
    if (store_commit(s))
      bad++;
  }
  pthread_join(th, NULL);
  CHECK(bad == 0 && y.failures == 0);
  CHECK(store_sync(s) == 0);
  store_close(s);
  s = open_at(dir, &fresh);
  CHECK(s != NULL);
  if (!s)
    return;
  for (int i = 0; i < TEST_COMMIT_ROUNDS; i++) {
    snprintf(k, sizeof(k), "k%d.%d", i, TEST_WRITES_PER_COMMIT - 1);
    if (!holds(s, 5, k, k))
      bad++;
  }
  CHECK(bad == 0);
  store_close(s);
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

int main(void) {
  char dir[128];
  snprintf(g_root, sizeof(g_root), "/tmp/kvorum-test-store-XXXXXX");
  if (!mkdtemp(g_root)) {
    perror("mkdtemp");
    return 1;
  }
  snprintf(dir, sizeof(dir), "%s/basic", g_root);
  test_basic(dir);
  test_busy(dir);
  snprintf(dir, sizeof(dir), "%s/scan", g_root);
  test_scan_drop(dir);
  snprintf(dir, sizeof(dir), "%s/hints", g_root);
  test_hints_meta(dir);
  snprintf(dir, sizeof(dir), "%s/overlay", g_root);
  test_overlay_growth(dir);
  snprintf(dir, sizeof(dir), "%s/sync", g_root);
  test_sync_thread(dir);
  CHECK(nftw(g_root, rm_entry, TEST_NFTW_FDS, FTW_DEPTH | FTW_PHYS) == 0);
  return check_summary(NULL);
}
