/* tokenizer.c - byte-level BPE: GPT-2 file loading, pre-tokenization, merges (training: bpe_train.c).
 * See tokenizer.h for the contract and docs/tokenizer.md for the design. */
#include "io/tokenizer.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/timer.h"
#include "core/utf8.h"
#include "io/tokenizer_impl.h"
#include "io/unicode.h"

#define NO_RANK INT32_MAX
#define DEFAULT_HEAP_THRESHOLD 48
#define MAX_SCAN 256      /* longest piece the quadratic scan may get */
#define CACHE_MAX_KEY 255 /* longer pieces are not cached (rare; long runs of spaces etc.) */

/* ------------------------------------------------------------------ */
/* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other
 * 68 bytes to U+0100.. in byte order (OpenAI gpt-2 encoder.py, bytes_to_unicode). */

void pvlm_tok_byte_alphabet(uint32_t cp_of_byte[256], int16_t byte_of_cp[324]) {
    int n = 0;
    for (int i = 0; i < 324; i++) byte_of_cp[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        cp_of_byte[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
        byte_of_cp[cp_of_byte[b]] = (int16_t)b;
    }
}

/* ------------------------------------------------------------------ */
/* Pre-tokenization: the GPT-2 regex as a hand-written scanner (ASCII fast path). */

/* Class of each ASCII byte: letters, digits, \t\n\v\f\r and space, the rest "other". */
static const uint8_t ascii_class[128] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3, 3, 3, 3, 0, 0, /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
    3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, /* 0x30 */
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, /* 0x50 */
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, /* 0x70 */
};

/* Class of the character at s[i] and its byte length. An invalid UTF-8 byte is one
 * character of class "other" (so byte-level round trips hold for any input). */
static inline int char_class(const uint8_t *s, size_t n, size_t i, int *len) {
    if (s[i] < 0x80) {
        *len = 1;
        return ascii_class[s[i]];
    }
    uint32_t cp;
    int l = pvlm_utf8_decode(s + i, n - i, &cp);
    if (!l) {
        *len = 1;
        return PVLM_UC_OTHER;
    }
    *len = l;
    return pvlm_unicode_class(cp);
}

/* End (exclusive) of the piece that starts at s[i], i < n. The regex's alternatives are
 * tried in order, as a backtracking matcher (JavaScript's) would:
 *   's|'t|'re|'ve|'m|'ll|'d | ' '?L+ | ' '?N+ | ' '?[^\sLN]+ | \s+(?!\S) | \s+ */
static size_t piece_end(const uint8_t *s, size_t n, size_t i) {
    uint8_t c = s[i];
    if (c == '\'' && i + 1 < n) {
        uint8_t c1 = s[i + 1];
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return i + 2;
        if (i + 2 < n) {
            uint8_t c2 = s[i + 2];
            if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return i + 3;
        }
    }
    int len;
    int cls = char_class(s, n, i, &len);
    size_t j = i;
    if (c == ' ' && i + 1 < n) {
        int len1;
        int cls1 = char_class(s, n, i + 1, &len1);
        if (cls1 != PVLM_UC_SPACE) { /* ' '? then a run of cls1 */
            cls = cls1;
            len = len1;
            j = i + 1;
        }
    }
    if (cls != PVLM_UC_SPACE) {
        j += (size_t)len;
        while (j < n) {
            if (s[j] < 0x80) {
                if (ascii_class[s[j]] != cls) break;
                j++;
            } else {
                int l;
                if (char_class(s, n, j, &l) != cls) break;
                j += (size_t)l;
            }
        }
        return j;
    }
    /* whitespace run s[i..k); last = start of its last character */
    size_t k = i + (size_t)len, last = i, nchars = 1;
    while (k < n) {
        int l;
        if (char_class(s, n, k, &l) != PVLM_UC_SPACE) break;
        last = k;
        k += (size_t)l;
        nchars++;
    }
    if (k == n) return n;        /* \s+(?!\S) matches the whole run at the end */
    if (nchars > 1) return last; /* backtrack one char so a space is left before \S */
    return k;                    /* \s+ : a single whitespace char before \S */
}

int pvlm_tokenizer_pretokenize(const char *text, size_t len, int (*fn)(const char *, size_t, void *), void *arg) {
    const uint8_t *s = (const uint8_t *)text;
    size_t i = 0;
    while (i < len) {
        size_t e = piece_end(s, len, i);
        int rc = fn(text + i, e - i, arg);
        if (rc) return rc;
        i = e;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Small open-addressing maps. */

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

/* pair (a,b) -> (rank, result id) */
typedef struct pairmap {
    uint64_t *keys; /* UINT64_MAX = empty */
    int32_t *rank, *res;
    size_t cap, n;
} pairmap;

static int pairmap_init(pairmap *m, size_t expect) {
    m->cap = pow2_at_least(expect * 2 + 16);
    m->n = 0;
    m->keys = malloc(m->cap * sizeof *m->keys);
    m->rank = malloc(m->cap * sizeof *m->rank);
    m->res = malloc(m->cap * sizeof *m->res);
    if (!m->keys || !m->rank || !m->res) return -1;
    memset(m->keys, 0xff, m->cap * sizeof *m->keys);
    return 0;
}

static void pairmap_free(pairmap *m) {
    free(m->keys);
    free(m->rank);
    free(m->res);
    memset(m, 0, sizeof *m);
}

static inline size_t pairmap_slot(const pairmap *m, uint64_t key) {
    size_t mask = m->cap - 1, h = (size_t)pvlm_mix64(key) & mask;
    while (m->keys[h] != UINT64_MAX && m->keys[h] != key) h = (h + 1) & mask;
    return h;
}

/* Insert or overwrite (the map is sized for all inserts up front). */
static void pairmap_put(pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t res) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t h = pairmap_slot(m, key);
    if (m->keys[h] == UINT64_MAX) m->n++;
    m->keys[h] = key;
    m->rank[h] = rank;
    m->res[h] = res;
}

static inline int32_t pairmap_get(const pairmap *m, int32_t a, int32_t b, int32_t *res) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t h = pairmap_slot(m, key);
    if (m->keys[h] == UINT64_MAX) return NO_RANK;
    *res = m->res[h];
    return m->rank[h];
}

