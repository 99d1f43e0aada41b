/*
 * test_bench.c: unit tests of kvorum-bench's internals (library kvbench):
 * histogram accuracy, key distributions, workload mix, the RESP parser on
 * partial and garbage input, flag parsing, and the runner against an
 * in-process fake driver. Given the path of the kvorum-bench binary as
 * argv[1], also checks that bad flags make it exit 2 with a message.
 * Prints "N passed, M failed" last; exits 1 if anything failed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "bench.h"
#include "kv_err.h"
#include "resp.h"

#define CHECK_MESSAGE
#include "unit/check.h"

#define TEST_SAMPLES 200000
#define TEST_DRAWS 200000

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Percentiles read back from the histogram are within 0.1% of the exact
 * ones over random samples spread across the whole range. */
static void test_hdr_accuracy(void) {
  hdr_hist *h = malloc(sizeof *h);
  uint64_t *v = malloc(TEST_SAMPLES * sizeof *v);
  gen_rng r;
  gen_rng_seed(&r, 7);
  hdr_reset(h);
  for (int i = 0; i < TEST_SAMPLES; i++) {
    /* Log-uniform over 1 us .. 60 s. */
    v[i] = (uint64_t)exp(gen_rng_double(&r) * log((double)HDR_MAX_US));
    hdr_record(h, v[i]);
  }
  qsort(v, TEST_SAMPLES, sizeof *v, cmp_u64);
  static const double ps[] = {0, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100};
  int bad = 0;
  for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
    uint64_t rank = (uint64_t)ceil(ps[i] / 100 * TEST_SAMPLES);
    uint64_t exact = v[rank ? rank - 1 : 0];
    uint64_t got = hdr_percentile(h, ps[i]);
    double rel = fabs((double)got - (double)exact) / (double)exact;
    if (rel > 0.001) {
      bad++;
      fprintf(stderr, "p%g: exact %llu got %llu\n", ps[i],
              (unsigned long long)exact, (unsigned long long)got);
    }
  }
  CHECK(bad == 0, "%d percentiles off by more than 0.1%%", bad);
  CHECK(h->max_us == v[TEST_SAMPLES - 1], "max");
  CHECK(h->min_us == v[0], "min");
  CHECK(h->total == TEST_SAMPLES, "total");
  /* Small values are exact; the bucket bounds enclose every value. */
  hdr_reset(h);
  for (uint64_t x = 0; x < 2048; x++)
    hdr_record(h, x);
  CHECK(hdr_percentile(h, 50) == 1023, "p50 of 0..2047 is %llu",
        (unsigned long long)hdr_percentile(h, 50));
  int enclose = 0;
  for (int i = 0; i < TEST_SAMPLES; i++) {
    uint64_t x = gen_rng_below(&r, HDR_MAX_US + 1);
    size_t idx = hdr__index(x);
    if (idx >= HDR_COUNTS_LEN || hdr__lowest(idx) > x ||
        hdr__highest(idx) < x ||
        (double)(hdr__highest(idx) - hdr__lowest(idx)) >
            (double)hdr__lowest(idx) / 1000.0 + 1)
      enclose++;
  }
  CHECK(enclose == 0, "%d values outside their bucket or buckets too wide",
        enclose);
  /* Overflow clamps; merging adds; empty reads 0. */
  hdr_reset(h);
  hdr_record(h, HDR_MAX_US * 10);
  CHECK(h->overflows == 1 && h->max_us == HDR_MAX_US, "overflow clamps");
  hdr_hist *h2 = malloc(sizeof *h2);
  hdr_reset(h2);
  CHECK(hdr_percentile(h2, 99) == 0, "empty histogram reads 0");
  hdr_record(h2, 5);
  hdr_add(h2, h);
  CHECK(h2->total == 2 && hdr_percentile(h2, 50) == 5 &&
            h2->max_us == HDR_MAX_US,
        "hdr_add merges");
  free(h2);
  free(h);
  free(v);
}

