/* fuzz_urlsrc.c - shard/urlsrc.h on arbitrary files: the first input byte picks the format (auto,
 * tsv, csv, jsonl, or the failures-file reader) and the header mode; every item is read to the end
 * and must satisfy the documented invariants (non-empty trimmed url, counts add up). */
#include <stdlib.h>

#include "fuzz.h"
#include "shard/urlsrc.h"

int pvlm_fuzz_urlsrc(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t sel = data[0];
    int fd;
    char path[64];
    if (pvlm_fuzz_memfile(data + 1, size - 1, &fd, path, sizeof path)) return 0;
    static const char *const formats[] = {"auto", "tsv", "csv", "jsonl"};
    pvlm_err err = {0};
    pvlm_urlsrc *s;
    int failures = (sel & 7) >= 4 && (sel & 7) < 6;
    if (failures) {
        s = pvlm_urlsrc_open_failures(path, (sel & 8) ? "all" : NULL, &err);
    } else {
        pvlm_urlsrc_opts o;
        pvlm_urlsrc_opts_default(&o);
        o.format = formats[sel & 3];
        o.header = (int)((sel >> 4) % 3) - 1;
        o.keep_empty_caption = (sel >> 6) & 1;
        if (sel & 0x80) {
            o.url_col = "1";
            o.caption_col = "0";
        }
        s = pvlm_urlsrc_open(path, &o, &err);
    }
    if (s) {
        pvlm_url_item it;
        int64_t n = 0;
        int rc;
        while ((rc = pvlm_urlsrc_next(s, &it, &err)) == 1) {
            if (!it.url || !it.url[0] || !it.caption) abort();
            n++;
        }
        pvlm_urlsrc_counts c;
        pvlm_urlsrc_get_counts(s, &c);
        if (rc == 0 && c.items != n) abort();
        pvlm_urlsrc_close(s);
    }
    close(fd);
    return 0;
}
PVLM_FUZZ_MAIN(pvlm_fuzz_urlsrc)
