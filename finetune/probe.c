/* probe.c - see probe.h. */
#include "probe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "io/safetensors.h"

int pvlm_probe_features(pvlm_model *m, const pvlm_ft_data *d, int batch, float *feat, pvlm_err *err) {
    const pvlm_model_config *c = &m->cfg;
    int dim = c->d_model, Np = (c->image_size / c->patch_size) * (c->image_size / c->patch_size);
    size_t S3 = (size_t)d->S * (size_t)d->S * 3;
    pvlm_batch b;
    if (pvlm_batch_alloc(&b, batch, d->S, c->max_prefix_len, c->max_suffix_len, err)) return -1;
    int rc = 0;
    for (int i0 = 0; i0 < d->n_images && rc == 0; i0 += batch) {
        int nb = d->n_images - i0 < batch ? d->n_images - i0 : batch;
        b.B = batch;
        pvlm_batch_clear(&b, c->pad_id);
        b.B = nb;
        for (int r = 0; r < nb; r++) { /* the image alone: no prefix text, no target */
            memcpy(b.images + (size_t)r * S3, d->pixels + (size_t)(i0 + r) * S3, S3);
            b.has_image[r] = 1, b.prefix_len[r] = 0, b.suffix_len[r] = 0, b.sample_id[r] = i0 + r;
        }
        const float *E;
        const uint8_t *kmask;
        int T;
        rc = pvlm_model_encode(m, &b, &E, &kmask, &T, err);
        for (int r = 0; r < nb && rc == 0; r++) { /* image tokens come first in the encoder sequence */
            float *f = feat + (size_t)(i0 + r) * dim;
            for (int j = 0; j < dim; j++) {
                double s = 0;
                for (int t = 0; t < Np; t++) s += E[((size_t)r * T + t) * dim + j];
                f[j] = (float)(s / Np);
            }
        }
    }
    b.B = batch;
    pvlm_batch_free(&b);
    return rc;
}

double pvlm_probe_objective(const double *theta, const double *Z, const int *y, int n, int dim, int K, double l2,
                            double *grad) {
    int D = dim + 1;
    double J = 0, p[PVLM_PROBE_MAX_CLASSES];
    if (K > PVLM_PROBE_MAX_CLASSES) return NAN;
    if (grad) memset(grad, 0, sizeof(double) * (size_t)K * D);
    for (int i = 0; i < n; i++) {
        const double *z = Z + (size_t)i * dim;
        double mx = -INFINITY, sum = 0;
        for (int k = 0; k < K; k++) {
            const double *w = theta + (size_t)k * D;
            double s = w[dim];
            for (int j = 0; j < dim; j++) s += w[j] * z[j];
            p[k] = s;
            if (s > mx) mx = s;
        }
        for (int k = 0; k < K; k++) sum += exp(p[k] - mx);
        J += -(p[y[i]] - mx - log(sum));
        if (!grad) continue;
        for (int k = 0; k < K; k++) { /* d(-log p_y)/d s_k = p_k - [k == y] */
            double g = (exp(p[k] - mx) / sum - (k == y[i])) / n;
            double *gw = grad + (size_t)k * D;
            for (int j = 0; j < dim; j++) gw[j] += g * z[j];
            gw[dim] += g;
        }
    }
    J /= n;
    for (int k = 0; k < K; k++)
        for (int j = 0; j < dim; j++) {
            double w = theta[(size_t)k * D + j];
            J += 0.5 * l2 * w * w;
            if (grad) grad[(size_t)k * D + j] += l2 * w;
        }
    return J;
}

/* Largest eigenvalue of Z1^T Z1 / n (Z1 = [Z, 1]) by power iteration: the curvature bound's scale. */
static double gram_max_eig(const double *Z, int n, int dim) {
    int D = dim + 1;
    double *v = malloc(sizeof(double) * (size_t)D), *u = malloc(sizeof(double) * (size_t)D), lam = 1;
    if (!v || !u) {
        free(v), free(u);
        return NAN;
    }
    for (int j = 0; j < D; j++) v[j] = 1.0 / sqrt(D);
    for (int it = 0; it < 100; it++) {
        memset(u, 0, sizeof(double) * (size_t)D);
        for (int i = 0; i < n; i++) {
            const double *z = Z + (size_t)i * dim;
            double s = v[dim];
            for (int j = 0; j < dim; j++) s += z[j] * v[j];
            for (int j = 0; j < dim; j++) u[j] += s * z[j] / n;
            u[dim] += s / n;
        }
        double nu = 0;
        for (int j = 0; j < D; j++) nu += u[j] * u[j];
        nu = sqrt(nu);
        if (nu == 0) break;
        lam = nu;
        for (int j = 0; j < D; j++) v[j] = u[j] / nu;
    }
    free(v), free(u);
    return lam * 1.01; /* power iteration approaches from below */
}

