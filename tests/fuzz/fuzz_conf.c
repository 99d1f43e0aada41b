/*
 * fuzz_conf.c: libFuzzer target for kvorumd's config file reader
 * (node/conf.h): conf_load_text, libinih under it, and conf_print.
 *
 * The input is the text of a config file. Beyond "no crash" (ASan, UBSan)
 * it checks:
 *   - the result is 0, KV_EINVAL or KV_ENOMEM; on an error the message is
 *     non-empty, NUL-terminated inside errlen, and reads "fuzz:LINE: ..."
 *     with LINE one of the input's lines;
 *   - the error is the first one in file order: the text before LINE
 *     loads, and the text up to the end of LINE fails with the same
 *     message;
 *   - a small errlen (chosen by the input) gives the same result and the
 *     message cut short;
 *   - every value loaded passes conf_set again, and conf_check answers 0
 *     or KV_EINVAL with a message;
 *   - **round trip**: what conf_print writes loads back (as a file) to
 *     the same settings and prints the same bytes.
 * Depends on: kvconf (libinih).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "kv_err.h"
#include "tests/fuzz/fz.h"

#define FZ_NAME "fuzz"

/* Loads data[0..size) from an exact-size copy (so ASan sees any read past
 * it) into a fresh c, err of errlen bytes. Checks what every result must
 * hold and returns it. */
static int fz_load(conf *c, const uint8_t *data, size_t size, char *err,
                   size_t errlen) {
  char *copy = malloc(size ? size : 1);
  FZ_CHECK(copy != NULL);
  if (size)
    memcpy(copy, data, size);
  conf_init(c);
  int rc = conf_load_text(c, FZ_NAME, copy, size, err, errlen);
  free(copy);
  FZ_CHECK(rc == 0 || rc == KV_EINVAL || rc == KV_ENOMEM);
  if (rc && errlen) {
    size_t n = strnlen(err, errlen);
    FZ_CHECK(n < errlen);
  }
  return rc;
}

/* The line number of an error "fuzz:LINE: ...", or 0. */
static unsigned long fz_line(const char *err) {
  size_t pl = strlen(FZ_NAME ":");
  if (strncmp(err, FZ_NAME ":", pl) != 0)
    return 0;
  char *end;
  unsigned long l = strtoul(err + pl, &end, 10);
  return *end == ':' ? l : 0;
}

/* conf_print's text of c (malloc'd). */
static char *fz_print(const conf *c, size_t *len) {
  char *buf = NULL;
  FILE *f = open_memstream(&buf, len);
  FZ_CHECK(f != NULL);
  FZ_CHECK(conf_print(c, f, "fuzz") == 0);
  fclose(f);
  return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[CONF_ERR_MAX], again[CONF_ERR_MAX];
  conf c;
  int rc = fz_load(&c, data, size, err, sizeof(err));
  if (rc == KV_ENOMEM) {
    conf_free(&c);
    return 0;
  }
  size_t small = size ? data[0] % 24 : 0;
  if (rc) {
    FZ_CHECK(err[0] != '\0');
    unsigned long line = fz_line(err);
    size_t lines = 1;
    for (size_t i = 0; i < size; i++)
      lines += data[i] == '\n' && i + 1 < size;
    FZ_CHECK(line >= 1 && line <= lines);
    /* The lines before it load; through its end, the same error. */
    size_t start = 0, end;
    for (unsigned long l = 1; l < line; l++)
      start =
          (size_t)((const uint8_t *)memchr(data + start, '\n', size - start) -
                   data) +
          1;
    const uint8_t *nl = memchr(data + start, '\n', size - start);
    end = nl ? (size_t)(nl - data) + 1 : size;
    conf p;
    FZ_CHECK(fz_load(&p, data, start, again, sizeof(again)) == 0);
    conf_free(&p);
    FZ_CHECK(fz_load(&p, data, end, again, sizeof(again)) == rc);
    FZ_CHECK(strcmp(err, again) == 0);
    conf_free(&p);
    /* A small buffer: the same result, the message cut short. */
    memset(again, 'x', sizeof(again));
    FZ_CHECK(fz_load(&p, data, size, again, small) == rc);
    if (small) {
      FZ_CHECK(strncmp(again, err, small - 1) == 0);
      FZ_CHECK(strlen(again) ==
               (strlen(err) < small ? strlen(err) : small - 1));
    }
    FZ_CHECK(again[small] == 'x' || small == sizeof(again));
    conf_free(&p);
    conf_free(&c);
    return 0;
  }
  /* Loaded: every value passes again; the checks across settings run. */
  for (int i = 0; i < CONF_COUNT; i++) {
    if (!c.val[i])
      continue;
    conf t;
    conf_init(&t);
    FZ_CHECK(conf_set(&t, (conf_id)i, c.val[i], err, sizeof(err)) == 0);
    conf_free(&t);
  }
  int ck = conf_check(&c, err, sizeof(err));
  FZ_CHECK(ck == 0 || (ck == KV_EINVAL && err[0]));
  /* Round trip through --print-config. */
  size_t la, lb;
  char *pa = fz_print(&c, &la);
  conf b;
  FZ_CHECK(fz_load(&b, (const uint8_t *)pa, la, err, sizeof(err)) == 0);
  char *pb = fz_print(&b, &lb);
  FZ_CHECK(la == lb && memcmp(pa, pb, la) == 0);
  for (int i = 0; i < CONF_COUNT; i++) {
    if (i == CONF_DATA || i == CONF_CLIENT_TLS || i == CONF_PEER_TLS ||
        i == CONF_N)
      continue; /* printed as what they come to */
    const char *x = conf_get(&c, (conf_id)i), *y = conf_get(&b, (conf_id)i);
    FZ_CHECK((!x && !y) || (x && y && strcmp(x, y) == 0));
  }
  free(pa);
  free(pb);
  conf_free(&b);
  conf_free(&c);
  return 0;
}
