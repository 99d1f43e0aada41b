/*
 * test_ring.c: unit tests of ring/ (partitioner, claim, preference lists,
 * encoding). Random membership sequences are seeded; the seed is printed
 * and can be given as argv[1] to reproduce a failure.
 * Depends on: kvring (and xxHash to check the hash).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "kv_err.h"
#include "ring.h"
#include "rng.h"

#define CHECK_MESSAGE
#include "unit/check.h"

/* Random join/leave steps per (Q, N) sequence. */
#define T_STEPS 120
/* Largest cluster the random sequences grow to. */
#define T_NODES_MAX 64
/* Random mutations of an encoded ring fed to ring_decode. */
#define T_MUTATIONS 3000

/* Checks that every partition is owned by a present node and every node
 * owns floor(Q/M) or ceil(Q/M). Returns true when balanced. */
static bool balanced(const ring *r) {
  uint32_t q = ring_q(r);
  size_t m = ring_node_count(r);
  if (m == 0)
    return true;
  uint32_t lo = (uint32_t)(q / m), hi = lo + (q % m ? 1 : 0);
  for (uint32_t p = 0; p < q; p++)
    if (ring_owner(r, p) < 0 || (size_t)ring_owner(r, p) >= m)
      return false;
  for (size_t i = 0; i < m; i++) {
    uint32_t c = ring_owned_count(r, i);
    if (c < lo || c > hi)
      return false;
  }
  return true;
}

/* Number of partitions p whose n consecutive owners from p are not all
 * distinct (a claim "adjacency violation"). */
static uint32_t violations(const ring *r, uint32_t n) {
  uint32_t q = ring_q(r), bad = 0;
  for (uint32_t p = 0; p < q; p++) {
    bool dup = false;
    for (uint32_t a = 0; a < n && !dup; a++)
      for (uint32_t b = a + 1; b < n && !dup; b++)
        dup = ring_owner(r, (p + a) % q) == ring_owner(r, (p + b) % q);
    bad += dup;
  }
  return bad;
}

static void test_hash(void) {
  const char *k = "kvorum-key";
  CHECK(ring_hash(k, strlen(k)) == XXH3_64bits(k, strlen(k)), "hash");
  CHECK(ring_hash("", 0) == XXH3_64bits("", 0), "empty hash");
  CHECK(ring_partition_of_hash(1, UINT64_MAX) == 0, "q=1");
  CHECK(ring_partition_of_hash(64, 0) == 0, "low");
  CHECK(ring_partition_of_hash(64, UINT64_MAX) == 63, "high");
  CHECK(ring_partition_of_hash(64, 1ull << 58) == 1, "second");
  CHECK(ring_partition_of_hash(64, (1ull << 58) - 1) == 0, "first end");
  CHECK(ring_partition_of_hash(RING_Q_MAX, UINT64_MAX) == RING_Q_MAX - 1,
        "qmax");
  CHECK(ring_partition_of_hash(2, 1ull << 63) == 1, "q=2");
  uint64_t s = 7;
  bool ok = true;
  for (uint32_t q = 1; q <= RING_Q_MAX; q *= 2)
    for (int i = 0; i < 1000; i++) {
      uint64_t h = kv_splitmix64(&s);
      uint32_t p = ring_partition_of_hash(q, h);
      /* p * 2^64/q <= h < (p+1) * 2^64/q */
      uint64_t width = q == 1 ? 0 : (1ull << (64 - __builtin_ctz(q)));
      if (p >= q || (q > 1 && (h / width) != p))
        ok = false;
    }
  CHECK(ok, "partition_of_hash in range and equal to h / (2^64/q)");
  ring *r = ring_new(256);
  CHECK(ring_partition(r, k, strlen(k)) ==
            (uint32_t)(XXH3_64bits(k, strlen(k)) >> 56),
        "ring_partition");
  ring_free(r);
}

