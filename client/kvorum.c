/*
 * kvorum.c: libkvorum, the client library (kvorum.h is the contract).
 *
 * A kv_client owns a few connections: conns[0] to the host it connected to
 * and, with routing on, connections to other nodes opened lazily when the
 * ring sends a key there. Every connection is a non-blocking socket driven
 * by poll() in kv_poll. A connection's life:
 *
 *     DOWN --open()--> CONNECTING --writable--> OPEN --HELLO_OK--> READY
 *       ^                  |                      |                  |
 *       +------ failure (refused, reset, EOF, timeout, bad frame) ---+
 *
 * HELLO is queued first on every (re)opened connection and requests are
 * pipelined behind it, so nothing waits a round trip. A connection that
 * fails before a single byte was written hands its queued requests to
 * conns[0] (the frames are self-contained; ids are unique per client);
 * otherwise its requests fail with KV_ECONN (never connected) or
 * KV_ECLOSED (connection lost with the request possibly delivered).
 *
 * Requests: a pool of kv__req structs (recycled through a free list, so
 * the steady state does not allocate), an id-indexed table (power-of-two
 * slots, id & mask; ids are sequential so a doubling never collides two
 * live entries) and one list in creation order, scanned for timeouts only
 * when the earliest deadline has passed. Output is appended to a
 * per-connection buffer and written with one write() per connection per
 * kv_poll round.
 *
 * Depends on: kvproto (wire.h, mp.h, kv_err.h), xxHash (routing), POSIX
 * sockets and poll().
 */
#include "kvorum.h"

#include <errno.h>
#include <fcntl.h>
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
#include <time.h>
#include <unistd.h>

#include "kvorum_int.h"
#include "partition.h"
#include "wire.h"

#define KV__AGENT "libkvorum/" "0.1"
#define KV__HOSTS_MAX 16                /* hosts in a kv_connect list */
#define KV__CONNS_MAX 256               /* connections per client */
#define KV__ADDR_MAX 256                /* "host:port" */
#define KV__ERRMSG_MAX (WIRE_ERRMSG_MAX + 256)
#define KV__CONNECT_TIMEOUT_MS_DEFAULT 2000
#define KV__TIMEOUT_MS_DEFAULT 5000
#define KV__TIMEOUT_GRACE_MS 100        /* lets the server's message win */
#define KV__RING_REFRESH_MS 5000
#define KV__RETRY_MS 1000               /* a failed node is skipped this long */
#define KV__READ_CHUNK (64u * 1024u)
#define KV__READS_PER_ROUND 16          /* reads per connection per poll */
#define KV__SLOTS_INIT 256u
#define KV__INFLIGHT_MAX (1u << 20)     /* requests in flight per client */
#define KV__POLLFD_STACK 64
#define KV__RING_NODES_MAX 4096
#define KV__RING_Q_MAX (1u << 20)
#define KV__RING_OWNERS_MAX 16          /* owners kept per partition */
#define KV__VALUE_MAX (WIRE_FRAME_MAX - KV_KEY_MAX - 4096u)
#define KV__ADMIN_ARGS_MAX 32           /* name/value pairs of kv_admin */

enum kv__state { KV__DOWN, KV__CONNECTING, KV__OPEN, KV__READY };

enum kv__kind {
  KV__K_GET,
  KV__K_PUT,
  KV__K_DEL,
  KV__K_ADMIN,
  KV__K_HELLO,
  KV__K_RING
};

typedef struct kv__conn {
  int fd;
  int state;              /* enum kv__state */
  bool wrote;             /* a byte reached the socket since (re)opening */
  char addr[KV__ADDR_MAX];
  char node_id[WIRE_NAME_MAX];
  kvbuf out;              /* frames not yet written */
  size_t hello_len;       /* bytes of HELLO at the start of out, until sent */
  uint8_t *in;            /* bytes read, not yet a whole frame */
  size_t in_len, in_cap;
  uint64_t retry_ms;      /* DOWN: not reopened for routing before this */
  int fail_code;          /* why it last went down (KV_E*) */
} kv__conn;

typedef struct kv__req {
  uint64_t id;
  uint64_t deadline_ms;
  uint32_t timeout_ms;
  int kind; /* enum kv__kind */
  kv__conn *conn;
  kv_cb cb;
  void *arg;
  struct kv__req *prev, *next; /* in flight list; next links the free list */
} kv__req;

/* What a blocking call waits for. */
typedef struct kv__wait {
  kv_client *c;
  bool done;
  bool want;    /* copy the result */
  int status;
  kv_result *res;
  uint8_t *raw; /* kv_admin: the ADMIN_OK result, malloc'd */
  size_t raw_len;
} kv__wait;

typedef struct kv__rnode {
  char id[WIRE_NAME_MAX];
  char listen[KV__ADDR_MAX];
  char region[WIRE_NAME_MAX];
  bool up;
} kv__rnode;

typedef struct kv__ring {
  uint32_t q;
  unsigned bits;       /* log2 q */
  uint32_t width;      /* owner slots per partition */
  size_t nnodes;
  kv__rnode *nodes;
  uint16_t *owners;    /* q * width node indexes */
  uint8_t *nown;       /* owners per partition */
} kv__ring;

struct kv_client {
  kv__conn **conns;
  size_t nconns, conns_cap;
  bool route;
  bool ring_broken; /* the node cannot serve "ring": never route */
  char region[WIRE_NAME_MAX];
  uint32_t connect_timeout_ms;
  uint32_t timeout_ms;
  kv__req **slots;
  size_t slot_mask;
  kv__req *free_reqs;
  kv__req head;       /* sentinel of the in-flight list */
  size_t nuser;       /* user requests in flight */
  size_t nall;        /* all requests in flight */
  uint64_t next_id;
  uint64_t min_deadline_ms;
  kv__ring *ring;
  uint64_t ring_next_ms;
  bool ring_pending;
  kv_sibling *sibs;
  size_t sibs_cap;
  uint64_t ncallbacks;
  char errmsg[KV__ERRMSG_MAX];
};

static const wire_limits kv__limits = {WIRE_FRAME_MAX, WIRE_FRAME_MAX};

