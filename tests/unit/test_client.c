/*
 * test_client.c: unit tests of libkvorum: base64, UTF-8 checks, the
 * msgpack -> JSON renderer, kv_parse_level, and the library against fake
 * servers (threads in this process on 127.0.0.1, port 0) that speak HELLO,
 * GET, PUT, DEL and ADMIN through wire.h: replies out of order matched by
 * id, a timeout, an ERROR surfaced verbatim, a server that closes the
 * connection (KV_ECLOSED), a version mismatch, routing by a ring, and
 * credentials: HELLO's user and secret as the node decodes them, EAUTH
 * and EPERM with the node's message, on routed connections too.
 * Prints "N passed, M failed" and exits non-zero on failure.
 * Depends on: libkvorum, kvproto, pthreads.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xxhash.h>

#include "kvorum.h"
#include "kvorum_int.h"
#include "wire.h"

#define CHECK_HEAD "FAIL %s:%d: %s"
#include "unit/check.h"

#define T_POLL_MS 20         /* fake server's poll period (stop checks) */
#define T_REVERSE_BATCH 3    /* replies held back and sent in reverse */
#define T_LOOP_MAX 1000      /* bounded client poll loops */
#define T_BUF_MAX (1u << 20)

/* ---- pure helpers ---- */

static void test_b64(void) {
  static const struct {
    const char *in, *out;
  } vec[] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
             {"foo", "Zm9v"},  {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
             {"foobar", "Zm9vYmFy"}};
  for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
    kvbuf b;
    kvbuf_init(&b);
    CHECK(kv_b64_encode(&b, vec[i].in, strlen(vec[i].in)) == 0);
    CHECK(b.len == strlen(vec[i].out) &&
          memcmp(b.data, vec[i].out, b.len) == 0);
    kvbuf_free(&b);
  }
  uint8_t data[300];
  uint32_t seed = 12345;
  for (size_t i = 0; i < sizeof(data); i++) {
    seed = seed * 1103515245u + 12345u;
    data[i] = (uint8_t)(seed >> 16);
  }
  int ok = 1;
  for (size_t len = 0; len <= sizeof(data); len++) {
    kvbuf b;
    kvbuf_init(&b);
    uint8_t *dec = NULL;
    size_t dl = 0;
    if (kv_b64_encode(&b, data, len) ||
        b.len != KV_B64_LEN(len) ||
        kv_b64_decode((const char *)b.data, b.len, &dec, &dl) || dl != len ||
        (len && memcmp(dec, data, len)))
      ok = 0;
    free(dec);
    kvbuf_free(&b);
  }
  CHECK(ok);
  uint8_t *dec = NULL;
  size_t dl;
  CHECK(kv_b64_decode("Zm9v!", 5, &dec, &dl) == KV_EINVAL);
  CHECK(kv_b64_decode("Z", 1, &dec, &dl) == KV_EINVAL);
  CHECK(kv_b64_decode("Zm9vYg", 6, &dec, &dl) == 0 && dl == 4 &&
        memcmp(dec, "foob", 4) == 0);
  free(dec);
}

