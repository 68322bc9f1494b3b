#!/usr/bin/env bash
# shard_images_bad_inputs.sh - `pvlm shard images` on bad inputs. URL builds with no usable row: a header-only
# list, an empty file, only empty URLs, and --retry-failed when only permanent failures remain
# (the documented retry workflow) each finish with an empty manifest that counts the skipped
# rows, instead of crashing. No network: the only URL is ftp://, refused before any connection.
# Also a COCO build whose images are folders (file_name "" or a folder x.jpg): not_a_file; and
# damaged JPEGs (cut with an EOI marker appended, a forged 65500x65500 header): corrupt_image,
# never stored as grey images; captions that break the UTF-8 rule or hold a NUL: bad_caption.
set -euo pipefail
: "${PVLM_BIN:?}" "${PVLM_TMP:?}"
PY=${PVLM_PYTHON:-/usr/bin/python3}
rm -rf "$PVLM_TMP"; mkdir -p "$PVLM_TMP"; cd "$PVLM_TMP"

printf 'url\tcaption\n' > header_only.tsv
: > empty.tsv
printf 'url\tcaption\n\tone\n  \ttwo\n' > empty_urls.tsv
printf 'url\tcaption\nftp://example.invalid/x.jpg\tnot http\n' > ftp.tsv

build() {
  local out=$1; shift
  set +e
  "$PVLM_BIN" shard images --out "$out" --image-size 16 --store raw --retries 0 --progress 0 "$@" >"$out.log" 2>&1
  local rc=$?
  set -e
  if [ $rc -ne 0 ]; then echo "FAIL: $out exited $rc"; cat "$out.log"; exit 1; fi
}
check() { # out records failed-reason count
  "$PY" - "$@" <<'PYEOF'
import json, sys
out, records = sys.argv[1], int(sys.argv[2])
m = json.load(open(out + "/manifest.json"))
assert m["totals"]["records"] == records, (out, m["totals"])
if len(sys.argv) > 3:
    assert m["failures"].get(sys.argv[3]) == int(sys.argv[4]), (out, m["failures"])
print(out, "ok:", m["totals"], m["failures"])
PYEOF
}
build o_header --urls header_only.tsv
check o_header 0
build o_empty --urls empty.tsv --url-format tsv
check o_empty 0
build o_empty_urls --urls empty_urls.tsv
check o_empty_urls 0 empty_url 2
build o_ftp --urls ftp.tsv
check o_ftp 0 bad_scheme 1
grep -q bad_scheme o_ftp/failures.jsonl
# only a permanent failure is listed: the default retry reasons select no row
build o_retry --retry-failed o_ftp/failures.jsonl
check o_retry 0
# asking for it explicitly retries it and it fails the same way
build o_retry_all --retry-failed o_ftp/failures.jsonl --retry-reasons all
check o_retry_all 0 bad_scheme 1
# a COCO file whose file_name is "" (the image folder itself) or names a folder: counted, not read
mkdir -p coco/img/x.jpg
printf '{"images":[{"id":1,"file_name":""},{"id":2,"file_name":"x.jpg"}],"annotations":[{"image_id":1,"caption":"a"},{"image_id":2,"caption":"b"}]}' > coco/c.json
build o_coco --coco coco/c.json --images coco/img
check o_coco 0 not_a_file 2
grep -q "x.jpg: is a directory, not a regular file" o_coco.log || { echo "FAIL: no message naming x.jpg"; cat o_coco.log; exit 1; }
# damaged JPEGs beside a good one
"$PY" - <<'PYEOF'
import io, json
from PIL import Image
im = Image.new("RGB", (64, 48))
im.putdata([((x * 4) % 256, (y * 5) % 256, (x * y) % 256) for y in range(48) for x in range(64)])
b = io.BytesIO(); im.save(b, "JPEG", quality=90); good = b.getvalue()
sos = good.index(b"\xff\xda"); sof = good.index(b"\xff\xc0")
open("coco/img/good.jpg", "wb").write(good)
open("coco/img/cut.jpg", "wb").write(good[: sos + (len(good) - sos) // 2] + b"\xff\xd9")
forged = bytearray(good); forged[sof + 5 : sof + 9] = b"\xff\xdc\xff\xdc"
open("coco/img/forged.jpg", "wb").write(bytes(forged))
imgs = [{"id": i, "file_name": f} for i, f in enumerate(["good.jpg", "cut.jpg", "forged.jpg"])]
anns = [{"image_id": i, "caption": "picture %d" % i} for i in range(3)]
json.dump({"images": imgs, "annotations": anns}, open("coco/bad.json", "w"))
PYEOF
build o_bad --coco coco/bad.json --images coco/img
check o_bad 1 corrupt_image 2
grep -q "cut.jpg: corrupt JPEG data" o_bad.log || { echo "FAIL: no message naming cut.jpg"; cat o_bad.log; exit 1; }
# captions under the one UTF-8 rule (core/utf8.h): overlong, surrogate, F5 lead byte and a NUL
# inside are bad_caption at shard time (the loader would drop or cut them); a good one is stored
mkdir -p pairs
for n in good overlong surrogate f5 nul; do cp coco/img/good.jpg pairs/$n.jpg; done
printf 'a good caption \xc3\xa9\n' > pairs/good.txt
printf 'over\xc0\xafong\n' > pairs/overlong.txt
printf 'half \xed\xa0\x80 pair\n' > pairs/surrogate.txt
printf 'lead \xf5\x80\x80\x80 byte\n' > pairs/f5.txt
printf 'cut here\000 and lost\n' > pairs/nul.txt
build o_caps --pairs pairs
check o_caps 1 bad_caption 4
# a NUL inside a URL-list row is a bad row, not a silently shortened caption
printf 'url\tcaption\nhttp://example.invalid/a.jpg\tcut\000 here\n' > nul.tsv
build o_nul --urls nul.tsv
check o_nul 0 bad_row 1
echo "shard_images_bad_inputs: ok"
