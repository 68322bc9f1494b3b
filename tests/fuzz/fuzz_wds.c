/* fuzz_wds.c - shard/wdssrc.h (the webdataset tar reader, libarchive underneath) on arbitrary files:
 * every sample is read to the end, must carry a key, a non-negative image range and a caption that is
 * NULL or non-empty, and its image must read back by offset with the listed XXH3 (the bytes do not
 * change under the reader); the counts must add up. */
#include <stdlib.h>

#include "fuzz.h"
#include "shard/wdssrc.h"

int pvlm_fuzz_wds(const uint8_t *data, size_t size) {
    int fd;
    char path[64];
    if (pvlm_fuzz_memfile(data, size, &fd, path, sizeof path)) return 0;
    const char *paths[1] = {path};
    pvlm_err err = {0};
    pvlm_wdssrc *s = pvlm_wdssrc_open_files(paths, 1, &err);
    if (s) {
        pvlm_wds_sample w;
        int64_t n = 0;
        int rc;
        while ((rc = pvlm_wdssrc_next(s, &w, &err)) == 1) {
            if (!w.key || w.off < 0 || w.len < 0 || (w.caption && w.caption_len == 0)) abort();
            char *img;
            size_t len;
            if (pvlm_wds_read_image(w.tar, w.off, w.len, w.xxh3, &img, &len, &err) || (int64_t)len != w.len) abort();
            free(img);
            n++;
        }
        pvlm_wds_counts c;
        pvlm_wdssrc_get_counts(s, &c);
        if (rc == 0 && c.samples != n) abort();
        pvlm_wdssrc_close(s);
    }
    close(fd);
    return 0;
}
PVLM_FUZZ_MAIN(pvlm_fuzz_wds)
