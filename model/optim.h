/* optim.h - AdamW with decoupled weight decay, global-norm clipping helpers, LR schedules.
 *
 * Owns nothing: the caller owns params, grads and the two moment buffers (m1, m2), which may be a
 * ZeRO-1 slice holding only the range being updated. AdamW follows Loshchilov & Hutter, "Decoupled
 * Weight Decay Regularization" (2019), in the exact update order of PyTorch's torch.optim.AdamW:
 *   p *= 1 - lr*wd;  m1 = b1 m1 + (1-b1) g;  m2 = b2 m2 + (1-b2) g^2;
 *   p -= lr/(1-b1^t) * m1 / (sqrt(m2)/sqrt(1-b2^t) + eps).
 * Weight decay only on views of kind MATRIX (pvlm_view_decays: not biases, norms, positional tables, prompts).
 */
#ifndef PVLM_OPTIM_H
#define PVLM_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

typedef struct pvlm_optim_config {
    double lr, beta1, beta2, eps, weight_decay, grad_clip, min_lr_ratio;
    int64_t warmup_steps, total_steps;
    char schedule[8]; /* "cosine" | "linear" | "const" */
} pvlm_optim_config;

/* lr 1e-4, betas (0.9, 0.999), eps 1e-8, weight_decay 0.01, grad_clip 1.0, min_lr_ratio 0.1,
 * warmup 1000, total 100000, cosine. */
void pvlm_optim_config_default(pvlm_optim_config *c);
int pvlm_optim_config_validate(const pvlm_optim_config *c, pvlm_err *err);
/* Linear warmup over warmup_steps ((step+1)/warmup), then cosine / linear decay from lr to
 * lr*min_lr_ratio at total_steps (held after), or constant. step is 0-based. */
double pvlm_optim_lr(const pvlm_optim_config *c, int64_t step);
/* Sum of squares of g[0..n) (double accumulation, deterministic order independent of threads). */
double pvlm_optim_sqnorm(const float *g, size_t n);
/* Gradient scale for global-norm clipping as torch.nn.utils.clip_grad_norm_:
 * min(1, clip / (norm + 1e-6)); 1 when clip <= 0. */
double pvlm_optim_clip_scale(double global_norm, double clip);
/* AdamW on the flat-buffer range [off, off+n): p, g, m1, m2 point at element `off`
 * (m1/m2 may be a ZeRO-1 slice: they hold only this range). `trainable` (NULL = all) is a per-view flag
 * array (m->n_views); untrained views keep params and moments. Weight decay only where pvlm_view_decays.
 * step is 1-based (bias correction). grad_scale multiplies g first (clipping). */
void pvlm_optim_adamw(const pvlm_model *m, float *p, const float *g, float *m1, float *m2, size_t off,
                      size_t n, const uint8_t *trainable, double lr, double grad_scale, int64_t step,
                      const pvlm_optim_config *c);

#endif