static void test_utf8(void) {
  CHECK(kv_utf8_valid("hello", 5));
  CHECK(kv_utf8_valid("\xc3\xa9t\xc3\xa9", 6));
  CHECK(kv_utf8_valid("\xf0\x9f\x98\x80", 4));
  CHECK(!kv_utf8_valid("\xff", 1));
  CHECK(!kv_utf8_valid("\xc3", 1));
  CHECK(!kv_utf8_valid("\xc0\xaf", 2));         /* overlong */
  CHECK(!kv_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
  CHECK(!kv_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
}

static int json_of(kvbuf *pk_buf, char **out) {
  kvbuf j;
  kvbuf_init(&j);
  int rc = kv_json_from_msgpack(&j, pk_buf->data, pk_buf->len);
  size_t len;
  *out = rc ? NULL : (char *)kvbuf_steal(&j, &len);
  kvbuf_free(&j);
  return rc;
}

static void test_json(void) {
  kvbuf b;
  kvbuf_init(&b);
  msgpack_packer pk;
  mp_packer_init(&pk, &b);
  msgpack_pack_map(&pk, 9);
  mp_pack_cstr(&pk, "s");
  mp_pack_cstr(&pk, "a\"b\\c\nd\x01\xc3\xa9");
  mp_pack_cstr(&pk, "u");
  msgpack_pack_uint64(&pk, 18446744073709551615ull);
  mp_pack_cstr(&pk, "i");
  msgpack_pack_int64(&pk, -42);
  mp_pack_cstr(&pk, "t");
  msgpack_pack_true(&pk);
  mp_pack_cstr(&pk, "n");
  msgpack_pack_nil(&pk);
  mp_pack_cstr(&pk, "f");
  msgpack_pack_double(&pk, 0.5);
  mp_pack_cstr(&pk, "bin");
  mp_pack_bin(&pk, "foo", 3);
  mp_pack_cstr(&pk, "a");
  msgpack_pack_array(&pk, 3);
  msgpack_pack_int(&pk, 1);
  msgpack_pack_array(&pk, 0);
  msgpack_pack_map(&pk, 0);
  msgpack_pack_int(&pk, 7); /* a key that is not a string */
  mp_pack_str(&pk, "\xff", 1);
  char *js = NULL;
  CHECK(json_of(&b, &js) == 0);
  const char *want =
      "{\"s\": \"a\\\"b\\\\c\\nd\\u0001\xc3\xa9\", "
      "\"u\": 18446744073709551615, \"i\": -42, \"t\": true, \"n\": null, "
      "\"f\": 0.5, \"bin\": \"Zm9v\", \"a\": [1, [], {}], "
      "\"7\": \"\xef\xbf\xbd\"}";
  CHECK(js && strcmp(js, want) == 0);
  if (js && strcmp(js, want))
    fprintf(stderr, "got  %s\nwant %s\n", js, want);
  free(js);

  /* Truncated input and trailing bytes are errors. */
  kvbuf t;
  kvbuf_init(&t);
  kvbuf_append(&t, b.data, b.len - 1);
  CHECK(json_of(&t, &js) == KV_EPROTO);
  kvbuf_append(&t, b.data + b.len - 1, 1);
  kvbuf_append(&t, "\xc0", 1);
  CHECK(json_of(&t, &js) == KV_EPROTO);
  kvbuf_free(&t);

  /* Nesting deeper than MP_DEPTH_MAX is refused, not recursed into. */
  kvbuf d;
  kvbuf_init(&d);
  for (int i = 0; i < MP_DEPTH_MAX + 8; i++)
    kvbuf_append(&d, "\x91", 1);
  kvbuf_append(&d, "\xc0", 1);
  CHECK(json_of(&d, &js) == KV_EPROTO);
  kvbuf_free(&d);
  kvbuf_free(&b);
}

static void test_levels(void) {
  int32_t v = 99;
  CHECK(kv_parse_level("one", &v) == 0 && v == KV_ONE);
  CHECK(kv_parse_level("quorum", &v) == 0 && v == KV_QUORUM);
  CHECK(kv_parse_level("all", &v) == 0 && v == KV_ALL);
  CHECK(kv_parse_level("local_one", &v) == 0 && v == KV_LOCAL_ONE);
  CHECK(kv_parse_level("local_quorum", &v) == 0 && v == KV_LOCAL_QUORUM);
  CHECK(kv_parse_level("each_quorum", &v) == 0 && v == KV_EACH_QUORUM);
  CHECK(kv_parse_level("3", &v) == 0 && v == 3);
  CHECK(kv_parse_level("0", &v) == 0 && v == 0);
  CHECK(kv_parse_level("", &v) == KV_EINVAL);
  CHECK(kv_parse_level("-1", &v) == KV_EINVAL);
  CHECK(kv_parse_level("2x", &v) == KV_EINVAL);
  CHECK(kv_parse_level("most", &v) == KV_EINVAL);
  CHECK(kv_parse_level("99999999999", &v) == KV_EINVAL);
}

/* ---- fake server ---- */

typedef struct fake {
  const char *name;
  int lfd;
  uint16_t port;
  uint64_t version; /* HELLO_OK version */
  bool reverse;     /* hold T_REVERSE_BATCH replies, send them reversed */
  const char *ring_to; /* non-NULL: answer "ring" sending all to this addr */
  const char *user;    /* non-NULL: HELLO must carry user and secret */
  const char *secret;
  size_t secret_len;
  atomic_int stop;
  atomic_int accepted;
  pthread_t th;
} fake;

static void fake_send(int fd, const kvbuf *b) {
  size_t off = 0;
  while (off < b->len) {
    ssize_t n = send(fd, b->data + off, b->len - off, MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR)
        continue;
      return;
    }
    off += (size_t)n;
  }
}

static void fake_ring(fake *f, kvbuf *out, uint64_t id) {
  msgpack_packer pk;
  size_t start;
  wire_begin(out, &pk, &start, WIRE_ADMIN_OK, id, 1);
  msgpack_pack_map(&pk, 5);
  mp_pack_cstr(&pk, "version");
  msgpack_pack_uint64(&pk, 1);
  mp_pack_cstr(&pk, "q");
  msgpack_pack_uint64(&pk, 2);
  mp_pack_cstr(&pk, "n");
  msgpack_pack_uint64(&pk, 1);
  mp_pack_cstr(&pk, "nodes");
  msgpack_pack_array(&pk, 1);
  msgpack_pack_map(&pk, 4);
  mp_pack_cstr(&pk, "id");
  mp_pack_cstr(&pk, "b");
  mp_pack_cstr(&pk, "listen");
  mp_pack_cstr(&pk, f->ring_to);
  mp_pack_cstr(&pk, "region");
  mp_pack_cstr(&pk, "r1");
  mp_pack_cstr(&pk, "state");
  mp_pack_cstr(&pk, "up");
  mp_pack_cstr(&pk, "partitions");
  msgpack_pack_array(&pk, 2);
  for (int p = 0; p < 2; p++) {
    msgpack_pack_map(&pk, 2);
    mp_pack_cstr(&pk, "partition");
    msgpack_pack_uint64(&pk, (uint64_t)p);
    mp_pack_cstr(&pk, "owners");
    msgpack_pack_array(&pk, 1);
    mp_pack_cstr(&pk, "b");
  }
  wire_end(out, start);
}

/* Answers one request; returns false when the connection must close. */
static bool fake_answer(fake *f, const wire_msg *m, kvbuf *out) {
  char val[256];
  wire_msg r;
  memset(&r, 0, sizeof(r));
  r.req_id = m->req_id;
  switch (m->type) {
  case WIRE_HELLO:
    if (f->user && !m->user.ptr) {
      wire_encode_error(out, m->req_id, KV_EAUTH,
                        "this node requires a user and password");
      return false;
    }
    if (f->user && (!mp_slice_eq(m->user, f->user) ||
                    m->secret.len != f->secret_len ||
                    memcmp(m->secret.ptr, f->secret, f->secret_len) != 0)) {
      wire_encode_error(out, m->req_id, KV_EAUTH,
                        "authentication failed: invalid user or password");
      return false;
    }
    r.type = WIRE_HELLO_OK;
    r.version = f->version;
    r.text.ptr = (const uint8_t *)f->name;
    r.text.len = strlen(f->name);
    r.partitions = 2;
    r.region.ptr = (const uint8_t *)"r1";
    r.region.len = 2;
    wire_encode(out, &r);
    return true;
  case WIRE_ADMIN:
    if (mp_slice_eq(m->text, "ring") && f->ring_to) {
      fake_ring(f, out, m->req_id);
    } else if (mp_slice_eq(m->text, "status")) {
      msgpack_packer pk;
      size_t start;
      wire_begin(out, &pk, &start, WIRE_ADMIN_OK, m->req_id, 1);
      msgpack_pack_map(&pk, 1);
      mp_pack_cstr(&pk, "node");
      mp_pack_cstr(&pk, f->name);
      wire_end(out, start);
    } else {
      wire_encode_error(out, m->req_id, KV_EUNKNOWN, "unknown command %.*s",
                        (int)m->text.len, (const char *)m->text.ptr);
    }
    return true;
  case WIRE_GET:
  case WIRE_PUT:
  case WIRE_DEL:
    break;
  default:
    wire_encode_error(out, m->req_id, KV_EPROTO, "unexpected message");
    return true;
  }
  if (mp_slice_eq(m->key, "drop"))
    return true;
  if (mp_slice_eq(m->key, "close"))
    return false;
  if (mp_slice_eq(m->key, "perm")) {
    wire_encode_error(out, m->req_id, KV_EPERM,
                      "user %s (role read) may not write", f->user);
    return true;
  }
  if (mp_slice_eq(m->key, "err")) {
    wire_encode_error(out, m->req_id, KV_EQUORUM,
                      "only 1 of 2 required replicas answered within 1000 ms");
    return true;
  }
  snprintf(val, sizeof(val), "%s:%.*s", f->name, (int)m->key.len,
           (const char *)m->key.ptr);
  if (m->type == WIRE_GET) {
    wire_get_ok_writer w;
    bool none = mp_slice_eq(m->key, "none");
    wire_begin_get_ok(&w, out, m->req_id, none ? 0 : 2);
    if (!none) {
      wire_add_sibling(&w, 0, 1, val, strlen(val));
      wire_add_sibling(&w, WIRE_SIB_DELETED, 2, NULL, 0);
    }
    wire_end_get_ok(&w, "ctx", 3);
  } else {
    r.type = m->type == WIRE_PUT ? WIRE_PUT_OK : WIRE_DEL_OK;
    r.context = m->type == WIRE_PUT ? m->value : m->key;
    wire_encode(out, &r);
  }
  return true;
}

static void fake_conn(fake *f, int fd) {
  uint8_t *in = malloc(T_BUF_MAX);
  size_t in_len = 0;
  kvbuf held[T_REVERSE_BATCH];
  int nheld = 0;
  for (int i = 0; i < T_REVERSE_BATCH; i++)
    kvbuf_init(&held[i]);
  while (!atomic_load(&f->stop) && in) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, T_POLL_MS) <= 0)
      continue;
    ssize_t n = recv(fd, in + in_len, T_BUF_MAX - in_len, 0);
    if (n <= 0)
      break;
    in_len += (size_t)n;
    size_t off = 0;
    bool open = true;
    kvbuf out;
    kvbuf_init(&out);
    while (open) {
      uint32_t blen;
      if (wire_frame_check(in + off, in_len - off, &wire_limits_default,
                           &blen))
        break;
      wire_msg m;
      memset(&m, 0, sizeof(m));
      int rc = wire_decode(in + off + WIRE_HEADER_BYTES, blen,
                           &wire_limits_default, &m);
      off += WIRE_HEADER_BYTES + blen;
      if (rc)
        continue;
      bool hold = f->reverse && m.type == WIRE_GET;
      open = fake_answer(f, &m, hold ? &held[nheld] : &out);
      if (hold && ++nheld == T_REVERSE_BATCH) {
        for (int i = nheld - 1; i >= 0; i--) {
          kvbuf_append(&out, held[i].data, held[i].len);
          held[i].len = 0;
        }
        nheld = 0;
      }
    }
    memmove(in, in + off, in_len - off);
    in_len -= off;
    fake_send(fd, &out);
    kvbuf_free(&out);
    if (!open)
      break;
  }
  for (int i = 0; i < T_REVERSE_BATCH; i++)
    kvbuf_free(&held[i]);
  free(in);
  close(fd);
}

