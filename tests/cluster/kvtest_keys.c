/*
 * kvtest_keys.c: a test helper for the cluster tests: writes, or counts
 * on one node's own replica, a run of keys PREFIX<first> ..
 * PREFIX<first+count-1> through libkvorum's asynchronous API, many in
 * flight, where the kvorum CLI would take a process per key.
 *
 *   kvtest-keys HOST put PREFIX FIRST COUNT [W]
 *                                             write each key, its value
 *                                             the key itself (blind put, at
 *                                             level W: a number or a name
 *                                             such as local_quorum; default
 *                                             the cluster's); prints the
 *                                             number acknowledged
 *   kvtest-keys HOST count PREFIX FIRST COUNT count the keys HOST's own
 *                                             replica holds with that value
 *                                             (get --local); prints it
 *   kvtest-keys HOST get PREFIX FIRST COUNT [R]
 *                                             count the keys a read through
 *                                             HOST at level R (default the
 *                                             cluster's) finds with that
 *                                             value; prints it
 *
 * Exits 0 when every request got an answer (acknowledged or not), 1 when
 * the node cannot be reached, 2 on bad arguments. Errors are counted on
 * stderr, with the first one's message.
 * Depends on: libkvorum (client/kvorum.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvorum.h"

#define KT_INFLIGHT 128
#define KT_KEY_MAX 128

typedef struct kt_state {
  const char *prefix;
  unsigned long long next, end;
  unsigned long long inflight, answered, hits;
  unsigned long long errors; /* answers that were errors */
  char first_error[256];     /* the first one's message */
  bool put;
  bool local; /* count: HOST's own replica only */
  int32_t w;  /* put: W; get: R */
} kt_state;

typedef struct kt_req {
  kt_state *st;
  char key[KT_KEY_MAX];
  size_t klen;
} kt_req;

static void kt_cb(void *arg, int status, const char *errmsg,
                  const kv_result *res) {
  kt_req *q = arg;
  kt_state *st = q->st;
  st->inflight--;
  st->answered++;
  if (status != 0 && st->errors++ == 0)
    snprintf(st->first_error, sizeof(st->first_error), "%s: %s", q->key,
             errmsg ? errmsg : "?");
  if (status == 0 && st->put) {
    st->hits++;
  } else if (status == 0 && res && res->found) {
    for (size_t i = 0; i < res->nsiblings; i++)
      if (res->siblings[i].len == q->klen &&
          memcmp(res->siblings[i].value, q->key, q->klen) == 0) {
        st->hits++;
        break;
      }
  }
  free(q);
}

static int kt_issue(kv_client *c, kt_state *st) {
  while (st->inflight < KT_INFLIGHT && st->next < st->end) {
    kt_req *q = malloc(sizeof(*q));
    if (!q)
      return -1;
    q->st = st;
    int n = snprintf(q->key, sizeof(q->key), "%s%llu", st->prefix, st->next);
    q->klen = (size_t)n;
    kv_options o = {.local = st->local};
    if (st->put)
      o.w = st->w;
    else
      o.r = st->w;
    int rc = st->put ? kv_put_async(c, q->key, q->klen, q->key, q->klen,
                                    NULL, 0, &o, kt_cb, q)
                     : kv_get_async(c, q->key, q->klen, &o, kt_cb, q);
    if (rc) {
      free(q);
      return -1;
    }
    st->next++;
    st->inflight++;
  }
  return 0;
}

int main(int argc, char **argv) {
  int32_t w = 0;
  if (argc < 6 || argc > 7 ||
      (strcmp(argv[2], "put") && strcmp(argv[2], "count") &&
       strcmp(argv[2], "get")) ||
      (argc == 7 && kv_parse_level(argv[6], &w))) {
    fprintf(stderr,
            "usage: kvtest-keys HOST put|count|get PREFIX FIRST COUNT "
            "[W|R]\n");
    return 2;
  }
  char *end;
  unsigned long long first = strtoull(argv[4], &end, 10);
  unsigned long long count = *end ? 0 : strtoull(argv[5], &end, 10);
  if (*end || strlen(argv[3]) > KT_KEY_MAX - 24) {
    fprintf(stderr, "kvtest-keys: bad FIRST, COUNT or PREFIX\n");
    return 2;
  }
  kt_state st = {.prefix = argv[3],
                 .next = first,
                 .end = first + count,
                 .put = strcmp(argv[2], "put") == 0,
                 .local = strcmp(argv[2], "count") == 0,
                 .w = w};
  /* Every request to HOST itself: a local get must be its replica. */
  kv_connect_opts co = {.no_route = true};
  kv_client *c = NULL;
  char err[256];
  if (kv_connect(argv[1], &co, &c, err, sizeof(err))) {
    fprintf(stderr, "kvtest-keys: %s\n", err);
    return 1;
  }
  int rc = 0;
  while (st.answered < count) {
    if (kt_issue(c, &st)) {
      fprintf(stderr, "kvtest-keys: %s\n", kv_errmsg(c));
      rc = 1;
      break;
    }
    if (kv_poll(&c, 1, 1000) < 0) {
      fprintf(stderr, "kvtest-keys: %s\n", kv_errmsg(c));
      rc = 1;
      break;
    }
  }
  kv_close(c);
  if (st.errors)
    fprintf(stderr, "kvtest-keys: %llu errors, the first %s\n", st.errors,
            st.first_error);
  printf("%llu\n", st.hits);
  return rc;
}
