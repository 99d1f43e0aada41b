/*
 * test_crdt.c: unit tests of the server-merged data types (storage/crdt.h).
 *
 * Semantics first: the add-wins set under concurrency, removes that
 * remove only what their context saw, counters summing concurrent
 * increments, add-wins removal of map fields, multi-value and
 * last-write-wins registers, limits and type errors. Then a property test:
 * random operations at three actors on replicas that exchange states at
 * random, checking on every state that the join is idempotent, commutative
 * and associative, that applying an operation only grows a state (joining
 * the old state back changes nothing), that replicas that have exchanged
 * everything are equal, and that encodings round-trip; and a brute-force
 * model of the set's semantics (an element is present while one of its
 * adds is known and no known add or remove has observed it). Last, the
 * decoders against truncated, corrupt and random input.
 * Seeded and bounded: a failure prints the seed that reproduces it.
 * Depends on: kvobj (crdt.h), kvproto.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt.h"
#include "kv_base64.h"
#include "kv_err.h"
#include "mp.h"
#include "unit/check.h"

#define A1 0x1111000000000001ull
#define A2 0x2222000000000001ull
#define A3 0x3333000000000001ull
#define NOW 1700000000000ull

static kv_slice S(const char *s) {
  kv_slice v = {(const uint8_t *)s, strlen(s)};
  return v;
}

/* Applies the encoded operation in op (then reset) to c. */
static int apply_buf(crdt *c, kvbuf *op, uint64_t actor,
                     const crdt_limits *lim, crdt_result *res) {
  crdt_op *o = NULL;
  int rc = crdt_op_decode(op->data, op->len, &o);
  kvbuf_free(op);
  kvbuf_init(op);
  if (rc)
    return rc;
  rc = crdt_apply(c, o, actor, NOW, lim, res);
  crdt_op_free(o);
  return rc;
}

static int set_add(crdt *c, uint64_t actor, const char *e) {
  kvbuf b;
  kvbuf_init(&b);
  kv_slice s = S(e);
  crdt_op_set_add(&b, &s, 1);
  return apply_buf(c, &b, actor, NULL, NULL);
}

/* Removes e with context ctx (NULL: the state's own). */
static int set_rem(crdt *c, uint64_t actor, const char *e, const kvbuf *ctx) {
  kvbuf b;
  kvbuf_init(&b);
  kv_slice s = S(e);
  crdt_op_set_rem(&b, &s, 1, ctx ? ctx->data : NULL, ctx ? ctx->len : 0);
  return apply_buf(c, &b, actor, NULL, NULL);
}

static int incr(crdt *c, uint64_t actor, int64_t d) {
  kvbuf b;
  kvbuf_init(&b);
  crdt_op_counter_incr(&b, d);
  return apply_buf(c, &b, actor, NULL, NULL);
}

static kvbuf ctx_of(const crdt *c) {
  kvbuf b;
  kvbuf_init(&b);
  crdt_context(c, &b);
  return b;
}

/* Returns join(a, b) as a new state. */
static crdt *joined(const crdt *a, const crdt *b) {
  crdt *j = crdt_clone(a);
  if (j && crdt_join(j, b) != 0) {
    crdt_free(j);
    return NULL;
  }
  return j;
}

/* True when c encodes, decodes to an equal state and re-encodes to the
 * same bytes. */
static bool round_trips(const crdt *c) {
  kvbuf e1, e2;
  kvbuf_init(&e1);
  kvbuf_init(&e2);
  crdt *d = NULL;
  bool ok = crdt_encode(c, &e1) == 0 && crdt_is_state(e1.data, e1.len) &&
            crdt_decode(e1.data, e1.len, &d) == 0 && crdt_equal(c, d) &&
            crdt_encode(d, &e2) == 0 && e1.len == e2.len &&
            memcmp(e1.data, e2.data, e1.len) == 0;
  crdt_free(d);
  kvbuf_free(&e1);
  kvbuf_free(&e2);
  return ok;
}

/* ---- sets ---- */

static void test_set_basics(void) {
  crdt *c = crdt_new(CRDT_SET);
  CHECK(c && crdt_type_of(c) == CRDT_SET && crdt_set_count(c) == 0);
  kvbuf b;
  kvbuf_init(&b);
  kv_slice e[3] = {S("milk"), S("eggs"), S("milk")};
  crdt_result res;
  CHECK(crdt_op_set_add(&b, e, 3) == 0);
  CHECK(apply_buf(c, &b, A1, NULL, &res) == 0);
  CHECK(res.added == 2 && res.removed == 0);
  CHECK(crdt_set_count(c) == 2);
  kv_slice m;
  CHECK(crdt_set_member(c, 0, &m) == 0 && m.len == 4 &&
        memcmp(m.ptr, "eggs", 4) == 0);
  CHECK(crdt_set_member(c, 1, &m) == 0 && memcmp(m.ptr, "milk", 4) == 0);
  CHECK(crdt_set_member(c, 2, &m) == KV_EINVAL);
  CHECK(crdt_set_contains(c, S("milk")) && !crdt_set_contains(c, S("tea")));
  /* Adding again adds nothing new. */
  CHECK(crdt_op_set_add(&b, e, 1) == 0);
  CHECK(apply_buf(c, &b, A1, NULL, &res) == 0 && res.added == 0);
  /* An empty element is an element. */
  CHECK(set_add(c, A2, "") == 0 && crdt_set_contains(c, S("")));
  CHECK(crdt_set_count(c) == 3);
  kv_slice r = S("eggs");
  CHECK(crdt_op_set_rem(&b, &r, 1, NULL, 0) == 0);
  CHECK(apply_buf(c, &b, A1, NULL, &res) == 0);
  CHECK(res.removed == 1 && res.added == 0);
  CHECK(!crdt_set_contains(c, S("eggs")) && crdt_set_count(c) == 2);
  /* Removing an absent element is no error. */
  CHECK(set_rem(c, A1, "absent", NULL) == 0);
  CHECK(round_trips(c));
  crdt_free(c);
}

