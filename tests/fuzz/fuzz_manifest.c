/* fuzz_manifest.c - pvlm_manifest_load on an arbitrary file; a loaded manifest re-serialises. */
#include <stdlib.h>

#include "fuzz.h"
#include "io/manifest.h"

int pvlm_fuzz_manifest(const uint8_t *data, size_t size) {
    int fd;
    char path[64];
    if (pvlm_fuzz_memfile(data, size, &fd, path, sizeof path)) return 0;
    pvlm_manifest m;
    pvlm_err err = {0};
    if (pvlm_manifest_load(path, &m, &err) == 0) {
        pvlm_manifest_records(&m);
        pvlm_manifest_bytes(&m);
        pvlm_manifest_failed(&m);
        json_t *j = pvlm_manifest_to_json(&m);
        json_decref(j);
        char buf[256];
        for (int i = 0; i < m.nshards; i++) pvlm_manifest_shard_path(&m, i, "/nonexistent", buf, sizeof buf);
        if (m.nshards) pvlm_manifest_verify_shard(&m, 0, "/nonexistent", 0, &err);
    }
    pvlm_manifest_free(&m);
    close(fd);
    return 0;
}
PVLM_FUZZ_MAIN(pvlm_fuzz_manifest)
