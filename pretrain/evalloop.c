/* evalloop.c - held-out validation loss and zero-shot captioning during and after pretraining
 * (see evalloop.h for the fixed sample set, the exact reduction and why training is not disturbed). */
#include "pretrain/evalloop.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/args.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/timer.h"
#include "score/capscore.h"
#include "eval/gen.h"
#include "model/load.h"
#include "io/batch.h"
#include "io/imgshard.h"
#include "io/loader.h"
#include "io/manifest.h"

/* Per-sample CE sums are added as integers in units of 2^-28 nats: exact, order-free sums (a sample's
 * CE of up to ~3e10 nats fits an int64 with room for 2^30 samples of typical size). */
#define LOSS_UNIT 268435456.0 /* 2^28 */

void pvlm_evalloop_config_default(pvlm_evalloop_config *c) {
    memset(c, 0, sizeof *c);
    c->samples = 256;
    c->micro_batch = 32;
    c->prompt = "a picture of";
    c->max_len = 20;
}

/* ---------------------------------------------------------------------------------- validation loss */

/* A world-1 loader over one stream of the held-out set, its next batch at position `first`. */
static pvlm_loader *open_at(const pvlm_model *m, pvlm_tokenizer *tok, const pvlm_evalloop_config *cfg, int sid,
                            int64_t *total, int64_t first_of_w[2], const pvlm_comm *c, pvlm_err *err) {
    pvlm_loader_config lc;
    pvlm_loader_config_default(&lc);
    lc.image_manifest = sid == PVLM_EVAL_IMAGE ? cfg->images : NULL;
    lc.text_manifest = sid == PVLM_EVAL_TEXT ? cfg->text : NULL;
    lc.tokenizer = tok;
    lc.rank = 0;
    lc.world = 1;
    lc.B = cfg->micro_batch;
    lc.S = m->cfg.image_size;
    lc.Lp = m->cfg.max_prefix_len;
    lc.Ls = m->cfg.max_suffix_len;
    lc.text_ratio = sid == PVLM_EVAL_TEXT ? 1.0 : 0.0;
    lc.seed = cfg->seed;
    lc.mode = PVLM_LOADER_EPOCH;
    lc.threads = 0; /* synchronous: no threads left behind between evaluations */
    lc.pad_id = m->cfg.pad_id;
    lc.bos_id = m->cfg.bos_id;
    lc.eos_id = m->cfg.eos_id;
    pvlm_loader *L = pvlm_loader_open(&lc, err);
    if (!L) return NULL;
    int64_t N = pvlm_loader_total_samples(L, sid);
    int64_t M = cfg->samples < N ? cfg->samples : N;
    first_of_w[0] = M * c->rank / c->size;
    first_of_w[1] = M * (c->rank + 1) / c->size;
    *total = M;
    /* Move the stream's sample counter to this rank's first position (world 1: position = counter). */
    json_t *st = pvlm_loader_state_save(L);
    json_t *so = json_object_get(st, sid == PVLM_EVAL_IMAGE ? "image" : "text");
    int rc = so ? json_object_set_new(so, "t", json_integer(first_of_w[0])) : -1;
    if (rc == 0) rc = pvlm_loader_state_restore(L, st, err);
    else pvlm_err_set(err, PVLM_EFORMAT, "held-out loader: unexpected state layout");
    json_decref(st);
    if (rc) {
        pvlm_loader_close(L);
        return NULL;
    }
    return L;
}

