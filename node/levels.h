/*
 * levels.h: consistency levels as numbers, pure arithmetic over a tally of
 * a request's replicas by region (no node state, no I/O).
 *
 * N is the number of primaries of the key (over every region). one = 1,
 * quorum = N/2+1, all = N and a number count answers from any region. The
 * regional levels count per region, by the region each answering node is
 * in: local_one needs 1 and local_quorum L/2+1 of the L primaries in the
 * local region; each_quorum needs a quorum of the primaries of every
 * region that has any. A default level never exceeds N; an explicit level
 * above N is an error.
 *
 * Depends on: wire.h (the WIRE_Q_* level codes), core.h (NODE_FANOUT_MAX).
 */
#ifndef KV_NODE_LEVELS_H
#define KV_NODE_LEVELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"

/* One region's share of a request: its primaries and how its nodes
 * (primaries and fallbacks located there) stand. */
typedef struct levels_region {
  const char *name;
  uint32_t nprim;   /* primaries of the key in this region */
  uint32_t alive;   /* targets here that are up */
  uint32_t alive_p; /* primaries here that are up */
  uint32_t ok;      /* targets here that answered */
  uint32_t ok_p;    /* primaries here that answered */
  uint32_t waiting; /* targets here whose answer is outstanding */
} levels_region;

typedef struct levels_tally {
  uint32_t count;
  levels_region reg[NODE_FANOUT_MAX];
  const char *local; /* the request's local region */
} levels_tally;

/* True for the levels that count answers per region. */
bool levels_regional(int32_t q);
/* The name of a regional level ("?" for others). */
const char *levels_name(int32_t q);
/* The entry of region name in t, added (zeroed) when new; NULL when t is
 * full. name must outlive t. */
levels_region *levels_region_of(levels_tally *t, const char *name);
/* Answers regional level q needs from region g. */
uint32_t levels_region_need(const levels_tally *t, const levels_region *g,
                            int32_t q);
/* Judges regional level q (named what) over the tally: 1 when every region
 * has its answers (counting primaries only when prim), -1 when some region
 * can no longer get them (or, with up_only, does not have enough nodes up
 * to try), with a message in msg naming that region; 0 while undecided.
 * verb is "acknowledged the write" or "answered the read". */
int levels_judge(const levels_tally *t, int32_t q, bool prim, bool up_only,
                 const char *what, const char *verb, char *msg, size_t msglen);
/* The region that still falls short of regional level q, for timeout
 * messages: fills msg with "only N of M required replicas in REGION", or
 * "" when none does. */
void levels_shortfall(const levels_tally *t, int32_t q, bool prim, char *msg,
                      size_t msglen);
/* Resolves a requested level (number, name, or 0 for def) against the
 * tally of the key's nrep replicas into *out: for a regional level the sum
 * of what each region must give. Returns 0 or KV_EINVAL with a message in
 * err (also when a local level finds no replica in the local region). */
int levels_resolve(const char *what, int32_t q, uint32_t def, uint32_t nrep,
                   const levels_tally *t, uint32_t *out, char *err,
                   size_t errlen);

#endif
