/*
 * prom.h: a writer of the Prometheus text exposition format, version 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/), what a
 * /metrics endpoint answers with Content-Type
 * "text/plain; version=0.0.4; charset=utf-8".
 *
 * The output is a sequence of families: prom_family's "# HELP" and
 * "# TYPE" lines, then that family's samples, one line each
 * ("name{labels} value\n"). The writer keeps no state; the caller writes
 * each family's samples right after its prom_family, and writes a family
 * name once per exposition.
 *
 * Escaping, as the format defines it: HELP text escapes backslash and
 * newline (\\ and \n); label values escape those and the double quote (\").
 * Names (metric and label) are not escaped: they must match
 * [a-zA-Z_:][a-zA-Z0-9_:]* (label names without ':'), which is asserted.
 * Text is written as given; the format wants UTF-8.
 *
 * The writers return nothing: when memory runs out, out->oom is set and
 * the rest is dropped (mp.h), so check out->oom once at the end. Numbers
 * are formatted with snprintf and read back with strtod, which assumes the
 * C locale (kvorum never calls setlocale).
 *
 * Depends on: mp.h (kvbuf), kv_hist.h.
 */
#ifndef KV_PROM_H
#define KV_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "kv_hist.h"
#include "mp.h"

/* Writes "# HELP name help" (help escaped; NULL reads as "") and
 * "# TYPE name type"; type is one of counter, gauge, histogram, summary,
 * untyped. */
void prom_family(kvbuf *out, const char *name, const char *type,
                 const char *help);

/* Writes one sample line: name{labels} value. labels: NULL or "" for none,
 * else a label list without braces as built by prom_label. */
void prom_u64(kvbuf *out, const char *name, const char *labels, uint64_t v);
/* As prom_u64, for a double: NaN, +Inf and -Inf as the format spells them,
 * otherwise the shortest %g form (at most 17 digits) that reads back as
 * exactly v. */
void prom_f64(kvbuf *out, const char *name, const char *labels, double v);

/* Appends key="value" to the label list in buf (cap bytes,
 * NUL-terminated), after a comma when buf is not empty; the value escaped
 * (NULL reads as ""). Returns 0, or -1 when it does not fit (buf is then
 * unchanged). */
int prom_label(char *buf, size_t cap, const char *key, const char *value);

/* Writes histogram h (kept with bounds b) as the samples of family name:
 * name_bucket{labels,le="..."} with the cumulative count for each bound
 * and for le="+Inf", then name_sum (h->sum * b->scale) and name_count.
 * Each le is b->le[i] * b->scale in the shortest form that reads back
 * exactly ("0.0001", "0.001", "1", "2.5", "64"). */
void prom_hist(kvbuf *out, const char *name, const char *labels,
               const kv_hist *h, const kv_hist_bounds *b);

#endif
