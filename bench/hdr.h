/*
 * hdr.h: a small log-linear latency histogram in the style of HdrHistogram.
 *
 * Values are microseconds from 0 to HDR_MAX_US (60 s) kept with 3
 * significant digits: every recorded value lands in a bucket whose width is
 * at most 1/1024 of its lower bound, so any percentile read back is within
 * 0.1% of the exact one. Recording is O(1) and never allocates. Values above
 * the range are clamped to HDR_MAX_US and counted as overflows.
 * Depends on nothing but libc.
 */
#ifndef BENCH_HDR_H
#define BENCH_HDR_H

#include <stddef.h>
#include <stdint.h>

#define HDR_MAX_US 60000000ULL      /* highest trackable value: 60 s */
#define HDR_SUB_BUCKET_MAGNITUDE 11 /* 2048 sub-buckets: 3 digits */
#define HDR_SUB_BUCKET_COUNT (1u << HDR_SUB_BUCKET_MAGNITUDE)
#define HDR_SUB_BUCKET_HALF (HDR_SUB_BUCKET_COUNT / 2)
#define HDR_BUCKET_COUNT 16 /* 2048 << 15 > HDR_MAX_US */
#define HDR_COUNTS_LEN ((HDR_BUCKET_COUNT + 1) * HDR_SUB_BUCKET_HALF)

typedef struct hdr_hist {
  uint64_t total;
  uint64_t overflows; /* values above HDR_MAX_US, recorded as HDR_MAX_US */
  uint64_t min_us, max_us;
  double sum_us;
  uint64_t counts[HDR_COUNTS_LEN];
} hdr_hist;

/* Empties h (h is caller-allocated; about 140 KB, so not on the stack). */
void hdr_reset(hdr_hist *h);
/* Records one value in microseconds. */
void hdr_record(hdr_hist *h, uint64_t value_us);
/* Adds every count of src into dst. */
void hdr_add(hdr_hist *dst, const hdr_hist *src);
/* Returns the value at percentile p (0..100): the highest value equivalent
 * to the bucket holding the sample of rank ceil(p/100 * total), never above
 * the largest value recorded. Returns 0 for an empty histogram. */
uint64_t hdr_percentile(const hdr_hist *h, double p);
/* Returns the mean in microseconds (0 when empty). */
double hdr_mean(const hdr_hist *h);

/* Index of the bucket holding v, and the lowest and highest values that
 * share that bucket; exposed for the tests. */
size_t hdr__index(uint64_t v);
uint64_t hdr__lowest(size_t idx);
uint64_t hdr__highest(size_t idx);

#endif
