/*
 * obj.c: stored objects as dotted version vector sets (see obj.h).
 *
 * An object is three flat arrays: entries sorted by actor, the values of all
 * entries (entry by entry, newest first) and one byte heap holding the value
 * bytes, so decoding, merging and encoding an object costs a few
 * allocations whatever its number of siblings. Every operation that changes
 * an object builds the result in a new object and swaps it in at the end,
 * so an error (KV_ENOMEM, KV_ESIBLINGS) leaves the original untouched.
 *
 * The merge of two entries of one actor follows dvvset.erl: a value with
 * dot (actor, d) survives when each side either holds it or has not seen
 * d (d above its counter).
 * Depends on: kv_err.h, mp.h (msgpack-c packer, bounded reader).
 */
#include "obj.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_err.h"
#include "mp.h"

/* The context encoding version (the first element of a context). */
#define OBJ_CTX_VERSION 1
/* Elements of an encoded object, entry, value and context entry. */
#define OBJ__TOP_FIELDS 2
#define OBJ__ENT_FIELDS 4
#define OBJ__VAL_FIELDS 3
#define OBJ__CTX_FIELDS 2
/* Where empty values point, so no pointer arithmetic touches NULL. */
static const uint8_t obj__empty[1];
/* Bytes of a value shown by obj_debug. */
#define OBJ__DEBUG_BYTES_MAX 8

const obj_limits obj_limits_default = {
    .siblings_warn = 25,
    .siblings_max = 100,
    .entries_max = 64,
    .prune_age_ms = 0,
    .value_max = 1024 * 1024,
};

typedef struct obj__ent {
  uint64_t actor;
  uint64_t counter;
  uint64_t ts_ms;  /* last time this entry got an event or was learned */
  uint32_t vfirst; /* index of its newest value in vals */
  uint32_t nvals;  /* values vals[vfirst .. vfirst + nvals), newest first */
} obj__ent;

typedef struct obj__val {
  uint64_t ts_ms;
  uint64_t expires_ms; /* OBJ_EXPIRES: wall-clock ms it reads as absent */
  size_t off; /* bytes at heap + off */
  size_t len;
  uint32_t flags;
} obj__val;

struct obj {
  obj__ent *ents;
  uint32_t nents;
  obj__val *vals;
  uint32_t nvals;
  uint8_t *heap;
  size_t heap_len;
  void *mem; /* one allocation holding ents, vals and heap */
};

/* A version vector entry of a context. */
typedef struct obj__vv {
  uint64_t actor;
  uint64_t counter;
} obj__vv;

obj *obj_new(void) { return calloc(1, sizeof(obj)); }

static void obj__clear(obj *o) {
  free(o->mem);
  memset(o, 0, sizeof(*o));
}

void obj_free(obj *o) {
  if (!o)
    return;
  obj__clear(o);
  free(o);
}

/* Allocates the arrays of o (which must be empty) for the given capacities.
 * Returns 0 or KV_ENOMEM (o stays empty). */
static int obj__alloc(obj *o, size_t ents, size_t vals, size_t heap) {
  size_t eb = ents * sizeof(obj__ent), vb = vals * sizeof(obj__val);
  if (ents > SIZE_MAX / sizeof(obj__ent) / 2 ||
      vals > SIZE_MAX / sizeof(obj__val) / 2 || heap > SIZE_MAX / 4)
    return KV_ENOMEM;
  if (eb + vb + heap == 0)
    return 0;
  uint8_t *m = malloc(eb + vb + heap); /* obj__ent, obj__val: 8-aligned */
  if (!m)
    return KV_ENOMEM;
  o->mem = m;
  o->ents = ents ? (obj__ent *)m : NULL;
  o->vals = vals ? (obj__val *)(m + eb) : NULL;
  o->heap = heap ? m + eb + vb : NULL;
  return 0;
}

/* Moves the contents of src into dst (freeing dst's) and empties src. */
static void obj__swap_in(obj *dst, obj *src) {
  obj__clear(dst);
  *dst = *src;
  memset(src, 0, sizeof(*src));
}

