/* bpe_train.c - byte-level BPE training (see bpe_train.h; docs/tokenizer.md). */
#include "io/bpe_train.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/timer.h"
#include "io/tokenizer_impl.h"

static const char *const train_specials[3] = {"<pad>", "<bos>", "<eos>"};

/* growable (a,b) -> pair index map */
typedef struct pairidx {
    uint64_t *keys;
    int32_t *val;
    size_t cap, n;
} pairidx;

static int pairidx_grow(pairidx *m) {
    size_t ncap = m->cap ? m->cap * 2 : 1 << 16;
    uint64_t *k = malloc(ncap * sizeof *k);
    int32_t *v = malloc(ncap * sizeof *v);
    if (!k || !v) {
        free(k);
        free(v);
        return -1;
    }
    memset(k, 0xff, ncap * sizeof *k);
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] == UINT64_MAX) continue;
        size_t j = (size_t)pvlm_mix64(m->keys[i]) & (ncap - 1);
        while (k[j] != UINT64_MAX) j = (j + 1) & (ncap - 1);
        k[j] = m->keys[i];
        v[j] = m->val[i];
    }
    free(m->keys);
    free(m->val);
    m->keys = k;
    m->val = v;
    m->cap = ncap;
    return 0;
}

typedef struct tpair {
    int32_t a, b;
    int64_t count, pushed;
    int32_t *words; /* word indices containing the pair (may hold stale entries) */
    int32_t nwords, capwords, last_word;
    uint32_t touched;
    uint8_t forbidden;
} tpair;

typedef struct theap {
    int64_t count;
    int32_t a, b;
} theap;

struct pvlm_bpe_trainer {
    pvlm_tok_strmap words; /* piece bytes -> word index */
    int64_t *wcount;
    size_t nw, wcap;
    int64_t bytes, pieces;
    int ran;
    /* result */
    int32_t ntok;
    int64_t *tok_off;
    char *tok_bytes;
    size_t tok_cap, tok_bytes_cap, tok_bytes_n;
    pvlm_tok_merges merges; /* learned, in priority order */
    double seconds;
};

pvlm_bpe_trainer *pvlm_bpe_trainer_new(pvlm_err *err) {
    pvlm_bpe_trainer *tr = calloc(1, sizeof *tr);
    if (!tr || pvlm_tok_strmap_init(&tr->words, 1 << 14) != 0) {
        if (tr) pvlm_tok_strmap_free(&tr->words);
        free(tr);
        pvlm_err_set(err, PVLM_ENOMEM, "bpe trainer: out of memory");
        return NULL;
    }
    return tr;
}

void pvlm_bpe_trainer_free(pvlm_bpe_trainer *tr) {
    if (!tr) return;
    pvlm_tok_strmap_free(&tr->words);
    free(tr->wcount);
    free(tr->tok_off);
    free(tr->tok_bytes);
    pvlm_tok_merges_free(&tr->merges);
    free(tr);
}

static int trainer_count_piece(const char *s, size_t n, void *arg) {
    pvlm_bpe_trainer *tr = arg;
    if (tr->nw == tr->wcap) {
        size_t c = tr->wcap ? tr->wcap * 2 : 1 << 14;
        int64_t *w = realloc(tr->wcount, c * sizeof *w);
        if (!w) return -1;
        tr->wcount = w;
        tr->wcap = c;
    }
    int32_t w = pvlm_tok_strmap_put(&tr->words, s, n, (int32_t)tr->nw);
    if (w == -2) return -1;
    if ((size_t)w == tr->nw) tr->wcount[tr->nw++] = 0;
    tr->wcount[w]++;
    tr->pieces++;
    return 0;
}

int pvlm_bpe_trainer_add(pvlm_bpe_trainer *tr, const char *text, size_t len, pvlm_err *err) {
    if (tr->ran) return pvlm_err_set(err, PVLM_EINVAL, "bpe trainer: text added after training");
    if (pvlm_tokenizer_pretokenize(text, len, trainer_count_piece, tr) != 0)
        return pvlm_err_set(err, PVLM_ENOMEM, "bpe trainer: out of memory (%zu distinct words)", tr->nw);
    tr->bytes += (int64_t)len;
    return 0;
}

