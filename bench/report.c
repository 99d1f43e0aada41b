/*
 * report.c: the three outputs of a run: a summary for a person on stdout,
 * every figure as JSON (--json), and one self-contained HTML page whose
 * charts are inline SVG (--report): no scripts, no fonts, no network.
 * Depends on bench.h, hdr.h and libc.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "kv_err.h"

#define REPORT_W 760 /* chart size in SVG units */
#define REPORT_H 300
#define REPORT_ML 70 /* margins: left, right, top, bottom */
#define REPORT_MR 150
#define REPORT_MT 30
#define REPORT_MB 45
#define REPORT_TICKS 5
#define REPORT_SPECTRUM_POINTS 51 /* percentile spectrum: 0 .. 99.999 */
#define REPORT_SPECTRUM_DECADES 5.0
#define REPORT_SPECTRUM_LINES_MAX 16 /* lines of one percentile chart */

/* The percentiles drawn over time, as kept in bench_point. */
static const char *const report__pct_names[] = {"p50", "p90", "p99", "p999"};
#define REPORT_NPCTS (sizeof report__pct_names / sizeof report__pct_names[0])

static const char *report__dist(gen_dist d) {
  return d == GEN_UNIFORM ? "uniform" : d == GEN_LATEST ? "latest" : "zipfian";
}

/* Writes s as a JSON string (quotes included). */
static void report__jstr(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      fprintf(f, "\\%c", ch);
    else if (ch < 0x20)
      fprintf(f, "\\u%04x", ch);
    else
      fputc(ch, f);
  }
  fputc('"', f);
}

/* Writes s with HTML's special characters escaped. */
static void report__hstr(FILE *f, const char *s) {
  for (; *s; s++) {
    switch (*s) {
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '&': fputs("&amp;", f); break;
    case '"': fputs("&quot;", f); break;
    default: fputc(*s, f);
    }
  }
}

/* Microseconds of cpu_s per completed operation. */
static double report__per_op(const bench_stats *s, double cpu_s) {
  return s->ops ? cpu_s * 1e6 / (double)s->ops : 0.0;
}

/* ---- text ---- */

static void report__text_phase(FILE *f, const char *title,
                               const bench_stats *s) {
  fprintf(f, "%s: %llu ops in %.2f s = %.0f ops/s, errors %llu", title,
          (unsigned long long)s->ops, s->elapsed_s, s->throughput_ops_s,
          (unsigned long long)s->errors);
  if (s->not_found)
    fprintf(f, ", reads not found %llu", (unsigned long long)s->not_found);
  fputc('\n', f);
  fprintf(f, "  bench cpu: user %.2f s, sys %.2f s (%.1f us per op)",
          s->cpu_user_s, s->cpu_sys_s,
          report__per_op(s, s->cpu_user_s + s->cpu_sys_s));
  if (s->server_cpu_s >= 0)
    fprintf(f, "; server cpu: %.2f s (%.1f us per op)", s->server_cpu_s,
            report__per_op(s, s->server_cpu_s));
  fputc('\n', f);
  fprintf(f, "  %-7s %10s %10s %10s %10s %10s %10s %10s\n", "op", "count",
          "mean_us", "p50_us", "p90_us", "p99_us", "p99.9_us", "max_us");
  for (int i = 0; i < GEN_OP_COUNT; i++) {
    const hdr_hist *h = s->op[i];
    if (!h->total)
      continue;
    fprintf(f, "  %-7s %10llu %10.0f %10llu %10llu %10llu %10llu %10llu\n",
            gen_op_name((gen_op)i), (unsigned long long)h->total, hdr_mean(h),
            (unsigned long long)hdr_percentile(h, 50),
            (unsigned long long)hdr_percentile(h, 90),
            (unsigned long long)hdr_percentile(h, 99),
            (unsigned long long)hdr_percentile(h, 99.9),
            (unsigned long long)h->max_us);
  }
  for (size_t i = 0; i < s->nkinds; i++)
    fprintf(f, "  error %-24s %llu\n", s->kinds[i].name,
            (unsigned long long)s->kinds[i].count);
  if (s->kinds_dropped)
    fprintf(f, "  error %-24s %llu\n", "(other kinds)",
            (unsigned long long)s->kinds_dropped);
}

