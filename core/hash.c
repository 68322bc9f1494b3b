/* hash.c - see hash.h. */
#include "hash.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

uint64_t pvlm_hash64(const void *data, size_t n) { return (uint64_t)XXH3_64bits(data, n); }

int pvlm_hasher_init(pvlm_hasher *h, pvlm_err *err) {
    XXH3_state_t *s = XXH3_createState();
    if (!s) return pvlm_err_set(err, PVLM_ENOMEM, "out of memory creating hash state");
    XXH3_64bits_reset(s);
    h->state = s;
    return 0;
}

void pvlm_hasher_update(pvlm_hasher *h, const void *data, size_t n) {
    XXH3_64bits_update((XXH3_state_t *)h->state, data, n);
}

uint64_t pvlm_hasher_digest(const pvlm_hasher *h) {
    return (uint64_t)XXH3_64bits_digest((const XXH3_state_t *)h->state);
}

void pvlm_hasher_free(pvlm_hasher *h) {
    if (h && h->state) XXH3_freeState((XXH3_state_t *)h->state);
    if (h) h->state = NULL;
}

int pvlm_hash_file(const char *path, uint64_t *out, pvlm_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return pvlm_err_errno(err, "%s: cannot open for hashing", path);
    pvlm_hasher h = {NULL};
    if (pvlm_hasher_init(&h, err)) {
        fclose(f);
        return -1;
    }
    char *buf = malloc(1 << 20);
    if (!buf) {
        fclose(f);
        pvlm_hasher_free(&h);
        return pvlm_err_set(err, PVLM_ENOMEM, "out of memory hashing %s", path);
    }
    size_t n;
    while ((n = fread(buf, 1, 1 << 20, f)) > 0) pvlm_hasher_update(&h, buf, n);
    int bad = ferror(f);
    free(buf);
    fclose(f);
    if (bad) {
        pvlm_hasher_free(&h);
        return pvlm_err_set(err, PVLM_EIO, "%s: read error while hashing", path);
    }
    *out = pvlm_hasher_digest(&h);
    pvlm_hasher_free(&h);
    return 0;
}

void pvlm_hash_hex(uint64_t h, char buf[17]) { snprintf(buf, 17, "%016" PRIx64, h); }

int pvlm_hash_parse(const char *s, uint64_t *out) {
    if (!s || strlen(s) != 16) return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 16);
    if (errno || *end) return -1;
    *out = (uint64_t)v;
    return 0;
}
