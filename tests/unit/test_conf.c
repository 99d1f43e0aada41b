/*
 * test_conf.c: kvorumd's settings (node/conf.h): the defaults agree with
 * the modules' constants and pass their own checks; config files (keys at
 * the top or under [kvorumd], comments, blank lines, CRLF, empty values)
 * load as flags would; every kind of error names the file, the line and
 * the key, and the first error in file order wins; flags set after the
 * file win; the checks across settings; and --print-config's output loads
 * back to the same settings and prints the same bytes.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "core.h"
#include "kv_err.h"
#include "unit/check.h"
#include "uv_log.h"

static char err[CONF_ERR_MAX];

/* Loads text into a fresh c; returns the result. */
static int load(conf *c, const char *text) {
  conf_init(c);
  err[0] = '\0';
  return conf_load_text(c, "t.conf", text, strlen(text), err, sizeof(err));
}

/* Whether loading text fails with a message that starts with prefix. */
static bool fails_with(const char *text, const char *prefix) {
  conf c;
  int rc = load(&c, text);
  conf_free(&c);
  if (rc == 0 || strncmp(err, prefix, strlen(prefix)) != 0) {
    fprintf(stderr, "  loading %s gave %d, '%s' (wanted '%s...')\n", text, rc,
            err, prefix);
    return false;
  }
  return true;
}

/* c as --print-config prints it (malloc'd). */
static char *printed(const conf *c) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f)
    return NULL;
  conf_print(c, f, "a header\nof two lines");
  fclose(f);
  return buf;
}

static void test_defaults(void) {
  conf c;
  conf_init(&c);
  for (int i = 0; i < CONF_COUNT; i++) {
    const conf_opt *o = &conf_opts[i];
    CHECK(conf_find(o->name) == i);
    CHECK(o->help && o->arg && *o->help);
    if (o->def) {
      char e[CONF_ERR_MAX];
      CHECK(conf_set(&c, (conf_id)i, o->def, e, sizeof(e)) == 0);
    }
  }
  conf_free(&c);
  conf_init(&c);
  CHECK(conf_uint(&c, CONF_PARTITIONS) == RING_Q_DEFAULT);
  CHECK(conf_uint(&c, CONF_VALUE_MAX) == KV_VALUE_MAX_DEFAULT);
  CHECK(conf_uint(&c, CONF_N) == GOSSIP_N_DEFAULT);
  CHECK(conf_opts[CONF_N].hi == NODE_FANOUT_MAX);
  CHECK(conf_opts[CONF_PARTITIONS].hi == RING_Q_MAX);
  CHECK(CONF_VALUE_MAX_MAX == WIRE_FRAME_MAX - 1024 * 1024 - KV_KEY_MAX);
  CHECK(conf_uint(&c, CONF_CATCHUP_MB_PER_S) == 32);
  CHECK(conf_real(&c, CONF_PHI_THRESHOLD) == GOSSIP_PHI_THRESHOLD_DEFAULT);
  CHECK(conf_find("config") < 0 && conf_find("listne") < 0);
  /* The words of log-level and log-format are in the order of the enums
   * main.c casts their index to. */
  const char *levels[] = {"error", "warn", "info", "debug"};
  for (int i = 0; i < 4; i++) {
    node_log_level l;
    char e[CONF_ERR_MAX];
    CHECK(node_log_level_parse(levels[i], &l) == 0 && (int)l == i);
    CHECK(conf_set(&c, CONF_LOG_LEVEL, levels[i], e, sizeof(e)) == 0);
    CHECK(conf_word(&c, CONF_LOG_LEVEL) == i);
  }
  const char *formats[] = {"logfmt", "json"};
  for (int i = 0; i < 2; i++) {
    kv_log_format f;
    char e[CONF_ERR_MAX];
    CHECK(kv_log_format_parse(formats[i], &f) == 0 && (int)f == i);
    CHECK(conf_set(&c, CONF_LOG_FORMAT, formats[i], e, sizeof(e)) == 0);
    CHECK(conf_word(&c, CONF_LOG_FORMAT) == i);
  }
  char data[64];
  CHECK(strcmp(conf_data_dir(&c, data, sizeof(data)), "./var/n1") == 0);
  CHECK(strcmp(conf_tls_mode(&c, CONF_CLIENT_TLS), "plain") == 0);
  CHECK(conf_get(&c, CONF_ZONE) == NULL && conf_get(&c, CONF_SEEDS) == NULL);
  CHECK(conf_check(&c, err, sizeof(err)) == 0);
  conf_free(&c);
}

