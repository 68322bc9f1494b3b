/* ptb.c - PTB tokenization as pycocoevalcap runs it (Stanford CoreNLP 3.4.1 PTBTokenizer
 * -preserveLines -lowerCase, then the removal of punctuation tokens), and the token-id / n-gram corpus
 * for the caption metrics. See ptb.h; the lexer itself is ptblex.c.
 */
#include "score/ptb.h"

#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/ucd.h"
#include "core/utf8.h"
#include "score/ptblex.h"

/* ---------- small growable byte buffer ---------- */
typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

/* pycocoevalcap's PUNCTUATIONS, compared with the lower-cased tokens (so -lrb- and friends stay) */
static const char *const coco_punct[] = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".",
                                         "?",  "!", ",",  ":", "-",     "--",    "...",   ";",     NULL};

typedef struct {
    sbuf out;
    int remove_punct;
    uint32_t *cp; /* scratch: the token's code points, then its lower-case form */
    size_t cap;
} tokout;

/* UTF-16 -> code points; a lone surrogate is written as '?', as Java's UTF-8 encoder does. */
static size_t utf16_to_cps(const uint16_t *u, size_t n, uint32_t *cp) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = u[i];
        if (c >= 0xD800 && c <= 0xDBFF && i + 1 < n && u[i + 1] >= 0xDC00 && u[i + 1] <= 0xDFFF) {
            c = 0x10000 + ((c - 0xD800) << 10) + (u[i + 1] - 0xDC00);
            i++;
        } else if (c >= 0xD800 && c <= 0xDFFF) {
            c = '?';
        }
        cp[m++] = c;
    }
    return m;
}

/* One token from the lexer: lower-case it (-lowerCase: Java's toLowerCase, whose special cases are
 * those of ucd.h), drop it if it is one of pycocoevalcap's punctuation tokens, else append it. */
static int take_token(void *ctx, const uint16_t *u, size_t n) {
    tokout *t = ctx;
    if (4 * n + 4 > t->cap) {
        size_t cap = 4 * n + 64;
        uint32_t *p = realloc(t->cp, cap * sizeof *p);
        if (!p) return -1;
        t->cp = p;
        t->cap = cap;
    }
    size_t m = utf16_to_cps(u, n, t->cp);
    size_t k = pvlm_ucd_lower_full(t->cp, m, t->cp + m);
    char tok[64], *w = tok;
    size_t len = 0;
    if (k * 4 > sizeof tok && !(w = malloc(k * 4))) return -1;
    for (size_t i = 0; i < k; i++) len += pvlm_utf8_encode(t->cp[m + i], w + len);
    int drop = 0;
    if (t->remove_punct && len <= 5)
        for (const char *const *q = coco_punct; *q; q++)
            if (strlen(*q) == len && !memcmp(*q, w, len)) drop = 1;
    if (!drop && len) {
        if (t->out.n) sb_put(&t->out, " ", 1);
        sb_put(&t->out, w, len);
    }
    if (w != tok) free(w);
    return t->out.oom ? -1 : 0;
}

/* UTF-8 -> UTF-16 code units (what the Java lexer reads); invalid UTF-8 becomes U+FFFD. */
static uint16_t *to_utf16(const char *text, size_t len, size_t *n) {
    uint32_t *cps = malloc((len + 1) * sizeof *cps);
    uint16_t *u = malloc((2 * len + 1) * sizeof *u);
    if (!cps || !u) {
        free(cps);
        free(u);
        return NULL;
    }
    size_t m = pvlm_utf8_decode_all(text, len, cps), k = 0;
    for (size_t i = 0; i < m; i++) {
        uint32_t c = cps[i];
        if (c >= 0x10000) {
            u[k++] = (uint16_t)(0xD800 + ((c - 0x10000) >> 10));
            u[k++] = (uint16_t)(0xDC00 + ((c - 0x10000) & 0x3FF));
        } else {
            u[k++] = (uint16_t)c;
        }
    }
    free(cps);
    *n = k;
    return u;
}

static char *tokenize(const char *text, size_t len, const char *next, size_t next_len, pvlm_ptblex_memo *memo,
                      int remove_punct, pvlm_err *err) {
    tokout t = {{NULL, 0, 0, 0}, remove_punct, NULL, 0};
    size_t n = 0, nn = 0;
    uint16_t *u = to_utf16(text, len, &n);
    uint16_t *un = next ? to_utf16(next, next_len, &nn) : NULL;
    int rc = -1;
    if (u && (un || !next)) {
        sb_put(&t.out, "", 0);
        rc = t.out.oom ? -1 : pvlm_ptblex_line(u, n, un, nn, memo, take_token, &t);
    }
    free(u);
    free(un);
    free(t.cp);
    if (rc) {
        free(t.out.s);
        pvlm_err_set(err, PVLM_ENOMEM, "ptb tokenizer: out of memory (caption of %zu bytes)", len);
        return NULL;
    }
    return t.out.s;
}

char *pvlm_ptb_tokenize(const char *text, size_t len, pvlm_err *err) {
    return tokenize(text, len, NULL, 0, NULL, 1, err);
}
char *pvlm_ptb_tokenize_next(const char *text, size_t len, const char *next, size_t next_len, pvlm_ptblex_memo *memo,
                             pvlm_err *err) {
    return tokenize(text, len, next, next_len, memo, 1, err);
}
char *pvlm_ptb_tokenize_raw(const char *text, size_t len, pvlm_err *err) {
    return tokenize(text, len, NULL, 0, NULL, 0, err);
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
static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then mixed */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return pvlm_mix64(h ^ n);
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

/* id of the n-gram with this key (hash = pvlm_mix64(key)), inserting it if new */
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
                size_t k = (size_t)pvlm_mix64(g->s[j].key) & (ng.cap - 1);
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
                keys[2 * q + 1] = pvlm_mix64(key);
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
