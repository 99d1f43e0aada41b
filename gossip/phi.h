/*
 * phi.h: the phi-accrual failure detector of one member (Hayashibara et
 * al., "The phi accrual failure detector", SRDS 2004), as used by Akka and
 * Cassandra. Internal to gossip/.
 *
 * The detector keeps a bounded window of the inter-arrival times of one
 * member's heartbeat increases and answers how suspicious the silence since
 * the last arrival is: phi = -log10(P(a heartbeat comes later than now)),
 * (with news relayed by other nodes, "arrival" is the time the news says
 * the member was alive, and a sample is the silence the news ended),
 * with the arrivals modelled as a normal distribution (the logistic
 * approximation of its tail that Akka uses). The standard deviation never
 * drops below a minimum, so a very regular member is not declared dead
 * after one late heartbeat; until enough samples are in, a first estimate
 * (mean = the heartbeat interval, plus the age of the first news when it
 * was relayed: the next news will be about as old) stands in for the
 * data. The window's sums
 * are kept as samples come and go, so an arrival costs O(1).
 *
 * Pure: no clock (times are passed in), no allocation.
 */
#ifndef KV_GOSSIP_PHI_H
#define KV_GOSSIP_PHI_H

#include <stdbool.h>
#include <stdint.h>

#define GOSSIP_PHI_WINDOW 64       /* inter-arrival samples kept */
#define GOSSIP_PHI_MIN_SAMPLES 3   /* below this the first estimate is used */
/* Below this the mean is at least the first estimate's. */
#define GOSSIP_PHI_TRUSTED_SAMPLES 16
/* Gaps longer than this many intervals are not samples (the member was
 * silent or down); the detector restarts from the new arrival. */
#define GOSSIP_PHI_GAP_MAX_INTERVALS 10

typedef struct gossip_phi {
  uint32_t samples_ms[GOSSIP_PHI_WINDOW]; /* ring buffer */
  uint32_t count;                         /* samples in the window */
  uint32_t next;                          /* where the next one goes */
  uint64_t last_ms;                       /* last arrival */
  bool have_last;
  uint32_t interval_ms; /* expected heartbeat interval: first estimate */
  uint32_t first_age_ms; /* how old the first news was: first estimate too */
  uint32_t min_std_ms;  /* floor of the standard deviation */
  uint64_t sum_ms, sumsq_ms; /* of the samples in the window */
  double mean_ms, std_ms; /* of the window, refreshed on every arrival */
} gossip_phi;

/* Initialises a detector for a member heartbeating every interval_ms, with
 * the standard deviation never below min_std_ms. */
void gossip_phi_init(gossip_phi *d, uint32_t interval_ms, uint32_t min_std_ms);
/* Records a heartbeat increase seen at now_ms. The first call only starts
 * the clock; later ones add a sample unless the gap is implausibly long. */
void gossip_phi_heartbeat(gossip_phi *d, uint64_t now_ms);
/* Records, at now_ms, news that the member was alive at alive_at_ms (<=
 * now_ms; news relayed by others is older than it arrives). The sample is
 * the silence the news ends (now_ms minus the previous alive_at_ms), and
 * the silence phi measures from then on starts at alive_at_ms. News no
 * newer than what the detector has is ignored. gossip_phi_heartbeat is
 * this with alive_at_ms = now_ms. */
void gossip_phi_evidence(gossip_phi *d, uint64_t now_ms, uint64_t alive_at_ms);
/* Returns phi at now_ms (0 when nothing has arrived yet; finite, >= 0). */
double gossip_phi_value(const gossip_phi *d, uint64_t now_ms);
/* Mean and standard deviation (after the floor) the detector uses now. */
void gossip_phi_stats(const gossip_phi *d, double *mean_ms, double *std_ms);

/*
 * Deadlines: phi grows with the silence since the last arrival, so "phi <
 * threshold" is "now < a deadline" that only moves at an arrival. Gossip
 * keeps the deadline of every member and compares times instead of
 * evaluating phi (a log and an exp) for every member on every check.
 *
 * gossip_phi_y returns y such that phi(mean + y * std) == phi (> 0), the
 * inverse of the model, for any detector; compute it once per threshold.
 * gossip_phi_deadline returns the first whole millisecond at which phi
 * reaches the threshold whose y is given (UINT64_MAX before any arrival):
 * gossip_phi_value(d, t) < threshold exactly when t < the deadline (up to
 * rounding at the boundary).
 */
double gossip_phi_y(double phi);
uint64_t gossip_phi_deadline(const gossip_phi *d, double y);

#endif
