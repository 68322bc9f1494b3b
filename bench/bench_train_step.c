/* bench_train_step.c - training-step throughput of the pvlm model against PyTorch (docs/performance.md).
 *
 * One step = zero_grad + forward + backward + global-norm clip + AdamW over all parameters, on the bench
 * config (S=64, P=8, d=512, h=8, d_ff=2048, 6+6 layers, V=8192, Lp=16, Ls=48) and a synthetic batch of 32
 * (a quarter text-only, random prefix / suffix lengths). For each thread count it prints the median
 * step time over --steps timed steps (after --warmup), samples/s, model GFLOP/s from the analytic FLOP
 * count (pvlm_model_flops: 2*N*In*Out per linear forward, twice that backward, attention score and
 * context matmuls over the full Tq x Tk, the tied output projection; docs/model.md), the fraction of the
 * measured SGEMM peak (median of cblas_sgemm 2048^3), peak RSS, and the time split per layer type. With
 * --torch (default on) it runs bench/torch_step.py on the same batch (written to --tmp as safetensors) at
 * the same thread count and prints the ratio pvlm/PyTorch measured in the same run.
 * --precision bf16 runs pvlm in bf16 and fp32 (taking turns, in up to three rounds of warmup + timed steps
 * each), PyTorch in fp32 and under torch.autocast("cpu", bf16), all in the same run, and adds the measured
 * bf16 GEMM peak (model/matmul.h's bf16 path, 2048^3: bf16 inputs, fp32 accumulation, the same conversion
 * the model pays). The peaks are measured before and again after the steps (median of five products each),
 * and the shares are of the higher of the two. --recompute none|attention|block sets the activation
 * recomputation; the activation arena size is printed for each run. At 2 or more threads it also prints the
 * CPU balance before and after the steps (the same compute on every thread, slowest over fastest: on a VM
 * with uneven vCPUs every statically split parallel section waits for the slowest, docs/performance.md).
 * Run it as a user's node would: with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for this command
 * (`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE build/bench/bench_train_step ...`); it prints the kernel
 * in use and warns when the environment forces a slower one.
 *
 * Usage: bench_train_step [--threads N (0 = 1 and 2)] [--steps 5] [--warmup 1] [--batch 32] [--torch 1]
 *                         [--python /usr/bin/python3] [--script bench/torch_step.py] [--tmp /tmp]
 *                         [--sgemm-only 1]   (SGEMM peak only; run under different OPENBLAS_CORETYPE values)
 *                         [--precision fp32|bf16] [--recompute none|attention|block]
 *                         [--memory-table GiB]  (no timing: the largest batch per model and recompute mode)
 * --memory-table G plans memory without allocating it: for a ladder of model sizes (the bench config's
 * widths and depths scaled up) and each recompute mode, the activation arena per batch size
 * (pvlm_model_plan_activations, exact for the bench batch's shapes: full prefix, Ls suffix positions) plus
 * 16 bytes per parameter (fp32 weights, gradients, two AdamW moments) and, in bf16, 2 more (the kept bf16
 * weight copies), plus a fixed 64 MiB (libraries and the bf16 scratch: at batch 32 the peak RSS exceeded
 * the planned bytes by 12 MiB in fp32 and 51 MiB in bf16); it prints the largest batch that fits in G GiB.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <omp.h>

#include "core/args.h"
#include "core/fsutil.h"
#include "core/mem.h"
#include "core/rng.h"
#include "core/threads.h"
#include "core/timer.h"
#include "io/batch.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "model/optim.h"
#include "bench/bench_util.h"

/* How evenly the machine runs th threads: the same chain of dependent multiply-adds (about a millisecond) on
 * every thread at once, BAL_RUNS times; each run's slowest thread time over its fastest. A statically split
 * parallel section (a product's partition, an op's equal shares) lasts as long as its slowest thread, so where
 * the cores run unevenly (a VM's vCPUs beside busy neighbours) every such section of a training step waits about
 * that much longer than the same work on even cores. */