/* This rank's share of one stream: fixed-point CE sum, target tokens, samples into acc[0..2]. */
static int stream_loss(const pvlm_comm *c, pvlm_model *m, pvlm_tokenizer *tok, const pvlm_evalloop_config *cfg,
                       int sid, int64_t acc[3], pvlm_err *err) {
    int64_t total = 0, range[2];
    pvlm_loader *L = open_at(m, tok, cfg, sid, &total, range, c, err);
    if (!L) return -1;
    pvlm_batch b;
    double *ce = malloc((size_t)cfg->micro_batch * sizeof *ce);
    int rc = ce ? pvlm_batch_alloc(&b, cfg->micro_batch, m->cfg.image_size, m->cfg.max_prefix_len,
                                   m->cfg.max_suffix_len, err)
                : pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
    int have_b = rc == 0;
    for (int64_t left = range[1] - range[0]; rc == 0 && left > 0; left -= cfg->micro_batch) {
        if (pvlm_loader_next(L, &b, err) || pvlm_model_forward(m, &b, 1.0, NULL, NULL, ce, err)) {
            rc = -1;
            break;
        }
        /* rows past this rank's range (the last batch) are computed but not counted */
        int rows = left < b.B ? (int)left : b.B;
        for (int i = 0; i < rows; i++) {
            int64_t n = 0;
            for (int j = 0; j < b.Ls; j++) n += b.targets[(size_t)i * b.Ls + j] != PVLM_IGNORE;
            acc[0] += (int64_t)llround(ce[i] * LOSS_UNIT);
            acc[1] += n;
            acc[2] += 1;
        }
    }
    if (have_b) pvlm_batch_free(&b);
    free(ce);
    pvlm_loader_close(L);
    if (rc) return pvlm_err_prefix(err, "held-out %s loss (%s)", sid == PVLM_EVAL_IMAGE ? "image-text" : "text",
                                   sid == PVLM_EVAL_IMAGE ? cfg->images : cfg->text);
    return 0;
}

int pvlm_evalloop_loss(const pvlm_comm *c, pvlm_model *m, pvlm_tokenizer *tok, const pvlm_evalloop_config *cfg,
                       pvlm_evalloop_result *r, pvlm_err *err) {
    double t0 = pvlm_now();
    const char *src[2] = {cfg->images, cfg->text};
    int64_t acc[6] = {0}; /* per stream: CE (fixed point), tokens, samples */
    int fail = 0, any = 0;
    pvlm_err e = {0};
    for (int sid = 0; sid < 2 && !fail; sid++)
        if (src[sid] && stream_loss(c, m, tok, cfg, sid, acc + 3 * sid, &e)) fail = 1;
    if (pvlm_comm_or(c, fail, &any, err)) return -1;
    if (any) {
        if (fail) *err = e;
        else pvlm_err_set(err, PVLM_EIO, "another rank failed to compute the held-out loss");
        return -1;
    }
    if (pvlm_comm_sum_i64(c, acc, 6, err)) return -1; /* the one exact reduction */
    for (int sid = 0; sid < 2; sid++) {
        const int64_t *a = acc + 3 * sid;
        r->loss[sid] = src[sid] && a[1] > 0 ? (double)a[0] / LOSS_UNIT / (double)a[1] : NAN;
        r->ntok[sid] = a[1];
        r->nsamples[sid] = a[2];
    }
    r->seconds += pvlm_now() - t0;
    return 0;
}

/* ---------------------------------------------------------------------------------- captioning */

typedef struct capjob {
    pvlm_gen_item *items;
    size_t n;
    json_t *images, *anns; /* reference file pieces (rank 0) */
} capjob;

/* Items for the records of one shard that have captions, up to *left of them; references on rank 0. */
static int shard_items(pvlm_imgshard_reader *sh, const char *prompt, int64_t *next_id, int *left, capjob *j,
                       int rank, pvlm_err *err) {
    int64_t cnt = pvlm_imgshard_count(sh);
    pvlm_imgrec rec;
    memset(&rec, 0, sizeof rec);
    j->n = 0;
    j->items = calloc((size_t)(cnt < *left ? cnt : *left) + 1, sizeof *j->items);
    if (!j->items) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory");
    for (int64_t i = 0; i < cnt && *left > 0; i++) {
        pvlm_err e2;
        if (pvlm_imgshard_get(sh, i, &rec, &e2)) {
            pvlm_warn("held-out captions: skipping %s", e2.msg); /* counted by its absence from n_captioned */
            continue;
        }
        if (rec.ncaptions < 1) continue;
        int64_t id = (*next_id)++;
        j->items[j->n++] = (pvlm_gen_item){.id = id, .image_path = NULL, .shard_index = i, .prefix = prompt};
        (*left)--;
        if (rank != 0) continue;
        json_array_append_new(j->images, json_pack("{s:I}", "id", (json_int_t)id));
        for (int k = 0; k < rec.ncaptions; k++)
            json_array_append_new(j->anns, json_pack("{s:I, s:s}", "image_id", (json_int_t)id, "caption",
                                                     rec.captions[k]));
    }
    pvlm_imgrec_free(&rec);
    return 0;
}

