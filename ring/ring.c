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
 * Rings of more than RING__SCAN_Q_MAX partitions (up to RING_Q_MAX =
 * 65536): a fresh ring is striped over the nodes in rank order, and the
 * hand-over serves one receiver at a time from a heap of candidates
 * (ring__claim_batched: the same picks as the scan for a join, which is
 * O(q) per pick there), and the repair pass has a budget of partitions
 * looked at too; so claim stays under a second where the scan took
 * minutes (docs/scaling.md).
 *
 * Nodes are kept in the order they came (owners are indices) and, beside
 * them, sorted by id, so ring_node_index is a binary search: gossip asks
 * it for every member of tables of a thousand.
 *
 * Deltas (ring_delta_encode/apply): removed ids, appended nodes, and the
 * (partition, owner) pairs that differ after the removals renumbered the
 * rest, checked against the ring they apply to.
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
/* Rings up to this many partitions hand partitions over one scan per
 * partition (ring__claim_greedy); larger ones batch per receiver
 * (ring__claim_batched), which picks the same for a join and keeps claim
 * fast up to RING_Q_MAX. */
#define RING__SCAN_Q_MAX 4096u
/* Partitions the swap repair of a large ring looks at, in all. */
#define RING__FIX_SCANS_MAX 4000000u

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
  uint32_t *by_id;   /* nnodes node indices sorted by id (lookups) */
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
  free(r->by_id);
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
  uint32_t *by_id = r->cap_nodes ? malloc(sizeof(*by_id) * r->cap_nodes) : NULL;
  int32_t *owner = malloc(sizeof(*owner) * r->q);
  if ((r->cap_nodes && (!nodes || !by_id)) || !owner) {
    free(nodes);
    free(by_id);
    free(owner);
    free(c);
    return NULL;
  }
  *c = *r;
  c->nodes = nodes;
  c->by_id = by_id;
  c->owner = owner;
  if (r->nnodes) {
    memcpy(nodes, r->nodes, sizeof(*nodes) * r->nnodes);
    memcpy(by_id, r->by_id, sizeof(*by_id) * r->nnodes);
  }
  memcpy(owner, r->owner, sizeof(*owner) * r->q);
  return c;
}

uint32_t ring_q(const ring *r) { return r->q; }
uint64_t ring_version(const ring *r) { return r->version; }
void ring_set_version(ring *r, uint64_t v) { r->version = v; }

/* ---- members ---- */

size_t ring_node_count(const ring *r) { return r->nnodes; }

/* Position of id in by_id, or where it would go (*found false). */
static size_t ring__search(const ring *r, const char *id, bool *found) {
  size_t lo = 0, hi = r->nnodes;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(r->nodes[r->by_id[mid]].id, id);
    if (c == 0) {
      *found = true;
      return mid;
    }
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = false;
  return lo;
}

int ring_node_index(const ring *r, const char *id) {
  if (!id)
    return -1;
  bool found;
  size_t at = ring__search(r, id, &found);
  return found ? (int)r->by_id[at] : -1;
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
      !ring__name_ok(zone))
    return KV_EINVAL;
  bool found;
  size_t at = ring__search(r, id, &found);
  if (found)
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
    uint32_t *by_id = realloc(r->by_id, sizeof(*by_id) * cap);
    if (!by_id)
      return KV_ENOMEM; /* nodes grew; cap_nodes still says the old size */
    r->by_id = by_id;
    r->cap_nodes = cap;
  }
  ring__node *nd = &r->nodes[r->nnodes];
  memset(nd, 0, sizeof(*nd));
  strcpy(nd->id, id);
  strcpy(nd->region, region ? region : "");
  strcpy(nd->zone, zone ? zone : "");
  memmove(&r->by_id[at + 1], &r->by_id[at],
          sizeof(*r->by_id) * (r->nnodes - at));
  r->by_id[at] = (uint32_t)r->nnodes;
  return (int)r->nnodes++;
}

