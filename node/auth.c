/*
 * auth.c: the auth file, the password check, the cache of passed checks
 * and the auth file writer (auth.h has the format and the promises).
 *
 * Parsing is separate from checking: auth_db_parse reads and validates the
 * text and runs no KDF, so loading a file of thousands of users is quick
 * and fuzzing it is cheap; the KDF runs only in auth_check and in the hash
 * writers. Passwords and derived keys on the stack are wiped
 * (OPENSSL_cleanse) before a function returns.
 *
 * Randomness (salts, the cache's key) comes from OpenSSL's RAND_bytes, the
 * operating system's generator: it is key material, not a simulation input.
 * Depends on: kvproto (kv_err.h, kv_base64.h, mp.h), OpenSSL libcrypto.
 */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "kv_base64.h"
#include "kv_err.h"

#define AUTH__READ_CHUNK 65536 /* bytes read from a file at a time */

/* ---- roles ---- */

static const char *const auth__role_names[] = {
    [AUTH_ROLE_NONE] = "none",
    [AUTH_ROLE_READ] = "read",
    [AUTH_ROLE_WRITE] = "write",
    [AUTH_ROLE_ADMIN] = "admin",
};

static bool auth__role_valid(auth_role r) {
  return r == AUTH_ROLE_READ || r == AUTH_ROLE_WRITE || r == AUTH_ROLE_ADMIN;
}

const char *auth_role_name(auth_role r) {
  return auth__role_valid(r) ? auth__role_names[r] : "none";
}

/* Reads s[0..len) as a role name. Returns 0 or KV_EINVAL. */
static int auth__role_parse_n(const char *s, size_t len, auth_role *out) {
  for (auth_role r = AUTH_ROLE_READ; r <= AUTH_ROLE_ADMIN; r++) {
    const char *n = auth__role_names[r];
    if (strlen(n) == len && memcmp(n, s, len) == 0) {
      *out = r;
      return 0;
    }
  }
  return KV_EINVAL;
}

int auth_role_parse(const char *s, auth_role *out) {
  if (!s)
    return KV_EINVAL;
  return auth__role_parse_n(s, strlen(s), out);
}

bool auth_allows(auth_role r, auth_op op) {
  if (!auth__role_valid(r))
    return false;
  switch (op) {
  case AUTH_OP_READ:
  case AUTH_OP_TOPOLOGY:
    return true;
  case AUTH_OP_WRITE:
    return r == AUTH_ROLE_WRITE || r == AUTH_ROLE_ADMIN;
  case AUTH_OP_ADMIN:
    return r == AUTH_ROLE_ADMIN;
  }
  return false;
}

bool auth_user_valid(const char *user, size_t len) {
  if (!user || len == 0 || len > AUTH_USER_MAX)
    return false;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)user[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '@' ||
              c == '-';
    if (!ok)
      return false;
  }
  return true;
}

/* ---- messages ---- */

