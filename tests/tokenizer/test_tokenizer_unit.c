/* test_tokenizer_unit.c - io/tokenizer without network: the pre-tokenizer on hand-checked
 * cases, Unicode classes, training (deterministic, specials at 0..2, never merging into a
 * special's name), save -> reload, byte-level round trips of random bytes including invalid
 * UTF-8 and NUL, cached / uncached / heap-merge equivalence in both pair modes, truncated
 * output buffers, bad ids, and corrupt vocabulary files (each with a clear message).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "harness.h"
#include "io/bpe_train.h"
#include "io/tokenizer.h"
#include "io/unicode.h"

/* ---- pre-tokenizer ---- */
typedef struct pieces {
    char buf[4096];
    size_t n;
} pieces;

static int collect(const char *s, size_t n, void *arg) {
    pieces *p = arg;
    if (p->n + n + 1 >= sizeof p->buf) return 1;
    memcpy(p->buf + p->n, s, n);
    p->n += n;
    p->buf[p->n++] = '|';
    p->buf[p->n] = 0;
    return 0;
}

static void check_pieces(const char *in, const char *want) {
    pieces p = {{0}, 0};
    pvlm_tokenizer_pretokenize(in, strlen(in), collect, &p);
    CHECK_MSG(!strcmp(p.buf, want), "pretokenize(\"%s\") = \"%s\", want \"%s\"", in, p.buf, want);
}

static void test_pretokenize(void) {
    check_pieces("Hello world", "Hello| world|");
    check_pieces("it's John's", "it|'s| John|'s|");
    check_pieces("we'll they're I've I'm he'd don't", "we|'ll| they|'re| I|'ve| I|'m| he|'d| don|'t|");
    check_pieces("IT'S", "IT|'|S|"); /* contractions are lower-case only */
    check_pieces(" 's", " '|s|");    /* a space is not part of a contraction */
    check_pieces("a  b", "a| | b|"); /* \s+(?!\S) leaves one space for " b" */
    check_pieces("a   b", "a|  | b|");
    check_pieces("a\tb", "a|\t|b|"); /* only U+0020 joins the next word */
    check_pieces("a\n\nb", "a|\n|\n|b|");
    check_pieces("a  ", "a|  |"); /* trailing whitespace: one piece */
    check_pieces("x 123 y", "x| 123| y|");
    check_pieces("3.14", "3|.|14|");
    check_pieces("...!!! ?!", "...!!!| ?!|");
    check_pieces("caf\xc3\xa9 na\xc3\xafve", "caf\xc3\xa9| na\xc3\xafve|");
    check_pieces("\xc2\xbd\xc2\xb2x", "\xc2\xbd\xc2\xb2|x|"); /* ½² are \p{N} */
    check_pieces("a\xc2\xa0"
                 "b",
                 "a|\xc2\xa0|b|");                 /* NBSP is \s */
    check_pieces("e\xcc\x81", "e|\xcc\x81|");      /* a combining mark is "other" */
    check_pieces("a\xff\xfe b", "a|\xff\xfe| b|"); /* invalid UTF-8: "other" */
    check_pieces("\xf0\x9f\x98\x80\xf0\x9f\x98\x80 x", "\xf0\x9f\x98\x80\xf0\x9f\x98\x80| x|");
    check_pieces("x \xe3\x80\x80y", "x| |\xe3\x80\x80|y|"); /* U+3000 is \s, one char back */
}

