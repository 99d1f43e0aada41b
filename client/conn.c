/*
 * conn.c: the connections of a kv_client: dialling, HELLO, output and
 * input buffers, reading and writing, decoding replies, and redialling.
 *
 * A kv_client owns a few connections: conns[0] to the host it connected to
 * and, with routing on, connections to other nodes opened lazily when the
 * ring sends a key there (route.c). Every connection is a non-blocking
 * socket driven by poll() in kv_poll (poll.c). A connection's life:
 *
 *     DOWN --open()--> CONNECTING ---writable---> OPEN --HELLO_OK--> READY
 *       ^                       \                   ^
 *       |                 TLS on +----> TLS -------+ handshake done
 *       |
 *       +----- failure, from any state: refused, reset, EOF, timeout,
 *              bad frame, TLS error, ERROR (EAUTH, EVERSION) for HELLO
 *
 * CONNECTING: kv__conn_open (when TLS is on, also for a connect done at
 * once); -> TLS or OPEN: kv__conn_connected; TLS -> OPEN:
 * kv__conn_handshake; -> READY: kv__dispatch of HELLO_OK; -> DOWN:
 * kv__conn_fail. Invariants: fd >= 0 exactly when not DOWN; tls is set
 * only in TLS, OPEN and READY, and only when the client speaks TLS.
 *
 * HELLO (with the client's credentials, if any) is queued first on every
 * (re)opened connection and requests are pipelined behind it, so nothing
 * waits a round trip; over TLS they wait in the buffer for the handshake.
 * A connection that fails before a single byte was written hands its
 * queued requests to conns[0] (the frames are self-contained; ids are
 * unique per client); otherwise its requests fail with KV_ECONN (never
 * connected) or KV_ECLOSED (connection lost with the request possibly
 * delivered).
 *
 * Output is appended to a per-connection buffer and written with one
 * write() per connection per kv_poll round (over TLS, one SSL_write per
 * record, at most KV__TLS_WRITES_PER_ROUND).
 *
 * Depends on: kvorum_int.h (req.c for the requests on a connection),
 * kvtls.h (TLS), kvproto (wire.h, kv_err.h), POSIX sockets.
 */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kvorum_int.h"
#include "wire.h"

#define KV__AGENT "libkvorum/" "0.1"
#define KV__CONNS_MAX 256 /* connections per client */
#define KV__RETRY_MS 1000 /* a failed node is skipped this long */
#define KV__READ_CHUNK (64u * 1024u)
#define KV__READS_PER_ROUND 16 /* reads per connection per poll */
#define KV__TLS_WRITES_PER_ROUND 16 /* TLS records written per poll */

static const wire_limits kv__limits = {WIRE_FRAME_MAX, WIRE_FRAME_MAX};

/* ---- connections ---- */

void kv__conn_close_fd(kv__conn *k) {
  kvtls_free(k->tls);
  k->tls = NULL;
  k->tls_want = 0;
  if (k->fd >= 0)
    close(k->fd);
  k->fd = -1;
}

/* Splits "host:port" ("[v6]:port" too) into host and port buffers. */
static int kv__split_addr(const char *addr, char *host, size_t hcap,
                          char *port, size_t pcap) {
  const char *colon = strrchr(addr, ':');
  if (!colon || colon == addr || !colon[1])
    return KV_EINVAL;
  const char *h = addr;
  size_t hl = (size_t)(colon - addr);
  if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
    h++;
    hl -= 2;
  }
  if (hl >= hcap || strlen(colon + 1) >= pcap)
    return KV_EINVAL;
  memcpy(host, h, hl);
  host[hl] = '\0';
  strcpy(port, colon + 1);
  return 0;
}

/* Queues a HELLO, with the client's credentials when it has them, as the
 * first frame of k's output. Returns 0 or the error of kv__req_new or
 * wire_encode. */
static int kv__req_encode_hello(kv_client *c, kv__conn *k, uint64_t now) {
  int rc = 0;
  kv__req *q = kv__req_new(c, KV__K_HELLO, k, c->connect_timeout_ms, now, &rc);
  if (!q)
    return rc;
  wire_msg m;
  memset(&m, 0, sizeof(m));
  m.type = WIRE_HELLO;
  m.req_id = q->id;
  m.version = WIRE_PROTOCOL_VERSION;
  m.text.ptr = (const uint8_t *)KV__AGENT;
  m.text.len = strlen(KV__AGENT);
  if (c->user) {
    m.user.ptr = (const uint8_t *)c->user;
    m.user.len = strlen(c->user);
    m.secret.ptr = c->secret ? c->secret : (const uint8_t *)"";
    m.secret.len = c->secret_len;
  }
  rc = wire_encode(&k->out, &m);
  if (rc) {
    kv__req_unlink(c, q);
    kv__req_recycle(c, q);
    return rc;
  }
  k->hello_len = k->out.len;
  return 0;
}