static void *fake_main(void *arg) {
  fake *f = arg;
  while (!atomic_load(&f->stop)) {
    struct pollfd p = {f->lfd, POLLIN, 0};
    if (poll(&p, 1, T_POLL_MS) <= 0)
      continue;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0)
      continue;
    atomic_fetch_add(&f->accepted, 1);
    fake_conn(f, fd);
  }
  return NULL;
}

static int fake_start(fake *f, const char *name) {
  memset(f, 0, sizeof(*f));
  f->name = name;
  f->version = WIRE_PROTOCOL_VERSION;
  f->lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof(a);
  if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&a, sizeof(a)) ||
      listen(f->lfd, 8) || getsockname(f->lfd, (struct sockaddr *)&a, &al))
    return -1;
  f->port = ntohs(a.sin_port);
  return pthread_create(&f->th, NULL, fake_main, f) ? -1 : 0;
}

static void fake_stop(fake *f) {
  atomic_store(&f->stop, 1);
  pthread_join(f->th, NULL);
  close(f->lfd);
}

static void fake_addr(const fake *f, char *buf, size_t cap) {
  snprintf(buf, cap, "127.0.0.1:%u", (unsigned)f->port);
}

/* ---- library against the fake ---- */

typedef struct t_done {
  int calls;
  int status;
  char msg[600];
  char value[64];
  size_t nsib;
} t_done;

