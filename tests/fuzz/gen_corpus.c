/*
 * gen_corpus.c: writes the seed corpus of the fuzz targets
 * (tests/fuzz/corpus/<target>/) with the real encoders, so the seeds are
 * valid messages that the fuzzer then mutates (fuzz_http's request
 * targets and fuzz_auth's auth files, which have no encoder, are written
 * as text). Deterministic: fixed
 * timestamps, seeds and names, so regenerating gives the same files unless
 * an encoding changed.
 *
 *   gen_corpus OUTDIR      (normally tests/fuzz/corpus)
 *
 * Each part is compiled in only when its library is built (fuzz.cmake sets
 * GEN_WIRE, GEN_KVOBJ, GEN_KVRING, GEN_KVGOSSIP). It writes files only into
 * OUTDIR/fuzz_*; stale files are not removed (delete the directory first to
 * start clean).
 * Depends on: kvproto, and kvobj, kvring, kvgossip when present.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kv_err.h"
#include "mp.h"
#ifdef GEN_WIRE
#include "wire.h"
#endif
#ifdef GEN_KVOBJ
#include "crdt.h"
#include "obj.h"
#endif
#ifdef GEN_KVRING
#include "ring.h"
#endif
#ifdef GEN_KVGOSSIP
#include "gossip.h"
#endif

static const char *outdir;
static int failures;

static void must(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "gen_corpus: %s failed\n", what);
    exit(1);
  }
}

/* Writes OUTDIR/target/name. */
static void put(const char *target, const char *name, const void *p,
                size_t len) {
  char path[1024];
  snprintf(path, sizeof(path), "%s/%s", outdir, target);
  if (mkdir(path, 0777) != 0 && errno != EEXIST) {
    perror(path);
    exit(1);
  }
  snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
  FILE *f = fopen(path, "wb");
  if (!f || (len && fwrite(p, 1, len, f) != len) || fclose(f) != 0) {
    perror(path);
    failures++;
  }
}

static void put_buf(const char *target, const char *name, const kvbuf *b) {
  must(!b->oom, name);
  put(target, name, b->data, b->len);
}

/* ---- fuzz_mp: msgpack objects, canonical and not ---- */

static void gen_mp(void) {
  static const struct {
    const char *name;
    const char *bytes;
    size_t len;
  } raw[] = {
      {"raw-int8-positive", "\xd0\x05", 2},
      {"raw-uint8-small", "\xcc\x01", 2},
      {"raw-uint64-max", "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9},
      {"raw-int64-min", "\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9},
      {"raw-str8-empty", "\xd9\x00", 2},
      {"raw-array16-two", "\xdc\x00\x02\x01\x02", 5},
      {"raw-map32-one", "\xdf\x00\x00\x00\x01\xa1k\xc0", 8},
      {"raw-array32-huge-count", "\xdd\xff\xff\xff\xff\x00", 6},
      {"raw-str32-huge-len", "\xdb\x7f\xff\xff\xff", 5},
      {"raw-ext8", "\xc7\x03\x01" "abc", 6},
      {"raw-ext16", "\xc8\x00\x01\x02z", 5},
      {"raw-fixext16", "\xd8\x05" "0123456789abcdef", 18},
      {"raw-reserved-c1", "\xc1", 1},
      {"raw-truncated-float64", "\xcb\x00\x00", 3},
      {"raw-float32-nan", "\xca\x7f\xc0\x00\x00", 5},
  };
  for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++)
    put("fuzz_mp", raw[i].name, raw[i].bytes, raw[i].len);

  kvbuf b;
  msgpack_packer pk;
#define GEN_MP(name, body)                                                     \
  do {                                                                         \
    kvbuf_init(&b);                                                            \
    mp_packer_init(&pk, &b);                                                   \
    body;                                                                      \
    put_buf("fuzz_mp", name, &b);                                              \
    kvbuf_free(&b);                                                            \
  } while (0)

  GEN_MP("scalars", {
    msgpack_pack_nil(&pk);
    msgpack_pack_true(&pk);
    msgpack_pack_false(&pk);
    msgpack_pack_uint64(&pk, 0);
    msgpack_pack_uint64(&pk, 127);
    msgpack_pack_uint64(&pk, 128);
    msgpack_pack_uint64(&pk, 65536);
    msgpack_pack_uint64(&pk, 1ull << 40);
    msgpack_pack_int64(&pk, -1);
    msgpack_pack_int64(&pk, -33);
    msgpack_pack_int64(&pk, -40000);
    msgpack_pack_int64(&pk, -(1ll << 40));
    msgpack_pack_float(&pk, 1.5f);
    msgpack_pack_double(&pk, -2.25);
  });
  GEN_MP("strings", {
    char s[300];
    memset(s, 'x', sizeof(s));
    mp_pack_str(&pk, s, 0);
    mp_pack_str(&pk, s, 31);
    mp_pack_str(&pk, s, 32);
    mp_pack_str(&pk, s, 255);
    mp_pack_str(&pk, s, 256);
  });
  GEN_MP("binaries", {
    uint8_t s[300];
    for (size_t i = 0; i < sizeof(s); i++)
      s[i] = (uint8_t)i;
    mp_pack_bin(&pk, s, 0);
    mp_pack_bin(&pk, s, 1);
    mp_pack_bin(&pk, s, 255);
    mp_pack_bin(&pk, s, 300);
  });
  GEN_MP("array-mixed", {
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint64(&pk, 6);
    msgpack_pack_uint64(&pk, 99);
    mp_pack_bin(&pk, "key", 3);
    msgpack_pack_nil(&pk);
  });
  GEN_MP("map-opts", {
    msgpack_pack_map(&pk, 3);
    mp_pack_cstr(&pk, "r");
    msgpack_pack_int64(&pk, -2);
    mp_pack_cstr(&pk, "t");
    msgpack_pack_uint64(&pk, 1000);
    mp_pack_cstr(&pk, "rg");
    mp_pack_cstr(&pk, "eu-west");
  });
  GEN_MP("array16-of-ints", {
    msgpack_pack_array(&pk, 20);
    for (int i = 0; i < 20; i++)
      msgpack_pack_int64(&pk, i * 1000 - 10000);
  });
  GEN_MP("map16", {
    msgpack_pack_map(&pk, 17);
    for (int i = 0; i < 17; i++) {
      msgpack_pack_uint64(&pk, (uint64_t)i);
      msgpack_pack_array(&pk, 0);
    }
  });
  GEN_MP("nested-20", {
    for (int i = 0; i < 20; i++)
      msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 0);
  });
  GEN_MP("nested-33", {
    for (int i = 0; i < 33; i++)
      msgpack_pack_array(&pk, 1);
    msgpack_pack_nil(&pk);
  });
  GEN_MP("exts", {
    msgpack_pack_ext(&pk, 1, 1);
    msgpack_pack_ext_body(&pk, "a", 1);
    msgpack_pack_ext(&pk, 4, -1);
    msgpack_pack_ext_body(&pk, "abcd", 4);
    msgpack_pack_ext(&pk, 5, 2);
    msgpack_pack_ext_body(&pk, "abcde", 5);
  });
#undef GEN_MP
}

