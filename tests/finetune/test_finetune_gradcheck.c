/* test_finetune_gradcheck.c - the prompt-tuning objectives' gradients against central finite differences.
 *
 * A tiny model with class-specific CoOp contexts (n_ctx 2, 3 sets) and VPT-deep prompts (2 per layer)
 * scores 2 images x 3 candidate continuations; the objective is finetune's group cross-entropy
 * (pvlm_ft_objective_fn, with and without length normalisation). The analytic gradient that the
 * model's backward produces from the objective's per-sample scales must match (O(x+e) - O(x-e)) / 2e
 * for every element of coop.ctx and vpt.prompts. Also checks the frozen-model property the finetune
 * command relies on: the objective's sample scales (times n when length-normalised) sum to zero
 * within each group (softmax cross-entropy).
 */
#include <string.h>

#include "finetune/fttask.h"
#include "harness.h"
#include "model/model.h"

static double objective(pvlm_model *m, pvlm_batch *b, pvlm_ft_objective *o, double *scale) {
    pvlm_err err;
    float loss;
    double ce[16], obj = 0;
    if (pvlm_model_forward(m, b, 1.0, &loss, NULL, ce, &err)) {
        fprintf(stderr, "forward: %s\n", err.msg);
        return NAN;
    }
    if (pvlm_ft_objective_fn(o, b, ce, 1.0, scale, &obj, &err)) return NAN;
    return obj;
}

static void run(int length_norm) {
    pvlm_model_config c;
    pvlm_model_config_default(&c);
    c.image_size = 8, c.patch_size = 4, c.d_model = 16, c.n_heads = 2, c.d_ff = 32;
    c.n_enc_layers = 2, c.n_dec_layers = 1, c.vocab_size = 32, c.max_prefix_len = 5, c.max_suffix_len = 4;
    c.n_ctx = 2, c.n_ctx_sets = 3, c.n_vpt = 2, c.vpt_deep = 1;
    pvlm_err err;
    pvlm_model m;
    CHECK_OK(pvlm_model_create(&m, &c, &err), &err);
    pvlm_model_init_weights(&m, 7);
    /* prompts larger than the N(0,0.02) init so the objective is far from flat */
    for (int k = 0; k < 2; k++) {
        const pvlm_view *v = pvlm_model_view(&m, k ? "vpt.prompts" : "coop.ctx");
        CHECK(v != NULL);
        for (size_t i = 0; v && i < v->numel; i++) m.params[v->offset + i] = (float)(0.5 * sin(1.7 * (double)i + k));
    }
    pvlm_batch b;
    CHECK_OK(pvlm_batch_alloc(&b, 6, 8, 5, 4, &err), &err);
    pvlm_batch_clear(&b, c.pad_id);
    int row0[3] = {0, 3, 6}, label[2] = {2, 0};
    for (int r = 0; r < 6; r++) {
        for (int i = 0; i < 8 * 8 * 3; i++) b.images[r * 192 + i] = (uint8_t)((r / 3) * 90 + i * 7 % 101);
        b.has_image[r] = 1;
        b.prefix[r * 5 + 2] = 5 + r / 3; /* after the 2 context slots */
        b.prefix_len[r] = 3;
        b.ctx_set[r] = r % 3;
        int n = 1 + r % 3; /* candidates of 1..3 tokens, then eos */
        b.dec_in[r * 4] = c.bos_id;
        for (int t = 0; t < n; t++) b.targets[r * 4 + t] = b.dec_in[r * 4 + t + 1] = 10 + (r % 3) * 4 + t;
        b.targets[r * 4 + n] = c.eos_id;
        b.suffix_len[r] = n + 1;
    }
    pvlm_ft_objective o = {2, row0, label, length_norm, 2.0};
    double scale[6];
    double obj = objective(&m, &b, &o, scale);
    CHECK(isfinite(obj));
    /* softmax CE: (y - p) sums to zero per group; with length normalisation each scale is divided by n */
    for (int g = 0; g < 2; g++) {
        double s = 0;
        for (int r = row0[g]; r < row0[g + 1]; r++) s += scale[r] * (length_norm ? b.suffix_len[r] : 1);
        CHECK_CLOSE(s, 0.0, 0, 1e-12);
    }
    pvlm_model_zero_grad(&m);
    CHECK_OK(pvlm_model_backward(&m, &b, scale, NULL, NULL, &err), &err);
    float *analytic = malloc(m.n_params * sizeof(float));
    memcpy(analytic, m.grads, m.n_params * sizeof(float));
    double worst = 0;
    int checked = 0;
    for (int k = 0; k < 2; k++) {
        const pvlm_view *v = pvlm_model_view(&m, k ? "vpt.prompts" : "coop.ctx");
        for (size_t i = 0; i < v->numel; i++) {
            float *p = &m.params[v->offset + i], save = *p;
            const float eps = 1e-2f;
            double tmp[6];
            *p = save + eps;
            double up = objective(&m, &b, &o, tmp);
            *p = save - eps;
            double dn = objective(&m, &b, &o, tmp);
            *p = save;
            double fd = (up - dn) / (2.0 * eps), an = analytic[v->offset + i];
            double e = fabs(fd - an) / (fabs(fd) + fabs(an) + 1e-4);
            if (e > worst) worst = e;
            CHECK_MSG(fabs(fd - an) <= 2e-3 + 2e-2 * fabs(fd), "%s[%zu]: finite diff %.6g vs backward %.6g", v->name, i, fd, an);
            checked++;
        }
    }
    printf("finetune gradcheck (length_norm=%d): %d prompt elements, worst relative error %.3g\n", length_norm, checked, worst);
    free(analytic);
    pvlm_batch_free(&b);
    pvlm_model_free(&m);
}

int main(void) {
    run(0);
    run(1);
    return pvlm_test_done("finetune_gradcheck");
}