int pvlm_tok_strmap_init(pvlm_tok_strmap *m, size_t expect) {
    memset(m, 0, sizeof *m);
    m->cap = pow2_at_least(expect * 2 + 16);
    m->hash = malloc(m->cap * sizeof *m->hash);
    m->off = malloc(m->cap * sizeof *m->off);
    m->len = malloc(m->cap * sizeof *m->len);
    m->val = malloc(m->cap * sizeof *m->val);
    if (!m->hash || !m->off || !m->len || !m->val) return -1;
    for (size_t i = 0; i < m->cap; i++) m->off[i] = -1;
    return 0;
}

void pvlm_tok_strmap_free(pvlm_tok_strmap *m) {
    free(m->hash);
    free(m->off);
    free(m->len);
    free(m->val);
    free(m->arena);
    memset(m, 0, sizeof *m);
}

static size_t strmap_slot(const pvlm_tok_strmap *m, const char *s, size_t n, uint64_t h) {
    size_t mask = m->cap - 1, i = (size_t)h & mask;
    while (m->off[i] >= 0 && !(m->hash[i] == h && (size_t)m->len[i] == n && !memcmp(m->arena + m->off[i], s, n)))
        i = (i + 1) & mask;
    return i;
}

static int strmap_grow(pvlm_tok_strmap *m) {
    pvlm_tok_strmap g;
    if (pvlm_tok_strmap_init(&g, m->cap) != 0) {
        pvlm_tok_strmap_free(&g);
        return -1;
    }
    g.arena = m->arena;
    g.arena_n = m->arena_n;
    g.arena_cap = m->arena_cap;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->off[i] < 0) continue;
        size_t j = strmap_slot(&g, m->arena + m->off[i], (size_t)m->len[i], m->hash[i]);
        g.hash[j] = m->hash[i];
        g.off[j] = m->off[i];
        g.len[j] = m->len[i];
        g.val[j] = m->val[i];
        g.n++;
    }
    m->arena = NULL;
    pvlm_tok_strmap_free(m);
    *m = g;
    return 0;
}

/* Find s; returns its value or -1. */
int32_t pvlm_tok_strmap_get(const pvlm_tok_strmap *m, const char *s, size_t n) {
    uint64_t h = pvlm_hash64(s, n);
    size_t i = strmap_slot(m, s, n, h);
    return m->off[i] < 0 ? -1 : m->val[i];
}

/* Insert s -> v unless present; returns the existing value, v if inserted, -2 on ENOMEM. */
int32_t pvlm_tok_strmap_put(pvlm_tok_strmap *m, const char *s, size_t n, int32_t v) {
    if ((m->n + 1) * 2 > m->cap && strmap_grow(m) != 0) return -2;
    uint64_t h = pvlm_hash64(s, n);
    size_t i = strmap_slot(m, s, n, h);
    if (m->off[i] >= 0) return m->val[i];
    if (m->arena_n + n + 1 > m->arena_cap) {
        size_t c = m->arena_cap ? m->arena_cap : 4096;
        while (c < m->arena_n + n + 1) c *= 2;
        char *a = realloc(m->arena, c);
        if (!a) return -2;
        m->arena = a;
        m->arena_cap = c;
    }
    memcpy(m->arena + m->arena_n, s, n);
    m->hash[i] = h;
    m->off[i] = (int64_t)m->arena_n;
    m->len[i] = (int32_t)n;
    m->val[i] = v;
    m->arena_n += n;
    m->n++;
    return v;
}

/* ------------------------------------------------------------------ */
/* The tokenizer. */

struct pvlm_tokenizer {
    int32_t n_vocab; /* including appended specials */
    int32_t pad, bos, eos, n_merges;
    pvlm_tok_pairs pairs;
    int heap_threshold;
    char *tok_bytes;  /* all token byte strings, back to back */
    int64_t *tok_off; /* [n_vocab+1] */
    uint8_t *special; /* [n_vocab] */
    int32_t byte_id[256];
    pairmap merges;
};

int32_t pvlm_tokenizer_vocab_size(const pvlm_tokenizer *t) {
    return t->n_vocab;
}
int32_t pvlm_tokenizer_pad_id(const pvlm_tokenizer *t) {
    return t->pad;
}
int32_t pvlm_tokenizer_bos_id(const pvlm_tokenizer *t) {
    return t->bos;
}
int32_t pvlm_tokenizer_eos_id(const pvlm_tokenizer *t) {
    return t->eos;
}
int32_t pvlm_tokenizer_n_merges(const pvlm_tokenizer *t) {
    return t->n_merges;
}
pvlm_tok_pairs pvlm_tokenizer_pairs(const pvlm_tokenizer *t) {
    return t->pairs;
}
void pvlm_tokenizer_set_heap_threshold(pvlm_tokenizer *t, int n) {
    t->heap_threshold = n < 2 ? 2 : n > MAX_SCAN ? MAX_SCAN : n;
}

int pvlm_tokenizer_is_special(const pvlm_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && t->special[id];
}

const char *pvlm_tokenizer_token(const pvlm_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = (size_t)(t->tok_off[id + 1] - t->tok_off[id]);
    return t->tok_bytes + t->tok_off[id];
}

void pvlm_tokenizer_free(pvlm_tokenizer *t) {
    if (!t) return;
    free(t->tok_bytes);
    free(t->tok_off);
    free(t->special);
    pairmap_free(&t->merges);
    free(t);
}

/* Convert a vocabulary key (UTF-8 in the byte alphabet) to raw bytes into out (capacity
 * >= strlen(key)). Returns the byte count, or -1 when the key has a character outside
 * the alphabet (then it can only be a special token, kept verbatim). */
static long key_to_bytes(const char *key, size_t klen, const int16_t byte_of_cp[324], char *out) {
    const uint8_t *s = (const uint8_t *)key;
    size_t i = 0;
    long n = 0;
    while (i < klen) {
        uint32_t cp;
        int l = pvlm_utf8_decode(s + i, klen - i, &cp);
        if (!l || cp >= 324 || byte_of_cp[cp] < 0) return -1;
        out[n++] = (char)byte_of_cp[cp];
        i += (size_t)l;
    }
    return n;
}