/* Rank 0: CIDEr-D and BLEU-4 of results against the references built by shard_items. */
static int score(json_t *images, json_t *anns, json_t *results, pvlm_evalloop_result *r, pvlm_err *err) {
    json_t *refj = json_pack("{s:O, s:O}", "images", images, "annotations", anns);
    pvlm_caprefs refs;
    pvlm_capres res;
    pvlm_capscore sc;
    memset(&refs, 0, sizeof refs);
    memset(&res, 0, sizeof res);
    memset(&sc, 0, sizeof sc);
    int rc = pvlm_caprefs_from_json(&refs, refj, "held-out references", err);
    if (rc == 0) rc = pvlm_capres_from_json(&res, results, "held-out captions", err);
    if (rc == 0) rc = pvlm_capscore_run(&sc, &refs, &res, NULL, err);
    if (rc == 0) {
        r->cider = sc.split[0].score[PVLM_CAP_CIDER];
        r->bleu4 = sc.split[0].score[PVLM_CAP_BLEU4];
        pvlm_capscore_free(&sc);
    }
    pvlm_capres_free(&res);
    pvlm_caprefs_free(&refs);
    json_decref(refj);
    return rc;
}

/* Caption one shard's items on every rank; rank 0 appends the results. */
static int caption_shard(const pvlm_comm *c, pvlm_model *m, pvlm_tokenizer *tok, const pvlm_evalloop_config *cfg,
                         pvlm_imgshard_reader *sh, const capjob *j, json_t *results, pvlm_err *err) {
    pvlm_gen_config gc;
    pvlm_gen_config_default(&gc, &m->cfg);
    gc.dec.max_len = cfg->max_len < m->cfg.max_suffix_len ? cfg->max_len : m->cfg.max_suffix_len;
    gc.dec.no_repeat_ngram = 3; /* `pvlm caption`'s default */
    gc.batch_size = cfg->micro_batch;
    gc.progress_every = 0;
    char **texts = NULL;
    if (pvlm_gen_run(c, m, tok, sh, j->items, j->n, &gc, &texts, NULL, err)) return -1;
    if (c->rank == 0)
        for (size_t i = 0; i < j->n; i++)
            json_array_append_new(results,
                                  json_pack("{s:I, s:s}", "image_id", (json_int_t)j->items[i].id, "caption", texts[i]));
    pvlm_gen_texts_free(texts, j->n);
    return 0;
}

static int caption_all(const pvlm_comm *c, pvlm_model *m, pvlm_tokenizer *tok, const pvlm_evalloop_config *cfg,
                       capjob *j, json_t *results, pvlm_err *err) {
    pvlm_manifest man;
    int rc = pvlm_manifest_load(cfg->images, &man, err);
    char dir[4096];
    pvlm_dirname(cfg->images, dir, sizeof dir);
    int left = cfg->captions;
    int64_t next_id = 0;
    for (int s = 0; rc == 0 && s < man.nshards && left > 0; s++) {
        char path[8192];
        if (pvlm_manifest_shard_path(&man, s, dir, path, sizeof path)) {
            rc = pvlm_err_set(err, PVLM_EINVAL, "%s: the path of shard %d does not fit in %zu bytes", cfg->images, s,
                              sizeof path);
            break;
        }
        pvlm_imgshard_reader *sh = pvlm_imgshard_open(path, 0, err);
        if (!sh) {
            rc = -1;
            break;
        }
        rc = shard_items(sh, cfg->prompt, &next_id, &left, j, c->rank, err);
        if (rc == 0 && j->n > 0) rc = caption_shard(c, m, tok, cfg, sh, j, results, err);
        pvlm_imgshard_close(sh);
        free(j->items);
        j->items = NULL;
    }
    pvlm_manifest_free(&man);
    return rc;
}

