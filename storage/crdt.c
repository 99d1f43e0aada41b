/*
 * crdt.c: state-based data types merged by the server (see crdt.h).
 *
 * Sets and maps share one representation, a causal context (the clock)
 * over a tree of keys at most two levels deep: a set's keys are its
 * elements; a map's keys are its fields, whose own keys are a set field's
 * elements. A key holds a sorted list of dots, each with a payload (none
 * for set elements, a running total for counter fields, a timestamp and a
 * value for registers). One join (crdt__keys_join over crdt__ents_join)
 * serves every type: a dot survives when both sides hold it or the other
 * side's clock has not seen it, and a key without dots or sub-keys
 * disappears. That is the join of Almeida et al.'s causal dot stores,
 * a semilattice as long as every dot is covered by its clock, which the
 * decoder enforces. Where both sides hold one dot with different payloads
 * (never in states kvorum makes, possible in crafted ones) the greater
 * payload wins, so the laws hold for every decodable state.
 *
 * Every change builds its result aside (a join into new arrays, an apply
 * on a clone) and swaps it in at the end, so an error leaves the state as
 * it was.
 * Depends on: kv_err.h, mp.h, kv_json.h, kv_base64.h.
 */
#include "crdt.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_base64.h"
#include "kv_err.h"
#include "kv_json.h"

const crdt_limits crdt_limits_default = {
    .set_elems_max = 10000,
    .map_fields_max = 1000,
    .elem_bytes_max = 1024,
    .reg_bytes_max = 0,
};

/* Update codes of the operation encoding (crdt.h). */
enum {
  CRDT__ADD = 1,
  CRDT__REM = 2,
  CRDT__INCR = 3,
  CRDT__FIELD = 4,
  CRDT__ASSIGN = 5,
  CRDT__FIELD_REM = 6,
};
/* Bytes of a state before its msgpack body: magic, version, type. */
#define CRDT__HEAD_LEN 3
/* Elements of: a state body, a set element, a map field, an operation, a
 * context, an ASSIGN update. */
#define CRDT__BODY_FIELDS 2
#define CRDT__ELEM_FIELDS 2
#define CRDT__FIELD_FIELDS 3
#define CRDT__OP_FIELDS 4
#define CRDT__CTX_FIELDS 2
#define CRDT__ASSIGN_FIELDS 3
/* Msgpack values per entry of: a clock or dot list, a counter field, a
 * register field, a PN counter. */
#define CRDT__W_DOT 2
#define CRDT__W_TOTAL 3
#define CRDT__W_REG 4
#define CRDT__W_PN 3
/* Fewest encoded bytes of a set element or map field: no array of them
 * can claim more entries than the input holds bytes for. */
#define CRDT__KEY_BYTES_MIN 4
/* Fewest encoded bytes of an update ([code, x]). */
#define CRDT__UPD_BYTES_MIN 3
/* The operation type that fits a map of either kind (crdt.h). */
#define CRDT__OP_ANY_MAP CRDT_NONE
/* Where empty byte strings point, so no pointer arithmetic touches NULL. */
static const uint8_t crdt__empty[1];

typedef struct crdt__dot {
  uint64_t actor;
  uint64_t counter;
} crdt__dot;

/* A version vector: entries sorted by actor, counters >= 1. */
typedef struct crdt__clock {
  crdt__dot *v;
  uint32_t n;
} crdt__clock;

/* A dot with its payload: nothing (set elements), a running total in num
 * (counter fields, an int64 kept as its bits) or a timestamp in num and a
 * value (registers). */
typedef struct crdt__ent {
  uint64_t actor;
  uint64_t counter;
  uint64_t num;
  uint8_t *p; /* malloc'd, NULL when len is 0 */
  uint32_t len;
} crdt__ent;

/* Dots sorted by (actor, counter), distinct. */
typedef struct crdt__ents {
  crdt__ent *v;
  uint32_t n;
} crdt__ents;

typedef struct crdt__key crdt__key;
/* Keys sorted by (bytes, kind), distinct, none empty. */
typedef struct crdt__keys {
  crdt__key *v;
  uint32_t n;
} crdt__keys;

/* A set element (kind 0, dots) or a map field (kind, and dots or, for a
 * set field, sub: its elements). */
struct crdt__key {
  uint8_t *p; /* malloc'd, NULL when len is 0 */
  uint32_t len;
  uint8_t kind;
  crdt__ents dots;
  crdt__keys sub;
};

/* A PN counter's entry for one actor. */
typedef struct crdt__pn {
  uint64_t actor;
  uint64_t inc;
  uint64_t dec;
} crdt__pn;

struct crdt {
  crdt_type type;
  crdt__clock clock; /* sets and maps */
  crdt__keys keys;   /* sets: elements; maps: fields */
  crdt__pn *pn;      /* counters: sorted by actor */
  uint32_t npn;
};

/* A decoded update of an operation (crdt.h's layout). */
typedef struct crdt__upd {
  uint8_t code;   /* CRDT__ADD .. CRDT__FIELD_REM; FIELD is unwrapped */
  bool field;     /* an update of map field (name, kind) */
  uint8_t kind;   /* crdt_kind */
  kv_slice name;  /* field updates */
  kv_slice elems; /* ADD, REM: the msgpack elements, already checked */
  uint32_t nelems;
  int64_t delta;  /* INCR */
  kv_slice value; /* ASSIGN */
  uint64_t ts_ms; /* ASSIGN; 0 = now */
} crdt__upd;

struct crdt_op {
  crdt_type type; /* CRDT__OP_ANY_MAP for a map of either kind */
  crdt__upd *upd;
  uint32_t n;
  bool has_ctx;
  kv_slice ctx;
  uint8_t *buf; /* a copy of the encoding; the slices point into it */
};

/* ---- small helpers ---- */

__attribute__((format(printf, 2, 3))) static void
crdt__msg(crdt_result *res, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(res->msg, sizeof(res->msg), fmt, ap);
  va_end(ap);
}

/* Returns calloc'd room for n items of size bytes (NULL for n 0), or NULL
 * and *err KV_ENOMEM. */
static void *crdt__calloc(size_t n, size_t size, int *err) {
  if (n == 0)
    return NULL;
  void *p = calloc(n, size);
  if (!p)
    *err = KV_ENOMEM;
  return p;
}

/* Returns a malloc'd copy of len bytes (NULL for len 0), or NULL and *err
 * KV_ENOMEM. */
static uint8_t *crdt__dup(const uint8_t *p, size_t len, int *err) {
  if (len == 0)
    return NULL;
  uint8_t *d = malloc(len);
  if (!d) {
    *err = KV_ENOMEM;
    return NULL;
  }
  memcpy(d, p, len);
  return d;
}

static const uint8_t *crdt__bytes(const uint8_t *p) {
  return p ? p : crdt__empty;
}

/* Orders byte strings by their bytes, then by length. */
static int crdt__bytes_cmp(const uint8_t *a, size_t alen, const uint8_t *b,
                           size_t blen) {
  size_t n = alen < blen ? alen : blen;
  int c = n ? memcmp(a, b, n) : 0;
  if (c)
    return c;
  return alen < blen ? -1 : alen > blen;
}

static int crdt__u64_cmp(uint64_t a, uint64_t b) { return a < b ? -1 : a > b; }

static int crdt__dot_cmp(const crdt__ent *a, const crdt__ent *b) {
  int c = crdt__u64_cmp(a->actor, b->actor);
  return c ? c : crdt__u64_cmp(a->counter, b->counter);
}

/* Orders the payloads of one dot (for crafted states that disagree). */
static int crdt__payload_cmp(const crdt__ent *a, const crdt__ent *b) {
  int c = crdt__u64_cmp(a->num, b->num);
  return c ? c : crdt__bytes_cmp(a->p, a->len, b->p, b->len);
}

static int crdt__key_cmp(const uint8_t *p, size_t len, uint8_t kind,
                         const crdt__key *k) {
  int c = crdt__bytes_cmp(p, len, k->p, k->len);
  return c ? c : crdt__u64_cmp(kind, k->kind);
}

/* Adds b to *sum, saturating at the int64 range. */
static void crdt__sat_add(int64_t *sum, int64_t b) {
  if (b > 0 && *sum > INT64_MAX - b)
    *sum = INT64_MAX;
  else if (b < 0 && *sum < INT64_MIN - b)
    *sum = INT64_MIN;
  else
    *sum += b;
}

/* ---- clocks ---- */

/* Returns actor's counter in c (0 when absent) and in *pos (may be NULL)
 * its index or where it would go. */
static uint64_t crdt__clock_get(const crdt__clock *c, uint64_t actor,
                                uint32_t *pos) {
  uint32_t lo = 0, hi = c->n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (c->v[mid].actor < actor)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (pos)
    *pos = lo;
  return lo < c->n && c->v[lo].actor == actor ? c->v[lo].counter : 0;
}

static bool crdt__covered(const crdt__clock *c, uint64_t actor,
                          uint64_t counter) {
  return crdt__clock_get(c, actor, NULL) >= counter;
}

