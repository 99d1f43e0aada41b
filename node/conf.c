/*
 * conf.c: kvorumd's settings from flags and a config file (conf.h).
 *
 * The config file is read with libinih's ini_parse_stream through our own
 * line reader: it counts lines (Debian builds libinih without
 * INI_HANDLER_LINENO, so the handler is not told its line), refuses lines
 * longer than CONF_LINE_MAX instead of letting them be cut, and feeds
 * libinih from a file or from memory alike. The handler stops at the first
 * bad key or value; libinih returns the line of its first error, which
 * may be an earlier line that is no "name = value" at all.
 */
#include "conf.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "kv_err.h"

const conf_opt conf_opts[CONF_COUNT] = {
#define CONF__OPT(e, nm, a, d, g, k, l, h, wd, hp)                             \
  [CONF_##e] = {.name = nm,                                                    \
                .arg = a,                                                      \
                .def = d,                                                      \
                .group = g,                                                    \
                .kind = k,                                                     \
                .lo = l,                                                       \
                .hi = h,                                                       \
                .words = wd,                                                   \
                .help = hp},
    CONF_OPTS(CONF__OPT)
#undef CONF__OPT
};

static const char *const conf__group_title[CONF_GROUPS] = {
    [CONF_G_IDENTITY] = "Identity and addresses",
    [CONF_G_CLUSTER] =
        "Cluster settings (used when this node creates a new cluster)",
    [CONF_G_REQUESTS] = "Request defaults (every request may choose its own)",
    [CONF_G_LIMITS] = "Limits and tuning",
    [CONF_G_REPAIR] = "Repair (see docs/operations.md)",
    [CONF_G_SERVE] = "Other front ends",
    [CONF_G_SECURITY] = "Security (docs/security.md)",
    [CONF_G_OPERATION] = "Operation",
};

__attribute__((format(printf, 3, 4))) static int
conf__fail(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (errlen)
    vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return KV_EINVAL;
}

int conf_find(const char *name) {
  for (int i = 0; i < CONF_COUNT; i++)
    if (strcmp(conf_opts[i].name, name) == 0)
      return i;
  return -1;
}

void conf_init(conf *c) { memset(c, 0, sizeof(*c)); }

void conf_free(conf *c) {
  for (int i = 0; i < CONF_COUNT; i++)
    free(c->val[i]);
  memset(c, 0, sizeof(*c));
}

/* ---- checking one value ---- */

/* Parses a whole number in [lo, hi]. Returns 0 or -1. */
static int conf__uint(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
  char *end;
  errno = 0;
  if (*s < '0' || *s > '9')
    return -1;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end != '\0' || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

/* Checks a node id, region or zone. */
static int conf__name(const char *s, size_t n, char *err, size_t errlen) {
  if (n == 0 || n >= RING_NAME_MAX)
    return conf__fail(err, errlen, "must be 1 to %d characters, not '%.*s'",
                      RING_NAME_MAX - 1, (int)n, s);
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.'))
      return conf__fail(err, errlen,
                        "may hold letters, digits, '-', '_' and '.' only, "
                        "not '%.*s'",
                        (int)n, s);
  }
  return 0;
}

/* Checks a HOST:PORT. */
static int conf__addr(const char *s, size_t n, char *err, size_t errlen) {
  const char *colon = memrchr(s, ':', n);
  uint64_t port;
  char pbuf[8];
  size_t pl = colon ? n - (size_t)(colon + 1 - s) : 0;
  if (pl > 0 && pl < sizeof(pbuf)) {
    memcpy(pbuf, colon + 1, pl);
    pbuf[pl] = '\0';
  }
  if (!colon || colon == s || pl == 0 || pl >= sizeof(pbuf) ||
      conf__uint(pbuf, 1, 65535, &port) || n >= GOSSIP_ADDR_MAX ||
      memchr(s, ',', n) || memchr(s, ' ', n))
    return conf__fail(err, errlen, "wants HOST:PORT, not '%.*s'", (int)n, s);
  return 0;
}

