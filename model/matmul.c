/* matmul.c - see matmul.h. */
#include "matmul.h"

#include <cblas.h>
#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"
#include "core/threads.h"
#include "model/simd.h"

#ifdef PVLM_HAVE_DNNL
#include <immintrin.h>
#include <oneapi/dnnl/dnnl.h>
#endif

int pvlm_precision_parse(const char *s, pvlm_precision *p, pvlm_err *err) {
    if (s && !strcmp(s, "fp32")) return *p = PVLM_PREC_FP32, 0;
    if (s && !strcmp(s, "bf16")) return *p = PVLM_PREC_BF16, 0;
    return pvlm_err_set(err, PVLM_EINVAL, "precision '%s': expected fp32 or bf16", s ? s : "(null)");
}

const char *pvlm_precision_name(pvlm_precision p) { return p == PVLM_PREC_BF16 ? "bf16" : "fp32"; }

/* bfloat16 is the upper half of an IEEE fp32; round to nearest even on the dropped 16 bits, NaN stays NaN. */
static inline uint16_t to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* The bf16 value h as a float (exact). */
static inline float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float pvlm_bf16_round(float x) {
    return from_bf16(to_bf16(x));
}

/* AVX512-BF16 (VDPBF16PS, VCVTNE2PS2BF16) with AVX512BW and VL, which every such CPU has, enabled by the OS:
 * the compilers' CPU builtins, which check XCR0's AVX-512 state. A flag read, cheap enough to ask per row. */
static int cpu_avx512bf16(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
}

/* 0: no bf16 dot products; 1: AVX512-BF16 (pvlm's own kernel for attention's products runs VDPBF16PS);
 * 2: AMX-BF16 too (oneDNN then picks its AMX kernels; every AMX CPU so far has AVX512-BF16). AMX-BF16 is
 * CPUID leaf 7 subleaf 0 EDX bit 22 (Intel SDM vol. 2A, "CPUID") with XCR0's tile bits 17-18, read directly
 * because not every compiler's builtin knows the name (clang 14 rejects "amx-bf16"). */
static int cpu_bf16_level(void) {
    unsigned a, b, c, d, lo, hi;
    if (!cpu_avx512bf16()) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !((d >> 22) & 1u)) return 1;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((lo >> 17) & 3u) == 3u ? 2 : 1;
}

/* 1 when the environment variable name is set, not empty and not "0" (PVLM_HIDE_BF16, PVLM_BF16_EMULATE). */
static int env_on(const char *name) {
    const char *e = getenv(name);
    return e && *e && strcmp(e, "0");
}

int pvlm_bf16_available(char *why, size_t why_size) {
    const char *reason = NULL;
#ifndef PVLM_HAVE_DNNL
    reason = "this pvlm was built without oneDNN (install libdnnl-dev and reconfigure)";
#else
    if (env_on("PVLM_HIDE_BF16"))
        reason = "PVLM_HIDE_BF16 is set, hiding the CPU's bf16 instructions";
    else if (!cpu_bf16_level())
        reason = "this CPU has no bf16 dot-product instructions (AVX512-BF16)";
#endif
    if (reason && why && why_size) snprintf(why, why_size, "%s", reason);
    return reason == NULL;
}

char *openblas_get_corename(void); /* OpenBLAS's own API, not in cblas.h */

/* ISA level of an OpenBLAS x86-64 kernel set (its dynamic-arch core names) and of this CPU. */
static int core_level(const char *core) {
    static const struct {
        const char *name;
        int level;
    } t[] = {{"SapphireRapids", 5}, {"Cooperlake", 4}, {"SkylakeX", 3}, {"Haswell", 2}, {"Zen", 2},
             {"Sandybridge", 1}};
    for (size_t i = 0; core && i < sizeof t / sizeof *t; i++)
        if (!strcasecmp(core, t[i].name)) return t[i].level;
    return 0;
}

static int cpu_level(const char **best) {
    __builtin_cpu_init();
    int bf16 = cpu_bf16_level();
    if (bf16 == 2) return *best = "SapphireRapids", 5;
    if (bf16 == 1) return *best = "Cooperlake", 4;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw"))
        return *best = "SkylakeX", 3;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return *best = "Haswell", 2;
    if (__builtin_cpu_supports("avx")) return *best = "Sandybridge", 1;
    return *best = "generic", 0;
}

int pvlm_blas_kernel_check(char *msg, size_t n) {
    const char *ct = getenv("OPENBLAS_CORETYPE"), *l2 = getenv("OPENBLAS_L2_SIZE"), *best;
    if (!(ct && *ct) && !(l2 && *l2)) return 0;
    const char *core = openblas_get_corename();
    int have = core_level(core), can = cpu_level(&best);
    if (have >= can) return 0;
    snprintf(msg, n,
             "OpenBLAS runs its %s kernels, slower than this CPU's %s set, because %s%s%s%s%s is set in the "
             "environment; unset it for this command (docs/performance.md)",
             core ? core : "?", best, ct && *ct ? "OPENBLAS_CORETYPE=" : "", ct && *ct ? ct : "",
             ct && *ct && l2 && *l2 ? " / " : "", l2 && *l2 ? "OPENBLAS_L2_SIZE=" : "", l2 && *l2 ? l2 : "");
    return 1;
}

#define MAX_PRIMS 8
#define MAX_WEIGHTS 512 /* cached bf16 weight matrices; more are rounded per call, as any operand */

/* A weight matrix's bf16 copy: valid while gen equals the context's generation. */
typedef struct wcache {
    const float *src;
    int R, C, ld;
    unsigned gen;
    uint16_t *bf;
} wcache;

