/* threads.c - see threads.h. */
#include "threads.h"

#include <stdlib.h>
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

int pvlm_threads_resolve(int requested) {
    if (requested > 0) return requested;
    int env = env_int("PVLM_THREADS");
    if (env) return env;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1) cores = 1;
    int local = env_int("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (!local) local = env_int("SLURM_NTASKS_PER_NODE");
    if (!local) local = 1;
    long n = cores / local;
    return n < 1 ? 1 : (int)n;
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
