/*
 * cli.c: the kvorum command: get, put and delete keys, and operate a
 * cluster (status, ring, stats, join, leave, remove, transfers, preflist).
 *
 * The CLI does not route: every request goes to --host, so tests and
 * operators pick the coordinator; except with --region, when reads and
 * writes go to a replica of the key in that region (found through the
 * ring --host gives), and local levels count that region. Exit status: 0 success (a get that finds
 * nothing included), 1 operational error (the server's message on stderr),
 * 2 usage error (message and usage on stderr). Contexts are base64.
 * Depends on: libkvorum (kvorum.h, kvorum_int.h for base64/JSON), mp.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvorum.h"
#include "kvorum_int.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2
#define CLI_POSITIONAL_MAX 8
#define CLI_TIMEOUT_MAX_MS (24u * 3600u * 1000u)
#define CLI_CONNECT_TIMEOUT_MS 2000
#define CLI_COL_MAX 256 /* bytes of one table cell */
#define CLI_REGION_MAX 64 /* region names, NUL included (RING_NAME_MAX) */
#define CLI_REGIONS_MAX 256 /* regions shown by status (one per member) */

/* Flags: one bit each; a command lists the ones it takes. */
enum {
  CLI_F_CONTEXT = 1 << 0,
  CLI_F_R = 1 << 1,
  CLI_F_W = 1 << 2,
  CLI_F_DW = 1 << 3,
  CLI_F_PR = 1 << 4,
  CLI_F_PW = 1 << 5,
  CLI_F_TIMEOUT = 1 << 6,
  CLI_F_LOCAL = 1 << 7,
  CLI_F_NO_SLOPPY = 1 << 8,
};

static const struct cli_flag {
  const char *name;
  int bit;
  bool value;
} cli_flags[] = {
    {"context", CLI_F_CONTEXT, true}, {"r", CLI_F_R, true},
    {"w", CLI_F_W, true},             {"dw", CLI_F_DW, true},
    {"pr", CLI_F_PR, true},           {"pw", CLI_F_PW, true},
    {"timeout", CLI_F_TIMEOUT, true}, {"local", CLI_F_LOCAL, false},
    {"no-sloppy", CLI_F_NO_SLOPPY, false},
};
#define CLI_NFLAGS (sizeof(cli_flags) / sizeof(cli_flags[0]))

typedef struct cli_args {
  const char *host;
  const char *region; /* --region: the client's region, or NULL */
  bool json;
  bool help;
  const char *cmd;
  const char *pos[CLI_POSITIONAL_MAX];
  int npos;
  int given; /* CLI_F_* bits seen */
  const char *val[CLI_NFLAGS];
} cli_args;

typedef int (*cli_fn)(kv_client *c, const cli_args *a);

typedef struct cli_cmd {
  const char *name;
  int flags;       /* CLI_F_* allowed */
  int npos;        /* positional arguments required */
  const char *args;  /* usage of the positionals */
  const char *help;  /* what it does, for --help */
  cli_fn fn;
} cli_cmd;

static int cli_put(kv_client *c, const cli_args *a);
static int cli_get(kv_client *c, const cli_args *a);
static int cli_del(kv_client *c, const cli_args *a);
static int cli_status(kv_client *c, const cli_args *a);
static int cli_ring(kv_client *c, const cli_args *a);
static int cli_generic(kv_client *c, const cli_args *a);