struct pvlm_matmul {
    pvlm_precision prec;
    pvlm_err err; /* first bf16 failure, sticky until pvlm_matmul_check */
    uint16_t *a16, *b16;
    size_t a_cap, b_cap; /* elements */
    const float *a_src;  /* the stored matrix a16 holds (rows, cols, ld), for PVLM_MM_A_AGAIN */
    int a_R, a_C, a_ld;
    int emul;       /* bf16 emulated: the products run in fp32 on the bf16 operands (pvlm_matmul_emulated) */
    float *f32;     /* the emulation's fp32 copies of the operands (and of a bf16 result) */
    size_t f32_cap; /* floats */
    unsigned gen; /* bumped by pvlm_matmul_weights_changed */
    wcache w[MAX_WEIGHTS];
    int n_w;
    size_t w_bytes;
#ifdef PVLM_HAVE_DNNL
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    struct {
        int ta, tb, bias, c16;
        float alpha, beta;
        dnnl_primitive_t prim;
    } prims[MAX_PRIMS];
    int n_prims;
#endif
};

int pvlm_matmul_create(pvlm_matmul **out, pvlm_precision p, pvlm_err *err) {
    *out = NULL;
    char why[160];
    int emul = p == PVLM_PREC_BF16 && !pvlm_bf16_available(why, sizeof why);
    if (emul && !env_on("PVLM_BF16_EMULATE"))
        return pvlm_err_set(err, PVLM_EINVAL,
                            "--precision bf16 unavailable: %s; use --precision fp32, or set PVLM_BF16_EMULATE=1 to "
                            "emulate bf16 (its numerics, with fp32 products: slower than fp32)",
                            why);
    pvlm_matmul *mm = pvlm_alloc(sizeof *mm, err); /* zero-filled */
    if (!mm) return -1;
    mm->prec = p, mm->emul = emul;
#ifdef PVLM_HAVE_DNNL
    if (p == PVLM_PREC_BF16 && !emul) {
        if (dnnl_engine_create(&mm->eng, dnnl_cpu, 0) != dnnl_success ||
            dnnl_stream_create(&mm->stream, mm->eng, dnnl_stream_default_flags) != dnnl_success) {
            pvlm_matmul_free(mm);
            return pvlm_err_set(err, PVLM_EINVAL, "--precision bf16: oneDNN could not create a CPU engine");
        }
    }
#endif
    *out = mm;
    return 0;
}

void pvlm_matmul_free(pvlm_matmul *mm) {
    if (!mm) return;
#ifdef PVLM_HAVE_DNNL
    for (int i = 0; i < mm->n_prims; i++) dnnl_primitive_destroy(mm->prims[i].prim);
    if (mm->stream) dnnl_stream_destroy(mm->stream);
    if (mm->eng) dnnl_engine_destroy(mm->eng);
#endif
    for (int i = 0; i < mm->n_w; i++) pvlm_free(mm->w[i].bf);
    pvlm_free(mm->a16);
    pvlm_free(mm->b16);
    pvlm_free(mm->f32);
    pvlm_free(mm);
}

pvlm_precision pvlm_matmul_precision(const pvlm_matmul *mm) { return mm ? mm->prec : PVLM_PREC_FP32; }

int pvlm_matmul_emulated(const pvlm_matmul *mm) {
    return mm && mm->emul;
}

void pvlm_matmul_weights_changed(pvlm_matmul *mm) {
    if (mm) mm->gen++;
}

size_t pvlm_matmul_weight_bytes(const pvlm_matmul *mm) { return mm ? mm->w_bytes : 0; }

int pvlm_matmul_check(pvlm_matmul *mm, pvlm_err *err) {
    if (!mm || mm->err.code == 0) return 0;
    if (err) *err = mm->err;
    memset(&mm->err, 0, sizeof mm->err);
    return -1;
}

#ifdef PVLM_HAVE_DNNL
/* The first n of 16 lanes (none for n <= 0, all for n >= 16). */
static inline __mmask16 first_n(int n) {
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
}

/* The bf16 rounding of the whole bf16 path: 32 floats x[0..32) (lanes outside lo / hi read as zero) to 32
 * bf16 in order, by the CPU's VCVTNE2PS2BF16: round to nearest even and NaN kept quiet, as pvlm_bf16_round,
 * except that fp32 denormals become zero where the software rounding keeps them (as bf16 denormals, or
 * 2^-126 just below it). The products cannot tell: VDPBF16PS and AMX read bf16 denormals as zero (Intel SDM
 * vol. 2C, "VDPBF16PS": DAZ implied), so the only inputs that differ are those within 2^-134 below 2^-126.
 * One instruction per 32 elements, against nine integer operations per 16 for the software rounding: 1.4 ->
 * 0.9 ms for a 2560 x 2048 activation streaming from memory, 0.36 -> 0.2 ms from cache, at 1 thread. */
__attribute__((target("avx512f,avx512bf16"), always_inline)) static inline __m512i bf16x32(const float *x,
                                                                                          __mmask16 lo,
                                                                                          __mmask16 hi) {
    return (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, x + 16), _mm512_maskz_loadu_ps(lo, x));
}

/* x[0..n) rounded into d (bf16x32), the tail masked. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void row_bf16_avx512(uint16_t *d, const float *x,
                                                                                     int n) {
    int c = 0;
    for (; c + 32 <= n; c += 32) _mm512_storeu_si512((void *)(d + c), bf16x32(x + c, 0xffff, 0xffff));
    if (c < n) {
        __mmask16 lo = first_n(n - c), hi = first_n(n - c - 16);
        _mm512_mask_storeu_epi16(d + c, ((__mmask32)hi << 16) | lo, bf16x32(x + c, lo, hi));
    }
}

/* acc[0..w) += x[0..w), and x rounded into d (bf16x32) unless d is NULL: each 32 floats loaded once. The sums
 * are the portable loop's, column by column (the bits do not depend on the path). */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void colsum_row_avx512(float *acc, uint16_t *d,
                                                                                     const float *x, int w) {
    for (int c = 0; c < w; c += 32) {
        __mmask16 lo = first_n(w - c), hi = first_n(w - c - 16);
        __m512 a = _mm512_maskz_loadu_ps(lo, x + c), b = _mm512_maskz_loadu_ps(hi, x + c + 16);
        _mm512_mask_storeu_ps(acc + c, lo, _mm512_add_ps(_mm512_maskz_loadu_ps(lo, acc + c), a));
        _mm512_mask_storeu_ps(acc + c + 16, hi, _mm512_add_ps(_mm512_maskz_loadu_ps(hi, acc + c + 16), b));
        if (d) _mm512_mask_storeu_epi16(d + c, ((__mmask32)hi << 16) | lo, (__m512i)_mm512_cvtne2ps_pbh(b, a));
    }
}

