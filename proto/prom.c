/*
 * prom.c: the Prometheus text exposition format writer (prom.h).
 */
#include "prom.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_str.h"

/* Bytes of the longest number text: "%.17g" of a double takes 24, a
 * uint64_t 20. */
#define PROM__NUM_MAX 32

#ifndef NDEBUG
/* Returns whether s is a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), or a
 * label name (the same without ':') when colon is false. */
static bool prom__name_ok(const char *s, bool colon) {
  if (!s || !*s || (*s >= '0' && *s <= '9'))
    return false;
  for (; *s; s++) {
    char c = *s;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || (colon && c == ':');
    if (!ok)
      return false;
  }
  return true;
}

/* Returns whether type is a metric type the format knows. */
static bool prom__type_ok(const char *type) {
  static const char *const types[] = {"counter", "gauge", "histogram",
                                      "summary", "untyped"};
  for (size_t i = 0; type && i < sizeof(types) / sizeof(types[0]); i++)
    if (strcmp(type, types[i]) == 0)
      return true;
  return false;
}
#endif

/* Returns the length of s escaped: backslash and newline take two bytes,
 * and so does the double quote when quote is true. */
static size_t prom__escaped_len(const char *s, bool quote) {
  size_t n = 0;
  for (; *s; s++)
    n += (*s == '\\' || *s == '\n' || (quote && *s == '"')) ? 2 : 1;
  return n;
}

/* Writes s escaped into dst, which has room for prom__escaped_len(s,
 * quote) bytes (no NUL is written). Returns the bytes written. */
static size_t prom__escape(char *dst, const char *s, bool quote) {
  size_t n = 0;
  for (; *s; s++) {
    if (*s == '\n') {
      dst[n++] = '\\';
      dst[n++] = 'n';
    } else if (*s == '\\' || (quote && *s == '"')) {
      dst[n++] = '\\';
      dst[n++] = *s;
    } else {
      dst[n++] = *s;
    }
  }
  return n;
}

static void prom__puts(kvbuf *out, const char *s) {
  kvbuf_append(out, s, strlen(s));
}

/* Writes v into num as the format spells it: NaN, +Inf, -Inf, else the
 * %g form with the fewest digits that strtod reads back as exactly v, and
 * without an exponent where %.17g would have none ("10", not "1e+01"). */
static void prom__fmt_f64(char num[PROM__NUM_MAX], double v) {
  if (isnan(v)) {
    kv_strcopy(num, PROM__NUM_MAX, "NaN");
    return;
  }
  if (isinf(v)) {
    kv_strcopy(num, PROM__NUM_MAX, v > 0 ? "+Inf" : "-Inf");
    return;
  }
  int prec = 0;
  do {
    prec++;
    snprintf(num, PROM__NUM_MAX, "%.*g", prec, v);
  } while (prec < 17 && strtod(num, NULL) != v);
  /* %g takes an exponent once it reaches the precision; print those below
   * 1e17 out in full, with as many digits as the exponent needs. */
  const char *e = strchr(num, 'e');
  int exp10 = e ? atoi(e + 1) : -1;
  if (exp10 >= 0 && exp10 < 17)
    snprintf(num, PROM__NUM_MAX, "%.*g", exp10 + 1, v);
}

/* Returns v * scale. When scale is the reciprocal of a whole number (1e-6)
 * it divides by that number instead, which is exact where the product is
 * not: 100 * 1e-6 is 9.999999999999999e-05, 100 / 1e6 is 0.0001. */
static double prom__scaled(uint64_t v, double scale) {
  if (scale > 0 && scale < 1) {
    double inv = 1.0 / scale;
    if (inv < 9007199254740992.0 && inv == (double)(uint64_t)inv)
      return (double)v / inv;
  }
  return (double)v * scale;
}

/* Writes one sample line: name suffix{labels,le="le"} value, where labels
 * (NULL or "") and le (NULL) may be absent. */
static void prom__sample(kvbuf *out, const char *name, const char *suffix,
                         const char *labels, const char *le,
                         const char *value) {
  bool has_labels = labels && *labels;
  assert(prom__name_ok(name, true));
  prom__puts(out, name);
  prom__puts(out, suffix);
  if (has_labels || le) {
    prom__puts(out, "{");
    if (has_labels)
      prom__puts(out, labels);
    if (le) {
      prom__puts(out, has_labels ? ",le=\"" : "le=\"");
      prom__puts(out, le);
      prom__puts(out, "\"");
    }
    prom__puts(out, "}");
  }
  prom__puts(out, " ");
  prom__puts(out, value);
  prom__puts(out, "\n");
}

void prom_family(kvbuf *out, const char *name, const char *type,
                 const char *help) {
  assert(prom__name_ok(name, true));
  assert(prom__type_ok(type));
  if (!help)
    help = "";
  prom__puts(out, "# HELP ");
  prom__puts(out, name);
  prom__puts(out, " ");
  if (kvbuf_reserve(out, prom__escaped_len(help, false)) == 0)
    out->len += prom__escape((char *)out->data + out->len, help, false);
  prom__puts(out, "\n# TYPE ");
  prom__puts(out, name);
  prom__puts(out, " ");
  prom__puts(out, type);
  prom__puts(out, "\n");
}

void prom_u64(kvbuf *out, const char *name, const char *labels, uint64_t v) {
  char num[PROM__NUM_MAX];
  snprintf(num, sizeof(num), "%" PRIu64, v);
  prom__sample(out, name, "", labels, NULL, num);
}

void prom_f64(kvbuf *out, const char *name, const char *labels, double v) {
  char num[PROM__NUM_MAX];
  prom__fmt_f64(num, v);
  prom__sample(out, name, "", labels, NULL, num);
}

int prom_label(char *buf, size_t cap, const char *key, const char *value) {
  assert(prom__name_ok(key, false));
  if (!value)
    value = "";
  size_t used = strnlen(buf, cap);
  size_t key_len = strlen(key);
  /* [,]key="value" */
  size_t need =
      (used ? 1 : 0) + key_len + 2 + prom__escaped_len(value, true) + 1;
  if (used >= cap || need >= cap - used) /* room for the NUL too */
    return -1;
  char *p = buf + used;
  if (used)
    *p++ = ',';
  memcpy(p, key, key_len);
  p += key_len;
  *p++ = '=';
  *p++ = '"';
  p += prom__escape(p, value, true);
  *p++ = '"';
  *p = '\0';
  return 0;
}

void prom_hist(kvbuf *out, const char *name, const char *labels,
               const kv_hist *h, const kv_hist_bounds *b) {
  assert(kv_hist_bounds_check(b));
  char le[PROM__NUM_MAX], num[PROM__NUM_MAX];
  uint64_t cumulative = 0;
  for (uint32_t i = 0; i <= b->n; i++) {
    cumulative += h->buckets[i];
    if (i < b->n)
      prom__fmt_f64(le, prom__scaled(b->le[i], b->scale));
    else
      kv_strcopy(le, sizeof(le), "+Inf");
    snprintf(num, sizeof(num), "%" PRIu64, cumulative);
    prom__sample(out, name, "_bucket", labels, le, num);
  }
  /* The +Inf bucket and _count must agree; they do when every sample went
   * through kv_hist_add. */
  assert(cumulative == h->count);
  prom__fmt_f64(num, prom__scaled(h->sum, b->scale));
  prom__sample(out, name, "_sum", labels, NULL, num);
  snprintf(num, sizeof(num), "%" PRIu64, cumulative);
  prom__sample(out, name, "_count", labels, NULL, num);
}
