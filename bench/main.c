/*
 * main.c: kvorum-bench, the load generator of kvorum. Parses the flags,
 * picks the driver, runs, and writes the reports. Exit status: 0 when the
 * run completed (errors are counted in the reports, not in the status), 1
 * when it could not run or a report could not be written, 2 for bad flags.
 * Depends on bench.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "kv_err.h"

#define BENCH_ERR_LEN 512
#define BENCH_EXIT_FAIL 1
#define BENCH_EXIT_USAGE 2

/* Writes one report to path with fn; returns 0 or prints why and -1. */
static int bench__write(const char *path, const char *what,
                        int (*fn)(FILE *, const bench_opts *,
                                  const bench_stats *, const bench_stats *),
                        const bench_opts *o, const bench_stats *load,
                        const bench_stats *run) {
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "kvorum-bench: cannot write the %s to %s: %s\n", what,
            path, strerror(errno));
    return -1;
  }
  int rc = fn(f, o, load, run);
  if (fclose(f) != 0 || rc < 0) {
    fprintf(stderr, "kvorum-bench: writing the %s to %s failed\n", what,
            path);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  static bench_opts o; /* large: keep it off the stack */
  char err[BENCH_ERR_LEN] = "";
  int rc = bench_opts_parse(argc, argv, &o, stdout, err, sizeof err);
  if (rc == 1)
    return 0;
  if (rc < 0) {
    fprintf(stderr, "kvorum-bench: %s\n", err);
    return BENCH_EXIT_USAGE;
  }
  const bench_driver *drv = &bench_drv_resp;
  if (o.proto == BENCH_NATIVE) {
#ifdef BENCH_HAVE_NATIVE
    drv = &bench_drv_native;
#else
    fprintf(stderr, "kvorum-bench: --protocol native: this build has no "
                    "libkvorum; use --protocol resp\n");
    return BENCH_EXIT_USAGE;
#endif
  }
  bench_stats load, run;
  memset(&load, 0, sizeof load);
  if (bench_stats_init(&run, "run") < 0 ||
      (o.load && bench_stats_init(&load, "load") < 0)) {
    fprintf(stderr, "kvorum-bench: out of memory\n");
    bench_stats_free(&run);
    return BENCH_EXIT_FAIL;
  }
  int status = 0;
  rc = bench_run(&o, drv, &load, &run, err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "kvorum-bench: %s\n", err[0] ? err : kv_strerror(rc));
    status = BENCH_EXIT_FAIL;
  }
  /* A run cut short still reports what it measured, unless it never ran. */
  if (rc != KV_ECONN) {
    const bench_stats *lp = o.load ? &load : NULL;
    bench_report_text(stdout, &o, lp, &run);
    fflush(stdout);
    if (o.json_path && bench__write(o.json_path, "JSON", bench_report_json,
                                    &o, lp, &run) < 0)
      status = BENCH_EXIT_FAIL;
    if (o.report_path && bench__write(o.report_path, "HTML report",
                                      bench_report_html, &o, lp, &run) < 0)
      status = BENCH_EXIT_FAIL;
  }
  bench_stats_free(&load);
  bench_stats_free(&run);
  return status;
}
