/* vqa_eval.c - official VQA v2 accuracy; see vqa_eval.h. */
#include "score/vqa_eval.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/i64map.h"
#include "core/json.h"
#include "core/ucd.h"
#include "core/utf8.h"
#include "score/ptb.h"

double pvlm_vqa_py_round(double x, int nd) {
    char buf[512];
    snprintf(buf, sizeof buf, "%.*f", nd, x); /* glibc: exact value, ties to even */
    return strtod(buf, NULL);
}

static char *dupn(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* length of the whitespace character ending at byte end (exclusive), 0 if none */
static size_t py_space_before(const char *s, size_t end) {
    for (size_t k = 1; k <= 3 && k <= end; k++)
        if (pvlm_py_space_len(s, end - k, end) == k) return k;
    return 0;
}

char *pvlm_vqa_clean(const char *s) {
    size_t n = strlen(s);
    char *t = dupn(s, n);
    if (!t) return NULL;
    for (size_t i = 0; i < n; i++)
        if (t[i] == '\n' || t[i] == '\t') t[i] = ' ';
    size_t a = 0, b = n, k;
    while (a < b && (k = pvlm_py_space_len(t, a, b))) a += k;
    while (b > a && (k = py_space_before(t, b))) b -= k;
    memmove(t, t + a, b - a);
    t[b - a] = 0;
    return t;
}

/* Python 3's re \d (Unicode decimal digits, Nd): the UTF-8 length of a digit starting at s[i], else 0 */
static size_t digit_at(const char *s, size_t i, size_t n) {
    if (i >= n) return 0;
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) return c >= '0' && c <= '9';
    uint32_t cp;
    int k = pvlm_utf8_decode(s + i, n - i, &cp);
    return k && pvlm_ucd_is_digit(cp) ? (size_t)k : 0;
}
/* a digit ending at s[end-1] */
static int digit_before(const char *s, size_t end) {
    for (size_t k = 1; k <= 4 && k <= end; k++)
        if (digit_at(s, end - k, end) == k) return 1;
    return 0;
}

char *pvlm_vqa_process_punctuation(const char *in) {
    static const char punct[] = {';',  '/', '[', ']', '"', '{', '}', '(', ')', '=', '+',
                                 '\\', '_', '-', '>', '<', '@', '`', ',', '?', '!'};
    size_t n = strlen(in);
    /* commaStrip = (\d)(\,)(\d) searched in the input */
    int comma = 0;
    for (size_t i = 1; i + 1 < n && !comma; i++)
        if (in[i] == ',' && digit_before(in, i) && digit_at(in, i + 1, n)) comma = 1;
    char *out = dupn(in, n);
    if (!out) return NULL;
    for (size_t q = 0; q < sizeof punct; q++) {
        char p = punct[q];
        int del = comma;
        for (size_t i = 0; i < n && !del; i++)
            if (in[i] == p && ((i + 1 < n && in[i + 1] == ' ') || (i > 0 && in[i - 1] == ' '))) del = 1;
        size_t o = 0;
        for (size_t i = 0; out[i]; i++) {
            if (out[i] == p) {
                if (!del) out[o++] = ' ';
            } else {
                out[o++] = out[i];
            }
        }
        out[o] = 0;
    }
    /* periodStrip = (?!<=\d)(\.)(?!\d): a period not followed by a digit, at most 32 (count = re.UNICODE) */
    size_t o = 0;
    int removed = 0;
    size_t m = strlen(out);
    for (size_t i = 0; out[i]; i++) {
        if (out[i] == '.' && !digit_at(out, i + 1, m) && removed < 32) {
            removed++;
            continue;
        }
        out[o++] = out[i];
    }
    out[o] = 0;
    return out;
}

static const char *const manual_map[][2] = {{"none", "0"},  {"zero", "0"},  {"one", "1"},  {"two", "2"},
                                            {"three", "3"}, {"four", "4"},  {"five", "5"}, {"six", "6"},
                                            {"seven", "7"}, {"eight", "8"}, {"nine", "9"}, {"ten", "10"}};
