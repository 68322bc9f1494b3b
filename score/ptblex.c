/* ptblex.c - see ptblex.h.
 *
 * How it works: every rule of the lexer is written below as a small C function that computes, from a
 * start position, the set of positions where a match of the rule's regular expression can end (a
 * sorted list; regular-expression operators become operations on such sets: a character class
 * advances each position by one, alternation is a union, repetition iterates to a fixed point). That
 * is exactly the set of match ends a DFA would accept, so "longest match, earlier rule on ties" is
 * the largest end over the rules. The regular expressions are those of PTBLexer.flex in CoreNLP 3.4.1
 * (its macro names are kept in the comments so each function can be checked against the
 * specification); JFlex's %caseless applies to literal strings (written lower-case here and compared
 * ignoring ASCII case), not to character classes. docs/scoring.md lists the rules and what each
 * action does.
 */
#include "score/ptblex.h"

#include <stdlib.h>
#include <string.h>

#include "core/ucd.h"

/* ---------- position sets and the scratch arena ---------- */
typedef struct {
    int32_t *v; /* sorted, distinct end positions */
    int n;
} ps;

typedef struct blk {
    struct blk *next;
    size_t cap, used;
    int32_t d[];
} blk;

typedef struct {
    const uint16_t *c; /* the line, '\n', the next line */
    int n;             /* code units in c */
    int lim;           /* positions at or beyond lim are not read */
    int32_t *next_dot; /* [n+1] the first '.' at or after i (n: none), so LIKELYURL fails at once without one */
    blk *arena;
    uint8_t *mark; /* [n+2] scratch for building unions */
    int oom;
    int maxread;         /* the furthest position a rule has read (at) */
    uint8_t *fail_first; /* [rules][units bits]: "this rule fails on seeing only this first unit" */
    int cache_units;     /* code units below this are remembered (all on long lines, Latin-1 otherwise) */
    struct {
        const void *f; /* a rule's main pattern (several rules share one) */
        int32_t *v;    /* its match ends at the current position */
        int n;
        int maxread; /* how far computing it read */
    } memo[8];
    int n_memo;
} lx;

static int32_t *take(lx *L, int k) {
    if (k <= 0) k = 1;
    blk *b = L->arena;
    if (!b || b->used + (size_t)k > b->cap) {
        size_t cap = (size_t)k > 4096 ? (size_t)k : 4096;
        blk *nb = malloc(sizeof *nb + cap * sizeof(int32_t));
        if (!nb) {
            L->oom = 1;
            return NULL;
        }
        nb->next = b;
        nb->cap = cap;
        nb->used = 0;
        L->arena = nb;
        b = nb;
    }
    int32_t *r = b->d + b->used;
    b->used += (size_t)k;
    return r;
}
/* Keep the newest block, free the rest (called before each token). */
static void arena_reset(lx *L) {
    if (!L->arena) return;
    blk *b = L->arena->next;
    while (b) {
        blk *nx = b->next;
        free(b);
        b = nx;
    }
    L->arena->next = NULL;
    L->arena->used = 0;
}

static const ps NONE = {NULL, 0};

static ps one(lx *L, int p) {
    ps r = {take(L, 1), 0};
    if (r.v) r.v[r.n++] = p;
    return r;
}
static int at(lx *L, int i) {
    if (i > L->maxread) L->maxread = i;
    return i >= 0 && i < L->lim ? L->c[i] : -1;
}
static int max_of(ps s) {
    return s.n ? s.v[s.n - 1] : -1;
}

static ps uni(lx *L, ps a, ps b) {
    if (!a.n) return b;
    if (!b.n) return a;
    ps r = {take(L, a.n + b.n), 0};
    if (!r.v) return NONE;
    int i = 0, j = 0;
    while (i < a.n || j < b.n) {
        int32_t x = j >= b.n || (i < a.n && a.v[i] < b.v[j]) ? a.v[i++] : b.v[j++];
        if (!r.n || r.v[r.n - 1] != x) r.v[r.n++] = x;
    }
    return r;
}
typedef int (*cpred)(int c);

/* one character of a class */
static ps ch(lx *L, ps s, cpred f) {
    if (!s.n) return NONE;
    ps r = {take(L, s.n), 0};
    if (!r.v) return NONE;
    for (int i = 0; i < s.n; i++)
        if (f(at(L, s.v[i]))) r.v[r.n++] = s.v[i] + 1;
    return r;
}
/* one given character (case-sensitive) */
static ps chr(lx *L, ps s, int c) {
    if (!s.n) return NONE;
    ps r = {take(L, s.n), 0};
    if (!r.v) return NONE;
    for (int i = 0; i < s.n; i++)
        if (at(L, s.v[i]) == c) r.v[r.n++] = s.v[i] + 1;
    return r;
}
static int fold(int c) {
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}
/* a literal string (ASCII), ignoring ASCII case as %caseless does */
static ps lit(lx *L, ps s, const char *w) {
    ps r = NONE;
    size_t k = 0;
    for (int i = 0; i < s.n; i++) {
        if (fold(at(L, s.v[i])) != (unsigned char)w[0]) continue;
        if (!r.v) {
            if (!(r.v = take(L, s.n))) return NONE;
            k = strlen(w);
        }
        size_t j = 1;
        while (j < k && fold(at(L, s.v[i] + (int)j)) == (unsigned char)w[j]) j++;
        if (j == k) r.v[r.n++] = s.v[i] + (int)k;
    }
    return r;
}
/* any of a NULL-terminated list of literals */
static ps lits(lx *L, ps s, const char *const *ws) {
    ps r = NONE;
    if (!s.n) return NONE;
    /* the first units of the (one or two) start positions decide which literals can match at all */
    int first[4], nf = 0;
    for (int i = 0; i < s.n && nf < 4; i++) first[nf++] = fold(at(L, s.v[i]));
    for (; *ws; ws++) {
        int c = (unsigned char)(*ws)[0], any = s.n > 4;
        for (int i = 0; i < nf && !any; i++) any = first[i] == c;
        if (any) r = uni(L, r, lit(L, s, *ws));
    }
    return r;
}
/* class{min,max} (max < 0: unbounded) */
static ps run(lx *L, ps s, cpred f, int min, int max) {
    int lo = -1, hi = -1;
    for (int i = 0; i < s.n; i++) {
        int p = s.v[i], k = 0;
        while ((max < 0 || k < max) && f(at(L, p + k))) k++;
        if (k < min) continue;
        for (int e = p + min; e <= p + k; e++) L->mark[e] = 1;
        if (lo < 0 || p + min < lo) lo = p + min;
        if (p + k > hi) hi = p + k;
    }
    if (lo < 0) return NONE;
    ps r = {take(L, hi - lo + 1), 0};
    for (int e = lo; e <= hi; e++)
        if (L->mark[e]) {
            L->mark[e] = 0;
            if (r.v) r.v[r.n++] = e;
        }
    return r.v ? r : NONE;
}
typedef ps (*pat)(lx *L, ps s);
/* sub-pattern{min,max} (max < 0: unbounded). Every sub-pattern repeated here consumes at least one
 * character, so each round's new positions mostly lie beyond all earlier ones: the accumulated set
 * is kept in one growing array, appended to in that case (a long word costs linear time, not
 * quadratic), merged otherwise. */