static uint64_t kv__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void kv__seterr(kv_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void kv__seterr(kv_client *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
  va_end(ap);
}

/* ---- consistency levels ---- */

int kv_parse_level(const char *s, int32_t *out) {
  static const struct {
    const char *name;
    int32_t v;
  } names[] = {{"one", KV_ONE},
               {"quorum", KV_QUORUM},
               {"all", KV_ALL},
               {"local_one", KV_LOCAL_ONE},
               {"local_quorum", KV_LOCAL_QUORUM},
               {"each_quorum", KV_EACH_QUORUM},
               {"default", 0}};
  if (!s || !*s || !out)
    return KV_EINVAL;
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    if (strcasecmp(s, names[i].name) == 0) {
      *out = names[i].v;
      return 0;
    }
  }
  long v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9')
      return KV_EINVAL;
    v = v * 10 + (*p - '0');
    if (v > INT32_MAX)
      return KV_EINVAL;
  }
  *out = (int32_t)v;
  return 0;
}

/* ---- results ---- */

void kv_result_free(kv_result *res) { free(res); }

/* Copies res into one malloc'd block (struct, siblings, bytes). */
static kv_result *kv__result_dup(const kv_result *res) {
  size_t bytes = res->context_len;
  for (size_t i = 0; i < res->nsiblings; i++)
    bytes += res->siblings[i].len;
  size_t head = sizeof(kv_result) + res->nsiblings * sizeof(kv_sibling);
  kv_result *d = malloc(head + bytes + 1);
  if (!d)
    return NULL;
  kv_sibling *sibs = (kv_sibling *)(d + 1);
  uint8_t *p = (uint8_t *)d + head;
  d->found = res->found;
  d->nsiblings = res->nsiblings;
  d->siblings = res->nsiblings ? sibs : NULL;
  for (size_t i = 0; i < res->nsiblings; i++) {
    sibs[i] = res->siblings[i];
    if (res->siblings[i].value) {
      if (res->siblings[i].len)
        memcpy(p, res->siblings[i].value, res->siblings[i].len);
      sibs[i].value = p;
      p += res->siblings[i].len;
    }
  }
  d->context = p;
  d->context_len = res->context_len;
  if (res->context_len)
    memcpy(p, res->context, res->context_len);
  return d;
}

/* ---- request table ---- */

static int kv__slots_grow(kv_client *c) {
  size_t ncap = (c->slot_mask + 1) * 2;
  if (ncap > KV__INFLIGHT_MAX)
    return KV_EFULL;
  kv__req **ns = calloc(ncap, sizeof(*ns));
  if (!ns)
    return KV_ENOMEM;
  for (size_t i = 0; i <= c->slot_mask; i++)
    if (c->slots[i])
      ns[c->slots[i]->id & (ncap - 1)] = c->slots[i];
  free(c->slots);
  c->slots = ns;
  c->slot_mask = ncap - 1;
  return 0;
}

static kv__req *kv__lookup(kv_client *c, uint64_t id) {
  kv__req *q = c->slots[id & c->slot_mask];
  return q && q->id == id ? q : NULL;
}

static bool kv__is_user(const kv__req *q) {
  return q->kind == KV__K_GET || q->kind == KV__K_PUT ||
         q->kind == KV__K_DEL || q->kind == KV__K_ADMIN;
}

/* Takes a request from the pool, gives it an id, puts it in the table and
 * at the tail of the in-flight list. Returns NULL on KV_ENOMEM/KV_EFULL
 * (*rc set). */
static kv__req *kv__req_new(kv_client *c, int kind, kv__conn *k,
                            uint32_t timeout_ms, uint64_t now, int *rc) {
  uint64_t id = c->next_id++;
  while (c->slots[id & c->slot_mask]) {
    *rc = kv__slots_grow(c);
    if (*rc)
      return NULL;
  }
  kv__req *q = c->free_reqs;
  if (q) {
    c->free_reqs = q->next;
  } else {
    q = malloc(sizeof(*q));
    if (!q) {
      *rc = KV_ENOMEM;
      return NULL;
    }
  }
  memset(q, 0, sizeof(*q));
  q->id = id;
  q->kind = kind;
  q->conn = k;
  q->timeout_ms = timeout_ms;
  q->deadline_ms = now + timeout_ms;
  c->slots[id & c->slot_mask] = q;
  q->prev = c->head.prev;
  q->next = &c->head;
  c->head.prev->next = q;
  c->head.prev = q;
  if (q->deadline_ms < c->min_deadline_ms)
    c->min_deadline_ms = q->deadline_ms;
  c->nall++;
  if (kv__is_user(q))
    c->nuser++;
  return q;
}

/* Removes q from the table and the in-flight list (not yet recycled). */
static void kv__req_unlink(kv_client *c, kv__req *q) {
  c->slots[q->id & c->slot_mask] = NULL;
  q->prev->next = q->next;
  q->next->prev = q->prev;
  q->prev = q->next = NULL;
  c->nall--;
  if (kv__is_user(q))
    c->nuser--;
}

static void kv__req_recycle(kv_client *c, kv__req *q) {
  q->next = c->free_reqs;
  c->free_reqs = q;
}

/* ---- completion ---- */

static void kv__ring_done(kv_client *c, int status, const wire_msg *m);

/* Runs the completion of an unlinked request: the user's callback (or the
 * internal one) with status, message and the reply m (NULL on failure),
 * then recycles q. */
