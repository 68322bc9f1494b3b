/* test_gradcheck_ops.c - every op's backward against central finite differences.
 *
 * Each op's output is contracted with a fixed random tensor R (objective L = sum(out * R), accumulated
 * in double); the analytic gradient is the op's backward with dout = R. Finite differences perturb one
 * input element by +-eps. Float forward passes bound the achievable agreement, so the check is
 * |fd - g| <= tol * max(|g| over the tensor) + tol * |g|. LayerNorm's vectorised rows are also checked bit for
 * bit against its definition a row at a time, and the column sums (bias and LayerNorm parameter gradients),
 * which split long columns into row groups, for bits that do not depend on the thread count.
 */
#include <stdint.h>

#include "core/rng.h"
#include "core/threads.h"
#include "harness.h"
#include "model/matmul.h"
#include "model/ops.h"
#include "model/simd.h"

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
/* 18 rows of 20: with AVX-512 the op takes 16 rows at once and 16 columns at a time, so both tails are here */
enum { LN_N = 18, LN_C = 20 };
typedef struct {
    float in[LN_N * LN_C], w[LN_C], b[LN_C], out[LN_N * LN_C], m[LN_N], r[LN_N], R[LN_N * LN_C];
} ln_ctx;
static double ln_obj(void *v) {
    ln_ctx *c = v;
    pvlm_op_layernorm_fwd(c->out, 0, c->m, c->r, c->in, c->w, c->b, LN_N, LN_C, 1e-5f);
    return dotd(c->out, c->R, LN_N * LN_C);
}

/* LayerNorm as defined, a row at a time: each row's sums over its columns in order, then the elementwise
 * terms; the op's rows (16 at a time in AVX-512 lanes where the CPU has them) must give these bits. */
static void ln_ref(float *out, float *mean, float *rstd, float *din, float *dw, float *db, const float *dout,
                   const float *in, const float *w, const float *b, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C, *dy = dout + (size_t)n * C;
        float s = 0.0f, v = 0.0f, s1 = 0.0f, s2 = 0.0f;
        for (int c = 0; c < C; c++) s += x[c];
        float m = s / C;
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        float r = 1.0f / sqrtf(v / C + 1e-5f);
        mean[n] = m, rstd[n] = r;
        for (int c = 0; c < C; c++) out[(size_t)n * C + c] = (x[c] - m) * r * w[c] + b[c];
        for (int c = 0; c < C; c++) s1 += dy[c] * w[c], s2 += dy[c] * w[c] * ((x[c] - m) * r);
        for (int c = 0; c < C; c++) din[(size_t)n * C + c] += r * (dy[c] * w[c] - s1 / C - (x[c] - m) * r * (s2 / C));
    }
    for (int c = 0; c < C; c++) { /* the parameters' gradients: column sums in row order */
        float aw = 0.0f, ab = 0.0f;
        for (int n = 0; n < N; n++) {
            float dy = dout[(size_t)n * C + c];
            aw += dy * (in[(size_t)n * C + c] - mean[n]) * rstd[n], ab += dy;
        }
        dw[c] += aw, db[c] += ab;
    }
}

static void ln_bits_case(int N, int C) {
    size_t n = (size_t)N * C;
    float *in = malloc(4 * n), *dout = malloc(4 * n), *out = malloc(4 * n), *ro = malloc(4 * n);
    float *din = malloc(4 * n), *rdin = malloc(4 * n), *w = malloc(4 * C), *b = malloc(4 * C);
    float *dw = calloc(C, 4), *db = calloc(C, 4), *rdw = calloc(C, 4), *rdb = calloc(C, 4);
    float *m = malloc(4 * N), *r = malloc(4 * N), *rm = malloc(4 * N), *rr = malloc(4 * N);
    uint16_t *o16 = malloc(2 * n), *r16 = malloc(2 * n);
    fill(in, n, 2), fill(dout, n, 1), fill(w, C, 1), fill(b, C, 1), fill(din, n, 1);
    memcpy(rdin, din, 4 * n); /* the backward adds to din */
    ln_ref(ro, rm, rr, rdin, rdw, rdb, dout, in, w, b, N, C);
    pvlm_op_layernorm_fwd(out, 0, m, r, in, w, b, N, C, 1e-5f);
    CHECK_MSG(!memcmp(out, ro, 4 * n) && !memcmp(m, rm, 4 * N) && !memcmp(r, rr, 4 * N),
              "layernorm forward %d x %d: not the bits of the row-at-a-time definition", N, C);
    pvlm_op_layernorm_fwd(o16, 1, m, r, in, w, b, N, C, 1e-5f);
    pvlm_bf16_round_n(r16, ro, n);
    CHECK_MSG(!memcmp(o16, r16, 2 * n), "layernorm forward %d x %d, bf16 output: not the rounded bits", N, C);
    pvlm_op_layernorm_bwd(din, dw, db, dout, in, w, m, r, N, C);
    CHECK_MSG(!memcmp(din, rdin, 4 * n) && !memcmp(dw, rdw, 4 * C) && !memcmp(db, rdb, 4 * C),
              "layernorm backward %d x %d: not the bits of the row-at-a-time definition", N, C);
    free(in), free(dout), free(out), free(ro), free(din), free(rdin), free(w), free(b), free(dw), free(db);
    free(rdw), free(rdb), free(m), free(r), free(rm), free(rr), free(o16), free(r16);
}

