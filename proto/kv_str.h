/*
 * kv_str.h: the one bounded string copy of kvorum (node ids, regions,
 * addresses into fixed-size fields; snprintf("%s") did this in some
 * places, and showed in profiles of the request path), and the value of a
 * hex digit (RESP's and HTTP's escapes).
 *
 * Depends on: <string.h>.
 */
#ifndef KV_STR_H
#define KV_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* Copies the NUL-terminated src (NULL: "") into dst, which has cap > 0
 * bytes, always NUL-terminating it. Returns true when src fitted whole,
 * false when dst holds its first cap - 1 bytes. */
static inline bool kv_strcopy(char *dst, size_t cap, const char *src) {
  if (!src)
    src = "";
  size_t n = strnlen(src, cap);
  bool fit = n < cap;
  if (!fit)
    n = cap - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
  return fit;
}

/* The value of hex digit c (either case), or -1. */
static inline int kv_hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

#endif
