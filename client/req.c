/*
 * req.c: the requests of a kv_client and their completion.
 *
 * A pool of kv__req structs (recycled through a free list, so the steady
 * state does not allocate), an id-indexed table (power-of-two slots,
 * id & mask; ids are sequential so a doubling never collides two live
 * entries) and one list in creation order, scanned for timeouts (poll.c)
 * only when the earliest deadline has passed. Completion turns a reply
 * into a kv_result and runs the request's callback.
 *
 * Depends on: kvorum_int.h (route.c takes the replies to "ring"), kvproto
 * (wire.h, mp.h, kv_err.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvorum_int.h"
#include "wire.h"

#define KV__INFLIGHT_MAX (1u << 20) /* requests in flight per client */

/* ---- request table ---- */

static int kv__slots_grow(kv_client *c) {
  size_t ncap = (c->slot_mask + 1) * 2;
  if (ncap > KV__INFLIGHT_MAX)
    return KV_EFULL;
  kv__req **ns = calloc(ncap, sizeof(*ns));
  if (!ns)
    return KV_ENOMEM;
  for (size_t i = 0; i <= c->slot_mask; i++)
    if (c->slots[i])
      ns[c->slots[i]->id & (ncap - 1)] = c->slots[i];
  free(c->slots);
  c->slots = ns;
  c->slot_mask = ncap - 1;
  return 0;
}

kv__req *kv__lookup(kv_client *c, uint64_t id) {
  kv__req *q = c->slots[id & c->slot_mask];
  return q && q->id == id ? q : NULL;
}

static bool kv__is_user(const kv__req *q) {
  return q->kind == KV__K_GET || q->kind == KV__K_PUT ||
         q->kind == KV__K_DEL || q->kind == KV__K_ADMIN ||
         q->kind == KV__K_UPDATE;
}

/* Takes a request from the pool, gives it an id, puts it in the table and
 * at the tail of the in-flight list. Returns NULL on KV_ENOMEM/KV_EFULL
 * (*rc set). */
kv__req *kv__req_new(kv_client *c, int kind, kv__conn *k, uint32_t timeout_ms,
                     uint64_t now, int *rc) {
  uint64_t id = c->next_id++;
  while (c->slots[id & c->slot_mask]) {
    *rc = kv__slots_grow(c);
    if (*rc)
      return NULL;
  }
  kv__req *q = c->free_reqs;
  if (q) {
    c->free_reqs = q->next;
  } else {
    q = malloc(sizeof(*q));
    if (!q) {
      *rc = KV_ENOMEM;
      return NULL;
    }
  }
  memset(q, 0, sizeof(*q));
  q->id = id;
  q->kind = kind;
  q->conn = k;
  k->inflight++;
  q->timeout_ms = timeout_ms;
  q->deadline_ms = now + timeout_ms;
  c->slots[id & c->slot_mask] = q;
  q->prev = c->head.prev;
  q->next = &c->head;
  c->head.prev->next = q;
  c->head.prev = q;
  if (q->deadline_ms < c->min_deadline_ms)
    c->min_deadline_ms = q->deadline_ms;
  c->nall++;
  if (kv__is_user(q))
    c->nuser++;
  return q;
}

/* Removes q from the table and the in-flight list (not yet recycled). */
void kv__req_unlink(kv_client *c, kv__req *q) {
  c->slots[q->id & c->slot_mask] = NULL;
  q->conn->inflight--;
  q->prev->next = q->next;
  q->next->prev = q->prev;
  q->prev = q->next = NULL;
  c->nall--;
  if (kv__is_user(q))
    c->nuser--;
}

void kv__req_recycle(kv_client *c, kv__req *q) {
  q->next = c->free_reqs;
  c->free_reqs = q;
}

/* ---- completion ---- */

/* Runs the completion of an unlinked request: the user's callback (or the
 * internal one) with status, message and the reply m (NULL on failure),
 * then recycles q. */
void kv__complete(kv_client *c, kv__req *q, int status, const char *msg,
                  const wire_msg *m) {
  kv_result res;
  memset(&res, 0, sizeof(res));
  char why[KV__ERRMSG_MAX];
  if (status == 0 && m && q->kind == KV__K_GET) {
    mp_reader rd;
    uint32_t n = 0;
    mp_reader_init(&rd, m->raw.ptr, m->raw.len);
    if (m->raw.len && mp_read_array(&rd, &n) == 0) {
      if (n > c->sibs_cap) {
        size_t ncap = c->sibs_cap ? c->sibs_cap : 8;
        while (ncap < n)
          ncap *= 2;
        kv_sibling *ns = realloc(c->sibs, ncap * sizeof(*ns));
        if (!ns) {
          status = KV_ENOMEM;
          msg = "out of memory for the siblings of a reply";
        } else {
          c->sibs = ns;
          c->sibs_cap = ncap;
        }
      }
      for (uint32_t i = 0; status == 0 && i < n; i++) {
        wire_sibling s;
        if (wire_sibling_next(&rd, &s)) {
          status = KV_EPROTO;
          msg = "malformed sibling in a get reply";
          break;
        }
        kv_sibling *d = &c->sibs[i];
        d->deleted = (s.flags & WIRE_SIB_DELETED) != 0;
        d->typed = !d->deleted && (s.flags & WIRE_SIB_TYPED) != 0;
        d->ts_ms = s.ts_ms;
        d->value = d->deleted ? NULL : s.value.ptr;
        d->len = d->deleted ? 0 : s.value.len;
        if (!d->deleted && !d->value)
          d->value = (const uint8_t *)"";
      }
    } else if (m->raw.len) {
      status = KV_EPROTO;
      msg = "malformed siblings in a get reply";
    }
    if (status == 0) {
      res.nsiblings = n;
      res.siblings = n ? c->sibs : NULL;
      res.found = n > 0;
    }
  }
  if (status == 0 && m &&
      (q->kind == KV__K_GET || q->kind == KV__K_PUT || q->kind == KV__K_DEL ||
       q->kind == KV__K_UPDATE)) {
    res.context = (uint8_t *)m->context.ptr;
    res.context_len = m->context.len;
  }
  if (status == 0 && m && q->kind == KV__K_UPDATE) {
    res.state = m->value.len ? m->value.ptr : NULL;
    res.state_len = m->value.len;
    res.added = m->result[0];
    res.removed = m->result[1];
    res.value = m->result[2];
  }
  if (status && !msg) {
    snprintf(why, sizeof(why), "%s", kv_strerror(status));
    msg = why;
  }
  switch (q->kind) {
  case KV__K_GET:
  case KV__K_PUT:
  case KV__K_DEL:
  case KV__K_UPDATE:
    c->ncallbacks++;
    q->cb(q->arg, status, status ? msg : NULL, status ? NULL : &res);
    break;
  case KV__K_ADMIN: {
    kv__wait *w = q->arg;
    c->ncallbacks++;
    w->done = true;
    w->status = status;
    if (status == 0) {
      w->raw = malloc(m->raw.len ? m->raw.len : 1);
      if (!w->raw) {
        w->status = KV_ENOMEM;
        snprintf(c->errmsg, sizeof(c->errmsg), "out of memory");
      } else {
        if (m->raw.len)
          memcpy(w->raw, m->raw.ptr, m->raw.len);
        w->raw_len = m->raw.len;
      }
    } else {
      snprintf(c->errmsg, sizeof(c->errmsg), "%s", msg);
    }
    break;
  }
  case KV__K_RING:
    kv__ring_done(c, status, m);
    break;
  default: /* KV__K_HELLO: the connection's state says it all */
    break;
  }
  kv__req_recycle(c, q);
}