obj *obj_clone(const obj *o) {
  obj *c = obj_new();
  if (!c)
    return NULL;
  if (obj__alloc(c, o->nents, o->nvals, o->heap_len)) {
    free(c);
    return NULL;
  }
  if (o->nents)
    memcpy(c->ents, o->ents, o->nents * sizeof(obj__ent));
  if (o->nvals)
    memcpy(c->vals, o->vals, o->nvals * sizeof(obj__val));
  if (o->heap_len)
    memcpy(c->heap, o->heap, o->heap_len);
  c->nents = o->nents;
  c->nvals = o->nvals;
  c->heap_len = o->heap_len;
  return c;
}

/* ---- decoding ---- */

/* Reads the entries of an object. With o NULL it only validates and counts
 * (*nvals, *nbytes); otherwise it fills o, whose arrays are big enough. */
static int obj__read_entries(mp_reader *r, uint32_t nents, obj *o,
                             size_t *nvals, size_t *nbytes) {
  uint64_t prev_actor = 0;
  for (uint32_t i = 0; i < nents; i++) {
    uint32_t nf = 0, nv = 0;
    uint64_t actor = 0, counter = 0, ets = 0;
    if (mp_read_array(r, &nf) || nf != OBJ__ENT_FIELDS)
      return KV_EPROTO;
    if (mp_read_uint(r, &actor) || mp_read_uint(r, &counter) ||
        mp_read_uint(r, &ets) || mp_read_array(r, &nv))
      return KV_EPROTO;
    if (counter == 0 || nv > counter || (i > 0 && actor <= prev_actor))
      return KV_ECORRUPT;
    prev_actor = actor;
    if (o) {
      obj__ent *e = &o->ents[o->nents++];
      e->actor = actor;
      e->counter = counter;
      e->ts_ms = ets;
      e->vfirst = o->nvals;
      e->nvals = nv;
    }
    for (uint32_t j = 0; j < nv; j++) {
      uint32_t flags = 0;
      uint64_t vts = 0;
      kv_slice data;
      uint64_t exp = 0;
      if (mp_read_array(r, &nf) ||
          (nf != OBJ__VAL_FIELDS && nf != OBJ__VAL_FIELDS + 1))
        return KV_EPROTO;
      if (mp_read_u32(r, &flags) || mp_read_uint(r, &vts) ||
          mp_read_bytes(r, &data))
        return KV_EPROTO;
      /* A value with an expiry has it as a fourth field, and only then. */
      if ((flags & ~(OBJ_DELETED | OBJ_EXPIRES | OBJ_TYPED)) ||
          ((flags & OBJ_EXPIRES) != 0) != (nf == OBJ__VAL_FIELDS + 1))
        return KV_ECORRUPT;
      if (nf > OBJ__VAL_FIELDS && (mp_read_uint(r, &exp) || exp == 0))
        return KV_ECORRUPT;
      if (o) {
        obj__val *v = &o->vals[o->nvals++];
        v->flags = flags;
        v->ts_ms = vts;
        v->expires_ms = exp;
        v->off = o->heap_len;
        v->len = data.len;
        if (data.len)
          memcpy(o->heap + o->heap_len, data.ptr, data.len);
        o->heap_len += data.len;
      } else {
        (*nvals)++;
        *nbytes += data.len;
      }
    }
  }
  return 0;
}

/* Reads the header of an object: [version, [entries...]]. */
static int obj__read_header(mp_reader *r, uint32_t *nents) {
  uint32_t n = 0;
  uint64_t version = 0;
  if (mp_read_array(r, &n) || n != OBJ__TOP_FIELDS || mp_read_uint(r, &version))
    return KV_EPROTO;
  if (version != OBJ_FORMAT_VERSION)
    return KV_EVERSION;
  if (mp_read_array(r, nents))
    return KV_EPROTO;
  return 0;
}

/* Pass 1 of obj_decode: validates everything and sizes the arrays. */
static int obj__measure(const uint8_t *buf, size_t len, uint32_t *nents,
                        size_t *nvals, size_t *nbytes) {
  mp_reader r;
  mp_reader_init(&r, buf, len);
  int rc = obj__read_header(&r, nents);
  if (!rc)
    rc = obj__read_entries(&r, *nents, NULL, nvals, nbytes);
  if (rc)
    return rc;
  if (mp_remaining(&r) != 0)
    return KV_EPROTO;
  if (*nvals > UINT32_MAX)
    return KV_ECORRUPT;
  return 0;
}