static void test_set_add_wins(void) {
  crdt *base = crdt_new(CRDT_SET);
  CHECK(set_add(base, A1, "x") == 0);
  crdt *r1 = crdt_clone(base), *r2 = crdt_clone(base);
  /* r1 adds x again while r2 removes x with r2's own context. */
  CHECK(set_add(r1, A1, "x") == 0);
  CHECK(set_rem(r2, A2, "x", NULL) == 0 && !crdt_set_contains(r2, S("x")));
  crdt *j12 = joined(r1, r2), *j21 = joined(r2, r1);
  CHECK(j12 && crdt_set_contains(j12, S("x")));
  CHECK(j21 && crdt_equal(j12, j21));
  /* Without the concurrent add, the remove wins everywhere. */
  crdt *r3 = crdt_clone(base);
  crdt *j23 = joined(r3, r2);
  CHECK(j23 && !crdt_set_contains(j23, S("x")));
  /* An add at another actor, concurrent with the remove, keeps x too. */
  crdt *r4 = crdt_clone(base);
  CHECK(set_add(r4, A3, "x") == 0);
  crdt *j24 = joined(r2, r4);
  CHECK(j24 && crdt_set_contains(j24, S("x")));
  crdt_free(j24);
  crdt_free(r4);
  crdt_free(j23);
  crdt_free(r3);
  crdt_free(j21);
  crdt_free(j12);
  crdt_free(r2);
  crdt_free(r1);
  crdt_free(base);
}

static void test_set_remove_context(void) {
  crdt *r1 = crdt_new(CRDT_SET);
  CHECK(set_add(r1, A1, "x") == 0);
  kvbuf seen = ctx_of(r1); /* a client reads r1: x with A1's dot */
  crdt *r2 = crdt_new(CRDT_SET);
  CHECK(set_add(r2, A2, "x") == 0); /* a concurrent add elsewhere */
  CHECK(set_add(r2, A2, "y") == 0);
  crdt *m = joined(r1, r2);
  CHECK(m && crdt_set_count(m) == 2);
  /* The client's remove removes only the add it saw. */
  crdt *m1 = crdt_clone(m);
  CHECK(set_rem(m1, A1, "x", &seen) == 0);
  CHECK(crdt_set_contains(m1, S("x")));
  /* y was never in the context: untouched. */
  CHECK(set_rem(m1, A1, "y", &seen) == 0);
  CHECK(crdt_set_contains(m1, S("y")));
  /* With the merged state's context both adds go. */
  kvbuf all = ctx_of(m);
  CHECK(set_rem(m1, A1, "x", &all) == 0 && !crdt_set_contains(m1, S("x")));
  /* A context that the coordinator has not seen fully is "behind". */
  kvbuf b;
  kvbuf_init(&b);
  kv_slice x = S("x");
  crdt_op *op = NULL;
  CHECK(crdt_op_set_rem(&b, &x, 1, all.data, all.len) == 0);
  CHECK(crdt_op_decode(b.data, b.len, &op) == 0);
  CHECK(crdt_op_behind(r1, op) && !crdt_op_behind(m, op));
  crdt_op_free(op);
  kvbuf_free(&b);
  /* A malformed context is refused when the operation is decoded. */
  kvbuf_init(&b);
  CHECK(crdt_op_set_rem(&b, &x, 1, (const uint8_t *)"\x92\x01\x91", 3) == 0);
  CHECK(crdt_op_decode(b.data, b.len, &op) == KV_EPROTO && op == NULL);
  kvbuf_free(&b);
  CHECK(crdt_context_check(all.data, all.len) == 0);
  CHECK(crdt_context_check(all.data, all.len - 1) == KV_EPROTO);
  kvbuf_free(&all);
  kvbuf_free(&seen);
  crdt_free(m1);
  crdt_free(m);
  crdt_free(r2);
  crdt_free(r1);
}

/* ---- counters ---- */

static void test_counter(void) {
  crdt *base = crdt_new(CRDT_COUNTER);
  CHECK(incr(base, A1, 10) == 0 && crdt_counter_value(base) == 10);
  crdt *r[3];
  int64_t expect = 10;
  for (int i = 0; i < 3; i++) {
    r[i] = crdt_clone(base);
    for (int k = 0; k < 5; k++) {
      int64_t d = (i + 1) * (k % 2 ? -3 : 7);
      CHECK(incr(r[i], i == 0 ? A1 : i == 1 ? A2 : A3, d) == 0);
      expect += d;
    }
  }
  crdt *j = joined(r[0], r[1]);
  CHECK(j && crdt_join(j, r[2]) == 0);
  CHECK(crdt_counter_value(j) == expect);
  CHECK(crdt_join(j, r[1]) == 0 && crdt_counter_value(j) == expect);
  crdt_result res;
  kvbuf b;
  kvbuf_init(&b);
  crdt_op_counter_incr(&b, -expect - 1);
  CHECK(apply_buf(j, &b, A2, NULL, &res) == 0 && res.value == -1);
  CHECK(crdt_counter_value(j) == -1);
  /* Overflow is an error and changes nothing. */
  crdt *o = crdt_new(CRDT_COUNTER);
  CHECK(incr(o, A1, INT64_MAX) == 0);
  CHECK(incr(o, A2, 1) == KV_EINVAL && crdt_counter_value(o) == INT64_MAX);
  CHECK(incr(o, A2, INT64_MIN) == 0 && crdt_counter_value(o) == -1);
  CHECK(incr(o, A3, INT64_MIN + 1) == 0 && crdt_counter_value(o) == INT64_MIN);
  CHECK(incr(o, A3, -1) == KV_EINVAL);
  /* A zero increment changes nothing but is fine. */
  CHECK(incr(o, A3, 0) == 0 && crdt_counter_value(o) == INT64_MIN);
  CHECK(round_trips(j) && round_trips(o));
  kvbuf js;
  kvbuf_init(&js);
  CHECK(crdt_render_json(o, &js) == 0);
  CHECK(strcmp((char *)js.data,
               "{\"type\":\"counter\",\"value\":-9223372036854775808}") == 0);
  kvbuf_free(&js);
  crdt_free(o);
  crdt_free(j);
  for (int i = 0; i < 3; i++)
    crdt_free(r[i]);
  crdt_free(base);
}

/* ---- maps ---- */

static int map_incr(crdt *c, uint64_t actor, const char *f, int64_t d) {
  crdt_mapb mb;
  kvbuf b;
  kvbuf_init(&b);
  crdt_mapb_init(&mb, CRDT_NONE);
  crdt_mapb_incr(&mb, S(f), d);
  crdt_mapb_finish(&mb, NULL, 0, &b);
  return apply_buf(c, &b, actor, NULL, NULL);
}

static int map_assign(crdt *c, uint64_t actor, const char *f, const char *v,
                      uint64_t ts) {
  crdt_mapb mb;
  kvbuf b;
  kvbuf_init(&b);
  crdt_mapb_init(&mb, crdt_type_of(c));
  crdt_mapb_assign(&mb, S(f), S(v), ts);
  crdt_mapb_finish(&mb, NULL, 0, &b);
  return apply_buf(c, &b, actor, NULL, NULL);
}