int pvlm_evalloop_captions(const pvlm_comm *c, pvlm_model *m, pvlm_tokenizer *tok, const pvlm_evalloop_config *cfg,
                           pvlm_evalloop_result *r, pvlm_err *err) {
    if (cfg->captions <= 0 || !cfg->images) return 0;
    double t0 = pvlm_now();
    capjob j = {.images = json_array(), .anns = json_array()};
    json_t *results = json_array();
    /* Every rank reads the same records (same items everywhere); a failure is agreed on before gen. */
    pvlm_err e = {0};
    int fail = caption_all(c, m, tok, cfg, &j, results, &e) != 0, any = 0;
    double v[3] = {0, 0, 0};
    if (!fail && c->rank == 0) {
        v[2] = (double)json_array_size(results);
        if (v[2] > 0 && score(j.images, j.anns, results, r, &e)) fail = 1;
        v[0] = r->cider, v[1] = r->bleu4;
    }
    json_decref(j.images);
    json_decref(j.anns);
    json_decref(results);
    if (pvlm_comm_or(c, fail, &any, err)) return -1;
    if (any) {
        if (fail) *err = e;
        else pvlm_err_set(err, PVLM_EIO, "another rank failed while captioning held-out images");
        return pvlm_err_prefix(err, "held-out captions (%s)", cfg->images);
    }
    if (c->rank != 0) v[0] = v[1] = v[2] = 0;
    if (pvlm_comm_sum_f64(c, v, 3, err)) return -1; /* rank 0's scores to everyone */
    r->captioned = v[2] > 0;
    r->n_captioned = (int64_t)v[2];
    r->cider = r->captioned ? v[0] : NAN;
    r->bleu4 = r->captioned ? v[1] : NAN;
    r->seconds += pvlm_now() - t0;
    return 0;
}

/* ---------------------------------------------------------------------------------- reporting */

json_t *pvlm_evalloop_result_json(const pvlm_evalloop_result *r) {
    json_t *o = json_object();
    static const char *const names[2] = {"image", "text"};
    for (int sid = 0; sid < 2; sid++) {
        if (!isfinite(r->loss[sid])) continue;
        char k[48];
        snprintf(k, sizeof k, "val_loss_%s", names[sid]);
        json_object_set_new(o, k, json_real(r->loss[sid]));
        snprintf(k, sizeof k, "val_tokens_%s", names[sid]);
        json_object_set_new(o, k, json_integer(r->ntok[sid]));
        snprintf(k, sizeof k, "val_samples_%s", names[sid]);
        json_object_set_new(o, k, json_integer(r->nsamples[sid]));
    }
    if (r->captioned) {
        json_object_set_new(o, "cider", json_real(r->cider));
        json_object_set_new(o, "bleu4", json_real(r->bleu4));
        json_object_set_new(o, "n_captioned", json_integer(r->n_captioned));
    }
    json_object_set_new(o, "eval_s", json_real(r->seconds));
    return o;
}

double pvlm_evalloop_metric(const pvlm_evalloop_result *r, const char *name) {
    json_t *o = pvlm_evalloop_result_json(r);
    json_t *v = json_object_get(o, name);
    double x = json_is_number(v) ? json_number_value(v) : NAN;
    json_decref(o);
    return x;
}

int pvlm_evalloop_parse_metric(const char *spec, char *name, size_t cap, int *maximize, pvlm_err *err) {
    static const char *const known[4] = {"val_loss_image", "val_loss_text", "cider", "bleu4"};
    const char *colon = strchr(spec, ':');
    size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
    int k = 0;
    while (k < 4 && !(strlen(known[k]) == n && !strncmp(spec, known[k], n))) k++;
    if (k == 4 || n >= cap)
        return pvlm_err_set(err, PVLM_EINVAL, "--best-metric '%s': the metric must be one of val_loss_image, "
                            "val_loss_text, cider, bleu4 (optionally followed by :min or :max)", spec);
    memcpy(name, spec, n);
    name[n] = '\0';
    *maximize = k >= 2;
    if (colon && strcmp(colon + 1, "min") && strcmp(colon + 1, "max"))
        return pvlm_err_set(err, PVLM_EINVAL, "--best-metric '%s': the mode after ':' must be min or max", spec);
    if (colon) *maximize = !strcmp(colon + 1, "max");
    return 0;
}

