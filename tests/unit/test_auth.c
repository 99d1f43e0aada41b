/*
 * test_auth.c: unit tests of the authentication module (node/auth.h):
 * role names and the roles x operations table; user names; auth files
 * that parse (comments, blank lines, tabs, CRLF, no final newline) and
 * every way one does not, each error naming the file and the line and
 * never quoting a hash; auth_check with the right password, a wrong one,
 * an unknown user (which still costs a KDF); the cache (hit, miss, clear,
 * its bound and which entry it drops); new hashes and auth_db_write
 * round trips; auth_file_set_user (create 0600, add, replace, comments
 * kept byte for byte, an existing mode kept, a broken file left alone, no
 * temporary file left behind); auth_db_load's I/O errors.
 * Hashes the tests write themselves use AUTH_ITER_MIN iterations, so only
 * auth_file_set_user and the timing check pay the default cost.
 * Depends on: kvauth (and through it kvproto, OpenSSL).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "kv_err.h"
#include "mp.h"

#define CHECK_MESSAGE
#include "unit/check.h"

#define ERR_SIZE 256

static char err[ERR_SIZE];

/* A hash field of pw with AUTH_ITER_MIN iterations, in a static buffer
 * per slot (slot < 4). */
static const char *fast_hash(const char *pw, int slot) {
  static char out[4][AUTH_HASH_FIELD_MAX];
  int rc = auth_hash_new_iter((const uint8_t *)pw, strlen(pw), AUTH_ITER_MIN,
                              out[slot], sizeof(out[slot]));
  CHECK(rc == 0, "auth_hash_new_iter: %s", kv_strerror(rc));
  return out[slot];
}

/* Parses text as file "users" into *db. Returns the result; err holds the
 * message. */
static int parse(const char *text, auth_db **db) {
  memset(err, 'x', sizeof(err));
  return auth_db_parse(text, strlen(text), "users", db, err, sizeof(err));
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static auth_role check_pw(const auth_db *db, const char *user,
                          const char *pw) {
  return auth_check(db, user, strlen(user), (const uint8_t *)pw, strlen(pw));
}

/* ---- roles ---- */

static void test_roles(void) {
  static const struct {
    const char *name;
    auth_role role;
  } names[] = {{"read", AUTH_ROLE_READ},
               {"write", AUTH_ROLE_WRITE},
               {"admin", AUTH_ROLE_ADMIN}};
  for (size_t i = 0; i < 3; i++) {
    auth_role r = AUTH_ROLE_NONE;
    CHECK(auth_role_parse(names[i].name, &r) == 0 && r == names[i].role,
          "%s", names[i].name);
    CHECK(strcmp(auth_role_name(names[i].role), names[i].name) == 0, "%s",
          names[i].name);
  }
  static const char *bad[] = {"none", "READ", "Admin", "", "reader", "rea",
                              "read "};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    auth_role r = AUTH_ROLE_ADMIN;
    CHECK(auth_role_parse(bad[i], &r) == KV_EINVAL, "\"%s\"", bad[i]);
  }
  CHECK(auth_role_parse(NULL, &(auth_role){0}) == KV_EINVAL, "NULL");
  CHECK(strcmp(auth_role_name(AUTH_ROLE_NONE), "none") == 0, "none");
  CHECK(strcmp(auth_role_name((auth_role)42), "none") == 0, "out of range");
}

static void test_allows(void) {
  /* The table of auth.h: [role][op]. */
  static const bool want[4][4] = {
      /*            READ   WRITE  TOPOLOGY ADMIN */
      [AUTH_ROLE_NONE] = {false, false, false, false},
      [AUTH_ROLE_READ] = {true, false, true, false},
      [AUTH_ROLE_WRITE] = {true, true, true, false},
      [AUTH_ROLE_ADMIN] = {true, true, true, true},
  };
  for (int r = AUTH_ROLE_NONE; r <= AUTH_ROLE_ADMIN; r++)
    for (int op = AUTH_OP_READ; op <= AUTH_OP_ADMIN; op++)
      CHECK(auth_allows((auth_role)r, (auth_op)op) == want[r][op],
            "role %d op %d", r, op);
  CHECK(!auth_allows((auth_role)9, AUTH_OP_READ), "unknown role");
}