/* ---- fuzz_http: HTTP request targets (path and query) ---- */

static void gen_http(void) {
  static const struct {
    const char *name;
    const char *target;
  } seeds[] = {
      {"metrics", "/metrics"},
      {"health", "/health"},
      {"ready", "/ready"},
      {"admin-status", "/admin/status"},
      {"admin-ring", "/admin/ring"},
      {"admin-stats", "/admin/stats"},
      {"admin-transfers", "/admin/transfers?timeout=5"},
      {"admin-unknown", "/admin/join?node=n3"},
      {"unknown-path", "/metricsx"},
      {"kv-no-key", "/kv/"},
      {"kv-plain", "/kv/cart:42"},
      {"kv-escaped", "/kv/cart%3Aalice%2Fitems"},
      {"kv-nul-plus", "/kv/a%00b+c%2B"},
      {"kv-bad-escape", "/kv/%zz"},
      {"kv-cut-escape", "/kv/abc%4"},
      {"kv-get-opts", "/kv/k?r=quorum&pr=1&timeout=1500"},
      {"kv-put-opts", "/kv/k?w=2&dw=one&pw=LOCAL_QUORUM&timeout=250"},
      {"kv-level-names", "/kv/k?r=each_quorum&w=all&dw=local_one&pw=default"},
      {"kv-escaped-query", "/kv/k?%72=%71uorum&timeout=%31%30"},
      {"kv-empty-params", "/kv/k?&&r=1&"},
      {"kv-unknown-param", "/kv/k?foo=1"},
      {"kv-timeout-zero", "/kv/k?timeout=0"},
      {"kv-timeout-over", "/kv/k?timeout=4294967296"},
      {"kv-nul-param", "/kv/k?r=%00"},
      {"kv-long-name", "/kv/k?averyveryverylongname=1"},
  };
  for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
    put("fuzz_http", seeds[i].name, seeds[i].target,
        strlen(seeds[i].target));
  /* Raw NUL bytes, in the key and in the query. */
  static const char raw_nul[] = "/kv/a\0b?r=1\0";
  put("fuzz_http", "kv-raw-nul", raw_nul, sizeof(raw_nul) - 1);
}

/* ---- fuzz_auth: auth files (node/auth.h) ---- */

static void gen_auth(void) {
/* Well-formed hash fields with fixed salts and keys (parsing checks their
 * form, not the password) and the lowest cost, 1000 iterations. */
#define GEN_H1 "pbkdf2-sha256$1000$c2FsdHNhbHRzYWx0c2FsdA==$" \
               "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U="
#define GEN_H2 "pbkdf2-sha256$1000$AAECAwQFBgcICQoLDA0ODw$" \
               "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8"
  static const struct {
    const char *name;
    const char *text;
  } seeds[] = {
      {"good", "# kvorum users\n\nalice read " GEN_H1 "\nbob write " GEN_H2
               "\nops@example.org admin " GEN_H1 "\n"},
      {"spacing", "  # indented\n\tcarol\t write  " GEN_H2 " \t\n\n"},
      {"crlf", "alice read " GEN_H1 "\r\nbob admin " GEN_H2 "\r\n"},
      {"no-final-newline", "# x\nd.e_f-1 read " GEN_H2},
      {"empty", ""},
      {"comments-only", "# nobody yet\n#\n\n"},
      {"duplicate", "alice read " GEN_H1 "\nalice admin " GEN_H2 "\n"},
      {"bad-role", "alice root " GEN_H1 "\n"},
      {"swapped", "alice " GEN_H1 " read\n"},
      {"plain-password", "alice read hunter2\n"},
      {"scrypt", "alice read scrypt$16384$8$1$c2FsdA==$a2V5\n"},
      {"iterations-low", "alice read pbkdf2-sha256$999$AAECAwQFBgcICQoLDA0ODw$"
                         "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8\n"},
      {"iterations-zero-lead",
       "alice read pbkdf2-sha256$01000$AAECAwQFBgcICQoLDA0ODw$"
       "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8\n"},
      {"salt-short", "alice read pbkdf2-sha256$1000$AAECAw$"
                     "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8\n"},
      {"key-bad", "alice read pbkdf2-sha256$1000$AAECAwQFBgcICQoLDA0ODw$*\n"},
      {"five-parts", "alice read " GEN_H1 "$x\n"},
      {"four-fields", "alice read " GEN_H1 " # comment\n"},
      {"bad-user", "al/ice read " GEN_H1 "\n"},
  };
  for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
    put("fuzz_auth", seeds[i].name, seeds[i].text, strlen(seeds[i].text));
  static const char nul[] = "alice read " GEN_H1 "\nbo\0b read " GEN_H2 "\n";
  put("fuzz_auth", "nul-byte", nul, sizeof(nul) - 1);
#undef GEN_H1
#undef GEN_H2
}

