/*
 * kvorum.h: libkvorum, the client library of kvorum.
 *
 * A kv_client talks kvorum's wire protocol (docs/protocol.md) to a cluster.
 * With routing on (the default) it learns the ring from the first node and
 * sends each request straight to a node of the key's preference list
 * (client-driven coordination, Dynamo paper Table 2), preferring nodes of
 * the client's region; with routing off every request goes to the node it
 * was connected to.
 *
 * Two APIs over the same connections:
 *  - blocking: kv_get, kv_put, kv_del, kv_update (an operation on a data
 *    type: set, counter, map; crdt.h builds it), kv_admin wait for the
 *    answer;
 *  - asynchronous: kv_*_async queue a request and return at once; many
 *    requests are in flight on one connection and replies may come out of
 *    order; kv_poll drives the I/O and calls the callbacks.
 * A kv_client is used from one thread at a time. If a function that takes a
 * callback returns an error, the callback is never called.
 *
 * Errors: functions return 0 or a negative KV_E* code (kv_err.h, kv_strerror)
 * and keep a message a person understands in kv_errmsg(client), e.g.
 * "only 1 of 2 required replicas answered within 1000 ms".
 */
#ifndef KVORUM_H
#define KVORUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KV_DEFAULT_HOST "127.0.0.1:7101" /* make run's first node */

/* Consistency levels for r, w, dw, pr, pw: a positive number of replicas,
 * 0 for the cluster's default, or one of these names. */
#define KV_ONE (-1)
#define KV_QUORUM (-2)
#define KV_ALL (-3)
#define KV_LOCAL_ONE (-4)
#define KV_LOCAL_QUORUM (-5)
#define KV_EACH_QUORUM (-6)

/* Parses "one", "quorum", "all", "local_one", "local_quorum",
 * "each_quorum" or a number into *out. Returns 0 or KV_EINVAL. */
int kv_parse_level(const char *s, int32_t *out);

typedef struct kv_client kv_client; /* opaque */

/* How to connect. Zero the struct (or pass NULL) for the defaults: new
 * fields are only ever added at the end, with 0/NULL meaning what the
 * library did before them.
 *
 * TLS (tls true, or any tls_* field set): every connection the client
 * opens, to the first host and to the nodes routing leads to, is TLS 1.2
 * or later, and the node's certificate must verify against tls_ca (PEM),
 * or the system trust store when tls_ca is NULL. The node's name is not
 * checked unless tls_server_name is given: nodes are addressed by IP and
 * ring addresses, which certificates seldom name, so by default any
 * certificate the CA signed is accepted (let that CA sign only kvorum
 * nodes). tls_server_name is checked against every node's certificate and
 * sent as SNI. tls_cert/tls_key: a client certificate for nodes that ask
 * for one (tls_key NULL: the key is in tls_cert); an encrypted key is
 * refused. A handshake that fails gives KV_ECONN with OpenSSL's reason in
 * the message, e.g. "TLS handshake with 10.0.0.5:7101 failed: certificate
 * verify failed (unable to get local issuer certificate)".
 *
 * Credentials (user non-NULL): HELLO carries user and password (password_len
 * bytes; 0 means strlen(password), NULL an empty password) on every
 * connection. The library keeps a copy, wiped by kv_close. A node with
 * authentication on refuses a HELLO without them or with wrong ones:
 * kv_connect returns KV_EAUTH with the node's message; a request the
 * user's role may not make fails with KV_EPERM. */
typedef struct kv_connect_opts {
  bool no_route;               /* send everything to the first host */
  const char *region;          /* client's region; NULL = any */
  uint32_t connect_timeout_ms; /* 0 = 2000 */
  uint32_t timeout_ms;         /* default per-request timeout; 0 = 5000 */
  bool tls;                    /* speak TLS (implied by any tls_* field) */
  const char *tls_ca;          /* PEM CA file; NULL = system trust store */
  const char *tls_cert;        /* PEM client certificate; NULL = none */
  const char *tls_key;         /* its PEM key; NULL = in tls_cert */
  const char *tls_server_name; /* name to verify and send; NULL = none */
  const char *user;            /* NULL = no credentials */
  const char *password;        /* the user's password */
  size_t password_len;         /* 0 = strlen(password) */
} kv_connect_opts;

/* Per-request options; a zeroed struct (or NULL) means cluster defaults. */
typedef struct kv_options {
  int32_t r, w, dw, pr, pw;
  uint32_t timeout_ms;
  bool no_sloppy; /* strict quorum: only primaries count and take writes */
  bool local;     /* get: only the contacted node's replica, no quorum */
  uint64_t ttl_ms; /* put: the value expires this long after it is written
                      and then reads as not found (0: never) */
} kv_options;

typedef struct kv_sibling {
  const uint8_t *value; /* NULL and len 0 for a tombstone */
  size_t len;
  bool deleted;
  /* The value is a data type's state, every sibling of the key joined
   * into one (decode with crdt.h's crdt_decode). Placed in the padding
   * after deleted, so sizeof(kv_sibling) and ts_ms's offset are as they
   * were. */
  bool typed;
  uint64_t ts_ms;
} kv_sibling;

/* The answer to a get (siblings and context) or to a put/del (context
 * only, nsiblings 0). found is false when no sibling exists. */