static void kv__complete(kv_client *c, kv__req *q, int status,
                         const char *msg, const wire_msg *m) {
  kv_result res;
  memset(&res, 0, sizeof(res));
  char why[KV__ERRMSG_MAX];
  if (status == 0 && m && q->kind == KV__K_GET) {
    mp_reader rd;
    uint32_t n = 0;
    mp_reader_init(&rd, m->raw.ptr, m->raw.len);
    if (m->raw.len && mp_read_array(&rd, &n) == 0) {
      if (n > c->sibs_cap) {
        size_t ncap = c->sibs_cap ? c->sibs_cap : 8;
        while (ncap < n)
          ncap *= 2;
        kv_sibling *ns = realloc(c->sibs, ncap * sizeof(*ns));
        if (!ns) {
          status = KV_ENOMEM;
          msg = "out of memory for the siblings of a reply";
        } else {
          c->sibs = ns;
          c->sibs_cap = ncap;
        }
      }
      for (uint32_t i = 0; status == 0 && i < n; i++) {
        wire_sibling s;
        if (wire_sibling_next(&rd, &s)) {
          status = KV_EPROTO;
          msg = "malformed sibling in a get reply";
          break;
        }
        kv_sibling *d = &c->sibs[i];
        d->deleted = (s.flags & WIRE_SIB_DELETED) != 0;
        d->ts_ms = s.ts_ms;
        d->value = d->deleted ? NULL : s.value.ptr;
        d->len = d->deleted ? 0 : s.value.len;
        if (!d->deleted && !d->value)
          d->value = (const uint8_t *)"";
      }
    } else if (m->raw.len) {
      status = KV_EPROTO;
      msg = "malformed siblings in a get reply";
    }
    if (status == 0) {
      res.nsiblings = n;
      res.siblings = n ? c->sibs : NULL;
      res.found = n > 0;
    }
  }
  if (status == 0 && m &&
      (q->kind == KV__K_GET || q->kind == KV__K_PUT || q->kind == KV__K_DEL)) {
    res.context = (uint8_t *)m->context.ptr;
    res.context_len = m->context.len;
  }
  if (status && !msg) {
    snprintf(why, sizeof(why), "%s", kv_strerror(status));
    msg = why;
  }
  switch (q->kind) {
  case KV__K_GET:
  case KV__K_PUT:
  case KV__K_DEL:
    c->ncallbacks++;
    q->cb(q->arg, status, status ? msg : NULL, status ? NULL : &res);
    break;
  case KV__K_ADMIN: {
    kv__wait *w = q->arg;
    c->ncallbacks++;
    w->done = true;
    w->status = status;
    if (status == 0) {
      w->raw = malloc(m->raw.len ? m->raw.len : 1);
      if (!w->raw) {
        w->status = KV_ENOMEM;
        snprintf(c->errmsg, sizeof(c->errmsg), "out of memory");
      } else {
        if (m->raw.len)
          memcpy(w->raw, m->raw.ptr, m->raw.len);
        w->raw_len = m->raw.len;
      }
    } else {
      snprintf(c->errmsg, sizeof(c->errmsg), "%s", msg);
    }
    break;
  }
  case KV__K_RING:
    kv__ring_done(c, status, m);
    break;
  default: /* KV__K_HELLO: the connection's state says it all */
    break;
  }
  kv__req_recycle(c, q);
}

/* ---- connections ---- */