static void test_unicode(void) {
    CHECK(pvlm_unicode_class('a') == PVLM_UC_LETTER);
    CHECK(pvlm_unicode_class(0xE9) == PVLM_UC_LETTER);
    CHECK(pvlm_unicode_class(0x4E00) == PVLM_UC_LETTER); /* inside a First/Last range */
    CHECK(pvlm_unicode_class(0xAC01) == PVLM_UC_LETTER); /* Hangul range */
    CHECK(pvlm_unicode_class('7') == PVLM_UC_NUMBER);
    CHECK(pvlm_unicode_class(0x0661) == PVLM_UC_NUMBER); /* Arabic-Indic digit */
    CHECK(pvlm_unicode_class(0x2160) == PVLM_UC_NUMBER); /* Roman numeral (Nl) */
    CHECK(pvlm_unicode_class(0x00BD) == PVLM_UC_NUMBER); /* ½ (No) */
    CHECK(pvlm_unicode_class(0x3000) == PVLM_UC_SPACE);
    CHECK(pvlm_unicode_class(0xFEFF) == PVLM_UC_SPACE); /* JavaScript \s, not Unicode White_Space */
    CHECK(pvlm_unicode_class(0x2028) == PVLM_UC_SPACE);
    CHECK(pvlm_unicode_class(0x0085) == PVLM_UC_OTHER); /* NEL is not JavaScript \s */
    CHECK(pvlm_unicode_class(0x200B) == PVLM_UC_OTHER); /* zero width space (Cf) */
    CHECK(pvlm_unicode_class(0x0301) == PVLM_UC_OTHER);
    CHECK(pvlm_unicode_class(0x1F600) == PVLM_UC_OTHER);
    CHECK(pvlm_unicode_class(0x110000) == PVLM_UC_OTHER);
}

