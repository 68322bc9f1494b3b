/* ptb.c - PTB tokenization as pycocoevalcap runs it (Stanford CoreNLP 3.4.1
 * PTBTokenizer -preserveLines -lowerCase + punctuation-token removal), and the
 * token-id / n-gram corpus for the caption metrics. See ptb.h.
 *
 * The Java lexer (JFlex, PTBLexer.flex) picks at each position the longest
 * match among its rules, the earlier rule on ties, and a rule "A/B" (trailing
 * context) counts B in the length but emits only A. scan_one() below mirrors
 * that: every rule is a matcher returning (length, emitted token); the longest
 * wins. Rules, written here from the lexer's documented behaviour:
 *   SGML tags, URLs, @names/#tags, words with clitics split off ("do n't",
 *   "it 's", "ca n't", "gon na"), numbers (3.5, 2,000, 10:30), fractions
 *   ("3 1/2" is one token with a no-break space; ½ -> 1/2), hyphenated and
 *   slashed words (e-mail, and/or), "AT&T", abbreviations that keep their
 *   period (Mr. etc. a.m. U.S., single letters "A.", No. before a number),
 *   quotes -> `` '' ` ', brackets -> -LRB- -RRB- -LSB- -RSB- -LCB- -RCB-,
 *   dashes -> --, ellipses -> ..., £ -> #, € -> $, &amp; -> &, symbols as
 *   single tokens, and everything else (emoji, controls) dropped.
 */
#include "eval/ptb.h"

#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"

/* ---------- small growable byte buffer ---------- */
typedef struct {
    char *s;
    size_t n, cap;
    int oom;
    int on_stack; /* s is the caller's stack buffer: copy out on growth, never free */
} sbuf;

