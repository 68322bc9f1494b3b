/* fuzz_tokfiles.c - pvlm_tokenizer_load_files on arbitrary vocabulary/merges files: the input is
 * split at its first NUL byte into encoder.json and vocab.bpe. When a pair loads, a fixed text and
 * the input itself must round-trip through encode/decode. */
#include <stdlib.h>

#include "fuzz.h"
#include "io/tokenizer.h"

static void roundtrip(const pvlm_tokenizer *t, const char *text, size_t len) {
    pvlm_err err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    if (pvlm_tokenizer_encode_alloc(t, NULL, text, len, &ids, &n, &err) != 0) return;
    char *out = NULL;
    size_t olen = 0;
    if (pvlm_tokenizer_decode_alloc(t, ids, n, 0, &out, &olen, &err) != 0) abort();
    if (olen != len || memcmp(out, text, len) != 0) abort(); /* decode(encode(x)) == x */
    free(out);
    free(ids);
}

int pvlm_fuzz_tokfiles(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t vlen = nul ? (size_t)(nul - data) : size;
    int vfd, mfd;
    char vpath[64], mpath[64];
    if (pvlm_fuzz_memfile(data, vlen, &vfd, vpath, sizeof vpath)) return 0;
    const uint8_t *m = nul ? nul + 1 : data + size;
    if (pvlm_fuzz_memfile(m, (size_t)(data + size - m), &mfd, mpath, sizeof mpath)) {
        close(vfd);
        return 0;
    }
    for (int pairs = 0; pairs < 3; pairs += 2) {
        pvlm_tokenizer *t = NULL;
        pvlm_err err = {0};
        if (pvlm_tokenizer_load_files(vpath, mpath, (pvlm_tok_pairs)pairs, &t, &err) == 0) {
            int32_t V = pvlm_tokenizer_vocab_size(t);
            for (int32_t id = 0; id < V && id < 1024; id++) {
                size_t len;
                if (!pvlm_tokenizer_token(t, id, &len)) abort();
            }
            pvlm_tokenizer_pad_id(t);
            pvlm_tokenizer_bos_id(t);
            pvlm_tokenizer_eos_id(t);
            static const char fixed[] = "Hello world, it's 2024!\n\tA  cat\xe2\x80\x99s caf\xc3\xa9 \xff";
            roundtrip(t, fixed, sizeof fixed - 1);
            roundtrip(t, (const char *)data, size);
            pvlm_tokenizer_free(t);
        }
    }
    close(vfd);
    close(mfd);
    return 0;
}
PVLM_FUZZ_MAIN(pvlm_fuzz_tokfiles)
