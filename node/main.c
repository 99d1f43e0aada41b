/*
 * main.c: kvorumd's command line. Parses and checks the flags, then runs
 * the node (uv_node.c). Flags are a contract: keep their names.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"
#include "ring.h"
#include "uv_node.h"

#define MAIN_SEEDS_MAX 16

static void main__usage(FILE *f) {
  fprintf(f,
"Usage: kvorumd [FLAGS]\n"
"\n"
"Runs one kvorum node. Any node accepts any request; nodes find each other\n"
"through --seeds and form a ring by gossip.\n"
"\n"
"Identity and addresses:\n"
"  --id NAME            node id, unique in the cluster (default n1)\n"
"  --listen HOST:PORT   address for clients (default 127.0.0.1:7101)\n"
"  --peer HOST:PORT     address for other nodes (default 127.0.0.1:7201)\n"
"  --data DIR           data directory (default ./var/ID); one kvorumd per\n"
"                       directory\n"
"  --seeds H:P,H:P,...  peer addresses of nodes to join through; without\n"
"                       seeds the node forms a cluster of its own\n"
"  --region NAME        region of this node (default \"default\")\n"
"  --zone NAME          zone (rack, availability zone) within the region\n"
"\n"
"Cluster settings (used when this node creates a new cluster):\n"
"  --partitions Q       partitions of the ring, a power of two (default 64)\n"
"  --n N                replicas of every key (default 3)\n"
"  --replicas REGION=N,...  replicas per region instead of --n, like\n"
"                       Cassandra's NetworkTopologyStrategy: e.g.\n"
"                       us-east=3,eu-west=3 keeps 3 copies of every key in\n"
"                       each of the two regions (at most %d regions, %u\n"
"                       replicas in all); nodes of other regions hold none\n"
"\n"
"Request defaults (every request may choose its own):\n"
"  --r R                replicas that must answer a read (default 2)\n"
"  --w W                replicas that must acknowledge a write (default 2)\n"
"  --timeout-ms MS      request timeout (default 5000)\n"
"\n"
"Limits and tuning:\n"
"  --value-max BYTES    largest value accepted (default 1048576)\n"
"  --siblings-max N     siblings a key may have before writes without a\n"
"                       context are refused (default 100; warning at 25)\n"
"  --gossip-interval-ms MS  gossip round period (default 1000)\n"
"  --phi-threshold PHI  failure detector threshold (default 8)\n"
"  --write-buffer-mb MB RocksDB memtable size (default 8)\n"
"  --cache-mb MB        cache of stored objects in front of RocksDB\n"
"                       (default 256; 0 turns it off)\n"
"\n"
"Repair (see docs/operations.md):\n"
"  --aae-interval-ms MS     one anti-entropy tree exchange per interval\n"
"                           (default 10000)\n"
"  --hint-interval-ms MS    hinted handoff delivery rounds (default 1000)\n"
"  --resp HOST:PORT         also serve the Redis protocol (RESP2/RESP3) for\n"
"                           redis-cli, redis-benchmark and Redis client\n"
"                           libraries (docs/resp.md); default: off\n"
"  --http HOST:PORT         also serve HTTP: /metrics (Prometheus), /health,\n"
"                           /ready, /kv/{key} and /admin/* (docs/http.md);\n"
"                           default: off\n"
"  --catchup-mb-per-s N     catch-up anti-entropy with a returning replica\n"
"                           at most N MiB a second (default 32; 0: off)\n"
"  --hint-window-ms MS      keep no hints for a replica down longer than\n"
"                           this; anti-entropy repairs it (default\n"
"                           10800000, 3 hours)\n"
"  --handoff-interval-ms MS ownership handoff rounds (default 1000)\n"
"  --tombstone-grace-ms MS  age before a tombstone every replica holds\n"
"                           may be reaped (default 86400000, one day)\n"
"  --hints-max N            hints this node keeps for others (default\n"
"                           1000000); past it, hints are refused\n"
"\n"
"Operation:\n"
"  --log-level LEVEL    error, warn, info or debug (default info); change\n"
"                       it at run time with `kvorum log-level LEVEL`\n"
"  --log-format FORMAT  logfmt or json (default logfmt): one record a\n"
"                       line on stderr (docs/operations.md, Logs)\n"
"  --help               this text\n"
"\n"
"kvorumd stops cleanly on SIGTERM or SIGINT: staged writes are committed\n"
"and the database closed. Logs go to stderr, one record a line.\n",
      RING_REGIONS_MAX, NODE_FANOUT_MAX);
}

/* Parses an unsigned number in [lo, hi]. Returns 0 or -1. */
static int main__num(const char *flag, const char *s, unsigned long long lo,
                     unsigned long long hi, unsigned long long *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *s == '\0' || *end != '\0' || *s == '-' || v < lo || v > hi) {
    fprintf(stderr, "kvorumd: %s wants a whole number from %llu to %llu, "
            "not '%s'\n", flag, lo, hi, s);
    return -1;
  }
  *out = v;
  return 0;
}