static void test_file(void) {
  conf c;
  CHECK(load(&c, "# comment\n"
                 "; another\n"
                 "\n"
                 "id = n7\n"
                 "   listen=127.0.0.1:7107   # clients\n"
                 "[kvorumd]\r\n"
                 "peer = 127.0.0.1:7207 ; peers\r\n"
                 "seeds = 127.0.0.1:7201,127.0.0.1:7202\n"
                 "zone =\n"
                 "replicas = us-east=3,eu-west=2\n"
                 "r = 1\n"
                 "phi-threshold = 9.5\n"
                 "log-level = debug") == 0);
  CHECK(strcmp(conf_get(&c, CONF_ID), "n7") == 0);
  CHECK(strcmp(conf_get(&c, CONF_LISTEN), "127.0.0.1:7107") == 0);
  CHECK(strcmp(conf_get(&c, CONF_PEER), "127.0.0.1:7207") == 0);
  CHECK(c.line[CONF_ID] == 4 && c.line[CONF_PEER] == 7);
  CHECK(!conf_given(&c, CONF_ZONE));
  CHECK(conf_real(&c, CONF_PHI_THRESHOLD) == 9.5);
  CHECK(conf_word(&c, CONF_LOG_LEVEL) == NODE_LOG_DEBUG);
  char buf[256];
  const char *v[CONF_SEEDS_MAX];
  CHECK(conf_seeds(&c, buf, sizeof(buf), v, CONF_SEEDS_MAX) == 2);
  CHECK(strcmp(v[1], "127.0.0.1:7202") == 0);
  gossip_replicas reps[RING_REGIONS_MAX];
  uint32_t total = 0;
  CHECK(conf_replicas(&c, buf, sizeof(buf), reps, &total) == 2);
  CHECK(total == 5 && strcmp(reps[1].region, "eu-west") == 0 && reps[1].n == 2);
  CHECK(conf_check(&c, err, sizeof(err)) == 0);
  /* A flag after the file wins; an empty one goes back to the default. */
  CHECK(conf_set(&c, CONF_ID, "n8", err, sizeof(err)) == 0);
  CHECK(strcmp(conf_get(&c, CONF_ID), "n8") == 0);
  CHECK(conf_set(&c, CONF_LISTEN, "", err, sizeof(err)) == 0);
  CHECK(strcmp(conf_get(&c, CONF_LISTEN), "127.0.0.1:7101") == 0);
  conf_free(&c);
  CHECK(load(&c, "") == 0);
  conf_free(&c);
  /* An indented line is a line of its own, not a continuation. */
  CHECK(load(&c, "id = n2\n  region = r1\n") == 0);
  CHECK(strcmp(conf_get(&c, CONF_REGION), "r1") == 0 &&
        strcmp(conf_get(&c, CONF_ID), "n2") == 0);
  conf_free(&c);
}