static int map_set_op(crdt *c, uint64_t actor, const char *f, const char *e,
                      bool add) {
  crdt_mapb mb;
  kvbuf b;
  kvbuf_init(&b);
  kv_slice s = S(e);
  crdt_mapb_init(&mb, CRDT_NONE);
  if (add)
    crdt_mapb_set_add(&mb, S(f), &s, 1);
  else
    crdt_mapb_set_rem(&mb, S(f), &s, 1);
  crdt_mapb_finish(&mb, NULL, 0, &b);
  return apply_buf(c, &b, actor, NULL, NULL);
}

static int map_remove(crdt *c, uint64_t actor, const char *f, crdt_kind k,
                      const kvbuf *ctx) {
  crdt_mapb mb;
  kvbuf b;
  kvbuf_init(&b);
  crdt_mapb_init(&mb, CRDT_NONE);
  crdt_mapb_remove(&mb, S(f), k);
  crdt_mapb_finish(&mb, ctx ? ctx->data : NULL, ctx ? ctx->len : 0, &b);
  return apply_buf(c, &b, actor, NULL, NULL);
}

static void test_map_fields(void) {
  crdt *c = crdt_new(CRDT_MAP_MV);
  crdt_result res;
  kvbuf b;
  kvbuf_init(&b);
  crdt_mapb mb;
  crdt_mapb_init(&mb, CRDT_NONE);
  kv_slice items[2] = {S("milk"), S("eggs")};
  CHECK(crdt_mapb_assign(&mb, S("owner"), S("alice"), 0) == 0);
  CHECK(crdt_mapb_incr(&mb, S("visits"), 3) == 0);
  CHECK(crdt_mapb_incr(&mb, S("visits"), 2) == 0);
  CHECK(crdt_mapb_set_add(&mb, S("items"), items, 2) == 0);
  CHECK(crdt_mapb_finish(&mb, NULL, 0, &b) == 0);
  CHECK(apply_buf(c, &b, A1, NULL, &res) == 0);
  CHECK(res.added == 3 && res.value == 5);
  CHECK(crdt_map_count(c) == 3);
  long i = crdt_map_find(c, S("visits"), CRDT_KIND_COUNTER);
  CHECK(i >= 0 && crdt_map_counter(c, (size_t)i) == 5);
  CHECK(crdt_map_find(c, S("visits"), CRDT_KIND_SET) == -1);
  i = crdt_map_find(c, S("items"), CRDT_KIND_SET);
  kv_slice m;
  CHECK(i >= 0 && crdt_map_set_count(c, (size_t)i) == 2);
  CHECK(crdt_map_set_member(c, (size_t)i, 1, &m) == 0 &&
        memcmp(m.ptr, "milk", 4) == 0);
  i = crdt_map_find(c, S("owner"), CRDT_KIND_REGISTER);
  uint64_t ts = 0;
  CHECK(i >= 0 && crdt_map_reg_count(c, (size_t)i) == 1);
  CHECK(crdt_map_reg_value(c, (size_t)i, 0, &m, &ts) == 0 && m.len == 5 &&
        ts == NOW);
  crdt_field f;
  CHECK(crdt_map_field(c, 0, &f) == 0 && f.kind == CRDT_KIND_SET);
  CHECK(crdt_map_field(c, 3, &f) == KV_EINVAL);
  /* The same name may hold one field of each kind. */
  CHECK(map_incr(c, A1, "owner", 1) == 0 && crdt_map_count(c) == 4);
  /* Removing every kind of a name. */
  kvbuf_init(&b);
  crdt_mapb_init(&mb, CRDT_NONE);
  crdt_mapb_remove(&mb, S("owner"), CRDT_KIND_ANY);
  crdt_mapb_finish(&mb, NULL, 0, &b);
  CHECK(apply_buf(c, &b, A1, NULL, &res) == 0 && res.removed == 2);
  CHECK(crdt_map_count(c) == 2);
  /* A set field whose last element goes is no field. */
  CHECK(map_set_op(c, A1, "items", "milk", false) == 0);
  CHECK(map_set_op(c, A1, "items", "eggs", false) == 0);
  CHECK(crdt_map_find(c, S("items"), CRDT_KIND_SET) == -1);
  CHECK(map_set_op(c, A1, "new", "x", false) == 0 && crdt_map_count(c) == 1);
  CHECK(round_trips(c));
  /* A builder with no update is refused. */
  crdt_mapb_init(&mb, CRDT_NONE);
  kvbuf_init(&b);
  CHECK(crdt_mapb_finish(&mb, NULL, 0, &b) == KV_EINVAL);
  kvbuf_free(&b);
  crdt_free(c);
}

static void test_map_remove_add_wins(void) {
  crdt *base = crdt_new(CRDT_MAP_MV);
  CHECK(map_incr(base, A1, "n", 5) == 0);
  CHECK(map_set_op(base, A1, "s", "a", true) == 0);
  CHECK(map_assign(base, A1, "r", "old", 0) == 0);
  crdt *r1 = crdt_clone(base), *r2 = crdt_clone(base);
  /* r1 removes every field; r2 updates each concurrently. */
  CHECK(map_remove(r1, A1, "n", CRDT_KIND_ANY, NULL) == 0);
  CHECK(map_remove(r1, A1, "s", CRDT_KIND_SET, NULL) == 0);
  CHECK(map_remove(r1, A1, "r", CRDT_KIND_REGISTER, NULL) == 0);
  CHECK(crdt_map_count(r1) == 0);
  CHECK(map_incr(r2, A2, "n", 2) == 0);
  CHECK(map_set_op(r2, A2, "s", "b", true) == 0);
  crdt *j = joined(r1, r2), *j2 = joined(r2, r1);
  CHECK(j && j2 && crdt_equal(j, j2));
  /* The fields updated concurrently stay, reset to their updates. */
  long i = crdt_map_find(j, S("n"), CRDT_KIND_COUNTER);
  CHECK(i >= 0 && crdt_map_counter(j, (size_t)i) == 2);
  i = crdt_map_find(j, S("s"), CRDT_KIND_SET);
  CHECK(i >= 0 && crdt_map_set_count(j, (size_t)i) == 1);
  kv_slice m;
  CHECK(crdt_map_set_member(j, (size_t)i, 0, &m) == 0 && m.len == 1 &&
        m.ptr[0] == 'b');
  /* The register nobody updated is gone. */
  CHECK(crdt_map_find(j, S("r"), CRDT_KIND_REGISTER) == -1);
  /* A removal with a stale context keeps what it did not see. */
  kvbuf stale = ctx_of(base);
  crdt *k = crdt_clone(r2);
  CHECK(map_remove(k, A1, "s", CRDT_KIND_SET, &stale) == 0);
  i = crdt_map_find(k, S("s"), CRDT_KIND_SET);
  CHECK(i >= 0 && crdt_map_set_count(k, (size_t)i) == 1);
  CHECK(map_remove(k, A1, "n", CRDT_KIND_COUNTER, &stale) == 0);
  i = crdt_map_find(k, S("n"), CRDT_KIND_COUNTER);
  CHECK(i >= 0 && crdt_map_counter(k, (size_t)i) == 2);
  kvbuf_free(&stale);
  crdt_free(k);
  crdt_free(j2);
  crdt_free(j);
  crdt_free(r2);
  crdt_free(r1);
  crdt_free(base);
}