static void kv__conn_close_fd(kv__conn *k) {
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

static int kv__req_encode_hello(kv_client *c, kv__conn *k, uint64_t now);

/* Opens a DOWN connection: a non-blocking connect and a queued HELLO.
 * Returns 0 or KV_ECONN/KV_EINVAL/KV_ENOMEM with c->errmsg set. */
static int kv__conn_open(kv_client *c, kv__conn *k, uint64_t now) {
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
  k->state = inprogress ? KV__CONNECTING : KV__OPEN;
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

static kv__conn *kv__conn_new(kv_client *c, const char *addr) {
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

static void kv__conn_free(kv__conn *k) {
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
static void kv__conn_fail(kv_client *c, kv__conn *k, int code,
                          const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void kv__conn_fail(kv_client *c, kv__conn *k, int code,
                          const char *fmt, ...) {
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

/* Writes k's pending output with one write(). */
static void kv__conn_flush(kv_client *c, kv__conn *k) {
  if (k->out.len == 0 || (k->state != KV__OPEN && k->state != KV__READY))
    return;
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
  if (n > 0) {
    k->wrote = true;
    k->hello_len = 0;
    kvbuf_consume(&k->out, (size_t)n);
  }
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
      kv__conn_fail(c, k, code, "%s refused the connection: %s", k->addr,
                    text);
      return;
    }
    kv__req_unlink(c, q);
    kv__complete(c, q, code, text, NULL);
    return;
  }
  static const uint32_t expect[] = {
      [KV__K_GET] = WIRE_GET_OK,     [KV__K_PUT] = WIRE_PUT_OK,
      [KV__K_DEL] = WIRE_DEL_OK,     [KV__K_ADMIN] = WIRE_ADMIN_OK,
      [KV__K_HELLO] = WIRE_HELLO_OK, [KV__K_RING] = WIRE_ADMIN_OK};
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
      kv__conn_fail(c, k, KV_EPROTO, "%s sent a frame over %u bytes", k->addr,
                    (unsigned)WIRE_FRAME_MAX);
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

/* Reads what k has and handles the frames in it. */
static void kv__conn_read(kv_client *c, kv__conn *k) {
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
      kv__conn_fail(c, k, KV_ECLOSED, "%s closed the connection", k->addr);
      return;
    }
    k->in_len += (size_t)n;
    need = kv__conn_frames(c, k);
    if (need == 0 || (size_t)n < room)
      return;
  }
}

/* Completes a non-blocking connect. */
static void kv__conn_connected(kv_client *c, kv__conn *k) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
    err = errno;
  if (err) {
    kv__conn_fail(c, k, KV_ECONN, "cannot connect to %s: %s", k->addr,
                  strerror(err));
    return;
  }
  k->state = KV__OPEN;
}

/* ---- encoding requests ---- */

static void kv__opts_to_wire(kv_client *c, const kv_options *o,
                             wire_opts *w) {
  memset(w, 0, sizeof(*w));
  w->flags = WIRE_OPT_SLOPPY;
  if (o) {
    w->r = o->r;
    w->w = o->w;
    w->dw = o->dw;
    w->pr = o->pr;
    w->pw = o->pw;
    w->timeout_ms = o->timeout_ms;
    if (o->no_sloppy)
      w->flags = WIRE_OPT_NO_SLOPPY;
    if (o->local)
      w->flags |= WIRE_OPT_LOCAL;
  }
  if (c->region[0]) {
    w->region.ptr = (const uint8_t *)c->region;
    w->region.len = strlen(c->region);
  }
}

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
  rc = wire_encode(&k->out, &m);
  if (rc) {
    kv__req_unlink(c, q);
    kv__req_recycle(c, q);
    return rc;
  }
  k->hello_len = k->out.len;
  return 0;
}

/* ---- routing ---- */

static bool kv__node_up(const char *state) {
  return strcmp(state, "down") != 0 && strcmp(state, "removed") != 0 &&
         strcmp(state, "unknown") != 0 && strcmp(state, "unreachable") != 0;
}

/* The connection for ring node nd (found by node id or address, created
 * when missing), or NULL. */
static kv__conn *kv__node_conn(kv_client *c, const kv__rnode *nd) {
  for (size_t i = 0; i < c->nconns; i++) {
    kv__conn *k = c->conns[i];
    if ((k->node_id[0] && strcmp(k->node_id, nd->id) == 0) ||
        strcmp(k->addr, nd->listen) == 0)
      return k;
  }
  if (!nd->listen[0])
    return NULL;
  return kv__conn_new(c, nd->listen);
}

/* True when k can take a request now, (re)opening it if needed. */
static bool kv__conn_usable(kv_client *c, kv__conn *k, uint64_t now) {
  if (k->state != KV__DOWN)
    return true;
  if (k != c->conns[0] && now < k->retry_ms)
    return false;
  return kv__conn_open(c, k, now) == 0;
}

/* The ring's own function (proto/partition.h): client and nodes agree. */
static uint32_t kv__partition(const kv__ring *rg, const void *key,
                              size_t klen) {
  return kv_partition(1u << rg->bits, key, klen);
}

/* The connection a request for key should go to, or NULL with c->errmsg
 * set when not even conns[0] can be (re)opened. */
static kv__conn *kv__route(kv_client *c, const void *key, size_t klen,
                           uint64_t now) {
  const kv__ring *rg = c->route ? c->ring : NULL;
  if (rg && key) {
    uint32_t p = kv__partition(rg, key, klen);
    const uint16_t *own = rg->owners + (size_t)p * rg->width;
    for (int pass = c->region[0] ? 0 : 1; pass < 2; pass++) {
      for (uint8_t i = 0; i < rg->nown[p]; i++) {
        const kv__rnode *nd = &rg->nodes[own[i]];
        if (!nd->up || (pass == 0 && strcmp(nd->region, c->region) != 0))
          continue;
        kv__conn *k = kv__node_conn(c, nd);
        if (k && kv__conn_usable(c, k, now))
          return k;
      }
    }
  }
  kv__conn *home = c->conns[0];
  return kv__conn_usable(c, home, now) ? home : NULL;
}

/* ---- the ring ---- */

static void kv__ring_free(kv__ring *rg) {
  if (!rg)
    return;
  free(rg->nodes);
  free(rg->owners);
  free(rg->nown);
  free(rg);
}

static int kv__read_str_field(mp_reader *r, char *out, size_t cap) {
  if (mp_peek(r) == MP_STR || mp_peek(r) == MP_BIN)
    return mp_read_cstr(r, out, cap);
  out[0] = '\0';
  return mp_skip(r);
}

static int kv__ring_nodes(kv__ring *rg, kv_slice raw) {
  mp_reader r;
  uint32_t n;
  mp_reader_init(&r, raw.ptr, raw.len);
  if (mp_read_array(&r, &n) || n == 0 || n > KV__RING_NODES_MAX)
    return KV_EPROTO;
  rg->nodes = calloc(n, sizeof(*rg->nodes));
  if (!rg->nodes)
    return KV_ENOMEM;
  rg->nnodes = n;
  for (uint32_t i = 0; i < n; i++) {
    kv__rnode *nd = &rg->nodes[i];
    char state[WIRE_NAME_MAX] = "up";
    uint32_t nf;
    if (mp_read_map(&r, &nf))
      return KV_EPROTO;
    for (uint32_t f = 0; f < nf; f++) {
      kv_slice k;
      int rc;
      if (mp_read_str(&r, &k))
        return KV_EPROTO;
      if (mp_slice_eq(k, "id"))
        rc = kv__read_str_field(&r, nd->id, sizeof(nd->id));
      else if (mp_slice_eq(k, "listen"))
        rc = kv__read_str_field(&r, nd->listen, sizeof(nd->listen));
      else if (mp_slice_eq(k, "region"))
        rc = kv__read_str_field(&r, nd->region, sizeof(nd->region));
      else if (mp_slice_eq(k, "state"))
        rc = kv__read_str_field(&r, state, sizeof(state));
      else
        rc = mp_skip(&r);
      if (rc)
        return KV_EPROTO;
    }
    nd->up = kv__node_up(state);
  }
  return 0;
}

static int kv__ring_node_index(const kv__ring *rg, kv_slice id) {
  for (size_t i = 0; i < rg->nnodes; i++)
    if (mp_slice_eq(id, rg->nodes[i].id))
      return (int)i;
  return -1;
}

static int kv__ring_parts(kv__ring *rg, kv_slice raw) {
  mp_reader r;
  uint32_t n;
  mp_reader_init(&r, raw.ptr, raw.len);
  if (mp_read_array(&r, &n) || n != rg->q)
    return KV_EPROTO;
  rg->width = KV__RING_OWNERS_MAX;
  rg->owners = calloc((size_t)rg->q * rg->width, sizeof(*rg->owners));
  rg->nown = calloc(rg->q, 1);
  if (!rg->owners || !rg->nown)
    return KV_ENOMEM;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t nf;
    uint64_t part = UINT64_MAX;
    kv_slice owners = {NULL, 0};
    if (mp_read_map(&r, &nf))
      return KV_EPROTO;
    for (uint32_t f = 0; f < nf; f++) {
      kv_slice k;
      if (mp_read_str(&r, &k))
        return KV_EPROTO;
      int rc;
      if (mp_slice_eq(k, "partition"))
        rc = mp_read_uint(&r, &part);
      else if (mp_slice_eq(k, "owners"))
        rc = mp_read_raw(&r, &owners);
      else
        rc = mp_skip(&r);
      if (rc)
        return KV_EPROTO;
    }
    if (part >= rg->q || !owners.ptr)
      return KV_EPROTO;
    mp_reader o;
    uint32_t no;
    mp_reader_init(&o, owners.ptr, owners.len);
    if (mp_read_array(&o, &no))
      return KV_EPROTO;
    uint16_t *slot = rg->owners + (size_t)part * rg->width;
    uint8_t cnt = 0;
    for (uint32_t j = 0; j < no; j++) {
      kv_slice id;
      if (mp_read_bytes(&o, &id))
        return KV_EPROTO;
      int idx = kv__ring_node_index(rg, id);
      if (idx >= 0 && cnt < rg->width)
        slot[cnt++] = (uint16_t)idx;
    }
    rg->nown[part] = cnt;
  }
  return 0;
}

