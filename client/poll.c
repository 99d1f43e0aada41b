/*
 * poll.c: the I/O loop of libkvorum, kv_poll and kv_poll_us (kvorum.h),
 * and request timeouts.
 *
 * One round, over every client given: fail the requests past their
 * deadline, ask for the ring when a refresh is due, write each
 * connection's queued output, wait in ppoll() for the sockets (no longer
 * than until the earliest deadline, and not at all when a TLS connection
 * holds decrypted bytes already), finish connects and TLS handshakes,
 * write, read and dispatch replies (conn.c), and expire again.
 *
 * Idle connections are left out of the poll set but for one round every
 * KV__IDLE_CHECK_MS.
 *
 * Depends on: kvorum_int.h (conn.c, req.c, route.c), kvproto (kv_err.h),
 * POSIX poll().
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kvorum_int.h"

#define KV__POLLFD_STACK 64
#define KV__IDLE_CHECK_MS 20 /* how often idle connections are watched */

/* ---- timeouts ---- */

static void kv__expire(kv_client *c, uint64_t now) {
  if (now < c->min_deadline_ms)
    return;
  /* A connection whose HELLO timed out goes down first (its requests fail
   * or move with it); conn_fail changes the list, so rescan after each. */
  for (bool again = true; again;) {
    again = false;
    for (kv__req *q = c->head.next; q != &c->head; q = q->next) {
      if (q->kind == KV__K_HELLO && q->deadline_ms <= now) {
        kv__conn_fail(c, q->conn, KV_ECONN,
                      q->conn->state == KV__TLS
                          ? "no TLS handshake with %s within %u ms"
                          : "no hello from %s within %u ms",
                      q->conn->addr, (unsigned)q->timeout_ms);
        again = true;
        break;
      }
    }
  }
  /* Detach the expired requests, then run their callbacks (which may
   * queue new requests). */
  kv__req expired;
  expired.next = expired.prev = &expired;
  uint64_t next = UINT64_MAX;
  for (kv__req *q = c->head.next, *nx; q != &c->head; q = nx) {
    nx = q->next;
    if (q->deadline_ms > now) {
      if (q->deadline_ms < next)
        next = q->deadline_ms;
      continue;
    }
    kv__req_unlink(c, q);
    q->prev = expired.prev;
    q->next = &expired;
    expired.prev->next = q;
    expired.prev = q;
  }
  c->min_deadline_ms = next;
  for (kv__req *q = expired.next, *nx; q != &expired; q = nx) {
    nx = q->next;
    char text[KV__ERRMSG_MAX];
    snprintf(text, sizeof(text), "no reply from %s within %u ms",
             q->conn->addr, (unsigned)q->timeout_ms);
    kv__complete(c, q, KV_ETIMEDOUT, text, NULL);
  }
}

/* ---- public API: the I/O loop ---- */

static uint64_t kv__callbacks(kv_client *const *cs, size_t n) {
  uint64_t t = 0;
  for (size_t i = 0; i < n; i++)
    t += cs[i]->ncallbacks;
  return t;
}

int kv_poll(kv_client *const *cs, size_t n, int timeout_ms) {
  return kv_poll_us(cs, n, timeout_ms < 0 ? -1 : (int64_t)timeout_ms * 1000);
}

