/*
 * ring.c: the consistent-hash ring of kvorum: partitioner, members, claim,
 * preference lists and the msgpack encoding of a ring. See ring.h.
 *
 * Claim works in two phases. First a greedy hand-over: every node gets a
 * target count (floor or ceil of Q/M; the ceil goes to the nodes that
 * already own the most), and the node furthest below its target repeatedly
 * takes the unowned or over-full partition where it causes the fewest
 * neighbour conflicts within N-1 partitions (same node, then same zone, then
 * same region). Then a bounded repair pass swaps owners of pairs of
 * partitions when that lowers the conflict cost without moving more
 * partitions than the hand-over did. A join therefore moves exactly the
 * newcomer's share and a leave exactly the leaver's partitions (when the
 * ring was balanced before). Preference lists walk clockwise collecting
 * distinct nodes, so conflicts only cost spread, never correctness.
 *
 * Pure: depends on xxHash, mp.h and kv_err.h only; no I/O, no clock.
 */
#include "ring.h"

#include <stdlib.h>
#include <string.h>

#include "kv_err.h"
#include "partition.h"

/* Encoding format version (the first element of the encoded array). */
#define RING__FORMAT 1
/* Number of elements of the top-level encoded array. */
#define RING__FIELDS 7
/* Default replica count of a new ring. */
#define RING__N_DEFAULT 3
/* Conflict costs of two owners within N-1 partitions of each other. */
#define RING__COST_NODE 1000
#define RING__COST_ZONE 10
#define RING__COST_REGION 1
/* Bounds on the swap repair after the hand-over: passes over the ring and
 * swap evaluations in total (keeps claim fast for Q = RING_Q_MAX). */
#define RING__FIX_PASSES_MAX 8
#define RING__FIX_EVALS_MAX 4000000u

typedef struct ring__node {
  char id[RING_NAME_MAX];
  char region[RING_NAME_MAX];
  char zone[RING_NAME_MAX];
} ring__node;

struct ring {
  uint32_t q;
  uint64_t version;
  uint32_t n;
  size_t nnodes;
  size_t cap_nodes;
  ring__node *nodes; /* nnodes valid entries */
  int32_t *owner;    /* q entries: node index or -1 */
  size_t nregions;
  char region_name[RING_REGIONS_MAX][RING_NAME_MAX];
  uint32_t region_n[RING_REGIONS_MAX];
};

/* ---- hashing ---- */

uint64_t ring_hash(const void *key, size_t len) {
  return kv_key_hash(key, len);
}

uint32_t ring_partition_of_hash(uint32_t q, uint64_t hash) {
  return kv_partition_of_hash(q, hash);
}

uint32_t ring_partition(const ring *r, const void *key, size_t len) {
  return kv_partition(r->q, key, len);
}

/* ---- lifecycle ---- */

static bool ring__q_valid(uint64_t q) {
  return q >= 1 && q <= RING_Q_MAX && (q & (q - 1)) == 0;
}

ring *ring_new(uint32_t q) {
  if (!ring__q_valid(q))
    return NULL;
  ring *r = calloc(1, sizeof(*r));
  if (!r)
    return NULL;
  r->q = q;
  r->n = RING__N_DEFAULT;
  r->owner = malloc(sizeof(*r->owner) * q);
  if (!r->owner) {
    free(r);
    return NULL;
  }
  for (uint32_t p = 0; p < q; p++)
    r->owner[p] = -1;
  return r;
}

void ring_free(ring *r) {
  if (!r)
    return;
  free(r->nodes);
  free(r->owner);
  free(r);
}

ring *ring_clone(const ring *r) {
  if (!r)
    return NULL;
  ring *c = ring_new(r->q);
  if (!c)
    return NULL;
  free(c->owner);
  ring__node *nodes = r->cap_nodes ? malloc(sizeof(*nodes) * r->cap_nodes)
                                   : NULL;
  int32_t *owner = malloc(sizeof(*owner) * r->q);
  if ((r->cap_nodes && !nodes) || !owner) {
    free(nodes);
    free(owner);
    free(c);
    return NULL;
  }
  *c = *r;
  c->nodes = nodes;
  c->owner = owner;
  if (r->nnodes)
    memcpy(nodes, r->nodes, sizeof(*nodes) * r->nnodes);
  memcpy(owner, r->owner, sizeof(*owner) * r->q);
  return c;
}

