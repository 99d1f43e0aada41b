/*
 * kvtls.h: the client side of TLS for kvorum's tools, over OpenSSL 3:
 * libkvorum's connections (conn.c) and kvorum-bench's RESP driver
 * (bench/drv_resp.c) both use it, so both verify, negotiate and report
 * failures the same way. It knows nothing of either protocol.
 *
 * What it promises:
 *  - TLS 1.2 or later; for TLS 1.2 only forward-secret AEAD suites
 *    (KVTLS_CIPHERS), for TLS 1.3 OpenSSL's defaults, which are all AEAD;
 *  - the server's certificate is always verified (SSL_VERIFY_PEER)
 *    against ca_file, or the system trust store when ca_file is NULL;
 *  - the host name is checked only when server_name is given: nodes are
 *    addressed by IP and their certificates rarely name the address, so
 *    by default a certificate signed by the CA is enough (the CA should
 *    then sign only kvorum nodes). server_name is also sent as SNI;
 *  - sockets are used through a BIO that sends with MSG_NOSIGNAL, so a
 *    peer that closes never raises SIGPIPE in the caller's process;
 *  - nothing blocks: every step on a non-blocking socket returns
 *    KVTLS_WANT_READ or KVTLS_WANT_WRITE when it must wait, and the caller
 *    polls for that and calls the same step again (for kvtls_write, with
 *    the same bytes at the start of the buffer; it may have moved or
 *    grown);
 *  - failures come with a message a person understands, with OpenSSL's
 *    reason, e.g. "certificate verify failed (self-signed certificate in
 *    certificate chain)": loading errors say what could not be loaded,
 *    step errors give the reason only (the caller names the peer).
 *
 * A kvtls_ctx is shared by every connection of its owner and used from
 * one thread at a time, as the connections are.
 *
 * Depends on: OpenSSL 3 (libssl, libcrypto), POSIX sockets.
 */
#ifndef KVTLS_H
#define KVTLS_H

#include <stdbool.h>
#include <stddef.h>

/* TLS 1.2 suites: ECDHE or DHE key exchange with AES-GCM or ChaCha20
 * (Mozilla's "intermediate" list). */
#define KVTLS_CIPHERS                                                          \
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                 \
  "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                 \
  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                 \
  "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:"                       \
  "DHE-RSA-CHACHA20-POLY1305"

#define KVTLS_ERR_MAX 256 /* bytes of a message, NUL included */

/* Step results besides a byte count (> 0) or 0 (done). */
#define KVTLS_WANT_READ (-1)  /* call again when the socket is readable */
#define KVTLS_WANT_WRITE (-2) /* call again when the socket is writable */
#define KVTLS_EOF (-3)        /* the peer closed the connection */
#define KVTLS_FAIL (-4)       /* an error; the message says which */

typedef struct kvtls_opts {
  const char *ca_file;     /* PEM CA certificates; NULL: system store */
  const char *cert_file;   /* PEM client certificate (chain); optional */
  const char *key_file;    /* its PEM key; NULL: in cert_file */
  const char *server_name; /* SNI and name to check; NULL: chain only */
} kvtls_opts;

typedef struct kvtls_ctx kvtls_ctx; /* opaque: settings and certificates */
typedef struct kvtls kvtls;         /* opaque: one connection */

/* Loads the settings and files of o into a new context. Returns it (free
 * with kvtls_ctx_free), or NULL with a message in err naming the file and
 * OpenSSL's reason. An encrypted key is refused: nothing prompts. */
kvtls_ctx *kvtls_ctx_new(const kvtls_opts *o, char *err, size_t errlen);
/* Frees x; NULL is a no-op. Connections made from it must be freed
 * first. */
void kvtls_ctx_free(kvtls_ctx *x);

/* A TLS client over the connected non-blocking socket fd (which stays the
 * caller's: kvtls_free does not close it). Returns it, or NULL with a
 * message in err. */
kvtls *kvtls_new(kvtls_ctx *x, int fd, char *err, size_t errlen);
/* Frees t without a close_notify (the socket is about to close); NULL is
 * a no-op. */
void kvtls_free(kvtls *t);

/* Advances the handshake. Returns 0 when it is done (the peer's
 * certificate verified), KVTLS_WANT_READ/WRITE, or KVTLS_EOF/KVTLS_FAIL
 * with a message in err. */
int kvtls_handshake(kvtls *t, char *err, size_t errlen);

/* Reads up to len bytes. Returns the count (> 0), KVTLS_WANT_READ/WRITE,
 * KVTLS_EOF, or KVTLS_FAIL with a message in err. */
long kvtls_read(kvtls *t, void *buf, size_t len, char *err, size_t errlen);

/* Writes up to len bytes (a part, when the socket takes no more). Returns
 * the count (> 0), KVTLS_WANT_READ/WRITE, or KVTLS_EOF/KVTLS_FAIL with a
 * message in err. After a WANT, call again with the same bytes first. */
long kvtls_write(kvtls *t, const void *buf, size_t len, char *err,
                 size_t errlen);

/* True when decrypted bytes wait inside t: a poll() of the socket would
 * not say so, so the caller reads without waiting. */
bool kvtls_pending(const kvtls *t);

/* The negotiated version and suite, e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384",
 * into buf. */
const char *kvtls_describe(const kvtls *t, char *buf, size_t cap);

#endif
