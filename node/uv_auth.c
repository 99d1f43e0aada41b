/*
 * uv_auth.c: users and roles in kvorumd's shell (uv_auth.h).
 */
#include "uv_auth.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_err.h"
#include "wire.h"

#define UVA_CACHE_ENTRIES 4096u

/* The users of one version of the file, kept while checks use them. */
typedef struct uva_db {
  auth_db *db;
  unsigned refs;
} uva_db;

typedef struct uva_waiter {
  uva_fn fn;
  uint64_t token, token2;
} uva_waiter;

/* One password check on the thread pool, and who waits for it. */
typedef struct uva_job {
  uv_work_t work;
  uvn *u;
  uva_db *db;
  char user[AUTH_USER_MAX + 1];
  size_t ulen;
  uint8_t pw[AUTH_PW_MAX];
  size_t pwlen;
  auth_role role;
  uva_waiter *waiters;
  size_t nwaiters, cap;
  struct uva_job *next;
} uva_job;

struct uva {
  char path[4096];
  uva_db *db;
  auth_cache *cache;
  uva_job *jobs; /* in flight */
  uint64_t logged_ms;
};

static void uva__unref(uva_db *d) {
  if (d && --d->refs == 0) {
    auth_db_free(d->db);
    free(d);
  }
}

static int uva__load(const char *path, uva_db **out, char *err,
                     size_t errlen) {
  uva_db *d = calloc(1, sizeof(*d));
  if (!d)
    return KV_ENOMEM;
  int rc = auth_db_load(path, &d->db, err, errlen);
  if (rc) {
    free(d);
    return rc;
  }
  d->refs = 1;
  *out = d;
  return 0;
}

int uva_open(uvn *u, const char *path) {
  char err[512];
  struct uva *a = calloc(1, sizeof(*a));
  if (!a)
    return KV_ENOMEM;
  if (strlen(path) >= sizeof(a->path)) {
    free(a);
    fprintf(stderr, "kvorumd: the --auth-file name is too long\n");
    return KV_EINVAL;
  }
  snprintf(a->path, sizeof(a->path), "%s", path);
  int rc = uva__load(path, &a->db, err, sizeof(err));
  if (!rc && !(a->cache = auth_cache_new(UVA_CACHE_ENTRIES)))
    rc = KV_ENOMEM;
  if (rc) {
    if (a->db)
      uva__unref(a->db);
    free(a);
    fprintf(stderr, "kvorumd: --auth-file: %s\n", rc == KV_ENOMEM ? "out of memory" : err);
    return rc;
  }
  u->auth = a;
  uvn__logf(u, NODE_LOG_INFO, "clients must authenticate: %zu users in %s",
            auth_db_count(a->db->db), path);
  return 0;
}

void uva_close(uvn *u) {
  struct uva *a = u->auth;
  if (!a)
    return;
  /* The loop ran until every job ended (uvn_run), so none is left. */
  uva__unref(a->db);
  auth_cache_free(a->cache);
  free(a);
  u->auth = NULL;
}

int uva_reload(uvn *u, char *err, size_t errlen) {
  struct uva *a = u->auth;
  if (!a)
    return 0;
  uva_db *d;
  int rc = uva__load(a->path, &d, err, errlen);
  if (rc)
    return rc;
  uva__unref(a->db);
  a->db = d;
  auth_cache_clear(a->cache);
  return 0;
}

bool uva_on(const uvn *u) { return u->auth != NULL; }

static void uva__work(uv_work_t *w) {
  uva_job *j = w->data;
  j->role = auth_check(j->db->db, j->user, j->ulen, j->pw, j->pwlen);
}

static void uva__after(uv_work_t *w, int status) {
  uva_job *j = w->data;
  uvn *u = j->u;
  struct uva *a = u->auth;
  for (uva_job **pp = &a->jobs; *pp; pp = &(*pp)->next)
    if (*pp == j) {
      *pp = j->next;
      break;
    }
  auth_role role = status ? AUTH_ROLE_NONE : j->role;
  /* A check against a file since replaced is answered, not cached. */
  if (role != AUTH_ROLE_NONE && j->db == a->db)
    auth_cache_put(a->cache, j->user, j->ulen, j->pw, j->pwlen, role);
  OPENSSL_cleanse(j->pw, sizeof(j->pw));
  for (size_t i = 0; i < j->nwaiters; i++)
    j->waiters[i].fn(u, j->waiters[i].token, j->waiters[i].token2, role);
  uva__unref(j->db);
  free(j->waiters);
  free(j);
}