/* Checks "REGION=N,..." (the --replicas syntax); *total: the sum. */
static int conf__replicas(const char *s, uint32_t *total, size_t *count,
                          char *err, size_t errlen) {
  const char *names[RING_REGIONS_MAX];
  size_t lens[RING_REGIONS_MAX];
  size_t cnt = 0;
  *total = 0;
  for (const char *p = s; *p;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    const char *eq = memchr(p, '=', len);
    if (len == 0 || !eq)
      return conf__fail(err, errlen, "wants REGION=N,..., not '%s'", s);
    size_t nl = (size_t)(eq - p);
    char why[CONF_ERR_MAX / 2];
    if (conf__name(p, nl, why, sizeof(why)))
      return conf__fail(err, errlen, "wants REGION=N,...: a region %s", why);
    char num[24];
    uint64_t v;
    size_t vl = len - nl - 1;
    if (vl >= sizeof(num))
      vl = sizeof(num) - 1;
    memcpy(num, eq + 1, vl);
    num[vl] = '\0';
    if (conf__uint(num, 1, NODE_FANOUT_MAX, &v))
      return conf__fail(err, errlen,
                        "wants a count from 1 to %u for region '%.*s', "
                        "not '%s'",
                        NODE_FANOUT_MAX, (int)nl, p, num);
    for (size_t i = 0; i < cnt; i++)
      if (lens[i] == nl && memcmp(names[i], p, nl) == 0)
        return conf__fail(err, errlen, "names region '%.*s' twice", (int)nl, p);
    if (cnt == RING_REGIONS_MAX)
      return conf__fail(err, errlen, "takes at most %d regions",
                        RING_REGIONS_MAX);
    names[cnt] = p;
    lens[cnt] = nl;
    cnt++;
    *total += (uint32_t)v;
    p = comma ? comma + 1 : p + len;
    if (comma && !*p)
      return conf__fail(err, errlen, "wants REGION=N,..., not '%s'", s);
  }
  if (*total > NODE_FANOUT_MAX)
    return conf__fail(err, errlen,
                      "asks for %u replicas in all; at most %u are "
                      "supported",
                      *total, NODE_FANOUT_MAX);
  *count = cnt;
  return 0;
}

/* Checks what any value must be to read the same from a flag and from a
 * config file (which strips spaces around a value and takes " #" and
 * " ;" for comments): no more than CONF_VALUE_LEN_MAX bytes, no control
 * bytes, no space at either end, no comment start. */
static int conf__text(const char *v, char *err, size_t errlen) {
  size_t n = strlen(v);
  if (n > CONF_VALUE_LEN_MAX)
    return conf__fail(err, errlen, "is longer than %d bytes",
                      CONF_VALUE_LEN_MAX);
  if (v[0] == ' ' || v[n - 1] == ' ')
    return conf__fail(err, errlen, "may not start or end with a space");
  if (v[0] == '#' || v[0] == ';')
    return conf__fail(err, errlen,
                      "may not start with '%c' (a comment in a "
                      "config file)",
                      v[0]);
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)v[i];
    if (ch < 0x20 || ch == 0x7f)
      return conf__fail(err, errlen, "holds a control character");
    if ((ch == '#' || ch == ';') && v[i - 1] == ' ')
      return conf__fail(err, errlen,
                        "may not hold ' %c' (a comment in a "
                        "config file)",
                        ch);
  }
  return 0;
}

