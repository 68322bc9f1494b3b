/* test_score_golden.c - pvlm's scorers against the official evaluators'
 * numbers in ../shared/data (see ../shared/README.md):
 *   ptb        45 PTB tokenizer cases (Stanford CoreNLP 3.4.1 + pycocoevalcap punctuation removal)
 *   coco       BLEU-1..4, ROUGE_L, CIDEr and n_images of 4 real systems on the COCO Karpathy test
 *              split, and the BLEU statistics line printed for magic
 *   per_image  per-image BLEU-1..4, ROUGE_L, CIDEr of magic
 *   vqa        both VQA case files (2021 and pre-2021 scripts): per question and aggregates
 *   vqa_unicode the 2,000 adversarial questions and the 1,433 lower-casing probes of the 2021 script
 *              under Python 3 (answers with their answer_ids): per question and aggregates
 * Every number must match to 1e-9 absolute. The part to run is argv[1].
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "score/capscore.h"
#include "score/ptb.h"
#include "score/vqa_eval.h"
#include "harness.h"

static const double TOL = 1e-9;

static json_t *load(const char *rel) {
    char p[1024];
    pvlm_err err = {0};
    snprintf(p, sizeof p, "%s/data/%s", pvlm_test_shared(), rel);
    json_t *j = pvlm_json_load_file(p, &err);
    if (!j) fprintf(stderr, "cannot load %s: %s\n", p, err.msg);
    return j;
}

static void part_ptb(void) {
    json_t *cases = load("captions/ptb_tokenizer_cases.json");
    CHECK(cases != NULL);
    if (!cases) return;
    CHECK(json_array_size(cases) == 45);
    for (size_t i = 0; i < json_array_size(cases); i++) {
        const char *in = json_string_value(json_object_get(json_array_get(cases, i), "input"));
        const char *exp = json_string_value(json_object_get(json_array_get(cases, i), "output"));
        pvlm_err err = {0};
        char *got = pvlm_ptb_tokenize(in, strlen(in), &err);
        CHECK_MSG(got && !strcmp(got, exp), "case %zu: \"%s\" -> \"%s\", expected \"%s\"", i, in, got ? got : "(null)",
                  exp);
        free(got);
    }
    json_decref(cases);
}

static int score_system(const char *sys, pvlm_caprefs *refs, pvlm_capscore *sc) {
    char p[1024];
    pvlm_err err = {0};
    pvlm_capres res;
    snprintf(p, sizeof p, "%s/data/captions/coco-karpathy-test/results_%s.json", pvlm_test_shared(), sys);
    CHECK_OK(pvlm_capres_load(&res, p, &err), &err);
    if (err.code) return -1;
    int rc = pvlm_capscore_run(sc, refs, &res, NULL, &err);
    CHECK_OK(rc, &err);
    pvlm_capres_free(&res);
    return rc;
}

static int load_refs(pvlm_caprefs *refs) {
    char p[1024];
    pvlm_err err = {0};
    snprintf(p, sizeof p, "%s/data/captions/coco-karpathy-test/captions_karpathy_test.json", pvlm_test_shared());
    CHECK_OK(pvlm_caprefs_load(refs, p, &err), &err);
    return err.code ? -1 : 0;
}

static void part_coco(void) {
    json_t *gold = load("captions/coco-karpathy-test/golden_scores.json");
    pvlm_caprefs refs;
    CHECK(gold != NULL);
    if (!gold || load_refs(&refs)) return;
    const char *systems[] = {"magic", "zerocap", "top_k_run_1", "contrastive"};
    for (int s = 0; s < 4; s++) {
        pvlm_capscore sc;
        json_t *g = json_object_get(gold, systems[s]);
        CHECK_MSG(g != NULL, "golden_scores.json has no %s", systems[s]);
        if (!g || score_system(systems[s], &refs, &sc)) continue;
        const double *v = sc.split[0].score;
        for (int k = 0; k < 4; k++)
            CHECK_CLOSE(v[PVLM_CAP_BLEU1 + k], json_real_value(json_array_get(json_object_get(g, "Bleu"), (size_t)k)),
                        0, TOL);
        CHECK_CLOSE(v[PVLM_CAP_ROUGE_L], json_real_value(json_object_get(g, "ROUGE_L")), 0, TOL);
        CHECK_CLOSE(v[PVLM_CAP_CIDER], json_real_value(json_object_get(g, "CIDEr")), 0, TOL);
        CHECK(sc.n_img == json_integer_value(json_object_get(g, "n_images")));
        CHECK(sc.n_split == 1);
        const json_t *st = json_object_get(g, "bleu_stats");
        if (st) {
            char buf[512];
            pvlm_bleu_stats_format(&sc.split[0].bleu_stats, buf, sizeof buf);
            CHECK_MSG(!strcmp(buf, json_string_value(st)), "%s BLEU stats:\n%s expected\n%s", systems[s], buf,
                      json_string_value(st));
        }
        /* the JSON object `pvlm score captions --json` prints */
        json_t *j = pvlm_capscore_to_json(&sc);
        CHECK(json_real_value(json_object_get(j, "CIDEr")) == v[PVLM_CAP_CIDER]);
        CHECK(json_integer_value(json_object_get(j, "n_images")) == sc.n_img);
        json_decref(j);
        printf("%s: Bleu_4 %.17g ROUGE_L %.17g CIDEr %.17g\n", systems[s], v[PVLM_CAP_BLEU4], v[PVLM_CAP_ROUGE_L],
               v[PVLM_CAP_CIDER]);
        pvlm_capscore_free(&sc);
    }
    pvlm_caprefs_free(&refs);
    json_decref(gold);
}

