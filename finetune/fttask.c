/* fttask.c - see fttask.h. */
#include "fttask.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/json.h"
#include "core/log.h"
#include "finetune/paint.h"
#include "io/imgprep.h"

void pvlm_ft_data_free(pvlm_ft_data *d) {
    pvlm_ft_item *sets[2] = {d->train, d->test};
    int ns[2] = {d->n_train, d->n_test};
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < ns[s]; i++) free(sets[s][i].prefix), free(sets[s][i].target), free(sets[s][i].boxes);
        free(sets[s]);
    }
    for (int c = 0; c < d->n_classes; c++) free(d->classes[c]);
    free(d->classes), free(d->pixels), free(d->orig_w), free(d->orig_h);
    memset(d, 0, sizeof *d);
}

/* Images being loaded: the capacity of d->pixels and the preparation (io/imgprep.h) shared with
 * training and evaluation. */
typedef struct img_loader {
    int cap;
    pvlm_imgprep prep;
} img_loader;

/* Append image file `name` (decoded, crop-fit to S) and return its index, or -1. */
static int add_image(pvlm_ft_data *d, img_loader *il, const char *dir, const char *name, pvlm_err *err) {
    if (d->n_images == il->cap) {
        int nc = il->cap ? il->cap * 2 : 64;
        uint8_t *px = realloc(d->pixels, (size_t)nc * (size_t)d->S * (size_t)d->S * 3);
        int *ow = realloc(d->orig_w, (size_t)nc * sizeof *ow), *oh = ow ? realloc(d->orig_h, (size_t)nc * sizeof *oh) : NULL;
        if (px) d->pixels = px;
        if (ow) d->orig_w = ow;
        if (oh) d->orig_h = oh;
        if (!px || !ow || !oh) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory loading images");
        il->cap = nc;
    }
    char path[4096];
    if (pvlm_path_join(path, sizeof path, dir, name, err)) return -1;
    char *buf = NULL;
    size_t n = 0;
    int rc = pvlm_read_file(path, &buf, &n, err);
    if (rc == 0)
        rc = pvlm_imgprep_encoded(&il->prep, buf, n, d->S, PVLM_RESIZE_CROP,
                                  d->pixels + (size_t)d->n_images * (size_t)d->S * (size_t)d->S * 3,
                                  &d->orig_w[d->n_images], &d->orig_h[d->n_images], path, err);
    free(buf);
    return rc ? -1 : d->n_images++;
}

static int push_item(pvlm_ft_item **v, int *n, int *cap, const pvlm_ft_item *it, pvlm_err *err) {
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 64;
        pvlm_ft_item *p = realloc(*v, (size_t)nc * sizeof *p);
        if (!p) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
        *v = p, *cap = nc;
    }
    (*v)[(*n)++] = *it;
    return 0;
}

static char *dup_space(const char *s) { /* " " + s: continuations follow the prefix with a space */
    size_t n = strlen(s);
    char *o = malloc(n + 2);
    if (o) o[0] = ' ', memcpy(o + 1, s, n + 1);
    return o;
}

