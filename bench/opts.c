/*
 * opts.c: kvorum-bench's command line. The flags are a contract for users'
 * scripts: names and meanings do not change. Errors say which flag and
 * what was expected. Depends on bench.h, gen.h and kv_err.h.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "kv_err.h"

#define BENCH_DEFAULT_HOSTS "127.0.0.1:7101"
#define BENCH_DEFAULT_KEYS 100000
#define BENCH_DEFAULT_VALUE 100
#define BENCH_DEFAULT_CONCURRENCY 64
#define BENCH_DEFAULT_CONNECTIONS 4
#define BENCH_DEFAULT_DURATION_S 10.0

static const char bench__usage[] =
    "usage: kvorum-bench [options]\n"
    "  --hosts HOST:PORT[,HOST:PORT...]  servers (default " BENCH_DEFAULT_HOSTS
    ")\n"
    "  --region NAME                     the client's region: requests go "
    "to replicas there first\n"
    "  --regions R1=HOST:PORT[,...];R2=...  one client group per region, "
    "run at once,\n"
    "                                    latency reported per region "
    "(native only)\n"
    "  --protocol native|resp            libkvorum, or Redis GET/SET "
    "(default native)\n"
    "  --workload a|b|c|f|write-only|mix:READ/UPDATE\n"
    "                                    YCSB A 50/50, B 95/5, C reads, F "
    "read-modify-write (default a)\n"
    "  --distribution uniform|zipfian|latest  key popularity (default "
    "zipfian)\n"
    "  --keys N                          key space user0..user<N-1> "
    "(default 100000)\n"
    "  --value-size N[-M]                value bytes, fixed or uniform in "
    "N..M (default 100)\n"
    "  --concurrency N                   requests in flight (default 64)\n"
    "  --connections N                   connections, round robin over hosts "
    "(default 4)\n"
    "  --duration S | --ops N            length of the measured run "
    "(default 10 s)\n"
    "  --warmup S                        unmeasured run first (default 0)\n"
    "  --rate OPS_PER_S                  open loop at this rate; latency "
    "from the intended start\n"
    "  --r R --w W --dw DW               per-request levels: N or "
    "one|quorum|all|local_one|\n"
    "                                    local_quorum|each_quorum (native "
    "only)\n"
    "  --load                            write every key once first "
    "(reported apart)\n"
    "  --json FILE                       every figure as JSON\n"
    "  --report FILE.html                a self-contained HTML report\n"
    "  --seed N                          random seed (default: from the "
    "clock)\n"
    "  --tls                             speak TLS (both protocols); "
    "servers must verify\n"
    "  --tls-ca FILE                     PEM CA to verify servers with "
    "(default: system store)\n"
    "  --tls-cert FILE --tls-key FILE    a client certificate and its key\n"
    "  --tls-server-name NAME            check this name in the servers' "
    "certificates\n"
    "  --user USER                       authenticate as USER (native: "
    "HELLO, resp: AUTH);\n"
    "                                    the password comes from "
    BENCH_PASSWORD_ENV "\n"
    "  --version                         print kvorum-bench's version and "
    "exit\n"
    "  --help                            this text\n"
    "Exit status: 0 ok, 1 run failed or had errors-only, 2 bad flags.\n";

static int bench__fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bench__fail(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return KV_EINVAL;
}

/* Parses an unsigned decimal in [lo, hi]. */
static int bench__u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
  if (!s || !*s || *s == '-' || *s == '+')
    return -1;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

