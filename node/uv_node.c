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
#include "uv_auth.h"
#include "uv_http.h"
#include "uv_resp.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
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

uvn_conn *uvn__conn_get(uvn *u, uint64_t id) {
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
  uvt_conn_free(c->tls);
  kvbuf_free(&c->tin);
  kvbuf_free(&c->tout);
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
    /* --peer-tls both: a TLS dial whose handshake never finished tries
     * plain next, a plain one that never got an answer tries TLS. */
    if (c->connected && u->cfg->peer_tls == UVT_BOTH) {
      if (c->tls && !uvt_conn_ready(c->tls))
        c->peer->dial_plain = true;
      else if (!c->tls && !c->rx)
        c->peer->dial_plain = false;
    }
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
  if (c->out.len || c->tout.len)
    uvn__conn_write(c);
  else if (c->close_after_write)
    uvn__conn_close(c);
}

/* Hands c's queued output to the kernel: try_write first, uv_write for
 * what does not fit. With TLS, the output is sealed into c->tout first
 * (once the handshake is done) and tout is what goes out. */
static void uvn__conn_write(uvn_conn *c) {
  if (c->tls && !c->closing && c->out.len && uvt_conn_ready(c->tls)) {
    if (uvt_conn_seal(c->tls, c->out.data, c->out.len, &c->tout)) {
      uvn__conn_close(c);
      return;
    }
    c->out.len = 0;
  }
  kvbuf *q = c->tls ? &c->tout : &c->out;
  if (c->writing || c->closing || !c->connected || q->len == 0) {
    if (!c->writing && !c->closing && c->close_after_write &&
        q->len == 0 && c->out.len == 0)
      uvn__conn_close(c);
    return;
  }
  uv_buf_t b = uv_buf_init((char *)q->data, (unsigned)q->len);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n == UV_EAGAIN)
    n = 0;
  if (n < 0) {
    uvn__conn_close(c);
    return;
  }
  c->u->net[c->port].bytes_out += (uint64_t)n;
  if ((size_t)n == q->len) {
    q->len = 0;
    if (c->close_after_write)
      uvn__conn_close(c);
    return;
  }
  kvbuf_consume(q, (size_t)n);
  /* Swap the rest into wbuf and write it asynchronously. */
  kvbuf tmp = c->wbuf;
  c->wbuf = *q;
  *q = tmp;
  q->len = 0;
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
  if (c->out.len + c->wbuf.len + c->tout.len + len >
          c->u->cfg->conn_out_max ||
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
  kvbuf *b = c->tls ? &c->tin : &c->in;
  (void)hint;
  if (kvbuf_reserve(b, UVN_READ_CHUNK)) {
    buf->base = NULL;
    buf->len = 0;
    return;
  }
  buf->base = (char *)b->data + b->len;
  buf->len = b->cap - b->len;
}

/* A TLS handshake failed or a peer's certificate was refused: counted,
 * and logged at most once a second (a peer redials every 250 ms). */
static void uvn__tls_refused(uvn_conn *c, const char *why) {
  uvn *u = c->u;
  u->tls_failures++;
  uint64_t now = uv_now(u->loop);
  if (u->tls_logged_ms && now - u->tls_logged_ms < 1000)
    return;
  u->tls_logged_ms = now;
  struct sockaddr_storage sa;
  int len = sizeof(sa);
  char host[64] = "?";
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &len) == 0)
    uv_ip_name((struct sockaddr *)&sa, host, sizeof(host));
  uvn__logf(u, NODE_LOG_WARN, "refusing a %s connection %s %s: %s",
            c->port == UVN_PORT_PEER_IN || c->port == UVN_PORT_PEER_OUT
                ? "peer"
                : "client",
            c->kind == NODE_CONN_PEER_OUT ? "to" : "from",
            c->peer ? c->peer->addr : host, why);
}

/* The TLS role of c. */
static uvt_role uvn__tls_role(const uvn_conn *c) {
  return c->kind == NODE_CONN_PEER_OUT  ? UVT_DIAL
         : c->kind == NODE_CONN_PEER_IN ? UVT_ACCEPT_PEER
                                        : UVT_ACCEPT_CLIENT;
}