static int trainer_add_token(pvlm_bpe_trainer *tr, const char *s, size_t n) {
    if ((size_t)tr->ntok + 2 > tr->tok_cap) {
        size_t c = tr->tok_cap ? tr->tok_cap * 2 : 1024;
        int64_t *o = realloc(tr->tok_off, c * sizeof *o);
        if (!o) return -1;
        tr->tok_off = o;
        tr->tok_cap = c;
    }
    if (tr->tok_bytes_n + n > tr->tok_bytes_cap) {
        size_t c = tr->tok_bytes_cap ? tr->tok_bytes_cap * 2 : 65536;
        while (c < tr->tok_bytes_n + n) c *= 2;
        char *b = realloc(tr->tok_bytes, c);
        if (!b) return -1;
        tr->tok_bytes = b;
        tr->tok_bytes_cap = c;
    }
    if (tr->ntok == 0) tr->tok_off[0] = 0;
    if (n) memcpy(tr->tok_bytes + tr->tok_bytes_n, s, n);
    tr->tok_bytes_n += n;
    tr->ntok++;
    tr->tok_off[tr->ntok] = (int64_t)tr->tok_bytes_n;
    return 0;
}

static inline int theap_above(const theap *x, const theap *y) { /* x pops before y */
    if (x->count != y->count) return x->count > y->count;
    if (x->a != y->a) return x->a < y->a;
    return x->b < y->b;
}

static int theap_push(theap **h, size_t *n, size_t *cap, theap e) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 1 << 16;
        theap *h2 = realloc(*h, c * sizeof *h2);
        if (!h2) return -1;
        *h = h2;
        *cap = c;
    }
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!theap_above(&e, &(*h)[p])) break;
        (*h)[i] = (*h)[p];
        i = p;
    }
    (*h)[i] = e;
    return 0;
}

