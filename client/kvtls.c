/*
 * kvtls.c: the client side of TLS (kvtls.h is the contract), over
 * OpenSSL 3. A context holds an SSL_CTX with the settings kvtls.h lists
 * and a BIO method of our own whose reads and writes are recv() and
 * send(MSG_NOSIGNAL) on the caller's socket (OpenSSL's socket BIO uses
 * write(), which raises SIGPIPE). Every SSL call starts with an empty
 * error queue, so the reason reported is the call's own.
 *
 * Depends on: OpenSSL 3 (libssl, libcrypto), POSIX sockets.
 */
#include "kvtls.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct kvtls_ctx {
  SSL_CTX *ctx;
  BIO_METHOD *bio; /* kvtls__bio_* over a socket */
  char *server_name; /* NULL: verify the chain only */
};

struct kvtls {
  SSL *ssl;
};

/* ---- the socket BIO ---- */

static int kvtls__bio_write(BIO *b, const char *buf, int len) {
  int fd = (int)(intptr_t)BIO_get_data(b);
  BIO_clear_retry_flags(b);
  ssize_t n;
  do
    n = send(fd, buf, (size_t)len, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    BIO_set_retry_write(b);
  return (int)n;
}

static int kvtls__bio_read(BIO *b, char *buf, int len) {
  int fd = (int)(intptr_t)BIO_get_data(b);
  BIO_clear_retry_flags(b);
  ssize_t n;
  do
    n = recv(fd, buf, (size_t)len, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    BIO_set_retry_read(b);
  return (int)n;
}

static long kvtls__bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)b;
  (void)num;
  (void)ptr;
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

/* ---- messages ---- */

/* Writes "what: reason" (just the reason when what is NULL) into err, the
 * reason being the first error on OpenSSL's queue (the root cause), else
 * errno's text for a system error, else fallback; then empties the queue.
 * With ssl, a failed certificate check adds the verifier's detail, and a
 * peer that does not speak TLS a hint. */
static void kvtls__why(char *err, size_t errlen, const char *what,
                       const SSL *ssl, int sys_errno, const char *fallback) {
  unsigned long e = ERR_get_error();
  const char *reason = e ? ERR_reason_error_string(e) : NULL;
  char sys[128], detail[160] = "";
  if (!reason && sys_errno) {
    snprintf(sys, sizeof(sys), "%s", strerror(sys_errno));
    reason = sys;
  }
  if (!reason)
    reason = fallback;
  long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
  int r = e ? ERR_GET_REASON(e) : 0;
  if (ssl && v != X509_V_OK)
    snprintf(detail, sizeof(detail), " (%s)",
             X509_verify_cert_error_string(v));
  else if (ssl && ERR_GET_LIB(e) == ERR_LIB_SSL &&
           (r == SSL_R_WRONG_VERSION_NUMBER ||
            r == SSL_R_PACKET_LENGTH_TOO_LONG ||
            r == SSL_R_RECORD_LENGTH_MISMATCH))
    snprintf(detail, sizeof(detail), " (is TLS on at the server?)");
  snprintf(err, errlen, "%s%s%s%s", what ? what : "", what ? ": " : "",
           reason, detail);
  ERR_clear_error();
}

/* Maps a failed SSL call (its return r) to a step result, with the reason
 * in err for EOF and failures. */
static int kvtls__result(kvtls *t, int r, char *err, size_t errlen) {
  int saved = errno;
  switch (SSL_get_error(t->ssl, r)) {
  case SSL_ERROR_WANT_READ:
    return KVTLS_WANT_READ;
  case SSL_ERROR_WANT_WRITE:
    return KVTLS_WANT_WRITE;
  case SSL_ERROR_ZERO_RETURN:
    snprintf(err, errlen, "the peer closed the connection");
    ERR_clear_error();
    return KVTLS_EOF;
  case SSL_ERROR_SYSCALL:
    if (ERR_peek_error() == 0 && saved == 0) {
      snprintf(err, errlen, "the peer closed the connection");
      return KVTLS_EOF;
    }
    kvtls__why(err, errlen, NULL, NULL, saved, "system error");
    return KVTLS_FAIL;
  default:
    kvtls__why(err, errlen, NULL, t->ssl, 0, "TLS error");
    return KVTLS_FAIL;
  }
}

/* ---- contexts ---- */

/* Refuses to decrypt a key: a library must never prompt. */
static int kvtls__no_password(char *buf, int size, int rwflag, void *u) {
  (void)buf;
  (void)size;
  (void)rwflag;
  (void)u;
  return 0;
}

/* 0 when path can be read, else a message in err. */
static int kvtls__readable(const char *path, const char *what, char *err,
                           size_t errlen) {
  if (access(path, R_OK) == 0)
    return 0;
  snprintf(err, errlen, "cannot read the %s %s: %s", what, path,
           strerror(errno));
  return -1;
}

kvtls_ctx *kvtls_ctx_new(const kvtls_opts *o, char *err, size_t errlen) {
  static const kvtls_opts none;
  if (!o)
    o = &none;
  if ((o->ca_file && kvtls__readable(o->ca_file, "CA file", err, errlen)) ||
      (o->cert_file &&
       kvtls__readable(o->cert_file, "certificate file", err, errlen)) ||
      (o->key_file && kvtls__readable(o->key_file, "key file", err, errlen)))
    return NULL;
  if (o->key_file && !o->cert_file) {
    snprintf(err, errlen, "a client key needs its certificate");
    return NULL;
  }
  kvtls_ctx *x = calloc(1, sizeof(*x));
  if (!x) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  ERR_clear_error();
  char what[KVTLS_ERR_MAX];
  x->ctx = SSL_CTX_new(TLS_client_method());
  x->bio = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                        "kvorum socket");
  if (o->server_name)
    x->server_name = strdup(o->server_name);
  if (!x->ctx || !x->bio || (o->server_name && !x->server_name)) {
    kvtls__why(err, errlen, "cannot set up TLS", NULL, 0, "out of memory");
    kvtls_ctx_free(x);
    return NULL;
  }
  BIO_meth_set_write(x->bio, kvtls__bio_write);
  BIO_meth_set_read(x->bio, kvtls__bio_read);
  BIO_meth_set_ctrl(x->bio, kvtls__bio_ctrl);
  SSL_CTX *ctx = x->ctx;
  SSL_CTX_set_default_passwd_cb(ctx, kvtls__no_password);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  /* Writes resume from a buffer that may have moved or grown, and a frame
   * bigger than a record goes out in parts. */
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  /* Frames carry their own length: an EOF without close_notify is an EOF. */
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
  int ok = SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) &&
           SSL_CTX_set_cipher_list(ctx, KVTLS_CIPHERS);
  if (!ok) {
    kvtls__why(err, errlen, "cannot set the TLS versions and ciphers", NULL,
               0, "unknown");
    kvtls_ctx_free(x);
    return NULL;
  }
  if (o->ca_file) {
    snprintf(what, sizeof(what), "cannot load the CA file %s", o->ca_file);
    ok = SSL_CTX_load_verify_file(ctx, o->ca_file);
  } else {
    snprintf(what, sizeof(what), "cannot load the system trust store");
    ok = SSL_CTX_set_default_verify_paths(ctx);
  }
  if (ok && o->cert_file) {
    const char *key = o->key_file ? o->key_file : o->cert_file;
    snprintf(what, sizeof(what), "cannot load the certificate %s",
             o->cert_file);
    ok = SSL_CTX_use_certificate_chain_file(ctx, o->cert_file);
    if (ok) {
      snprintf(what, sizeof(what), "cannot load the key %s", key);
      ok = SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM);
    }
    if (ok) {
      snprintf(what, sizeof(what), "the key %s does not match %s", key,
               o->cert_file);
      ok = SSL_CTX_check_private_key(ctx);
    }
  }
  if (!ok) {
    kvtls__why(err, errlen, what, NULL, 0, "not PEM");
    kvtls_ctx_free(x);
    return NULL;
  }
  return x;
}

