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

#include "core/args.h"
#include "core/fsutil.h"
#include "core/json.h"
#include "core/log.h"
#include "eval/gen.h"
#include "model/load.h"
#include "finetune/ftckpt.h"
#include "mpi/comm.h"

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
    snprintf(buf, cap, "%.*s%s%s", (int)(p - pattern), pattern, num, q + 1);
    return 0;
}

/* Candidates from a JSON array of strings or a text file with one answer per line. */
static int load_candidates(const char *path, char ***out, int *n, pvlm_err *err) {
    char *text = NULL;
    size_t len = 0;
    if (pvlm_read_file(path, &text, &len, err)) return -1;
    int cap = 64, k = 0;
    char **v = malloc((size_t)cap * sizeof *v);
    json_t *j = text[0] == '[' ? pvlm_json_loadb(text, len, path, err) : NULL;
    if (text[0] == '[' && !j) {
        free(text), free(v);
        return -1;
    }
    if (j) {
        size_t i;
        json_t *s;
        json_array_foreach(j, i, s) {
            if (!json_is_string(s)) continue;
            if (k == cap) v = realloc(v, (size_t)(cap *= 2) * sizeof *v);
            v[k++] = strdup(json_string_value(s));
        }
        json_decref(j);
    } else {
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
            if (!*line) continue;
            if (k == cap) v = realloc(v, (size_t)(cap *= 2) * sizeof *v);
            v[k++] = strdup(line);
        }
    }
    free(text);
    if (k == 0) {
        free(v);
        return pvlm_err_set(err, PVLM_EINVAL, "--candidates %s: no answers in the file", path);
    }
    *out = v;
    *n = k;
    return 0;
}

