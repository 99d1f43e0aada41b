/*
 * uv_node.c: the libuv shell of kvorumd (see uv_node.h).
 *
 * One thread runs the loop and owns all state. A loop turn reads frames
 * from every readable connection and hands them to the core, which stages
 * storage writes and queues output. Before the loop blocks again (prepare)
 * and right after I/O (check), uvn__flush commits the staged writes as one
 * RocksDB WriteBatch (group commit), tells the core, starts an fsync on the
 * thread pool when durable writes wait for one, and writes each
 * connection's queued output with one system call.
 */
#include "uv_node.h"
#include "uv_int.h"
#include "uv_http.h"
#include "uv_resp.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <uv.h>

#include "kv_err.h"
#include "mp.h"
#include "rng.h"
#include "wire.h"
#include "store.h"

/* ---- logging ---- */

/* One line on stderr, logfmt or JSON (uv_log.h): time, level, node,
 * message. A line that cannot be formatted (no memory) is dropped. */
void uvn__logf(uvn *u, node_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void uvn__logf(uvn *u, node_log_level lvl, const char *fmt, ...) {
  if (lvl > u->log_level)
    return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t wall_ms =
      (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
  kvbuf line;
  kvbuf_init(&line);
  if (kv_log_line(&line, u->log_format, wall_ms, node_log_level_name(lvl),
                  u->id, msg) == 0)
    fwrite(line.data, 1, line.len, stderr);
  kvbuf_free(&line);
}

/* ---- token lists ---- */

static int uvn__tokens_push(uvn_tokens *t, uint64_t tok) {
  if (t->len == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 256;
    uint64_t *v = realloc(t->v, cap * sizeof(*v));
    if (!v)
      return KV_ENOMEM;
    t->v = v;
    t->cap = cap;
  }
  t->v[t->len++] = tok;
  return 0;
}

/* ---- connections ---- */

static uvn_conn *uvn__conn_get(uvn *u, uint64_t id) {
  uvn_conn *c = u->conns[id & (UVN_CONNS_MAX - 1)];
  return c && c->id == id && !c->closing ? c : NULL;
}

static uvn_conn *uvn__conn_new(uvn *u, node_conn_kind kind) {
  uint32_t slot = UVN_CONNS_MAX;
  for (uint32_t i = 0; i < UVN_CONNS_MAX; i++) {
    uint32_t s = (u->conn_gen + i) & (UVN_CONNS_MAX - 1);
    if (s != 0 && !u->conns[s]) {
      slot = s;
      break;
    }
  }
  if (slot == UVN_CONNS_MAX)
    return NULL;
  uvn_conn *c = calloc(1, sizeof(*c));
  if (!c)
    return NULL;
  u->conn_gen++;
  c->u = u;
  c->kind = kind;
  c->id = ((uint64_t)u->conn_gen << UVN_CONN_BITS) | slot;
  c->port = kind == NODE_CONN_PEER_IN    ? UVN_PORT_PEER_IN
            : kind == NODE_CONN_PEER_OUT ? UVN_PORT_PEER_OUT
                                         : UVN_PORT_CLIENT;
  u->net[c->port].open++;
  kvbuf_init(&c->in);
  kvbuf_init(&c->out);
  kvbuf_init(&c->wbuf);
  uv_tcp_init(u->loop, &c->tcp);
  c->tcp.data = c;
  u->conns[slot] = c;
  return c;
}

static void uvn__conn_free_cb(uv_handle_t *h) {
  uvn_conn *c = h->data;
  uvr_close(c);
  kvbuf_free(&c->in);
  kvbuf_free(&c->out);
  kvbuf_free(&c->wbuf);
  free(c);
}

/* Closes c now; the core learns of it; the memory goes in the callback. */
void uvn__conn_close(uvn_conn *c) {
  if (c->closing)
    return;
  uvn *u = c->u;
  c->closing = true;
  u->conns[c->id & (UVN_CONNS_MAX - 1)] = NULL;
  u->net[c->port].open--;
  if (c->peer) {
    if (c->peer->conn == c)
      c->peer->conn = NULL;
    if (!c->connected)
      c->peer->failed_ms = uv_now(u->loop);
    c->peer = NULL;
  }
  /* Remove from the dirty list. */
  for (uvn_conn **pp = &u->dirty; *pp; pp = &(*pp)->dirty_next) {
    if (*pp == c) {
      *pp = c->dirty_next;
      break;
    }
  }
  c->dirty = false;
  if (u->core)
    node_on_close(u->core, c->id, c->kind);
  uv_close((uv_handle_t *)&c->tcp, uvn__conn_free_cb);
}

void uvn__mark_dirty(uvn_conn *c) {
  if (!c->dirty) {
    c->dirty = true;
    c->dirty_next = c->u->dirty;
    c->u->dirty = c;
  }
}

static void uvn__conn_write(uvn_conn *c);

static void uvn__write_cb(uv_write_t *req, int status) {
  uvn_conn *c = req->data;
  c->writing = false;
  c->wbuf.len = 0;
  if (c->closing)
    return;
  if (status < 0) {
    uvn__conn_close(c);
    return;
  }
  if (c->out.len)
    uvn__conn_write(c);
  else if (c->close_after_write)
    uvn__conn_close(c);
}

/* Hands c's queued output to the kernel: try_write first, uv_write for
 * what does not fit. */
static void uvn__conn_write(uvn_conn *c) {
  if (c->writing || c->closing || !c->connected || c->out.len == 0) {
    if (!c->writing && !c->closing && c->close_after_write &&
        c->out.len == 0)
      uvn__conn_close(c);
    return;
  }
  uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n == UV_EAGAIN)
    n = 0;
  if (n < 0) {
    uvn__conn_close(c);
    return;
  }
  c->u->net[c->port].bytes_out += (uint64_t)n;
  if ((size_t)n == c->out.len) {
    c->out.len = 0;
    if (c->close_after_write)
      uvn__conn_close(c);
    return;
  }
  kvbuf_consume(&c->out, (size_t)n);
  /* Swap the rest into wbuf and write it asynchronously. */
  kvbuf tmp = c->wbuf;
  c->wbuf = c->out;
  c->out = tmp;
  c->out.len = 0;
  b = uv_buf_init((char *)c->wbuf.data, (unsigned)c->wbuf.len);
  c->u->net[c->port].bytes_out += c->wbuf.len;
  c->wreq.data = c;
  c->writing = true;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, uvn__write_cb)) {
    c->writing = false;
    uvn__conn_close(c);
  }
}

