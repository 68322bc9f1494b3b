/* batch.c - see batch.h. */
#include "batch.h"

#include <string.h>

#include "core/mem.h"

int pvlm_batch_alloc(pvlm_batch *b, int B, int S, int Lp, int Ls, pvlm_err *err) {
    memset(b, 0, sizeof *b);
    if (B <= 0 || S < 0 || Lp < 0 || Ls <= 0)
        return pvlm_err_set(err, PVLM_EINVAL, "batch: bad shape B=%d S=%d Lp=%d Ls=%d", B, S, Lp, Ls);
    size_t nb = (size_t)B;
    size_t img = nb * (size_t)S * (size_t)S * 3, ints = nb * (size_t)(Lp + 2 * Ls + 3);
    size_t bytes = ints * sizeof(int32_t) + nb * sizeof(int64_t) + img + nb;
    char *p = pvlm_alloc(bytes, err);
    if (!p) return -1;
    b->block = p;
    b->B = B, b->S = S, b->Lp = Lp, b->Ls = Ls;
    b->sample_id = (int64_t *)p; p += nb * sizeof(int64_t);
    b->prefix = (int32_t *)p; p += nb * (size_t)Lp * sizeof(int32_t);
    b->dec_in = (int32_t *)p; p += nb * (size_t)Ls * sizeof(int32_t);
    b->targets = (int32_t *)p; p += nb * (size_t)Ls * sizeof(int32_t);
    b->prefix_len = (int32_t *)p; p += nb * sizeof(int32_t);
    b->suffix_len = (int32_t *)p; p += nb * sizeof(int32_t);
    b->ctx_set = (int32_t *)p; p += nb * sizeof(int32_t);
    b->has_image = (uint8_t *)p; p += nb;
    b->images = (uint8_t *)p;
    return 0;
}

void pvlm_batch_free(pvlm_batch *b) {
    if (!b) return;
    pvlm_free(b->block);
    memset(b, 0, sizeof *b);
}

int64_t pvlm_batch_count_targets(const pvlm_batch *b) {
    int64_t n = 0;
    for (size_t i = 0; i < (size_t)b->B * (size_t)b->Ls; i++) n += b->targets[i] != PVLM_IGNORE;
    return n;
}

void pvlm_batch_clear(pvlm_batch *b, int32_t pad_id) {
    size_t nb = (size_t)b->B;
    memset(b->images, 0, nb * (size_t)b->S * (size_t)b->S * 3);
    memset(b->has_image, 0, nb);
    for (size_t i = 0; i < nb * (size_t)b->Lp; i++) b->prefix[i] = pad_id;
    for (size_t i = 0; i < nb * (size_t)b->Ls; i++) b->dec_in[i] = pad_id, b->targets[i] = PVLM_IGNORE;
    memset(b->prefix_len, 0, nb * sizeof(int32_t));
    memset(b->suffix_len, 0, nb * sizeof(int32_t));
    memset(b->ctx_set, 0, nb * sizeof(int32_t));
    for (size_t i = 0; i < nb; i++) b->sample_id[i] = -1;
}
