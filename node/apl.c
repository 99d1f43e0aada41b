/*
 * apl.c: a request's active preference list (apl.h).
 */
#include "apl.h"

#include <string.h>

#include "core_int.h"

/* The region target t is in ("" when its member is unknown). The string
 * stays valid until gossip next changes its table. */
const char *apl_target_region(node *n, const core_target *t) {
  if (t->self)
    return n->region;
  const gossip_member *m = gossip_find(n->gossip, t->id);
  return m ? m->region : "";
}

/* The local region of r: the client's region when it named one (kept by
 * coord__init in r->u.coord.region), else this node's. */
const char *apl_local_region(node *n, const core_req *r) {
  return r->u.coord.region[0] ? r->u.coord.region : n->region;
}

/* Counts r's targets per region. */
void apl_tally(node *n, const core_req *r, levels_tally *out) {
  out->count = 0;
  out->local = apl_local_region(n, r);
  levels_region_of(out, out->local);
  for (uint32_t i = 0; i < r->ntargets; i++) {
    const core_target *t = &r->targets[i];
    levels_region *g = levels_region_of(out, apl_target_region(n, t));
    if (!g)
      continue;
    g->nprim += t->primary;
    g->alive += t->alive;
    g->alive_p += t->alive && t->primary;
    g->ok += t->state == CORE_T_OK;
    g->ok_p += t->state == CORE_T_OK && t->primary;
    g->waiting += t->state == CORE_T_WAIT;
  }
}

/* Fills r->targets with the primaries of r->part and, when sloppy, one
 * alive fallback for each primary that is down (it keeps a hint for that
 * primary), taken from the primary's region when that has one up, so the
 * copy stays where the region's readers look. Returns the number of
 * primaries (N for this key), 0 when the node is in no ring yet. */
uint32_t apl_targets(node *n, core_req *r, bool sloppy) {
  const ring *rg = gossip_ring(n->gossip);
  size_t idx[NODE_FANOUT_MAX];
  size_t np = 0;
  size_t total = core__preflist(rg, r->part, idx, &np);
  r->ntargets = 0;
  for (size_t i = 0; i < np; i++) {
    core_target *t = &r->targets[r->ntargets++];
    const char *id = ring_node_id(rg, idx[i]);
    const gossip_member *m = gossip_find(n->gossip, id);
    kv_strcopy(t->id, sizeof(t->id), id);
    kv_strcopy(t->addr, sizeof(t->addr), m ? m->peer_addr : "");
    t->self = strcmp(id, n->id) == 0;
    t->primary = true;
    t->alive = t->self || (m && m->alive && m->status != GOSSIP_REMOVED);
    t->state = CORE_T_IDLE;
  }
  uint32_t nprim = r->ntargets;
  bool used[NODE_FANOUT_MAX];
  memset(used, 0, sizeof(used));
  for (uint32_t i = 0; sloppy && i < nprim; i++) {
    if (r->targets[i].alive || r->ntargets >= NODE_FANOUT_MAX)
      continue;
    const gossip_member *dead = gossip_find(n->gossip, r->targets[i].id);
    const char *want = dead ? dead->region : NULL;
    size_t pick = total;
    const gossip_member *pm = NULL;
    for (int pass = want ? 0 : 1; pass < 2 && pick == total; pass++) {
      for (size_t k = np; k < total && pick == total; k++) {
        if (used[k])
          continue;
        const char *id = ring_node_id(rg, idx[k]);
        const gossip_member *m = gossip_find(n->gossip, id);
        if (strcmp(id, n->id) == 0 || !m || !m->alive ||
            m->status == GOSSIP_REMOVED ||
            (pass == 0 && strcmp(m->region, want) != 0))
          continue;
        pick = k;
        pm = m;
      }
    }
    if (pick == total)
      continue;
    used[pick] = true;
    core_target *t = &r->targets[r->ntargets++];
    memset(t, 0, sizeof(*t));
    kv_strcopy(t->id, sizeof(t->id), ring_node_id(rg, idx[pick]));
    kv_strcopy(t->addr, sizeof(t->addr), pm->peer_addr);
    memcpy(t->hint_for, r->targets[i].id, sizeof(t->hint_for));
    t->alive = true;
  }
  return nprim;
}

uint32_t apl_alive_primaries(const core_req *r) {
  uint32_t a = 0;
  for (uint32_t i = 0; i < r->ntargets; i++)
    a += r->targets[i].alive && r->targets[i].primary;
  return a;
}

int apl_self(const core_req *r) {
  for (uint32_t i = 0; i < r->ntargets; i++)
    if (r->targets[i].self)
      return (int)i;
  return -1;
}

uint32_t apl_alive(const core_req *r) {
  uint32_t a = 0;
  for (uint32_t i = 0; i < r->ntargets; i++)
    a += r->targets[i].alive;
  return a;
}

uint32_t apl_waiting(const core_req *r) {
  uint32_t w = 0;
  for (uint32_t i = 0; i < r->ntargets; i++)
    w += r->targets[i].state == CORE_T_WAIT;
  return w;
}