uint32_t ring_q(const ring *r) { return r->q; }
uint64_t ring_version(const ring *r) { return r->version; }
void ring_set_version(ring *r, uint64_t v) { r->version = v; }

/* ---- members ---- */

size_t ring_node_count(const ring *r) { return r->nnodes; }

int ring_node_index(const ring *r, const char *id) {
  if (!id)
    return -1;
  for (size_t i = 0; i < r->nnodes; i++)
    if (strcmp(r->nodes[i].id, id) == 0)
      return (int)i;
  return -1;
}

const char *ring_node_id(const ring *r, size_t idx) {
  return idx < r->nnodes ? r->nodes[idx].id : NULL;
}

const char *ring_node_region(const ring *r, size_t idx) {
  return idx < r->nnodes ? r->nodes[idx].region : NULL;
}

const char *ring_node_zone(const ring *r, size_t idx) {
  return idx < r->nnodes ? r->nodes[idx].zone : NULL;
}

/* True when s (NULL reads as "") fits a name buffer. */
static bool ring__name_ok(const char *s) {
  return !s || strlen(s) < RING_NAME_MAX;
}

int ring_add_node(ring *r, const char *id, const char *region,
                  const char *zone) {
  if (!id || !*id || !ring__name_ok(id) || !ring__name_ok(region) ||
      !ring__name_ok(zone) || ring_node_index(r, id) >= 0)
    return KV_EINVAL;
  if (r->nnodes >= RING_NODES_MAX)
    return KV_EFULL;
  if (r->nnodes == r->cap_nodes) {
    size_t cap = r->cap_nodes ? r->cap_nodes * 2 : 8;
    if (cap > RING_NODES_MAX)
      cap = RING_NODES_MAX;
    ring__node *nodes = realloc(r->nodes, sizeof(*nodes) * cap);
    if (!nodes)
      return KV_ENOMEM;
    r->nodes = nodes;
    r->cap_nodes = cap;
  }
  ring__node *nd = &r->nodes[r->nnodes];
  memset(nd, 0, sizeof(*nd));
  strcpy(nd->id, id);
  strcpy(nd->region, region ? region : "");
  strcpy(nd->zone, zone ? zone : "");
  return (int)r->nnodes++;
}

int ring_remove_node(ring *r, const char *id) {
  int idx = ring_node_index(r, id);
  if (idx < 0)
    return KV_ENOTFOUND;
  memmove(&r->nodes[idx], &r->nodes[idx + 1],
          sizeof(*r->nodes) * (r->nnodes - (size_t)idx - 1));
  r->nnodes--;
  for (uint32_t p = 0; p < r->q; p++) {
    if (r->owner[p] == idx)
      r->owner[p] = -1;
    else if (r->owner[p] > idx)
      r->owner[p]--;
  }
  return 0;
}

/* ---- replication ---- */

void ring_set_n(ring *r, uint32_t n) {
  r->n = n < 1 ? 1 : n > RING_N_MAX ? RING_N_MAX : n;
}

uint32_t ring_n(const ring *r) { return r->n; }

int ring_set_region_replicas(ring *r, const char *region, uint32_t n) {
  if (!region || !*region || !ring__name_ok(region) || n > RING_N_MAX)
    return KV_EINVAL;
  for (size_t i = 0; i < r->nregions; i++) {
    if (strcmp(r->region_name[i], region) != 0)
      continue;
    if (n > 0) {
      r->region_n[i] = n;
      return 0;
    }
    for (size_t j = i + 1; j < r->nregions; j++) {
      memcpy(r->region_name[j - 1], r->region_name[j], RING_NAME_MAX);
      r->region_n[j - 1] = r->region_n[j];
    }
    r->nregions--;
    return 0;
  }
  if (n == 0)
    return 0;
  if (r->nregions >= RING_REGIONS_MAX)
    return KV_EFULL;
  strcpy(r->region_name[r->nregions], region);
  r->region_n[r->nregions] = n;
  r->nregions++;
  return 0;
}

size_t ring_region_count(const ring *r) { return r->nregions; }

const char *ring_region_name(const ring *r, size_t i) {
  return i < r->nregions ? r->region_name[i] : NULL;
}

uint32_t ring_region_replicas(const ring *r, size_t i) {
  return i < r->nregions ? r->region_n[i] : 0;
}

/* Total number of primaries a preference list aims for (before capping by
 * the nodes that exist). */