static void test_registers(void) {
  /* Multi-value: concurrent assignments are all kept. */
  crdt *base = crdt_new(CRDT_MAP_MV);
  CHECK(map_assign(base, A1, "r", "v0", 0) == 0);
  crdt *r1 = crdt_clone(base), *r2 = crdt_clone(base);
  CHECK(map_assign(r1, A1, "r", "v1", 0) == 0);
  CHECK(map_assign(r2, A2, "r", "v2", 0) == 0);
  crdt *j = joined(r1, r2);
  long i = crdt_map_find(j, S("r"), CRDT_KIND_REGISTER);
  kv_slice v1, v2;
  CHECK(i >= 0 && crdt_map_reg_count(j, (size_t)i) == 2);
  CHECK(crdt_map_reg_value(j, (size_t)i, 0, &v1, NULL) == 0 &&
        crdt_map_reg_value(j, (size_t)i, 1, &v2, NULL) == 0);
  CHECK(v1.len == 2 && v2.len == 2 && v1.ptr[1] == '1' && v2.ptr[1] == '2');
  CHECK(crdt_map_reg_value(j, (size_t)i, 2, &v1, NULL) == KV_EINVAL);
  kvbuf js;
  kvbuf_init(&js);
  CHECK(crdt_render_json(j, &js) == 0);
  CHECK(strstr((char *)js.data, "\"values\":[\"v1\",\"v2\"]") != NULL);
  kvbuf_free(&js);
  /* An assignment that saw both replaces both. */
  CHECK(map_assign(j, A3, "r", "v3", 0) == 0);
  CHECK(crdt_map_reg_count(j, (size_t)i) == 1);
  crdt_free(j);
  crdt_free(r2);
  crdt_free(r1);
  crdt_free(base);

  /* Last-write-wins: the later timestamp, then the greater actor. */
  base = crdt_new(CRDT_MAP_LWW);
  CHECK(map_assign(base, A1, "r", "v0", 50) == 0);
  r1 = crdt_clone(base);
  r2 = crdt_clone(base);
  CHECK(map_assign(r1, A1, "r", "late", 200) == 0);
  CHECK(map_assign(r2, A2, "r", "early", 100) == 0);
  j = joined(r2, r1);
  i = crdt_map_find(j, S("r"), CRDT_KIND_REGISTER);
  uint64_t ts = 0;
  CHECK(i >= 0 && crdt_map_reg_count(j, (size_t)i) == 1);
  CHECK(crdt_map_reg_value(j, (size_t)i, 0, &v1, &ts) == 0 && ts == 200 &&
        v1.len == 4 && memcmp(v1.ptr, "late", 4) == 0);
  kvbuf_init(&js);
  CHECK(crdt_render_json(j, &js) == 0);
  CHECK(strstr((char *)js.data, "\"value\":\"late\"") != NULL);
  kvbuf_free(&js);
  /* Equal timestamps: the greater actor. */
  crdt *t1 = crdt_clone(base), *t2 = crdt_clone(base);
  CHECK(map_assign(t1, A3, "r", "a3", 300) == 0);
  CHECK(map_assign(t2, A2, "r", "a2", 300) == 0);
  crdt *tj = joined(t2, t1);
  CHECK(crdt_map_reg_value(tj, (size_t)i, 0, &v1, NULL) == 0 &&
        memcmp(v1.ptr, "a3", 2) == 0);
  /* An assignment that saw the value replaces it, whatever its clock. */
  CHECK(map_assign(tj, A1, "r", "after", 10) == 0);
  CHECK(crdt_map_reg_value(tj, (size_t)i, 0, &v1, &ts) == 0 && ts == 10 &&
        memcmp(v1.ptr, "after", 5) == 0);
  CHECK(round_trips(tj));
  crdt_free(tj);
  crdt_free(t2);
  crdt_free(t1);
  crdt_free(j);
  crdt_free(r2);
  crdt_free(r1);
  crdt_free(base);
}

/* ---- limits and types ---- */

static void test_limits(void) {
  crdt_limits lim = crdt_limits_default;
  lim.set_elems_max = 3;
  lim.elem_bytes_max = 8;
  lim.map_fields_max = 2;
  lim.reg_bytes_max = 4;
  crdt *c = crdt_new(CRDT_SET);
  kvbuf b;
  kvbuf_init(&b);
  kv_slice e[4] = {S("a"), S("b"), S("c"), S("d")};
  crdt_result res;
  CHECK(crdt_op_set_add(&b, e, 3) == 0);
  CHECK(apply_buf(c, &b, A1, &lim, &res) == 0);
  crdt *before = crdt_clone(c);
  CHECK(crdt_op_set_add(&b, e + 2, 2) == 0);
  CHECK(apply_buf(c, &b, A1, &lim, &res) == KV_ETOOBIG);
  CHECK(strstr(res.msg, "set_elems_max") != NULL);
  CHECK(crdt_equal(c, before));
  /* Re-adding present elements is fine at the limit. */
  CHECK(crdt_op_set_add(&b, e, 3) == 0);
  CHECK(apply_buf(c, &b, A1, &lim, &res) == 0);
  kv_slice big = S("123456789");
  CHECK(crdt_op_set_add(&b, &big, 1) == 0);
  CHECK(apply_buf(c, &b, A1, &lim, &res) == KV_ETOOBIG);
  CHECK(strstr(res.msg, "elem_bytes_max") != NULL);
  /* Defaults: 10000 elements. */
  crdt *d = crdt_new(CRDT_SET);
  kv_slice *many = calloc(10001, sizeof(kv_slice));
  char (*names)[8] = calloc(10001, 8);
  for (int i = 0; i < 10001; i++) {
    snprintf(names[i], 8, "%05d", i);
    many[i] = S(names[i]);
  }
  CHECK(crdt_op_set_add(&b, many, 10000) == 0);
  CHECK(apply_buf(d, &b, A1, NULL, &res) == 0 && res.added == 10000);
  CHECK(crdt_op_set_add(&b, many + 10000, 1) == 0);
  CHECK(apply_buf(d, &b, A1, NULL, &res) == KV_ETOOBIG);
  CHECK(crdt_set_count(d) == 10000 && round_trips(d));
  free(names);
  free(many);
  crdt_free(d);

  crdt *m = crdt_new(CRDT_MAP_MV);
  crdt_mapb mb;
  crdt_mapb_init(&mb, CRDT_NONE);
  crdt_mapb_incr(&mb, S("f1"), 1);
  crdt_mapb_incr(&mb, S("f2"), 1);
  crdt_mapb_incr(&mb, S("f3"), 1);
  crdt_mapb_finish(&mb, NULL, 0, &b);
  CHECK(apply_buf(m, &b, A1, &lim, &res) == KV_ETOOBIG);
  CHECK(strstr(res.msg, "map_fields_max") != NULL && crdt_map_count(m) == 0);
  crdt_mapb_init(&mb, CRDT_NONE);
  crdt_mapb_assign(&mb, S("f1"), S("12345"), 0);
  crdt_mapb_finish(&mb, NULL, 0, &b);
  CHECK(apply_buf(m, &b, A1, &lim, &res) == KV_ETOOBIG);
  CHECK(strstr(res.msg, "reg_bytes_max") != NULL);
  crdt_mapb_init(&mb, CRDT_NONE);
  crdt_mapb_incr(&mb, big, 1);
  crdt_mapb_finish(&mb, NULL, 0, &b);
  CHECK(apply_buf(m, &b, A1, &lim, &res) == KV_ETOOBIG);
  crdt_mapb_init(&mb, CRDT_NONE);
  crdt_mapb_set_add(&mb, S("s"), e, 4);
  crdt_mapb_finish(&mb, NULL, 0, &b);
  CHECK(apply_buf(m, &b, A1, &lim, &res) == KV_ETOOBIG);
  CHECK(crdt_map_count(m) == 0);
  kvbuf_free(&b);
  crdt_free(m);
  crdt_free(before);
  crdt_free(c);
}

