/*
 * crdt.h: data types that merge themselves (issue #17): state-based CRDTs
 * that a coordinator applies client operations to and that replicas join.
 *
 * A typed key's value bytes (inside a DVV object of obj.h) are an encoded
 * CRDT state. The coordinator of an operation decodes its local object's
 * siblings, joins them into one state (crdt_join), applies the operation as
 * a new event of its 64-bit actor (crdt_apply) and writes the encoded
 * result with the DVV context of everything it read. Concurrent
 * coordinators leave DVV siblings; readers join them. crdt_join is
 * commutative, associative and idempotent on every state crdt_decode
 * accepts, so the order and number of joins never matter.
 *
 * The types (a key is typed by its first write; an operation of another
 * type is KV_ETYPE):
 *
 *   CRDT_SET      add-wins set, an ORSWOT (Bieniusa et al., "An optimized
 *                 conflict-free replicated set"; riak_dt_orswot): a clock
 *                 (actor -> counter) and, per element, the dots of the adds
 *                 that put it there. An add replaces the element's dots by
 *                 the operation's new dot; a remove drops the element's dots
 *                 that its context covers (no context: every dot the
 *                 coordinator holds). A join keeps a dot that both sides
 *                 hold or that the other side's clock has not seen, so an
 *                 add concurrent with a remove of the same element keeps
 *                 it, and a remove removes only the adds it saw.
 *   CRDT_COUNTER  PN counter (riak_dt_pncounter): per actor the totals of
 *                 its increments and of its decrements; a join takes the
 *                 maximum of each. Its value is their difference, saturated
 *                 to the int64 range.
 *   CRDT_MAP_MV,  map of named fields. A field is keyed by (name, kind),
 *   CRDT_MAP_LWW  kind one of counter, set, register, so the same name may
 *                 hold one field of each kind. The map is one causal
 *                 context (a clock) over dot stores, Almeida, Shoker and
 *                 Baquero's ORMap ("Delta State Replicated Data Types",
 *                 2018), which is riak_dt_map's approach with the field
 *                 set's dots being the dots of the field's content:
 *                   set field       elements -> dots, as CRDT_SET;
 *                   counter field   per actor one dot carrying the actor's
 *                                   running total (riak_dt_emcntr); value:
 *                                   the sum over actors of their newest
 *                                   dot's total, saturated;
 *                   register field  dots -> (timestamp, value); an
 *                                   assignment replaces every dot it saw.
 *                 A field exists while its content holds a dot (an empty
 *                 set field is no field, as in Redis). Removing a field
 *                 drops the dots its context covers: the field's content
 *                 is reset, but an update concurrent with the removal
 *                 keeps the field, with that update (add-wins). A counter
 *                 field that one actor increments concurrently with its
 *                 removal keeps that actor's whole total, as in riak_dt.
 *                 Registers: in a CRDT_MAP_MV map concurrent assignments
 *                 are all kept and all read (like siblings); in a
 *                 CRDT_MAP_LWW map they are kept too (so joins stay exact)
 *                 but read as one value, the greatest by (timestamp, actor,
 *                 counter). An assignment that saw a value replaces it
 *                 whatever the timestamps: causality before clocks.
 *
 * Dots: crdt_apply makes one new dot (actor, clock[actor] + 1) per
 * operation from the state's own clock and never reuses one its clock has
 * seen. The node must therefore apply operations of one actor to one key
 * one at a time (read, apply, write), or two of them could make the same
 * dot from the same state.
 *
 * ---- State encoding (crdt_encode; every value of a typed key) ----
 *
 *   byte 0    CRDT_MAGIC (0xc1: never the first byte of msgpack nor of
 *             UTF-8 text, so plain values rarely start with it)
 *   byte 1    CRDT_FORMAT_VERSION (1)
 *   byte 2    the crdt_type (1 set, 2 counter, 3 map_mv, 4 map_lww)
 *   then one msgpack object, the body:
 *     set      [clock, elems]
 *     counter  [actor, inc, dec, actor, inc, dec, ...]   (flat; actors
 *              ascending; inc + dec > 0)
 *     map      [clock, [[name, kind, content], ...]]     (by name, then
 *              kind; kind 1 counter, 2 set, 3 register)
 *   clock     [actor, counter, actor, counter, ...]      (flat; actors
 *             ascending; counters >= 1)
 *   elems     [[elem, dots], ...]                         (elements as bin,
 *             ascending by bytes then length; dots non-empty)
 *   dots      [actor, counter, ...]                       (flat, ascending)
 *   content   set field: elems; counter field: [actor, counter, total,
 *             ...] (total an int); register field: [actor, counter, ts_ms,
 *             value, ...] (value bin); dots ascending, at least one.
 *   Every dot is covered by the clock. The decoder accepts exactly this
 *   (KV_ECORRUPT otherwise), so the encoding of a state is canonical.
 *
 * ---- Context encoding (crdt_context; what a client sends back) ----
 *
 *   msgpack [CRDT_CTX_VERSION (1), [actor, counter, ...]]: the clock of a
 *   set or map. Opaque to clients (base64 in the CLI and JSON).
 *
 * ---- Operation encoding (crdt_op_*; what travels from clients) ----
 *
 *   op       [1, type, [update, ...], ctx]
 *     type   1 set, 2 counter, 3 map_mv, 4 map_lww, 0 a map of either
 *            kind (a new key gets map_mv)
 *     ctx    nil, or bin: a context from crdt_context, used by every
 *            remove of the operation (nil: the coordinator's own clock,
 *            i.e. remove what the coordinator holds)
 *   update   set:      [1 ADD, [elem, ...]] | [2 REM, [elem, ...]]
 *            counter:  [3 INCR, delta]                  (int64)
 *            map:      [4 FIELD, name, kind, inner]     inner is the
 *                        update of the field: ADD/REM for a set field,
 *                        INCR for a counter field, [5 ASSIGN, value, ts_ms]
 *                        for a register (ts_ms 0: the coordinator's now)
 *                      [6 FIELD_REM, name, kind]        (kind 0: every
 *                        field of that name)
 *   Updates apply in order, all with the operation's one new dot.
 *   At least one update. Elements, names and values are bin or str.
 *
 * Pure: depends on kv_err.h, mp.h, kv_json.h and kv_base64.h (kvproto).
 * Not thread-safe (no globals).
 */
