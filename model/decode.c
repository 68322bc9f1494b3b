/* decode.c - see decode.h.
 *
 * Beam search keeps K hypotheses per sample; each step scores the K*V continuations, takes the best 2K,
 * moves those ending in eos to the finished list (score normalised by len^alpha, Wu et al. 2016 use a
 * similar GNMT length penalty; here the plain power form as in HuggingFace generate) and keeps the best K
 * others alive. A sample is done when K hypotheses have finished (early stopping) or max_len is reached
 * (alive hypotheses are then finished without eos). Greedy decoding is the K = 1 case: the argmax token
 * (first index on ties, as torch.argmax), stopping at eos.
 */
#include "decode.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "model/ops.h"

void pvlm_decode_config_default(pvlm_decode_config *c, const pvlm_model_config *mc) {
    memset(c, 0, sizeof *c);
    c->beam_size = 1;
    c->max_len = mc->max_suffix_len;
    c->min_len = 0;
    c->length_penalty = 0.0;
    c->no_repeat_ngram = 0;
}

typedef struct hyp {
    double score; /* normalised */
    double logp;
    int len;
    int32_t ids[512];
} hyp;

/* Self-attention of one new query per row over that row's cached keys 0..t (all visible). */
static void cached_attention(float *out, const float *q, int ldq, const float *cache, int Lmax, int R, int H, int dh,
                             int t, float *scores) {
    int d = H * dh;
    float scale = 1.0f / sqrtf((float)dh);
#pragma omp parallel for schedule(static)
    for (int rh = 0; rh < R * H; rh++) {
        int r = rh / H, h = rh % H;
        const float *kc = cache + (size_t)r * Lmax * 2 * d + h * dh, *vc = kc + d;
        float *s = scores + (size_t)rh * Lmax;
        /* s[0..t] = K q * scale */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, t + 1, dh, scale, kc, 2 * d, q + (size_t)r * ldq + h * dh, 1, 0.0f, s, 1);
        float mx = s[0];
        for (int j = 1; j <= t; j++) mx = s[j] > mx ? s[j] : mx;
        float sum = 0.0f;
        for (int j = 0; j <= t; j++) s[j] = expf(s[j] - mx), sum += s[j];
        for (int j = 0; j <= t; j++) s[j] /= sum;
        /* out = V^T s */
        cblas_sgemv(CblasRowMajor, CblasTrans, t + 1, dh, 1.0f, vc, 2 * d, s, 1, 0.0f, out + (size_t)r * d + h * dh, 1);
    }
}

static int banned_ngram(const int32_t *h, int len, int n, int32_t tok) {
    if (n <= 0 || len + 1 < n) return 0;
    /* the n-gram ending with tok is h[len-n+1 .. len-1], tok */
    for (int i = 0; i + n - 1 < len; i++) {
        int same = 1;
        for (int k = 0; k < n - 1 && same; k++) same = h[i + k] == h[len - n + 1 + k];
        if (same && h[i + n - 1] == tok) return 1;
    }
    return 0;
}