static int uva__wait(uva_job *j, uva_fn fn, uint64_t token, uint64_t token2) {
  if (j->nwaiters == j->cap) {
    size_t cap = j->cap ? j->cap * 2 : 4;
    uva_waiter *w = realloc(j->waiters, cap * sizeof(*w));
    if (!w)
      return KV_ENOMEM;
    j->waiters = w;
    j->cap = cap;
  }
  j->waiters[j->nwaiters++] = (uva_waiter){fn, token, token2};
  return 0;
}

int uva_check(uvn *u, kv_slice user, kv_slice pw, uva_fn fn, uint64_t token,
              uint64_t token2) {
  struct uva *a = u->auth;
  if (user.len == 0 || user.len > AUTH_USER_MAX || pw.len > AUTH_PW_MAX)
    return UVA_REFUSED;
  auth_role r = auth_cache_get(a->cache, (const char *)user.ptr, user.len,
                               pw.ptr, pw.len);
  if (r != AUTH_ROLE_NONE)
    return (int)r;
  for (uva_job *j = a->jobs; j; j = j->next)
    if (j->ulen == user.len && j->pwlen == pw.len &&
        memcmp(j->user, user.ptr, user.len) == 0 &&
        CRYPTO_memcmp(j->pw, pw.ptr, pw.len) == 0)
      return uva__wait(j, fn, token, token2) ? UVA_REFUSED : UVA_PENDING;
  uva_job *j = calloc(1, sizeof(*j));
  if (!j || uva__wait(j, fn, token, token2)) {
    free(j);
    return UVA_REFUSED;
  }
  j->u = u;
  j->db = a->db;
  a->db->refs++;
  memcpy(j->user, user.ptr, user.len);
  j->ulen = user.len;
  memcpy(j->pw, pw.ptr, pw.len);
  j->pwlen = pw.len;
  j->work.data = j;
  if (uv_queue_work(u->loop, &j->work, uva__work, uva__after)) {
    OPENSSL_cleanse(j->pw, sizeof(j->pw));
    uva__unref(j->db);
    free(j->waiters);
    free(j);
    return UVA_REFUSED;
  }
  j->next = a->jobs;
  a->jobs = j;
  return UVA_PENDING;
}

void uva_failed(uvn *u, const char *where, kv_slice user) {
  struct uva *a = u->auth;
  u->auth_failures++;
  uint64_t now = uv_now(u->loop);
  if (a->logged_ms && now - a->logged_ms < 1000)
    return;
  a->logged_ms = now;
  char name[AUTH_USER_MAX + 1];
  size_t n = user.len < AUTH_USER_MAX ? user.len : AUTH_USER_MAX;
  for (size_t i = 0; i < n; i++) /* a log line shows no odd bytes */
    name[i] = auth_user_valid((const char *)user.ptr + i, 1)
                  ? (char)user.ptr[i]
                  : '?';
  name[n] = '\0';
  uvn__logf(u, NODE_LOG_WARN,
            "failed login over %s for user '%s' (%llu failures so far)",
            where, name, (unsigned long long)u->auth_failures);
}

auth_op uva_native_op(uint32_t type, kv_slice admin_cmd) {
  switch (type) {
  case WIRE_PUT:
  case WIRE_DEL:
    return AUTH_OP_WRITE;
  case WIRE_ADMIN:
    if (mp_slice_eq(admin_cmd, "status") || mp_slice_eq(admin_cmd, "ring") ||
        mp_slice_eq(admin_cmd, "preflist"))
      return AUTH_OP_TOPOLOGY;
    return AUTH_OP_ADMIN;
  default:
    return AUTH_OP_READ; /* GET, and what the core refuses anyway */
  }
}
