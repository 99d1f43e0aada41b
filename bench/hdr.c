/*
 * hdr.c: the log-linear latency histogram of hdr.h.
 *
 * Layout (as HdrHistogram's): bucket 0 holds values 0..2047 one by one;
 * bucket b >= 1 holds values 1024<<b .. (2048<<b)-1 in 1024 sub-buckets of
 * width 1<<b. Depends on nothing but libc.
 */
#include "hdr.h"

#include <math.h>
#include <string.h>

void hdr_reset(hdr_hist *h) {
  memset(h, 0, sizeof *h);
  h->min_us = UINT64_MAX;
}

size_t hdr__index(uint64_t v) {
  const uint64_t mask = HDR_SUB_BUCKET_COUNT - 1;
  int pow2ceil = 64 - __builtin_clzll(v | mask);
  int bucket = pow2ceil - HDR_SUB_BUCKET_MAGNITUDE;
  size_t sub = (size_t)(v >> bucket);
  /* Bucket 0 uses all 2048 sub-buckets; later ones only the upper half. */
  return ((size_t)bucket << (HDR_SUB_BUCKET_MAGNITUDE - 1)) + sub;
}

uint64_t hdr__lowest(size_t idx) {
  size_t half = HDR_SUB_BUCKET_HALF;
  if (idx < HDR_SUB_BUCKET_COUNT)
    return idx;
  size_t bucket = idx / half - 1;
  uint64_t sub = idx % half + half;
  return sub << bucket;
}

uint64_t hdr__highest(size_t idx) {
  size_t half = HDR_SUB_BUCKET_HALF;
  if (idx < HDR_SUB_BUCKET_COUNT)
    return idx;
  size_t bucket = idx / half - 1;
  return hdr__lowest(idx) + ((uint64_t)1 << bucket) - 1;
}

void hdr_record(hdr_hist *h, uint64_t v) {
  if (v > HDR_MAX_US) {
    v = HDR_MAX_US;
    h->overflows++;
  }
  h->counts[hdr__index(v)]++;
  h->total++;
  h->sum_us += (double)v;
  if (v < h->min_us)
    h->min_us = v;
  if (v > h->max_us)
    h->max_us = v;
}

void hdr_add(hdr_hist *dst, const hdr_hist *src) {
  if (src->total == 0)
    return;
  for (size_t i = 0; i < HDR_COUNTS_LEN; i++)
    dst->counts[i] += src->counts[i];
  dst->total += src->total;
  dst->overflows += src->overflows;
  dst->sum_us += src->sum_us;
  if (src->min_us < dst->min_us)
    dst->min_us = src->min_us;
  if (src->max_us > dst->max_us)
    dst->max_us = src->max_us;
}

uint64_t hdr_percentile(const hdr_hist *h, double p) {
  if (h->total == 0)
    return 0;
  if (p < 0)
    p = 0;
  if (p > 100)
    p = 100;
  uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->total);
  if (rank < 1)
    rank = 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < HDR_COUNTS_LEN; i++) {
    seen += h->counts[i];
    if (seen >= rank) {
      uint64_t v = hdr__highest(i);
      return v > h->max_us ? h->max_us : v;
    }
  }
  return h->max_us;
}

double hdr_mean(const hdr_hist *h) {
  return h->total ? h->sum_us / (double)h->total : 0.0;
}
