/*
 * gossip.c: membership, phi-accrual failure detection and ring agreement
 * as a sans-IO state machine. See gossip.h for the design and the wire
 * format.
 * Depends on: ring.h (ring state and its encoding), mp.h (msgpack),
 * phi.h (the failure detector), rng.h (splitmix64), kv_err.h.
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
#define GOSSIP__ENTRY_FIELDS 10
#define GOSSIP__SEED_SLOTS (GOSSIP_SEEDS_MAX + 1) /* + the gossip_join seed */

enum { GOSSIP__MSG_HEARTBEAT = 1, GOSSIP__MSG_DIGEST = 2 };

/* One member as this node keeps it. */
typedef struct gossip__member {
  gossip_member pub;
  uint64_t status_version;
  uint64_t status_incarnation; /* the member's incarnation the status is for */
  gossip_phi phi;
  /* We have evidence it ran since we learned of it: a message from it, or
   * its heartbeat counter moving. A member known only from another
   * node's table is not alive until then: that table may be stale (a node
   * removed, and dead, while this one was down), and a dead node taken
   * for alive would be put back into the ring. */
  bool heard;
} gossip__member;

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
} gossip__entry;

/* A decoded message; entries live in gossip.scratch. */
typedef struct gossip__msg {
  int kind;
  gossip__entry sender;
  uint64_t ring_version;
  char claimant[RING_NAME_MAX];
  bool want_reply;
  uint32_t nentries;
  ring *ring; /* owned by the message until adopted */
  uint64_t ring_hash; /* XXH3 of the ring's encoding; 0 without a ring */
} gossip__msg;

struct gossip {
  gossip_io io;
  char seeds[GOSSIP__SEED_SLOTS][GOSSIP_ADDR_MAX];
  size_t nseeds;
  uint32_t q, n, interval_ms, fanout;
  double phi_threshold;
  uint64_t rng;

  ring *ring;
  char claimant[RING_NAME_MAX]; /* who made this ring version; "" unknown */
  kvbuf ring_enc;               /* ring_encode(ring), empty for version 0 */
  uint64_t ring_hash;           /* XXH3 of ring_enc; 0 when it is empty */
  bool ring_report;             /* ring_changed not yet called for ring */

  gossip__member *members; /* sorted by id; GOSSIP_MEMBERS_MAX slots */
  size_t nmembers;
  size_t self;

  uint64_t next_round_ms;
  uint64_t next_check_ms; /* liveness and claimant, every GOSSIP_CHECK_MS */
  uint64_t boot_until_ms; /* no brand-new ring before this */

  gossip__entry *scratch; /* GOSSIP_MEMBERS_MAX decoded entries */
  kvbuf out;
};

/* ---- small helpers ---- */

static gossip__member *gossip__me(gossip *g) { return &g->members[g->self]; }

