/*
 * test_prom.c: unit tests of the metrics writers: fixed-bucket histograms
 * (proto/kv_hist.h) and the Prometheus text format (proto/prom.h). Bucket
 * placement at every edge of kvorum's bounds, the writers' exact bytes
 * (cumulative buckets, le and value formatting, label and HELP escaping),
 * prom_label running out of room, and a small family set checked with
 * `promtool check metrics` when /usr/bin/promtool is installed (Debian's
 * prometheus package; without it that part is skipped with a note).
 * Depends on: kvproto.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kv_hist.h"
#include "mp.h"
#include "prom.h"
#include "unit/check.h"

#define PROMTOOL "/usr/bin/promtool"
#define LABELS_MAX 128 /* bytes of a label list in these tests */
#define LES_MAX 256    /* bytes of the le values of one histogram, joined */

/* Whether b holds exactly want; prints both when not. Empties b. */
static int out_is(kvbuf *b, const char *want) {
  size_t n = strlen(want);
  int same = !b->oom && b->len == n && memcmp(b->data, want, n) == 0;
  if (!same)
    fprintf(stderr, "got:\n%.*s\nwant:\n%s\n", (int)b->len,
            b->len ? (const char *)b->data : "", want);
  b->len = 0;
  return same;
}

/* Whether b holds want somewhere. */
static int out_has(const kvbuf *b, const char *want) {
  return !b->oom && memmem(b->data, b->len, want, strlen(want)) != NULL;
}

/* Whether the le values in b, in order and joined by spaces, are want;
 * prints them when not. */
static int les_are(const kvbuf *b, const char *want) {
  char got[LES_MAX];
  size_t n = 0;
  const char *p = (const char *)b->data, *end = p + b->len;
  while (p && (p = memmem(p, (size_t)(end - p), "le=\"", 4))) {
    p += 4;
    const char *q = memchr(p, '"', (size_t)(end - p));
    if (!q || n + (size_t)(q - p) + 2 > sizeof(got))
      break;
    if (n)
      got[n++] = ' ';
    memcpy(got + n, p, (size_t)(q - p));
    n += (size_t)(q - p);
    p = q;
  }
  got[n] = '\0';
  int same = strcmp(got, want) == 0;
  if (!same)
    fprintf(stderr, "le values: %s\nwant:      %s\n", got, want);
  return same;
}

/* kvorum's bounds are well formed, and each value lands where the format
 * says: v == le[i] in bucket i, le[i] + 1 in bucket i + 1, past the last
 * bound in +Inf. */
static void test_hist_edges(void) {
  const kv_hist_bounds *all[] = {&kv_hist_latency_us, &kv_hist_count,
                                 &kv_hist_bytes, &kv_hist_lag_us};
  CHECK(kv_hist_latency_us.n == 16 && kv_hist_count.n == 9 &&
        kv_hist_bytes.n == 9 && kv_hist_lag_us.n == 10);
  CHECK(kv_hist_bytes.le[2] == 1024 && kv_hist_bytes.le[8] == 4194304);
  for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); k++) {
    const kv_hist_bounds *b = all[k];
    CHECK(kv_hist_bounds_check(b));
    for (uint32_t i = 0; i < b->n; i++) {
      kv_hist h = {0};
      kv_hist_add(&h, b, b->le[i]);
      CHECK(h.buckets[i] == 1);
      kv_hist_add(&h, b, b->le[i] + 1);
      CHECK(h.buckets[i + 1] == 1);
      kv_hist_add(&h, b, b->le[i] - 1);
      CHECK(h.buckets[i] == (i == 0 || b->le[i - 1] < b->le[i] - 1 ? 2 : 1));
      CHECK(h.count == 3 && h.sum == 3 * b->le[i]);
    }
    kv_hist h = {0};
    kv_hist_add(&h, b, 0);
    kv_hist_add(&h, b, UINT64_MAX);
    CHECK(h.buckets[0] == 1 && h.buckets[b->n] == 1 && h.count == 2);
  }
  uint64_t le[] = {1, 1};
  kv_hist_bounds bad = {le, 2, 1};
  CHECK(!kv_hist_bounds_check(&bad));
  bad.n = KV_HIST_BUCKETS_MAX;
  CHECK(!kv_hist_bounds_check(&bad));
}

