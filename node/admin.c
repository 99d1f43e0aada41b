/*
 * admin.c: the ADMIN commands of a node (admin.h).
 */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_int.h"

#define ADMIN_DIR_MAX 1024 /* bytes of a backup directory, NUL included */

/* ---- operator commands ---- */

static const char *admin__member_state(const gossip_member *m) {
  return gossip_status_name(m->status, m->alive);
}

static void admin__pack_str(msgpack_packer *pk, const char *k, const char *v) {
  mp_pack_cstr(pk, k);
  mp_pack_cstr(pk, v);
}

static void admin__pack_u64(msgpack_packer *pk, const char *k, uint64_t v) {
  mp_pack_cstr(pk, k);
  msgpack_pack_uint64(pk, v);
}

static void admin__status(node *n, msgpack_packer *pk) {
  const ring *rg = gossip_ring(n->gossip);
  size_t cnt = gossip_member_count(n->gossip);
  msgpack_pack_map(pk, 3);
  admin__pack_str(pk, "node", n->id);
  admin__pack_u64(pk, "ring_version", ring_version(rg));
  mp_pack_cstr(pk, "members");
  size_t shown = 0;
  for (size_t i = 0; i < cnt; i++)
    if (gossip_member_at(n->gossip, i)->status != GOSSIP_REMOVED)
      shown++;
  msgpack_pack_array(pk, shown);
  for (size_t i = 0; i < cnt; i++) {
    const gossip_member *m = gossip_member_at(n->gossip, i);
    if (m->status == GOSSIP_REMOVED)
      continue;
    int idx = ring_node_index(rg, m->id);
    msgpack_pack_map(pk, 8);
    admin__pack_str(pk, "id", m->id);
    admin__pack_str(pk, "peer", m->peer_addr);
    admin__pack_str(pk, "listen", m->client_addr);
    admin__pack_str(pk, "region", m->region);
    admin__pack_str(pk, "zone", m->zone);
    admin__pack_str(pk, "state", admin__member_state(m));
    admin__pack_u64(pk, "partitions",
                    idx < 0 ? 0 : ring_owned_count(rg, (size_t)idx));
    /* "?" for a member whose gossip carries no version (an older one). */
    admin__pack_str(pk, "version", m->version[0] ? m->version : "?");
  }
}

static void admin__ring(node *n, msgpack_packer *pk) {
  const ring *rg = gossip_ring(n->gossip);
  uint32_t q = ring_q(rg);
  size_t nn = ring_node_count(rg);
  size_t nreg = ring_region_count(rg);
  uint32_t n_total = ring_n(rg);
  if (nreg) {
    n_total = 0;
    for (size_t i = 0; i < nreg; i++)
      n_total += ring_region_replicas(rg, i);
  }
  msgpack_pack_map(pk, 6);
  admin__pack_u64(pk, "version", ring_version(rg));
  admin__pack_u64(pk, "q", q);
  admin__pack_u64(pk, "n", n_total);
  /* Replicas per region ({} when the cluster uses plain n). */
  mp_pack_cstr(pk, "replicas");
  msgpack_pack_map(pk, nreg);
  for (size_t i = 0; i < nreg; i++)
    admin__pack_u64(pk, ring_region_name(rg, i), ring_region_replicas(rg, i));
  mp_pack_cstr(pk, "nodes");
  msgpack_pack_array(pk, nn);
  for (size_t i = 0; i < nn; i++) {
    const char *id = ring_node_id(rg, i);
    const gossip_member *m = gossip_find(n->gossip, id);
    msgpack_pack_map(pk, 6);
    admin__pack_str(pk, "id", id);
    admin__pack_str(pk, "listen", m ? m->client_addr : "");
    admin__pack_str(pk, "peer", m ? m->peer_addr : "");
    admin__pack_str(pk, "region", ring_node_region(rg, i));
    admin__pack_str(pk, "zone", ring_node_zone(rg, i));
    admin__pack_str(pk, "state", m ? admin__member_state(m) : "unknown");
  }
  mp_pack_cstr(pk, "partitions");
  msgpack_pack_array(pk, q);
  size_t pl[NODE_FANOUT_MAX];
  for (uint32_t p = 0; p < q; p++) {
    size_t np = 0;
    core__preflist(rg, p, pl, &np);
    msgpack_pack_map(pk, 2);
    admin__pack_u64(pk, "partition", p);
    mp_pack_cstr(pk, "owners");
    msgpack_pack_array(pk, np);
    for (size_t i = 0; i < np; i++)
      mp_pack_cstr(pk, ring_node_id(rg, pl[i]));
  }
}