static void report__config_line(FILE *f, const bench_opts *o) {
  fprintf(f,
          "kvorum-bench: %s to %s, workload %s (reads %.0f%%), %s over %llu "
          "keys, values %u-%u B, %u in flight over %u connections, ",
          o->proto == BENCH_RESP ? "resp" : "native", o->hosts_str,
          o->workload, o->mix.read_frac * 100, report__dist(o->dist),
          (unsigned long long)o->keys, o->value_min, o->value_max,
          o->concurrency, o->connections);
  if (o->rate > 0)
    fprintf(f, "open loop at %.0f ops/s", o->rate);
  else
    fprintf(f, "closed loop");
  fprintf(f, ", seed %llu\n", (unsigned long long)o->seed);
}

void bench_report_text(FILE *f, const bench_opts *o, const bench_stats *load,
                       const bench_stats *run) {
  report__config_line(f, o);
  if (load)
    report__text_phase(f, "load", load);
  report__text_phase(f, "run", run);
  for (size_t g = 0; g < run->nregions && g < o->nregions; g++) {
    fprintf(f, "region %s (%s): %llu ops, errors %llu\n", o->regions[g].name,
            o->regions[g].hosts, (unsigned long long)run->region_ops[g],
            (unsigned long long)run->region_errors[g]);
    for (int i = 0; i < GEN_OP_COUNT; i++) {
      const hdr_hist *h = run->region_op[g][i];
      if (!h->total)
        continue;
      fprintf(f, "  %-7s %10llu %10.0f %10llu %10llu %10llu %10llu %10llu\n",
              gen_op_name((gen_op)i), (unsigned long long)h->total,
              hdr_mean(h), (unsigned long long)hdr_percentile(h, 50),
              (unsigned long long)hdr_percentile(h, 90),
              (unsigned long long)hdr_percentile(h, 99),
              (unsigned long long)hdr_percentile(h, 99.9),
              (unsigned long long)h->max_us);
    }
  }
}

/* ---- JSON ---- */

static void report__json_hist(FILE *f, const hdr_hist *h) {
  fprintf(f,
          "{\"count\": %llu, \"mean_us\": %.1f, \"min_us\": %llu, "
          "\"p50_us\": %llu, \"p90_us\": %llu, \"p99_us\": %llu, "
          "\"p999_us\": %llu, \"max_us\": %llu}",
          (unsigned long long)h->total, hdr_mean(h),
          (unsigned long long)(h->total ? h->min_us : 0),
          (unsigned long long)hdr_percentile(h, 50),
          (unsigned long long)hdr_percentile(h, 90),
          (unsigned long long)hdr_percentile(h, 99),
          (unsigned long long)hdr_percentile(h, 99.9),
          (unsigned long long)h->max_us);
}

static void report__json_regions(FILE *f, const bench_opts *o,
                                 const bench_stats *s, bool load);

