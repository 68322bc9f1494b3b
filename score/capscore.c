/* capscore.c - COCO caption scoring driver; see capscore.h. */
#define _POSIX_C_SOURCE 200809L
#include "score/capscore.h"

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "core/i64map.h"
#include "core/json.h"
#include "core/timer.h"
#include "score/cider.h"
#include "score/ptb.h"
#include "score/rouge.h"

const char *const pvlm_cap_metric_names[PVLM_CAP_NMETRICS] = {"Bleu_1",  "Bleu_2", "Bleu_3", "Bleu_4",
                                                              "ROUGE_L", "CIDEr",  "METEOR", "SPICE"};

/* CPU seconds of the calling thread (phase timings that a busy machine does not inflate) */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

void pvlm_caprefs_free(pvlm_caprefs *r) {
    if (!r) return;
    for (int32_t i = 0; i < r->n_img; i++) {
        if (r->file_name) free(r->file_name[i]);
        if (r->domain) free(r->domain[i]);
    }
    if (r->caption && r->ref_begin)
        for (int32_t c = 0; c < r->ref_begin[r->n_img]; c++) free(r->caption[c]);
    free(r->image_id);
    free(r->file_name);
    free(r->domain);
    free(r->ref_begin);
    free(r->caption);
    free(r->sorted_id);
    free(r->sorted_ix);
    memset(r, 0, sizeof *r);
}