static void t_cb(void *arg, int status, const char *errmsg,
                 const kv_result *res) {
  t_done *d = arg;
  d->calls++;
  d->status = status;
  if (errmsg)
    snprintf(d->msg, sizeof(d->msg), "%s", errmsg);
  if (res && res->nsiblings && res->siblings[0].value)
    snprintf(d->value, sizeof(d->value), "%.*s", (int)res->siblings[0].len,
             (const char *)res->siblings[0].value);
  if (res)
    d->nsib = res->nsiblings;
}

static void t_wait(kv_client *c, const int *calls, int want) {
  for (int i = 0; i < T_LOOP_MAX && *calls < want; i++) {
    kv_client *cs[1] = {c};
    kv_poll(cs, 1, 50);
  }
}

static void test_basic(void) {
  fake f;
  char addr[64];
  CHECK(fake_start(&f, "a") == 0);
  fake_addr(&f, addr, sizeof(addr));
  kv_client *c = NULL;
  char err[256];
  /* The fake does not serve "ring": routing is silently off. */
  CHECK(kv_connect(addr, NULL, &c, err, sizeof(err)) == 0);
  if (!c) {
    fake_stop(&f);
    return;
  }
  kv_result *res = NULL;
  CHECK(kv_put(c, "k", 1, "v1", 2, NULL, 0, NULL, &res) == 0);
  CHECK(res && res->context_len == 2 && memcmp(res->context, "v1", 2) == 0);
  kv_result_free(res);
  CHECK(kv_get(c, "k", 1, NULL, &res) == 0);
  CHECK(res && res->found && res->nsiblings == 2);
  if (res && res->nsiblings == 2) {
    CHECK(res->siblings[0].len == 3 &&
          memcmp(res->siblings[0].value, "a:k", 3) == 0);
    CHECK(res->siblings[1].deleted && res->siblings[1].ts_ms == 2);
    CHECK(res->context_len == 3 && memcmp(res->context, "ctx", 3) == 0);
  }
  kv_result_free(res);
  CHECK(kv_get(c, "none", 4, NULL, &res) == 0);
  CHECK(res && !res->found && res->nsiblings == 0);
  kv_result_free(res);
  CHECK(kv_del(c, "k", 1, "x", 1, NULL, NULL) == 0);

  /* An ERROR frame: the code, and the message verbatim. */
  CHECK(kv_put(c, "err", 3, "v", 1, NULL, 0, NULL, &res) == KV_EQUORUM);
  CHECK(strcmp(kv_errmsg(c),
               "only 1 of 2 required replicas answered within 1000 ms") == 0);
  CHECK(res == NULL);

  /* A timeout. */
  kv_options o = {.timeout_ms = 100};
  CHECK(kv_get(c, "drop", 4, &o, &res) == KV_ETIMEDOUT);
  CHECK(strstr(kv_errmsg(c), "within 100 ms") != NULL);
  CHECK(kv_inflight(c) == 0);

  /* kv_admin renders the result as JSON. */
  char *js = NULL;
  CHECK(kv_admin(c, "status", NULL, &js) == 0);
  CHECK(js && strcmp(js, "{\"node\": \"a\"}") == 0);
  free(js);
  CHECK(kv_admin(c, "bogus", NULL, &js) == KV_EUNKNOWN);
  CHECK(strcmp(kv_errmsg(c), "unknown command bogus") == 0);

  /* The server closes the connection: everything in flight fails with
   * KV_ECLOSED, and the next request reconnects. */
  t_done d1 = {0}, d2 = {0};
  CHECK(kv_get_async(c, "drop", 4, NULL, t_cb, &d1) == 0);
  CHECK(kv_get_async(c, "close", 5, NULL, t_cb, &d2) == 0);
  CHECK(kv_inflight(c) == 2);
  t_wait(c, &d2.calls, 1);
  t_wait(c, &d1.calls, 1);
  CHECK(d1.calls == 1 && d1.status == KV_ECLOSED);
  CHECK(d2.calls == 1 && d2.status == KV_ECLOSED);
  CHECK(strstr(d2.msg, "closed") != NULL);
  CHECK(kv_inflight(c) == 0);
  CHECK(kv_get(c, "again", 5, NULL, &res) == 0);
  CHECK(res && res->nsiblings == 2);
  kv_result_free(res);
  CHECK(atomic_load(&f.accepted) == 2);

  /* Limits are checked before anything is sent. */
  static uint8_t big[KV_KEY_MAX + 1];
  CHECK(kv_get(c, big, sizeof(big), NULL, &res) == KV_ETOOBIG);

  /* kv_close fails what is still in flight. */
  t_done d3 = {0};
  CHECK(kv_get_async(c, "drop", 4, NULL, t_cb, &d3) == 0);
  kv_close(c);
  CHECK(d3.calls == 1 && d3.status == KV_ECLOSED);
  fake_stop(&f);
}

