/* utf8.h - the one UTF-8 rule of pvlm: validate, decode and encode one code point, sanitize.
 *
 * Well-formed means RFC 3629 / Unicode's table of well-formed byte sequences (Unicode
 * Standard, chapter 3, "UTF-8", Table 3-7): no overlong forms (C0, C1, E0 80..9F,
 * F0 80..8F), no surrogates (ED A0..BF), nothing above U+10FFFF (F4 90.., F5..FF lead
 * bytes), no stray continuation bytes, no truncated sequences. U+0000 is well-formed
 * UTF-8; text that becomes a C string (captions) must not hold it, since a NUL would
 * silently cut it: pvlm_utf8_text_ok checks both.
 *
 * Every module that reads or writes text uses these (the shard builders, the text
 * shard and loader validation, the URL-list reader, the tokenizer's pre-tokenizer,
 * generation output and the PTB tokenizer), so what `pvlm shard` accepts is exactly
 * what the loader accepts. Nothing here allocates except pvlm_utf8_sanitize.
 */
#ifndef PVLM_UTF8_H
#define PVLM_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length (1..4) of the well-formed sequence at s[0..n) and its code point in *cp, or 0
 * when s does not start one (or n == 0). Inline: the tokenizer calls it per character. */
static inline int pvlm_utf8_decode(const void *str, size_t n, uint32_t *cp) {
    const uint8_t *s = str;
    if (n == 0) return 0;
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    /* second-byte ranges of Table 3-7 bound overlongs, surrogates and > U+10FFFF */
    uint8_t lo = 0x80, hi = 0xBF;
    int len;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else
        return 0;
    if (n < (size_t)len || s[1] < lo || s[1] > hi) return 0;
    uint32_t v = c & (0x7Fu >> len);
    for (int k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[k] & 0x3Fu);
    }
    *cp = v;
    return len;
}

/* The UTF-8 bytes of code point c (at most U+10FFFF, not a surrogate) into u (room for 4); returns
 * their count (1..4). */
size_t pvlm_utf8_encode(uint32_t c, char *u);
/* 1 if s[0..n) is well-formed UTF-8 (U+0000 allowed), else 0. */
int pvlm_utf8_valid(const char *s, size_t n);
/* 1 if s[0..n) is well-formed UTF-8 without U+0000 (a caption or other C-string text). */
int pvlm_utf8_text_ok(const char *s, size_t n);
/* Code points of s[0..n) into out (room for n), each byte that does not start a
 * well-formed sequence becoming U+FFFD; returns the count. */
size_t pvlm_utf8_decode_all(const char *s, size_t n, uint32_t *out);
/* A malloc'd, NUL-terminated copy of s[0..n) (caller frees) in which each byte that does
 * not start a well-formed sequence is replaced by U+FFFD (EF BF BD); U+0000 is kept.
 * Its length in *out_n (may be NULL). NULL when out of memory. */
char *pvlm_utf8_sanitize(const char *s, size_t n, size_t *out_n);

#endif
