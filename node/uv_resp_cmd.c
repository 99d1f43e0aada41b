/*
 * uv_resp_cmd.c: the Redis front end's commands that need no request to
 * the core (connection, server and introspection commands, KV.LEVELS) and
 * the parsing of levels (see uv_resp.c and docs/resp.md).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include "kv_err.h"
#include "store.h"
#include "uv_resp_int.h"


/* A decimal number of at most 9 digits. Returns 0 or -1. */
int uvr__uint(kv_slice s, uint32_t *out) {
  uint64_t v = 0;
  if (s.len == 0 || s.len > 9)
    return -1;
  for (size_t i = 0; i < s.len; i++) {
    if (s.ptr[i] < '0' || s.ptr[i] > '9')
      return -1;
    v = v * 10 + (uint64_t)(s.ptr[i] - '0');
  }
  *out = (uint32_t)v;
  return 0;
}

/* A level: a number or one/quorum/all/local_one/local_quorum/each_quorum.
 * Returns 0 or -1. */
int uvr__level(kv_slice s, int32_t *out) {
  static const struct {
    const char *name;
    int32_t q;
  } names[] = {{"one", WIRE_Q_ONE},
               {"quorum", WIRE_Q_QUORUM},
               {"all", WIRE_Q_ALL},
               {"local_one", WIRE_Q_LOCAL_ONE},
               {"local_quorum", WIRE_Q_LOCAL_QUORUM},
               {"each_quorum", WIRE_Q_EACH_QUORUM}};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (resp_arg_is(s, names[i].name)) {
      *out = names[i].q;
      return 0;
    }
  uint32_t v;
  if (uvr__uint(s, &v))
    return -1;
  *out = (int32_t)v;
  return 0;
}


/* Parses the option pairs of KV.* and KV.LEVELS from argument first on
 * into o (and *ctx for CONTEXT when ctx is not NULL). Returns NULL or the
 * error message. */
const char *uvr__options(const resp_cmd *cmd, uint32_t first,
                                wire_opts *o, kv_slice *ctx) {
  for (uint32_t i = first; i < cmd->argc; i += 2) {
    kv_slice k = resp_cmd_arg(cmd, i);
    if (i + 1 >= cmd->argc)
      return "ERR syntax error";
    kv_slice v = resp_cmd_arg(cmd, i + 1);
    int32_t *lvl = resp_arg_is(k, "R")    ? &o->r
                   : resp_arg_is(k, "W")  ? &o->w
                   : resp_arg_is(k, "DW") ? &o->dw
                   : resp_arg_is(k, "PR") ? &o->pr
                   : resp_arg_is(k, "PW") ? &o->pw
                                          : NULL;
    if (lvl) {
      if (uvr__level(v, lvl))
        return "ERR invalid level: expected a number or one, quorum, all, "
               "local_one, local_quorum, each_quorum";
    } else if (resp_arg_is(k, "TIMEOUT")) {
      if (uvr__uint(v, &o->timeout_ms))
        return "ERR TIMEOUT takes milliseconds";
    } else if (ctx && resp_arg_is(k, "CONTEXT")) {
      *ctx = v;
    } else {
      return "ERR syntax error";
    }
  }
  return NULL;
}


