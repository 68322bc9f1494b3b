/* test_model_encgrad.c - pvlm_model_encode_backward against central finite differences.
 *
 * The objective is a fixed random linear read-out of the encoder output, J = sum_{rows, k} R[row, k] E[row, k]
 * over visible rows (pvlm_model_encode's padded layout; hidden rows are zero and ignored), so dJ/dE = R.
 * Tiny configs (tests/model/tiny.h) with a mixed batch (image-text and text-only samples, prefix padding):
 * patch stem, conv stem, VPT deep, CoOp context. Every view that the encoder reads gets its largest and a
 * few random elements checked; decoder views must keep a zero gradient; a backward without a matching
 * encode, or after a forward, is refused.
 */
#include "core/rng.h"
#include "harness.h"
#include "model/model.h"
#include "tiny.h"

static double objective(pvlm_model *m, const pvlm_batch *b, const float *R) {
    const float *E;
    const uint8_t *km;
    int T;
    pvlm_err err;
    if (pvlm_model_encode(m, b, &E, &km, &T, &err)) {
        fprintf(stderr, "encode: %s\n", err.msg);
        return NAN;
    }
    double s = 0;
    int d = m->cfg.d_model;
    for (size_t r = 0; r < (size_t)b->B * T; r++)
        if (km[r])
            for (int k = 0; k < d; k++) s += (double)R[r * d + k] * E[r * d + k];
    return s;
}

/* Does the encoder read view v? (decoder layers, dec_pos and dec.ln_f are not read; tok_embed is, for the prefix) */
static int encoder_reads(const pvlm_view *v) { return strncmp(v->name, "dec.", 4) && strcmp(v->name, "dec_pos"); }

static void run_case(const char *name, pvlm_model_config *cfg) {
    pvlm_err err;
    pvlm_model m = {0};
    pvlm_batch b;
    CHECK_OK(tiny_model_and_batch(&m, &b, cfg, &err), &err);
    if (!m.params) return;
    int T = pvlm_model_enc_len(cfg), d = cfg->d_model;
    float *R = malloc(sizeof(float) * (size_t)b.B * T * d), *g = malloc(sizeof(float) * m.n_params);
    pvlm_rng r;
    pvlm_rng_seed(&r, 11, 1);
    for (size_t i = 0; i < (size_t)b.B * T * d; i++) R[i] = (float)pvlm_rng_normal(&r);
    objective(&m, &b, R);
    pvlm_model_zero_grad(&m);
    CHECK_OK(pvlm_model_encode_backward(&m, &b, R, &err), &err);
    memcpy(g, m.grads, sizeof(float) * m.n_params);
    int nchecked = 0, nbad = 0, nviews = 0;
    double worst = 0;
    const float eps = 3e-3f;
    for (int vi = 0; vi < m.n_views; vi++) {
        const pvlm_view *v = &m.views[vi];
        double gmax = 0;
        size_t am = 0;
        for (size_t k = 0; k < v->numel; k++) {
            gmax = fmax(gmax, fabs(g[v->offset + k]));
            if (fabs(g[v->offset + k]) > fabs(g[v->offset + am])) am = k;
        }
        if (!encoder_reads(v)) { /* the decoder took no part: its gradient stays zero */
            CHECK_MSG(gmax == 0, "%s: decoder view %s got a gradient (max %.3g)", name, v->name, gmax);
            continue;
        }
        CHECK_MSG(gmax > 0, "%s: encoder view %s got no gradient", name, v->name);
        nviews++;
        for (int k = 0; k < 5; k++) {
            size_t idx = k == 0 ? am : pvlm_rng_below(&r, v->numel);
            float *x = m.params + v->offset + idx, s0 = *x;
            *x = s0 + eps;
            double lp = objective(&m, &b, R);
            *x = s0 - eps;
            double lm = objective(&m, &b, R);
            *x = s0;
            double fd = (lp - lm) / (2 * eps), an = g[v->offset + idx];
            double e = fabs(fd - an) / (gmax + 1e-4);
            worst = fmax(worst, e), nchecked++;
            if (!(e < 1e-2)) {
                nbad++;
                fprintf(stderr, "%s: %s[%zu]: fd %.6g analytic %.6g (max |g| %.3g)\n", name, v->name, idx, fd, an, gmax);
            }
        }
    }
    CHECK_MSG(nbad == 0, "%s: %d of %d finite-difference checks failed", name, nbad, nchecked);
    /* a backward needs the matching encode: refused after a forward, and for a batch of another shape */
    float loss;
    CHECK_OK(pvlm_model_forward(&m, &b, 10.0, &loss, NULL, NULL, &err), &err);
    CHECK(pvlm_model_encode_backward(&m, &b, R, &err) != 0);
    objective(&m, &b, R);
    b.B = 3;
    CHECK(pvlm_model_encode_backward(&m, &b, R, &err) != 0);
    b.B = 4;
    printf("  %-12s params=%zu encoder views=%d checked=%d worst rel err %.2e\n", name, m.n_params, nviews, nchecked, worst);
    free(R), free(g);
    pvlm_batch_free(&b);
    pvlm_model_free(&m);
}

int main(void) {
    pvlm_model_config c;
    tiny_config(&c);
    run_case("patch", &c);
    tiny_config(&c);
    snprintf(c.stem, sizeof c.stem, "conv");
    run_case("conv_stem", &c);
    tiny_config(&c);
    c.n_vpt = 2, c.vpt_deep = 1;
    run_case("vpt_deep", &c);
    tiny_config(&c);
    c.n_ctx = 2, c.n_ctx_sets = 3;
    run_case("coop", &c);
    return pvlm_test_done("model_encgrad");
}
