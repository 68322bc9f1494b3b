/* cmd_caption.c - `pvlm caption`: zero-shot captioning from a checkpoint.
 *
 * The prompt ("a picture of", as SimVLM section 4.2) is the encoder's text prefix after the image;
 * the decoder's continuation is the caption. Images come from a COCO/NoCaps-style annotation file plus
 * an image folder, a plain image folder, or an LMDB image shard; they are split across MPI ranks and
 * the results are written by rank 0 in input order as COCO results JSON [{"image_id", "caption"}].
 */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/args.h"
#include "core/fsutil.h"
#include "core/json.h"
#include "core/log.h"
#include "core/threads.h"
#include "eval/gen.h"
#include "finetune/ftckpt.h"
#include "io/image.h"
#include "io/imgshard.h"
#include "model/load.h"
#include "mpi/comm.h"

int pvlm_cmd_caption(int argc, char **argv);

typedef struct {
    pvlm_gen_item *items;
    char **paths; /* owned image paths */
    size_t n;
} itemlist;

static void itemlist_free(itemlist *l) {
    for (size_t i = 0; i < l->n; i++) free(l->paths[i]);
    free(l->paths);
    free(l->items);
}

static int itemlist_alloc(itemlist *l, size_t n, pvlm_err *err) {
    l->n = n;
    l->items = calloc(n + 1, sizeof *l->items);
    l->paths = calloc(n + 1, sizeof *l->paths);
    return l->items && l->paths ? 0 : pvlm_err_set(err, PVLM_ENOMEM, "out of memory for %zu images", n);
}

static int from_annotations(const char *ann, const char *dir, itemlist *l, pvlm_err *err) {
    json_t *root = pvlm_json_load_file(ann, err);
    if (!root) return -1;
    json_t *images = json_object_get(root, "images");
    if (!json_is_array(images)) {
        json_decref(root);
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: no \"images\" array (expected COCO caption format)", ann);
    }
    if (itemlist_alloc(l, json_array_size(images), err)) {
        json_decref(root);
        return -1;
    }
    size_t i;
    json_t *im;
    int rc = 0;
    json_array_foreach(images, i, im) {
        json_t *id = json_object_get(im, "id"), *fn = json_object_get(im, "file_name");
        if (!json_is_integer(id) || !json_is_string(fn)) {
            rc = pvlm_err_set(err, PVLM_EFORMAT, "%s: images[%zu] needs an integer \"id\" and a \"file_name\"", ann, i);
            break;
        }
        char path[4096];
        if ((rc = pvlm_path_join(path, sizeof path, dir, json_string_value(fn), err))) break;
        l->paths[i] = strdup(path);
        l->items[i].id = (int64_t)json_integer_value(id);
        l->items[i].image_path = l->paths[i];
    }
    json_decref(root);
    return rc;
}