static int load_split(pvlm_ft_data *d, json_t *arr, const char *what, const char *dir, img_loader *il, pvlm_ft_item **out,
                      int *nout, pvlm_err *err) {
    int cap = 0;
    size_t i;
    json_t *e;
    if (!json_is_array(arr)) return pvlm_err_set(err, PVLM_EFORMAT, "%s: missing array", what);
    json_array_foreach(arr, i, e) {
        const char *file = json_string_value(json_object_get(e, "file"));
        if (!file) return pvlm_err_set(err, PVLM_EFORMAT, "%s[%zu]: no \"file\"", what, i);
        int im = add_image(d, il, dir, file, err);
        if (im < 0) return -1;
        if (d->task == PVLM_FT_CLASSIFY) {
            json_t *lab = json_object_get(e, "label");
            if (!json_is_integer(lab) || json_integer_value(lab) < 0 || json_integer_value(lab) >= d->n_classes)
                return pvlm_err_set(err, PVLM_EFORMAT, "%s[%zu]: label missing or outside [0,%d)", what, i, d->n_classes);
            pvlm_ft_item it = {.image = im, .label = (int)json_integer_value(lab)};
            if (push_item(out, nout, &cap, &it, err)) return -1;
            continue;
        }
        json_t *boxes = json_object_get(e, "boxes"), *refs = json_object_get(e, "refs"), *r;
        size_t nb = json_array_size(boxes), k;
        if (!nb || !json_is_array(refs)) return pvlm_err_set(err, PVLM_EFORMAT, "%s[%zu]: needs boxes and refs", what, i);
        json_array_foreach(refs, k, r) {
            const char *expr = json_string_value(json_object_get(r, "expression"));
            json_t *bx = json_object_get(r, "box");
            if (!expr || !json_is_integer(bx) || json_integer_value(bx) < 0 || (size_t)json_integer_value(bx) >= nb)
                return pvlm_err_set(err, PVLM_EFORMAT, "%s[%zu].refs[%zu]: needs expression and a valid box index", what, i, k);
            pvlm_ft_item it = {.image = im, .label = (int)json_integer_value(bx), .nboxes = (int)nb};
            it.boxes = malloc(nb * sizeof *it.boxes);
            it.prefix = strdup(expr);
            if (!it.boxes || !it.prefix) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
            for (size_t b = 0; b < nb; b++)
                for (int c = 0; c < 4; c++) it.boxes[b][c] = (float)json_number_value(json_array_get(json_array_get(boxes, b), (size_t)c));
            if (push_item(out, nout, &cap, &it, err)) return -1;
        }
    }
    return 0;
}

/* COCO captions or VQA v2 questions+annotations into LM items; every val_every-th goes to test. */
static int load_lm(pvlm_ft_data *d, const char *path, const char *path2, const char *dir, const char *prompt,
                   int val_every, img_loader *il, pvlm_err *err) {
    json_t *root = pvlm_json_load_file(path, err), *ann = NULL;
    if (!root) return -1;
    int rc = 0, captr = 0, capte = 0, k = 0;
    json_t *ims = json_object_get(root, d->task == PVLM_FT_CAPTION ? "images" : "questions");
    json_t *id2im = json_object();
    if (d->task == PVLM_FT_VQA) {
        /* VQA: path = questions, path2 = annotations; images come from path2's companion "images" list
         * if present, else file names "<image_id>.png|jpg" are not guessed: the annotations need them. */
        ann = path2 ? pvlm_json_load_file(path2, err) : NULL;
        if (!ann) rc = path2 ? -1 : pvlm_err_set(err, PVLM_EINVAL, "VQA finetuning needs --annotations");
    }
    size_t i;
    json_t *e;
    if (rc == 0 && d->task == PVLM_FT_CAPTION) {
        json_array_foreach(ims, i, e) {
            const char *fn = json_string_value(json_object_get(e, "file_name"));
            char key[32];
            snprintf(key, sizeof key, "%lld", (long long)json_integer_value(json_object_get(e, "id")));
            int im = fn ? add_image(d, il, dir, fn, err) : pvlm_err_set(err, PVLM_EFORMAT, "%s: images[%zu] lacks file_name", path, i);
            if (im < 0) { rc = -1; break; }
            json_object_set_new(id2im, key, json_integer(im));
        }
        json_t *anns = json_object_get(root, "annotations");
        json_array_foreach(anns, i, e) {
            if (rc) break;
            char key[32];
            snprintf(key, sizeof key, "%lld", (long long)json_integer_value(json_object_get(e, "image_id")));
            json_t *im = json_object_get(id2im, key);
            const char *cap = json_string_value(json_object_get(e, "caption"));
            if (!im || !cap) { rc = pvlm_err_set(err, PVLM_EFORMAT, "%s: annotations[%zu] has no caption or unknown image", path, i); break; }
            pvlm_ft_item it = {.image = (int)json_integer_value(im), .prefix = strdup(prompt), .target = dup_space(cap)};
            int test = val_every > 0 && (k++ % val_every) == val_every - 1;
            rc = push_item(test ? &d->test : &d->train, test ? &d->n_test : &d->n_train, test ? &capte : &captr, &it, err);
        }
    } else if (rc == 0) {
        json_t *ilist = json_object_get(ann, "images"), *anns = json_object_get(ann, "annotations");
        if (!json_is_array(ilist)) rc = pvlm_err_set(err, PVLM_EFORMAT, "%s: VQA finetuning needs an \"images\" list (id, file_name) in the annotation file", path2);
        if (rc == 0) json_array_foreach(ilist, i, e) {
            const char *fn = json_string_value(json_object_get(e, "file_name"));
            char key[32];
            snprintf(key, sizeof key, "%lld", (long long)json_integer_value(json_object_get(e, "id")));
            int im = fn ? add_image(d, il, dir, fn, err) : -1;
            if (im < 0) { rc = -1; break; }
            json_object_set_new(id2im, key, json_integer(im));
        }
        json_t *qid2a = json_object();
        json_array_foreach(anns, i, e) {
            char key[32];
            snprintf(key, sizeof key, "%lld", (long long)json_integer_value(json_object_get(e, "question_id")));
            json_object_set(qid2a, key, json_object_get(e, "multiple_choice_answer"));
        }
        json_array_foreach(ims, i, e) {
            if (rc) break;
            char key[32], pre[2048];
            snprintf(key, sizeof key, "%lld", (long long)json_integer_value(json_object_get(e, "image_id")));
            json_t *im = json_object_get(id2im, key);
            snprintf(key, sizeof key, "%lld", (long long)json_integer_value(json_object_get(e, "question_id")));
            const char *q = json_string_value(json_object_get(e, "question")), *a = json_string_value(json_object_get(qid2a, key));
            if (!im || !q || !a) { rc = pvlm_err_set(err, PVLM_EFORMAT, "%s: questions[%zu] lacks an image, question or answer", path, i); break; }
            snprintf(pre, sizeof pre, "question: %s answer:", q);
            pvlm_ft_item it = {.image = (int)json_integer_value(im), .prefix = strdup(pre), .target = dup_space(a)};
            int test = val_every > 0 && (k++ % val_every) == val_every - 1;
            rc = push_item(test ? &d->test : &d->train, test ? &d->n_test : &d->n_train, test ? &capte : &captr, &it, err);
        }
        json_decref(qid2a);
    }
    json_decref(id2im), json_decref(root), json_decref(ann);
    return rc;
}

