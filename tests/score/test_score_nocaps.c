/* test_score_nocaps.c - NoCaps per-domain scoring and the evaluation server's formats on a realistic
 * synthetic split: 60 images with NoCaps-style ids, file names and domains (in-domain, near-domain and
 * out-domain mixed in the proportions of the real val split, 1413 : 2150 : 937), 10 reference captions
 * each, one candidate each, made from per-domain vocabularies by a fixed random generator.
 * Checked: each domain's scores equal those of a separate evaluation of that domain's images alone
 * (as the server evaluates them: CIDEr's document frequencies come from the domain's references),
 * "entire" equals the evaluation of all images, the server result has its exact shape and key names,
 * and the submission file lists every image of the split once in reference order (a missing image and
 * an image without a domain are errors naming them). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "score/capscore.h"
#include "harness.h"

#define N_IMG 60

static const char *const DOMAINS[3] = {"in-domain", "near-domain", "out-domain"};
static const char *const WORDS[3][8] = {
    {"dog", "cat", "person", "bus", "pizza", "bench", "kite", "surfboard"},
    {"tiger", "drum", "lantern", "canoe", "harp", "owl", "sled", "tractor"},
    {"accordion", "armadillo", "jellyfish", "sushi", "cannon", "porcupine", "ferris wheel", "harmonica"},
};
static const char *const FILL[] = {"a", "the", "on", "with", "near", "large", "small", "red", "two", "sitting"};

static uint64_t next(uint64_t *s) { /* splitmix64: deterministic captions without global state */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static json_t *caption(uint64_t *s, int dom) {
    char buf[256] = "";
    int n = 5 + (int)(next(s) % 6);
    for (int w = 0; w < n; w++) {
        const char *x = next(s) % 3 == 0 ? WORDS[dom][next(s) % 8] : FILL[next(s) % 10];
        strncat(buf, w ? " " : "A ", sizeof buf - strlen(buf) - 1);
        strncat(buf, x, sizeof buf - strlen(buf) - 1);
    }
    strncat(buf, ".", sizeof buf - strlen(buf) - 1);
    return json_string(buf);
}

/* domain of image i: about 31% in, 48% near, 21% out, interleaved as in the real file */
static int domain_of(int i) {
    int r = (i * 37) % 100;
    return r < 31 ? 0 : r < 79 ? 1 : 2;
}

/* the references and results of the images whose domain is `only` (-1: all) */
static void make(int only, json_t **refs, json_t **res) {
    uint64_t s = 42;
    json_t *images = json_array(), *anns = json_array();
    *res = json_array();
    int ann_id = 0;
    for (int i = 0; i < N_IMG; i++) {
        int d = domain_of(i);
        json_t *cand = caption(&s, d);
        json_t *caps[10];
        for (int k = 0; k < 10; k++) caps[k] = caption(&s, d);
        char fn[64];
        snprintf(fn, sizeof fn, "%016llx.jpg", (unsigned long long)(next(&s) & 0xFFFFFFFFFFFFULL));
        if (only >= 0 && d != only) {
            json_decref(cand);
            for (int k = 0; k < 10; k++) json_decref(caps[k]);
            continue;
        }
        int64_t id = 4500 - 3 * i; /* not sorted, not dense */
        json_array_append_new(images, json_pack("{s:I, s:s, s:s, s:i, s:i}", "id", (json_int_t)id, "file_name", fn,
                                                "domain", DOMAINS[d], "height", 480, "width", 640));
        for (int k = 0; k < 10; k++)
            json_array_append_new(anns, json_pack("{s:I, s:i, s:o}", "image_id", (json_int_t)id, "id", ann_id++,
                                                  "caption", caps[k]));
        json_array_append_new(*res, json_pack("{s:I, s:o}", "image_id", (json_int_t)id, "caption", cand));
    }
    *refs = json_pack("{s:o, s:o}", "images", images, "annotations", anns);
}

