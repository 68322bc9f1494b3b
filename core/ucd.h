/* ucd.h - Unicode character properties from generated tables: the one home for them.
 *
 * For the tokenizer's GPT-2 pre-tokenization (io/unicode: letters \p{L} and numbers \p{N}) and for the
 * scorers, as the official evaluators see them: letters (general category L*: Java's Character.isLetter,
 * the PTB lexer's [:letter:]), numbers (N*), decimal digits (Nd: the lexer's [:digit:] and Python 3's re
 * \d), upper-case letters (Lu), Cased and Case_Ignorable, and lower-casing as Python 3's str.lower does
 * it: the unconditional full mappings of SpecialCasing.txt (U+0130 -> "i" U+0307), the simple mapping of
 * UnicodeData.txt otherwise, and the Final_Sigma rule (U+03A3 -> U+03C2 when a cased letter precedes it
 * and none follows, case-ignorable characters skipped). The tables (ucd_tables.inc) are generated from
 * Debian's unicode-data by tests/core/gen_ucd_tables.py and checked by the core_ucd_tables test. Nothing
 * here keeps state; the one allocating function says who frees.
 */
#ifndef PVLM_CORE_UCD_H
#define PVLM_CORE_UCD_H

#include <stddef.h>
#include <stdint.h>

int pvlm_ucd_is_letter(uint32_t c);
int pvlm_ucd_is_number(uint32_t c);
int pvlm_ucd_is_digit(uint32_t c);
int pvlm_ucd_is_upper(uint32_t c);
int pvlm_ucd_is_cased(uint32_t c);
int pvlm_ucd_is_case_ignorable(uint32_t c);
/* Simple lower-case mapping (c itself when it has none). */
uint32_t pvlm_ucd_lower(uint32_t c);

/* Lower-case the n code points of in as Python 3's str.lower (see above) into out, which holds at least
 * 3*n code points; returns the number written. */
size_t pvlm_ucd_lower_full(const uint32_t *in, size_t n, uint32_t *out);

/* UTF-8 decoding and encoding: core/utf8.h (the one rule). */

/* Python 3's s.lower() of UTF-8 text s[0..n): a new NUL-terminated string (caller free()s; *out_len
 * gets its length), or NULL when out of memory. Invalid UTF-8 becomes U+FFFD. */
char *pvlm_ucd_lower_utf8(const char *s, size_t n, size_t *out_len);

#endif
