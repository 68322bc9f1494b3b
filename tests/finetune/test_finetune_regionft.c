/* test_finetune_regionft.c - the region fine-tuning baseline's pieces (finetune/regionft.h).
 *
 * Region weights: a box that covers exactly one patch puts all its weight there; a box over a 2 x 2 patch
 * corner splits by area; every box's weights sum to 1; a box outside the image gets the nearest patch.
 * Objective: on a tiny model, 3 groups of 2-4 candidate regions, the gradient of the region cross-entropy
 * with respect to the head and to elements of every view the encoder reads (through
 * pvlm_model_encode_backward) against central finite differences; decoder gradients stay zero; the
 * predicted candidate is the argmax of the scores.
 */
#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "finetune/regionft.h"
#include "harness.h"
#include "model/model.h"

enum { S = 16, P = 4, NP = 16, D = 16, G = 3, M = PVLM_REGIONFT_MAX_CAND };

static void weights(void) {
    float w[NP];
    pvlm_regionft_weights(S, P, S, S, (const float[4]){4, 8, 4, 4}, w); /* patch (x 1, y 2) exactly */
    for (int t = 0; t < NP; t++) CHECK_CLOSE(w[t], t == 2 * 4 + 1 ? 1.0 : 0.0, 0, 1e-7);
    pvlm_regionft_weights(S, P, S, S, (const float[4]){2, 3, 4, 2}, w); /* x 2..6, y 3..5 */
    /* pixels per patch: (0,0) 2x1, (1,0) 2x1, (0,1) 2x1, (1,1) 2x1 of 8 */
    CHECK_CLOSE(w[0], 0.25, 0, 1e-7);
    CHECK_CLOSE(w[1], 0.25, 0, 1e-7);
    CHECK_CLOSE(w[4], 0.25, 0, 1e-7);
    CHECK_CLOSE(w[5], 0.25, 0, 1e-7);
    /* a 32 x 16 original fit by crop: scale 1, the centred window starts at x 8 */
    pvlm_regionft_weights(S, P, 32, 16, (const float[4]){8, 0, 16, 16}, w);
    double sum = 0;
    for (int t = 0; t < NP; t++) {
        sum += w[t];
        CHECK_CLOSE(w[t], 1.0 / NP, 0, 1e-7);
    }
    CHECK_CLOSE(sum, 1.0, 0, 1e-6);
    pvlm_regionft_weights(S, P, S, S, (const float[4]){40, -9, 3, 3}, w); /* outside: nearest patch */
    CHECK_CLOSE(w[3], 1.0, 0, 0);
}

static double objective(pvlm_model *m, const pvlm_batch *b, const float *w, const int *nc, const int *label,
                        const float *head, int *pred, float *hg) {
    double loss = NAN;
    pvlm_err err;
    if (pvlm_regionft_objective(m, b, w, nc, label, head, 5.0, &loss, pred, hg, &err))
        fprintf(stderr, "objective: %s\n", err.msg);
    return loss;
}

