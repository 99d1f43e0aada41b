/*
 * fuzz_auth.c: libFuzzer target for the auth file parser (node/auth.h):
 * auth_db_parse, which reads the --auth-file an operator (or a tool, or an
 * attacker who can write to it) gives kvorumd, and auth_db_write.
 *
 * The input is the text of an auth file. Parsing runs no KDF, so an input
 * is cheap whatever iteration counts it names. Beyond "no crash" (ASan,
 * UBSan) it checks:
 *   - the result is 0, KV_EINVAL or KV_ENOMEM; on an error *out is NULL
 *     and err is a non-empty message NUL-terminated inside errlen, either
 *     "fuzz: ..." (a whole-file limit) or "fuzz:LINE: ..." with LINE one
 *     of the input's lines; no message holds a '$', so none quotes a hash;
 *   - the error is the first one in file order: the text before LINE
 *     parses, and the text up to the end of LINE gives the same message;
 *   - a small errlen (chosen by the input) gives the same result and the
 *     message cut short;
 *   - on success: at most AUTH_USERS_MAX users and no more than the lines;
 *     each user has a valid name and role; auth_db_user stops at the
 *     count; **round trip**: auth_db_write's text parses to the same users
 *     and roles in order and writes back to the same bytes;
 *   - appending a comment changes nothing (the same canonical text);
 *     appending the first user's line again is KV_EINVAL "duplicate user
 *     NAME (first on line L)" on the line it was appended at.
 * Depends on: kvauth (kvproto, OpenSSL).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "kv_err.h"
#include "mp.h"
#include "tests/fuzz/fz.h"

#define FZ_ERR_SIZE 256
#define FZ_NAME "fuzz"

/* Parses data[0..size) from an exact-size copy (so ASan sees any read past
 * it) with err of errlen bytes, filled with 'x' first. Checks what every
 * result must hold. Returns the result; *db on 0. */
static int fz_parse(const uint8_t *data, size_t size, auth_db **db, char *err,
                    size_t errlen) {
  char *copy = malloc(size ? size : 1);
  FZ_CHECK(copy != NULL);
  if (size)
    memcpy(copy, data, size);
  memset(err, 'x', FZ_ERR_SIZE);
  *db = (auth_db *)db; /* not NULL, to see an error set it to NULL */
  int rc = auth_db_parse(copy, size, FZ_NAME, db, err, errlen);
  free(copy);
  FZ_CHECK(rc == 0 || rc == KV_EINVAL || rc == KV_ENOMEM);
  if (rc == 0) {
    FZ_CHECK(*db != NULL);
    return rc;
  }
  FZ_CHECK(*db == NULL);
  if (errlen) {
    size_t n = strnlen(err, errlen);
    FZ_CHECK(n < errlen);
    FZ_CHECK(n > 0 || errlen == 1);
    FZ_CHECK(strchr(err, '$') == NULL);
  }
  if (errlen < FZ_ERR_SIZE)
    FZ_CHECK(err[errlen] == 'x');
  return rc;
}

/* Number of lines of data[0..size): '\n's, plus one for a last line
 * without one. */
static size_t fz_lines(const uint8_t *data, size_t size) {
  size_t n = 0;
  for (size_t i = 0; i < size; i++)
    n += data[i] == '\n';
  return n + (size && data[size - 1] != '\n');
}

/* Offset of the start of line (1-based) in data, or size. */
static size_t fz_line_start(const uint8_t *data, size_t size, size_t line) {
  size_t off = 0;
  for (size_t l = 1; l < line && off < size; off++)
    l += data[off] == '\n';
  return off;
}

/* Writes db canonically into b (initialized by the caller). */
static void fz_write(const auth_db *db, kvbuf *b) {
  FZ_CHECK(auth_db_write(db, b) == 0);
  FZ_CHECK(!b->oom);
}

