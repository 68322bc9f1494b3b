/* ops.c - see ops.h. */
#include "ops.h"

#include <math.h>
#include <string.h>

#include "core/threads.h"

#include "model/simd.h"

/* Loops whose items are independent (rows, blocks of elements) hand them out dynamically: on a VM one vCPU can
 * run 1.1-1.4x slower than the other for minutes (bench_train_step's CPU balance line), and a static split waits
 * for the slower one. An item's result does not depend on the thread that computes it, so the bits do not move.
 * Items are PVLM_THREADS_ITEM floats (core/threads.h: 64 KB) where the work allows. */

/* ---------------------------------------------------------------- linear */

void pvlm_op_linear_fwd(pvlm_matmul *mm, void *out, int out_bf16, const void *in, int in_bf16, const float *W,
                        const float *b, int N, int In, int O) {
    if (N <= 0 || O <= 0) return;
    unsigned h = PVLM_MM_B_WEIGHT | (in_bf16 ? PVLM_MM_A_BF16 : 0) | (out_bf16 ? PVLM_MM_C_BF16 : 0);
    pvlm_matmul_gemm_bias(mm, h, 0, 1, N, O, In, in, In, W, In, b, out, O); /* out = in @ W^T + b */
}

/* The linear backward with dout first mapped (map NULL: as it is) in the bias gradient's pass
 * (model/matmul.h pvlm_matmul_colsum_map); a map needs db. */
static void linear_bwd_map(pvlm_matmul *mm, float *din, int din_acc, float *dW, float *db, float *dout,
                           const float *aux, pvlm_mm_rowmap map, const void *in, int in_bf16, const float *W, int N,
                           int In, int O) {
    if (N <= 0) return;
    /* the column sums first: in bf16 their pass also rounds dout, which both products then reuse */
    if (db) pvlm_matmul_colsum_map(mm, db, dout, aux, map, N, O, O);
    if (din) /* [N,In] = dout[N,O] @ W[O,In] */
        pvlm_matmul_gemm_hint(mm, PVLM_MM_B_WEIGHT | (db ? PVLM_MM_A_AGAIN : 0), 0, 0, N, In, O, 1.0f, dout, O, W, In,
                              din_acc ? 1.0f : 0.0f, din, In);
    if (dW) /* [O,In] += dout^T @ in; dout is the previous call's A when db or din was computed */
        pvlm_matmul_gemm_hint(mm, (db || din ? PVLM_MM_A_AGAIN : 0) | (in_bf16 ? PVLM_MM_B_BF16 : 0), 1, 0, O, In, N,
                              1.0f, dout, O, in, In, 1.0f, dW, In);
}

void pvlm_op_linear_bwd(pvlm_matmul *mm, float *din, int din_acc, float *dW, float *db, const float *dout,
                        const void *in, int in_bf16, const float *W, int N, int In, int O) {
    /* without a map dout is only read */
    linear_bwd_map(mm, din, din_acc, dW, db, (float *)dout, NULL, NULL, in, in_bf16, W, N, In, O);
}

/* ---------------------------------------------------------------- layernorm */

/* The per-row sums below are sequential chains of dependent adds (C of them per row, each waiting for the
 * last); LN_ROWS rows are interleaved so that their chains overlap. Each row's sums keep their order, so
 * the bits are those of one row at a time. */
#define LN_ROWS 8
#define LN_UNROLL _Pragma("GCC unroll 8") /* the row loops unrolled: their sums then live in registers */
#define LN_CHUNK 512                      /* floats of an output row rounded to bf16 at once */

/* One LayerNorm call's tensors: the forward's (out, mean and rstd written) or the backward's (din added to). */
typedef struct ln_args {
    float *out, *mean, *rstd;              /* forward outputs */
    uint16_t *out16;                       /* forward: out rounded to bf16 instead (out NULL) */
    float *din;                            /* backward: NULL in the forward */
    const float *in, *dout, *w, *b;        /* dout: backward only */
    const float *mean_in, *rstd_in;        /* backward: the forward's statistics */
    int C;
    float eps;
} ln_args;

/* Rows [n0, n0 + nr) forward. */
__attribute__((always_inline)) static inline void ln_fwd_rows(const ln_args *a, int n0, int nr) {
    int C = a->C;
    const float *in = a->in + (size_t)n0 * C;
    float s[LN_ROWS] = {0}, v[LN_ROWS] = {0}, m[LN_ROWS];
    for (int c = 0; c < C; c++)
        LN_UNROLL for (int j = 0; j < nr; j++) s[j] += in[(size_t)j * C + c];
    for (int j = 0; j < nr; j++) m[j] = s[j] / C;
    for (int c = 0; c < C; c++)
        LN_UNROLL for (int j = 0; j < nr; j++) {
            float dx = in[(size_t)j * C + c] - m[j];
            v[j] += dx * dx;
        }
    for (int j = 0; j < nr; j++) {
        const float *x = in + (size_t)j * C;
        float mj = m[j], rj = 1.0f / sqrtf(v[j] / C + a->eps);
        if (a->out16) { /* the same values, rounded a chunk at a time from a row buffer in L1 */
            float y[LN_CHUNK];
            for (int c0 = 0; c0 < C; c0 += LN_CHUNK) {
                int n = C - c0 < LN_CHUNK ? C - c0 : LN_CHUNK;
                for (int c = 0; c < n; c++) y[c] = (x[c0 + c] - mj) * rj * a->w[c0 + c] + a->b[c0 + c];
                pvlm_bf16_round_n(a->out16 + (size_t)(n0 + j) * C + c0, y, (size_t)n);
            }
        } else {
            float *y = a->out + (size_t)(n0 + j) * C;
            for (int c = 0; c < C; c++) y[c] = (x[c] - mj) * rj * a->w[c] + a->b[c];
        }
        a->mean[n0 + j] = mj, a->rstd[n0 + j] = rj;
    }
}

