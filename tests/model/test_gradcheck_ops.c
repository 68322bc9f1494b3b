/* test_gradcheck_ops.c - every op's backward against central finite differences.
 *
 * Each op's output is contracted with a fixed random tensor R (objective L = sum(out * R), accumulated
 * in double); the analytic gradient is the op's backward with dout = R. Finite differences perturb one
 * input element by +-eps. Float forward passes bound the achievable agreement, so the check is
 * |fd - g| <= tol * max(|g| over the tensor) + tol * |g|.
 */
#include <stdint.h>

#include "core/rng.h"
#include "harness.h"
#include "model/ops.h"

static pvlm_rng g_rng;

static void fill(float *x, size_t n, float sd) {
    for (size_t i = 0; i < n; i++) x[i] = sd * (float)pvlm_rng_normal(&g_rng);
}
static double dotd(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

typedef double (*obj_fn)(void *ctx);

static void check_grad(const char *what, float *x, const float *g, size_t n, obj_fn f, void *ctx, float eps,
                       double tol) {
    double gmax = 0;
    for (size_t i = 0; i < n; i++) gmax = fabs(g[i]) > gmax ? fabs(g[i]) : gmax;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        float s = x[i];
        x[i] = s + eps;
        double lp = f(ctx);
        x[i] = s - eps;
        double lm = f(ctx);
        x[i] = s;
        double fd = (lp - lm) / (2.0 * eps);
        double e = fabs(fd - g[i]) / (gmax + fabs(g[i]) + 1e-12);
        if (e > worst) worst = e;
        CHECK_MSG(fabs(fd - g[i]) <= tol * (gmax + fabs(g[i])) + 1e-6, "%s[%zu]: fd %.8g vs analytic %.8g", what, i,
                  fd, g[i]);
    }
    printf("  %-28s n=%-5zu max rel err %.2e\n", what, n, worst);
}

/* ---------------------------------------------------------------- linear */
typedef struct { float in[5 * 7], W[4 * 7], b[4], out[5 * 4], R[5 * 4]; } lin_ctx;
static double lin_obj(void *v) {
    lin_ctx *c = v;
    pvlm_op_linear_fwd(NULL, c->out, 0, c->in, 0, c->W, c->b, 5, 7, 4);
    return dotd(c->out, c->R, 20);
}
static void test_linear(void) {
    lin_ctx c;
    fill(c.in, 35, 1), fill(c.W, 28, 0.5f), fill(c.b, 4, 0.5f), fill(c.R, 20, 1);
    float din[35], dW[28] = {0}, db[4] = {0};
    for (int i = 0; i < 35; i++) din[i] = 1.0f; /* din_acc: must add to it */
    pvlm_op_linear_bwd(NULL, din, 1, dW, db, c.R, c.in, 0, c.W, 5, 7, 4);
    for (int i = 0; i < 35; i++) din[i] -= 1.0f;
    check_grad("linear.in", c.in, din, 35, lin_obj, &c, 1e-2f, 1e-3);
    check_grad("linear.W", c.W, dW, 28, lin_obj, &c, 1e-2f, 1e-3);
    check_grad("linear.b", c.b, db, 4, lin_obj, &c, 1e-2f, 1e-3);
}

/* ---------------------------------------------------------------- layernorm */
typedef struct { float in[6 * 16], w[16], b[16], out[96], m[6], r[6], R[96]; } ln_ctx;
static double ln_obj(void *v) {
    ln_ctx *c = v;
    pvlm_op_layernorm_fwd(c->out, 0, c->m, c->r, c->in, c->w, c->b, 6, 16, 1e-5f);
    return dotd(c->out, c->R, 96);
}
static void test_layernorm(void) {
    ln_ctx c;
    fill(c.in, 96, 2), fill(c.w, 16, 1), fill(c.b, 16, 1), fill(c.R, 96, 1);
    float din[96] = {0}, dw[16] = {0}, db[16] = {0};
    ln_obj(&c);
    pvlm_op_layernorm_bwd(din, dw, db, c.R, c.in, c.w, c.m, c.r, 6, 16);
    check_grad("layernorm.in", c.in, din, 96, ln_obj, &c, 1e-2f, 2e-3);
    check_grad("layernorm.w", c.w, dw, 16, ln_obj, &c, 1e-2f, 1e-3);
    check_grad("layernorm.b", c.b, db, 16, ln_obj, &c, 1e-2f, 1e-3);
}