/* Parses a finite non-negative decimal in [lo, hi]. */
static int bench__dbl(const char *s, double lo, double hi, double *out) {
  if (!s || !*s)
    return -1;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || *end || !isfinite(v) || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

int bench_parse_level(const char *s, int32_t *out) {
  static const struct {
    const char *name;
    int32_t lvl;
  } names[] = {{"one", BENCH_LVL_ONE},
               {"quorum", BENCH_LVL_QUORUM},
               {"all", BENCH_LVL_ALL},
               {"local_one", BENCH_LVL_LOCAL_ONE},
               {"local_quorum", BENCH_LVL_LOCAL_QUORUM},
               {"each_quorum", BENCH_LVL_EACH_QUORUM}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (!strcmp(s, names[i].name)) {
      *out = names[i].lvl;
      return 0;
    }
  }
  uint64_t v;
  if (bench__u64(s, 1, 255, &v) < 0)
    return KV_EINVAL;
  *out = (int32_t)v;
  return 0;
}

const char *bench_level_str(int32_t lvl, char *buf, size_t len) {
  static const char *const names[] = {"one", "quorum", "all", "local_one",
                                      "local_quorum", "each_quorum"};
  if (lvl == 0)
    snprintf(buf, len, "default");
  else if (lvl < 0 && lvl >= BENCH_LVL_EACH_QUORUM)
    snprintf(buf, len, "%s", names[-lvl - 1]);
  else
    snprintf(buf, len, "%d", (int)lvl);
  return buf;
}

/* Splits o->hosts_str into o->hosts, checking each is HOST:PORT. */
static int bench__hosts(bench_opts *o, char *err, size_t errlen) {
  o->nhosts = 0;
  const char *p = o->hosts_str;
  while (1) {
    const char *comma = strchr(p, ',');
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    if (o->nhosts == BENCH_HOSTS_MAX)
      return bench__fail(err, errlen, "--hosts: more than %d hosts",
                         BENCH_HOSTS_MAX);
    if (n == 0 || n >= BENCH_HOST_LEN_MAX)
      return bench__fail(err, errlen,
                         "--hosts: expected HOST:PORT[,HOST:PORT...], got "
                         "'%s'",
                         o->hosts_str);
    char *h = o->hosts[o->nhosts];
    memcpy(h, p, n);
    h[n] = '\0';
    const char *colon = strrchr(h, ':');
    uint64_t port;
    if (!colon || colon == h || bench__u64(colon + 1, 1, 65535, &port) < 0)
      return bench__fail(err, errlen,
                         "--hosts: '%s' is not HOST:PORT with a port in "
                         "1..65535",
                         h);
    o->nhosts++;
    if (!comma)
      break;
    p = comma + 1;
  }
  return 0;
}

/* Parses "N" or "N-M" into the value size range. */
static int bench__value_size(const char *s, bench_opts *o) {
  char lo[32];
  const char *dash = strchr(s, '-');
  uint64_t a, b;
  if (!dash)
    return bench__u64(s, 0, BENCH_VALUE_MAX, &a) < 0
               ? -1
               : (o->value_min = o->value_max = (uint32_t)a, 0);
  size_t n = (size_t)(dash - s);
  if (n == 0 || n >= sizeof lo)
    return -1;
  memcpy(lo, s, n);
  lo[n] = '\0';
  if (bench__u64(lo, 0, BENCH_VALUE_MAX, &a) < 0 ||
      bench__u64(dash + 1, 0, BENCH_VALUE_MAX, &b) < 0 || b < a)
    return -1;
  o->value_min = (uint32_t)a;
  o->value_max = (uint32_t)b;
  return 0;
}

static void bench__defaults(bench_opts *o) {
  memset(o, 0, sizeof *o);
  snprintf(o->hosts_str, sizeof o->hosts_str, "%s", BENCH_DEFAULT_HOSTS);
  snprintf(o->workload, sizeof o->workload, "a");
  gen_mix_parse("a", &o->mix);
  o->dist = GEN_ZIPFIAN;
  o->keys = BENCH_DEFAULT_KEYS;
  o->value_min = o->value_max = BENCH_DEFAULT_VALUE;
  o->concurrency = BENCH_DEFAULT_CONCURRENCY;
  o->connections = BENCH_DEFAULT_CONNECTIONS;
  o->duration_s = BENCH_DEFAULT_DURATION_S;
  o->proto = BENCH_NATIVE;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  o->seed = (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec ^
            ((uint64_t)getpid() << 32);
}

/* The flags that take a value. */
static const char *const bench__valued[] = {
    "hosts", "workload", "distribution", "keys", "value-size",
    "concurrency", "connections", "duration", "ops", "warmup", "rate", "r",
    "w", "dw", "protocol", "json", "report", "seed", "region", "regions",
    "tls-ca", "tls-cert", "tls-key", "tls-server-name", "user", NULL};

static bool bench__region_name_ok(const char *s, size_t len) {
  if (len == 0 || len >= BENCH_REGION_NAME_MAX)
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!ok)
      return false;
  }
  return true;
}

