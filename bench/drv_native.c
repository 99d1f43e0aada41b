/*
 * drv_native.c: the native driver, over libkvorum's asynchronous API. It
 * opens --connections clients (kv_connect), the i-th starting its host
 * list at host i % nhosts so the first contacts are spread round robin;
 * each client then routes requests to the key's preference list itself.
 * Requests go round robin over the clients; kv_poll drives them all.
 * With --region every client says it is in that region. With --regions
 * client i belongs to group i % nregions: it connects to that group's
 * hosts (rotated likewise) in that group's region, and a request of slot
 * s goes round robin over the clients of group s % nregions, so each
 * group's latency is its own. Every connection, the stats ones included,
 * speaks TLS and logs in as --tls and --user say.
 * Depends on bench.h and client/kvorum.h (target kvorum_client).
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "kvorum.h"

_Static_assert(BENCH_LVL_ONE == KV_ONE && BENCH_LVL_QUORUM == KV_QUORUM &&
                   BENCH_LVL_ALL == KV_ALL &&
                   BENCH_LVL_LOCAL_ONE == KV_LOCAL_ONE &&
                   BENCH_LVL_LOCAL_QUORUM == KV_LOCAL_QUORUM &&
                   BENCH_LVL_EACH_QUORUM == KV_EACH_QUORUM,
               "bench's consistency levels must match kvorum.h");

#define NATIVE_TIMEOUT_MS 5000 /* per request, as libkvorum's default */
#define NATIVE_KIND_MAX 40

typedef struct native__drv {
  kv_connect_opts copts; /* TLS and credentials, for every kv_connect */
  kv_client **cs;
  size_t n, next;
  size_t ngroups;                       /* 1, or --regions' count */
  size_t next_in[BENCH_REGIONS_MAX];    /* round robin within a group */
  kv_options opts;
  bench_done_fn done;
  void *arg;
  /* Per slot: the slot number passed to libkvorum as the callback arg. */
  struct native__tag {
    struct native__drv *d;
    uint32_t slot;
  } *tags;
} native__drv;

static void native__close(void *dp) {
  native__drv *d = dp;
  if (!d)
    return;
  for (size_t i = 0; i < d->n; i++)
    kv_close(d->cs[i]);
  free(d->cs);
  free(d->tags);
  free(d);
}

/* The TLS settings and credentials of o, the rest of *co zeroed. */
static void native__secure(const bench_opts *o, kv_connect_opts *co) {
  memset(co, 0, sizeof *co);
  co->tls = o->tls;
  co->tls_ca = o->tls_ca;
  co->tls_cert = o->tls_cert;
  co->tls_key = o->tls_key;
  co->tls_server_name = o->tls_server_name;
  co->user = o->user;
  co->password = o->password;
}

static int native__open(const bench_opts *o, bench_done_fn done, void *arg,
                        void **out, char *err, size_t errlen) {
  native__drv *d = calloc(1, sizeof *d);
  if (!d)
    return KV_ENOMEM;
  native__secure(o, &d->copts);
  d->done = done;
  d->arg = arg;
  d->opts.r = o->r;
  d->opts.w = o->w;
  d->opts.dw = o->dw;
  d->opts.timeout_ms = NATIVE_TIMEOUT_MS;
  d->cs = calloc(o->connections, sizeof *d->cs);
  d->tags = calloc(o->concurrency, sizeof *d->tags);
  if (!d->cs || !d->tags) {
    native__close(d);
    return KV_ENOMEM;
  }
  for (uint32_t i = 0; i < o->concurrency; i++) {
    d->tags[i].d = d;
    d->tags[i].slot = i;
  }
  d->ngroups = o->nregions ? o->nregions : 1;
  static char hosts[sizeof o->hosts_str];
  for (uint32_t i = 0; i < o->connections; i++) {
    kv_connect_opts copts = d->copts;
    copts.region = o->region[0] ? o->region : NULL;
    size_t len = 0;
    hosts[0] = '\0';
    if (o->nregions) {
      /* The group's host list rotated to start at its (i / groups)-th. */
      const bench_region *g = &o->regions[i % o->nregions];
      copts.region = g->name;
      size_t nh = 1, start = (i / o->nregions);
      for (const char *p = g->hosts; *p; p++)
        nh += *p == ',';
      start %= nh;
      const char *p = g->hosts;
      for (size_t k = 0; k < start; k++)
        p = strchr(p, ',') + 1;
      snprintf(hosts, sizeof hosts, "%s%s%.*s", p, p != g->hosts ? "," : "",
               (int)(p != g->hosts ? (size_t)(p - g->hosts) - 1 : 0),
               g->hosts);
    } else {
      /* The host list rotated to start at host i % nhosts. */
      for (size_t h = 0; h < o->nhosts; h++) {
        const char *name = o->hosts[(i + h) % o->nhosts];
        int w = snprintf(hosts + len, sizeof hosts - len, "%s%s",
                         h ? "," : "", name);
        if (w < 0 || (size_t)w >= sizeof hosts - len)
          break;
        len += (size_t)w;
      }
    }
    int rc = kv_connect(hosts, &copts, &d->cs[i], err, errlen);
    if (rc < 0) {
      native__close(d);
      return rc == KV_ENOMEM || rc == KV_EAUTH || rc == KV_EINVAL ? rc
                                                                  : KV_ECONN;
    }
    d->n++;
  }
  *out = d;
  return 0;
}