#ifndef KV_CRDT_H
#define KV_CRDT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mp.h"

#define CRDT_MAGIC 0xc1u
#define CRDT_FORMAT_VERSION 1
#define CRDT_CTX_VERSION 1
#define CRDT_OP_VERSION 1

typedef enum crdt_type {
  CRDT_NONE = 0, /* in an operation: a map of either kind */
  CRDT_SET = 1,
  CRDT_COUNTER = 2,
  CRDT_MAP_MV = 3,
  CRDT_MAP_LWW = 4,
} crdt_type;

/* The kind of a map field. CRDT_KIND_ANY only names "every kind" in a
 * field removal. */
typedef enum crdt_kind {
  CRDT_KIND_ANY = 0,
  CRDT_KIND_COUNTER = 1,
  CRDT_KIND_SET = 2,
  CRDT_KIND_REGISTER = 3,
} crdt_kind;

/* Limits that crdt_apply enforces (joins never refuse: replicas must
 * converge). 0 turns a limit off. Defaults (crdt_limits_default):
 * set_elems_max 10000 (elements of a set or of a set field),
 * map_fields_max 1000, elem_bytes_max 1024 (an element or field name),
 * reg_bytes_max 0 (register values: bounded by the node's value limit). */
typedef struct crdt_limits {
  uint32_t set_elems_max;
  uint32_t map_fields_max;
  uint32_t elem_bytes_max;
  uint32_t reg_bytes_max;
} crdt_limits;
extern const crdt_limits crdt_limits_default;

typedef struct crdt crdt; /* a decoded state; opaque */

/* Returns a new empty state of type t (a set, counter or map), or NULL
 * when t is not one or memory runs out. Free with crdt_free. */
crdt *crdt_new(crdt_type t);
/* Frees c; crdt_free(NULL) is a no-op. */
void crdt_free(crdt *c);
/* Returns a deep copy (caller frees) or NULL on OOM. */
crdt *crdt_clone(const crdt *c);
crdt_type crdt_type_of(const crdt *c);
/* A name for t: "set", "counter", "map_mv", "map_lww" ("none" else). */
const char *crdt_type_name(crdt_type t);