static uint32_t ring__replicas(const ring *r) {
  if (r->nregions == 0)
    return r->n;
  uint32_t sum = 0;
  for (size_t i = 0; i < r->nregions; i++)
    sum += r->region_n[i];
  return sum;
}

int ring_owner(const ring *r, uint32_t p) {
  return p < r->q ? r->owner[p] : -1;
}

uint32_t ring_owned_count(const ring *r, size_t idx) {
  uint32_t c = 0;
  for (uint32_t p = 0; p < r->q; p++)
    if (r->owner[p] >= 0 && (size_t)r->owner[p] == idx)
      c++;
  return c;
}

/* ---- claim ---- */

typedef struct ring__claim {
  ring *r;
  uint32_t q;
  uint32_t w; /* conflict window: partitions within w of each other */
  size_t m;
  int32_t *orig;       /* owners before the claim */
  uint32_t *count;     /* m: partitions owned now */
  uint32_t *target;    /* m: partitions each node should own */
  uint32_t *zone_of;   /* m: small id of (region, zone) */
  uint32_t *region_of; /* m: small id of region */
  size_t *rank;        /* m: position in the zone-interleaved order */
  uint32_t *dist;      /* q: scratch, distance to the receiver's partitions */
  bool zone_w;         /* the cluster has more than one zone */
  bool region_w;       /* spread over regions (plain n, >1 region) */
} ring__claim;

/* Conflict cost of owners a and b sitting within w partitions. */
static int ring__pair(const ring__claim *c, int32_t a, int32_t b) {
  if (a < 0 || b < 0)
    return 0;
  if (a == b)
    return RING__COST_NODE;
  int cost = 0;
  if (c->zone_w && c->zone_of[a] == c->zone_of[b])
    cost += RING__COST_ZONE;
  if (c->region_w && c->region_of[a] == c->region_of[b])
    cost += RING__COST_REGION;
  return cost;
}

/* Conflict cost of node a placed at p against the owners around p. */
static int ring__cost_at(const ring__claim *c, uint32_t p, int32_t a) {
  const int32_t *o = c->r->owner;
  int cost = 0;
  for (uint32_t d = 1; d <= c->w; d++) {
    cost += ring__pair(c, a, o[(p + d) % c->q]);
    cost += ring__pair(c, a, o[(p + c->q - d) % c->q]);
  }
  return cost;
}

static uint32_t ring__gap(uint32_t q, uint32_t a, uint32_t b) {
  uint32_t d = a > b ? a - b : b - a;
  return d < q - d ? d : q - d;
}

/* Cost of all pairs touching p or q (the pair p-q counted once). */
static int ring__touch(const ring__claim *c, uint32_t p, uint32_t q) {
  const int32_t *o = c->r->owner;
  int cost = ring__cost_at(c, p, o[p]) + ring__cost_at(c, q, o[q]);
  if (ring__gap(c->q, p, q) <= c->w)
    cost -= ring__pair(c, o[p], o[q]);
  return cost;
}

/* Fills the per-node tables: zone and region ids, the zone-interleaved
 * rank (nodes sorted by (position within zone, zone within region,
 * region)), current counts and targets. */
