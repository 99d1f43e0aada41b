/*
 * fuzz_resp.c: libFuzzer target for the Redis protocol request parser
 * (proto/resp.h): resp_parse, resp_parse_resume, resp_iter and
 * resp_cmd_arg, which read every byte a Redis client sends.
 *
 * The input is a byte stream as it arrives on a connection: commands are
 * parsed one after another from it until KV_EAGAIN, an error or
 * FZ_CMDS_MAX commands. Beyond "no crash" (ASan, UBSan) it checks:
 *   - a result is 0, KV_EAGAIN, KV_EPROTO or KV_ETOOBIG; *consumed is set
 *     only on 0, and then lies in (0, bytes left]; after KV_EAGAIN need is
 *     beyond the bytes left; after an error err is a "Protocol error: ..."
 *     message and otherwise empty;
 *   - a command respects the limits: argc <= args_max (inline: <=
 *     RESP_ARGV_MAX, line <= inline_max bytes), a multibulk argument <=
 *     bulk_max bytes; resp_iter yields exactly argc arguments, then
 *     KV_ENOTFOUND, the first RESP_ARGV_MAX equal to argv and each equal to
 *     resp_cmd_arg; every argument lies inside the command's bytes or
 *     inside the scratch buffer;
 *   - prefixes: the bytes of a command cut one byte short, and cut at a
 *     point the input chooses, give KV_EAGAIN; cut anywhere before an
 *     error they give KV_EAGAIN or the same error and message;
 *   - splits: the stream fed to a connection-like loop (kvbuf, consumed as
 *     commands complete, resp_parse_resume) in two pieces split at a point
 *     the input chooses, and for short inputs one byte at a time, gives the
 *     same commands, consumed counts and final result as the whole;
 *   - smaller limits: each command parsed with tight limits gives the same
 *     command when it fits them and KV_ETOOBIG when not; an error stays an
 *     error (KV_EPROTO may become KV_ETOOBIG, not the reverse).
 * Depends on: kvproto.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_err.h"
#include "mp.h"
#include "resp.h"
#include "tests/fuzz/fz.h"


#define FZ_CMDS_MAX 256      /* commands read from one input */
#define FZ_BYTEWISE_MAX 1024 /* inputs up to this size are fed bytewise */

/* Tight limits for the comparison. */
static const resp_limits fz_small = {3, 8, 16};

/* One result of the stream: what a connection would see. */
typedef struct fz_result {
  int rc;
  size_t consumed;
  uint32_t argc;
  uint64_t hash; /* of the arguments */
} fz_result;

typedef struct fz_run {
  fz_result r[FZ_CMDS_MAX + 1];
  int n;
} fz_run;

/* resp_cmd is large: static, with the scratch buffer. */
static resp_cmd fz_cmd, fz_cmd2;
static uint8_t fz_scratch[RESP_INLINE_MAX_DEFAULT];
static uint8_t fz_scratch2[RESP_INLINE_MAX_DEFAULT];

