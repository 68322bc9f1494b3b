/* unicode.h - the character classes of GPT-2's pre-tokenization regex.
 *
 * pvlm_unicode_class(cp) says whether a code point is a letter (\p{L}: general
 * category Lu Ll Lt Lm Lo), a number (\p{N}: Nd Nl No), JavaScript-regex
 * whitespace (\s) or anything else. The letters and numbers are core/ucd.h's (tables
 * generated from Debian's unicode-data package, Unicode 15.0); nothing is allocated.
 */
#ifndef PVLM_IO_UNICODE_H
#define PVLM_IO_UNICODE_H

#include <stdint.h>

enum { PVLM_UC_OTHER = 0, PVLM_UC_LETTER = 1, PVLM_UC_NUMBER = 2, PVLM_UC_SPACE = 3 };

/* Class of code point cp (any value; > 0x10FFFF gives PVLM_UC_OTHER). */
int pvlm_unicode_class(uint32_t cp);

#endif