/* ---- fuzz_obj: stored objects and contexts ---- */

#ifdef GEN_KVOBJ
#define A1 0x1111000000000001ull
#define A2 0x2222000000000001ull
#define A3 0x3333000000000002ull
#define T0 1700000000000ull

static void obj_put(obj *o, const kvbuf *ctx, uint64_t actor, const char *val,
                    uint32_t flags, uint64_t ts) {
  obj_value v;
  memset(&v, 0, sizeof(v));
  v.data = (const uint8_t *)val;
  v.len = strlen(val);
  v.flags = flags;
  v.ts_ms = ts;
  must(obj_update(o, ctx ? ctx->data : NULL, ctx ? ctx->len : 0, actor, &v,
                  ts, &obj_limits_default, NULL) == 0,
       "obj_update");
}

static void obj_save(const char *name, const obj *o, kvbuf *enc_out) {
  kvbuf b;
  kvbuf_init(&b);
  must(obj_encode(o, &b) == 0, "obj_encode");
  put_buf("fuzz_obj", name, &b);
  if (enc_out)
    must(kvbuf_append(enc_out, b.data, b.len) == 0, "append");
  kvbuf_free(&b);
  char cname[128];
  snprintf(cname, sizeof(cname), "ctx-%s", name);
  kvbuf_init(&b);
  must(obj_context(o, &b) == 0, "obj_context");
  put_buf("fuzz_obj", cname, &b);
  kvbuf_free(&b);
}

/* Returns the context of o in a fresh kvbuf (caller frees). */
static kvbuf ctx_of(const obj *o) {
  kvbuf b;
  kvbuf_init(&b);
  must(obj_context(o, &b) == 0, "obj_context");
  return b;
}

/* The encoded "siblings" object is kept for the wire corpus. */
static kvbuf obj_for_wire;

static void gen_obj(void) {
  obj *o = obj_new();
  must(o != NULL, "obj_new");
  obj_save("empty", o, NULL);

  obj_put(o, NULL, A1, "hello", 0, T0);
  obj_save("one-value", o, NULL);

  obj *s = obj_clone(o);
  obj_put(s, NULL, A2, "concurrent", 0, T0 + 1);
  obj_save("two-siblings-no-context", s, NULL);

  kvbuf c = ctx_of(s);
  obj *w = obj_clone(s);
  obj_put(w, &c, A1, "resolved", 0, T0 + 2);
  obj_save("overwrite-with-context", w, NULL);
  kvbuf_free(&c);

  c = ctx_of(w);
  obj *d = obj_clone(w);
  obj_put(d, &c, A3, "", 1u /* OBJ_DELETED */, T0 + 3);
  obj_save("tombstone", d, NULL);
  kvbuf_free(&c);

  /* Divergent replicas synced. */
  obj *r1 = obj_clone(o), *r2 = obj_clone(o);
  kvbuf c1 = ctx_of(o);
  obj_put(r1, &c1, A1, "from-a1", 0, T0 + 4);
  obj_put(r2, &c1, A2, "from-a2", 0, T0 + 5);
  obj_put(r2, NULL, A3, "blind-a3", 0, T0 + 6);
  must(obj_sync(r1, r2, NULL) == 0, "obj_sync");
  obj_save("synced-three-actors", r1, &obj_for_wire);
  kvbuf_free(&c1);

  /* Many siblings from blind writes. */
  obj *m = obj_new();
  char val[32];
  for (int i = 0; i < 12; i++) {
    snprintf(val, sizeof(val), "sib-%d", i);
    obj_put(m, NULL, (i % 3 == 0) ? A1 : (i % 3 == 1) ? A2 : A3, val, 0,
            T0 + 10 + (uint64_t)i);
  }
  obj_save("twelve-siblings", m, NULL);

  /* A long value. */
  obj *big = obj_new();
  char *lv = malloc(3000);
  must(lv != NULL, "malloc");
  memset(lv, 'v', 2999);
  lv[2999] = '\0';
  obj_put(big, NULL, A2, lv, 0, T0 + 50);
  free(lv);
  obj_save("long-value", big, NULL);

  obj_free(big);
  obj_free(m);
  obj_free(r2);
  obj_free(r1);
  obj_free(d);
  obj_free(w);
  obj_free(s);
  obj_free(o);
}
#endif

/* ---- fuzz_crdt: pairs of states and operations ---- */

#ifdef GEN_KVOBJ
/* A fuzz_crdt input: flags, a 2-byte little-endian split, A, B. */
static void crdt_put(const char *name, uint8_t flags, const kvbuf *a,
                     const kvbuf *b) {
  kvbuf in;
  kvbuf_init(&in);
  uint8_t head[3] = {flags, (uint8_t)(a->len & 0xff), (uint8_t)(a->len >> 8)};
  must(kvbuf_append(&in, head, 3) == 0 &&
           kvbuf_append(&in, a->data, a->len) == 0 &&
           kvbuf_append(&in, b->data, b->len) == 0,
       name);
  put_buf("fuzz_crdt", name, &in);
  kvbuf_free(&in);
}

/* Applies the operation in op to c and empties op. */
static void crdt_apply_buf(crdt *c, kvbuf *op, uint64_t actor) {
  crdt_op *o = NULL;
  must(crdt_op_decode(op->data, op->len, &o) == 0, "crdt_op_decode");
  must(crdt_apply(c, o, actor, T0, NULL, NULL) == 0, "crdt_apply");
  crdt_op_free(o);
  kvbuf_free(op);
  kvbuf_init(op);
}

static kvbuf crdt_enc(const crdt *c) {
  kvbuf b;
  kvbuf_init(&b);
  must(crdt_encode(c, &b) == 0, "crdt_encode");
  return b;
}

