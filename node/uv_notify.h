/*
 * uv_notify.h: systemd's service notification protocol (sd_notify(3)),
 * spoken directly, without libsystemd: each message is one datagram of
 * "KEY=VALUE" lines sent to the AF_UNIX socket that $NOTIFY_SOCKET names
 * (a path, or an abstract socket when the name starts with '@').
 *
 * kvorumd (Type=notify, deploy/systemd/kvorumd@.service) sends
 *   STATUS=why not           while the node is not ready, when it changes
 *   READY=1 and STATUS=...   once, when the node is first in the ring and
 *                            serving (uvn__not_ready: the same test as
 *                            GET /ready)
 *   WATCHDOG=1               every $WATCHDOG_USEC / 2 from the tick, when
 *                            $WATCHDOG_USEC is set and $WATCHDOG_PID is
 *                            unset or this process
 *   STOPPING=1               when it begins to stop
 * Without $NOTIFY_SOCKET every call does nothing. A datagram that cannot
 * be sent is dropped (systemd's own sd_notify does no better); nothing
 * here blocks.
 *
 * Depends on: POSIX sockets only (no libuv, no libsystemd).
 */
#ifndef KV_UV_NOTIFY_H
#define KV_UV_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#define UVSD_STATUS_MAX 256 /* bytes of a STATUS= text */

typedef struct uvsd {
  int fd; /* -1: not under a notifying manager */
  struct sockaddr_un addr;
  socklen_t addr_len;
  uint64_t watchdog_ms; /* every this often; 0: no watchdog */
  uint64_t watchdog_next_ms;
  bool ready;                   /* READY=1 was sent */
  bool stopping;                /* STOPPING=1 was sent */
  char status[UVSD_STATUS_MAX]; /* the last STATUS= sent */
} uvsd;

/* Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID. Returns 0 (also
 * when they are not set: then sd stays inactive), or -1 with a message in
 * err when $NOTIFY_SOCKET is set but unusable (sd stays inactive). */
int uvsd_open(uvsd *sd, char *err, size_t errlen);
void uvsd_close(uvsd *sd);
/* Whether there is a manager to notify. */
bool uvsd_active(const uvsd *sd);

/* Parses a $NOTIFY_SOCKET value into *addr and *len (an abstract name
 * for "@name"). Returns 0, or -1 when it is neither an absolute path nor
 * "@name", or too long. */
int uvsd_addr(const char *name, struct sockaddr_un *addr, socklen_t *len);

/* Before ready: why the node is not ready (sent as STATUS= when it
 * changed), or NULL when it is: then READY=1 with STATUS=ready_status is
 * sent, once. Then, when due, WATCHDOG=1. now_ms: a monotonic clock. */
void uvsd_tick(uvsd *sd, uint64_t now_ms, const char *not_ready,
               const char *ready_status);
/* STOPPING=1, with STATUS=why; once. */
void uvsd_stopping(uvsd *sd, const char *why);

#endif
