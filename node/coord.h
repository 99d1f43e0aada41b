/*
 * coord.h: coordination of client requests (node/coord.c): put and delete
 * (a tombstone put) with W/DW/PW, get with R/PR and read repair,
 * forwarding of writes to a primary, and their timeouts. The request state
 * machine is drawn in core.h.
 *
 * Depends on: core_int.h (the base), apl.h, levels.h, reap.h (a delete
 * every primary took, or a get that found such a one, schedules a reap).
 */
#ifndef KV_NODE_COORD_H
#define KV_NODE_COORD_H

#include <stdbool.h>
#include <stdint.h>

#include "core.h"

typedef struct core_req core_req;
typedef struct core_target core_target;

/* PUT, DEL (is_delete) from a client, or COORD_PUT from a peer that
 * forwarded it (from_peer). */
void coord_put(node *n, uint64_t conn, const wire_msg *m, bool is_delete,
               bool from_peer);
void coord_get(node *n, uint64_t conn, const wire_msg *m);
/* The awaited answer of target t of r (a PUT, GET or FWD request). */
void coord_on_reply(node *n, core_req *r, core_target *t, const wire_msg *m);
/* The coordinator's own write of r (target) committed or fsynced. */
void coord_store_done(node *n, core_req *r, uint32_t target, bool synced,
                      int status);
/* Targets of r failed with a closed connection: judge r again. */
void coord_conn_lost(node *n, core_req *r);
/* r's deadline passed. */
void coord_expired(node *n, core_req *r);

#endif
