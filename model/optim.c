/* optim.c - see optim.h. */
#include "optim.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

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

double pvlm_optim_sqnorm(const float *g, size_t n) {
    /* fixed 4096-element chunks summed in order: the result does not depend on the thread count */
    size_t nchunk = (n + 4095) / 4096;
    double total = 0.0;
    enum { BATCH = 256 };
    double part[BATCH];
    for (size_t c0 = 0; c0 < nchunk; c0 += BATCH) {
        size_t c1 = c0 + BATCH < nchunk ? c0 + BATCH : nchunk;
#pragma omp parallel for schedule(static)
        for (size_t c = c0; c < c1; c++) {
            size_t a = c * 4096, b = a + 4096 < n ? a + 4096 : n;
            double s = 0.0;
            for (size_t i = a; i < b; i++) s += (double)g[i] * (double)g[i];
            part[c - c0] = s;
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
        float decay = v->decay ? (float)(1.0 - lr * c->weight_decay) : 1.0f;
        float *pp = p + (a - off), *mm = m1 + (a - off), *vv = m2 + (a - off);
        const float *gg = g + (a - off);
        size_t cnt = b - a;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < cnt; i++) {
            float gi = gg[i] * gs;
            float mi = b1 * mm[i] + (1.0f - b1) * gi;
            float vi2 = b2 * vv[i] + (1.0f - b2) * gi * gi;
            mm[i] = mi, vv[i] = vi2;
            float w = pp[i] * decay;
            pp[i] = w - step_size * mi / (sqrtf(vi2) / sqrt_bc2 + eps);
        }
    }
}
