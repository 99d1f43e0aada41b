/*
 * gossip.c: membership, phi-accrual failure detection and ring agreement
 * as a sans-IO state machine. See gossip.h for the design and the wire
 * format.
 *
 * The member table is kept sorted by id, with small arrays beside it that
 * every sync touches (the low byte of each heartbeat, when each member was
 * last known alive, when each alive member's phi reaches the threshold),
 * so that applying a vector of 1000 members or checking their liveness
 * walks a few kilobytes instead of the whole table.
 *
 * Depends on: ring.h (ring state, its encoding and deltas), mp.h
 * (msgpack), phi.h (the failure detector), rng.h (splitmix64), kv_err.h,
 * xxHash (ring and member hashes).
 */
#include "gossip.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "kv_err.h"
#include "kv_str.h"
#include "mp.h"
#include "phi.h"
#include "rng.h"

#define GOSSIP__HEARTBEAT_FIELDS 5
#define GOSSIP__DIGEST_FIELDS 8
#define GOSSIP__SYNC_FIELDS 12
#define GOSSIP__ENTRY_FIELDS 11     /* what this node sends */
#define GOSSIP__ENTRY_FIELDS_MIN 10 /* what it takes: no software version */
#define GOSSIP__SEED_SLOTS (GOSSIP_SEEDS_MAX + 1) /* + the gossip_join seed */
#define GOSSIP__TABLE_MIN 16     /* first capacity of the member table */
#define GOSSIP__AGE_UNKNOWN 0xff /* a vector's age "no news" (or too old) */
/* Tables up to this are walked to pick peers and to count the others;
 * larger ones are sampled and always use fan-out. */
#define GOSSIP__WALK_MAX (4 * GOSSIP_DIRECT_MAX)

/* Asks for the cache line at p ahead of its use (a hint; nothing else),
 * GOSSIP__AHEAD items ahead in a loop. */
#define GOSSIP__AHEAD 8
#if defined(__GNUC__) || defined(__clang__)
#define GOSSIP__PREFETCH(p) __builtin_prefetch(p)
#else
#define GOSSIP__PREFETCH(p) ((void)(p))
#endif

enum {
  GOSSIP__MSG_HEARTBEAT = 1, /* taken, no longer sent */
  GOSSIP__MSG_DIGEST = 2,
  GOSSIP__MSG_SYNC = 3,
};

/* Flags of a sync (gossip.h). */
enum {
  GOSSIP__F_REPLY = 1,     /* answer with a sync of your own */
  GOSSIP__F_MISMATCH = 2,  /* the tables differed: my recent entries */
  GOSSIP__F_WANT_RING = 4, /* your ring is better: deltas from mine */
  GOSSIP__F_WANT_FULL = 8, /* ... or the whole ring: a delta did not fit */
  GOSSIP__F_MISMATCH_AGAIN = 16, /* ... and yours did not help: mine */
};

/* The ring part of a sync: none, deltas from a base, the whole ring. */
enum { GOSSIP__RING_NONE = -1, GOSSIP__RING_FULL = 0, GOSSIP__RING_DELTAS = 1 };

/* One member as this node keeps it. */
typedef struct gossip__member {
  gossip_member pub;
  uint64_t status_version;
  uint64_t status_incarnation; /* the member's incarnation the status is for */
  uint64_t hash; /* gossip__entry_hash: its term of members_hash */
} gossip__member;

/* What this node last heard of a member, beside the table (gossip.news):
 * only an arrival of newer news touches it. */
typedef struct gossip__news {
  /* The heartbeat of the newest news of it whose time we know (a message
   * from it, or a vector); gossip.hb8 holds its low byte, gossip.alive_at_ms
   * its time. Relayed entries may carry a higher pub.heartbeat, but not
   * when it was sent. */
  uint64_t hb;
  gossip_phi phi;
} gossip__news;

/* One member as a message carries it (decoded, not yet applied). */
typedef struct gossip__entry {
  char id[RING_NAME_MAX];
  char region[RING_NAME_MAX];
  char zone[RING_NAME_MAX];
  char client_addr[GOSSIP_ADDR_MAX];
  char peer_addr[GOSSIP_ADDR_MAX];
  uint64_t incarnation;
  uint64_t heartbeat;
  uint64_t status_version;
  uint64_t status_incarnation;
  gossip_status status;
  char version[GOSSIP_VERSION_MAX]; /* "" when the sender has none */
} gossip__entry;

/* A decoded message; entries live in gossip.scratch, byte ranges point
 * into the payload. */
typedef struct gossip__msg {
  int kind;
  gossip__entry sender;
  uint64_t ring_version;
  char claimant[RING_NAME_MAX];
  bool want_reply; /* digest */
  uint32_t nentries;
  ring *ring; /* a whole ring, owned by the message until adopted */
  /* XXH3 of the sender's ring encoding (0: no ring, or a heartbeat, which
   * does not say). */
  uint64_t ring_hash;
  /* sync only */
  uint32_t flags;
  uint64_t members_hash;
  uint64_t age_unit_ms;
  kv_slice vector; /* (heartbeat byte, age) per member; ptr NULL: none */
  uint64_t base_version, base_hash; /* of the deltas */
  uint32_t ndeltas;
  kv_slice deltas[GOSSIP_RING_HISTORY];
} gossip__msg;

/* One ring change as this node adopted it: the delta and the rings it
 * joins, by (version, hash of the encoding). */
typedef struct gossip__delta {
  uint64_t from_version, from_hash, to_version, to_hash;
  kvbuf enc;
} gossip__delta;

/* A member whose entry (apart from its heartbeat) changed lately. */
typedef struct gossip__recent {
  char id[RING_NAME_MAX];
  uint64_t at_ms;
} gossip__recent;

struct gossip {
  gossip_io io;
  char seeds[GOSSIP__SEED_SLOTS][GOSSIP_ADDR_MAX];
  size_t nseeds;
  uint32_t q, n, interval_ms, fanout;
  double phi_threshold;
  double phi_y; /* gossip_phi_y(phi_threshold) */
  uint64_t rng;
  uint64_t now_ms; /* the last time a caller gave */

  ring *ring;
  char claimant[RING_NAME_MAX]; /* who made this ring version; "" unknown */
  kvbuf ring_enc;               /* ring_encode(ring), empty for version 0 */
  uint64_t ring_hash;           /* XXH3 of ring_enc; 0 when it is empty */
  bool ring_report;             /* ring_changed not yet called for ring */
  gossip__delta hist[GOSSIP_RING_HISTORY]; /* a chain, oldest first */
  size_t nhist;

  /* The table, sorted by id, and beside it per member: the low byte of
   * the heartbeat of its news, when its phi reaches the threshold
   * (UINT64_MAX while it is down), the time its news says, and its news.
   * cap slots each, grown up to GOSSIP_MEMBERS_MAX. A sync reads the
   * first three of every member and the news only of members it brings
   * news of.
   *
   * alive_at_ms 0 means never heard: no evidence it ran since we learned
   * of it (a message from it, or news with a newer heartbeat). A member
   * known only from another node's table is not alive until then: that
   * table may be stale (a node removed, and dead, while this one was
   * down), and a dead node taken for alive would be put back into the
   * ring. */
  gossip__member *members;
  uint64_t *idkey; /* gossip__key of each id: searches stay in here */
  uint8_t *hb8;
  uint64_t *alive_at_ms;
  gossip__news *news;
  uint64_t *suspect_ms; /* (so: alive exactly when not UINT64_MAX) */
  size_t nmembers, cap;
  size_t self;
  uint64_t members_hash;    /* XOR of every member's hash */
  uint64_t next_suspect_ms; /* no alive member's deadline is before this */
  gossip__recent recent[GOSSIP_RECENT_MAX]; /* newest first */
  size_t nrecent;

  uint64_t next_round_ms;
  uint64_t next_check_ms; /* liveness and claimant, every GOSSIP_CHECK_MS */
  uint64_t boot_until_ms; /* no brand-new ring before this */
  uint32_t full_budget;   /* whole-table digests left this round */
  bool claim_dirty;       /* a member or the ring changed since the claim */
  uint32_t age_unit_ms;   /* of the ages we send: interval / GOSSIP_AGE_STEPS */

  gossip__entry *scratch; /* decoded entries, scratch_cap slots */
  size_t scratch_cap;
  kvbuf out;
  uint8_t *vec;   /* 2 * GOSSIP_MEMBERS_MAX bytes: a vector to send */
  uint32_t *take; /* GOSSIP_MEMBERS_MAX: members a vector has news of */
  bool in_round;  /* gossip__round is sending: nothing changes meanwhile */
  bool vec_ready; /* vec holds this round's vector */
};

/* ---- small helpers ---- */

static gossip__member *gossip__me(gossip *g) { return &g->members[g->self]; }

/* Index of id in the sorted table, or where it would go (*found false). */
/* The first 8 bytes of id, big-endian, zeros after its end: keys order
 * like the ids (strcmp) as far as they go. */
static uint64_t gossip__key(const char *id) {
  uint64_t k = 0;
  size_t i = 0;
  for (; i < 8 && id[i]; i++)
    k = k << 8 | (uint8_t)id[i];
  return k << (8 * (8 - i));
}

/* Orders member i against (key, id) as strcmp orders ids. */
static int gossip__cmp(const gossip *g, size_t i, uint64_t key,
                       const char *id) {
  uint64_t k = g->idkey[i];
  return k < key ? -1 : k > key ? 1 : strcmp(g->members[i].pub.id, id);
}