static void admin__stats(node *n, msgpack_packer *pk) {
  const core_stats *s = &n->stats;
  msgpack_pack_map(pk, n->io.cpu_us ? 39 : 37);
  admin__pack_str(pk, "node", n->id);
  admin__pack_u64(pk, "incarnation", n->incarnation);
  admin__pack_str(pk, "version", n->version);
  admin__pack_u64(pk, "gets", s->gets);
  admin__pack_u64(pk, "local_gets", s->local_gets);
  admin__pack_u64(pk, "puts", s->puts);
  admin__pack_u64(pk, "dels", s->dels);
  admin__pack_u64(pk, "forwards", s->forwards);
  admin__pack_u64(pk, "coord_puts", s->coord_puts);
  admin__pack_u64(pk, "repl_puts", s->repl_puts);
  admin__pack_u64(pk, "repl_gets", s->repl_gets);
  admin__pack_u64(pk, "repl_puts_fast", s->repl_puts_fast);
  admin__pack_u64(pk, "read_repairs", s->read_repairs);
  admin__pack_u64(pk, "errors", s->errors);
  admin__pack_u64(pk, "timeouts", s->timeouts);
  admin__pack_u64(pk, "unavailable", s->unavailable);
  admin__pack_u64(pk, "bad_frames", s->bad_frames);
  admin__pack_u64(pk, "sibling_warnings", s->sibling_warnings);
  admin__pack_u64(pk, "requests_in_flight", n->nactive);
  admin__pack_u64(pk, "hints_stored", s->hints_stored);
  admin__pack_u64(pk, "hints_delivered", s->hints_delivered);
  admin__pack_u64(pk, "hints_refused", s->hints_refused);
  admin__pack_u64(pk, "hints_pending", n->hints.count);
  admin__pack_u64(pk, "hints_kept", s->hints_kept);
  admin__pack_u64(pk, "hints_window_skipped", s->hints_window_skipped);
  admin__pack_u64(pk, "catchup_exchanges", s->catchup_exchanges);
  admin__pack_u64(pk, "catchup_keys_sent", s->catchup_keys_sent);
  admin__pack_u64(pk, "catchup_keys_repaired", s->catchup_keys_repaired);
  admin__pack_u64(pk, "repair_exchanges", s->repair_exchanges);
  admin__pack_u64(pk, "repair_keys_repaired", s->repair_keys_repaired);
  admin__pack_u64(pk, "aae_exchanges", s->aae_exchanges);
  admin__pack_u64(pk, "aae_bytes", s->aae_bytes);
  admin__pack_u64(pk, "aae_keys_repaired", s->aae_keys_repaired);
  admin__pack_u64(pk, "handoff_keys_sent", s->handoff_keys_sent);
  admin__pack_u64(pk, "handoff_keys_received", s->handoff_keys_received);
  admin__pack_u64(pk, "partitions_dropped", s->partitions_dropped);
  admin__pack_u64(pk, "tombstones_reaped", s->tombstones_reaped);
  if (n->io.cpu_us) {
    uint64_t user = 0, sys = 0;
    n->io.cpu_us(n->io.ctx, &user, &sys);
    admin__pack_u64(pk, "cpu_user_us", user);
    admin__pack_u64(pk, "cpu_sys_us", sys);
  }
}

/* Finds string argument name in an ADMIN args map. */
static bool admin__arg(kv_slice args, const char *name, char *out, size_t cap) {
  mp_reader rd;
  uint32_t cnt;
  mp_reader_init(&rd, args.ptr, args.len);
  if (args.len == 0 || mp_read_map(&rd, &cnt))
    return false;
  for (uint32_t i = 0; i < cnt; i++) {
    kv_slice k;
    if (mp_read_bytes(&rd, &k))
      return false;
    if (mp_slice_eq(k, name))
      return mp_read_cstr(&rd, out, cap) == 0;
    if (mp_skip(&rd))
      return false;
  }
  return false;
}