#endif

/* x[0..n) rounded to bf16 into d: the CPU's conversion (bf16x32) where it has one, else to_bf16, which gives
 * the same bits but for fp32 denormals (see bf16x32). */
static void row_bf16(uint16_t *d, const float *x, int n) {
#ifdef PVLM_HAVE_DNNL
    if (cpu_avx512bf16()) {
        row_bf16_avx512(d, x, n);
        return;
    }
#endif
    for (int i = 0; i < n; i++) d[i] = to_bf16(x[i]);
}

/* dst [R, Cc] compact row-major bf16 = X [R, ld] (its first Cc columns), rounded; the transposes are
 * oneDNN's (a column-major memory layout), not copied here. Rows are handed out dynamically (a slowed vCPU
 * takes fewer), PVLM_THREADS_ITEM floats of them or more at a time (core/threads.h). */
static void pack_bf16(uint16_t *dst, const float *X, int ld, int R, int Cc) {
    int per = Cc >= PVLM_THREADS_ITEM ? 1 : PVLM_THREADS_ITEM / Cc;
#pragma omp parallel for schedule(dynamic, per)
    for (int r = 0; r < R; r++) row_bf16(dst + (size_t)r * Cc, X + (size_t)r * ld, Cc);
}

/* buf (holding *cap elements of elem bytes) grown to n elements, its contents dropped; NULL with mm->err set
 * when memory is short (buf is then freed and *cap 0). Returns buf itself when it is large enough. */
static void *grow(pvlm_matmul *mm, void *buf, size_t *cap, size_t n, size_t elem) {
    if (n <= *cap) return buf;
    pvlm_free(buf);
    buf = pvlm_alloc(n * elem, &mm->err);
    *cap = buf ? n : 0;
    return buf;
}

#ifdef PVLM_HAVE_DNNL
/* The matmul primitive for bf16 op(A) [M,K] x op(B) [K,N] -> f32 [M,N] (bf16 when c16), all dims set at run
 * time, A / B row-major or (ta / tb) column-major, dst = alpha * AB + beta * dst (output scale and sum
 * post-op), plus an f32 [1,N] bias row when bias (added by oneDNN after the accumulation: no pass over dst
 * before the product). A bf16 dst is the f32 result rounded to nearest even (the same bits as rounding the f32
 * dst with pvlm_bf16_round_n: measured on the bench shapes, and checked by tests/model/test_bf16.c). */
static dnnl_primitive_t get_prim(pvlm_matmul *mm, int ta, int tb, float alpha, float beta, int bias, int c16) {
    for (int i = 0; i < mm->n_prims; i++)
        if (mm->prims[i].ta == ta && mm->prims[i].tb == tb && mm->prims[i].alpha == alpha &&
            mm->prims[i].beta == beta && mm->prims[i].bias == bias && mm->prims[i].c16 == c16)
            return mm->prims[i].prim;
    if (mm->n_prims == MAX_PRIMS) { /* a new (alpha, beta) pair: drop the oldest */
        dnnl_primitive_destroy(mm->prims[0].prim);
        memmove(&mm->prims[0], &mm->prims[1], sizeof mm->prims[0] * (MAX_PRIMS - 1));
        mm->n_prims--;
    }
    dnnl_dims_t rt = {DNNL_RUNTIME_DIM_VAL, DNNL_RUNTIME_DIM_VAL}, rt_bias = {1, DNNL_RUNTIME_DIM_VAL};
    dnnl_memory_desc_t a, b, c, bi;
    dnnl_matmul_desc_t md;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    int ok = dnnl_memory_desc_init_by_tag(&a, 2, rt, dnnl_bf16, ta ? dnnl_ba : dnnl_ab) == dnnl_success &&
             dnnl_memory_desc_init_by_tag(&b, 2, rt, dnnl_bf16, tb ? dnnl_ba : dnnl_ab) == dnnl_success &&
             dnnl_memory_desc_init_by_tag(&c, 2, rt, c16 ? dnnl_bf16 : dnnl_f32, dnnl_ab) == dnnl_success &&
             dnnl_memory_desc_init_by_tag(&bi, 2, rt_bias, dnnl_f32, dnnl_ab) == dnnl_success &&
             dnnl_matmul_desc_init(&md, &a, &b, bias ? &bi : NULL, &c) == dnnl_success &&
             dnnl_primitive_attr_create(&attr) == dnnl_success && dnnl_post_ops_create(&po) == dnnl_success;
    if (ok && alpha != 1.0f) ok = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha) == dnnl_success;
    if (ok && beta != 0.0f)
        ok = dnnl_post_ops_append_sum(po, beta) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
    if (ok) ok = dnnl_primitive_desc_create(&pd, &md, attr, mm->eng, NULL) == dnnl_success;
    if (ok) ok = dnnl_primitive_create(&prim, pd) == dnnl_success;
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (!ok) {
        pvlm_err_set(&mm->err, PVLM_EINVAL,
                     "bf16 matmul: oneDNN has no bf16 matmul (alpha %g, beta %g%s) on this CPU", (double)alpha,
                     (double)beta, bias ? ", bias" : "");
        return NULL;
    }
    mm->prims[mm->n_prims].ta = ta, mm->prims[mm->n_prims].tb = tb, mm->prims[mm->n_prims].bias = bias;
    mm->prims[mm->n_prims].c16 = c16;
    mm->prims[mm->n_prims].alpha = alpha, mm->prims[mm->n_prims].beta = beta, mm->prims[mm->n_prims].prim = prim;
    mm->n_prims++;
    return prim;
}

