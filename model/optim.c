/* optim.c - see optim.h. */
#include "optim.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/threads.h"
#include "model/simd.h"

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
 * (the same bits as chunk_sqsum), but the chains overlap instead of waiting for one another. Each chunk is
 * read SQ_AHEAD floats ahead with prefetches: eight streams 16 KB apart are more than this VM's hardware
 * prefetcher follows (bench model, 48.5 M floats: 16-20 -> 13 ms at 1 thread, 8.6-9 -> 7.8-8.3 ms at 2). */
#define SQ_CHUNK 4096
#define SQ_GROUP 8
#define SQ_AHEAD 512
static void group_sqsum(double *part, const float *g) {
    double s[SQ_GROUP] = {0};
    for (size_t i = 0; i < SQ_CHUNK; i++)
        _Pragma("GCC unroll 8") for (int j = 0; j < SQ_GROUP; j++) {
            if (i % 16 == 0) __builtin_prefetch(g + (size_t)j * SQ_CHUNK + i + SQ_AHEAD);
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
#pragma omp parallel for schedule(dynamic) /* each group writes its own parts, summed in order below */
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

__attribute__((always_inline)) static inline void adamw_one(float *p, float g, float *m1, float *m2,
                                                             const adamw_c *c) {
    float gi = g * c->gs;
    float mi = c->b1 * *m1 + (1.0f - c->b1) * gi;
    float vi = c->b2 * *m2 + (1.0f - c->b2) * gi * gi;
    *m1 = mi, *m2 = vi;
    float w = *p * c->decay;
    *p = w - c->step_size * mi / (sqrtf(vi) / c->sqrt_bc2 + c->eps);
}

/* n elements of the update, adamw_one's operations on each. The loop vectorises: this file is compiled with
 * -fno-math-errno, so sqrtf is the square-root instruction, correctly rounded like the libm call, as the
 * divisions are, and nothing is reassociated, so every lane gives the scalar bits. It is compiled once per vector
 * tier (model/simd.h: 4, 8 or 16 lanes), picked at run time: one thread's update is bound by its divisions and
 * square roots (bench model, 48.5 M parameters, Zen 5: 35.6 -> 25.5 ms at 1 thread with AVX-512 for the
 * baseline, 22 -> 20 ms at 2, where memory bounds it; Zen 3, 16 K elements from cache: 1.68 -> 0.90 ns an
 * element with AVX2). */
__attribute__((always_inline)) static inline void adamw_span(float *p, const float *g, float *m1, float *m2, size_t n,
                                                             const adamw_c *c) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) adamw_one(p + i, g[i], m1 + i, m2 + i, c);
}
static void adamw_span_base(float *p, const float *g, float *m1, float *m2, size_t n, const adamw_c *c) {
    adamw_span(p, g, m1, m2, n, c);
}
__attribute__((target("avx2"))) static void adamw_span_avx2(float *p, const float *g, float *m1, float *m2, size_t n,
                                                            const adamw_c *c) {
    adamw_span(p, g, m1, m2, n, c);
}
__attribute__((target("avx512f"))) static void adamw_span_512(float *p, const float *g, float *m1, float *m2, size_t n,
                                                               const adamw_c *c) {
    adamw_span(p, g, m1, m2, n, c);
}
typedef void (*adamw_span_fn)(float *p, const float *g, float *m1, float *m2, size_t n, const adamw_c *c);

/* View vi's part of [off, end) as [*a, *b), and its count of work items of PVLM_THREADS_ITEM elements
 * (core/threads.h; 0: outside the range or not trained). */
static size_t view_items(const pvlm_model *m, int vi, size_t off, size_t end, const uint8_t *trainable, size_t *a,
                         size_t *b) {
    const pvlm_view *v = &m->views[vi];
    *a = v->offset > off ? v->offset : off, *b = v->offset + v->numel < end ? v->offset + v->numel : end;
    if (*a >= *b || (trainable && !trainable[vi])) return 0;
    return (*b - *a + PVLM_THREADS_ITEM - 1) / PVLM_THREADS_ITEM;
}

void pvlm_optim_adamw(const pvlm_model *m, float *p, const float *g, float *m1, float *m2, size_t off,
                      size_t n, const uint8_t *trainable, double lr, double grad_scale, int64_t step,
                      const pvlm_optim_config *c) {
    double bc1 = 1.0 - pow(c->beta1, (double)step), bc2 = 1.0 - pow(c->beta2, (double)step);
    adamw_c k = {(float)grad_scale, (float)c->beta1,  (float)c->beta2, 1.0f,
                 (float)(lr / bc1), (float)sqrt(bc2), (float)c->eps};
    float decay = (float)(1.0 - lr * c->weight_decay);
    size_t end = off + n, total = 0, a, b;
    adamw_span_fn span = PVLM_SIMD_PICK(pvlm_simd_isa(), adamw_span_base, adamw_span_avx2, adamw_span_512);
    /* every view's items in one parallel loop (one per view cost a fork and a join each, ~200 a step); each
     * thread finds an item's view with a cursor that only moves forward, as a thread's items come in order */
    for (int vi = 0; vi < m->n_views; vi++) total += view_items(m, vi, off, end, trainable, &a, &b);
    if (!total) return;
#pragma omp parallel private(a, b)
    {
        int vi = 0;
        size_t first = 0, cnt = view_items(m, 0, off, end, trainable, &a, &b); /* view vi's items from first */
#pragma omp for schedule(dynamic) /* the items are independent; a slowed vCPU takes fewer */
        for (size_t j = 0; j < total; j++) {
            if (j < first) vi = 0, first = 0, cnt = view_items(m, 0, off, end, trainable, &a, &b);
            while (j >= first + cnt) first += cnt, cnt = view_items(m, ++vi, off, end, trainable, &a, &b);
            adamw_c kv = k;
            kv.decay = pvlm_view_decays(&m->views[vi]) ? decay : 1.0f;
            size_t i = a - off + (j - first) * PVLM_THREADS_ITEM, len = b - off - i;
            if (len > PVLM_THREADS_ITEM) len = PVLM_THREADS_ITEM;
            span(p + i, g + i, m1 + i, m2 + i, len, &kv);
        }
    }
}