/* A merges-file line split into its two fields; 0 ok, -1 malformed. */
static int split_merge_line(char *line, char **a, char **b) {
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (!*p) return -1;
    *a = p;
    while (*p && *p != ' ' && *p != '\t') p++;
    if (!*p) return -1;
    *p++ = 0;
    while (*p == ' ' || *p == '\t') p++;
    if (!*p) return -1;
    *b = p;
    while (*p && *p != ' ' && *p != '\t') p++;
    char *end = p;
    while (*p == ' ' || *p == '\t') p++;
    if (*p) return -1; /* a third field */
    *end = 0;
    return 0;
}

/* Everything pvlm_tokenizer_load_files needs while reading the two files. */
typedef struct load_state {
    const char *vocab_path, *merges_path;
    int32_t n;               /* entries in the vocabulary file */
    char *keybuf;            /* copies of the JSON keys, back to back (owned) */
    char **keys;             /* [n] into keybuf: the key of each id */
    size_t *key_len;         /* [n] */
    pvlm_tok_strmap key_ids; /* key string -> id */
    uint8_t *is_result;      /* [n] 1 when some merge produces the id */
} load_state;

static void load_state_free(load_state *ls) {
    free(ls->keybuf);
    free(ls->keys);
    free(ls->key_len);
    free(ls->is_result);
    pvlm_tok_strmap_free(&ls->key_ids);
}

static int load_vocab(pvlm_tokenizer *t, load_state *ls, const int16_t byte_of_cp[324], pvlm_err *err) {
    json_t *root = pvlm_json_load_file(ls->vocab_path, err);
    if (!root) return -1;
    int rc = -1;
    if (!json_is_object(root)) {
        pvlm_err_set(err, PVLM_EFORMAT, "%s: expected a JSON object {token: id}", ls->vocab_path);
        goto out;
    }
    size_t n = json_object_size(root);
    if (n < 256 || n > INT32_MAX / 2) {
        pvlm_err_set(err, PVLM_EFORMAT, "%s: %zu entries; a byte-level vocabulary has at least 256", ls->vocab_path, n);
        goto out;
    }
    ls->n = (int32_t)n;
    size_t total = 0;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) total += strlen(key) + 1;
    ls->keybuf = malloc(total);
    ls->keys = calloc(n, sizeof *ls->keys);
    ls->key_len = calloc(n, sizeof *ls->key_len);
    ls->is_result = calloc(n, 1);
    t->tok_off = calloc(n + 1, sizeof *t->tok_off);
    t->tok_bytes = malloc(total + 1);
    t->special = calloc(n, 1);
    if (!ls->keybuf || !ls->keys || !ls->key_len || !ls->is_result || !t->tok_off || !t->tok_bytes || !t->special ||
        pvlm_tok_strmap_init(&ls->key_ids, n) != 0) {
        pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", ls->vocab_path);
        goto out;
    }
    size_t kp = 0;
    json_object_foreach(root, key, val) {
        if (!json_is_integer(val)) {
            pvlm_err_set(err, PVLM_EFORMAT, "%s: token \"%s\": id is not an integer", ls->vocab_path, key);
            goto out;
        }
        json_int_t id = json_integer_value(val);
        if (id < 0 || id >= (json_int_t)n) {
            pvlm_err_set(err, PVLM_EFORMAT, "%s: token \"%s\": id %lld outside 0..%zu (ids must be dense)",
                         ls->vocab_path, key, (long long)id, n - 1);
            goto out;
        }
        if (ls->keys[id]) {
            pvlm_err_set(err, PVLM_EFORMAT, "%s: id %lld is used by both \"%s\" and \"%s\"", ls->vocab_path,
                         (long long)id, ls->keys[id], key);
            goto out;
        }
        size_t kl = strlen(key);
        memcpy(ls->keybuf + kp, key, kl + 1);
        ls->keys[id] = ls->keybuf + kp;
        ls->key_len[id] = kl;
        kp += kl + 1;
        if (pvlm_tok_strmap_put(&ls->key_ids, key, kl, (int32_t)id) == -2) {
            pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", ls->vocab_path);
            goto out;
        }
    }
    int64_t off = 0;
    for (int32_t id = 0; id < ls->n; id++) {
        long nb = key_to_bytes(ls->keys[id], ls->key_len[id], byte_of_cp, t->tok_bytes + off);
        if (nb < 0) { /* outside the byte alphabet: can only be a special token, kept verbatim */
            memcpy(t->tok_bytes + off, ls->keys[id], ls->key_len[id]);
            nb = (long)ls->key_len[id];
            t->special[id] = 2;
        }
        t->tok_off[id] = off;
        off += nb;
        t->tok_off[id + 1] = off;
    }
    t->tok_bytes[off] = 0;
    t->n_vocab = ls->n;
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    for (int32_t id = 0; id < ls->n; id++)
        if (!t->special[id] && t->tok_off[id + 1] - t->tok_off[id] == 1 && ls->key_len[id] <= 2)
            t->byte_id[(uint8_t)t->tok_bytes[t->tok_off[id]]] = id;
    for (int b = 0; b < 256; b++) {
        if (t->byte_id[b] < 0) {
            pvlm_err_set(err, PVLM_EFORMAT, "%s: no token for byte 0x%02X (a byte-level vocabulary needs all 256)",
                         ls->vocab_path, b);
            goto out;
        }
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* The merges file's rules in file order (ids of left, right and result), plus a scratch buffer for
 * joining keys; freed by merge_list_free. */
typedef struct merge_list {
    pvlm_tok_merges rules;
    char *cat;
    size_t cat_cap;
} merge_list;

static void merge_list_free(merge_list *ml) {
    pvlm_tok_merges_free(&ml->rules);
    free(ml->cat);
}

/* ml->cat holds at least need bytes. */
static int grow_cat(merge_list *ml, size_t need) {
    if (need <= ml->cat_cap) return 0;
    size_t nc = need * 2;
    char *c2 = realloc(ml->cat, nc);
    if (!c2) return -1;
    ml->cat = c2;
    ml->cat_cap = nc;
    return 0;
}

int pvlm_tok_merges_push(pvlm_tok_merges *m, int32_t a, int32_t b, int32_t r) {
    if (m->n == m->cap) {
        int32_t cap = m->cap ? m->cap * 2 : 1024;
        int32_t *a2 = realloc(m->a, (size_t)cap * sizeof *a2);
        if (!a2) return -1;
        m->a = a2;
        a2 = realloc(m->b, (size_t)cap * sizeof *a2);
        if (!a2) return -1;
        m->b = a2;
        a2 = realloc(m->r, (size_t)cap * sizeof *a2);
        if (!a2) return -1;
        m->r = a2;
        m->cap = cap;
    }
    m->a[m->n] = a;
    m->b[m->n] = b;
    m->r[m->n] = r;
    m->n++;
    return 0;
}

void pvlm_tok_merges_free(pvlm_tok_merges *m) {
    free(m->a);
    free(m->b);
    free(m->r);
    memset(m, 0, sizeof *m);
}

/* One "left right" line of the merges file: both parts and their concatenation must be byte-level
 * tokens of the vocabulary. */
static int parse_merge_line(const pvlm_tokenizer *t, load_state *ls, char *line, long lineno, merge_list *ml,
                            pvlm_err *err) {
    char *a, *b;
    if (split_merge_line(line, &a, &b) != 0)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s:%ld: expected two tokens \"left right\"", ls->merges_path, lineno);
    size_t la = strlen(a), lb = strlen(b);
    int32_t ia = pvlm_tok_strmap_get(&ls->key_ids, a, la), ib = pvlm_tok_strmap_get(&ls->key_ids, b, lb);
    if (ia < 0 || ib < 0)
        return pvlm_err_set(err, PVLM_EFORMAT, "%s:%ld: merge part \"%s\" is not in %s", ls->merges_path, lineno,
                            ia < 0 ? a : b, ls->vocab_path);
    if (t->special[ia] || t->special[ib])
        return pvlm_err_set(err, PVLM_EFORMAT, "%s:%ld: merge part \"%s\" is not a byte-level token", ls->merges_path,
                            lineno, t->special[ia] ? a : b);
    if (grow_cat(ml, la + lb + 2) != 0) return pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", ls->merges_path);
    memcpy(ml->cat, a, la);
    memcpy(ml->cat + la, b, lb);
    int32_t ir = pvlm_tok_strmap_get(&ls->key_ids, ml->cat, la + lb);
    if (ir < 0) {
        ml->cat[la + lb] = 0;
        return pvlm_err_set(err, PVLM_EFORMAT, "%s:%ld: merged token \"%s\" is not in %s", ls->merges_path, lineno,
                            ml->cat, ls->vocab_path);
    }
    if (pvlm_tok_merges_push(&ml->rules, ia, ib, ir) != 0)
        return pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", ls->merges_path);
    ls->is_result[ir] = 1;
    return 0;
}