#define BAL_RUNS 50
#define BAL_MAXT 256
static void cpu_balance(int th) {
    if (th < 2 || th > BAL_MAXT) return;
    double sum = 0, worst = 1, t[BAL_MAXT];
    float out[BAL_MAXT];
    volatile float sink = 0; /* keeps the loops' results live */
    for (int r = 0; r < BAL_RUNS; r++) {
#pragma omp parallel num_threads(th)
        {
            double t0 = pvlm_now();
            float a = 1, b = 1, c = 1, d = 1;
            for (int i = 0; i < 500000; i++)
                a = a * 0.9999999f + 1e-7f, b = b * 0.9999999f + 2e-7f, c = c * 0.9999999f + 3e-7f,
                d = d * 0.9999999f + 4e-7f;
            out[omp_get_thread_num()] = a + b + c + d;
            t[omp_get_thread_num()] = pvlm_now() - t0;
        }
        double lo = t[0], hi = t[0];
        for (int i = 1; i < th; i++) lo = fmin(lo, t[i]), hi = fmax(hi, t[i]);
        sum += hi / lo, worst = fmax(worst, hi / lo), sink += out[0];
    }
    printf("[threads %d] CPU balance: the same work on every thread, the slowest took %.2fx the fastest's time "
           "(mean of %d runs, worst %.2fx); a statically split parallel section waits for the slowest\n",
           th, sum / BAL_RUNS, BAL_RUNS, worst);
}

static double sgemm_peak(int n, int reps, int threads, double *cpu_based) {
    float *a = pvlm_alloc(sizeof(float) * (size_t)n * n, NULL), *b = pvlm_alloc(sizeof(float) * (size_t)n * n, NULL);
    float *c = pvlm_alloc(sizeof(float) * (size_t)n * n, NULL);
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = (float)(i % 13) * 0.01f, b[i] = (float)(i % 7) * 0.01f;
    double t[16], tc[16];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    for (int r = 0; r < reps; r++) {
        double t0 = pvlm_now(), c0 = bench_cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        t[r] = pvlm_now() - t0, tc[r] = (bench_cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0) / threads;
    }
    pvlm_free(a), pvlm_free(b), pvlm_free(c);
    *cpu_based = 2.0 * n * (double)n * n / bench_median(tc, reps) / 1e9;
    return 2.0 * n * (double)n * n / bench_median(t, reps) / 1e9;
}

/* The bf16 product peak through the model's own entry point (median of reps, 2048^3). */
static double bf16_peak(int n, int reps, int threads, double *cpu_based) {
    pvlm_err err;
    pvlm_matmul *mm;
    if (pvlm_matmul_create(&mm, PVLM_PREC_BF16, &err)) return 0;
    float *a = pvlm_alloc(sizeof(float) * (size_t)n * n, NULL), *b = pvlm_alloc(sizeof(float) * (size_t)n * n, NULL);
    float *c = pvlm_alloc(sizeof(float) * (size_t)n * n, NULL);
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = (float)(i % 13) * 0.01f, b[i] = (float)(i % 7) * 0.01f;
    double t[16], tc[16];
    pvlm_matmul_gemm(mm, 0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    for (int r = 0; r < reps; r++) {
        double t0 = pvlm_now(), c0 = bench_cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
        pvlm_matmul_gemm(mm, 0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        t[r] = pvlm_now() - t0, tc[r] = (bench_cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0) / threads;
    }
    *cpu_based = 2.0 * n * (double)n * n / bench_median(tc, reps) / 1e9;
    int bad = pvlm_matmul_check(mm, &err);
    pvlm_free(a), pvlm_free(b), pvlm_free(c);
    pvlm_matmul_free(mm);
    return bad ? 0 : 2.0 * n * (double)n * n / bench_median(t, reps) / 1e9;
}

typedef struct run_result {
    double ts[16], tcs[16]; /* the timed steps so far: wall, CPU time per thread */
    int n;
    double tm[PVLM_TIME_N]; /* time by layer type, summed over the timed steps */
    double step, stepc, sps, gf; /* median wall step, by CPU time, samples/s, GFLOP/s (wall): run_finish */
    double act_bytes;            /* the activation arena this precision lays out for the batch */
} run_result;

/* warmup + steps training steps (zero_grad, forward, backward, clip, AdamW) at the model's precision; the
 * timed ones are added to r. */
static int run_steps(pvlm_model *m, const pvlm_batch *b, float *m1, float *m2, int warmup, int steps, int th,
                     int64_t *stepno, run_result *r) {
    pvlm_err err;
    pvlm_optim_config oc;
    pvlm_optim_config_default(&oc);
    double ntg = (double)pvlm_batch_count_targets(b), tm[PVLM_TIME_N];
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) pvlm_model_times_reset(m);
        double t0 = pvlm_now(), c0 = bench_cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
        float loss;
        pvlm_model_zero_grad(m);
        if (pvlm_model_forward(m, b, ntg, &loss, NULL, NULL, &err) || pvlm_model_backward(m, b, NULL, NULL, NULL, &err)) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return -1;
        }
        double gn = sqrt(pvlm_optim_sqnorm(m->grads, m->n_params));
        (*stepno)++;
        pvlm_optim_adamw(m, m->params, m->grads, m1, m2, 0, m->n_params, NULL, 1e-5, pvlm_optim_clip_scale(gn, 1.0),
                         *stepno, &oc);
        if (s >= warmup && r->n < 16)
            r->ts[r->n] = pvlm_now() - t0,
            r->tcs[r->n++] = (bench_cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0) / th;
    }
    pvlm_model_times(m, tm);
    for (int i = 0; i < PVLM_TIME_N; i++) r->tm[i] += tm[i];
    return 0;
}

