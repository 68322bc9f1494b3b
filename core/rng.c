/* rng.c - see rng.h. */
#include "rng.h"

#include <math.h>
#include <string.h>

void pvlm_rng_seed(pvlm_rng *r, uint64_t seed, uint64_t stream) {
    uint64_t x = pvlm_mix64(seed) ^ pvlm_mix64(stream + 0x632be59bd9b4e019ull);
    for (int i = 0; i < 4; i++) {
        x = pvlm_mix64(x + (uint64_t)i);
        r->s[i] = x;
    }
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1; /* all-zero state is invalid */
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t pvlm_rng_u64(pvlm_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t pvlm_rng_u32(pvlm_rng *r) { return (uint32_t)(pvlm_rng_u64(r) >> 32); }

uint64_t pvlm_rng_below(pvlm_rng *r, uint64_t n) {
    /* Lemire, "Fast random integer generation in an interval" (2019), with 128-bit product. */
    unsigned __int128 m = (unsigned __int128)pvlm_rng_u64(r) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        uint64_t t = (0 - n) % n;
        while (lo < t) {
            m = (unsigned __int128)pvlm_rng_u64(r) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

void pvlm_rng_shuffle(pvlm_rng *r, void *base, size_t n, size_t size) {
    unsigned char *b = base, tmp[64];
    for (size_t i = n; i-- > 1;) {
        size_t j = (size_t)pvlm_rng_below(r, (uint64_t)i + 1);
        if (j == i) continue;
        unsigned char *x = b + i * size, *y = b + j * size;
        for (size_t off = 0; off < size; off += sizeof tmp) { /* swap in chunks: any element size */
            size_t k = size - off < sizeof tmp ? size - off : sizeof tmp;
            memcpy(tmp, x + off, k);
            memcpy(x + off, y + off, k);
            memcpy(y + off, tmp, k);
        }
    }
}

double pvlm_rng_uniform(pvlm_rng *r) { return (double)(pvlm_rng_u64(r) >> 11) * 0x1.0p-53; }

double pvlm_rng_normal(pvlm_rng *r) {
    double u1 = pvlm_rng_uniform(r), u2 = pvlm_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
