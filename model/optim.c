/* optim.c - see optim.h. */
#include "optim.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

void pvlm_optim_config_default(pvlm_optim_config *c) {
    memset(c, 0, sizeof *c);
    c->lr = 1e-4, c->beta1 = 0.9, c->beta2 = 0.999, c->eps = 1e-8, c->weight_decay = 0.01;
    c->grad_clip = 1.0, c->min_lr_ratio = 0.1;
    c->warmup_steps = 1000, c->total_steps = 100000;
    snprintf(c->schedule, sizeof c->schedule, "cosine");
}

int pvlm_optim_config_validate(const pvlm_optim_config *c, pvlm_err *err) {
    if (!(c->lr >= 0) || !(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1) || !(c->eps > 0))
        return pvlm_err_set(err, PVLM_EINVAL, "optimizer: need lr >= 0, betas in [0,1), eps > 0");
    if (!(c->weight_decay >= 0) || !(c->min_lr_ratio >= 0 && c->min_lr_ratio <= 1))
        return pvlm_err_set(err, PVLM_EINVAL, "optimizer: need weight_decay >= 0 and min_lr_ratio in [0,1]");
    if (c->warmup_steps < 0 || c->total_steps < 0)
        return pvlm_err_set(err, PVLM_EINVAL, "optimizer: warmup_steps and total_steps must be >= 0");
    if (strcmp(c->schedule, "cosine") && strcmp(c->schedule, "linear") && strcmp(c->schedule, "const"))
        return pvlm_err_set(err, PVLM_EINVAL, "optimizer: schedule '%s' must be cosine, linear or const", c->schedule);
    return 0;
}

double pvlm_optim_lr(const pvlm_optim_config *c, int64_t step) {
    if (step < c->warmup_steps) return c->lr * (double)(step + 1) / (double)c->warmup_steps;
    if (!strcmp(c->schedule, "const")) return c->lr;
    double lo = c->lr * c->min_lr_ratio;
    int64_t span = c->total_steps - c->warmup_steps;
    double prog = span > 0 ? (double)(step - c->warmup_steps) / (double)span : 1.0;
    if (prog > 1.0) prog = 1.0;
    if (prog < 0.0) prog = 0.0;
    if (!strcmp(c->schedule, "linear")) return c->lr - (c->lr - lo) * prog;
    return lo + (c->lr - lo) * 0.5 * (1.0 + cos(M_PI * prog)); /* cosine (Loshchilov & Hutter, SGDR) */
}

/* g[a..b) squared and summed in order in double: one chunk's sum. */
static double chunk_sqsum(const float *g, size_t a, size_t b) {
    double s = 0.0;
    for (size_t i = a; i < b; i++) s += (double)g[i] * (double)g[i];
    return s;
}

/* SQ_GROUP whole chunks from g, summed side by side: each chunk's chain of dependent adds keeps its order
 * (the same bits as chunk_sqsum), but the chains overlap instead of waiting for one another. */
#define SQ_CHUNK 4096
#define SQ_GROUP 8
static void group_sqsum(double *part, const float *g) {
    double s[SQ_GROUP] = {0};
    for (size_t i = 0; i < SQ_CHUNK; i++)
        _Pragma("GCC unroll 8") for (int j = 0; j < SQ_GROUP; j++) {
            double x = (double)g[(size_t)j * SQ_CHUNK + i];
            s[j] += x * x;
        }
    for (int j = 0; j < SQ_GROUP; j++) part[j] = s[j];
}