static void part_per_image(void) {
    json_t *gold = load("captions/coco-karpathy-test/golden_per_image_magic.json");
    pvlm_caprefs refs;
    pvlm_capscore sc;
    CHECK(gold != NULL);
    if (!gold || load_refs(&refs)) return;
    if (score_system("magic", &refs, &sc)) return;
    json_t *mine = pvlm_capscore_per_image_json(&sc, &refs);
    const json_t *gp = json_object_get(gold, "per_image"), *mp = json_object_get(mine, "per_image");
    CHECK(json_object_size(gp) == (size_t)sc.n_img);
    const char *key;
    const json_t *gv;
    size_t n = 0;
    double worst = 0;
    json_object_foreach((json_t *)gp, key, gv) {
        const json_t *mv = json_object_get(mp, key);
        CHECK_MSG(mv != NULL, "no per-image score for %s", key);
        if (!mv) continue;
        double d[6];
        for (int k = 0; k < 4; k++)
            d[k] = json_real_value(json_array_get(json_object_get(gv, "Bleu"), (size_t)k)) -
                   json_real_value(json_array_get(json_object_get(mv, "Bleu"), (size_t)k));
        d[4] = json_real_value(json_object_get(gv, "ROUGE_L")) - json_real_value(json_object_get(mv, "ROUGE_L"));
        d[5] = json_real_value(json_object_get(gv, "CIDEr")) - json_real_value(json_object_get(mv, "CIDEr"));
        for (int k = 0; k < 6; k++) {
            CHECK_MSG(fabs(d[k]) <= TOL, "%s metric %d differs by %g", key, k, d[k]);
            if (fabs(d[k]) > worst) worst = fabs(d[k]);
        }
        n++;
    }
    const json_t *gc = json_object_get(gold, "corpus");
    json_object_foreach((json_t *)gc, key, gv) {
        CHECK_CLOSE(json_real_value(json_object_get(json_object_get(mine, "corpus"), key)), json_real_value(gv), 0,
                    TOL);
    }
    printf("per-image: %zu images, largest difference %.3g\n", n, worst);
    json_decref(mine);
    pvlm_capscore_free(&sc);
    pvlm_caprefs_free(&refs);
    json_decref(gold);
}

/* One VQA case file: every question's accuracy and the aggregates. A differing question is reported
 * with its prediction and answers (only the first one, with the count, when there are many). */
