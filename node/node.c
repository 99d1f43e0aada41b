/*
 * node.c: the entry points of the node core (core.h): frames in, storage
 * completions, ticks, lifecycle. It decodes, checks, and hands each event
 * to the module it belongs to (coord, replica, admin, hints, aae, handoff,
 * reap); the modules act through the base (core_int.h).
 */
#include "core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "admin.h"
#include "kv_err.h"
#include "coord.h"
#include "core_int.h"
#include "replica.h"

/* ---- frame dispatch ---- */

static int node__hello(node *n, uint64_t conn, const wire_msg *m) {
  if (m->version != WIRE_PROTOCOL_VERSION) {
    core__send_error(n, conn, m->req_id, KV_EVERSION,
                     "protocol version %llu is not supported (this node "
                     "speaks %d)",
                     (unsigned long long)m->version, WIRE_PROTOCOL_VERSION);
    return NODE_FRAME_CLOSE;
  }
  wire_msg ok = {.type = WIRE_HELLO_OK,
                 .req_id = m->req_id,
                 .version = WIRE_PROTOCOL_VERSION};
  ok.text.ptr = (const uint8_t *)n->id;
  ok.text.len = strlen(n->id);
  ok.region.ptr = (const uint8_t *)n->region;
  ok.region.len = strlen(n->region);
  ok.server_version.ptr = (const uint8_t *)n->version;
  ok.server_version.len = strlen(n->version);
  ok.partitions = ring_q(gossip_ring(n->gossip));
  wire_encode(&n->out, &ok);
  core__send_conn(n, conn);
  return NODE_FRAME_GREETED;
}

static int node__client_frame(node *n, uint64_t conn, bool greeted,
                              const wire_msg *m) {
  if (!greeted) {
    if (m->type == WIRE_HELLO)
      return node__hello(n, conn, m);
    core__send_error(n, conn, m->req_id, KV_EPROTO,
                     "a connection must start with hello");
    return NODE_FRAME_CLOSE;
  }
  switch (m->type) {
  case WIRE_GET:
    coord_get(n, conn, m);
    return NODE_FRAME_OK;
  case WIRE_PUT:
    coord_put(n, conn, m, false, false);
    return NODE_FRAME_OK;
  case WIRE_DEL:
    coord_put(n, conn, m, true, false);
    return NODE_FRAME_OK;
  case WIRE_ADMIN:
    admin_on_request(n, conn, m);
    return NODE_FRAME_OK;
  case WIRE_HELLO:
    return node__hello(n, conn, m);
  default:
    core__send_error(n, conn, m->req_id, KV_EUNKNOWN,
                     "message type %s (%u) is not a client request",
                     wire_type_name(m->type), m->type);
    return NODE_FRAME_OK;
  }
}

static bool node__coordinated(const core_req *r) {
  return r->kind == CORE_REQ_PUT || r->kind == CORE_REQ_GET ||
         r->kind == CORE_REQ_FWD;
}

/* An answer to something this node asked: to the module of the request
 * it answers, when it is the one awaited from that target. */
static void node__reply(node *n, uint64_t conn, const wire_msg *m) {
  uint32_t ti;
  core_req *r = core__req_find(n, m->req_id, &ti);
  if (!r || ti >= r->ntargets)
    return;
  core_target *t = &r->targets[ti];
  if (t->state != CORE_T_WAIT || t->conn != conn)
    return; /* duplicate, late, or from the wrong connection */
  switch (r->kind) {
  case CORE_REQ_PUT:
  case CORE_REQ_GET:
  case CORE_REQ_FWD:
    coord_on_reply(n, r, t, m);
    break;
  case CORE_REQ_HINT:
    hints_on_reply(n, r, t, m);
    break;
  case CORE_REQ_HANDOFF:
    handoff_on_reply(n, r, t, m);
    break;
  case CORE_REQ_AAE:
    aae_on_reply(n, r, t, m);
    break;
  case CORE_REQ_REAP:
    reap_on_reply(n, r, t, m);
    break;
  default:
    break;
  }
}