/* Index of id in the sorted table, or where it would go (*found false). */
static size_t gossip__search(const gossip *g, const char *id, bool *found) {
  size_t lo = 0, hi = g->nmembers;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(g->members[mid].pub.id, id);
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

static gossip__member *gossip__lookup(const gossip *g, const char *id) {
  bool found;
  size_t i = gossip__search(g, id, &found);
  return found ? &g->members[i] : NULL;
}

static uint32_t gossip__min_std(const gossip *g) {
  return g->interval_ms / GOSSIP_PHI_MIN_STD_DIVISOR;
}

/* Inserts a member at its sorted place. Returns it, or NULL when full. */
static gossip__member *gossip__insert(gossip *g, const gossip__entry *e,
                                      uint64_t now_ms, bool heard) {
  bool found;
  size_t at = gossip__search(g, e->id, &found);
  if (found)
    return &g->members[at];
  if (g->nmembers >= GOSSIP_MEMBERS_MAX)
    return NULL;
  memmove(&g->members[at + 1], &g->members[at],
          (g->nmembers - at) * sizeof(g->members[0]));
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
  m->pub.incarnation = e->incarnation;
  m->pub.heartbeat = e->heartbeat;
  m->pub.status = e->status;
  m->pub.alive = heard;
  m->heard = heard;
  m->status_version = e->status_version;
  m->status_incarnation = e->status_incarnation;
  gossip_phi_init(&m->phi, g->interval_ms, gossip__min_std(g));
  gossip_phi_heartbeat(&m->phi, now_ms);
  return m;
}

static void gossip__changed(gossip *g, const gossip__member *m) {
  if (g->io.member_changed)
    g->io.member_changed(g->io.ctx, &m->pub);
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

/* Replaces the ring (takes ownership of r) and re-encodes it. */
static void gossip__set_ring(gossip *g, ring *r, const char *claimant) {
  ring_free(g->ring);
  g->ring = r;
  kv_strcopy(g->claimant, sizeof(g->claimant), claimant);
  g->ring_enc.len = 0;
  g->ring_enc.oom = 0;
  if (ring_node_count(r) > 0 && ring_encode(r, &g->ring_enc) != 0)
    g->ring_enc.len = 0;
  g->ring_hash = g->ring_enc.len ? XXH3_64bits(g->ring_enc.data,
                                               g->ring_enc.len)
                                 : 0;
  g->ring_report = ring_node_count(r) > 0;
}

static void gossip__report_ring(gossip *g) {
  if (!g->ring_report)
    return;
  g->ring_report = false;
  if (g->io.ring_changed)
    g->io.ring_changed(g->io.ctx, g->ring);
}

/* ---- encoding ---- */

static void gossip__pack_member(msgpack_packer *pk, const gossip__member *m) {
  msgpack_pack_array(pk, GOSSIP__ENTRY_FIELDS);
  mp_pack_cstr(pk, m->pub.id);
  mp_pack_cstr(pk, m->pub.region);
  mp_pack_cstr(pk, m->pub.zone);
  mp_pack_cstr(pk, m->pub.client_addr);
  mp_pack_cstr(pk, m->pub.peer_addr);
  msgpack_pack_uint64(pk, m->pub.incarnation);
  msgpack_pack_uint64(pk, m->pub.heartbeat);
  msgpack_pack_uint32(pk, (uint32_t)m->pub.status);
  msgpack_pack_uint64(pk, m->status_version);
  msgpack_pack_uint64(pk, m->status_incarnation);
}

/* Builds a heartbeat or digest in g->out and sends it to addr. */
static void gossip__send(gossip *g, const char *addr, int kind,
                         bool want_reply) {
  if (!addr || !*addr || strcmp(addr, gossip__me(g)->pub.peer_addr) == 0)
    return;
  uint64_t version = ring_version(g->ring);
  bool with_ring = g->ring_enc.len > 0;
  if (kind == GOSSIP__MSG_DIGEST && version > 0 && !with_ring)
    return; /* the ring did not encode (OOM): send nothing rather than lie */
  g->out.len = 0;
  g->out.oom = 0;
  msgpack_packer pk;
  mp_packer_init(&pk, &g->out);
  msgpack_pack_array(&pk, kind == GOSSIP__MSG_HEARTBEAT
                              ? GOSSIP__HEARTBEAT_FIELDS
                              : GOSSIP__DIGEST_FIELDS);
  msgpack_pack_uint32(&pk, GOSSIP_WIRE_VERSION);
  msgpack_pack_uint32(&pk, (uint32_t)kind);
  gossip__pack_member(&pk, gossip__me(g));
  msgpack_pack_uint64(&pk, version);
  mp_pack_cstr(&pk, g->claimant);
  if (kind == GOSSIP__MSG_DIGEST) {
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
  }
  if (!g->out.oom && g->out.len <= GOSSIP_MSG_MAX)
    g->io.send(g->io.ctx, addr, g->out.data, g->out.len);
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
  if (mp_read_array(r, &n) || n != GOSSIP__ENTRY_FIELDS)
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
  if (!e->id[0] || !e->peer_addr[0] || status > GOSSIP_REMOVED)
    return KV_EPROTO;
  e->status = (gossip_status)status;
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
  if (!((kind == GOSSIP__MSG_HEARTBEAT && n == GOSSIP__HEARTBEAT_FIELDS) ||
        (kind == GOSSIP__MSG_DIGEST && n == GOSSIP__DIGEST_FIELDS)))
    return KV_EPROTO;
  m->kind = (int)kind;
  if (gossip__read_entry(&r, &m->sender) ||
      mp_read_uint(&r, &m->ring_version) ||
      gossip__read_name(&r, m->claimant, sizeof(m->claimant)))
    return KV_EPROTO;
  if (kind == GOSSIP__MSG_DIGEST) {
    uint32_t cnt;
    if (mp_read_bool(&r, &m->want_reply) || mp_read_array(&r, &cnt) ||
        cnt > GOSSIP_MEMBERS_MAX)
      return KV_EPROTO;
    for (uint32_t i = 0; i < cnt; i++)
      if (gossip__read_entry(&r, &g->scratch[i]))
        return KV_EPROTO;
    m->nentries = cnt;
    if (mp_peek(&r) == MP_NIL) {
      if (mp_read_nil(&r) || m->ring_version != 0)
        return KV_EPROTO;
    } else {
      kv_slice s;
      if (mp_read_bytes(&r, &s))
        return KV_EPROTO;
      ring *rg = NULL;
      if (ring_decode(s.ptr, s.len, &rg) != 0 || !rg)
        return KV_EPROTO;
      m->ring_hash = XXH3_64bits(s.ptr, s.len);
      if (ring_version(rg) != m->ring_version || m->ring_version == 0 ||
          ring_node_count(rg) == 0) {
        ring_free(rg);
        return KV_EPROTO;
      }
      m->ring = rg;
    }
  }
  if (r.err || mp_remaining(&r) != 0) {
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
  if (m == gossip__me(g)) {
    /* Our own entry: our heartbeat must stay ahead of any copy out there
     * (a restart with the same incarnation starts counting again). */
    if (e->incarnation == m->pub.incarnation &&
        e->heartbeat > m->pub.heartbeat)
      m->pub.heartbeat = e->heartbeat + 1;
    if (gossip__status_newer(e->status_version, e->status, m->status_version,
                             m->pub.status)) {
      if (e->status == GOSSIP_REMOVED && m->pub.status == GOSSIP_JOINING &&
          e->status_incarnation < m->pub.incarnation) {
        /* We were removed in an earlier life; this one joins again. */
        m->status_version = e->status_version + 1;
        m->status_incarnation = m->pub.incarnation;
      } else {
        m->pub.status = e->status;
        m->status_version = e->status_version;
        m->status_incarnation = e->status_incarnation;
        gossip__changed(g, m);
      }
    }
    return;
  }
  bool changed = false;
  if (e->incarnation > m->pub.incarnation ||
      (e->incarnation == m->pub.incarnation &&
       e->heartbeat > m->pub.heartbeat)) {
    m->pub.incarnation = e->incarnation;
    m->pub.heartbeat = e->heartbeat;
    memcpy(m->pub.region, e->region, sizeof(m->pub.region));
    memcpy(m->pub.zone, e->zone, sizeof(m->pub.zone));
    memcpy(m->pub.client_addr, e->client_addr, sizeof(m->pub.client_addr));
    memcpy(m->pub.peer_addr, e->peer_addr, sizeof(m->pub.peer_addr));
    gossip_phi_heartbeat(&m->phi, now_ms);
    m->pub.phi = gossip_phi_value(&m->phi, now_ms);
    m->heard = true;
    if (!m->pub.alive && m->pub.phi < g->phi_threshold) {
      m->pub.alive = true;
      changed = true;
    }
  }
  if (gossip__status_newer(e->status_version, e->status, m->status_version,
                           m->pub.status)) {
    m->pub.status = e->status;
    m->status_version = e->status_version;
    m->status_incarnation = e->status_incarnation;
    changed = true;
  }
  if (changed)
    gossip__changed(g, m);
}

/* ---- rounds, liveness, claimant ---- */

static bool gossip__has_peers(const gossip *g) {
  for (size_t i = 0; i < g->nmembers; i++)
    if (i != g->self && g->members[i].pub.alive &&
        g->members[i].pub.status != GOSSIP_REMOVED)
      return true;
  return false;
}

/* Sends a digest to every alive member (after a change worth spreading). */
static void gossip__broadcast(gossip *g) {
  for (size_t i = 0; i < g->nmembers; i++) {
    const gossip__member *m = &g->members[i];
    if (i != g->self && m->pub.alive && m->pub.status != GOSSIP_REMOVED)
      gossip__send(g, m->pub.peer_addr, GOSSIP__MSG_DIGEST, false);
  }
}

static void gossip__round(gossip *g, uint64_t now_ms) {
  gossip__me(g)->pub.heartbeat++;
  size_t cand[GOSSIP_MEMBERS_MAX];
  size_t ncand = 0;
  /* Heartbeats to every member that is not removed, down ones included
   * (so a partition heals); digests to fanout random alive ones. */
  for (size_t i = 0; i < g->nmembers; i++) {
    const gossip__member *m = &g->members[i];
    if (i == g->self || m->pub.status == GOSSIP_REMOVED)
      continue;
    gossip__send(g, m->pub.peer_addr, GOSSIP__MSG_HEARTBEAT, false);
    if (m->pub.alive)
      cand[ncand++] = i;
  }
  for (uint32_t k = 0; k < g->fanout && ncand > 0; k++) {
    size_t j = (size_t)(kv_splitmix64(&g->rng) % ncand);
    gossip__send(g, g->members[cand[j]].pub.peer_addr, GOSSIP__MSG_DIGEST,
                 true);
    cand[j] = cand[--ncand];
  }
  if (!gossip__has_peers(g))
    for (size_t i = 0; i < g->nseeds; i++)
      gossip__send(g, g->seeds[i], GOSSIP__MSG_DIGEST, true);
  (void)now_ms;
}

static void gossip__liveness(gossip *g, uint64_t now_ms) {
  for (size_t i = 0; i < g->nmembers; i++) {
    gossip__member *m = &g->members[i];
    if (i == g->self) {
      m->pub.alive = true;
      m->pub.phi = 0;
      continue;
    }
    m->pub.phi = gossip_phi_value(&m->phi, now_ms);
    bool alive = m->heard && m->pub.phi < g->phi_threshold;
    if (alive != m->pub.alive) {
      m->pub.alive = alive;
      gossip__changed(g, m);
    }
  }
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

static void gossip__claim(gossip *g, uint64_t now_ms) {
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
  bool spread = false;
  if (changes > 0) {
    ring_claim(nr);
    ring_set_version(nr, ring_version(g->ring) + 1);
    gossip__set_ring(g, nr, gossip__me(g)->pub.id);
    spread = true;
  } else {
    ring_free(nr);
  }
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
      gossip__changed(g, m);
      spread = true;
    }
  }
  gossip__report_ring(g);
  if (spread)
    gossip__broadcast(g);
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
  g->members = calloc(GOSSIP_MEMBERS_MAX, sizeof(*g->members));
  g->scratch = calloc(GOSSIP_MEMBERS_MAX, sizeof(*g->scratch));
  if (!g->members || !g->scratch)
    goto fail;
  g->interval_ms =
      cfg->interval_ms ? cfg->interval_ms : GOSSIP_INTERVAL_MS_DEFAULT;
  g->fanout = cfg->fanout ? cfg->fanout : GOSSIP_FANOUT_DEFAULT;
  if (g->fanout > GOSSIP_FANOUT_MAX)
    g->fanout = GOSSIP_FANOUT_MAX;
  g->phi_threshold = cfg->phi_threshold > 0 ? cfg->phi_threshold
                                            : GOSSIP_PHI_THRESHOLD_DEFAULT;
  g->q = cfg->q ? cfg->q : RING_Q_DEFAULT;
  g->n = cfg->n ? cfg->n : GOSSIP_N_DEFAULT;
  g->rng = cfg->rng_seed;

  gossip__entry self;
  memset(&self, 0, sizeof(self));
  if (!kv_strcopy(self.id, sizeof(self.id), cfg->id) ||
      !kv_strcopy(self.region, sizeof(self.region),
                  cfg->region && *cfg->region ? cfg->region
                                              : GOSSIP_REGION_DEFAULT) ||
      !kv_strcopy(self.zone, sizeof(self.zone), cfg->zone) ||
      !kv_strcopy(self.client_addr, sizeof(self.client_addr),
                  cfg->client_addr) ||
      !kv_strcopy(self.peer_addr, sizeof(self.peer_addr), cfg->peer_addr))
    goto fail;
  self.incarnation = cfg->incarnation;
  self.heartbeat = 1;
  self.status = GOSSIP_JOINING;
  self.status_incarnation = cfg->incarnation;
  g->self = 0;
  gossip__member *me = gossip__insert(g, &self, now_ms, true);
  g->self = (size_t)(me - g->members);

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
  free(g->members);
  free(g->scratch);
  free(g);
}

void gossip_tick(gossip *g, uint64_t now_ms) {
  gossip__report_ring(g);
  if (now_ms >= g->next_round_ms) {
    gossip__round(g, now_ms);
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
  gossip__merge(g, &m.sender, now_ms, true);
  for (uint32_t i = 0; i < m.nentries; i++)
    gossip__merge(g, &g->scratch[i], now_ms, false);
  uint64_t ours = ring_version(g->ring);
  if (m.ring && gossip__ring_better(m.ring_version, m.claimant, m.ring_hash,
                                    ours, g->claimant, g->ring_hash)) {
    if (ring_equal(m.ring, g->ring)) {
      /* The same ring (we restarted with it): learn who made it. */
      kv_strcopy(g->claimant, sizeof(g->claimant), m.claimant);
    } else {
      gossip__set_ring(g, m.ring, m.claimant);
      m.ring = NULL;
      ours = ring_version(g->ring);
    }
  }
  ring_free(m.ring);
  gossip__report_ring(g);

  const char *to = m.sender.peer_addr;
  bool theirs_better =
      gossip__ring_better(m.ring_version, m.claimant, m.ring_hash, ours,
                          g->claimant, g->ring_hash);
  bool ours_better =
      gossip__ring_better(ours, g->claimant, g->ring_hash, m.ring_version,
                          m.claimant, m.ring_hash);
  if (m.kind == GOSSIP__MSG_HEARTBEAT) {
    if (theirs_better)
      gossip__send(g, to, GOSSIP__MSG_DIGEST, true);
    else if (ours_better)
      gossip__send(g, to, GOSSIP__MSG_DIGEST, false);
  } else if (m.want_reply || ours_better) {
    gossip__send(g, to, GOSSIP__MSG_DIGEST, false);
  }
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
  gossip__set_ring(g, r, "");
  /* Only ourselves remain, joining. */
  if (g->self != 0)
    g->members[0] = *me;
  g->self = 0;
  g->nmembers = 1;
  me = gossip__me(g);
  me->pub.status = GOSSIP_JOINING;
  me->status_version++;
  me->status_incarnation = me->pub.incarnation;
  gossip__changed(g, me);
  if (g->nseeds < GOSSIP__SEED_SLOTS)
    g->nseeds++;
  kv_strcopy(g->seeds[g->nseeds - 1], GOSSIP_ADDR_MAX, seed_addr);
  g->boot_until_ms = now_ms + (uint64_t)GOSSIP_BOOT_ROUNDS * g->interval_ms;
  gossip__send(g, seed_addr, GOSSIP__MSG_DIGEST, true);
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
  gossip__changed(g, m);
  gossip__broadcast(g);
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
