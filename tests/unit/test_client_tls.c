/*
 * test_client_tls.c: libkvorum's TLS against `openssl s_server`, with a
 * throwaway CA made by the openssl command in a temporary directory.
 *
 * usage: test_client_tls OPENSSL [KVORUM_CLI]
 *
 * s_server does not speak kvorum, but it forwards its stdin to the client
 * it serves: once its log shows a handshake done, the test writes a
 * HELLO_OK frame there, and after kv_connect a GET_OK, so a handshake that
 * succeeds is followed by a HELLO answered and a GET that travels both
 * ways. Checked: the right CA passes and a wrong CA, the
 * system store or a wrong tls_server_name fail with OpenSSL's reason; a
 * node that wants a client certificate; a plain client at a TLS port and a
 * TLS client at a plain port get a hint; unreadable files are KV_EINVAL.
 * With the kvorum CLI: its TLS flags, EAUTH and EPERM from the node (fed
 * as above) printed with exit 1, and a password refused as an option and
 * asked for with no terminal to ask on.
 *
 * Every child (openssl commands, servers) runs under a deadline, dies with
 * this process (PR_SET_PDEATHSIG) and is killed on every exit path; an
 * alarm bounds the whole test. Prints "N passed, M failed".
 * Depends on: libkvorum, kvproto (wire.h), pthreads, Linux (prctl).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kvorum.h"
#include "wire.h"

#define CHECK_MESSAGE
#include "unit/check.h"

#define T_ALARM_S 100          /* the whole test (CTest's timeout is 120) */
#define T_CMD_TIMEOUT_MS 30000 /* one openssl command */
#define T_ACCEPT_WAIT_MS 10000 /* s_server says ACCEPT */
#define T_KV_TIMEOUT_MS 3000   /* libkvorum's connect and request timeouts */
#define T_SERVERS_MAX 4
#define T_DIR_MAX 256 /* the temporary directory's path */
#define T_PATH_MAX 512 /* a file in it */

static const char *openssl_bin, *cli_bin;
static char dir[T_DIR_MAX];
static pid_t servers[T_SERVERS_MAX];

/* ---- processes ---- */

static void kill_servers(void) {
  for (int i = 0; i < T_SERVERS_MAX; i++) {
    if (servers[i] > 0) {
      kill(servers[i], SIGKILL);
      waitpid(servers[i], NULL, 0);
      servers[i] = 0;
    }
  }
}

static void on_alarm(int sig) {
  (void)sig;
  static const char msg[] = "test_client_tls: timed out\n";
  for (int i = 0; i < T_SERVERS_MAX; i++)
    if (servers[i] > 0)
      kill(servers[i], SIGKILL);
  if (write(2, msg, sizeof(msg) - 1) < 0) {
    /* Nothing more to do on the way out. */
  }
  _exit(1);
}

static void path_of(char *buf, const char *name) {
  snprintf(buf, T_PATH_MAX, "%s/%s", dir, name);
}

/* Forks argv (argv[0] the program) with stdin from in_fd (-1: /dev/null)
 * and stdout and stderr appended to log, in a session of its own (no
 * terminal: nothing can prompt). The child dies with this process.
 * Returns its pid or -1. */