/* Parses an ADMIN "ring" result. Returns 0 and *out, or an error. */
static int kv__ring_parse(kv_slice raw, kv__ring **out) {
  mp_reader r;
  uint32_t nf;
  kv_slice nodes = {NULL, 0}, parts = {NULL, 0};
  uint64_t q = 0;
  mp_reader_init(&r, raw.ptr, raw.len);
  if (mp_read_map(&r, &nf))
    return KV_EPROTO;
  for (uint32_t f = 0; f < nf; f++) {
    kv_slice k;
    int rc;
    if (mp_read_str(&r, &k))
      return KV_EPROTO;
    if (mp_slice_eq(k, "q"))
      rc = mp_read_uint(&r, &q);
    else if (mp_slice_eq(k, "nodes"))
      rc = mp_read_raw(&r, &nodes);
    else if (mp_slice_eq(k, "partitions"))
      rc = mp_read_raw(&r, &parts);
    else
      rc = mp_skip(&r);
    if (rc)
      return KV_EPROTO;
  }
  if (q == 0 || q > KV__RING_Q_MAX || (q & (q - 1)) || !nodes.ptr ||
      !parts.ptr)
    return KV_EPROTO;
  kv__ring *rg = calloc(1, sizeof(*rg));
  if (!rg)
    return KV_ENOMEM;
  rg->q = (uint32_t)q;
  while ((1ull << rg->bits) < q)
    rg->bits++;
  int rc = kv__ring_nodes(rg, nodes);
  if (rc == 0)
    rc = kv__ring_parts(rg, parts);
  if (rc) {
    kv__ring_free(rg);
    return rc;
  }
  *out = rg;
  return 0;
}

static void kv__ring_done(kv_client *c, int status, const wire_msg *m) {
  c->ring_pending = false;
  c->ring_next_ms = kv__now_ms() + KV__RING_REFRESH_MS;
  if (status == KV_ETIMEDOUT || status == KV_ECLOSED || status == KV_ECONN)
    return; /* keep what we had; try again later */
  kv__ring *rg = NULL;
  if (status || kv__ring_parse(m->raw, &rg)) {
    c->ring_broken = true; /* an older node or a bad reply: do not route */
    kv__ring_free(c->ring);
    c->ring = NULL;
    return;
  }
  kv__ring_free(c->ring);
  c->ring = rg;
}

/* Queues an ADMIN on k: kind KV__K_RING or KV__K_ADMIN. */
static int kv__admin_send(kv_client *c, kv__conn *k, int kind,
                          const char *cmd, const char *const *args,
                          kv__wait *w, uint64_t now) {
  size_t nargs = 0;
  if (args)
    while (args[2 * nargs] && args[2 * nargs + 1] && nargs < KV__ADMIN_ARGS_MAX)
      nargs++;
  int rc = 0;
  kv__req *q = kv__req_new(c, kind, k, c->timeout_ms + KV__TIMEOUT_GRACE_MS,
                           now, &rc);
  if (!q)
    return rc;
  q->arg = w;
  size_t before = k->out.len;
  msgpack_packer pk;
  size_t start;
  wire_begin(&k->out, &pk, &start, WIRE_ADMIN, q->id, 2);
  mp_pack_cstr(&pk, cmd);
  msgpack_pack_map(&pk, nargs);
  for (size_t i = 0; i < nargs; i++) {
    mp_pack_cstr(&pk, args[2 * i]);
    mp_pack_cstr(&pk, args[2 * i + 1]);
  }
  rc = wire_end(&k->out, start);
  if (rc || k->out.oom) {
    k->out.len = before;
    k->out.oom = 0;
    kv__req_unlink(c, q);
    kv__req_recycle(c, q);
    return KV_ENOMEM;
  }
  return 0;
}

static void kv__ring_refresh(kv_client *c, uint64_t now) {
  if (!c->route || c->ring_broken || c->ring_pending || now < c->ring_next_ms)
    return;
  kv__conn *home = c->conns[0];
  if (!kv__conn_usable(c, home, now)) {
    c->ring_next_ms = now + KV__RING_REFRESH_MS;
    return;
  }
  if (kv__admin_send(c, home, KV__K_RING, "ring", NULL, NULL, now) == 0)
    c->ring_pending = true;
  else
    c->ring_next_ms = now + KV__RING_REFRESH_MS;
}

/* ---- timeouts ---- */

static void kv__expire(kv_client *c, uint64_t now) {
  if (now < c->min_deadline_ms)
    return;
  /* A connection whose HELLO timed out goes down first (its requests fail
   * or move with it); conn_fail changes the list, so rescan after each. */
  for (bool again = true; again;) {
    again = false;
    for (kv__req *q = c->head.next; q != &c->head; q = q->next) {
      if (q->kind == KV__K_HELLO && q->deadline_ms <= now) {
        kv__conn_fail(c, q->conn, KV_ECONN, "no hello from %s within %u ms",
                      q->conn->addr, (unsigned)q->timeout_ms);
        again = true;
        break;
      }
    }
  }
  /* Detach the expired requests, then run their callbacks (which may
   * queue new requests). */
  kv__req expired;
  expired.next = expired.prev = &expired;
  uint64_t next = UINT64_MAX;
  for (kv__req *q = c->head.next, *nx; q != &c->head; q = nx) {
    nx = q->next;
    if (q->deadline_ms > now) {
      if (q->deadline_ms < next)
        next = q->deadline_ms;
      continue;
    }
    kv__req_unlink(c, q);
    q->prev = expired.prev;
    q->next = &expired;
    expired.prev->next = q;
    expired.prev = q;
  }
  c->min_deadline_ms = next;
  for (kv__req *q = expired.next, *nx; q != &expired; q = nx) {
    nx = q->next;
    char text[KV__ERRMSG_MAX];
    snprintf(text, sizeof(text), "no reply from %s within %u ms",
             q->conn->addr, (unsigned)q->timeout_ms);
    kv__complete(c, q, KV_ETIMEDOUT, text, NULL);
  }
}

