/*
 * auth.h: who may talk to kvorum, and what each may do. The pure part of
 * authentication: the users of an auth file, the password check (a KDF),
 * a cache of passed checks, and the writer behind `kvorum user-add`. No
 * libuv and no sockets: kvorumd's shell runs auth_check on libuv's thread
 * pool and keeps the connections, the counters of failed logins and the
 * rate limits; the kvorum CLI uses auth_file_set_user.
 *
 * The auth file (--auth-file FILE) is text, one user per line:
 *
 *   # comments and blank lines are allowed
 *   USER ROLE HASH
 *
 * Fields are separated by spaces or tabs; a comment is a line whose first
 * non-blank character is '#' (no comments after the fields). USER is 1 to
 * AUTH_USER_MAX bytes of A-Z a-z 0-9 . _ @ -; each user appears once.
 * ROLE is read, write or admin. HASH is
 *
 *   pbkdf2-sha256$ITERATIONS$SALT$KEY
 *
 * PKCS #5 PBKDF2 with HMAC-SHA-256 (RFC 8018) of the password: ITERATIONS
 * in decimal (AUTH_ITER_MIN..AUTH_ITER_MAX, no sign, no leading zero),
 * SALT the AUTH_SALT_LEN random bytes and KEY the AUTH_KEY_LEN derived
 * bytes, both in base64 (RFC 4648; padding optional). A password is never
 * stored in plain text, in the file or in memory beyond a check. Lines are
 * at most AUTH_LINE_MAX bytes, files AUTH_FILE_MAX bytes and
 * AUTH_USERS_MAX users; NUL bytes are refused. Anything else is an error
 * naming the file and the line, which never quotes a hash or a role field
 * (a line with its fields swapped must not print a hash to a log).
 *
 * Why PBKDF2 and not scrypt: both are in OpenSSL 3. On the reference
 * machine (AMD EPYC, OpenSSL 3.0) PBKDF2-SHA-256 costs 27 ms at 100,000
 * iterations, while scrypt's smallest usual setting (N=2^14, r=8: 16 MiB)
 * costs 120 ms; inside a 20-50 ms budget scrypt would be down to 4 MiB,
 * giving up most of the memory hardness that is its advantage, and every
 * check running at once on the thread pool holds its memory beside
 * RocksDB's caches. PBKDF2 needs no memory, is FIPS 140 approved (so it
 * works under OpenSSL's FIPS provider) and has one cost figure. One scheme
 * is accepted, so there is no downgrade to argue about.
 *
 * What a role may do (auth_allows):
 *
 *   op \ role       read   write  admin
 *   AUTH_OP_READ     yes    yes    yes    GET
 *   AUTH_OP_WRITE    -      yes    yes    PUT, DEL
 *   AUTH_OP_TOPOLOGY yes    yes    yes    ADMIN status, ring, preflist
 *   AUTH_OP_ADMIN    -      -      yes    every other ADMIN command
 *
 * Depends on: kv_err.h, kv_base64.h, mp.h (kvproto), OpenSSL libcrypto.
 */
#ifndef KV_AUTH_H
#define KV_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mp.h" /* kvbuf */

/* ---- limits and the hash scheme ---- */

#define AUTH_USER_MAX 64        /* bytes of a user name */
#define AUTH_USERS_MAX 4096     /* users in one file */
#define AUTH_LINE_MAX 1024      /* bytes of one line, without its '\n' */
#define AUTH_FILE_MAX (1u << 20) /* bytes of one file */
#define AUTH_PW_MAX 1024        /* bytes of a password; longer never pass */
#define AUTH_SCHEME "pbkdf2-sha256"
#define AUTH_SALT_LEN 16        /* bytes of salt */
#define AUTH_KEY_LEN 32         /* bytes of derived key (SHA-256's size) */
#define AUTH_ITER_MIN 1000u     /* PBKDF2 iterations accepted when reading */
#define AUTH_ITER_MAX 10000000u
/* Iterations of a new hash: about 40 ms on the reference machine (see
 * docs/security.md for the figures). */