static void test_types(void) {
  crdt *s = crdt_new(CRDT_SET), *n = crdt_new(CRDT_COUNTER);
  crdt *mv = crdt_new(CRDT_MAP_MV), *lww = crdt_new(CRDT_MAP_LWW);
  CHECK(crdt_new(CRDT_NONE) == NULL && crdt_new((crdt_type)9) == NULL);
  crdt_result res;
  kvbuf b;
  kvbuf_init(&b);
  kv_slice x = S("x");
  crdt_op_set_add(&b, &x, 1);
  crdt_op *op = NULL;
  CHECK(crdt_op_decode(b.data, b.len, &op) == 0);
  CHECK(crdt_op_type(op) == CRDT_SET && crdt_op_fits(op, CRDT_SET));
  CHECK(crdt_apply(n, op, A1, NOW, NULL, &res) == KV_ETYPE);
  CHECK(strstr(res.msg, "set") != NULL);
  crdt_op_free(op);
  kvbuf_free(&b);
  CHECK(incr(s, A1, 1) == KV_ETYPE);
  CHECK(crdt_join(s, n) == KV_ETYPE && crdt_join(mv, lww) == KV_ETYPE);
  /* A map operation of either kind fits both; a typed one only its own. */
  CHECK(map_incr(mv, A1, "f", 1) == 0 && map_incr(lww, A1, "f", 1) == 0);
  CHECK(map_assign(lww, A1, "r", "v", 0) == 0);
  kvbuf_init(&b);
  crdt_mapb mb;
  crdt_mapb_init(&mb, CRDT_MAP_LWW);
  crdt_mapb_assign(&mb, S("r"), S("v"), 0);
  crdt_mapb_finish(&mb, NULL, 0, &b);
  CHECK(crdt_op_decode(b.data, b.len, &op) == 0);
  CHECK(crdt_op_type(op) == CRDT_MAP_LWW);
  CHECK(crdt_apply(mv, op, A1, NOW, NULL, NULL) == KV_ETYPE);
  CHECK(crdt_apply(s, op, A1, NOW, NULL, NULL) == KV_ETYPE);
  crdt_op_free(op);
  kvbuf_free(&b);
  kvbuf_init(&b);
  crdt_mapb_init(&mb, CRDT_NONE);
  crdt_mapb_incr(&mb, S("f"), 1);
  crdt_mapb_finish(&mb, NULL, 0, &b);
  CHECK(crdt_op_decode(b.data, b.len, &op) == 0);
  CHECK(crdt_op_type(op) == CRDT_MAP_MV && crdt_op_fits(op, CRDT_MAP_LWW) &&
        !crdt_op_fits(op, CRDT_SET));
  crdt_op_free(op);
  kvbuf_free(&b);
  CHECK(KV_ETYPE == -25 && strcmp(kv_errname(KV_ETYPE), "ETYPE") == 0);
  crdt_free(lww);
  crdt_free(mv);
  crdt_free(n);
  crdt_free(s);
}

/* ---- encodings ---- */

static void test_json(void) {
  crdt *c = crdt_new(CRDT_SET);
  CHECK(set_add(c, A1, "caf\xc3\xa9") == 0);
  CHECK(set_add(c, A1, "q\"uote") == 0);
  kvbuf b;
  kvbuf_init(&b);
  kv_slice bin = {(const uint8_t *)"\xff\x00", 2};
  crdt_op_set_add(&b, &bin, 1);
  CHECK(apply_buf(c, &b, A1, NULL, NULL) == 0);
  kvbuf js;
  kvbuf_init(&js);
  CHECK(crdt_render_json(c, &js) == 0 && js.data[js.len] == '\0');
  kvbuf ctx = ctx_of(c), b64;
  kvbuf_init(&b64);
  kv_b64_encode(&b64, ctx.data, ctx.len);
  char want[512];
  snprintf(want, sizeof(want),
           "{\"type\":\"set\",\"members\":[\"caf\xc3\xa9\",\"q\\\"uote\","
           "{\"base64\":\"/wA=\"}],\"context\":\"%s\"}",
           (char *)b64.data);
  CHECK(strcmp((char *)js.data, want) == 0);
  kvbuf_free(&b64);
  kvbuf_free(&ctx);
  kvbuf_free(&js);
  crdt_free(c);

  crdt *m = crdt_new(CRDT_MAP_LWW);
  CHECK(map_incr(m, A1, "n", -4) == 0);
  CHECK(map_set_op(m, A1, "s", "e", true) == 0);
  kvbuf_init(&js);
  CHECK(crdt_render_json(m, &js) == 0);
  CHECK(strstr((char *)js.data,
               "\"fields\":[{\"name\":\"n\",\"kind\":\"counter\",\"value\":-4},"
               "{\"name\":\"s\",\"kind\":\"set\",\"members\":[\"e\"]}]") !=
        NULL);
  CHECK(strncmp((char *)js.data, "{\"type\":\"map_lww\",", 18) == 0);
  kvbuf_free(&js);
  crdt_free(m);
}

