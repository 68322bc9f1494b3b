/* test_score_unit.c - scoring edge cases: clear errors for missing, duplicate
 * and unknown ids and malformed files; odd text never crashes and never
 * shifts captions (line-break characters are spaces here, unlike the Java
 * pipeline); NoCaps per-domain scores equal scoring each domain on its own
 * (CIDEr document frequencies within the split); metric corner cases; the
 * VQA normalisation steps and Python-compatible rounding. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "score/bleu.h"
#include "score/capscore.h"
#include "score/cider.h"
#include "score/ptb.h"
#include "score/rouge.h"
#include "score/vqa_eval.h"
#include "harness.h"

static char *tok(const char *s) {
    pvlm_err err = {0};
    char *t = pvlm_ptb_tokenize(s, strlen(s), &err);
    CHECK(t != NULL);
    return t;
}

static void check_tok(const char *in, const char *exp) {
    char *t = tok(in);
    CHECK_MSG(t && !strcmp(t, exp), "\"%s\" -> \"%s\", expected \"%s\"", in, t ? t : "(null)", exp);
    free(t);
}

/* Build refs/results from JSON text. */
static int refs_from(const char *js, pvlm_caprefs *r, pvlm_err *err) {
    json_t *j = json_loads(js, 0, NULL);
    CHECK(j != NULL);
    int rc = pvlm_caprefs_from_json(r, j, "refs.json", err);
    json_decref(j);
    return rc;
}
static int res_from(const char *js, pvlm_capres *r, pvlm_err *err) {
    json_t *j = json_loads(js, 0, NULL);
    CHECK(j != NULL);
    int rc = pvlm_capres_from_json(r, j, "res.json", err);
    json_decref(j);
    return rc;
}

static const char *REFS =
    "{\"images\": [{\"id\": 1, \"file_name\": \"a.jpg\"}, {\"id\": 2, \"file_name\": \"b.jpg\"}, {\"id\": 3}],"
    " \"annotations\": [{\"image_id\": 1, \"caption\": \"A dog runs on the grass.\"},"
    " {\"image_id\": 1, \"caption\": \"a brown dog running in a field\"},"
    " {\"image_id\": 2, \"caption\": \"Two cats sleep on a red couch.\"},"
    " {\"image_id\": 2, \"caption\": \"cats sleeping on a sofa\"},"
    " {\"image_id\": 3, \"caption\": \"A man rides a bike down the street.\"}]}";

