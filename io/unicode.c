/* unicode.c - see unicode.h. The L/N range tables are generated into unicode_tables.inc by
 * tests/tokenizer/gen_unicode_tables.py; the classification logic below is written by hand
 * and the range lookup is core/ucrange.h. */
#include "io/unicode.h"

#include <stddef.h>
#include <stdint.h>

#include "core/ucrange.h"
#include "io/unicode_tables.inc"

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
    if (PVLM_UCRANGE_IN(uc_letter, cp)) return PVLM_UC_LETTER;
    if (PVLM_UCRANGE_IN(uc_number, cp)) return PVLM_UC_NUMBER;
    return PVLM_UC_OTHER;
}