static void gen_crdt(void) {
  kv_slice el[3] = {{(const uint8_t *)"milk", 4},
                    {(const uint8_t *)"eggs", 4},
                    {(const uint8_t *)"\xff\x00", 2}};
  kv_slice f1 = {(const uint8_t *)"owner", 5}, f2 = {(const uint8_t *)"n", 1},
           f3 = {(const uint8_t *)"items", 5};
  kv_slice v1 = {(const uint8_t *)"alice", 5}, v2 = {(const uint8_t *)"bob", 3};
  kvbuf none, op_add, op_rem, op_incr, op_map, op_lww;
  kvbuf_init(&none);
  kvbuf_init(&op_add);
  kvbuf_init(&op_rem);
  kvbuf_init(&op_incr);
  kvbuf_init(&op_map);
  kvbuf_init(&op_lww);

  /* A set at two replicas: concurrent adds, and a remove of what one saw. */
  crdt *s1 = crdt_new(CRDT_SET), *s2;
  must(crdt_op_set_add(&op_add, el, 3) == 0, "set add");
  crdt_apply_buf(s1, &op_add, A1);
  s2 = crdt_clone(s1);
  kvbuf ctx;
  kvbuf_init(&ctx);
  must(crdt_context(s1, &ctx) == 0, "crdt_context");
  must(crdt_op_set_add(&op_add, el, 1) == 0, "set add");
  crdt_apply_buf(s1, &op_add, A1);
  must(crdt_op_set_rem(&op_rem, el, 2, ctx.data, ctx.len) == 0, "set rem");
  crdt_apply_buf(s2, &op_rem, A2);
  must(crdt_op_set_add(&op_add, el + 1, 1) == 0, "set add");
  crdt_apply_buf(s2, &op_add, A3);

  /* A counter. */
  crdt *n1 = crdt_new(CRDT_COUNTER), *n2;
  must(crdt_op_counter_incr(&op_incr, 40) == 0, "incr");
  crdt_apply_buf(n1, &op_incr, A1);
  n2 = crdt_clone(n1);
  must(crdt_op_counter_incr(&op_incr, -2) == 0, "incr");
  crdt_apply_buf(n2, &op_incr, A2);

  /* Maps: every kind of field, concurrent registers, a removal. */
  crdt *m1 = crdt_new(CRDT_MAP_MV), *m2;
  crdt_mapb mb;
  crdt_mapb_init(&mb, CRDT_NONE);
  must(crdt_mapb_assign(&mb, f1, v1, 0) == 0 && crdt_mapb_incr(&mb, f2, 5) == 0 &&
           crdt_mapb_set_add(&mb, f3, el, 2) == 0 &&
           crdt_mapb_finish(&mb, NULL, 0, &op_map) == 0,
       "map op");
  crdt_apply_buf(m1, &op_map, A1);
  m2 = crdt_clone(m1);
  kvbuf mctx;
  kvbuf_init(&mctx);
  must(crdt_context(m1, &mctx) == 0, "crdt_context");
  crdt_mapb_init(&mb, CRDT_MAP_MV);
  must(crdt_mapb_assign(&mb, f1, v2, 0) == 0 &&
           crdt_mapb_set_rem(&mb, f3, el, 1) == 0 &&
           crdt_mapb_remove(&mb, f2, CRDT_KIND_ANY) == 0 &&
           crdt_mapb_finish(&mb, mctx.data, mctx.len, &op_map) == 0,
       "map op");
  crdt_apply_buf(m2, &op_map, A2);
  crdt_mapb_init(&mb, CRDT_NONE);
  must(crdt_mapb_assign(&mb, f1, v1, 0) == 0 &&
           crdt_mapb_incr(&mb, f2, -7) == 0 &&
           crdt_mapb_finish(&mb, NULL, 0, &op_map) == 0,
       "map op");
  crdt_apply_buf(m1, &op_map, A3);

  crdt *l1 = crdt_new(CRDT_MAP_LWW), *l2;
  crdt_mapb_init(&mb, CRDT_MAP_LWW);
  must(crdt_mapb_assign(&mb, f1, v1, T0 + 5) == 0 &&
           crdt_mapb_set_add(&mb, f3, el + 1, 2) == 0 &&
           crdt_mapb_finish(&mb, NULL, 0, &op_lww) == 0,
       "lww op");
  crdt_apply_buf(l1, &op_lww, A1);
  l2 = crdt_clone(l1);
  crdt_mapb_init(&mb, CRDT_MAP_LWW);
  must(crdt_mapb_assign(&mb, f1, v2, T0 + 9) == 0 &&
           crdt_mapb_finish(&mb, NULL, 0, &op_lww) == 0,
       "lww op");
  crdt_apply_buf(l2, &op_lww, A2);
  crdt_mapb_init(&mb, CRDT_MAP_LWW);
  must(crdt_mapb_assign(&mb, f1, v1, T0 + 7) == 0 &&
           crdt_mapb_finish(&mb, NULL, 0, &op_lww) == 0,
       "lww op");
  crdt_apply_buf(l1, &op_lww, A3);

  /* Operations for the pairs (applying emptied the ones above). */
  kvbuf o_add, o_rem, o_incr, o_map, o_lww;
  kvbuf_init(&o_add);
  kvbuf_init(&o_rem);
  kvbuf_init(&o_incr);
  kvbuf_init(&o_map);
  kvbuf_init(&o_lww);
  must(crdt_op_set_add(&o_add, el, 3) == 0, "set add");
  must(crdt_op_set_rem(&o_rem, el, 2, ctx.data, ctx.len) == 0, "set rem");
  must(crdt_op_counter_incr(&o_incr, -9) == 0, "incr");
  crdt_mapb_init(&mb, CRDT_NONE);
  must(crdt_mapb_assign(&mb, f1, v2, 0) == 0 && crdt_mapb_incr(&mb, f2, 3) == 0 &&
           crdt_mapb_set_add(&mb, f3, el, 3) == 0 &&
           crdt_mapb_set_rem(&mb, f3, el + 1, 1) == 0 &&
           crdt_mapb_remove(&mb, f1, CRDT_KIND_REGISTER) == 0 &&
           crdt_mapb_finish(&mb, mctx.data, mctx.len, &o_map) == 0,
       "map op");
  crdt_mapb_init(&mb, CRDT_MAP_LWW);
  must(crdt_mapb_assign(&mb, f1, v2, T0 + 8) == 0 &&
           crdt_mapb_finish(&mb, NULL, 0, &o_lww) == 0,
       "lww op");

  static const struct {
    const char *name;
    int kind; /* 0 set, 1 counter, 2 map_mv, 3 map_lww */
  } families[] = {{"set", 0}, {"counter", 1}, {"map-mv", 2}, {"map-lww", 3}};
  crdt *a[4] = {s1, n1, m1, l1}, *b[4] = {s2, n2, m2, l2};
  kvbuf *ops[4][2] = {{&o_add, &o_rem}, {&o_incr, &o_incr}, {&o_map, &o_map},
                      {&o_lww, &o_map}};
  char name[96];
  for (int i = 0; i < 4; i++) {
    const char *fam = families[i].name;
    kvbuf ea = crdt_enc(a[i]), eb = crdt_enc(b[i]);
    crdt *empty = crdt_new(crdt_type_of(a[i]));
    kvbuf ee = crdt_enc(empty);
    crdt_free(empty);
    snprintf(name, sizeof(name), "%s-state", fam);
    crdt_put(name, 0, &ea, &none);
    snprintf(name, sizeof(name), "%s-empty", fam);
    crdt_put(name, 0, &ee, &none);
    snprintf(name, sizeof(name), "%s-concurrent-pair", fam);
    crdt_put(name, 0, &ea, &eb);
    snprintf(name, sizeof(name), "%s-state-op", fam);
    crdt_put(name, 4, &ea, ops[i][0]);
    snprintf(name, sizeof(name), "%s-op-state-tight", fam);
    crdt_put(name, 2 | 8, ops[i][1], &eb);
    snprintf(name, sizeof(name), "%s-op-only", fam);
    crdt_put(name, 1, ops[i][0], &none);
    kvbuf_free(&ea);
    kvbuf_free(&eb);
    kvbuf_free(&ee);
  }
  /* Types that do not match, and a context beside a state. */
  kvbuf es = crdt_enc(s1), en = crdt_enc(n1);
  crdt_put("mismatch-set-counter", 0, &es, &en);
  crdt_put("mismatch-incr-on-set", 0, &o_incr, &es);
  crdt_put("context-and-set", 0, &ctx, &es);
  kvbuf_free(&es);
  kvbuf_free(&en);

  kvbuf *bufs[] = {&none, &op_add, &op_rem, &op_incr, &op_map, &op_lww,
                   &ctx,  &mctx,   &o_add,  &o_rem,   &o_incr, &o_map,
                   &o_lww};
  for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
    kvbuf_free(bufs[i]);
  for (int i = 0; i < 4; i++) {
    crdt_free(a[i]);
    crdt_free(b[i]);
  }
}
#endif