void uvn__queue(uvn_conn *c, const uint8_t *frame, size_t len) {
  if (c->closing)
    return;
  if (c->out.len + c->wbuf.len + len > c->u->cfg->conn_out_max ||
      kvbuf_append(&c->out, frame, len)) {
    uvn__logf(c->u, NODE_LOG_WARN,
              "closing connection %llu: too much unread output",
              (unsigned long long)c->id);
    uvn__conn_close(c);
    return;
  }
  uvn__mark_dirty(c);
}

/* ---- reading ---- */

static void uvn__alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  uvn_conn *c = h->data;
  (void)hint;
  if (kvbuf_reserve(&c->in, UVN_READ_CHUNK)) {
    buf->base = NULL;
    buf->len = 0;
    return;
  }
  buf->base = (char *)c->in.data + c->in.len;
  buf->len = c->in.cap - c->in.len;
}

static void uvn__read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  uvn_conn *c = s->data;
  uvn *u = c->u;
  (void)buf;
  if (nread < 0) {
    uvn__conn_close(c);
    return;
  }
  if (nread == 0)
    return;
  c->in.len += (size_t)nread;
  u->net[c->port].bytes_in += (uint64_t)nread;
  if (c->resp) {
    uvr_on_read(c);
    return;
  }
  const wire_limits *lim = &wire_limits_default;
  wire_limits mine = *lim;
  if (u->cfg->core.limits.value_max)
    mine.value_max = u->cfg->core.limits.value_max;
  size_t off = 0;
  while (!c->closing) {
    uint32_t body_len;
    int rc = wire_frame_check(c->in.data + off, c->in.len - off, &mine,
                              &body_len);
    if (rc == KV_EBUSY)
      break;
    if (rc) {
      /* The framing itself is broken: say why and close. */
      kvbuf e;
      kvbuf_init(&e);
      wire_encode_error(&e, 0, KV_ETOOBIG,
                        "frame of %u bytes is larger than the limit of %u "
                        "bytes; closing the connection",
                        body_len, mine.frame_max);
      uvn__queue(c, e.data, e.len);
      kvbuf_free(&e);
      c->close_after_write = true;
      uvn__mark_dirty(c);
      off = c->in.len;
      break;
    }
    const uint8_t *body = c->in.data + off + WIRE_HEADER_BYTES;
    off += WIRE_HEADER_BYTES + body_len;
    int act = node_on_frame(u->core, c->id, c->kind, c->greeted, body,
                            body_len);
    if (act == NODE_FRAME_GREETED)
      c->greeted = true;
    else if (act == NODE_FRAME_CLOSE) {
      c->close_after_write = true;
      uvn__mark_dirty(c);
      off = c->in.len;
      break;
    }
  }
  if (c->closing)
    return;
  if (off)
    kvbuf_consume(&c->in, off);
  if (c->close_after_write)
    uv_read_stop((uv_stream_t *)&c->tcp);
}