/* C = alpha * op(A) @ op(B) + beta * C (+ bias) on bf16 operands in oneDNN (get_prim). */
static void product_dnnl(pvlm_matmul *mm, int ta, int tb, int M, int N, int K, float alpha, const uint16_t *a16,
                         int lda, const uint16_t *b16, int ldb, float beta, const float *bias, void *C, int ldc,
                         int c16) {
    dnnl_primitive_t prim = get_prim(mm, ta, tb, alpha, beta, bias != NULL, c16);
    if (!prim) return;
    /* op(A) [M,K]: row-major, or column-major (A stored [K,M]); likewise op(B) [K,N] */
    dnnl_dims_t da = {M, K}, sa = {ta ? 1 : lda, ta ? lda : 1}, db = {K, N}, sb = {tb ? 1 : ldb, tb ? ldb : 1};
    dnnl_dims_t dc = {M, N}, sc = {ldc, 1}, dbi = {1, N}, sbi = {N, 1};
    dnnl_memory_desc_t a, b, c, bi;
    dnnl_memory_t ma = NULL, mb = NULL, mc = NULL, mbi = NULL;
    int ok = dnnl_memory_desc_init_by_strides(&a, 2, da, dnnl_bf16, sa) == dnnl_success &&
             dnnl_memory_desc_init_by_strides(&b, 2, db, dnnl_bf16, sb) == dnnl_success &&
             dnnl_memory_desc_init_by_strides(&c, 2, dc, c16 ? dnnl_bf16 : dnnl_f32, sc) == dnnl_success &&
             dnnl_memory_create(&ma, &a, mm->eng, (void *)a16) == dnnl_success &&
             dnnl_memory_create(&mb, &b, mm->eng, (void *)b16) == dnnl_success &&
             dnnl_memory_create(&mc, &c, mm->eng, C) == dnnl_success;
    if (ok && bias)
        ok = dnnl_memory_desc_init_by_strides(&bi, 2, dbi, dnnl_f32, sbi) == dnnl_success &&
             dnnl_memory_create(&mbi, &bi, mm->eng, (void *)bias) == dnnl_success;
    if (ok) {
        dnnl_exec_arg_t args[4] = {
            {DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}, {DNNL_ARG_BIAS, mbi}};
        ok = dnnl_primitive_execute(prim, mm->stream, bias ? 4 : 3, args) == dnnl_success &&
             dnnl_stream_wait(mm->stream) == dnnl_success;
    }
    if (ma) dnnl_memory_destroy(ma);
    if (mb) dnnl_memory_destroy(mb);
    if (mc) dnnl_memory_destroy(mc);
    if (mbi) dnnl_memory_destroy(mbi);
    if (!ok) pvlm_err_set(&mm->err, PVLM_EINVAL, "bf16 matmul: oneDNN failed on [%d x %d] x [%d x %d]", M, K, K, N);
}
#endif

/* ---------------------------------------------------------------- bf16 emulated
 * Where the CPU has no bf16 products and PVLM_BF16_EMULATE asks for them anyway, every bf16 product takes the
 * operands the bf16 path would give its kernels (rounded to bf16 by the same code, weight copies and repeated
 * A included) and multiplies them in fp32. The product of two bf16 values (8 significant bits each) is exact
 * in fp32 (24), so each term is the one VDPBF16PS forms and only the order of the fp32 accumulation differs:
 * the numerics of bf16, at the speed of fp32 or below. For checking a bf16 run on any machine, and for the
 * tests of the bf16 path on CPUs without it. */

/* y [R, C] compact floats = the bf16 values x [R, C] (row stride ld), exactly. */
static void widen_bf16(float *y, const uint16_t *x, int ld, int R, int C) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) y[(size_t)r * C + c] = from_bf16(x[(size_t)r * ld + c]);
}

/* product_dnnl's contract in fp32 products: the widened operands through cblas_sgemm (alpha, beta), the bias
 * added after the accumulation and a bf16 result rounded from the fp32 one, as oneDNN does. */
static void product_emul(pvlm_matmul *mm, int ta, int tb, int M, int N, int K, float alpha, const uint16_t *a16,
                         int lda, const uint16_t *b16, int ldb, float beta, const float *bias, void *C, int ldc,
                         int c16) {
    int aR = ta ? K : M, aC = ta ? M : K, bR = tb ? N : K, bC = tb ? K : N;
    size_t na = (size_t)aR * aC, nb = (size_t)bR * bC;
    if (!(mm->f32 = grow(mm, mm->f32, &mm->f32_cap, na + nb + (c16 ? (size_t)M * N : 0), sizeof(float)))) return;
    float *a = mm->f32, *b = a + na, *c = c16 ? b + nb : C;
    int ldcf = c16 ? N : ldc;
    widen_bf16(a, a16, lda, aR, aC);
    widen_bf16(b, b16, ldb, bR, bC);
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, a, aC, b,
                bC, beta, c, ldcf);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < M; r++) {
        float *y = c + (size_t)r * ldcf;
        if (bias)
            for (int j = 0; j < N; j++) y[j] += bias[j];
        if (c16) row_bf16((uint16_t *)C + (size_t)r * ldc, y, N);
    }
}

/* The bf16 copy of weight matrix X [R, ld] (first C columns): converted once per generation. NULL when the
 * table is full or memory is short (the caller then rounds it into scratch as any operand). */
static const uint16_t *weight_bf16(pvlm_matmul *mm, const float *X, int ld, int R, int C) {
    wcache *w = NULL;
    for (int i = 0; i < mm->n_w && !w; i++)
        if (mm->w[i].src == X && mm->w[i].R == R && mm->w[i].C == C && mm->w[i].ld == ld) w = &mm->w[i];
    if (!w) {
        if (mm->n_w == MAX_WEIGHTS) return NULL;
        uint16_t *bf = pvlm_alloc((size_t)R * C * sizeof(uint16_t), NULL);
        if (!bf) return NULL;
        w = &mm->w[mm->n_w++];
        *w = (wcache){X, R, C, ld, mm->gen - 1u, bf};
        mm->w_bytes += (size_t)R * C * sizeof(uint16_t);
    }
    if (w->gen != mm->gen) pack_bf16(w->bf, X, ld, R, C), w->gen = mm->gen;
    return w->bf;
}

