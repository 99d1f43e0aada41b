/*
 * resp.h: the server side of the Redis protocol (RESP2 and RESP3), for the
 * node's Redis front end: a request parser and a reply writer. The Redis
 * serialization protocol specification is the reference; where this code
 * is stricter or differs, the comments below say so.
 *
 * Parsing is zero-copy and never allocates. resp_parse looks at the bytes a
 * connection has received so far and reads ONE whole command from their
 * start, in either of the two forms a Redis server accepts:
 *   multibulk  *<n>\r\n then n times $<len>\r\n<len bytes>\r\n
 *              (every client library, redis-cli, redis-benchmark; RESP3
 *              clients send requests in this same form)
 *   inline     a line of words ending in \n or \r\n (telnet, nc), split the
 *              way Redis's sdssplitargs splits it (see resp_parse)
 * A buffer starting with '*' is multibulk, anything else inline.
 *
 * Results:
 *   0           a whole command: *consumed bytes, out->argc arguments.
 *               argc 0 means an empty command (an empty inline line, *0 or
 *               *-1): consume it and answer nothing, as Redis does.
 *   KV_EAGAIN   buf holds a prefix of a command: nothing consumed; call
 *               again when more bytes have arrived (out->need says how many
 *               at least). Every strict prefix of a command gives KV_EAGAIN,
 *               so the answer never depends on how the bytes were split.
 *   KV_EPROTO   malformed; out->err holds Redis's message for it, without
 *               the "ERR " prefix ("Protocol error: invalid bulk length").
 *   KV_ETOOBIG  a count, a length or an inline line over resp_limits;
 *               out->err as for KV_EPROTO. Lengths are checked digit by
 *               digit as they arrive, before any of the bytes they announce:
 *               "$999999999999" fails at once, it is never waited for.
 * After KV_EPROTO or KV_ETOOBIG the stream cannot be resynchronised: answer
 * "-ERR <out->err>" and close the connection, as Redis does.
 *
 * Arguments. out->argv holds the first RESP_ARGV_MAX arguments as slices
 * into buf (valid while buf is unchanged), except an inline argument that
 * had quotes removed or escapes decoded, which is written into the scratch
 * buffer the caller gave resp_cmd_init (the parser never writes into buf).
 * A multibulk command may have up to lim->args_max arguments (MSET with
 * thousands of keys); argc counts them all, argv has the first
 * RESP_ARGV_MAX, and resp_iter walks all of them in order, reading the ones
 * past argv from buf again (O(1) each). resp_cmd_arg(cmd, i) is random
 * access: O(1) below RESP_ARGV_MAX, a walk beyond. An inline command has at
 * most RESP_ARGV_MAX arguments (a longer one is KV_ETOOBIG), so all of
 * them are in argv.
 *
 * Re-parsing. resp_parse is stateless: each call reads the command from its
 * first byte. A command that arrives in many pieces would then be read
 * again and again (quadratic in its number of arguments, or in the length
 * of an inline line); resp_parse_resume takes a small per-connection
 * resp_resume that remembers, after KV_EAGAIN, how far the bytes were
 * checked, so that each call reads only what is new. Its results are the
 * same as resp_parse's.
 *
 * Writing appends replies to a kvbuf (mp.h). Each writer returns 0 or
 * KV_ENOMEM; kvbuf's oom flag is sticky, so a caller may check once after
 * a whole reply. Writers that differ between RESP2 and RESP3 take the
 * connection's protocol version (2 or 3, what HELLO chose; anything but 3
 * means RESP2).
 *
 * Depends on: mp.h (kv_slice, kvbuf), kv_err.h.
 */
#ifndef KV_RESP_H
#define KV_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv_err.h"
#include "mp.h"


/* Arguments a resp_cmd holds in argv; more are reached with resp_iter. */
#define RESP_ARGV_MAX 1024
/* Bytes of resp_cmd.err, with its NUL. */
#define RESP_ERR_MAX 80