/* Parses --regions "R1=H:P[,H:P];R2=..." into o->regions and sets
 * o->hosts_str to every group's hosts (checked later as --hosts is).
 * Returns 0 or KV_EINVAL with a message. */
static int bench__regions(bench_opts *o, const char *val, char *err,
                          size_t errlen) {
  o->nregions = 0;
  size_t hl = 0;
  o->hosts_str[0] = '\0';
  const char *p = val;
  while (*p) {
    const char *semi = strchr(p, ';');
    size_t glen = semi ? (size_t)(semi - p) : strlen(p);
    const char *eq = memchr(p, '=', glen);
    if (!eq)
      return bench__fail(err, errlen,
                         "--regions: expected REGION=HOST:PORT[,HOST:PORT]"
                         "[;REGION=...], got '%s'", val);
    size_t nlen = (size_t)(eq - p), hlen = glen - nlen - 1;
    if (!bench__region_name_ok(p, nlen))
      return bench__fail(err, errlen,
                         "--regions: a region name is 1-%d letters, digits, "
                         "'-', '_' or '.', in '%s'",
                         BENCH_REGION_NAME_MAX - 1, val);
    if (hlen == 0 || hlen >= BENCH_REGION_HOSTS_MAX)
      return bench__fail(err, errlen,
                         "--regions: region '%.*s' needs 1 to %d bytes of "
                         "hosts", (int)nlen, p, BENCH_REGION_HOSTS_MAX - 1);
    if (o->nregions == BENCH_REGIONS_MAX)
      return bench__fail(err, errlen, "--regions: more than %d regions",
                         BENCH_REGIONS_MAX);
    bench_region *g = &o->regions[o->nregions];
    memcpy(g->name, p, nlen);
    g->name[nlen] = '\0';
    memcpy(g->hosts, eq + 1, hlen);
    g->hosts[hlen] = '\0';
    for (size_t k = 0; k < o->nregions; k++)
      if (!strcmp(o->regions[k].name, g->name))
        return bench__fail(err, errlen, "--regions: region '%s' given twice",
                           g->name);
    if (hl + 1 + hlen >= sizeof o->hosts_str)
      return bench__fail(err, errlen, "--regions: host lists too long");
    if (hl)
      o->hosts_str[hl++] = ',';
    memcpy(o->hosts_str + hl, g->hosts, hlen + 1);
    hl += hlen;
    o->nregions++;
    p += glen;
    if (*p == ';')
      p++;
  }
  if (o->nregions == 0)
    return bench__fail(err, errlen, "--regions: no region given");
  return 0;
}

