/*
 * cart.c: kvorum-cart, a shopping cart on libkvorum (the Dynamo paper's
 * example), kept as an add-wins set.
 *
 *   kvorum-cart --hosts H:P[,H:P] [--region R] [--no-route]
 *               add CART ITEM [--blind] | remove CART ITEM | show CART [--json]
 *
 * A cart is an observed-remove set: every add carries a new random 64-bit
 * tag; a remove records the tags of the item that it saw. The value of a
 * cart is text, one entry per line after a "kvcart 1" header:
 *
 *   + <tag: 16 hex digits> <item>     an add that no remove has seen
 *   - <tag: 16 hex digits>            a removed tag
 *
 * Reading merges every sibling: the union of the adds minus the union of
 * the removed tags. So an add concurrent with a remove of the same item
 * survives (its tag is new: add wins), and a remove removes only what it
 * saw. add and remove read the cart, change the merged set, and write it
 * back with the context they read, which replaces exactly the siblings they
 * merged. add --blind writes a one-entry set without reading (no context:
 * it becomes a sibling, never overwrites), as a client that has not seen
 * the cart yet would.
 *
 * Removed tags are kept (up to CART_ENTRIES_MAX entries in all) so that a
 * sibling written before the remove cannot bring the item back.
 *
 * Exit status: 0, 1 on an error (message on stderr), 2 on bad usage.
 *
 * Depends on: libkvorum (client/kvorum.h).
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvorum.h"

#define CART_ITEM_MAX 256u       /* bytes in an item name */
#define CART_NAME_MAX 200u       /* bytes in a cart name */
#define CART_ENTRIES_MAX 100000u /* adds and removed tags in one cart */
#define CART_KEY_PREFIX "cart:"
#define CART_HEADER "kvcart 1\n"
#define CART_ERR_MAX 512

typedef struct cart_add {
  uint64_t tag;
  char *item; /* NUL-terminated, owned */
} cart_add;

typedef struct cart {
  cart_add *adds;
  size_t nadds, cap_adds;
  uint64_t *removed;
  size_t nremoved, cap_removed;
} cart;

static void cart_free(cart *c) {
  for (size_t i = 0; i < c->nadds; i++)
    free(c->adds[i].item);
  free(c->adds);
  free(c->removed);
  memset(c, 0, sizeof(*c));
}

static bool cart_is_removed(const cart *c, uint64_t tag) {
  for (size_t i = 0; i < c->nremoved; i++)
    if (c->removed[i] == tag)
      return true;
  return false;
}

static bool cart_has_add(const cart *c, uint64_t tag) {
  for (size_t i = 0; i < c->nadds; i++)
    if (c->adds[i].tag == tag)
      return true;
  return false;
}

/* Adds tag for item (copied) unless the tag is known. Returns 0 or
 * KV_ENOMEM / KV_ETOOBIG. */
static int cart_add_tag(cart *c, uint64_t tag, const char *item, size_t len) {
  if (cart_has_add(c, tag))
    return 0;
  if (c->nadds + c->nremoved >= CART_ENTRIES_MAX)
    return KV_ETOOBIG;
  if (c->nadds == c->cap_adds) {
    size_t cap = c->cap_adds ? c->cap_adds * 2 : 16;
    cart_add *p = realloc(c->adds, cap * sizeof(*p));
    if (!p)
      return KV_ENOMEM;
    c->adds = p;
    c->cap_adds = cap;
  }
  char *s = malloc(len + 1);
  if (!s)
    return KV_ENOMEM;
  memcpy(s, item, len);
  s[len] = '\0';
  c->adds[c->nadds++] = (cart_add){.tag = tag, .item = s};
  return 0;
}

static int cart_remove_tag(cart *c, uint64_t tag) {
  if (cart_is_removed(c, tag))
    return 0;
  if (c->nadds + c->nremoved >= CART_ENTRIES_MAX)
    return KV_ETOOBIG;
  if (c->nremoved == c->cap_removed) {
    size_t cap = c->cap_removed ? c->cap_removed * 2 : 16;
    uint64_t *p = realloc(c->removed, cap * sizeof(*p));
    if (!p)
      return KV_ENOMEM;
    c->removed = p;
    c->cap_removed = cap;
  }
  c->removed[c->nremoved++] = tag;
  return 0;
}

