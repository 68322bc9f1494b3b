/* test_dp_equivalence.c - mpi/dp on a tiny model: data parallelism and gradient accumulation give
 * the same training as one big batch; ZeRO-1 gives the same as plain data parallelism.
 *
 * Run under mpirun -np P (P = 1, 2, 3). The global batch of every step is G = 2P synthetic samples
 * (a deterministic function of step and sample index; image-text and text-only samples, padding,
 * one sample with an empty prefix). Configurations, each trained for N steps from the same init:
 *   ref     : MPI_COMM_SELF on rank 0, micro-batch G, no accumulation (one big batch)
 *   accum   : MPI_COMM_SELF on rank 0, micro-batch 2, G/2 accumulation steps
 *   dp      : all P ranks, micro-batch 2, overlap on, small buckets (many launched from the hook)
 *   dp_noov : all P ranks, no overlap, one big bucket
 *   zero1   : all P ranks, ZeRO-1
 * Parameters after N steps must agree with ref to rel 1e-6; losses per step too.
 * Also: an all-NaN step is skipped on every rank and counted; max_nonfinite aborts; the stop flag
 * raised on one rank is seen by all.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "harness.h"
#include "model/model.h"
#include "model/optim.h"
#include "mpi/comm.h"
#include "mpi/dp.h"

#define NSTEPS 3

static void tiny_config(pvlm_model_config *c) {
    pvlm_model_config_default(c);
    c->image_size = 8;
    c->patch_size = 4;
    c->d_model = 16;
    c->n_heads = 2;
    c->d_ff = 32;
    c->n_enc_layers = 1;
    c->n_dec_layers = 2;
    c->vocab_size = 40;
    c->max_prefix_len = 4;
    c->max_suffix_len = 6;
}

/* Sample g of step s into slot i of b. */
static void make_sample(pvlm_batch *b, int i, int64_t s, int64_t g, const pvlm_model_config *c) {
    pvlm_rng r;
    pvlm_rng_seed(&r, 77 + (uint64_t)s, (uint64_t)g);
    int S = b->S, Lp = b->Lp, Ls = b->Ls;
    int img = (g % 3) != 2;
    b->has_image[i] = (uint8_t)img;
    for (int k = 0; k < S * S * 3; k++) b->images[(size_t)i * S * S * 3 + k] = img ? (uint8_t)pvlm_rng_below(&r, 256) : 0;
    int pl = img ? (int)pvlm_rng_below(&r, (uint64_t)Lp + 1) : 1 + (int)pvlm_rng_below(&r, (uint64_t)Lp);
    if (g == 1) pl = 0; /* an image-text sample with an empty prefix */
    b->prefix_len[i] = pl;
    for (int k = 0; k < Lp; k++) b->prefix[i * Lp + k] = k < pl ? 3 + (int32_t)pvlm_rng_below(&r, (uint64_t)c->vocab_size - 3) : c->pad_id;
    int n = 1 + (int)pvlm_rng_below(&r, (uint64_t)Ls);
    b->suffix_len[i] = n;
    int32_t prev = c->bos_id;
    for (int k = 0; k < Ls; k++) {
        if (k < n) {
            int32_t tok = k == n - 1 ? c->eos_id : 3 + (int32_t)pvlm_rng_below(&r, (uint64_t)c->vocab_size - 3);
            b->dec_in[i * Ls + k] = prev;
            b->targets[i * Ls + k] = tok;
            prev = tok;
        } else {
            b->dec_in[i * Ls + k] = c->pad_id;
            b->targets[i * Ls + k] = PVLM_IGNORE;
        }
    }
    b->ctx_set[i] = 0;
    b->sample_id[i] = g;
}

typedef struct run_cfg {
    const char *name;
    int self;       /* 1: rank 0 alone on MPI_COMM_SELF */
    int micro, zero1, overlap;
    size_t bucket;
    int thread;     /* progress thread */
} run_cfg;