/* Writes the message into err (when there is one) and returns rc. */
static int auth__msg(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int auth__msg(char *err, size_t errlen, int rc, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

/* Where a parse is: the file's name and the line, for messages. */
typedef struct auth__where {
  const char *name;
  uint32_t line;
  char *err;
  size_t errlen;
} auth__where;

/* Writes "NAME:LINE: " and the message into w's err; returns KV_EINVAL. */
static int auth__bad(const auth__where *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int auth__bad(const auth__where *w, const char *fmt, ...) {
  if (w->err && w->errlen) {
    int n = snprintf(w->err, w->errlen, "%s:%" PRIu32 ": ", w->name, w->line);
    if (n > 0 && (size_t)n < w->errlen) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(w->err + n, w->errlen - (size_t)n, fmt, ap);
      va_end(ap);
    }
  }
  return KV_EINVAL;
}

/* ---- the KDF and the hash field ---- */

/* Derives the AUTH_KEY_LEN-byte key of pw with salt and iterations into
 * out. Returns 0 or KV_EIO (OpenSSL failed). */
static int auth__kdf(const uint8_t *pw, size_t pwlen, const uint8_t *salt,
                     uint32_t iterations, uint8_t *out) {
  static const char empty[1] = {0};
  const char *pass = pwlen ? (const char *)pw : empty;
  int ok = PKCS5_PBKDF2_HMAC(pass, (int)pwlen, salt, AUTH_SALT_LEN,
                             (int)iterations, EVP_sha256(), AUTH_KEY_LEN, out);
  return ok == 1 ? 0 : KV_EIO;
}

/* Appends the HASH field of (iterations, salt, key) to b. Returns 0 or
 * KV_ENOMEM. */
static int auth__hash_format(kvbuf *b, uint32_t iterations, const uint8_t *salt,
                             const uint8_t *key) {
  char num[16];
  int n = snprintf(num, sizeof(num), "$%" PRIu32 "$", iterations);
  kvbuf_append(b, AUTH_SCHEME, strlen(AUTH_SCHEME));
  kvbuf_append(b, num, (size_t)n);
  kv_b64_encode(b, salt, AUTH_SALT_LEN);
  kvbuf_append(b, "$", 1);
  kv_b64_encode(b, key, AUTH_KEY_LEN);
  return b->oom ? KV_ENOMEM : 0;
}

int auth_hash_new_iter(const uint8_t *pw, size_t pwlen, uint32_t iterations,
                       char *out, size_t cap) {
  if (!out || cap == 0 || (!pw && pwlen) || pwlen > AUTH_PW_MAX ||
      iterations < AUTH_ITER_MIN || iterations > AUTH_ITER_MAX)
    return KV_EINVAL;
  out[0] = '\0';
  uint8_t salt[AUTH_SALT_LEN], key[AUTH_KEY_LEN];
  if (RAND_bytes(salt, sizeof(salt)) != 1)
    return KV_EIO;
  int rc = auth__kdf(pw, pwlen, salt, iterations, key);
  kvbuf b;
  kvbuf_init(&b);
  if (rc == 0)
    rc = auth__hash_format(&b, iterations, salt, key);
  OPENSSL_cleanse(key, sizeof(key));
  if (rc == 0 && b.len >= cap)
    rc = KV_EINVAL;
  if (rc == 0) {
    memcpy(out, b.data, b.len);
    out[b.len] = '\0';
  }
  kvbuf_free(&b);
  return rc;
}

int auth_hash_new(const uint8_t *pw, size_t pwlen, char *out, size_t cap) {
  return auth_hash_new_iter(pw, pwlen, AUTH_ITER_DEFAULT, out, cap);
}

/* ---- the users of one file ---- */

/* One user of a file. */
typedef struct auth__user {
  char name[AUTH_USER_MAX + 1]; /* NUL-terminated */
  uint8_t name_len;
  auth_role role;
  uint32_t iterations;
  uint32_t line; /* where the file has it (for duplicate messages) */
  uint8_t salt[AUTH_SALT_LEN];
  uint8_t key[AUTH_KEY_LEN];
} auth__user;

struct auth_db {
  auth__user *users; /* file order; room for every line of the file */
  size_t count;
  uint32_t *index;   /* open addressing by name: user index + 1; 0 empty */
  size_t index_cap;  /* a power of two, at least twice the users' room */
  auth__user dummy;  /* what an unknown user's check derives against */
};

/* FNV-1a of a user name, for the index. */
static uint32_t auth__name_hash(const char *s, size_t len) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; i++)
    h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h;
}

/* Returns db's user named user[0..len), or NULL. */
static const auth__user *auth__find(const auth_db *db, const char *user,
                                    size_t len) {
  size_t mask = db->index_cap - 1;
  for (size_t i = auth__name_hash(user, len) & mask;; i = (i + 1) & mask) {
    uint32_t v = db->index[i];
    if (v == 0)
      return NULL;
    const auth__user *u = &db->users[v - 1];
    if (u->name_len == len && memcmp(u->name, user, len) == 0)
      return u;
  }
}

/* Adds the user at db->users[db->count] to the index and counts it. */
static void auth__index_add(auth_db *db) {
  const auth__user *u = &db->users[db->count];
  size_t mask = db->index_cap - 1;
  size_t i = auth__name_hash(u->name, u->name_len) & mask;
  while (db->index[i] != 0)
    i = (i + 1) & mask;
  db->index[i] = (uint32_t)(db->count + 1);
  db->count++;
}

