/* ucd.c - see ucd.h. The tables are core/ucd_tables.inc, generated; the lookups are written here. */
#include "core/ucd.h"

#include <stdlib.h>

#include "core/ucd_tables.inc"
#include "core/utf8.h"

/* 1 when first <= cp <= last for one of the n rows of r ({first, last}, sorted by first, not
 * overlapping), else 0: a binary search. */
static int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp) {
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

/* The same for a table in scope (its row count taken from its size). */
#define IN_TABLE(table, cp) in_ranges((table), sizeof(table) / sizeof((table)[0]), (cp))

int pvlm_ucd_is_letter(uint32_t c) {
    if (c < 0x80) return (c | 32) >= 'a' && (c | 32) <= 'z';
    return IN_TABLE(ucd_letter, c);
}
int pvlm_ucd_is_number(uint32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    return IN_TABLE(ucd_number, c);
}
int pvlm_ucd_is_digit(uint32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    return IN_TABLE(ucd_digit, c);
}
int pvlm_ucd_is_upper(uint32_t c) {
    return IN_TABLE(ucd_upper, c);
}
int pvlm_ucd_is_cased(uint32_t c) {
    return IN_TABLE(ucd_cased, c);
}
int pvlm_ucd_is_case_ignorable(uint32_t c) {
    return IN_TABLE(ucd_case_ignorable, c);
}

uint32_t pvlm_ucd_lower(uint32_t c) {
    if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    size_t lo = 0, hi = sizeof ucd_lower / sizeof ucd_lower[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((int64_t)c < ucd_lower[mid][0])
            hi = mid;
        else if ((int64_t)c > ucd_lower[mid][1])
            lo = mid + 1;
        else
            return ((int64_t)c - ucd_lower[mid][0]) % ucd_lower[mid][2] ? c : (uint32_t)((int64_t)c + ucd_lower[mid][3]);
    }
    return c;
}

/* Python's rule (Objects/unicodeobject.c, handle_capital_sigma): final when, skipping case-ignorable
 * characters, a cased character precedes and no cased character follows. */
static int final_sigma(const uint32_t *s, size_t n, size_t i) {
    size_t j = i;
    while (j > 0 && pvlm_ucd_is_case_ignorable(s[j - 1])) j--;
    if (j == 0 || !pvlm_ucd_is_cased(s[j - 1])) return 0;
    j = i + 1;
    while (j < n && pvlm_ucd_is_case_ignorable(s[j])) j++;
    return j == n || !pvlm_ucd_is_cased(s[j]);
}

size_t pvlm_ucd_lower_full(const uint32_t *in, size_t n, uint32_t *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = in[i];
        if (c == 0x3A3) {
            out[o++] = final_sigma(in, n, i) ? 0x3C2 : 0x3C3;
            continue;
        }
        int done = 0;
        for (size_t k = 0; k < sizeof ucd_lower_full / sizeof ucd_lower_full[0]; k++)
            if (ucd_lower_full[k][0] == c) {
                for (int m = 1; m < 4 && ucd_lower_full[k][m]; m++) out[o++] = ucd_lower_full[k][m];
                done = 1;
            }
        if (!done) out[o++] = pvlm_ucd_lower(c);
    }
    return o;
}

char *pvlm_ucd_lower_utf8(const char *s, size_t n, size_t *out_len) {
    uint32_t *cps = malloc((n + 1) * 4 * sizeof *cps);
    char *out = malloc(n * 9 + 1); /* each input byte: at most 3 code points of up to 3 bytes */
    if (!cps || !out) {
        free(cps);
        free(out);
        return NULL;
    }
    size_t m = pvlm_utf8_decode_all(s, n, cps);
    size_t k = pvlm_ucd_lower_full(cps, m, cps + n + 1);
    size_t o = 0;
    for (size_t i = 0; i < k; i++) o += pvlm_utf8_encode(cps[n + 1 + i], out + o);
    out[o] = 0;
    free(cps);
    if (out_len) *out_len = o;
    return out;
}
