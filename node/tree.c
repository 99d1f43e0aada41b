/*
 * tree.c: Tictac hash trees (tree.h), pure.
 */
#include "tree.h"

#include <xxhash.h>

/* ---- trees ---- */

uint32_t tree_segment(const uint8_t *key, size_t klen) {
  return (uint32_t)(XXH3_64bits(key, klen) & (AAE_SEGMENTS - 1));
}

uint64_t tree_leaf_part(const uint8_t *key, size_t klen, uint64_t obj_hash) {
  return XXH3_64bits_withSeed(key, klen, obj_hash);
}

void tree_update(aae_tree *t, const uint8_t *key, size_t klen,
                 uint64_t old_hash, uint64_t new_hash) {
  uint32_t seg = tree_segment(key, klen);
  uint64_t delta = 0;
  if (old_hash)
    delta ^= tree_leaf_part(key, klen, old_hash);
  if (new_hash)
    delta ^= tree_leaf_part(key, klen, new_hash);
  t->leaf[seg] ^= delta;
  t->branch[seg / AAE_LEAVES_PER_BRANCH] ^= delta;
}
