/* bench_allreduce.c - gradient all-reduce cost on this machine, for docs/perf-scaling.md.
 *
 *   mpirun -np 2 build/bench/bench_allreduce [MiB_max] [reps]
 *
 * For float buffers of 1 MiB .. MiB_max (default 64): the median over reps (default 9) of
 *   - blocking MPI_Allreduce(SUM) of the whole buffer,
 *   - mpi/reducer.h's path after backward (4 MiB buckets none of which the hook launched: blocking
 *     MPI_Allreduce over merged buckets of at most 16 MiB, what --no-overlap does),
 *   - the ZeRO-1 path (the same with MPI_Reduce_scatter, + all-gather of the whole buffer),
 * and the bus bandwidth of the first, busbw = 2 (P-1)/P * bytes / time: the per-rank link bandwidth a
 * ring all-reduce achieves (each rank sends and receives 2 (P-1)/P of the buffer). Rank 0 prints one
 * line per size and a final line "fit: alpha_us=... busbw_GBps=..." from a least-squares fit of
 * t = a + bytes / B over the ring model, which bench_scaling.sh uses for its projection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/timer.h"
#include "mpi/comm.h"
#include "mpi/reducer.h"
#include "bench/bench_util.h"

int main(int argc, char **argv) {
    pvlm_err err = {0};
    pvlm_comm c;
    if (pvlm_comm_init(&c, &argc, &argv, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int mib_max = argc > 1 ? atoi(argv[1]) : 64, reps = argc > 2 ? atoi(argv[2]) : 9;
    if (mib_max < 1) mib_max = 1;
    if (reps < 1) reps = 1;
    size_t nmax = (size_t)mib_max * 1024 * 1024 / sizeof(float);
    float *buf = pvlm_alloc(nmax * sizeof(float), &err);
    double *t = malloc((size_t)reps * sizeof(double));
    if (!buf || !t) return 1;
    int P = c.size;
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int npts = 0;
    if (c.rank == 0)
        printf("# %d ranks; median of %d; times in ms; busbw = 2(P-1)/P * bytes / t_allreduce\n"
               "%10s %12s %12s %12s %12s\n",
               P, reps, "MiB", "allreduce", "bucketed", "zero1_rs_ag", "busbw_GB/s");
    for (int mib = 1; mib <= mib_max; mib *= 2) {
        size_t n = (size_t)mib * 1024 * 1024 / sizeof(float);
        double tm[3];
        for (int mode = 0; mode < 3; mode++) {
            pvlm_reducer r;
            pvlm_reducer_config rc = {.bucket_elems = (size_t)1 << 20, .zero1 = mode == 2};
            if (mode > 0 && pvlm_reducer_init(&r, &c, buf, n, NULL, NULL, 0, &rc, &err)) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            for (int k = -1; k < reps; k++) { /* k = -1: warm-up */
                for (size_t i = 0; i < n; i++) buf[i] = (float)(i % 13) * 0.25f;
                MPI_Barrier(c.comm);
                double t0 = pvlm_now();
                if (mode == 0) {
                    MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, c.comm);
                } else {
                    pvlm_reducer_begin(&r, &err);
                    if (pvlm_reducer_finish(&r, &err) || pvlm_reducer_allgather(&r, buf, &err)) {
                        fprintf(stderr, "%s\n", err.msg);
                        return 1;
                    }
                }
                double dt = pvlm_now() - t0;
                MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, c.comm);
                if (k >= 0) t[k] = dt;
            }
            tm[mode] = bench_median(t, reps);
            if (mode > 0) pvlm_reducer_free(&r);
        }
        double bytes = (double)n * sizeof(float);
        double busbw = P > 1 ? 2.0 * (P - 1) / P * bytes / tm[0] : 0;
        if (c.rank == 0)
            printf("%10d %12.3f %12.3f %12.3f %12.2f\n", mib, 1e3 * tm[0], 1e3 * tm[1], 1e3 * tm[2], busbw / 1e9);
        double x = P > 1 ? 2.0 * (P - 1) / P * bytes : bytes;
        sx += x, sy += tm[0], sxx += x * x, sxy += x * tm[0];
        npts++;
    }
    if (c.rank == 0 && npts > 1) {
        double slope = (npts * sxy - sx * sy) / (npts * sxx - sx * sx), icpt = (sy - slope * sx) / npts;
        printf("fit: alpha_us=%.1f busbw_GBps=%.3f\n", 1e6 * icpt, slope > 0 ? 1e-9 / slope : 0.0);
    }
    pvlm_free(buf);
    free(t);
    pvlm_comm_finalize(&c);
    return 0;
}