static int main__addr_ok(const char *flag, const char *s) {
  const char *colon = strrchr(s, ':');
  if (!colon || colon == s || colon[1] == '\0' ||
      strlen(s) >= GOSSIP_ADDR_MAX) {
    fprintf(stderr, "kvorumd: %s wants HOST:PORT, not '%s'\n", flag, s);
    return -1;
  }
  return 0;
}

static int main__name_ok(const char *flag, const char *s, bool empty_ok) {
  size_t n = strlen(s);
  if ((!empty_ok && n == 0) || n >= RING_NAME_MAX) {
    fprintf(stderr, "kvorumd: %s must be 1 to %d characters\n", flag,
            RING_NAME_MAX - 1);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')) {
      fprintf(stderr, "kvorumd: %s may hold letters, digits, '-', '_' and "
              "'.' only, not '%s'\n", flag, s);
      return -1;
    }
  }
  return 0;
}

/* Parses --replicas "REGION=N,REGION=N" into out (names point into buf,
 * which holds a copy of s). Returns the number of regions, or -1 with a
 * message on stderr. */
static int main__replicas(const char *s, char *buf, size_t buflen,
                          gossip_replicas *out, uint32_t *total) {
  if (strlen(s) >= buflen) {
    fprintf(stderr, "kvorumd: --replicas is too long\n");
    return -1;
  }
  snprintf(buf, buflen, "%s", s);
  int cnt = 0;
  *total = 0;
  char *save = NULL;
  for (char *tok = strtok_r(buf, ",", &save); tok;
       tok = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(tok, '=');
    if (!eq) {
      fprintf(stderr, "kvorumd: --replicas wants REGION=N,..., not '%s'\n",
              tok);
      return -1;
    }
    *eq = '\0';
    unsigned long long v;
    if (main__name_ok("--replicas region", tok, false) ||
        main__num("--replicas count", eq + 1, 1, NODE_FANOUT_MAX, &v))
      return -1;
    for (int i = 0; i < cnt; i++)
      if (strcmp(out[i].region, tok) == 0) {
        fprintf(stderr, "kvorumd: --replicas names region '%s' twice\n",
                tok);
        return -1;
      }
    if (cnt == RING_REGIONS_MAX) {
      fprintf(stderr, "kvorumd: --replicas takes at most %d regions\n",
              RING_REGIONS_MAX);
      return -1;
    }
    out[cnt].region = tok;
    out[cnt].n = (uint32_t)v;
    *total += (uint32_t)v;
    cnt++;
  }
  if (cnt == 0) {
    fprintf(stderr, "kvorumd: --replicas wants REGION=N,..., not '%s'\n", s);
    return -1;
  }
  if (*total > NODE_FANOUT_MAX) {
    fprintf(stderr, "kvorumd: --replicas asks for %u replicas in all; at "
            "most %u are supported\n", *total, NODE_FANOUT_MAX);
    return -1;
  }
  return cnt;
}