static pid_t spawn(char *const argv[], int in_fd, const char *log) {
  pid_t pid = fork();
  if (pid != 0)
    return pid;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  setsid();
  int in = in_fd >= 0 ? in_fd : open("/dev/null", O_RDONLY);
  int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (in < 0 || out < 0)
    _exit(127);
  dup2(in, 0);
  dup2(out, 1);
  dup2(out, 2);
  execv(argv[0], argv);
  _exit(127);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Runs prog with args (NULL-terminated, without the program) within
 * T_CMD_TIMEOUT_MS, its output appended to log. Returns its exit status,
 * or -1 when it could not run, was killed or took too long. */
static int run(const char *prog, const char *const *args, const char *log) {
  char *argv[32];
  int n = 0;
  argv[n++] = (char *)prog;
  for (; args[n - 1] && n < 31; n++)
    argv[n] = (char *)args[n - 1];
  argv[n] = NULL;
  pid_t pid = spawn(argv, -1, log);
  if (pid < 0)
    return -1;
  for (int waited = 0; waited < T_CMD_TIMEOUT_MS; waited += 10) {
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid)
      return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    sleep_ms(10);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -1;
}

/* The openssl command with args; 0 when it succeeds. */
static int run_openssl(const char *const *args) {
  char log[T_PATH_MAX];
  path_of(log, "openssl.log");
  return run(openssl_bin, args, log) == 0 ? 0 : -1;
}

/* ---- the throwaway PKI ---- */

/* A self-signed CA: NAME.pem and NAME.key. */
static int make_ca(const char *name) {
  char key[T_PATH_MAX], pem[T_PATH_MAX], subj[64];
  snprintf(key, sizeof(key), "%s/%s.key", dir, name);
  snprintf(pem, sizeof(pem), "%s/%s.pem", dir, name);
  snprintf(subj, sizeof(subj), "/CN=kvorum test %s", name);
  const char *args[] = {"req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                        "-out", pem, "-days", "2", "-subj", subj, NULL};
  return run_openssl(args);
}

/* A certificate NAME.pem (key NAME.key) for cn signed by the CA ca, with
 * the DNS name san when not NULL. */
static int make_cert(const char *name, const char *cn, const char *ca,
                     const char *san) {
  char key[T_PATH_MAX], csr[T_PATH_MAX], pem[T_PATH_MAX], capem[T_PATH_MAX],
      cakey[T_PATH_MAX], ext[T_PATH_MAX], subj[64];
  snprintf(key, sizeof(key), "%s/%s.key", dir, name);
  snprintf(csr, sizeof(csr), "%s/%s.csr", dir, name);
  snprintf(pem, sizeof(pem), "%s/%s.pem", dir, name);
  snprintf(capem, sizeof(capem), "%s/%s.pem", dir, ca);
  snprintf(cakey, sizeof(cakey), "%s/%s.key", dir, ca);
  snprintf(ext, sizeof(ext), "%s/%s.ext", dir, name);
  snprintf(subj, sizeof(subj), "/CN=%s", cn);
  FILE *f = fopen(ext, "w");
  if (!f)
    return -1;
  if (san)
    fprintf(f, "subjectAltName=DNS:%s\n", san);
  fprintf(f, "basicConstraints=CA:FALSE\n");
  fclose(f);
  const char *req[] = {"req", "-newkey", "ec", "-pkeyopt",
                       "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                       "-out", csr, "-subj", subj, NULL};
  const char *sign[] = {"x509", "-req", "-in", csr, "-CA", capem, "-CAkey",
                        cakey, "-CAcreateserial", "-out", pem, "-days", "2",
                        "-extfile", ext, NULL};
  return run_openssl(req) || run_openssl(sign) ? -1 : 0;
}

/* ---- s_server ---- */

typedef struct tserver {
  pid_t pid;
  int in;        /* the write end of its stdin */
  unsigned port;
  char addr[64]; /* "127.0.0.1:PORT" */
  char log[T_PATH_MAX];
} tserver;

/* Starts s_server with the node certificate (and, with client_ca, asking
 * for a client certificate that CA signed). Returns 0 with *s filled. */
static int server_start(tserver *s, const char *log_name,
                        const char *client_ca) {
  memset(s, 0, sizeof(*s));
  char cert[T_PATH_MAX], key[T_PATH_MAX], ca[T_PATH_MAX], log[T_PATH_MAX];
  path_of(cert, "node.pem");
  path_of(key, "node.key");
  path_of(log, log_name);
  snprintf(s->log, sizeof(s->log), "%s", log);
  int p[2];
  if (pipe(p))
    return -1;
  char *argv[16];
  int n = 0;
  argv[n++] = (char *)openssl_bin;
  argv[n++] = "s_server";
  argv[n++] = "-accept";
  argv[n++] = "127.0.0.1:0";
  argv[n++] = "-cert";
  argv[n++] = cert;
  argv[n++] = "-key";
  argv[n++] = key;
  if (client_ca) {
    snprintf(ca, sizeof(ca), "%s/%s.pem", dir, client_ca);
    argv[n++] = "-Verify";
    argv[n++] = "1";
    argv[n++] = "-CAfile";
    argv[n++] = ca;
  }
  argv[n] = NULL;
  s->pid = spawn(argv, p[0], log);
  close(p[0]);
  s->in = p[1];
  for (int i = 0; i < T_SERVERS_MAX; i++) {
    if (servers[i] == 0) {
      servers[i] = s->pid;
      break;
    }
  }
  if (s->pid < 0)
    return -1;
  /* Its port, from the "ACCEPT 127.0.0.1:PORT" line it prints. */
  for (int waited = 0; waited < T_ACCEPT_WAIT_MS; waited += 20) {
    FILE *f = fopen(log, "r");
    char line[256];
    while (f && fgets(line, sizeof(line), f)) {
      if (sscanf(line, "ACCEPT 127.0.0.1:%u", &s->port) == 1) {
        fclose(f);
        snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%u", s->port);
        return 0;
      }
    }
    if (f)
      fclose(f);
    sleep_ms(20);
  }
  return -1;
}

static void server_stop(tserver *s) {
  if (s->in > 0)
    close(s->in);
  for (int i = 0; i < T_SERVERS_MAX; i++) {
    if (servers[i] == s->pid && s->pid > 0) {
      kill(s->pid, SIGTERM);
      waitpid(s->pid, NULL, 0);
      servers[i] = 0;
    }
  }
}

/* Frames s_server is to send, appended to b: HELLO_OK to request 1, and
 * GET_OK with one sibling to request 2 (the ids libkvorum gives the HELLO
 * and the first request of a new client). */
static void frame_hello_ok(kvbuf *b) {
  wire_msg m;
  memset(&m, 0, sizeof(m));
  m.type = WIRE_HELLO_OK;
  m.req_id = 1;
  m.version = WIRE_PROTOCOL_VERSION;
  m.text.ptr = (const uint8_t *)"tls-node";
  m.text.len = 8;
  m.partitions = 2;
  m.region.ptr = (const uint8_t *)"r1";
  m.region.len = 2;
  wire_encode(b, &m);
}

static void frame_get_ok(kvbuf *b, const char *value) {
  wire_get_ok_writer w;
  wire_begin_get_ok(&w, b, 2, 1);
  wire_add_sibling(&w, 0, 1, value, strlen(value));
  wire_end_get_ok(&w, "ctx", 3);
}

/* Sends b's frames to the client s serves, in one write, so s_server reads
 * them as one chunk that starts with a length byte, not one of its
 * commands. */
static void server_feed(tserver *s, const kvbuf *b) {
  if (write(s->in, b->data, b->len) != (ssize_t)b->len)
    fprintf(stderr, "cannot feed s_server\n");
}

/* Handshakes s has finished so far: the "CIPHER is" lines of its log. */
static int server_handshakes(const tserver *s) {
  FILE *f = fopen(s->log, "r");
  char line[512];
  int n = 0;
  while (f && fgets(line, sizeof(line), f))
    n += strncmp(line, "CIPHER is", 9) == 0;
  if (f)
    fclose(f);
  return n;
}

/* Sends frames to the next client of s, from a thread, once s has
 * finished one more handshake than seen (within T_ACCEPT_WAIT_MS): only
 * then does s_server forward its stdin to that client. */
typedef struct feeder {
  tserver *s;
  int seen;
  kvbuf frames;
  pthread_t th;
} feeder;

static void *feeder_main(void *arg) {
  feeder *f = arg;
  for (int waited = 0; waited < T_ACCEPT_WAIT_MS; waited += 10) {
    if (server_handshakes(f->s) > f->seen) {
      server_feed(f->s, &f->frames);
      break;
    }
    sleep_ms(10);
  }
  return NULL;
}

/* Starts f feeding s the frames of b (taken over; HELLO_OK when NULL). */
static int feeder_start(feeder *f, tserver *s, kvbuf *b) {
  f->s = s;
  f->seen = server_handshakes(s);
  kvbuf_init(&f->frames);
  if (b)
    kvbuf_append(&f->frames, b->data, b->len);
  else
    frame_hello_ok(&f->frames);
  return pthread_create(&f->th, NULL, feeder_main, f) ? -1 : 0;
}

static void feeder_join(feeder *f) {
  pthread_join(f->th, NULL);
  kvbuf_free(&f->frames);
}

/* kv_connect to s, which answers the HELLO. */
static int connect_fed(tserver *s, const kv_connect_opts *co, kv_client **c,
                       char *err, size_t errlen) {
  feeder f;
  if (feeder_start(&f, s, NULL))
    return KV_ENOMEM;
  int rc = kv_connect(s->addr, co, c, err, errlen);
  feeder_join(&f);
  return rc;
}

/* ---- a plain TCP node, for a TLS client at a plain port ---- */

typedef struct plain {
  int lfd;
  unsigned port;
  pthread_t th;
} plain;

/* Accepts one connection, answers what comes as kvorumd answers a frame
 * too large (ERROR ETOOBIG, req_id 0) and closes. */
static void *plain_main(void *arg) {
  plain *p = arg;
  struct pollfd pf = {p->lfd, POLLIN, 0};
  if (poll(&pf, 1, T_KV_TIMEOUT_MS) <= 0)
    return NULL;
  int fd = accept(p->lfd, NULL, NULL);
  if (fd < 0)
    return NULL;
  char junk[512];
  struct pollfd cf = {fd, POLLIN, 0};
  if (poll(&cf, 1, T_KV_TIMEOUT_MS) > 0 && read(fd, junk, sizeof(junk)) > 0) {
    kvbuf b;
    kvbuf_init(&b);
    wire_encode_error(&b, 0, KV_ETOOBIG, "frame too large");
    if (write(fd, b.data, b.len) < 0) {
      /* The client will see the close anyway. */
    }
    kvbuf_free(&b);
  }
  close(fd);
  return NULL;
}

static int plain_start(plain *p) {
  memset(p, 0, sizeof(*p));
  p->lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof(a);
  if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&a, sizeof(a)) ||
      listen(p->lfd, 4) || getsockname(p->lfd, (struct sockaddr *)&a, &al))
    return -1;
  p->port = ntohs(a.sin_port);
  return pthread_create(&p->th, NULL, plain_main, p) ? -1 : 0;
}

/* ---- the checks ---- */

static kv_connect_opts opts_with(const char *ca) {
  kv_connect_opts co = {.no_route = true,
                        .connect_timeout_ms = T_KV_TIMEOUT_MS,
                        .timeout_ms = T_KV_TIMEOUT_MS,
                        .tls = true};
  static char ca_path[T_PATH_MAX];
  if (ca) {
    snprintf(ca_path, sizeof(ca_path), "%s/%s.pem", dir, ca);
    co.tls_ca = ca_path;
  }
  return co;
}

/* The right CA: the handshake, HELLO and a GET over TLS. */
static void test_ok(tserver *s, const char *server_name) {
  kv_connect_opts co = opts_with("ca");
  co.tls_server_name = server_name;
  kv_client *c = NULL;
  char err[512] = "";
  int rc = connect_fed(s, &co, &c, err, sizeof(err));
  CHECK(rc == 0, "kv_connect: %d %s", rc, err);
  if (!c)
    return;
  kvbuf b;
  kvbuf_init(&b);
  frame_get_ok(&b, "over-tls");
  server_feed(s, &b);
  kvbuf_free(&b);
  kv_result *res = NULL;
  rc = kv_get(c, "k", 1, NULL, &res);
  CHECK(rc == 0 && res && res->nsiblings == 1 && res->siblings[0].len == 8 &&
            memcmp(res->siblings[0].value, "over-tls", 8) == 0,
        "kv_get: %d %s", rc, kv_errmsg(c));
  kv_result_free(res);
  kv_close(c);
}

/* A connect that must fail with code and a message containing want. */
static void test_fails(const char *addr, const kv_connect_opts *co, int code,
                       const char *want) {
  kv_client *c = NULL;
  char err[512] = "";
  int rc = kv_connect(addr, co, &c, err, sizeof(err));
  CHECK(rc == code && c == NULL, "got %d (%s), want %d", rc, err, code);
  CHECK(strstr(err, want) != NULL, "message \"%s\" lacks \"%s\"", err, want);
  kv_close(c);
}

/* Runs the CLI with args (its stderr to cli.log, emptied first), feeding
 * s the frames of b (none when NULL) for its connection. Returns its exit
 * status; *out gets the start of what it printed. */
static int run_cli(tserver *s, kvbuf *b, const char *const *args, char *out,
                   size_t cap) {
  char log[T_PATH_MAX];
  path_of(log, "cli.log");
  unlink(log);
  feeder f;
  bool fed = b && feeder_start(&f, s, b) == 0;
  int st = run(cli_bin, args, log);
  if (fed)
    feeder_join(&f);
  out[0] = '\0';
  FILE *fp = fopen(log, "r");
  if (fp) {
    size_t n = fread(out, 1, cap - 1, fp);
    out[n] = '\0';
    fclose(fp);
  }
  return st;
}

/* The kvorum CLI's TLS and credentials against s. */
static void test_cli(tserver *s) {
  char ca[T_PATH_MAX], other[T_PATH_MAX], out[1024], want[256];
  path_of(ca, "ca.pem");
  path_of(other, "other.pem");
  /* --tls-ca alone turns TLS on, and a CA that did not sign the node is
   * OpenSSL's reason, exit 1. */
  const char *wrong_ca[] = {"--host", s->addr, "--tls-ca", other, "status",
                            NULL};
  int st = run_cli(s, NULL, wrong_ca, out, sizeof(out));
  CHECK(st == 1 && strstr(out, "certificate verify failed"),
        "wrong CA: exit %d, said \"%s\"", st, out);
  /* Credentials the node refuses: its words after "authentication
   * failed:", exit 1. */
  kvbuf b;
  kvbuf_init(&b);
  wire_encode_error(&b, 1, KV_EAUTH,
                    "authentication failed: wrong user or password");
  setenv("KVORUM_PASSWORD", "pw", 1);
  const char *login[] = {"--host", s->addr, "--tls-ca", ca, "--user", "bob",
                         "status", NULL};
  st = run_cli(s, &b, login, out, sizeof(out));
  snprintf(want, sizeof(want),
           "kvorum: authentication failed: %s refused the credentials of "
           "user bob: wrong user or password\n",
           s->addr);
  CHECK(st == 1 && strcmp(out, want) == 0, "EAUTH: exit %d, said \"%s\"",
        st, out);
  kvbuf_free(&b);
  /* No password in argv, ever; none in the environment and no terminal to
   * ask on: a clear error, exit 1. */
  const char *flag[] = {"--host", s->addr, "--password", "pw", "status",
                        NULL};
  st = run_cli(s, NULL, flag, out, sizeof(out));
  CHECK(st == 2 && strstr(out, "--password is not an option"),
        "--password: exit %d, said \"%s\"", st, out);
  unsetenv("KVORUM_PASSWORD");
  st = run_cli(s, NULL, login, out, sizeof(out));
  CHECK(st == 1 && strstr(out, "no password: set KVORUM_PASSWORD"),
        "no password: exit %d, said \"%s\"", st, out);
}

static void test_server_auth(void) {
  tserver s;
  int rc = server_start(&s, "server1.log", NULL);
  CHECK(rc == 0, "s_server did not start (see %s/server1.log)", dir);
  if (rc) {
    server_stop(&s);
    return;
  }
  test_ok(&s, NULL);
  test_ok(&s, "node1.kvorum.test");

  kv_connect_opts co = opts_with("other");
  test_fails(s.addr, &co, KV_ECONN, "certificate verify failed");
  char want[128];
  snprintf(want, sizeof(want), "TLS handshake with %s failed", s.addr);
  test_fails(s.addr, &co, KV_ECONN, want);
  co = opts_with(NULL); /* the system store does not know our CA */
  test_fails(s.addr, &co, KV_ECONN, "certificate verify failed");
  co = opts_with("ca");
  co.tls_server_name = "node2.kvorum.test";
  test_fails(s.addr, &co, KV_ECONN, "hostname mismatch");

  /* A plain client at the TLS port: s_server closes without a word. */
  kv_connect_opts plain_co = {.no_route = true,
                              .connect_timeout_ms = T_KV_TIMEOUT_MS};
  test_fails(s.addr, &plain_co, KV_ECONN, "does it want TLS?");
  if (cli_bin)
    test_cli(&s);
  server_stop(&s);
}

static void test_client_cert(void) {
  tserver s;
  int rc = server_start(&s, "server2.log", "ca");
  CHECK(rc == 0, "s_server -Verify did not start (see %s/server2.log)", dir);
  if (rc) {
    server_stop(&s);
    return;
  }
  /* Without a certificate the node refuses; with TLS 1.3 the client hears
   * it after its side of the handshake, reading. */
  kv_connect_opts co = opts_with("ca");
  test_fails(s.addr, &co, KV_ECONN, "certificate required");
  char cert[T_PATH_MAX], key[T_PATH_MAX];
  path_of(cert, "client.pem");
  path_of(key, "client.key");
  co.tls_cert = cert;
  co.tls_key = key;
  kv_client *c = NULL;
  char err[512] = "";
  rc = connect_fed(&s, &co, &c, err, sizeof(err));
  CHECK(rc == 0, "with a client certificate: %d %s", rc, err);
  kv_close(c);
  /* The key of another certificate. */
  path_of(key, "node.key");
  test_fails(s.addr, &co, KV_EINVAL, "key values mismatch");
  server_stop(&s);
}

static void test_plain_port(void) {
  plain p;
  int rc = plain_start(&p);
  CHECK(rc == 0, "plain listener");
  if (rc)
    return;
  char addr[64];
  snprintf(addr, sizeof(addr), "127.0.0.1:%u", p.port);
  kv_connect_opts co = opts_with("ca");
  test_fails(addr, &co, KV_ECONN, "is TLS on at the server?");
  pthread_join(p.th, NULL);
  close(p.lfd);
}

static void test_files(void) {
  kv_connect_opts co = opts_with("missing");
  test_fails("127.0.0.1:1", &co, KV_EINVAL, "cannot read the CA file");
  char cert[T_PATH_MAX];
  path_of(cert, "ca.key"); /* a key is not a certificate */
  co = opts_with(NULL);
  co.tls_ca = cert;
  test_fails("127.0.0.1:1", &co, KV_EINVAL, "cannot load the CA file");
}

static void remove_dir(void) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char p[T_PATH_MAX + 256];
  while (d && (e = readdir(d))) {
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
      unlink(p);
    }
  }
  if (d)
    closedir(d);
  rmdir(dir);
}

int main(int argc, char **argv) {
  if (argc != 2 && argc != 3) {
    fprintf(stderr, "usage: test_client_tls OPENSSL [KVORUM_CLI]\n");
    return 2;
  }
  openssl_bin = argv[1];
  cli_bin = argc == 3 ? argv[2] : NULL;
  signal(SIGALRM, on_alarm);
  signal(SIGPIPE, SIG_IGN); /* s_server's stdin, should it die */
  alarm(T_ALARM_S);
  snprintf(dir, sizeof(dir), "%s/kvtls.XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  int pki = make_ca("ca") || make_ca("other") ||
            make_cert("node", "node1", "ca", "node1.kvorum.test") ||
            make_cert("client", "bench", "ca", NULL);
  CHECK(pki == 0, "openssl could not make the test certificates (see %s)",
        dir);
  if (pki == 0) {
    test_files();
    test_server_auth();
    test_client_cert();
    test_plain_port();
  }
  kill_servers();
  if (check_failed == 0)
    remove_dir();
  return check_summary("test_client_tls");
}
