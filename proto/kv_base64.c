/*
 * kv_base64.c: standard base64 (kv_base64.h).
 */
#include "kv_base64.h"

#include <stdlib.h>
#include <string.h>

#include "kv_err.h"

static const char kv_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int kv_b64_encode(kvbuf *out, const void *p, size_t len) {
  const uint8_t *s = p;
  size_t need = KV_B64_LEN(len) + 1;
  if (kvbuf_reserve(out, need))
    return KV_ENOMEM;
  char *d = (char *)out->data + out->len;
  size_t i = 0, j = 0;
  for (; i + 2 < len; i += 3) {
    uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
    d[j++] = kv_b64_alphabet[v >> 18];
    d[j++] = kv_b64_alphabet[(v >> 12) & 63];
    d[j++] = kv_b64_alphabet[(v >> 6) & 63];
    d[j++] = kv_b64_alphabet[v & 63];
  }
  if (i < len) {
    uint32_t v = (uint32_t)s[i] << 16;
    if (i + 1 < len)
      v |= (uint32_t)s[i + 1] << 8;
    d[j++] = kv_b64_alphabet[v >> 18];
    d[j++] = kv_b64_alphabet[(v >> 12) & 63];
    d[j++] = i + 1 < len ? kv_b64_alphabet[(v >> 6) & 63] : '=';
    d[j++] = '=';
  }
  d[j] = '\0';
  out->len += j;
  return 0;
}

static int kv_b64_val(unsigned char ch) {
  if (ch >= 'A' && ch <= 'Z')
    return ch - 'A';
  if (ch >= 'a' && ch <= 'z')
    return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9')
    return ch - '0' + 52;
  if (ch == '+' || ch == '-')
    return 62;
  if (ch == '/' || ch == '_')
    return 63;
  return -1;
}

int kv_b64_decode(const char *s, size_t len, uint8_t **out, size_t *outlen) {
  while (len > 0 && s[len - 1] == '=')
    len--;
  if (len % 4 == 1)
    return KV_EINVAL;
  uint8_t *d = malloc(len / 4 * 3 + 3);
  if (!d)
    return KV_ENOMEM;
  size_t j = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    int v = kv_b64_val((unsigned char)s[i]);
    if (v < 0) {
      free(d);
      return KV_EINVAL;
    }
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      d[j++] = (uint8_t)(acc >> bits);
      acc &= (1u << bits) - 1u;
    }
  }
  *out = d;
  *outlen = j;
  return 0;
}