double pvlm_optim_sqnorm(const float *g, size_t n) {
    /* fixed 4096-element chunks summed in order: the result does not depend on the thread count */
    size_t nchunk = (n + SQ_CHUNK - 1) / SQ_CHUNK, nfull = n / SQ_CHUNK;
    double total = 0.0;
    enum { BATCH = 256 }; /* a multiple of SQ_GROUP */
    double part[BATCH];
    for (size_t c0 = 0; c0 < nchunk; c0 += BATCH) {
        size_t c1 = c0 + BATCH < nchunk ? c0 + BATCH : nchunk;
        long ngrp = (long)((c1 - c0 + SQ_GROUP - 1) / SQ_GROUP);
#pragma omp parallel for schedule(static)
        for (long k = 0; k < ngrp; k++) {
            size_t c = c0 + (size_t)k * SQ_GROUP;
            if (c + SQ_GROUP <= nfull) {
                group_sqsum(part + (c - c0), g + c * SQ_CHUNK);
            } else {
                for (size_t e = c; e < c1 && e < c + SQ_GROUP; e++) {
                    size_t a = e * SQ_CHUNK, b = a + SQ_CHUNK < n ? a + SQ_CHUNK : n;
                    part[e - c0] = chunk_sqsum(g, a, b);
                }
            }
        }
        for (size_t c = c0; c < c1; c++) total += part[c - c0];
    }
    return total;
}

double pvlm_optim_clip_scale(double global_norm, double clip) {
    if (clip <= 0) return 1.0;
    double s = clip / (global_norm + 1e-6);
    return s < 1.0 ? s : 1.0;
}

/* One step's constants, torch.optim.AdamW's update in its order of operations (adamw_one). */
typedef struct adamw_c {
    float gs, b1, b2, decay, step_size, sqrt_bc2, eps;
} adamw_c;

static inline void adamw_one(float *p, float g, float *m1, float *m2, const adamw_c *c) {
    float gi = g * c->gs;
    float mi = c->b1 * *m1 + (1.0f - c->b1) * gi;
    float vi = c->b2 * *m2 + (1.0f - c->b2) * gi * gi;
    *m1 = mi, *m2 = vi;
    float w = *p * c->decay;
    *p = w - c->step_size * mi / (sqrtf(vi) / c->sqrt_bc2 + c->eps);
}

/* ADAM_BLK elements in vectors: every lane does adamw_one's operations in its order, and the square roots and
 * divisions are correctly rounded like sqrtf and '/', so the bits do not depend on the vector width (sqrtf is a
 * libm call the compiler will not vectorise without -fno-math-errno, hence the intrinsics). AVX-512 where the
 * CPU has it: one thread's update is bound by its divisions and square roots, 16 lanes each instead of 4 (bench
 * model, 48.5 M parameters: 35.6 -> 25.5 ms at 1 thread; 22 -> 20 ms at 2, where memory bounds it). */
#define ADAM_BLK 64
#if defined(__SSE2__)
__attribute__((target("avx512f"))) static void adamw_blk_512(float *p, const float *g, float *m1, float *m2,
                                                             const adamw_c *c) {
    __m512 gs = _mm512_set1_ps(c->gs), b1 = _mm512_set1_ps(c->b1), nb1 = _mm512_set1_ps(1.0f - c->b1);
    __m512 b2 = _mm512_set1_ps(c->b2), nb2 = _mm512_set1_ps(1.0f - c->b2), decay = _mm512_set1_ps(c->decay);
    __m512 sbc2 = _mm512_set1_ps(c->sqrt_bc2), eps = _mm512_set1_ps(c->eps), ss = _mm512_set1_ps(c->step_size);
    for (int i = 0; i < ADAM_BLK; i += 16) {
        __m512 gi = _mm512_mul_ps(_mm512_loadu_ps(g + i), gs);
        __m512 mi = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_loadu_ps(m1 + i)), _mm512_mul_ps(nb1, gi));
        __m512 vi =
            _mm512_add_ps(_mm512_mul_ps(b2, _mm512_loadu_ps(m2 + i)), _mm512_mul_ps(_mm512_mul_ps(nb2, gi), gi));
        _mm512_storeu_ps(m1 + i, mi), _mm512_storeu_ps(m2 + i, vi);
        __m512 w = _mm512_mul_ps(_mm512_loadu_ps(p + i), decay);
        __m512 den = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), sbc2), eps);
        _mm512_storeu_ps(p + i, _mm512_sub_ps(w, _mm512_div_ps(_mm512_mul_ps(ss, mi), den)));
    }
}
#endif

