/* lmdbcheck.h - check an LMDB file's B-tree before LMDB reads it, so a damaged file is
 * an error instead of a crash.
 *
 * LMDB trusts its file: it follows page numbers, node offsets and value sizes from the
 * mapped pages without bounds checks, so a truncated file or one flipped byte can make
 * mdb_get read past a page or past the end of the file (SIGSEGV, or SIGBUS for a mapped
 * page beyond the end of the file). This check reads the picked meta page and every
 * branch and leaf page of the main database with pread (never through the map) and
 * requires what LMDB's read path relies on: the meta agrees with what LMDB picked, every
 * page LMDB could touch lies inside the file, page headers are sane (lower/upper inside
 * the page), every node, key and in-page value lies inside its page, big values'
 * overflow pages lie inside the file, children are visited once (no cycles), the
 * tree is at most 32 levels deep (LMDB's cursor stack) and the leaf keys rise strictly
 * in tree order (so a damaged key cannot make a lookup return another key's value). Plain databases only (no
 * duplicate-sorted or named sub-databases: what io/imgshard writes).
 *
 * Two steps: pvlm_lmdbcheck_file on the meta pages before mdb_env_open (which trusts them
 * too), pvlm_lmdbcheck_env on the tree after it.
 *
 * Layout read here (LMDB 0.9 on-disk format, native-endian, 64-bit page numbers):
 * page header 16 bytes {u64 pgno, u16 pad, u16 flags, u16 lower, u16 upper}, then u16
 * node offsets; node header 8 bytes {u16 lo, u16 hi, u16 flags, u16 ksize}, key, data;
 * meta page body at offset 16 {u32 magic, u32 version, u64 address, u64 mapsize,
 * db[2] (48 bytes each: u32 pad, u16 flags, u16 depth, u64 branch, leaf, overflow,
 * entries, root), u64 last_pg, u64 txnid}; the page size is db[0].pad.
 *
 * Cost: reads the branch and leaf pages once (big values live in overflow pages, which
 * are not read), e.g. about 1.5 MB for a 1 GB shard of 20 KB JPEG records.
 */
#ifndef PVLM_IO_LMDBCHECK_H
#define PVLM_IO_LMDBCHECK_H

#include <lmdb.h>
#include <stdint.h>

#include "core/error.h"

/* Before mdb_env_open: both meta pages are LMDB meta pages whose page size (a power of two,
 * 512..65536), last page (inside the file), root page, environment flags (no MDB_FIXEDMAP)
 * and main-database flags (plain) are sane, since mdb_env_open uses them unchecked (a zero
 * page size is a division by zero). 0, or -1 with PVLM_EFORMAT naming path and the page. */
int pvlm_lmdbcheck_file(const char *path, uint64_t file_bytes, pvlm_err *err);
/* Check the file of an environment opened read-only (nothing read through the map yet);
 * file_bytes is its size. 0, or -1 with PVLM_EFORMAT (PVLM_EIO for a failed read) and a
 * message naming path and the damaged page. */
int pvlm_lmdbcheck_env(MDB_env *env, const char *path, uint64_t file_bytes, pvlm_err *err);

#endif
