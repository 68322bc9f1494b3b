/* ckpt_interop_tool.c - the pvlm side of the Python interop test (test_ckpt_interop.py).
 *   write DIR        tiny model (with VPT and CoOp prompts) -> DIR/model.safetensors, its parameters as raw
 *                    float32 DIR/params.f32 and the view table DIR/views.json; AdamW state as a full file
 *                    DIR/optim.safetensors and 2 ZeRO-1 shards DIR/optim.rank0000{0,1}.safetensors,
 *                    with the moments in DIR/m1.f32 and DIR/m2.f32
 *   read FILE DIR    pvlm_model_load(FILE) -> DIR/params.f32, DIR/views.json (exit 1 with the error)
 *   dump FILE DIR    generic pvlm_st reader: every tensor's bytes -> DIR/<name>.bin, DIR/tensors.json
 *   ckptdir ROOT     a checkpoint root with steps 10 and 20 (model + full optimizer state + state.json)
 *                    through io/ckptdir, as the trainer writes them (used by ckpt_inspect)
 *   reseal STEP_DIR  recompute STEP_DIR/state.json's state_xxh3 after an edit, as a forger would (used by
 *                    fault_corrupt_ckpt: only the training-state rules can then reject the edit) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/json.h"
#include "core/rng.h"
#include "io/ckptdir.h"
#include "io/safetensors.h"
#include "io/trainstate.h"
#include "model/checkpoint.h"
#include "model/model.h"

static int save_raw(const char *dir, const char *name, const void *p, size_t n, pvlm_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return pvlm_write_file_atomic(path, p, n, err);
}

static int save_views(const pvlm_model *m, const char *dir, pvlm_err *err) {
    json_t *a = json_array();
    for (int i = 0; i < m->n_views; i++) {
        const pvlm_view *v = &m->views[i];
        json_t *sh = json_array();
        for (int k = 0; k < v->ndim; k++) json_array_append_new(sh, json_integer(v->shape[k]));
        json_array_append_new(a, json_pack("{s:s, s:I, s:I, s:o}", "name", v->name, "offset", (json_int_t)v->offset,
                                           "numel", (json_int_t)v->numel, "shape", sh));
    }
    char *s = json_dumps(a, JSON_INDENT(1));
    json_decref(a);
    int rc = save_raw(dir, "views.json", s, strlen(s), err);
    free(s);
    return rc;
}

static int do_write(const char *dir, pvlm_err *err) {
    pvlm_model_config c;
    pvlm_model_config_default(&c);
    c.image_size = 16, c.patch_size = 4;
    c.d_model = 16, c.n_heads = 2, c.d_ff = 32, c.n_enc_layers = 2, c.n_dec_layers = 2;
    c.vocab_size = 50, c.max_prefix_len = 6, c.max_suffix_len = 7;
    c.n_vpt = 3, c.vpt_deep = 1, c.n_ctx = 2, c.n_ctx_sets = 2;
    pvlm_model m;
    if (pvlm_mkdir_p(dir, err) || pvlm_model_create(&m, &c, err)) return -1;
    pvlm_model_init_weights(&m, 2024);
    /* Make the bias and LN tensors non-trivial too, so a swapped name cannot pass unnoticed. */
    pvlm_rng r;
    pvlm_rng_seed(&r, 9, 0);
    for (size_t i = 0; i < m.n_params; i++) m.params[i] += (float)(0.001 * pvlm_rng_normal(&r));
    char p[4200];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    json_t *extra = json_pack("{s:s}", "written_by", "ckpt_interop_tool");
    int rc = pvlm_model_save(&m, p, extra, err);
    json_decref(extra);
    if (!rc) rc = save_raw(dir, "params.f32", m.params, m.n_params * 4, err);
    if (!rc) rc = save_views(&m, dir, err);
    size_t N = m.n_params, h = N / 2 + 3;
    float *m1 = malloc(N * 4), *m2 = malloc(N * 4);
    for (size_t i = 0; i < N; i++) {
        m1[i] = (float)pvlm_rng_normal(&r);
        m2[i] = (float)(pvlm_rng_uniform(&r) * 1e-3);
    }
    snprintf(p, sizeof p, "%s/optim.safetensors", dir);
    if (!rc) rc = pvlm_ckpt_optim_save(&m, m1, m2, 5, p, err);
    snprintf(p, sizeof p, "%s/optim.rank00000.safetensors", dir);
    if (!rc) rc = pvlm_ckpt_optim_save_shard(&m, m1, m2, 0, h, 0, 2, 5, p, err);
    snprintf(p, sizeof p, "%s/optim.rank00001.safetensors", dir);
    if (!rc) rc = pvlm_ckpt_optim_save_shard(&m, m1 + h, m2 + h, h, N, 1, 2, 5, p, err);
    if (!rc) rc = save_raw(dir, "m1.f32", m1, N * 4, err);
    if (!rc) rc = save_raw(dir, "m2.f32", m2, N * 4, err);
    free(m1);
    free(m2);
    pvlm_model_free(&m);
    return rc;
}

static int do_read(const char *file, const char *dir, pvlm_err *err) {
    pvlm_model m;
    if (pvlm_mkdir_p(dir, err) || pvlm_model_load(&m, file, err)) return -1;
    int rc = save_raw(dir, "params.f32", m.params, m.n_params * 4, err);
    if (!rc) rc = save_views(&m, dir, err);
    pvlm_model_free(&m);
    return rc;
}