/* Drops the adds whose tag was removed. */
static void cart_normalize(cart *c) {
  size_t w = 0;
  for (size_t i = 0; i < c->nadds; i++) {
    if (cart_is_removed(c, c->adds[i].tag))
      free(c->adds[i].item);
    else
      c->adds[w++] = c->adds[i];
  }
  c->nadds = w;
}

static int cart_parse_tag(const char *p, const char *end, uint64_t *out) {
  if (end - p < 16)
    return -1;
  uint64_t v = 0;
  for (int i = 0; i < 16; i++) {
    int ch = (unsigned char)p[i];
    int d = isdigit(ch) ? ch - '0' : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10
                                                               : -1;
    if (d < 0)
      return -1;
    v = v << 4 | (uint64_t)d;
  }
  *out = v;
  return 0;
}

/* Merges one sibling's value into c. Returns 0, KV_EINVAL when the value
 * is not a cart, or KV_ENOMEM / KV_ETOOBIG. */
static int cart_merge_value(cart *c, const uint8_t *val, size_t len) {
  const char *p = (const char *)val, *end = p + len;
  size_t hl = strlen(CART_HEADER);
  if (len < hl || memcmp(p, CART_HEADER, hl) != 0)
    return KV_EINVAL;
  p += hl;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl)
      return KV_EINVAL;
    uint64_t tag;
    if (nl - p >= 2 && p[1] == ' ' && cart_parse_tag(p + 2, nl, &tag) == 0) {
      const char *rest = p + 2 + 16;
      int rc;
      if (p[0] == '+' && rest < nl && *rest == ' ' &&
          (size_t)(nl - rest - 1) <= CART_ITEM_MAX && nl - rest > 1)
        rc = cart_add_tag(c, tag, rest + 1, (size_t)(nl - rest - 1));
      else if (p[0] == '-' && rest == nl)
        rc = cart_remove_tag(c, tag);
      else
        return KV_EINVAL;
      if (rc)
        return rc;
    } else {
      return KV_EINVAL;
    }
    p = nl + 1;
  }
  return 0;
}

static int cart_cmp_add(const void *a, const void *b) {
  const cart_add *x = a, *y = b;
  int c = strcmp(x->item, y->item);
  if (c)
    return c;
  return x->tag < y->tag ? -1 : x->tag > y->tag;
}

static int cart_cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Encodes c (normalized, sorted) into a malloc'd buffer (caller frees).
 * Returns NULL when out of memory. */
static char *cart_encode(cart *c, size_t *len) {
  cart_normalize(c);
  if (c->nadds)
    qsort(c->adds, c->nadds, sizeof(*c->adds), cart_cmp_add);
  if (c->nremoved)
    qsort(c->removed, c->nremoved, sizeof(*c->removed), cart_cmp_u64);
  size_t cap = strlen(CART_HEADER) + 1 + c->nremoved * 20;
  for (size_t i = 0; i < c->nadds; i++)
    cap += 20 + strlen(c->adds[i].item) + 1;
  char *buf = malloc(cap);
  if (!buf)
    return NULL;
  size_t n = (size_t)snprintf(buf, cap, "%s", CART_HEADER);
  for (size_t i = 0; i < c->nadds; i++)
    n += (size_t)snprintf(buf + n, cap - n, "+ %016" PRIx64 " %s\n",
                          c->adds[i].tag, c->adds[i].item);
  for (size_t i = 0; i < c->nremoved; i++)
    n += (size_t)snprintf(buf + n, cap - n, "- %016" PRIx64 "\n",
                          c->removed[i]);
  *len = n;
  return buf;
}

/* A new random tag: /dev/urandom, or the clock and pid when it is
 * missing. Never 0. */