int obj_check(const uint8_t *buf, size_t len) {
  uint32_t nents = 0;
  size_t nvals = 0, nbytes = 0;
  return obj__measure(buf, len, &nents, &nvals, &nbytes);
}

int obj_decode(const uint8_t *buf, size_t len, obj **out) {
  mp_reader r;
  uint32_t nents = 0;
  size_t nvals = 0, nbytes = 0;
  *out = NULL;
  int rc = obj__measure(buf, len, &nents, &nvals, &nbytes);
  if (rc)
    return rc;
  /* Pass 2: fill (cannot fail: the same bytes passed above). */
  obj *o = obj_new();
  if (!o || obj__alloc(o, nents, nvals, nbytes)) {
    free(o);
    return KV_ENOMEM;
  }
  mp_reader_init(&r, buf, len);
  rc = obj__read_header(&r, &nents);
  if (!rc)
    rc = obj__read_entries(&r, nents, o, NULL, NULL);
  if (rc) {
    obj_free(o);
    return rc;
  }
  *out = o;
  return 0;
}

int obj_encode(const obj *o, kvbuf *out) {
  msgpack_packer pk;
  mp_packer_init(&pk, out);
  msgpack_pack_array(&pk, OBJ__TOP_FIELDS);
  msgpack_pack_uint64(&pk, OBJ_FORMAT_VERSION);
  msgpack_pack_array(&pk, o->nents);
  for (uint32_t i = 0; i < o->nents; i++) {
    const obj__ent *e = &o->ents[i];
    msgpack_pack_array(&pk, OBJ__ENT_FIELDS);
    msgpack_pack_uint64(&pk, e->actor);
    msgpack_pack_uint64(&pk, e->counter);
    msgpack_pack_uint64(&pk, e->ts_ms);
    msgpack_pack_array(&pk, e->nvals);
    for (uint32_t j = 0; j < e->nvals; j++) {
      const obj__val *v = &o->vals[e->vfirst + j];
      bool exp = v->flags & OBJ_EXPIRES;
      msgpack_pack_array(&pk, OBJ__VAL_FIELDS + exp);
      msgpack_pack_uint32(&pk, v->flags);
      msgpack_pack_uint64(&pk, v->ts_ms);
      mp_pack_bin(&pk, v->len ? o->heap + v->off : obj__empty, v->len);
      if (exp)
        msgpack_pack_uint64(&pk, v->expires_ms);
    }
  }
  return out->oom ? KV_ENOMEM : 0;
}

/* ---- siblings ---- */

size_t obj_sibling_count(const obj *o) { return o->nvals; }

int obj_sibling(const obj *o, size_t i, obj_value *out) {
  if (i >= o->nvals)
    return KV_EINVAL;
  for (uint32_t k = 0; k < o->nents; k++) {
    const obj__ent *e = &o->ents[k];
    if (i < (size_t)e->vfirst + e->nvals) {
      const obj__val *v = &o->vals[i];
      out->flags = v->flags;
      out->ts_ms = v->ts_ms;
      out->expires_ms = v->expires_ms;
      out->data = v->len ? o->heap + v->off : obj__empty;
      out->len = v->len;
      out->actor = e->actor;
      out->counter = e->counter - (i - e->vfirst);
      return 0;
    }
  }
  return KV_EINVAL; /* unreachable for a consistent object */
}

bool obj_all_deleted(const obj *o) {
  return obj_all_gone(o, 0);
}

bool obj_value_gone(const obj_value *v, uint64_t now_ms) {
  return (v->flags & OBJ_DELETED) ||
         (now_ms && (v->flags & OBJ_EXPIRES) && v->expires_ms <= now_ms);
}

bool obj_all_gone(const obj *o, uint64_t now_ms) {
  if (o->nvals == 0)
    return false;
  for (uint32_t i = 0; i < o->nvals; i++) {
    const obj__val *v = &o->vals[i];
    if (!(v->flags & OBJ_DELETED) &&
        !(now_ms && (v->flags & OBJ_EXPIRES) && v->expires_ms <= now_ms))
      return false;
  }
  return true;
}

/* ---- contexts ---- */

