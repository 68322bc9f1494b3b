/* test_watchdog.c - mpi/watchdog limits: before the first step the limit is first_timeout; after steps
 * it is max(min, factor x slowest recent step); a phase announced with expect() has its own limit, is
 * not recorded as a step, and when it ends (expect(0)) the next step is bounded by the normal limit,
 * not by first_timeout (a rank hung right after a checkpoint must be caught as fast as any other).
 * Also: a step that overruns the limit fires the handler once, naming the phase. */
#include <time.h>

#include "harness.h"
#include "mpi/watchdog.h"

typedef struct {
    int fired;
    char phase[64];
} seen;

static void on_timeout(void *ctx, double waited, double limit, const char *phase) {
    seen *s = ctx;
    (void)waited;
    (void)limit;
    s->fired++;
    snprintf(s->phase, sizeof s->phase, "%s", phase);
}

static void nap(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

int main(void) {
    pvlm_err err = {0};
    pvlm_watchdog w;
    seen s = {0};
    const double factor = 4, min_s = 0.5, first_s = 1000, ckpt_s = 500;
    CHECK_OK(pvlm_watchdog_start(&w, factor, min_s, first_s, on_timeout, &s, &err), &err);
    CHECK_CLOSE(pvlm_watchdog_limit(&w), first_s, 0, 1e-9);
    for (int i = 0; i < 3; i++) {
        nap(0.02);
        pvlm_watchdog_beat(&w, "train");
    }
    double normal = pvlm_watchdog_limit(&w);
    CHECK_MSG(normal >= min_s && normal < 5, "limit after steps %.3f", normal);

    /* A checkpoint: its own limit while it runs, and its duration (0.3 s, longer than any step) is
     * not a step: afterwards the limit is the normal one again, not first_timeout or factor x 0.3. */
    pvlm_watchdog_expect(&w, ckpt_s, "checkpoint");
    CHECK_CLOSE(pvlm_watchdog_limit(&w), ckpt_s, 0, 1e-9);
    nap(0.3);
    pvlm_watchdog_expect(&w, 0, "train");
    double after = pvlm_watchdog_limit(&w);
    CHECK_MSG(after < 5 && after < factor * 0.3, "limit after a checkpoint %.3f (normal %.3f)", after, normal);
    nap(0.02);
    pvlm_watchdog_beat(&w, "train");
    after = pvlm_watchdog_limit(&w);
    CHECK_MSG(after < factor * 0.3, "the checkpoint was recorded as a step: limit %.3f", after);

    /* with --ckpt-every 1 every step follows a checkpoint: a hang there fires within the normal limit */
    pvlm_watchdog_expect(&w, ckpt_s, "checkpoint");
    pvlm_watchdog_expect(&w, 0, "train");
    for (int i = 0; i < 60 && !s.fired; i++) nap(0.1); /* hang: no beat for up to 6 s */
    CHECK_MSG(s.fired == 1 && !strcmp(s.phase, "train"), "fired %d in phase '%s'", s.fired, s.phase);
    pvlm_watchdog_stop(&w);

    /* before the first step the start-up limit applies */
    seen s2 = {0};
    CHECK_OK(pvlm_watchdog_start(&w, factor, 0.1, 0.3, on_timeout, &s2, &err), &err);
    for (int i = 0; i < 30 && !s2.fired; i++) nap(0.1);
    CHECK_MSG(s2.fired == 1 && !strcmp(s2.phase, "start-up"), "start-up: fired %d in '%s'", s2.fired, s2.phase);
    pvlm_watchdog_stop(&w);
    return pvlm_test_done("watchdog");
}