static void native__cb(void *arg, int status, const char *errmsg,
                       const kv_result *res) {
  struct native__tag *t = arg;
  (void)errmsg;
  if (status) {
    t->d->done(t->d->arg, t->slot, status, NULL, false, NULL, 0);
    return;
  }
  t->d->done(t->d->arg, t->slot, 0, NULL, res && res->found,
             res ? res->context : NULL, res ? res->context_len : 0);
}

/* The client for a request of slot: round robin over every client, or
 * over the clients of the slot's group (i % ngroups == group). */
static kv_client *native__pick(native__drv *d, uint32_t slot) {
  if (d->ngroups <= 1)
    return d->cs[d->next++ % d->n];
  size_t g = slot % d->ngroups;
  size_t in_group = (d->n - g + d->ngroups - 1) / d->ngroups;
  return d->cs[g + d->ngroups * (d->next_in[g]++ % in_group)];
}

static int native__get(void *dp, uint32_t slot, const char *key,
                       size_t klen) {
  native__drv *d = dp;
  return kv_get_async(native__pick(d, slot), key, klen, &d->opts, native__cb,
                      &d->tags[slot]);
}

static int native__put(void *dp, uint32_t slot, const char *key, size_t klen,
                       const void *val, size_t vlen, const void *ctx,
                       size_t ctx_len) {
  native__drv *d = dp;
  return kv_put_async(native__pick(d, slot), key, klen, val, vlen, ctx, ctx_len,
                      &d->opts, native__cb, &d->tags[slot]);
}

static int native__poll(void *dp, int64_t timeout_us) {
  native__drv *d = dp;
  /* Microseconds, so open-loop pacing sleeps instead of spinning. */
  return kv_poll_us(d->cs, d->n, timeout_us);
}

/* In the JSON text of an admin reply: the value of the next "key" from p
 * as a string (copied to out) or a number; returns the position after it,
 * or NULL when there is no such key. */
static const char *native__json_next(const char *p, const char *key,
                                     char *out, size_t cap) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\"", key);
  const char *k = strstr(p, pat);
  if (!k)
    return NULL;
  k += strlen(pat);
  while (*k == ' ' || *k == ':' || *k == '\t' || *k == '\n')
    k++;
  size_t n = 0;
  if (*k == '"') {
    k++;
    while (*k && *k != '"') {
      if (n + 1 < cap)
        out[n++] = *k;
      k++;
    }
    if (*k == '"')
      k++;
  } else {
    while ((*k >= '0' && *k <= '9') || *k == '.') {
      if (n + 1 < cap)
        out[n++] = *k;
      k++;
    }
  }
  out[n] = '\0';
  return k;
}

/* CPU microseconds (user + system) of the node at addr, from its stats. */
static int native__node_cpu(const native__drv *d, const char *addr,
                            uint64_t *us) {
  kv_connect_opts co = d->copts;
  co.no_route = true;
  co.connect_timeout_ms = 1000;
  co.timeout_ms = 2000;
  kv_client *c = NULL;
  char err[256];
  int rc = kv_connect(addr, &co, &c, err, sizeof err);
  if (rc < 0)
    return rc;
  char *json = NULL;
  rc = kv_admin(c, "stats", NULL, &json);
  kv_close(c);
  if (rc < 0)
    return rc;
  char user[32], sys[32];
  if (!native__json_next(json, "cpu_user_us", user, sizeof user) ||
      !native__json_next(json, "cpu_sys_us", sys, sizeof sys) || !user[0] ||
      !sys[0])
    rc = KV_EPROTO; /* a node too old to say */
  else
    *us += strtoull(user, NULL, 10) + strtoull(sys, NULL, 10);
  free(json);
  return rc;
}

/* Every member of the cluster (from "status" on the first client's node),
 * then "stats" on each: the whole cluster's CPU, not only --hosts'. */
static int native__server_cpu_us(void *dp, uint64_t *us) {
  native__drv *d = dp;
  char *json = NULL;
  int rc = kv_admin(d->cs[0], "status", NULL, &json);
  if (rc < 0)
    return rc;
  *us = 0;
  size_t members = 0;
  char addr[BENCH_HOST_LEN_MAX];
  for (const char *p = json;
       rc == 0 && (p = native__json_next(p, "listen", addr, sizeof addr));) {
    rc = native__node_cpu(d, addr, us);
    members++;
  }
  free(json);
  return rc < 0 ? rc : members ? 0 : KV_EPROTO;
}

const bench_driver bench_drv_native = {
    .name = "native",
    .open = native__open,
    .get = native__get,
    .put = native__put,
    .poll = native__poll,
    .close = native__close,
    .server_cpu_us = native__server_cpu_us,
};
