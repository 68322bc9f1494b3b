/* test_ckpt_model.c - model/checkpoint. Modes:
 *   roundtrip  save/load of patch- and conv-stem models and prompt-tuning models, bit-exact; metadata;
 *              read_config; load_params with missing/unexpected flags
 *   corrupt    model files that must be rejected: shapes that disagree with the config, a transposed
 *              tensor, missing/unexpected tensors, wrong dtype, NaN, invalid or missing config, wrong
 *              format/version, a flipped data byte, truncation, a forged config claiming a huge model
 *              (rejected from the header without allocating it)
 *   optim      AdamW state: full and ZeRO-1 flat shards, re-slicing 3 ranks -> 2 ranks -> 1, mixed
 *              layouts, missing shard, step mismatch, other model, NaN */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "core/mem.h"
#include "core/rng.h"
#include "harness.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "model/model.h"

static char base[4096];

static void path_of(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", base, name);
}

static void tiny_config(pvlm_model_config *c) {
    pvlm_model_config_default(c);
    c->image_size = 8, c->patch_size = 4;
    c->d_model = 8, c->n_heads = 2, c->d_ff = 16, c->n_enc_layers = 2, c->n_dec_layers = 1;
    c->vocab_size = 20, c->max_prefix_len = 4, c->max_suffix_len = 5;
    c->conv_channels = 4, c->conv_blocks = 1, c->conv_groups = 2;
}

static int same_params(const pvlm_model *a, const pvlm_model *b) {
    if (a->n_params != b->n_params || a->n_views != b->n_views) return 0;
    for (int i = 0; i < a->n_views; i++)
        if (strcmp(a->views[i].name, b->views[i].name) || a->views[i].offset != b->views[i].offset) return 0;
    return !memcmp(a->params, b->params, a->n_params * sizeof(float));
}

static int same_config(const pvlm_model_config *a, const pvlm_model_config *b) {
    json_t *ja = pvlm_model_config_to_json(a), *jb = pvlm_model_config_to_json(b);
    int eq = json_equal(ja, jb);
    json_decref(ja);
    json_decref(jb);
    return eq;
}

static void roundtrip_one(const pvlm_model_config *cfg, const char *name) {
    pvlm_err err = {0};
    pvlm_model m, l;
    CHECK_OK(pvlm_model_create(&m, cfg, &err), &err);
    pvlm_model_init_weights(&m, 42);
    char p[4200];
    path_of(p, sizeof p, name);
    json_t *extra = json_pack("{s:s, s:i, s:{s:i}}", "note", "hello", "step", 7, "args", "lr", 1);
    CHECK_OK(pvlm_model_save(&m, p, extra, &err), &err);
    json_decref(extra);
    CHECK_OK(pvlm_model_load(&l, p, &err), &err);
    CHECK_MSG(same_params(&m, &l), "%s: parameters differ after the round trip", name);
    CHECK(same_config(&m.cfg, &l.cfg));
    /* The file as seen by the generic reader: one F32 tensor per view, metadata present. */
    pvlm_st_file f;
    CHECK_OK(pvlm_st_open(&f, p, &err), &err);
    if (f.fd >= 0) {
        CHECK(f.n_tensors == m.n_views);
        CHECK(!strcmp(pvlm_st_meta(&f, "format"), "pvlm-model") && !strcmp(pvlm_st_meta(&f, "version"), "1"));
        CHECK(!strcmp(pvlm_st_meta(&f, "note"), "hello") && !strcmp(pvlm_st_meta(&f, "step"), "7"));
        CHECK(!strcmp(pvlm_st_meta(&f, "args"), "{\"lr\":1}"));
        char np[32];
        snprintf(np, sizeof np, "%zu", m.n_params);
        CHECK(!strcmp(pvlm_st_meta(&f, "n_params"), np));
        const pvlm_st_tensor *t = pvlm_st_find(&f, "patch_embed.weight");
        const pvlm_view *v = pvlm_model_view(&m, "patch_embed.weight");
        CHECK(t && v && t->ndim == 2 && t->shape[0] == cfg->d_model && t->shape[1] == v->shape[1]);
        pvlm_st_close(&f);
    }
    pvlm_model_config rc;
    json_t *meta = NULL;
    CHECK_OK(pvlm_model_read_config(p, &rc, &meta, &err), &err);
    CHECK(same_config(&rc, cfg) && meta && json_object_get(meta, "pvlm_config"));
    if (meta) json_decref(meta);
    /* Reserved keys cannot be overridden. */
    extra = json_pack("{s:s}", "format", "x");
    CHECK(pvlm_model_save(&m, p, extra, &err) == -1 && strstr(err.msg, "reserved"));
    json_decref(extra);
    pvlm_model_free(&l);
    pvlm_model_free(&m);
}

