/* test_finetune_probe.c - the linear probe's logistic regression (finetune/probe.h).
 *
 * - the objective's gradient (softmax cross-entropy + L2 on the weights, not the bias) against central
 *   finite differences;
 * - the fit reaches the optimum: on standardised data the gradient of the objective at the returned
 *   weights is ~0 (the step size bound and the accelerated iteration converge);
 * - Gaussian clusters are classified well on held-out points, and an affine change of the raw features
 *   (scale and offset per feature) leaves the predictions unchanged (the fit standardises);
 * - bad labels and too few classes are errors naming the reason.
 */
#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "finetune/probe.h"
#include "harness.h"

enum { DIM = 6, K = 3, NTR = 60, NTE = 300 };

/* n points of K Gaussian clusters (sd 1) whose means sit 3 apart on the first K axes. */
static void clusters(pvlm_rng *r, int n, float *X, int *y) {
    for (int i = 0; i < n; i++) {
        y[i] = i % K;
        for (int j = 0; j < DIM; j++) X[i * DIM + j] = (float)(pvlm_rng_normal(r) + (j == y[i] ? 3.0 : 0.0));
    }
}

static double accuracy(const float *W, const float *b, const float *X, const int *y, int n) {
    int ok = 0;
    for (int i = 0; i < n; i++) ok += pvlm_probe_predict(W, b, DIM, K, X + i * DIM) == y[i];
    return (double)ok / n;
}

int main(void) {
    pvlm_rng r;
    pvlm_rng_seed(&r, 7, 0);
    pvlm_err err = {0};

    /* 1. gradient vs central differences */
    enum { N1 = 12, D1 = 5, K1 = 4 };
    double Z[N1 * D1], th[K1 * (D1 + 1)], g[K1 * (D1 + 1)];
    int y1[N1];
    for (int i = 0; i < N1 * D1; i++) Z[i] = pvlm_rng_normal(&r);
    for (int i = 0; i < N1; i++) y1[i] = (int)pvlm_rng_below(&r, K1);
    for (int i = 0; i < K1 * (D1 + 1); i++) th[i] = 0.5 * pvlm_rng_normal(&r);
    double J = pvlm_probe_objective(th, Z, y1, N1, D1, K1, 0.3, g);
    CHECK(isfinite(J) && J > 0);
    CHECK_CLOSE(pvlm_probe_objective(th, Z, y1, N1, D1, K1, 0.3, NULL), J, 0, 0);
    for (int q = 0; q < K1 * (D1 + 1); q++) {
        double h = 1e-5, keep = th[q];
        th[q] = keep + h;
        double jp = pvlm_probe_objective(th, Z, y1, N1, D1, K1, 0.3, NULL);
        th[q] = keep - h;
        double jm = pvlm_probe_objective(th, Z, y1, N1, D1, K1, 0.3, NULL);
        th[q] = keep;
        CHECK_CLOSE(g[q], (jp - jm) / (2 * h), 1e-6, 1e-8);
    }
    CHECK(isnan(pvlm_probe_objective(th, Z, y1, N1, D1, PVLM_PROBE_MAX_CLASSES + 1, 0.3, NULL)));

    /* 2. convergence: standardise first (as the fit does), then the gradient at the result is ~0 */
    float X[NTR * DIM], Xte[NTE * DIM], W[K * DIM], b[K];
    int y[NTR], yte[NTE];
    clusters(&r, NTR, X, y);
    clusters(&r, NTE, Xte, yte);
    double mu[DIM] = {0}, sd[DIM] = {0}, Zs[NTR * DIM];
    for (int i = 0; i < NTR; i++)
        for (int j = 0; j < DIM; j++) mu[j] += X[i * DIM + j] / NTR;
    for (int i = 0; i < NTR; i++)
        for (int j = 0; j < DIM; j++) sd[j] += pow(X[i * DIM + j] - mu[j], 2) / NTR;
    float Xs[NTR * DIM];
    for (int i = 0; i < NTR; i++)
        for (int j = 0; j < DIM; j++) Xs[i * DIM + j] = (float)((X[i * DIM + j] - mu[j]) / sqrt(sd[j]));
    for (int i = 0; i < NTR * DIM; i++) Zs[i] = Xs[i];
    CHECK_OK(pvlm_probe_fit(Xs, y, NTR, DIM, K, 0.1, PVLM_PROBE_ITERS, W, b, &err), &err);
    double thf[K * (DIM + 1)], gf[K * (DIM + 1)], gn = 0;
    for (int k = 0; k < K; k++) {
        for (int j = 0; j < DIM; j++) thf[k * (DIM + 1) + j] = W[k * DIM + j];
        thf[k * (DIM + 1) + DIM] = b[k];
    }
    pvlm_probe_objective(thf, Zs, y, NTR, DIM, K, 0.1, gf);
    for (int q = 0; q < K * (DIM + 1); q++) gn += gf[q] * gf[q];
    CHECK_MSG(sqrt(gn) < 1e-4, "gradient norm at the fit %.3g", sqrt(gn));

    /* 3. held-out accuracy, and invariance to an affine change of each raw feature */
    CHECK_OK(pvlm_probe_fit(X, y, NTR, DIM, K, 0.01, PVLM_PROBE_ITERS, W, b, &err), &err);
    double acc = accuracy(W, b, Xte, yte, NTE);
    CHECK_MSG(acc > 0.85 && accuracy(W, b, X, y, NTR) > 0.9, "held-out accuracy %.3f", acc);
    float X2[NTR * DIM], Xte2[NTE * DIM], W2[K * DIM], b2[K];
    for (int i = 0; i < NTR * DIM; i++) X2[i] = X[i] * (float)(1 + 20 * (i % DIM)) + 50.0f;
    for (int i = 0; i < NTE * DIM; i++) Xte2[i] = Xte[i] * (float)(1 + 20 * (i % DIM)) + 50.0f;
    CHECK_OK(pvlm_probe_fit(X2, y, NTR, DIM, K, 0.01, PVLM_PROBE_ITERS, W2, b2, &err), &err);
    int same = 0;
    for (int i = 0; i < NTE; i++)
        same += pvlm_probe_predict(W, b, DIM, K, Xte + i * DIM) == pvlm_probe_predict(W2, b2, DIM, K, Xte2 + i * DIM);
    CHECK_MSG(same >= NTE - 2, "%d of %d predictions unchanged by an affine feature change", same, NTE);

    /* 4. bad input */
    int bad[NTR];
    memcpy(bad, y, sizeof bad);
    bad[5] = K;
    CHECK(pvlm_probe_fit(X, bad, NTR, DIM, K, 0.01, 10, W, b, &err) == -1 && strstr(err.msg, "label 3"));
    CHECK(pvlm_probe_fit(X, y, NTR, DIM, 1, 0.01, 10, W, b, &err) == -1 && strstr(err.msg, "classes"));
    return pvlm_test_done("finetune_probe");
}
