#!/usr/bin/env bash
# shard_images_wds.sh - `pvlm shard images --webdataset` on tars written the way img2dataset writes
# them ({key}.jpg|png|webp + {key}.txt + {key}.json, Python's tarfile): records keep the url (as their
# id) and the original size from the json; a member without a caption, a caption without an image, a
# webp image, a duplicate member, a bad json, a truncated tar, a compressed tar and a missing tar are
# counted by reason; a long member name (pax header) is read at the right offset; brace and glob
# patterns give the same shards; a rebuild resumes (finished shards skipped, a deleted one rebuilt
# byte-identically).
set -euo pipefail
: "${PVLM_BIN:?}" "${PVLM_TMP:?}" "${PVLM_SOURCE_DIR:?}"
PY=${PVLM_PYTHON:-/usr/bin/python3}
rm -rf "$PVLM_TMP"; mkdir -p "$PVLM_TMP"; cd "$PVLM_TMP"
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "PASS: $*"; }
"$PY" "$PVLM_SOURCE_DIR/scripts/make-test-images.py" fx >/dev/null

# The writer: img2dataset's layout (shard NNNNN.tar, keys NNNNNmmmm, one json per sample with url,
# original_width/height, status), through tarfile as webdataset's TarWriter does.
"$PY" - <<'PY'
import gzip, io, json, os, tarfile
ok = json.load(open("fx/expected.json"))
fx = sorted(f for f in ok if ok[f]["ok"] and f.endswith((".jpg", ".png")))
imgs = [(f, open("fx/" + f, "rb").read()) for f in fx]
os.makedirs("wds", exist_ok=True)
truth = {}
def add(t, name, data):
    ti = tarfile.TarInfo(name); ti.size = len(data); ti.mtime = 1700000000
    t.addfile(ti, io.BytesIO(data))
def sample(t, shard, i, img=True, txt=True, js=True, ext=None, prefix=""):
    key = prefix + "%05d%04d" % (shard, i)
    f, data = imgs[(shard * 7 + i) % len(imgs)]
    e = ext or ("jpg" if f.endswith(".jpg") else "png")
    url = "http://example.com/%s/%s" % (key, f)
    meta = {"url": url, "key": key, "status": "success", "original_width": 1000 + i, "original_height": 700 + shard,
            "caption": "a picture %d" % i}
    if img: add(t, key + "." + e, data)
    if txt: add(t, key + ".txt", ("  a picture of %s number %d \n" % (f, i)).encode())
    if js: add(t, key + ".json", json.dumps(meta).encode())
    if img and txt and ext is None:
        truth[url] = [1000 + i, 700 + shard, "a picture of %s number %d" % (f, i)]
    return url
with tarfile.open("wds/00000.tar", "w") as t:
    for i in range(5): sample(t, 0, i)
    sample(t, 0, 5, txt=False)                    # an image without a caption: empty_caption
    sample(t, 0, 6, img=False)                    # a caption (and json) without an image: no_image
    sample(t, 0, 7, ext="webp")                   # not decodable by pvlm: unsupported_image
    sample(t, 0, 8, prefix="a/" + "long" * 40 + "/")  # name > 100 bytes: a pax header before the member
with tarfile.open("wds/00001.tar", "w") as t:
    for i in range(4): sample(t, 1, i)
    add(t, "000010003.txt", b"a second caption")   # duplicate_member (the first caption is kept)
    k = "000010009"; add(t, k + ".png", imgs[0][1]); add(t, k + ".txt", b"bad json"); add(t, k + ".json", b"{nope")
    truth["000010009"] = [0, 0, "bad json"]       # no url: the key is the id; no original size
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    for i in range(4): sample(t, 2, i)
raw = buf.getvalue()
# cut inside the last sample's image: the three before it are kept
cut = raw.index(b"000020003.") + 512 + 40
open("wds/00002.tar", "wb").write(raw[:cut])
for u in [u for u in truth if "/000020003/" in u]: del truth[u]
open("wds/00003.tar", "wb").write(gzip.compress(raw))   # compressed: bad_tar
# wds/00004.tar is missing
json.dump(truth, open("truth.json", "w"))
PY