static int run(int only, pvlm_capscore *sc, pvlm_caprefs *refs, pvlm_capres *res) {
    json_t *jr, *js;
    pvlm_err err = {0};
    make(only, &jr, &js);
    int rc = pvlm_caprefs_from_json(refs, jr, "refs", &err) || pvlm_capres_from_json(res, js, "res", &err) ||
             pvlm_capscore_run(sc, refs, res, NULL, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    json_decref(jr);
    json_decref(js);
    return rc;
}

int main(void) {
    pvlm_caprefs refs;
    pvlm_capres res;
    pvlm_capscore all;
    if (run(-1, &all, &refs, &res)) return pvlm_test_done("score_nocaps");
    CHECK(all.n_split == 4);
    int counted = 0;
    for (int d = 0; d < 3; d++) {
        const pvlm_capsplit *sp = NULL;
        for (int k = 1; k < all.n_split; k++)
            if (!strcmp(all.split[k].name, DOMAINS[d])) sp = &all.split[k];
        CHECK_MSG(sp != NULL, "no split %s", DOMAINS[d]);
        if (!sp) continue;
        pvlm_caprefs r1;
        pvlm_capres s1;
        pvlm_capscore one;
        if (run(d, &one, &r1, &s1)) continue;
        CHECK(sp->n_img == one.n_img && one.n_img > 5);
        counted += sp->n_img;
        for (int k = 0; k < PVLM_CAP_METEOR; k++)
            CHECK_MSG(sp->score[k] == one.split[0].score[k], "%s %s: %.17g in the split, %.17g alone", DOMAINS[d],
                      pvlm_cap_metric_names[k], sp->score[k], one.split[0].score[k]);
        pvlm_capscore_free(&one);
        pvlm_caprefs_free(&r1);
        pvlm_capres_free(&s1);
    }
    CHECK(counted == N_IMG);

    /* the server's result: [{"in-domain": M}, {"near-domain": M}, {"out-domain": M}, {"entire": M}] */
    pvlm_err err = {0};
    json_t *nc = pvlm_capscore_nocaps_json(&all, &err);
    CHECK_MSG(nc && json_array_size(nc) == 4, "%s", err.msg);
    static const char *const keys[8] = {"B1", "B2", "B3", "B4", "METEOR", "ROUGE-L", "CIDEr", "SPICE"};
    for (size_t q = 0; nc && q < 4; q++) {
        const json_t *o = json_array_get(nc, q);
        const char *name = q < 3 ? DOMAINS[q] : "entire";
        const json_t *m = json_object_get(o, name);
        CHECK_MSG(json_object_size(o) == 1 && json_object_size(m) == 8, "entry %zu is not {\"%s\": 8 metrics}", q, name);
        size_t i = 0;
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)m, key, v) CHECK_MSG(i < 8 && !strcmp(key, keys[i++]), "key %s", key);
        CHECK(json_is_null(json_object_get(m, "METEOR")) && json_is_null(json_object_get(m, "SPICE")));
    }
    if (nc)
        CHECK(json_real_value(json_object_get(json_object_get(json_array_get(nc, 3), "entire"), "CIDEr")) ==
              all.split[0].score[PVLM_CAP_CIDER]);
    json_decref(nc);

    /* the submission: every image once, reference order */
    json_t *sub = pvlm_capres_submission_json(&res, &refs, &err);
    CHECK_MSG(sub && json_array_size(sub) == N_IMG, "%s", err.msg);
    for (size_t i = 0; sub && i < json_array_size(sub); i++) {
        const json_t *o = json_array_get(sub, i);
        CHECK(json_object_size(o) == 2 && json_integer_value(json_object_get(o, "image_id")) == refs.image_id[i]);
        CHECK(json_is_string(json_object_get(o, "caption")));
    }
    json_decref(sub);
    res.n--; /* drop the last result: the split is incomplete */
    CHECK(pvlm_capres_submission_json(&res, &refs, &err) == NULL);
    CHECK_MSG(strstr(err.msg, "no caption for image id"), "%s", err.msg);
    res.n++;
    free(refs.domain[0]); /* an image without a domain cannot be placed */
    refs.domain[0] = NULL;
    pvlm_capscore_free(&all);
    CHECK_OK(pvlm_capscore_run(&all, &refs, &res, NULL, &err), &err);
    CHECK(pvlm_capscore_nocaps_json(&all, &err) == NULL);
    CHECK_MSG(strstr(err.msg, "1 of the 60 scored images have no \"domain\""), "%s", err.msg);
    pvlm_capscore_free(&all);
    pvlm_caprefs_free(&refs);
    pvlm_capres_free(&res);
    return pvlm_test_done("score_nocaps");
}
