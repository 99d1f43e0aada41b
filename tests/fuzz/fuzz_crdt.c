/*
 * fuzz_crdt.c: libFuzzer target for the server-merged data types
 * (storage/crdt.h): crdt_decode reads every stored value of a typed key
 * (from RocksDB or a peer), crdt_op_decode every operation a client sends.
 *
 * Input: a flags byte, a 2-byte little-endian split point, then two parts
 * A and B (the split taken modulo the bytes left). Each part is tried as
 * a state and as an operation. Beyond "no crash, no leak, no undefined
 * behaviour" (ASan, UBSan) it checks:
 *   - a decoded state encodes canonically (encode -> decode -> equal ->
 *     the same bytes), its clone is equal, its readers agree with each
 *     other (members sorted and found by crdt_set_contains, fields found
 *     by crdt_map_find, register counts), its JSON renders NUL-terminated,
 *     its context passes crdt_context_check, and join(s, s) == s;
 *   - two decoded states of one type: join(a, b) == join(b, a), joining b
 *     again changes nothing, and with a third state c (an operation
 *     applied to a) (a + b) + c == a + (b + c); states of two types give
 *     KV_ETYPE and stay as they were;
 *   - a decoded operation applied (as one of a few actors, with lax, default
 *     or tight limits chosen by the flags) to each decoded state and to a
 *     new state of its type: either 0, and then the result round-trips and
 *     joining the old state back changes nothing (applying only grows a
 *     state), or KV_ETYPE exactly when crdt_op_fits says no, or KV_ETOOBIG /
 *     KV_EINVAL with a message, and then the state is unchanged;
 *   - a part that crdt_context_check accepts makes a remove operation that
 *     decodes.
 * Depends on: kvobj (crdt.h), kvproto.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt.h"
#include "kv_err.h"
#include "mp.h"
#include "tests/fuzz/fz.h"

#define FZ_NOW_MS 1700000000000ull
static const uint64_t fz_actors[4] = {0x1111000000000001ull,
                                      0x2222000000000001ull,
                                      0x3333000000000001ull, 0};

static bool same(const crdt *a, const crdt *b) { return crdt_equal(a, b); }

static crdt *joined(const crdt *a, const crdt *b) {
  crdt *j = crdt_clone(a);
  FZ_CHECK(j != NULL);
  FZ_CHECK(crdt_join(j, b) == 0);
  return j;
}

static void check_encoding(const crdt *s) {
  kvbuf e1, e2;
  kvbuf_init(&e1);
  kvbuf_init(&e2);
  FZ_CHECK(crdt_encode(s, &e1) == 0);
  FZ_CHECK(crdt_is_state(e1.data, e1.len));
  crdt *d = NULL;
  int rc = crdt_decode(e1.data, e1.len, &d);
  if (rc != 0) {
    fprintf(stderr, "re-decode failed: %s\n", kv_errname(rc));
    FZ_CHECK(rc == 0);
  }
  FZ_CHECK(crdt_encode(d, &e2) == 0);
  FZ_CHECK(e1.len == e2.len && memcmp(e1.data, e2.data, e1.len) == 0);
  FZ_CHECK(same(s, d));
  crdt_free(d);
  kvbuf_free(&e1);
  kvbuf_free(&e2);
}

static void check_readers(const crdt *s) {
  crdt_type t = crdt_type_of(s);
  kv_slice m, prev = {NULL, 0};
  size_t n = crdt_set_count(s);
  FZ_CHECK(t == CRDT_SET || n == 0);
  for (size_t i = 0; i < n; i++) {
    FZ_CHECK(crdt_set_member(s, i, &m) == 0);
    FZ_CHECK(crdt_set_contains(s, m));
    if (i > 0) {
      size_t k = prev.len < m.len ? prev.len : m.len;
      int c = k ? memcmp(prev.ptr, m.ptr, k) : 0;
      FZ_CHECK(c < 0 || (c == 0 && prev.len < m.len));
    }
    prev = m;
  }
  FZ_CHECK(crdt_set_member(s, n, &m) == KV_EINVAL);
  if (t != CRDT_COUNTER)
    FZ_CHECK(crdt_counter_value(s) == 0);
  size_t nf = crdt_map_count(s);
  FZ_CHECK(t == CRDT_MAP_MV || t == CRDT_MAP_LWW || nf == 0);
  for (size_t i = 0; i < nf; i++) {
    crdt_field f;
    FZ_CHECK(crdt_map_field(s, i, &f) == 0);
    FZ_CHECK(crdt_map_find(s, f.name, f.kind) == (long)i);
    size_t regs = crdt_map_reg_count(s, i);
    size_t elems = crdt_map_set_count(s, i);
    if (f.kind == CRDT_KIND_REGISTER) {
      FZ_CHECK(regs >= 1 && (t == CRDT_MAP_MV || regs == 1));
      for (size_t j = 0; j < regs; j++)
        FZ_CHECK(crdt_map_reg_value(s, i, j, &m, NULL) == 0);
      FZ_CHECK(crdt_map_reg_value(s, i, regs, &m, NULL) == KV_EINVAL);
    } else if (f.kind == CRDT_KIND_SET) {
      FZ_CHECK(elems >= 1 && regs == 0);
      for (size_t j = 0; j < elems; j++)
        FZ_CHECK(crdt_map_set_member(s, i, j, &m) == 0);
    } else {
      FZ_CHECK(f.kind == CRDT_KIND_COUNTER && regs == 0 && elems == 0);
      (void)crdt_map_counter(s, i);
    }
  }
  FZ_CHECK(crdt_map_field(s, nf, &(crdt_field){{NULL, 0}, CRDT_KIND_ANY}) ==
           KV_EINVAL);
}

static void check_state(const crdt *s) {
  check_encoding(s);
  check_readers(s);
  crdt *c = crdt_clone(s);
  FZ_CHECK(c && same(c, s));
  FZ_CHECK(crdt_join(c, s) == 0 && same(c, s));
  crdt_free(c);
  kvbuf b;
  kvbuf_init(&b);
  FZ_CHECK(crdt_render_json(s, &b) == 0);
  FZ_CHECK(b.data && b.data[b.len] == '\0' && strlen((char *)b.data) == b.len);
  kvbuf_free(&b);
  kvbuf_init(&b);
  FZ_CHECK(crdt_context(s, &b) == 0);
  FZ_CHECK(crdt_context_check(b.data, b.len) == 0);
  kvbuf_free(&b);
}

/* Applies op to a clone of s and checks the outcome; returns the result
 * (caller frees) or NULL when the apply failed. */