static void ring__claim_prepare(ring__claim *c) {
  ring *r = c->r;
  size_t m = c->m;
  uint32_t nzones = 0, nregions = 0;
  size_t key_a[RING_NODES_MAX], key_b[RING_NODES_MAX];
  uint32_t zone_in_region[RING_NODES_MAX];
  uint32_t zone_size[RING_NODES_MAX];
  uint32_t region_zones[RING_NODES_MAX];
  for (size_t i = 0; i < m; i++) {
    size_t j = 0;
    while (j < i && strcmp(r->nodes[j].region, r->nodes[i].region) != 0)
      j++;
    if (j == i) {
      c->region_of[i] = nregions;
      region_zones[nregions++] = 0;
    } else {
      c->region_of[i] = c->region_of[j];
    }
    j = 0;
    while (j < i && (strcmp(r->nodes[j].region, r->nodes[i].region) != 0 ||
                     strcmp(r->nodes[j].zone, r->nodes[i].zone) != 0))
      j++;
    if (j == i) {
      c->zone_of[i] = nzones;
      zone_size[nzones] = 0;
      zone_in_region[nzones] = region_zones[c->region_of[i]]++;
      nzones++;
    } else {
      c->zone_of[i] = c->zone_of[j];
    }
    /* Sort key: (k-th node of its zone, zone's place in its region,
     * region, index). */
    key_a[i] = zone_size[c->zone_of[i]]++;
    key_b[i] = (size_t)zone_in_region[c->zone_of[i]] * RING_NODES_MAX +
               c->region_of[i];
  }
  c->zone_w = nzones > 1;
  c->region_w = nregions > 1 && r->nregions == 0;

  for (size_t i = 0; i < m; i++)
    c->count[i] = 0;
  for (uint32_t p = 0; p < c->q; p++)
    if (r->owner[p] >= 0)
      c->count[r->owner[p]]++;

  /* order: insertion sort by (key_a, key_b, index); m is small. */
  size_t order[RING_NODES_MAX];
  for (size_t i = 0; i < m; i++) {
    size_t j = i;
    while (j > 0 && (key_a[order[j - 1]] > key_a[i] ||
                     (key_a[order[j - 1]] == key_a[i] &&
                      key_b[order[j - 1]] > key_b[i]))) {
      order[j] = order[j - 1];
      j--;
    }
    order[j] = i;
  }
  for (size_t i = 0; i < m; i++)
    c->rank[order[i]] = i;

  /* Targets: the q % m nodes owning the most (ties by rank) get one more
   * than q / m, so nodes already at the ceiling keep what they have. */
  uint32_t base = (uint32_t)(c->q / m), extra = (uint32_t)(c->q % m);
  size_t byc[RING_NODES_MAX];
  for (size_t i = 0; i < m; i++) {
    size_t v = order[i];
    size_t j = i;
    while (j > 0 && c->count[byc[j - 1]] < c->count[v]) {
      byc[j] = byc[j - 1];
      j--;
    }
    byc[j] = v;
  }
  for (size_t i = 0; i < m; i++)
    c->target[byc[i]] = base + (i < extra ? 1 : 0);
}

/* Distances from every partition to the nearest one node j owns (q when
 * it owns none), into c->dist. */
static void ring__distances(ring__claim *c, int32_t j) {
  const int32_t *o = c->r->owner;
  uint32_t q = c->q;
  for (uint32_t p = 0; p < q; p++)
    c->dist[p] = q;
  uint32_t last = q; /* distance since the last partition of j */
  for (uint32_t i = 0; i < 2 * q; i++) {
    uint32_t p = i % q;
    last = o[p] == j ? 0 : (last < q ? last + 1 : q);
    if (last < c->dist[p])
      c->dist[p] = last;
  }
  last = q;
  for (uint32_t i = 2 * q; i-- > 0;) {
    uint32_t p = i % q;
    last = o[p] == j ? 0 : (last < q ? last + 1 : q);
    if (last < c->dist[p])
      c->dist[p] = last;
  }
}

/* Hands unowned partitions and the surplus of over-full nodes to nodes
 * below target, one partition at a time. */
static void ring__claim_greedy(ring__claim *c) {
  ring *r = c->r;
  for (uint32_t step = 0; step < c->q; step++) {
    int32_t j = -1;
    uint32_t need = 0;
    for (size_t i = 0; i < c->m; i++) {
      if (c->count[i] >= c->target[i])
        continue;
      uint32_t d = c->target[i] - c->count[i];
      if (j < 0 || d > need || (d == need && c->rank[i] < c->rank[j])) {
        need = d;
        j = (int32_t)i;
      }
    }
    if (j < 0)
      return;
    ring__distances(c, j);
    /* Spacing beyond the node's fair gap earns nothing more, so a fresh
     * ring fills in order while a newcomer spreads its share evenly. */
    uint32_t gap = c->q / c->target[j];
    if (gap < c->w + 1)
      gap = c->w + 1;
    int64_t best_score = 0;
    uint32_t best_dist = 0, best = c->q;
    for (uint32_t p = 0; p < c->q; p++) {
      int32_t o = r->owner[p];
      if (o >= 0 && c->count[o] <= c->target[o])
        continue;
      int64_t score = ring__cost_at(c, p, j);
      if (o >= 0)
        score -= ring__cost_at(c, p, o);
      uint32_t dist = c->dist[p] < gap ? c->dist[p] : gap;
      if (best == c->q || score < best_score ||
          (score == best_score && dist > best_dist)) {
        best = p;
        best_score = score;
        best_dist = dist;
      }
    }
    if (best == c->q)
      return; /* cannot happen: deficit equals surplus plus unowned */
    if (r->owner[best] >= 0)
      c->count[r->owner[best]]--;
    r->owner[best] = j;
    c->count[j]++;
  }
}