static void uvn__start(uvn_conn *c) {
  c->connected = true;
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, uvn__alloc_cb, uvn__read_cb);
}

/* kind is a node_conn_kind, or UVN_CONN_RESP for a Redis protocol client
 * (a client connection of the core). */
static void uvn__on_accept(uv_stream_t *srv, int status, int kind) {
  uvn *u = srv->data;
  if (status < 0 || u->stopping)
    return;
  uvn_conn *c = uvn__conn_new(
      u, kind == UVN_CONN_RESP ? NODE_CONN_CLIENT : (node_conn_kind)kind);
  if (!c) {
    uv_tcp_t tmp;
    uv_tcp_init(u->loop, &tmp);
    if (uv_accept(srv, (uv_stream_t *)&tmp) == 0)
      uvn__logf(u, NODE_LOG_WARN, "refusing a connection: %u connections "
                "are open", UVN_CONNS_MAX);
    uv_close((uv_handle_t *)&tmp, NULL);
    return;
  }
  if (kind == UVN_CONN_RESP) {
    u->net[c->port].open--;
    c->port = UVN_PORT_RESP;
    u->net[c->port].open++;
  }
  if (uv_accept(srv, (uv_stream_t *)&c->tcp) ||
      (kind == UVN_CONN_RESP && uvr_open(c))) {
    uvn__conn_close(c);
    return;
  }
  uvn__start(c);
}

static void uvn__on_client(uv_stream_t *srv, int status) {
  uvn__on_accept(srv, status, NODE_CONN_CLIENT);
}

static void uvn__on_resp(uv_stream_t *srv, int status) {
  uvn__on_accept(srv, status, UVN_CONN_RESP);
}

static void uvn__on_peer(uv_stream_t *srv, int status) {
  uvn__on_accept(srv, status, NODE_CONN_PEER_IN);
}

/* ---- outgoing peer connections ---- */

/* Parses "host:port" (IPv4, [IPv6] or localhost). Returns 0 or UV error. */
static int uvn__parse_addr(const char *s, struct sockaddr_storage *out) {
  char host[GOSSIP_ADDR_MAX];
  const char *colon = strrchr(s, ':');
  if (!colon || colon == s || strlen(s) >= sizeof(host))
    return UV_EINVAL;
  size_t hl = (size_t)(colon - s);
  memcpy(host, s, hl);
  host[hl] = '\0';
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || port <= 0 || port > 65535)
    return UV_EINVAL;
  if (strcmp(host, "localhost") == 0)
    snprintf(host, sizeof(host), "127.0.0.1");
  if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
    host[hl - 1] = '\0';
    return uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)out);
  }
  return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out);
}

static void uvn__connect_cb(uv_connect_t *req, int status) {
  uvn_conn *c = req->data;
  if (c->closing)
    return;
  if (status < 0) {
    uvn__logf(c->u, NODE_LOG_DEBUG, "cannot connect to peer %s: %s",
              c->peer ? c->peer->addr : "?", uv_strerror(status));
    uvn__conn_close(c);
    return;
  }
  uvn__start(c);
  uvn__conn_write(c);
}

static uvn_peer *uvn__peer(uvn *u, const char *addr) {
  for (size_t i = 0; i < u->npeers; i++)
    if (strcmp(u->peers[i].addr, addr) == 0)
      return &u->peers[i];
  if (u->npeers == UVN_PEERS_MAX)
    return NULL;
  uvn_peer *p = &u->peers[u->npeers++];
  memset(p, 0, sizeof(*p));
  snprintf(p->addr, sizeof(p->addr), "%s", addr);
  return p;
}