static size_t gossip__search(const gossip *g, const char *id, bool *found) {
  uint64_t key = gossip__key(id);
  /* The first member not before id. */
  size_t lo = 0, hi = g->nmembers;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (gossip__cmp(g, mid, key, id) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = lo < g->nmembers && gossip__cmp(g, lo, key, id) == 0;
  return lo;
}

static gossip__member *gossip__lookup(const gossip *g, const char *id) {
  bool found;
  size_t i = gossip__search(g, id, &found);
  return found ? &g->members[i] : NULL;
}

static size_t gossip__index(const gossip *g, const gossip__member *m) {
  return (size_t)(m - g->members);
}

static uint32_t gossip__min_std(const gossip *g) {
  return g->interval_ms / GOSSIP_PHI_MIN_STD_DIVISOR;
}

/* The capacity to grow an array of cap slots to for want (doubling from
 * GOSSIP__TABLE_MIN), at most GOSSIP_MEMBERS_MAX. */
static size_t gossip__cap_for(size_t cap, size_t want) {
  if (!cap)
    cap = GOSSIP__TABLE_MIN;
  while (cap < want)
    cap *= 2;
  return cap < GOSSIP_MEMBERS_MAX ? cap : GOSSIP_MEMBERS_MAX;
}

/* Grows array p (of its own element type) to cap slots, or returns
 * KV_ENOMEM from the calling function (p is then unchanged). */
#define GOSSIP__REALLOC(p, cap)                                                \
  do {                                                                         \
    void *grown_ = realloc((p), (cap) * sizeof(*(p)));                         \
    if (!grown_)                                                               \
      return KV_ENOMEM;                                                        \
    (p) = grown_;                                                              \
  } while (0)

/* Room for n decoded entries in scratch. Returns 0 or KV_ENOMEM. */
static int gossip__scratch_reserve(gossip *g, size_t n) {
  if (n <= g->scratch_cap)
    return 0;
  size_t cap = gossip__cap_for(g->scratch_cap, n);
  GOSSIP__REALLOC(g->scratch, cap);
  g->scratch_cap = cap;
  return 0;
}

/* Room for want members (at most GOSSIP_MEMBERS_MAX). Returns 0, KV_EFULL
 * or KV_ENOMEM. */
static int gossip__table_reserve(gossip *g, size_t want) {
  if (want <= g->cap)
    return 0;
  if (g->cap >= GOSSIP_MEMBERS_MAX)
    return KV_EFULL;
  size_t cap = gossip__cap_for(g->cap, want);
  GOSSIP__REALLOC(g->members, cap);
  GOSSIP__REALLOC(g->idkey, cap);
  GOSSIP__REALLOC(g->hb8, cap);
  GOSSIP__REALLOC(g->news, cap);
  GOSSIP__REALLOC(g->alive_at_ms, cap);
  GOSSIP__REALLOC(g->suspect_ms, cap);
  g->cap = cap;
  return 0;
}

/* XXH3 of everything in m's entry but the heartbeat, which every round
 * changes. Two nodes whose tables have the same XOR of these agree on
 * every member's entry (but heartbeats), and so on the positions in a
 * vector. A field added to entries must be added here too. */
static uint64_t gossip__entry_hash(const gossip__member *m) {
  uint8_t buf[5 * RING_NAME_MAX + 2 * GOSSIP_ADDR_MAX + GOSSIP_VERSION_MAX +
              4 * sizeof(uint64_t)];
  size_t len = 0;
  const char *strs[] = {m->pub.id,          m->pub.region,    m->pub.zone,
                        m->pub.client_addr, m->pub.peer_addr, m->pub.version};
  for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
    size_t l = strlen(strs[i]) + 1;
    memcpy(buf + len, strs[i], l);
    len += l;
  }
  uint64_t nums[4] = {m->pub.incarnation, (uint64_t)m->pub.status,
                      m->status_version, m->status_incarnation};
  memcpy(buf + len, nums, sizeof(nums));
  len += sizeof(nums);
  return XXH3_64bits(buf, len);
}

/* Notes that member id's entry changed at now_ms (recent[], newest
 * first), so that syncs carry it for GOSSIP_RECENT_ROUNDS rounds. */
static void gossip__log(gossip *g, const char *id, uint64_t now_ms) {
  size_t k = 0;
  while (k < g->nrecent && strcmp(g->recent[k].id, id) != 0)
    k++;
  if (k == g->nrecent) {
    if (g->nrecent < GOSSIP_RECENT_MAX)
      g->nrecent++;
    k = g->nrecent - 1;
  }
  memmove(&g->recent[1], &g->recent[0], k * sizeof(g->recent[0]));
  kv_strcopy(g->recent[0].id, sizeof(g->recent[0].id), id);
  g->recent[0].at_ms = now_ms;
}

/* Recomputes member m's hash after its entry may have changed; a change
 * updates members_hash and goes into recent[]. */
static void gossip__rehash(gossip *g, gossip__member *m) {
  uint64_t h = gossip__entry_hash(m);
  if (h == m->hash)
    return;
  g->claim_dirty = true;
  g->members_hash ^= m->hash ^ h;
  m->hash = h;
  gossip__log(g, m->pub.id, g->now_ms);
}

/* Inserts a member at its sorted place. Returns it, or NULL when the
 * table is full (or memory ran out). */
static gossip__member *gossip__insert(gossip *g, const gossip__entry *e,
                                      uint64_t now_ms, bool heard) {
  bool found;
  size_t at = gossip__search(g, e->id, &found);
  if (found)
    return &g->members[at];
  if (gossip__table_reserve(g, g->nmembers + 1))
    return NULL;
  size_t tail = g->nmembers - at;
  memmove(&g->members[at + 1], &g->members[at], tail * sizeof(*g->members));
  memmove(&g->idkey[at + 1], &g->idkey[at], tail * sizeof(*g->idkey));
  memmove(&g->hb8[at + 1], &g->hb8[at], tail * sizeof(*g->hb8));
  memmove(&g->news[at + 1], &g->news[at], tail * sizeof(*g->news));
  memmove(&g->alive_at_ms[at + 1], &g->alive_at_ms[at],
          tail * sizeof(*g->alive_at_ms));
  memmove(&g->suspect_ms[at + 1], &g->suspect_ms[at],
          tail * sizeof(*g->suspect_ms));
  g->nmembers++;
  if (g->nmembers > 1 && at <= g->self)
    g->self++;
  gossip__member *m = &g->members[at];
  memset(m, 0, sizeof(*m));
  memcpy(m->pub.id, e->id, sizeof(m->pub.id));
  memcpy(m->pub.region, e->region, sizeof(m->pub.region));
  memcpy(m->pub.zone, e->zone, sizeof(m->pub.zone));
  memcpy(m->pub.client_addr, e->client_addr, sizeof(m->pub.client_addr));
  memcpy(m->pub.peer_addr, e->peer_addr, sizeof(m->pub.peer_addr));
  memcpy(m->pub.version, e->version, sizeof(m->pub.version));
  m->pub.incarnation = e->incarnation;
  m->pub.heartbeat = e->heartbeat;
  m->pub.status = e->status;
  m->pub.alive = heard;
  m->status_version = e->status_version;
  m->status_incarnation = e->status_incarnation;
  gossip__news *nw = &g->news[at];
  gossip_phi_init(&nw->phi, g->interval_ms, gossip__min_std(g));
  if (heard) /* else phi starts with the first news of it */
    gossip_phi_heartbeat(&nw->phi, now_ms);
  nw->hb = e->heartbeat;
  g->idkey[at] = gossip__key(e->id);
  g->alive_at_ms[at] = heard ? now_ms : 0;
  g->hb8[at] = (uint8_t)e->heartbeat;
  g->suspect_ms[at] = UINT64_MAX;
  if (heard && at != g->self) {
    g->suspect_ms[at] = gossip_phi_deadline(&nw->phi, g->phi_y);
    if (g->suspect_ms[at] < g->next_suspect_ms)
      g->next_suspect_ms = g->suspect_ms[at];
  }
  m->hash = gossip__entry_hash(m);
  g->members_hash ^= m->hash;
  gossip__log(g, m->pub.id, now_ms);
  return m;
}

static void gossip__changed(gossip *g, const gossip__member *m) {
  g->claim_dirty = true;
  if (g->io.member_changed)
    g->io.member_changed(g->io.ctx, &m->pub);
}

/* News at now_ms that member i was alive at alive_at_ms (newer than what
 * we had): a phi arrival. It counts as heard and, while phi stays under
 * the threshold, alive. Returns whether it just became alive. */
static bool gossip__arrival(gossip *g, size_t i, uint64_t now_ms,
                            uint64_t alive_at_ms) {
  gossip__member *m = &g->members[i];
  gossip__news *nw = &g->news[i];
  gossip_phi_evidence(&nw->phi, now_ms, alive_at_ms);
  g->alive_at_ms[i] = alive_at_ms;
  uint64_t deadline = gossip_phi_deadline(&nw->phi, g->phi_y);
  if (g->nmembers <= GOSSIP_PHI_EAGER_MAX)
    m->pub.phi = gossip_phi_value(&nw->phi, now_ms);
  /* Alive exactly when it has a deadline: the table itself is touched
   * only when that changes. */
  bool alive = g->suspect_ms[i] != UINT64_MAX, up = false;
  if (!alive && now_ms < deadline) {
    m->pub.alive = alive = up = true;
  }
  if (alive) {
    g->suspect_ms[i] = deadline;
    if (deadline < g->next_suspect_ms)
      g->next_suspect_ms = deadline;
  }
  return up;
}

/* True when ring (va, ca, ha) beats (vb, cb, hb): a higher version wins;
 * on equal versions the smaller known claimant id wins, and a known one
 * beats ""; with the same claimant (both unknown: rings restored from
 * disk after two claimants made different rings of one version) the
 * smaller hash of the encoding wins, so such rings still converge. A hash
 * of 0 (a heartbeat carries no ring) decides nothing. */
static bool gossip__ring_better(uint64_t va, const char *ca, uint64_t ha,
                                uint64_t vb, const char *cb, uint64_t hb) {
  if (va != vb)
    return va > vb;
  if (strcmp(ca, cb) == 0)
    return ha && hb && ha < hb;
  if (!*ca || !*cb)
    return *ca && !*cb;
  return strcmp(ca, cb) < 0;
}