/* Makes out the entry-wise maximum of a and b. Returns 0 or KV_ENOMEM. */
static int crdt__clock_join(const crdt__clock *a, const crdt__clock *b,
                            crdt__clock *out) {
  int err = 0;
  out->n = 0;
  out->v = crdt__calloc((size_t)a->n + b->n, sizeof(crdt__dot), &err);
  if (err)
    return err;
  uint32_t i = 0, j = 0;
  while (i < a->n || j < b->n) {
    if (j == b->n || (i < a->n && a->v[i].actor < b->v[j].actor)) {
      out->v[out->n++] = a->v[i++];
    } else if (i == a->n || b->v[j].actor < a->v[i].actor) {
      out->v[out->n++] = b->v[j++];
    } else {
      crdt__dot d = a->v[i++];
      if (b->v[j].counter > d.counter)
        d.counter = b->v[j].counter;
      j++;
      out->v[out->n++] = d;
    }
  }
  return 0;
}

/* Raises actor's entry of c by one and sets *dot to the new counter.
 * Returns 0, KV_EINVAL (the counter is exhausted) or KV_ENOMEM. */
static int crdt__clock_next(crdt__clock *c, uint64_t actor, uint64_t *dot) {
  uint32_t pos;
  uint64_t cur = crdt__clock_get(c, actor, &pos);
  if (cur == UINT64_MAX)
    return KV_EINVAL;
  if (cur == 0) {
    crdt__dot *v = realloc(c->v, ((size_t)c->n + 1) * sizeof(crdt__dot));
    if (!v)
      return KV_ENOMEM;
    memmove(v + pos + 1, v + pos, (size_t)(c->n - pos) * sizeof(crdt__dot));
    v[pos].actor = actor;
    v[pos].counter = 0;
    c->v = v;
    c->n++;
  }
  *dot = ++c->v[pos].counter;
  return 0;
}

/* ---- dots and keys: freeing and copying ---- */

static void crdt__ents_free(crdt__ents *e) {
  for (uint32_t i = 0; i < e->n; i++)
    free(e->v[i].p);
  free(e->v);
  e->v = NULL;
  e->n = 0;
}

static void crdt__keys_free(crdt__keys *ks);

static void crdt__key_free(crdt__key *k) {
  free(k->p);
  k->p = NULL;
  crdt__ents_free(&k->dots);
  crdt__keys_free(&k->sub);
}

static void crdt__keys_free(crdt__keys *ks) {
  for (uint32_t i = 0; i < ks->n; i++)
    crdt__key_free(&ks->v[i]);
  free(ks->v);
  ks->v = NULL;
  ks->n = 0;
}

/* Copies src's dot and payload into dst. Returns 0 or KV_ENOMEM. */
static int crdt__ent_copy(crdt__ent *dst, const crdt__ent *src) {
  int err = 0;
  *dst = *src;
  dst->p = crdt__dup(src->p, src->len, &err);
  return err;
}

static bool crdt__key_empty(const crdt__key *k) {
  return k->dots.n == 0 && k->sub.n == 0;
}

/* Removes the empty keys of ks, in place. */
static void crdt__keys_compact(crdt__keys *ks) {
  uint32_t w = 0;
  for (uint32_t i = 0; i < ks->n; i++) {
    if (crdt__key_empty(&ks->v[i]))
      crdt__key_free(&ks->v[i]);
    else
      ks->v[w++] = ks->v[i];
  }
  ks->n = w;
  if (w == 0) {
    free(ks->v);
    ks->v = NULL;
  }
}

/* ---- the join ---- */

/* Joins dot lists a (of a state with clock ca) and b (clock cb) into out;
 * a or b NULL stands for none. Returns 0 or KV_ENOMEM (out empty). */
static int crdt__ents_join(const crdt__ents *a, const crdt__clock *ca,
                           const crdt__ents *b, const crdt__clock *cb,
                           crdt__ents *out) {
  static const crdt__ents none = {NULL, 0};
  int err = 0;
  a = a ? a : &none;
  b = b ? b : &none;
  out->n = 0;
  out->v = crdt__calloc((size_t)a->n + b->n, sizeof(crdt__ent), &err);
  uint32_t i = 0, j = 0;
  while (!err && (i < a->n || j < b->n)) {
    const crdt__ent *pick = NULL;
    int c = i == a->n ? 1 : j == b->n ? -1 : crdt__dot_cmp(&a->v[i], &b->v[j]);
    if (c < 0) {
      const crdt__ent *e = &a->v[i++];
      if (!crdt__covered(cb, e->actor, e->counter))
        pick = e;
    } else if (c > 0) {
      const crdt__ent *e = &b->v[j++];
      if (!crdt__covered(ca, e->actor, e->counter))
        pick = e;
    } else {
      pick = crdt__payload_cmp(&a->v[i], &b->v[j]) >= 0 ? &a->v[i] : &b->v[j];
      i++;
      j++;
    }
    if (pick)
      err = crdt__ent_copy(&out->v[out->n++], pick);
  }
  if (err)
    crdt__ents_free(out);
  else if (out->n == 0)
    crdt__ents_free(out);
  return err;
}

static int crdt__keys_join(const crdt__keys *a, const crdt__clock *ca,
                           const crdt__keys *b, const crdt__clock *cb,
                           crdt__keys *out);

/* Joins key ka (of the state with clock ca) with kb (clock cb) into out;
 * either may be NULL (absent on that side). out may come back empty. */
static int crdt__key_join(const crdt__key *ka, const crdt__clock *ca,
                          const crdt__key *kb, const crdt__clock *cb,
                          crdt__key *out) {
  const crdt__key *k = ka ? ka : kb;
  int err = 0;
  memset(out, 0, sizeof(*out));
  out->kind = k->kind;
  out->len = k->len;
  err = crdt__ents_join(ka ? &ka->dots : NULL, ca, kb ? &kb->dots : NULL, cb,
                        &out->dots);
  if (!err)
    err = crdt__keys_join(ka ? &ka->sub : NULL, ca, kb ? &kb->sub : NULL, cb,
                          &out->sub);
  if (!err && !crdt__key_empty(out))
    out->p = crdt__dup(k->p, k->len, &err);
  if (err)
    crdt__key_free(out);
  return err;
}

/* Joins key lists as crdt__ents_join joins dot lists, dropping keys left
 * without dots. Returns 0 or KV_ENOMEM (out empty). */
static int crdt__keys_join(const crdt__keys *a, const crdt__clock *ca,
                           const crdt__keys *b, const crdt__clock *cb,
                           crdt__keys *out) {
  static const crdt__keys none = {NULL, 0};
  int err = 0;
  a = a ? a : &none;
  b = b ? b : &none;
  out->n = 0;
  out->v = crdt__calloc((size_t)a->n + b->n, sizeof(crdt__key), &err);
  uint32_t i = 0, j = 0;
  while (!err && (i < a->n || j < b->n)) {
    const crdt__key *ka = NULL, *kb = NULL;
    int c = i == a->n   ? 1
            : j == b->n ? -1
                        : crdt__key_cmp(a->v[i].p, a->v[i].len, a->v[i].kind,
                                        &b->v[j]);
    if (c <= 0)
      ka = &a->v[i++];
    if (c >= 0)
      kb = &b->v[j++];
    crdt__key *k = &out->v[out->n];
    err = crdt__key_join(ka, ca, kb, cb, k);
    if (!err && !crdt__key_empty(k))
      out->n++;
  }
  if (err || out->n == 0)
    crdt__keys_free(out);
  return err;
}

/* Joins PN counters a and b into out->pn. Returns 0 or KV_ENOMEM. */
static int crdt__pn_join(const crdt *a, const crdt *b, crdt__pn **pn,
                         uint32_t *npn) {
  int err = 0;
  crdt__pn *v = crdt__calloc((size_t)a->npn + b->npn, sizeof(crdt__pn), &err);
  if (err)
    return err;
  uint32_t i = 0, j = 0, n = 0;
  while (i < a->npn || j < b->npn) {
    if (j == b->npn || (i < a->npn && a->pn[i].actor < b->pn[j].actor)) {
      v[n++] = a->pn[i++];
    } else if (i == a->npn || b->pn[j].actor < a->pn[i].actor) {
      v[n++] = b->pn[j++];
    } else {
      crdt__pn e = a->pn[i++];
      if (b->pn[j].inc > e.inc)
        e.inc = b->pn[j].inc;
      if (b->pn[j].dec > e.dec)
        e.dec = b->pn[j].dec;
      j++;
      v[n++] = e;
    }
  }
  *pn = v;
  *npn = n;
  return 0;
}

/* ---- life cycle ---- */

static bool crdt__type_valid(uint64_t t) {
  return t >= CRDT_SET && t <= CRDT_MAP_LWW;
}

static bool crdt__is_map(crdt_type t) {
  return t == CRDT_MAP_MV || t == CRDT_MAP_LWW;
}

crdt *crdt_new(crdt_type t) {
  if (!crdt__type_valid(t))
    return NULL;
  crdt *c = calloc(1, sizeof(crdt));
  if (c)
    c->type = t;
  return c;
}

/* Frees what c holds and leaves it empty (of the same type). */
static void crdt__clear(crdt *c) {
  free(c->clock.v);
  c->clock.v = NULL;
  c->clock.n = 0;
  crdt__keys_free(&c->keys);
  free(c->pn);
  c->pn = NULL;
  c->npn = 0;
}

void crdt_free(crdt *c) {
  if (!c)
    return;
  crdt__clear(c);
  free(c);
}

