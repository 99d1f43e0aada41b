/*
 * kv_err.h: the one error vocabulary of kvorum.
 *
 * Every function that can fail returns an int: 0 for success or one of the
 * negative KV_E* codes below. The numbers are part of the wire protocol
 * (ERROR replies carry them) and never change meaning; new codes get new
 * numbers. Context for a person goes into a message buffer beside the code.
 * Depends on nothing.
 */
#ifndef KV_ERR_H
#define KV_ERR_H

#include <stddef.h>

/* X(NAME, number, short description). Numbers are stable (wire protocol). */
#define KV_ERRNO_MAP(X)                                                        \
  X(EINVAL, -1, "invalid argument")                                            \
  X(ENOMEM, -2, "out of memory")                                               \
  X(ETOOBIG, -3, "key or value too large")                                     \
  X(EPROTO, -4, "malformed message")                                           \
  X(EVERSION, -5, "unsupported protocol or format version")                    \
  X(ETIMEDOUT, -6, "timed out")                                                \
  X(EQUORUM, -7, "not enough replicas answered")                               \
  X(EUNAVAIL, -8, "not enough replicas available")                             \
  X(ESIBLINGS, -9, "too many siblings")                                        \
  X(ESTORAGE, -10, "storage error")                                            \
  X(ENOSPC, -11, "no space left on device")                                    \
  X(ECORRUPT, -12, "corrupt data")                                             \
  X(EBUSY, -13, "resource busy")                                               \
  X(ECONN, -14, "connection failed")                                           \
  X(ECLOSED, -15, "connection closed")                                         \
  X(EUNKNOWN, -16, "unknown command")                                          \
  X(ENOTFOUND, -17, "not found")                                               \
  X(EOVERLOAD, -18, "overloaded")                                              \
  X(EIO, -19, "input/output error")                                            \
  X(ESTATE, -20, "operation not allowed in this state")                        \
  X(EFULL, -21, "queue or store full")                                         \
  X(EAGAIN, -22, "more input needed")                                          \
  X(EAUTH, -23, "authentication failed")                                       \
  X(EPERM, -24, "permission denied")                                           \
  X(ETYPE, -25, "wrong type for this operation")

enum kv_errno {
  KV_OK = 0,
#define KV__ERR_ENUM(name, num, msg) KV_##name = (num),
  KV_ERRNO_MAP(KV__ERR_ENUM)
#undef KV__ERR_ENUM
};

/* Returns a static description of code (never NULL; "unknown error" for
 * codes not in the list). */
const char *kv_strerror(int code);

/* Returns the symbolic name of code without the KV_ prefix ("EQUORUM"), or
 * "EUNKNOWNCODE". Static storage. */
const char *kv_errname(int code);

#endif