static void run_finish(run_result *r, pvlm_model *m, const pvlm_batch *b, pvlm_precision prec) {
    r->step = bench_median(r->ts, r->n), r->stepc = bench_median(r->tcs, r->n);
    r->sps = b->B / r->step, r->gf = pvlm_model_flops(m, b) / r->step / 1e9;
    size_t bytes = 0;
    pvlm_err err;
    if (!pvlm_model_plan_activations(m, b->B, pvlm_model_enc_len(&m->cfg), b->Ls, prec, &bytes, &err))
        r->act_bytes = (double)bytes;
}

/* Runs bench/torch_step.py (autocast: "" or "bf16"); returns its samples/s (0 on failure). */
static double run_torch(const char *python, const char *script, const char *bpath, int th, int steps, int warmup,
                        const char *autocast, double *cpu_sps) {
    char cmdline[9000];
    snprintf(cmdline, sizeof cmdline, "OMP_NUM_THREADS=%d '%s' '%s' --batch '%s' --threads %d --steps %d --warmup %d%s%s",
             th, python, script, bpath, th, steps, warmup, *autocast ? " --autocast " : "", autocast);
    FILE *f = popen(cmdline, "r");
    double tsps = 0;
    char line[1024];
    *cpu_sps = 0;
    while (f && fgets(line, sizeof line, f)) {
        fputs(line, stdout);
        char *p = strstr(line, "samples_per_s=");
        if (p) tsps = atof(p + 14);
        p = strstr(line, "cpu_samples_per_s=");
        if (p) *cpu_sps = atof(p + 18);
    }
    int rc = f ? pclose(f) : -1;
    if (rc != 0) printf("[threads %d] PyTorch%s peer failed (status %d)\n", th, *autocast ? " bf16" : "", rc);
    return rc == 0 ? tsps : 0;
}

