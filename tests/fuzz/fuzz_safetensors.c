/* fuzz_safetensors.c - pvlm_st_open on arbitrary bytes, then read every tensor (whole and a byte
 * range), check it for NaN/Inf and verify the data checksum. */
#include <stdlib.h>

#include "fuzz.h"
#include "io/safetensors.h"

int pvlm_fuzz_safetensors(const uint8_t *data, size_t size) {
    int fd;
    char path[64];
    if (pvlm_fuzz_memfile(data, size, &fd, path, sizeof path)) return 0;
    pvlm_st_file f;
    pvlm_err err = {0};
    if (pvlm_st_open(&f, path, &err) == 0) {
        for (int i = 0; i < f.n_tensors; i++) {
            const pvlm_st_tensor *t = &f.tensors[i];
            if (pvlm_st_find(&f, t->name) == NULL) abort(); /* names are unique: must be found */
            uint64_t nb = t->end - t->begin;
            if (nb > (64u << 20)) continue;
            void *buf = malloc(nb ? nb : 1);
            if (!buf) continue;
            if (pvlm_st_read(&f, t, buf, nb, &err) == 0) pvlm_st_check_finite(&f, t, buf, t->numel, &err);
            if (nb) pvlm_st_read_bytes(&f, t, nb / 2, (size_t)(nb - nb / 2), buf, &err);
            pvlm_st_read_bytes(&f, t, nb, 1, buf, &err); /* out of range: must fail cleanly */
            free(buf);
        }
        pvlm_st_meta(&f, "pvlm_data_xxh3");
        int present;
        pvlm_st_verify_checksum(&f, &present, &err);
        pvlm_st_close(&f);
    }
    close(fd);
    return 0;
}
PVLM_FUZZ_MAIN(pvlm_fuzz_safetensors)
