/*
 * uv_tls.c: TLS over memory BIOs for kvorumd's connections (uv_tls.h).
 *
 * Settings: TLS 1.2 and 1.3 only; for 1.2, ECDHE key exchange with AEAD
 * ciphers only (Mozilla's "intermediate" list); for 1.3, OpenSSL's
 * default suites. Renegotiation is off. Certificates verify against the
 * cluster CA alone (not the system store): a node trusts what the
 * cluster's CA signed, nothing else.
 */
#include "uv_tls.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_err.h"

#define UVT_CIPHERS                                                           \
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                \
  "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                \
  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define UVT_READ_CHUNK 16384u
#define UVT_PATH_MAX 4096

struct uvt_ctx {
  SSL_CTX *server, *client;
  SSL_CTX *https;         /* server's twin for h2o, counting failures */
  uint64_t https_refused; /* HTTPS handshakes that failed */
  char cert[UVT_PATH_MAX], key[UVT_PATH_MAX], ca[UVT_PATH_MAX];
};

/* Our ex_data slots: the uvt_ctx of the HTTPS SSL_CTX, and whether a
 * connection's failure was counted. Never h2o's (it has its own). */
static int uvt__ctx_slot = -1, uvt__ssl_slot = -1;

/* h2o runs the HTTPS handshakes; this counts the ones that fail: a fatal
 * alert, sent or received, before the handshake finished, once per
 * connection. */
static void uvt__https_info(const SSL *ssl, int where, int ret) {
  if (!(where & SSL_CB_ALERT) || (ret >> 8) != SSL3_AL_FATAL ||
      SSL_is_init_finished(ssl) || SSL_get_ex_data(ssl, uvt__ssl_slot))
    return;
  SSL_set_ex_data((SSL *)ssl, uvt__ssl_slot, (void *)1);
  uvt_ctx *t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), uvt__ctx_slot);
  if (t)
    t->https_refused++;
}

struct uvt_conn {
  SSL *ssl;
  BIO *rbio, *wbio; /* owned by ssl */
};

int uvt_mode_parse(const char *s, uvt_mode *out) {
  static const char *const names[] = {"plain", "tls", "both"};
  for (int i = 0; i < 3; i++)
    if (strcmp(s, names[i]) == 0) {
      *out = (uvt_mode)i;
      return 0;
    }
  return -1;
}

const char *uvt_mode_name(uvt_mode m) {
  return m == UVT_TLS ? "tls" : m == UVT_BOTH ? "both" : "plain";
}

/* OpenSSL's last error as text ("" when there is none); clears the
 * queue. */
static void uvt__reason(char *out, size_t cap) {
  unsigned long e = ERR_get_error();
  unsigned long last = e;
  while (e) {
    last = e;
    e = ERR_get_error();
  }
  if (last)
    ERR_error_string_n(last, out, cap);
  else if (cap)
    out[0] = '\0';
}