/* Finds argument name in an ADMIN args map as a whole number, given as a
 * number or as its decimal text (the CLI sends text). Returns 1 with *out
 * set, 0 when it is absent, -1 when it is there but no such number. */
static int admin__arg_u32(kv_slice args, const char *name, uint32_t *out) {
  mp_reader rd;
  uint32_t cnt;
  mp_reader_init(&rd, args.ptr, args.len);
  if (args.len == 0 || mp_read_map(&rd, &cnt))
    return 0;
  for (uint32_t i = 0; i < cnt; i++) {
    kv_slice k;
    if (mp_read_bytes(&rd, &k))
      return 0;
    if (!mp_slice_eq(k, name)) {
      if (mp_skip(&rd))
        return 0;
      continue;
    }
    if (mp_peek(&rd) != MP_STR)
      return mp_read_u32(&rd, out) == 0 ? 1 : -1;
    char text[16], *end;
    if (mp_read_cstr(&rd, text, sizeof(text)) || text[0] < '0' ||
        text[0] > '9')
      return -1;
    unsigned long v = strtoul(text, &end, 10);
    if (*end || v > UINT32_MAX)
      return -1;
    *out = (uint32_t)v;
    return 1;
  }
  return 0;
}

/* "repair" {"partition": P}: queues anti-entropy exchanges of P (or of
 * every partition this node is a primary of) with the other alive
 * primaries now (aae_repair); kvorum transfers shows them run. Answers
 * {"node", "partitions", "exchanges"}. */
static void admin__repair(node *n, uint64_t conn, const wire_msg *m) {
  const ring *rg = gossip_ring(n->gossip);
  uint32_t q = ring_q(rg), part = UINT32_MAX;
  int got = admin__arg_u32(m->raw, "partition", &part);
  if (got < 0 || (got && part >= q)) {
    core__send_error(n, conn, m->req_id, KV_EINVAL,
                     "repair's partition is a number from 0 to %u (this "
                     "ring has %u partitions)",
                     q ? q - 1 : 0, q);
    return;
  }
  if (got && !core__is_primary_of(rg, part, n->id)) {
    core__send_error(n, conn, m->req_id, KV_ESTATE,
                     "%s is no primary of partition %u; ask one of its "
                     "primaries (kvorum ring lists them)",
                     n->id, part);
    return;
  }
  uint32_t parts = 0;
  uint32_t queued = aae_repair(n, got ? part : UINT32_MAX, &parts);
  msgpack_packer pk;
  size_t start;
  wire_begin(&n->out, &pk, &start, WIRE_ADMIN_OK, m->req_id, 1);
  msgpack_pack_map(&pk, 3);
  admin__pack_str(&pk, "node", n->id);
  admin__pack_u64(&pk, "partitions", parts);
  admin__pack_u64(&pk, "exchanges", queued);
  wire_end(&n->out, start);
  core__send_conn(n, conn);
}

/* "backup" {"dir": D} and "compact": the environment does the work and
 * answers (node_io.backup, node_io.compact). */
static void admin__storage(node *n, uint64_t conn, const wire_msg *m,
                           bool backup) {
  char dir[ADMIN_DIR_MAX], err[WIRE_ERRMSG_MAX];
  if (backup && (!admin__arg(m->raw, "dir", dir, sizeof(dir)) || !dir[0])) {
    core__send_error(n, conn, m->req_id, KV_EINVAL,
                     "backup needs a directory (dir, at most %d bytes)",
                     ADMIN_DIR_MAX - 1);
    return;
  }
  if (backup && dir[0] != '/') {
    core__send_error(n, conn, m->req_id, KV_EINVAL,
                     "backup needs an absolute directory (on the node's "
                     "machine), not '%s'",
                     dir);
    return;
  }
  if (backup ? !n->io.backup : !n->io.compact) {
    core__send_error(n, conn, m->req_id, KV_ESTATE,
                     "%s cannot %s: its storage does not support it", n->id,
                     backup ? "back up" : "compact");
    return;
  }
  err[0] = '\0';
  int rc = backup ? n->io.backup(n->io.ctx, conn, m->req_id, dir, err,
                                 sizeof(err))
                  : n->io.compact(n->io.ctx, conn, m->req_id, err,
                                  sizeof(err));
  if (rc)
    core__send_error(n, conn, m->req_id, rc, "%s",
                     err[0] ? err : kv_strerror(rc));
}