static const cli_cmd cli_cmds[] = {
    {"put", CLI_F_CONTEXT | CLI_F_W | CLI_F_DW | CLI_F_PW | CLI_F_TIMEOUT |
                CLI_F_NO_SLOPPY,
     2, "KEY VALUE [--context CTX] [--w W] [--dw DW] [--pw PW] [--timeout MS] "
        "[--no-sloppy]",
     "Writes VALUE under KEY and prints the new context (base64).\n"
     "Without --context nothing is overwritten: concurrent values become\n"
     "siblings. With the context of a get, the write replaces exactly the\n"
     "siblings that get saw.",
     cli_put},
    {"get", CLI_F_R | CLI_F_PR | CLI_F_TIMEOUT | CLI_F_LOCAL | CLI_F_NO_SLOPPY,
     1, "KEY [--r R] [--pr PR] [--timeout MS] [--local] [--no-sloppy]",
     "Reads KEY and prints every sibling and the context. Not found is not\n"
     "an error. --local reads only the contacted node's replica.\n"
     "--json prints {\"key\", \"found\", \"siblings\": [{\"value\"} |\n"
     "{\"value_b64\"} | {\"deleted\": true}], \"context\"}.",
     cli_get},
    {"del", CLI_F_CONTEXT | CLI_F_W | CLI_F_TIMEOUT, 1,
     "KEY [--context CTX] [--w W] [--timeout MS]",
     "Deletes KEY (writes a tombstone) and prints the new context.", cli_del},
    {"status", 0, 0, "",
     "Shows the members of the cluster as the contacted node sees them.",
     cli_status},
    {"ring", 0, 0, "", "Shows each partition of the ring with its owners.",
     cli_ring},
    {"stats", 0, 0, "", "Shows the contacted node's counters.", cli_generic},
    {"join", 0, 1, "SEED",
     "Makes the contacted node join the cluster of SEED (host:peer_port).",
     cli_generic},
    {"leave", 0, 0, "", "Makes the contacted node leave the cluster.",
     cli_generic},
    {"remove", 0, 1, "NODE_ID", "Removes a (dead) node from the cluster.",
     cli_generic},
    {"transfers", 0, 0, "", "Shows partition transfers in progress.",
     cli_generic},
    {"preflist", 0, 1, "KEY",
     "Shows KEY's partition and its replicas (primaries, then fallbacks)\n"
     "as the contacted node's ring says.",
     cli_generic},
};
#define CLI_NCMDS (sizeof(cli_cmds) / sizeof(cli_cmds[0]))

static void cli_usage(FILE *f) {
  fprintf(f,
          "usage: kvorum [--host HOST:PORT] [--region NAME] [--json] COMMAND [ARGS...]\n"
          "\n"
          "Global options (before or after the command):\n"
          "  --host HOST:PORT  node to talk to (default %s); the CLI does\n"
          "                    not route: this node coordinates\n"
          "  --region NAME     the client's region: reads and writes go to a\n"
          "                    replica of the key in NAME, and local_one and\n"
          "                    local_quorum count the replicas in NAME\n"
          "  --json            print machine-readable JSON\n"
          "  --help            this text; COMMAND --help for a command\n"
          "\n"
          "Commands:\n",
          KV_DEFAULT_HOST);
  for (size_t i = 0; i < CLI_NCMDS; i++)
    fprintf(f, "  %-10s %s\n", cli_cmds[i].name, cli_cmds[i].args);
  fprintf(f,
          "\n"
          "R, W, DW, PR and PW take a number or one, quorum, all, local_one,\n"
          "local_quorum, each_quorum. MS is milliseconds. Contexts are "
          "base64.\n"
          "Exit status: 0 ok (also a get that finds nothing), 1 operational\n"
          "error, 2 usage error.\n");
}

static void cli_cmd_usage(FILE *f, const cli_cmd *cmd) {
  fprintf(f, "usage: kvorum [--host HOST:PORT] [--region NAME] [--json] %s %s\n\n%s\n",
          cmd->name, cmd->args, cmd->help);
  if (cmd->flags & (CLI_F_R | CLI_F_W | CLI_F_DW | CLI_F_PR | CLI_F_PW))
    fprintf(f, "\nLevels: a number or one|quorum|all|local_one|local_quorum|"
               "each_quorum;\n0 or absent means the cluster default.\n");
  if (cmd->flags & CLI_F_TIMEOUT)
    fprintf(f, "--timeout MS: fail if no answer within MS milliseconds.\n");
  if (cmd->flags & CLI_F_NO_SLOPPY)
    fprintf(f, "--no-sloppy: strict quorum; only primaries count.\n");
  if (cmd->flags & CLI_F_CONTEXT)
    fprintf(f, "--context CTX: the base64 context of an earlier get.\n");
}