static void test_roundtrip(void) {
    pvlm_model_config c;
    pvlm_err err = {0};
    tiny_config(&c);
    roundtrip_one(&c, "patch.safetensors");
    pvlm_model_config cc = c;
    snprintf(cc.stem, sizeof cc.stem, "conv");
    roundtrip_one(&cc, "conv.safetensors");
    pvlm_model_config cp = c;
    cp.n_vpt = 2, cp.vpt_deep = 1, cp.n_ctx = 2, cp.n_ctx_sets = 3;
    roundtrip_one(&cp, "prompts.safetensors");

    /* Finetuning: a prompt model takes the pretrained weights, keeps its own prompts. */
    char pre[4200], pro[4200];
    path_of(pre, sizeof pre, "patch.safetensors");
    path_of(pro, sizeof pro, "prompts.safetensors");
    pvlm_model base_m, pm;
    CHECK_OK(pvlm_model_load(&base_m, pre, &err), &err);
    CHECK_OK(pvlm_model_create(&pm, &cp, &err), &err);
    const pvlm_view *vp = pvlm_model_view(&pm, "vpt.prompts");
    CHECK(vp != NULL);
    if (vp) pm.params[vp->offset] = 3.5f;
    CHECK(pvlm_model_load_params(&pm, pre, 0, NULL, &err) == -1 && strstr(err.msg, "vpt.prompts"));
    int n = 0;
    CHECK_OK(pvlm_model_load_params(&pm, pre, PVLM_LOAD_ALLOW_MISSING, &n, &err), &err);
    CHECK(n == base_m.n_views && pm.n_views == base_m.n_views + 2);
    if (vp) CHECK(pm.params[vp->offset] == 3.5f);
    const pvlm_view *a = pvlm_model_view(&pm, "dec.0.cross.kv.weight"),
                    *b = pvlm_model_view(&base_m, "dec.0.cross.kv.weight");
    CHECK(a && b && !memcmp(pm.params + a->offset, base_m.params + b->offset, a->numel * sizeof(float)));
    /* ...and the reverse needs ALLOW_UNEXPECTED. */
    CHECK(pvlm_model_load_params(&base_m, pro, 0, NULL, &err) == -1 && strstr(err.msg, "unexpected"));
    CHECK_OK(pvlm_model_load_params(&base_m, pro, PVLM_LOAD_ALLOW_UNEXPECTED, &n, &err), &err);
    CHECK(n == base_m.n_views);
    pvlm_model_free(&pm);
    pvlm_model_free(&base_m);
}

/* Copy src to dst through the generic reader/writer, letting `mut` change things. */
typedef struct {
    const char *drop;                  /* tensor to leave out */
    const char *extra;                 /* tensor to add ([2] F32) */
    const char *transpose;             /* 2-D tensor whose shape is swapped */
    const char *retype;                /* tensor written as I32 */
    const char *nan;                   /* tensor with a NaN in element 0 */
    const char *meta_key, *meta_value; /* metadata to set (value NULL: delete) */
    const char *cfg_key;               /* integer config field to change ... */
    int cfg_value;                     /* ... to this */
} mutation;