/* Zipfian ranks stay in bounds and are skewed as theta 0.99 says. */
static void test_zipf(void) {
  enum { ITEMS = 1000 };
  static uint32_t hist[ITEMS];
  gen_zipf z;
  gen_rng r;
  gen_rng_seed(&r, 11);
  gen_zipf_init(&z, ITEMS, GEN_ZIPF_THETA, 0);
  int out = 0;
  for (int i = 0; i < TEST_DRAWS; i++) {
    uint64_t k = gen_zipf_next(&z, &r);
    if (k >= ITEMS)
      out++;
    else
      hist[k]++;
  }
  CHECK(out == 0, "%d ranks out of bounds", out);
  double p0 = (double)hist[0] / TEST_DRAWS;
  double expect = 1.0 / gen_zeta(ITEMS, GEN_ZIPF_THETA);
  CHECK(fabs(p0 - expect) < 0.1 * expect, "P(rank 0) %.4f, expected %.4f",
        p0, expect);
  CHECK(hist[0] > hist[1] && hist[1] > hist[10] && hist[10] > hist[500],
        "popularity falls with rank");
  uint64_t top = 0;
  for (int i = 0; i < ITEMS / 10; i++)
    top += hist[i];
  CHECK(top > TEST_DRAWS / 2, "top 10%% of ranks got %.1f%%",
        100.0 * (double)top / TEST_DRAWS);
  /* YCSB's precomputed zeta for 10^10 items matches the integral. */
  double zn = gen_zeta(GEN_SCRAMBLED_ITEMS, GEN_ZIPF_THETA);
  CHECK(fabs(zn - GEN_SCRAMBLED_ZETAN) < 0.001 * GEN_SCRAMBLED_ZETAN,
        "zeta(1e10) %.6f vs YCSB's %.6f", zn, GEN_SCRAMBLED_ZETAN);
  CHECK(gen_fnv64(0) != gen_fnv64(1), "fnv spreads");
  /* A one-item generator always answers 0. */
  gen_zipf one;
  gen_zipf_init(&one, 1, GEN_ZIPF_THETA, 0);
  int nonzero = 0;
  for (int i = 0; i < 1000; i++)
    nonzero += gen_zipf_next(&one, &r) != 0;
  CHECK(nonzero == 0, "one item");
}

/* The key choosers: bounds, skew of scrambled zipfian vs uniform, latest
 * favouring the newest key. */
static void test_keys(void) {
  enum { KEYS = 1000 };
  static uint32_t hist[3][KEYS];
  static const gen_dist dists[3] = {GEN_UNIFORM, GEN_ZIPFIAN, GEN_LATEST};
  gen_rng r;
  gen_rng_seed(&r, 13);
  for (int d = 0; d < 3; d++) {
    gen_keys k;
    gen_keys_init(&k, dists[d], KEYS);
    int out = 0;
    for (int i = 0; i < TEST_DRAWS; i++) {
      uint64_t x = gen_keys_next(&k, &r);
      if (x >= KEYS)
        out++;
      else
        hist[d][x]++;
    }
    CHECK(out == 0, "dist %d: %d keys out of bounds", d, out);
  }
  uint32_t umax = 0, zmax = 0;
  size_t zarg = 0, lmax = 0;
  for (size_t i = 0; i < KEYS; i++) {
    umax = hist[0][i] > umax ? hist[0][i] : umax;
    if (hist[1][i] > zmax) {
      zmax = hist[1][i];
      zarg = i;
    }
    if (hist[2][i] > hist[2][lmax])
      lmax = i;
  }
  CHECK(umax < TEST_DRAWS / KEYS * 2, "uniform max %u", umax);
  /* Scrambled ranks come from 10^10 items: the hottest key gets rank 0's
   * share, 1/zeta(10^10), and then some from colliding ranks. */
  CHECK(zmax > 0.9 * TEST_DRAWS / GEN_SCRAMBLED_ZETAN && zmax > 10 * umax,
        "zipfian hottest key got only %u (uniform's %u)", zmax, umax);
  CHECK(zarg != 0, "scrambled zipfian's hottest key is not key 0");
  CHECK(lmax == KEYS - 1, "latest's hottest key is %zu", lmax);
  char buf[GEN_KEY_MAX];
  CHECK(gen_key_format(buf, 0) == 5 && !strcmp(buf, "user0"), "%s", buf);
  gen_key_format(buf, UINT64_MAX);
  CHECK(!strcmp(buf, "user18446744073709551615"), "%s", buf);
}

