/*
 * cache.c: the object cache (see cache.h). Open addressing with linear
 * probing and backward-shift deletion, so lookups never walk tombstones;
 * the table keeps at most half its slots used. Eviction is CLOCK over the
 * slots. Every limit is the byte budget given at creation.
 */
#include "cache.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "kv_err.h"

/* Per-entry overhead counted against the budget (slot plus allocator). */
#define KVCACHE_ENTRY_OVERHEAD 48u

typedef struct kvcache_slot {
  uint64_t hash;
  uint8_t *mem; /* NULL: empty; key then value */
  uint32_t klen;
  uint32_t vlen;
  bool ref;     /* read since the hand last passed */
} kvcache_slot;

struct kvcache {
  kvcache_slot *slots;
  size_t cap; /* power of two */
  size_t used;
  size_t bytes;
  size_t budget;
  size_t hand;
  uint64_t hits, misses, evictions;
};

kvcache *kvcache_new(size_t budget) {
  kvcache *c = calloc(1, sizeof(*c));
  if (!c)
    return NULL;
  c->cap = KVCACHE_SLOTS_MIN;
  c->slots = calloc(c->cap, sizeof(*c->slots));
  if (!c->slots) {
    free(c);
    return NULL;
  }
  c->budget = budget;
  return c;
}

void kvcache_free(kvcache *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->cap; i++)
    free(c->slots[i].mem);
  free(c->slots);
  free(c);
}

static size_t kvcache__cost(const kvcache_slot *e) {
  return (size_t)e->klen + e->vlen + KVCACHE_ENTRY_OVERHEAD;
}

/* The slot holding key, or the empty slot where it would go. */
static size_t kvcache__find(const kvcache *c, uint64_t h, const uint8_t *key,
                            size_t klen) {
  size_t i = (size_t)h & (c->cap - 1);
  for (;;) {
    const kvcache_slot *e = &c->slots[i];
    if (!e->mem || (e->hash == h && e->klen == klen &&
                    memcmp(e->mem, key, klen) == 0))
      return i;
    i = (i + 1) & (c->cap - 1);
  }
}

/* Empties slot i and shifts the following run back so no probe breaks. */
static void kvcache__remove_at(kvcache *c, size_t i) {
  c->bytes -= kvcache__cost(&c->slots[i]);
  free(c->slots[i].mem);
  c->used--;
  size_t mask = c->cap - 1;
  size_t j = i;
  for (;;) {
    j = (j + 1) & mask;
    kvcache_slot *e = &c->slots[j];
    if (!e->mem)
      break;
    size_t home = (size_t)e->hash & mask;
    /* Move e back to i when i lies cyclically in [home, j). */
    if (((j - home) & mask) >= ((j - i) & mask)) {
      c->slots[i] = *e;
      i = j;
    }
  }
  memset(&c->slots[i], 0, sizeof(c->slots[i]));
}

static int kvcache__grow(kvcache *c) {
  size_t cap = c->cap * 2;
  kvcache_slot *n = calloc(cap, sizeof(*n));
  if (!n)
    return KV_ENOMEM;
  for (size_t i = 0; i < c->cap; i++) {
    kvcache_slot *e = &c->slots[i];
    if (!e->mem)
      continue;
    size_t k = (size_t)e->hash & (cap - 1);
    while (n[k].mem)
      k = (k + 1) & (cap - 1);
    n[k] = *e;
  }
  free(c->slots);
  c->slots = n;
  c->cap = cap;
  c->hand = 0;
  return 0;
}

/* Evicts in CLOCK order until the budget holds. */
static void kvcache__evict(kvcache *c) {
  size_t spins = 0;
  while (c->bytes > c->budget && c->used && spins < 4 * c->cap) {
    size_t i = c->hand;
    c->hand = (c->hand + 1) & (c->cap - 1);
    spins++;
    kvcache_slot *e = &c->slots[i];
    if (!e->mem)
      continue;
    if (e->ref) {
      e->ref = false;
      continue;
    }
    kvcache__remove_at(c, i);
    c->evictions++;
    /* The shift may have moved another entry into slot i: look again. */
    c->hand = i;
  }
}

bool kvcache_get(kvcache *c, const uint8_t *key, size_t klen,
                 const uint8_t **val, size_t *vlen) {
  if (!c->used) {
    c->misses++;
    return false;
  }
  uint64_t h = XXH3_64bits(key, klen);
  kvcache_slot *e = &c->slots[kvcache__find(c, h, key, klen)];
  if (!e->mem) {
    c->misses++;
    return false;
  }
  e->ref = true;
  *val = e->mem + e->klen;
  *vlen = e->vlen;
  c->hits++;
  return true;
}

int kvcache_put_owned(kvcache *c, uint8_t *mem, size_t klen, size_t vlen) {
  if (klen + vlen + KVCACHE_ENTRY_OVERHEAD > c->budget ||
      klen > UINT32_MAX || vlen > UINT32_MAX) {
    kvcache_del(c, mem, klen);
    free(mem);
    return 0;
  }
  uint64_t h = XXH3_64bits(mem, klen);
  size_t i = kvcache__find(c, h, mem, klen);
  kvcache_slot *e = &c->slots[i];
  if (e->mem) {
    c->bytes -= kvcache__cost(e);
    free(e->mem);
  } else {
    if ((c->used + 1) * 2 > c->cap) {
      if (kvcache__grow(c)) {
        free(mem);
        return KV_ENOMEM;
      }
      i = kvcache__find(c, h, mem, klen);
      e = &c->slots[i];
    }
    c->used++;
  }
  e->hash = h;
  e->mem = mem;
  e->klen = (uint32_t)klen;
  e->vlen = (uint32_t)vlen;
  e->ref = true;
  c->bytes += kvcache__cost(e);
  kvcache__evict(c);
  return 0;
}

int kvcache_put(kvcache *c, const uint8_t *key, size_t klen,
                const uint8_t *val, size_t vlen) {
  if (klen + vlen + KVCACHE_ENTRY_OVERHEAD > c->budget) {
    kvcache_del(c, key, klen);
    return 0;
  }
  uint8_t *mem = malloc(klen + vlen + 1);
  if (!mem) {
    kvcache_del(c, key, klen);
    return KV_ENOMEM;
  }
  memcpy(mem, key, klen);
  if (vlen)
    memcpy(mem + klen, val, vlen);
  return kvcache_put_owned(c, mem, klen, vlen);
}

void kvcache_del(kvcache *c, const uint8_t *key, size_t klen) {
  if (!c->used)
    return;
  uint64_t h = XXH3_64bits(key, klen);
  size_t i = kvcache__find(c, h, key, klen);
  if (c->slots[i].mem)
    kvcache__remove_at(c, i);
}

void kvcache_del_prefix(kvcache *c, const uint8_t *prefix, size_t plen) {
  for (size_t i = 0; i < c->cap;) {
    kvcache_slot *e = &c->slots[i];
    if (e->mem && e->klen >= plen && memcmp(e->mem, prefix, plen) == 0) {
      kvcache__remove_at(c, i); /* slot i may now hold a shifted entry */
      continue;
    }
    i++;
  }
}

void kvcache_stats_get(const kvcache *c, kvcache_stats *out) {
  out->entries = c->used;
  out->bytes = c->bytes;
  out->budget = c->budget;
  out->hits = c->hits;
  out->misses = c->misses;
  out->evictions = c->evictions;
}
