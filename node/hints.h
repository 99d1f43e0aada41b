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
 * Two kinds of node keep hints: a fallback that took a write for a primary
 * that is down (HINT_PUT), and the coordinator of a write for every
 * primary that did not take it and had no fallback take it for it
 * (hints_keep): a replica that was down, unreachable or too slow gets the
 * write once it is back, whatever the cluster's size. Delivery starts as
 * soon as gossip sees the owner up again, and then goes batch after batch
 * while the owner acknowledges them (one batch in flight), besides the
 * interval_ms timer for owners that never looked down.
 *
 * A hint is deleted only after its owner acknowledged it and only if it did
 * not change meanwhile. The store is bounded by hints_max; no hint is kept
 * for an owner down for longer than window_ms (anti-entropy repairs it).
 *
 * Depends on: core_int.h (the base).
 */
#ifndef KV_NODE_HINTS_H
#define KV_NODE_HINTS_H

#include <stdbool.h>
#include <stdint.h>

#include "core.h"
#include "mp.h"

#define HINTS_BATCH 64u     /* hints delivered per owner per round */
#define HINTS_DOWN_MAX 256u /* owners whose time down is tracked */
#define HINTS_WINDOW_MS_DEFAULT (3ull * 3600 * 1000)

typedef struct core_req core_req;
typedef struct core_target core_target;

typedef struct hints_down {
  char id[RING_NAME_MAX];
  uint64_t since_ms; /* when this node first saw it down */
} hints_down;

typedef struct hints_state {
  uint32_t interval_ms;            /* delivery round period */
  uint64_t next_ms;                /* next delivery round */
  uint64_t max;                    /* hints kept at most (hints_max) */
  uint64_t count;                  /* hints kept now (hints_pending) */
  uint32_t inflight;               /* hints sent and not yet answered */
  uint64_t window_ms;              /* hint_window_ms */
  hints_down down[HINTS_DOWN_MAX]; /* members seen down, and since when */
  uint32_t ndown;
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
/* Keeps the coordinator's hint for owner: the object enc of key in part,
 * merged into any hint kept for it already. Skipped (and counted) when
 * owner has been down for longer than the hint window, or the store is
 * full. */
void hints_keep(node *n, const char *owner, uint32_t part, const uint8_t *key,
                size_t klen, const uint8_t *enc, size_t enc_len);
/* Gossip's news about m: tracks since when it is down, and starts
 * delivering its hints at once when it is up again. */
void hints_member_changed(node *n, const gossip_member *m);
/* A re-homed hint merged into our own store was committed. */
void hints_store_done(node *n, core_req *r, int status);
void hints_expired(node *n, core_req *r);

#endif