static void sb_reserve(sbuf *b, size_t extra) {
    if (b->oom) return;
    if (b->n + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra + 1) cap *= 2;
    char *p = b->on_stack ? malloc(cap) : realloc(b->s, cap);
    if (!p) {
        b->oom = 1;
        return;
    }
    if (b->on_stack) {
        memcpy(p, b->s, b->n);
        b->on_stack = 0;
    }
    b->s = p;
    b->cap = cap;
}
static void sb_free(sbuf *b) {
    if (!b->on_stack) free(b->s);
}
static void sb_put(sbuf *b, const char *s, size_t n) {
    sb_reserve(b, n);
    if (b->oom) return;
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void sb_putc(sbuf *b, char c) {
    sb_put(b, &c, 1);
}
static void sb_put_cp(sbuf *b, uint32_t c) {
    char u[4];
    size_t n;
    if (c < 0x80) {
        u[0] = (char)c;
        n = 1;
    } else if (c < 0x800) {
        u[0] = (char)(0xC0 | (c >> 6));
        u[1] = (char)(0x80 | (c & 0x3F));
        n = 2;
    } else if (c < 0x10000) {
        u[0] = (char)(0xE0 | (c >> 12));
        u[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        u[2] = (char)(0x80 | (c & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (c >> 18));
        u[1] = (char)(0x80 | ((c >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((c >> 6) & 0x3F));
        u[3] = (char)(0x80 | (c & 0x3F));
        n = 4;
    }
    sb_put(b, u, n);
}

/* ---------- UTF-8 decoding: core/utf8.h (each byte that starts no valid sequence -> U+FFFD, which is
 * then dropped) ---------- */

/* ---------- character classes ---------- */
static uint32_t lower_cp(uint32_t c) {
    if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
    if (c >= 0x100 && c <= 0x137) return c | 1;
    if (c >= 0x139 && c <= 0x148) return (c & 1) ? c + 1 : c;
    if (c >= 0x14A && c <= 0x177) return c | 1;
    if (c == 0x178) return 0xFF;
    if (c >= 0x179 && c <= 0x17E) return (c & 1) ? c + 1 : c;
    if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) return c + 32;
    if (c == 0x386) return 0x3AC;
    if (c >= 0x388 && c <= 0x38A) return c + 37;
    if (c == 0x38C) return 0x3CC;
    if (c == 0x38E || c == 0x38F) return c + 63;
    if (c >= 0x400 && c <= 0x40F) return c + 80;
    if (c >= 0x410 && c <= 0x42F) return c + 32;
    if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF) || (c >= 0x4D0 && c <= 0x52F)) return c | 1;
    if (c >= 0x4C1 && c <= 0x4CE) return (c & 1) ? c + 1 : c;
    if (c == 0x4C0) return 0x4CF;
    if (c >= 0x531 && c <= 0x556) return c + 48;
    if ((c >= 0x1E00 && c <= 0x1E95) || (c >= 0x1EA0 && c <= 0x1EFF)) return c | 1;
    if (c >= 0xFF21 && c <= 0xFF3A) return c + 32;
    return c;
}

size_t pvlm_ptb_utf8_lower(const char *in, size_t len, char *out) {
    const unsigned char *s = (const unsigned char *)in;
    size_t o = 0, i = 0;
    sbuf b = {0};
    while (i < len) {
        /* One character at a time, so that bytes which are not UTF-8 are copied as they are, like the
         * other characters this does not know: decoded to U+FFFD (3 bytes each) they overran the
         * caller's 2*len+1 bytes. */
        uint32_t cp[4];
        size_t w = len - i < 4 ? len - i : 4;
        if (!pvlm_utf8_decode(s + i, w, cp)) cp[0] = 0xFFFD;
        if (cp[0] == 0xFFFD && !(w >= 3 && s[i] == 0xEF && s[i + 1] == 0xBF && s[i + 2] == 0xBD)) {
            sb_putc(&b, (char)s[i++]);
            continue;
        }
        if (cp[0] == 0x130) { /* Java: U+0130 lower-cases to "i" + U+0307 */
            sb_putc(&b, 'i');
            sb_put_cp(&b, 0x307);
        } else {
            sb_put_cp(&b, lower_cp(cp[0]));
        }
        i += cp[0] < 0x80 ? 1 : cp[0] < 0x800 ? 2 : cp[0] < 0x10000 ? 3 : 4;
    }
    if (!b.oom && b.s) {
        memcpy(out, b.s, b.n + 1);
        o = b.n;
    } else {
        out[0] = 0;
    }
    free(b.s);
    return o;
}

static int is_ascii_letter(uint32_t c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}
static int is_digit(uint32_t c) {
    return c >= '0' && c <= '9';
}
/* Unicode letters (and combining marks, which the lexer keeps inside words),
 * for the blocks captions contain in practice. */
static int is_letter(uint32_t c) {
    if (c < 0x80) return is_ascii_letter(c);
    if (c == 0xAA || c == 0xB5 || c == 0xBA || c == 0xAD) return 1;
    if (c >= 0xC0 && c <= 0x24F) return c != 0xD7 && c != 0xF7;
    if (c >= 0x250 && c <= 0x2C1) return 1;
    if (c >= 0x2C6 && c <= 0x2D1) return 1;
    if (c >= 0x2E0 && c <= 0x2E4) return 1;
    if (c >= 0x300 && c <= 0x36F) return 1;
    if (c >= 0x370 && c <= 0x3FF) return c != 0x37E && c != 0x387 && c != 0x375 && c != 0x384 && c != 0x385;
    if (c >= 0x400 && c <= 0x52F) return c != 0x482;
    if (c >= 0x531 && c <= 0x587) return c < 0x557 || c > 0x560;
    if (c >= 0x591 && c <= 0x5F2) return c != 0x5BE && c != 0x5C0 && c != 0x5C3 && c != 0x5C6;
    if (c >= 0x610 && c <= 0x6FF)
        return !(c >= 0x660 && c <= 0x66D) && c != 0x6D4 && !(c >= 0x6F0 && c <= 0x6F9) && c != 0x61B && c != 0x61E &&
               c != 0x61F;
    if (c >= 0x900 && c <= 0xDFF) return 1; /* Indic scripts (digits/danda excepted below) */
    if (c >= 0xE00 && c <= 0xE7F) return c != 0xE3F && c != 0xE4F && !(c >= 0xE50 && c <= 0xE5B);
    if (c >= 0x10A0 && c <= 0x10FF) return 1;
    if (c >= 0x1100 && c <= 0x11FF) return 1;
    if (c >= 0x1E00 && c <= 0x1FFF)
        return c != 0x1FBD && !(c >= 0x1FBF && c <= 0x1FC1) && !(c >= 0x1FCD && c <= 0x1FCF) &&
               !(c >= 0x1FDD && c <= 0x1FDF) && !(c >= 0x1FED && c <= 0x1FEF) && c != 0x1FFD && c != 0x1FFE;
    if (c >= 0x3041 && c <= 0x30FF) return c != 0x30FB && c != 0x30A0;
    if (c >= 0x3105 && c <= 0x312F) return 1;
    if (c >= 0x3131 && c <= 0x318E) return 1;
    if (c >= 0x3400 && c <= 0x4DBF) return 1;
    if (c >= 0x4E00 && c <= 0x9FFF) return 1;
    if (c >= 0xAC00 && c <= 0xD7A3) return 1;
    if (c >= 0xF900 && c <= 0xFAFF) return 1;
    if (c >= 0xFB00 && c <= 0xFB4F) return 1; /* ligatures (fi) stay as they are */
    if (c >= 0xFF21 && c <= 0xFF3A) return 1;
    if (c >= 0xFF41 && c <= 0xFF5A) return 1;
    if (c >= 0xFF66 && c <= 0xFFDC) return 1;
    return 0;
}
static int is_alnum(uint32_t c) {
    return is_letter(c) || is_digit(c);
}
static int is_space(uint32_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}
static int is_apos(uint32_t c) {
    return c == '\'' || c == 0x2019 || c == 0x92;
}
/* APOSETCETERA: apostrophe-like characters accepted inside clitics */
static int is_apos_etc(uint32_t c) {
    return is_apos(c) || c == '`' || c == 0x2018 || c == 0x201B || c == 0x91;
}
static int is_quote(uint32_t c) {
    return c == '"' || c == '\'' || c == '`' || (c >= 0x2018 && c <= 0x201F) || c == 0x2039 || c == 0x203A ||
           c == 0xAB || c == 0xBB || (c >= 0x91 && c <= 0x94) || c == 0x82 || c == 0x84;
}
static int is_currency(uint32_t c) {
    return c == '$' || (c >= 0xA2 && c <= 0xA5) || (c >= 0x20A0 && c <= 0x20CF) || c == 0x60B || c == 0xE3F ||
           c == 0xFFE0 || c == 0xFFE1 || c == 0xFFE5 || c == 0xFFE6;
}
/* Characters that stand alone as one token (PTB3 MISCSYMBOL and plain ASCII symbols). */
static int is_symbol(uint32_t c) {
    if (c < 0x80)
        return c == '+' || c == '%' || c == '&' || c == '~' || c == '^' || c == '|' || c == '\\' || c == '=' ||
               c == '*' || c == '/' || c == '@' || c == '#' || c == '_' || c == '<' || c == '>';
    if (c == 0xA6 || c == 0xA7 || c == 0xA8 || c == 0xA9 || c == 0xAC || c == 0xAE || c == 0xAF) return 1;
    if ((c >= 0xB0 && c <= 0xB4) || (c >= 0xB6 && c <= 0xB9) || c == 0xD7 || c == 0xF7) return 1;
    if (c == 0x387 || c == 0x5BE || c == 0x5C0 || c == 0x5C3 || c == 0x5C6 || c == 0x5F3 || c == 0x5F4) return 1;
    if (c == 0x2016 || c == 0x2017 || (c >= 0x2020 && c <= 0x2025) || (c >= 0x2030 && c <= 0x2038)) return 1;
    if (c == 0x203B || (c >= 0x203E && c <= 0x2042) || c == 0x2044 || (c >= 0x207A && c <= 0x207F)) return 1;
    if ((c >= 0x208A && c <= 0x208E) || (c >= 0x2100 && c <= 0x214F) || (c >= 0x2190 && c <= 0x21FF)) return 1;
    if ((c >= 0x2200 && c <= 0x2BFF) || (c >= 0x3001 && c <= 0x3006) || (c >= 0x3008 && c <= 0x3020)) return 1;
    if (c == 0x30FB || (c >= 0xFF01 && c <= 0xFF0F) || (c >= 0xFF1A && c <= 0xFF20)) return 1;
    if ((c >= 0xFF3B && c <= 0xFF40) || (c >= 0xFF5B && c <= 0xFF65)) return 1;
    return 0;
}
static int is_dash(uint32_t c) {
    return c == 0x2012 || c == 0x2013 || c == 0x2014 || c == 0x2015 || c == 0x96 || c == 0x97;
}

/* ---------- the scanner ---------- */
typedef struct {
    const uint32_t *c;
    size_t n;
    size_t *next_gt; /* index of the next '>' at or after i (n if none): keeps SGML matching linear */
} scan;

static uint32_t at(const scan *s, size_t i) {
    return i < s->n ? s->c[i] : 0;
}

/* case-insensitive compare of an ASCII word against code points */
static int ieq(const scan *s, size_t p, size_t len, const char *w) {
    if (lower_cp(at(s, p)) != (uint32_t)(unsigned char)w[0] || strlen(w) != len) return 0;
    for (size_t k = 0; k < len; k++) {
        uint32_t c = at(s, p + k);
        if (c >= 0x80 || lower_cp(c) != (uint32_t)(unsigned char)w[k]) return 0;
    }
    return 1;
}
/* Is the ASCII word at p (len letters) in the case-insensitive list ci or the
 * case-sensitive list cs? (Words are at most 8 letters in these lists.) */
static int in_list(const scan *s, size_t p, size_t len, const char *const *ci, const char *const *cs) {
    char w[16], lw[16];
    if (len == 0 || len > 8) return 0;
    for (size_t k = 0; k < len; k++) {
        uint32_t c = at(s, p + k);
        if (c >= 0x80) return 0;
        w[k] = (char)c;
        lw[k] = (char)lower_cp(c);
    }
    w[len] = lw[len] = 0;
    for (; ci && *ci; ci++)
        if ((*ci)[0] == lw[0] && !strcmp(*ci, lw)) return 1;
    for (; cs && *cs; cs++)
        if ((*cs)[0] == w[0] && !strcmp(*cs, w)) return 1;
    return 0;
}

/* Abbreviations that keep their period (PTBLexer ABBREV1: months, days,
 * states, companies, ...; ABBREV2: titles, acronyms; case-sensitive entries
 * are those the lexer writes with a bracketed first letter). */
static const char *const abbrev1_ci[] = {
    "jan",  "feb",     "mar",  "apr",   "jun",  "jul",  "aug",  "sep",   "sept", "oct",  "nov",  "dec",  "mon",  "tue",
    "tues", "wed",     "thu",  "thurs", "fri",  "ala",  "ariz", "calif", "colo", "conn", "ct",   "dak",  "fla",  "ga",
    "ind",  "kan",     "kans", "ky",    "md",   "mich", "minn", "mo",    "mont", "neb",  "nev",  "okla", "penn", "tenn",
    "va",   "vt",      "wis",  "wisc",  "wyo",  "inc",  "co",   "cos",   "corp", "pty",  "ptys", "pte",  "ltd",  "plc",
    "rt",   "bancorp", "dept", "bhd",   "assn", "univ", "intl", "sys",   "tel",  "est",  "ext",  "sq",   "jr",   "sr",
    "bros", "esq",     "etc",  "al",    "seq",  "bldg", "pls",  "wrt",   "orig", "incl", "ph.d", "ed.d", NULL};
static const char *const abbrev1_cs[] = {"Az",   "Ark", "Del", "Ill", "La",   "Mass",
                                         "Miss", "Ore", "Pa",  "Tex", "Wash", NULL};
static const char *const abbrev2_ci[] = {
    "mr",    "mrs",  "ms",   "dr",    "drs",    "prof", "profs", "sen",   "sens",  "rep",  "reps",  "atty",
    "attys", "lt",   "col",  "gen",   "messrs", "gov",  "govs",  "adm",   "rev",   "maj",  "sgt",   "cpl",
    "pvt",   "capt", "st",   "ste",   "sta",    "ave",  "pres",  "lieut", "hon",   "brig", "cmdr",  "comdr",
    "pfc",   "spc",  "supt", "supts", "det",    "mt",   "ft",    "adj",   "adv",   "asst", "assoc", "ens",
    "insp",  "mlle", "mme",  "msgr",  "sfc",    "invt", "elec",  "natl",  "mfg",   "mtg",  "blvd",  "rd",
    "viz",   "exh",  "exhs", "govt",  "wm",     "jos",  "cie",   "cf",    "treas", NULL};
static const char *const abbrev2_cs[] = {"Fr", "Pl", "v", NULL};
/* ABBREV3: only before a number ("No. 5", "fig. 3") */
static const char *const abbrev3_ci[] = {
    "ca",   "ch",    "chs", "fig",  "figs", "prop",  "no",   "nos", "nr", "nrs",    "vol", "vols", "sec", "sect",
    "secs", "sects", "art", "arts", "para", "paras", "bldg", "pp",  "op", "approx", "rs",  "apt",  "res", NULL};

/* token kinds for punctuation normalisation */
typedef struct {
    size_t len;       /* characters consumed */
    size_t tlen;      /* characters of text emitted as the token (<= len) unless `norm` */
    const char *norm; /* fixed replacement text (NULL: the source text) */
    int drop;         /* consume without a token (untokenizable) */
    int nbsp;         /* spaces inside the token become U+00A0 */
} match;

static void consider(match *best, size_t len, size_t tlen, const char *norm) {
    if (len > best->len) {
        best->len = len;
        best->tlen = tlen;
        best->norm = norm;
        best->drop = 0;
        best->nbsp = 0;
    }
}

/* letters/digits run */
static size_t run_alnum(const scan *s, size_t p) {
    size_t q = p;
    while (q < s->n && is_alnum(s->c[q])) q++;
    return q - p;
}
static size_t run_letters(const scan *s, size_t p) {
    size_t q = p;
    while (q < s->n && is_letter(s->c[q])) q++;
    return q - p;
}
static size_t run_digits(const scan *s, size_t p) {
    size_t q = p;
    while (q < s->n && is_digit(s->c[q])) q++;
    return q - p;
}

/* WORD = LETTER (LETTER|DIGIT)* ([.!?] LETTER (LETTER|DIGIT)*)* */
static size_t m_word(const scan *s, size_t p) {
    if (!is_letter(at(s, p))) return 0;
    size_t q = p + run_alnum(s, p);
    for (;;) {
        uint32_t c = at(s, q);
        if ((c == '.' || c == '!' || c == '?') && is_letter(at(s, q + 1))) {
            q += 1 + run_alnum(s, q + 1);
        } else {
            break;
        }
    }
    return q - p;
}

/* REDAUX = APOS (s|m|d|re|ve|ll), case-insensitive; returns its length or 0 */
static size_t m_redaux(const scan *s, size_t p) {
    if (!is_apos_etc(at(s, p))) return 0;
    uint32_t a = lower_cp(at(s, p + 1)), b = lower_cp(at(s, p + 2));
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    if (a == 's' || a == 'm' || a == 'd') return 2;
    return 0;
}
/* SREDAUX = n APOS t */
static size_t m_sredaux(const scan *s, size_t p) {
    if (lower_cp(at(s, p)) == 'n' && is_apos_etc(at(s, p + 1)) && lower_cp(at(s, p + 2)) == 't') return 3;
    return 0;
}

/* NUM = DIGIT+ | DIGIT* ([.:,] DIGIT+)+ ; NUMBER = [-+]? NUM */
static size_t m_number(const scan *s, size_t p) {
    size_t q = p;
    if (at(s, q) == '-' || at(s, q) == '+') q++;
    size_t d = run_digits(s, q);
    size_t r = q + d;
    for (;;) {
        uint32_t c = at(s, r);
        if ((c == '.' || c == ':' || c == ',') && is_digit(at(s, r + 1))) {
            r += 1 + run_digits(s, r + 1);
        } else {
            break;
        }
    }
    if (r == q) return 0;
    return r - p;
}

/* FRAC = (DIGIT{1,4} [- \u00A0])? DIGIT{1,4} \\? / DIGIT{1,4} */
static size_t m_frac_core(const scan *s, size_t p) {
    size_t d = run_digits(s, p);
    if (d < 1 || d > 4) return 0;
    size_t q = p + d;
    if (at(s, q) == '\\') q++;
    if (at(s, q) != '/') return 0;
    q++;
    size_t e = run_digits(s, q);
    if (e < 1 || e > 4) return 0;
    return q + e - p;
}
static size_t m_frac(const scan *s, size_t p) {
    size_t best = m_frac_core(s, p);
    size_t d = run_digits(s, p);
    if (d >= 1 && d <= 4) {
        uint32_t c = at(s, p + d);
        if (c == '-' || c == ' ' || c == 0xA0) {
            size_t f = m_frac_core(s, p + d + 1);
            if (f && d + 1 + f > best) best = d + 1 + f;
        }
    }
    return best;
}

/* THING: ([dDoOlL] APOS ALNUM)? ALNUM+ ((-|_) ([dDoOlL] APOS ALNUM)? ALNUM+)* */
static size_t m_thing_part(const scan *s, size_t p) {
    uint32_t c = at(s, p);
    if ((c == 'd' || c == 'D' || c == 'o' || c == 'O' || c == 'l' || c == 'L') && is_apos_etc(at(s, p + 1)) &&
        is_alnum(at(s, p + 2)))
        return 2 + run_alnum(s, p + 2);
    return run_alnum(s, p);
}
static size_t m_thing(const scan *s, size_t p) {
    size_t a = m_thing_part(s, p);
    if (!a) return 0;
    size_t q = p + a;
    for (;;) {
        uint32_t c = at(s, q);
        if (c == '-' || c == '_' || c == 0xAD) {
            size_t b = m_thing_part(s, q + 1);
            if (!b) break;
            q += 1 + b;
        } else {
            break;
        }
    }
    return q - p;
}
/* THING3: ALNUM+ (-ALPHA+){0,2} (\\?/ ALNUM+ (-ALPHA+){0,2}){1,2}  (and/or, a/b) */
static size_t m_thing3_seg(const scan *s, size_t p) {
    size_t a = run_alnum(s, p);
    if (!a) return 0;
    size_t q = p + a;
    for (int k = 0; k < 2; k++) {
        if (at(s, q) == '-' && run_letters(s, q + 1)) {
            q += 1 + run_letters(s, q + 1);
        } else {
            break;
        }
    }
    return q - p;
}
static size_t m_thing3(const scan *s, size_t p) {
    size_t a = m_thing3_seg(s, p);
    if (!a) return 0;
    size_t q = p + a, best = 0;
    for (int k = 0; k < 2; k++) {
        size_t r = q;
        if (at(s, r) == '\\') r++;
        if (at(s, r) != '/') break;
        size_t b = m_thing3_seg(s, r + 1);
        if (!b) break;
        q = r + 1 + b;
        best = q - p;
    }
    return best;
}
/* THINGA: [A-Z]+ (([+&]|&amp;) [A-Z]+)+  (AT&T; case-sensitive) */
static size_t m_thinga(const scan *s, size_t p) {
    size_t q = p, best = 0;
    while (at(s, q) >= 'A' && at(s, q) <= 'Z') q++;
    if (q == p) return 0;
    for (;;) {
        size_t r = q;
        if (at(s, r) == '+' || at(s, r) == '&') {
            if (at(s, r) == '&' && ieq(s, r, 5, "&amp;"))
                r += 5;
            else
                r++;
        } else {
            break;
        }
        size_t t = r;
        while (at(s, t) >= 'A' && at(s, t) <= 'Z') t++;
        if (t == r) break;
        q = t;
        best = q - p;
    }
    return best;
}
/* ACRO = [A-Za-z] (\.[A-Za-z])*  (length without the final period) */
static size_t m_acro(const scan *s, size_t p) {
    if (!is_ascii_letter(at(s, p))) return 0;
    size_t q = p + 1;
    while (at(s, q) == '.' && is_ascii_letter(at(s, q + 1))) q += 2;
    return q - p;
}
/* URLs: scheme:// or www. followed by non-space, not ending in punctuation */
static int url_char(uint32_t c) {
    return c > ' ' && !is_space(c) && c != '"' && c != '<' && c != '>' && c != '|' && c != '(' && c != ')' && c != 0x7F;
}
static size_t m_url(const scan *s, size_t p) {
    size_t q = p;
    uint32_t c0 = lower_cp(at(s, p));
    if (c0 != 'h' && c0 != 'f' && c0 != 'w') return 0;
    if (ieq(s, p, 7, "http://"))
        q = p + 7;
    else if (ieq(s, p, 8, "https://"))
        q = p + 8;
    else if (ieq(s, p, 6, "ftp://"))
        q = p + 6;
    else if (ieq(s, p, 4, "www.") && is_alnum(at(s, p + 4)))
        q = p + 4;
    else
        return 0;
    size_t start = q;
    while (q < s->n && url_char(s->c[q])) q++;
    while (q > start) {
        uint32_t c = s->c[q - 1];
        if (c == '.' || c == '!' || c == '?' || c == ',' || c == '-' || c == '{' || c == '}' || c == ';' || c == ':' ||
            c == '\'' || c == '`')
            q--;
        else
            break;
    }
    if (q == start) return 0;
    return q - p;
}
static size_t m_sgml(const scan *s, size_t p) {
    if (at(s, p) != '<') return 0;
    size_t q = p + 1;
    if (at(s, q) == '/') q++;
    uint32_t c = at(s, q);
    if (!(is_ascii_letter(c) || c == '!' || c == '?')) return 0;
    size_t gt = s->next_gt[q];
    if (gt >= s->n) return 0;
    for (size_t k = q; k < gt; k++)
        if (s->c[k] == '\n' || s->c[k] == '\r') return 0;
    return gt + 1 - p;
}
/* @name / #tag (TWITTER) */
static size_t m_twitter(const scan *s, size_t p) {
    uint32_t c = at(s, p);
    if (c != '@' && c != '#') return 0;
    uint32_t d = at(s, p + 1);
    if (!(is_ascii_letter(d) || d == '_')) return 0;
    size_t q = p + 2;
    while (is_ascii_letter(at(s, q)) || is_digit(at(s, q)) || at(s, q) == '_') q++;
    return q - p;
}

static const char *currency_norm(uint32_t c) {
    switch (c) {
    case 0xA2:
        return "cents";
    case 0xA3:
        return "#";
    case 0x20AC:
        return "$";
    default:
        return NULL;
    }
}
static const char *fraction_norm(uint32_t c) {
    switch (c) {
    case 0xBC:
        return "1/4";
    case 0xBD:
        return "1/2";
    case 0xBE:
        return "3/4";
    case 0x2153:
        return "1/3";
    case 0x2154:
        return "2/3";
    case 0x2155:
        return "1/5";
    case 0x2156:
        return "2/5";
    case 0x2157:
        return "3/5";
    case 0x2158:
        return "4/5";
    case 0x2159:
        return "1/6";
    case 0x215A:
        return "5/6";
    case 0x215B:
        return "1/8";
    case 0x215C:
        return "3/8";
    case 0x215D:
        return "5/8";
    case 0x215E:
        return "7/8";
    default:
        return NULL;
    }
}

/* One token at p (p is not whitespace). */
static match scan_one(const scan *s, size_t p) {
    match m = {0, 0, NULL, 0, 0};
    uint32_t c = s->c[p];
    size_t k;

    /* SGML tags */
    if ((k = m_sgml(s, p))) {
        consider(&m, k, k, NULL);
        m.nbsp = 1;
    }
    /* entities */
    if (c == '&') {
        if (ieq(s, p, 5, "&amp;")) consider(&m, 5, 0, "&");
        if (ieq(s, p, 4, "&lt;")) consider(&m, 4, 0, "<");
        if (ieq(s, p, 4, "&gt;")) consider(&m, 4, 0, ">");
        if (ieq(s, p, 6, "&quot;")) consider(&m, 6, 0, "''");
        if (ieq(s, p, 6, "&apos;")) consider(&m, 6, 0, "'");
        if (ieq(s, p, 7, "&mdash;")) consider(&m, 7, 0, "--");
    }
    /* assimilations: gonna -> gon na, cannot -> can not, ... */
    if (is_letter(c)) {
        static const char *const two[] = {"gonna", "gotta", "lemme", "gimme", "wanna", NULL};
        uint32_t lc = lower_cp(c);
        if (lc == 'g' || lc == 'l' || lc == 'w')
            for (const char *const *w = two; *w; w++)
                if (ieq(s, p, 5, *w) && !is_letter(at(s, p + 5))) consider(&m, 5, 3, NULL);
        if (lc == 'c' && ieq(s, p, 6, "cannot") && !is_letter(at(s, p + 6))) consider(&m, 6, 3, NULL);
        /* y'all: the lexer keeps "y'" together */
        if ((c == 'y' || c == 'Y') && is_apos(at(s, p + 1)) && is_letter(at(s, p + 2))) consider(&m, 2, 2, NULL);
    }
    /* words with a clitic behind them: WORD/REDAUX, SWORD/SREDAUX */
    if (is_letter(c)) {
        size_t w = m_word(s, p);
        /* the clitic may start anywhere inside the word run: try the longest prefix followed by it */
        for (size_t e = w; e >= 1; e--) {
            size_t r = m_redaux(s, p + e);
            if (r) {
                consider(&m, e + r, e, NULL);
                break;
            }
        }
        /* SWORD = [A-Za-z]* [A-MO-Za-mo-z] followed by n't */
        size_t a = 0;
        while (is_ascii_letter(at(s, p + a)) || at(s, p + a) == 0xAD) a++;
        for (size_t e = a; e >= 1; e--) {
            uint32_t last = at(s, p + e - 1);
            if (last == 'n' || last == 'N') continue;
            if (m_sredaux(s, p + e)) {
                consider(&m, e + 3, e, NULL);
                break;
            }
        }
        consider(&m, w, w, NULL);
    }
    /* APOWORD: words starting with an apostrophe ('em 'cause 'til 'till '90s 'n') */
    if (is_apos(c)) {
        static const char *const apow[] = {"em", "cause", "til", "till", NULL};
        size_t l = run_letters(s, p + 1);
        for (const char *const *w = apow; *w; w++)
            if (ieq(s, p + 1, l, *w)) consider(&m, 1 + l, 1 + l, NULL);
        if (at(s, p + 1) >= '2' && at(s, p + 1) <= '9' && at(s, p + 2) == '0' && lower_cp(at(s, p + 3)) == 's' &&
            !is_alnum(at(s, p + 4)))
            consider(&m, 4, 4, NULL);
        if (lower_cp(at(s, p + 1)) == 'n' && !is_letter(at(s, p + 2)))
            consider(&m, is_apos(at(s, p + 2)) ? 3 : 2, is_apos(at(s, p + 2)) ? 3 : 2, NULL);
    }
    /* clitic tokens themselves: REDAUX/[^A-Za-z], SREDAUX */
    if (is_apos_etc(c)) {
        size_t r = m_redaux(s, p);
        if (r && !is_ascii_letter(at(s, p + r))) consider(&m, r, r, NULL);
    }
    if ((k = m_sredaux(s, p))) consider(&m, k, k, NULL);
    /* URLs, @names, #tags */
    if ((k = m_url(s, p))) consider(&m, k, k, NULL);
    if ((k = m_twitter(s, p))) consider(&m, k, k, NULL);
    /* numbers and fractions */
    if (is_digit(c) || ((c == '-' || c == '+') && is_digit(at(s, p + 1)))) {
        if ((k = m_number(s, p))) consider(&m, k, k, NULL);
        if ((k = m_frac(s, p))) {
            if (k > m.len) {
                consider(&m, k, k, NULL);
                m.nbsp = 1;
            }
        }
    }
    if (fraction_norm(c)) consider(&m, 1, 0, fraction_norm(c));
    /* slashed words, hyphenated words, AT&T */
    if (is_alnum(c)) {
        if ((k = m_thing3(s, p))) consider(&m, k, k, NULL);
        if ((k = m_thing(s, p))) consider(&m, k, k, NULL);
        if ((k = m_thinga(s, p))) consider(&m, k, k, NULL);
    }
    /* currency */
    if (is_currency(c)) consider(&m, 1, currency_norm(c) ? 0 : 1, currency_norm(c));
    if (c >= 'A' && c <= 'Z') { /* US$, C$ */
        size_t q = p;
        while (at(s, q) >= 'A' && at(s, q) <= 'Z') q++;
        if (at(s, q) == '$') consider(&m, q + 1 - p, q + 1 - p, NULL);
    }
    /* abbreviations keeping their period */
    if (is_letter(c)) {
        size_t a = 0;
        while (is_ascii_letter(at(s, p + a))) a++;
        if (a && at(s, p + a) == '.') {
            if (in_list(s, p, a, abbrev1_ci, abbrev1_cs) || in_list(s, p, a, abbrev2_ci, abbrev2_cs))
                consider(&m, a + 1, a + 1, NULL);
            if (in_list(s, p, a, abbrev3_ci, NULL)) {
                size_t q = p + a + 1;
                while (at(s, q) == ' ' || at(s, q) == 0xA0) q++;
                if (is_digit(at(s, q))) consider(&m, a + 1, a + 1, NULL);
            }
            if (ieq(s, p, a, "vs") && (is_space(at(s, p + a + 1)) || p + a + 1 >= s->n))
                consider(&m, a + 1, a + 1, NULL);
        }
        /* Ph.D, Ed.D */
        if (at(s, p + 2) == '.' && (ieq(s, p, 5, "ph.d.") || ieq(s, p, 5, "ed.d."))) consider(&m, 5, 5, NULL);
        if (at(s, p + 1) == '.' && ieq(s, p, 6, "a.k.a.")) consider(&m, 6, 6, NULL);
        /* acronyms: A. U.S. a.m. (with the final period), T.V (before a space) */
        size_t ac = m_acro(s, p);
        if (ac) {
            /* "I." is the pronoun before a period, not an initial: the official
               tokenization of the Karpathy-test references splits it (the
               golden CIDEr values depend on it), while "A." "N." "U." keep it */
            if (at(s, p + ac) == '.' && !(ac == 1 && c == 'I')) consider(&m, ac + 1, ac + 1, NULL);
            if (ac > 1 && (p + ac >= s->n || is_space(at(s, p + ac)))) consider(&m, ac, ac, NULL);
        }
    }
    if (m.len) return m;

    /* punctuation and symbols */
    if (is_quote(c)) {
        /* quotes become `` '' ` ' and are removed afterwards; emit them for the raw view */
        size_t q = p + 1;
        if (q < s->n && is_quote(s->c[q]) && s->c[q] != '"' && c != '"') q++;
        consider(&m, q - p, 0,
                 (c == '"' || c == 0x201C || c == 0x201D || c == 0x201E || c == 0xAB || c == 0xBB || q - p == 2) ? "''"
                                                                                                                 : "'");
        return m;
    }
    if (c == '.') {
        size_t q = p;
        while (at(s, q) == '.') q++;
        if (q - p >= 3) {
            consider(&m, q - p, 0, "...");
            return m;
        }
        consider(&m, 1, 1, NULL);
        return m;
    }
    if (c == 0x2026 || c == 0x85) {
        consider(&m, 1, 0, "...");
        return m;
    }
    if (c == '?' || c == '!') {
        size_t q = p;
        while (at(s, q) == '?' || at(s, q) == '!') q++;
        consider(&m, q - p, q - p, NULL);
        return m;
    }
    if (c == ',' || c == ';' || c == ':') {
        consider(&m, 1, 1, NULL);
        return m;
    }
    if (c == '-') {
        size_t q = p;
        while (at(s, q) == '-') q++;
        consider(&m, q - p, q - p == 1 ? 1 : 0, q - p == 1 ? NULL : "--");
        return m;
    }
    if (is_dash(c)) {
        consider(&m, 1, 0, "--");
        return m;
    }
    switch (c) {
    case '(':
        consider(&m, 1, 0, "-LRB-");
        return m;
    case ')':
        consider(&m, 1, 0, "-RRB-");
        return m;
    case '[':
        consider(&m, 1, 0, "-LSB-");
        return m;
    case ']':
        consider(&m, 1, 0, "-RSB-");
        return m;
    case '{':
        consider(&m, 1, 0, "-LCB-");
        return m;
    case '}':
        consider(&m, 1, 0, "-RCB-");
        return m;
    default:
        break;
    }
    if (is_symbol(c)) {
        consider(&m, 1, 1, NULL);
        return m;
    }
    /* untokenizable: dropped (the lexer's default firstDelete) */
    m.len = 1;
    m.drop = 1;
    return m;
}

static const char *const coco_punct[] = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".",
                                         "?",  "!", ",",  ":", "-",     "--",    "...",   ";",     NULL};

static char *tokenize(const char *text, size_t len, int remove_punct, pvlm_err *err) {
    /* captions are short: decode into stack buffers unless the text is long */
    uint32_t cps_small[256];
    size_t gt_small[258];
    char tok_small[256];
    int heap = len + 2 > 256;
    uint32_t *cps = heap ? malloc((len + 1) * sizeof *cps) : cps_small;
    size_t *next_gt = heap ? malloc((len + 2) * sizeof *next_gt) : gt_small;
    sbuf out = {0}, tok = {tok_small, 0, sizeof tok_small, 0, 1};
    if (!cps || !next_gt) goto oom;
    size_t n = pvlm_utf8_decode_all(text, len, cps);
    next_gt[n] = n;
    for (size_t i = n; i-- > 0;) next_gt[i] = cps[i] == '>' ? i : next_gt[i + 1];
    scan s = {cps, n, next_gt};
    sb_reserve(&out, len + 1);
    if (out.oom) goto oom;
    out.s[0] = 0;
    size_t p = 0;
    while (p < n) {
        uint32_t c = cps[p];
        if (is_space(c)) {
            p++;
            continue;
        }
        match m = scan_one(&s, p);
        if (!m.drop) {
            /* the token, lower-cased as -lowerCase does (Java toLowerCase on the token) */
            tok.n = 0;
            if (m.norm) {
                for (const char *q = m.norm; *q; q++) sb_putc(&tok, (char)lower_cp((unsigned char)*q));
            } else {
                for (size_t k = 0; k < m.tlen; k++) {
                    uint32_t t = cps[p + k];
                    if (t == 0xAD) continue; /* soft hyphens are removed from words */
                    /* apostrophes inside clitics and words are normalised to ' (PTB3 quotes) */
                    if (k > 0 || m.tlen <= 3)
                        if (is_apos(t) || t == 0x2018 || t == 0x201B || t == 0x91) t = '\'';
                    if (m.nbsp && t == ' ') t = 0xA0;
                    if (t == 0x130) { /* Java: U+0130 lower-cases to i + combining dot */
                        sb_putc(&tok, 'i');
                        t = 0x307;
                    }
                    sb_put_cp(&tok, lower_cp(t));
                }
            }
            if (tok.oom) goto oom;
            if (tok.n) {
                int drop = 0;
                if (remove_punct && tok.n <= 5 && strchr("'`-.?!,:;", tok.s[0]))
                    for (const char *const *q = coco_punct; *q; q++)
                        if (strlen(*q) == tok.n && !memcmp(*q, tok.s, tok.n)) drop = 1;
                if (!drop) {
                    if (out.n) sb_putc(&out, ' ');
                    sb_put(&out, tok.s, tok.n);
                }
            }
        }
        /* what the matched rule consumed beyond the emitted text is scanned again
           (trailing context): advance by the token length when it is shorter */
        size_t adv = m.drop ? 1 : (m.norm ? m.len : (m.tlen ? m.tlen : m.len));
        p += adv;
    }
    if (out.oom) goto oom;
    if (heap) {
        free(cps);
        free(next_gt);
    }
    sb_free(&tok);
    return out.s;
oom:
    if (heap) {
        free(cps);
        free(next_gt);
    }
    free(out.s);
    sb_free(&tok);
    pvlm_err_set(err, PVLM_ENOMEM, "ptb tokenizer: out of memory (caption of %zu bytes)", len);
    return NULL;
}

char *pvlm_ptb_tokenize(const char *text, size_t len, pvlm_err *err) {
    return tokenize(text, len, 1, err);
}
char *pvlm_ptb_tokenize_raw(const char *text, size_t len, pvlm_err *err) {
    return tokenize(text, len, 0, err);
}

/* ---------- numpy pairwise sum ---------- */
double pvlm_ptb_np_sum(const double *a, size_t n) {
    if (n < 8) {
        double r = 0.0;
        for (size_t i = 0; i < n; i++) r += a[i];
        return r;
    }
    if (n <= 128) {
        double r[8];
        size_t i;
        for (int j = 0; j < 8; j++) r[j] = a[j];
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    }
    size_t n2 = n / 2;
    n2 -= n2 % 8;
    return pvlm_ptb_np_sum(a, n2) + pvlm_ptb_np_sum(a + n2, n - n2);
}

/* ---------- token ids and n-gram ids ---------- */
typedef struct {
    uint64_t *h; /* hash, 0 = empty slot */
    int32_t *id;
    size_t cap;
    int32_t count;
} htab;

static int ht_init(htab *t, size_t want) {
    size_t cap = 1024;
    while (cap < want * 2) cap *= 2;
    t->h = calloc(cap, sizeof *t->h);
    t->id = malloc(cap * sizeof *t->id);
    t->cap = cap;
    t->count = 0;
    return t->h && t->id ? 0 : -1;
}
static void ht_free(htab *t) {
    free(t->h);
    free(t->id);
}
static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}
static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then mixed */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return mix64(h ^ n);
}

