/*
 * test_obj_model.c: model-based test of storage/obj.c (DVVSet causality).
 *
 * Random seeded histories over 3-5 replicas of one key. A step is
 *   read i:     a client reads replica i (its context and values);
 *   put i:      a client writes through replica i (obj_update with its own
 *               actor) carrying a context it read earlier, or none;
 *   sync i->j:  replica j merges replica i's object (obj_sync), sometimes
 *               through an encode/decode round trip.
 * A brute-force model tracks every write as an event with the exact set of
 * events it causally overwrote (those visible in the context it carried and,
 * transitively, their histories) and, per replica, the set of events it has
 * learned of. After every step, on every replica, the siblings must be
 * exactly the learned events that no learned event overwrote (right dots,
 * bytes and flags, no duplicates), obj_descends must agree with inclusion of
 * learned sets and obj_equal with their equality; syncing all replicas at
 * the end must converge.
 *
 * Usage: test_obj_model [seed [histories]]. A failure prints the seed and
 * the history that reproduce it.
 * Depends on: kvobj (kvproto).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_err.h"
#include "obj.h"
#include "rng.h"

#define MODEL_SEED_DEFAULT 0x6b766f72756d01ull
#define MODEL_HISTORIES_DEFAULT 3000
#define MODEL_STEPS_MIN 5
#define MODEL_STEPS_MAX 30
#define MODEL_REPLICAS_MIN 3
#define MODEL_REPLICAS_MAX 5
#define MODEL_EVENTS_MAX MODEL_STEPS_MAX /* at most one event per step */
#define MODEL_TRACE_MAX 4096
#define MODEL_VALUE_MAX 16

typedef uint64_t evset; /* a set of events, bit e = event e */

typedef struct ev {
  int replica;
  uint64_t actor;
  uint64_t counter;
  evset hist; /* events this write overwrote, transitively */
  uint32_t flags;
  uint64_t ts_ms;
  char value[MODEL_VALUE_MAX];
} ev;

typedef struct rd {
  kvbuf ctx;
  evset visible; /* the values the client saw */
} rd;

typedef struct model {
  int nrep;
  uint64_t actor[MODEL_REPLICAS_MAX];
  obj *o[MODEL_REPLICAS_MAX];
  evset learned[MODEL_REPLICAS_MAX];
  ev evs[MODEL_EVENTS_MAX];
  int nev;
  rd reads[MODEL_STEPS_MAX];
  int nreads;
  uint64_t rng;
  char trace[MODEL_TRACE_MAX];
  size_t tlen;
} model;

static int g_pass, g_fail;

static uint64_t rnd(model *m) { return kv_splitmix64(&m->rng); }

static int below(model *m, int n) { return (int)(rnd(m) % (uint64_t)n); }

__attribute__((format(printf, 2, 3))) static void trace(model *m,
                                                        const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (m->tlen + 1 < MODEL_TRACE_MAX) {
    int n = vsnprintf(m->trace + m->tlen, MODEL_TRACE_MAX - m->tlen, fmt, ap);
    if (n > 0)
      m->tlen += (size_t)n < MODEL_TRACE_MAX - m->tlen
                     ? (size_t)n
                     : MODEL_TRACE_MAX - m->tlen - 1;
  }
  va_end(ap);
}

/* The events of learned that no event of learned overwrote. */
static evset visible(const model *m, evset learned) {
  evset over = 0;
  for (int e = 0; e < m->nev; e++)
    if (learned & (1ull << e))
      over |= m->evs[e].hist;
  return learned & ~over;
}

/* Replaces *o by decode(encode(*o)). Returns false on a mismatch. */
static bool reencode(obj **o) {
  kvbuf b;
  obj *d = NULL;
  bool ok;
  kvbuf_init(&b);
  ok = obj_encode(*o, &b) == 0 && obj_decode(b.data, b.len, &d) == 0 &&
       obj_equal(*o, d);
  kvbuf_free(&b);
  if (ok) {
    obj_free(*o);
    *o = d;
  } else {
    obj_free(d);
  }
  return ok;
}

