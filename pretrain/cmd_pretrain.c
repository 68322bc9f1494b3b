/* cmd_pretrain.c - `pvlm pretrain`: data-parallel SimVLM PrefixLM pretraining over MPI with exact
 * checkpoint/resume and preemption handling (issue 7). docs/pretrain.md describes every flag, the
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
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
#include "model/checkpoint.h"
#include "model/model.h"
#include "model/optim.h"
#include "mpi/comm.h"
#include "mpi/dp.h"
#include "mpi/watchdog.h"

int pvlm_cmd_pretrain(int argc, char **argv);

enum { EXIT_DONE = 0, EXIT_ERROR = 1, EXIT_USAGE = 2, EXIT_STOPPED = 3, EXIT_WATCHDOG = 4 };

typedef struct settings {
    const char *config;
    /* data */
    const char *images, *text, *tokenizer;
    double text_ratio;
    int64_t data_seed;
    int loader_threads, resample;
    /* model */
    const char *model_config;
    int image_size, patch_size, d_model, n_heads, d_ff, enc_layers, dec_layers, prefix_len, suffix_len;
    const char *stem, *precision, *recompute;
    int64_t init_seed;
    /* optimisation */
    int micro_batch, accum;
    int64_t steps, warmup;
    double lr, min_lr_ratio, weight_decay, beta1, beta2, eps, grad_clip;
    const char *schedule;
    /* data parallel */
    int zero1, no_overlap, max_nonfinite, progress_thread;
    double bucket_mb;
    /* checkpoints */
    const char *ckpt_dir, *resume;
    int64_t ckpt_every, keep_every, stop_at_step;
    int keep_last;
    /* logging, threads, watchdog */
    int log_every, threads;
    const char *metrics;
    double peak_gflops, watchdog_factor, watchdog_min, watchdog_first, ckpt_timeout;
} settings;

static void settings_default(settings *s) {
    memset(s, 0, sizeof *s);
    pvlm_model_config mc;
    pvlm_model_config_default(&mc);
    pvlm_optim_config oc;
    pvlm_optim_config_default(&oc);
    s->text_ratio = 0.5;
    s->loader_threads = 2;
    s->image_size = mc.image_size;
    s->patch_size = mc.patch_size;
    s->d_model = mc.d_model;
    s->n_heads = mc.n_heads;
    s->d_ff = mc.d_ff;
    s->enc_layers = mc.n_enc_layers;
    s->dec_layers = mc.n_dec_layers;
    s->prefix_len = mc.max_prefix_len;
    s->suffix_len = mc.max_suffix_len;
    s->stem = "patch";
    s->precision = "fp32";
    s->recompute = "none";
    s->init_seed = 1234;
    s->micro_batch = 32;
    s->accum = 1;
    s->steps = oc.total_steps;
    s->warmup = oc.warmup_steps;
    s->lr = oc.lr;
    s->min_lr_ratio = oc.min_lr_ratio;
    s->weight_decay = oc.weight_decay;
    s->beta1 = oc.beta1;
    s->beta2 = oc.beta2;
    s->eps = oc.eps;
    s->grad_clip = oc.grad_clip;
    s->schedule = "cosine";
    s->max_nonfinite = 10;
    s->bucket_mb = 4;
    s->resume = "auto";
    s->ckpt_every = 1000;
    s->keep_last = 3;
    s->stop_at_step = -1;
    s->log_every = 10;
    s->watchdog_factor = 20;
    s->watchdog_min = 120;
    s->watchdog_first = 1800;
    s->ckpt_timeout = 1800;
}

/* ---------------------------------------------------------------------------------------------- */

typedef struct trainer {
    settings S;
    const pvlm_cmd *cmd;
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
    double peak_flops; /* per rank, FLOP/s */
    int64_t last_ckpt_step;
} trainer;

static int tokenize_cb(void *ctx, const char *text, size_t n, int32_t *ids, int cap, pvlm_err *err) {
    int64_t need = pvlm_tokenizer_encode(ctx, NULL, text, n, ids, (size_t)cap, err);
    if (need < 0) return -1;
    return (int)(need < cap ? need : cap);
}

static void on_watchdog(void *ctx, double waited, double limit, const char *phase) {
    trainer *t = ctx;
    pvlm_error("watchdog: no progress for %.1f s (limit %.1f s) in phase '%s' (a hung rank, a stuck file system "
               "or a dead peer); aborting the job with exit code %d",
               waited, limit, phase, EXIT_WATCHDOG);
    pvlm_comm_abort(&t->comm, EXIT_WATCHDOG);
}

