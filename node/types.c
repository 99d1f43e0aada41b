/*
 * types.c: data types at their coordinator (types.h).
 */
#include "types.h"

#include <stdio.h>

#include "kv_err.h"

int types_join(const obj *o, uint64_t now, bool skip_plain, crdt **out) {
  *out = NULL;
  size_t cnt = o ? obj_sibling_count(o) : 0;
  for (size_t i = 0; i < cnt; i++) {
    obj_value v;
    if (obj_sibling(o, i, &v) || obj_value_gone(&v, now))
      continue;
    if (!(v.flags & OBJ_TYPED) && skip_plain)
      continue;
    if (!(v.flags & OBJ_TYPED)) {
      crdt_free(*out);
      *out = NULL;
      return KV_ETYPE;
    }
    crdt *c = NULL;
    int rc = crdt_decode(v.data, v.len, &c);
    if (!rc && *out)
      rc = crdt_join(*out, c);
    if (rc) {
      crdt_free(c);
      crdt_free(*out);
      *out = NULL;
      return rc;
    }
    if (!*out)
      *out = c;
    else
      crdt_free(c);
  }
  return 0;
}

int types_apply(const obj *local, const uint8_t *op, size_t len,
                uint64_t actor, uint64_t now, const crdt_limits *lim,
                kvbuf *out, crdt_result *res, char *err, size_t errlen) {
  crdt_op *o = NULL;
  crdt *state = NULL;
  int rc = crdt_op_decode(op, len, &o);
  if (rc) {
    snprintf(err, errlen, "malformed data type operation");
    return rc == KV_ENOMEM ? rc : KV_EINVAL;
  }
  rc = types_join(local, now, false, &state);
  if (rc == KV_ETYPE) {
    snprintf(err, errlen, "WRONGTYPE the key holds a plain value (or "
                          "values of two types), not a %s",
             crdt_type_name(crdt_op_type(o)));
  } else if (rc) {
    snprintf(err, errlen, "the key's data type state is unreadable: %s",
             kv_strerror(rc));
  } else if (state && !crdt_op_fits(o, crdt_type_of(state))) {
    rc = KV_ETYPE;
    snprintf(err, errlen, "WRONGTYPE the key holds a %s",
             crdt_type_name(crdt_type_of(state)));
  } else if (!state && !(state = crdt_new(crdt_op_type(o)))) {
    rc = KV_ENOMEM;
    snprintf(err, errlen, "out of memory");
  } else {
    rc = crdt_apply(state, o, actor, now, lim, res);
    if (rc)
      snprintf(err, errlen, "%s", res->msg[0] ? res->msg : kv_strerror(rc));
    else if (crdt_encode(state, out))
      rc = KV_ENOMEM;
  }
  crdt_op_free(o);
  crdt_free(state);
  return rc;
}
