#!/usr/bin/env bash
# shard_damaged_cli.sh - every command that opens image shards reports a truncated or damaged
# shard with a message naming the file and a plain error exit, never a SIGBUS/SIGSEGV:
# `pvlm pretrain` (through the loader: the manifest's size, then the LMDB structure check) and
# `pvlm caption --shard`, on a shard cut to 16 KiB and on one with its B-tree page headers
# overwritten; damage inside record data only skips (and names) those records. A tiny model is trained for 2 steps first (tests/train/lib.sh's TINY setup).
source "${PVLM_SOURCE_DIR:?}/tests/train/lib.sh"

pretrain 1 --steps 2 --ckpt-every 2 --ckpt-dir ck >pre.log 2>&1 || fail "tiny pretrain: $(tail -3 pre.log)"
shard=$(cd data/img && ls images-*.lmdb | head -1)
size=$(stat -c %s "data/img/$shard")
[ "$size" -gt 20000 ] || fail "test shard is only $size bytes"

# run_checked WANT LOG CMD...: the command ends without a signal (exit < 128), with exit 1..127 when
# WANT is "fail" (any exit when "any"), and LOG names the shard
run_checked() {
  local want=$1 log=$2; shift 2
  set +e; "$@" >"$log" 2>&1; local rc=$?; set -e
  [ $rc -lt 128 ] || fail "$* was killed (exit $rc): $(tail -3 "$log")"
  [ $want = any ] || [ $rc -ne 0 ] || fail "$* succeeded on a damaged shard: $(tail -3 "$log")"
  grep -q "$shard" "$log" || fail "$*: no message naming $shard: $(tail -3 "$log")"
}

# cut: truncated to 16 KiB; tree: the header of every B-tree page overwritten (structure damage,
# refused at open); records: bytes overwritten inside record data (those records fail their
# checksums and are skipped and reported, the rest is used)
for kind in cut tree records; do
  rm -rf "$kind"; cp -r data/img "$kind"
  if [ $kind = cut ]; then
    truncate -s 16384 "$kind/$shard"
  else
    "$PY" - "$kind/$shard" $kind <<'PYEOF'
import sys
p, kind = sys.argv[1], sys.argv[2]
b = bytearray(open(p, "rb").read())
for page in range(2, len(b) // 4096):
    off = page * 4096 + (8 if kind == "tree" else 2000)
    b[off:off + 8] = b"\xa5" * 8
open(p, "wb").write(bytes(b))
PYEOF
  fi
  want=fail; [ $kind = records ] && want=any
  run_checked $want "$kind.caption.log" "$PVLM_BIN" caption --ckpt ck --shard "$kind/$shard" --out "$kind.json" --threads 1
  TINY=("${TINY[@]/data\/img\/manifest.json/$kind/manifest.json}")
  run_checked $want "$kind.pretrain.log" pretrain 1 --steps 2 --ckpt-every 0 --ckpt-dir "ck-$kind"
  TINY=("${TINY[@]/$kind\/manifest.json/data/img/manifest.json}")
  pass "$kind shard: caption and pretrain report $shard"
done
echo "shard_damaged_cli: ok"