/* ---------------------------------------------------------------------------------- during pretraining */

void pvlm_evalloop_sched_init(pvlm_evalloop_sched *s, int64_t every, int64_t caption_every) {
    memset(s, 0, sizeof *s);
    s->every = every;
    s->caption_every = caption_every;
    s->last_step = -1;
}

int pvlm_evalloop_due(const pvlm_evalloop_sched *s, int64_t step, int64_t total) {
    return s->every > 0 && step > s->last_step && (step % s->every == 0 || step == total);
}

static void log_result(const pvlm_evalloop_result *r, int64_t step, double share,
                       double total_share) {
    char img[96] = "-", txt[96] = "-", cap[96] = "";
    if (isfinite(r->loss[0]))
        snprintf(img, sizeof img, "%.4f (%lld samples)", r->loss[0], (long long)r->nsamples[0]);
    if (isfinite(r->loss[1]))
        snprintf(txt, sizeof txt, "%.4f (%lld samples)", r->loss[1], (long long)r->nsamples[1]);
    if (r->captioned)
        snprintf(cap, sizeof cap, " | CIDEr-D %.4f BLEU-4 %.4f (%lld images)", r->cider, r->bleu4,
                 (long long)r->n_captioned);
    pvlm_info("eval step %lld | val loss img %s, txt %s%s | %.2f s = %.1f%% of the step time since the previous "
              "evaluation (%.1f%% of all step time)",
              (long long)step, img, txt, cap, r->seconds, 100.0 * share, 100.0 * total_share);
}

int pvlm_evalloop_run(pvlm_evalloop_sched *s, const pvlm_evalloop_config *cfg, const pvlm_comm *c, pvlm_model *m,
                      pvlm_tokenizer *tok, int64_t step, FILE *metrics, pvlm_err *err) {
    pvlm_evalloop_result r = {.loss = {NAN, NAN}, .cider = NAN, .bleu4 = NAN};
    if (pvlm_evalloop_loss(c, m, tok, cfg, &r, err)) return pvlm_err_prefix(err, "evaluation at step %lld", (long long)step);
    int cap = cfg->captions > 0 && (s->caption_every <= 0 || step % s->caption_every == 0);
    if (cap && pvlm_evalloop_captions(c, m, tok, cfg, &r, err))
        return pvlm_err_prefix(err, "evaluation at step %lld", (long long)step);
    s->train_total_s += s->train_s;
    s->eval_total_s += r.seconds;
    /* cost as a share of training: evaluation seconds / step seconds over the same interval */
    double share = s->train_s > 0 ? r.seconds / s->train_s : NAN;
    double total_share = s->train_total_s > 0 ? s->eval_total_s / s->train_total_s : NAN;
    if (c->rank == 0) {
        log_result(&r, step, share, total_share);
        if (metrics) {
            json_t *o = pvlm_evalloop_result_json(&r);
            json_object_set_new(o, "kind", json_string("eval"));
            json_object_set_new(o, "step", json_integer(step));
            json_object_set_new(o, "train_s", json_real(s->train_s));
            if (isfinite(share)) json_object_set_new(o, "eval_share", json_real(share));
            char *txt = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(17));
            if (txt) fprintf(metrics, "%s\n", txt);
            fflush(metrics);
            free(txt);
            json_decref(o);
        }
    }
    s->train_s = 0;
    s->last_step = step;
    s->last = r;
    return 0;
}

