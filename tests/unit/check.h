/*
 * check.h: CHECK, the assertion of the unit tests, with the counters and
 * the "N passed, M failed" line that end a test program. Header-only: a
 * test program includes it once, as "unit/check.h".
 *
 * A CHECK counts its condition in check_passed or check_failed; a failed
 * one prints where it is and what failed, and the test goes on.
 * check_summary() prints the closing line and returns the exit status.
 *
 * The line a failure prints on stderr is, by default,
 *   FILE:LINE: check failed: COND
 * A program whose failures read otherwise defines, before the include:
 *   CHECK_MESSAGE  CHECK(cond, fmt, ...) takes a printf message after the
 *                  condition; a failure prints FAIL FILE:LINE: COND: MESSAGE
 *   CHECK_HEAD     the part before the message (or the whole line) as a
 *                  printf format given FILE, LINE and COND, in that order
 *   CHECK_OUT      the stream (default stderr)
 *   CHECK_SEED     an expression, the seed of the simulation under test:
 *                  CHECK(cond) is then for functions that return int, and a
 *                  failure prints FILE:LINE: FUNC: check failed: COND
 *                  (seed S) and returns 1, since the rest of that run is moot
 *
 * Depends on: <stdio.h>.
 */
#ifndef KV_TEST_CHECK_H
#define KV_TEST_CHECK_H

#include <stdio.h>

#ifndef CHECK_OUT
#define CHECK_OUT stderr
#endif

#ifndef CHECK_HEAD
#ifdef CHECK_MESSAGE
#define CHECK_HEAD "FAIL %s:%d: %s: "
#else
#define CHECK_HEAD "%s:%d: check failed: %s"
#endif
#endif

/* The checks of this program that held and that failed, so far. */
static int check_passed, check_failed;

#if defined(CHECK_SEED)
#define CHECK(cond)                                                            \
  do {                                                                         \
    if (cond) {                                                                \
      check_passed++;                                                          \
    } else {                                                                   \
      check_failed++;                                                          \
      fprintf(CHECK_OUT, "%s:%d: %s: check failed: %s (seed %llu)\n",          \
              __FILE__, __LINE__, __func__, #cond,                             \
              (unsigned long long)(CHECK_SEED));                               \
      return 1;                                                                \
    }                                                                          \
  } while (0)
#elif defined(CHECK_MESSAGE)
#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (cond) {                                                                \
      check_passed++;                                                          \
    } else {                                                                   \
      check_failed++;                                                          \
      fprintf(CHECK_OUT, CHECK_HEAD, __FILE__, __LINE__, #cond);               \
      fprintf(CHECK_OUT, __VA_ARGS__);                                         \
      fputc('\n', CHECK_OUT);                                                  \
    }                                                                          \
  } while (0)
#else
#define CHECK(cond)                                                            \
  do {                                                                         \
    if (cond) {                                                                \
      check_passed++;                                                          \
    } else {                                                                   \
      check_failed++;                                                          \
      fprintf(CHECK_OUT, CHECK_HEAD "\n", __FILE__, __LINE__, #cond);          \
    }                                                                          \
  } while (0)
#endif

/* Prints "N passed, M failed" on stdout, after "NAME: " when name is not
 * NULL, and returns the program's exit status: 1 when a check failed,
 * else 0. */
static inline int check_summary(const char *name) {
  if (name)
    printf("%s: ", name);
  printf("%d passed, %d failed\n", check_passed, check_failed);
  return check_failed ? 1 : 0;
}

#endif