/* Peak FLOP/s of this rank for MFU: measured SGEMM (512^3, best of 5) with the rank's threads. */
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
    pvlm_model_config_default(mc);
    if (s->model_config) {
        json_t *j = pvlm_json_load_file(s->model_config, err);
        if (!j) return -1;
        int rc = pvlm_model_config_from_json(mc, j, err);
        json_decref(j);
        if (rc) return pvlm_err_prefix(err, "--model-config %s: ", s->model_config);
    } else {
        mc->image_size = s->image_size;
        mc->patch_size = s->patch_size;
        snprintf(mc->stem, sizeof mc->stem, "%s", s->stem);
        mc->d_model = s->d_model;
        mc->n_heads = s->n_heads;
        mc->d_ff = s->d_ff;
        mc->n_enc_layers = s->enc_layers;
        mc->n_dec_layers = s->dec_layers;
        mc->max_prefix_len = s->prefix_len;
        mc->max_suffix_len = s->suffix_len;
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

/* Returns a JSON {"path": dir, "state": {...}} or JSON null (fresh start) on every rank. */
static int decide_resume(trainer *t, json_t **out, pvlm_err *err) {
    json_t *dec = NULL;
    int fail = 0;
    pvlm_err e0 = {0};
    if (t->comm.rank == 0) {
        const char *r = t->S.resume;
        if (!strcmp(r, "none")) {
            dec = json_null();
        } else if (!strcmp(r, "auto")) {
            pvlm_ckptdir_resume res;
            memset(&res, 0, sizeof res);
            if (!t->S.ckpt_dir) {
                dec = json_null();
            } else if (pvlm_ckptdir_find_resume(t->S.ckpt_dir, &res, &e0)) {
                fail = 1;
            } else {
                for (int i = 0; i < res.n_skipped; i++)
                    pvlm_warn("resume: skipping checkpoint step %lld: %s", (long long)res.skipped[i].step,
                              res.skipped[i].reason);
                if (res.found) {
                    pvlm_info("resume: from %s (step %lld)", res.path, (long long)res.step);
                    dec = json_pack("{s:s, s:O}", "path", res.path, "state", res.state);
                } else {
                    pvlm_info("resume: no checkpoint under %s, starting fresh", t->S.ckpt_dir);
                    dec = json_null();
                }
                pvlm_ckptdir_resume_free(&res);
            }
        } else {
            json_t *st = NULL;
            if (pvlm_ckptdir_verify(r, &st, &e0)) {
                pvlm_err_prefix(&e0, "--resume %s: ", r);
                fail = 1;
            } else {
                pvlm_info("resume: from %s", r);
                dec = json_pack("{s:s, s:o}", "path", r, "state", st);
            }
        }
    }
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
 * (eval/load.h looks for them first). */
static int copy_tokenizer(const char *tokdir, const char *dst_dir, pvlm_err *err) {
    static const char *const src[2][2] = {{"encoder.json", "vocab.json"}, {"vocab.bpe", "merges.txt"}};
    static const char *const dst[2] = {"tokenizer-encoder.json", "tokenizer-vocab.bpe"};
    for (int k = 0; k < 2; k++) {
        char in[4200], out[4200], *buf = NULL;
        size_t n = 0;
        snprintf(in, sizeof in, "%s/%s", tokdir, src[k][0]);
        if (!pvlm_file_exists(in)) snprintf(in, sizeof in, "%s/%s", tokdir, src[k][1]);
        snprintf(out, sizeof out, "%s/%s", dst_dir, dst[k]);
        if (pvlm_read_file(in, &buf, &n, err)) return -1;
        int rc = pvlm_write_file_atomic(out, buf, n, err);
        free(buf);
        if (rc) return -1;
    }
    return 0;
}

static int save_checkpoint(trainer *t, const char *why, pvlm_err *err) {
    const pvlm_comm *c = &t->comm;
    int64_t step = t->dp.step;
    char tmp[4096] = "";
    pvlm_err e = {0};
    int fail = 0, any = 0;
    double t0 = pvlm_now();
    pvlm_watchdog_expect(&t->wd, t->S.ckpt_timeout, "checkpoint");
    if (c->rank == 0 && pvlm_ckptdir_begin(t->S.ckpt_dir, step, tmp, sizeof tmp, &e)) fail = 1;
    if (pvlm_comm_or(c, fail, &any, err)) return -1;
    if (any) goto failed;
    if (pvlm_ckptdir_tmp_path(t->S.ckpt_dir, step, tmp, sizeof tmp, &e)) fail = 1;
    if (!fail && c->rank == 0) {
        char path[4200];
        snprintf(path, sizeof path, "%s/model.safetensors", tmp);
        char tokabs[4096];
        json_t *meta = json_pack("{s:I}", "step", (json_int_t)step);
        if (realpath(t->S.tokenizer, tokabs)) json_object_set_new(meta, "tokenizer", json_string(tokabs));
        if (pvlm_model_save(&t->model, path, meta, &e)) fail = 1;
        json_decref(meta);
        if (!fail && copy_tokenizer(t->S.tokenizer, tmp, &e)) fail = 1;
    }
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
        json_t *state = json_pack("{s:I, s:I, s:I, s:i, s:O, s:o, s:o, s:o, s:o, s:{s:I, s:I}, s:s}", "step", (json_int_t)step,
                                  "samples_seen", (json_int_t)t->samples_seen, "tokens_seen", (json_int_t)t->tokens_seen,
                                  "world_size", c->size, "config", t->config_json, "dp", pvlm_dp_state_to_json(&t->dp),
                                  "optim_files", optim_files, "loader", all_ls, "model_config",
                                  pvlm_model_config_to_json(&t->model.cfg), "rng", "init_seed",
                                  (json_int_t)t->S.init_seed, "data_seed", (json_int_t)t->S.data_seed, "reason", why);
        pvlm_ckptdir_retention keep = {.keep_last = t->S.keep_last, .keep_every = t->S.keep_every};
        char final[4096];
        if (!state) {
            pvlm_err_set(&e, PVLM_ENOMEM, "cannot build state.json");
            fail = 1;
        } else if (pvlm_ckptdir_commit(t->S.ckpt_dir, step, state, &keep, final, sizeof final, &e)) {
            fail = 1;
        } else {
            pvlm_info("checkpoint: %s (%s, %.2f s)", final, why, pvlm_now() - t0);
        }
        json_decref(state);
    } else {
        json_decref(optim_files);
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
    pvlm_err_prefix(err, "checkpoint step %lld under %s: ", (long long)step, t->S.ckpt_dir);
    return -1;
}

/* Restore model, optimizer, counters and loader from a verified checkpoint. */
static int restore_from(trainer *t, const json_t *dec, pvlm_err *err) {
    const char *dir = json_string_value(json_object_get(dec, "path"));
    const json_t *st = json_object_get(dec, "state");
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (pvlm_model_load_params(&t->model, path, 0, NULL, err)) return -1;
    const json_t *of = json_object_get(st, "optim_files");
    if (!json_is_array(of) || json_array_size(of) == 0)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s/state.json: no optim_files", dir);
    size_t n = json_array_size(of);
    char **paths = calloc(n, sizeof *paths);
    for (size_t i = 0; i < n; i++) {
        paths[i] = malloc(4200);
        snprintf(paths[i], 4200, "%s/%s", dir, json_string_value(json_array_get(of, i)));
    }
    int rc = pvlm_dp_load_optim(&t->dp, (const char *const *)paths, (int)n, err);
    for (size_t i = 0; i < n; i++) free(paths[i]);
    free(paths);
    if (rc) return -1;
    if (pvlm_dp_state_from_json(&t->dp, json_object_get(st, "dp"), err)) return -1;
    int64_t v;
    if (pvlm_json_get_int(st, "samples_seen", &v, "state.json", err)) return -1;
    t->samples_seen = v;
    if (pvlm_json_get_int(st, "tokens_seen", &v, "state.json", err)) return -1;
    t->tokens_seen = v;
    int64_t old_world = 0;
    if (pvlm_json_get_int(st, "world_size", &old_world, "state.json", err)) return -1;
    const json_t *ls = json_object_get(st, "loader");
    if (!json_is_array(ls) || (int64_t)json_array_size(ls) != old_world)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s/state.json: loader states do not match world size %lld", dir,
                            (long long)old_world);
    /* Same world size: each rank takes its own state. Otherwise the loader re-bases a state saved
     * under another world size (docs/pretrain.md, "Changing the number of ranks"). */
    int src = t->comm.size == old_world ? t->comm.rank : (t->comm.rank < old_world ? t->comm.rank : 0);
    if (pvlm_loader_state_restore(t->loader, json_array_get(ls, (size_t)src), err)) return -1;
    t->last_ckpt_step = t->dp.step;
    if (t->comm.rank == 0 && t->comm.size != old_world)
        pvlm_warn("resume: checkpoint was written by %lld ranks, now %d: optimizer state re-sliced, data order "
                  "re-derived (not bit-identical to an uninterrupted run)",
                  (long long)old_world, t->comm.size);
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

static int train(trainer *t, int *exit_code, pvlm_err *err) {
    settings *s = &t->S;
    const pvlm_comm *c = &t->comm;
    int n_micro = s->accum;
    double win_t0 = pvlm_now(), win_data = 0, win_comm = 0, win_flops = 0;
    int64_t win_samples = 0, win_tokens = 0, win_steps = 0, win_ok = 0;
    double win_loss = 0, win_img = 0, win_txt = 0, win_gn = 0;
    int64_t win_img_n = 0, win_txt_n = 0;
    double avg_step = 0;
    int64_t timed_steps = 0;
    while (t->dp.step < s->steps) {
        double t0 = pvlm_now();
        for (int k = 0; k < n_micro; k++)
            if (pvlm_loader_next(t->loader, &t->micro[k], err))
                return pvlm_err_prefix(err, "loader at step %lld: ", (long long)t->dp.step);
        double tdata = pvlm_now() - t0;
        int local_stop = pvlm_comm_stop_local() != 0;
        if (s->stop_at_step >= 0 && c->rank == 0 && t->dp.step + 1 >= s->stop_at_step) local_stop = 1;
        pvlm_dp_result r;
        if (pvlm_dp_step(&t->dp, t->micro_ptr, n_micro, local_stop, &r, err)) return -1;
        double tstep = pvlm_now() - t0;
        pvlm_watchdog_beat(&t->wd, "train");
        t->samples_seen += r.nsamples;
        t->tokens_seen += r.ntok;
        if (timed_steps > 0 || t->dp.step > 1) {
            avg_step = (avg_step * (double)timed_steps + tstep) / (double)(timed_steps + 1);
            timed_steps++;
        }
        /* window statistics for the progress line */
        win_steps++;
        win_data += tdata;
        win_comm += r.t_comm;
        win_flops += r.flops;
        win_samples += r.nsamples;
        win_tokens += r.ntok;
        if (!r.skipped) {
            win_ok++;
            win_loss += r.loss;
            win_gn += r.grad_norm;
        }
        if (r.ntok_img) {
            win_img += r.loss_img * (double)r.ntok_img;
            win_img_n += r.ntok_img;
        }
        if (r.ntok_txt) {
            win_txt += r.loss_txt * (double)r.ntok_txt;
            win_txt_n += r.ntok_txt;
        }
        if (c->rank == 0 && t->metrics) {
            fprintf(t->metrics,
                    "{\"step\":%lld,\"loss\":%.17g,\"loss_img\":%.17g,\"loss_txt\":%.17g,\"ntok\":%lld,\"samples\":%lld,"
                    "\"grad_norm\":%.17g,\"clip_scale\":%.17g,\"lr\":%.17g,\"skipped\":%d,\"step_s\":%.6f,\"data_s\":%.6f,"
                    "\"compute_s\":%.6f,\"comm_s\":%.6f,\"optim_s\":%.6f,\"flops\":%.6g,\"bytes\":%llu,\"samples_seen\":%lld,"
                    "\"time\":%.3f}\n",
                    (long long)r.step, r.loss, isfinite(r.loss_img) ? r.loss_img : -1.0,
                    isfinite(r.loss_txt) ? r.loss_txt : -1.0, (long long)r.ntok, (long long)r.nsamples, r.grad_norm,
                    r.clip_scale, r.lr, r.skipped, tstep, tdata, r.t_compute, r.t_comm, r.t_optim, r.flops,
                    (unsigned long long)r.bytes, (long long)t->samples_seen, pvlm_uptime());
            fflush(t->metrics);
        }
        if (r.skipped && c->rank == 0)
            pvlm_warn("step %lld: non-finite loss %g / grad norm %g: update skipped (%lld in a row, %lld total)",
                      (long long)r.step, r.loss, r.grad_norm, (long long)t->dp.nonfinite_run,
                      (long long)t->dp.n_skipped);
        if (c->rank == 0 && (t->dp.step % s->log_every == 0 || t->dp.step == s->steps || r.stop)) {
            double wt = pvlm_now() - win_t0;
            double mfu = t->peak_flops > 0 ? win_flops / (wt * t->peak_flops) : NAN;
            char eta[32];
            fmt_eta(avg_step * (double)(s->steps - t->dp.step), eta, sizeof eta);
            double ok_steps = win_ok > 0 ? (double)win_ok : NAN;
            char limg[32] = "-", ltxt[32] = "-";
            if (win_img_n) snprintf(limg, sizeof limg, "%.4f", win_img / (double)win_img_n);
            if (win_txt_n) snprintf(ltxt, sizeof ltxt, "%.4f", win_txt / (double)win_txt_n);
            pvlm_info("step %lld/%lld | loss %.4f (img %s, txt %s) | lr %.3e | gnorm %.3f | %.1f samples/s | "
                      "%.0f tok/s | MFU %.1f%% | data %.1f%% | comm %.1f%% | skipped %lld | ETA %s",
                      (long long)t->dp.step, (long long)s->steps, win_loss / ok_steps, limg, ltxt, r.lr,
                      win_gn / ok_steps, (double)win_samples / wt, (double)win_tokens / wt, 100.0 * mfu,
                      100.0 * win_data / wt, 100.0 * win_comm / wt, (long long)t->dp.n_skipped, eta);
            win_t0 = pvlm_now();
            win_data = win_comm = win_flops = win_loss = win_img = win_txt = win_gn = 0;
            win_samples = win_tokens = win_steps = win_ok = win_img_n = win_txt_n = 0;
        }
        if (r.stop) {
            if (c->rank == 0) pvlm_info("stop requested (signal): checkpointing at step %lld", (long long)t->dp.step);
            if (!s->ckpt_dir) {
                pvlm_warn("stop requested but no --ckpt-dir: exiting without a checkpoint");
                *exit_code = EXIT_STOPPED;
                return 0;
            }
            if (save_checkpoint(t, "stop signal", err)) return -1;
            *exit_code = EXIT_STOPPED;
            return 0;
        }
        if (s->ckpt_dir && s->ckpt_every > 0 && t->dp.step % s->ckpt_every == 0 && t->dp.step < s->steps)
            if (save_checkpoint(t, "periodic", err)) return -1;
    }
    if (s->ckpt_dir && t->last_ckpt_step != t->dp.step)
        if (save_checkpoint(t, "final", err)) return -1;
    if (c->rank == 0) pvlm_info("done: %lld steps, %lld samples seen", (long long)t->dp.step, (long long)t->samples_seen);
    *exit_code = EXIT_DONE;
    return 0;
}

static int run(trainer *t, int *exit_code, pvlm_err *err) {
    settings *s = &t->S;
    const pvlm_comm *c = &t->comm;
    int nthreads = pvlm_threads_set(pvlm_threads_resolve(s->threads));
    t->config_json = pvlm_args_to_json(t->cmd);
    json_object_set_new(t->config_json, "resolved_threads", json_integer(nthreads));
    json_object_set_new(t->config_json, "world_size", json_integer(c->size));
    json_object_set_new(t->config_json, "global_batch", json_integer((json_int_t)c->size * s->micro_batch * s->accum));
    if (c->rank == 0) {
        char *txt = json_dumps(t->config_json, JSON_SORT_KEYS | JSON_INDENT(1) | JSON_REAL_PRECISION(17));
        pvlm_info("pvlm pretrain: %d ranks x micro-batch %d x accumulation %d = global batch %d; settings:\n%s", c->size,
                  s->micro_batch, s->accum, c->size * s->micro_batch * s->accum, txt ? txt : "?");
        free(txt);
    }
    if (!s->images && !s->text) return pvlm_err_set(err, PVLM_EINVAL, "pvlm pretrain: give --images and/or --text manifests");
    if (!s->ckpt_dir && c->rank == 0) pvlm_warn("no --ckpt-dir: nothing will be saved");
    if (pvlm_tokenizer_load(s->tokenizer, &t->tok, err)) return -1;

    /* optimizer */
    pvlm_optim_config_default(&t->ocfg);
    t->ocfg.lr = s->lr;
    t->ocfg.beta1 = s->beta1;
    t->ocfg.beta2 = s->beta2;
    t->ocfg.eps = s->eps;
    t->ocfg.weight_decay = s->weight_decay;
    t->ocfg.grad_clip = s->grad_clip;
    t->ocfg.min_lr_ratio = s->min_lr_ratio;
    t->ocfg.warmup_steps = s->warmup;
    t->ocfg.total_steps = s->steps;
    snprintf(t->ocfg.schedule, sizeof t->ocfg.schedule, "%s", s->schedule);
    if (pvlm_optim_config_validate(&t->ocfg, err)) return -1;

    json_t *dec = NULL;
    if (decide_resume(t, &dec, err)) return -1;
    int resuming = json_is_object(dec);

    /* model: from the checkpoint's config when resuming, else from the flags */
    pvlm_model_config mc;
    if (resuming) {
        const json_t *st = json_object_get(dec, "state");
        if (pvlm_model_config_from_json(&mc, json_object_get(st, "model_config"), err)) {
            json_decref(dec);
            return pvlm_err_prefix(err, "resume state.json model_config: ");
        }
    } else if (build_model_config(t, &mc, err)) {
        json_decref(dec);
        return -1;
    }
    if (mc.vocab_size != pvlm_tokenizer_vocab_size(t->tok)) {
        json_decref(dec);
        return pvlm_err_set(err, PVLM_EINVAL, "model vocabulary %d != tokenizer %s vocabulary %d", mc.vocab_size,
                            s->tokenizer, pvlm_tokenizer_vocab_size(t->tok));
    }
    if (pvlm_model_create(&t->model, &mc, err)) {
        json_decref(dec);
        return -1;
    }
    t->model_ok = 1;
    if (pvlm_model_set_precision_name(&t->model, s->precision, err) ||
        pvlm_model_set_recompute(&t->model, s->recompute, err)) {
        json_decref(dec);
        return -1;
    }
    if (!resuming) pvlm_model_init_weights(&t->model, (uint64_t)s->init_seed);
    if (c->rank == 0) pvlm_info("model: %zu parameters, %d views", t->model.n_params, t->model.n_views);

    pvlm_dp_config dc;
    pvlm_dp_config_default(&dc);
    dc.zero1 = s->zero1;
    dc.bucket_elems = (size_t)(s->bucket_mb * 1024.0 * 1024.0 / 4.0);
    if (dc.bucket_elems < 1) dc.bucket_elems = 1;
    dc.overlap = !s->no_overlap;
    dc.max_nonfinite = s->max_nonfinite;
    dc.progress_thread = s->progress_thread;
    if (pvlm_dp_init(&t->dp, c, &t->model, &t->ocfg, &dc, NULL, err)) {
        json_decref(dec);
        return -1;
    }
    t->dp_ok = 1;

    pvlm_loader_config lc;
    pvlm_loader_config_default(&lc);
    lc.image_manifest = s->images;
    lc.text_manifest = s->text;
    lc.tokenize = tokenize_cb;
    lc.tokenizer = t->tok;
    lc.rank = c->rank;
    lc.world = c->size;
    lc.B = s->micro_batch;
    lc.S = mc.image_size;
    lc.Lp = mc.max_prefix_len;
    lc.Ls = mc.max_suffix_len;
    lc.text_ratio = !s->images ? 1.0 : !s->text ? 0.0 : s->text_ratio;
    lc.seed = (uint64_t)s->data_seed;
    lc.mode = s->resample ? PVLM_LOADER_RESAMPLE : PVLM_LOADER_EPOCH;
    lc.threads = s->loader_threads;
    lc.pad_id = mc.pad_id;
    lc.bos_id = mc.bos_id;
    lc.eos_id = mc.eos_id;
    t->loader = pvlm_loader_open(&lc, err);
    if (!t->loader) {
        json_decref(dec);
        return -1;
    }
    t->micro = calloc((size_t)s->accum, sizeof *t->micro);
    t->micro_ptr = calloc((size_t)s->accum, sizeof *t->micro_ptr);
    if (!t->micro || !t->micro_ptr) {
        json_decref(dec);
        return pvlm_err_set(err, PVLM_ENOMEM, "out of memory for micro-batches");
    }
    for (int k = 0; k < s->accum; k++) {
        if (pvlm_batch_alloc(&t->micro[k], s->micro_batch, mc.image_size, mc.max_prefix_len, mc.max_suffix_len, err)) {
            json_decref(dec);
            return -1;
        }
        t->micro_ptr[k] = &t->micro[k];
    }
    if (resuming) {
        int rc = restore_from(t, dec, err);
        /* every rank must succeed, or nobody trains */
        int any = 0;
        if (pvlm_comm_or(c, rc != 0, &any, err) == 0 && any && rc == 0)
            pvlm_err_set(err, PVLM_EFORMAT, "another rank failed to restore the checkpoint");
        if (rc || any) {
            json_decref(dec);
            return -1;
        }
        if (c->rank == 0) pvlm_info("resumed at step %lld (%lld samples seen)", (long long)t->dp.step, (long long)t->samples_seen);
    } else {
        t->last_ckpt_step = -1;
    }
    json_decref(dec);

    t->peak_flops = s->peak_gflops > 0 ? s->peak_gflops * 1e9 : measure_peak();
    if (c->rank == 0 && s->metrics) {
        t->metrics = fopen(s->metrics, "a");
        if (!t->metrics) return pvlm_err_errno(err, "--metrics %s", s->metrics);
    }
    if (pvlm_watchdog_start(&t->wd, s->watchdog_factor, s->watchdog_min, s->watchdog_first, on_watchdog, t, err)) return -1;
    return train(t, exit_code, err);
}

int pvlm_cmd_pretrain(int argc, char **argv) {
    pvlm_err err = {0};
    /* Slurm may deliver USR1/TERM before MPI is up: handlers first (shared/notes/slurm-and-mpi.md). */
    if (pvlm_comm_install_signals(&err)) {
        fprintf(stderr, "pvlm pretrain: %s\n", err.msg);
        return EXIT_ERROR;
    }
    trainer *t = calloc(1, sizeof *t);
    if (!t) return EXIT_ERROR;
    settings *s = &t->S;
    settings_default(s);
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
        {"image-size", PVLM_ARG_INT, &s->image_size, "image side S", NULL, 1, 4096, 0},
        {"patch-size", PVLM_ARG_INT, &s->patch_size, "patch side P", NULL, 1, 1024, 0},
        {"stem", PVLM_ARG_CHOICE, &s->stem, "image stem", "patch|conv", 0, 0, 0},
        PVLM_PRECISION_OPT(&s->precision),
        PVLM_RECOMPUTE_OPT(&s->recompute),
        {"d-model", PVLM_ARG_INT, &s->d_model, "model width", NULL, 1, 65536, 0},
        {"n-heads", PVLM_ARG_INT, &s->n_heads, "attention heads", NULL, 1, 1024, 0},
        {"d-ff", PVLM_ARG_INT, &s->d_ff, "MLP width", NULL, 1, 1 << 20, 0},
        {"enc-layers", PVLM_ARG_INT, &s->enc_layers, "encoder layers", NULL, 0, 1024, 0},
        {"dec-layers", PVLM_ARG_INT, &s->dec_layers, "decoder layers", NULL, 1, 1024, 0},
        {"prefix-len", PVLM_ARG_INT, &s->prefix_len, "max prefix text tokens Lp", NULL, 1, 65536, 0},
        {"suffix-len", PVLM_ARG_INT, &s->suffix_len, "max decoder tokens Ls", NULL, 1, 65536, 0},
        {"init-seed", PVLM_ARG_I64, &s->init_seed, "weight initialisation seed", NULL, 0, 0, 0},
        {"micro-batch", PVLM_ARG_INT, &s->micro_batch, "samples per rank per micro-batch", NULL, 1, 1 << 20, 0},
        {"accum", PVLM_ARG_INT, &s->accum, "micro-batches accumulated per step", NULL, 1, 1 << 16, 0},
        {"steps", PVLM_ARG_I64, &s->steps, "total optimizer steps", NULL, 1, 1e15, 0},
        {"warmup", PVLM_ARG_I64, &s->warmup, "LR warmup steps", NULL, 0, 1e15, 0},
        {"lr", PVLM_ARG_DOUBLE, &s->lr, "peak learning rate", NULL, 0, 10, 0},
        {"min-lr-ratio", PVLM_ARG_DOUBLE, &s->min_lr_ratio, "final LR / peak LR", NULL, 0, 1, 0},
        {"schedule", PVLM_ARG_CHOICE, &s->schedule, "LR decay after warmup", "cosine|linear|const", 0, 0, 0},
        {"weight-decay", PVLM_ARG_DOUBLE, &s->weight_decay, "AdamW decoupled weight decay (matrices only)", NULL, 0, 10, 0},
        {"beta1", PVLM_ARG_DOUBLE, &s->beta1, "AdamW beta1", NULL, 0, 1, 0},
        {"beta2", PVLM_ARG_DOUBLE, &s->beta2, "AdamW beta2", NULL, 0, 1, 0},
        {"eps", PVLM_ARG_DOUBLE, &s->eps, "AdamW epsilon", NULL, 0, 1, 0},
        {"grad-clip", PVLM_ARG_DOUBLE, &s->grad_clip, "global gradient norm clip (0: off)", NULL, 0, 1e9, 0},
        {"zero1", PVLM_ARG_FLAG, &s->zero1, "shard the optimizer state over ranks (ZeRO-1)", NULL, 0, 0, 0},
        {"bucket-mb", PVLM_ARG_DOUBLE, &s->bucket_mb, "gradient bucket size in MiB", NULL, 1e-6, 4096, 0},
        {"no-overlap", PVLM_ARG_FLAG, &s->no_overlap, "reduce gradients after backward instead of during it", NULL, 0, 0, 0},
        {"progress-thread", PVLM_ARG_FLAG, &s->progress_thread, "poll gradient buckets from a thread (spare core) instead of between layers", NULL, 0, 0, 0},
        {"max-nonfinite", PVLM_ARG_INT, &s->max_nonfinite, "abort after this many non-finite steps in a row (0: never)", NULL, 0, 1 << 30, 0},
        {"ckpt-dir", PVLM_ARG_STR, &s->ckpt_dir, "checkpoint root directory (shared by all ranks)", NULL, 0, 0, 0},
        {"ckpt-every", PVLM_ARG_I64, &s->ckpt_every, "checkpoint every N steps (0: only on stop and at the end)", NULL, 0, 1e15, 0},
        {"keep-last", PVLM_ARG_INT, &s->keep_last, "keep the newest K checkpoints (0: all)", NULL, 0, 1 << 30, 0},
        {"keep-every", PVLM_ARG_I64, &s->keep_every, "also keep every checkpoint whose step is a multiple of M", NULL, 0, 1e15, 0},
        {"resume", PVLM_ARG_STR, &s->resume, "auto (newest valid checkpoint in --ckpt-dir) | none | PATH of a step dir", NULL, 0, 0, 0},
        {"stop-at-step", PVLM_ARG_I64, &s->stop_at_step, "act as if rank 0 got SIGUSR1 when this many steps are done (tests; -1: off)", NULL, -1, 1e15, 0},
        {"log-every", PVLM_ARG_INT, &s->log_every, "progress line every k steps (rank 0)", NULL, 1, 1 << 30, 0},
        {"metrics", PVLM_ARG_STR, &s->metrics, "append one JSON line per step to this file (rank 0)", NULL, 0, 0, 0},
        {"peak-gflops", PVLM_ARG_DOUBLE, &s->peak_gflops, "per-rank peak GFLOP/s for MFU (0: measure SGEMM at start)", NULL, 0, 1e9, 0},
        {"threads", PVLM_ARG_INT, &s->threads, "threads per rank (0: cores / ranks on the node)", NULL, 0, 4096, 0},
        {"watchdog-factor", PVLM_ARG_DOUBLE, &s->watchdog_factor, "abort when a step takes this many times the slowest recent step (0: off)", NULL, 0, 1e9, 0},
        {"watchdog-min", PVLM_ARG_DOUBLE, &s->watchdog_min, "watchdog limit never below this (seconds)", NULL, 0, 1e9, 0},
        {"watchdog-first", PVLM_ARG_DOUBLE, &s->watchdog_first, "watchdog limit before the first step ends (seconds)", NULL, 0, 1e9, 0},
        {"ckpt-timeout", PVLM_ARG_DOUBLE, &s->ckpt_timeout, "watchdog limit while writing a checkpoint (seconds)", NULL, 0, 1e9, 0},
    };
    const pvlm_cmd cmd = {"pvlm pretrain",
                          "Data-parallel PrefixLM pretraining over MPI (mpirun/srun) with exact checkpoint/resume. "
                          "Exit codes: 0 done, 1 error, 2 usage, 3 stopped after a checkpoint (requeue), 4 watchdog.",
                          "", opts, (int)(sizeof opts / sizeof *opts), 0, 0};
    t->cmd = &cmd;
    int prc = pvlm_args_parse(&cmd, argc, argv, NULL, NULL);
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
    pvlm_watchdog_stop(&t->wd);
    if (t->metrics) fclose(t->metrics);
    if (t->loader) pvlm_loader_close(t->loader);
    if (t->micro)
        for (int k = 0; k < s->accum; k++) pvlm_batch_free(&t->micro[k]);
    free(t->micro);
    free(t->micro_ptr);
    if (t->dp_ok) pvlm_dp_free(&t->dp);
    if (t->model_ok) pvlm_model_free(&t->model);
    if (t->tok) pvlm_tokenizer_free(t->tok);
    json_decref(t->config_json);
    if (exit_code == EXIT_ERROR && t->comm.size > 1) {
        /* An error on one rank leaves the others in a collective: end the job instead of hanging. */
        pvlm_comm_abort(&t->comm, EXIT_ERROR);
    }
    pvlm_comm_finalize(&t->comm);
    free(t);
    return exit_code;
}