/* True when buf starts like an encoded state (magic, version, a known
 * type): cheap, and says nothing of the rest. */
bool crdt_is_state(const uint8_t *buf, size_t len);
/* Decodes a state. Every count is checked against the bytes that remain
 * before anything is allocated. Returns 0 and *out (caller frees),
 * KV_EPROTO (not a state, bad msgpack, trailing bytes), KV_EVERSION,
 * KV_ECORRUPT (well-formed but breaking an invariant of the encoding) or
 * KV_ENOMEM. */
int crdt_decode(const uint8_t *buf, size_t len, crdt **out);
/* Appends the canonical encoding of c to out. Returns 0 or KV_ENOMEM. */
int crdt_encode(const crdt *c, kvbuf *out);
/* True when a and b are the same state (same type, same encoding). */
bool crdt_equal(const crdt *a, const crdt *b);

/* Joins other into into (the least upper bound of the two). Returns 0,
 * KV_ETYPE when the types differ, or KV_ENOMEM; into is unchanged on an
 * error. */
int crdt_join(crdt *into, const crdt *other);

/* ---- operations ---- */

typedef struct crdt_op crdt_op; /* a decoded operation; opaque */

/* Decodes an operation (the layout above). The bytes are copied: buf may
 * go once this returns. Returns 0 and *out (free with crdt_op_free),
 * KV_EPROTO (malformed, or a context that crdt_context_check refuses),
 * KV_EVERSION, KV_ETOOBIG (len over 4 GiB) or KV_ENOMEM. */
int crdt_op_decode(const uint8_t *buf, size_t len, crdt_op **out);
void crdt_op_free(crdt_op *op);
/* The type a key gets when op is its first write (a map of either kind:
 * CRDT_MAP_MV). */
crdt_type crdt_op_type(const crdt_op *op);
/* True when op can apply to a state of type t. */
bool crdt_op_fits(const crdt_op *op, crdt_type t);
/* True when op carries a context with dots that c's clock has not seen:
 * its removes then cannot remove those (a coordinator may want to read
 * more replicas first). False without a context. */
bool crdt_op_behind(const crdt *c, const crdt_op *op);

/* What crdt_apply did, for the front ends' replies. */
typedef struct crdt_result {
  /* Set: elements that are new / gone after the op (SADD, SREM). Map:
   * fields that are new / gone (HSET, HDEL). */
  int64_t added;
  int64_t removed;
  /* Counter: its value after the op; map: the value of the last counter
   * field the op updated (INCRBY, HINCRBY). */
  int64_t value;
  /* On an error: what happened, for a person (NUL-terminated). */
  char msg[160];
} crdt_result;

/*
 * Applies op to c as one new event of actor (its dot: actor and one past
 * c's clock entry for actor). now_ms stamps register assignments that
 * carry no timestamp. lim NULL means crdt_limits_default. res (may be
 * NULL) gets the counts above. Returns 0, KV_ETYPE (op does not fit c's
 * type), KV_ETOOBIG (a limit; res->msg says which), KV_EINVAL (a counter
 * would leave the int64 range) or KV_ENOMEM; on an error c is unchanged.
 */
int crdt_apply(crdt *c, const crdt_op *op, uint64_t actor, uint64_t now_ms,
               const crdt_limits *lim, crdt_result *res);

/* Operation builders for clients and front ends: each appends one encoded
 * operation to out and returns 0 or KV_ENOMEM. Elements are packed as bin.
 * ctx/ctx_len: a context from crdt_context, or NULL/0 for none. */
int crdt_op_set_add(kvbuf *out, const kv_slice *elems, size_t n);
int crdt_op_set_rem(kvbuf *out, const kv_slice *elems, size_t n,
                    const uint8_t *ctx, size_t ctx_len);
int crdt_op_counter_incr(kvbuf *out, int64_t delta);

/* A map operation is built update by update: init, add updates, finish.
 * The builder owns memory until crdt_mapb_finish or crdt_mapb_free. */