static void report__json_phase(FILE *f, const bench_opts *o,
                               const bench_stats *s, bool load) {
  fprintf(f,
          "\"throughput_ops_s\": %.1f, \"elapsed_s\": %.3f, "
          "\"ops_total\": %llu, \"errors\": %llu, \"not_found\": %llu,\n",
          s->throughput_ops_s, s->elapsed_s, (unsigned long long)s->ops,
          (unsigned long long)s->errors, (unsigned long long)s->not_found);
  fprintf(f,
          "  \"bench_cpu\": {\"user_s\": %.3f, \"sys_s\": %.3f, "
          "\"us_per_op\": %.2f},\n",
          s->cpu_user_s, s->cpu_sys_s,
          report__per_op(s, s->cpu_user_s + s->cpu_sys_s));
  if (s->server_cpu_s >= 0)
    fprintf(f, "  \"server_cpu\": {\"s\": %.3f, \"us_per_op\": %.2f},\n",
            s->server_cpu_s, report__per_op(s, s->server_cpu_s));
  else
    fputs("  \"server_cpu\": null,\n", f);
  fputs("  \"errors_by_kind\": {", f);
  for (size_t i = 0; i < s->nkinds; i++) {
    fputs(i ? ", " : "", f);
    report__jstr(f, s->kinds[i].name);
    fprintf(f, ": %llu", (unsigned long long)s->kinds[i].count);
  }
  if (s->kinds_dropped)
    fprintf(f, "%s\"other\": %llu", s->nkinds ? ", " : "",
            (unsigned long long)s->kinds_dropped);
  fputs("},\n  \"all\": ", f);
  report__json_hist(f, s->all);
  fputs(",\n  \"ops\": {", f);
  bool first = true;
  for (int i = 0; i < GEN_OP_COUNT; i++) {
    /* The run always names read and update; other ops when they ran. */
    bool always = !load && (i == GEN_OP_READ || i == GEN_OP_UPDATE);
    if (!always && !s->op[i]->total)
      continue;
    fprintf(f, "%s\n    \"%s\": ", first ? "" : ",", gen_op_name((gen_op)i));
    report__json_hist(f, s->op[i]);
    first = false;
  }
  fputs("},\n  \"series\": [", f);
  for (size_t i = 0; i < s->nseries; i++) {
    const bench_point *p = &s->series[i];
    fprintf(f,
            "%s\n    {\"t_s\": %.3f, \"ops\": %llu, \"errors\": %llu, "
            "\"p50_us\": %llu, \"p90_us\": %llu, \"p99_us\": %llu, "
            "\"p999_us\": %llu, \"max_us\": %llu}",
            i ? "," : "", p->t_s, (unsigned long long)p->ops,
            (unsigned long long)p->errors, (unsigned long long)p->p50_us,
            (unsigned long long)p->p90_us, (unsigned long long)p->p99_us,
            (unsigned long long)p->p999_us, (unsigned long long)p->max_us);
  }
  fputs("]", f);
  report__json_regions(f, o, s, load);
}

/* "regions": per --regions group, its hosts, counts and latency per op
 * (the shape of the phase's own "all" and "ops"). Nothing without
 * --regions. */
static void report__json_regions(FILE *f, const bench_opts *o,
                                 const bench_stats *s, bool load) {
  if (!s->nregions || s->nregions > o->nregions)
    return;
  fputs(",\n  \"regions\": {", f);
  for (size_t g = 0; g < s->nregions; g++) {
    fputs(g ? ",\n    " : "\n    ", f);
    report__jstr(f, o->regions[g].name);
    fputs(": {\"hosts\": ", f);
    report__jstr(f, o->regions[g].hosts);
    fprintf(f, ", \"ops_total\": %llu, \"errors\": %llu, \"all\": ",
            (unsigned long long)s->region_ops[g],
            (unsigned long long)s->region_errors[g]);
    report__json_hist(f, s->region_all[g]);
    fputs(", \"ops\": {", f);
    bool first = true;
    for (int i = 0; i < GEN_OP_COUNT; i++) {
      bool always = !load && (i == GEN_OP_READ || i == GEN_OP_UPDATE);
      if (!always && !s->region_op[g][i]->total)
        continue;
      fprintf(f, "%s\n      \"%s\": ", first ? "" : ",",
              gen_op_name((gen_op)i));
      report__json_hist(f, s->region_op[g][i]);
      first = false;
    }
    fputs("}}", f);
  }
  fputs("}", f);
}

int bench_report_json(FILE *f, const bench_opts *o, const bench_stats *load,
                      const bench_stats *run) {
  char r[16], w[16], dw[16];
  fputs("{\n  \"tool\": \"kvorum-bench\",\n  \"config\": {\"protocol\": ", f);
  report__jstr(f, o->proto == BENCH_RESP ? "resp" : "native");
  fputs(", \"hosts\": ", f);
  report__jstr(f, o->hosts_str);
  fputs(", \"workload\": ", f);
  report__jstr(f, o->workload);
  fprintf(f,
          ", \"read_fraction\": %.4f, \"distribution\": \"%s\", "
          "\"keys\": %llu, \"value_min\": %u, \"value_max\": %u, "
          "\"concurrency\": %u, \"connections\": %u, \"duration_s\": %.3f, "
          "\"ops\": %llu, \"warmup_s\": %.3f, \"rate\": %.1f, "
          "\"r\": \"%s\", \"w\": \"%s\", \"dw\": \"%s\", \"load\": %s, "
          "\"seed\": %llu",
          o->mix.read_frac, report__dist(o->dist),
          (unsigned long long)o->keys, o->value_min, o->value_max,
          o->concurrency, o->connections, o->duration_s,
          (unsigned long long)o->ops, o->warmup_s, o->rate,
          bench_level_str(o->r, r, sizeof r),
          bench_level_str(o->w, w, sizeof w),
          bench_level_str(o->dw, dw, sizeof dw), o->load ? "true" : "false",
          (unsigned long long)o->seed);
  if (o->region[0]) {
    /* Only with --region, so other runs keep their shape. */
    fputs(", \"region\": ", f);
    report__jstr(f, o->region);
  }
  fputs("},\n  ", f);
  report__json_phase(f, o, run, false);
  if (load) {
    fputs(",\n  \"load\": {", f);
    report__json_phase(f, o, load, true);
    fputs("}", f);
  }
  fputs("\n}\n", f);
  return ferror(f) ? KV_EIO : 0;
}

