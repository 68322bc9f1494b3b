/* bench_util.h - the timing helpers every bench program shares (header-only, static inline).
 *
 * bench_median sorts v in place and returns its median (mean of the two middle values for even n).
 * bench_cpu_seconds reads a CPU-time clock: CLOCK_PROCESS_CPUTIME_ID (all threads of the process) or
 * CLOCK_THREAD_CPUTIME_ID (the calling thread). On a shared machine wall time also counts other
 * processes' turns on the cores, so the benches report CPU-time rates beside wall-clock ones
 * (docs/performance.md).
 */
#ifndef PVLM_BENCH_UTIL_H
#define PVLM_BENCH_UTIL_H

#include <stdlib.h>
#include <time.h>

static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static inline double bench_cpu_seconds(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
