/* unicode.c - see unicode.h. The L/N range tables are generated into unicode_tables.inc by
 * tests/tokenizer/gen_unicode_tables.py; the classification logic below is written by hand. */
#include "io/unicode.h"

#include <stddef.h>
#include <stdint.h>

#include "io/unicode_tables.inc"

static int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid][0])
            hi = mid;
        else if (cp > r[mid][1])
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

int pvlm_unicode_class(uint32_t cp) {
    /* JavaScript's \s: WhiteSpace (TAB, VT, FF, SP, NBSP, ZWNBSP U+FEFF, every Zs)
     * plus LineTerminator (LF, CR, U+2028, U+2029); ECMA-262 sections 12.2 and 12.3. */
    switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0xA0:
    case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000: case 0xFEFF:
        return PVLM_UC_SPACE;
    default:
        break;
    }
    if (cp >= 0x2000 && cp <= 0x200A) return PVLM_UC_SPACE;
    if (in_ranges(uc_letter, sizeof uc_letter / sizeof uc_letter[0], cp)) return PVLM_UC_LETTER;
    if (in_ranges(uc_number, sizeof uc_number / sizeof uc_number[0], cp)) return PVLM_UC_NUMBER;
    return PVLM_UC_OTHER;
}