static uint64_t cart_new_tag(void) {
  uint64_t v = 0;
  FILE *f = fopen("/dev/urandom", "rb");
  if (f) {
    if (fread(&v, sizeof(v), 1, f) != 1)
      v = 0;
    fclose(f);
  }
  if (v == 0) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    v = ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^
        ((uint64_t)getpid() << 32);
  }
  return v ? v : 1;
}

/* Reads the cart and merges its siblings into c; *res keeps the context
 * (caller frees with kv_result_free; NULL when not found). */
static int cart_read(kv_client *kc, const char *key, cart *c,
                     kv_result **res, size_t *nsiblings, char *err,
                     size_t errlen) {
  *res = NULL;
  *nsiblings = 0;
  int rc = kv_get(kc, key, strlen(key), NULL, res);
  if (rc == KV_ENOTFOUND) {
    *res = NULL;
    return 0;
  }
  if (rc) {
    snprintf(err, errlen, "reading %s: %s", key, kv_errmsg(kc));
    return rc;
  }
  for (size_t i = 0; i < (*res)->nsiblings; i++) {
    const kv_sibling *s = &(*res)->siblings[i];
    if (s->deleted)
      continue;
    (*nsiblings)++;
    rc = cart_merge_value(c, s->value, s->len);
    if (rc) {
      snprintf(err, errlen, "%s: sibling %zu %s", key, i + 1,
               rc == KV_EINVAL ? "is not a cart (written by something else?)"
                               : kv_strerror(rc));
      return rc;
    }
  }
  return 0;
}

static int cart_write(kv_client *kc, const char *key, cart *c,
                      const kv_result *read, char *err, size_t errlen) {
  size_t len;
  char *buf = cart_encode(c, &len);
  if (!buf) {
    snprintf(err, errlen, "out of memory");
    return KV_ENOMEM;
  }
  const uint8_t *ctx = read ? read->context : NULL;
  size_t ctx_len = read ? read->context_len : 0;
  int rc = kv_put(kc, key, strlen(key), buf, len, ctx, ctx_len, NULL, NULL);
  free(buf);
  if (rc)
    snprintf(err, errlen, "writing %s: %s", key, kv_errmsg(kc));
  return rc;
}

/* Prints s as a JSON string. */
static void cart_json_str(const char *s) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      printf("\\%c", *p);
    else if (*p < 0x20)
      printf("\\u%04x", *p);
    else
      putchar(*p);
  }
  putchar('"');
}

/* Prints the live items (each once, sorted) as text or JSON. */
static void cart_print(const char *name, cart *c, size_t nsiblings,
                       bool json) {
  cart_normalize(c);
  if (c->nadds)
    qsort(c->adds, c->nadds, sizeof(*c->adds), cart_cmp_add);
  if (json) {
    printf("{\"cart\": ");
    cart_json_str(name);
    printf(", \"siblings\": %zu, \"items\": [", nsiblings);
  }
  size_t shown = 0;
  for (size_t i = 0; i < c->nadds; i++) {
    if (i && strcmp(c->adds[i].item, c->adds[i - 1].item) == 0)
      continue;
    if (json) {
      printf("%s", shown ? ", " : "");
      cart_json_str(c->adds[i].item);
    } else {
      printf("%s\n", c->adds[i].item);
    }
    shown++;
  }
  if (json)
    printf("]}\n");
}

static void cart_usage(void) {
  fprintf(stderr,
          "usage: kvorum-cart --hosts H:P[,H:P] [--region R] [--no-route] "
          "COMMAND\n"
          "  add CART ITEM [--blind]  put ITEM in CART (--blind: without "
          "reading first)\n"
          "  remove CART ITEM         take ITEM out of CART (the adds seen)\n"
          "  show CART [--json]       list the items of CART\n");
}

static bool cart_valid_text(const char *s, size_t max) {
  size_t n = strlen(s);
  return n > 0 && n <= max && !strchr(s, '\n') && !strchr(s, '\r');
}