/* ---- fuzz_ring ---- */

#ifdef GEN_KVRING
static void ring_save(const char *name, const ring *r) {
  kvbuf b;
  kvbuf_init(&b);
  must(ring_encode(r, &b) == 0, "ring_encode");
  put_buf("fuzz_ring", name, &b);
  kvbuf_free(&b);
}

static ring *ring_with(uint32_t q, int nodes, int regions, int zones) {
  ring *r = ring_new(q);
  must(r != NULL, "ring_new");
  char id[32], region[32], zone[32];
  for (int i = 0; i < nodes; i++) {
    snprintf(id, sizeof(id), "node-%d", i);
    snprintf(region, sizeof(region), "region-%d", regions ? i % regions : 0);
    zone[0] = '\0';
    if (zones)
      snprintf(zone, sizeof(zone), "zone-%d", i % zones);
    must(ring_add_node(r, id, region, zone) >= 0, "ring_add_node");
  }
  ring_claim(r);
  ring_set_version(r, (uint64_t)nodes + 1);
  return r;
}

static void gen_ring(void) {
  ring *r = ring_new(1);
  must(r != NULL, "ring_new");
  ring_save("q1-empty", r);
  ring_free(r);

  r = ring_new(RING_Q_DEFAULT);
  ring_save("q64-empty", r);
  ring_free(r);

  r = ring_with(8, 1, 0, 0);
  ring_save("q8-one-node", r);
  ring_free(r);

  r = ring_with(64, 3, 0, 0);
  ring_save("q64-three-nodes", r);

  ring *l = ring_clone(r);
  must(ring_remove_node(l, "node-1") == 0, "ring_remove_node");
  ring_set_version(l, 10);
  ring_save("q64-node-removed-unclaimed", l);
  ring_claim(l);
  ring_set_version(l, 11);
  ring_save("q64-node-removed-claimed", l);
  ring_free(l);
  ring_free(r);

  r = ring_with(32, 5, 1, 3);
  ring_set_n(r, 2);
  ring_save("q32-five-nodes-zones-n2", r);
  ring_free(r);

  r = ring_with(64, 6, 2, 2);
  must(ring_set_region_replicas(r, "region-0", 2) == 0, "region replicas");
  must(ring_set_region_replicas(r, "region-1", 1) == 0, "region replicas");
  ring_save("q64-two-regions", r);
  ring_free(r);

  r = ring_with(256, 9, 3, 0);
  ring_save("q256-nine-nodes", r);
  ring_free(r);

  r = ring_with(16, 2, 0, 0);
  must(ring_add_node(r, "late-joiner", "region-0", "") >= 0, "add");
  ring_save("q16-unclaimed-joiner", r);
  ring_free(r);
}
#endif

/* ---- fuzz_gossip: payloads of a small simulated cluster ---- */

#ifdef GEN_KVGOSSIP
#define G_NODES 3
#define G_QUEUE 64
#define G_KEEP 24

typedef struct g_msg {
  char to[GOSSIP_ADDR_MAX];
  uint8_t *p;
  size_t len;
} g_msg;

static g_msg g_queue[G_QUEUE];
static size_t g_nqueue;
static int g_kept;
static kvbuf gossip_for_wire;

