/* test_gradcheck_model.c - whole-model backward against central finite differences.
 *
 * Tiny configs (tests/model/tiny.h) with a mixed batch (image-text and text-only samples, prefix and
 * suffix padding): patch stem, conv stem, VPT shallow, VPT deep, CoOp class-specific context with
 * per-sample scales (sample_scale). For every parameter view a few elements are perturbed; the objective
 * is sum_b scale_b * CE_b in double (from sample_ce). Also checks the grad-ready hook: its ranges are
 * disjoint, cover [0, n_params), and come decoder first, embeddings last.
 */
#include "core/rng.h"
#include "harness.h"
#include "model/model.h"
#include "tiny.h"

typedef struct hook_log {
    size_t off[256], cnt[256];
    int n;
} hook_log;

static void hook(void *ctx, size_t off, size_t cnt) {
    hook_log *h = ctx;
    if (h->n < 256) h->off[h->n] = off, h->cnt[h->n] = cnt, h->n++;
}

static double objective(pvlm_model *m, const pvlm_batch *b, const double *scale, double ntg) {
    double ce[16];
    float loss;
    pvlm_err err;
    if (pvlm_model_forward(m, b, ntg, &loss, NULL, ce, &err)) {
        fprintf(stderr, "forward: %s\n", err.msg);
        return NAN;
    }
    double s = 0;
    for (int i = 0; i < b->B; i++) s += (scale ? scale[i] : 1.0 / ntg) * ce[i];
    return s;
}

static void run_case(const char *name, pvlm_model_config *cfg, int use_scale) {
    pvlm_err err;
    pvlm_model m = {0};
    pvlm_batch b;
    CHECK_OK(tiny_model_and_batch(&m, &b, cfg, &err), &err);
    if (!m.params) return;
    double ntg = (double)pvlm_batch_count_targets(&b) + 3.0; /* "global" count larger than local */
    double scale[4] = {0.3, -0.7, 1.1, 0.5};
    const double *sc = use_scale ? scale : NULL;
    float loss;
    double ce[4];
    pvlm_loss_stats st;
    CHECK_OK(pvlm_model_forward(&m, &b, ntg, &loss, &st, ce, &err), &err);
    CHECK_CLOSE(loss, (st.loss_sum_img + st.loss_sum_txt) / ntg, 1e-6, 0);
    CHECK_CLOSE(ce[0] + ce[1] + ce[2] + ce[3], st.loss_sum_img + st.loss_sum_txt, 1e-9, 1e-9);
    CHECK(st.ntok_img + st.ntok_txt == pvlm_batch_count_targets(&b));
    hook_log hl = {0};
    pvlm_model_zero_grad(&m);
    CHECK_OK(pvlm_model_backward(&m, &b, sc, hook, &hl, &err), &err);
    /* hook ranges: disjoint, complete, decoder before encoder before embeddings */
    size_t covered = 0;
    for (int i = 0; i < hl.n; i++) {
        covered += hl.cnt[i];
        if (i) CHECK(hl.off[i] + hl.cnt[i] == hl.off[i - 1]); /* descending contiguous ranges */
    }
    CHECK(hl.n == cfg->n_enc_layers + cfg->n_dec_layers + 1);
    CHECK(covered == m.n_params && hl.n > 0 && hl.off[hl.n - 1] == 0);
    CHECK(hl.off[0] + hl.cnt[0] == m.n_params);

    float *g = malloc(sizeof(float) * m.n_params);
    memcpy(g, m.grads, sizeof(float) * m.n_params);
    pvlm_rng r;
    pvlm_rng_seed(&r, 3, 3);
    int nchecked = 0, nbad = 0;
    double worst = 0;
    const float eps = 3e-3f;
    for (int vi = 0; vi < m.n_views; vi++) {
        const pvlm_view *v = &m.views[vi];
        double gmax = 0;
        for (size_t k = 0; k < v->numel; k++) gmax = fmax(gmax, fabs(g[v->offset + k]));
        /* the elements with the largest gradient, plus random ones */
        size_t idx[6];
        size_t am = 0;
        for (size_t k = 0; k < v->numel; k++)
            if (fabs(g[v->offset + k]) > fabs(g[v->offset + am])) am = k;
        idx[0] = am;
        for (int k = 1; k < 6; k++) idx[k] = pvlm_rng_below(&r, v->numel);
        for (int k = 0; k < 6; k++) {
            float *x = m.params + v->offset + idx[k];
            float s0 = *x;
            *x = s0 + eps;
            double lp = objective(&m, &b, sc, ntg);
            *x = s0 - eps;
            double lm = objective(&m, &b, sc, ntg);
            *x = s0;
            double fd = (lp - lm) / (2 * eps), an = g[v->offset + idx[k]];
            double e = fabs(fd - an) / (gmax + 1e-4);
            worst = fmax(worst, e);
            nchecked++;
            if (!(e < 1e-2)) {
                nbad++;
                fprintf(stderr, "%s: %s[%zu]: fd %.6g analytic %.6g (max |g| %.3g)\n", name, v->name, idx[k], fd, an, gmax);
            }
        }
    }
    CHECK_MSG(nbad == 0, "%s: %d of %d finite-difference checks failed", name, nbad, nchecked);
    printf("  %-22s params=%zu views=%d checked=%d worst rel err %.2e\n", name, m.n_params, m.n_views, nchecked, worst);
    free(g);
    pvlm_batch_free(&b);
    pvlm_model_free(&m);
}

int main(void) {
    pvlm_model_config c;
    tiny_config(&c);
    run_case("patch", &c, 0);
    tiny_config(&c);
    snprintf(c.stem, sizeof c.stem, "conv");
    run_case("conv_stem", &c, 0);
    tiny_config(&c);
    c.n_vpt = 2;
    run_case("vpt_shallow", &c, 1);
    tiny_config(&c);
    c.n_vpt = 2, c.vpt_deep = 1;
    run_case("vpt_deep", &c, 1);
    tiny_config(&c);
    c.n_ctx = 2, c.n_ctx_sets = 3;
    run_case("coop_class_specific", &c, 1);
    return pvlm_test_done("gradcheck_model");
}