int main(int argc, char **argv) {
  enum {
    O_ID = 1000, O_LISTEN, O_PEER, O_DATA, O_SEEDS, O_REGION, O_ZONE,
    O_PARTS, O_N, O_R, O_W, O_TIMEOUT, O_VALUE_MAX, O_SIB_MAX, O_GOSSIP,
    O_PHI, O_WBUF, O_LOG, O_LOG_FORMAT, O_HELP, O_AAE, O_HINT,
    O_HANDOFF, O_GRACE,
    O_HINTS_MAX, O_REPLICAS, O_CACHE, O_HINT_WINDOW, O_CATCHUP, O_RESP, O_HTTP
  };
  static const struct option opts[] = {
      {"id", required_argument, 0, O_ID},
      {"listen", required_argument, 0, O_LISTEN},
      {"peer", required_argument, 0, O_PEER},
      {"data", required_argument, 0, O_DATA},
      {"seeds", required_argument, 0, O_SEEDS},
      {"region", required_argument, 0, O_REGION},
      {"zone", required_argument, 0, O_ZONE},
      {"partitions", required_argument, 0, O_PARTS},
      {"n", required_argument, 0, O_N},
      {"replicas", required_argument, 0, O_REPLICAS},
      {"r", required_argument, 0, O_R},
      {"w", required_argument, 0, O_W},
      {"timeout-ms", required_argument, 0, O_TIMEOUT},
      {"value-max", required_argument, 0, O_VALUE_MAX},
      {"siblings-max", required_argument, 0, O_SIB_MAX},
      {"gossip-interval-ms", required_argument, 0, O_GOSSIP},
      {"phi-threshold", required_argument, 0, O_PHI},
      {"write-buffer-mb", required_argument, 0, O_WBUF},
      {"log-level", required_argument, 0, O_LOG},
      {"log-format", required_argument, 0, O_LOG_FORMAT},
      {"aae-interval-ms", required_argument, 0, O_AAE},
      {"hint-interval-ms", required_argument, 0, O_HINT},
      {"handoff-interval-ms", required_argument, 0, O_HANDOFF},
      {"tombstone-grace-ms", required_argument, 0, O_GRACE},
      {"hints-max", required_argument, 0, O_HINTS_MAX},
      {"hint-window-ms", required_argument, 0, O_HINT_WINDOW},
      {"catchup-mb-per-s", required_argument, 0, O_CATCHUP},
      {"resp", required_argument, 0, O_RESP},
      {"http", required_argument, 0, O_HTTP},
      {"cache-mb", required_argument, 0, O_CACHE},
      {"help", no_argument, 0, O_HELP},
      {0, 0, 0, 0},
  };
  const char *id = "n1", *listen = "127.0.0.1:7101", *peer = "127.0.0.1:7201";
  const char *data = NULL, *seeds = NULL, *resp = NULL, *http = NULL, *region = "default", *zone = "";
  unsigned long long q = RING_Q_DEFAULT, n = 3, r = 2, w = 2;
  unsigned long long timeout = 5000, value_max = KV_VALUE_MAX_DEFAULT;
  unsigned long long sib_max = 100, gossip_ms = 1000, wbuf = 8;
  double phi = 8.0;
  unsigned long long aae_ms = 10000, hint_ms = 1000, handoff_ms = 1000;
  unsigned long long hint_window_ms = 3ull * 3600 * 1000;
  unsigned long long catchup_mb = 32;
  unsigned long long grace_ms = 86400000ull, hints_max = 1000000ull;
  unsigned long long cache_mb = 256;
  node_log_level lvl = NODE_LOG_INFO;
  kv_log_format log_format = KV_LOG_LOGFMT;
  bool n_given = false;
  char replicas_buf[RING_REGIONS_MAX * (RING_NAME_MAX + 8)];
  gossip_replicas replicas[RING_REGIONS_MAX];
  int nreplicas = 0;
  uint32_t replicas_total = 0;

  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    int bad = 0;
    switch (c) {
    case O_ID: id = optarg; bad = main__name_ok("--id", id, false); break;
    case O_LISTEN: listen = optarg; bad = main__addr_ok("--listen", listen); break;
    case O_PEER: peer = optarg; bad = main__addr_ok("--peer", peer); break;
    case O_DATA: data = optarg; break;
    case O_SEEDS: seeds = optarg; break;
    case O_REGION: region = optarg; bad = main__name_ok("--region", region, false); break;
    case O_ZONE: zone = optarg; bad = main__name_ok("--zone", zone, true); break;
    case O_PARTS:
      bad = main__num("--partitions", optarg, 1, RING_Q_MAX, &q);
      if (!bad && (q & (q - 1))) {
        fprintf(stderr, "kvorumd: --partitions must be a power of two\n");
        bad = 1;
      }
      break;
    case O_N:
      bad = main__num("--n", optarg, 1, NODE_FANOUT_MAX, &n);
      n_given = true;
      break;
    case O_REPLICAS:
      nreplicas = main__replicas(optarg, replicas_buf, sizeof(replicas_buf),
                                 replicas, &replicas_total);
      bad = nreplicas < 0;
      break;
    case O_R: bad = main__num("--r", optarg, 1, NODE_FANOUT_MAX, &r); break;
    case O_W: bad = main__num("--w", optarg, 1, NODE_FANOUT_MAX, &w); break;
    case O_TIMEOUT: bad = main__num("--timeout-ms", optarg, 1, 3600000, &timeout); break;
    case O_VALUE_MAX:
      bad = main__num("--value-max", optarg, 1, WIRE_FRAME_MAX - 1024 * 1024 - KV_KEY_MAX, &value_max);
      break;
    case O_SIB_MAX: bad = main__num("--siblings-max", optarg, 1, 100000, &sib_max); break;
    case O_GOSSIP: bad = main__num("--gossip-interval-ms", optarg, 10, 60000, &gossip_ms); break;
    case O_AAE: bad = main__num("--aae-interval-ms", optarg, 1, 86400000, &aae_ms); break;
    case O_HINT: bad = main__num("--hint-interval-ms", optarg, 1, 86400000, &hint_ms); break;
    case O_HANDOFF: bad = main__num("--handoff-interval-ms", optarg, 1, 86400000, &handoff_ms); break;
    case O_GRACE: bad = main__num("--tombstone-grace-ms", optarg, 1, 365ull * 86400000ull, &grace_ms); break;
    case O_HINTS_MAX: bad = main__num("--hints-max", optarg, 1, 1000000000ull, &hints_max); break;
    case O_RESP: resp = optarg; bad = main__addr_ok("--resp", optarg); break;
    case O_HTTP: http = optarg; bad = main__addr_ok("--http", optarg); break;
    case O_CATCHUP: bad = main__num("--catchup-mb-per-s", optarg, 0, 1000000, &catchup_mb); break;
    case O_HINT_WINDOW: bad = main__num("--hint-window-ms", optarg, 1, 30ull * 86400000ull, &hint_window_ms); break;
    case O_CACHE: bad = main__num("--cache-mb", optarg, 0, 1048576, &cache_mb); break;
    case O_WBUF: bad = main__num("--write-buffer-mb", optarg, 1, 65536, &wbuf); break;
    case O_PHI: {
      char *end;
      phi = strtod(optarg, &end);
      if (*end || phi <= 0 || phi > 100) {
        fprintf(stderr, "kvorumd: --phi-threshold wants a number above 0\n");
        bad = 1;
      }
      break;
    }
    case O_LOG:
      if (node_log_level_parse(optarg, &lvl)) {
        fprintf(stderr, "kvorumd: --log-level is error, warn, info or "
                "debug, not '%s'\n", optarg);
        bad = 1;
      }
      break;
    case O_LOG_FORMAT:
      if (kv_log_format_parse(optarg, &log_format)) {
        fprintf(stderr, "kvorumd: --log-format is logfmt or json, not "
                "'%s'\n", optarg);
        bad = 1;
      }
      break;
    case O_HELP:
      main__usage(stdout);
      return 0;
    case ':':
      fprintf(stderr, "kvorumd: %s needs a value\n", argv[optind - 1]);
      bad = 1;
      break;
    default:
      fprintf(stderr, "kvorumd: unknown flag '%s'\n", argv[optind - 1]);
      bad = 1;
    }
    if (bad) {
      fprintf(stderr, "Run 'kvorumd --help' for the flags.\n");
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "kvorumd: unexpected argument '%s'\nRun 'kvorumd "
            "--help' for the flags.\n", argv[optind]);
    return 2;
  }
  if (n_given && nreplicas > 0) {
    fprintf(stderr, "kvorumd: --n and --replicas exclude each other: --n is "
            "the one-region shorthand of --replicas\n");
    return 2;
  }
  if (nreplicas > 0 && (r > replicas_total || w > replicas_total)) {
    fprintf(stderr, "kvorumd: --r and --w cannot exceed the %u replicas "
            "--replicas asks for\n", replicas_total);
    return 2;
  }
  if (nreplicas == 0 && (r > n || w > n)) {
    fprintf(stderr, "kvorumd: --r and --w cannot exceed --n (%llu)\n", n);
    return 2;
  }

  char data_buf[PATH_MAX];
  if (!data) {
    snprintf(data_buf, sizeof(data_buf), "./var/%s", id);
    data = data_buf;
  }
  /* Seeds: a comma-separated list. */
  char seeds_buf[MAIN_SEEDS_MAX * GOSSIP_ADDR_MAX];
  const char *seed_v[MAIN_SEEDS_MAX];
  size_t nseeds = 0;
  if (seeds) {
    snprintf(seeds_buf, sizeof(seeds_buf), "%s", seeds);
    char *save = NULL;
    for (char *tok = strtok_r(seeds_buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
      if (nseeds == MAIN_SEEDS_MAX) {
        fprintf(stderr, "kvorumd: at most %d seeds\n", MAIN_SEEDS_MAX);
        return 2;
      }
      if (main__addr_ok("--seeds", tok))
        return 2;
      seed_v[nseeds++] = tok;
    }
  }

  uvn_config cfg;
  memset(&cfg, 0, sizeof(cfg));
  cfg.core.id = id;
  cfg.core.region = region;
  cfg.core.zone = zone;
  cfg.core.client_addr = listen;
  cfg.core.peer_addr = peer;
  cfg.core.seeds = seed_v;
  cfg.core.nseeds = nseeds;
  cfg.core.q = (uint32_t)q;
  cfg.core.n = (uint32_t)n;
  cfg.core.replicas = nreplicas > 0 ? replicas : NULL;
  cfg.core.nreplicas = nreplicas > 0 ? (size_t)nreplicas : 0;
  cfg.core.r = (uint32_t)r;
  cfg.core.w = (uint32_t)w;
  cfg.core.timeout_ms = (uint32_t)timeout;
  cfg.core.gossip_interval_ms = (uint32_t)gossip_ms;
  cfg.core.phi_threshold = phi;
  cfg.core.limits = obj_limits_default;
  cfg.core.limits.siblings_max = (uint32_t)sib_max;
  if (cfg.core.limits.siblings_warn > sib_max)
    cfg.core.limits.siblings_warn = (uint32_t)sib_max;
  cfg.core.limits.value_max = (uint32_t)value_max;
  cfg.core.log_level = lvl;
  cfg.core.aae_interval_ms = (uint32_t)aae_ms;
  cfg.core.hint_interval_ms = (uint32_t)hint_ms;
  cfg.core.hint_window_ms = hint_window_ms;
  cfg.core.catchup_mb_per_s = (uint32_t)catchup_mb;
  cfg.core.catchup_off = catchup_mb == 0;
  cfg.core.handoff_interval_ms = (uint32_t)handoff_ms;
  cfg.core.tombstone_grace_ms = grace_ms;
  cfg.core.hints_max = hints_max;
  cfg.data_dir = data;
  cfg.resp_addr = resp;
  cfg.http_addr = http;
  cfg.log_format = log_format;
  cfg.write_buffer_mb = (size_t)wbuf;
  cfg.cache_mb = (size_t)cache_mb;
  int rc = uvn_run(&cfg);
  return rc ? 1 : 0;
}