/* Checks replica r against the model. Returns false with a message. */
static bool check_replica(model *m, int r, char *why, size_t cap) {
  const obj *o = m->o[r];
  evset want = visible(m, m->learned[r]), seen = 0;
  size_t n = obj_sibling_count(o);
  for (size_t i = 0; i < n; i++) {
    obj_value v;
    if (obj_sibling(o, i, &v)) {
      snprintf(why, cap, "replica %d: sibling %zu unreadable", r, i);
      return false;
    }
    int found = -1;
    for (int e = 0; e < m->nev; e++)
      if (m->evs[e].actor == v.actor && m->evs[e].counter == v.counter)
        found = e;
    if (found < 0) {
      snprintf(why, cap, "replica %d: sibling with unknown dot %" PRIx64
               ":%" PRIu64, r, v.actor, v.counter);
      return false;
    }
    const ev *x = &m->evs[found];
    if (!(want & (1ull << found)) || (seen & (1ull << found))) {
      snprintf(why, cap, "replica %d: e%d present but %s", r, found,
               (seen & (1ull << found)) ? "duplicated" : "not visible");
      return false;
    }
    if (v.len != strlen(x->value) || memcmp(v.data, x->value, v.len) ||
        v.flags != x->flags || v.ts_ms != x->ts_ms) {
      snprintf(why, cap, "replica %d: e%d has wrong contents", r, found);
      return false;
    }
    seen |= 1ull << found;
  }
  if (seen != want) {
    snprintf(why, cap, "replica %d: missing events mask %" PRIx64, r,
             want & ~seen);
    return false;
  }
  return true;
}

static bool check_all(model *m, char *why, size_t cap) {
  for (int r = 0; r < m->nrep; r++)
    if (!check_replica(m, r, why, cap))
      return false;
  for (int a = 0; a < m->nrep; a++) {
    for (int b = 0; b < m->nrep; b++) {
      bool incl = (m->learned[b] & ~m->learned[a]) == 0;
      if (obj_descends(m->o[a], m->o[b]) != incl) {
        snprintf(why, cap, "obj_descends(%d, %d) != %d", a, b, incl);
        return false;
      }
      bool same = m->learned[a] == m->learned[b];
      if (obj_equal(m->o[a], m->o[b]) != same) {
        snprintf(why, cap, "obj_equal(%d, %d) != %d", a, b, same);
        return false;
      }
    }
  }
  return true;
}

static bool step_read(model *m, int i, char *why, size_t cap) {
  rd *r = &m->reads[m->nreads];
  kvbuf_init(&r->ctx);
  if (obj_context(m->o[i], &r->ctx) ||
      obj_context_check(r->ctx.data, r->ctx.len)) {
    kvbuf_free(&r->ctx);
    snprintf(why, cap, "context of replica %d bad", i);
    return false;
  }
  r->visible = visible(m, m->learned[i]);
  trace(m, "read%d:r%d ", m->nreads, i);
  m->nreads++;
  return true;
}

static bool step_put(model *m, int i, char *why, size_t cap) {
  int e = m->nev;
  ev *x = &m->evs[e];
  int ri = m->nreads ? below(m, m->nreads + 1) - 1 : -1; /* -1: no context */
  const rd *r = ri >= 0 ? &m->reads[ri] : NULL;
  evset hist = r ? r->visible : 0;
  for (int k = 0; k < m->nev; k++)
    if (hist & (1ull << k))
      hist |= m->evs[k].hist;
  uint64_t counter = 0;
  evset known = m->learned[i] | hist;
  for (int k = 0; k < m->nev; k++)
    if ((known & (1ull << k)) && m->evs[k].actor == m->actor[i] &&
        m->evs[k].counter > counter)
      counter = m->evs[k].counter;
  x->replica = i;
  x->actor = m->actor[i];
  x->counter = counter + 1;
  x->hist = hist;
  x->flags = below(m, 5) == 0 ? OBJ_DELETED : 0;
  x->ts_ms = 1000 + (uint64_t)e;
  if (x->flags)
    x->value[0] = '\0';
  else
    snprintf(x->value, sizeof(x->value), "e%d", e);
  if (below(m, 4) == 0 && !reencode(&m->o[i])) {
    snprintf(why, cap, "re-encoding replica %d failed", i);
    return false;
  }
  obj_value v = {.flags = x->flags,
                 .ts_ms = x->ts_ms,
                 .data = (const uint8_t *)x->value,
                 .len = strlen(x->value)};
  obj_limits lim = obj_limits_default;
  lim.siblings_max = lim.siblings_warn = UINT32_MAX;
  lim.entries_max = UINT32_MAX;
  int rc = obj_update(m->o[i], r ? r->ctx.data : NULL, r ? r->ctx.len : 0,
                      m->actor[i], &v, x->ts_ms, &lim, NULL);
  trace(m, "put:e%d@r%d(ctx%d%s) ", e, i, ri, x->flags ? ",del" : "");
  m->nev++;
  m->learned[i] |= hist | (1ull << e);
  if (rc) {
    snprintf(why, cap, "obj_update: %s", kv_strerror(rc));
    return false;
  }
  return true;
}

