/*
 * uv_tls.h: TLS for kvorumd's connections (docs/security.md), with
 * OpenSSL 3 over memory BIOs: the shell reads and writes the socket as
 * always and hands ciphertext to and from these functions, so nothing
 * here blocks the loop or touches a socket.
 *
 * A uvt_ctx holds the node's certificate, key and cluster CA as two
 * SSL_CTXs (accepting, dialling). A uvt_conn is one connection's TLS
 * state: feed it what the socket read (uvt_conn_feed: plaintext out, and
 * handshake bytes to send), seal what the node writes (uvt_conn_seal).
 *
 * Depends on: mp.h (kvbuf), kv_err.h, OpenSSL.
 */
#ifndef KV_UV_TLS_H
#define KV_UV_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mp.h"

/* What a port speaks: --client-tls and --peer-tls. */
typedef enum uvt_mode {
  UVT_PLAIN, /* plain TCP only */
  UVT_TLS,   /* TLS only; a plain client is refused */
  UVT_BOTH,  /* either, told apart by the first byte (rolling upgrades) */
} uvt_mode;
/* Parses "plain", "tls" or "both". Returns 0 or -1. */
int uvt_mode_parse(const char *s, uvt_mode *out);
const char *uvt_mode_name(uvt_mode m);

typedef struct uvt_ctx uvt_ctx;
/* Loads cert (PEM, the chain after the leaf), key and ca (the cluster
 * CA, PEM). Returns 0 and *out, or KV_EINVAL with the reason in err. */
int uvt_ctx_new(const char *cert, const char *key, const char *ca,
                uvt_ctx **out, char *err, size_t errlen);
/* Rereads the three files (SIGHUP). New connections use the new
 * certificates, open ones keep theirs. On error the old ones stay and err
 * says why. Returns 0 or KV_EINVAL. */
int uvt_ctx_reload(uvt_ctx *t, char *err, size_t errlen);
void uvt_ctx_free(uvt_ctx *t);
/* The accepting SSL_CTX for h2o, which runs its own handshakes (the
 * server's settings, and a count of the handshakes that fail); valid
 * until the next reload. */
SSL_CTX *uvt_ctx_https(uvt_ctx *t);
/* HTTPS handshakes that failed (a fatal alert sent or received before the
 * handshake finished), since the node started. */
uint64_t uvt_ctx_https_refused(const uvt_ctx *t);

typedef enum uvt_role {
  UVT_ACCEPT_CLIENT, /* a client port: a client certificate is verified
                        when one is sent, not required */
  UVT_ACCEPT_PEER,   /* the peer port: a certificate the CA signed is
                        required (mutual TLS) */
  UVT_DIAL,          /* a connection this node opens to a peer: the
                        peer's certificate must verify, ours is sent */
} uvt_role;

typedef struct uvt_conn uvt_conn;
/* A new connection's TLS state, or NULL (out of memory). */
uvt_conn *uvt_conn_new(uvt_ctx *t, uvt_role role);
void uvt_conn_free(uvt_conn *c);
/* Starts a dialled handshake: the ClientHello goes into out. Returns 0 or
 * KV_ENOMEM. */
int uvt_conn_start(uvt_conn *c, kvbuf *out);
/* Feeds len bytes read from the socket: plaintext is appended to plain,
 * bytes to send (handshake, alerts, tickets) to out. Returns 0,
 * KV_ECLOSED (the peer closed the TLS session) or KV_ECONN (the handshake
 * or a record failed: close the connection; err says why, e.g. "the peer
 * certificate did not verify: unable to get local issuer certificate"). */
int uvt_conn_feed(uvt_conn *c, const uint8_t *in, size_t len, kvbuf *plain,
                  kvbuf *out, char *err, size_t errlen);
/* Whether the handshake is done (uvt_conn_seal may be called). */
bool uvt_conn_ready(const uvt_conn *c);
/* Encrypts len plaintext bytes into out. Returns 0, KV_ENOMEM or
 * KV_ECONN. */
int uvt_conn_seal(uvt_conn *c, const uint8_t *p, size_t len, kvbuf *out);
/* Whether the peer sent a certificate the CA signed that names id (a DNS
 * subjectAltName, or the subject CN when it has none). */
bool uvt_conn_names(const uvt_conn *c, const char *id);
/* Whether the peer's certificate may serve TLS (no extended key usage, or
 * one with serverAuth): a node's certificate, not a client-only one. */
bool uvt_conn_is_node(const uvt_conn *c);
/* The peer certificate's subject CN for logs ("none" without one). */
void uvt_conn_subject(const uvt_conn *c, char *out, size_t cap);

#endif