/* A connection this node dialled over TLS, once its handshake is done:
 * the certificate must be a node's, and when the address belongs to a
 * known member, it must name that member (a node's certificate that
 * another node's address answers with is refused, as a PEER_HELLO that
 * claims another node's id is on the accepting side). An address no
 * member has yet (a seed) takes any node's certificate. Returns false
 * (c closing) when it is refused. */
static bool uvn__dialled_named(uvn_conn *c) {
  if (c->kind != NODE_CONN_PEER_OUT || c->peer_checked || !c->peer ||
      !uvt_conn_ready(c->tls))
    return true;
  c->peer_checked = true;
  const gossip *g = node_gossip(c->u->core);
  const gossip_member *owner = NULL;
  for (size_t i = 0, n = gossip_member_count(g); i < n && !owner; i++) {
    const gossip_member *m = gossip_member_at(g, i);
    if (m && m->status != GOSSIP_REMOVED &&
        strcmp(m->peer_addr, c->peer->addr) == 0)
      owner = m;
  }
  char subject[128], why[320];
  uvt_conn_subject(c->tls, subject, sizeof(subject));
  if (!uvt_conn_is_node(c->tls))
    snprintf(why, sizeof(why),
             "its certificate (%s) is not a node's: it lacks the serverAuth "
             "extended key usage",
             subject);
  else if (owner && !uvt_conn_names(c->tls, owner->id))
    snprintf(why, sizeof(why),
             "%s is node %s's address, but the certificate there names %s",
             c->peer->addr, owner->id, subject);
  else
    return true;
  uvn__tls_refused(c, why);
  c->peer->failed_ms = uv_now(c->u->loop); /* redial after UVN_RECONNECT_MS */
  c->out.len = 0;
  uvn__conn_close(c);
  return false;
}

/* Before frames are read: a port that takes both tells TLS by its first
 * byte (a TLS handshake record is 0x16; no native frame, RESP command or
 * HTTP request starts so), and TLS turns what arrived in c->tin into
 * plaintext in c->in. Returns false when c was closed. */
static bool uvn__tls_in(uvn_conn *c) {
  if (c->sniff) {
    c->sniff = false;
    if (c->in.data[0] != 0x16)
      return true;
    c->tls = uvt_conn_new(c->u->tls, uvn__tls_role(c));
    if (!c->tls) {
      uvn__conn_close(c);
      return false;
    }
    kvbuf tmp = c->tin; /* what was read is ciphertext */
    c->tin = c->in;
    c->in = tmp;
  }
  if (!c->tls)
    return true;
  char err[256];
  int rc = uvt_conn_feed(c->tls, c->tin.data, c->tin.len, &c->in, &c->tout,
                         err, sizeof(err));
  c->tin.len = 0;
  if (rc) {
    if (rc == KV_ECONN)
      uvn__tls_refused(c, err);
    /* Send the alert that says why (in c->tout), then close; what waited
     * for the handshake is never sent. */
    c->out.len = 0;
    c->close_after_write = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uvn__mark_dirty(c);
    return false;
  }
  if (!uvn__dialled_named(c))
    return false;
  uvn__mark_dirty(c); /* handshake bytes, or output waiting for it */
  return true;
}

/* A peer's PEER_HELLO over TLS must come from a certificate that names
 * the node id it claims. Returns false (c closed) when it does not. */
static bool uvn__peer_named(uvn_conn *c, const uint8_t *body, size_t len) {
  wire_msg m;
  if (wire_decode(body, len, &wire_limits_default, &m) ||
      m.type != WIRE_PEER_HELLO)
    return true; /* the core answers what is not a hello */
  char id[RING_NAME_MAX];
  snprintf(id, sizeof(id), "%.*s", (int)m.text.len, (const char *)m.text.ptr);
  if (uvt_conn_names(c->tls, id) && uvt_conn_is_node(c->tls))
    return true;
  char subject[128], why[320];
  uvt_conn_subject(c->tls, subject, sizeof(subject));
  if (uvt_conn_names(c->tls, id))
    snprintf(why, sizeof(why),
             "its certificate (%s) is not a node's: it lacks the serverAuth "
             "extended key usage",
             subject);
  else
    snprintf(why, sizeof(why),
             "it says it is node %s but its certificate names %s", id,
             subject);
  uvn__tls_refused(c, why);
  uvn__conn_close(c);
  return false;
}

