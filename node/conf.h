/*
 * conf.h: kvorumd's settings, from the command line and from a config
 * file (node/conf.c). Pure: no I/O but reading the config file; unit
 * tested (tests/unit/test_conf.c) and fuzzed (tests/fuzz/fuzz_conf.c).
 *
 * One list, CONF_OPTS below, names every setting once: its long flag (the
 * config file's key is the same name without the dashes), what its value
 * is, its default as text, its bounds and its help. main.c's getopt table,
 * `kvorumd --help`, the config file and `kvorumd --print-config` all come
 * from it, so a default lives in one place.
 *
 * Values from both sources go through conf_set, which checks them and
 * keeps a copy of the text; an empty value means the default (as if the
 * key were not given). The caller applies the file first and the flags
 * after it, so a flag wins over the file; the last of a repeated flag
 * wins; a key given twice in one file is an error. conf_check then checks
 * what spans several keys (TLS needs its three files, --n and --replicas
 * exclude each other, R and W fit N).
 *
 * The config file (libinih, Debian's libinih-dev): "name = value" lines,
 * at the top or under a [kvorumd] section; lines starting with '#' or ';'
 * and blank ones are comments, and so is what follows " #" or " ;" on a
 * line. Every error names the file, the line and the key:
 * "FILE:LINE: unknown key 'listne'".
 *
 * Depends on: libinih, and the limits of core.h, gossip.h, ring.h and
 * wire.h (headers only).
 */
#ifndef KV_NODE_CONF_H
#define KV_NODE_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core.h"

#define CONF_LINE_MAX 4096 /* bytes of one line of a config file */
/* Bytes of one value: --print-config's "name = value" fits a line. */
#define CONF_VALUE_LEN_MAX (CONF_LINE_MAX - 64)
#define CONF_SEEDS_MAX GOSSIP_SEEDS_MAX
#define CONF_ERR_MAX 512 /* a message buffer that fits every error */

/* What a setting's value is. */
typedef enum conf_kind {
  CONF_K_TEXT,     /* any text: a path */
  CONF_K_NAME,     /* 1..RING_NAME_MAX-1 of A-Z a-z 0-9 - _ . */
  CONF_K_ADDR,     /* HOST:PORT, shorter than GOSSIP_ADDR_MAX */
  CONF_K_SEEDS,    /* HOST:PORT,HOST:PORT,... (at most CONF_SEEDS_MAX) */
  CONF_K_UINT,     /* a whole number in [lo, hi] */
  CONF_K_POW2,     /* a power of two in [lo, hi] */
  CONF_K_REAL,     /* a number in (0, hi] */
  CONF_K_WORD,     /* one of the words of `words` ("a|b|c") */
  CONF_K_REPLICAS, /* REGION=N,REGION=N,... */
} conf_kind;

/* The help groups, in the order --help shows them. */
typedef enum conf_group {
  CONF_G_IDENTITY,
  CONF_G_CLUSTER,
  CONF_G_REQUESTS,
  CONF_G_LIMITS,
  CONF_G_REPAIR,
  CONF_G_SERVE,
  CONF_G_SECURITY,
  CONF_G_OPERATION,
  CONF_GROUPS
} conf_group;

/*
 * X(ENUM, "name", "ARG", default, group, kind, lo, hi, words, help).
 * default is the value as text, or NULL for none (the feature is off,
 * or the default follows from other settings, as the help says); lo and
 * hi bound CONF_K_UINT and CONF_K_POW2 (hi also CONF_K_REAL); words lists
 * CONF_K_WORD's values. Help lines are separated by \n.
 */
