/* cmd_pretrain.c - `pvlm pretrain`: data-parallel SimVLM PrefixLM pretraining over MPI with exact
 * checkpoint/resume and preemption handling. docs/pretrain.md describes every flag, the
 * progress line, the metrics file, the checkpoint layout and the exit codes:
 *   0 finished, 1 error, 2 usage, 3 stopped after a complete checkpoint (requeue me),
 *   4 watchdog: a step took far longer than usual (MPI_Abort ends every rank).
 *
 * Flow: signal handlers, MPI, flags (--config JSON then the command line), the resolved settings
 * printed by rank 0, resume decision by rank 0 (broadcast), model (fresh or from the checkpoint),
 * loader (state restored), mpi/dp steps with rank 0's progress line and JSONL metrics, checkpoints
 * every --ckpt-every steps, on a stop signal and at the end.
 */
#include <cblas.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/args.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/threads.h"
#include "core/timer.h"
#include "io/batch.h"
#include "io/ckptdir.h"
#include "io/loader.h"
#include "io/tokenizer.h"
#include "io/trainstate.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "model/optim.h"
#include "mpi/comm.h"
#include "mpi/dp.h"
#include "mpi/watchdog.h"
#include "pretrain/evalloop.h"

int pvlm_cmd_pretrain(int argc, char **argv);

enum { EXIT_DONE = 0, EXIT_ERROR = 1, EXIT_USAGE = 2, EXIT_STOPPED = 3, EXIT_WATCHDOG = 4 };
enum { MAX_FLAGS = 80 };

typedef struct settings {
    const char *config;
    /* data */
    const char *images, *text, *tokenizer;
    double text_ratio;
    int64_t data_seed;
    int loader_threads, resample;
    /* model: the flags write into the library's config (vocabulary and special ids come from the
     * tokenizer); stem is copied into it once parsed (a choice flag points at a string) */
    const char *model_config;
    pvlm_model_config mc;
    const char *stem, *precision, *recompute;
    int64_t init_seed;
    /* optimisation: the flags write into the library's config; schedule is copied like stem */
    int micro_batch, accum;
    pvlm_optim_config oc;
    const char *schedule;
    /* data parallel */
    int zero1, no_overlap, overlap, max_nonfinite, progress_thread;
    double bucket_mb;
    /* checkpoints */
    const char *ckpt_dir, *resume;
    int allow_fresh_start;
    int64_t ckpt_every, keep_every, stop_at_step, hang_at_step;
    int keep_last;
    /* logging, threads, watchdog */
    int log_every, threads;
    const char *metrics, *log_samples;
    double peak_gflops, watchdog_factor, watchdog_min, watchdog_first, ckpt_timeout;
    /* held-out evaluation (pretrain/evalloop.h) */
    const char *val_images, *val_text, *best_metric;
    int64_t eval_every, eval_caption_every, val_samples, val_seed;
    int eval_captions;
} settings;

static void settings_default(settings *s) {
    memset(s, 0, sizeof *s);
    pvlm_model_config_default(&s->mc);
    pvlm_optim_config_default(&s->oc);
    s->text_ratio = 0.5;
    s->loader_threads = 2;
    s->stem = "patch";
    s->precision = "fp32";
    s->recompute = "none";
    s->init_seed = 1234;
    s->micro_batch = 32;
    s->accum = 1;
    s->schedule = "cosine";
    s->max_nonfinite = 10;
    s->bucket_mb = 4;
    s->resume = "auto";
    s->ckpt_every = 1000;
    s->keep_last = 3;
    s->stop_at_step = -1;
    s->hang_at_step = -1;
    s->log_every = 10;
    s->watchdog_factor = 20;
    s->watchdog_min = 120;
    s->watchdog_first = 1800;
    s->ckpt_timeout = 1800;
    s->val_samples = 256;
}

/* ---------------------------------------------------------------------------------------------- */

typedef struct trainer {
    settings S;
    pvlm_opt opts[MAX_FLAGS]; /* the flag table bound to S (bind_flags) */
    pvlm_cmd cmd;
    pvlm_comm comm;
    pvlm_tokenizer *tok;
    pvlm_model model;
    int model_ok;
    pvlm_optim_config ocfg;
    pvlm_dp dp;
    int dp_ok;
    pvlm_loader *loader;
    pvlm_batch *micro;
    pvlm_batch **micro_ptr;
    int64_t samples_seen, tokens_seen;
    json_t *config_json; /* every resolved flag */
    pvlm_watchdog wd;
    FILE *metrics;
    FILE *samples_log; /* --log-samples: this rank's file */
    double peak_flops; /* per rank, FLOP/s */
    int64_t last_ckpt_step;
    int resuming; /* 1: resume_dir / resume hold the checkpoint to start from */
    char resume_dir[PATH_MAX];
    pvlm_trainstate resume; /* owned, freed at exit */
    pvlm_evalloop_config ecfg;
    pvlm_evalloop_sched esched;
    char best_name[32]; /* --best-metric, parsed ("" = none) */
    int best_max;
} trainer;

static void on_watchdog(void *ctx, double waited, double limit, const char *phase) {
    trainer *t = ctx;
    pvlm_error("watchdog: no progress for %.1f s (limit %.1f s) in phase '%s' (a hung rank, a stuck file system "
               "or a dead peer); aborting the job with exit code %d",
               waited, limit, phase, EXIT_WATCHDOG);
    pvlm_comm_abort(&t->comm, EXIT_WATCHDOG);
}

/* Peak FLOP/s of this rank for MFU: measured SGEMM (512^3, best of 5) with the rank's threads. Measured at
 * start and again at every progress line, keeping the highest: a measurement taken while the machine is
 * busy is low, and MFU against it would swing with the load (docs/pretrain.md). */
static double measure_peak(void) {
    const int n = 512;
    float *a = pvlm_alloc((size_t)n * n * sizeof(float), NULL), *b = pvlm_alloc((size_t)n * n * sizeof(float), NULL),
          *c = pvlm_alloc((size_t)n * n * sizeof(float), NULL);
    if (!a || !b || !c) {
        pvlm_free(a);
        pvlm_free(b);
        pvlm_free(c);
        return 0;
    }
    for (int i = 0; i < n * n; i++) a[i] = b[i] = (float)(i % 7) * 0.1f;
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        double t0 = pvlm_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double dt = pvlm_now() - t0;
        if (dt < best) best = dt;
    }
    pvlm_free(a);
    pvlm_free(b);
    pvlm_free(c);
    return 2.0 * n * n * (double)n / best;
}