static void adamw_blk(float *p, const float *g, float *m1, float *m2, const adamw_c *c) {
#if defined(__SSE2__)
    __m128 gs = _mm_set1_ps(c->gs), b1 = _mm_set1_ps(c->b1), nb1 = _mm_set1_ps(1.0f - c->b1);
    __m128 b2 = _mm_set1_ps(c->b2), nb2 = _mm_set1_ps(1.0f - c->b2), decay = _mm_set1_ps(c->decay);
    __m128 sbc2 = _mm_set1_ps(c->sqrt_bc2), eps = _mm_set1_ps(c->eps), ss = _mm_set1_ps(c->step_size);
    for (int i = 0; i < ADAM_BLK; i += 4) {
        __m128 gi = _mm_mul_ps(_mm_loadu_ps(g + i), gs);
        __m128 mi = _mm_add_ps(_mm_mul_ps(b1, _mm_loadu_ps(m1 + i)), _mm_mul_ps(nb1, gi));
        __m128 vi = _mm_add_ps(_mm_mul_ps(b2, _mm_loadu_ps(m2 + i)), _mm_mul_ps(_mm_mul_ps(nb2, gi), gi));
        _mm_storeu_ps(m1 + i, mi), _mm_storeu_ps(m2 + i, vi);
        __m128 w = _mm_mul_ps(_mm_loadu_ps(p + i), decay);
        __m128 den = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(vi), sbc2), eps);
        _mm_storeu_ps(p + i, _mm_sub_ps(w, _mm_div_ps(_mm_mul_ps(ss, mi), den)));
    }
#else
    for (int i = 0; i < ADAM_BLK; i++) adamw_one(p + i, g[i], m1 + i, m2 + i, c);
#endif
}

void pvlm_optim_adamw(const pvlm_model *m, float *p, const float *g, float *m1, float *m2, size_t off,
                      size_t n, const uint8_t *trainable, double lr, double grad_scale, int64_t step,
                      const pvlm_optim_config *c) {
    double bc1 = 1.0 - pow(c->beta1, (double)step), bc2 = 1.0 - pow(c->beta2, (double)step);
    adamw_c k = {(float)grad_scale, (float)c->beta1,  (float)c->beta2, 1.0f,
                 (float)(lr / bc1), (float)sqrt(bc2), (float)c->eps};
    size_t end = off + n;
#if defined(__SSE2__)
    __builtin_cpu_init();
    int wide = __builtin_cpu_supports("avx512f");
#endif
    for (int vi = 0; vi < m->n_views; vi++) {
        const pvlm_view *v = &m->views[vi];
        size_t a = v->offset > off ? v->offset : off, b = v->offset + v->numel < end ? v->offset + v->numel : end;
        if (a >= b || (trainable && !trainable[vi])) continue;
        adamw_c kv = k;
        kv.decay = pvlm_view_decays(v) ? (float)(1.0 - lr * c->weight_decay) : 1.0f;
        float *pp = p + (a - off), *mm = m1 + (a - off), *vv = m2 + (a - off);
        const float *gg = g + (a - off);
        size_t cnt = b - a, nblk = cnt / ADAM_BLK;
#pragma omp parallel for schedule(static)
        for (size_t j = 0; j < nblk; j++) {
            size_t i = j * ADAM_BLK;
#if defined(__SSE2__)
            if (wide) {
                adamw_blk_512(pp + i, gg + i, mm + i, vv + i, &kv);
                continue;
            }
#endif
            adamw_blk(pp + i, gg + i, mm + i, vv + i, &kv);
        }
        for (size_t i = nblk * ADAM_BLK; i < cnt; i++) adamw_one(pp + i, gg[i], mm + i, vv + i, &kv);
    }
}