static uvn_conn *uvn__peer_conn(uvn *u, uvn_peer *p) {
  if (p->conn)
    return p->conn;
  uint64_t now = uv_now(u->loop);
  if (p->failed_ms && now - p->failed_ms < UVN_RECONNECT_MS)
    return NULL;
  struct sockaddr_storage sa;
  if (uvn__parse_addr(p->addr, &sa)) {
    p->failed_ms = now;
    return NULL;
  }
  uvn_conn *c = uvn__conn_new(u, NODE_CONN_PEER_OUT);
  if (!c)
    return NULL;
  c->peer = p;
  c->greeted = true; /* we speak first; answers need no hello */
  c->creq.data = c;
  if (uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&sa,
                     uvn__connect_cb)) {
    p->failed_ms = now;
    c->peer = NULL;
    uvn__conn_close(c);
    return NULL;
  }
  p->conn = c;
  /* The hello goes first. */
  kvbuf hb;
  kvbuf_init(&hb);
  wire_msg h = {.type = WIRE_PEER_HELLO, .version = WIRE_PROTOCOL_VERSION};
  h.text.ptr = (const uint8_t *)u->id;
  h.text.len = strlen(u->id);
  h.incarnation = u->cfg->core.incarnation;
  wire_encode(&hb, &h);
  uvn__queue(c, hb.data, hb.len);
  kvbuf_free(&hb);
  return c;
}

static void uvn__commit(uvn *u);

/* ---- node_io ---- */

static uint64_t uvn__io_now(void *ctx) {
  uvn *u = ctx;
  return uv_now(u->loop);
}

static uint64_t uvn__io_now_us(void *ctx) {
  (void)ctx;
  return uv_hrtime() / 1000u;
}

