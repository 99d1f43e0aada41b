/*
 * tree.h: Tictac hash trees, the data structure under anti-entropy (as
 * riak_core's hashtree and Riak 2.2's Tictac AAE). Pure: no node state.
 *
 * A partition's tree has AAE_SEGMENTS leaves, each the XOR of
 * XXH3(key, object hash) over the keys that fall in its segment, grouped
 * into AAE_BRANCHES branches (the XOR of their leaves). XOR makes an
 * update O(1): remove the old (key, hash) and add the new one to one leaf
 * and its branch. Two replicas compare branches, then the leaves of the
 * branches that differ, then the keys of the segments that differ.
 *
 * Depends on: xxHash.
 */
#ifndef KV_NODE_TREE_H
#define KV_NODE_TREE_H

#include <stddef.h>
#include <stdint.h>

#define AAE_BRANCHES 32u
#define AAE_LEAVES_PER_BRANCH 32u
#define AAE_SEGMENTS (AAE_BRANCHES * AAE_LEAVES_PER_BRANCH)
_Static_assert((AAE_SEGMENTS & (AAE_SEGMENTS - 1)) == 0,
               "segments are the low bits of a key's hash");

typedef struct aae_tree {
  uint64_t branch[AAE_BRANCHES];
  uint64_t leaf[AAE_SEGMENTS];
} aae_tree;

/* The segment (leaf index) of a key. */
uint32_t tree_segment(const uint8_t *key, size_t klen);
/* What a key with object hash obj_hash contributes to its leaf. */
uint64_t tree_leaf_part(const uint8_t *key, size_t klen, uint64_t obj_hash);
/* Replaces key's contribution old_hash by new_hash (0: none) in t. */
void tree_update(aae_tree *t, const uint8_t *key, size_t klen,
                 uint64_t old_hash, uint64_t new_hash);

#endif
