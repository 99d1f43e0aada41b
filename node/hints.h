/*
 * hints.h: hinted handoff, the sloppy quorum's repair (node/hints.c).
 *
 * A fallback keeps a write for a primary that is down (HINT_PUT, in the
 * hints column family) and hands it over when the primary is back:
 *
 *   stored --(owner seen up, every interval_ms)--> sent (HINTS_BATCH per
 *   owner per round, one request each)
 *   sent --(REPL_PUT_OK, hint unchanged)--> deleted
 *   sent --(error, timeout, or the hint changed meanwhile)--> stored
 *   stored --(owner left the ring)--> re-homed: sent to the key's current
 *   primaries (merged locally when this node is one), then deleted
 *
 * A hint is deleted only after its owner acknowledged it and only if it did
 * not change meanwhile. The store is bounded by hints_max.
 *
 * Depends on: core_int.h (the base).
 */
#ifndef KV_NODE_HINTS_H
#define KV_NODE_HINTS_H

#include <stdbool.h>
#include <stdint.h>

#include "core.h"
#include "mp.h"

#define HINTS_BATCH 64u /* hints delivered per owner per round */

typedef struct core_req core_req;
typedef struct core_target core_target;

typedef struct hints_state {
  uint32_t interval_ms; /* delivery round period */
  uint64_t next_ms;     /* next delivery round */
  uint64_t max;         /* hints kept at most (hints_max) */
  uint64_t count;       /* hints kept now (hints_pending) */
  uint32_t inflight;    /* hints sent and not yet answered */
} hints_state;

void hints_init(node *n, const node_config *cfg, uint64_t now);
/* Counts the hints an earlier run kept (logs how many). */
void hints_load(node *n);
void hints_tick(node *n, uint64_t now);
/* HINT_PUT from a coordinator. */
void hints_on_put(node *n, uint64_t conn, const wire_msg *m,
                  const wire_pm_hint_put *h);
/* The answer of the owner (or a new primary) to a hint. */
void hints_on_reply(node *n, core_req *r, core_target *t, const wire_msg *m);
/* A re-homed hint merged into our own store was committed. */
void hints_store_done(node *n, core_req *r, int status);
void hints_expired(node *n, core_req *r);

#endif
