/*
 * uv_resp.h: the Redis protocol front end of kvorumd's shell (uv_resp.c).
 * A connection accepted on --resp is a client connection of the core whose
 * bytes go through these functions instead of the native framing.
 */
#ifndef KV_UV_RESP_H
#define KV_UV_RESP_H

#include <stddef.h>
#include <stdint.h>

#include "uv_int.h"

/* Makes c a Redis protocol connection. Returns 0 or KV_ENOMEM. */
int uvr_open(uvn_conn *c);
/* Frees c's Redis protocol state (NULL state: nothing). */
void uvr_close(uvn_conn *c);
/* Parses and starts the commands that arrived in c->in. */
void uvr_on_read(uvn_conn *c);
/* Called by the shell's flush, outside any core call: parses the commands
 * that waited in c->in while UVR_OPS_MAX were in flight. */
void uvr_resume(uvn_conn *c);
/* A native frame (header and body) the core sent to c. */
void uvr_on_frame(uvn_conn *c, const uint8_t *frame, size_t len);

#endif
