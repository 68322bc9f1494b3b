/* shard_images.c - see shard_images.h. */
#include "shard_images.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/args.h"
#include "core/fsutil.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/threads.h"
#include "core/timer.h"
#include "core/utf8.h"
#include "io/image.h"
#include "io/imgshard.h"
#include "io/manifest.h"
#include "shard/download.h"
#include "shard/urlsrc.h"
#include "shard/wdssrc.h"

#define MAX_SHARDS 100000
#define LOG_PER_REASON 10 /* failures logged individually per reason, then only counted */

void pvlm_shard_images_defaults(pvlm_shard_images_cfg *c) {
    memset(c, 0, sizeof(*c));
    c->records_per_shard = 10000;
    c->image_size = 224;
    c->resize_mode = "crop";
    c->jpeg_quality = 95;
    c->store = "jpeg";
    c->seed = 0;
    c->shuffle = 1;
    c->parts = 1;
    c->txn_records = 1024;
    c->progress_s = 5;
    pvlm_dl_config_default(&c->dl);
    c->url_format = "auto";
    c->url_col = "url";
    c->caption_col = "caption";
    c->retry_reasons = "";
}

/* ---- items ---- */
typedef struct item {
    char *id;
    char *path;     /* image file (or URL) */
    char *alt_path; /* second place to look (Karpathy: DIR/filename when DIR/filepath/filename is absent) */
    int ncap;
    char **caps;
    int64_t row;     /* URL inputs: the row index in the URL list (failures file key) */
    int bad_caption; /* captions refused by the UTF-8 rule (core/utf8.h: not UTF-8, or a NUL) */
    int64_t tar_off, tar_len; /* webdataset: the image is tar_len bytes at tar_off of path (tar_len 0: a file) */
    uint64_t tar_xxh3;
    int orig_w, orig_h; /* webdataset: original size from the json member (0: the decoded image's) */
} item;

typedef struct item_list {
    item *v;
    int64_t n, cap;
    json_t *fails; /* failures found while listing (bad rows of a URL list): reason -> count */
} item_list;

static void items_free(item_list *l) {
    for (int64_t i = 0; i < l->n; i++) {
        if (l->v[i].id != l->v[i].path) free(l->v[i].id); /* URL items share one string */
        free(l->v[i].path);
        free(l->v[i].alt_path);
        for (int k = 0; k < l->v[i].ncap; k++) free(l->v[i].caps[k]);
        free(l->v[i].caps);
    }
    free(l->v);
    json_decref(l->fails);
    memset(l, 0, sizeof(*l));
}

static item *items_push(item_list *l, pvlm_err *err) {
    if (l->n == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 1024;
        item *v = realloc(l->v, (size_t)cap * sizeof(*v));
        if (!v) {
            pvlm_err_set(err, PVLM_ENOMEM, "out of memory listing items");
            return NULL;
        }
        l->v = v;
        l->cap = cap;
    }
    item *it = &l->v[l->n++];
    memset(it, 0, sizeof(*it));
    return it;
}