static void gossip__hist_clear(gossip *g) {
  for (size_t i = 0; i < g->nhist; i++)
    kvbuf_free(&g->hist[i].enc);
  g->nhist = 0;
}

/* Replaces the ring (takes ownership of r), re-encodes it, and keeps the
 * delta from the old ring in the history when it is small (else the
 * history starts again: peers behind it get the whole ring). */
static void gossip__set_ring(gossip *g, ring *r, const char *claimant) {
  gossip__delta d;
  memset(&d, 0, sizeof(d));
  kvbuf_init(&d.enc);
  bool have = g->ring && ring_version(g->ring) > 0 &&
              ring_node_count(g->ring) > 0 && g->ring_hash &&
              ring_node_count(r) > 0 &&
              ring_delta_encode(g->ring, r, &d.enc) == 0;
  d.from_version = g->ring ? ring_version(g->ring) : 0;
  d.from_hash = g->ring_hash;
  ring_free(g->ring);
  g->ring = r;
  g->claim_dirty = true;
  kv_strcopy(g->claimant, sizeof(g->claimant), claimant);
  g->ring_enc.len = 0;
  g->ring_enc.oom = 0;
  if (ring_node_count(r) > 0 && ring_encode(r, &g->ring_enc) != 0)
    g->ring_enc.len = 0;
  g->ring_hash = g->ring_enc.len ? XXH3_64bits(g->ring_enc.data,
                                               g->ring_enc.len)
                                 : 0;
  g->ring_report = ring_node_count(r) > 0;
  if (!have || !g->ring_hash || d.enc.len > g->ring_enc.len / 2) {
    kvbuf_free(&d.enc);
    gossip__hist_clear(g);
    return;
  }
  d.to_version = ring_version(r);
  d.to_hash = g->ring_hash;
  if (g->nhist == GOSSIP_RING_HISTORY) {
    kvbuf_free(&g->hist[0].enc);
    memmove(&g->hist[0], &g->hist[1], (g->nhist - 1) * sizeof(g->hist[0]));
    g->nhist--;
  }
  g->hist[g->nhist++] = d;
}

/* The first history entry of the chain from ring (version, hash) to ours,
 * or -1 when there is none. */
static int gossip__chain_from(const gossip *g, uint64_t version,
                              uint64_t hash) {
  if (g->nhist == 0 || g->hist[g->nhist - 1].to_hash != g->ring_hash)
    return -1;
  for (size_t i = g->nhist; i-- > 0;)
    if (g->hist[i].from_version == version && g->hist[i].from_hash == hash)
      return (int)i;
  return -1;
}

static void gossip__report_ring(gossip *g) {
  if (!g->ring_report)
    return;
  g->ring_report = false;
  if (g->io.ring_changed)
    g->io.ring_changed(g->io.ctx, g->ring);
}

/* ---- encoding ---- */

/* Packs m as an entry; heartbeat is the one to send (the saved
 * membership sends 0). */
static void gossip__pack_entry(msgpack_packer *pk, const gossip__member *m,
                               uint64_t heartbeat) {
  msgpack_pack_array(pk, GOSSIP__ENTRY_FIELDS);
  mp_pack_cstr(pk, m->pub.id);
  mp_pack_cstr(pk, m->pub.region);
  mp_pack_cstr(pk, m->pub.zone);
  mp_pack_cstr(pk, m->pub.client_addr);
  mp_pack_cstr(pk, m->pub.peer_addr);
  msgpack_pack_uint64(pk, m->pub.incarnation);
  msgpack_pack_uint64(pk, heartbeat);
  msgpack_pack_uint32(pk, (uint32_t)m->pub.status);
  msgpack_pack_uint64(pk, m->status_version);
  msgpack_pack_uint64(pk, m->status_incarnation);
  mp_pack_cstr(pk, m->pub.version);
}

static void gossip__pack_member(msgpack_packer *pk, const gossip__member *m) {
  gossip__pack_entry(pk, m, m->pub.heartbeat);
}

/* True when addr is worth sending to: set, not ours. */
static bool gossip__addr_ok(gossip *g, const char *addr) {
  return addr && *addr && strcmp(addr, gossip__me(g)->pub.peer_addr) != 0;
}

/* Hands g->out to io->send when it is whole and not too big. */
static void gossip__emit(gossip *g, const char *addr) {
  if (!g->out.oom && g->out.len <= GOSSIP_MSG_MAX)
    g->io.send(g->io.ctx, addr, g->out.data, g->out.len);
}

/* Starts a message of kind with fields elements in g->out: the header
 * every kind has (gossip.h), up to the ring version and claimant. */
static void gossip__pack_head(gossip *g, msgpack_packer *pk, uint32_t fields,
                              uint32_t kind) {
  g->out.len = 0;
  g->out.oom = 0;
  mp_packer_init(pk, &g->out);
  msgpack_pack_array(pk, fields);
  msgpack_pack_uint32(pk, GOSSIP_WIRE_VERSION);
  msgpack_pack_uint32(pk, kind);
  gossip__pack_member(pk, gossip__me(g));
  msgpack_pack_uint64(pk, ring_version(g->ring));
  mp_pack_cstr(pk, g->claimant);
}

/* Sends a digest (the whole table and the ring) to addr, when this
 * round's budget of whole tables allows. */
static void gossip__send_digest(gossip *g, const char *addr, bool want_reply) {
  if (!gossip__addr_ok(g, addr) || g->full_budget == 0)
    return;
  bool with_ring = g->ring_enc.len > 0;
  if (ring_version(g->ring) > 0 && !with_ring)
    return; /* the ring did not encode (OOM): send nothing rather than lie */
  g->full_budget--;
  msgpack_packer pk;
  gossip__pack_head(g, &pk, GOSSIP__DIGEST_FIELDS, GOSSIP__MSG_DIGEST);
  if (want_reply)
    msgpack_pack_true(&pk);
  else
    msgpack_pack_false(&pk);
  msgpack_pack_array(&pk, (uint32_t)g->nmembers);
  for (size_t i = 0; i < g->nmembers; i++)
    gossip__pack_member(&pk, &g->members[i]);
  if (with_ring)
    mp_pack_bin(&pk, g->ring_enc.data, g->ring_enc.len);
  else
    msgpack_pack_nil(&pk);
  gossip__emit(g, addr);
}

/* What a sync carries besides its header. */
typedef struct gossip__sync_opts {
  uint32_t flags;
  bool vector; /* the (heartbeat byte, age) vector */
  int ring;    /* GOSSIP__RING_*: none, the whole ring, deltas */
  uint64_t base_version, base_hash; /* deltas from this ring */
} gossip__sync_opts;

/* Sends a sync to addr: the header, the recently changed entries, and
 * what o asks for. Deltas fall back to the whole ring when the history
 * holds no chain from o's base. */
static void gossip__send_sync(gossip *g, const char *addr,
                              const gossip__sync_opts *o) {
  if (!gossip__addr_ok(g, addr))
    return;
  int ring_part = o->ring;
  int chain = -1;
  if (ring_part == GOSSIP__RING_DELTAS) {
    chain = gossip__chain_from(g, o->base_version, o->base_hash);
    if (chain < 0)
      ring_part = GOSSIP__RING_FULL;
  }
  if (ring_part == GOSSIP__RING_FULL && g->ring_enc.len == 0)
    ring_part = GOSSIP__RING_NONE;
  msgpack_packer pk;
  gossip__pack_head(g, &pk, GOSSIP__SYNC_FIELDS, GOSSIP__MSG_SYNC);
  msgpack_pack_uint64(&pk, g->ring_hash);
  msgpack_pack_uint32(&pk, o->flags);
  msgpack_pack_uint64(&pk, g->members_hash);
  msgpack_pack_uint32(&pk, g->age_unit_ms);
  if (o->vector) {
    if (!g->vec_ready) {
      uint32_t unit = g->age_unit_ms;
      /* Ages of GOSSIP__AGE_UNKNOWN units or more are no news. */
      uint64_t far = (uint64_t)unit * (GOSSIP__AGE_UNKNOWN - 1);
      for (size_t i = 0; i < g->nmembers; i++) {
        uint64_t at = g->alive_at_ms[i];
        uint8_t age = GOSSIP__AGE_UNKNOWN;
        if (at && at <= g->now_ms && g->now_ms - at <= far)
          age = (uint8_t)(((uint32_t)(g->now_ms - at) + unit - 1) / unit);
        g->vec[2 * i] = g->hb8[i];
        g->vec[2 * i + 1] = age;
      }
      g->vec[2 * g->self] = (uint8_t)gossip__me(g)->pub.heartbeat;
      g->vec[2 * g->self + 1] = 0;
      g->vec_ready = g->in_round; /* the round's other syncs reuse it */
    }
    mp_pack_bin(&pk, g->vec, 2 * g->nmembers);
  } else {
    msgpack_pack_nil(&pk);
  }
  /* Recent entries: changed within GOSSIP_RECENT_ROUNDS rounds, ours
   * aside (it is the sender entry). */
  const gossip__member *rec[GOSSIP_RECENT_MAX];
  uint32_t nrec = 0;
  uint64_t window = (uint64_t)GOSSIP_RECENT_ROUNDS * g->interval_ms;
  for (size_t k = 0; k < g->nrecent; k++) {
    if (g->recent[k].at_ms + window < g->now_ms)
      break;
    const gossip__member *m = gossip__lookup(g, g->recent[k].id);
    if (m && m != gossip__me(g))
      rec[nrec++] = m;
  }
  msgpack_pack_array(&pk, nrec);
  for (uint32_t k = 0; k < nrec; k++)
    gossip__pack_member(&pk, rec[k]);
  if (ring_part == GOSSIP__RING_FULL) {
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint32(&pk, GOSSIP__RING_FULL);
    mp_pack_bin(&pk, g->ring_enc.data, g->ring_enc.len);
  } else if (ring_part == GOSSIP__RING_DELTAS) {
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint32(&pk, GOSSIP__RING_DELTAS);
    msgpack_pack_uint64(&pk, o->base_version);
    msgpack_pack_uint64(&pk, o->base_hash);
    msgpack_pack_array(&pk, (uint32_t)(g->nhist - (size_t)chain));
    for (size_t i = (size_t)chain; i < g->nhist; i++)
      mp_pack_bin(&pk, g->hist[i].enc.data, g->hist[i].enc.len);
  } else {
    msgpack_pack_nil(&pk);
  }
  gossip__emit(g, addr);
}