static int has(const int32_t *v, int n, int32_t x) {
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (v[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && v[lo] == x;
}
static ps rep(lx *L, ps s, pat f, int min, int max) {
    for (int i = 0; i < min; i++) s = f(L, s);
    int n = s.n, cap = s.n + 16;
    int32_t *acc = malloc((size_t)cap * sizeof *acc);
    if (!acc) {
        L->oom = 1;
        return NONE;
    }
    if (n) memcpy(acc, s.v, (size_t)n * sizeof *acc);
    ps front = s;
    for (int i = min; (max < 0 || i < max) && front.n && !L->oom; i++) {
        ps nx = f(L, front);
        ps fr = {take(L, nx.n), 0};
        if (!fr.v) break;
        for (int k = 0; k < nx.n; k++)
            if (!n || nx.v[k] > acc[n - 1] || !has(acc, n, nx.v[k])) fr.v[fr.n++] = nx.v[k];
        front = fr;
        if (!fr.n) break;
        if (n + fr.n > cap) {
            cap = 2 * (n + fr.n);
            int32_t *p = realloc(acc, (size_t)cap * sizeof *p);
            if (!p) {
                L->oom = 1;
                break;
            }
            acc = p;
        }
        if (!n || fr.v[0] > acc[n - 1]) {
            memcpy(acc + n, fr.v, (size_t)fr.n * sizeof *acc);
            n += fr.n;
        } else { /* merge from the back */
            int a = n - 1, b = fr.n - 1, w = n + fr.n - 1;
            while (b >= 0) acc[w--] = a >= 0 && acc[a] > fr.v[b] ? acc[a--] : fr.v[b--];
            n += fr.n;
        }
    }
    ps r = {take(L, n), 0};
    if (r.v) {
        memcpy(r.v, acc, (size_t)n * sizeof *acc);
        r.n = n;
    }
    free(acc);
    return r.v ? r : NONE;
}

/* ---------- character classes ---------- */
typedef struct {
    uint16_t lo, hi;
} range;
static int in_table(const range *r, size_t n, int c) {
    if (c < 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (c >= r[i].lo && c <= r[i].hi) return 1;
    return 0;
}
#define IN_TABLE(t, c) in_table(t, sizeof t / sizeof t[0], c)

static int c_jletter(int c) { /* [:letter:] */
    return c >= 0 && pvlm_ucd_is_letter((uint32_t)c);
}
static int c_jdigit(int c) { /* [:digit:] */
    return c >= 0 && pvlm_ucd_is_digit((uint32_t)c);
}
static int c_jalnum(int c) {
    return c_jletter(c) || c_jdigit(c);
}
static int c_upper(int c) { /* [:uppercase:] */
    return c >= 0 && pvlm_ucd_is_upper((uint32_t)c);
}
/* the characters LETTER adds to [:letter:]: soft hyphen, combining marks and letters of scripts
 * the JFlex tables of the time did not count as letters */
static const range letter_extra[] = {
    {0xAD, 0xAD},     {0x237, 0x24F},   {0x2C2, 0x2C5},   {0x2D2, 0x2DF},   {0x2E5, 0x2FF},   {0x300, 0x36F},
    {0x370, 0x37D},   {0x384, 0x385},   {0x3CF, 0x3CF},   {0x3F6, 0x3F6},   {0x3FC, 0x3FF},   {0x483, 0x487},
    {0x4CF, 0x4CF},   {0x4F6, 0x4FF},   {0x510, 0x525},   {0x55A, 0x55F},   {0x591, 0x5BD},   {0x5BF, 0x5BF},
    {0x5C1, 0x5C2},   {0x5C4, 0x5C5},   {0x5C7, 0x5C7},   {0x615, 0x61A},   {0x63B, 0x63F},   {0x64B, 0x65E},
    {0x670, 0x670},   {0x6D6, 0x6EF},   {0x6FA, 0x6FF},   {0x70F, 0x70F},   {0x711, 0x711},   {0x730, 0x74F},
    {0x750, 0x77F},   {0x7A6, 0x7B1},   {0x7CA, 0x7F5},   {0x7FA, 0x7FA},   {0x900, 0x903},   {0x93C, 0x93C},
    {0x93E, 0x94E},   {0x951, 0x955},   {0x962, 0x963},   {0x981, 0x983},   {0x9BC, 0x9C4},   {0x9C7, 0x9C8},
    {0x9CB, 0x9CD},   {0x9D7, 0x9D7},   {0x9E2, 0x9E3},   {0xA01, 0xA03},   {0xA3C, 0xA3C},   {0xA3E, 0xA4F},
    {0xA81, 0xA83},   {0xABC, 0xACF},   {0xB82, 0xB82},   {0xBBE, 0xBC2},   {0xBC6, 0xBC8},   {0xBCA, 0xBCD},
    {0xC01, 0xC03},   {0xC3E, 0xC56},   {0xD3E, 0xD44},   {0xD46, 0xD48},   {0xE30, 0xE3A},   {0xE47, 0xE4E},
    {0xEB1, 0xEBC},   {0xEC8, 0xECD},
};
static int c_letter_char(int c) { /* LETTER without the SPLET entities */
    return c_jletter(c) || IN_TABLE(letter_extra, c);
}
static int c_digit(int c) { /* DIGIT */
    return c_jdigit(c) || (c >= 0x7C0 && c <= 0x7C9);
}
static int c_ascii_letter(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static int c_ascii_upper(int c) {
    return c >= 'A' && c <= 'Z';
}
static int c_ascii_digit(int c) {
    return c >= '0' && c <= '9';
}
static int c_ascii_alnum(int c) {
    return c_ascii_letter(c) || c_ascii_digit(c);
}
static int c_space(int c) { /* SPACE */
    return c == ' ' || c == '\t' || c == 0xA0 || (c >= 0x2000 && c <= 0x200A) || c == 0x3000;
}
static int c_newline1(int c) { /* NEWLINE, one-unit forms (\r\n is handled where it matters) */
    return c == '\r' || c == '\n' || c == 0x2028 || c == 0x2029 || c == 0x0B || c == 0x0C || c == 0x85;
}

/* ---------- the lexer's macros ---------- */
/* SPLET = &[aeiouAEIOU](acute|grave|uml); */
static int c_vowel(int c) {
    return c >= 0 && c < 128 && strchr("aeiouAEIOU", c) && c;
}
static ps p_splet(lx *L, ps s) {
    static const char *const acc[] = {"acute", "grave", "uml", NULL};
    return lit(L, lits(L, ch(L, chr(L, s, '&'), c_vowel), acc), ";");
}
/* LETTER */
static ps p_letter(lx *L, ps s) {
    return uni(L, ch(L, s, c_letter_char), p_splet(L, s));
}
/* (LETTER|DIGIT) */
static ps p_letdig(lx *L, ps s) {
    return uni(L, ch(L, s, c_digit), p_letter(L, s));
}
static ps p_letdig_star(lx *L, ps s) {
    return rep(L, s, p_letdig, 0, -1);
}
/* [.!?] LETTER (LETTER|DIGIT)* */
static int c_sentp(int c) {
    return c == '.' || c == '!' || c == '?';
}
static ps p_word_tail(lx *L, ps s) {
    return p_letdig_star(L, p_letter(L, ch(L, s, c_sentp)));
}
/* WORD = LETTER (LETTER|DIGIT)* ([.!?] LETTER (LETTER|DIGIT)*)* */
static ps p_word(lx *L, ps s) {
    return rep(L, p_letdig_star(L, p_letter(L, s)), p_word_tail, 0, -1);
}
/* APOS = ['\u0092\u2019] | &apos; */
static int c_apos(int c) {
    return c == '\'' || c == 0x92 || c == 0x2019;
}
static ps p_apos(lx *L, ps s) {
    return uni(L, ch(L, s, c_apos), lit(L, s, "&apos;"));
}
/* APOSETCETERA = APOS | [`\u0091\u2018\u201B] */
static int c_apos_etc_extra(int c) {
    return c == '`' || c == 0x91 || c == 0x2018 || c == 0x201B;
}
static ps p_aposetc(lx *L, ps s) {
    return uni(L, p_apos(L, s), ch(L, s, c_apos_etc_extra));
}
/* REDAUX = APOS ([msdMSD] | re | ve | ll) */
static int c_msd(int c) {
    return c >= 0 && c < 128 && c && strchr("msdMSD", c);
}
static ps p_redaux(lx *L, ps s) {
    static const char *const two[] = {"re", "ve", "ll", NULL};
    ps a = p_apos(L, s);
    return uni(L, ch(L, a, c_msd), lits(L, a, two));
}
/* SREDAUX = n APOSETCETERA t */
static ps p_sredaux(lx *L, ps s) {
    return lit(L, p_aposetc(L, lit(L, s, "n")), "t");
}
/* SWORD = [A-Za-z\u00AD]* [A-MO-Za-mo-z] (\u00AD)* */
static int c_sword_body(int c) {
    return c_ascii_letter(c) || c == 0xAD;
}
static int c_not_n(int c) {
    return c_ascii_letter(c) && c != 'n' && c != 'N';
}
static int c_shy(int c) {
    return c == 0xAD;
}
static ps p_sword(lx *L, ps s) {
    return run(L, ch(L, run(L, s, c_sword_body, 0, -1), c_not_n), c_shy, 0, -1);
}
/* SGML (the rule's three forms: <!... or <?..., a start tag with attributes, an end tag) */
static int c_not_gt_nl(int c) {
    return c >= 0 && c != '>' && c != '\r' && c != '\n';
}
static int c_bang_q(int c) {
    return c == '!' || c == '?';
}
static int c_sgml_first(int c) {
    return c_ascii_letter(c) || c == '-';
}
static int c_name(int c) { /* [A-Za-z0-9_:\.\-] */
    return c_ascii_alnum(c) || c == '_' || c == ':' || c == '.' || c == '-';
}
static int c_sp(int c) {
    return c == ' ';
}
static int c_not_sq(int c) {
    return c >= 0 && c != '\'';
}
static int c_not_dq(int c) {
    return c >= 0 && c != '"';
}
static ps p_sgml_name(lx *L, ps s) {
    return run(L, ch(L, s, c_ascii_letter), c_name, 0, -1);
}
static ps p_sgml_attr(lx *L, ps s) {
    ps name = p_sgml_name(L, run(L, s, c_sp, 1, -1));
    ps eq = run(L, chr(L, run(L, name, c_sp, 0, -1), '='), c_sp, 0, -1);
    ps v1 = chr(L, run(L, chr(L, eq, '\''), c_not_sq, 0, -1), '\'');
    ps v2 = chr(L, run(L, chr(L, eq, '"'), c_not_dq, 0, -1), '"');
    return uni(L, name, uni(L, v1, v2));
}
static ps p_sgml(lx *L, ps s) {
    ps lt = chr(L, s, '<');
    ps a = run(L, ch(L, ch(L, lt, c_bang_q), c_sgml_first), c_not_gt_nl, 0, -1);
    ps b = rep(L, p_sgml_name(L, lt), p_sgml_attr, 0, -1);
    b = run(L, b, c_sp, 0, -1);
    b = uni(L, b, chr(L, b, '/'));
    ps c = p_sgml_name(L, chr(L, lt, '/'));
    return chr(L, run(L, uni(L, a, uni(L, b, c)), c_sp, 0, -1), '>');
}
/* NEWLINE (\r\n as one) */
static ps p_newline(lx *L, ps s) {
    return uni(L, ch(L, s, c_newline1), lit(L, s, "\r\n"));
}
static ps p_spacenl(lx *L, ps s) {
    return uni(L, ch(L, s, c_space), p_newline(L, s));
}
/* SENTEND = SPACENL (SPACENL | [:uppercase:] | SGML) */
static ps p_sentend(lx *L, ps s) {
    ps a = p_spacenl(L, s);
    return uni(L, p_spacenl(L, a), uni(L, ch(L, a, c_upper), p_sgml(L, a)));
}
/* NUM = DIGIT+ | DIGIT* ([.:,\u00AD\u066B\u066C] DIGIT+)+ ; NUMBER = [\-+]? NUM */
static int c_numsep(int c) {
    return c == '.' || c == ':' || c == ',' || c == 0xAD || c == 0x66B || c == 0x66C;
}
static ps p_num_group(lx *L, ps s) {
    return run(L, ch(L, s, c_numsep), c_digit, 1, -1);
}
static int c_sign(int c) {
    return c == '-' || c == '+';
}
static ps p_number(lx *L, ps s) {
    s = uni(L, s, ch(L, s, c_sign));
    ps a = run(L, s, c_digit, 1, -1);
    ps b = rep(L, run(L, s, c_digit, 0, -1), p_num_group, 1, -1);
    return uni(L, a, b);
}
/* DATE = DIGIT{1,2} [\-\/] DIGIT{1,2} [\-\/] DIGIT{2,4} */
static int c_dash_slash(int c) {
    return c == '-' || c == '/';
}
static ps p_date(lx *L, ps s) {
    s = ch(L, run(L, s, c_digit, 1, 2), c_dash_slash);
    s = ch(L, run(L, s, c_digit, 1, 2), c_dash_slash);
    return run(L, s, c_digit, 2, 4);
}
/* SUBSUPNUM = [\u207A\u207B\u208A\u208B]? ([\u2070\u00B9\u00B2\u00B3\u2074-\u2079]+ | [\u2080-\u2089]+) */
static int c_subsup_sign(int c) {
    return c == 0x207A || c == 0x207B || c == 0x208A || c == 0x208B;
}
static int c_sup(int c) {
    return c == 0x2070 || c == 0xB9 || c == 0xB2 || c == 0xB3 || (c >= 0x2074 && c <= 0x2079);
}
static int c_sub(int c) {
    return c >= 0x2080 && c <= 0x2089;
}
static ps p_subsupnum(lx *L, ps s) {
    s = uni(L, s, ch(L, s, c_subsup_sign));
    return uni(L, run(L, s, c_sup, 1, -1), run(L, s, c_sub, 1, -1));
}
/* FRAC = (DIGIT{1,4} [- \u00A0])? DIGIT{1,4} (\\?\/ | \u2044) DIGIT{1,4} */
static int c_frac_sep(int c) {
    return c == '-' || c == ' ' || c == 0xA0;
}
static ps p_frac(lx *L, ps s) {
    s = uni(L, s, ch(L, run(L, s, c_digit, 1, 4), c_frac_sep));
    s = run(L, s, c_digit, 1, 4);
    ps sl = chr(L, uni(L, s, chr(L, s, '\\')), '/');
    return run(L, uni(L, sl, chr(L, s, 0x2044)), c_digit, 1, 4);
}
/* FRAC2 */
static int c_frac2(int c) {
    return c == 0xBC || c == 0xBD || c == 0xBE || (c >= 0x2153 && c <= 0x215E);
}
/* DOLSIGN = [A-Z]*\$ | # ; DOLSIGN2 */
static ps p_dolsign(lx *L, ps s) {
    return uni(L, chr(L, run(L, s, c_ascii_upper, 0, -1), '$'), chr(L, s, '#'));
}
static int c_dolsign2(int c) {
    return c == 0xA2 || c == 0xA3 || c == 0xA4 || c == 0xA5 || c == 0x80 || c == 0x20A0 || c == 0x20AC ||
           c == 0x60B || c == 0xE3F || c == 0x20A4 || c == 0xFFE0 || c == 0xFFE1 || c == 0xFFE5 || c == 0xFFE6;
}
/* HYPHEN = [-_\u058A\u2010\u2011] */
static int c_hyphen(int c) {
    return c == '-' || c == '_' || c == 0x58A || c == 0x2010 || c == 0x2011;
}
/* THING = ([dDoOlL] APOSETC ([:letter:]|[:digit:]))? ([:letter:]|[:digit:])+ (HYPHEN (same)? (...)+)* */
static int c_dol(int c) {
    return c >= 0 && c < 128 && c && strchr("dDoOlL", c);
}
static ps p_thing_part(lx *L, ps s) {
    s = uni(L, s, ch(L, p_aposetc(L, ch(L, s, c_dol)), c_jalnum));
    return run(L, s, c_jalnum, 1, -1);
}
static ps p_thing_more(lx *L, ps s) {
    return p_thing_part(L, ch(L, s, c_hyphen));
}
static ps p_thing(lx *L, ps s) {
    return rep(L, p_thing_part(L, s), p_thing_more, 0, -1);
}
/* THINGA = [A-Z]+ (([+&] | SPAMP) [A-Z]+)+ */
static int c_plus_amp(int c) {
    return c == '+' || c == '&';
}
static ps p_thinga_more(lx *L, ps s) {
    return run(L, uni(L, ch(L, s, c_plus_amp), lit(L, s, "&amp;")), c_ascii_upper, 1, -1);
}
static ps p_thinga(lx *L, ps s) {
    return rep(L, run(L, s, c_ascii_upper, 1, -1), p_thinga_more, 1, -1);
}
/* THING3 = [A-Za-z0-9]+ (-[A-Za-z]+){0,2} (\\?\/ [A-Za-z0-9]+ (-[A-Za-z]+){0,2}){1,2} */
static ps p_dash_alpha(lx *L, ps s) {
    return run(L, chr(L, s, '-'), c_ascii_letter, 1, -1);
}
static ps p_thing3_seg(lx *L, ps s) {
    return rep(L, run(L, s, c_ascii_alnum, 1, -1), p_dash_alpha, 0, 2);
}
static ps p_thing3_more(lx *L, ps s) {
    return p_thing3_seg(L, chr(L, uni(L, s, chr(L, s, '\\')), '/'));
}
static ps p_thing3(lx *L, ps s) {
    return rep(L, p_thing3_seg(L, s), p_thing3_more, 1, 2);
}
/* ACRO = [A-Za-z](\.[A-Za-z])* | (Canada|Sino|Korean|EU|Japan|non)-U\.S | U\.S\.-(U\.K|U\.S\.S\.R) ;
 * ACRO2 the same with (\.[A-Za-z])+ */
static ps p_dot_letter(lx *L, ps s) {
    return ch(L, chr(L, s, '.'), c_ascii_letter);
}
static ps p_acro_special(lx *L, ps s) {
    static const char *const pre[] = {"canada", "sino", "korean", "eu", "japan", "non", NULL};
    static const char *const post[] = {"u.k", "u.s.s.r", NULL};
    return uni(L, lit(L, lits(L, s, pre), "-u.s"), lits(L, lit(L, s, "u.s.-"), post));
}
static ps p_acro(lx *L, ps s) {
    return uni(L, rep(L, ch(L, s, c_ascii_letter), p_dot_letter, 0, -1), p_acro_special(L, s));
}
static ps p_acro2(lx *L, ps s) {
    return uni(L, rep(L, ch(L, s, c_ascii_letter), p_dot_letter, 1, -1), p_acro_special(L, s));
}
/* HTHING = [A-Za-z0-9][A-Za-z0-9.,\u00AD]* (-([A-Za-z0-9\u00AD]+ | ACRO2\.))+ */
static int c_hthing_body(int c) {
    return c_ascii_alnum(c) || c == '.' || c == ',' || c == 0xAD;
}
static int c_alnum_shy(int c) {
    return c_ascii_alnum(c) || c == 0xAD;
}
static ps p_hthing_more(lx *L, ps s) {
    ps d = chr(L, s, '-');
    return uni(L, run(L, d, c_alnum_shy, 1, -1), chr(L, p_acro2(L, d), '.'));
}
static ps p_hthing(lx *L, ps s) {
    return rep(L, run(L, ch(L, s, c_ascii_alnum), c_hthing_body, 0, -1), p_hthing_more, 1, -1);
}
/* APOWORD (words with an apostrophe the lexer keeps whole) */
static int c_lldj(int c) {
    return c >= 0 && c < 128 && c && strchr("lLdDjJ", c);
}
static int c_apoword_first(int c) { /* [A-HJ-XZn] */
    return (c >= 'A' && c <= 'H') || (c >= 'J' && c <= 'X') || c == 'Z' || c == 'n';
}
static int c_vowel_y(int c) {
    return c >= 0 && c < 128 && c && strchr("aeiouyAEIOUY", c);
}
static int c_vowel_lc_or_upper(int c) { /* [aeiouA-Z] */
    return (c >= 0 && c < 128 && c && strchr("aeiou", c)) || c_ascii_upper(c);
}
static int c_2_9(int c) {
    return c >= '2' && c <= '9';
}
static ps p_apoword(lx *L, ps s) {
    static const char *const fixed[] = {"cont'd", "'twas", "nor'easter", "c'mon", "e'er", "s'mores",
                                        "ev'ry",  "li'l",  "nat'l",      NULL};
    static const char *const before_apos[] = {"dunkin", "somethin", "ol", NULL};
    ps r = NONE;
    ps a = p_apos(L, s);
    ps an = lit(L, a, "n");
    r = uni(L, r, uni(L, an, p_apos(L, an)));                 /* APOS n APOS? */
    r = uni(L, r, p_apos(L, ch(L, s, c_lldj)));               /* [lLdDjJ] APOS */
    r = uni(L, r, p_apos(L, lits(L, s, before_apos)));        /* Dunkin APOS | somethin APOS | ol APOS */
    r = uni(L, r, lit(L, a, "em"));                           /* APOS em */
    ps x = p_aposetc(L, ch(L, s, c_apoword_first));           /* [A-HJ-XZn] APOSETC [:letter:]{2,} */
    r = uni(L, r, run(L, x, c_jletter, 2, -1));
    r = uni(L, r, lit(L, ch(L, a, c_2_9), "0s"));             /* APOS [2-9]0s */
    ps til = lit(L, a, "til");                                /* APOS till? */
    r = uni(L, r, uni(L, til, lit(L, til, "l")));
    ps y = ch(L, run(L, s, c_jletter, 1, -1), c_vowel_y);     /* letters, a vowel, APOSETC, [aeiouA-Z], letters */
    r = uni(L, r, run(L, ch(L, p_aposetc(L, y), c_vowel_lc_or_upper), c_jletter, 0, -1));
    r = uni(L, r, lit(L, a, "cause"));                        /* APOS cause */
    ps fx = lits(L, s, fixed);                                /* cont'd\.? and the fixed words */
    r = uni(L, r, uni(L, fx, chr(L, lit(L, s, "cont'd"), '.')));
    r = uni(L, r, lit(L, p_aposetc(L, lit(L, s, "o")), "o")); /* O APOSETC o */
    return r;
}
/* FULLURL = https?:\/\/ [^ \t\n\f\r\"<>|(){}]+ [^ \t\n\f\r\"<>|.!?(){},-] */
static int c_url_body(int c) {
    return c >= 0 && !(c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == '"' || c == '<' ||
                       c == '>' || c == '|' || c == '(' || c == ')' || c == '{' || c == '}');
}
static int c_url_end(int c) {
    return c_url_body(c) && !(c == '.' || c == '!' || c == '?' || c == ',' || c == '-');
}
static ps p_fullurl(lx *L, ps s) {
    ps h = lit(L, s, "http");
    h = lit(L, uni(L, h, lit(L, h, "s")), "://");
    return ch(L, run(L, h, c_url_body, 1, -1), c_url_end);
}
/* LIKELYURL = ((www\.([^ ...|.!?(){},]+\.)+[a-zA-Z]{2,4}) | (([^ ...`'<>|.!?(){},-_$]+\.)+(com|net|org|edu)))
 *             (\/[^ \t\n\f\r\"<>|()]+[^ \t\n\f\r\"<>|.!?(){},-])?
 * (In the second class ",-_" is a range: the characters U+002C..U+005F, digits and capitals among them.) */
static int c_www_label(int c) {
    return c_url_body(c) && !(c == '.' || c == '!' || c == '?' || c == ',');
}
static int c_dom_label(int c) {
    return c_www_label(c) && c != '`' && c != '\'' && !(c >= 0x2C && c <= 0x5F) && c != '$';
}
static int c_path(int c) {
    return c_url_body(c) || c == '{' || c == '}';
}
static int c_path_end(int c) {
    return c_path(c) && !(c == '.' || c == '!' || c == '?' || c == '{' || c == '}' || c == ',' || c == '-');
}
static ps p_www_label(lx *L, ps s) {
    return chr(L, run(L, s, c_www_label, 1, -1), '.');
}
static ps p_dom_label(lx *L, ps s) {
    return chr(L, run(L, s, c_dom_label, 1, -1), '.');
}
static ps p_likelyurl(lx *L, ps s) {
    static const char *const tld[] = {"com", "net", "org", "edu", NULL};
    if (s.n == 1 && L->next_dot[s.v[0]] >= L->lim) { /* both forms need a '.' */
        L->maxread = L->lim;                           /* (a fact about more than the first unit) */
        return NONE;
    }
    ps a = run(L, rep(L, lit(L, s, "www."), p_www_label, 1, -1), c_ascii_letter, 2, 4);
    ps b = lits(L, rep(L, s, p_dom_label, 1, -1), tld);
    ps u = uni(L, a, b);
    return uni(L, u, ch(L, run(L, chr(L, u, '/'), c_path, 1, -1), c_path_end));
}
/* EMAIL = (&lt;|<)? [a-zA-Z0-9] [^ \t\n\f\r\"<>|()\u00A0{}]* @ ([^ ...(){}.\u00A0]+\.)* ([^ ...]+) (&gt;|>)? */
static int c_mail_local(int c) {
    return c_url_body(c) && c != 0xA0;
}
static int c_mail_label(int c) {
    return c_mail_local(c) && c != '.';
}
static ps p_mail_label_dot(lx *L, ps s) {
    return chr(L, run(L, s, c_mail_label, 1, -1), '.');
}
static ps p_email(lx *L, ps s) {
    s = uni(L, s, uni(L, chr(L, s, '<'), lit(L, s, "&lt;")));
    s = chr(L, run(L, ch(L, s, c_ascii_alnum), c_mail_local, 0, -1), '@');
    s = run(L, rep(L, s, p_mail_label_dot, 0, -1), c_mail_label, 1, -1);
    return uni(L, s, uni(L, chr(L, s, '>'), lit(L, s, "&gt;")));
}
/* TWITTER = @[a-zA-Z_][a-zA-Z_0-9]* | #LETTER+ */
static int c_tw_first(int c) {
    return c_ascii_letter(c) || c == '_';
}
static int c_tw(int c) {
    return c_ascii_alnum(c) || c == '_';
}
static ps p_twitter(lx *L, ps s) {
    return uni(L, run(L, ch(L, chr(L, s, '@'), c_tw_first), c_tw, 0, -1), rep(L, chr(L, s, '#'), p_letter, 1, -1));
}
/* FILENAME = (LETTER|DIGIT)+ ([.](LETTER|DIGIT)+)* [.] FILENAME_EXT */
static ps p_letdig_plus(lx *L, ps s) {
    return rep(L, s, p_letdig, 1, -1);
}
static ps p_dot_letdig(lx *L, ps s) {
    return p_letdig_plus(L, chr(L, s, '.'));
}
static ps p_filename(lx *L, ps s) {
    static const char *const ext[] = {"bat",  "bmp", "c",    "class", "cgi", "cpp", "dll", "doc", "docx", "exe",
                                      "gif",  "gz",  "h",    "htm",   "html", "jar", "java", "jpeg", "jpg", "mov",
                                      "mp3",  "pdf", "php",  "pl",    "png", "ppt", "ps",  "py",  "sql",  "tar",
                                      "txt",  "wav", "x",    "xml",   "zip", NULL};
    return lits(L, chr(L, rep(L, p_letdig_plus(L, s), p_dot_letdig, 0, -1), '.'), ext);
}
/* Abbreviations. Entries written with a bracketed first letter in the lexer ([A]rk) are matched with
 * that letter upper-case only; in "Pp?t[ye]s?" and "M[ft]g" the bracketed letters are lower-case only. */
static ps cs_first(lx *L, ps s, int upper, const char *rest) {
    return lit(L, chr(L, s, upper), rest);
}
static int c_ye(int c) {
    return c == 'y' || c == 'e';
}
static int c_ft(int c) {
    return c == 'f' || c == 't';
}
static ps p_abbrev1_word(lx *L, ps s) {
    static const char *const w[] = {
        /* ABMONTH */ "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
        /* ABDAYS */ "mon", "tue", "tues", "wed", "thu", "thurs", "fri",
        /* ABSTATE (caseless ones) */ "ala", "ariz", "calif", "colo", "conn", "ct", "dak", "fla", "ga", "ind", "kan",
        "kans", "ky", "md", "mich", "minn", "mo", "mont", "neb", "nev", "okla", "penn", "tenn", "va", "vt", "wis",
        "wisc", "wyo",
        /* ABCOMP (but Pp?t[ye]s?) */ "inc", "co", "cos", "corp", "ltd", "plc", "rt", "bancorp", "bhd", "assn", "univ",
        "intl", "sys",
        /* ABNUM */ "tel", "est", "ext", "sq",
        /* ABPTIT */ "jr", "sr", "bros", "ed.d", "ph.d", "blvd", "rd", "esq",
        /* and */ "etc", "al", "seq", "bldg", NULL};
    ps r = lits(L, s, w);
    r = uni(L, r, cs_first(L, s, 'A', "z"));
    r = uni(L, r, cs_first(L, s, 'A', "rk"));
    r = uni(L, r, cs_first(L, s, 'D', "el"));
    r = uni(L, r, cs_first(L, s, 'I', "ll"));
    r = uni(L, r, cs_first(L, s, 'L', "a"));
    r = uni(L, r, cs_first(L, s, 'M', "ass"));
    r = uni(L, r, cs_first(L, s, 'M', "iss"));
    r = uni(L, r, cs_first(L, s, 'O', "re"));
    r = uni(L, r, cs_first(L, s, 'P', "a"));
    r = uni(L, r, cs_first(L, s, 'T', "ex"));
    r = uni(L, r, cs_first(L, s, 'W', "ash"));
    ps p = lit(L, s, "p"); /* Pp?t[ye]s? */
    ps t = ch(L, lit(L, uni(L, p, lit(L, p, "p")), "t"), c_ye);
    return uni(L, r, uni(L, t, lit(L, t, "s")));
}
/* ABBREV1 = (...)\. */
static ps p_abbrev1(lx *L, ps s) {
    return chr(L, p_abbrev1_word(L, s), '.');
}
/* ABBREV4 = ABTITLE | vs | Alex | Wm | Jos | Cie | a\.k\.a | cf | TREAS | Ph | ACRO | ABCOMP2 */
static ps p_abbrev4(lx *L, ps s) {
    static const char *const w[] = {
        /* ABTITLE */ "mr", "mrs", "ms", "dr", "drs", "prof", "profs", "sen", "sens", "rep", "reps", "atty", "attys",
        "lt", "col", "gen", "messrs", "gov", "govs", "adm", "rev", "maj", "sgt", "cpl", "pvt", "capt", "st", "ste",
        "ave", "pres", "lieut", "hon", "brig", "cmdr", "comdr", "pfc", "spc", "supt", "supts", "det", "mt", "ft", "adj",
        "adv", "asst", "assoc", "ens", "insp", "mlle", "mme", "msgr", "sfc",
        /* ABCOMP2 (but M[ft]g) */ "invt", "elec", "natl", "dept",
        /* the rest */ "vs", "alex", "wm", "jos", "cie", "a.k.a", "cf", "treas", "ph", NULL};
    ps r = uni(L, lits(L, s, w), cs_first(L, s, 'M', "iss"));
    r = uni(L, r, lit(L, ch(L, lit(L, s, "m"), c_ft), "g"));
    return uni(L, r, p_acro(L, s));
}
/* ABBREV3 = (ca|figs?|prop|nos?|art|bldg|prop|pp|op)\. */
static ps p_abbrev3(lx *L, ps s) {
    static const char *const w[] = {"ca", "fig", "figs", "prop", "no", "nos", "art", "bldg", "pp", "op", NULL};
    return chr(L, lits(L, s, w), '.');
}
/* PHONE */
static int c_phone_sep(int c) { /* [\- \u00A0] */
    return c == '-' || c == ' ' || c == 0xA0;
}
static int c_sp_nbsp(int c) {
    return c == ' ' || c == 0xA0;
}
static ps p_plusplus_opt(lx *L, ps s) {
    ps a = chr(L, s, '+');
    return uni(L, s, uni(L, a, chr(L, a, '+')));
}
static ps p_phone(lx *L, ps s) {
    /* \([0-9]{2,3}\)[ \u00A0]? */
    ps a = chr(L, run(L, chr(L, s, '('), c_ascii_digit, 2, 3), ')');
    a = uni(L, a, ch(L, a, c_sp_nbsp));
    /* (\+\+?)?([0-9]{2,4}[\- \u00A0])?[0-9]{2,4}[\- \u00A0] */
    ps b = p_plusplus_opt(L, s);
    b = uni(L, b, ch(L, run(L, b, c_ascii_digit, 2, 4), c_phone_sep));
    b = ch(L, run(L, b, c_ascii_digit, 2, 4), c_phone_sep);
    ps t = run(L, uni(L, a, b), c_ascii_digit, 3, 4);
    t = run(L, uni(L, t, ch(L, t, c_phone_sep)), c_ascii_digit, 3, 5);
    /* ((\+\+?)?[0-9]{2,4}\.)?[0-9]{2,4}\.[0-9]{3,4}\.[0-9]{3,5} */
    ps d = uni(L, s, chr(L, run(L, p_plusplus_opt(L, s), c_ascii_digit, 2, 4), '.'));
    d = chr(L, run(L, d, c_ascii_digit, 2, 4), '.');
    d = run(L, chr(L, run(L, d, c_ascii_digit, 3, 4), '.'), c_ascii_digit, 3, 5);
    return uni(L, t, d);
}
/* LDOTS = \.{3,5} | (\.[ \u00A0]){2,4}\. | [\u0085\u2026] */
static ps p_dot_sp(lx *L, ps s) {
    return ch(L, chr(L, s, '.'), c_sp_nbsp);
}
static int c_ell(int c) {
    return c == 0x85 || c == 0x2026;
}
static int c_dot(int c) {
    return c == '.';
}
static ps p_ldots(lx *L, ps s) {
    ps a = run(L, s, c_dot, 3, 5);
    ps b = chr(L, rep(L, s, p_dot_sp, 2, 4), '.');
    return uni(L, a, uni(L, b, ch(L, s, c_ell)));
}
/* QUOTES = APOS | '' | [`\u2018\u2019\u201A\u201B\u201C\u201D\u0091-\u0094\u201E\u201F\u2039\u203A\u00AB\u00BB]{1,2} */
static int c_quote(int c) {
    return c == '`' || (c >= 0x2018 && c <= 0x201F) || (c >= 0x91 && c <= 0x94) ||
           c == 0x2039 || c == 0x203A || c == 0xAB || c == 0xBB;
}
static ps p_quotes(lx *L, ps s) {
    return uni(L, p_apos(L, s), uni(L, lit(L, s, "''"), run(L, s, c_quote, 1, 2)));
}
/* DBLQUOT = \" | &quot; */
static ps p_dblquot(lx *L, ps s) {
    return uni(L, chr(L, s, '"'), lit(L, s, "&quot;"));
}
/* TBSPEC = -(RRB|LRB|RCB|LCB|RSB|LSB)- | C\.D\.s | pro- | anti- | S(&|&amp;)P-500 | S(&|&amp;)Ls |
 *          Cap APOS n | c APOS est */
static ps p_tbspec(lx *L, ps s) {
    static const char *const br[] = {"rrb", "lrb", "rcb", "lcb", "rsb", "lsb", NULL};
    static const char *const fixed[] = {"c.d.s", "pro-", "anti-", NULL};
    static const char *const after[] = {"p-500", "ls", NULL};
    ps r = lit(L, lits(L, lit(L, s, "-"), br), "-");
    r = uni(L, r, lits(L, s, fixed));
    ps sa = lit(L, s, "s");
    r = uni(L, r, lits(L, uni(L, chr(L, sa, '&'), lit(L, sa, "&amp;")), after));
    r = uni(L, r, lit(L, p_apos(L, lit(L, s, "cap")), "n"));
    return uni(L, r, lit(L, p_apos(L, lit(L, s, "c")), "est"));
}
/* SMILEY = [<>]?[:;=][\-o\*']?[\(\)DPdpO\\{@\|\[\]] */
static int c_lt_gt(int c) {
    return c == '<' || c == '>';
}
static int c_eyes(int c) {
    return c == ':' || c == ';' || c == '=';
}
static int c_nose(int c) {
    return c == '-' || c == 'o' || c == '*' || c == '\'';
}
static int c_mouth(int c) {
    return c >= 0 && c < 128 && c && strchr("()DPdpO\\{@|[]", c);
}
static ps p_smiley(lx *L, ps s) {
    s = ch(L, uni(L, s, ch(L, s, c_lt_gt)), c_eyes);
    return ch(L, uni(L, s, ch(L, s, c_nose)), c_mouth);
}
/* ASIANSMILEY = [\^x=~<>]\.\[\^x=~<>] | [\-\^x=~<>']_[\-\^x=~<>'] | \([\-\^x=~<>'][_.]?[\-\^x=~<>']\) |
 *               \([\^x=~<>']-[\^x=~<>'`]\)
 * (the first form has an escaped "[", so it is the literal text "[^x=~<>]" after the dot) */
static int c_as1(int c) {
    return c >= 0 && c < 128 && c && strchr("^x=~<>", c);
}
static int c_as2(int c) {
    return c >= 0 && c < 128 && c && strchr("-^x=~<>'", c);
}
static int c_as3(int c) {
    return c >= 0 && c < 128 && c && strchr("^x=~<>'", c);
}
static int c_as4(int c) {
    return c >= 0 && c < 128 && c && strchr("^x=~<>'`", c);
}
static int c_us_dot(int c) {
    return c == '_' || c == '.';
}
static ps p_asiansmiley(lx *L, ps s) {
    ps a = lit(L, ch(L, s, c_as1), ".[^x=~<>]");
    ps b = ch(L, chr(L, ch(L, s, c_as2), '_'), c_as2);
    ps p = chr(L, s, '(');
    ps c = ch(L, p, c_as2);
    c = chr(L, ch(L, uni(L, c, ch(L, c, c_us_dot)), c_as2), ')');
    ps d = chr(L, ch(L, chr(L, ch(L, p, c_as3), '-'), c_as4), ')');
    return uni(L, uni(L, a, b), uni(L, c, d));
}
/* MISCSYMBOL */
static const range miscsymbol[] = {
    {'+', '+'},       {'%', '%'},       {'&', '&'},       {'~', '~'},       {'^', '^'},       {'|', '|'},
    {'\\', '\\'},     {0xA6, 0xA6},     {0xA7, 0xA7},     {0xA8, 0xA8},     {0xA9, 0xA9},     {0xAC, 0xAC},
    {0xAE, 0xAE},     {0xAF, 0xAF},     {0xB0, 0xBA},     {0xD7, 0xD7},     {0xF7, 0xF7},     {0x387, 0x387},
    {0x5BE, 0x5BE},   {0x5C0, 0x5C0},   {0x5C3, 0x5C3},   {0x5C6, 0x5C6},   {0x5F3, 0x5F4},   {0x600, 0x603},
    {0x606, 0x60A},   {0x60C, 0x60C},   {0x614, 0x614},   {0x61B, 0x61B},   {0x61E, 0x61E},   {0x66A, 0x66A},
    {0x66D, 0x66D},   {0x703, 0x70D},   {0x7F6, 0x7F8},   {0x964, 0x965},   {0xE4F, 0xE4F},   {0x1FBD, 0x1FBD},
    {0x2016, 0x2017}, {0x2020, 0x2023}, {0x2030, 0x2038}, {0x203B, 0x203B}, {0x203E, 0x2042}, {0x2044, 0x2044},
    {0x207A, 0x207F}, {0x208A, 0x208E}, {0x2100, 0x214F}, {0x2190, 0x21FF}, {0x2200, 0x2BFF}, {0x3012, 0x3012},
    {0x30FB, 0x30FB}, {0xFF01, 0xFF0F}, {0xFF1A, 0xFF20}, {0xFF3B, 0xFF40}, {0xFF5B, 0xFF65},
};
static int c_miscsymbol(int c) {
    return IN_TABLE(miscsymbol, c);
}
/* INSENTP = [,;:\u3001] */
static int c_insentp(int c) {
    return c == ',' || c == ';' || c == ':' || c == 0x3001;
}
/* the acronym rule's list of words that start a new sentence ([A]bout...: capital first letter only) */
static ps p_sent_starter(lx *L, ps s) {
    static const char *const w[] = {
        "About", "According", "Additionally", "After", "An", "A", "As", "At", "But", "Earlier", "He", "Her", "Here",
        "However", "If", "In", "It", "Last", "Many", "More", "Mr.", "Ms.", "Now", "Once", "One", "Other", "Our",
        "She", "Since", "So", "Some", "Such", "That", "The", "Their", "Then", "There", "These", "They", "This", "We",
        "When", "While", "What", "Yet", "You", NULL};
    ps r = NONE;
    for (const char *const *q = w; *q; q++) {
        char low[16];
        size_t k = strlen(*q);
        for (size_t i = 0; i <= k; i++) low[i] = (char)fold((unsigned char)(*q)[i]);
        r = uni(L, r, lit(L, chr(L, s, (unsigned char)(*q)[0]), low + 1));
    }
    return uni(L, r, p_sgml(L, s));
}

/* ---------- rules ---------- */
enum act {
    A_PLAIN,      /* the text as it is */
    A_SHY,        /* soft hyphens removed */
    A_AMP,        /* &amp; -> & */
    A_SPACE,      /* spaces -> U+00A0 */
    A_PHONE,      /* spaces -> U+00A0, parentheses -> -LRB- -RRB- */
    A_PARENS,     /* parentheses -> -LRB- -RRB- (smileys) */
    A_QUOTE_L,    /* handleQuotes, probably a left quote */
    A_QUOTE_R,    /* handleQuotes, probably a right quote */
    A_FIXED,      /* a fixed text (the rule's `text`) */
    A_HYPHENS,    /* -- for 3 or 4 hyphens, else as it is */
    A_CURRENCY,   /* cents, #, $ */
    A_FRACTION,   /* 1/4 1/2 3/4 1/3 2/3 */
    A_ACRONYM,    /* the acronym before a sentence start */
    A_ABBREV_DOT, /* the abbreviation with its period, then the period again */
    A_SKIP,       /* no token (white space, DEL, &nbsp;, untokenizable characters) */
};

typedef struct {
    int end;  /* end of the whole match (trailing context included), -1: none */
    int tok;  /* end of the token text */
    int rule; /* index of the rule */
} hit;

/* r1 at p, then r2 (trailing context): the longest total match, split at the last point where
 * r1 matches and r2 matches the rest (what JFlex's general lookahead computes). */
/* r(p), computed once per position for the patterns several rules share */
static ps at_start(lx *L, int p, pat r) {
    for (int i = 0; i < L->n_memo; i++)
        if (L->memo[i].f == (const void *)r) {
            if (L->memo[i].maxread > L->maxread) L->maxread = L->memo[i].maxread;
            return (ps){L->memo[i].v, L->memo[i].n};
        }
    ps a = r(L, one(L, p));
    if (L->n_memo < 8) {
        L->memo[L->n_memo].f = (const void *)r;
        L->memo[L->n_memo].v = a.v;
        L->memo[L->n_memo].n = a.n;
        L->memo[L->n_memo++].maxread = L->maxread;
    }
    return a;
}

static void look(lx *L, int p, pat r1, pat r2, hit *h) {
    ps a = at_start(L, p, r1);
    int best = -1, split = -1;
    for (int i = a.n - 1; i >= 0; i--) {
        if (a.v[i] <= p) continue;
        int e = max_of(r2(L, one(L, a.v[i])));
        if (e > best) best = e, split = a.v[i];
    }
    h->end = best;
    h->tok = split;
}
static void plain(lx *L, int p, pat r, hit *h) {
    int e = max_of(at_start(L, p, r));
    h->end = e > p ? e : -1;
    h->tok = h->end;
}

/* trailing-context patterns */
static ps t_not_ascii_letter(lx *L, ps s) {
    ps r = {take(L, s.n), 0};
    if (!r.v) return NONE;
    for (int i = 0; i < s.n; i++) {
        int c = at(L, s.v[i]);
        if (c >= 0 && !c_ascii_letter(c)) r.v[r.n++] = s.v[i] + 1;
    }
    return r;
}
static int c_any_but_nl(int c) { /* JFlex "." */
    return c >= 0 && !c_newline1(c) && c != 0x85;
}
static int c_any(int c) { /* [^] */
    return c >= 0;
}
static ps t_letter(lx *L, ps s) {
    return ch(L, s, c_jletter);
}
static ps t_spacenl(lx *L, ps s) {
    return p_spacenl(L, s);
}
static ps t_space(lx *L, ps s) {
    return ch(L, s, c_space);
}
static ps t_any2(lx *L, ps s) {
    return ch(L, ch(L, s, c_any), c_any);
}
static ps t_insentp(lx *L, ps s) {
    return ch(L, s, c_insentp);
}
static ps t_acronym_ctx(lx *L, ps s) { /* SPACENLS (words|SGML) SPACENL */
    return p_spacenl(L, p_sent_starter(L, rep(L, s, p_spacenl, 1, -1)));
}
static int c_digit_only(int c) {
    return c_jdigit(c);
}
static ps t_abbrev3_ctx(lx *L, ps s) { /* SPACENL? [:digit:] */
    return ch(L, uni(L, s, p_spacenl(L, s)), c_digit_only);
}
static ps t_ltd(lx *L, ps s) { /* SPACE (ltd|lim) */
    static const char *const w[] = {"ltd", "lim", NULL};
    return lits(L, ch(L, s, c_space), w);
}
static int c_fn_follow(int c) {
    return c == '.' || c == '?' || c == '!' || c == ',';
}
static ps t_filename_ctx(lx *L, ps s) {
    return uni(L, p_spacenl(L, s), ch(L, s, c_fn_follow));
}
static int c_ascii_alnum_dollar(int c) {
    return c_ascii_alnum(c) || c == '$';
}
static ps t_alnum_dollar(lx *L, ps s) {
    return ch(L, s, c_ascii_alnum_dollar);
}
static int c_not_ascii_alnum(int c) {
    return c >= 0 && !c_ascii_alnum(c);
}
static ps t_not_alnum(lx *L, ps s) {
    return ch(L, s, c_not_ascii_alnum);
}
static int c_not_space_nbsp(int c) { /* [^ \t\n\r\u00A0] */
    return c >= 0 && c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != 0xA0;
}
static ps t_invert_quote(lx *L, ps s) {
    return ch(L, ch(L, s, c_ascii_letter), c_not_space_nbsp);
}

/* composite patterns used by rules */
static ps r_c_plusplus(lx *L, ps s) {
    return lit(L, s, "c++");
}
static ps r_cf_hash(lx *L, ps s) {
    return uni(L, lit(L, s, "c#"), lit(L, s, "f#"));
}
static ps r_assim(lx *L, ps s) {
    static const char *const w[] = {"gonna", "gotta", "lemme", "gimme", "wanna", NULL};
    return lits(L, s, w);
}
static ps r_spmdash(lx *L, ps s) {
    static const char *const w[] = {"&md;", "&mdash;", "&ndash;", NULL};
    static const range d[] = {{0x96, 0x97}, {0x2013, 0x2015}};
    ps r = {take(L, s.n), 0};
    if (!r.v) return NONE;
    for (int i = 0; i < s.n; i++)
        if (IN_TABLE(d, at(L, s.v[i]))) r.v[r.n++] = s.v[i] + 1;
    return uni(L, r, lits(L, s, w));
}
static ps r_spamp(lx *L, ps s) {
    return lit(L, s, "&amp;");
}
static ps r_sppunc(lx *L, ps s) {
    static const char *const w[] = {"ht", "tl", "ur", "lr", "qc", "ql", "qr", "odq", "cdq", NULL};
    ps a = chr(L, s, '&');
    return chr(L, uni(L, lits(L, a, w), run(L, chr(L, a, '#'), c_ascii_digit, 1, -1)), ';');
}
static ps r_apoword2(lx *L, ps s) {
    return p_apos(L, lit(L, s, "y"));
}
static ps r_frac2(lx *L, ps s) {
    return ch(L, s, c_frac2);
}
static ps r_dolsign2(lx *L, ps s) {
    return ch(L, s, c_dolsign2);
}
static ps r_acronym(lx *L, ps s) {
    return chr(L, p_acro(L, s), '.');
}
static int c_eyEY(int c) {
    return c == 'e' || c == 'y' || c == 'E' || c == 'Y';
}
static ps r_ptyco(lx *L, ps s) { /* (pt[eyEY]|co)\. */
    return chr(L, uni(L, ch(L, lit(L, s, "pt"), c_eyEY), lit(L, s, "co")), '.');
}
static ps r_abbrev2(lx *L, ps s) {
    return chr(L, p_abbrev4(L, s), '.');
}
static ps r_tbspec2(lx *L, ps s) {
    return run(L, p_apos(L, s), c_ascii_digit, 2, 2);
}
static ps r_word_dot(lx *L, ps s) {
    return chr(L, p_word(L, s), '.');
}
static ps r_del(lx *L, ps s) {
    return chr(L, s, 0x7F);
}
static ps r_lessthan(lx *L, ps s) {
    return uni(L, chr(L, s, '<'), lit(L, s, "&lt;"));
}
static ps r_greaterthan(lx *L, ps s) {
    return uni(L, chr(L, s, '>'), lit(L, s, "&gt;"));
}
static int c_hy(int c) {
    return c == '-';
}
static ps r_hyphens(lx *L, ps s) {
    return run(L, s, c_hy, 1, -1);
}
static int c_at(int c) {
    return c == '@';
}
static int c_hash(int c) {
    return c == '#';
}
static int c_us(int c) {
    return c == '_';
}
static ps r_fnmarks(lx *L, ps s) {
    return uni(L, run(L, s, c_at, 1, -1), uni(L, run(L, s, c_hash, 1, -1), run(L, s, c_us, 1, -1)));
}
static int c_ast(int c) {
    return c == '*';
}
static ps p_bs_ast(lx *L, ps s) {
    return lit(L, s, "\\*");
}
static ps r_asts(lx *L, ps s) {
    return uni(L, run(L, s, c_ast, 1, -1), rep(L, s, p_bs_ast, 1, 3));
}
static ps r_insentp(lx *L, ps s) {
    return ch(L, s, c_insentp);
}
static int c_qe(int c) {
    return c == '?' || c == '!';
}
static ps r_qe(lx *L, ps s) {
    return run(L, s, c_qe, 1, -1);
}
static int c_stop(int c) {
    return c == '.' || c == 0xA1 || c == 0xBF || c == 0x37E || c == 0x589 || c == 0x61F || c == 0x6D4 ||
           (c >= 0x700 && c <= 0x702) || c == 0x7FA || c == 0x3002;
}
static ps r_stop(lx *L, ps s) {
    return ch(L, s, c_stop);
}
static ps r_equals(lx *L, ps s) {
    return chr(L, s, '=');
}
static ps r_slash(lx *L, ps s) {
    return chr(L, s, '/');
}
static ps r_hthing_dot(lx *L, ps s) {
    return chr(L, p_hthing(L, s), '.');
}
static ps r_thing_dot(lx *L, ps s) {
    return chr(L, p_thing(L, s), '.');
}
static ps r_thinga_dot(lx *L, ps s) {
    return chr(L, p_thinga(L, s), '.');
}
static ps r_apos_ascii(lx *L, ps s) {
    return chr(L, s, '\'');
}
static ps r_duckfeet(lx *L, ps s) {
    return uni(L, lit(L, s, "<<"), lit(L, s, ">>"));
}
static ps r_miscsymbol(lx *L, ps s) {
    return ch(L, s, c_miscsymbol);
}
static int c_blank(int c) { /* \0 | SPACES | [\u200B\u200E-\u200F\uFEFF] */
    return c == 0 || c == 0x200B || c == 0x200E || c == 0x200F || c == 0xFEFF;
}
static ps r_blank(lx *L, ps s) {
    return uni(L, ch(L, s, c_blank), run(L, s, c_space, 1, -1));
}
static ps r_nbsp(lx *L, ps s) {
    return lit(L, s, "&nbsp;");
}
static ps r_any(lx *L, ps s) {
    return ch(L, s, c_any_but_nl);
}
static ps r_lbrace(lx *L, ps s) {
    return chr(L, s, '{');
}
static ps r_rbrace(lx *L, ps s) {
    return chr(L, s, '}');
}
static ps r_lbrack(lx *L, ps s) {
    return chr(L, s, '[');
}
static ps r_rbrack(lx *L, ps s) {
    return chr(L, s, ']');
}
static ps r_lparen(lx *L, ps s) {
    return chr(L, s, '(');
}
static ps r_rparen(lx *L, ps s) {
    return chr(L, s, ')');
}
static ps r_cannot(lx *L, ps s) {
    return lit(L, s, "cannot");
}
static ps r_twas(lx *L, ps s) {
    return lit(L, s, "'twas");
}
static ps r_tis(lx *L, ps s) {
    return lit(L, s, "'tis");
}

/* The rules in the lexer's order (the order breaks ties). `pushback` gives characters back after
 * the match (the assimilation rules: "gonna" is "gon" now and "na" next). */
typedef struct {
    pat r1, r2; /* r2: trailing context, or NULL */
    enum act act;
    const char *text; /* A_FIXED */
    int pushback;
} rule;

static const rule RULES[] = {
    {r_c_plusplus, NULL, A_PLAIN, NULL, 0},
    {r_cf_hash, NULL, A_PLAIN, NULL, 0},
    {r_cannot, NULL, A_PLAIN, NULL, 3},
    {r_twas, NULL, A_PLAIN, NULL, 3},
    {r_tis, NULL, A_PLAIN, NULL, 2},
    {r_assim, NULL, A_PLAIN, NULL, 2},
    {p_sgml, NULL, A_SPACE, NULL, 0},
    {r_spmdash, NULL, A_FIXED, "--", 0},
    {r_spamp, NULL, A_AMP, NULL, 0},
    {r_sppunc, NULL, A_PLAIN, NULL, 0},
    {p_word, p_redaux, A_SHY, NULL, 0},
    {p_sword, p_sredaux, A_SHY, NULL, 0},
    {p_word, NULL, A_SHY, NULL, 0},
    {p_apoword, NULL, A_PLAIN, NULL, 0},
    {r_apoword2, t_letter, A_PLAIN, NULL, 0},
    {p_fullurl, NULL, A_PLAIN, NULL, 0},
    {p_likelyurl, NULL, A_PLAIN, NULL, 0},
    {p_email, NULL, A_PLAIN, NULL, 0},
    {p_twitter, NULL, A_PLAIN, NULL, 0},
    {p_redaux, t_not_ascii_letter, A_QUOTE_R, NULL, 0},
    {p_sredaux, t_not_ascii_letter, A_QUOTE_R, NULL, 0},
    {p_date, NULL, A_PLAIN, NULL, 0},
    {p_number, NULL, A_SHY, NULL, 0},
    {p_subsupnum, NULL, A_PLAIN, NULL, 0},
    {p_frac, NULL, A_SPACE, NULL, 0},
    {r_frac2, NULL, A_FRACTION, NULL, 0},
    {p_tbspec, NULL, A_AMP, NULL, 0},
    {p_thing3, NULL, A_PLAIN, NULL, 0},
    {p_dolsign, NULL, A_PLAIN, NULL, 0},
    {r_dolsign2, NULL, A_CURRENCY, NULL, 0},
    {r_acronym, t_acronym_ctx, A_ACRONYM, NULL, 0},
    {p_abbrev3, t_abbrev3_ctx, A_PLAIN, NULL, 0},
    {r_ptyco, t_ltd, A_PLAIN, NULL, 0},
    {p_abbrev1, p_sentend, A_ABBREV_DOT, NULL, 0},
    {p_abbrev1, t_any2, A_PLAIN, NULL, 0},
    {p_abbrev1, NULL, A_ABBREV_DOT, NULL, 0},
    {r_abbrev2, NULL, A_PLAIN, NULL, 0},
    {p_abbrev4, t_space, A_PLAIN, NULL, 0},
    {p_acro, t_spacenl, A_PLAIN, NULL, 0},
    {r_tbspec2, t_spacenl, A_PLAIN, NULL, 0},
    {p_filename, t_filename_ctx, A_PLAIN, NULL, 0},
    {r_word_dot, t_insentp, A_SHY, NULL, 0},
    {p_phone, NULL, A_PHONE, NULL, 0},
    {p_dblquot, t_alnum_dollar, A_QUOTE_L, NULL, 0},
    {p_dblquot, NULL, A_QUOTE_R, NULL, 0},
    {r_del, NULL, A_SKIP, NULL, 0},
    {r_lessthan, NULL, A_FIXED, "<", 0},
    {r_greaterthan, NULL, A_FIXED, ">", 0},
    {p_smiley, t_not_alnum, A_PARENS, NULL, 0},
    {p_asiansmiley, NULL, A_PARENS, NULL, 0},
    {r_lbrace, NULL, A_FIXED, "-LCB-", 0},
    {r_rbrace, NULL, A_FIXED, "-RCB-", 0},
    {r_lbrack, NULL, A_FIXED, "-LSB-", 0},
    {r_rbrack, NULL, A_FIXED, "-RSB-", 0},
    {r_lparen, NULL, A_FIXED, "-LRB-", 0},
    {r_rparen, NULL, A_FIXED, "-RRB-", 0},
    {r_hyphens, NULL, A_HYPHENS, NULL, 0},
    {p_ldots, NULL, A_FIXED, "...", 0},
    {r_fnmarks, NULL, A_PLAIN, NULL, 0},
    {r_asts, NULL, A_PLAIN, NULL, 0},
    {r_insentp, NULL, A_PLAIN, NULL, 0},
    {r_qe, NULL, A_PLAIN, NULL, 0},
    {r_stop, NULL, A_PLAIN, NULL, 0},
    {r_equals, NULL, A_PLAIN, NULL, 0},
    {r_slash, NULL, A_PLAIN, NULL, 0},
    {r_hthing_dot, t_insentp, A_SHY, NULL, 0},
    {p_hthing, NULL, A_SHY, NULL, 0},
    {r_thing_dot, t_insentp, A_PLAIN, NULL, 0},
    {p_thing, NULL, A_PLAIN, NULL, 0},
    {r_thinga_dot, t_insentp, A_AMP, NULL, 0},
    {p_thinga, NULL, A_AMP, NULL, 0},
    {r_apos_ascii, t_invert_quote, A_QUOTE_L, NULL, 0},
    {p_redaux, NULL, A_QUOTE_R, NULL, 0},
    {p_sredaux, NULL, A_QUOTE_R, NULL, 0},
    {p_quotes, NULL, A_QUOTE_R, NULL, 0},
    {r_duckfeet, NULL, A_PLAIN, NULL, 0},
    {r_miscsymbol, NULL, A_PLAIN, NULL, 0},
    {r_blank, NULL, A_SKIP, NULL, 0},
    {p_newline, NULL, A_SKIP, NULL, 0},
    {r_nbsp, NULL, A_SKIP, NULL, 0},
    {r_any, NULL, A_SKIP, NULL, 0},
};
#define N_RULES ((int)(sizeof RULES / sizeof RULES[0]))

/* ---------- the actions' text transformations ---------- */
typedef struct {
    uint16_t *u;
    size_t n, cap;
    int oom;
} ubuf;

static void ub_put(ubuf *b, uint16_t c) {
    if (b->oom) return;
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        uint16_t *p = realloc(b->u, cap * sizeof *p);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->u = p;
        b->cap = cap;
    }
    b->u[b->n++] = c;
}
static void ub_puts(ubuf *b, const char *s) {
    for (; *s; s++) ub_put(b, (uint16_t)(unsigned char)*s);
}
/* does the token text at i start with the ASCII entity e (ci: in any case)? */
static int ent_at(const uint16_t *t, size_t n, size_t i, const char *e, int ci) {
    size_t k = strlen(e);
    if (i + k > n) return 0;
    for (size_t j = 0; j < k; j++)
        if ((ci ? fold(t[i + j]) : t[i + j]) != (unsigned char)e[j]) return 0;
    return 1;
}

/* latexQuotes: ' and &apos; become ` (probably left) or '; " and &quot; become `` or ''; the curly and
 * CP1252 quotes map by their direction; other characters stay. The entities are matched in lower case
 * only (the action's Java patterns are case-sensitive; "&APOS;" stays as it is). */
static void quotes(ubuf *b, const uint16_t *t, size_t n, int left) {
    for (size_t i = 0; i < n; i++) {
        uint16_t c = t[i];
        if (c == '\'' || (c == '&' && ent_at(t, n, i, "&apos;", 0))) {
            ub_puts(b, left ? "`" : "'");
            if (c == '&') i += 5;
        } else if (c == '"' || (c == '&' && ent_at(t, n, i, "&quot;", 0))) {
            ub_puts(b, left ? "``" : "''");
            if (c == '&') i += 5;
        } else if (c == 0x91 || c == 0x2018 || c == 0x201B || c == 0x2039) {
            ub_puts(b, "`");
        } else if (c == 0x92 || c == 0x2019 || c == 0x203A) {
            ub_puts(b, "'");
        } else if (c == 0x93 || c == 0x201C || c == 0xAB) {
            ub_puts(b, "``");
        } else if (c == 0x94 || c == 0x201D || c == 0xBB) {
            ub_puts(b, "''");
        } else {
            ub_put(b, c);
        }
    }
}

static void transform(ubuf *b, const uint16_t *t, size_t n, const rule *r) {
    switch (r->act) {
    case A_FIXED:
        ub_puts(b, r->text);
        return;
    case A_QUOTE_L:
    case A_QUOTE_R:
        quotes(b, t, n, r->act == A_QUOTE_L);
        return;
    case A_HYPHENS:
        if (n >= 3 && n <= 4) {
            ub_puts(b, "--");
            return;
        }
        break;
    case A_FRACTION: {
        static const char *const f[] = {"1/4", "1/2", "3/4"};
        if (t[0] >= 0xBC && t[0] <= 0xBE) return ub_puts(b, f[t[0] - 0xBC]);
        if (t[0] == 0x2153) return ub_puts(b, "1/3");
        if (t[0] == 0x2154) return ub_puts(b, "2/3");
        break;
    }
    case A_CURRENCY:
        if (t[0] == 0xA2) return ub_puts(b, "cents");
        if (t[0] == 0xA3) return ub_puts(b, "#");
        if (t[0] == 0x80 || t[0] == 0xA4 || t[0] == 0x20A0 || t[0] == 0x20AC) return ub_puts(b, "$");
        break;
    default:
        break;
    }
    size_t start = b->n;
    for (size_t i = 0; i < n; i++) {
        uint16_t c = t[i];
        if (r->act == A_SHY && c == 0xAD) continue;
        if ((r->act == A_AMP) && c == '&' && ent_at(t, n, i, "&amp;", 1)) {
            ub_put(b, '&');
            i += 4;
            continue;
        }
        if ((r->act == A_SPACE || r->act == A_PHONE) && c == ' ') c = 0xA0;
        if ((r->act == A_PHONE || r->act == A_PARENS) && (c == '(' || c == ')')) {
            ub_puts(b, c == '(' ? "-LRB-" : "-RRB-");
            continue;
        }
        ub_put(b, c);
    }
    if (r->act == A_SHY && b->n == start) ub_put(b, '-'); /* removeSoftHyphens never makes an empty token */
}

/* ---------- the scanner ---------- */
/* A rule that failed after reading only the first code unit fails wherever that unit starts a token:
 * remembered per rule and unit (for Latin-1 units on every line, for all units on long lines), which
 * skips most rules at most positions and makes megabyte inputs cheap. */
#define FAIL_BYTE(L, k, u) ((L)->fail_first[(size_t)(k) * (size_t)((L)->cache_units / 8) + ((u) >> 3)])

static hit best_rule(lx *L, int p) {
    hit best = {-1, -1, -1};
    uint16_t u = L->c[p];
    int cached = L->fail_first && u < L->cache_units;
    arena_reset(L); /* once per position: the shared patterns' sets live until the next one */
    L->n_memo = 0;
    for (int k = 0; k < N_RULES && !L->oom; k++) {
        if (cached && (FAIL_BYTE(L, k, u) & (1u << (u & 7)))) continue;
        hit h = {-1, -1, k};
        L->maxread = p;
        if (RULES[k].r2)
            look(L, p, RULES[k].r1, RULES[k].r2, &h);
        else
            plain(L, p, RULES[k].r1, &h);
        if (h.end < 0 && L->maxread <= p && cached) FAIL_BYTE(L, k, u) |= (uint8_t)(1u << (u & 7));
        if (h.end > best.end) best = h;
    }
    return best;
}

struct pvlm_ptblex_memo {
    uint8_t bits[N_RULES][65536 / 8];
};
pvlm_ptblex_memo *pvlm_ptblex_memo_new(void) {
    return calloc(1, sizeof(pvlm_ptblex_memo));
}
void pvlm_ptblex_memo_free(pvlm_ptblex_memo *m) {
    free(m);
}

int pvlm_ptblex_line(const uint16_t *u, size_t n, const uint16_t *next, size_t next_n, pvlm_ptblex_memo *memo,
                     pvlm_ptblex_emit emit, void *ctx) {
    size_t total = n + 1 + (next ? next_n : 0);
    uint16_t *c = malloc((total + 1) * sizeof *c);
    int units = memo || n > 512 ? 65536 : 256;
    lx L;
    memset(&L, 0, sizeof L);
    L.c = c;
    L.n = L.lim = (int)total;
    L.next_dot = malloc((total + 1) * sizeof(int32_t));
    L.mark = calloc(total + 4, 1);
    L.fail_first = memo ? &memo->bits[0][0] : calloc((size_t)N_RULES * (size_t)(units / 8), 1);
    L.cache_units = units;
    ubuf tok = {NULL, 0, 0, 0};
    int rc = 0;
    if (!c || !L.mark || !L.next_dot || !L.fail_first || total > (size_t)INT32_MAX / 2) {
        rc = -1;
        goto done;
    }
    memcpy(c, u, n * sizeof *c);
    c[n] = '\n';
    if (next) memcpy(c + n + 1, next, next_n * sizeof *c);
    L.next_dot[total] = (int32_t)total;
    for (size_t i = total; i-- > 0;) L.next_dot[i] = c[i] == '.' ? (int32_t)i : L.next_dot[i + 1];
    int p = 0;
    while (p < (int)n) {
        hit h = best_rule(&L, p);
        if (L.oom) {
            rc = -1;
            break;
        }
        const rule *r = &RULES[h.rule];
        int te = h.tok - r->pushback;
        if (r->act == A_ACRONYM && te - p == 2) te--; /* "I." before a sentence start: "I", then "." */
        if (te > (int)n) te = (int)n;                 /* a token never runs into the next line */
        if (r->act != A_SKIP) {
            tok.n = 0;
            transform(&tok, c + p, (size_t)(te - p), r);
            if (tok.oom || emit(ctx, tok.u, tok.n)) {
                rc = -1;
                break;
            }
        }
        if (r->act == A_ABBREV_DOT || (r->act == A_ACRONYM && h.tok - p > 2))
            te--; /* the period is returned again as the next token */
        p = te > p ? te : p + 1;
    }
done:
    while (L.arena) {
        blk *b = L.arena->next;
        free(L.arena);
        L.arena = b;
    }
    free(L.mark);
    free(L.next_dot);
    if (!memo) free(L.fail_first);
    free(c);
    free(tok.u);
    return rc;
}
