/*
 * drv_resp.c: the RESP driver. Drives any Redis-protocol server with GET
 * and SET over --connections non-blocking sockets (round robin over
 * --hosts), pipelined: every request queued in one loop turn goes out in
 * one write per connection, and replies, which Redis sends in order, are
 * matched to slots through a FIFO per connection. A connection that fails
 * fails its waiting requests and is dialled again RESP_RETRY_MS later, so
 * a server that restarts mid-run gets its load back. Buffers grow to the
 * largest burst and are then reused, so the steady state allocates
 * nothing.
 *
 * With --tls every connection is TLS (client/kvtls.h, the layer libkvorum
 * uses too): the handshake and, with --user, an AUTH user password whose
 * answer must be +OK happen while dialling, which waits (bounded) as the
 * dial does; after that the sockets stay non-blocking, and a TLS read or
 * write that must wait for the other direction is noted in want. Without
 * --tls the send and recv calls are the plain ones.
 *
 * Depends on bench.h, resp.h, kv_err.h, kvtls.h (OpenSSL) and POSIX
 * sockets.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "kv_err.h"
#include "kvtls.h"
#include "resp.h"

#define RESP_CONNECT_TIMEOUT_MS 2000
#define RESP_BUF_INIT (64u << 10)
#define RESP_READS_PER_POLL 16 /* reads per readable socket per turn */
#define RESP_KIND_MAX 40
/* A connection that failed is dialled again after RESP_RETRY_MS, each try
 * waiting at most RESP_REDIAL_TIMEOUT_MS (the run goes on meanwhile). */
#define RESP_RETRY_MS 200
#define RESP_REDIAL_TIMEOUT_MS 100
#define RESP_INFO_TIMEOUT_MS 2000
/* AUTH user password: its bytes at most. */
#define RESP_AUTH_MAX (64 + BENCH_USER_MAX + BENCH_PASSWORD_MAX)

typedef struct resp__conn {
  int fd;
  char *out;
  size_t out_off, out_len, out_cap;
  char *in;
  size_t in_len, in_cap;
  uint32_t *fifo; /* slots waiting for a reply, oldest first */
  size_t head, count, cap;
  size_t host;       /* index in hosts */
  uint64_t retry_ns; /* closed: when to dial again */
  kvtls *tls;        /* with --tls, while fd is open */
  short want; /* TLS: POLLOUT when a read waits to write, POLLIN when a
                 write waits to read */
} resp__conn;

typedef struct resp__drv {
  resp__conn *conns;
  size_t nconns, next;
  size_t nhosts;
  char (*hosts)[BENCH_HOST_LEN_MAX]; /* a copy of --hosts */
  struct pollfd *pfds;
  bench_done_fn done;
  void *arg;
  kvtls_ctx *tls;       /* --tls: settings and certificates, else NULL */
  const char *user;     /* --user, or NULL */
  const char *password; /* KVORUM_PASSWORD with --user */
} resp__drv;

/* Connects to "host:port" within timeout_ms; returns a non-blocking
 * socket or -1 with a message. */
