/*
 * obj.h: a stored object: its siblings and their causal history, kept as a
 * dotted version vector set (DVVSet: Preguica, Baquero et al., "Dotted
 * Version Vectors: Efficient Causality Tracking for Distributed Key-Value
 * Stores"; Riak 2.x's dvvset.erl).
 *
 * An object is a list of entries (actor, counter, [values newest first]);
 * the i-th value of an entry (0-based) carries the dot (actor, counter - i).
 * A value is bytes or a tombstone, with a wall-clock timestamp used only for
 * pruning and opt-in last-write-wins. Actors are 64-bit ids derived from a
 * node's name and incarnation (a node that starts on an empty data
 * directory gets a new incarnation and so a new actor: it never reuses
 * counters it handed out before, basho/riak_kv#679).
 *
 * Every client write is turned into an event by a replica (obj_update), so
 * anonymous values of the paper's DVVSet never persist and are not kept.
 *
 * The context given to clients is the object's version vector (its join):
 * [(actor, counter)...], msgpack-encoded, opaque to clients.
 *
 * Pure: depends on kv_err.h and mp.h only. Not thread-safe (no globals).
 */
#ifndef KV_OBJ_H
#define KV_OBJ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mp.h"

#define OBJ_FORMAT_VERSION 1
#define OBJ_DELETED 0x1u /* value is a tombstone */
#define OBJ_EXPIRES 0x2u /* value has an expiry time (expires_ms) */
#define OBJ_TYPED 0x4u   /* value is a data type's state (storage/crdt.h) */

/* Limits on one object. Defaults: siblings_warn 25, siblings_max 100 (as
 * Riak), entries_max 64 actors kept in a clock (older actors whose values
 * are all gone are pruned first, by timestamp), prune_age_ms 0 = off. */
typedef struct obj_limits {
  uint32_t siblings_warn;
  uint32_t siblings_max;
  uint32_t entries_max;
  uint64_t prune_age_ms;
  uint32_t value_max;
} obj_limits;
extern const obj_limits obj_limits_default;

typedef struct obj obj; /* opaque */

typedef struct obj_value {
  uint32_t flags;     /* OBJ_DELETED */
  uint64_t ts_ms;
  const uint8_t *data; /* owned by the obj; valid until it changes */
  size_t len;
  /* OBJ_EXPIRES: the wall-clock time (ms) from which the value reads as
   * absent. Part of the version: every replica holds the same expiry for
   * the same dot and decides alone, by its own clock (docs/data-types.md
   * says what clock skew does). */
  uint64_t expires_ms;
  uint64_t actor;      /* the dot of this value */
  uint64_t counter;
} obj_value;

/* Returns a new empty object (no siblings, empty clock), or NULL on OOM.
 * Free with obj_free. */
obj *obj_new(void);
/* Frees o; obj_free(NULL) is a no-op. */
void obj_free(obj *o);
/* Returns a deep copy or NULL on OOM. */
obj *obj_clone(const obj *o);

/* Decodes a stored object. Every count is bounded by the input size; the
 * format version must be OBJ_FORMAT_VERSION. Returns 0 and *out (caller
 * frees), KV_EPROTO/KV_ECORRUPT, KV_EVERSION, or KV_ENOMEM. */
int obj_decode(const uint8_t *buf, size_t len, obj **out);
/* Checks buf as obj_decode does, without building the object (nothing is
 * allocated). Returns 0 or obj_decode's error for the same bytes. */
int obj_check(const uint8_t *buf, size_t len);
/* Appends the encoding of o to out. Returns 0 or KV_ENOMEM. */
int obj_encode(const obj *o, kvbuf *out);

/* Number of live values (siblings, tombstones included). */
size_t obj_sibling_count(const obj *o);
/* The i-th sibling (0 <= i < count), in a stable order (by actor, then
 * newest first). Returns 0, or KV_EINVAL when i is out of range. */
int obj_sibling(const obj *o, size_t i, obj_value *out);
/* True when o has siblings and all of them are tombstones. */
bool obj_all_deleted(const obj *o);
/* True when v reads as absent at wall time now_ms: a tombstone, or expired
 * (now_ms 0: expiry not considered). */
bool obj_value_gone(const obj_value *v, uint64_t now_ms);
/* True when o has siblings and every one is gone at now_ms (tombstones or
 * expired): o reads as not found. */
bool obj_all_gone(const obj *o, uint64_t now_ms);

/* Appends the context (version vector) of o to out. Returns 0/KV_ENOMEM. */
int obj_context(const obj *o, kvbuf *out);
/* Checks that a context is well-formed. Returns 0 or KV_EPROTO. */
int obj_context_check(const uint8_t *ctx, size_t len);

/*
 * The coordinator's write: the client's value v (bytes copied; actor and
 * counter of v ignored) written with context ctx (NULL/0 = no context:
 * nothing is overwritten) as a new event of actor on the local object o
 * (which may be empty). Values that the context covers are discarded;
 * values it does not cover stay as siblings. Entries are pruned by
 * lim->entries_max / prune_age_ms afterwards. Returns 0, KV_EPROTO (bad
 * context), KV_ESIBLINGS (the result would exceed lim->siblings_max; o is
 * unchanged), or KV_ENOMEM (o unchanged). Sets *warn when the result has
 * more than siblings_warn siblings (warn may be NULL).
 * Also KV_ETOOBIG (o unchanged) when lim->value_max is set and v->len
 * exceeds it; lim NULL means obj_limits_default. Limits of 0 are off.
 */
int obj_update(obj *o, const uint8_t *ctx, size_t ctx_len, uint64_t actor,
               const obj_value *v, uint64_t now_ms, const obj_limits *lim,
               bool *warn);

/* Merges remote into local (DVVSet sync): afterwards local holds exactly
 * the values that neither side has seen overwritten. Returns 0 or
 * KV_ENOMEM (local unchanged). *changed (may be NULL) tells whether local
 * changed. */
int obj_sync(obj *local, const obj *remote, bool *changed);

/* True when a's causal history includes everything b has seen (b <= a),
 * i.e. syncing b into a changes nothing. */
bool obj_descends(const obj *a, const obj *b);
/* Raises actor's clock entry in o to counter (adds it when absent, with
 * timestamp ts_ms and no value), as merging a clock-only object
 * [(actor, counter)] would. Returns 0 or KV_ENOMEM. */
int obj_raise(obj *o, uint64_t actor, uint64_t counter, uint64_t ts_ms);
/* Encodes o's clock without any value, every entry stamped with the newest
 * sibling timestamp (so equal objects give equal bytes): an object that
 * reads as not found but dominates every dot o has seen (a reaped
 * tombstone). Returns 0 or an error. */
int obj_encode_clock(const obj *o, kvbuf *out);
/* True when a and b have the same clock and the same values. */
bool obj_equal(const obj *a, const obj *b);

/* Debug rendering for logs and tests ("{a1:3[v,v] a2:1[]}"). Returns buf. */
const char *obj_debug(const obj *o, char *buf, size_t cap);

#endif