/* Moves src's contents into dst (freeing dst's) and frees src. */
static void crdt__swap_in(crdt *dst, crdt *src) {
  crdt__clear(dst);
  *dst = *src;
  free(src);
}

crdt *crdt_clone(const crdt *c) {
  crdt *d = crdt_new(c->type);
  if (!d)
    return NULL;
  /* A join with nothing copies: an empty clock covers no dot. */
  static const crdt__clock none = {NULL, 0};
  int err = 0;
  d->clock.v = crdt__calloc(c->clock.n, sizeof(crdt__dot), &err);
  d->pn = crdt__calloc(c->npn, sizeof(crdt__pn), &err);
  if (!err)
    err = crdt__keys_join(&c->keys, &none, NULL, &none, &d->keys);
  if (err) {
    crdt_free(d);
    return NULL;
  }
  if (c->clock.n)
    memcpy(d->clock.v, c->clock.v, c->clock.n * sizeof(crdt__dot));
  d->clock.n = c->clock.n;
  if (c->npn)
    memcpy(d->pn, c->pn, c->npn * sizeof(crdt__pn));
  d->npn = c->npn;
  return d;
}

crdt_type crdt_type_of(const crdt *c) { return c->type; }

const char *crdt_type_name(crdt_type t) {
  switch (t) {
  case CRDT_SET:
    return "set";
  case CRDT_COUNTER:
    return "counter";
  case CRDT_MAP_MV:
    return "map_mv";
  case CRDT_MAP_LWW:
    return "map_lww";
  default:
    return "none";
  }
}

int crdt_join(crdt *into, const crdt *other) {
  if (into->type != other->type)
    return KV_ETYPE;
  crdt *j = crdt_new(into->type);
  if (!j)
    return KV_ENOMEM;
  int err;
  if (into->type == CRDT_COUNTER) {
    err = crdt__pn_join(into, other, &j->pn, &j->npn);
  } else {
    err = crdt__keys_join(&into->keys, &into->clock, &other->keys,
                          &other->clock, &j->keys);
    if (!err)
      err = crdt__clock_join(&into->clock, &other->clock, &j->clock);
  }
  if (err) {
    crdt_free(j);
    return err;
  }
  crdt__swap_in(into, j);
  return 0;
}

/* ---- encoding ---- */

static void crdt__pack_clock(msgpack_packer *pk, const crdt__clock *c) {
  msgpack_pack_array(pk, (size_t)c->n * CRDT__W_DOT);
  for (uint32_t i = 0; i < c->n; i++) {
    msgpack_pack_uint64(pk, c->v[i].actor);
    msgpack_pack_uint64(pk, c->v[i].counter);
  }
}

/* Packs dots with the payload that width (CRDT__W_*) says. */
static void crdt__pack_ents(msgpack_packer *pk, const crdt__ents *e,
                            unsigned width) {
  msgpack_pack_array(pk, (size_t)e->n * width);
  for (uint32_t i = 0; i < e->n; i++) {
    const crdt__ent *d = &e->v[i];
    msgpack_pack_uint64(pk, d->actor);
    msgpack_pack_uint64(pk, d->counter);
    if (width == CRDT__W_TOTAL) {
      msgpack_pack_int64(pk, (int64_t)d->num);
    } else if (width == CRDT__W_REG) {
      msgpack_pack_uint64(pk, d->num);
      mp_pack_bin(pk, crdt__bytes(d->p), d->len);
    }
  }
}

static void crdt__pack_elems(msgpack_packer *pk, const crdt__keys *ks) {
  msgpack_pack_array(pk, ks->n);
  for (uint32_t i = 0; i < ks->n; i++) {
    msgpack_pack_array(pk, CRDT__ELEM_FIELDS);
    mp_pack_bin(pk, crdt__bytes(ks->v[i].p), ks->v[i].len);
    crdt__pack_ents(pk, &ks->v[i].dots, CRDT__W_DOT);
  }
}

static void crdt__pack_fields(msgpack_packer *pk, const crdt__keys *ks) {
  msgpack_pack_array(pk, ks->n);
  for (uint32_t i = 0; i < ks->n; i++) {
    const crdt__key *f = &ks->v[i];
    msgpack_pack_array(pk, CRDT__FIELD_FIELDS);
    mp_pack_bin(pk, crdt__bytes(f->p), f->len);
    msgpack_pack_uint8(pk, f->kind);
    if (f->kind == CRDT_KIND_SET)
      crdt__pack_elems(pk, &f->sub);
    else
      crdt__pack_ents(pk, &f->dots,
                      f->kind == CRDT_KIND_COUNTER ? CRDT__W_TOTAL
                                                   : CRDT__W_REG);
  }
}

int crdt_encode(const crdt *c, kvbuf *out) {
  const uint8_t head[CRDT__HEAD_LEN] = {CRDT_MAGIC, CRDT_FORMAT_VERSION,
                                        (uint8_t)c->type};
  kvbuf_append(out, head, sizeof(head));
  msgpack_packer pk;
  mp_packer_init(&pk, out);
  if (c->type == CRDT_COUNTER) {
    msgpack_pack_array(&pk, (size_t)c->npn * CRDT__W_PN);
    for (uint32_t i = 0; i < c->npn; i++) {
      msgpack_pack_uint64(&pk, c->pn[i].actor);
      msgpack_pack_uint64(&pk, c->pn[i].inc);
      msgpack_pack_uint64(&pk, c->pn[i].dec);
    }
  } else {
    msgpack_pack_array(&pk, CRDT__BODY_FIELDS);
    crdt__pack_clock(&pk, &c->clock);
    if (c->type == CRDT_SET)
      crdt__pack_elems(&pk, &c->keys);
    else
      crdt__pack_fields(&pk, &c->keys);
  }
  return out->oom ? KV_ENOMEM : 0;
}

bool crdt_equal(const crdt *a, const crdt *b) {
  if (a->type != b->type)
    return false;
  kvbuf ea, eb;
  kvbuf_init(&ea);
  kvbuf_init(&eb);
  bool eq = crdt_encode(a, &ea) == 0 && crdt_encode(b, &eb) == 0 &&
            ea.len == eb.len && memcmp(ea.data, eb.data, ea.len) == 0;
  kvbuf_free(&ea);
  kvbuf_free(&eb);
  return eq;
}

/* ---- decoding ---- */

bool crdt_is_state(const uint8_t *buf, size_t len) {
  return len >= CRDT__HEAD_LEN && buf[0] == CRDT_MAGIC &&
         buf[1] == CRDT_FORMAT_VERSION && crdt__type_valid(buf[2]);
}

/* Reads the header of a flat array of width values per entry and
 * allocates room for its entries of size bytes each: *n of them, none
 * when empty_ok is false. Returns 0, KV_EPROTO, KV_ECORRUPT or KV_ENOMEM. */
static int crdt__read_flat(mp_reader *r, unsigned width, bool empty_ok,
                           size_t size, void **room, uint32_t *n) {
  int err = 0;
  if (mp_read_array(r, n))
    return KV_EPROTO;
  if (*n % width || (!empty_ok && *n == 0))
    return KV_ECORRUPT;
  *n /= width;
  *room = crdt__calloc(*n, size, &err);
  return err;
}

/* Reads a flat clock [actor, counter, ...] into out (which must be empty).
 * Returns 0, KV_EPROTO, KV_ECORRUPT or KV_ENOMEM. */
static int crdt__read_clock(mp_reader *r, crdt__clock *out) {
  uint32_t n = 0;
  void *room = NULL;
  int err = crdt__read_flat(r, CRDT__W_DOT, true, sizeof(crdt__dot), &room, &n);
  out->v = room;
  if (err)
    return err;
  for (uint32_t i = 0; i < n; i++) {
    crdt__dot d;
    if (mp_read_uint(r, &d.actor) || mp_read_uint(r, &d.counter))
      return KV_EPROTO;
    if (d.counter == 0 || (i > 0 && d.actor <= out->v[i - 1].actor))
      return KV_ECORRUPT;
    out->v[out->n++] = d;
  }
  return 0;
}

/* Reads a non-empty dot list with width (CRDT__W_*) values per dot, every
 * dot covered by clock, into out (empty). */
static int crdt__read_ents(mp_reader *r, unsigned width,
                           const crdt__clock *clock, crdt__ents *out) {
  uint32_t n = 0;
  void *room = NULL;
  int err = crdt__read_flat(r, width, false, sizeof(crdt__ent), &room, &n);
  out->v = room;
  if (err)
    return err;
  for (uint32_t i = 0; i < n; i++) {
    crdt__ent *e = &out->v[out->n];
    if (mp_read_uint(r, &e->actor) || mp_read_uint(r, &e->counter))
      return KV_EPROTO;
    if (width == CRDT__W_TOTAL) {
      int64_t total;
      if (mp_read_int(r, &total))
        return KV_EPROTO;
      e->num = (uint64_t)total;
    } else if (width == CRDT__W_REG) {
      kv_slice v;
      if (mp_read_uint(r, &e->num) || mp_read_bytes(r, &v))
        return KV_EPROTO;
      if (v.len > UINT32_MAX)
        return KV_ECORRUPT;
      e->len = (uint32_t)v.len;
      e->p = crdt__dup(v.ptr, v.len, &err);
      if (err)
        return err;
    }
    out->n++;
    if (e->counter == 0 || !crdt__covered(clock, e->actor, e->counter) ||
        (i > 0 && crdt__dot_cmp(&out->v[i - 1], e) >= 0))
      return KV_ECORRUPT;
  }
  return 0;
}

