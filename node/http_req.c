/*
 * http_req.c: the request targets of kvorumd's HTTP front end
 * (http_req.h).
 */
#include "http_req.h"

#include <stdio.h>
#include <string.h>

#include "kv_err.h"
#include "kv_str.h"

long http_unescape(const char *s, size_t len, uint8_t *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    int c = (unsigned char)s[i];
    if (c == '%') {
      int hi = i + 2 < len ? kv_hexval(s[i + 1]) : -1;
      int lo = i + 2 < len ? kv_hexval(s[i + 2]) : -1;
      if (hi < 0 || lo < 0)
        return -1;
      c = hi << 4 | lo;
      i += 2;
    }
    if (o == cap)
      return -2;
    out[o++] = (uint8_t)c;
  }
  return (long)o;
}

static bool http__is(const char *s, size_t len, const char *lit) {
  return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

/* One name=value pair of the query into t->opts. */
static int http__param(http_target *t, const char *s, size_t len, char *err,
                       size_t errlen) {
  const char *eq = memchr(s, '=', len);
  size_t nl = eq ? (size_t)(eq - s) : len;
  char name[16], val[32];
  long n = http_unescape(s, nl, (uint8_t *)name, sizeof(name) - 1);
  long v = eq ? http_unescape(eq + 1, len - nl - 1, (uint8_t *)val,
                              sizeof(val) - 1)
              : 0;
  if (n < 0 || v < 0) {
    snprintf(err, errlen, "malformed query parameter \"%.*s\"",
             (int)(len > 64 ? 64 : len), s);
    return KV_EINVAL;
  }
  name[n] = '\0';
  val[v] = '\0';
  if (memchr(name, '\0', (size_t)n) || memchr(val, '\0', (size_t)v)) {
    snprintf(err, errlen, "a query parameter holds a NUL byte");
    return KV_EINVAL;
  }
  int32_t *level = NULL;
  if (strcmp(name, "r") == 0)
    level = &t->opts.r;
  else if (strcmp(name, "pr") == 0)
    level = &t->opts.pr;
  else if (strcmp(name, "w") == 0)
    level = &t->opts.w;
  else if (strcmp(name, "dw") == 0)
    level = &t->opts.dw;
  else if (strcmp(name, "pw") == 0)
    level = &t->opts.pw;
  if (level) {
    if (wire_parse_quorum(val, level)) {
      snprintf(err, errlen,
               "%s=%s: expected a number or one, quorum, all, local_one, "
               "local_quorum, each_quorum",
               name, val);
      return KV_EINVAL;
    }
    return 0;
  }
  if (strcmp(name, "ttl") == 0) {
    uint64_t sec = 0;
    size_t i = 0;
    for (; val[i] >= '0' && val[i] <= '9' && sec <= 1000000000u; i++)
      sec = sec * 10 + (uint64_t)(val[i] - '0');
    if (i == 0 || val[i] || sec == 0 || sec > 1000000000u) {
      snprintf(err, errlen, "ttl=%s: expected seconds (1 or more)", val);
      return KV_EINVAL;
    }
    t->opts.ttl_ms = sec * 1000u;
    return 0;
  }
  if (strcmp(name, "timeout") == 0) {
    uint64_t ms = 0;
    size_t i = 0;
    for (; val[i] >= '0' && val[i] <= '9' && ms <= UINT32_MAX; i++)
      ms = ms * 10 + (uint64_t)(val[i] - '0');
    if (i == 0 || val[i] || ms == 0 || ms > UINT32_MAX) {
      snprintf(err, errlen, "timeout=%s: expected milliseconds (1 or more)",
               val);
      return KV_EINVAL;
    }
    t->opts.timeout_ms = (uint32_t)ms;
    return 0;
  }
  snprintf(err, errlen,
           "unknown query parameter \"%s\" (known: r, pr, w, dw, pw, "
           "timeout, ttl)",
           name);
  return KV_EINVAL;
}

static int http__query(http_target *t, const char *q, size_t len, char *err,
                       size_t errlen) {
  while (len) {
    const char *amp = memchr(q, '&', len);
    size_t pl = amp ? (size_t)(amp - q) : len;
    if (pl) {
      int rc = http__param(t, q, pl, err, errlen);
      if (rc)
        return rc;
    }
    if (!amp)
      break;
    q += pl + 1;
    len -= pl + 1;
  }
  return 0;
}

int http_target_parse(const char *target, size_t len, http_target *out,
                      char *err, size_t errlen) {
  out->route = HTTP_R_UNKNOWN;
  out->klen = 0;
  out->admin[0] = '\0';
  memset(&out->opts, 0, sizeof(out->opts));
  out->opts.r = out->opts.w = out->opts.dw = out->opts.pr = out->opts.pw =
      WIRE_Q_DEFAULT;
  const char *qm = memchr(target, '?', len);
  size_t pl = qm ? (size_t)(qm - target) : len;
  const char *p = target;
  if (http__is(p, pl, "/metrics"))
    out->route = HTTP_R_METRICS;
  else if (http__is(p, pl, "/health"))
    out->route = HTTP_R_HEALTH;
  else if (http__is(p, pl, "/ready"))
    out->route = HTTP_R_READY;
  else if (pl > 4 && memcmp(p, "/kv/", 4) == 0) {
    long k = http_unescape(p + 4, pl - 4, out->key, sizeof(out->key));
    if (k == -1) {
      snprintf(err, errlen, "the key has a malformed %%-escape");
      return KV_EINVAL;
    }
    if (k == -2) {
      snprintf(err, errlen, "the key is longer than %u bytes", KV_KEY_MAX);
      return KV_ETOOBIG;
    }
    out->klen = (size_t)k;
    out->route = HTTP_R_KV;
  } else if (pl > 7 && memcmp(p, "/admin/", 7) == 0) {
    static const char *const cmds[] = {"status", "ring", "stats",
                                       "transfers"};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
      if (http__is(p + 7, pl - 7, cmds[i])) {
        snprintf(out->admin, sizeof(out->admin), "%s", cmds[i]);
        out->route = HTTP_R_ADMIN;
      }
  }
  if (qm && out->route != HTTP_R_UNKNOWN)
    return http__query(out, qm + 1, len - pl - 1, err, errlen);
  return 0;
}

int http_types_target(const char *target, size_t len, http_target *out,
                      const char **query, size_t *qlen, char *err,
                      size_t errlen) {
  const char *qm = memchr(target, '?', len);
  size_t pl = qm ? (size_t)(qm - target) : len;
  if (pl < 7 || memcmp(target, "/types/", 7) != 0)
    return 1;
  long k = http_unescape(target + 7, pl - 7, out->key, sizeof(out->key));
  if (k == -1 || k == 0) {
    snprintf(err, errlen, k ? "the key has a malformed %%-escape"
                            : "/types/{key} needs a key");
    return KV_EINVAL;
  }
  if (k == -2) {
    snprintf(err, errlen, "the key is longer than %u bytes", KV_KEY_MAX);
    return KV_ETOOBIG;
  }
  out->klen = (size_t)k;
  *query = qm ? qm + 1 : target + len;
  *qlen = qm ? len - pl - 1 : 0;
  return 0;
}

int http_query_next(const char *q, size_t len, size_t *pos, char *name,
                    size_t ncap, uint8_t *val, size_t vcap, size_t *vlen,
                    char *err, size_t errlen) {
  while (*pos < len && q[*pos] == '&')
    (*pos)++;
  if (*pos >= len || ncap == 0)
    return 0;
  const char *s = q + *pos;
  const char *amp = memchr(s, '&', len - *pos);
  size_t pl = amp ? (size_t)(amp - s) : len - *pos;
  const char *eq = memchr(s, '=', pl);
  size_t nl = eq ? (size_t)(eq - s) : pl;
  long n = http_unescape(s, nl, (uint8_t *)name, ncap - 1);
  long v = eq ? http_unescape(eq + 1, pl - nl - 1, val, vcap) : 0;
  if (n < 0 || v < 0 || memchr(name, '\0', n > 0 ? (size_t)n : 0)) {
    snprintf(err, errlen, "malformed or too long query parameter \"%.*s\"",
             (int)(pl > 64 ? 64 : pl), s);
    return KV_EINVAL;
  }
  name[n] = '\0';
  *vlen = (size_t)v;
  *pos += pl;
  return 1;
}
