/*
 * gen.h: the random parts of a workload: a seeded PRNG, the key choosers
 * (uniform, YCSB's scrambled zipfian, latest) and the operation mix.
 *
 * Everything here is pure: the random state is passed in, nothing reads the
 * clock, nothing allocates after init. Depends on nothing but libc and libm.
 */
#ifndef BENCH_GEN_H
#define BENCH_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* YCSB's constants: zipfian skew, and the item count and zeta its
 * ScrambledZipfianGenerator draws ranks from before hashing them. */
#define GEN_ZIPF_THETA 0.99
#define GEN_SCRAMBLED_ITEMS 10000000000ULL
#define GEN_SCRAMBLED_ZETAN 26.46902820178302
/* Zeta sums are exact up to this many terms and integrated beyond. */
#define GEN_ZETA_EXACT_MAX 1000000ULL
#define GEN_KEY_PREFIX "user"
#define GEN_KEY_MAX 32 /* "user" and up to 20 digits, with room to spare */

/* xoshiro256** state. */
typedef struct gen_rng {
  uint64_t s[4];
} gen_rng;

void gen_rng_seed(gen_rng *r, uint64_t seed);
uint64_t gen_rng_next(gen_rng *r);
/* Uniform double in [0, 1). */
double gen_rng_double(gen_rng *r);
/* Uniform integer in [0, n) for n >= 1. */
uint64_t gen_rng_below(gen_rng *r, uint64_t n);

/* YCSB's 64-bit FNV-1 hash of the 8 bytes of v (made non-negative as Java's
 * Math.abs does). */
uint64_t gen_fnv64(uint64_t v);
/* zeta(n, theta) = sum_{i=1..n} 1/i^theta, exact up to GEN_ZETA_EXACT_MAX
 * terms and by the integral beyond. */
double gen_zeta(uint64_t n, double theta);

/* A zipfian generator over ranks [0, items): rank 0 is the most popular. */
typedef struct gen_zipf {
  uint64_t items;
  double theta, alpha, zetan, eta, half_pow_theta;
} gen_zipf;

/* zetan may be 0 to have it computed. items >= 1. */
void gen_zipf_init(gen_zipf *z, uint64_t items, double theta, double zetan);
uint64_t gen_zipf_next(const gen_zipf *z, gen_rng *r);

typedef enum gen_dist {
  GEN_UNIFORM = 0,
  GEN_ZIPFIAN,
  GEN_LATEST,
} gen_dist;

/* Chooses key numbers in [0, keys). */
typedef struct gen_keys {
  gen_dist dist;
  uint64_t keys;
  gen_zipf zipf; /* ranks for GEN_ZIPFIAN (scrambled) and GEN_LATEST */
} gen_keys;

void gen_keys_init(gen_keys *k, gen_dist dist, uint64_t keys);
/* Returns a key number in [0, keys). For GEN_LATEST the most recently
 * inserted key (keys - 1, as --load inserts in order) is the most popular;
 * for GEN_ZIPFIAN the popular ones are spread over the key space by FNV. */
uint64_t gen_keys_next(const gen_keys *k, gen_rng *r);

/* Writes "user<n>" into buf (GEN_KEY_MAX bytes); returns its length. */
size_t gen_key_format(char *buf, uint64_t n);

/* Operation kinds; the order is the order of reports. */
typedef enum gen_op {
  GEN_OP_READ = 0,
  GEN_OP_UPDATE,
  GEN_OP_RMW,
  GEN_OP_INSERT, /* --load */
  GEN_OP_COUNT
} gen_op;

const char *gen_op_name(gen_op op);

/* The operation mix: read with probability read_frac, else the write op
 * (update, or rmw for workload F). */
typedef struct gen_mix {
  double read_frac;
  gen_op write_op;
} gen_mix;

/* Parses a --workload value ("a", "b", "c", "f", "write-only",
 * "mix:READ/UPDATE" with non-negative weights not both 0). Returns 0 or -1. */
int gen_mix_parse(const char *s, gen_mix *out);
gen_op gen_mix_next(const gen_mix *m, gen_rng *r);

#endif
