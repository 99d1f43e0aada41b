/*
 * uv_http.h: the HTTP front end of kvorumd's shell (uv_http.c, --http):
 * /metrics, /health, /ready, the JSON key API /kv/{key} and /admin/{command}
 * (docs/http.md), served by libh2o on the node's libuv loop.
 *
 * The key API is a client of the core like any other: each request
 * becomes one native frame handed to node_on_frame on one connection id
 * that no socket has (UVN_CONN_HTTP), and the core's answer comes back
 * through uvh_on_frame.
 */
#ifndef KV_UV_HTTP_H
#define KV_UV_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "uv_int.h"

/* The core's connection id of the HTTP front end: slot 0, which no socket
 * is ever given (uvn__conn_new). */
#define UVN_CONN_HTTP ((uint64_t)1 << UVN_CONN_BITS)

/* Listens on addr. Returns 0, or KV_EINVAL / KV_ECONN / KV_ENOMEM with a
 * message on stderr. */
int uvh_open(uvn *u, const char *addr);
/* Closes the listener and every HTTP connection (at shutdown). */
void uvh_close(uvn *u);
/* The certificates were reloaded: new HTTPS connections use them. */
void uvh_tls_reloaded(uvn *u);
/* A native frame (header and body) the core sent to UVN_CONN_HTTP. */
void uvh_on_frame(uvn *u, const uint8_t *frame, size_t len);

#endif
