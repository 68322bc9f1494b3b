/* fuzz_checkpoint.c - model/checkpoint.h: pvlm_model_load (and pvlm_model_read_config) on mutated
 * model files. Seeds are tiny valid models (gen_seeds). Configs too big to create quickly (valid
 * ones go up to 2^36 parameters) are only read. regressions/checkpoint/image-size-int-overflow: a
 * config whose image_size / patch_size overflowed int in pvlm_model_create, now refused by
 * pvlm_model_config_validate (model/model.c). */
#include <stdlib.h>

#include "fuzz.h"
#include "model/checkpoint.h"

int pvlm_fuzz_checkpoint(const uint8_t *data, size_t size) {
    int fd;
    char path[64];
    if (pvlm_fuzz_memfile(data, size, &fd, path, sizeof path)) return 0;
    pvlm_err err = {0};
    pvlm_model_config cfg;
    json_t *meta = NULL;
    if (pvlm_model_read_config(path, &cfg, &meta, &err) == 0) {
        json_decref(meta);
        /* only configs small enough to allocate quickly are loaded in full */
        int64_t g = cfg.image_size / cfg.patch_size;
        if ((int64_t)cfg.d_model * cfg.d_ff * (cfg.n_enc_layers + cfg.n_dec_layers) < (1 << 22) &&
            (int64_t)cfg.vocab_size * cfg.d_model < (1 << 22) && g * g < (1 << 16) && cfg.n_vpt < (1 << 16) &&
            cfg.max_prefix_len < (1 << 16) && cfg.max_suffix_len < (1 << 16) && cfg.conv_blocks < 64) {
            pvlm_model m;
            if (pvlm_model_load(&m, path, &err) == 0) pvlm_model_free(&m);
        }
    }
    close(fd);
    return 0;
}
PVLM_FUZZ_MAIN(pvlm_fuzz_checkpoint)