static void make_batch(pvlm_batch *b, const pvlm_model_config *c) {
    pvlm_rng r;
    pvlm_rng_seed(&r, 2024, 1);
    pvlm_batch_clear(b, c->pad_id);
    for (int i = 0; i < b->B; i++) {
        int text_only = i % 4 == 3;
        b->has_image[i] = (uint8_t)!text_only;
        if (!text_only)
            for (size_t k = 0; k < (size_t)b->S * b->S * 3; k++) b->images[(size_t)i * b->S * b->S * 3 + k] = (uint8_t)pvlm_rng_below(&r, 256);
        int pl = 4 + (int)pvlm_rng_below(&r, (uint64_t)b->Lp - 3);
        b->prefix_len[i] = pl;
        for (int j = 0; j < pl; j++) b->prefix[(size_t)i * b->Lp + j] = 3 + (int)pvlm_rng_below(&r, (uint64_t)c->vocab_size - 3);
        int n = 10 + (int)pvlm_rng_below(&r, (uint64_t)b->Ls - 9);
        b->suffix_len[i] = n;
        int32_t prev = c->bos_id;
        for (int j = 0; j < n; j++) {
            int32_t t = j == n - 1 ? c->eos_id : 3 + (int)pvlm_rng_below(&r, (uint64_t)c->vocab_size - 3);
            b->dec_in[(size_t)i * b->Ls + j] = prev;
            b->targets[(size_t)i * b->Ls + j] = t;
            prev = t;
        }
    }
}

static int write_batch(const pvlm_batch *b, const pvlm_model_config *c, const char *path) {
    pvlm_err err;
    pvlm_st_writer w;
    if (pvlm_st_writer_init(&w, &err)) return -1;
    int64_t s4[4] = {b->B, b->S, b->S, 3}, s1[1] = {b->B}, sp[2] = {b->B, b->Lp}, ss[2] = {b->B, b->Ls};
    pvlm_st_writer_add(&w, "images", PVLM_ST_U8, 4, s4, b->images, &err);
    pvlm_st_writer_add(&w, "has_image", PVLM_ST_U8, 1, s1, b->has_image, &err);
    pvlm_st_writer_add(&w, "prefix", PVLM_ST_I32, 2, sp, b->prefix, &err);
    pvlm_st_writer_add(&w, "prefix_len", PVLM_ST_I32, 1, s1, b->prefix_len, &err);
    pvlm_st_writer_add(&w, "dec_in", PVLM_ST_I32, 2, ss, b->dec_in, &err);
    pvlm_st_writer_add(&w, "targets", PVLM_ST_I32, 2, ss, b->targets, &err);
    pvlm_st_writer_add(&w, "ctx_set", PVLM_ST_I32, 1, s1, b->ctx_set, &err);
    json_t *j = pvlm_model_config_to_json(c);
    char *txt = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    pvlm_st_writer_meta(&w, "pvlm_config", txt, &err);
    free(txt);
    json_decref(j);
    int rc = pvlm_st_writer_write(&w, path, &err);
    if (rc) fprintf(stderr, "bench: %s\n", err.msg);
    pvlm_st_writer_free(&w);
    return rc;
}

