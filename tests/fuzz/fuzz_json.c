/* fuzz_json.c - core/json.h: pvlm_json_loadb on arbitrary bytes, the typed getters on every key of
 * a loaded object, and pvlm_json_load_file on the same bytes as a file. */
#include <stdlib.h>

#include "core/json.h"
#include "fuzz.h"

static void getters(const json_t *j) {
    if (!json_is_object(j)) return;
    const char *key;
    json_t *v;
    pvlm_err err = {0};
    json_object_foreach((json_t *)j, key, v) {
        int64_t i;
        double d;
        const char *s;
        pvlm_json_get_int(j, key, &i, "fuzz", &err);
        pvlm_json_get_real(j, key, &d, "fuzz", &err);
        pvlm_json_get_str(j, key, &s, "fuzz", &err);
    }
    int64_t i;
    pvlm_json_get_int(j, "missing", &i, "fuzz", &err);
}

int pvlm_fuzz_json(const uint8_t *data, size_t size) {
    pvlm_err err = {0};
    json_t *j = pvlm_json_loadb((const char *)data, size, "fuzz", &err);
    getters(j);
    json_decref(j);
    int fd;
    char path[64];
    if (pvlm_fuzz_memfile(data, size, &fd, path, sizeof path)) return 0;
    j = pvlm_json_load_file(path, &err);
    getters(j);
    json_decref(j);
    close(fd);
    return 0;
}
PVLM_FUZZ_MAIN(pvlm_fuzz_json)