static void gradcheck(void) {
    pvlm_model_config c;
    pvlm_model_config_default(&c);
    c.image_size = S, c.patch_size = P, c.d_model = D, c.n_heads = 2, c.d_ff = 32;
    c.n_enc_layers = 2, c.n_dec_layers = 1, c.vocab_size = 32, c.max_prefix_len = 4, c.max_suffix_len = 3;
    pvlm_err err;
    pvlm_model m;
    CHECK_OK(pvlm_model_create(&m, &c, &err), &err);
    pvlm_model_init_weights(&m, 3);
    pvlm_batch b;
    CHECK_OK(pvlm_batch_alloc(&b, G, S, 4, 3, &err), &err);
    pvlm_batch_clear(&b, c.pad_id);
    pvlm_rng r;
    pvlm_rng_seed(&r, 5, 5);
    static float w[G * M * NP];
    int nc[G] = {2, 4, 3}, label[G] = {1, 3, 0};
    const float boxes[4][4] = {{0, 0, 8, 8}, {6, 2, 9, 5}, {1, 9, 14, 6}, {12, 12, 4, 4}};
    for (int g = 0; g < G; g++) {
        for (int i = 0; i < S * S * 3; i++) b.images[g * S * S * 3 + i] = (uint8_t)pvlm_rng_below(&r, 256);
        b.has_image[g] = 1, b.prefix_len[g] = 2 + g % 2;
        for (int j = 0; j < b.prefix_len[g]; j++) b.prefix[g * 4 + j] = 3 + (int32_t)pvlm_rng_below(&r, 29);
        b.dec_in[g * 3] = c.bos_id, b.targets[g * 3] = c.eos_id, b.suffix_len[g] = 1;
        for (int j = 0; j < nc[g]; j++) pvlm_regionft_weights(S, P, S, S, boxes[(j + g) % 4], w + (g * M + j) * NP);
    }
    float head[D], hg[D], hg0[D];
    for (int k = 0; k < D; k++) head[k] = (float)pvlm_rng_normal(&r);
    int pred[G];
    pvlm_model_zero_grad(&m);
    memset(hg, 0, sizeof hg);
    double L = objective(&m, &b, w, nc, label, head, pred, hg);
    CHECK(isfinite(L) && L > 0);
    memcpy(hg0, hg, sizeof hg);
    float *g0 = malloc(sizeof(float) * m.n_params);
    memcpy(g0, m.grads, sizeof(float) * m.n_params);
    const float eps = 2e-3f;
    int bad = 0, checked = 0;
    for (int k = 0; k < D; k++) { /* the head */
        float s0 = head[k];
        head[k] = s0 + eps;
        double up = objective(&m, &b, w, nc, label, head, NULL, NULL);
        head[k] = s0 - eps;
        double dn = objective(&m, &b, w, nc, label, head, NULL, NULL);
        head[k] = s0;
        double fd = (up - dn) / (2 * eps);
        checked++;
        if (!(fabs(fd - hg0[k]) <= 1e-3 + 1e-2 * fabs(fd))) bad++, fprintf(stderr, "head[%d]: fd %.6g vs %.6g\n", k, fd, hg0[k]);
    }
    for (int vi = 0; vi < m.n_views; vi++) {
        const pvlm_view *v = &m.views[vi];
        int dec = !strncmp(v->name, "dec", 3);
        double gmax = 0;
        for (size_t i = 0; i < v->numel; i++) gmax = fmax(gmax, fabs(g0[v->offset + i]));
        if (dec) {
            CHECK_MSG(gmax == 0, "decoder view %s got a gradient", v->name);
            continue;
        }
        for (int k = 0; k < 3; k++) {
            size_t i = pvlm_rng_below(&r, v->numel);
            float *x = m.params + v->offset + i, s0 = *x;
            *x = s0 + eps;
            double up = objective(&m, &b, w, nc, label, head, NULL, NULL);
            *x = s0 - eps;
            double dn = objective(&m, &b, w, nc, label, head, NULL, NULL);
            *x = s0;
            double fd = (up - dn) / (2 * eps), an = g0[v->offset + i];
            checked++;
            if (!(fabs(fd - an) <= 1e-2 * (gmax + 1e-3))) bad++, fprintf(stderr, "%s[%zu]: fd %.6g vs %.6g\n", v->name, i, fd, an);
        }
    }
    CHECK_MSG(bad == 0, "%d of %d finite-difference checks failed", bad, checked);
    /* pred is the argmax of the scores: check group 1 against a label-free pass */
    int pred2[G];
    objective(&m, &b, w, nc, NULL, head, pred2, NULL);
    for (int g = 0; g < G; g++) CHECK(pred[g] == pred2[g] && pred[g] >= 0 && pred[g] < nc[g]);
    printf("regionft objective: loss %.4f, %d gradient elements checked\n", L, checked);
    free(g0);
    pvlm_batch_free(&b);
    pvlm_model_free(&m);
}

int main(void) {
    weights();
    gradcheck();
    return pvlm_test_done("finetune_regionft");
}