/* Decodes the base64 s[0..len) into out, which must come out exactly n
 * bytes. Returns 0, KV_EINVAL or KV_ENOMEM. */
static int auth__b64_exact(const char *s, size_t len, uint8_t *out, size_t n) {
  if (len > KV_B64_LEN(n))
    return KV_EINVAL;
  uint8_t *d;
  size_t dlen;
  int rc = kv_b64_decode(s, len, &d, &dlen);
  if (rc)
    return rc;
  if (dlen == n)
    memcpy(out, d, n);
  else
    rc = KV_EINVAL;
  free(d);
  return rc;
}

/* Reads the HASH field p[0..len) into u. Returns 0, KV_EINVAL (message in
 * w, which never quotes the field) or KV_ENOMEM. */
static int auth__hash_parse(const auth__where *w, const char *p, size_t len,
                            auth__user *u) {
  /* No '$' in messages: nothing in them can look like a hash. */
  static const char expect[] = "expected " AUTH_SCHEME
                               " with iterations, salt and key, as kvorum "
                               "user-add writes it";
  const char *part[4];
  size_t plen[4];
  size_t n = 0; /* parts seen; the first 4 are kept */
  const char *s = p, *end = p + len;
  for (;;) {
    const char *d = memchr(s, '$', (size_t)(end - s));
    if (n < 4) {
      part[n] = s;
      plen[n] = (size_t)((d ? d : end) - s);
    }
    n++;
    if (!d)
      break;
    s = d + 1;
  }
  if (n == 1)
    return auth__bad(w, "the third field is not a password hash (%s)",
                     expect);
  if (plen[0] != strlen(AUTH_SCHEME) ||
      memcmp(part[0], AUTH_SCHEME, plen[0]) != 0)
    return auth__bad(w, "unsupported hash scheme (only " AUTH_SCHEME
                        " is accepted)");
  if (n != 4)
    return auth__bad(w, "malformed hash (%s)", expect);

  const char *it = part[1];
  if (plen[1] == 0 || (it[0] == '0' && plen[1] > 1))
    return auth__bad(w, "malformed iteration count in the hash");
  uint64_t iter = 0;
  for (size_t i = 0; i < plen[1]; i++) {
    if (it[i] < '0' || it[i] > '9')
      return auth__bad(w, "malformed iteration count in the hash");
    if (iter <= AUTH_ITER_MAX)
      iter = iter * 10 + (uint64_t)(it[i] - '0');
  }
  if (iter < AUTH_ITER_MIN || iter > AUTH_ITER_MAX)
    return auth__bad(w, "iteration count in the hash is not within %u..%u",
                     AUTH_ITER_MIN, AUTH_ITER_MAX);
  u->iterations = (uint32_t)iter;

  int rc = auth__b64_exact(part[2], plen[2], u->salt, AUTH_SALT_LEN);
  if (rc == KV_EINVAL)
    return auth__bad(w, "the salt in the hash is not base64 of %d bytes",
                     AUTH_SALT_LEN);
  if (rc)
    return rc;
  rc = auth__b64_exact(part[3], plen[3], u->key, AUTH_KEY_LEN);
  if (rc == KV_EINVAL)
    return auth__bad(w, "the key in the hash is not base64 of %d bytes",
                     AUTH_KEY_LEN);
  return rc;
}

/* A field of a line. */
typedef struct auth__field {
  const char *p;
  size_t len;
} auth__field;

static bool auth__blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Splits p[0..len) at blanks into at most max fields in f. Returns the
 * number of fields, max + 1 when there are more. */
static size_t auth__split(const char *p, size_t len, auth__field *f,
                          size_t max) {
  size_t n = 0, i = 0;
  for (;;) {
    while (i < len && auth__blank(p[i]))
      i++;
    if (i == len)
      return n;
    if (n == max)
      return max + 1;
    size_t start = i;
    while (i < len && !auth__blank(p[i]))
      i++;
    f[n].p = p + start;
    f[n].len = i - start;
    n++;
  }
}