/* Packs an array of n uint64s (the flat lists of the encoding). */
static void pack_u64s(msgpack_packer *pk, int n, ...) {
  va_list ap;
  va_start(ap, n);
  msgpack_pack_array(pk, (size_t)n);
  for (int i = 0; i < n; i++)
    msgpack_pack_uint64(pk, va_arg(ap, uint64_t));
  va_end(ap);
}

/* Packs the head of a state of type t; for a set or map also its body's
 * array and the clock [A1, counter]. */
static void head(kvbuf *b, msgpack_packer *pk, uint8_t t, uint64_t counter) {
  uint8_t h[3] = {CRDT_MAGIC, CRDT_FORMAT_VERSION, t};
  kvbuf_append(b, h, 3);
  if (t == CRDT_COUNTER)
    return;
  msgpack_pack_array(pk, 2);
  pack_u64s(pk, 2, A1, counter);
}

/* Decodes b, expecting rc; frees b. */
static int decode_rc(kvbuf *b) {
  crdt *c = NULL;
  int rc = crdt_decode(b->data, b->len, &c);
  if (rc == 0)
    crdt_free(c);
  else if (c != NULL)
    rc = 1000;
  kvbuf_free(b);
  kvbuf_init(b);
  return rc;
}

static void test_decode_rejects(void) {
  kvbuf b;
  kvbuf_init(&b);
  msgpack_packer pk;
  mp_packer_init(&pk, &b);
  crdt *c = NULL;
  CHECK(crdt_decode((const uint8_t *)"", 0, &c) == KV_EPROTO && c == NULL);
  CHECK(!crdt_is_state((const uint8_t *)"\xc1\x01", 2));
  CHECK(!crdt_is_state((const uint8_t *)"hello", 5));
  /* Empty states of every type decode. */
  for (uint8_t t = CRDT_SET; t <= CRDT_MAP_LWW; t++) {
    crdt *e = crdt_new((crdt_type)t);
    CHECK(round_trips(e));
    crdt_free(e);
  }
  /* Wrong version, unknown type, trailing bytes. */
  kvbuf_append(&b, "\xc1\x02\x01\x92\x90\x90", 6);
  CHECK(decode_rc(&b) == KV_EVERSION);
  kvbuf_append(&b, "\xc1\x01\x07\x92\x90\x90", 6);
  CHECK(decode_rc(&b) == KV_EPROTO);
  kvbuf_append(&b, "\xc1\x01\x01\x92\x90\x90\x00", 7);
  CHECK(decode_rc(&b) == KV_EPROTO);
  kvbuf_append(&b, "\xc1\x01\x01\x92\x90\x90", 6);
  CHECK(decode_rc(&b) == 0);
  /* A dot the clock does not cover. */
  head(&b, &pk, CRDT_SET, 1);
  msgpack_pack_array(&pk, 1);
  msgpack_pack_array(&pk, 2);
  mp_pack_bin(&pk, "x", 1);
  pack_u64s(&pk, 2, A1, (uint64_t)2);
  CHECK(decode_rc(&b) == KV_ECORRUPT);
  /* Elements out of order, and an element without dots. */
  for (int variant = 0; variant < 3; variant++) {
    head(&b, &pk, CRDT_SET, 3);
    msgpack_pack_array(&pk, 2);
    for (int k = 0; k < 2; k++) {
      msgpack_pack_array(&pk, 2);
      mp_pack_bin(&pk, variant == 0 ? (k ? "a" : "b") : (k ? "b" : "a"), 1);
      if (variant == 2 && k == 1)
        pack_u64s(&pk, 0);
      else
        pack_u64s(&pk, 2, A1, (uint64_t)k + 1);
    }
    CHECK(decode_rc(&b) == (variant == 1 ? 0 : KV_ECORRUPT));
  }
  /* A counter entry of zeros; actors out of order. */
  head(&b, &pk, CRDT_COUNTER, 0);
  pack_u64s(&pk, 3, A1, (uint64_t)0, (uint64_t)0);
  CHECK(decode_rc(&b) == KV_ECORRUPT);
  head(&b, &pk, CRDT_COUNTER, 0);
  pack_u64s(&pk, 6, A2, (uint64_t)1, (uint64_t)0, A1, (uint64_t)1,
            (uint64_t)0);
  CHECK(decode_rc(&b) == KV_ECORRUPT);
  /* A map field of an unknown kind, and an empty set field. */
  for (int variant = 0; variant < 2; variant++) {
    head(&b, &pk, CRDT_MAP_MV, 1);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, 3);
    mp_pack_bin(&pk, "f", 1);
    msgpack_pack_uint8(&pk, variant ? CRDT_KIND_SET : 7);
    msgpack_pack_array(&pk, 0);
    CHECK(decode_rc(&b) == KV_ECORRUPT);
  }
  kvbuf_free(&b);

  /* Every strict prefix of a valid state fails cleanly. */
  crdt *m = crdt_new(CRDT_MAP_MV);
  CHECK(map_incr(m, A1, "n", 7) == 0 && map_set_op(m, A2, "s", "e", true) == 0);
  CHECK(map_assign(m, A3, "r", "value", 0) == 0);
  kvbuf enc;
  kvbuf_init(&enc);
  CHECK(crdt_encode(m, &enc) == 0);
  int bad = 0;
  for (size_t len = 0; len < enc.len; len++) {
    crdt *d = NULL;
    int rc = crdt_decode(enc.data, len, &d);
    bad += rc == 0 || d != NULL || rc == KV_ENOMEM;
    crdt_free(d);
  }
  CHECK(bad == 0);
  /* Every single-byte change decodes to an error or to a state that
   * round-trips. */
  for (size_t i = 0; i < enc.len; i++) {
    for (int bit = 0; bit < 8; bit++) {
      enc.data[i] ^= (uint8_t)(1u << bit);
      crdt *d = NULL;
      if (crdt_decode(enc.data, enc.len, &d) == 0)
        bad += !round_trips(d);
      crdt_free(d);
      enc.data[i] ^= (uint8_t)(1u << bit);
    }
  }
  CHECK(bad == 0);
  kvbuf_free(&enc);
  crdt_free(m);

  /* Operations: every prefix fails; garbage fails. */
  crdt_mapb mb;
  kvbuf op;
  kvbuf_init(&op);
  kv_slice e = S("e");
  crdt_mapb_init(&mb, CRDT_NONE);
  crdt_mapb_assign(&mb, S("r"), S("v"), 5);
  crdt_mapb_set_add(&mb, S("s"), &e, 1);
  crdt_mapb_set_rem(&mb, S("s"), &e, 1);
  crdt_mapb_incr(&mb, S("n"), -3);
  crdt_mapb_remove(&mb, S("r"), CRDT_KIND_REGISTER);
  CHECK(crdt_mapb_finish(&mb, (const uint8_t *)"\x92\x01\x90", 3, &op) == 0);
  crdt_op *o = NULL;
  CHECK(crdt_op_decode(op.data, op.len, &o) == 0);
  crdt_op_free(o);
  for (size_t len = 0; len < op.len; len++) {
    o = NULL;
    bad += crdt_op_decode(op.data, len, &o) == 0 || o != NULL;
  }
  CHECK(bad == 0);
  kvbuf_free(&op);
  static const struct {
    const char *bytes;
    size_t len;
    int rc;
  } ops[] = {
      {"\x94\x02\x01\x91\x92\x01\x90\xc0", 8, KV_EVERSION}, /* version 2 */
      {"\x94\x01\x01\x90\xc0", 5, KV_EPROTO},             /* no update */
      {"\x94\x01\x09\x91\x92\x01\x90\xc0", 8, KV_EPROTO}, /* type 9 */
      {"\x94\x01\x01\x91\x92\x03\x01\xc0", 8, KV_EPROTO}, /* INCR on a set */
      {"\x94\x01\x02\x91\x92\x01\x90\xc0", 8, KV_EPROTO}, /* ADD on a counter */
      {"\x94\x01\x01\x91\x92\x01\x90\xc0", 8, 0},         /* fine */
      {"\x94\x01\x01\x91\x92\x01\x91\x01\xc0", 9, KV_EPROTO}, /* elem 1 */
      {"\x94\x01\x00\x91\x94\x04\xa1" "f\x00\x92\x03\x01\xc0", 13,
       KV_EPROTO}, /* FIELD of kind ANY */
      {"\x94\x01\x00\x91\x94\x04\xa1" "f\x02\x92\x03\x01\xc0", 13,
       KV_EPROTO}, /* INCR in a set field */
      {"\x94\x01\x00\x91\x94\x04\xa1" "f\x01\x92\x03\x01\xc0", 13, 0},
  };
  for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
    o = NULL;
    int rc = crdt_op_decode((const uint8_t *)ops[i].bytes, ops[i].len, &o);
    if (rc != ops[i].rc)
      fprintf(stderr, "op case %zu: %s\n", i, kv_errname(rc));
    CHECK(rc == ops[i].rc);
    crdt_op_free(o);
  }
}

