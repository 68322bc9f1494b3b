/* cmd_vqa.c - `pvlm vqa`: generative (or closed-set) VQA from a checkpoint.
 *
 * Prefix = image + the question formatted by --template ("question: {q} answer:"); the decoder's
 * continuation is the answer. With --candidates, each candidate answer is scored as the continuation
 * (sum of token log-probs, or the mean with --length-norm) and the most likely one is the answer.
 * Input: official VQA v2 question JSON ({"questions": [{"image_id", "question", "question_id"}]}) and
 * images found either through a COCO-style --image-list (images[].id -> file_name) or an
 * --image-pattern such as "COCO_val2014_%012lld.jpg". Output: [{"question_id", "answer"}].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/genjob.h"
#include "core/args.h"
#include "core/fsutil.h"
#include "core/json.h"
#include "core/log.h"

int pvlm_cmd_vqa(int argc, char **argv);

/* "question: {q} answer:" with {q} replaced by the question. Caller frees. */
static char *format_question(const char *tmpl, const char *q) {
    const char *at = strstr(tmpl, "{q}");
    size_t n = strlen(tmpl) + strlen(q) + 1;
    char *s = malloc(n);
    if (!s) return NULL;
    if (!at) snprintf(s, n, "%s", tmpl);
    else snprintf(s, n, "%.*s%s%s", (int)(at - tmpl), tmpl, q, at + 3);
    return s;
}

/* Expand an --image-pattern holding one integer conversion (%d, %lld, %012d, %012lld) with id.
 * Parsed here rather than handed to printf, so a pattern can never read arguments that are not there. */
static int format_image_name(const char *pattern, long long id, char *buf, size_t cap, pvlm_err *err) {
    const char *p = strchr(pattern, '%');
    if (!p) return pvlm_err_set(err, PVLM_EINVAL, "--image-pattern '%s' has no %%d conversion", pattern);
    const char *q = p + 1;
    int zero = 0, width = 0;
    if (*q == '0') zero = 1, q++;
    while (*q >= '0' && *q <= '9' && width < 100) width = width * 10 + (*q++ - '0');
    if (!strncmp(q, "ll", 2)) q += 2;
    else if (*q == 'l') q++;
    if (*q != 'd' || strchr(q + 1, '%'))
        return pvlm_err_set(err, PVLM_EINVAL, "--image-pattern '%s' must hold exactly one %%d-style conversion", pattern);
    char num[160];
    snprintf(num, sizeof num, zero ? "%0*lld" : "%*lld", width, id);
    int len = snprintf(buf, cap, "%.*s%s%s", (int)(p - pattern), pattern, num, q + 1);
    if (len < 0 || (size_t)len >= cap)
        return pvlm_err_set(err, PVLM_EINVAL,
                            "--image-pattern '%.64s...': the file name of image id %lld is longer than %zu bytes",
                            pattern, id, cap - 1);
    return 0;
}

/* Append a copy of s to the growing list v (k entries, room for *cap). */
static int push_candidate(char ***v, int *k, int *cap, const char *s) {
    if (*k == *cap) {
        char **nv = realloc(*v, (size_t)*cap * 2 * sizeof *nv);
        if (!nv) return -1;
        *v = nv;
        *cap *= 2;
    }
    if (!((*v)[*k] = strdup(s))) return -1;
    (*k)++;
    return 0;
}

/* Candidates from a JSON array of strings or a text file with one answer per line. */
static int load_candidates(const char *path, char ***out, int *n, pvlm_err *err) {
    char *text = NULL;
    size_t len = 0;
    if (pvlm_read_file(path, &text, &len, err)) return -1;
    int cap = 64, k = 0, oom = 0;
    char **v = malloc((size_t)cap * sizeof *v);
    json_t *j = text[0] == '[' ? pvlm_json_loadb(text, len, path, err) : NULL;
    if (text[0] == '[' && !j) {
        free(text), free(v);
        return -1;
    }
    if (!v) {
        oom = 1;
    } else if (j) {
        size_t i;
        json_t *s;
        json_array_foreach(j, i, s) {
            if (json_is_string(s) && push_candidate(&v, &k, &cap, json_string_value(s))) {
                oom = 1;
                break;
            }
        }
    } else {
        for (char *line = strtok(text, "\n"); line && !oom; line = strtok(NULL, "\n"))
            if (*line) oom = push_candidate(&v, &k, &cap, line) != 0;
    }
    json_decref(j);
    free(text);
    if (oom || k == 0) {
        for (int i = 0; i < k; i++) free(v[i]);
        free(v);
        return oom ? pvlm_err_set(err, PVLM_ENOMEM, "--candidates %s: out of memory", path)
                   : pvlm_err_set(err, PVLM_EINVAL, "--candidates %s: no answers in the file", path);
    }
    *out = v;
    *n = k;
    return 0;
}

typedef struct vqa_flags {
    const char *ckpt, *tokdir, *questions, *images, *image_list, *pattern, *out, *tmpl, *cand_path, *precision;
    int beam, max_len, batch, threads, limit, length_norm;
} vqa_flags;