int kv_poll_us(kv_client *const *cs, size_t n, int64_t timeout_us) {
  if (!cs && n)
    return KV_EINVAL;
  uint64_t before = kv__callbacks(cs, n);
  uint64_t now = kv__now_ms();
  size_t nfds = 0;
  size_t inflight = 0;
  uint64_t min_deadline = UINT64_MAX;
  for (size_t i = 0; i < n; i++) {
    kv_client *c = cs[i];
    kv__expire(c, now);
    kv__ring_refresh(c, now);
    for (size_t j = 0; j < c->nconns; j++) {
      kv__conn_flush(c, c->conns[j]);
      if (c->conns[j]->fd >= 0)
        nfds++;
    }
    inflight += c->nall;
    if (c->min_deadline_ms < min_deadline)
      min_deadline = c->min_deadline_ms;
  }
  struct pollfd stack_fds[KV__POLLFD_STACK];
  kv__conn *stack_map[KV__POLLFD_STACK];
  size_t stack_cli[KV__POLLFD_STACK];
  struct pollfd *fds = stack_fds;
  kv__conn **map = stack_map;
  size_t *cli = stack_cli;
  if (nfds > KV__POLLFD_STACK) {
    fds = malloc(nfds * sizeof(*fds));
    map = malloc(nfds * sizeof(*map));
    cli = malloc(nfds * sizeof(*cli));
    if (!fds || !map || !cli) {
      free(fds);
      free(map);
      free(cli);
      return KV_ENOMEM;
    }
  }
  size_t m = 0;
  bool pending = false; /* a TLS connection has bytes poll() cannot see */
  for (size_t i = 0; i < n; i++) {
    /* Idle connections (open, nothing to write, nothing awaited) are
     * watched only every KV__IDLE_CHECK_MS, for a peer that closed them:
     * a client with a connection to every node of a large cluster should
     * not hand the kernel all of them every round. */
    bool idle_too = now >= cs[i]->idle_check_ms;
    if (idle_too)
      cs[i]->idle_check_ms = now + KV__IDLE_CHECK_MS;
    for (size_t j = 0; j < cs[i]->nconns && m < nfds; j++) {
      kv__conn *k = cs[i]->conns[j];
      if (k->fd < 0)
        continue;
      if (!idle_too && k->state == KV__READY && k->inflight == 0 &&
          k->out.len == 0 && !k->tls_want && !kv__conn_pending(k))
        continue;
      fds[m].fd = k->fd;
      fds[m].events = kv__conn_events(k);
      fds[m].revents = 0;
      pending = pending || kv__conn_pending(k);
      map[m] = k;
      cli[m] = i;
      m++;
    }
  }
  int64_t wait_us = timeout_us < 0 ? -1 : timeout_us;
  if (kv__callbacks(cs, n) != before || pending)
    wait_us = 0; /* callbacks already ran, or bytes wait: do not wait */
  if (wait_us < 0 && inflight == 0)
    wait_us = 0;
  if (min_deadline != UINT64_MAX && wait_us != 0) {
    uint64_t until_ms = min_deadline > now ? min_deadline - now + 1 : 0;
    int64_t until_us = until_ms > (uint64_t)INT64_MAX / 1000
                           ? INT64_MAX
                           : (int64_t)until_ms * 1000;
    if (wait_us < 0 || until_us < wait_us)
      wait_us = until_us;
  }
  struct timespec ts = {(time_t)(wait_us / 1000000),
                        (long)(wait_us % 1000000) * 1000L};
  int rc = 0;
  int pr = m ? ppoll(fds, m, wait_us < 0 ? NULL : &ts, NULL) : 0;
  if (pr < 0 && errno != EINTR)
    rc = KV_EIO;
  if (m == 0 && wait_us > 0)
    nanosleep(&ts, NULL); /* nothing to watch: honour the wait */
  for (size_t i = 0; (pr > 0 || pending) && i < m; i++) {
    kv__conn *k = map[i];
    short ev = fds[i].revents;
    if (k->fd != fds[i].fd)
      continue;
    if (kv__conn_pending(k))
      ev |= POLLIN;
    if (ev)
      kv__conn_io(cs[cli[i]], k, ev);
  }
  if (fds != stack_fds) {
    free(fds);
    free(map);
    free(cli);
  }
  now = kv__now_ms();
  for (size_t i = 0; i < n; i++)
    kv__expire(cs[i], now);
  if (rc)
    return rc;
  uint64_t ran = kv__callbacks(cs, n) - before;
  return ran > INT32_MAX ? INT32_MAX : (int)ran;
}
