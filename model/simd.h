/* simd.h - the vector tier the model's loops run at, and AVX-512 register helpers shared by its kernels
 * (model/matmul.c's bf16 packing, model/ops.c's LayerNorm rows).
 *
 * Elementwise loops (GELU, AdamW, the fast softmax) are written once in portable C and compiled once per tier
 * (baseline x86-64: 4 lanes, AVX2: 8, AVX-512F: 16), the caller picking one with pvlm_simd_isa(). Every tier
 * runs the same IEEE single-precision operations in the same order for every element (C11 mode contracts
 * nothing into FMAs, and no tier reassociates), so every tier gives the same bits. The AVX-512 helpers below
 * are inlined into their callers, whose target must include AVX-512F; x86-64 only. */
#ifndef PVLM_MODEL_SIMD_H
#define PVLM_MODEL_SIMD_H

#include <stdlib.h>
#include <strings.h>

typedef enum pvlm_isa { PVLM_ISA_BASE = 0, PVLM_ISA_AVX2 = 1, PVLM_ISA_AVX512 = 2 } pvlm_isa;

/* A tier's name, as PVLM_MAX_ISA spells it: "base", "avx2", "avx512". */
static inline const char *pvlm_simd_isa_name(pvlm_isa t) {
    return t == PVLM_ISA_AVX512 ? "avx512" : t == PVLM_ISA_AVX2 ? "avx2" : "base";
}

/* The widest tier this CPU runs, capped by the environment variable PVLM_MAX_ISA (base | avx2 | avx512; as
 * oneDNN's ONEDNN_MAX_CPU_ISA: to rule a tier out, or to compare the tiers' bits, which tests do). It governs
 * the tiered loops and LayerNorm's AVX-512 rows, not the bf16 path's own kernels (PVLM_HIDE_BF16 hides those).
 * Read at each call (a flag read and a getenv: callers ask once per op, not per element). */
static inline pvlm_isa pvlm_simd_isa(void) {
    pvlm_isa cap = PVLM_ISA_AVX512, have = PVLM_ISA_BASE;
    const char *e = getenv("PVLM_MAX_ISA");
    for (int t = PVLM_ISA_BASE; e && t < PVLM_ISA_AVX512; t++)
        if (!strcasecmp(e, pvlm_simd_isa_name((pvlm_isa)t))) cap = (pvlm_isa)t;
#ifdef __x86_64__
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        have = PVLM_ISA_AVX512;
    else if (__builtin_cpu_supports("avx2"))
        have = PVLM_ISA_AVX2;
#endif
    return have < cap ? have : cap;
}

/* The one of three compilations of a loop (baseline, AVX2, AVX-512F) for tier t (evaluated up to twice, so
 * without side effects: pvlm_simd_isa() or a variable). */
#define PVLM_SIMD_PICK(t, base, avx2, avx512)                                                                          \
    ((t) == PVLM_ISA_AVX512 ? (avx512) : (t) == PVLM_ISA_AVX2 ? (avx2) : (base))

#ifdef __x86_64__
#include <immintrin.h>

/* The 16 x 16 matrix of 32-bit words r (row i = r[i]) transposed in place: pairs of words, then of
 * 64-bit halves inside each 128-bit lane, then a 4 x 4 transpose of the lanes themselves. */
__attribute__((target("avx512f"), always_inline)) static inline void pvlm_simd_transpose16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2)
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]), t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    for (int i = 0; i < 16; i += 4) {
        u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]), u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]), u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    /* u[4g + c], lane l: column 4l + c of rows 4g .. 4g+3; row 4l + c of the result takes lane l from each g */
    for (int c = 0; c < 4; c++) {
        __m512i v0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88), v1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xdd);
        __m512i v2 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88);
        __m512i v3 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xdd);
        r[c] = _mm512_shuffle_i32x4(v0, v2, 0x88), r[8 + c] = _mm512_shuffle_i32x4(v0, v2, 0xdd);
        r[4 + c] = _mm512_shuffle_i32x4(v1, v3, 0x88), r[12 + c] = _mm512_shuffle_i32x4(v1, v3, 0xdd);
    }
}
#endif

#endif
