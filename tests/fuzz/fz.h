/*
 * fz.h: what the libFuzzer targets share: FZ_CHECK, an invariant that
 * aborts the run (so libFuzzer saves the input) with where it failed.
 */
#ifndef KV_FZ_H
#define KV_FZ_H

#include <stdio.h>
#include <stdlib.h>

#define FZ_CHECK(cond)                                                         \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

#endif
