/*
 * bench.h: kvorum-bench's internals, shared by its files and its tests.
 *
 * The pieces: the options (bench_opts_parse), a driver interface that
 * hides the protocol (RESP in drv_resp.c, libkvorum in drv_native.c), the
 * runner (run.c) that keeps --concurrency requests in flight from one
 * thread, and the reports (report.c: text, JSON, HTML with inline SVG).
 * Depends on hdr.h, gen.h and kv_err.h.
 */
#ifndef BENCH_H
#define BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gen.h"
#include "hdr.h"

/* Limits of the options. */
#define BENCH_HOSTS_MAX 64
#define BENCH_HOST_LEN_MAX 256
#define BENCH_CONCURRENCY_MAX 65536
#define BENCH_CONNECTIONS_MAX 1024
#define BENCH_KEYS_MAX 1000000000000ULL
#define BENCH_VALUE_MAX (1u << 20) /* the store's default value limit */
#define BENCH_DURATION_MAX_S 86400.0
#define BENCH_RATE_MAX 1e8
#define BENCH_ERR_KINDS_MAX 32   /* distinct error kinds counted by name */
#define BENCH_ERR_NAME_MAX 48
#define BENCH_DRAIN_MAX_MS 10000 /* wait for stragglers after the run */
#define BENCH_CTX_MAX (64u << 10) /* largest causal context kept for rmw */
#define BENCH_SERIES_MAX 86400    /* one point per second at most */
#define BENCH_REGIONS_MAX 8       /* client groups of --regions */
#define BENCH_REGION_NAME_MAX 64
#define BENCH_REGION_HOSTS_MAX 2048 /* one group's "host:port,..." */
#define BENCH_USER_MAX 63        /* bytes of --user (the wire's limit) */
#define BENCH_PASSWORD_MAX 1024  /* bytes of KVORUM_PASSWORD */
#define BENCH_PASSWORD_ENV "KVORUM_PASSWORD"

/* Consistency levels, as kvorum.h numbers them (checked in drv_native.c). */
#define BENCH_LVL_ONE (-1)
#define BENCH_LVL_QUORUM (-2)
#define BENCH_LVL_ALL (-3)
#define BENCH_LVL_LOCAL_ONE (-4)
#define BENCH_LVL_LOCAL_QUORUM (-5)
#define BENCH_LVL_EACH_QUORUM (-6)

typedef enum bench_proto { BENCH_NATIVE = 0, BENCH_RESP } bench_proto;

/* One client group of --regions: clients in region name, contacting
 * hosts. */
typedef struct bench_region {
  char name[BENCH_REGION_NAME_MAX];
  char hosts[BENCH_REGION_HOSTS_MAX];
} bench_region;

typedef struct bench_opts {
  char hosts_str[BENCH_HOSTS_MAX * BENCH_HOST_LEN_MAX];
  char hosts[BENCH_HOSTS_MAX][BENCH_HOST_LEN_MAX]; /* "host:port" each */
  size_t nhosts;
  char workload[64];
  gen_mix mix;
  gen_dist dist;
  uint64_t keys;
  uint32_t value_min, value_max;
  uint32_t concurrency, connections;
  double duration_s; /* 0 when --ops is used */
  uint64_t ops;      /* 0 when --duration is used */
  double warmup_s;
  double rate; /* 0: closed loop */
  int32_t r, w, dw;
  bool load;
  bench_proto proto;
  const char *json_path, *report_path;
  uint64_t seed;
  bool quiet; /* no progress lines (set by tests) */
  /* --region: the client's region (kv_connect_opts.region; "" = any). */
  char region[BENCH_REGION_NAME_MAX];
  /* --regions: one client group per region, run at once; slot i belongs
   * to group i % nregions (bench_slot_region). nregions 0: one group. */
  bench_region regions[BENCH_REGIONS_MAX];
  size_t nregions;
  /* --tls (implied by any --tls-* flag): both drivers speak TLS, verifying
   * the servers against tls_ca (NULL: the system store); tls_cert/tls_key
   * a client certificate; tls_server_name the name to check (NULL: the
   * CA chain only). Strings point into argv. */
  bool tls;
  const char *tls_ca, *tls_cert, *tls_key, *tls_server_name;
  /* --user: credentials for every connection (native: HELLO; resp: AUTH
   * user password first), the password from KVORUM_PASSWORD. */
  const char *user;
  const char *password; /* getenv's string; NULL without --user */
} bench_opts;

/* The --regions group that request slot belongs to (0 without
 * --regions). */
static inline size_t bench_slot_region(const bench_opts *o, uint32_t slot) {
  return o->nregions ? slot % o->nregions : 0;
}

/* Parses argv into *o (defaults for what is absent). Returns 0, 1 when
 * --help or --version was asked for (printed to out), or KV_EINVAL with a
 * message for a person in err. */
int bench_opts_parse(int argc, char **argv, bench_opts *o, FILE *out,
                     char *err, size_t errlen);