/* Every rule of the merges file (an optional "#version" first line; blank lines skipped). */
static int read_merges(const pvlm_tokenizer *t, load_state *ls, merge_list *ml, pvlm_err *err) {
    char *buf;
    size_t blen;
    if (pvlm_read_file(ls->merges_path, &buf, &blen, err) != 0) return -1;
    char *p = buf, *end = buf + blen;
    long lineno = 0;
    int rc = 0;
    while (p < end && rc == 0) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        *le = 0;
        lineno++;
        char *line = p;
        p = le + 1;
        if (memchr(line, 0, (size_t)(le - line))) {
            rc = pvlm_err_set(err, PVLM_EFORMAT, "%s:%ld: NUL byte in merge line", ls->merges_path, lineno);
            break;
        }
        if (le > line && le[-1] == '\r') le[-1] = 0;
        if (lineno == 1 && !strncmp(line, "#version", 8)) continue;
        if (!line[0]) continue;
        rc = parse_merge_line(t, ls, line, lineno, ml, err);
    }
    free(buf);
    return rc;
}

/* Which tokens are special: not a byte token and produced by no merge. Returns whether
 * <|endoftext|> is one of them (GPT-2's files: rank pairs as Encoder.js does). */
static int mark_specials(pvlm_tokenizer *t, const load_state *ls) {
    int has_eot = 0;
    for (int32_t id = 0; id < ls->n; id++) {
        int is_byte =
            t->tok_off[id + 1] - t->tok_off[id] == 1 && t->byte_id[(uint8_t)t->tok_bytes[t->tok_off[id]]] == id;
        t->special[id] = (!is_byte && !ls->is_result[id]) ? 1 : 0;
        if (t->special[id] && ls->key_len[id] == 13 && !memcmp(ls->keys[id], "<|endoftext|>", 13)) has_eot = 1;
    }
    return has_eot;
}

/* Encoder.js: bpe_ranks[[a, b]] keys an object with String([a, b]) = a + "," + b, later lines
 * overwriting earlier ones; a pair is then ranked by whichever merge owns that string. Register
 * every split of every key at a comma into two vocabulary tokens. */
static int rank_pairs_js(pvlm_tokenizer *t, const load_state *ls, merge_list *ml) {
    pvlm_tok_strmap keyrank;
    memset(&keyrank, 0, sizeof keyrank);
    size_t splits = 0;
    int rc = -1;
    if (pvlm_tok_strmap_init(&keyrank, (size_t)ml->rules.n) != 0) goto out;
    for (int32_t r = ml->rules.n - 1; r >= 0; r--) { /* reverse: first insert = highest rank wins */
        size_t la = ls->key_len[ml->rules.a[r]], lb = ls->key_len[ml->rules.b[r]];
        if (grow_cat(ml, la + lb + 2) != 0) goto out;
        memcpy(ml->cat, ls->keys[ml->rules.a[r]], la);
        ml->cat[la] = ',';
        memcpy(ml->cat + la + 1, ls->keys[ml->rules.b[r]], lb);
        if (pvlm_tok_strmap_put(&keyrank, ml->cat, la + lb + 1, r) == -2) goto out;
        for (size_t k = 0; k < la + lb + 1; k++) splits += ml->cat[k] == ',';
    }
    if (pairmap_init(&t->merges, splits) != 0) goto out;
    for (size_t slot = 0; slot < keyrank.cap; slot++) {
        if (keyrank.off[slot] < 0) continue;
        const char *k = keyrank.arena + keyrank.off[slot];
        size_t kl = (size_t)keyrank.len[slot];
        int32_t r = keyrank.val[slot];
        if (grow_cat(ml, kl + 1) != 0) goto out;
        for (size_t c = 1; c + 1 < kl; c++) {
            if (k[c] != ',') continue;
            int32_t ia = pvlm_tok_strmap_get(&ls->key_ids, k, c),
                    ib = pvlm_tok_strmap_get(&ls->key_ids, k + c + 1, kl - c - 1);
            if (ia < 0 || ib < 0 || t->special[ia] || t->special[ib]) continue;
            memcpy(ml->cat, k, c);
            memcpy(ml->cat + c, k + c + 1, kl - c - 1);
            int32_t ir = pvlm_tok_strmap_get(&ls->key_ids, ml->cat, kl - 1);
            /* a split whose concatenation is no token would make Encoder.js emit
             * `undefined`; it cannot happen with GPT-2's files, and is left unranked */
            if (ir < 0) continue;
            pairmap_put(&t->merges, ia, ib, r, ir);
        }
    }
    rc = 0;
out:
    pvlm_tok_strmap_free(&keyrank);
    return rc;
}