static theap theap_pop(theap *h, size_t *n) {
    theap top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && theap_above(&h[c + 1], &h[c])) c++;
        if (!theap_above(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

/* The state of one training run (pvlm_bpe_trainer_run), freed by train_ctx_free. */
typedef struct train_ctx {
    pairidx idx;
    tpair *pairs;
    size_t npairs, cappairs;
    pvlm_tok_strmap tokmap; /* token bytes -> id, so a merge that recreates a token reuses its id */
    theap *heap;            /* pairs by count (entries go stale; see train_next_pair) */
    size_t hn, hcap;
    int32_t *sym, *woff, *wlen; /* each word's current symbols: sym[woff[w] .. woff[w] + wlen[w]) */
    uint32_t *wstamp, stamp;    /* words already rewritten by the current merge (wstamp[w] == stamp) */
    int32_t *touched;           /* pairs whose count changed in the current merge */
    size_t ntouched, captouched;
    char *cat; /* bytes of the current merge's token (catn of them) */
    size_t catn, catcap;
} train_ctx;

static void train_ctx_free(train_ctx *c) {
    for (size_t q = 0; q < c->npairs; q++) free(c->pairs[q].words);
    free(c->pairs);
    free(c->idx.keys);
    free(c->idx.val);
    pvlm_tok_strmap_free(&c->tokmap);
    free(c->heap);
    free(c->sym);
    free(c->woff);
    free(c->wlen);
    free(c->wstamp);
    free(c->touched);
    free(c->cat);
}

static int train_oom(pvlm_err *err) {
    return pvlm_err_set(err, PVLM_ENOMEM, "bpe trainer: out of memory");
}

/* Index of pair (a,b); created with count 0 when create is set. -1: absent, -2: ENOMEM. */
static int32_t tpair_find(train_ctx *c, int32_t a, int32_t b, int create) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    if (!c->idx.cap || (create && (c->idx.n + 1) * 2 > c->idx.cap)) {
        if (!create) return -1;
        if (pairidx_grow(&c->idx) != 0) return -2;
    }
    size_t mask = c->idx.cap - 1, h = (size_t)pvlm_mix64(key) & mask;
    while (c->idx.keys[h] != UINT64_MAX && c->idx.keys[h] != key) h = (h + 1) & mask;
    if (c->idx.keys[h] == key) return c->idx.val[h];
    if (!create) return -1;
    if (c->npairs == c->cappairs) {
        size_t nc = c->cappairs ? c->cappairs * 2 : 1 << 14;
        tpair *p2 = realloc(c->pairs, nc * sizeof *p2);
        if (!p2) return -2;
        c->pairs = p2;
        c->cappairs = nc;
    }
    tpair *p = &c->pairs[c->npairs];
    memset(p, 0, sizeof *p);
    p->a = a;
    p->b = b;
    p->last_word = -1;
    c->idx.keys[h] = key;
    c->idx.val[h] = (int32_t)c->npairs;
    c->idx.n++;
    return (int32_t)c->npairs++;
}

/* Add cnt occurrences of (a,b) in word w; remembers w in the pair's word list. */
static int32_t tpair_add(train_ctx *c, int32_t a, int32_t b, int64_t cnt, int32_t w) {
    int32_t q = tpair_find(c, a, b, 1);
    if (q < 0) return q;
    tpair *p = &c->pairs[q];
    p->count += cnt;
    if (p->last_word != w) {
        if (p->nwords == p->capwords) {
            int32_t nc = p->capwords ? p->capwords * 2 : 4;
            int32_t *w2 = realloc(p->words, (size_t)nc * sizeof *w2);
            if (!w2) return -2;
            p->words = w2;
            p->capwords = nc;
        }
        p->words[p->nwords++] = w;
        p->last_word = w;
    }
    return q;
}

/* The first tokens (the specials, then the 256 bytes), every distinct word as byte symbols, the
 * pair counts over them and the heap of pairs. */
static int train_setup(pvlm_bpe_trainer *tr, train_ctx *c, int32_t vocab_size, pvlm_err *err) {
    if (pvlm_tok_strmap_init(&c->tokmap, (size_t)vocab_size) != 0) return train_oom(err);
    for (int k = 0; k < 3; k++)
        if (trainer_add_token(tr, train_specials[k], strlen(train_specials[k])) != 0) return train_oom(err);
    for (int b = 0; b < 256; b++) {
        char ch = (char)b;
        if (trainer_add_token(tr, &ch, 1) != 0 || pvlm_tok_strmap_put(&c->tokmap, &ch, 1, 3 + b) == -2)
            return train_oom(err);
    }
    size_t total = 0, nw = tr->nw;
    c->woff = malloc((nw + 1) * sizeof *c->woff);
    c->wlen = malloc((nw + 1) * sizeof *c->wlen);
    c->wstamp = calloc(nw + 1, sizeof *c->wstamp);
    if (!c->woff || !c->wlen || !c->wstamp) return train_oom(err);
    for (size_t slot = 0; slot < tr->words.cap; slot++) {
        if (tr->words.off[slot] < 0) continue;
        int32_t w = tr->words.val[slot];
        c->woff[w] = (int32_t)total; /* filled below */
        c->wlen[w] = tr->words.len[slot];
        total += (size_t)tr->words.len[slot];
    }
    if (total > INT32_MAX)
        return pvlm_err_set(err, PVLM_EINVAL, "bpe trainer: %zu bytes of distinct words exceed 2 GiB", total);
    if (!(c->sym = malloc((total + 1) * sizeof *c->sym))) return train_oom(err);
    for (size_t slot = 0; slot < tr->words.cap; slot++) {
        if (tr->words.off[slot] < 0) continue;
        int32_t w = tr->words.val[slot];
        const uint8_t *k = (const uint8_t *)tr->words.arena + tr->words.off[slot];
        for (int32_t i = 0; i < c->wlen[w]; i++) c->sym[c->woff[w] + i] = 3 + k[i];
    }
    for (size_t w = 0; w < nw; w++) {
        const int32_t *sy = c->sym + c->woff[w];
        for (int32_t i = 0; i + 1 < c->wlen[w]; i++)
            if (tpair_add(c, sy[i], sy[i + 1], tr->wcount[w], (int32_t)w) == -2) return train_oom(err);
    }
    for (size_t q = 0; q < c->npairs; q++) {
        tpair *p = &c->pairs[q];
        p->pushed = p->count;
        if (theap_push(&c->heap, &c->hn, &c->hcap, (theap){p->count, p->a, p->b}) != 0) return train_oom(err);
    }
    return 0;
}

/* c->cat = the bytes of tokens a and b. */
static int train_concat(const pvlm_bpe_trainer *tr, train_ctx *c, int32_t a, int32_t b) {
    size_t la = (size_t)(tr->tok_off[a + 1] - tr->tok_off[a]), lb = (size_t)(tr->tok_off[b + 1] - tr->tok_off[b]);
    if (la + lb > c->catcap) {
        size_t nc = (la + lb) * 2;
        char *c2 = realloc(c->cat, nc);
        if (!c2) return -1;
        c->cat = c2;
        c->catcap = nc;
    }
    memcpy(c->cat, tr->tok_bytes + tr->tok_off[a], la);
    memcpy(c->cat + la, tr->tok_bytes + tr->tok_off[b], lb);
    c->catn = la + lb;
    return 0;
}

/* The next pair to merge into *q, its token's bytes in c->cat: the most frequent pair, ties by the
 * smaller ids. Heap entries whose count changed since they were pushed are stale: the current count
 * is queued once instead. A pair whose merge would spell a special token's name is never merged.
 * 1: found; 0: none left at min_frequency or above; -1: error. */
static int train_next_pair(const pvlm_bpe_trainer *tr, train_ctx *c, int64_t min_frequency, int32_t *q, pvlm_err *err) {
    while (c->hn) {
        theap top = theap_pop(c->heap, &c->hn);
        *q = tpair_find(c, top.a, top.b, 0);
        if (*q < 0) continue;
        tpair *p = &c->pairs[*q];
        if (top.count != p->count) {
            if (top.count == p->pushed && p->count > 0) {
                p->pushed = p->count;
                if (theap_push(&c->heap, &c->hn, &c->hcap, (theap){p->count, p->a, p->b}) != 0) return train_oom(err);
            }
            continue;
        }
        if (p->count < min_frequency) return 0;
        if (p->forbidden) continue;
        if (train_concat(tr, c, p->a, p->b) != 0) return train_oom(err);
        int is_special_name = 0;
        for (int k = 0; k < 3; k++)
            if (c->catn == strlen(train_specials[k]) && !memcmp(c->cat, train_specials[k], c->catn))
                is_special_name = 1;
        if (!is_special_name) return 1;
        p->forbidden = 1;
    }
    return 0;
}

/* Remember that pair o's count changed in this merge (once per merge). */
static int touch_pair(train_ctx *c, int32_t o) {
    if (c->pairs[o].touched == c->stamp) return 0;
    c->pairs[o].touched = c->stamp;
    if (c->ntouched == c->captouched) {
        size_t nc = c->captouched ? c->captouched * 2 : 1024;
        int32_t *t2 = realloc(c->touched, nc * sizeof *t2);
        if (!t2) return -1;
        c->touched = t2;
        c->captouched = nc;
    }
    c->touched[c->ntouched++] = o;
    return 0;
}

/* Rewrite word w if it holds (a,b): remove its old pairs, merge every occurrence left to right into
 * res, add its new pairs. -1: out of memory. */
static int rewrite_word(const pvlm_bpe_trainer *tr, train_ctx *c, int32_t w, int32_t a, int32_t b, int32_t res) {
    if (c->wstamp[w] == c->stamp) return 0;
    c->wstamp[w] = c->stamp;
    int32_t *s = c->sym + c->woff[w], n = c->wlen[w], has = 0;
    for (int32_t i = 0; i + 1 < n && !has; i++) has = s[i] == a && s[i + 1] == b;
    if (!has) return 0;
    int64_t cnt = tr->wcount[w];
    for (int32_t i = 0; i + 1 < n; i++) {
        int32_t o = tpair_find(c, s[i], s[i + 1], 0);
        if (o >= 0) c->pairs[o].count -= cnt;
    }
    int32_t j = 0;
    for (int32_t i = 0; i < n;) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) {
            s[j++] = res;
            i += 2;
        } else {
            s[j++] = s[i++];
        }
    }
    c->wlen[w] = n = j;
    for (int32_t i = 0; i + 1 < n; i++) {
        int32_t o = tpair_add(c, s[i], s[i + 1], cnt, w);
        if (o == -2 || touch_pair(c, o) != 0) return -1;
    }
    return 0;
}

