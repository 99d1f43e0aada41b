/*
 * uv_node.h: the libuv driver of a node: TCP listeners for clients and
 * peers, outgoing peer connections, framing, coalesced output, the storage
 * adapter with group commit and off-loop fsync, the tick timer and clean
 * shutdown on SIGINT/SIGTERM. It joins the sans-IO core (core.h) to libuv
 * and RocksDB (store.h).
 */
#ifndef KV_UV_NODE_H
#define KV_UV_NODE_H

#include "core.h"
#include "uv_log.h"
#include "uv_tls.h"

typedef struct uvn_config {
  node_config core;        /* core settings (addresses, ring, quorum) */
  const char *data_dir;
  size_t write_buffer_mb;
  size_t cache_mb;         /* object cache; 0 = none */
  uint32_t tick_ms;        /* core tick period; default 10 */
  size_t conn_out_max;     /* bytes queued per connection before it is
                              closed as too slow; default 64 MiB */
  const char *resp_addr;   /* Redis protocol clients (--resp); NULL: none */
  const char *http_addr;   /* HTTP: metrics, health, keys (--http); NULL:
                              none */
  /* TLS (docs/security.md): the node's certificate and key and the
   * cluster CA (PEM files; NULL: no TLS), and what the client ports
   * (native, RESP, HTTP) and the peer port speak. */
  const char *tls_cert, *tls_key, *tls_ca;
  uvt_mode client_tls, peer_tls;
  const char *auth_file; /* users and roles (--auth-file); NULL: none */
  kv_log_format log_format; /* stderr lines (--log-format); default logfmt */
  const char *config_file;  /* where the settings came from (--config), for
                               the log; NULL: flags only */
} uvn_config;

/* Runs a node until SIGINT/SIGTERM. Returns 0 after a clean shutdown, or
 * a KV_E* code with a message printed to stderr when it cannot start. */
int uvn_run(uvn_config *cfg);

#endif