/* Rows [n0, n0 + nr) backward: din += the input gradient. */
__attribute__((always_inline)) static inline void ln_bwd_rows(const ln_args *a, int n0, int nr) {
    int C = a->C;
    const float *in = a->in + (size_t)n0 * C, *dout = a->dout + (size_t)n0 * C, *w = a->w;
    const float *mean = a->mean_in + n0, *rstd = a->rstd_in + n0;
    float s1[LN_ROWS] = {0}, s2[LN_ROWS] = {0}; /* mean(dxhat), mean(dxhat * xhat) */
    for (int c = 0; c < C; c++)
        LN_UNROLL for (int j = 0; j < nr; j++) {
            float xh = (in[(size_t)j * C + c] - mean[j]) * rstd[j], g = dout[(size_t)j * C + c] * w[c];
            s1[j] += g, s2[j] += g * xh;
        }
    for (int j = 0; j < nr; j++) {
        const float *x = in + (size_t)j * C, *dy = dout + (size_t)j * C;
        float *dx = a->din + (size_t)(n0 + j) * C;
        float m = mean[j], r = rstd[j], ma = s1[j] / C, mb = s2[j] / C;
        for (int c = 0; c < C; c++) {
            float xh = (x[c] - m) * r;
            dx[c] += r * (dy[c] * w[c] - ma - xh * mb);
        }
    }
}

#ifdef __x86_64__
/* The same sums with AVX-512, 16 rows at once: each row is a lane, and a 16 x 16 block of the rows is
 * transposed in registers so that column c of the block is one vector, added into the lanes' sums in column
 * order. Every lane therefore adds its row's terms in the order of the loops above, with the same single
 * operations (C11 mode contracts nothing into FMAs, and the intrinsics below are separate multiplies and adds),
 * so the bits are those of the portable rows; the portable loops chain one add per cycle per row. */
#define LN_LANES 16
#define LN_ITEM 4 /* blocks of LN_LANES rows per work item, at most */

/* Columns [c0, c0 + 16) of rows x[0..15] (stride C), transposed: col[c] holds column c0 + c. */
__attribute__((target("avx512f"))) static void ln_load_cols(__m512 *col, const float *x, int C, int c0) {
    __m512i r[16];
    for (int j = 0; j < 16; j++) r[j] = _mm512_loadu_si512(x + (size_t)j * C + c0);
    pvlm_simd_transpose16(r);
    for (int c = 0; c < 16; c++) col[c] = _mm512_castsi512_ps(r[c]);
}

/* The sum of each of 16 rows (lane j: row j), over columns in order; sq: of (x - m)^2 instead. */
__attribute__((target("avx512f"))) static __m512 ln_lane_sums(const float *x, int C, int sq, __m512 m) {
    __m512 s = _mm512_setzero_ps(), col[16];
    int c16 = C - C % 16;
    for (int c0 = 0; c0 < c16; c0 += 16) {
        ln_load_cols(col, x, C, c0);
        for (int c = 0; c < 16; c++) {
            __m512 d = sq ? _mm512_sub_ps(col[c], m) : col[c];
            s = _mm512_add_ps(s, sq ? _mm512_mul_ps(d, d) : d);
        }
    }
    float sl[16], ml[16];
    _mm512_storeu_ps(sl, s), _mm512_storeu_ps(ml, m);
    for (int c = c16; c < C; c++) /* the last columns, lane by lane, in the same order */
        for (int j = 0; j < 16; j++) {
            float d = sq ? x[(size_t)j * C + c] - ml[j] : x[(size_t)j * C + c];
            sl[j] += sq ? d * d : d;
        }
    return _mm512_loadu_ps(sl);
}

/* y[0..C) = ((x - m) * r) * w + b, 16 columns at a time (the element operations of ln_fwd_rows). */
__attribute__((target("avx512f"))) static void ln_norm_row(float *y, const float *x, float m, float r, const float *w,
                                                           const float *b, int C) {
    __m512 vm = _mm512_set1_ps(m), vr = _mm512_set1_ps(r);
    for (int c = 0; c < C; c += 16) {
        __mmask16 k = C - c >= 16 ? 0xffff : (__mmask16)((1u << (C - c)) - 1);
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + c), vm), vr);
        v = _mm512_add_ps(_mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, w + c)), _mm512_maskz_loadu_ps(k, b + c));
        _mm512_mask_storeu_ps(y + c, k, v);
    }
}

/* Rows [n0, n0 + 16) forward, as ln_fwd_rows. */
__attribute__((target("avx512f"))) static void ln_fwd_rows16(const ln_args *a, int n0) {
    int C = a->C;
    const float *in = a->in + (size_t)n0 * C;
    __m512 vc = _mm512_set1_ps((float)C);
    __m512 m = _mm512_div_ps(ln_lane_sums(in, C, 0, _mm512_setzero_ps()), vc);
    __m512 v = _mm512_div_ps(ln_lane_sums(in, C, 1, m), vc);
    __m512 r = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_sqrt_ps(_mm512_add_ps(v, _mm512_set1_ps(a->eps))));
    float ml[16], rl[16];
    _mm512_storeu_ps(ml, m), _mm512_storeu_ps(rl, r);
    for (int j = 0; j < 16; j++) {
        const float *x = in + (size_t)j * C;
        if (a->out16) {
            float y[LN_CHUNK];
            for (int c0 = 0; c0 < C; c0 += LN_CHUNK) {
                int n = C - c0 < LN_CHUNK ? C - c0 : LN_CHUNK;
                ln_norm_row(y, x + c0, ml[j], rl[j], a->w + c0, a->b + c0, n);
                pvlm_bf16_round_n(a->out16 + (size_t)(n0 + j) * C + c0, y, (size_t)n);
            }
        } else {
            ln_norm_row(a->out + (size_t)(n0 + j) * C, x, ml[j], rl[j], a->w, a->b, C);
        }
        a->mean[n0 + j] = ml[j], a->rstd[n0 + j] = rl[j];
    }
}

