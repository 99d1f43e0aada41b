/*
 * fuzz_ring.c: libFuzzer target for the ring decoder (ring/ring.h):
 * ring_decode reads every ring that arrives by gossip and the one persisted
 * in the meta column family.
 *
 * Beyond "no crash, no leak" (ASan, UBSan) it checks, for a ring that
 * decodes:
 *   - the invariants ring_decode promises: q a power of two within
 *     RING_Q_MAX, at most RING_NODES_MAX nodes with NUL-terminated names
 *     shorter than RING_NAME_MAX, every owner -1 or a node index, owned
 *     counts that add up to the owned partitions;
 *   - ring_encode -> ring_decode gives a ring_equal ring, and encoding that
 *     again gives the same bytes; ring_clone is ring_equal;
 *   - preference lists of a few partitions: distinct node indices in range,
 *     no more primaries than nodes;
 *   - ring_claim on a clone leaves every partition owned by a present node
 *     when there are nodes.
 * Depends on: kvring (kvproto, xxHash).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_err.h"
#include "mp.h"
#include "ring.h"
#include "tests/fuzz/fz.h"


#define FZ_PREFLISTS 8 /* partitions whose preference list is checked */

static void check_name(const char *s) {
  FZ_CHECK(s != NULL);
  FZ_CHECK(memchr(s, 0, RING_NAME_MAX) != NULL);
}

static void check_invariants(const ring *r) {
  uint32_t q = ring_q(r);
  FZ_CHECK(q >= 1 && q <= RING_Q_MAX && (q & (q - 1)) == 0);
  size_t nodes = ring_node_count(r);
  FZ_CHECK(nodes <= RING_NODES_MAX);
  for (size_t i = 0; i < nodes; i++) {
    check_name(ring_node_id(r, i));
    check_name(ring_node_region(r, i));
    check_name(ring_node_zone(r, i));
    FZ_CHECK(ring_node_index(r, ring_node_id(r, i)) == (int)i);
  }
  FZ_CHECK(ring_region_count(r) <= RING_REGIONS_MAX);
  for (size_t i = 0; i < ring_region_count(r); i++)
    check_name(ring_region_name(r, i));

  uint32_t owned = 0;
  for (uint32_t p = 0; p < q; p++) {
    int o = ring_owner(r, p);
    FZ_CHECK(o >= -1 && o < (int)nodes);
    if (o >= 0)
      owned++;
  }
  uint32_t sum = 0;
  for (size_t i = 0; i < nodes; i++)
    sum += ring_owned_count(r, i);
  FZ_CHECK(sum == owned);

  FZ_CHECK(ring_partition(r, "key", 3) < q);
}

static void check_preflists(const ring *r) {
  size_t nodes = ring_node_count(r);
  size_t out[RING_NODES_MAX];
  uint32_t q = ring_q(r);
  for (uint32_t k = 0; k < FZ_PREFLISTS && k < q; k++) {
    uint32_t p = (uint32_t)(((uint64_t)k * q) / FZ_PREFLISTS);
    size_t nprimary = SIZE_MAX;
    size_t total = ring_preflist(r, p, out, RING_NODES_MAX, &nprimary);
    FZ_CHECK(total <= nodes);
    FZ_CHECK(nprimary <= total);
    for (size_t i = 0; i < total; i++) {
      FZ_CHECK(out[i] < nodes);
      for (size_t j = 0; j < i; j++)
        FZ_CHECK(out[i] != out[j]);
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ring *r = NULL;
  int rc = ring_decode(data, size, &r);
  FZ_CHECK(rc == 0 || rc == KV_EPROTO || rc == KV_ENOMEM);
  if (rc != 0)
    return 0;
  FZ_CHECK(r != NULL);
  check_invariants(r);

  kvbuf e1, e2;
  kvbuf_init(&e1);
  kvbuf_init(&e2);
  FZ_CHECK(ring_encode(r, &e1) == 0);
  ring *r2 = NULL;
  rc = ring_decode(e1.data, e1.len, &r2);
  if (rc != 0) {
    fprintf(stderr, "re-decode of an encoded ring failed: %s\n",
            kv_errname(rc));
    abort();
  }
  FZ_CHECK(ring_equal(r, r2) && ring_equal(r2, r));
  FZ_CHECK(ring_n(r) == ring_n(r2));
  FZ_CHECK(ring_region_count(r) == ring_region_count(r2));
  FZ_CHECK(ring_encode(r2, &e2) == 0);
  FZ_CHECK(e1.len == e2.len && memcmp(e1.data, e2.data, e1.len) == 0);

  check_preflists(r);

  ring *c = ring_clone(r);
  FZ_CHECK(c != NULL && ring_equal(r, c));
  ring_claim(c);
  check_invariants(c);
  if (ring_node_count(c) > 0)
    for (uint32_t p = 0; p < ring_q(c); p++)
      FZ_CHECK(ring_owner(c, p) >= 0);
  check_preflists(c);

  ring_free(c);
  ring_free(r2);
  ring_free(r);
  kvbuf_free(&e2);
  kvbuf_free(&e1);
  return 0;
}
