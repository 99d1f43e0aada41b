/*
 * test_resp.c: unit tests of the Redis protocol codec (proto/resp.h):
 * multibulk and inline commands, empty commands, every prefix of valid
 * input answering KV_EAGAIN (with resp_parse and resp_parse_resume),
 * byte-at-a-time feeding of a pipelined stream, inline quoting and escapes
 * and the scratch buffer, each malformed case with its message, limits
 * (huge counts and lengths refused before their bytes arrive), commands
 * with more arguments than argv holds, the reply writer's exact bytes,
 * and a seeded run of random pipelined commands split at random points
 * (the seed is printed; set KV_TEST_SEED to replay one).
 * Depends on: kvproto.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kv_err.h"
#include "kv_str.h"
#include "mp.h"
#include "resp.h"
#include "unit/check.h"

#define RANDOM_ROUNDS 300  /* random pipelined streams per run */
#define RANDOM_CMDS_MAX 12 /* commands in one stream */
#define RANDOM_ARGS_MAX 6  /* arguments of one random command */
#define RANDOM_ARG_MAX 40  /* bytes of one random argument */
#define JOINED_MAX 8192    /* bytes of a joined command */

/* resp_cmd is large (argv): one for the whole program, with its scratch. */
static resp_cmd cmd;
static uint8_t scratch[RESP_INLINE_MAX_DEFAULT];

/* The arguments of cmd joined with '|', bytes outside printable ASCII and
 * '|' and '\\' written \xHH. Static storage. */
static const char *joined(const resp_cmd *c) {
  static char out[JOINED_MAX];
  size_t n = 0;
  resp_iter it;
  kv_slice a;
  resp_iter_init(&it, c);
  for (uint32_t i = 0; resp_iter_next(&it, &a) == 0; i++) {
    if (i && n < sizeof(out) - 1)
      out[n++] = '|';
    for (size_t k = 0; k < a.len && n < sizeof(out) - 5; k++) {
      uint8_t ch = a.ptr[k];
      if (ch >= ' ' && ch < 0x7f && ch != '|' && ch != '\\')
        out[n++] = (char)ch;
      else
        n += (size_t)snprintf(out + n, 5, "\\x%02x", ch);
    }
  }
  out[n] = '\0';
  return out;
}

/* Parses the n bytes at s from an exact-size copy (so ASan sees any read
 * past them) with lim (NULL: defaults). Returns the result; on 0 *consumed
 * and *args (the joined arguments, static) are set; on an error *args is
 * the message. */
static int parse_n(const void *s, size_t n, const resp_limits *lim,
                   size_t *consumed, const char **args) {
  uint8_t *copy = malloc(n ? n : 1);
  memcpy(copy, s, n);
  resp_cmd_init(&cmd, scratch, sizeof(scratch));
  size_t used = (size_t)-1;
  int rc = resp_parse(copy, n, lim, &cmd, &used);
  static char msg[RESP_ERR_MAX];
  if (rc == 0) {
    CHECK(used > 0 && used <= n);
    *args = joined(&cmd);
  } else {
    CHECK(used == (size_t)-1);
    kv_strcopy(msg, sizeof(msg), cmd.err);
    *args = msg;
  }
  if (consumed)
    *consumed = used;
  free(copy);
  return rc;
}

static int parse(const char *s, size_t *consumed, const char **args) {
  return parse_n(s, strlen(s), NULL, consumed, args);
}

/* s parses whole as one command whose joined arguments are want. */
static int parses_to(const char *s, const char *want) {
  size_t used;
  const char *got;
  int rc = parse(s, &used, &got);
  if (rc != 0 || used != strlen(s) || strcmp(got, want) != 0) {
    fprintf(stderr,
            "  parse of \"%s\": rc %d used %zu got \"%s\" want \"%s\"\n", s, rc,
            used, got, want);
    return 0;
  }
  return 1;
}

/* The n bytes at s give want_rc and msg: the message on an error, the
 * joined arguments on 0. */
static int gives(const char *s, size_t n, const resp_limits *lim, int want_rc,
                 const char *msg) {
  const char *got;
  int rc = parse_n(s, n, lim, NULL, &got);
  if (rc != want_rc || strcmp(got, msg) != 0) {
    fprintf(stderr, "  parse of \"%.*s\": rc %d \"%s\", want %d \"%s\"\n",
            (int)n, s, rc, got, want_rc, msg);
    return 0;
  }
  return 1;
}

/* ---- multibulk ---- */

static void test_multibulk(void) {
  size_t used;
  const char *args;
  const char *set = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
  CHECK(parse(set, &used, &args) == 0);
  CHECK(used == strlen(set));
  CHECK(strcmp(args, "SET|key|value") == 0);
  CHECK(cmd.argc == 3 && !cmd.is_inline);
  CHECK(cmd.err[0] == '\0');

  /* Empty and binary arguments; \r\n inside a bulk is data. */
  CHECK(parses_to("*2\r\n$0\r\n\r\n$4\r\na\r\nb\r\n", "|a\\x0d\\x0ab"));
  uint8_t bin[] = "*1\r\n$3\r\n\0\xff\x01\r\n";
  CHECK(parse_n(bin, sizeof(bin) - 1, NULL, &used, &args) == 0);
  CHECK(used == sizeof(bin) - 1 && strcmp(args, "\\x00\\xff\\x01") == 0);

  /* Trailing bytes are the next command's. */
  CHECK(parse("*1\r\n$4\r\nPING\r\n*1\r\n", &used, &args) == 0);
  CHECK(used == 14 && strcmp(args, "PING") == 0);

  /* A bulk string of exactly bulk_max bytes. */
  resp_limits lim = resp_limits_default;
  lim.bulk_max = 5;
  const char *five = "*1\r\n$5\r\nabcde\r\n";
  CHECK(parse_n(five, strlen(five), &lim, &used, &args) == 0);
  CHECK(strcmp(args, "abcde") == 0);
}