/* Operation mixes come out in the ratios asked for. */
static void test_mix(void) {
  static const struct {
    const char *w;
    double reads;
    gen_op wop;
  } cases[] = {{"a", 0.5, GEN_OP_UPDATE},       {"b", 0.95, GEN_OP_UPDATE},
               {"c", 1.0, GEN_OP_UPDATE},       {"f", 0.5, GEN_OP_RMW},
               {"write-only", 0, GEN_OP_UPDATE}, {"mix:90/10", 0.9, GEN_OP_UPDATE},
               {"mix:1/3", 0.25, GEN_OP_UPDATE}};
  gen_rng r;
  gen_rng_seed(&r, 17);
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    gen_mix m;
    CHECK(gen_mix_parse(cases[c].w, &m) == 0, "parse %s", cases[c].w);
    uint64_t n[GEN_OP_COUNT] = {0};
    for (int i = 0; i < TEST_DRAWS; i++)
      n[gen_mix_next(&m, &r)]++;
    double reads = (double)n[GEN_OP_READ] / TEST_DRAWS;
    CHECK(fabs(reads - cases[c].reads) < 0.005, "%s: reads %.4f",
          cases[c].w, reads);
    CHECK(n[GEN_OP_READ] + n[cases[c].wop] == TEST_DRAWS, "%s: write op",
          cases[c].w);
  }
  static const char *const bad[] = {"d", "", "mix:", "mix:1", "mix:a/b",
                                    "mix:0/0", "mix:-1/2", "mix:1/2x",
                                    "mix:1/inf"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    gen_mix m;
    CHECK(gen_mix_parse(bad[i], &m) == -1, "'%s' accepted", bad[i]);
  }
}

/* The RESP parser: whole replies, every prefix of them, and garbage. */
static void test_resp(void) {
  static const struct {
    const char *in;
    resp_type type;
    int64_t num;
    const char *str;
  } ok[] = {{"+OK\r\n", RESP_STATUS, 0, "OK"},
            {"-ERR wrong type\r\n", RESP_ERROR, 0, "ERR wrong type"},
            {":-42\r\n", RESP_INT, -42, NULL},
            {"$5\r\nhello\r\n", RESP_BULK, 5, "hello"},
            {"$0\r\n\r\n", RESP_BULK, 0, ""},
            {"$-1\r\n", RESP_BULK, -1, NULL},
            {"*2\r\n$1\r\na\r\n*1\r\n:1\r\n", RESP_ARRAY, 2, NULL},
            {"*-1\r\n", RESP_ARRAY, -1, NULL}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    size_t len = strlen(ok[i].in);
    resp_reply rep;
    long n = resp_parse(ok[i].in, len, &rep);
    CHECK(n == (long)len, "'%s' took %ld", ok[i].in, n);
    CHECK(rep.type == ok[i].type, "type of '%s'", ok[i].in);
    if (ok[i].type == RESP_INT || ok[i].type == RESP_ARRAY ||
        ok[i].type == RESP_BULK)
      CHECK(rep.num == ok[i].num, "num of '%s'", ok[i].in);
    if (ok[i].str)
      CHECK(rep.len == strlen(ok[i].str) &&
                !memcmp(rep.str, ok[i].str, rep.len),
            "text of '%s'", ok[i].in);
    /* Every proper prefix asks for more, and reads nothing past it. */
    int early = 0;
    for (size_t k = 0; k < len; k++) {
      char *copy = malloc(k ? k : 1);
      memcpy(copy, ok[i].in, k);
      if (resp_parse(copy, k, &rep) != 0)
        early++;
      free(copy);
    }
    CHECK(early == 0, "'%s': %d prefixes not 'need more'", ok[i].in, early);
  }
  /* Two replies back to back parse one at a time. */
  const char two[] = "+OK\r\n$2\r\nhi\r\n";
  resp_reply rep;
  long n1 = resp_parse(two, sizeof two - 1, &rep);
  long n2 = resp_parse(two + n1, sizeof two - 1 - (size_t)n1, &rep);
  CHECK(n1 == 5 && n2 == 8 && rep.len == 2, "pipelined replies");
  static const char *const bad[] = {
      "?x\r\n", "+OK\n", "+O\rK\r\n", ":12a\r\n", ":\r\n", ":-\r\n",
      "$-2\r\n", "$abc\r\n", "$3\r\nabcd\r\n", "$99999999999\r\n",
      "$600000000\r\n", "*-2\r\n", "*1\r\n?\r\n", ":1234567890123456789\r\n",
      "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    long n = resp_parse(bad[i], strlen(bad[i]), &rep);
    CHECK(n == KV_EPROTO, "garbage #%zu gave %ld", i, n);
  }
  /* An endless line is refused once it passes the limit. */
  char *line = malloc(RESP_LINE_MAX + 10);
  line[0] = '+';
  memset(line + 1, 'a', RESP_LINE_MAX + 9);
  CHECK(resp_parse(line, RESP_LINE_MAX + 10, &rep) == KV_EPROTO, "long line");
  CHECK(resp_parse(line, 100, &rep) == 0, "short part of a line");
  free(line);
  /* Random bytes never crash or overrun (ASan checks the reads). */
  gen_rng r;
  gen_rng_seed(&r, 19);
  int weird = 0;
  for (int i = 0; i < 20000; i++) {
    size_t len = 1 + gen_rng_below(&r, 32);
    char *b = malloc(len);
    static const char alpha[] = "+-:$*\r\n0123456789-ab";
    for (size_t k = 0; k < len; k++)
      b[k] = alpha[gen_rng_below(&r, sizeof alpha - 1)];
    long n = resp_parse(b, len, &rep);
    if (n > (long)len || (n < 0 && n != KV_EPROTO))
      weird++;
    free(b);
  }
  CHECK(weird == 0, "%d random inputs gave impossible answers", weird);
  /* The encoder writes what the size functions promise, and it parses. */
  char buf[128];
  size_t sz = resp_encode_set(buf, "user1", 5, "v\r\nx", 4);
  CHECK(sz == resp_set_size(5, 4), "set size");
  CHECK(resp_parse(buf, sz, &rep) == (long)sz && rep.type == RESP_ARRAY &&
            rep.num == 3,
        "SET round trip");
  sz = resp_encode_get(buf, "k", 1);
  CHECK(sz == resp_get_size(1) && !memcmp(buf, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
                                          sz),
        "GET encoding");
  const char *auth[] = {"AUTH", "bob", "pw"};
  size_t auth_lens[] = {4, 3, 2};
  static const char auth_want[] =
      "*3\r\n$4\r\nAUTH\r\n$3\r\nbob\r\n$2\r\npw\r\n";
  sz = resp_encode_cmd(buf, 3, auth, auth_lens);
  CHECK(sz == resp_cmd_size(3, auth_lens) && sz == sizeof auth_want - 1 &&
            !memcmp(buf, auth_want, sz),
        "AUTH encoding");
}

