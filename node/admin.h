/*
 * admin.h: the ADMIN commands of a node (node/admin.c): status, ring,
 * stats, preflist, transfers, join, leave, remove, log-level, repair,
 * backup, compact. Each answers ADMIN_OK with a msgpack map
 * (docs/protocol.md) or ERROR with a message; backup and compact are done
 * and answered by the environment (node_io.backup, node_io.compact).
 *
 * Depends on: core_int.h (the base), handoff.h (transfers), aae.h
 * (repair).
 */
#ifndef KV_NODE_ADMIN_H
#define KV_NODE_ADMIN_H

#include <stdint.h>

#include "core.h"

void admin_on_request(node *n, uint64_t conn, const wire_msg *m);

#endif