int pvlm_decode(pvlm_model *m, const pvlm_batch *b, const pvlm_decode_config *c, int32_t *out_ids,
                int32_t *out_len, float *out_logp, pvlm_err *err) {
    const pvlm_model_config *mc = &m->cfg;
    int K = c->beam_size, Lmax = c->max_len, B = b->B;
    if (K < 1 || K > 64 || Lmax < 1 || Lmax > mc->max_suffix_len || Lmax > 512 || c->min_len < 0)
        return pvlm_err_set(err, PVLM_EINVAL, "decode: beam_size %d (1..64) / max_len %d (1..%d) / min_len %d invalid", K,
                            Lmax, mc->max_suffix_len, c->min_len);
    const float *E;
    const uint8_t *kmask;
    int T;
    if (pvlm_model_encode(m, b, &E, &kmask, &T, err)) return -1;
    int d = mc->d_model, H = mc->n_heads, F = mc->d_ff, V = mc->vocab_size, L = mc->n_dec_layers, dh = d / H;
    int R = B * K;
    size_t nE = (size_t)B * T * 2 * d;
    size_t ncache = (size_t)R * Lmax * 2 * d;
    /* attention probabilities: self-attention over <= Lmax cached positions, cross-attention over T */
    size_t natt = (size_t)R * H * (size_t)(Lmax > T ? Lmax : T);
    size_t nf = (size_t)L * (nE + 2 * ncache) + (size_t)R * (10 * d + 2 * F + V) + natt;
    float *buf = pvlm_alloc(sizeof(float) * nf, err);
    hyp *alive = pvlm_alloc(sizeof(hyp) * (size_t)R, err), *nalive = pvlm_alloc(sizeof(hyp) * (size_t)R, err);
    hyp *fin = pvlm_alloc(sizeof(hyp) * (size_t)R, err);
    int *nfin = pvlm_alloc(sizeof(int) * (size_t)B, err), *parent = pvlm_alloc(sizeof(int) * (size_t)R, err);
    int32_t *tok = pvlm_alloc(sizeof(int32_t) * (size_t)R, err);
    uint8_t *done = pvlm_alloc((size_t)B, err);
    int rc = -1;
    if (!buf || !alive || !nalive || !fin || !nfin || !parent || !tok || !done) goto out;
    const pvlm_dec_layer *lw = m->w.dec;
    const float *tokw = m->w.tok_embed, *dpos = m->w.dec_pos, *fw = m->w.dec_lnf_w, *fb = m->w.dec_lnf_b;
    float *p = buf;
    float *kvc = p; p += (size_t)L * nE;           /* [L][B*T, 2d] cross K,V, computed once */
    float *cache = p; p += (size_t)L * ncache;     /* [L][R, Lmax, 2d] self K,V */
    float *cache2 = p; p += (size_t)L * ncache;    /* reorder scratch */
    float *y = p; p += (size_t)R * d;
    float *ln = p; p += (size_t)R * d;
    float *mean = p; p += (size_t)R;
    float *rstd = p; p += (size_t)R;
    float *qkv = p; p += (size_t)R * 3 * d;
    float *ao = p; p += (size_t)R * d;
    float *tmp = p; p += (size_t)R * d;
    float *fc = p; p += (size_t)R * F;
    float *gl = p; p += (size_t)R * F;
    float *logits = p; p += (size_t)R * V;
    float *scores = p; p += natt;
    for (int l = 0; l < L; l++)
        pvlm_op_linear_fwd(m->mm, kvc + (size_t)l * nE, 0, E, 0, lw[l].ckv_w, lw[l].ckv_b, B * T, d, 2 * d);
    for (int r = 0; r < R; r++) {
        alive[r].logp = (r % K) ? -INFINITY : 0.0; /* only beam 0 is live at the start */
        alive[r].len = 0;
        tok[r] = mc->bos_id;
    }
    memset(nfin, 0, sizeof(int) * (size_t)B);
    memset(done, 0, (size_t)B);
    for (int t = 0; t < Lmax; t++) {
        /* one decoder step for all R rows at position t */
        for (int r = 0; r < R; r++) {
            const float *e = tokw + (size_t)tok[r] * d, *ps = dpos + (size_t)t * d;
            for (int k = 0; k < d; k++) y[(size_t)r * d + k] = e[k] + ps[k];
        }
        for (int l = 0; l < L; l++) {
            const pvlm_dec_layer *w = &lw[l];
            float *cl = cache + (size_t)l * ncache;
            pvlm_op_layernorm_fwd(ln, 0, mean, rstd, y, w->ln1_w, w->ln1_b, R, d, mc->ln_eps);
            pvlm_op_linear_fwd(m->mm, qkv, 0, ln, 0, w->qkv_w, w->qkv_b, R, d, 3 * d);
            for (int r = 0; r < R; r++) /* append k, v */
                memcpy(cl + ((size_t)r * Lmax + t) * 2 * d, qkv + (size_t)r * 3 * d + d, sizeof(float) * 2 * (size_t)d);
            cached_attention(ao, qkv, 3 * d, cl, Lmax, R, H, dh, t, scores);
            pvlm_op_linear_fwd(m->mm, tmp, 0, ao, 0, w->out_w, w->out_b, R, d, d);
            pvlm_op_add_inplace(y, tmp, (size_t)R * d);
            pvlm_op_layernorm_fwd(ln, 0, mean, rstd, y, w->lnc_w, w->lnc_b, R, d, mc->ln_eps);
            /* q [B, K, d]: the K beams are queries */
            pvlm_op_linear_fwd(m->mm, qkv, 0, ln, 0, w->cq_w, w->cq_b, R, d, d);
            const float *kv = kvc + (size_t)l * nE;
            pvlm_op_attention_fwd(m->mm, ao, d, scores, qkv, d, kv, 2 * d, kv + d, 2 * d, kmask, 0, B, H, K, T, dh);
            pvlm_op_linear_fwd(m->mm, tmp, 0, ao, 0, w->cout_w, w->cout_b, R, d, d);
            pvlm_op_add_inplace(y, tmp, (size_t)R * d);
            pvlm_op_layernorm_fwd(ln, 0, mean, rstd, y, w->ln2_w, w->ln2_b, R, d, mc->ln_eps);
            pvlm_op_linear_fwd(m->mm, fc, 0, ln, 0, w->fc1_w, w->fc1_b, R, d, F);
            pvlm_op_gelu_fwd(gl, 0, fc, (size_t)R * F);
            pvlm_op_linear_fwd(m->mm, tmp, 0, gl, 0, w->fc2_w, w->fc2_b, R, F, d);
            pvlm_op_add_inplace(y, tmp, (size_t)R * d);
        }
        pvlm_op_layernorm_fwd(ln, 0, mean, rstd, y, fw, fb, R, d, mc->ln_eps);
        pvlm_op_linear_fwd(m->mm, logits, 0, ln, 0, tokw, NULL, R, d, V);
        /* log-softmax per row */
#pragma omp parallel for schedule(static)
        for (int r = 0; r < R; r++) {
            float *x = logits + (size_t)r * V;
            float mx = x[0];
            for (int v = 1; v < V; v++) mx = x[v] > mx ? x[v] : mx;
            double s = 0;
            for (int v = 0; v < V; v++) s += exp((double)(x[v] - mx));
            float lse = (float)log(s) + mx;
            for (int v = 0; v < V; v++) x[v] -= lse;
        }
        /* beam bookkeeping per sample */
        int any_alive = 0;
        for (int bi = 0; bi < B; bi++) {
            if (done[bi]) {
                for (int k = 0; k < K; k++) nalive[bi * K + k] = alive[bi * K + k], parent[bi * K + k] = bi * K + k, tok[bi * K + k] = mc->pad_id;
                continue;
            }
            /* best 2K candidates (beam k, token v) by logp sum; ties to lower (k, v) */
            int want = 2 * K, nc = 0;
            int cb[128];
            int32_t cv[128];
            double cs[128];
            for (int k = 0; k < K; k++) {
                const hyp *h = &alive[bi * K + k];
                if (h->logp == -INFINITY) continue;
                const float *lp = logits + (size_t)(bi * K + k) * V;
                for (int v = 0; v < V; v++) {
                    double s = h->logp + lp[v];
                    if (v == mc->eos_id && t < c->min_len) continue;
                    if (nc == want && !(s > cs[nc - 1])) continue;
                    if (c->no_repeat_ngram > 0 && banned_ngram(h->ids, h->len, c->no_repeat_ngram, v)) continue;
                    int pos = nc < want ? nc++ : want - 1;
                    while (pos > 0 && s > cs[pos - 1]) cs[pos] = cs[pos - 1], cb[pos] = cb[pos - 1], cv[pos] = cv[pos - 1], pos--;
                    cs[pos] = s, cb[pos] = k, cv[pos] = v;
                }
            }
            int na = 0;
            for (int i = 0; i < nc && na < K; i++) {
                const hyp *h = &alive[bi * K + cb[i]];
                if (cv[i] == mc->eos_id) {
                    if (nfin[bi] < K) {
                        hyp *f = &fin[bi * K + nfin[bi]++];
                        *f = *h;
                        f->logp = cs[i];
                        int len = h->len + 1;
                        f->score = c->length_penalty != 0 ? cs[i] / pow((double)len, c->length_penalty) : cs[i];
                    }
                    continue;
                }
                hyp *n = &nalive[bi * K + na];
                *n = *h;
                n->ids[n->len++] = cv[i];
                n->logp = cs[i];
                parent[bi * K + na] = bi * K + cb[i];
                tok[bi * K + na] = cv[i];
                na++;
            }
            for (int k = na; k < K; k++) { /* no continuation (everything banned): a dead beam */
                nalive[bi * K + k].logp = -INFINITY, nalive[bi * K + k].len = 0;
                parent[bi * K + k] = bi * K + k, tok[bi * K + k] = mc->pad_id;
            }
            if (nfin[bi] >= K || na == 0) done[bi] = 1;
            else any_alive = 1;
        }
        hyp *sw = alive;
        alive = nalive, nalive = sw;
        if (!any_alive || t == Lmax - 1) break;
        /* reorder the self-attention caches to follow the surviving beams */
        if (K > 1) {
            for (int l = 0; l < L; l++) {
                float *cl = cache + (size_t)l * ncache, *c2 = cache2 + (size_t)l * ncache;
                for (int r = 0; r < R; r++)
                    memcpy(c2 + (size_t)r * Lmax * 2 * d, cl + (size_t)parent[r] * Lmax * 2 * d,
                           sizeof(float) * (size_t)(t + 1) * 2 * d);
            }
            float *sw2 = cache;
            cache = cache2, cache2 = sw2;
        }
    }
    /* finish: samples without K finished hypotheses take their alive ones (no eos) */
    for (int bi = 0; bi < B; bi++) {
        for (int k = 0; k < K && nfin[bi] < K; k++) {
            const hyp *h = &alive[bi * K + k];
            if (h->logp == -INFINITY) continue;
            hyp *f = &fin[bi * K + nfin[bi]++];
            *f = *h;
            f->score = c->length_penalty != 0 && h->len > 0 ? h->logp / pow((double)h->len, c->length_penalty) : h->logp;
        }
        int best = -1;
        for (int k = 0; k < nfin[bi]; k++)
            if (best < 0 || fin[bi * K + k].score > fin[bi * K + best].score) best = k;
        for (int j = 0; j < Lmax; j++) out_ids[(size_t)bi * Lmax + j] = mc->pad_id;
        if (best < 0) {
            out_len[bi] = 0;
            if (out_logp) out_logp[bi] = -INFINITY;
            continue;
        }
        const hyp *h = &fin[bi * K + best];
        for (int j = 0; j < h->len; j++) out_ids[(size_t)bi * Lmax + j] = h->ids[j];
        out_len[bi] = h->len;
        if (out_logp) out_logp[bi] = (float)h->logp;
    }
    rc = pvlm_matmul_check(m->mm, err);
out:
    if (rc && err && err->code == 0) pvlm_err_set(err, PVLM_ENOMEM, "decode: out of memory");
    pvlm_free(buf), pvlm_free(alive), pvlm_free(nalive), pvlm_free(fin);
    pvlm_free(nfin), pvlm_free(parent), pvlm_free(tok), pvlm_free(done);
    return rc;
}

int pvlm_model_score(pvlm_model *m, const pvlm_batch *b, double *logp, int32_t *ntok, pvlm_err *err) {
    double *ce = pvlm_alloc(sizeof(double) * (size_t)b->B, err);
    if (!ce) return -1;
    float loss;
    int rc = pvlm_model_forward(m, b, 1.0, &loss, NULL, ce, err);
    if (!rc)
        for (int i = 0; i < b->B; i++) {
            logp[i] = -ce[i];
            int32_t n = 0;
            for (int j = 0; j < b->Ls; j++) n += b->targets[(size_t)i * b->Ls + j] != PVLM_IGNORE;
            ntok[i] = n;
        }
    pvlm_free(ce);
    return rc;
}