/* ---- decoding ---- */

/* Reads a str into buf (cap bytes with NUL): no NUL inside, must fit. */
static int gossip__read_name(mp_reader *r, char *buf, size_t cap) {
  kv_slice s;
  if (mp_read_str(r, &s))
    return KV_EPROTO;
  if (s.len >= cap || (s.len && memchr(s.ptr, '\0', s.len))) {
    r->err = KV_EPROTO;
    return KV_EPROTO;
  }
  if (s.len)
    memcpy(buf, s.ptr, s.len);
  buf[s.len] = '\0';
  return 0;
}

static int gossip__read_entry(mp_reader *r, gossip__entry *e) {
  uint32_t n, status;
  if (mp_read_array(r, &n) || n < GOSSIP__ENTRY_FIELDS_MIN)
    return KV_EPROTO;
  if (gossip__read_name(r, e->id, sizeof(e->id)) ||
      gossip__read_name(r, e->region, sizeof(e->region)) ||
      gossip__read_name(r, e->zone, sizeof(e->zone)) ||
      gossip__read_name(r, e->client_addr, sizeof(e->client_addr)) ||
      gossip__read_name(r, e->peer_addr, sizeof(e->peer_addr)) ||
      mp_read_uint(r, &e->incarnation) || mp_read_uint(r, &e->heartbeat) ||
      mp_read_u32(r, &status) || mp_read_uint(r, &e->status_version) ||
      mp_read_uint(r, &e->status_incarnation))
    return KV_EPROTO;
  e->version[0] = '\0';
  if (n > GOSSIP__ENTRY_FIELDS_MIN &&
      gossip__read_name(r, e->version, sizeof(e->version)))
    return KV_EPROTO;
  /* Fields of later versions. */
  for (uint32_t i = GOSSIP__ENTRY_FIELDS; i < n; i++)
    if (mp_skip(r))
      return KV_EPROTO;
  if (!e->id[0] || !e->peer_addr[0] || status > GOSSIP_REMOVED)
    return KV_EPROTO;
  e->status = (gossip_status)status;
  return 0;
}

/* Reads an array of entries into scratch. */
static int gossip__read_entries(gossip *g, mp_reader *r, uint32_t *count) {
  uint32_t cnt;
  if (mp_read_array(r, &cnt) || cnt > GOSSIP_MEMBERS_MAX ||
      gossip__scratch_reserve(g, cnt))
    return KV_EPROTO;
  for (uint32_t i = 0; i < cnt; i++)
    if (gossip__read_entry(r, &g->scratch[i]))
      return KV_EPROTO;
  *count = cnt;
  return 0;
}

/* Reads a whole ring (bin) of the given version; sets m->ring and
 * m->ring_hash. */
static int gossip__read_ring(mp_reader *r, gossip__msg *m) {
  kv_slice s;
  if (mp_read_bytes(r, &s))
    return KV_EPROTO;
  ring *rg = NULL;
  if (ring_decode(s.ptr, s.len, &rg) != 0 || !rg)
    return KV_EPROTO;
  uint64_t h = XXH3_64bits(s.ptr, s.len);
  if (ring_version(rg) != m->ring_version || m->ring_version == 0 ||
      ring_node_count(rg) == 0 ||
      (m->kind == GOSSIP__MSG_SYNC && h != m->ring_hash)) {
    ring_free(rg);
    return KV_EPROTO;
  }
  m->ring_hash = h;
  m->ring = rg;
  return 0;
}

/* Reads a sync's ring part: nil, [0, ring], [1, base version, base hash,
 * [delta...]]. */
static int gossip__read_ring_part(mp_reader *r, gossip__msg *m) {
  if (mp_peek(r) == MP_NIL)
    return mp_read_nil(r);
  uint32_t n, how, cnt;
  if (mp_read_array(r, &n) || n < 2 || mp_read_u32(r, &how))
    return KV_EPROTO;
  if (how == GOSSIP__RING_FULL) {
    if (n != 2 || gossip__read_ring(r, m))
      return KV_EPROTO;
    return 0;
  }
  if (how != GOSSIP__RING_DELTAS || n != 4 ||
      mp_read_uint(r, &m->base_version) || mp_read_uint(r, &m->base_hash) ||
      mp_read_array(r, &cnt) || cnt == 0 || cnt > GOSSIP_RING_HISTORY)
    return KV_EPROTO;
  for (uint32_t i = 0; i < cnt; i++)
    if (mp_read_bytes(r, &m->deltas[i]))
      return KV_EPROTO;
  m->ndeltas = cnt;
  return 0;
}

/* Decodes a whole message; on error nothing is kept (m->ring is NULL). */
static int gossip__decode(gossip *g, const uint8_t *buf, size_t len,
                          gossip__msg *m) {
  memset(m, 0, sizeof(*m));
  if (!buf || len == 0 || len > GOSSIP_MSG_MAX)
    return KV_EPROTO;
  mp_reader r;
  mp_reader_init(&r, buf, len);
  uint32_t n, ver, kind;
  if (mp_read_array(&r, &n) || mp_read_u32(&r, &ver) ||
      mp_read_u32(&r, &kind))
    return KV_EPROTO;
  if (ver != GOSSIP_WIRE_VERSION)
    return KV_EPROTO;
  uint32_t fields = kind == GOSSIP__MSG_HEARTBEAT ? GOSSIP__HEARTBEAT_FIELDS
                    : kind == GOSSIP__MSG_DIGEST  ? GOSSIP__DIGEST_FIELDS
                    : kind == GOSSIP__MSG_SYNC    ? GOSSIP__SYNC_FIELDS
                                                  : 0;
  if (fields == 0 || n < fields)
    return KV_EPROTO;
  m->kind = (int)kind;
  if (gossip__read_entry(&r, &m->sender) ||
      mp_read_uint(&r, &m->ring_version) ||
      gossip__read_name(&r, m->claimant, sizeof(m->claimant)))
    return KV_EPROTO;
  int rc = 0;
  if (kind == GOSSIP__MSG_DIGEST) {
    if (mp_read_bool(&r, &m->want_reply) ||
        gossip__read_entries(g, &r, &m->nentries))
      return KV_EPROTO;
    if (mp_peek(&r) == MP_NIL) {
      if (mp_read_nil(&r) || m->ring_version != 0)
        return KV_EPROTO;
    } else if (gossip__read_ring(&r, m)) {
      return KV_EPROTO;
    }
  } else if (kind == GOSSIP__MSG_SYNC) {
    if (mp_read_uint(&r, &m->ring_hash) || mp_read_u32(&r, &m->flags) ||
        mp_read_uint(&r, &m->members_hash) ||
        mp_read_uint(&r, &m->age_unit_ms) ||
        m->age_unit_ms > GOSSIP_AGE_UNIT_MS_MAX)
      return KV_EPROTO;
    if (mp_peek(&r) == MP_NIL) {
      if (mp_read_nil(&r))
        return KV_EPROTO;
    } else if (mp_read_bytes(&r, &m->vector) || m->vector.len % 2 ||
               m->vector.len / 2 > GOSSIP_MEMBERS_MAX) {
      return KV_EPROTO;
    }
    if (gossip__read_entries(g, &r, &m->nentries) ||
        gossip__read_ring_part(&r, m))
      rc = KV_EPROTO;
  }
  /* Fields of later versions. */
  for (uint32_t i = fields; i < n && !r.err && !rc; i++)
    mp_skip(&r);
  if (rc || r.err || mp_remaining(&r) != 0) {
    ring_free(m->ring);
    m->ring = NULL;
    return KV_EPROTO;
  }
  return 0;
}

/* ---- merging ---- */

static bool gossip__status_newer(uint64_t va, gossip_status sa, uint64_t vb,
                                 gossip_status sb) {
  return va > vb || (va == vb && sa > sb);
}

/* Merges one member entry from a peer into the table (direct: the entry
 * is the sender's own). */