/* HELLO's and INFO's facts about this server. */
static void uvr__hello(uvn_conn *c, const resp_cmd *cmd, kvbuf *b) {
  uvr_conn *rc = c->resp;
  uvn *u = c->u;
  int proto = rc->proto;
  uint32_t i = 1;
  if (cmd->argc > 1) {
    uint32_t v;
    if (uvr__uint(resp_cmd_arg(cmd, 1), &v) || (v != 2 && v != 3)) {
      resp_add_error(b, "NOPROTO unsupported protocol version");
      return;
    }
    proto = (int)v;
    i = 2;
  }
  for (; i < cmd->argc; i++) {
    kv_slice a = resp_cmd_arg(cmd, i);
    if (resp_arg_is(a, "SETNAME") && i + 1 < cmd->argc) {
      kv_slice nm = resp_cmd_arg(cmd, ++i);
      size_t l = nm.len < UVR_NAME_MAX - 1 ? nm.len : UVR_NAME_MAX - 1;
      memcpy(rc->name, nm.ptr, l);
      rc->name[l] = 0;
    } else if (resp_arg_is(a, "AUTH") && i + 2 < cmd->argc) {
      i += 2; /* no users yet: every client is allowed */
    } else {
      resp_add_error(b, "ERR syntax error in HELLO option");
      return;
    }
  }
  rc->proto = proto;
  resp_add_map(b, proto, 7);
  resp_add_bulk(b, "server", 6);
  resp_add_bulk(b, "kvorum", 6);
  resp_add_bulk(b, "version", 7);
  resp_add_bulk(b, "7.0.0", 5);
  resp_add_bulk(b, "proto", 5);
  resp_add_int(b, proto);
  resp_add_bulk(b, "id", 2);
  resp_add_int(b, (int64_t)(c->id & 0x7fffffff));
  resp_add_bulk(b, "mode", 4);
  resp_add_bulk(b, "cluster", 7);
  resp_add_bulk(b, "role", 4);
  resp_add_bulk(b, "master", 6);
  resp_add_bulk(b, "node", 4);
  resp_add_bulk(b, u->id, strlen(u->id));
}

