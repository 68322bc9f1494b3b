/* cmd_shard.c - `pvlm shard`: dispatches to the shard builders.
 *   pvlm shard images ...   LMDB image-text shards (shard/shard_images.h)
 *   pvlm shard text ...     zstd text shards from C4-style JSON lines (shard/shard_text.h)
 * Each builder parses its own flags (core/args.h) and returns the exit code. */
#include "core/args.h"
#include "shard/shard_images.h"
#include "shard/shard_text.h"

int pvlm_cmd_shard(int argc, char **argv);

int pvlm_cmd_shard(int argc, char **argv) {
    static const pvlm_subcmd subs[] = {
        {"images", "image-text pairs (COCO JSON, folders, URL lists) -> LMDB shards + manifest.json",
         pvlm_shard_images_main},
        {"text", "C4-style JSON lines -> zstd text shards + manifest.json", pvlm_shard_text_main},
    };
    return pvlm_subcmd_run("pvlm shard", subs, (int)(sizeof subs / sizeof subs[0]), argc, argv);
}