#define CONF_OPTS(X)                                                           \
  X(ID, "id", "NAME", "n1", CONF_G_IDENTITY, CONF_K_NAME, 0, 0, NULL,          \
    "node id, unique in the cluster")                                          \
  X(LISTEN, "listen", "HOST:PORT", "127.0.0.1:7101", CONF_G_IDENTITY,          \
    CONF_K_ADDR, 0, 0, NULL, "address for clients")                            \
  X(PEER, "peer", "HOST:PORT", "127.0.0.1:7201", CONF_G_IDENTITY, CONF_K_ADDR, \
    0, 0, NULL, "address for other nodes")                                     \
  X(DATA, "data", "DIR", NULL, CONF_G_IDENTITY, CONF_K_TEXT, 0, 0, NULL,       \
    "data directory (default ./var/ID); one kvorumd\nper directory")           \
  X(SEEDS, "seeds", "H:P,H:P,...", NULL, CONF_G_IDENTITY, CONF_K_SEEDS, 0, 0,  \
    NULL,                                                                      \
    "peer addresses of nodes to join through;\nwithout seeds the node forms "  \
    "a cluster of its own")                                                    \
  X(REGION, "region", "NAME", "default", CONF_G_IDENTITY, CONF_K_NAME, 0, 0,   \
    NULL, "region of this node")                                               \
  X(ZONE, "zone", "NAME", NULL, CONF_G_IDENTITY, CONF_K_NAME, 0, 0, NULL,      \
    "zone (rack, availability zone) within the region")                        \
  X(PARTITIONS, "partitions", "Q", "64", CONF_G_CLUSTER, CONF_K_POW2, 1,       \
    RING_Q_MAX, NULL, "partitions of the ring, a power of two")                \
  X(N, "n", "N", "3", CONF_G_CLUSTER, CONF_K_UINT, 1, NODE_FANOUT_MAX, NULL,   \
    "replicas of every key")                                                   \
  X(REPLICAS, "replicas", "REGION=N,...", NULL, CONF_G_CLUSTER,                \
    CONF_K_REPLICAS, 0, 0, NULL,                                               \
    "replicas per region instead of --n, like\nCassandra's "                   \
    "NetworkTopologyStrategy: e.g.\nus-east=3,eu-west=3 keeps 3 copies of "    \
    "every key\nin each of the two regions; nodes of other\nregions hold "     \
    "none")                                                                    \
  X(R, "r", "R", "2", CONF_G_REQUESTS, CONF_K_UINT, 1, NODE_FANOUT_MAX, NULL,  \
    "replicas that must answer a read")                                        \
  X(W, "w", "W", "2", CONF_G_REQUESTS, CONF_K_UINT, 1, NODE_FANOUT_MAX, NULL,  \
    "replicas that must acknowledge a write")                                  \
  X(TIMEOUT_MS, "timeout-ms", "MS", "5000", CONF_G_REQUESTS, CONF_K_UINT, 1,   \
    3600000, NULL, "request timeout")                                          \
  X(VALUE_MAX, "value-max", "BYTES", "1048576", CONF_G_LIMITS, CONF_K_UINT, 1, \
    CONF_VALUE_MAX_MAX, NULL, "largest value accepted")                        \
  X(SIBLINGS_MAX, "siblings-max", "N", "100", CONF_G_LIMITS, CONF_K_UINT, 1,   \
    100000, NULL,                                                              \
    "siblings a key may have before writes\nwithout a context are refused "    \
    "(a warning\nat 25)")                                                      \
  X(GOSSIP_INTERVAL_MS, "gossip-interval-ms", "MS", "1000", CONF_G_LIMITS,     \
    CONF_K_UINT, 10, 60000, NULL, "gossip round period")                       \
  X(PHI_THRESHOLD, "phi-threshold", "PHI", "8", CONF_G_LIMITS, CONF_K_REAL, 0, \
    100, NULL, "failure detector threshold")                                   \
  X(WRITE_BUFFER_MB, "write-buffer-mb", "MB", "8", CONF_G_LIMITS, CONF_K_UINT, \
    1, 65536, NULL, "RocksDB memtable size")                                   \
  X(CACHE_MB, "cache-mb", "MB", "256", CONF_G_LIMITS, CONF_K_UINT, 0, 1048576, \
    NULL, "cache of stored objects in front of\nRocksDB; 0 turns it off")      \
  X(AAE_INTERVAL_MS, "aae-interval-ms", "MS", "10000", CONF_G_REPAIR,          \
    CONF_K_UINT, 1, 86400000, NULL,                                            \
    "one anti-entropy tree exchange per "                                      \
    "interval")                                                                \
  X(HINT_INTERVAL_MS, "hint-interval-ms", "MS", "1000", CONF_G_REPAIR,         \
    CONF_K_UINT, 1, 86400000, NULL, "hinted handoff delivery rounds")          \
  X(CATCHUP_MB_PER_S, "catchup-mb-per-s", "N", "32", CONF_G_REPAIR,            \
    CONF_K_UINT, 0, 1000000, NULL,                                             \
    "catch-up anti-entropy with a returning\nreplica at most N MiB a second "  \
    "(0: off)")                                                                \
  X(HINT_WINDOW_MS, "hint-window-ms", "MS", "10800000", CONF_G_REPAIR,         \
    CONF_K_UINT, 1, 30ull * 86400000ull, NULL,                                 \
    "keep no hints for a replica down longer\nthan this (3 hours); "           \
    "anti-entropy repairs it")                                                 \
  X(HANDOFF_INTERVAL_MS, "handoff-interval-ms", "MS", "1000", CONF_G_REPAIR,   \
    CONF_K_UINT, 1, 86400000, NULL, "ownership handoff rounds")                \
  X(TOMBSTONE_GRACE_MS, "tombstone-grace-ms", "MS", "86400000", CONF_G_REPAIR, \
    CONF_K_UINT, 1, 365ull * 86400000ull, NULL,                                \
    "age before a tombstone every replica holds\nmay be reaped (one day)")     \
  X(HINTS_MAX, "hints-max", "N", "1000000", CONF_G_REPAIR, CONF_K_UINT, 1,     \
    1000000000ull, NULL,                                                       \
    "hints this node keeps for others; past it,\nhints are refused")           \
  X(RESP, "resp", "HOST:PORT", NULL, CONF_G_SERVE, CONF_K_ADDR, 0, 0, NULL,    \
    "also serve the Redis protocol (RESP2/RESP3)\nfor redis-cli, "             \
    "redis-benchmark and Redis\nclient libraries (docs/resp.md); default: "    \
    "off")                                                                     \
  X(HTTP, "http", "HOST:PORT", NULL, CONF_G_SERVE, CONF_K_ADDR, 0, 0, NULL,    \
    "also serve HTTP: /metrics (Prometheus),\n/health, /ready, /kv/{key} "     \
    "and /admin/*\n(docs/http.md); default: off")                              \
  X(TLS_CERT, "tls-cert", "FILE", NULL, CONF_G_SECURITY, CONF_K_TEXT, 0, 0,    \
    NULL, "this node's certificate (PEM, naming the\nnode id); turns TLS on")  \
  X(TLS_KEY, "tls-key", "FILE", NULL, CONF_G_SECURITY, CONF_K_TEXT, 0, 0,      \
    NULL, "its private key (PEM)")                                             \
  X(TLS_CA, "tls-ca", "FILE", NULL, CONF_G_SECURITY, CONF_K_TEXT, 0, 0, NULL,  \
    "the cluster CA (PEM): peers and client\ncertificates must be signed by "  \
    "it")                                                                      \
  X(CLIENT_TLS, "client-tls", "MODE", NULL, CONF_G_SECURITY, CONF_K_WORD, 0,   \
    0, "tls|plain|both",                                                       \
    "tls, plain or both (either, for a rolling\nupgrade) on the client, "      \
    "Redis and HTTP\nports (default tls with --tls-cert, else\nplain)")        \
  X(PEER_TLS, "peer-tls", "MODE", NULL, CONF_G_SECURITY, CONF_K_WORD, 0, 0,    \
    "tls|plain|both",                                                          \
    "the same for the peer port; TLS there is\nmutual: a peer's "              \
    "certificate must name\nits node id")                                      \
  X(AUTH_FILE, "auth-file", "FILE", NULL, CONF_G_SECURITY, CONF_K_TEXT, 0, 0,  \
    NULL,                                                                      \
    "clients must log in as a user of FILE (made\nwith `kvorum user-add`); "   \
    "roles read, write,\nadmin")                                               \
  X(LOG_LEVEL, "log-level", "LEVEL", "info", CONF_G_OPERATION, CONF_K_WORD, 0, \
    0, "error|warn|info|debug",                                                \
    "error, warn, info or debug; change it at\nrun time with `kvorum "         \
    "log-level LEVEL`")                                                        \
  X(LOG_FORMAT, "log-format", "FORMAT", "logfmt", CONF_G_OPERATION,            \
    CONF_K_WORD, 0, 0, "logfmt|json",                                          \
    "logfmt or json: one record a line on stderr\n(docs/operations.md, Logs)")

