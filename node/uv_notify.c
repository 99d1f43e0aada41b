/*
 * uv_notify.c: the sd_notify datagram protocol (uv_notify.h).
 */
#include "uv_notify.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int uvsd_addr(const char *name, struct sockaddr_un *addr, socklen_t *len) {
  size_t n = name ? strlen(name) : 0;
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  if (n < 2 || (name[0] != '/' && name[0] != '@') ||
      n > sizeof(addr->sun_path) - (name[0] == '/'))
    return -1;
  memcpy(addr->sun_path, name, n);
  if (name[0] == '@') {
    addr->sun_path[0] = '\0'; /* abstract: no NUL at the end, length says */
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
  } else {
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  }
  return 0;
}

int uvsd_open(uvsd *sd, char *err, size_t errlen) {
  memset(sd, 0, sizeof(*sd));
  sd->fd = -1;
  const char *name = getenv("NOTIFY_SOCKET");
  if (!name || !*name)
    return 0;
  if (uvsd_addr(name, &sd->addr, &sd->addr_len)) {
    snprintf(err, errlen,
             "NOTIFY_SOCKET '%s' is not an absolute path or an "
             "@abstract name",
             name);
    return -1;
  }
  sd->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (sd->fd < 0) {
    snprintf(err, errlen, "cannot open a socket for NOTIFY_SOCKET: %s",
             strerror(errno));
    return -1;
  }
  /* The watchdog: for this process only (WATCHDOG_PID, when set). */
  const char *usec = getenv("WATCHDOG_USEC");
  const char *pid = getenv("WATCHDOG_PID");
  char *end;
  unsigned long long us = usec ? strtoull(usec, &end, 10) : 0;
  if (usec && *end)
    us = 0;
  if (pid && *pid && strtoll(pid, NULL, 10) != (long long)getpid())
    us = 0;
  sd->watchdog_ms = us / 2000u;
  if (us && sd->watchdog_ms == 0)
    sd->watchdog_ms = 1;
  return 0;
}

void uvsd_close(uvsd *sd) {
  if (sd->fd >= 0)
    close(sd->fd);
  sd->fd = -1;
}

bool uvsd_active(const uvsd *sd) { return sd->fd >= 0; }

/* Sends one datagram; a failure is dropped. */
static void uvsd__send(uvsd *sd, const char *msg) {
  if (sd->fd < 0)
    return;
  ssize_t n;
  do {
    n = sendto(sd->fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT,
               (const struct sockaddr *)&sd->addr, sd->addr_len);
  } while (n < 0 && errno == EINTR);
}

/* Sends STATUS=text (with prefix lines before it) when text is new. */
static void uvsd__status(uvsd *sd, const char *prefix, const char *text) {
  if (!prefix[0] && strcmp(sd->status, text) == 0)
    return;
  snprintf(sd->status, sizeof(sd->status), "%s", text);
  char msg[UVSD_STATUS_MAX + 64];
  /* A STATUS= value is one line: a newline would start another key. */
  size_t off = (size_t)snprintf(msg, sizeof(msg), "%sSTATUS=", prefix);
  for (const char *p = sd->status; *p && off + 1 < sizeof(msg); p++)
    msg[off++] = *p == '\n' ? ' ' : *p;
  msg[off] = '\0';
  uvsd__send(sd, msg);
}

void uvsd_tick(uvsd *sd, uint64_t now_ms, const char *not_ready,
               const char *ready_status) {
  if (sd->fd < 0 || sd->stopping)
    return;
  if (!sd->ready) {
    if (not_ready) {
      uvsd__status(sd, "", not_ready);
    } else {
      sd->ready = true;
      uvsd__status(sd, "READY=1\n", ready_status ? ready_status : "ready");
    }
  }
  if (sd->watchdog_ms && now_ms >= sd->watchdog_next_ms) {
    sd->watchdog_next_ms = now_ms + sd->watchdog_ms;
    uvsd__send(sd, "WATCHDOG=1");
  }
}

void uvsd_stopping(uvsd *sd, const char *why) {
  if (sd->fd < 0 || sd->stopping)
    return;
  sd->stopping = true;
  char text[UVSD_STATUS_MAX];
  snprintf(text, sizeof(text), "stopping: %s", why);
  uvsd__status(sd, "STOPPING=1\n", text);
}