/* Whitespace-trimmed copy; NULL for an empty (all-space) caption. */
static char *trim_dup(const char *s, size_t n) {
    while (n && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n')) n--;
    if (!n) return NULL;
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static int add_caption(item *it, const char *s, size_t n, pvlm_err *err) {
    /* the loader's rule, applied here so a caption the loader would drop is counted now; a NUL
     * would silently cut the caption at that byte */
    if (!pvlm_utf8_text_ok(s, n)) {
        it->bad_caption++;
        return 0;
    }
    char *c = trim_dup(s, n);
    if (!c) return 0; /* empty captions are dropped; an item left with none is an empty_caption failure */
    char **v = realloc(it->caps, (size_t)(it->ncap + 1) * sizeof(*v));
    if (!v) {
        free(c);
        return pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
    }
    it->caps = v;
    it->caps[it->ncap++] = c;
    return 0;
}

/* malloc'd "a/b" (pvlm_path_join into a buffer sized to fit); NULL when out of memory. */
static char *join_path(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s && pvlm_path_join(s, n, a, b, NULL) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

static char *id_string(json_t *v) {
    char buf[64];
    if (json_is_integer(v)) {
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return strdup(buf);
    }
    if (json_is_string(v)) return strdup(json_string_value(v));
    return NULL;
}

static void count_fail(json_t *o, const char *reason, int64_t n) {
    if (n <= 0) return;
    json_t *v = json_object_get(o, reason);
    json_object_set_new(o, reason, json_integer((json_int_t)((v ? json_integer_value(v) : 0) + n)));
}

/* COCO / NoCaps: images [{id, file_name}], annotations [{image_id, caption}]. An annotation without
 * a caption or with an unknown image id is counted (bad_annotation) and skipped. */
static int list_coco_anns(const pvlm_shard_images_cfg *c, const json_t *imgs, const json_t *anns, item_list *l,
                          pvlm_err *err) {
    json_t *byid = json_object(); /* image id string -> index in l */
    int rc = -1;
    size_t i;
    json_t *e;
    if (!byid) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory listing %s", c->coco);
    json_array_foreach(imgs, i, e) {
        char *id = id_string(json_object_get(e, "id"));
        const char *fn = json_string_value(json_object_get(e, "file_name"));
        if (!id || !fn) {
            free(id);
            pvlm_err_set(err, PVLM_EFORMAT, "%s: images[%zu] lacks 'id' or 'file_name'", c->coco, i);
            goto out;
        }
        item *it = items_push(l, err);
        if (!it) {
            free(id);
            goto out;
        }
        it->id = id;
        if (!(it->path = join_path(c->images, fn))) {
            pvlm_err_set(err, PVLM_ENOMEM, "out of memory listing %s", c->coco);
            goto out;
        }
        json_object_set_new(byid, id, json_integer((json_int_t)(l->n - 1)));
    }
    json_array_foreach(anns, i, e) {
        char *id = id_string(json_object_get(e, "image_id"));
        const char *cap = json_string_value(json_object_get(e, "caption"));
        json_t *ix = id ? json_object_get(byid, id) : NULL;
        free(id);
        if (!ix || !cap) { /* counted in the manifest as bad_annotation, logged up to 10 times */
            count_fail(l->fails, "bad_annotation", 1);
            if (json_integer_value(json_object_get(l->fails, "bad_annotation")) <= LOG_PER_REASON)
                pvlm_warn("%s: annotations[%zu] has no caption or an unknown image_id; skipped", c->coco, i);
            continue;
        }
        if (add_caption(&l->v[json_integer_value(ix)], cap, strlen(cap), err) != 0) goto out;
    }
    rc = 0;
out:
    json_decref(byid);
    return rc;
}

/* Karpathy: images [{filepath?, filename, cocoid?|imgid?, split, sentences [{raw}]}], only --split's
 * when given; the image is DIR/filepath/filename, or DIR/filename when that is absent. */
static int list_karpathy(const pvlm_shard_images_cfg *c, const json_t *imgs, item_list *l, pvlm_err *err) {
    size_t i;
    json_t *e;
    json_array_foreach(imgs, i, e) {
        const char *split = json_string_value(json_object_get(e, "split"));
        if (c->split && *c->split && (!split || strcmp(split, c->split) != 0)) continue;
        const char *fn = json_string_value(json_object_get(e, "filename"));
        const char *fp = json_string_value(json_object_get(e, "filepath"));
        json_t *idv = json_object_get(e, "cocoid");
        if (!idv) idv = json_object_get(e, "imgid");
        char *id = idv ? id_string(idv) : (fn ? strdup(fn) : NULL);
        json_t *sents = json_object_get(e, "sentences");
        if (!fn || !id || !json_is_array(sents)) {
            free(id);
            return pvlm_err_set(
                err, PVLM_EFORMAT,
                "%s: images[%zu] lacks 'filename', an id or 'sentences' (neither COCO nor Karpathy format)", c->coco,
                i);
        }
        item *it = items_push(l, err);
        if (!it) {
            free(id);
            return -1;
        }
        it->id = id;
        char *dir = fp ? join_path(c->images, fp) : NULL;
        it->path = !fp ? join_path(c->images, fn) : dir ? join_path(dir, fn) : NULL;
        free(dir);
        if (!it->path || (fp && !(it->alt_path = join_path(c->images, fn))))
            return pvlm_err_set(err, PVLM_ENOMEM, "out of memory listing %s", c->coco);
        size_t k;
        json_t *sn;
        json_array_foreach(sents, k, sn) {
            const char *raw = json_string_value(json_object_get(sn, "raw"));
            if (raw && add_caption(it, raw, strlen(raw), err) != 0) return -1;
        }
    }
    return 0;
}

/* --coco: COCO / NoCaps files (with "annotations") or Karpathy dataset_*.json (without). */
static int list_coco(const pvlm_shard_images_cfg *c, item_list *l, pvlm_err *err) {
    if (!c->images || !*c->images) return pvlm_err_set(err, PVLM_EINVAL, "--coco needs --images DIR");
    json_t *j = pvlm_json_load_file(c->coco, err);
    if (!j) return -1;
    int rc;
    json_t *imgs = json_object_get(j, "images"), *anns = json_object_get(j, "annotations");
    if (!json_is_array(imgs))
        rc = pvlm_err_set(err, PVLM_EFORMAT, "%s: no 'images' array", c->coco);
    else if (json_is_array(anns))
        rc = list_coco_anns(c, imgs, anns, l, err);
    else
        rc = list_karpathy(c, imgs, l, err);
    json_decref(j);
    return rc;
}

static int list_pairs(const pvlm_shard_images_cfg *c, item_list *l, pvlm_err *err);
static int list_urls(const pvlm_shard_images_cfg *c, item_list *l, pvlm_err *err);

int pvlm_shard_images_list(const pvlm_shard_images_cfg *c, pvlm_shard_images_listing *out, pvlm_err *err) {
    memset(out, 0, sizeof *out);
    item_list l = {0};
    if (!(l.fails = json_object())) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
    int rc = c->coco && *c->coco                                              ? list_coco(c, &l, err)
             : (c->urls && *c->urls) || (c->retry_failed && *c->retry_failed) ? list_urls(c, &l, err)
                                                                              : list_pairs(c, &l, err);
    out->items = l.n;
    for (int64_t i = 0; i < l.n; i++) {
        out->captions += l.v[i].ncap;
        out->bad_captions += l.v[i].bad_caption;
    }
    const char *k;
    json_t *v;
    json_object_foreach(l.fails, k, v) out->list_failures += json_integer_value(v);
    items_free(&l); /* frees l.fails too */
    return rc;
}

/* name.jpg|jpeg|png + name.txt, files sorted by name (readdir order is not stable). An image
 * without a .txt is listed with no captions (an empty_caption failure unless kept). */
static int list_pairs(const pvlm_shard_images_cfg *c, item_list *l, pvlm_err *err) {
    char **names;
    size_t n;
    if (pvlm_dir_names(c->pairs, pvlm_image_name_ok, &names, &n, err)) return pvlm_err_prefix(err, "--pairs");
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        item *it = items_push(l, err);
        if (!it) {
            rc = -1;
            break;
        }
        const char *dot = strrchr(names[i], '.');
        it->id = strndup(names[i], (size_t)(dot - names[i]));
        it->path = join_path(c->pairs, names[i]);
        /* the captions: the image's path with its extension replaced by .txt */
        size_t stem = it->path ? strlen(it->path) - strlen(dot) : 0;
        char *tp = it->path ? malloc(stem + 5) : NULL;
        if (!it->id || !tp) {
            rc = pvlm_err_set(err, PVLM_ENOMEM, "out of memory listing %s", c->pairs);
            break;
        }
        memcpy(tp, it->path, stem);
        memcpy(tp + stem, ".txt", 5);
        char *txt = NULL;
        size_t tn = 0;
        if (pvlm_read_file(tp, &txt, &tn, NULL) == 0) {
            const char *s = txt, *end = txt + tn;
            while (s < end && rc == 0) {
                const char *nl = memchr(s, '\n', (size_t)(end - s));
                size_t ln = nl ? (size_t)(nl - s) : (size_t)(end - s);
                rc = add_caption(it, s, ln, err);
                s += ln + 1;
            }
            free(txt);
        }
        free(tp);
    }
    pvlm_dir_names_free(names, n);
    return rc;
}

/* URL list rows (or the failed rows of an earlier build). Rows the list reader skips
 * (unparsable, empty url, empty caption) are counted as listing failures. */
static int list_urls(const pvlm_shard_images_cfg *c, item_list *l, pvlm_err *err) {
    pvlm_urlsrc *src;
    if (c->retry_failed && *c->retry_failed) {
        src = pvlm_urlsrc_open_failures(c->retry_failed, c->retry_reasons, err);
    } else {
        pvlm_urlsrc_opts o;
        pvlm_urlsrc_opts_default(&o);
        if (c->url_format && *c->url_format) o.format = c->url_format;
        if (c->url_col && *c->url_col) o.url_col = c->url_col;
        if (c->caption_col && *c->caption_col) o.caption_col = c->caption_col;
        src = pvlm_urlsrc_open(c->urls, &o, err);
    }
    if (!src) return -1;
    pvlm_url_item u;
    int rc;
    while ((rc = pvlm_urlsrc_next(src, &u, err)) == 1) {
        item *it = items_push(l, err);
        if (!it) {
            rc = -1;
            break;
        }
        it->path = strdup(u.url);
        it->id = it->path; /* the source id of a URL item is its URL: one copy (lists have millions) */
        it->row = u.index;
        if (!it->path || add_caption(it, u.caption, strlen(u.caption), err) != 0) {
            rc = -1;
            break;
        }
    }
    pvlm_urlsrc_counts cnt;
    pvlm_urlsrc_get_counts(src, &cnt);
    pvlm_urlsrc_close(src);
    count_fail(l->fails, "bad_row", cnt.bad_rows);
    count_fail(l->fails, "empty_url", cnt.empty_url);
    count_fail(l->fails, "empty_caption", cnt.empty_caption);
    return rc < 0 ? -1 : 0;
}

/* Samples of webdataset tars (shard/wdssrc.h); members the source drops are listing failures. */
static int list_wds(const pvlm_shard_images_cfg *c, item_list *l, pvlm_err *err) {
    pvlm_wdssrc *src = pvlm_wdssrc_open(c->webdataset, err);
    if (!src) return -1;
    pvlm_wds_sample w;
    int rc;
    while ((rc = pvlm_wdssrc_next(src, &w, err)) == 1) {
        item *it = items_push(l, err);
        if (!it || !(it->path = strdup(w.tar)) || !(it->id = strdup(w.url ? w.url : w.key)) ||
            (w.caption && add_caption(it, w.caption, w.caption_len, err))) {
            rc = pvlm_err_set(err, PVLM_ENOMEM, "out of memory listing %s", c->webdataset);
            break;
        }
        it->tar_off = w.off, it->tar_len = w.len, it->tar_xxh3 = w.xxh3;
        it->orig_w = w.orig_w, it->orig_h = w.orig_h;
    }
    pvlm_wds_counts cnt;
    pvlm_wdssrc_get_counts(src, &cnt);
    pvlm_wdssrc_close(src);
    for (int k = 0; k < PVLM_WDS_NREASONS; k++) count_fail(l->fails, pvlm_wds_reason_names[k], cnt.bad[k]);
    pvlm_info("webdataset: %lld samples from %lld members of %lld tars", (long long)cnt.samples,
              (long long)cnt.members, (long long)cnt.tars);
    return rc < 0 ? -1 : 0;
}

/* ---- per-item state ---- */
typedef struct slot {
    const item *it;
    uint8_t *body; /* downloaded bytes (URL inputs), owned; NULL: read it->path */
    size_t body_n;
    long http_status;
    int attempts;
    int done;     /* set (under the queue mutex) when the record or the failure is final */
    uint8_t *rec; /* encoded record (NULL on failure) */
    size_t rec_n;
    const char *reason; /* failure reason name (static string) */
    char *msg;          /* failure message (malloc'd) */
} slot;

static void fail(slot *s, const char *reason, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(slot *s, const char *reason, const char *fmt, ...) {
    s->reason = reason;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&s->msg, fmt, ap) < 0) s->msg = NULL;
    va_end(ap);
}

typedef struct build_ctx {
    const pvlm_shard_images_cfg *c;
    int mode, enc;
    pvlm_image_codec **codecs; /* one per worker thread */
} build_ctx;

static void process_item(const build_ctx *b, slot *s, int tid);

/* ---- worker queue ----
 * The main thread pushes slots (bounded ring: it blocks when cap jobs wait, which
 * throttles listing/downloading to decoding speed); T workers pop, decode + resize +
 * encode, and mark the slot done. The main thread appends finished slots strictly in
 * item order, so the output is the same for any T and any completion order. */
typedef struct wqueue {
    pthread_mutex_t mu;
    pthread_cond_t cv_job, cv_space, cv_done;
    slot **ring;
    int cap, head, count, quit, T, started;
    int64_t pending; /* pushed but not done */
    pthread_t *th;
    struct wq_arg *args;
    const build_ctx *b;
} wqueue;

typedef struct wq_arg {
    wqueue *q;
    int tid;
} wq_arg;

static void *wq_main(void *a) {
    wq_arg *wa = a;
    wqueue *q = wa->q;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->quit && q->count == 0) pthread_cond_wait(&q->cv_job, &q->mu);
        if (q->count == 0) break; /* quit and nothing left */
        slot *s = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
        pthread_cond_signal(&q->cv_space);
        pthread_mutex_unlock(&q->mu);
        process_item(q->b, s, wa->tid);
        pthread_mutex_lock(&q->mu);
        s->done = 1;
        q->pending--;
        pthread_cond_broadcast(&q->cv_done);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

static int wq_start(wqueue *q, int T, const build_ctx *b, pvlm_err *err) {
    memset(q, 0, sizeof(*q));
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv_job, NULL);
    pthread_cond_init(&q->cv_space, NULL);
    pthread_cond_init(&q->cv_done, NULL);
    q->cap = 4 * T + 4;
    q->b = b;
    q->ring = calloc((size_t)q->cap, sizeof(slot *));
    q->th = calloc((size_t)T, sizeof(pthread_t));
    q->args = calloc((size_t)T, sizeof(wq_arg));
    if (!q->ring || !q->th || !q->args) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory starting threads");
    for (int t = 0; t < T; t++) {
        q->args[t].q = q;
        q->args[t].tid = t;
        if (pthread_create(&q->th[t], NULL, wq_main, &q->args[t]) != 0)
            return pvlm_err_set(err, PVLM_EIO, "cannot start worker thread %d", t);
        q->T = t + 1;
    }
    q->started = 1;
    return 0;
}