/* Rows [n0, n0 + 16) backward, as ln_bwd_rows. */
__attribute__((target("avx512f"))) static void ln_bwd_rows16(const ln_args *a, int n0) {
    int C = a->C, c16 = C - C % 16;
    const float *in = a->in + (size_t)n0 * C, *dout = a->dout + (size_t)n0 * C, *w = a->w;
    __m512 m = _mm512_loadu_ps(a->mean_in + n0), r = _mm512_loadu_ps(a->rstd_in + n0);
    __m512 s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), xc[16], gc[16];
    for (int c0 = 0; c0 < c16; c0 += 16) {
        ln_load_cols(xc, in, C, c0), ln_load_cols(gc, dout, C, c0);
        for (int c = 0; c < 16; c++) {
            __m512 xh = _mm512_mul_ps(_mm512_sub_ps(xc[c], m), r);
            __m512 g = _mm512_mul_ps(gc[c], _mm512_set1_ps(w[c0 + c]));
            s1 = _mm512_add_ps(s1, g), s2 = _mm512_add_ps(s2, _mm512_mul_ps(g, xh));
        }
    }
    float l1[16], l2[16], ml[16], rl[16];
    _mm512_storeu_ps(l1, s1), _mm512_storeu_ps(l2, s2), _mm512_storeu_ps(ml, m), _mm512_storeu_ps(rl, r);
    for (int c = c16; c < C; c++)
        for (int j = 0; j < 16; j++) {
            float xh = (in[(size_t)j * C + c] - ml[j]) * rl[j], g = dout[(size_t)j * C + c] * w[c];
            l1[j] += g, l2[j] += g * xh;
        }
    for (int j = 0; j < 16; j++) {
        const float *x = in + (size_t)j * C, *dy = dout + (size_t)j * C;
        float *dx = a->din + (size_t)(n0 + j) * C;
        __m512 vm = _mm512_set1_ps(ml[j]), vr = _mm512_set1_ps(rl[j]);
        __m512 ma = _mm512_set1_ps(l1[j] / C), mb = _mm512_set1_ps(l2[j] / C);
        for (int c = 0; c < C; c += 16) {
            __mmask16 k = C - c >= 16 ? 0xffff : (__mmask16)((1u << (C - c)) - 1);
            __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + c), vm), vr);
            __m512 t = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, dy + c), _mm512_maskz_loadu_ps(k, w + c));
            t = _mm512_sub_ps(_mm512_sub_ps(t, ma), _mm512_mul_ps(xh, mb));
            _mm512_mask_storeu_ps(dx + c, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, dx + c), _mm512_mul_ps(vr, t)));
        }
    }
}
#endif

/* Every row, LN_ROWS at a time, the last N % LN_ROWS one at a time: each call passes a constant row count,
 * so the row loops unroll. With AVX-512, LN_LANES rows at a time instead. */
static void ln_rows(const ln_args *a, int N) {
#ifdef __x86_64__
    if (pvlm_simd_isa() == PVLM_ISA_AVX512) {
        int nblk = (N + LN_LANES - 1) / LN_LANES, per = nblk / (4 * pvlm_threads_get());
        per = per < 1 ? 1 : per > LN_ITEM ? LN_ITEM : per; /* LN_ITEM blocks an item, >= 4 items a thread */
#pragma omp parallel for schedule(dynamic, per)
        for (int k = 0; k < nblk; k++) {
            int n0 = k * LN_LANES;
            if (N - n0 >= LN_LANES)
                a->din ? ln_bwd_rows16(a, n0) : ln_fwd_rows16(a, n0);
            else
                for (int j = n0; j < N; j++) a->din ? ln_bwd_rows(a, j, 1) : ln_fwd_rows(a, j, 1);
        }
        return;
    }
#endif
    int nblk = (N + LN_ROWS - 1) / LN_ROWS;
#pragma omp parallel for schedule(dynamic)
    for (int k = 0; k < nblk; k++) {
        int n0 = k * LN_ROWS;
        if (N - n0 >= LN_ROWS)
            a->din ? ln_bwd_rows(a, n0, LN_ROWS) : ln_fwd_rows(a, n0, LN_ROWS);
        else
            for (int j = n0; j < N; j++) a->din ? ln_bwd_rows(a, j, 1) : ln_fwd_rows(a, j, 1);
    }
}

void pvlm_op_layernorm_fwd(void *out, int out_bf16, float *mean, float *rstd, const float *in, const float *w,
                           const float *b, int N, int C, float eps) {
    ln_args a = {.mean = mean, .rstd = rstd, .in = in, .w = w, .b = b, .C = C, .eps = eps};
    if (out_bf16) a.out16 = out;
    else a.out = out;
    ln_rows(&a, N);
}

/* dw, db: column sums as the bias gradient's (model/matmul.c colsum_pass): tiles of consecutive rows times a
 * block of columns, handed out dynamically, each walking its rows in memory order; the groups' partials are
 * added in group order, so the bits depend on N and C only. */
#define LN_COLS 1024
#define LN_PART 8192 /* floats of each of the two sums' group partials, on the stack */
#define LN_GROUP_ROWS 64
static void ln_param_tile(float *aw, float *ab, const float *dout, const float *in, const float *mean,
                          const float *rstd, int n0, int n1, int c0, int wd, int C) {
    memset(aw, 0, sizeof(float) * (size_t)wd);
    memset(ab, 0, sizeof(float) * (size_t)wd);
    for (int n = n0; n < n1; n++) {
        const float *x = in + (size_t)n * C + c0, *dy = dout + (size_t)n * C + c0;
        float m = mean[n], r = rstd[n];
#pragma omp simd
        for (int c = 0; c < wd; c++) {
            aw[c] += dy[c] * (x[c] - m) * r;
            ab[c] += dy[c];
        }
    }
}

static void ln_param_grads(float *dw, float *db, const float *dout, const float *in, const float *mean,
                           const float *rstd, int N, int C) {
    pvlm_col_tiles t = pvlm_threads_col_tiles(N, C, LN_COLS, LN_PART, LN_GROUP_ROWS);
    float pw[LN_PART], pb[LN_PART];        /* [ngrp, C] when ngrp > 1 */
#pragma omp parallel for schedule(dynamic) /* tiles are independent; a slowed vCPU takes fewer */
    for (int i = 0; i < t.nblk * t.ngrp; i++) {
        pvlm_col_tile k = pvlm_threads_col_tile(&t, i);
        if (k.w <= 0) continue;
        float aw[LN_COLS], ab[LN_COLS];
        ln_param_tile(aw, ab, dout, in, mean, rstd, k.r0, k.r1, k.c0, k.w, C);
        pvlm_threads_col_tile_put(&t, &k, aw, dw, pw);
        pvlm_threads_col_tile_put(&t, &k, ab, db, pb);
    }
    pvlm_threads_col_tiles_add(&t, dw, pw);
    pvlm_threads_col_tiles_add(&t, db, pb);
}

void pvlm_op_layernorm_bwd(float *din, float *dw, float *db, const float *dout, const float *in,
                           const float *w, const float *mean, const float *rstd, int N, int C) {
    ln_args a = {.din = din, .in = in, .dout = dout, .w = w, .mean_in = mean, .rstd_in = rstd, .C = C};
    ln_rows(&a, N);
    ln_param_grads(dw, db, dout, in, mean, rstd, N, C);
}