/* Makes k the key (s, kind), which must order after prev (NULL: the
 * first of its list). Returns 0, KV_ECORRUPT or KV_ENOMEM. */
static int crdt__key_init(crdt__key *k, kv_slice s, uint8_t kind,
                          const crdt__key *prev) {
  int err = 0;
  if (s.len > UINT32_MAX || (prev && crdt__key_cmp(s.ptr, s.len, kind, prev) <= 0))
    return KV_ECORRUPT;
  k->kind = kind;
  k->len = (uint32_t)s.len;
  k->p = crdt__dup(s.ptr, s.len, &err);
  return err;
}

/* Reads a key array header and allocates out->v. */
static int crdt__read_keys_head(mp_reader *r, crdt__keys *out, uint32_t *n) {
  int err = 0;
  if (mp_read_array(r, n))
    return KV_EPROTO;
  if (*n > mp_remaining(r) / CRDT__KEY_BYTES_MIN)
    return KV_EPROTO;
  out->v = crdt__calloc(*n, sizeof(crdt__key), &err);
  return err;
}

/* Reads set elements [[elem, dots], ...] into out (empty). */
static int crdt__read_elems(mp_reader *r, const crdt__clock *clock,
                            crdt__keys *out) {
  uint32_t n = 0, nf = 0;
  int err = crdt__read_keys_head(r, out, &n);
  for (uint32_t i = 0; !err && i < n; i++) {
    crdt__key *k = &out->v[out->n++];
    kv_slice elem;
    if (mp_read_array(r, &nf) || nf != CRDT__ELEM_FIELDS ||
        mp_read_bytes(r, &elem))
      return KV_EPROTO;
    err = crdt__key_init(k, elem, 0, i ? &out->v[i - 1] : NULL);
    if (!err)
      err = crdt__read_ents(r, CRDT__W_DOT, clock, &k->dots);
  }
  return err;
}

/* Reads map fields [[name, kind, content], ...] into out (empty). */
static int crdt__read_fields(mp_reader *r, const crdt__clock *clock,
                             crdt__keys *out) {
  uint32_t n = 0, nf = 0;
  int err = crdt__read_keys_head(r, out, &n);
  for (uint32_t i = 0; !err && i < n; i++) {
    crdt__key *k = &out->v[out->n++];
    uint64_t kind = 0;
    kv_slice name;
    if (mp_read_array(r, &nf) || nf != CRDT__FIELD_FIELDS ||
        mp_read_bytes(r, &name) || mp_read_uint(r, &kind))
      return KV_EPROTO;
    if (kind < CRDT_KIND_COUNTER || kind > CRDT_KIND_REGISTER)
      return KV_ECORRUPT;
    err = crdt__key_init(k, name, (uint8_t)kind, i ? &out->v[i - 1] : NULL);
    if (err)
      return err;
    if (kind == CRDT_KIND_SET) {
      err = crdt__read_elems(r, clock, &k->sub);
      if (!err && k->sub.n == 0)
        err = KV_ECORRUPT;
    } else {
      err = crdt__read_ents(
          r, kind == CRDT_KIND_COUNTER ? CRDT__W_TOTAL : CRDT__W_REG, clock,
          &k->dots);
    }
  }
  return err;
}

/* Reads a PN counter body into c. */
static int crdt__read_pn(mp_reader *r, crdt *c) {
  uint32_t n = 0;
  void *room = NULL;
  int err = crdt__read_flat(r, CRDT__W_PN, true, sizeof(crdt__pn), &room, &n);
  c->pn = room;
  if (err)
    return err;
  for (uint32_t i = 0; i < n; i++) {
    crdt__pn e;
    if (mp_read_uint(r, &e.actor) || mp_read_uint(r, &e.inc) ||
        mp_read_uint(r, &e.dec))
      return KV_EPROTO;
    if ((e.inc == 0 && e.dec == 0) || (i > 0 && e.actor <= c->pn[i - 1].actor))
      return KV_ECORRUPT;
    c->pn[c->npn++] = e;
  }
  return 0;
}

int crdt_decode(const uint8_t *buf, size_t len, crdt **out) {
  *out = NULL;
  if (len < CRDT__HEAD_LEN || buf[0] != CRDT_MAGIC)
    return KV_EPROTO;
  if (buf[1] != CRDT_FORMAT_VERSION)
    return KV_EVERSION;
  if (!crdt__type_valid(buf[2]))
    return KV_EPROTO;
  crdt *c = crdt_new((crdt_type)buf[2]);
  if (!c)
    return KV_ENOMEM;
  mp_reader r;
  mp_reader_init(&r, buf + CRDT__HEAD_LEN, len - CRDT__HEAD_LEN);
  int err;
  uint32_t n = 0;
  if (c->type == CRDT_COUNTER) {
    err = crdt__read_pn(&r, c);
  } else if (mp_read_array(&r, &n) || n != CRDT__BODY_FIELDS) {
    err = KV_EPROTO;
  } else {
    err = crdt__read_clock(&r, &c->clock);
    if (!err && c->type == CRDT_SET)
      err = crdt__read_elems(&r, &c->clock, &c->keys);
    else if (!err)
      err = crdt__read_fields(&r, &c->clock, &c->keys);
  }
  if (!err && mp_remaining(&r) != 0)
    err = KV_EPROTO;
  if (err) {
    crdt_free(c);
    return err;
  }
  *out = c;
  return 0;
}

/* ---- contexts ---- */

int crdt_context(const crdt *c, kvbuf *out) {
  msgpack_packer pk;
  mp_packer_init(&pk, out);
  msgpack_pack_array(&pk, CRDT__CTX_FIELDS);
  msgpack_pack_uint8(&pk, CRDT_CTX_VERSION);
  crdt__pack_clock(&pk, &c->clock);
  return out->oom ? KV_ENOMEM : 0;
}

/* Decodes a context into clock (empty; the caller frees clock->v).
 * Returns 0, KV_EPROTO or KV_ENOMEM. */
static int crdt__ctx_decode(const uint8_t *ctx, size_t len,
                            crdt__clock *clock) {
  mp_reader r;
  uint32_t n = 0;
  uint64_t version = 0;
  mp_reader_init(&r, ctx ? ctx : crdt__empty, len);
  if (mp_read_array(&r, &n) || n != CRDT__CTX_FIELDS ||
      mp_read_uint(&r, &version) || version != CRDT_CTX_VERSION)
    return KV_EPROTO;
  int err = crdt__read_clock(&r, clock);
  if (!err && mp_remaining(&r) != 0)
    err = KV_EPROTO;
  return err == KV_ECORRUPT ? KV_EPROTO : err;
}

int crdt_context_check(const uint8_t *ctx, size_t len) {
  crdt__clock c = {NULL, 0};
  int err = crdt__ctx_decode(ctx, len, &c);
  free(c.v);
  return err;
}

/* ---- operations: decoding ---- */

void crdt_op_free(crdt_op *op) {
  if (!op)
    return;
  free(op->upd);
  free(op->buf);
  free(op);
}

crdt_type crdt_op_type(const crdt_op *op) {
  return op->type == CRDT__OP_ANY_MAP ? CRDT_MAP_MV : op->type;
}

bool crdt_op_fits(const crdt_op *op, crdt_type t) {
  if (op->type == CRDT__OP_ANY_MAP)
    return crdt__is_map(t);
  return op->type == t;
}

/* Reads [elem, ...] of an ADD or REM, remembering the raw elements. */
static int crdt__read_op_elems(mp_reader *r, crdt__upd *u) {
  uint32_t n = 0;
  kv_slice e;
  if (mp_read_array(r, &n))
    return KV_EPROTO;
  u->elems.ptr = r->p;
  u->nelems = n;
  for (uint32_t i = 0; i < n; i++)
    if (mp_read_bytes(r, &e))
      return KV_EPROTO;
  u->elems.len = (size_t)(r->p - u->elems.ptr);
  return 0;
}

/* Reads the rest of an update whose code (already read) is in u->code and
 * whose array had nf elements. Which codes are allowed: set_ok (ADD, REM),
 * counter_ok (INCR), register_ok (ASSIGN). */
static int crdt__read_upd_body(mp_reader *r, crdt__upd *u, uint32_t nf,
                               bool set_ok, bool counter_ok,
                               bool register_ok) {
  switch (u->code) {
  case CRDT__ADD:
  case CRDT__REM:
    if (!set_ok || nf != 2)
      return KV_EPROTO;
    return crdt__read_op_elems(r, u);
  case CRDT__INCR:
    if (!counter_ok || nf != 2 || mp_read_int(r, &u->delta))
      return KV_EPROTO;
    return 0;
  case CRDT__ASSIGN:
    if (!register_ok || nf != CRDT__ASSIGN_FIELDS ||
        mp_read_bytes(r, &u->value) || mp_read_uint(r, &u->ts_ms))
      return KV_EPROTO;
    return 0;
  default:
    return KV_EPROTO;
  }
}

