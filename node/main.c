/*
 * main.c: kvorumd's command line. Reads the config file (--config) and
 * the flags into one set of settings (conf.h: the list of settings, their
 * defaults and checks), then runs the node (uv_node.c). Flags and config
 * keys are a contract: keep their names.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "kv_err.h"
#include "ring.h"
#include "uv_node.h"

/* Flags of the command line only: not settings, not in a config file. */
enum {
  MAIN_O_SETTING = 1000, /* + conf_id: a setting of CONF_OPTS */
  MAIN_O_CONFIG = MAIN_O_SETTING + CONF_COUNT,
  MAIN_O_PRINT_CONFIG,
  MAIN_O_VERSION,
  MAIN_O_HELP,
};

static void main__usage(FILE *f) {
  fputs("Usage: kvorumd [--config FILE] [FLAGS]\n"
        "\n"
        "Runs one kvorum node. Any node accepts any request; nodes find each "
        "other\n"
        "through --seeds and form a ring by gossip.\n"
        "\n",
        f);
  conf_help(f);
  fputs("Config file, version, help:\n"
        "  --config FILE         read settings from FILE: \"name = value\" "
        "lines, the\n"
        "                        name a flag above without its dashes, at "
        "the top or\n"
        "                        under [kvorumd]; '#' starts a comment. A "
        "flag on the\n"
        "                        command line wins over the file\n"
        "  --print-config        print the effective settings (file, flags "
        "and\n"
        "                        defaults) as a config file, and exit\n"
        "  --version             print kvorumd's version and exit\n"
        "  --help                this text\n"
        "\n"
        "kvorumd stops cleanly on SIGTERM or SIGINT: staged writes are "
        "committed\n"
        "and the database closed. SIGHUP rereads the TLS files and the auth\n"
        "file. Logs go to stderr, one record a line. Under systemd "
        "(Type=notify)\n"
        "it sends READY=1 once it is in the ring and serving, STOPPING=1 when "
        "it\n"
        "stops, and WATCHDOG=1 when the unit has WatchdogSec.\n",
        f);
}

/* A flag as given, applied after the config file. */
typedef struct main__flag {
  conf_id id;
  const char *value;
} main__flag;