static int load_merges(pvlm_tokenizer *t, load_state *ls, pvlm_tok_pairs pairs, pvlm_err *err) {
    merge_list ml;
    memset(&ml, 0, sizeof ml);
    if (read_merges(t, ls, &ml, err) != 0) {
        merge_list_free(&ml);
        return -1;
    }
    t->n_merges = ml.rules.n;
    int has_eot = mark_specials(t, ls);
    if (pairs == PVLM_TOK_PAIRS_AUTO) pairs = has_eot ? PVLM_TOK_PAIRS_JS : PVLM_TOK_PAIRS_EXACT;
    t->pairs = pairs;
    int rc = 0;
    if (pairs == PVLM_TOK_PAIRS_EXACT) {
        /* later duplicates win, as Python's dict(zip(merges, range(n))) */
        if (pairmap_init(&t->merges, (size_t)ml.rules.n) != 0)
            rc = -1;
        else
            for (int32_t r = 0; r < ml.rules.n; r++)
                pairmap_put(&t->merges, ml.rules.a[r], ml.rules.b[r], r, ml.rules.r[r]);
    } else {
        rc = rank_pairs_js(t, ls, &ml);
    }
    merge_list_free(&ml);
    if (rc != 0) return pvlm_err_set(err, PVLM_ENOMEM, "%s: out of memory", ls->merges_path);
    return 0;
}

static int32_t find_special(const pvlm_tokenizer *t, const char *const *names, int nnames) {
    for (int k = 0; k < nnames; k++) {
        size_t ln = strlen(names[k]);
        for (int32_t id = 0; id < t->n_vocab; id++) {
            if (!t->special[id]) continue;
            size_t len;
            const char *s = pvlm_tokenizer_token(t, id, &len);
            if (len == ln && !memcmp(s, names[k], ln)) return id;
        }
    }
    return -1;
}

/* Append a special token named name after the last id; returns its id, -1 on ENOMEM. */
static int32_t append_special(pvlm_tokenizer *t, const char *name) {
    size_t ln = strlen(name);
    int32_t id = t->n_vocab;
    int64_t *off = realloc(t->tok_off, (size_t)(id + 2) * sizeof *off);
    if (!off) return -1;
    t->tok_off = off;
    char *bytes = realloc(t->tok_bytes, (size_t)(off[id] + (int64_t)ln + 1));
    if (!bytes) return -1;
    t->tok_bytes = bytes;
    uint8_t *sp = realloc(t->special, (size_t)id + 1);
    if (!sp) return -1;
    t->special = sp;
    memcpy(bytes + off[id], name, ln);
    off[id + 1] = off[id] + (int64_t)ln;
    sp[id] = 1;
    t->n_vocab = id + 1;
    return id;
}

int pvlm_tokenizer_load_files(const char *vocab_path, const char *merges_path, pvlm_tok_pairs pairs,
                              pvlm_tokenizer **out, pvlm_err *err) {
    *out = NULL;
    uint32_t cp_of_byte[256];
    int16_t byte_of_cp[324];
    pvlm_tok_byte_alphabet(cp_of_byte, byte_of_cp);
    pvlm_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return pvlm_err_set(err, PVLM_ENOMEM, "tokenizer: out of memory");
    t->heap_threshold = DEFAULT_HEAP_THRESHOLD;
    load_state ls;
    memset(&ls, 0, sizeof ls);
    ls.vocab_path = vocab_path;
    ls.merges_path = merges_path;
    if (load_vocab(t, &ls, byte_of_cp, err) != 0 || load_merges(t, &ls, pairs, err) != 0) goto fail;
    static const char *const pad_names[] = {"<pad>"};
    static const char *const bos_names[] = {"<bos>", "<s>", "<|endoftext|>"};
    static const char *const eos_names[] = {"<eos>", "</s>", "<|endoftext|>"};
    t->pad = find_special(t, pad_names, 1);
    t->bos = find_special(t, bos_names, 3);
    t->eos = find_special(t, eos_names, 3);
    if ((t->pad < 0 && (t->pad = append_special(t, "<pad>")) < 0) ||
        (t->bos < 0 && (t->bos = append_special(t, "<bos>")) < 0) ||
        (t->eos < 0 && (t->eos = append_special(t, "<eos>")) < 0)) {
        pvlm_err_set(err, PVLM_ENOMEM, "tokenizer: out of memory");
        goto fail;
    }
    load_state_free(&ls);
    *out = t;
    return 0;
fail:
    load_state_free(&ls);
    pvlm_tokenizer_free(t);
    return -1;
}

int pvlm_tokenizer_load(const char *dir, pvlm_tokenizer **out, pvlm_err *err) {
    char vocab[4096], merges[4096];
    *out = NULL;
    if (pvlm_path_join(vocab, sizeof vocab, dir, "encoder.json", err) != 0 ||
        (!pvlm_file_exists(vocab) && pvlm_path_join(vocab, sizeof vocab, dir, "vocab.json", err) != 0) ||
        pvlm_path_join(merges, sizeof merges, dir, "vocab.bpe", err) != 0 ||
        (!pvlm_file_exists(merges) && pvlm_path_join(merges, sizeof merges, dir, "merges.txt", err) != 0))
        return -1;
    if (!pvlm_file_exists(vocab) || !pvlm_file_exists(merges)) {
        return pvlm_err_set(err, PVLM_ENOTFOUND, "%s: needs encoder.json (or vocab.json) and vocab.bpe (or merges.txt)",
                            dir);
    }
    return pvlm_tokenizer_load_files(vocab, merges, PVLM_TOK_PAIRS_AUTO, out, err);
}