static void test_out_of_order(void) {
  fake f;
  char addr[64];
  CHECK(fake_start(&f, "a") == 0);
  f.reverse = true;
  fake_addr(&f, addr, sizeof(addr));
  kv_connect_opts co = {.no_route = true};
  kv_client *c = NULL;
  char err[256];
  CHECK(kv_connect(addr, &co, &c, err, sizeof(err)) == 0);
  if (!c) {
    fake_stop(&f);
    return;
  }
  t_done d[T_REVERSE_BATCH];
  memset(d, 0, sizeof(d));
  static const char *keys[T_REVERSE_BATCH] = {"k1", "k2", "k3"};
  for (int i = 0; i < T_REVERSE_BATCH; i++)
    CHECK(kv_get_async(c, keys[i], 2, NULL, t_cb, &d[i]) == 0);
  int total = 0;
  for (int i = 0; i < T_LOOP_MAX && total < T_REVERSE_BATCH; i++) {
    kv_client *cs[1] = {c};
    int rc = kv_poll(cs, 1, 50);
    CHECK(rc >= 0);
    if (rc > 0)
      total += rc;
  }
  CHECK(total == T_REVERSE_BATCH);
  for (int i = 0; i < T_REVERSE_BATCH; i++) {
    char want[16];
    snprintf(want, sizeof(want), "a:%s", keys[i]);
    CHECK(d[i].calls == 1 && d[i].status == 0 && strcmp(d[i].value, want) == 0);
  }
  kv_close(c);
  fake_stop(&f);
}

