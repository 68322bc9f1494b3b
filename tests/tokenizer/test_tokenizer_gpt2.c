/* test_tokenizer_gpt2.c - GPT-2 parity: pvlm's encoder against ids from the reference
 * encoder (gpt-3-encoder@1.1.4's Encoder.js, see gen_vectors.js).
 *
 * usage: test_tokenizer_gpt2 VECTORS_DIR [GPT2_DIR]
 * VECTORS_DIR/gpt2_vectors.json lists the cases; GPT2_DIR (default
 * $PVLM_BUILD_DIR/gpt2-bpe, filled by scripts/fetch-gpt2-bpe.sh) holds encoder.json and
 * vocab.bpe. Each case is encoded with a word cache, without one, and with the heap merge
 * forced for every piece; all three must equal the reference ids, and decode must give
 * the text back. The GPT-2 special ids and the vocabulary size are checked too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/json.h"
#include "harness.h"
#include "io/tokenizer.h"

static int read_range(const char *path, long off, long len, char **out, pvlm_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return pvlm_err_errno(err, "%s: cannot open (apt-get install wordnet-base)", path);
    char *buf = malloc((size_t)len + 1);
    int ok = buf && fseek(f, off, SEEK_SET) == 0 && fread(buf, 1, (size_t)len, f) == (size_t)len;
    fclose(f);
    if (!ok) {
        free(buf);
        return pvlm_err_set(err, PVLM_EIO, "%s: cannot read %ld bytes at %ld", path, len, off);
    }
    *out = buf;
    return 0;
}

static int first_diff(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    size_t n = na < nb ? na : nb;
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) return (int)i;
    return na == nb ? -1 : (int)n;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_tokenizer_gpt2 VECTORS_DIR [GPT2_DIR]\n");
        return 2;
    }
    const char *vdir = argv[1];
    char gdir[4096], path[4096];
    if (argc > 2)
        snprintf(gdir, sizeof gdir, "%s", argv[2]);
    else
        snprintf(gdir, sizeof gdir, "%s/gpt2-bpe", getenv("PVLM_BUILD_DIR") ? getenv("PVLM_BUILD_DIR") : ".");
    pvlm_err err = {0};
    pvlm_tokenizer *t = NULL;
    if (pvlm_tokenizer_load(gdir, &t, &err)) {
        fprintf(stderr, "cannot load GPT-2 files (run scripts/fetch-gpt2-bpe.sh %s): %s\n", gdir, err.msg);
        return 1;
    }
    CHECK(pvlm_tokenizer_vocab_size(t) == 50258);
    CHECK(pvlm_tokenizer_eos_id(t) == 50256 && pvlm_tokenizer_bos_id(t) == 50256);
    CHECK(pvlm_tokenizer_pad_id(t) == 50257);
    CHECK(pvlm_tokenizer_n_merges(t) == 50000);
    CHECK(pvlm_tokenizer_pairs(t) == PVLM_TOK_PAIRS_JS);

    snprintf(path, sizeof path, "%s/gpt2_vectors.json", vdir);
    json_t *root = pvlm_json_load_file(path, &err);
    if (!root) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    json_t *cases = json_object_get(root, "cases");
    CHECK(json_is_array(cases) && json_array_size(cases) > 0);
    pvlm_tok_cache *cache = pvlm_tok_cache_new(0, &err);
    size_t ncases = 0, nbytes = 0, nids = 0;
    for (size_t ci = 0; ci < json_array_size(cases); ci++) {
        json_t *c = json_array_get(cases, ci);
        const char *name = json_string_value(json_object_get(c, "name"));
        char *text = NULL;
        size_t len = 0;
        int32_t *want = NULL;
        size_t nwant = 0;
        if (json_object_get(c, "text")) {
            json_t *jt = json_object_get(c, "text");
            len = json_string_length(jt);
            text = malloc(len + 1);
            memcpy(text, json_string_value(jt), len + 1);
            json_t *ji = json_object_get(c, "ids");
            nwant = json_array_size(ji);
            want = malloc((nwant + 1) * sizeof *want);
            for (size_t i = 0; i < nwant; i++) want[i] = (int32_t)json_integer_value(json_array_get(ji, i));
        } else {
            const char *src = json_string_value(json_object_get(c, "source"));
            long off = (long)json_integer_value(json_object_get(c, "offset"));
            len = (size_t)json_integer_value(json_object_get(c, "length"));
            if (read_range(src, off, (long)len, &text, &err)) {
                CHECK_MSG(0, "%s: %s", name, err.msg);
                continue;
            }
            snprintf(path, sizeof path, "%s/%s", vdir, json_string_value(json_object_get(c, "ids_u16")));
            char *raw;
            size_t rawn;
            if (pvlm_read_file(path, &raw, &rawn, &err)) {
                CHECK_MSG(0, "%s: %s", name, err.msg);
                free(text);
                continue;
            }
            nwant = rawn / 2;
            want = malloc((nwant + 1) * sizeof *want);
            const unsigned char *u = (const unsigned char *)raw;
            for (size_t i = 0; i < nwant; i++) want[i] = u[2 * i] | (u[2 * i + 1] << 8);
            free(raw);
        }
        int32_t *got[3] = {NULL, NULL, NULL};
        size_t ngot[3] = {0, 0, 0};
        CHECK_OK(pvlm_tokenizer_encode_alloc(t, cache, text, len, &got[0], &ngot[0], &err), &err);
        CHECK_OK(pvlm_tokenizer_encode_alloc(t, NULL, text, len, &got[1], &ngot[1], &err), &err);
        pvlm_tokenizer_set_heap_threshold(t, 2);
        CHECK_OK(pvlm_tokenizer_encode_alloc(t, NULL, text, len, &got[2], &ngot[2], &err), &err);
        pvlm_tokenizer_set_heap_threshold(t, 48);
        static const char *const how[3] = {"cached", "uncached", "heap"};
        for (int k = 0; k < 3; k++) {
            int d = first_diff(got[k], ngot[k], want, nwant);
            CHECK_MSG(
                d < 0, "%s (%s): %zu ids vs reference %zu; first difference at %d: %d vs %d%s", name, how[k], ngot[k],
                nwant, d, d >= 0 && (size_t)d < ngot[k] ? got[k][d] : -1, d >= 0 && (size_t)d < nwant ? want[d] : -1,
                json_object_get(c, "sha256") ? " (if the source file changed, compare its sha256 with the JSON)" : "");
        }
        char *back;
        size_t blen;
        CHECK_OK(pvlm_tokenizer_decode_alloc(t, want, nwant, 0, &back, &blen, &err), &err);
        CHECK_MSG(blen == len && !memcmp(back, text, len), "%s: decode(reference ids) != text", name);
        free(back);
        for (int k = 0; k < 3; k++) free(got[k]);
        free(want);
        free(text);
        ncases++;
        nbytes += len;
        nids += nwant;
    }
    printf("tokenizer_gpt2: %zu cases, %zu bytes, %zu reference ids from %s\n", ncases, nbytes, nids, vdir);
    pvlm_tok_cache_free(cache);
    json_decref(root);
    pvlm_tokenizer_free(t);
    return pvlm_test_done("tokenizer_gpt2");
}