/* prom_hist writes cumulative buckets, +Inf, _sum and _count, with and
 * without labels. */
static void test_hist_output(void) {
  static const uint64_t le[] = {1, 2, 5};
  const kv_hist_bounds b = {le, 3, 1};
  kv_hist h = {0};
  uint64_t samples[] = {0, 1, 2, 3, 5, 6, 100};
  for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
    kv_hist_add(&h, &b, samples[i]);
  CHECK(h.buckets[0] == 2 && h.buckets[1] == 1 && h.buckets[2] == 2 &&
        h.buckets[3] == 2);
  kvbuf out;
  kvbuf_init(&out);
  prom_hist(&out, "x", NULL, &h, &b);
  CHECK(out_is(&out, "x_bucket{le=\"1\"} 2\n"
                     "x_bucket{le=\"2\"} 3\n"
                     "x_bucket{le=\"5\"} 5\n"
                     "x_bucket{le=\"+Inf\"} 7\n"
                     "x_sum 117\n"
                     "x_count 7\n"));
  prom_hist(&out, "x", "op=\"get\"", &h, &b);
  CHECK(out_has(&out, "x_bucket{op=\"get\",le=\"1\"} 2\n"));
  CHECK(out_has(&out, "x_bucket{op=\"get\",le=\"+Inf\"} 7\n"
                      "x_sum{op=\"get\"} 117\n"
                      "x_count{op=\"get\"} 7\n"));
  out.len = 0;
  /* Microseconds shown as seconds: every le in its shortest exact form. */
  kv_hist lat = {0};
  kv_hist_add(&lat, &kv_hist_latency_us, 1500);
  kv_hist_add(&lat, &kv_hist_latency_us, 100);
  prom_hist(&out, "t", "", &lat, &kv_hist_latency_us);
  CHECK(les_are(&out, "0.0001 0.00025 0.0005 0.001 0.0025 0.005 0.01 0.025 "
                      "0.05 0.1 0.25 0.5 1 2.5 5 10 +Inf"));
  CHECK(out_has(&out, "t_bucket{le=\"0.001\"} 1\nt_bucket{le=\"0.0025\"} 2\n"));
  CHECK(out_has(&out, "t_bucket{le=\"+Inf\"} 2\nt_sum 0.0016\nt_count 2\n"));
  out.len = 0;
  kv_hist empty = {0};
  prom_hist(&out, "s", NULL, &empty, &kv_hist_bytes);
  CHECK(les_are(&out, "64 256 1024 4096 16384 65536 262144 1048576 4194304 "
                      "+Inf"));
  CHECK(out_has(&out, "s_bucket{le=\"+Inf\"} 0\ns_sum 0\ns_count 0\n"));
  kvbuf_free(&out);
}

/* Sample values: integers whole, doubles shortest, NaN and infinities as
 * the format spells them. */
static void test_values(void) {
  kvbuf out;
  kvbuf_init(&out);
  prom_u64(&out, "a", NULL, 0);
  prom_u64(&out, "a", "", UINT64_MAX);
  CHECK(out_is(&out, "a 0\na 18446744073709551615\n"));
  prom_f64(&out, "f", NULL, NAN);
  prom_f64(&out, "f", NULL, INFINITY);
  prom_f64(&out, "f", NULL, -INFINITY);
  CHECK(out_is(&out, "f NaN\nf +Inf\nf -Inf\n"));
  prom_f64(&out, "f", NULL, 0.1);
  prom_f64(&out, "f", NULL, 2.5);
  prom_f64(&out, "f", NULL, 100);
  prom_f64(&out, "f", NULL, 1e300);
  prom_f64(&out, "f", NULL, -0.25);
  prom_f64(&out, "f", NULL, 1.0 / 3);
  prom_f64(&out, "f", NULL, 0.1 + 0.2);
  CHECK(out_is(&out, "f 0.1\nf 2.5\nf 100\nf 1e+300\nf -0.25\n"
                     "f 0.3333333333333333\nf 0.30000000000000004\n"));
  /* No exponent below 1e17 (as %.17g), nor down to 1e-4 (as %g). */
  prom_f64(&out, "f", NULL, 10);
  prom_f64(&out, "f", NULL, 150000);
  prom_f64(&out, "f", NULL, -1e16);
  prom_f64(&out, "f", NULL, 1e17);
  prom_f64(&out, "f", NULL, 0.0001);
  prom_f64(&out, "f", NULL, 0.00001);
  CHECK(out_is(&out, "f 10\nf 150000\nf -10000000000000000\nf 1e+17\n"
                     "f 0.0001\nf 1e-05\n"));
  kvbuf_free(&out);
}