static SSL_CTX *uvt__ctx(const SSL_METHOD *method, const char *cert,
                         const char *key, const char *ca, char *err,
                         size_t errlen) {
  char why[256];
  SSL_CTX *ctx = SSL_CTX_new(method);
  if (!ctx) {
    snprintf(err, errlen, "cannot create a TLS context");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  const char *what = NULL;
  if (SSL_CTX_set_cipher_list(ctx, UVT_CIPHERS) != 1)
    what = "cannot set the cipher list";
  else if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
    what = "cannot load the certificate --tls-cert";
  else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
    what = "cannot load the key --tls-key";
  else if (SSL_CTX_check_private_key(ctx) != 1)
    what = "--tls-key is not the key of --tls-cert";
  else if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
    what = "cannot load the CA --tls-ca";
  if (what) {
    uvt__reason(why, sizeof(why));
    snprintf(err, errlen, "%s: %s", what, why);
    SSL_CTX_free(ctx);
    return NULL;
  }
  /* Certificates verify against the cluster CA; each connection sets
   * whether the other side must send one (uvt_conn_new). */
  SSL_CTX_set_verify_depth(ctx, 4);
  return ctx;
}

static int uvt__load(uvt_ctx *t, char *err, size_t errlen) {
  if (uvt__ctx_slot < 0)
    uvt__ctx_slot = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
  if (uvt__ssl_slot < 0)
    uvt__ssl_slot = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
  SSL_CTX *s = uvt__ctx(TLS_server_method(), t->cert, t->key, t->ca, err,
                        errlen);
  SSL_CTX *h = s ? uvt__ctx(TLS_server_method(), t->cert, t->key, t->ca,
                            err, errlen)
                 : NULL;
  SSL_CTX *c = h ? uvt__ctx(TLS_client_method(), t->cert, t->key, t->ca,
                            err, errlen)
                 : NULL;
  if (!c || uvt__ctx_slot < 0 || uvt__ssl_slot < 0) {
    SSL_CTX_free(s);
    SSL_CTX_free(h);
    SSL_CTX_free(c);
    if (c)
      snprintf(err, errlen, "cannot create a TLS context");
    return KV_EINVAL;
  }
  /* Client certificates are asked for on every port; the peer port
   * requires one (uvt_conn_new). */
  SSL_CTX_set_client_CA_list(s, SSL_load_client_CA_file(t->ca));
  SSL_CTX_set_client_CA_list(h, SSL_load_client_CA_file(t->ca));
  SSL_CTX_set_ex_data(h, uvt__ctx_slot, t);
  SSL_CTX_set_info_callback(h, uvt__https_info);
  SSL_CTX_free(t->server);
  SSL_CTX_free(t->https);
  SSL_CTX_free(t->client);
  t->server = s;
  t->https = h;
  t->client = c;
  return 0;
}

int uvt_ctx_new(const char *cert, const char *key, const char *ca,
                uvt_ctx **out, char *err, size_t errlen) {
  if (!cert || !key || !ca) {
    snprintf(err, errlen, "TLS needs --tls-cert, --tls-key and --tls-ca");
    return KV_EINVAL;
  }
  if (strlen(cert) >= UVT_PATH_MAX || strlen(key) >= UVT_PATH_MAX ||
      strlen(ca) >= UVT_PATH_MAX) {
    snprintf(err, errlen, "a TLS file name is too long");
    return KV_EINVAL;
  }
  uvt_ctx *t = calloc(1, sizeof(*t));
  if (!t)
    return KV_ENOMEM;
  snprintf(t->cert, sizeof(t->cert), "%s", cert);
  snprintf(t->key, sizeof(t->key), "%s", key);
  snprintf(t->ca, sizeof(t->ca), "%s", ca);
  int rc = uvt__load(t, err, errlen);
  if (rc) {
    free(t);
    return rc;
  }
  *out = t;
  return 0;
}

int uvt_ctx_reload(uvt_ctx *t, char *err, size_t errlen) {
  return uvt__load(t, err, errlen);
}

void uvt_ctx_free(uvt_ctx *t) {
  if (!t)
    return;
  SSL_CTX_free(t->server);
  SSL_CTX_free(t->https);
  SSL_CTX_free(t->client);
  free(t);
}

SSL_CTX *uvt_ctx_https(uvt_ctx *t) { return t->https; }
uint64_t uvt_ctx_https_refused(const uvt_ctx *t) { return t->https_refused; }

uvt_conn *uvt_conn_new(uvt_ctx *t, uvt_role role) {
  uvt_conn *c = calloc(1, sizeof(*c));
  if (!c)
    return NULL;
  c->ssl = SSL_new(role == UVT_DIAL ? t->client : t->server);
  c->rbio = BIO_new(BIO_s_mem());
  c->wbio = BIO_new(BIO_s_mem());
  if (!c->ssl || !c->rbio || !c->wbio) {
    BIO_free(c->rbio);
    BIO_free(c->wbio);
    SSL_free(c->ssl);
    free(c);
    return NULL;
  }
  SSL_set_bio(c->ssl, c->rbio, c->wbio);
  switch (role) {
  case UVT_ACCEPT_CLIENT:
    SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
    SSL_set_accept_state(c->ssl);
    break;
  case UVT_ACCEPT_PEER:
    SSL_set_verify(c->ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                   NULL);
    SSL_set_accept_state(c->ssl);
    break;
  default:
    SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
    SSL_set_connect_state(c->ssl);
  }
  return c;
}

void uvt_conn_free(uvt_conn *c) {
  if (!c)
    return;
  SSL_free(c->ssl); /* frees the BIOs */
  free(c);
}

/* Moves what OpenSSL wrote into out. */
static int uvt__drain(uvt_conn *c, kvbuf *out) {
  size_t pending = BIO_ctrl_pending(c->wbio);
  if (pending == 0)
    return 0;
  if (kvbuf_reserve(out, pending))
    return KV_ENOMEM;
  int n = BIO_read(c->wbio, out->data + out->len, (int)pending);
  if (n > 0)
    out->len += (size_t)n;
  return 0;
}

/* Why the handshake or a record failed. */
static void uvt__failure(uvt_conn *c, char *err, size_t errlen) {
  char why[256];
  long vr = SSL_get_verify_result(c->ssl);
  uvt__reason(why, sizeof(why));
  if (vr != X509_V_OK)
    snprintf(err, errlen, "the peer certificate did not verify: %s",
             X509_verify_cert_error_string(vr));
  else if (why[0])
    snprintf(err, errlen, "TLS failed: %s", why);
  else
    snprintf(err, errlen, "TLS failed (the peer closed or sent no TLS)");
}

int uvt_conn_start(uvt_conn *c, kvbuf *out) {
  ERR_clear_error();
  SSL_do_handshake(c->ssl); /* wants to read: the hello is in wbio */
  return uvt__drain(c, out);
}

int uvt_conn_feed(uvt_conn *c, const uint8_t *in, size_t len, kvbuf *plain,
                  kvbuf *out, char *err, size_t errlen) {
  ERR_clear_error();
  if (len && BIO_write(c->rbio, in, (int)len) != (int)len) {
    snprintf(err, errlen, "out of memory");
    return KV_ENOMEM;
  }
  if (!SSL_is_init_finished(c->ssl)) {
    int r = SSL_do_handshake(c->ssl);
    if (r <= 0) {
      int e = SSL_get_error(c->ssl, r);
      int rc = uvt__drain(c, out); /* an alert, or the next flight */
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return rc;
      uvt__failure(c, err, errlen);
      return KV_ECONN;
    }
  }
  for (;;) {
    if (kvbuf_reserve(plain, UVT_READ_CHUNK)) {
      snprintf(err, errlen, "out of memory");
      return KV_ENOMEM;
    }
    int n = SSL_read(c->ssl, plain->data + plain->len, UVT_READ_CHUNK);
    if (n > 0) {
      plain->len += (size_t)n;
      continue;
    }
    int e = SSL_get_error(c->ssl, n);
    int rc = uvt__drain(c, out);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
      return rc;
    if (e == SSL_ERROR_ZERO_RETURN)
      return KV_ECLOSED;
    uvt__failure(c, err, errlen);
    return KV_ECONN;
  }
}

bool uvt_conn_ready(const uvt_conn *c) { return SSL_is_init_finished(c->ssl); }

int uvt_conn_seal(uvt_conn *c, const uint8_t *p, size_t len, kvbuf *out) {
  ERR_clear_error();
  while (len) {
    int chunk = len > (1u << 30) ? 1 << 30 : (int)len;
    int n = SSL_write(c->ssl, p, chunk);
    if (n <= 0)
      return KV_ECONN;
    p += n;
    len -= (size_t)n;
    int rc = uvt__drain(c, out);
    if (rc)
      return rc;
  }
  return 0;
}

bool uvt_conn_names(const uvt_conn *c, const char *id) {
  X509 *x = SSL_get0_peer_certificate(c->ssl);
  if (!x || SSL_get_verify_result(c->ssl) != X509_V_OK)
    return false;
  return X509_check_host(x, id, strlen(id),
                         X509_CHECK_FLAG_NO_WILDCARDS, NULL) == 1;
}

bool uvt_conn_is_node(const uvt_conn *c) {
  X509 *x = SSL_get0_peer_certificate(c->ssl);
  return x && X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0) == 1;
}

void uvt_conn_subject(const uvt_conn *c, char *out, size_t cap) {
  X509 *x = SSL_get0_peer_certificate(c->ssl);
  snprintf(out, cap, "none");
  if (!x)
    return;
  X509_NAME *name = X509_get_subject_name(x);
  if (X509_NAME_get_text_by_NID(name, NID_commonName, out, (int)cap) < 0)
    snprintf(out, cap, "(no CN)");
}