/* Checks a parsed db and its round trip. */
static void fz_check_db(const auth_db *db, size_t lines) {
  size_t n = auth_db_count(db);
  FZ_CHECK(n <= AUTH_USERS_MAX);
  FZ_CHECK(n <= lines);
  const char *name;
  auth_role role;
  for (size_t i = 0; i < n; i++) {
    FZ_CHECK(auth_db_user(db, i, &name, &role) == 0);
    FZ_CHECK(auth_user_valid(name, strlen(name)));
    FZ_CHECK(role == AUTH_ROLE_READ || role == AUTH_ROLE_WRITE ||
             role == AUTH_ROLE_ADMIN);
  }
  FZ_CHECK(auth_db_user(db, n, &name, &role) == KV_ENOTFOUND);

  kvbuf a, b;
  kvbuf_init(&a);
  kvbuf_init(&b);
  fz_write(db, &a);
  auth_db *db2;
  char err[FZ_ERR_SIZE];
  int rc = fz_parse(a.data, a.len, &db2, err, sizeof(err));
  if (rc != 0)
    fprintf(stderr, "round trip: %s\n", err);
  FZ_CHECK(rc == 0);
  FZ_CHECK(auth_db_count(db2) == n);
  for (size_t i = 0; i < n; i++) {
    const char *name2;
    auth_role role2;
    FZ_CHECK(auth_db_user(db, i, &name, &role) == 0);
    FZ_CHECK(auth_db_user(db2, i, &name2, &role2) == 0);
    FZ_CHECK(strcmp(name, name2) == 0 && role == role2);
  }
  fz_write(db2, &b);
  FZ_CHECK(a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0));
  auth_db_free(db2);
  kvbuf_free(&a);
  kvbuf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char err[FZ_ERR_SIZE], err2[FZ_ERR_SIZE];
  auth_db *db, *db2;
  size_t lines = fz_lines(data, size);
  int rc = fz_parse(data, size, &db, err, sizeof(err));

  /* A short err buffer: the same result, the message cut. */
  size_t small = size ? data[size / 2] % 24 : 0;
  int rs = fz_parse(data, size, &db2, err2, small);
  FZ_CHECK(rs == rc);
  if (rc == 0) {
    auth_db_free(db2);
  } else if (small && rc == KV_EINVAL) {
    FZ_CHECK(strncmp(err, err2, small - 1) == 0);
    FZ_CHECK(strlen(err2) == strnlen(err, small - 1));
  }

  if (rc == KV_EINVAL) {
    size_t nl = strlen(FZ_NAME);
    FZ_CHECK(strncmp(err, FZ_NAME ":", nl + 1) == 0);
    if (err[nl + 1] == ' ') {
      FZ_CHECK(size > AUTH_FILE_MAX);
      return 0;
    }
    char *end;
    unsigned long line = strtoul(err + nl + 1, &end, 10);
    FZ_CHECK(end[0] == ':' && end[1] == ' ' && end[2] != '\0');
    FZ_CHECK(line >= 1 && line <= lines);
    /* The first error: what comes before its line parses... */
    size_t start = fz_line_start(data, size, line);
    FZ_CHECK(fz_parse(data, start, &db2, err2, sizeof(err2)) == 0);
    fz_check_db(db2, line - 1);
    auth_db_free(db2);
    /* ...and the text to the end of its line fails the same way. */
    const uint8_t *nlp = memchr(data + start, '\n', size - start);
    size_t stop = nlp ? (size_t)(nlp - data) : size;
    FZ_CHECK(fz_parse(data, stop, &db2, err2, sizeof(err2)) == KV_EINVAL);
    FZ_CHECK(strcmp(err, err2) == 0);
    return 0;
  }
  if (rc != 0)
    return 0;

  fz_check_db(db, lines);
  size_t n = auth_db_count(db);
  kvbuf canon, more;
  kvbuf_init(&canon);
  kvbuf_init(&more);
  fz_write(db, &canon);

  /* A comment at the end changes nothing. */
  static const char comment[] = "\n# appended\n";
  kvbuf_append(&more, data, size);
  kvbuf_append(&more, comment, sizeof(comment) - 1);
  FZ_CHECK(!more.oom);
  if (more.len <= AUTH_FILE_MAX) {
    FZ_CHECK(fz_parse(more.data, more.len, &db2, err2, sizeof(err2)) == 0);
    kvbuf w;
    kvbuf_init(&w);
    fz_write(db2, &w);
    FZ_CHECK(w.len == canon.len &&
             (w.len == 0 || memcmp(w.data, canon.data, w.len) == 0));
    kvbuf_free(&w);
    auth_db_free(db2);
  }

  /* The first user once more, on the line after the input's lines. */
  if (n > 0 && n < AUTH_USERS_MAX) {
    const uint8_t *first_nl = memchr(canon.data, '\n', canon.len);
    FZ_CHECK(first_nl != NULL);
    more.len = 0;
    kvbuf_append(&more, data, size);
    kvbuf_append(&more, "\n", 1);
    kvbuf_append(&more, canon.data, (size_t)(first_nl - canon.data) + 1);
    FZ_CHECK(!more.oom);
    if (more.len <= AUTH_FILE_MAX) {
      size_t dup_line = 1;
      for (size_t i = 0; i < size; i++)
        dup_line += data[i] == '\n';
      dup_line += 1;
      FZ_CHECK(fz_parse(more.data, more.len, &db2, err2, sizeof(err2)) ==
               KV_EINVAL);
      const char *name;
      auth_role role;
      FZ_CHECK(auth_db_user(db, 0, &name, &role) == 0);
      char want[FZ_ERR_SIZE];
      snprintf(want, sizeof(want), FZ_NAME ":%zu: duplicate user %s (first on line ",
               dup_line, name);
      FZ_CHECK(strncmp(err2, want, strlen(want)) == 0);
    }
  }
  kvbuf_free(&canon);
  kvbuf_free(&more);
  auth_db_free(db);
  return 0;
}
