#!/usr/bin/env bash
# shard_images_kill.sh - crash and interrupt `pvlm shard images` mid-shard, then re-run:
# SIGKILL while shard 1 is being written (its .tmp exists) leaves shard 0 complete and a
# half-written shard 1; the re-run skips shard 0, rebuilds the rest, and the result is
# byte-identical to an uninterrupted build. SIGINT stops cleanly (exit 1, no temp files).
set -euo pipefail
: "${PVLM_BIN:?}" "${PVLM_TMP:?}"
PY=${PVLM_PYTHON:-/usr/bin/python3}
rm -rf "$PVLM_TMP"; mkdir -p "$PVLM_TMP"; cd "$PVLM_TMP"
"$PY" - <<'PYEOF'
import os, random
from PIL import Image
os.makedirs("pairs")
rnd = random.Random(3)
for i in range(450):
    w, h = rnd.randint(120, 260), rnd.randint(100, 220)
    im = Image.effect_noise((w, h), 40).convert("RGB")
    im.save(f"pairs/img{i:04d}.jpg", quality=85)
    with open(f"pairs/img{i:04d}.txt", "w") as f:
        f.write(f"noise picture {i}\n")
PYEOF

ARGS=(shard images --pairs pairs --image-size 64 --shards 3 --threads 1 --progress 0 --seed 9)
build() { "$PVLM_BIN" "${ARGS[@]}" --out "$1" 2>>log.txt; }

build clean

# wait_for FILE PID: poll until FILE exists (true) or PID exits (false)
wait_for() {
  for _ in $(seq 3000); do
    [ -e "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.01
  done
  return 1
}

# 1. SIGKILL in the middle of shard 1
"$PVLM_BIN" "${ARGS[@]}" --out killed 2>>log.txt & pid=$!   # $! is pvlm itself
if ! wait_for killed/images-00001-of-00003.lmdb.tmp $pid; then echo "FAIL: build finished before shard 1 started"; exit 1; fi
kill -9 $pid; wait $pid 2>/dev/null || true
[ -e killed/images-00000-of-00003.lmdb.json ] || { echo "FAIL: shard 0 not complete before the kill"; exit 1; }
[ ! -e killed/images-00001-of-00003.lmdb ] || { echo "FAIL: shard 1 final file exists after a mid-shard kill"; exit 1; }
[ ! -e killed/manifest.json ] || { echo "FAIL: manifest written before all shards"; exit 1; }
ino0=$(stat -c %i killed/images-00000-of-00003.lmdb)
build killed
[ "$(stat -c %i killed/images-00000-of-00003.lmdb)" = "$ino0" ] || { echo "FAIL: complete shard 0 was rebuilt"; exit 1; }
ls killed/*.tmp 2>/dev/null && { echo "FAIL: temp files left"; exit 1; }
for f in images-0000{0,1,2}-of-00003.lmdb manifest.json; do
  cmp clean/$f killed/$f || { echo "FAIL: $f differs from the uninterrupted build"; exit 1; }
done

# 2. SIGINT: clean stop, exit status 1, no temp files; re-run completes identically
"$PVLM_BIN" "${ARGS[@]}" --out stopped 2>>log.txt & pid=$!
if ! wait_for stopped/images-00001-of-00003.lmdb.tmp $pid; then echo "FAIL: build finished before shard 1 started"; exit 1; fi
kill -INT $pid
set +e; wait $pid; rc=$?; set -e
[ $rc -eq 1 ] || { echo "FAIL: SIGINT exit status $rc, want 1"; exit 1; }
ls stopped/*.tmp 2>/dev/null && { echo "FAIL: temp files left after SIGINT"; exit 1; }
build stopped
for f in images-0000{0,1,2}-of-00003.lmdb manifest.json; do
  cmp clean/$f stopped/$f || { echo "FAIL: $f differs after SIGINT + re-run"; exit 1; }
done
# 3. a second builder on the same folder and part is refused while the first runs
"$PVLM_BIN" "${ARGS[@]}" --out twice 2>>log.txt & pid=$!
if ! wait_for twice/images-00000-of-00003.lmdb.tmp $pid; then echo "FAIL: build finished too early"; exit 1; fi
# Stopped, the first builder keeps its lock for as long as the second one needs to start on a loaded machine.
kill -STOP $pid
set +e; "$PVLM_BIN" "${ARGS[@]}" --out twice 2>second.txt; rc=$?; set -e
kill -CONT $pid
grep -q "another 'pvlm shard images'" second.txt || { echo "FAIL: second builder not refused (rc $rc)"; cat second.txt; exit 1; }
[ $rc -eq 1 ] || { echo "FAIL: second builder exit $rc"; exit 1; }
wait $pid
for f in images-0000{0,1,2}-of-00003.lmdb manifest.json; do
  cmp clean/$f twice/$f || { echo "FAIL: $f differs with a refused second builder"; exit 1; }
done
echo "shard_images_kill: ok"