static uint64_t uvn__io_wall(void *ctx) {
  (void)ctx;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t uvn__io_random(void *ctx) {
  uvn *u = ctx;
  return kv_splitmix64(&u->rng);
}

static void uvn__io_conn_send(void *ctx, uint64_t conn, const uint8_t *frame,
                              size_t len) {
  if (conn == UVN_CONN_HTTP) {
    uvh_on_frame(ctx, frame, len);
    return;
  }
  uvn_conn *c = uvn__conn_get(ctx, conn);
  if (c && c->resp)
    uvr_on_frame(c, frame, len);
  else if (c)
    uvn__queue(c, frame, len);
}

static void uvn__io_conn_close(void *ctx, uint64_t conn) {
  uvn_conn *c = uvn__conn_get(ctx, conn);
  if (c) {
    c->close_after_write = true;
    uvn__mark_dirty(c);
  }
}

static uint64_t uvn__io_peer_send(void *ctx, const char *addr,
                                  const uint8_t *frame, size_t len) {
  uvn *u = ctx;
  if (u->stopping)
    return 0;
  uvn_peer *p = uvn__peer(u, addr);
  uvn_conn *c = p ? uvn__peer_conn(u, p) : NULL;
  if (!c)
    return 0;
  uint64_t id = c->id;
  uvn__queue(c, frame, len);
  return uvn__conn_get(u, id) ? id : 0;
}

static int uvn__io_store_get(void *ctx, uint32_t part, const void *key,
                             size_t klen, const uint8_t **val, size_t *vlen) {
  uvn *u = ctx;
  int rc = store_get_view(u->st, part, key, klen, val, vlen);
  if (rc && rc != KV_ENOTFOUND)
    uvn__logf(u, NODE_LOG_ERROR, "storage read failed: %s",
              store_errmsg(u->st));
  return rc;
}

static int uvn__io_store_put(void *ctx, uint32_t part, const void *key,
                             size_t klen, const void *val, size_t vlen,
                             uint64_t token) {
  uvn *u = ctx;
  int rc = store_stage_put(u->st, part, key, klen, val, vlen);
  if (rc)
    return rc;
  return uvn__tokens_push(&u->commit_wait, token);
}

static int uvn__io_store_sync(void *ctx, uint64_t token) {
  uvn *u = ctx;
  return uvn__tokens_push(&u->sync_wait, token);
}

static int uvn__io_store_del(void *ctx, uint32_t part, const void *key,
                             size_t klen, uint64_t token) {
  uvn *u = ctx;
  int rc = store_stage_delete(u->st, part, key, klen);
  if (rc)
    return rc;
  return uvn__tokens_push(&u->commit_wait, token);
}

static int uvn__io_store_scan(void *ctx, uint32_t part, const void *after,
                              size_t after_len, size_t limit,
                              node_scan_fn fn, void *arg) {
  uvn *u = ctx;
  /* Scans see committed data: commit what is staged first. */
  uvn__commit(u);
  int rc = store_scan_from(u->st, part, after, after_len, limit, fn, arg);
  return rc > 0 ? 0 : rc;
}

static int uvn__io_store_drop(void *ctx, uint32_t part) {
  uvn *u = ctx;
  uvn__commit(u);
  int rc = store_drop_partition(u->st, part);
  if (rc)
    uvn__logf(u, NODE_LOG_ERROR, "cannot drop partition %u: %s", part,
              store_errmsg(u->st));
  return rc;
}

static int uvn__io_hint_put(void *ctx, const char *owner, uint32_t part,
                            const void *key, size_t klen, const void *val,
                            size_t vlen) {
  uvn *u = ctx;
  return store_hint_put(u->st, owner, part, key, klen, val, vlen);
}

static int uvn__io_hint_get(void *ctx, const char *owner, uint32_t part,
                            const void *key, size_t klen, uint8_t **val,
                            size_t *vlen) {
  uvn *u = ctx;
  return store_hint_get(u->st, owner, part, key, klen, val, vlen);
}

static int uvn__io_hint_del(void *ctx, const char *owner, uint32_t part,
                            const void *key, size_t klen) {
  uvn *u = ctx;
  return store_hint_delete(u->st, owner, part, key, klen);
}

typedef struct uvn__hint_limit {
  node_hint_fn fn;
  void *arg;
  size_t left;
} uvn__hint_limit;

static int uvn__hint_limit_fn(void *arg, uint32_t part, const uint8_t *key,
                              size_t klen, const uint8_t *val, size_t vlen) {
  uvn__hint_limit *l = arg;
  if (l->left == 0)
    return 1;
  l->left--;
  int rc = l->fn(l->arg, part, key, klen, val, vlen);
  return rc ? rc : (l->left == 0);
}

static int uvn__io_hint_scan(void *ctx, const char *owner, size_t limit,
                             node_hint_fn fn, void *arg) {
  uvn *u = ctx;
  uvn__hint_limit l = {.fn = fn, .arg = arg, .left = limit};
  int rc = store_hint_scan(u->st, owner, uvn__hint_limit_fn, &l);
  return rc > 0 ? 0 : rc;
}

static int uvn__io_hint_owner_next(void *ctx, const char *after, char *out,
                                   size_t cap) {
  uvn *u = ctx;
  return store_hint_owner_next(u->st, after, out, cap);
}

static void uvn__stop(uvn *u, const char *why);

static void uvn__io_shutdown(void *ctx) { uvn__stop(ctx, "left the cluster"); }

static int uvn__io_meta_put(void *ctx, const char *name, const void *val,
                            size_t len) {
  uvn *u = ctx;
  int rc = store_meta_put(u->st, name, val, len);
  if (rc)
    uvn__logf(u, NODE_LOG_ERROR, "cannot save %s: %s", name,
              store_errmsg(u->st));
  return rc;
}

static void uvn__io_log(void *ctx, node_log_level lvl, const char *msg) {
  uvn__logf(ctx, lvl, "%s", msg);
}

static void uvn__io_log_level_set(void *ctx, node_log_level lvl) {
  uvn *u = ctx;
  u->log_level = lvl;
}

static void uvn__io_cpu_us(void *ctx, uint64_t *user_us, uint64_t *sys_us) {
  (void)ctx;
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return;
  *user_us = (uint64_t)ru.ru_utime.tv_sec * 1000000u +
             (uint64_t)ru.ru_utime.tv_usec;
  *sys_us = (uint64_t)ru.ru_stime.tv_sec * 1000000u +
            (uint64_t)ru.ru_stime.tv_usec;
}

/* ---- group commit and flushing ---- */

static void uvn__sync_work(uv_work_t *w) {
  uvn *u = w->data;
  u->sync_status = store_sync(u->st);
}

static void uvn__flush(uvn *u);

static void uvn__sync_after(uv_work_t *w, int status) {
  uvn *u = w->data;
  u->syncing = false;
  int rc = status ? KV_EIO : u->sync_status;
  u->wal_syncs += rc == 0;
  if (rc)
    uvn__logf(u, NODE_LOG_ERROR, "fsync of the write-ahead log failed: %s",
              store_errmsg(u->st));
  /* Swap out the list first: callbacks may queue new sync waiters. */
  uvn_tokens run = u->sync_run;
  u->sync_run.v = NULL;
  u->sync_run.len = u->sync_run.cap = 0;
  for (size_t i = 0; i < run.len; i++)
    node_store_done(u->core, run.v[i], rc);
  run.len = 0;
  if (!u->sync_run.v)
    u->sync_run = run;
  else
    free(run.v);
  uvn__flush(u);
}

static void uvn__start_sync(uvn *u) {
  if (u->syncing || u->sync_wait.len == 0)
    return;
  uvn_tokens t = u->sync_run;
  u->sync_run = u->sync_wait;
  u->sync_wait = t;
  u->sync_wait.len = 0;
  u->syncing = true;
  u->sync_work.data = u;
  if (uv_queue_work(u->loop, &u->sync_work, uvn__sync_work,
                    uvn__sync_after)) {
    u->syncing = false;
    for (size_t i = 0; i < u->sync_run.len; i++)
      node_store_done(u->core, u->sync_run.v[i], KV_EIO);
    u->sync_run.len = 0;
  }
}

/* Commits staged writes and runs their callbacks (which may stage more). */
static void uvn__commit(uvn *u) {
  for (int round = 0; round < 8 && store_staged(u->st); round++) {
    int rc = store_commit(u->st);
    if (rc)
      uvn__logf(u, NODE_LOG_ERROR, "storage write failed: %s",
                store_errmsg(u->st));
    uvn_tokens done = u->commit_wait;
    u->commit_wait.v = NULL;
    u->commit_wait.len = u->commit_wait.cap = 0;
    for (size_t i = 0; i < done.len; i++)
      node_store_done(u->core, done.v[i], rc);
    done.len = 0;
    if (!u->commit_wait.v)
      u->commit_wait = done;
    else
      free(done.v);
  }
}

/* Commits staged writes, runs their callbacks, starts an fsync if one is
 * wanted, and writes every connection's output. */
static void uvn__flush(uvn *u) {
  uvn__commit(u);
  uvn__start_sync(u);
  while (u->dirty) {
    uvn_conn *c = u->dirty;
    u->dirty = c->dirty_next;
    c->dirty = false;
    if (c->resp)
      uvr_resume(c);
    uvn__conn_write(c);
  }
}

static void uvn__prepare_cb(uv_prepare_t *h) { uvn__flush(h->data); }
static void uvn__check_cb(uv_check_t *h) { uvn__flush(h->data); }

#define UVN_RECOVER_MS 2000u /* retry a store that refuses writes */

/* While the store refuses writes (a full disk), reads go on; every
 * UVN_RECOVER_MS the database is reopened to see whether writes work
 * again. */
static void uvn__watch_store(uvn *u) {
  if (!store_broken(u->st) || u->syncing)
    return;
  uint64_t now = uv_now(u->loop);
  if (!u->broken_since) {
    u->broken_since = now;
    uvn__logf(u, NODE_LOG_ERROR, "storage refuses writes: %s; reads go on, "
              "writes fail until it recovers", store_errmsg(u->st));
  }
  if (now - u->recover_ms < UVN_RECOVER_MS)
    return;
  u->recover_ms = now;
  if (store_recover(u->st) == 0) {
    uvn__logf(u, NODE_LOG_INFO, "storage accepts writes again after %llu ms",
              (unsigned long long)(now - u->broken_since));
    u->broken_since = 0;
  }
}

static void uvn__tick_cb(uv_timer_t *t) {
  uvn *u = t->data;
  uint64_t now_us = uv_hrtime() / 1000u;
  kv_hist_add(&u->loop_lag, &kv_hist_lag_us,
              now_us > u->tick_due_us ? now_us - u->tick_due_us : 0);
  u->tick_due_us = now_us + u->cfg->tick_ms * 1000u;
  node_tick(u->core);
  uvn__watch_store(u);
}

/* ---- shutdown ---- */

static void uvn__close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (uv_is_closing(h))
    return;
  if (h->type == UV_TCP && h->data && h->data != arg) {
    uvn_conn *c = h->data;
    if (c->u == arg) {
      uvn__conn_close(c);
      return;
    }
  }
  uv_close(h, NULL);
}