/* ---------------------------------------------------------------- gelu */

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

/* exp(x), branch-free so that loops over it vectorise (glibc's expf is a scalar call): |x| is clamped to
 * 87 with integer operations on the bits (exp saturates to ~1.6e-38 / 6.1e37 there), then
 * exp(x) = 2^n exp(r), n = round(x / ln2) by the 1.5*2^23 trick, |r| <= ln2/2 with ln2 split in two
 * (Cephes), exp(r) by its degree-6 Taylor polynomial. Max relative error 2.3e-7 on [-87, 87]; NaN stays NaN. */
static inline float fast_expf(float x) {
    uint32_t b, lim = 0x42ae0000u; /* 87.0f */
    memcpy(&b, &x, 4);
    uint32_t mag = b & 0x7fffffffu;
    uint32_t big = (uint32_t)-(int32_t)(mag > lim && mag <= 0x7f800000u); /* beyond 87 (incl. inf), not NaN */
    b = (b & ~big) | (((b & 0x80000000u) | lim) & big);
    memcpy(&x, &b, 4);
    float n = (x * 1.44269504f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666667f + r * (0.0416666667f + r * (0.00833333333f +
                                                                                         r * 0.00138888889f)))));
    uint32_t sb = (uint32_t)((int32_t)n + 127) << 23;
    float sc;
    memcpy(&sc, &sb, 4);
    return p * sc;
}

/* 0.5 x (1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3): one exp instead of tanhf, and
 * with fast_expf the loop vectorises. Large |u| saturate correctly. */
__attribute__((always_inline)) static inline void gelu_fwd_span(float *out, const float *in, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        float u = GELU_K * (x + 0.044715f * x * x * x);
        out[i] = x / (1.0f + fast_expf(-2.0f * u));
    }
}

static inline float gelu_grad(float x) {
    float u = GELU_K * (x + 0.044715f * x * x * x);
    float s = 1.0f / (1.0f + fast_expf(-2.0f * u)); /* sigmoid(2u) = (1 + tanh u) / 2 */
    float t = 2.0f * s - 1.0f;                      /* tanh u */
    float du = GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
    return s + 0.5f * x * (1.0f - t * t) * du;
}

__attribute__((always_inline)) static inline void gelu_bwd_span(float *din, int acc, const float *in, const float *dout,
                                                                size_t n) {
    if (acc) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) din[i] += gelu_grad(in[i]) * dout[i];
    } else {
#pragma omp simd
        for (size_t i = 0; i < n; i++) din[i] = gelu_grad(in[i]) * dout[i];
    }
}

/* Each GELU span is compiled once per vector tier (model/simd.h: the same bits from each) and picked at run
 * time. AVX2 against the baseline's 4 lanes, on 16 K elements from cache (Zen 3): forward 3.0 -> 1.5 ns and
 * backward 4.3 -> 1.65 ns an element. */
static void gelu_fwd_base(float *out, const float *in, size_t n) { gelu_fwd_span(out, in, n); }
__attribute__((target("avx2"))) static void gelu_fwd_avx2(float *out, const float *in, size_t n) {
    gelu_fwd_span(out, in, n);
}
__attribute__((target("avx512f"))) static void gelu_fwd_512(float *out, const float *in, size_t n) {
    gelu_fwd_span(out, in, n);
}
static void gelu_bwd_base(float *din, int acc, const float *in, const float *dout, size_t n) {
    gelu_bwd_span(din, acc, in, dout, n);
}
__attribute__((target("avx2"))) static void gelu_bwd_avx2(float *din, int acc, const float *in, const float *dout,
                                                          size_t n) {
    gelu_bwd_span(din, acc, in, dout, n);
}
__attribute__((target("avx512f"))) static void gelu_bwd_512(float *din, int acc, const float *in, const float *dout,
                                                             size_t n) {
    gelu_bwd_span(din, acc, in, dout, n);
}
typedef void (*gelu_fwd_fn)(float *out, const float *in, size_t n);
typedef void (*gelu_bwd_fn)(float *din, int acc, const float *in, const float *dout, size_t n);

/* ---------------------------------------------------------------- softmax rows, vectorised */

/* One softmax row over x[0..n), in place, for products that then read it in bf16 (attention's probabilities,
 * the output layer's when its gradient is rounded): entries j < jend with km[j] set (km NULL: all) become
 * exp(x - max) / sum with fast_expf, the others 0. Its 2.3e-7 relative error is four orders below the bf16
 * rounding that follows; glibc's expf, which the fp32 path keeps for its bits, is a scalar call (the output
 * layer's softmax on 928 x 8192 at 2 threads: 21 ms with it, 5.4 ms here). The sum is kept in SM_LANES double
 * partial sums, lane l taking j = l mod SM_LANES, added in lane order at the end: a fixed order, so both
 * compilations below give the same bits. *mx gets the row's maximum; returns the sum. */
#define SM_LANES 16

/* ok[l] = all ones where entry j0 + l is allowed (j0 + l < jend and, with km, km[j0 + l]), else 0; entries
 * j0 + l >= n (a row's last, partial block) are not allowed and their km is not read. */
__attribute__((always_inline)) static inline void sm_mask(uint32_t *ok, int j0, int n, int jend, const uint8_t *km) {
    if (j0 + SM_LANES > n) {
        for (int l = 0; l < SM_LANES; l++) ok[l] = j0 + l < n && j0 + l < jend && (!km || km[j0 + l]) ? ~0u : 0u;
    } else if (km) {
#pragma omp simd
        for (int l = 0; l < SM_LANES; l++) ok[l] = (j0 + l < jend) & (km[j0 + l] != 0) ? ~0u : 0u;
    } else {
#pragma omp simd
        for (int l = 0; l < SM_LANES; l++) ok[l] = j0 + l < jend ? ~0u : 0u;
    }
}

/* One block of SM_LANES entries: v[l] (allowed where ok[l]) becomes exp(v[l] - mx) or 0, added into acc[l].
 * The exp is computed everywhere and masked by its bits (exactly 0 whatever a masked entry holds): a select
 * there is a branch to GCC, and the loop would not vectorise. */