static crdt *check_apply(const crdt *s, const crdt_op *op, uint8_t flags) {
  crdt_limits lim = crdt_limits_default;
  if ((flags & 3) == 1) {
    lim.set_elems_max = 0;
    lim.map_fields_max = 0;
    lim.elem_bytes_max = 0;
  } else if ((flags & 3) == 2) {
    lim.set_elems_max = 2;
    lim.map_fields_max = 2;
    lim.elem_bytes_max = 3;
    lim.reg_bytes_max = 3;
  }
  uint64_t actor = fz_actors[(flags >> 2) & 3];
  crdt *w = crdt_clone(s);
  FZ_CHECK(w != NULL);
  crdt_result res;
  (void)crdt_op_behind(s, op);
  int rc = crdt_apply(w, op, actor, FZ_NOW_MS, &lim, &res);
  if (!crdt_op_fits(op, crdt_type_of(s))) {
    FZ_CHECK(rc == KV_ETYPE);
  } else if (rc == 0) {
    check_encoding(w);
    crdt *back = joined(w, s);
    FZ_CHECK(same(back, w));
    crdt_free(back);
    FZ_CHECK(res.added >= 0 && res.removed >= 0);
    return w;
  } else {
    FZ_CHECK(rc == KV_ETOOBIG || rc == KV_EINVAL);
    FZ_CHECK(res.msg[0] != '\0' && memchr(res.msg, 0, sizeof(res.msg)));
  }
  FZ_CHECK(same(w, s));
  crdt_free(w);
  return NULL;
}