/* Merge pair q (its token's bytes in c->cat): a new token (or the existing one with those bytes),
 * a merge, every word holding the pair rewritten and the pairs whose count grew queued again. */
static int train_merge(pvlm_bpe_trainer *tr, train_ctx *c, int32_t q, pvlm_err *err) {
    tpair *p = &c->pairs[q];
    int32_t a = p->a, b = p->b;
    int32_t res = pvlm_tok_strmap_put(&c->tokmap, c->cat, c->catn, tr->ntok);
    if (res == -2) return train_oom(err);
    if (res == tr->ntok && trainer_add_token(tr, c->cat, c->catn) != 0) return train_oom(err);
    if (pvlm_tok_merges_push(&tr->merges, a, b, res) != 0) return train_oom(err);
    c->stamp++;
    c->ntouched = 0;
    int32_t *wl = p->words, nwl = p->nwords; /* p is not used below: tpair_add may move c->pairs */
    p->words = NULL;
    p->nwords = p->capwords = 0;
    p->last_word = -1;
    int rc = 0;
    for (int32_t k = 0; k < nwl && rc == 0; k++) rc = rewrite_word(tr, c, wl[k], a, b, res);
    free(wl);
    if (rc != 0) return train_oom(err);
    for (size_t k = 0; k < c->ntouched; k++) {
        tpair *o = &c->pairs[c->touched[k]];
        if (o->count > o->pushed) {
            o->pushed = o->count;
            if (theap_push(&c->heap, &c->hn, &c->hcap, (theap){o->count, o->a, o->b}) != 0) return train_oom(err);
        }
    }
    return 0;
}