__attribute__((always_inline)) static inline void sm_exp_block(float *restrict v, const uint32_t *restrict ok, float mx,
                                                               double *restrict acc) {
#pragma omp simd
    for (int l = 0; l < SM_LANES; l++) {
        float e = fast_expf(v[l] - mx);
        uint32_t b;
        memcpy(&b, &e, 4);
        b &= ok[l];
        memcpy(&e, &b, 4);
        v[l] = e;
        acc[l] += (double)e;
    }
}

__attribute__((always_inline)) static inline double softmax_row_span(float *x, int n, int jend, const uint8_t *km,
                                                                     float *mxo) {
    float m[SM_LANES], mx = -INFINITY;
    uint32_t ok[SM_LANES];
    double acc[SM_LANES];
    int full = n - n % SM_LANES;
    for (int l = 0; l < SM_LANES; l++) m[l] = -INFINITY, acc[l] = 0.0;
    for (int j0 = 0; j0 < n; j0 += SM_LANES) {
        float t[SM_LANES] = {0};
        const float *v = x + j0;
        if (j0 + SM_LANES > n) memcpy(t, v, sizeof(float) * (size_t)(n - j0)), v = t;
        sm_mask(ok, j0, n, jend, km);
#pragma omp simd
        for (int l = 0; l < SM_LANES; l++) {
            float c = ok[l] ? v[l] : -INFINITY;
            m[l] = c > m[l] ? c : m[l];
        }
    }
    for (int l = 0; l < SM_LANES; l++) mx = m[l] > mx ? m[l] : mx;
    for (int j0 = 0; j0 < full; j0 += SM_LANES) {
        sm_mask(ok, j0, n, jend, km);
        sm_exp_block(x + j0, ok, mx, acc);
    }
    if (full < n) { /* the partial block through a padded copy, its lanes as above */
        float t[SM_LANES] = {0};
        memcpy(t, x + full, sizeof(float) * (size_t)(n - full));
        sm_mask(ok, full, n, jend, km);
        sm_exp_block(t, ok, mx, acc);
        memcpy(x + full, t, sizeof(float) * (size_t)(n - full));
    }
    double s = 0.0;
    for (int l = 0; l < SM_LANES; l++) s += acc[l];
    float inv = s > 0.0 ? (float)(1.0 / s) : 0.0f;
#pragma omp simd
    for (int j = 0; j < n; j++) x[j] *= inv;
    *mxo = mx;
    return s;
}
static double softmax_row_base(float *x, int n, int jend, const uint8_t *km, float *mx) {
    return softmax_row_span(x, n, jend, km, mx);
}
__attribute__((target("avx2"))) static double softmax_row_avx2(float *x, int n, int jend, const uint8_t *km,
                                                               float *mx) {
    return softmax_row_span(x, n, jend, km, mx);
}
__attribute__((target("avx512f"))) static double softmax_row_512(float *x, int n, int jend, const uint8_t *km,
                                                                 float *mx) {
    return softmax_row_span(x, n, jend, km, mx);
}
typedef double (*softmax_row_fn)(float *x, int n, int jend, const uint8_t *km, float *mx);
static softmax_row_fn softmax_row_fast(void) {
    return PVLM_SIMD_PICK(pvlm_simd_isa(), softmax_row_base, softmax_row_avx2, softmax_row_512);
}

#define GELU_BLOCK PVLM_THREADS_ITEM /* elements per parallel work item */

void pvlm_op_gelu_fwd(void *out, int out_bf16, const float *in, size_t n) {
    size_t nb = (n + GELU_BLOCK - 1) / GELU_BLOCK;
    gelu_fwd_fn f = PVLM_SIMD_PICK(pvlm_simd_isa(), gelu_fwd_base, gelu_fwd_avx2, gelu_fwd_512);
#pragma omp parallel for schedule(dynamic)
    for (size_t b = 0; b < nb; b++) {
        size_t i0 = b * GELU_BLOCK, m = n - i0 < GELU_BLOCK ? n - i0 : GELU_BLOCK;
        if (out_bf16) { /* the block in cache, then rounded */
            float t[GELU_BLOCK];
            f(t, in + i0, m);
            pvlm_bf16_round_n((uint16_t *)out + i0, t, m);
        } else {
            f((float *)out + i0, in + i0, m);
        }
    }
}

void pvlm_op_gelu_bwd(float *din, int acc, const float *in, const float *dout, size_t n) {
    size_t nb = (n + GELU_BLOCK - 1) / GELU_BLOCK;
    gelu_bwd_fn f = PVLM_SIMD_PICK(pvlm_simd_isa(), gelu_bwd_base, gelu_bwd_avx2, gelu_bwd_512);
#pragma omp parallel for schedule(dynamic)
    for (size_t b = 0; b < nb; b++) {
        size_t i0 = b * GELU_BLOCK, m = n - i0 < GELU_BLOCK ? n - i0 : GELU_BLOCK;
        f(din + i0, acc, in + i0, dout + i0, m);
    }
}

/* GELU's backward as a row map (model/matmul.h): y = gelu'(pre) * dy, the functions above. */
static void gelu_bwd_map_base(float *y, const float *dy, const float *pre, size_t n) {
    gelu_bwd_base(y, 0, pre, dy, n);
}
static void gelu_bwd_map_avx2(float *y, const float *dy, const float *pre, size_t n) {
    gelu_bwd_avx2(y, 0, pre, dy, n);
}
static void gelu_bwd_map_512(float *y, const float *dy, const float *pre, size_t n) { gelu_bwd_512(y, 0, pre, dy, n); }

void pvlm_op_linear_gelu_bwd(pvlm_matmul *mm, float *din, float *dW, float *db, float *dgelu, const float *pre,
                             const void *in, int in_bf16, const float *W, int N, int In, int O) {
    if (!db) { /* no bias pass to fold it into: GELU's backward on its own, in place */
        pvlm_op_gelu_bwd(dgelu, 0, pre, dgelu, (size_t)N * O);
        pvlm_op_linear_bwd(mm, din, 0, dW, NULL, dgelu, in, in_bf16, W, N, In, O);
        return;
    }
    pvlm_mm_rowmap map = PVLM_SIMD_PICK(pvlm_simd_isa(), gelu_bwd_map_base, gelu_bwd_map_avx2, gelu_bwd_map_512);
    linear_bwd_map(mm, din, 0, dW, db, dgelu, pre, map, in, in_bf16, W, N, In, O);
}

/* ---------------------------------------------------------------- attention */