/* ---- HTML with inline SVG ---- */

typedef struct report__line {
  const char *name, *color;
  const double *x, *y;
  size_t n;
} report__line;

static const char *const report__colors[] = {"#1f77b4", "#d62728", "#2ca02c",
                                             "#9467bd", "#ff7f0e", "#8c564b"};
#define REPORT_NCOLORS (sizeof report__colors / sizeof report__colors[0])

/* A "nice" step (1, 2 or 5 times a power of ten) near span/ticks. */
static double report__step(double span) {
  double raw = span / REPORT_TICKS;
  double p = pow(10, floor(log10(raw)));
  double m = raw / p;
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static void report__num(char *buf, size_t len, double v) {
  if (fabs(v) >= 1e6)
    snprintf(buf, len, "%.3gM", v / 1e6);
  else if (fabs(v) >= 1e4)
    snprintf(buf, len, "%.3gk", v / 1e3);
  else
    snprintf(buf, len, "%.4g", v);
}

/* Draws one line chart. xpct: x is a percentile spectrum coordinate
 * (log10 of 1/(1-p)); logy: the y axis is logarithmic. */
static void report__chart(FILE *f, const char *title, const char *xlabel,
                          const char *ylabel, const report__line *lines,
                          size_t nlines, bool logy, bool xpct) {
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (size_t l = 0; l < nlines; l++) {
    for (size_t i = 0; i < lines[l].n; i++) {
      double x = lines[l].x[i], y = lines[l].y[i];
      if (logy && y < 1)
        y = 1;
      x0 = fmin(x0, x);
      x1 = fmax(x1, x);
      y0 = fmin(y0, y);
      y1 = fmax(y1, y);
    }
  }
  fprintf(f, "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" "
             "viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
             "font-family=\"sans-serif\" font-size=\"11\">\n",
          REPORT_W, REPORT_H, REPORT_W, REPORT_H);
  fprintf(f, "<text x=\"%d\" y=\"18\" font-size=\"14\" font-weight=\"bold\">",
          REPORT_ML);
  report__hstr(f, title);
  fputs("</text>\n", f);
  const double pw = REPORT_W - REPORT_ML - REPORT_MR;
  const double ph = REPORT_H - REPORT_MT - REPORT_MB;
  if (!isfinite(x0)) {
    fprintf(f, "<text x=\"%d\" y=\"%d\">no data</text></svg></figure>\n",
            REPORT_ML, REPORT_H / 2);
    return;
  }
  if (x1 <= x0)
    x1 = x0 + 1;
  if (logy) {
    y0 = pow(10, floor(log10(y0)));
    y1 = pow(10, ceil(log10(y1)));
    if (y1 <= y0)
      y1 = y0 * 10;
  } else {
    y0 = 0;
    if (y1 <= 0)
      y1 = 1;
    double st = report__step(y1);
    y1 = ceil(y1 / st) * st;
  }
#define REPORT_PX(x) (REPORT_ML + ((x) - x0) / (x1 - x0) * pw)
#define REPORT_PY(y)                                                           \
  (REPORT_MT + ph -                                                            \
   (logy ? (log10(fmax((y), 1)) - log10(y0)) / (log10(y1) - log10(y0))        \
         : ((y) - y0) / (y1 - y0)) *                                           \
       ph)
  fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" "
             "fill=\"none\" stroke=\"#999\"/>\n",
          REPORT_ML, REPORT_MT, pw, ph);
  char buf[32];
  /* Y grid and labels. */
  if (logy) {
    for (double y = y0; y <= y1 * 1.001; y *= 10) {
      double py = REPORT_PY(y);
      report__num(buf, sizeof buf, y);
      fprintf(f, "<line x1=\"%d\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" "
                 "stroke=\"#ddd\"/><text x=\"%d\" y=\"%.1f\" "
                 "text-anchor=\"end\">%s</text>\n",
              REPORT_ML, REPORT_ML + pw, py, py, REPORT_ML - 4, py + 4, buf);
    }
  } else {
    double st = report__step(y1 - y0);
    for (double y = y0; y <= y1 + st / 2; y += st) {
      double py = REPORT_PY(y);
      report__num(buf, sizeof buf, y);
      fprintf(f, "<line x1=\"%d\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" "
                 "stroke=\"#ddd\"/><text x=\"%d\" y=\"%.1f\" "
                 "text-anchor=\"end\">%s</text>\n",
              REPORT_ML, REPORT_ML + pw, py, py, REPORT_ML - 4, py + 4, buf);
    }
  }
  /* X labels. */
  if (xpct) {
    for (int d = 0; d <= (int)ceil(x1); d++) {
      double px = REPORT_PX((double)d);
      if (px > REPORT_ML + pw + 1)
        break;
      double pct = 100.0 * (1 - pow(10, -d));
      snprintf(buf, sizeof buf, "%.*f%%", d > 2 ? d - 2 : 0, pct);
      fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%.0f\" "
                 "stroke=\"#eee\"/><text x=\"%.1f\" y=\"%.0f\" "
                 "text-anchor=\"middle\">%s</text>\n",
              px, px, REPORT_MT, REPORT_MT + ph, px, REPORT_MT + ph + 14, buf);
    }
  } else {
    double st = report__step(x1 - x0);
    for (double x = ceil(x0 / st) * st; x <= x1 + st / 1000; x += st) {
      double px = REPORT_PX(x);
      report__num(buf, sizeof buf, x);
      fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%s"
                 "</text>\n",
              px, REPORT_MT + ph + 14, buf);
    }
  }
  fprintf(f, "<text x=\"%.0f\" y=\"%d\" text-anchor=\"middle\">", 
          REPORT_ML + pw / 2, REPORT_H - 8);
  report__hstr(f, xlabel);
  fprintf(f, "</text>\n<text x=\"14\" y=\"%.0f\" text-anchor=\"middle\" "
             "transform=\"rotate(-90 14 %.0f)\">",
          REPORT_MT + ph / 2, REPORT_MT + ph / 2);
  report__hstr(f, ylabel);
  fputs("</text>\n", f);
  /* Lines and legend. */
  for (size_t l = 0; l < nlines; l++) {
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\" "
               "points=\"",
            lines[l].color);
    for (size_t i = 0; i < lines[l].n; i++)
      fprintf(f, "%s%.1f,%.1f", i ? " " : "", REPORT_PX(lines[l].x[i]),
              REPORT_PY(lines[l].y[i]));
    fputs("\"/>\n", f);
    if (lines[l].n == 1)
      fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n",
              REPORT_PX(lines[l].x[0]), REPORT_PY(lines[l].y[0]),
              lines[l].color);
    double ly = REPORT_MT + 10 + 16 * (double)l;
    fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"12\" height=\"3\" "
               "fill=\"%s\"/><text x=\"%.0f\" y=\"%.0f\">",
            REPORT_ML + pw + 10, ly - 4, lines[l].color, REPORT_ML + pw + 26,
            ly);
    report__hstr(f, lines[l].name);
    fputs("</text>\n", f);
  }