int pvlm_bpe_trainer_run(pvlm_bpe_trainer *tr, int32_t vocab_size, int64_t min_frequency, pvlm_err *err) {
    if (tr->ran) return pvlm_err_set(err, PVLM_EINVAL, "bpe trainer: already trained");
    if (vocab_size < 259)
        return pvlm_err_set(err, PVLM_EINVAL, "bpe trainer: --vocab-size %d is below 259 (3 specials + 256 bytes)",
                            vocab_size);
    if (min_frequency < 1) min_frequency = 1;
    tr->ran = 1;
    double t0 = pvlm_now();
    train_ctx c;
    memset(&c, 0, sizeof c);
    int rc = train_setup(tr, &c, vocab_size, err);
    while (rc == 0 && tr->ntok < vocab_size) {
        int32_t q;
        int got = train_next_pair(tr, &c, min_frequency, &q, err);
        if (got <= 0) {
            rc = got;
            break;
        }
        rc = train_merge(tr, &c, q, err);
    }
    train_ctx_free(&c);
    tr->seconds = pvlm_now() - t0;
    return rc;
}

void pvlm_bpe_trainer_stats(const pvlm_bpe_trainer *tr, pvlm_bpe_train_stats *st) {
    st->bytes = tr->bytes;
    st->words = tr->pieces;
    st->unique_words = (int64_t)tr->nw;
    st->merges = tr->merges.n;
    st->vocab_size = tr->ntok;
    st->seconds = tr->seconds;
}

