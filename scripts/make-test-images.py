#!/usr/bin/env python3
"""make-test-images.py - fixture images for the image-shard tests (shard_images_*).

Writes into OUT_DIR a folder of name.ext + name.txt pairs covering the decoder's cases,
plus expected.json describing what a correct decode gives for each file:
  {"name.ext": {"ok": true, "w": W, "h": H, "rgb": [r, g, b], "tol": T, "caption": "..."}
   or {"ok": false, "reason": "decode_error" | "empty_caption"}}
Every good image is a single colour (after alpha compositing on white), so any correct
decode + resize must give that colour everywhere (within tol for lossy JPEG).

Cases: baseline, progressive, grayscale and CMYK (Adobe, inverted) JPEGs, a JPEG big
enough to use DCT scaling; PNGs: RGB, RGBA (half transparent), gray+alpha, palette with a
transparent entry, 16-bit gray, 16-bit RGB, and Adam7-interlaced RGB (written by hand with
zlib + struct, since Pillow cannot write interlaced PNGs); corrupt files: truncated JPEG,
garbage after a PNG signature, a zero-byte file, a text file named .jpg; an image whose
caption file is blank.

Uses Pillow (Debian python3-pil) for JPEG; PNG is written with the standard library.
Run with Debian's python3: /usr/bin/python3 scripts/make-test-images.py OUT_DIR
"""
import io
import json
import os
import struct
import sys
import zlib

from PIL import Image


def png_chunk(kind, data):
    c = struct.pack(">I", len(data)) + kind + data
    return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(w, h, color_type, bit_depth, rows, interlace=0, plte=None, trns=None):
    """rows: list of h byte strings of raw (unfiltered) pixel data. Filter 0 on every row."""
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, interlace)
    bpp_bits = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type] * bit_depth
    if interlace:
        # Adam7: pass p takes pixels (x0 + i*dx, y0 + j*dy); each pass's rows get a filter byte.
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
        assert bpp_bits % 8 == 0
        bpp = bpp_bits // 8
        raw = b""
        for x0, y0, dx, dy in passes:
            xs = list(range(x0, w, dx))
            if not xs:
                continue
            for y in range(y0, h, dy):
                raw += b"\x00" + b"".join(rows[y][x * bpp:(x + 1) * bpp] for x in xs)
    else:
        raw = b"".join(b"\x00" + r for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
    if plte is not None:
        out += png_chunk(b"PLTE", plte)
    if trns is not None:
        out += png_chunk(b"tRNS", trns)
    return out + png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b"")