static void gossip__merge(gossip *g, const gossip__entry *e, uint64_t now_ms,
                          bool direct) {
  gossip__member *m = gossip__lookup(g, e->id);
  if (!m) {
    m = gossip__insert(g, e, now_ms, direct);
    if (m)
      gossip__changed(g, m);
    return;
  }
  size_t i = gossip__index(g, m);
  if (i == g->self) {
    /* Our own entry: our heartbeat must stay ahead of any copy out there
     * (a restart with the same incarnation starts counting again). */
    if (e->incarnation == m->pub.incarnation &&
        e->heartbeat > m->pub.heartbeat)
      m->pub.heartbeat = e->heartbeat + 1; /* (hb8 of self is unused) */
    if (gossip__status_newer(e->status_version, e->status, m->status_version,
                             m->pub.status)) {
      if (e->status == GOSSIP_REMOVED &&
          e->status_incarnation < m->pub.incarnation &&
          (m->pub.status == GOSSIP_JOINING ||
           ring_node_index(g->ring, m->pub.id) < 0)) {
        /* We were removed in an earlier life; this one joins again (also
         * when a stale entry of that life made us valid meanwhile: no
         * ring of ours has us). */
        if (m->pub.status != GOSSIP_JOINING) {
          m->pub.status = GOSSIP_JOINING;
          gossip__changed(g, m);
        }
        m->status_version = e->status_version + 1;
        m->status_incarnation = m->pub.incarnation;
      } else {
        m->pub.status = e->status;
        m->status_version = e->status_version;
        m->status_incarnation = e->status_incarnation;
        gossip__changed(g, m);
      }
      gossip__rehash(g, m);
    }
    return;
  }
  bool changed = false, entry = false;
  if (e->incarnation > m->pub.incarnation ||
      (e->incarnation == m->pub.incarnation &&
       e->heartbeat > m->pub.heartbeat)) {
    /* The version belongs to an incarnation: keep what we know when an
     * entry relayed by a node that does not carry versions has none. */
    if (e->version[0] || e->incarnation != m->pub.incarnation)
      memcpy(m->pub.version, e->version, sizeof(m->pub.version));
    if (e->incarnation != m->pub.incarnation) { /* counting anew */
      g->news[i].hb = e->heartbeat;
      g->hb8[i] = (uint8_t)e->heartbeat;
    }
    m->pub.incarnation = e->incarnation;
    m->pub.heartbeat = e->heartbeat;
    memcpy(m->pub.region, e->region, sizeof(m->pub.region));
    memcpy(m->pub.zone, e->zone, sizeof(m->pub.zone));
    memcpy(m->pub.client_addr, e->client_addr, sizeof(m->pub.client_addr));
    memcpy(m->pub.peer_addr, e->peer_addr, sizeof(m->pub.peer_addr));
    entry = true;
  }
  /* The sender's own entry is news that it is alive now, newer heartbeat
   * or not (a relay may have brought the heartbeat first). A newer
   * heartbeat relayed by someone else says when it was alive no better
   * than the vectors do: it is no news for phi. */
  if (direct && now_ms > g->alive_at_ms[i]) {
    if (e->incarnation == m->pub.incarnation && e->heartbeat > g->news[i].hb) {
      g->news[i].hb = e->heartbeat;
      g->hb8[i] = (uint8_t)e->heartbeat;
    }
    changed = gossip__arrival(g, i, now_ms, now_ms);
  }
  if (gossip__status_newer(e->status_version, e->status, m->status_version,
                           m->pub.status)) {
    m->pub.status = e->status;
    m->status_version = e->status_version;
    m->status_incarnation = e->status_incarnation;
    changed = true;
    entry = true;
  }
  if (entry)
    gossip__rehash(g, m);
  if (changed)
    gossip__changed(g, m);
}

/* Applies a vector (per member in table order: the low byte of the
 * heartbeat of the sender's newest news of it, and how many units of
 * unit_ms ago it was alive then, GOSSIP__AGE_UNKNOWN for no news) from a
 * node whose table hashes like ours. A heartbeat byte ahead of our news'
 * by 1..127 is newer news, and its age says when the member was alive: a
 * phi arrival when that is newer than what we knew. The heartbeat is what
 * makes news new: a time alone, relayed round and round, would look
 * fresher at every hop by the time in transit. A member we have down (or
 * never heard) takes any byte whose time is newer than our news (it went
 * on counting while we were cut off from it, maybe for more than 127
 * rounds). Our own byte ahead of ours makes our heartbeat jump past it,
 * as in gossip__merge. */
static void gossip__apply_vector(gossip *g, const uint8_t *v, uint64_t unit_ms,
                                 uint64_t now_ms) {
  /* Two passes: the first reads only the small arrays and picks the
   * members with news (about one in six: each round brings each member's
   * news about once, by one of ~6 syncs); the second takes the news,
   * asking a few members ahead for theirs to be fetched. */
  uint32_t *take = g->take;
  size_t ntake = 0;
  const uint64_t *suspect = g->suspect_ms;
  const uint8_t *hb8 = g->hb8;
  for (size_t i = 0; i < g->nmembers; i++) {
    /* Without branches: which members get news is random, so a branch
     * per member would mostly guess wrong. Alive members have a deadline:
     * most bytes end here, at older news, without touching the table. */
    uint8_t hb = v[2 * i], age = v[2 * i + 1];
    uint8_t d = (uint8_t)(hb - hb8[i]);
    unsigned take_it = (d != 0) & (age != GOSSIP__AGE_UNKNOWN) &
                       ((suspect[i] == UINT64_MAX) | ((int8_t)d > 0)) &
                       (i != g->self);
    take[ntake] = (uint32_t)i;
    ntake += take_it;
  }
  {
    uint8_t hb = v[2 * g->self], age = v[2 * g->self + 1];
    gossip__member *me = gossip__me(g);
    int8_t ahead = (int8_t)(uint8_t)(hb - (uint8_t)me->pub.heartbeat);
    if (ahead > 0 && age != GOSSIP__AGE_UNKNOWN)
      me->pub.heartbeat += (uint64_t)ahead + 1;
  }
  for (size_t k = 0; k < ntake; k++) {
    if (k + GOSSIP__AHEAD < ntake)
      GOSSIP__PREFETCH(&g->news[take[k + GOSSIP__AHEAD]]);
    size_t i = take[k];
    uint8_t hb = v[2 * i], age = v[2 * i + 1];
    int64_t delta = (int8_t)(uint8_t)(hb - g->hb8[i]);
    bool alive = g->suspect_ms[i] != UINT64_MAX;
    gossip__news *nw = &g->news[i];
    uint64_t ago = (uint64_t)age * unit_ms;
    uint64_t at = ago < now_ms ? now_ms - ago : 0;
    bool newer_news = at > g->alive_at_ms[i];
    if (!alive) {
      /* Down here (or never heard): newer news is taken whatever the byte
       * says, read as the heartbeat nearest to what the time between the
       * two pieces of news makes likely. */
      if (!newer_news)
        continue;
      int64_t expect =
          g->alive_at_ms[i]
              ? (int64_t)((at - g->alive_at_ms[i]) / g->interval_ms)
              : 0;
      int64_t wraps = (expect - delta + 128) / 256;
      if (expect - delta + 128 < 0)
        wraps = -((delta - expect + 127) / 256);
      delta += 256 * wraps;
    }
    if (delta < 0 && (uint64_t)-delta > nw->hb)
      continue;
    nw->hb = (uint64_t)((int64_t)nw->hb + delta);
    g->hb8[i] = hb;
    if (newer_news && gossip__arrival(g, i, now_ms, at))
      gossip__changed(g, &g->members[i]);
  }
}

/* ---- rounds, liveness, claimant ---- */

static bool gossip__has_peers(const gossip *g) {
  for (size_t i = 0; i < g->nmembers; i++)
    if (i != g->self && g->members[i].pub.alive &&
        g->members[i].pub.status != GOSSIP_REMOVED)
      return true;
  return false;
}

/* Whether member i may be picked for a sync: not us, not removed, and
 * alive (or, with down, down). */
static bool gossip__pickable(const gossip *g, size_t i, bool down,
                             const char *skip) {
  if (i == g->self || (g->suspect_ms[i] == UINT64_MAX) != down)
    return false;
  const gossip__member *m = &g->members[i];
  return m->pub.status != GOSSIP_REMOVED &&
         !(skip && strcmp(m->pub.peer_addr, skip) == 0);
}

/* Up to want distinct random indices of pickable members (all of them
 * when there are at most want) into out. Returns how many. A large table
 * is sampled (a few tries per pick, touching a few members), a small one
 * or a sparse choice is walked. */
static size_t gossip__pick(gossip *g, size_t want, bool down, const char *skip,
                           size_t *out) {
  size_t n = 0;
  if (g->nmembers > GOSSIP__WALK_MAX) {
    for (size_t tries = 0; tries < 8 * want && n < want; tries++) {
      size_t i = (size_t)(kv_splitmix64(&g->rng) % g->nmembers);
      bool dup = false;
      for (size_t k = 0; k < n && !dup; k++)
        dup = out[k] == i;
      if (!dup && gossip__pickable(g, i, down, skip))
        out[n++] = i;
    }
    if (n == want || down)
      return n; /* a probe of a down member may wait for another round */
    n = 0;
  }
  /* Reservoir sampling: one pass, no list of candidates. */
  size_t seen = 0;
  for (size_t i = 0; i < g->nmembers; i++) {
    if (!gossip__pickable(g, i, down, skip))
      continue;
    seen++;
    if (n < want) {
      out[n++] = i;
    } else {
      size_t j = (size_t)(kv_splitmix64(&g->rng) % seen);
      if (j < want)
        out[j] = i;
    }
  }
  return n;
}

/* Spreads a change worth spreading now (a ring this node adopted or made,
 * a status it set): a sync with the recent entries (and, when ring_changed,
 * the delta from the ring before) to every alive member in a small cluster
 * (GOSSIP_DIRECT_MAX), else to fanout random ones, besides the members in
 * extra. skip: the peer the change came from. */
static void gossip__spread(gossip *g, bool ring_changed, const char *skip,
                           const size_t *extra, size_t nextra) {
  gossip__sync_opts o = {.ring = GOSSIP__RING_NONE};
  if (ring_changed) {
    o.ring = GOSSIP__RING_FULL;
    if (g->nhist > 0 && g->hist[g->nhist - 1].to_hash == g->ring_hash) {
      o.ring = GOSSIP__RING_DELTAS;
      o.base_version = g->hist[g->nhist - 1].from_version;
      o.base_hash = g->hist[g->nhist - 1].from_hash;
    }
  }
  size_t pick[GOSSIP_DIRECT_MAX + 1];
  size_t n = g->nmembers > GOSSIP__WALK_MAX
                 ? GOSSIP_DIRECT_MAX + 1
                 : gossip__pick(g, GOSSIP_DIRECT_MAX + 1, false, skip, pick);
  if (n > GOSSIP_DIRECT_MAX)
    n = gossip__pick(g, g->fanout, false, skip, pick);
  for (size_t k = 0; k < n; k++)
    gossip__send_sync(g, g->members[pick[k]].pub.peer_addr, &o);
  for (size_t k = 0; k < nextra; k++) {
    bool sent = false;
    for (size_t j = 0; j < n && !sent; j++)
      sent = pick[j] == extra[k];
    if (!sent && extra[k] != g->self && g->members[extra[k]].pub.alive)
      gossip__send_sync(g, g->members[extra[k]].pub.peer_addr, &o);
  }
}

