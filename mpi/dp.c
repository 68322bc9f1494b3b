/* dp.c - see dp.h. */
#include "dp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/mem.h"
#include "core/threads.h"
#include "core/timer.h"
#include "model/checkpoint.h"

void pvlm_dp_config_default(pvlm_dp_config *c) {
    memset(c, 0, sizeof *c);
    c->bucket_elems = (size_t)1 << 20;
    c->overlap = -1;
    c->max_nonfinite = 10;
}

/* Merge the trainable views into sorted contiguous ranges. */
static int build_segments(pvlm_dp *dp, pvlm_err *err) {
    const pvlm_model *m = dp->m;
    dp->seg_off = calloc((size_t)m->n_views + 1, sizeof(size_t));
    dp->seg_n = calloc((size_t)m->n_views + 1, sizeof(size_t));
    if (!dp->seg_off || !dp->seg_n) return pvlm_err_set(err, PVLM_ENOMEM, "dp: out of memory for segments");
    dp->nseg = 0;
    if (!dp->trainable) return 0; /* 0 segments = the whole buffer */
    for (int v = 0; v < m->n_views; v++) {
        if (!dp->trainable[v] || m->views[v].numel == 0) continue;
        size_t o = m->views[v].offset, n = m->views[v].numel;
        if (dp->nseg && dp->seg_off[dp->nseg - 1] + dp->seg_n[dp->nseg - 1] == o) {
            dp->seg_n[dp->nseg - 1] += n;
        } else {
            if (dp->nseg && o < dp->seg_off[dp->nseg - 1] + dp->seg_n[dp->nseg - 1])
                return pvlm_err_set(err, PVLM_EINVAL, "dp: model views are not in buffer order (view %s)", m->views[v].name);
            dp->seg_off[dp->nseg] = o;
            dp->seg_n[dp->nseg] = n;
            dp->nseg++;
        }
    }
    if (dp->nseg == 0) return pvlm_err_set(err, PVLM_EINVAL, "dp: no trainable parameters");
    return 0;
}

/* overlap = -1: launch buckets during backward only when every node has a core left over for the
 * polling (ranks x threads < cores). Without one, the MPI_Test calls between layers and the progress
 * of the collectives take time from the other rank's GEMMs: on 2 cores x 2 ranks the overlapped step
 * was measured at 28.6 ms against 27.8 ms reduced after backward (53.6 against 31.6 ms before the
 * malloc and single-copy defaults of mpi/comm.c; docs/perf-scaling.md). Agreed by
 * all ranks (MIN), since both modes must issue the same collectives in the same order. */
static int resolve_overlap(pvlm_dp *dp, pvlm_err *err) {
    const pvlm_comm *c = dp->comm;
    if (dp->cfg.overlap >= 0) {
        snprintf(dp->overlap_why, sizeof dp->overlap_why, "overlap %s (set)", dp->cfg.overlap ? "on" : "off");
        return 0;
    }
    if (c->size == 1) {
        dp->cfg.overlap = 0;
        snprintf(dp->overlap_why, sizeof dp->overlap_why, "overlap off (one rank: nothing to reduce)");
        return 0;
    }
    int ranks = 1, cores = 1, threads = pvlm_threads_get();
    if (pvlm_comm_node_cores(c, &ranks, &cores, err)) return -1;
    int spare = ranks * threads < cores, all = spare;
    int rc = MPI_Allreduce(&spare, &all, 1, MPI_INT, MPI_MIN, c->comm);
    if (rc != MPI_SUCCESS) return pvlm_comm_mpi_err(rc, err, "dp: agreeing on overlap");
    dp->cfg.overlap = all;
    snprintf(dp->overlap_why, sizeof dp->overlap_why,
             "overlap %s (auto: %d ranks x %d threads on %d cores of rank 0's node%s)", all ? "on" : "off", ranks,
             threads, cores, all ? "" : "; no spare core on some node, so buckets are reduced after backward");
    return 0;
}