int pvlm_ft_data_load(pvlm_ft_data *d, int task, const char *path, const char *path2, const char *image_dir, int S,
                      const char *prompt, int val_every, pvlm_err *err) {
    memset(d, 0, sizeof *d);
    d->task = task, d->S = S;
    char dir[4096];
    if (image_dir) snprintf(dir, sizeof dir, "%s", image_dir);
    else pvlm_dirname(path, dir, sizeof dir);
    img_loader il = {0};
    int rc = pvlm_imgprep_init(&il.prep, err);
    json_t *root = NULL;
    if (rc == 0 && (task == PVLM_FT_CAPTION || task == PVLM_FT_VQA)) {
        rc = load_lm(d, path, path2, dir, prompt ? prompt : "", val_every, &il, err);
    } else if (rc == 0 && !(root = pvlm_json_load_file(path, err))) {
        rc = -1;
    } else if (rc == 0) {
        if (task == PVLM_FT_CLASSIFY) {
            json_t *cls = json_object_get(root, "classes"), *c;
            size_t i;
            d->n_classes = (int)json_array_size(cls);
            d->classes = calloc((size_t)d->n_classes + 1, sizeof *d->classes);
            if (d->n_classes < 2) rc = pvlm_err_set(err, PVLM_EFORMAT, "%s: needs a \"classes\" list of >= 2 names", path);
            json_array_foreach(cls, i, c) d->classes[i] = strdup(json_string_value(c) ? json_string_value(c) : "");
        }
        char what[4200];
        snprintf(what, sizeof what, "%s train", path);
        if (rc == 0) rc = load_split(d, json_object_get(root, "train"), what, dir, &il, &d->train, &d->n_train, err);
        snprintf(what, sizeof what, "%s test", path);
        if (rc == 0) rc = load_split(d, json_object_get(root, "test"), what, dir, &il, &d->test, &d->n_test, err);
        json_decref(root);
    }
    pvlm_imgprep_free(&il.prep);
    if (rc == 0 && d->n_train == 0) rc = pvlm_err_set(err, PVLM_EFORMAT, "%s: no training items", path);
    if (rc) pvlm_ft_data_free(d);
    return rc;
}