static void test_members(void) {
  CHECK(ring_new(0) == NULL, "q=0");
  CHECK(ring_new(3) == NULL, "q=3");
  CHECK(ring_new(RING_Q_MAX * 2) == NULL, "q too big");
  ring_free(NULL);
  ring *r = ring_new(RING_Q_DEFAULT);
  CHECK(r && ring_q(r) == 64 && ring_version(r) == 0 && ring_n(r) == 3,
        "defaults");
  CHECK(ring_add_node(r, "a", "us", "z1") == 0, "add a");
  CHECK(ring_add_node(r, "b", NULL, NULL) == 1, "add b");
  CHECK(ring_add_node(r, "a", "us", "z1") == KV_EINVAL, "dup");
  CHECK(ring_add_node(r, "", "us", "z1") == KV_EINVAL, "empty id");
  char big[RING_NAME_MAX + 1];
  memset(big, 'x', RING_NAME_MAX);
  big[RING_NAME_MAX] = 0;
  CHECK(ring_add_node(r, big, "", "") == KV_EINVAL, "long id");
  big[RING_NAME_MAX - 1] = 0;
  CHECK(ring_add_node(r, big, "", "") == 2, "longest id fits");
  CHECK(ring_node_index(r, "b") == 1 && ring_node_index(r, "zz") == -1,
        "index");
  CHECK(strcmp(ring_node_region(r, 0), "us") == 0 &&
            strcmp(ring_node_zone(r, 0), "z1") == 0 &&
            strcmp(ring_node_zone(r, 1), "") == 0,
        "names");
  CHECK(ring_node_id(r, 99) == NULL, "bad idx");
  CHECK(ring_claim(r) == 64 && balanced(r), "first claim");
  CHECK(ring_remove_node(r, "a") == 0, "remove");
  CHECK(ring_remove_node(r, "a") == KV_ENOTFOUND, "remove twice");
  CHECK(ring_node_index(r, "b") == 0, "indices shift down");
  uint32_t unowned = 0;
  for (uint32_t p = 0; p < 64; p++)
    unowned += ring_owner(r, p) < 0;
  CHECK(unowned == 22 || unowned == 21, "leaver's partitions unowned: %u",
        unowned);
  CHECK(ring_owner(r, 64) == -1, "owner out of range");
  ring_free(r);

  r = ring_new(8);
  char id[16];
  int rc = 0;
  for (int i = 0; i < RING_NODES_MAX && rc >= 0; i++) {
    snprintf(id, sizeof(id), "n%d", i);
    rc = ring_add_node(r, id, "r", "z");
  }
  CHECK(rc == RING_NODES_MAX - 1, "fills");
  CHECK(ring_add_node(r, "one-more", "r", "z") == KV_EFULL, "full");
  ring_claim(r);
  CHECK(balanced(r), "more nodes than partitions balanced");
  ring_free(r);

  r = ring_new(64);
  CHECK(ring_set_region_replicas(r, "us", 2) == 0, "region");
  CHECK(ring_set_region_replicas(r, "eu", 3) == 0, "region");
  CHECK(ring_set_region_replicas(r, "us", 1) == 0, "region update");
  CHECK(ring_region_count(r) == 2 && ring_region_replicas(r, 0) == 1 &&
            strcmp(ring_region_name(r, 1), "eu") == 0,
        "regions");
  CHECK(ring_set_region_replicas(r, "us", 0) == 0 && ring_region_count(r) == 1,
        "region removed");
  CHECK(ring_set_region_replicas(r, "", 1) == KV_EINVAL, "empty region");
  ring_free(r);
}

/* Random joins and leaves for one (q, n); checks balance after every claim
 * and the movement bounds: a join moves exactly the newcomer's partitions
 * (at most ceil(Q/(M+1))) and a leave exactly the leaver's. */
static void run_sequence(uint32_t q, uint32_t n, int steps, uint64_t *seed,
                         uint32_t *worst_viol) {
  ring *r = ring_new(q);
  ring_set_n(r, n);
  int next_id = 0;
  char id[32];
  bool ok_bal = true, ok_join = true, ok_leave = true, ok_keep = true;
  uint32_t max_join_over = 0;
  for (int step = 0; step < steps; step++) {
    size_t m = ring_node_count(r);
    bool join = m == 0 || (m < T_NODES_MAX && kv_splitmix64(seed) % 100 < 60);
    ring *before = ring_clone(r);
    if (join) {
      snprintf(id, sizeof(id), "node-%d", next_id++);
      static const char *zones[] = {"a", "b", "c"};
      ring_add_node(r, id, "r1", zones[kv_splitmix64(seed) % 3]);
      uint32_t moved = ring_claim(r);
      uint32_t share = ring_owned_count(r, m);
      uint32_t bound = (q + (uint32_t)m) / (uint32_t)(m + 1); /* ceil */
      if (moved != share || moved > bound) {
        ok_join = false;
        fprintf(stderr, "join q=%u n=%u m=%zu moved=%u share=%u bound=%u\n",
                q, n, m + 1, moved, share, bound);
      }
      if (moved > q / (m + 1) && moved - q / (m + 1) > max_join_over)
        max_join_over = moved - q / (uint32_t)(m + 1);
    } else {
      size_t victim = kv_splitmix64(seed) % m;
      snprintf(id, sizeof(id), "%s", ring_node_id(r, victim));
      uint32_t had = ring_owned_count(r, victim);
      ring_remove_node(r, id);
      uint32_t moved = ring_claim(r);
      /* The last node leaving unowns everything before the claim. */
      if (moved != (m > 1 ? had : 0)) {
        ok_leave = false;
        fprintf(stderr, "leave q=%u n=%u m=%zu moved=%u had=%u\n", q, n,
                m - 1, moved, had);
      }
    }
    /* Partitions that changed hands went to the newcomer or came from the
     * leaver only. */
    for (uint32_t p = 0; p < q; p++) {
      int ob = ring_owner(before, p), oa = ring_owner(r, p);
      const char *ib = ob >= 0 ? ring_node_id(before, (size_t)ob) : "";
      const char *ia = oa >= 0 ? ring_node_id(r, (size_t)oa) : "";
      if (strcmp(ib, ia) != 0 && strcmp(ib, id) != 0 && strcmp(ia, id) != 0)
        ok_keep = false;
    }
    ring_free(before);
    if (!balanced(r)) {
      ok_bal = false;
      fprintf(stderr, "unbalanced q=%u n=%u m=%zu step %d\n", q, n,
              ring_node_count(r), step);
    }
    if (ring_node_count(r) >= 2 * n && q >= 2 * ring_node_count(r)) {
      uint32_t v = violations(r, n);
      if (v > *worst_viol)
        *worst_viol = v;
    }
  }
  CHECK(ok_bal, "balanced after every claim (q=%u n=%u)", q, n);
  CHECK(ok_join, "join moves exactly the newcomer's share (q=%u n=%u)", q, n);
  CHECK(ok_leave, "leave moves exactly the leaver's (q=%u n=%u)", q, n);
  CHECK(ok_keep, "only the changed node's partitions move (q=%u n=%u)", q,
        n);
  CHECK(max_join_over == 0, "join over floor(Q/(M+1)) by %u", max_join_over);
  ring_free(r);
}