static void test_errors(void) {
  CHECK(fails_with("id = n1\nlistne = 1\n", "t.conf:2: unknown key 'listne'"));
  CHECK(fails_with("\n\nlisten = 127.0.0.1\n",
                   "t.conf:3: listen wants HOST:PORT, not '127.0.0.1'"));
  CHECK(fails_with("partitions = 48\n",
                   "t.conf:1: partitions must be a power of two"));
  CHECK(fails_with("partitions = 0x40\n",
                   "t.conf:1: partitions wants a whole number"));
  CHECK(fails_with("r = -1\n", "t.conf:1: r wants a whole number"));
  CHECK(fails_with("phi-threshold = 0\n", "t.conf:1: phi-threshold wants"));
  CHECK(fails_with("log-level = loud\n",
                   "t.conf:1: log-level is one of error|warn|info|debug"));
  CHECK(fails_with("id = a b\n", "t.conf:1: id may hold letters"));
  CHECK(fails_with("seeds = 127.0.0.1:1,x\n", "t.conf:1: seeds wants"));
  CHECK(fails_with("replicas = a=3,a=1\n",
                   "t.conf:1: replicas names region 'a' twice"));
  CHECK(fails_with("replicas = a=30\n", "t.conf:1: replicas wants a count"));
  CHECK(fails_with("id = n1\nid = n2\n",
                   "t.conf:2: 'id' is set twice (first on line 1)"));
  CHECK(
      fails_with("[server]\nid = n1\n", "t.conf:2: unknown section [server]"));
  CHECK(
      fails_with("config = x.conf\n", "t.conf:1: 'config' is a command-line"));
  CHECK(fails_with("id = n1\nthis is no setting\n",
                   "t.conf:2: not a 'name = value' line"));
  /* The first error in file order wins, of either kind. */
  CHECK(fails_with("junk\nlistne = 1\n", "t.conf:1: not a"));
  CHECK(fails_with("listne = 1\njunk\n", "t.conf:1: unknown key"));
  /* Long lines: up to CONF_LINE_MAX bytes, never cut. */
  char *line = malloc(CONF_LINE_MAX + 64);
  memset(line, ' ', CONF_LINE_MAX + 63);
  memcpy(line, "data = /", 8);
  line[CONF_LINE_MAX] = '\0';
  conf c;
  CHECK(load(&c, line) == 0 && conf_given(&c, CONF_DATA));
  conf_free(&c);
  line[CONF_LINE_MAX] = 'x';
  line[CONF_LINE_MAX + 1] = '\0';
  CHECK(fails_with(line, "t.conf:1: the line is longer than"));
  free(line);
  /* What a file could not say, a flag may not say either. */
  conf_init(&c);
  CHECK(conf_set(&c, CONF_DATA, "/a #b", err, sizeof(err)) == KV_EINVAL &&
        strstr(err, "comment"));
  CHECK(conf_set(&c, CONF_DATA, ";a", err, sizeof(err)) == KV_EINVAL);
  CHECK(conf_set(&c, CONF_DATA, " /a", err, sizeof(err)) == KV_EINVAL);
  CHECK(conf_set(&c, CONF_DATA, "/a\tb", err, sizeof(err)) == KV_EINVAL);
  CHECK(conf_set(&c, CONF_DATA, "/a#b;c", err, sizeof(err)) == 0);
  conf_free(&c);
  /* A missing file. */
  conf_init(&c);
  CHECK(conf_load_file(&c, "/nonexistent/kvorum.conf", err, sizeof(err)) ==
        KV_EIO);
  CHECK(strstr(err, "/nonexistent/kvorum.conf: cannot open") == err);
  conf_free(&c);
  /* A small message buffer cuts the message, never more. */
  char small[12];
  memset(small, 'z', sizeof(small));
  conf_init(&c);
  CHECK(conf_load_text(&c, "t.conf", "zz = 1\n", 7, small, 8) == KV_EINVAL);
  CHECK(strlen(small) == 7 && small[11] == 'z');
  conf_free(&c);
}

