/* fuzz_tokrt.c - encode/decode round trip on arbitrary bytes with a small vocabulary trained in
 * process (300 entries): decode(encode(x)) == x; the heap merge and the quadratic scan give the
 * same ids; a word cache gives the same ids as no cache; the fixed-buffer encode agrees with the
 * allocating one and reports the needed size when truncated. */
#include <stdlib.h>

#include "fuzz.h"
#include "io/bpe_train.h"
#include "io/tokenizer.h"

static pvlm_tokenizer *g_tok; /* built once per process, never freed (the process ends) */
static pvlm_tok_cache *g_cache;

static const char k_corpus[] =
    "The quick brown fox jumps over the lazy dog. A man riding a horse on a beach, two dogs "
    "playing in the snow; 123 456 7890 it's they're we've I'm you'll he'd \xc3\xa9t\xc3\xa9 caf\xc3\xa9 "
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e   tabs\t\tand\nnewlines\r\n!!?? ... ---";

static pvlm_tokenizer *tok(void) {
    if (g_tok) return g_tok;
    pvlm_err err = {0};
    pvlm_bpe_trainer *tr = pvlm_bpe_trainer_new(&err);
    if (!tr) abort();
    for (int i = 0; i < 20; i++)
        if (pvlm_bpe_trainer_add(tr, k_corpus, sizeof k_corpus - 1, &err)) abort();
    if (pvlm_bpe_trainer_run(tr, 300, 2, &err) || pvlm_bpe_trainer_tokenizer(tr, &g_tok, &err)) abort();
    pvlm_bpe_trainer_free(tr);
    g_cache = pvlm_tok_cache_new(1 << 16, &err);
    if (!g_cache) abort();
    return g_tok;
}

int pvlm_fuzz_tokrt(const uint8_t *data, size_t size) {
    pvlm_tokenizer *t = tok();
    const char *text = (const char *)data;
    pvlm_err err = {0};
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    pvlm_tokenizer_set_heap_threshold(t, 2);
    if (pvlm_tokenizer_encode_alloc(t, NULL, text, size, &a, &na, &err)) abort();
    pvlm_tokenizer_set_heap_threshold(t, 256);
    if (pvlm_tokenizer_encode_alloc(t, g_cache, text, size, &b, &nb, &err)) abort();
    pvlm_tokenizer_set_heap_threshold(t, 48);
    if (na != nb || memcmp(a, b, na * sizeof *a) != 0) abort();
    int32_t small[4];
    int64_t need = pvlm_tokenizer_encode(t, g_cache, text, size, small, 4, &err);
    if (need != (int64_t)na || memcmp(small, a, (na < 4 ? na : 4) * sizeof *a) != 0) abort();
    char *out = NULL;
    size_t olen = 0;
    if (pvlm_tokenizer_decode_alloc(t, a, na, 0, &out, &olen, &err)) abort();
    if (olen != size || memcmp(out, data, size) != 0) abort();
    free(out);
    /* decode of arbitrary ids (from the input bytes): fails cleanly on out-of-range ids */
    size_t nid = size / 4;
    int32_t *ids = malloc((nid ? nid : 1) * sizeof *ids);
    if (ids) {
        memcpy(ids, data, nid * sizeof *ids);
        char buf[64];
        pvlm_tokenizer_decode(t, ids, nid, PVLM_TOK_SKIP_SPECIAL, buf, sizeof buf, &err);
        free(ids);
    }
    free(a);
    free(b);
    return 0;
}
PVLM_FUZZ_MAIN(pvlm_fuzz_tokrt)
