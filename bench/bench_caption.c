/* bench_caption.c - caption generation throughput on the bench model.
 *
 * Model: the issue-4 bench config (S=64, P=8, d=512, h=8, d_ff=2048, 6+6 layers, V=8192, Lp=16,
 * Ls=48), randomly initialised (throughput does not depend on the weights except through the
 * generated length, so every caption is decoded to the full --max-len: eos is never emitted because
 * min_len = max_len). Images are random pixels; the prefix is 3 prompt tokens ("a picture of").
 * Reports images/s for greedy and beam search (median of --reps runs) at the current thread count
 * (PVLM_THREADS / OMP_NUM_THREADS; one process), by wall time and by process CPU time per thread.
 *
 * usage: bench_caption [--batch 32] [--max-len 20] [--reps 3] [--beams 1,3]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rng.h"
#include "core/threads.h"
#include "core/timer.h"
#include "model/decode.h"
#include "model/model.h"
#include "bench/bench_util.h"

int main(int argc, char **argv) {
    int B = 32, max_len = 20, reps = 3, beams[8] = {1, 3}, nb = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--batch")) B = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-len")) max_len = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--beams")) {
            nb = 0;
            for (char *t = strtok(argv[i + 1], ","); t && nb < 8; t = strtok(NULL, ",")) beams[nb++] = atoi(t);
        } else {
            fprintf(stderr, "bench_caption: unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    int threads = pvlm_threads_set(pvlm_threads_resolve(0));
    pvlm_err err;
    pvlm_model_config c;
    pvlm_model_config_default(&c);
    pvlm_model m;
    if (pvlm_model_create(&m, &c, &err)) {
        fprintf(stderr, "bench_caption: %s\n", err.msg);
        return 1;
    }
    pvlm_model_init_weights(&m, 1);
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
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)B * (size_t)max_len), *len = malloc(sizeof(int32_t) * (size_t)B);
    printf("bench_caption: bench model (%zu parameters), batch %d, %d new tokens per caption, %d thread(s)\n",
           m.n_params, B, max_len, threads);
    for (int k = 0; k < nb; k++) {
        pvlm_decode_config dc;
        pvlm_decode_config_default(&dc, &c);
        dc.beam_size = beams[k], dc.max_len = max_len, dc.min_len = max_len;
        double t[16], tc[16];
        for (int r = 0; r < reps && r < 16; r++) {
            double t0 = pvlm_now(), c0 = bench_cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
            if (pvlm_decode(&m, &b, &dc, ids, len, NULL, &err)) {
                fprintf(stderr, "bench_caption: %s\n", err.msg);
                return 1;
            }
            t[r] = pvlm_now() - t0;
            tc[r] = (bench_cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0) / threads;
        }
        int n = reps < 16 ? reps : 16;
        qsort(t, (size_t)n, sizeof t[0], bench_cmp_double);
        qsort(tc, (size_t)n, sizeof tc[0], bench_cmp_double);
        double med = t[n / 2], medc = tc[n / 2];
        printf("  beam %d: %.1f images/s wall, %.1f images/s by CPU time / threads (median of %d; %.3f s wall per batch of %d)\n",
               beams[k], B / med, B / medc, n, med, B);
    }
    free(ids), free(len);
    pvlm_batch_free(&b);
    pvlm_model_free(&m);
    return 0;
}