/* Prints a usage error and returns CLI_EXIT_USAGE. */
static int cli_bad(const cli_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int cli_bad(const cli_cmd *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("kvorum: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputs("\n\n", stderr);
  va_end(ap);
  if (cmd)
    cli_cmd_usage(stderr, cmd);
  else
    cli_usage(stderr);
  return CLI_EXIT_USAGE;
}

static const cli_cmd *cli_find(const char *name) {
  for (size_t i = 0; i < CLI_NCMDS; i++)
    if (strcmp(cli_cmds[i].name, name) == 0)
      return &cli_cmds[i];
  return NULL;
}

static int cli_flag_index(int bit) {
  for (size_t i = 0; i < CLI_NFLAGS; i++)
    if (cli_flags[i].bit == bit)
      return (int)i;
  return -1;
}

static const char *cli_val(const cli_args *a, int bit) {
  int i = cli_flag_index(bit);
  return i >= 0 && (a->given & bit) ? a->val[i] : NULL;
}

/* Parses argv into a. Returns 0 or CLI_EXIT_USAGE (message printed). */
static int cli_parse(int argc, char **argv, cli_args *a) {
  memset(a, 0, sizeof(*a));
  a->host = KV_DEFAULT_HOST;
  const char *bad_flag = NULL;
  bool dashdash = false;
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    if (!dashdash && strcmp(s, "--") == 0) {
      dashdash = true;
      continue;
    }
    if (dashdash || s[0] != '-' || s[1] == '\0' ||
        (s[1] != '-' && strcmp(s, "-h") != 0)) {
      if (!a->cmd)
        a->cmd = s;
      else if (a->npos < CLI_POSITIONAL_MAX)
        a->pos[a->npos++] = s;
      else
        a->npos = CLI_POSITIONAL_MAX + 1;
      continue;
    }
    if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
      a->help = true;
      continue;
    }
    const char *name = s + 2;
    const char *eq = strchr(name, '=');
    size_t nl = eq ? (size_t)(eq - name) : strlen(name);
    if (nl == 4 && strncmp(name, "json", 4) == 0 && !eq) {
      a->json = true;
      continue;
    }
    if (nl == 6 && strncmp(name, "region", 6) == 0) {
      if (eq) {
        a->region = eq + 1;
      } else if (i + 1 < argc) {
        a->region = argv[++i];
      } else {
        return cli_bad(NULL, "--region needs a value (a region name)");
      }
      if (!a->region[0] || strlen(a->region) >= CLI_REGION_MAX)
        return cli_bad(NULL, "--region must be 1 to %d characters",
                       CLI_REGION_MAX - 1);
      continue;
    }
    if (nl == 4 && strncmp(name, "host", 4) == 0) {
      if (eq) {
        a->host = eq + 1;
      } else if (i + 1 < argc) {
        a->host = argv[++i];
      } else {
        return cli_bad(NULL, "--host needs a value (HOST:PORT)");
      }
      continue;
    }
    size_t f;
    for (f = 0; f < CLI_NFLAGS; f++)
      if (strlen(cli_flags[f].name) == nl &&
          strncmp(cli_flags[f].name, name, nl) == 0)
        break;
    if (f == CLI_NFLAGS) {
      if (!bad_flag)
        bad_flag = s;
      continue;
    }
    a->given |= cli_flags[f].bit;
    if (cli_flags[f].value) {
      if (eq)
        a->val[f] = eq + 1;
      else if (i + 1 < argc)
        a->val[f] = argv[++i];
      else
        return cli_bad(a->cmd ? cli_find(a->cmd) : NULL,
                       "--%s needs a value", cli_flags[f].name);
    } else if (eq) {
      return cli_bad(a->cmd ? cli_find(a->cmd) : NULL,
                     "--%s takes no value", cli_flags[f].name);
    }
  }
  const cli_cmd *cmd = a->cmd ? cli_find(a->cmd) : NULL;
  if (a->help)
    return 0;
  if (!a->cmd)
    return cli_bad(NULL, "no command given");
  if (!cmd)
    return cli_bad(NULL, "unknown command \"%s\"", a->cmd);
  if (bad_flag)
    return cli_bad(cmd, "unknown option \"%s\" for %s", bad_flag, cmd->name);
  for (size_t f = 0; f < CLI_NFLAGS; f++)
    if ((a->given & cli_flags[f].bit) && !(cmd->flags & cli_flags[f].bit))
      return cli_bad(cmd, "%s does not take --%s", cmd->name,
                     cli_flags[f].name);
  if (a->npos != cmd->npos)
    return cli_bad(cmd, "%s takes %d argument%s (%s), got %d", cmd->name,
                   cmd->npos, cmd->npos == 1 ? "" : "s",
                   cmd->npos ? cmd->args : "none", a->npos);
  return 0;
}

