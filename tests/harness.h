/* harness.h - the minimal test harness of pvlm's C tests.
 *
 * CHECK* macros record a failure (file:line and the expression) and go on;
 * a test's main ends with `return pvlm_test_done("name");`, which prints a
 * summary and returns nonzero when anything failed, so the exit code is the
 * verdict ctest reads.
 */
#ifndef PVLM_TEST_HARNESS_H
#define PVLM_TEST_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"

static int pvlm_test_checks, pvlm_test_failures;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        pvlm_test_checks++;                                                           \
        if (!(cond)) {                                                                \
            pvlm_test_failures++;                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);  \
        }                                                                             \
    } while (0)

#define CHECK_MSG(cond, ...)                                                          \
    do {                                                                              \
        pvlm_test_checks++;                                                           \
        if (!(cond)) {                                                                \
            pvlm_test_failures++;                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                             \
            fprintf(stderr, "\n");                                                    \
        }                                                                             \
    } while (0)

/* |a-b| <= atol + rtol*|b| */
#define CHECK_CLOSE(a, b, rtol, atol)                                                           \
    do {                                                                                        \
        double pvlm_a_ = (double)(a), pvlm_b_ = (double)(b);                                    \
        pvlm_test_checks++;                                                                     \
        if (!(fabs(pvlm_a_ - pvlm_b_) <= (atol) + (rtol)*fabs(pvlm_b_))) {                      \
            pvlm_test_failures++;                                                               \
            fprintf(stderr, "%s:%d: CHECK_CLOSE failed: %s = %.17g vs %s = %.17g\n", __FILE__,  \
                    __LINE__, #a, pvlm_a_, #b, pvlm_b_);                                        \
        }                                                                                       \
    } while (0)

#define CHECK_OK(expr, errp)                                                                    \
    do {                                                                                        \
        pvlm_test_checks++;                                                                     \
        if ((expr) != 0) {                                                                      \
            pvlm_test_failures++;                                                               \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, (errp)->msg);  \
        }                                                                                       \
    } while (0)

static inline int pvlm_test_done(const char *name) {
    printf("%s: %d checks, %d failed\n", name, pvlm_test_checks, pvlm_test_failures);
    return pvlm_test_failures ? 1 : 0;
}

/* The test's scratch folder: $PVLM_TMP (CMake gives every test its own) or `fallback` when the test
 * runs outside ctest, then "/sub" when sub is not NULL. Written to out (cap bytes) and created; with
 * fresh, what an earlier run left there is removed first. Returns 0, or 1 after printing why the
 * folder could not be made (the test then exits 1). */
static inline int pvlm_test_scratch(char *out, size_t cap, const char *fallback, const char *sub, int fresh) {
    const char *t = getenv("PVLM_TMP");
    int n = snprintf(out, cap, "%s%s%s", t ? t : fallback, sub ? "/" : "", sub ? sub : "");
    pvlm_err err = {0};
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "scratch folder name too long: %s\n", out);
        return 1;
    }
    if (fresh) pvlm_rm_rf(out, NULL);
    if (pvlm_mkdir_p(out, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    return 0;
}

/* Directory of shared test data (../shared beside the checkout); from the environment
 * variable PVLM_SHARED that CMake sets for every test. */
static inline const char *pvlm_test_shared(void) {
    const char *s = getenv("PVLM_SHARED");
    return s ? s : "../shared";
}

#endif
