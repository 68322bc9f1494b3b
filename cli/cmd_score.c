/* cmd_score.c - `pvlm score captions|vqa`: the official caption metrics
 * (BLEU-1..4, ROUGE-L, CIDEr-D as pycocoevalcap; METEOR/SPICE through the
 * official jars when given; NoCaps per-domain) and the official VQA v2
 * accuracy (2021 or pre-2021 script). Behaviour and numerics: docs/scoring.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/args.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/json.h"
#include "core/log.h"
#include "score/capscore.h"
#include "score/vqa_eval.h"

int pvlm_cmd_score(int argc, char **argv);

static void print_split(const pvlm_capsplit *sp, const char *indent) {
    for (int k = 0; k < PVLM_CAP_NMETRICS; k++) {
        if (isnan(sp->score[k]))
            printf("%s%s: unavailable%s\n", indent, pvlm_cap_metric_names[k],
                   k >= PVLM_CAP_METEOR ? " (needs the official jar: --meteor-jar / --spice-jar)" : "");
        else
            printf("%s%s: %.17g\n", indent, pvlm_cap_metric_names[k], sp->score[k]);
    }
    printf("%sn_images: %d\n", indent, sp->n_img);
}

/* Write j (a new reference, NULL: err is already set) to path; frees j. */
static int write_json_or_fail(json_t *j, const char *path, pvlm_err *err) {
    if (!j) return -1;
    int rc = pvlm_json_save_results(j, path, err);
    json_decref(j);
    return rc;
}

typedef struct captions_flags {
    const char *annotations, *results, *per_image, *meteor, *spice, *java, *nocaps_out, *submission;
    int as_json, bleu_stats;
} captions_flags;

/* The scores on stdout (a table, or --json) and the --bleu-stats line; err says what failed. */
static int print_scores(const captions_flags *f, const pvlm_capscore *sc, pvlm_err *err) {
    if (f->bleu_stats) {
        char buf[512];
        pvlm_bleu_stats_format(&sc->split[0].bleu_stats, buf, sizeof buf);
        fputs(buf, stderr);
    }
    if (f->as_json) {
        json_t *j = pvlm_capscore_to_json(sc);
        int bad = pvlm_capscore_print_json(j, stdout);
        json_decref(j);
        return bad ? pvlm_err_set(err, PVLM_EIO, "writing stdout failed") : 0;
    }
    print_split(&sc->split[0], "");
    for (int k = 1; k < sc->n_split; k++) {
        printf("domain %s:\n", sc->split[k].name);
        print_split(&sc->split[k], "  ");
    }
    return 0;
}

