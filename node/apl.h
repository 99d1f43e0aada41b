/*
 * apl.h: a request's active preference list (as riak_core_apl): its
 * targets, the primaries of its key and, with sloppy quorum, one alive
 * fallback for each primary that is down; and how they stand by region.
 *
 * Depends on: core_int.h (the base), levels.h.
 */
#ifndef KV_NODE_APL_H
#define KV_NODE_APL_H

#include <stdbool.h>
#include <stdint.h>

#include "core.h"
#include "levels.h"

typedef struct core_req core_req;
typedef struct core_target core_target;

/* The region target t is in ("" when its member is unknown). The string
 * stays valid until gossip next changes its table. */
const char *apl_target_region(node *n, const core_target *t);
/* The local region of r: the client's region when it named one, else this
 * node's. */
const char *apl_local_region(node *n, const core_req *r);
/* Counts r's targets per region into *out. */
void apl_tally(node *n, const core_req *r, levels_tally *out);
/* Fills r->targets with the primaries of r->part and, when sloppy, one
 * alive fallback for each primary that is down (it keeps a hint for that
 * primary), taken from the primary's region when that has one up. Returns
 * the number of primaries (N for this key), 0 when the node is in no ring
 * yet. */
uint32_t apl_targets(node *n, core_req *r, bool sloppy);
uint32_t apl_alive_primaries(const core_req *r);
/* The index of this node among r's targets, or -1. */
int apl_self(const core_req *r);
uint32_t apl_alive(const core_req *r);
/* Targets whose answer is outstanding. */
uint32_t apl_waiting(const core_req *r);

#endif