static void gemm_bf16(pvlm_matmul *mm, unsigned hints, int ta, int tb, int M, int N, int K, float alpha, const void *A,
                      int lda, const void *B, int ldb, float beta, const float *bias, void *C, int ldc) {
    if (mm->err.code) {
        mm->a_src = NULL;
        return;
    }
    int aR = ta ? K : M, aC = ta ? M : K, bR = tb ? N : K, bC = tb ? K : N;
    const uint16_t *a16 = (hints & PVLM_MM_A_BF16) ? A : NULL, *b16 = (hints & PVLM_MM_B_BF16) ? B : NULL;
    if (!b16 && (hints & PVLM_MM_B_WEIGHT) && (b16 = weight_bf16(mm, B, ldb, bR, bC))) ldb = bC; /* compact */
    int a_again =
        !a16 && (hints & PVLM_MM_A_AGAIN) && mm->a_src == A && mm->a_R == aR && mm->a_C == aC && mm->a_ld == lda;
    if (!a16 && !a_again) mm->a_src = NULL; /* a16 is about to be overwritten (or freed and grown) */
    if (!a16 && !a_again && !(mm->a16 = grow(mm, mm->a16, &mm->a_cap, (size_t)M * K, sizeof(uint16_t)))) return;
    if (!b16 && !(mm->b16 = grow(mm, mm->b16, &mm->b_cap, (size_t)K * N, sizeof(uint16_t)))) return;
    if (!a16 && !a_again) {
        pack_bf16(mm->a16, A, lda, aR, aC);
        mm->a_src = A, mm->a_R = aR, mm->a_C = aC, mm->a_ld = lda;
    }
    if (!a16) a16 = mm->a16, lda = ta ? M : K; /* the copy is compact */
    if (!b16) pack_bf16(mm->b16, B, ldb, bR, bC), b16 = mm->b16, ldb = bC;
    int c16 = !!(hints & PVLM_MM_C_BF16);
#ifdef PVLM_HAVE_DNNL
    if (!mm->emul) {
        product_dnnl(mm, ta, tb, M, N, K, alpha, a16, lda, b16, ldb, beta, bias, C, ldc, c16);
        return;
    }
#endif
    product_emul(mm, ta, tb, M, N, K, alpha, a16, lda, b16, ldb, beta, bias, C, ldc, c16);
}

/* Column sums of Y = map(X, aux) (Y = X without a map) into db, and (d16 not NULL) Y rounded into d16 [R, C]
 * compact, in one pass; without d16 a map writes Y over X. The pass is cut into tiles of consecutive rows
 * times a block of up to CS_W columns (core/threads.h pvlm_threads_col_tiles: the order of every sum depends on
 * R and C only), handed out dynamically. A tile walks its rows in memory order, adding into column sums that
 * stay in L1. Splitting the rows, not only the columns, matters on this VM: two threads each summing one half
 * of the same rows (the earlier split) ran 2-3.6x slower than two threads on different rows (1865 x 512 and
 * x 2048 with the bf16 rounding, 2 threads, cold data), no faster than one thread. A tile's piece of a row is
 * a page or less, where the hardware prefetcher starts over, so the rows CS_AHEAD ahead are prefetched
 * (measured 10-30% faster on 2400 x 2048 and 900 x 8192 at 1 and 2 threads; without it one thread's pass ran
 * 5x slower here). The groups' partials live on the stack (CS_PART floats). */
#define CS_W 1024
#define CS_AHEAD 4
#define CS_PART 16384 /* floats: 64 KB */
#define CS_ROWS 64    /* the fewest rows in a group */
static void colsum_tile(float *acc, uint16_t *d16, float *X, const float *aux, pvlm_mm_rowmap map, int r0, int r1,
                        int R, int c0, int w, int C, int ld) {
#ifdef PVLM_HAVE_DNNL
    int wide = cpu_avx512bf16(); /* colsum_row_avx512's ISA */
#endif
    float y[CS_W];
    memset(acc, 0, sizeof(float) * (size_t)w);
    for (int r = r0; r < r1; r++) {
        const float *x = X + (size_t)r * ld + c0;
        if (r + CS_AHEAD < R)
            for (int c = 0; c < w; c += 16) {
                __builtin_prefetch(x + (size_t)CS_AHEAD * ld + c);
                if (map) __builtin_prefetch(aux + (size_t)(r + CS_AHEAD) * ld + c0 + c);
            }
        if (map) { /* the row mapped: into X itself, or (only its rounding is kept) into y */
            map(d16 ? y : X + (size_t)r * ld + c0, x, aux + (size_t)r * ld + c0, (size_t)w);
            if (d16) x = y;
        }
#ifdef PVLM_HAVE_DNNL
        if (wide) {
            colsum_row_avx512(acc, d16 ? d16 + (size_t)r * C + c0 : NULL, x, w);
            continue;
        }
#endif
#pragma omp simd
        for (int c = 0; c < w; c++) acc[c] += x[c];
        if (d16) row_bf16(d16 + (size_t)r * C + c0, x, w); /* bf16 emulated */
    }
}

static void colsum_pass(float *db, uint16_t *d16, float *X, const float *aux, pvlm_mm_rowmap map, int R, int C,
                        int ld) {
    pvlm_col_tiles t = pvlm_threads_col_tiles(R, C, CS_W, CS_PART, CS_ROWS);
    float part[CS_PART];                   /* [ngrp, C] when ngrp > 1 */
#pragma omp parallel for schedule(dynamic) /* tiles are independent; a slowed vCPU takes fewer */
    for (int i = 0; i < t.nblk * t.ngrp; i++) {
        pvlm_col_tile k = pvlm_threads_col_tile(&t, i);
        if (k.w <= 0) continue;
        float acc[CS_W];
        colsum_tile(acc, d16, X, aux, map, k.r0, k.r1, R, k.c0, k.w, C, ld);
        pvlm_threads_col_tile_put(&t, &k, acc, db, part);
    }
    pvlm_threads_col_tiles_add(&t, db, part);
}