static int rewrite(const char *src, const char *dst, const mutation *mu, pvlm_err *err) {
    pvlm_st_file f;
    if (pvlm_st_open(&f, src, err)) return -1;
    pvlm_st_writer w;
    pvlm_st_writer_init(&w, err);
    void **bufs = calloc((size_t)f.n_tensors + 1, sizeof *bufs);
    const char *k;
    json_t *v;
    json_object_foreach(f.metadata, k, v) {
        if (!strcmp(k, "pvlm_data_xxh3")) continue;
        if (mu->meta_key && !strcmp(k, mu->meta_key)) continue;
        if (mu->cfg_key && !strcmp(k, "pvlm_config")) {
            json_t *c = json_loads(json_string_value(v), 0, NULL);
            json_object_set_new(c, mu->cfg_key, json_integer(mu->cfg_value));
            char *s = json_dumps(c, JSON_COMPACT);
            pvlm_st_writer_meta(&w, k, s, err);
            free(s);
            json_decref(c);
            continue;
        }
        pvlm_st_writer_meta(&w, k, json_string_value(v), err);
    }
    if (mu->meta_key && mu->meta_value) pvlm_st_writer_meta(&w, mu->meta_key, mu->meta_value, err);
    for (int i = 0; i < f.n_tensors; i++) {
        const pvlm_st_tensor *t = &f.tensors[i];
        if (mu->drop && !strcmp(t->name, mu->drop)) continue;
        bufs[i] = malloc(t->end - t->begin + 4);
        pvlm_st_read(&f, t, bufs[i], t->end - t->begin, err);
        int64_t shape[PVLM_ST_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        int dtype = t->dtype;
        if (mu->transpose && !strcmp(t->name, mu->transpose)) shape[0] = t->shape[1], shape[1] = t->shape[0];
        if (mu->retype && !strcmp(t->name, mu->retype)) dtype = PVLM_ST_I32;
        if (mu->nan && !strcmp(t->name, mu->nan)) ((float *)bufs[i])[0] = NAN;
        pvlm_st_writer_add(&w, t->name, dtype, t->ndim, shape, bufs[i], err);
    }
    static const float two[2] = {1, 2};
    int64_t s2[1] = {2};
    if (mu->extra) pvlm_st_writer_add(&w, mu->extra, PVLM_ST_F32, 1, s2, two, err);
    int rc = pvlm_st_writer_write(&w, dst, err);
    pvlm_st_writer_free(&w);
    for (int i = 0; i < f.n_tensors; i++) free(bufs[i]);
    free(bufs);
    pvlm_st_close(&f);
    return rc;
}

static void expect_load_fails(const char *what, const char *good, const mutation *mu, const char *needle) {
    char p[4200];
    pvlm_err err = {0};
    path_of(p, sizeof p, "bad_model.safetensors");
    CHECK_OK(rewrite(good, p, mu, &err), &err);
    pvlm_model m;
    int rc = pvlm_model_load(&m, p, &err);
    CHECK_MSG(rc == -1, "%s: loaded", what);
    if (rc == 0) {
        pvlm_model_free(&m);
        return;
    }
    CHECK_MSG(m.params == NULL && m.views == NULL, "%s: model not left empty", what);
    CHECK_MSG(strstr(err.msg, "bad_model.safetensors") != NULL, "%s: file not named: %s", what, err.msg);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "%s: message lacks '%s': %s", what, needle, err.msg);
}