static void test_balance_movement(uint64_t seed) {
  static const uint32_t qs[] = {8, 64, 256};
  static const uint32_t ns[] = {1, 2, 3, 5};
  for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++)
    for (size_t j = 0; j < sizeof(ns) / sizeof(ns[0]); j++) {
      uint64_t s = seed ^ (qs[i] * 31 + ns[j]);
      uint32_t worst = 0;
      run_sequence(qs[i], ns[j], T_STEPS, &s, &worst);
      printf("# q=%u n=%u: worst adjacency violations (M>=2N, Q>=2M): %u\n",
             qs[i], ns[j], worst);
    }
}

/* Every preference list is a permutation of the members whose first
 * min(N, M) entries are the primaries, distinct, starting at the owner. */
static void test_preflist_distinct(void) {
  static const uint32_t qs[] = {8, 64, 256};
  static const uint32_t ns[] = {1, 2, 3, 5};
  for (size_t i = 0; i < 3; i++)
    for (size_t j = 0; j < 4; j++) {
      ring *r = ring_new(qs[i]);
      ring_set_n(r, ns[j]);
      bool ok = true;
      char id[16];
      for (int m = 1; m <= 12; m++) {
        snprintf(id, sizeof(id), "n%d", m);
        ring_add_node(r, id, "r", "z");
        ring_claim(r);
        size_t out[RING_NODES_MAX], np = 99;
        size_t want = ns[j] < (uint32_t)m ? ns[j] : (size_t)m;
        for (uint32_t p = 0; p < qs[i]; p++) {
          size_t total = ring_preflist(r, p, out, RING_NODES_MAX, &np);
          bool seen[RING_NODES_MAX] = {false};
          bool perm = total == (size_t)m;
          for (size_t k = 0; k < total && perm; k++) {
            perm = out[k] < (size_t)m && !seen[out[k]];
            seen[out[k]] = true;
          }
          if (!perm || np != want || (int)out[0] != ring_owner(r, p)) {
            ok = false;
            fprintf(stderr, "q=%u n=%u m=%d p=%u np=%zu total=%zu\n", qs[i],
                    ns[j], m, p, np, total);
          }
        }
        /* A small cap is respected and still reports the totals. */
        size_t one[1];
        size_t total = ring_preflist(r, 0, one, 1, &np);
        if (total != (size_t)m || np != want)
          ok = false;
      }
      CHECK(ok, "preflists distinct q=%u n=%u", qs[i], ns[j]);
      ring_free(r);
    }
  ring *r = ring_new(64);
  size_t out[4], np = 7;
  CHECK(ring_preflist(r, 0, out, 4, &np) == 0 && np == 0, "empty ring");
  ring_free(r);
}

/* Zones of the primaries of every partition. Returns the number of
 * partitions whose primaries are not on distinct zones. */
