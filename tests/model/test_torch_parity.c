/* test_torch_parity.c - pvlm against an independent PyTorch model (tests/model/torch_ref.py).
 *
 * For each case (patch stem; conv stem; VPT-deep + class-specific CoOp) this writes, under $PVLM_TMP/<case>/:
 *   model.safetensors   the initial weights via pvlm_model_save (config in __metadata__)
 *   batch.safetensors   images, has_image, prefix, prefix_len, dec_in, targets, ctx_set
 *   result.safetensors  loss, every gradient ("grad.<view>"), params after 3 AdamW steps ("step3.<view>"),
 *                       greedy decode ids and lengths, and the optimizer settings used
 * and runs `$PVLM_PYTHON torch_ref.py <dir>`, whose exit code is the verdict for that case
 * (loss rel 1e-5, gradients and stepped params rel 1e-4, identical greedy ids). It also writes the loss with
 * --precision bf16 ("loss_bf16": the CPU's bf16 products, or pvlm's emulation of them on a CPU without), which
 * torch_ref.py compares with its own emulation of pvlm's bf16 products and with
 * torch.autocast("cpu", dtype=torch.bfloat16).
 */
#include <stdlib.h>
#include <sys/stat.h>

#include "core/fsutil.h"
#include "harness.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "model/decode.h"
#include "model/optim.h"
#include "tiny.h"

static int add(pvlm_st_writer *w, const char *name, int dtype, int ndim, int64_t a, int64_t b, int64_t c2, int64_t d,
               const void *data, pvlm_err *err) {
    int64_t sh[4] = {a, b, c2, d};
    return pvlm_st_writer_add(w, name, dtype, ndim, sh, data, err);
}

