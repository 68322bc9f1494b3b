/* rouge.c - ROUGE-L (pycocoevalcap rouge.py); see rouge.h. */
#include "score/rouge.h"

#include <stdlib.h>

/* LCS length with one row of the DP table (O(min) memory). */
static int64_t lcs(const int32_t *a, int64_t na, const int32_t *b, int64_t nb, int64_t *row) {
    if (na < nb) {
        const int32_t *t = a;
        a = b;
        b = t;
        int64_t tn = na;
        na = nb;
        nb = tn;
    }
    for (int64_t j = 0; j <= nb; j++) row[j] = 0;
    for (int64_t i = 1; i <= na; i++) {
        int64_t diag = 0;
        for (int64_t j = 1; j <= nb; j++) {
            int64_t up = row[j];
            int64_t v = a[i - 1] == b[j - 1] ? diag + 1 : (up > row[j - 1] ? up : row[j - 1]);
            diag = up;
            row[j] = v;
        }
    }
    return row[nb];
}

int pvlm_rouge_score(const pvlm_tokset *ts, double *mean, double *per_image, pvlm_err *err) {
    const double beta = 1.2;
    int64_t maxlen = 0;
    for (int32_t c = 0; c < ts->n_caps; c++) {
        int64_t l = ts->rtok_begin[c + 1] - ts->rtok_begin[c];
        if (l > maxlen) maxlen = l;
    }
    int64_t *row = malloc(((size_t)maxlen + 2) * sizeof *row);
    double *scores = malloc(((size_t)ts->n_img + 1) * sizeof *scores);
    if (!row || !scores) {
        free(row);
        free(scores);
        return pvlm_err_set(err, PVLM_ENOMEM, "rouge: out of memory");
    }
    for (int32_t i = 0; i < ts->n_img; i++) {
        int32_t c = ts->cand[i];
        const int32_t *tc = ts->rtok + ts->rtok_begin[c];
        int64_t nc = ts->rtok_begin[c + 1] - ts->rtok_begin[c];
        double pmax = 0, rmax = 0;
        int first = 1;
        for (int32_t r = ts->ref_begin[i]; r < ts->ref_begin[i + 1]; r++) {
            const int32_t *tr = ts->rtok + ts->rtok_begin[r];
            int64_t nr = ts->rtok_begin[r + 1] - ts->rtok_begin[r];
            int64_t l = lcs(tr, nr, tc, nc, row);
            double p = (double)l / (double)nc, rc = (double)l / (double)nr;
            if (first || p > pmax) pmax = p;
            if (first || rc > rmax) rmax = rc;
            first = 0;
        }
        double s = 0.0;
        if (pmax != 0 && rmax != 0) s = ((1 + beta * beta) * pmax * rmax) / (rmax + beta * beta * pmax);
        scores[i] = s;
        if (per_image) per_image[i] = s;
    }
    *mean = pvlm_ptb_np_mean(scores, (size_t)ts->n_img);
    free(row);
    free(scores);
    return 0;
}