/* One (sample, head): q [Tq,dh] (stride ldq), k, v [Tk,dh]; A [Tq,Tk]; out [Tq,dh] (stride ldo). */
#define ATT_OUT_FLOATS 4096 /* a block of one head's output rounded to bf16 at once: 16 KiB of stack */

/* out16 [Tq, dh] (row stride ldo) = A @ v rounded to bf16, a block of rows (and, for very wide heads, of
 * columns) at a time through a stack buffer. Each element's accumulation does not depend on the blocking, so
 * the values are those of the whole product, rounded. */
static void attn_out_bf16(const pvlm_matmul *mm, uint16_t *out16, int ldo, const float *A, int v16, const void *v,
                          int ldv, int Tq, int Tk, int dh) {
    float buf[ATT_OUT_FLOATS];
    int cols = dh < ATT_OUT_FLOATS ? dh : ATT_OUT_FLOATS, rows = ATT_OUT_FLOATS / cols;
    for (int c0 = 0; c0 < dh; c0 += cols) {
        int nc = dh - c0 < cols ? dh - c0 : cols;
        for (int r0 = 0; r0 < Tq; r0 += rows) {
            int nr = Tq - r0 < rows ? Tq - r0 : rows;
            pvlm_matmul_small_hint(mm, v16 ? PVLM_MM_B_BF16 : 0, 0, 0, nr, nc, Tk, 1.0f, A + (size_t)r0 * Tk, Tk,
                                   pvlm_matmul_elem(v, v16, (size_t)c0), ldv, 0.0f, buf, nc);
            for (int r = 0; r < nr; r++)
                pvlm_bf16_round_n(out16 + (size_t)(r0 + r) * ldo + c0, buf + (size_t)r * nc, (size_t)nc);
        }
    }
}

/* out: floats, or (out_bf16) bf16 values as pvlm_bf16_round_n writes them; q, k, v: floats, or bf16 (qkv16). */
static void attn_one_fwd(const pvlm_matmul *mm, void *out, int out_bf16, int ldo, float *A, int qkv16, const void *q,
                         int ldq, const void *k, int ldk, const void *v, int ldv, const uint8_t *km, int causal, int Tq,
                         int Tk, int dh, float scale) {
    if (Tq <= 0 || Tk <= 0) return;
    unsigned both = qkv16 ? PVLM_MM_A_BF16 | PVLM_MM_B_BF16 : 0, b16 = qkv16 ? PVLM_MM_B_BF16 : 0;
    /* scores [Tq,Tk] = q k^T * scale */
    pvlm_matmul_small_hint(mm, both, 0, 1, Tq, Tk, dh, scale, q, ldq, k, ldk, 0.0f, A, Tk);
    /* in bf16 A is rounded for A @ v, and the vectorised exp will do */
    softmax_row_fn row = pvlm_matmul_precision(mm) == PVLM_PREC_BF16 ? softmax_row_fast() : NULL;
    for (int i = 0; i < Tq; i++) {
        float *arow = A + (size_t)i * Tk, mx = -INFINITY;
        int jend = causal ? (i + 1 < Tk ? i + 1 : Tk) : Tk;
        if (row) {
            row(arow, Tk, jend, km, &mx);
            continue;
        }
        for (int j = 0; j < jend; j++)
            if ((!km || km[j]) && arow[j] > mx) mx = arow[j];
        float s = 0.0f;
        for (int j = 0; j < Tk; j++) {
            float e = 0.0f;
            if (j < jend && (!km || km[j])) e = expf(arow[j] - mx);
            arow[j] = e;
            s += e;
        }
        float inv = s > 0.0f ? 1.0f / s : 0.0f;
        for (int j = 0; j < Tk; j++) arow[j] *= inv;
    }
    /* out [Tq,dh] = A @ v */
    if (out_bf16)
        attn_out_bf16(mm, out, ldo, A, qkv16, v, ldv, Tq, Tk, dh);
    else
        pvlm_matmul_small_hint(mm, b16, 0, 0, Tq, dh, Tk, 1.0f, A, Tk, v, ldv, 0.0f, out, ldo);
}

static void attn_one_bwd(const pvlm_matmul *mm, float *dq, float *dk, float *dv, float *dA, const float *dO, int ldo,
                         const float *A, int qkv16, const void *q, int ldq, const void *k, int ldk, const void *v,
                         int ldv, int Tq, int Tk, int dh, float scale) {
    if (Tq <= 0 || Tk <= 0) return;
    unsigned b16 = qkv16 ? PVLM_MM_B_BF16 : 0;
    /* dv [Tk,dh] += A^T @ dO */
    pvlm_matmul_small(mm, 1, 0, Tk, dh, Tq, 1.0f, A, Tk, dO, ldo, 1.0f, dv, ldv);
    /* dA [Tq,Tk] = dO @ v^T */
    pvlm_matmul_small_hint(mm, b16, 0, 1, Tq, Tk, dh, 1.0f, dO, ldo, v, ldv, 0.0f, dA, Tk);
    /* softmax backward: dS = A * (dA - sum_j A dA); masked entries have A = 0 so dS = 0 */
    for (int i = 0; i < Tq; i++) {
        const float *a = A + (size_t)i * Tk;
        float *d = dA + (size_t)i * Tk;
        float s = 0.0f;
        for (int j = 0; j < Tk; j++) s += a[j] * d[j];
        for (int j = 0; j < Tk; j++) d[j] = a[j] * (d[j] - s);
    }
    /* dq [Tq,dh] += dS @ k * scale ; dk [Tk,dh] += dS^T @ q * scale */
    pvlm_matmul_small_hint(mm, b16, 0, 0, Tq, dh, Tk, scale, dA, Tk, k, ldk, 1.0f, dq, ldq);
    pvlm_matmul_small_hint(mm, b16, 1, 0, Tk, dh, Tq, scale, dA, Tk, q, ldq, 1.0f, dk, ldk);
}

void pvlm_op_attention_fwd(const pvlm_matmul *mm, float *out, int ldo, float *att, const float *q, int ldq,
                           const float *k, int ldk, const float *v, int ldv, const uint8_t *kmask, int causal, int B,
                           int H, int Tq, int Tk, int dh) {
    float scale = 1.0f / sqrtf((float)dh);
    /* one (sample, head) pair per iteration; OpenBLAS runs single-threaded inside a parallel region */
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        attn_one_fwd(mm, out + (size_t)b * Tq * ldo + h * dh, 0, ldo, att + (size_t)bh * Tq * Tk, 0,
                     q + (size_t)b * Tq * ldq + h * dh, ldq, k + (size_t)b * Tk * ldk + h * dh, ldk,
                     v + (size_t)b * Tk * ldv + h * dh, ldv, kmask ? kmask + (size_t)b * Tk : NULL, causal, Tq, Tk, dh,
                     scale);
    }
}