static void test_corrupt(void) {
    pvlm_model_config c;
    pvlm_err err = {0};
    tiny_config(&c);
    pvlm_model m;
    CHECK_OK(pvlm_model_create(&m, &c, &err), &err);
    pvlm_model_init_weights(&m, 1);
    char good[4200], p[4200];
    path_of(good, sizeof good, "good_model.safetensors");
    CHECK_OK(pvlm_model_save(&m, good, NULL, &err), &err);
    pvlm_model_free(&m);
    mutation none = {0};
    path_of(p, sizeof p, "copy.safetensors");
    CHECK_OK(rewrite(good, p, &none, &err), &err);
    CHECK_OK(pvlm_model_load(&m, p, &err), &err); /* the rewriter itself keeps files valid */
    pvlm_model_free(&m);

    expect_load_fails("config d_ff differs from the tensors", good, &(mutation){.cfg_key = "d_ff", .cfg_value = 32},
                      "enc.0.mlp.fc1.weight");
    expect_load_fails("config vocab differs", good, &(mutation){.cfg_key = "vocab_size", .cfg_value = 21}, "tok_embed");
    expect_load_fails("transposed tensor", good, &(mutation){.transpose = "patch_embed.weight"}, "patch_embed.weight");
    expect_load_fails("missing tensor", good, &(mutation){.drop = "dec.0.cross.q.bias"}, "missing");
    expect_load_fails("unexpected tensor", good, &(mutation){.extra = "enc.9.ln1.weight"}, "unexpected");
    expect_load_fails("wrong dtype", good, &(mutation){.retype = "img_pos"}, "dtype");
    expect_load_fails("NaN parameter", good, &(mutation){.nan = "enc.1.attn.out.weight"}, "NaN");
    expect_load_fails("invalid config", good, &(mutation){.cfg_key = "n_heads", .cfg_value = 3}, "n_heads");
    expect_load_fails("missing config", good, &(mutation){.meta_key = "pvlm_config"}, "pvlm_config");
    expect_load_fails("config not JSON", good, &(mutation){.meta_key = "pvlm_config", .meta_value = "{d_model"},
                      "pvlm_config");
    /* A forged config that claims a far larger model (d_model 4096: about 200 M parameters, 1.6 GB with
     * gradients) is rejected from the header, before the buffers it claims are allocated. */
    size_t rss0 = pvlm_peak_rss();
    expect_load_fails("forged config: huge d_model", good, &(mutation){.cfg_key = "d_model", .cfg_value = 4096},
                      "tok_embed");
    expect_load_fails("forged config: more layers", good, &(mutation){.cfg_key = "n_enc_layers", .cfg_value = 1000},
                      "'enc.2.ln1.weight' required by the model config is missing");
    size_t grown = pvlm_peak_rss() - rss0;
    CHECK_MSG(grown < ((size_t)64 << 20), "loading forged configs raised the peak RSS by %zu MiB", grown >> 20);
    expect_load_fails("wrong format", good, &(mutation){.meta_key = "format", .meta_value = "pvlm-optim"}, "format");
    expect_load_fails("future version", good, &(mutation){.meta_key = "version", .meta_value = "2"}, "version");

    /* Byte-level damage of the original file. */
    char *buf;
    size_t n;
    CHECK_OK(pvlm_read_file(good, &buf, &n, &err), &err);
    path_of(p, sizeof p, "bad_model.safetensors");
    buf[n - 3] ^= 0x40;
    pvlm_write_file_atomic(p, buf, n, &err);
    CHECK(pvlm_model_load(&m, p, &err) == -1 && strstr(err.msg, "checksum") && m.params == NULL);
    buf[n - 3] ^= 0x40;
    pvlm_write_file_atomic(p, buf, n - 100, &err);
    CHECK(pvlm_model_load(&m, p, &err) == -1 && err.code == PVLM_EFORMAT && m.params == NULL);
    pvlm_write_file_atomic(p, buf, 4, &err);
    CHECK(pvlm_model_load(&m, p, &err) == -1 && m.params == NULL);
    free(buf);
    CHECK(pvlm_model_load(&m, "/nonexistent/x.safetensors", &err) == -1 && err.code == PVLM_EIO);
}