/* Checks value for o. Returns 0 or KV_EINVAL with a message. */
static int conf__check(const conf_opt *o, const char *v, char *err,
                       size_t errlen) {
  size_t n = strlen(v);
  uint64_t u;
  switch (o->kind) {
  case CONF_K_TEXT:
    return 0;
  case CONF_K_NAME:
    return conf__name(v, n, err, errlen);
  case CONF_K_ADDR:
    return conf__addr(v, n, err, errlen);
  case CONF_K_SEEDS: {
    size_t cnt = 0;
    for (const char *p = v;; cnt++) {
      const char *comma = strchr(p, ',');
      size_t len = comma ? (size_t)(comma - p) : strlen(p);
      if (cnt == CONF_SEEDS_MAX)
        return conf__fail(err, errlen, "takes at most %d addresses",
                          CONF_SEEDS_MAX);
      char why[CONF_ERR_MAX / 2];
      if (conf__addr(p, len, why, sizeof(why)))
        return conf__fail(err, errlen, "wants HOST:PORT,HOST:PORT,...: one %s",
                          why);
      if (!comma)
        return 0;
      p = comma + 1;
    }
  }
  case CONF_K_UINT:
  case CONF_K_POW2:
    if (conf__uint(v, o->lo, o->hi, &u))
      return conf__fail(err, errlen,
                        "wants a whole number from %llu to %llu, not '%s'",
                        (unsigned long long)o->lo, (unsigned long long)o->hi,
                        v);
    if (o->kind == CONF_K_POW2 && (u & (u - 1)))
      return conf__fail(err, errlen, "must be a power of two, not '%s'", v);
    return 0;
  case CONF_K_REAL: {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || *end || !(d > 0) || d > (double)o->hi)
      return conf__fail(err, errlen,
                        "wants a number above 0 and at most %llu, not '%s'",
                        (unsigned long long)o->hi, v);
    return 0;
  }
  case CONF_K_WORD: {
    for (const char *w = o->words; *w;) {
      const char *bar = strchr(w, '|');
      size_t wl = bar ? (size_t)(bar - w) : strlen(w);
      if (wl == n && memcmp(w, v, n) == 0)
        return 0;
      w += wl + (bar != NULL);
    }
    return conf__fail(err, errlen, "is one of %s, not '%s'", o->words, v);
  }
  case CONF_K_REPLICAS: {
    uint32_t total;
    size_t cnt;
    return conf__replicas(v, &total, &cnt, err, errlen);
  }
  }
  return conf__fail(err, errlen, "%s: unknown kind", o->name);
}

int conf_set(conf *c, conf_id id, const char *value, char *err, size_t errlen) {
  if ((int)id < 0 || id >= CONF_COUNT || !value)
    return conf__fail(err, errlen, "no such setting");
  if (!*value) {
    free(c->val[id]);
    c->val[id] = NULL;
    return 0;
  }
  int rc = conf__text(value, err, errlen);
  if (rc)
    return rc;
  rc = conf__check(&conf_opts[id], value, err, errlen);
  if (rc)
    return rc;
  char *copy = strdup(value);
  if (!copy) {
    snprintf(err, errlen, "out of memory");
    return KV_ENOMEM;
  }
  free(c->val[id]);
  c->val[id] = copy;
  c->line[id] = 0;
  return 0;
}

/* ---- the config file ---- */

/* The state of one file being read. */
typedef struct conf__file {
  conf *c;
  const char *name;
  /* The input: a FILE, or text in memory. */
  FILE *f;
  const char *text;
  size_t len, pos;
  char *line; /* getline's buffer (FILE) */
  size_t line_cap;
  uint32_t lineno;   /* of the line last handed to libinih */
  uint32_t bad_line; /* of the first error found here; 0: none */
  int rc;
  char *err;
  size_t errlen;
  uint8_t seen[CONF_COUNT]; /* given in this file */
} conf__file;

/* Records the first error (at the current line). Returns 0 (libinih's
 * "stop here" for a handler). */
__attribute__((format(printf, 3, 4))) static int
conf__file_fail(conf__file *cf, int rc, const char *fmt, ...) {
  if (cf->bad_line)
    return 0;
  cf->bad_line = cf->lineno;
  cf->rc = rc;
  int off = snprintf(cf->err, cf->errlen, "%s:%u: ", cf->name, cf->lineno);
  if (off >= 0 && (size_t)off < cf->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cf->err + off, cf->errlen - (size_t)off, fmt, ap);
    va_end(ap);
  }
  return 0;
}

/* libinih's reader: the next line into str (num bytes with NUL), or NULL
 * at the end. A line that does not fit is an error and reads as empty. */