/* Reads an update array's header and code. */
static int crdt__read_upd_head(mp_reader *r, uint32_t *nf, uint8_t *code) {
  uint32_t c = 0;
  if (mp_read_array(r, nf) || *nf < 2 || mp_read_u32(r, &c) || c > UINT8_MAX)
    return KV_EPROTO;
  *code = (uint8_t)c;
  return 0;
}

/* Reads one update of an operation of type t into u. */
static int crdt__read_upd(mp_reader *r, crdt_type t, crdt__upd *u) {
  uint32_t nf = 0;
  if (crdt__read_upd_head(r, &nf, &u->code))
    return KV_EPROTO;
  if (t == CRDT_SET)
    return crdt__read_upd_body(r, u, nf, true, false, false);
  if (t == CRDT_COUNTER)
    return crdt__read_upd_body(r, u, nf, false, true, false);
  /* A map: FIELD or FIELD_REM. */
  uint32_t kind = 0;
  if (u->code != CRDT__FIELD && u->code != CRDT__FIELD_REM)
    return KV_EPROTO;
  if (nf != (u->code == CRDT__FIELD ? 4u : 3u) ||
      mp_read_bytes(r, &u->name) || mp_read_u32(r, &kind) ||
      kind > CRDT_KIND_REGISTER)
    return KV_EPROTO;
  u->field = true;
  u->kind = (uint8_t)kind;
  if (u->code == CRDT__FIELD_REM)
    return 0;
  if (kind == CRDT_KIND_ANY || crdt__read_upd_head(r, &nf, &u->code))
    return KV_EPROTO;
  return crdt__read_upd_body(r, u, nf, kind == CRDT_KIND_SET,
                             kind == CRDT_KIND_COUNTER,
                             kind == CRDT_KIND_REGISTER);
}

int crdt_op_decode(const uint8_t *buf, size_t len, crdt_op **out) {
  *out = NULL;
  int err = 0;
  if (len > UINT32_MAX)
    return KV_ETOOBIG;
  crdt_op *op = calloc(1, sizeof(crdt_op));
  if (!op)
    return KV_ENOMEM;
  op->buf = crdt__dup(buf, len, &err);
  if (err) {
    free(op);
    return err;
  }
  mp_reader r;
  uint32_t n = 0, nupd = 0;
  uint64_t version = 0, type = 0;
  mp_reader_init(&r, crdt__bytes(op->buf), len);
  if (mp_read_array(&r, &n) || n != CRDT__OP_FIELDS ||
      mp_read_uint(&r, &version))
    err = KV_EPROTO;
  else if (version != CRDT_OP_VERSION)
    err = KV_EVERSION;
  else if (mp_read_uint(&r, &type) ||
           (type != CRDT__OP_ANY_MAP && !crdt__type_valid(type)) ||
           mp_read_array(&r, &nupd) || nupd == 0 ||
           nupd > mp_remaining(&r) / CRDT__UPD_BYTES_MIN)
    err = KV_EPROTO;
  if (!err) {
    op->type = (crdt_type)type;
    op->upd = crdt__calloc(nupd, sizeof(crdt__upd), &err);
  }
  for (uint32_t i = 0; !err && i < nupd; i++) {
    err = crdt__read_upd(&r, crdt__is_map(op->type) ||
                                     op->type == CRDT__OP_ANY_MAP
                                 ? CRDT_MAP_MV
                                 : op->type,
                         &op->upd[i]);
    op->n++;
  }
  if (!err && mp_peek(&r) == MP_NIL) {
    err = mp_read_nil(&r);
  } else if (!err) {
    op->has_ctx = true;
    if (mp_read_bytes(&r, &op->ctx) ||
        crdt_context_check(op->ctx.ptr, op->ctx.len))
      err = KV_EPROTO;
  }
  if (!err && mp_remaining(&r) != 0)
    err = KV_EPROTO;
  if (err) {
    crdt_op_free(op);
    return err;
  }
  *out = op;
  return 0;
}

bool crdt_op_behind(const crdt *c, const crdt_op *op) {
  if (!op->has_ctx)
    return false;
  crdt__clock ctx = {NULL, 0};
  bool behind = false;
  if (crdt__ctx_decode(op->ctx.ptr, op->ctx.len, &ctx) == 0)
    for (uint32_t i = 0; i < ctx.n && !behind; i++)
      behind = !crdt__covered(&c->clock, ctx.v[i].actor, ctx.v[i].counter);
  free(ctx.v);
  return behind;
}

/* ---- operations: applying ---- */

/* What one crdt_apply works with. */
typedef struct crdt__app {
  crdt *w;                 /* the clone being changed */
  uint64_t actor;
  uint64_t dot;            /* 0 until the first update that needs it */
  const crdt__clock *ctx;  /* NULL: remove all the state holds */
  uint64_t now_ms;
  const crdt_limits *lim;
  crdt_result *res;
  const crdt__upd *last_incr; /* map: the last counter field updated */
} crdt__app;

/* Sets a->dot to the operation's dot, made on first use. */
static int crdt__app_dot(crdt__app *a) {
  if (a->dot)
    return 0;
  int err = crdt__clock_next(&a->w->clock, a->actor, &a->dot);
  if (err == KV_EINVAL)
    crdt__msg(a->res, "actor %016" PRIx64 " has no counters left",
              a->actor);
  return err;
}

/* Finds key (p, len, kind) in ks. Returns its index, or -1 and *pos where
 * it would go. */
static long crdt__keys_find(const crdt__keys *ks, const uint8_t *p,
                            size_t len, uint8_t kind, uint32_t *pos) {
  uint32_t lo = 0, hi = ks->n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    int c = crdt__key_cmp(p, len, kind, &ks->v[mid]);
    if (c == 0)
      return (long)mid;
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  if (pos)
    *pos = lo;
  return -1;
}

/* Drops the dots of e that ctx covers (all of them when ctx is NULL), or,
 * with only_actor set, every dot of that actor. */
static void crdt__ents_forget(crdt__ents *e, const crdt__clock *ctx,
                              bool only_actor, uint64_t actor) {
  uint32_t w = 0;
  for (uint32_t i = 0; i < e->n; i++) {
    crdt__ent *d = &e->v[i];
    bool drop = only_actor ? d->actor == actor
                           : !ctx || crdt__covered(ctx, d->actor, d->counter);
    if (drop)
      free(d->p);
    else
      e->v[w++] = *d;
  }
  e->n = w;
  if (w == 0) {
    free(e->v);
    e->v = NULL;
  }
}

/* Adds dot (actor, counter) with payload (num, copy of p) to e, which
 * holds no dot ordering after it for that actor. */
static int crdt__ents_put(crdt__ents *e, uint64_t actor, uint64_t counter,
                          uint64_t num, kv_slice p) {
  int err = 0;
  crdt__ent d = {actor, counter, num, NULL, (uint32_t)p.len};
  d.p = crdt__dup(p.ptr, p.len, &err);
  crdt__ent *v = err ? NULL : realloc(e->v, ((size_t)e->n + 1) * sizeof(d));
  if (!v) {
    free(d.p);
    return KV_ENOMEM;
  }
  uint32_t pos = e->n;
  while (pos > 0 && crdt__dot_cmp(&v[pos - 1], &d) > 0)
    pos--;
  memmove(v + pos + 1, v + pos, (size_t)(e->n - pos) * sizeof(d));
  v[pos] = d;
  e->v = v;
  e->n++;
  return 0;
}

static int crdt__slice_cmp(const void *x, const void *y) {
  const kv_slice *a = x, *b = y;
  return crdt__bytes_cmp(a->ptr, a->len, b->ptr, b->len);
}

/* Reads update u's elements into a sorted array without duplicates
 * (*out, caller frees; *n of them), checking elem_bytes_max. */
static int crdt__upd_elems(crdt__app *a, const crdt__upd *u, kv_slice **out,
                           uint32_t *n) {
  int err = 0;
  mp_reader r;
  kv_slice *v = crdt__calloc(u->nelems, sizeof(kv_slice), &err);
  *out = NULL;
  *n = 0;
  if (err)
    return err;
  mp_reader_init(&r, u->elems.ptr, u->elems.len);
  for (uint32_t i = 0; i < u->nelems; i++) {
    mp_read_bytes(&r, &v[i]); /* checked by crdt_op_decode */
    if (a->lim->elem_bytes_max && v[i].len > a->lim->elem_bytes_max) {
      crdt__msg(a->res,
                "an element of %zu bytes is over the limit of %" PRIu32
                " bytes (elem_bytes_max)",
                v[i].len, a->lim->elem_bytes_max);
      free(v);
      return KV_ETOOBIG;
    }
  }
  if (u->nelems)
    qsort(v, u->nelems, sizeof(kv_slice), crdt__slice_cmp);
  uint32_t w = 0;
  for (uint32_t i = 0; i < u->nelems; i++)
    if (w == 0 || crdt__slice_cmp(&v[w - 1], &v[i]) != 0)
      v[w++] = v[i];
  *out = v;
  *n = w;
  return 0;
}

/* Adds u's elements to the set ks with the operation's dot: an element
 * present keeps only the new dot. */
