/* fuzz_coco.c - COCO / NoCaps / Karpathy caption JSON into shard items
 * (pvlm_shard_images_list, the listing step of `pvlm shard images --coco`): any bytes give
 * items or an error, never a crash, and the counts stay consistent. The first byte picks a
 * --split filter (none, train, test). */
#include <stdlib.h>

#include "fuzz.h"
#include "shard/shard_images.h"

int pvlm_fuzz_coco(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int fd;
    char path[64];
    if (pvlm_fuzz_memfile(data + 1, size - 1, &fd, path, sizeof path)) return 0;
    static const char *const splits[] = {"", "train", "test"};
    pvlm_shard_images_cfg c;
    pvlm_shard_images_defaults(&c);
    c.coco = path;
    c.images = "/nonexistent-images";
    c.split = splits[data[0] % 3];
    pvlm_shard_images_listing l;
    pvlm_err err = {0};
    if (pvlm_shard_images_list(&c, &l, &err) == 0 && (l.items < 0 || l.captions < 0 || l.bad_captions < 0)) abort();
    close(fd);
    return 0;
}
PVLM_FUZZ_MAIN(pvlm_fuzz_coco)
