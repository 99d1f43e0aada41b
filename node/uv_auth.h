/*
 * uv_auth.h: users and roles in kvorumd's shell (--auth-file,
 * docs/security.md). The front ends (native HELLO, RESP AUTH and HELLO
 * AUTH, HTTP Basic) hand credentials to uva_check; the password check
 * (PBKDF2, tens of milliseconds) runs on libuv's thread pool, never on
 * the loop, and a check that passed is cached (auth.h), so a client that
 * opens fifty connections pays it once. Identical checks in flight at the
 * same time share one run.
 *
 * Depends on: uv_int.h (the shell), auth.h (kvauth).
 */
#ifndef KV_UV_AUTH_H
#define KV_UV_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "uv_int.h"

/* Failed logins one connection may make; the next closes it. */
#define UVA_FAILS_MAX 3u

/* Loads path (--auth-file). Returns 0, or KV_EINVAL/KV_EIO with the
 * reason on stderr. */
int uva_open(uvn *u, const char *path);
void uva_close(uvn *u);
/* Rereads the file (SIGHUP); on error the old users stay. Returns 0 or
 * the error with the reason in err. */
int uva_reload(uvn *u, char *err, size_t errlen);
/* Whether clients must authenticate. */
bool uva_on(const uvn *u);

/* The answer to a check: token and token2 as given to uva_check (the
 * caller's way back to its connection or request, which may be gone),
 * role AUTH_ROLE_NONE for a failure. */
typedef void (*uva_fn)(uvn *u, uint64_t token, uint64_t token2,
                       auth_role role);
enum { UVA_REFUSED = -1, UVA_PENDING = 0 };
/* Checks user and password. Returns the user's role (an auth_role above
 * AUTH_ROLE_NONE) when a check that passed is cached, UVA_REFUSED when
 * the credentials cannot pass (too long, out of memory), or UVA_PENDING:
 * then fn runs once, later, from the loop, with the answer. */
int uva_check(uvn *u, kv_slice user, kv_slice pw, uva_fn fn, uint64_t token,
              uint64_t token2);
/* Counts a failed login and logs it (at most one line a second; never
 * the password). where: "native", "resp", "http". */
void uva_failed(uvn *u, const char *where, kv_slice user);

/* What a native frame (type; for ADMIN, its command) asks of a role. */
auth_op uva_native_op(uint32_t type, kv_slice admin_cmd);

#endif
