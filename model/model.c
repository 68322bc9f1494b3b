/* model.c - see model.h. Architecture: docs/model.md. */
#include "model.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/rng.h"
#include "core/timer.h"
#include "model/ops.h"

/* ------------------------------------------------------------------ config */

void pvlm_model_config_default(pvlm_model_config *c) {
    memset(c, 0, sizeof *c);
    c->image_size = 64, c->patch_size = 8;
    snprintf(c->stem, sizeof c->stem, "patch");
    c->d_model = 512, c->n_heads = 8, c->d_ff = 2048, c->n_enc_layers = 6, c->n_dec_layers = 6;
    c->vocab_size = 8192, c->max_prefix_len = 16, c->max_suffix_len = 48;
    c->pad_id = 0, c->bos_id = 1, c->eos_id = 2;
    c->ln_eps = 1e-5f;
    c->conv_channels = 32, c->conv_blocks = 2, c->conv_groups = 8;
    c->n_vpt = 0, c->vpt_deep = 0, c->n_ctx = 0, c->n_ctx_sets = 1;
}

#define INT_FIELDS(X)                                                                                        \
    X(image_size) X(patch_size) X(d_model) X(n_heads) X(d_ff) X(n_enc_layers) X(n_dec_layers) X(vocab_size)  \
        X(max_prefix_len) X(max_suffix_len) X(pad_id) X(bos_id) X(eos_id) X(conv_channels) X(conv_blocks)   \
            X(conv_groups) X(n_vpt) X(vpt_deep) X(n_ctx) X(n_ctx_sets)

json_t *pvlm_model_config_to_json(const pvlm_model_config *c) {
    json_t *j = json_object();
#define SETI(f) json_object_set_new(j, #f, json_integer(c->f));
    INT_FIELDS(SETI)
#undef SETI
    json_object_set_new(j, "stem", json_string(c->stem));
    json_object_set_new(j, "ln_eps", json_real((double)c->ln_eps));
    return j;
}

