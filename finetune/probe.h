/* probe.h - the linear probe on the frozen encoder: the baseline that CoOp (arXiv 2109.01134, section
 * 4.1) and VPT (arXiv 2203.12119, section 4) compare prompt tuning with.
 *
 * Features: the base model's encoder runs on the image alone (no prefix text) and the final-LayerNorm
 * outputs of its Np image tokens are averaged into one d-vector per image; the encoder is never changed.
 * Classifier: multinomial logistic regression (softmax over K classes), as CLIP's and CoOp's linear
 * probe: features are standardised with the training subset's mean and standard deviation, and
 *   J(W, b) = 1/n sum_i -log softmax(W z_i + b)[y_i] + l2/2 ||W||^2      (the bias is not penalised)
 * is minimised by full-batch accelerated gradient descent (Nesterov) with step 1/L, where
 * L = 0.5 * lambda_max(Z1^T Z1 / n) + l2 bounds the Hessian (Z1 = [Z, 1]; softmax's Hessian block is at
 * most I/2). The L2 weight is the hyperparameter chosen on a validation split (CoOp searches it, as
 * CLIP's probe does). The returned W, b act on raw (unstandardised) features.
 *
 * Ownership: the caller allocates every array passed in (features, weights); nothing is kept.
 */
#ifndef PVLM_FINETUNE_PROBE_H
#define PVLM_FINETUNE_PROBE_H

#include <stdint.h>

#include "core/error.h"
#include "finetune/fttask.h"
#include "model/model.h"

#define PVLM_PROBE_ITERS 1000      /* gradient steps per fit (fixed, so the L2 weight is the one knob) */
#define PVLM_PROBE_MAX_CLASSES 256

/* feat [d->n_images, m->cfg.d_model] (caller-allocated): the mean encoder output over the image tokens
 * of every image of d, computed in batches of `batch` images. */
int pvlm_probe_features(pvlm_model *m, const pvlm_ft_data *d, int batch, float *feat, pvlm_err *err);

/* The objective J and (if grad != NULL) its gradient at theta [K, D], D = dim + 1 (last column: bias),
 * for standardised rows Z [n, dim] with labels y [n], K <= PVLM_PROBE_MAX_CLASSES (else NAN). Exposed for
 * the finite-difference test. */
double pvlm_probe_objective(const double *theta, const double *Z, const int *y, int n, int dim, int K, double l2,
                            double *grad);

/* Fit on raw features X [n, dim] with labels y [n] in [0, K): W [K, dim], b [K] (caller-allocated). */
int pvlm_probe_fit(const float *X, const int *y, int n, int dim, int K, double l2, int iters, float *W, float *b,
                   pvlm_err *err);

/* argmax_k (W x + b)_k. */
int pvlm_probe_predict(const float *W, const float *b, int dim, int K, const float *x);

/* A probe file: safetensors with probe.weight [K, dim] and probe.bias [K], metadata format "pvlm-probe",
 * version "1", base_path and base_xxh3 (the frozen encoder it reads). */
int pvlm_probe_save(const char *path, const float *W, const float *b, int K, int dim, const char *base_path,
                    uint64_t base_hash, pvlm_err *err);

#endif