/* Swaps owners of partition pairs while that lowers the conflict cost (or
 * keeps it and moves fewer partitions) and never moves more partitions
 * than the hand-over did. Bounded by RING__FIX_* limits. */
static void ring__claim_repair(ring__claim *c) {
  ring *r = c->r;
  int32_t *o = r->owner;
  uint32_t *moved = c->dist; /* reused: the partitions that moved */
  uint32_t nmoved = 0, evals = 0;
  bool stale = true;
  for (int pass = 0; pass < RING__FIX_PASSES_MAX; pass++) {
    bool improved = false;
    for (uint32_t p = 0; p < c->q; p++) {
      if (ring__cost_at(c, p, o[p]) == 0)
        continue;
      if (stale) {
        nmoved = 0;
        for (uint32_t x = 0; x < c->q; x++)
          if (o[x] != c->orig[x])
            moved[nmoved++] = x;
        stale = false;
      }
      /* A swap of two partitions that both stay put would move two more,
       * so an unmoved p only pairs with moved partitions. */
      bool pm = o[p] != c->orig[p];
      uint32_t ncand = pm ? c->q : nmoved;
      uint32_t best = c->q;
      int best_d = 0, best_mv = 0;
      for (uint32_t i = 0; i < ncand; i++) {
        uint32_t x = pm ? i : moved[i];
        if (x == p || o[x] == o[p])
          continue;
        bool xm = o[x] != c->orig[x];
        int mv = (o[x] != c->orig[p]) + (o[p] != c->orig[x]) - pm - xm;
        if (mv > 0)
          continue;
        if (++evals > RING__FIX_EVALS_MAX)
          return;
        int before = ring__touch(c, p, x);
        int32_t t = o[p];
        o[p] = o[x];
        o[x] = t;
        int d = ring__touch(c, p, x) - before;
        o[x] = o[p];
        o[p] = t;
        if (d < best_d || (d == best_d && mv < best_mv)) {
          best = x;
          best_d = d;
          best_mv = mv;
        }
      }
      if (best < c->q) {
        int32_t t = o[p];
        o[p] = o[best];
        o[best] = t;
        improved = true;
        stale = true;
      }
    }
    if (!improved)
      return;
  }
}

uint32_t ring_claim(ring *r) {
  uint32_t q = r->q;
  size_t m = r->nnodes;
  int32_t *orig = malloc(sizeof(*orig) * q);
  if (!orig)
    return 0;
  memcpy(orig, r->owner, sizeof(*orig) * q);
  if (m == 0) {
    for (uint32_t p = 0; p < q; p++)
      r->owner[p] = -1;
  } else {
    ring__claim c;
    memset(&c, 0, sizeof(c));
    c.r = r;
    c.q = q;
    c.m = m;
    c.orig = orig;
    uint32_t n = ring__replicas(r);
    c.w = n > 1 ? n - 1 : 0;
    if (c.w > (q - 1) / 2)
      c.w = (q - 1) / 2;
    uint32_t *u32 = malloc(sizeof(uint32_t) * (4 * m + q));
    size_t *rank = malloc(sizeof(size_t) * m);
    if (!u32 || !rank) {
      free(u32);
      free(rank);
      free(orig);
      return 0;
    }
    c.count = u32;
    c.target = u32 + m;
    c.zone_of = u32 + 2 * m;
    c.region_of = u32 + 3 * m;
    c.dist = u32 + 4 * m;
    c.rank = rank;
    ring__claim_prepare(&c);
    ring__claim_greedy(&c);
    ring__claim_repair(&c);
    free(u32);
    free(rank);
  }
  uint32_t moved = 0;
  for (uint32_t p = 0; p < q; p++)
    if (r->owner[p] != orig[p])
      moved++;
  free(orig);
  return moved;
}

/* ---- preference lists ---- */

/* Spread levels a primary may be picked at: a new region, a new zone,
 * any distinct node. */
enum { RING__PICK_REGION, RING__PICK_ZONE, RING__PICK_ANY, RING__PICK_LEVELS };

static bool ring__same_zone(const ring__node *a, const ring__node *b) {
  return strcmp(a->region, b->region) == 0 && strcmp(a->zone, b->zone) == 0;
}