/* The script's contraction table (word without apostrophes -> with). Keys
 * containing upper case ("Im", "Ive", "Id've") can never match lower-cased
 * words, as in the script. */
static const char *const contractions[][2] = {{"aint", "ain't"},
                                              {"arent", "aren't"},
                                              {"cant", "can't"},
                                              {"couldve", "could've"},
                                              {"couldnt", "couldn't"},
                                              {"couldn'tve", "couldn't've"},
                                              {"couldnt've", "couldn't've"},
                                              {"didnt", "didn't"},
                                              {"doesnt", "doesn't"},
                                              {"dont", "don't"},
                                              {"hadnt", "hadn't"},
                                              {"hadnt've", "hadn't've"},
                                              {"hadn'tve", "hadn't've"},
                                              {"hasnt", "hasn't"},
                                              {"havent", "haven't"},
                                              {"hed", "he'd"},
                                              {"hed've", "he'd've"},
                                              {"he'dve", "he'd've"},
                                              {"hes", "he's"},
                                              {"howd", "how'd"},
                                              {"howll", "how'll"},
                                              {"hows", "how's"},
                                              {"Id've", "I'd've"},
                                              {"I'dve", "I'd've"},
                                              {"Im", "I'm"},
                                              {"Ive", "I've"},
                                              {"isnt", "isn't"},
                                              {"itd", "it'd"},
                                              {"itd've", "it'd've"},
                                              {"it'dve", "it'd've"},
                                              {"itll", "it'll"},
                                              {"let's", "let's"},
                                              {"maam", "ma'am"},
                                              {"mightnt", "mightn't"},
                                              {"mightnt've", "mightn't've"},
                                              {"mightn'tve", "mightn't've"},
                                              {"mightve", "might've"},
                                              {"mustnt", "mustn't"},
                                              {"mustve", "must've"},
                                              {"neednt", "needn't"},
                                              {"notve", "not've"},
                                              {"oclock", "o'clock"},
                                              {"oughtnt", "oughtn't"},
                                              {"ow's'at", "'ow's'at"},
                                              {"'ows'at", "'ow's'at"},
                                              {"'ow'sat", "'ow's'at"},
                                              {"shant", "shan't"},
                                              {"shed've", "she'd've"},
                                              {"she'dve", "she'd've"},
                                              {"she's", "she's"},
                                              {"shouldve", "should've"},
                                              {"shouldnt", "shouldn't"},
                                              {"shouldnt've", "shouldn't've"},
                                              {"shouldn'tve", "shouldn't've"},
                                              {"somebody'd", "somebodyd"},
                                              {"somebodyd've", "somebody'd've"},
                                              {"somebody'dve", "somebody'd've"},
                                              {"somebodyll", "somebody'll"},
                                              {"somebodys", "somebody's"},
                                              {"someoned", "someone'd"},
                                              {"someoned've", "someone'd've"},
                                              {"someone'dve", "someone'd've"},
                                              {"someonell", "someone'll"},
                                              {"someones", "someone's"},
                                              {"somethingd", "something'd"},
                                              {"somethingd've", "something'd've"},
                                              {"something'dve", "something'd've"},
                                              {"somethingll", "something'll"},
                                              {"thats", "that's"},
                                              {"thered", "there'd"},
                                              {"thered've", "there'd've"},
                                              {"there'dve", "there'd've"},
                                              {"therere", "there're"},
                                              {"theres", "there's"},
                                              {"theyd", "they'd"},
                                              {"theyd've", "they'd've"},
                                              {"they'dve", "they'd've"},
                                              {"theyll", "they'll"},
                                              {"theyre", "they're"},
                                              {"theyve", "they've"},
                                              {"twas", "'twas"},
                                              {"wasnt", "wasn't"},
                                              {"wed've", "we'd've"},
                                              {"we'dve", "we'd've"},
                                              {"weve", "we've"},
                                              {"werent", "weren't"},
                                              {"whatll", "what'll"},
                                              {"whatre", "what're"},
                                              {"whats", "what's"},
                                              {"whatve", "what've"},
                                              {"whens", "when's"},
                                              {"whered", "where'd"},
                                              {"wheres", "where's"},
                                              {"whereve", "where've"},
                                              {"whod", "who'd"},
                                              {"whod've", "who'd've"},
                                              {"who'dve", "who'd've"},
                                              {"wholl", "who'll"},
                                              {"whos", "who's"},
                                              {"whove", "who've"},
                                              {"whyll", "why'll"},
                                              {"whyre", "why're"},
                                              {"whys", "why's"},
                                              {"wont", "won't"},
                                              {"wouldve", "would've"},
                                              {"wouldnt", "wouldn't"},
                                              {"wouldnt've", "wouldn't've"},
                                              {"wouldn'tve", "wouldn't've"},
                                              {"yall", "y'all"},
                                              {"yall'll", "y'all'll"},
                                              {"y'allll", "y'all'll"},
                                              {"yall'd've", "y'all'd've"},
                                              {"y'alld've", "y'all'd've"},
                                              {"y'all'dve", "y'all'd've"},
                                              {"youd", "you'd"},
                                              {"youd've", "you'd've"},
                                              {"you'dve", "you'd've"},
                                              {"youll", "you'll"},
                                              {"youre", "you're"},
                                              {"youve", "you've"}};