static void uvn__stop(uvn *u, const char *why) {
  if (u->stopping)
    return;
  u->stopping = true;
  uvn__logf(u, NODE_LOG_INFO, "%s: stopping", why);
  /* Commit what is staged and answer what can be answered, then close. */
  uvn__flush(u);
  uv_stop(u->loop);
}

static void uvn__signal_cb(uv_signal_t *s, int signum) {
  uvn__stop(s->data, signum == SIGINT ? "SIGINT received"
                                      : "SIGTERM received");
}

/* ---- start ---- */

int uvn__listen(uvn *u, uv_tcp_t *srv, const char *addr, uv_connection_cb cb,
                const char *what) {
  struct sockaddr_storage sa;
  int rc = uvn__parse_addr(addr, &sa);
  if (rc) {
    fprintf(stderr, "kvorumd: bad %s address '%s' (want HOST:PORT)\n", what,
            addr);
    return KV_EINVAL;
  }
  uv_tcp_init(u->loop, srv);
  srv->data = u;
  rc = uv_tcp_bind(srv, (struct sockaddr *)&sa, 0);
  if (!rc)
    rc = uv_listen((uv_stream_t *)srv, UVN_BACKLOG, cb);
  if (rc) {
    fprintf(stderr, "kvorumd: cannot listen for %s on %s: %s\n", what, addr,
            uv_strerror(rc));
    return KV_ECONN;
  }
  return 0;
}