static int build_model_config(const trainer *t, pvlm_model_config *mc, pvlm_err *err) {
    const settings *s = &t->S;
    *mc = s->mc;
    snprintf(mc->stem, sizeof mc->stem, "%s", s->stem);
    if (s->model_config) {
        pvlm_model_config_default(mc);
        json_t *j = pvlm_json_load_file(s->model_config, err);
        if (!j) return -1;
        int rc = pvlm_model_config_from_json(mc, j, err);
        json_decref(j);
        if (rc) return pvlm_err_prefix(err, "--model-config %s", s->model_config);
    }
    /* the vocabulary and special ids always come from the tokenizer */
    mc->vocab_size = pvlm_tokenizer_vocab_size(t->tok);
    mc->pad_id = pvlm_tokenizer_pad_id(t->tok);
    mc->bos_id = pvlm_tokenizer_bos_id(t->tok);
    mc->eos_id = pvlm_tokenizer_eos_id(t->tok);
    return pvlm_model_config_validate(mc, err);
}

/* ---------------------------------------------------------------------------------------------- */
/* resume decision (rank 0) and broadcast                                                            */

/* --resume auto: the newest checkpoint under --ckpt-dir that verifies and whose training state is valid
 * (io/trainstate.h). When checkpoints exist but none qualifies, starting from scratch would throw the
 * run's progress away without a word, so it needs --allow-fresh-start; the error lists what failed. */
static int resume_auto(const trainer *t, json_t **dec, pvlm_err *err) {
    const char *dir = t->S.ckpt_dir;
    pvlm_ckptdir_resume res;
    if (pvlm_trainstate_find_resume(dir, &res, err)) return -1;
    char why[640] = "";
    for (int i = 0; i < res.n_skipped; i++) {
        pvlm_warn("resume: skipping checkpoint step %lld: %s", (long long)res.skipped[i].step, res.skipped[i].reason);
        size_t n = strlen(why);
        snprintf(why + n, sizeof why - n, "%sstep %lld: %.200s", i ? "; " : "", (long long)res.skipped[i].step,
                 res.skipped[i].reason);
    }
    int rc = 0;
    if (res.found) {
        pvlm_info("resume: from %s (step %lld)", res.path, (long long)res.step);
        *dec = json_pack("{s:s, s:O}", "path", res.path, "state", res.state);
        if (!*dec) rc = pvlm_err_set(err, PVLM_ENOMEM, "resume: out of memory");
    } else if (res.n_skipped && !t->S.allow_fresh_start) {
        rc = pvlm_err_set(err, PVLM_EFORMAT,
                          "--resume auto: %d checkpoint(s) under %s and none verifies (%s); repair or remove them, "
                          "name one with --resume PATH, or pass --allow-fresh-start to train from scratch",
                          res.n_skipped, dir, why);
    } else {
        if (res.n_skipped)
            pvlm_warn("resume: none of the %d checkpoints under %s verifies; starting fresh (--allow-fresh-start)",
                      res.n_skipped, dir);
        else
            pvlm_info("resume: no checkpoint under %s, starting fresh", dir);
        *dec = json_null();
    }
    pvlm_ckptdir_resume_free(&res);
    return rc;
}

/* Rank 0's decision: JSON {"path": dir, "state": {...}} or JSON null (fresh start). */
static int resume_decision(const trainer *t, json_t **dec, pvlm_err *err) {
    const char *r = t->S.resume;
    *dec = NULL;
    if (!strcmp(r, "none") || (!strcmp(r, "auto") && !t->S.ckpt_dir)) {
        *dec = json_null();
        return 0;
    }
    if (!strcmp(r, "auto")) return resume_auto(t, dec, err);
    pvlm_trainstate ts;
    json_t *st = NULL;
    if (pvlm_trainstate_load(r, &ts, &st, err)) return pvlm_err_prefix(err, "--resume %s", r);
    pvlm_trainstate_free(&ts);
    pvlm_info("resume: from %s", r);
    *dec = json_pack("{s:s, s:o}", "path", r, "state", st);
    return *dec ? 0 : pvlm_err_set(err, PVLM_ENOMEM, "resume: out of memory");
}

