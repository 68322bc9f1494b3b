/* i64map.h - a small hash map from 64-bit integer keys to non-negative 64-bit values
 * (indices): image ids -> image index (scoring), question ids -> item (VQA), row indices
 * already yielded (URL-list retries). Open addressing with linear probing over a power-of-two
 * table kept at most half full (grown by doubling), keys mixed with splitmix64
 * (core/rng.h's pvlm_mix64) so sequential ids spread out.
 *
 * Ownership: the map owns its two arrays; pvlm_i64map_free releases them (a zeroed map is
 * empty and may be freed). Not thread-safe.
 */
#ifndef PVLM_I64MAP_H
#define PVLM_I64MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct pvlm_i64map {
    int64_t *key;
    int64_t *val; /* -1: empty slot */
    size_t cap, n;
} pvlm_i64map;

/* Room for `expect` keys without growing. 0, or -1 when out of memory. */
int pvlm_i64map_init(pvlm_i64map *m, size_t expect);
void pvlm_i64map_free(pvlm_i64map *m);
/* The value of key, or -1 when absent. */
int64_t pvlm_i64map_get(const pvlm_i64map *m, int64_t key);
/* Insert key -> val (val >= 0) when key is absent: returns 1. When present the map is left
 * as it is, *old (may be NULL) gets its value and 0 is returned. -1 when out of memory. */
int pvlm_i64map_add(pvlm_i64map *m, int64_t key, int64_t val, int64_t *old);

#endif