static int word_is(const char *w, size_t n, const char *lit) {
    return strlen(lit) == n && !memcmp(w, lit, n);
}

char *pvlm_vqa_process_digit_article(const char *in) {
    size_t ln = 0;
    char *low = pvlm_ucd_lower_utf8(in, strlen(in), &ln); /* Python 3's str.lower */
    char *out = low ? malloc(2 * ln + 64) : NULL;
    if (!low || !out) {
        free(low);
        free(out);
        return NULL;
    }
    size_t o = 0, i = 0, k;
    while (i < ln) {
        while (i < ln && (k = pvlm_py_space_len(low, i, ln))) i += k;
        if (i >= ln) break;
        size_t j = i;
        while (j < ln && !pvlm_py_space_len(low, j, ln)) j++;
        const char *w = low + i;
        size_t wn = j - i;
        i = j;
        for (size_t q = 0; q < sizeof manual_map / sizeof manual_map[0]; q++)
            if (word_is(w, wn, manual_map[q][0])) {
                w = manual_map[q][1];
                wn = strlen(w);
                break;
            }
        if (word_is(w, wn, "a") || word_is(w, wn, "an") || word_is(w, wn, "the")) continue;
        for (size_t q = 0; q < sizeof contractions / sizeof contractions[0]; q++)
            if (word_is(w, wn, contractions[q][0])) {
                w = contractions[q][1];
                wn = strlen(w);
                break;
            }
        if (o) out[o++] = ' ';
        memcpy(out + o, w, wn); /* replacements are at most 2 bytes longer per word: out has 2*ln+64 */
        o += wn;
    }
    out[o] = 0;
    free(low);
    return out;
}

/* Are human answers q and k equal dicts (after normalisation, as the script compares them)? */
static int same_dict(const pvlm_vqa_item *it, char *const *gt, int q, int k) {
    if (q == k) return 1;
    const char *a = it->gt_rest[q], *b = it->gt_rest[k];
    return a && b && !strcmp(a, b) && !strcmp(gt[q], gt[k]);
}