static void g_send(void *ctx, const char *peer_addr, const uint8_t *payload,
                   size_t len) {
  (void)ctx;
  if (g_nqueue == G_QUEUE)
    return;
  g_msg *m = &g_queue[g_nqueue++];
  snprintf(m->to, sizeof(m->to), "%s", peer_addr);
  m->p = malloc(len ? len : 1);
  must(m->p != NULL, "malloc");
  memcpy(m->p, payload, len);
  m->len = len;
  if (g_kept < G_KEEP) {
    char name[64];
    snprintf(name, sizeof(name), "payload-%02d", g_kept++);
    put("fuzz_gossip", name, payload, len);
  }
  if (gossip_for_wire.len == 0)
    must(kvbuf_append(&gossip_for_wire, payload, len) == 0, "append");
}

static void gen_gossip(void) {
  static const char *peers[G_NODES] = {"127.0.0.1:7101", "127.0.0.1:7102",
                                       "127.0.0.1:7103"};
  static const char *clients[G_NODES] = {"127.0.0.1:7001", "127.0.0.1:7002",
                                         "127.0.0.1:7003"};
  static const char *ids[G_NODES] = {"n1", "n2", "n3"};
  static const char *regions[G_NODES] = {"eu", "eu", "us"};
  static const char *const seeds[1] = {"127.0.0.1:7101"};
  gossip_io io;
  memset(&io, 0, sizeof(io));
  io.send = g_send;
  gossip *g[G_NODES];
  uint64_t now = 1000000;
  for (int i = 0; i < G_NODES; i++) {
    gossip_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.id = ids[i];
    cfg.region = regions[i];
    cfg.zone = i == 1 ? "z2" : "";
    cfg.client_addr = clients[i];
    cfg.peer_addr = peers[i];
    cfg.incarnation = 1 + (uint64_t)i;
    cfg.seeds = seeds;
    cfg.nseeds = 1;
    cfg.q = 16;
    cfg.n = 3;
    cfg.interval_ms = 1000;
    cfg.fanout = 2;
    cfg.phi_threshold = 8.0;
    cfg.rng_seed = 100 + (uint64_t)i;
    g[i] = gossip_new(&cfg, &io, NULL, now);
    must(g[i] != NULL, "gossip_new");
  }
  for (int i = 1; i < G_NODES; i++)
    gossip_join(g[i], peers[0], now);
  for (int step = 0; step < 40 && g_kept < G_KEEP; step++) {
    now += 250;
    if (step == 20)
      gossip_leave(g[0], "n3", now);
    for (int i = 0; i < G_NODES; i++)
      gossip_tick(g[i], now);
    /* Deliver what was sent (sends during delivery wait a turn). */
    size_t n = g_nqueue;
    g_msg batch[G_QUEUE];
    memcpy(batch, g_queue, n * sizeof(g_msg));
    g_nqueue = 0;
    for (size_t k = 0; k < n; k++) {
      for (int i = 0; i < G_NODES; i++)
        if (strcmp(batch[k].to, peers[i]) == 0)
          gossip_receive(g[i], batch[k].p, batch[k].len, now);
      free(batch[k].p);
    }
  }
  for (size_t k = 0; k < g_nqueue; k++)
    free(g_queue[k].p);
  g_nqueue = 0;
  for (int i = 0; i < G_NODES; i++)
    gossip_free(g[i]);
}
#endif

/* ---- fuzz_wire: one or more frames of every message type and PEER_MSG
 * kind ---- */

#ifdef GEN_WIRE
/* A fuzz_wire seed (whole frames) is also two fuzz_node seeds: the same
 * bytes behind selector 0 (from the client) and 1 (from a peer). */
static void node_seeds(const char *name, const kvbuf *b) {
  for (uint8_t sel = 0; sel < 2; sel++) {
    kvbuf n;
    kvbuf_init(&n);
    char nm[128];
    snprintf(nm, sizeof(nm), "%s-%s", sel ? "peer" : "client", name);
    must(kvbuf_append(&n, &sel, 1) == 0 &&
             kvbuf_append(&n, b->data, b->len) == 0,
         nm);
    put_buf("fuzz_node", nm, &n);
    kvbuf_free(&n);
  }
}

static void wire_put(const char *name, const kvbuf *b) {
  put_buf("fuzz_wire", name, b);
  node_seeds(name, b);
}

static void wire_save(const char *name, const wire_msg *m) {
  kvbuf b;
  kvbuf_init(&b);
  must(wire_encode(&b, m) == 0, name);
  wire_put(name, &b);
  kvbuf_free(&b);
}

static kv_slice sl(const void *p, size_t len) {
  kv_slice s;
  s.ptr = p;
  s.len = len;
  return s;
}
static kv_slice cs(const char *s) { return sl(s, strlen(s)); }

/* Writes one PEER_MSG payload twice: as a PEER_MSG frame (fuzz_wire and,
 * behind selectors, fuzz_node: pm-<kind>) and bare (fuzz_wire only, which
 * also feeds its whole input to every payload decoder: pm-raw-<kind>). */
static void pm_save(const wire_pm *m, uint64_t req_id, const char *suffix) {
  char name[64];
  const char *kind = wire_pm_name(m->kind);
  int n = snprintf(name, sizeof(name), "pm-%s%s", kind, suffix);
  for (int i = 0; i < n; i++)
    if (name[i] == '_')
      name[i] = '-';
  kvbuf b;
  kvbuf_init(&b);
  must(wire_encode_pm(&b, req_id, m) == 0, name);
  wire_put(name, &b);
  kvbuf_free(&b);
  kvbuf_init(&b);
  must(wire_pm_encode(&b, m) == 0, name);
  char raw[80];
  snprintf(raw, sizeof(raw), "pm-raw-%s", name + 3);
  put_buf("fuzz_wire", raw, &b);
  kvbuf_free(&b);
}

/* PEER_MSG frames of every kind (WIRE_PM_MAP), with small, valid
 * payloads: partition 1 and stored objects where the layout has them. */
