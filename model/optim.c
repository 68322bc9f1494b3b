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

static inline void adamw_one(float *p, float g, float *m1, float *m2, float gs, float b1, float b2, float decay,
                             float step_size, float sqrt_bc2, float eps) {
    float gi = g * gs;
    float mi = b1 * *m1 + (1.0f - b1) * gi;
    float vi = b2 * *m2 + (1.0f - b2) * gi * gi;
    *m1 = mi, *m2 = vi;
    float w = *p * decay;
    *p = w - step_size * mi / (sqrtf(vi) / sqrt_bc2 + eps);
}

void pvlm_optim_adamw(const pvlm_model *m, float *p, const float *g, float *m1, float *m2, size_t off,
                      size_t n, const uint8_t *trainable, double lr, double grad_scale, int64_t step,
                      const pvlm_optim_config *c) {
    double bc1 = 1.0 - pow(c->beta1, (double)step), bc2 = 1.0 - pow(c->beta2, (double)step);
    float b1 = (float)c->beta1, b2 = (float)c->beta2, gs = (float)grad_scale, eps = (float)c->eps;
    float step_size = (float)(lr / bc1), sqrt_bc2 = (float)sqrt(bc2);
    size_t end = off + n;
    for (int vi = 0; vi < m->n_views; vi++) {
        const pvlm_view *v = &m->views[vi];
        size_t a = v->offset > off ? v->offset : off, b = v->offset + v->numel < end ? v->offset + v->numel : end;
        if (a >= b || (trainable && !trainable[vi])) continue;
        float decay = pvlm_view_decays(v) ? (float)(1.0 - lr * c->weight_decay) : 1.0f;
        float *pp = p + (a - off), *mm = m1 + (a - off), *vv = m2 + (a - off);
        const float *gg = g + (a - off);
        size_t cnt = b - a;
        /* 4-element blocks with SSE (sqrtf is a libm call the compiler will not vectorise without
         * -fno-math-errno); the same operations in the same order as the scalar tail, and sqrtps is
         * correctly rounded like sqrtf, so results do not depend on the block split. */
        size_t nblk = cnt / 4;
#pragma omp parallel for schedule(static)
        for (size_t k = 0; k < nblk; k++) {
#if defined(__SSE2__)
            size_t i = 4 * k;
            __m128 g4 = _mm_mul_ps(_mm_loadu_ps(gg + i), _mm_set1_ps(gs));
            __m128 m4 = _mm_add_ps(_mm_mul_ps(_mm_set1_ps(b1), _mm_loadu_ps(mm + i)), _mm_mul_ps(_mm_set1_ps(1.0f - b1), g4));
            __m128 v4 = _mm_add_ps(_mm_mul_ps(_mm_set1_ps(b2), _mm_loadu_ps(vv + i)),
                                   _mm_mul_ps(_mm_mul_ps(_mm_set1_ps(1.0f - b2), g4), g4));
            _mm_storeu_ps(mm + i, m4), _mm_storeu_ps(vv + i, v4);
            __m128 w4 = _mm_mul_ps(_mm_loadu_ps(pp + i), _mm_set1_ps(decay));
            __m128 den = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(v4), _mm_set1_ps(sqrt_bc2)), _mm_set1_ps(eps));
            _mm_storeu_ps(pp + i, _mm_sub_ps(w4, _mm_div_ps(_mm_mul_ps(_mm_set1_ps(step_size), m4), den)));
#else
            for (size_t i = 4 * k; i < 4 * k + 4; i++) adamw_one(pp + i, gg[i], mm + i, vv + i, gs, b1, b2, decay, step_size, sqrt_bc2, eps);
#endif
        }
        for (size_t i = 4 * nblk; i < cnt; i++) adamw_one(pp + i, gg[i], mm + i, vv + i, gs, b1, b2, decay, step_size, sqrt_bc2, eps);
    }
}