static int run_case(const char *name, const pvlm_model_config *cfg) {
    pvlm_err err = {0};
    char dir[2048], path[2300];
    if (pvlm_test_scratch(dir, sizeof dir, "/tmp/pvlm_torch_parity", name, 0)) return 1;
    pvlm_model m;
    CHECK_OK(pvlm_model_create(&m, cfg, &err), &err);
    if (!m.params) return 1;
    pvlm_model_init_weights(&m, 11);
    tiny_randomize(&m, 12, 0.2f); /* non-zero biases, LN weights != 1: every path matters */
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK_OK(pvlm_model_save(&m, path, NULL, &err), &err);

    pvlm_batch b;
    CHECK_OK(pvlm_batch_alloc(&b, 4, cfg->image_size, cfg->max_prefix_len, cfg->max_suffix_len, &err), &err);
    tiny_batch(&b, cfg, 21);
    pvlm_st_writer w;
    pvlm_st_writer_init(&w, &err);
    int B = b.B, S = b.S;
    add(&w, "images", PVLM_ST_U8, 4, B, S, S, 3, b.images, &err);
    add(&w, "has_image", PVLM_ST_U8, 1, B, 0, 0, 0, b.has_image, &err);
    add(&w, "prefix", PVLM_ST_I32, 2, B, b.Lp, 0, 0, b.prefix, &err);
    add(&w, "prefix_len", PVLM_ST_I32, 1, B, 0, 0, 0, b.prefix_len, &err);
    add(&w, "dec_in", PVLM_ST_I32, 2, B, b.Ls, 0, 0, b.dec_in, &err);
    add(&w, "targets", PVLM_ST_I32, 2, B, b.Ls, 0, 0, b.targets, &err);
    add(&w, "ctx_set", PVLM_ST_I32, 1, B, 0, 0, 0, b.ctx_set, &err);
    snprintf(path, sizeof path, "%s/batch.safetensors", dir);
    CHECK_OK(pvlm_st_writer_write(&w, path, &err), &err);
    pvlm_st_writer_free(&w);

    /* loss and gradients */
    double ntg = (double)pvlm_batch_count_targets(&b);
    float loss = 0;
    pvlm_model_zero_grad(&m);
    CHECK_OK(pvlm_model_forward(&m, &b, ntg, &loss, NULL, NULL, &err), &err);
    CHECK_OK(pvlm_model_backward(&m, &b, NULL, NULL, NULL, &err), &err);
    float loss_first = loss, loss_bf16 = 0;
    /* the same loss with bf16 matrix products (model/matmul.h): the CPU's, or emulated where it has none */
    if (!pvlm_bf16_available(NULL, 0)) setenv("PVLM_BF16_EMULATE", "1", 1);
    CHECK_OK(pvlm_model_set_precision(&m, PVLM_PREC_BF16, &err), &err);
    CHECK_OK(pvlm_model_forward(&m, &b, ntg, &loss_bf16, NULL, NULL, &err), &err);
    CHECK_OK(pvlm_model_set_precision(&m, PVLM_PREC_FP32, &err), &err);
    CHECK_OK(pvlm_model_forward(&m, &b, ntg, &loss, NULL, NULL, &err), &err); /* fp32 activations again */
    float *g0 = malloc(sizeof(float) * m.n_params);
    memcpy(g0, m.grads, sizeof(float) * m.n_params);

    /* 3 AdamW steps on the same batch: warmup 1, cosine to step 3, clipping active */
    pvlm_optim_config oc;
    pvlm_optim_config_default(&oc);
    oc.lr = 3e-2, oc.weight_decay = 0.1, oc.grad_clip = 0.5, oc.warmup_steps = 1, oc.total_steps = 3;
    oc.min_lr_ratio = 0.1;
    float *m1 = calloc(m.n_params, sizeof(float)), *m2 = calloc(m.n_params, sizeof(float));
    double lrs[3], scales[3];
    for (int s = 0; s < 3; s++) {
        pvlm_model_zero_grad(&m);
        CHECK_OK(pvlm_model_forward(&m, &b, ntg, &loss, NULL, NULL, &err), &err);
        CHECK_OK(pvlm_model_backward(&m, &b, NULL, NULL, NULL, &err), &err);
        double norm = sqrt(pvlm_optim_sqnorm(m.grads, m.n_params));
        scales[s] = pvlm_optim_clip_scale(norm, oc.grad_clip);
        lrs[s] = pvlm_optim_lr(&oc, s);
        pvlm_optim_adamw(&m, m.params, m.grads, m1, m2, 0, m.n_params, NULL, lrs[s], scales[s], s + 1, &oc);
    }

    /* greedy decode with the weights after the 3 steps (less degenerate than random init) */
    pvlm_decode_config dc;
    pvlm_decode_config_default(&dc, cfg);
    dc.min_len = 2, dc.no_repeat_ngram = 2; /* both guards exercised; torch_ref.py applies the same rules */
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)B * dc.max_len), lens[16];
    float lp[16];
    CHECK_OK(pvlm_decode(&m, &b, &dc, ids, lens, lp, &err), &err);

    pvlm_st_writer_init(&w, &err);
    double optv[8] = {oc.lr, oc.beta1, oc.beta2, oc.eps, oc.weight_decay, oc.grad_clip, 0, 0};
    add(&w, "loss", PVLM_ST_F32, 1, 1, 0, 0, 0, &loss_first, &err);
    add(&w, "loss_bf16", PVLM_ST_F32, 1, 1, 0, 0, 0, &loss_bf16, &err);
    add(&w, "optim", PVLM_ST_F64, 1, 6, 0, 0, 0, optv, &err);
    add(&w, "lrs", PVLM_ST_F64, 1, 3, 0, 0, 0, lrs, &err);
    add(&w, "decode_ids", PVLM_ST_I32, 2, B, dc.max_len, 0, 0, ids, &err);
    int32_t dopt[2] = {dc.min_len, dc.no_repeat_ngram};
    add(&w, "decode_opt", PVLM_ST_I32, 1, 2, 0, 0, 0, dopt, &err);
    add(&w, "decode_len", PVLM_ST_I32, 1, B, 0, 0, 0, lens, &err);
    char (*names)[128] = malloc(sizeof(*names) * 2 * (size_t)m.n_views);
    for (int i = 0; i < m.n_views; i++) {
        const pvlm_view *v = &m.views[i];
        snprintf(names[2 * i], 128, "grad.%s", v->name);
        snprintf(names[2 * i + 1], 128, "step3.%s", v->name);
        CHECK_OK(pvlm_st_writer_add(&w, names[2 * i], PVLM_ST_F32, v->ndim, v->shape, g0 + v->offset, &err), &err);
        CHECK_OK(pvlm_st_writer_add(&w, names[2 * i + 1], PVLM_ST_F32, v->ndim, v->shape, m.params + v->offset, &err),
                 &err);
        pvlm_st_writer_meta(&w, names[2 * i] + 5, pvlm_view_decays(v) ? "decay" : "no_decay", &err);
    }
    snprintf(path, sizeof path, "%s/result.safetensors", dir);
    CHECK_OK(pvlm_st_writer_write(&w, path, &err), &err);
    pvlm_st_writer_free(&w);
    free(names), free(g0), free(ids), free(m1), free(m2);
    pvlm_batch_free(&b);
    pvlm_model_free(&m);

    const char *py = getenv("PVLM_PYTHON"), *src = getenv("PVLM_SOURCE_DIR");
    char cmd[6000];
    snprintf(cmd, sizeof cmd, "'%s' '%s/tests/model/torch_ref.py' '%s'", py ? py : "/usr/bin/python3",
             src ? src : ".", dir);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "%s: torch_ref.py failed (status %d)", name, rc);
    return rc != 0;
}

int main(void) {
    pvlm_model_config c;
    tiny_config(&c);
    c.d_model = 16, c.n_heads = 4, c.d_ff = 24, c.vocab_size = 23;
    run_case("patch", &c);
    snprintf(c.stem, sizeof c.stem, "conv");
    run_case("conv_stem", &c);
    tiny_config(&c);
    c.d_model = 16, c.n_heads = 4, c.d_ff = 24, c.vocab_size = 23;
    c.n_vpt = 2, c.vpt_deep = 1, c.n_ctx = 2, c.n_ctx_sets = 2;
    run_case("vpt_deep_coop", &c);
    return pvlm_test_done("torch_parity_model");
}