int pvlm_dp_init(pvlm_dp *dp, const pvlm_comm *c, pvlm_model *m, const pvlm_optim_config *ocfg,
                 const pvlm_dp_config *cfg, const uint8_t *trainable, pvlm_err *err) {
    memset(dp, 0, sizeof *dp);
    dp->comm = c;
    dp->m = m;
    dp->ocfg = *ocfg;
    if (cfg) dp->cfg = *cfg;
    else pvlm_dp_config_default(&dp->cfg);
    dp->trainable = trainable;
    if (build_segments(dp, err)) {
        pvlm_dp_free(dp);
        return -1;
    }
    if (resolve_overlap(dp, err)) {
        pvlm_dp_free(dp);
        return -1;
    }
    pvlm_reducer_config rc = {.bucket_elems = dp->cfg.bucket_elems, .zero1 = dp->cfg.zero1,
                              .progress_thread = dp->cfg.progress_thread};
    if (pvlm_reducer_init(&dp->red, c, m->grads, m->n_params, dp->seg_off, dp->seg_n, dp->nseg, &rc, err)) {
        pvlm_dp_free(dp);
        return -1;
    }
    dp->opt_off = dp->red.shard_off;
    dp->opt_n = dp->red.shard_n;
    dp->m1 = pvlm_alloc(dp->opt_n * sizeof(float), err);
    dp->m2 = dp->m1 ? pvlm_alloc(dp->opt_n * sizeof(float), err) : NULL;
    if (!dp->m2) {
        pvlm_dp_free(dp);
        return pvlm_err_prefix(err, "dp: AdamW moments for %zu parameters", dp->opt_n);
    }
    return 0;
}

void pvlm_dp_free(pvlm_dp *dp) {
    pvlm_reducer_free(&dp->red);
    pvlm_free(dp->m1);
    pvlm_free(dp->m2);
    free(dp->seg_off);
    free(dp->seg_n);
    free(dp->scratch);
    memset(dp, 0, sizeof *dp);
}

void pvlm_dp_set_objective(pvlm_dp *dp, pvlm_dp_objective_fn fn, void *ctx) {
    dp->objective = fn;
    dp->objective_ctx = ctx;
}

/* Squared norm of the part of the reduced gradient this rank accounts for: its pvlm_comm_split
 * share of the buffer (ZeRO-1: its slice, zero outside segments; plain: every rank holds the whole
 * sum, so each sums only its share of the segments instead of rank 0 summing all while the others
 * wait). The shares are added in the step's small allreduce. */
static double local_sqnorm(const pvlm_dp *dp) {
    if (dp->cfg.zero1) return pvlm_optim_sqnorm(dp->red.slice, dp->red.shard_n);
    size_t lo, cnt;
    pvlm_comm_split(dp->m->n_params, dp->comm->size, dp->comm->rank, &lo, &cnt);
    size_t hi = lo + cnt, whole_off = 0, whole_n = dp->m->n_params;
    const size_t *so = dp->nseg ? dp->seg_off : &whole_off, *sn = dp->nseg ? dp->seg_n : &whole_n;
    double s = 0;
    for (int i = 0; i < (dp->nseg ? dp->nseg : 1); i++) {
        size_t a = so[i] > lo ? so[i] : lo, e = so[i] + sn[i] < hi ? so[i] + sn[i] : hi;
        if (e > a) s += pvlm_optim_sqnorm(dp->m->grads + a, e - a);
    }
    return s;
}