/* ---- a small training corpus ---- */
static char *make_corpus(size_t *len) {
    static const char *const words[] = {
        "the",
        "cat",
        "sat",
        "on",
        "a",
        "mat",
        "and",
        "dog",
        "ran",
        "after",
        "it",
        "quickly",
        "while",
        "birds",
        "sang",
        "in",
        "tree",
        "tops",
        "under",
        "blue",
        "sky",
        "it's",
        "don't",
        "caf\xc3\xa9",
        "na\xc3\xafve",
        "2024",
        "3.14",
        "<pad>",
        "<eos><bos>",
        "\xe6\x97\xa5\xe6\x9c\xac",
        "\xf0\x9f\x98\x80",
        "!!!",
        "...",
    };
    size_t nw = sizeof words / sizeof words[0], cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    uint64_t s = 12345;
    while (n + 64 < cap - 1024) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        const char *w = words[(s >> 33) % nw];
        size_t l = strlen(w);
        memcpy(buf + n, w, l);
        n += l;
        int sep = (int)((s >> 20) % 16);
        buf[n++] = sep == 0 ? '\n' : sep == 1 ? ',' : ' ';
        if (sep == 2) buf[n++] = ' ';
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static int read_equal(const char *a, const char *b) {
    char *x, *y;
    size_t nx, ny;
    if (pvlm_read_file(a, &x, &nx, NULL) || pvlm_read_file(b, &y, &ny, NULL)) return 0;
    int eq = nx == ny && !memcmp(x, y, nx);
    free(x);
    free(y);
    return eq;
}

static void encode_three_ways(pvlm_tokenizer *t, pvlm_tok_cache *cache, const char *text, size_t len,
                              const char *what) {
    int32_t *a = NULL, *b = NULL, *c = NULL;
    size_t na = 0, nb = 0, nc = 0;
    pvlm_err err = {0};
    CHECK_OK(pvlm_tokenizer_encode_alloc(t, cache, text, len, &a, &na, &err), &err);
    CHECK_OK(pvlm_tokenizer_encode_alloc(t, NULL, text, len, &b, &nb, &err), &err);
    pvlm_tokenizer_set_heap_threshold(t, 2);
    CHECK_OK(pvlm_tokenizer_encode_alloc(t, NULL, text, len, &c, &nc, &err), &err);
    pvlm_tokenizer_set_heap_threshold(t, 48);
    CHECK_MSG(na == nb && !memcmp(a, b, na * 4), "%s: cached != uncached", what);
    CHECK_MSG(na == nc && !memcmp(a, c, na * 4), "%s: scan != heap merge", what);
    char *back;
    size_t blen;
    CHECK_OK(pvlm_tokenizer_decode_alloc(t, a, na, 0, &back, &blen, &err), &err);
    CHECK_MSG(blen == len && !memcmp(back, text, len), "%s: decode(encode(x)) != x (len %zu)", what, len);
    for (size_t i = 0; i < na; i++) CHECK(!pvlm_tokenizer_is_special(t, a[i]));
    free(back);
    free(a);
    free(b);
    free(c);
}

static void write_str(const char *path, const char *s, size_t n) {
    pvlm_err err = {0};
    CHECK_OK(pvlm_write_file_atomic(path, s, n, &err), &err);
}

/* Copy dir's files to cdir with one substitution in the chosen file; expect load to fail
 * with a message containing want. */
static void check_corrupt(const char *dir, const char *cdir, int in_merges, const char *from, const char *to,
                          const char *append, const char *want) {
    char src[4096], dst[4096], other_src[4096], other_dst[4096];
    const char *fn = in_merges ? "vocab.bpe" : "encoder.json", *on = in_merges ? "encoder.json" : "vocab.bpe";
    snprintf(src, sizeof src, "%s/%s", dir, fn);
    snprintf(dst, sizeof dst, "%s/%s", cdir, fn);
    snprintf(other_src, sizeof other_src, "%s/%s", dir, on);
    snprintf(other_dst, sizeof other_dst, "%s/%s", cdir, on);
    char *s, *o;
    size_t n, on_n;
    pvlm_err err = {0};
    if (pvlm_read_file(src, &s, &n, &err) || pvlm_read_file(other_src, &o, &on_n, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    size_t cap = n + (to ? strlen(to) : 0) + (append ? strlen(append) : 0) + 16;
    char *m = malloc(cap);
    size_t mn = 0;
    if (from) {
        char *at = strstr(s, from);
        CHECK_MSG(at != NULL, "corrupt case: \"%s\" not found in %s", from, fn);
        if (!at) return;
        size_t pre = (size_t)(at - s), fl = strlen(from), tl = strlen(to);
        memcpy(m, s, pre);
        memcpy(m + pre, to, tl);
        memcpy(m + pre + tl, at + fl, n - pre - fl);
        mn = n - fl + tl;
    } else {
        memcpy(m, s, n);
        mn = n;
    }
    if (append) {
        memcpy(m + mn, append, strlen(append));
        mn += strlen(append);
    }
    write_str(dst, m, mn);
    write_str(other_dst, o, on_n);
    pvlm_tokenizer *t = NULL;
    int rc = pvlm_tokenizer_load(cdir, &t, &err);
    CHECK_MSG(rc == -1 && t == NULL && strstr(err.msg, want) && strstr(err.msg, fn),
              "corrupt %s (%s): rc=%d msg=\"%s\", want \"%s\"", fn, want, rc, err.msg, want);
    pvlm_tokenizer_free(t);
    free(s);
    free(o);
    free(m);
}

int main(void) {
    test_pretokenize();
    test_unicode();

    const char *tmp = getenv("PVLM_TMP") ? getenv("PVLM_TMP") : "/tmp/pvlm_tokenizer_unit";
    char d1[4096], d2[4096], cdir[4096], f1[4096], f2[4096];
    snprintf(d1, sizeof d1, "%s/vocab1", tmp);
    snprintf(d2, sizeof d2, "%s/vocab2", tmp);
    snprintf(cdir, sizeof cdir, "%s/corrupt", tmp);
    pvlm_err err = {0};
    CHECK_OK(pvlm_mkdir_p(cdir, &err), &err);

    size_t clen;
    char *corpus = make_corpus(&clen);
    pvlm_tokenizer *mem = NULL; /* the trained vocabulary straight from the trainer */
    /* train twice (text split differently): identical files */
    for (int k = 0; k < 2; k++) {
        pvlm_bpe_trainer *tr = pvlm_bpe_trainer_new(&err);
        size_t cut = k ? clen / 2 : clen;
        while (cut < clen && corpus[cut] != ' ') cut++; /* a cut before a space keeps the pieces */
        CHECK_OK(pvlm_bpe_trainer_add(tr, corpus, cut, &err), &err);
        if (cut < clen) CHECK_OK(pvlm_bpe_trainer_add(tr, corpus + cut, clen - cut, &err), &err);
        CHECK_OK(pvlm_bpe_trainer_run(tr, 400, 2, &err), &err);
        CHECK_OK(pvlm_bpe_trainer_save(tr, k ? d2 : d1, &err), &err);
        pvlm_bpe_train_stats st;
        pvlm_bpe_trainer_stats(tr, &st);
        CHECK(st.vocab_size == 400 && st.merges >= 141 && st.bytes == (int64_t)clen);
        if (k == 0) CHECK_OK(pvlm_bpe_trainer_tokenizer(tr, &mem, &err), &err);
        pvlm_bpe_trainer_free(tr);
    }
    snprintf(f1, sizeof f1, "%s/encoder.json", d1);
    snprintf(f2, sizeof f2, "%s/encoder.json", d2);
    CHECK_MSG(read_equal(f1, f2), "training is not deterministic (encoder.json)");
    snprintf(f1, sizeof f1, "%s/vocab.bpe", d1);
    snprintf(f2, sizeof f2, "%s/vocab.bpe", d2);
    CHECK_MSG(read_equal(f1, f2), "training is not deterministic (vocab.bpe)");
    {
        pvlm_bpe_trainer *tr = pvlm_bpe_trainer_new(&err);
        CHECK(pvlm_bpe_trainer_run(tr, 100, 2, &err) == -1 && strstr(err.msg, "259"));
        pvlm_bpe_trainer_free(tr);
    }

    pvlm_tokenizer *t = NULL;
    CHECK_OK(pvlm_tokenizer_load(d1, &t, &err), &err);
    if (!t) return pvlm_test_done("tokenizer_unit");
    CHECK(pvlm_tokenizer_vocab_size(t) == 400);
    CHECK(pvlm_tokenizer_pad_id(t) == 0 && pvlm_tokenizer_bos_id(t) == 1 && pvlm_tokenizer_eos_id(t) == 2);
    CHECK(pvlm_tokenizer_pairs(t) == PVLM_TOK_PAIRS_EXACT);
    int nspecial = 0;
    for (int32_t id = 0; id < 400; id++) {
        nspecial += pvlm_tokenizer_is_special(t, id);
        size_t l;
        const char *s = pvlm_tokenizer_token(t, id, &l);
        CHECK(s != NULL);
        if (id >= 3 && l == 5)
            CHECK_MSG(memcmp(s, "<pad>", 5) && memcmp(s, "<bos>", 5) && memcmp(s, "<eos>", 5),
                      "token %d is a special's name", id);
    }
    CHECK(nspecial == 3);
    CHECK(pvlm_tokenizer_token(t, 400, NULL) == NULL);

    pvlm_tok_cache *cache = pvlm_tok_cache_new(0, &err);
    int32_t *ids;
    size_t nids;
    /* train -> save -> reload encodes exactly like the in-memory result of training */
    if (mem) {
        CHECK(pvlm_tokenizer_vocab_size(mem) == 400 && pvlm_tokenizer_n_merges(mem) == pvlm_tokenizer_n_merges(t));
        for (int32_t id = 0; id < 400; id++) {
            size_t l1, l2;
            const char *s1 = pvlm_tokenizer_token(t, id, &l1), *s2 = pvlm_tokenizer_token(mem, id, &l2);
            CHECK_MSG(l1 == l2 && !memcmp(s1, s2, l1), "token %d differs after save/load", id);
        }
        int32_t *m_ids;
        size_t m_n;
        CHECK_OK(pvlm_tokenizer_encode_alloc(mem, NULL, corpus, clen, &m_ids, &m_n, &err), &err);
        CHECK_OK(pvlm_tokenizer_encode_alloc(t, NULL, corpus, clen, &ids, &nids, &err), &err);
        CHECK_MSG(m_n == nids && !memcmp(m_ids, ids, nids * 4), "reloaded vocabulary encodes differently");
        free(m_ids);
        free(ids);
        char rb[3000];
        uint64_t r = 7;
        for (int it = 0; it < 100; it++) {
            size_t len = (size_t)(it * 29 % 3000);
            for (size_t i = 0; i < len; i++) {
                r ^= r << 13, r ^= r >> 7, r ^= r << 17;
                rb[i] = it % 2 ? (char)(r & 0xFF) : " etaoinshrdlu'\n"[r % 15];
            }
            CHECK_OK(pvlm_tokenizer_encode_alloc(mem, NULL, rb, len, &m_ids, &m_n, &err), &err);
            CHECK_OK(pvlm_tokenizer_encode_alloc(t, NULL, rb, len, &ids, &nids, &err), &err);
            CHECK_MSG(m_n == nids && !memcmp(m_ids, ids, nids * 4), "reloaded vocabulary encodes differently (%d)", it);
            free(m_ids);
            free(ids);
        }
        pvlm_tokenizer_free(mem);
    }
    CHECK_OK(pvlm_tokenizer_encode_alloc(t, cache, corpus, clen, &ids, &nids, &err), &err);
    CHECK_MSG(nids < clen / 2, "trained vocabulary compresses poorly: %zu ids for %zu bytes", nids, clen);
    /* truncated output: the total is returned and the prefix is right */
    int32_t small[10];
    int64_t need = pvlm_tokenizer_encode(t, cache, corpus, clen, small, 10, &err);
    CHECK(need == (int64_t)nids && !memcmp(small, ids, sizeof small));
    char dec[8];
    CHECK(pvlm_tokenizer_decode(t, ids, nids, 0, dec, sizeof dec, &err) == (int64_t)clen &&
          !memcmp(dec, corpus, sizeof dec));
    free(ids);
    encode_three_ways(t, cache, corpus, clen, "corpus");
    /* specials decode to their names unless skipped; bad ids are errors */
    int32_t sp[4] = {1, 3 + 'h', 3 + 'i', 2};
    char *out;
    size_t olen;
    CHECK_OK(pvlm_tokenizer_decode_alloc(t, sp, 4, 0, &out, &olen, &err), &err);
    CHECK(olen == 12 && !memcmp(out, "<bos>hi<eos>", 12));
    free(out);
    CHECK_OK(pvlm_tokenizer_decode_alloc(t, sp, 4, PVLM_TOK_SKIP_SPECIAL, &out, &olen, &err), &err);
    CHECK(olen == 2 && !memcmp(out, "hi", 2));
    free(out);
    int32_t bad[2] = {5, 400};
    CHECK(pvlm_tokenizer_decode_alloc(t, bad, 2, 0, &out, &olen, &err) == -1 && strstr(err.msg, "position 1"));
    /* "<pad>" in the text is plain text, never the pad id */
    CHECK_OK(pvlm_tokenizer_encode_alloc(t, cache, "<pad>", 5, &ids, &nids, &err), &err);
    CHECK(nids >= 1 && ids[0] != 0);
    free(ids);

    /* random byte strings: invalid UTF-8, NUL, long pieces, in both pair modes; a tiny
     * cache that is emptied over and over */
    pvlm_tok_cache *tiny = pvlm_tok_cache_new(1, &err);
    uint64_t s = 99;
    char buf[3000];
    static const char alpha[] = "ab  e\n'sxyz0.,!\xc3\xa9\xe2\x80\xa8\xff\x80";
    for (int it = 0; it < 300; it++) {
        size_t len = (size_t)(it % 7 == 0 ? 2000 + it : it % 97);
        for (size_t i = 0; i < len; i++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            buf[i] = it % 2 ? (char)(s & 0xFF) : alpha[s % (sizeof alpha - 1)];
        }
        encode_three_ways(t, it % 3 ? cache : tiny, buf, len, it % 2 ? "random bytes" : "random text");
    }
    pvlm_tokenizer_free(t);
    /* a merges file given as the vocabulary fails cleanly */
    CHECK(pvlm_tokenizer_load_files(f1, f1, PVLM_TOK_PAIRS_JS, &t, &err) == -1 && t == NULL &&
          strstr(err.msg, "vocab.bpe"));
    snprintf(f2, sizeof f2, "%s/encoder.json", d1);
    CHECK_OK(pvlm_tokenizer_load_files(f2, f1, PVLM_TOK_PAIRS_JS, &t, &err), &err);
    if (t) {
        CHECK(pvlm_tokenizer_pairs(t) == PVLM_TOK_PAIRS_JS);
        encode_three_ways(t, cache, corpus, clen, "corpus (js pairs)");
        for (int it = 0; it < 50; it++) {
            size_t len = (size_t)(it * 13 % 300);
            for (size_t i = 0; i < len; i++) {
                s ^= s << 13, s ^= s >> 7, s ^= s << 17;
                buf[i] = (char)(s & 0xFF);
            }
            encode_three_ways(t, cache, buf, len, "random bytes (js pairs)");
        }
        pvlm_tokenizer_free(t);
    }
    pvlm_tok_cache_free(cache);
    pvlm_tok_cache_free(tiny);

    /* corrupt files */
    check_corrupt(d1, cdir, 0, "{", "[", NULL, "encoder.json"); /* not JSON */
    check_corrupt(d1, cdir, 0, "\"<pad>\": 0", "\"<pad>\": \"0\"", NULL, "not an integer");
    check_corrupt(d1, cdir, 0, "\"<bos>\": 1", "\"<bos>\": 0", NULL, "is used by both");
    check_corrupt(d1, cdir, 0, "\"<eos>\": 2", "\"<eos>\": 99999", NULL, "outside 0..");
    check_corrupt(d1, cdir, 0, "\"a\": 100", "\"<zz>\": 100", NULL, "no token for byte 0x61");
    check_corrupt(d1, cdir, 1, NULL, NULL, "x y z\n", "expected two tokens");
    check_corrupt(d1, cdir, 1, NULL, NULL, "qqqqqqqqqq a\n", "is not in");
    check_corrupt(d1, cdir, 1, NULL, NULL, "\xc4\x80 \xc4\x80\n", "merged token");
    check_corrupt(d1, cdir, 1, NULL, NULL, "lonely\n", "expected two tokens");
    check_corrupt(d1, cdir, 1, NULL, NULL, "<pad> a\n", "merged token \"<pad>a\"");
    {
        pvlm_tokenizer *t2 = NULL;
        char nodir[4096];
        snprintf(nodir, sizeof nodir, "%s/does-not-exist", tmp);
        CHECK(pvlm_tokenizer_load(nodir, &t2, &err) == -1 && err.code == PVLM_ENOTFOUND && strstr(err.msg, nodir));
        char longdir[5001]; /* a folder whose file paths do not fit: refused, not truncated */
        memset(longdir, 'd', 5000);
        longdir[5000] = 0;
        CHECK(pvlm_tokenizer_load(longdir, &t2, &err) == -1 && err.code == PVLM_EINVAL && t2 == NULL &&
              strstr(err.msg, "path too long"));
        char emptyf[4096];
        snprintf(emptyf, sizeof emptyf, "%s/encoder.json", cdir);
        write_str(emptyf, "", 0);
        CHECK(pvlm_tokenizer_load(cdir, &t2, &err) == -1 && strstr(err.msg, "encoder.json"));
    }
    free(corpus);
    return pvlm_test_done("tokenizer_unit");
}