/* ---------------------------------------------------------------- gelu */
typedef struct { float in[50], out[50], R[50]; } gelu_ctx;
static double gelu_obj(void *v) {
    gelu_ctx *c = v;
    pvlm_op_gelu_fwd(c->out, 0, c->in, 50);
    return dotd(c->out, c->R, 50);
}
static void test_gelu(void) {
    gelu_ctx c;
    fill(c.in, 50, 2), fill(c.R, 50, 1);
    float din[50];
    pvlm_op_gelu_bwd(din, 0, c.in, c.R, 50);
    check_grad("gelu_tanh", c.in, din, 50, gelu_obj, &c, 1e-2f, 1e-3);
}

/* ---------------------------------------------------------------- attention */
enum { AB = 2, AH = 2, ADH = 3, ATQ = 4, ATK = 5, AD = AH * ADH };
/* The ragged (packed) form the model trains with, here with every sample at full length, so its
 * probabilities also equal the padded pvlm_op_attention_fwd that decoding uses. */
typedef struct {
    int causal;
    float qkv[AB * ATK * 3 * AD];   /* self: q,k,v in one buffer (strided); cross: q uses it with Tq rows */
    float kv[AB * ATK * 2 * AD];
    float out[AB * ATK * AD], att[AB * AH * ATK * ATK], R[AB * ATK * AD];
    uint8_t mask[AB * ATK];
    int qoff[AB], qlen[AB], koff[AB], klen[AB];
    size_t attoff[AB];
} att_ctx;
static void att_rows(att_ctx *c, int Tq) {
    for (int b = 0; b < AB; b++)
        c->qoff[b] = b * Tq, c->qlen[b] = Tq, c->koff[b] = b * ATK, c->klen[b] = ATK,
        c->attoff[b] = (size_t)b * AH * Tq * ATK;
}
static double att_obj(void *v) {
    att_ctx *c = v;
    if (c->causal) {
        att_rows(c, ATK);
        pvlm_op_attention_ragged_fwd(NULL, c->out, 0, AD, c->att, 0, c->qkv, 3 * AD, c->qkv + AD, 3 * AD,
                                     c->qkv + 2 * AD, 3 * AD, NULL, 1, AB, AH, ADH, c->qoff, c->qlen, c->koff, c->klen,
                                     c->attoff);
        return dotd(c->out, c->R, AB * ATK * AD);
    }
    att_rows(c, ATQ);
    pvlm_op_attention_ragged_fwd(NULL, c->out, 0, AD, c->att, 0, c->qkv, AD, c->kv, 2 * AD, c->kv + AD, 2 * AD, c->mask,
                                 0, AB, AH, ADH, c->qoff, c->qlen, c->koff, c->klen, c->attoff);
    return dotd(c->out, c->R, AB * ATQ * AD);
}
static void test_attention(void) {
    static att_ctx c;
    fill(c.qkv, sizeof c.qkv / 4, 1), fill(c.kv, sizeof c.kv / 4, 1), fill(c.R, sizeof c.R / 4, 1);
    for (int i = 0; i < AB * ATK; i++) c.mask[i] = 1;
    c.mask[3] = 0, c.mask[4] = 0, c.mask[ATK + 0] = 0; /* key padding in both samples */
    float datt[AB * AH * ATK * ATK];
    /* cross-attention with key-padding mask */
    c.causal = 0;
    static float dq[AB * ATK * 3 * AD], dkv[AB * ATK * 2 * AD];
    memset(dq, 0, sizeof dq), memset(dkv, 0, sizeof dkv);
    att_obj(&c);
    /* decoding's padded forward gives the same probabilities and outputs */
    static float out2[AB * ATK * AD], att2[AB * AH * ATK * ATK];
    pvlm_op_attention_fwd(NULL, out2, AD, att2, c.qkv, AD, c.kv, 2 * AD, c.kv + AD, 2 * AD, c.mask, 0, AB, AH, ATQ, ATK,
                          ADH);
    CHECK(!memcmp(out2, c.out, sizeof(float) * AB * ATQ * AD) &&
          !memcmp(att2, c.att, sizeof(float) * AB * AH * ATQ * ATK));
    pvlm_op_attention_ragged_bwd(NULL, dq, dkv, dkv + AD, datt, c.R, AD, c.att, 0, c.qkv, AD, c.kv, 2 * AD, c.kv + AD,
                                 2 * AD, AB, AH, ADH, c.qoff, c.qlen, c.koff, c.klen, c.attoff);
    for (int i = 0; i < ATQ; i++) CHECK(c.att[i * ATK + 3] == 0.0f && c.att[i * ATK + 4] == 0.0f);
    for (int j = 0; j < AD; j++) CHECK(dkv[3 * 2 * AD + j] == 0.0f); /* masked key gets no gradient */
    check_grad("attention.cross.q", c.qkv, dq, AB * ATQ * AD, att_obj, &c, 1e-2f, 2e-3);
    check_grad("attention.cross.kv", c.kv, dkv, sizeof c.kv / 4, att_obj, &c, 1e-2f, 2e-3);
    /* causal self-attention on a strided qkv buffer */
    c.causal = 1;
    memset(dq, 0, sizeof dq);
    att_obj(&c);
    pvlm_op_attention_ragged_bwd(NULL, dq, dq + AD, dq + 2 * AD, datt, c.R, AD, c.att, 0, c.qkv, 3 * AD, c.qkv + AD,
                                 3 * AD, c.qkv + 2 * AD, 3 * AD, AB, AH, ADH, c.qoff, c.qlen, c.koff, c.klen, c.attoff);
    CHECK(c.att[0 * ATK + 1] == 0.0f && c.att[1 * ATK + 2] == 0.0f); /* future keys invisible */
    check_grad("attention.causal.qkv", c.qkv, dq, sizeof c.qkv / 4, att_obj, &c, 1e-2f, 2e-3);
}

