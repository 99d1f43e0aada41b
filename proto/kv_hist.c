/*
 * kv_hist.c: fixed-bucket histograms (kv_hist.h) and kvorum's bounds.
 */
#include "kv_hist.h"

#include <assert.h>

#define KV_HIST__LEN(a) ((uint32_t)(sizeof(a) / sizeof((a)[0])))

static const uint64_t kv_hist__latency_us_le[] = {
    100,   250,    500,    1000,   2500,    5000,    10000,   25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};
static const uint64_t kv_hist__count_le[] = {1, 2, 3, 4, 5, 10, 20, 50, 100};
static const uint64_t kv_hist__bytes_le[] = {64,        256,      1 << 10,
                                             4 << 10,   16 << 10, 64 << 10,
                                             256 << 10, 1 << 20,  4 << 20};
static const uint64_t kv_hist__lag_us_le[] = {1000,    5000,   10000,  25000,
                                              50000,   100000, 250000, 500000,
                                              1000000, 5000000};

/* Defines kv_hist_<name> over the array kv_hist__<name>_le, which must
 * leave a bucket for +Inf. */
#define KV_HIST__BOUNDS(name, scale_)                                          \
  _Static_assert(KV_HIST__LEN(kv_hist__##name##_le) < KV_HIST_BUCKETS_MAX,     \
                 #name " bounds leave no bucket for +Inf");                    \
  const kv_hist_bounds kv_hist_##name = {kv_hist__##name##_le,                 \
                                         KV_HIST__LEN(kv_hist__##name##_le),   \
                                         scale_}

KV_HIST__BOUNDS(latency_us, 1e-6);
KV_HIST__BOUNDS(count, 1);
KV_HIST__BOUNDS(bytes, 1);
KV_HIST__BOUNDS(lag_us, 1e-6);

void kv_hist_add(kv_hist *h, const kv_hist_bounds *b, uint64_t v) {
  assert(b->n < KV_HIST_BUCKETS_MAX);
  /* The first bound >= v; b->n when there is none. */
  uint32_t lo = 0, hi = b->n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (b->le[mid] < v)
      lo = mid + 1;
    else
      hi = mid;
  }
  h->buckets[lo]++;
  h->count++;
  h->sum += v;
}

bool kv_hist_bounds_check(const kv_hist_bounds *b) {
  if (b->n >= KV_HIST_BUCKETS_MAX || !(b->scale > 0))
    return false;
  for (uint32_t i = 1; i < b->n; i++)
    if (b->le[i - 1] >= b->le[i])
      return false;
  return true;
}
