/*
 * route.c: the client's copy of the ring and the choice of a connection
 * for a key.
 *
 * With routing on, the ring is fetched from conns[0] with the ADMIN "ring"
 * command at connect and then every KV__RING_REFRESH_MS. A request goes to
 * the first usable owner of its key's partition that is up, owners in the
 * client's region first, else to conns[0]. The partition is proto's
 * kv_partition, the function the nodes use, so client and nodes agree.
 * A node that cannot serve "ring" (or answers it badly) turns routing off
 * for good; a ring fetch that times out or loses its connection keeps the
 * copy the client had.
 *
 * Depends on: kvorum_int.h (conn.c for connections, kvorum.c for
 * kv__admin_send), kvproto (partition.h, mp.h, wire.h, kv_err.h).
 */
#include <stdlib.h>
#include <string.h>

#include "kvorum_int.h"
#include "partition.h"
#include "wire.h"

#define KV__RING_REFRESH_MS 5000
#define KV__RING_NODES_MAX 4096
#define KV__RING_Q_MAX (1u << 20)
#define KV__RING_OWNERS_MAX 16 /* owners kept per partition */

/* ---- routing ---- */

static bool kv__node_up(const char *state) {
  return strcmp(state, "down") != 0 && strcmp(state, "removed") != 0 &&
         strcmp(state, "unknown") != 0 && strcmp(state, "unreachable") != 0;
}

/* The connection for ring node nd (found by node id or address, created
 * when missing), or NULL. */
static kv__conn *kv__node_conn(kv_client *c, const kv__rnode *nd) {
  for (size_t i = 0; i < c->nconns; i++) {
    kv__conn *k = c->conns[i];
    if ((k->node_id[0] && strcmp(k->node_id, nd->id) == 0) ||
        strcmp(k->addr, nd->listen) == 0)
      return k;
  }
  if (!nd->listen[0])
    return NULL;
  return kv__conn_new(c, nd->listen);
}

/* The ring's own function (proto/partition.h): client and nodes agree. */
static uint32_t kv__partition(const kv__ring *rg, const void *key,
                              size_t klen) {
  return kv_partition(1u << rg->bits, key, klen);
}

/* The connection a request for key should go to, or NULL with c->errmsg
 * set when not even conns[0] can be (re)opened. */
kv__conn *kv__route(kv_client *c, const void *key, size_t klen, uint64_t now) {
  const kv__ring *rg = c->route ? c->ring : NULL;
  if (rg && key) {
    uint32_t p = kv__partition(rg, key, klen);
    const uint16_t *own = rg->owners + (size_t)p * rg->width;
    for (int pass = c->region[0] ? 0 : 1; pass < 2; pass++) {
      for (uint8_t i = 0; i < rg->nown[p]; i++) {
        const kv__rnode *nd = &rg->nodes[own[i]];
        if (!nd->up || (pass == 0 && strcmp(nd->region, c->region) != 0))
          continue;
        kv__conn *k = kv__node_conn(c, nd);
        if (k && kv__conn_usable(c, k, now))
          return k;
      }
    }
  }
  kv__conn *home = c->conns[0];
  return kv__conn_usable(c, home, now) ? home : NULL;
}

/* ---- the ring ---- */

void kv__ring_free(kv__ring *rg) {
  if (!rg)
    return;
  free(rg->nodes);
  free(rg->owners);
  free(rg->nown);
  free(rg);
}

static int kv__read_str_field(mp_reader *r, char *out, size_t cap) {
  if (mp_peek(r) == MP_STR || mp_peek(r) == MP_BIN)
    return mp_read_cstr(r, out, cap);
  out[0] = '\0';
  return mp_skip(r);
}

static int kv__ring_nodes(kv__ring *rg, kv_slice raw) {
  mp_reader r;
  uint32_t n;
  mp_reader_init(&r, raw.ptr, raw.len);
  if (mp_read_array(&r, &n) || n == 0 || n > KV__RING_NODES_MAX)
    return KV_EPROTO;
  rg->nodes = calloc(n, sizeof(*rg->nodes));
  if (!rg->nodes)
    return KV_ENOMEM;
  rg->nnodes = n;
  for (uint32_t i = 0; i < n; i++) {
    kv__rnode *nd = &rg->nodes[i];
    char state[WIRE_NAME_MAX] = "up";
    uint32_t nf;
    if (mp_read_map(&r, &nf))
      return KV_EPROTO;
    for (uint32_t f = 0; f < nf; f++) {
      kv_slice k;
      int rc;
      if (mp_read_str(&r, &k))
        return KV_EPROTO;
      if (mp_slice_eq(k, "id"))
        rc = kv__read_str_field(&r, nd->id, sizeof(nd->id));
      else if (mp_slice_eq(k, "listen"))
        rc = kv__read_str_field(&r, nd->listen, sizeof(nd->listen));
      else if (mp_slice_eq(k, "region"))
        rc = kv__read_str_field(&r, nd->region, sizeof(nd->region));
      else if (mp_slice_eq(k, "state"))
        rc = kv__read_str_field(&r, state, sizeof(state));
      else
        rc = mp_skip(&r);
      if (rc)
        return KV_EPROTO;
    }
    nd->up = kv__node_up(state);
  }
  return 0;
}