/* Append token id's key (GPT-2 alphabet, UTF-8; specials verbatim) to buf. */
static size_t token_key(const pvlm_bpe_trainer *tr, int32_t id, const uint32_t cp_of_byte[256], char *buf) {
    const uint8_t *s = (const uint8_t *)tr->tok_bytes + tr->tok_off[id];
    size_t n = (size_t)(tr->tok_off[id + 1] - tr->tok_off[id]), o = 0;
    if (id < 3) {
        memcpy(buf, s, n);
        buf[n] = 0;
        return n;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = cp_of_byte[s[i]];
        if (cp < 0x80) {
            buf[o++] = (char)cp;
        } else { /* all alphabet code points are < U+0800: two bytes */
            buf[o++] = (char)(0xC0 | (cp >> 6));
            buf[o++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    buf[o] = 0;
    return o;
}

int pvlm_bpe_trainer_save(const pvlm_bpe_trainer *tr, const char *dir, pvlm_err *err) {
    if (!tr->ran) return pvlm_err_set(err, PVLM_EINVAL, "bpe trainer: save before training");
    if (pvlm_mkdir_p(dir, err) != 0) return -1;
    uint32_t cp_of_byte[256];
    int16_t byte_of_cp[324];
    pvlm_tok_byte_alphabet(cp_of_byte, byte_of_cp);
    size_t maxlen = 16;
    for (int32_t id = 0; id < tr->ntok; id++) {
        size_t l = (size_t)(tr->tok_off[id + 1] - tr->tok_off[id]);
        if (l > maxlen) maxlen = l;
    }
    char *key = malloc(2 * maxlen + 1), *key2 = malloc(2 * maxlen + 1);
    json_t *obj = json_object();
    char *text = NULL, *merges = NULL;
    int rc = -1;
    char path[4096];
    if (!key || !key2 || !obj) goto nomem;
    for (int32_t id = 0; id < tr->ntok; id++) {
        token_key(tr, id, cp_of_byte, key);
        if (json_object_set_new(obj, key, json_integer(id)) != 0) goto nomem;
    }
    text = json_dumps(obj, 0);
    if (!text) goto nomem;
    size_t tl = strlen(text);
    text[tl] = '\n';
    if (pvlm_path_join(path, sizeof path, dir, "encoder.json", err) != 0) goto out;
    if (pvlm_write_file_atomic(path, text, tl + 1, err) != 0) goto out;
    /* vocab.bpe: "#version: 0.2" then "left right" per merge, highest priority first */
    size_t mcap = 64 + (size_t)tr->merges.n * (4 * maxlen + 2), mn = 0;
    merges = malloc(mcap);
    if (!merges) goto nomem;
    mn += (size_t)sprintf(merges, "#version: 0.2\n");
    for (int32_t m = 0; m < tr->merges.n; m++) {
        size_t l1 = token_key(tr, tr->merges.a[m], cp_of_byte, key),
               l2 = token_key(tr, tr->merges.b[m], cp_of_byte, key2);
        memcpy(merges + mn, key, l1);
        mn += l1;
        merges[mn++] = ' ';
        memcpy(merges + mn, key2, l2);
        mn += l2;
        merges[mn++] = '\n';
    }
    if (pvlm_path_join(path, sizeof path, dir, "vocab.bpe", err) != 0) goto out;
    if (pvlm_write_file_atomic(path, merges, mn, err) != 0) goto out;
    rc = 0;
    goto out;
nomem:
    pvlm_err_set(err, PVLM_ENOMEM, "bpe trainer: out of memory while saving to %s", dir);
out:
    free(key);
    free(key2);
    free(text);
    free(merges);
    json_decref(obj);
    return rc;
}

int pvlm_bpe_trainer_tokenizer(const pvlm_bpe_trainer *tr, pvlm_tokenizer **out, pvlm_err *err) {
    *out = NULL;
    if (!tr->ran) return pvlm_err_set(err, PVLM_EINVAL, "bpe trainer: no vocabulary before training");
    return pvlm_tokenizer_from_merges(tr->ntok, tr->tok_off, tr->tok_bytes, tr->tok_bytes_n, tr->merges.n, tr->merges.a,
                                      tr->merges.b, tr->merges.r, out, err);
}