int pvlm_dp_step(pvlm_dp *dp, pvlm_batch *const *micro, int n_micro, int local_stop, pvlm_dp_result *res,
                 pvlm_err *err) {
    const pvlm_comm *c = dp->comm;
    pvlm_model *m = dp->m;
    memset(res, 0, sizeof *res);
    res->step = dp->step;
    double t0 = pvlm_now();
    uint64_t bytes0 = dp->red.bytes;
    if (n_micro < 1) return pvlm_err_set(err, PVLM_EINVAL, "dp: a step needs at least one micro-batch");

    /* 1. global target and sample counts */
    int64_t counts[2] = {0, 0};
    for (int k = 0; k < n_micro; k++) {
        counts[0] += pvlm_batch_count_targets(micro[k]);
        counts[1] += micro[k]->B;
    }
    if (pvlm_comm_sum_i64(c, counts, 2, err)) return pvlm_err_prefix(err, "dp step %lld", (long long)dp->step);
    res->ntok = counts[0];
    res->nsamples = counts[1];
    double ntg = counts[0] > 0 ? (double)counts[0] : 1.0;

    /* 2. forward + backward, buckets launched from the last backward */
    pvlm_model_zero_grad(m);
    if (pvlm_reducer_begin(&dp->red, err)) return -1;
    double loss_local = 0, sums[7] = {0};
    double tc = pvlm_now();
    for (int k = 0; k < n_micro; k++) {
        pvlm_batch *b = micro[k];
        float loss = 0;
        pvlm_loss_stats st;
        memset(&st, 0, sizeof st);
        double *sample_ce = NULL, *scale = NULL;
        if (dp->objective) {
            if (dp->scratch_B < b->B) {
                free(dp->scratch);
                dp->scratch = malloc(2 * (size_t)b->B * sizeof(double));
                if (!dp->scratch) return pvlm_err_set(err, PVLM_ENOMEM, "dp: out of memory");
                dp->scratch_B = b->B;
            }
            sample_ce = dp->scratch;
            scale = dp->scratch + b->B;
        }
        if (pvlm_model_forward(m, b, ntg, &loss, &st, sample_ce, err))
            return pvlm_err_prefix(err, "dp step %lld micro-batch %d", (long long)dp->step, k);
        if (dp->objective) {
            double obj = 0;
            if (dp->objective(dp->objective_ctx, b, sample_ce, ntg, scale, &obj, err)) return -1;
            loss_local += obj;
        } else {
            loss_local += (double)loss;
        }
        sums[0] += st.loss_sum_img;
        sums[1] += st.loss_sum_txt;
        sums[2] += (double)st.ntok_img;
        sums[3] += (double)st.ntok_txt;
        int last = k == n_micro - 1;
        pvlm_grad_ready_fn hook = last && dp->cfg.overlap ? pvlm_reducer_hook : NULL;
        if (pvlm_model_backward(m, b, scale, hook, &dp->red, err))
            return pvlm_err_prefix(err, "dp step %lld micro-batch %d backward", (long long)dp->step, k);
        res->flops += pvlm_model_flops(m, b);
    }
    double tw = pvlm_now();
    res->t_compute = tw - tc;
    if (pvlm_reducer_finish(&dp->red, err)) return pvlm_err_prefix(err, "dp step %lld", (long long)dp->step);

    /* 3. one small allreduce for every decision */
    sums[4] = local_sqnorm(dp);
    sums[5] = local_stop ? 1.0 : 0.0;
    sums[6] = loss_local;
    if (pvlm_comm_sum_f64(c, sums, 7, err)) return pvlm_err_prefix(err, "dp step %lld", (long long)dp->step);
    res->t_comm = pvlm_now() - tw;
    res->loss = sums[6];
    res->ntok_img = (int64_t)sums[2];
    res->ntok_txt = (int64_t)sums[3];
    res->loss_img = res->ntok_img ? sums[0] / sums[2] : NAN;
    res->loss_txt = res->ntok_txt ? sums[1] / sums[3] : NAN;
    res->grad_norm = sqrt(sums[4]);
    res->stop = sums[5] > 0;
    res->lr = pvlm_optim_lr(&dp->ocfg, dp->step);

    /* 4. skip or update */
    double to = pvlm_now();
    if (!isfinite(res->loss) || !isfinite(res->grad_norm)) {
        res->skipped = 1;
        dp->n_skipped++;
        dp->nonfinite_run++;
        dp->step++;
        res->t_optim = pvlm_now() - to;
        res->t_total = pvlm_now() - t0;
        res->bytes = dp->red.bytes - bytes0;
        if (dp->cfg.max_nonfinite > 0 && dp->nonfinite_run >= dp->cfg.max_nonfinite)
            return pvlm_err_set(err, PVLM_EINVAL,
                                "dp: %lld non-finite steps in a row (loss %g, grad norm %g at step %lld): giving up "
                                "(lower the learning rate, check the data, or raise --max-nonfinite)",
                                (long long)dp->nonfinite_run, res->loss, res->grad_norm, (long long)dp->step - 1);
        return 0;
    }
    dp->nonfinite_run = 0;
    res->clip_scale = pvlm_optim_clip_scale(res->grad_norm, dp->ocfg.grad_clip);
    dp->adam_t++;
    const float *g = dp->cfg.zero1 ? dp->red.slice : m->grads + dp->opt_off;
    pvlm_optim_adamw(m, m->params + dp->opt_off, g, dp->m1, dp->m2, dp->opt_off, dp->opt_n, dp->trainable, res->lr,
                     res->clip_scale, dp->adam_t, &dp->ocfg);
    if (pvlm_reducer_allgather(&dp->red, m->params, err))
        return pvlm_err_prefix(err, "dp step %lld", (long long)dp->step);
    dp->step++;
    res->t_optim = pvlm_now() - to;
    res->t_total = pvlm_now() - t0;
    res->bytes = dp->red.bytes - bytes0;
    return 0;
}