static void test_user_names(void) {
  char name[AUTH_USER_MAX + 2];
  memset(name, 'a', sizeof(name));
  CHECK(auth_user_valid(name, AUTH_USER_MAX), "64 bytes");
  CHECK(!auth_user_valid(name, AUTH_USER_MAX + 1), "65 bytes");
  CHECK(!auth_user_valid(name, 0), "empty");
  CHECK(!auth_user_valid(NULL, 3), "NULL");
  static const char *good[] = {"alice", "A.b_c-d@example.com", "0", "-", "@"};
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    CHECK(auth_user_valid(good[i], strlen(good[i])), "\"%s\"", good[i]);
  static const char *bad[] = {"al ice", "al#ice", "al$", "al:x", "al/x",
                              "\xc3\xa9", "a\tb", "a+b"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    CHECK(!auth_user_valid(bad[i], strlen(bad[i])), "\"%s\"", bad[i]);
  CHECK(!auth_user_valid("a\0b", 3), "NUL");
}

/* ---- parsing ---- */

static void test_parse_good(void) {
  char text[2048];
  snprintf(text, sizeof(text),
           "# kvorum users\n"
           "\n"
           "alice read %s\n"
           "   # an indented comment\n"
           "\tbob\twrite\t%s\t\n"
           "carol@example.org  admin   %s\r\n"
           "  \t \n"
           "d.e_f-1 read %s",
           fast_hash("pa", 0), fast_hash("pb", 1), fast_hash("pc", 2),
           fast_hash("pd", 3));
  auth_db *db = NULL;
  int rc = parse(text, &db);
  CHECK(rc == 0, "%s", err);
  CHECK(auth_db_count(db) == 4, "count %zu", auth_db_count(db));
  static const char *names[] = {"alice", "bob", "carol@example.org",
                                "d.e_f-1"};
  static const auth_role roles[] = {AUTH_ROLE_READ, AUTH_ROLE_WRITE,
                                    AUTH_ROLE_ADMIN, AUTH_ROLE_READ};
  for (size_t i = 0; i < 4; i++) {
    const char *n = NULL;
    auth_role r = AUTH_ROLE_NONE;
    CHECK(auth_db_user(db, i, &n, &r) == 0 && strcmp(n, names[i]) == 0 &&
              r == roles[i],
          "user %zu", i);
  }
  const char *n;
  auth_role r;
  CHECK(auth_db_user(db, 4, &n, &r) == KV_ENOTFOUND, "past the end");
  CHECK(check_pw(db, "carol@example.org", "pc") == AUTH_ROLE_ADMIN, "carol");
  CHECK(check_pw(db, "d.e_f-1", "pd") == AUTH_ROLE_READ, "last line");
  auth_db_free(db);

  /* Empty files and files of comments have no users, and are valid. */
  static const char *empty[] = {"", "\n", "# nobody\n", "  \n\t\n#x"};
  for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
    rc = parse(empty[i], &db);
    CHECK(rc == 0 && auth_db_count(db) == 0, "empty %zu: %s", i, err);
    CHECK(check_pw(db, "alice", "pa") == AUTH_ROLE_NONE, "nobody passes");
    auth_db_free(db);
  }
  CHECK(auth_db_parse(NULL, 0, NULL, &db, NULL, 0) == 0 &&
            auth_db_count(db) == 0,
        "NULL text, no name, no err");
  auth_db_free(db);
  auth_db_free(NULL);
  CHECK(auth_db_count(NULL) == 0, "count of NULL");

  /* Padding is optional; the lowest cost and the highest are accepted. */
  snprintf(text, sizeof(text),
           "a read pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA$"
           "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
           "b read pbkdf2-sha256$10000000$AAAAAAAAAAAAAAAAAAAAAA==$"
           "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n");
  rc = parse(text, &db);
  CHECK(rc == 0 && auth_db_count(db) == 2, "%s", err);
  auth_db_free(db);
}

/* One bad file: its text, the line the message must name (0: a message
 * about the whole file, "users: ..."), and words the message must hold. */
typedef struct bad_case {
  const char *what;
  const char *text;
  int line;
  const char *words;
} bad_case;

#define KEY_B64 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
#define SALT_B64 "AAAAAAAAAAAAAAAAAAAAAA=="
#define GOOD "pbkdf2-sha256$1000$" SALT_B64 "$" KEY_B64