/* Fills o from the flags. Returns 0 or CLI_EXIT_USAGE. */
static int cli_options(const cli_args *a, const cli_cmd *cmd, kv_options *o) {
  static const struct {
    int bit;
    size_t off;
  } levels[] = {{CLI_F_R, offsetof(kv_options, r)},
                {CLI_F_W, offsetof(kv_options, w)},
                {CLI_F_DW, offsetof(kv_options, dw)},
                {CLI_F_PR, offsetof(kv_options, pr)},
                {CLI_F_PW, offsetof(kv_options, pw)}};
  memset(o, 0, sizeof(*o));
  for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
    const char *v = cli_val(a, levels[i].bit);
    if (!v)
      continue;
    int32_t lv;
    if (kv_parse_level(v, &lv))
      return cli_bad(cmd,
                     "bad value \"%s\" for --%s: expected a number or one, "
                     "quorum, all, local_one, local_quorum, each_quorum",
                     v, cli_flags[cli_flag_index(levels[i].bit)].name);
    memcpy((char *)o + levels[i].off, &lv, sizeof(lv));
  }
  const char *t = cli_val(a, CLI_F_TIMEOUT);
  if (t) {
    char *end;
    errno = 0;
    unsigned long ms = strtoul(t, &end, 10);
    if (errno || end == t || *end || t[0] == '-' || ms == 0 ||
        ms > CLI_TIMEOUT_MAX_MS)
      return cli_bad(cmd, "bad value \"%s\" for --timeout: expected "
                          "milliseconds between 1 and %u",
                     t, (unsigned)CLI_TIMEOUT_MAX_MS);
    o->timeout_ms = (uint32_t)ms;
  }
  o->local = (a->given & CLI_F_LOCAL) != 0;
  o->no_sloppy = (a->given & CLI_F_NO_SLOPPY) != 0;
  return 0;
}

/* Decodes --context into *ctx (malloc'd, caller frees). */
static int cli_context(const cli_args *a, const cli_cmd *cmd, uint8_t **ctx,
                       size_t *len) {
  *ctx = NULL;
  *len = 0;
  const char *v = cli_val(a, CLI_F_CONTEXT);
  if (!v)
    return 0;
  if (kv_b64_decode(v, strlen(v), ctx, len))
    return cli_bad(cmd, "--context is not valid base64");
  return 0;
}

static int cli_fail(kv_client *c, int rc) {
  const char *m = kv_errmsg(c);
  fprintf(stderr, "kvorum: %s\n", m && *m ? m : kv_strerror(rc));
  return CLI_EXIT_FAIL;
}

static void cli_write(const kvbuf *b) {
  if (b->len)
    fwrite(b->data, 1, b->len, stdout);
}

static void cli_print_b64(const void *p, size_t len) {
  kvbuf b;
  kvbuf_init(&b);
  kv_b64_encode(&b, p, len);
  cli_write(&b);
  kvbuf_free(&b);
}