static void test_errors(void) {
    pvlm_caprefs refs;
    pvlm_capres res;
    pvlm_capscore sc;
    pvlm_err err = {0};
    CHECK_OK(refs_from(REFS, &refs, &err), &err);
    CHECK(refs.n_img == 3 && refs.ref_begin[3] == 5);
    CHECK(pvlm_caprefs_find(&refs, 2) == 1 && pvlm_caprefs_find(&refs, 3) == 2 && pvlm_caprefs_find(&refs, 4) == -1);
    CHECK(!strcmp(refs.file_name[0], "a.jpg") && refs.file_name[2] == NULL);
    /* unknown image id */
    CHECK_OK(res_from("[{\"image_id\": 1, \"caption\": \"a dog\"}, {\"image_id\": 9, \"caption\": \"x\"}]", &res, &err),
             &err);
    CHECK(pvlm_capscore_run(&sc, &refs, &res, NULL, &err) == -1);
    CHECK_MSG(strstr(err.msg, "image id 9") && strstr(err.msg, "not in the references"), "%s", err.msg);
    pvlm_capres_free(&res);
    /* duplicate image id in the results */
    CHECK(res_from("[{\"image_id\": 1, \"caption\": \"a\"}, {\"image_id\": 1, \"caption\": \"b\"}]", &res, &err) == -1);
    CHECK_MSG(strstr(err.msg, "duplicate image id 1"), "%s", err.msg);
    /* missing caption, wrong types */
    CHECK(res_from("[{\"image_id\": 1}]", &res, &err) == -1);
    CHECK_MSG(strstr(err.msg, "caption") && strstr(err.msg, "record 0"), "%s", err.msg);
    CHECK(res_from("[{\"image_id\": \"1\", \"caption\": \"a\"}]", &res, &err) == -1);
    CHECK(res_from("{\"image_id\": 1}", &res, &err) == -1);
    /* empty results */
    CHECK_OK(res_from("[]", &res, &err), &err);
    CHECK(pvlm_capscore_run(&sc, &refs, &res, NULL, &err) == -1);
    pvlm_capres_free(&res);
    pvlm_caprefs_free(&refs);
    /* reference file problems */
    CHECK(refs_from("{\"images\": [{\"id\": 1}], \"annotations\": [{\"image_id\": 2, \"caption\": \"x\"}]}", &refs,
                    &err) == -1);
    CHECK_MSG(strstr(err.msg, "image id 2 is not in"), "%s", err.msg);
    CHECK(refs_from("{\"images\": [{\"id\": 1}, {\"id\": 1}], \"annotations\": []}", &refs, &err) == -1);
    CHECK_MSG(strstr(err.msg, "duplicate image id 1"), "%s", err.msg);
    CHECK(refs_from("{\"annotations\": [{\"image_id\": 1}]}", &refs, &err) == -1);
    CHECK(refs_from("[]", &refs, &err) == -1);
    /* an image with no reference captions cannot be scored */
    CHECK_OK(
        refs_from("{\"images\": [{\"id\": 1}, {\"id\": 2}], \"annotations\": [{\"image_id\": 1, \"caption\": \"x\"}]}",
                  &refs, &err),
        &err);
    CHECK_OK(res_from("[{\"image_id\": 2, \"caption\": \"x\"}]", &res, &err), &err);
    CHECK(pvlm_capscore_run(&sc, &refs, &res, NULL, &err) == -1);
    CHECK_MSG(strstr(err.msg, "no reference captions"), "%s", err.msg);
    pvlm_capres_free(&res);
    pvlm_caprefs_free(&refs);
    /* missing files */
    CHECK(pvlm_caprefs_load(&refs, "/nonexistent/refs.json", &err) == -1);
    CHECK(strstr(err.msg, "/nonexistent/refs.json") != NULL);
}

/* Rules of CoreNLP 3.4.1's PTBLexer.flex on cases of our own (score_ptb_java has the official ones). */
static void test_lexer_rules(void) {
    check_tok("Ark. x", "ark. x"); /* [A]rk: the bracketed capital is case-sensitive */
    check_tok("ark. x", "ark x");
    check_tok("Ptys. x", "ptys. x"); /* Pp?t[ye]s?: [ye] lower-case only */
    check_tok("PTES. x", "ptes x");
    check_tok("c++ f# C#", "c++ f# c#");
    check_tok("a &MDASH; b &ndash; c", "a b c");
    check_tok("caf&eacute; ok", "caf&eacute; ok"); /* SPLET letters stay entities inside words */
    check_tok("x@y.com <x@y.com>", "x@y.com <x@y.com>");
    check_tok("call (555) 555-1212 or 555-1212", "call -lrb-555-rrb-\xc2\xa0" "555-1212 or 555-1212");
    check_tok("\xc2\xbd \xe2\x85\x9b \xc2\xa2" "5 \xe2\x82\xa4" "5 \xe2\x82\xac" "5",
              "1/2 \xe2\x85\x9b cents 5 \xe2\x82\xa4 5 $ 5"); /* only five fractions and four currencies map */
    check_tok(":) :-( ;-) =D <3", ":-rrb- :--lrb- ;--rrb- =d < 3");
    check_tok("\xce\xa3\xce\x91\xce\xa3", "\xcf\x83\xce\xb1\xcf\x82"); /* final sigma in the token */
    check_tok("\xc4\xb0stanbul", "i\xcc\x87stanbul");
    check_tok("Jan. 5 No. 5 no 5", "jan. 5 no. 5 no 5");
    check_tok("U.S.A. is", "u.s.a. is");
    check_tok("don't can't won't", "do n't ca n't wo n't");
    check_tok("3-2-1 3-2-10 10/12/2020", "3-2-1 3-2-10 10/12/2020");
    check_tok("see google.com/path. now", "see google.com/path now");
    check_tok("--- ---- ----- -", "-----"); /* 3 or 4 hyphens are --, removed; 5 stay */
    check_tok("I love NY!!! ?!", "i love ny !!! ?!");
    check_tok("'Tis 'twas Y'know", "'t is 't was y' know");
    check_tok("#tag @user_1 ##", "#tag @user_1 ##");
}