/* The decision of rank 0 on every rank. */
static int decide_resume(trainer *t, json_t **out, pvlm_err *err) {
    json_t *dec = NULL;
    pvlm_err e0 = {0};
    int fail = t->comm.rank == 0 && resume_decision(t, &dec, &e0) != 0;
    int any = 0;
    if (pvlm_comm_or(&t->comm, fail, &any, err)) return -1;
    if (any) {
        if (t->comm.rank == 0) *err = e0;
        else pvlm_err_set(err, PVLM_EINVAL, "rank 0 could not decide where to resume from");
        json_decref(dec);
        return -1;
    }
    if (pvlm_comm_bcast_json(&t->comm, &dec, 0, err)) return -1;
    *out = dec;
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* checkpoints                                                                                       */

/* Copy the vocabulary into the checkpoint as tokenizer-encoder.json + tokenizer-vocab.bpe (flat files,
 * so ckptdir checksums them): a checkpoint then decodes its own outputs wherever it is moved
 * (model/load.h looks for them first). */
static int copy_tokenizer(const char *tokdir, const char *dst_dir, pvlm_err *err) {
    static const char *const src[2][2] = {{"encoder.json", "vocab.json"}, {"vocab.bpe", "merges.txt"}};
    static const char *const dst[2] = {"tokenizer-encoder.json", "tokenizer-vocab.bpe"};
    for (int k = 0; k < 2; k++) {
        char in[PATH_MAX], out[PATH_MAX], *buf = NULL;
        size_t n = 0;
        if (pvlm_path_join(in, sizeof in, tokdir, src[k][0], err)) return -1;
        if (!pvlm_file_exists(in) && pvlm_path_join(in, sizeof in, tokdir, src[k][1], err)) return -1;
        if (pvlm_path_join(out, sizeof out, dst_dir, dst[k], err) || pvlm_read_file(in, &buf, &n, err)) return -1;
        int rc = pvlm_write_file_atomic(out, buf, n, err);
        free(buf);
        if (rc) return -1;
    }
    return 0;
}

/* Rank 0 after a commit: move the `best` pointer when this step was evaluated and beats the best so far.
 * A failure to write the pointer is a warning: the checkpoint itself is complete. */
static void offer_best(trainer *t, int64_t step) {
    if (!t->best_name[0] || t->esched.last_step != step) return;
    double v = pvlm_evalloop_metric(&t->esched.last, t->best_name);
    int is_best = 0;
    pvlm_err e;
    if (pvlm_ckptdir_offer_best(t->S.ckpt_dir, step, t->best_name, t->best_max, v, &is_best, &e))
        pvlm_warn("best checkpoint pointer not updated: %s", e.msg);
    else if (is_best)
        pvlm_info("best: step %lld (%s %.6g)", (long long)step, t->best_name, v);
}

/* The due held-out evaluation (collective); its own watchdog limit, and the next step's clock starts after. */
static int evaluate(trainer *t, pvlm_err *err) {
    pvlm_watchdog_expect(&t->wd, t->S.ckpt_timeout, "eval");
    int rc = pvlm_evalloop_run(&t->esched, &t->ecfg, &t->comm, &t->model, t->tok, t->dp.step, t->metrics, err);
    pvlm_watchdog_expect(&t->wd, 0, "train");
    return rc;
}

/* Rank 0: the model file and the tokenizer copy into the tmp dir. */
static int save_model_files(trainer *t, const char *tmp, int64_t step, pvlm_err *err) {
    char path[PATH_MAX], tokabs[PATH_MAX];
    if (pvlm_path_join(path, sizeof path, tmp, PVLM_TRAINSTATE_MODEL, err)) return -1;
    json_t *meta = json_pack("{s:I}", "step", (json_int_t)step);
    if (!meta) return pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", path);
    if (realpath(t->S.tokenizer, tokabs) && json_object_set_new(meta, "tokenizer", json_string(tokabs))) {
        json_decref(meta);
        return pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", path);
    }
    int rc = pvlm_model_save(&t->model, path, meta, err);
    json_decref(meta);
    return rc ? -1 : copy_tokenizer(t->S.tokenizer, tmp, err);
}

/* Rank 0: state.json through io/trainstate and the commit. optim_files and loaders are consumed. */
static int commit_state(trainer *t, int64_t step, const char *why, json_t *optim_files, json_t *loaders, double t0,
                        pvlm_err *err) {
    pvlm_trainstate ts = {.step = step, .samples_seen = t->samples_seen, .tokens_seen = t->tokens_seen,
                          .init_seed = t->S.init_seed, .data_seed = t->S.data_seed, .world_size = t->comm.size,
                          .config = t->config_json, .model_config = pvlm_model_config_to_json(&t->model.cfg),
                          .dp = pvlm_dp_state_to_json(&t->dp), .loader = loaders, .optim_files = optim_files};
    snprintf(ts.reason, sizeof ts.reason, "%s", why);
    json_t *state = pvlm_trainstate_to_json(&ts, err);
    json_decref(ts.model_config);
    json_decref(ts.dp);
    json_decref(loaders);
    json_decref(optim_files);
    if (!state) return -1;
    pvlm_ckptdir_retention keep = {.keep_last = t->S.keep_last, .keep_every = t->S.keep_every};
    char final[PATH_MAX];
    int rc = pvlm_ckptdir_commit(t->S.ckpt_dir, step, state, &keep, final, sizeof final, err);
    json_decref(state);
    if (!rc) {
        pvlm_info("checkpoint: %s (%s, %.2f s)", final, why, pvlm_now() - t0);
        offer_best(t, step);
    }
    return rc;
}

static int save_checkpoint(trainer *t, const char *why, pvlm_err *err) {
    const pvlm_comm *c = &t->comm;
    int64_t step = t->dp.step;
    char tmp[PATH_MAX] = "";
    pvlm_err e = {0};
    int fail = 0, any = 0;
    double t0 = pvlm_now();
    pvlm_watchdog_expect(&t->wd, t->S.ckpt_timeout, "checkpoint");
    if (c->rank == 0 && pvlm_ckptdir_begin(t->S.ckpt_dir, step, tmp, sizeof tmp, &e)) fail = 1;
    if (pvlm_comm_or(c, fail, &any, err)) return -1;
    if (any) goto failed;
    if (pvlm_ckptdir_tmp_path(t->S.ckpt_dir, step, tmp, sizeof tmp, &e)) fail = 1;
    if (!fail && c->rank == 0 && save_model_files(t, tmp, step, &e)) fail = 1;
    if (pvlm_comm_or(c, fail, &any, err)) return -1;
    if (any) goto failed;
    json_t *optim_files = NULL;
    if (pvlm_dp_save_optim(&t->dp, tmp, &optim_files, &e)) {
        fail = 1;
        goto failed;
    }
    json_t *ls = pvlm_loader_state_save(t->loader), *all_ls = NULL;
    int grc = pvlm_comm_gather_json(c, ls, &all_ls, 0, &e);
    json_decref(ls);
    if (grc) {
        json_decref(optim_files);
        fail = 1;
        goto failed;
    }
    if (c->rank == 0) {
        if (commit_state(t, step, why, optim_files, all_ls, t0, &e)) fail = 1;
    } else {
        json_decref(optim_files);
        json_decref(all_ls);
    }
    if (pvlm_comm_or(c, fail, &any, err)) return -1;
    if (any) goto failed;
    t->last_ckpt_step = step;
    pvlm_watchdog_expect(&t->wd, 0, "train");
    return 0;
failed:
    if (c->rank == 0) {
        pvlm_err e2;
        pvlm_ckptdir_abort(t->S.ckpt_dir, step, &e2);
    }
    if (fail) *err = e;
    else pvlm_err_set(err, PVLM_EIO, "another rank failed while writing checkpoint step %lld", (long long)step);
    pvlm_err_prefix(err, "checkpoint step %lld under %s", (long long)step, t->S.ckpt_dir);
    return -1;
}

/* Model and optimizer from the files the state names (each inside dir and checksummed). */
static int restore_files(trainer *t, const char *dir, const pvlm_trainstate *ts, pvlm_err *err) {
    char path[PATH_MAX];
    if (pvlm_trainstate_path(dir, PVLM_TRAINSTATE_MODEL, path, sizeof path, err) ||
        pvlm_model_load_params(&t->model, path, 0, NULL, err))
        return -1;
    char **paths;
    int n;
    if (pvlm_trainstate_optim_paths(ts, dir, &paths, &n, err)) return -1;
    int rc = pvlm_dp_load_optim(&t->dp, (const char *const *)paths, n, err);
    pvlm_trainstate_paths_free(paths, n);
    return rc;
}

/* The decision (rank 0's, broadcast) into t->resuming / resume_dir / resume; consumes dec. Every rank
 * parses the same JSON, so they agree on failure too. */
static int take_decision(trainer *t, json_t *dec, pvlm_err *err) {
    int rc = 0;
    if (json_is_object(dec)) {
        const char *dir = json_string_value(json_object_get(dec, "path"));
        char what[PATH_MAX];
        rc = !dir ? pvlm_err_set(err, PVLM_EINVAL, "resume: no checkpoint path")
             : pvlm_path_join(t->resume_dir, sizeof t->resume_dir, "", dir, err) ||
                     pvlm_path_join(what, sizeof what, dir, PVLM_CKPTDIR_STATE, err) ||
                     pvlm_trainstate_from_json(&t->resume, json_object_get(dec, "state"), what, err)
                 ? -1
                 : 0;
        t->resuming = rc == 0;
    }
    json_decref(dec);
    return rc;
}

/* Restore model, optimizer, counters and loader from the verified checkpoint t->resume_dir. */
static int restore_from(trainer *t, pvlm_err *err) {
    const pvlm_trainstate *ts = &t->resume;
    int rc = restore_files(t, t->resume_dir, ts, err);
    if (!rc) rc = pvlm_dp_state_from_json(&t->dp, ts->dp, err);
    if (rc) return -1;
    t->samples_seen = ts->samples_seen;
    t->tokens_seen = ts->tokens_seen;
    /* Same world size: each rank takes its own state. Otherwise the loader re-bases a state saved
     * under another world size (docs/pretrain.md, "Changing the number of ranks"). */
    int old_world = ts->world_size;
    int src = t->comm.size == old_world ? t->comm.rank : (t->comm.rank < old_world ? t->comm.rank : 0);
    if (pvlm_loader_state_restore(t->loader, json_array_get(ts->loader, (size_t)src), err)) return -1;
    t->last_ckpt_step = t->dp.step;
    if (t->comm.rank == 0 && t->comm.size != old_world)
        pvlm_warn("resume: checkpoint was written by %d ranks, now %d: optimizer state re-sliced, data order "
                  "re-derived (not bit-identical to an uninterrupted run)",
                  old_world, t->comm.size);
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */

static void fmt_eta(double s, char *buf, size_t cap) {
    if (!isfinite(s) || s < 0) {
        snprintf(buf, cap, "-");
        return;
    }
    long x = (long)s;
    snprintf(buf, cap, "%ldh%02ldm%02lds", x / 3600, (x / 60) % 60, x % 60);
}

/* --log-samples: one line per micro-batch of the step just done, "STEP RANK/WORLD id...", so a test
 * can check which samples every step consumed (docs/pretrain.md, "Changing the number of ranks"). */
static void log_samples(trainer *t) {
    for (int k = 0; k < t->S.accum; k++) {
        const pvlm_batch *b = &t->micro[k];
        fprintf(t->samples_log, "%lld %d/%d", (long long)t->dp.step, t->comm.rank, t->comm.size);
        for (int i = 0; i < b->B; i++) fprintf(t->samples_log, " %lld", (long long)b->sample_id[i]);
        fputc('\n', t->samples_log);
    }
    fflush(t->samples_log);
}

/* Sums over the steps since the last progress line, which prints their means. */
typedef struct window {
    double t0, data, comm, flops, loss, img, txt, gn;
    int64_t samples, tokens, ok, img_n, txt_n;
} window;

static void window_reset(window *w) {
    memset(w, 0, sizeof *w);
    w->t0 = pvlm_now();
}

static void window_add(window *w, const pvlm_dp_result *r, double tdata) {
    w->data += tdata;
    w->comm += r->t_comm;
    w->flops += r->flops;
    w->samples += r->nsamples;
    w->tokens += r->ntok;
    if (!r->skipped) {
        w->ok++;
        w->loss += r->loss;
        w->gn += r->grad_norm;
    }
    if (r->ntok_img) {
        w->img += r->loss_img * (double)r->ntok_img;
        w->img_n += r->ntok_img;
    }
    if (r->ntok_txt) {
        w->txt += r->loss_txt * (double)r->ntok_txt;
        w->txt_n += r->ntok_txt;
    }
}

/* Rank 0: one JSON line per step into --metrics (docs/pretrain.md lists the keys). */
static void write_metrics(trainer *t, const pvlm_dp_result *r, double tstep, double tdata) {
    fprintf(t->metrics,
            "{\"step\":%lld,\"loss\":%.17g,\"loss_img\":%.17g,\"loss_txt\":%.17g,\"ntok\":%lld,\"samples\":%lld,"
            "\"grad_norm\":%.17g,\"clip_scale\":%.17g,\"lr\":%.17g,\"skipped\":%d,\"step_s\":%.6f,\"data_s\":%.6f,"
            "\"compute_s\":%.6f,\"comm_s\":%.6f,\"optim_s\":%.6f,\"flops\":%.6g,\"bytes\":%llu,\"samples_seen\":%lld,"
            "\"time\":%.3f}\n",
            (long long)r->step, r->loss, isfinite(r->loss_img) ? r->loss_img : -1.0,
            isfinite(r->loss_txt) ? r->loss_txt : -1.0, (long long)r->ntok, (long long)r->nsamples, r->grad_norm,
            r->clip_scale, r->lr, r->skipped, tstep, tdata, r->t_compute, r->t_comm, r->t_optim, r->flops,
            (unsigned long long)r->bytes, (long long)t->samples_seen, pvlm_uptime());
    fflush(t->metrics);
}

/* Rank 0: the progress line over the window, then a fresh window (and a new peak measurement). */
static void print_progress(trainer *t, window *w, const pvlm_dp_result *r, double avg_step) {
    const settings *s = &t->S;
    double wt = pvlm_now() - w->t0;
    double mfu = t->peak_flops > 0 ? w->flops / (wt * t->peak_flops) : NAN;
    char eta[32];
    fmt_eta(avg_step * (double)(s->oc.total_steps - t->dp.step), eta, sizeof eta);
    double ok_steps = w->ok > 0 ? (double)w->ok : NAN;
    char limg[32] = "-", ltxt[32] = "-";
    if (w->img_n) snprintf(limg, sizeof limg, "%.4f", w->img / (double)w->img_n);
    if (w->txt_n) snprintf(ltxt, sizeof ltxt, "%.4f", w->txt / (double)w->txt_n);
    char val[96];
    pvlm_evalloop_brief(&t->esched, val, sizeof val);
    pvlm_info("step %lld/%lld | loss %.4f (img %s, txt %s) | lr %.3e | gnorm %.3f | %.1f samples/s | "
              "%.0f tok/s | MFU %.1f%% | data %.1f%% | comm %.1f%% | skipped %lld | ETA %s%s%s",
              (long long)t->dp.step, (long long)s->oc.total_steps, w->loss / ok_steps, limg, ltxt, r->lr,
              w->gn / ok_steps, (double)w->samples / wt, (double)w->tokens / wt, 100.0 * mfu, 100.0 * w->data / wt,
              100.0 * w->comm / wt, (long long)t->dp.n_skipped, eta, val[0] ? " | " : "", val);
    if (s->peak_gflops <= 0) t->peak_flops = fmax(t->peak_flops, measure_peak());
    window_reset(w);
}

/* Load the micro-batches and take one data-parallel step; seconds spent loading into *tdata, in the whole
 * step into *tstep. */
static int step_once(trainer *t, pvlm_dp_result *r, double *tdata, double *tstep, pvlm_err *err) {
    const settings *s = &t->S;
    const pvlm_comm *c = &t->comm;
    double t0 = pvlm_now();
    if (s->hang_at_step >= 0 && c->rank == c->size - 1 && t->dp.step + 1 == s->hang_at_step)
        for (;;) pause(); /* a hung rank for the watchdog tests: only MPI_Abort ends it */
    for (int k = 0; k < s->accum; k++)
        if (pvlm_loader_next(t->loader, &t->micro[k], err))
            return pvlm_err_prefix(err, "loader at step %lld", (long long)t->dp.step);
    *tdata = pvlm_now() - t0;
    int local_stop = pvlm_comm_stop_local() != 0;
    if (s->stop_at_step >= 0 && c->rank == 0 && t->dp.step + 1 >= s->stop_at_step) local_stop = 1;
    if (pvlm_dp_step(&t->dp, t->micro_ptr, s->accum, local_stop, r, err)) return -1;
    *tstep = pvlm_now() - t0;
    pvlm_watchdog_beat(&t->wd, "train");
    return 0;
}

/* A stop request (signal or --stop-at-step): checkpoint when there is a --ckpt-dir, and exit code 3. */
static int stop_now(trainer *t, int *exit_code, pvlm_err *err) {
    if (t->comm.rank == 0) pvlm_info("stop requested (signal): checkpointing at step %lld", (long long)t->dp.step);
    if (!t->S.ckpt_dir) pvlm_warn("stop requested but no --ckpt-dir: exiting without a checkpoint");
    else if (save_checkpoint(t, "stop signal", err)) return -1;
    *exit_code = EXIT_STOPPED;
    return 0;
}

static int train(trainer *t, int *exit_code, pvlm_err *err) {
    const settings *s = &t->S;
    const pvlm_comm *c = &t->comm;
    window w;
    window_reset(&w);
    double avg_step = 0;
    int64_t timed_steps = 0;
    while (t->dp.step < s->oc.total_steps) {
        pvlm_dp_result r;
        double tdata = 0, tstep = 0;
        if (step_once(t, &r, &tdata, &tstep, err)) return -1;
        t->samples_seen += r.nsamples;
        t->tokens_seen += r.ntok;
        if (t->samples_log) log_samples(t);
        if (timed_steps > 0 || t->dp.step > 1) {
            avg_step = (avg_step * (double)timed_steps + tstep) / (double)(timed_steps + 1);
            timed_steps++;
        }
        window_add(&w, &r, tdata);
        if (c->rank == 0 && t->metrics) write_metrics(t, &r, tstep, tdata);
        if (r.skipped && c->rank == 0)
            pvlm_warn("step %lld: non-finite loss %g / grad norm %g: update skipped (%lld in a row, %lld total)",
                      (long long)r.step, r.loss, r.grad_norm, (long long)t->dp.nonfinite_run,
                      (long long)t->dp.n_skipped);
        if (c->rank == 0 && (t->dp.step % s->log_every == 0 || t->dp.step == s->oc.total_steps || r.stop))
            print_progress(t, &w, &r, avg_step);
        t->esched.train_s += tstep;
        if (!r.stop && pvlm_evalloop_due(&t->esched, t->dp.step, s->oc.total_steps)) {
            if (evaluate(t, err)) return -1;
            w.t0 += t->esched.last.seconds; /* throughput and MFU count training time only */
        }
        if (r.stop) return stop_now(t, exit_code, err);
        if (s->ckpt_dir && s->ckpt_every > 0 && t->dp.step % s->ckpt_every == 0 && t->dp.step < s->oc.total_steps)
            if (save_checkpoint(t, "periodic", err)) return -1;
    }
    if (s->ckpt_dir && t->last_ckpt_step != t->dp.step)
        if (save_checkpoint(t, "final", err)) return -1;
    if (c->rank == 0) pvlm_info("done: %lld steps, %lld samples seen", (long long)t->dp.step, (long long)t->samples_seen);
    *exit_code = EXIT_DONE;
    return 0;
}

/* --eval-every and --best-metric (pretrain/evalloop.h) from the settings. */
static int setup_eval(trainer *t, pvlm_err *err) {
    const settings *s = &t->S;
    pvlm_evalloop_config_default(&t->ecfg);
    t->ecfg.images = s->val_images;
    t->ecfg.text = s->val_text;
    t->ecfg.samples = s->val_samples;
    t->ecfg.seed = (uint64_t)s->val_seed;
    t->ecfg.micro_batch = s->micro_batch;
    t->ecfg.captions = s->eval_captions;
    pvlm_evalloop_sched_init(&t->esched, s->eval_every, s->eval_caption_every);
    if (s->eval_every > 0 && !s->val_images && !s->val_text)
        return pvlm_err_set(err, PVLM_EINVAL, "--eval-every needs --val-images and/or --val-text");
    /* a wrong path is reported now, not after the first N steps */
    if (s->val_images && !pvlm_file_exists(s->val_images))
        return pvlm_err_set(err, PVLM_ENOTFOUND, "--val-images %s: no such file", s->val_images);
    if (s->val_text && !pvlm_file_exists(s->val_text))
        return pvlm_err_set(err, PVLM_ENOTFOUND, "--val-text %s: no such file", s->val_text);
    /* held-out data must not be the training data (and LMDB forbids opening one file twice per process) */
    char a[PATH_MAX], b[PATH_MAX];
    if ((s->val_images && s->images && realpath(s->val_images, a) && realpath(s->images, b) && !strcmp(a, b)) ||
        (s->val_text && s->text && realpath(s->val_text, a) && realpath(s->text, b) && !strcmp(a, b)))
        return pvlm_err_set(err, PVLM_EINVAL, "--val-images/--val-text name a training manifest: hold out other data");
    if (s->eval_captions > 0 && !s->val_images)
        return pvlm_err_set(err, PVLM_EINVAL, "--eval-captions needs --val-images (held-out images with captions)");
    if (!s->best_metric) return 0;
    if (pvlm_evalloop_parse_metric(s->best_metric, t->best_name, sizeof t->best_name, &t->best_max, err)) return -1;
    if (s->eval_every <= 0 || !s->ckpt_dir)
        return pvlm_err_set(err, PVLM_EINVAL, "--best-metric needs --eval-every and --ckpt-dir");
    int is_caption = !strcmp(t->best_name, "cider") || !strcmp(t->best_name, "bleu4");
    if ((is_caption && s->eval_captions <= 0) || (!strcmp(t->best_name, "val_loss_image") && !s->val_images) ||
        (!strcmp(t->best_name, "val_loss_text") && !s->val_text))
        return pvlm_err_set(err, PVLM_EINVAL, "--best-metric %s: the evaluation does not compute it (needs %s)",
                            t->best_name, is_caption ? "--eval-captions" : "the held-out manifest of that stream");
    return 0;
}

/* Every resolved setting into t->config_json (saved in each checkpoint); rank 0 prints them. */
static int log_settings(trainer *t, int nthreads, pvlm_err *err) {
    const settings *s = &t->S;
    const pvlm_comm *c = &t->comm;
    t->config_json = pvlm_args_to_json(&t->cmd);
    if (!t->config_json || json_object_set_new(t->config_json, "resolved_threads", json_integer(nthreads)) ||
        json_object_set_new(t->config_json, "world_size", json_integer(c->size)) ||
        json_object_set_new(t->config_json, "global_batch", json_integer((json_int_t)c->size * s->micro_batch * s->accum)))
        return pvlm_err_set(err, PVLM_ENOMEM, "out of memory for the settings");
    if (c->rank == 0) {
        char *txt = json_dumps(t->config_json, JSON_SORT_KEYS | JSON_INDENT(1) | JSON_REAL_PRECISION(17));
        pvlm_info("pvlm pretrain: %d ranks x micro-batch %d x accumulation %d = global batch %d; settings:\n%s", c->size,
                  s->micro_batch, s->accum, c->size * s->micro_batch * s->accum, txt ? txt : "?");
        free(txt);
    }
    return 0;
}

/* The model: its config from the checkpoint when resuming, else from the flags; fresh weights when not
 * resuming (restore_from loads them otherwise). */
static int create_model(trainer *t, pvlm_model_config *mc, pvlm_err *err) {
    const settings *s = &t->S;
    if (t->resuming) {
        pvlm_model_config_default(mc);
        if (pvlm_model_config_from_json(mc, t->resume.model_config, err))
            return pvlm_err_prefix(err, "resume %s/state.json model_config", t->resume_dir);
    } else if (build_model_config(t, mc, err)) {
        return -1;
    }
    if (mc->vocab_size != pvlm_tokenizer_vocab_size(t->tok))
        return pvlm_err_set(err, PVLM_EINVAL, "model vocabulary %d != tokenizer %s vocabulary %d", mc->vocab_size,
                            s->tokenizer, pvlm_tokenizer_vocab_size(t->tok));
    if (pvlm_model_create(&t->model, mc, err)) return -1;
    t->model_ok = 1;
    if (pvlm_model_set_precision_name(&t->model, s->precision, err) ||
        pvlm_model_set_recompute(&t->model, s->recompute, err))
        return -1;
    if (!t->resuming) pvlm_model_init_weights(&t->model, (uint64_t)s->init_seed);
    if (t->comm.rank == 0) pvlm_info("model: %zu parameters, %d views", t->model.n_params, t->model.n_views);
    return 0;
}

/* mpi/dp over the model with the data-parallel flags (collective). */
static int init_dp(trainer *t, pvlm_err *err) {
    const settings *s = &t->S;
    pvlm_dp_config dc;
    pvlm_dp_config_default(&dc);
    dc.zero1 = s->zero1;
    dc.bucket_elems = (size_t)(s->bucket_mb * 1024.0 * 1024.0 / 4.0);
    if (dc.bucket_elems < 1) dc.bucket_elems = 1;
    dc.overlap = s->no_overlap ? 0 : s->overlap ? 1 : -1; /* -1: mpi/dp.h decides from the node's cores */
    dc.max_nonfinite = s->max_nonfinite;
    dc.progress_thread = s->progress_thread;
    if (pvlm_dp_init(&t->dp, &t->comm, &t->model, &t->ocfg, &dc, NULL, err)) return -1;
    t->dp_ok = 1;
    if (t->comm.rank == 0) pvlm_info("data parallel: %s", t->dp.overlap_why);
    return 0;
}

/* This rank's loader over the training manifests and the --accum micro-batches it fills. */
static int open_loader(trainer *t, const pvlm_model_config *mc, pvlm_err *err) {
    const settings *s = &t->S;
    pvlm_loader_config lc;
    pvlm_loader_config_default(&lc);
    lc.image_manifest = s->images;
    lc.text_manifest = s->text;
    lc.tokenizer = t->tok; /* the loader's cached path, the one bench_loader measures */
    lc.rank = t->comm.rank;
    lc.world = t->comm.size;
    lc.B = s->micro_batch;
    lc.S = mc->image_size;
    lc.Lp = mc->max_prefix_len;
    lc.Ls = mc->max_suffix_len;
    lc.text_ratio = !s->images ? 1.0 : !s->text ? 0.0 : s->text_ratio;
    lc.seed = (uint64_t)s->data_seed;
    lc.mode = s->resample ? PVLM_LOADER_RESAMPLE : PVLM_LOADER_EPOCH;
    lc.threads = s->loader_threads;
    lc.pad_id = mc->pad_id;
    lc.bos_id = mc->bos_id;
    lc.eos_id = mc->eos_id;
    t->loader = pvlm_loader_open(&lc, err);
    if (!t->loader) return -1;
    t->micro = calloc((size_t)s->accum, sizeof *t->micro);
    t->micro_ptr = calloc((size_t)s->accum, sizeof *t->micro_ptr);
    if (!t->micro || !t->micro_ptr) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory for micro-batches");
    for (int k = 0; k < s->accum; k++) {
        if (pvlm_batch_alloc(&t->micro[k], s->micro_batch, mc->image_size, mc->max_prefix_len, mc->max_suffix_len, err))
            return -1;
        t->micro_ptr[k] = &t->micro[k];
    }
    return 0;
}

/* When resuming, every rank restores (and all must succeed, or nobody trains); else a fresh start. */
static int restore_or_start(trainer *t, pvlm_err *err) {
    const pvlm_comm *c = &t->comm;
    if (!t->resuming) {
        t->last_ckpt_step = -1;
        return 0;
    }
    int rc = restore_from(t, err);
    int any = 0;
    if (pvlm_comm_or(c, rc != 0, &any, err) == 0 && any && rc == 0)
        pvlm_err_set(err, PVLM_EFORMAT, "another rank failed to restore the checkpoint");
    if (rc || any) return -1;
    if (c->rank == 0) pvlm_info("resumed at step %lld (%lld samples seen)", (long long)t->dp.step, (long long)t->samples_seen);
    return 0;
}

static int run(trainer *t, int *exit_code, pvlm_err *err) {
    settings *s = &t->S;
    const pvlm_comm *c = &t->comm;
    if (log_settings(t, pvlm_threads_set(pvlm_comm_threads(c, s->threads, err)), err)) return -1;
    if (!s->images && !s->text) return pvlm_err_set(err, PVLM_EINVAL, "pvlm pretrain: give --images and/or --text manifests");
    if (!s->ckpt_dir && c->rank == 0) pvlm_warn("no --ckpt-dir: nothing will be saved");
    if (setup_eval(t, err)) return -1;
    if (pvlm_tokenizer_load(s->tokenizer, &t->tok, err)) return -1;

    /* optimizer */
    t->ocfg = s->oc;
    snprintf(t->ocfg.schedule, sizeof t->ocfg.schedule, "%s", s->schedule);
    if (pvlm_optim_config_validate(&t->ocfg, err)) return -1;

    json_t *dec = NULL;
    if (decide_resume(t, &dec, err) || take_decision(t, dec, err)) return -1;
    pvlm_model_config mc;
    if (create_model(t, &mc, err) || init_dp(t, err) || open_loader(t, &mc, err) || restore_or_start(t, err)) return -1;

    t->peak_flops = s->peak_gflops > 0 ? s->peak_gflops * 1e9 : measure_peak();
    if (c->rank == 0 && s->metrics) {
        t->metrics = fopen(s->metrics, "a");
        if (!t->metrics) return pvlm_err_errno(err, "--metrics %s", s->metrics);
    }
    if (s->log_samples) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s.%d", s->log_samples, c->rank) >= (int)sizeof path)
            return pvlm_err_set(err, PVLM_EINVAL, "--log-samples %s: path too long", s->log_samples);
        t->samples_log = fopen(path, "a");
        if (!t->samples_log) return pvlm_err_errno(err, "--log-samples %s", path);
    }
    if (pvlm_watchdog_start(&t->wd, s->watchdog_factor, s->watchdog_min, s->watchdog_first, on_watchdog, t, err)) return -1;
    return train(t, exit_code, err);
}

/* Every flag bound to its field of t->S; t->cmd describes the command (--help, --config, and the settings
 * saved in each checkpoint). */
static void bind_flags(trainer *t) {
    settings *s = &t->S;
    const pvlm_opt opts[] = {
        {"config", PVLM_ARG_STR, &s->config, "JSON object of flag values, applied before the command line", NULL, 0, 0, 0},
        {"images", PVLM_ARG_STR, &s->images, "manifest.json of image-text LMDB shards", NULL, 0, 0, 0},
        {"text", PVLM_ARG_STR, &s->text, "manifest.json of text shards", NULL, 0, 0, 0},
        {"tokenizer", PVLM_ARG_STR, &s->tokenizer, "tokenizer directory (encoder.json + vocab.bpe)", NULL, 0, 0, 1},
        {"text-ratio", PVLM_ARG_DOUBLE, &s->text_ratio, "fraction of text-only samples in each micro-batch", NULL, 0, 1, 0},
        {"data-seed", PVLM_ARG_I64, &s->data_seed, "seed of the data order and PrefixLM splits", NULL, 0, 0, 0},
        {"loader-threads", PVLM_ARG_INT, &s->loader_threads, "prefetch threads per rank (0: synchronous)", NULL, 0, 64, 0},
        {"resample", PVLM_ARG_FLAG, &s->resample, "draw samples with replacement instead of epochs", NULL, 0, 0, 0},
        {"model-config", PVLM_ARG_STR, &s->model_config, "model config JSON (overrides the model flags below)", NULL, 0, 0, 0},
        {"image-size", PVLM_ARG_INT, &s->mc.image_size, "image side S", NULL, 1, 4096, 0},
        {"patch-size", PVLM_ARG_INT, &s->mc.patch_size, "patch side P", NULL, 1, 1024, 0},
        {"stem", PVLM_ARG_CHOICE, &s->stem, "image stem", "patch|conv", 0, 0, 0},
        PVLM_PRECISION_OPT(&s->precision),
        PVLM_RECOMPUTE_OPT(&s->recompute),
        {"d-model", PVLM_ARG_INT, &s->mc.d_model, "model width", NULL, 1, 65536, 0},
        {"n-heads", PVLM_ARG_INT, &s->mc.n_heads, "attention heads", NULL, 1, 1024, 0},
        {"d-ff", PVLM_ARG_INT, &s->mc.d_ff, "MLP width", NULL, 1, 1 << 20, 0},
        {"enc-layers", PVLM_ARG_INT, &s->mc.n_enc_layers, "encoder layers", NULL, 0, 1024, 0},
        {"dec-layers", PVLM_ARG_INT, &s->mc.n_dec_layers, "decoder layers", NULL, 1, 1024, 0},
        {"prefix-len", PVLM_ARG_INT, &s->mc.max_prefix_len, "max prefix text tokens Lp", NULL, 1, 65536, 0},
        {"suffix-len", PVLM_ARG_INT, &s->mc.max_suffix_len, "max decoder tokens Ls", NULL, 1, 65536, 0},
        {"init-seed", PVLM_ARG_I64, &s->init_seed, "weight initialisation seed", NULL, 0, 0, 0},
        {"micro-batch", PVLM_ARG_INT, &s->micro_batch, "samples per rank per micro-batch", NULL, 1, 1 << 20, 0},
        {"accum", PVLM_ARG_INT, &s->accum, "micro-batches accumulated per step", NULL, 1, 1 << 16, 0},
        {"steps", PVLM_ARG_I64, &s->oc.total_steps, "total optimizer steps", NULL, 1, 1e15, 0},
        {"warmup", PVLM_ARG_I64, &s->oc.warmup_steps, "LR warmup steps", NULL, 0, 1e15, 0},
        {"lr", PVLM_ARG_DOUBLE, &s->oc.lr, "peak learning rate", NULL, 0, 10, 0},
        {"min-lr-ratio", PVLM_ARG_DOUBLE, &s->oc.min_lr_ratio, "final LR / peak LR", NULL, 0, 1, 0},
        {"schedule", PVLM_ARG_CHOICE, &s->schedule, "LR decay after warmup", "cosine|linear|const", 0, 0, 0},
        {"weight-decay", PVLM_ARG_DOUBLE, &s->oc.weight_decay, "AdamW decoupled weight decay (matrices only)", NULL, 0, 10, 0},
        {"beta1", PVLM_ARG_DOUBLE, &s->oc.beta1, "AdamW beta1", NULL, 0, 1, 0},
        {"beta2", PVLM_ARG_DOUBLE, &s->oc.beta2, "AdamW beta2", NULL, 0, 1, 0},
        {"eps", PVLM_ARG_DOUBLE, &s->oc.eps, "AdamW epsilon", NULL, 0, 1, 0},
        {"grad-clip", PVLM_ARG_DOUBLE, &s->oc.grad_clip, "global gradient norm clip (0: off)", NULL, 0, 1e9, 0},
        {"zero1", PVLM_ARG_FLAG, &s->zero1, "shard the optimizer state over ranks (ZeRO-1)", NULL, 0, 0, 0},
        {"bucket-mb", PVLM_ARG_DOUBLE, &s->bucket_mb, "gradient bucket size in MiB", NULL, 1e-6, 4096, 0},
        {"no-overlap", PVLM_ARG_FLAG, &s->no_overlap, "reduce gradients after backward instead of during it", NULL, 0, 0, 0},
        {"overlap", PVLM_ARG_FLAG, &s->overlap, "reduce gradients during backward even without a spare core (default: only with one)", NULL, 0, 0, 0},
        {"progress-thread", PVLM_ARG_FLAG, &s->progress_thread, "poll gradient buckets from a thread (spare core) instead of between layers", NULL, 0, 0, 0},
        {"max-nonfinite", PVLM_ARG_INT, &s->max_nonfinite, "abort after this many non-finite steps in a row (0: never)", NULL, 0, 1 << 30, 0},
        {"ckpt-dir", PVLM_ARG_STR, &s->ckpt_dir, "checkpoint root directory (shared by all ranks)", NULL, 0, 0, 0},
        {"ckpt-every", PVLM_ARG_I64, &s->ckpt_every, "checkpoint every N steps (0: only on stop and at the end)", NULL, 0, 1e15, 0},
        {"keep-last", PVLM_ARG_INT, &s->keep_last, "keep the newest K checkpoints (0: all)", NULL, 0, 1 << 30, 0},
        {"keep-every", PVLM_ARG_I64, &s->keep_every, "also keep every checkpoint whose step is a multiple of M", NULL, 0, 1e15, 0},
        {"allow-fresh-start", PVLM_ARG_FLAG, &s->allow_fresh_start, "with --resume auto, train from scratch when checkpoints exist but none verifies (default: fail and list them)", NULL, 0, 0, 0},
        {"resume", PVLM_ARG_STR, &s->resume, "auto (newest valid checkpoint in --ckpt-dir) | none | PATH of a step dir", NULL, 0, 0, 0},
        {"stop-at-step", PVLM_ARG_I64, &s->stop_at_step, "act as if rank 0 got SIGUSR1 when this many steps are done (tests; -1: off)", NULL, -1, 1e15, 0},
        {"hang-at-step", PVLM_ARG_I64, &s->hang_at_step, "the last rank stops making progress before this step (tests of the watchdog; -1: off)", NULL, -1, 1e15, 0},
        {"log-every", PVLM_ARG_INT, &s->log_every, "progress line every k steps (rank 0)", NULL, 1, 1 << 30, 0},
        {"metrics", PVLM_ARG_STR, &s->metrics, "append one JSON line per step to this file (rank 0)", NULL, 0, 0, 0},
        {"log-samples", PVLM_ARG_STR, &s->log_samples, "append the sample ids of every micro-batch to FILE.RANK, a line 'STEP RANK/WORLD id...' each (data-order tests)", NULL, 0, 0, 0},
        {"peak-gflops", PVLM_ARG_DOUBLE, &s->peak_gflops, "per-rank peak GFLOP/s for MFU (0: highest SGEMM rate measured at start and at each progress line)", NULL, 0, 1e9, 0},
        {"threads", PVLM_ARG_INT, &s->threads, "threads per rank (0: the CPUs this rank may use, at most the node's CPUs / its ranks)", NULL, 0, 4096, 0},
        {"watchdog-factor", PVLM_ARG_DOUBLE, &s->watchdog_factor, "abort when a step takes this many times the slowest recent step (0: off)", NULL, 0, 1e9, 0},
        {"watchdog-min", PVLM_ARG_DOUBLE, &s->watchdog_min, "watchdog limit never below this (seconds)", NULL, 0, 1e9, 0},
        {"watchdog-first", PVLM_ARG_DOUBLE, &s->watchdog_first, "watchdog limit before the first step ends (seconds)", NULL, 0, 1e9, 0},
        {"ckpt-timeout", PVLM_ARG_DOUBLE, &s->ckpt_timeout, "watchdog limit while writing a checkpoint or evaluating (seconds)", NULL, 0, 1e9, 0},
        {"eval-every", PVLM_ARG_I64, &s->eval_every, "evaluate on the held-out sets every N steps and after the last (0: never)", NULL, 0, 1e15, 0},
        {"val-images", PVLM_ARG_STR, &s->val_images, "held-out image-text manifest.json (validation loss, captions)", NULL, 0, 0, 0},
        {"val-text", PVLM_ARG_STR, &s->val_text, "held-out text manifest.json (validation loss)", NULL, 0, 0, 0},
        {"val-samples", PVLM_ARG_I64, &s->val_samples, "held-out samples per stream, the same ones at every evaluation", NULL, 1, 1e15, 0},
        {"val-seed", PVLM_ARG_I64, &s->val_seed, "seed of the held-out sample order and PrefixLM splits", NULL, 0, 0, 0},
        {"eval-captions", PVLM_ARG_INT, &s->eval_captions, "caption the first K held-out images and score CIDEr-D/BLEU-4 (0: off)", NULL, 0, 1 << 30, 0},
        {"eval-caption-every", PVLM_ARG_I64, &s->eval_caption_every, "caption only at evaluations whose step is a multiple of M (0: every evaluation)", NULL, 0, 1e15, 0},
        {"best-metric", PVLM_ARG_STR, &s->best_metric, "keep D/best naming the checkpoint with the best METRIC[:min|max]: val_loss_image, val_loss_text, cider, bleu4", NULL, 0, 0, 0},
    };
    _Static_assert(sizeof opts / sizeof *opts <= MAX_FLAGS, "raise MAX_FLAGS");
    memcpy(t->opts, opts, sizeof opts);
    t->cmd = (pvlm_cmd){"pvlm pretrain",
                        "Data-parallel PrefixLM pretraining over MPI (mpirun/srun) with exact checkpoint/resume. "
                        "Exit codes: 0 done, 1 error, 2 usage, 3 stopped after a checkpoint (requeue), 4 watchdog.",
                        "", t->opts, (int)(sizeof opts / sizeof *opts), 0, 0};
}

/* Everything run() set up. After an error with several ranks the others wait in a collective: end the job. */
static void trainer_close(trainer *t, int exit_code) {
    pvlm_watchdog_stop(&t->wd);
    if (t->metrics) fclose(t->metrics);
    if (t->samples_log) fclose(t->samples_log);
    if (t->loader) pvlm_loader_close(t->loader);
    if (t->micro)
        for (int k = 0; k < t->S.accum; k++) pvlm_batch_free(&t->micro[k]);
    free(t->micro);
    free(t->micro_ptr);
    if (t->dp_ok) pvlm_dp_free(&t->dp);
    if (t->model_ok) pvlm_model_free(&t->model);
    if (t->tok) pvlm_tokenizer_free(t->tok);
    json_decref(t->config_json);
    pvlm_trainstate_free(&t->resume);
    if (exit_code == EXIT_ERROR && t->comm.size > 1) pvlm_comm_abort(&t->comm, EXIT_ERROR);
    pvlm_comm_finalize(&t->comm);
}

int pvlm_cmd_pretrain(int argc, char **argv) {
    pvlm_err err = {0};
    /* Slurm may deliver USR1/TERM before MPI is up: handlers first (shared/notes/slurm-and-mpi.md). */
    if (pvlm_comm_install_signals(&err)) {
        fprintf(stderr, "pvlm pretrain: %s\n", err.msg);
        return EXIT_ERROR;
    }
    trainer *t = calloc(1, sizeof *t);
    if (!t) {
        fprintf(stderr, "pvlm pretrain: out of memory\n");
        return EXIT_ERROR;
    }
    settings *s = &t->S;
    settings_default(s);
    bind_flags(t);
    int prc = pvlm_args_parse(&t->cmd, argc, argv, NULL, NULL);
    if (prc != PVLM_ARGS_OK) {
        free(t);
        return prc == PVLM_ARGS_HELP ? EXIT_DONE : EXIT_USAGE;
    }
    if (strcmp(s->resume, "auto") && strcmp(s->resume, "none") && !pvlm_is_dir(s->resume)) {
        fprintf(stderr, "pvlm pretrain: --resume must be auto, none or a checkpoint directory, got '%s'\n", s->resume);
        free(t);
        return EXIT_USAGE;
    }
    if (pvlm_comm_init(&t->comm, &argc, &argv, &err)) {
        fprintf(stderr, "pvlm pretrain: %s\n", err.msg);
        free(t);
        return EXIT_ERROR;
    }
    int exit_code = EXIT_ERROR;
    if (run(t, &exit_code, &err)) {
        pvlm_error("pvlm pretrain: %s", err.msg);
        exit_code = EXIT_ERROR;
    }
    trainer_close(t, exit_code);
    free(t);
    return exit_code;
}