/* A PEER_MSG request from another node, decoded by its kind (proto's
 * WIRE_PM_MAP), to the module of that kind. */
static void node__peer_msg(node *n, uint64_t conn, const wire_msg *m) {
  switch (m->flags) {
  case WIRE_PM_HINT_PUT:
  case WIRE_PM_AAE_BRANCHES:
  case WIRE_PM_AAE_KEYS:
  case WIRE_PM_HANDOFF:
  case WIRE_PM_REAP:
    break;
  default:
    core__send_error(n, conn, m->req_id, KV_EUNKNOWN,
                     "unknown peer message kind %u", m->flags);
    return;
  }
  wire_pm *pm = malloc(sizeof(*pm)); /* the AAE leaves make it 8 KB */
  if (!pm) {
    core__send_error(n, conn, m->req_id, KV_ENOMEM, "out of memory");
    return;
  }
  if (wire_pm_decode(m->flags, m->raw.ptr, m->raw.len, pm)) {
    core__send_error(n, conn, m->req_id, KV_EPROTO, "malformed %s message",
                     wire_pm_name(m->flags));
    free(pm);
    return;
  }
  switch (pm->kind) {
  case WIRE_PM_HINT_PUT:
    hints_on_put(n, conn, m, &pm->hint_put);
    break;
  case WIRE_PM_AAE_BRANCHES:
    aae_on_branches(n, conn, m, &pm->aae_branches);
    break;
  case WIRE_PM_AAE_KEYS:
    aae_on_keys(n, conn, m, &pm->aae_keys);
    break;
  case WIRE_PM_HANDOFF:
    handoff_on_batch(n, conn, m, &pm->handoff);
    break;
  default: /* WIRE_PM_REAP */
    reap_on_msg(n, &pm->reap);
  }
  free(pm);
}

static int node__peer_frame(node *n, uint64_t conn, node_conn_kind kind,
                            bool greeted, const wire_msg *m) {
  if (kind == NODE_CONN_PEER_OUT) {
    /* Answers to what we asked. */
    switch (m->type) {
    case WIRE_REPL_PUT_OK:
    case WIRE_REPL_GET_OK:
    case WIRE_PUT_OK:
    case WIRE_DEL_OK:
    case WIRE_ERROR:
    case WIRE_PEER_MSG:
      node__reply(n, conn, m);
      return NODE_FRAME_OK;
    default:
      n->stats.bad_frames++;
      return NODE_FRAME_OK;
    }
  }
  if (!greeted) {
    if (m->type != WIRE_PEER_HELLO) {
      core__send_error(n, conn, m->req_id, KV_EPROTO,
                       "a peer connection must start with peer_hello");
      return NODE_FRAME_CLOSE;
    }
    if (m->version != WIRE_PROTOCOL_VERSION) {
      core__send_error(n, conn, m->req_id, KV_EVERSION,
                       "peer protocol version %llu is not supported",
                       (unsigned long long)m->version);
      return NODE_FRAME_CLOSE;
    }
    return NODE_FRAME_GREETED;
  }
  switch (m->type) {
  case WIRE_REPL_PUT:
    replica_on_put(n, conn, m);
    break;
  case WIRE_REPL_GET:
    replica_on_get(n, conn, m);
    break;
  case WIRE_COORD_PUT:
    n->stats.coord_puts++;
    coord_put(n, conn, m, (m->flags & WIRE_COORD_DELETE) != 0, true);
    break;
  case WIRE_PEER_MSG:
    node__peer_msg(n, conn, m);
    break;
  case WIRE_GOSSIP:
    if (gossip_receive(n->gossip, m->raw.ptr, m->raw.len, core__now(n)))
      n->stats.bad_frames++;
    break;
  default:
    n->stats.bad_frames++;
    core__send_error(n, conn, m->req_id, KV_EUNKNOWN,
                     "message type %s (%u) is not a peer request",
                     wire_type_name(m->type), m->type);
  }
  return NODE_FRAME_OK;
}

