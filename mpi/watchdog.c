/* watchdog.c - see watchdog.h. */
#include "watchdog.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/timer.h"

/* limit in force; caller holds mu */
static double limit_locked(const pvlm_watchdog *w) {
    if (w->expect > 0) return w->expect;
    if (w->nrecent == 0) return w->first_timeout;
    double mx = 0;
    for (int i = 0; i < w->nrecent; i++)
        if (w->recent[i] > mx) mx = w->recent[i];
    double l = w->factor * mx;
    return l > w->min_timeout ? l : w->min_timeout;
}

static void *watch(void *arg) {
    pvlm_watchdog *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->quit) {
        double limit = limit_locked(w);
        double waited = pvlm_now() - w->last_beat;
        if (waited > limit && !w->fired) {
            w->fired = 1;
            char phase[64];
            memcpy(phase, w->phase, sizeof phase);
            pthread_mutex_unlock(&w->mu);
            w->on_timeout(w->ctx, waited, limit, phase);
            pthread_mutex_lock(&w->mu);
            continue;
        }
        /* Sleep until the limit would pass (at most 1 s, so a changed limit is seen soon). The
         * condition variable uses CLOCK_REALTIME; only the sleep length is taken from it. */
        double dt = limit - waited;
        if (dt > 1.0) dt = 1.0;
        if (dt < 0.01) dt = 0.01;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long long ns = (long long)ts.tv_nsec + (long long)(dt * 1e9);
        ts.tv_sec += (time_t)(ns / 1000000000LL);
        ts.tv_nsec = (long)(ns % 1000000000LL);
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int pvlm_watchdog_start(pvlm_watchdog *w, double factor, double min_timeout_s, double first_timeout_s,
                        pvlm_watchdog_fn on_timeout, void *ctx, pvlm_err *err) {
    memset(w, 0, sizeof *w);
    if (factor <= 0) return 0;
    if (!on_timeout) return pvlm_err_set(err, PVLM_EINVAL, "watchdog: no timeout handler");
    w->factor = factor;
    w->min_timeout = min_timeout_s;
    w->first_timeout = first_timeout_s;
    w->on_timeout = on_timeout;
    w->ctx = ctx;
    w->last_beat = pvlm_now();
    strcpy(w->phase, "start-up");
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    int rc = pthread_create(&w->thread, NULL, watch, w);
    if (rc) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        errno = rc;
        return pvlm_err_errno(err, "watchdog: pthread_create");
    }
    w->running = 1;
    return 0;
}

void pvlm_watchdog_beat(pvlm_watchdog *w, const char *phase) {
    if (!w->running) return;
    pthread_mutex_lock(&w->mu);
    double now = pvlm_now();
    if (w->expect <= 0) {
        w->recent[w->irecent] = now - w->last_beat;
        w->irecent = (w->irecent + 1) % 16;
        if (w->nrecent < 16) w->nrecent++;
    }
    w->expect = 0;
    w->last_beat = now;
    snprintf(w->phase, sizeof w->phase, "%s", phase ? phase : "");
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void pvlm_watchdog_expect(pvlm_watchdog *w, double seconds, const char *phase) {
    if (!w->running) return;
    pthread_mutex_lock(&w->mu);
    /* seconds <= 0 returns to the normal limit (limit_locked): after a checkpoint the next step is
     * bounded like any other step, and the checkpoint's own duration was never recorded as one. */
    w->expect = seconds > 0 ? seconds : 0;
    w->last_beat = pvlm_now();
    snprintf(w->phase, sizeof w->phase, "%s", phase ? phase : "");
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

double pvlm_watchdog_limit(pvlm_watchdog *w) {
    if (!w->running) return 0;
    pthread_mutex_lock(&w->mu);
    double l = limit_locked(w);
    pthread_mutex_unlock(&w->mu);
    return l;
}

void pvlm_watchdog_stop(pvlm_watchdog *w) {
    if (!w->running) return;
    pthread_mutex_lock(&w->mu);
    w->quit = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    w->running = 0;
}