/* ---- public API: connecting ---- */

static kv_client *kv__client_new(const kv_connect_opts *opts) {
  kv_client *c = calloc(1, sizeof(*c));
  if (!c)
    return NULL;
  c->slots = calloc(KV__SLOTS_INIT, sizeof(*c->slots));
  if (!c->slots) {
    free(c);
    return NULL;
  }
  c->slot_mask = KV__SLOTS_INIT - 1;
  c->head.next = c->head.prev = &c->head;
  c->next_id = 1;
  c->min_deadline_ms = UINT64_MAX;
  c->route = !(opts && opts->no_route);
  c->connect_timeout_ms = opts && opts->connect_timeout_ms
                              ? opts->connect_timeout_ms
                              : KV__CONNECT_TIMEOUT_MS_DEFAULT;
  c->timeout_ms =
      opts && opts->timeout_ms ? opts->timeout_ms : KV__TIMEOUT_MS_DEFAULT;
  if (opts && opts->region)
    snprintf(c->region, sizeof(c->region), "%s", opts->region);
  return c;
}

/* Polls c until conns[0] is READY or DOWN. */
static void kv__wait_home(kv_client *c) {
  kv__conn *home = c->conns[0];
  while (home->state != KV__READY && home->state != KV__DOWN) {
    kv_client *cs[1] = {c};
    if (kv_poll(cs, 1, -1) < 0)
      break;
  }
}

int kv_connect(const char *hosts, const kv_connect_opts *opts,
               kv_client **out, char *err, size_t errlen) {
  if (err && errlen)
    err[0] = '\0';
  if (!out || !hosts || !*hosts) {
    if (err && errlen)
      snprintf(err, errlen, "no host given");
    return KV_EINVAL;
  }
  *out = NULL;
  kv_client *c = kv__client_new(opts);
  if (!c) {
    if (err && errlen)
      snprintf(err, errlen, "out of memory");
    return KV_ENOMEM;
  }
  int rc = KV_ECONN;
  const char *p = hosts;
  size_t tried = 0;
  while (*p && tried < KV__HOSTS_MAX) {
    const char *comma = strchr(p, ',');
    size_t l = comma ? (size_t)(comma - p) : strlen(p);
    char addr[KV__ADDR_MAX];
    if (l == 0 || l >= sizeof(addr)) {
      kv__seterr(c, "bad host \"%.*s\"", (int)(l < 64 ? l : 64), p);
      rc = KV_EINVAL;
    } else {
      memcpy(addr, p, l);
      addr[l] = '\0';
      tried++;
      if (c->nconns == 0) {
        if (!kv__conn_new(c, addr)) {
          rc = KV_ENOMEM;
          break;
        }
      } else {
        strcpy(c->conns[0]->addr, addr);
      }
      rc = kv__conn_open(c, c->conns[0], kv__now_ms());
      if (rc == 0) {
        kv__wait_home(c);
        if (c->conns[0]->state == KV__READY)
          break;
        rc = c->conns[0]->fail_code == KV_EVERSION ? KV_EVERSION : KV_ECONN;
      }
    }
    if (!comma)
      break;
    p = comma + 1;
  }
  if (c->nconns == 0 || c->conns[0]->state != KV__READY) {
    if (err && errlen)
      snprintf(err, errlen, "%s", c->errmsg[0] ? c->errmsg : kv_strerror(rc));
    kv_close(c);
    return rc ? rc : KV_ECONN;
  }
  if (c->route) {
    uint64_t now = kv__now_ms();
    kv__ring_refresh(c, now);
    while (c->ring_pending) {
      kv_client *cs[1] = {c};
      if (kv_poll(cs, 1, -1) < 0)
        break;
    }
  }
  c->errmsg[0] = '\0';
  *out = c;
  return 0;
}

void kv_close(kv_client *c) {
  if (!c)
    return;
  /* Fail what is in flight; the callbacks must not use c afterwards. */
  for (size_t i = 0; i < c->nconns; i++) {
    kv__conn *k = c->conns[i];
    kv__conn_close_fd(k);
  }
  while (c->head.next != &c->head) {
    kv__req *q = c->head.next;
    kv__req_unlink(c, q);
    char text[64];
    snprintf(text, sizeof(text), "the client was closed");
    if (q->kind == KV__K_RING)
      q->kind = KV__K_HELLO; /* no ring handling while closing */
    kv__complete(c, q, KV_ECLOSED, text, NULL);
  }
  for (size_t i = 0; i < c->nconns; i++)
    kv__conn_free(c->conns[i]);
  free(c->conns);
  while (c->free_reqs) {
    kv__req *q = c->free_reqs;
    c->free_reqs = q->next;
    free(q);
  }
  free(c->slots);
  free(c->sibs);
  kv__ring_free(c->ring);
  free(c);
}

const char *kv_errmsg(const kv_client *c) {
  if (!c)
    return "no client";
  return c->errmsg;
}

size_t kv_inflight(const kv_client *c) { return c ? c->nuser : 0; }

/* ---- public API: asynchronous requests ---- */

