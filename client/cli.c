/*
 * cli.c: the kvorum command: get, put and delete keys, and operate a
 * cluster (status, ring, stats, join, leave, remove, transfers, preflist,
 * log-level), and edit auth files (user-add, which talks to no node).
 *
 * The CLI does not route: every request goes to --host, so tests and
 * operators pick the coordinator; except with --region, when reads and
 * writes go to a replica of the key in that region (found through the
 * ring --host gives), and local levels count that region. With --tls the
 * connections are TLS (libkvorum verifies the node against --tls-ca); with
 * --user the HELLO carries the user and the password of KVORUM_PASSWORD
 * or of a prompt on the terminal, never of an option (argv shows in ps).
 * Exit status: 0 success (a get that finds nothing included), 1
 * operational error (the server's message on stderr; refused credentials
 * and permissions say so first), 2 usage error (message and usage on
 * stderr). Contexts are base64.
 * set, counter and map operate data types (kv_update with an operation
 * that crdt.h builds; reads decode the merged state).
 * Depends on: libkvorum (kvorum.h, kvorum_int.h for base64/JSON), mp.h,
 * crdt.h (kvobj), kvauth (auth.h, for user-add).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "auth.h"
#include "crdt.h"
#include "kvorum.h"
#include "kvorum_int.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2
#define CLI_POSITIONAL_MAX 1024 /* set add KEY ELEM... */
#define CLI_TIMEOUT_MAX_MS (24u * 3600u * 1000u)
#define CLI_CONNECT_TIMEOUT_MS 2000
#define CLI_COL_MAX 256 /* bytes of one table cell */
#define CLI_REGION_MAX 64 /* region names, NUL included (RING_NAME_MAX) */
#define CLI_REGIONS_MAX 256 /* regions shown by status (one per member) */
#define CLI_PW_ENV "KVORUM_PASSWORD" /* a password never comes from argv */
#define CLI_STORAGE_TIMEOUT_MS (3600u * 1000u) /* backup, compact */

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
  CLI_F_TTL = 1 << 9,
  CLI_F_ALL = 1 << 16,       /* backup --all */
  CLI_F_PARTITION = 1 << 17, /* repair --partition P */
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
    {"ttl", CLI_F_TTL, true},
    {"all", CLI_F_ALL, false},        {"partition", CLI_F_PARTITION, true},
};
#define CLI_NFLAGS (sizeof(cli_flags) / sizeof(cli_flags[0]))

typedef struct cli_args {
  const char *host;
  const char *region; /* --region: the client's region, or NULL */
  bool tls;           /* --tls, or any --tls-* option */
  const char *tls_ca, *tls_cert, *tls_key, *tls_server_name; /* or NULL */
  const char *user;   /* --user, or NULL */
  bool json;
  bool help;
  bool version; /* --version */
  const char *cmd;
  const char *pos[CLI_POSITIONAL_MAX];
  int npos;
  int given; /* CLI_F_* bits seen */
  const char *val[CLI_NFLAGS];
} cli_args;

typedef int (*cli_fn)(kv_client *c, const cli_args *a);

/* The global options that take a value, and where cli_parse puts it. */
static const struct cli_global {
  const char *name;
  size_t off;       /* of the const char * in cli_args */
  const char *what; /* the value, for "needs a value" */
} cli_globals[] = {
    {"host", offsetof(cli_args, host), "HOST:PORT"},
    {"region", offsetof(cli_args, region), "a region name"},
    {"tls-ca", offsetof(cli_args, tls_ca), "a PEM file"},
    {"tls-cert", offsetof(cli_args, tls_cert), "a PEM file"},
    {"tls-key", offsetof(cli_args, tls_key), "a PEM file"},
    {"tls-server-name", offsetof(cli_args, tls_server_name), "a host name"},
    {"user", offsetof(cli_args, user), "a user name"},
};
#define CLI_NGLOBALS (sizeof(cli_globals) / sizeof(cli_globals[0]))

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
static int cli_user_add(kv_client *c, const cli_args *a);
static int cli_backup(kv_client *c, const cli_args *a);
static int cli_typed(kv_client *c, const cli_args *a);