static uint32_t zone_misses(const ring *r, size_t want) {
  uint32_t miss = 0;
  for (uint32_t p = 0; p < ring_q(r); p++) {
    size_t out[RING_NODES_MAX], np = 0;
    ring_preflist(r, p, out, RING_NODES_MAX, &np);
    bool bad = np != want;
    for (size_t a = 0; a < np && !bad; a++)
      for (size_t b = a + 1; b < np && !bad; b++)
        bad = strcmp(ring_node_zone(r, out[a]), ring_node_zone(r, out[b])) ==
              0;
    miss += bad;
  }
  return miss;
}

static void test_zones(void) {
  static const uint32_t qs[] = {8, 64, 256};
  for (size_t i = 0; i < 3; i++) {
    ring *r = ring_new(qs[i]);
    ring_set_n(r, 3);
    /* Added zone by zone, the worst order for a naive claim. */
    ring_add_node(r, "a1", "r", "a");
    ring_add_node(r, "a2", "r", "a");
    ring_add_node(r, "b1", "r", "b");
    ring_add_node(r, "b2", "r", "b");
    ring_add_node(r, "c1", "r", "c");
    ring_add_node(r, "c2", "r", "c");
    ring_claim(r);
    CHECK(balanced(r), "balanced");
    CHECK(zone_misses(r, 3) == 0, "3 zones for every partition (q=%u)",
          qs[i]);
    /* How well the claim itself spreads zones: the first three owners
     * clockwise are on distinct zones. */
    uint32_t spread = 0;
    for (uint32_t p = 0; p < qs[i]; p++) {
      const char *z0 = ring_node_zone(r, (size_t)ring_owner(r, p));
      const char *z1 = ring_node_zone(r, (size_t)ring_owner(r, (p + 1) % qs[i]));
      const char *z2 = ring_node_zone(r, (size_t)ring_owner(r, (p + 2) % qs[i]));
      spread += strcmp(z0, z1) && strcmp(z1, z2) && strcmp(z0, z2);
    }
    printf("# q=%u: %u of %u partitions have 3 zones in their first 3 "
           "owners\n",
           qs[i], spread, qs[i]);
    /* Three zones cannot tile 8 partitions; larger rings nearly can. */
    if (qs[i] >= 64)
      CHECK(spread * 10 >= qs[i] * 9, "claim spreads zones: %u of %u", spread,
            qs[i]);
    /* One zone loses a node: still three zones where possible. */
    ring_remove_node(r, "c2");
    ring_claim(r);
    CHECK(zone_misses(r, 3) == 0, "3 zones after a leave (q=%u)", qs[i]);
    ring_free(r);
  }
  /* Two zones only and n = 3: two zones in every preflist. */
  ring *r = ring_new(64);
  ring_add_node(r, "a1", "r", "a");
  ring_add_node(r, "a2", "r", "a");
  ring_add_node(r, "a3", "r", "a");
  ring_add_node(r, "b1", "r", "b");
  ring_claim(r);
  bool ok = true;
  for (uint32_t p = 0; p < 64; p++) {
    size_t out[8], np;
    ring_preflist(r, p, out, 8, &np);
    bool has_b = false;
    for (size_t k = 0; k < np; k++)
      has_b |= strcmp(ring_node_zone(r, out[k]), "b") == 0;
    ok &= np == 3 && has_b;
  }
  CHECK(ok, "the lone zone b is in every preflist");
  ring_free(r);
}

static void test_regions(void) {
  ring *r = ring_new(64);
  ring_add_node(r, "us1", "us", "a");
  ring_add_node(r, "us2", "us", "a");
  ring_add_node(r, "us3", "us", "b");
  ring_add_node(r, "eu1", "eu", "a");
  ring_add_node(r, "eu2", "eu", "b");
  ring_add_node(r, "eu3", "eu", "c");
  ring_add_node(r, "eu4", "eu", "c");
  ring_add_node(r, "ap1", "ap", "a");
  ring_set_region_replicas(r, "us", 2);
  ring_set_region_replicas(r, "eu", 3);
  ring_claim(r);
  CHECK(balanced(r), "balanced");
  bool ok = true, zones_ok = true;
  for (uint32_t p = 0; p < 64; p++) {
    size_t out[RING_NODES_MAX], np = 0;
    size_t total = ring_preflist(r, p, out, RING_NODES_MAX, &np);
    int us = 0, eu = 0;
    for (size_t k = 0; k < np; k++) {
      us += strcmp(ring_node_region(r, out[k]), "us") == 0;
      eu += strcmp(ring_node_region(r, out[k]), "eu") == 0;
    }
    ok &= np == 5 && us == 2 && eu == 3 && total == 8;
    /* Within a region, distinct zones where the region has them. */
    for (size_t a = 0; a < np; a++)
      for (size_t b = a + 1; b < np; b++)
        if (strcmp(ring_node_region(r, out[a]), ring_node_region(r, out[b])) ==
                0 &&
            strcmp(ring_node_zone(r, out[a]), ring_node_zone(r, out[b])) == 0)
          zones_ok = false;
  }
  CHECK(ok, "2 us and 3 eu primaries for every partition");
  CHECK(zones_ok, "primaries of a region on distinct zones");
  ring_free(r);

  /* Plain n over two regions: both regions in every preflist. */
  r = ring_new(64);
  ring_add_node(r, "us1", "us", "");
  ring_add_node(r, "us2", "us", "");
  ring_add_node(r, "us3", "us", "");
  ring_add_node(r, "eu1", "eu", "");
  ring_add_node(r, "eu2", "eu", "");
  ring_add_node(r, "eu3", "eu", "");
  ring_claim(r);
  ok = true;
  for (uint32_t p = 0; p < 64; p++) {
    size_t out[8], np;
    ring_preflist(r, p, out, 8, &np);
    int us = 0;
    for (size_t k = 0; k < np; k++)
      us += strcmp(ring_node_region(r, out[k]), "us") == 0;
    ok &= np == 3 && us >= 1 && us <= 2;
  }
  CHECK(ok, "both regions in every preflist");
  ring_free(r);
}

