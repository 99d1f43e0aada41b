/*
 * gen.c: PRNG, key distributions and operation mix of gen.h.
 *
 * The zipfian generator follows YCSB's ZipfianGenerator (Gray et al.,
 * "Quickly generating billion-record synthetic databases", SIGMOD 1994) and
 * its scrambled variant draws ranks over 10^10 items with YCSB's
 * precomputed zeta, hashes them with FNV and folds them into the key space,
 * so hot keys are spread out instead of clustered at the low numbers.
 * Depends on libc, libm and rng.h (splitmix64, which seeds xoshiro256**).
 */
#include "gen.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

static uint64_t gen__rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

void gen_rng_seed(gen_rng *r, uint64_t seed) {
  for (int i = 0; i < 4; i++)
    r->s[i] = kv_splitmix64(&seed);
}

uint64_t gen_rng_next(gen_rng *r) {
  uint64_t *s = r->s;
  uint64_t result = gen__rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = gen__rotl(s[3], 45);
  return result;
}

double gen_rng_double(gen_rng *r) {
  return (double)(gen_rng_next(r) >> 11) * 0x1.0p-53;
}

uint64_t gen_rng_below(gen_rng *r, uint64_t n) {
  /* Lemire's multiply-shift; the bias is below 2^-64 * n, negligible here. */
  __extension__ typedef unsigned __int128 gen_u128;
  return (uint64_t)(((gen_u128)gen_rng_next(r) * n) >> 64);
}

uint64_t gen_fnv64(uint64_t v) {
  uint64_t h = 0xCBF29CE484222325ULL;
  for (int i = 0; i < 8; i++) {
    h ^= v & 0xff;
    v >>= 8;
    h *= 1099511628211ULL;
  }
  int64_t s = (int64_t)h;
  return s < 0 ? (uint64_t)0 - h : h;
}

double gen_zeta(uint64_t n, double theta) {
  uint64_t exact = n < GEN_ZETA_EXACT_MAX ? n : GEN_ZETA_EXACT_MAX;
  double sum = 0;
  for (uint64_t i = 1; i <= exact; i++)
    sum += 1.0 / pow((double)i, theta);
  if (n > exact) {
    /* Midpoint rule: the sum over (exact, n] is close to the integral of
     * x^-theta from exact + 0.5 to n + 0.5. */
    double a = (double)exact + 0.5, b = (double)n + 0.5;
    sum += (pow(b, 1 - theta) - pow(a, 1 - theta)) / (1 - theta);
  }
  return sum;
}

void gen_zipf_init(gen_zipf *z, uint64_t items, double theta, double zetan) {
  z->items = items;
  z->theta = theta;
  z->alpha = 1.0 / (1.0 - theta);
  z->zetan = zetan > 0 ? zetan : gen_zeta(items, theta);
  double zeta2 = gen_zeta(2, theta);
  z->eta = (1 - pow(2.0 / (double)items, 1 - theta)) / (1 - zeta2 / z->zetan);
  z->half_pow_theta = 1.0 + pow(0.5, theta);
}

uint64_t gen_zipf_next(const gen_zipf *z, gen_rng *r) {
  double u = gen_rng_double(r);
  double uz = u * z->zetan;
  if (uz < 1.0)
    return 0;
  if (uz < z->half_pow_theta)
    return z->items > 1 ? 1 : 0;
  uint64_t v =
      (uint64_t)((double)z->items * pow(z->eta * u - z->eta + 1, z->alpha));
  return v < z->items ? v : z->items - 1;
}

void gen_keys_init(gen_keys *k, gen_dist dist, uint64_t keys) {
  memset(k, 0, sizeof *k);
  k->dist = dist;
  k->keys = keys ? keys : 1;
  if (dist == GEN_ZIPFIAN)
    gen_zipf_init(&k->zipf, GEN_SCRAMBLED_ITEMS, GEN_ZIPF_THETA,
                  GEN_SCRAMBLED_ZETAN);
  else if (dist == GEN_LATEST)
    gen_zipf_init(&k->zipf, k->keys, GEN_ZIPF_THETA, 0);
}

uint64_t gen_keys_next(const gen_keys *k, gen_rng *r) {
  switch (k->dist) {
  case GEN_ZIPFIAN:
    return gen_fnv64(gen_zipf_next(&k->zipf, r)) % k->keys;
  case GEN_LATEST:
    return k->keys - 1 - gen_zipf_next(&k->zipf, r);
  case GEN_UNIFORM:
  default:
    return gen_rng_below(r, k->keys);
  }
}

size_t gen_key_format(char *buf, uint64_t n) {
  char digits[24];
  size_t nd = 0;
  do {
    digits[nd++] = (char)('0' + n % 10);
    n /= 10;
  } while (n);
  size_t plen = sizeof GEN_KEY_PREFIX - 1;
  memcpy(buf, GEN_KEY_PREFIX, plen);
  for (size_t i = 0; i < nd; i++)
    buf[plen + i] = digits[nd - 1 - i];
  buf[plen + nd] = '\0';
  return plen + nd;
}

const char *gen_op_name(gen_op op) {
  static const char *const names[GEN_OP_COUNT] = {"read", "update", "rmw",
                                                   "insert"};
  return (unsigned)op < GEN_OP_COUNT ? names[op] : "?";
}

int gen_mix_parse(const char *s, gen_mix *out) {
  out->write_op = GEN_OP_UPDATE;
  if (!strcmp(s, "a")) {
    out->read_frac = 0.5;
  } else if (!strcmp(s, "b")) {
    out->read_frac = 0.95;
  } else if (!strcmp(s, "c")) {
    out->read_frac = 1.0;
  } else if (!strcmp(s, "f")) {
    out->read_frac = 0.5;
    out->write_op = GEN_OP_RMW;
  } else if (!strcmp(s, "write-only")) {
    out->read_frac = 0.0;
  } else if (!strncmp(s, "mix:", 4)) {
    char *end;
    double rd = strtod(s + 4, &end);
    if (end == s + 4 || *end != '/')
      return -1;
    const char *u = end + 1;
    double up = strtod(u, &end);
    if (end == u || *end != '\0')
      return -1;
    if (!(rd >= 0) || !(up >= 0) || rd + up <= 0 || !isfinite(rd + up))
      return -1;
    out->read_frac = rd / (rd + up);
  } else {
    return -1;
  }
  return 0;
}

gen_op gen_mix_next(const gen_mix *m, gen_rng *r) {
  if (m->read_frac >= 1.0)
    return GEN_OP_READ;
  if (m->read_frac <= 0.0)
    return m->write_op;
  return gen_rng_double(r) < m->read_frac ? GEN_OP_READ : m->write_op;
}