int obj_context(const obj *o, kvbuf *out) {
  msgpack_packer pk;
  mp_packer_init(&pk, out);
  msgpack_pack_array(&pk, OBJ__TOP_FIELDS);
  msgpack_pack_uint64(&pk, OBJ_CTX_VERSION);
  msgpack_pack_array(&pk, o->nents);
  for (uint32_t i = 0; i < o->nents; i++) {
    msgpack_pack_array(&pk, OBJ__CTX_FIELDS);
    msgpack_pack_uint64(&pk, o->ents[i].actor);
    msgpack_pack_uint64(&pk, o->ents[i].counter);
  }
  return out->oom ? KV_ENOMEM : 0;
}

/* Parses a context. With vv NULL it only validates and sets *n; otherwise
 * it fills vv (room for *n entries). Returns 0 or KV_EPROTO. */
static int obj__read_context(const uint8_t *ctx, size_t len, obj__vv *vv,
                             uint32_t *n) {
  mp_reader r;
  uint32_t nf = 0, cnt = 0;
  uint64_t version = 0, prev = 0;
  mp_reader_init(&r, ctx, len);
  if (mp_read_array(&r, &nf) || nf != OBJ__TOP_FIELDS ||
      mp_read_uint(&r, &version) || version != OBJ_CTX_VERSION ||
      mp_read_array(&r, &cnt))
    return KV_EPROTO;
  for (uint32_t i = 0; i < cnt; i++) {
    uint64_t actor = 0, counter = 0;
    if (mp_read_array(&r, &nf) || nf != OBJ__CTX_FIELDS ||
        mp_read_uint(&r, &actor) || mp_read_uint(&r, &counter))
      return KV_EPROTO;
    if (counter == 0 || (i > 0 && actor <= prev))
      return KV_EPROTO;
    prev = actor;
    if (vv) {
      vv[i].actor = actor;
      vv[i].counter = counter;
    }
  }
  if (mp_remaining(&r) != 0)
    return KV_EPROTO;
  *n = cnt;
  return 0;
}

int obj_context_check(const uint8_t *ctx, size_t len) {
  uint32_t n = 0;
  return ctx ? obj__read_context(ctx, len, NULL, &n) : KV_EPROTO;
}

/* ---- merging ---- */

/* One side of a merge: an entry of an object (or of a context, then vals
 * is NULL and nvals 0), or nothing (counter 0). */
typedef struct obj__side {
  const obj *o;
  uint64_t counter;
  uint64_t ts_ms;
  uint32_t vfirst;
  uint32_t nvals;
} obj__side;

static void obj__put_val(obj *dst, const obj *src, const obj__val *v) {
  obj__val *d = &dst->vals[dst->nvals++];
  *d = *v;
  d->off = dst->heap_len;
  if (v->len)
    memcpy(dst->heap + dst->heap_len, src->heap + v->off, v->len);
  dst->heap_len += v->len;
}

/*
 * Appends to dst the entry of actor merged from sides a and b (dvvset.erl
 * merge/5): the side with the larger counter (a on ties) keeps those of its
 * values whose dots the other side has not seen overwritten, i.e. above the
 * other's counter minus its number of values. With ev non-NULL, a new event
 * of actor with value ev is added on top (counter one past the merge).
 */
static void obj__emit(obj *dst, uint64_t actor, const obj__side *a,
                      const obj__side *b, const obj_value *ev,
                      uint64_t now_ms) {
  const obj__side *w = a, *l = b;
  if (b->counter > a->counter) {
    w = b;
    l = a;
  }
  uint64_t seen_gone = l->counter - l->nvals; /* dots <= this are gone */
  uint64_t keep = w->counter - seen_gone;
  if (keep > w->nvals)
    keep = w->nvals;
  obj__ent *e = &dst->ents[dst->nents++];
  e->actor = actor;
  e->counter = w->counter;
  e->ts_ms = a->ts_ms > b->ts_ms ? a->ts_ms : b->ts_ms;
  e->vfirst = dst->nvals;
  e->nvals = (uint32_t)keep;
  if (ev) {
    obj__val *d = &dst->vals[dst->nvals++];
    d->flags = ev->flags & (OBJ_DELETED | OBJ_EXPIRES | OBJ_TYPED);
    d->ts_ms = ev->ts_ms;
    d->expires_ms = (d->flags & OBJ_EXPIRES) ? ev->expires_ms : 0;
    if (!d->expires_ms)
      d->flags &= ~OBJ_EXPIRES;
    d->off = dst->heap_len;
    d->len = ev->len;
    if (ev->len)
      memcpy(dst->heap + dst->heap_len, ev->data, ev->len);
    dst->heap_len += ev->len;
    e->counter++;
    e->nvals++;
    e->ts_ms = now_ms;
  }
  for (uint64_t j = 0; j < keep; j++)
    obj__put_val(dst, w->o, &w->o->vals[w->vfirst + j]);
}