/* Parses a consistency level: a positive number or a level name. */
int bench_parse_level(const char *s, int32_t *out);
/* Name of a level ("quorum", "2", "default") into buf. */
const char *bench_level_str(int32_t lvl, char *buf, size_t len);

/* The driver interface. A driver queues requests (get/put), and its poll
 * sends them, waits up to timeout_us for replies and reports each one
 * through the done callback given to open, with the slot it was queued
 * for. status is 0 or a KV_E* code; kind names the error for counting
 * (NULL: the runner uses kv_errname(status)). For a get, found says whether
 * the key existed and ctx is the causal context to write back (NULL if the
 * protocol has none). If get or put returns an error, done is not called. */
typedef void (*bench_done_fn)(void *arg, uint32_t slot, int status,
                              const char *kind, bool found, const void *ctx,
                              size_t ctx_len);

typedef struct bench_driver {
  const char *name;
  int (*open)(const bench_opts *o, bench_done_fn done, void *arg,
              void **out, char *err, size_t errlen);
  int (*get)(void *d, uint32_t slot, const char *key, size_t klen);
  int (*put)(void *d, uint32_t slot, const char *key, size_t klen,
             const void *val, size_t vlen, const void *ctx, size_t ctx_len);
  /* Returns completions reported, or a negative KV_E* on a fatal error. */
  int (*poll)(void *d, int64_t timeout_us);
  void (*close)(void *d);
  /* Optional: the CPU time (user + system, microseconds) the servers have
   * used since they started, summed over them. Called between phases,
   * with nothing in flight. Returns 0, or a negative KV_E* when a server
   * would not say (the figure is then left out). */
  int (*server_cpu_us)(void *d, uint64_t *us);
} bench_driver;

extern const bench_driver bench_drv_resp;
#ifdef BENCH_HAVE_NATIVE
extern const bench_driver bench_drv_native;
#endif

/* One point of the per-second series. */
typedef struct bench_point {
  double t_s; /* seconds since the phase started, at the end of the second */
  uint64_t ops, errors;
  uint64_t p50_us, p90_us, p99_us, p999_us, max_us; /* all ops together */
} bench_point;

typedef struct bench_err_kind {
  char name[BENCH_ERR_NAME_MAX];
  uint64_t count;
} bench_err_kind;

/* The figures of one phase (the load, or the run). */
typedef struct bench_stats {
  const char *phase;
  hdr_hist *op[GEN_OP_COUNT]; /* whole-phase latency per op */
  hdr_hist *all;              /* all top-level ops, whole phase */
  hdr_hist *second;           /* all top-level ops, the current second */
  uint64_t ops;               /* completed top-level ops (rmw counts once) */
  uint64_t errors, not_found;
  bench_err_kind kinds[BENCH_ERR_KINDS_MAX];
  size_t nkinds;
  uint64_t kinds_dropped; /* errors whose kind did not fit the table */
  bench_point *series;
  size_t nseries, series_cap;
  double elapsed_s;
  double throughput_ops_s;
  /* CPU time the bench process itself used in the phase (getrusage), so a
   * run on one machine shows how much of it the load generator took. */
  double cpu_user_s, cpu_sys_s;
  /* CPU time the servers used in the phase (driver's server_cpu_us);
   * negative when unknown. */
  double server_cpu_s;
  /* Per --regions group (nregions 0 without it): latency per op and over
   * all ops, completed ops and errors. */
  size_t nregions;
  hdr_hist *region_op[BENCH_REGIONS_MAX][GEN_OP_COUNT];
  hdr_hist *region_all[BENCH_REGIONS_MAX];
  uint64_t region_ops[BENCH_REGIONS_MAX], region_errors[BENCH_REGIONS_MAX];
} bench_stats;

/* Allocates the histograms of s. Returns 0 or KV_ENOMEM. */
int bench_stats_init(bench_stats *s, const char *phase);
void bench_stats_free(bench_stats *s);
/* Allocates the per-region histograms of s for nregions groups (0: none).
 * bench_run calls it. Returns 0 or KV_ENOMEM. */
int bench_stats_regions(bench_stats *s, size_t nregions);
/* Counts an error of this kind. */
void bench_stats_error(bench_stats *s, const char *kind);

/* Runs --load (if asked), the warmup and the measured run with driver drv.
 * Fills load (if o->load) and run. Returns 0 or a KV_E* code with a
 * message in err. */
int bench_run(const bench_opts *o, const bench_driver *drv, bench_stats *load,
              bench_stats *run, char *err, size_t errlen);

/* Reports. */
void bench_report_text(FILE *f, const bench_opts *o, const bench_stats *load,
                       const bench_stats *run);
int bench_report_json(FILE *f, const bench_opts *o, const bench_stats *load,
                      const bench_stats *run);
int bench_report_html(FILE *f, const bench_opts *o, const bench_stats *load,
                      const bench_stats *run);

/* Monotonic clock in nanoseconds. */
uint64_t bench_now_ns(void);

#endif
