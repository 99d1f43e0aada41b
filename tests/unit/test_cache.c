/*
 * test_cache.c: the object cache (storage/cache.h) against a reference
 * model: what the cache returns is always the latest value put for that
 * key (or nothing), never more bytes than the budget stay held, and
 * deletes by key and by prefix forget exactly what they should.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_err.h"
#include "cache.h"

#define CHECK_MESSAGE
#define CHECK_HEAD "FAIL %s:%d: %.0s" /* the messages say what failed */
#define CHECK_OUT stdout
#include "unit/check.h"

#define MODEL_KEYS 2000

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static void basics(void) {
  kvcache *c = kvcache_new(1 << 20);
  const uint8_t *v;
  size_t vl;
  CHECK(!kvcache_get(c, (const uint8_t *)"a", 1, &v, &vl), "empty miss");
  CHECK(kvcache_put(c, (const uint8_t *)"a", 1, (const uint8_t *)"one", 3) ==
            0, "put");
  CHECK(kvcache_get(c, (const uint8_t *)"a", 1, &v, &vl) && vl == 3 &&
            memcmp(v, "one", 3) == 0, "hit");
  kvcache_put(c, (const uint8_t *)"a", 1, (const uint8_t *)"three", 5);
  CHECK(kvcache_get(c, (const uint8_t *)"a", 1, &v, &vl) && vl == 5,
        "replace");
  kvcache_put(c, (const uint8_t *)"a", 1, (const uint8_t *)"", 0);
  CHECK(kvcache_get(c, (const uint8_t *)"a", 1, &v, &vl) && vl == 0,
        "empty value is a value");
  kvcache_del(c, (const uint8_t *)"a", 1);
  CHECK(!kvcache_get(c, (const uint8_t *)"a", 1, &v, &vl), "deleted");
  kvcache_free(c);
  kvcache_free(NULL);

  kvcache *z = kvcache_new(0);
  kvcache_put(z, (const uint8_t *)"a", 1, (const uint8_t *)"x", 1);
  CHECK(!kvcache_get(z, (const uint8_t *)"a", 1, &v, &vl),
        "a zero budget holds nothing");
  kvcache_free(z);
}

/* Random puts, deletes and prefix deletes against a model; small budget so
 * eviction happens all the time. */
static void model(size_t budget) {
  kvcache *c = kvcache_new(budget);
  char *vals[MODEL_KEYS] = {0};
  for (int step = 0; step < 200000; step++) {
    int k = (int)(next() % MODEL_KEYS);
    char key[16];
    int kl = snprintf(key, sizeof(key), "%c%d", 'a' + k % 4, k);
    int op = (int)(next() % 10);
    if (op < 5) {
      char val[64];
      int vlen = snprintf(val, sizeof(val), "v%d-%d", k, step);
      kvcache_put(c, (uint8_t *)key, (size_t)kl, (uint8_t *)val, (size_t)vlen);
      free(vals[k]);
      vals[k] = strdup(val);
    } else if (op < 6) {
      kvcache_del(c, (uint8_t *)key, (size_t)kl);
      free(vals[k]);
      vals[k] = NULL;
    } else if (op == 6 && next() % 1000 == 0) {
      uint8_t p = (uint8_t)('a' + next() % 4);
      kvcache_del_prefix(c, &p, 1);
      for (int i = 0; i < MODEL_KEYS; i++)
        if ('a' + i % 4 == p) {
          free(vals[i]);
          vals[i] = NULL;
        }
    } else {
      const uint8_t *v;
      size_t vl;
      if (kvcache_get(c, (uint8_t *)key, (size_t)kl, &v, &vl)) {
        if (!(vals[k] && strlen(vals[k]) == vl && memcmp(v, vals[k], vl) == 0)) {
          CHECK(0, "budget %zu step %d: stale or wrong value for %s", budget,
                step, key);
          break;
        }
      }
    }
    kvcache_stats st;
    kvcache_stats_get(c, &st);
    if (st.bytes > budget) {
      CHECK(0, "budget %zu exceeded: %zu", budget, st.bytes);
      break;
    }
  }
  kvcache_stats st;
  kvcache_stats_get(c, &st);
  CHECK(st.hits > 0, "budget %zu: some hits (%llu)", budget,
        (unsigned long long)st.hits);
  if (budget < 100000)
    CHECK(st.evictions > 0, "budget %zu: evictions happen", budget);
  /* Every key the cache still returns is right (full sweep). */
  int wrong = 0;
  for (int k = 0; k < MODEL_KEYS; k++) {
    char key[16];
    int kl = snprintf(key, sizeof(key), "%c%d", 'a' + k % 4, k);
    const uint8_t *v;
    size_t vl;
    if (kvcache_get(c, (uint8_t *)key, (size_t)kl, &v, &vl) &&
        !(vals[k] && strlen(vals[k]) == vl && memcmp(v, vals[k], vl) == 0))
      wrong++;
    free(vals[k]);
  }
  CHECK(wrong == 0, "budget %zu: final sweep, %d wrong", budget, wrong);
  kvcache_free(c);
}

int main(void) {
  basics();
  model(4096);
  model(40000);
  model(10u << 20);
  return check_summary("test_cache");
}