int node_on_frame(node *n, uint64_t conn, node_conn_kind kind, bool greeted,
                  const uint8_t *body, size_t len) {
  wire_msg m;
  int rc = wire_decode(body, len, &n->wlim, &m);
  if (rc) {
    n->stats.bad_frames++;
    if (kind == NODE_CONN_PEER_OUT)
      return NODE_FRAME_OK; /* never answer an answer */
    if (rc == KV_ETOOBIG)
      core__send_error(n, conn, m.req_id, rc,
                       "key or value too large (key at most %u bytes, value "
                       "at most %u bytes)",
                       KV_KEY_MAX, n->wlim.value_max);
    else if (rc == KV_EUNKNOWN)
      core__send_error(n, conn, m.req_id, rc, "unknown message type %u",
                       m.type);
    else
      core__send_error(n, conn, m.req_id, rc, "malformed %s message",
                       wire_type_name(m.type));
    return greeted ? NODE_FRAME_OK : NODE_FRAME_CLOSE;
  }
  if (kind == NODE_CONN_CLIENT)
    return node__client_frame(n, conn, greeted, &m);
  return node__peer_frame(n, conn, kind, greeted, &m);
}

/* A connection this node opened closed: every target waiting on it has
 * failed. Coordinated requests judge at once; the others (hints, handoff,
 * anti-entropy, reap checks) end at their deadline. */
void node_on_close(node *n, uint64_t conn, node_conn_kind kind) {
  if (kind != NODE_CONN_PEER_OUT)
    return;
  core_req *next;
  for (core_req *r = n->active; r; r = next) {
    next = r->next;
    bool hit = false;
    for (uint32_t i = 0; i < r->ntargets; i++) {
      core_target *t = &r->targets[i];
      if (t->state == CORE_T_WAIT && t->conn == conn && !t->self) {
        t->state = CORE_T_FAILED;
        r->fails++;
        hit = true;
      }
    }
    if (hit && node__coordinated(r))
      coord_conn_lost(n, r);
  }
}

/* Ends every request whose deadline passed, each by its module. */
static void node__expire(node *n, uint64_t now) {
  core_req *next;
  for (core_req *r = n->active; r; r = next) {
    next = r->next;
    if (now < r->deadline_ms)
      continue;
    switch (r->kind) {
    case CORE_REQ_PUT:
    case CORE_REQ_GET:
    case CORE_REQ_FWD:
      coord_expired(n, r);
      break;
    case CORE_REQ_HINT:
      hints_expired(n, r);
      break;
    case CORE_REQ_HANDOFF:
      handoff_expired(n, r);
      break;
    case CORE_REQ_AAE:
      aae_expired(n, r);
      break;
    default:
      /* A replica write whose commit never came back, or a reap check
       * that did not hear from every primary: give up on it. */
      core__req_free(n, r);
    }
  }
}

/* Saves the membership when gossip changed it (at most every
 * CORE_MEMBERS_SAVE_MS), so that a restarted node remembers its members
 * and their statuses, removals included. */
static void node__save_members(node *n, uint64_t now) {
  if (!n->members_dirty || now < n->members_save_ms)
    return;
  n->members_dirty = false;
  n->members_save_ms = now + CORE_MEMBERS_SAVE_MS;
  kvbuf b;
  kvbuf_init(&b);
  if (gossip_members_encode(n->gossip, &b) == 0) {
    uint64_t h = XXH3_64bits(b.data, b.len);
    if (h != n->members_hash &&
        n->io.meta_put(n->io.ctx, "members", b.data, b.len) == 0)
      n->members_hash = h;
  }
  kvbuf_free(&b);
}

void node_tick(node *n) {
  uint64_t now = core__now(n);
  gossip_tick(n->gossip, now);
  node__save_members(n, now);
  node__expire(n, now);
  aae_check_ring(n);
  hints_tick(n, now);
  aae_tick(n, now);
  handoff_tick(n, now);
  reap_tick(n, now);
}