int ring_remove_node(ring *r, const char *id) {
  bool found;
  size_t at = id ? ring__search(r, id, &found) : 0;
  if (!id || !found)
    return KV_ENOTFOUND;
  int idx = (int)r->by_id[at];
  memmove(&r->nodes[idx], &r->nodes[idx + 1],
          sizeof(*r->nodes) * (r->nnodes - (size_t)idx - 1));
  memmove(&r->by_id[at], &r->by_id[at + 1],
          sizeof(*r->by_id) * (r->nnodes - at - 1));
  r->nnodes--;
  for (size_t i = 0; i < r->nnodes; i++)
    if (r->by_id[i] > (uint32_t)idx)
      r->by_id[i]--;
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
  size_t *tmp;         /* 4m: scratch of ring__claim_prepare */
  uint32_t *tmp32;     /* 3m: scratch of ring__claim_prepare */
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
  size_t *key_a = c->tmp, *key_b = c->tmp + m;
  uint32_t *zone_in_region = c->tmp32;
  uint32_t *zone_size = c->tmp32 + m;
  uint32_t *region_zones = c->tmp32 + 2 * m;
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
  size_t *order = c->tmp + 2 * m;
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
  size_t *byc = c->tmp + 3 * m;
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

/* The node furthest below its target (ties: the lower rank), or -1 when
 * every node has its target. */
static int32_t ring__receiver(const ring__claim *c) {
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
  return j;
}

/* The spacing of receiver j's partitions beyond which more distance earns
 * nothing, so a fresh ring fills in order while a newcomer spreads its
 * share evenly. */
static uint32_t ring__fair_gap(const ring__claim *c, int32_t j) {
  uint32_t gap = c->q / c->target[j];
  return gap < c->w + 1 ? c->w + 1 : gap;
}

/* Hands unowned partitions and the surplus of over-full nodes to nodes
 * below target, one partition at a time. */
static void ring__claim_greedy(ring__claim *c) {
  ring *r = c->r;
  for (uint32_t step = 0; step < c->q; step++) {
    int32_t j = ring__receiver(c);
    if (j < 0)
      return;
    ring__distances(c, j);
    uint32_t gap = ring__fair_gap(c, j);
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

/* One candidate partition of the batched hand-over: ordered by (score,
 * distance capped at the fair gap, partition) as ring__claim_greedy
 * picks. */
typedef struct ring__cand {
  int64_t score;
  uint32_t dcap;
  uint32_t p;
} ring__cand;

static bool ring__cand_before(const ring__cand *a, const ring__cand *b) {
  if (a->score != b->score)
    return a->score < b->score;
  if (a->dcap != b->dcap)
    return a->dcap > b->dcap;
  return a->p < b->p;
}

typedef struct ring__heap {
  ring__cand *v;
  size_t n, cap;
} ring__heap;

static void ring__heap_down(ring__heap *h, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < h->n && ring__cand_before(&h->v[l], &h->v[m]))
      m = l;
    if (r < h->n && ring__cand_before(&h->v[r], &h->v[m]))
      m = r;
    if (m == i)
      return;
    ring__cand t = h->v[i];
    h->v[i] = h->v[m];
    h->v[m] = t;
    i = m;
  }
}

static int ring__heap_push(ring__heap *h, ring__cand c) {
  if (h->n == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 1024;
    ring__cand *v = realloc(h->v, sizeof(*v) * cap);
    if (!v)
      return KV_ENOMEM;
    h->v = v;
    h->cap = cap;
  }
  size_t i = h->n++;
  while (i > 0 && ring__cand_before(&c, &h->v[(i - 1) / 2])) {
    h->v[i] = h->v[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  h->v[i] = c;
  return 0;
}

/* Whether partition p may go to receiver j: unowned, or its owner has more
 * than its target. */
static bool ring__is_cand(const ring__claim *c, uint32_t p, int32_t j) {
  int32_t o = c->r->owner[p];
  return o != j && (o < 0 || c->count[o] > c->target[o]);
}

/* The key of p for receiver j (as ring__claim_greedy scores it). */
static ring__cand ring__key(const ring__claim *c, uint32_t p, int32_t j,
                            uint32_t gap) {
  int32_t o = c->r->owner[p];
  int64_t score = ring__cost_at(c, p, j);
  if (o >= 0)
    score -= ring__cost_at(c, p, o);
  uint32_t d = c->dist[p] < gap ? c->dist[p] : gap;
  return (ring__cand){.score = score, .dcap = d, .p = p};
}

/* A fresh large ring (no partition owned yet): partition p goes to the
 * node of rank p mod M, which is balanced (the first Q mod M ranks, whose
 * targets are the ceiling, get one more) and, since ranks interleave zones
 * and regions, spreads every window of partitions over them as far as the
 * nodes allow; the repair pass mends the seam where the ring wraps.
 * Returns false (nothing done) when some partition is owned. */
static bool ring__claim_stripe(ring__claim *c) {
  for (uint32_t p = 0; p < c->q; p++)
    if (c->r->owner[p] >= 0)
      return false;
  size_t *by_rank = c->tmp; /* prepare's scratch is free again */
  for (size_t i = 0; i < c->m; i++)
    by_rank[c->rank[i]] = i;
  for (uint32_t p = 0; p < c->q; p++) {
    size_t i = by_rank[p % c->m];
    c->r->owner[p] = (int32_t)i;
    c->count[i]++;
  }
  return true;
}

/*
 * The hand-over for large rings (q > RING__SCAN_Q_MAX), where one scan of
 * every partition per moved partition would cost O(q^2): the receivers are
 * served one at a time, each with its whole deficit, from a heap of
 * candidates ordered as ring__claim_greedy orders them. Keys only get
 * worse as the receiver gains partitions (distances shrink), except around
 * a partition that changed hands, whose neighbours are pushed again, so a
 * popped entry whose key is still exact is the best choice. With one
 * receiver (a join) the picks are exactly ring__claim_greedy's; with
 * several (a fresh ring, a leave) the order of receivers differs, not the
 * balance or the movement. O(receivers * q log q).
 */
static void ring__claim_batched(ring__claim *c) {
  ring *r = c->r;
  ring__heap h = {0};
  for (;;) {
    int32_t j = ring__receiver(c);
    if (j < 0)
      break;
    ring__distances(c, j);
    uint32_t gap = ring__fair_gap(c, j);
    h.n = 0;
    for (uint32_t p = 0; p < c->q; p++)
      if (ring__is_cand(c, p, j) &&
          ring__heap_push(&h, ring__key(c, p, j, gap)))
        goto out;
    while (c->count[j] < c->target[j] && h.n > 0) {
      ring__cand top = h.v[0];
      h.v[0] = h.v[--h.n];
      ring__heap_down(&h, 0);
      if (!ring__is_cand(c, top.p, j))
        continue;
      ring__cand now = ring__key(c, top.p, j, gap);
      if (now.score != top.score || now.dcap != top.dcap) {
        if (ring__heap_push(&h, now))
          goto out;
        continue;
      }
      uint32_t p = top.p;
      if (r->owner[p] >= 0)
        c->count[r->owner[p]]--;
      r->owner[p] = j;
      c->count[j]++;
      /* Distances to j shrink around p (only up to gap: keys cap them). */
      c->dist[p] = 0;
      for (uint32_t d = 1; d < gap && d < c->q; d++) {
        uint32_t a = (p + d) % c->q, b = (p + c->q - d) % c->q;
        bool more = false;
        if (c->dist[a] > d) {
          c->dist[a] = d;
          more = true;
        }
        if (c->dist[b] > d) {
          c->dist[b] = d;
          more = true;
        }
        if (!more)
          break;
      }
      /* Conflict costs changed within w of p. */
      for (uint32_t d = 1; d <= c->w; d++) {
        uint32_t a = (p + d) % c->q, b = (p + c->q - d) % c->q;
        if (ring__is_cand(c, a, j) &&
            ring__heap_push(&h, ring__key(c, a, j, gap)))
          goto out;
        if (b != a && ring__is_cand(c, b, j) &&
            ring__heap_push(&h, ring__key(c, b, j, gap)))
          goto out;
      }
    }
    if (c->count[j] < c->target[j])
      break; /* cannot happen: deficit equals surplus plus unowned */
  }
out:
  free(h.v);
}

/* Swaps owners of partition pairs while that lowers the conflict cost (or
 * keeps it and moves fewer partitions) and never moves more partitions
 * than the hand-over did. Bounded by RING__FIX_* limits. */
static void ring__claim_repair(ring__claim *c) {
  ring *r = c->r;
  int32_t *o = r->owner;
  uint32_t *moved = c->dist; /* reused: the partitions that moved */
  uint32_t nmoved = 0, evals = 0;
  /* Large rings also bound the partitions looked at (most of them cannot
   * swap: same owner, or more movement). */
  uint64_t scans = 0;
  uint64_t scans_max =
      c->q > RING__SCAN_Q_MAX ? RING__FIX_SCANS_MAX : UINT64_MAX;
  bool stale = true;
  for (int pass = 0; pass < RING__FIX_PASSES_MAX; pass++) {
    bool improved = false;
    for (uint32_t p = 0; p < c->q; p++) {
      if (ring__cost_at(c, p, o[p]) == 0)
        continue;
      if (stale) {
        scans += c->q;
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
        if (++scans > scans_max)
          return;
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
    uint32_t *u32 = malloc(sizeof(uint32_t) * (7 * m + q));
    size_t *rank = malloc(sizeof(size_t) * 5 * m);
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
    c.tmp32 = u32 + 4 * m;
    c.dist = u32 + 7 * m;
    c.rank = rank;
    c.tmp = rank + m;
    ring__claim_prepare(&c);
    if (q <= RING__SCAN_Q_MAX)
      ring__claim_greedy(&c);
    else if (!ring__claim_stripe(&c))
      ring__claim_batched(&c);
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
  memset(seen, 0, sizeof(seen[0]) * m);
  memset(chosen, 0, sizeof(chosen[0]) * m);
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

/* A node as encodings hold it: [id, region, zone]. */
static void ring__pack_node(msgpack_packer *pk, const ring__node *nd) {
  msgpack_pack_array(pk, 3);
  mp_pack_cstr(pk, nd->id);
  mp_pack_cstr(pk, nd->region);
  mp_pack_cstr(pk, nd->zone);
}

int ring_encode(const ring *r, kvbuf *out) {
  msgpack_packer pk;
  mp_packer_init(&pk, out);
  msgpack_pack_array(&pk, RING__FIELDS);
  msgpack_pack_uint32(&pk, RING__FORMAT);
  msgpack_pack_uint32(&pk, r->q);
  msgpack_pack_uint64(&pk, r->version);
  msgpack_pack_uint32(&pk, r->n);
  msgpack_pack_array(&pk, r->nnodes);
  for (size_t i = 0; i < r->nnodes; i++)
    ring__pack_node(&pk, &r->nodes[i]);
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

/* Reads a node ([id, region, zone]) into nd. Returns 0 or KV_EPROTO. */
static int ring__read_node(mp_reader *rd, ring__node *nd) {
  uint32_t f;
  if (mp_read_array(rd, &f) || f != 3 || ring__read_name(rd, nd->id) ||
      ring__read_name(rd, nd->region) || ring__read_name(rd, nd->zone))
    return KV_EPROTO;
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
    ring__node nd;
    if (ring__read_node(rd, &nd))
      goto fail;
    int added = ring_add_node(r, nd.id, nd.region, nd.zone);
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

/* ---- deltas ---- */

/* Delta format version (the first element of an encoded delta). */
#define RING__DELTA_FORMAT 1
/* Number of elements of the top-level encoded delta. */
#define RING__DELTA_FIELDS 7

/* True when a and b replicate alike: same n, same regions and counts. */
static bool ring__same_replication(const ring *a, const ring *b) {
  if (a->n != b->n || a->nregions != b->nregions)
    return false;
  for (size_t i = 0; i < a->nregions; i++)
    if (strcmp(a->region_name[i], b->region_name[i]) != 0 ||
        a->region_n[i] != b->region_n[i])
      return false;
  return true;
}

int ring_delta_encode(const ring *from, const ring *to, kvbuf *out) {
  if (from->q != to->q || !ring__same_replication(from, to))
    return KV_EINVAL;
  ring *tmp = ring_clone(from);
  if (!tmp)
    return KV_ENOMEM;
  int rc = 0;
  msgpack_packer pk;
  mp_packer_init(&pk, out);
  msgpack_pack_array(&pk, RING__DELTA_FIELDS);
  msgpack_pack_uint32(&pk, RING__DELTA_FORMAT);
  msgpack_pack_uint32(&pk, from->q);
  msgpack_pack_uint64(&pk, from->version);
  msgpack_pack_uint64(&pk, to->version);
  /* Removed: in from, not in to (ids of from, in its order). */
  uint32_t nremoved = 0;
  for (size_t i = 0; i < from->nnodes; i++)
    nremoved += ring_node_index(to, from->nodes[i].id) < 0;
  msgpack_pack_array(&pk, nremoved);
  for (size_t i = 0; i < from->nnodes; i++)
    if (ring_node_index(to, from->nodes[i].id) < 0) {
      mp_pack_cstr(&pk, from->nodes[i].id);
      ring_remove_node(tmp, from->nodes[i].id);
    }
  /* Added: in to, not in from, in to's order; appending them to what is
   * left must give to's order (a claimant only removes and appends). */
  size_t kept = tmp->nnodes;
  if (to->nnodes < kept) {
    rc = KV_EINVAL;
    goto done;
  }
  for (size_t i = 0; i < kept; i++)
    if (strcmp(tmp->nodes[i].id, to->nodes[i].id) != 0 ||
        strcmp(tmp->nodes[i].region, to->nodes[i].region) != 0 ||
        strcmp(tmp->nodes[i].zone, to->nodes[i].zone) != 0) {
      rc = KV_EINVAL;
      goto done;
    }
  msgpack_pack_array(&pk, (uint32_t)(to->nnodes - kept));
  for (size_t i = kept; i < to->nnodes; i++) {
    if (ring_node_index(from, to->nodes[i].id) >= 0) {
      rc = KV_EINVAL; /* kept, yet not where it was */
      goto done;
    }
    ring__pack_node(&pk, &to->nodes[i]);
  }
  /* Owners that differ once removals renumbered the rest: pairs. */
  uint32_t changed = 0;
  for (uint32_t p = 0; p < to->q; p++)
    changed += tmp->owner[p] != to->owner[p];
  msgpack_pack_array(&pk, 2 * changed);
  for (uint32_t p = 0; p < to->q; p++)
    if (tmp->owner[p] != to->owner[p]) {
      msgpack_pack_uint32(&pk, p);
      msgpack_pack_int32(&pk, to->owner[p]);
    }
  if (out->oom)
    rc = KV_ENOMEM;
done:
  ring_free(tmp);
  return rc;
}

int ring_delta_apply(const ring *from, const uint8_t *buf, size_t len,
                     ring **out) {
  *out = NULL;
  mp_reader rd;
  uint32_t fields, cnt;
  uint64_t format, q, vfrom, vto;
  mp_reader_init(&rd, buf, len);
  if (mp_read_array(&rd, &fields) || fields != RING__DELTA_FIELDS ||
      mp_read_uint(&rd, &format) || format != RING__DELTA_FORMAT ||
      mp_read_uint(&rd, &q) || q != from->q || mp_read_uint(&rd, &vfrom) ||
      vfrom != from->version || mp_read_uint(&rd, &vto))
    return KV_EPROTO;
  ring *r = ring_clone(from);
  if (!r)
    return KV_ENOMEM;
  int rc = KV_EPROTO;
  char id[RING_NAME_MAX];
  if (mp_read_array(&rd, &cnt) || cnt > from->nnodes)
    goto fail;
  for (uint32_t i = 0; i < cnt; i++)
    if (ring__read_name(&rd, id) || ring_remove_node(r, id) != 0)
      goto fail;
  if (mp_read_array(&rd, &cnt) || cnt > RING_NODES_MAX)
    goto fail;
  for (uint32_t i = 0; i < cnt; i++) {
    ring__node nd;
    if (ring__read_node(&rd, &nd))
      goto fail;
    int added = ring_add_node(r, nd.id, nd.region, nd.zone);
    if (added < 0) {
      rc = added == KV_ENOMEM ? KV_ENOMEM : KV_EPROTO;
      goto fail;
    }
  }
  if (mp_read_array(&rd, &cnt) || cnt % 2 != 0 || cnt / 2 > r->q)
    goto fail;
  for (uint32_t i = 0; i < cnt / 2; i++) {
    uint64_t p;
    int64_t o;
    if (mp_read_uint(&rd, &p) || p >= r->q || mp_read_int(&rd, &o) || o < -1 ||
        o >= (int64_t)r->nnodes)
      goto fail;
    r->owner[p] = (int32_t)o;
  }
  if (mp_remaining(&rd) != 0)
    goto fail;
  r->version = vto;
  *out = r;
  return 0;
fail:
  ring_free(r);
  return rc;
}