/* put and del print the new context: base64, or {"key", "context"}. */
static int cli_print_context(const cli_args *a, const kv_result *res) {
  const uint8_t *ctx = res ? res->context : NULL;
  size_t len = res ? res->context_len : 0;
  if (a->json) {
    kvbuf b;
    kvbuf_init(&b);
    kvbuf_append(&b, "{\"key\": ", 8);
    kv_json_str(&b, a->pos[0], strlen(a->pos[0]));
    kvbuf_append(&b, ", \"context\": \"", 14);
    kv_b64_encode(&b, ctx, len);
    kvbuf_append(&b, "\"}\n", 3);
    cli_write(&b);
    kvbuf_free(&b);
  } else {
    cli_print_b64(ctx, len);
    putchar('\n');
  }
  return CLI_EXIT_OK;
}

static int cli_put(kv_client *c, const cli_args *a) {
  const cli_cmd *cmd = cli_find("put");
  kv_options o;
  uint8_t *ctx;
  size_t ctx_len;
  if (cli_options(a, cmd, &o) || cli_context(a, cmd, &ctx, &ctx_len))
    return CLI_EXIT_USAGE;
  kv_result *res = NULL;
  int rc = kv_put(c, a->pos[0], strlen(a->pos[0]), a->pos[1],
                  strlen(a->pos[1]), ctx, ctx_len, &o, &res);
  free(ctx);
  if (rc)
    return cli_fail(c, rc);
  cli_print_context(a, res);
  kv_result_free(res);
  return CLI_EXIT_OK;
}

static int cli_del(kv_client *c, const cli_args *a) {
  const cli_cmd *cmd = cli_find("del");
  kv_options o;
  uint8_t *ctx;
  size_t ctx_len;
  if (cli_options(a, cmd, &o) || cli_context(a, cmd, &ctx, &ctx_len))
    return CLI_EXIT_USAGE;
  kv_result *res = NULL;
  int rc = kv_del(c, a->pos[0], strlen(a->pos[0]), ctx, ctx_len, &o, &res);
  free(ctx);
  if (rc)
    return cli_fail(c, rc);
  cli_print_context(a, res);
  kv_result_free(res);
  return CLI_EXIT_OK;
}

static int cli_get(kv_client *c, const cli_args *a) {
  const cli_cmd *cmd = cli_find("get");
  kv_options o;
  if (cli_options(a, cmd, &o))
    return CLI_EXIT_USAGE;
  kv_result *res = NULL;
  int rc = kv_get(c, a->pos[0], strlen(a->pos[0]), &o, &res);
  if (rc)
    return cli_fail(c, rc);
  kvbuf b;
  kvbuf_init(&b);
  if (a->json) {
    kvbuf_append(&b, "{\"key\": ", 8);
    kv_json_str(&b, a->pos[0], strlen(a->pos[0]));
    const char *found = res->found ? ", \"found\": true, \"siblings\": ["
                                   : ", \"found\": false, \"siblings\": [";
    kvbuf_append(&b, found, strlen(found));
    for (size_t i = 0; i < res->nsiblings; i++) {
      const kv_sibling *s = &res->siblings[i];
      if (i)
        kvbuf_append(&b, ", ", 2);
      if (s->deleted) {
        kvbuf_append(&b, "{\"deleted\": true}", 17);
      } else if (kv_utf8_valid(s->value, s->len)) {
        kvbuf_append(&b, "{\"value\": ", 10);
        kv_json_str(&b, s->value, s->len);
        kvbuf_append(&b, "}", 1);
      } else {
        kvbuf_append(&b, "{\"value_b64\": \"", 15);
        kv_b64_encode(&b, s->value, s->len);
        kvbuf_append(&b, "\"}", 2);
      }
    }
    kvbuf_append(&b, "], \"context\": \"", 15);
    kv_b64_encode(&b, res->context, res->context_len);
    kvbuf_append(&b, "\"}\n", 3);
  } else {
    char line[64];
    if (!res->found) {
      const char *nf = "(not found)\n";
      kvbuf_append(&b, nf, strlen(nf));
    } else if (res->nsiblings > 1) {
      snprintf(line, sizeof(line), "%zu siblings\n", res->nsiblings);
      kvbuf_append(&b, line, strlen(line));
    }
    for (size_t i = 0; i < res->nsiblings; i++) {
      const kv_sibling *s = &res->siblings[i];
      if (res->nsiblings > 1) {
        snprintf(line, sizeof(line), "[%zu] ", i + 1);
        kvbuf_append(&b, line, strlen(line));
      }
      if (s->deleted) {
        kvbuf_append(&b, "(deleted)", 9);
      } else if (kv_utf8_valid(s->value, s->len)) {
        kvbuf_append(&b, s->value, s->len);
      } else {
        kvbuf_append(&b, "base64:", 7);
        kv_b64_encode(&b, s->value, s->len);
      }
      kvbuf_append(&b, "\n", 1);
    }
    kvbuf_append(&b, "context: ", 9);
    kv_b64_encode(&b, res->context, res->context_len);
    kvbuf_append(&b, "\n", 1);
  }
  cli_write(&b);
  kvbuf_free(&b);
  kv_result_free(res);
  return CLI_EXIT_OK;
}