static const cli_cmd cli_cmds[] = {
    {"put", CLI_F_CONTEXT | CLI_F_W | CLI_F_DW | CLI_F_PW | CLI_F_TIMEOUT |
                CLI_F_NO_SLOPPY | CLI_F_TTL,
     2, "KEY VALUE [--context CTX] [--w W] [--dw DW] [--pw PW] [--timeout MS] "
        "[--no-sloppy] [--ttl SECONDS]",
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
    {"set", CLI_F_CONTEXT | CLI_F_R | CLI_F_W | CLI_F_TIMEOUT, -2,
     "add KEY ELEM... | rem KEY ELEM... [--context CTX] | members KEY",
     "An add-wins set that the nodes merge (docs/data-types.md).\n"
     "add prints how many elements were new, rem how many went. rem without\n"
     "--context removes what the coordinating node holds; with the context\n"
     "of `set members --json` it removes only the adds that read saw, so an\n"
     "add concurrent with it wins. members prints one element a line and\n"
     "the context; --json prints {\"members\": [...], \"context\": \"...\"}.\n"
     "A key of another type or with plain values: WRONGTYPE, exit 1.",
     cli_typed},
    {"counter", CLI_F_R | CLI_F_W | CLI_F_TIMEOUT, -2,
     "incr KEY N | get KEY",
     "A counter that the nodes merge (a PN counter): incr adds N (negative\n"
     "to decrement) and prints the new value; get prints the value (0 for\n"
     "a missing key). --json prints {\"value\": N}.",
     cli_typed},
    {"map", CLI_F_R | CLI_F_W | CLI_F_TIMEOUT, -2,
     "set KEY FIELD VALUE | get KEY [FIELD] | del KEY FIELD | "
     "incr KEY FIELD N",
     "A map of named fields that the nodes merge: set assigns a register\n"
     "field (prints 1 when the field is new), incr adds N to a counter field\n"
     "(prints its value), del removes every field of that name (add-wins:\n"
     "a concurrent update keeps the field; prints the fields removed). get\n"
     "prints FIELD's value(s) (every concurrent register value, one a line),\n"
     "or every field as NAME: VALUE; --json prints the map's JSON\n"
     "({\"type\", \"fields\", \"context\"}).",
     cli_typed},
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
    {"log-level", 0, 1, "LEVEL",
     "Sets the contacted node's log level (error, warn, info or debug)\n"
     "until it restarts, and prints the new level and the one before.\n"
     "--json prints {\"level\", \"previous\"}.",
     cli_generic},
    {"repair", CLI_F_PARTITION | CLI_F_TIMEOUT, 0, "[--partition P]",
     "Starts anti-entropy exchanges now between the contacted node and the\n"
     "other replicas of each partition it is a primary of (or of P only),\n"
     "and prints how many it queued; `kvorum transfers` shows them run\n"
     "(repair_exchanges_left, repair_exchanges, repair_keys_repaired).",
     cli_generic},
    {"backup", CLI_F_ALL | CLI_F_TIMEOUT, 1, "DIR [--all] [--timeout MS]",
     "Makes the contacted node write a consistent copy of its data (a\n"
     "RocksDB checkpoint, hard links where it can) into DIR/NODE_ID on its\n"
     "own machine, and prints its size and sequence number. DIR is an\n"
     "absolute path there; DIR/NODE_ID must not exist, and is a data\n"
     "directory kvorumd can start on (--data). --all backs up every member\n"
     "the contacted node knows, each into DIR/ITS_ID on its machine.\n"
     "Waits up to an hour unless --timeout says otherwise. --json prints\n"
     "{\"node\", \"dir\", \"bytes\", \"sequence\", \"ms\"} (--all: {\"backups\":\n"
     "[...], \"failed\": [{\"node\", \"error\"}]}).",
     cli_backup},
    {"compact", CLI_F_TIMEOUT, 0, "[--timeout MS]",
     "Runs a manual compaction of the contacted node's storage (every\n"
     "table rewritten, deleted and overwritten data dropped) and prints the\n"
     "table bytes before and after. Waits up to an hour unless --timeout\n"
     "says otherwise.",
     cli_generic},
    {"user-add", 0, 3, "FILE USER ROLE",
     "Adds USER with ROLE (read, write or admin) to the auth file FILE\n"
     "(kvorumd --auth-file), or gives an existing USER that role and a new\n"
     "password; every other line of FILE stays as it is. A missing FILE is\n"
     "created with mode 0600. The password is read from the environment\n"
     "variable KVORUM_PASSWORD, else asked twice on the terminal; never\n"
     "from an option. Talks to no node: send the nodes SIGHUP to reread\n"
     "FILE. --json prints {\"user\", \"role\", \"file\", \"action\"}.",
     cli_user_add},
};
#define CLI_NCMDS (sizeof(cli_cmds) / sizeof(cli_cmds[0]))

#define CLI_SYNOPSIS                                                           \
  "usage: kvorum [--host HOST:PORT] [--region NAME] [--tls] [--tls-ca FILE]\n" \
  "              [--tls-cert FILE --tls-key FILE] [--user USER] [--json]\n"

static void cli_usage(FILE *f) {
  fprintf(f,
          CLI_SYNOPSIS
          "              COMMAND [ARGS...]\n"
          "\n"
          "Global options (before or after the command):\n"
          "  --host HOST:PORT  node to talk to (default %s); the CLI does\n"
          "                    not route: this node coordinates\n"
          "  --region NAME     the client's region: reads and writes go to a\n"
          "                    replica of the key in NAME, and local_one and\n"
          "                    local_quorum count the replicas in NAME\n"
          "  --tls             speak TLS; the node's certificate must verify\n"
          "                    against --tls-ca, else the system's trust\n"
          "                    store (its name is not checked: nodes go by IP)\n"
          "  --tls-ca FILE     PEM CA certificates that sign the nodes\n"
          "  --tls-cert FILE   PEM client certificate, for nodes that ask\n"
          "  --tls-key FILE    its PEM key (default: in --tls-cert)\n"
          "  --tls-server-name NAME\n"
          "                    check that the node's certificate names NAME\n"
          "                    (and send it as SNI); any --tls-* option\n"
          "                    implies --tls\n"
          "  --user USER       log in as USER; the password is read from the\n"
          "                    environment variable KVORUM_PASSWORD, else\n"
          "                    asked on the terminal (never an option)\n"
          "  --json            print machine-readable JSON\n"
          "  --version         print kvorum's version and exit\n"
          "  --help            this text; COMMAND --help for a command\n"
          "\n"
          "Commands:\n",
          KV_DEFAULT_HOST);
  for (size_t i = 0; i < CLI_NCMDS; i++)
    fprintf(f, "  %-10s %s\n", cli_cmds[i].name, cli_cmds[i].args);
  fprintf(f, "\nData types (set, counter, map): docs/data-types.md.\n");
  fprintf(f,
          "\n"
          "R, W, DW, PR and PW take a number or one, quorum, all, local_one,\n"
          "local_quorum, each_quorum. MS is milliseconds. Contexts are "
          "base64.\n"
          "Exit status: 0 ok (also a get that finds nothing), 1 operational\n"
          "error (\"authentication failed: ...\" and \"permission denied: ...\"\n"
          "for refused credentials and requests), 2 usage error.\n");
}

static void cli_cmd_usage(FILE *f, const cli_cmd *cmd) {
  fprintf(f, CLI_SYNOPSIS "              %s %s\n\n%s\n", cmd->name, cmd->args,
          cmd->help);
  if (cmd->flags & (CLI_F_R | CLI_F_W | CLI_F_DW | CLI_F_PR | CLI_F_PW))
    fprintf(f, "\nLevels: a number or one|quorum|all|local_one|local_quorum|"
               "each_quorum;\n0 or absent means the cluster default.\n");
  if (cmd->flags & CLI_F_TIMEOUT)
    fprintf(f, "--timeout MS: fail if no answer within MS milliseconds.\n");
  if (cmd->flags & CLI_F_NO_SLOPPY)
    fprintf(f, "--no-sloppy: strict quorum; only primaries count.\n");
  if (cmd->flags & CLI_F_TTL)
    fprintf(f, "--ttl SECONDS: the value expires SECONDS after the write "
               "and then\nreads as not found (docs/data-types.md).\n");
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
    if (nl == 7 && strncmp(name, "version", 7) == 0 && !eq) {
      a->version = true;
      continue;
    }
    if (nl == 3 && strncmp(name, "tls", 3) == 0 && !eq) {
      a->tls = true;
      continue;
    }
    if (nl == 8 && strncmp(name, "password", 8) == 0)
      return cli_bad(NULL, "--password is not an option: a password in the "
                           "arguments shows in ps. Set %s, or let kvorum ask "
                           "on the terminal",
                     CLI_PW_ENV);
    size_t g;
    for (g = 0; g < CLI_NGLOBALS; g++)
      if (strlen(cli_globals[g].name) == nl &&
          strncmp(cli_globals[g].name, name, nl) == 0)
        break;
    if (g < CLI_NGLOBALS) {
      const char *v = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
      if (!v)
        return cli_bad(NULL, "--%s needs a value (%s)", cli_globals[g].name,
                       cli_globals[g].what);
      memcpy((char *)a + cli_globals[g].off, &v, sizeof(v));
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
  if (a->region && (!a->region[0] || strlen(a->region) >= CLI_REGION_MAX))
    return cli_bad(NULL, "--region must be 1 to %d characters",
                   CLI_REGION_MAX - 1);
  if (a->user && (!a->user[0] || strlen(a->user) >= WIRE_NAME_MAX))
    return cli_bad(NULL, "--user must be 1 to %d bytes", WIRE_NAME_MAX - 1);
  if (a->tls_key && !a->tls_cert)
    return cli_bad(NULL, "--tls-key needs --tls-cert");
  a->tls = a->tls || a->tls_ca || a->tls_cert || a->tls_key ||
           a->tls_server_name;
  const cli_cmd *cmd = a->cmd ? cli_find(a->cmd) : NULL;
  if (a->help || a->version)
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
  if (cmd->npos < 0 && (a->npos < -cmd->npos || a->npos > CLI_POSITIONAL_MAX))
    return cli_bad(cmd, "%s takes %d to %d arguments (%s), got %d", cmd->name,
                   -cmd->npos, CLI_POSITIONAL_MAX, cmd->args, a->npos);
  if (cmd->npos >= 0 && a->npos != cmd->npos)
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
  const char *ttl = cli_val(a, CLI_F_TTL);
  if (ttl) {
    char *end;
    errno = 0;
    unsigned long long s = strtoull(ttl, &end, 10);
    if (errno || end == ttl || *end || ttl[0] == '-' || s == 0 ||
        s > 100ull * 365 * 86400)
      return cli_bad(cmd, "bad value \"%s\" for --ttl: expected seconds "
                          "(1 or more)",
                     ttl);
    o->ttl_ms = s * 1000u;
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

/* Prints the failure rc with its message m and returns CLI_EXIT_FAIL.
 * Refused credentials and permissions say so first ("authentication
 * failed: ...", "permission denied: ..."), unless m already does. */
static int cli_report(int rc, const char *m) {
  const char *what = kv_strerror(rc);
  if (!m || !*m)
    m = what;
  if ((rc == KV_EAUTH || rc == KV_EPERM) &&
      strncmp(m, what, strlen(what)) != 0)
    fprintf(stderr, "kvorum: %s: %s\n", what, m);
  else
    fprintf(stderr, "kvorum: %s\n", m);
  return CLI_EXIT_FAIL;
}

static int cli_fail(kv_client *c, int rc) { return cli_report(rc, kv_errmsg(c)); }

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

/* ---- data types: set, counter, map (docs/data-types.md) ---- */

/* A subcommand of set, counter or map: the positionals it takes (the
 * subcommand's name included) and the flags it allows. */
typedef struct cli_sub {
  const char *cmd, *sub;
  int min, max;
  int flags;
} cli_sub;

static const cli_sub cli_subs[] = {
    {"set", "add", 3, CLI_POSITIONAL_MAX, CLI_F_W | CLI_F_TIMEOUT},
    {"set", "rem", 3, CLI_POSITIONAL_MAX,
     CLI_F_CONTEXT | CLI_F_W | CLI_F_TIMEOUT},
    {"set", "members", 2, 2, CLI_F_R | CLI_F_TIMEOUT},
    {"counter", "incr", 3, 3, CLI_F_W | CLI_F_TIMEOUT},
    {"counter", "get", 2, 2, CLI_F_R | CLI_F_TIMEOUT},
    {"map", "set", 4, 4, CLI_F_W | CLI_F_TIMEOUT},
    {"map", "get", 2, 3, CLI_F_R | CLI_F_TIMEOUT},
    {"map", "del", 3, 3, CLI_F_W | CLI_F_TIMEOUT},
    {"map", "incr", 4, 4, CLI_F_W | CLI_F_TIMEOUT},
};

/* Checks a typed command's subcommand, arguments and flags. Returns the
 * subcommand, or NULL with a usage error printed. */
static const cli_sub *cli_typed_check(const cli_args *a, const cli_cmd *cmd) {
  const cli_sub *s = NULL;
  for (size_t i = 0; i < sizeof(cli_subs) / sizeof(cli_subs[0]); i++)
    if (strcmp(cli_subs[i].cmd, cmd->name) == 0 &&
        strcmp(cli_subs[i].sub, a->pos[0]) == 0)
      s = &cli_subs[i];
  if (!s) {
    cli_bad(cmd, "unknown %s command \"%s\"", cmd->name, a->pos[0]);
    return NULL;
  }
  if (a->npos < s->min || a->npos > s->max) {
    cli_bad(cmd, "%s %s takes %d%s argument%s after %s, got %d", cmd->name,
            s->sub, s->min - 1, s->max > s->min ? " or more" : "",
            s->min == 2 ? "" : "s", s->sub, a->npos - 1);
    return NULL;
  }
  for (size_t f = 0; f < CLI_NFLAGS; f++)
    if ((a->given & cli_flags[f].bit) && !(s->flags & cli_flags[f].bit)) {
      cli_bad(cmd, "%s %s does not take --%s", cmd->name, s->sub,
              cli_flags[f].name);
      return NULL;
    }
  return s;
}

/* Parses a signed 64-bit N. Returns 0 or CLI_EXIT_USAGE. */
static int cli_int64(const cli_cmd *cmd, const char *v, int64_t *out) {
  char *end;
  errno = 0;
  long long n = strtoll(v, &end, 10);
  if (errno || end == v || *end)
    return cli_bad(cmd, "bad number \"%s\": expected an integer", v);
  *out = n;
  return 0;
}

/* Reads key's data type into *st (NULL: no such key). A key with plain
 * values, or a type other than want (CRDT_NONE: any map), is WRONGTYPE.
 * Returns 0 or the exit status, the error printed. */
static int cli_typed_read(kv_client *c, const cli_args *a,
                          const kv_options *o, crdt_type want, crdt **st) {
  *st = NULL;
  const char *key = a->pos[1];
  kv_result *res = NULL;
  int rc = kv_get(c, key, strlen(key), o, &res);
  if (rc)
    return cli_fail(c, rc);
  const kv_sibling *typed = NULL, *plain = NULL;
  for (size_t i = 0; i < res->nsiblings; i++) {
    if (res->siblings[i].typed)
      typed = &res->siblings[i];
    else if (!res->siblings[i].deleted)
      plain = &res->siblings[i];
  }
  if (typed)
    rc = crdt_decode(typed->value, typed->len, st);
  kv_result_free(res);
  if (rc) {
    fprintf(stderr, "kvorum: %s holds a state that cannot be read: %s\n",
            key, kv_strerror(rc));
    return CLI_EXIT_FAIL;
  }
  crdt_type t = *st ? crdt_type_of(*st) : CRDT_NONE;
  bool fits = !*st || (want == CRDT_NONE
                           ? t == CRDT_MAP_MV || t == CRDT_MAP_LWW
                           : t == want);
  if (plain || !fits) {
    fprintf(stderr, "kvorum: WRONGTYPE %s holds %s, not a %s\n", key,
            plain ? "plain values" : crdt_type_name(t),
            want == CRDT_NONE ? "map" : crdt_type_name(want));
    crdt_free(*st);
    *st = NULL;
    return CLI_EXIT_FAIL;
  }
  return 0;
}

/* Appends byte string v: JSON string when UTF-8, else {"base64": ...}. */
static void cli_json_bytes(kvbuf *b, kv_slice v) {
  if (kv_utf8_valid(v.ptr, v.len)) {
    kv_json_str(b, v.ptr, v.len);
    return;
  }
  kvbuf_append(b, "{\"base64\": \"", 12);
  kv_b64_encode(b, v.ptr, v.len);
  kvbuf_append(b, "\"}", 2);
}

/* Appends v as one line of text (base64:... when not UTF-8). */
static void cli_text_bytes(kvbuf *b, kv_slice v) {
  if (kv_utf8_valid(v.ptr, v.len)) {
    kvbuf_append(b, v.ptr, v.len);
  } else {
    kvbuf_append(b, "base64:", 7);
    kv_b64_encode(b, v.ptr, v.len);
  }
  kvbuf_append(b, "\n", 1);
}

static void cli_print_int(const cli_args *a, const char *name, int64_t v) {
  if (a->json)
    printf("{\"%s\": %" PRId64 "}\n", name, v);
  else
    printf("%" PRId64 "\n", v);
}

/* set members KEY: the members and the context to remove with. */
static int cli_set_members(kv_client *c, const cli_args *a,
                           const kv_options *o) {
  crdt *st;
  int rc = cli_typed_read(c, a, o, CRDT_SET, &st);
  if (rc)
    return rc;
  kvbuf b, ctx;
  kvbuf_init(&b);
  kvbuf_init(&ctx);
  size_t n = st ? crdt_set_count(st) : 0;
  if (st)
    crdt_context(st, &ctx);
  if (a->json)
    kvbuf_append(&b, "{\"members\": [", 13);
  for (size_t i = 0; i < n; i++) {
    kv_slice m;
    if (crdt_set_member(st, i, &m))
      break;
    if (a->json) {
      kvbuf_append(&b, ", ", i ? 2 : 0);
      cli_json_bytes(&b, m);
    } else {
      cli_text_bytes(&b, m);
    }
  }
  kvbuf_append(&b, a->json ? "], \"context\": \"" : "context: ",
               a->json ? 15 : 9);
  kv_b64_encode(&b, ctx.data, ctx.len);
  kvbuf_append(&b, a->json ? "\"}\n" : "\n", a->json ? 3 : 1);
  cli_write(&b);
  kvbuf_free(&b);
  kvbuf_free(&ctx);
  crdt_free(st);
  return CLI_EXIT_OK;
}

/* map get KEY [FIELD]: one field's value(s), or every field. */
static int cli_map_get_cmd(kv_client *c, const cli_args *a,
                           const kv_options *o) {
  crdt *st;
  int rc = cli_typed_read(c, a, o, CRDT_NONE, &st);
  if (rc)
    return rc;
  kvbuf b;
  kvbuf_init(&b);
  if (a->json) {
    if (st)
      crdt_render_json(st, &b);
    else
      kvbuf_append(&b, "{\"type\":\"map_mv\",\"fields\":[],\"context\":\"\"}",
                   41);
    kvbuf_append(&b, "\n", 1); /* over the render's NUL */
  }
  size_t n = st && !a->json ? crdt_map_count(st) : 0;
  for (size_t i = 0; i < n; i++) {
    crdt_field f;
    if (crdt_map_field(st, i, &f))
      break;
    if (a->npos == 3 && (f.name.len != strlen(a->pos[2]) ||
                         memcmp(f.name.ptr, a->pos[2], f.name.len) != 0))
      continue;
    char prefix[40];
    if (a->npos == 2) {
      kvbuf_append(&b, f.name.ptr, f.name.len);
      kvbuf_append(&b, ": ", 2);
    }
    if (f.kind == CRDT_KIND_COUNTER) {
      snprintf(prefix, sizeof(prefix), "%" PRId64 "\n",
               crdt_map_counter(st, i));
      kvbuf_append(&b, prefix, strlen(prefix));
    } else if (f.kind == CRDT_KIND_SET) {
      for (size_t j = 0; j < crdt_map_set_count(st, i); j++) {
        kv_slice m;
        if (crdt_map_set_member(st, i, j, &m) == 0)
          cli_text_bytes(&b, m);
      }
    } else {
      for (size_t j = 0; j < crdt_map_reg_count(st, i); j++) {
        kv_slice v;
        if (crdt_map_reg_value(st, i, j, &v, NULL) == 0)
          cli_text_bytes(&b, v);
      }
    }
  }
  cli_write(&b);
  kvbuf_free(&b);
  crdt_free(st);
  return CLI_EXIT_OK;
}

/* set, counter, map: an operation through kv_update, or a read. */
static int cli_typed(kv_client *c, const cli_args *a) {
  const cli_cmd *cmd = cli_find(a->cmd);
  const cli_sub *sub = cli_typed_check(a, cmd);
  kv_options o;
  uint8_t *ctx = NULL;
  size_t ctx_len = 0;
  if (!sub || cli_options(a, cmd, &o) || cli_context(a, cmd, &ctx, &ctx_len))
    return CLI_EXIT_USAGE;
  if (ctx && crdt_context_check(ctx, ctx_len)) {
    free(ctx);
    return cli_bad(cmd, "--context is not a data type's context (the "
                        "\"context\" of set members --json)");
  }
  if (!c) { /* main's check before connecting */
    free(ctx);
    return 0;
  }
  const char *key = a->pos[1];
  bool is_set = strcmp(cmd->name, "set") == 0;
  bool is_map = strcmp(cmd->name, "map") == 0;
  const char *s = sub->sub;
  if (is_set && strcmp(s, "members") == 0)
    return cli_set_members(c, a, &o);
  if (is_map && strcmp(s, "get") == 0)
    return cli_map_get_cmd(c, a, &o);
  if (!is_set && !is_map && strcmp(s, "get") == 0) {
    crdt *st;
    int rc = cli_typed_read(c, a, &o, CRDT_COUNTER, &st);
    if (rc)
      return rc;
    cli_print_int(a, "value", st ? crdt_counter_value(st) : 0);
    crdt_free(st);
    return CLI_EXIT_OK;
  }
  int64_t n = 0;
  if (strcmp(s, "incr") == 0 && cli_int64(cmd, a->pos[a->npos - 1], &n)) {
    free(ctx);
    return CLI_EXIT_USAGE;
  }
  kvbuf op;
  kvbuf_init(&op);
  int rc;
  if (is_set) {
    size_t ne = (size_t)a->npos - 2;
    kv_slice *el = calloc(ne, sizeof(*el));
    for (size_t i = 0; el && i < ne; i++)
      el[i] = (kv_slice){(const uint8_t *)a->pos[2 + i], strlen(a->pos[2 + i])};
    rc = !el ? KV_ENOMEM
         : strcmp(s, "add") == 0 ? crdt_op_set_add(&op, el, ne)
                                 : crdt_op_set_rem(&op, el, ne, ctx, ctx_len);
    free(el);
  } else if (is_map) {
    crdt_mapb mb;
    crdt_mapb_init(&mb, CRDT_NONE);
    kv_slice name = {(const uint8_t *)a->pos[2], strlen(a->pos[2])};
    if (strcmp(s, "set") == 0)
      rc = crdt_mapb_assign(
          &mb, name, (kv_slice){(const uint8_t *)a->pos[3], strlen(a->pos[3])},
          0);
    else if (strcmp(s, "del") == 0)
      rc = crdt_mapb_remove(&mb, name, CRDT_KIND_ANY);
    else
      rc = crdt_mapb_incr(&mb, name, n);
    rc = rc ? rc : crdt_mapb_finish(&mb, ctx, ctx_len, &op);
    if (rc)
      crdt_mapb_free(&mb);
  } else {
    rc = crdt_op_counter_incr(&op, n);
  }
  free(ctx);
  if (rc) {
    kvbuf_free(&op);
    return cli_report(rc, "cannot build the operation");
  }
  kv_result *res = NULL;
  rc = kv_update(c, key, strlen(key), op.data, op.len, &o, &res);
  kvbuf_free(&op);
  if (rc)
    return cli_fail(c, rc);
  if (strcmp(s, "incr") == 0)
    cli_print_int(a, "value", res->value);
  else if (strcmp(s, "add") == 0 || strcmp(s, "set") == 0)
    cli_print_int(a, "added", res->added);
  else
    cli_print_int(a, "removed", res->removed);
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
    printf("%-8s %-12s %-22s %-22s %-8s %-10s %s\n", "State", "ID",
           "Listen", "Peer", "Zone", "Partitions", "Version");
    if (!cli_map_get(all, "members", &r) || mp_read_array(&r, &n) != 0)
      break;
    for (uint32_t i = 0; i < n; i++) {
      kv_slice m;
      if (mp_read_raw(&r, &m))
        break;
      static const char *cols[] = {"state",  "id",   "listen",     "peer",
                                   "region", "zone", "partitions", "version"};
      char v[8][CLI_COL_MAX];
      for (size_t j = 0; j < 8; j++)
        cli_map_str(m, cols[j], v[j], sizeof(v[j]));
      if (strcmp(v[4], regions[k]) != 0)
        continue;
      /* A node older than the version field shows "?". */
      printf("%-8s %-12s %-22s %-22s %-8s %-10s %s\n", v[0], v[1], v[2],
             v[3], v[5], v[6], v[7][0] ? v[7] : "?");
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

/* stats, join, leave, remove, transfers, preflist, log-level: a map printed
 * "key: value". */
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
  } else if (strcmp(a->cmd, "log-level") == 0) {
    args[0] = "level";
    args[1] = a->pos[0];
  } else if (strcmp(a->cmd, "repair") == 0 && (a->given & CLI_F_PARTITION)) {
    args[0] = "partition";
    args[1] = cli_val(a, CLI_F_PARTITION);
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

/* ---- backup ---- */

/* How main connected: backup --all dials every member the same way. */
static const kv_connect_opts *cli_dial;

/* Runs backup DIR on c. Returns 0 with the reply (*raw, malloc'd), or the
 * error with its message in err. */
static int cli_backup_on(kv_client *c, const char *dir, uint8_t **raw,
                         size_t *len, char *err, size_t errlen) {
  const char *args[3] = {"dir", dir, NULL};
  int rc = kv__admin_msgpack(c, "backup", args, raw, len);
  if (rc)
    snprintf(err, errlen, "%s", kv_errmsg(c));
  return rc;
}

/* One line of a backup's reply: "n1: 123 bytes at sequence 45 in D". */
static void cli_backup_print(kv_slice r) {
  char node[CLI_COL_MAX], dir[CLI_COL_MAX * 4], bytes[CLI_COL_MAX],
      seq[CLI_COL_MAX], ms[CLI_COL_MAX];
  cli_map_str(r, "node", node, sizeof(node));
  cli_map_str(r, "dir", dir, sizeof(dir));
  cli_map_str(r, "bytes", bytes, sizeof(bytes));
  cli_map_str(r, "sequence", seq, sizeof(seq));
  cli_map_str(r, "ms", ms, sizeof(ms));
  printf("%s: %s bytes at sequence %s in %s (%s ms)\n", node, bytes, seq, dir,
         ms);
}

/* backup DIR [--all]: one node, or every member the contacted node lists
 * (each on its client address, with the same TLS and credentials). */
static int cli_backup(kv_client *c, const cli_args *a) {
  const char *dir = a->pos[0];
  uint8_t *raw = NULL;
  size_t len = 0;
  char err[512];
  if (!(a->given & CLI_F_ALL)) {
    int rc = cli_backup_on(c, dir, &raw, &len, err, sizeof(err));
    if (rc)
      return cli_report(rc, err);
    kvbuf b;
    kvbuf_init(&b);
    if (a->json) {
      kv_json_from_msgpack(&b, raw, len);
      kvbuf_append(&b, "\n", 1);
      cli_write(&b);
    } else {
      cli_backup_print((kv_slice){raw, len});
    }
    kvbuf_free(&b);
    free(raw);
    return CLI_EXIT_OK;
  }
  int rc = kv__admin_msgpack(c, "status", NULL, &raw, &len);
  if (rc)
    return cli_fail(c, rc);
  kvbuf ok, bad;
  kvbuf_init(&ok);
  kvbuf_init(&bad);
  uint32_t nok = 0, nbad = 0, n = 0;
  mp_reader r;
  kv_slice st = {raw, len};
  if (cli_map_get(st, "members", &r) && mp_read_array(&r, &n) == 0) {
    for (uint32_t i = 0; i < n; i++) {
      kv_slice m;
      if (mp_read_raw(&r, &m))
        break;
      char id[CLI_COL_MAX], addr[CLI_COL_MAX];
      cli_map_str(m, "id", id, sizeof(id));
      cli_map_str(m, "listen", addr, sizeof(addr));
      kv_client *mc = NULL;
      uint8_t *one = NULL;
      size_t olen = 0;
      rc = kv_connect(addr, cli_dial, &mc, err, sizeof(err));
      if (rc == 0)
        rc = cli_backup_on(mc, dir, &one, &olen, err, sizeof(err));
      kv_close(mc);
      if (rc) {
        fprintf(stderr, "kvorum: backup of %s failed: %s\n", id, err);
        kvbuf_append(&bad, ", ", nbad++ ? 2 : 0);
        kvbuf_append(&bad, "{\"node\": ", 10);
        kv_json_str(&bad, id, strlen(id));
        kvbuf_append(&bad, ", \"error\": ", 11);
        kv_json_str(&bad, err, strlen(err));
        kvbuf_append(&bad, "}", 1);
        continue;
      }
      if (a->json) {
        kvbuf_append(&ok, ", ", nok ? 2 : 0);
        kv_json_from_msgpack(&ok, one, olen);
      } else {
        cli_backup_print((kv_slice){one, olen});
      }
      nok++;
      free(one);
    }
  }
  free(raw);
  if (a->json) {
    kvbuf out;
    kvbuf_init(&out);
    kvbuf_append(&out, "{\"backups\": [", 13);
    kvbuf_append(&out, ok.data, ok.len);
    kvbuf_append(&out, "], \"failed\": [", 14);
    kvbuf_append(&out, bad.data, bad.len);
    kvbuf_append(&out, "]}\n", 3);
    cli_write(&out);
    kvbuf_free(&out);
  }
  kvbuf_free(&ok);
  kvbuf_free(&bad);
  return nbad ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* ---- user-add: edits an auth file, talks to no node ---- */

/* The terminal whose echo is off, and its settings before, so a signal
 * that ends the process mid-prompt gives the terminal its echo back. */
static int cli_tty_fd = -1;
static struct termios cli_tty_saved;

static void cli_tty_on_signal(int sig) {
  if (cli_tty_fd >= 0)
    tcsetattr(cli_tty_fd, TCSAFLUSH, &cli_tty_saved);
  signal(sig, SIG_DFL);
  raise(sig); /* delivered, with the default action, once this returns */
}

/* Asks prompt on the terminal fd and reads one line with echo off into
 * buf (cap bytes, NUL-terminated, without the newline). Returns the
 * line's length, or -1 with a message printed (not a terminal, end of
 * input, a line of cap bytes or more). */
static long cli_tty_read(int fd, const char *prompt, char *buf, size_t cap) {
  static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
  struct sigaction sa, old[sizeof(sigs) / sizeof(sigs[0])];
  struct termios t;
  if (tcgetattr(fd, &cli_tty_saved) != 0) {
    fprintf(stderr, "kvorum: no password: set %s or run on a terminal\n",
            CLI_PW_ENV);
    return -1;
  }
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = cli_tty_on_signal;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
    sigaction(sigs[i], &sa, &old[i]);
  t = cli_tty_saved;
  t.c_lflag &= ~(tcflag_t)ECHO;
  t.c_lflag |= ICANON;
  cli_tty_fd = fd;
  tcsetattr(fd, TCSAFLUSH, &t);
  if (write(fd, prompt, strlen(prompt)) < 0) {
    /* The read below still works; the prompt is only lost. */
  }
  size_t len = 0;
  bool too_long = false, eol = false;
  while (!eol) {
    char ch;
    ssize_t n = read(fd, &ch, 1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    if (ch == '\n')
      eol = true;
    else if (len + 1 < cap)
      buf[len++] = ch;
    else
      too_long = true;
  }
  buf[len] = '\0';
  tcsetattr(fd, TCSAFLUSH, &cli_tty_saved);
  cli_tty_fd = -1;
  for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
    sigaction(sigs[i], &old[i], NULL);
  if (write(fd, "\n", 1) < 0) {
    /* Cosmetic only. */
  }
  if (!eol || too_long) {
    explicit_bzero(buf, cap);
    if (too_long)
      fprintf(stderr, "kvorum: the password is longer than %d bytes\n",
              AUTH_PW_MAX);
    else
      fprintf(stderr, "kvorum: no password given\n");
    return -1;
  }
  return (long)len;
}

/* Gets user's password into pw (cap bytes): from KVORUM_PASSWORD, else
 * asked on /dev/tty, twice when confirm (a new password). Returns its
 * length, or -1 with a message printed. */
static long cli_password(const char *user, bool confirm, char *pw,
                         size_t cap) {
  const char *env = getenv(CLI_PW_ENV);
  if (env) {
    size_t n = strlen(env);
    if (n == 0 || n > AUTH_PW_MAX || n >= cap) {
      fprintf(stderr, "kvorum: %s is %s\n", CLI_PW_ENV,
              n ? "too long" : "empty");
      return -1;
    }
    memcpy(pw, env, n + 1);
    return (long)n;
  }
  int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    fprintf(stderr, "kvorum: no password: set %s or run on a terminal\n",
            CLI_PW_ENV);
    return -1;
  }
  char prompt[AUTH_USER_MAX + 32];
  snprintf(prompt, sizeof(prompt), "Password for %s: ", user);
  char again[AUTH_PW_MAX + 2];
  long n = cli_tty_read(fd, prompt, pw, cap);
  long m = n > 0 && confirm
               ? cli_tty_read(fd, "Again: ", again, sizeof(again))
               : n;
  close(fd);
  bool same = !confirm || (m == n && memcmp(pw, again, (size_t)n) == 0);
  if (n == 0)
    fprintf(stderr, "kvorum: the password is empty\n");
  else if (m >= 0 && !same)
    fprintf(stderr, "kvorum: the passwords do not match\n");
  bool ok = n > 0 && same;
  explicit_bzero(again, sizeof(again));
  if (!ok) {
    explicit_bzero(pw, cap);
    return -1;
  }
  return n;
}

static int cli_user_add(kv_client *c, const cli_args *a) {
  const cli_cmd *cmd = cli_find("user-add");
  const char *file = a->pos[0], *user = a->pos[1];
  auth_role role;
  if (!auth_user_valid(user, strlen(user)))
    return cli_bad(cmd, "bad user name \"%s\": 1 to %d bytes of A-Z a-z 0-9 "
                        ". _ @ -",
                   user, AUTH_USER_MAX);
  if (auth_role_parse(a->pos[2], &role))
    return cli_bad(cmd, "bad role \"%s\": expected read, write or admin",
                   a->pos[2]);
  char pw[AUTH_PW_MAX + 2];
  long n = cli_password(user, true, pw, sizeof(pw));
  if (n < 0)
    return CLI_EXIT_FAIL;
  char err[512];
  bool replaced = false;
  int rc = auth_file_set_user(file, user, role, (const uint8_t *)pw,
                              (size_t)n, &replaced, err, sizeof(err));
  explicit_bzero(pw, sizeof(pw));
  if (rc) {
    fprintf(stderr, "kvorum: %s\n", err[0] ? err : kv_strerror(rc));
    return CLI_EXIT_FAIL;
  }
  const char *action = replaced ? "replaced" : "added";
  if (a->json) {
    kvbuf b;
    kvbuf_init(&b);
    kvbuf_append(&b, "{\"user\": ", 9);
    kv_json_str(&b, user, strlen(user));
    kvbuf_append(&b, ", \"role\": ", 10);
    kv_json_str(&b, auth_role_name(role), strlen(auth_role_name(role)));
    kvbuf_append(&b, ", \"file\": ", 10);
    kv_json_str(&b, file, strlen(file));
    kvbuf_append(&b, ", \"action\": ", 12);
    kv_json_str(&b, action, strlen(action));
    kvbuf_append(&b, "}\n", 2);
    cli_write(&b);
    kvbuf_free(&b);
  } else {
    printf("user %s (%s) %s %s %s\n", user, auth_role_name(role), action,
           replaced ? "in" : "to", file);
  }
  return CLI_EXIT_OK;
}

int main(int argc, char **argv) {
  cli_args a;
  if (cli_parse(argc, argv, &a))
    return CLI_EXIT_USAGE;
  const cli_cmd *cmd = a.cmd ? cli_find(a.cmd) : NULL;
  if (a.version) {
    printf("kvorum %s\n", KVORUM_VERSION);
    return CLI_EXIT_OK;
  }
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
  if (cmd->fn == cli_typed && cli_typed(NULL, &a))
    return CLI_EXIT_USAGE;
  if (cmd->fn == cli_user_add) /* edits a file; talks to no node */
    return cli_user_add(NULL, &a);
  /* With --region, requests go to a coordinator in that region (get
   * --local stays on --host: it reads that node's replica). */
  bool route = a.region && !(a.given & CLI_F_LOCAL);
  kv_connect_opts co = {.no_route = !route,
                        .connect_timeout_ms = CLI_CONNECT_TIMEOUT_MS,
                        .timeout_ms = o.timeout_ms,
                        .region = a.region,
                        .tls = a.tls,
                        .tls_ca = a.tls_ca,
                        .tls_cert = a.tls_cert,
                        .tls_key = a.tls_key,
                        .tls_server_name = a.tls_server_name,
                        .user = a.user};
  char pw[AUTH_PW_MAX + 2];
  if (a.user) {
    long n = cli_password(a.user, false, pw, sizeof(pw));
    if (n < 0)
      return CLI_EXIT_FAIL;
    co.password = pw;
    co.password_len = (size_t)n;
  }
  char err[512];
  kv_client *c = NULL;
  /* Backup and compaction take as long as the storage needs. */
  if (!o.timeout_ms && (cmd->fn == cli_backup || strcmp(cmd->name, "compact") == 0))
    co.timeout_ms = CLI_STORAGE_TIMEOUT_MS;
  int rc = kv_connect(a.host, &co, &c, err, sizeof(err));
  if (rc) {
    explicit_bzero(pw, sizeof(pw));
    return cli_report(rc, err);
  }
  cli_dial = &co; /* backup --all dials every member the same way */
  int status = cmd->fn(c, &a);
  explicit_bzero(pw, sizeof(pw)); /* libkvorum keeps its own copy */
  kv_close(c);
  fflush(stdout);
  return status;
}
