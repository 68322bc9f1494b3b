#!/usr/bin/env bash
# make-tiny-data.sh - tiny synthetic training data for tests and demos, built with pvlm's own tools.
#
#   scripts/make-tiny-data.sh PVLM_BIN OUT_DIR [N_IMAGES]
#
# Writes (deterministically):
#   OUT/pairs/NNNN.png + NNNN.txt   N small images (coloured shapes on a background) with a caption
#                                   that describes them ("a red square on a blue background")
#   OUT/c4/c4-train.00000-of-00001.json   C4-format JSON lines of simple sentences
#   OUT/tok/                        a byte-level BPE vocabulary trained on captions + sentences
#                                   (pvlm tokenizer train, 300 tokens)
#   OUT/img/manifest.json           LMDB image shards (pvlm shard images, 2 shards, 16x16 raw RGB)
#   OUT/text/manifest.json          zstd text shards (pvlm shard text), when that command exists
# Images are written as PNG by Python's zlib (Debian /usr/bin/python3, no extra modules).
set -euo pipefail
PVLM=${1:?usage: make-tiny-data.sh PVLM_BIN OUT_DIR [N_IMAGES]}
OUT=${2:?usage: make-tiny-data.sh PVLM_BIN OUT_DIR [N_IMAGES]}
N=${3:-48}
PY=${PVLM_PYTHON:-/usr/bin/python3}
mkdir -p "$OUT/pairs" "$OUT/c4"

"$PY" - "$OUT" "$N" <<'PYEOF'
import json, os, struct, sys, zlib
out, n = sys.argv[1], int(sys.argv[2])
colors = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220), "yellow": (230, 220, 30),
          "black": (10, 10, 10), "white": (245, 245, 245)}
names = sorted(colors)
shapes = ["square", "circle", "bar"]
def png(path, w, h, rgb):
    raw = b"".join(b"\x00" + bytes(rgb[y * w * 3:(y + 1) * w * 3]) for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
S = 16
corpus = []
for i in range(n):
    fg = names[(i * 7) % len(names)]
    bg = names[(i * 3 + 1) % len(names)]
    if bg == fg:
        bg = names[(names.index(bg) + 1) % len(names)]
    shape = shapes[i % len(shapes)]
    px = []
    for y in range(S):
        for x in range(S):
            if shape == "square": inside = 4 <= x < 12 and 4 <= y < 12
            elif shape == "circle": inside = (x - 7.5) ** 2 + (y - 7.5) ** 2 <= 20
            else: inside = 6 <= y < 10
            px.extend(colors[fg] if inside else colors[bg])
    png(os.path.join(out, "pairs", "%04d.png" % i), S, S, px)
    cap = "a %s %s on a %s background" % (fg, shape, bg)
    with open(os.path.join(out, "pairs", "%04d.txt" % i), "w") as f:
        f.write(cap + "\n")
    corpus.append(cap)
sentences = []
for i in range(4 * n):
    a, b = names[i % len(names)], names[(i * 5 + 2) % len(names)]
    sentences.append("the %s %s is next to the %s %s and the sky is %s today." % (a, shapes[i % 3], b, shapes[(i + 1) % 3], names[(i * 11) % len(names)]))
with open(os.path.join(out, "c4", "c4-train.00000-of-00001.json"), "w") as f:
    for i, s in enumerate(sentences):
        f.write(json.dumps({"text": s, "url": "https://example.invalid/%d" % i, "timestamp": "2019-04-25T12:00:00Z"}) + "\n")
with open(os.path.join(out, "corpus.txt"), "w") as f:
    f.write("\n".join(corpus + sentences) + "\n")
PYEOF

"$PVLM" tokenizer train --vocab-size 300 --out "$OUT/tok" "$OUT/corpus.txt" >/dev/null
"$PVLM" shard images --pairs "$OUT/pairs" --out "$OUT/img" --image-size 16 --shards 2 --store raw \
  --threads 1 --progress 0 --seed 1 >/dev/null
if "$PVLM" shard text --help >/dev/null 2>&1; then
  "$PVLM" shard text --input "$OUT/c4" --out "$OUT/text" --frame-bytes 4096 --threads 1 >/dev/null 2>&1
fi
echo "make-tiny-data: $OUT (images: $OUT/img/manifest.json${OUT:+, text: $( [ -f "$OUT/text/manifest.json" ] && echo "$OUT/text/manifest.json" || echo none)})"