static void test_layernorm(void) {
    ln_ctx c;
    enum { n = LN_N * LN_C };
    fill(c.in, n, 2), fill(c.w, LN_C, 1), fill(c.b, LN_C, 1), fill(c.R, n, 1);
    float din[n] = {0}, dw[LN_C] = {0}, db[LN_C] = {0};
    ln_obj(&c);
    pvlm_op_layernorm_bwd(din, dw, db, c.R, c.in, c.w, c.m, c.r, LN_N, LN_C);
    check_grad("layernorm.in", c.in, din, n, ln_obj, &c, 1e-2f, 2e-3);
    check_grad("layernorm.w", c.w, dw, LN_C, ln_obj, &c, 1e-2f, 1e-3);
    check_grad("layernorm.b", c.b, db, LN_C, ln_obj, &c, 1e-2f, 1e-3);
    int shapes[][2] = {{37, 40}, {35, 512}, {16, 24}, {5, 33}, {48, 64}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) ln_bits_case(shapes[i][0], shapes[i][1]);
    printf("  layernorm: forward (fp32 and bf16 output) and backward bits equal the row-at-a-time definition\n");
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
typedef struct {
    float logits[4 * 7], work[28], scale[4];
    int32_t t[4];
    double loss[4];
    int fast;
} ce_ctx;
static double ce_obj(void *v) {
    ce_ctx *c = v;
    memcpy(c->work, c->logits, sizeof c->work);
    pvlm_op_softmax_ce_fwd(c->work, c->loss, c->t, 4, 7, c->fast);
    double s = 0;
    for (int i = 0; i < 4; i++) s += c->scale[i] * c->loss[i];
    return s;
}

/* The fast path (bf16 precision: fast_expf and partial sums) against glibc's expf in order, on rows of 1000
 * classes (62 blocks of 16 and a partial one): probabilities within 1e-6 relative (fast_expf's error is 2.3e-7,
 * the sums' rounding below that), losses within 1e-6, an ignored row's loss 0. */
static void ce_fast_case(void) {
    enum { N = 5, V = 1000 };
    float *x = malloc(sizeof(float) * N * V), *p0 = malloc(sizeof(float) * N * V), *p1 = malloc(sizeof(float) * N * V);
    int32_t t[N] = {3, -1, 999, 0, 517};
    double l0[N], l1[N], worst = 0.0;
    fill(x, (size_t)N * V, 4);
    memcpy(p0, x, sizeof(float) * N * V), memcpy(p1, x, sizeof(float) * N * V);
    pvlm_op_softmax_ce_fwd(p0, l0, t, N, V, 0);
    pvlm_op_softmax_ce_fwd(p1, l1, t, N, V, 1);
    for (int i = 0; i < N * V; i++) {
        double e = fabs((double)p1[i] - p0[i]) / p0[i];
        worst = e > worst ? e : worst;
    }
    CHECK_MSG(worst <= 1e-6, "fast softmax: probabilities %.2e from the exact ones", worst);
    for (int i = 0; i < N; i++)
        CHECK_MSG(fabs(l1[i] - l0[i]) <= 1e-6, "fast softmax: row %d loss %.9g vs %.9g", i, l1[i], l0[i]);
    CHECK(l1[1] == 0.0);
    printf("  softmax_ce fast path: probabilities within %.2e of glibc's expf, losses within 1e-6\n", worst);
    free(x), free(p0), free(p1);
}

static void test_ce(void) {
    ce_ctx c;
    fill(c.logits, 28, 3);
    int32_t t[4] = {2, -1, 6, 0};
    float sc[4] = {0.5f, 0.7f, -1.3f, 2.0f};
    memcpy(c.t, t, sizeof t), memcpy(c.scale, sc, sizeof sc);
    for (c.fast = 0; c.fast < 2; c.fast++) {
        ce_obj(&c);
        CHECK(c.loss[1] == 0.0);
        float g[28];
        memcpy(g, c.work, sizeof g);
        pvlm_op_softmax_ce_bwd(g, c.t, c.scale, 4, 7);
        check_grad(c.fast ? "softmax_ce.logits (fast)" : "softmax_ce.logits", c.logits, g, 28, ce_obj, &c, 1e-2f, 1e-3);
    }
    ce_fast_case();
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

/* ---------------------------------------------------------------- column sums */

/* The bias gradient (pvlm_matmul_colsum, fp32 and bf16 contexts) and LayerNorm's parameter gradients on R x C
 * with R long enough for several row groups: the same bits at 1, 2 and 3 threads (the groups depend on R and C
 * only), and within the float summation bound of the double sums: (R - 1) u sum|x| per column, u = 2^-24. */
static void colsum_case(pvlm_matmul *mm, int R, int C) {
    size_t n = (size_t)R * C;
    float *x = malloc(4 * n), *dy = malloc(4 * n), *mean = malloc(4 * R), *rstd = malloc(4 * R);
    float *db[3], *dw[3], *lb[3], *din = malloc(4 * n);
    fill(x, n, 1), fill(dy, n, 1), fill(mean, R, 0.1f), fill(rstd, R, 1);
    int bad = 0;
    for (int t = 0; t < 3; t++) {
        pvlm_threads_set(t + 1);
        db[t] = calloc(C, 4), dw[t] = calloc(C, 4), lb[t] = calloc(C, 4);
        pvlm_matmul_colsum(mm, db[t], x, R, C, C);
        pvlm_op_layernorm_bwd(din, dw[t], lb[t], dy, x, x, mean, rstd, R, C); /* w = x: any values do */
        if (t) bad += memcmp(db[t], db[0], 4 * C) || memcmp(dw[t], dw[0], 4 * C) || memcmp(lb[t], lb[0], 4 * C);
    }
    pvlm_threads_set(1);
    CHECK_MSG(!bad, "column sums %d x %d (%s): bits depend on the thread count", R, C, mm ? "bf16 context" : "fp32");
    double worst = 0;
    for (int c = 0; c < C; c++) {
        double s = 0, a = 0, sw = 0, aw = 0, sb = 0, ab = 0;
        for (int r = 0; r < R; r++) {
            size_t i = (size_t)r * C + c;
            double w = (double)(float)(dy[i] * (x[i] - mean[r]) * rstd[r]); /* the op's float terms */
            s += x[i], a += fabs(x[i]), sw += w, aw += fabs(w), sb += dy[i], ab += fabs(dy[i]);
        }
        double u = (R - 1) * 0x1p-24;
        double e =
            fmax(fabs(db[0][c] - s) / (u * a), fmax(fabs(dw[0][c] - sw) / (u * aw), fabs(lb[0][c] - sb) / (u * ab)));
        worst = fmax(worst, e);
    }
    CHECK_MSG(worst <= 1.0, "column sums %d x %d: error %.2f x the summation bound", R, C, worst);
    for (int t = 0; t < 3; t++) free(db[t]), free(dw[t]), free(lb[t]);
    free(x), free(dy), free(mean), free(rstd), free(din);
}

static void test_column_sums(void) {
    int shapes[][2] = {{300, 96}, {1000, 40}, {1865, 512}, {200, 1100}, {130, 2100}};
    pvlm_matmul *mm = NULL;
    pvlm_err err;
    if (!pvlm_bf16_available(NULL, 0)) setenv("PVLM_BF16_EMULATE", "1", 1); /* the emulation's portable pass */
    CHECK_OK(pvlm_matmul_create(&mm, PVLM_PREC_BF16, &err), &err);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        colsum_case(NULL, shapes[i][0], shapes[i][1]);
        if (mm) colsum_case(mm, shapes[i][0], shapes[i][1]);
    }
    pvlm_matmul_free(mm);
    printf("  column sums: the same bits at 1, 2 and 3 threads, within the summation bound\n");
}

/* The elementwise loops compiled once per vector tier (model/simd.h) and LayerNorm's AVX-512 rows: every tier
 * this CPU has (capped by PVLM_MAX_ISA) gives the baseline tier's bits, on lengths that leave a tail in every
 * vector width and on values from deep in GELU's and exp's saturation: GELU forward (fp32 and bf16 output) and
 * backward (overwriting and accumulating), GELU's backward folded into a bias-gradient pass, the fast softmax
 * cross-entropy, LayerNorm forward and backward. */
enum { TN = 37, TC = 203, TSZ = TN * TC };
typedef struct {
    float gf[TSZ], gb[TSZ], ga[TSZ], din[TN * 11], dw[11 * TC], db[TC], dg[TSZ], probs[TSZ], lo[TSZ], mean[TN],
        rstd[TN], ldin[TSZ], ldw[TC], ldb[TC];
    uint16_t g16[TSZ], lo16[TSZ];
    double loss[TN];
} tier_out;

static void tier_run(tier_out *o, const float *x, const float *dy, const float *in, const float *W, const float *w,
                     const float *b, const int32_t *tg) {
    memset(o, 0, sizeof *o);
    pvlm_op_gelu_fwd(o->gf, 0, x, TSZ);
    pvlm_op_gelu_fwd(o->g16, 1, x, TSZ);
    pvlm_op_gelu_bwd(o->gb, 0, x, dy, TSZ);
    memcpy(o->ga, dy, sizeof o->ga);
    pvlm_op_gelu_bwd(o->ga, 1, x, dy, TSZ);
    memcpy(o->dg, dy, sizeof o->dg); /* [TN, TC] = gelu(linear(in [TN, 11])) */
    pvlm_op_linear_gelu_bwd(NULL, o->din, o->dw, o->db, o->dg, x, in, 0, W, TN, 11, TC);
    memcpy(o->probs, x, sizeof o->probs);
    pvlm_op_softmax_ce_fwd(o->probs, o->loss, tg, TN, TC, 1);
    pvlm_op_layernorm_fwd(o->lo, 0, o->mean, o->rstd, x, w, b, TN, TC, 1e-5f);
    pvlm_op_layernorm_fwd(o->lo16, 1, o->mean, o->rstd, x, w, b, TN, TC, 1e-5f);
    pvlm_op_layernorm_bwd(o->ldin, o->ldw, o->ldb, dy, x, w, o->mean, o->rstd, TN, TC);
}

static void test_simd_tiers(void) {
    static float x[TSZ], dy[TSZ], in[TN * 11], W[TC * 11], w[TC], b[TC];
    static int32_t tg[TN];
    static tier_out ref, got;
    fill(x, TSZ, 4.0f), fill(dy, TSZ, 1.0f), fill(in, TN * 11, 1.0f), fill(W, TC * 11, 0.3f), fill(b, TC, 0.1f);
    x[0] = 0.0f, x[1] = -0.0f, x[2] = 60.0f, x[3] = -60.0f, x[4] = 1e-30f, x[5] = -95.0f; /* exp saturates */
    fill(w, TC, 0.1f);
    for (int i = 0; i < TC; i++) w[i] += 1.0f;
    for (int i = 0; i < TN; i++) tg[i] = i % 5 == 0 ? -1 : (i * 37) % TC;
    unsetenv("PVLM_MAX_ISA");
    int top = (int)pvlm_simd_isa();
    for (int t = 0; t <= top; t++) {
        setenv("PVLM_MAX_ISA", pvlm_simd_isa_name((pvlm_isa)t), 1);
        CHECK(pvlm_simd_isa() == (pvlm_isa)t);
        tier_run(t ? &got : &ref, x, dy, in, W, w, b, tg);
        if (t)
            CHECK_MSG(!memcmp(&got, &ref, sizeof ref), "vector tier %s: not the baseline's bits",
                      pvlm_simd_isa_name((pvlm_isa)t));
    }
    unsetenv("PVLM_MAX_ISA");
    printf("  vector tiers: base up to %s give the same bits (GELU, its folded backward, fast softmax, LayerNorm)\n",
           pvlm_simd_isa_name((pvlm_isa)top));
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
    test_column_sums();
    test_simd_tiers();
    return pvlm_test_done("gradcheck_ops");
}
