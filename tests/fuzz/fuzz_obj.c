/*
 * fuzz_obj.c: libFuzzer target for stored objects and contexts
 * (storage/obj.h): obj_decode reads every object that comes from RocksDB or
 * from a peer (REPL_PUT, REPL_GET_OK); obj_context_check and obj_update read
 * every context a client sends.
 *
 * The input is tried as an encoded object and as a context. Beyond "no
 * crash, no leak" (ASan, UBSan) it checks, for an object that decodes:
 *   - obj_encode -> obj_decode gives an object obj_equal to it, and encoding
 *     that again gives the same bytes (the encoding is canonical);
 *   - obj_clone is obj_equal; obj_sync with itself (or its clone) changes
 *     nothing; obj_descends(o, o);
 *   - obj_sibling returns exactly obj_sibling_count siblings, with
 *     counters >= 1, and KV_EINVAL past the end; obj_all_deleted agrees;
 *   - obj_context of it passes obj_context_check;
 *   - a write with that context (obj_update) replaces every sibling: one
 *     value remains, and the result descends from the original;
 * and for the input as a context: when obj_context_check accepts it,
 * obj_update does not refuse it as malformed.
 * Depends on: kvobj (kvproto).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_err.h"
#include "mp.h"
#include "obj.h"
#include "tests/fuzz/fz.h"


#define FZ_ACTOR 0x66757a7a65720001ull /* an actor no corpus object uses */
#define FZ_NOW_MS 1700000000000ull

/* Limits that never refuse for the properties below. */
static obj_limits lax_limits(void) {
  obj_limits l = obj_limits_default;
  l.siblings_max = UINT32_MAX;
  l.siblings_warn = UINT32_MAX;
  l.entries_max = UINT32_MAX;
  l.prune_age_ms = 0;
  return l;
}

static void check_object(const obj *o) {
  char dbg[256];
  FZ_CHECK(obj_debug(o, dbg, sizeof(dbg)) == dbg);
  FZ_CHECK(memchr(dbg, 0, sizeof(dbg)) != NULL);

  /* Round trip and canonical encoding. */
  kvbuf e1, e2;
  kvbuf_init(&e1);
  kvbuf_init(&e2);
  FZ_CHECK(obj_encode(o, &e1) == 0);
  obj *o2 = NULL;
  int rc = obj_decode(e1.data, e1.len, &o2);
  if (rc != 0) {
    fprintf(stderr, "re-decode of an encoded object failed: %s\n",
            kv_errname(rc));
    abort();
  }
  FZ_CHECK(obj_equal(o, o2) && obj_equal(o2, o));
  FZ_CHECK(obj_encode(o2, &e2) == 0);
  FZ_CHECK(e1.len == e2.len && memcmp(e1.data, e2.data, e1.len) == 0);
  obj_free(o2);
  kvbuf_free(&e2);
  kvbuf_free(&e1);

  /* Siblings. */
  size_t n = obj_sibling_count(o);
  bool all_deleted = n > 0;
  for (size_t i = 0; i < n; i++) {
    obj_value v;
    FZ_CHECK(obj_sibling(o, i, &v) == 0);
    FZ_CHECK(v.len == 0 || v.data != NULL);
    FZ_CHECK(v.counter >= 1);
    if (!(v.flags & OBJ_DELETED))
      all_deleted = false;
  }
  obj_value past;
  FZ_CHECK(obj_sibling(o, n, &past) == KV_EINVAL);
  FZ_CHECK(obj_all_deleted(o) == all_deleted);

  /* Clone, sync with itself, descends. */
  obj *c = obj_clone(o);
  FZ_CHECK(c != NULL);
  FZ_CHECK(obj_equal(o, c));
  bool changed = true;
  FZ_CHECK(obj_sync(c, o, &changed) == 0);
  FZ_CHECK(!changed);
  FZ_CHECK(obj_equal(o, c));
  FZ_CHECK(obj_descends(o, o) && obj_descends(o, c) && obj_descends(c, o));

  /* Context. */
  kvbuf ctx;
  kvbuf_init(&ctx);
  FZ_CHECK(obj_context(o, &ctx) == 0);
  FZ_CHECK(obj_context_check(ctx.data, ctx.len) == 0);

  /* A write that read everything replaces everything. */
  obj_limits lim = lax_limits();
  obj_value nv;
  memset(&nv, 0, sizeof(nv));
  nv.data = (const uint8_t *)"v";
  nv.len = 1;
  nv.ts_ms = FZ_NOW_MS;
  bool warn = false;
  rc = obj_update(c, ctx.data, ctx.len, FZ_ACTOR, &nv, FZ_NOW_MS, &lim, &warn);
  if (rc != 0) {
    fprintf(stderr, "obj_update with the object's own context: %s\n",
            kv_errname(rc));
    abort();
  }
  FZ_CHECK(obj_sibling_count(c) == 1);
  FZ_CHECK(obj_descends(c, o));
  FZ_CHECK(!warn);
  kvbuf_free(&ctx);
  obj_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  obj *o = NULL;
  int rc = obj_decode(data, size, &o);
  FZ_CHECK(rc == 0 || rc == KV_EPROTO || rc == KV_ECORRUPT ||
           rc == KV_EVERSION || rc == KV_ENOMEM);
  /* obj_check judges the bytes as obj_decode does. */
  FZ_CHECK(rc == KV_ENOMEM || obj_check(data, size) == rc);
  if (rc == 0) {
    FZ_CHECK(o != NULL);
    check_object(o);
    obj_free(o);
  }

  /* The input as a client context. */
  int crc = obj_context_check(data, size);
  FZ_CHECK(crc == 0 || crc == KV_EPROTO);
  if (crc == 0) {
    obj *t = obj_new();
    FZ_CHECK(t != NULL);
    obj_limits lim = lax_limits();
    obj_value nv;
    memset(&nv, 0, sizeof(nv));
    nv.data = (const uint8_t *)"w";
    nv.len = 1;
    rc = obj_update(t, data, size, FZ_ACTOR, &nv, FZ_NOW_MS, &lim, NULL);
    FZ_CHECK(rc == 0);
    FZ_CHECK(obj_sibling_count(t) == 1);
    obj_free(t);
  }
  return 0;
}
