/* bench_score.c - time to score the COCO Karpathy test split (5000 images,
 * 25010 references) with pvlm's caption scorer, split into PTB tokenization,
 * word/n-gram ids, BLEU, ROUGE-L and CIDEr-D; medians over --runs runs.
 *
 *   bench_score [--shared DIR] [--system zerocap] [--runs 7]
 *
 * Wall and CPU (thread) seconds per phase; the machine may be shared, so the
 * CPU column is the stable one. Loading the JSON files is timed separately and not part of "total" (the
 * official evaluator's quoted times exclude it as well). The official Python
 * evaluator cannot be run here; docs/perf-score.md compares with its quoted
 * times. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "core/fsutil.h"
#include "core/timer.h"
#include "score/capscore.h"

int main(int argc, char **argv) {
    const char *shared = getenv("PVLM_SHARED") ? getenv("PVLM_SHARED") : "../shared";
    const char *system = "zerocap";
    int runs = 7;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shared") && i + 1 < argc)
            shared = argv[++i];
        else if (!strcmp(argv[i], "--system") && i + 1 < argc)
            system = argv[++i];
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else {
            fprintf(stderr,
                    "usage: bench_score [--shared DIR] [--system zerocap|magic|top_k_run_1|contrastive] [--runs N]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > 1000) runs = 7;
    char refs_path[2048], res_path[2048], res_name[256];
    pvlm_err perr = {0};
    int nn = snprintf(res_name, sizeof res_name, "data/captions/coco-karpathy-test/results_%s.json", system);
    if (nn < 0 || (size_t)nn >= sizeof res_name) {
        fprintf(stderr, "bench_score: --system %.64s: name too long\n", system);
        return 2;
    }
    if (pvlm_path_join(refs_path, sizeof refs_path, shared,
                       "data/captions/coco-karpathy-test/captions_karpathy_test.json", &perr) ||
        pvlm_path_join(res_path, sizeof res_path, shared, res_name, &perr)) {
        fprintf(stderr, "bench_score: %s\n", perr.msg);
        return 1;
    }
    double *t[7], *c[7];
    for (int k = 0; k < 7; k++) {
        t[k] = calloc((size_t)runs, sizeof(double));
        c[k] = calloc((size_t)runs, sizeof(double));
    }
    double cider = 0;
    int n_img = 0;
    for (int r = 0; r < runs; r++) {
        pvlm_err err = {0};
        pvlm_caprefs refs;
        pvlm_capres res;
        pvlm_capscore sc;
        double t0 = pvlm_now();
        if (pvlm_caprefs_load(&refs, refs_path, &err) || pvlm_capres_load(&res, res_path, &err)) {
            fprintf(stderr, "bench_score: %s\n", err.msg);
            return 1;
        }
        double t1 = pvlm_now();
        if (pvlm_capscore_run(&sc, &refs, &res, NULL, &err)) {
            fprintf(stderr, "bench_score: %s\n", err.msg);
            return 1;
        }
        double t2 = pvlm_now();
        t[0][r] = t1 - t0;
        t[1][r] = sc.t_tokenize;
        t[2][r] = sc.t_ngrams;
        t[3][r] = sc.t_bleu;
        t[4][r] = sc.t_rouge;
        t[5][r] = sc.t_cider;
        t[6][r] = t2 - t1;
        c[0][r] = NAN;
        c[1][r] = sc.c_tokenize;
        c[2][r] = sc.c_ngrams;
        c[3][r] = sc.c_bleu;
        c[4][r] = sc.c_rouge;
        c[5][r] = sc.c_cider;
        c[6][r] = sc.c_tokenize + sc.c_ngrams + sc.c_bleu + sc.c_rouge + sc.c_cider;
        cider = sc.split[0].score[PVLM_CAP_CIDER];
        n_img = sc.n_img;
        pvlm_capscore_free(&sc);
        pvlm_capres_free(&res);
        pvlm_caprefs_free(&refs);
    }
    const char *names[7] = {"load_json", "tokenize", "ngram_ids", "bleu", "rouge_l", "cider_d", "total"};
    printf("bench_score: system %s, %d images, CIDEr %.17g, %d runs (median seconds)\n", system, n_img, cider, runs);
    printf("  %-10s %8s %8s\n", "phase", "wall", "cpu");
    for (int k = 0; k < 7; k++) {
        if (k == 0)
            printf("  %-10s %8.4f %8s\n", names[k], bench_median(t[k], runs), "-");
        else
            printf("  %-10s %8.4f %8.4f\n", names[k], bench_median(t[k], runs), bench_median(c[k], runs));
    }
    double la[3] = {0, 0, 0};
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &la[0], &la[1], &la[2]) != 3) la[0] = la[1] = la[2] = 0;
        fclose(f);
    }
    printf("  load average during the run: %.2f %.2f %.2f (wall times are inflated when it exceeds the cores)\n", la[0],
           la[1], la[2]);
    for (int k = 0; k < 7; k++) {
        free(t[k]);
        free(c[k]);
    }
    return 0;
}