int pvlm_cmd_vqa(int argc, char **argv) {
    const char *ckpt = NULL, *tokdir = NULL, *questions = NULL, *images = NULL, *image_list = NULL;
    const char *pattern = NULL, *out = NULL, *tmpl = "question: {q} answer:", *cand_path = NULL;
    const char *precision = "fp32";
    int beam = 1, max_len = 8, batch = 16, threads = 0, limit = 0, length_norm = 0;
    const pvlm_opt opts[] = {
        {"ckpt", PVLM_ARG_STR, &ckpt, "model .safetensors, finetune file, checkpoint step dir, or run dir (newest valid step)", NULL, 0, 0, 1},
        {"tokenizer", PVLM_ARG_STR, &tokdir, "tokenizer folder (default: the checkpoint's \"tokenizer\" metadata)", NULL, 0, 0, 0},
        {"questions", PVLM_ARG_STR, &questions, "VQA v2 questions JSON", NULL, 0, 0, 1},
        {"images", PVLM_ARG_STR, &images, "image folder", NULL, 0, 0, 1},
        {"image-list", PVLM_ARG_STR, &image_list, "COCO-style JSON mapping images[].id to file_name", NULL, 0, 0, 0},
        {"image-pattern", PVLM_ARG_STR, &pattern, "file name pattern for an image id, e.g. COCO_val2014_%012lld.jpg", NULL, 0, 0, 0},
        {"out", PVLM_ARG_STR, &out, "results JSON to write ([{\"question_id\", \"answer\"}])", NULL, 0, 0, 1},
        {"template", PVLM_ARG_STR, &tmpl, "prefix text; {q} is replaced by the question", NULL, 0, 0, 0},
        {"candidates", PVLM_ARG_STR, &cand_path, "closed-set mode: JSON list or text file of candidate answers", NULL, 0, 0, 0},
        {"length-norm", PVLM_ARG_FLAG, &length_norm, "closed-set: rank candidates by mean token log-prob", NULL, 0, 0, 0},
        {"beam", PVLM_ARG_INT, &beam, "beam size (1 = greedy)", NULL, 1, 64, 0},
        {"max-len", PVLM_ARG_INT, &max_len, "maximum answer tokens", NULL, 1, 4096, 0},
        {"batch-size", PVLM_ARG_INT, &batch, "questions per micro-batch", NULL, 1, 4096, 0},
        {"limit", PVLM_ARG_INT, &limit, "answer only the first N questions (0 = all)", NULL, 0, 2147483647, 0},
        {"threads", PVLM_ARG_INT, &threads, "threads per rank (0 = cores / local ranks)", NULL, 0, 1024, 0},
        PVLM_PRECISION_OPT(&precision),
    };
    pvlm_cmd cmd = {"pvlm vqa", "Generative or closed-set VQA from a checkpoint; writes VQA results JSON. A question whose image "
                    "cannot be read (missing, a directory, truncated or corrupt) gets no answer: it is named and counted.", "",
                    opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    int prc = pvlm_args_parse(&cmd, argc, argv, NULL, NULL);
    if (prc) return prc == PVLM_ARGS_HELP ? 0 : 2;
    if ((image_list != NULL) == (pattern != NULL)) {
        fprintf(stderr, "pvlm vqa: give exactly one of --image-list or --image-pattern\n");
        return 2;
    }

    pvlm_err err;
    pvlm_comm comm;
    if (pvlm_comm_start(&comm, &argc, &argv, threads, &err)) {
        fprintf(stderr, "pvlm vqa: %s\n", err.msg);
        return 1;
    }
    pvlm_model m;
    memset(&m, 0, sizeof m);
    pvlm_tokenizer *tok = NULL;
    json_t *qroot = NULL, *ilist = NULL, *id2file = json_object();
    pvlm_gen_item *items = NULL;
    char **paths = NULL, **prefixes = NULL, **texts = NULL, **cands = NULL;
    int ncand = 0;
    size_t n = 0;
    int rc = pvlm_ftckpt_load_any(ckpt, tokdir, &m, &tok, &err);
    if (rc == 0) rc = pvlm_model_set_precision_name(&m, precision, &err);
    if (rc == 0 && cand_path) rc = load_candidates(cand_path, &cands, &ncand, &err);
    if (rc == 0 && !(qroot = pvlm_json_load_file(questions, &err))) rc = -1;
    json_t *qs = qroot ? json_object_get(qroot, "questions") : NULL;
    if (rc == 0 && !json_is_array(qs)) rc = pvlm_err_set(&err, PVLM_EFORMAT, "%s: no \"questions\" array (VQA v2 format)", questions);
    if (rc == 0 && image_list) {
        if (!(ilist = pvlm_json_load_file(image_list, &err))) rc = -1;
        json_t *ims = ilist ? json_object_get(ilist, "images") : NULL, *im;
        size_t i;
        if (rc == 0 && !json_is_array(ims)) rc = pvlm_err_set(&err, PVLM_EFORMAT, "%s: no \"images\" array", image_list);
        if (rc == 0) json_array_foreach(ims, i, im) {
            char key[32];
            snprintf(key, sizeof key, "%lld", (long long)json_integer_value(json_object_get(im, "id")));
            json_object_set(id2file, key, json_object_get(im, "file_name"));
        }
    }
    if (rc == 0) {
        n = json_array_size(qs);
        if (limit > 0 && (size_t)limit < n) n = (size_t)limit;
        items = calloc(n + 1, sizeof *items);
        paths = calloc(n + 1, sizeof *paths);
        prefixes = calloc(n + 1, sizeof *prefixes);
        if (!items || !paths || !prefixes) rc = pvlm_err_set(&err, PVLM_ENOMEM, "out of memory for %zu questions", n);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *q = json_array_get(qs, i);
        json_t *qid = json_object_get(q, "question_id"), *iid = json_object_get(q, "image_id");
        const char *qt = json_string_value(json_object_get(q, "question"));
        if (!json_is_integer(qid) || !json_is_integer(iid) || !qt) {
            rc = pvlm_err_set(&err, PVLM_EFORMAT, "%s: questions[%zu] needs question_id, image_id and question", questions, i);
            break;
        }
        char name[1024], path[4096], key[32];
        long long image_id = (long long)json_integer_value(iid);
        if (image_list) {
            snprintf(key, sizeof key, "%lld", image_id);
            const char *fn = json_string_value(json_object_get(id2file, key));
            if (!fn) {
                rc = pvlm_err_set(&err, PVLM_EFORMAT, "%s: image_id %lld of question %lld is not in %s", questions,
                                  image_id, (long long)json_integer_value(qid), image_list);
                break;
            }
            snprintf(name, sizeof name, "%s", fn);
        } else {
            if ((rc = format_image_name(pattern, image_id, name, sizeof name, &err))) break;
        }
        if ((rc = pvlm_path_join(path, sizeof path, images, name, &err))) break;
        paths[i] = strdup(path);
        prefixes[i] = format_question(tmpl, qt);
        items[i].id = (int64_t)json_integer_value(qid);
        items[i].image_path = paths[i];
        items[i].prefix = prefixes[i];
    }
    pvlm_gen_stats st = {0};
    if (rc == 0) {
        pvlm_gen_config gc;
        pvlm_gen_config_default(&gc, &m.cfg);
        gc.dec.beam_size = beam;
        gc.dec.max_len = max_len < m.cfg.max_suffix_len ? max_len : m.cfg.max_suffix_len;
        gc.dec.no_repeat_ngram = 0;
        gc.batch_size = batch;
        gc.candidates = (const char *const *)cands;
        gc.n_candidates = ncand;
        gc.length_norm = length_norm;
        if (comm.rank == 0)
            pvlm_info("answering %zu questions on %d ranks (%s)", n, comm.size, ncand ? "closed set" : "generative");
        rc = pvlm_gen_run(&comm, &m, tok, NULL, items, n, &gc, &texts, &st, &err);
    }
    if (rc == 0 && comm.rank == 0) {
        size_t missing = pvlm_gen_report_missing(texts, items, n, "question_id");
        json_t *res = json_array();
        for (size_t i = 0; i < n; i++)
            if (texts[i]) /* unreadable image: no answer (reported above) */
                json_array_append_new(res,
                                      json_pack("{s:I, s:s}", "question_id", (json_int_t)items[i].id, "answer", texts[i]));
        if (n > 0 && missing == n)
            rc = pvlm_err_set(&err, PVLM_EINVAL, "none of the images of the %zu questions could be read; no results written",
                              n);
        else
            rc = pvlm_json_save_results(res, out, &err);
        json_decref(res);
        if (rc == 0)
            pvlm_info("wrote %zu answers to %s: %.1f questions/s, %zu questions without an answer (unreadable image)",
                      n - missing, out, st.seconds > 0 ? (double)st.items / st.seconds : 0.0, missing);
    }
    if (rc) fprintf(stderr, "pvlm vqa: %s\n", err.msg);
    pvlm_gen_texts_free(texts, n);
    for (size_t i = 0; i < n && paths; i++) free(paths[i]), free(prefixes[i]);
    free(paths), free(prefixes), free(items);
    for (int k = 0; k < ncand; k++) free(cands[k]);
    free(cands);
    json_decref(qroot), json_decref(ilist), json_decref(id2file);
    pvlm_tokenizer_free(tok);
    pvlm_model_free(&m);
    pvlm_comm_finalize(&comm);
    return rc ? 1 : 0;
}