static void gen_peer_msgs(void) {
#ifdef GEN_KVOBJ
  kv_slice object = sl(obj_for_wire.data, obj_for_wire.len);
#else
  kv_slice object = cs("\x92\x01\x90");
#endif
  static wire_pm m; /* a wire_pm holds a whole tree of leaves */
  wire_pm_items a, b;
  wire_pm_items_init(&a);
  wire_pm_items_init(&b);

  memset(&m, 0, sizeof(m));
  m.kind = WIRE_PM_HINT_PUT;
  m.hint_put.owner = cs("n2");
  m.hint_put.key = cs("cart:42");
  m.hint_put.object = object;
  m.hint_put.durable = true;
  pm_save(&m, 50, "");

  memset(&m, 0, sizeof(m));
  m.kind = WIRE_PM_AAE_BRANCHES;
  m.aae_branches.part = 1;
  for (uint32_t i = 0; i < WIRE_AAE_BRANCHES; i++)
    m.aae_branches.branch[i] = i % 3 ? 0 : 0x9e3779b97f4a7c15ull * (i + 1);
  pm_save(&m, 51, "");

  memset(&m, 0, sizeof(m));
  m.kind = WIRE_PM_AAE_LEAVES;
  m.aae_leaves.part = 1;
  m.aae_leaves.branches = 0x80000003u;
  for (uint32_t i = 0; i < WIRE_AAE_SEGMENTS; i++)
    if ((m.aae_leaves.branches >> (i / WIRE_AAE_LEAVES_PER_BRANCH)) & 1u)
      m.aae_leaves.leaf[i] = i % 5 ? 0 : 0xc2b2ae3d27d4eb4full * (i + 1);
  pm_save(&m, 51, "");

  memset(&m, 0, sizeof(m));
  m.kind = WIRE_PM_AAE_KEYS;
  m.aae_keys.part = 1;
  m.aae_keys.segs[0] = 0x5;
  m.aae_keys.segs[15] = 1ull << 63;
  must(wire_pm_items_add_key_hash(&a, "a", 1, 1) == 0 &&
           wire_pm_items_add_key_hash(&a, "cart:42", 7, 0xffffffffffull) ==
               0,
       "aae keys");
  m.aae_keys.keys = wire_pm_items_list(&a);
  pm_save(&m, 52, "");
  wire_pm_items_reset(&a);

  memset(&m, 0, sizeof(m));
  m.kind = WIRE_PM_AAE_OBJS;
  m.aae_objs.part = 1;
  must(wire_pm_items_add_key_object(&a, "cart:42", 7, object.ptr,
                                    object.len) == 0 &&
           wire_pm_items_add_key(&b, "a", 1) == 0,
       "aae objs");
  m.aae_objs.objs = wire_pm_items_list(&a);
  m.aae_objs.want = wire_pm_items_list(&b);
  pm_save(&m, 52, "");
  wire_pm_items_reset(&a);
  wire_pm_items_reset(&b);

  memset(&m, 0, sizeof(m));
  m.kind = WIRE_PM_HANDOFF;
  m.handoff.part = 1;
  must(wire_pm_items_add_key_object(&a, "a", 1, object.ptr, object.len) ==
               0 &&
           wire_pm_items_add_key_object(&a, "b", 1, object.ptr,
                                        object.len) == 0,
       "handoff");
  m.handoff.objs = wire_pm_items_list(&a);
  m.handoff.last = true;
  pm_save(&m, 53, "");
  wire_pm_items_reset(&a);
  m.handoff.objs = wire_pm_items_list(&a);
  m.handoff.last = false;
  pm_save(&m, 54, "-empty");

  memset(&m, 0, sizeof(m));
  m.kind = WIRE_PM_HANDOFF_ACK;
  m.handoff_ack.part = 1;
  m.handoff_ack.count = 2;
  pm_save(&m, 53, "");

  memset(&m, 0, sizeof(m));
  m.kind = WIRE_PM_REAP;
  m.reap.part = 1;
  m.reap.key = cs("cart:42");
  m.reap.object = object;
  pm_save(&m, 0, "");

  wire_pm_items_free(&a);
  wire_pm_items_free(&b);
}

