/*
 * test_levels.c: unit tests of node/levels.c, the consistency level
 * arithmetic, on hand-made tallies (no node, no simulator): resolving
 * levels by number and by name against N, the regional levels per region,
 * judging answers as they come in, and the messages that name a region.
 * Ends with "N passed, M failed".
 * Depends on: kvcore (levels.c only), kvproto.
 */
#include <string.h>

#include "kv_err.h"
#include "levels.h"
#include "unit/check.h"

/* A tally of two regions: us (local, 3 primaries) and eu (3 primaries). */
static levels_tally two_regions(uint32_t us_ok, uint32_t eu_ok,
                                uint32_t eu_alive) {
  levels_tally t;
  memset(&t, 0, sizeof(t));
  t.local = "us";
  levels_region *us = levels_region_of(&t, "us");
  levels_region *eu = levels_region_of(&t, "eu");
  us->nprim = 3;
  us->alive = us->alive_p = 3;
  us->ok = us->ok_p = us_ok;
  us->waiting = 3 - us_ok;
  eu->nprim = 3;
  eu->alive = eu->alive_p = eu_alive;
  eu->ok = eu->ok_p = eu_ok;
  eu->waiting = eu_alive > eu_ok ? eu_alive - eu_ok : 0;
  return t;
}

static void test_resolve_plain(void) {
  levels_tally t = two_regions(0, 0, 3);
  uint32_t v = 99;
  char err[256];
  CHECK(levels_resolve("w", WIRE_Q_DEFAULT, 2, 3, &t, &v, err, sizeof(err)) ==
            0 &&
        v == 2);
  /* A default never exceeds N: a one-node cluster writes with W=1. */
  CHECK(levels_resolve("w", WIRE_Q_DEFAULT, 2, 1, &t, &v, err, sizeof(err)) ==
            0 &&
        v == 1);
  CHECK(levels_resolve("r", WIRE_Q_ONE, 2, 5, &t, &v, err, sizeof(err)) == 0 &&
        v == 1);
  CHECK(levels_resolve("r", WIRE_Q_QUORUM, 2, 5, &t, &v, err, sizeof(err)) ==
            0 &&
        v == 3);
  CHECK(levels_resolve("r", WIRE_Q_QUORUM, 2, 6, &t, &v, err, sizeof(err)) ==
            0 &&
        v == 4);
  CHECK(levels_resolve("w", WIRE_Q_ALL, 2, 6, &t, &v, err, sizeof(err)) == 0 &&
        v == 6);
  CHECK(levels_resolve("w", 3, 2, 6, &t, &v, err, sizeof(err)) == 0 && v == 3);
  /* An explicit level above N is an error that says so. */
  CHECK(levels_resolve("w", 7, 2, 6, &t, &v, err, sizeof(err)) == KV_EINVAL &&
        strstr(err, "w=7 is more than the 6 replicas") != NULL);
  CHECK(levels_resolve("w", -42, 2, 6, &t, &v, err, sizeof(err)) ==
            KV_EINVAL &&
        strstr(err, "unknown consistency level") != NULL);
}

static void test_resolve_regional(void) {
  levels_tally t = two_regions(0, 0, 3);
  uint32_t v = 0;
  char err[256];
  CHECK(levels_regional(WIRE_Q_LOCAL_QUORUM) &&
        levels_regional(WIRE_Q_EACH_QUORUM) &&
        levels_regional(WIRE_Q_LOCAL_ONE) && !levels_regional(WIRE_Q_QUORUM) &&
        !levels_regional(2));
  CHECK(strcmp(levels_name(WIRE_Q_EACH_QUORUM), "each_quorum") == 0);
  /* local_quorum: 2 of the 3 local primaries; each_quorum: 2 + 2. */
  CHECK(levels_resolve("w", WIRE_Q_LOCAL_QUORUM, 2, 6, &t, &v, err,
                       sizeof(err)) == 0 &&
        v == 2);
  CHECK(levels_resolve("w", WIRE_Q_LOCAL_ONE, 2, 6, &t, &v, err,
                       sizeof(err)) == 0 &&
        v == 1);
  CHECK(levels_resolve("w", WIRE_Q_EACH_QUORUM, 2, 6, &t, &v, err,
                       sizeof(err)) == 0 &&
        v == 4);
  /* A local level in a region without replicas of the key. */
  t.local = "ap";
  levels_region_of(&t, "ap");
  CHECK(levels_resolve("r", WIRE_Q_LOCAL_QUORUM, 2, 6, &t, &v, err,
                       sizeof(err)) == KV_EINVAL &&
        strstr(err, "the region ap holds no replica") != NULL);
}

static void test_judge(void) {
  char msg[256];
  /* local_quorum: met with 2 local answers, whatever eu does. */
  levels_tally t = two_regions(2, 0, 0);
  CHECK(levels_judge(&t, WIRE_Q_LOCAL_QUORUM, false, false, "w",
                     "acknowledged the write", msg, sizeof(msg)) == 1);
  /* each_quorum: undecided while eu's answers may still come... */
  t = two_regions(2, 1, 3);
  CHECK(levels_judge(&t, WIRE_Q_EACH_QUORUM, false, false, "w",
                     "acknowledged the write", msg, sizeof(msg)) == 0);
  /* ...failed, naming eu, when they cannot. */
  t = two_regions(3, 1, 1);
  CHECK(levels_judge(&t, WIRE_Q_EACH_QUORUM, false, false, "w",
                     "acknowledged the write", msg, sizeof(msg)) == -1 &&
        strstr(msg, "in eu but only 1 acknowledged the write") != NULL);
  /* Up-only judging fails before anything is sent. */
  t = two_regions(0, 0, 1);
  CHECK(levels_judge(&t, WIRE_Q_EACH_QUORUM, false, true, "w", "", msg,
                     sizeof(msg)) == -1 &&
        strstr(msg, "needs 2 of 3 replicas in eu but only 1 is up") != NULL);
  t = two_regions(0, 0, 2);
  CHECK(levels_judge(&t, WIRE_Q_EACH_QUORUM, false, true, "w", "", msg,
                     sizeof(msg)) == 1);
  /* The shortfall of a timeout names the region that fell short. */
  t = two_regions(3, 1, 3);
  levels_shortfall(&t, WIRE_Q_EACH_QUORUM, false, msg, sizeof(msg));
  CHECK(strcmp(msg, "only 1 of 2 required replicas in eu") == 0);
  t = two_regions(3, 2, 3);
  levels_shortfall(&t, WIRE_Q_EACH_QUORUM, false, msg, sizeof(msg));
  CHECK(msg[0] == '\0');
}

static void test_region_table_bounded(void) {
  levels_tally t;
  memset(&t, 0, sizeof(t));
  static const char *const names[NODE_FANOUT_MAX + 1] = {
      "r0", "r1", "r2",  "r3",  "r4",  "r5",  "r6",  "r7", "r8",
      "r9", "ra", "rb", "rc", "rd", "re", "rf", "rg"};
  for (uint32_t i = 0; i < NODE_FANOUT_MAX; i++)
    CHECK(levels_region_of(&t, names[i]) != NULL);
  CHECK(levels_region_of(&t, names[NODE_FANOUT_MAX]) == NULL);
  CHECK(levels_region_of(&t, "r3") == &t.reg[3]);
  CHECK(t.count == NODE_FANOUT_MAX);
}

int main(void) {
  test_resolve_plain();
  test_resolve_regional();
  test_judge();
  test_region_table_bounded();
  return check_summary("test_levels");
}