void pvlm_op_attention_ragged_fwd(const pvlm_matmul *mm, void *out, int out_bf16, int ldo, float *att, int qkv_bf16,
                                  const void *q, int ldq, const void *k, int ldk, const void *v, int ldv,
                                  const uint8_t *kmask, int causal, int B, int H, int dh, const int *qoff,
                                  const int *qlen, const int *koff, const int *klen, const size_t *attoff) {
    float scale = 1.0f / sqrtf((float)dh);
    /* the pairs' sizes follow the samples' lengths (causal: quadratic in them): handed out one at a time so
     * that neither thread waits on the other's long samples; each writes only its own slices (same bits) */
#pragma omp parallel for schedule(dynamic)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H, Tq = qlen[b], Tk = klen[b];
        size_t oo = (size_t)qoff[b] * ldo + h * dh; /* in elements of out's type */
        attn_one_fwd(mm, (void *)pvlm_matmul_elem(out, out_bf16, oo), out_bf16, ldo,
                     att + attoff[b] + (size_t)h * Tq * Tk, qkv_bf16,
                     pvlm_matmul_elem(q, qkv_bf16, (size_t)qoff[b] * ldq + h * dh), ldq,
                     pvlm_matmul_elem(k, qkv_bf16, (size_t)koff[b] * ldk + h * dh), ldk,
                     pvlm_matmul_elem(v, qkv_bf16, (size_t)koff[b] * ldv + h * dh), ldv, kmask ? kmask + koff[b] : NULL,
                     causal, Tq, Tk, dh, scale);
    }
}

void pvlm_op_attention_ragged_bwd(const pvlm_matmul *mm, float *dq, float *dk, float *dv, float *datt,
                                  const float *dout, int ldo, const float *att, int qkv_bf16, const void *q, int ldq,
                                  const void *k, int ldk, const void *v, int ldv, int B, int H, int dh, const int *qoff,
                                  const int *qlen, const int *koff, const int *klen, const size_t *attoff) {
    float scale = 1.0f / sqrtf((float)dh);
#pragma omp parallel for schedule(dynamic)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H, Tq = qlen[b], Tk = klen[b];
        size_t qo = (size_t)qoff[b] * ldq + h * dh, ko = (size_t)koff[b] * ldk + h * dh,
               vo = (size_t)koff[b] * ldv + h * dh;
        size_t ao = attoff[b] + (size_t)h * Tq * Tk;
        attn_one_bwd(mm, dq + qo, dk + ko, dv + vo, datt + ao, dout + (size_t)qoff[b] * ldo + h * dh, ldo, att + ao,
                     qkv_bf16, pvlm_matmul_elem(q, qkv_bf16, qo), ldq, pvlm_matmul_elem(k, qkv_bf16, ko), ldk,
                     pvlm_matmul_elem(v, qkv_bf16, vo), ldv, Tq, Tk, dh, scale);
    }
}

/* ---------------------------------------------------------------- embedding */

void pvlm_op_embed_fwd(float *out, const int32_t *ids, const float *table, const int *pos_ids, const float *pos,
                       int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *y = out + (size_t)n * C;
        const float *e = table + (size_t)ids[n] * C;
        if (pos) {
            const float *p = pos + (size_t)pos_ids[n] * C;
            for (int c = 0; c < C; c++) y[c] = e[c] + p[c];
        } else {
            memcpy(y, e, sizeof(float) * (size_t)C);
        }
    }
}
void pvlm_op_embed_bwd(float *dtable, float *dpos, const int32_t *ids, const int *pos_ids, const float *dout, int N,
                       int C) {
    for (int n = 0; n < N; n++) {
        const float *g = dout + (size_t)n * C;
        if (dtable) {
            float *d = dtable + (size_t)ids[n] * C;
            for (int c = 0; c < C; c++) d[c] += g[c];
        }
        if (dpos) {
            float *d = dpos + (size_t)pos_ids[n] * C;
            for (int c = 0; c < C; c++) d[c] += g[c];
        }
    }
}

/* ---------------------------------------------------------------- softmax cross-entropy */

void pvlm_op_softmax_ce_fwd(float *probs, double *loss, const int32_t *targets, int N, int V, int fast) {
    softmax_row_fn row = softmax_row_fast();
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *x = probs + (size_t)n * V;
        if (fast) {
            int t = targets[n];
            float xt = t >= 0 ? x[t] : 0.0f, mx;
            double s = row(x, V, V, NULL, &mx);
            loss[n] = t >= 0 ? log(s) - ((double)xt - (double)mx) : 0.0;
            continue;
        }
        float mx = x[0];
        for (int v = 1; v < V; v++) mx = x[v] > mx ? x[v] : mx;
        int t = targets[n];
        double zt = t >= 0 ? (double)x[t] - (double)mx : 0.0; /* target logit minus max */
        double s = 0.0;
        for (int v = 0; v < V; v++) {
            float e = expf(x[v] - mx);
            s += e;
            x[v] = e;
        }
        float inv = (float)(1.0 / s);
        for (int v = 0; v < V; v++) x[v] *= inv;
        loss[n] = t >= 0 ? log(s) - zt : 0.0;
    }
}

void pvlm_op_softmax_ce_bwd(float *probs, const int32_t *targets, const float *scale, int N, int V) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *x = probs + (size_t)n * V;
        int t = targets[n];
        if (t < 0) {
            memset(x, 0, sizeof(float) * (size_t)V);
            continue;
        }
        float sc = scale[n];
        for (int v = 0; v < V; v++) x[v] *= sc;
        x[t] -= sc;
    }
}

/* ---------------------------------------------------------------- image, patches, conv */

void pvlm_op_image_norm(float *out, const uint8_t *img, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = ((float)img[i] / 255.0f - 0.5f) / 0.5f;
}