static obj__side obj__side_of(const obj *o, uint32_t i) {
  const obj__ent *e = &o->ents[i];
  obj__side s = {o, e->counter, e->ts_ms, e->vfirst, e->nvals};
  return s;
}

/*
 * Merges objects a and b, or object a and context vv (b NULL), into the
 * empty object dst; with ev non-NULL also adds a new event of ev_actor.
 * Context entries are learned with timestamp now_ms. Returns 0 or
 * KV_ENOMEM.
 */
static int obj__merge(obj *dst, const obj *a, const obj *b, const obj__vv *vv,
                      uint32_t nvv, uint64_t ev_actor, const obj_value *ev,
                      uint64_t now_ms) {
  uint32_t nb = b ? b->nents : nvv;
  size_t cap_e = (size_t)a->nents + nb + 1;
  size_t cap_v = (size_t)a->nvals + (b ? b->nvals : 0) + (ev ? 1 : 0);
  size_t cap_h = a->heap_len + (b ? b->heap_len : 0) + (ev ? ev->len : 0);
  if (obj__alloc(dst, cap_e, cap_v, cap_h))
    return KV_ENOMEM;
  uint32_t i = 0, j = 0;
  bool ev_done = ev == NULL;
  const obj__side none = {NULL, 0, 0, 0, 0};
  while (i < a->nents || j < nb || !ev_done) {
    uint64_t ka = i < a->nents ? a->ents[i].actor : UINT64_MAX;
    uint64_t kb = j < nb ? (b ? b->ents[j].actor : vv[j].actor) : UINT64_MAX;
    bool has_a = i < a->nents, has_b = j < nb;
    uint64_t k = UINT64_MAX;
    if (has_a)
      k = ka;
    if (has_b && (!has_a || kb < k))
      k = kb;
    if (!ev_done && (!(has_a || has_b) || ev_actor < k))
      k = ev_actor;
    obj__side sa = none, sb = none;
    if (has_a && ka == k)
      sa = obj__side_of(a, i++);
    if (has_b && kb == k) {
      if (b) {
        sb = obj__side_of(b, j++);
      } else {
        /* A context entry is news (timestamp now) only for an actor the
         * object did not know. */
        sb.counter = vv[j++].counter;
        sb.ts_ms = sa.counter ? 0 : now_ms;
      }
    }
    bool is_ev = !ev_done && ev_actor == k;
    if (is_ev)
      ev_done = true;
    obj__emit(dst, k, &sa, &sb, is_ev ? ev : NULL, now_ms);
  }
  return 0;
}

/* Drops value-less entries of o: all those older than lim->prune_age_ms
 * (when set), then the oldest ones while o has more than entries_max. */
static void obj__prune(obj *o, uint64_t now_ms, const obj_limits *lim) {
  if (lim->prune_age_ms) {
    uint32_t w = 0;
    for (uint32_t i = 0; i < o->nents; i++) {
      const obj__ent *e = &o->ents[i];
      bool old = e->nvals == 0 && now_ms > e->ts_ms &&
                 now_ms - e->ts_ms > lim->prune_age_ms;
      if (!old)
        o->ents[w++] = *e;
    }
    o->nents = w;
  }
  while (lim->entries_max && o->nents > lim->entries_max) {
    uint32_t victim = UINT32_MAX;
    for (uint32_t i = 0; i < o->nents; i++)
      if (o->ents[i].nvals == 0 &&
          (victim == UINT32_MAX || o->ents[i].ts_ms < o->ents[victim].ts_ms))
        victim = i;
    if (victim == UINT32_MAX)
      break; /* every entry holds values: nothing may go */
    memmove(&o->ents[victim], &o->ents[victim + 1],
            (o->nents - victim - 1) * sizeof(obj__ent));
    o->nents--;
  }
}