static void test_empty_commands(void) {
  const char *empty[] = {"*0\r\n", "*-1\r\n",   "*-5\r\n", "\r\n",
                         "\n",     "   \t\r\n", " \v\f \n"};
  for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
    size_t used;
    const char *args;
    CHECK(parse(empty[i], &used, &args) == 0);
    CHECK(used == strlen(empty[i]));
    CHECK(cmd.argc == 0);
    resp_iter it;
    kv_slice a;
    resp_iter_init(&it, &cmd);
    CHECK(resp_iter_next(&it, &a) == KV_ENOTFOUND);
  }
}

/* ---- prefixes and feeding ---- */

static const char *valid[] = {
    "*1\r\n$4\r\nPING\r\n",
    "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n",
    "*2\r\n$3\r\nGET\r\n$10\r\n0123456789\r\n",
    "*0\r\n",
    "*-1\r\n",
    "PING\r\n",
    "PING\n",
    "set \"a b\" 'c d'\r\n",
    "set \"\\x41\\n\" x\"y z\"\n",
    "\r\n",
    "  \n",
};

/* Every strict prefix of each valid command is KV_EAGAIN, with need beyond
 * it; with a resp_resume fed the growing prefixes the whole then parses to
 * what a fresh resp_parse gives. */
static void test_prefixes(void) {
  for (size_t v = 0; v < sizeof(valid) / sizeof(valid[0]); v++) {
    const char *s = valid[v];
    size_t n = strlen(s), used;
    const char *args;
    char want[JOINED_MAX];
    CHECK(parse(s, &used, &args) == 0 && used == n);
    kv_strcopy(want, sizeof(want), args);
    uint32_t want_argc = cmd.argc;

    int bad = 0;
    for (size_t k = 0; k < n; k++) {
      /* parse_n checks that nothing was consumed. */
      if (parse_n(s, k, NULL, NULL, &args) != KV_EAGAIN || cmd.need <= k)
        bad++;
    }
    CHECK(bad == 0);

    resp_resume rs = RESP_RESUME_INIT;
    uint8_t *copy = malloc(n);
    memcpy(copy, s, n);
    resp_cmd_init(&cmd, scratch, sizeof(scratch));
    for (size_t k = 0; k < n; k++)
      if (resp_parse_resume(&rs, copy, k, NULL, &cmd, &used) != KV_EAGAIN)
        bad++;
    CHECK(bad == 0);
    CHECK(resp_parse_resume(&rs, copy, n, NULL, &cmd, &used) == 0);
    CHECK(used == n && cmd.argc == want_argc);
    CHECK(strcmp(joined(&cmd), want) == 0);
    CHECK(rs.len == 0); /* reset for the next command */
    free(copy);
  }
}

/* The stream of all valid commands, feeding one byte at a time into a
 * kvbuf that is consumed as commands complete (so the bytes move), as a
 * connection would; with resp_parse and with resp_parse_resume. */
static void test_byte_at_a_time(void) {
  kvbuf stream;
  kvbuf_init(&stream);
  size_t nvalid = sizeof(valid) / sizeof(valid[0]);
  for (size_t v = 0; v < nvalid; v++)
    kvbuf_append(&stream, valid[v], strlen(valid[v]));

  for (int resume = 0; resume < 2; resume++) {
    kvbuf in;
    kvbuf_init(&in);
    resp_resume rs = RESP_RESUME_INIT;
    size_t got = 0;
    int bad = 0;
    for (size_t i = 0; i < stream.len; i++) {
      kvbuf_append(&in, stream.data + i, 1);
      for (;;) {
        size_t used;
        resp_cmd_init(&cmd, scratch, sizeof(scratch));
        int rc =
            resume ? resp_parse_resume(&rs, in.data, in.len, NULL, &cmd, &used)
                   : resp_parse(in.data, in.len, NULL, &cmd, &used);
        if (rc == KV_EAGAIN)
          break;
        if (rc != 0 || got >= nvalid || used != strlen(valid[got])) {
          bad++;
          break;
        }
        char want[JOINED_MAX];
        kv_strcopy(want, sizeof(want), joined(&cmd));
        const char *args;
        parse(valid[got], NULL, &args);
        if (strcmp(args, want) != 0)
          bad++;
        got++;
        kvbuf_consume(&in, used);
      }
    }
    CHECK(bad == 0);
    CHECK(got == nvalid);
    CHECK(in.len == 0);
    kvbuf_free(&in);
  }
  kvbuf_free(&stream);
}

/* Commands back to back in one buffer. */
static void test_pipelined(void) {
  const char *s = "*1\r\n$4\r\nPING\r\nECHO hi\r\n\r\n*2\r\n$3\r\nGET\r\n"
                  "$1\r\nk\r\n*0\r\nQUIT\n";
  const char *want[] = {"PING", "ECHO|hi", "", "GET|k", "", "QUIT"};
  size_t n = strlen(s), off = 0, i = 0;
  while (off < n && i < 6) {
    size_t used;
    const char *args;
    CHECK(parse_n(s + off, n - off, NULL, &used, &args) == 0);
    CHECK(strcmp(args, want[i]) == 0);
    off += used;
    i++;
  }
  CHECK(off == n && i == 6);
}

