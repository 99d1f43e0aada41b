/*
 * uv_metrics.c: what GET /metrics shows (uvm_render): the core's counters
 * and histograms, membership, the storage engine's figures, the shell's
 * connections and event loop, and the process, in the Prometheus text
 * format (proto/prom.h). Names and units follow Prometheus' conventions:
 * base units (seconds, bytes), _total on counters. docs/http.md lists
 * every family.
 *
 * Depends on: uv_int.h (the shell's counters), core.h, store.h, prom.h.
 */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "prom.h"
#include "uv_int.h"

/* A counter or gauge with one unlabelled value. */
typedef struct uvm_one {
  const char *name, *type, *help;
  uint64_t v;
} uvm_one;

static void uvm__ones(kvbuf *out, const uvm_one *m, size_t n) {
  for (size_t i = 0; i < n; i++) {
    prom_family(out, m[i].name, m[i].type, m[i].help);
    prom_u64(out, m[i].name, NULL, m[i].v);
  }
}

static void uvm__requests(kvbuf *out, const node_stats *s) {
  char lb[64];
  prom_family(out, "kvorum_requests_total", "counter",
              "Client requests this node answered as the node the client "
              "asked, by operation and result.");
  for (int op = 0; op < NODE_OPS; op++)
    for (int r = 0; r < NODE_RESULTS; r++) {
      lb[0] = '\0';
      prom_label(lb, sizeof(lb), "op", node_op_name(op));
      prom_label(lb, sizeof(lb), "result", node_result_name(r));
      prom_u64(out, "kvorum_requests_total", lb, s->requests[op][r]);
    }
  prom_family(out, "kvorum_request_duration_seconds", "histogram",
              "Time from a client request's arrival to its answer.");
  for (int op = 0; op < NODE_OPS; op++) {
    lb[0] = '\0';
    prom_label(lb, sizeof(lb), "op", node_op_name(op));
    prom_hist(out, "kvorum_request_duration_seconds", lb, &s->latency[op],
              &kv_hist_latency_us);
  }
  prom_family(out, "kvorum_replica_requests_total", "counter",
              "Replica reads and writes this node served for coordinators.");
  prom_u64(out, "kvorum_replica_requests_total", "op=\"get\"", s->repl_gets);
  prom_u64(out, "kvorum_replica_requests_total", "op=\"put\"", s->repl_puts);
  prom_family(out, "kvorum_replica_puts_unmerged_total", "counter",
              "Replica writes stored as they came, without a merge: the "
              "replica held the version the coordinator started from.");
  prom_u64(out, "kvorum_replica_puts_unmerged_total", NULL, s->repl_puts_fast);
  prom_family(out, "kvorum_read_siblings", "histogram",
              "Values (siblings) per read that found its key.");
  prom_hist(out, "kvorum_read_siblings", NULL, &s->siblings, &kv_hist_count);
  prom_family(out, "kvorum_object_size_bytes", "histogram",
              "Encoded size of the objects this node wrote as coordinator.");
  prom_hist(out, "kvorum_object_size_bytes", NULL, &s->object_bytes,
            &kv_hist_bytes);
}

static void uvm__members(kvbuf *out, uvn *u) {
  const gossip *g = node_gossip(u->core);
  static const char *const states[] = {"up", "down", "joining", "leaving",
                                       "removed"};
  uint64_t cnt[5] = {0};
  for (size_t i = 0; i < gossip_member_count(g); i++) {
    const gossip_member *m = gossip_member_at(g, i);
    const char *st = gossip_status_name(m->status, m->alive);
    for (size_t k = 0; k < 5; k++)
      cnt[k] += strcmp(st, states[k]) == 0;
  }
  prom_family(out, "kvorum_members", "gauge",
              "Cluster members this node knows, by state.");
  for (size_t k = 0; k < 5; k++) {
    char lb[32] = "";
    prom_label(lb, sizeof(lb), "state", states[k]);
    prom_u64(out, "kvorum_members", lb, cnt[k]);
  }
  const ring *rg = gossip_ring(g);
  int idx = ring_node_index(rg, u->id);
  uvm_one rm[] = {
      {"kvorum_partitions_owned", "gauge",
       "Partitions whose first replica is this node.",
       idx < 0 ? 0 : ring_owned_count(rg, (size_t)idx)},
      {"kvorum_ring_version", "gauge", "Version of this node's ring.",
       ring_version(rg)},
      {"kvorum_ring_partitions", "gauge", "Partitions in the ring (Q).",
       ring_q(rg)},
  };
  uvm__ones(out, rm, sizeof(rm) / sizeof(rm[0]));
}

