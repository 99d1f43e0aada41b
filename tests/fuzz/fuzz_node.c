/*
 * fuzz_node.c: libFuzzer target for the node core (node/core.h) as a client
 * or a peer reaches it: every frame body node_on_frame can be handed, on
 * every kind of connection, in any order, with time passing in between.
 *
 * Each input runs a fresh three-node simulated cluster (tests/sim, fixed
 * seed, no network faults) until its ring has converged, opens a client to
 * node 0 and says HELLO, then replays the input as records:
 *
 *   selector byte, then a frame as on the wire: a 4-byte big-endian body
 *   length and the body (cut short at the end of the input)
 *
 * The selector's low two bits say who sends the body to node 0:
 *   0  the client (a CLIENT connection, greeted)
 *   1  node 1 on the connection it opened to node 0 (PEER_IN)
 *   2  node 1 answering on the connection node 0 opened (PEER_OUT)
 *   3  nobody: the simulation runs (selector >> 2) * 10 ms, no body read
 * Between records the simulation delivers what is due; after the last one
 * it runs 600 simulated ms, so answers, timeouts, retries and the repair
 * timers act on whatever the bodies left behind.
 *
 * The property is the one the node promises: no crash, no leak, no
 * undefined behaviour (ASan, UBSan), whatever a client or peer sends.
 * The seeds (tests/fuzz/corpus/fuzz_node) are fuzz_wire's frames behind
 * selectors 0 and 1 (gen_corpus).
 * Depends on: kvsim_harness (kvcore, kvproto).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/sim/sim.h"

#define FZ_NODES 3
#define FZ_SEED 7
#define FZ_RING_MS 30000
#define FZ_GAP_MS 2     /* simulated time between records */
#define FZ_TAIL_MS 600 /* after the last record */
#define FZ_RECORDS_MAX 64
#define FZ_REQUESTS 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sim_config cfg;
  sim_config_default(&cfg, FZ_SEED, FZ_NODES);
  /* A small request table: under ASan a full one costs most of a run. */
  cfg.requests_max = FZ_REQUESTS;
  /* Short timers, so timeouts, hint delivery, anti-entropy and handoff all
   * run within a case. */
  cfg.timeout_ms = 300;
  cfg.aae_interval_ms = 200;
  cfg.hint_interval_ms = 100;
  cfg.handoff_interval_ms = 100;
  sim *s = sim_new(&cfg);
  if (!s)
    abort();
  if (!sim_wait_ring(s, FZ_RING_MS))
    abort(); /* the harness itself is broken: say so loudly */
  int c = sim_client_open(s, 0, NULL, NULL);
  if (c < 0)
    abort();
  sim_client_hello(s, c, 1);
  sim_run_for(s, FZ_GAP_MS * 10);

  size_t off = 0;
  for (int rec = 0; off < size && rec < FZ_RECORDS_MAX; rec++) {
    uint8_t sel = data[off++];
    if ((sel & 3) == 3) {
      sim_run_for(s, (uint64_t)(sel >> 2) * 10);
      continue;
    }
    if (size - off < 4)
      break;
    uint32_t len = (uint32_t)data[off] << 24 | (uint32_t)data[off + 1] << 16 |
                   (uint32_t)data[off + 2] << 8 | data[off + 3];
    off += 4;
    if (len > size - off)
      len = (uint32_t)(size - off);
    const uint8_t *body = data + off;
    off += len;
    if ((sel & 3) == 0)
      sim_client_send_body(s, c, body, len);
    else
      sim_peer_send_body(s, 1, 0, (sel & 3) == 2, body, len);
    sim_run_for(s, FZ_GAP_MS);
  }
  sim_run_for(s, FZ_TAIL_MS);
  sim_free(s);
  return 0;
}
