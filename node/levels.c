/*
 * levels.c: consistency level arithmetic (levels.h), pure.
 */
#include "levels.h"

#include <stdio.h>
#include <string.h>

#include "kv_err.h"

/* ---- levels and targets ---- */

/* True for the levels that count answers per region. */
bool levels_regional(int32_t q) {
  return q == WIRE_Q_LOCAL_ONE || q == WIRE_Q_LOCAL_QUORUM ||
         q == WIRE_Q_EACH_QUORUM;
}

const char *levels_name(int32_t q) {
  switch (q) {
  case WIRE_Q_LOCAL_ONE:
    return "local_one";
  case WIRE_Q_LOCAL_QUORUM:
    return "local_quorum";
  case WIRE_Q_EACH_QUORUM:
    return "each_quorum";
  default:
    return "?";
  }
}

levels_region *levels_region_of(levels_tally *t, const char *name) {
  for (uint32_t i = 0; i < t->count; i++)
    if (strcmp(t->reg[i].name, name) == 0)
      return &t->reg[i];
  if (t->count == NODE_FANOUT_MAX)
    return NULL;
  levels_region *g = &t->reg[t->count++];
  memset(g, 0, sizeof(*g));
  g->name = name;
  return g;
}

/* Answers regional level q needs from region g. */
uint32_t levels_region_need(const levels_tally *t, const levels_region *g,
                            int32_t q) {
  bool local = strcmp(g->name, t->local) == 0;
  switch (q) {
  case WIRE_Q_LOCAL_ONE:
    return local && g->nprim ? 1 : 0;
  case WIRE_Q_LOCAL_QUORUM:
    return local && g->nprim ? g->nprim / 2 + 1 : 0;
  case WIRE_Q_EACH_QUORUM:
    return g->nprim ? g->nprim / 2 + 1 : 0;
  default:
    return 0;
  }
}

/* Judges regional level q (named what) over the tally: returns 1 when
 * every region has its answers (counting primaries only when prim), -1
 * when some region can no longer get them (or, with up_only, does not
 * have enough nodes up to try), with a message in msg naming that region;
 * 0 while undecided. verb is "acknowledged the write" or "answered the
 * read". */
int levels_judge(const levels_tally *t, int32_t q, bool prim, bool up_only,
                 const char *what, const char *verb, char *msg, size_t msglen) {
  int res = 1;
  for (uint32_t i = 0; i < t->count; i++) {
    const levels_region *g = &t->reg[i];
    uint32_t need = levels_region_need(t, g, q);
    uint32_t got = prim ? g->ok_p : g->ok;
    if (up_only) {
      uint32_t up = prim ? g->alive_p : g->alive;
      if (up < need) {
        snprintf(msg, msglen,
                 "%s=%s needs %u of %u replicas in %s but only %u %s up", what,
                 levels_name(q), need, g->nprim, g->name, up,
                 up == 1 ? "is" : "are");
        return -1;
      }
      continue;
    }
    if (got >= need)
      continue;
    if (got + g->waiting < need) {
      snprintf(msg, msglen,
               "%s=%s needs %u of %u replicas in %s but only %u %s", what,
               levels_name(q), need, g->nprim, g->name, got, verb);
      return -1;
    }
    res = 0;
  }
  return res;
}

/* The region that still falls short of regional level q, for timeout
 * messages: fills msg with "N of M in REGION". */
void levels_shortfall(const levels_tally *t, int32_t q, bool prim, char *msg,
                      size_t msglen) {
  msg[0] = '\0';
  for (uint32_t i = 0; i < t->count; i++) {
    const levels_region *g = &t->reg[i];
    uint32_t need = levels_region_need(t, g, q);
    uint32_t got = prim ? g->ok_p : g->ok;
    if (got < need) {
      snprintf(msg, msglen, "only %u of %u required replicas in %s", got, need,
               g->name);
      return;
    }
  }
}

/* Resolves a requested level (number, name, or 0 for def) against the
 * tally of the key's nrep replicas into *out: for a regional level the sum
 * of what each region must give. Returns 0 or KV_EINVAL with a message in
 * err (also when a local level finds no replica in the local region). */
int levels_resolve(const char *what, int32_t q, uint32_t def, uint32_t nrep,
                   const levels_tally *t, uint32_t *out, char *err,
                   size_t errlen) {
  uint32_t v;
  switch (q) {
  case WIRE_Q_DEFAULT:
    v = def < nrep ? def : nrep; /* defaults never exceed N */
    break;
  case WIRE_Q_ONE:
    v = 1;
    break;
  case WIRE_Q_QUORUM:
    v = nrep / 2 + 1;
    break;
  case WIRE_Q_LOCAL_ONE:
  case WIRE_Q_LOCAL_QUORUM:
  case WIRE_Q_EACH_QUORUM:
    v = 0;
    for (uint32_t i = 0; i < t->count; i++)
      v += levels_region_need(t, &t->reg[i], q);
    if (v == 0) {
      snprintf(err, errlen, "%s=%s: the region %s holds no replica of this key",
               what, levels_name(q), t->local);
      return KV_EINVAL;
    }
    break;
  case WIRE_Q_ALL:
    v = nrep;
    break;
  default:
    if (q < 0) {
      snprintf(err, errlen, "%s: unknown consistency level %d", what, q);
      return KV_EINVAL;
    }
    v = (uint32_t)q;
    if (v > nrep) {
      snprintf(err, errlen, "%s=%u is more than the %u replicas of this key",
               what, v, nrep);
      return KV_EINVAL;
    }
  }
  *out = v;
  return 0;
}