static int crdt__set_add(crdt__app *a, crdt__keys *ks, const crdt__upd *u) {
  kv_slice *e;
  uint32_t n, fresh = 0;
  int err = crdt__upd_elems(a, u, &e, &n);
  if (!err && n)
    err = crdt__app_dot(a);
  for (uint32_t i = 0; !err && i < n; i++)
    fresh += crdt__keys_find(ks, e[i].ptr, e[i].len, 0, NULL) < 0;
  uint64_t total = (uint64_t)ks->n + fresh;
  if (!err && fresh && a->lim->set_elems_max &&
      total > a->lim->set_elems_max) {
    crdt__msg(a->res,
              "the set would hold %" PRIu64 " elements, over the limit of "
              "%" PRIu32 " (set_elems_max)",
              total, a->lim->set_elems_max);
    err = KV_ETOOBIG;
  }
  /* Present elements: the new dot replaces theirs. New ones are made
   * aside, in order, then merged in. */
  crdt__keys add = {NULL, 0};
  if (!err)
    add.v = crdt__calloc(fresh, sizeof(crdt__key), &err);
  for (uint32_t i = 0; !err && i < n; i++) {
    long at = crdt__keys_find(ks, e[i].ptr, e[i].len, 0, NULL);
    crdt__key *k = at >= 0 ? &ks->v[at] : &add.v[add.n++];
    if (at >= 0) {
      crdt__ents_forget(&k->dots, NULL, false, 0);
    } else {
      k->len = (uint32_t)e[i].len;
      k->p = crdt__dup(e[i].ptr, e[i].len, &err);
    }
    if (!err)
      err = crdt__ents_put(&k->dots, a->actor, a->dot, 0,
                           (kv_slice){NULL, 0});
  }
  crdt__key *v = NULL;
  if (!err && fresh)
    v = crdt__calloc(total, sizeof(crdt__key), &err);
  if (err) {
    crdt__keys_free(&add);
  } else if (fresh) {
    uint32_t i = 0, j = 0, k = 0;
    while (i < ks->n || j < add.n)
      v[k++] = j == add.n || (i < ks->n &&
                              crdt__key_cmp(ks->v[i].p, ks->v[i].len, 0,
                                            &add.v[j]) < 0)
                   ? ks->v[i++]
                   : add.v[j++];
    free(ks->v);
    free(add.v);
    ks->v = v;
    ks->n = k;
  }
  free(e);
  return err;
}

/* Removes from ks the dots of u's elements that the context covers. */
static int crdt__set_rem(crdt__app *a, crdt__keys *ks, const crdt__upd *u) {
  kv_slice *e;
  uint32_t n;
  int err = crdt__upd_elems(a, u, &e, &n);
  for (uint32_t i = 0; !err && i < n; i++) {
    long at = crdt__keys_find(ks, e[i].ptr, e[i].len, 0, NULL);
    if (at >= 0)
      crdt__ents_forget(&ks->v[at].dots, a->ctx, false, 0);
  }
  if (!err)
    crdt__keys_compact(ks);
  free(e);
  return err;
}

/* The newest dot of actor in e, or NULL. */
static const crdt__ent *crdt__ents_newest(const crdt__ents *e,
                                          uint64_t actor) {
  const crdt__ent *best = NULL;
  for (uint32_t i = 0; i < e->n; i++)
    if (e->v[i].actor == actor)
      best = &e->v[i];
  return best;
}

/* A counter field's value: per actor its newest dot's total, summed. */
static int64_t crdt__field_total(const crdt__ents *e) {
  int64_t sum = 0;
  for (uint32_t i = 0; i < e->n; i++)
    if (i + 1 == e->n || e->v[i + 1].actor != e->v[i].actor)
      crdt__sat_add(&sum, (int64_t)e->v[i].num);
  return sum;
}

/* True when a + b leaves the int64 range. */
static bool crdt__add_overflows(int64_t x, int64_t y) {
  return (y > 0 && x > INT64_MAX - y) || (y < 0 && x < INT64_MIN - y);
}

static int crdt__field_incr(crdt__app *a, crdt__key *f, const crdt__upd *u) {
  const crdt__ent *mine = crdt__ents_newest(&f->dots, a->actor);
  int64_t total = mine ? (int64_t)mine->num : 0;
  if (crdt__add_overflows(total, u->delta) ||
      crdt__add_overflows(crdt__field_total(&f->dots), u->delta)) {
    crdt__msg(a->res, "increment or decrement would overflow");
    return KV_EINVAL;
  }
  int err = crdt__app_dot(a);
  if (err)
    return err;
  crdt__ents_forget(&f->dots, NULL, true, a->actor);
  a->last_incr = u;
  return crdt__ents_put(&f->dots, a->actor, a->dot,
                        (uint64_t)(total + u->delta), (kv_slice){NULL, 0});
}

static int crdt__field_assign(crdt__app *a, crdt__key *f, const crdt__upd *u) {
  if (a->lim->reg_bytes_max && u->value.len > a->lim->reg_bytes_max) {
    crdt__msg(a->res,
              "a value of %zu bytes is over the limit of %" PRIu32
              " bytes (reg_bytes_max)",
              u->value.len, a->lim->reg_bytes_max);
    return KV_ETOOBIG;
  }
  int err = crdt__app_dot(a);
  if (err)
    return err;
  crdt__ents_forget(&f->dots, NULL, false, 0);
  return crdt__ents_put(&f->dots, a->actor, a->dot,
                        u->ts_ms ? u->ts_ms : a->now_ms, u->value);
}

/* Drops the dots of field f that the context covers. */
static void crdt__field_forget(crdt__app *a, crdt__key *f) {
  crdt__ents_forget(&f->dots, a->ctx, false, 0);
  for (uint32_t i = 0; i < f->sub.n; i++)
    crdt__ents_forget(&f->sub.v[i].dots, a->ctx, false, 0);
  crdt__keys_compact(&f->sub);
}

/* Applies a map update. */
static int crdt__map_upd(crdt__app *a, const crdt__upd *u) {
  crdt__keys *fs = &a->w->keys;
  if (u->code == CRDT__FIELD_REM) {
    for (uint8_t kind = CRDT_KIND_COUNTER; kind <= CRDT_KIND_REGISTER; kind++) {
      long at = crdt__keys_find(fs, u->name.ptr, u->name.len, kind, NULL);
      if (at >= 0 && (u->kind == CRDT_KIND_ANY || u->kind == kind))
        crdt__field_forget(a, &fs->v[at]);
    }
    crdt__keys_compact(fs);
    return 0;
  }
  uint32_t pos = 0;
  long at = crdt__keys_find(fs, u->name.ptr, u->name.len, u->kind, &pos);
  if (at < 0) {
    int err = 0;
    if (a->lim->elem_bytes_max && u->name.len > a->lim->elem_bytes_max) {
      crdt__msg(a->res,
                "a field name of %zu bytes is over the limit of %" PRIu32
                " bytes (elem_bytes_max)",
                u->name.len, a->lim->elem_bytes_max);
      return KV_ETOOBIG;
    }
    if (a->lim->map_fields_max && fs->n >= a->lim->map_fields_max) {
      crdt__msg(a->res,
                "the map would hold %" PRIu32 " fields, over the limit of "
                "%" PRIu32 " (map_fields_max)",
                fs->n + 1, a->lim->map_fields_max);
      return KV_ETOOBIG;
    }
    crdt__key nk = {0};
    nk.kind = u->kind;
    nk.len = (uint32_t)u->name.len;
    nk.p = crdt__dup(u->name.ptr, u->name.len, &err);
    crdt__key *v =
        err ? NULL : realloc(fs->v, ((size_t)fs->n + 1) * sizeof(crdt__key));
    if (!v) {
      free(nk.p);
      return KV_ENOMEM;
    }
    memmove(v + pos + 1, v + pos, (size_t)(fs->n - pos) * sizeof(crdt__key));
    v[pos] = nk;
    fs->v = v;
    fs->n++;
    at = (long)pos;
  }
  crdt__key *f = &fs->v[at];
  int err;
  switch (u->code) {
  case CRDT__ADD:
    err = crdt__set_add(a, &f->sub, u);
    break;
  case CRDT__REM:
    err = crdt__set_rem(a, &f->sub, u);
    break;
  case CRDT__INCR:
    err = crdt__field_incr(a, f, u);
    break;
  default:
    err = crdt__field_assign(a, f, u);
    break;
  }
  crdt__keys_compact(fs); /* a field left empty (a new one, or all gone) */
  return err;
}

/* Applies INCR to a PN counter. */
static int crdt__pn_incr(crdt__app *a, int64_t delta) {
  crdt *w = a->w;
  if (crdt__add_overflows(crdt_counter_value(w), delta)) {
    crdt__msg(a->res, "increment or decrement would overflow");
    return KV_EINVAL;
  }
  if (delta == 0)
    return 0;
  uint32_t pos = 0;
  while (pos < w->npn && w->pn[pos].actor < a->actor)
    pos++;
  if (pos == w->npn || w->pn[pos].actor != a->actor) {
    crdt__pn *v = realloc(w->pn, ((size_t)w->npn + 1) * sizeof(crdt__pn));
    if (!v)
      return KV_ENOMEM;
    memmove(v + pos + 1, v + pos, (size_t)(w->npn - pos) * sizeof(crdt__pn));
    v[pos] = (crdt__pn){a->actor, 0, 0};
    w->pn = v;
    w->npn++;
  }
  crdt__pn *e = &w->pn[pos];
  /* |delta| as unsigned, INT64_MIN included. */
  uint64_t mag = delta > 0 ? (uint64_t)delta : (uint64_t)(-(delta + 1)) + 1;
  uint64_t *side = delta > 0 ? &e->inc : &e->dec;
  if (*side > UINT64_MAX - mag) {
    crdt__msg(a->res, "increment or decrement would overflow");
    return KV_EINVAL;
  }
  *side += mag;
  return 0;
}