#undef REPORT_PX
#undef REPORT_PY
  fputs("</svg></figure>\n", f);
}

/* Throughput and latency-over-time charts of one phase. */
static int report__phase_charts(FILE *f, const char *what,
                                const bench_stats *s) {
  size_t n = s->nseries;
  double *buf = malloc((n ? n : 1) * sizeof(double) * (2 + REPORT_NPCTS + 1));
  if (!buf)
    return KV_ENOMEM;
  double *t = buf, *tput = buf + n, *pc[REPORT_NPCTS + 1];
  for (size_t k = 0; k <= REPORT_NPCTS; k++)
    pc[k] = buf + n * (2 + k);
  double prev = 0;
  for (size_t i = 0; i < n; i++) {
    const bench_point *p = &s->series[i];
    double len = p->t_s - prev;
    prev = p->t_s;
    t[i] = p->t_s;
    tput[i] = len > 0 ? (double)p->ops / len : 0;
    pc[0][i] = (double)p->p50_us;
    pc[1][i] = (double)p->p90_us;
    pc[2][i] = (double)p->p99_us;
    pc[3][i] = (double)p->p999_us;
    pc[4][i] = (double)p->max_us;
  }
  char title[96];
  report__line tl = {"ops/s", report__colors[0], t, tput, n};
  snprintf(title, sizeof title, "%s: throughput over time", what);
  report__chart(f, title, "seconds", "operations per second", &tl, 1, false,
                false);
  report__line ll[REPORT_NPCTS + 1];
  for (size_t k = 0; k <= REPORT_NPCTS; k++) {
    ll[k] = (report__line){k < REPORT_NPCTS ? report__pct_names[k] : "max",
                           report__colors[(k + 1) % REPORT_NCOLORS], t, pc[k],
                           n};
  }
  snprintf(title, sizeof title, "%s: latency percentiles over time", what);
  report__chart(f, title, "seconds", "latency (us, log scale)", ll,
                REPORT_NPCTS + 1, true, false);
  free(buf);
  return 0;
}