double pvlm_vqa_question_acc(const pvlm_vqa_item *it, pvlm_vqa_version v) {
    int n = it->n_gt;
    char *gt[PVLM_VQA_MAX_GT] = {0};
    char *res = NULL;
    double acc = -1;
    if (n <= 0 || n > PVLM_VQA_MAX_GT) return -1;
    /* do the human answers differ? (2021: after cleaning; pre-2021: raw) */
    for (int k = 0; k < n; k++)
        if (!(gt[k] = v == PVLM_VQA_2021 ? pvlm_vqa_clean(it->gt[k]) : dupn(it->gt[k], strlen(it->gt[k])))) goto done;
    int differ = 0;
    for (int k = 1; k < n; k++)
        if (strcmp(gt[k], gt[0])) differ = 1;
    if (!(res = pvlm_vqa_clean(it->pred ? it->pred : ""))) goto done;
    if (v == PVLM_VQA_PRE2021 || differ) {
        char *t = pvlm_vqa_process_punctuation(res);
        free(res);
        res = t;
        if (!res) goto done;
        t = pvlm_vqa_process_digit_article(res);
        free(res);
        res = t;
        if (!res) goto done;
    }
    if (differ)
        for (int k = 0; k < n; k++) {
            char *t = pvlm_vqa_process_punctuation(gt[k]);
            free(gt[k]);
            gt[k] = t;
            if (!t) goto done;
            if (v == PVLM_VQA_2021) {
                t = pvlm_vqa_process_digit_article(gt[k]);
                free(gt[k]);
                gt[k] = t;
                if (!t) goto done;
            }
        }
    /* leave-one-out: min(1, matches among the other answers / 3), averaged;
       Python sums the list left to right starting from 0 */
    double sum = 0.0;
    for (int k = 0; k < n; k++) {
        int match = 0;
        for (int q = 0; q < n; q++)
            if (!same_dict(it, gt, q, k) && !strcmp(gt[q], res)) match++;
        double a = (double)match / 3.0;
        sum += a < 1.0 ? a : 1.0;
    }
    acc = sum / (double)n;
done:
    for (int k = 0; k < n; k++) free(gt[k]);
    free(res);
    return acc;
}

void pvlm_vqa_result_free(pvlm_vqa_result *r) {
    if (!r) return;
    for (int k = 0; k < r->n_qtype; k++) free(r->qtype[k]);
    for (int k = 0; k < r->n_atype; k++) free(r->atype[k]);
    free(r->qtype);
    free(r->atype);
    free(r->qtype_acc);
    free(r->atype_acc);
    free(r->qtype_n);
    free(r->atype_n);
    free(r->question_id);
    free(r->acc);
    free(r->acc_x100);
    memset(r, 0, sizeof *r);
}

/* group index of name in names[0..*n), adding it when new */
static int group_of(char ***names, double **sum, int **cnt, int *n, const char *name) {
    for (int k = 0; k < *n; k++)
        if (!strcmp((*names)[k], name)) return k;
    char **nn = realloc(*names, (size_t)(*n + 1) * sizeof *nn);
    if (!nn) return -1;
    *names = nn;
    double *ns = realloc(*sum, (size_t)(*n + 1) * sizeof *ns);
    if (!ns) return -1;
    *sum = ns;
    int *nc = realloc(*cnt, (size_t)(*n + 1) * sizeof *nc);
    if (!nc) return -1;
    *cnt = nc;
    if (!(nn[*n] = dupn(name, strlen(name)))) return -1;
    ns[*n] = 0.0;
    nc[*n] = 0;
    return (*n)++;
}

int pvlm_vqa_evaluate(const pvlm_vqa_item *items, int n, pvlm_vqa_version v, pvlm_vqa_result *out, pvlm_err *err) {
    memset(out, 0, sizeof *out);
    if (n <= 0) return pvlm_err_set(err, PVLM_EINVAL, "vqa: no questions to evaluate");
    out->question_id = malloc((size_t)n * sizeof *out->question_id);
    out->acc = malloc((size_t)n * sizeof *out->acc);
    out->acc_x100 = malloc((size_t)n * sizeof *out->acc_x100);
    if (!out->question_id || !out->acc || !out->acc_x100) goto oom;
    out->n = n;
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        if (items[i].n_gt <= 0 || items[i].n_gt > PVLM_VQA_MAX_GT) {
            pvlm_vqa_result_free(out);
            return pvlm_err_set(err, PVLM_EFORMAT, "vqa: question %lld has %d answers (1..%d allowed)",
                                (long long)items[i].question_id, items[i].n_gt, PVLM_VQA_MAX_GT);
        }
        double a = pvlm_vqa_question_acc(&items[i], v);
        if (a < 0) goto oom;
        out->question_id[i] = items[i].question_id;
        out->acc[i] = a;
        out->acc_x100[i] = pvlm_vqa_py_round(100 * a, 2);
        total += a;
        int g = group_of(&out->qtype, &out->qtype_acc, &out->qtype_n, &out->n_qtype,
                         items[i].question_type ? items[i].question_type : "");
        if (g < 0) goto oom;
        out->qtype_acc[g] += a;
        out->qtype_n[g]++;
        g = group_of(&out->atype, &out->atype_acc, &out->atype_n, &out->n_atype,
                     items[i].answer_type ? items[i].answer_type : "");
        if (g < 0) goto oom;
        out->atype_acc[g] += a;
        out->atype_n[g]++;
    }
    /* round(100*float(sum(acc))/len(acc), 2) */
    out->overall = pvlm_vqa_py_round(100 * total / (double)n, 2);
    for (int k = 0; k < out->n_qtype; k++)
        out->qtype_acc[k] = pvlm_vqa_py_round(100 * out->qtype_acc[k] / (double)out->qtype_n[k], 2);
    for (int k = 0; k < out->n_atype; k++)
        out->atype_acc[k] = pvlm_vqa_py_round(100 * out->atype_acc[k] / (double)out->atype_n[k], 2);
    return 0;