/* One round: our heartbeat goes up, and we sync. In a small cluster (at
 * most GOSSIP_DIRECT_MAX other members not removed) every one of them
 * gets our heartbeat vector, down ones included (so a partition heals):
 * every node hears every heartbeat within one latency; fanout of them,
 * alive, answer with theirs, a second path when a message is lost. In a
 * larger one,
 * fanout random alive members get it and answer with theirs (push-pull),
 * and one random down member gets a light probe that asks for an answer.
 * Without alive members, digests go to the seeds. */
static void gossip__round(gossip *g) {
  gossip__member *me = gossip__me(g);
  me->pub.heartbeat++;
  g->full_budget = GOSSIP_FULL_PER_ROUND;
  g->in_round = true;
  g->vec_ready = false;
  size_t others = 0;
  for (size_t i = 0; i < g->nmembers && g->nmembers <= GOSSIP__WALK_MAX; i++)
    others += i != g->self && g->members[i].pub.status != GOSSIP_REMOVED;
  if (g->nmembers <= GOSSIP__WALK_MAX && others <= GOSSIP_DIRECT_MAX) {
    size_t pick[GOSSIP_FANOUT_MAX];
    size_t n = gossip__pick(g, g->fanout, false, NULL, pick);
    for (size_t i = 0; i < g->nmembers; i++) {
      const gossip__member *m = &g->members[i];
      if (i == g->self || m->pub.status == GOSSIP_REMOVED)
        continue;
      gossip__sync_opts o = {.vector = true, .ring = GOSSIP__RING_NONE};
      for (size_t k = 0; k < n; k++)
        if (pick[k] == i)
          o.flags = GOSSIP__F_REPLY;
      gossip__send_sync(g, m->pub.peer_addr, &o);
    }
  } else {
    size_t pick[GOSSIP_FANOUT_MAX];
    size_t n = gossip__pick(g, g->fanout, false, NULL, pick);
    gossip__sync_opts o = {.flags = GOSSIP__F_REPLY,
                           .vector = true,
                           .ring = GOSSIP__RING_NONE};
    for (size_t k = 0; k < n; k++)
      gossip__send_sync(g, g->members[pick[k]].pub.peer_addr, &o);
    if (gossip__pick(g, 1, true, NULL, pick) == 1) {
      gossip__sync_opts probe = {.flags = GOSSIP__F_REPLY,
                                 .ring = GOSSIP__RING_NONE};
      gossip__send_sync(g, g->members[pick[0]].pub.peer_addr, &probe);
    }
  }
  g->in_round = g->vec_ready = false;
  if (!gossip__has_peers(g))
    for (size_t i = 0; i < g->nseeds; i++)
      gossip__send_digest(g, g->seeds[i], true);
}

/* Marks members down whose phi reached the threshold. In a large table
 * only when the earliest deadline passed; in a small one (at most
 * GOSSIP_PHI_EAGER_MAX members) every time, refreshing every phi. */
static void gossip__liveness(gossip *g, uint64_t now_ms) {
  bool eager = g->nmembers <= GOSSIP_PHI_EAGER_MAX;
  if (!eager && now_ms < g->next_suspect_ms)
    return;
  uint64_t next = UINT64_MAX;
  for (size_t i = 0; i < g->nmembers; i++) {
    if (eager) {
      gossip__member *m = &g->members[i];
      m->pub.phi = i == g->self ? 0 : gossip_phi_value(&g->news[i].phi, now_ms);
    }
    uint64_t deadline = g->suspect_ms[i];
    if (deadline == UINT64_MAX || i == g->self)
      continue; /* down (or us) */
    if (now_ms < deadline) {
      if (deadline < next)
        next = deadline;
      continue;
    }
    gossip__member *m = &g->members[i];
    m->pub.alive = false;
    g->suspect_ms[i] = UINT64_MAX;
    if (!eager)
      m->pub.phi = gossip_phi_value(&g->news[i].phi, now_ms);
    gossip__changed(g, m);
  }
  g->next_suspect_ms = next;
}

/* The claimant in this node's view, or NULL. */
static const gossip__member *gossip__claimant(const gossip *g,
                                              uint64_t now_ms) {
  for (size_t i = 0; i < g->nmembers; i++) /* sorted: first is smallest */
    if (g->members[i].pub.alive && g->members[i].pub.status == GOSSIP_VALID)
      return &g->members[i];
  /* A brand-new cluster: nobody valid, no ring yet, seeds had their
   * chance. */
  if (ring_node_count(g->ring) > 0 || now_ms < g->boot_until_ms)
    return NULL;
  for (size_t i = 0; i < g->nmembers; i++)
    if (g->members[i].pub.alive && g->members[i].pub.status == GOSSIP_JOINING)
      return &g->members[i];
  return NULL;
}

/* True when member m needs the claimant: in or out of the ring, or a
 * status that follows from the ring. */
static bool gossip__claim_due(const gossip *g, const gossip__member *m) {
  bool in = ring_node_index(g->ring, m->pub.id) >= 0;
  switch (m->pub.status) {
  case GOSSIP_JOINING:
    return in || m->pub.alive;
  case GOSSIP_VALID:
    return !in && m->pub.alive;
  case GOSSIP_LEAVING:
    return true;
  case GOSSIP_REMOVED:
    return in;
  }
  return false;
}

/* Most members one claim marks valid or removed and tells at once. */
#define GOSSIP__CLAIM_TELL_MAX 64

static void gossip__claim(gossip *g, uint64_t now_ms) {
  /* Nothing to decide while nothing changed, but for the brand-new
   * cluster, whose turn comes with time. */
  if (!g->claim_dirty && ring_node_count(g->ring) > 0)
    return;
  g->claim_dirty = false;
  const gossip__member *c = gossip__claimant(g, now_ms);
  if (c != gossip__me(g))
    return;
  bool due = false;
  for (size_t i = 0; i < g->nmembers && !due; i++)
    due = gossip__claim_due(g, &g->members[i]);
  if (!due)
    return;
  ring *nr = ring_clone(g->ring);
  if (!nr)
    return;
  uint32_t changes = 0;
  for (size_t i = 0; i < g->nmembers; i++) {
    const gossip__member *m = &g->members[i];
    bool in = ring_node_index(nr, m->pub.id) >= 0;
    gossip_status s = m->pub.status;
    if ((s == GOSSIP_JOINING || s == GOSSIP_VALID) && m->pub.alive && !in) {
      if (ring_add_node(nr, m->pub.id, m->pub.region, m->pub.zone) >= 0)
        changes++;
    } else if ((s == GOSSIP_LEAVING || s == GOSSIP_REMOVED) && in) {
      if (ring_remove_node(nr, m->pub.id) == 0)
        changes++;
    }
  }
  bool spread = false, new_ring = false;
  if (changes > 0) {
    ring_claim(nr);
    ring_set_version(nr, ring_version(g->ring) + 1);
    gossip__set_ring(g, nr, gossip__me(g)->pub.id);
    spread = new_ring = true;
  } else {
    ring_free(nr);
  }
  size_t tell[GOSSIP__CLAIM_TELL_MAX];
  size_t ntell = 0;
  for (size_t i = 0; i < g->nmembers; i++) {
    gossip__member *m = &g->members[i];
    bool in = ring_node_index(g->ring, m->pub.id) >= 0;
    gossip_status to = m->pub.status;
    if (m->pub.status == GOSSIP_JOINING && in)
      to = GOSSIP_VALID;
    else if (m->pub.status == GOSSIP_LEAVING && !in)
      to = GOSSIP_REMOVED;
    if (to != m->pub.status) {
      m->pub.status = to;
      m->status_version++;
      m->status_incarnation = m->pub.incarnation;
      gossip__rehash(g, m);
      gossip__changed(g, m);
      if (ntell < GOSSIP__CLAIM_TELL_MAX)
        tell[ntell++] = i;
      spread = true;
    }
  }
  gossip__report_ring(g);
  if (spread)
    gossip__spread(g, new_ring, NULL, tell, ntell);
}

/* ---- receiving ---- */

/* Applies a sync's deltas to our ring when they start from it; returns
 * the ring they make when it is the one the sender says it has, or NULL:
 * deltas from another ring (*bad false: ask for deltas from ours), or
 * deltas from ours that do not make the sender's ring (*bad true: ask for
 * the whole ring). */
static ring *gossip__apply_deltas(const gossip *g, const gossip__msg *m,
                                  bool *bad) {
  *bad = false;
  if (m->base_version != ring_version(g->ring) ||
      m->base_hash != g->ring_hash || !g->ring_hash)
    return NULL;
  *bad = true;
  ring *cur = NULL;
  for (uint32_t i = 0; i < m->ndeltas; i++) {
    ring *next = NULL;
    if (ring_delta_apply(cur ? cur : g->ring, m->deltas[i].ptr,
                         m->deltas[i].len, &next) != 0) {
      ring_free(cur);
      return NULL;
    }
    ring_free(cur);
    cur = next;
  }
  kvbuf enc;
  kvbuf_init(&enc);
  bool ok = cur && ring_version(cur) == m->ring_version &&
            ring_node_count(cur) > 0 && ring_encode(cur, &enc) == 0 &&
            XXH3_64bits(enc.data, enc.len) == m->ring_hash;
  kvbuf_free(&enc);
  if (!ok) {
    ring_free(cur);
    return NULL;
  }
  *bad = false;
  return cur;
}