int main(int argc, char **argv) {
  struct option opts[CONF_COUNT + 5];
  for (int i = 0; i < CONF_COUNT; i++)
    opts[i] = (struct option){conf_opts[i].name, required_argument, 0,
                              MAIN_O_SETTING + i};
  opts[CONF_COUNT] =
      (struct option){"config", required_argument, 0, MAIN_O_CONFIG};
  opts[CONF_COUNT + 1] =
      (struct option){"print-config", no_argument, 0, MAIN_O_PRINT_CONFIG};
  opts[CONF_COUNT + 2] =
      (struct option){"version", no_argument, 0, MAIN_O_VERSION};
  opts[CONF_COUNT + 3] = (struct option){"help", no_argument, 0, MAIN_O_HELP};
  opts[CONF_COUNT + 4] = (struct option){0, 0, 0, 0};

  main__flag *flags = calloc((size_t)argc + 1, sizeof(*flags));
  if (!flags)
    return 1;
  size_t nflags = 0;
  const char *config = NULL;
  bool print_config = false;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (c >= MAIN_O_SETTING && c < MAIN_O_CONFIG) {
      flags[nflags].id = (conf_id)(c - MAIN_O_SETTING);
      flags[nflags++].value = optarg;
      continue;
    }
    switch (c) {
    case MAIN_O_CONFIG:
      config = optarg;
      break;
    case MAIN_O_PRINT_CONFIG:
      print_config = true;
      break;
    case MAIN_O_VERSION:
      printf("kvorumd %s\n", KVORUM_VERSION);
      free(flags);
      return 0;
    case MAIN_O_HELP:
      main__usage(stdout);
      free(flags);
      return 0;
    case ':':
      fprintf(stderr, "kvorumd: %s needs a value\n", argv[optind - 1]);
      goto usage;
    default:
      fprintf(stderr, "kvorumd: unknown flag '%s'\n", argv[optind - 1]);
      goto usage;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "kvorumd: unexpected argument '%s'\n", argv[optind]);
    goto usage;
  }

  /* The file first, then the flags: a flag wins. */
  conf cf;
  conf_init(&cf);
  char err[CONF_ERR_MAX];
  if (config && conf_load_file(&cf, config, err, sizeof(err))) {
    fprintf(stderr, "kvorumd: %s\n", err);
    goto bad;
  }
  for (size_t i = 0; i < nflags; i++)
    if (conf_set(&cf, flags[i].id, flags[i].value, err, sizeof(err))) {
      fprintf(stderr, "kvorumd: --%s %s\n", conf_opts[flags[i].id].name,
              err);
      goto bad;
    }
  free(flags);
  flags = NULL;
  if (conf_check(&cf, err, sizeof(err))) {
    fprintf(stderr, "kvorumd: %s\n", err);
    goto bad;
  }
  if (print_config) {
    char header[PATH_MAX + 128];
    snprintf(header, sizeof(header),
             "kvorumd %s: effective settings%s%s (kvorumd --print-config)",
             KVORUM_VERSION, config ? " from " : "", config ? config : "");
    int rc = conf_print(&cf, stdout, header);
    conf_free(&cf);
    return rc ? 1 : 0;
  }

  char data_buf[PATH_MAX];
  char seeds_buf[CONF_SEEDS_MAX * GOSSIP_ADDR_MAX];
  const char *seed_v[CONF_SEEDS_MAX];
  char replicas_buf[RING_REGIONS_MAX * (RING_NAME_MAX + 8)];
  gossip_replicas replicas[RING_REGIONS_MAX];
  uint32_t replicas_total = 0;
  size_t nreplicas = conf_replicas(&cf, replicas_buf, sizeof(replicas_buf),
                                   replicas, &replicas_total);
  uvt_mode client_tls, peer_tls;
  uvt_mode_parse(conf_tls_mode(&cf, CONF_CLIENT_TLS), &client_tls);
  uvt_mode_parse(conf_tls_mode(&cf, CONF_PEER_TLS), &peer_tls);
  const char *zone = conf_get(&cf, CONF_ZONE);

  uvn_config cfg;
  memset(&cfg, 0, sizeof(cfg));
  cfg.core.id = conf_get(&cf, CONF_ID);
  cfg.core.region = conf_get(&cf, CONF_REGION);
  cfg.core.zone = zone ? zone : "";
  cfg.core.client_addr = conf_get(&cf, CONF_LISTEN);
  cfg.core.peer_addr = conf_get(&cf, CONF_PEER);
  cfg.core.seeds = seed_v;
  cfg.core.nseeds = conf_seeds(&cf, seeds_buf, sizeof(seeds_buf), seed_v,
                               CONF_SEEDS_MAX);
  cfg.core.q = (uint32_t)conf_uint(&cf, CONF_PARTITIONS);
  cfg.core.n = (uint32_t)conf_uint(&cf, CONF_N);
  cfg.core.replicas = nreplicas > 0 ? replicas : NULL;
  cfg.core.nreplicas = nreplicas;
  cfg.core.r = (uint32_t)conf_uint(&cf, CONF_R);
  cfg.core.w = (uint32_t)conf_uint(&cf, CONF_W);
  cfg.core.timeout_ms = (uint32_t)conf_uint(&cf, CONF_TIMEOUT_MS);
  cfg.core.gossip_interval_ms =
      (uint32_t)conf_uint(&cf, CONF_GOSSIP_INTERVAL_MS);
  cfg.core.phi_threshold = conf_real(&cf, CONF_PHI_THRESHOLD);
  cfg.core.limits = obj_limits_default;
  uint32_t sib_max = (uint32_t)conf_uint(&cf, CONF_SIBLINGS_MAX);
  cfg.core.limits.siblings_max = sib_max;
  if (cfg.core.limits.siblings_warn > sib_max)
    cfg.core.limits.siblings_warn = sib_max;
  cfg.core.limits.value_max = (uint32_t)conf_uint(&cf, CONF_VALUE_MAX);
  cfg.core.log_level = (node_log_level)conf_word(&cf, CONF_LOG_LEVEL);
  cfg.core.aae_interval_ms = (uint32_t)conf_uint(&cf, CONF_AAE_INTERVAL_MS);
  cfg.core.hint_interval_ms = (uint32_t)conf_uint(&cf, CONF_HINT_INTERVAL_MS);
  cfg.core.hint_window_ms = conf_uint(&cf, CONF_HINT_WINDOW_MS);
  uint64_t catchup_mb = conf_uint(&cf, CONF_CATCHUP_MB_PER_S);
  cfg.core.catchup_mb_per_s = (uint32_t)catchup_mb;
  cfg.core.catchup_off = catchup_mb == 0;
  cfg.core.handoff_interval_ms =
      (uint32_t)conf_uint(&cf, CONF_HANDOFF_INTERVAL_MS);
  cfg.core.tombstone_grace_ms = conf_uint(&cf, CONF_TOMBSTONE_GRACE_MS);
  cfg.core.hints_max = conf_uint(&cf, CONF_HINTS_MAX);
  cfg.core.version = KVORUM_VERSION;
  cfg.data_dir = conf_data_dir(&cf, data_buf, sizeof(data_buf));
  cfg.config_file = config;
  cfg.resp_addr = conf_get(&cf, CONF_RESP);
  cfg.http_addr = conf_get(&cf, CONF_HTTP);
  cfg.auth_file = conf_get(&cf, CONF_AUTH_FILE);
  cfg.tls_cert = conf_get(&cf, CONF_TLS_CERT);
  cfg.tls_key = conf_get(&cf, CONF_TLS_KEY);
  cfg.tls_ca = conf_get(&cf, CONF_TLS_CA);
  cfg.client_tls = client_tls;
  cfg.peer_tls = peer_tls;
  cfg.log_format = (kv_log_format)conf_word(&cf, CONF_LOG_FORMAT);
  cfg.write_buffer_mb = (size_t)conf_uint(&cf, CONF_WRITE_BUFFER_MB);
  cfg.cache_mb = (size_t)conf_uint(&cf, CONF_CACHE_MB);
  int rc = uvn_run(&cfg);
  conf_free(&cf);
  return rc ? 1 : 0;

bad:
  conf_free(&cf);
usage:
  free(flags);
  fprintf(stderr, "Run 'kvorumd --help' for the flags.\n");
  return 2;
}
