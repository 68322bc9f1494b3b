/* test_rng_shuffle.c - core/rng's pvlm_rng_shuffle: a permutation, the same one as the
 * textbook loop it replaced (so shard orders and finetune epochs stay as before), the same
 * for any element size, and uniform over the 6 orders of 3 elements (chi-square). */
#include <stdint.h>
#include <string.h>

#include "core/rng.h"
#include "harness.h"

int main(void) {
    enum { N = 1000 };
    static int64_t a[N], ref[N];
    static unsigned char big[N][100];
    pvlm_rng r1, r2, r3;
    pvlm_rng_seed(&r1, 42, 7);
    pvlm_rng_seed(&r2, 42, 7);
    pvlm_rng_seed(&r3, 42, 7);
    for (int i = 0; i < N; i++) {
        a[i] = ref[i] = i;
        memset(big[i], 0, sizeof big[i]);
        memcpy(big[i] + 50, &a[i], sizeof a[i]);
    }
    pvlm_rng_shuffle(&r1, a, N, sizeof *a);
    for (int64_t i = N - 1; i > 0; i--) { /* the loop shard images and finetune used */
        int64_t j = (int64_t)pvlm_rng_below(&r2, (uint64_t)i + 1), t = ref[i];
        ref[i] = ref[j], ref[j] = t;
    }
    CHECK(!memcmp(a, ref, sizeof a));
    pvlm_rng_shuffle(&r3, big, N, sizeof big[0]);
    int same = 1, seen[N] = {0};
    for (int i = 0; i < N; i++) {
        int64_t v;
        memcpy(&v, big[i] + 50, sizeof v);
        same &= v == a[i];
        if (a[i] >= 0 && a[i] < N) seen[a[i]]++;
    }
    CHECK(same);
    for (int i = 0; i < N; i++) CHECK(seen[i] == 1);
    /* 0 and 1 elements are left alone */
    int one = 5;
    pvlm_rng_shuffle(&r1, &one, 1, sizeof one);
    pvlm_rng_shuffle(&r1, NULL, 0, sizeof one);
    CHECK(one == 5);
    /* uniform: 60000 shuffles of 3 elements, chi-square with 5 degrees of freedom < 20.5 (p = 0.001) */
    long count[6] = {0};
    for (int t = 0; t < 60000; t++) {
        char p[3] = {0, 1, 2};
        pvlm_rng_shuffle(&r1, p, 3, 1);
        count[p[0] * 2 + (p[1] > p[2])]++;
    }
    double chi = 0;
    for (int k = 0; k < 6; k++) chi += (count[k] - 10000.0) * (count[k] - 10000.0) / 10000.0;
    CHECK_MSG(chi < 20.5, "chi-square %.1f", chi);
    return pvlm_test_done("core_rng_shuffle");
}