static bool step_sync(model *m, int i, int j, char *why, size_t cap) {
  obj *copy = NULL;
  const obj *src = m->o[i];
  int how = below(m, 3);
  if (how == 0) {
    copy = obj_clone(m->o[i]);
    if (!copy || !reencode(&copy)) {
      obj_free(copy);
      snprintf(why, cap, "re-encoding replica %d failed", i);
      return false;
    }
    src = copy;
  } else if (how == 1 && !reencode(&m->o[j])) {
    snprintf(why, cap, "re-encoding replica %d failed", j);
    return false;
  }
  bool changed = false, model_changed = (m->learned[i] & ~m->learned[j]) != 0;
  obj *before = obj_clone(m->o[j]);
  int rc = obj_sync(m->o[j], src, &changed);
  /* A sync that teaches nothing may still report a change when it only
   * refreshed entry timestamps (obj_equal ignores those). */
  if (!rc && changed && !model_changed && before &&
      obj_equal(before, m->o[j]))
    changed = false;
  obj_free(before);
  obj_free(copy);
  trace(m, "sync:r%d->r%d ", i, j);
  m->learned[j] |= m->learned[i];
  if (rc || changed != model_changed) {
    snprintf(why, cap, "obj_sync r%d->r%d: rc %d changed %d, model %d", i, j,
             rc, changed, model_changed);
    return false;
  }
  return true;
}

/* Runs one history. Returns true when it passed. */
static bool run_history(uint64_t seed, int h) {
  model m;
  char why[256] = "";
  bool ok = true;
  memset(&m, 0, sizeof(m));
  m.rng = seed;
  m.nrep = MODEL_REPLICAS_MIN +
           below(&m, MODEL_REPLICAS_MAX - MODEL_REPLICAS_MIN + 1);
  for (int r = 0; r < m.nrep; r++) {
    /* Random distinct actors, so sort orders vary between histories. */
    do {
      m.actor[r] = rnd(&m) >> below(&m, 60);
      for (int k = 0; k < r; k++)
        if (m.actor[k] == m.actor[r])
          m.actor[r] = 0;
    } while (m.actor[r] == 0);
    m.o[r] = obj_new();
  }
  int steps = MODEL_STEPS_MIN + below(&m, MODEL_STEPS_MAX - MODEL_STEPS_MIN + 1);
  for (int s = 0; s < steps && ok; s++) {
    int op = below(&m, 10), i = below(&m, m.nrep);
    if (op < 3) {
      ok = step_read(&m, i, why, sizeof(why));
    } else if (op < 7) {
      ok = step_put(&m, i, why, sizeof(why));
    } else {
      int j = (i + 1 + below(&m, m.nrep - 1)) % m.nrep;
      ok = step_sync(&m, i, j, why, sizeof(why));
    }
    if (ok)
      ok = check_all(&m, why, sizeof(why));
  }
  /* Convergence: everything into replica 0, then replica 0 into all. */
  for (int r = 1; r < m.nrep && ok; r++)
    ok = step_sync(&m, r, 0, why, sizeof(why));
  for (int r = 1; r < m.nrep && ok; r++)
    ok = step_sync(&m, 0, r, why, sizeof(why));
  if (ok)
    ok = check_all(&m, why, sizeof(why));
  for (int r = 1; r < m.nrep && ok; r++) {
    if (!obj_equal(m.o[0], m.o[r])) {
      snprintf(why, sizeof(why), "replicas 0 and %d did not converge", r);
      ok = false;
    }
  }
  if (!ok) {
    fprintf(stderr, "history %d (seed 0x%" PRIx64 ") failed: %s\n  %s\n", h,
            seed, why, m.trace);
    for (int r = 0; r < m.nrep; r++) {
      char dbg[512];
      fprintf(stderr, "  r%d learned %" PRIx64 " visible %" PRIx64 " %s\n", r,
              m.learned[r], visible(&m, m.learned[r]),
              obj_debug(m.o[r], dbg, sizeof(dbg)));
    }
  }
  for (int r = 0; r < m.nrep; r++)
    obj_free(m.o[r]);
  for (int k = 0; k < m.nreads; k++)
    kvbuf_free(&m.reads[k].ctx);
  return ok;
}

int main(int argc, char **argv) {
  uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : MODEL_SEED_DEFAULT;
  int histories = argc > 2 ? atoi(argv[2]) : MODEL_HISTORIES_DEFAULT;
  printf("seed 0x%" PRIx64 ", %d histories\n", seed, histories);
  model seeder;
  seeder.rng = seed;
  for (int h = 0; h < histories; h++) {
    uint64_t hseed = rnd(&seeder);
    if (run_history(hseed, h)) {
      g_pass++;
    } else {
      g_fail++;
      if (g_fail >= 5)
        break;
    }
  }
  printf("%d passed, %d failed\n", g_pass, g_fail);
  return g_fail ? 1 : 0;
}
