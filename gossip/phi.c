/*
 * phi.c: the phi-accrual failure detector of one member. See phi.h.
 * Depends on libm only.
 */
#include "phi.h"

#include <math.h>
#include <string.h>

void gossip_phi_init(gossip_phi *d, uint32_t interval_ms,
                     uint32_t min_std_ms) {
  memset(d, 0, sizeof(*d));
  d->interval_ms = interval_ms ? interval_ms : 1;
  d->min_std_ms = min_std_ms ? min_std_ms : 1;
  d->first_ms = d->interval_ms;
  d->mean_ms = (float)d->interval_ms;
  double std = d->interval_ms / 4.0;
  d->var_ms = (float)(std * std);
}

void gossip_phi_evidence(gossip_phi *d, uint64_t now_ms, uint64_t alive_at_ms) {
  if (alive_at_ms > now_ms)
    alive_at_ms = now_ms;
  if (d->have_last && alive_at_ms <= d->last_ms)
    return; /* nothing newer */
  if (!d->have_last) {
    /* The first estimate: heartbeats at the configured interval, news as
     * old as the first was. */
    uint64_t first = d->interval_ms + (now_ms - alive_at_ms);
    d->first_ms = first < UINT32_MAX ? (uint32_t)first : UINT32_MAX;
    d->mean_ms = (float)d->first_ms;
  } else {
    uint64_t gap = now_ms - d->last_ms;
    if (gap <= (uint64_t)d->interval_ms * GOSSIP_PHI_GAP_MAX_INTERVALS) {
      /* Weighted mean and variance, updated in place (West, 1979). */
      double w = d->count + 2.0 < GOSSIP_PHI_WINDOW ? 1.0 / (d->count + 2.0)
                                                    : 1.0 / GOSSIP_PHI_WINDOW;
      double diff = (double)gap - d->mean_ms;
      double incr = diff * w;
      d->mean_ms = (float)(d->mean_ms + incr);
      d->var_ms = (float)((1.0 - w) * (d->var_ms + diff * incr));
      if (d->count < UINT16_MAX)
        d->count++;
    }
  }
  d->last_ms = alive_at_ms;
  d->have_last = true;
}

void gossip_phi_heartbeat(gossip_phi *d, uint64_t now_ms) {
  gossip_phi_evidence(d, now_ms, now_ms);
}

void gossip_phi_stats(const gossip_phi *d, double *mean_ms, double *std_ms) {
  double std = sqrtf(d->var_ms > 0 ? d->var_ms : 0);
  *mean_ms = d->count < GOSSIP_PHI_TRUSTED_SAMPLES && d->mean_ms < d->first_ms
                 ? d->first_ms
                 : d->mean_ms;
  *std_ms = std < d->min_std_ms ? d->min_std_ms : std;
}

double gossip_phi_value(const gossip_phi *d, uint64_t now_ms) {
  if (!d->have_last)
    return 0.0;
  double mean, std;
  gossip_phi_stats(d, &mean, &std);
  double t = now_ms > d->last_ms ? (double)(now_ms - d->last_ms) : 0.0;
  double y = (t - mean) / std;
  /* P(later than t) ~= 1 / (1 + exp(a)) (logistic approximation of the
   * normal tail); phi = log10(1 + exp(a)), computed without overflow. */
  double a = y * (1.5976 + 0.070566 * y * y);
  double ln_phi = a > 0 ? a + log1p(exp(-a)) : log1p(exp(a));
  return ln_phi / log(10.0);
}

/* The model's exponent a(y) = y (1.5976 + 0.070566 y^2) grows strictly, and
 * phi = log10(1 + e^a), so phi reaches p where a = ln(10^p - 1): Newton on
 * the cubic, from the linear term's root. */
double gossip_phi_y(double phi) {
  double target = log(expm1(phi * log(10.0)));
  double y = target / 1.5976;
  for (int i = 0; i < 100; i++) {
    double f = y * (1.5976 + 0.070566 * y * y) - target;
    double df = 1.5976 + 3 * 0.070566 * y * y;
    double step = f / df;
    y -= step;
    if (fabs(step) < 1e-12 * (1 + fabs(y)))
      break;
  }
  return y;
}

uint64_t gossip_phi_deadline(const gossip_phi *d, double y) {
  if (!d->have_last)
    return UINT64_MAX;
  double mean, std;
  gossip_phi_stats(d, &mean, &std);
  double t = mean + y * std;
  if (t < 0)
    t = 0;
  return d->last_ms + (uint64_t)ceil(t);
}
