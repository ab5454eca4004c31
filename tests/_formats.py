"""Writers of small images in many formats, for the differential test (issue 12).

Each maker takes a folder and returns (bytes of the file, the RGB pixels it stores or
None when the format is lossy or the stored colour is only what a decoder says).
Pillow writes what it can; the ffmpeg CLI some more (skipped without it); the
formats neither writes with the variants wanted (PNG of 1/2/4 bits, PAM, plain PNM,
4-bit BMP, PSD, XPM) are written here byte by byte, from their specifications.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

W, H = 37, 23  # odd sizes: no row or tile comes out even


def content(ch: int = 3, seed: int = 0, levels: int = 256, noise: float = 12,
            block: bool = True) -> np.ndarray:
    """(H, W, ch) uint8: smooth ramps with noise on top and a hard-edged block (unless
    block is False), in `levels` levels (0..levels-1 scaled onto 0..255 when
    levels < 256)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W].astype(float)
    planes = [20 + 200 * x / (W - 1), 30 + 190 * y / (H - 1), 220 - 90 * (x + y) / (W + H),
              255 * (x + 2 * y) / (W + 2 * H)][:ch]
    a = np.stack(planes, -1) + rng.normal(0, noise, (H, W, ch))
    if block:
        a[3:9, 20:31] = rng.integers(0, 256, ch)
    a = np.clip(np.rint(a), 0, 255)
    if levels < 256:
        a = np.rint(np.rint(a * (levels - 1) / 255) * 255 / (levels - 1))
    return a.astype(np.uint8)


def grey(levels: int = 256, seed: int = 1) -> np.ndarray:
    return content(1, seed, levels)[..., 0]


def pil_bytes(im: Image.Image, fmt: str, **kw) -> bytes:
    bio = io.BytesIO()
    im.save(bio, fmt, **kw)
    return bio.getvalue()