void pvlm_matmul_colsum_map(pvlm_matmul *mm, float *db, float *X, const float *aux, pvlm_mm_rowmap map, int R, int C,
                            int ld) {
    if (R <= 0 || C <= 0) return;
    uint16_t *d16 = NULL;
    if (mm) mm->a_src = NULL; /* a16 is about to be overwritten (or freed and grown) */
    if (mm && mm->prec == PVLM_PREC_BF16 && !mm->err.code)
        d16 = mm->a16 = grow(mm, mm->a16, &mm->a_cap, (size_t)R * C, sizeof(uint16_t));
    colsum_pass(db, d16, X, aux, map, R, C, ld);
    if (d16) mm->a_src = X, mm->a_R = R, mm->a_C = C, mm->a_ld = ld;
}

void pvlm_matmul_colsum(pvlm_matmul *mm, float *db, const float *X, int R, int C, int ld) {
    pvlm_matmul_colsum_map(mm, db, (float *)X, NULL, NULL, R, C, ld); /* X is written only by a map */
}

void pvlm_bf16_round_n(uint16_t *dst, const float *x, size_t n) {
    for (size_t i = 0, step = (size_t)1 << 30; i < n; i += step)
        row_bf16(dst + i, x + i, (int)(n - i < step ? n - i : step));
}

#ifdef PVLM_HAVE_DNNL
/* ---------------------------------------------------------------- small products in bf16
 * Attention's per-head products are small (tens of rows and columns, a reduction over one head's width or
 * one sequence) and strided inside the projections' outputs; one oneDNN call each, with its descriptors and
 * its own packing, ran at about a third of the bf16 peak (docs/performance.md). This kernel packs both
 * operands, rounded to bf16, into the pair-interleaved layout VDPBF16PS reads (elements k and k+1 side by
 * side in one 32-bit word, Intel SDM vol. 2C "VDPBF16PS") and keeps an SM_MR x SM_NC tile of fp32
 * accumulators in registers; the rounding is bf16x32's, the same as the linear layers'. The scratch is
 * bounded and on the stack (threads call it at once): panels of SM_KC reductions by up to SM_NG columns of
 * op(B), blocks of SM_MC rows of op(A), each packed once per panel. The order of the accumulation depends on
 * the shapes only, so the bits do not depend on the thread count. */
#define SM_NC 64  /* columns of C per register tile: 4 vectors of 16 */
#define SM_NG 256 /* columns of op(B) packed per panel */
#define SM_MC 64  /* rows of op(A) packed per block */
#define SM_KC 128 /* reduction depth per panel (even) */
#define SM_MR 6   /* rows per register tile: 6 x 4 accumulators, 4 B vectors and a broadcast fit in 32 zmm */
#define SM_TARGET "avx512f,avx512bw,avx512vl,avx512bf16"

/* 16 elements of a row from x (floats, rounded here; or bf16 when b16), lanes outside m read as zero. */
__attribute__((target(SM_TARGET), always_inline)) static inline __m256i row16(const void *x, int b16, __mmask16 m) {
    if (b16) return _mm256_maskz_loadu_epi16(m, x);
    return (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x));
}

/* dst[kp][j] (row stride ldd words) = bf16(X[2kp][j]) | bf16(X[2kp+1][j]) << 16 for the reduction index k
 * running down X's rows: kc rows (an odd last pair gets a zero high half), cols columns, zero up to the next
 * multiple of 16. X holds floats, or bf16 values when b16 (taken as they are); ldx counts elements. */
__attribute__((target(SM_TARGET))) static void pairs_down(uint32_t *dst, int ldd, const void *X, int b16, int ldx,
                                                          int kc, int cols) {
    /* 16-bit lane i of the result takes lane i / 2 of the low row (even i) or of the high row (odd i) */
    const __m512i mix = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21,
                                         5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int kp = 0; kp < (kc + 1) / 2; kp++) {
        const void *x0 = pvlm_matmul_elem(X, b16, (size_t)2 * kp * ldx), *x1 = pvlm_matmul_elem(x0, b16, ldx);
        int odd = 2 * kp + 1 == kc;
        for (int j = 0; j < cols; j += 16) {
            __mmask16 m = first_n(cols - j);
            __m256i lo = row16(pvlm_matmul_elem(x0, b16, j), b16, m);
            __m256i hi = row16(pvlm_matmul_elem(x1, b16, j), b16, odd ? 0 : m);
            _mm_prefetch(pvlm_matmul_elem(x0, b16, 8 * (size_t)ldx + j), _MM_HINT_T0);
            _mm_prefetch(pvlm_matmul_elem(x1, b16, 8 * (size_t)ldx + j), _MM_HINT_T0);
            __m512i w = _mm512_permutexvar_epi16(mix, _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
            _mm512_storeu_si512((void *)(dst + (size_t)kp * ldd + j), w);
        }
    }
}

/* The same layout for k running along X's rows (X[j][k], j < rows, k < kc): each row's rounded pairs are
 * its words already, and 16 rows' words are transposed in registers. */
