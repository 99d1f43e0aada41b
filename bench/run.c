/*
 * run.c: the runner. One thread keeps --concurrency requests in flight
 * through a driver: each request occupies a slot; a free slot takes the
 * next operation at once (closed loop) or when its scheduled time comes
 * (open loop, --rate). In the open loop the latency of an operation is
 * measured from the time it was scheduled, not from when a slot became
 * free, so a stalled server is charged for the requests it held back (no
 * coordinated omission).
 *
 * A read-modify-write (workload F) is a read, then a write carrying the
 * causal context the read returned; its read is recorded as a read and the
 * whole of it as "rmw". The second step is issued by the runner after the
 * driver's poll returns, never from inside a driver callback.
 *
 * An update sends the last causal context the runner saw for its key (from
 * a read or a write reply, kept in a small direct-mapped cache), as a
 * Dynamo client that keeps its contexts does; a write without context
 * never replaces anything in kvorum, so blind updates of a hot key would
 * only pile up siblings until the store refuses them. The load's inserts
 * are blind. RESP has no contexts, so the cache stays empty there.
 *
 * Nothing is allocated per request: slots, values and histograms are
 * allocated before the run. Depends on bench.h, gen.h, hdr.h, kv_err.h.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench.h"
#include "kv_err.h"

#define BENCH_VALUE_SLACK 4096 /* random offsets into the value pool */
#define BENCH_NS_PER_S 1000000000ULL
#define BENCH_SERIES_INIT 64
/* The context cache: the last causal context seen per key, direct-mapped;
 * contexts longer than an entry holds are not kept. */
#define BENCH_CTX_CACHE_SLOTS 16384
#define BENCH_CTX_CACHE_BYTES 240
#define BENCH_TAIL_FOLD_S 0.25 /* a last partial second shorter than this is
                                 folded into the point before it */

uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * BENCH_NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* ---- stats ---- */

int bench_stats_init(bench_stats *s, const char *phase) {
  memset(s, 0, sizeof *s);
  s->phase = phase;
  s->server_cpu_s = -1.0;
  for (int i = 0; i < GEN_OP_COUNT; i++)
    s->op[i] = malloc(sizeof(hdr_hist));
  s->all = malloc(sizeof(hdr_hist));
  s->second = malloc(sizeof(hdr_hist));
  s->series_cap = BENCH_SERIES_INIT;
  s->series = malloc(s->series_cap * sizeof *s->series);
  bool ok = s->all && s->second && s->series;
  for (int i = 0; i < GEN_OP_COUNT; i++)
    ok = ok && s->op[i];
  if (!ok) {
    bench_stats_free(s);
    return KV_ENOMEM;
  }
  for (int i = 0; i < GEN_OP_COUNT; i++)
    hdr_reset(s->op[i]);
  hdr_reset(s->all);
  hdr_reset(s->second);
  return 0;
}

void bench_stats_free(bench_stats *s) {
  if (!s)
    return;
  for (int i = 0; i < GEN_OP_COUNT; i++)
    free(s->op[i]);
  free(s->all);
  free(s->second);
  free(s->series);
  for (size_t g = 0; g < BENCH_REGIONS_MAX; g++) {
    for (int i = 0; i < GEN_OP_COUNT; i++)
      free(s->region_op[g][i]);
    free(s->region_all[g]);
  }
  memset(s, 0, sizeof *s);
}

int bench_stats_regions(bench_stats *s, size_t nregions) {
  if (nregions > BENCH_REGIONS_MAX)
    return KV_EINVAL;
  for (size_t g = 0; g < nregions; g++) {
    if (!s->region_all[g])
      s->region_all[g] = malloc(sizeof(hdr_hist));
    if (!s->region_all[g])
      return KV_ENOMEM;
    hdr_reset(s->region_all[g]);
    for (int i = 0; i < GEN_OP_COUNT; i++) {
      if (!s->region_op[g][i])
        s->region_op[g][i] = malloc(sizeof(hdr_hist));
      if (!s->region_op[g][i])
        return KV_ENOMEM;
      hdr_reset(s->region_op[g][i]);
    }
    s->region_ops[g] = s->region_errors[g] = 0;
  }
  s->nregions = nregions;
  return 0;
}

