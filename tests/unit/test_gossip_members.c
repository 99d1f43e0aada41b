/*
 * test_gossip_members.c: what gossip/ carries for operations (issue #16):
 * each member's software version (a trailing field of the member entry),
 * the decoders' tolerance of entries and messages with fewer fields (nodes
 * before the version) or more (later versions), and the membership a node
 * saves and restores across a restart (gossip_members_encode, _restore).
 * Messages are handed from one gossip state to another by hand: no
 * network, no time passing but what a test says.
 * Depends on: kvgossip (and through it kvring, kvproto).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gossip.h"
#include "kv_err.h"
#include "mp.h"
#include "unit/check.h"

#define OUT_MAX 64

/* What one node sent, in order. */
typedef struct outbox {
  char to[OUT_MAX][GOSSIP_ADDR_MAX];
  kvbuf msg[OUT_MAX];
  int n;
} outbox;

static void box_send(void *ctx, const char *addr, const uint8_t *p,
                     size_t len) {
  outbox *b = ctx;
  if (b->n == OUT_MAX)
    return;
  snprintf(b->to[b->n], GOSSIP_ADDR_MAX, "%s", addr);
  kvbuf_init(&b->msg[b->n]);
  kvbuf_append(&b->msg[b->n], p, len);
  b->n++;
}

static void box_clear(outbox *b) {
  for (int i = 0; i < b->n; i++)
    kvbuf_free(&b->msg[i]);
  b->n = 0;
}

static gossip *node(const char *id, const char *addr, const char *version,
                    uint64_t incarnation, const char *seed, outbox *b) {
  const char *seeds[1] = {seed};
  gossip_config cfg = {.id = id,
                       .region = "r1",
                       .zone = "",
                       .client_addr = addr,
                       .peer_addr = addr,
                       .incarnation = incarnation,
                       .seeds = seeds,
                       .nseeds = seed ? 1 : 0,
                       .q = 8,
                       .n = 2,
                       .interval_ms = 100,
                       .rng_seed = 7,
                       .version = version};
  gossip_io io = {.ctx = b, .send = box_send};
  return gossip_new(&cfg, &io, NULL, 0);
}

/* Delivers what from's outbox holds for addr to g; returns how many. */
static int deliver(outbox *from, const char *addr, gossip *g, uint64_t now) {
  int n = 0;
  for (int i = 0; i < from->n; i++)
    if (strcmp(from->to[i], addr) == 0) {
      CHECK(gossip_receive(g, from->msg[i].data, from->msg[i].len, now) == 0);
      n++;
    }
  box_clear(from);
  return n;
}

/* Packs a member entry with nfields fields (10: before versions; 11: with
 * one; more: with fields of later versions). */
static void pack_entry(msgpack_packer *pk, const char *id, const char *addr,
                       uint64_t inc, uint64_t hb, uint32_t nfields,
                       const char *version) {
  msgpack_pack_array(pk, nfields);
  mp_pack_cstr(pk, id);
  mp_pack_cstr(pk, "r1");
  mp_pack_cstr(pk, "");
  mp_pack_cstr(pk, addr);
  mp_pack_cstr(pk, addr);
  msgpack_pack_uint64(pk, inc);
  msgpack_pack_uint64(pk, hb);
  msgpack_pack_uint32(pk, GOSSIP_JOINING);
  msgpack_pack_uint64(pk, 0);
  msgpack_pack_uint64(pk, inc);
  if (nfields > 10)
    mp_pack_cstr(pk, version);
  for (uint32_t i = 11; i < nfields; i++)
    msgpack_pack_uint32(pk, 42); /* a field of a later version */
}

/* A heartbeat [1, 1, entry, 0, ""] (+ extra trailing fields). */
static void heartbeat(kvbuf *out, const char *id, const char *addr,
                      uint64_t inc, uint64_t hb, uint32_t entry_fields,
                      const char *version, uint32_t extra) {
  msgpack_packer pk;
  out->len = 0;
  mp_packer_init(&pk, out);
  msgpack_pack_array(&pk, 5 + extra);
  msgpack_pack_uint32(&pk, GOSSIP_WIRE_VERSION);
  msgpack_pack_uint32(&pk, 1);
  pack_entry(&pk, id, addr, inc, hb, entry_fields, version);
  msgpack_pack_uint64(&pk, 0);
  mp_pack_cstr(&pk, "");
  for (uint32_t i = 0; i < extra; i++)
    mp_pack_cstr(&pk, "later");
}