static void test_parse_bad(void) {
  static const bad_case cases[] = {
      {"one field", "# c\nalice\n", 2, "expected USER ROLE HASH, found 1 field"},
      {"two fields", "alice read\n", 1, "found 2 fields"},
      {"four fields", "alice read " GOOD " extra\n", 1, "more than 3"},
      {"comment after the fields", "alice read " GOOD " # ops\n", 1,
       "more than 3"},
      {"bad user char", "\n\nal/ice read " GOOD "\n", 3, "a user name is"},
      {"user too long",
       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa "
       "read " GOOD,
       1, "1 to 64 bytes"},
      {"unknown role", "alice reader " GOOD "\n", 1, "unknown role for user alice"},
      {"upper-case role", "alice READ " GOOD "\n", 1, "unknown role"},
      {"fields swapped", "alice " GOOD " read\n", 1, "unknown role"},
      {"plain password", "x read " GOOD "\nalice read hunter2\n", 2,
       "not a password hash"},
      {"scrypt", "alice read scrypt$16384$8$1$" SALT_B64 "$" KEY_B64, 1,
       "unsupported hash scheme"},
      {"sha1 scheme", "alice read pbkdf2-sha1$1000$" SALT_B64 "$" KEY_B64, 1,
       "unsupported hash scheme"},
      {"scheme only", "alice read pbkdf2-sha256$", 1, "malformed hash"},
      {"three parts", "alice read pbkdf2-sha256$1000$" SALT_B64, 1,
       "malformed hash"},
      {"five parts", "alice read " GOOD "$AAAA", 1, "malformed hash"},
      {"empty iterations",
       "alice read pbkdf2-sha256$$" SALT_B64 "$" KEY_B64, 1,
       "malformed iteration count"},
      {"leading zero",
       "alice read pbkdf2-sha256$01000$" SALT_B64 "$" KEY_B64, 1,
       "malformed iteration count"},
      {"sign", "alice read pbkdf2-sha256$+1000$" SALT_B64 "$" KEY_B64, 1,
       "malformed iteration count"},
      {"letters", "alice read pbkdf2-sha256$1e6$" SALT_B64 "$" KEY_B64, 1,
       "malformed iteration count"},
      {"too few iterations",
       "alice read pbkdf2-sha256$999$" SALT_B64 "$" KEY_B64, 1,
       "not within 1000..10000000"},
      {"zero iterations",
       "alice read pbkdf2-sha256$0$" SALT_B64 "$" KEY_B64, 1, "not within"},
      {"too many iterations",
       "alice read pbkdf2-sha256$10000001$" SALT_B64 "$" KEY_B64, 1,
       "not within"},
      {"iterations overflow",
       "alice read pbkdf2-sha256$99999999999999999999999$" SALT_B64
       "$" KEY_B64,
       1, "not within"},
      {"salt not base64",
       "alice read pbkdf2-sha256$1000$AAAA*AAAAAAAAAAAAAAAAA$" KEY_B64, 1,
       "salt in the hash is not base64 of 16 bytes"},
      {"salt too short",
       "alice read pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAA$" KEY_B64, 1,
       "salt in the hash"},
      {"salt empty", "alice read pbkdf2-sha256$1000$$" KEY_B64, 1,
       "salt in the hash"},
      {"salt too long",
       "alice read pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAAAA$" KEY_B64, 1,
       "salt in the hash"},
      {"key too short", "alice read pbkdf2-sha256$1000$" SALT_B64 "$AAAA", 1,
       "key in the hash is not base64 of 32 bytes"},
      {"key not base64",
       "alice read pbkdf2-sha256$1000$" SALT_B64
       "$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.=",
       1, "key in the hash"},
      {"key empty", "alice read pbkdf2-sha256$1000$" SALT_B64 "$", 1,
       "key in the hash"},
      {"duplicate user",
       "alice read " GOOD "\nbob read " GOOD "\n#\nalice admin " GOOD "\n", 4,
       "duplicate user alice (first on line 1)"},
      {"NUL byte", NULL, 2, "NUL byte"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const bad_case *c = &cases[i];
    char text[1024];
    size_t len;
    if (c->text) {
      len = strlen(c->text);
      memcpy(text, c->text, len);
    } else {
      len = (size_t)snprintf(text, sizeof(text), "alice read %s\nb", GOOD);
      text[len++] = '\0';
      text[len++] = 'b';
    }
    auth_db *db = (auth_db *)&db; /* not NULL, to see it set to NULL */
    memset(err, 'x', sizeof(err));
    int rc = auth_db_parse(text, len, "users", &db, err, sizeof(err));
    CHECK(rc == KV_EINVAL, "%s: rc %d", c->what, rc);
    CHECK(db == NULL, "%s: *out is NULL", c->what);
    char where[32];
    snprintf(where, sizeof(where), "users:%d: ", c->line);
    CHECK(strncmp(err, where, strlen(where)) == 0, "%s: \"%s\" lacks %s",
          c->what, err, where);
    CHECK(strstr(err, c->words) != NULL, "%s: \"%s\" lacks \"%s\"", c->what,
          err, c->words);
    /* Never a hash, a salt, a key or a password in a message. */
    CHECK(strchr(err, '$') == NULL && strstr(err, "AAAA") == NULL &&
              strstr(err, "hunter2") == NULL,
          "%s: \"%s\" quotes the line", c->what, err);
  }

  /* A line over the limit (after a comment), and one of the limit. */
  auth_db *db;
  char text[AUTH_LINE_MAX + 64];
  memcpy(text, "# ok\nalice read", 15);
  memset(text + 15, ' ', AUTH_LINE_MAX + 1 + 5 - 15);
  memcpy(text + AUTH_LINE_MAX + 1 + 5, "\n", 2); /* line 2: 1025 bytes */
  CHECK(parse(text, &db) == KV_EINVAL && db == NULL &&
            strstr(err, "users:2: line longer than 1024 bytes") == err,
        "long line: %s", err);
  CHECK(parse(text + 5 + 1, &db) == KV_EINVAL && /* "lice read ...": 1024 */
            strstr(err, "users:1: expected USER ROLE HASH") == err,
        "a line of exactly the limit is read: %s", err);

  /* A file over the limit: comments, so only the size is wrong. */
  static char big[AUTH_FILE_MAX + 1];
  memset(big, '#', sizeof(big));
  for (size_t i = 100; i < sizeof(big); i += 100)
    big[i] = '\n';
  CHECK(auth_db_parse(big, AUTH_FILE_MAX + 1, "users", &db, err,
                      sizeof(err)) == KV_EINVAL &&
            strcmp(err, "users: larger than 1048576 bytes") == 0,
        "big file: %s", err);
  CHECK(auth_db_parse(big, AUTH_FILE_MAX, "users", &db, err, sizeof(err)) ==
                0 &&
            auth_db_count(db) == 0,
        "a file of exactly the limit: %s", err);
  auth_db_free(db);

  /* More users than the limit; the limit itself is fine. */
  kvbuf b;
  kvbuf_init(&b);
  for (int i = 0; i <= AUTH_USERS_MAX; i++) {
    char line[160];
    int n = snprintf(line, sizeof(line), "u%d read %s\n", i, GOOD);
    kvbuf_append(&b, line, (size_t)n);
  }
  CHECK(auth_db_parse((const char *)b.data, b.len, "users", &db, err,
                      sizeof(err)) == KV_EINVAL &&
            strstr(err, "users:4097: more than 4096 users") == err,
        "too many users: %s", err);
  size_t last = b.len - 1;
  while (b.data[last - 1] != '\n')
    last--;
  CHECK(auth_db_parse((const char *)b.data, last, "users", &db, err,
                      sizeof(err)) == 0 &&
            auth_db_count(db) == AUTH_USERS_MAX,
        "4096 users: %s", err);
  CHECK(check_pw(db, "u4095", "x") == AUTH_ROLE_NONE, "lookup among many");
  auth_db_free(db);
  kvbuf_free(&b);

  /* Messages are cut to errlen, NUL-terminated, never written past. */
  const char *dup = "alice read " GOOD "\nalice read " GOOD "\n";
  char small[12];
  memset(small, 'x', sizeof(small));
  CHECK(auth_db_parse(dup, strlen(dup), "users", &db, small, 8) ==
                KV_EINVAL &&
            strcmp(small, "users:2") == 0 && small[8] == 'x',
        "cut message: \"%.8s\"", small);
  CHECK(auth_db_parse(dup, strlen(dup), "users", &db, NULL, 0) == KV_EINVAL,
        "no err buffer");
  CHECK(auth_db_parse(dup, strlen(dup), NULL, &db, err, sizeof(err)) ==
                KV_EINVAL &&
            strncmp(err, "auth file:2: ", 13) == 0,
        "default name: %s", err);
}

/* ---- checks ---- */

static void test_check(void) {
  char text[1024];
  /* The third user's password holds a NUL: hash it by hand. */
  char nulhash[AUTH_HASH_FIELD_MAX];
  CHECK(auth_hash_new_iter((const uint8_t *)"a\0b", 3, AUTH_ITER_MIN, nulhash,
                           sizeof(nulhash)) == 0,
        "hash with NUL");
  snprintf(text, sizeof(text), "alice read %s\nbob admin %s\nnul write %s\n",
           fast_hash("right", 0), fast_hash("", 1), nulhash);
  auth_db *db;
  CHECK(parse(text, &db) == 0, "%s", err);
  /* user and password as bytes with their lengths: NULs count. */
  static const struct {
    const char *what, *user;
    size_t ulen;
    const char *pw;
    size_t pwlen;
    auth_role want;
  } cases[] = {
      {"right password", "alice", 5, "right", 5, AUTH_ROLE_READ},
      {"wrong password", "alice", 5, "wrong", 5, AUTH_ROLE_NONE},
      {"a prefix", "alice", 5, "right", 4, AUTH_ROLE_NONE},
      {"longer", "alice", 5, "right ", 6, AUTH_ROLE_NONE},
      {"empty", "alice", 5, "", 0, AUTH_ROLE_NONE},
      {"names are exact", "Alice", 5, "right", 5, AUTH_ROLE_NONE},
      {"an empty password", "bob", 3, "", 0, AUTH_ROLE_ADMIN},
      {"unknown user", "carol", 5, "right", 5, AUTH_ROLE_NONE},
      {"invalid name", "al ice", 6, "right", 5, AUTH_ROLE_NONE},
      {"empty name", "alice", 0, "right", 5, AUTH_ROLE_NONE},
      {"the name is ulen bytes", "alicex", 5, "right", 5, AUTH_ROLE_READ},
      {"a password with a NUL", "nul", 3, "a\0b", 3, AUTH_ROLE_WRITE},
      {"after the NUL counts", "nul", 3, "a\0c", 3, AUTH_ROLE_NONE},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    CHECK(auth_check(db, cases[i].user, cases[i].ulen,
                     (const uint8_t *)cases[i].pw,
                     cases[i].pwlen) == cases[i].want,
          "%s", cases[i].what);
  CHECK(auth_check(NULL, "alice", 5, (const uint8_t *)"right", 5) ==
            AUTH_ROLE_NONE,
        "NULL db");
  static uint8_t long_pw[AUTH_PW_MAX + 1];
  CHECK(auth_check(db, "alice", 5, long_pw, sizeof(long_pw)) ==
            AUTH_ROLE_NONE,
        "too long");
  auth_db_free(db);

  /* An unknown user costs about what a known one does: the KDF runs with
   * the first user's iterations. The known check is ~40 ms, a lookup
   * without a KDF microseconds, so a quarter is a safe line. */
  char slow[AUTH_HASH_FIELD_MAX];
  CHECK(auth_hash_new((const uint8_t *)"pw", 2, slow, sizeof(slow)) == 0,
        "default hash");
  snprintf(text, sizeof(text), "alice read %s\n", slow);
  CHECK(parse(text, &db) == 0, "%s", err);
  double t0 = now_ms();
  CHECK(check_pw(db, "alice", "pw") == AUTH_ROLE_READ, "slow right");
  double t1 = now_ms();
  CHECK(check_pw(db, "mallory", "pw") == AUTH_ROLE_NONE, "slow unknown");
  double t2 = now_ms();
  CHECK(check_pw(db, "alice", "nope") == AUTH_ROLE_NONE, "slow wrong");
  double t3 = now_ms();
  CHECK(t2 - t1 > (t1 - t0) / 4, "unknown %.1f ms vs known %.1f ms", t2 - t1,
        t1 - t0);
  printf("test_auth: a check at the default %u iterations: %.1f ms (right), "
         "%.1f ms (unknown user), %.1f ms (wrong)\n",
         AUTH_ITER_DEFAULT, t1 - t0, t2 - t1, t3 - t2);
  auth_db_free(db);
}

/* ---- the cache ---- */

static auth_role cget(auth_cache *c, const char *u, const char *pw) {
  return auth_cache_get(c, u, strlen(u), (const uint8_t *)pw, strlen(pw));
}

static void cput(auth_cache *c, const char *u, const char *pw, auth_role r) {
  auth_cache_put(c, u, strlen(u), (const uint8_t *)pw, strlen(pw), r);
}

static void test_cache(void) {
  auth_cache *c = auth_cache_new(8);
  CHECK(c != NULL, "new");
  CHECK(cget(c, "alice", "pw") == AUTH_ROLE_NONE, "empty: miss");
  cput(c, "alice", "pw", AUTH_ROLE_WRITE);
  CHECK(cget(c, "alice", "pw") == AUTH_ROLE_WRITE, "hit");
  CHECK(cget(c, "alice", "pw2") == AUTH_ROLE_NONE, "other password: miss");
  CHECK(cget(c, "alic", "pw") == AUTH_ROLE_NONE, "other user: miss");
  CHECK(cget(c, "alicep", "w") == AUTH_ROLE_NONE, "the same bytes split");
  CHECK(auth_cache_count(c) == 1, "count 1");
  cput(c, "alice", "pw", AUTH_ROLE_ADMIN);
  CHECK(cget(c, "alice", "pw") == AUTH_ROLE_ADMIN && auth_cache_count(c) == 1,
        "put again replaces");
  cput(c, "bob", "pw", AUTH_ROLE_NONE);
  CHECK(cget(c, "bob", "pw") == AUTH_ROLE_NONE && auth_cache_count(c) == 1,
        "NONE is not cached");
  cput(c, "bob", "", AUTH_ROLE_READ);
  CHECK(cget(c, "bob", "") == AUTH_ROLE_READ, "empty password");
  auth_cache_clear(c);
  CHECK(cget(c, "alice", "pw") == AUTH_ROLE_NONE && auth_cache_count(c) == 0,
        "cleared");
  cput(c, "alice", "pw", AUTH_ROLE_READ);
  CHECK(cget(c, "alice", "pw") == AUTH_ROLE_READ, "usable after clear");

  /* Bounded: many users, never more than 8 entries; the newest is kept. */
  for (int i = 0; i < 200; i++) {
    char u[16];
    snprintf(u, sizeof(u), "user%d", i);
    cput(c, u, "pw", AUTH_ROLE_READ);
    CHECK(cget(c, u, "pw") == AUTH_ROLE_READ, "newest %d", i);
    CHECK(auth_cache_count(c) <= 8, "count %zu", auth_cache_count(c));
  }
  CHECK(auth_cache_count(c) == 8, "full: %zu", auth_cache_count(c));
  auth_cache_free(c);

  /* One set of three: the least recently used goes. */
  c = auth_cache_new(3);
  cput(c, "a", "pw", AUTH_ROLE_READ);
  cput(c, "b", "pw", AUTH_ROLE_READ);
  cput(c, "c", "pw", AUTH_ROLE_READ);
  CHECK(cget(c, "a", "pw") == AUTH_ROLE_READ, "a");
  cput(c, "d", "pw", AUTH_ROLE_READ);
  CHECK(cget(c, "b", "pw") == AUTH_ROLE_NONE, "b, least recently used, went");
  CHECK(cget(c, "a", "pw") == AUTH_ROLE_READ &&
            cget(c, "c", "pw") == AUTH_ROLE_READ &&
            cget(c, "d", "pw") == AUTH_ROLE_READ,
        "a, c, d stay");
  CHECK(auth_cache_count(c) == 3, "count 3");
  auth_cache_free(c);

  /* A cache of nothing, and NULL. */
  c = auth_cache_new(0);
  CHECK(c != NULL, "new(0)");
  cput(c, "a", "pw", AUTH_ROLE_READ);
  CHECK(cget(c, "a", "pw") == AUTH_ROLE_NONE && auth_cache_count(c) == 0,
        "holds nothing");
  auth_cache_free(c);
  cput(NULL, "a", "pw", AUTH_ROLE_READ);
  CHECK(cget(NULL, "a", "pw") == AUTH_ROLE_NONE, "NULL cache");
  auth_cache_clear(NULL);
  auth_cache_free(NULL);
  CHECK(auth_cache_count(NULL) == 0, "NULL count");
}

/* ---- hashes ---- */

static void test_hash_new(void) {
  char h1[AUTH_HASH_FIELD_MAX], h2[AUTH_HASH_FIELD_MAX];
  const uint8_t *pw = (const uint8_t *)"correct horse";
  CHECK(auth_hash_new_iter(pw, 13, AUTH_ITER_MIN, h1, sizeof(h1)) == 0, "h1");
  CHECK(auth_hash_new_iter(pw, 13, AUTH_ITER_MIN, h2, sizeof(h2)) == 0, "h2");
  CHECK(strcmp(h1, h2) != 0, "fresh salts: %s", h1);
  CHECK(strncmp(h1, "pbkdf2-sha256$1000$", 19) == 0, "%s", h1);
  CHECK(strchr(h1, ' ') == NULL && strlen(h1) < AUTH_HASH_FIELD_MAX, "%s",
        h1);
  CHECK(strstr(h1, "correct") == NULL, "no password in the hash");
  char text[512];
  snprintf(text, sizeof(text), "u write %s\nv read %s\n", h1, h2);
  auth_db *db;
  CHECK(parse(text, &db) == 0, "%s", err);
  CHECK(check_pw(db, "u", "correct horse") == AUTH_ROLE_WRITE, "round trip");
  CHECK(check_pw(db, "v", "correct horse") == AUTH_ROLE_READ, "round trip 2");
  CHECK(check_pw(db, "u", "correct horsE") == AUTH_ROLE_NONE, "wrong");

  /* auth_db_write: canonical text that parses to the same users. */
  kvbuf b;
  kvbuf_init(&b);
  CHECK(auth_db_write(db, &b) == 0, "write");
  CHECK(b.len == strlen(text) && memcmp(b.data, text, b.len) == 0,
        "canonical input comes back as it was: %.*s", (int)b.len,
        (const char *)b.data);
  auth_db *db2;
  CHECK(auth_db_parse((const char *)b.data, b.len, "w", &db2, err,
                      sizeof(err)) == 0,
        "%s", err);
  CHECK(auth_db_count(db2) == 2 &&
            check_pw(db2, "u", "correct horse") == AUTH_ROLE_WRITE,
        "rewritten");
  auth_db_free(db2);
  auth_db_free(db);
  kvbuf_free(&b);

  /* The default cost, and what is refused. */
  double t0 = now_ms();
  CHECK(auth_hash_new(pw, 13, h1, sizeof(h1)) == 0, "default");
  double t1 = now_ms();
  char want[32];
  snprintf(want, sizeof(want), "pbkdf2-sha256$%u$", AUTH_ITER_DEFAULT);
  CHECK(strncmp(h1, want, strlen(want)) == 0, "%s", h1);
  printf("test_auth: auth_hash_new (%u iterations): %.1f ms\n",
         AUTH_ITER_DEFAULT, t1 - t0);
  CHECK(auth_hash_new_iter(pw, 13, AUTH_ITER_MIN, h1, 40) == KV_EINVAL,
        "cap too small");
  CHECK(auth_hash_new_iter(pw, 13, AUTH_ITER_MIN - 1, h1, sizeof(h1)) ==
            KV_EINVAL,
        "too few iterations");
  CHECK(auth_hash_new_iter(pw, 13, AUTH_ITER_MAX + 1, h1, sizeof(h1)) ==
            KV_EINVAL,
        "too many iterations");
  static uint8_t long_pw[AUTH_PW_MAX + 1];
  CHECK(auth_hash_new_iter(long_pw, sizeof(long_pw), AUTH_ITER_MIN, h1,
                           sizeof(h1)) == KV_EINVAL,
        "password too long");
}

/* ---- auth_file_set_user and auth_db_load ---- */

static char tmpdir[64];

/* Returns the text of the file at path (static buffer), "" if missing. */
static const char *slurp(const char *path) {
  static char buf[8192];
  buf[0] = '\0';
  FILE *f = fopen(path, "rb");
  if (!f)
    return buf;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

static void spit(const char *path, const char *text, mode_t mode) {
  FILE *f = fopen(path, "wb");
  CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0, "write %s", path);
  chmod(path, mode);
}

/* The number of entries in tmpdir, "." and ".." aside. */
static int dir_entries(void) {
  int n = 0;
  DIR *d = opendir(tmpdir);
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL)
    n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
  if (d)
    closedir(d);
  return n;
}

static int set_user(const char *path, const char *user, auth_role role,
                    const char *pw, bool *replaced) {
  memset(err, 'x', sizeof(err));
  return auth_file_set_user(path, user, role, (const uint8_t *)pw, strlen(pw),
                            replaced, err, sizeof(err));
}

static void test_file_set_user(void) {
  char path[128];
  snprintf(path, sizeof(path), "%s/users", tmpdir);
  struct stat st;
  bool replaced = true;

  /* Created 0600 whatever the umask allows. */
  mode_t old_umask = umask(022);
  CHECK(set_user(path, "alice", AUTH_ROLE_READ, "pa", &replaced) == 0, "%s",
        err);
  umask(old_umask);
  CHECK(!replaced, "added");
  CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600, "mode %o",
        (unsigned)(st.st_mode & 07777));
  auth_db *db;
  CHECK(auth_db_load(path, &db, err, sizeof(err)) == 0, "%s", err);
  CHECK(auth_db_count(db) == 1 && check_pw(db, "alice", "pa") == AUTH_ROLE_READ,
        "alice");
  auth_db_free(db);
  CHECK(strncmp(slurp(path), "alice read pbkdf2-sha256$", 25) == 0, "%s",
        slurp(path));
  CHECK(strstr(slurp(path), "pa\n") == NULL, "no plain password");

  /* Comments, blank lines, odd spacing and a missing final newline stay;
   * the replaced line takes the user's place; the mode stays. */
  char text[2048];
  snprintf(text, sizeof(text),
           "# team\n\n  bob   write %s   \n# ops\ncarol admin %s\r\n"
           "  # trailing comment, no newline",
           fast_hash("pb", 0), fast_hash("pc", 1));
  spit(path, text, 0640);
  CHECK(set_user(path, "bob", AUTH_ROLE_ADMIN, "pb2", &replaced) == 0, "%s",
        err);
  CHECK(replaced, "replaced");
  const char *now = slurp(path);
  const char *bob = strstr(now, "bob admin pbkdf2-sha256$150000$");
  CHECK(strncmp(now, "# team\n\n", 8) == 0 && bob == now + 8, "%s", now);
  const char *rest = strstr(text, "\n# ops\n");
  CHECK(bob && rest && strcmp(strchr(bob, '\n'), rest) == 0,
        "other lines byte for byte: %s", now);
  CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0640, "mode %o kept",
        (unsigned)(st.st_mode & 07777));
  CHECK(auth_db_load(path, &db, err, sizeof(err)) == 0, "%s", err);
  CHECK(check_pw(db, "bob", "pb2") == AUTH_ROLE_ADMIN, "new password");
  CHECK(check_pw(db, "bob", "pb") == AUTH_ROLE_NONE, "old password gone");
  CHECK(check_pw(db, "carol", "pc") == AUTH_ROLE_ADMIN, "carol untouched");
  auth_db_free(db);

  /* Added after a last line without a newline; CRLF kept on a replace. */
  CHECK(set_user(path, "dave", AUTH_ROLE_WRITE, "pd", &replaced) == 0, "%s",
        err);
  CHECK(!replaced, "dave added");
  CHECK(set_user(path, "carol", AUTH_ROLE_READ, "pc2", &replaced) == 0 &&
            replaced,
        "%s", err);
  now = slurp(path);
  CHECK(strstr(now, "no newline\ndave write pbkdf2-sha256$") != NULL, "%s",
        now);
  const char *carol = strstr(now, "\ncarol read ");
  CHECK(carol && strstr(carol, "\r\n  # trailing") != NULL, "CRLF: %s", now);
  CHECK(auth_db_load(path, &db, err, sizeof(err)) == 0 &&
            auth_db_count(db) == 3,
        "%s", err);
  CHECK(check_pw(db, "carol", "pc2") == AUTH_ROLE_READ, "carol read");
  CHECK(check_pw(db, "dave", "pd") == AUTH_ROLE_WRITE, "dave");
  auth_db_free(db);
  CHECK(dir_entries() == 1, "no temporary file left: %d", dir_entries());

  /* Refused: bad arguments; a file that does not parse (left alone). */
  CHECK(set_user(path, "al ice", AUTH_ROLE_READ, "p", NULL) == KV_EINVAL &&
            strstr(err, "user name") != NULL,
        "%s", err);
  CHECK(set_user(path, "alice", AUTH_ROLE_NONE, "p", NULL) == KV_EINVAL &&
            strstr(err, "role") != NULL,
        "%s", err);
  CHECK(set_user(path, "alice", AUTH_ROLE_READ, "", NULL) == KV_EINVAL &&
            strstr(err, "empty") != NULL,
        "%s", err);
  static char long_pw[AUTH_PW_MAX + 2];
  memset(long_pw, 'p', AUTH_PW_MAX + 1);
  CHECK(set_user(path, "alice", AUTH_ROLE_READ, long_pw, NULL) == KV_EINVAL &&
            strstr(err, "longer") != NULL,
        "%s", err);
  snprintf(text, sizeof(text), "# x\nalice read hunter2\n");
  spit(path, text, 0600);
  CHECK(set_user(path, "bob", AUTH_ROLE_READ, "p", &replaced) == KV_EINVAL,
        "broken file");
  char want[160];
  snprintf(want, sizeof(want), "%s:2: ", path);
  CHECK(strncmp(err, want, strlen(want)) == 0 &&
            strstr(err, "hunter2") == NULL,
        "%s", err);
  CHECK(strcmp(slurp(path), text) == 0, "broken file left alone");
  CHECK(dir_entries() == 1, "no temporary file left: %d", dir_entries());

  /* I/O errors. */
  char nodir[160];
  snprintf(nodir, sizeof(nodir), "%s/no/such/users", tmpdir);
  CHECK(set_user(nodir, "bob", AUTH_ROLE_READ, "p", NULL) == KV_EIO &&
            strncmp(err, nodir, strlen(nodir)) == 0,
        "%s", err);
  CHECK(auth_db_load(nodir, &db, err, sizeof(err)) == KV_EIO && db == NULL &&
            strstr(err, "No such file") != NULL,
        "%s", err);
  CHECK(auth_db_load(tmpdir, &db, err, sizeof(err)) == KV_EIO &&
            strstr(err, "not a regular file") != NULL,
        "%s", err);
  CHECK(auth_db_load(path, &db, err, sizeof(err)) == KV_EINVAL &&
            strncmp(err, want, strlen(want)) == 0,
        "%s", err);
  unlink(path);
}

int main(void) {
  snprintf(tmpdir, sizeof(tmpdir), "%s/kvauth-XXXXXX",
           getenv("TMPDIR") && strlen(getenv("TMPDIR")) < 40 ? getenv("TMPDIR")
                                                             : "/tmp");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  test_roles();
  test_allows();
  test_user_names();
  test_parse_good();
  test_parse_bad();
  test_check();
  test_cache();
  test_hash_new();
  test_file_set_user();
  rmdir(tmpdir);
  return check_summary("test_auth");
}