static void uvm__repair(kvbuf *out, uvn *u, const node_stats *s) {
  uvm_one m[] = {
      {"kvorum_hints_pending", "gauge",
       "Hinted writes this node keeps for other nodes.",
       node_hints_pending(u->core)},
      {"kvorum_hints_stored_total", "counter",
       "Hinted writes stored for other nodes.", s->hints_stored},
      {"kvorum_hints_delivered_total", "counter",
       "Hinted writes delivered to their owners.", s->hints_delivered},
      {"kvorum_coordinator_hints_total", "counter",
       "Hints a coordinator kept for replicas that did not acknowledge.",
       s->hints_kept},
      {"kvorum_read_repairs_total", "counter",
       "Replicas repaired after a read found them behind.", s->read_repairs},
      {"kvorum_aae_exchanges_total", "counter",
       "Anti-entropy tree exchanges this node started.", s->aae_exchanges},
      {"kvorum_aae_bytes_total", "counter",
       "Bytes of anti-entropy exchanges.", s->aae_bytes},
      {"kvorum_aae_keys_repaired_total", "counter",
       "Keys anti-entropy repaired.", s->aae_keys_repaired},
      {"kvorum_catchup_exchanges_total", "counter",
       "Catch-up exchanges with returning replicas.", s->catchup_exchanges},
      {"kvorum_catchup_keys_repaired_total", "counter",
       "Keys catch-up exchanges repaired.", s->catchup_keys_repaired},
      {"kvorum_handoff_partitions_pending", "gauge",
       "Partitions this node holds but no longer owns, still to hand off.",
       node_handoff_pending(u->core)},
      {"kvorum_handoff_keys_sent_total", "counter",
       "Keys sent to new owners by ownership handoff.", s->handoff_keys_sent},
      {"kvorum_handoff_keys_received_total", "counter",
       "Keys received by ownership handoff.", s->handoff_keys_received},
      {"kvorum_partitions_dropped_total", "counter",
       "Partitions dropped after a complete handoff.", s->partitions_dropped},
      {"kvorum_tombstones_reaped_total", "counter",
       "Tombstones removed once every replica had them.",
       s->tombstones_reaped},
      {"kvorum_sibling_warnings_total", "counter",
       "Writes that left a key with more siblings than the warning level.",
       s->sibling_warnings},
      {"kvorum_bad_frames_total", "counter",
       "Frames from peers or clients that could not be decoded.",
       s->bad_frames},
      {"kvorum_requests_in_flight", "gauge",
       "Requests in this node's request table.",
       node_requests_in_flight(u->core)},
  };
  uvm__ones(out, m, sizeof(m) / sizeof(m[0]));
  prom_family(out, "kvorum_hints_dropped_total", "counter",
              "Hinted writes not kept: refused (the hint store was full) or "
              "past the hint window (anti-entropy repairs them).");
  prom_u64(out, "kvorum_hints_dropped_total", "reason=\"refused\"",
           s->hints_refused);
  prom_u64(out, "kvorum_hints_dropped_total", "reason=\"window\"",
           s->hints_window_skipped);
}

static void uvm__storage(kvbuf *out, uvn *u) {
  store_metrics sm;
  store_metrics_get(u->st, &sm);
  uvm_one m[] = {
      {"kvorum_storage_keys", "gauge",
       "RocksDB's estimate of the objects stored.", sm.keys},
      {"kvorum_storage_live_sst_bytes", "gauge",
       "Bytes of live SST files.", sm.live_sst_bytes},
      {"kvorum_storage_memtable_bytes", "gauge",
       "Bytes of active and immutable memtables.", sm.memtable_bytes},
      {"kvorum_storage_pending_compaction_bytes", "gauge",
       "RocksDB's estimate of bytes compaction has to rewrite.",
       sm.pending_compaction_bytes},
      {"kvorum_storage_block_cache_bytes", "gauge",
       "Bytes in RocksDB's block cache.", sm.block_cache_bytes},
      {"kvorum_storage_write_stalls_total", "counter",
       "Times RocksDB stalled or slowed writes.", sm.write_stalls},
      {"kvorum_storage_write_stopped", "gauge",
       "1 while RocksDB stops writes.", sm.write_stopped},
      {"kvorum_storage_refuses_writes", "gauge",
       "1 while the store refuses writes (a full disk).",
       store_broken(u->st)},
      {"kvorum_storage_wal_syncs_total", "counter",
       "fsyncs of the write-ahead log.", u->wal_syncs},
      {"kvorum_object_cache_hits_total", "counter",
       "Reads served by the object cache.", sm.ocache_hits},
      {"kvorum_object_cache_misses_total", "counter",
       "Reads the object cache could not serve.", sm.ocache_misses},
      {"kvorum_object_cache_bytes", "gauge",
       "Bytes held by the object cache.", sm.ocache_bytes},
  };
  uvm__ones(out, m, sizeof(m) / sizeof(m[0]));
  prom_family(out, "kvorum_storage_write_stall_seconds_total", "counter",
              "Time RocksDB held writes back.");
  prom_f64(out, "kvorum_storage_write_stall_seconds_total", NULL,
           sm.write_stall_seconds);
}