void pvlm_op_patchify_fwd(float *out, const float *in, int B, int H, int W, int C, int p) {
    int gh = H / p, gw = W / p, K = C * p * p;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < B * gh * gw; r++) {
        int b = r / (gh * gw), py = (r / gw) % gh, px = r % gw;
        float *o = out + (size_t)r * K;
        for (int c = 0; c < C; c++)
            for (int y = 0; y < p; y++)
                for (int x = 0; x < p; x++)
                    o[(c * p + y) * p + x] = in[(((size_t)b * H + py * p + y) * W + px * p + x) * C + c];
    }
}

void pvlm_op_patchify_bwd(float *din, const float *dout, int B, int H, int W, int C, int p) {
    int gh = H / p, gw = W / p, K = C * p * p;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < B * gh * gw; r++) {
        int b = r / (gh * gw), py = (r / gw) % gh, px = r % gw;
        const float *o = dout + (size_t)r * K;
        for (int c = 0; c < C; c++)
            for (int y = 0; y < p; y++)
                for (int x = 0; x < p; x++)
                    din[(((size_t)b * H + py * p + y) * W + px * p + x) * C + c] += o[(c * p + y) * p + x];
    }
}

void pvlm_op_im2col3_fwd(float *cols, const float *in, int B, int H, int W, int C) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < B * H * W; r++) {
        int b = r / (H * W), y = (r / W) % H, x = r % W;
        float *o = cols + (size_t)r * C * 9;
        for (int c = 0; c < C; c++)
            for (int ky = 0; ky < 3; ky++)
                for (int kx = 0; kx < 3; kx++) {
                    int yy = y + ky - 1, xx = x + kx - 1;
                    o[c * 9 + ky * 3 + kx] =
                        (yy < 0 || yy >= H || xx < 0 || xx >= W) ? 0.0f
                                                                 : in[(((size_t)b * H + yy) * W + xx) * C + c];
                }
    }
}

void pvlm_op_im2col3_bwd(float *din, const float *dcols, int B, int H, int W, int C) {
    /* gather form (each input pixel sums its 9 contributions in a fixed order): race-free */
#pragma omp parallel for schedule(static)
    for (int r = 0; r < B * H * W; r++) {
        int b = r / (H * W), y = (r / W) % H, x = r % W;
        float *d = din + (size_t)r * C;
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) {
                /* output pixel (oy, ox) read input (oy+ky-1, ox+kx-1) = (y, x) */
                int oy = y - ky + 1, ox = x - kx + 1;
                if (oy < 0 || oy >= H || ox < 0 || ox >= W) continue;
                const float *g = dcols + (((size_t)b * H + oy) * W + ox) * C * 9;
                for (int c = 0; c < C; c++) d[c] += g[c * 9 + ky * 3 + kx];
            }
    }
}

void pvlm_op_groupnorm_fwd(float *out, float *mean, float *rstd, const float *in, const float *w,
                           const float *b, int B, int HW, int C, int G, float eps) {
    int Cg = C / G;
#pragma omp parallel for schedule(static)
    for (int bg = 0; bg < B * G; bg++) {
        int bb = bg / G, g = bg % G;
        const float *x = in + (size_t)bb * HW * C + g * Cg;
        float *y = out + (size_t)bb * HW * C + g * Cg;
        double s = 0.0;
        for (int i = 0; i < HW; i++)
            for (int c = 0; c < Cg; c++) s += x[(size_t)i * C + c];
        double M = (double)HW * Cg, m = s / M, v = 0.0;
        for (int i = 0; i < HW; i++)
            for (int c = 0; c < Cg; c++) {
                double d = x[(size_t)i * C + c] - m;
                v += d * d;
            }
        float mf = (float)m, r = (float)(1.0 / sqrt(v / M + eps));
        for (int i = 0; i < HW; i++)
            for (int c = 0; c < Cg; c++)
                y[(size_t)i * C + c] = (x[(size_t)i * C + c] - mf) * r * w[g * Cg + c] + b[g * Cg + c];
        mean[bg] = mf, rstd[bg] = r;
    }
}

void pvlm_op_groupnorm_bwd(float *din, float *dw, float *db, const float *dout, const float *in,
                           const float *w, const float *mean, const float *rstd, int B, int HW, int C, int G) {
    int Cg = C / G;
#pragma omp parallel for schedule(static)
    for (int bg = 0; bg < B * G; bg++) {
        int bb = bg / G, g = bg % G;
        size_t base = (size_t)bb * HW * C + g * Cg;
        const float *x = in + base, *dy = dout + base;
        float *dx = din + base;
        float m = mean[bg], r = rstd[bg];
        double s1 = 0.0, s2 = 0.0;
        for (int i = 0; i < HW; i++)
            for (int c = 0; c < Cg; c++) {
                size_t o = (size_t)i * C + c;
                float gg = dy[o] * w[g * Cg + c];
                s1 += gg, s2 += gg * (x[o] - m) * r;
            }
        double M = (double)HW * Cg;
        float m1 = (float)(s1 / M), m2 = (float)(s2 / M);
        for (int i = 0; i < HW; i++)
            for (int c = 0; c < Cg; c++) {
                size_t o = (size_t)i * C + c;
                float xh = (x[o] - m) * r;
                dx[o] += r * (dy[o] * w[g * Cg + c] - m1 - xh * m2);
            }
    }
    /* parameter gradients: per channel, samples and pixels in order */
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        int g = c / Cg;
        double aw = 0.0, ab = 0.0;
        for (int bb = 0; bb < B; bb++) {
            float m = mean[bb * G + g], r = rstd[bb * G + g];
            for (int i = 0; i < HW; i++) {
                size_t o = ((size_t)bb * HW + i) * C + c;
                aw += dout[o] * (in[o] - m) * r;
                ab += dout[o];
            }
        }
        dw[c] += (float)aw, db[c] += (float)ab;
    }
}

/* Every thread's share of the memory bandwidth: the bench model's 194 MB of gradients took 7.9 ms in one thread's
 * memset, 4.5 ms in two threads'; a serial memset also leaves the other threads waiting. */
void pvlm_op_zero(float *x, size_t n) {
    size_t chunk = (size_t)1 << 16, nc = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(dynamic)
    for (size_t c = 0; c < nc; c++)
        memset(x + c * chunk, 0, sizeof(float) * (n - c * chunk < chunk ? n - c * chunk : chunk));
}

void pvlm_op_add_inplace(float *y, const float *x, size_t n) {
#pragma omp parallel for schedule(dynamic, PVLM_THREADS_ITEM)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

void pvlm_op_add(float *y, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(dynamic, PVLM_THREADS_ITEM)
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}