/* Reads the line p[0..len) (no '\n') into db. Returns 0, KV_EINVAL (the
 * message in w) or KV_ENOMEM. */
static int auth__line(auth_db *db, const auth__where *w, const char *p,
                      size_t len) {
  if (len > AUTH_LINE_MAX)
    return auth__bad(w, "line longer than %d bytes", AUTH_LINE_MAX);
  if (memchr(p, '\0', len))
    return auth__bad(w, "NUL byte in the line");
  auth__field f[3];
  size_t n = auth__split(p, len, f, 3);
  if (n == 0 || f[0].p[0] == '#')
    return 0;
  if (n != 3)
    return auth__bad(w, "expected USER ROLE HASH, found %s field%s",
                     n == 1 ? "1" : n == 2 ? "2" : "more than 3",
                     n == 1 ? "" : "s");
  if (!auth_user_valid(f[0].p, f[0].len))
    return auth__bad(w, "a user name is 1 to %d bytes of A-Z a-z 0-9 . _ @ -",
                     AUTH_USER_MAX);
  if (db->count == AUTH_USERS_MAX)
    return auth__bad(w, "more than %d users", AUTH_USERS_MAX);
  auth__user *u = &db->users[db->count];
  memset(u, 0, sizeof(*u));
  memcpy(u->name, f[0].p, f[0].len);
  u->name_len = (uint8_t)f[0].len;
  u->line = w->line;
  if (auth__role_parse_n(f[1].p, f[1].len, &u->role))
    return auth__bad(w, "unknown role for user %s (expected read, write or "
                        "admin)",
                     u->name);
  int rc = auth__hash_parse(w, f[2].p, f[2].len, u);
  if (rc)
    return rc;
  const auth__user *first = auth__find(db, u->name, u->name_len);
  if (first)
    return auth__bad(w, "duplicate user %s (first on line %" PRIu32 ")",
                     u->name, first->line);
  auth__index_add(db);
  return 0;
}