/* The percentile spectrum of every op that ran. */
/* A latency-by-percentile chart, one line per non-empty histogram. */
static void report__spectrum_of(FILE *f, const char *title,
                                const char *const *names,
                                const hdr_hist *const *hists, size_t n) {
  double x[REPORT_SPECTRUM_POINTS];
  double ys[REPORT_SPECTRUM_LINES_MAX][REPORT_SPECTRUM_POINTS];
  report__line lines[REPORT_SPECTRUM_LINES_MAX];
  size_t nl = 0;
  for (int k = 0; k < REPORT_SPECTRUM_POINTS; k++)
    x[k] = REPORT_SPECTRUM_DECADES * k / (REPORT_SPECTRUM_POINTS - 1);
  for (size_t i = 0; i < n && nl < REPORT_SPECTRUM_LINES_MAX; i++) {
    const hdr_hist *h = hists[i];
    if (!h || !h->total)
      continue;
    for (int k = 0; k < REPORT_SPECTRUM_POINTS; k++)
      ys[nl][k] = (double)hdr_percentile(h, 100.0 * (1 - pow(10, -x[k])));
    lines[nl] = (report__line){names[i], report__colors[nl % REPORT_NCOLORS],
                               x, ys[nl], REPORT_SPECTRUM_POINTS};
    nl++;
  }
  report__chart(f, title, "percentile", "latency (us, log scale)", lines, nl,
                true, true);
}

static int report__spectrum(FILE *f, const char *what, const bench_stats *s) {
  const char *names[GEN_OP_COUNT];
  const hdr_hist *hists[GEN_OP_COUNT];
  for (int i = 0; i < GEN_OP_COUNT; i++) {
    names[i] = gen_op_name((gen_op)i);
    hists[i] = s->op[i];
  }
  char title[96];
  snprintf(title, sizeof title, "%s: latency distribution by percentile",
           what);
  report__spectrum_of(f, title, names, hists, GEN_OP_COUNT);
  return 0;
}

/* Rows of count, mean and percentiles, one per non-empty histogram. */
static void report__html_rows(FILE *f, const hdr_hist *const *ops) {
  fputs("<table><tr><th>op</th><th>count</th><th>mean us</th><th>p50 us</th>"
        "<th>p90 us</th><th>p99 us</th><th>p99.9 us</th><th>max us</th>"
        "</tr>\n",
        f);
  for (int i = 0; i < GEN_OP_COUNT; i++) {
    const hdr_hist *h = ops[i];
    if (!h || !h->total)
      continue;
    fprintf(f,
            "<tr><td>%s</td><td>%llu</td><td>%.0f</td><td>%llu</td>"
            "<td>%llu</td><td>%llu</td><td>%llu</td><td>%llu</td></tr>\n",
            gen_op_name((gen_op)i), (unsigned long long)h->total, hdr_mean(h),
            (unsigned long long)hdr_percentile(h, 50),
            (unsigned long long)hdr_percentile(h, 90),
            (unsigned long long)hdr_percentile(h, 99),
            (unsigned long long)hdr_percentile(h, 99.9),
            (unsigned long long)h->max_us);
  }
  fputs("</table>\n", f);
}