static int do_dump(const char *file, const char *dir, pvlm_err *err) {
    pvlm_st_file f;
    if (pvlm_mkdir_p(dir, err) || pvlm_st_open(&f, file, err)) return -1;
    json_t *o = json_object();
    int rc = 0;
    for (int i = 0; !rc && i < f.n_tensors; i++) {
        const pvlm_st_tensor *t = &f.tensors[i];
        size_t n = t->end - t->begin;
        void *b = malloc(n ? n : 1);
        rc = pvlm_st_read(&f, t, b, n, err);
        char name[300];
        snprintf(name, sizeof name, "%s.bin", t->name);
        if (!rc) rc = save_raw(dir, name, b, n, err);
        free(b);
        json_t *sh = json_array();
        for (int k = 0; k < t->ndim; k++) json_array_append_new(sh, json_integer(t->shape[k]));
        json_object_set_new(o, t->name, json_pack("{s:s, s:o}", "dtype", pvlm_st_dtype_name(t->dtype), "shape", sh));
    }
    json_object_set(o, "__metadata__", f.metadata);
    char *s = json_dumps(o, JSON_INDENT(1));
    if (!rc) rc = save_raw(dir, "tensors.json", s, strlen(s), err);
    free(s);
    json_decref(o);
    pvlm_st_close(&f);
    return rc;
}

static int do_ckptdir(const char *root, pvlm_err *err) {
    pvlm_model_config c;
    pvlm_model_config_default(&c);
    c.image_size = 8, c.patch_size = 4, c.d_model = 8, c.n_heads = 2, c.d_ff = 16;
    c.n_enc_layers = 1, c.n_dec_layers = 1, c.vocab_size = 20, c.max_prefix_len = 4, c.max_suffix_len = 5;
    pvlm_model m;
    if (pvlm_model_create(&m, &c, err)) return -1;
    pvlm_model_init_weights(&m, 1);
    float *mom = calloc(m.n_params, sizeof(float));
    int rc = 0;
    for (int64_t step = 10; !rc && step <= 20; step += 10) {
        char tmp[4200], p[4300];
        rc = pvlm_ckptdir_begin(root, step, tmp, sizeof tmp, err);
        snprintf(p, sizeof p, "%s/model.safetensors", tmp);
        if (!rc) rc = pvlm_model_save(&m, p, NULL, err);
        snprintf(p, sizeof p, "%s/optim.safetensors", tmp);
        if (!rc) rc = pvlm_ckpt_optim_save(&m, mom, mom, step, p, err);
        /* the training state as pvlm pretrain writes it, through io/trainstate */
        pvlm_trainstate ts = {.step = step,
                              .samples_seen = step * 4,
                              .tokens_seen = step * 40,
                              .world_size = 1,
                              .init_seed = 1,
                              .data_seed = 2,
                              .config = json_pack("{s:i}", "micro_batch", 4),
                              .model_config = pvlm_model_config_to_json(&c),
                              .dp = json_pack("{s:I}", "step", (json_int_t)step),
                              .loader = json_pack("[{}]"),
                              .optim_files = json_pack("[s]", "optim.safetensors")};
        snprintf(ts.reason, sizeof ts.reason, "periodic");
        json_t *st = rc ? NULL : pvlm_trainstate_to_json(&ts, err);
        pvlm_trainstate_free(&ts);
        if (!rc) rc = st ? pvlm_ckptdir_commit(root, step, st, NULL, NULL, 0, err) : -1;
        json_decref(st);
    }
    free(mom);
    pvlm_model_free(&m);
    return rc;
}

static int do_reseal(const char *step_dir, pvlm_err *err) {
    char sp[4200];
    if (pvlm_path_join(sp, sizeof sp, step_dir, PVLM_CKPTDIR_STATE, err)) return -1;
    json_t *j = pvlm_json_load_file(sp, err);
    if (!j) return -1;
    int rc = pvlm_ckptdir_seal(j, err) ? -1 : pvlm_json_save_atomic(j, sp, err);
    json_decref(j);
    return rc;
}

int main(int argc, char **argv) {
    pvlm_err err = {0};
    int rc;
    if (argc == 3 && !strcmp(argv[1], "write"))
        rc = do_write(argv[2], &err);
    else if (argc == 4 && !strcmp(argv[1], "read"))
        rc = do_read(argv[2], argv[3], &err);
    else if (argc == 4 && !strcmp(argv[1], "dump"))
        rc = do_dump(argv[2], argv[3], &err);
    else if (argc == 3 && !strcmp(argv[1], "ckptdir"))
        rc = do_ckptdir(argv[2], &err);
    else if (argc == 3 && !strcmp(argv[1], "reseal"))
        rc = do_reseal(argv[2], &err);
    else {
        fprintf(stderr, "usage: ckpt_interop_tool write DIR | read FILE DIR | dump FILE DIR | ckptdir ROOT | reseal STEP_DIR\n");
        return 2;
    }
    if (rc) fprintf(stderr, "ckpt_interop_tool: %s\n", err.msg);
    return rc ? 1 : 0;
}