int32_t pvlm_caprefs_find(const pvlm_caprefs *r, int64_t image_id) {
    if (!r->sorted_id) {
        for (int32_t i = 0; i < r->n_img; i++)
            if (r->image_id[i] == image_id) return i;
        return -1;
    }
    int32_t lo = 0, hi = r->n_img - 1;
    while (lo <= hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (r->sorted_id[mid] == image_id) return r->sorted_ix[mid];
        if (r->sorted_id[mid] < image_id)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

typedef struct {
    int64_t id;
    int32_t i;
} idx_pair;
static int cmp_idx_pair(const void *a, const void *b) {
    const idx_pair *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* the sorted id index of pvlm_caprefs_find */
static int build_sorted(pvlm_caprefs *r) {
    idx_pair *p = malloc(((size_t)r->n_img + 1) * sizeof *p);
    r->sorted_id = malloc(((size_t)r->n_img + 1) * sizeof *r->sorted_id);
    r->sorted_ix = malloc(((size_t)r->n_img + 1) * sizeof *r->sorted_ix);
    if (!p || !r->sorted_id || !r->sorted_ix) {
        free(p);
        return -1;
    }
    for (int32_t i = 0; i < r->n_img; i++) {
        p[i].id = r->image_id[i];
        p[i].i = i;
    }
    qsort(p, (size_t)r->n_img, sizeof *p, cmp_idx_pair);
    for (int32_t i = 0; i < r->n_img; i++) {
        r->sorted_id[i] = p[i].id;
        r->sorted_ix[i] = p[i].i;
    }
    free(p);
    return 0;
}

static int get_id(const json_t *o, const char *key, int64_t *out, const char *what, size_t idx, pvlm_err *err) {
    const json_t *v = json_object_get(o, key);
    if (!v || !json_is_integer(v))
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: record %zu: missing or non-integer \"%s\"", what, idx, key);
    *out = json_integer_value(v);
    return 0;
}

/* "images": each an object with a unique id (file_name and domain kept when given); m maps id -> index. */
static int add_images(pvlm_caprefs *r, pvlm_i64map *m, const json_t *images, const char *what, pvlm_err *err) {
    for (size_t i = 0; i < json_array_size(images); i++) {
        const json_t *im = json_array_get(images, i);
        int64_t id = 0;
        if (!json_is_object(im)) return pvlm_err_set(err, PVLM_EFORMAT, "%s: images[%zu] is not an object", what, i);
        if (get_id(im, "id", &id, what, i, err)) return pvlm_err_prefix(err, "images");
        int added = pvlm_i64map_add(m, id, r->n_img, NULL);
        if (added < 0) return pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", what);
        if (!added)
            return pvlm_err_set(err, PVLM_EFORMAT, "%s: images[%zu]: duplicate image id %lld", what, i, (long long)id);
        r->image_id[r->n_img] = id;
        const json_t *fn = json_object_get(im, "file_name"), *dm = json_object_get(im, "domain");
        if (json_is_string(fn) && !(r->file_name[r->n_img] = xstrdup(json_string_value(fn))))
            return pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", what);
        if (json_is_string(dm)) {
            if (!(r->domain[r->n_img] = xstrdup(json_string_value(dm))))
                return pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", what);
            r->any_domain = 1;
        }
        r->n_img++;
    }
    return 0;
}

/* "annotations": each an object with an image id and a string caption; ann_img[a] gets the index of
 * annotation a's image. Without an "images" list (has_images 0) the images are the annotations' ids
 * in first-seen order; with one, an unknown id is an error. */
static int map_annotations(pvlm_caprefs *r, pvlm_i64map *m, const json_t *anns, int has_images, int32_t *ann_img,
                           const char *what, pvlm_err *err) {
    for (size_t a = 0; a < json_array_size(anns); a++) {
        const json_t *an = json_array_get(anns, a);
        int64_t id = 0;
        if (!json_is_object(an))
            return pvlm_err_set(err, PVLM_EFORMAT, "%s: annotations[%zu] is not an object", what, a);
        if (get_id(an, "image_id", &id, what, a, err)) return pvlm_err_prefix(err, "annotations");
        if (!json_is_string(json_object_get(an, "caption")))
            return pvlm_err_set(err, PVLM_EFORMAT,
                                "%s: annotations[%zu] (image %lld): missing or non-string \"caption\"", what, a,
                                (long long)id);
        int64_t ix = pvlm_i64map_get(m, id);
        if (ix < 0) {
            if (has_images)
                return pvlm_err_set(err, PVLM_EFORMAT, "%s: annotations[%zu]: image id %lld is not in \"images\"", what,
                                    a, (long long)id);
            if (pvlm_i64map_add(m, id, r->n_img, NULL) < 0)
                return pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", what);
            ix = r->n_img;
            r->image_id[r->n_img++] = id;
        }
        ann_img[a] = (int32_t)ix;
    }
    return 0;
}

/* Captions grouped per image (r->ref_begin, r->caption), file order within the image. -1: out of memory. */
static int group_captions(pvlm_caprefs *r, const json_t *anns, const int32_t *ann_img) {
    size_t n_ann = json_array_size(anns);
    r->ref_begin = calloc((size_t)r->n_img + 2, sizeof *r->ref_begin);
    r->caption = calloc(n_ann + 1, sizeof *r->caption);
    int32_t *cnt = calloc((size_t)r->n_img + 1, sizeof *cnt);
    int rc = -1;
    if (!r->ref_begin || !r->caption || !cnt) goto out;
    for (size_t a = 0; a < n_ann; a++) r->ref_begin[ann_img[a] + 1]++;
    for (int32_t i = 0; i < r->n_img; i++) r->ref_begin[i + 1] += r->ref_begin[i];
    for (size_t a = 0; a < n_ann; a++) {
        int32_t i = ann_img[a];
        const char *cap_s = json_string_value(json_object_get(json_array_get(anns, a), "caption"));
        if (!(r->caption[r->ref_begin[i] + cnt[i]++] = xstrdup(cap_s))) goto out;
    }
    rc = 0;
out:
    free(cnt);
    return rc;
}

int pvlm_caprefs_from_json(pvlm_caprefs *r, const json_t *root, const char *what, pvlm_err *err) {
    memset(r, 0, sizeof *r);
    const json_t *images = json_object_get(root, "images"), *anns = json_object_get(root, "annotations");
    if (!json_is_object(root) || !json_is_array(anns))
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: not a COCO captions file (needs an \"annotations\" array)", what);
    if (images && !json_is_array(images))
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: \"images\" is not an array", what);
    size_t n_ann = json_array_size(anns), n_images = images ? json_array_size(images) : 0;
    pvlm_i64map m = {0}; /* image id -> index */
    int32_t *ann_img = NULL;
    if (pvlm_i64map_init(&m, n_images + n_ann)) goto oom;
    size_t cap = n_images + n_ann + 1;
    r->image_id = malloc(cap * sizeof *r->image_id);
    r->file_name = calloc(cap, sizeof *r->file_name);
    r->domain = calloc(cap, sizeof *r->domain);
    ann_img = malloc((n_ann + 1) * sizeof *ann_img);
    if (!r->image_id || !r->file_name || !r->domain || !ann_img) goto oom;
    if (add_images(r, &m, images, what, err) != 0 || map_annotations(r, &m, anns, images != NULL, ann_img, what, err))
        goto fail;
    if (group_captions(r, anns, ann_img) != 0 || build_sorted(r)) goto oom;
    pvlm_i64map_free(&m);
    free(ann_img);
    return 0;
oom:
    pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", what);
fail:
    pvlm_i64map_free(&m);
    free(ann_img);
    if (!r->ref_begin) { /* captions not yet grouped: free only the image arrays */
        for (int32_t i = 0; i < r->n_img; i++) {
            free(r->file_name ? r->file_name[i] : NULL);
            free(r->domain ? r->domain[i] : NULL);
        }
        free(r->image_id);
        free(r->file_name);
        free(r->domain);
        free(r->caption);
        memset(r, 0, sizeof *r);
    } else {
        pvlm_caprefs_free(r);
    }
    return -1;
}

int pvlm_caprefs_load(pvlm_caprefs *r, const char *path, pvlm_err *err) {
    memset(r, 0, sizeof *r);
    json_t *root = pvlm_json_load_file(path, err);
    if (!root) return -1;
    int rc = pvlm_caprefs_from_json(r, root, path, err);
    json_decref(root);
    return rc;
}

void pvlm_capres_free(pvlm_capres *res) {
    if (!res) return;
    for (int32_t i = 0; i < res->n; i++) free(res->caption ? res->caption[i] : NULL);
    free(res->image_id);
    free(res->caption);
    memset(res, 0, sizeof *res);
}

int pvlm_capres_from_json(pvlm_capres *res, const json_t *root, const char *what, pvlm_err *err) {
    memset(res, 0, sizeof *res);
    if (!json_is_array(root))
        return pvlm_err_set(err, PVLM_EFORMAT, "%s: a results file is a JSON array of {\"image_id\", \"caption\"}",
                            what);
    size_t n = json_array_size(root);
    pvlm_i64map m = {0}; /* image id -> record */
    res->image_id = malloc((n + 1) * sizeof *res->image_id);
    res->caption = calloc(n + 1, sizeof *res->caption);
    if (!res->image_id || !res->caption || pvlm_i64map_init(&m, n)) {
        pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", what);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *o = json_array_get(root, i);
        int64_t id = 0;
        if (!json_is_object(o)) {
            pvlm_err_set(err, PVLM_EFORMAT, "%s: record %zu is not an object", what, i);
            goto fail;
        }
        if (get_id(o, "image_id", &id, what, i, err)) goto fail;
        const json_t *c = json_object_get(o, "caption");
        if (!json_is_string(c)) {
            pvlm_err_set(err, PVLM_EFORMAT, "%s: record %zu (image %lld): missing or non-string \"caption\"", what, i,
                         (long long)id);
            goto fail;
        }
        int64_t first = -1;
        int added = pvlm_i64map_add(&m, id, (int64_t)i, &first);
        if (added <= 0) {
            if (added < 0)
                pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", what);
            else
                pvlm_err_set(err, PVLM_EFORMAT, "%s: record %zu: duplicate image id %lld (first at record %d)", what, i,
                             (long long)id, (int)first);
            goto fail;
        }
        res->image_id[i] = id;
        if (!(res->caption[i] = xstrdup(json_string_value(c)))) {
            pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", what);
            goto fail;
        }
        res->n = (int32_t)i + 1;
    }
    res->n = (int32_t)n;
    pvlm_i64map_free(&m);
    return 0;
fail:
    pvlm_i64map_free(&m);
    pvlm_capres_free(res);
    return -1;
}

int pvlm_capres_load(pvlm_capres *res, const char *path, pvlm_err *err) {
    memset(res, 0, sizeof *res);
    json_t *root = pvlm_json_load_file(path, err);
    if (!root) return -1;
    int rc = pvlm_capres_from_json(res, root, path, err);
    json_decref(root);
    return rc;
}

void pvlm_capscore_free(pvlm_capscore *s) {
    if (!s) return;
    if (s->cand_tok)
        for (int32_t i = 0; i < s->n_img; i++) free(s->cand_tok[i]);
    for (int k = 0; k < s->n_split; k++) free(s->split[k].name);
    free(s->split);
    free(s->cand_tok);
    free(s->image_id);
    free(s->ref_index);
    free(s->per_image);
    memset(s, 0, sizeof *s);
}

/* ---------- METEOR and SPICE through the official jars (as pycocoevalcap) ---------- */

/* Start `argv` with pipes to its stdin/stdout. Returns pid or -1. */
static pid_t spawn2(char *const argv[], const char *cwd, FILE **to, FILE **from) {
    int in[2], out[2];
    if (pipe(in)) return -1;
    if (pipe(out)) {
        close(in[0]);
        close(in[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        if (cwd && chdir(cwd)) _exit(127);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    *to = fdopen(in[1], "w");
    *from = fdopen(out[0], "r");
    return pid;
}

static char *read_line(FILE *f) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    if (n < 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ')) line[--n] = 0;
    return line;
}

static char *dir_of(const char *path) {
    char *d = xstrdup(path);
    if (!d) return NULL;
    char *sl = strrchr(d, '/');
    if (sl) {
        if (sl == d)
            sl[1] = 0;
        else
            *sl = 0;
    } else {
        d[0] = '.';
        d[1] = 0;
    }
    return d;
}

/* METEOR 1.5: `java -jar -Xmx2G meteor-1.5.jar - - -stdio -l en -norm`; one
 * "SCORE ||| ref ||| ... ||| hyp" line per image (hyp with "|||" removed and
 * double spaces made single), then "EVAL ||| stats ||| ..." answered by one
 * score per image and the corpus score. */
static int meteor_score(const pvlm_capscore_opts *o, int32_t n, const char *const *cand, const int32_t *rb,
                        const char *const *rs, double *mean, double *per, pvlm_err *err) {
    char *argv[] = {(char *)(o->java ? o->java : "java"),
                    "-jar",
                    "-Xmx2G",
                    (char *)o->meteor_jar,
                    "-",
                    "-",
                    "-stdio",
                    "-l",
                    "en",
                    "-norm",
                    NULL};
    FILE *to = NULL, *from = NULL;
    char *cwd = dir_of(o->meteor_jar);
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    pid_t pid = spawn2(argv, cwd, &to, &from);
    free(cwd);
    int rc = -1;
    char *eval = NULL;
    size_t elen = 0, ecap = 0;
    if (pid < 0 || !to || !from) {
        pvlm_err_errno(err, "METEOR: cannot start %s -jar %s", argv[0], o->meteor_jar);
        goto done;
    }
    for (int32_t i = 0; i < n; i++) {
        /* hypothesis: drop "|||", then replace double spaces once (str.replace semantics) */
        const char *h = cand[i];
        size_t hl = strlen(h);
        char *hyp = malloc(hl + 1), *hyp2 = malloc(hl + 1);
        if (!hyp || !hyp2) {
            free(hyp);
            free(hyp2);
            pvlm_err_set(err, PVLM_ENOMEM, "METEOR: out of memory");
            goto done;
        }
        size_t a = 0;
        for (size_t k = 0; k < hl;) {
            if (!strncmp(h + k, "|||", 3))
                k += 3;
            else
                hyp[a++] = h[k++];
        }
        hyp[a] = 0;
        size_t b = 0;
        for (size_t k = 0; k < a;) {
            if (hyp[k] == ' ' && hyp[k + 1] == ' ') {
                hyp2[b++] = ' ';
                k += 2;
            } else {
                hyp2[b++] = hyp[k++];
            }
        }
        hyp2[b] = 0;
        fputs("SCORE", to);
        for (int32_t r = rb[i]; r < rb[i + 1]; r++) fprintf(to, " ||| %s", rs[r]);
        fprintf(to, " ||| %s\n", hyp2);
        free(hyp);
        free(hyp2);
        fflush(to);
        char *stat = read_line(from);
        if (!stat) {
            pvlm_err_set(err, PVLM_EIO, "METEOR: %s stopped answering at image %d", o->meteor_jar, (int)i);
            goto done;
        }
        size_t sl = strlen(stat);
        if (elen + sl + 8 > ecap) {
            ecap = (elen + sl + 8) * 2;
            char *ne = realloc(eval, ecap);
            if (!ne) {
                free(stat);
                pvlm_err_set(err, PVLM_ENOMEM, "METEOR: out of memory");
                goto done;
            }
            eval = ne;
        }
        memcpy(eval + elen, " ||| ", 5);
        memcpy(eval + elen + 5, stat, sl);
        elen += 5 + sl;
        eval[elen] = 0;
        free(stat);
    }
    fprintf(to, "EVAL%s\n", eval ? eval : "");
    fflush(to);
    for (int32_t i = 0; i <= n; i++) {
        char *line = read_line(from);
        char *end = NULL;
        double v = line ? strtod(line, &end) : NAN;
        if (!line || end == line) {
            pvlm_err_set(err, PVLM_EIO, "METEOR: bad or missing score line %d from %s", (int)i, o->meteor_jar);
            free(line);
            goto done;
        }
        free(line);
        if (i < n) {
            if (per) per[i] = v;
        } else {
            *mean = v;
        }
    }
    rc = 0;
done:
    free(eval);
    if (to) fclose(to);
    if (from) fclose(from);
    if (pid > 0) {
        int st;
        waitpid(pid, &st, 0);
    }
    signal(SIGPIPE, old);
    return rc;
}

/* The scratch files of one SPICE run under tmp, named by pid so that concurrent scorers do not collide. */
static int spice_paths(const char *tmp, char *in, char *out, char *cache, size_t cap, pvlm_err *err) {
    char in_name[64], out_name[64];
    snprintf(in_name, sizeof in_name, "pvlm-spice-in-%d.json", (int)getpid());
    snprintf(out_name, sizeof out_name, "pvlm-spice-out-%d.json", (int)getpid());
    if (pvlm_path_join(in, cap, tmp, in_name, err) != 0 || pvlm_path_join(out, cap, tmp, out_name, err) != 0 ||
        pvlm_path_join(cache, cap, tmp, "pvlm-spice-cache", err) != 0)
        return -1;
    return 0;
}

/* SPICE 1.0: write [{"image_id", "test", "refs"}] (image ids sorted, as
 * spice.py), run `java -jar -Xmx8G spice-1.0.jar IN -cache DIR -out OUT
 * -subset -silent`, read scores.All.f per image; corpus = np.mean. */
static int spice_score(const pvlm_capscore_opts *o, int32_t n, const int64_t *ids, const char *const *cand,
                       const int32_t *rb, const char *const *rs, double *mean, double *per, pvlm_err *err) {
    const char *tmp = o->tmp_dir ? o->tmp_dir : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    char in_path[4096], out_path[4096], cache[4096];
    if (spice_paths(tmp, in_path, out_path, cache, sizeof in_path, err) != 0) return -1;
    json_t *arr = json_array(), *res = NULL;
    int rc = -1;
    /* spice.py writes the images sorted by id; the output (and np.mean) follow that order */
    idx_pair *ord = malloc(((size_t)n + 1) * sizeof *ord);
    if (!ord) {
        json_decref(arr);
        return pvlm_err_set(err, PVLM_ENOMEM, "SPICE: out of memory");
    }
    for (int32_t i = 0; i < n; i++) {
        ord[i].id = ids[i];
        ord[i].i = i;
    }
    qsort(ord, (size_t)n, sizeof *ord, cmp_idx_pair);
    for (int32_t oi = 0; oi < n; oi++) {
        int32_t i = ord[oi].i;
        json_t *it = json_object(), *refs = json_array();
        for (int32_t r = rb[i]; r < rb[i + 1]; r++) json_array_append_new(refs, json_string(rs[r]));
        json_object_set_new(it, "image_id", json_integer(ids[i]));
        json_object_set_new(it, "test", json_string(cand[i]));
        json_object_set_new(it, "refs", refs);
        json_array_append_new(arr, it);
    }
    if (json_dump_file(arr, in_path, JSON_INDENT(2))) {
        pvlm_err_set(err, PVLM_EIO, "SPICE: cannot write %s", in_path);
        goto done;
    }
    pid_t pid = fork();
    if (pid < 0) {
        pvlm_err_errno(err, "SPICE: fork");
        goto done;
    }
    if (pid == 0) {
        char *d = dir_of(o->spice_jar);
        if (d && chdir(d)) _exit(127);
        execlp(o->java ? o->java : "java", o->java ? o->java : "java", "-jar", "-Xmx8G", o->spice_jar, in_path,
               "-cache", cache, "-out", out_path, "-subset", "-silent", (char *)NULL);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st)) {
        pvlm_err_set(err, PVLM_EIO, "SPICE: java -jar %s failed (status %d)", o->spice_jar, st);
        goto done;
    }
    res = pvlm_json_load_file(out_path, err);
    if (!res) goto done;
    double *vals = malloc(((size_t)n + 1) * sizeof *vals);
    if (!vals) {
        pvlm_err_set(err, PVLM_ENOMEM, "SPICE: out of memory");
        goto done;
    }
    size_t nv = 0;
    for (size_t k = 0; k < json_array_size(res); k++) {
        const json_t *item = json_array_get(res, k);
        const json_t *f = json_object_get(json_object_get(json_object_get(item, "scores"), "All"), "f");
        double v = json_is_number(f) ? json_number_value(f) : NAN; /* spice.py: float() or NaN */
        if (nv < (size_t)n) vals[nv++] = v;
        if (per) {
            int64_t id = json_integer_value(json_object_get(item, "image_id"));
            for (int32_t i = 0; i < n; i++)
                if (ids[i] == id) per[i] = v;
        }
    }
    *mean = pvlm_ptb_np_mean(vals, nv);
    free(vals);
    rc = 0;
done:
    free(ord);
    unlink(in_path);
    unlink(out_path);
    json_decref(arr);
    json_decref(res);
    return rc;
}

/* Score one split: images sel[0..n) (indices into the evaluated set). */
static int score_split(pvlm_capscore *s, const pvlm_caprefs *refs, char *const *ref_tok, const int32_t *sel, int32_t n,
                       pvlm_capsplit *out, double *per_image, const pvlm_capscore_opts *opts, pvlm_err *err) {
    int rc = -1;
    int32_t *rb = malloc(((size_t)n + 1) * sizeof *rb);
    const char **cand = malloc(((size_t)n + 1) * sizeof *cand);
    size_t nref = 0;
    for (int32_t j = 0; j < n; j++) {
        int32_t ri = s->ref_index[sel[j]];
        nref += (size_t)(refs->ref_begin[ri + 1] - refs->ref_begin[ri]);
    }
    const char **rs = malloc((nref + 1) * sizeof *rs);
    double *pb = per_image ? malloc(((size_t)n * 4 + 1) * sizeof *pb) : NULL;
    double *pr = per_image ? malloc(((size_t)n + 1) * sizeof *pr) : NULL;
    double *pc = per_image ? malloc(((size_t)n + 1) * sizeof *pc) : NULL;
    pvlm_tokset ts;
    memset(&ts, 0, sizeof ts);
    if (!rb || !cand || !rs || (per_image && (!pb || !pr || !pc))) {
        pvlm_err_set(err, PVLM_ENOMEM, "score: out of memory");
        goto done;
    }
    rb[0] = 0;
    for (int32_t j = 0; j < n; j++) {
        int32_t ri = s->ref_index[sel[j]];
        cand[j] = s->cand_tok[sel[j]];
        int32_t k = rb[j];
        for (int32_t c = refs->ref_begin[ri]; c < refs->ref_begin[ri + 1]; c++) rs[k++] = ref_tok[c];
        rb[j + 1] = k;
    }
    out->n_img = n;
    for (int k = 0; k < PVLM_CAP_NMETRICS; k++) out->score[k] = NAN;
    double tb = pvlm_now(), cb = cpu_now();
    if (pvlm_ptb_tokset_build(&ts, n, cand, rb, rs, err)) goto done;
    double t0 = pvlm_now(), c0 = cpu_now();
    s->t_ngrams += t0 - tb;
    s->c_ngrams += c0 - cb;
    double bleu[4];
    if (pvlm_bleu_score(&ts, bleu, pb, &out->bleu_stats, err)) goto done;
    double t1 = pvlm_now(), c1 = cpu_now();
    if (pvlm_rouge_score(&ts, &out->score[PVLM_CAP_ROUGE_L], pr, err)) goto done;
    double t2 = pvlm_now(), c2 = cpu_now();
    if (pvlm_cider_score(&ts, &out->score[PVLM_CAP_CIDER], pc, err)) goto done;
    double t3 = pvlm_now(), c3 = cpu_now();
    s->t_bleu += t1 - t0;
    s->t_rouge += t2 - t1;
    s->t_cider += t3 - t2;
    s->c_bleu += c1 - c0;
    s->c_rouge += c2 - c1;
    s->c_cider += c3 - c2;
    for (int k = 0; k < 4; k++) out->score[PVLM_CAP_BLEU1 + k] = bleu[k];
    if (opts && (opts->meteor_jar || opts->spice_jar)) {
        double *pm = per_image ? malloc(((size_t)n + 1) * sizeof *pm) : NULL;
        double *psp = per_image ? malloc(((size_t)n + 1) * sizeof *psp) : NULL;
        int64_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
        int bad = !ids || (per_image && (!pm || !psp));
        if (!bad) {
            for (int32_t j = 0; j < n; j++) ids[j] = s->image_id[sel[j]];
            if (opts->meteor_jar && meteor_score(opts, n, cand, rb, rs, &out->score[PVLM_CAP_METEOR], pm, err)) bad = 2;
            if (!bad && opts->spice_jar &&
                spice_score(opts, n, ids, cand, rb, rs, &out->score[PVLM_CAP_SPICE], psp, err))
                bad = 2;
        }
        if (!bad && per_image)
            for (int32_t j = 0; j < n; j++) {
                per_image[(size_t)sel[j] * PVLM_CAP_NMETRICS + PVLM_CAP_METEOR] = opts->meteor_jar ? pm[j] : NAN;
                per_image[(size_t)sel[j] * PVLM_CAP_NMETRICS + PVLM_CAP_SPICE] = opts->spice_jar ? psp[j] : NAN;
            }
        free(pm);
        free(psp);
        free(ids);
        if (bad == 1) pvlm_err_set(err, PVLM_ENOMEM, "score: out of memory");
        if (bad) goto done;
    }
    if (per_image)
        for (int32_t j = 0; j < n; j++) {
            double *row = per_image + (size_t)sel[j] * PVLM_CAP_NMETRICS;
            for (int k = 0; k < 4; k++) row[k] = pb[(size_t)j * 4 + k];
            row[PVLM_CAP_ROUGE_L] = pr[j];
            row[PVLM_CAP_CIDER] = pc[j];
        }
    rc = 0;
done:
    pvlm_ptb_tokset_free(&ts);
    free(rb);
    free(cand);
    free(rs);
    free(pb);
    free(pr);
    free(pc);
    return rc;
}

/* pycocoevalcap tokenizes the references of the evaluated images (in that order) as one input, one
 * caption per line, and the candidates likewise: each caption is tokenized with the caption after it
 * as the following line (a few lexer rules look past a line's end), the last with the end of input.
 * '\n' inside a caption was replaced by ' ' there; the tokenizer here also treats \r, U+2028 etc. as
 * spaces (see docs/scoring.md). */
static char *tok_before(const char *c, const char *next, pvlm_ptblex_memo *memo, pvlm_err *err) {
    return pvlm_ptb_tokenize_next(c, strlen(c), next, next ? strlen(next) : 0, memo, err);
}
static int tokenize_all(pvlm_capscore *out, const pvlm_caprefs *refs, const pvlm_capres *res,
                        const int32_t *res_of_ref, char **ref_tok, pvlm_err *err) {
    pvlm_ptblex_memo *memo = pvlm_ptblex_memo_new(); /* NULL (out of memory) only costs time */
    int rc = -1;
    for (int32_t j = 0; j < out->n_img; j++) {
        const char *next = j + 1 < out->n_img ? res->caption[res_of_ref[out->ref_index[j + 1]]] : NULL;
        if (!(out->cand_tok[j] = tok_before(res->caption[res_of_ref[out->ref_index[j]]], next, memo, err))) goto done;
    }
    const char *prev = NULL;
    int32_t prev_k = -1;
    for (int32_t j = 0; j < out->n_img; j++) {
        int32_t i = out->ref_index[j];
        for (int32_t k = refs->ref_begin[i]; k < refs->ref_begin[i + 1]; k++) {
            if (prev && !(ref_tok[prev_k] = tok_before(prev, refs->caption[k], memo, err))) goto done;
            prev = refs->caption[k];
            prev_k = k;
        }
    }
    if (prev && !(ref_tok[prev_k] = tok_before(prev, NULL, memo, err))) goto done;
    rc = 0;
done:
    pvlm_ptblex_memo_free(memo);
    return rc;
}

int pvlm_capscore_run(pvlm_capscore *out, const pvlm_caprefs *refs, const pvlm_capres *res,
                      const pvlm_capscore_opts *opts, pvlm_err *err) {
    memset(out, 0, sizeof *out);
    if (res->n <= 0) return pvlm_err_set(err, PVLM_EINVAL, "score: the results file has no captions");
    int rc = -1;
    pvlm_i64map m = {0}; /* image id -> reference index */
    int32_t *res_of_ref = NULL, *sel = NULL;
    char **ref_tok = NULL;
    int32_t n_refcap = refs->ref_begin ? refs->ref_begin[refs->n_img] : 0;
    if (pvlm_i64map_init(&m, (size_t)refs->n_img)) goto oom;
    for (int32_t i = 0; i < refs->n_img; i++)
        if (pvlm_i64map_add(&m, refs->image_id[i], i, NULL) < 0) goto oom;
    res_of_ref = malloc(((size_t)refs->n_img + 1) * sizeof *res_of_ref);
    if (!res_of_ref) goto oom;
    for (int32_t i = 0; i < refs->n_img; i++) res_of_ref[i] = -1;
    for (int32_t r = 0; r < res->n; r++) {
        int64_t ix = pvlm_i64map_get(&m, res->image_id[r]);
        if (ix < 0) {
            pvlm_err_set(err, PVLM_EINVAL,
                         "score: results record %d: image id %lld is not in the references (the results must be a "
                         "subset of the annotation file's images)",
                         (int)r, (long long)res->image_id[r]);
            goto done;
        }
        int32_t i = (int32_t)ix;
        if (res_of_ref[i] >= 0) {
            pvlm_err_set(err, PVLM_EINVAL, "score: results records %d and %d: duplicate image id %lld",
                         (int)res_of_ref[i], (int)r, (long long)res->image_id[r]);
            goto done;
        }
        if (refs->ref_begin[i + 1] == refs->ref_begin[i]) {
            pvlm_err_set(err, PVLM_EINVAL, "score: results record %d: image id %lld has no reference captions", (int)r,
                         (long long)res->image_id[r]);
            goto done;
        }
        res_of_ref[i] = r;
    }
    /* evaluated set in reference order */
    out->n_img = res->n;
    out->image_id = malloc((size_t)res->n * sizeof *out->image_id);
    out->ref_index = malloc((size_t)res->n * sizeof *out->ref_index);
    out->cand_tok = calloc((size_t)res->n, sizeof *out->cand_tok);
    out->per_image = malloc((size_t)res->n * PVLM_CAP_NMETRICS * sizeof *out->per_image);
    sel = malloc(((size_t)res->n + 1) * sizeof *sel);
    ref_tok = calloc((size_t)n_refcap + 1, sizeof *ref_tok);
    if (!out->image_id || !out->ref_index || !out->cand_tok || !out->per_image || !sel || !ref_tok) goto oom;
    for (size_t q = 0; q < (size_t)res->n * PVLM_CAP_NMETRICS; q++) out->per_image[q] = NAN;
    int32_t j = 0;
    double t0 = pvlm_now(), c0 = cpu_now();
    for (int32_t i = 0; i < refs->n_img; i++) {
        if (res_of_ref[i] < 0) continue;
        out->image_id[j] = refs->image_id[i];
        out->ref_index[j++] = i;
    }
    if (tokenize_all(out, refs, res, res_of_ref, ref_tok, err)) goto done;
    out->t_tokenize = pvlm_now() - t0;
    out->c_tokenize = cpu_now() - c0;
    /* splits: overall, then each domain (NoCaps) */
    int n_dom = 0;
    char **dom = NULL;
    if (refs->any_domain) {
        dom = calloc((size_t)out->n_img + 1, sizeof *dom);
        if (!dom) goto oom;
        for (int32_t q = 0; q < out->n_img; q++) {
            const char *d = refs->domain[out->ref_index[q]];
            if (!d) continue;
            int found = 0;
            for (int k = 0; k < n_dom; k++)
                if (!strcmp(dom[k], d)) found = 1;
            if (!found) dom[n_dom++] = (char *)d;
        }
    }
    out->split = calloc((size_t)n_dom + 1, sizeof *out->split);
    if (!out->split) {
        free(dom);
        goto oom;
    }
    out->n_split = 1 + n_dom;
    out->split[0].name = xstrdup("overall");
    for (int k = 0; k < n_dom; k++) out->split[k + 1].name = xstrdup(dom[k]);
    for (int k = 0; k <= n_dom; k++)
        if (!out->split[k].name) {
            free(dom);
            goto oom;
        }
    for (int32_t q = 0; q < out->n_img; q++) sel[q] = q;
    if (score_split(out, refs, ref_tok, sel, out->n_img, &out->split[0], out->per_image, opts, err)) {
        free(dom);
        goto done;
    }
    for (int k = 0; k < n_dom; k++) {
        int32_t n = 0;
        for (int32_t q = 0; q < out->n_img; q++) {
            const char *d = refs->domain[out->ref_index[q]];
            if (d && !strcmp(d, dom[k])) sel[n++] = q;
        }
        if (score_split(out, refs, ref_tok, sel, n, &out->split[k + 1], NULL, opts, err)) {
            pvlm_err_prefix(err, "domain %s", dom[k]);
            free(dom);
            goto done;
        }
    }
    free(dom);
    rc = 0;
    goto done;
oom:
    pvlm_err_set(err, PVLM_ENOMEM, "score: out of memory");
done:
    pvlm_i64map_free(&m);
    free(res_of_ref);
    free(sel);
    if (ref_tok)
        for (int32_t k = 0; k < n_refcap; k++) free(ref_tok[k]);
    free(ref_tok);
    if (rc) pvlm_capscore_free(out);
    return rc;
}

static json_t *split_json(const pvlm_capsplit *sp) {
    json_t *o = json_object(), *un = json_array();
    for (int k = 0; k < PVLM_CAP_NMETRICS; k++) {
        if (isnan(sp->score[k]))
            json_array_append_new(un, json_string(pvlm_cap_metric_names[k]));
        else
            json_object_set_new(o, pvlm_cap_metric_names[k], json_real(sp->score[k]));
    }
    json_object_set_new(o, "n_images", json_integer(sp->n_img));
    if (json_array_size(un))
        json_object_set_new(o, "unavailable", un);
    else
        json_decref(un);
    return o;
}

json_t *pvlm_capscore_to_json(const pvlm_capscore *s) {
    json_t *o = split_json(&s->split[0]);
    if (s->n_split > 1) {
        json_t *d = json_object();
        for (int k = 1; k < s->n_split; k++) json_object_set_new(d, s->split[k].name, split_json(&s->split[k]));
        json_object_set_new(o, "domains", d);
    }
    return o;
}

/* The server's metric names, in pvlm_cap_metric_names order. */
static const char *const nocaps_names[PVLM_CAP_NMETRICS] = {"B1",      "B2",    "B3",     "B4",
                                                            "ROUGE-L", "CIDEr", "METEOR", "SPICE"};

static json_t *nocaps_metrics(const pvlm_capsplit *sp) {
    json_t *o = json_object();
    static const int order[PVLM_CAP_NMETRICS] = {PVLM_CAP_BLEU1,   PVLM_CAP_BLEU2,   PVLM_CAP_BLEU3, PVLM_CAP_BLEU4,
                                                 PVLM_CAP_METEOR,  PVLM_CAP_ROUGE_L, PVLM_CAP_CIDER, PVLM_CAP_SPICE};
    for (int q = 0; q < PVLM_CAP_NMETRICS; q++) {
        int k = order[q];
        json_object_set_new(o, nocaps_names[k], isnan(sp->score[k]) ? json_null() : json_real(sp->score[k]));
    }
    return o;
}

json_t *pvlm_capscore_nocaps_json(const pvlm_capscore *s, pvlm_err *err) {
    static const char *const domains[3] = {"in-domain", "near-domain", "out-domain"};
    const pvlm_capsplit *by[3] = {NULL, NULL, NULL};
    int covered = 0;
    for (int k = 1; k < s->n_split; k++) {
        int d = 0;
        while (d < 3 && strcmp(s->split[k].name, domains[d])) d++;
        if (d == 3)
            return pvlm_err_set(err, PVLM_EINVAL, "NoCaps: unknown domain \"%s\" (in-domain, near-domain, out-domain)",
                                s->split[k].name),
                   NULL;
        by[d] = &s->split[k];
        covered += s->split[k].n_img;
    }
    if (covered != s->n_img)
        return pvlm_err_set(err, PVLM_EINVAL,
                            "NoCaps: %d of the %d scored images have no \"domain\" in the references",
                            s->n_img - covered, s->n_img),
               NULL;
    json_t *out = json_array();
    for (int d = 0; d < 4; d++) {
        json_t *o = json_object();
        const pvlm_capsplit *sp = d < 3 ? by[d] : &s->split[0];
        json_object_set_new(o, d < 3 ? domains[d] : "entire", sp ? nocaps_metrics(sp) : json_null());
        json_array_append_new(out, o);
    }
    return out;
}

json_t *pvlm_capres_submission_json(const pvlm_capres *res, const pvlm_caprefs *refs, pvlm_err *err) {
    int32_t *of = malloc(((size_t)refs->n_img + 1) * sizeof *of);
    if (!of) return pvlm_err_set(err, PVLM_ENOMEM, "submission: out of memory"), NULL;
    for (int32_t i = 0; i < refs->n_img; i++) of[i] = -1;
    for (int32_t r = 0; r < res->n; r++) {
        int32_t i = pvlm_caprefs_find(refs, res->image_id[r]);
        if (i < 0) {
            free(of);
            return pvlm_err_set(err, PVLM_EINVAL, "submission: image id %lld of the results is not in the split",
                                (long long)res->image_id[r]),
                   NULL;
        }
        of[i] = r;
    }
    json_t *out = json_array();
    for (int32_t i = 0; i < refs->n_img; i++) {
        if (of[i] < 0) {
            pvlm_err_set(err, PVLM_EINVAL, "submission: no caption for image id %lld (%d of the split's %d images have none)",
                         (long long)refs->image_id[i], refs->n_img - res->n, refs->n_img);
            json_decref(out);
            free(of);
            return NULL;
        }
        json_array_append_new(out, json_pack("{s:I, s:s}", "image_id", (json_int_t)refs->image_id[i], "caption",
                                             res->caption[of[i]]));
    }
    free(of);
    return out;
}

json_t *pvlm_capscore_per_image_json(const pvlm_capscore *s, const pvlm_caprefs *refs) {
    json_t *root = json_object(), *corpus = json_object(), *per = json_object();
    for (int k = 0; k < PVLM_CAP_NMETRICS; k++)
        if (!isnan(s->split[0].score[k]))
            json_object_set_new(corpus, pvlm_cap_metric_names[k], json_real(s->split[0].score[k]));
    for (int32_t i = 0; i < s->n_img; i++) {
        const double *row = s->per_image + (size_t)i * PVLM_CAP_NMETRICS;
        json_t *o = json_object(), *b = json_array();
        for (int k = 0; k < 4; k++) json_array_append_new(b, json_real(row[k]));
        json_object_set_new(o, "image_id", json_integer(s->image_id[i]));
        json_object_set_new(o, "Bleu", b);
        json_object_set_new(o, "ROUGE_L", json_real(row[PVLM_CAP_ROUGE_L]));
        json_object_set_new(o, "CIDEr", json_real(row[PVLM_CAP_CIDER]));
        if (!isnan(row[PVLM_CAP_METEOR])) json_object_set_new(o, "METEOR", json_real(row[PVLM_CAP_METEOR]));
        if (!isnan(row[PVLM_CAP_SPICE])) json_object_set_new(o, "SPICE", json_real(row[PVLM_CAP_SPICE]));
        const char *fn = refs->file_name[s->ref_index[i]];
        char key[32];
        if (!fn) {
            snprintf(key, sizeof key, "%lld", (long long)s->image_id[i]);
            fn = key;
        }
        json_object_set_new(per, fn, o);
    }
    json_object_set_new(root, "corpus", corpus);
    json_object_set_new(root, "per_image", per);
    return root;
}

int pvlm_capscore_print_json(const json_t *j, FILE *f) {
    if (json_dumpf(j, f, JSON_REAL_PRECISION(17) | JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII)) return -1;
    return fputc('\n', f) == EOF ? -1 : 0;
}