build() {
  "$PVLM_BIN" shard images --out "$1" --image-size 16 --store raw --shards 2 --threads 2 --progress 0 "${@:2}"
}
build o1 --webdataset 'wds/{00000..00004}.tar' 2>log1 || fail "build: $(tail -3 log1)"
dump() { # records of a shard set as JSON lines {id, orig_w, orig_h, captions} (mdb_dump, raw values)
  for f in "$1"/images-*.lmdb; do mdb_dump -n "$f"; done | "$PY" -c '
import json, struct, sys
lines = [l.strip() for l in sys.stdin]
vals, i = [], 0
while i < len(lines):
    if lines[i] == "HEADER=END":
        i += 1
        while lines[i] != "DATA=END":
            vals.append(bytes.fromhex(lines[i + 1])); i += 2
    i += 1
for v in vals:
    if len(v) < 56 or v[:4] != b"PVIR": continue
    ow, oh, sw, sh, nc, idl = struct.unpack("<6I", v[8:32])
    p = 56; rid = v[p:p + idl].decode(); p += idl + 1; caps = []
    for _ in range(nc):
        n = struct.unpack("<I", v[p:p + 4])[0]; caps.append(v[p + 4:p + 4 + n].decode()); p += 4 + n + 1
    print(json.dumps({"id": rid, "orig": [ow, oh], "caps": caps}))'
}
dump o1 > rec1.jsonl
"$PY" - <<'PY' || fail "records or failure counts"
import json
truth = json.load(open("truth.json"))
recs = {r["id"]: r for r in map(json.loads, open("rec1.jsonl"))}
assert sorted(recs) == sorted(truth), (sorted(set(recs) ^ set(truth)))
for rid, (w, h, cap) in truth.items():
    r = recs[rid]
    assert r["caps"] == [cap], (rid, r)
    if w: assert r["orig"] == [w, h], (rid, r)   # original size from the json, not the stored image
long = [r for r in recs if "longlong" in r]
assert len(long) == 1, "the sample behind a pax header is missing"
m = json.load(open("o1/manifest.json"))
want = {"empty_caption": 1, "no_image": 1, "unsupported_image": 1, "duplicate_member": 1, "bad_json": 1,
        "truncated_tar": 1, "bad_tar": 1, "missing_tar": 1}
got = {k: v for k, v in m["failures"].items() if v}
assert got == want, got
assert m["totals"]["records"] == len(truth), m["totals"]
print("%d records, failures %s" % (len(truth), got))
PY
pass "records keep url and original size; bad members counted by reason"

# a glob names the same tars (without the missing one): the same records in the same shards
build o2 --webdataset 'wds/0000[0-3].tar' 2>log2 || fail "glob build: $(tail -3 log2)"
for f in o1/images-*.lmdb; do cmp -s "$f" "o2/${f#o1/}" || fail "glob and brace builds differ: $f"; done
pass "brace and glob patterns give byte-identical shards"

# resume: a re-run skips finished shards; a deleted shard is rebuilt byte-identically
cp o1/images-00000-of-00002.lmdb keep.lmdb
build o1 --webdataset 'wds/{00000..00004}.tar' 2>log3 || fail "re-run"
grep -q "0 shard(s) built, 2 skipped" log3 || fail "re-run did not skip finished shards: $(tail -1 log3)"
rm o1/images-00000-of-00002.lmdb
build o1 --webdataset 'wds/{00000..00004}.tar' 2>log4 || fail "resume"
grep -q "1 shard(s) built, 1 skipped" log4 || fail "resume did not rebuild just the missing shard: $(tail -1 log4)"
cmp -s keep.lmdb o1/images-00000-of-00002.lmdb || fail "rebuilt shard differs"
pass "resume: finished shards skipped, a deleted one rebuilt byte-identically"

# errors: no tar at all; malformed braces
set +e
build o3 --webdataset 'nothere/{0..3}.tar' 2>log5; rc5=$?
build o3 --webdataset 'wds/{0..3.tar' 2>log6; rc6=$?
set -e
[ $rc5 -ne 0 ] && grep -q "no tar file matches" log5 || fail "missing tars not reported: $(tail -1 log5)"
[ $rc6 -ne 0 ] && grep -q "unbalanced" log6 || fail "bad pattern not reported: $(tail -1 log6)"
pass "a pattern without tars and a malformed pattern are errors naming the pattern"