static void test_check(void) {
  conf c;
  CHECK(load(&c, "tls-cert = a.pem\n") == 0);
  CHECK(conf_check(&c, err, sizeof(err)) == KV_EINVAL &&
        strstr(err, "TLS needs all of"));
  CHECK(conf_set(&c, CONF_TLS_KEY, "a.key", err, sizeof(err)) == 0 &&
        conf_set(&c, CONF_TLS_CA, "ca.pem", err, sizeof(err)) == 0);
  CHECK(conf_check(&c, err, sizeof(err)) == 0);
  CHECK(strcmp(conf_tls_mode(&c, CONF_PEER_TLS), "tls") == 0);
  conf_free(&c);
  CHECK(load(&c, "client-tls = both\n") == 0);
  CHECK(conf_check(&c, err, sizeof(err)) == KV_EINVAL);
  conf_free(&c);
  CHECK(load(&c, "n = 3\nreplicas = a=2\n") == 0);
  CHECK(conf_check(&c, err, sizeof(err)) == KV_EINVAL &&
        strstr(err, "exclude each other"));
  conf_free(&c);
  CHECK(load(&c, "replicas = a=1\n") == 0);
  CHECK(conf_check(&c, err, sizeof(err)) == KV_EINVAL &&
        strstr(err, "cannot exceed"));
  conf_free(&c);
  CHECK(load(&c, "n = 1\n") == 0);
  CHECK(conf_check(&c, err, sizeof(err)) == KV_EINVAL);
  conf_free(&c);
}

static void test_print(void) {
  const char *files[] = {
      "",
      "id = n3\nseeds = 127.0.0.1:1,127.0.0.1:2\nreplicas = a=2,b=1\n"
      "zone = z1\nhttp = 127.0.0.1:7401\ncache-mb = 0\n",
      "tls-cert = c\ntls-key = k\ntls-ca = a\npeer-tls = both\n"
      "data = /var/lib/kvorum/n1\n",
  };
  for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
    conf a, b;
    CHECK(load(&a, files[f]) == 0 && conf_check(&a, err, sizeof(err)) == 0);
    char *pa = printed(&a);
    CHECK(pa && strncmp(pa, "# a header\n# of two lines\n", 26) == 0);
    CHECK(load(&b, pa) == 0);
    CHECK(conf_check(&b, err, sizeof(err)) == 0);
    char *pb = printed(&b);
    CHECK(pa && pb && strcmp(pa, pb) == 0);
    /* Every setting, one line each, in the list's order. */
    int lines = 0;
    for (const char *p = pa; p && *p; p++)
      lines += *p == '\n';
    CHECK(lines == CONF_COUNT + 2);
    for (int i = 0; i < CONF_COUNT; i++) {
      const char *x = conf_get(&a, (conf_id)i), *y = conf_get(&b, (conf_id)i);
      if (i == CONF_DATA || i == CONF_CLIENT_TLS || i == CONF_PEER_TLS)
        continue; /* printed as their effective values: see below */
      CHECK((!x && !y) || (x && y && strcmp(x, y) == 0));
    }
    char d1[64], d2[64];
    CHECK(strcmp(conf_data_dir(&a, d1, sizeof(d1)),
                 conf_data_dir(&b, d2, sizeof(d2))) == 0);
    CHECK(strcmp(conf_tls_mode(&a, CONF_CLIENT_TLS),
                 conf_tls_mode(&b, CONF_CLIENT_TLS)) == 0);
    free(pa);
    free(pb);
    conf_free(&a);
    conf_free(&b);
  }
}

static void test_help(void) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  conf_help(f);
  fclose(f);
  for (int i = 0; i < CONF_COUNT; i++) {
    char flag[64];
    snprintf(flag, sizeof(flag), "--%s ", conf_opts[i].name);
    CHECK(strstr(buf, flag) != NULL);
  }
  CHECK(strstr(buf, "(default 127.0.0.1:7101)") != NULL);
  free(buf);
}

int main(void) {
  test_defaults();
  test_file();
  test_errors();
  test_check();
  test_print();
  test_help();
  return check_summary("test_conf");
}