/* Opens a DOWN connection: a non-blocking connect and a queued HELLO.
 * Returns 0 or KV_ECONN/KV_EINVAL/KV_ENOMEM with c->errmsg set. */
int kv__conn_open(kv_client *c, kv__conn *k, uint64_t now) {
  char host[KV__ADDR_MAX], port[16];
  if (kv__split_addr(k->addr, host, sizeof(host), port, sizeof(port))) {
    kv__seterr(c, "bad address \"%s\" (expected host:port)", k->addr);
    return KV_EINVAL;
  }
  struct addrinfo hints, *ai = NULL;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  int g = getaddrinfo(host, port, &hints, &ai);
  if (g) {
    kv__seterr(c, "cannot resolve %s: %s", k->addr, gai_strerror(g));
    k->retry_ms = now + KV__RETRY_MS;
    return KV_ECONN;
  }
  int fd = -1, err = 0;
  bool inprogress = false;
  for (struct addrinfo *a = ai; a; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                a->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
      break;
    if (errno == EINPROGRESS) {
      inprogress = true;
      break;
    }
    err = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(ai);
  if (fd < 0) {
    kv__seterr(c, "cannot connect to %s: %s", k->addr, strerror(err));
    k->retry_ms = now + KV__RETRY_MS;
    return KV_ECONN;
  }
  k->fd = fd;
  /* With TLS a connect done at once still goes through CONNECTING: the
   * handshake starts in kv_poll, once HELLO is queued. */
  k->state = inprogress || c->tls ? KV__CONNECTING : KV__OPEN;
  k->wrote = false;
  k->out.len = 0;
  k->in_len = 0;
  k->node_id[0] = '\0';
  int rc = kv__req_encode_hello(c, k, now);
  if (rc) {
    kv__conn_close_fd(k);
    k->state = KV__DOWN;
    kv__seterr(c, "cannot queue a hello to %s: %s", k->addr,
               kv_strerror(rc));
    return rc;
  }
  return 0;
}

/* True when k can take a request now, (re)opening it if needed. */
bool kv__conn_usable(kv_client *c, kv__conn *k, uint64_t now) {
  if (k->state != KV__DOWN)
    return true;
  if (k != c->conns[0] && now < k->retry_ms)
    return false;
  return kv__conn_open(c, k, now) == 0;
}

kv__conn *kv__conn_new(kv_client *c, const char *addr) {
  if (c->nconns >= KV__CONNS_MAX || strlen(addr) >= KV__ADDR_MAX)
    return NULL;
  if (c->nconns == c->conns_cap) {
    size_t ncap = c->conns_cap ? c->conns_cap * 2 : 4;
    kv__conn **nc = realloc(c->conns, ncap * sizeof(*nc));
    if (!nc)
      return NULL;
    c->conns = nc;
    c->conns_cap = ncap;
  }
  kv__conn *k = calloc(1, sizeof(*k));
  if (!k)
    return NULL;
  k->fd = -1;
  k->state = KV__DOWN;
  strcpy(k->addr, addr);
  kvbuf_init(&k->out);
  c->conns[c->nconns++] = k;
  return k;
}

void kv__conn_free(kv__conn *k) {
  if (!k)
    return;
  kv__conn_close_fd(k);
  kvbuf_free(&k->out);
  free(k->in);
  free(k);
}

/* Takes down k: closes the socket; its requests move to conns[0] when none
 * of k's bytes were written and conns[0] is alive, else they fail with
 * KV_ECONN (never connected) or KV_ECLOSED, with a message saying why. */
void kv__conn_fail(kv_client *c, kv__conn *k, int code, const char *fmt, ...) {
  char why[KV__ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  uint64_t now = kv__now_ms();
  kv__conn_close_fd(k);
  k->fail_code = code;
  k->state = KV__DOWN;
  k->retry_ms = now + KV__RETRY_MS;
  kv__conn *home = c->conns[0];
  bool move = !k->wrote && k != home && home->state != KV__DOWN &&
              k->out.len >= k->hello_len;
  if (move && kvbuf_append(&home->out, k->out.data + k->hello_len,
                           k->out.len - k->hello_len))
    move = false;
  k->out.len = 0;
  k->in_len = 0;
  /* Detach the failing requests first: callbacks may queue new ones. */
  kv__req failed;
  failed.next = failed.prev = &failed;
  for (kv__req *q = c->head.next, *nx; q != &c->head; q = nx) {
    nx = q->next;
    if (q->conn != k)
      continue;
    if (move && q->kind != KV__K_HELLO) {
      k->inflight--;
      home->inflight++;
      q->conn = home;
      continue;
    }
    kv__req_unlink(c, q);
    q->prev = failed.prev;
    q->next = &failed;
    failed.prev->next = q;
    failed.prev = q;
  }
  int rcode = code;
  if (code == KV_ECLOSED && !k->wrote)
    rcode = KV_ECONN;
  snprintf(c->errmsg, sizeof(c->errmsg), "%s", why);
  for (kv__req *q = failed.next, *nx; q != &failed; q = nx) {
    nx = q->next;
    kv__complete(c, q, rcode, why, NULL);
  }
}

/* Records that n bytes of k's output reached the peer. */
static void kv__conn_sent(kv__conn *k, size_t n) {
  k->wrote = true;
  k->hello_len = 0;
  kvbuf_consume(&k->out, n);
}

/* Writes k's pending output over TLS, a record at a time, until the socket
 * is full or KV__TLS_WRITES_PER_ROUND records went. */
static void kv__conn_flush_tls(kv_client *c, kv__conn *k) {
  k->tls_want &= ~POLLIN;
  for (int i = 0; i < KV__TLS_WRITES_PER_ROUND && k->out.len; i++) {
    char why[KVTLS_ERR_MAX];
    long n = kvtls_write(k->tls, k->out.data, k->out.len, why, sizeof(why));
    if (n == KVTLS_WANT_WRITE)
      return; /* POLLOUT is asked while output is pending */
    if (n == KVTLS_WANT_READ) {
      k->tls_want |= POLLIN;
      return;
    }
    if (n < 0) {
      kv__conn_fail(c, k, KV_ECLOSED, "connection to %s failed: %s",
                    k->addr, why);
      return;
    }
    kv__conn_sent(k, (size_t)n);
  }
}

/* Writes k's pending output with one write(). */
void kv__conn_flush(kv_client *c, kv__conn *k) {
  if (k->out.len == 0 || (k->state != KV__OPEN && k->state != KV__READY))
    return;
  if (k->tls) {
    kv__conn_flush_tls(c, k);
    return;
  }
  ssize_t n;
  do
    n = send(k->fd, k->out.data, k->out.len, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return;
    kv__conn_fail(c, k, KV_ECLOSED, "connection to %s failed: %s", k->addr,
                  strerror(errno));
    return;
  }
  if (n > 0)
    kv__conn_sent(k, (size_t)n);
}

/* ---- replies ---- */

static void kv__dispatch(kv_client *c, kv__conn *k, const wire_msg *m) {
  kv__req *q = kv__lookup(c, m->req_id);
  if (!q || q->conn != k)
    return; /* a late reply to a request that timed out */
  char text[WIRE_ERRMSG_MAX + 1];
  if (m->type == WIRE_ERROR) {
    size_t l = m->text.len < WIRE_ERRMSG_MAX ? m->text.len : WIRE_ERRMSG_MAX;
    if (l)
      memcpy(text, m->text.ptr, l);
    text[l] = '\0';
    int code = m->code < 0 ? m->code : KV_EPROTO;
    if (l == 0)
      snprintf(text, sizeof(text), "%s", kv_strerror(code));
    if (q->kind == KV__K_HELLO) {
      kv__req_unlink(c, q);
      kv__req_recycle(c, q);
      /* The caller names the code ("authentication failed: ..."): keep
       * the node's own words after it only once. */
      const char *why = text;
      size_t wl = strlen(kv_strerror(code));
      if (strncmp(why, kv_strerror(code), wl) == 0 && why[wl] == ':')
        why += wl + (why[wl + 1] == ' ' ? 2 : 1);
      if (code == KV_EAUTH && c->user)
        kv__conn_fail(c, k, code, "%s refused the credentials of user %s: %s",
                      k->addr, c->user, why);
      else if (code == KV_EAUTH)
        kv__conn_fail(c, k, code,
                      "%s refused the connection without credentials: %s",
                      k->addr, why);
      else
        kv__conn_fail(c, k, code, "%s refused the connection: %s", k->addr,
                      why);
      return;
    }
    kv__req_unlink(c, q);
    kv__complete(c, q, code, text, NULL);
    return;
  }
  static const uint32_t expect[] = {
      [KV__K_GET] = WIRE_GET_OK,     [KV__K_PUT] = WIRE_PUT_OK,
      [KV__K_DEL] = WIRE_DEL_OK,     [KV__K_ADMIN] = WIRE_ADMIN_OK,
      [KV__K_HELLO] = WIRE_HELLO_OK, [KV__K_RING] = WIRE_ADMIN_OK,
      [KV__K_UPDATE] = WIRE_PUT_OK};
  kv__req_unlink(c, q);
  if (m->type != expect[q->kind]) {
    if (q->kind == KV__K_HELLO) {
      kv__req_recycle(c, q);
      kv__conn_fail(c, k, KV_EPROTO, "%s answered hello with %s", k->addr,
                    wire_type_name(m->type));
      return;
    }
    snprintf(text, sizeof(text), "%s sent a %s reply to a %s request",
             k->addr, wire_type_name(m->type),
             wire_type_name(expect[q->kind] - 1));
    kv__complete(c, q, KV_EPROTO, text, NULL);
    return;
  }
  if (q->kind == KV__K_HELLO) {
    kv__req_recycle(c, q);
    if (m->version != WIRE_PROTOCOL_VERSION) {
      kv__conn_fail(c, k, KV_EVERSION,
                    "%s speaks protocol version %" PRIu64
                    "; this client speaks %d",
                    k->addr, m->version, WIRE_PROTOCOL_VERSION);
      return;
    }
    size_t l = m->text.len < WIRE_NAME_MAX - 1 ? m->text.len : WIRE_NAME_MAX - 1;
    if (l)
      memcpy(k->node_id, m->text.ptr, l);
    k->node_id[l] = '\0';
    k->state = KV__READY;
    return;
  }
  kv__complete(c, q, 0, NULL, m);
}

/* Decodes and dispatches the whole frames in k->in. Returns the buffer
 * size the next frame needs, or 0 when k went down meanwhile. */
static size_t kv__conn_frames(kv_client *c, kv__conn *k) {
  size_t off = 0;
  size_t need = KV__READ_CHUNK;
  while (off < k->in_len) {
    uint32_t blen = 0;
    int rc = wire_frame_check(k->in + off, k->in_len - off, &kv__limits, &blen);
    if (rc == KV_EBUSY) {
      if (blen && WIRE_HEADER_BYTES + (size_t)blen > need)
        need = WIRE_HEADER_BYTES + (size_t)blen;
      break;
    }
    if (rc) {
      kv__conn_fail(c, k, KV_EPROTO, "%s sent a frame over %u bytes%s",
                    k->addr, (unsigned)WIRE_FRAME_MAX,
                    k->state == KV__OPEN && !k->tls
                        ? " in answer to hello (does it want TLS?)"
                        : "");
      return 0;
    }
    const uint8_t *body = k->in + off + WIRE_HEADER_BYTES;
    off += WIRE_HEADER_BYTES + (size_t)blen;
    wire_msg m;
    memset(&m, 0, sizeof(m));
    rc = wire_decode(body, blen, &kv__limits, &m);
    if (rc) {
      kv__req *q = m.req_id ? kv__lookup(c, m.req_id) : NULL;
      if (q && q->conn == k && q->kind != KV__K_HELLO) {
        char text[KV__ERRMSG_MAX];
        snprintf(text, sizeof(text), "%s sent a malformed reply (%s)",
                 k->addr, kv_strerror(rc));
        kv__req_unlink(c, q);
        kv__complete(c, q, KV_EPROTO, text, NULL);
      }
      continue;
    }
    kv__dispatch(c, k, &m);
    if (k->state == KV__DOWN)
      return 0;
  }
  if (off) {
    memmove(k->in, k->in + off, k->in_len - off);
    k->in_len -= off;
  }
  return need;
}

/* The message of a connection k's peer closed. */
static void kv__conn_eof(kv_client *c, kv__conn *k) {
  if (k->state == KV__OPEN && !k->tls)
    kv__conn_fail(c, k, KV_ECLOSED,
                  "%s closed the connection before answering hello (does it "
                  "want TLS?)",
                  k->addr);
  else
    kv__conn_fail(c, k, KV_ECLOSED, "%s closed the connection", k->addr);
}

/* Reads up to room bytes of k over TLS into buf. Returns the count, 0 when
 * it must wait (tls_want says for what), or -1 when k went down. */
static long kv__conn_recv_tls(kv_client *c, kv__conn *k, uint8_t *buf,
                              size_t room) {
  char why[KVTLS_ERR_MAX];
  long n = kvtls_read(k->tls, buf, room, why, sizeof(why));
  k->tls_want &= ~POLLOUT;
  if (n > 0)
    return n;
  if (n == KVTLS_WANT_READ)
    return 0;
  if (n == KVTLS_WANT_WRITE) {
    k->tls_want |= POLLOUT;
    return 0;
  }
  if (n == KVTLS_EOF)
    kv__conn_eof(c, k);
  else
    kv__conn_fail(c, k, KV_ECLOSED, "connection to %s failed: %s", k->addr,
                  why);
  return -1;
}

/* Reads what k has and handles the frames in it. */
void kv__conn_read(kv_client *c, kv__conn *k) {
  size_t need = KV__READ_CHUNK;
  for (int i = 0; i < KV__READS_PER_ROUND; i++) {
    size_t want = k->in_len + KV__READ_CHUNK;
    if (need > want)
      want = need;
    if (k->in_cap < want) {
      uint8_t *ni = realloc(k->in, want);
      if (!ni) {
        kv__conn_fail(c, k, KV_ENOMEM, "out of memory reading from %s",
                      k->addr);
        return;
      }
      k->in = ni;
      k->in_cap = want;
    }
    size_t room = k->in_cap - k->in_len;
    if (k->tls) {
      /* A TLS read gives one record: go on until it must wait. */
      long t = kv__conn_recv_tls(c, k, k->in + k->in_len, room);
      if (t <= 0)
        return;
      k->in_len += (size_t)t;
      need = kv__conn_frames(c, k);
      if (need == 0)
        return;
      continue;
    }
    ssize_t n = read(k->fd, k->in + k->in_len, room);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return;
      kv__conn_fail(c, k, KV_ECLOSED, "connection to %s failed: %s", k->addr,
                    strerror(errno));
      return;
    }
    if (n == 0) {
      kv__conn_eof(c, k);
      return;
    }
    k->in_len += (size_t)n;
    need = kv__conn_frames(c, k);
    if (need == 0 || (size_t)n < room)
      return;
  }
}

/* Completes a non-blocking connect. */
void kv__conn_connected(kv_client *c, kv__conn *k) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
    err = errno;
  if (err) {
    kv__conn_fail(c, k, KV_ECONN, "cannot connect to %s: %s", k->addr,
                  strerror(err));
    return;
  }
  if (!c->tls) {
    k->state = KV__OPEN;
    return;
  }
  char why[KVTLS_ERR_MAX];
  k->tls = kvtls_new(c->tls, k->fd, why, sizeof(why));
  if (!k->tls) {
    kv__conn_fail(c, k, KV_ENOMEM, "TLS with %s: %s", k->addr, why);
    return;
  }
  k->state = KV__TLS;
  kv__conn_handshake(c, k);
}