/* Largest batch whose planned bytes fit `limit` (0 if none), by bisection over the exact plan. */
static int largest_batch(pvlm_model *m, const pvlm_model_config *c, pvlm_precision prec, double fixed, double limit,
                         double *per_sample) {
    pvlm_err err;
    int T = pvlm_model_enc_len(c), Ls = c->max_suffix_len, lo = 0, hi = 1 << 16;
    size_t b1, b2;
    if (pvlm_model_plan_activations(m, 1, T, Ls, prec, &b1, &err) ||
        pvlm_model_plan_activations(m, 2, T, Ls, prec, &b2, &err))
        return 0;
    *per_sample = (double)b2 - (double)b1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        size_t bytes;
        if (pvlm_model_plan_activations(m, mid, T, Ls, prec, &bytes, &err)) return 0;
        if (fixed + (double)bytes <= limit) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

static int memory_table(double gib, double overhead_mib) {
    static const struct {
        int d, layers, heads;
    } ladder[] = {{512, 6, 8}, {768, 12, 12}, {1024, 12, 16}, {1024, 24, 16}, {1152, 24, 16}, {1280, 24, 16}};
    static const char *modes[] = {"none", "attention", "block"};
    double limit = gib * 1073741824.0, mib = 1048576.0;
    printf("memory plan for %.0f GiB per rank (bench batch shapes; fixed overhead %.0f MiB)\n", gib,
           overhead_mib);
    printf("| d | layers | params | fp32 state | %s | %s | %s |\n",
           "none: MiB/sample fp32 / bf16, max batch fp32 / bf16", "attention", "block");
    for (size_t i = 0; i < sizeof ladder / sizeof *ladder; i++) {
        pvlm_model_config c;
        pvlm_model_config_default(&c);
        c.d_model = ladder[i].d, c.n_heads = ladder[i].heads, c.d_ff = 4 * ladder[i].d;
        c.n_enc_layers = c.n_dec_layers = ladder[i].layers;
        pvlm_model m;
        pvlm_err err;
        if (pvlm_model_layout(&m, &c, &err)) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return 1;
        }
        double state = 16.0 * (double)m.n_params, fixed = state + overhead_mib * mib;
        printf("| %d | %d+%d | %.0fM | %.0f MiB |", c.d_model, c.n_enc_layers, c.n_dec_layers, m.n_params / 1e6,
               state / mib);
        for (int k = 0; k < 3; k++) {
            double per = 0, per16 = 0;
            if (pvlm_model_set_recompute(&m, modes[k], &err)) return 1;
            int b32 = largest_batch(&m, &c, PVLM_PREC_FP32, fixed, limit, &per);
            int b16 = largest_batch(&m, &c, PVLM_PREC_BF16, fixed + 2.0 * (double)m.n_params, limit, &per16);
            printf(" %.1f / %.1f, **%d** / %d |", per / mib, per16 / mib, b32, b16);
        }
        printf("\n");
        pvlm_model_free(&m);
    }
    return 0;
}

/* --sgemm-only: the SGEMM peak at 1 and/or 2 threads with the kernel set in use. */
static int sgemm_only_report(int threads) {
    const char *ct = getenv("OPENBLAS_CORETYPE");
    for (int th = 1; th <= 2; th++) {
        if (threads > 0 && th != threads) continue;
        pvlm_threads_set(th);
        double pc, pk = sgemm_peak(2048, 5, th, &pc);
        printf("SGEMM 2048^3 threads %d kernel %s (OPENBLAS_CORETYPE=%s): %.1f GFLOP/s wall, %.1f by CPU time\n", th,
               openblas_get_corename(), ct ? ct : "unset", pk, pc);
    }
    return 0;
}

/* What one benchmark run holds: the model, its batch, the AdamW moments and the settings. */
typedef struct bench {
    pvlm_model m;
    pvlm_model_config c;
    pvlm_batch b;
    float *m1, *m2;
    int steps, warmup, batch, torch, bf16;
    const char *precision, *python, *script;
    char bpath[4096];
} bench;

/* The three result lines of one precision at one thread count (wall, CPU time, per layer type). */
static void print_run(bench *x, int th, const char *pn, const run_result *r, double pk, double pkc) {
    int steps = r->n;
    printf("[threads %d] pvlm %s: step %.3f s (median of %d), %.2f samples/s, %.1f GFLOP/s = %.0f%% of the %s "
           "GEMM peak, activations %.0f MiB, peak RSS %.0f MiB\n",
           th, pn, r->step, steps, r->sps, r->gf, 100.0 * r->gf / pk, pn, r->act_bytes / 1048576.0,
           pvlm_peak_rss() / 1048576.0);
    double gfc = pvlm_model_flops(&x->m, &x->b) / r->stepc / 1e9;
    printf("[threads %d] pvlm %s by CPU time: step %.3f s, %.2f samples/s, %.1f GFLOP/s = %.0f%% of the %s GEMM "
           "peak (CPU time)\n", th, pn, r->stepc, x->batch / r->stepc, gfc, 100.0 * gfc / pkc, pn);
    const double *tm = r->tm;
    double tot = tm[0] + tm[1] + tm[2] + tm[3], sum = 0; /* the rest: mean step less the mean layer times */
    for (int i = 0; i < r->n; i++) sum += r->ts[i];
    printf("[threads %d] pvlm %s time per step by layer type: stem %.3f s, encoder %.3f s (%.3f/layer), decoder "
           "%.3f s (%.3f/layer), output+loss %.3f s, optimizer+rest %.3f s\n",
           th, pn, tm[0] / steps, tm[1] / steps, tm[1] / steps / x->c.n_enc_layers, tm[2] / steps,
           tm[2] / steps / x->c.n_dec_layers, tm[3] / steps, (sum - tot) / steps);
}