/* Words are interned with their full text kept for exact comparison. */
typedef struct {
    htab t;
    const char **str;
    size_t *len;
    size_t scap;
} words;

static int32_t word_id(words *w, const char *s, size_t n) {
    uint64_t h = hash_bytes(s, n) | 1;
    size_t mask = w->t.cap - 1, i = h & mask;
    while (w->t.h[i]) {
        if (w->t.h[i] == h) {
            int32_t id = w->t.id[i];
            if (w->len[id] == n && !memcmp(w->str[id], s, n)) return id;
        }
        i = (i + 1) & mask;
    }
    if ((size_t)w->t.count + 1 > w->t.cap / 2) { /* grow */
        htab nt;
        if (ht_init(&nt, w->t.cap)) {
            ht_free(&nt);
            return -1;
        }
        for (size_t j = 0; j < w->t.cap; j++)
            if (w->t.h[j]) {
                size_t k = w->t.h[j] & (nt.cap - 1);
                while (nt.h[k]) k = (k + 1) & (nt.cap - 1);
                nt.h[k] = w->t.h[j];
                nt.id[k] = w->t.id[j];
            }
        nt.count = w->t.count;
        ht_free(&w->t);
        w->t = nt;
        return word_id(w, s, n);
    }
    if ((size_t)w->t.count >= w->scap) {
        size_t nc = w->scap ? w->scap * 2 : 1024;
        const char **ns = realloc(w->str, nc * sizeof *ns);
        if (!ns) return -1;
        w->str = ns;
        size_t *nl = realloc(w->len, nc * sizeof *nl);
        if (!nl) return -1;
        w->len = nl;
        w->scap = nc;
    }
    int32_t id = w->t.count++;
    w->str[id] = s;
    w->len[id] = n;
    w->t.h[i] = h;
    w->t.id[i] = id;
    return id;
}