/* ---- property test ---- */

static uint64_t rng_state;
static uint64_t rnd(void) {
  /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dull;
}
static uint32_t rndn(uint32_t n) { return (uint32_t)(rnd() % n); }

#define P_ACTORS 3
#define P_HISTORY 48
static const uint64_t p_actor[P_ACTORS] = {A1, A2, A3};
static const char *const p_elems[] = {"a", "b", "c", "d"};
static const char *const p_fields[] = {"f", "g"};

/* Applies a random operation of type t at replica r (actor index). The
 * context, when one is used, is from snapshot ctx (may be NULL). */
static int random_op(crdt *r, crdt_type t, int actor, const crdt *ctx) {
  kvbuf b, cb;
  kvbuf_init(&b);
  kvbuf_init(&cb);
  if (ctx && rndn(2))
    crdt_context(ctx, &cb);
  kv_slice e[2] = {S(p_elems[rndn(4)]), S(p_elems[rndn(4)])};
  size_t ne = 1 + rndn(2);
  if (t == CRDT_SET) {
    if (rndn(3))
      crdt_op_set_add(&b, e, ne);
    else
      crdt_op_set_rem(&b, e, ne, cb.len ? cb.data : NULL, cb.len);
  } else if (t == CRDT_COUNTER) {
    crdt_op_counter_incr(&b, (int64_t)rndn(21) - 10);
  } else {
    crdt_mapb mb;
    crdt_mapb_init(&mb, rndn(2) ? t : CRDT_NONE);
    for (uint32_t k = 0, n = 1 + rndn(2); k < n; k++) {
      kv_slice f = S(p_fields[rndn(2)]);
      switch (rndn(6)) {
      case 0:
        crdt_mapb_assign(&mb, f, e[0], 1 + rndn(4));
        break;
      case 1:
        crdt_mapb_incr(&mb, f, (int64_t)rndn(9) - 4);
        break;
      case 2:
        crdt_mapb_set_add(&mb, f, e, ne);
        break;
      case 3:
        crdt_mapb_set_rem(&mb, f, e, ne);
        break;
      default:
        crdt_mapb_remove(&mb, f, (crdt_kind)rndn(4));
        break;
      }
    }
    crdt_mapb_finish(&mb, cb.len ? cb.data : NULL, cb.len, &b);
  }
  kvbuf_free(&cb);
  return apply_buf(r, &b, p_actor[actor], NULL, NULL);
}

/* Checks the join laws on a, b, c; returns 1 (and counts a failure) on
 * the first law broken. */
#define LAW(cond)                                                              \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "law broken: %s (seed %" PRIu64 ")\n", #cond, seed);     \
      ok = false;                                                              \
    }                                                                          \
  } while (0)

static bool check_laws(const crdt *a, const crdt *b, const crdt *c,
                       uint64_t seed) {
  bool ok = true;
  crdt *aa = joined(a, a);
  LAW(aa && crdt_equal(aa, a));
  crdt *ab = joined(a, b), *ba = joined(b, a);
  LAW(ab && ba && crdt_equal(ab, ba));
  crdt *ab_c = joined(ab, c), *bc = joined(b, c);
  crdt *a_bc = joined(a, bc);
  LAW(ab_c && a_bc && crdt_equal(ab_c, a_bc));
  /* The join is an upper bound: joining a part back changes nothing. */
  crdt *abb = joined(ab, b);
  LAW(abb && crdt_equal(abb, ab));
  LAW(round_trips(ab_c));
  crdt_free(abb);
  crdt_free(a_bc);
  crdt_free(bc);
  crdt_free(ab_c);
  crdt_free(ba);
  crdt_free(ab);
  crdt_free(aa);
  return ok;
}

