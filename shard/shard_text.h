/* shard_text.h - `pvlm shard text`: C4-style JSON lines -> zstd text shards + manifest.json.
 *
 * One output shard per input file (text-NNNNN.pvt, io/textshard.h), built by a pool of threads;
 * a finished shard has a sidecar text-NNNNN.pvt.json with its counts, so re-running skips shards
 * that are already complete and rebuilds a half-written one (its temporary file never got
 * renamed). The manifest's shape is documented in docs/format-text-shards.md.
 */
#ifndef PVLM_SHARD_TEXT_H
#define PVLM_SHARD_TEXT_H

int pvlm_shard_text_main(int argc, char **argv);

#endif