#define RESP_ARGS_MAX_DEFAULT (1024u * 1024u)          /* arguments */
#define RESP_BULK_MAX_DEFAULT (512ull * 1024u * 1024u) /* bytes */
#define RESP_INLINE_MAX_DEFAULT (64u * 1024u)          /* bytes */

/* Protocol versions of a connection (HELLO). */
#define RESP_PROTO2 2
#define RESP_PROTO3 3

/* Limits the parser enforces (Redis's names in brackets). */
typedef struct resp_limits {
  uint32_t args_max;   /* arguments of a multibulk command (1024*1024) */
  uint64_t bulk_max;   /* bytes of one argument (proto-max-bulk-len, 512 MiB) */
  uint32_t inline_max; /* bytes of an inline line before its \n
                          (PROTO_INLINE_MAX_SIZE, 64 KiB) */
} resp_limits;
extern const resp_limits resp_limits_default;

/* One parsed command. Caller-owned and reusable: one per event loop is
 * enough with resp_parse (the state that must live per connection is a
 * resp_resume). Fields marked OUT are set by resp_parse. */
typedef struct resp_cmd {
  uint32_t argc;                /* OUT: all arguments (0: empty command) */
  bool is_inline;               /* OUT: the command came as an inline line */
  uint64_t need;                /* OUT, after KV_EAGAIN: buf must reach this
                                   many bytes before a call can get further */
  char err[RESP_ERR_MAX];       /* OUT, after KV_EPROTO/KV_ETOOBIG: message */
  kv_slice argv[RESP_ARGV_MAX]; /* OUT: the first min(argc, RESP_ARGV_MAX) */
  uint8_t *scratch;             /* decoded inline arguments (resp_cmd_init) */
  size_t scratch_cap;
  /* Private, for resp_iter: the header of argument RESP_ARGV_MAX of a
   * multibulk command, and the end of the command. */
  const uint8_t *resp__rest;
  const uint8_t *resp__end;
} resp_cmd;

/* Prepares cmd (cheaply: argv is not cleared). scratch (cap bytes,
 * caller-owned, not inside the buffers being parsed; may be NULL) receives
 * inline arguments that had quotes or escapes: give it lim->inline_max bytes
 * and it never runs short. An inline command whose decoded arguments do not fit
 * fails with KV_ETOOBIG. */
void resp_cmd_init(resp_cmd *cmd, uint8_t *scratch, size_t cap);

/* Per-connection progress of resp_parse_resume. Zero it (RESP_RESUME_INIT)
 * when the connection opens. The fields are private. */
typedef struct resp_resume {
  size_t len;    /* bytes seen by the call that returned KV_EAGAIN; 0: none */
  size_t off;    /* multibulk: header of argument argi; inline: bytes
                    known to hold no \n */
  uint32_t argc; /* multibulk count read */
  uint32_t argi; /* arguments before off, checked */
} resp_resume;
#define RESP_RESUME_INIT                                                       \
  { 0, 0, 0, 0 }

/*
 * Parses one command from the start of (buf, len); lim NULL means
 * resp_limits_default. Returns 0 (*consumed set, out filled), KV_EAGAIN,
 * KV_EPROTO or KV_ETOOBIG as described at the top of this file; *consumed
 * is set only on 0.
 *
 * Multibulk, checked strictly: counts and lengths are decimal without
 * leading zeros ("0" alone is fine) and end in \r\n; a negative count is an
 * empty command (Redis does the same), a negative length an error; every
 * argument is a bulk string ('$'), and its bytes are followed by \r\n
 * (Redis does not check those two bytes; we do).
 *
 * Inline, as sdssplitargs: the line is what comes before the first \n, less
 * a \r just before it, and may have at most lim->inline_max bytes before
 * the \n. Arguments are separated by blanks (space, \t, \r, \v, \f). An
 * unquoted argument ends at space, \t or \r, and a quote inside it opens a
 * quoted part of the same argument (a"b c" is one argument, ab c).
 * In "double quotes": \n \r \t \b \a, \xHH (two hex digits), and a
 * backslash before any other byte stands for that byte (\\ \" \q). In
 * 'single quotes' only \' is an escape. A closing quote must be followed
 * by a blank or the end of the line, and every quote must close; otherwise
 * "Protocol error: unbalanced quotes in request". Unlike Redis, a NUL byte
 * is an ordinary byte (Redis stops the line at it). An empty or all-blank
 * line is an empty command.
 */