int obj_update(obj *o, const uint8_t *ctx, size_t ctx_len, uint64_t actor,
               const obj_value *v, uint64_t now_ms, const obj_limits *lim,
               bool *warn) {
  obj__vv *vv = NULL;
  uint32_t nvv = 0;
  if (!lim)
    lim = &obj_limits_default;
  if (warn)
    *warn = false;
  if (lim->value_max && v->len > lim->value_max)
    return KV_ETOOBIG;
  if (ctx && ctx_len) {
    int rc = obj__read_context(ctx, ctx_len, NULL, &nvv);
    if (rc)
      return rc;
    if (nvv && !(vv = malloc(nvv * sizeof(obj__vv))))
      return KV_ENOMEM;
    obj__read_context(ctx, ctx_len, vv, &nvv);
  }
  obj res = {0};
  int rc = obj__merge(&res, o, NULL, vv, nvv, actor, v, now_ms);
  free(vv);
  if (rc)
    return rc;
  if (lim->siblings_max && res.nvals > lim->siblings_max) {
    obj__clear(&res);
    return KV_ESIBLINGS;
  }
  obj__prune(&res, now_ms, lim);
  if (warn && lim->siblings_warn && res.nvals > lim->siblings_warn)
    *warn = true;
  obj__swap_in(o, &res);
  return 0;
}

bool obj_descends(const obj *a, const obj *b) {
  uint32_t i = 0;
  for (uint32_t j = 0; j < b->nents; j++) {
    const obj__ent *eb = &b->ents[j];
    while (i < a->nents && a->ents[i].actor < eb->actor)
      i++;
    if (i == a->nents || a->ents[i].actor != eb->actor)
      return false;
    const obj__ent *ea = &a->ents[i];
    /* b must not have seen more of this actor, nor seen gone a value a
     * still holds: a's live dots all lie above b's gone floor. Equal
     * counters with different value lists are different histories. */
    if (ea->counter < eb->counter ||
        ea->counter - ea->nvals < eb->counter - eb->nvals)
      return false;
  }
  return true;
}

/* True when the clocks (actors, counters, value counts) of a and b match
 * and their values hold the same flags, timestamps and bytes. Entry
 * timestamps (pruning metadata) are not compared. */
bool obj_equal(const obj *a, const obj *b) {
  if (a->nents != b->nents || a->nvals != b->nvals)
    return false;
  for (uint32_t i = 0; i < a->nents; i++) {
    const obj__ent *x = &a->ents[i], *y = &b->ents[i];
    if (x->actor != y->actor || x->counter != y->counter ||
        x->nvals != y->nvals)
      return false;
  }
  for (uint32_t i = 0; i < a->nvals; i++) {
    const obj__val *x = &a->vals[i], *y = &b->vals[i];
    if (x->flags != y->flags || x->ts_ms != y->ts_ms ||
        x->expires_ms != y->expires_ms || x->len != y->len ||
        (x->len && memcmp(a->heap + x->off, b->heap + y->off, x->len)))
      return false;
  }
  return true;
}

int obj_sync(obj *local, const obj *remote, bool *changed) {
  if (changed)
    *changed = false;
  if (obj_descends(local, remote)) {
    /* Nothing to learn but newer entry timestamps. Those count as a
     * change, so that replicas store the same bytes once they have synced
     * (anti-entropy compares hashes of the stored encoding). */
    uint32_t i = 0;
    for (uint32_t j = 0; j < remote->nents; j++) {
      while (local->ents[i].actor < remote->ents[j].actor)
        i++;
      if (local->ents[i].ts_ms < remote->ents[j].ts_ms) {
        local->ents[i].ts_ms = remote->ents[j].ts_ms;
        if (changed)
          *changed = true;
      }
    }
    return 0;
  }
  obj res = {0};
  if (obj__merge(&res, local, remote, NULL, 0, 0, NULL, 0))
    return KV_ENOMEM;
  obj__swap_in(local, &res);
  if (changed)
    *changed = true;
  return 0;
}

/* ---- debugging ---- */