/* "preflist" {"key": K}: the partition of K and its replicas, primaries
 * first, as this node's ring says (like riak-admin's preflist). */
static void admin__preflist(node *n, uint64_t conn, const wire_msg *m) {
  mp_reader rd;
  uint32_t cnt;
  kv_slice key = {0};
  bool found = false;
  mp_reader_init(&rd, m->raw.ptr, m->raw.len);
  if (m->raw.len && mp_read_map(&rd, &cnt) == 0) {
    for (uint32_t i = 0; i < cnt && !found; i++) {
      kv_slice k;
      if (mp_read_bytes(&rd, &k))
        break;
      if (mp_slice_eq(k, "key"))
        found = mp_read_bytes(&rd, &key) == 0 && key.len <= KV_KEY_MAX;
      else if (mp_skip(&rd))
        break;
    }
  }
  if (!found) {
    core__send_error(n, conn, m->req_id, KV_EINVAL, "preflist needs a key");
    return;
  }
  const ring *rg = gossip_ring(n->gossip);
  uint32_t p = ring_partition(rg, key.ptr, key.len);
  size_t idx[NODE_FANOUT_MAX];
  size_t np = 0;
  size_t total = core__preflist(rg, p, idx, &np);
  msgpack_packer pk;
  size_t start;
  wire_begin(&n->out, &pk, &start, WIRE_ADMIN_OK, m->req_id, 1);
  msgpack_pack_map(&pk, 3);
  admin__pack_u64(&pk, "partition", p);
  mp_pack_cstr(&pk, "primaries");
  msgpack_pack_array(&pk, np);
  for (size_t i = 0; i < np; i++)
    mp_pack_cstr(&pk, ring_node_id(rg, idx[i]));
  mp_pack_cstr(&pk, "fallbacks");
  msgpack_pack_array(&pk, total - np);
  for (size_t i = np; i < total; i++)
    mp_pack_cstr(&pk, ring_node_id(rg, idx[i]));
  wire_end(&n->out, start);
  core__send_conn(n, conn);
}

static void admin__done(node *n, uint64_t conn, uint64_t req_id,
                        const char *what) {
  msgpack_packer pk;
  size_t start;
  wire_begin(&n->out, &pk, &start, WIRE_ADMIN_OK, req_id, 1);
  msgpack_pack_map(&pk, 2);
  admin__pack_str(&pk, "ok", "true");
  admin__pack_str(&pk, "message", what);
  wire_end(&n->out, start);
  core__send_conn(n, conn);
}

/* "log-level" {"level": L}: sets the level of this node's logs, the
 * core's and its environment's (io.log_level_set), until the next change
 * or restart. Answers {"level": L, "previous": P}. The change itself is
 * logged at info, under whichever of the two levels shows more. */
static void admin__log_level(node *n, uint64_t conn, const wire_msg *m) {
  char name[16];
  node_log_level lvl;
  if (!admin__arg(m->raw, "level", name, sizeof(name)) ||
      node_log_level_parse(name, &lvl) != 0) {
    core__send_error(n, conn, m->req_id, KV_EINVAL,
                     "log-level needs a level: error, warn, info or debug");
    return;
  }
  node_log_level old = n->log_level;
  if (lvl > old)
    n->log_level = lvl;
  core__log(n, NODE_LOG_INFO, "log level is now %s (was %s)",
            node_log_level_name(lvl), node_log_level_name(old));
  n->log_level = lvl;
  if (n->io.log_level_set)
    n->io.log_level_set(n->io.ctx, lvl);
  msgpack_packer pk;
  size_t start;
  wire_begin(&n->out, &pk, &start, WIRE_ADMIN_OK, m->req_id, 1);
  msgpack_pack_map(&pk, 2);
  admin__pack_str(&pk, "level", node_log_level_name(lvl));
  admin__pack_str(&pk, "previous", node_log_level_name(old));
  wire_end(&n->out, start);
  core__send_conn(n, conn);
}