/* Picks up to want nodes of walk (restricted to region when not NULL)
 * into chosen, preferring new regions (when spread_regions), then new
 * zones, then any node. Returns how many it picked. */
static size_t ring__pick(const ring *r, const size_t *walk, size_t m,
                         bool *chosen, const char *region, size_t want,
                         bool spread_regions) {
  size_t got = 0;
  size_t picked[RING_NODES_MAX];
  for (int level = spread_regions ? RING__PICK_REGION : RING__PICK_ZONE;
       level < RING__PICK_LEVELS && got < want; level++) {
    for (size_t i = 0; i < m && got < want; i++) {
      const ring__node *nd = &r->nodes[walk[i]];
      if (chosen[walk[i]] || (region && strcmp(nd->region, region) != 0))
        continue;
      bool clash = false;
      for (size_t k = 0; k < got && !clash; k++) {
        const ring__node *o = &r->nodes[picked[k]];
        if (level == RING__PICK_REGION)
          clash = strcmp(o->region, nd->region) == 0;
        else if (level == RING__PICK_ZONE)
          clash = ring__same_zone(o, nd);
      }
      if (clash)
        continue;
      chosen[walk[i]] = true;
      picked[got++] = walk[i];
    }
  }
  return got;
}

size_t ring_preflist(const ring *r, uint32_t p, size_t *out, size_t cap,
                     size_t *nprimary) {
  size_t m = r->nnodes;
  size_t walk[RING_NODES_MAX];
  bool seen[RING_NODES_MAX];
  bool chosen[RING_NODES_MAX];
  size_t nw = 0;
  if (nprimary)
    *nprimary = 0;
  if (m == 0)
    return 0;
  memset(seen, 0, sizeof(seen));
  memset(chosen, 0, sizeof(chosen));
  uint32_t start = p < r->q ? p : p % r->q;
  for (uint32_t i = 0; i < r->q && nw < m; i++) {
    int32_t o = r->owner[(start + i) % r->q];
    if (o >= 0 && !seen[o]) {
      seen[o] = true;
      walk[nw++] = (size_t)o;
    }
  }
  for (size_t i = 0; i < m; i++)
    if (!seen[i])
      walk[nw++] = i;

  size_t np = 0;
  if (r->nregions == 0) {
    np = ring__pick(r, walk, m, chosen, NULL, r->n, true);
  } else {
    for (size_t i = 0; i < r->nregions; i++)
      np += ring__pick(r, walk, m, chosen, r->region_name[i], r->region_n[i],
                       false);
  }
  size_t k = 0;
  for (size_t i = 0; i < m; i++)
    if (chosen[walk[i]] && k < cap)
      out[k++] = walk[i];
    else if (chosen[walk[i]])
      k++;
  for (size_t i = 0; i < m; i++)
    if (!chosen[walk[i]]) {
      if (k < cap)
        out[k] = walk[i];
      k++;
    }
  if (nprimary)
    *nprimary = np;
  return m;
}

/* ---- encoding ---- */

int ring_encode(const ring *r, kvbuf *out) {
  msgpack_packer pk;
  mp_packer_init(&pk, out);
  msgpack_pack_array(&pk, RING__FIELDS);
  msgpack_pack_uint32(&pk, RING__FORMAT);
  msgpack_pack_uint32(&pk, r->q);
  msgpack_pack_uint64(&pk, r->version);
  msgpack_pack_uint32(&pk, r->n);
  msgpack_pack_array(&pk, r->nnodes);
  for (size_t i = 0; i < r->nnodes; i++) {
    msgpack_pack_array(&pk, 3);
    mp_pack_cstr(&pk, r->nodes[i].id);
    mp_pack_cstr(&pk, r->nodes[i].region);
    mp_pack_cstr(&pk, r->nodes[i].zone);
  }
  msgpack_pack_array(&pk, r->q);
  for (uint32_t p = 0; p < r->q; p++)
    msgpack_pack_int32(&pk, r->owner[p]);
  msgpack_pack_array(&pk, r->nregions);
  for (size_t i = 0; i < r->nregions; i++) {
    msgpack_pack_array(&pk, 2);
    mp_pack_cstr(&pk, r->region_name[i]);
    msgpack_pack_uint32(&pk, r->region_n[i]);
  }
  return out->oom ? KV_ENOMEM : 0;
}

/* Reads a str into buf (RING_NAME_MAX bytes). Returns 0 or KV_EPROTO when
 * it is too long or holds a NUL byte. */
