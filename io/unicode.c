/* unicode.c - see unicode.h. Letters and numbers are core/ucd.h's general categories; the whitespace
 * rule below is JavaScript's, written by hand. */
#include "io/unicode.h"

#include <stdint.h>

#include "core/ucd.h"

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
    if (pvlm_ucd_is_letter(cp)) return PVLM_UC_LETTER;
    if (pvlm_ucd_is_number(cp)) return PVLM_UC_NUMBER;
    return PVLM_UC_OTHER;
}