static void test_odd_text(void) {
    check_tok("", "");
    check_tok(" \t ", "");
    check_tok("...", "");
    check_tok("\"\"''``", "");
    check_tok("emoji \xF0\x9F\x98\x80\xF0\x9F\x98\x80 here", "emoji here");
    check_tok("ctrl\x01\x02\x7f chars", "ctrl chars");
    check_tok("bad \xff\xfe utf8 \xe2\x82", "bad utf8");
    check_tok("surrogate \xed\xa0\x80 x", "surrogate x");
    /* line-break characters are spaces (the Java tokenizer would start new lines) */
    check_tok("a dog\rruns", "a dog runs");
    check_tok("a dog\xe2\x80\xa8runs\fhere\vnow\xc2\x85"
              "end",
              "a dog runs here now end");
    check_tok("it's a dog's life, isn't it?", "it 's a dog 's life is n't it");
    /* FAKEDUCKFEET: the lexer keeps "<<" and ">>" whole */
    check_tok("<<<<>>>> < b >", "<< << >> >> < b >");
    /* very long inputs: linear time, no crash */
    size_t n = 1 << 20;
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++) big[i] = "ab <c.d-e'f"[i % 11];
    big[n] = 0;
    char *t = tok(big);
    CHECK(t && strlen(t) > 0);
    free(t);
    memset(big, '<', n);
    t = tok(big);
    CHECK(t && strlen(t) == n + n / 2 - 1); /* "<<" tokens */
    free(t);
    memset(big, 'x', n);
    t = tok(big);
    CHECK(t && strlen(t) == n);
    free(t);
    for (size_t i = 0; i < n; i++) big[i] = (char)(0x80 | (i & 0x3F));
    t = tok(big);
    CHECK(t && strlen(t) == 0);
    free(t);
    free(big);

    /* scoring odd captions: empty candidate and empty reference give finite numbers */
    pvlm_caprefs refs;
    pvlm_capres res;
    pvlm_capscore sc;
    pvlm_err err = {0};
    CHECK_OK(refs_from("{\"images\": [{\"id\": 1}, {\"id\": 2}], \"annotations\": ["
                       "{\"image_id\": 1, \"caption\": \"a dog on grass\"}, {\"image_id\": 1, \"caption\": \"\"},"
                       "{\"image_id\": 2, \"caption\": \"\\u2028\\r\"}]}",
                       &refs, &err),
             &err);
    CHECK_OK(
        res_from("[{\"image_id\": 1, \"caption\": \"\"}, {\"image_id\": 2, \"caption\": \"\\ud83d\\ude00 \\u0007\"}]",
                 &res, &err),
        &err);
    CHECK_OK(pvlm_capscore_run(&sc, &refs, &res, NULL, &err), &err);
    if (!err.code) {
        for (int k = 0; k < 6; k++)
            CHECK_MSG(isfinite(sc.split[0].score[k]), "metric %d = %g", k, sc.split[0].score[k]);
        CHECK(sc.split[0].score[PVLM_CAP_CIDER] == 0.0);
        pvlm_capscore_free(&sc);
    }
    pvlm_capres_free(&res);
    pvlm_caprefs_free(&refs);
}

