/*
 * phi.h: the phi-accrual failure detector of one member (Hayashibara et
 * al., "The phi accrual failure detector", SRDS 2004), as used by Akka and
 * Cassandra. Internal to gossip/.
 *
 * The detector learns how long the silences between a member's heartbeat
 * arrivals last and answers how suspicious the silence since the last
 * arrival is: phi = -log10(P(a heartbeat comes later than now)), with the
 * silences modelled as a normal distribution (the logistic approximation
 * of its tail that Akka uses). With news relayed by other nodes, an
 * "arrival" is the time the news says the member was alive, and a sample
 * is the silence the news ended (gossip_phi_evidence).
 *
 * Mean and variance start from a first estimate (mean = the heartbeat
 * interval, plus the age of the first news when it was relayed: the next
 * news will be about as old; standard deviation a quarter interval), which
 * counts as one sample; the k-th sample then weighs 1/(k+1) until that is
 * 1/GOSSIP_PHI_WINDOW, and from then on every sample weighs that much
 * (exponential weighting: the last ~GOSSIP_PHI_WINDOW samples count). So an
 * arrival costs O(1) time and a detector 32 bytes: gossip keeps one per
 * member of tables of thousands and feeds them several times a round.
 * While fewer than GOSSIP_PHI_TRUSTED_SAMPLES samples are in, the mean is
 * at least the first estimate's. The standard deviation never drops below
 * a minimum, so a very regular member is not declared dead after one late
 * heartbeat.
 *
 * Pure: no clock (times are passed in), no allocation.
 */
#ifndef KV_GOSSIP_PHI_H
#define KV_GOSSIP_PHI_H

#include <stdbool.h>
#include <stdint.h>

#define GOSSIP_PHI_WINDOW 64 /* a sample weighs at least 1/this */
/* Below this many samples the mean is at least the first estimate's. */
#define GOSSIP_PHI_TRUSTED_SAMPLES 16
/* Gaps longer than this many intervals are not samples (the member was
 * silent or down); the detector restarts from the new arrival. */
#define GOSSIP_PHI_GAP_MAX_INTERVALS 10

typedef struct gossip_phi {
  uint64_t last_ms;      /* last arrival (the time it says) */
  float mean_ms, var_ms; /* of the silences, weighted (floats: 32 bytes) */
  uint32_t first_ms;     /* the first estimate's mean */
  uint32_t interval_ms;  /* expected heartbeat interval: first estimate */
  uint32_t min_std_ms;   /* floor of the standard deviation */
  uint16_t count;        /* samples taken (stops at UINT16_MAX) */
  bool have_last;
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