void kvtls_ctx_free(kvtls_ctx *x) {
  if (!x)
    return;
  SSL_CTX_free(x->ctx);
  BIO_meth_free(x->bio);
  free(x->server_name);
  free(x);
}

/* ---- connections ---- */

kvtls *kvtls_new(kvtls_ctx *x, int fd, char *err, size_t errlen) {
  ERR_clear_error();
  kvtls *t = calloc(1, sizeof(*t));
  BIO *b = BIO_new(x->bio);
  if (t)
    t->ssl = SSL_new(x->ctx);
  if (!t || !t->ssl || !b) {
    kvtls__why(err, errlen, "cannot start TLS", NULL, 0, "out of memory");
    BIO_free(b);
    kvtls_free(t);
    return NULL;
  }
  BIO_set_data(b, (void *)(intptr_t)fd);
  BIO_set_init(b, 1);
  SSL_set_bio(t->ssl, b, b);
  if (x->server_name &&
      (!SSL_set_tlsext_host_name(t->ssl, x->server_name) ||
       !SSL_set1_host(t->ssl, x->server_name))) {
    kvtls__why(err, errlen, "cannot set the TLS server name", NULL, 0,
               "invalid name");
    kvtls_free(t);
    return NULL;
  }
  SSL_set_connect_state(t->ssl);
  return t;
}

void kvtls_free(kvtls *t) {
  if (!t)
    return;
  SSL_free(t->ssl); /* frees the BIO; the socket is the caller's */
  free(t);
}

int kvtls_handshake(kvtls *t, char *err, size_t errlen) {
  ERR_clear_error();
  errno = 0;
  int r = SSL_do_handshake(t->ssl);
  if (r == 1)
    return 0;
  return kvtls__result(t, r, err, errlen);
}

long kvtls_read(kvtls *t, void *buf, size_t len, char *err, size_t errlen) {
  ERR_clear_error();
  errno = 0;
  size_t n = 0;
  int r = SSL_read_ex(t->ssl, buf, len, &n);
  if (r == 1)
    return (long)n;
  return kvtls__result(t, r, err, errlen);
}

long kvtls_write(kvtls *t, const void *buf, size_t len, char *err,
                 size_t errlen) {
  ERR_clear_error();
  errno = 0;
  size_t n = 0;
  int r = SSL_write_ex(t->ssl, buf, len, &n);
  if (r == 1)
    return (long)n;
  return kvtls__result(t, r, err, errlen);
}

bool kvtls_pending(const kvtls *t) { return SSL_pending(t->ssl) > 0; }

const char *kvtls_describe(const kvtls *t, char *buf, size_t cap) {
  const SSL_CIPHER *c = SSL_get_current_cipher(t->ssl);
  snprintf(buf, cap, "%s %s", SSL_get_version(t->ssl),
           c ? SSL_CIPHER_get_name(c) : "(none)");
  return buf;
}