static void test_properties(void) {
  static const crdt_type types[] = {CRDT_SET, CRDT_COUNTER, CRDT_MAP_MV,
                                    CRDT_MAP_LWW};
  const uint64_t seed0 = 0x6b766f72756dull;
  int runs = 0, broken = 0;
  for (uint64_t run = 0; run < 160; run++) {
    uint64_t seed = seed0 + run;
    rng_state = seed * 0x9e3779b97f4a7c15ull + 1;
    crdt_type t = types[run % 4];
    crdt *rep[P_ACTORS];
    crdt *hist[P_HISTORY]; /* states seen along the way */
    int nh = 0;
    for (int i = 0; i < P_ACTORS; i++)
      rep[i] = crdt_new(t);
    for (int step = 0; step < 60; step++) {
      int i = (int)rndn(P_ACTORS);
      if (rndn(4) == 0) {
        int from = (int)rndn(P_ACTORS);
        if (crdt_join(rep[i], rep[from]) != 0)
          broken++;
      } else {
        crdt *before = crdt_clone(rep[i]);
        const crdt *ctx = nh ? hist[rndn((uint32_t)nh)] : NULL;
        if (ctx && crdt_type_of(ctx) != t)
          ctx = NULL;
        if (random_op(rep[i], t, i, ctx) != 0) {
          fprintf(stderr, "apply failed (seed %" PRIu64 ")\n", seed);
          broken++;
        }
        /* Applying only grows a state. */
        crdt *back = joined(rep[i], before);
        if (!back || !crdt_equal(back, rep[i])) {
          fprintf(stderr, "apply is not an inflation (seed %" PRIu64 ")\n",
                  seed);
          broken++;
        }
        crdt_free(back);
        crdt_free(before);
      }
      if (nh < P_HISTORY)
        hist[nh++] = crdt_clone(rep[i]);
      else {
        int k = (int)rndn(P_HISTORY);
        crdt_free(hist[k]);
        hist[k] = crdt_clone(rep[i]);
      }
    }
    for (int k = 0; k < 40; k++) {
      const crdt *a = hist[rndn((uint32_t)nh)], *b = hist[rndn((uint32_t)nh)],
                 *c = hist[rndn((uint32_t)nh)];
      broken += !check_laws(a, b, c, seed);
    }
    /* Replicas that exchanged everything are equal. */
    for (int i = 1; i < P_ACTORS; i++)
      crdt_join(rep[0], rep[i]);
    for (int i = 1; i < P_ACTORS; i++) {
      crdt_join(rep[i], rep[0]);
      if (!crdt_equal(rep[i], rep[0])) {
        fprintf(stderr, "replicas differ (seed %" PRIu64 ")\n", seed);
        broken++;
      }
    }
    for (int i = 0; i < nh; i++)
      crdt_free(hist[i]);
    for (int i = 0; i < P_ACTORS; i++)
      crdt_free(rep[i]);
    runs++;
  }
  CHECK(runs == 160);
  CHECK(broken == 0);
}

/* ---- the set against a brute-force model ----
 *
 * Events are adds and removes of one element. Each replica knows a set
 * of events (a bitmask); exchanging states unites them. An add or remove
 * at replica R observes the adds of its element that are live at R (known
 * and observed by no known event); a remove with a context observes only
 * those that the context's snapshot knew. The model says an element is
 * present at R when one of its adds is live at R. */
#define M_EVENTS 64
#define M_ELEMS 3

typedef struct m_event {
  int elem;
  bool add;
  uint64_t observed; /* the adds it made dead */
} m_event;

static m_event m_ev[M_EVENTS];
static int m_nev;

static uint64_t m_live(uint64_t known, int elem) {
  uint64_t dead = 0, live = 0;
  for (int i = 0; i < m_nev; i++)
    if (known >> i & 1)
      dead |= m_ev[i].observed;
  for (int i = 0; i < m_nev; i++)
    if ((known >> i & 1) && m_ev[i].add && m_ev[i].elem == elem &&
        !(dead >> i & 1))
      live |= 1ull << i;
  return live;
}

static void test_set_model(void) {
  const uint64_t seed0 = 0x5e7d0de1ull;
  int mismatches = 0;
  for (uint64_t run = 0; run < 200; run++) {
    uint64_t seed = seed0 + run;
    rng_state = seed * 0x9e3779b97f4a7c15ull + 7;
    crdt *rep[P_ACTORS];
    uint64_t known[P_ACTORS] = {0, 0, 0};
    /* Snapshots: a state and what it knew. */
    crdt *snap[8] = {0};
    uint64_t snap_known[8] = {0};
    m_nev = 0;
    for (int i = 0; i < P_ACTORS; i++)
      rep[i] = crdt_new(CRDT_SET);
    while (m_nev < M_EVENTS) {
      int i = (int)rndn(P_ACTORS);
      uint32_t what = rndn(10);
      if (what < 3) {
        int from = (int)rndn(P_ACTORS);
        crdt_join(rep[i], rep[from]);
        known[i] |= known[from];
        continue;
      }
      if (what == 3) {
        int k = (int)rndn(8);
        crdt_free(snap[k]);
        snap[k] = crdt_clone(rep[i]);
        snap_known[k] = known[i];
        continue;
      }
      int elem = (int)rndn(M_ELEMS);
      char name[2] = {(char)('a' + elem), 0};
      m_event *ev = &m_ev[m_nev];
      ev->elem = elem;
      ev->add = what >= 7;
      ev->observed = m_live(known[i], elem);
      if (ev->add) {
        set_add(rep[i], p_actor[i], name);
      } else {
        int k = (int)rndn(9);
        kvbuf ctx;
        kvbuf_init(&ctx);
        if (k < 8 && snap[k]) {
          crdt_context(snap[k], &ctx);
          ev->observed &= snap_known[k];
        }
        set_rem(rep[i], p_actor[i], name, ctx.len ? &ctx : NULL);
        kvbuf_free(&ctx);
      }
      known[i] |= 1ull << m_nev;
      m_nev++;
      for (int r = 0; r < P_ACTORS; r++)
        for (int e = 0; e < M_ELEMS; e++) {
          char n2[2] = {(char)('a' + e), 0};
          bool model = m_live(known[r], e) != 0;
          if (model != crdt_set_contains(rep[r], S(n2))) {
            if (mismatches++ < 5)
              fprintf(stderr,
                      "set model: replica %d element %s: model %d, set %d "
                      "(seed %" PRIu64 ", event %d)\n",
                      r, n2, model, !model, seed, m_nev);
          }
        }
    }
    for (int k = 0; k < 8; k++)
      crdt_free(snap[k]);
    for (int i = 0; i < P_ACTORS; i++)
      crdt_free(rep[i]);
  }
  CHECK(mismatches == 0);
}

int main(void) {
  test_set_basics();
  test_set_add_wins();
  test_set_remove_context();
  test_counter();
  test_map_fields();
  test_map_remove_add_wins();
  test_registers();
  test_limits();
  test_types();
  test_json();
  test_decode_rejects();
  test_properties();
  test_set_model();
  return check_summary("test_crdt");
}