/* Picks this run's incarnation: newer than any earlier one on this data
 * directory, and a wall-clock value on a fresh directory, so a node that
 * lost its data never reuses an old actor id. */
static int uvn__incarnation(uvn *u, uint64_t *out) {
  uint64_t inc = uvn__io_wall(u);
  uint8_t *val = NULL;
  size_t len = 0;
  int rc = store_meta_get(u->st, "incarnation", &val, &len);
  if (rc == 0 && len == 8) {
    uint64_t old = 0;
    for (int i = 0; i < 8; i++)
      old = (old << 8) | val[i];
    if (old + 1 > inc)
      inc = old + 1;
  }
  free(val);
  uint8_t b[8];
  for (int i = 0; i < 8; i++)
    b[i] = (uint8_t)(inc >> (56 - 8 * i));
  rc = store_meta_put(u->st, "incarnation", b, sizeof(b));
  if (rc) {
    fprintf(stderr, "kvorumd: cannot write to %s: %s\n", u->cfg->data_dir,
            store_errmsg(u->st));
    return rc;
  }
  *out = inc;
  return 0;
}

int uvn_run(uvn_config *cfg) {
  uvn *u = calloc(1, sizeof(*u));
  if (!u)
    return KV_ENOMEM;
  int rc = 0;
  u->cfg = cfg;
  u->log_level = cfg->core.log_level;
  u->log_format = cfg->log_format;
  snprintf(u->id, sizeof(u->id), "%s", cfg->core.id);
  if (!cfg->tick_ms)
    cfg->tick_ms = 10;
  if (!cfg->conn_out_max)
    cfg->conn_out_max = 64u * 1024u * 1024u;
  u->conns = calloc(UVN_CONNS_MAX, sizeof(*u->conns));
  u->loop = uv_default_loop();
  if (!u->conns || !u->loop) {
    free(u->conns);
    free(u);
    return KV_ENOMEM;
  }
  u->rng = uvn__io_wall(u) ^ ((uint64_t)uv_os_getpid() << 32);
  u->start_wall_ms = uvn__io_wall(u);

  char err[512];
  bool fresh = false;
  store_config sc = {.dir = cfg->data_dir,
                     .write_buffer_mb = cfg->write_buffer_mb,
                     .object_cache_mb = cfg->cache_mb,
                     .object_cache_off = cfg->cache_mb == 0};
  rc = store_open(&sc, &u->st, &fresh, err, sizeof(err));
  if (rc) {
    fprintf(stderr, "kvorumd: %s\n", err);
    goto out;
  }
  rc = uvn__incarnation(u, &cfg->core.incarnation);
  if (rc)
    goto out;
  uint8_t *ring_saved = NULL;
  size_t ring_len = 0;
  if (store_meta_get(u->st, "ring", &ring_saved, &ring_len) == 0) {
    cfg->core.ring_saved = ring_saved;
    cfg->core.ring_saved_len = ring_len;
  }
  node_io io = {
      .ctx = u,
      .now_ms = uvn__io_now,
      .now_us = uvn__io_now_us,
      .wall_ms = uvn__io_wall,
      .random = uvn__io_random,
      .conn_send = uvn__io_conn_send,
      .conn_close = uvn__io_conn_close,
      .peer_send = uvn__io_peer_send,
      .store_get = uvn__io_store_get,
      .store_put = uvn__io_store_put,
      .store_sync = uvn__io_store_sync,
      .store_del = uvn__io_store_del,
      .store_scan = uvn__io_store_scan,
      .store_drop = uvn__io_store_drop,
      .hint_put = uvn__io_hint_put,
      .hint_get = uvn__io_hint_get,
      .hint_del = uvn__io_hint_del,
      .hint_scan = uvn__io_hint_scan,
      .hint_owner_next = uvn__io_hint_owner_next,
      .shutdown = uvn__io_shutdown,
      .meta_put = uvn__io_meta_put,
      .log = uvn__io_log,
      .log_level_set = uvn__io_log_level_set,
      .cpu_us = uvn__io_cpu_us,
  };
  uv_update_time(u->loop);
  u->core = node_new(&cfg->core, &io, err, sizeof(err));
  free(ring_saved);
  cfg->core.ring_saved = NULL;
  if (!u->core) {
    fprintf(stderr, "kvorumd: %s\n", err);
    rc = KV_EINVAL;
    goto out;
  }
  rc = uvn__listen(u, &u->client_srv, cfg->core.client_addr, uvn__on_client,
                   "clients");
  if (!rc)
    rc = uvn__listen(u, &u->peer_srv, cfg->core.peer_addr, uvn__on_peer,
                     "peers");
  if (!rc && cfg->resp_addr && *cfg->resp_addr) {
    rc = uvn__listen(u, &u->resp_srv, cfg->resp_addr, uvn__on_resp,
                     "Redis clients");
    if (!rc)
      uvn__logf(u, NODE_LOG_INFO, "serving the Redis protocol on %s",
                cfg->resp_addr);
  }
  if (!rc && cfg->http_addr && *cfg->http_addr) {
    rc = uvh_open(u, cfg->http_addr);
    if (!rc)
      uvn__logf(u, NODE_LOG_INFO, "serving HTTP on %s", cfg->http_addr);
  }
  if (rc)
    goto out_loop;
  u->tick_due_us = uv_hrtime() / 1000u + cfg->tick_ms * 1000u;
  uv_timer_init(u->loop, &u->tick);
  u->tick.data = u;
  uv_timer_start(&u->tick, uvn__tick_cb, cfg->tick_ms, cfg->tick_ms);
  uv_prepare_init(u->loop, &u->prepare);
  u->prepare.data = u;
  uv_prepare_start(&u->prepare, uvn__prepare_cb);
  uv_check_init(u->loop, &u->check);
  u->check.data = u;
  uv_check_start(&u->check, uvn__check_cb);
  uv_signal_init(u->loop, &u->sigint);
  u->sigint.data = u;
  uv_signal_start(&u->sigint, uvn__signal_cb, SIGINT);
  uv_signal_init(u->loop, &u->sigterm);
  u->sigterm.data = u;
  uv_signal_start(&u->sigterm, uvn__signal_cb, SIGTERM);
  uvn__logf(u, NODE_LOG_INFO,
            "kvorumd %s listening for clients on %s and peers on %s, data in "
            "%s%s, incarnation %llu",
            u->id, cfg->core.client_addr, cfg->core.peer_addr, cfg->data_dir,
            fresh ? " (new)" : "",
            (unsigned long long)cfg->core.incarnation);

  uv_run(u->loop, UV_RUN_DEFAULT);

out_loop:
  u->stopping = true;
  /* Wait for an fsync in flight, then close every handle. */
  while (u->syncing)
    uv_run(u->loop, UV_RUN_ONCE);
  if (u->st && u->core)
    uvn__flush(u);
  uvh_close(u); /* its sockets first: they are not uvn_conns */
  uv_walk(u->loop, uvn__close_walk, u);
  while (uv_run(u->loop, UV_RUN_NOWAIT))
    ;
  node_free(u->core);
  u->core = NULL;
  if (!rc)
    uvn__logf(u, NODE_LOG_INFO, "stopped cleanly");
out:
  store_close(u->st);
  if (u->loop)
    uv_loop_close(u->loop);
  free(u->commit_wait.v);
  free(u->sync_wait.v);
  free(u->sync_run.v);
  free(u->conns);
  free(u);
  return rc;
}
