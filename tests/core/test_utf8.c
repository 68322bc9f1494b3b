/* test_utf8.c - core/utf8 at every boundary of the well-formed table (first and last
 * code point of each length, overlongs, surrogates, U+10FFFF, F5..FF, stray and missing
 * continuation bytes, truncation by n), and exhaustively over all 1-3 byte sequences
 * (plus a sweep of 4-byte ones) against a reference written the other way round: decode
 * the bits naively, then accept iff the code point is a scalar value whose shortest
 * encoding is exactly these bytes. Also valid / text_ok (NUL) / decode_all / sanitize. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "harness.h"

static int encode(uint32_t cp, uint8_t *b) {
    if (cp < 0x80) return b[0] = (uint8_t)cp, 1;
    if (cp < 0x800) return b[0] = (uint8_t)(0xC0 | cp >> 6), b[1] = (uint8_t)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000)
        return b[0] = (uint8_t)(0xE0 | cp >> 12), b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)),
               b[2] = (uint8_t)(0x80 | (cp & 0x3F)), 3;
    b[0] = (uint8_t)(0xF0 | cp >> 18), b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)), b[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Reference: the length the lead byte announces (by its high bits), the bits, then the check. */
static int reference(const uint8_t *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    int len = s[0] < 0x80 ? 1 : (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (!len || (size_t)len > n) return 0;
    uint32_t v = len == 1 ? s[0] : (uint32_t)(s[0] & (0xFF >> (len + 1)));
    for (int k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        v = v << 6 | (s[k] & 0x3F);
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    uint8_t b[4];
    if (encode(v, b) != len || memcmp(b, s, (size_t)len)) return 0; /* overlong */
    *cp = v;
    return len;
}

static int dec(const char *s, size_t n, uint32_t *cp) {
    return pvlm_utf8_decode(s, n, cp);
}

int main(void) {
    uint32_t cp = 0;
    /* boundaries: {bytes, length, expected decode length, code point} */
    static const struct {
        const char *b;
        size_t n;
        int len;
        uint32_t cp;
    } cases[] = {
        {"\x00", 1, 1, 0},
        {"\x7f", 1, 1, 0x7F},
        {"\x80", 1, 0, 0}, /* stray continuation */
        {"\xbf", 1, 0, 0},
        {"\xc0\x80", 2, 0, 0},          /* overlong NUL */
        {"\xc1\xbf", 2, 0, 0},          /* overlong U+7F */
        {"\xc2\x80", 2, 2, 0x80},       /* first 2-byte */
        {"\xdf\xbf", 2, 2, 0x7FF},      /* last 2-byte */
        {"\xe0\x9f\xbf", 3, 0, 0},      /* overlong U+7FF */
        {"\xe0\xa0\x80", 3, 3, 0x800},  /* first 3-byte */
        {"\xed\x9f\xbf", 3, 3, 0xD7FF}, /* last before the surrogates */
        {"\xed\xa0\x80", 3, 0, 0},      /* U+D800 */
        {"\xed\xbf\xbf", 3, 0, 0},      /* U+DFFF */
        {"\xee\x80\x80", 3, 3, 0xE000},
        {"\xef\xbf\xbd", 3, 3, 0xFFFD},
        {"\xef\xbf\xbf", 3, 3, 0xFFFF},
        {"\xf0\x8f\xbf\xbf", 4, 0, 0},        /* overlong U+FFFF */
        {"\xf0\x90\x80\x80", 4, 4, 0x10000},  /* first 4-byte */
        {"\xf4\x8f\xbf\xbf", 4, 4, 0x10FFFF}, /* last code point */
        {"\xf4\x90\x80\x80", 4, 0, 0},        /* U+110000 */
        {"\xf5\x80\x80\x80", 4, 0, 0},        /* F5..FF never lead */
        {"\xf7\xbf\xbf\xbf", 4, 0, 0},
        {"\xf8\x88\x80\x80\x80", 5, 0, 0},
        {"\xfe", 1, 0, 0},
        {"\xff", 1, 0, 0},
        {"\xc2", 1, 0, 0}, /* truncated */
        {"\xe0\xa0", 2, 0, 0},
        {"\xf0\x90\x80", 3, 0, 0},
        {"\xc2\x41", 2, 0, 0}, /* bad continuation */
        {"\xe0\xa0\x41", 3, 0, 0},
        {"\xf0\x90\x80\x41", 4, 0, 0},
        {"\xc2\xc2\x80", 3, 0, 0},
        {"\xe2\x82\xac", 2, 0, 0}, /* a whole sequence cut by n */
        {"\xe2\x82\xac", 3, 3, 0x20AC},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cp = 0xDEADu;
        int k = dec(cases[i].b, cases[i].n, &cp);
        CHECK_MSG(k == cases[i].len && (!k || cp == cases[i].cp), "case %zu: got %d U+%04X", i, k, (unsigned)cp);
        CHECK_MSG(pvlm_utf8_valid(cases[i].b, cases[i].n) == (k == (int)cases[i].n), "valid, case %zu", i);
    }
    CHECK(dec("", 0, &cp) == 0);
    /* exhaustive 1-, 2- and 3-byte inputs against the reference */
    long bad = 0;
    for (uint32_t x = 0; x < (1u << 24); x++) {
        uint8_t b[3] = {(uint8_t)(x >> 16), (uint8_t)(x >> 8), (uint8_t)x};
        for (size_t n = 1; n <= 3; n++) {
            uint32_t c1 = 0, c2 = 0;
            int a = pvlm_utf8_decode(b, n, &c1), r = reference(b, n, &c2);
            if (a != r || (a && c1 != c2)) {
                if (bad++ < 5) fprintf(stderr, "%02x %02x %02x n=%zu: %d vs %d\n", b[0], b[1], b[2], n, a, r);
            }
            if (b[0] < 0x80 || n == 3) break; /* a one-byte lead decides alone */
        }
    }
    /* 4-byte: every lead F0..FF and second byte, with the boundary values of the other two */
    static const uint8_t tail[] = {0x00, 0x41, 0x7F, 0x80, 0x81, 0xA0, 0xBF, 0xC0, 0xFF};
    for (unsigned l = 0xF0; l <= 0xFF; l++)
        for (unsigned s1 = 0; s1 < 256; s1++)
            for (size_t t2 = 0; t2 < sizeof tail; t2++)
                for (size_t t3 = 0; t3 < sizeof tail; t3++) {
                    uint8_t b[4] = {(uint8_t)l, (uint8_t)s1, tail[t2], tail[t3]};
                    uint32_t c1 = 0, c2 = 0;
                    int a = pvlm_utf8_decode(b, 4, &c1), r = reference(b, 4, &c2);
                    if (a != r || (a && c1 != c2)) bad++;
                }
    CHECK_MSG(bad == 0, "%ld disagreements with the reference", bad);
    /* every scalar value round-trips through encode -> decode */
    for (uint32_t c = 0; c <= 0x10FFFF; c++) {
        if (c >= 0xD800 && c <= 0xDFFF) continue;
        uint8_t b[4];
        int n = encode(c, b);
        uint32_t d = 0;
        if (pvlm_utf8_decode(b, (size_t)n, &d) != n || d != c) bad++;
    }
    CHECK_MSG(bad == 0, "%ld code points do not round-trip", bad);

    /* whole strings: NUL is UTF-8, but not caption text */
    CHECK(pvlm_utf8_valid("caf\xc3\xa9 \xf0\x9f\x98\x80", 10));
    CHECK(pvlm_utf8_valid("a\0b", 3) && !pvlm_utf8_text_ok("a\0b", 3) && pvlm_utf8_text_ok("ab", 2));
    CHECK(!pvlm_utf8_text_ok("a\xc0\x80", 3)); /* "modified UTF-8" NUL is overlong */
    CHECK(pvlm_utf8_valid("", 0) && pvlm_utf8_text_ok("", 0));
    /* decode_all and sanitize: each bad byte is one U+FFFD */
    uint32_t cps[16];
    size_t m = pvlm_utf8_decode_all("a\xe0\x80\x80\xc3\xa9", 6, cps);
    CHECK(m == 5 && cps[0] == 'a' && cps[1] == 0xFFFD && cps[2] == 0xFFFD && cps[3] == 0xFFFD && cps[4] == 0xE9);
    size_t on = 0;
    char *s = pvlm_utf8_sanitize("a\xff"
                                 "b\xed\xa0\x80\xc3\xa9",
                                 8, &on);
    CHECK(s && on == 3 + 3 + 1 + 9 + 2 - 2 &&
          !strcmp(s, "a\xef\xbf\xbd"
                     "b\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xc3\xa9"));
    CHECK(s && pvlm_utf8_valid(s, on));
    free(s);
    s = pvlm_utf8_sanitize("", 0, &on);
    CHECK(s && on == 0 && !*s);
    free(s);
    return pvlm_test_done("core_utf8");
}