/* The largest --value-max: a value and its key fit in a frame. */
#define CONF_VALUE_MAX_MAX (WIRE_FRAME_MAX - 1024u * 1024u - KV_KEY_MAX)

typedef enum conf_id {
#define CONF__ENUM(e, name, arg, def, group, kind, lo, hi, words, help)        \
  CONF_##e,
  CONF_OPTS(CONF__ENUM)
#undef CONF__ENUM
      CONF_COUNT
} conf_id;

/* One setting, as CONF_OPTS lists it. */
typedef struct conf_opt {
  const char *name; /* the long flag without "--"; the config file's key */
  const char *arg;  /* what the value is, for --help */
  const char *def;  /* default as text; NULL: none */
  conf_group group;
  conf_kind kind;
  uint64_t lo, hi;
  const char *words; /* CONF_K_WORD: "a|b|c" */
  const char *help;
} conf_opt;

extern const conf_opt conf_opts[CONF_COUNT];

/* The CONF_* of a setting's name, or -1. */
int conf_find(const char *name);

/* The settings given so far: the text of each (NULL: not given). */
typedef struct conf {
  char *val[CONF_COUNT];     /* malloc'd */
  uint32_t line[CONF_COUNT]; /* the file line it came from; 0: a flag */
} conf;

void conf_init(conf *c);
/* Frees the values; c may be reused after conf_init. */
void conf_free(conf *c);