/* Sends an ERROR on c (req_id id). */
static void uvn__error(uvn_conn *c, uint64_t id, int code, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));
static void uvn__error(uvn_conn *c, uint64_t id, int code, const char *fmt,
                       ...) {
  char msg[WIRE_ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  kvbuf e;
  kvbuf_init(&e);
  wire_encode_error(&e, id, code, "%s", msg);
  uvn__queue(c, e.data, e.len);
  kvbuf_free(&e);
}

static void uvn__frames(uvn_conn *c);

/* The answer to a HELLO's credentials (uva_check). */
static void uvn__login_done(uvn *u, uint64_t conn, uint64_t req_id,
                            auth_role role) {
  uvn_conn *c = uvn__conn_get(u, conn);
  if (!c)
    return;
  c->auth_wait = false;
  c->role = (uint8_t)role;
  if (role == AUTH_ROLE_NONE) {
    /* The hello waits at the head of c->in: drop it and say why. */
    uint32_t body_len = 0;
    wire_frame_check(c->in.data, c->in.len, &wire_limits_default, &body_len);
    wire_msg m;
    kv_slice user = {(const uint8_t *)"", 0};
    if (wire_decode(c->in.data + WIRE_HEADER_BYTES, body_len,
                    &wire_limits_default, &m) == 0 && m.user.ptr)
      user = m.user;
    uva_failed(u, "the native protocol", user);
    kvbuf_consume(&c->in, WIRE_HEADER_BYTES + body_len);
    c->auth_fails++;
    uvn__error(c, req_id, KV_EAUTH,
               "authentication failed: wrong user or password%s",
               c->auth_fails >= UVA_FAILS_MAX ? "; closing the connection"
                                              : "");
    if (c->auth_fails >= UVA_FAILS_MAX) {
      c->close_after_write = true;
      uvn__mark_dirty(c);
      return;
    }
  }
  uvn__frames(c);
}

enum { UVN_AUTH_PASS, UVN_AUTH_SKIP, UVN_AUTH_WAIT };

/* --auth-file on a client connection: a HELLO must carry credentials
 * that pass (checked off the loop: frames wait meanwhile), and each later
 * frame must be one the user's role allows. Returns UVN_AUTH_*. */
static int uvn__auth_frame(uvn_conn *c, const uint8_t *body, size_t len) {
  uint32_t type;
  uint64_t id;
  wire_msg m;
  if (wire_peek(body, len, &type, &id))
    return UVN_AUTH_PASS; /* the core answers what it cannot read */
  if (!c->greeted) {
    if (type != WIRE_HELLO || c->role != AUTH_ROLE_NONE)
      return UVN_AUTH_PASS;
    if (c->auth_wait)
      return UVN_AUTH_WAIT;
    if (wire_decode(body, len, &wire_limits_default, &m))
      return UVN_AUTH_PASS;
    if (!m.user.ptr) {
      uvn__error(c, id, KV_EAUTH,
                 "this node requires a user and password (--auth-file): "
                 "give them in HELLO (kvorum --user USER, with the "
                 "password in KVORUM_PASSWORD)");
      c->close_after_write = true;
      uvn__mark_dirty(c);
      return UVN_AUTH_SKIP;
    }
    size_t ul = m.user.len < sizeof(c->user) - 1 ? m.user.len
                                                 : sizeof(c->user) - 1;
    memcpy(c->user, m.user.ptr, ul);
    c->user[ul] = '\0';
    int r = uva_check(c->u, m.user, m.secret, uvn__login_done, c->id, id);
    if (r > 0) {
      c->role = (uint8_t)r;
      return UVN_AUTH_PASS;
    }
    if (r == UVA_PENDING) {
      c->auth_wait = true;
      return UVN_AUTH_WAIT;
    }
    uvn__login_done(c->u, c->id, id, AUTH_ROLE_NONE);
    return UVN_AUTH_WAIT; /* uvn__login_done went on with c->in */
  }
  kv_slice cmd = {NULL, 0};
  if (type == WIRE_ADMIN && wire_decode(body, len, &wire_limits_default,
                                        &m) == 0)
    cmd = m.text;
  if (auth_allows((auth_role)c->role, uva_native_op(type, cmd)))
    return UVN_AUTH_PASS;
  uvn__error(c, id, KV_EPERM, "user %s (role %s) may not send %s%s%.*s",
             c->user, auth_role_name((auth_role)c->role),
             wire_type_name(type), cmd.len ? " " : "",
             (int)(cmd.len > 32 ? 32 : cmd.len), (const char *)cmd.ptr);
  return UVN_AUTH_SKIP;
}

/* Hands the whole frames in c->in to the core. */
static void uvn__frames(uvn_conn *c) {
  uvn *u = c->u;
  const wire_limits *lim = &wire_limits_default;
  wire_limits mine = *lim;
  if (u->cfg->core.limits.value_max)
    mine.value_max = u->cfg->core.limits.value_max;
  bool gate = u->auth && c->kind == NODE_CONN_CLIENT;
  size_t off = 0;
  while (!c->closing && !c->auth_wait) {
    uint32_t body_len;
    int rc = wire_frame_check(c->in.data + off, c->in.len - off, &mine,
                              &body_len);
    if (rc == KV_EBUSY)
      break;
    if (rc) {
      /* The framing itself is broken: say why and close. */
      uvn__error(c, 0, KV_ETOOBIG,
                 "frame of %u bytes is larger than the limit of %u bytes; "
                 "closing the connection",
                 body_len, mine.frame_max);
      c->close_after_write = true;
      uvn__mark_dirty(c);
      off = c->in.len;
      break;
    }
    const uint8_t *body = c->in.data + off + WIRE_HEADER_BYTES;
    if (c->tls && c->kind == NODE_CONN_PEER_IN && !c->greeted &&
        !uvn__peer_named(c, body, body_len))
      return;
    if (gate) {
      if (off) { /* the check may consume c->in from its head */
        kvbuf_consume(&c->in, off);
        off = 0;
        body = c->in.data + WIRE_HEADER_BYTES;
      }
      int g = uvn__auth_frame(c, body, body_len);
      if (g == UVN_AUTH_WAIT)
        return;
      if (g == UVN_AUTH_SKIP) {
        off += WIRE_HEADER_BYTES + body_len;
        continue;
      }
    }
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
  (c->tls ? &c->tin : &c->in)->len += (size_t)nread;
  u->net[c->port].bytes_in += (uint64_t)nread;
  c->rx = true;
  if ((c->sniff || c->tls) && !uvn__tls_in(c))
    return;
  if (!c->in.len)
    return; /* TLS handshake bytes only: nothing to parse */
  if (c->resp)
    uvr_on_read(c);
  else
    uvn__frames(c);
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
  uvt_mode mode = c->kind == NODE_CONN_PEER_IN ? u->cfg->peer_tls
                                               : u->cfg->client_tls;
  c->sniff = mode == UVT_BOTH;
  if (mode == UVT_TLS && !(c->tls = uvt_conn_new(u->tls, uvn__tls_role(c)))) {
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
  if (c->dial_tls) {
    c->tls = uvt_conn_new(c->u->tls, UVT_DIAL);
    if (!c->tls || uvt_conn_start(c->tls, &c->tout)) {
      uvn__conn_close(c);
      return;
    }
  }
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
  c->dial_tls = u->cfg->peer_tls == UVT_TLS ||
                (u->cfg->peer_tls == UVT_BOTH && !p->dial_plain);
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

/* ---- backup and compaction, on the thread pool ---- */

static void uvn__flush(uvn *u);

static void uvn__job_work(uv_work_t *w) {
  uvn_job *j = w->data;
  uint64_t t0 = uv_hrtime();
  j->rc = j->backup ? store_checkpoint(j->u->st, j->dir, &j->bytes, j->err,
                                       sizeof(j->err))
                    : store_compact(j->u->st, j->err, sizeof(j->err));
  j->took_us = (uv_hrtime() - t0) / 1000u;
}

/* Answers the job's ADMIN request and frees it. */
static void uvn__job_after(uv_work_t *w, int status) {
  uvn_job *j = w->data;
  uvn *u = j->u;
  if (status && !j->rc) {
    j->rc = KV_EIO;
    snprintf(j->err, sizeof(j->err), "the job was cancelled");
  }
  kvbuf b;
  kvbuf_init(&b);
  uint64_t ms = (j->took_us + 500) / 1000;
  if (j->rc) {
    uvn__logf(u, NODE_LOG_ERROR, "%s failed: %s",
              j->backup ? "backup" : "compaction", j->err);
    wire_encode_error(&b, j->req_id, j->rc, "%s", j->err);
  } else {
    msgpack_packer pk;
    size_t start;
    wire_begin(&b, &pk, &start, WIRE_ADMIN_OK, j->req_id, 1);
    if (j->backup) {
      uvn__logf(u, NODE_LOG_INFO,
                "backup of %llu bytes at sequence %llu in %s, %llu ms",
                (unsigned long long)j->bytes,
                (unsigned long long)j->sequence, j->dir,
                (unsigned long long)ms);
      msgpack_pack_map(&pk, 5);
      mp_pack_cstr(&pk, "node");
      mp_pack_cstr(&pk, u->id);
      mp_pack_cstr(&pk, "dir");
      mp_pack_cstr(&pk, j->dir);
      mp_pack_cstr(&pk, "bytes");
      msgpack_pack_uint64(&pk, j->bytes);
      mp_pack_cstr(&pk, "sequence");
      msgpack_pack_uint64(&pk, j->sequence);
      mp_pack_cstr(&pk, "ms");
      msgpack_pack_uint64(&pk, ms);
    } else {
      store_metrics m;
      store_metrics_get(u->st, &m);
      uvn__logf(u, NODE_LOG_INFO,
                "compaction done in %llu ms: %llu bytes of tables, %llu "
                "before",
                (unsigned long long)ms,
                (unsigned long long)m.live_sst_bytes,
                (unsigned long long)j->bytes);
      msgpack_pack_map(&pk, 4);
      mp_pack_cstr(&pk, "node");
      mp_pack_cstr(&pk, u->id);
      mp_pack_cstr(&pk, "sst_bytes_before");
      msgpack_pack_uint64(&pk, j->bytes);
      mp_pack_cstr(&pk, "sst_bytes_after");
      msgpack_pack_uint64(&pk, m.live_sst_bytes);
      mp_pack_cstr(&pk, "ms");
      msgpack_pack_uint64(&pk, ms);
    }
    wire_end(&b, start);
  }
  if (!b.oom && b.len)
    uvn__io_conn_send(u, j->conn, b.data, b.len);
  kvbuf_free(&b);
  if (j->backup)
    u->backup = NULL;
  else
    u->compact = NULL;
  free(j);
  uvn__flush(u);
}

/* Starts j on the thread pool. Returns 0 or an error (j freed). */
static int uvn__job_start(uvn *u, uvn_job *j, char *err, size_t errlen) {
  j->u = u;
  j->work.data = j;
  j->start_us = uv_hrtime() / 1000u;
  if (uv_queue_work(u->loop, &j->work, uvn__job_work, uvn__job_after)) {
    free(j);
    snprintf(err, errlen, "cannot start the job");
    return KV_EIO;
  }
  if (j->backup)
    u->backup = j;
  else
    u->compact = j;
  return 0;
}

/* A new job of the kind asked for (conn, req_id), or NULL with *rc and
 * the reason in err: the node stops, one runs already, no memory. */
static uvn_job *uvn__job_new(uvn *u, bool backup, uint64_t conn,
                             uint64_t req_id, int *rc, char *err,
                             size_t errlen) {
  *rc = KV_ESTATE;
  if (u->stopping) {
    snprintf(err, errlen, "%s is stopping", u->id);
    return NULL;
  }
  *rc = KV_EBUSY;
  if (backup ? u->backup != NULL : u->compact != NULL) {
    snprintf(err, errlen, "a %s of %s is already running",
             backup ? "backup" : "compaction", u->id);
    return NULL;
  }
  *rc = KV_ENOMEM;
  uvn_job *j = calloc(1, sizeof(*j));
  if (!j)
    return NULL;
  j->backup = backup;
  j->conn = conn;
  j->req_id = req_id;
  return j;
}

/* ADMIN backup: a RocksDB checkpoint in DIR/NODE_ID, made on the thread
 * pool (a flush and a directory of hard links: milliseconds for a small
 * database, longer for big memtables or a copy across file systems), so
 * the loop goes on serving meanwhile. Every write committed before it
 * starts is in it: those acknowledged to a client included. */
static int uvn__io_backup(void *ctx, uint64_t conn, uint64_t req_id,
                          const char *dir, char *err, size_t errlen) {
  uvn *u = ctx;
  int rc;
  uvn_job *j = uvn__job_new(u, true, conn, req_id, &rc, err, errlen);
  if (!j)
    return rc;
  size_t dl = strlen(dir);
  while (dl > 1 && dir[dl - 1] == '/')
    dl--;
  if ((size_t)snprintf(j->dir, sizeof(j->dir), "%.*s/%s", (int)dl, dir,
                       u->id) >= sizeof(j->dir)) {
    free(j);
    snprintf(err, errlen, "the backup directory is too long");
    return KV_EINVAL;
  }
  struct stat st;
  if (lstat(j->dir, &st) == 0) {
    snprintf(err, errlen, "%s exists already: back up into a new directory "
             "(a backup never overwrites one)", j->dir);
    free(j);
    return KV_EINVAL;
  }
  uvn__commit(u); /* what the node acknowledged is in the store */
  j->sequence = store_sequence(u->st);
  uvn__logf(u, NODE_LOG_INFO, "backup into %s started at sequence %llu",
            j->dir, (unsigned long long)j->sequence);
  return uvn__job_start(u, j, err, errlen);
}

/* ADMIN compact: a manual compaction of every column family, on the
 * thread pool (it takes as long as rewriting the tables). */
static int uvn__io_compact(void *ctx, uint64_t conn, uint64_t req_id,
                           char *err, size_t errlen) {
  uvn *u = ctx;
  int rc;
  uvn_job *j = uvn__job_new(u, false, conn, req_id, &rc, err, errlen);
  if (!j)
    return rc;
  uvn__commit(u);
  store_metrics m;
  store_metrics_get(u->st, &m);
  j->bytes = m.live_sst_bytes;
  uvn__logf(u, NODE_LOG_INFO, "compaction started: %llu bytes of tables",
            (unsigned long long)j->bytes);
  return uvn__job_start(u, j, err, errlen);
}

/* ---- readiness and systemd ---- */

const char *uvn__not_ready(uvn *u) {
  if (u->stopping)
    return "stopping";
  if (!u->st || store_broken(u->st))
    return "storage refuses writes";
  const gossip *g = node_gossip(u->core);
  const gossip_member *self = gossip_find(g, u->id);
  if (self && self->status == GOSSIP_LEAVING)
    return "leaving the cluster";
  if (ring_node_index(gossip_ring(g), u->id) < 0)
    return "not in the ring yet";
  return NULL;
}

/* READY=1 once ready (uvn__not_ready), and the watchdog (uv_notify.h). */
static void uvn__notify_tick(uvn *u) {
  if (!uvsd_active(&u->notify))
    return;
  const char *why = u->notify.ready ? NULL : uvn__not_ready(u);
  char status[UVSD_STATUS_MAX] = "";
  if (!u->notify.ready && !why)
    snprintf(status, sizeof(status),
             "serving clients on %s: ring version %llu, %zu members",
             u->cfg->core.client_addr,
             (unsigned long long)ring_version(
                 gossip_ring(node_gossip(u->core))),
             gossip_member_count(node_gossip(u->core)));
  uvsd_tick(&u->notify, uv_now(u->loop), why, status);
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
  if (!store_broken(u->st) || u->syncing || u->backup || u->compact)
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
  uvn__notify_tick(u);
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
  uvsd_stopping(&u->notify, why);
  if (u->compact)
    store_compact_cancel(u->st); /* or the stop waits for it */
  /* Commit what is staged and answer what can be answered, then close. */
  uvn__flush(u);
  uv_stop(u->loop);
}

/* SIGHUP: reread the certificates (open connections keep theirs) and
 * the users (logged-in connections keep their role). */
static void uvn__sighup_cb(uv_signal_t *s, int signum) {
  uvn *u = s->data;
  char err[512];
  (void)signum;
  if (!u->tls && !u->auth)
    uvn__logf(u, NODE_LOG_INFO, "SIGHUP: nothing to reload");
  if (u->tls && uvt_ctx_reload(u->tls, err, sizeof(err))) {
    uvn__logf(u, NODE_LOG_ERROR,
              "SIGHUP: keeping the old certificates: %s", err);
  } else if (u->tls) {
    uvh_tls_reloaded(u);
    uvn__logf(u, NODE_LOG_INFO, "SIGHUP: certificates reloaded from %s",
              u->cfg->tls_cert);
  }
  if (u->auth && uva_reload(u, err, sizeof(err)))
    uvn__logf(u, NODE_LOG_ERROR, "SIGHUP: keeping the old users: %s", err);
  else if (u->auth)
    uvn__logf(u, NODE_LOG_INFO, "SIGHUP: users reloaded from %s",
              u->cfg->auth_file);
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
  u->notify.fd = -1; /* not notifying until uvsd_open */
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
  if (cfg->tls_cert) {
    rc = uvt_ctx_new(cfg->tls_cert, cfg->tls_key, cfg->tls_ca, &u->tls, err,
                     sizeof(err));
    if (rc) {
      fprintf(stderr, "kvorumd: %s\n", err);
      goto out;
    }
  }
  if (cfg->auth_file && (rc = uva_open(u, cfg->auth_file)))
    goto out;
  uint8_t *ring_saved = NULL;
  size_t ring_len = 0;
  if (store_meta_get(u->st, "ring", &ring_saved, &ring_len) == 0) {
    cfg->core.ring_saved = ring_saved;
    cfg->core.ring_saved_len = ring_len;
  }
  uint8_t *members_saved = NULL;
  size_t members_len = 0;
  if (store_meta_get(u->st, "members", &members_saved, &members_len) == 0) {
    cfg->core.members_saved = members_saved;
    cfg->core.members_saved_len = members_len;
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
      .backup = uvn__io_backup,
      .compact = uvn__io_compact,
  };
  uv_update_time(u->loop);
  u->core = node_new(&cfg->core, &io, err, sizeof(err));
  free(ring_saved);
  cfg->core.ring_saved = NULL;
  free(members_saved);
  cfg->core.members_saved = NULL;
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
  uv_signal_init(u->loop, &u->sighup);
  u->sighup.data = u;
  uv_signal_start(&u->sighup, uvn__sighup_cb, SIGHUP);
  uvn__logf(u, NODE_LOG_INFO,
            "kvorumd %s (version %s%s%s) listening for clients on %s and "
            "peers on %s, data in %s%s, incarnation %llu",
            u->id, KVORUM_VERSION, cfg->config_file ? ", settings from " : "",
            cfg->config_file ? cfg->config_file : "", cfg->core.client_addr,
            cfg->core.peer_addr, cfg->data_dir, fresh ? " (new)" : "",
            (unsigned long long)cfg->core.incarnation);
  if (uvsd_open(&u->notify, err, sizeof(err)))
    uvn__logf(u, NODE_LOG_WARN, "not notifying systemd: %s", err);
  else if (uvsd_active(&u->notify))
    uvn__logf(u, NODE_LOG_INFO, "notifying systemd of readiness%s",
              u->notify.watchdog_ms ? " and the watchdog" : "");

  uv_run(u->loop, UV_RUN_DEFAULT);

out_loop:
  u->stopping = true;
  /* Wait for an fsync, a backup or a compaction in flight, then close
   * every handle. */
  if (u->compact)
    store_compact_cancel(u->st);
  while (u->syncing || u->backup || u->compact)
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
  uvsd_close(&u->notify);
  uva_close(u);
  uvt_ctx_free(u->tls);
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