void admin_on_request(node *n, uint64_t conn, const wire_msg *m) {
  char arg[GOSSIP_ADDR_MAX];
  char msg[160];
  uint64_t now = core__now(n);
  if (mp_slice_eq(m->text, "status") || mp_slice_eq(m->text, "ring") ||
      mp_slice_eq(m->text, "stats")) {
    msgpack_packer pk;
    size_t start;
    wire_begin(&n->out, &pk, &start, WIRE_ADMIN_OK, m->req_id, 1);
    if (mp_slice_eq(m->text, "status"))
      admin__status(n, &pk);
    else if (mp_slice_eq(m->text, "ring"))
      admin__ring(n, &pk);
    else
      admin__stats(n, &pk);
    wire_end(&n->out, start);
    core__send_conn(n, conn);
    return;
  }
  if (mp_slice_eq(m->text, "preflist")) {
    admin__preflist(n, conn, m);
    return;
  }
  if (mp_slice_eq(m->text, "log-level")) {
    admin__log_level(n, conn, m);
    return;
  }
  if (mp_slice_eq(m->text, "repair")) {
    admin__repair(n, conn, m);
    return;
  }
  if (mp_slice_eq(m->text, "backup") || mp_slice_eq(m->text, "compact")) {
    admin__storage(n, conn, m, mp_slice_eq(m->text, "backup"));
    return;
  }
  int rc;
  if (mp_slice_eq(m->text, "join")) {
    if (!admin__arg(m->raw, "seed", arg, sizeof(arg))) {
      core__send_error(n, conn, m->req_id, KV_EINVAL,
                       "join needs a seed address (host:port)");
      return;
    }
    rc = gossip_join(n->gossip, arg, now);
    snprintf(msg, sizeof(msg), "%s is joining the cluster of %s", n->id, arg);
  } else if (mp_slice_eq(m->text, "leave")) {
    const gossip_member *self = gossip_self(n->gossip);
    if (self && self->status == GOSSIP_JOINING) {
      core__send_error(n, conn, m->req_id, KV_ESTATE,
                       "%s is still joining (not in the ring it knows); "
                       "leave once `kvorum status` shows it up, or remove it "
                       "from another node",
                       n->id);
      return;
    }
    rc = gossip_leave(n->gossip, n->id, now);
    snprintf(msg, sizeof(msg), "%s is leaving the cluster", n->id);
  } else if (mp_slice_eq(m->text, "remove")) {
    if (!admin__arg(m->raw, "node", arg, sizeof(arg))) {
      core__send_error(n, conn, m->req_id, KV_EINVAL, "remove needs a node id");
      return;
    }
    if (strcmp(arg, n->id) == 0) {
      core__send_error(n, conn, m->req_id, KV_ESTATE,
                       "a node cannot remove itself; use leave, or remove it "
                       "from another node");
      return;
    }
    rc = gossip_remove(n->gossip, arg, now);
    snprintf(msg, sizeof(msg), "%s was removed from the cluster", arg);
  } else if (mp_slice_eq(m->text, "transfers")) {
    msgpack_packer pk;
    size_t start;
    wire_begin(&n->out, &pk, &start, WIRE_ADMIN_OK, m->req_id, 1);
    handoff_admin_transfers(n, &pk);
    wire_end(&n->out, start);
    core__send_conn(n, conn);
    return;
  } else {
    core__send_error(n, conn, m->req_id, KV_EUNKNOWN,
                     "unknown admin command '%.*s' (known: status, ring, "
                     "stats, join, leave, remove, transfers, preflist, "
                     "log-level, repair, backup, compact)",
                     (int)(m->text.len > 64 ? 64 : m->text.len),
                     (const char *)m->text.ptr);
    return;
  }
  if (rc == KV_ENOTFOUND)
    core__send_error(n, conn, m->req_id, rc, "no such node: %s", arg);
  else if (rc)
    core__send_error(n, conn, m->req_id, rc, "%s", kv_strerror(rc));
  else
    admin__done(n, conn, m->req_id, msg);
}