int pvlm_dp_save_optim(pvlm_dp *dp, const char *dir, json_t **names, pvlm_err *err) {
    const pvlm_comm *c = dp->comm;
    char path[4096], name[64];
    int ok = 0;
    pvlm_err local = {0};
    if (dp->cfg.zero1) {
        snprintf(name, sizeof name, "optim-rank%05d.safetensors", c->rank);
        ok = !pvlm_path_join(path, sizeof path, dir, name, &local) &&
             pvlm_ckpt_optim_save_shard(dp->m, dp->m1, dp->m2, dp->opt_off, dp->opt_off + dp->opt_n, c->rank, c->size,
                                        dp->adam_t, path, &local) == 0;
    } else {
        snprintf(name, sizeof name, "optim.safetensors");
        ok = c->rank != 0 || (!pvlm_path_join(path, sizeof path, dir, name, &local) &&
                              pvlm_ckpt_optim_save(dp->m, dp->m1, dp->m2, dp->adam_t, path, &local) == 0);
    }
    /* every rank learns whether all writes succeeded, so nobody commits a half checkpoint */
    int bad = 0;
    if (pvlm_comm_or(c, !ok, &bad, err)) return -1;
    if (!ok) {
        if (err) *err = local;
        return -1;
    }
    if (bad) return pvlm_err_set(err, PVLM_EIO, "dp: another rank failed to write its optimizer state into %s", dir);
    if (names) {
        *names = json_array();
        if (dp->cfg.zero1) {
            for (int r = 0; r < c->size; r++) {
                snprintf(name, sizeof name, "optim-rank%05d.safetensors", r);
                json_array_append_new(*names, json_string(name));
            }
        } else {
            json_array_append_new(*names, json_string("optim.safetensors"));
        }
    }
    return 0;
}

int pvlm_dp_load_optim(pvlm_dp *dp, const char *const *paths, int npaths, pvlm_err *err) {
    int64_t t = 0;
    if (pvlm_ckpt_optim_load_range(dp->m, paths, npaths, dp->opt_off, dp->opt_off + dp->opt_n, dp->m1, dp->m2, &t, err))
        return -1;
    dp->adam_t = t;
    return 0;
}

json_t *pvlm_dp_state_to_json(const pvlm_dp *dp) {
    return json_pack("{s:I, s:I, s:I, s:I}", "step", (json_int_t)dp->step, "adam_t", (json_int_t)dp->adam_t, "n_skipped",
                     (json_int_t)dp->n_skipped, "nonfinite_run", (json_int_t)dp->nonfinite_run);
}

int pvlm_dp_state_from_json(pvlm_dp *dp, const json_t *j, pvlm_err *err) {
    json_int_t s, a, k, r;
    json_error_t je;
    if (json_unpack_ex((json_t *)j, &je, 0, "{s:I, s:I, s:I, s:I}", "step", &s, "adam_t", &a, "n_skipped", &k,
                       "nonfinite_run", &r))
        return pvlm_err_set(err, PVLM_EFORMAT, "dp state in state.json: %s", je.text);
    if (s < 0 || a < 0 || a > s || k < 0 || r < 0)
        return pvlm_err_set(err, PVLM_EFORMAT, "dp state in state.json: inconsistent counters");
    dp->step = s;
    dp->adam_t = a;
    dp->n_skipped = k;
    dp->nonfinite_run = r;
    return 0;
}
