/*
 * test_bench_regions.c: kvorum-bench's --region and --regions (library
 * kvbench): flag parsing and its errors, the runner's per-region figures
 * against an in-process fake driver that fails every request of one
 * region, and the JSON shape ("regions": {NAME: {"ops": {...}}}) next to
 * the unchanged totals. Prints "N passed, M failed" last; exits 1 if
 * anything failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "kv_err.h"

#define CHECK_MESSAGE
#include "unit/check.h"

#define TR_QUEUE_MAX 1024
#define TR_OPS "4000"

static bench_opts opts; /* large: off the stack */

/* Parses a NULL-terminated argv; returns bench_opts_parse's result. */
static int tr_parse(char **argv, char *err, size_t errlen) {
  int argc = 0;
  while (argv[argc])
    argc++;
  FILE *devnull = fopen("/dev/null", "w");
  int rc = bench_opts_parse(argc, argv, &opts, devnull, err, errlen);
  fclose(devnull);
  return rc;
}

static void test_parse(void) {
  char err[512];
  char *plain[] = {"kvorum-bench", "--hosts", "127.0.0.1:7101", NULL};
  CHECK(tr_parse(plain, err, sizeof err) == 0, "%s", err);
  CHECK(opts.nregions == 0 && opts.region[0] == '\0', "no regions by default");

  char *one[] = {"kvorum-bench", "--region", "eu-west", NULL};
  CHECK(tr_parse(one, err, sizeof err) == 0, "%s", err);
  CHECK(!strcmp(opts.region, "eu-west") && opts.nregions == 0,
        "--region sets the client's region: %s", opts.region);

  char *two[] = {"kvorum-bench", "--regions",
                 "us-east=127.0.0.1:7101,127.0.0.1:7102;eu-west=127.0.0.1:7201",
                 "--connections", "4", NULL};
  CHECK(tr_parse(two, err, sizeof err) == 0, "%s", err);
  CHECK(opts.nregions == 2 && !strcmp(opts.regions[0].name, "us-east") &&
            !strcmp(opts.regions[0].hosts, "127.0.0.1:7101,127.0.0.1:7102") &&
            !strcmp(opts.regions[1].name, "eu-west") &&
            !strcmp(opts.regions[1].hosts, "127.0.0.1:7201"),
        "two groups parsed: %zu", opts.nregions);
  CHECK(opts.nhosts == 3 &&
            !strcmp(opts.hosts_str,
                    "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7201"),
        "--hosts becomes every group's hosts: %s", opts.hosts_str);
  CHECK(bench_slot_region(&opts, 0) == 0 && bench_slot_region(&opts, 1) == 1 &&
            bench_slot_region(&opts, 6) == 0,
        "slots alternate between the groups");
  char *eq[] = {"kvorum-bench", "--regions=a=127.0.0.1:1", NULL};
  CHECK(tr_parse(eq, err, sizeof err) == 0 && opts.nregions == 1,
        "--regions=VALUE form: %s", err);

  struct {
    char *argv[8];
    const char *says; /* a word the message must contain */
  } bad[] = {
      {{"kvorum-bench", "--regions", "us-east=127.0.0.1:1", "--hosts",
        "127.0.0.1:2", NULL}, "exclude"},
      {{"kvorum-bench", "--regions", "us-east=127.0.0.1:1", "--protocol",
        "resp", NULL}, "native"},
      {{"kvorum-bench", "--region", "x", "--protocol", "resp", NULL},
       "native"},
      {{"kvorum-bench", "--regions", "a=127.0.0.1:1;a=127.0.0.1:2", NULL},
       "twice"},
      {{"kvorum-bench", "--regions", "us east=127.0.0.1:1", NULL}, "name"},
      {{"kvorum-bench", "--regions", "127.0.0.1:1", NULL}, "REGION="},
      {{"kvorum-bench", "--regions", "a=", NULL}, "hosts"},
      {{"kvorum-bench", "--regions", "a=nonsense", NULL}, "HOST:PORT"},
      {{"kvorum-bench", "--regions", "a=127.0.0.1:1;b=127.0.0.1:2;"
        "c=127.0.0.1:3", "--connections", "2", NULL}, "regions"},
      {{"kvorum-bench", "--regions", "a=127.0.0.1:1", "--region", "a", NULL},
       "exclude"},
      {{"kvorum-bench", "--region", "", NULL}, "region"},
      {{"kvorum-bench", "--regions", "a=1.1.1.1:1;b=1.1.1.1:1;c=1.1.1.1:1;"
        "d=1.1.1.1:1;e=1.1.1.1:1;f=1.1.1.1:1;g=1.1.1.1:1;h=1.1.1.1:1;"
        "i=1.1.1.1:1", "--connections", "16", NULL}, "more than"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    int rc = tr_parse(bad[i].argv, err, sizeof err);
    CHECK(rc == KV_EINVAL && strstr(err, bad[i].says),
          "bad case %zu: rc %d, message '%s' should mention '%s'", i, rc, err,
          bad[i].says);
  }
}

/* A driver that answers at once, failing every request of group 1. */
typedef struct tr_fake {
  bench_done_fn done;
  void *arg;
  uint32_t q[TR_QUEUE_MAX];
  size_t n;
} tr_fake;

static tr_fake fake;

static int fake_open(const bench_opts *o, bench_done_fn done, void *arg,
                     void **out, char *err, size_t errlen) {
  fake.done = done;
  fake.arg = arg;
  fake.n = 0;
  *out = &fake;
  return 0;
}

static int fake_get(void *d, uint32_t slot, const char *key, size_t klen) {
  fake.q[fake.n++] = slot;
  return 0;
}

static int fake_put(void *d, uint32_t slot, const char *key, size_t klen,
                    const void *val, size_t vlen, const void *ctx,
                    size_t ctx_len) {
  fake.q[fake.n++] = slot;
  return 0;
}

static int fake_poll(void *d, int64_t timeout_us) {
  size_t n = fake.n;
  fake.n = 0;
  for (size_t i = 0; i < n; i++) {
    if (bench_slot_region(&opts, fake.q[i]) == 1)
      fake.done(fake.arg, fake.q[i], KV_ETIMEDOUT, NULL, false, NULL, 0);
    else
      fake.done(fake.arg, fake.q[i], 0, NULL, true, NULL, 0);
  }
  return (int)n;
}

static void fake_close(void *d) {}

static const bench_driver fake_drv = {"fake",   fake_open,  fake_get,
                                      fake_put, fake_poll,  fake_close,
                                      NULL};

/* Counts the braces and brackets outside strings: 0 when balanced. */
static int tr_balance(const char *s) {
  int depth = 0;
  bool in_str = false;
  for (; *s; s++) {
    if (in_str) {
      if (*s == '\\' && s[1])
        s++;
      else if (*s == '"')
        in_str = false;
    } else if (*s == '"') {
      in_str = true;
    } else if (*s == '{' || *s == '[') {
      depth++;
    } else if (*s == '}' || *s == ']') {
      depth--;
      if (depth < 0)
        return -1;
    }
  }
  return depth;
}

static char *tr_json(const bench_stats *load, const bench_stats *run) {
  char *js = NULL;
  size_t jl = 0;
  FILE *f = open_memstream(&js, &jl);
  CHECK(bench_report_json(f, &opts, load, run) == 0, "json written");
  fclose(f);
  return js;
}

static void test_runner(void) {
  char err[512];
  char *argv[] = {"kvorum-bench", "--regions",
                  "us-east=127.0.0.1:9;eu-west=127.0.0.1:10",
                  "--keys", "100", "--concurrency", "16", "--connections",
                  "2", "--ops", TR_OPS, "--seed", "5", "--load", NULL};
  CHECK(tr_parse(argv, err, sizeof err) == 0, "%s", err);
  opts.quiet = true;
  bench_stats load, run;
  CHECK(bench_stats_init(&load, "load") == 0 &&
            bench_stats_init(&run, "run") == 0, "stats");
  int rc = bench_run(&opts, &fake_drv, &load, &run, err, sizeof err);
  CHECK(rc == 0, "run: %s", err);
  CHECK(run.nregions == 2, "two groups measured");
  CHECK(run.region_ops[0] == run.ops && run.region_ops[1] == 0,
        "every success is us-east's: %llu of %llu",
        (unsigned long long)run.region_ops[0], (unsigned long long)run.ops);
  CHECK(run.region_errors[1] == run.errors && run.region_errors[0] == 0 &&
            run.errors > 0,
        "every error is eu-west's: %llu of %llu",
        (unsigned long long)run.region_errors[1],
        (unsigned long long)run.errors);
  CHECK(run.region_all[0]->total == run.all->total,
        "us-east's histogram holds every measured op");
  uint64_t per_op = 0;
  for (int i = 0; i < GEN_OP_COUNT; i++)
    per_op += run.region_op[0][i]->total;
  CHECK(per_op >= run.region_ops[0], "per-op histograms filled");

  char *js = tr_json(&load, &run);
  CHECK(js && tr_balance(js) == 0, "json balanced");
  CHECK(js && strstr(js, "\"throughput_ops_s\"") && strstr(js, "\"series\"") &&
            strstr(js, "\"all\": {\"count\"") && strstr(js, "\"ops\": {"),
        "the totals keep their fields");
  const char *rg = js ? strstr(js, "\"regions\": {") : NULL;
  CHECK(rg != NULL, "json has regions");
  const char *us = rg ? strstr(rg, "\"us-east\": {\"hosts\": "
                                   "\"127.0.0.1:9\", \"ops_total\": ") : NULL;
  const char *eu = rg ? strstr(rg, "\"eu-west\": {\"hosts\": "
                                   "\"127.0.0.1:10\", \"ops_total\": 0, ") : NULL;
  CHECK(us && eu && us < eu, "both regions, in order: %s", rg ? rg : "");
  CHECK(us && strstr(us, "\"ops\": {\n      \"read\": {\"count\": ") &&
            strstr(us, "\"update\": {\"count\": "),
        "a region's ops have the totals' shape");
  /* The load phase is reported per region as well. */
  const char *ld = js ? strstr(js, "\"load\": {") : NULL;
  CHECK(ld && strstr(ld, "\"regions\": {"), "load has regions");
  free(js);

  char *tx = NULL;
  size_t tl = 0;
  FILE *f = open_memstream(&tx, &tl);
  bench_report_text(f, &opts, &load, &run);
  fclose(f);
  CHECK(tx && strstr(tx, "region us-east (127.0.0.1:9): ") &&
            strstr(tx, "region eu-west (127.0.0.1:10): 0 ops"),
        "text report per region: %s", tx ? tx : "");
  free(tx);

  /* The HTML page: a table per region and their latency in one chart. */
  char *ht = NULL;
  size_t hl = 0;
  f = open_memstream(&ht, &hl);
  CHECK(bench_report_html(f, &opts, &load, &run) == 0, "html written");
  fclose(f);
  const char *sec = ht ? strstr(ht, "<h2>Regions</h2>") : NULL;
  const char *h_us = sec ? strstr(sec, "<h3>us-east (127.0.0.1:9)</h3>") : NULL;
  const char *h_eu = sec ? strstr(sec, "<h3>eu-west (127.0.0.1:10)</h3>\n"
                                       "<p>0 ops, errors ") : NULL;
  CHECK(h_us && h_eu && h_us < h_eu, "html: both regions, in order");
  CHECK(h_us && strstr(h_us, "<td>read</td>") && strstr(h_us, "<svg") &&
            strstr(h_us, "latency by region"),
        "html: a region's table, then the by-region chart");
  free(ht);
  bench_stats_free(&load);
  bench_stats_free(&run);

  /* Without --regions nothing changes shape. */
  char *plain[] = {"kvorum-bench", "--hosts", "127.0.0.1:9", "--keys", "100",
                   "--concurrency", "4", "--connections", "1", "--ops",
                   "100", "--seed", "5", NULL};
  CHECK(tr_parse(plain, err, sizeof err) == 0, "%s", err);
  opts.quiet = true;
  CHECK(bench_stats_init(&run, "run") == 0, "stats");
  rc = bench_run(&opts, &fake_drv, NULL, &run, err, sizeof err);
  CHECK(rc == 0 && run.nregions == 0, "plain run: %s", err);
  js = tr_json(NULL, &run);
  CHECK(js && !strstr(js, "\"regions\"") && !strstr(js, "\"region\"") &&
            tr_balance(js) == 0,
        "no regions in a plain run's json");
  free(js);
  ht = NULL;
  f = open_memstream(&ht, &hl);
  CHECK(bench_report_html(f, &opts, NULL, &run) == 0, "plain html written");
  fclose(f);
  CHECK(ht && !strstr(ht, "Regions"), "no regions in a plain run's html");
  free(ht);
  bench_stats_free(&run);
}

int main(void) {
  test_parse();
  test_runner();
  return check_summary("test_bench_regions");
}
