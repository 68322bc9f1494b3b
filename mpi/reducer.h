/* reducer.h - bucketed gradient reduction across ranks, overlapped with backward.
 *
 * The flat gradient buffer (borrowed, n floats) is cut into buckets of about bucket_elems floats,
 * each lying inside one "segment" (the ranges that are reduced at all: the whole buffer in
 * pretraining, the trainable views' ranges in prompt tuning). During the last micro-batch's
 * backward the model reports finished ranges through its grad-ready hook (pvlm_reducer_hook has
 * the pvlm_grad_ready_fn signature); a bucket whose every element has been reported is launched as
 * a non-blocking collective. Buckets are launched strictly from the highest offset down (the
 * order backward finishes them: decoder, encoder, embeddings), whatever order the hook reports, so
 * every rank issues the same collectives in the same order - a requirement of MPI.
 *
 * Open MPI 4.1 makes no asynchronous progress (a collective advances only inside MPI calls, see
 * shared/notes/slurm-and-mpi.md), so every hook call also MPI_Tests the outstanding requests;
 * the model calls the hook between layers, which keeps the polling interval at about a layer's
 * backward time. Optionally (progress_thread = 1, needs MPI_THREAD_MULTIPLE) a progress thread
 * MPI_Tests the outstanding buckets every ~0.5 ms instead, so a bucket also advances during a long
 * layer's backward; it costs a partly busy thread per rank, worth it only with a spare core. All MPI
 * calls on the buckets are serialised by one mutex (the hook launches, the thread tests, finish waits
 * after the thread has let go of the round).
 *
 * Plain data parallelism: MPI_Iallreduce(SUM) in place: after pvlm_reducer_finish every rank holds
 * the summed gradient in the whole buffer. Gradients are summed, not averaged: the loss is already
 * divided by the global target count, so the sum is the gradient of the global-batch loss.
 * ZeRO-1 (Rajbhandari et al., "ZeRO", 2020, stage 1): rank r owns the slice pvlm_comm_split(n, P, r)
 * of the optimizer state; each bucket is MPI_Ireduce_scatter'ed so the rank receives only the summed
 * gradient of its own slice (into `slice`, owned here, indexed from shard_off); after the optimizer
 * updated the slice of the parameters, pvlm_reducer_allgather shares the parameters with every rank.
 *
 * Counts are MPI ints: the buffer must hold < 2^31 floats (checked).
 * Ownership: pvlm_reducer is caller-owned; init allocates the bucket table and the ZeRO slice,
 * pvlm_reducer_free releases them. The gradient buffer stays the caller's.
 */
#ifndef PVLM_MPI_REDUCER_H
#define PVLM_MPI_REDUCER_H

#include <mpi.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "mpi/comm.h"

typedef struct pvlm_reducer_bucket {
    size_t off, n;     /* floats, into the gradient buffer */
    size_t ready;      /* elements reported final in this round */
    int launched, done;
    MPI_Request req;
    int *rcounts;      /* ZeRO-1: per-rank element counts of this bucket's reduce-scatter */
    size_t recv_off;   /* ZeRO-1: where this rank's part starts, as a global offset */
} pvlm_reducer_bucket;

typedef struct pvlm_reducer {
    const pvlm_comm *comm;
    float *buf;          /* borrowed gradient buffer, n floats */
    size_t n;
    int zero1;
    size_t shard_off, shard_n; /* this rank's ZeRO-1 slice (plain: 0, n) */
    float *slice;        /* ZeRO-1: summed gradient of [shard_off, shard_off+shard_n), owned */
    int *ag_counts, *ag_displs; /* ZeRO-1 all-gather layout (per rank), owned */
    int *rs_counts;      /* ZeRO-1: per-rank counts of a merged reduce-scatter / all-gather chunk, owned */
    int *ag_chunk_displs; /* ZeRO-1: per-rank displacements inside an all-gather chunk, owned */
    size_t merge_elems;  /* most floats per blocking call in finish (merged adjacent buckets) */
    pvlm_reducer_bucket *b;
    int nb;
    int next;            /* next bucket to launch (counts down from nb-1); -1: all launched */
    int active;          /* between begin and finish */
    int failed;          /* an MPI call inside the hook failed; message in hook_err */
    pvlm_err hook_err;
    /* statistics since pvlm_reducer_stats_reset */
    double wait_s;       /* time blocked in finish() waiting for collectives (exposed communication) */
    double hook_s;       /* time spent launching/polling inside the hook (overlapped part's cost) */
    double gather_s;     /* time in the ZeRO-1 all-gather */
    uint64_t bytes;      /* payload bytes handed to collectives (reduce + gather), per rank */
    int64_t rounds;
    int64_t hook_launches; /* buckets launched from the hook (overlapped with backward) */
    int64_t launches;      /* all bucket launches */
    /* progress thread (optional) */
    int use_thread, thread_quit;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t thread_tests;  /* MPI_Test calls made by the progress thread */
} pvlm_reducer;

typedef struct pvlm_reducer_config {
    size_t bucket_elems; /* floats per bucket; 0 = default 1M floats (4 MiB) */
    int zero1;           /* 1: reduce-scatter + all-gather (ZeRO-1) */
    int progress_thread; /* 1: a thread polls the buckets (needs MPI_THREAD_MULTIPLE); 0: the hook polls */
    size_t merge_elems;  /* floats per blocking call in finish; 0 = default 4M (16 MiB) */
} pvlm_reducer_config;

/* seg_off/seg_n: nseg sorted, non-overlapping ranges to reduce (nseg = 0: the whole buffer).
 * Collective over c: every rank must call it with the same arguments (except buf). */
int pvlm_reducer_init(pvlm_reducer *r, const pvlm_comm *c, float *buf, size_t n, const size_t *seg_off,
                      const size_t *seg_n, int nseg, const pvlm_reducer_config *cfg, pvlm_err *err);
void pvlm_reducer_free(pvlm_reducer *r);

/* Start a round (one optimizer step): nothing is ready yet. ZeRO-1: zeroes the slice. */
int pvlm_reducer_begin(pvlm_reducer *r, pvlm_err *err);
/* Grad-ready hook: [off, off+count) of buf is final for this round. Launches every bucket that
 * became launchable and polls the outstanding ones. Matches pvlm_grad_ready_fn; ctx = reducer. */
void pvlm_reducer_hook(void *ctx, size_t off, size_t count);
/* Progress outstanding collectives (MPI_Test); call it between long computations. */
void pvlm_reducer_poll(pvlm_reducer *r);
/* Reduce every bucket not launched yet with blocking collectives (MPI_Allreduce / MPI_Reduce_scatter
 * over merged adjacent buckets, highest offset first: see reducer.c for why not non-blocking ones)
 * and wait for the launched ones. After it, plain: buf holds the
 * sum over ranks in every segment; ZeRO-1: slice holds the sum for this rank's slice (0 outside
 * segments) and buf is unchanged. */
int pvlm_reducer_finish(pvlm_reducer *r, pvlm_err *err);
/* ZeRO-1: every rank sends its slice of params (updated by its optimizer) to all others
 * (MPI_Allgatherv in place, in chunks of at most merge_elems floats). No-op for plain data parallelism. */
int pvlm_reducer_allgather(pvlm_reducer *r, float *params, pvlm_err *err);
void pvlm_reducer_stats_reset(pvlm_reducer *r);

#endif