static void test_versions(void) {
  outbox ba = {0}, bb = {0};
  gossip *a = node("a", "h:1", "0.1.0", 10, NULL, &ba);
  gossip *b = node("b", "h:2", "0.2.0", 20, "h:1", &bb);
  CHECK(a && b);
  CHECK(strcmp(gossip_self(a)->version, "0.1.0") == 0);
  gossip_tick(b, 0); /* b's digest to its seed, a */
  CHECK(deliver(&bb, "h:1", a, 1) > 0);
  CHECK(deliver(&ba, "h:2", b, 2) > 0); /* a's answer */
  const gossip_member *mb = gossip_find(a, "b"), *ma = gossip_find(b, "a");
  CHECK(mb && strcmp(mb->version, "0.2.0") == 0);
  CHECK(ma && strcmp(ma->version, "0.1.0") == 0);

  /* An entry from a node that carries no version (10 fields): taken, and
   * a version known for the same incarnation is kept. */
  kvbuf m;
  kvbuf_init(&m);
  heartbeat(&m, "b", "h:2", 20, 1000, 10, NULL, 0);
  CHECK(gossip_receive(a, m.data, m.len, 3) == 0);
  mb = gossip_find(a, "b");
  CHECK(mb && mb->heartbeat == 1000 && strcmp(mb->version, "0.2.0") == 0);
  /* ... but not across a restart: a new incarnation without a version is
   * of unknown version. */
  heartbeat(&m, "b", "h:2", 21, 1, 10, NULL, 0);
  CHECK(gossip_receive(a, m.data, m.len, 4) == 0);
  mb = gossip_find(a, "b");
  CHECK(mb && mb->incarnation == 21 && mb->version[0] == '\0');
  /* A node of a later version: more fields in the entry and the message. */
  heartbeat(&m, "c", "h:3", 30, 5, 13, "0.3.0", 2);
  CHECK(gossip_receive(a, m.data, m.len, 5) == 0);
  const gossip_member *mc = gossip_find(a, "c");
  CHECK(mc && strcmp(mc->version, "0.3.0") == 0 && mc->heartbeat == 5);
  /* Fewer than the ten fields of the first entry format is still bad. */
  heartbeat(&m, "d", "h:4", 1, 1, 9, NULL, 0);
  CHECK(gossip_receive(a, m.data, m.len, 6) == KV_EPROTO);
  CHECK(gossip_find(a, "d") == NULL);
  /* A version that does not fit is refused, not cut. */
  heartbeat(&m, "e", "h:5", 1, 1, 11, "0123456789012345678901234567890123", 0);
  CHECK(gossip_receive(a, m.data, m.len, 7) == KV_EPROTO);
  kvbuf_free(&m);
  box_clear(&ba);
  box_clear(&bb);
  gossip_free(a);
  gossip_free(b);
}

static void test_saved_members(void) {
  outbox ba = {0}, bb = {0}, bc = {0};
  gossip *a = node("a", "h:1", "0.1.0", 10, NULL, &ba);
  gossip *b = node("b", "h:2", "0.1.0", 20, "h:1", &bb);
  gossip *c = node("c", "h:3", "0.1.0", 30, "h:1", &bc);
  gossip_tick(b, 0);
  gossip_tick(c, 0);
  deliver(&bb, "h:1", a, 1);
  deliver(&bc, "h:1", a, 1);
  CHECK(gossip_member_count(a) == 3);
  CHECK(gossip_remove(a, "c", 2) == 0);
  CHECK(gossip_find(a, "c")->status == GOSSIP_REMOVED);
  kvbuf saved;
  kvbuf_init(&saved);
  CHECK(gossip_members_encode(a, &saved) == 0);
  /* The encoding does not change with heartbeats alone. */
  kvbuf again;
  kvbuf_init(&again);
  heartbeat(&again, "b", "h:2", 20, 999, 11, "0.1.0", 0);
  CHECK(gossip_receive(a, again.data, again.len, 3) == 0);
  again.len = 0;
  CHECK(gossip_members_encode(a, &again) == 0);
  CHECK(again.len == saved.len &&
        memcmp(again.data, saved.data, saved.len) == 0);

  /* a restarts: a new incarnation, its saved members back, none alive
   * until heard from; c is still removed. */
  outbox ba2 = {0};
  gossip *a2 = node("a", "h:1", "0.1.0", 11, NULL, &ba2);
  CHECK(gossip_member_count(a2) == 1);
  CHECK(gossip_members_restore(a2, saved.data, saved.len, 100) == 0);
  CHECK(gossip_member_count(a2) == 3);
  const gossip_member *rb = gossip_find(a2, "b"), *rc = gossip_find(a2, "c");
  CHECK(rb && !rb->alive && rb->incarnation == 20 &&
        strcmp(rb->version, "0.1.0") == 0 && strcmp(rb->peer_addr, "h:2") == 0);
  CHECK(rc && rc->status == GOSSIP_REMOVED);
  CHECK(gossip_status_version(a2, "c") == gossip_status_version(a, "c"));
  CHECK(gossip_self(a2)->incarnation == 11); /* its own entry is its own */
  /* Heard from: alive. */
  heartbeat(&again, "b", "h:2", 20, 1000, 11, "0.1.0", 0);
  CHECK(gossip_receive(a2, again.data, again.len, 101) == 0);
  CHECK(gossip_find(a2, "b")->alive);
  /* Bytes it did not make restore nothing. */
  outbox ba3 = {0};
  gossip *a3 = node("a", "h:1", "0.1.0", 12, NULL, &ba3);
  CHECK(gossip_members_restore(a3, saved.data, saved.len - 1, 0) == KV_EPROTO);
  CHECK(gossip_members_restore(a3, (const uint8_t *)"\x92\x01", 2, 0) ==
        KV_EPROTO);
  CHECK(gossip_member_count(a3) == 1);
  kvbuf_free(&saved);
  kvbuf_free(&again);
  box_clear(&ba);
  box_clear(&bb);
  box_clear(&bc);
  box_clear(&ba2);
  box_clear(&ba3);
  gossip_free(a);
  gossip_free(b);
  gossip_free(c);
  gossip_free(a2);
  gossip_free(a3);
}

int main(void) {
  test_versions();
  test_saved_members();
  return check_summary("test_gossip_members");
}