/* Advances k's TLS handshake: k stays TLS, becomes OPEN or goes down. */
void kv__conn_handshake(kv_client *c, kv__conn *k) {
  char why[KVTLS_ERR_MAX];
  int r = kvtls_handshake(k->tls, why, sizeof(why));
  if (r == KVTLS_WANT_READ || r == KVTLS_WANT_WRITE) {
    k->tls_want = r == KVTLS_WANT_READ ? POLLIN : POLLOUT;
    return;
  }
  if (r < 0) {
    kv__conn_fail(c, k, KV_ECONN, "TLS handshake with %s failed: %s",
                  k->addr, why);
    return;
  }
  k->tls_want = 0;
  k->state = KV__OPEN;
  kv__conn_flush(c, k);
}

/* The poll() events k waits for. */
short kv__conn_events(const kv__conn *k) {
  if (k->fd < 0)
    return 0;
  if (k->state == KV__CONNECTING)
    return POLLIN | POLLOUT;
  if (k->state == KV__TLS)
    return (short)(k->tls_want ? k->tls_want : POLLIN);
  return (short)(POLLIN | (k->out.len || (k->tls_want & POLLOUT) ? POLLOUT
                                                                  : 0));
}

/* Runs what the events ev of k's socket allow. */
void kv__conn_io(kv_client *c, kv__conn *k, short ev) {
  if (k->state == KV__CONNECTING) {
    if (ev & (POLLOUT | POLLERR | POLLHUP)) {
      kv__conn_connected(c, k);
      if (k->state == KV__OPEN)
        kv__conn_flush(c, k);
    }
    return;
  }
  if (k->state == KV__TLS) {
    kv__conn_handshake(c, k);
    return;
  }
  if (k->tls) {
    /* TLS reads may wait for the socket to be writable and writes for it
     * to be readable: on any event, try both. */
    if (k->out.len)
      kv__conn_flush(c, k);
    if (k->fd >= 0)
      kv__conn_read(c, k);
    return;
  }
  if ((ev & POLLOUT) && k->out.len)
    kv__conn_flush(c, k);
  if (k->fd >= 0 && (ev & (POLLIN | POLLERR | POLLHUP)))
    kv__conn_read(c, k);
}
