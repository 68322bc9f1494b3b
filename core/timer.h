/* timer.h - monotonic wall-clock time in seconds (CLOCK_MONOTONIC). */
#ifndef PVLM_TIMER_H
#define PVLM_TIMER_H

double pvlm_now(void);    /* seconds since an arbitrary fixed point */
double pvlm_uptime(void); /* seconds since the first call of any timer function */

#endif
