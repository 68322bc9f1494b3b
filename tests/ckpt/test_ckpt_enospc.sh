#!/bin/bash
# ckpt_enospc: a checkpoint that does not fit on the disk fails with a clear error, and the older
# checkpoint and `latest` stay valid. Uses a 1 MiB tmpfs mounted in a private mount namespace
# (unshare -rm: no effect outside this test); where mounting is not permitted, falls back to
# RLIMIT_FSIZE (EFBIG), which exercises the same error paths.
set -u
bin="$1"
mnt="$PVLM_TMP/mnt"
rm -rf "$PVLM_TMP"; mkdir -p "$mnt"
if unshare -rm sh -c "mount -t tmpfs -o size=1m tmpfs '$mnt'" 2>/dev/null; then
    echo "ckpt_enospc: 1 MiB tmpfs"
    exec unshare -rm sh -c "mount -t tmpfs -o size=1m tmpfs '$mnt' && exec '$bin' enospc '$mnt'"
elif mount -t tmpfs -o size=1m tmpfs "$mnt" 2>/dev/null; then
    echo "ckpt_enospc: 1 MiB tmpfs (no namespaces)"
    "$bin" enospc "$mnt"; rc=$?
    umount "$mnt"
    exit $rc
else
    echo "ckpt_enospc: mounting not permitted here; RLIMIT_FSIZE fallback"
    exec "$bin" fsize
fi