/* Label values escape backslash, double quote and newline; HELP escapes
 * backslash and newline only. */
static void test_escaping(void) {
  char labels[LABELS_MAX] = "";
  CHECK(prom_label(labels, sizeof(labels), "op", "get") == 0);
  CHECK(strcmp(labels, "op=\"get\"") == 0);
  CHECK(prom_label(labels, sizeof(labels), "k", "a\"b\\c\nd") == 0);
  CHECK(strcmp(labels, "op=\"get\",k=\"a\\\"b\\\\c\\nd\"") == 0);
  char empty[8] = "";
  CHECK(prom_label(empty, sizeof(empty), "e", NULL) == 0);
  CHECK(strcmp(empty, "e=\"\"") == 0);

  kvbuf out;
  kvbuf_init(&out);
  prom_u64(&out, "m", labels, 1);
  CHECK(out_is(&out, "m{op=\"get\",k=\"a\\\"b\\\\c\\nd\"} 1\n"));
  prom_family(&out, "m_total", "counter", "Line one\nback\\slash \"q\"");
  CHECK(out_is(&out, "# HELP m_total Line one\\nback\\\\slash \"q\"\n"
                     "# TYPE m_total counter\n"));
  prom_family(&out, "g", "gauge", NULL);
  CHECK(out_is(&out, "# HELP g \n# TYPE g gauge\n"));
  kvbuf_free(&out);
}

/* prom_label fails whole, leaving buf unchanged, when the escaped pair, its
 * comma or the NUL would not fit; a pair that just fits is written. */
static void test_label_overflow(void) {
  const char *want = "a=\"1\",b=\"x\\\"\""; /* 13 bytes */
  for (size_t cap = 1; cap <= 16; cap++) {
    char buf[16];
    memset(buf, '#', sizeof(buf));
    buf[0] = '\0';
    int first = prom_label(buf, cap, "a", "1"); /* needs 6 bytes */
    CHECK(first == (cap >= 6 ? 0 : -1));
    if (first) {
      CHECK(buf[0] == '\0');
      continue;
    }
    int second = prom_label(buf, cap, "b", "x\""); /* 8 more */
    CHECK(second == (cap >= 14 ? 0 : -1));
    CHECK(strcmp(buf, second ? "a=\"1\"" : want) == 0);
  }
  /* A buf that is already full (no NUL within cap) is refused. */
  char full[4] = {'x', 'x', 'x', 'x'};
  CHECK(prom_label(full, sizeof(full), "a", "") == -1);
  CHECK(memcmp(full, "xxxx", 4) == 0);
}

/* Writes len bytes at p to a temporary file and runs promtool check
 * metrics on it. Returns promtool's exit status, or -1 when it could not
 * be run. */
static int promtool_check(const void *p, size_t len) {
  char path[] = "/tmp/test_prom.XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0)
    return -1;
  FILE *f = fdopen(fd, "w");
  int written = f && fwrite(p, 1, len, f) == len;
  if (f ? fclose(f) != 0 : close(fd) != 0)
    written = 0;
  int status = -1;
  if (written) {
    char cmd[64];
    snprintf(cmd, sizeof(cmd), PROMTOOL " check metrics < %s", path);
    int rc = system(cmd);
    if (rc != -1 && WIFEXITED(rc))
      status = WEXITSTATUS(rc);
  }
  unlink(path);
  return status;
}