static char *conf__read_line(char *str, int num, void *stream) {
  conf__file *cf = stream;
  const char *p;
  size_t len;
  if (cf->f) {
    ssize_t n = getline(&cf->line, &cf->line_cap, cf->f);
    if (n < 0)
      return NULL;
    p = cf->line;
    len = (size_t)n;
  } else {
    if (cf->pos >= cf->len)
      return NULL;
    p = cf->text + cf->pos;
    const char *nl = memchr(p, '\n', cf->len - cf->pos);
    len = nl ? (size_t)(nl - p) + 1 : cf->len - cf->pos;
    cf->pos += len;
  }
  cf->lineno++;
  size_t body = len;
  while (body && (p[body - 1] == '\n' || p[body - 1] == '\r'))
    body--;
  if (memchr(p, '\0', body)) {
    conf__file_fail(cf, KV_EINVAL, "the line holds a NUL byte");
    body = 0;
  } else if (body + 2 > (size_t)num || body > CONF_LINE_MAX) {
    conf__file_fail(cf, KV_EINVAL, "the line is longer than %d bytes",
                    CONF_LINE_MAX);
    body = 0;
  }
  memcpy(str, p, body);
  str[body] = '\n';
  str[body + 1] = '\0';
  return str;
}

static int conf__handler(void *user, const char *section, const char *name,
                         const char *value) {
  conf__file *cf = user;
  if (cf->bad_line)
    return 0;
  if (*section && strcmp(section, "kvorumd") != 0)
    return conf__file_fail(cf, KV_EINVAL,
                           "unknown section [%s] (keys go at the top or "
                           "under [kvorumd])",
                           section);
  int id = conf_find(name);
  if (id < 0) {
    if (strcmp(name, "config") == 0 || strcmp(name, "print-config") == 0 ||
        strcmp(name, "help") == 0 || strcmp(name, "version") == 0)
      return conf__file_fail(cf, KV_EINVAL,
                             "'%s' is a command-line flag, not a setting",
                             name);
    return conf__file_fail(cf, KV_EINVAL,
                           "unknown key '%s' (kvorumd --help lists the "
                           "settings; a key is a flag without its dashes)",
                           name);
  }
  if (cf->seen[id])
    return conf__file_fail(cf, KV_EINVAL,
                           "'%s' is set twice (first on line "
                           "%u)",
                           name, cf->c->line[id]);
  char msg[CONF_ERR_MAX];
  int rc = conf_set(cf->c, (conf_id)id, value, msg, sizeof(msg));
  if (rc)
    return conf__file_fail(cf, rc, "%s %s", name, msg);
  cf->seen[id] = 1;
  cf->c->line[id] = cf->lineno;
  return 1;
}

/* Parses what cf reads. */
static int conf__parse(conf__file *cf) {
  /* Debian's libinih takes these at run time: lines up to CONF_LINE_MAX
   * (no silent cut at 200 bytes), no continuation lines (an indented line
   * is a line of its own), and comments after " #" as well as " ;". */
  static char inline_prefixes[] = ";#";
  ini_use_stack = true; /* a line buffer of ini_max_line bytes */
  ini_allow_realloc = false;
  ini_max_line = CONF_LINE_MAX + 3;
  ini_allow_multiline = false;
  ini_allow_inline_comments = true;
  ini_inline_comment_prefixes = inline_prefixes;
  ini_stop_on_first_error = false;
  int line = ini_parse_stream(conf__read_line, cf, conf__handler, cf);
  free(cf->line);
  cf->line = NULL;
  if (line == -2) {
    snprintf(cf->err, cf->errlen, "%s: out of memory", cf->name);
    return KV_ENOMEM;
  }
  if (line > 0 && (!cf->bad_line || (uint32_t)line < cf->bad_line)) {
    snprintf(cf->err, cf->errlen,
             "%s:%d: not a 'name = value' line or a [section]", cf->name, line);
    return KV_EINVAL;
  }
  return cf->bad_line ? cf->rc : 0;
}