/* ---- inline ---- */

static void test_inline(void) {
  CHECK(parses_to("PING\r\n", "PING"));
  CHECK(cmd.is_inline && cmd.argc == 1);
  CHECK(parses_to("PING\n", "PING"));
  CHECK(parses_to("set a b\n", "set|a|b"));
  CHECK(parses_to("  set\t a   b  \r\n", "set|a|b"));
  CHECK(parses_to("a\rb\n", "a|b"));                 /* \r inside is a blank */
  CHECK(parses_to("a\vb\n", "a\\x0bb"));             /* \v inside an argument */
  CHECK(parses_to("\va\fb\n", "a\\x0cb"));           /* \v, \f between */
  CHECK(parses_to("x\r\r\n", "x"));                  /* one \r stripped */
  CHECK(gives("a\0b c\n", 6, NULL, 0, "a\\x00b|c")); /* NUL: a byte */

  /* Double quotes and their escapes. */
  CHECK(parses_to("set \"a b\" c\n", "set|a b|c"));
  CHECK(parses_to("\"\"\n", ""));
  CHECK(cmd.argc == 1 && cmd.argv[0].len == 0);
  CHECK(parses_to("\"\" \"\"\n", "|"));
  CHECK(parses_to("\"\\n\\r\\t\\b\\a\\\\\\\"\"\n",
                  "\\x0a\\x0d\\x09\\x08\\x07\\x5c\""));
  CHECK(parses_to("\"\\x41\\x7a\\xfF\\x00\"\n", "Az\\xff\\x00"));
  CHECK(parses_to("\"\\xZZ\"\n", "xZZ")); /* not hex: \x is x */
  CHECK(parses_to("\"\\x4\"\n", "x4"));   /* one digit: \x is x */
  CHECK(parses_to("\"\\q\\'\"\n", "q'")); /* any other byte stands as is */
  CHECK(parses_to("\"it's\"\n", "it's"));

  /* Single quotes: only \' is an escape. */
  CHECK(parses_to("'a b'\n", "a b"));
  CHECK(parses_to("'\\n\\x41'\n", "\\x5cn\\x5cx41"));
  CHECK(parses_to("'it\\'s'\n", "it's"));
  CHECK(parses_to("'say \"hi\"'\n", "say \"hi\""));

  /* A quote inside an unquoted argument opens a quoted part of it. */
  CHECK(parses_to("foo\"bar baz\" x\n", "foobar baz|x"));
  CHECK(parses_to("k='v w'\n", "k=v w"));

  /* Closing quote then a blank or the end; \r before \n is stripped. */
  CHECK(parses_to("\"a\"\t\"b\"\r\n", "a|b"));
  CHECK(parses_to("\"a\"\r\n", "a"));

  /* Arguments point into buf unless decoded. */
  const char *s = "get \"key\" 'k2' a\"b\"\n";
  uint8_t *copy = (uint8_t *)strdup(s);
  size_t used;
  resp_cmd_init(&cmd, scratch, sizeof(scratch));
  CHECK(resp_parse(copy, strlen(s), NULL, &cmd, &used) == 0);
  CHECK(cmd.argc == 4);
  CHECK(cmd.argv[0].ptr == copy && cmd.argv[0].len == 3);
  CHECK(cmd.argv[1].ptr == copy + 5 && cmd.argv[1].len == 3);
  CHECK(cmd.argv[2].ptr == copy + 11 && cmd.argv[2].len == 2);
  CHECK(cmd.argv[3].ptr == scratch && cmd.argv[3].len == 2);
  CHECK(memcmp(cmd.argv[3].ptr, "ab", 2) == 0);
  free(copy);

  /* Unbalanced quotes. */
  const char *bad[] = {"\"abc\n",   "'abc\n",       "\"a\"b\n", "'a'b\n",
                       "\"a\\\"\n", "x \"\\\"\r\n", "\"\\\n",   "a\"b\n",
                       "'\\'\n",    "\"a\"\"b\"\n"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    CHECK(gives(bad[i], strlen(bad[i]), NULL, KV_EPROTO,
                "Protocol error: unbalanced quotes in request"));
}

/* Decoded arguments need scratch; without enough of it they fail. */
static void test_inline_scratch(void) {
  const char *plain = "set \"a\" 'b' c\n";
  const char *esc = "set \"a\\nb\" c\n";
  size_t used;
  uint8_t *copy = (uint8_t *)strdup(esc);

  resp_cmd_init(&cmd, NULL, 0);
  CHECK(resp_parse((const uint8_t *)plain, strlen(plain), NULL, &cmd, &used) ==
        0);
  CHECK(cmd.argc == 4);
  CHECK(resp_parse(copy, strlen(esc), NULL, &cmd, &used) == KV_ETOOBIG);
  CHECK(strcmp(cmd.err, "Protocol error: too big inline request") == 0);

  uint8_t small[3];
  resp_cmd_init(&cmd, small, sizeof(small));
  CHECK(resp_parse(copy, strlen(esc), NULL, &cmd, &used) == 0);
  CHECK(cmd.argc == 3 && cmd.argv[1].ptr == small && cmd.argv[1].len == 3);
  uint8_t tiny[2]; /* "a\nb" moves after a\n and runs out at b */
  resp_cmd_init(&cmd, tiny, sizeof(tiny));
  CHECK(resp_parse(copy, strlen(esc), NULL, &cmd, &used) == KV_ETOOBIG);
  resp_cmd_init(&cmd, small, sizeof(small));
  const char *two = "\"a\\n\" \"b\\n\"\n"; /* 4 decoded bytes */
  CHECK(resp_parse((const uint8_t *)two, strlen(two), NULL, &cmd, &used) ==
        KV_ETOOBIG);
  free(copy);
}

static void test_inline_limits(void) {
  resp_limits lim = resp_limits_default;
  lim.inline_max = 8;
  /* 8 bytes before the \n are fine, 9 are not, whether or not the \n has
   * arrived. */
  CHECK(gives("abcdefgh\n", 9, &lim, 0, "abcdefgh"));
  CHECK(gives("abcdefg\r\n", 9, &lim, 0, "abcdefg"));
  CHECK(gives("abcdefgh", 8, &lim, KV_EAGAIN, ""));
  CHECK(gives("abcdefghi\n", 10, &lim, KV_ETOOBIG,
              "Protocol error: too big inline request"));
  CHECK(gives("abcdefghi", 9, &lim, KV_ETOOBIG,
              "Protocol error: too big inline request"));
  CHECK(gives("abcdefgh\r\n", 10, &lim, KV_ETOOBIG,
              "Protocol error: too big inline request"));

  /* The default: 64 KiB. */
  size_t big = RESP_INLINE_MAX_DEFAULT + 2;
  char *line = malloc(big);
  memset(line, 'a', big);
  line[RESP_INLINE_MAX_DEFAULT] = '\n';
  size_t used;
  const char *args;
  CHECK(parse_n(line, RESP_INLINE_MAX_DEFAULT + 1, NULL, &used, &args) == 0);
  CHECK(used == RESP_INLINE_MAX_DEFAULT + 1 && cmd.argc == 1);
  CHECK(parse_n(line, RESP_INLINE_MAX_DEFAULT, NULL, &used, &args) ==
        KV_EAGAIN);
  line[RESP_INLINE_MAX_DEFAULT] = 'a';
  CHECK(parse_n(line, RESP_INLINE_MAX_DEFAULT + 1, NULL, &used, &args) ==
        KV_ETOOBIG);

  /* At most RESP_ARGV_MAX inline arguments (and args_max). */
  size_t n = 2 * (RESP_ARGV_MAX + 1);
  for (size_t i = 0; i < n; i += 2) {
    line[i] = 'x';
    line[i + 1] = ' ';
  }
  line[2 * RESP_ARGV_MAX - 1] = '\n';
  CHECK(parse_n(line, 2 * RESP_ARGV_MAX, NULL, &used, &args) == 0);
  CHECK(cmd.argc == RESP_ARGV_MAX);
  line[2 * RESP_ARGV_MAX - 1] = ' ';
  line[n - 1] = '\n';
  CHECK(gives(line, n, NULL, KV_ETOOBIG,
              "Protocol error: too many arguments in inline request"));
  lim = resp_limits_default;
  lim.args_max = 2;
  CHECK(gives("a b\n", 4, &lim, 0, "a|b"));
  CHECK(gives("a b c\n", 6, &lim, KV_ETOOBIG,
              "Protocol error: too many arguments in inline request"));
  free(line);
}

/* ---- malformed input and limits ---- */

static void test_malformed(void) {
  static const struct {
    const char *in;
    int rc;
    const char *msg;
  } cases[] = {
      {"*abc\r\n", KV_EPROTO, "Protocol error: invalid multibulk length"},
      {"*\r\n", KV_EPROTO, "Protocol error: invalid multibulk length"},
      {"*-\r\n", KV_EPROTO, "Protocol error: invalid multibulk length"},
      {"*-0\r\n", KV_EPROTO, "Protocol error: invalid multibulk length"},
      {"*01\r\n", KV_EPROTO, "Protocol error: invalid multibulk length"},
      {"*1\n", KV_EPROTO, "Protocol error: invalid multibulk length"},
      {"*1\rx", KV_EPROTO, "Protocol error: invalid multibulk length"},
      {"*1 \r\n", KV_EPROTO, "Protocol error: invalid multibulk length"},
      {"*-99999999999999999999\r\n", KV_EPROTO,
       "Protocol error: invalid multibulk length"},
      {"*3\r\nx", KV_EPROTO, "Protocol error: expected '$', got 'x'"},
      {"*1\r\n:1\r\n", KV_EPROTO, "Protocol error: expected '$', got ':'"},
      {"*1\r\n*1\r\n", KV_EPROTO, "Protocol error: expected '$', got '*'"},
      {"*1\r\n\r\n", KV_EPROTO, "Protocol error: expected '$', got '\\x0d'"},
      {"*1\r\n ", KV_EPROTO, "Protocol error: expected '$', got '\\x20'"},
      {"*1\r\n$abc\r\n", KV_EPROTO, "Protocol error: invalid bulk length"},
      {"*1\r\n$\r\n", KV_EPROTO, "Protocol error: invalid bulk length"},
      {"*1\r\n$-1\r\n", KV_EPROTO, "Protocol error: invalid bulk length"},
      {"*1\r\n$01\r\n", KV_EPROTO, "Protocol error: invalid bulk length"},
      {"*1\r\n$1\n", KV_EPROTO, "Protocol error: invalid bulk length"},
      {"*1\r\n$1\r\nab\r\n", KV_EPROTO,
       "Protocol error: bulk data not followed by CRLF"},
      {"*1\r\n$1\r\na\rx", KV_EPROTO,
       "Protocol error: bulk data not followed by CRLF"},
      {"*1\r\n$1\r\na\n", KV_EPROTO,
       "Protocol error: bulk data not followed by CRLF"},
      {"*2\r\n$1\r\na\r\n$x", KV_EPROTO, "Protocol error: invalid bulk length"},
      /* Over the limits, decided before the bytes arrive. */
      {"*1048577\r\n", KV_ETOOBIG, "Protocol error: invalid multibulk length"},
      {"*1048577", KV_ETOOBIG, "Protocol error: invalid multibulk length"},
      {"*99999999999999999999999", KV_ETOOBIG,
       "Protocol error: invalid multibulk length"},
      {"*1\r\n$536870913\r\n", KV_ETOOBIG,
       "Protocol error: invalid bulk length"},
      {"*1\r\n$999999999999", KV_ETOOBIG,
       "Protocol error: invalid bulk length"},
      {"*1\r\n$99999999999999999999999999", KV_ETOOBIG,
       "Protocol error: invalid bulk length"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    CHECK(gives(cases[i].in, strlen(cases[i].in), NULL, cases[i].rc,
                cases[i].msg));

  /* Right at the limits the parse waits for the bytes, and need says how
   * many. */
  const char *args;
  CHECK(parse("*1048576\r\n", NULL, &args) == KV_EAGAIN);
  CHECK(parse("*1\r\n$536870912\r\n", NULL, &args) == KV_EAGAIN);
  CHECK(cmd.need == 16 + 536870912ull + 2);
  CHECK(parse("*1\r\n$536870912\r\nabc", NULL, &args) == KV_EAGAIN);
  CHECK(cmd.need == 16 + 536870912ull + 2);

  /* Small limits. */
  resp_limits lim = {2, 3, 64};
  CHECK(gives("*2\r\n$3\r\nabc\r\n$0\r\n\r\n", 19, &lim, 0, "abc|"));
  CHECK(gives("*3\r\n", 4, &lim, KV_ETOOBIG,
              "Protocol error: invalid multibulk length"));
  CHECK(gives("*1\r\n$4", 6, &lim, KV_ETOOBIG,
              "Protocol error: invalid bulk length"));
  lim.args_max = 0;
  CHECK(gives("*0\r\n", 4, &lim, 0, ""));
  CHECK(gives("*1", 2, &lim, KV_ETOOBIG,
              "Protocol error: invalid multibulk length"));
  lim.args_max = 1;
  lim.bulk_max = 0;
  CHECK(gives("*1\r\n$0\r\n\r\n", 10, &lim, 0, ""));
  CHECK(gives("*1\r\n$1", 6, &lim, KV_ETOOBIG,
              "Protocol error: invalid bulk length"));
  lim.bulk_max = UINT64_MAX;
  CHECK(gives("*1\r\n$18446744073709551615\r\n", 27, &lim, KV_EAGAIN, ""));
  CHECK(gives("*1\r\n$18446744073709551616", 25, &lim, KV_ETOOBIG,
              "Protocol error: invalid bulk length"));
}

/* ---- many arguments ---- */

static void test_many_args(void) {
  enum { N = 3001 };
  kvbuf b;
  kvbuf_init(&b);
  resp_add_array(&b, N);
  resp_add_bulk(&b, "MSET", 4);
  for (int i = 1; i < N; i++) {
    char arg[16];
    int n = snprintf(arg, sizeof(arg), "k%d", i);
    resp_add_bulk(&b, arg, (size_t)n);
  }
  size_t used;
  resp_cmd_init(&cmd, scratch, sizeof(scratch));
  CHECK(resp_parse(b.data, b.len, NULL, &cmd, &used) == 0);
  CHECK(used == b.len && cmd.argc == N);
  CHECK(resp_cmd_is(&cmd, "mset"));

  /* The iterator gives argv, then the rest from buf. */
  int bad = 0;
  resp_iter it;
  kv_slice a;
  resp_iter_init(&it, &cmd);
  for (int i = 0; i < N; i++) {
    char want[16];
    int n = i ? snprintf(want, sizeof(want), "k%d", i)
              : snprintf(want, sizeof(want), "MSET");
    if (resp_iter_next(&it, &a) != 0 || a.len != (size_t)n ||
        memcmp(a.ptr, want, a.len) != 0)
      bad++;
    if (i < RESP_ARGV_MAX && (a.ptr != cmd.argv[i].ptr))
      bad++;
    kv_slice r = resp_cmd_arg(&cmd, (uint32_t)i);
    if (r.ptr != a.ptr || r.len != a.len)
      bad++;
  }
  CHECK(bad == 0);
  CHECK(resp_iter_next(&it, &a) == KV_ENOTFOUND);
  CHECK(resp_cmd_arg(&cmd, N).ptr == NULL);
  CHECK(resp_cmd_arg(&cmd, N).len == 0);

  /* The same, arriving in pieces, with resp_parse_resume. */
  char want[JOINED_MAX];
  kv_strcopy(want, sizeof(want), joined(&cmd));
  resp_resume rs = RESP_RESUME_INIT;
  size_t steps[] = {1, 7, 100, 1000, 4096};
  for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
    int rc = KV_EAGAIN;
    size_t k = 0;
    resp_cmd_init(&cmd, scratch, sizeof(scratch));
    while (rc == KV_EAGAIN && k < b.len) {
      k = k + steps[s] < b.len ? k + steps[s] : b.len;
      rc = resp_parse_resume(&rs, b.data, k, NULL, &cmd, &used);
    }
    CHECK(rc == 0 && k == b.len && used == b.len && cmd.argc == N);
    CHECK(strcmp(joined(&cmd), want) == 0);
    CHECK(resp_cmd_arg(&cmd, N - 1).len == 5);
  }

  /* A resume record that does not fit the buffer is dropped. */
  rs = (resp_resume)RESP_RESUME_INIT;
  CHECK(resp_parse_resume(&rs, b.data, b.len - 1, NULL, &cmd, &used) ==
        KV_EAGAIN);
  const char *ping = "*1\r\n$4\r\nPING\r\n";
  CHECK(resp_parse_resume(&rs, (const uint8_t *)ping, strlen(ping), NULL, &cmd,
                          &used) == 0);
  CHECK(used == strlen(ping) && resp_cmd_is(&cmd, "PING"));
  /* A buffer that changed between calls, against the promise, in a way
   * the argv walk notices: the answer is the fresh parse's. */
  const char *before = "*2\r\n$1\r\na\r\n$3\r\nab";
  const char *after = "*2\r\n$1\r\nX\rY$1\r\nb\r\n";
  rs = (resp_resume)RESP_RESUME_INIT;
  CHECK(resp_parse_resume(&rs, (const uint8_t *)before, strlen(before), NULL,
                          &cmd, &used) == KV_EAGAIN);
  CHECK(rs.argi == 1);
  CHECK(resp_parse_resume(&rs, (const uint8_t *)after, strlen(after), NULL,
                          &cmd, &used) == KV_EPROTO);
  CHECK(strcmp(cmd.err, "Protocol error: bulk data not followed by CRLF") == 0);
  CHECK(rs.len == 0);
  kvbuf_free(&b);
}

static void test_names(void) {
  kv_slice get = {(const uint8_t *)"gEt", 3};
  CHECK(resp_arg_is(get, "GET"));
  CHECK(resp_arg_is(get, "get"));
  CHECK(!resp_arg_is(get, "GETS"));
  CHECK(!resp_arg_is(get, "GE"));
  kv_slice empty = {NULL, 0};
  CHECK(resp_arg_is(empty, ""));
  kv_slice odd = {(const uint8_t *)"\xc1", 1};
  CHECK(!resp_arg_is(odd, "A"));
  size_t used;
  resp_cmd_init(&cmd, scratch, sizeof(scratch));
  CHECK(resp_parse((const uint8_t *)"Ping x\n", 7, NULL, &cmd, &used) == 0);
  CHECK(resp_cmd_is(&cmd, "PING") && !resp_cmd_is(&cmd, "PIN"));
  CHECK(resp_parse((const uint8_t *)"\n", 1, NULL, &cmd, &used) == 0);
  CHECK(!resp_cmd_is(&cmd, ""));
}

/* ---- writer ---- */

/* b holds exactly the bytes want (n of them); clears b. */
static int bytes_are(kvbuf *b, const char *want, size_t n) {
  int ok = b->len == n && memcmp(b->data, want, n) == 0 && !b->oom;
  if (!ok)
    fprintf(stderr, "  got \"%.*s\", want \"%.*s\"\n", (int)b->len,
            (const char *)b->data, (int)n, want);
  b->len = 0;
  return ok;
}
#define BYTES_ARE(b, lit) bytes_are((b), (lit), sizeof(lit) - 1)

static void test_writer(void) {
  kvbuf b;
  kvbuf_init(&b);
  CHECK(resp_add_simple(&b, "OK") == 0 && BYTES_ARE(&b, "+OK\r\n"));
  CHECK(resp_add_simple(&b, "a\r\nb") == 0 && BYTES_ARE(&b, "+a  b\r\n"));
  CHECK(resp_add_error(&b, "ERR unknown command 'x'") == 0);
  CHECK(BYTES_ARE(&b, "-ERR unknown command 'x'\r\n"));
  CHECK(resp_add_error(&b, "QUORUM 1 of 2\r\nreplicas\n") == 0);
  CHECK(BYTES_ARE(&b, "-QUORUM 1 of 2  replicas \r\n"));
  CHECK(resp_add_error(&b, "") == 0 && BYTES_ARE(&b, "-\r\n"));
  CHECK(resp_add_errorf(&b, "ERR %s %d", "bad\nthing", 7) == 0);
  CHECK(BYTES_ARE(&b, "-ERR bad thing 7\r\n"));
  char longmsg[2 * RESP_ERRLINE_MAX];
  memset(longmsg, 'e', sizeof(longmsg) - 1);
  longmsg[sizeof(longmsg) - 1] = '\0';
  CHECK(resp_add_errorf(&b, "%s", longmsg) == 0);
  CHECK(b.len == RESP_ERRLINE_MAX - 1 + 3);
  b.len = 0;

  CHECK(resp_add_int(&b, 0) == 0 && BYTES_ARE(&b, ":0\r\n"));
  CHECK(resp_add_int(&b, -42) == 0 && BYTES_ARE(&b, ":-42\r\n"));
  CHECK(resp_add_int(&b, INT64_MAX) == 0);
  CHECK(BYTES_ARE(&b, ":9223372036854775807\r\n"));
  CHECK(resp_add_int(&b, INT64_MIN) == 0);
  CHECK(BYTES_ARE(&b, ":-9223372036854775808\r\n"));

  CHECK(resp_add_bulk(&b, "hello", 5) == 0 && BYTES_ARE(&b, "$5\r\nhello\r\n"));
  CHECK(resp_add_bulk(&b, "", 0) == 0 && BYTES_ARE(&b, "$0\r\n\r\n"));
  CHECK(resp_add_bulk(&b, NULL, 0) == 0 && BYTES_ARE(&b, "$0\r\n\r\n"));
  CHECK(resp_add_bulk(&b, "a\r\n\0", 4) == 0);
  CHECK(BYTES_ARE(&b, "$4\r\na\r\n\0\r\n"));

  CHECK(resp_add_null(&b, RESP_PROTO2) == 0 && BYTES_ARE(&b, "$-1\r\n"));
  CHECK(resp_add_null(&b, RESP_PROTO3) == 0 && BYTES_ARE(&b, "_\r\n"));
  CHECK(resp_add_null_array(&b, RESP_PROTO2) == 0 && BYTES_ARE(&b, "*-1\r\n"));
  CHECK(resp_add_null_array(&b, RESP_PROTO3) == 0 && BYTES_ARE(&b, "_\r\n"));
  CHECK(resp_add_array(&b, 0) == 0 && BYTES_ARE(&b, "*0\r\n"));
  CHECK(resp_add_array(&b, 12345) == 0 && BYTES_ARE(&b, "*12345\r\n"));
  CHECK(resp_add_map(&b, RESP_PROTO3, 3) == 0 && BYTES_ARE(&b, "%3\r\n"));
  CHECK(resp_add_map(&b, RESP_PROTO2, 3) == 0 && BYTES_ARE(&b, "*6\r\n"));

  CHECK(resp_add_double(&b, RESP_PROTO3, 1.5) == 0 &&
        BYTES_ARE(&b, ",1.5\r\n"));
  CHECK(resp_add_double(&b, RESP_PROTO3, 0.1) == 0 &&
        BYTES_ARE(&b, ",0.1\r\n"));
  CHECK(resp_add_double(&b, RESP_PROTO3, 3) == 0 && BYTES_ARE(&b, ",3\r\n"));
  CHECK(resp_add_double(&b, RESP_PROTO3, -2.5e-300) == 0);
  CHECK(BYTES_ARE(&b, ",-2.5e-300\r\n"));
  CHECK(resp_add_double(&b, RESP_PROTO3, 1.0 / 3) == 0);
  CHECK(BYTES_ARE(&b, ",0.3333333333333333\r\n"));
  CHECK(resp_add_double(&b, RESP_PROTO3, INFINITY) == 0);
  CHECK(BYTES_ARE(&b, ",inf\r\n"));
  CHECK(resp_add_double(&b, RESP_PROTO3, -INFINITY) == 0);
  CHECK(BYTES_ARE(&b, ",-inf\r\n"));
  CHECK(resp_add_double(&b, RESP_PROTO3, NAN) == 0);
  CHECK(BYTES_ARE(&b, ",nan\r\n"));
  CHECK(resp_add_double(&b, RESP_PROTO2, 1.5) == 0);
  CHECK(BYTES_ARE(&b, "$3\r\n1.5\r\n"));
  CHECK(resp_add_double(&b, RESP_PROTO2, -INFINITY) == 0);
  CHECK(BYTES_ARE(&b, "$4\r\n-inf\r\n"));

  CHECK(resp_add_bool(&b, RESP_PROTO3, true) == 0 && BYTES_ARE(&b, "#t\r\n"));
  CHECK(resp_add_bool(&b, RESP_PROTO3, false) == 0 && BYTES_ARE(&b, "#f\r\n"));
  CHECK(resp_add_bool(&b, RESP_PROTO2, true) == 0 && BYTES_ARE(&b, ":1\r\n"));
  CHECK(resp_add_bool(&b, RESP_PROTO2, false) == 0 && BYTES_ARE(&b, ":0\r\n"));

  const char *info = "# Server\r\nkvorum:1\r\n";
  CHECK(resp_add_verbatim(&b, RESP_PROTO3, "txt", info, strlen(info)) == 0);
  CHECK(BYTES_ARE(&b, "=24\r\ntxt:# Server\r\nkvorum:1\r\n\r\n"));
  CHECK(resp_add_verbatim(&b, RESP_PROTO2, "txt", info, strlen(info)) == 0);
  CHECK(BYTES_ARE(&b, "$20\r\n# Server\r\nkvorum:1\r\n\r\n"));

  /* A reply built from several writers parses back as a command when it
   * is an array of bulk strings: the writer and parser agree. */
  resp_add_array(&b, 2);
  resp_add_bulk(&b, "GET", 3);
  resp_add_bulk(&b, "k\r\n", 3);
  size_t used;
  resp_cmd_init(&cmd, scratch, sizeof(scratch));
  CHECK(resp_parse(b.data, b.len, NULL, &cmd, &used) == 0 && used == b.len);
  CHECK(strcmp(joined(&cmd), "GET|k\\x0d\\x0a") == 0);

  /* Out of memory is sticky and reported. */
  b.oom = 1;
  CHECK(resp_add_simple(&b, "OK") == KV_ENOMEM);
  CHECK(resp_add_bulk(&b, "x", 1) == KV_ENOMEM);
  CHECK(resp_add_int(&b, 1) == KV_ENOMEM);
  kvbuf_free(&b);
}

/* ---- random streams ---- */

static uint64_t rnd(uint64_t *s) {
  /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* The seed of this run's random tests: KV_TEST_SEED or the time and pid;
 * printed once. */
static uint64_t run_seed(void) {
  static uint64_t seed;
  if (seed)
    return seed;
  seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
  const char *env = getenv("KV_TEST_SEED");
  if (env)
    seed = strtoull(env, NULL, 0);
  if (!seed)
    seed = 1;
  printf("test_resp random seed %" PRIu64 " (KV_TEST_SEED to replay)\n", seed);
  return seed;
}

/* Appends arg as an inline argument: bare when it can be, else in double
 * or single quotes with escapes. */
static void add_inline_arg(kvbuf *b, const uint8_t *arg, size_t n,
                           uint64_t *s) {
  int bare = n > 0 && arg[0] != '*'; /* '*' would start a multibulk */
  for (size_t i = 0; i < n; i++)
    if (arg[i] <= ' ' || arg[i] >= 0x7f || arg[i] == '"' || arg[i] == '\'')
      bare = 0;
  if (bare && rnd(s) % 2) {
    kvbuf_append(b, arg, n);
    return;
  }
  kvbuf_append(b, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    uint8_t c = arg[i];
    char e[8];
    int k;
    if (c == '"' || c == '\\')
      k = snprintf(e, sizeof(e), "\\%c", c);
    else if (c == '\n')
      k = snprintf(e, sizeof(e), "\\n");
    else if (c >= ' ' && c < 0x7f)
      k = snprintf(e, sizeof(e), "%c", c);
    else
      k = snprintf(e, sizeof(e), rnd(s) % 2 ? "\\x%02x" : "\\x%02X", c);
    kvbuf_append(b, e, (size_t)k);
  }
  kvbuf_append(b, "\"", 1);
}

/* Random commands, written multibulk or inline, pipelined, then fed in
 * random pieces (parse, consume, move) with resp_parse_resume: each comes
 * back whole and equal. */
static void test_random(void) {
  uint64_t s = run_seed();
  int bad = 0;
  static char want[RANDOM_CMDS_MAX][JOINED_MAX];
  for (int round = 0; round < RANDOM_ROUNDS; round++) {
    kvbuf stream;
    kvbuf_init(&stream);
    int ncmds = 1 + (int)(rnd(&s) % RANDOM_CMDS_MAX);
    for (int c = 0; c < ncmds; c++) {
      int inl = rnd(&s) % 3 == 0;
      int nargs = 1 + (int)(rnd(&s) % RANDOM_ARGS_MAX);
      uint8_t args[RANDOM_ARGS_MAX][RANDOM_ARG_MAX];
      size_t lens[RANDOM_ARGS_MAX];
      if (!inl)
        resp_add_array(&stream, (size_t)nargs);
      for (int a = 0; a < nargs; a++) {
        lens[a] = rnd(&s) % RANDOM_ARG_MAX;
        int printable = rnd(&s) % 2;
        for (size_t k = 0; k < lens[a]; k++)
          args[a][k] =
              printable ? (uint8_t)('a' + rnd(&s) % 26) : (uint8_t)rnd(&s);
        if (inl) {
          const char *sep = rnd(&s) % 2 ? " " : " \t ";
          if (a)
            kvbuf_append(&stream, sep, strlen(sep));
          add_inline_arg(&stream, args[a], lens[a], &s);
        } else {
          resp_add_bulk(&stream, args[a], lens[a]);
        }
      }
      if (inl) {
        const char *eol = rnd(&s) % 2 ? "\r\n" : "\n";
        kvbuf_append(&stream, eol, strlen(eol));
      }
      /* The joined form, as joined() writes it. */
      resp_cmd one;
      one.argc = (uint32_t)nargs;
      one.resp__rest = NULL;
      for (int a = 0; a < nargs; a++) {
        one.argv[a].ptr = args[a];
        one.argv[a].len = lens[a];
      }
      kv_strcopy(want[c], JOINED_MAX, joined(&one));
    }

    kvbuf in;
    kvbuf_init(&in);
    resp_resume rs = RESP_RESUME_INIT;
    size_t fed = 0;
    int got = 0;
    while (fed < stream.len) {
      size_t piece = 1 + rnd(&s) % (rnd(&s) % 2 ? 8 : 200);
      if (piece > stream.len - fed)
        piece = stream.len - fed;
      kvbuf_append(&in, stream.data + fed, piece);
      fed += piece;
      for (;;) {
        size_t used;
        resp_cmd_init(&cmd, scratch, sizeof(scratch));
        int rc = resp_parse_resume(&rs, in.data, in.len, NULL, &cmd, &used);
        if (rc == KV_EAGAIN)
          break;
        if (rc != 0 || got >= ncmds || strcmp(joined(&cmd), want[got]) != 0) {
          fprintf(stderr, "  round %d command %d: rc %d \"%s\" want \"%s\"\n",
                  round, got, rc, joined(&cmd), got < ncmds ? want[got] : "");
          bad++;
          break;
        }
        got++;
        kvbuf_consume(&in, used);
      }
      if (bad)
        break;
    }
    if (got != ncmds || in.len != 0)
      bad++;
    kvbuf_free(&in);
    kvbuf_free(&stream);
    if (bad)
      break;
  }
  CHECK(bad == 0);
}

int main(void) {
  test_multibulk();
  test_empty_commands();
  test_prefixes();
  test_byte_at_a_time();
  test_pipelined();
  test_inline();
  test_inline_scratch();
  test_inline_limits();
  test_malformed();
  test_many_args();
  test_names();
  test_writer();
  test_random();
  return check_summary(NULL);
}