static void check_pair(const crdt *a, const crdt *b, const crdt *c) {
  if (crdt_type_of(a) != crdt_type_of(b)) {
    crdt *x = crdt_clone(a);
    FZ_CHECK(crdt_join(x, b) == KV_ETYPE && same(x, a));
    crdt_free(x);
    return;
  }
  crdt *ab = joined(a, b), *ba = joined(b, a);
  FZ_CHECK(same(ab, ba));
  crdt *abb = joined(ab, b);
  FZ_CHECK(same(abb, ab));
  check_encoding(ab);
  if (c && crdt_type_of(c) == crdt_type_of(a)) {
    crdt *ab_c = joined(ab, c), *bc = joined(b, c);
    crdt *a_bc = joined(a, bc);
    FZ_CHECK(same(ab_c, a_bc));
    crdt_free(a_bc);
    crdt_free(bc);
    crdt_free(ab_c);
  }
  crdt_free(abb);
  crdt_free(ba);
  crdt_free(ab);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3)
    return 0;
  uint8_t flags = data[0];
  size_t rest = size - 3;
  size_t split = ((size_t)data[1] | (size_t)data[2] << 8) % (rest + 1);
  const uint8_t *part[2] = {data + 3, data + 3 + split};
  size_t len[2] = {split, rest - split};

  crdt *st[2] = {NULL, NULL};
  crdt_op *op[2] = {NULL, NULL};
  for (int i = 0; i < 2; i++) {
    int rc = crdt_decode(part[i], len[i], &st[i]);
    FZ_CHECK((rc == 0) == (st[i] != NULL));
    FZ_CHECK(rc == 0 || rc == KV_EPROTO || rc == KV_ECORRUPT ||
             rc == KV_EVERSION);
    if (rc == 0)
      check_state(st[i]);
    rc = crdt_op_decode(part[i], len[i], &op[i]);
    FZ_CHECK((rc == 0) == (op[i] != NULL));
    FZ_CHECK(rc == 0 || rc == KV_EPROTO || rc == KV_EVERSION);
    if (crdt_context_check(part[i], len[i]) == 0) {
      kvbuf b;
      kvbuf_init(&b);
      kv_slice e = {(const uint8_t *)"x", 1};
      FZ_CHECK(crdt_op_set_rem(&b, &e, 1, part[i], len[i]) == 0);
      crdt_op *o = NULL;
      FZ_CHECK(crdt_op_decode(b.data, b.len, &o) == 0);
      crdt_op_free(o);
      kvbuf_free(&b);
    }
  }

  /* Operations on the decoded states and on a new one. */
  crdt *applied = NULL;
  for (int i = 0; i < 2; i++) {
    if (!op[i])
      continue;
    crdt *fresh = crdt_new(crdt_op_type(op[i]));
    FZ_CHECK(fresh != NULL && crdt_op_fits(op[i], crdt_type_of(fresh)));
    crdt *r = check_apply(fresh, op[i], flags);
    crdt_free(r);
    crdt_free(fresh);
    for (int k = 0; k < 2; k++) {
      if (!st[k])
        continue;
      r = check_apply(st[k], op[i], flags);
      if (r && k == 0 && !applied)
        applied = r;
      else
        crdt_free(r);
    }
  }

  if (st[0] && st[1]) {
    check_pair(st[0], st[1], applied);
    check_pair(st[1], st[0], applied);
  }
  if (st[0] && applied)
    check_pair(applied, st[0], st[1]);

  crdt_free(applied);
  for (int i = 0; i < 2; i++) {
    crdt_free(st[i]);
    crdt_op_free(op[i]);
  }
  return 0;
}
