/* kv_err.c: descriptions and names of the KV_E* codes. */
#include "kv_err.h"

const char *kv_strerror(int code) {
  switch (code) {
  case KV_OK:
    return "success";
#define KV__ERR_STR(name, num, msg)                                            \
  case KV_##name:                                                              \
    return msg;
    KV_ERRNO_MAP(KV__ERR_STR)
#undef KV__ERR_STR
  }
  return "unknown error";
}

const char *kv_errname(int code) {
  switch (code) {
  case KV_OK:
    return "OK";
#define KV__ERR_NAME(name, num, msg)                                           \
  case KV_##name:                                                              \
    return #name;
    KV_ERRNO_MAP(KV__ERR_NAME)
#undef KV__ERR_NAME
  }
  return "EUNKNOWNCODE";
}
