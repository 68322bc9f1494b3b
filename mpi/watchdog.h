/* watchdog.h - aborts a job whose step takes far longer than usual (a hung rank).
 *
 * With Open MPI 4.1 a rank stuck in compute or I/O leaves every other rank spinning at ~94% CPU
 * inside a collective forever (shared/notes/slurm-and-mpi.md), and a preempted job then burns its
 * whole allocation. The watchdog is a thread that sleeps on a condition variable; the training loop
 * calls pvlm_watchdog_beat() after every step. The limit is max(min_timeout_s, factor x the slowest
 * of the last 16 steps); before the first beat (start-up, first step, resume I/O) it is
 * first_timeout_s. Phases with their own known duration (a checkpoint write) announce it with
 * pvlm_watchdog_expect(). When the limit passes without a beat the thread calls on_timeout once
 * (the program's handler logs the phase and calls MPI_Abort, which ends every rank).
 *
 * Ownership: pvlm_watchdog is caller-owned; start creates the thread, stop joins it.
 */
#ifndef PVLM_MPI_WATCHDOG_H
#define PVLM_MPI_WATCHDOG_H

#include <pthread.h>

#include "core/error.h"

/* Called from the watchdog thread: waited = seconds since the last beat, limit = the limit that
 * passed, phase = the label of the last beat/expect. */
typedef void (*pvlm_watchdog_fn)(void *ctx, double waited, double limit, const char *phase);

typedef struct pvlm_watchdog {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running, quit, fired;
    double factor, min_timeout, first_timeout;
    double last_beat;      /* pvlm_now() of the last beat */
    double expect;         /* > 0: limit for the current phase set by expect() */
    double recent[16];     /* durations of the last steps */
    int nrecent, irecent;
    char phase[64];
    pvlm_watchdog_fn on_timeout;
    void *ctx;
} pvlm_watchdog;

/* factor <= 0 disables the watchdog (start is then a no-op, beat/stop are safe to call). */
int pvlm_watchdog_start(pvlm_watchdog *w, double factor, double min_timeout_s, double first_timeout_s,
                        pvlm_watchdog_fn on_timeout, void *ctx, pvlm_err *err);
/* A step finished: record its duration (now - previous beat) and restart the clock. */
void pvlm_watchdog_beat(pvlm_watchdog *w, const char *phase);
/* Restart the clock without recording a step duration, with a limit of `seconds` for the phase
 * that starts now (until the next beat). seconds <= 0 ends such a phase: the limit is the normal one
 * again (max(min, factor x slowest recent step), or first_timeout while no step has been recorded), so
 * the step after a checkpoint is bounded like every other step. */
void pvlm_watchdog_expect(pvlm_watchdog *w, double seconds, const char *phase);
/* The limit now in force, in seconds. */
double pvlm_watchdog_limit(pvlm_watchdog *w);
void pvlm_watchdog_stop(pvlm_watchdog *w);

#endif
