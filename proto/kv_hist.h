/*
 * kv_hist.h: fixed-bucket histograms for values counted in a hot path
 * (request latencies, siblings per read, object sizes, event loop lag),
 * shaped for the Prometheus histogram type that prom.h writes.
 *
 * A histogram is a plain struct the caller owns; zero it to start. The
 * bucket bounds live apart from it, in a kv_hist_bounds shared by every
 * histogram of one kind, so adding a sample touches one bucket and two
 * counters and never allocates. Nothing here is atomic: a histogram has one
 * owner, the thread (event loop) that adds to it and writes it out.
 *
 * Depends on: <stdint.h>, <stdbool.h>.
 */
#ifndef KV_HIST_H
#define KV_HIST_H

#include <stdbool.h>
#include <stdint.h>

/* Buckets a histogram holds, the +Inf one included. */
#define KV_HIST_BUCKETS_MAX 24

typedef struct kv_hist_bounds {
  const uint64_t *le; /* upper bounds, ascending, in the sample unit */
  uint32_t n; /* number of bounds (< KV_HIST_BUCKETS_MAX); +Inf is implicit */
  /* Exposition unit per sample unit (1e-6: microseconds shown as seconds). */
  double scale;
} kv_hist_bounds;

typedef struct kv_hist {
  /* NOT cumulative: buckets[i] counts the samples <= le[i] and > le[i-1];
   * buckets[n] is +Inf. */
  uint64_t buckets[KV_HIST_BUCKETS_MAX];
  uint64_t count;
  uint64_t sum; /* in the sample unit */
} kv_hist;

/* Counts v (in b's sample unit) in h: in the first bucket whose bound is
 * >= v (v == le[i] goes in bucket i), or in buckets[b->n] when v is above
 * every bound. h must have been used with b only. Costs a binary search
 * over b's bounds. */
void kv_hist_add(kv_hist *h, const kv_hist_bounds *b, uint64_t v);

/* Returns whether b is well formed: n < KV_HIST_BUCKETS_MAX, bounds
 * strictly ascending, scale > 0. For assert(). */
bool kv_hist_bounds_check(const kv_hist_bounds *b);

/* The bounds kvorum uses. */
/* 100us,250us,500us,1ms,2.5ms,5ms,10ms,25ms,50ms,100ms,250ms,500ms,1s,2.5s,
 * 5s,10s; scale 1e-6 (request latency in microseconds, shown in seconds). */
extern const kv_hist_bounds kv_hist_latency_us;
/* 1,2,3,4,5,10,20,50,100; scale 1 (siblings per read). */
extern const kv_hist_bounds kv_hist_count;
/* 64,256,1K,4K,16K,64K,256K,1M,4M (K = 1024); scale 1 (object sizes). */
extern const kv_hist_bounds kv_hist_bytes;
/* 1ms,5ms,10ms,25ms,50ms,100ms,250ms,500ms,1s,5s; scale 1e-6 (event loop
 * lag in microseconds, shown in seconds). */
extern const kv_hist_bounds kv_hist_lag_us;

#endif