/* n-grams: an n-gram is (id of its (n-1)-gram prefix, last word id), one
 * 64-bit key (prefix id + 1, 0 for unigrams), so lookups touch one array. */
typedef struct {
    uint64_t key;
    int32_t id;
} gslot;
typedef struct {
    gslot *s; /* key 0 = empty (keys are stored + 1) */
    size_t cap;
    int32_t count;
    uint8_t *order;
    size_t ocap;
} grams;

static int grams_init(grams *g, size_t want) {
    g->cap = 1024;
    while (g->cap < want * 2) g->cap *= 2;
    g->s = calloc(g->cap, sizeof *g->s);
    g->count = 0;
    return g->s ? 0 : -1;
}

static uint64_t gram_key(int32_t prefix, int32_t word) {
    return (((uint64_t)(uint32_t)(prefix + 1)) << 32 | (uint32_t)word) + 1;
}

/* id of the n-gram with this key (hash = mix64(key)), inserting it if new */
static int32_t gram_id(grams *g, uint64_t key, uint64_t hash, int order) {
    size_t mask = g->cap - 1, i = (size_t)hash & mask;
    while (g->s[i].key) {
        if (g->s[i].key == key) return g->s[i].id;
        i = (i + 1) & mask;
    }
    if ((size_t)g->count + 1 > g->cap / 2) {
        grams ng;
        if (grams_init(&ng, g->cap)) return -1;
        for (size_t j = 0; j < g->cap; j++)
            if (g->s[j].key) {
                size_t k = (size_t)mix64(g->s[j].key) & (ng.cap - 1);
                while (ng.s[k].key) k = (k + 1) & (ng.cap - 1);
                ng.s[k] = g->s[j];
            }
        free(g->s);
        g->s = ng.s;
        g->cap = ng.cap;
        return gram_id(g, key, hash, order);
    }
    if ((size_t)g->count >= g->ocap) {
        size_t nc = g->ocap ? g->ocap * 2 : 4096;
        uint8_t *no = realloc(g->order, nc);
        if (!no) return -1;
        g->order = no;
        g->ocap = nc;
    }
    int32_t id = g->count++;
    g->s[i].key = key;
    g->s[i].id = id;
    g->order[id] = (uint8_t)order;
    return id;
}