int bench_opts_parse(int argc, char **argv, bench_opts *o, FILE *out,
                     char *err, size_t errlen) {
  bench__defaults(o);
  bool have_duration = false, have_ops = false, have_hosts = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
      return bench__fail(err, errlen,
                         "unexpected argument '%s' (flags start with --; "
                         "see --help)",
                         a);
    char name[32];
    const char *val = NULL;
    const char *eq = strchr(a + 2, '=');
    size_t nlen = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
    if (nlen >= sizeof name)
      return bench__fail(err, errlen, "unknown flag '%s' (see --help)", a);
    memcpy(name, a + 2, nlen);
    name[nlen] = '\0';
    if (!strcmp(name, "help")) {
      fputs(bench__usage, out);
      return 1;
    }
    if (!strcmp(name, "version")) {
      fprintf(out, "kvorum-bench %s\n", KVORUM_VERSION);
      return 1;
    }
    if (!strcmp(name, "load") || !strcmp(name, "quiet") ||
        !strcmp(name, "tls")) {
      if (eq)
        return bench__fail(err, errlen, "--%s takes no value", name);
      bool *flag = name[0] == 'l' ? &o->load : name[0] == 'q' ? &o->quiet
                                                              : &o->tls;
      *flag = true;
      continue;
    }
    if (!strcmp(name, "password"))
      return bench__fail(err, errlen,
                         "--password: not a flag (it would show in ps); put "
                         "the password in " BENCH_PASSWORD_ENV);
    bool known = false;
    for (size_t k = 0; bench__valued[k]; k++)
      known = known || !strcmp(name, bench__valued[k]);
    if (!known)
      return bench__fail(err, errlen, "unknown flag '--%s' (see --help)",
                         name);
    if (eq) {
      val = eq + 1;
    } else {
      if (i + 1 >= argc)
        return bench__fail(err, errlen, "--%s needs a value", name);
      val = argv[++i];
    }
    uint64_t u;
    double d;
    if (!strcmp(name, "region")) {
      if (!bench__region_name_ok(val, strlen(val)))
        return bench__fail(err, errlen,
                           "--region: expected 1-%d letters, digits, '-', "
                           "'_' or '.', got '%s'",
                           BENCH_REGION_NAME_MAX - 1, val);
      snprintf(o->region, sizeof o->region, "%s", val);
      continue;
    }
    if (!strcmp(name, "regions")) {
      if (bench__regions(o, val, err, errlen) < 0)
        return KV_EINVAL;
      continue;
    }
    if (!strncmp(name, "tls-", 4)) {
      const char **dst = !strcmp(name, "tls-ca")     ? &o->tls_ca
                          : !strcmp(name, "tls-cert") ? &o->tls_cert
                          : !strcmp(name, "tls-key")  ? &o->tls_key
                                                      : &o->tls_server_name;
      if (!*val)
        return bench__fail(err, errlen, "--%s: empty value", name);
      *dst = val;
      o->tls = true;
      continue;
    }
    if (!strcmp(name, "user")) {
      size_t ul = strlen(val);
      if (ul == 0 || ul > BENCH_USER_MAX)
        return bench__fail(err, errlen,
                           "--user: expected 1 to %d bytes, got '%s'",
                           BENCH_USER_MAX, val);
      o->user = val;
      continue;
    }
    if (!strcmp(name, "hosts")) {
      have_hosts = true;
      if (strlen(val) >= sizeof o->hosts_str)
        return bench__fail(err, errlen, "--hosts: list too long");
      snprintf(o->hosts_str, sizeof o->hosts_str, "%s", val);
    } else if (!strcmp(name, "workload")) {
      if (strlen(val) >= sizeof o->workload || gen_mix_parse(val, &o->mix))
        return bench__fail(err, errlen,
                           "--workload: expected a, b, c, f, write-only or "
                           "mix:READ/UPDATE (e.g. mix:90/10), got '%s'",
                           val);
      snprintf(o->workload, sizeof o->workload, "%s", val);
    } else if (!strcmp(name, "distribution")) {
      if (!strcmp(val, "uniform"))
        o->dist = GEN_UNIFORM;
      else if (!strcmp(val, "zipfian"))
        o->dist = GEN_ZIPFIAN;
      else if (!strcmp(val, "latest"))
        o->dist = GEN_LATEST;
      else
        return bench__fail(err, errlen,
                           "--distribution: expected uniform, zipfian or "
                           "latest, got '%s'",
                           val);
    } else if (!strcmp(name, "keys")) {
      if (bench__u64(val, 1, BENCH_KEYS_MAX, &o->keys) < 0)
        return bench__fail(err, errlen,
                           "--keys: expected an integer in 1..%llu, got '%s'",
                           (unsigned long long)BENCH_KEYS_MAX, val);
    } else if (!strcmp(name, "value-size")) {
      if (bench__value_size(val, o) < 0)
        return bench__fail(err, errlen,
                           "--value-size: expected N or N-M with N <= M <= "
                           "%u, got '%s'",
                           BENCH_VALUE_MAX, val);
    } else if (!strcmp(name, "concurrency")) {
      if (bench__u64(val, 1, BENCH_CONCURRENCY_MAX, &u) < 0)
        return bench__fail(err, errlen,
                           "--concurrency: expected an integer in 1..%d, got "
                           "'%s'",
                           BENCH_CONCURRENCY_MAX, val);
      o->concurrency = (uint32_t)u;
    } else if (!strcmp(name, "connections")) {
      if (bench__u64(val, 1, BENCH_CONNECTIONS_MAX, &u) < 0)
        return bench__fail(err, errlen,
                           "--connections: expected an integer in 1..%d, got "
                           "'%s'",
                           BENCH_CONNECTIONS_MAX, val);
      o->connections = (uint32_t)u;
    } else if (!strcmp(name, "duration")) {
      if (bench__dbl(val, 0.001, BENCH_DURATION_MAX_S, &d) < 0)
        return bench__fail(err, errlen,
                           "--duration: expected seconds in 0.001..%.0f, got "
                           "'%s'",
                           BENCH_DURATION_MAX_S, val);
      o->duration_s = d;
      have_duration = true;
    } else if (!strcmp(name, "ops")) {
      if (bench__u64(val, 1, UINT64_MAX / 2, &o->ops) < 0)
        return bench__fail(err, errlen,
                           "--ops: expected a positive integer, got '%s'",
                           val);
      have_ops = true;
    } else if (!strcmp(name, "warmup")) {
      if (bench__dbl(val, 0, BENCH_DURATION_MAX_S, &o->warmup_s) < 0)
        return bench__fail(err, errlen,
                           "--warmup: expected seconds in 0..%.0f, got '%s'",
                           BENCH_DURATION_MAX_S, val);
    } else if (!strcmp(name, "rate")) {
      if (bench__dbl(val, 0, BENCH_RATE_MAX, &o->rate) < 0)
        return bench__fail(err, errlen,
                           "--rate: expected operations per second in "
                           "0..%.0f (0: closed loop), got '%s'",
                           BENCH_RATE_MAX, val);
    } else if (!strcmp(name, "r") || !strcmp(name, "w") ||
               !strcmp(name, "dw")) {
      int32_t *dst = name[0] == 'r' ? &o->r : name[0] == 'w' ? &o->w : &o->dw;
      if (bench_parse_level(val, dst) < 0)
        return bench__fail(err, errlen,
                           "--%s: expected a number of replicas (1..255) or "
                           "one|quorum|all|local_one|local_quorum|"
                           "each_quorum, got '%s'",
                           name, val);
    } else if (!strcmp(name, "protocol")) {
      if (!strcmp(val, "native"))
        o->proto = BENCH_NATIVE;
      else if (!strcmp(val, "resp"))
        o->proto = BENCH_RESP;
      else
        return bench__fail(err, errlen,
                           "--protocol: expected native or resp, got '%s'",
                           val);
    } else if (!strcmp(name, "json")) {
      o->json_path = val;
    } else if (!strcmp(name, "report")) {
      o->report_path = val;
    } else if (!strcmp(name, "seed")) {
      if (bench__u64(val, 0, UINT64_MAX, &o->seed) < 0)
        return bench__fail(err, errlen,
                           "--seed: expected a non-negative integer, got '%s'",
                           val);
    }
  }
  if (have_duration && have_ops)
    return bench__fail(err, errlen,
                       "--duration and --ops exclude each other: give one");
  if (o->tls_key && !o->tls_cert)
    return bench__fail(err, errlen, "--tls-key needs --tls-cert");
  if (o->user) {
    o->password = getenv(BENCH_PASSWORD_ENV);
    if (!o->password)
      return bench__fail(err, errlen,
                         "--user %s: set the password in " BENCH_PASSWORD_ENV
                         " (never a flag: it would show in ps)",
                         o->user);
    if (strlen(o->password) > BENCH_PASSWORD_MAX)
      return bench__fail(err, errlen,
                         BENCH_PASSWORD_ENV " is over %d bytes",
                         BENCH_PASSWORD_MAX);
  }
  if (have_ops)
    o->duration_s = 0;
  if (o->region[0] && o->proto != BENCH_NATIVE)
    return bench__fail(err, errlen,
                       "--region needs --protocol native (regions are "
                       "kvorum's)");
  if (o->nregions) {
    if (have_hosts)
      return bench__fail(err, errlen,
                         "--hosts and --regions exclude each other: "
                         "--regions names each region's hosts");
    if (o->region[0])
      return bench__fail(err, errlen,
                         "--region and --regions exclude each other: each "
                         "group of --regions is in its own region");
    if (o->proto != BENCH_NATIVE)
      return bench__fail(err, errlen,
                         "--regions needs --protocol native (regions are "
                         "kvorum's)");
    if (o->connections < o->nregions)
      return bench__fail(err, errlen,
                         "--connections (%u) is less than the number of "
                         "regions (%zu): each region needs one",
                         o->connections, o->nregions);
  }
  if (o->connections > o->concurrency)
    return bench__fail(err, errlen,
                       "--connections (%u) is more than --concurrency (%u): "
                       "some connections would stay idle",
                       o->connections, o->concurrency);
  return bench__hosts(o, err, errlen);
}
