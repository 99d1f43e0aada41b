/*
 * replica.h: the replica side of coordination (node/replica.c): REPL_PUT
 * merges the coordinator's object into ours and acknowledges after the
 * commit (and the fsync when the write is durable); REPL_GET answers with
 * our object.
 *
 * Depends on: core_int.h (the base).
 */
#ifndef KV_NODE_REPLICA_H
#define KV_NODE_REPLICA_H

#include <stdbool.h>
#include <stdint.h>

#include "core.h"

typedef struct core_req core_req;

void replica_on_put(node *n, uint64_t conn, const wire_msg *m);
void replica_on_get(node *n, uint64_t conn, const wire_msg *m);
/* A replica write committed (synced: or fsynced): acknowledge it. */
void replica_store_done(node *n, core_req *r, bool synced, int status);

#endif
