"""A contact sheet of sample rows as a PNG, built while the rows arrive (spdl-ingest).

The sheet is a grid of tiles on grey; each band of tiles (one grid row) is filtered and
deflated as soon as its last tile is placed, so finishing the sheet at the end of a run
costs one band, not the whole image. The PNG is written with zlib alone (no Pillow):
8-bit RGB, every scanline Sub-filtered (each byte minus the one a pixel to its left),
deflated with zlib's run-length strategy at level 1 (photos gain little from more).
"""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np

__all__ = ["ContactSheet", "png_bytes"]

#: Grey of the background and the gaps.
BACKGROUND = 64


def _sub_filtered(rgb: np.ndarray) -> bytes:
    """(h, w, 3) uint8 rows as PNG scanlines, each with filter type 1 (Sub)."""
    h, w, _ = rgb.shape
    rows = np.ascontiguousarray(rgb).reshape(h, w * 3)
    raw = np.empty((h, w * 3 + 1), np.uint8)
    raw[:, 0] = 1
    raw[:, 1:4] = rows[:, :3]
    np.subtract(rows[:, 3:], rows[:, :-3], out=raw[:, 4:])   # wraps mod 256, as PNG wants
    return raw.tobytes()


def _compressor() -> "zlib._Compress":
    return zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)


def _png_file(width: int, height: int, idat: bytes) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def png_bytes(rgb: np.ndarray) -> bytes:
    """An (H, W, 3) uint8 array as a PNG file."""
    z = _compressor()
    idat = z.compress(_sub_filtered(rgb)) + z.flush()
    return _png_file(rgb.shape[1], rgb.shape[0], idat)


def _as_rgb(tile: np.ndarray, pix_fmt: str) -> np.ndarray:
    if pix_fmt == "gray":
        return np.repeat(tile, 3, axis=2)
    if pix_fmt == "bgr24":
        return tile[:, :, ::-1]
    return tile[:, :, :3]   # rgb24; rgba without its alpha


class ContactSheet:
    """Up to ``tiles`` rows spread evenly over inputs [start, stop), each shrunk by the
    least integer factor that brings its longest side to <= ``side`` (every f-th pixel:
    a preview, made in microseconds), ``gap`` pixels apart."""

    def __init__(self, start: int, stop: int, row_shape: tuple[int, int, int], pix_fmt: str,
                 *, tiles: int = 64, side: int = 96, gap: int = 4) -> None:
        span = max(stop - start, 1)
        k = min(tiles, span)
        self.targets = [start + (j * span) // k for j in range(k)]
        self.next = 0
        self.keys: list[str] = []
        h, w, _ = row_shape
        self.f = max(1, -(-max(h, w) // side))
        self.th, self.tw = -(-h // self.f), -(-w // self.f)
        self.gap = gap
        self.pix_fmt = pix_fmt
        self.cols = math.ceil(math.sqrt(k))
        self.width = self.cols * (self.tw + gap) + gap
        self.band = np.full((gap + self.th, self.width, 3), BACKGROUND, np.uint8)
        self.in_band = 0
        self.bands = 0
        self.z = _compressor()
        self.idat: list[bytes] = []

    def offer(self, index: int, key: str, row: np.ndarray) -> None:
        """Row ``index`` of the listing loaded: placed if it is the next one the sheet wants."""
        if self.next >= len(self.targets) or index < self.targets[self.next]:
            return
        while self.next < len(self.targets) and self.targets[self.next] <= index:
            self.next += 1
        x = self.gap + self.in_band * (self.tw + self.gap)
        self.band[self.gap:, x:x + self.tw] = _as_rgb(row[::self.f, ::self.f], self.pix_fmt)
        self.keys.append(key)
        self.in_band += 1
        if self.in_band == self.cols:
            self._emit()

    def _emit(self) -> None:
        self.idat.append(self.z.compress(_sub_filtered(self.band)))
        self.band[...] = BACKGROUND
        self.in_band = 0
        self.bands += 1

    def png(self) -> bytes | None:
        """The finished sheet, or None if no row was placed."""
        if not self.keys:
            return None
        if self.in_band:
            self._emit()
        bottom = np.full((self.gap, self.width, 3), BACKGROUND, np.uint8)
        self.idat.append(self.z.compress(_sub_filtered(bottom)))
        self.idat.append(self.z.flush())
        height = self.bands * (self.gap + self.th) + self.gap
        return _png_file(self.width, height, b"".join(self.idat))