static int kv__submit(kv_client *c, int kind, const void *key, size_t klen,
                      const void *val, size_t vlen, const void *ctx,
                      size_t ctx_len, const kv_options *o, kv_cb cb,
                      void *arg) {
  if (!c || !cb || (!key && klen))
    return KV_EINVAL;
  if (klen > KV_KEY_MAX) {
    kv__seterr(c, "key of %zu bytes is over the limit of %u", klen,
               (unsigned)KV_KEY_MAX);
    return KV_ETOOBIG;
  }
  if (vlen > KV__VALUE_MAX || ctx_len > KV__VALUE_MAX) {
    kv__seterr(c, "value of %zu bytes is too large", vlen);
    return KV_ETOOBIG;
  }
  uint64_t now = kv__now_ms();
  kv__conn *k = kv__route(c, key ? key : "", klen, now);
  if (!k)
    return KV_ECONN;
  uint32_t tmo = o && o->timeout_ms ? o->timeout_ms : c->timeout_ms;
  int rc = 0;
  kv__req *q = kv__req_new(c, kind, k, tmo, now, &rc);
  if (!q) {
    kv__seterr(c, "cannot queue a request: %s", kv_strerror(rc));
    return rc;
  }
  q->deadline_ms += KV__TIMEOUT_GRACE_MS;
  if (q->deadline_ms < c->min_deadline_ms)
    c->min_deadline_ms = q->deadline_ms;
  q->cb = cb;
  q->arg = arg;
  wire_msg m;
  memset(&m, 0, sizeof(m));
  m.type = kind == KV__K_GET ? WIRE_GET : kind == KV__K_PUT ? WIRE_PUT
                                                            : WIRE_DEL;
  m.req_id = q->id;
  m.key.ptr = key ? key : (const void *)"";
  m.key.len = klen;
  m.value.ptr = val ? val : (const void *)"";
  m.value.len = vlen;
  m.context.ptr = ctx;
  m.context.len = ctx ? ctx_len : 0;
  kv__opts_to_wire(c, o, &m.opts);
  size_t before = k->out.len;
  rc = wire_encode(&k->out, &m);
  if (rc || k->out.oom) {
    k->out.len = before;
    k->out.oom = 0;
    kv__req_unlink(c, q);
    kv__req_recycle(c, q);
    kv__seterr(c, "cannot encode a request: %s", kv_strerror(KV_ENOMEM));
    return KV_ENOMEM;
  }
  return 0;
}

int kv_get_async(kv_client *c, const void *key, size_t klen,
                 const kv_options *o, kv_cb cb, void *arg) {
  return kv__submit(c, KV__K_GET, key, klen, NULL, 0, NULL, 0, o, cb, arg);
}

int kv_put_async(kv_client *c, const void *key, size_t klen, const void *val,
                 size_t vlen, const void *ctx, size_t ctx_len,
                 const kv_options *o, kv_cb cb, void *arg) {
  return kv__submit(c, KV__K_PUT, key, klen, val, vlen, ctx, ctx_len, o, cb,
                    arg);
}

int kv_del_async(kv_client *c, const void *key, size_t klen, const void *ctx,
                 size_t ctx_len, const kv_options *o, kv_cb cb, void *arg) {
  return kv__submit(c, KV__K_DEL, key, klen, NULL, 0, ctx, ctx_len, o, cb,
                    arg);
}

/* ---- public API: blocking requests ---- */

static void kv__block_cb(void *arg, int status, const char *errmsg,
                         const kv_result *res) {
  kv__wait *w = arg;
  w->done = true;
  w->status = status;
  if (status) {
    snprintf(w->c->errmsg, sizeof(w->c->errmsg), "%s",
             errmsg ? errmsg : kv_strerror(status));
    return;
  }
  if (w->want) {
    w->res = kv__result_dup(res);
    if (!w->res) {
      w->status = KV_ENOMEM;
      snprintf(w->c->errmsg, sizeof(w->c->errmsg), "out of memory");
    }
  }
}

static int kv__block(kv_client *c, kv__wait *w) {
  while (!w->done) {
    kv_client *cs[1] = {c};
    int rc = kv_poll(cs, 1, -1);
    if (rc < 0) {
      /* kv_poll failed before the request could end; it is still queued
       * with w as its argument, so finish it here. */
      kv__seterr(c, "poll failed: %s", kv_strerror(rc));
      for (kv__req *q = c->head.next; q != &c->head; q = q->next) {
        if (q->arg == w) {
          kv__req_unlink(c, q);
          kv__complete(c, q, rc, c->errmsg, NULL);
          break;
        }
      }
      return rc;
    }
  }
  return w->status;
}

int kv_get(kv_client *c, const void *key, size_t klen, const kv_options *o,
           kv_result **out) {
  if (out)
    *out = NULL;
  kv__wait w = {.c = c, .want = out != NULL};
  int rc = kv_get_async(c, key, klen, o, kv__block_cb, &w);
  if (rc)
    return rc;
  rc = kv__block(c, &w);
  if (out)
    *out = w.res;
  else
    kv_result_free(w.res);
  return rc;
}

int kv_put(kv_client *c, const void *key, size_t klen, const void *val,
           size_t vlen, const void *ctx, size_t ctx_len, const kv_options *o,
           kv_result **out) {
  if (out)
    *out = NULL;
  kv__wait w = {.c = c, .want = out != NULL};
  int rc = kv_put_async(c, key, klen, val, vlen, ctx, ctx_len, o,
                        kv__block_cb, &w);
  if (rc)
    return rc;
  rc = kv__block(c, &w);
  if (out)
    *out = w.res;
  else
    kv_result_free(w.res);
  return rc;
}

int kv_del(kv_client *c, const void *key, size_t klen, const void *ctx,
           size_t ctx_len, const kv_options *o, kv_result **out) {
  if (out)
    *out = NULL;
  kv__wait w = {.c = c, .want = out != NULL};
  int rc = kv_del_async(c, key, klen, ctx, ctx_len, o, kv__block_cb, &w);
  if (rc)
    return rc;
  rc = kv__block(c, &w);
  if (out)
    *out = w.res;
  else
    kv_result_free(w.res);
  return rc;
}

