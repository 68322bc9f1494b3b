/* ucrange.h - membership of a code point in a sorted table of inclusive ranges.
 *
 * The generic half of the Unicode property lookups: io/unicode (GPT-2's letter and number classes)
 * and score/ucd (the evaluators' letter, digit, case properties) each keep their own generated
 * tables, as {first, last} rows sorted by first and not overlapping, and ask this one binary search.
 * Header-only and inline (the tokenizer asks per character); nothing is allocated.
 */
#ifndef PVLM_UCRANGE_H
#define PVLM_UCRANGE_H

#include <stddef.h>
#include <stdint.h>

/* 1 when first <= cp <= last for one of the n rows of r, else 0. */
static inline int pvlm_ucrange_contains(const uint32_t (*r)[2], size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < r[mid][0])
            hi = mid;
        else if (cp > r[mid][1])
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

/* The same for a table declared as an array in scope (its row count taken from its size). */
#define PVLM_UCRANGE_IN(table, cp) pvlm_ucrange_contains((table), sizeof(table) / sizeof((table)[0]), (cp))

#endif