int conf_load_text(conf *c, const char *name, const char *text, size_t len,
                   char *err, size_t errlen) {
  conf__file cf = {.c = c,
                   .name = name,
                   .text = text,
                   .len = len,
                   .err = err,
                   .errlen = errlen};
  return conf__parse(&cf);
}

int conf_load_file(conf *c, const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return KV_EIO;
  }
  conf__file cf = {.c = c, .name = path, .f = f, .err = err, .errlen = errlen};
  int rc = conf__parse(&cf);
  if (!rc && ferror(f)) {
    snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
    rc = KV_EIO;
  }
  fclose(f);
  return rc;
}

/* ---- reading the settings ---- */

const char *conf_get(const conf *c, conf_id id) {
  return c->val[id] ? c->val[id] : conf_opts[id].def;
}

bool conf_given(const conf *c, conf_id id) { return c->val[id] != NULL; }

uint64_t conf_uint(const conf *c, conf_id id) {
  const char *s = conf_get(c, id);
  return s ? strtoull(s, NULL, 10) : 0;
}

double conf_real(const conf *c, conf_id id) {
  const char *s = conf_get(c, id);
  return s ? strtod(s, NULL) : 0;
}

int conf_word(const conf *c, conf_id id) {
  const char *s = conf_get(c, id);
  if (!s)
    return -1;
  size_t n = strlen(s);
  int i = 0;
  for (const char *w = conf_opts[id].words; *w; i++) {
    const char *bar = strchr(w, '|');
    size_t wl = bar ? (size_t)(bar - w) : strlen(w);
    if (wl == n && memcmp(w, s, n) == 0)
      return i;
    w += wl + (bar != NULL);
  }
  return -1;
}

const char *conf_data_dir(const conf *c, char *buf, size_t cap) {
  if (c->val[CONF_DATA])
    return c->val[CONF_DATA];
  snprintf(buf, cap, "./var/%s", conf_get(c, CONF_ID));
  return buf;
}

const char *conf_tls_mode(const conf *c, conf_id id) {
  if (c->val[id])
    return c->val[id];
  return c->val[CONF_TLS_CERT] ? "tls" : "plain";
}

/* Splits the text of a comma-separated setting (a copy in buf, cap bytes)
 * into at most max pieces. Returns how many. */
static size_t conf__split(const char *s, char *buf, size_t cap, char **v,
                          size_t max) {
  if (!s || cap == 0)
    return 0;
  snprintf(buf, cap, "%s", s);
  size_t n = 0;
  char *save = NULL;
  for (char *tok = strtok_r(buf, ",", &save); tok && n < max;
       tok = strtok_r(NULL, ",", &save))
    v[n++] = tok;
  return n;
}

size_t conf_seeds(const conf *c, char *buf, size_t cap, const char **v,
                  size_t max) {
  char *tok[CONF_SEEDS_MAX];
  size_t n = conf__split(c->val[CONF_SEEDS], buf, cap, tok,
                         max < CONF_SEEDS_MAX ? max : CONF_SEEDS_MAX);
  for (size_t i = 0; i < n; i++)
    v[i] = tok[i];
  return n;
}

size_t conf_replicas(const conf *c, char *buf, size_t cap, gossip_replicas *out,
                     uint32_t *total) {
  char *tok[RING_REGIONS_MAX];
  size_t n =
      conf__split(c->val[CONF_REPLICAS], buf, cap, tok, RING_REGIONS_MAX);
  *total = 0;
  for (size_t i = 0; i < n; i++) {
    char *eq = strchr(tok[i], '='); /* conf_set checked there is one */
    *eq = '\0';
    out[i].region = tok[i];
    out[i].n = (uint32_t)strtoul(eq + 1, NULL, 10);
    *total += out[i].n;
  }
  return n;
}