static void uvm__shell(kvbuf *out, uvn *u) {
  static const char *const ports[UVN_PORTS] = {"client", "peer_in",
                                               "peer_out", "resp", "http"};
  static const struct {
    const char *name, *type, *help;
  } fam[3] = {
      {"kvorum_connections_open", "gauge", "Open connections, by port."},
      {"kvorum_network_received_bytes_total", "counter",
       "Bytes received, by port (http: targets, headers and bodies)."},
      {"kvorum_network_sent_bytes_total", "counter",
       "Bytes sent, by port (http: bodies)."},
  };
  for (int f = 0; f < 3; f++) {
    prom_family(out, fam[f].name, fam[f].type, fam[f].help);
    for (int p = 0; p < UVN_PORTS; p++) {
      char lb[32] = "";
      prom_label(lb, sizeof(lb), "port", ports[p]);
      const uvn_net *n = &u->net[p];
      prom_u64(out, fam[f].name, lb,
               f == 0 ? n->open : f == 1 ? n->bytes_in : n->bytes_out);
    }
  }
  uvm_one sec[] = {
      {"kvorum_auth_failures_total", "counter",
       "Failed logins (wrong user or password) on every port.",
       u->auth_failures},
      {"kvorum_tls_refused_total", "counter",
       "TLS handshakes that failed on every port (HTTPS included), and "
       "peers whose certificate did not name them.",
       u->tls_failures + (u->tls ? uvt_ctx_https_refused(u->tls) : 0)},
  };
  uvm__ones(out, sec, sizeof(sec) / sizeof(sec[0]));
  prom_family(out, "kvorum_event_loop_lag_seconds", "histogram",
              "How late the event loop ran its 10 ms tick.");
  prom_hist(out, "kvorum_event_loop_lag_seconds", NULL, &u->loop_lag,
            &kv_hist_lag_us);
}

/* Entries of /proc/self/fd, less the one opendir holds. */
static uint64_t uvm__open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return 0;
  uint64_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    n += e->d_name[0] != '.';
  closedir(d);
  return n ? n - 1 : 0;
}

static uint64_t uvm__rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long long size = 0, rss = 0;
  if (!f)
    return 0;
  if (fscanf(f, "%llu %llu", &size, &rss) != 2)
    rss = 0;
  fclose(f);
  return rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void uvm__process(kvbuf *out, uvn *u) {
  struct rusage ru;
  double cpu = 0;
  if (getrusage(RUSAGE_SELF, &ru) == 0)
    cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
          ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
  prom_family(out, "process_cpu_seconds_total", "counter",
              "User and system CPU time spent in seconds.");
  prom_f64(out, "process_cpu_seconds_total", NULL, cpu);
  struct rlimit rl;
  uvm_one m[] = {
      {"process_resident_memory_bytes", "gauge",
       "Resident memory size in bytes.", uvm__rss_bytes()},
      {"process_open_fds", "gauge", "Number of open file descriptors.",
       uvm__open_fds()},
      {"process_max_fds", "gauge", "Maximum number of open file descriptors.",
       getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (uint64_t)rl.rlim_cur : 0},
  };
  uvm__ones(out, m, sizeof(m) / sizeof(m[0]));
  prom_family(out, "process_start_time_seconds", "gauge",
              "Start time of the process since unix epoch in seconds.");
  prom_f64(out, "process_start_time_seconds", NULL,
           (double)u->start_wall_ms / 1000.0);
  char lb[256] = "";
  prom_label(lb, sizeof(lb), "version", KVORUM_VERSION);
  prom_family(out, "kvorum_build_info", "gauge",
              "Always 1; the version of this kvorumd in a label.");
  prom_u64(out, "kvorum_build_info", lb, 1);
  lb[0] = '\0';
  prom_label(lb, sizeof(lb), "node", u->id);
  prom_label(lb, sizeof(lb), "region", u->cfg->core.region
                                           ? u->cfg->core.region
                                           : "default");
  prom_family(out, "kvorum_node_info", "gauge",
              "Always 1; this node's id and region in labels.");
  prom_u64(out, "kvorum_node_info", lb, 1);
}

void uvm_render(uvn *u, kvbuf *out) {
  const node_stats *s = node_stats_get(u->core);
  uvm__requests(out, s);
  uvm__members(out, u);
  uvm__repair(out, u, s);
  uvm__storage(out, u);
  uvm__shell(out, u);
  uvm__process(out, u);
}