void node_store_done(node *n, uint64_t token, int status) {
  uint32_t target;
  core_req *r = core__req_find(n, token & ~(uint64_t)CORE_TOKEN_SYNC, &target);
  if (!r)
    return;
  bool synced = (token & CORE_TOKEN_SYNC) != 0;
  target &= CORE_TARGET_MASK;
  switch (r->kind) {
  case CORE_REQ_REPLICA:
    replica_store_done(n, r, synced, status);
    break;
  case CORE_REQ_PUT:
    coord_store_done(n, r, target, synced, status);
    break;
  case CORE_REQ_REAP:
    reap_store_done(n, r);
    break;
  case CORE_REQ_HINT: /* a re-homed hint merged here */
    hints_store_done(n, r, status);
    break;
  default:
    break;
  }
}

/* ---- gossip glue ---- */

static void node__gossip_send(void *ctx, const char *addr,
                              const uint8_t *payload, size_t len) {
  node *n = ctx;
  if (strcmp(addr, n->peer_addr) == 0)
    return;
  wire_msg g = {.type = WIRE_GOSSIP};
  g.raw.ptr = payload;
  g.raw.len = len;
  kvbuf b;
  kvbuf_init(&b);
  if (wire_encode(&b, &g) == 0)
    n->io.peer_send(n->io.ctx, addr, b.data, b.len);
  kvbuf_free(&b);
}

static void node__ring_changed(void *ctx, const ring *r) {
  node *n = ctx;
  kvbuf b;
  kvbuf_init(&b);
  if (ring_encode(r, &b) == 0)
    n->io.meta_put(n->io.ctx, "ring", b.data, b.len);
  kvbuf_free(&b);
  core__log(n, NODE_LOG_INFO, "ring version %llu: %zu nodes",
            (unsigned long long)ring_version(r), ring_node_count(r));
}

static void node__member_changed(void *ctx, const gossip_member *m) {
  node *n = ctx;
  core__log(n, NODE_LOG_INFO, "member %s (%s) is %s", m->id, m->peer_addr,
            gossip_status_name(m->status, m->alive));
  hints_member_changed(n, m);
  aae_member_changed(n, m);
  n->members_dirty = true;
}

/* ---- lifecycle ---- */