/* Train NSTEPS; params and per-step losses out (rank 0 of the run's communicator). */
static int train(const pvlm_comm *c, const run_cfg *rc, int G, float *params_out, double *loss_out) {
    pvlm_err err = {0};
    pvlm_model_config mc;
    tiny_config(&mc);
    pvlm_model m;
    if (pvlm_model_create(&m, &mc, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    pvlm_model_init_weights(&m, 42);
    pvlm_optim_config oc;
    pvlm_optim_config_default(&oc);
    oc.lr = 3e-3;
    oc.warmup_steps = 1;
    oc.total_steps = 10;
    oc.grad_clip = 0.5; /* active: exercises the global norm */
    /* Some gradients are exactly zero in real arithmetic (the key bias: softmax ignores a constant added
     * to every key) and float rounding noise (~1e-12) in practice, noise that differs between batch
     * layouts. AdamW with eps 1e-8 turns that noise into visible updates; eps 1e-4 keeps noise-level
     * gradients from moving parameters while real gradients (1e-3 and up) are updated as usual. */
    oc.eps = 1e-4;
    pvlm_dp_config dc;
    pvlm_dp_config_default(&dc);
    dc.zero1 = rc->zero1;
    dc.overlap = rc->overlap;
    dc.bucket_elems = rc->bucket;
    dc.progress_thread = rc->thread;
    pvlm_dp dp;
    CHECK_OK(pvlm_dp_init(&dp, c, &m, &oc, &dc, NULL, &err), &err);
    int per_rank = G / c->size, n_micro = per_rank / rc->micro;
    pvlm_batch *mb = calloc((size_t)n_micro, sizeof *mb);
    pvlm_batch **ptr = calloc((size_t)n_micro, sizeof *ptr);
    for (int k = 0; k < n_micro; k++) {
        pvlm_batch_alloc(&mb[k], rc->micro, mc.image_size, mc.max_prefix_len, mc.max_suffix_len, &err);
        ptr[k] = &mb[k];
    }
    int ret = 0;
    for (int64_t s = 0; s < NSTEPS; s++) {
        for (int k = 0; k < n_micro; k++)
            for (int i = 0; i < rc->micro; i++) {
                int64_t g = (int64_t)c->rank * per_rank + (int64_t)k * rc->micro + i;
                make_sample(&mb[k], i, s, g, &mc);
            }
        pvlm_dp_result r;
        if (pvlm_dp_step(&dp, ptr, n_micro, 0, &r, &err)) {
            fprintf(stderr, "%s: %s\n", rc->name, err.msg);
            ret = -1;
            break;
        }
        CHECK(!r.skipped && !r.stop);
        CHECK(r.nsamples == G);
        loss_out[s] = r.loss;
    }
    CHECK(dp.step == NSTEPS && dp.adam_t == NSTEPS);
    /* with overlap, the model's grad-ready hook must launch all but possibly the last buckets */
    if (rc->overlap && dp.red.nb > 2) CHECK_MSG(dp.red.hook_launches >= (int64_t)(dp.red.nb - 1) * NSTEPS,
                                                "%s: only %lld of %lld bucket launches overlapped backward", rc->name,
                                                (long long)dp.red.hook_launches, (long long)dp.red.launches);
    if (!rc->overlap) CHECK(dp.red.hook_launches == 0);
    memcpy(params_out, m.params, m.n_params * sizeof(float));
    for (int k = 0; k < n_micro; k++) pvlm_batch_free(&mb[k]);
    free(mb);
    free(ptr);
    pvlm_dp_free(&dp);
    pvlm_model_free(&m);
    return ret;
}

static const pvlm_model *g_probe; /* for naming the view of a differing parameter */

/* Parameters: the relative error of the whole parameter vector, ||p - ref||_2 / ||ref||_2, must be
 * <= 1e-6, and, to catch a wrong tensor hidden in a big vector, every tensor's
 * max |p - ref| / max |ref| must be <= 1e-5. Element-wise relative error is not used: float32 summation
 * order differs between batch layouts (a few ulp), and parameters that sit near zero (biases after 3
 * steps from 0) make ulp-level differences look large. */
static void compare(const char *name, const float *p, const float *ref, size_t n, const double *l, const double *lref) {
    const pvlm_model *m = g_probe;
    double worst = 0, d2 = 0, r2 = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)p[i] - (double)ref[i];
        d2 += d * d;
        r2 += (double)ref[i] * (double)ref[i];
    }
    for (int v = 0; v < m->n_views; v++) {
        const pvlm_view *w = &m->views[v];
        double dmax = 0, rmax = 0;
        for (size_t i = w->offset; i < w->offset + w->numel && i < n; i++) {
            double d = fabs((double)p[i] - (double)ref[i]);
            if (d > dmax) dmax = d;
            if (fabs((double)ref[i]) > rmax) rmax = fabs((double)ref[i]);
        }
        double rel = rmax > 0 ? dmax / rmax : dmax;
        if (rel > worst) worst = rel;
        if (rel > 1e-5) {
            bad++;
            fprintf(stderr, "  %s: %s differs: max abs diff %.3g, max |ref| %.3g\n", name, w->name, dmax, rmax);
        }
    }
    double rel2 = sqrt(d2 / r2);
    printf("%s: relative L2 difference %.3g, worst per-tensor relative max difference %.3g\n", name, rel2, worst);
    CHECK_MSG(rel2 <= 1e-6, "%s: parameters differ: relative L2 %.3g > 1e-6", name, rel2);
    CHECK_MSG(bad == 0, "%s: %d tensors differ beyond rel 1e-5 (worst %.3g)", name, bad, worst);
    for (int s = 0; s < NSTEPS; s++) CHECK_CLOSE(l[s], lref[s], 1e-6, 0);
}