/* Checks value for setting id and keeps a copy (an empty value clears
 * the setting: the default applies). Returns 0, KV_EINVAL with a message
 * in err that goes after the setting's name ("wants HOST:PORT, not 'x'"),
 * or KV_ENOMEM. */
int conf_set(conf *c, conf_id id, const char *value, char *err, size_t errlen);

/* Reads the config file path and sets what it says. Returns 0, or
 * KV_EINVAL (a bad line, key or value), KV_EIO (cannot read it) or
 * KV_ENOMEM with a message in err: "PATH:LINE: unknown key 'x' ...",
 * "PATH:LINE: listen wants HOST:PORT, not 'x'", "PATH: cannot open: No
 * such file or directory". Stops at the first error, in
 * file order. */
int conf_load_file(conf *c, const char *path, char *err, size_t errlen);
/* The same for the text of a file (name stands for its path in
 * messages); text need not end in a newline. */
int conf_load_text(conf *c, const char *name, const char *text, size_t len,
                   char *err, size_t errlen);

/* Checks what spans several settings. Returns 0 or KV_EINVAL with a
 * message. */
int conf_check(const conf *c, char *err, size_t errlen);

/* The effective text of setting id: what was given, else its default
 * (NULL when it has none). */
const char *conf_get(const conf *c, conf_id id);
/* Whether setting id was given (from a flag or the file). */
bool conf_given(const conf *c, conf_id id);
/* Typed values of a setting whose text conf_set accepted (or of its
 * default): a number (CONF_K_UINT, CONF_K_POW2; 0 when unset without a
 * default), a real (CONF_K_REAL), the index of the word among `words`
 * (CONF_K_WORD; -1 when unset without a default). */
uint64_t conf_uint(const conf *c, conf_id id);
double conf_real(const conf *c, conf_id id);
int conf_word(const conf *c, conf_id id);
/* The data directory: given, else ./var/ID (into buf, cap bytes). */
const char *conf_data_dir(const conf *c, char *buf, size_t cap);
/* The TLS mode word of CONF_CLIENT_TLS or CONF_PEER_TLS: given, else
 * "tls" with --tls-cert and "plain" without. */
const char *conf_tls_mode(const conf *c, conf_id id);

/* Splits --seeds into v (at most max entries, pointing into buf of cap
 * bytes). Returns the count (0 when unset). */
size_t conf_seeds(const conf *c, char *buf, size_t cap, const char **v,
                  size_t max);
/* Parses --replicas into out (names point into buf, a copy of the text,
 * cap bytes): returns the number of regions (0 when unset), *total the
 * sum of their counts. */
size_t conf_replicas(const conf *c, char *buf, size_t cap, gossip_replicas *out,
                     uint32_t *total);

/* Writes every setting as a config file would say it, "name = value"
 * (an empty value for one that has none), with its effective value:
 * what kvorumd --print-config shows. header (may be NULL) is written
 * first as comment lines. Returns 0 or KV_EIO. */
int conf_print(const conf *c, FILE *out, const char *header);
/* Writes the flags of CONF_OPTS, grouped, for --help. */
void conf_help(FILE *out);

#endif