/* ------------------------------------------------------------------ */
/* BPE on one piece. sym[0..n) holds byte token ids on entry, the merged ids on return. */

/* Quadratic scan, as the reference: find the lowest-ranked adjacent pair (JS mode: among
 * equal ranks the last one, as Encoder.js's minPairs object keeps the last pair it saw),
 * merge all its occurrences left to right, repeat. */
static size_t bpe_scan(const pvlm_tokenizer *t, int32_t *sym, size_t n) {
    /* rank and result of the pair (sym[i], sym[i+1]); after a pass only pairs that touch a
     * merged symbol are looked up again (n <= MAX_SCAN, see pvlm_tokenizer_set_heap_threshold) */
    int32_t rk[MAX_SCAN], rs[MAX_SCAN];
    uint8_t mg[MAX_SCAN];
    const int js = t->pairs == PVLM_TOK_PAIRS_JS;
    for (size_t i = 0; i + 1 < n; i++) rk[i] = pairmap_get(&t->merges, sym[i], sym[i + 1], &rs[i]);
    while (n > 1) {
        int32_t best = NO_RANK;
        size_t pos = SIZE_MAX;
        for (size_t i = 0; i + 1 < n; i++) {
            if (rk[i] < best || (js && rk[i] == best && best != NO_RANK)) {
                best = rk[i];
                pos = i;
            }
        }
        if (pos == SIZE_MAX) break;
        int32_t a = sym[pos], b = sym[pos + 1], res = rs[pos];
        size_t j = 0;
        for (size_t i = 0; i < n; j++) {
            if (i + 1 < n && sym[i] == a && sym[i + 1] == b) {
                sym[j] = res;
                mg[j] = 1;
                i += 2;
            } else {
                /* unmerged: its pair with the next unmerged symbol is the old pair at i */
                sym[j] = sym[i];
                if (i + 1 < n) {
                    rk[j] = rk[i];
                    rs[j] = rs[i];
                }
                mg[j] = 0;
                i++;
            }
        }
        n = j;
        for (size_t k = 0; k + 1 < n; k++)
            if (mg[k] || mg[k + 1]) rk[k] = pairmap_get(&t->merges, sym[k], sym[k + 1], &rs[k]);
    }
    return n;
}

typedef struct hent {
    int32_t rank, pos, a, b;
} hent;