static int kv__ring_node_index(const kv__ring *rg, kv_slice id) {
  for (size_t i = 0; i < rg->nnodes; i++)
    if (mp_slice_eq(id, rg->nodes[i].id))
      return (int)i;
  return -1;
}

static int kv__ring_parts(kv__ring *rg, kv_slice raw) {
  mp_reader r;
  uint32_t n;
  mp_reader_init(&r, raw.ptr, raw.len);
  if (mp_read_array(&r, &n) || n != rg->q)
    return KV_EPROTO;
  rg->width = KV__RING_OWNERS_MAX;
  rg->owners = calloc((size_t)rg->q * rg->width, sizeof(*rg->owners));
  rg->nown = calloc(rg->q, 1);
  if (!rg->owners || !rg->nown)
    return KV_ENOMEM;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t nf;
    uint64_t part = UINT64_MAX;
    kv_slice owners = {NULL, 0};
    if (mp_read_map(&r, &nf))
      return KV_EPROTO;
    for (uint32_t f = 0; f < nf; f++) {
      kv_slice k;
      if (mp_read_str(&r, &k))
        return KV_EPROTO;
      int rc;
      if (mp_slice_eq(k, "partition"))
        rc = mp_read_uint(&r, &part);
      else if (mp_slice_eq(k, "owners"))
        rc = mp_read_raw(&r, &owners);
      else
        rc = mp_skip(&r);
      if (rc)
        return KV_EPROTO;
    }
    if (part >= rg->q || !owners.ptr)
      return KV_EPROTO;
    mp_reader o;
    uint32_t no;
    mp_reader_init(&o, owners.ptr, owners.len);
    if (mp_read_array(&o, &no))
      return KV_EPROTO;
    uint16_t *slot = rg->owners + (size_t)part * rg->width;
    uint8_t cnt = 0;
    for (uint32_t j = 0; j < no; j++) {
      kv_slice id;
      if (mp_read_bytes(&o, &id))
        return KV_EPROTO;
      int idx = kv__ring_node_index(rg, id);
      if (idx >= 0 && cnt < rg->width)
        slot[cnt++] = (uint16_t)idx;
    }
    rg->nown[part] = cnt;
  }
  return 0;
}

/* Parses an ADMIN "ring" result. Returns 0 and *out, or an error. */
static int kv__ring_parse(kv_slice raw, kv__ring **out) {
  mp_reader r;
  uint32_t nf;
  kv_slice nodes = {NULL, 0}, parts = {NULL, 0};
  uint64_t q = 0;
  mp_reader_init(&r, raw.ptr, raw.len);
  if (mp_read_map(&r, &nf))
    return KV_EPROTO;
  for (uint32_t f = 0; f < nf; f++) {
    kv_slice k;
    int rc;
    if (mp_read_str(&r, &k))
      return KV_EPROTO;
    if (mp_slice_eq(k, "q"))
      rc = mp_read_uint(&r, &q);
    else if (mp_slice_eq(k, "nodes"))
      rc = mp_read_raw(&r, &nodes);
    else if (mp_slice_eq(k, "partitions"))
      rc = mp_read_raw(&r, &parts);
    else
      rc = mp_skip(&r);
    if (rc)
      return KV_EPROTO;
  }
  if (q == 0 || q > KV__RING_Q_MAX || (q & (q - 1)) || !nodes.ptr ||
      !parts.ptr)
    return KV_EPROTO;
  kv__ring *rg = calloc(1, sizeof(*rg));
  if (!rg)
    return KV_ENOMEM;
  rg->q = (uint32_t)q;
  while ((1ull << rg->bits) < q)
    rg->bits++;
  int rc = kv__ring_nodes(rg, nodes);
  if (rc == 0)
    rc = kv__ring_parts(rg, parts);
  if (rc) {
    kv__ring_free(rg);
    return rc;
  }
  *out = rg;
  return 0;
}

void kv__ring_done(kv_client *c, int status, const wire_msg *m) {
  c->ring_pending = false;
  c->ring_next_ms = kv__now_ms() + KV__RING_REFRESH_MS;
  if (status == KV_ETIMEDOUT || status == KV_ECLOSED || status == KV_ECONN)
    return; /* keep what we had; try again later */
  kv__ring *rg = NULL;
  if (status || kv__ring_parse(m->raw, &rg)) {
    c->ring_broken = true; /* an older node or a bad reply: do not route */
    kv__ring_free(c->ring);
    c->ring = NULL;
    return;
  }
  kv__ring_free(c->ring);
  c->ring = rg;
}

void kv__ring_refresh(kv_client *c, uint64_t now) {
  if (!c->route || c->ring_broken || c->ring_pending || now < c->ring_next_ms)
    return;
  kv__conn *home = c->conns[0];
  if (!kv__conn_usable(c, home, now)) {
    c->ring_next_ms = now + KV__RING_REFRESH_MS;
    return;
  }
  if (kv__admin_send(c, home, KV__K_RING, "ring", NULL, NULL, now) == 0)
    c->ring_pending = true;
  else
    c->ring_next_ms = now + KV__RING_REFRESH_MS;
}
