/* threads.h - one place that decides thread counts.
 *
 * OpenBLAS (Debian's OpenMP build, libopenblas0-openmp) and our own OpenMP
 * loops share one OpenMP runtime and never run at the same time, so setting
 * both to the same n gives exactly n busy threads per rank.
 *
 * The default n comes from CPU affinity masks, which follow Slurm's allocation
 * (cgroup cpuset, --cpu-bind), mpirun's binding and taskset, rather than from
 * the node's online CPU count: n = min(this process's CPUs, node CPUs / ranks
 * on the node), at least 1, where node CPUs is the union of the node's ranks'
 * masks (mpi/comm.h measures it) or, without that, this process's own mask and
 * the local rank count from the launcher's environment (Open MPI's
 * OMPI_COMM_WORLD_LOCAL_SIZE, Slurm's SLURM_NTASKS_PER_NODE). Ranks bound to
 * their own cores get those cores; ranks sharing a mask split it; so ranks
 * never oversubscribe the node.
 */
#ifndef PVLM_THREADS_H
#define PVLM_THREADS_H

#include <sched.h>

/* *mask = the CPUs this process may run on; all online CPUs where the mask cannot be read. Returns their
 * count (at least 1). */
int pvlm_threads_cpus(cpu_set_t *mask);
/* The default above, given the node's CPUs (union of its ranks' masks) and its rank count. */
int pvlm_threads_default(int node_cpus, int node_ranks);
/* Resolve the thread count: requested > 0 wins, else PVLM_THREADS, else the default from this process's
 * mask and the launcher's local rank count. */
int pvlm_threads_resolve(int requested);
/* Floats in one work item of a memory-bound parallel loop, 64 KB of each stream it reads or writes. Items are
 * handed out dynamically (a vCPU the hypervisor slows takes fewer), and two threads streaming neighbouring
 * 16-32 KB items ran slower on this VM than on items of 64 KB or more (per-loop times in a 2-thread bf16 bench
 * step: LayerNorm 40 -> 31 ms, GELU 15.5 -> 12 ms, the weights' rounding to bf16 13 -> 9.5 ms; AdamW on the
 * bench model 26-36 -> 16-23 ms). */
#define PVLM_THREADS_ITEM 16384

/* Tiles of a sum over the rows of X [R, C] whose bits must not depend on the thread count: the columns in
 * nblk blocks of width columns (a multiple of 16 floats, one 64-byte line, at most max_width, itself a multiple
 * of 16; the last block may be narrower), the rows in ngrp groups of rows consecutive rows (the last may be
 * shorter). A tile sums its rows in order into a partial of its own and a column's partials are added in
 * group order, so the order of every sum depends on R and C only. ngrp is as many groups of at least min_rows
 * rows as fit ngrp * C <= max_partial (the caller's buffer of partials, in floats), and 1 where not even two
 * fit (then the tile's sum is the column's). Tiles are numbered block-major: tile i is block i / ngrp, group
 * i % ngrp, so threads that take consecutive tiles read different rows. */
typedef struct pvlm_col_tiles {
    int R, C, nblk, width, ngrp, rows;
} pvlm_col_tiles;
pvlm_col_tiles pvlm_threads_col_tiles(int R, int C, int max_width, int max_partial, int min_rows);
/* Tile i of t (0 <= i < nblk * ngrp): group g, rows [r0, r1), columns [c0, c0 + w); w <= 0 is an empty tile. */
typedef struct pvlm_col_tile {
    int g, r0, r1, c0, w;
} pvlm_col_tile;
pvlm_col_tile pvlm_threads_col_tile(const pvlm_col_tiles *t, int i);
/* A tile's sums acc[0..w): into its group's row of part [ngrp, C] when there are several groups, else added
 * into dst (the column's sum is the tile's). */
void pvlm_threads_col_tile_put(const pvlm_col_tiles *t, const pvlm_col_tile *k, const float *acc, float *dst,
                               float *part);
/* After every tile's put: dst[c] += the groups' partials of column c added in group order (nothing with one
 * group). */
void pvlm_threads_col_tiles_add(const pvlm_col_tiles *t, float *dst, const float *part);
/* Set OpenMP and OpenBLAS to n threads; returns n. */
int pvlm_threads_set(int n);
int pvlm_threads_get(void);

#endif
