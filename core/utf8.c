/* utf8.c - see utf8.h. */
#include "utf8.h"

#include <stdlib.h>
#include <string.h>

int pvlm_utf8_valid(const char *s, size_t n) {
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        if ((unsigned char)s[i] < 0x80) { /* ASCII run: the common case */
            i++;
            continue;
        }
        int k = pvlm_utf8_decode(s + i, n - i, &cp);
        if (!k) return 0;
        i += (size_t)k;
    }
    return 1;
}

int pvlm_utf8_text_ok(const char *s, size_t n) {
    return !memchr(s, 0, n) && pvlm_utf8_valid(s, n);
}

size_t pvlm_utf8_decode_all(const char *s, size_t n, uint32_t *out) {
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        int k = pvlm_utf8_decode(s + i, n - i, &out[m]);
        if (!k) out[m] = 0xFFFD, k = 1;
        m++;
        i += (size_t)k;
    }
    return m;
}

char *pvlm_utf8_sanitize(const char *s, size_t n, size_t *out_n) {
    char *out = malloc(3 * n + 1); /* each bad byte becomes the 3-byte U+FFFD */
    if (!out) return NULL;
    size_t w = 0;
    uint32_t cp;
    for (size_t r = 0; r < n;) {
        int k = pvlm_utf8_decode(s + r, n - r, &cp);
        if (k) {
            memcpy(out + w, s + r, (size_t)k);
            w += (size_t)k, r += (size_t)k;
        } else {
            memcpy(out + w, "\xEF\xBF\xBD", 3);
            w += 3, r += 1;
        }
    }
    out[w] = '\0';
    if (out_n) *out_n = w;
    return out;
}

size_t pvlm_utf8_encode(uint32_t c, char *u) {
    if (c < 0x80) {
        u[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        u[0] = (char)(0xC0 | (c >> 6));
        u[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        u[0] = (char)(0xE0 | (c >> 12));
        u[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        u[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    u[0] = (char)(0xF0 | (c >> 18));
    u[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    u[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}