/* ---- admin commands ---- */

/* Renders the msgpack object at r as text into buf: strings bare, other
 * scalars and containers as JSON. */
static void cli_cell(mp_reader *r, char *buf, size_t cap) {
  kv_slice raw;
  buf[0] = '\0';
  if (mp_peek(r) == MP_STR) {
    kv_slice s;
    if (mp_read_str(r, &s) == 0)
      snprintf(buf, cap, "%.*s", (int)(s.len < cap ? s.len : cap - 1),
               (const char *)s.ptr);
    return;
  }
  if (mp_read_raw(r, &raw))
    return;
  kvbuf b;
  kvbuf_init(&b);
  if (kv_json_from_msgpack(&b, raw.ptr, raw.len) == 0)
    snprintf(buf, cap, "%s", (const char *)b.data);
  kvbuf_free(&b);
}

/* Looks up key in the map at raw; *out reads its value. */
static bool cli_map_get(kv_slice raw, const char *key, mp_reader *out) {
  mp_reader r;
  uint32_t n;
  mp_reader_init(&r, raw.ptr, raw.len);
  if (mp_read_map(&r, &n))
    return false;
  for (uint32_t i = 0; i < n; i++) {
    kv_slice k;
    if (mp_read_bytes(&r, &k))
      return false;
    if (mp_slice_eq(k, key)) {
      *out = r;
      return true;
    }
    if (mp_skip(&r))
      return false;
  }
  return false;
}

static void cli_map_str(kv_slice raw, const char *key, char *buf, size_t cap) {
  mp_reader r;
  buf[0] = '\0';
  if (cli_map_get(raw, key, &r))
    cli_cell(&r, buf, cap);
}

/* Runs an admin command; JSON mode prints the rendered result. Returns
 * -1 with *raw set when the caller should print the human form. */
static int cli_admin(kv_client *c, const cli_args *a, const char *const *args,
                     uint8_t **raw, size_t *len) {
  int rc = kv__admin_msgpack(c, a->cmd, args, raw, len);
  if (rc)
    return cli_fail(c, rc);
  if (!a->json)
    return -1;
  kvbuf b;
  kvbuf_init(&b);
  rc = kv_json_from_msgpack(&b, *raw, *len);
  free(*raw);
  *raw = NULL;
  if (rc) {
    kvbuf_free(&b);
    fprintf(stderr, "kvorum: could not render the reply: %s\n",
            kv_strerror(rc));
    return CLI_EXIT_FAIL;
  }
  kvbuf_append(&b, "\n", 1);
  cli_write(&b);
  kvbuf_free(&b);
  return CLI_EXIT_OK;
}

