/*
 * types.h: data types at their coordinator (docs/data-types.md). A typed
 * key's values are CRDT states (storage/crdt.h) flagged OBJ_TYPED. A put
 * with WIRE_OPT_TYPED carries an operation: its coordinator joins the
 * states among its replica's siblings, applies the operation as a new
 * event of its actor, and writes the result over everything it read;
 * concurrent coordinators leave siblings, which every read joins.
 *
 * Depends on: core_int.h (the base), crdt.h.
 */
#ifndef KV_NODE_TYPES_H
#define KV_NODE_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crdt.h"
#include "obj.h"

/* Joins the states among o's live siblings at wall time now into *out
 * (NULL when o holds none). Plain values are skipped when skip_plain,
 * else they make it KV_ETYPE. Returns 0, KV_ETYPE (plain values, or states
 * of two types), KV_ECORRUPT or KV_ENOMEM. */
int types_join(const obj *o, uint64_t now, bool skip_plain, crdt **out);

/* Applies the operation op to the state local holds, as actor: the new
 * encoded state in out and what it did in res. Returns 0 or a KV_E* code
 * with the reason in err. */
int types_apply(const obj *local, const uint8_t *op, size_t len,
                uint64_t actor, uint64_t now, const crdt_limits *lim,
                kvbuf *out, crdt_result *res, char *err, size_t errlen);

#endif
