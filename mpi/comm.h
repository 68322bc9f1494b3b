/* comm.h - the MPI communicator of a pvlm job, the preemption stop flag, and small collectives.
 *
 * Owns: nothing global except the process-wide stop flag that the signal handlers set (a signal
 * handler can only reach a global; it is a volatile sig_atomic_t written by the handler and read
 * by pvlm_comm_stop_local).
 *
 * Order at program start (Slurm may signal a job up to 60 s early, even before MPI is up, see
 * shared/notes/slurm-and-mpi.md): pvlm_comm_install_signals() first, then pvlm_comm_init().
 * SIGUSR1 (Slurm's --signal=B:USR1@T forwarded by the batch shell) and SIGTERM (time limit,
 * scancel) only set the flag; the training loop OR-reduces it across ranks at the end of every
 * step (mpi/dp.h), so every rank finishes the same step, checkpoints and exits together.
 *
 * pvlm_comm_init logs "rank R of P on host H" on every rank of a multi-rank job. Before MPI_Init it
 * raises glibc's mmap and trim thresholds (process-wide malloc policy) and, unless already set,
 * sets OMPI_MCA_btl_vader_single_copy_mechanism=none (comm.c says why; rank 0 logs the value).
 * pvlm_comm is a caller-owned struct; pvlm_comm_init fills it, pvlm_comm_finalize tears down MPI.
 * Helpers that return malloc'd memory say so; the caller frees.
 */
#ifndef PVLM_MPI_COMM_H
#define PVLM_MPI_COMM_H

#include <jansson.h>
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct pvlm_comm {
    MPI_Comm comm;     /* MPI_COMM_WORLD (errors return, see pvlm_comm_init) */
    int rank, size;
    int thread_level;  /* MPI thread support granted */
    int inited_here;   /* 1: pvlm_comm_init called MPI_Init_thread, finalize calls MPI_Finalize */
} pvlm_comm;

/* Install SIGUSR1 and SIGTERM handlers that set the stop flag (SA_RESTART, so blocking reads are
 * not interrupted). Call before MPI_Init. Returns 0 or -1. */
int pvlm_comm_install_signals(pvlm_err *err);
/* The number of the last stop signal received by this process (0: none). Async-signal-safe read. */
int pvlm_comm_stop_local(void);
/* Set the stop flag from code (tests, the watchdog's soft stop): behaves like a received signal. */
void pvlm_comm_request_stop(int signo);

/* MPI_Init_thread(MPI_THREAD_MULTIPLE requested; FUNNELED accepted) unless MPI is already
 * initialised; rank/size of MPI_COMM_WORLD; MPI_ERRORS_RETURN on it so failures come back as
 * pvlm_err instead of aborting inside MPI. Also sets the log rank. */
int pvlm_comm_init(pvlm_comm *c, int *argc, char ***argv, pvlm_err *err);
void pvlm_comm_finalize(pvlm_comm *c);
/* What every MPI subcommand does first: pvlm_comm_install_signals, pvlm_comm_init, then
 * pvlm_threads_set(pvlm_comm_threads(c, threads)) (threads 0: the node's CPUs shared by its ranks). */
int pvlm_comm_start(pvlm_comm *c, int *argc, char ***argv, int threads, pvlm_err *err);
/* MPI_Abort(comm, code): the program-level "kill every rank now" (a rank that cannot continue
 * alone, the watchdog). Not used by library code paths that can return an error. */
void pvlm_comm_abort(const pvlm_comm *c, int code);

/* Fill err from an MPI return code: "what: MPI error string". Returns -1. */
int pvlm_comm_mpi_err(int rc, pvlm_err *err, const char *what);

/* Logical OR of `local` over ranks (blocking). */
int pvlm_comm_or(const pvlm_comm *c, int local, int *global, pvlm_err *err);
/* Element-wise sums over ranks, in place (blocking). */
int pvlm_comm_sum_i64(const pvlm_comm *c, int64_t *v, int n, pvlm_err *err);
int pvlm_comm_sum_f64(const pvlm_comm *c, double *v, int n, pvlm_err *err);
int pvlm_comm_max_f64(const pvlm_comm *c, double *v, int n, pvlm_err *err);
int pvlm_comm_barrier(const pvlm_comm *c, pvlm_err *err);

/* Broadcast a string from root. On root *s is the input (NULL allowed: broadcast as NULL); on
 * the others *s receives a malloc'd copy (or NULL) the caller frees. */
int pvlm_comm_bcast_str(const pvlm_comm *c, char **s, int root, pvlm_err *err);
/* Broadcast a JSON value from root; non-roots get a new reference in *j (root keeps its own). */
int pvlm_comm_bcast_json(const pvlm_comm *c, json_t **j, int root, pvlm_err *err);
/* Gather one JSON value per rank to root as a JSON array indexed by rank (new reference in *out
 * on root, NULL elsewhere). */
int pvlm_comm_gather_json(const pvlm_comm *c, const json_t *mine, json_t **out, int root, pvlm_err *err);

/* Ranks on this rank's node (MPI_COMM_TYPE_SHARED) and the cores they may run on (the union of
 * their CPU affinity masks, which follows Slurm's allocation and mpirun's binding). Collective. */
int pvlm_comm_node_cores(const pvlm_comm *c, int *node_ranks, int *node_cores, pvlm_err *err);

/* The thread count for this rank (core/threads.h): requested > 0 or PVLM_THREADS wins, else the default from
 * this rank's CPU mask and pvlm_comm_node_cores. Collective unless requested > 0 or PVLM_THREADS is set (set
 * alike on every rank). */
int pvlm_comm_threads(const pvlm_comm *c, int requested, pvlm_err *err);

/* Even split of n elements over size ranks: rank r owns [*off, *off + *cnt). The first n % size
 * ranks get one more element. Used for ZeRO-1 slices and documented so checkpoints can name
 * global offsets. */
void pvlm_comm_split(size_t n, int size, int rank, size_t *off, size_t *cnt);

#endif