static int cli_status(kv_client *c, const cli_args *a) {
  uint8_t *raw;
  size_t len;
  int rc = cli_admin(c, a, NULL, &raw, &len);
  if (rc >= 0)
    return rc;
  kv_slice all = {raw, len};
  char node[CLI_COL_MAX], ver[CLI_COL_MAX];
  cli_map_str(all, "node", node, sizeof(node));
  cli_map_str(all, "ring_version", ver, sizeof(ver));
  printf("Node %s, ring version %s\n", node[0] ? node : "?",
         ver[0] ? ver : "?");
  /* Members grouped by region (as nodetool status groups datacenters), the
   * regions in the order their first member comes. */
  char regions[CLI_REGIONS_MAX][CLI_REGION_MAX];
  size_t nreg = 0;
  mp_reader r;
  uint32_t n = 0;
  if (cli_map_get(all, "members", &r) && mp_read_array(&r, &n) == 0) {
    for (uint32_t i = 0; i < n; i++) {
      kv_slice m;
      if (mp_read_raw(&r, &m))
        break;
      char rg[CLI_REGION_MAX];
      cli_map_str(m, "region", rg, sizeof(rg));
      size_t k = 0;
      while (k < nreg && strcmp(regions[k], rg) != 0)
        k++;
      if (k == nreg && nreg < CLI_REGIONS_MAX)
        memcpy(regions[nreg++], rg, sizeof(rg));
    }
  }
  for (size_t k = 0; k < nreg; k++) {
    uint32_t members = 0, up = 0;
    if (!cli_map_get(all, "members", &r) || mp_read_array(&r, &n) != 0)
      break;
    for (uint32_t i = 0; i < n; i++) {
      kv_slice m;
      if (mp_read_raw(&r, &m))
        break;
      char rg[CLI_REGION_MAX], st[CLI_COL_MAX];
      cli_map_str(m, "region", rg, sizeof(rg));
      cli_map_str(m, "state", st, sizeof(st));
      if (strcmp(rg, regions[k]) == 0) {
        members++;
        up += strcmp(st, "up") == 0;
      }
    }
    printf("\nRegion: %s (%u member%s, %u up)\n", regions[k], members,
           members == 1 ? "" : "s", up);
    printf("%-8s %-12s %-22s %-22s %-8s %s\n", "State", "ID", "Listen",
           "Peer", "Zone", "Partitions");
    if (!cli_map_get(all, "members", &r) || mp_read_array(&r, &n) != 0)
      break;
    for (uint32_t i = 0; i < n; i++) {
      kv_slice m;
      if (mp_read_raw(&r, &m))
        break;
      static const char *cols[] = {"state", "id",   "listen",    "peer",
                                   "region", "zone", "partitions"};
      char v[7][CLI_COL_MAX];
      for (size_t j = 0; j < 7; j++)
        cli_map_str(m, cols[j], v[j], sizeof(v[j]));
      if (strcmp(v[4], regions[k]) != 0)
        continue;
      printf("%-8s %-12s %-22s %-22s %-8s %s\n", v[0], v[1], v[2], v[3],
             v[5], v[6]);
    }
  }
  free(raw);
  return CLI_EXIT_OK;
}

static int cli_ring(kv_client *c, const cli_args *a) {
  uint8_t *raw;
  size_t len;
  int rc = cli_admin(c, a, NULL, &raw, &len);
  if (rc >= 0)
    return rc;
  kv_slice all = {raw, len};
  char ver[CLI_COL_MAX], q[CLI_COL_MAX], nn[CLI_COL_MAX];
  cli_map_str(all, "version", ver, sizeof(ver));
  cli_map_str(all, "q", q, sizeof(q));
  cli_map_str(all, "n", nn, sizeof(nn));
  printf("Ring version %s: %s partitions, %s replicas\n\n", ver, q, nn);
  printf("%-10s %s\n", "Partition", "Owners (primaries first)");
  mp_reader r;
  uint32_t n = 0;
  if (cli_map_get(all, "partitions", &r) && mp_read_array(&r, &n) == 0) {
    for (uint32_t i = 0; i < n; i++) {
      kv_slice p;
      if (mp_read_raw(&r, &p))
        break;
      char part[CLI_COL_MAX];
      cli_map_str(p, "partition", part, sizeof(part));
      printf("%-10s", part);
      mp_reader o;
      uint32_t no = 0;
      if (cli_map_get(p, "owners", &o) && mp_read_array(&o, &no) == 0) {
        for (uint32_t j = 0; j < no; j++) {
          char id[CLI_COL_MAX];
          cli_cell(&o, id, sizeof(id));
          printf(" %s", id);
        }
      }
      putchar('\n');
    }
  }
  free(raw);
  return CLI_EXIT_OK;
}