/* Adopts rg (owned) when it beats our ring; returns whether it did. The
 * same ring (we restarted with it) only teaches who made it. */
static bool gossip__adopt(gossip *g, ring *rg, const gossip__msg *m) {
  if (!gossip__ring_better(m->ring_version, m->claimant, m->ring_hash,
                           ring_version(g->ring), g->claimant, g->ring_hash)) {
    ring_free(rg);
    return false;
  }
  if (ring_equal(rg, g->ring)) {
    kv_strcopy(g->claimant, sizeof(g->claimant), m->claimant);
    ring_free(rg);
    return false;
  }
  gossip__set_ring(g, rg, m->claimant);
  return true;
}

/* The old messages: a heartbeat or a digest (whole table and ring). */
static void gossip__receive_digest(gossip *g, gossip__msg *m) {
  bool adopted = false;
  if (m->ring) {
    adopted = gossip__adopt(g, m->ring, m);
    m->ring = NULL;
  }
  gossip__report_ring(g);
  if (adopted)
    gossip__spread(g, true, m->sender.peer_addr, NULL, 0);
  uint64_t ours = ring_version(g->ring);
  const char *to = m->sender.peer_addr;
  bool theirs_better =
      gossip__ring_better(m->ring_version, m->claimant, m->ring_hash, ours,
                          g->claimant, g->ring_hash);
  bool ours_better =
      gossip__ring_better(ours, g->claimant, g->ring_hash, m->ring_version,
                          m->claimant, m->ring_hash);
  if (m->kind == GOSSIP__MSG_HEARTBEAT) {
    if (theirs_better)
      gossip__send_digest(g, to, true);
    else if (ours_better)
      gossip__send_digest(g, to, false);
  } else if (m->want_reply || ours_better) {
    gossip__send_digest(g, to, false);
  }
}

/* A sync: the ring part, the heartbeat vector, and the answer (gossip.h
 * says when one goes back and what it holds). */
static void gossip__receive_sync(gossip *g, gossip__msg *m, uint64_t now_ms) {
  bool adopted = false, ring_failed = false;
  if (m->ring) {
    adopted = gossip__adopt(g, m->ring, m);
    m->ring = NULL;
  } else if (m->ndeltas) {
    ring *rg = gossip__apply_deltas(g, m, &ring_failed);
    if (rg)
      adopted = gossip__adopt(g, rg, m);
  }
  gossip__report_ring(g);
  if (adopted)
    gossip__spread(g, true, m->sender.peer_addr, NULL, 0);

  bool mismatch = false;
  if (m->vector.ptr) {
    if (m->members_hash == g->members_hash && m->vector.len == 2 * g->nmembers)
      gossip__apply_vector(g, m->vector.ptr, m->age_unit_ms, now_ms);
    else
      mismatch = true;
  }

  const char *to = m->sender.peer_addr;
  uint64_t ours = ring_version(g->ring);
  gossip__sync_opts o = {.ring = GOSSIP__RING_NONE};
  if (gossip__ring_better(m->ring_version, m->claimant, m->ring_hash, ours,
                          g->claimant, g->ring_hash))
    o.flags |= GOSSIP__F_WANT_RING | (ring_failed ? GOSSIP__F_WANT_FULL : 0);
  else if (gossip__ring_better(ours, g->claimant, g->ring_hash, m->ring_version,
                               m->claimant, m->ring_hash)) {
    o.ring = m->flags & GOSSIP__F_WANT_FULL ? GOSSIP__RING_FULL
                                            : GOSSIP__RING_DELTAS;
    o.base_version = m->ring_version;
    o.base_hash = m->ring_hash;
  }
  o.vector = (m->flags & GOSSIP__F_REPLY) != 0;
  if (mismatch) {
    if (m->flags & GOSSIP__F_MISMATCH_AGAIN) {
      /* Both sides' recent entries went both ways and the tables still
       * differ: whole tables, both ways. */
      gossip__send_digest(g, to, true);
    } else {
      /* Ours may make them agree (or the sender's did not: it moved on
       * meanwhile, as during a leave that the claimant finishes at once). */
      o.flags |= m->flags & GOSSIP__F_MISMATCH ? GOSSIP__F_MISMATCH_AGAIN
                                               : GOSSIP__F_MISMATCH;
      o.vector = true;
    }
  }
  if (o.flags || o.vector || o.ring != GOSSIP__RING_NONE)
    gossip__send_sync(g, to, &o);
}

/* ---- public API ---- */

const char *gossip_status_name(gossip_status s, bool alive) {
  switch (s) {
  case GOSSIP_JOINING:
    return "joining";
  case GOSSIP_VALID:
    return alive ? "up" : "down";
  case GOSSIP_LEAVING:
    return "leaving";
  case GOSSIP_REMOVED:
    return "removed";
  }
  return "unknown";
}

gossip *gossip_new(const gossip_config *cfg, const gossip_io *io,
                   const ring *initial, uint64_t now_ms) {
  if (!cfg || !io || !io->send || !cfg->id || !*cfg->id || !cfg->peer_addr ||
      !*cfg->peer_addr || cfg->nseeds > GOSSIP_SEEDS_MAX ||
      (cfg->nseeds && !cfg->seeds))
    return NULL;
  gossip *g = calloc(1, sizeof(*g));
  if (!g)
    return NULL;
  kvbuf_init(&g->ring_enc);
  kvbuf_init(&g->out);
  g->io = *io;
  g->now_ms = now_ms;
  g->vec = malloc(2 * GOSSIP_MEMBERS_MAX);
  g->take = malloc(GOSSIP_MEMBERS_MAX * sizeof(*g->take));
  if (!g->vec || !g->take || gossip__table_reserve(g, 1) ||
      gossip__scratch_reserve(g, GOSSIP__TABLE_MIN))
    goto fail;
  g->interval_ms =
      cfg->interval_ms ? cfg->interval_ms : GOSSIP_INTERVAL_MS_DEFAULT;
  g->fanout = cfg->fanout ? cfg->fanout : GOSSIP_FANOUT_DEFAULT;
  if (g->fanout > GOSSIP_FANOUT_MAX)
    g->fanout = GOSSIP_FANOUT_MAX;
  g->phi_threshold = cfg->phi_threshold > 0 ? cfg->phi_threshold
                                            : GOSSIP_PHI_THRESHOLD_DEFAULT;
  g->phi_y = gossip_phi_y(g->phi_threshold);
  g->age_unit_ms = g->interval_ms / GOSSIP_AGE_STEPS;
  if (g->age_unit_ms == 0)
    g->age_unit_ms = 1;
  if (g->age_unit_ms > GOSSIP_AGE_UNIT_MS_MAX)
    g->age_unit_ms = GOSSIP_AGE_UNIT_MS_MAX;
  g->next_suspect_ms = UINT64_MAX;
  g->q = cfg->q ? cfg->q : RING_Q_DEFAULT;
  g->n = cfg->n ? cfg->n : GOSSIP_N_DEFAULT;
  g->rng = cfg->rng_seed;
  g->full_budget = GOSSIP_FULL_PER_ROUND;

  gossip__entry self;
  memset(&self, 0, sizeof(self));
  if (!kv_strcopy(self.id, sizeof(self.id), cfg->id) ||
      !kv_strcopy(self.region, sizeof(self.region),
                  cfg->region && *cfg->region ? cfg->region
                                              : GOSSIP_REGION_DEFAULT) ||
      !kv_strcopy(self.zone, sizeof(self.zone), cfg->zone) ||
      !kv_strcopy(self.client_addr, sizeof(self.client_addr),
                  cfg->client_addr) ||
      !kv_strcopy(self.peer_addr, sizeof(self.peer_addr), cfg->peer_addr) ||
      !kv_strcopy(self.version, sizeof(self.version),
                  cfg->version ? cfg->version : ""))
    goto fail;
  self.incarnation = cfg->incarnation;
  self.heartbeat = 1;
  self.status = GOSSIP_JOINING;
  self.status_incarnation = cfg->incarnation;
  g->self = 0;
  gossip__member *me = gossip__insert(g, &self, now_ms, true);
  if (!me)
    goto fail;
  g->self = gossip__index(g, me);

  bool other_seeds = false;
  for (size_t i = 0; i < cfg->nseeds; i++) {
    const char *s = cfg->seeds[i];
    if (!s || !*s || strcmp(s, cfg->peer_addr) == 0)
      continue;
    if (!kv_strcopy(g->seeds[g->nseeds], GOSSIP_ADDR_MAX, s))
      goto fail;
    g->nseeds++;
    other_seeds = true;
  }

  if (initial && ring_node_count(initial) > 0) {
    ring *r = ring_clone(initial);
    if (!r)
      goto fail;
    gossip__set_ring(g, r, "");
    g->ring_report = false; /* the caller gave it to us */
    if (ring_node_index(r, me->pub.id) >= 0)
      me->pub.status = GOSSIP_VALID;
  } else {
    ring *r = ring_new(g->q);
    if (!r)
      goto fail;
    ring_set_n(r, g->n);
    for (size_t i = 0; i < cfg->nreplicas; i++) {
      if (!cfg->replicas || ring_set_region_replicas(
              r, cfg->replicas[i].region, cfg->replicas[i].n) != 0) {
        ring_free(r);
        goto fail;
      }
    }
    gossip__set_ring(g, r, "");
    if (!other_seeds) {
      /* No one to ask: a cluster of one, at once. */
      ring *one = ring_clone(g->ring);
      if (!one || ring_add_node(one, me->pub.id, me->pub.region,
                                me->pub.zone) < 0) {
        ring_free(one);
        goto fail;
      }
      ring_claim(one);
      ring_set_version(one, 1);
      gossip__set_ring(g, one, me->pub.id);
      me->pub.status = GOSSIP_VALID;
      me->status_version = 1;
    }
  }
  gossip__rehash(g, me);
  g->nrecent = 0; /* nothing to tell before anyone knows us */
  g->next_round_ms = now_ms;
  g->boot_until_ms = now_ms + (uint64_t)GOSSIP_BOOT_ROUNDS * g->interval_ms;
  return g;
fail:
  gossip_free(g);
  return NULL;
}