/* The flags, checked: 0, or the exit code (0 after --help, 2 on a usage error) with *done set. */
static int parse_flags(vqa_flags *f, int argc, char **argv, int *done) {
    *f = (vqa_flags){.tmpl = "question: {q} answer:", .precision = "fp32", .beam = 1, .max_len = 8, .batch = 16};
    const pvlm_opt opts[] = {
        {"ckpt", PVLM_ARG_STR, &f->ckpt, "model .safetensors, finetune file, checkpoint step dir, or run dir (newest valid step)", NULL, 0, 0, 1},
        {"tokenizer", PVLM_ARG_STR, &f->tokdir, "tokenizer folder (default: the checkpoint's \"tokenizer\" metadata)", NULL, 0, 0, 0},
        {"questions", PVLM_ARG_STR, &f->questions, "VQA v2 questions JSON", NULL, 0, 0, 1},
        {"images", PVLM_ARG_STR, &f->images, "image folder", NULL, 0, 0, 1},
        {"image-list", PVLM_ARG_STR, &f->image_list, "COCO-style JSON mapping images[].id to file_name", NULL, 0, 0, 0},
        {"image-pattern", PVLM_ARG_STR, &f->pattern, "file name pattern for an image id, e.g. COCO_val2014_%012lld.jpg", NULL, 0, 0, 0},
        {"out", PVLM_ARG_STR, &f->out, "results JSON to write ([{\"question_id\", \"answer\"}])", NULL, 0, 0, 1},
        {"template", PVLM_ARG_STR, &f->tmpl, "prefix text; {q} is replaced by the question", NULL, 0, 0, 0},
        {"candidates", PVLM_ARG_STR, &f->cand_path, "closed-set mode: JSON list or text file of candidate answers", NULL, 0, 0, 0},
        {"length-norm", PVLM_ARG_FLAG, &f->length_norm, "closed-set: rank candidates by mean token log-prob", NULL, 0, 0, 0},
        {"beam", PVLM_ARG_INT, &f->beam, "beam size (1 = greedy)", NULL, 1, 64, 0},
        {"max-len", PVLM_ARG_INT, &f->max_len, "maximum answer tokens", NULL, 1, 4096, 0},
        {"batch-size", PVLM_ARG_INT, &f->batch, "questions per micro-batch", NULL, 1, 4096, 0},
        {"limit", PVLM_ARG_INT, &f->limit, "answer only the first N questions (0 = all)", NULL, 0, 2147483647, 0},
        {"threads", PVLM_ARG_INT, &f->threads, "threads per rank (0 = cores / local ranks)", NULL, 0, 1024, 0},
        PVLM_PRECISION_OPT(&f->precision),
    };
    pvlm_cmd cmd = {"pvlm vqa", "Generative or closed-set VQA from a checkpoint; writes VQA results JSON. A question whose image "
                    "cannot be read (missing, a directory, truncated or corrupt) gets no answer: it is named and counted.", "",
                    opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    *done = 1;
    int prc = pvlm_args_parse(&cmd, argc, argv, NULL, NULL);
    if (prc) return prc == PVLM_ARGS_HELP ? 0 : 2;
    if ((f->image_list != NULL) == (f->pattern != NULL)) {
        fprintf(stderr, "pvlm vqa: give exactly one of --image-list or --image-pattern\n");
        return 2;
    }
    *done = 0;
    return 0;
}

/* --image-list: {"<image id>": file_name} from the COCO-style images[] (new reference in *out). */
static int load_image_list(const char *path, json_t **out, pvlm_err *err) {
    json_t *ilist = pvlm_json_load_file(path, err);
    if (!ilist) return -1;
    json_t *ims = json_object_get(ilist, "images"), *im, *id2file = json_object();
    size_t i;
    int rc = !json_is_array(ims) ? pvlm_err_set(err, PVLM_EFORMAT, "%s: no \"images\" array", path)
             : !id2file          ? pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", path)
                                 : 0;
    if (rc == 0) json_array_foreach(ims, i, im) {
        char key[32];
        snprintf(key, sizeof key, "%lld", (long long)json_integer_value(json_object_get(im, "id")));
        json_object_set(id2file, key, json_object_get(im, "file_name"));
    }
    json_decref(ilist);
    if (rc) json_decref(id2file);
    else *out = id2file;
    return rc;
}

/* The image file of question i (whose question_id is qid): through the --image-list map when there is
 * one (id2file), else the --image-pattern. */
static int image_path(const vqa_flags *f, const json_t *id2file, long long image_id, long long qid, char *path,
                      size_t cap, pvlm_err *err) {
    char name[1024];
    const char *fn = name;
    if (id2file) {
        char key[32];
        snprintf(key, sizeof key, "%lld", image_id);
        fn = json_string_value(json_object_get(id2file, key));
        if (!fn)
            return pvlm_err_set(err, PVLM_EFORMAT, "%s: image_id %lld of question %lld is not in %s", f->questions,
                                image_id, qid, f->image_list);
    } else if (format_image_name(f->pattern, image_id, name, sizeof name, err)) {
        return -1;
    }
    return pvlm_path_join(path, cap, f->images, fn, err);
}

/* The first n questions of qs as generation items: image path and the formatted prefix. */
static int build_items(const vqa_flags *f, const json_t *qs, const json_t *id2file, size_t n, pvlm_genjob_items *l,
                       pvlm_err *err) {
    if (pvlm_genjob_items_alloc(l, n, "questions", err)) return -1;
    for (size_t i = 0; i < n; i++) {
        json_t *q = json_array_get(qs, i);
        json_t *qid = json_object_get(q, "question_id"), *iid = json_object_get(q, "image_id");
        const char *qt = json_string_value(json_object_get(q, "question"));
        if (!json_is_integer(qid) || !json_is_integer(iid) || !qt)
            return pvlm_err_set(err, PVLM_EFORMAT, "%s: questions[%zu] needs question_id, image_id and question",
                                f->questions, i);
        char path[4096];
        if (image_path(f, id2file, (long long)json_integer_value(iid), (long long)json_integer_value(qid), path,
                       sizeof path, err) ||
            pvlm_genjob_items_set_path(l, i, path, err))
            return -1;
        if (!(l->prefixes[i] = format_question(f->tmpl, qt)))
            return pvlm_err_set(err, PVLM_ENOMEM, "out of memory for question %zu", i);
        l->items[i].id = (int64_t)json_integer_value(qid);
        l->items[i].prefix = l->prefixes[i];
    }
    return 0;
}

/* The questions file and the image map into items (the first --limit questions). */
static int load_questions(const vqa_flags *f, pvlm_genjob_items *l, pvlm_err *err) {
    json_t *qroot = pvlm_json_load_file(f->questions, err), *id2file = NULL;
    if (!qroot) return -1;
    json_t *qs = json_object_get(qroot, "questions");
    int rc = 0;
    if (!json_is_array(qs))
        rc = pvlm_err_set(err, PVLM_EFORMAT, "%s: no \"questions\" array (VQA v2 format)", f->questions);
    if (rc == 0 && f->image_list) rc = load_image_list(f->image_list, &id2file, err);
    if (rc == 0) {
        size_t n = json_array_size(qs);
        if (f->limit > 0 && (size_t)f->limit < n) n = (size_t)f->limit;
        rc = build_items(f, qs, id2file, n, l, err);
    }
    json_decref(id2file);
    json_decref(qroot);
    return rc;
}

/* Answer the questions: decode, or pick among the candidates (closed set). */
static int answer(const vqa_flags *f, pvlm_genjob *j, const pvlm_genjob_items *l, char *const *cands, int ncand,
                  pvlm_err *err) {
    pvlm_gen_config gc;
    pvlm_genjob_config(j, &gc, f->beam, f->max_len, f->batch);
    gc.dec.no_repeat_ngram = 0;
    gc.candidates = (const char *const *)cands;
    gc.n_candidates = ncand;
    gc.length_norm = f->length_norm;
    if (j->comm.rank == 0)
        pvlm_info("answering %zu questions on %d ranks (%s)", l->n, j->comm.size, ncand ? "closed set" : "generative");
    return pvlm_genjob_run(j, NULL, l, l->n, &gc, err);
}

int pvlm_cmd_vqa(int argc, char **argv) {
    vqa_flags f;
    int done = 0, code = parse_flags(&f, argc, argv, &done);
    if (done) return code;
    pvlm_err err;
    pvlm_genjob j;
    if (pvlm_genjob_start(&j, &argc, &argv, f.threads, &err)) {
        fprintf(stderr, "pvlm vqa: %s\n", err.msg);
        return 1;
    }
    pvlm_genjob_items l = {0};
    char **cands = NULL;
    int ncand = 0;
    int rc = pvlm_genjob_load(&j, f.ckpt, f.tokdir, f.precision, &err);
    if (rc == 0 && f.cand_path) rc = load_candidates(f.cand_path, &cands, &ncand, &err);
    if (rc == 0) rc = load_questions(&f, &l, &err);
    if (rc == 0) rc = answer(&f, &j, &l, cands, ncand, &err);
    const pvlm_genjob_output o = {.path = f.out, .id_key = "question_id", .text_key = "answer", .results = "answers",
                                  .unit = "questions", .missing = "questions without an answer (unreadable image)",
                                  .none_of = "images of the "};
    if (rc == 0) rc = pvlm_genjob_write(&j, &l, &o, &err);
    if (rc) fprintf(stderr, "pvlm vqa: %s\n", err.msg);
    pvlm_genjob_items_free(&l);
    for (int k = 0; k < ncand; k++) free(cands[k]);
    free(cands);
    pvlm_genjob_close(&j);
    return rc ? 1 : 0;
}