static void gen_wire(void) {
  wire_msg m;
  wire_opts full;
  memset(&full, 0, sizeof(full));
  full.r = WIRE_Q_QUORUM;
  full.w = 2;
  full.dw = WIRE_Q_ONE;
  full.pr = 1;
  full.pw = WIRE_Q_LOCAL_QUORUM;
  full.timeout_ms = 1500;
  full.flags = WIRE_OPT_SLOPPY;
  full.region = cs("eu-west");
  static const uint8_t ctx[] = {0x91, 0x92, 0xcf, 1, 2, 3, 4, 5, 6, 7, 8, 3};

#define W(name, ...)                                                           \
  do {                                                                         \
    memset(&m, 0, sizeof(m));                                                  \
    __VA_ARGS__;                                                               \
    wire_save(name, &m);                                                       \
  } while (0)

  W("hello", m.type = WIRE_HELLO; m.req_id = 1;
    m.version = WIRE_PROTOCOL_VERSION; m.text = cs("kvorum-cli/0.1"));
  W("hello-ok", m.type = WIRE_HELLO_OK; m.req_id = 1;
    m.version = WIRE_PROTOCOL_VERSION; m.text = cs("n1"); m.partitions = 64;
    m.region = cs("eu"));
  W("error", m.type = WIRE_ERROR; m.req_id = 7; m.code = KV_EQUORUM;
    m.text = cs("only 1 of 2 required replicas answered within 1000 ms"));
  W("get-default-opts", m.type = WIRE_GET; m.req_id = 2; m.key = cs("cart"));
  W("get-full-opts", m.type = WIRE_GET; m.req_id = 3; m.key = cs("cart:42");
    m.opts = full);
  W("put-no-context", m.type = WIRE_PUT; m.req_id = 4; m.key = cs("k");
    m.value = cs("value"));
  W("put-context", m.type = WIRE_PUT; m.req_id = 5; m.key = cs("k");
    m.value = cs("v2"); m.context = sl(ctx, sizeof(ctx)); m.opts = full);
  W("put-empty-value", m.type = WIRE_PUT; m.req_id = 6; m.key = cs("");
    m.value = sl("", 0));
  W("put-ok", m.type = WIRE_PUT_OK; m.req_id = 5;
    m.context = sl(ctx, sizeof(ctx)));
  W("del", m.type = WIRE_DEL; m.req_id = 8; m.key = cs("k");
    m.context = sl(ctx, sizeof(ctx)));
  W("del-no-context", m.type = WIRE_DEL; m.req_id = 9; m.key = cs("k");
    m.opts = full);
  W("del-ok", m.type = WIRE_DEL_OK; m.req_id = 8;
    m.context = sl(ctx, sizeof(ctx)));
  W("peer-hello", m.type = WIRE_PEER_HELLO; m.req_id = 0;
    m.version = WIRE_PROTOCOL_VERSION; m.text = cs("n2"); m.incarnation = 3);
  W("repl-put-ok", m.type = WIRE_REPL_PUT_OK; m.req_id = 11);
  W("repl-get", m.type = WIRE_REPL_GET; m.req_id = 12; m.key = cs("k"));
  W("repl-get-ok-nil", m.type = WIRE_REPL_GET_OK; m.req_id = 12);
  W("coord-put", m.type = WIRE_COORD_PUT; m.req_id = 13; m.key = cs("k");
    m.value = cs("v"); m.context = sl(ctx, sizeof(ctx)); m.opts = full);
  W("coord-put-delete", m.type = WIRE_COORD_PUT; m.req_id = 14;
    m.key = cs("k"); m.flags = WIRE_COORD_DELETE);
  W("peer-msg", m.type = WIRE_PEER_MSG; m.req_id = 15; m.flags = 2;
    m.raw = cs("\x92\x01\x02"));
  {
    static const uint8_t args[] = {0x81, 0xa4, 'n', 'o', 'd', 'e',
                                   0xa2, 'n', '3'};
    W("admin-join", m.type = WIRE_ADMIN; m.req_id = 16; m.text = cs("join");
      m.raw = sl(args, sizeof(args)));
    W("admin-status", m.type = WIRE_ADMIN; m.req_id = 17;
      m.text = cs("status"); m.raw = sl("\x80", 1));
  }

#ifdef GEN_KVOBJ
  W("repl-put", m.type = WIRE_REPL_PUT; m.req_id = 10; m.key = cs("k");
    m.object = sl(obj_for_wire.data, obj_for_wire.len);
    m.flags = WIRE_REPL_DURABLE);
  W("repl-get-ok", m.type = WIRE_REPL_GET_OK; m.req_id = 12;
    m.object = sl(obj_for_wire.data, obj_for_wire.len));
#endif
#ifdef GEN_KVGOSSIP
  if (gossip_for_wire.len)
    W("gossip", m.type = WIRE_GOSSIP; m.req_id = 0;
      m.raw = sl(gossip_for_wire.data, gossip_for_wire.len));
#else
  W("gossip", m.type = WIRE_GOSSIP; m.req_id = 0; m.raw = cs("\x90"));
#endif
#undef W

  kvbuf b;
  /* GET_OK: not found, one value, siblings with a tombstone. */
  for (uint32_t n = 0; n <= 3; n += 1) {
    if (n == 2)
      continue;
    kvbuf_init(&b);
    wire_get_ok_writer w;
    wire_begin_get_ok(&w, &b, 20 + n, n);
    for (uint32_t i = 0; i < n; i++)
      wire_add_sibling(&w, i == 2 ? WIRE_SIB_DELETED : 0, 1700000000000ull + i,
                       i == 2 ? "" : "sibling", i == 2 ? 0 : 7);
    must(wire_end_get_ok(&w, ctx, sizeof(ctx)) == 0, "get_ok");
    char name[32];
    snprintf(name, sizeof(name), "get-ok-%u-siblings", n);
    wire_put(name, &b);
    kvbuf_free(&b);
  }

  kvbuf_init(&b);
  must(wire_encode_error(&b, 30, KV_ETOOBIG, "value of %u bytes over %u",
                         2000000u, KV_VALUE_MAX_DEFAULT) == 0,
       "error");
  wire_put("error-formatted", &b);
  kvbuf_free(&b);

  /* ADMIN_OK with a free-form result. */
  kvbuf_init(&b);
  msgpack_packer pk;
  size_t start;
  wire_begin(&b, &pk, &start, WIRE_ADMIN_OK, 31, 1);
  msgpack_pack_map(&pk, 2);
  mp_pack_cstr(&pk, "nodes");
  msgpack_pack_array(&pk, 2);
  mp_pack_cstr(&pk, "n1");
  mp_pack_cstr(&pk, "n2");
  mp_pack_cstr(&pk, "ring_version");
  msgpack_pack_uint64(&pk, 4);
  must(wire_end(&b, start) == 0, "admin_ok");
  wire_put("admin-ok", &b);

  /* Two frames back to back, as they arrive on one connection. */
  memset(&m, 0, sizeof(m));
  m.type = WIRE_GET;
  m.req_id = 40;
  m.key = cs("second");
  must(wire_encode(&b, &m) == 0, "get");
  wire_put("two-frames", &b);
  kvbuf_free(&b);
  gen_peer_msgs();
}
#endif

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s OUTDIR (normally tests/fuzz/corpus)\n",
            argv[0]);
    return 2;
  }
  outdir = argv[1];
  if (mkdir(outdir, 0777) != 0 && errno != EEXIST) {
    perror(outdir);
    return 1;
  }
  gen_mp();
  gen_http();
  gen_auth();
#ifdef GEN_KVOBJ
  gen_obj();
  gen_crdt();
#endif
#ifdef GEN_KVRING
  gen_ring();
#endif
#ifdef GEN_KVGOSSIP
  gen_gossip();
#endif
#ifdef GEN_WIRE
  gen_wire();
#endif
  return failures ? 1 : 0;
}
