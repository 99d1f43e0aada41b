/*
 * fuzz_gossip.c: libFuzzer target for the gossip payload decoder
 * (gossip/gossip.h): gossip_receive takes every GOSSIP payload a peer
 * sends, including the ring inside it.
 *
 * A fresh gossip state (one node, "fz", alone) receives the input, then
 * runs a few rounds. Beyond "no crash, no leak" (ASan, UBSan) it checks:
 *   - gossip_receive returns 0 or KV_EPROTO;
 *   - the member table stays bounded and sane: at most GOSSIP_MEMBERS_MAX,
 *     NUL-terminated names and addresses, self present, alive and with
 *     its own incarnation, gossip_find finds every member;
 *   - the ring stays sane (q a power of two, owners in range);
 *   - what this node then sends is accepted by another fresh node: every
 *     payload it builds is at most GOSSIP_MSG_MAX and gossip_receive of it
 *     returns 0 (what we send, we can read).
 * Depends on: kvgossip (kvring, kvproto).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gossip.h"
#include "kv_err.h"
#include "mp.h"
#include "tests/fuzz/fz.h"


#define FZ_NOW_MS 1000000ull
#define FZ_INTERVAL_MS 1000u
#define FZ_ROUNDS 3
#define FZ_SENT_MAX 16 /* payloads kept per run to replay into a peer */

typedef struct sent_log {
  uint8_t *payload[FZ_SENT_MAX];
  size_t len[FZ_SENT_MAX];
  size_t n;
} sent_log;

static void fz_send(void *ctx, const char *peer_addr, const uint8_t *payload,
                    size_t len) {
  sent_log *log = ctx;
  FZ_CHECK(peer_addr != NULL && memchr(peer_addr, 0, GOSSIP_ADDR_MAX));
  FZ_CHECK(len <= GOSSIP_MSG_MAX);
  if (log->n == FZ_SENT_MAX)
    return;
  uint8_t *copy = malloc(len ? len : 1);
  FZ_CHECK(copy != NULL);
  memcpy(copy, payload, len);
  log->payload[log->n] = copy;
  log->len[log->n] = len;
  log->n++;
}

static void fz_ring_changed(void *ctx, const ring *r) {
  (void)ctx;
  FZ_CHECK(r != NULL);
}

static void fz_member_changed(void *ctx, const gossip_member *m) {
  (void)ctx;
  FZ_CHECK(m != NULL);
}

static gossip *new_node(const char *id, const char *peer_addr, sent_log *log,
                        gossip_io *io) {
  static const char *const seeds[1] = {"127.0.0.1:7100"};
  gossip_config cfg;
  memset(&cfg, 0, sizeof(cfg));
  cfg.id = id;
  cfg.region = "r1";
  cfg.zone = "";
  cfg.client_addr = "127.0.0.1:7000";
  cfg.peer_addr = peer_addr;
  cfg.incarnation = 7;
  cfg.seeds = seeds;
  cfg.nseeds = 1;
  cfg.q = 16;
  cfg.n = 3;
  cfg.interval_ms = FZ_INTERVAL_MS;
  cfg.fanout = 3;
  cfg.phi_threshold = 8.0;
  cfg.rng_seed = 42;
  memset(io, 0, sizeof(*io));
  io->ctx = log;
  io->send = fz_send;
  io->ring_changed = fz_ring_changed;
  io->member_changed = fz_member_changed;
  gossip *g = gossip_new(&cfg, io, NULL, FZ_NOW_MS);
  FZ_CHECK(g != NULL);
  return g;
}

static void check_state(const gossip *g, const char *self_id) {
  size_t n = gossip_member_count(g);
  FZ_CHECK(n >= 1 && n <= GOSSIP_MEMBERS_MAX);
  for (size_t i = 0; i < n; i++) {
    const gossip_member *m = gossip_member_at(g, i);
    FZ_CHECK(m != NULL);
    FZ_CHECK(memchr(m->id, 0, sizeof(m->id)));
    FZ_CHECK(memchr(m->region, 0, sizeof(m->region)));
    FZ_CHECK(memchr(m->zone, 0, sizeof(m->zone)));
    FZ_CHECK(memchr(m->client_addr, 0, sizeof(m->client_addr)));
    FZ_CHECK(memchr(m->peer_addr, 0, sizeof(m->peer_addr)));
    FZ_CHECK(m->status <= GOSSIP_REMOVED);
    FZ_CHECK(gossip_status_name(m->status, m->alive) != NULL);
    FZ_CHECK(gossip_find(g, m->id) != NULL);
  }
  const gossip_member *self = gossip_self(g);
  FZ_CHECK(self != NULL && strcmp(self->id, self_id) == 0);
  FZ_CHECK(self->incarnation >= 7);
  FZ_CHECK(gossip_alive(g, self_id));

  const ring *r = gossip_ring(g);
  FZ_CHECK(r != NULL);
  uint32_t q = ring_q(r);
  FZ_CHECK(q >= 1 && q <= RING_Q_MAX && (q & (q - 1)) == 0);
  size_t nodes = ring_node_count(r);
  FZ_CHECK(nodes <= RING_NODES_MAX);
  for (uint32_t p = 0; p < q; p++) {
    int o = ring_owner(r, p);
    FZ_CHECK(o >= -1 && o < (int)nodes);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sent_log log;
  memset(&log, 0, sizeof(log));
  gossip_io io;
  gossip *g = new_node("fz", "127.0.0.1:7100", &log, &io);

  int rc = gossip_receive(g, data, size, FZ_NOW_MS + 1);
  FZ_CHECK(rc == 0 || rc == KV_EPROTO);
  check_state(g, "fz");
  /* Only what the node sends after taking the input is replayed. */
  for (size_t i = 0; i < log.n; i++)
    free(log.payload[i]);
  memset(&log, 0, sizeof(log));

  for (int round = 1; round <= FZ_ROUNDS; round++) {
    gossip_tick(g, FZ_NOW_MS + (uint64_t)round * FZ_INTERVAL_MS);
    check_state(g, "fz");
  }

  if (log.n > 0) {
    sent_log log2;
    memset(&log2, 0, sizeof(log2));
    gossip_io io2;
    gossip *peer = new_node("fz-peer", "127.0.0.1:7101", &log2, &io2);
    for (size_t i = 0; i < log.n; i++) {
      rc = gossip_receive(peer, log.payload[i], log.len[i],
                          FZ_NOW_MS + FZ_ROUNDS * FZ_INTERVAL_MS + 1);
      if (rc != 0) {
        fprintf(stderr, "a payload gossip built was refused: %s\n",
                kv_errname(rc));
        abort();
      }
      check_state(peer, "fz-peer");
    }
    gossip_free(peer);
    for (size_t i = 0; i < log2.n; i++)
      free(log2.payload[i]);
  }

  gossip_free(g);
  for (size_t i = 0; i < log.n; i++)
    free(log.payload[i]);
  return 0;
}
