/* fuzz_lmdb.c - io/imgshard's reader on an arbitrary file: the bytes become an LMDB file that
 * pvlm_imgshard_open checks (io/lmdbcheck) and, when it opens, every record is read. Neither
 * may crash (a damaged file must be an error naming it), and a record that comes back must
 * have passed its own checksum. */
#include <stdlib.h>

#include "fuzz.h"
#include "io/imgshard.h"

int pvlm_fuzz_lmdb(const uint8_t *data, size_t size) {
    int fd;
    char path[64];
    if (pvlm_fuzz_memfile(data, size, &fd, path, sizeof path)) return 0;
    pvlm_err err = {0};
    pvlm_imgshard_reader *r = pvlm_imgshard_open_sized(path, PVLM_IMGSHARD_NOLOCK, size & 1 ? 0 : size, &err);
    if (!r && !strstr(err.msg, path)) abort(); /* every error names the file */
    if (r) {
        pvlm_imgrec rec = {0};
        int64_t n = pvlm_imgshard_count(r);
        for (int64_t i = 0; i < n && i < 4096; i++)
            if (pvlm_imgshard_get(r, i, &rec, &err) == 0 && (!rec.id || rec.ncaptions < 0)) abort();
        pvlm_imgrec_free(&rec);
        pvlm_imgshard_close(r);
    }
    close(fd);
    return 0;
}
PVLM_FUZZ_MAIN(pvlm_fuzz_lmdb)