/* Appends printf-formatted text to b. */
static void uvr__textf(kvbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void uvr__textf(kvbuf *b, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  if (n > 0)
    kvbuf_append(b, line, (size_t)n < sizeof(line) ? (size_t)n
                                                   : sizeof(line) - 1);
}

/* INFO: server, clients, CPU, stats, keyspace (an estimate) and the
 * members of the cluster as this node sees them, in Redis's
 * "key:value" lines so tools and client libraries parse it. */
static void uvr__info(uvn_conn *c, kvbuf *b) {
  uvn *u = c->u;
  const gossip *g = node_gossip(u->core);
  size_t clients = 0, resp_clients = 0;
  for (uint32_t i = 0; i < UVN_CONNS_MAX; i++) {
    const uvn_conn *x = u->conns[i];
    if (x && !x->closing && x->kind == NODE_CONN_CLIENT) {
      clients++;
      resp_clients += x->resp != NULL;
    }
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  kvbuf t;
  kvbuf_init(&t);
  uvr__textf(&t,
             "# Server\r\nredis_version:7.0.0\r\nkvorum_version:0.1.0\r\n"
             "node_id:%s\r\nredis_mode:cluster\r\nprocess_id:%ld\r\n"
             "resp_proto:%d\r\n\r\n",
             u->id, (long)getpid(), c->resp->proto);
  uvr__textf(&t,
             "# Clients\r\nconnected_clients:%zu\r\nresp_clients:%zu\r\n"
             "\r\n",
             clients, resp_clients);
  uvr__textf(&t, "# CPU\r\nused_cpu_sys:%ld.%06ld\r\nused_cpu_user:%ld.%06ld\r\n\r\n",
             (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec,
             (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec);
  uvr__textf(&t, "# Stats\r\nrequests_in_flight:%zu\r\nhints_pending:%llu\r\n\r\n",
             node_requests_in_flight(u->core),
             (unsigned long long)node_hints_pending(u->core));
  uvr__textf(&t,
             "# Keyspace\r\ndb0:keys=%llu,expires=0,avg_ttl=0\r\n\r\n",
             (unsigned long long)store_estimate_keys(u->st));
  uvr__textf(&t, "# Cluster\r\ncluster_enabled:0\r\nkvorum_members:%zu\r\n",
             gossip_member_count(g));
  for (size_t i = 0; i < gossip_member_count(g); i++) {
    const gossip_member *m = gossip_member_at(g, i);
    uvr__textf(&t, "member_%s:state=%s,region=%s,peer=%s,client=%s\r\n",
               m->id, gossip_status_name(m->status, m->alive), m->region,
               m->peer_addr, m->client_addr);
  }
  resp_add_verbatim(b, c->resp->proto, "txt", t.data ? t.data : (uint8_t *)"",
                    t.len);
  kvbuf_free(&t);
}

/* The commands this front end knows: name, arity (negative: at least),
 * first key, last key (-1: the last argument), key step, and a summary
 * (COMMAND, COMMAND INFO, COMMAND DOCS). */
static const struct {
  const char *name;
  int arity, first, last, step;
  const char *summary;
} uvr__commands[] = {
    {"get", 2, 1, 1, 1, "the latest sibling's value of a key"},
    {"set", -3, 1, 1, 1, "replaces a key's value (NX, XX, GET, EX, PX)"},
    {"expire", 3, 1, 1, 1, "rewrites a key with a time to live (seconds)"},
    {"pexpire", 3, 1, 1, 1, "EXPIRE in milliseconds"},
    {"persist", 2, 1, 1, 1, "rewrites a key without a time to live"},
    {"ttl", 2, 1, 1, 1, "seconds left to live, -1 none, -2 no key"},
    {"pttl", 2, 1, 1, 1, "TTL in milliseconds"},
    {"del", -2, 1, -1, 1, "deletes keys, returns how many existed"},
    {"unlink", -2, 1, -1, 1, "DEL"},
    {"exists", -2, 1, -1, 1, "counts the keys that exist"},
    {"mget", -2, 1, -1, 1, "the values of several keys"},
    {"mset", -3, 1, -1, 2, "sets several keys (not atomically)"},
    {"getdel", 2, 1, 1, 1, "returns a key's value and deletes it"},
    {"type", 2, 1, 1, 1, "string, set, hash or none"},
    {"sadd", -3, 1, 1, 1, "adds members to a set (add-wins), returns how many are new"},
    {"srem", -3, 1, 1, 1, "removes the members the node has seen"},
    {"smembers", 2, 1, 1, 1, "a set's members (siblings joined)"},
    {"sismember", 3, 1, 1, 1, "1 when the member is in the set"},
    {"scard", 2, 1, 1, 1, "a set's size"},
    {"incrby", 3, 1, 1, 1, "adds to a counter (a PN counter), returns it"},
    {"decrby", 3, 1, 1, 1, "subtracts from a counter"},
    {"incr", 2, 1, 1, 1, "INCRBY key 1"},
    {"decr", 2, 1, 1, 1, "DECRBY key 1"},
    {"hset", -4, 1, 1, 1, "sets fields of a map, returns how many are new"},
    {"hget", 3, 1, 1, 1, "a field's newest value"},
    {"hgetall", 2, 1, 1, 1, "a map's fields and values"},
    {"hdel", -3, 1, 1, 1, "removes fields, returns how many were there"},
    {"hincrby", 4, 1, 1, 1, "adds to a counter field, returns it"},
    {"kv.get", -2, 1, 1, 1, "every sibling and the context of a key"},
    {"kv.put", -3, 1, 1, 1, "writes with a context, returns the new one"},
    {"kv.del", -2, 1, 1, 1, "deletes with a context, returns the new one"},
    {"kv.levels", -1, 0, 0, 0, "the connection's R, W, DW, PR, PW"},
    {"ping", -1, 0, 0, 0, "PONG"},
    {"echo", 2, 0, 0, 0, "the argument"},
    {"quit", 1, 0, 0, 0, "closes the connection"},
    {"select", 2, 0, 0, 0, "only database 0"},
    {"hello", -1, 0, 0, 0, "RESP2 or RESP3, and facts about the server"},
    {"auth", -2, 0, 0, 0, "logs in (AUTH [user] password; --auth-file)"},
    {"client", -2, 0, 0, 0, "SETNAME, GETNAME, ID, SETINFO, INFO"},
    {"command", -1, 0, 0, 0, "these commands"},
    {"config", -2, 0, 0, 0, "CONFIG GET"},
    {"info", -1, 0, 0, 0, "server, clients, CPU, stats, keyspace, cluster"},
    {"time", 1, 0, 0, 0, "the node's clock"},
    {"dbsize", 1, 0, 0, 0, "an estimate of this node's stored objects"},
};
#define UVR_NCOMMANDS (sizeof(uvr__commands) / sizeof(uvr__commands[0]))

static void uvr__command_info(kvbuf *b, size_t i) {
  resp_add_array(b, 6);
  resp_add_bulk(b, uvr__commands[i].name, strlen(uvr__commands[i].name));
  resp_add_int(b, uvr__commands[i].arity);
  resp_add_array(b, 0); /* flags */
  resp_add_int(b, uvr__commands[i].first);
  resp_add_int(b, uvr__commands[i].last);
  resp_add_int(b, uvr__commands[i].step);
}

static int uvr__command_find(kv_slice name) {
  for (size_t i = 0; i < UVR_NCOMMANDS; i++)
    if (resp_arg_is(name, uvr__commands[i].name))
      return (int)i;
  return -1;
}

/* Whether COMMAND DOCS cmd asks for command i (no names: all). */
static bool uvr__command_named(const resp_cmd *cmd, size_t i) {
  bool want = cmd->argc == 2;
  for (uint32_t a = 2; a < cmd->argc && !want; a++)
    want = resp_arg_is(resp_cmd_arg(cmd, a), uvr__commands[i].name);
  return want;
}

/* COMMAND, COMMAND COUNT, COMMAND INFO [name...], COMMAND DOCS [name...]. */
static void uvr__command(kvbuf *b, int proto, const resp_cmd *cmd) {
  kv_slice sub = resp_cmd_arg(cmd, 1);
  if (cmd->argc == 1) {
    resp_add_array(b, UVR_NCOMMANDS);
    for (size_t i = 0; i < UVR_NCOMMANDS; i++)
      uvr__command_info(b, i);
  } else if (resp_arg_is(sub, "COUNT")) {
    resp_add_int(b, (int64_t)UVR_NCOMMANDS);
  } else if (resp_arg_is(sub, "INFO")) {
    resp_add_array(b, cmd->argc - 2);
    for (uint32_t a = 2; a < cmd->argc; a++) {
      int i = uvr__command_find(resp_cmd_arg(cmd, a));
      if (i < 0)
        resp_add_null(b, proto);
      else
        uvr__command_info(b, (size_t)i);
    }
  } else if (resp_arg_is(sub, "DOCS")) {
    size_t n = 0;
    for (size_t i = 0; i < UVR_NCOMMANDS; i++)
      n += uvr__command_named(cmd, i);
    resp_add_map(b, proto, n);
    for (size_t i = 0; i < UVR_NCOMMANDS; i++) {
      if (!uvr__command_named(cmd, i))
        continue;
      resp_add_bulk(b, uvr__commands[i].name, strlen(uvr__commands[i].name));
      resp_add_map(b, proto, 2);
      resp_add_bulk(b, "summary", 7);
      resp_add_bulk(b, uvr__commands[i].summary,
                    strlen(uvr__commands[i].summary));
      resp_add_bulk(b, "group", 5);
      resp_add_bulk(b, "kvorum", 6);
    }
  } else {
    resp_add_error(b, "ERR unknown COMMAND subcommand");
  }
}

/* The commands that need no request. Returns whether cmd was one. */
bool uvr__local(uvn_conn *c, const resp_cmd *cmd, kvbuf *out) {
  uvr_conn *rc = c->resp;
  kv_slice name = resp_cmd_arg(cmd, 0);
  kvbuf *b = out;
  bool done = true;
  if (resp_arg_is(name, "PING")) {
    if (cmd->argc > 2)
      resp_add_error(b, "ERR wrong number of arguments for 'ping' command");
    else if (cmd->argc == 2) {
      kv_slice a = resp_cmd_arg(cmd, 1);
      resp_add_bulk(b, a.ptr, a.len);
    } else
      resp_add_simple(b, "PONG");
  } else if (resp_arg_is(name, "ECHO")) {
    kv_slice a = resp_cmd_arg(cmd, 1);
    if (cmd->argc != 2)
      resp_add_error(b, "ERR wrong number of arguments for 'echo' command");
    else
      resp_add_bulk(b, a.ptr, a.len);
  } else if (resp_arg_is(name, "QUIT")) {
    resp_add_simple(b, "OK");
    rc->quit = true;
  } else if (resp_arg_is(name, "SELECT")) {
    kv_slice a = resp_cmd_arg(cmd, 1);
    if (cmd->argc == 2 && a.len == 1 && a.ptr[0] == '0')
      resp_add_simple(b, "OK");
    else
      resp_add_error(b, "ERR kvorum has one database: only SELECT 0");
  } else if (resp_arg_is(name, "HELLO")) {
    uvr__hello(c, cmd, b);
  } else if (resp_arg_is(name, "INFO")) {
    uvr__info(c, b);
  } else if (resp_arg_is(name, "CLIENT")) {
    kv_slice sub = resp_cmd_arg(cmd, 1);
    if (resp_arg_is(sub, "SETNAME") && cmd->argc == 3) {
      kv_slice nm = resp_cmd_arg(cmd, 2);
      size_t l = nm.len < UVR_NAME_MAX - 1 ? nm.len : UVR_NAME_MAX - 1;
      memcpy(rc->name, nm.ptr, l);
      rc->name[l] = 0;
      resp_add_simple(b, "OK");
    } else if (resp_arg_is(sub, "GETNAME")) {
      if (rc->name[0])
        resp_add_bulk(b, rc->name, strlen(rc->name));
      else
        resp_add_null(b, rc->proto);
    } else if (resp_arg_is(sub, "ID")) {
      resp_add_int(b, (int64_t)(c->id & 0x7fffffff));
    } else if (resp_arg_is(sub, "SETINFO")) {
      resp_add_simple(b, "OK");
    } else if (resp_arg_is(sub, "INFO")) {
      char line[160];
      int l = snprintf(line, sizeof(line), "id=%llu name=%s resp=%d\n",
                       (unsigned long long)(c->id & 0x7fffffff), rc->name,
                       rc->proto);
      resp_add_bulk(b, line, l > 0 ? (size_t)l : 0);
    } else {
      resp_add_error(b, "ERR unknown CLIENT subcommand");
    }
  } else if (resp_arg_is(name, "COMMAND")) {
    uvr__command(b, rc->proto, cmd);
  } else if (resp_arg_is(name, "CONFIG")) {
    kv_slice sub = resp_cmd_arg(cmd, 1);
    if (cmd->argc == 3 && resp_arg_is(sub, "GET")) {
      kv_slice k = resp_cmd_arg(cmd, 2);
      if (resp_arg_is(k, "save") || resp_arg_is(k, "appendonly")) {
        resp_add_map(b, rc->proto, 1);
        resp_add_bulk(b, k.ptr, k.len);
        if (resp_arg_is(k, "save"))
          resp_add_bulk(b, "", 0);
        else
          resp_add_bulk(b, "no", 2);
      } else {
        resp_add_map(b, rc->proto, 0);
      }
    } else {
      resp_add_error(b, "ERR kvorum answers CONFIG GET only");
    }
  } else if (resp_arg_is(name, "AUTH")) {
    /* As a Redis without a password answers; users come with #15. */
    resp_add_error(b, "ERR AUTH <password> called without any password "
                       "configured for the default user. Are you sure your "
                       "configuration is correct?");
  } else if (resp_arg_is(name, "DBSIZE")) {
    /* RocksDB's estimate of this node's replica: an estimate, not a count
     * of the cluster's keys (docs/resp.md). */
    resp_add_int(b, (int64_t)store_estimate_keys(c->u->st));
  } else if (resp_arg_is(name, "TIME")) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char s[32], us[16];
    int l1 = snprintf(s, sizeof(s), "%lld", (long long)tv.tv_sec);
    int l2 = snprintf(us, sizeof(us), "%ld", (long)tv.tv_usec);
    resp_add_array(b, 2);
    resp_add_bulk(b, s, (size_t)l1);
    resp_add_bulk(b, us, (size_t)l2);
  } else if (resp_arg_is(name, "KV.LEVELS")) {
    wire_opts o = rc->defaults;
    const char *err = uvr__options(cmd, 1, &o, NULL);
    if (err) {
      resp_add_error(b, err);
    } else {
      rc->defaults = o;
      resp_add_simple(b, "OK");
    }
  } else {
    done = false;
  }
  return done;
}


/* ---- data types (docs/resp.md, docs/data-types.md) ---- */

uvr_tcmd uvr__tcmd(kv_slice name, bool *write) {
  static const struct {
    const char *name;
    uvr_tcmd t;
    bool write;
  } cmds[] = {{"SADD", UVR_T_SADD, true},
              {"SREM", UVR_T_SREM, true},
              {"SMEMBERS", UVR_T_SMEMBERS, false},
              {"SISMEMBER", UVR_T_SISMEMBER, false},
              {"SCARD", UVR_T_SCARD, false},
              {"INCRBY", UVR_T_INCRBY, true},
              {"DECRBY", UVR_T_DECRBY, true},
              {"INCR", UVR_T_INCR, true},
              {"DECR", UVR_T_DECR, true},
              {"HSET", UVR_T_HSET, true},
              {"HGET", UVR_T_HGET, false},
              {"HGETALL", UVR_T_HGETALL, false},
              {"HDEL", UVR_T_HDEL, true},
              {"HINCRBY", UVR_T_HINCRBY, true}};
  for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
    if (resp_arg_is(name, cmds[i].name)) {
      if (write)
        *write = cmds[i].write;
      return cmds[i].t;
    }
  return UVR_T_NONE;
}

/* A decimal int64 as Redis takes it. Returns 0 or -1. */
static int uvr__int64(kv_slice s, int64_t *out) {
  size_t i = 0;
  bool neg = s.len && s.ptr[0] == '-';
  i = neg;
  if (s.len == i || s.len > 20)
    return -1;
  uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
  for (; i < s.len; i++) {
    if (s.ptr[i] < '0' || s.ptr[i] > '9')
      return -1;
    uint64_t d = (uint64_t)(s.ptr[i] - '0');
    if (v > (lim - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return 0;
}

/* Arguments from first on, as slices (caller frees). */
static kv_slice *uvr__args(const resp_cmd *cmd, uint32_t first,
                           uint32_t step) {
  kv_slice *a = calloc(cmd->argc, sizeof(*a));
  if (!a)
    return NULL;
  for (uint32_t i = first, j = 0; i < cmd->argc; i += step)
    a[j++] = resp_cmd_arg(cmd, i);
  return a;
}

const char *uvr__top(const resp_cmd *cmd, uvr_tcmd t, kvbuf *op) {
  static const char *const nomem = "ERR out of memory";
  static const char *const notint =
      "ERR value is not an integer or out of range";
  uint32_t argc = cmd->argc;
  int64_t d = 1;
  switch (t) {
  case UVR_T_SADD:
  case UVR_T_SREM: {
    if (argc < 3)
      return "ERR wrong number of arguments";
    kv_slice *a = uvr__args(cmd, 2, 1);
    if (!a)
      return nomem;
    int rc = t == UVR_T_SADD ? crdt_op_set_add(op, a, argc - 2)
                             : crdt_op_set_rem(op, a, argc - 2, NULL, 0);
    free(a);
    return rc ? nomem : NULL;
  }
  case UVR_T_INCRBY:
  case UVR_T_DECRBY:
  case UVR_T_INCR:
  case UVR_T_DECR:
    if (argc != (t == UVR_T_INCR || t == UVR_T_DECR ? 2u : 3u))
      return "ERR wrong number of arguments";
    if (argc == 3 && uvr__int64(resp_cmd_arg(cmd, 2), &d))
      return notint;
    if (t == UVR_T_DECRBY || t == UVR_T_DECR) {
      if (d == INT64_MIN)
        return notint;
      d = -d;
    }
    return crdt_op_counter_incr(op, d) ? nomem : NULL;
  case UVR_T_HSET:
  case UVR_T_HDEL:
  case UVR_T_HINCRBY: {
    if (t == UVR_T_HSET ? argc < 4 || argc % 2 : t == UVR_T_HDEL ? argc < 3
                                                                  : argc != 4)
      return "ERR wrong number of arguments";
    if (t == UVR_T_HINCRBY && uvr__int64(resp_cmd_arg(cmd, 3), &d))
      return notint;
    crdt_mapb b;
    crdt_mapb_init(&b, CRDT_NONE); /* a new key: map_mv */
    int rc = 0;
    if (t == UVR_T_HSET)
      for (uint32_t i = 2; i + 1 < argc && !rc; i += 2)
        rc = crdt_mapb_assign(&b, resp_cmd_arg(cmd, i),
                              resp_cmd_arg(cmd, i + 1), 0);
    else if (t == UVR_T_HDEL)
      for (uint32_t i = 2; i < argc && !rc; i++)
        rc = crdt_mapb_remove(&b, resp_cmd_arg(cmd, i), CRDT_KIND_ANY);
    else
      rc = crdt_mapb_incr(&b, resp_cmd_arg(cmd, 2), d);
    if (rc) {
      crdt_mapb_free(&b);
      return nomem;
    }
    return crdt_mapb_finish(&b, NULL, 0, op) ? nomem : NULL;
  }
  default:
    return "ERR not a data type write";
  }
}

int uvr__tstate(const wire_msg *m, crdt **st, bool *plain) {
  mp_reader r;
  uint32_t cnt;
  *st = NULL;
  *plain = false;
  if (m->type != WIRE_GET_OK)
    return 0;
  mp_reader_init(&r, m->raw.ptr, m->raw.len);
  if (mp_read_array(&r, &cnt))
    return -1;
  for (uint32_t i = 0; i < cnt; i++) {
    wire_sibling s;
    if (wire_sibling_next(&r, &s))
      return -1;
    if (s.flags & WIRE_SIB_DELETED)
      continue;
    if (!(s.flags & WIRE_SIB_TYPED)) {
      *plain = true;
    } else if (!*st && crdt_decode(s.value.ptr, s.value.len, st)) {
      *st = NULL;
      return -1;
    }
  }
  return 0;
}

/* The value HGET shows of register field i: the newest of its concurrent
 * values by timestamp (ties: the greater bytes), as GET picks a sibling. */
static bool uvr__reg(const crdt *c, size_t i, kv_slice *out) {
  bool found = false;
  uint64_t best = 0;
  for (size_t j = 0; j < crdt_map_reg_count(c, i); j++) {
    kv_slice v;
    uint64_t ts;
    if (crdt_map_reg_value(c, i, j, &v, &ts))
      continue;
    int cmp = 0;
    if (found) {
      size_t l = v.len < out->len ? v.len : out->len;
      cmp = l ? memcmp(v.ptr, out->ptr, l) : 0;
      if (!cmp)
        cmp = v.len < out->len ? -1 : v.len > out->len;
    }
    if (!found || ts > best || (ts == best && cmp > 0)) {
      *out = v;
      best = ts;
      found = true;
    }
  }
  return found;
}

/* A map field's value as HGET and HGETALL show it (registers and
 * counters; set fields have no Redis form). Returns whether it has one. */
static bool uvr__field(const crdt *c, size_t i, char *num, size_t cap,
                       kv_slice *out) {
  crdt_field f;
  if (crdt_map_field(c, i, &f))
    return false;
  if (f.kind == CRDT_KIND_REGISTER)
    return uvr__reg(c, i, out);
  if (f.kind != CRDT_KIND_COUNTER)
    return false;
  int l = snprintf(num, cap, "%lld", (long long)crdt_map_counter(c, i));
  *out = (kv_slice){(const uint8_t *)num, l > 0 ? (size_t)l : 0};
  return true;
}

void uvr__tread(int proto, uvr_tcmd t, const wire_msg *m, kv_slice arg,
                kvbuf *out) {
  crdt *st;
  bool plain;
  if (uvr__tstate(m, &st, &plain)) {
    resp_add_error(out, "ERR the key's state does not decode");
    return;
  }
  bool set = t == UVR_T_SMEMBERS || t == UVR_T_SISMEMBER || t == UVR_T_SCARD;
  crdt_type ty = st ? crdt_type_of(st) : CRDT_NONE;
  if ((st && (set ? ty != CRDT_SET : ty != CRDT_MAP_MV && ty != CRDT_MAP_LWW)) ||
      (!st && plain)) {
    resp_add_error(out, UVR_WRONGTYPE);
    crdt_free(st);
    return;
  }
  char num[24];
  kv_slice v;
  switch (t) {
  case UVR_T_SMEMBERS: {
    size_t n = st ? crdt_set_count(st) : 0;
    resp_add_array(out, n);
    for (size_t i = 0; i < n; i++) {
      if (crdt_set_member(st, i, &v))
        v = (kv_slice){(const uint8_t *)"", 0};
      resp_add_bulk(out, v.ptr, v.len);
    }
    break;
  }
  case UVR_T_SISMEMBER:
    resp_add_int(out, st && crdt_set_contains(st, arg));
    break;
  case UVR_T_SCARD:
    resp_add_int(out, st ? (int64_t)crdt_set_count(st) : 0);
    break;
  case UVR_T_HGET: {
    long i = st ? crdt_map_find(st, arg, CRDT_KIND_REGISTER) : -1;
    if (st && i < 0)
      i = crdt_map_find(st, arg, CRDT_KIND_COUNTER);
    if (i >= 0 && uvr__field(st, (size_t)i, num, sizeof(num), &v))
      resp_add_bulk(out, v.ptr, v.len);
    else
      resp_add_null(out, proto);
    break;
  }
  case UVR_T_HGETALL: {
    size_t n = st ? crdt_map_count(st) : 0, shown = 0;
    for (size_t i = 0; i < n; i++)
      shown += uvr__field(st, i, num, sizeof(num), &v);
    resp_add_map(out, proto, shown);
    for (size_t i = 0; i < n; i++) {
      crdt_field f;
      if (crdt_map_field(st, i, &f) ||
          !uvr__field(st, i, num, sizeof(num), &v))
        continue;
      resp_add_bulk(out, f.name.ptr, f.name.len);
      resp_add_bulk(out, v.ptr, v.len);
    }
    break;
  }
  default:
    resp_add_error(out, "ERR not a data type read");
  }
  crdt_free(st);
}

void uvr__twrite(uvr_tcmd t, const wire_msg *m, kvbuf *out) {
  switch (t) {
  case UVR_T_SADD:
  case UVR_T_HSET:
    resp_add_int(out, m->result[0]);
    break;
  case UVR_T_SREM:
  case UVR_T_HDEL:
    resp_add_int(out, m->result[1]);
    break;
  default:
    resp_add_int(out, m->result[2]);
  }
}
