/*
 * fsync_ref.c: the reference for durable-write throughput: a loop doing
 * one fsynced RocksDB write at a time (sync=1), for SECONDS seconds, with
 * values of BYTES bytes. Prints the writes per second (an integer).
 *
 *   kvorum-fsync-ref DIR SECONDS BYTES
 *
 * Depends on: RocksDB's C API only.
 */
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REF_VALUE_MAX 65536

static double ref_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: kvorum-fsync-ref DIR SECONDS BYTES\n");
    return 2;
  }
  double secs = atof(argv[2]);
  long bytes = atol(argv[3]);
  if (secs <= 0 || bytes < 0 || bytes > REF_VALUE_MAX) {
    fprintf(stderr, "kvorum-fsync-ref: bad SECONDS or BYTES\n");
    return 2;
  }
  rocksdb_options_t *o = rocksdb_options_create();
  rocksdb_options_set_create_if_missing(o, 1);
  char *err = NULL;
  rocksdb_t *db = rocksdb_open(o, argv[1], &err);
  if (err) {
    fprintf(stderr, "kvorum-fsync-ref: %s\n", err);
    return 1;
  }
  rocksdb_writeoptions_t *w = rocksdb_writeoptions_create();
  rocksdb_writeoptions_set_sync(w, 1);
  static char val[REF_VALUE_MAX];
  memset(val, 'x', sizeof(val));
  long n = 0;
  double t0 = ref_now(), t = t0;
  while (t - t0 < secs) {
    char key[32];
    int kl = snprintf(key, sizeof(key), "user%ld", n % 100000);
    rocksdb_put(db, w, key, (size_t)kl, val, (size_t)bytes, &err);
    if (err) {
      fprintf(stderr, "kvorum-fsync-ref: %s\n", err);
      return 1;
    }
    n++;
    t = ref_now();
  }
  printf("%ld\n", (long)((double)n / (t - t0)));
  rocksdb_writeoptions_destroy(w);
  rocksdb_close(db);
  rocksdb_options_destroy(o);
  return 0;
}