/* Flag parsing: defaults, values, and errors that name the flag. */
static void test_opts(void) {
  static bench_opts o;
  char err[256];
  FILE *devnull = fopen("/dev/null", "w");
  char *good[] = {"kvorum-bench", "--hosts", "127.0.0.1:1,localhost:2",
                  "--workload=mix:80/20", "--distribution", "uniform",
                  "--keys", "500", "--value-size", "10-20", "--concurrency",
                  "8", "--connections", "2", "--ops", "1000", "--rate",
                  "100.5", "--r", "quorum", "--w", "2", "--dw", "one",
                  "--protocol", "resp", "--load", "--seed", "9", NULL};
  int rc = bench_opts_parse(sizeof good / sizeof good[0] - 1, good, &o,
                            devnull, err, sizeof err);
  CHECK(rc == 0, "good flags: %s", err);
  CHECK(o.nhosts == 2 && !strcmp(o.hosts[1], "localhost:2"), "hosts");
  CHECK(fabs(o.mix.read_frac - 0.8) < 1e-9 && o.dist == GEN_UNIFORM &&
            o.keys == 500 && o.value_min == 10 && o.value_max == 20 &&
            o.concurrency == 8 && o.connections == 2 && o.ops == 1000 &&
            o.duration_s == 0 && o.rate == 100.5 &&
            o.r == BENCH_LVL_QUORUM && o.w == 2 && o.dw == BENCH_LVL_ONE &&
            o.proto == BENCH_RESP && o.load && o.seed == 9,
        "values");
  char *help[] = {"kvorum-bench", "--help", NULL};
  CHECK(bench_opts_parse(2, help, &o, devnull, err, sizeof err) == 1, "help");
  static const struct {
    const char *a, *b, *needle;
  } bad[] = {{"--keys", "abc", "--keys"},
             {"--keys", "0", "--keys"},
             {"--keys", "-5", "--keys"},
             {"--workload", "z", "--workload"},
             {"--distribution", "pareto", "--distribution"},
             {"--value-size", "20-10", "--value-size"},
             {"--value-size", "2000000", "--value-size"},
             {"--concurrency", "0", "--concurrency"},
             {"--connections", "100000", "--connections"},
             {"--duration", "-1", "--duration"},
             {"--rate", "fast", "--rate"},
             {"--r", "most", "--r"},
             {"--dw", "0", "--dw"},
             {"--protocol", "http", "--protocol"},
             {"--hosts", "nohost", "--hosts"},
             {"--hosts", "a:1,,b:2", "--hosts"},
             {"--hosts", "a:99999", "--hosts"},
             {"--bogus", "1", "--bogus"},
             {"--seed", "x", "--seed"},
             {"stray", NULL, "stray"},
             {"--keys", NULL, "needs a value"},
             {"--password", "pw", "KVORUM_PASSWORD"},
             {"--tls-key", "k.pem", "--tls-cert"},
             {"--tls-ca", "", "--tls-ca"},
             {"--user", "", "--user"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *argv[] = {"kvorum-bench", (char *)bad[i].a, (char *)bad[i].b, NULL};
    int argc = bad[i].b ? 3 : 2;
    err[0] = '\0';
    rc = bench_opts_parse(argc, argv, &o, devnull, err, sizeof err);
    CHECK(rc == KV_EINVAL && strstr(err, bad[i].needle),
          "%s %s: rc %d, message '%s'", bad[i].a, bad[i].b ? bad[i].b : "",
          rc, err);
  }
  char *both[] = {"kvorum-bench", "--ops", "5", "--duration", "1", NULL};
  CHECK(bench_opts_parse(5, both, &o, devnull, err, sizeof err) == KV_EINVAL,
        "--ops with --duration");
  char *conns[] = {"kvorum-bench", "--concurrency", "2", "--connections", "4",
                   NULL};
  CHECK(bench_opts_parse(5, conns, &o, devnull, err, sizeof err) == KV_EINVAL,
        "more connections than concurrency");
  /* TLS and a user: any --tls-* implies --tls; the password only from the
   * environment. */
  char *tls[] = {"kvorum-bench", "--tls-ca", "ca.pem", "--user", "bob", NULL};
  setenv("KVORUM_PASSWORD", "pw", 1);
  rc = bench_opts_parse(5, tls, &o, devnull, err, sizeof err);
  CHECK(rc == 0 && o.tls && !strcmp(o.tls_ca, "ca.pem") &&
            !strcmp(o.user, "bob") && o.password && !strcmp(o.password, "pw"),
        "--tls-ca --user: rc %d, '%s'", rc, err);
  unsetenv("KVORUM_PASSWORD");
  rc = bench_opts_parse(5, tls, &o, devnull, err, sizeof err);
  CHECK(rc == KV_EINVAL && strstr(err, "KVORUM_PASSWORD"),
        "--user without KVORUM_PASSWORD: rc %d, '%s'", rc, err);
  char *plain[] = {"kvorum-bench", NULL};
  rc = bench_opts_parse(1, plain, &o, devnull, err, sizeof err);
  CHECK(rc == 0 && !o.tls && !o.user && !o.password, "no TLS by default");
  fclose(devnull);
}

/* ---- the runner against a fake driver ---- */

#define FAKE_CTX "ctx-of-"
enum { FAKE_MAX = 1024 };

typedef struct fake {
  bench_done_fn done;
  void *arg;
  struct {
    uint32_t slot;
    bool get;
    char key[GEN_KEY_MAX];
  } q[FAKE_MAX];
  size_t n;
  uint64_t gets, puts, puts_with_good_ctx, puts_with_ctx;
  int fail_every; /* fail every n-th request with EQUORUM, 0: never */
  uint64_t seen;
  size_t max_inflight;
} fake;

static fake the_fake;

static int fake_open(const bench_opts *o, bench_done_fn done, void *arg,
                     void **out, char *err, size_t errlen) {
  the_fake.done = done;
  the_fake.arg = arg;
  *out = &the_fake;
  return 0;
}

static void fake_queue(fake *f, uint32_t slot, bool get, const char *key,
                       size_t klen) {
  f->q[f->n].slot = slot;
  f->q[f->n].get = get;
  memcpy(f->q[f->n].key, key, klen);
  f->q[f->n].key[klen] = '\0';
  f->n++;
  if (f->n > f->max_inflight)
    f->max_inflight = f->n;
}

static int fake_get(void *d, uint32_t slot, const char *key, size_t klen) {
  fake *f = d;
  f->gets++;
  fake_queue(f, slot, true, key, klen);
  return 0;
}

static int fake_put(void *d, uint32_t slot, const char *key, size_t klen,
                    const void *val, size_t vlen, const void *ctx,
                    size_t ctx_len) {
  fake *f = d;
  f->puts++;
  if (ctx) {
    char want[64];
    snprintf(want, sizeof want, FAKE_CTX "%.*s", (int)klen, key);
    f->puts_with_ctx++;
    if (ctx_len == strlen(want) && !memcmp(ctx, want, ctx_len))
      f->puts_with_good_ctx++;
  }
  fake_queue(f, slot, false, key, klen);
  return 0;
}

static int fake_poll(void *d, int64_t timeout_us) {
  fake *f = d;
  size_t n = f->n;
  f->n = 0;
  for (size_t i = 0; i < n; i++) {
    char ctx[64];
    snprintf(ctx, sizeof ctx, FAKE_CTX "%s", f->q[i].key);
    f->seen++;
    if (f->fail_every && f->seen % (uint64_t)f->fail_every == 0)
      f->done(f->arg, f->q[i].slot, KV_EQUORUM, NULL, false, NULL, 0);
    else
      f->done(f->arg, f->q[i].slot, 0, NULL, true, ctx, strlen(ctx));
  }
  return (int)n;
}

static void fake_close(void *d) {}

/* The fake server spends 10 us of CPU per request it answers. */
static int fake_server_cpu_us(void *d, uint64_t *us) {
  (void)d;
  *us = the_fake.seen * 10;
  return 0;
}

static const bench_driver fake_drv = {"fake",    fake_open,  fake_get,
                                      fake_put,  fake_poll,  fake_close,
                                      fake_server_cpu_us};

static void fake_opts(bench_opts *o, const char *workload) {
  char err[128];
  char *argv[] = {"kvorum-bench", "--protocol", "resp", "--hosts",
                  "127.0.0.1:9", "--keys", "100", "--concurrency", "16",
                  "--connections", "1", "--ops", "5000", "--seed", "3", NULL};
  bench_opts_parse(15, argv, o, stderr, err, sizeof err);
  gen_mix_parse(workload, &o->mix);
  o->quiet = true;
}

static void test_runner(void) {
  static bench_opts o;
  bench_stats load, run;
  char err[256] = "";
  /* Workload F with --load: rmw writes carry the context of their read. */
  fake_opts(&o, "f");
  o.load = true;
  memset(&the_fake, 0, sizeof the_fake);
  bench_stats_init(&load, "load");
  bench_stats_init(&run, "run");
  int rc = bench_run(&o, &fake_drv, &load, &run, err, sizeof err);
  CHECK(rc == 0, "run: %s", err);
  CHECK(load.ops == 100 && load.op[GEN_OP_INSERT]->total == 100,
        "load wrote every key once (%llu)", (unsigned long long)load.ops);
  CHECK(run.ops == 5000, "run did --ops (%llu)", (unsigned long long)run.ops);
  uint64_t rmw = run.op[GEN_OP_RMW]->total;
  uint64_t reads = run.op[GEN_OP_READ]->total;
  CHECK(rmw > 2000 && rmw < 3000, "rmw share %llu", (unsigned long long)rmw);
  CHECK(reads == run.ops, "reads include rmw reads: %llu",
        (unsigned long long)reads);
  CHECK(the_fake.puts_with_ctx == rmw && the_fake.puts_with_good_ctx == rmw,
        "%llu of %llu rmw writes carried their read's context",
        (unsigned long long)the_fake.puts_with_good_ctx,
        (unsigned long long)rmw);
  CHECK(the_fake.max_inflight <= 16, "concurrency bound");
  CHECK(run.errors == 0 && run.nseries >= 1, "no errors, a series");
  bench_stats_free(&load);
  bench_stats_free(&run);

  /* Errors are counted by kind, not as latencies. */
  fake_opts(&o, "a");
  memset(&the_fake, 0, sizeof the_fake);
  the_fake.fail_every = 10;
  bench_stats_init(&run, "run");
  rc = bench_run(&o, &fake_drv, NULL, &run, err, sizeof err);
  CHECK(rc == 0, "run with errors: %s", err);
  CHECK(run.errors == 500 && run.ops == 4500 && run.nkinds == 1 &&
            !strcmp(run.kinds[0].name, "EQUORUM") &&
            run.kinds[0].count == 500,
        "errors %llu ops %llu", (unsigned long long)run.errors,
        (unsigned long long)run.ops);
  /* Updates carry the last context seen for their key, and only that. */
  CHECK(the_fake.puts_with_ctx > 0 &&
            the_fake.puts_with_good_ctx == the_fake.puts_with_ctx,
        "%llu of %llu update contexts belonged to their key",
        (unsigned long long)the_fake.puts_with_good_ctx,
        (unsigned long long)the_fake.puts_with_ctx);
  /* The reports carry the figures. */
  char *js = NULL, *html = NULL;
  size_t jl = 0, hl = 0;
  FILE *f = open_memstream(&js, &jl);
  CHECK(bench_report_json(f, &o, NULL, &run) == 0, "json");
  fclose(f);
  CHECK(js && strstr(js, "\"throughput_ops_s\"") &&
            strstr(js, "\"errors\": 500") && strstr(js, "\"p999_us\"") &&
            strstr(js, "\"EQUORUM\": 500") && strstr(js, "\"series\"") &&
            strstr(js, "\"bench_cpu\": {\"user_s\": "),
        "json fields");
  /* Server CPU over the phase: 5000 answers of 10 us, over 4500 good ops. */
  CHECK(run.server_cpu_s > 0.0499 && run.server_cpu_s < 0.0501,
        "server cpu %.4f s", run.server_cpu_s);
  CHECK(strstr(js, "\"server_cpu\": {\"s\": 0.050, \"us_per_op\": 11.11}"),
        "server cpu in json");
  f = open_memstream(&html, &hl);
  CHECK(bench_report_html(f, &o, NULL, &run) == 0, "html");
  fclose(f);
  CHECK(html && strstr(html, "<svg") && strstr(html, "polyline") &&
            !strstr(html, "<script") && !strstr(html, "http://www.w3.org/2000/svg\" src"),
        "html has inline svg, no scripts");
  free(js);
  free(html);
  bench_stats_free(&run);

  /* Open loop: --rate paces the requests. */
  fake_opts(&o, "c");
  o.ops = 0;
  o.duration_s = 0.5;
  o.rate = 2000;
  memset(&the_fake, 0, sizeof the_fake);
  bench_stats_init(&run, "run");
  rc = bench_run(&o, &fake_drv, NULL, &run, err, sizeof err);
  CHECK(rc == 0, "open loop: %s", err);
  CHECK(run.ops >= 950 && run.ops <= 1010, "2000/s for 0.5 s made %llu ops",
        (unsigned long long)run.ops);
  bench_stats_free(&run);
}

/* The binary exits 2 on bad flags and says why. */
static void test_binary(const char *bin) {
  static const char *const bad[] = {"--keys abc", "--workload z",
                                    "--protocol http", "--nope",
                                    "--ops 1 --duration 1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char cmd[512], out[512] = "";
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", bin, bad[i]);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL, "popen");
    if (!p)
      continue;
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2, "'%s' exit status %d",
          bad[i], WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    CHECK(strstr(out, "kvorum-bench: ") != NULL, "'%s' said '%s'", bad[i],
          out);
  }
  char cmd[512];
  snprintf(cmd, sizeof cmd, "'%s' --help >/dev/null 2>&1", bin);
  int st = system(cmd);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "--help exits 0");
}

int main(int argc, char **argv) {
  test_hdr_accuracy();
  test_zipf();
  test_keys();
  test_mix();
  test_resp();
  test_opts();
  test_runner();
  if (argc > 1)
    test_binary(argv[1]);
  return check_summary(NULL);
}