/* Trailing digits of the file stem ("COCO_val2014_000000391895.jpg" -> 391895), or -1. */
static int64_t stem_number(const char *name) {
    const char *dot = strrchr(name, '.');
    const char *end = dot ? dot : name + strlen(name), *p = end;
    while (p > name && isdigit((unsigned char)p[-1])) p--;
    if (p == end || end - p > 18) return -1;
    return strtoll(p, NULL, 10);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int has_image_ext(const char *n) {
    const char *dot = strrchr(n, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

static int from_folder(const char *dir, itemlist *l, pvlm_err *err) {
    DIR *d = opendir(dir);
    if (!d) return pvlm_err_errno(err, "--image-dir %s: cannot open", dir);
    size_t n = 0, cap = 256;
    char **names = malloc(cap * sizeof *names);
    struct dirent *e;
    while (names && (e = readdir(d))) {
        if (!has_image_ext(e->d_name)) continue;
        if (n == cap) names = realloc(names, (cap *= 2) * sizeof *names);
        if (names) names[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (!names) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory listing %s", dir);
    qsort(names, n, sizeof *names, cmp_str);
    int rc = itemlist_alloc(l, n, err);
    /* ids from the file names when they are all numbered and distinct, else 1..n in name order */
    int numbered = 1;
    int64_t *nums = malloc((n + 1) * sizeof *nums);
    for (size_t i = 0; nums && i < n; i++) numbered &= (nums[i] = stem_number(names[i])) >= 0;
    if (nums && numbered) {
        qsort(nums, n, sizeof *nums, cmp_i64);
        for (size_t i = 1; i < n; i++) numbered &= nums[i] != nums[i - 1];
    }
    free(nums);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char path[4096];
        if ((rc = pvlm_path_join(path, sizeof path, dir, names[i], err))) break;
        l->paths[i] = strdup(path);
        l->items[i].id = numbered ? stem_number(names[i]) : (int64_t)i + 1;
        l->items[i].image_path = l->paths[i];
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    if (rc == 0 && n == 0) rc = pvlm_err_set(err, PVLM_EINVAL, "--image-dir %s: no .jpg/.jpeg/.png files", dir);
    return rc;
}

static int from_shard(pvlm_imgshard_reader *sh, itemlist *l, pvlm_err *err) {
    int64_t n = pvlm_imgshard_count(sh);
    if (itemlist_alloc(l, (size_t)n, err)) return -1;
    pvlm_imgrec rec;
    memset(&rec, 0, sizeof rec);
    for (int64_t i = 0; i < n; i++) {
        char *end = NULL;
        long long v = -1;
        if (pvlm_imgshard_get(sh, i, &rec, NULL) == 0 && rec.id && *rec.id) v = strtoll(rec.id, &end, 10);
        l->items[i].id = end && *end == '\0' && v >= 0 ? v : i;
        l->items[i].shard_index = i;
    }
    pvlm_imgrec_free(&rec);
    return 0;
}

int pvlm_cmd_caption(int argc, char **argv) {
    const char *ckpt = NULL, *tokdir = NULL, *ann = NULL, *images = NULL, *image_dir = NULL, *shard_path = NULL;
    const char *out = NULL, *prompt = "a picture of", *resize = "crop", *precision = "fp32";
    int beam = 1, max_len = 20, min_len = 0, no_repeat = 3, batch = 16, threads = 0, limit = 0, keep_prompt = 0;
    double length_penalty = 0.0;
    const pvlm_opt opts[] = {
        {"ckpt", PVLM_ARG_STR, &ckpt, "model .safetensors, finetune file, checkpoint step dir, or run dir (newest valid step)", NULL, 0, 0, 1},
        {"tokenizer", PVLM_ARG_STR, &tokdir, "tokenizer folder (default: the checkpoint's \"tokenizer\" metadata)", NULL, 0, 0, 0},
        {"annotations", PVLM_ARG_STR, &ann, "COCO/NoCaps-style JSON whose \"images\" list the inputs (with --images)", NULL, 0, 0, 0},
        {"images", PVLM_ARG_STR, &images, "folder that the annotation file's file_name entries are relative to", NULL, 0, 0, 0},
        {"image-dir", PVLM_ARG_STR, &image_dir, "plain folder of .jpg/.png (ids from trailing digits of names)", NULL, 0, 0, 0},
        {"shard", PVLM_ARG_STR, &shard_path, "LMDB image shard to caption (ids from numeric record ids)", NULL, 0, 0, 0},
        {"out", PVLM_ARG_STR, &out, "results JSON to write ([{\"image_id\", \"caption\"}])", NULL, 0, 0, 1},
        {"prompt", PVLM_ARG_STR, &prompt, "text prefix after the image", NULL, 0, 0, 0},
        {"keep-prompt", PVLM_ARG_FLAG, &keep_prompt, "prepend the prompt to each caption", NULL, 0, 0, 0},
        {"beam", PVLM_ARG_INT, &beam, "beam size (1 = greedy)", NULL, 1, 64, 0},
        {"max-len", PVLM_ARG_INT, &max_len, "maximum caption tokens (capped by the model's max_suffix_len)", NULL, 1, 4096, 0},
        {"min-len", PVLM_ARG_INT, &min_len, "minimum caption tokens before eos is allowed", NULL, 0, 4096, 0},
        {"length-penalty", PVLM_ARG_DOUBLE, &length_penalty, "beam score = sum logp / len^alpha (0 = raw sum)", NULL, 0, 10, 0},
        {"no-repeat-ngram", PVLM_ARG_INT, &no_repeat, "repetition guard: forbid repeating an n-gram (0 = off)", NULL, 0, 16, 0},
        {"batch-size", PVLM_ARG_INT, &batch, "images per micro-batch", NULL, 1, 4096, 0},
        {"resize", PVLM_ARG_CHOICE, &resize, "fit images by centre crop or with a border", "crop|border", 0, 0, 0},
        {"limit", PVLM_ARG_INT, &limit, "caption only the first N images (0 = all)", NULL, 0, 2147483647, 0},
        {"threads", PVLM_ARG_INT, &threads, "threads per rank (0 = cores / local ranks)", NULL, 0, 1024, 0},
        PVLM_PRECISION_OPT(&precision),
    };
    pvlm_cmd cmd = {"pvlm caption", "Zero-shot captioning from a checkpoint; writes COCO results JSON. An image that cannot be read "
                    "(missing, a directory, truncated or corrupt) gets no caption: it is named in a warning and counted.", "",
                    opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    int prc = pvlm_args_parse(&cmd, argc, argv, NULL, NULL);
    if (prc) return prc == PVLM_ARGS_HELP ? 0 : 2;
    int nsrc = (ann != NULL) + (image_dir != NULL) + (shard_path != NULL);
    if (nsrc != 1) {
        fprintf(stderr, "pvlm caption: give exactly one of --annotations (with --images), --image-dir, --shard\n");
        return 2;
    }
    if (ann && !images) {
        fprintf(stderr, "pvlm caption: --annotations needs --images FOLDER\n");
        return 2;
    }

    pvlm_err err;
    pvlm_comm comm;
    if (pvlm_comm_start(&comm, &argc, &argv, threads, &err)) {
        fprintf(stderr, "pvlm caption: %s\n", err.msg);
        return 1;
    }
    pvlm_model m;
    memset(&m, 0, sizeof m);
    pvlm_tokenizer *tok = NULL;
    pvlm_imgshard_reader *shard = NULL;
    itemlist l = {0};
    char **texts = NULL;
    int rc = pvlm_ftckpt_load_any(ckpt, tokdir, &m, &tok, &err);
    if (rc == 0) rc = pvlm_model_set_precision_name(&m, precision, &err);
    if (rc == 0 && shard_path) {
        shard = pvlm_imgshard_open(shard_path, 0, &err);
        rc = shard ? from_shard(shard, &l, &err) : -1;
    } else if (rc == 0) {
        rc = ann ? from_annotations(ann, images, &l, &err) : from_folder(image_dir, &l, &err);
    }
    size_t n = l.n;
    if (limit > 0 && (size_t)limit < n) n = (size_t)limit;
    pvlm_gen_stats st = {0};
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) l.items[i].prefix = prompt;
        pvlm_gen_config gc;
        pvlm_gen_config_default(&gc, &m.cfg);
        gc.dec.beam_size = beam;
        gc.dec.max_len = max_len < m.cfg.max_suffix_len ? max_len : m.cfg.max_suffix_len;
        gc.dec.min_len = min_len;
        gc.dec.length_penalty = length_penalty;
        gc.dec.no_repeat_ngram = no_repeat;
        gc.batch_size = batch;
        gc.resize_mode = strcmp(resize, "border") ? PVLM_RESIZE_CROP : PVLM_RESIZE_BORDER;
        if (comm.rank == 0)
            pvlm_info("captioning %zu images on %d ranks x %d threads (beam %d, prompt \"%s\")", n, comm.size,
                      pvlm_threads_get(), beam, prompt);
        rc = pvlm_gen_run(&comm, &m, tok, shard, l.items, n, &gc, &texts, &st, &err);
    }
    if (rc == 0 && comm.rank == 0) {
        size_t missing = pvlm_gen_report_missing(texts, l.items, n, "image_id");
        json_t *res = json_array();
        for (size_t i = 0; i < n; i++) {
            if (!texts[i]) continue; /* unreadable image: no caption (reported above) */
            char buf[8192];
            const char *cap = texts[i];
            if (keep_prompt) {
                snprintf(buf, sizeof buf, "%s %s", prompt, texts[i]);
                cap = buf;
            }
            json_array_append_new(res, json_pack("{s:I, s:s}", "image_id", (json_int_t)l.items[i].id, "caption", cap));
        }
        if (n > 0 && missing == n)
            rc = pvlm_err_set(&err, PVLM_EINVAL, "none of the %zu images could be read; no results written", n);
        else
            rc = pvlm_json_save_results(res, out, &err);
        json_decref(res);
        if (rc == 0)
            pvlm_info("wrote %zu captions to %s: %.1f images/s, %zu unreadable images without a caption", n - missing,
                      out, st.seconds > 0 ? (double)st.items / st.seconds : 0.0, missing);
    }
    if (rc) fprintf(stderr, "pvlm caption: %s\n", err.msg);
    pvlm_gen_texts_free(texts, n);
    itemlist_free(&l);
    if (shard) pvlm_imgshard_close(shard);
    pvlm_tokenizer_free(tok);
    pvlm_model_free(&m);
    pvlm_comm_finalize(&comm);
    return rc ? 1 : 0;
}
