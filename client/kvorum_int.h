/*
 * kvorum_int.h: internals of libkvorum. Not installed; not part of the
 * public API. Two parts:
 *  - shared by the library and the kvorum CLI: kv__admin_msgpack (the
 *    JSON renderer of admin replies is proto/kv_json.h);
 *  - the library's own state and the functions its files call in each
 *    other: the kv_client (kvorum.c), its connections (conn.c), requests
 *    (req.c), ring copy and routing (route.c), and timeouts (poll.c).
 * Depends on: kvorum.h, kvtls.h, mp.h and wire.h (kvproto).
 */
#ifndef KVORUM_INT_H
#define KVORUM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv_base64.h"
#include "kv_json.h"
#include "kvorum.h"
#include "kvtls.h"
#include "mp.h"
#include "wire.h"

struct kv_client;

/* Like kv_admin but hands back the result as msgpack: *out is malloc'd
 * (caller frees) and holds *len bytes. Returns 0 or a KV_E* code with
 * kv_errmsg set. */
int kv__admin_msgpack(struct kv_client *c, const char *cmd,
                      const char *const *args, uint8_t **out, size_t *len);

/* ---- the library's own state (only the files of client/ use it) ---- */

#define KV__ADDR_MAX 256 /* "host:port" */
#define KV__ERRMSG_MAX (WIRE_ERRMSG_MAX + 256)

/* A connection's state; its life is drawn in conn.c. KV__TLS: the TCP
 * connection is up and the TLS handshake under way. */
enum kv__state { KV__DOWN, KV__CONNECTING, KV__TLS, KV__OPEN, KV__READY };

enum kv__kind {
  KV__K_GET,
  KV__K_PUT,
  KV__K_DEL,
  KV__K_ADMIN,
  KV__K_HELLO,
  KV__K_RING,
  KV__K_UPDATE /* a put with WIRE_OPT_TYPED: an operation on a data type */
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
  kvtls *tls;             /* the TLS layer, while fd is open with TLS on */
  int tls_want;           /* KV__TLS: the POLLIN/POLLOUT the handshake waits
                             for; OPEN/READY: POLLOUT when a read must wait
                             to write, POLLIN when a write must wait to read */
  size_t inflight;        /* requests in flight on it (kv__req.conn) */
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
  kvtls_ctx *tls;     /* NULL: plain TCP */
  char *user;         /* NULL: HELLO without credentials */
  uint8_t *secret;    /* the password, wiped and freed by kv_close */
  size_t secret_len;
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
  uint64_t idle_check_ms; /* kv_poll watches idle connections from then */
  char errmsg[KV__ERRMSG_MAX];
};

/* kvorum.c: the client. */

/* Milliseconds of the monotonic clock. */
uint64_t kv__now_ms(void);

/* Sets the message kv_errmsg(c) returns. */
void kv__seterr(kv_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Queues an ADMIN command with args (NULL-terminated name/value pairs) on
 * k as a request of kind KV__K_RING or KV__K_ADMIN, w its argument.
 * Returns 0 or KV_ENOMEM/KV_EFULL (nothing queued). */
int kv__admin_send(kv_client *c, kv__conn *k, int kind, const char *cmd,
                   const char *const *args, kv__wait *w, uint64_t now);

/* req.c: the request table and completion. */

/* The request in flight with this id, or NULL. */
kv__req *kv__lookup(kv_client *c, uint64_t id);

/* Takes a request from the pool, gives it an id, puts it in the table and
 * at the tail of the in-flight list. Returns NULL on KV_ENOMEM/KV_EFULL
 * (*rc set). */
kv__req *kv__req_new(kv_client *c, int kind, kv__conn *k, uint32_t timeout_ms,
                     uint64_t now, int *rc);

/* Removes q from the table and the in-flight list (not yet recycled). */
void kv__req_unlink(kv_client *c, kv__req *q);

/* Returns an unlinked q to the pool. */
void kv__req_recycle(kv_client *c, kv__req *q);

/* Runs the completion of an unlinked request with status, message and the
 * reply m (NULL on failure), then recycles q. */
void kv__complete(kv_client *c, kv__req *q, int status, const char *msg,
                  const wire_msg *m);

/* conn.c: connections. */

/* A new DOWN connection to addr, owned by c (freed by kv_close), or NULL
 * when c has KV__CONNS_MAX, addr is too long or memory is short. */
kv__conn *kv__conn_new(kv_client *c, const char *addr);

/* Frees k and closes its socket; NULL is a no-op. */
void kv__conn_free(kv__conn *k);

/* Closes k's socket, if open, and leaves everything else as it is. */
void kv__conn_close_fd(kv__conn *k);

/* Opens a DOWN connection: a non-blocking connect and a queued HELLO.
 * Returns 0 or KV_ECONN/KV_EINVAL/KV_ENOMEM with c->errmsg set. */
int kv__conn_open(kv_client *c, kv__conn *k, uint64_t now);

/* True when k can take a request now, (re)opening it if needed. */
bool kv__conn_usable(kv_client *c, kv__conn *k, uint64_t now);

/* Takes down k: closes the socket; its requests move to conns[0] when
 * none of k's bytes were written and conns[0] is alive, else they fail with
 * code (KV_ECONN instead of KV_ECLOSED when k never wrote a byte) and the
 * message formatted from fmt, which is also left in c->errmsg. */
void kv__conn_fail(kv_client *c, kv__conn *k, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes k's pending output with one write(). */
void kv__conn_flush(kv_client *c, kv__conn *k);

/* Reads what k has and handles the frames in it. */
void kv__conn_read(kv_client *c, kv__conn *k);

/* Completes a non-blocking connect: k becomes OPEN (TLS when the client
 * speaks TLS) or goes down. */
void kv__conn_connected(kv_client *c, kv__conn *k);

/* Advances k's TLS handshake: k stays TLS, becomes OPEN or goes down. */
void kv__conn_handshake(kv_client *c, kv__conn *k);

/* The poll() events k waits for (0: none, the socket is closed). */
short kv__conn_events(const kv__conn *k);

/* Runs what the events ev of k's socket allow: finishing the connect or
 * the handshake, writing and reading. */
void kv__conn_io(kv_client *c, kv__conn *k, short ev);

/* True when k holds decrypted bytes poll() cannot see: read it now. */
static inline bool kv__conn_pending(const kv__conn *k) {
  return k->tls && kvtls_pending(k->tls);
}

/* route.c: the ring copy and routing. */

/* The connection a request for key should go to, or NULL with c->errmsg
 * set when not even conns[0] can be (re)opened. */
kv__conn *kv__route(kv_client *c, const void *key, size_t klen, uint64_t now);

/* Asks conns[0] for the ring when routing is on and a refresh is due. */
void kv__ring_refresh(kv_client *c, uint64_t now);

/* Takes the answer to a ring request: m the reply (NULL on failure). */
void kv__ring_done(kv_client *c, int status, const wire_msg *m);

/* Frees a ring copy; NULL is a no-op. */
void kv__ring_free(kv__ring *rg);

#endif