/* stats, join, leave, remove, transfers, preflist: a map printed "key: value". */
static int cli_generic(kv_client *c, const cli_args *a) {
  const char *args[3] = {NULL, NULL, NULL};
  if (strcmp(a->cmd, "join") == 0) {
    args[0] = "seed";
    args[1] = a->pos[0];
  } else if (strcmp(a->cmd, "remove") == 0) {
    args[0] = "node";
    args[1] = a->pos[0];
  } else if (strcmp(a->cmd, "preflist") == 0) {
    args[0] = "key";
    args[1] = a->pos[0];
  }
  uint8_t *raw;
  size_t len;
  int rc = cli_admin(c, a, args, &raw, &len);
  if (rc >= 0)
    return rc;
  kv_slice all = {raw, len};
  mp_reader r;
  uint32_t n;
  mp_reader_init(&r, raw, len);
  char msg[CLI_COL_MAX * 2];
  cli_map_str(all, "message", msg, sizeof(msg));
  if (msg[0]) {
    printf("%s\n", msg);
  } else if (mp_peek(&r) == MP_MAP && mp_read_map(&r, &n) == 0) {
    for (uint32_t i = 0; i < n; i++) {
      char k[CLI_COL_MAX], v[CLI_COL_MAX * 4];
      cli_cell(&r, k, sizeof(k));
      cli_cell(&r, v, sizeof(v));
      printf("%s: %s\n", k, v);
    }
  } else {
    kvbuf b;
    kvbuf_init(&b);
    if (kv_json_from_msgpack(&b, raw, len) == 0)
      printf("%s\n", (const char *)b.data);
    kvbuf_free(&b);
  }
  free(raw);
  return CLI_EXIT_OK;
}

int main(int argc, char **argv) {
  cli_args a;
  if (cli_parse(argc, argv, &a))
    return CLI_EXIT_USAGE;
  const cli_cmd *cmd = a.cmd ? cli_find(a.cmd) : NULL;
  if (a.help) {
    if (cmd)
      cli_cmd_usage(stdout, cmd);
    else if (a.cmd)
      return cli_bad(NULL, "unknown command \"%s\"", a.cmd);
    else
      cli_usage(stdout);
    return CLI_EXIT_OK;
  }
  /* Validate options before connecting, so usage errors exit 2 at once. */
  kv_options o;
  uint8_t *ctx;
  size_t ctx_len;
  if (cli_options(&a, cmd, &o) || cli_context(&a, cmd, &ctx, &ctx_len))
    return CLI_EXIT_USAGE;
  free(ctx);
  /* With --region, requests go to a coordinator in that region (get
   * --local stays on --host: it reads that node's replica). */
  bool route = a.region && !(a.given & CLI_F_LOCAL);
  kv_connect_opts co = {.no_route = !route,
                        .connect_timeout_ms = CLI_CONNECT_TIMEOUT_MS,
                        .timeout_ms = o.timeout_ms,
                        .region = a.region};
  char err[512];
  kv_client *c = NULL;
  int rc = kv_connect(a.host, &co, &c, err, sizeof(err));
  if (rc) {
    fprintf(stderr, "kvorum: %s\n", err[0] ? err : kv_strerror(rc));
    return CLI_EXIT_FAIL;
  }
  int status = cmd->fn(c, &a);
  kv_close(c);
  fflush(stdout);
  return status;
}