int conf_check(const conf *c, char *err, size_t errlen) {
  bool cert = c->val[CONF_TLS_CERT], key = c->val[CONF_TLS_KEY],
       ca = c->val[CONF_TLS_CA];
  if ((cert || key || ca) && !(cert && key && ca))
    return conf__fail(err, errlen,
                      "TLS needs all of tls-cert, tls-key and tls-ca");
  if (!cert && (strcmp(conf_tls_mode(c, CONF_CLIENT_TLS), "plain") != 0 ||
                strcmp(conf_tls_mode(c, CONF_PEER_TLS), "plain") != 0))
    return conf__fail(err, errlen,
                      "client-tls and peer-tls tls or both need tls-cert, "
                      "tls-key and tls-ca");
  uint64_t r = conf_uint(c, CONF_R), w = conf_uint(c, CONF_W);
  if (c->val[CONF_REPLICAS]) {
    if (c->val[CONF_N])
      return conf__fail(err, errlen,
                        "n and replicas exclude each other: n is the "
                        "one-region shorthand of replicas");
    uint32_t total;
    size_t cnt;
    conf__replicas(c->val[CONF_REPLICAS], &total, &cnt, err, errlen);
    if (r > total || w > total)
      return conf__fail(err, errlen,
                        "r and w cannot exceed the %u replicas that "
                        "replicas asks for",
                        total);
  } else if (r > conf_uint(c, CONF_N) || w > conf_uint(c, CONF_N)) {
    return conf__fail(err, errlen, "r and w cannot exceed n (%llu)",
                      (unsigned long long)conf_uint(c, CONF_N));
  }
  return 0;
}

/* ---- writing ---- */

int conf_print(const conf *c, FILE *out, const char *header) {
  if (header)
    for (const char *p = header; *p;) {
      const char *nl = strchr(p, '\n');
      int len = nl ? (int)(nl - p) : (int)strlen(p);
      fprintf(out, "# %.*s\n", len, p);
      p += len + (nl != NULL);
    }
  char data[4096];
  for (int i = 0; i < CONF_COUNT; i++) {
    const char *v = conf_get(c, (conf_id)i);
    if (i == CONF_DATA)
      v = conf_data_dir(c, data, sizeof(data));
    else if (i == CONF_CLIENT_TLS || i == CONF_PEER_TLS)
      v = conf_tls_mode(c, (conf_id)i);
    else if (i == CONF_N && c->val[CONF_REPLICAS])
      v = NULL; /* they exclude each other: n is not set */
    if (v && *v)
      fprintf(out, "%s = %s\n", conf_opts[i].name, v);
    else
      fprintf(out, "%s =\n", conf_opts[i].name);
  }
  return fflush(out) == 0 && !ferror(out) ? 0 : KV_EIO;
}

void conf_help(FILE *out) {
  enum { COL = 24, WIDTH = 79 };
  for (int g = 0; g < CONF_GROUPS; g++) {
    fprintf(out, "%s:\n", conf__group_title[g]);
    for (int i = 0; i < CONF_COUNT; i++) {
      const conf_opt *o = &conf_opts[i];
      if ((int)o->group != g)
        continue;
      char flag[64];
      int fl = snprintf(flag, sizeof(flag), "  --%s %s", o->name, o->arg);
      fputs(flag, out);
      int col = fl;
      if (col > COL - 2) {
        fprintf(out, "\n%*s", COL, "");
      } else {
        fprintf(out, "%*s", COL - col, "");
      }
      col = COL;
      for (const char *p = o->help;;) {
        const char *nl = strchr(p, '\n');
        int len = nl ? (int)(nl - p) : (int)strlen(p);
        fprintf(out, "%.*s", len, p);
        col = COL + len;
        if (!nl)
          break;
        fprintf(out, "\n%*s", COL, "");
        p = nl + 1;
      }
      if (o->def && *o->def) {
        int dl = (int)strlen(o->def) + 11; /* " (default X)" */
        if (col + dl > WIDTH)
          fprintf(out, "\n%*s(default %s)", COL, "", o->def);
        else
          fprintf(out, " (default %s)", o->def);
      }
      fputc('\n', out);
    }
    fputc('\n', out);
  }
}
