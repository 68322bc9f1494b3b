/* rng.h - small, serializable, deterministic random numbers.
 *
 * xoshiro256** (Blackman & Vigna, "Scrambled linear pseudorandom number
 * generators", 2018) seeded through splitmix64 so that (seed, stream) pairs
 * give independent sequences. The whole state is four uint64 words, so it
 * can be stored in a checkpoint (state.json) and restored exactly. Normal
 * variates use Box-Muller on doubles so results do not depend on libm's
 * float paths beyond log/sqrt/cos.
 */
#ifndef PVLM_RNG_H
#define PVLM_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct pvlm_rng {
    uint64_t s[4];
} pvlm_rng;

void pvlm_rng_seed(pvlm_rng *r, uint64_t seed, uint64_t stream);
uint64_t pvlm_rng_u64(pvlm_rng *r);
uint32_t pvlm_rng_u32(pvlm_rng *r);
/* Uniform integer in [0, n), unbiased (Lemire's rejection method); n > 0. */
uint64_t pvlm_rng_below(pvlm_rng *r, uint64_t n);
double pvlm_rng_uniform(pvlm_rng *r); /* [0, 1) with 53 random bits */
double pvlm_rng_normal(pvlm_rng *r);  /* standard normal */
/* Shuffle n elements of `size` bytes at base in place: Fisher-Yates (Knuth, TAOCP vol. 2,
 * Algorithm P) from the last element down, swapping i with pvlm_rng_below(i + 1). The same
 * generator state gives the same permutation (shard order, finetune epochs). */
void pvlm_rng_shuffle(pvlm_rng *r, void *base, size_t n, size_t size);
/* The one 64-bit mixer of pvlm: splitmix64's step (Steele, Lea and Flood, "Fast splittable
 * pseudorandom number generators", 2014: add the golden-ratio increment, then the variant-13
 * finaliser). It derives seeds (pvlm_rng_seed, the loader's permutation and streams, so its
 * constants are part of every seeded data order and must not change) and spreads integer keys
 * over hash tables (core/i64map, the tokenizer's and BPE trainer's pair tables, the PTB
 * tokenizer's n-gram table). Inline: the tokenizer calls it per pair lookup. */
static inline uint64_t pvlm_mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

#endif