static ring *sample_ring(void) {
  ring *r = ring_new(64);
  ring_set_n(r, 3);
  ring_add_node(r, "n1", "us", "a");
  ring_add_node(r, "n2", "us", "b");
  ring_add_node(r, "n3", "eu", "");
  ring_add_node(r, "n4", "eu", "c");
  ring_set_region_replicas(r, "us", 2);
  ring_set_region_replicas(r, "eu", 1);
  ring_claim(r);
  ring_set_version(r, 42);
  ring_remove_node(r, "n3"); /* leaves unowned partitions */
  return r;
}

/* Checks the invariants a decoded ring must hold. */
static bool sane(const ring *r) {
  uint32_t q = ring_q(r);
  if (q == 0 || q > RING_Q_MAX || (q & (q - 1)))
    return false;
  for (uint32_t p = 0; p < q; p++)
    if (ring_owner(r, p) < -1 || ring_owner(r, p) >= (int)ring_node_count(r))
      return false;
  for (size_t i = 0; i < ring_node_count(r); i++)
    if (strlen(ring_node_id(r, i)) >= RING_NAME_MAX)
      return false;
  return ring_node_count(r) <= RING_NODES_MAX;
}

static void test_encoding(uint64_t seed) {
  ring *r = sample_ring();
  kvbuf b;
  kvbuf_init(&b);
  CHECK(ring_encode(r, &b) == 0, "encode");
  ring *d = NULL;
  CHECK(ring_decode(b.data, b.len, &d) == 0 && d, "decode");
  CHECK(d && ring_equal(r, d), "round trip equal");
  CHECK(d && ring_version(d) == 42 && ring_region_count(d) == 2 &&
            ring_node_count(d) == 3,
        "fields");
  ring *c = ring_clone(r);
  CHECK(ring_equal(c, r), "clone equal");
  ring_set_version(c, 43);
  CHECK(!ring_equal(c, r), "version differs");
  ring_free(c);
  ring_free(d);

  bool ok = true;
  for (size_t len = 0; len < b.len; len++) {
    uint8_t *cut = malloc(len ? len : 1);
    memcpy(cut, b.data, len);
    d = (ring *)1;
    int rc = ring_decode(cut, len, &d);
    ok &= rc == KV_EPROTO && d == NULL;
    free(cut);
  }
  CHECK(ok, "every truncation rejected");
  /* Trailing bytes are rejected too. */
  kvbuf_append(&b, "\xc0", 1);
  CHECK(ring_decode(b.data, b.len, &d) == KV_EPROTO, "trailing byte");
  b.len--;

  uint64_t s = seed;
  uint8_t *mut = malloc(b.len);
  int accepted = 0;
  ok = true;
  for (int i = 0; i < T_MUTATIONS; i++) {
    memcpy(mut, b.data, b.len);
    int flips = 1 + (int)(kv_splitmix64(&s) % 4);
    for (int f = 0; f < flips; f++)
      mut[kv_splitmix64(&s) % b.len] = (uint8_t)kv_splitmix64(&s);
    d = NULL;
    int rc = ring_decode(mut, b.len, &d);
    if (rc == 0) {
      accepted++;
      ok &= d && sane(d);
      /* A decoded ring works: claim, preflist and re-encode. */
      ring_claim(d);
      ok &= balanced(d);
      size_t out[RING_NODES_MAX], np;
      ring_preflist(d, 0, out, RING_NODES_MAX, &np);
      kvbuf b2;
      kvbuf_init(&b2);
      ok &= ring_encode(d, &b2) == 0;
      kvbuf_free(&b2);
      ring_free(d);
    } else {
      ok &= d == NULL && (rc == KV_EPROTO || rc == KV_ENOMEM);
    }
  }
  free(mut);
  printf("# %d of %d mutations decoded as valid rings\n", accepted,
         T_MUTATIONS);
  CHECK(ok, "mutated input never crashes and never yields a bad ring");
  kvbuf_free(&b);
  ring_free(r);

  /* Hand-made invalid rings. */
  struct {
    const char *what;
    uint32_t q;
    int owner;
    const char *id;
    uint32_t nodes_hdr;
  } bad[] = {
      {"q not a power of two", 3, 0, "x", 1},
      {"q too big", RING_Q_MAX * 2, 0, "x", 1},
      {"owner out of range", 2, 1, "x", 1},
      {"owner below -1", 2, -2, "x", 1},
      {"empty id", 2, 0, "", 1},
      {"id too long",
       2,
       0,
       "0123456789012345678901234567890123456789012345678901234567890123",
       1},
      {"too many nodes", 2, 0, "x", RING_NODES_MAX + 1},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    kvbuf e;
    kvbuf_init(&e);
    msgpack_packer pk;
    mp_packer_init(&pk, &e);
    msgpack_pack_array(&pk, 7);
    msgpack_pack_uint32(&pk, 1);
    msgpack_pack_uint32(&pk, bad[i].q);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_uint32(&pk, 3);
    msgpack_pack_array(&pk, bad[i].nodes_hdr);
    for (uint32_t k = 0; k < bad[i].nodes_hdr; k++) {
      char id[80];
      snprintf(id, sizeof(id), "%s%u", bad[i].id, k ? k : 0);
      msgpack_pack_array(&pk, 3);
      mp_pack_cstr(&pk, k ? id : bad[i].id);
      mp_pack_cstr(&pk, "r");
      mp_pack_cstr(&pk, "z");
    }
    uint32_t q = bad[i].q < 8 ? bad[i].q : 2;
    msgpack_pack_array(&pk, q);
    for (uint32_t p = 0; p < q; p++)
      msgpack_pack_int(&pk, bad[i].owner);
    msgpack_pack_array(&pk, 0);
    d = NULL;
    CHECK(ring_decode(e.data, e.len, &d) == KV_EPROTO && d == NULL, "%s",
          bad[i].what);
    kvbuf_free(&e);
  }
}