__attribute__((target(SM_TARGET))) static void pairs_across(uint32_t *dst, int ldd, const void *X, int b16, int ldx,
                                                            int kc, int rows) {
    int np = (kc + 1) / 2;
    for (int j0 = 0; j0 < rows; j0 += 16)
        for (int k0 = 0; k0 < kc; k0 += 32) {
            __m512i r[16];
            __mmask16 mlo = first_n(kc - k0), mhi = first_n(kc - k0 - 16);
            for (int j = 0; j < 16; j++) {
                const void *x = pvlm_matmul_elem(X, b16, (size_t)(j0 + j) * ldx + k0);
                int in = j0 + j < rows;
                if (b16)
                    r[j] = _mm512_maskz_loadu_epi16(in ? ((__mmask32)mhi << 16) | mlo : 0, x);
                else
                    r[j] = bf16x32((const float *)x, in ? mlo : 0, in ? mhi : 0);
                _mm_prefetch(pvlm_matmul_elem(x, b16, 16 * (size_t)ldx), _MM_HINT_T0);
                _mm_prefetch(pvlm_matmul_elem(x, b16, 16 * (size_t)ldx + 16), _MM_HINT_T0);
            }
            pvlm_simd_transpose16(r);
            for (int q = 0; q < 16 && k0 / 2 + q < np; q++)
                _mm512_storeu_si512((void *)(dst + (size_t)(k0 / 2 + q) * ldd + j0), r[q]);
        }
}

/* C rows 0..MR-1, vectors 0..NV-1 (the last one masked by last) = alpha * the sum over kp < np of the pair
 * products of ap[kp * SM_MC + i] and bp[kp * SM_NG + 16 v ..], plus beta * C on the first panel (first;
 * beta 0 reads no C) or plus C on later ones. MR and NV are constants in each instance, so the tile stays in
 * registers. */
__attribute__((target(SM_TARGET), always_inline)) static inline void tile(const int MR, const int NV,
                                                                         const uint32_t *ap, const uint32_t *bp, int np,
                                                                         float *C, int ldc, float alpha, float beta,
                                                                         int first, __mmask16 last) {
    __m512 acc[SM_MR][4];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();
    for (int kp = 0; kp < np; kp++) {
        __m512i b[4];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) b[v] = _mm512_loadu_si512((const void *)(bp + (size_t)kp * SM_NG + 16 * v));
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            __m512bh a = (__m512bh)_mm512_set1_epi32((int)ap[(size_t)kp * SM_MC + i]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], a, (__m512bh)b[v]);
        }
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            float *c = C + (size_t)i * ldc + 16 * v;
            __mmask16 m = v == NV - 1 ? last : (__mmask16)0xffff;
            __m512 y = _mm512_mul_ps(va, acc[i][v]);
            if (!first) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, c));
            else if (beta != 0.0f) y = _mm512_add_ps(y, _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m, c)));
            _mm512_mask_storeu_ps(c, m, y);
        }
}

typedef void (*tile_fn)(const uint32_t *, const uint32_t *, int, float *, int, float, float, int, __mmask16);
#define TILE(MR, NV)                                                                                                 \
    __attribute__((target(SM_TARGET))) static void tile_##MR##_##NV(const uint32_t *ap, const uint32_t *bp, int np,  \
                                                                    float *C, int ldc, float alpha, float beta,       \
                                                                    int first, __mmask16 last) {                      \
        tile(MR, NV, ap, bp, np, C, ldc, alpha, beta, first, last);                                                  \
    }
#define TILES(MR) TILE(MR, 1) TILE(MR, 2) TILE(MR, 3) TILE(MR, 4)
TILES(1) TILES(2) TILES(3) TILES(4) TILES(5) TILES(6)
#define TROW(MR) {tile_##MR##_1, tile_##MR##_2, tile_##MR##_3, tile_##MR##_4}
static const tile_fn tiles[SM_MR][4] = {TROW(1), TROW(2), TROW(3), TROW(4), TROW(5), TROW(6)};

static void small_bf16(unsigned hints, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda,
                       const void *B, int ldb, float beta, float *C, int ldc) {
    int a16 = !!(hints & PVLM_MM_A_BF16), b16 = !!(hints & PVLM_MM_B_BF16);
    _Alignas(64) uint32_t ap[SM_KC / 2 * SM_MC], bp[SM_KC / 2 * SM_NG]; /* 16 and 64 KiB */
    for (int g0 = 0; g0 < N; g0 += SM_NG) {
        int gc = N - g0 < SM_NG ? N - g0 : SM_NG;
        for (int k0 = 0; k0 < K; k0 += SM_KC) {
            int kc = K - k0 < SM_KC ? K - k0 : SM_KC, np = (kc + 1) / 2;
            if (tb) /* op(B)(k, n) = B[n][k] */
                pairs_across(bp, SM_NG, pvlm_matmul_elem(B, b16, (size_t)g0 * ldb + k0), b16, ldb, kc, gc);
            else
                pairs_down(bp, SM_NG, pvlm_matmul_elem(B, b16, (size_t)k0 * ldb + g0), b16, ldb, kc, gc);
            for (int m0 = 0; m0 < M; m0 += SM_MC) {
                int mc = M - m0 < SM_MC ? M - m0 : SM_MC;
                if (ta) /* op(A)(m, k) = A[k][m] */
                    pairs_down(ap, SM_MC, pvlm_matmul_elem(A, a16, (size_t)k0 * lda + m0), a16, lda, kc, mc);
                else
                    pairs_across(ap, SM_MC, pvlm_matmul_elem(A, a16, (size_t)m0 * lda + k0), a16, lda, kc, mc);
                for (int n0 = 0; n0 < gc; n0 += SM_NC) {
                    int nc = gc - n0 < SM_NC ? gc - n0 : SM_NC, nv = (nc + 15) / 16;
                    __mmask16 last = first_n(nc - 16 * (nv - 1));
                    for (int i = 0; i < mc; i += SM_MR) {
                        int mr = mc - i < SM_MR ? mc - i : SM_MR;
                        tiles[mr - 1][nv - 1](ap + i, bp + n0, np, C + (size_t)(m0 + i) * ldc + g0 + n0, ldc, alpha,
                                              beta, k0 == 0, last);
                    }
                }
            }
        }
    }
}
#endif

/* The small products bf16 emulated (see product_emul): op(A) and op(B) rounded to bf16 (or taken as bf16),
 * EM_MB rows of C at a time accumulated in fp32 over k in order, each term exact, so every element's sum
 * depends on K alone, never on the blocking; alpha and beta applied as the kernel above applies them. The
 * scratch is on the stack (threads call it at once). */
