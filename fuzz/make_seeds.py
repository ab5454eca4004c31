"""Write the seed corpus of fuzz/fuzz_load.py: small images of every format spdl.io reads.

    python fuzz/make_seeds.py OUT_DIR

Each seed is one selector byte (see fuzz_load.py) followed by a file. Made
with Pillow and the hand-made headers of tests/hostile_corpus.py; nothing is
downloaded.
"""

from __future__ import annotations

import hashlib
import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import hostile_corpus as hc  # noqa: E402


def images() -> dict[str, bytes]:
    out = {}
    for (w, h) in ((8, 8), (13, 7), (40, 30)):
        a = hc.synth(w, h, seed=w)
        for fmt, kw in (("JPEG", {"quality": 80}), ("JPEG", {"quality": 80, "progressive": True}),
                        ("JPEG", {"quality": 80, "subsampling": 0}), ("PNG", {}), ("WEBP", {"quality": 50}),
                        ("WEBP", {"lossless": True}), ("GIF", {}), ("TIFF", {}), ("TIFF", {"compression": "tiff_lzw"}),
                        ("TIFF", {"compression": "tiff_adobe_deflate"}), ("TIFF", {"compression": "packbits"}),
                        ("BMP", {}), ("PPM", {}), ("QOI", {}), ("TGA", {}), ("SGI", {}), ("PCX", {}),
                        ("JPEG2000", {}), ("DDS", {}), ("AVIF", {"quality": 50})):
            try:
                out[f"{fmt}_{w}x{h}_{'_'.join(map(str, kw.values()))}"] = hc.encode(a, fmt, **kw)
            except Exception:  # a format this Pillow cannot write
                pass
        out[f"gray_png_{w}x{h}"] = _save(Image.fromarray(a).convert("L"), "PNG")
        out[f"gray_jpeg_{w}x{h}"] = _save(Image.fromarray(a).convert("L"), "JPEG")
        out[f"rgba_png_{w}x{h}"] = _save(Image.fromarray(a).convert("RGBA"), "PNG")
        out[f"rgba_webp_{w}x{h}"] = _save(Image.fromarray(a).convert("RGBA"), "WEBP")
        try:  # (Pillow 11.3+ writes AVIF)
            out[f"rgba_avif_{w}x{h}"] = _save(Image.fromarray(a).convert("RGBA"), "AVIF", quality=50)
        except (KeyError, OSError, ValueError):
            pass
        out[f"palette_png_{w}x{h}"] = _save(Image.fromarray(a).convert("P"), "PNG")
        out[f"cmyk_jpeg_{w}x{h}"] = _save(Image.fromarray(a).convert("CMYK"), "JPEG")
        out[f"optimized_png_{w}x{h}"] = _save(Image.fromarray(a), "PNG", optimize=True)
    frames = [Image.fromarray(hc.synth(16, 12, seed=s)) for s in range(3)]
    out["anim_gif"] = _save(frames[0], "GIF", save_all=True, append_images=frames[1:])
    out["apng"] = _save(frames[0], "PNG", save_all=True, append_images=frames[1:])
    out["anim_webp"] = _save(frames[0], "WEBP", save_all=True, append_images=frames[1:])
    rgba = [f.convert("RGBA") for f in frames]
    for f in rgba:
        f.putalpha(Image.fromarray(hc.synth(16, 12, seed=9)[..., 0]))
    out["anim_webp_lossy_alpha"] = _save(rgba[0], "WEBP", save_all=True, append_images=rgba[1:],
                                         quality=50)
    exif = Image.Exif()
    exif[0x0112] = 6
    out["webp_exif_xmp"] = _save(frames[1], "WEBP", quality=50, exif=exif.tobytes(), xmp=b"<x/>")
    out["webp_lossless_alpha"] = _save(rgba[2], "WEBP", lossless=True)
    out["png16"] = hc.valid_images()["png_rgba16"]
    out["jpeg_scan_bomb_small"] = hc.jpeg_scan_bomb(64, 64, 40)
    out["jpeg_claiming"] = hc.jpeg_claiming(300, 200)
    out["gif_claiming"] = hc.gif_claiming(300, 200)
    out["tiff_claiming"] = hc.tiff_claiming(30, 20)
    out["bmp_claiming"] = hc.bmp_claiming(30, 20)
    out["webp_claiming"] = hc.webp_vp8l_claiming(30, 20)
    out["tiff_tiled_deflate"] = _tiled_tiff(hc.synth(40, 30, seed=4))
    out["tiff_jpeg"] = _save(Image.fromarray(hc.synth(40, 30, seed=5)), "TIFF", compression="jpeg")
    out["tiff_jpeg_ycbcr"] = _save(Image.fromarray(hc.synth(40, 30, seed=6)).convert("YCbCr"),
                                   "TIFF", compression="jpeg")
    out["pgm"] = b"P5\n4 3\n255\n" + bytes(range(12))
    out["ppm_ascii"] = b"P3\n2 1\n255\n255 0 0 0 255 0\n"
    out["xbm"] = b"#define x_width 8\n#define x_height 2\nstatic char x_bits[] = {0x01, 0x80};\n"
    out["hls"] = hc.hls_playlist(["/etc/passwd", "http://127.0.0.1:1/x.ts"])
    return out


def _tiled_tiff(a, tile: int = 16) -> bytes:
    """An RGB TIFF in Deflate-compressed tiles of tile x tile (Pillow writes strips only)."""
    h, w = a.shape[:2]
    tiles = []
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            t = np.zeros((tile, tile, 3), np.uint8)
            part = a[y:y + tile, x:x + tile]
            t[:part.shape[0], :part.shape[1]] = part
            tiles.append(zlib.compress(t.tobytes()))
    n = len(tiles)
    entries = [(256, 4, [w]), (257, 4, [h]), (258, 3, [8, 8, 8]), (259, 3, [8]), (262, 3, [2]),
               (277, 3, [3]), (322, 4, [tile]), (323, 4, [tile]), (324, 4, [0] * n),
               (325, 4, [len(t) for t in tiles])]
    ifd_end = 8 + 2 + 12 * len(entries) + 4
    blobs, at = [], ifd_end
    for tag, typ, vals in entries:  # values over 4 bytes follow the IFD, then the tiles
        size = (2 if typ == 3 else 4) * len(vals)
        blobs.append(at if size > 4 else None)
        at += size if size > 4 else 0
    offsets, pos = [], at
    for t in tiles:
        offsets.append(pos)
        pos += len(t)
    out = bytearray(b"II*\0" + struct.pack("<IH", 8, len(entries)))
    tail = bytearray()
    for (tag, typ, vals), blob in zip(entries, blobs):
        vals = offsets if tag == 324 else vals
        raw = b"".join(struct.pack("<H" if typ == 3 else "<I", v) for v in vals)
        out += struct.pack("<HHI", tag, typ, len(vals))
        out += struct.pack("<I", blob) if blob is not None else raw.ljust(4, b"\0")
        if blob is not None:
            tail += raw
    return bytes(out + struct.pack("<I", 0) + tail) + b"".join(tiles)


def _save(im, fmt, **kw) -> bytes:
    b = io.BytesIO()
    im.save(b, format=fmt, **kw)
    return b.getvalue()


def main(out_dir: str) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for i, (name, data) in enumerate(sorted(images().items())):
        for sel in (i % 256, (i * 37 + 1) % 256, (i * 101 + 2) % 256, (i * 53 + 3) % 256):
            blob = bytes([sel]) + data
            (out / hashlib.sha1(blob).hexdigest()).write_bytes(blob)
            n += 1
    print(f"{n} seeds in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parent / "seeds")))