/* With --regions: each group's table, and their latency side by side. */
static void report__html_regions(FILE *f, const bench_opts *o,
                                 const bench_stats *s) {
  if (!s->nregions || s->nregions > o->nregions)
    return;
  fputs("<h2>Regions</h2>\n", f);
  const char *names[BENCH_REGIONS_MAX];
  const hdr_hist *hists[BENCH_REGIONS_MAX];
  for (size_t g = 0; g < s->nregions; g++) {
    fputs("<h3>", f);
    report__hstr(f, o->regions[g].name);
    fputs(" (", f);
    report__hstr(f, o->regions[g].hosts);
    fprintf(f, ")</h3>\n<p>%llu ops, errors %llu</p>\n",
            (unsigned long long)s->region_ops[g],
            (unsigned long long)s->region_errors[g]);
    report__html_rows(f, (const hdr_hist *const *)s->region_op[g]);
    names[g] = o->regions[g].name;
    hists[g] = s->region_all[g];
  }
  report__spectrum_of(f, "run: latency by region (all operations)", names,
                      hists, s->nregions);
}

static void report__html_table(FILE *f, const bench_stats *s) {
  fprintf(f,
          "<p>%llu ops in %.2f s: <b>%.0f ops/s</b>, errors %llu, reads not "
          "found %llu. CPU per op: bench %.1f us",
          (unsigned long long)s->ops, s->elapsed_s, s->throughput_ops_s,
          (unsigned long long)s->errors, (unsigned long long)s->not_found,
          report__per_op(s, s->cpu_user_s + s->cpu_sys_s));
  if (s->server_cpu_s >= 0)
    fprintf(f, ", servers %.1f us", report__per_op(s, s->server_cpu_s));
  fputs(".</p>\n", f);
  report__html_rows(f, (const hdr_hist *const *)s->op);
  if (s->nkinds) {
    fputs("<table><tr><th>error</th><th>count</th></tr>\n", f);
    for (size_t i = 0; i < s->nkinds; i++) {
      fputs("<tr><td>", f);
      report__hstr(f, s->kinds[i].name);
      fprintf(f, "</td><td>%llu</td></tr>\n",
              (unsigned long long)s->kinds[i].count);
    }
    fputs("</table>\n", f);
  }
}

int bench_report_html(FILE *f, const bench_opts *o, const bench_stats *load,
                      const bench_stats *run) {
  fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        "<title>kvorum-bench report</title>\n<style>body{font-family:"
        "sans-serif;margin:2em;max-width:900px}table{border-collapse:"
        "collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;"
        "text-align:right}figure{margin:1em 0}pre{white-space:pre-wrap}"
        "</style></head><body>\n<h1>kvorum-bench report</h1>\n<pre>",
        f);
  char line[2048];
  FILE *mf = fmemopen(line, sizeof line, "w");
  if (mf) {
    report__config_line(mf, o);
    fclose(mf);
    line[sizeof line - 1] = '\0';
    report__hstr(f, line);
  }
  fputs("</pre>\n<h2>Run</h2>\n", f);
  report__html_table(f, run);
  int rc = report__phase_charts(f, "run", run);
  if (rc == 0)
    rc = report__spectrum(f, "run", run);
  if (rc == 0)
    report__html_regions(f, o, run);
  if (rc == 0 && load) {
    fputs("<h2>Load</h2>\n", f);
    report__html_table(f, load);
    rc = report__phase_charts(f, "load", load);
  }
  fputs("<p>Latency is measured from the intended start of each operation "
        "(open loop with --rate) or from when it was sent (closed loop). "
        "Percentiles come from a log-linear histogram with 3 significant "
        "digits.</p>\n</body></html>\n",
        f);
  if (rc == 0 && ferror(f))
    rc = KV_EIO;
  return rc;
}