def ffmpeg(tmp: Path, rgb: np.ndarray, ext: str, *args: str, src_fmt: str = "rgb24",
           size: tuple[int, int] | None = None) -> bytes:
    """The ffmpeg CLI's encoding of raw pixels rgb (H, W, ch; or planes with size given as
    (w, h)) into a file ending in ext."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("no ffmpeg CLI")
    raw = tmp / "src.raw"
    raw.write_bytes(np.ascontiguousarray(rgb).tobytes())
    out = tmp / f"out.{ext}"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", src_fmt,
                    "-s", "%dx%d" % (size or (rgb.shape[1], rgb.shape[0])), "-i", str(raw), *args,
                    "-frames:v", "1", "-update", "1", str(out)], check=True)
    return out.read_bytes()


# ---------------------------------------------------------------------------
# Written byte by byte
# ---------------------------------------------------------------------------


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(samples: np.ndarray, colour_type: int, depth: int, plte: bytes | None = None,
        trns: bytes | None = None) -> bytes:
    """A PNG of samples (H, W, ch) at any depth: rows packed MSB first below 8 bits,
    big-endian at 16, each row filtered with None."""
    h, w = samples.shape[:2]
    a = samples.reshape(h, -1)
    if depth < 8:
        per = 8 // depth
        pad = (-a.shape[1]) % per
        a = np.pad(a, ((0, 0), (0, pad))).reshape(h, -1, per).astype(np.uint16)
        a = sum(a[..., i] << (depth * (per - 1 - i)) for i in range(per)).astype(np.uint8)
        rows = a
    else:
        rows = a.astype(">u2" if depth == 16 else np.uint8).view(np.uint8).reshape(h, -1)
    raw = b"".join(b"\0" + r.tobytes() for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth,
                                                            colour_type, 0, 0, 0))
    if plte is not None:
        out += _chunk(b"PLTE", plte)
    if trns is not None:
        out += _chunk(b"tRNS", trns)
    return out + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def adam7_png(samples: np.ndarray, colour_type: int) -> bytes:
    """An interlaced (Adam7) 8-bit PNG of samples (H, W, ch): seven passes, each row
    filtered with None."""
    h, w = samples.shape[:2]
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
              (1, 0, 2, 2), (0, 1, 1, 2)]  # (x0, y0, dx, dy)
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = samples[y0::dy, x0::dx]
        if sub.size:
            raw += b"".join(b"\0" + r.tobytes() for r in sub.reshape(sub.shape[0], -1))
    return (b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 1))
            + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))


def pam(samples: np.ndarray, maxval: int, tupltype: str) -> bytes:
    h, w, ch = samples.shape
    head = b"P7\nWIDTH %d\nHEIGHT %d\nDEPTH %d\nMAXVAL %d\nTUPLTYPE %s\nENDHDR\n" % (
        w, h, ch, maxval, tupltype.encode())
    return head + samples.astype(">u2" if maxval > 255 else np.uint8).tobytes()


def plain_pnm(samples: np.ndarray, magic: str, maxval: int | None) -> bytes:
    """P1 (bits, 1 = black), P2 or P3 as ASCII numbers, lines kept under 70 characters."""
    h, w = samples.shape[:2]
    head = f"{magic}\n# written by the differential test\n{w} {h}\n"
    if maxval is not None:
        head += f"{maxval}\n"
    nums = [str(int(v)) for v in samples.reshape(-1)]
    lines = [" ".join(nums[i:i + 16]) for i in range(0, len(nums), 16)]
    return (head + "\n".join(lines) + "\n").encode()


def bmp4(idx: np.ndarray, pal: np.ndarray) -> bytes:
    """A 4-bit palette BMP (BITMAPINFOHEADER, bottom-up rows padded to 4 bytes)."""
    h, w = idx.shape
    packed = np.pad(idx, ((0, 0), (0, w % 2))).reshape(h, -1, 2)
    rows = (packed[..., 0] << 4 | packed[..., 1]).astype(np.uint8)
    stride = (rows.shape[1] + 3) // 4 * 4
    body = b"".join(r.tobytes().ljust(stride, b"\0") for r in rows[::-1])
    palette = b"".join(bytes([b, g, r, 0]) for r, g, b in pal)
    off = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 4, 0, len(body), 2835, 2835, len(pal), 0)
    return b"BM" + struct.pack("<IHHI", off + len(body), 0, 0, off) + info + palette + body


def psd(planes: np.ndarray, mode: int) -> bytes:
    """A flat PSD without layers: version 1, 8 bits, planar raw image data (mode 1 grey,
    3 RGB; a 4th plane is the merged alpha)."""
    ch, h, w = planes.shape
    head = b"8BPS" + struct.pack(">H6xHIIHH", 1, ch, h, w, 8, mode)
    return head + struct.pack(">III", 0, 0, 0) + struct.pack(">H", 0) + planes.tobytes()


def xpm(idx: np.ndarray, pal: np.ndarray, transparent: int | None = None) -> bytes:
    """An XPM3 image, one character per pixel, colours as #RRGGBB (index `transparent`
    as None)."""
    h, w = idx.shape
    chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    lines = [f'"{w} {h} {len(pal)} 1 ",']
    for i, (r, g, b) in enumerate(pal):
        colour = "None" if i == transparent else f"#{r:02X}{g:02X}{b:02X}"
        lines.append(f'"{chars[i]} c {colour}",')
    rows = ['"' + "".join(chars[v] for v in row) + '"' for row in idx]
    text = "/* XPM */\nstatic char *image[] = {\n" + "\n".join(lines) + "\n"
    return (text + ",\n".join(rows) + "\n};\n").encode()


def sun_pixels(data: bytes) -> np.ndarray:
    """The RGB pixels of an 8-bit Sun raster with an RGB colour map, read here from its
    specification (RT_BYTE_ENCODED: 0x80 0 is one 0x80, 0x80 n v is n + 1 copies of v;
    rows padded to 16 bits)."""
    w, h, depth, _, kind, maptype, maplen = struct.unpack(">7I", data[4:32])
    assert depth == 8 and maptype == 1, (depth, maptype)
    cmap = np.frombuffer(data[32:32 + maplen], np.uint8).reshape(3, -1).T
    body = data[32 + maplen:]
    if kind == 2:
        out, i = bytearray(), 0
        while i < len(body):
            if body[i] != 0x80:
                out.append(body[i])
                i += 1
            elif body[i + 1] == 0:
                out.append(0x80)
                i += 2
            else:
                out += bytes([body[i + 2]]) * (body[i + 1] + 1)
                i += 3
        body = bytes(out)
    stride = (w + 1) // 2 * 2
    idx = np.frombuffer(body[:stride * h], np.uint8).reshape(h, stride)[:, :w]
    return cmap[idx]
