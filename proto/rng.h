/*
 * rng.h: splitmix64, the pseudo-random generator of kvorum's pure code
 * (gossip), the node shells, the simulator and the tests; kvorum-bench
 * seeds its xoshiro256** with it. Randomness is an input (STYLE.md, habit
 * 2): the caller owns the 64-bit state, seeds it and passes it in, so a
 * seed replays the same numbers.
 *
 * splitmix64 is SplitMix (Steele, Lea and Flood, "Fast splittable
 * pseudorandom number generators", OOPSLA 2014) with Stafford's Mix13
 * finalizer, as in Vigna's splitmix64.c. It is fast and statistically good,
 * and not for anything an attacker must not guess.
 *
 * Header-only. Depends on: nothing.
 */
#ifndef KV_RNG_H
#define KV_RNG_H

#include <stdint.h>

/* Advances *state by the golden-ratio increment and returns the next
 * number of the sequence. Any state is valid, 0 included; the same state
 * gives the same sequence on every platform. */
static inline uint64_t kv_splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

#endif