/* The PyTorch peers at this thread count, as ratios to pvlm's runs r (r[0] requested precision, r[1] fp32). */
static void torch_ratios(bench *x, int th, const run_result *r) {
    double c32, c16 = 0, t32 = run_torch(x->python, x->script, x->bpath, th, x->steps, x->warmup, "", &c32);
    double t16 = x->bf16 ? run_torch(x->python, x->script, x->bpath, th, x->steps, x->warmup, "bf16", &c16) : 0;
    const run_result *r32 = &r[x->bf16 ? 1 : 0];
    if (t32 > 0)
        printf("[threads %d] ratio pvlm fp32 / PyTorch fp32 samples/s: %.2fx wall, %.2fx by CPU time\n", th,
               r32->sps / t32, c32 > 0 ? x->batch / r32->stepc / c32 : 0.0);
    if (t16 > 0)
        printf("[threads %d] ratio pvlm bf16 / PyTorch bf16 autocast samples/s: %.2fx wall, %.2fx by CPU time\n", th,
               r[0].sps / t16, c16 > 0 ? x->batch / r[0].stepc / c16 : 0.0);
}

/* Peaks, pvlm in the requested precision (and fp32 beside bf16) and the PyTorch peers at th threads. */
static int bench_threads(bench *x, int th, int64_t *stepno) {
    pvlm_err err;
    double peak_cpu, peak = sgemm_peak(2048, 5, th, &peak_cpu), peak16_cpu = 0;
    double peak16 = x->bf16 ? bf16_peak(2048, 5, th, &peak16_cpu) : 0;
    printf("\n[threads %d] SGEMM peak (2048^3, median of 5): %.1f GFLOP/s wall, %.1f GFLOP/s by CPU time\n", th, peak,
           peak_cpu);
    cpu_balance(th);
    if (x->bf16)
        printf("[threads %d] bf16 GEMM peak (2048^3 through model/matmul, median of 5): %.1f GFLOP/s wall, %.1f "
               "GFLOP/s by CPU time\n", th, peak16, peak16_cpu);
    /* [0] = the requested precision, [1] = fp32 when that was bf16. fp32 and bf16 take turns, in up to three
     * rounds of warmup + a share of the timed steps each: a slow spell of the machine (a VM's neighbours)
     * then falls on both, not on whichever ran during it. Each switch rebuilds the bf16 context (primitives,
     * weight copies), which the round's warmup absorbs. */
    run_result r[2];
    memset(r, 0, sizeof r);
    int rounds = x->bf16 ? (x->steps < 3 ? x->steps : 3) : 1;
    for (int k = 0; k < rounds; k++) {
        int n = x->steps / rounds + (k < x->steps % rounds);
        for (int q = 0; q < 1 + x->bf16; q++) {
            int p = x->bf16 - q; /* fp32 first: its arena is the larger, which bf16 then reuses */
            if (x->bf16 && pvlm_model_set_precision(&x->m, p ? PVLM_PREC_FP32 : PVLM_PREC_BF16, &err)) {
                fprintf(stderr, "bench: %s\n", err.msg);
                return -1;
            }
            if (run_steps(&x->m, &x->b, x->m1, x->m2, x->warmup, n, th, stepno, &r[p])) return -1;
        }
    }
    /* The peaks again: five products in a few seconds sample the machine's speed of that moment, which moves
     * on a shared VM, and the first bf16 products of a process can pay one-time costs. Either only lowers a
     * measured peak, so the shares below are of the higher of the two medians, before and after the steps:
     * the machine's speed, and shares that err low. */
    double p2c, p2 = sgemm_peak(2048, 5, th, &p2c), p216c = 0;
    double p216 = x->bf16 ? bf16_peak(2048, 5, th, &p216c) : 0;
    cpu_balance(th);
    printf("[threads %d] GEMM peaks again after the steps: SGEMM %.1f", th, p2);
    if (x->bf16) printf(", bf16 %.1f", p216);
    peak = fmax(peak, p2), peak_cpu = fmax(peak_cpu, p2c);
    peak16 = fmax(peak16, p216), peak16_cpu = fmax(peak16_cpu, p216c);
    printf(" GFLOP/s wall; the shares below are of the higher of the two medians, before and after: SGEMM %.1f",
           peak);
    if (x->bf16) printf(", bf16 %.1f", peak16);
    printf(" GFLOP/s\n");
    for (int p = 0; p < 1 + x->bf16; p++) {
        const char *pn = p == 0 ? x->precision : "fp32";
        int is16 = !strcmp(pn, "bf16");
        run_finish(&r[p], &x->m, &x->b, is16 ? PVLM_PREC_BF16 : PVLM_PREC_FP32);
        print_run(x, th, pn, &r[p], is16 ? peak16 : peak, is16 ? peak16_cpu : peak_cpu);
    }
    if (x->bf16) {
        pvlm_model_set_precision(&x->m, PVLM_PREC_BF16, &err);
        printf("[threads %d] pvlm bf16 / pvlm fp32: %.2fx wall, %.2fx by CPU time\n", th, r[0].sps / r[1].sps,
               r[1].stepc / r[0].stepc);
    }
    if (x->torch) torch_ratios(x, th, r);
    return 0;
}

