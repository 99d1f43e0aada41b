/*
 * reap.h: tombstone reaping (node/reap.c). A delete that every primary took
 * is scheduled for a check after the grace period; the check reads every
 * primary, and only when all hold the same all-tombstone object older than
 * the grace period does each replica reap it: merge the clock of the
 * tombstones without values (REAP), so the key reads as not found yet
 * no late hint, handoff or returning replica can bring back a value the
 * delete saw.
 *
 *   scheduled --(due)--> checking (REPL_GET to every primary)
 *   checking --(all answered, all equal, all tombstones, old enough)-->
 *   reaped here, REAP to the others
 *   checking --(anything else, or a primary down)--> dropped
 *
 * Depends on: core_int.h (the base).
 */
#ifndef KV_NODE_REAP_H
#define KV_NODE_REAP_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "mp.h"

#define REAP_QUEUE_MAX 65536u /* scheduled checks kept at most */

typedef struct core_req core_req;
typedef struct core_target core_target;

typedef struct reap_entry {
  uint32_t part;
  uint64_t due_ms;
  uint8_t *key;
  size_t klen;
} reap_entry;

typedef struct reap_state {
  uint64_t grace_ms; /* tombstone_grace_ms */
  reap_entry *queue; /* ring buffer of REAP_QUEUE_MAX scheduled checks */
  uint32_t head, len;
} reap_state;

/* Returns 0 or KV_ENOMEM. */
int reap_init(node *n, const node_config *cfg);
void reap_free(node *n);
void reap_tick(node *n, uint64_t now);
/* Schedules a check of key delay_ms plus the grace period from now (a
 * delete: delay 0; a value with a time to live: its ttl). */
void reap_schedule(node *n, uint32_t part, const uint8_t *key, size_t klen,
                   uint64_t delay_ms);
/* r holds every primary's answer (a GET or a reap check): reaps when all
 * hold the same all-tombstone object older than the grace period. */
void reap_maybe(node *n, core_req *r);
/* REAP from the node that checked. */
void reap_on_msg(node *n, const wire_pm_reap *rp);
void reap_on_reply(node *n, core_req *r, core_target *t, const wire_msg *m);
void reap_store_done(node *n, core_req *r);

#endif