static void test_determinism(uint64_t seed) {
  bool ok = true;
  for (int round = 0; round < 5; round++) {
    uint64_t s1 = seed + (uint64_t)round, s2 = s1;
    ring *a = ring_new(64), *b = ring_new(64);
    char id[16];
    for (int i = 0; i < 20; i++) {
      uint64_t x = kv_splitmix64(&s1);
      (void)kv_splitmix64(&s2);
      snprintf(id, sizeof(id), "n%" PRIu64, x % 12);
      if (ring_node_index(a, id) >= 0 && x % 3 == 0) {
        ring_remove_node(a, id);
        ring_remove_node(b, id);
      } else {
        const char *z = (x >> 8) % 2 ? "a" : "b";
        ring_add_node(a, id, "r", z);
        ring_add_node(b, id, "r", z);
      }
      ring *c = ring_clone(a);
      uint32_t ma = ring_claim(a), mb = ring_claim(b), mc = ring_claim(c);
      ok &= ma == mb && ma == mc && ring_equal(a, b) && ring_equal(a, c);
      /* A second claim of a settled ring moves nothing. */
      ok &= ring_claim(c) == 0 && ring_equal(a, c);
      ring_free(c);
    }
    ring_free(a);
    ring_free(b);
  }
  CHECK(ok, "same input, same claim; claim is idempotent");
}

/* A fresh claim is free of adjacency violations when the nodes divide Q
 * and outnumber N. */
static void test_fresh_quality(void) {
  static const uint32_t ms[] = {3, 4, 8, 16, 32};
  static const uint32_t ns[] = {2, 3, 5};
  for (size_t i = 0; i < 5; i++)
    for (size_t j = 0; j < 3; j++) {
      if (ms[i] < ns[j])
        continue;
      ring *r = ring_new(64);
      ring_set_n(r, ns[j]);
      char id[16];
      for (uint32_t k = 0; k < ms[i]; k++) {
        snprintf(id, sizeof(id), "n%u", k);
        ring_add_node(r, id, "r", "");
      }
      ring_claim(r);
      uint32_t v = violations(r, ns[j]);
      if (64 % ms[i] == 0)
        CHECK(v == 0, "fresh m=%u n=%u: %u violations", ms[i], ns[j], v);
      else
        printf("# fresh m=%u n=%u: %u violations\n", ms[i], ns[j], v);
      ring_free(r);
    }
}