static void wq_push(wqueue *q, slot *s) {
    pthread_mutex_lock(&q->mu);
    while (q->count == q->cap) pthread_cond_wait(&q->cv_space, &q->mu);
    q->ring[(q->head + q->count) % q->cap] = s;
    q->count++;
    q->pending++;
    pthread_cond_signal(&q->cv_job);
    pthread_mutex_unlock(&q->mu);
}

/* Mark a slot final without decoding (a failed download). */
static void wq_finish_now(wqueue *q, slot *s) {
    pthread_mutex_lock(&q->mu);
    s->done = 1;
    pthread_cond_broadcast(&q->cv_done);
    pthread_mutex_unlock(&q->mu);
}

static int wq_is_done(wqueue *q, const slot *s) {
    pthread_mutex_lock(&q->mu);
    int d = s->done;
    pthread_mutex_unlock(&q->mu);
    return d;
}

static void wq_wait_done(wqueue *q, const slot *s) {
    pthread_mutex_lock(&q->mu);
    while (!s->done) pthread_cond_wait(&q->cv_done, &q->mu);
    pthread_mutex_unlock(&q->mu);
}

static void wq_drain(wqueue *q) {
    pthread_mutex_lock(&q->mu);
    while (q->pending > 0) pthread_cond_wait(&q->cv_done, &q->mu);
    pthread_mutex_unlock(&q->mu);
}

static void wq_stop(wqueue *q) {
    if (q->T > 0) {
        pthread_mutex_lock(&q->mu);
        q->quit = 1;
        pthread_cond_broadcast(&q->cv_job);
        pthread_mutex_unlock(&q->mu);
        for (int t = 0; t < q->T; t++) pthread_join(q->th[t], NULL);
    }
    free(q->ring);
    free(q->th);
    free(q->args);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv_job);
    pthread_cond_destroy(&q->cv_space);
    pthread_cond_destroy(&q->cv_done);
    memset(q, 0, sizeof(*q));
}

/* ---- per-item processing (worker threads) ---- */
static void process_item(const build_ctx *b, slot *s, int tid) {
    const item *it = s->it;
    pvlm_err err = {0};
    if (it->bad_caption) {
        fail(s, "bad_caption", "%s: %d caption(s) not valid UTF-8 or holding a NUL byte", it->id, it->bad_caption);
        return;
    }
    if (it->ncap == 0 && !b->c->keep_uncaptioned) {
        fail(s, "empty_caption", "%s: no non-empty caption", it->id);
        return;
    }
    char *data = NULL;
    size_t n = 0;
    const char *src = it->path;
    if (s->reason) return; /* the download failed */
    if (s->body) {
        data = (char *)s->body;
        n = s->body_n;
        s->body = NULL;
    } else if (it->tar_len > 0) {
        if (pvlm_wds_read_image(it->path, it->tar_off, it->tar_len, it->tar_xxh3, &data, &n, &err) != 0) {
            fail(s, "missing_file", "%s: %s", it->id, err.msg);
            return;
        }
    } else if (pvlm_read_file(it->path, &data, &n, &err) != 0) {
        if (it->alt_path && pvlm_read_file(it->alt_path, &data, &n, NULL) == 0) {
            src = it->alt_path;
        } else {
            fail(s, err.code == PVLM_EINVAL ? "not_a_file" : "missing_file", "%s", err.msg);
            return;
        }
    }
    int S = b->c->image_size;
    pvlm_image img = {0}, fit = {0};
    int ow = 0, oh = 0;
    int rc = pvlm_image_decode(b->codecs[tid], data, n, b->mode == PVLM_RESIZE_CROP ? S : 0,
                               b->mode == PVLM_RESIZE_BORDER ? S : 0, &img, &ow, &oh, src, &err);
    free(data);
    if (rc != 0) { /* decode_error, corrupt_image (truncated/forged data) or too_large */
        fail(s, pvlm_image_reject_name(pvlm_image_codec_reject(b->codecs[tid])), "%s", err.msg);
        return;
    }
    rc = pvlm_image_fit(&img, S, b->mode, &fit, &err);
    pvlm_image_free(&img);
    if (rc != 0) {
        fail(s, "decode_error", "%s: %s", src, err.msg);
        return;
    }
    pvlm_imgrec r = {0};
    r.id = it->id;
    r.ncaptions = it->ncap;
    r.captions = (const char **)it->caps;
    r.orig_w = it->orig_w > 0 ? it->orig_w : ow; /* webdataset images were resized by the downloader */
    r.orig_h = it->orig_h > 0 ? it->orig_h : oh;
    r.stored_w = fit.w;
    r.stored_h = fit.h;
    r.encoding = b->enc;
    uint8_t *jpg = NULL;
    if (b->enc == PVLM_IMG_ENC_JPEG) {
        size_t jn;
        if (pvlm_image_encode_jpeg(b->codecs[tid], &fit, b->c->jpeg_quality, &jpg, &jn, &err) != 0) {
            pvlm_image_free(&fit);
            fail(s, "encode_error", "%s: %s", src, err.msg);
            return;
        }
        r.image = jpg;
        r.image_len = jn;
    } else {
        r.image = fit.rgb;
        r.image_len = (uint64_t)fit.w * fit.h * 3;
    }
    if (pvlm_imgrec_encode(&r, &s->rec, &s->rec_n, &err) != 0) {
        fail(s, "encode_error", "%s", err.msg);
    }
    free(jpg);
    pvlm_image_free(&fit);
}

