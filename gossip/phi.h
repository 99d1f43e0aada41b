/*
 * phi.h: the phi-accrual failure detector of one member (Hayashibara et
 * al., "The phi accrual failure detector", SRDS 2004), as used by Akka and
 * Cassandra. Internal to gossip/.
 *
 * The detector keeps a bounded window of the inter-arrival times of one
 * member's heartbeat increases and answers how suspicious the silence since
 * the last arrival is: phi = -log10(P(a heartbeat comes later than now)),
 * with the arrivals modelled as a normal distribution (the logistic
 * approximation of its tail that Akka uses). The standard deviation never
 * drops below a minimum, so a very regular member is not declared dead
 * after one late heartbeat; until enough samples are in, a first estimate
 * (mean = the heartbeat interval) stands in for the data.
 *
 * Pure: no clock (times are passed in), no allocation.
 */
#ifndef KV_GOSSIP_PHI_H
#define KV_GOSSIP_PHI_H

#include <stdbool.h>
#include <stdint.h>

#define GOSSIP_PHI_WINDOW 64       /* inter-arrival samples kept */
#define GOSSIP_PHI_MIN_SAMPLES 3   /* below this the first estimate is used */
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
  uint32_t min_std_ms;  /* floor of the standard deviation */
  double mean_ms, std_ms; /* of the window, refreshed on every arrival */
} gossip_phi;

/* Initialises a detector for a member heartbeating every interval_ms, with
 * the standard deviation never below min_std_ms. */
void gossip_phi_init(gossip_phi *d, uint32_t interval_ms, uint32_t min_std_ms);
/* Records a heartbeat increase seen at now_ms. The first call only starts
 * the clock; later ones add a sample unless the gap is implausibly long. */
void gossip_phi_heartbeat(gossip_phi *d, uint64_t now_ms);
/* Returns phi at now_ms (0 when nothing has arrived yet; finite, >= 0). */
double gossip_phi_value(const gossip_phi *d, uint64_t now_ms);
/* Mean and standard deviation (after the floor) the detector uses now. */
void gossip_phi_stats(const gossip_phi *d, double *mean_ms, double *std_ms);

#endif