int pvlm_ft_group_rows(const pvlm_ft_data *d, const pvlm_ft_item *it) {
    if (d->task == PVLM_FT_CLASSIFY) return d->n_classes;
    if (d->task == PVLM_FT_GROUND) return it->nboxes < PVLM_CPT_NCOLOURS ? it->nboxes : PVLM_CPT_NCOLOURS;
    return 1;
}

int pvlm_ft_max_group_rows(const pvlm_ft_data *d) {
    if (d->task == PVLM_FT_CLASSIFY) return d->n_classes;
    if (d->task == PVLM_FT_GROUND) return PVLM_CPT_NCOLOURS;
    return 1;
}

/* Row r: image (may be NULL = text-only), prefix = n_ctx placeholders + text, target text + eos. */
static int fill_row(pvlm_batch *b, int r, const uint8_t *rgb, const char *prefix, const char *target, int ctx_set,
                    const pvlm_ft_rowspec *rs, pvlm_err *err) {
    const pvlm_model_config *mc = rs->mc;
    int Lp = b->Lp, Ls = b->Ls, nctx = mc->n_ctx;
    int32_t *pre = b->prefix + (size_t)r * (size_t)Lp, *din = b->dec_in + (size_t)r * (size_t)Ls;
    int32_t *tg = b->targets + (size_t)r * (size_t)Ls;
    size_t S3 = (size_t)b->S * (size_t)b->S * 3;
    if (rgb) memcpy(b->images + (size_t)r * S3, rgb, S3), b->has_image[r] = 1;
    else memset(b->images + (size_t)r * S3, 0, S3), b->has_image[r] = 0;
    for (int j = 0; j < Lp; j++) pre[j] = mc->pad_id;
    int np = 0;
    if (prefix && *prefix && Lp > nctx) {
        int64_t n = pvlm_tokenizer_encode(rs->tok, NULL, prefix, strlen(prefix), pre + nctx, (size_t)(Lp - nctx), err);
        if (n < 0) return -1;
        np = n > Lp - nctx ? Lp - nctx : (int)n;
    }
    b->prefix_len[r] = nctx + np;
    if (!rgb && b->prefix_len[r] == 0) pre[0] = mc->bos_id, b->prefix_len[r] = 1;
    b->ctx_set[r] = ctx_set;
    int32_t ids[512];
    int64_t n = pvlm_tokenizer_encode(rs->tok, NULL, target, strlen(target), ids, 512, err);
    if (n < 0) return -1;
    int nt = n > Ls - 1 ? Ls - 1 : (int)(n > 512 ? 512 : n);
    for (int t = 0; t < Ls; t++) din[t] = mc->pad_id, tg[t] = PVLM_IGNORE;
    din[0] = mc->bos_id;
    for (int t = 0; t < nt; t++) din[t + 1] = ids[t], tg[t] = ids[t];
    tg[nt] = mc->eos_id;
    b->suffix_len[r] = nt + 1;
    b->sample_id[r] = r;
    return 0;
}

/* "{class}" in tmpl replaced by name, with a leading space. */
static void class_target(const char *tmpl, const char *name, char *out, size_t cap) {
    const char *at = tmpl ? strstr(tmpl, "{class}") : NULL;
    if (!at) snprintf(out, cap, " %s", name);
    else snprintf(out, cap, " %.*s%s%s", (int)(at - tmpl), tmpl, name, at + 7);
}

int pvlm_ft_fill_query(const pvlm_ft_data *d, const pvlm_ft_item *it, const pvlm_ft_rowspec *rs, pvlm_batch *b, int r,
                       pvlm_err *err) {
    if (r >= b->B) return pvlm_err_set(err, PVLM_EINVAL, "finetune batch too small for row %d", r);
    const uint8_t *img = d->pixels + (size_t)it->image * (size_t)d->S * (size_t)d->S * 3;
    return fill_row(b, r, img, it->prefix, "", 0, rs, err);
}