/* Counts the keys of a that b lacks. */
static int64_t crdt__keys_missing(const crdt__keys *a, const crdt__keys *b) {
  int64_t n = 0;
  uint32_t j = 0;
  for (uint32_t i = 0; i < a->n; i++) {
    int c = 1;
    while (j < b->n &&
           (c = crdt__key_cmp(a->v[i].p, a->v[i].len, a->v[i].kind,
                              &b->v[j])) > 0)
      j++;
    if (j == b->n || c != 0)
      n++;
  }
  return n;
}

int crdt_apply(crdt *c, const crdt_op *op, uint64_t actor, uint64_t now_ms,
               const crdt_limits *lim, crdt_result *res) {
  crdt_result spare;
  crdt__clock ctx = {NULL, 0};
  crdt__app a;
  memset(&a, 0, sizeof(a));
  a.res = res ? res : &spare;
  memset(a.res, 0, sizeof(*a.res));
  if (!crdt_op_fits(op, c->type)) {
    crdt__msg(a.res, "a %s operation on a %s",
              crdt_type_name(crdt_op_type(op)), crdt_type_name(c->type));
    return KV_ETYPE;
  }
  a.actor = actor;
  a.now_ms = now_ms;
  a.lim = lim ? lim : &crdt_limits_default;
  int err = 0;
  if (op->has_ctx) {
    err = crdt__ctx_decode(op->ctx.ptr, op->ctx.len, &ctx);
    if (err) { /* crdt_op_decode checked it: only KV_ENOMEM is left */
      free(ctx.v);
      return err == KV_ENOMEM ? err : KV_EINVAL;
    }
    a.ctx = &ctx;
  }
  a.w = crdt_clone(c);
  if (!a.w) {
    free(ctx.v);
    return KV_ENOMEM;
  }
  for (uint32_t i = 0; !err && i < op->n; i++) {
    const crdt__upd *u = &op->upd[i];
    if (c->type == CRDT_COUNTER)
      err = crdt__pn_incr(&a, u->delta);
    else if (c->type == CRDT_SET && u->code == CRDT__ADD)
      err = crdt__set_add(&a, &a.w->keys, u);
    else if (c->type == CRDT_SET)
      err = crdt__set_rem(&a, &a.w->keys, u);
    else
      err = crdt__map_upd(&a, u);
  }
  free(ctx.v);
  if (err) {
    if (err == KV_ENOMEM)
      crdt__msg(a.res, "out of memory");
    crdt_free(a.w);
    return err;
  }
  a.res->added = crdt__keys_missing(&a.w->keys, &c->keys);
  a.res->removed = crdt__keys_missing(&c->keys, &a.w->keys);
  if (c->type == CRDT_COUNTER) {
    a.res->value = crdt_counter_value(a.w);
  } else if (a.last_incr) {
    long at = crdt__keys_find(&a.w->keys, a.last_incr->name.ptr,
                              a.last_incr->name.len, CRDT_KIND_COUNTER, NULL);
    a.res->value = at >= 0 ? crdt__field_total(&a.w->keys.v[at].dots) : 0;
  }
  crdt__swap_in(c, a.w);
  return 0;
}

/* ---- operations: building ---- */

static void crdt__pack_ctx(msgpack_packer *pk, const uint8_t *ctx,
                           size_t ctx_len) {
  if (ctx && ctx_len)
    mp_pack_bin(pk, ctx, ctx_len);
  else
    msgpack_pack_nil(pk);
}

/* Packs [code, [elem, ...]]. */
static void crdt__pack_elems_upd(msgpack_packer *pk, unsigned code,
                                 const kv_slice *elems, size_t n) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint8(pk, (uint8_t)code);
  msgpack_pack_array(pk, n);
  for (size_t i = 0; i < n; i++)
    mp_pack_bin(pk, crdt__bytes(elems[i].ptr), elems[i].len);
}

/* Packs an operation of one set update. */
static int crdt__op_set(kvbuf *out, unsigned code, const kv_slice *elems,
                        size_t n, const uint8_t *ctx, size_t ctx_len) {
  msgpack_packer pk;
  mp_packer_init(&pk, out);
  msgpack_pack_array(&pk, CRDT__OP_FIELDS);
  msgpack_pack_uint8(&pk, CRDT_OP_VERSION);
  msgpack_pack_uint8(&pk, CRDT_SET);
  msgpack_pack_array(&pk, 1);
  crdt__pack_elems_upd(&pk, code, elems, n);
  crdt__pack_ctx(&pk, ctx, ctx_len);
  return out->oom ? KV_ENOMEM : 0;
}

int crdt_op_set_add(kvbuf *out, const kv_slice *elems, size_t n) {
  return crdt__op_set(out, CRDT__ADD, elems, n, NULL, 0);
}

int crdt_op_set_rem(kvbuf *out, const kv_slice *elems, size_t n,
                    const uint8_t *ctx, size_t ctx_len) {
  return crdt__op_set(out, CRDT__REM, elems, n, ctx, ctx_len);
}

int crdt_op_counter_incr(kvbuf *out, int64_t delta) {
  msgpack_packer pk;
  mp_packer_init(&pk, out);
  msgpack_pack_array(&pk, CRDT__OP_FIELDS);
  msgpack_pack_uint8(&pk, CRDT_OP_VERSION);
  msgpack_pack_uint8(&pk, CRDT_COUNTER);
  msgpack_pack_array(&pk, 1);
  msgpack_pack_array(&pk, 2);
  msgpack_pack_uint8(&pk, CRDT__INCR);
  msgpack_pack_int64(&pk, delta);
  msgpack_pack_nil(&pk);
  return out->oom ? KV_ENOMEM : 0;
}

void crdt_mapb_init(crdt_mapb *b, crdt_type map_type) {
  kvbuf_init(&b->updates);
  b->n = 0;
  b->type = crdt__is_map(map_type) ? map_type : CRDT__OP_ANY_MAP;
}

void crdt_mapb_free(crdt_mapb *b) {
  kvbuf_free(&b->updates);
  b->n = 0;
}

/* Starts a FIELD or FIELD_REM update of field (name, kind). */
static void crdt__mapb_field(crdt_mapb *b, msgpack_packer *pk, unsigned code,
                             kv_slice name, crdt_kind kind) {
  mp_packer_init(pk, &b->updates);
  msgpack_pack_array(pk, code == CRDT__FIELD ? 4 : 3);
  msgpack_pack_uint8(pk, (uint8_t)code);
  mp_pack_bin(pk, crdt__bytes(name.ptr), name.len);
  msgpack_pack_uint8(pk, (uint8_t)kind);
  b->n++;
}

static int crdt__mapb_done(crdt_mapb *b) {
  return b->updates.oom ? KV_ENOMEM : 0;
}

int crdt_mapb_assign(crdt_mapb *b, kv_slice name, kv_slice value,
                     uint64_t ts_ms) {
  msgpack_packer pk;
  crdt__mapb_field(b, &pk, CRDT__FIELD, name, CRDT_KIND_REGISTER);
  msgpack_pack_array(&pk, CRDT__ASSIGN_FIELDS);
  msgpack_pack_uint8(&pk, CRDT__ASSIGN);
  mp_pack_bin(&pk, crdt__bytes(value.ptr), value.len);
  msgpack_pack_uint64(&pk, ts_ms);
  return crdt__mapb_done(b);
}

int crdt_mapb_incr(crdt_mapb *b, kv_slice name, int64_t delta) {
  msgpack_packer pk;
  crdt__mapb_field(b, &pk, CRDT__FIELD, name, CRDT_KIND_COUNTER);
  msgpack_pack_array(&pk, 2);
  msgpack_pack_uint8(&pk, CRDT__INCR);
  msgpack_pack_int64(&pk, delta);
  return crdt__mapb_done(b);
}

int crdt_mapb_set_add(crdt_mapb *b, kv_slice name, const kv_slice *elems,
                      size_t n) {
  msgpack_packer pk;
  crdt__mapb_field(b, &pk, CRDT__FIELD, name, CRDT_KIND_SET);
  crdt__pack_elems_upd(&pk, CRDT__ADD, elems, n);
  return crdt__mapb_done(b);
}

int crdt_mapb_set_rem(crdt_mapb *b, kv_slice name, const kv_slice *elems,
                      size_t n) {
  msgpack_packer pk;
  crdt__mapb_field(b, &pk, CRDT__FIELD, name, CRDT_KIND_SET);
  crdt__pack_elems_upd(&pk, CRDT__REM, elems, n);
  return crdt__mapb_done(b);
}

int crdt_mapb_remove(crdt_mapb *b, kv_slice name, crdt_kind kind) {
  msgpack_packer pk;
  crdt__mapb_field(b, &pk, CRDT__FIELD_REM, name, kind);
  return crdt__mapb_done(b);
}