#define AUTH_ITER_DEFAULT 150000u
/* Bytes of a HASH field with its NUL: scheme, 8 digits, base64 of the salt
 * and the key, three '$'. */
#define AUTH_HASH_FIELD_MAX 128
#define AUTH_CACHE_MAX (1u << 20) /* entries of an auth_cache */

/* ---- roles and what they allow ---- */

typedef enum auth_role {
  AUTH_ROLE_NONE = 0, /* not authenticated: allows nothing */
  AUTH_ROLE_READ,
  AUTH_ROLE_WRITE,
  AUTH_ROLE_ADMIN,
} auth_role;

typedef enum auth_op {
  AUTH_OP_READ,     /* GET */
  AUTH_OP_WRITE,    /* PUT, DEL */
  AUTH_OP_TOPOLOGY, /* ADMIN status, ring, preflist: clients route with them */
  AUTH_OP_ADMIN,    /* every other ADMIN command */
} auth_op;

/* Returns the role's name as the file spells it ("read", "write",
 * "admin"), or "none". Static storage. */
const char *auth_role_name(auth_role r);

/* Reads a role name ("read", "write", "admin"; exact, lower case) into
 * *out. Returns 0 or KV_EINVAL ("none" is not a role one can give). */
int auth_role_parse(const char *s, auth_role *out /* OUT */);

/* Returns whether role r may do op (the table above). */
bool auth_allows(auth_role r, auth_op op);

/* Returns whether user[0..len) is a valid user name: 1 to AUTH_USER_MAX
 * bytes of A-Z a-z 0-9 . _ @ -. */
bool auth_user_valid(const char *user, size_t len);

/* ---- the users of one file ---- */

/* Opaque and immutable once loaded, so any number of threads may run
 * auth_check on one db at once. */
typedef struct auth_db auth_db;

/* Loads the auth file at path into *out (caller frees with auth_db_free).
 * Returns 0; KV_EIO when the file cannot be read ("FILE: reason" in err);
 * KV_EINVAL when its text is wrong ("FILE:LINE: what is wrong"; a
 * duplicate user, a bad role, a malformed hash, ...) or KV_ENOMEM. On an
 * error *out is NULL. err may be NULL; the message is cut to errlen. */
int auth_db_load(const char *path, auth_db **out /* OUT */, char *err,
                 size_t errlen);

/* The same from text[0..len) in memory, name standing for the file in
 * messages (NULL: "auth file"). Parses only: runs no KDF. Fuzzed
 * (tests/fuzz/fuzz_auth.c). */
int auth_db_parse(const char *text, size_t len, const char *name,
                  auth_db **out /* OUT */, char *err, size_t errlen);

/* Frees db. auth_db_free(NULL) is a no-op. */
void auth_db_free(auth_db *db);

/* Returns the number of users in db (0 for NULL). */
size_t auth_db_count(const auth_db *db);

/* Gives the i-th user of db in file order (i < auth_db_count): its name
 * (NUL-terminated, owned by db) and role. Returns 0 or KV_ENOTFOUND. */
int auth_db_user(const auth_db *db, size_t i, const char **name /* OUT */,
                 auth_role *role /* OUT */);

/* Writes db as canonical file text appended to out: one "USER ROLE HASH\n"
 * line per user in file order, no comments. Parsing it gives the same
 * users. Returns 0 or KV_ENOMEM. */
int auth_db_write(const auth_db *db, kvbuf *out);

/* The password check: derives the key of pw[0..pwlen) with the user's salt
 * and iterations (the slow part, tens of milliseconds by design) and
 * compares it in constant time. Returns the user's role, or
 * AUTH_ROLE_NONE for an unknown user, a wrong password, a password over
 * AUTH_PW_MAX bytes or a NULL db. An unknown user still costs one KDF
 * (with the first user's iterations, or AUTH_ITER_DEFAULT in an empty
 * file), so timing does not tell which users exist while they share one
 * cost, as `kvorum user-add` makes them. Thread-safe: reads db and its
 * arguments only, so the shell runs it on libuv's thread pool. */