int pvlm_ft_fill_group(const pvlm_ft_data *d, const pvlm_ft_item *it, const pvlm_ft_rowspec *rs, pvlm_batch *b,
                       int r0, pvlm_err *err) {
    int rows = pvlm_ft_group_rows(d, it);
    size_t S3 = (size_t)d->S * (size_t)d->S * 3;
    const uint8_t *img = d->pixels + (size_t)it->image * S3;
    if (r0 + rows > b->B) return pvlm_err_set(err, PVLM_EINVAL, "finetune batch too small for a group of %d rows", rows);
    if (d->task == PVLM_FT_CAPTION || d->task == PVLM_FT_VQA)
        return fill_row(b, r0, img, it->prefix, it->target, 0, rs, err) ? -1 : 1;
    if (d->task == PVLM_FT_CLASSIFY) {
        for (int c = 0; c < rows; c++) {
            char tgt[1024];
            class_target(rs->target_template, d->classes[c], tgt, sizeof tgt);
            if (fill_row(b, r0 + c, img, rs->prompt, tgt, rs->class_specific ? c : 0, rs, err)) return -1;
        }
        return rows;
    }
    char prefix[2048];
    snprintf(prefix, sizeof prefix, "%s%s", it->prefix, rs->query_suffix ? rs->query_suffix : "");
    uint8_t *painted = malloc(S3);
    if (!painted) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
    int w = d->orig_w[it->image], h = d->orig_h[it->image];
    if (rs->cpt_mode == PVLM_CPT_MULTI) { /* box j in colour j, all in one image */
        memcpy(painted, img, S3);
        for (int j = 0; j < rows; j++) pvlm_cpt_paint(painted, d->S, w, h, it->boxes[j], &pvlm_cpt_colours[j]);
    }
    for (int j = 0; j < rows; j++) {
        char tgt[64];
        const pvlm_cpt_colour *col = &pvlm_cpt_colours[rs->cpt_mode == PVLM_CPT_MULTI ? j : 0];
        if (rs->cpt_mode == PVLM_CPT_SINGLE) { /* only box j, in red */
            memcpy(painted, img, S3);
            pvlm_cpt_paint(painted, d->S, w, h, it->boxes[j], col);
        }
        snprintf(tgt, sizeof tgt, " %s color", col->name);
        if (fill_row(b, r0 + j, painted, prefix, tgt, 0, rs, err)) {
            free(painted);
            return -1;
        }
    }
    free(painted);
    return rows;
}

int pvlm_ft_objective_fn(void *ctx, const pvlm_batch *b, const double *sample_ce, double n_targets_global,
                         double *sample_scale, double *obj, pvlm_err *err) {
    const pvlm_ft_objective *o = ctx;
    double total = 0;
    for (int i = 0; i < b->B; i++) sample_scale[i] = 0;
    for (int g = 0; g < o->n_groups; g++) {
        int r0 = o->group_row0[g], r1 = o->group_row0[g + 1];
        double mx = -INFINITY, sum = 0, s[64];
        if (r1 - r0 > 64) return pvlm_err_set(err, PVLM_EINVAL, "a group has %d candidates (at most 64)", r1 - r0);
        for (int r = r0; r < r1; r++) {
            double n = 1;
            if (o->length_norm) n = b->suffix_len[r] > 0 ? b->suffix_len[r] : 1;
            s[r - r0] = -sample_ce[r] / n;
            if (s[r - r0] > mx) mx = s[r - r0];
        }
        for (int r = r0; r < r1; r++) sum += exp(s[r - r0] - mx);
        for (int r = r0; r < r1; r++) {
            double p = exp(s[r - r0] - mx) / sum, y = (r - r0) == o->label[g];
            double n = o->length_norm && b->suffix_len[r] > 0 ? b->suffix_len[r] : 1;
            /* d(-log p_y)/d s_r = p_r - y_r and s_r = -ce_r / n  =>  d obj / d ce_r = (y_r - p_r) / (n G) */
            sample_scale[r] = (y - p) / (n * o->groups_global);
        }
        total += -(s[o->label[g]] - mx - log(sum));
    }
    *obj = total / o->groups_global;
    return 0;
}

int pvlm_ft_argmax(const double *logp, const int32_t *ntok, int rows, int length_norm) {
    int best = 0;
    double bv = -INFINITY;
    for (int r = 0; r < rows; r++) {
        double v = length_norm ? logp[r] / (ntok[r] > 0 ? ntok[r] : 1) : logp[r];
        if (v > bv) bv = v, best = r;
    }
    return best;
}