/* Claim of the largest ring stays bounded (the repair budget). */
static void test_large(void) {
  ring *r = ring_new(RING_Q_MAX);
  char id[16];
  for (int k = 0; k < 100; k++) {
    snprintf(id, sizeof(id), "n%d", k);
    ring_add_node(r, id, "r", k % 2 ? "a" : "b");
  }
  CHECK(ring_claim(r) == RING_Q_MAX && balanced(r), "q max claim");
  ring_add_node(r, "late", "r", "c");
  CHECK(ring_claim(r) == RING_Q_MAX / 101, "q max join");
  printf("# q=%u m=101 n=3: %u violations\n", RING_Q_MAX, violations(r, 3));
  ring_free(r);
}

/* ring_node_index (a binary search over ids kept sorted beside the nodes)
 * agrees with a walk over the nodes through random adds and removes. */
static void test_index(uint64_t seed) {
  ring *r = ring_new(64);
  bool ok = true;
  char id[32];
  for (int step = 0; step < 3000; step++) {
    uint64_t x = kv_splitmix64(&seed);
    snprintf(id, sizeof(id), "%c%" PRIu64, (char)('a' + x % 26),
             (x >> 8) % 300);
    if (ring_node_index(r, id) >= 0 && x % 3 == 0)
      ok &= ring_remove_node(r, id) == 0;
    else if (ring_node_index(r, id) < 0 && ring_node_count(r) < 500)
      ok &= ring_add_node(r, id, "r", "z") >= 0;
    if (step % 100 == 0) {
      ring *c = ring_clone(r);
      for (size_t i = 0; i < ring_node_count(r); i++) {
        ok &= ring_node_index(r, ring_node_id(r, i)) == (int)i;
        ok &= ring_node_index(c, ring_node_id(r, i)) == (int)i;
      }
      ok &= ring_node_index(r, "not-there") == -1;
      ring_free(c);
    }
  }
  CHECK(ok, "index agrees with the node list");
  ring_free(r);
}

/* Deltas: every claim's change encodes to a delta that turns the ring
 * before into an equal ring after, chains apply in order, a delta does not
 * apply to another version, and a mangled one is rejected or makes some
 * ring (never a crash or an invalid ring). A join's delta is small. */
static void test_deltas(uint64_t seed) {
  static const uint32_t qs[] = {64, 1024, 8192};
  bool ok = true, small = true, mangled_ok = true;
  size_t join_delta_max = 0, full_len = 0;
  for (size_t qi = 0; qi < sizeof(qs) / sizeof(qs[0]); qi++) {
    ring *r = ring_new(qs[qi]);
    ring_set_n(r, 1); /* no neighbour conflicts: claims stay quick */
    int next_id = 0;
    char id[32];
    ring *first = NULL;
    kvbuf chain[4];
    size_t nchain = 0;
    int steps = qs[qi] > 4096 ? 30 : 60; /* large claims cost more */
    for (int step = 0; step < steps; step++) {
      size_t m = ring_node_count(r);
      bool join = m < 3 || kv_splitmix64(&seed) % 100 < 65;
      ring *before = ring_clone(r);
      if (join) {
        snprintf(id, sizeof(id), "node-%04d", next_id++);
        static const char *zones[] = {"a", "b", "c"};
        ring_add_node(r, id, "r1", zones[kv_splitmix64(&seed) % 3]);
      } else {
        ring_remove_node(r, ring_node_id(r, kv_splitmix64(&seed) % m));
      }
      uint32_t moved = ring_claim(r);
      ring_set_version(r, ring_version(before) + 1);
      kvbuf d;
      kvbuf_init(&d);
      int rc = ring_delta_encode(before, r, &d);
      ok &= rc == 0;
      ring *after = NULL;
      ok &= rc == 0 && ring_delta_apply(before, d.data, d.len, &after) == 0 &&
            ring_equal(after, r);
      /* A few bytes per partition that moved: the whole ring is not in
       * it. */
      if (join && m >= 10 && d.len > join_delta_max)
        join_delta_max = d.len;
      if (join && m >= 10)
        small &= d.len <= 6 * (size_t)moved + 200;
      /* Not for another version. */
      ring *wrong = ring_clone(before);
      ring_set_version(wrong, ring_version(before) + 7);
      ring *none = (ring *)1;
      ok &= ring_delta_apply(wrong, d.data, d.len, &none) == KV_EPROTO &&
            none == NULL;
      ring_free(wrong);
      /* Mangled: rejected, or a ring that still holds the invariants. */
      for (int k = 0; k < 50 && d.len; k++) {
        uint8_t *buf = malloc(d.len);
        memcpy(buf, d.data, d.len);
        size_t at = (size_t)(kv_splitmix64(&seed) % d.len);
        buf[at] ^= (uint8_t)(1 + kv_splitmix64(&seed) % 255);
        size_t len = k % 5 == 0 ? at : d.len; /* some truncated */
        ring *x = NULL;
        int xr = ring_delta_apply(before, buf, len, &x);
        mangled_ok &= (xr == KV_EPROTO && !x) || (xr == 0 && x && sane(x));
        ring_free(x);
        free(buf);
      }
      /* The last four changes, as a chain from the ring before them. */
      if (step == steps - 4) {
        first = ring_clone(before);
        nchain = 0;
      }
      if (step >= steps - 4 && nchain < 4) {
        chain[nchain++] = d;
      } else {
        kvbuf_free(&d);
      }
      ring_free(after);
      ring_free(before);
    }
    ring *cur = first;
    for (size_t i = 0; i < nchain; i++) {
      ring *next = NULL;
      ok &= ring_delta_apply(cur, chain[i].data, chain[i].len, &next) == 0;
      ring_free(cur);
      cur = next;
      kvbuf_free(&chain[i]);
    }
    ok &= cur && ring_equal(cur, r);
    ring_free(cur);
    kvbuf full;
    kvbuf_init(&full);
    ring_encode(r, &full);
    if (qs[qi] == 1024)
      full_len = full.len;
    kvbuf_free(&full);
    /* Another q, or other replication: no delta. */
    ring *other = ring_new(qs[qi] * 2);
    kvbuf d;
    kvbuf_init(&d);
    ok &= ring_delta_encode(r, other, &d) == KV_EINVAL;
    ring *moren = ring_clone(r);
    ring_set_n(moren, 3);
    ok &= ring_delta_encode(r, moren, &d) == KV_EINVAL;
    kvbuf_free(&d);
    ring_free(other);
    ring_free(moren);
    ring_free(r);
  }
  CHECK(ok, "deltas turn each ring into the next, chains too");
  CHECK(mangled_ok, "mangled deltas are rejected or make sane rings");
  CHECK(small, "a join's delta is a few bytes per moved partition");
  printf("# largest join delta (q=8192, M>=10) %zu bytes; a whole ring of "
         "q=1024: %zu\n",
         join_delta_max, full_len);
}

