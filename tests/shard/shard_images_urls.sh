#!/usr/bin/env bash
# shard_images_urls.sh - `pvlm shard images --urls` against a local HTTP server (127.0.0.1):
# good images, a 404, a non-image, a corrupt JPEG, an empty caption and an ftp:// URL are
# stored / counted by reason; two builds are byte-identical; failures.jsonl lists the failed
# rows and --retry-failed rebuilds from only those (after the missing file appears).
set -euo pipefail
: "${PVLM_BIN:?}" "${PVLM_TMP:?}" "${PVLM_SOURCE_DIR:?}"
PY=${PVLM_PYTHON:-/usr/bin/python3}
rm -rf "$PVLM_TMP"; mkdir -p "$PVLM_TMP"; cd "$PVLM_TMP"
"$PY" "$PVLM_SOURCE_DIR/scripts/make-test-images.py" fx >/dev/null

"$PY" -u -m http.server 0 --bind 127.0.0.1 --directory fx >server.log 2>&1 &
srv=$!
trap 'kill $srv 2>/dev/null || true' EXIT
port=""
for _ in $(seq 100); do
  port=$(sed -n 's/.*port \([0-9][0-9]*\).*/\1/p' server.log | head -1)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "http.server did not start"; cat server.log; exit 1; }
base="http://127.0.0.1:$port"

good=$(cd fx && ls jpeg_*.jpg png_*.png)
ngood=$(echo "$good" | wc -l)
{
  printf 'url\tcaption\n'
  for f in $good; do printf '%s/%s\tcaption of %s\n' "$base" "$f" "$f"; done
  printf '%s/bad_truncated.jpg\ta truncated jpeg\n' "$base"
  printf '%s/missing.jpg\tnot there yet\n' "$base"
  printf '%s/jpeg_baseline.txt\ta text file\n' "$base"
  printf '%s/png_rgb.png\t   \n' "$base"
  printf 'ftp://127.0.0.1/x.jpg\tnot http\n'
} > urls.tsv

build() {
  "$PVLM_BIN" shard images --out "$1" --image-size 16 --store raw --shards 2 --threads 2 --allow-private-addresses \
    --concurrency 4 --retries 0 --timeout 20 --progress 0 "${@:2}"
}
build o1 --urls urls.tsv
build o2 --urls urls.tsv
for f in o1/images-0000{0,1}-of-00002.lmdb o1/manifest.json o1/failures.jsonl; do
  cmp "$f" "o2/${f#o1/}" || { echo "FAIL: $f differs between two builds"; exit 1; }
done

"$PY" - "$ngood" <<'PYEOF'
import json, sys
ngood = int(sys.argv[1])
m = json.load(open("o1/manifest.json"))
f = m["failures"]
assert m["kind"] == "images" and m["totals"]["records"] == ngood, (m["totals"], ngood)
want = {"decode_error": 1, "http_4xx": 1, "not_image": 1, "empty_caption": 1, "bad_scheme": 1}
for k, v in want.items():
    assert f.get(k) == v, (k, f)
assert m["settings"]["input"] == "urls"
lines = [json.loads(l) for l in open("o1/failures.jsonl")]
reasons = sorted(l["reason"] for l in lines)
assert reasons == ["bad_scheme", "decode_error", "http_4xx", "not_image"], reasons
assert any(l["http_status"] == 404 and l["url"].endswith("/missing.jpg") for l in lines)
print("manifest ok:", m["totals"], f)
PYEOF

# retry only the failed rows; the missing file now exists
cp fx/jpeg_baseline.jpg fx/missing.jpg
build o3 --retry-failed o1/failures.jsonl --retry-reasons http_4xx
"$PY" - <<'PYEOF'
import json
m = json.load(open("o3/manifest.json"))
assert m["totals"]["records"] == 1 and m["totals"]["failed"] == 0, m["totals"]
assert m["totals"]["items"] == 1
print("retry ok:", m["totals"])
PYEOF
# without --allow-private-addresses the server on 127.0.0.1 is refused: every fetched row is
# blocked_address (permanent), the ftp:// row is bad_scheme and the empty caption is counted first
"$PVLM_BIN" shard images --out o5 --image-size 16 --store raw --shards 1 --progress 0 --retries 0 --urls urls.tsv
"$PY" - "$ngood" <<'PYEOF'
import json, sys
ngood = int(sys.argv[1])
m = json.load(open("o5/manifest.json"))
f = m["failures"]
assert m["totals"]["records"] == 0 and f.get("blocked_address") == ngood + 3, f
assert f.get("bad_scheme") == 1 and f.get("empty_caption") == 1, f
print("blocked by default ok:", f)
PYEOF
# bad flag -> exit 2
set +e; "$PVLM_BIN" shard images --urls urls.tsv --out o4 --no-such-flag 2>/dev/null; rc=$?; set -e
[ $rc -eq 2 ] || { echo "FAIL: bad flag gave exit $rc"; exit 1; }
echo "shard_images_urls: ok"