void bench_stats_error(bench_stats *s, const char *kind) {
  s->errors++;
  for (size_t i = 0; i < s->nkinds; i++) {
    if (!strcmp(s->kinds[i].name, kind)) {
      s->kinds[i].count++;
      return;
    }
  }
  if (s->nkinds == BENCH_ERR_KINDS_MAX) {
    s->kinds_dropped++;
    return;
  }
  snprintf(s->kinds[s->nkinds].name, BENCH_ERR_NAME_MAX, "%s", kind);
  s->kinds[s->nkinds++].count = 1;
}

/* ---- the runner ---- */

typedef enum bench__phase {
  BENCH__LOAD,
  BENCH__WARMUP,
  BENCH__RUN
} bench__phase;

typedef struct bench__ctxent {
  uint64_t key_plus1; /* 0: empty */
  uint16_t len;
  uint8_t bytes[BENCH_CTX_CACHE_BYTES];
} bench__ctxent;

typedef struct bench__slot {
  uint64_t start_ns; /* intended start of the top-level operation */
  uint64_t key_num;
  uint8_t op;        /* gen_op */
  uint8_t step;      /* rmw: 0 reading, 1 writing */
  uint8_t klen;
  char key[GEN_KEY_MAX];
  uint8_t *ctx; /* context from the rmw's read; grows, never shrinks */
  size_t ctx_len, ctx_cap;
} bench__slot;

typedef struct bench__runner {
  const bench_opts *o;
  const bench_driver *drv;
  void *d;
  bench__slot *slots;
  uint32_t *free_ids; /* stack of free slots */
  uint32_t nfree;
  uint32_t *rmw_ids; /* slots whose rmw read finished, write not sent */
  uint32_t nrmw;
  uint8_t *values;
  bench__ctxent *ctxcache;
  gen_rng rng;
  gen_keys keys;
  bench_stats *st;
  bench__phase phase;
  uint64_t issued, load_next;
  uint64_t sec_ops, sec_errors;
  uint64_t last_done_ns;
  bool closing; /* the driver is closing: late callbacks are ignored */
} bench__runner;