static int resp__dial(const char *hostport, int timeout_ms, char *err,
                      size_t errlen) {
  char host[BENCH_HOST_LEN_MAX];
  snprintf(host, sizeof host, "%s", hostport);
  char *colon = strrchr(host, ':');
  if (!colon) {
    snprintf(err, errlen, "'%s' is not HOST:PORT", hostport);
    return -1;
  }
  *colon = '\0';
  const char *port = colon + 1;
  if (host[0] == '[' && colon[-1] == ']') {
    colon[-1] = '\0';
    memmove(host, host + 1, strlen(host));
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM};
  struct addrinfo *ai = NULL;
  int g = getaddrinfo(host, port, &hints, &ai);
  if (g) {
    snprintf(err, errlen, "cannot resolve %s: %s", hostport, gai_strerror(g));
    return -1;
  }
  int fd = -1;
  int why = ECONNREFUSED;
  for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                a->ai_protocol);
    if (fd < 0) {
      why = errno;
      continue;
    }
    int rc = connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc < 0 && errno == EINPROGRESS) {
      struct pollfd p = {.fd = fd, .events = POLLOUT};
      rc = poll(&p, 1, timeout_ms);
      if (rc == 0) {
        why = ETIMEDOUT;
        rc = -1;
      } else if (rc > 0) {
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        rc = soerr ? -1 : 0;
        why = soerr;
      } else {
        why = errno;
      }
    } else if (rc < 0) {
      why = errno;
    }
    if (rc < 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(ai);
  if (fd < 0) {
    snprintf(err, errlen, "cannot connect to %s: %s", hostport,
             strerror(why));
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* Closes c's socket and TLS, if open. */
static void resp__shut(resp__conn *c) {
  kvtls_free(c->tls);
  c->tls = NULL;
  c->want = 0;
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
}

/* send() on c, through TLS when c has it: the same results, errno EAGAIN
 * when TLS must wait (for reading too: then want has POLLIN), EPROTO for a
 * TLS failure. */
static ssize_t resp__send(resp__conn *c, const void *buf, size_t len) {
  if (!c->tls)
    return send(c->fd, buf, len, MSG_NOSIGNAL);
  char why[KVTLS_ERR_MAX];
  long n = kvtls_write(c->tls, buf, len, why, sizeof why);
  c->want = (short)((c->want & ~POLLIN) | (n == KVTLS_WANT_READ ? POLLIN : 0));
  if (n > 0)
    return n;
  errno = n == KVTLS_WANT_READ || n == KVTLS_WANT_WRITE ? EAGAIN : EPROTO;
  return -1;
}

/* recv() on c, through TLS when c has it: the same results (0 at EOF),
 * errno EAGAIN when TLS must wait (for writing too: then want has
 * POLLOUT), EPROTO for a TLS failure. */
static ssize_t resp__recv(resp__conn *c, void *buf, size_t len) {
  if (!c->tls)
    return recv(c->fd, buf, len, 0);
  char why[KVTLS_ERR_MAX];
  long n = kvtls_read(c->tls, buf, len, why, sizeof why);
  c->want =
      (short)((c->want & ~POLLOUT) | (n == KVTLS_WANT_WRITE ? POLLOUT : 0));
  if (n > 0)
    return n;
  if (n == KVTLS_EOF)
    return 0;
  errno = n == KVTLS_WANT_READ || n == KVTLS_WANT_WRITE ? EAGAIN : EPROTO;
  return -1;
}

/* Waits at most timeout_ms for ev (and what TLS waits for) on c; returns
 * poll()'s result. */
static int resp__wait(resp__conn *c, short ev, int timeout_ms) {
  struct pollfd p = {.fd = c->fd, .events = (short)(ev | c->want)};
  return poll(&p, 1, timeout_ms);
}

/* Sends cmd[0..len) on c, which has nothing in flight, and reads its one
 * reply into *rep (pointing into c->in until the next read), each wait at
 * most timeout_ms. Returns 0, KV_ETIMEDOUT, KV_ECONN or KV_EPROTO. */
static int resp__call(resp__conn *c, const char *cmd, size_t len,
                      int timeout_ms, resp_reply *rep) {
  size_t sent = 0;
  while (sent < len) {
    ssize_t n = resp__send(c, cmd + sent, len - sent);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (resp__wait(c, POLLOUT, timeout_ms) <= 0)
        return KV_ETIMEDOUT;
      continue;
    }
    if (n <= 0)
      return KV_ECONN;
    sent += (size_t)n;
  }
  c->in_len = 0;
  for (;;) {
    long used = resp_parse(c->in, c->in_len, rep);
    if (used < 0)
      return KV_EPROTO;
    if (used > 0) {
      c->in_len = 0;
      return 0;
    }
    if (c->in_len == c->in_cap)
      return KV_EPROTO; /* these replies are a few hundred bytes */
    ssize_t n = resp__recv(c, c->in + c->in_len, c->in_cap - c->in_len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (resp__wait(c, POLLIN, timeout_ms) <= 0)
        return KV_ETIMEDOUT;
      continue;
    }
    if (n <= 0)
      return KV_ECONN;
    c->in_len += (size_t)n;
  }
}

/* Runs c's TLS handshake to its end within timeout_ms. Returns 0 or
 * KV_ECONN with a message (OpenSSL's reason) in err. */
static int resp__handshake(resp__conn *c, const char *host, int timeout_ms,
                           char *err, size_t errlen) {
  uint64_t end = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
  for (;;) {
    char why[KVTLS_ERR_MAX];
    int r = kvtls_handshake(c->tls, why, sizeof why);
    if (r == 0)
      return 0;
    if (r != KVTLS_WANT_READ && r != KVTLS_WANT_WRITE) {
      snprintf(err, errlen, "TLS handshake with %s failed: %s", host, why);
      return KV_ECONN;
    }
    uint64_t now = bench_now_ns();
    int left = now < end ? (int)((end - now + 999999u) / 1000000u) : 0;
    struct pollfd p = {.fd = c->fd,
                       .events = r == KVTLS_WANT_READ ? POLLIN : POLLOUT};
    if (left == 0 || poll(&p, 1, left) <= 0) {
      snprintf(err, errlen, "TLS handshake with %s: no answer within %d ms",
               host, timeout_ms);
      return KV_ECONN;
    }
  }
}

/* Sends AUTH user password on c and checks the +OK, waiting at most
 * timeout_ms. Returns 0, or KV_EAUTH with the server's answer in err, or
 * another KV_E* code with a message. */
static int resp__auth(resp__drv *d, resp__conn *c, const char *host,
                      int timeout_ms, char *err, size_t errlen) {
  const char *argv[3] = {"AUTH", d->user, d->password};
  size_t lens[3] = {4, strlen(d->user), strlen(d->password)};
  char cmd[RESP_AUTH_MAX];
  if (resp_cmd_size(3, lens) > sizeof cmd) {
    snprintf(err, errlen, "the user or password is too long");
    return KV_EINVAL;
  }
  size_t len = resp_encode_cmd(cmd, 3, argv, lens);
  resp_reply rep;
  int rc = resp__call(c, cmd, len, timeout_ms, &rep);
  explicit_bzero(cmd, sizeof cmd);
  if (rc) {
    snprintf(err, errlen, "AUTH on %s: %s", host, kv_strerror(rc));
    return rc;
  }
  if (rep.type == RESP_STATUS && rep.len == 2 && !memcmp(rep.str, "OK", 2))
    return 0;
  snprintf(err, errlen, "AUTH as %s on %s failed: %.*s", d->user, host,
           (int)(rep.str ? (rep.len < 200 ? rep.len : 200) : 0),
           rep.str ? rep.str : "");
  return KV_EAUTH;
}

/* Opens c to its host: dial, then the TLS handshake and AUTH when the
 * options ask, each wait at most timeout_ms. Returns 0, or a KV_E* code
 * with a message (c stays closed). */
static int resp__connect(resp__drv *d, resp__conn *c, int timeout_ms,
                         char *err, size_t errlen) {
  const char *host = d->hosts[c->host];
  c->fd = resp__dial(host, timeout_ms, err, errlen);
  if (c->fd < 0)
    return KV_ECONN;
  c->want = 0;
  int rc = 0;
  if (d->tls) {
    char why[KVTLS_ERR_MAX];
    c->tls = kvtls_new(d->tls, c->fd, why, sizeof why);
    rc = c->tls ? resp__handshake(c, host, timeout_ms, err, errlen)
                : KV_ENOMEM;
    if (!c->tls)
      snprintf(err, errlen, "TLS with %s: %s", host, why);
  }
  if (rc == 0 && d->user)
    rc = resp__auth(d, c, host, timeout_ms, err, errlen);
  if (rc)
    resp__shut(c);
  return rc;
}

static void resp__close(void *dp) {
  resp__drv *d = dp;
  if (!d)
    return;
  for (size_t i = 0; i < d->nconns; i++) {
    resp__conn *c = &d->conns[i];
    resp__shut(c);
    free(c->out);
    free(c->in);
    free(c->fifo);
  }
  free(d->conns);
  free(d->pfds);
  free(d->hosts);
  kvtls_ctx_free(d->tls);
  free(d);
}

static int resp__open(const bench_opts *o, bench_done_fn done, void *arg,
                      void **out, char *err, size_t errlen) {
  resp__drv *d = calloc(1, sizeof *d);
  if (!d)
    return KV_ENOMEM;
  d->done = done;
  d->arg = arg;
  d->user = o->user;
  d->password = o->password ? o->password : "";
  d->nconns = o->connections;
  d->nhosts = o->nhosts;
  d->hosts = malloc(o->nhosts * sizeof *d->hosts);
  if (d->hosts)
    memcpy(d->hosts, o->hosts, o->nhosts * sizeof *d->hosts);
  d->conns = calloc(d->nconns, sizeof *d->conns);
  d->pfds = calloc(d->nconns, sizeof *d->pfds);
  if (!d->conns || !d->pfds || !d->hosts) {
    d->nconns = 0;
    resp__close(d);
    return KV_ENOMEM;
  }
  for (size_t i = 0; i < d->nconns; i++)
    d->conns[i].fd = -1;
  if (o->tls) {
    kvtls_opts t = {.ca_file = o->tls_ca,
                    .cert_file = o->tls_cert,
                    .key_file = o->tls_key,
                    .server_name = o->tls_server_name};
    d->tls = kvtls_ctx_new(&t, err, errlen);
    if (!d->tls) {
      resp__close(d);
      return KV_EINVAL;
    }
  }
  for (size_t i = 0; i < d->nconns; i++) {
    resp__conn *c = &d->conns[i];
    c->cap = o->concurrency;
    c->fifo = malloc(c->cap * sizeof *c->fifo);
    c->out_cap = c->in_cap = RESP_BUF_INIT;
    c->out = malloc(c->out_cap);
    c->in = malloc(c->in_cap);
    if (!c->fifo || !c->out || !c->in) {
      resp__close(d);
      return KV_ENOMEM;
    }
    c->host = i % o->nhosts;
    int rc = resp__connect(d, c, RESP_CONNECT_TIMEOUT_MS, err, errlen);
    if (rc) {
      resp__close(d);
      return rc;
    }
  }
  *out = d;
  return 0;
}

/* Fails every request waiting on c and closes it. */
static void resp__fail(resp__drv *d, resp__conn *c, const char *kind) {
  resp__shut(c);
  c->retry_ns = bench_now_ns() + (uint64_t)RESP_RETRY_MS * 1000000u;
  c->out_off = c->out_len = 0;
  c->in_len = 0;
  while (c->count) {
    uint32_t slot = c->fifo[c->head];
    c->head = (c->head + 1) % c->cap;
    c->count--;
    d->done(d->arg, slot, KV_ECLOSED, kind, false, NULL, 0);
  }
}

/* Picks the next open connection, round robin. */
static resp__conn *resp__pick(resp__drv *d) {
  for (size_t i = 0; i < d->nconns; i++) {
    resp__conn *c = &d->conns[d->next++ % d->nconns];
    if (c->fd >= 0)
      return c;
  }
  return NULL;
}

/* Makes room for n more bytes in c's output buffer. */
static int resp__reserve(resp__conn *c, size_t n) {
  if (c->out_off && c->out_off == c->out_len)
    c->out_off = c->out_len = 0;
  if (c->out_len + n <= c->out_cap)
    return 0;
  size_t cap = c->out_cap;
  while (cap < c->out_len + n)
    cap *= 2;
  char *p = realloc(c->out, cap);
  if (!p)
    return KV_ENOMEM;
  c->out = p;
  c->out_cap = cap;
  return 0;
}

static void resp__push(resp__conn *c, uint32_t slot) {
  c->fifo[(c->head + c->count) % c->cap] = slot;
  c->count++;
}

static int resp__get(void *dp, uint32_t slot, const char *key, size_t klen) {
  resp__drv *d = dp;
  resp__conn *c = resp__pick(d);
  if (!c)
    return KV_ECLOSED;
  if (resp__reserve(c, resp_get_size(klen)) < 0)
    return KV_ENOMEM;
  c->out_len += resp_encode_get(c->out + c->out_len, key, klen);
  resp__push(c, slot);
  return 0;
}

static int resp__put(void *dp, uint32_t slot, const char *key, size_t klen,
                     const void *val, size_t vlen, const void *ctx,
                     size_t ctx_len) {
  resp__drv *d = dp;
  resp__conn *c = resp__pick(d);
  if (!c)
    return KV_ECLOSED;
  if (resp__reserve(c, resp_set_size(klen, vlen)) < 0)
    return KV_ENOMEM;
  c->out_len += resp_encode_set(c->out + c->out_len, key, klen, val, vlen);
  resp__push(c, slot);
  return 0;
}

/* Writes what c has queued; returns 0, or -1 after failing c. */
static int resp__flush(resp__drv *d, resp__conn *c) {
  while (c->fd >= 0 && c->out_off < c->out_len) {
    ssize_t n = resp__send(c, c->out + c->out_off, c->out_len - c->out_off);
    if (n > 0) {
      c->out_off += (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return 0;
    } else {
      resp__fail(d, c, "resp_send_failed");
      return -1;
    }
  }
  if (c->out_off == c->out_len)
    c->out_off = c->out_len = 0;
  return 0;
}

/* Hands each complete reply in c's input to its slot. */
static int resp__replies(resp__drv *d, resp__conn *c) {
  size_t off = 0;
  int n = 0;
  while (off < c->in_len) {
    resp_reply rep;
    long used = resp_parse(c->in + off, c->in_len - off, &rep);
    if (used == 0)
      break;
    if (used < 0 || c->count == 0) {
      resp__fail(d, c, used < 0 ? "resp_protocol" : "resp_unexpected_reply");
      return n;
    }
    off += (size_t)used;
    uint32_t slot = c->fifo[c->head];
    c->head = (c->head + 1) % c->cap;
    c->count--;
    n++;
    if (rep.type == RESP_ERROR) {
      char kind[RESP_KIND_MAX] = "resp_";
      size_t k = 5;
      for (size_t i = 0; i < rep.len && rep.str[i] != ' ' &&
                         k + 1 < sizeof kind; i++)
        kind[k++] = rep.str[i];
      kind[k] = '\0';
      d->done(d->arg, slot, KV_EIO, kind, false, NULL, 0);
    } else {
      bool found = !(rep.type == RESP_BULK && rep.str == NULL);
      d->done(d->arg, slot, 0, NULL, found, NULL, 0);
    }
  }
  if (off) {
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
  }
  return n;
}

/* Reads what c has; returns replies handed out. */
static int resp__read(resp__drv *d, resp__conn *c) {
  int n = 0;
  for (int i = 0; i < RESP_READS_PER_POLL && c->fd >= 0; i++) {
    if (c->in_len == c->in_cap) {
      if (c->in_cap >= (size_t)RESP_BULK_MAX * 2) {
        resp__fail(d, c, "resp_reply_too_big");
        return n;
      }
      char *p = realloc(c->in, c->in_cap * 2);
      if (!p) {
        resp__fail(d, c, "resp_out_of_memory");
        return n;
      }
      c->in = p;
      c->in_cap *= 2;
    }
    size_t space = c->in_cap - c->in_len;
    ssize_t got = resp__recv(c, c->in + c->in_len, space);
    if (got > 0) {
      c->in_len += (size_t)got;
      n += resp__replies(d, c);
      if ((size_t)got < space && !c->tls)
        break; /* the socket is drained (TLS: a record was read) */
    } else if (got < 0 && errno == EINTR) {
      continue;
    } else if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      break;
    } else {
      size_t lost = c->count;
      resp__fail(d, c, got == 0 ? "resp_closed_by_server" : "resp_recv_failed");
      return n + (int)lost;
    }
  }
  return n;
}

/* Dials the closed connections whose retry time has come (a server that
 * restarted gets its connections back); returns when the next retry is
 * due, or UINT64_MAX when every connection is open. */
static uint64_t resp__redial(resp__drv *d) {
  uint64_t now = bench_now_ns(), next = UINT64_MAX;
  for (size_t i = 0; i < d->nconns; i++) {
    resp__conn *c = &d->conns[i];
    if (c->fd >= 0)
      continue;
    if (now >= c->retry_ns) {
      char err[256];
      resp__connect(d, c, RESP_REDIAL_TIMEOUT_MS, err, sizeof err);
      now = bench_now_ns();
      if (c->fd >= 0)
        continue;
      c->retry_ns = now + (uint64_t)RESP_RETRY_MS * 1000000u;
    }
    if (c->retry_ns < next)
      next = c->retry_ns;
  }
  return next;
}

static int resp__poll(void *dp, int64_t timeout_us) {
  resp__drv *d = dp;
  int n = 0;
  size_t m = 0;
  uint64_t retry = resp__redial(d);
  if (retry != UINT64_MAX) {
    uint64_t now = bench_now_ns();
    int64_t until = retry > now ? (int64_t)((retry - now) / 1000) : 0;
    if (timeout_us < 0 || until < timeout_us)
      timeout_us = until;
  }
  bool pending = false; /* decrypted bytes wait inside TLS */
  for (size_t i = 0; i < d->nconns; i++) {
    resp__conn *c = &d->conns[i];
    if (c->fd >= 0 && c->out_len > c->out_off)
      resp__flush(d, c);
    if (c->fd < 0)
      continue;
    d->pfds[m].fd = c->fd;
    d->pfds[m].events = (short)(POLLIN | c->want);
    if (c->out_len > c->out_off)
      d->pfds[m].events |= POLLOUT;
    d->pfds[m].revents = 0;
    pending = pending || (c->tls && kvtls_pending(c->tls));
    m++;
  }
  if (pending)
    timeout_us = 0;
  struct timespec ts = {.tv_sec = timeout_us / 1000000,
                        .tv_nsec = (long)(timeout_us % 1000000) * 1000};
  /* With every connection closed this only waits for the next dial. */
  int pr = ppoll(d->pfds, m, timeout_us < 0 ? NULL : &ts, NULL);
  if (pr < 0)
    return errno == EINTR ? 0 : KV_EIO;
  size_t j = 0;
  for (size_t i = 0; i < d->nconns && j < m; i++) {
    resp__conn *c = &d->conns[i];
    if (c->fd < 0 || c->fd != d->pfds[j].fd)
      continue;
    short ev = d->pfds[j++].revents;
    if (c->tls) {
      /* A TLS read may wait to write and a write to read: try both. */
      if (ev || kvtls_pending(c->tls)) {
        resp__flush(d, c);
        if (c->fd >= 0)
          n += resp__read(d, c);
      }
      continue;
    }
    if (ev & POLLOUT)
      resp__flush(d, c);
    if (c->fd >= 0 && (ev & (POLLIN | POLLERR | POLLHUP)))
      n += resp__read(d, c);
  }
  return n;
}

/* The seconds after "name:" in an INFO text, added to *sum as
 * microseconds; false when the field is missing. */
static bool resp__info_field(const char *txt, size_t len, const char *name,
                             uint64_t *sum) {
  size_t nl = strlen(name);
  for (size_t i = 0; i + nl < len; i++) {
    if ((i == 0 || txt[i - 1] == '\n') && !memcmp(txt + i, name, nl) &&
        txt[i + nl] == ':') {
      char num[32];
      size_t k = 0, j = i + nl + 1;
      while (j < len && k + 1 < sizeof num &&
             ((txt[j] >= '0' && txt[j] <= '9') || txt[j] == '.'))
        num[k++] = txt[j++];
      num[k] = '\0';
      if (!k)
        return false;
      *sum += (uint64_t)(strtod(num, NULL) * 1e6);
      return true;
    }
  }
  return false;
}

/* INFO cpu on connection c (idle between phases): used_cpu_user +
 * used_cpu_sys of that server, in microseconds, added to *us. */
static int resp__info_cpu(resp__conn *c, uint64_t *us) {
  static const char cmd[] = "*2\r\n$4\r\nINFO\r\n$3\r\ncpu\r\n";
  if (c->fd < 0 || c->count || c->out_len > c->out_off)
    return KV_ECONN;
  resp_reply rep;
  int rc = resp__call(c, cmd, sizeof cmd - 1, RESP_INFO_TIMEOUT_MS, &rep);
  if (rc)
    return rc;
  if (rep.type != RESP_BULK || !rep.str)
    return KV_EPROTO;
  uint64_t sum = 0;
  if (!resp__info_field(rep.str, rep.len, "used_cpu_user", &sum) ||
      !resp__info_field(rep.str, rep.len, "used_cpu_sys", &sum))
    return KV_EPROTO;
  *us += sum;
  return 0;
}

/* Connection i talks to host i % nhosts, so the first connections cover
 * every host used. */
static int resp__server_cpu_us(void *dp, uint64_t *us) {
  resp__drv *d = dp;
  *us = 0;
  size_t n = d->nconns < d->nhosts ? d->nconns : d->nhosts;
  for (size_t i = 0; i < n; i++) {
    int rc = resp__info_cpu(&d->conns[i], us);
    if (rc)
      return rc;
  }
  return n ? 0 : KV_ECONN;
}

const bench_driver bench_drv_resp = {
    .name = "resp",
    .open = resp__open,
    .get = resp__get,
    .put = resp__put,
    .poll = resp__poll,
    .close = resp__close,
    .server_cpu_us = resp__server_cpu_us,
};
