/* timer.c - see timer.h. */
#include "timer.h"

#include <time.h>

double pvlm_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double pvlm_uptime(void) {
    static double t0 = -1.0;
    double t = pvlm_now();
    if (t0 < 0) t0 = t;
    return t - t0;
}
