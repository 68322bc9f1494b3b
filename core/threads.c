/* threads.c - see threads.h. */
#include "threads.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* From OpenBLAS (cblas.h declares them; declared here to keep core's header set small). */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

static int g_threads = 1;

static int env_int(const char *name) {
    const char *s = getenv(name);
    if (!s || !*s) return 0;
    int v = atoi(s);
    return v > 0 ? v : 0;
}

int pvlm_threads_cpus(cpu_set_t *mask) {
    CPU_ZERO(mask);
    if (sched_getaffinity(0, sizeof *mask, mask) != 0 || CPU_COUNT(mask) == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        CPU_ZERO(mask);
        for (long i = 0; i < n && i < CPU_SETSIZE; i++) CPU_SET((int)i, mask);
    }
    int n = CPU_COUNT(mask);
    return n < 1 ? 1 : n;
}

/* min(own, node_cpus / node_ranks), at least 1: own is this process's CPU count. */
static int default_threads(int own, int node_cpus, int node_ranks) {
    int share = node_cpus / (node_ranks > 0 ? node_ranks : 1);
    int n = own < share ? own : share;
    return n < 1 ? 1 : n;
}

int pvlm_threads_default(int node_cpus, int node_ranks) {
    cpu_set_t mask;
    return default_threads(pvlm_threads_cpus(&mask), node_cpus, node_ranks);
}

int pvlm_threads_resolve(int requested) {
    if (requested > 0) return requested;
    int env = env_int("PVLM_THREADS");
    if (env) return env;
    cpu_set_t mask;
    int own = pvlm_threads_cpus(&mask), local = env_int("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (!local) local = env_int("SLURM_NTASKS_PER_NODE");
    return default_threads(own, own, local); /* without MPI the node's CPUs are taken to be this mask's */
}

pvlm_col_tiles pvlm_threads_col_tiles(int R, int C, int max_width, int max_partial, int min_rows) {
    pvlm_col_tiles t;
    t.nblk = C > 0 ? (C + max_width - 1) / max_width : 1;
    t.width = C > 0 ? ((C + t.nblk - 1) / t.nblk + 15) / 16 * 16 : 16;
    long fit = C > 0 ? max_partial / C : 1, want = min_rows > 0 ? R / min_rows : R;
    t.ngrp = (int)(fit < want ? fit : want);
    if (t.ngrp < 2) t.ngrp = 1;
    t.rows = R > 0 ? (R + t.ngrp - 1) / t.ngrp : 1;
    t.ngrp = R > 0 ? (R + t.rows - 1) / t.rows : 1; /* no empty group */
    t.R = R, t.C = C;
    return t;
}

pvlm_col_tile pvlm_threads_col_tile(const pvlm_col_tiles *t, int i) {
    pvlm_col_tile k;
    k.g = i % t->ngrp, k.c0 = i / t->ngrp * t->width;
    k.w = t->C - k.c0 < t->width ? t->C - k.c0 : t->width;
    k.r0 = k.g * t->rows, k.r1 = t->R - k.r0 < t->rows ? t->R : k.r0 + t->rows;
    return k;
}

void pvlm_threads_col_tile_put(const pvlm_col_tiles *t, const pvlm_col_tile *k, const float *acc, float *dst,
                               float *part) {
    if (t->ngrp > 1)
        memcpy(part + (size_t)k->g * t->C + k->c0, acc, sizeof(float) * (size_t)k->w);
    else
        for (int c = 0; c < k->w; c++) dst[k->c0 + c] += acc[c];
}

void pvlm_threads_col_tiles_add(const pvlm_col_tiles *t, float *dst, const float *part) {
    if (t->ngrp < 2) return;
    for (int c = 0; c < t->C; c++) {
        float s = part[c];
        for (int g = 1; g < t->ngrp; g++) s += part[(size_t)g * t->C + c];
        dst[c] += s;
    }
}

int pvlm_threads_set(int n) {
    if (n < 1) n = 1;
    g_threads = n;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    openblas_set_num_threads(n);
    return n;
}

int pvlm_threads_get(void) { return g_threads; }