int main(int argc, char **argv) {
  const char *hosts = KV_DEFAULT_HOST, *region = NULL;
  bool no_route = false, json = false, blind = false;
  const char *pos[3];
  int npos = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--hosts") == 0 && i + 1 < argc)
      hosts = argv[++i];
    else if (strcmp(a, "--region") == 0 && i + 1 < argc)
      region = argv[++i];
    else if (strcmp(a, "--no-route") == 0)
      no_route = true;
    else if (strcmp(a, "--json") == 0)
      json = true;
    else if (strcmp(a, "--blind") == 0)
      blind = true;
    else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      cart_usage();
      return 0;
    } else if (a[0] == '-' && a[1] == '-') {
      fprintf(stderr, "kvorum-cart: unknown flag %s\n", a);
      cart_usage();
      return 2;
    } else if (npos < 3) {
      pos[npos++] = a;
    } else {
      cart_usage();
      return 2;
    }
  }
  if (npos < 2) {
    cart_usage();
    return 2;
  }
  const char *cmd = pos[0], *name = pos[1];
  bool is_add = strcmp(cmd, "add") == 0, is_rm = strcmp(cmd, "remove") == 0,
       is_show = strcmp(cmd, "show") == 0;
  if ((!is_add && !is_rm && !is_show) || ((is_add || is_rm) != (npos == 3)) ||
      (blind && !is_add) || (json && !is_show)) {
    cart_usage();
    return 2;
  }
  if (!cart_valid_text(name, CART_NAME_MAX) ||
      (npos == 3 && !cart_valid_text(pos[2], CART_ITEM_MAX))) {
    fprintf(stderr, "kvorum-cart: cart names are 1-%u bytes and items 1-%u "
            "bytes, without line breaks\n", CART_NAME_MAX, CART_ITEM_MAX);
    return 2;
  }
  char key[sizeof(CART_KEY_PREFIX) + CART_NAME_MAX];
  snprintf(key, sizeof(key), "%s%s", CART_KEY_PREFIX, name);

  char err[CART_ERR_MAX] = "";
  kv_connect_opts opts = {.no_route = no_route, .region = region};
  kv_client *kc = NULL;
  int rc = kv_connect(hosts, &opts, &kc, err, sizeof(err));
  if (rc) {
    fprintf(stderr, "kvorum-cart: %s\n", err);
    return 1;
  }
  cart c;
  memset(&c, 0, sizeof(c));
  kv_result *res = NULL;
  size_t nsib = 0;
  if (is_add && blind) {
    rc = cart_add_tag(&c, cart_new_tag(), pos[2], strlen(pos[2]));
    if (rc == 0)
      rc = cart_write(kc, key, &c, NULL, err, sizeof(err));
    if (rc == 0)
      printf("added %s to %s (blind)\n", pos[2], name);
    goto out;
  }
  rc = cart_read(kc, key, &c, &res, &nsib, err, sizeof(err));
  if (rc)
    goto out;
  if (is_show) {
    cart_print(name, &c, nsib, json);
    goto out;
  }
  if (is_add) {
    rc = cart_add_tag(&c, cart_new_tag(), pos[2], strlen(pos[2]));
  } else {
    size_t seen = 0;
    for (size_t i = 0; i < c.nadds && rc == 0; i++) {
      if (strcmp(c.adds[i].item, pos[2]) == 0 &&
          !cart_is_removed(&c, c.adds[i].tag)) {
        rc = cart_remove_tag(&c, c.adds[i].tag);
        seen++;
      }
    }
    if (rc == 0 && seen == 0) {
      snprintf(err, sizeof(err), "%s is not in %s", pos[2], name);
      rc = KV_ENOTFOUND;
      goto out;
    }
  }
  if (rc) {
    snprintf(err, sizeof(err), "%s: %s", name, kv_strerror(rc));
    goto out;
  }
  rc = cart_write(kc, key, &c, res, err, sizeof(err));
  if (rc == 0)
    printf("%s %s %s %s (merged %zu sibling%s)\n", is_add ? "added" : "removed",
           pos[2], is_add ? "to" : "from", name, nsib, nsib == 1 ? "" : "s");
out:
  if (rc && err[0])
    fprintf(stderr, "kvorum-cart: %s\n", err);
  kv_result_free(res);
  cart_free(&c);
  kv_close(kc);
  return rc ? 1 : 0;
}