int auth_db_parse(const char *text, size_t len, const char *name,
                  auth_db **out, char *err, size_t errlen) {
  auth__where w = {name ? name : "auth file", 0, err, errlen};
  *out = NULL;
  if (err && errlen)
    err[0] = '\0';
  if (len > AUTH_FILE_MAX)
    return auth__msg(err, errlen, KV_EINVAL, "%s: larger than %u bytes",
                     w.name, AUTH_FILE_MAX);
  if (!text && len)
    return KV_EINVAL;
  if (!text)
    text = "";

  /* Room for one user a line, up to the limit. */
  size_t lines = 1;
  for (const char *p = text, *end = text + len;
       (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
    lines++;
  size_t room = lines < AUTH_USERS_MAX ? lines : AUTH_USERS_MAX;
  size_t cap = 2;
  while (cap < 2 * room)
    cap *= 2;

  auth_db *db = calloc(1, sizeof(*db));
  if (!db)
    return KV_ENOMEM;
  db->users = malloc(room * sizeof(*db->users));
  db->index = calloc(cap, sizeof(*db->index));
  db->index_cap = cap;
  if (!db->users || !db->index) {
    auth_db_free(db);
    return KV_ENOMEM;
  }

  const char *p = text, *end = text + len;
  while (p < end) {
    w.line++;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    int rc = auth__line(db, &w, p, (size_t)(le - p));
    if (rc) {
      if (rc == KV_ENOMEM)
        auth__msg(err, errlen, rc, "%s: out of memory", w.name);
      auth_db_free(db);
      return rc;
    }
    p = nl ? nl + 1 : end;
  }
  db->dummy.iterations = db->count ? db->users[0].iterations
                                   : AUTH_ITER_DEFAULT;
  *out = db;
  return 0;
}

/* Reads the file at path into *text (malloc'd, caller frees; NUL after
 * the *len bytes) and its status into *st. Returns 0; KV_ENOTFOUND when
 * it does not exist, KV_EIO or KV_ENOMEM ("FILE: reason" in err); KV_EINVAL
 * when it is over AUTH_FILE_MAX bytes. */
static int auth__read(const char *path, char **text, size_t *len,
                      struct stat *st, char *err, size_t errlen) {
  *text = NULL;
  *len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return auth__msg(err, errlen, errno == ENOENT ? KV_ENOTFOUND : KV_EIO,
                     "%s: %s", path, strerror(errno));
  const char *bad = NULL;
  if (fstat(fd, st) != 0)
    bad = strerror(errno);
  else if (!S_ISREG(st->st_mode))
    bad = "not a regular file";
  if (bad) {
    int rc = auth__msg(err, errlen, KV_EIO, "%s: %s", path, bad);
    close(fd);
    return rc;
  }
  kvbuf b;
  kvbuf_init(&b);
  int rc = 0;
  for (;;) {
    if (kvbuf_reserve(&b, AUTH__READ_CHUNK + 1)) {
      rc = auth__msg(err, errlen, KV_ENOMEM, "%s: out of memory", path);
      break;
    }
    ssize_t n = read(fd, b.data + b.len, AUTH__READ_CHUNK);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      rc = auth__msg(err, errlen, KV_EIO, "%s: %s", path, strerror(errno));
      break;
    }
    if (n == 0)
      break;
    b.len += (size_t)n;
    if (b.len > AUTH_FILE_MAX) {
      rc = auth__msg(err, errlen, KV_EINVAL, "%s: larger than %u bytes", path,
                     AUTH_FILE_MAX);
      break;
    }
  }
  close(fd);
  if (rc) {
    kvbuf_free(&b);
    return rc;
  }
  b.data[b.len] = '\0';
  *len = b.len;
  *text = (char *)b.data;
  return 0;
}

int auth_db_load(const char *path, auth_db **out, char *err, size_t errlen) {
  *out = NULL;
  char *text;
  size_t len;
  struct stat st;
  int rc = auth__read(path, &text, &len, &st, err, errlen);
  if (rc == KV_ENOTFOUND)
    rc = KV_EIO;
  if (rc == 0)
    rc = auth_db_parse(text, len, path, out, err, errlen);
  free(text);
  return rc;
}

void auth_db_free(auth_db *db) {
  if (!db)
    return;
  if (db->users)
    OPENSSL_cleanse(db->users, db->count * sizeof(*db->users));
  free(db->users);
  free(db->index);
  free(db);
}

size_t auth_db_count(const auth_db *db) { return db ? db->count : 0; }

int auth_db_user(const auth_db *db, size_t i, const char **name,
                 auth_role *role) {
  if (!db || i >= db->count)
    return KV_ENOTFOUND;
  *name = db->users[i].name;
  *role = db->users[i].role;
  return 0;
}

/* Appends the line "NAME ROLE HASH" (without its '\n') to b. Returns 0 or
 * KV_ENOMEM. */
static int auth__user_line(kvbuf *b, const char *name, size_t name_len,
                           auth_role role, const char *hash) {
  const char *rn = auth_role_name(role);
  kvbuf_append(b, name, name_len);
  kvbuf_append(b, " ", 1);
  kvbuf_append(b, rn, strlen(rn));
  kvbuf_append(b, " ", 1);
  kvbuf_append(b, hash, strlen(hash));
  return b->oom ? KV_ENOMEM : 0;
}

int auth_db_write(const auth_db *db, kvbuf *out) {
  for (size_t i = 0; db && i < db->count; i++) {
    const auth__user *u = &db->users[i];
    kvbuf h;
    kvbuf_init(&h);
    int rc = auth__hash_format(&h, u->iterations, u->salt, u->key);
    if (rc == 0)
      rc = auth__user_line(out, u->name, u->name_len, u->role,
                           (const char *)h.data);
    kvbuf_free(&h);
    if (rc)
      return rc;
    kvbuf_append(out, "\n", 1);
  }
  return out->oom ? KV_ENOMEM : 0;
}

auth_role auth_check(const auth_db *db, const char *user, size_t ulen,
                     const uint8_t *pw, size_t pwlen) {
  if (!db || (!pw && pwlen) || pwlen > AUTH_PW_MAX)
    return AUTH_ROLE_NONE;
  const auth__user *u =
      auth_user_valid(user, ulen) ? auth__find(db, user, ulen) : NULL;
  const auth__user *k = u ? u : &db->dummy;
  uint8_t key[AUTH_KEY_LEN];
  bool ok = auth__kdf(pw, pwlen, k->salt, k->iterations, key) == 0 &&
            CRYPTO_memcmp(key, k->key, sizeof(key)) == 0;
  OPENSSL_cleanse(key, sizeof(key));
  return ok && u ? u->role : AUTH_ROLE_NONE;
}

/* ---- the cache ---- */

typedef struct auth__slot {
  uint8_t digest[32]; /* SHA-256(cache key, lengths, user, password) */
  uint64_t used;      /* the cache's clock at the last get or put; 0: empty */
  auth_role role;
} auth__slot;

struct auth_cache {
  uint8_t key[32];
  size_t sets, ways; /* sets * ways <= the max_entries asked for */
  size_t count;
  uint64_t clock;
  auth__slot slot[]; /* set s holds slot[s * ways .. (s + 1) * ways) */
};

auth_cache *auth_cache_new(size_t max_entries) {
  if (max_entries > AUTH_CACHE_MAX)
    max_entries = AUTH_CACHE_MAX;
  size_t ways = max_entries < AUTH_CACHE_WAYS ? max_entries : AUTH_CACHE_WAYS;
  size_t sets = ways ? max_entries / ways : 0;
  auth_cache *c = calloc(1, sizeof(*c) + sets * ways * sizeof(auth__slot));
  if (!c)
    return NULL;
  c->sets = sets;
  c->ways = ways;
  if (RAND_bytes(c->key, sizeof(c->key)) != 1) {
    free(c);
    return NULL;
  }
  return c;
}

void auth_cache_free(auth_cache *c) {
  if (!c)
    return;
  OPENSSL_cleanse(c, sizeof(*c) + c->sets * c->ways * sizeof(auth__slot));
  free(c);
}

/* Computes the digest of (user, pw) under c's key into out and returns the
 * set it belongs to; returns -1 when there is no room or hashing fails. */
static long auth__cache_set(const auth_cache *c, const char *user, size_t ulen,
                            const uint8_t *pw, size_t pwlen, uint8_t *out) {
  if (!c || c->sets == 0 || !user || ulen == 0 || ulen > AUTH_USER_MAX ||
      (!pw && pwlen) || pwlen > AUTH_PW_MAX)
    return -1;
  uint8_t lens[8];
  for (int i = 0; i < 4; i++) {
    lens[i] = (uint8_t)(ulen >> (8 * i));
    lens[4 + i] = (uint8_t)(pwlen >> (8 * i));
  }
  EVP_MD_CTX *m = EVP_MD_CTX_new();
  bool ok = m && EVP_DigestInit_ex(m, EVP_sha256(), NULL) == 1 &&
            EVP_DigestUpdate(m, c->key, sizeof(c->key)) == 1 &&
            EVP_DigestUpdate(m, lens, sizeof(lens)) == 1 &&
            EVP_DigestUpdate(m, user, ulen) == 1 &&
            (pwlen == 0 || EVP_DigestUpdate(m, pw, pwlen) == 1) &&
            EVP_DigestFinal_ex(m, out, NULL) == 1;
  EVP_MD_CTX_free(m);
  if (!ok)
    return -1;
  uint64_t h = 0;
  for (int i = 0; i < 8; i++)
    h = h << 8 | out[i];
  return (long)(h % c->sets);
}

/* Returns the slot of set s that holds digest d, or NULL. */
static auth__slot *auth__cache_find(auth_cache *c, long s, const uint8_t *d) {
  auth__slot *set = &c->slot[(size_t)s * c->ways];
  for (size_t i = 0; i < c->ways; i++)
    if (set[i].used && CRYPTO_memcmp(set[i].digest, d, 32) == 0)
      return &set[i];
  return NULL;
}

auth_role auth_cache_get(auth_cache *c, const char *user, size_t ulen,
                         const uint8_t *pw, size_t pwlen) {
  uint8_t d[32];
  long s = auth__cache_set(c, user, ulen, pw, pwlen, d);
  if (s < 0)
    return AUTH_ROLE_NONE;
  auth__slot *slot = auth__cache_find(c, s, d);
  if (!slot)
    return AUTH_ROLE_NONE;
  slot->used = ++c->clock;
  return slot->role;
}

void auth_cache_put(auth_cache *c, const char *user, size_t ulen,
                    const uint8_t *pw, size_t pwlen, auth_role r) {
  uint8_t d[32];
  if (!auth__role_valid(r))
    return;
  long s = auth__cache_set(c, user, ulen, pw, pwlen, d);
  if (s < 0)
    return;
  auth__slot *slot = auth__cache_find(c, s, d);
  if (!slot) {
    /* An empty way, else the least recently used one. */
    auth__slot *set = &c->slot[(size_t)s * c->ways];
    slot = &set[0];
    for (size_t i = 1; i < c->ways && slot->used; i++)
      if (set[i].used < slot->used)
        slot = &set[i];
    if (!slot->used)
      c->count++;
    memcpy(slot->digest, d, sizeof(d));
  }
  slot->role = r;
  slot->used = ++c->clock;
}

void auth_cache_clear(auth_cache *c) {
  if (!c)
    return;
  memset(c->slot, 0, c->sets * c->ways * sizeof(auth__slot));
  c->count = 0;
  c->clock = 0;
  /* A new key too, so nothing of the old entries could match again; if
   * the generator fails the old key stays, which is still correct. */
  uint8_t key[sizeof(c->key)];
  if (RAND_bytes(key, sizeof(key)) == 1)
    memcpy(c->key, key, sizeof(key));
  OPENSSL_cleanse(key, sizeof(key));
}

size_t auth_cache_count(const auth_cache *c) { return c ? c->count : 0; }

/* ---- writing the file ---- */

/* Writes data[0..len) to path atomically: a temporary file beside it,
 * fsync, rename, fsync of the directory (best effort: some file systems
 * cannot). The temporary file is created 0600; with old (path's status)
 * it takes old's mode and, when the process may, old's owner. Returns 0
 * or KV_EIO / KV_ENOMEM with "FILE: reason" in err. */
static int auth__write_atomic(const char *path, const void *data, size_t len,
                              const struct stat *old, char *err,
                              size_t errlen) {
  static const char suffix[] = ".XXXXXX";
  size_t pl = strlen(path);
  char *tmp = malloc(pl + sizeof(suffix));
  if (!tmp)
    return auth__msg(err, errlen, KV_ENOMEM, "%s: out of memory", path);
  memcpy(tmp, path, pl);
  memcpy(tmp + pl, suffix, sizeof(suffix));
  int fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0) {
    int rc = auth__msg(err, errlen, KV_EIO,
                       "%s: cannot create a temporary file beside it: %s",
                       path, strerror(errno));
    free(tmp);
    return rc;
  }
  const char *what = NULL;
  if (old) {
    /* Root editing a file kvorumd's user owns must leave it readable by
     * that user; anyone else cannot give files away, and need not. */
    if (fchown(fd, old->st_uid, old->st_gid) != 0) {
      /* EPERM: the file becomes ours, with old's mode. */
    }
    if (fchmod(fd, old->st_mode & 07777) != 0)
      what = "fchmod";
  }
  const uint8_t *p = data;
  size_t left = len;
  while (!what && left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      what = "write";
      break;
    }
    p += n;
    left -= (size_t)n;
  }
  if (!what && fsync(fd) != 0)
    what = "fsync";
  if (close(fd) != 0 && !what)
    what = "close";
  if (!what && rename(tmp, path) != 0)
    what = "rename";
  if (what) {
    int rc = auth__msg(err, errlen, KV_EIO, "%s: %s of %s failed: %s", path,
                       what, tmp, strerror(errno));
    unlink(tmp);
    free(tmp);
    return rc;
  }
  /* The directory: where its last '/' is, or ".". */
  char *slash = strrchr(tmp, '/');
  const char *dir = ".";
  if (slash == tmp) {
    dir = "/";
  } else if (slash) {
    *slash = '\0';
    dir = tmp;
  }
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    if (fsync(dfd) != 0) {
      /* The rename is done; only its durability is less certain. */
    }
    close(dfd);
  }
  free(tmp);
  return 0;
}