#define EM_MB 8
#define EM_NB 128
#define EM_KC 64

/* dst[0..n) = op(X)(r, c0 .. c0 + n) as floats: X's bf16 values, or its floats rounded by row_bf16 (the
 * rounding of every other bf16 operand); op = transpose when t. n <= EM_NB. */
static void op_row(float *dst, const void *X, int x16, int ld, int t, int r, int c0, int n) {
    uint16_t h[EM_NB];
    for (int c = 0; c < n; c++) {
        size_t i = t ? (size_t)(c0 + c) * ld + r : (size_t)r * ld + c0 + c;
        if (x16)
            h[c] = ((const uint16_t *)X)[i];
        else
            dst[c] = ((const float *)X)[i];
    }
    if (!x16) row_bf16(h, dst, n);
    for (int c = 0; c < n; c++) dst[c] = from_bf16(h[c]);
}

static void small_emul(unsigned hints, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda,
                       const void *B, int ldb, float beta, float *C, int ldc) {
    int a16 = !!(hints & PVLM_MM_A_BF16), b16 = !!(hints & PVLM_MM_B_BF16);
    float acc[EM_MB * EM_NB], ap[EM_MB * EM_KC], bp[EM_KC * EM_NB]; /* 4, 2 and 32 KiB */
    for (int n0 = 0; n0 < N; n0 += EM_NB) {
        int nc = N - n0 < EM_NB ? N - n0 : EM_NB;
        for (int m0 = 0; m0 < M; m0 += EM_MB) {
            int mc = M - m0 < EM_MB ? M - m0 : EM_MB;
            memset(acc, 0, sizeof acc);
            for (int k0 = 0; k0 < K; k0 += EM_KC) {
                int kc = K - k0 < EM_KC ? K - k0 : EM_KC;
                for (int k = 0; k < kc; k++) op_row(bp + k * EM_NB, B, b16, ldb, tb, k0 + k, n0, nc);
                for (int i = 0; i < mc; i++) op_row(ap + i * EM_KC, A, a16, lda, ta, m0 + i, k0, kc);
                for (int i = 0; i < mc; i++)
                    for (int k = 0; k < kc; k++) {
                        float a = ap[i * EM_KC + k];
                        for (int j = 0; j < nc; j++) acc[i * EM_NB + j] += a * bp[k * EM_NB + j];
                    }
            }
            for (int i = 0; i < mc; i++)
                for (int j = 0; j < nc; j++) {
                    float *c = C + (size_t)(m0 + i) * ldc + n0 + j, y = alpha * acc[i * EM_NB + j];
                    *c = beta != 0.0f ? y + beta * *c : y;
                }
        }
    }
}

void pvlm_matmul_small_hint(const pvlm_matmul *mm, unsigned hints, int ta, int tb, int M, int N, int K, float alpha,
                            const void *A, int lda, const void *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (mm && mm->prec == PVLM_PREC_BF16 && K > 0) {
#ifdef PVLM_HAVE_DNNL
        if (!mm->emul) {
            small_bf16(hints, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
            return;
        }
#endif
        small_emul(hints, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (hints & (PVLM_MM_A_BF16 | PVLM_MM_B_BF16)) return; /* a caller's mistake (ruled out by the header) */
    (void)mm;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
}

void pvlm_matmul_small(const pvlm_matmul *mm, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                       const float *B, int ldb, float beta, float *C, int ldc) {
    pvlm_matmul_small_hint(mm, 0, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* fp32 with a bias: the bias copied into every row of C, then the product accumulated onto it (beta = 1),
 * exactly the steps the linear op always took. */
static void gemm_fp32(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                      int ldb, float beta, const float *bias, float *C, int ldc) {
    if (bias) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < M; n++) memcpy(C + (size_t)n * ldc, bias, sizeof(float) * (size_t)N);
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
}

static void gemm_any(pvlm_matmul *mm, unsigned hints, int ta, int tb, int M, int N, int K, float alpha, const void *A,
                     int lda, const void *B, int ldb, float beta, const float *bias, void *C, int ldc) {
    if (mm && (M <= 0 || N <= 0 || K <= 0)) mm->a_src = NULL; /* no bf16 copy made: none to repeat */
    if (M <= 0 || N <= 0) return;
    if (mm && mm->prec == PVLM_PREC_BF16 && K > 0) {
        gemm_bf16(mm, hints, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, bias, C, ldc);
        return;
    }
    if (hints & (PVLM_MM_A_BF16 | PVLM_MM_B_BF16 | PVLM_MM_C_BF16)) { /* a caller's mistake: fp32 is floats only */
        if (mm && !mm->err.code) pvlm_err_set(&mm->err, PVLM_EINVAL, "fp32 matmul given a bf16 operand");
        return;
    }
    gemm_fp32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, bias, C, ldc);
}

void pvlm_matmul_gemm_hint(pvlm_matmul *mm, unsigned hints, int ta, int tb, int M, int N, int K, float alpha,
                           const void *A, int lda, const void *B, int ldb, float beta, float *C, int ldc) {
    if (hints & PVLM_MM_C_BF16) { /* a caller's mistake: C is floats here (beta may read it) */
        if (mm && !mm->err.code) pvlm_err_set(&mm->err, PVLM_EINVAL, "bf16 output asked of pvlm_matmul_gemm_hint");
        return;
    }
    gemm_any(mm, hints, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, NULL, C, ldc);
}

void pvlm_matmul_gemm_bias(pvlm_matmul *mm, unsigned hints, int ta, int tb, int M, int N, int K, const void *A, int lda,
                           const void *B, int ldb, const float *bias, void *C, int ldc) {
    gemm_any(mm, hints, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, bias, C, ldc);
}

void pvlm_matmul_gemm(pvlm_matmul *mm, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc) {
    pvlm_matmul_gemm_hint(mm, 0, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