int resp_parse(const uint8_t *buf, size_t len, const resp_limits *lim,
               resp_cmd *out, size_t *consumed);

/*
 * resp_parse, going on from where the last KV_EAGAIN of this connection
 * stopped. Promise of the caller: between a KV_EAGAIN and the next call, buf
 * only grew at its end (it may have moved). After 0 or an error, rs is
 * reset, ready for the next command (so consuming the command and calling
 * again is fine). A buf shorter than the one rs saw breaks the promise
 * detectably and is parsed from its start.
 */
int resp_parse_resume(resp_resume *rs, const uint8_t *buf, size_t len,
                      const resp_limits *lim, resp_cmd *out, size_t *consumed);

/* Walks all arguments of a parsed command in order; buf must be unchanged
 * since the parse. */
typedef struct resp_iter {
  const resp_cmd *cmd;
  uint32_t i;        /* next argument */
  const uint8_t *at; /* its header, once past argv */
} resp_iter;

void resp_iter_init(resp_iter *it, const resp_cmd *cmd);
/* Sets *arg to the next argument and returns 0, or KV_ENOTFOUND after the
 * last one (KV_EPROTO when buf was changed since the parse). */
int resp_iter_next(resp_iter *it, kv_slice *arg);

/* Argument i (< cmd->argc) of a parsed command; an empty slice when i is
 * out of range. O(1) when i < RESP_ARGV_MAX, else a walk from there. */
kv_slice resp_cmd_arg(const resp_cmd *cmd, uint32_t i);

/* True when arg equals name, ignoring ASCII case ("get" is "GET"). */
bool resp_arg_is(kv_slice arg, const char *name);

/* True when cmd has a first argument and it is name, ignoring case. */
bool resp_cmd_is(const resp_cmd *cmd, const char *name);

/* ---- replies ---- */

/* +s\r\n. \r and \n in s become spaces. */
int resp_add_simple(kvbuf *b, const char *s);
/* -msg\r\n; msg carries its own prefix ("ERR ...", "QUORUM ..."). \r and
 * \n in msg become spaces, as Redis makes them. */
int resp_add_error(kvbuf *b, const char *msg);
/* resp_add_error of a printf-formatted message, cut at RESP_ERRLINE_MAX
 * bytes. */
#define RESP_ERRLINE_MAX 512
int resp_add_errorf(kvbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* :v\r\n */
int resp_add_int(kvbuf *b, int64_t v);
/* $len\r\n<bytes>\r\n */
int resp_add_bulk(kvbuf *b, const void *p, size_t len);
/* A missing value: $-1\r\n (RESP2), _\r\n (RESP3). */
int resp_add_null(kvbuf *b, int proto);
/* A missing array: *-1\r\n (RESP2), _\r\n (RESP3). */
int resp_add_null_array(kvbuf *b, int proto);
/* *n\r\n; n elements follow. */
int resp_add_array(kvbuf *b, size_t n);
/* %npairs\r\n (RESP3) or *2npairs\r\n (RESP2); npairs key, value pairs
 * follow. */
int resp_add_map(kvbuf *b, int proto, size_t npairs);
/* ,v\r\n (RESP3) or v as a bulk string (RESP2). v is written with the
 * fewest digits that read back as v (at most 17), inf, -inf or nan. */
int resp_add_double(kvbuf *b, int proto, double v);
/* #t\r\n / #f\r\n (RESP3) or :1\r\n / :0\r\n (RESP2). */
int resp_add_bool(kvbuf *b, int proto, bool v);
/* Text such as INFO's: =len\r\n<fmt>:<bytes>\r\n (RESP3 verbatim string,
 * fmt three letters, "txt" or "mkd") or a bulk string (RESP2). */
int resp_add_verbatim(kvbuf *b, int proto, const char *fmt, const void *p,
                      size_t len);

#endif
