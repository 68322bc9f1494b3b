/* cider.c - CIDEr-D (pycocoevalcap cider_scorer.py); see cider.h. */
#include "score/cider.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    double norm[4];
    int64_t length;
} capvec;

/* tf-idf of caption c into vec[gram] (dense scratch); norms in dict order. */
static void counts2vec(const pvlm_tokset *ts, int32_t c, const double *idf_base, double ref_len, double *vec,
                       capvec *cv) {
    cv->length = 0;
    for (int k = 0; k < 4; k++) {
        double nrm = 0.0;
        for (int64_t e = ts->ng_begin[(size_t)c * 4 + k]; e < ts->ng_begin[(size_t)c * 4 + k + 1]; e++) {
            double v = (double)ts->ng[e].count * (ref_len - idf_base[ts->ng[e].gram]);
            vec[ts->ng[e].gram] = v;
            nrm += v * v;
            if (k == 1) cv->length += ts->ng[e].count; /* the scorer's "length" counts bigrams */
        }
        cv->norm[k] = sqrt(nrm);
    }
}

int pvlm_cider_score(const pvlm_tokset *ts, double *mean, double *per_image, pvlm_err *err) {
    const double sigma = 6.0;
    size_t G = (size_t)ts->n_grams + 1;
    double *df = calloc(G, sizeof *df);
    int32_t *mark = malloc(G * sizeof *mark);
    double *hv = calloc(G, sizeof *hv), *rv = calloc(G, sizeof *rv);
    double *scores = malloc(((size_t)ts->n_img + 1) * sizeof *scores);
    if (!df || !mark || !hv || !rv || !scores) {
        free(df);
        free(mark);
        free(hv);
        free(rv);
        free(scores);
        return pvlm_err_set(err, PVLM_ENOMEM, "cider: out of memory");
    }
    for (size_t g = 0; g < G; g++) mark[g] = -1;
    /* document frequency over the references of the evaluated images */
    for (int32_t i = 0; i < ts->n_img; i++)
        for (int32_t r = ts->ref_begin[i]; r < ts->ref_begin[i + 1]; r++)
            for (int64_t e = ts->ng_begin[(size_t)r * 4]; e < ts->ng_begin[(size_t)r * 4 + 4]; e++) {
                int32_t g = ts->ng[e].gram;
                if (mark[g] != i) {
                    mark[g] = i;
                    df[g] += 1.0;
                }
            }
    /* log(max(1, df)) once per n-gram (np.log of a Python float) */
    for (size_t g = 0; g < G; g++) df[g] = log(df[g] > 1.0 ? df[g] : 1.0);
    double ref_len = log((double)ts->n_img);
    for (int32_t i = 0; i < ts->n_img; i++) {
        int32_t c = ts->cand[i];
        capvec ch, cr;
        counts2vec(ts, c, df, ref_len, hv, &ch);
        double score[4] = {0, 0, 0, 0};
        for (int32_t r = ts->ref_begin[i]; r < ts->ref_begin[i + 1]; r++) {
            counts2vec(ts, r, df, ref_len, rv, &cr);
            double delta = (double)(ch.length - cr.length);
            double pen = pow(M_E, -(delta * delta) / (2 * sigma * sigma));
            for (int k = 0; k < 4; k++) {
                double val = 0.0;
                for (int64_t e = ts->ng_begin[(size_t)c * 4 + k]; e < ts->ng_begin[(size_t)c * 4 + k + 1]; e++) {
                    int32_t g = ts->ng[e].gram;
                    double h = hv[g], rr = rv[g];
                    val += (h < rr ? h : rr) * rr;
                }
                if (ch.norm[k] != 0 && cr.norm[k] != 0) val /= (ch.norm[k] * cr.norm[k]);
                val *= pen;
                score[k] += val;
            }
            for (int64_t e = ts->ng_begin[(size_t)r * 4]; e < ts->ng_begin[(size_t)r * 4 + 4]; e++)
                rv[ts->ng[e].gram] = 0.0;
        }
        for (int64_t e = ts->ng_begin[(size_t)c * 4]; e < ts->ng_begin[(size_t)c * 4 + 4]; e++)
            hv[ts->ng[e].gram] = 0.0;
        double avg = pvlm_ptb_np_mean(score, 4);
        avg /= (double)(ts->ref_begin[i + 1] - ts->ref_begin[i]);
        avg *= 10.0;
        scores[i] = avg;
        if (per_image) per_image[i] = avg;
    }
    *mean = pvlm_ptb_np_mean(scores, (size_t)ts->n_img);
    free(df);
    free(mark);
    free(hv);
    free(rv);
    free(scores);
    return 0;
}