/* ---- failure accounting ---- */
typedef struct fail_log {
    json_t *logged; /* reason -> number logged so far (this process) */
} fail_log;

static void log_failure(fail_log *fl, const char *reason, const char *msg) {
    json_t *v = json_object_get(fl->logged, reason);
    int64_t n = v ? (int64_t)json_integer_value(v) : 0;
    if (n < LOG_PER_REASON)
        pvlm_warn("shard images: skipped (%s): %s", reason, msg);
    else if (n == LOG_PER_REASON)
        pvlm_warn("shard images: further '%s' failures are counted but not logged", reason);
    json_object_set_new(fl->logged, reason, json_integer((json_int_t)(n + 1)));
}

/* ---- progress ---- */
typedef struct progress {
    double t0, last, every;
    int64_t total, done, failed;
} progress;

static void fmt_dur(double s, char *buf, size_t n) {
    if (s < 0 || s > 1e8) {
        snprintf(buf, n, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (t >= 60)
        snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, n, "%lds", t);
}

static void progress_tick(progress *p, int force, int shard, int nshards) {
    double now = pvlm_now();
    if (!force && (p->every <= 0 || now - p->last < p->every)) return;
    p->last = now;
    double el = now - p->t0, rate = el > 0 ? p->done / el : 0;
    char eta[32];
    fmt_dur(rate > 0 ? (p->total - p->done) / rate : -1, eta, sizeof eta);
    fprintf(stderr,
            "shard images: %" PRId64 "/%" PRId64 " items (%.1f%%), %.1f items/s, ETA %s, failed %.2f%%, shard %d/%d\n",
            p->done, p->total, p->total ? 100.0 * p->done / p->total : 100.0, rate, eta,
            p->done ? 100.0 * p->failed / p->done : 0.0, shard + 1, nshards);
}

/* ---- one shard ---- */
static void shard_name(char *buf, size_t n, int k, int N) {
    snprintf(buf, n, "images-%05d-of-%05d.lmdb", k, N);
}

/* Shard k of N in folder out: its file name into name (64 bytes) and "<out>/<name>" into path
 * (4096 bytes; the sidecar buffers below leave room for the longest suffix after it). */
enum { SHARD_PATH_CAP = 4096 };
static int shard_path(const char *out, int k, int N, char *name, char *path, pvlm_err *err) {
    shard_name(name, 64, k, N);
    return pvlm_path_join(path, SHARD_PATH_CAP, out, name, err);
}

static void rm_shard_files(const char *path) {
    const char *suffix[] = {"", ".tmp", ".compact.tmp", "-lock", ".json", ".failures.jsonl"};
    char p[4200];
    for (int i = 0; i < 6; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
}

/* A shard is complete when its file and sidecar exist, the sidecar's settings hash
 * matches, and the file size matches the sidecar (cheap; the manifest checksum lets
 * readers verify the bytes). */
static int shard_complete(const char *path, const char *settings_hash, json_t **side_out) {
    char sp[4200];
    snprintf(sp, sizeof sp, "%s.json", path);
    *side_out = NULL;
    if (!pvlm_file_exists(path) || !pvlm_file_exists(sp)) return 0;
    json_t *j = pvlm_json_load_file(sp, NULL);
    if (!j) return 0;
    const char *h = json_string_value(json_object_get(j, "settings_hash"));
    json_t *b = json_object_get(j, "bytes");
    struct stat st;
    if (!h || strcmp(h, settings_hash) != 0 || !json_is_integer(b) || stat(path, &st) != 0 ||
        (json_int_t)st.st_size != json_integer_value(b)) {
        json_decref(j);
        return 0;
    }
    *side_out = j;
    return 1;
}

typedef struct run {
    const pvlm_shard_images_cfg *c;
    item_list items;
    int64_t *order; /* permutation of item indices */
    int N;          /* shards */
    json_t *settings;
    char settings_hash[17];
    build_ctx b;
    wqueue q;
    int is_url;
    pvlm_dl *dl;
    int T;
    fail_log fl;
    progress pr;
} run;

/* State of one shard being built. */
typedef struct shard_run {
    run *R;
    int k;
    slot *slots; /* one per item of the shard */
    int64_t n, next, written;
    pvlm_imgshard_writer *w;
    json_t *fails;
    pvlm_urlfail *uf;
    int rc;
    pvlm_err *err;
} shard_run;

/* Append (or count as failed) every finished slot at the write position, in item order. */
static void flush_ready(shard_run *sr) {
    run *R = sr->R;
    while (sr->written < sr->n && wq_is_done(&R->q, &sr->slots[sr->written])) {
        slot *s = &sr->slots[sr->written++];
        if (s->rec) {
            if (sr->rc == 0 && pvlm_imgshard_writer_add_encoded(sr->w, s->rec, s->rec_n, sr->err) != 0) sr->rc = -1;
        } else {
            const char *reason = s->reason ? s->reason : "other";
            json_t *v = json_object_get(sr->fails, reason);
            json_object_set_new(sr->fails, reason, json_integer(v ? json_integer_value(v) + 1 : 1));
            log_failure(&R->fl, reason, s->msg ? s->msg : "");
            R->pr.failed++;
            if (sr->uf && sr->rc == 0 &&
                pvlm_urlfail_write(sr->uf, s->it->row, s->it->path, s->it->ncap ? s->it->caps[0] : NULL, reason,
                                   s->http_status, s->attempts, s->msg, sr->err) != 0)
                sr->rc = -1;
        }
        free(s->rec);
        free(s->body);
        free(s->msg);
        s->rec = s->body = NULL;
        s->msg = NULL;
        R->pr.done++;
        progress_tick(&R->pr, 0, sr->k, R->N);
    }
}

/* Downloader source: the shard's URLs in item order (it pulls as it has room). */
static int url_next(void *ctx, pvlm_dl_item *di, pvlm_err *err) {
    shard_run *sr = ctx;
    (void)err;
    if (sr->next >= sr->n || sr->rc != 0) return 0;
    const item *it = sr->slots[sr->next].it;
    di->index = sr->next++;
    di->url = it->path;
    di->caption = it->ncap ? it->caps[0] : NULL;
    di->user = NULL;
    return 1;
}

/* Downloader completion (any order): queue the body for decoding, or finish the slot as
 * failed; then write whatever prefix is complete. Pushing blocks while the decode queue
 * is full, which throttles downloads to decoding speed (bounded memory). */
static int url_done(void *ctx, pvlm_dl_result *r) {
    shard_run *sr = ctx;
    slot *s = &sr->slots[r->index];
    s->http_status = r->http_status;
    s->attempts = r->attempts;
    if (r->reason == PVLM_DL_OK) {
        s->body = pvlm_dl_take_body(r, &s->body_n);
        if (s->body) {
            wq_push(&sr->R->q, s);
        } else {
            fail(s, "empty", "%s: empty body", r->url);
            wq_finish_now(&sr->R->q, s);
        }
    } else {
        fail(s, pvlm_dl_reason_name(r->reason), "%s: %s (HTTP %ld) %s", r->url, pvlm_dl_reason_name(r->reason),
             r->http_status, r->detail);
        wq_finish_now(&sr->R->q, s);
    }
    flush_ready(sr);
    return sr->rc != 0;
}

static int build_shard(run *R, int k, json_t **side_out, pvlm_err *err) {
    const pvlm_shard_images_cfg *c = R->c;
    char name[64], path[SHARD_PATH_CAP];
    if (shard_path(c->out, k, R->N, name, path, err) != 0) return -1;
    rm_shard_files(path);
    int64_t lo = (int64_t)((__int128)R->items.n * k / R->N), hi = (int64_t)((__int128)R->items.n * (k + 1) / R->N);
    json_t *st = json_deep_copy(R->settings);
    json_object_set_new(st, "shard", json_integer(k));
    char *sjs = json_dumps(st, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(st);
    pvlm_imgshard_wopts wo = {.txn_records = c->txn_records, .settings_json = sjs};
    shard_run sr = {.R = R, .k = k, .n = hi - lo, .err = err};
    sr.w = pvlm_imgshard_writer_open(path, &wo, err);
    free(sjs);
    if (!sr.w) return -1;
    sr.fails = json_object();
    sr.slots = calloc((size_t)(sr.n > 0 ? sr.n : 1), sizeof(slot));
    if (!sr.slots) sr.rc = pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
    for (int64_t i = 0; i < sr.n && sr.rc == 0; i++) sr.slots[i].it = &R->items.v[R->order[lo + i]];
    if (sr.rc == 0 && R->is_url) {
        char fp[4300];
        snprintf(fp, sizeof fp, "%s.failures.jsonl", path);
        if (!(sr.uf = pvlm_urlfail_open(fp, 0, err))) sr.rc = -1;
    }
    if (sr.rc == 0 && R->is_url) {
        int drc = pvlm_dl_run(R->dl, url_next, &sr, url_done, &sr, err);
        if (drc < 0 && sr.rc == 0) sr.rc = -1;
        if (drc == 1 && sr.rc == 0)
            sr.rc = pvlm_err_set(err, PVLM_ESTOP, "stopped on request while building %s (re-run to resume)", name);
    } else if (sr.rc == 0) {
        for (; sr.next < sr.n && sr.rc == 0; sr.next++) {
            if (c->stop && *c->stop) {
                sr.rc = pvlm_err_set(err, PVLM_ESTOP, "stopped on request while building %s (re-run to resume)", name);
                break;
            }
            wq_push(&R->q, &sr.slots[sr.next]);
            flush_ready(&sr);
        }
    }
    if (sr.rc == 0) {
        while (sr.written < sr.n && sr.rc == 0) {
            wq_wait_done(&R->q, &sr.slots[sr.written]);
            flush_ready(&sr);
        }
    }
    wq_drain(&R->q); /* after an error or stop: let queued jobs finish before freeing their slots */
    for (int64_t i = 0; sr.slots && i < sr.n; i++) {
        free(sr.slots[i].rec);
        free(sr.slots[i].body);
        free(sr.slots[i].msg);
    }
    free(sr.slots);
    if (sr.uf && pvlm_urlfail_close(sr.uf, sr.rc == 0 ? err : NULL) != 0 && sr.rc == 0) sr.rc = -1;
    if (sr.rc != 0) {
        pvlm_imgshard_writer_abort(sr.w);
        json_decref(sr.fails);
        return -1;
    }
    pvlm_imgshard_info info;
    if (pvlm_imgshard_writer_finish(sr.w, &info, err) != 0) {
        json_decref(sr.fails);
        return -1;
    }
    char hex[17];
    pvlm_hash_hex(info.checksum, hex);
    json_t *side = json_pack("{s:s,s:I,s:I,s:I,s:s,s:o,s:s}", "file", name, "items", (json_int_t)(hi - lo), "records",
                             (json_int_t)info.records, "bytes", (json_int_t)info.bytes, "checksum", hex, "failures",
                             sr.fails, "settings_hash", R->settings_hash);
    char sp[4200];
    snprintf(sp, sizeof sp, "%s.json", path);
    if (!side || pvlm_json_save_atomic(side, sp, err) != 0) {
        json_decref(side);
        return -1;
    }
    *side_out = side;
    return 0;
}

/* manifest.json from every shard's sidecar; fails listing the first missing shard. */
static int write_manifest(run *R, pvlm_err *err) {
    pvlm_manifest m;
    if (pvlm_manifest_init(&m, "images", err) != 0) return -1;
    int rc = 0;
    int64_t items = 0;
    for (int k = 0; k < R->N && rc == 0; k++) {
        char name[64], path[SHARD_PATH_CAP];
        if ((rc = shard_path(R->c->out, k, R->N, name, path, err)) != 0) break;
        json_t *side;
        if (!shard_complete(path, R->settings_hash, &side)) {
            rc = pvlm_err_set(err, PVLM_ENOTFOUND,
                              "%s: shard %d is not complete yet (build it, or run the remaining parts)", path, k);
            break;
        }
        uint64_t ck = 0;
        pvlm_hash_parse(json_string_value(json_object_get(side, "checksum")), &ck);
        json_t *extra = json_pack("{s:O}", "items", json_object_get(side, "items"));
        items += (int64_t)json_integer_value(json_object_get(side, "items"));
        rc = pvlm_manifest_add_shard(&m, name, (int64_t)json_integer_value(json_object_get(side, "records")),
                                     (uint64_t)json_integer_value(json_object_get(side, "bytes")), ck, extra, err);
        const char *key;
        json_t *v;
        json_object_foreach(json_object_get(side, "failures"), key, v) {
            pvlm_manifest_add_failures(&m, key, (int64_t)json_integer_value(v));
        }
        json_decref(side);
    }
    if (rc == 0 && R->items.fails) {
        const char *key;
        json_t *v;
        json_object_foreach(R->items.fails, key, v) {
            pvlm_manifest_add_failures(&m, key, (int64_t)json_integer_value(v));
        }
    }
    if (rc == 0 && R->is_url) { /* failures.jsonl = the shards' failure lists in shard order */
        size_t cap = 0, len = 0;
        char *all = NULL;
        for (int k = 0; k < R->N && rc == 0; k++) {
            char name[64], path[SHARD_PATH_CAP], fp[4300];
            if ((rc = shard_path(R->c->out, k, R->N, name, path, err)) != 0) break;
            snprintf(fp, sizeof fp, "%s.failures.jsonl", path);
            char *d = NULL;
            size_t n = 0;
            if (pvlm_read_file(fp, &d, &n, err) != 0) {
                rc = -1;
                break;
            }
            if (len + n + 1 > cap) {
                cap = 2 * (len + n + 1);
                char *a = realloc(all, cap);
                if (!a) {
                    free(d);
                    rc = pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
                    break;
                }
                all = a;
            }
            memcpy(all + len, d, n);
            len += n;
            free(d);
        }
        char fp[4096];
        if (rc == 0) rc = pvlm_path_join(fp, sizeof fp, R->c->out, "failures.jsonl", err);
        if (rc == 0) rc = pvlm_write_file_atomic(fp, all ? all : "", len, err);
        free(all);
    }
    if (rc == 0) {
        json_t *s = json_deep_copy(R->settings);
        json_object_set_new(s, "settings_hash", json_string(R->settings_hash));
        pvlm_manifest_set_settings(&m, s);
        pvlm_manifest_add_total(&m, "items", items);
        char mp[4096];
        rc = pvlm_path_join(mp, sizeof mp, R->c->out, "manifest.json", err);
        if (rc == 0) rc = pvlm_manifest_save(&m, mp, err);
    }
    pvlm_manifest_free(&m);
    return rc;
}

/* The flags a build needs, checked before anything is written; the resize mode and the stored
 * encoding into *mode and *enc. */
static int check_cfg(const pvlm_shard_images_cfg *c, int *mode, int *enc, pvlm_err *err) {
    int is_url = (c->urls && *c->urls) || (c->retry_failed && *c->retry_failed);
    int is_wds = c->webdataset && *c->webdataset;
    int ninputs = (c->coco && *c->coco) + (c->pairs && *c->pairs) + is_url + is_wds;
    if (ninputs != 1 || ((c->urls && *c->urls) && (c->retry_failed && *c->retry_failed)))
        return pvlm_err_set(err, PVLM_EINVAL,
                            "give exactly one input: --coco (with --images), --pairs, --urls, --retry-failed or "
                            "--webdataset");
    if (!c->out || !*c->out) return pvlm_err_set(err, PVLM_EINVAL, "--out is required");
    if (c->image_size < 8 || c->image_size > 4096)
        return pvlm_err_set(err, PVLM_EINVAL, "--image-size %d not in 8..4096", c->image_size);
    *mode = !strcmp(c->resize_mode, "crop")     ? PVLM_RESIZE_CROP
            : !strcmp(c->resize_mode, "border") ? PVLM_RESIZE_BORDER
                                                : -1;
    if (*mode < 0) return pvlm_err_set(err, PVLM_EINVAL, "--resize-mode '%s': want crop or border", c->resize_mode);
    *enc = !strcmp(c->store, "jpeg") ? PVLM_IMG_ENC_JPEG : !strcmp(c->store, "raw") ? PVLM_IMG_ENC_RAW : -1;
    if (*enc < 0) return pvlm_err_set(err, PVLM_EINVAL, "--store '%s': want jpeg or raw", c->store);
    if (c->jpeg_quality < 1 || c->jpeg_quality > 100)
        return pvlm_err_set(err, PVLM_EINVAL, "--jpeg-quality %d not in 1..100", c->jpeg_quality);
    if (c->parts < 1 || c->part < 0 || c->part >= c->parts)
        return pvlm_err_set(err, PVLM_EINVAL, "--part %d --parts %d: need 0 <= part < parts", c->part, c->parts);
    return 0;
}

/* One builder per part at a time: a second process on the same part would delete the first one's
 * temp files. flock is advisory and per open file; where the file system does not support it (some
 * network file systems: ENOLCK) we go on without it. *fd: the held lock (close releases it), or -1. */
static int lock_part(const pvlm_shard_images_cfg *c, int *fd, pvlm_err *err) {
    char name[64], lockp[4096];
    *fd = -1;
    if (c->merge) return 0;
    snprintf(name, sizeof name, ".lock-part-%d-of-%d", c->part, c->parts);
    if (pvlm_path_join(lockp, sizeof lockp, c->out, name, err) != 0) return -1;
    int lockfd = open(lockp, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (lockfd >= 0 && flock(lockfd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
        close(lockfd);
        return pvlm_err_set(err, PVLM_EINVAL, "%s: another 'pvlm shard images' is building part %d of %d here", c->out,
                            c->part, c->parts);
    }
    *fd = lockfd;
    return 0;
}

/* Every item of the one input, cut to --limit. */
static int list_items(run *R, int is_wds, pvlm_err *err) {
    const pvlm_shard_images_cfg *c = R->c;
    if (!(R->items.fails = json_object())) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
    if ((c->coco && *c->coco ? list_coco(c, &R->items, err)
         : R->is_url         ? list_urls(c, &R->items, err)
         : is_wds            ? list_wds(c, &R->items, err)
                             : list_pairs(c, &R->items, err)) != 0)
        return -1;
    if (c->limit > 0 && R->items.n > c->limit) {
        for (int64_t i = c->limit; i < R->items.n; i++) { /* drop the tail */
            item *it = &R->items.v[i];
            if (it->id != it->path) free(it->id);
            free(it->path);
            free(it->alt_path);
            for (int k = 0; k < it->ncap; k++) free(it->caps[k]);
            free(it->caps);
        }
        R->items.n = c->limit;
    }
    return 0;
}

/* The shard count and the item permutation (R->N, R->order). */
static int plan_shards(run *R, pvlm_err *err) {
    const pvlm_shard_images_cfg *c = R->c;
    if (c->shards > 0)
        R->N = c->shards;
    else
        R->N =
            (int)((R->items.n + c->records_per_shard - 1) / (c->records_per_shard > 0 ? c->records_per_shard : 10000));
    if (R->N < 1) R->N = 1;
    if (R->N > MAX_SHARDS)
        return pvlm_err_set(err, PVLM_EINVAL, "%d shards is over the limit of %d (raise --records-per-shard)", R->N,
                            MAX_SHARDS);
    R->order = malloc(sizeof(int64_t) * (size_t)(R->items.n ? R->items.n : 1));
    if (!R->order) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
    for (int64_t i = 0; i < R->items.n; i++) R->order[i] = i;
    if (c->shuffle) { /* Fisher-Yates with the seeded generator: same seed, same order */
        pvlm_rng rng;
        pvlm_rng_seed(&rng, (uint64_t)c->seed, 0x5348415244ull /* "SHARD" */);
        pvlm_rng_shuffle(&rng, R->order, (size_t)R->items.n, sizeof *R->order);
    }
    return 0;
}

/* Inputs hash: every listed item's id, path and captions in order, so a changed input list
 * invalidates finished shards instead of silently mixing builds. */
static int hash_inputs(const item_list *l, char hex[17], pvlm_err *err) {
    pvlm_hasher ih;
    if (pvlm_hasher_init(&ih, err) != 0) return -1;
    for (int64_t i = 0; i < l->n; i++) {
        const item *it = &l->v[i];
        pvlm_hasher_update(&ih, it->id, strlen(it->id) + 1);
        pvlm_hasher_update(&ih, it->path, strlen(it->path) + 1);
        for (int k = 0; k < it->ncap; k++) pvlm_hasher_update(&ih, it->caps[k], strlen(it->caps[k]) + 1);
        pvlm_hasher_update(&ih, "\n", 1);
    }
    pvlm_hash_hex(pvlm_hasher_digest(&ih), hex);
    pvlm_hasher_free(&ih);
    return 0;
}

/* The settings every shard records (R->settings) and their hash (R->settings_hash): what decides
 * the bytes of a shard, so a finished shard is reused only when they match. */
static int hash_settings(run *R, const char *kind, pvlm_err *err) {
    const pvlm_shard_images_cfg *c = R->c;
    char ihex[17];
    if (hash_inputs(&R->items, ihex, err) != 0) return -1;
    R->settings = json_pack("{s:s,s:I,s:s,s:i,s:s,s:i,s:s,s:I,s:b,s:i,s:b,s:s,s:[i,i,i],s:s}", "input", kind, "items",
                            (json_int_t)R->items.n, "inputs_hash", ihex, "image_size", c->image_size, "resize_mode",
                            c->resize_mode, "jpeg_quality", c->jpeg_quality, "store", c->store, "seed",
                            (json_int_t)c->seed, "shuffle", c->shuffle, "shards", R->N, "keep_uncaptioned",
                            c->keep_uncaptioned, "filter", "bicubic-antialias", "pad_rgb", PVLM_IMAGE_PAD_R,
                            PVLM_IMAGE_PAD_G, PVLM_IMAGE_PAD_B, "split", c->split ? c->split : "");
    if (!R->settings) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
    if (R->is_url) /* what decides which bytes we got; concurrency and timeouts do not change a good fetch */
        json_object_set_new(R->settings, "download",
                            json_pack("{s:I,s:i,s:s}", "max_bytes", (json_int_t)c->dl.max_bytes, "max_redirects",
                                      c->dl.max_redirects, "user_agent", c->dl.user_agent));
    char *sj = json_dumps(R->settings, JSON_SORT_KEYS | JSON_COMPACT);
    if (!sj) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
    pvlm_hash_hex(pvlm_hash64(sj, strlen(sj)), R->settings_hash);
    free(sj);
    return 0;
}

/* Which shards are this part's, and which of those still need building (pending[k] = 1); counts
 * the complete ones into st. Returns the number of items of the pending shards, or -1. */
static int64_t find_pending(const run *R, int *pending, pvlm_shard_images_stats *st, pvlm_err *err) {
    const pvlm_shard_images_cfg *c = R->c;
    int64_t pending_items = 0;
    for (int k = c->part; k < R->N; k += c->parts) {
        char name[64], path[SHARD_PATH_CAP];
        if (shard_path(c->out, k, R->N, name, path, err) != 0) return -1;
        json_t *side;
        int64_t lo = (int64_t)((__int128)R->items.n * k / R->N), hi = (int64_t)((__int128)R->items.n * (k + 1) / R->N);
        st->items += hi - lo;
        if (shard_complete(path, R->settings_hash, &side)) {
            st->shards_skipped++;
            st->records += (int64_t)json_integer_value(json_object_get(side, "records"));
            json_decref(side);
        } else {
            pending[k] = 1;
            pending_items += hi - lo;
        }
    }
    if (st->shards_skipped) pvlm_info("shard images: %d shard(s) already complete, skipped", st->shards_skipped);
    return pending_items;
}

/* One image codec per worker thread, the worker queue (when there is work) and, for URL inputs,
 * the downloader: every pending shard of a URL build runs it, also one with no usable rows.
 * *started: whether the queue's threads must be stopped. */
static int start_workers(run *R, int mode, int enc, int64_t pending_items, int *started, pvlm_err *err) {
    const pvlm_shard_images_cfg *c = R->c;
    R->T = pvlm_threads_resolve(c->threads);
    R->b.c = c;
    R->b.mode = mode;
    R->b.enc = enc;
    R->b.codecs = calloc((size_t)R->T, sizeof(*R->b.codecs));
    R->fl.logged = json_object();
    R->pr.t0 = R->pr.last = pvlm_now();
    R->pr.every = c->progress_s;
    R->pr.total = pending_items;
    *started = 0;
    if (!R->b.codecs) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
    for (int t = 0; t < R->T; t++)
        if (!(R->b.codecs[t] = pvlm_image_codec_new(err))) return -1;
    if (pending_items > 0) {
        *started = 1; /* threads that did start are joined by wq_stop */
        if (wq_start(&R->q, R->T, &R->b, err) != 0) return -1;
    }
    if (R->is_url) {
        pvlm_dl_config dc = c->dl;
        dc.seed = (uint64_t)c->seed;
        dc.stop_flag = c->stop;
        if (!(R->dl = pvlm_dl_create(&dc, err))) return -1;
    }
    return 0;
}

/* Build the pending shards in order, counting them into st. */
static int build_pending(run *R, const int *pending, pvlm_shard_images_stats *st, pvlm_err *err) {
    for (int k = 0; k < R->N; k++) {
        if (!pending[k]) continue;
        json_t *side;
        if (build_shard(R, k, &side, err) != 0) return -1;
        st->shards_built++;
        st->records += (int64_t)json_integer_value(json_object_get(side, "records"));
        json_decref(side);
    }
    return 0;
}

/* Any process that sees every shard complete writes manifest.json; its content depends only on
 * the shards, so concurrent parts write identical bytes. A part that finishes before the others
 * only says so. */
static int finish_manifest(run *R, pvlm_shard_images_stats *st, pvlm_err *err) {
    const pvlm_shard_images_cfg *c = R->c;
    pvlm_err e2 = {0};
    if (write_manifest(R, &e2) == 0) {
        st->manifest_written = 1;
        return 0;
    }
    if (c->parts > 1) {
        pvlm_info("shard images: part %d/%d done; manifest.json waits for the other parts (%s)", c->part, c->parts,
                  e2.msg);
        return 0;
    }
    *err = e2;
    return -1;
}

static void run_free(run *R) {
    if (R->b.codecs)
        for (int t = 0; t < R->T; t++) pvlm_image_codec_free(R->b.codecs[t]);
    free(R->b.codecs);
    json_decref(R->fl.logged);
    json_decref(R->settings);
    free(R->order);
    items_free(&R->items);
}

/* List, plan and hash, then either only merge (--merge) or build this part's pending shards and
 * write the manifest when all are complete. */
static int run_build(run *R, int mode, int enc, pvlm_shard_images_stats *st, pvlm_err *err) {
    const pvlm_shard_images_cfg *c = R->c;
    int is_wds = c->webdataset && *c->webdataset;
    const char *kind = c->coco && *c->coco ? "coco" : R->is_url ? "urls" : is_wds ? "webdataset" : "pairs";
    if (list_items(R, is_wds, err) != 0 || plan_shards(R, err) != 0 || hash_settings(R, kind, err) != 0) return -1;
    if (c->merge) {
        int rc = write_manifest(R, err);
        st->manifest_written = rc == 0;
        return rc;
    }
    int *pending = calloc((size_t)R->N, sizeof(int));
    if (!pending) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
    int started = 0;
    int64_t pending_items = find_pending(R, pending, st, err);
    int rc = pending_items < 0 ? -1 : start_workers(R, mode, enc, pending_items, &started, err);
    if (rc == 0) rc = build_pending(R, pending, st, err);
    if (started) wq_stop(&R->q);
    if (R->dl) pvlm_dl_free(R->dl);
    free(pending);
    st->failed = R->pr.failed;
    if (rc == 0 && R->pr.total && R->pr.every > 0) progress_tick(&R->pr, 1, R->N - 1, R->N);
    if (rc == 0) rc = finish_manifest(R, st, err);
    return rc;
}

int pvlm_shard_images_build(const pvlm_shard_images_cfg *c, pvlm_shard_images_stats *st, pvlm_err *err) {
    pvlm_shard_images_stats dummy;
    if (!st) st = &dummy;
    memset(st, 0, sizeof(*st));
    int mode = 0, enc = 0, lockfd = -1;
    if (check_cfg(c, &mode, &enc, err) != 0 || pvlm_mkdir_p(c->out, err) != 0 || lock_part(c, &lockfd, err) != 0)
        return -1;
    double t0 = pvlm_now();
    run R;
    memset(&R, 0, sizeof R);
    R.c = c;
    R.is_url = (c->urls && *c->urls) || (c->retry_failed && *c->retry_failed);
    int rc = run_build(&R, mode, enc, st, err);
    if (lockfd >= 0) close(lockfd); /* releases the flock */
    st->seconds = pvlm_now() - t0;
    run_free(&R);
    return rc;
}

/* ---- CLI ---- */
static volatile sig_atomic_t g_stop; /* set by SIGINT/SIGTERM: stop soon, leaving no partial shard */
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

/* What the command line must give beyond what each flag checks: one input, --images with --coco,
 * --part below --parts. 0, or 2 (usage error) after saying why. */
static int check_cli(const pvlm_shard_images_cfg *c) {
    int ninputs = (c->coco && *c->coco) + (c->pairs && *c->pairs) + (c->urls && *c->urls) +
                  (c->retry_failed && *c->retry_failed) + (c->webdataset && *c->webdataset);
    if (ninputs != 1) {
        fprintf(stderr,
                "pvlm shard images: give exactly one of --coco, --pairs, --urls, --retry-failed, --webdataset\n");
        return 2;
    }
    if (c->coco && (!c->images || !*c->images)) {
        fprintf(stderr, "pvlm shard images: --coco needs --images DIR\n");
        return 2;
    }
    if (c->part >= c->parts) {
        fprintf(stderr, "pvlm shard images: --part %d must be < --parts %d\n", c->part, c->parts);
        return 2;
    }
    return 0;
}

/* Build with SIGINT/SIGTERM asking for a clean stop (no partial shard) and report the totals. */
static int build_and_report(pvlm_shard_images_cfg *c) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    c->stop = &g_stop;
    pvlm_shard_images_stats st;
    pvlm_err err = {0};
    if (pvlm_shard_images_build(c, &st, &err) != 0) {
        pvlm_error("pvlm shard images: %s", err.msg);
        return 1;
    }
    pvlm_info("shard images: %" PRId64 " records from %" PRId64 " items (%" PRId64
              " failed), %d shard(s) built, %d skipped, %.1f s%s",
              st.records, st.items, st.failed, st.shards_built, st.shards_skipped, st.seconds,
              st.manifest_written ? "; manifest.json written" : "");
    return 0;
}

int pvlm_shard_images_main(int argc, char **argv) {
    pvlm_shard_images_cfg c;
    pvlm_shard_images_defaults(&c);
    c.split = ""; /* all splits */
    const char *config = NULL;
    double timeout_s = (double)c.dl.timeout_ms / 1000; /* the flag is in seconds */
    int allow_private = !c.dl.block_private;
    const pvlm_opt opts[] = {
        {"config", PVLM_ARG_STR, &config, "JSON file of flag values (command line overrides)", NULL, 0, 0, 0},
        {"out", PVLM_ARG_STR, &c.out, "output folder for shards and manifest.json", NULL, 0, 0, 1},
        {"coco", PVLM_ARG_STR, &c.coco, "COCO-style caption JSON (COCO, NoCaps, Karpathy dataset_*.json)", NULL, 0, 0,
         0},
        {"images", PVLM_ARG_STR, &c.images, "image folder for --coco", NULL, 0, 0, 0},
        {"split", PVLM_ARG_STR, &c.split, "Karpathy files: keep only this split (train|val|test|restval)", NULL, 0, 0,
         0},
        {"pairs", PVLM_ARG_STR, &c.pairs, "folder of name.jpg|png + name.txt (one caption per line)", NULL, 0, 0, 0},
        {"urls", PVLM_ARG_STR, &c.urls, "URL list (TSV/CSV/JSONL, plain or .gz) with url + caption columns", NULL, 0, 0,
         0},
        {"url-format", PVLM_ARG_CHOICE, &c.url_format, "URL list format", "auto|tsv|csv|jsonl", 0, 0, 0},
        {"url-col", PVLM_ARG_STR, &c.url_col, "URL column: header name / JSON key or 0-based index", NULL, 0, 0, 0},
        {"caption-col", PVLM_ARG_STR, &c.caption_col, "caption column: header name / JSON key or 0-based index", NULL,
         0, 0, 0},
        {"retry-failed", PVLM_ARG_STR, &c.retry_failed,
         "failures.jsonl of an earlier --urls build: fetch only those rows", NULL, 0, 0, 0},
        {"retry-reasons", PVLM_ARG_STR, &c.retry_reasons,
         "with --retry-failed: \"\" = retryable reasons, \"all\", or a list \"timeout,http_5xx\"", NULL, 0, 0, 0},
        {"webdataset", PVLM_ARG_STR, &c.webdataset, "img2dataset/webdataset tars: 'dir/{00000..00123}.tar' or a glob",
         NULL, 0, 0, 0},
        {"concurrency", PVLM_ARG_INT, &c.dl.max_total, "concurrent downloads", NULL, 1, 10000, 0},
        {"per-host", PVLM_ARG_INT, &c.dl.max_per_host, "concurrent downloads per host", NULL, 1, 10000, 0},
        {"max-bytes", PVLM_ARG_I64, &c.dl.max_bytes, "largest image download in bytes", NULL, 1, 1e12, 0},
        {"timeout", PVLM_ARG_DOUBLE, &timeout_s, "whole-transfer timeout per URL in seconds", NULL, 0.1, 1e5, 0},
        {"retries", PVLM_ARG_INT, &c.dl.retries, "extra attempts after a retryable download failure", NULL, 0, 100, 0},
        {"allow-private-addresses", PVLM_ARG_FLAG, &allow_private,
         "also fetch from loopback, private and link-local addresses (refused by default: docs/downloader.md)", NULL, 0,
         0, 0},
        {"shards", PVLM_ARG_INT, &c.shards, "number of shards (0: from --records-per-shard)", NULL, 0, MAX_SHARDS, 0},
        {"records-per-shard", PVLM_ARG_I64, &c.records_per_shard, "items per shard when --shards is 0", NULL, 1, 1e12,
         0},
        {"image-size", PVLM_ARG_INT, &c.image_size, "stored images are S x S", NULL, 8, 4096, 0},
        {"resize-mode", PVLM_ARG_CHOICE, &c.resize_mode,
         "crop: shorter side to S + centre crop; border: longer side to S + pad", "crop|border", 0, 0, 0},
        {"jpeg-quality", PVLM_ARG_INT, &c.jpeg_quality, "JPEG quality of stored images", NULL, 1, 100, 0},
        {"store", PVLM_ARG_CHOICE, &c.store, "stored image encoding", "jpeg|raw", 0, 0, 0},
        {"threads", PVLM_ARG_INT, &c.threads, "decode threads (0: cores / local ranks)", NULL, 0, 1024, 0},
        {"seed", PVLM_ARG_I64, &c.seed, "seed of the item permutation", NULL, 0, 0, 0},
        {"shuffle", PVLM_ARG_INT, &c.shuffle, "1: permute items with --seed before sharding; 0: keep input order", NULL,
         0, 1, 0},
        {"keep-uncaptioned", PVLM_ARG_FLAG, &c.keep_uncaptioned, "store images without captions (hidden test sets)",
         NULL, 0, 0, 0},
        {"part", PVLM_ARG_INT, &c.part, "this process builds shards k with k % parts == part", NULL, 0, MAX_SHARDS, 0},
        {"parts", PVLM_ARG_INT, &c.parts, "number of processes sharing the build", NULL, 1, MAX_SHARDS, 0},
        {"merge", PVLM_ARG_FLAG, &c.merge, "only write manifest.json from the finished shards", NULL, 0, 0, 0},
        {"limit", PVLM_ARG_I64, &c.limit, "use only the first N listed items (0: all)", NULL, 0, 0, 0},
        {"txn-records", PVLM_ARG_I64, &c.txn_records, "LMDB records per write transaction", NULL, 1, 1e9, 0},
        {"progress", PVLM_ARG_DOUBLE, &c.progress_s, "seconds between progress lines on stderr (0: off)", NULL, 0, 1e6,
         0},
    };
    pvlm_cmd cmd = {"pvlm shard images",
                    "build LMDB image-text shards + manifest.json",
                    "",
                    opts,
                    (int)(sizeof opts / sizeof opts[0]),
                    0,
                    0};
    char *pos[1];
    int npos = 0;
    int a = pvlm_args_parse(&cmd, argc, argv, pos, &npos);
    if (a == PVLM_ARGS_HELP) return 0;
    if (a != PVLM_ARGS_OK) return 2;
    c.dl.timeout_ms = (long)(timeout_s * 1000);
    c.dl.block_private = !allow_private;
    if (check_cli(&c) != 0) return 2;
    return build_and_report(&c);
}