typedef struct kv_result {
  bool found;
  size_t nsiblings;
  kv_sibling *siblings;
  uint8_t *context; /* opaque; pass back to kv_put/kv_del */
  size_t context_len;
  /* kv_update only (NULL, 0 and zeros otherwise): the key's new state
   * after the operation (crdt.h's encoding: crdt_decode reads it), and what
   * the operation did: members or fields added and removed, and a
   * counter's value (a map: the last counter field it changed). */
  const uint8_t *state;
  size_t state_len;
  int64_t added;
  int64_t removed;
  int64_t value;
} kv_result;

/* Frees a result from the blocking API; NULL is a no-op. */
void kv_result_free(kv_result *res);

/* Connects to hosts ("host:port[,host:port...]"; the first that answers
 * is used) and says hello. Returns 0 and *out (free with kv_close), or
 * KV_ECONN / KV_EVERSION / KV_EAUTH / KV_EINVAL with a message in err
 * (KV_EINVAL also for TLS files that cannot be loaded, or a user of more
 * than 63 bytes or a password of more than 1024). opts may be NULL. */
int kv_connect(const char *hosts, const kv_connect_opts *opts,
               kv_client **out, char *err, size_t errlen);
/* Closes every connection; requests in flight complete with KV_ECLOSED.
 * kv_close(NULL) is a no-op. */
void kv_close(kv_client *c);
/* Message of the last failed call on c (never NULL). */
const char *kv_errmsg(const kv_client *c);

/* Blocking calls. On success *out is set (caller frees with
 * kv_result_free; out may be NULL for put/del when the context is not
 * wanted). ctx may be NULL (no context: nothing is overwritten, concurrent
 * values become siblings). Errors: KV_ETOOBIG, KV_EQUORUM, KV_EUNAVAIL,
 * KV_ETIMEDOUT, KV_ESIBLINGS, KV_ECONN, KV_ECLOSED, KV_EPERM (the user's
 * role does not allow it), KV_EAUTH (a reconnect's credentials were
 * refused), ... */
int kv_get(kv_client *c, const void *key, size_t klen, const kv_options *o,
           kv_result **out);
int kv_put(kv_client *c, const void *key, size_t klen, const void *val,
           size_t vlen, const void *ctx, size_t ctx_len, const kv_options *o,
           kv_result **out);
int kv_del(kv_client *c, const void *key, size_t klen, const void *ctx,
           size_t ctx_len, const kv_options *o, kv_result **out);

/* Applies an operation to the data type at key (docs/data-types.md): op
 * is built with crdt.h's crdt_op_* or crdt_mapb_* builders. The node that
 * coordinates joins the key's states, applies op and writes the result;
 * a key is typed by its first operation. On success *out (may be NULL)
 * carries the new state and the result numbers (kv_result's state, added,
 * removed, value). Errors as kv_put, and KV_ETYPE ("WRONGTYPE ...": the
 * key holds plain values or another type), KV_ETOOBIG (a limit: elements
 * per set, fields per map, element size), KV_EINVAL (a counter would
 * leave the int64 range), with the node's message in kv_errmsg. */
int kv_update(kv_client *c, const void *key, size_t klen, const void *op,
              size_t oplen, const kv_options *o, kv_result **out);

/* An operator command to the connected node ("status", "ring", "stats",
 * "join", "leave", "remove", "transfers"): args are NULL-terminated
 * name/value pairs, e.g. {"seed", "127.0.0.1:7201", NULL}. On success
 * *json is the reply rendered as JSON (malloc'd; caller frees). */
int kv_admin(kv_client *c, const char *cmd, const char *const *args,
             char **json);

/* Asynchronous calls. The callback gets the status (0 or KV_E*), a
 * message (NULL on success) and the result, both valid only during the
 * callback. Returns 0 (queued) or an error (callback not called). */
typedef void (*kv_cb)(void *arg, int status, const char *errmsg,
                      const kv_result *res);
int kv_get_async(kv_client *c, const void *key, size_t klen,
                 const kv_options *o, kv_cb cb, void *arg);
int kv_put_async(kv_client *c, const void *key, size_t klen, const void *val,
                 size_t vlen, const void *ctx, size_t ctx_len,
                 const kv_options *o, kv_cb cb, void *arg);
int kv_del_async(kv_client *c, const void *key, size_t klen, const void *ctx,
                 size_t ctx_len, const kv_options *o, kv_cb cb, void *arg);
int kv_update_async(kv_client *c, const void *key, size_t klen,
                    const void *op, size_t oplen, const kv_options *o,
                    kv_cb cb, void *arg);

/* Drives the I/O of the given clients: writes queued requests, reads
 * replies, runs callbacks, fails requests past their timeout. Waits up to
 * timeout_ms for something to happen (0: do not wait; -1: until a reply).
 * Returns the number of callbacks run, or a negative KV_E* code. */
int kv_poll(kv_client *const *cs, size_t n, int timeout_ms);
/* Like kv_poll with the wait in microseconds (-1: until a reply), for
 * callers that pace requests finer than a millisecond (open-loop load). */
int kv_poll_us(kv_client *const *cs, size_t n, int64_t timeout_us);

/* Requests queued or in flight on c. */
size_t kv_inflight(const kv_client *c);

#ifdef __cplusplus
}
#endif
#endif