int auth_file_set_user(const char *path, const char *user, auth_role role,
                       const uint8_t *pw, size_t pwlen, bool *replaced,
                       char *err, size_t errlen) {
  if (replaced)
    *replaced = false;
  if (err && errlen)
    err[0] = '\0';
  size_t ulen = user ? strlen(user) : 0;
  if (!path)
    return KV_EINVAL;
  if (!auth_user_valid(user, ulen))
    return auth__msg(err, errlen, KV_EINVAL,
                     "a user name is 1 to %d bytes of A-Z a-z 0-9 . _ @ -",
                     AUTH_USER_MAX);
  if (!auth__role_valid(role))
    return auth__msg(err, errlen, KV_EINVAL,
                     "the role must be read, write or admin");
  if (pwlen == 0 || !pw)
    return auth__msg(err, errlen, KV_EINVAL, "the password is empty");
  if (pwlen > AUTH_PW_MAX)
    return auth__msg(err, errlen, KV_EINVAL,
                     "the password is longer than %d bytes", AUTH_PW_MAX);

  char *text;
  size_t len;
  struct stat st;
  int rc = auth__read(path, &text, &len, &st, err, errlen);
  bool exists = rc != KV_ENOTFOUND;
  if (!exists)
    rc = 0;
  if (rc)
    return rc;
  const char *src = text ? text : "";

  /* Only a file that parses is rewritten. */
  auth_db *db;
  rc = auth_db_parse(src, len, path, &db, err, errlen);
  bool found = rc == 0 && auth__find(db, user, ulen) != NULL;
  if (rc == 0 && !found && db->count == AUTH_USERS_MAX)
    rc = auth__msg(err, errlen, KV_EINVAL, "%s: already holds %d users", path,
                   AUTH_USERS_MAX);
  auth_db_free(db);

  char hash[AUTH_HASH_FIELD_MAX];
  if (rc == 0) {
    rc = auth_hash_new(pw, pwlen, hash, sizeof(hash));
    if (rc)
      auth__msg(err, errlen, rc, "%s: cannot hash the password: %s", path,
                kv_strerror(rc));
  }

  /* The new text: the user's line replaced where it is, or added at the
   * end; every other byte as it was. */
  kvbuf b;
  kvbuf_init(&b);
  const char *p = src, *end = src + len;
  while (rc == 0 && p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    auth__field f[1];
    if (auth__split(p, (size_t)(le - p), f, 1) >= 1 && f[0].len == ulen &&
        memcmp(f[0].p, user, ulen) == 0) {
      auth__user_line(&b, user, ulen, role, hash);
      if (le > p && le[-1] == '\r')
        kvbuf_append(&b, "\r", 1);
      if (nl)
        kvbuf_append(&b, "\n", 1);
    } else {
      kvbuf_append(&b, p, (size_t)((nl ? nl + 1 : end) - p));
    }
    p = nl ? nl + 1 : end;
  }
  if (rc == 0 && !found) {
    if (len && src[len - 1] != '\n')
      kvbuf_append(&b, "\n", 1);
    auth__user_line(&b, user, ulen, role, hash);
    kvbuf_append(&b, "\n", 1);
  }
  if (rc == 0 && b.oom)
    rc = auth__msg(err, errlen, KV_ENOMEM, "%s: out of memory", path);
  if (rc == 0 && b.len > AUTH_FILE_MAX)
    rc = auth__msg(err, errlen, KV_EINVAL, "%s: would grow past %u bytes",
                   path, AUTH_FILE_MAX);
  if (rc == 0)
    rc = auth__write_atomic(path, b.data, b.len, exists ? &st : NULL, err,
                            errlen);
  kvbuf_free(&b);
  free(text);
  if (rc == 0 && replaced)
    *replaced = found;
  return rc;
}