/* The bench model, its batch (written for the PyTorch peer) and the moments; prints the configuration. */
static int bench_setup(bench *x, const char *tmp, const char *recompute, pvlm_err *err) {
    pvlm_model_config_default(&x->c);
    if (pvlm_model_create(&x->m, &x->c, err)) return -1;
    pvlm_model_init_weights(&x->m, 1);
    const pvlm_model_config *c = &x->c;
    if (pvlm_batch_alloc(&x->b, x->batch, c->image_size, c->max_prefix_len, c->max_suffix_len, err)) return -1;
    make_batch(&x->b, c);
    if (pvlm_path_join(x->bpath, sizeof x->bpath, tmp, "pvlm_bench_batch.safetensors", err)) return -1;
    if (x->torch && write_batch(&x->b, c, x->bpath)) return pvlm_err_set(err, PVLM_EIO, "cannot write %s", x->bpath);
    x->m1 = pvlm_alloc(sizeof(float) * x->m.n_params, err);
    x->m2 = pvlm_alloc(sizeof(float) * x->m.n_params, err);
    if (!x->m1 || !x->m2) return -1;
    const char *core = getenv("OPENBLAS_CORETYPE");
    printf("config: S=%d P=%d d=%d h=%d d_ff=%d layers=%d+%d V=%d Lp=%d Ls=%d batch=%d params=%zu (%.1fM)\n", c->image_size,
           c->patch_size, c->d_model, c->n_heads, c->d_ff, c->n_enc_layers, c->n_dec_layers, c->vocab_size,
           c->max_prefix_len, c->max_suffix_len, x->batch, x->m.n_params, x->m.n_params / 1e6);
    printf("analytic FLOPs per step (fwd+bwd): %.1f GFLOP; targets %.0f\n", pvlm_model_flops(&x->m, &x->b) / 1e9,
           (double)pvlm_batch_count_targets(&x->b));
    printf("OpenBLAS: %s; kernel core %s; OPENBLAS_CORETYPE=%s\n", openblas_get_config(), openblas_get_corename(),
           core ? core : "(unset)");
    char warn[400];
    if (pvlm_blas_kernel_check(warn, sizeof warn)) printf("WARNING: %s\n", warn);
    if (pvlm_model_set_recompute(&x->m, recompute, err)) return -1;
    if (x->bf16 && pvlm_model_set_precision(&x->m, PVLM_PREC_BF16, err)) return -1;
    printf("precision %s%s, recompute %s\n", x->precision, x->bf16 ? " (and fp32 for comparison)" : "", recompute);
    if (pvlm_matmul_emulated(x->m.mm))
        printf("WARNING: bf16 is EMULATED (PVLM_BF16_EMULATE: fp32 products on bf16 operands): its timings and its "
               "\"bf16 peak\" are not bf16 hardware's\n");
    return 0;
}