/* The families a kvorum node might expose, written with every writer. */
static void write_families(kvbuf *out) {
  char get[LABELS_MAX] = "", put[LABELS_MAX] = "", odd[LABELS_MAX] = "";
  prom_label(get, sizeof(get), "op", "get");
  prom_label(put, sizeof(put), "op", "put");
  prom_label(odd, sizeof(odd), "op", "a\"b\\c\nd");

  prom_family(out, "kvorum_requests_total", "counter",
              "Requests served, by operation.\nEscapes: \\ and \"quotes\".");
  prom_u64(out, "kvorum_requests_total", get, 42);
  prom_u64(out, "kvorum_requests_total", put, 7);
  prom_u64(out, "kvorum_requests_total", odd, 1);

  kv_hist get_lat = {0}, put_lat = {0};
  uint64_t lat_us[] = {80, 100, 101, 999, 1000, 30000, 20000000};
  for (size_t i = 0; i < sizeof(lat_us) / sizeof(lat_us[0]); i++)
    kv_hist_add(&get_lat, &kv_hist_latency_us, lat_us[i]);
  prom_family(out, "kvorum_request_duration_seconds", "histogram",
              "Time from request to reply.");
  prom_hist(out, "kvorum_request_duration_seconds", get, &get_lat,
            &kv_hist_latency_us);
  prom_hist(out, "kvorum_request_duration_seconds", put, &put_lat,
            &kv_hist_latency_us);

  kv_hist siblings = {0}, sizes = {0}, lag = {0};
  kv_hist_add(&siblings, &kv_hist_count, 1);
  kv_hist_add(&siblings, &kv_hist_count, 3);
  kv_hist_add(&sizes, &kv_hist_bytes, 4096);
  kv_hist_add(&lag, &kv_hist_lag_us, 1200);
  prom_family(out, "kvorum_read_siblings", "histogram", "Siblings per read.");
  prom_hist(out, "kvorum_read_siblings", NULL, &siblings, &kv_hist_count);
  prom_family(out, "kvorum_object_size_bytes", "histogram",
              "Sizes of the objects written.");
  prom_hist(out, "kvorum_object_size_bytes", NULL, &sizes, &kv_hist_bytes);
  prom_family(out, "kvorum_loop_lag_seconds", "histogram", "Event loop lag.");
  prom_hist(out, "kvorum_loop_lag_seconds", NULL, &lag, &kv_hist_lag_us);

  prom_family(out, "kvorum_ring_load_ratio", "gauge",
              "Partitions owned over the fair share.");
  const char *cases[] = {"nan", "pinf", "ninf", "third"};
  double values[] = {NAN, INFINITY, -INFINITY, 1.0 / 3};
  for (size_t i = 0; i < 4; i++) {
    char l[LABELS_MAX] = "";
    prom_label(l, sizeof(l), "case", cases[i]);
    prom_f64(out, "kvorum_ring_load_ratio", l, values[i]);
  }
}

/* promtool accepts what the writers produce, and rejects a broken line (so
 * that its acceptance means something). */
static void test_promtool(void) {
  kvbuf out;
  kvbuf_init(&out);
  write_families(&out);
  CHECK(!out.oom);
  if (access(PROMTOOL, X_OK) != 0) {
    printf("note: " PROMTOOL " not found; skipping promtool check metrics "
           "(apt-get install prometheus)\n");
    kvbuf_free(&out);
    return;
  }
  printf("promtool check metrics on %zu bytes:\n", out.len);
  fflush(stdout);
  CHECK(promtool_check(out.data, out.len) == 0);
  const char broken[] = "kvorum_broken{op=\"get\" 1\n";
  printf("promtool check metrics on a broken line (should fail):\n");
  fflush(stdout);
  CHECK(promtool_check(broken, sizeof(broken) - 1) > 0);
  kvbuf_free(&out);
}

int main(void) {
  test_hist_edges();
  test_hist_output();
  test_values();
  test_escaping();
  test_label_overflow();
  test_promtool();
  return check_summary("test_prom");
}