int crdt_mapb_finish(crdt_mapb *b, const uint8_t *ctx, size_t ctx_len,
                     kvbuf *out) {
  int err = b->updates.oom ? KV_ENOMEM : b->n == 0 ? KV_EINVAL : 0;
  if (!err) {
    msgpack_packer pk;
    mp_packer_init(&pk, out);
    msgpack_pack_array(&pk, CRDT__OP_FIELDS);
    msgpack_pack_uint8(&pk, CRDT_OP_VERSION);
    msgpack_pack_uint8(&pk, (uint8_t)b->type);
    msgpack_pack_array(&pk, b->n);
    kvbuf_append(out, b->updates.data, b->updates.len);
    crdt__pack_ctx(&pk, ctx, ctx_len);
    err = out->oom ? KV_ENOMEM : 0;
  }
  crdt_mapb_free(b);
  return err;
}

/* ---- reading ---- */

size_t crdt_set_count(const crdt *c) {
  return c->type == CRDT_SET ? c->keys.n : 0;
}

/* Element j of keys ks as a slice. */
static int crdt__member(const crdt__keys *ks, size_t j, kv_slice *out) {
  if (j >= ks->n)
    return KV_EINVAL;
  out->ptr = crdt__bytes(ks->v[j].p);
  out->len = ks->v[j].len;
  return 0;
}

int crdt_set_member(const crdt *c, size_t i, kv_slice *out) {
  if (c->type != CRDT_SET)
    return KV_EINVAL;
  return crdt__member(&c->keys, i, out);
}

bool crdt_set_contains(const crdt *c, kv_slice elem) {
  return c->type == CRDT_SET &&
         crdt__keys_find(&c->keys, elem.ptr, elem.len, 0, NULL) >= 0;
}

int64_t crdt_counter_value(const crdt *c) {
  if (c->type != CRDT_COUNTER)
    return 0;
  uint64_t inc = 0, dec = 0;
  for (uint32_t i = 0; i < c->npn; i++) {
    inc = inc > UINT64_MAX - c->pn[i].inc ? UINT64_MAX : inc + c->pn[i].inc;
    dec = dec > UINT64_MAX - c->pn[i].dec ? UINT64_MAX : dec + c->pn[i].dec;
  }
  if (inc >= dec)
    return inc - dec > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)(inc - dec);
  uint64_t d = dec - inc;
  return d > (uint64_t)INT64_MAX ? INT64_MIN : -(int64_t)d;
}

size_t crdt_map_count(const crdt *c) {
  return crdt__is_map(c->type) ? c->keys.n : 0;
}

/* Field i of map c, or NULL when there is none of that kind. */
static const crdt__key *crdt__field(const crdt *c, size_t i, uint8_t kind) {
  if (!crdt__is_map(c->type) || i >= c->keys.n)
    return NULL;
  const crdt__key *f = &c->keys.v[i];
  return kind == CRDT_KIND_ANY || f->kind == kind ? f : NULL;
}

int crdt_map_field(const crdt *c, size_t i, crdt_field *out) {
  const crdt__key *f = crdt__field(c, i, CRDT_KIND_ANY);
  if (!f)
    return KV_EINVAL;
  out->name.ptr = crdt__bytes(f->p);
  out->name.len = f->len;
  out->kind = (crdt_kind)f->kind;
  return 0;
}

long crdt_map_find(const crdt *c, kv_slice name, crdt_kind kind) {
  if (!crdt__is_map(c->type))
    return -1;
  return crdt__keys_find(&c->keys, name.ptr, name.len, (uint8_t)kind, NULL);
}

int64_t crdt_map_counter(const crdt *c, size_t i) {
  const crdt__key *f = crdt__field(c, i, CRDT_KIND_COUNTER);
  return f ? crdt__field_total(&f->dots) : 0;
}

size_t crdt_map_set_count(const crdt *c, size_t i) {
  const crdt__key *f = crdt__field(c, i, CRDT_KIND_SET);
  return f ? f->sub.n : 0;
}

int crdt_map_set_member(const crdt *c, size_t i, size_t j, kv_slice *out) {
  const crdt__key *f = crdt__field(c, i, CRDT_KIND_SET);
  return f ? crdt__member(&f->sub, j, out) : KV_EINVAL;
}

/* The winner of a last-write-wins register: greatest (ts, actor, counter). */
static const crdt__ent *crdt__lww(const crdt__ents *e) {
  const crdt__ent *best = NULL;
  for (uint32_t i = 0; i < e->n; i++)
    if (!best || e->v[i].num > best->num ||
        (e->v[i].num == best->num && crdt__dot_cmp(&e->v[i], best) > 0))
      best = &e->v[i];
  return best;
}

size_t crdt_map_reg_count(const crdt *c, size_t i) {
  const crdt__key *f = crdt__field(c, i, CRDT_KIND_REGISTER);
  if (!f)
    return 0;
  return c->type == CRDT_MAP_LWW ? 1 : f->dots.n;
}

int crdt_map_reg_value(const crdt *c, size_t i, size_t j, kv_slice *out,
                       uint64_t *ts_ms) {
  const crdt__key *f = crdt__field(c, i, CRDT_KIND_REGISTER);
  if (!f || j >= crdt_map_reg_count(c, i))
    return KV_EINVAL;
  const crdt__ent *e = c->type == CRDT_MAP_LWW ? crdt__lww(&f->dots)
                                               : &f->dots.v[j];
  out->ptr = crdt__bytes(e->p);
  out->len = e->len;
  if (ts_ms)
    *ts_ms = e->num;
  return 0;
}

/* ---- JSON ---- */

/* Appends bytes as a JSON string, or {"base64":"..."} when not UTF-8. */
static void crdt__json_bytes(kvbuf *out, const uint8_t *p, size_t len) {
  if (kv_utf8_valid(crdt__bytes(p), len)) {
    kv_json_str(out, crdt__bytes(p), len);
    return;
  }
  kvbuf_append(out, "{\"base64\":\"", 11);
  kv_b64_encode(out, crdt__bytes(p), len);
  kvbuf_append(out, "\"}", 2);
}

static void crdt__json_cstr(kvbuf *out, const char *s) {
  kvbuf_append(out, s, strlen(s));
}

static void crdt__json_int(kvbuf *out, int64_t v) {
  char num[32];
  int n = snprintf(num, sizeof(num), "%" PRId64, v);
  kvbuf_append(out, num, (size_t)n);
}

static void crdt__json_members(kvbuf *out, const crdt__keys *ks) {
  crdt__json_cstr(out, "\"members\":[");
  for (uint32_t i = 0; i < ks->n; i++) {
    if (i)
      crdt__json_cstr(out, ",");
    crdt__json_bytes(out, ks->v[i].p, ks->v[i].len);
  }
  crdt__json_cstr(out, "]");
}

static void crdt__json_field(kvbuf *out, const crdt *c, size_t i) {
  const crdt__key *f = &c->keys.v[i];
  crdt__json_cstr(out, "{\"name\":");
  crdt__json_bytes(out, f->p, f->len);
  if (f->kind == CRDT_KIND_COUNTER) {
    crdt__json_cstr(out, ",\"kind\":\"counter\",\"value\":");
    crdt__json_int(out, crdt__field_total(&f->dots));
  } else if (f->kind == CRDT_KIND_SET) {
    crdt__json_cstr(out, ",\"kind\":\"set\",");
    crdt__json_members(out, &f->sub);
  } else if (c->type == CRDT_MAP_LWW) {
    const crdt__ent *e = crdt__lww(&f->dots);
    crdt__json_cstr(out, ",\"kind\":\"register\",\"value\":");
    crdt__json_bytes(out, e->p, e->len);
  } else {
    crdt__json_cstr(out, ",\"kind\":\"register\",\"values\":[");
    for (uint32_t j = 0; j < f->dots.n; j++) {
      if (j)
        crdt__json_cstr(out, ",");
      crdt__json_bytes(out, f->dots.v[j].p, f->dots.v[j].len);
    }
    crdt__json_cstr(out, "]");
  }
  crdt__json_cstr(out, "}");
}

int crdt_render_json(const crdt *c, kvbuf *out) {
  crdt__json_cstr(out, "{\"type\":\"");
  crdt__json_cstr(out, crdt_type_name(c->type));
  crdt__json_cstr(out, "\",");
  if (c->type == CRDT_COUNTER) {
    crdt__json_cstr(out, "\"value\":");
    crdt__json_int(out, crdt_counter_value(c));
  } else {
    if (c->type == CRDT_SET) {
      crdt__json_members(out, &c->keys);
    } else {
      crdt__json_cstr(out, "\"fields\":[");
      for (uint32_t i = 0; i < c->keys.n; i++) {
        if (i)
          crdt__json_cstr(out, ",");
        crdt__json_field(out, c, i);
      }
      crdt__json_cstr(out, "]");
    }
    kvbuf ctx;
    kvbuf_init(&ctx);
    if (crdt_context(c, &ctx) != 0)
      out->oom = 1;
    crdt__json_cstr(out, ",\"context\":\"");
    kv_b64_encode(out, ctx.data ? ctx.data : crdt__empty, ctx.len);
    crdt__json_cstr(out, "\"");
    kvbuf_free(&ctx);
  }
  crdt__json_cstr(out, "}");
  if (kvbuf_reserve(out, 1) == 0)
    out->data[out->len] = '\0';
  return out->oom ? KV_ENOMEM : 0;
}