static void bench__errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bench__errf(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static void bench__release(bench__runner *r, uint32_t id) {
  r->free_ids[r->nfree++] = id;
}

/* Ends the top-level operation of slot id with this status. */
static void bench__finish(bench__runner *r, uint32_t id, int status,
                          const char *kind, bool found, uint64_t now) {
  bench__slot *s = &r->slots[id];
  bench_stats *st = r->st;
  r->last_done_ns = now;
  if (status == 0) {
    uint64_t us = (now - s->start_ns) / 1000;
    hdr_record(st->op[s->op], us);
    hdr_record(st->all, us);
    hdr_record(st->second, us);
    if (st->nregions) {
      size_t g = bench_slot_region(r->o, id);
      hdr_record(st->region_op[g][s->op], us);
      hdr_record(st->region_all[g], us);
      st->region_ops[g]++;
    }
    if (!found && s->op == GEN_OP_READ)
      st->not_found++;
    st->ops++;
    r->sec_ops++;
  } else {
    bench_stats_error(st, kind ? kind : kv_errname(status));
    r->sec_errors++;
    if (st->nregions)
      st->region_errors[bench_slot_region(r->o, id)]++;
  }
  bench__release(r, id);
}

static void bench__done(void *arg, uint32_t id, int status, const char *kind,
                        bool found, const void *ctx, size_t ctx_len) {
  bench__runner *r = arg;
  if (r->closing)
    return;
  bench__slot *s = &r->slots[id];
  uint64_t now = bench_now_ns();
  if (status == 0 && ctx && ctx_len && ctx_len <= BENCH_CTX_CACHE_BYTES) {
    bench__ctxent *e = &r->ctxcache[s->key_num % BENCH_CTX_CACHE_SLOTS];
    e->key_plus1 = s->key_num + 1;
    e->len = (uint16_t)ctx_len;
    memcpy(e->bytes, ctx, ctx_len);
  }
  if (s->op == GEN_OP_RMW && s->step == 0) {
    if (status == 0) {
      hdr_record(r->st->op[GEN_OP_READ], (now - s->start_ns) / 1000);
      if (r->st->nregions)
        hdr_record(r->st->region_op[bench_slot_region(r->o, id)]
                                   [GEN_OP_READ],
                   (now - s->start_ns) / 1000);
      if (ctx_len > BENCH_CTX_MAX) {
        bench__finish(r, id, KV_ETOOBIG, "rmw_context_too_big", found, now);
        return;
      }
      if (ctx_len > s->ctx_cap) {
        uint8_t *p = realloc(s->ctx, ctx_len);
        if (!p) {
          bench__finish(r, id, KV_ENOMEM, NULL, found, now);
          return;
        }
        s->ctx = p;
        s->ctx_cap = ctx_len;
      }
      if (ctx_len)
        memcpy(s->ctx, ctx, ctx_len);
      s->ctx_len = ctx ? ctx_len : 0;
      s->step = 1;
      r->rmw_ids[r->nrmw++] = id;
      return;
    }
  }
  bench__finish(r, id, status, kind, found, now);
}

/* Points at a value of the configured size inside the random pool. */
static const uint8_t *bench__value(bench__runner *r, size_t *len) {
  const bench_opts *o = r->o;
  size_t n = o->value_min;
  if (o->value_max > o->value_min)
    n += gen_rng_below(&r->rng, (uint64_t)(o->value_max - o->value_min) + 1);
  *len = n;
  return r->values + gen_rng_below(&r->rng, BENCH_VALUE_SLACK);
}

/* Sends the operation set up in slot id; on a refused request counts the
 * error and frees the slot. */
static void bench__send(bench__runner *r, uint32_t id) {
  bench__slot *s = &r->slots[id];
  int rc;
  if (s->op == GEN_OP_READ || (s->op == GEN_OP_RMW && s->step == 0)) {
    rc = r->drv->get(r->d, id, s->key, s->klen);
  } else {
    size_t vlen;
    const uint8_t *v = bench__value(r, &vlen);
    const uint8_t *ctx = NULL;
    size_t ctx_len = 0;
    if (s->op == GEN_OP_RMW && s->ctx_len) {
      ctx = s->ctx;
      ctx_len = s->ctx_len;
    } else if (s->op == GEN_OP_UPDATE) {
      const bench__ctxent *e =
          &r->ctxcache[s->key_num % BENCH_CTX_CACHE_SLOTS];
      if (e->key_plus1 == s->key_num + 1) {
        ctx = e->bytes;
        ctx_len = e->len;
      }
    }
    rc = r->drv->put(r->d, id, s->key, s->klen, v, vlen, ctx, ctx_len);
  }
  if (rc < 0)
    bench__finish(r, id, rc, NULL, false, bench_now_ns());
}

static void bench__issue(bench__runner *r, gen_op op, uint64_t key,
                         uint64_t start_ns) {
  uint32_t id = r->free_ids[--r->nfree];
  bench__slot *s = &r->slots[id];
  s->start_ns = start_ns;
  s->op = (uint8_t)op;
  s->step = 0;
  s->ctx_len = 0;
  s->key_num = key;
  s->klen = (uint8_t)gen_key_format(s->key, key);
  r->issued++;
  bench__send(r, id);
}

/* Closes the current second: one series point and a progress line. */
static void bench__tick(bench__runner *r, double t_s, double len_s) {
  bench_stats *st = r->st;
  bench_point p = {.t_s = t_s,
                   .ops = r->sec_ops,
                   .errors = r->sec_errors,
                   .p50_us = hdr_percentile(st->second, 50),
                   .p90_us = hdr_percentile(st->second, 90),
                   .p99_us = hdr_percentile(st->second, 99),
                   .p999_us = hdr_percentile(st->second, 99.9),
                   .max_us = st->second->max_us};
  if (st->nseries == st->series_cap && st->series_cap < BENCH_SERIES_MAX) {
    size_t cap = st->series_cap * 2;
    bench_point *np = realloc(st->series, cap * sizeof *np);
    if (np) {
      st->series = np;
      st->series_cap = cap;
    }
  }
  if (st->nseries < st->series_cap)
    st->series[st->nseries++] = p;
  if (!r->o->quiet)
    fprintf(stderr, "[%-6s %5.0fs] %10.0f ops/s  p99 %9.3f ms  errors %llu\n",
            st->phase, t_s, len_s > 0 ? (double)p.ops / len_s : 0.0,
            (double)p.p99_us / 1000.0, (unsigned long long)p.errors);
  hdr_reset(st->second);
  r->sec_ops = r->sec_errors = 0;
}

/* Runs one phase until its end (all keys loaded, duration or op count
 * reached) and every request has come back. Returns 0, or an error with
 * a message when the driver failed or requests never came back. */
static double bench__tv_s(const struct timeval *tv) {
  return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static int bench__phase_run(bench__runner *r, bench__phase ph, bench_stats *st,
                            char *err, size_t errlen) {
  const bench_opts *o = r->o;
  r->phase = ph;
  r->st = st;
  r->issued = 0;
  r->load_next = 0;
  r->sec_ops = r->sec_errors = 0;
  uint64_t srv0 = 0;
  bool srv = r->drv->server_cpu_us && r->drv->server_cpu_us(r->d, &srv0) == 0;
  uint64_t start = bench_now_ns();
  struct rusage ru0;
  getrusage(RUSAGE_SELF, &ru0);
  r->last_done_ns = start;
  double dur_s = ph == BENCH__WARMUP ? o->warmup_s : o->duration_s;
  bool by_ops = ph == BENCH__RUN && o->ops > 0;
  uint64_t end_ns = start + (uint64_t)(dur_s * 1e9);
  bool open_loop = ph != BENCH__LOAD && o->rate > 0;
  double interval_ns = open_loop ? 1e9 / o->rate : 0;
  uint64_t next_tick = start + BENCH_NS_PER_S;
  uint64_t drain_deadline = 0;
  int rc = 0;
  for (;;) {
    uint64_t now = bench_now_ns();
    /* Second steps of read-modify-writes whose reads came back. */
    while (r->nrmw)
      bench__send(r, r->rmw_ids[--r->nrmw]);
    /* New operations into free slots: at most one per slot per turn, so
     * requests the driver fails at once (every connection down) cannot
     * keep this loop from polling. */
    bool more = true;
    uint32_t budget = o->concurrency;
    while (r->nfree > 0 && budget > 0) {
      budget--;
      uint64_t key;
      gen_op op;
      if (ph == BENCH__LOAD) {
        if (r->load_next >= o->keys) {
          more = false;
          break;
        }
        key = r->load_next++;
        op = GEN_OP_INSERT;
      } else {
        if (by_ops ? r->issued >= o->ops : now >= end_ns) {
          more = false;
          break;
        }
        op = gen_mix_next(&o->mix, &r->rng);
        key = gen_keys_next(&r->keys, &r->rng);
      }
      uint64_t at = now;
      if (open_loop) {
        at = start + (uint64_t)((double)r->issued * interval_ns);
        if (at > now)
          break;
      }
      bench__issue(r, op, key, at);
    }
    if (r->nfree == 0 && ph != BENCH__LOAD && !by_ops && now >= end_ns)
      more = false;
    if (ph == BENCH__LOAD && r->load_next >= o->keys)
      more = false;
    uint32_t inflight = o->concurrency - r->nfree;
    if (!more && inflight == 0 && r->nrmw == 0)
      break;
    if (!more && drain_deadline == 0)
      drain_deadline = now + (uint64_t)BENCH_DRAIN_MAX_MS * 1000000ULL;
    if (drain_deadline && now >= drain_deadline) {
      bench__errf(err, errlen,
                  "%u requests still unanswered %d ms after the %s ended",
                  inflight, BENCH_DRAIN_MAX_MS, st->phase);
      rc = KV_ETIMEDOUT;
      break;
    }
    if (now >= next_tick) {
      bench__tick(r, (double)(next_tick - start) / 1e9, 1.0);
      next_tick += BENCH_NS_PER_S;
    }
    /* Sleep until the next tick, the next scheduled request or the end. */
    uint64_t wake = next_tick;
    if (more && open_loop && r->nfree > 0) {
      uint64_t at = start + (uint64_t)((double)r->issued * interval_ns);
      if (at < wake)
        wake = at;
    }
    if (more && !by_ops && ph != BENCH__LOAD && end_ns < wake)
      wake = end_ns;
    if (drain_deadline && drain_deadline < wake)
      wake = drain_deadline;
    if (r->nrmw)
      wake = now;
    now = bench_now_ns();
    int64_t tmo_us = wake > now ? (int64_t)((wake - now) / 1000) : 0;
    int n = r->drv->poll(r->d, tmo_us);
    if (n < 0) {
      bench__errf(err, errlen, "driver %s failed: %s", r->drv->name,
                  kv_strerror(n));
      rc = n;
      break;
    }
  }
  uint64_t end = r->last_done_ns > start ? r->last_done_ns : bench_now_ns();
  double part = (double)(end - (next_tick - BENCH_NS_PER_S)) / 1e9;
  if (st->nseries > 0 && part < BENCH_TAIL_FOLD_S) {
    /* A sliver of a second after the last tick joins the last point. */
    bench_point *lp = &st->series[st->nseries - 1];
    lp->ops += r->sec_ops;
    lp->errors += r->sec_errors;
    lp->t_s = (double)(end - start) / 1e9;
    if (st->second->max_us > lp->max_us)
      lp->max_us = st->second->max_us;
    hdr_reset(st->second);
  } else if (r->sec_ops || r->sec_errors || st->nseries == 0) {
    bench__tick(r, (double)(end - start) / 1e9, part > 0 ? part : 1.0);
  }
  st->elapsed_s = (double)(end - start) / 1e9;
  st->throughput_ops_s = st->elapsed_s > 0 ? (double)st->ops / st->elapsed_s
                                           : 0.0;
  struct rusage ru1;
  getrusage(RUSAGE_SELF, &ru1);
  st->cpu_user_s = bench__tv_s(&ru1.ru_utime) - bench__tv_s(&ru0.ru_utime);
  st->cpu_sys_s = bench__tv_s(&ru1.ru_stime) - bench__tv_s(&ru0.ru_stime);
  uint64_t srv1 = 0;
  st->server_cpu_s = -1.0;
  if (srv && rc >= 0 && r->drv->server_cpu_us(r->d, &srv1) == 0 &&
      srv1 >= srv0)
    st->server_cpu_s = (double)(srv1 - srv0) / 1e6;
  return rc;
}

int bench_run(const bench_opts *o, const bench_driver *drv, bench_stats *load,
              bench_stats *run, char *err, size_t errlen) {
  bench__runner r;
  memset(&r, 0, sizeof r);
  r.o = o;
  r.drv = drv;
  gen_rng_seed(&r.rng, o->seed);
  gen_keys_init(&r.keys, o->dist, o->keys);
  r.slots = calloc(o->concurrency, sizeof *r.slots);
  r.free_ids = malloc(o->concurrency * sizeof *r.free_ids);
  r.rmw_ids = malloc(o->concurrency * sizeof *r.rmw_ids);
  r.values = malloc((size_t)o->value_max + BENCH_VALUE_SLACK);
  r.ctxcache = calloc(BENCH_CTX_CACHE_SLOTS, sizeof *r.ctxcache);
  int rc = 0;
  if (!r.slots || !r.free_ids || !r.rmw_ids || !r.values || !r.ctxcache) {
    bench__errf(err, errlen, "out of memory for %u slots", o->concurrency);
    rc = KV_ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < (size_t)o->value_max + BENCH_VALUE_SLACK; i++)
    r.values[i] = (uint8_t)gen_rng_next(&r.rng);
  for (uint32_t i = 0; i < o->concurrency; i++)
    r.free_ids[i] = o->concurrency - 1 - i;
  r.nfree = o->concurrency;
  if (bench_stats_regions(run, o->nregions) < 0 ||
      (o->load && bench_stats_regions(load, o->nregions) < 0)) {
    bench__errf(err, errlen, "out of memory for %zu regions", o->nregions);
    rc = KV_ENOMEM;
    goto out;
  }
  rc = drv->open(o, bench__done, &r, &r.d, err, errlen);
  if (rc < 0)
    goto out;
  if (o->load) {
    rc = bench__phase_run(&r, BENCH__LOAD, load, err, errlen);
    if (rc < 0)
      goto out;
  }
  if (o->warmup_s > 0) {
    bench_stats warm;
    rc = bench_stats_init(&warm, "warmup");
    if (rc == 0)
      rc = bench__phase_run(&r, BENCH__WARMUP, &warm, err, errlen);
    bench_stats_free(&warm);
    if (rc < 0)
      goto out;
  }
  rc = bench__phase_run(&r, BENCH__RUN, run, err, errlen);
out:
  r.closing = true;
  if (r.d)
    drv->close(r.d);
  if (r.slots)
    for (uint32_t i = 0; i < o->concurrency; i++)
      free(r.slots[i].ctx);
  free(r.slots);
  free(r.free_ids);
  free(r.rmw_ids);
  free(r.values);
  free(r.ctxcache);
  return rc;
}