static inline int hent_less(const hent *x, const hent *y) {
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static void heap_push(hent *h, size_t *n, hent e) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hent_less(&e, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static hent heap_pop(hent *h, size_t *n) {
    hent top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && hent_less(&h[c + 1], &h[c])) c++;
        if (!hent_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

/* The same result in O(n log n) for long pieces: a linked list of symbols and a heap of
 * (rank, position) pairs. All pairs of the lowest rank present are taken as one level, so
 * a level merges exactly the occurrences one reference pass merges (left to right; the
 * pass's winner is the pair at the highest position among equal ranks), and pairs created
 * by the level enter the heap only after it. Scratch memory: work (caller's, >= 6n int32
 * plus the heap of <= 3n entries). Returns the new length, or SIZE_MAX on ENOMEM. */
static size_t bpe_heap(const pvlm_tokenizer *t, int32_t *sym, size_t n) {
    if (n < 2) return n;
    int32_t *next = malloc(n * sizeof *next), *prev = malloc(n * sizeof *prev);
    size_t hcap = 4 * n + 16, hn = 0, lcap = n + 16;
    hent *heap = malloc(hcap * sizeof *heap), *level = malloc(lcap * sizeof *level);
    hent *pend = malloc(lcap * 2 * sizeof *pend);
    size_t out = SIZE_MAX;
    if (!next || !prev || !heap || !level || !pend) goto done;
    for (size_t i = 0; i < n; i++) {
        next[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
        prev[i] = (int32_t)i - 1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        int32_t rr, r = pairmap_get(&t->merges, sym[i], sym[i + 1], &rr);
        if (r != NO_RANK) heap_push(heap, &hn, (hent){r, (int32_t)i, sym[i], sym[i + 1]});
    }
    while (hn) {
        int32_t r = heap[0].rank;
        size_t ln = 0;
        while (hn && heap[0].rank == r) {
            hent e = heap_pop(heap, &hn);
            int32_t q = next[e.pos];
            if (sym[e.pos] == e.a && q >= 0 && sym[q] == e.b) level[ln++] = e; /* still present */
        }
        if (!ln) continue;
        int32_t wa = level[ln - 1].a, wb = level[ln - 1].b, res = -1;
        pairmap_get(&t->merges, wa, wb, &res);
        size_t pn = 0;
        for (size_t k = 0; k < ln; k++) {
            hent e = level[k];
            int32_t p = e.pos, q = next[p];
            if (e.a != wa || e.b != wb) {
                pend[pn++] = e; /* another pair of the same rank (JS mode): a later pass */
                continue;
            }
            if (sym[p] != wa || q < 0 || sym[q] != wb) continue; /* taken by an overlapping merge */
            sym[p] = res;
            sym[q] = -1;
            next[p] = next[q];
            if (next[q] >= 0) prev[next[q]] = p;
            int32_t rr, nr;
            if (prev[p] >= 0 && (nr = pairmap_get(&t->merges, sym[prev[p]], res, &rr)) != NO_RANK)
                pend[pn++] = (hent){nr, prev[p], sym[prev[p]], res};
            if (next[p] >= 0 && (nr = pairmap_get(&t->merges, res, sym[next[p]], &rr)) != NO_RANK)
                pend[pn++] = (hent){nr, p, res, sym[next[p]]};
        }
        if (hn + pn > hcap) {
            hcap = (hn + pn) * 2;
            hent *h2 = realloc(heap, hcap * sizeof *heap);
            if (!h2) goto done;
            heap = h2;
        }
        for (size_t k = 0; k < pn; k++) heap_push(heap, &hn, pend[k]);
    }
    out = 0;
    for (int32_t i = 0; i >= 0; i = next[i]) sym[out++] = sym[i];
done:
    free(next);
    free(prev);
    free(heap);
    free(level);
    free(pend);
    return out;
}

/* ------------------------------------------------------------------ */
/* Word cache. */

/* One slot: 16 bytes, so a probe touches one cache line. nids == 0 marks an empty slot
 * (every cached piece has at least one id). */
typedef struct cslot {
    uint32_t hash; /* high 32 bits of the piece's XXH3 (the low bits pick the slot) */
    uint32_t koff, ioff;
    uint8_t klen, nids;
    uint16_t pad_;
} cslot;

struct pvlm_tok_cache {
    size_t max_bytes;
    const pvlm_tokenizer *owner; /* results are only valid for this tokenizer */
    int32_t owner_vocab, owner_merges;
    size_t cap, n; /* slots (power of 2), used */
    cslot *slots;
    char *keys;
    size_t keys_n, keys_cap;
    int32_t *ids;
    size_t ids_n, ids_cap;
};

static void cache_release(pvlm_tok_cache *c) {
    free(c->slots);
    free(c->keys);
    free(c->ids);
    c->slots = NULL;
    c->keys = NULL;
    c->ids = NULL;
    c->cap = c->n = c->keys_n = c->keys_cap = c->ids_n = c->ids_cap = 0;
}

pvlm_tok_cache *pvlm_tok_cache_new(size_t max_bytes, pvlm_err *err) {
    pvlm_tok_cache *c = calloc(1, sizeof *c);
    if (!c) {
        pvlm_err_set(err, PVLM_ENOMEM, "tokenizer cache: out of memory");
        return NULL;
    }
    c->max_bytes = max_bytes ? max_bytes : ((size_t)64 << 20);
    if (c->max_bytes < (1u << 16)) c->max_bytes = 1u << 16;
    return c;
}

void pvlm_tok_cache_free(pvlm_tok_cache *c) {
    if (!c) return;
    cache_release(c);
    free(c);
}

static inline size_t cache_find(const pvlm_tok_cache *c, const char *s, size_t n, uint64_t h) {
    size_t mask = c->cap - 1, i = (size_t)h & mask;
    uint32_t hh = (uint32_t)(h >> 32);
    for (;;) {
        const cslot *e = &c->slots[i];
        if (!e->nids || (e->hash == hh && e->klen == n && !memcmp(c->keys + e->koff, s, n))) return i;
        i = (i + 1) & mask;
    }
}

/* Remember piece -> ids (n <= 255 bytes, 1..255 ids); failures only mean "not cached". */
static void cache_put(pvlm_tok_cache *c, const char *s, size_t n, uint64_t h, const int32_t *ids, size_t nids) {
    if (c->n + 1 > c->cap / 2) {
        size_t ncap = c->cap ? c->cap * 2 : 4096;
        if (ncap * sizeof(cslot) + c->keys_cap + c->ids_cap * sizeof(int32_t) > c->max_bytes) {
            cache_release(c); /* full: start again (simple, and the hot words come back soon) */
            ncap = 4096;
        }
        cslot *ns = calloc(ncap, sizeof *ns);
        if (!ns) return;
        for (size_t i = 0; i < c->cap; i++) {
            const cslot *e = &c->slots[i];
            if (!e->nids) continue;
            /* the slot index came from the low hash bits; recompute them from the key */
            uint64_t hk = pvlm_hash64(c->keys + e->koff, e->klen);
            size_t j = (size_t)hk & (ncap - 1);
            while (ns[j].nids) j = (j + 1) & (ncap - 1);
            ns[j] = *e;
        }
        free(c->slots);
        c->slots = ns;
        c->cap = ncap;
    }
    if (c->keys_n + n > c->keys_cap || c->ids_n + nids > c->ids_cap) {
        size_t kc = c->keys_cap ? c->keys_cap : 65536, ic = c->ids_cap ? c->ids_cap : 16384;
        while (kc < c->keys_n + n) kc *= 2;
        while (ic < c->ids_n + nids) ic *= 2;
        if (c->cap * sizeof(cslot) + kc + ic * sizeof(int32_t) > c->max_bytes || kc > UINT32_MAX || ic > UINT32_MAX) {
            cache_release(c);
            return;
        }
        char *k2 = realloc(c->keys, kc);
        if (!k2) return;
        c->keys = k2;
        c->keys_cap = kc;
        int32_t *i2 = realloc(c->ids, ic * sizeof *i2);
        if (!i2) return;
        c->ids = i2;
        c->ids_cap = ic;
    }
    size_t slot = cache_find(c, s, n, h);
    memcpy(c->keys + c->keys_n, s, n);
    memcpy(c->ids + c->ids_n, ids, nids * sizeof *ids);
    cslot *e = &c->slots[slot];
    e->hash = (uint32_t)(h >> 32);
    e->koff = (uint32_t)c->keys_n;
    e->ioff = (uint32_t)c->ids_n;
    e->klen = (uint8_t)n;
    e->nids = (uint8_t)nids;
    c->keys_n += n;
    c->ids_n += nids;
    c->n++;
}

/* ------------------------------------------------------------------ */
/* Encode / decode. */

int64_t pvlm_tokenizer_encode(const pvlm_tokenizer *t, pvlm_tok_cache *cache, const char *text, size_t len,
                              int32_t *ids, size_t cap, pvlm_err *err) {
    const uint8_t *s = (const uint8_t *)text;
    int32_t stack_sym[256];
    size_t total = 0, i = 0;
    if (cache && (cache->owner != t || cache->owner_vocab != t->n_vocab || cache->owner_merges != t->n_merges)) {
        cache_release(cache);
        cache->owner = t;
        cache->owner_vocab = t->n_vocab;
        cache->owner_merges = t->n_merges;
    }
    while (i < len) {
        size_t e = piece_end(s, len, i), plen = e - i;
        const char *piece = text + i;
        i = e;
        if (plen == 1) {
            if (total < cap) ids[total] = t->byte_id[(uint8_t)piece[0]];
            total++;
            continue;
        }
        uint64_t h = 0;
        int cacheable = cache && plen <= CACHE_MAX_KEY;
        if (cacheable) {
            h = pvlm_hash64(piece, plen);
            if (cache->cap) {
                const cslot *ce = &cache->slots[cache_find(cache, piece, plen, h)];
                if (ce->nids) {
                    size_t k = ce->nids;
                    const int32_t *src = cache->ids + ce->ioff;
                    if (total + k <= cap)
                        memcpy(ids + total, src, k * sizeof *ids);
                    else
                        for (size_t q = 0; q < k; q++)
                            if (total + q < cap) ids[total + q] = src[q];
                    total += k;
                    continue;
                }
            }
        }
        int32_t *sym = plen <= 256 ? stack_sym : malloc(plen * sizeof *sym);
        if (!sym) return pvlm_err_set(err, PVLM_ENOMEM, "tokenizer: out of memory (piece of %zu bytes)", plen);
        for (size_t k = 0; k < plen; k++) sym[k] = t->byte_id[(uint8_t)piece[k]];
        size_t n = plen > (size_t)t->heap_threshold ? bpe_heap(t, sym, plen) : bpe_scan(t, sym, plen);
        if (n == SIZE_MAX) {
            if (sym != stack_sym) free(sym);
            return pvlm_err_set(err, PVLM_ENOMEM, "tokenizer: out of memory (piece of %zu bytes)", plen);
        }
        for (size_t k = 0; k < n; k++)
            if (total + k < cap) ids[total + k] = sym[k];
        total += n;
        if (cacheable) cache_put(cache, piece, plen, h, sym, n);
        if (sym != stack_sym) free(sym);
    }
    return (int64_t)total;
}

int pvlm_tokenizer_encode_alloc(const pvlm_tokenizer *t, pvlm_tok_cache *cache, const char *text, size_t len,
                                int32_t **ids, size_t *n, pvlm_err *err) {
    /* English averages ~4 bytes per token; retry once with the exact size otherwise */
    size_t cap = len / 3 + 16;
    int32_t *buf = malloc(cap * sizeof *buf);
    *ids = NULL;
    *n = 0;
    if (!buf) return pvlm_err_set(err, PVLM_ENOMEM, "tokenizer: out of memory (%zu ids)", cap);
    int64_t got = pvlm_tokenizer_encode(t, cache, text, len, buf, cap, err);
    if (got < 0) {
        free(buf);
        return -1;
    }
    if ((size_t)got > cap) {
        free(buf);
        cap = (size_t)got;
        buf = malloc(cap * sizeof *buf);
        if (!buf) return pvlm_err_set(err, PVLM_ENOMEM, "tokenizer: out of memory (%zu ids)", cap);
        got = pvlm_tokenizer_encode(t, cache, text, len, buf, cap, err);
        if (got < 0) {
            free(buf);
            return -1;
        }
    }
    *ids = buf;
    *n = (size_t)got;
    return 0;
}

int64_t pvlm_tokenizer_decode(const pvlm_tokenizer *t, const int32_t *ids, size_t n, int flags, char *out, size_t cap,
                              pvlm_err *err) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_vocab)
            return pvlm_err_set(err, PVLM_EINVAL, "tokenizer decode: id %d at position %zu is outside 0..%d", id, i,
                                t->n_vocab - 1);
        if ((flags & PVLM_TOK_SKIP_SPECIAL) && t->special[id]) continue;
        size_t l = (size_t)(t->tok_off[id + 1] - t->tok_off[id]);
        if (l && total + l <= cap)
            memcpy(out + total, t->tok_bytes + t->tok_off[id], l);
        else if (l && total < cap)
            memcpy(out + total, t->tok_bytes + t->tok_off[id], cap - total);
        total += l;
    }
    return (int64_t)total;
}

int pvlm_tokenizer_decode_alloc(const pvlm_tokenizer *t, const int32_t *ids, size_t n, int flags, char **out,
                                size_t *len, pvlm_err *err) {
    *out = NULL;
    *len = 0;
    int64_t need = pvlm_tokenizer_decode(t, ids, n, flags, NULL, 0, err);
    if (need < 0) return -1;
    char *buf = malloc((size_t)need + 1);
    if (!buf) return pvlm_err_set(err, PVLM_ENOMEM, "tokenizer decode: out of memory (%lld bytes)", (long long)need);
    pvlm_tokenizer_decode(t, ids, n, flags, buf, (size_t)need, err);
    buf[need] = 0;
    *out = buf;
    *len = (size_t)need;
    return 0;
}

/* ------------------------------------------------------------------ */
/* A tokenizer from in-memory tables (what the trainer learned; io/bpe_train.c). */

int pvlm_tokenizer_from_merges(int32_t ntok, const int64_t *tok_off, const char *tok_bytes, size_t tok_bytes_n,
                               int32_t nmerges, const int32_t *ma, const int32_t *mb, const int32_t *mr,
                               pvlm_tokenizer **out, pvlm_err *err) {
    *out = NULL;
    pvlm_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return pvlm_err_set(err, PVLM_ENOMEM, "bpe trainer: out of memory");
    t->n_vocab = ntok;
    t->n_merges = nmerges;
    t->pad = 0, t->bos = 1, t->eos = 2;
    t->pairs = PVLM_TOK_PAIRS_EXACT;
    t->heap_threshold = DEFAULT_HEAP_THRESHOLD;
    t->tok_off = malloc(((size_t)ntok + 1) * sizeof *t->tok_off);
    t->tok_bytes = malloc(tok_bytes_n + 1);
    t->special = calloc((size_t)ntok, 1);
    if (!t->tok_off || !t->tok_bytes || !t->special || pairmap_init(&t->merges, (size_t)nmerges) != 0) {
        pvlm_tokenizer_free(t);
        return pvlm_err_set(err, PVLM_ENOMEM, "bpe trainer: out of memory");
    }
    memcpy(t->tok_off, tok_off, ((size_t)ntok + 1) * sizeof *t->tok_off);
    memcpy(t->tok_bytes, tok_bytes, tok_bytes_n);
    t->tok_bytes[tok_bytes_n] = 0;
    for (int k = 0; k < 3; k++) t->special[k] = 1;
    for (int b = 0; b < 256; b++) t->byte_id[b] = 3 + b;
    for (int32_t r = 0; r < nmerges; r++) pairmap_put(&t->merges, ma[r], mb[r], r, mr[r]);
    *out = t;
    return 0;
}