size_t pvlm_py_space_len(const char *s, size_t i, size_t n) {
    unsigned char c = (unsigned char)s[i];
    if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return 1;
    if (c == 0xC2 && i + 1 < n && ((unsigned char)s[i + 1] == 0xA0 || (unsigned char)s[i + 1] == 0x85)) return 2;
    if (c == 0xE1 && i + 2 < n && (unsigned char)s[i + 1] == 0x9A && (unsigned char)s[i + 2] == 0x80) return 3;
    if (c == 0xE2 && i + 2 < n) {
        unsigned char d = (unsigned char)s[i + 1], e = (unsigned char)s[i + 2];
        if (d == 0x80 && ((e >= 0x80 && e <= 0x8A) || e == 0xA8 || e == 0xA9 || e == 0xAF)) return 3;
        if (d == 0x81 && e == 0x9F) return 3;
    }
    if (c == 0xE3 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 && (unsigned char)s[i + 2] == 0x80) return 3;
    return 0;
}

typedef struct {
    int32_t *a;
    int64_t n, cap;
} ivec;
static int iv_push(ivec *v, int32_t x) {
    if (v->n == v->cap) {
        int64_t nc = v->cap ? v->cap * 2 : 1024;
        int32_t *na = realloc(v->a, (size_t)nc * sizeof *na);
        if (!na) return -1;
        v->a = na;
        v->cap = nc;
    }
    v->a[v->n++] = x;
    return 0;
}