void pvlm_evalloop_brief(const pvlm_evalloop_sched *s, char *buf, size_t cap) {
    buf[0] = '\0';
    if (s->last_step < 0) return;
    const pvlm_evalloop_result *r = &s->last;
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "val@%lld", (long long)s->last_step);
    if (n < cap && isfinite(r->loss[0])) n += (size_t)snprintf(buf + n, cap - n, " img %.3f", r->loss[0]);
    if (n < cap && isfinite(r->loss[1])) n += (size_t)snprintf(buf + n, cap - n, " txt %.3f", r->loss[1]);
    if (n < cap && r->captioned) snprintf(buf + n, cap - n, " CIDEr-D %.3f", r->cider);
}

/* ---------------------------------------------------------------------------------- pvlm eval-loss */

int pvlm_cmd_eval_loss(int argc, char **argv) {
    const char *ckpt = NULL, *tokdir = NULL;
    int64_t seed = 0;
    int threads = 0;
    pvlm_evalloop_config cfg;
    pvlm_evalloop_config_default(&cfg);
    const pvlm_opt opts[] = {
        {"ckpt", PVLM_ARG_STR, &ckpt, "model .safetensors, checkpoint step dir, or run dir (newest valid step)", NULL, 0, 0, 1},
        {"tokenizer", PVLM_ARG_STR, &tokdir, "tokenizer folder (default: the one stored in the checkpoint)", NULL, 0, 0, 0},
        {"images", PVLM_ARG_STR, &cfg.images, "held-out image-text manifest.json", NULL, 0, 0, 0},
        {"text", PVLM_ARG_STR, &cfg.text, "held-out text manifest.json", NULL, 0, 0, 0},
        {"samples", PVLM_ARG_I64, &cfg.samples, "samples per stream (the first N of the seeded order)", NULL, 1, 1e15, 0},
        {"seed", PVLM_ARG_I64, &seed, "seed of the sample order and PrefixLM splits (pretrain's --val-seed)", NULL, 0, 0, 0},
        {"micro-batch", PVLM_ARG_INT, &cfg.micro_batch, "samples per forward pass", NULL, 1, 1 << 20, 0},
        {"captions", PVLM_ARG_INT, &cfg.captions, "also caption and score the first K held-out images", NULL, 0, 1 << 30, 0},
        {"threads", PVLM_ARG_INT, &threads, "threads per rank (0 = cores / local ranks)", NULL, 0, 4096, 0},
    };
    pvlm_cmd cmd = {"pvlm eval-loss",
                    "Held-out validation loss per stream (and optionally CIDEr-D/BLEU-4 of zero-shot captions) of a "
                    "checkpoint, over the same fixed sample set `pvlm pretrain --eval-every` uses; prints one JSON "
                    "line.",
                    "", opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    int prc = pvlm_args_parse(&cmd, argc, argv, NULL, NULL);
    if (prc) return prc == PVLM_ARGS_HELP ? 0 : 2;
    if (!cfg.images && !cfg.text) {
        fprintf(stderr, "pvlm eval-loss: give --images and/or --text\n");
        return 2;
    }
    cfg.seed = (uint64_t)seed;
    pvlm_err err;
    pvlm_comm comm;
    if (pvlm_comm_start(&comm, &argc, &argv, threads, &err)) {
        fprintf(stderr, "pvlm eval-loss: %s\n", err.msg);
        return 1;
    }
    pvlm_model m;
    memset(&m, 0, sizeof m);
    pvlm_tokenizer *tok = NULL;
    pvlm_evalloop_result r = {.loss = {NAN, NAN}, .cider = NAN, .bleu4 = NAN};
    int rc = pvlm_load_model(ckpt, tokdir, &m, &tok, &err);
    if (rc == 0) rc = pvlm_evalloop_loss(&comm, &m, tok, &cfg, &r, &err);
    if (rc == 0) rc = pvlm_evalloop_captions(&comm, &m, tok, &cfg, &r, &err);
    if (rc == 0 && comm.rank == 0) {
        json_t *o = pvlm_evalloop_result_json(&r);
        char *s = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(17));
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(o);
    }
    if (rc) fprintf(stderr, "pvlm eval-loss: %s\n", err.msg);
    if (tok) pvlm_tokenizer_free(tok);
    pvlm_model_free(&m);
    pvlm_comm_finalize(&comm);
    return rc ? 1 : 0;
}
