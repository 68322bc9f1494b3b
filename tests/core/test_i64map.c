/* test_i64map.c - core/i64map against a plain array as the reference: random inserts with
 * duplicates (first value kept, the old one reported), growth from an empty map, lookups of
 * absent keys, extreme keys. */
#include <stdint.h>

#include "core/i64map.h"
#include "core/rng.h"
#include "harness.h"

int main(void) {
    enum { KEYS = 5000 };
    static int64_t ref[KEYS]; /* value of key k*7919 - 10^6, or -1 */
    for (int i = 0; i < KEYS; i++) ref[i] = -1;
    pvlm_i64map m = {0}; /* a zeroed map grows from nothing */
    CHECK(pvlm_i64map_get(&m, 5) == -1);
    pvlm_rng r;
    pvlm_rng_seed(&r, 3, 0);
    int bad = 0;
    for (int t = 0; t < 20000; t++) {
        int k = (int)pvlm_rng_below(&r, KEYS);
        int64_t key = (int64_t)k * 7919 - 1000000, old = -2;
        int a = pvlm_i64map_add(&m, key, t, &old);
        if (ref[k] < 0) {
            bad += a != 1;
            ref[k] = t;
        } else {
            bad += a != 0 || old != ref[k];
        }
    }
    size_t n = 0;
    for (int k = 0; k < KEYS; k++) {
        n += ref[k] >= 0;
        bad += pvlm_i64map_get(&m, (int64_t)k * 7919 - 1000000) != ref[k];
        bad += pvlm_i64map_get(&m, (int64_t)k * 7919 - 999999) != -1; /* never inserted */
    }
    CHECK_MSG(bad == 0, "%d mismatches", bad);
    CHECK(m.n == n && 2 * m.n <= m.cap);
    CHECK(pvlm_i64map_add(&m, INT64_MIN, 1, NULL) == 1 && pvlm_i64map_add(&m, INT64_MAX, 2, NULL) == 1);
    CHECK(pvlm_i64map_get(&m, INT64_MIN) == 1 && pvlm_i64map_get(&m, INT64_MAX) == 2);
    pvlm_i64map_free(&m);
    CHECK(pvlm_i64map_init(&m, 100) == 0 && m.cap >= 202 && pvlm_i64map_get(&m, 0) == -1);
    pvlm_i64map_free(&m);
    return pvlm_test_done("core_i64map");
}
