/* cmd_caption.c - `pvlm caption`: zero-shot captioning from a checkpoint.
 *
 * The prompt ("a picture of", as SimVLM section 4.2) is the encoder's text prefix after the image;
 * the decoder's continuation is the caption. Images come from a COCO/NoCaps-style annotation file plus
 * an image folder, a plain image folder, or an LMDB image shard; they are split across MPI ranks and
 * the results are written by rank 0 in input order as COCO results JSON [{"image_id", "caption"}].
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/genjob.h"
#include "core/args.h"
#include "core/fsutil.h"
#include "core/json.h"
#include "core/log.h"
#include "core/threads.h"
#include "eval/gen.h"
#include "io/image.h"
#include "io/imgshard.h"

int pvlm_cmd_caption(int argc, char **argv);

static int from_annotations(const char *ann, const char *dir, pvlm_genjob_items *l, pvlm_err *err) {
    json_t *root = pvlm_json_load_file(ann, err);
    if (!root) return -1;
    json_t *images = json_object_get(root, "images");
    if (!json_is_array(images)) {
        json_decref(root);
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: no \"images\" array (expected COCO caption format)", ann);
    }
    if (pvlm_genjob_items_alloc(l, json_array_size(images), "images", err)) {
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
        if ((rc = pvlm_path_join(path, sizeof path, dir, json_string_value(fn), err)) ||
            (rc = pvlm_genjob_items_set_path(l, i, path, err)))
            break;
        l->items[i].id = (int64_t)json_integer_value(id);
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

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int from_folder(const char *dir, pvlm_genjob_items *l, pvlm_err *err) {
    char **names;
    size_t n;
    if (pvlm_dir_names(dir, pvlm_image_name_ok, &names, &n, err)) return pvlm_err_prefix(err, "--image-dir");
    int rc = pvlm_genjob_items_alloc(l, n, "images", err);
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
        if ((rc = pvlm_path_join(path, sizeof path, dir, names[i], err)) ||
            (rc = pvlm_genjob_items_set_path(l, i, path, err)))
            break;
        l->items[i].id = numbered ? stem_number(names[i]) : (int64_t)i + 1;
    }
    pvlm_dir_names_free(names, n);
    if (rc == 0 && n == 0) rc = pvlm_err_set(err, PVLM_EINVAL, "--image-dir %s: no .jpg/.jpeg/.png files", dir);
    return rc;
}

static int from_shard(pvlm_imgshard_reader *sh, pvlm_genjob_items *l, pvlm_err *err) {
    int64_t n = pvlm_imgshard_count(sh);
    if (pvlm_genjob_items_alloc(l, (size_t)n, "images", err)) return -1;
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

typedef struct caption_flags {
    const char *ckpt, *tokdir, *ann, *images, *image_dir, *shard_path, *out, *prompt, *resize, *precision;
    int beam, max_len, min_len, no_repeat, batch, threads, limit, keep_prompt;
    double length_penalty;
} caption_flags;

/* The flags, checked: 0, or the exit code (0 after --help, 2 on a usage error) with *done set. */
static int parse_flags(caption_flags *f, int argc, char **argv, int *done) {
    *f = (caption_flags){.prompt = "a picture of", .resize = "crop", .precision = "fp32", .beam = 1, .max_len = 20,
                         .no_repeat = 3, .batch = 16};
    const pvlm_opt opts[] = {
        {"ckpt", PVLM_ARG_STR, &f->ckpt, "model .safetensors, finetune file, checkpoint step dir, or run dir (newest valid step)", NULL, 0, 0, 1},
        {"tokenizer", PVLM_ARG_STR, &f->tokdir, "tokenizer folder (default: the checkpoint's \"tokenizer\" metadata)", NULL, 0, 0, 0},
        {"annotations", PVLM_ARG_STR, &f->ann, "COCO/NoCaps-style JSON whose \"images\" list the inputs (with --images)", NULL, 0, 0, 0},
        {"images", PVLM_ARG_STR, &f->images, "folder that the annotation file's file_name entries are relative to", NULL, 0, 0, 0},
        {"image-dir", PVLM_ARG_STR, &f->image_dir, "plain folder of .jpg/.png (ids from trailing digits of names)", NULL, 0, 0, 0},
        {"shard", PVLM_ARG_STR, &f->shard_path, "LMDB image shard to caption (ids from numeric record ids)", NULL, 0, 0, 0},
        {"out", PVLM_ARG_STR, &f->out, "results JSON to write ([{\"image_id\", \"caption\"}])", NULL, 0, 0, 1},
        {"prompt", PVLM_ARG_STR, &f->prompt, "text prefix after the image", NULL, 0, 0, 0},
        {"keep-prompt", PVLM_ARG_FLAG, &f->keep_prompt, "prepend the prompt to each caption", NULL, 0, 0, 0},
        {"beam", PVLM_ARG_INT, &f->beam, "beam size (1 = greedy)", NULL, 1, 64, 0},
        {"max-len", PVLM_ARG_INT, &f->max_len, "maximum caption tokens (capped by the model's max_suffix_len)", NULL, 1, 4096, 0},
        {"min-len", PVLM_ARG_INT, &f->min_len, "minimum caption tokens before eos is allowed", NULL, 0, 4096, 0},
        {"length-penalty", PVLM_ARG_DOUBLE, &f->length_penalty, "beam score = sum logp / len^alpha (0 = raw sum)", NULL, 0, 10, 0},
        {"no-repeat-ngram", PVLM_ARG_INT, &f->no_repeat, "repetition guard: forbid repeating an n-gram (0 = off)", NULL, 0, 16, 0},
        {"batch-size", PVLM_ARG_INT, &f->batch, "images per micro-batch", NULL, 1, 4096, 0},
        {"resize", PVLM_ARG_CHOICE, &f->resize, "fit images by centre crop or with a border", "crop|border", 0, 0, 0},
        {"limit", PVLM_ARG_INT, &f->limit, "caption only the first N images (0 = all)", NULL, 0, 2147483647, 0},
        {"threads", PVLM_ARG_INT, &f->threads, "threads per rank (0 = cores / local ranks)", NULL, 0, 1024, 0},
        PVLM_PRECISION_OPT(&f->precision),
    };
    pvlm_cmd cmd = {"pvlm caption", "Zero-shot captioning from a checkpoint; writes COCO results JSON. An image that cannot be read "
                    "(missing, a directory, truncated or corrupt) gets no caption: it is named in a warning and counted.", "",
                    opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    *done = 1;
    int prc = pvlm_args_parse(&cmd, argc, argv, NULL, NULL);
    if (prc) return prc == PVLM_ARGS_HELP ? 0 : 2;
    int nsrc = (f->ann != NULL) + (f->image_dir != NULL) + (f->shard_path != NULL);
    if (nsrc != 1) {
        fprintf(stderr, "pvlm caption: give exactly one of --annotations (with --images), --image-dir, --shard\n");
        return 2;
    }
    if (f->ann && !f->images) {
        fprintf(stderr, "pvlm caption: --annotations needs --images FOLDER\n");
        return 2;
    }
    *done = 0;
    return 0;
}

/* The images to caption, from whichever source the flags name (*shard is opened for --shard). */
static int load_items(const caption_flags *f, pvlm_imgshard_reader **shard, pvlm_genjob_items *l, pvlm_err *err) {
    if (f->shard_path) {
        *shard = pvlm_imgshard_open(f->shard_path, 0, err);
        return *shard ? from_shard(*shard, l, err) : -1;
    }
    return f->ann ? from_annotations(f->ann, f->images, l, err) : from_folder(f->image_dir, l, err);
}

/* Caption the first n items with the decoding flags. */
static int caption(const caption_flags *f, pvlm_genjob *j, pvlm_imgshard_reader *shard, pvlm_genjob_items *l,
                   size_t n, pvlm_err *err) {
    for (size_t i = 0; i < n; i++) l->items[i].prefix = f->prompt;
    pvlm_gen_config gc;
    pvlm_genjob_config(j, &gc, f->beam, f->max_len, f->batch);
    gc.dec.min_len = f->min_len;
    gc.dec.length_penalty = f->length_penalty;
    gc.dec.no_repeat_ngram = f->no_repeat;
    gc.resize_mode = strcmp(f->resize, "border") ? PVLM_RESIZE_CROP : PVLM_RESIZE_BORDER;
    if (j->comm.rank == 0)
        pvlm_info("captioning %zu images on %d ranks x %d threads (beam %d, prompt \"%s\")", n, j->comm.size,
                  pvlm_threads_get(), f->beam, f->prompt);
    return pvlm_genjob_run(j, shard, l, n, &gc, err);
}

int pvlm_cmd_caption(int argc, char **argv) {
    caption_flags f;
    int done = 0, code = parse_flags(&f, argc, argv, &done);
    if (done) return code;
    pvlm_err err;
    pvlm_genjob j;
    if (pvlm_genjob_start(&j, &argc, &argv, f.threads, &err)) {
        fprintf(stderr, "pvlm caption: %s\n", err.msg);
        return 1;
    }
    pvlm_imgshard_reader *shard = NULL;
    pvlm_genjob_items l = {0};
    int rc = pvlm_genjob_load(&j, f.ckpt, f.tokdir, f.precision, &err);
    if (rc == 0) rc = load_items(&f, &shard, &l, &err);
    size_t n = l.n;
    if (f.limit > 0 && (size_t)f.limit < n) n = (size_t)f.limit;
    if (rc == 0) rc = caption(&f, &j, shard, &l, n, &err);
    const pvlm_genjob_output o = {.path = f.out, .id_key = "image_id", .text_key = "caption",
                                  .lead = f.keep_prompt ? f.prompt : NULL, .results = "captions", .unit = "images",
                                  .missing = "unreadable images without a caption", .none_of = ""};
    if (rc == 0) rc = pvlm_genjob_write(&j, &l, &o, &err);
    if (rc) fprintf(stderr, "pvlm caption: %s\n", err.msg);
    pvlm_genjob_items_free(&l);
    if (shard) pvlm_imgshard_close(shard);
    pvlm_genjob_close(&j);
    return rc ? 1 : 0;
}