int pvlm_probe_fit(const float *X, const int *y, int n, int dim, int K, double l2, int iters, float *W, float *b,
                   pvlm_err *err) {
    if (n <= 0 || dim <= 0 || K < 2 || K > PVLM_PROBE_MAX_CLASSES)
        return pvlm_err_set(err, PVLM_EINVAL, "linear probe: needs >= 1 example, dim >= 1 and 2..%d classes",
                            PVLM_PROBE_MAX_CLASSES);
    int D = dim + 1;
    size_t nt = (size_t)K * D;
    double *Z = malloc(sizeof(double) * (size_t)n * dim), *mu = calloc((size_t)dim, sizeof(double));
    double *sd = calloc((size_t)dim, sizeof(double)), *th = calloc(nt, sizeof(double));
    double *prev = calloc(nt, sizeof(double)), *look = calloc(nt, sizeof(double)), *g = calloc(nt, sizeof(double));
    int rc = Z && mu && sd && th && prev && look && g ? 0 : pvlm_err_set(err, PVLM_ENOMEM, "linear probe: out of memory");
    for (int i = 0; i < n && rc == 0; i++)
        if (y[i] < 0 || y[i] >= K) rc = pvlm_err_set(err, PVLM_EINVAL, "linear probe: label %d outside [0,%d)", y[i], K);
    if (rc == 0) {
        /* standardise with the training subset's statistics (a constant feature keeps sd 1) */
        for (int i = 0; i < n; i++)
            for (int j = 0; j < dim; j++) mu[j] += X[(size_t)i * dim + j] / (double)n;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < dim; j++) sd[j] += pow(X[(size_t)i * dim + j] - mu[j], 2) / n;
        for (int j = 0; j < dim; j++) sd[j] = sd[j] > 1e-12 ? sqrt(sd[j]) : 1.0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < dim; j++) Z[(size_t)i * dim + j] = (X[(size_t)i * dim + j] - mu[j]) / sd[j];
        double L = 0.5 * gram_max_eig(Z, n, dim) + l2, step = 1.0 / L;
        /* Nesterov's accelerated gradient: look = th + (t-1)/(t+2) (th - prev); th' = look - step * grad(look) */
        for (int t = 1; t <= iters; t++) {
            double mom = (t - 1.0) / (t + 2.0);
            for (size_t q = 0; q < nt; q++) look[q] = th[q] + mom * (th[q] - prev[q]);
            pvlm_probe_objective(look, Z, y, n, dim, K, l2, g);
            memcpy(prev, th, sizeof(double) * nt);
            for (size_t q = 0; q < nt; q++) th[q] = look[q] - step * g[q];
        }
        /* back to raw features: w_raw = w / sd, b_raw = b - sum_j w_j mu_j / sd_j */
        for (int k = 0; k < K; k++) {
            double bias = th[(size_t)k * D + dim];
            for (int j = 0; j < dim; j++) {
                double w = th[(size_t)k * D + j] / sd[j];
                W[(size_t)k * dim + j] = (float)w;
                bias -= w * mu[j];
            }
            b[k] = (float)bias;
        }
    }
    free(Z), free(mu), free(sd), free(th), free(prev), free(look), free(g);
    return rc;
}

int pvlm_probe_predict(const float *W, const float *b, int dim, int K, const float *x) {
    int best = 0;
    double bv = -INFINITY;
    for (int k = 0; k < K; k++) {
        double s = b[k];
        for (int j = 0; j < dim; j++) s += (double)W[(size_t)k * dim + j] * x[j];
        if (s > bv) bv = s, best = k;
    }
    return best;
}

int pvlm_probe_save(const char *path, const float *W, const float *b, int K, int dim, const char *base_path,
                    uint64_t base_hash, pvlm_err *err) {
    pvlm_st_writer w;
    if (pvlm_st_writer_init(&w, err)) return -1;
    int64_t sw[2] = {K, dim}, sb[1] = {K};
    char hex[17];
    pvlm_hash_hex(base_hash, hex);
    int rc = pvlm_st_writer_add(&w, "probe.weight", PVLM_ST_F32, 2, sw, W, err);
    if (rc == 0) rc = pvlm_st_writer_add(&w, "probe.bias", PVLM_ST_F32, 1, sb, b, err);
    if (rc == 0) rc = pvlm_st_writer_meta(&w, "format", "pvlm-probe", err);
    if (rc == 0) rc = pvlm_st_writer_meta(&w, "version", "1", err);
    if (rc == 0) rc = pvlm_st_writer_meta(&w, "base_path", base_path, err);
    if (rc == 0) rc = pvlm_st_writer_meta(&w, "base_xxh3", hex, err);
    if (rc == 0) rc = pvlm_st_writer_write(&w, path, err);
    pvlm_st_writer_free(&w);
    return rc;
}