node *node_new(const node_config *cfg, const node_io *io, char *err,
               size_t errlen) {
  node *n = calloc(1, sizeof(*n));
  if (!n) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  n->io = *io;
  kv_strcopy(n->id, sizeof(n->id), cfg->id);
  kv_strcopy(n->region, sizeof(n->region),
             cfg->region && *cfg->region ? cfg->region : "default");
  kv_strcopy(n->zone, sizeof(n->zone), cfg->zone);
  kv_strcopy(n->client_addr, sizeof(n->client_addr), cfg->client_addr);
  kv_strcopy(n->peer_addr, sizeof(n->peer_addr), cfg->peer_addr);
  kv_strcopy(n->version, sizeof(n->version),
             cfg->version ? cfg->version : KVORUM_VERSION);
  n->incarnation = cfg->incarnation;
  n->actor = node_actor_of(n->id, n->incarnation);
  n->def_r = cfg->r ? cfg->r : 2;
  n->def_w = cfg->w ? cfg->w : 2;
  n->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : NODE_TIMEOUT_MS_DEFAULT;
  n->limits = cfg->limits.siblings_max ? cfg->limits : obj_limits_default;
  n->wlim = wire_limits_default;
  if (n->limits.value_max)
    n->wlim.value_max = n->limits.value_max;
  n->log_level = cfg->log_level;
  kvbuf_init(&n->out);
  kvbuf_init(&n->scratch);
  n->nslots = NODE_REQUESTS_MAX;
  if (cfg->requests_max && cfg->requests_max < NODE_REQUESTS_MAX) {
    n->nslots = 1;
    while (n->nslots * 2 <= cfg->requests_max)
      n->nslots *= 2;
  }
  n->slots = calloc(n->nslots, sizeof(*n->slots));
  n->free_slots = calloc(n->nslots, sizeof(*n->free_slots));
  if (!n->slots || !n->free_slots) {
    snprintf(err, errlen, "out of memory");
    node_free(n);
    return NULL;
  }
  for (uint32_t i = 0; i < n->nslots; i++)
    n->free_slots[i] = n->nslots - 1 - i;
  n->nfree = n->nslots;

  ring *saved = NULL;
  if (cfg->ring_saved &&
      ring_decode(cfg->ring_saved, cfg->ring_saved_len, &saved) != 0) {
    core__log(n, NODE_LOG_WARN,
              "the saved ring does not decode; "
              "starting without it");
    saved = NULL;
  }
  if (saved && ring_q(saved) != cfg->q && cfg->q)
    core__log(n, NODE_LOG_WARN,
              "--partitions %u ignored: the cluster was "
              "created with %u partitions",
              cfg->q, ring_q(saved));
  gossip_config gc = {
      .id = n->id,
      .region = n->region,
      .zone = n->zone,
      .client_addr = n->client_addr,
      .peer_addr = n->peer_addr,
      .incarnation = n->incarnation,
      .seeds = cfg->seeds,
      .nseeds = cfg->nseeds,
      .q = cfg->q ? cfg->q : RING_Q_DEFAULT,
      .n = cfg->n ? cfg->n : 3,
      .replicas = cfg->replicas,
      .nreplicas = cfg->nreplicas,
      .interval_ms = cfg->gossip_interval_ms,
      .fanout = 3,
      .phi_threshold = cfg->phi_threshold,
      .rng_seed = io->random(io->ctx),
      .version = n->version,
  };
  gossip_io gio = {.ctx = n,
                   .send = node__gossip_send,
                   .ring_changed = node__ring_changed,
                   .member_changed = node__member_changed};
  n->gossip = gossip_new(&gc, &gio, saved, core__now(n));
  ring_free(saved);
  if (!n->gossip) {
    snprintf(err, errlen, "cannot start membership (bad configuration?)");
    node_free(n);
    return NULL;
  }
  if (cfg->members_saved) {
    if (gossip_members_restore(n->gossip, cfg->members_saved,
                               cfg->members_saved_len, core__now(n)))
      core__log(n, NODE_LOG_WARN, "the saved membership does not decode; "
                "starting without it");
    else
      core__log(n, NODE_LOG_INFO, "%zu members remembered from the last run",
                gossip_member_count(n->gossip) - 1);
    n->members_hash = XXH3_64bits(cfg->members_saved, cfg->members_saved_len);
    n->members_dirty = true; /* saved again only if it differs */
  }
  uint64_t now = core__now(n);
  hints_init(n, cfg, now);
  handoff_init(n, cfg, now);
  if (aae_init(n, cfg, now) || reap_init(n, cfg)) {
    snprintf(err, errlen, "out of memory");
    node_free(n);
    return NULL;
  }
  hints_load(n);
  if (aae_build_trees(n, ring_q(gossip_ring(n->gossip)))) {
    snprintf(err, errlen, "cannot build the anti-entropy trees");
    node_free(n);
    return NULL;
  }
  return n;
}

void node_free(node *n) {
  if (!n)
    return;
  if (n->slots)
    while (n->active)
      core__req_free(n, n->active);
  core__trees_free(n);
  aae_free(n);
  handoff_free(n);
  reap_free(n);
  gossip_free(n->gossip);
  free(n->slots);
  free(n->free_slots);
  kvbuf_free(&n->out);
  kvbuf_free(&n->scratch);
  free(n);
}

const char *node_id(const node *n) { return n->id; }
uint64_t node_actor(const node *n) { return n->actor; }
uint64_t node_actor_part(const node *n, uint32_t part) {
  return core__actor(n, part);
}
const gossip *node_gossip(const node *n) { return n->gossip; }
uint64_t node_hints_pending(const node *n) { return n->hints.count; }
size_t node_requests_in_flight(const node *n) { return n->nactive; }
const node_stats *node_stats_get(const node *n) { return &n->stats; }