static void fill(float *x, size_t n, uint64_t seed, int positive) {
    pvlm_rng r;
    pvlm_rng_seed(&r, seed, 3);
    for (size_t i = 0; i < n; i++) {
        float v = (float)pvlm_rng_normal(&r);
        x[i] = positive ? v * v : v;
    }
}

static void test_optim(void) {
    pvlm_model_config c;
    pvlm_err err = {0};
    tiny_config(&c);
    pvlm_model m;
    CHECK_OK(pvlm_model_create(&m, &c, &err), &err);
    size_t N = m.n_params;
    float *m1 = malloc(N * 4), *m2 = malloc(N * 4), *r1 = malloc(N * 4), *r2 = malloc(N * 4);
    fill(m1, N, 1, 0);
    fill(m2, N, 2, 1);
    char full[4200], sh[3][4200], p[4200];
    path_of(full, sizeof full, "optim.safetensors");
    CHECK_OK(pvlm_ckpt_optim_save(&m, m1, m2, 17, full, &err), &err);
    int64_t step = 0;
    const char *fp[1] = {full};
    CHECK_OK(pvlm_ckpt_optim_load_range(&m, fp, 1, 0, N, r1, r2, &step, &err), &err);
    CHECK(step == 17 && !memcmp(r1, m1, N * 4) && !memcmp(r2, m2, N * 4));
    /* A sub-range straddling views. */
    size_t a = N / 3 + 1, b = 2 * N / 3 + 5;
    CHECK_OK(pvlm_ckpt_optim_load_range(&m, fp, 1, a, b, r1, r2, &step, &err), &err);
    CHECK(!memcmp(r1, m1 + a, (b - a) * 4) && !memcmp(r2, m2 + a, (b - a) * 4));
    pvlm_st_file f;
    CHECK_OK(pvlm_st_open(&f, full, &err), &err);
    if (f.fd >= 0) {
        CHECK(f.n_tensors == 2 * m.n_views && pvlm_st_find(&f, "tok_embed.m") && pvlm_st_find(&f, "dec.ln_f.bias.v"));
        CHECK(!strcmp(pvlm_st_meta(&f, "layout"), "full"));
        pvlm_st_close(&f);
    }

    /* ZeRO-1 on 3 ranks (uneven split), resumed on 2 ranks and on 1. */
    size_t bnd[4] = {0, N / 3, N / 3 + N / 4, N};
    for (int r = 0; r < 3; r++) {
        snprintf(p, sizeof p, "optim.rank%05d.safetensors", r);
        path_of(sh[r], sizeof sh[r], p);
        CHECK_OK(pvlm_ckpt_optim_save_shard(&m, m1 + bnd[r], m2 + bnd[r], bnd[r], bnd[r + 1], r, 3, 17, sh[r], &err),
                 &err);
    }
    const char *sp[3] = {sh[0], sh[1], sh[2]};
    size_t half = (N + 1) / 2;
    for (int r = 0; r < 2; r++) {
        size_t lo = r ? half : 0, hi = r ? N : half;
        memset(r1, 0xff, N * 4);
        CHECK_OK(pvlm_ckpt_optim_load_range(&m, sp, 3, lo, hi, r1, r2, &step, &err), &err);
        CHECK_MSG(!memcmp(r1, m1 + lo, (hi - lo) * 4) && !memcmp(r2, m2 + lo, (hi - lo) * 4), "2-rank slice %d differs",
                  r);
    }
    CHECK_OK(pvlm_ckpt_optim_load_range(&m, sp, 3, 0, N, r1, r2, &step, &err), &err);
    CHECK(!memcmp(r1, m1, N * 4) && !memcmp(r2, m2, N * 4));
    /* Mixed: a full file plus a shard (overlap is fine; both hold the same values). */
    const char *mix[2] = {sh[1], full};
    CHECK_OK(pvlm_ckpt_optim_load_range(&m, mix, 2, 0, N, r1, r2, &step, &err), &err);
    CHECK(!memcmp(r1, m1, N * 4));
    /* An empty range is fine. */
    CHECK_OK(pvlm_ckpt_optim_load_range(&m, sp, 3, 5, 5, r1, r2, &step, &err), &err);
    /* Missing rank 1's shard: the uncovered element is named. */
    const char *miss[2] = {sh[0], sh[2]};
    CHECK(pvlm_ckpt_optim_load_range(&m, miss, 2, 0, N, r1, r2, &step, &err) == -1 && strstr(err.msg, "cover"));
    /* ...but a range inside the shards that exist works. */
    CHECK_OK(pvlm_ckpt_optim_load_range(&m, miss, 2, 0, bnd[1], r1, r2, &step, &err), &err);
    /* Step mismatch between files. */
    char other[4200];
    path_of(other, sizeof other, "optim.step18.safetensors");
    CHECK_OK(pvlm_ckpt_optim_save_shard(&m, m1 + bnd[1], m2 + bnd[1], bnd[1], bnd[2], 1, 3, 18, other, &err), &err);
    const char *stepmix[3] = {sh[0], other, sh[2]};
    CHECK(pvlm_ckpt_optim_load_range(&m, stepmix, 3, 0, N, r1, r2, &step, &err) == -1 && strstr(err.msg, "step"));
    /* A model file is not an optimizer file. */
    char mf[4200];
    path_of(mf, sizeof mf, "model_for_optim.safetensors");
    CHECK_OK(pvlm_model_save(&m, mf, NULL, &err), &err);
    const char *mfp[1] = {mf};
    CHECK(pvlm_ckpt_optim_load_range(&m, mfp, 1, 0, N, r1, r2, &step, &err) == -1 && strstr(err.msg, "format"));
    /* State of another model (different n_params). */
    pvlm_model_config c2 = c;
    c2.d_ff = 24;
    pvlm_model m2m;
    CHECK_OK(pvlm_model_create(&m2m, &c2, &err), &err);
    CHECK(pvlm_ckpt_optim_load_range(&m2m, fp, 1, 0, 10, r1, r2, &step, &err) == -1 && strstr(err.msg, "parameters"));
    pvlm_model_free(&m2m);
    /* NaN inside a shard. */
    m2[bnd[1] + 3] = NAN;
    CHECK_OK(pvlm_ckpt_optim_save_shard(&m, m1 + bnd[1], m2 + bnd[1], bnd[1], bnd[2], 1, 3, 17, other, &err), &err);
    const char *nanset[3] = {sh[0], other, sh[2]};
    CHECK(pvlm_ckpt_optim_load_range(&m, nanset, 3, 0, N, r1, r2, &step, &err) == -1 && strstr(err.msg, "NaN"));
    /* Bad arguments. */
    CHECK(pvlm_ckpt_optim_save_shard(&m, m1, m2, 10, 5, 0, 1, 1, other, &err) == -1);
    CHECK(pvlm_ckpt_optim_save_shard(&m, m1, m2, 0, 5, 3, 3, 1, other, &err) == -1);
    CHECK(pvlm_ckpt_optim_load_range(&m, sp, 3, 0, N + 1, r1, r2, &step, &err) == -1);
    free(m1);
    free(m2);
    free(r1);
    free(r2);
    pvlm_model_free(&m);
}

int main(int argc, char **argv) {
    if (pvlm_test_scratch(base, sizeof base, "/tmp/pvlm_test_ckpt_model", NULL, 0)) return 1;
    const char *mode = argc > 1 ? argv[1] : "all";
    int all = !strcmp(mode, "all");
    if (all || !strcmp(mode, "roundtrip")) test_roundtrip();
    if (all || !strcmp(mode, "corrupt")) test_corrupt();
    if (all || !strcmp(mode, "optim")) test_optim();
    return pvlm_test_done(mode);
}