static void test_version(void) {
  fake f;
  char addr[64];
  CHECK(fake_start(&f, "a") == 0);
  f.version = WIRE_PROTOCOL_VERSION + 1;
  fake_addr(&f, addr, sizeof(addr));
  kv_client *c = NULL;
  char err[256];
  CHECK(kv_connect(addr, NULL, &c, err, sizeof(err)) == KV_EVERSION);
  CHECK(c == NULL && strstr(err, "protocol version") != NULL);
  fake_stop(&f);

  /* Nothing listens on a closed port: KV_ECONN, and the next host of the
   * list is tried. */
  char both[160];
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof(a);
  bind(s, (struct sockaddr *)&a, sizeof(a));
  getsockname(s, (struct sockaddr *)&a, &al);
  close(s); /* bound, never listened: the port refuses */
  snprintf(both, sizeof(both), "127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
  CHECK(kv_connect(both, NULL, &c, err, sizeof(err)) == KV_ECONN);
  CHECK(strstr(err, "cannot connect") != NULL);
  fake g;
  CHECK(fake_start(&g, "g") == 0);
  size_t l = strlen(both);
  snprintf(both + l, sizeof(both) - l, ",127.0.0.1:%u", (unsigned)g.port);
  CHECK(kv_connect(both, NULL, &c, err, sizeof(err)) == 0);
  kv_result *res = NULL;
  CHECK(c && kv_get(c, "x", 1, NULL, &res) == 0);
  CHECK(res && res->nsiblings == 2 &&
        memcmp(res->siblings[0].value, "g:x", 3) == 0);
  kv_result_free(res);
  kv_close(c);
  fake_stop(&g);
}

/* Starts fakes "a", whose ring sends every key to b, and "b"; their
 * addresses go to aaddr and baddr (64 bytes each). */
static void fake_pair(fake *a, fake *b, char *aaddr, char *baddr) {
  CHECK(fake_start(b, "b") == 0);
  fake_addr(b, baddr, 64);
  CHECK(fake_start(a, "a") == 0);
  fake_addr(a, aaddr, 64);
  a->ring_to = baddr;
}

static void test_routing(void) {
  fake a, b;
  char aaddr[64], baddr[64];
  fake_pair(&a, &b, aaddr, baddr);
  kv_client *c = NULL;
  char err[256];
  CHECK(kv_connect(aaddr, NULL, &c, err, sizeof(err)) == 0);
  if (!c) {
    fake_stop(&a);
    fake_stop(&b);
    return;
  }
  /* The ring sends every key to b: requests go there, over a second
   * connection opened on demand. */
  kv_result *res = NULL;
  CHECK(kv_get(c, "key1", 4, NULL, &res) == 0);
  CHECK(res && res->nsiblings == 2 &&
        memcmp(res->siblings[0].value, "b:key1", 6) == 0);
  kv_result_free(res);
  /* Admin commands still go to the node we connected to. */
  char *js = NULL;
  CHECK(kv_admin(c, "status", NULL, &js) == 0);
  CHECK(js && strstr(js, "\"a\"") != NULL);
  free(js);
  kv_close(c);
  /* b is gone: the connection fails before a byte is written and the
   * request falls back to the first host. */
  fake_stop(&b);
  CHECK(kv_connect(aaddr, NULL, &c, err, sizeof(err)) == 0);
  if (c) {
    CHECK(kv_get(c, "key2", 4, NULL, &res) == 0);
    CHECK(res && res->nsiblings == 2 &&
          memcmp(res->siblings[0].value, "a:key2", 6) == 0);
    kv_result_free(res);
    kv_close(c);
  }
  fake_stop(&a);
}

/* HELLO with credentials: encoded with two trailing fields (a version-1
 * HELLO stays 4 fields long), decoded back. */
static void test_hello_encoding(void) {
  wire_msg m;
  memset(&m, 0, sizeof(m));
  m.type = WIRE_HELLO;
  m.req_id = 1;
  m.version = WIRE_PROTOCOL_VERSION;
  m.text.ptr = (const uint8_t *)"t";
  m.text.len = 1;
  kvbuf b;
  kvbuf_init(&b);
  CHECK(wire_encode(&b, &m) == 0);
  CHECK(b.len > 4 && b.data[4] == 0x94); /* fixarray of 4 */
  b.len = 0;
  m.user.ptr = (const uint8_t *)"bob";
  m.user.len = 3;
  m.secret.ptr = (const uint8_t *)"pw\0x";
  m.secret.len = 4;
  CHECK(wire_encode(&b, &m) == 0);
  CHECK(b.len > 4 && b.data[4] == 0x96); /* fixarray of 6 */
  wire_msg d;
  memset(&d, 0, sizeof(d));
  CHECK(wire_decode(b.data + WIRE_HEADER_BYTES, b.len - WIRE_HEADER_BYTES,
                    &wire_limits_default, &d) == 0);
  CHECK(d.type == WIRE_HELLO && mp_slice_eq(d.user, "bob") &&
        d.secret.len == 4 && memcmp(d.secret.ptr, "pw\0x", 4) == 0);
  /* The example of docs/protocol.md section 2.1, byte for byte. */
  static const uint8_t spec[] = {0x00, 0x00, 0x00, 0x10, 0x96, 0x01, 0x01,
                                 0x01, 0xa3, 'c',  'l',  'i',  0xa3, 'b',
                                 'o',  'b',  0xc4, 0x02, 'p',  'w'};
  b.len = 0;
  m.text.ptr = (const uint8_t *)"cli";
  m.text.len = 3;
  m.secret.ptr = (const uint8_t *)"pw";
  m.secret.len = 2;
  CHECK(wire_encode(&b, &m) == 0 && b.len == sizeof(spec) &&
        memcmp(b.data, spec, sizeof(spec)) == 0);
  /* An empty password is still two fields: the user is what counts. */
  b.len = 0;
  m.secret.ptr = (const uint8_t *)"";
  m.secret.len = 0;
  CHECK(wire_encode(&b, &m) == 0 && b.data[4] == 0x96);
  kvbuf_free(&b);
}

static void test_auth(void) {
  fake a, b;
  char aaddr[64], baddr[64];
  fake_pair(&a, &b, aaddr, baddr);
  static const char pw[] = "s3cr\0t"; /* a password is bytes */
  a.user = b.user = "bob";
  a.secret = b.secret = pw;
  a.secret_len = b.secret_len = sizeof(pw) - 1;
  kv_client *c = NULL;
  char err[512];

  /* No credentials, or wrong ones: KV_EAUTH with the node's message. */
  CHECK(kv_connect(aaddr, NULL, &c, err, sizeof(err)) == KV_EAUTH);
  CHECK(c == NULL && strstr(err, "refused the connection without credentials") &&
        strstr(err, "this node requires a user and password"));
  kv_connect_opts co = {.user = "bob", .password = "s3cr"};
  CHECK(kv_connect(aaddr, &co, &c, err, sizeof(err)) == KV_EAUTH);
  CHECK(c == NULL &&
        strstr(err, "refused the credentials of user bob: invalid user or "
                    "password") &&
        !strstr(err, "authentication failed")); /* the caller says that */

  /* Bad settings never reach a node. */
  co.user = NULL;
  CHECK(kv_connect(aaddr, &co, &c, err, sizeof(err)) == KV_EINVAL);
  char longname[WIRE_NAME_MAX + 1];
  memset(longname, 'u', WIRE_NAME_MAX);
  longname[WIRE_NAME_MAX] = '\0';
  co.user = longname;
  CHECK(kv_connect(aaddr, &co, &c, err, sizeof(err)) == KV_EINVAL);

  /* The right ones, with the password's length given (it holds a NUL):
   * the first node and the node routing leads to both let the client in;
   * a request the role does not allow is EPERM with the node's words. */
  co.user = "bob";
  co.password = pw;
  co.password_len = sizeof(pw) - 1;
  CHECK(kv_connect(aaddr, &co, &c, err, sizeof(err)) == 0);
  if (c) {
    kv_result *res = NULL;
    CHECK(kv_get(c, "key1", 4, NULL, &res) == 0);
    CHECK(res && res->nsiblings == 2 &&
          memcmp(res->siblings[0].value, "b:key1", 6) == 0);
    kv_result_free(res);
    CHECK(kv_put(c, "perm", 4, "v", 1, NULL, 0, NULL, NULL) == KV_EPERM);
    CHECK(strcmp(kv_errmsg(c), "user bob (role read) may not write") == 0);
    kv_close(c);
  }
  fake_stop(&a);
  fake_stop(&b);
}

int main(void) {
  test_b64();
  test_utf8();
  test_json();
  test_levels();
  test_basic();
  test_out_of_order();
  test_version();
  test_routing();
  test_hello_encoding();
  test_auth();
  return check_summary(NULL);
}
