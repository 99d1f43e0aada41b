/*
 * cart.c: kvorum-cart, a shopping cart on libkvorum (the Dynamo paper's
 * example), kept by the nodes as an add-wins set (docs/data-types.md).
 *
 *   kvorum-cart --hosts H:P[,H:P] [--region R] [--no-route]
 *               add CART ITEM | remove CART ITEM [--context CTX] |
 *               show CART [--json]
 *
 * The cart "cart:CART" is a set data type: add and remove send an
 * operation (crdt.h's crdt_op_set_add / crdt_op_set_rem) with kv_update
 * to any node of any region, and the node that coordinates applies it to
 * the merged state; concurrent operations through different nodes leave
 * siblings that every read joins. So the client merges nothing: an add
 * concurrent with a remove of the same item keeps the item (add wins), and
 * a remove removes only the adds it saw (--context: the context that show
 * --json printed; without it, what the coordinating node holds).
 *
 * show --json prints {"items": [...], "context": "<base64>"}.
 * Exit status: 0, 1 on an error (message on stderr: "not in the cart" for
 * the removal of an absent item), 2 on bad usage.
 *
 * Depends on: libkvorum (client/kvorum.h), crdt.h (kvobj, linked by it).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt.h"
#include "kv_base64.h"
#include "kv_json.h"
#include "kvorum.h"

#define CART_KEY_MAX 256

static void cart_usage(void) {
  fprintf(stderr,
          "usage: kvorum-cart [--hosts H:P[,H:P]] [--region R] [--no-route]\n"
          "                   add CART ITEM | remove CART ITEM [--context "
          "CTX] |\n"
          "                   show CART [--json]\n");
}

/* Reads the cart into *st (NULL: empty). Returns 0 or 1 (printed). */
static int cart_read(kv_client *c, const char *key, crdt **st) {
  *st = NULL;
  kv_result *res = NULL;
  int rc = kv_get(c, key, strlen(key), NULL, &res);
  if (rc) {
    fprintf(stderr, "kvorum-cart: %s\n", kv_errmsg(c));
    return 1;
  }
  for (size_t i = 0; i < res->nsiblings && rc == 0; i++) {
    const kv_sibling *s = &res->siblings[i];
    if (s->typed)
      rc = crdt_decode(s->value, s->len, st);
    else if (!s->deleted)
      rc = KV_ETYPE;
  }
  kv_result_free(res);
  if (rc == 0 && *st && crdt_type_of(*st) != CRDT_SET)
    rc = KV_ETYPE;
  if (rc) {
    fprintf(stderr, "kvorum-cart: %s is not a cart: %s\n", key,
            kv_strerror(rc));
    crdt_free(*st);
    *st = NULL;
    return 1;
  }
  return 0;
}

static int cart_show(kv_client *c, const char *key, bool json) {
  crdt *st;
  if (cart_read(c, key, &st))
    return 1;
  kvbuf b;
  kvbuf_init(&b);
  size_t n = st ? crdt_set_count(st) : 0;
  if (json)
    kvbuf_append(&b, "{\"items\": [", 11);
  for (size_t i = 0; i < n; i++) {
    kv_slice m;
    if (crdt_set_member(st, i, &m))
      break;
    if (json) {
      kvbuf_append(&b, ", ", i ? 2 : 0);
      kv_json_str(&b, m.ptr, m.len);
    } else {
      kvbuf_append(&b, m.ptr, m.len);
      kvbuf_append(&b, "\n", 1);
    }
  }
  if (json) {
    kvbuf ctx;
    kvbuf_init(&ctx);
    if (st)
      crdt_context(st, &ctx);
    kvbuf_append(&b, "], \"context\": \"", 15);
    kv_b64_encode(&b, ctx.data, ctx.len);
    kvbuf_append(&b, "\"}\n", 3);
    kvbuf_free(&ctx);
  }
  if (b.len)
    fwrite(b.data, 1, b.len, stdout);
  kvbuf_free(&b);
  crdt_free(st);
  return 0;
}

/* add or remove ITEM: one operation through kv_update. */
static int cart_update(kv_client *c, const char *key, bool add,
                       const char *item, const char *ctx64) {
  uint8_t *ctx = NULL;
  size_t ctx_len = 0;
  if (ctx64 && (kv_b64_decode(ctx64, strlen(ctx64), &ctx, &ctx_len) ||
                crdt_context_check(ctx, ctx_len))) {
    free(ctx);
    fprintf(stderr, "kvorum-cart: --context is not a cart's context\n");
    return 2;
  }
  kv_slice el = {(const uint8_t *)item, strlen(item)};
  kvbuf op;
  kvbuf_init(&op);
  int rc = add ? crdt_op_set_add(&op, &el, 1)
               : crdt_op_set_rem(&op, &el, 1, ctx, ctx_len);
  free(ctx);
  kv_result *res = NULL;
  if (rc == 0)
    rc = kv_update(c, key, strlen(key), op.data, op.len, NULL, &res);
  kvbuf_free(&op);
  if (rc) {
    fprintf(stderr, "kvorum-cart: %s\n", kv_errmsg(c));
    return 1;
  }
  bool gone = !add && res->removed == 0;
  kv_result_free(res);
  if (gone) {
    fprintf(stderr, "kvorum-cart: %s is not in %s\n", item, key);
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  const char *hosts = KV_DEFAULT_HOST, *region = NULL, *ctx = NULL;
  bool no_route = false, json = false;
  const char *pos[3];
  int npos = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--hosts") == 0 && i + 1 < argc)
      hosts = argv[++i];
    else if (strcmp(a, "--region") == 0 && i + 1 < argc)
      region = argv[++i];
    else if (strcmp(a, "--context") == 0 && i + 1 < argc)
      ctx = argv[++i];
    else if (strcmp(a, "--no-route") == 0)
      no_route = true;
    else if (strcmp(a, "--json") == 0)
      json = true;
    else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      cart_usage();
      return 0;
    } else if ((a[0] == '-' && a[1] == '-') || npos == 3) {
      cart_usage();
      return 2;
    } else {
      pos[npos++] = a;
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
      (ctx && !is_rm) || (json && !is_show)) {
    cart_usage();
    return 2;
  }
  char key[CART_KEY_MAX];
  if ((size_t)snprintf(key, sizeof(key), "cart:%s", name) >= sizeof(key)) {
    fprintf(stderr, "kvorum-cart: cart name too long\n");
    return 2;
  }
  kv_connect_opts co = {.no_route = no_route, .region = region};
  char err[256];
  kv_client *c = NULL;
  if (kv_connect(hosts, &co, &c, err, sizeof(err))) {
    fprintf(stderr, "kvorum-cart: %s\n", err);
    return 1;
  }
  int rc = is_show ? cart_show(c, key, json)
                   : cart_update(c, key, is_add, pos[2], ctx);
  kv_close(c);
  return rc;
}