def jpeg_bytes(img, **kw):
    b = io.BytesIO()
    img.save(b, "JPEG", **kw)
    return b.getvalue()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make-test-images.py OUT_DIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    expected = {}

    def put(name, data, caption, exp):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        stem = name.rsplit(".", 1)[0]
        if caption is not None:
            with open(os.path.join(out, stem + ".txt"), "w", encoding="utf-8") as f:
                f.write(caption + "\n")
        exp = dict(exp)
        if exp.get("ok"):
            exp["caption"] = caption
        expected[name] = exp

    # JPEGs (lossy: tolerance 4 on a flat colour)
    put("jpeg_baseline.jpg", jpeg_bytes(Image.new("RGB", (64, 48), (200, 30, 90)), quality=95),
        "a baseline jpeg", {"ok": True, "w": 64, "h": 48, "rgb": [200, 30, 90], "tol": 4})
    put("jpeg_progressive.jpg", jpeg_bytes(Image.new("RGB", (40, 70), (10, 180, 60)), quality=95, progressive=True),
        "a progressive jpeg", {"ok": True, "w": 40, "h": 70, "rgb": [10, 180, 60], "tol": 4})
    put("jpeg_gray.jpg", jpeg_bytes(Image.new("L", (50, 50), 77), quality=95),
        "a grayscale jpeg", {"ok": True, "w": 50, "h": 50, "rgb": [77, 77, 77], "tol": 3})
    # Pillow writes CMYK JPEGs the Adobe way (inverted); C=0,M=100,Y=100,K=0 (0..255) -> red-ish.
    cmyk = Image.new("CMYK", (32, 32), (0, 200, 200, 0))
    put("jpeg_cmyk.jpg", jpeg_bytes(cmyk, quality=95), "a cmyk jpeg",
        {"ok": True, "w": 32, "h": 32, "rgb": [255, 55, 55], "tol": 6})
    put("jpeg_big.jpg", jpeg_bytes(Image.new("RGB", (1600, 1200), (90, 90, 250)), quality=90),
        "a big jpeg decoded with DCT scaling", {"ok": True, "w": 1600, "h": 1200, "rgb": [90, 90, 250], "tol": 4})

    # PNGs (lossless: exact)
    w, h = 20, 12
    put("png_rgb.png", png_bytes(w, h, 2, 8, [bytes((1, 2, 3)) * w] * h), "an rgb png",
        {"ok": True, "w": w, "h": h, "rgb": [1, 2, 3], "tol": 0})
    # RGBA (0, 0, 0, 128) on white: (0*128 + 255*127 + 127) // 255 = 127
    put("png_rgba.png", png_bytes(w, h, 6, 8, [bytes((0, 0, 0, 128)) * w] * h), "a half transparent png",
        {"ok": True, "w": w, "h": h, "rgb": [127, 127, 127], "tol": 0})
    put("png_rgba_clear.png", png_bytes(w, h, 6, 8, [bytes((9, 9, 9, 0)) * w] * h), "a fully transparent png",
        {"ok": True, "w": w, "h": h, "rgb": [255, 255, 255], "tol": 0})
    put("png_gray_alpha.png", png_bytes(w, h, 4, 8, [bytes((100, 255)) * w] * h), "a gray+alpha png",
        {"ok": True, "w": w, "h": h, "rgb": [100, 100, 100], "tol": 0})
    # palette: entry 0 opaque green, entry 1 transparent; every pixel uses entry 1 -> white... use 0
    put("png_palette.png", png_bytes(w, h, 3, 8, [bytes((0,)) * w] * h, plte=bytes((0, 128, 0, 5, 5, 5))),
        "a palette png", {"ok": True, "w": w, "h": h, "rgb": [0, 128, 0], "tol": 0})
    put("png_palette_trns.png",
        png_bytes(w, h, 3, 8, [bytes((1,)) * w] * h, plte=bytes((0, 128, 0, 5, 5, 5)), trns=bytes((255, 0))),
        "a palette png with a transparent entry", {"ok": True, "w": w, "h": h, "rgb": [255, 255, 255], "tol": 0})
    # 16-bit: 0x8080 -> 128 in 8 bits
    put("png_gray16.png", png_bytes(w, h, 0, 16, [bytes((0x80, 0x80)) * w] * h), "a 16-bit gray png",
        {"ok": True, "w": w, "h": h, "rgb": [128, 128, 128], "tol": 1})
    put("png_rgb16.png", png_bytes(w, h, 2, 16, [bytes((0xFF, 0xFF, 0x00, 0x00, 0x40, 0x40)) * w] * h),
        "a 16-bit rgb png", {"ok": True, "w": w, "h": h, "rgb": [255, 0, 64], "tol": 1})
    put("png_interlaced.png", png_bytes(23, 17, 2, 8, [bytes((40, 50, 60)) * 23] * 17, interlace=1),
        "an interlaced png", {"ok": True, "w": 23, "h": 17, "rgb": [40, 50, 60], "tol": 0})

    # corrupt inputs
    good = jpeg_bytes(Image.new("RGB", (300, 200), (1, 2, 3)), quality=90)
    put("bad_truncated.jpg", good[:len(good) // 3], "a truncated jpeg", {"ok": False, "reason": "decode_error"})
    put("bad_garbage.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 40, "a garbage png",
        {"ok": False, "reason": "decode_error"})
    put("bad_zero.jpg", b"", "a zero-byte file", {"ok": False, "reason": "decode_error"})
    put("bad_text.jpg", b"this is not an image\n", "a text file", {"ok": False, "reason": "decode_error"})
    # blank caption
    put("nocap.png", png_bytes(4, 4, 2, 8, [bytes((1, 1, 1)) * 4] * 4), None, {"ok": False, "reason": "empty_caption"})
    with open(os.path.join(out, "nocap.txt"), "w") as f:
        f.write("   \n\n")

    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
    print(f"make-test-images: {len(expected)} files in {out}")


if __name__ == "__main__":
    main()