static int ring__read_name(mp_reader *rd, char *buf) {
  kv_slice s;
  if (mp_read_str(rd, &s))
    return KV_EPROTO;
  if (s.len >= RING_NAME_MAX || (s.len && memchr(s.ptr, 0, s.len)))
    return KV_EPROTO;
  if (s.len)
    memcpy(buf, s.ptr, s.len);
  buf[s.len] = '\0';
  return 0;
}

/* Reads the body after the format number into a new ring. */
static int ring__decode_body(mp_reader *rd, ring **out) {
  uint64_t q, version, n;
  uint32_t cnt;
  if (mp_read_uint(rd, &q) || !ring__q_valid(q) ||
      mp_read_uint(rd, &version) || mp_read_uint(rd, &n) || n < 1 ||
      n > RING_N_MAX)
    return KV_EPROTO;
  ring *r = ring_new((uint32_t)q);
  if (!r)
    return KV_ENOMEM;
  r->version = version;
  r->n = (uint32_t)n;
  int rc = KV_EPROTO;
  if (mp_read_array(rd, &cnt) || cnt > RING_NODES_MAX)
    goto fail;
  for (uint32_t i = 0; i < cnt; i++) {
    uint32_t f;
    char id[RING_NAME_MAX], region[RING_NAME_MAX], zone[RING_NAME_MAX];
    if (mp_read_array(rd, &f) || f != 3 || ring__read_name(rd, id) ||
        ring__read_name(rd, region) || ring__read_name(rd, zone))
      goto fail;
    int added = ring_add_node(r, id, region, zone);
    if (added < 0) {
      rc = added == KV_ENOMEM ? KV_ENOMEM : KV_EPROTO;
      goto fail;
    }
  }
  rc = KV_EPROTO;
  if (mp_read_array(rd, &cnt) || cnt != q)
    goto fail;
  for (uint32_t p = 0; p < cnt; p++) {
    int64_t o;
    if (mp_read_int(rd, &o) || o < -1 || o >= (int64_t)r->nnodes)
      goto fail;
    r->owner[p] = (int32_t)o;
  }
  if (mp_read_array(rd, &cnt) || cnt > RING_REGIONS_MAX)
    goto fail;
  for (uint32_t i = 0; i < cnt; i++) {
    uint32_t f, rn;
    char name[RING_NAME_MAX];
    if (mp_read_array(rd, &f) || f != 2 || ring__read_name(rd, name) ||
        mp_read_u32(rd, &rn) || rn < 1 || rn > RING_N_MAX)
      goto fail;
    for (size_t k = 0; k < r->nregions; k++)
      if (strcmp(r->region_name[k], name) == 0)
        goto fail;
    if (ring_set_region_replicas(r, name, rn))
      goto fail;
  }
  *out = r;
  return 0;
fail:
  ring_free(r);
  return rc;
}

int ring_decode(const uint8_t *buf, size_t len, ring **out) {
  mp_reader rd;
  uint32_t fields;
  uint64_t format;
  *out = NULL;
  mp_reader_init(&rd, buf, len);
  if (mp_read_array(&rd, &fields) || fields != RING__FIELDS ||
      mp_read_uint(&rd, &format) || format != RING__FORMAT)
    return KV_EPROTO;
  ring *r = NULL;
  int rc = ring__decode_body(&rd, &r);
  if (rc)
    return rc;
  if (mp_remaining(&rd) != 0) {
    ring_free(r);
    return KV_EPROTO;
  }
  *out = r;
  return 0;
}

bool ring_equal(const ring *a, const ring *b) {
  if (!a || !b)
    return a == b;
  if (a->q != b->q || a->version != b->version || a->n != b->n ||
      a->nnodes != b->nnodes || a->nregions != b->nregions)
    return false;
  for (size_t i = 0; i < a->nnodes; i++)
    if (strcmp(a->nodes[i].id, b->nodes[i].id) != 0 ||
        strcmp(a->nodes[i].region, b->nodes[i].region) != 0 ||
        strcmp(a->nodes[i].zone, b->nodes[i].zone) != 0)
      return false;
  for (size_t i = 0; i < a->nregions; i++)
    if (strcmp(a->region_name[i], b->region_name[i]) != 0 ||
        a->region_n[i] != b->region_n[i])
      return false;
  return memcmp(a->owner, b->owner, sizeof(*a->owner) * a->q) == 0;
}