/* ---------------------------------------------------------------- embedding */
typedef struct { float table[10 * 4], pos[3 * 4], out[6 * 4], R[24]; int32_t ids[6]; int pids[6]; } emb_ctx;
static double emb_obj(void *v) {
    emb_ctx *c = v;
    pvlm_op_embed_fwd(c->out, c->ids, c->table, c->pids, c->pos, 6, 4);
    return dotd(c->out, c->R, 24);
}
static void test_embed(void) {
    emb_ctx c;
    fill(c.table, 40, 1), fill(c.pos, 12, 1), fill(c.R, 24, 1);
    int32_t ids[6] = {3, 7, 3, 0, 9, 7};
    int pids[6] = {0, 1, 2, 0, 1, 0}; /* packed rows: positions restart per sample */
    memcpy(c.ids, ids, sizeof ids), memcpy(c.pids, pids, sizeof pids);
    float dt[40] = {0}, dp[12] = {0};
    pvlm_op_embed_bwd(dt, dp, c.ids, c.pids, c.R, 6, 4);
    check_grad("embedding.table", c.table, dt, 40, emb_obj, &c, 1e-2f, 1e-3);
    check_grad("embedding.pos", c.pos, dp, 12, emb_obj, &c, 1e-2f, 1e-3);
}

/* ---------------------------------------------------------------- softmax cross-entropy */
typedef struct { float logits[4 * 7], work[28], scale[4]; int32_t t[4]; double loss[4]; } ce_ctx;
static double ce_obj(void *v) {
    ce_ctx *c = v;
    memcpy(c->work, c->logits, sizeof c->work);
    pvlm_op_softmax_ce_fwd(c->work, c->loss, c->t, 4, 7);
    double s = 0;
    for (int i = 0; i < 4; i++) s += c->scale[i] * c->loss[i];
    return s;
}
static void test_ce(void) {
    ce_ctx c;
    fill(c.logits, 28, 3);
    int32_t t[4] = {2, -1, 6, 0};
    float sc[4] = {0.5f, 0.7f, -1.3f, 2.0f};
    memcpy(c.t, t, sizeof t), memcpy(c.scale, sc, sizeof sc);
    ce_obj(&c);
    CHECK(c.loss[1] == 0.0);
    float g[28];
    memcpy(g, c.work, sizeof g);
    pvlm_op_softmax_ce_bwd(g, c.t, c.scale, 4, 7);
    check_grad("softmax_ce.logits", c.logits, g, 28, ce_obj, &c, 1e-2f, 1e-3);
}