static uint64_t fz_fnv(uint64_t h, const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

/* Hash of all arguments of c (lengths and bytes, in order). */
static uint64_t fz_args_hash(const resp_cmd *c) {
  uint64_t h = 0xcbf29ce484222325ull;
  resp_iter it;
  kv_slice a;
  resp_iter_init(&it, c);
  while (resp_iter_next(&it, &a) == 0) {
    h = fz_fnv(h, &a.len, sizeof(a.len));
    if (a.len)
      h = fz_fnv(h, a.ptr, a.len);
  }
  return h;
}

static int fz_slice_in(kv_slice s, const uint8_t *p, size_t n) {
  if (s.len == 0)
    return 1;
  return s.ptr >= p && s.ptr <= p + n && s.len <= (size_t)(p + n - s.ptr);
}

/* Checks a parse of the n bytes at p by c with limits lim that returned
 * rc (and *consumed when 0). */
static void fz_check_cmd(const resp_cmd *c, int rc, size_t consumed,
                         const uint8_t *p, size_t n, const resp_limits *lim,
                         const uint8_t *scr) {
  FZ_CHECK(rc == 0 || rc == KV_EAGAIN || rc == KV_EPROTO || rc == KV_ETOOBIG);
  if (rc == KV_EAGAIN) {
    FZ_CHECK(c->need > n);
    FZ_CHECK(c->err[0] == '\0');
    return;
  }
  if (rc != 0) {
    FZ_CHECK(strncmp(c->err, "Protocol error: ", 16) == 0);
    return;
  }
  FZ_CHECK(c->err[0] == '\0');
  FZ_CHECK(consumed > 0 && consumed <= n);
  FZ_CHECK(c->argc <= lim->args_max);
  if (c->is_inline) {
    FZ_CHECK(c->argc <= RESP_ARGV_MAX);
    FZ_CHECK(consumed - 1 <= lim->inline_max);
    FZ_CHECK(p[consumed - 1] == '\n');
  } else {
    FZ_CHECK(p[0] == '*');
  }
  resp_iter it;
  kv_slice a;
  resp_iter_init(&it, c);
  for (uint32_t i = 0; i < c->argc; i++) {
    FZ_CHECK(resp_iter_next(&it, &a) == 0);
    FZ_CHECK(fz_slice_in(a, p, consumed) ||
             (c->is_inline && fz_slice_in(a, scr, sizeof(fz_scratch))));
    if (!c->is_inline)
      FZ_CHECK(a.len <= lim->bulk_max);
    if (i < RESP_ARGV_MAX)
      FZ_CHECK(c->argv[i].ptr == a.ptr && c->argv[i].len == a.len);
    if (i + 1 == c->argc || i == RESP_ARGV_MAX || i < 4) {
      kv_slice r = resp_cmd_arg(c, i);
      FZ_CHECK(r.ptr == a.ptr && r.len == a.len);
    }
  }
  FZ_CHECK(resp_iter_next(&it, &a) == KV_ENOTFOUND);
  FZ_CHECK(resp_cmd_arg(c, c->argc).len == 0);
}

/* Parses the n bytes at p afresh from an exact-size copy (so ASan sees a
 * read past them) into fz_cmd2. Returns the result; *consumed on 0. */
static int fz_parse_copy(const uint8_t *p, size_t n, const resp_limits *lim,
                         size_t *consumed, uint64_t *hash) {
  uint8_t *copy = malloc(n ? n : 1);
  FZ_CHECK(copy != NULL);
  if (n)
    memcpy(copy, p, n);
  resp_cmd_init(&fz_cmd2, fz_scratch2, sizeof(fz_scratch2));
  size_t used = (size_t)-1;
  int rc = resp_parse(copy, n, lim, &fz_cmd2, &used);
  fz_check_cmd(&fz_cmd2, rc, used, copy, n, lim ? lim : &resp_limits_default,
               fz_scratch2);
  if (rc != 0)
    FZ_CHECK(used == (size_t)-1);
  *consumed = used;
  *hash = rc == 0 ? fz_args_hash(&fz_cmd2) : 0;
  free(copy);
  return rc;
}

/* Records one result of the stream. */
static void fz_note(fz_run *run, int rc, size_t consumed, const resp_cmd *c) {
  FZ_CHECK(run->n <= FZ_CMDS_MAX);
  fz_result *r = &run->r[run->n++];
  r->rc = rc;
  r->consumed = rc == 0 ? consumed : 0;
  r->argc = rc == 0 ? c->argc : 0;
  r->hash = rc == 0 ? fz_args_hash(c) : 0;
}

/* Parses the input whole, one command after another, checking each
 * command, its prefixes and its parse under smaller limits. */
static void fz_whole(const uint8_t *data, size_t size, uint32_t cut,
                     fz_run *run) {
  size_t off = 0;
  run->n = 0;
  for (;;) {
    const uint8_t *p = data + off;
    size_t n = size - off;
    size_t used = (size_t)-1;
    resp_cmd_init(&fz_cmd, fz_scratch, sizeof(fz_scratch));
    int rc = resp_parse(p, n, NULL, &fz_cmd, &used);
    fz_check_cmd(&fz_cmd, rc, used, p, n, &resp_limits_default, fz_scratch);
    fz_note(run, rc, used, &fz_cmd);
    uint64_t hash = rc == 0 ? run->r[run->n - 1].hash : 0;

    /* Prefixes. */
    size_t end = rc == 0 ? used : n;
    size_t u;
    uint64_t h;
    if (rc == 0) {
      FZ_CHECK(fz_parse_copy(p, used - 1, NULL, &u, &h) == KV_EAGAIN);
      if (used > 1)
        FZ_CHECK(fz_parse_copy(p, cut % used, NULL, &u, &h) == KV_EAGAIN);
      FZ_CHECK(fz_parse_copy(p, used, NULL, &u, &h) == 0);
      FZ_CHECK(u == used && h == hash);
    } else if (rc != KV_EAGAIN && end > 0) {
      char err[RESP_ERR_MAX];
      memcpy(err, fz_cmd.err, sizeof(err));
      int rk = fz_parse_copy(p, cut % end, NULL, &u, &h);
      FZ_CHECK(rk == KV_EAGAIN || (rk == rc && strcmp(fz_cmd2.err, err) == 0));
    }

    /* Smaller limits. */
    int rs = fz_parse_copy(p, n, &fz_small, &u, &h);
    if (rc == 0) {
      int fits = fz_cmd.argc <= fz_small.args_max;
      if (fz_cmd.is_inline) {
        fits = fits && used - 1 <= fz_small.inline_max;
      } else {
        resp_iter it;
        kv_slice a;
        resp_iter_init(&it, &fz_cmd);
        while (fits && resp_iter_next(&it, &a) == 0)
          fits = a.len <= fz_small.bulk_max;
      }
      if (fits)
        FZ_CHECK(rs == 0 && u == used && h == hash);
      else
        FZ_CHECK(rs == KV_ETOOBIG);
    } else if (rc == KV_EAGAIN) {
      FZ_CHECK(rs == KV_EAGAIN || rs == KV_ETOOBIG);
    } else if (rc == KV_ETOOBIG) {
      FZ_CHECK(rs == KV_ETOOBIG);
    } else {
      FZ_CHECK(rs == KV_EPROTO || rs == KV_ETOOBIG);
    }

    if (rc != 0 || run->n == FZ_CMDS_MAX)
      return;
    off += used;
  }
}

/* Feeds the input to a connection-like loop in pieces: the first piece is
 * cut bytes, then pieces of step bytes (0: the rest at once). Commands are
 * consumed from the kvbuf as they complete, so the bytes move. */
static void fz_fed(const uint8_t *data, size_t size, size_t cut, size_t step,
                   fz_run *run) {
  kvbuf in;
  kvbuf_init(&in);
  resp_resume rs = RESP_RESUME_INIT;
  size_t fed = 0;
  int done = 0, first = 1;
  run->n = 0;
  while (!done) {
    size_t piece = first ? cut : step ? step : size - fed;
    first = 0;
    if (piece > size - fed)
      piece = size - fed;
    FZ_CHECK(kvbuf_append(&in, data + fed, piece) == 0);
    fed += piece;
    for (;;) {
      size_t used = (size_t)-1;
      resp_cmd_init(&fz_cmd, fz_scratch, sizeof(fz_scratch));
      int rc = resp_parse_resume(&rs, in.data, in.len, NULL, &fz_cmd, &used);
      if (rc == KV_EAGAIN) {
        FZ_CHECK(used == (size_t)-1);
        if (fed == size) {
          fz_note(run, rc, 0, &fz_cmd);
          done = 1;
        }
        break;
      }
      fz_check_cmd(&fz_cmd, rc, used, in.data, in.len, &resp_limits_default,
                   fz_scratch);
      fz_note(run, rc, used, &fz_cmd);
      if (rc != 0 || run->n == FZ_CMDS_MAX) {
        done = 1;
        break;
      }
      kvbuf_consume(&in, used);
    }
  }
  kvbuf_free(&in);
}

static void fz_same(const fz_run *a, const fz_run *b) {
  FZ_CHECK(a->n == b->n);
  for (int i = 0; i < a->n; i++) {
    FZ_CHECK(a->r[i].rc == b->r[i].rc);
    FZ_CHECK(a->r[i].consumed == b->r[i].consumed);
    FZ_CHECK(a->r[i].argc == b->r[i].argc);
    FZ_CHECK(a->r[i].hash == b->r[i].hash);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static fz_run whole, split;
  /* A cut point from the input itself, so the fuzzer can steer it. */
  uint32_t cut = (uint32_t)fz_fnv(0xcbf29ce484222325ull, data, size);

  fz_whole(data, size, cut, &whole);
  fz_fed(data, size, size ? cut % (size + 1) : 0, 0, &split);
  fz_same(&whole, &split);
  if (size <= FZ_BYTEWISE_MAX) {
    fz_fed(data, size, 1, 1, &split);
    fz_same(&whole, &split);
  }
  return 0;
}