static void test_metrics(void) {
    /* perfect candidate: BLEU 1 (minus the smoothing), ROUGE-L 1 */
    const char *cand[] = {"a dog runs on the grass"};
    const char *refs[] = {"a dog runs on the grass", "a cat"};
    int32_t rb[] = {0, 2};
    pvlm_tokset ts;
    pvlm_err err = {0};
    CHECK_OK(pvlm_ptb_tokset_build(&ts, 1, cand, rb, refs, &err), &err);
    double bleu[4], rouge, cider;
    pvlm_bleu_stats st;
    CHECK_OK(pvlm_bleu_score(&ts, bleu, NULL, &st, &err), &err);
    for (int k = 0; k < 4; k++) CHECK_CLOSE(bleu[k], 1.0, 0, 1e-8);
    CHECK(st.testlen == 6 && st.reflen == 6 && st.guess[3] == 3 && st.correct[3] == 3);
    CHECK_OK(pvlm_rouge_score(&ts, &rouge, NULL, &err), &err);
    CHECK_CLOSE(rouge, 1.0, 0, 1e-12);
    /* one image: ref_len = log(1) = 0, so every CIDEr weight is 0 */
    CHECK_OK(pvlm_cider_score(&ts, &cider, NULL, &err), &err);
    CHECK(cider == 0.0);
    pvlm_ptb_tokset_free(&ts);
    /* 'closest' reference length: ties go to the shorter one */
    const char *c2[] = {"one two three four five"};
    const char *r2[] = {"one two three four five six", "one two three four"};
    CHECK_OK(pvlm_ptb_tokset_build(&ts, 1, c2, rb, r2, &err), &err);
    CHECK_OK(pvlm_bleu_score(&ts, bleu, NULL, &st, &err), &err);
    CHECK(st.reflen == 4);
    pvlm_ptb_tokset_free(&ts);
    /* Python float repr */
    char b[64];
    pvlm_bleu_py_repr(0.1, b, sizeof b);
    CHECK(!strcmp(b, "0.1"));
    pvlm_bleu_py_repr(1e16, b, sizeof b);
    CHECK(!strcmp(b, "1e+16"));
    pvlm_bleu_py_repr(1e-5, b, sizeof b);
    CHECK(!strcmp(b, "1e-05"));
    pvlm_bleu_py_repr(0.0001, b, sizeof b);
    CHECK(!strcmp(b, "0.0001"));
    pvlm_bleu_py_repr(123.0, b, sizeof b);
    CHECK(!strcmp(b, "123.0"));
    pvlm_bleu_py_repr(0.99968198778831, b, sizeof b);
    CHECK(!strcmp(b, "0.99968198778831"));
    /* numpy pairwise summation differs from a plain loop and is reproduced */
    double a[300], plain = 0;
    for (int i = 0; i < 300; i++) {
        a[i] = 1.0 / (i + 1) + (i % 7) * 1e-3;
        plain += a[i];
    }
    CHECK(fabs(pvlm_ptb_np_sum(a, 300) - plain) < 1e-12);
}

