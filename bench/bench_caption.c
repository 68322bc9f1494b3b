/* bench_caption.c - caption generation throughput on the bench model.
 *
 * Model: the issue-4 bench config (S=64, P=8, d=512, h=8, d_ff=2048, 6+6 layers, V=8192, Lp=16,
 * Ls=48), randomly initialised (throughput does not depend on the weights except through the
 * generated length, so every caption is decoded to the full --max-len: eos is never emitted because
 * min_len = max_len). Images are random pixels; the prefix is 3 prompt tokens ("a picture of").
 * Reports images/s for greedy and beam search (median of --reps runs) at the current thread count
 * (PVLM_THREADS / OMP_NUM_THREADS; one process), by wall time and by process CPU time per thread.
 * --ckpt FILE decodes with a trained checkpoint's model.safetensors (its config and weights) instead of
 * random weights, and lets captions end at eos (--max-len at most the model's max_suffix_len).
 * --precision bf16 decodes every batch in fp32 and then in bf16 (model/matmul.h) and reports both rates
 * and how many of the bf16 captions differ from the fp32 ones (and where the first differs on average).
 *
 * usage: bench_caption [--batch 32] [--max-len 20] [--reps 3] [--beams 1,3] [--ckpt PATH]
 *                      [--precision fp32|bf16]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/mem.h"
#include "core/rng.h"
#include "core/threads.h"
#include "core/timer.h"
#include "model/checkpoint.h"
#include "model/decode.h"
#include "model/model.h"
#include "bench/bench_util.h"

/* Median wall and CPU-per-thread seconds of reps decodes of b into ids / len; -1 on a decode error. */
static int timed_decode(pvlm_model *m, const pvlm_batch *b, const pvlm_decode_config *dc, int reps, int threads,
                        int32_t *ids, int32_t *len, double *wall, double *cpu) {
    pvlm_err err;
    double t[16], tc[16];
    int n = reps < 16 ? reps : 16;
    for (int r = 0; r < n; r++) {
        double t0 = pvlm_now(), c0 = bench_cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
        if (pvlm_decode(m, b, dc, ids, len, NULL, &err)) {
            fprintf(stderr, "bench_caption: %s\n", err.msg);
            return -1;
        }
        t[r] = pvlm_now() - t0;
        tc[r] = (bench_cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0) / threads;
    }
    qsort(t, (size_t)n, sizeof t[0], bench_cmp_double);
    qsort(tc, (size_t)n, sizeof tc[0], bench_cmp_double);
    *wall = t[n / 2], *cpu = tc[n / 2];
    return 0;
}

/* bf16 captions against fp32 ones: how many differ, and the mean position (0-based) of the first difference. */
static void compare_captions(const int32_t *a, const int32_t *alen, const int32_t *b, const int32_t *blen, int B,
                             int max_len, int beam) {
    int differ = 0;
    double first = 0;
    for (int r = 0; r < B; r++) {
        int n = alen[r] < blen[r] ? alen[r] : blen[r], j = 0;
        while (j < n && a[(size_t)r * max_len + j] == b[(size_t)r * max_len + j]) j++;
        if (j < n || alen[r] != blen[r]) differ++, first += j;
    }
    printf("  beam %d: %d of %d bf16 captions differ from fp32", beam, differ, B);
    if (differ) printf(" (first differing token at position %.1f on average)", first / differ);
    printf("\n");
}

int main(int argc, char **argv) {
    int B = 32, max_len = 20, reps = 3, beams[8] = {1, 3}, nb = 2;
    const char *ckpt = NULL, *precision = "fp32";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--batch")) B = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-len")) max_len = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--ckpt")) ckpt = argv[i + 1];
        else if (!strcmp(argv[i], "--precision")) precision = argv[i + 1];
        else if (!strcmp(argv[i], "--beams")) {
            nb = 0;
            for (char *t = strtok(argv[i + 1], ","); t && nb < 8; t = strtok(NULL, ",")) beams[nb++] = atoi(t);
        } else {
            fprintf(stderr, "bench_caption: unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    pvlm_mem_keep_heap(); /* as `pvlm caption` does (pvlm_comm_init): oneDNN's per-call buffers stay in the heap */
    int threads = pvlm_threads_set(pvlm_threads_resolve(0));
    pvlm_err err;
    pvlm_model m;
    pvlm_precision prec;
    if (pvlm_precision_parse(precision, &prec, &err) || (ckpt ? pvlm_model_load(&m, ckpt, &err) : 0)) {
        fprintf(stderr, "bench_caption: %s\n", err.msg);
        return 1;
    }
    pvlm_model_config c;
    if (ckpt) c = m.cfg;
    else pvlm_model_config_default(&c);
    if (!ckpt && pvlm_model_create(&m, &c, &err)) {
        fprintf(stderr, "bench_caption: %s\n", err.msg);
        return 1;
    }
    if (!ckpt) pvlm_model_init_weights(&m, 1);
    pvlm_batch b;
    if (pvlm_batch_alloc(&b, B, c.image_size, c.max_prefix_len, c.max_suffix_len, &err)) return 1;
    pvlm_batch_clear(&b, c.pad_id);
    pvlm_rng rng;
    pvlm_rng_seed(&rng, 7, 0);
    for (size_t i = 0; i < (size_t)B * c.image_size * c.image_size * 3; i++) b.images[i] = (uint8_t)pvlm_rng_u32(&rng);
    for (int r = 0; r < B; r++) {
        b.has_image[r] = 1;
        b.prefix_len[r] = 3;
        for (int j = 0; j < 3; j++) b.prefix[r * c.max_prefix_len + j] = 10 + j;
    }
    size_t nid = (size_t)B * (size_t)max_len;
    int32_t *ids = malloc(sizeof(int32_t) * 2 * nid), *len = malloc(sizeof(int32_t) * 2 * (size_t)B);
    printf("bench_caption: %s (%zu parameters), batch %d, %d new tokens per caption, %d thread(s)\n",
           ckpt ? ckpt : "bench model, random weights", m.n_params, B, max_len, threads);
    for (int k = 0; k < nb; k++) {
        pvlm_decode_config dc;
        pvlm_decode_config_default(&dc, &c);
        dc.beam_size = beams[k], dc.max_len = max_len, dc.min_len = ckpt ? 0 : max_len; /* trained: ends at eos */
        for (int pi = 0; pi <= (int)prec; pi++) { /* fp32, then bf16 when asked */
            double med, medc;
            if (pvlm_model_set_precision(&m, (pvlm_precision)pi, &err)) {
                fprintf(stderr, "bench_caption: %s\n", err.msg);
                return 1;
            }
            if (timed_decode(&m, &b, &dc, reps, threads, ids + pi * nid, len + pi * B, &med, &medc)) return 1;
            printf("  beam %d %s%s: %.1f images/s wall, %.1f images/s by CPU time / threads (median of %d; %.3f s "
                   "wall per batch of %d)\n",
                   beams[k], pvlm_precision_name((pvlm_precision)pi),
                   pvlm_matmul_emulated(m.mm) ? " EMULATED (PVLM_BF16_EMULATE: not bf16 hardware's speed)" : "",
                   B / med, B / medc, reps < 16 ? reps : 16, med, B);
        }
        if (prec == PVLM_PREC_BF16) compare_captions(ids, len, ids + nid, len + B, B, max_len, beams[k]);
    }
    free(ids), free(len);
    pvlm_batch_free(&b);
    pvlm_model_free(&m);
    return 0;
}