int main(int argc, char **argv) {
    pvlm_err err = {0};
    pvlm_comm c;
    if (pvlm_comm_init(&c, &argc, &argv, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    pvlm_comm self = {.comm = MPI_COMM_SELF, .rank = 0, .size = 1};
    pvlm_model_config mc;
    tiny_config(&mc);
    pvlm_model probe;
    CHECK_OK(pvlm_model_create(&probe, &mc, &err), &err);
    size_t n = probe.n_params;
    g_probe = &probe;
    int G = 2 * c.size;
    float *ref = calloc(n, sizeof(float)), *p = calloc(n, sizeof(float));
    double lref[NSTEPS], l[NSTEPS];

    run_cfg ref_cfg = {"ref (1 rank, micro G)", 1, G, 0, 1, 0, 0};
    if (c.rank == 0) CHECK(train(&self, &ref_cfg, G, ref, lref) == 0);

    run_cfg accum = {"accum (1 rank, micro 2 x G/2)", 1, 2, 0, 1, 0, 0};
    if (c.rank == 0 && G / 2 > 1) {
        CHECK(train(&self, &accum, G, p, l) == 0);
        compare(accum.name, p, ref, n, l, lref);
    }
    run_cfg cfgs[] = {
        {"dp (P ranks, micro 2, overlap, 97-float buckets)", 0, 2, 0, 1, 97, 0},
        {"dp_noov (P ranks, no overlap, 1 bucket)", 0, 2, 0, 0, 1 << 24, 0},
        {"zero1 (P ranks, ZeRO-1, 131-float buckets)", 0, 2, 1, 1, 131, 0},
        {"zero1_accum (P ranks, ZeRO-1, micro 1 x 2)", 0, 1, 1, 1, 1000, 0},
        {"dp_thread (P ranks, progress thread, 97-float buckets)", 0, 2, 0, 1, 97, 1},
        {"zero1_thread (P ranks, ZeRO-1, progress thread)", 0, 2, 1, 1, 131, 1},
    };
    for (size_t k = 0; k < sizeof cfgs / sizeof *cfgs; k++) {
        CHECK(train(&c, &cfgs[k], G, p, l) == 0);
        if (c.rank == 0) compare(cfgs[k].name, p, ref, n, l, lref);
    }

    /* non-finite: a NaN pixel poisons every rank's loss -> skipped, counted, params unchanged */
    {
        pvlm_model m;
        pvlm_model_create(&m, &mc, &err);
        pvlm_model_init_weights(&m, 42);
        pvlm_optim_config oc;
        pvlm_optim_config_default(&oc);
        pvlm_dp_config dc;
        pvlm_dp_config_default(&dc);
        dc.max_nonfinite = 2;
        pvlm_dp dp;
        CHECK_OK(pvlm_dp_init(&dp, &c, &m, &oc, &dc, NULL, &err), &err);
        pvlm_batch b;
        pvlm_batch_alloc(&b, 2, mc.image_size, mc.max_prefix_len, mc.max_suffix_len, &err);
        for (int i = 0; i < 2; i++) make_sample(&b, i, 0, c.rank * 2 + i, &mc);
        pvlm_batch *bp = &b;
        float *before = malloc(m.n_params * sizeof(float));
        memcpy(before, m.params, m.n_params * sizeof(float));
        /* poison one parameter on the last rank only: its loss becomes NaN */
        float saved = m.params[0];
        pvlm_dp_result r;
        if (c.rank == c.size - 1) m.params[m.n_params / 2] = NAN;
        int rc = pvlm_dp_step(&dp, &bp, 1, c.rank == 0, &r, &err);
        CHECK(rc == 0);
        CHECK(r.skipped == 1 && dp.n_skipped == 1 && dp.adam_t == 0 && dp.step == 1);
        CHECK(r.stop == 1); /* raised on rank 0 only, agreed everywhere */
        if (c.rank == c.size - 1) m.params[m.n_params / 2] = before[m.n_params / 2];
        CHECK(memcmp(m.params, before, m.n_params * sizeof(float)) == 0);
        (void)saved;
        /* a healthy step resets the run counter */
        CHECK(pvlm_dp_step(&dp, &bp, 1, 0, &r, &err) == 0 && !r.skipped && dp.nonfinite_run == 0 && r.stop == 0);
        /* two poisoned steps in a row: the second returns an error on every rank */
        if (c.rank == c.size - 1) m.params[m.n_params / 2] = NAN;
        CHECK(pvlm_dp_step(&dp, &bp, 1, 0, &r, &err) == 0 && r.skipped);
        CHECK(pvlm_dp_step(&dp, &bp, 1, 0, &r, &err) == -1);
        CHECK(strstr(err.msg, "non-finite") != NULL);
        /* counters round-trip through JSON */
        json_t *js = pvlm_dp_state_to_json(&dp);
        pvlm_dp dp2;
        memset(&dp2, 0, sizeof dp2);
        CHECK_OK(pvlm_dp_state_from_json(&dp2, js, &err), &err);
        CHECK(dp2.step == dp.step && dp2.adam_t == dp.adam_t && dp2.n_skipped == 3 && dp2.nonfinite_run == 2);
        json_decref(js);
        free(before);
        pvlm_batch_free(&b);
        pvlm_dp_free(&dp);
        pvlm_model_free(&m);
    }
    free(ref);
    free(p);
    g_probe = NULL;
    pvlm_model_free(&probe);
    int fails = pvlm_test_failures, any = 0;
    MPI_Allreduce(&fails, &any, 1, MPI_INT, MPI_SUM, c.comm);
    pvlm_comm_finalize(&c);
    if (any && !fails) return 1;
    return pvlm_test_done("dp_equivalence");
}