/* NoCaps: per-domain scores are the scores of each domain on its own. */
static void test_nocaps(void) {
    const char *doms[] = {"in-domain", "near-domain", "out-domain"};
    const char *caps[6][3] = {
        {"A dog runs on the grass.", "a brown dog running in a field", "dog playing outside"},
        {"Two cats sleep on a red couch.", "cats sleeping on a sofa", "a pair of cats resting"},
        {"A man rides a bike down the street.", "a cyclist on a city road", "man riding a bicycle"},
        {"A plate of food with rice and beans.", "rice and beans on a plate", "a meal on a table"},
        {"A red fire truck parked outside.", "a fire engine on the street", "red truck near a building"},
        {"An owl sitting on a branch.", "a bird perched in a tree", "owl on a tree branch at night"},
    };
    const char *hyp[6] = {"a dog running on grass", "two cats on a couch",        "a man riding a bike",
                          "a plate with rice",      "a fire truck on the street", "a bird on a branch"};
    json_t *refs_all = json_object(), *imgs = json_array(), *anns = json_array(), *res_all = json_array();
    for (int i = 0; i < 6; i++) {
        json_t *im = json_pack("{s:i, s:s}", "id", 100 + i, "domain", doms[i % 3]);
        json_array_append_new(imgs, im);
        for (int k = 0; k < 3; k++)
            json_array_append_new(anns, json_pack("{s:i, s:s}", "image_id", 100 + i, "caption", caps[i][k]));
        json_array_append_new(res_all, json_pack("{s:i, s:s}", "image_id", 100 + i, "caption", hyp[i]));
    }
    json_object_set_new(refs_all, "images", imgs);
    json_object_set_new(refs_all, "annotations", anns);
    pvlm_caprefs refs;
    pvlm_capres res;
    pvlm_capscore sc;
    pvlm_err err = {0};
    CHECK_OK(pvlm_caprefs_from_json(&refs, refs_all, "nocaps.json", &err), &err);
    CHECK(refs.any_domain);
    CHECK_OK(pvlm_capres_from_json(&res, res_all, "res.json", &err), &err);
    CHECK_OK(pvlm_capscore_run(&sc, &refs, &res, NULL, &err), &err);
    CHECK(sc.n_split == 4);
    for (int d = 0; d < 3 && sc.n_split == 4; d++) {
        CHECK(!strcmp(sc.split[d + 1].name, doms[d]));
        CHECK(sc.split[d + 1].n_img == 2);
        /* the same domain scored alone, without domain fields */
        json_t *r1 = json_object(), *i1 = json_array(), *a1 = json_array(), *s1 = json_array();
        for (int i = d; i < 6; i += 3) {
            json_array_append_new(i1, json_pack("{s:i}", "id", 100 + i));
            for (int k = 0; k < 3; k++)
                json_array_append_new(a1, json_pack("{s:i, s:s}", "image_id", 100 + i, "caption", caps[i][k]));
            json_array_append_new(s1, json_pack("{s:i, s:s}", "image_id", 100 + i, "caption", hyp[i]));
        }
        json_object_set_new(r1, "images", i1);
        json_object_set_new(r1, "annotations", a1);
        pvlm_caprefs rr;
        pvlm_capres rs;
        pvlm_capscore one;
        CHECK_OK(pvlm_caprefs_from_json(&rr, r1, "one.json", &err), &err);
        CHECK_OK(pvlm_capres_from_json(&rs, s1, "one-res.json", &err), &err);
        CHECK_OK(pvlm_capscore_run(&one, &rr, &rs, NULL, &err), &err);
        CHECK(one.n_split == 1);
        for (int k = 0; k < 6; k++) CHECK(one.split[0].score[k] == sc.split[d + 1].score[k]);
        /* CIDEr within the split differs from the overall per-image values (different df, log N) */
        CHECK(one.per_image[PVLM_CAP_CIDER] != sc.per_image[(size_t)d * PVLM_CAP_NMETRICS + PVLM_CAP_CIDER]);
        pvlm_capscore_free(&one);
        pvlm_capres_free(&rs);
        pvlm_caprefs_free(&rr);
        json_decref(r1);
        json_decref(s1);
    }
    json_t *j = pvlm_capscore_to_json(&sc);
    CHECK(json_object_get(json_object_get(j, "domains"), "out-domain") != NULL);
    CHECK(json_integer_value(json_object_get(j, "n_images")) == 6);
    json_decref(j);
    pvlm_capscore_free(&sc);
    pvlm_capres_free(&res);
    pvlm_caprefs_free(&refs);
    json_decref(refs_all);
    json_decref(res_all);
}

