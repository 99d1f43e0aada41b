/*
 * handoff.h: ownership handoff (node/handoff.c). A node that holds data of
 * a partition it is no longer a primary of streams it to every current
 * primary and drops it only after each confirmed; a leaving node stops
 * once it holds nothing and the claimant has marked it removed.
 *
 * One transfer per (partition, target):
 *
 *   waiting --(target up)--> sending (a batch of HANDOFF_BATCH objects)
 *   sending --(ack)--> waiting (next batch) | done (after the last batch)
 *   sending --(error, timeout)--> waiting (the same batch again)
 *   every transfer of the partition done --> partition dropped, a new
 *   actor epoch for it (docs/architecture.md, "What a dot promises")
 *   target no longer a primary of the partition, or the partition ours
 *   again --> forgotten
 *
 * A partition takes the slots for all its primaries at once or waits, so
 * finished transfers of partitions that each miss one target can never
 * hold every slot.
 *
 * Depends on: core_int.h (the base).
 */
#ifndef KV_NODE_HANDOFF_H
#define KV_NODE_HANDOFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "mp.h"

#define HANDOFF_BATCH 64u         /* objects per handoff message */
#define HANDOFF_TRANSFERS_MAX 16u /* transfers running at once */
_Static_assert(HANDOFF_TRANSFERS_MAX >= NODE_FANOUT_MAX,
               "every primary of a partition fits in the transfer slots");

typedef struct core_req core_req;
typedef struct core_target core_target;

typedef struct handoff_transfer {
  bool active;
  bool inflight;
  bool done;
  uint32_t part;
  char target[RING_NAME_MAX];
  char addr[GOSSIP_ADDR_MAX];
  uint8_t *last_key; /* resume after this key */
  size_t last_len;
  bool last_batch; /* the batch in flight is the final one */
  uint64_t keys_sent;
  uint64_t started_ms;
  uint64_t req_gen; /* the request slot waiting for the ack */
} handoff_transfer;

typedef struct handoff_state {
  uint32_t interval_ms;
  uint64_t next_ms;
  handoff_transfer transfers[HANDOFF_TRANSFERS_MAX];
  bool leaving_done; /* this node left and asked its shell to stop */
} handoff_state;

void handoff_init(node *n, const node_config *cfg, uint64_t now);
void handoff_free(node *n);
void handoff_tick(node *n, uint64_t now);
/* HANDOFF from a node handing a partition to us: merge the batch, ack
 * after it is committed. */
void handoff_on_batch(node *n, uint64_t conn, const wire_msg *m,
                      const wire_pm_handoff *h);
void handoff_on_reply(node *n, core_req *r, core_target *t, const wire_msg *m);
void handoff_expired(node *n, core_req *r);
/* The body of `kvorum transfers`. */
void handoff_admin_transfers(node *n, msgpack_packer *pk);

#endif