auth_role auth_check(const auth_db *db, const char *user, size_t ulen,
                     const uint8_t *pw, size_t pwlen);

/* ---- a cache of checks that passed ---- */

/* Remembers (user, password) -> role for checks that passed, so a client
 * that opens many connections with the same credentials pays the KDF once.
 * An entry is keyed by SHA-256 over a random key of the cache's own, the
 * user and the password: the password is never stored, and the key changes
 * at every auth_cache_clear. Holds at most the max_entries it was made
 * with; when a set of AUTH_CACHE_WAYS entries is full, the least recently
 * used one goes. Failed checks are never cached. Single-threaded (the
 * loop's); a NULL cache holds nothing. */
typedef struct auth_cache auth_cache;

#define AUTH_CACHE_WAYS 4

/* Returns a new cache of at most max_entries entries (clamped to
 * AUTH_CACHE_MAX; 0 makes a cache that holds nothing), or NULL when memory
 * or randomness fails. The caller frees it with auth_cache_free. */
auth_cache *auth_cache_new(size_t max_entries);

/* Frees c. auth_cache_free(NULL) is a no-op. */
void auth_cache_free(auth_cache *c);

/* Returns the role cached for (user, pw), or AUTH_ROLE_NONE when there is
 * none. */
auth_role auth_cache_get(auth_cache *c, const char *user, size_t ulen,
                         const uint8_t *pw, size_t pwlen);

/* Caches role r for (user, pw), replacing what was cached for them.
 * AUTH_ROLE_NONE caches nothing. */
void auth_cache_put(auth_cache *c, const char *user, size_t ulen,
                    const uint8_t *pw, size_t pwlen, auth_role r);

/* Empties c (call it when the auth file is reloaded: a changed password or
 * role, or a removed user, must not pass from the cache). */
void auth_cache_clear(auth_cache *c);

/* Returns the number of entries c holds. */
size_t auth_cache_count(const auth_cache *c);

/* ---- writing hashes and files ---- */

/* Writes a HASH field for pw[0..pwlen) with a fresh random salt and
 * AUTH_ITER_DEFAULT iterations into out (cap bytes, NUL-terminated;
 * AUTH_HASH_FIELD_MAX is enough). Returns 0, KV_EINVAL (cap too small, pw
 * over AUTH_PW_MAX) or KV_EIO (OpenSSL failed). */
int auth_hash_new(const uint8_t *pw, size_t pwlen, char *out, size_t cap);

/* The same with iterations (AUTH_ITER_MIN..AUTH_ITER_MAX, else KV_EINVAL):
 * for tests, which want fast hashes, and for operators who raise the
 * cost. */
int auth_hash_new_iter(const uint8_t *pw, size_t pwlen, uint32_t iterations,
                       char *out, size_t cap);

/* Adds user with role and a new hash of pw to the auth file at path, or
 * replaces the line of that user if there is one, keeping every other line
 * (comments, blank lines, other users) byte for byte. *replaced (may be
 * NULL) tells which. Atomic: the new text goes to a temporary file in the
 * same directory, is fsync'ed and renamed over path, and the directory is
 * fsync'ed; a missing file is created with mode 0600, an existing one
 * keeps its mode and (when the process may) its owner. A path that is a
 * symbolic link is replaced by a regular file. An existing file that does
 * not parse is left alone. Not safe against two writers of one file at
 * once (the last rename wins). Returns 0, KV_EINVAL (bad user, role or
 * password; the file does not parse: "FILE:LINE: ..."; the file would grow
 * past a limit), KV_EIO ("FILE: reason") or KV_ENOMEM, with the message in
 * err. */
int auth_file_set_user(const char *path, const char *user, auth_role role,
                       const uint8_t *pw, size_t pwlen,
                       bool *replaced /* OUT */, char *err, size_t errlen);

#endif
