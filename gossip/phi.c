/*
 * phi.c: the phi-accrual failure detector of one member. See phi.h.
 * Depends on libm only.
 */
#include "phi.h"

#include <math.h>
#include <string.h>

/* Recomputes the mean and deviation the detector uses from the window. */
static void phi__refresh(gossip_phi *d) {
  double mean, std;
  if (d->count < GOSSIP_PHI_MIN_SAMPLES) {
    /* The first estimate: heartbeats at the configured interval. */
    mean = d->interval_ms;
    std = d->interval_ms / 4.0;
  } else {
    double sum = 0, sq = 0;
    for (uint32_t i = 0; i < d->count; i++)
      sum += d->samples_ms[i];
    mean = sum / d->count;
    for (uint32_t i = 0; i < d->count; i++) {
      double x = d->samples_ms[i] - mean;
      sq += x * x;
    }
    std = sqrt(sq / d->count);
  }
  if (std < d->min_std_ms)
    std = d->min_std_ms;
  d->mean_ms = mean;
  d->std_ms = std;
}

void gossip_phi_init(gossip_phi *d, uint32_t interval_ms,
                     uint32_t min_std_ms) {
  memset(d, 0, sizeof(*d));
  d->interval_ms = interval_ms ? interval_ms : 1;
  d->min_std_ms = min_std_ms ? min_std_ms : 1;
  phi__refresh(d);
}

void gossip_phi_heartbeat(gossip_phi *d, uint64_t now_ms) {
  if (d->have_last && now_ms >= d->last_ms) {
    uint64_t gap = now_ms - d->last_ms;
    if (gap <= (uint64_t)d->interval_ms * GOSSIP_PHI_GAP_MAX_INTERVALS) {
      d->samples_ms[d->next] = (uint32_t)gap;
      d->next = (d->next + 1) % GOSSIP_PHI_WINDOW;
      if (d->count < GOSSIP_PHI_WINDOW)
        d->count++;
      phi__refresh(d);
    }
  }
  if (!d->have_last || now_ms >= d->last_ms)
    d->last_ms = now_ms;
  d->have_last = true;
}

void gossip_phi_stats(const gossip_phi *d, double *mean_ms, double *std_ms) {
  *mean_ms = d->mean_ms;
  *std_ms = d->std_ms;
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
