/*
 * uv_int.h: internals of kvorumd's libuv shell shared by its files:
 * uv_node.c (the loop, connections, storage adapter), uv_resp.c (the
 * Redis protocol front end), uv_http.c (the HTTP front end) and
 * uv_metrics.c (/metrics). Not a public header.
 */
#ifndef KV_UV_INT_H
#define KV_UV_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "kv_hist.h"
#include "mp.h"
#include "store.h"
#include "uv_node.h"
#include "uv_notify.h"
#include "uv_tls.h"

#define UVN_CONNS_MAX 16384u /* live connections, all kinds */
#define UVN_CONN_BITS 14u
#define UVN_PEERS_MAX 256u
#define UVN_READ_CHUNK (64u * 1024u)
#define UVN_RECONNECT_MS 250u /* wait after a failed connect to a peer */
#define UVN_BACKLOG 511
#define UVN_CONN_RESP (-1) /* uvn__on_accept: a Redis protocol client */

/* The ports a node serves or dials, as /metrics counts them. */
enum {
  UVN_PORT_CLIENT,
  UVN_PORT_PEER_IN,
  UVN_PORT_PEER_OUT,
  UVN_PORT_RESP,
  UVN_PORT_HTTP,
  UVN_PORTS
};

typedef struct uvn_net {
  uint64_t open;               /* connections open now */
  uint64_t bytes_in, bytes_out;
} uvn_net;

typedef struct uvn uvn;

typedef struct uvn_conn {
  uv_tcp_t tcp;
  uvn *u;
  uint64_t id;
  node_conn_kind kind;
  uint8_t port; /* UVN_PORT_* */
  bool greeted;
  bool closing;
  bool connected;
  bool writing;
  bool dirty;
  bool close_after_write;
  struct uvn_peer *peer;   /* PEER_OUT: the peer entry */
  struct uvr_conn *resp;   /* a Redis protocol client (uv_resp.c), or NULL */
  uvt_conn *tls;           /* TLS state, or NULL for plain TCP */
  bool sniff;              /* the port takes both: the first byte decides */
  bool dial_tls;           /* PEER_OUT: speak TLS once connected */
  bool peer_checked;       /* PEER_OUT over TLS: the answering node's
                              certificate was checked (uvn__dialled_named) */
  bool rx;                 /* something was read */
  uint8_t role;            /* auth_role once authenticated (--auth-file) */
  uint8_t auth_fails;      /* failed logins on this connection */
  bool auth_wait;          /* a login is being checked: frames wait */
  char user[65];           /* who logged in (AUTH_USER_MAX + 1) */
  kvbuf tin;               /* TLS: ciphertext read, not yet fed */
  kvbuf tout;              /* TLS: ciphertext to write (wbuf swaps with it) */
  struct uvn_conn *dirty_next;
  kvbuf in;
  kvbuf out;   /* queued, not yet handed to the kernel */
  kvbuf wbuf;  /* being written by uv_write */
  uv_write_t wreq;
  uv_connect_t creq;
} uvn_conn;

typedef struct uvn_peer {
  char addr[GOSSIP_ADDR_MAX];
  uvn_conn *conn;
  uint64_t failed_ms;
  bool dial_plain; /* --peer-tls both: TLS failed here, dial plain */
} uvn_peer;

typedef struct uvn_tokens {
  uint64_t *v;
  size_t len, cap;
} uvn_tokens;

/* An ADMIN backup or compact running on the thread pool; the shell
 * answers its request when it is done. */
typedef struct uvn_job {
  uv_work_t work;
  struct uvn *u;
  bool backup;            /* else a compaction */
  uint64_t conn, req_id;  /* whom to answer */
  char dir[4096];         /* backup: DIR/NODE_ID */
  uint64_t sequence;      /* backup: the last write it holds */
  uint64_t bytes;         /* backup: its size; compact: SST bytes before */
  uint64_t start_us, took_us;
  int rc;
  char err[512];
} uvn_job;

struct uvn {
  uv_loop_t *loop;
  uvn_config *cfg;
  node *core;
  store *st;
  uv_tcp_t client_srv, peer_srv, resp_srv;
  uv_timer_t tick;
  uv_prepare_t prepare;
  uv_check_t check;
  uv_signal_t sigint, sigterm, sighup;
  uvt_ctx *tls;           /* certificates; NULL without --tls-cert */
  struct uva *auth;       /* users (uv_auth.c); NULL without --auth-file */
  uint64_t auth_failures; /* failed logins */
  uint64_t tls_failures;  /* handshakes and peer identities refused */
  uint64_t tls_logged_ms; /* the last such failure logged (one a second) */
  uv_work_t sync_work;
  bool syncing;
  uvn_job *backup, *compact; /* running on the thread pool, or NULL */
  uvsd notify;               /* systemd's NOTIFY_SOCKET (uv_notify.h) */
  bool stopping;
  uint64_t broken_since, recover_ms; /* the store refuses writes */
  int sync_status;
  uvn_tokens commit_wait; /* tokens of staged writes */
  uvn_tokens sync_wait;   /* tokens waiting for the next fsync */
  uvn_tokens sync_run;    /* tokens of the fsync in progress */
  uvn_conn **conns;       /* UVN_CONNS_MAX slots */
  uint32_t conn_gen;
  uvn_conn *dirty;
  uvn_peer peers[UVN_PEERS_MAX];
  size_t npeers;
  uint64_t rng;
  /* What /metrics shows of the shell (uv_metrics.c). */
  uvn_net net[UVN_PORTS];
  uint64_t wal_syncs;
  kv_hist loop_lag;       /* how late each tick ran (kv_hist_lag_us) */
  uint64_t tick_due_us;   /* when the next tick is due (uv_hrtime / 1000) */
  uint64_t start_wall_ms;
  /* Filters the shell's own lines (the core filters its own); ADMIN
   * log-level sets both. */
  node_log_level log_level;
  kv_log_format log_format;
  char id[RING_NAME_MAX];
};

/* uv_node.c */
void uvn__logf(uvn *u, node_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The open connection with id, or NULL. */
uvn_conn *uvn__conn_get(uvn *u, uint64_t id);
/* Closes c now; the core learns of it; the memory goes in a callback. */
void uvn__conn_close(uvn_conn *c);
void uvn__mark_dirty(uvn_conn *c);
/* Queues bytes on c (closing it when too much output is unread). */
void uvn__queue(uvn_conn *c, const uint8_t *frame, size_t len);
/* Binds srv to addr ("HOST:PORT") and listens. Returns 0, or KV_EINVAL /
 * KV_ECONN with a message on stderr naming what (e.g. "peers"). */
int uvn__listen(uvn *u, uv_tcp_t *srv, const char *addr, uv_connection_cb cb,
                const char *what);
/* Why this node should get no traffic yet (not in the ring, leaving,
 * stopping, storage refusing writes), or NULL when it is ready: GET /ready
 * and systemd's READY=1 go by it. */
const char *uvn__not_ready(uvn *u);

/* uv_metrics.c: appends the Prometheus text of /metrics. */
void uvm_render(uvn *u, kvbuf *out);

#endif
