/* threads.h - one place that decides thread counts.
 *
 * OpenBLAS (Debian's OpenMP build, libopenblas0-openmp) and our own OpenMP
 * loops share one OpenMP runtime and never run at the same time, so setting
 * both to the same n gives exactly n busy threads per rank. The default n is
 * the cores of this node divided by the ranks on this node (Open MPI's
 * OMPI_COMM_WORLD_LOCAL_SIZE, Slurm's SLURM_NTASKS_PER_NODE), at least 1, so
 * ranks never oversubscribe the node.
 */
#ifndef PVLM_THREADS_H
#define PVLM_THREADS_H

/* Resolve the thread count: requested > 0 wins, else PVLM_THREADS, else the default above. */
int pvlm_threads_resolve(int requested);
/* Set OpenMP and OpenBLAS to n threads; returns n. */
int pvlm_threads_set(int n);
int pvlm_threads_get(void);

#endif