/* Appends formatted text to buf (cap bytes, *pos used), truncating. */
__attribute__((format(printf, 4, 5))) static void
obj__cat(char *buf, size_t cap, size_t *pos, const char *fmt, ...) {
  if (*pos + 1 >= cap)
    return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + *pos, cap - *pos, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  *pos += (size_t)n < cap - *pos ? (size_t)n : cap - *pos - 1;
}

const char *obj_debug(const obj *o, char *buf, size_t cap) {
  size_t pos = 0;
  if (cap == 0)
    return buf;
  buf[0] = '\0';
  obj__cat(buf, cap, &pos, "{");
  for (uint32_t i = 0; i < o->nents; i++) {
    const obj__ent *e = &o->ents[i];
    obj__cat(buf, cap, &pos, "%s%llx:%llu[", i ? " " : "",
             (unsigned long long)e->actor, (unsigned long long)e->counter);
    for (uint32_t j = 0; j < e->nvals; j++) {
      const obj__val *v = &o->vals[e->vfirst + j];
      if (j)
        obj__cat(buf, cap, &pos, ",");
      if (v->flags & OBJ_DELETED) {
        obj__cat(buf, cap, &pos, "~");
        continue;
      }
      for (size_t k = 0; k < v->len && k < OBJ__DEBUG_BYTES_MAX; k++) {
        uint8_t c = o->heap[v->off + k];
        obj__cat(buf, cap, &pos, "%c", (c >= 0x20 && c < 0x7f) ? c : '.');
      }
      if (v->len > OBJ__DEBUG_BYTES_MAX)
        obj__cat(buf, cap, &pos, "..");
    }
    obj__cat(buf, cap, &pos, "]");
  }
  obj__cat(buf, cap, &pos, "}");
  return buf;
}

int obj_raise(obj *o, uint64_t actor, uint64_t counter, uint64_t ts_ms) {
  kvbuf b;
  kvbuf_init(&b);
  msgpack_packer pk;
  mp_packer_init(&pk, &b);
  msgpack_pack_array(&pk, 2);
  msgpack_pack_uint32(&pk, OBJ_FORMAT_VERSION);
  msgpack_pack_array(&pk, 1);
  msgpack_pack_array(&pk, 4);
  msgpack_pack_uint64(&pk, actor);
  msgpack_pack_uint64(&pk, counter);
  msgpack_pack_uint64(&pk, ts_ms);
  msgpack_pack_array(&pk, 0);
  obj *floor = NULL;
  int rc = b.oom ? KV_ENOMEM : obj_decode(b.data, b.len, &floor);
  kvbuf_free(&b);
  if (rc == 0)
    rc = obj_sync(o, floor, NULL);
  obj_free(floor);
  return rc;
}

int obj_encode_clock(const obj *o, kvbuf *out) {
  kvbuf ctx;
  kvbuf_init(&ctx);
  int rc = obj_context(o, &ctx);
  mp_reader rd;
  uint32_t two, cnt;
  mp_reader_init(&rd, ctx.data, ctx.len);
  uint64_t ver;
  if (!rc && (mp_read_array(&rd, &two) || two != 2 ||
              mp_read_uint(&rd, &ver) || mp_read_array(&rd, &cnt)))
    rc = KV_ECORRUPT;
  msgpack_packer pk;
  mp_packer_init(&pk, out);
  if (!rc) {
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint32(&pk, OBJ_FORMAT_VERSION);
    msgpack_pack_array(&pk, cnt);
  }
  uint64_t now = 0;
  for (size_t i = 0; i < obj_sibling_count(o); i++) {
    obj_value v;
    if (obj_sibling(o, i, &v) == 0 && v.ts_ms > now)
      now = v.ts_ms;
  }
  for (uint32_t i = 0; !rc && i < cnt; i++) {
    uint32_t pair;
    uint64_t actor, counter;
    if (mp_read_array(&rd, &pair) || pair != 2 ||
        mp_read_uint(&rd, &actor) || mp_read_uint(&rd, &counter)) {
      rc = KV_ECORRUPT;
      break;
    }
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint64(&pk, actor);
    msgpack_pack_uint64(&pk, counter);
    msgpack_pack_uint64(&pk, now);
    msgpack_pack_array(&pk, 0);
  }
  kvbuf_free(&ctx);
  if (!rc && out->oom)
    rc = KV_ENOMEM;
  return rc;
}