/* Claim of rings beyond RING__SCAN_Q_MAX partitions (batched hand-over):
 * joins and leaves keep the balance and move exactly the changed node's
 * partitions, fast, up to RING_Q_MAX. */
static void test_large_q(uint64_t seed) {
  uint32_t worst = 0;
  run_sequence(8192, 3, T_STEPS / 8, &seed, &worst);
  printf("# q=8192 n=3: worst adjacency violations (M>=2N, Q>=2M): %u\n",
         worst);
  ring *r = ring_new(RING_Q_MAX);
  char id[16];
  for (int k = 0; k < 1000; k++) {
    snprintf(id, sizeof(id), "kv-%04d", k);
    ring_add_node(r, id, "r", k % 3 == 0 ? "a" : k % 3 == 1 ? "b" : "c");
  }
  CHECK(ring_claim(r) == RING_Q_MAX && balanced(r), "fresh q max, 1000");
  ring_add_node(r, "kv-late", "r", "a");
  CHECK(ring_claim(r) == RING_Q_MAX / 1001 && balanced(r),
        "q max join moves Q/N");
  CHECK(ring_remove_node(r, "kv-0500") == 0, "remove");
  uint32_t moved = ring_claim(r);
  CHECK(moved == 65 || moved == 66, "q max leave moves the leaver's: %u",
        moved);
  CHECK(balanced(r), "q max leave balanced");
  printf("# q=%u m=1000 n=3: %u violations\n", RING_Q_MAX, violations(r, 3));
  ring_free(r);
  /* From one node: every join moves about half, third, ... */
  r = ring_new(RING_Q_MAX / 4);
  bool ok = true;
  for (int k = 0; k < 5; k++) {
    snprintf(id, sizeof(id), "n%d", k);
    ring_add_node(r, id, "r", "z");
    uint32_t mv = ring_claim(r);
    ok &= balanced(r) && mv == ring_owned_count(r, (size_t)k);
  }
  CHECK(ok, "q max/4 from one node: joins move exactly the newcomer's "
            "share");
  ring_free(r);
}

int main(int argc, char **argv) {
  uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 20240607ull;
  printf("# seed %" PRIu64 " (pass it as argv[1] to reproduce)\n", seed);
  test_hash();
  test_members();
  test_preflist_distinct();
  test_zones();
  test_regions();
  test_encoding(seed);
  test_determinism(seed);
  test_fresh_quality();
  test_balance_movement(seed);
  test_large();
  test_index(seed);
  test_deltas(seed);
  test_large_q(seed);
  return check_summary(NULL);
}