/* ---------------------------------------------------------------- patch stem (patchify + linear) */
enum { PB = 2, PS = 4, PC = 3, PP = 2, PNP = 4, PK = PC * PP * PP, PD = 5 };
typedef struct { float img[PB * PS * PS * PC], W[PD * PK], b[PD], patches[PB * PNP * PK], out[PB * PNP * PD], R[PB * PNP * PD]; } pst_ctx;
static double pst_obj(void *v) {
    pst_ctx *c = v;
    pvlm_op_patchify_fwd(c->patches, c->img, PB, PS, PS, PC, PP);
    pvlm_op_linear_fwd(NULL, c->out, 0, c->patches, 0, c->W, c->b, PB * PNP, PK, PD);
    return dotd(c->out, c->R, PB * PNP * PD);
}
static void test_patch_stem(void) {
    static pst_ctx c;
    fill(c.img, sizeof c.img / 4, 1), fill(c.W, sizeof c.W / 4, 0.5f), fill(c.b, PD, 0.5f), fill(c.R, sizeof c.R / 4, 1);
    pst_obj(&c);
    /* (c, y, x) flattening: patch 1 (top row, second column) element (c=2, y=1, x=0) */
    CHECK(c.patches[1 * PK + (2 * PP + 1) * PP + 0] == c.img[((0 * PS + 1) * PS + 2) * PC + 2]);
    static float dpatch[PB * PNP * PK], dimg[PB * PS * PS * PC], dW[PD * PK], db[PD];
    pvlm_op_linear_bwd(NULL, dpatch, 0, dW, db, c.R, c.patches, 0, c.W, PB * PNP, PK, PD);
    pvlm_op_patchify_bwd(dimg, dpatch, PB, PS, PS, PC, PP);
    check_grad("patch_stem.pixels", c.img, dimg, sizeof c.img / 4, pst_obj, &c, 1e-2f, 1e-3);
    check_grad("patch_stem.weight", c.W, dW, sizeof c.W / 4, pst_obj, &c, 1e-2f, 1e-3);
    check_grad("patch_stem.bias", c.b, db, PD, pst_obj, &c, 1e-2f, 1e-3);
}

/* ---------------------------------------------------------------- 3x3 conv (im2col + linear) and group norm */
enum { CB = 2, CH = 4, CW = 3, CC = 4, CG = 2, CO = 3 };
typedef struct {
    float x[CB * CH * CW * CC], gw[CC], gb[CC], g[CB * CH * CW * CC], gm[CB * CG], gr[CB * CG];
    float cols[CB * CH * CW * CC * 9], W[CO * CC * 9], b[CO], out[CB * CH * CW * CO], R[CB * CH * CW * CO];
} conv_ctx;
static double conv_obj(void *v) {
    conv_ctx *c = v;
    pvlm_op_groupnorm_fwd(c->g, c->gm, c->gr, c->x, c->gw, c->gb, CB, CH * CW, CC, CG, 1e-5f);
    pvlm_op_im2col3_fwd(c->cols, c->g, CB, CH, CW, CC);
    pvlm_op_linear_fwd(NULL, c->out, 0, c->cols, 0, c->W, c->b, CB * CH * CW, CC * 9, CO);
    return dotd(c->out, c->R, sizeof c->out / 4);
}
static void test_conv_groupnorm(void) {
    static conv_ctx c;
    fill(c.x, sizeof c.x / 4, 2), fill(c.gw, CC, 1), fill(c.gb, CC, 1), fill(c.W, sizeof c.W / 4, 0.5f);
    fill(c.b, CO, 0.5f), fill(c.R, sizeof c.R / 4, 1);
    conv_obj(&c);
    static float dcols[sizeof c.cols / 4], dg[sizeof c.g / 4], dx[sizeof c.x / 4], dW[sizeof c.W / 4], db[CO], dgw[CC],
        dgb[CC];
    pvlm_op_linear_bwd(NULL, dcols, 0, dW, db, c.R, c.cols, 0, c.W, CB * CH * CW, CC * 9, CO);
    pvlm_op_im2col3_bwd(dg, dcols, CB, CH, CW, CC);
    pvlm_op_groupnorm_bwd(dx, dgw, dgb, dg, c.x, c.gw, c.gm, c.gr, CB, CH * CW, CC, CG);
    check_grad("conv3x3.weight", c.W, dW, sizeof c.W / 4, conv_obj, &c, 1e-2f, 1e-3);
    check_grad("conv3x3.bias", c.b, db, CO, conv_obj, &c, 1e-2f, 1e-3);
    check_grad("groupnorm.weight", c.gw, dgw, CC, conv_obj, &c, 1e-2f, 1e-3);
    check_grad("groupnorm.bias", c.gb, dgb, CC, conv_obj, &c, 1e-2f, 1e-3);
    check_grad("conv3x3+groupnorm.in", c.x, dx, sizeof c.x / 4, conv_obj, &c, 1e-2f, 3e-3);
}

int main(void) {
    pvlm_rng_seed(&g_rng, 1234, 1);
    test_linear();
    test_layernorm();
    test_gelu();
    test_attention();
    test_embed();
    test_ce();
    test_patch_stem();
    test_conv_groupnorm();
    return pvlm_test_done("gradcheck_ops");
}