static void check_str(char *got, const char *exp) {
    CHECK_MSG(got && !strcmp(got, exp), "\"%s\", expected \"%s\"", got ? got : "(null)", exp);
    free(got);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void test_vqa(void) {
    check_str(pvlm_vqa_process_punctuation("yes."), "yes");
    check_str(pvlm_vqa_process_punctuation("3.5"), "3.5");
    check_str(pvlm_vqa_process_punctuation("1,000"), "1000");
    check_str(pvlm_vqa_process_punctuation("t-shirt"), "t shirt");
    check_str(pvlm_vqa_process_punctuation("left - right"), "left  right");
    check_str(pvlm_vqa_process_digit_article("The Two dogs"), "2 dogs");
    check_str(pvlm_vqa_process_digit_article("dont  know"), "don't know");
    check_str(pvlm_vqa_clean(" \tred\n "), "red");
    /* Python 3: str.lower with SpecialCasing and Final_Sigma; \d is any Nd digit */
    check_str(pvlm_vqa_process_digit_article("\xc4\xb0STANBUL \xce\x9f\xce\x94\xce\x9f\xce\xa3"),
              "i\xcc\x87stanbul \xce\xbf\xce\xb4\xce\xbf\xcf\x82");
    check_str(pvlm_vqa_process_digit_article("\xce\xa3" "A"), "\xcf\x83" "a"); /* not final: sigma */
    /* "١,٢" (Arabic-Indic digits) is a digit,digit group: punctuation is deleted, not spaced */
    check_str(pvlm_vqa_process_punctuation("a-b \xd9\xa1,\xd9\xa2"), "ab \xd9\xa1\xd9\xa2");
    check_str(pvlm_vqa_process_punctuation("x.\xd9\xa1 y."), "x.\xd9\xa1 y"); /* period before a digit stays */
    CHECK(pvlm_vqa_py_round(2.675, 2) == 2.67); /* 2.675 is 2.67499999... in binary */
    CHECK(pvlm_vqa_py_round(0.125, 2) == 0.12); /* exact tie: to even */
    CHECK(pvlm_vqa_py_round(100.0 * (2.0 / 3.0), 2) == 66.67);
    pvlm_vqa_item it = {1,  "Yes", {"yes", "yes", "yes", "yes", "yes", "yes", "yes", "yes", "yes", "yes"},
                        10, "is",  "yes/no", {NULL}};
    CHECK(pvlm_vqa_question_acc(&it, PVLM_VQA_2021) == 0.0);
    CHECK(pvlm_vqa_question_acc(&it, PVLM_VQA_PRE2021) == 1.0);

    /* files: official formats, and errors */
    char dir[1024], q[1200], a[1200], r[1200];
    CHECK(pvlm_test_scratch(dir, sizeof dir, "/tmp/pvlm-score-unit", NULL, 0) == 0);
    snprintf(q, sizeof q, "%s/q.json", dir);
    snprintf(a, sizeof a, "%s/a.json", dir);
    snprintf(r, sizeof r, "%s/r.json", dir);
    write_file(q, "{\"questions\": [{\"question_id\": 1, \"image_id\": 5, \"question\": \"Is it?\"},"
                  " {\"question_id\": 2, \"image_id\": 5, \"question\": \"How many?\"}]}");
    write_file(a, "{\"annotations\": [{\"question_id\": 1, \"image_id\": 5, \"question_type\": \"is it\","
                  " \"answer_type\": \"yes/no\", \"answers\": [{\"answer\": \"yes\"}, {\"answer\": \"yes\"}, "
                  "{\"answer\": \"no\"}]},"
                  " {\"question_id\": 2, \"image_id\": 5, \"question_type\": \"how many\", \"answer_type\": \"number\","
                  " \"answers\": [{\"answer\": \"2\"}, {\"answer\": \"two\"}, {\"answer\": \"3\"}]}]}");
    write_file(r, "[{\"question_id\": 2, \"answer\": \"Two\"}, {\"question_id\": 1, \"answer\": \"yes\"}]");
    pvlm_vqa_result res;
    pvlm_err err = {0};
    CHECK_OK(pvlm_vqa_evaluate_files(q, a, r, PVLM_VQA_2021, &res, &err), &err);
    if (!err.code) {
        /* answers without answer_id: the script's leave-one-out drops every equal dict, so leaving out one
           "yes" drops both (after normalisation "two" equals "2" too): (0 + 0 + 2/3) / 3 */
        CHECK(res.n == 2 && res.question_id[0] == 1);
        CHECK_MSG(res.acc_x100[0] == 22.22 && res.acc_x100[1] == 22.22, "%g %g", res.acc_x100[0], res.acc_x100[1]);
        CHECK(res.n_qtype == 2 && res.n_atype == 2);
        pvlm_vqa_result_free(&res);
    }
    /* with answer_ids (as in the official annotations) every dict differs: (1/3 + 1/3 + 2/3) / 3 */
    write_file(a, "{\"annotations\": [{\"question_id\": 1, \"image_id\": 5, \"question_type\": \"is it\","
                  " \"answer_type\": \"yes/no\", \"answers\": [{\"answer\": \"yes\", \"answer_id\": 1}, "
                  "{\"answer\": \"yes\", \"answer_id\": 2}, {\"answer\": \"no\", \"answer_id\": 3}]},"
                  " {\"question_id\": 2, \"image_id\": 5, \"question_type\": \"how many\", \"answer_type\": \"number\","
                  " \"answers\": [{\"answer\": \"2\", \"answer_id\": 1}, {\"answer\": \"two\", \"answer_id\": 2}, "
                  "{\"answer\": \"3\", \"answer_id\": 3}]}]}");
    CHECK_OK(pvlm_vqa_evaluate_files(q, a, r, PVLM_VQA_2021, &res, &err), &err);
    if (!err.code) {
        CHECK_MSG(res.acc_x100[0] == 44.44 && res.acc_x100[1] == 44.44, "%g %g", res.acc_x100[0], res.acc_x100[1]);
        pvlm_vqa_result_free(&res);
    }
    write_file(r, "[{\"question_id\": 1, \"answer\": \"yes\"}]");
    CHECK(pvlm_vqa_evaluate_files(q, a, r, PVLM_VQA_2021, &res, &err) == -1);
    CHECK_MSG(strstr(err.msg, "no answer for question 2"), "%s", err.msg);
    write_file(r, "[{\"question_id\": 1, \"answer\": \"yes\"}, {\"question_id\": 2, \"answer\": \"2\"}, "
                  "{\"question_id\": 1, \"answer\": \"no\"}]");
    CHECK(pvlm_vqa_evaluate_files(q, a, r, PVLM_VQA_2021, &res, &err) == -1);
    CHECK_MSG(strstr(err.msg, "duplicate answer for question 1"), "%s", err.msg);
    write_file(r, "[{\"question_id\": 1, \"answer\": \"yes\"}, {\"question_id\": 2, \"answer\": \"2\"}, "
                  "{\"question_id\": 7, \"answer\": \"no\"}]");
    CHECK(pvlm_vqa_evaluate_files(q, a, r, PVLM_VQA_2021, &res, &err) == -1);
    CHECK_MSG(strstr(err.msg, "question 7 is not in the annotations"), "%s", err.msg);
    write_file(r, "[{\"question_id\": 1}]");
    CHECK(pvlm_vqa_evaluate_files(q, a, r, PVLM_VQA_2021, &res, &err) == -1);
    CHECK_MSG(strstr(err.msg, "answer"), "%s", err.msg);
}

int main(void) {
    test_errors();
    test_lexer_rules();
    test_odd_text();
    test_metrics();
    test_nocaps();
    test_vqa();
    return pvlm_test_done("score_unit");
}
