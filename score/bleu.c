/* bleu.c - BLEU as pycocoevalcap (bleu_scorer.py, option 'closest'); see bleu.h. */
#include "score/bleu.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Brevity penalty and n-gram mean for one set of statistics, in the order the
 * Python scorer multiplies: bleu *= (correct+tiny)/(guess+small) cumulatively,
 * bleu_k = bleu ** (1/(k+1)), then *= e**(1 - 1/ratio) when ratio < 1. */
static void bleu_from_stats(double testlen, double reflen, const int64_t *guess, const int64_t *correct, double out[4],
                            double *ratio_out) {
    const double small = 1e-9, tiny = 1e-15;
    double bleu = 1.0;
    for (int k = 0; k < 4; k++) {
        bleu *= ((double)correct[k] + tiny) / ((double)guess[k] + small);
        out[k] = pow(bleu, 1.0 / (double)(k + 1));
    }
    double ratio = (testlen + tiny) / (reflen + small);
    if (ratio < 1)
        for (int k = 0; k < 4; k++) out[k] *= pow(M_E, 1.0 - 1.0 / ratio);
    if (ratio_out) *ratio_out = ratio;
}

int pvlm_bleu_score(const pvlm_tokset *ts, double bleu[4], double *per_image, pvlm_bleu_stats *stats, pvlm_err *err) {
    int32_t *maxc = calloc((size_t)ts->n_grams + 1, sizeof *maxc);
    if (!maxc) return pvlm_err_set(err, PVLM_ENOMEM, "bleu: out of memory");
    pvlm_bleu_stats tot;
    memset(&tot, 0, sizeof tot);
    for (int32_t i = 0; i < ts->n_img; i++) {
        int32_t c = ts->cand[i];
        int64_t testlen = ts->tok_begin[c + 1] - ts->tok_begin[c];
        /* max count of each n-gram over the references */
        int64_t reflen = -1, best_diff = -1;
        for (int32_t r = ts->ref_begin[i]; r < ts->ref_begin[i + 1]; r++) {
            int64_t rl = ts->tok_begin[r + 1] - ts->tok_begin[r];
            int64_t d = rl > testlen ? rl - testlen : testlen - rl;
            /* min((abs(l - testlen), l)): smallest distance, then smallest length */
            if (best_diff < 0 || d < best_diff || (d == best_diff && rl < reflen)) {
                best_diff = d;
                reflen = rl;
            }
            for (int64_t e = ts->ng_begin[(size_t)r * 4]; e < ts->ng_begin[(size_t)r * 4 + 4]; e++)
                if (ts->ng[e].count > maxc[ts->ng[e].gram]) maxc[ts->ng[e].gram] = ts->ng[e].count;
        }
        int64_t guess[4], correct[4] = {0, 0, 0, 0};
        for (int k = 0; k < 4; k++) guess[k] = testlen - k > 0 ? testlen - k : 0;
        for (int k = 0; k < 4; k++)
            for (int64_t e = ts->ng_begin[(size_t)c * 4 + k]; e < ts->ng_begin[(size_t)c * 4 + k + 1]; e++) {
                int32_t m = maxc[ts->ng[e].gram];
                correct[k] += ts->ng[e].count < m ? ts->ng[e].count : m;
            }
        for (int32_t r = ts->ref_begin[i]; r < ts->ref_begin[i + 1]; r++)
            for (int64_t e = ts->ng_begin[(size_t)r * 4]; e < ts->ng_begin[(size_t)r * 4 + 4]; e++)
                maxc[ts->ng[e].gram] = 0;
        tot.testlen += testlen;
        tot.reflen += reflen;
        for (int k = 0; k < 4; k++) {
            tot.guess[k] += guess[k];
            tot.correct[k] += correct[k];
        }
        if (per_image)
            bleu_from_stats((double)testlen, (double)reflen, guess, correct, per_image + (size_t)i * 4, NULL);
    }
    free(maxc);
    bleu_from_stats((double)tot.testlen, (double)tot.reflen, tot.guess, tot.correct, bleu, &tot.ratio);
    if (stats) *stats = tot;
    return 0;
}

void pvlm_bleu_py_repr(double x, char *buf, size_t n) {
    if (isnan(x)) {
        snprintf(buf, n, "nan");
        return;
    }
    if (isinf(x)) {
        snprintf(buf, n, x > 0 ? "inf" : "-inf");
        return;
    }
    char tmp[64];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, x);
        if (strtod(tmp, NULL) == x) break;
    }
    /* tmp = d.ddde[+-]XX with `prec` significant digits */
    char digits[32];
    int nd = 0;
    const char *q = tmp;
    int neg = 0;
    if (*q == '-') {
        neg = 1;
        q++;
    }
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9') digits[nd++] = *q;
    int exp10 = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    char out[64];
    size_t o = 0;
    if (neg) out[o++] = '-';
    if (exp10 >= -4 && exp10 < 16) { /* Python repr: fixed notation for 1e-4 <= |x| < 1e16 */
        if (exp10 < 0) {
            out[o++] = '0';
            out[o++] = '.';
            for (int z = 0; z < -exp10 - 1; z++) out[o++] = '0';
            for (int z = 0; z < nd; z++) out[o++] = digits[z];
        } else {
            for (int z = 0; z <= exp10; z++) out[o++] = z < nd ? digits[z] : '0';
            out[o++] = '.';
            if (nd > exp10 + 1)
                for (int z = exp10 + 1; z < nd; z++) out[o++] = digits[z];
            else
                out[o++] = '0';
        }
    } else {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            for (int z = 1; z < nd; z++) out[o++] = digits[z];
        }
        o += (size_t)snprintf(out + o, sizeof out - o, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    }
    out[o] = 0;
    snprintf(buf, n, "%s", out);
}

int pvlm_bleu_stats_format(const pvlm_bleu_stats *st, char *buf, size_t n) {
    char r[64];
    pvlm_bleu_py_repr(st->ratio, r, sizeof r);
    return snprintf(
        buf, n,
        "{'testlen': %lld, 'reflen': %lld, 'guess': [%lld, %lld, %lld, %lld], 'correct': [%lld, %lld, %lld, "
        "%lld]}\nratio: %s\n",
        (long long)st->testlen, (long long)st->reflen, (long long)st->guess[0], (long long)st->guess[1],
        (long long)st->guess[2], (long long)st->guess[3], (long long)st->correct[0], (long long)st->correct[1],
        (long long)st->correct[2], (long long)st->correct[3], r);
}