oom:
    pvlm_vqa_result_free(out);
    return pvlm_err_set(err, PVLM_ENOMEM, "vqa: out of memory");
}

static int get_qid(const json_t *o, const char *key, int64_t *out) {
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v)) return -1;
    *out = json_integer_value(v);
    return 0;
}

/* The fields of an answer dict other than "answer", as canonical JSON ("{}" when there are none): the
 * leave-one-out compares whole dicts (see vqa_eval.h). */
static int answer_rest(const json_t *dict, const char **out) {
    *out = NULL;
    json_t *cp = json_deep_copy(dict);
    if (!cp) return -1;
    json_object_del(cp, "answer");
    char *r = json_dumps(cp, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(cp);
    *out = r;
    return r ? 0 : -1;
}

int pvlm_vqa_evaluate_files(const char *questions, const char *annotations, const char *results, pvlm_vqa_version v,
                            pvlm_vqa_result *out, pvlm_err *err) {
    memset(out, 0, sizeof *out);
    json_t *jq = NULL, *ja = NULL, *jr = NULL;
    pvlm_vqa_item *items = NULL;
    pvlm_i64map qm = {0}, am = {0}; /* question id -> question / annotation index */
    int rc = -1;
    if (!(jq = pvlm_json_load_file(questions, err))) goto done;
    if (!(ja = pvlm_json_load_file(annotations, err))) goto done;
    if (!(jr = pvlm_json_load_file(results, err))) goto done;
    const json_t *qs = json_object_get(jq, "questions"), *as = json_object_get(ja, "annotations");
    if (!json_is_array(qs)) {
        pvlm_err_set(err, PVLM_EFORMAT, "%s: not a VQA questions file (needs a \"questions\" array)", questions);
        goto done;
    }
    if (!json_is_array(as)) {
        pvlm_err_set(err, PVLM_EFORMAT, "%s: not a VQA annotations file (needs an \"annotations\" array)", annotations);
        goto done;
    }
    if (!json_is_array(jr)) {
        pvlm_err_set(err, PVLM_EFORMAT, "%s: a results file is a JSON array of {\"question_id\", \"answer\"}", results);
        goto done;
    }
    size_t nq = json_array_size(qs), na = json_array_size(as), nr = json_array_size(jr);
    if (pvlm_i64map_init(&qm, nq) || pvlm_i64map_init(&am, na)) goto oom;
    for (size_t i = 0; i < nq; i++) {
        int64_t id;
        if (get_qid(json_array_get(qs, i), "question_id", &id)) {
            pvlm_err_set(err, PVLM_EFORMAT, "%s: questions[%zu]: missing or non-integer question_id", questions, i);
            goto done;
        }
        if (pvlm_i64map_add(&qm, id, (int64_t)i, NULL) < 0) goto oom;
    }
    items = calloc(na + 1, sizeof *items);
    if (!items) goto oom;
    for (size_t i = 0; i < na; i++) {
        const json_t *a = json_array_get(as, i);
        int64_t id;
        if (get_qid(a, "question_id", &id)) {
            pvlm_err_set(err, PVLM_EFORMAT, "%s: annotations[%zu]: missing or non-integer question_id", annotations, i);
            goto done;
        }
        if (pvlm_i64map_get(&qm, id) < 0) {
            pvlm_err_set(err, PVLM_EFORMAT, "%s: annotations[%zu]: question %lld is not in %s", annotations, i,
                         (long long)id, questions);
            goto done;
        }
        int added = pvlm_i64map_add(&am, id, (int64_t)i, NULL);
        if (added < 0) goto oom;
        if (!added) {
            pvlm_err_set(err, PVLM_EFORMAT, "%s: annotations[%zu]: duplicate question id %lld", annotations, i,
                         (long long)id);
            goto done;
        }
        const json_t *ans = json_object_get(a, "answers");
        const json_t *qt = json_object_get(a, "question_type"), *at = json_object_get(a, "answer_type");
        if (!json_is_array(ans) || json_array_size(ans) == 0 || json_array_size(ans) > PVLM_VQA_MAX_GT ||
            !json_is_string(qt) || !json_is_string(at)) {
            pvlm_err_set(err, PVLM_EFORMAT,
                         "%s: annotations[%zu] (question %lld): needs \"answers\" (1..%d) and string "
                         "\"question_type\", \"answer_type\"",
                         annotations, i, (long long)id, PVLM_VQA_MAX_GT);
            goto done;
        }
        items[i].question_id = id;
        items[i].question_type = json_string_value(qt);
        items[i].answer_type = json_string_value(at);
        items[i].n_gt = (int)json_array_size(ans);
        for (int k = 0; k < items[i].n_gt; k++) {
            const json_t *x = json_object_get(json_array_get(ans, (size_t)k), "answer");
            if (!json_is_string(x)) {
                pvlm_err_set(err, PVLM_EFORMAT,
                             "%s: annotations[%zu] (question %lld): answers[%d] has no string \"answer\"", annotations,
                             i, (long long)id, k);
                goto done;
            }
            items[i].gt[k] = json_string_value(x);
            if (answer_rest(json_array_get(ans, (size_t)k), &items[i].gt_rest[k])) goto oom;
        }
    }
    for (size_t r = 0; r < nr; r++) {
        const json_t *o = json_array_get(jr, r);
        int64_t id;
        if (get_qid(o, "question_id", &id)) {
            pvlm_err_set(err, PVLM_EFORMAT, "%s: record %zu: missing or non-integer question_id", results, r);
            goto done;
        }
        const json_t *x = json_object_get(o, "answer");
        if (!json_is_string(x)) {
            pvlm_err_set(err, PVLM_EFORMAT, "%s: record %zu (question %lld): missing or non-string \"answer\"", results,
                         r, (long long)id);
            goto done;
        }
        int ai = (int)pvlm_i64map_get(&am, id);
        if (ai < 0) {
            pvlm_err_set(err, PVLM_EINVAL, "%s: record %zu: question %lld is not in the annotations %s", results, r,
                         (long long)id, annotations);
            goto done;
        }
        if (items[ai].pred) {
            pvlm_err_set(err, PVLM_EINVAL, "%s: record %zu: duplicate answer for question %lld", results, r,
                         (long long)id);
            goto done;
        }
        items[ai].pred = json_string_value(x);
    }
    for (size_t i = 0; i < na; i++)
        if (!items[i].pred) {
            pvlm_err_set(err, PVLM_EINVAL,
                         "%s: no answer for question %lld (annotations[%zu]); the official evaluator requires one "
                         "answer per annotated question",
                         results, (long long)items[i].question_id, i);
            goto done;
        }
    rc = pvlm_vqa_evaluate(items, (int)na, v, out, err);
    goto done;
oom:
    pvlm_err_set(err, PVLM_ENOMEM, "vqa: out of memory");
done:
    for (size_t i = 0; items && i < na; i++)
        for (int k = 0; k < items[i].n_gt; k++) free((char *)items[i].gt_rest[k]);
    free(items);
    pvlm_i64map_free(&qm);
    pvlm_i64map_free(&am);
    json_decref(jq);
    json_decref(ja);
    json_decref(jr);
    return rc;
}