static void part_vqa(const char *file, pvlm_vqa_version v) {
    json_t *d = load(file);
    CHECK(d != NULL);
    if (!d) return;
    const json_t *cases = json_object_get(d, "cases");
    size_t n = json_array_size(cases);
    pvlm_vqa_item *items = calloc(n, sizeof *items);
    for (size_t i = 0; i < n; i++) {
        const json_t *c = json_array_get(cases, i);
        items[i].question_id = json_integer_value(json_object_get(c, "qid"));
        items[i].pred = json_string_value(json_object_get(c, "pred"));
        items[i].question_type = json_string_value(json_object_get(c, "question_type"));
        items[i].answer_type = json_string_value(json_object_get(c, "answer_type"));
        const json_t *gt = json_object_get(c, "gt"), *ids = json_object_get(c, "gt_answer_ids");
        items[i].n_gt = (int)json_array_size(gt);
        for (int k = 0; k < items[i].n_gt; k++) {
            items[i].gt[k] = json_string_value(json_array_get(gt, (size_t)k));
            if (ids) { /* whole-dict comparison, as the script does with the ids it was given */
                char *r = malloc(48);
                if (r)
                    snprintf(r, 48, "{\"answer_id\":%lld}",
                             (long long)json_integer_value(json_array_get(ids, (size_t)k)));
                items[i].gt_rest[k] = r;
            }
        }
    }
    pvlm_vqa_result r;
    pvlm_err err = {0};
    CHECK_OK(pvlm_vqa_evaluate(items, (int)n, v, &r, &err), &err);
    if (!err.code) {
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) {
            double exp = json_number_value(json_object_get(json_array_get(cases, i), "acc_x100_round2"));
            if (fabs(r.acc_x100[i] - exp) <= TOL) continue;
            if (bad++ == 0) {
                fprintf(stderr, "%s: question %lld: prediction \"%s\", answers", file, (long long)items[i].question_id,
                        items[i].pred);
                for (int k = 0; k < items[i].n_gt; k++) fprintf(stderr, " \"%s\"", items[i].gt[k]);
                fprintf(stderr, ": %.17g, expected %.17g\n", r.acc_x100[i], exp);
            }
        }
        CHECK_MSG(bad == 0, "%s: %zu of %zu questions differ from the official script", file, bad, n);
        const json_t *acc = json_object_get(d, "accuracy");
        CHECK_CLOSE(r.overall, json_number_value(json_object_get(acc, "overall")), 0, TOL);
        const json_t *pq = json_object_get(acc, "perQuestionType"), *pa = json_object_get(acc, "perAnswerType");
        CHECK((size_t)r.n_qtype == json_object_size(pq));
        CHECK((size_t)r.n_atype == json_object_size(pa));
        for (int k = 0; k < r.n_qtype; k++) {
            const json_t *e = json_object_get(pq, r.qtype[k]);
            CHECK_MSG(e && fabs(json_number_value(e) - r.qtype_acc[k]) <= TOL, "%s: question type %s: %.17g", file,
                      r.qtype[k], r.qtype_acc[k]);
        }
        for (int k = 0; k < r.n_atype; k++) {
            const json_t *e = json_object_get(pa, r.atype[k]);
            CHECK_MSG(e && fabs(json_number_value(e) - r.atype_acc[k]) <= TOL, "%s: answer type %s: %.17g", file,
                      r.atype[k], r.atype_acc[k]);
        }
        printf("%s: overall %.2f over %d questions\n", file, r.overall, r.n);
        pvlm_vqa_result_free(&r);
    }
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < items[i].n_gt; k++) free((char *)items[i].gt_rest[k]);
    free(items);
    json_decref(d);
}

int main(int argc, char **argv) {
    const char *part = argc > 1 ? argv[1] : "all";
    int all = !strcmp(part, "all");
    if (all || !strcmp(part, "ptb")) part_ptb();
    if (all || !strcmp(part, "coco")) part_coco();
    if (all || !strcmp(part, "per_image")) part_per_image();
    if (all || !strcmp(part, "vqa")) {
        part_vqa("vqa/vqa_eval_cases_2021.json", PVLM_VQA_2021);
        part_vqa("vqa/vqa_eval_cases_pre2021.json", PVLM_VQA_PRE2021);
    }
    if (all || !strcmp(part, "vqa_unicode")) {
        part_vqa("vqa/vqa_eval_cases_2021_unicode.json", PVLM_VQA_2021);
        part_vqa("vqa/vqa_eval_cases_2021_lowercase_probe.json", PVLM_VQA_2021);
    }
    return pvlm_test_done(part);
}