/* The --per-image and --nocaps-out files. */
static int write_score_files(const captions_flags *f, const pvlm_capscore *sc, const pvlm_caprefs *refs,
                             pvlm_err *err) {
    if (f->per_image) {
        json_t *j = pvlm_capscore_per_image_json(sc, refs);
        FILE *out = fopen(f->per_image, "w");
        int bad = !out || json_dumpf(j, out, JSON_REAL_PRECISION(17) | JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        if (out && fclose(out)) bad = 1;
        json_decref(j);
        if (bad) return pvlm_err_set(err, PVLM_EIO, "cannot write per-image scores to %s", f->per_image);
    }
    if (f->nocaps_out && write_json_or_fail(pvlm_capscore_nocaps_json(sc, err), f->nocaps_out, err)) return -1;
    return 0;
}

/* Load both files, write the --submission, score, and report. Returns the exit code. */
static int score_captions(const captions_flags *f) {
    pvlm_log_set_rank(-1);
    pvlm_err err = {0};
    pvlm_caprefs refs;
    pvlm_capres res;
    pvlm_capscore sc;
    pvlm_capscore_opts so = {f->meteor, f->spice, f->java, NULL};
    if (pvlm_caprefs_load(&refs, f->annotations, &err)) {
        fprintf(stderr, "pvlm score captions: %s\n", err.msg);
        return 1;
    }
    if (pvlm_capres_load(&res, f->results, &err)) {
        fprintf(stderr, "pvlm score captions: %s\n", err.msg);
        pvlm_caprefs_free(&refs);
        return 1;
    }
    int rc = 1;
    if (f->submission && write_json_or_fail(pvlm_capres_submission_json(&res, &refs, &err), f->submission, &err)) {
        fprintf(stderr, "pvlm score captions: %s\n", err.msg);
    } else if (pvlm_capscore_run(&sc, &refs, &res, &so, &err)) {
        fprintf(stderr, "pvlm score captions: %s\n", err.msg);
    } else {
        if (print_scores(f, &sc, &err) || write_score_files(f, &sc, &refs, &err)) {
            fprintf(stderr, "pvlm score captions: %s\n", err.msg);
        } else {
            fflush(stdout);
            pvlm_info("scored %d images: tokenize %.3f s, BLEU %.3f s, ROUGE-L %.3f s, CIDEr %.3f s", sc.n_img,
                      sc.t_tokenize, sc.t_bleu, sc.t_rouge, sc.t_cider);
            rc = 0;
        }
        pvlm_capscore_free(&sc);
    }
    pvlm_capres_free(&res);
    pvlm_caprefs_free(&refs);
    return rc;
}

static int cmd_captions(int argc, char **argv) {
    captions_flags f = {.java = "java"};
    const pvlm_opt opts[] = {
        {"annotations", PVLM_ARG_STR, &f.annotations,
         "COCO captions reference file (images[].domain present: NoCaps per-domain scores)", NULL, 0, 0, 1},
        {"results", PVLM_ARG_STR, &f.results, "COCO results file [{\"image_id\", \"caption\"}] (the evaluated set)", NULL,
         0, 0, 1},
        {"json", PVLM_ARG_FLAG, &f.as_json, "print one JSON object (full double precision)", NULL, 0, 0, 0},
        {"per-image", PVLM_ARG_STR, &f.per_image, "also write per-image scores (JSON) to this file", NULL, 0, 0, 0},
        {"bleu-stats", PVLM_ARG_FLAG, &f.bleu_stats, "print the BLEU statistics line as pycocoevalcap does (stderr)",
         NULL, 0, 0, 0},
        {"meteor-jar", PVLM_ARG_STR, &f.meteor, "official meteor-1.5.jar: compute METEOR as pycocoevalcap (java)", NULL,
         0, 0, 0},
        {"spice-jar", PVLM_ARG_STR, &f.spice, "official spice-1.0.jar: compute SPICE as pycocoevalcap (java)", NULL, 0, 0,
         0},
        {"java", PVLM_ARG_STR, &f.java, "java executable for --meteor-jar / --spice-jar", NULL, 0, 0, 0},
        {"nocaps-out", PVLM_ARG_STR, &f.nocaps_out,
         "NoCaps: write the per-domain scores as the evaluation server reports them (in/near/out-domain, entire)",
         NULL, 0, 0, 0},
        {"submission", PVLM_ARG_STR, &f.submission,
         "write the results as the evaluation server's submission for this split (every image, reference order)",
         NULL, 0, 0, 0},
    };
    const pvlm_cmd cmd = {"pvlm score captions",
                          "BLEU-1..4, ROUGE-L, CIDEr-D exactly as pycocoevalcap",
                          "",
                          opts,
                          (int)(sizeof opts / sizeof opts[0]),
                          0,
                          0};
    int a = pvlm_args_parse(&cmd, argc, argv, NULL, NULL);
    if (a == PVLM_ARGS_HELP) return 0;
    if (a != PVLM_ARGS_OK) return 2;
    return score_captions(&f);
}

static int cmd_vqa(int argc, char **argv) {
    const char *questions = NULL, *annotations = NULL, *results = NULL, *version = "2021", *per_question = NULL;
    int as_json = 0;
    const pvlm_opt opts[] = {
        {"questions", PVLM_ARG_STR, &questions, "VQA v2 questions JSON", NULL, 0, 0, 1},
        {"annotations", PVLM_ARG_STR, &annotations, "VQA v2 annotations JSON (10 answers per question)", NULL, 0, 0, 1},
        {"results", PVLM_ARG_STR, &results, "results [{\"question_id\", \"answer\"}], one per annotated question", NULL,
         0, 0, 1},
        {"json", PVLM_ARG_FLAG, &as_json, "print one JSON object", NULL, 0, 0, 0},
        {"version", PVLM_ARG_CHOICE, &version,
         "official script: 2021 (current, skips normalisation when all answers agree) or pre2021", "2021|pre2021", 0, 0,
         0},
        {"per-question", PVLM_ARG_STR, &per_question, "also write per-question accuracies (JSON) to this file", NULL, 0,
         0, 0},
    };
    const pvlm_cmd cmd = {"pvlm score vqa",
                          "official VQA v2 accuracy (overall, per question/answer type)",
                          "",
                          opts,
                          (int)(sizeof opts / sizeof opts[0]),
                          0,
                          0};
    int a = pvlm_args_parse(&cmd, argc, argv, NULL, NULL);
    if (a == PVLM_ARGS_HELP) return 0;
    if (a != PVLM_ARGS_OK) return 2;
    pvlm_log_set_rank(-1);
    pvlm_vqa_version v = !strcmp(version, "pre2021") ? PVLM_VQA_PRE2021 : PVLM_VQA_2021;
    pvlm_err err = {0};
    pvlm_vqa_result r;
    if (pvlm_vqa_evaluate_files(questions, annotations, results, v, &r, &err)) {
        fprintf(stderr, "pvlm score vqa: %s\n", err.msg);
        return 1;
    }
    json_t *o = json_object(), *pq = json_object(), *pa = json_object();
    json_object_set_new(o, "overall", json_real(r.overall));
    for (int k = 0; k < r.n_qtype; k++) json_object_set_new(pq, r.qtype[k], json_real(r.qtype_acc[k]));
    for (int k = 0; k < r.n_atype; k++) json_object_set_new(pa, r.atype[k], json_real(r.atype_acc[k]));
    json_object_set_new(o, "perQuestionType", pq);
    json_object_set_new(o, "perAnswerType", pa);
    json_object_set_new(o, "n_questions", json_integer(r.n));
    json_object_set_new(o, "version", json_string(version));
    int rc = 0;
    if (as_json) {
        if (json_dumpf(o, stdout, JSON_REAL_PRECISION(17) | JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII) ||
            fputc('\n', stdout) == EOF)
            rc = 1;
    } else {
        printf("Overall Accuracy is: %.2f\n", r.overall);
        printf("Per Answer Type Accuracy is the following:\n");
        for (int k = 0; k < r.n_atype; k++) printf("%s : %.2f\n", r.atype[k], r.atype_acc[k]);
        printf("Per Question Type Accuracy is the following:\n");
        for (int k = 0; k < r.n_qtype; k++) printf("%s : %.2f\n", r.qtype[k], r.qtype_acc[k]);
        printf("n_questions: %d (script version %s)\n", r.n, version);
    }
    if (per_question) {
        json_t *m = json_object();
        for (int i = 0; i < r.n; i++) {
            char key[32];
            snprintf(key, sizeof key, "%lld", (long long)r.question_id[i]);
            json_object_set_new(m, key, json_real(r.acc_x100[i]));
        }
        FILE *f = fopen(per_question, "w");
        int bad = !f || json_dumpf(m, f, JSON_REAL_PRECISION(17) | JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        if (f && fclose(f)) bad = 1;
        json_decref(m);
        if (bad) {
            fprintf(stderr, "pvlm score vqa: cannot write %s\n", per_question);
            rc = 1;
        }
    }
    json_decref(o);
    pvlm_vqa_result_free(&r);
    return rc;
}

int pvlm_cmd_score(int argc, char **argv) {
    static const pvlm_subcmd subs[] = {
        {"captions", "BLEU-1..4, ROUGE-L, CIDEr-D (pycocoevalcap), NoCaps per domain", cmd_captions},
        {"vqa", "official VQA v2 accuracy (2021 or pre-2021 script)", cmd_vqa},
    };
    return pvlm_subcmd_run("pvlm score", subs, (int)(sizeof subs / sizeof subs[0]), argc, argv);
}