void pvlm_ptb_tokset_free(pvlm_tokset *ts) {
    if (!ts) return;
    free(ts->cand);
    free(ts->ref_begin);
    free(ts->tok_begin);
    free(ts->tok);
    free(ts->rtok_begin);
    free(ts->rtok);
    free(ts->ng_begin);
    free(ts->ng);
    free(ts->gram_order);
    memset(ts, 0, sizeof *ts);
}

int pvlm_ptb_tokset_build(pvlm_tokset *ts, int32_t n_img, const char *const *cand, const int32_t *ref_begin,
                          const char *const *refs, pvlm_err *err) {
    memset(ts, 0, sizeof *ts);
    if (n_img < 0 || ref_begin[0] != 0)
        return pvlm_err_set(err, PVLM_EINVAL, "tokset: bad image count or ref_begin[0]");
    for (int32_t i = 0; i < n_img; i++)
        if (ref_begin[i + 1] <= ref_begin[i])
            return pvlm_err_set(err, PVLM_EINVAL, "tokset: image %d has no reference caption", (int)i);
    int32_t n_refs = ref_begin[n_img];
    int32_t n_caps = n_refs + n_img;
    words w = {0};
    grams g = {0};
    ivec tok = {0}, rtok = {0}, ngs = {0};
    int rc = -1;
    ts->n_img = n_img;
    ts->n_caps = n_caps;
    ts->cand = malloc(((size_t)n_img + 1) * sizeof *ts->cand);
    ts->ref_begin = malloc(((size_t)n_img + 1) * sizeof *ts->ref_begin);
    ts->tok_begin = malloc(((size_t)n_caps + 1) * sizeof *ts->tok_begin);
    ts->rtok_begin = malloc(((size_t)n_caps + 1) * sizeof *ts->rtok_begin);
    ts->ng_begin = malloc(((size_t)n_caps * 4 + 1) * sizeof *ts->ng_begin);
    int32_t *seen_pos = NULL; /* per gram: index into ngs of this caption's entry, or -1 */
    int32_t *prev = NULL;
    size_t prev_cap = 0;
    uint64_t *keys = NULL; /* (key, hash) of each n-gram of the current order */
    size_t key_cap = 0;
    size_t seen_cap = 0;
    if (!ts->cand || !ts->ref_begin || !ts->tok_begin || !ts->rtok_begin || !ts->ng_begin) goto oom;
    /* size the n-gram table once from an estimate of the distinct n-grams
       (about one per 4 bytes of caption text on COCO): rehashing a growing
       table costs as much as the lookups, and a larger table misses the cache */
    size_t bytes = 0;
    for (int32_t c = 0; c < n_caps; c++) {
        const char *s0 = c < n_refs ? refs[c] : cand[c - n_refs];
        bytes += s0 ? strlen(s0) : 0;
    }
    size_t est = bytes / 4 + 1024;
    if (est > ((size_t)1 << 26)) est = (size_t)1 << 26;
    if (ht_init(&w.t, 4096) || grams_init(&g, est)) goto oom;
    memcpy(ts->ref_begin, ref_begin, ((size_t)n_img + 1) * sizeof *ref_begin);
    for (int32_t i = 0; i < n_img; i++) ts->cand[i] = n_refs + i;
    ts->tok_begin[0] = ts->rtok_begin[0] = ts->ng_begin[0] = 0;
    for (int32_t c = 0; c < n_caps; c++) {
        const char *s = c < n_refs ? refs[c] : cand[c - n_refs];
        if (!s) s = "";
        size_t n = strlen(s);
        /* split(" ") view */
        size_t start = 0;
        for (size_t i = 0; i <= n; i++) {
            if (i == n || s[i] == ' ') {
                int32_t id = word_id(&w, s + start, i - start);
                if (id < 0 || iv_push(&rtok, id)) goto oom;
                start = i + 1;
            }
        }
        ts->rtok_begin[c + 1] = rtok.n;
        /* split() view: the same tokens when the text is words separated by
           single spaces (always so for tokenizer output without a no-break
           space); otherwise split on every Python whitespace character */
        int64_t t0 = tok.n;
        int simple = n > 0 && s[0] != ' ' && s[n - 1] != ' ';
        for (size_t q = 0; q < n && simple; q++)
            if ((s[q] == ' ' && s[q + 1] == ' ') ||
                (((unsigned char)s[q] < 0x20 || (unsigned char)s[q] >= 0xC2) && pvlm_py_space_len(s, q, n)))
                simple = 0;
        if (simple) {
            for (int64_t q = ts->rtok_begin[c]; q < rtok.n; q++)
                if (iv_push(&tok, rtok.a[q])) goto oom;
        }
        size_t i = simple ? n : 0;
        while (i < n) {
            size_t sp;
            while (i < n && (sp = pvlm_py_space_len(s, i, n))) i += sp;
            if (i >= n) break;
            size_t j = i;
            while (j < n && !pvlm_py_space_len(s, j, n)) j++;
            int32_t id = word_id(&w, s + i, j - i);
            if (id < 0 || iv_push(&tok, id)) goto oom;
            i = j;
        }
        ts->tok_begin[c + 1] = tok.n;
        /* n-grams with counts, first-occurrence order per order n; prev[q] is
           the id of the (k-1)-gram starting at q */
        int64_t len = tok.n - t0;
        if ((size_t)len + 1 > prev_cap) {
            size_t nc = (size_t)len + 64;
            int32_t *np = realloc(prev, nc * sizeof *np);
            if (!np) goto oom;
            prev = np;
            prev_cap = nc;
        }
        if ((size_t)len + 1 > key_cap) {
            size_t nc = (size_t)len + 64;
            uint64_t *nk = realloc(keys, 2 * nc * sizeof *nk);
            if (!nk) goto oom;
            keys = nk;
            key_cap = nc;
        }
        for (int k = 1; k <= 4; k++) {
            /* all keys of this order are known now: compute them and prefetch
               their slots first, so the (cache-missing) probes overlap */
            for (int64_t q = 0; q + k <= len; q++) {
                uint64_t key = gram_key(k == 1 ? -1 : prev[q], tok.a[t0 + q + k - 1]);
                keys[2 * q] = key;
                keys[2 * q + 1] = mix64(key);
                __builtin_prefetch(&g.s[keys[2 * q + 1] & (g.cap - 1)]);
            }
            for (int64_t q = 0; q + k <= len; q++) {
                int32_t gid = gram_id(&g, keys[2 * q], keys[2 * q + 1], k);
                if (gid < 0) goto oom;
                prev[q] = gid;
                /* dedupe within the caption: a small local table (gram -> entry) */
                if ((size_t)(len + 1) * 2 > seen_cap) {
                    size_t nc = 64;
                    while (nc < (size_t)(len + 1) * 2) nc *= 2;
                    int32_t *ns = realloc(seen_pos, 2 * nc * sizeof *ns);
                    if (!ns) goto oom;
                    for (size_t z = 0; z < nc; z++) ns[2 * z] = -1;
                    seen_pos = ns;
                    seen_cap = nc;
                }
                size_t h = ((uint32_t)gid * 2654435761u) & (seen_cap - 1);
                while (seen_pos[2 * h] >= 0 && seen_pos[2 * h] != gid) h = (h + 1) & (seen_cap - 1);
                if (seen_pos[2 * h] == gid) {
                    ngs.a[(size_t)seen_pos[2 * h + 1] * 2 + 1]++;
                } else {
                    seen_pos[2 * h] = gid;
                    seen_pos[2 * h + 1] = (int32_t)(ngs.n / 2);
                    if (iv_push(&ngs, gid) || iv_push(&ngs, 1)) goto oom;
                }
            }
            /* clear the local table (sized to the caption, so this is cheap) */
            if (seen_pos)
                for (size_t z = 0; z < seen_cap; z++) seen_pos[2 * z] = -1;
            ts->ng_begin[(size_t)c * 4 + (size_t)k] = ngs.n / 2;
        }
    }
    ts->n_words = w.t.count;
    ts->n_grams = g.count;
    ts->tok = tok.a;
    ts->rtok = rtok.a;
    tok.a = rtok.a = NULL;
    ts->ng = (pvlm_ngram_entry *)ngs.a; /* pairs (gram, count) laid out as pvlm_ngram_entry */
    ngs.a = NULL;
    ts->gram_order = g.order;
    g.order = NULL;
    rc = 0;
    goto done;
oom:
    pvlm_err_set(err, PVLM_ENOMEM, "tokset: out of memory (%d captions)", (int)n_caps);
    pvlm_ptb_tokset_free(ts);
done:
    free(seen_pos);
    free(tok.a);
    free(rtok.a);
    free(ngs.a);
    ht_free(&w.t);
    free(w.str);
    free(w.len);
    free(g.s);
    free(g.order);
    free(prev);
    free(keys);
    return rc;
}