int kv__admin_msgpack(kv_client *c, const char *cmd, const char *const *args,
                      uint8_t **out, size_t *len) {
  if (out)
    *out = NULL;
  if (!c || !cmd || !out || !len)
    return KV_EINVAL;
  uint64_t now = kv__now_ms();
  kv__conn *home = c->conns[0];
  if (!kv__conn_usable(c, home, now))
    return KV_ECONN;
  kv__wait w = {.c = c};
  int rc = kv__admin_send(c, home, KV__K_ADMIN, cmd, args, &w, now);
  if (rc) {
    kv__seterr(c, "cannot queue the admin command: %s", kv_strerror(rc));
    return rc;
  }
  rc = kv__block(c, &w);
  if (rc) {
    free(w.raw);
    return rc;
  }
  *out = w.raw;
  *len = w.raw_len;
  return 0;
}

int kv_admin(kv_client *c, const char *cmd, const char *const *args,
             char **json) {
  if (json)
    *json = NULL;
  if (!json)
    return KV_EINVAL;
  uint8_t *raw;
  size_t len;
  int rc = kv__admin_msgpack(c, cmd, args, &raw, &len);
  if (rc)
    return rc;
  kvbuf b;
  kvbuf_init(&b);
  rc = kv__json_from_msgpack(&b, raw, len);
  free(raw);
  if (rc) {
    kvbuf_free(&b);
    kv__seterr(c, "could not render the admin reply as JSON: %s",
               kv_strerror(rc));
    return rc;
  }
  *json = (char *)kvbuf_steal(&b, &len);
  return 0;
}

/* ---- public API: the I/O loop ---- */

static uint64_t kv__callbacks(kv_client *const *cs, size_t n) {
  uint64_t t = 0;
  for (size_t i = 0; i < n; i++)
    t += cs[i]->ncallbacks;
  return t;
}

int kv_poll(kv_client *const *cs, size_t n, int timeout_ms) {
  return kv_poll_us(cs, n, timeout_ms < 0 ? -1 : (int64_t)timeout_ms * 1000);
}

int kv_poll_us(kv_client *const *cs, size_t n, int64_t timeout_us) {
  if (!cs && n)
    return KV_EINVAL;
  uint64_t before = kv__callbacks(cs, n);
  uint64_t now = kv__now_ms();
  size_t nfds = 0;
  size_t inflight = 0;
  uint64_t min_deadline = UINT64_MAX;
  for (size_t i = 0; i < n; i++) {
    kv_client *c = cs[i];
    kv__expire(c, now);
    kv__ring_refresh(c, now);
    for (size_t j = 0; j < c->nconns; j++) {
      kv__conn_flush(c, c->conns[j]);
      if (c->conns[j]->fd >= 0)
        nfds++;
    }
    inflight += c->nall;
    if (c->min_deadline_ms < min_deadline)
      min_deadline = c->min_deadline_ms;
  }
  struct pollfd stack_fds[KV__POLLFD_STACK];
  kv__conn *stack_map[KV__POLLFD_STACK];
  size_t stack_cli[KV__POLLFD_STACK];
  struct pollfd *fds = stack_fds;
  kv__conn **map = stack_map;
  size_t *cli = stack_cli;
  if (nfds > KV__POLLFD_STACK) {
    fds = malloc(nfds * sizeof(*fds));
    map = malloc(nfds * sizeof(*map));
    cli = malloc(nfds * sizeof(*cli));
    if (!fds || !map || !cli) {
      free(fds);
      free(map);
      free(cli);
      return KV_ENOMEM;
    }
  }
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    for (size_t j = 0; j < cs[i]->nconns && m < nfds; j++) {
      kv__conn *k = cs[i]->conns[j];
      if (k->fd < 0)
        continue;
      fds[m].fd = k->fd;
      fds[m].events = POLLIN;
      if (k->state == KV__CONNECTING || k->out.len)
        fds[m].events |= POLLOUT;
      fds[m].revents = 0;
      map[m] = k;
      cli[m] = i;
      m++;
    }
  }
  int64_t wait_us = timeout_us < 0 ? -1 : timeout_us;
  if (kv__callbacks(cs, n) != before)
    wait_us = 0; /* timeouts already ran callbacks: do not wait */
  if (wait_us < 0 && inflight == 0)
    wait_us = 0;
  if (min_deadline != UINT64_MAX && wait_us != 0) {
    uint64_t until_ms = min_deadline > now ? min_deadline - now + 1 : 0;
    int64_t until_us = until_ms > (uint64_t)INT64_MAX / 1000
                           ? INT64_MAX
                           : (int64_t)until_ms * 1000;
    if (wait_us < 0 || until_us < wait_us)
      wait_us = until_us;
  }
  struct timespec ts = {(time_t)(wait_us / 1000000),
                        (long)(wait_us % 1000000) * 1000L};
  int rc = 0;
  int pr = m ? ppoll(fds, m, wait_us < 0 ? NULL : &ts, NULL) : 0;
  if (pr < 0 && errno != EINTR)
    rc = KV_EIO;
  if (m == 0 && wait_us > 0)
    nanosleep(&ts, NULL); /* nothing to watch: honour the wait */
  for (size_t i = 0; pr > 0 && i < m; i++) {
    kv__conn *k = map[i];
    kv_client *c = cs[cli[i]];
    short ev = fds[i].revents;
    if (!ev || k->fd != fds[i].fd)
      continue;
    if (k->state == KV__CONNECTING) {
      if (ev & (POLLOUT | POLLERR | POLLHUP)) {
        kv__conn_connected(c, k);
        if (k->state == KV__OPEN)
          kv__conn_flush(c, k);
      }
      continue;
    }
    if ((ev & POLLOUT) && k->out.len)
      kv__conn_flush(c, k);
    if (k->fd >= 0 && (ev & (POLLIN | POLLERR | POLLHUP)))
      kv__conn_read(c, k);
  }
  if (fds != stack_fds) {
    free(fds);
    free(map);
    free(cli);
  }
  now = kv__now_ms();
  for (size_t i = 0; i < n; i++)
    kv__expire(cs[i], now);
  if (rc)
    return rc;
  uint64_t ran = kv__callbacks(cs, n) - before;
  return ran > INT32_MAX ? INT32_MAX : (int)ran;
}