typedef struct crdt_mapb {
  kvbuf updates; /* the encoded updates so far */
  uint32_t n;
  crdt_type type; /* CRDT_MAP_MV, CRDT_MAP_LWW or CRDT_NONE (either) */
} crdt_mapb;
void crdt_mapb_init(crdt_mapb *b, crdt_type map_type);
/* Each returns 0 or KV_ENOMEM (a later finish then fails too). */
int crdt_mapb_assign(crdt_mapb *b, kv_slice name, kv_slice value,
                     uint64_t ts_ms);
int crdt_mapb_incr(crdt_mapb *b, kv_slice name, int64_t delta);
int crdt_mapb_set_add(crdt_mapb *b, kv_slice name, const kv_slice *elems,
                      size_t n);
int crdt_mapb_set_rem(crdt_mapb *b, kv_slice name, const kv_slice *elems,
                      size_t n);
int crdt_mapb_remove(crdt_mapb *b, kv_slice name, crdt_kind kind);
/* Appends the operation to out and frees the builder. Returns 0,
 * KV_EINVAL (no update) or KV_ENOMEM. */
int crdt_mapb_finish(crdt_mapb *b, const uint8_t *ctx, size_t ctx_len,
                     kvbuf *out);
void crdt_mapb_free(crdt_mapb *b);

/* ---- reading ---- */

/* Appends c's context (its clock; a counter's is empty) to out. Returns 0
 * or KV_ENOMEM. */
int crdt_context(const crdt *c, kvbuf *out);
/* Checks that a context is well-formed. Returns 0 or KV_EPROTO. */
int crdt_context_check(const uint8_t *ctx, size_t len);

/* Sets (0 for another type). Members come in a stable order (by bytes);
 * a member's bytes belong to c and stay valid until c changes. */
size_t crdt_set_count(const crdt *c);
/* Returns 0, or KV_EINVAL when i is out of range. */
int crdt_set_member(const crdt *c, size_t i, kv_slice *out);
bool crdt_set_contains(const crdt *c, kv_slice elem);

/* Counters (0 for another type). */
int64_t crdt_counter_value(const crdt *c);

/* Maps: fields in a stable order (by name, then kind). */
typedef struct crdt_field {
  kv_slice name; /* belongs to c */
  crdt_kind kind;
} crdt_field;
size_t crdt_map_count(const crdt *c);
/* Returns 0, or KV_EINVAL when i is out of range. */
int crdt_map_field(const crdt *c, size_t i, crdt_field *out);
/* Returns the index of field (name, kind), or -1 when there is none. */
long crdt_map_find(const crdt *c, kv_slice name, crdt_kind kind);
/* Field i's value; 0 when it is not a counter field. */
int64_t crdt_map_counter(const crdt *c, size_t i);
/* Field i's members, as crdt_set_count and crdt_set_member. */
size_t crdt_map_set_count(const crdt *c, size_t i);
int crdt_map_set_member(const crdt *c, size_t i, size_t j, kv_slice *out);
/* Field i's register values: in a CRDT_MAP_MV map every concurrent value
 * (ordered by dot), in a CRDT_MAP_LWW map one, the winner. 0 when field i
 * is not a register. */
size_t crdt_map_reg_count(const crdt *c, size_t i);
/* Returns 0, or KV_EINVAL when out of range. ts_ms may be NULL. */
int crdt_map_reg_value(const crdt *c, size_t i, size_t j, kv_slice *out,
                       uint64_t *ts_ms);

/*
 * Appends c as JSON to out, NUL-terminated (the NUL not counted):
 *   {"type":"set","members":[B,...],"context":"<base64>"}
 *   {"type":"counter","value":N}
 *   {"type":"map_mv","fields":[F,...],"context":"<base64>"}  (or map_lww)
 *   F: {"name":B,"kind":"counter","value":N}
 *      {"name":B,"kind":"set","members":[B,...]}
 *      {"name":B,"kind":"register","values":[B,...]}          (map_mv)
 *      {"name":B,"kind":"register","value":B}                 (map_lww)
 * B, a byte string: a JSON string when the bytes are valid UTF-8, else
 * {"base64":"<base64>"}. Returns 0 or KV_ENOMEM.
 */
int crdt_render_json(const crdt *c, kvbuf *out);

#endif