int main(int argc, char **argv) {
    double mem_table = 0;
    int threads = 0, sgemm_only = 0;
    const char *tmp = "/tmp", *recompute = "none";
    bench x;
    memset(&x, 0, sizeof x);
    x.steps = 5, x.warmup = 1, x.batch = 32, x.torch = 1;
    x.python = "/usr/bin/python3", x.script = "bench/torch_step.py", x.precision = "fp32";
    pvlm_opt opts[] = {
        {"threads", PVLM_ARG_INT, &threads, "thread count (0 = measure 1 and 2)", NULL, 0, 1024, 0},
        {"steps", PVLM_ARG_INT, &x.steps, "timed steps per measurement (median reported)", NULL, 1, 15, 0},
        {"warmup", PVLM_ARG_INT, &x.warmup, "untimed steps first", NULL, 0, 100, 0},
        {"batch", PVLM_ARG_INT, &x.batch, "batch size", NULL, 1, 4096, 0},
        {"torch", PVLM_ARG_INT, &x.torch, "also run the PyTorch peer (1/0)", NULL, 0, 1, 0},
        {"python", PVLM_ARG_STR, &x.python, "python with torch", NULL, 0, 0, 0},
        {"script", PVLM_ARG_STR, &x.script, "path of bench/torch_step.py", NULL, 0, 0, 0},
        {"tmp", PVLM_ARG_STR, &tmp, "folder for the shared batch file", NULL, 0, 0, 0},
        PVLM_PRECISION_OPT(&x.precision),
        PVLM_RECOMPUTE_OPT(&recompute),
        {"memory-table", PVLM_ARG_DOUBLE, &mem_table,
         "only print the largest batch per model and recompute mode that fits this many GiB (no timing)", NULL, 0, 1e6,
         0},
        {"sgemm-only", PVLM_ARG_INT, &sgemm_only, "only measure the SGEMM peak (1/0), e.g. under OPENBLAS_CORETYPE",
         NULL, 0, 1, 0},
    };
    pvlm_cmd cmd = {"bench_train_step", "pvlm training step vs PyTorch", "", opts, (int)(sizeof opts / sizeof *opts), 0, 0};
    int npos = 0;
    int pr = pvlm_args_parse(&cmd, argc, argv, NULL, &npos);
    if (pr == PVLM_ARGS_HELP) return 0;
    if (pr != PVLM_ARGS_OK) return 2;
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines even when redirected */
    /* as every MPI command does (pvlm_comm_init): oneDNN mallocs its packing buffers on every product, and
     * before glibc's dynamic mmap threshold had grown past them (the first bf16 peak of a process) each call
     * faulted their pages in again: 2048^3 in bf16 measured ~340 instead of ~450 GFLOP/s at 1 thread */
    pvlm_mem_keep_heap();

    if (mem_table > 0) return memory_table(mem_table, 64.0); /* measured at batch 32: 12 MiB fp32, 51 bf16 */
    if (sgemm_only) return sgemm_only_report(threads);
    x.bf16 = !strcmp(x.precision, "bf16");
    pvlm_err err;
    int rc = bench_setup(&x, tmp, recompute, &err) ? 1 : 0;
    if (rc) fprintf(stderr, "bench: %s\n", err.msg);
    int tlist[2] = {1, 2}, nt = threads > 0 ? 1 : 2;
    if (threads > 0) tlist[0] = threads;
    int64_t stepno = 0;
    for (int ti = 0; rc == 0 && ti < nt; ti++)
        if (bench_threads(&x, pvlm_threads_set(tlist[ti]), &stepno)) rc = 1;
    pvlm_free(x.m1), pvlm_free(x.m2);
    pvlm_batch_free(&x.b);
    if (x.m.priv) pvlm_model_free(&x.m);
    return rc;
}