int pvlm_model_config_from_json(pvlm_model_config *c, const json_t *j, pvlm_err *err) {
    pvlm_model_config_default(c);
    if (!json_is_object(j)) return pvlm_err_set(err, PVLM_EFORMAT, "model config: not a JSON object");
    json_t *v;
#define GETI(f)                                                                                          \
    if ((v = json_object_get(j, #f))) {                                                                  \
        if (!json_is_integer(v) || json_integer_value(v) < -2147483647 || json_integer_value(v) > 2147483647) \
            return pvlm_err_set(err, PVLM_EFORMAT, "model config: field '%s' must be an integer", #f);   \
        c->f = (int)json_integer_value(v);                                                               \
    }
    INT_FIELDS(GETI)
#undef GETI
    if ((v = json_object_get(j, "stem"))) {
        if (!json_is_string(v) || strlen(json_string_value(v)) >= sizeof c->stem)
            return pvlm_err_set(err, PVLM_EFORMAT, "model config: field 'stem' must be \"patch\" or \"conv\"");
        snprintf(c->stem, sizeof c->stem, "%s", json_string_value(v));
    }
    if ((v = json_object_get(j, "ln_eps"))) {
        if (!json_is_number(v)) return pvlm_err_set(err, PVLM_EFORMAT, "model config: field 'ln_eps' must be a number");
        c->ln_eps = (float)json_number_value(v);
    }
    return pvlm_model_config_validate(c, err);
}

int pvlm_model_config_validate(const pvlm_model_config *c, pvlm_err *err) {
#define REQ(cond, ...) \
    if (!(cond)) return pvlm_err_set(err, PVLM_EINVAL, "model config: " __VA_ARGS__)
    REQ(c->image_size > 0 && c->patch_size > 0 && c->image_size % c->patch_size == 0,
        "image_size %d must be a positive multiple of patch_size %d", c->image_size, c->patch_size);
    REQ(!strcmp(c->stem, "patch") || !strcmp(c->stem, "conv"), "stem '%s' must be patch or conv", c->stem);
    if (!strcmp(c->stem, "conv")) {
        REQ(c->patch_size % 2 == 0, "conv stem needs an even patch_size (got %d)", c->patch_size);
        REQ(c->conv_channels > 0 && c->conv_groups > 0 && c->conv_channels % c->conv_groups == 0,
            "conv_channels %d must be a positive multiple of conv_groups %d", c->conv_channels, c->conv_groups);
        REQ(c->conv_blocks >= 0, "conv_blocks %d < 0", c->conv_blocks);
    }
    REQ(c->d_model > 0 && c->n_heads > 0 && c->d_model % c->n_heads == 0,
        "d_model %d must be a positive multiple of n_heads %d", c->d_model, c->n_heads);
    REQ(c->d_ff > 0, "d_ff %d must be positive", c->d_ff);
    REQ(c->n_enc_layers >= 1 && c->n_dec_layers >= 1, "n_enc_layers %d and n_dec_layers %d must be >= 1",
        c->n_enc_layers, c->n_dec_layers);
    REQ(c->vocab_size > 1, "vocab_size %d must be > 1", c->vocab_size);
    REQ(c->max_prefix_len >= 1 && c->max_suffix_len >= 1, "max_prefix_len %d and max_suffix_len %d must be >= 1",
        c->max_prefix_len, c->max_suffix_len);
    REQ(c->pad_id >= 0 && c->pad_id < c->vocab_size && c->bos_id >= 0 && c->bos_id < c->vocab_size &&
            c->eos_id >= 0 && c->eos_id < c->vocab_size,
        "pad/bos/eos ids %d/%d/%d must lie in [0, vocab_size %d)", c->pad_id, c->bos_id, c->eos_id, c->vocab_size);
    REQ(c->ln_eps > 0.0f, "ln_eps must be positive");
    REQ(c->n_vpt >= 0 && (c->vpt_deep == 0 || c->vpt_deep == 1), "n_vpt %d must be >= 0 and vpt_deep (%d) 0 or 1",
        c->n_vpt, c->vpt_deep);
    REQ(c->n_ctx >= 0 && c->n_ctx <= c->max_prefix_len, "n_ctx %d must lie in [0, max_prefix_len %d]", c->n_ctx,
        c->max_prefix_len);
    REQ(c->n_ctx_sets >= 1, "n_ctx_sets %d must be >= 1", c->n_ctx_sets);
    /* Upper bounds: every row count, width and their products below stays far inside int / size_t
     * (the code indexes rows with int and computes element offsets in size_t). Generous for any model
     * this program can train; a corrupt or hostile config fails here instead of overflowing. */
    int64_t g = c->image_size / c->patch_size;
    REQ(c->image_size <= 8192 && g <= 1024, "image_size %d / patch_size %d too large (<= 8192 pixels, <= 1024 "
        "patches per side)", c->image_size, c->patch_size);
    REQ(c->d_model <= 65536 && c->d_ff <= 1048576 && c->n_enc_layers <= 1024 && c->n_dec_layers <= 1024,
        "d_model %d / d_ff %d / layers %d+%d too large", c->d_model, c->d_ff, c->n_enc_layers, c->n_dec_layers);
    REQ(c->vocab_size <= (1 << 24), "vocab_size %d too large (<= 2^24)", c->vocab_size);
    REQ(c->max_prefix_len <= 65536 && c->max_suffix_len <= 65536 && c->n_vpt <= 65536 && c->n_ctx_sets <= 65536,
        "max_prefix_len %d / max_suffix_len %d / n_vpt %d / n_ctx_sets %d too large (<= 65536)", c->max_prefix_len,
        c->max_suffix_len, c->n_vpt, c->n_ctx_sets);
    if (!strcmp(c->stem, "conv"))
        REQ(c->conv_channels <= 4096 && c->conv_blocks <= 256, "conv_channels %d / conv_blocks %d too large",
            c->conv_channels, c->conv_blocks);
    int64_t d = c->d_model, L = (int64_t)c->n_enc_layers + c->n_dec_layers;
    int64_t nparams = (int64_t)c->vocab_size * d + (g * g + c->max_prefix_len + c->max_suffix_len) * d +
                      L * (4 * d * d + 2 * d * c->d_ff) + (int64_t)c->n_dec_layers * 4 * d * d +
                      ((int64_t)c->n_vpt * c->n_enc_layers + (int64_t)c->n_ctx_sets * c->n_ctx) * d;
    REQ(nparams <= ((int64_t)1 << 36), "model too large (about %lld parameters, > 2^36)", (long long)nparams);
#undef REQ
    return 0;
}

int pvlm_model_enc_len(const pvlm_model_config *c) {
    int g = c->image_size / c->patch_size;
    return g * g + c->n_vpt + c->max_prefix_len;
}

/* ------------------------------------------------------------------ private state */

/* Saved activations of one layer. The LayerNorm, attention and GELU outputs and the attention projections (q, k,
 * v: qkv, qc, kvc) are read by matrix products only (void *): floats, or in bf16 precision their bf16 rounding
 * (priv.act16), which is all the products read of them. */
typedef struct enc_a { /* N = B*T rows */
    void *ln1, *qkv, *ao, *ln2, *gl;
    float *m1, *r1, *att, *xm, *m2, *r2, *fc1, *out;
} enc_a;
typedef struct dec_a {
    void *ln1, *qkv, *ao, *lnc, *qc, *kvc, *aoc, *ln2, *gl;
    float *m1, *r1, *att, *xm1, *mc, *rc, *attc, *xm2, *m2, *r2;
    float *fc1, *out;
} dec_a;

typedef struct priv {
    int conv, Np, K; /* conv stem?, patches, patch row width */
    /* activations for batch capacity (cB, cT, cLs) */
    void *arena;
    size_t arena_bytes;
    int cB, cT, cLs;
    int B, T, Lpb, Ls, have_fwd; /* shape of the last forward */
    float *img, *patches, *timg, *x0, *E, *Em, *Er, *y0, *yfm, *yfr, *probs;
    void *yf;      /* the final decoder LayerNorm's output: a product input, as enc_a.ln1 */
    uint16_t *E16; /* act16: E rounded once per forward for every decoder layer's cross-attention products */
    int act16;     /* the arena's product-only activations (enc_a, dec_a, yf) are bf16 (laid out in bf16 precision) */
    double *rowloss;
    uint8_t *kmask;
    enc_a *ea;
    dec_a *da;
    /* conv stem */
    float *p0, **xs, **gn, **gnm, **gnr, **gl, **cols, *gnf, *gnfm, *gnfr;
    /* backward scratch */
    float *dx, *dy, *dE, *dln, *dao, *dqkv, *datt, *dfc, *dkvc, *dqc, *scale, *dtimg, *dpatch, *dmap, *dmap2,
        *dcols;
    double inv_ntg; /* 1/n_targets_global of the last forward */
    int recompute;  /* PVLM_RECOMPUTE_*: which activations backward recomputes instead of keeping */
    int have_enc;   /* the last call was pvlm_model_encode (pvlm_model_encode_backward may follow) */
    enc_a rea;      /* the shared per-layer set for recomputation (unused with PVLM_RECOMPUTE_NONE) */
    dec_a rda;
    /* packed decoder rows: sample b owns rows doff[b] .. doff[b]+dlen[b]-1 (its positions up to the last
     * target; padded positions after it never influence the loss under the causal mask, so they are not
     * computed); per row: token, target, position, sample. Nd = number of packed rows. */
    int *doff, *dlen, *koff, *klen, *rpos, *rsample, Nd;
    /* packed encoder rows: sample b owns rows eoff[b] .. eoff[b]+elen[b]-1, only its visible tokens (image
     * tokens of image-text samples, prompts, prefix tokens that are not padding): hidden tokens are keys
     * nobody attends to, so their rows never influence the loss and are not computed. Per row: the
     * position t in the padded [Np + n_vpt + Lp] sequence and the sample. Ne = number of rows. */
    int *eoff, *elen, *ert, *erb, Ne;
    size_t *aenc;
    float *Epad; /* [B*T, d] padded copy of E for pvlm_model_encode (decoding) */
    int32_t *rtok, *rtgt;
    size_t *aself, *across;
    double times[PVLM_TIME_N];
} priv;

/* View registration runs twice: first with m->views NULL to count views and floats, then, once the
 * buffers exist, to fill the view table and point the typed tensors (m->w, m->g) into them (only the
 * table for pvlm_model_layout, which allocates no parameters). The order of
 * the calls is the buffer order (model.h). */
typedef struct reg {
    pvlm_model *m;
    char name[64];
} reg;

static void add_view(reg *r, float **w, float **g, pvlm_view_kind kind, int resid, int ndim, int64_t s0, int64_t s1,
                     int64_t s2, int64_t s3) {
    pvlm_model *m = r->m;
    int64_t sh[4] = {s0, s1, s2, s3};
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)sh[i];
    if (m->views) {
        pvlm_view *v = &m->views[m->n_views];
        memset(v, 0, sizeof *v);
        snprintf(v->name, sizeof v->name, "%s", r->name);
        v->ndim = ndim;
        for (int i = 0; i < ndim; i++) v->shape[i] = sh[i];
        v->numel = n, v->offset = m->n_params, v->kind = kind, v->resid = resid;
    }
    if (m->params) *w = m->params + m->n_params, *g = m->grads + m->n_params;
    m->n_views++;
    m->n_params += n;
}

/* "<prefix>.weight" [O, I] (kind MATRIX) and "<prefix>.bias" [O]; a residual output projection if resid. */
static void add_linear(reg *r, const char *prefix, float **w, float **b, float **gw, float **gb, int O, int I,
                       int resid) {
    snprintf(r->name, sizeof r->name, "%s.weight", prefix);
    add_view(r, w, gw, PVLM_VIEW_MATRIX, resid, 2, O, I, 0, 0);
    snprintf(r->name, sizeof r->name, "%s.bias", prefix);
    add_view(r, b, gb, PVLM_VIEW_BIAS, 0, 1, O, 0, 0, 0);
}

/* "<prefix>.weight" (kind NORM) and "<prefix>.bias" [C] of a LayerNorm / GroupNorm. */
static void add_norm(reg *r, const char *prefix, float **w, float **b, float **gw, float **gb, int C) {
    snprintf(r->name, sizeof r->name, "%s.weight", prefix);
    add_view(r, w, gw, PVLM_VIEW_NORM, 0, 1, C, 0, 0, 0);
    snprintf(r->name, sizeof r->name, "%s.bias", prefix);
    add_view(r, b, gb, PVLM_VIEW_BIAS, 0, 1, C, 0, 0, 0);
}

static void add_table(reg *r, const char *name, float **w, float **g, pvlm_view_kind kind, int ndim, int64_t s0,
                      int64_t s1, int64_t s2) {
    snprintf(r->name, sizeof r->name, "%s", name);
    add_view(r, w, g, kind, 0, ndim, s0, s1, s2, 0);
}

static void register_stem(reg *r, pvlm_weights *w, pvlm_weights *g, int *K) {
    const pvlm_model_config *c = &r->m->cfg;
    char pre[48];
    if (strcmp(c->stem, "conv")) {
        *K = 3 * c->patch_size * c->patch_size;
        return;
    }
    int C = c->conv_channels;
    snprintf(r->name, sizeof r->name, "stem.conv_in.weight");
    add_view(r, &w->conv_in_w, &g->conv_in_w, PVLM_VIEW_MATRIX, 0, 4, C, 3, 2, 2);
    snprintf(r->name, sizeof r->name, "stem.conv_in.bias");
    add_view(r, &w->conv_in_b, &g->conv_in_b, PVLM_VIEW_BIAS, 0, 1, C, 0, 0, 0);
    for (int i = 0; i < c->conv_blocks; i++) {
        pvlm_stem_block *bw = &w->stem[i], *bg = &g->stem[i];
        snprintf(pre, sizeof pre, "stem.block.%d.gn", i);
        add_norm(r, pre, &bw->gn_w, &bw->gn_b, &bg->gn_w, &bg->gn_b, C);
        snprintf(r->name, sizeof r->name, "stem.block.%d.conv.weight", i);
        add_view(r, &bw->conv_w, &bg->conv_w, PVLM_VIEW_MATRIX, 1, 4, C, C, 3, 3);
        snprintf(r->name, sizeof r->name, "stem.block.%d.conv.bias", i);
        add_view(r, &bw->conv_b, &bg->conv_b, PVLM_VIEW_BIAS, 0, 1, C, 0, 0, 0);
    }
    add_norm(r, "stem.gn_f", &w->gn_f_w, &w->gn_f_b, &g->gn_f_w, &g->gn_f_b, C);
    int q = c->patch_size / 2;
    *K = C * q * q;
}

/* The tensors of one transformer layer, in buffer order: a LayerNorm (weight and bias) or a linear layer
 * ([O, I] weight and [O] bias), its name under the layer prefix, where its pointers sit in the layer
 * struct, and the linear shape in multiples of d (D, 2D, 3D) or d_ff (FF). */
enum { D1 = 1, D2, D3, FF };
typedef struct layer_tensor {
    const char *name;
    int norm, O, I, resid;
    size_t w, b; /* offsetof the weight / bias pointer */
} layer_tensor;

#define LN_T(nm, T, f) {nm, 1, 0, 0, 0, offsetof(T, f##_w), offsetof(T, f##_b)}
#define LIN_T(nm, T, f, O, I, r) {nm, 0, O, I, r, offsetof(T, f##_w), offsetof(T, f##_b)}
static const layer_tensor enc_tensors[] = {
    LN_T("ln1", pvlm_enc_layer, ln1),           LIN_T("attn.qkv", pvlm_enc_layer, qkv, D3, D1, 0),
    LIN_T("attn.out", pvlm_enc_layer, out, D1, D1, 1), LN_T("ln2", pvlm_enc_layer, ln2),
    LIN_T("mlp.fc1", pvlm_enc_layer, fc1, FF, D1, 0), LIN_T("mlp.fc2", pvlm_enc_layer, fc2, D1, FF, 1),
};
static const layer_tensor dec_tensors[] = {
    LN_T("ln1", pvlm_dec_layer, ln1),
    LIN_T("self.qkv", pvlm_dec_layer, qkv, D3, D1, 0),
    LIN_T("self.out", pvlm_dec_layer, out, D1, D1, 1),
    LN_T("ln_cross", pvlm_dec_layer, lnc),
    LIN_T("cross.q", pvlm_dec_layer, cq, D1, D1, 0),
    LIN_T("cross.kv", pvlm_dec_layer, ckv, D2, D1, 0),
    LIN_T("cross.out", pvlm_dec_layer, cout, D1, D1, 1),
    LN_T("ln2", pvlm_dec_layer, ln2),
    LIN_T("mlp.fc1", pvlm_dec_layer, fc1, FF, D1, 0),
    LIN_T("mlp.fc2", pvlm_dec_layer, fc2, D1, FF, 1),
};
#undef LN_T
#undef LIN_T

static int layer_dim(const pvlm_model_config *c, int code) { return code == FF ? c->d_ff : code * c->d_model; }

/* Registers "<prefix>.<name>.*" for every tensor of the table; w / g are the layer structs in m->w / m->g. */
static void register_layer(reg *r, const char *prefix, const layer_tensor *t, size_t n, void *w, void *g) {
    const pvlm_model_config *c = &r->m->cfg;
    char pre[48];
    for (size_t i = 0; i < n; i++) {
        float **pw = (float **)((char *)w + t[i].w), **pb = (float **)((char *)w + t[i].b);
        float **gw = (float **)((char *)g + t[i].w), **gb = (float **)((char *)g + t[i].b);
        snprintf(pre, sizeof pre, "%s.%s", prefix, t[i].name);
        if (t[i].norm)
            add_norm(r, pre, pw, pb, gw, gb, c->d_model);
        else
            add_linear(r, pre, pw, pb, gw, gb, layer_dim(c, t[i].O), layer_dim(c, t[i].I), t[i].resid);
    }
}

/* Every view in buffer order: embeddings / stem / prompts, encoder layers, enc.ln_f, decoder layers, dec.ln_f. */
static void register_views(pvlm_model *m, int *K) {
    const pvlm_model_config *c = &m->cfg;
    pvlm_weights *w = &m->w, *g = &m->g;
    int d = c->d_model, g1 = c->image_size / c->patch_size;
    reg r = {m, {0}};
    m->n_views = 0, m->n_params = 0;
    add_table(&r, "tok_embed", &w->tok_embed, &g->tok_embed, PVLM_VIEW_MATRIX, 2, c->vocab_size, d, 0);
    add_table(&r, "enc_text_pos", &w->enc_pos, &g->enc_pos, PVLM_VIEW_EMBEDDING, 2, c->max_prefix_len, d, 0);
    add_table(&r, "dec_pos", &w->dec_pos, &g->dec_pos, PVLM_VIEW_EMBEDDING, 2, c->max_suffix_len, d, 0);
    register_stem(&r, w, g, K);
    add_linear(&r, "patch_embed", &w->patch_w, &w->patch_b, &g->patch_w, &g->patch_b, d, *K, 0);
    add_table(&r, "img_pos", &w->img_pos, &g->img_pos, PVLM_VIEW_EMBEDDING, 2, g1 * g1, d, 0);
    if (c->n_vpt > 0)
        add_table(&r, "vpt.prompts", &w->vpt, &g->vpt, PVLM_VIEW_EMBEDDING, 3, c->vpt_deep ? c->n_enc_layers : 1,
                  c->n_vpt, d);
    if (c->n_ctx > 0)
        add_table(&r, "coop.ctx", &w->coop, &g->coop, PVLM_VIEW_EMBEDDING, 3, c->n_ctx_sets, c->n_ctx, d);
    char pre[32];
    for (int l = 0; l < c->n_enc_layers; l++) {
        snprintf(pre, sizeof pre, "enc.%d", l);
        register_layer(&r, pre, enc_tensors, sizeof enc_tensors / sizeof *enc_tensors, &w->enc[l], &g->enc[l]);
    }
    add_norm(&r, "enc.ln_f", &w->enc_lnf_w, &w->enc_lnf_b, &g->enc_lnf_w, &g->enc_lnf_b, d);
    for (int l = 0; l < c->n_dec_layers; l++) {
        snprintf(pre, sizeof pre, "dec.%d", l);
        register_layer(&r, pre, dec_tensors, sizeof dec_tensors / sizeof *dec_tensors, &w->dec[l], &g->dec[l]);
    }
    add_norm(&r, "dec.ln_f", &w->dec_lnf_w, &w->dec_lnf_b, &g->dec_lnf_w, &g->dec_lnf_b, d);
}

/* The layer arrays of one pvlm_weights (one allocation; w->enc owns it). */
static int alloc_layers(pvlm_weights *w, const pvlm_model_config *c, pvlm_err *err) {
    size_t ne = sizeof(pvlm_enc_layer) * (size_t)c->n_enc_layers, nd = sizeof(pvlm_dec_layer) * (size_t)c->n_dec_layers;
    size_t ns = sizeof(pvlm_stem_block) * (size_t)(c->conv_blocks > 0 ? c->conv_blocks : 1);
    char *b = pvlm_alloc(ne + nd + ns, err);
    if (!b) return -1;
    w->enc = (pvlm_enc_layer *)b, w->dec = (pvlm_dec_layer *)(b + ne), w->stem = (pvlm_stem_block *)(b + ne + nd);
    return 0;
}

static int create(pvlm_model *m, const pvlm_model_config *cfg, int layout_only, pvlm_err *err) {
    memset(m, 0, sizeof *m);
    if (pvlm_model_config_validate(cfg, err)) return -1;
    m->cfg = *cfg;
    priv *p = pvlm_alloc(sizeof *p, err);
    if (!p) goto fail;
    m->priv = p;
    int g = m->cfg.image_size / m->cfg.patch_size;
    p->Np = g * g;
    p->conv = !strcmp(m->cfg.stem, "conv");
    if (alloc_layers(&m->w, &m->cfg, err) || alloc_layers(&m->g, &m->cfg, err)) goto fail;
    register_views(m, &p->K); /* count */
    m->views = pvlm_alloc(sizeof(pvlm_view) * (size_t)m->n_views, err);
    if (!m->views) goto fail;
    if (layout_only) { /* names, shapes and offsets only: no parameter buffers */
        register_views(m, &p->K);
        return 0;
    }
    m->params = pvlm_alloc(sizeof(float) * m->n_params, err);
    m->grads = pvlm_alloc(sizeof(float) * m->n_params, err);
    if (!m->views || !m->params || !m->grads) goto fail;
    register_views(m, &p->K); /* fill */
    /* LayerNorm / GroupNorm weights start at 1 so a freshly created model is usable before init */
    for (int i = 0; i < m->n_views; i++) {
        const pvlm_view *v = &m->views[i];
        if (v->kind == PVLM_VIEW_NORM)
            for (size_t k = 0; k < v->numel; k++) m->params[v->offset + k] = 1.0f;
    }
    return 0;
fail:
    if (err && err->code == 0) pvlm_err_set(err, PVLM_ENOMEM, "model: out of memory");
    pvlm_model_free(m);
    return -1;
}

void pvlm_model_init_weights(pvlm_model *m, uint64_t seed) {
    const pvlm_model_config *c = &m->cfg;
    float resid = 1.0f / sqrtf(2.0f * (float)(c->n_enc_layers + c->n_dec_layers));
    for (int i = 0; i < m->n_views; i++) {
        const pvlm_view *v = &m->views[i];
        float *w = m->params + v->offset;
        if (v->kind == PVLM_VIEW_BIAS) {
            memset(w, 0, sizeof(float) * v->numel);
        } else if (v->kind == PVLM_VIEW_NORM) {
            for (size_t k = 0; k < v->numel; k++) w[k] = 1.0f;
        } else {
            /* an independent stream per view, so adding a view never changes the others */
            pvlm_rng r;
            pvlm_rng_seed(&r, seed, (uint64_t)i + 1);
            float sd = 0.02f;
            if (v->resid) sd *= resid;
            for (size_t k = 0; k < v->numel; k++) w[k] = (float)pvlm_rng_normal(&r) * sd;
        }
    }
}

int pvlm_model_create(pvlm_model *m, const pvlm_model_config *cfg, pvlm_err *err) {
    return create(m, cfg, 0, err);
}

int pvlm_model_layout(pvlm_model *m, const pvlm_model_config *cfg, pvlm_err *err) {
    return create(m, cfg, 1, err);
}

void pvlm_model_free(pvlm_model *m) {
    if (!m) return;
    priv *p = m->priv;
    if (p) {
        pvlm_free(p->ea);
        pvlm_free(p->da);
        pvlm_free(p->xs);
        pvlm_free(p->arena);
        pvlm_free(p);
    }
    pvlm_free(m->params);
    pvlm_free(m->grads);
    pvlm_free(m->views);
    pvlm_free(m->w.enc);
    pvlm_free(m->g.enc);
    pvlm_matmul_free(m->mm);
    memset(m, 0, sizeof *m);
}

int pvlm_model_set_precision(pvlm_model *m, pvlm_precision p, pvlm_err *err) {
    pvlm_matmul *mm = NULL;
    if (p != PVLM_PREC_FP32 && pvlm_matmul_create(&mm, p, err)) return -1;
    pvlm_matmul_free(m->mm);
    m->mm = mm;
    priv *pv = m->priv;
    /* the next forward lays the arena out for this precision (ensure_arena); the arena itself is kept where
     * it is large enough, so switching back and forth (the benches) does not reallocate it each time */
    pv->have_fwd = 0, pv->have_enc = 0;
    return 0;
}

int pvlm_model_set_recompute(pvlm_model *m, const char *name, pvlm_err *err) {
    priv *p = m->priv;
    int mode;
    if (name && !strcmp(name, "none")) mode = PVLM_RECOMPUTE_NONE;
    else if (name && !strcmp(name, "attention")) mode = PVLM_RECOMPUTE_ATTENTION;
    else if (name && !strcmp(name, "block")) mode = PVLM_RECOMPUTE_BLOCK;
    else return pvlm_err_set(err, PVLM_EINVAL, "recompute '%s': expected none, attention or block", name ? name : "");
    if (mode != p->recompute) { /* another activation layout: the next forward allocates it */
        pvlm_free(p->arena);
        p->arena = NULL, p->arena_bytes = 0, p->have_fwd = 0;
        p->recompute = mode;
    }
    return 0;
}

size_t pvlm_model_activation_bytes(const pvlm_model *m) { return ((const priv *)m->priv)->arena_bytes; }

int pvlm_model_set_precision_name(pvlm_model *m, const char *name, pvlm_err *err) {
    /* the commands that run the model come through here once: the place to warn, once per process, about
     * an environment that slows every fp32 product down and about emulated bf16 (the flags are the warnings'
     * only state) */
    static int warned, bf16_warned;
    char msg[400];
    if (!warned && pvlm_blas_kernel_check(msg, sizeof msg)) pvlm_warn("%s", msg);
    warned = 1;
    pvlm_precision p;
    if (pvlm_precision_parse(name, &p, err) || pvlm_model_set_precision(m, p, err)) return -1;
    if (pvlm_matmul_emulated(m->mm) && bf16_warned++ == 0) {
        char why[160];
        pvlm_bf16_available(why, sizeof why);
        pvlm_warn("bf16 is emulated (PVLM_BF16_EMULATE): %s; bf16's numerics with fp32 products, slower than "
                  "--precision fp32",
                  why);
    }
    return 0;
}

int pvlm_model_view_index(const pvlm_model *m, const char *name) {
    for (int i = 0; i < m->n_views; i++)
        if (!strcmp(m->views[i].name, name)) return i;
    return -1;
}

const pvlm_view *pvlm_model_view(const pvlm_model *m, const char *name) {
    int i = pvlm_model_view_index(m, name);
    return i < 0 ? NULL : &m->views[i];
}

void pvlm_model_zero_grad(pvlm_model *m) { pvlm_op_zero(m->grads, m->n_params); }

void pvlm_model_times(const pvlm_model *m, double out[PVLM_TIME_N]) {
    const priv *p = m->priv;
    for (int i = 0; i < PVLM_TIME_N; i++) out[i] = p->times[i];
}

void pvlm_model_times_reset(pvlm_model *m) {
    priv *p = m->priv;
    for (int i = 0; i < PVLM_TIME_N; i++) p->times[i] = 0.0;
}

/* ------------------------------------------------------------------ activation arena */

typedef struct bump {
    char *base;
    size_t off;
} bump;

static void *take(bump *b, size_t bytes) {
    size_t o = (b->off + 63) & ~(size_t)63;
    b->off = o + bytes;
    return b->base ? b->base + o : NULL;
}
#define TF(n) ((float *)take(&bb, sizeof(float) * (size_t)(n)))
#define TA(n) take(&bb, (act16 ? sizeof(uint16_t) : sizeof(float)) * (size_t)(n)) /* a product-only input */

/* Lays out every activation for (B, T, Ls) at bb.base (NULL: only sizes), the product-only ones in bf16 when
 * act16. */
static size_t layout(pvlm_model *m, char *base, int B, int T, int Ls, int act16) {
    priv *p = m->priv;
    const pvlm_model_config *c = &m->cfg;
    bump bb = {base, 0};
    size_t d = (size_t)c->d_model, F = (size_t)c->d_ff, H = (size_t)c->n_heads;
    size_t Ne = (size_t)B * T, Nd = (size_t)B * Ls, S = (size_t)c->image_size, Np = (size_t)p->Np;
    size_t Nm = Ne > Nd ? Ne : Nd;
    p->img = TF((size_t)B * S * S * 3);
    p->patches = TF((size_t)B * Np * p->K);
    p->timg = TF((size_t)B * Np * d);
    p->x0 = TF(Ne * d);
    p->kmask = take(&bb, Ne);
    /* Per layer: everything backward needs (recompute none); only the output (block: the next layer's
     * input; each layer is recomputed from its input during backward into the one shared set p->rea /
     * p->rda); everything but the attention probabilities, which share one buffer per stack and are
     * recomputed from q, k, v (attention). The shared set is laid out in every mode: forward of block
     * mode runs in it. */
    int rc_mode = p->recompute;
    for (int l = -1; l < c->n_enc_layers; l++) {
        enc_a *a = l < 0 ? &p->rea : &p->ea[l];
        if (l >= 0 && rc_mode == PVLM_RECOMPUTE_BLOCK) {
            *a = p->rea, a->out = TF(Ne * d);
            continue;
        }
        if (l < 0 && rc_mode != PVLM_RECOMPUTE_BLOCK) { /* none: unused; attention: the shared probabilities */
            memset(a, 0, sizeof *a);
            if (rc_mode == PVLM_RECOMPUTE_ATTENTION) a->att = TF((size_t)B * H * T * T);
            continue;
        }
        a->ln1 = TA(Ne * d), a->m1 = TF(Ne), a->r1 = TF(Ne), a->qkv = TA(Ne * 3 * d);
        a->att = l >= 0 && rc_mode == PVLM_RECOMPUTE_ATTENTION ? p->rea.att : TF((size_t)B * H * T * T);
        a->ao = TA(Ne * d), a->xm = TF(Ne * d);
        a->ln2 = TA(Ne * d), a->m2 = TF(Ne), a->r2 = TF(Ne), a->fc1 = TF(Ne * F), a->gl = TA(Ne * F);
        a->out = TF(Ne * d);
    }
    p->E = TF(Ne * d), p->Em = TF(Ne), p->Er = TF(Ne);
    p->E16 = act16 ? take(&bb, sizeof(uint16_t) * Ne * d) : NULL;
    p->y0 = TF(Nd * d);
    for (int l = -1; l < c->n_dec_layers; l++) {
        dec_a *a = l < 0 ? &p->rda : &p->da[l];
        if (l >= 0 && rc_mode == PVLM_RECOMPUTE_BLOCK) {
            *a = p->rda, a->out = TF(Nd * d);
            continue;
        }
        if (l < 0 && rc_mode != PVLM_RECOMPUTE_BLOCK) {
            memset(a, 0, sizeof *a);
            if (rc_mode == PVLM_RECOMPUTE_ATTENTION)
                a->att = TF((size_t)B * H * Ls * Ls), a->attc = TF((size_t)B * H * Ls * T);
            continue;
        }
        int shared_att = l >= 0 && rc_mode == PVLM_RECOMPUTE_ATTENTION;
        a->ln1 = TA(Nd * d), a->m1 = TF(Nd), a->r1 = TF(Nd), a->qkv = TA(Nd * 3 * d);
        a->att = shared_att ? p->rda.att : TF((size_t)B * H * Ls * Ls);
        a->ao = TA(Nd * d), a->xm1 = TF(Nd * d);
        a->lnc = TA(Nd * d), a->mc = TF(Nd), a->rc = TF(Nd), a->qc = TA(Nd * d), a->kvc = TA(Ne * 2 * d);
        a->attc = shared_att ? p->rda.attc : TF((size_t)B * H * Ls * T);
        a->aoc = TA(Nd * d), a->xm2 = TF(Nd * d);
        a->ln2 = TA(Nd * d), a->m2 = TF(Nd), a->r2 = TF(Nd), a->fc1 = TF(Nd * F), a->gl = TA(Nd * F);
        a->out = TF(Nd * d);
    }
    p->yf = TA(Nd * d), p->yfm = TF(Nd), p->yfr = TF(Nd);
    p->probs = TF(Nd * (size_t)c->vocab_size);
    p->rowloss = take(&bb, sizeof(double) * Nd);
    p->eoff = take(&bb, sizeof(int) * 2 * (size_t)B);
    p->elen = p->eoff + B;
    p->ert = take(&bb, sizeof(int) * 2 * Ne);
    p->erb = p->ert + Ne;
    p->aenc = take(&bb, sizeof(size_t) * (size_t)B);
    p->Epad = TF(Ne * d);
    p->doff = take(&bb, sizeof(int) * 4 * (size_t)B);
    p->dlen = p->doff + B, p->koff = p->dlen + B, p->klen = p->koff + B;
    p->aself = take(&bb, sizeof(size_t) * 2 * (size_t)B);
    p->across = p->aself + B;
    p->rpos = take(&bb, sizeof(int) * 2 * Nd);
    p->rsample = p->rpos + Nd;
    p->rtok = take(&bb, sizeof(int32_t) * 2 * Nd);
    p->rtgt = p->rtok + Nd;
    /* conv stem */
    if (p->conv) {
        size_t H2 = S / 2, C = (size_t)c->conv_channels, G = (size_t)c->conv_groups, M = (size_t)B * H2 * H2;
        p->p0 = TF(M * 12);
        for (int i = 0; i <= c->conv_blocks; i++) p->xs[i] = TF(M * C);
        for (int i = 0; i < c->conv_blocks; i++) {
            p->gn[i] = TF(M * C), p->gnm[i] = TF((size_t)B * G), p->gnr[i] = TF((size_t)B * G);
            p->gl[i] = TF(M * C), p->cols[i] = TF(M * C * 9);
        }
        p->gnf = TF(M * C), p->gnfm = TF((size_t)B * G), p->gnfr = TF((size_t)B * G);
        p->dmap = TF(M * C), p->dmap2 = TF(M * C), p->dcols = TF(M * C * 9);
    }
    /* backward scratch */
    size_t att_max = (size_t)T * T;
    if ((size_t)Ls * Ls > att_max) att_max = (size_t)Ls * Ls;
    if ((size_t)Ls * T > att_max) att_max = (size_t)Ls * T;
    p->dx = TF(Ne * d), p->dy = TF(Nd * d), p->dE = TF(Ne * d), p->dln = TF(Nm * d), p->dao = TF(Nm * d);
    p->dqkv = TF(Nm * 3 * d), p->datt = TF((size_t)B * H * att_max), p->dfc = TF(Nm * F);
    p->dkvc = TF(Ne * 2 * d), p->dqc = TF(Nd * d), p->scale = TF(Nd);
    p->dtimg = TF((size_t)B * Np * d), p->dpatch = TF((size_t)B * Np * p->K);
    return bb.off + 64;
}
#undef TF
#undef TA

/* The per-layer tables of activation pointers that layout() fills (once per model). */
static int layer_tables(pvlm_model *m, pvlm_err *err) {
    priv *p = m->priv;
    const pvlm_model_config *c = &m->cfg;
    if (!p->ea) {
        p->ea = pvlm_alloc(sizeof(enc_a) * (size_t)c->n_enc_layers, err);
        p->da = pvlm_alloc(sizeof(dec_a) * (size_t)c->n_dec_layers, err);
        size_t nb = (size_t)c->conv_blocks + 1;
        p->xs = pvlm_alloc(sizeof(float *) * nb * 6, err);
        if (!p->ea || !p->da || !p->xs) return -1;
        p->gn = p->xs + nb, p->gnm = p->gn + nb, p->gnr = p->gnm + nb, p->gl = p->gnr + nb, p->cols = p->gl + nb;
    }
    return 0;
}

int pvlm_model_plan_activations(pvlm_model *m, int B, int T, int Ls, pvlm_precision prec, size_t *bytes,
                                pvlm_err *err) {
    priv *p = m->priv;
    if (layer_tables(m, err)) return -1;
    *bytes = layout(m, NULL, B, T, Ls, prec == PVLM_PREC_BF16);
    if (p->arena) layout(m, p->arena, p->B, p->T, p->Ls, p->act16); /* the current batch's pointers, as they were */
    return 0;
}

static int ensure_arena(pvlm_model *m, int B, int T, int Ls, pvlm_err *err) {
    priv *p = m->priv;
    if (layer_tables(m, err)) return -1;
    int a16 = p->act16 = pvlm_matmul_precision(m->mm) == PVLM_PREC_BF16;
    if (p->arena && B <= p->cB && T <= p->cT && Ls <= p->cLs && layout(m, NULL, B, T, Ls, a16) <= p->arena_bytes) {
        layout(m, p->arena, B, T, Ls, a16);
        return 0;
    }
    pvlm_free(p->arena);
    p->arena = NULL;
    size_t bytes = layout(m, NULL, B, T, Ls, a16);
    p->arena = pvlm_alloc(bytes, err);
    if (!p->arena) return pvlm_err_prefix(err, "model activations for batch %d (%zu MiB)", B, bytes >> 20);
    p->arena_bytes = bytes, p->cB = B, p->cT = T, p->cLs = Ls;
    layout(m, p->arena, B, T, Ls, a16);
    return 0;
}

/* ------------------------------------------------------------------ forward */


static int check_batch(const pvlm_model *m, const pvlm_batch *b, int need_targets, pvlm_err *err) {
    const pvlm_model_config *c = &m->cfg;
    if (b->B <= 0 || b->S != c->image_size || b->Lp < 1 || b->Lp > c->max_prefix_len || b->Ls < 1 ||
        b->Ls > c->max_suffix_len)
        return pvlm_err_set(err, PVLM_EINVAL,
                            "model: batch shape B=%d S=%d Lp=%d Ls=%d does not fit the model (S=%d, Lp<=%d, Ls<=%d)",
                            b->B, b->S, b->Lp, b->Ls, c->image_size, c->max_prefix_len, c->max_suffix_len);
    /* row counts are ints: B*T encoder rows, B*Ls decoder rows, B*S*S*3 pixels (with room to spare) */
    int64_t T = pvlm_model_enc_len(c);
    if ((int64_t)b->B * T > (1 << 28) || (int64_t)b->B * b->Ls > (1 << 28) ||
        (int64_t)b->B * b->S * b->S * 3 > ((int64_t)1 << 30))
        return pvlm_err_set(err, PVLM_EINVAL, "model: batch of %d samples too large for this model", b->B);
    int V = c->vocab_size;
    for (int i = 0; i < b->B; i++) {
        if (b->prefix_len[i] < 0 || b->prefix_len[i] > b->Lp)
            return pvlm_err_set(err, PVLM_EINVAL, "model: sample %d prefix_len %d outside [0,%d]", i, b->prefix_len[i], b->Lp);
        if (!b->has_image[i] && b->prefix_len[i] < 1 && c->n_ctx < 1 && c->n_vpt < 1)
            return pvlm_err_set(err, PVLM_EINVAL, "model: text-only sample %d has an empty prefix", i);
        if (c->n_ctx > 0 && (b->ctx_set[i] < 0 || b->ctx_set[i] >= c->n_ctx_sets))
            return pvlm_err_set(err, PVLM_EINVAL, "model: sample %d ctx_set %d outside [0,%d)", i, b->ctx_set[i], c->n_ctx_sets);
        for (int j = 0; j < b->Lp; j++) {
            int32_t t = b->prefix[(size_t)i * b->Lp + j];
            if (t < 0 || t >= V) return pvlm_err_set(err, PVLM_EINVAL, "model: sample %d prefix id %d outside [0,%d)", i, t, V);
        }
        for (int j = 0; j < b->Ls; j++) {
            int32_t t = b->dec_in[(size_t)i * b->Ls + j];
            if (t < 0 || t >= V) return pvlm_err_set(err, PVLM_EINVAL, "model: sample %d dec_in id %d outside [0,%d)", i, t, V);
            if (need_targets) {
                t = b->targets[(size_t)i * b->Ls + j];
                if (t != PVLM_IGNORE && (t < 0 || t >= V))
                    return pvlm_err_set(err, PVLM_EINVAL, "model: sample %d target id %d outside [0,%d)", i, t, V);
            }
        }
    }
    return 0;
}

/* Is encoder token t (of Np + n_vpt + Lp) of sample bi visible as a key? Image tokens only for
 * image-text samples, prompts always, prefix tokens before prefix_len (CoOp context always). */
static int enc_visible(const pvlm_model_config *c, int Np, const pvlm_batch *b, int bi, int t) {
    if (t < Np) return b->has_image[bi] != 0;
    if (t < Np + c->n_vpt) return 1;
    int j = t - Np - c->n_vpt;
    return j < b->prefix_len[bi] || j < c->n_ctx;
}

/* Encoder self-attention of layer activations a (its q, k, v) -> a->ao, a->att. */
static void enc_attention_fwd(pvlm_model *m, enc_a *a, int B) {
    const priv *p = m->priv;
    int d = m->cfg.d_model, H = m->cfg.n_heads;
    pvlm_op_attention_ragged_fwd(m->mm, a->ao, p->act16, d, a->att, p->act16, a->qkv, 3 * d,
                                 pvlm_matmul_elem(a->qkv, p->act16, d), 3 * d,
                                 pvlm_matmul_elem(a->qkv, p->act16, 2 * d), 3 * d, NULL, 0, B, H, d / H, p->eoff,
                                 p->elen, p->eoff, p->elen, p->aenc);
}

/* One encoder layer on the packed rows x [Ne, d]: every activation into a, the output into a->out. */
static void enc_layer_fwd(pvlm_model *m, const pvlm_enc_layer *e, enc_a *a, const float *x, int B) {
    const priv *p = m->priv;
    const pvlm_model_config *c = &m->cfg;
    int Ne = p->Ne, d = c->d_model, F = c->d_ff;
    pvlm_op_layernorm_fwd(a->ln1, p->act16, a->m1, a->r1, x, e->ln1_w, e->ln1_b, Ne, d, c->ln_eps);
    pvlm_op_linear_fwd(m->mm, a->qkv, p->act16, a->ln1, p->act16, e->qkv_w, e->qkv_b, Ne, d, 3 * d);
    enc_attention_fwd(m, a, B);
    pvlm_op_linear_fwd(m->mm, a->xm, 0, a->ao, p->act16, e->out_w, e->out_b, Ne, d, d);
    pvlm_op_add_inplace(a->xm, x, (size_t)Ne * d);
    pvlm_op_layernorm_fwd(a->ln2, p->act16, a->m2, a->r2, a->xm, e->ln2_w, e->ln2_b, Ne, d, c->ln_eps);
    pvlm_op_linear_fwd(m->mm, a->fc1, 0, a->ln2, p->act16, e->fc1_w, e->fc1_b, Ne, d, F);
    pvlm_op_gelu_fwd(a->gl, p->act16, a->fc1, (size_t)Ne * F);
    pvlm_op_linear_fwd(m->mm, a->out, 0, a->gl, p->act16, e->fc2_w, e->fc2_b, Ne, F, d);
    pvlm_op_add_inplace(a->out, a->xm, (size_t)Ne * d);
}

/* Decoder self- and cross-attention of layer activations a -> a->ao, a->att, a->aoc, a->attc. */
static void dec_attention_fwd(pvlm_model *m, dec_a *a, int B, int self, int cross) {
    const priv *p = m->priv;
    int d = m->cfg.d_model, H = m->cfg.n_heads;
    if (self)
        pvlm_op_attention_ragged_fwd(m->mm, a->ao, p->act16, d, a->att, p->act16, a->qkv, 3 * d,
                                     pvlm_matmul_elem(a->qkv, p->act16, d), 3 * d,
                                     pvlm_matmul_elem(a->qkv, p->act16, 2 * d), 3 * d, NULL, 1, B, H, d / H, p->doff,
                                     p->dlen, p->doff, p->dlen, p->aself);
    if (cross)
        pvlm_op_attention_ragged_fwd(m->mm, a->aoc, p->act16, d, a->attc, p->act16, a->qc, d, a->kvc, 2 * d,
                                     pvlm_matmul_elem(a->kvc, p->act16, d), 2 * d, NULL, 0, B, H, d / H, p->doff,
                                     p->dlen, p->koff, p->klen, p->across);
}

/* The encoder output as the cross-attention products read it: E, or its bf16 copy. */
static const void *enc_out(const priv *p) { return p->act16 ? (const void *)p->E16 : p->E; }

/* One decoder layer on the packed rows y [Nd, d] (cross-attending to p->E): every activation into a. */
static void dec_layer_fwd(pvlm_model *m, const pvlm_dec_layer *e, dec_a *a, const float *y, int B) {
    const priv *p = m->priv;
    const pvlm_model_config *c = &m->cfg;
    int Nd = p->Nd, Ne = p->Ne, d = c->d_model, F = c->d_ff;
    /* causal self-attention */
    pvlm_op_layernorm_fwd(a->ln1, p->act16, a->m1, a->r1, y, e->ln1_w, e->ln1_b, Nd, d, c->ln_eps);
    pvlm_op_linear_fwd(m->mm, a->qkv, p->act16, a->ln1, p->act16, e->qkv_w, e->qkv_b, Nd, d, 3 * d);
    dec_attention_fwd(m, a, B, 1, 0);
    pvlm_op_linear_fwd(m->mm, a->xm1, 0, a->ao, p->act16, e->out_w, e->out_b, Nd, d, d);
    pvlm_op_add_inplace(a->xm1, y, (size_t)Nd * d);
    /* cross-attention to the encoder output with its key-padding mask */
    pvlm_op_layernorm_fwd(a->lnc, p->act16, a->mc, a->rc, a->xm1, e->lnc_w, e->lnc_b, Nd, d, c->ln_eps);
    pvlm_op_linear_fwd(m->mm, a->qc, p->act16, a->lnc, p->act16, e->cq_w, e->cq_b, Nd, d, d);
    pvlm_op_linear_fwd(m->mm, a->kvc, p->act16, enc_out(p), p->act16, e->ckv_w, e->ckv_b, Ne, d, 2 * d);
    dec_attention_fwd(m, a, B, 0, 1);
    pvlm_op_linear_fwd(m->mm, a->xm2, 0, a->aoc, p->act16, e->cout_w, e->cout_b, Nd, d, d);
    pvlm_op_add_inplace(a->xm2, a->xm1, (size_t)Nd * d);
    /* MLP */
    pvlm_op_layernorm_fwd(a->ln2, p->act16, a->m2, a->r2, a->xm2, e->ln2_w, e->ln2_b, Nd, d, c->ln_eps);
    pvlm_op_linear_fwd(m->mm, a->fc1, 0, a->ln2, p->act16, e->fc1_w, e->fc1_b, Nd, d, F);
    pvlm_op_gelu_fwd(a->gl, p->act16, a->fc1, (size_t)Nd * F);
    pvlm_op_linear_fwd(m->mm, a->out, 0, a->gl, p->act16, e->fc2_w, e->fc2_b, Nd, F, d);
    pvlm_op_add_inplace(a->out, a->xm2, (size_t)Nd * d);
}

/* Stem + encoder; fills p->E (packed rows), p->kmask and the row tables. */
static void encoder_forward(pvlm_model *m, const pvlm_batch *b) {
    priv *p = m->priv;
    const pvlm_model_config *c = &m->cfg;
    int B = b->B, T = p->T, d = c->d_model, H = c->n_heads, S = c->image_size, Np = p->Np;
    int nv = c->n_vpt, Lpb = b->Lp, Ne = 0;
    size_t ae = 0;
    for (int bi = 0; bi < B; bi++) {
        int n = 0;
        p->eoff[bi] = Ne;
        for (int t = 0; t < T; t++) {
            int vis = enc_visible(c, Np, b, bi, t);
            p->kmask[(size_t)bi * T + t] = (uint8_t)vis;
            if (vis) p->ert[Ne + n] = t, p->erb[Ne + n] = bi, n++;
        }
        p->elen[bi] = n, p->aenc[bi] = ae;
        ae += (size_t)H * n * n;
        Ne += n;
    }
    p->Ne = Ne;
    double t0 = pvlm_now();
    /* stem -> timg [B*Np, d] */
    pvlm_op_image_norm(p->img, b->images, (size_t)B * S * S * 3);
    if (!p->conv) {
        pvlm_op_patchify_fwd(p->patches, p->img, B, S, S, 3, c->patch_size); /* [B*Np, 3P^2] */
    } else {
        int H2 = S / 2, C = c->conv_channels, G = c->conv_groups, M = B * H2 * H2;
        pvlm_op_patchify_fwd(p->p0, p->img, B, S, S, 3, 2);                   /* [M, 12] */
        pvlm_op_linear_fwd(m->mm, p->xs[0], 0, p->p0, 0, m->w.conv_in_w, m->w.conv_in_b, M, 12, C); /* [B,H2,H2,C] */
        for (int i = 0; i < c->conv_blocks; i++) {
            pvlm_op_groupnorm_fwd(p->gn[i], p->gnm[i], p->gnr[i], p->xs[i], m->w.stem[i].gn_w, m->w.stem[i].gn_b, B,
                                  H2 * H2, C, G, c->ln_eps);
            pvlm_op_gelu_fwd(p->gl[i], 0, p->gn[i], (size_t)M * C);
            pvlm_op_im2col3_fwd(p->cols[i], p->gl[i], B, H2, H2, C);            /* [M, 9C] */
            pvlm_op_linear_fwd(m->mm, p->xs[i + 1], 0, p->cols[i], 0, m->w.stem[i].conv_w, m->w.stem[i].conv_b, M,
                               9 * C, C);
            pvlm_op_add_inplace(p->xs[i + 1], p->xs[i], (size_t)M * C);
        }
        pvlm_op_groupnorm_fwd(p->gnf, p->gnfm, p->gnfr, p->xs[c->conv_blocks], m->w.gn_f_w, m->w.gn_f_b, B,
                              H2 * H2, C, G, c->ln_eps);
        pvlm_op_patchify_fwd(p->patches, p->gnf, B, H2, H2, C, c->patch_size / 2); /* [B*Np, C(P/2)^2] */
    }
    pvlm_op_linear_fwd(m->mm, p->timg, 0, p->patches, 0, m->w.patch_w, m->w.patch_b, B * Np, p->K, d);
    /* assemble x0 [Ne,d]: image tokens, prompts, prefix text (visible ones, packed) */
    const float *ipos = m->w.img_pos, *tpos = m->w.enc_pos, *tok = m->w.tok_embed;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < Ne; r++) {
        int bi = p->erb[r], t = p->ert[r];
        float *x = p->x0 + (size_t)r * d;
        const float *a, *pos = NULL;
        if (t < Np) {
            a = p->timg + ((size_t)bi * Np + t) * d, pos = ipos + (size_t)t * d;
        } else if (t < Np + nv) {
            a = m->w.vpt + (size_t)(t - Np) * d;
        } else {
            int j = t - Np - nv;
            if (j < c->n_ctx)
                a = m->w.coop + ((size_t)b->ctx_set[bi] * c->n_ctx + j) * d;
            else
                a = tok + (size_t)b->prefix[(size_t)bi * Lpb + j] * d;
            pos = tpos + (size_t)j * d;
        }
        if (pos)
            for (int k = 0; k < d; k++) x[k] = a[k] + pos[k];
        else
            memcpy(x, a, sizeof(float) * (size_t)d);
    }
    double t1 = pvlm_now();
    p->times[PVLM_TIME_STEM] += t1 - t0;
    float *x = p->x0;
    for (int l = 0; l < c->n_enc_layers; l++) {
        const pvlm_enc_layer *e = &m->w.enc[l];
        enc_a *a = &p->ea[l];
        if (nv > 0 && c->vpt_deep && l > 0) /* VPT-deep: layer l's own prompts replace the previous outputs */
            for (int bi = 0; bi < B; bi++)
                memcpy(x + ((size_t)p->eoff[bi] + (b->has_image[bi] ? Np : 0)) * d, m->w.vpt + (size_t)l * nv * d,
                       sizeof(float) * (size_t)nv * d);
        enc_layer_fwd(m, e, a, x, B);
        x = a->out;
    }
    pvlm_op_layernorm_fwd(p->E, 0, p->Em, p->Er, x, m->w.enc_lnf_w, m->w.enc_lnf_b, Ne, d, c->ln_eps);
    if (p->act16) { /* E stays fp32 too: decoding reads it (pvlm_model_encode) */
#pragma omp parallel for schedule(static)
        for (int r = 0; r < Ne; r++) pvlm_bf16_round_n(p->E16 + (size_t)r * d, p->E + (size_t)r * d, (size_t)d);
    }
    p->times[PVLM_TIME_ENC] += pvlm_now() - t1;
}

static int prepare(pvlm_model *m, const pvlm_batch *b, int need_targets, pvlm_err *err) {
    priv *p = m->priv;
    if (check_batch(m, b, need_targets, err)) return -1;
    int T = p->Np + m->cfg.n_vpt + b->Lp;
    if (ensure_arena(m, b->B, T, b->Ls, err)) return -1;
    pvlm_matmul_weights_changed(m->mm); /* every forward starts here: bf16 weight copies are made afresh */
    p->B = b->B, p->T = T, p->Lpb = b->Lp, p->Ls = b->Ls, p->have_fwd = 0, p->have_enc = 0;
    return 0;
}

int pvlm_model_encode(pvlm_model *m, const pvlm_batch *b, const float **E, const uint8_t **kmask, int *T,
                      pvlm_err *err) {
    if (prepare(m, b, 0, err)) return -1;
    priv *p = m->priv;
    encoder_forward(m, b);
    /* back to the padded [B,T] layout with the key mask (zero rows where hidden) */
    int d = m->cfg.d_model;
    pvlm_op_zero(p->Epad, (size_t)b->B * p->T * d);
    for (int r = 0; r < p->Ne; r++)
        memcpy(p->Epad + ((size_t)p->erb[r] * p->T + p->ert[r]) * d, p->E + (size_t)r * d, sizeof(float) * (size_t)d);
    *E = p->Epad, *kmask = p->kmask, *T = p->T;
    if (pvlm_matmul_check(m->mm, err)) return -1;
    p->have_enc = 1;
    return 0;
}

int pvlm_model_forward(pvlm_model *m, const pvlm_batch *b, double n_targets_global, float *loss,
                       pvlm_loss_stats *stats, double *sample_ce, pvlm_err *err) {
    if (prepare(m, b, 1, err)) return -1;
    priv *p = m->priv;
    const pvlm_model_config *c = &m->cfg;
    encoder_forward(m, b);
    double t0 = pvlm_now();
    int B = b->B, Ls = b->Ls, d = c->d_model, H = c->n_heads, V = c->vocab_size;
    int Nd = 0;
    size_t as = 0, ac = 0;
    for (int bi = 0; bi < B; bi++) {
        int n = 0;
        for (int j = 0; j < Ls; j++)
            if (b->targets[(size_t)bi * Ls + j] != PVLM_IGNORE) n = j + 1;
        p->doff[bi] = Nd, p->dlen[bi] = n, p->koff[bi] = p->eoff[bi], p->klen[bi] = p->elen[bi];
        p->aself[bi] = as, p->across[bi] = ac;
        as += (size_t)H * n * n, ac += (size_t)H * n * p->elen[bi];
        for (int j = 0; j < n; j++) {
            p->rtok[Nd + j] = b->dec_in[(size_t)bi * Ls + j], p->rtgt[Nd + j] = b->targets[(size_t)bi * Ls + j];
            p->rpos[Nd + j] = j, p->rsample[Nd + j] = bi;
        }
        Nd += n;
    }
    p->Nd = Nd;
    /* y0 [Nd,d] = tok_embed[dec_in] + dec_pos[j] over the packed rows */
    pvlm_op_embed_fwd(p->y0, p->rtok, m->w.tok_embed, p->rpos, m->w.dec_pos, Nd, d);
    float *y = p->y0;
    for (int l = 0; l < c->n_dec_layers; l++) {
        const pvlm_dec_layer *e = &m->w.dec[l];
        dec_a *a = &p->da[l];
        dec_layer_fwd(m, e, a, y, B);
        y = a->out;
    }
    pvlm_op_layernorm_fwd(p->yf, p->act16, p->yfm, p->yfr, y, m->w.dec_lnf_w, m->w.dec_lnf_b, Nd, d, c->ln_eps);
    double t1 = pvlm_now();
    p->times[PVLM_TIME_DEC] += t1 - t0;
    /* tied output projection and the loss */
    pvlm_op_linear_fwd(m->mm, p->probs, 0, p->yf, p->act16, m->w.tok_embed, NULL, Nd, d, V); /* logits [Nd,V] */
    pvlm_op_softmax_ce_fwd(p->probs, p->rowloss, p->rtgt, Nd, V, p->act16);
    pvlm_loss_stats st = {0};
    double total = 0.0;
    for (int bi = 0; bi < B; bi++) {
        double s = 0.0;
        int64_t n = 0;
        for (int r = p->doff[bi]; r < p->doff[bi] + p->dlen[bi]; r++) {
            s += p->rowloss[r];
            n += p->rtgt[r] != PVLM_IGNORE;
        }
        if (sample_ce) sample_ce[bi] = s;
        if (b->has_image[bi]) st.loss_sum_img += s, st.ntok_img += n;
        else st.loss_sum_txt += s, st.ntok_txt += n;
        total += s;
    }
    if (stats) *stats = st;
    if (loss) *loss = n_targets_global > 0 ? (float)(total / n_targets_global) : 0.0f;
    p->times[PVLM_TIME_HEAD] += pvlm_now() - t1;
    p->inv_ntg = n_targets_global > 0 ? 1.0 / n_targets_global : 0.0;
    if (pvlm_matmul_check(m->mm, err)) return -1;
    p->have_fwd = 1;
    return 0;
}

/* ------------------------------------------------------------------ backward */

/* Offset in floats of a gradient tensor inside m->grads (the grad-ready hook reports offsets). */
static size_t goff(const pvlm_model *m, const float *g) { return (size_t)(g - m->grads); }

static void report(pvlm_grad_ready_fn hook, void *ctx, size_t a, size_t b) {
    if (hook && b > a) hook(ctx, a, b - a);
}

static int encoder_backward(pvlm_model *m, const pvlm_batch *b, pvlm_grad_ready_fn hook, void *hook_ctx,
                            pvlm_err *err);

int pvlm_model_backward(pvlm_model *m, const pvlm_batch *b, const double *sample_scale,
                        pvlm_grad_ready_fn hook, void *hook_ctx, pvlm_err *err) {
    priv *p = m->priv;
    const pvlm_model_config *c = &m->cfg;
    if (!p->have_fwd || b->B != p->B || b->Ls != p->Ls || b->Lp != p->Lpb)
        return pvlm_err_set(err, PVLM_EINVAL, "model backward: no matching forward for this batch");
    int B = b->B, T = p->T, d = c->d_model, F = c->d_ff, H = c->n_heads, V = c->vocab_size;
    int Ne = p->Ne, Nd = p->Nd;
    (void)T;
    double t0 = pvlm_now();
    /* NULL sample_scale: the pretraining loss, d(loss)/d(sample CE sum) = 1/n_targets_global */
    for (int r = 0; r < Nd; r++) p->scale[r] = sample_scale ? (float)sample_scale[p->rsample[r]] : (float)p->inv_ntg;
    pvlm_op_softmax_ce_bwd(p->probs, p->rtgt, p->scale, Nd, V); /* probs -> dlogits */
    /* logits = yf @ tok^T */
    pvlm_op_linear_bwd(m->mm, p->dln, 0, m->g.tok_embed, NULL, p->probs, p->yf, p->act16, m->w.tok_embed, Nd, d, V);
    pvlm_op_zero(p->dy, (size_t)Nd * d);
    const float *ylast = p->da[c->n_dec_layers - 1].out;
    pvlm_op_layernorm_bwd(p->dy, m->g.dec_lnf_w, m->g.dec_lnf_b, p->dln, ylast, m->w.dec_lnf_w, p->yfm, p->yfr, Nd, d);
    double t1 = pvlm_now();
    p->times[PVLM_TIME_HEAD] += t1 - t0;
    pvlm_op_zero(p->dE, (size_t)Ne * d);
    for (int l = c->n_dec_layers - 1; l >= 0; l--) {
        const pvlm_dec_layer *e = &m->w.dec[l], *ge = &m->g.dec[l];
        dec_a *a = &p->da[l];
        const float *yin = l ? p->da[l - 1].out : p->y0;
        if (p->recompute == PVLM_RECOMPUTE_BLOCK) /* the layer again from its input, into the shared set */
            dec_layer_fwd(m, e, a = &p->rda, yin, B);
        else if (p->recompute == PVLM_RECOMPUTE_ATTENTION)
            dec_attention_fwd(m, a, B, 1, 1);
        /* MLP: out = xm2 + fc2(gelu(fc1(ln2(xm2)))) */
        pvlm_op_linear_bwd(m->mm, p->dfc, 0, ge->fc2_w, ge->fc2_b, p->dy, a->gl, p->act16, e->fc2_w, Nd, F, d);
        pvlm_op_linear_gelu_bwd(m->mm, p->dln, ge->fc1_w, ge->fc1_b, p->dfc, a->fc1, a->ln2, p->act16, e->fc1_w, Nd, d,
                                F);
        pvlm_op_layernorm_bwd(p->dy, ge->ln2_w, ge->ln2_b, p->dln, a->xm2, e->ln2_w, a->m2, a->r2, Nd, d);
        /* cross-attention: xm2 = xm1 + out(attn(q(lnc(xm1)), kv(E))) */
        pvlm_op_linear_bwd(m->mm, p->dao, 0, ge->cout_w, ge->cout_b, p->dy, a->aoc, p->act16, e->cout_w, Nd, d, d);
        pvlm_op_zero(p->dqc, (size_t)Nd * d);
        pvlm_op_zero(p->dkvc, (size_t)Ne * 2 * d);
        pvlm_op_attention_ragged_bwd(m->mm, p->dqc, p->dkvc, p->dkvc + d, p->datt, p->dao, d, a->attc, p->act16, a->qc,
                                     d, a->kvc, 2 * d, pvlm_matmul_elem(a->kvc, p->act16, d), 2 * d, B, H, d / H,
                                     p->doff, p->dlen, p->koff, p->klen, p->across);
        pvlm_op_linear_bwd(m->mm, p->dE, 1, ge->ckv_w, ge->ckv_b, p->dkvc, enc_out(p), p->act16, e->ckv_w, Ne, d,
                           2 * d);
        pvlm_op_linear_bwd(m->mm, p->dln, 0, ge->cq_w, ge->cq_b, p->dqc, a->lnc, p->act16, e->cq_w, Nd, d, d);
        pvlm_op_layernorm_bwd(p->dy, ge->lnc_w, ge->lnc_b, p->dln, a->xm1, e->lnc_w, a->mc, a->rc, Nd, d);
        /* causal self-attention: xm1 = y + out(attn(qkv(ln1(y)))) */
        pvlm_op_linear_bwd(m->mm, p->dao, 0, ge->out_w, ge->out_b, p->dy, a->ao, p->act16, e->out_w, Nd, d, d);
        pvlm_op_zero(p->dqkv, (size_t)Nd * 3 * d);
        pvlm_op_attention_ragged_bwd(m->mm, p->dqkv, p->dqkv + d, p->dqkv + 2 * d, p->datt, p->dao, d, a->att, p->act16,
                                     a->qkv, 3 * d, pvlm_matmul_elem(a->qkv, p->act16, d), 3 * d,
                                     pvlm_matmul_elem(a->qkv, p->act16, 2 * d), 3 * d, B, H, d / H, p->doff, p->dlen,
                                     p->doff, p->dlen, p->aself);
        pvlm_op_linear_bwd(m->mm, p->dln, 0, ge->qkv_w, ge->qkv_b, p->dqkv, a->ln1, p->act16, e->qkv_w, Nd, d, 3 * d);
        pvlm_op_layernorm_bwd(p->dy, ge->ln1_w, ge->ln1_b, p->dln, yin, e->ln1_w, a->m1, a->r1, Nd, d);
        report(hook, hook_ctx, goff(m, ge->ln1_w),
               l == c->n_dec_layers - 1 ? m->n_params : goff(m, m->g.dec[l + 1].ln1_w));
    }
    /* decoder embeddings (tok_embed and dec_pos are reported with the other embeddings at the end) */
    pvlm_op_embed_bwd(m->g.tok_embed, m->g.dec_pos, p->rtok, p->rpos, p->dy, Nd, d);
    p->times[PVLM_TIME_DEC] += pvlm_now() - t1;
    return encoder_backward(m, b, hook, hook_ctx, err);
}

/* Backward of the encoder from p->dE (d(loss)/d(final-LN encoder output), packed rows) into the encoder,
 * prompt, embedding and stem gradients: the second half of pvlm_model_backward, and all of
 * pvlm_model_encode_backward. */
static int encoder_backward(pvlm_model *m, const pvlm_batch *b, pvlm_grad_ready_fn hook, void *hook_ctx,
                            pvlm_err *err) {
    priv *p = m->priv;
    const pvlm_model_config *c = &m->cfg;
    int B = b->B, d = c->d_model, F = c->d_ff, H = c->n_heads, Ne = p->Ne, Np = p->Np, nv = c->n_vpt, Lpb = b->Lp;
    double t2 = pvlm_now();
    /* encoder */
    pvlm_op_zero(p->dx, (size_t)Ne * d);
    const float *xlast = p->ea[c->n_enc_layers - 1].out;
    pvlm_op_layernorm_bwd(p->dx, m->g.enc_lnf_w, m->g.enc_lnf_b, p->dE, xlast, m->w.enc_lnf_w, p->Em, p->Er, Ne, d);
    for (int l = c->n_enc_layers - 1; l >= 0; l--) {
        const pvlm_enc_layer *e = &m->w.enc[l], *ge = &m->g.enc[l];
        enc_a *a = &p->ea[l];
        const float *xin = l ? p->ea[l - 1].out : p->x0;
        if (p->recompute == PVLM_RECOMPUTE_BLOCK)
            enc_layer_fwd(m, e, a = &p->rea, xin, B);
        else if (p->recompute == PVLM_RECOMPUTE_ATTENTION)
            enc_attention_fwd(m, a, B);
        pvlm_op_linear_bwd(m->mm, p->dfc, 0, ge->fc2_w, ge->fc2_b, p->dx, a->gl, p->act16, e->fc2_w, Ne, F, d);
        pvlm_op_linear_gelu_bwd(m->mm, p->dln, ge->fc1_w, ge->fc1_b, p->dfc, a->fc1, a->ln2, p->act16, e->fc1_w, Ne, d,
                                F);
        pvlm_op_layernorm_bwd(p->dx, ge->ln2_w, ge->ln2_b, p->dln, a->xm, e->ln2_w, a->m2, a->r2, Ne, d);
        pvlm_op_linear_bwd(m->mm, p->dao, 0, ge->out_w, ge->out_b, p->dx, a->ao, p->act16, e->out_w, Ne, d, d);
        pvlm_op_zero(p->dqkv, (size_t)Ne * 3 * d);
        pvlm_op_attention_ragged_bwd(m->mm, p->dqkv, p->dqkv + d, p->dqkv + 2 * d, p->datt, p->dao, d, a->att, p->act16,
                                     a->qkv, 3 * d, pvlm_matmul_elem(a->qkv, p->act16, d), 3 * d,
                                     pvlm_matmul_elem(a->qkv, p->act16, 2 * d), 3 * d, B, H, d / H, p->eoff, p->elen,
                                     p->eoff, p->elen, p->aenc);
        pvlm_op_linear_bwd(m->mm, p->dln, 0, ge->qkv_w, ge->qkv_b, p->dqkv, a->ln1, p->act16, e->qkv_w, Ne, d, 3 * d);
        pvlm_op_layernorm_bwd(p->dx, ge->ln1_w, ge->ln1_b, p->dln, xin, e->ln1_w, a->m1, a->r1, Ne, d);
        if (nv > 0 && (c->vpt_deep || l == 0)) {
            /* prompt rows: their gradient goes to this layer's prompt set; under VPT-deep the previous
             * layer's outputs at these rows were replaced, so they receive nothing */
            float *gp = m->g.vpt + (size_t)(c->vpt_deep ? l : 0) * nv * d;
            for (int bi = 0; bi < B; bi++) {
                float *r = p->dx + ((size_t)p->eoff[bi] + (b->has_image[bi] ? Np : 0)) * d;
                for (int k = 0; k < nv * d; k++) gp[k] += r[k];
                if (l > 0) memset(r, 0, sizeof(float) * (size_t)nv * d);
            }
        }
        report(hook, hook_ctx, goff(m, ge->ln1_w),
               goff(m, l == c->n_enc_layers - 1 ? m->g.dec[0].ln1_w : m->g.enc[l + 1].ln1_w));
    }
    double t3 = pvlm_now();
    p->times[PVLM_TIME_ENC] += t3 - t2;
    /* encoder input embeddings: prefix text (or CoOp context) + positions, image tokens + positions */
    pvlm_op_zero(p->dtimg, (size_t)B * Np * d); /* text-only samples: no image rows */
    for (int r = 0; r < Ne; r++) { /* serial: fixed accumulation order */
        int bi = p->erb[r], t = p->ert[r];
        const float *g = p->dx + (size_t)r * d;
        if (t < Np) {
            memcpy(p->dtimg + ((size_t)bi * Np + t) * d, g, sizeof(float) * (size_t)d);
            float *gpos = m->g.img_pos + (size_t)t * d;
            for (int k = 0; k < d; k++) gpos[k] += g[k];
        } else if (t >= Np + nv) {
            int j = t - Np - nv;
            float *gt = j < c->n_ctx ? m->g.coop + ((size_t)b->ctx_set[bi] * c->n_ctx + j) * d
                                     : m->g.tok_embed + (size_t)b->prefix[(size_t)bi * Lpb + j] * d;
            float *gpos = m->g.enc_pos + (size_t)j * d;
            for (int k = 0; k < d; k++) gt[k] += g[k], gpos[k] += g[k];
        }
    }
    if (!p->conv) {
        pvlm_op_linear_bwd(m->mm, NULL, 0, m->g.patch_w, m->g.patch_b, p->dtimg, p->patches, 0, m->w.patch_w, B * Np,
                           p->K, d);
    } else {
        int S = c->image_size, H2 = S / 2, C = c->conv_channels, G = c->conv_groups, M = B * H2 * H2;
        pvlm_op_linear_bwd(m->mm, p->dpatch, 0, m->g.patch_w, m->g.patch_b, p->dtimg, p->patches, 0, m->w.patch_w,
                           B * Np, p->K, d);
        pvlm_op_zero(p->dmap, (size_t)M * C);
        pvlm_op_patchify_bwd(p->dmap, p->dpatch, B, H2, H2, C, c->patch_size / 2);
        pvlm_op_zero(p->dmap2, (size_t)M * C); /* running d(xs[i]) */
        pvlm_op_groupnorm_bwd(p->dmap2, m->g.gn_f_w, m->g.gn_f_b, p->dmap, p->xs[c->conv_blocks], m->w.gn_f_w,
                              p->gnfm, p->gnfr, B, H2 * H2, C, G);
        for (int i = c->conv_blocks - 1; i >= 0; i--) {
            /* xs[i+1] = xs[i] + conv(gelu(gn(xs[i]))) */
            pvlm_op_linear_bwd(m->mm, p->dcols, 0, m->g.stem[i].conv_w, m->g.stem[i].conv_b, p->dmap2, p->cols[i], 0,
                               m->w.stem[i].conv_w, M, 9 * C, C);
            pvlm_op_zero(p->dmap, (size_t)M * C);
            pvlm_op_im2col3_bwd(p->dmap, p->dcols, B, H2, H2, C);
            pvlm_op_gelu_bwd(p->dmap, 0, p->gn[i], p->dmap, (size_t)M * C);
            pvlm_op_groupnorm_bwd(p->dmap2, m->g.stem[i].gn_w, m->g.stem[i].gn_b, p->dmap, p->xs[i], m->w.stem[i].gn_w,
                                  p->gnm[i], p->gnr[i], B, H2 * H2, C, G);
        }
        pvlm_op_linear_bwd(m->mm, NULL, 0, m->g.conv_in_w, m->g.conv_in_b, p->dmap2, p->p0, 0, m->w.conv_in_w, M, 12,
                           C);
    }
    report(hook, hook_ctx, 0, goff(m, m->g.enc[0].ln1_w));
    p->times[PVLM_TIME_STEM] += pvlm_now() - t3;
    return pvlm_matmul_check(m->mm, err);
}

int pvlm_model_encode_backward(pvlm_model *m, const pvlm_batch *b, const float *dE, pvlm_err *err) {
    priv *p = m->priv;
    if (!p->have_enc || b->B != p->B || b->Lp != p->Lpb || b->Ls != p->Ls)
        return pvlm_err_set(err, PVLM_EINVAL, "model encode backward: no matching pvlm_model_encode for this batch");
    int d = m->cfg.d_model;
    /* the padded [B, T] layout of pvlm_model_encode back to the packed rows; hidden rows carry nothing */
    for (int r = 0; r < p->Ne; r++)
        memcpy(p->dE + (size_t)r * d, dE + ((size_t)p->erb[r] * p->T + p->ert[r]) * d, sizeof(float) * (size_t)d);
    return encoder_backward(m, b, NULL, NULL, err);
}

/* ------------------------------------------------------------------ FLOPs */

double pvlm_model_flops(const pvlm_model *m, const pvlm_batch *b) {
    const pvlm_model_config *c = &m->cfg;
    const priv *p = m->priv;
    double B = b->B, T = p->Np + c->n_vpt + b->Lp, Ls = b->Ls, d = c->d_model, F = c->d_ff, V = c->vocab_size;
    /* decoder rows actually computed: each sample's positions up to its last target (see priv) */
    double Nd = 0, self_tt = 0;
    for (int bi = 0; bi < b->B; bi++) {
        int n = 0;
        for (int j = 0; j < b->Ls; j++)
            if (b->targets[(size_t)bi * b->Ls + j] != PVLM_IGNORE) n = j + 1;
        Nd += n, self_tt += (double)n * n;
    }
    (void)Ls;
    /* encoder rows actually computed: each sample's visible tokens */
    double Ne = 0, enc_tt = 0, cross = 0;
    for (int bi = 0; bi < b->B; bi++) {
        int n = 0, nd = 0;
        for (int t = 0; t < (int)T; t++) n += enc_visible(c, p->Np, b, bi, t);
        for (int j = 0; j < b->Ls; j++)
            if (b->targets[(size_t)bi * b->Ls + j] != PVLM_IGNORE) nd = j + 1;
        Ne += n, enc_tt += (double)n * n, cross += (double)nd * n;
    }
    double Np = p->Np;
    /* a linear layer costs 2*N*In*Out forward and twice that backward (input and weight gradients);
     * attention costs 2 matmuls of 2*Tq*Tk*d forward and 4 backward (full score matrices, masked or not) */
    double enc = 6.0 * Ne * (3 * d * d + d * d + 2 * d * F) + 12.0 * enc_tt * d;
    double dec = 6.0 * Nd * (3 * d * d + d * d + d * d + d * d + 2 * d * F) + 6.0 * Ne * 2 * d * d +
                 12.0 * (self_tt + cross) * d;
    double head = 6.0 * Nd * d * V;
    double stem = 4.0 * B * Np * p->K * d; /* no input gradient for the patch projection of pixels */
    if (p->conv) {
        double M = B * (c->image_size / 2) * (c->image_size / 2), C = c->conv_channels;
        stem = 6.0 * B * Np * p->K * d + 4.0 * M * 12 * C + c->conv_blocks * 6.0 * M * 9 * C * C;
    }
    return stem + c->n_enc_layers * enc + c->n_dec_layers * dec + head;
}