void gossip_free(gossip *g) {
  if (!g)
    return;
  ring_free(g->ring);
  kvbuf_free(&g->ring_enc);
  kvbuf_free(&g->out);
  gossip__hist_clear(g);
  free(g->members);
  free(g->idkey);
  free(g->hb8);
  free(g->news);
  free(g->alive_at_ms);
  free(g->suspect_ms);
  free(g->scratch);
  free(g->vec);
  free(g->take);
  free(g);
}

void gossip_tick(gossip *g, uint64_t now_ms) {
  g->now_ms = now_ms;
  gossip__report_ring(g);
  if (now_ms >= g->next_round_ms) {
    gossip__round(g);
    g->next_round_ms += g->interval_ms;
    if (g->next_round_ms <= now_ms)
      g->next_round_ms = now_ms + g->interval_ms;
  }
  if (now_ms < g->next_check_ms)
    return;
  g->next_check_ms = now_ms + GOSSIP_CHECK_MS;
  gossip__liveness(g, now_ms);
  gossip__claim(g, now_ms);
}

int gossip_receive(gossip *g, const uint8_t *payload, size_t len,
                   uint64_t now_ms) {
  gossip__msg m;
  int rc = gossip__decode(g, payload, len, &m);
  if (rc)
    return rc;
  g->now_ms = now_ms;
  gossip__merge(g, &m.sender, now_ms, true);
  for (uint32_t i = 0; i < m.nentries; i++)
    gossip__merge(g, &g->scratch[i], now_ms, false);
  if (m.kind == GOSSIP__MSG_SYNC)
    gossip__receive_sync(g, &m, now_ms);
  else
    gossip__receive_digest(g, &m);
  ring_free(m.ring);
  return 0;
}

const ring *gossip_ring(const gossip *g) { return g->ring; }

size_t gossip_member_count(const gossip *g) { return g->nmembers; }

const gossip_member *gossip_member_at(const gossip *g, size_t i) {
  return i < g->nmembers ? &g->members[i].pub : NULL;
}

const gossip_member *gossip_find(const gossip *g, const char *id) {
  const gossip__member *m = id ? gossip__lookup(g, id) : NULL;
  return m ? &m->pub : NULL;
}

const gossip_member *gossip_self(const gossip *g) {
  return &g->members[g->self].pub;
}

bool gossip_alive(const gossip *g, const char *id) {
  const gossip_member *m = gossip_find(g, id);
  return m && m->alive;
}

uint64_t gossip_status_version(const gossip *g, const char *id) {
  const gossip__member *m = id ? gossip__lookup(g, id) : NULL;
  return m ? m->status_version : 0;
}

const char *gossip_claimant(const gossip *g) { return g->claimant; }

int gossip_join(gossip *g, const char *seed_addr, uint64_t now_ms) {
  if (!seed_addr || !*seed_addr || strlen(seed_addr) >= GOSSIP_ADDR_MAX)
    return KV_EINVAL;
  gossip__member *me = gossip__me(g);
  size_t nodes = ring_node_count(g->ring);
  if (nodes > 1 || (nodes == 1 && ring_node_index(g->ring, me->pub.id) < 0))
    return KV_ESTATE;
  ring *r = ring_new(ring_q(g->ring));
  if (!r)
    return KV_ENOMEM;
  ring_set_n(r, ring_n(g->ring));
  for (size_t i = 0; i < ring_region_count(g->ring); i++)
    if (ring_set_region_replicas(r, ring_region_name(g->ring, i),
                                 ring_region_replicas(g->ring, i)) != 0) {
      ring_free(r);
      return KV_ENOMEM;
    }
  g->now_ms = now_ms;
  gossip__set_ring(g, r, "");
  /* Only ourselves remain, joining. */
  if (g->self != 0) {
    g->members[0] = *me; /* (hb8 and news of self are unused) */
    g->idkey[0] = g->idkey[g->self];
  }
  g->self = 0;
  g->nmembers = 1;
  g->suspect_ms[0] = UINT64_MAX;
  g->next_suspect_ms = UINT64_MAX;
  g->nrecent = 0;
  me = gossip__me(g);
  g->members_hash = me->hash;
  me->pub.status = GOSSIP_JOINING;
  me->status_version++;
  me->status_incarnation = me->pub.incarnation;
  gossip__rehash(g, me);
  gossip__changed(g, me);
  if (g->nseeds < GOSSIP__SEED_SLOTS)
    g->nseeds++;
  kv_strcopy(g->seeds[g->nseeds - 1], GOSSIP_ADDR_MAX, seed_addr);
  g->boot_until_ms = now_ms + (uint64_t)GOSSIP_BOOT_ROUNDS * g->interval_ms;
  g->full_budget = GOSSIP_FULL_PER_ROUND;
  gossip__send_digest(g, seed_addr, true);
  return 0;
}

/* Where a member whose address this node never learned is said to be: a
 * ring owner that died while the whole cluster was down, and that an
 * operator removes. Not an address; never dialled (removed members get no
 * heartbeats). */
#define GOSSIP__ADDR_UNKNOWN "-"

/* Applies an operator's status change to member id. */
static int gossip__operator(gossip *g, const char *id, gossip_status to,
                            uint64_t now_ms) {
  g->now_ms = now_ms;
  gossip__member *m = id ? gossip__lookup(g, id) : NULL;
  int idx = id && !m ? ring_node_index(g->ring, id) : -1;
  if (!m && idx >= 0 && to == GOSSIP_REMOVED) {
    /* An owner of our (saved) ring we have not heard from since we
     * started: it never sent its entry, yet it must be removable, or the
     * ring keeps a dead node for good. */
    gossip__entry e;
    memset(&e, 0, sizeof(e));
    if (kv_strcopy(e.id, sizeof(e.id), id) &&
        kv_strcopy(e.region, sizeof(e.region),
                   ring_node_region(g->ring, (size_t)idx)) &&
        kv_strcopy(e.zone, sizeof(e.zone),
                   ring_node_zone(g->ring, (size_t)idx)) &&
        kv_strcopy(e.client_addr, sizeof(e.client_addr),
                   GOSSIP__ADDR_UNKNOWN) &&
        kv_strcopy(e.peer_addr, sizeof(e.peer_addr), GOSSIP__ADDR_UNKNOWN)) {
      e.status = GOSSIP_VALID;
      m = gossip__insert(g, &e, now_ms, false);
    }
  }
  if (!m)
    return KV_ENOTFOUND;
  if (m->pub.status >= to)
    return KV_ESTATE;
  m->pub.status = to;
  m->status_version++;
  m->status_incarnation = m->pub.incarnation;
  gossip__rehash(g, m);
  gossip__changed(g, m);
  size_t target = gossip__index(g, m);
  gossip__spread(g, false, NULL, &target, 1);
  return 0;
}

int gossip_leave(gossip *g, const char *id, uint64_t now_ms) {
  /* A member still joining has no ring with itself in it (in this view):
   * leaving now would let a claimant whose ring never had it mark it
   * removed, and it would stop while a newer ring still names it owner. */
  const gossip__member *m = id ? gossip__lookup(g, id) : NULL;
  if (m && m->pub.status == GOSSIP_JOINING)
    return KV_ESTATE;
  return gossip__operator(g, id, GOSSIP_LEAVING, now_ms);
}

int gossip_remove(gossip *g, const char *id, uint64_t now_ms) {
  return gossip__operator(g, id, GOSSIP_REMOVED, now_ms);
}

/* ---- membership across restarts ---- */

int gossip_members_encode(const gossip *g, kvbuf *out) {
  size_t before = out->len;
  msgpack_packer pk;
  mp_packer_init(&pk, out);
  msgpack_pack_array(&pk, 2);
  msgpack_pack_uint32(&pk, GOSSIP_WIRE_VERSION);
  msgpack_pack_array(&pk, (uint32_t)(g->nmembers - 1));
  for (size_t i = 0; i < g->nmembers; i++)
    if (i != g->self)
      gossip__pack_entry(&pk, &g->members[i], 0);
  if (out->oom) {
    out->len = before;
    return KV_ENOMEM;
  }
  return 0;
}

int gossip_members_restore(gossip *g, const uint8_t *buf, size_t len,
                           uint64_t now_ms) {
  mp_reader r;
  uint32_t n, ver, cnt;
  mp_reader_init(&r, buf, len);
  if (mp_read_array(&r, &n) || n < 2 || mp_read_u32(&r, &ver) ||
      ver != GOSSIP_WIRE_VERSION || mp_read_array(&r, &cnt) ||
      cnt > GOSSIP_MEMBERS_MAX || gossip__scratch_reserve(g, cnt))
    return KV_EPROTO;
  for (uint32_t i = 0; i < cnt; i++)
    if (gossip__read_entry(&r, &g->scratch[i]))
      return KV_EPROTO;
  for (uint32_t i = 2; i < n && !r.err; i++)
    mp_skip(&r);
  if (r.err || mp_remaining(&r) != 0)
    return KV_EPROTO;
  g->now_ms = now_ms;
  gossip__table_reserve(g, g->nmembers + cnt); /* else grown one by one */
  for (uint32_t i = 0; i < cnt; i++) {
    const gossip__entry *e = &g->scratch[i];
    if (gossip__lookup(g, e->id))
      continue; /* this node, or known already */
    gossip__insert(g, e, now_ms, false);
  }
  g->nrecent = 0; /* what the cluster had: no news to carry in syncs */
  return 0;
}
