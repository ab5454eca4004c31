"""The hostile-input corpus of tests/test_hostile.py, made here, byte by byte.

Nothing is downloaded: valid images come from Pillow (and PyAV for the tiny
videos, when installed), everything else is written by hand below: bombs whose
headers claim huge sizes, progressive JPEGs with hundreds of scans, corrupt
Huffman tables and zlib streams, truncated and bit-flipped files, playlists,
concat scripts and SDP text that point at local files and at a loopback
server, archives, text and random bytes.

``build_corpus(root, port)`` returns the list of :class:`Case`; each says what
loading it must do. ``fuzz/make_seeds.py`` uses the image makers of this module
for the fuzzer's seed corpus.
"""

from __future__ import annotations

import bz2
import dataclasses
import functools
import gzip
import io
import lzma
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

# What loading a case must do.
OK = "ok"          # loads, one image
FAIL = "fail"      # raises one of Case.errors
EITHER = "either"  # loads, or raises one of Case.errors (damage that may or may not show)


@dataclasses.dataclass
class Case:
    name: str
    data: bytes
    expect: str                       # OK, FAIL or EITHER
    errors: tuple[str, ...] = ()      # names of spdl.io exception classes that are acceptable
    filename: str | None = None       # name of the file for the path form (default: name + ".bin")
    note: str = ""
    max_seconds: float = 2.0          # generous bound on the load time of this case
    path_only: bool = False           # only meaningful as a file (odd names)

    @property
    def file_name(self) -> str:
        return self.filename or (self.name + ".bin")


# Exception names (resolved against spdl.io by the tests).
BAD_DATA = ("UnsupportedFormatError", "DecodeError")
TOO_LARGE = ("ImageTooLargeError",)
REFUSED = ("UnsupportedFormatError",)


# ---------------------------------------------------------------------------
# Valid images (Pillow)
# ---------------------------------------------------------------------------


def synth(w: int, h: int, seed: int = 0) -> np.ndarray:
    """Smooth content with a few hard edges, (h, w, 3) uint8."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([40 + 180 * x / max(w - 1, 1), 30 + 190 * y / max(h - 1, 1),
                    200 - 100 * (x + y) / max(w + h - 2, 1)], axis=-1)
    for _ in range(3):
        x0, y0 = rng.randint(0, w), rng.randint(0, h)
        img[y0:y0 + max(1, h // 4), x0:x0 + max(1, w // 4)] = rng.randint(0, 256, size=3)
    img += rng.normal(0, 4, size=img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def encode(arr: np.ndarray, fmt: str, **kw) -> bytes:
    from PIL import Image

    bio = io.BytesIO()
    im = Image.fromarray(arr)
    if fmt == "GIF":
        im = im.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    im.save(bio, format=fmt, **kw)
    return bio.getvalue()


@functools.lru_cache(maxsize=None)
def valid_images(w: int = 64, h: int = 48, seed: int = 1) -> dict[str, bytes]:
    """One small valid file per format the library recognises by signature."""
    a = synth(w, h, seed)
    return {
        "jpeg": encode(a, "JPEG", quality=90),
        "jpeg_progressive": encode(a, "JPEG", quality=90, progressive=True),
        "jpeg_cmyk": _cmyk_jpeg(a),
        "png": encode(a, "PNG"),
        "png_rgba16": png_image(w, h, bit_depth=16, color_type=6,
                                raw=np.full((h, w, 4), 0x1234, ">u2").tobytes(), filter_byte=True),
        "webp_lossy": encode(a, "WEBP", quality=80),
        "webp_lossless": encode(a, "WEBP", lossless=True),
        "gif": encode(a, "GIF"),
        "tiff": encode(a, "TIFF"),
        "tiff_lzw": encode(a, "TIFF", compression="tiff_lzw"),
        "bmp": encode(a, "BMP"),
    }


def _cmyk_jpeg(a: np.ndarray) -> bytes:
    from PIL import Image

    bio = io.BytesIO()
    Image.fromarray(a).convert("CMYK").save(bio, format="JPEG", quality=90)
    return bio.getvalue()


# ---------------------------------------------------------------------------
# JPEG by hand
# ---------------------------------------------------------------------------


def _seg(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


SOI, EOI = b"\xff\xd8", b"\xff\xd9"
DQT = _seg(0xDB, b"\x00" + b"\x01" * 64)


def sof(w: int, h: int, ncomp: int = 1, progressive: bool = False) -> bytes:
    comps = b"".join(bytes([i + 1, 0x11, 0]) for i in range(ncomp))
    return _seg(0xC2 if progressive else 0xC0, struct.pack(">BHHB", 8, h, w, ncomp) + comps)


def dht(table_class: int, table_id: int, counts: list[int], symbols: list[int]) -> bytes:
    counts = list(counts) + [0] * (16 - len(counts))
    return _seg(0xC4, bytes([table_class << 4 | table_id]) + bytes(counts) + bytes(symbols))


def sos(ncomp: int = 1, ss: int = 0, se: int = 63, ah: int = 0, al: int = 0,
        comp_ids: list[int] | None = None) -> bytes:
    ids = comp_ids or list(range(1, ncomp + 1))
    body = bytes([len(ids)]) + b"".join(bytes([c, 0x00]) for c in ids)
    return _seg(0xDA, body + bytes([ss, se, ah << 4 | al]))


class BitWriter:
    def __init__(self):
        self.acc = 0
        self.n = 0
        self.out = bytearray()

    def put(self, value: int, nbits: int) -> None:
        for i in range(nbits - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> i) & 1)
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)  # byte stuffing
                self.acc = self.n = 0

    def flush(self) -> bytes:
        if self.n:
            self.put((1 << (8 - self.n)) - 1, 8 - self.n)  # pad with ones
        return bytes(self.out)


# One-symbol tables: code "0" (1 bit) for DC category 0 / AC EOB, and for EOB14.
DHT_DC0 = dht(0, 0, [1], [0x00])
DHT_AC_EOB = dht(1, 0, [1], [0x00])
DHT_AC_EOBRUN14 = dht(1, 0, [1], [0xE0])


def jpeg_claiming(w: int, h: int, blocks: int = 32, ncomp: int = 1, pad_to: int = 0) -> bytes:
    """A baseline JPEG whose header says w x h, with a scan for only `blocks` blocks.

    The scan is valid (every block is flat grey) but ends far too early: a
    decoder that trusts the header allocates w x h before it can notice.
    """
    bw = BitWriter()
    for _ in range(blocks):
        for _ in range(ncomp):
            bw.put(0, 1)  # DC diff category 0
            bw.put(0, 1)  # EOB
    body = SOI + DQT + sof(w, h, ncomp) + DHT_DC0 + DHT_AC_EOB + sos(ncomp) + bw.flush()
    if pad_to > len(body) + 2:
        com = b"x" * (pad_to - len(body) - 2 - 4)
        body = SOI + _seg(0xFE, com) + body[2:]
    return body + EOI


def jpeg_scan_bomb(w: int, h: int, scans: int, ncomp: int = 1) -> bytes:
    """A progressive JPEG of w x h with `scans` AC scans, each a few dozen bytes.

    Every scan covers the whole image with end-of-band runs of 32767 blocks, so
    the file stays tiny while a decoder walks every block of the image once per
    scan (and keeps a coefficient buffer of the whole image).
    """
    blocks = ((w + 7) // 8) * ((h + 7) // 8)
    runs = -(-blocks // 32767)
    bw = BitWriter()
    for _ in range(runs):
        bw.put(0, 1)               # symbol 0xE0: EOB run, 14 extra bits
        bw.put(0x3FFF, 14)         # run = 2^14 + 16383 = 32767 blocks
    scan = bw.flush()
    out = [SOI, DQT, sof(w, h, ncomp, progressive=True), DHT_AC_EOBRUN14]
    for i in range(scans):
        out += [sos(comp_ids=[1 + i % ncomp], ss=1, se=63), scan]
    out.append(EOI)
    return b"".join(out)


def jpeg_bad_huffman(kind: str) -> bytes:
    """A small baseline JPEG with a broken Huffman table."""
    if kind == "overfull":  # more codes of length 1 than fit
        table = dht(0, 0, [3], [0, 1, 2])
    elif kind == "too_many_symbols":  # counts add up to more than 256
        table = _seg(0xC4, bytes([0x00]) + bytes([0] * 7 + [255] * 2 + [0] * 7) + bytes(range(256)) * 2)
    elif kind == "short_segment":  # counts promise symbols the segment does not hold
        table = _seg(0xC4, bytes([0x00]) + bytes([0, 0, 40] + [0] * 13) + b"\x00\x01")
    elif kind == "missing":  # the scan refers to a table that was never defined
        return SOI + DQT + sof(16, 16) + DHT_AC_EOB + sos() + b"\x00" * 8 + EOI
    else:
        raise ValueError(kind)
    return SOI + DQT + sof(16, 16) + table + DHT_AC_EOB + sos() + b"\x00" * 8 + EOI


# ---------------------------------------------------------------------------
# PNG by hand
# ---------------------------------------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


PNG_SIG = b"\x89PNG\r\n\x1a\n"


def png_ihdr(w: int, h: int, bit_depth: int = 8, color_type: int = 2) -> bytes:
    return png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0))


def png_image(w: int, h: int, *, bit_depth: int = 8, color_type: int = 2, raw: bytes | None = None,
              idat: bytes | None = None, filter_byte: bool = False) -> bytes:
    """A PNG with the given IHDR; raw is the unfiltered image (filter bytes added if asked)."""
    if idat is None:
        if filter_byte:
            stride = len(raw) // h
            raw = b"".join(b"\x00" + raw[i * stride:(i + 1) * stride] for i in range(h))
        idat = zlib.compress(raw, 9)
    return PNG_SIG + png_ihdr(w, h, bit_depth, color_type) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


@functools.lru_cache(maxsize=16)
def zlib_zeros(n: int, chunk: int = 1 << 20) -> bytes:
    """zlib.compress(b"\\0" * n) without holding n bytes."""
    c = zlib.compressobj(9)
    block = b"\0" * min(chunk, n)
    out = []
    left = n
    while left > 0:
        k = min(left, len(block))
        out.append(c.compress(block[:k]))
        left -= k
    out.append(c.flush())
    return b"".join(out)


def png_claiming(w: int, h: int, rows: int = 4, bit_depth: int = 8, color_type: int = 2) -> bytes:
    """A PNG whose IHDR says w x h, with a small valid zlib stream of zeros for `rows` rows."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    row = 1 + w * channels * bit_depth // 8
    return png_image(w, h, bit_depth=bit_depth, color_type=color_type, idat=zlib_zeros(row * rows))


def png_zeros(w: int, h: int, bit_depth: int = 8, color_type: int = 2, extra: int = 0) -> bytes:
    """A complete w x h PNG of zeros (+ `extra` more zero bytes in the zlib stream)."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    row = 1 + w * channels * bit_depth // 8
    return png_image(w, h, bit_depth=bit_depth, color_type=color_type, idat=zlib_zeros(row * h + extra))


def png_bad_zlib(kind: str) -> bytes:
    w, h = 16, 16
    good = zlib.compress(b"\0" * (1 + 3 * w) * h)
    if kind == "bad_header":
        idat = b"\x78\x00" + good[2:]          # header checksum wrong
    elif kind == "bad_block_type":
        idat = b"\x78\x9c\x07" + good[3:]      # BTYPE 11 (reserved)
    elif kind == "garbage":
        idat = b"\x78\x9c" + bytes(np.random.RandomState(5).randint(0, 256, 200, dtype=np.uint8))
    elif kind == "bad_distance":                # a back-reference before the start of the window
        idat = b"\x78\x01" + bytes([0x63, 0x18, 0x05, 0xa3, 0x60, 0x14, 0x0c, 0x00]) * 4
    elif kind == "bad_adler":
        idat = good[:-4] + b"\xde\xad\xbe\xef"
    elif kind == "bad_crc":
        data = png_image(w, h, idat=good)
        i = data.index(b"IDAT") + 4 + len(good)
        return data[:i] + b"\0\0\0\0" + data[i + 4:]
    else:
        raise ValueError(kind)
    return png_image(w, h, idat=idat)


# ---------------------------------------------------------------------------
# GIF, WebP, TIFF, BMP headers
# ---------------------------------------------------------------------------


def gif_claiming(screen_w: int, screen_h: int, img_w: int = 1, img_h: int = 1) -> bytes:
    """A GIF whose logical screen is screen_w x screen_h, with one tiny image."""
    head = b"GIF89a" + struct.pack("<HHBBB", screen_w, screen_h, 0x80, 0, 0)  # 2-colour table
    palette = b"\x00\x00\x00\xff\xff\xff"
    desc = b"\x2c" + struct.pack("<HHHHB", 0, 0, img_w, img_h, 0)
    lzw = bytes([2, 2, 0x44, 0x01, 0])  # min code size 2, one sub-block: clear, 0, end
    return head + palette + desc + lzw + b"\x3b"


def webp_vp8l_claiming(w: int, h: int) -> bytes:
    """A lossless WebP whose header says w x h (at most 16384 each), with no image data."""
    bits = (w - 1) | ((h - 1) << 14)
    vp8l = b"\x2f" + struct.pack("<I", bits) + b"\x00" * 9
    chunk = b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l  # even length: no pad byte
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def webp_vp8x_claiming(w: int, h: int) -> bytes:
    """An extended WebP whose canvas is w x h (up to 2^24 each) followed by a 1x1 image."""
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (w - 1).to_bytes(3, "little") \
        + (h - 1).to_bytes(3, "little")
    inner = webp_vp8l_claiming(1, 1)[12:]
    body = b"WEBP" + vp8x + inner
    return b"RIFF" + struct.pack("<I", len(body)) + body


def tiff_claiming(w: int, h: int, strip: bytes = b"\0" * 16) -> bytes:
    """A little-endian RGB TIFF whose IFD says w x h, with one short uncompressed strip."""
    entries = [
        (256, 4, 1, w),            # ImageWidth
        (257, 4, 1, h),            # ImageLength
        (258, 3, 1, 8),            # BitsPerSample
        (259, 3, 1, 1),            # Compression: none
        (262, 3, 1, 1),            # Photometric: BlackIsZero
        (273, 4, 1, 0),            # StripOffsets (patched below)
        (277, 3, 1, 1),            # SamplesPerPixel
        (278, 4, 1, h),            # RowsPerStrip
        (279, 4, 1, len(strip)),   # StripByteCounts
    ]
    ifd_off = 8
    ifd_size = 2 + 12 * len(entries) + 4
    data_off = ifd_off + ifd_size
    out = bytearray(b"II*\0" + struct.pack("<I", ifd_off) + struct.pack("<H", len(entries)))
    for tag, typ, count, value in entries:
        if tag == 273:
            value = data_off
        if typ == 3:
            out += struct.pack("<HHIHH", tag, typ, count, value, 0)
        else:
            out += struct.pack("<HHII", tag, typ, count, value)
    out += b"\0\0\0\0"
    return bytes(out) + strip


def bmp_claiming(w: int, h: int, pixel_bytes: int = 64) -> bytes:
    """A 24-bit BMP whose header says w x h, with only pixel_bytes bytes of pixels."""
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 2835, 2835, 0, 0)
    off = 14 + len(info)
    return b"BM" + struct.pack("<IHHI", off + pixel_bytes, 0, 0, off) + info + b"\0" * pixel_bytes


# ---------------------------------------------------------------------------
# Text that asks a demuxer to open other things
# ---------------------------------------------------------------------------


def hls_playlist(targets: list[str]) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:10", "#EXT-X-MEDIA-SEQUENCE:0"]
    for t in targets:
        lines += ["#EXTINF:10.0,", t]
    lines.append("#EXT-X-ENDLIST")
    return ("\n".join(lines) + "\n").encode()


def hls_master(url: str) -> bytes:
    return (f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000,RESOLUTION=8x8\n{url}\n").encode()


def ffconcat(targets: list[str]) -> bytes:
    return ("ffconcat version 1.0\n" + "".join(f"file '{t}'\n" for t in targets)).encode()


def sdp(port: int) -> bytes:
    return (
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=spdl\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=video {port} RTP/AVP 26\r\na=rtpmap:26 JPEG/90000\r\n"
    ).encode()


def dash_mpd(url: str) -> bytes:
    return (
        '<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" '
        'mediaPresentationDuration="PT1S" minBufferTime="PT1S" '
        'profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">\n'
        f'<Period><AdaptationSet mimeType="video/mp4"><Representation id="1" bandwidth="1000">'
        f'<BaseURL>{url}</BaseURL></Representation></AdaptationSet></Period></MPD>\n'
    ).encode()


def image2_pattern_text() -> bytes:
    return b"%d.jpg\n%03d.png\nimg-%d.jpg\n"


# ---------------------------------------------------------------------------
# Videos, archives, other non-images
# ---------------------------------------------------------------------------


def y4m_video(w: int = 16, h: int = 16, frames: int = 3) -> bytes:
    head = f"YUV4MPEG2 W{w} H{h} F25:1 Ip A1:1 C420jpeg\n".encode()
    frame = b"FRAME\n" + b"\x80" * (w * h * 3 // 2)
    return head + frame * frames


@functools.lru_cache(maxsize=None)
def av_video(container: str, codec: str, w: int = 32, h: int = 32, frames: int = 3) -> bytes | None:
    """A tiny video made by PyAV, or None when PyAV (or the encoder) is missing."""
    try:
        import av
    except ImportError:
        return None
    bio = io.BytesIO()
    try:
        with av.open(bio, "w", format=container) as out:
            st = out.add_stream(codec, rate=10)
            st.width, st.height = w, h
            st.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
            for i in range(frames):
                img = synth(w, h, seed=i)
                f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format=st.pix_fmt)
                for p in st.encode(f):
                    out.mux(p)
            for p in st.encode():
                out.mux(p)
    except Exception:
        return None
    return bio.getvalue()


def archives(payload: bytes) -> dict[str, bytes]:
    zb = io.BytesIO()
    with zipfile.ZipFile(zb, "w") as z:
        z.writestr("image.jpg", payload)
    tb = io.BytesIO()
    with tarfile.open(fileobj=tb, mode="w") as t:
        info = tarfile.TarInfo("image.jpg")
        info.size = len(payload)
        t.addfile(info, io.BytesIO(payload))
    return {
        "zip": zb.getvalue(),
        "tar": tb.getvalue(),
        "gzip": gzip.compress(payload, mtime=0),
        "bzip2": bz2.compress(payload),
        "xz": lzma.compress(payload),
    }


def flip_bits(data: bytes, seed: int, nflips: int, start: int = 0) -> bytes:
    rng = np.random.RandomState(seed)
    b = bytearray(data)
    for _ in range(nflips):
        i = rng.randint(start, len(b))
        b[i] ^= 1 << rng.randint(0, 8)
    return bytes(b)


# ---------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------


def build_corpus(root: Path, port: int) -> list[Case]:
    """Every case; `root` holds the local files the playlists point at, `port` the loopback server."""
    root = Path(root)
    imgs = valid_images()
    local_jpg = root / "local_target.jpg"
    local_jpg.write_bytes(imgs["jpeg"])
    url = f"http://127.0.0.1:{port}/x"
    targets = ["/etc/passwd", str(local_jpg), f"file:{local_jpg}", url + ".ts", f"tcp://127.0.0.1:{port}",
               f"data:image/jpeg;base64,{__import__('base64').b64encode(imgs['jpeg']).decode()}"]
    cases: list[Case] = []
    add = cases.append

    # -- valid images: the control group
    for name, data in imgs.items():
        add(Case(f"valid_{name}", data, OK, note="a valid image"))
    vids = {}

    # -- empty, short, random, text
    add(Case("empty", b"", FAIL, BAD_DATA))
    for i, d in enumerate([b"\0", b"\xff", b"\xff\xd8", b"\xff\xd8\xff", b"\xff\xd8\xff\xe0", PNG_SIG,
                           PNG_SIG + b"\0\0\0\rIHDR", b"GIF89a", b"GIF87a\x01\x00", b"RIFF\0\0\0\0WEBPVP8 ",
                           b"RIFF\xff\xff\xff\xffWEBPVP8L", b"II*\0", b"MM\0*\0\0\0\x08", b"BM",
                           b"BM" + b"\0" * 12 + b"\x28\0\0\0"]):
        add(Case(f"short_{i}", d, FAIL, BAD_DATA, note=f"{d[:12]!r}"))
    for seed, n in enumerate([1, 7, 100, 1000, 10000, 100000]):
        add(Case(f"random_{n}", np.random.RandomState(seed).randint(0, 256, n, dtype=np.uint8).tobytes(),
                 FAIL, BAD_DATA))
    add(Case("zeros_4k", b"\0" * 4096, FAIL, BAD_DATA))
    add(Case("ff_4k", b"\xff" * 4096, FAIL, BAD_DATA))
    add(Case("text", b"hello, I am not an image\n" * 40, FAIL, BAD_DATA, filename="text.txt"))
    add(Case("html", b"<!DOCTYPE html><html><body><img src='/etc/passwd'></body></html>\n",
             FAIL, BAD_DATA, filename="page.html"))
    add(Case("svg", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="8" height="8">'
             b'<image href="file:///etc/passwd"/></svg>', FAIL, BAD_DATA, filename="x.svg"))
    add(Case("pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", FAIL, BAD_DATA))
    add(Case("json", b'{"url": "http://127.0.0.1/"}', FAIL, BAD_DATA))
    add(Case("image2_pattern_text", image2_pattern_text(), FAIL, BAD_DATA, filename="pattern.txt"))
    for name, data in archives(imgs["jpeg"]).items():
        add(Case(f"archive_{name}", data, FAIL, BAD_DATA, filename=f"a.{name}"))

    # -- playlists, concat scripts, SDP, DASH: refused, nothing opened
    add(Case("hls_local", hls_playlist(targets), FAIL, REFUSED, filename="list.m3u8",
             note="HLS playlist pointing at /etc/passwd, a local JPEG, file:, http://, tcp://, data:"))
    add(Case("hls_master_http", hls_master(url + ".m3u8"), FAIL, REFUSED, filename="master.m3u8"))
    add(Case("hls_passwd_only", hls_playlist(["/etc/passwd"]), FAIL, REFUSED, filename="p.m3u8"))
    add(Case("ffconcat_local", ffconcat(targets[:4]), FAIL, REFUSED, filename="list.ffconcat"))
    add(Case("ffconcat_jpeg_name", ffconcat([str(local_jpg)]), FAIL, REFUSED, filename="concat.jpg",
             note="a concat script saved under a .jpg name"))
    add(Case("sdp", sdp(port), FAIL, REFUSED, filename="x.sdp"))
    add(Case("dash_mpd", dash_mpd(url + ".mp4"), FAIL, REFUSED, filename="x.mpd"))

    # -- videos
    add(Case("video_y4m", y4m_video(), FAIL, REFUSED, filename="v.y4m"))
    for name, container, codec in (("mp4_mpeg4", "mp4", "mpeg4"), ("avi_mjpeg", "avi", "mjpeg"),
                                   ("mkv_mpeg4", "matroska", "mpeg4"), ("mpegts_mpeg2", "mpegts", "mpeg2video")):
        data = av_video(container, codec)
        if data is not None:
            vids[name] = data
            add(Case(f"video_{name}", data, FAIL, REFUSED, filename=f"v.{container}"))

    # -- bombs: headers claiming huge sizes, tiny data
    add(Case("bomb_jpeg_16000", jpeg_claiming(16000, 16000, pad_to=640), FAIL, TOO_LARGE,
             note="640-byte JPEG claiming 16000x16000"))
    add(Case("bomb_jpeg_65500_rgb", jpeg_claiming(65500, 65500, ncomp=3), FAIL, TOO_LARGE))
    # over max_pixels (100 MP) but within FFmpeg's own sanity limit: max_pixels must be what refuses them
    add(Case("bomb_png_12000", png_claiming(12000, 12000), FAIL, TOO_LARGE,
             note="PNG IHDR 12000x12000, valid zlib stream of zeros"))
    add(Case("bomb_png16_rgba_12000", png_claiming(12000, 12000, bit_depth=16, color_type=6), FAIL, TOO_LARGE))
    add(Case("bomb_gif_12000", gif_claiming(12000, 12000), FAIL, TOO_LARGE))
    add(Case("bomb_webp_12000", webp_vp8l_claiming(12000, 12000), FAIL, TOO_LARGE))
    add(Case("bomb_tiff_12000", tiff_claiming(12000, 12000), FAIL, TOO_LARGE))
    add(Case("bomb_bmp_12000", bmp_claiming(12000, 12000), FAIL, TOO_LARGE))
    # far over: FFmpeg's own size check may speak first (a DecodeError naming the size)
    add(Case("bomb_png_20000", png_claiming(20000, 20000), FAIL, TOO_LARGE + BAD_DATA,
             note="PNG IHDR 20000x20000, valid zlib stream of zeros"))
    add(Case("bomb_png_max", png_claiming(0x7FFFFFFF, 0x7FFFFFFF, rows=0), FAIL, TOO_LARGE + BAD_DATA))
    add(Case("bomb_gif_65535", gif_claiming(65535, 65535), FAIL, TOO_LARGE + BAD_DATA,
             note="GIF logical screen 65535x65535"))
    add(Case("bomb_gif_image_65535", gif_claiming(65535, 65535, 65535, 65535), FAIL, TOO_LARGE + BAD_DATA))
    add(Case("bomb_webp_16384", webp_vp8l_claiming(16384, 16384), FAIL, TOO_LARGE + BAD_DATA))
    add(Case("bomb_webp_vp8x_canvas", webp_vp8x_claiming(1 << 24, 1 << 24), FAIL, TOO_LARGE + BAD_DATA))
    add(Case("bomb_tiff_60000", tiff_claiming(60000, 60000), FAIL, TOO_LARGE + BAD_DATA))
    add(Case("bomb_bmp_30000", bmp_claiming(30000, 30000), FAIL, TOO_LARGE + BAD_DATA))
    # Under the default limit but large: must fail (data missing) or load, quickly
    add(Case("jpeg_claiming_9000", jpeg_claiming(9000, 9000), FAIL, TOO_LARGE + BAD_DATA, max_seconds=5.0,
             note="81 MP (over the 50 MP default), scan truncated"))
    add(Case("jpeg_claiming_7000", jpeg_claiming(7000, 7000), FAIL, BAD_DATA, max_seconds=5.0,
             note="49 MP under the limit, scan truncated"))
    add(Case("jpeg_scan_bomb_600", jpeg_scan_bomb(256, 256, 600), FAIL, BAD_DATA,
             note="progressive JPEG with 600 scans: more than the 500 allowed"))
    add(Case("jpeg_scan_bomb_5000", jpeg_scan_bomb(64, 64, 5000), FAIL, BAD_DATA,
             note="progressive JPEG with 5000 scans"))
    add(Case("png_zlib_bomb_small_image", png_zeros(256, 256, extra=200 << 20), EITHER, BAD_DATA,
             note="256x256 PNG whose zlib stream inflates to 200 MB", max_seconds=5.0))

    # -- corrupt Huffman tables, zlib streams
    for kind in ("overfull", "too_many_symbols", "short_segment"):
        add(Case(f"jpeg_huffman_{kind}", jpeg_bad_huffman(kind), FAIL, BAD_DATA))
    # no DHT at all: libjpeg-turbo falls back on the standard tables (Motion-JPEG frames omit them)
    add(Case("jpeg_huffman_missing", jpeg_bad_huffman("missing"), EITHER, BAD_DATA))

    # -- no image at all behind a valid header: an error for that input, never an empty or stale frame
    add(Case("jpeg_sof_no_scan", SOI + DQT + sof(64, 64, 3) + EOI, FAIL, BAD_DATA,
             note="SOF then EOI: a header and no scan"))
    add(Case("jpeg_soi_eoi", SOI + EOI, FAIL, BAD_DATA))
    add(Case("gif_no_frame", gif_claiming(8, 8)[:19] + b"\x3b", FAIL, BAD_DATA,
             note="screen descriptor and trailer, no image: decodes to no frame"))
    add(Case("png_no_idat", PNG_SIG + png_ihdr(8, 8) + png_chunk(b"IEND", b""), FAIL, BAD_DATA))
    for kind in ("bad_header", "bad_block_type", "garbage", "bad_distance"):
        add(Case(f"png_zlib_{kind}", png_bad_zlib(kind), FAIL, BAD_DATA))
    for kind in ("bad_adler", "bad_crc"):  # the pixels are all there: decoders may not check these
        add(Case(f"png_zlib_{kind}", png_bad_zlib(kind), EITHER, BAD_DATA))

    # -- truncated: pixel data missing
    for name in ("jpeg", "jpeg_progressive", "jpeg_cmyk", "png", "webp_lossy", "webp_lossless", "gif",
                 "tiff", "tiff_lzw", "bmp"):
        data = imgs[name]
        for frac in (0.1, 0.5, 0.8):
            add(Case(f"trunc_{name}_{int(frac * 100)}", data[: int(len(data) * frac)], FAIL, BAD_DATA))
    add(Case("trunc_jpeg_no_eoi", imgs["jpeg"][:-2], OK,
             note="the last 2 bytes (EOI) cut: the scans are complete, it loads (issue 12)"))
    for k in (3, 4, 12):
        add(Case(f"trunc_jpeg_no_eoi_minus_{k}", imgs["jpeg"][:-k], FAIL, BAD_DATA,
                 note="the EOI and the end of the last scan's data cut"))
    add(Case("trunc_jpeg_progressive_at_scan", imgs["jpeg_progressive"][
        :imgs["jpeg_progressive"].rindex(b"\xff\xda")], FAIL, BAD_DATA,
        note="cut before the last scan: every scan there is whole, the image is not"))

    # -- bit flips: any outcome but a crash, a hang or an untyped error
    for name in ("jpeg", "jpeg_progressive", "png", "webp_lossy", "webp_lossless", "gif", "tiff", "bmp"):
        data = imgs[name]
        for seed in range(6):
            nflips = 1 + seed * 3
            add(Case(f"flip_{name}_{seed}", flip_bits(data, seed * 101 + len(name), nflips, start=8),
                     EITHER, BAD_DATA + TOO_LARGE + ("AllocationError",)))

    for c in cases:  # default time bound: inputs are < 1 MB, except the zlib bomb
        c.max_seconds = max(c.max_seconds, 2.0)
    return cases


#: Real file names that must load as plain files (relative to the current directory).
ODD_NAMES = [
    "a:b.jpg", "pct_%d.jpg", "pct_%03d.jpg", "file:x.jpg", "concat:x.jpg", "pipe:0", "subfile,,start,0,end,9,,:x.jpg",
    "http:x.jpg", "data:x.jpg", "crypto:x.jpg", "async:x.jpg", "cache:x.jpg", "unix:x.jpg", "tcp:x.jpg",
    "-", "name with spaces.jpg", "ünïcödé.jpg", "semi;colon|pipe.jpg", "star*?.jpg", "%s%s%s%n.jpg",
    "'quote\".jpg", "new\nline.jpg", "x.m3u8", "x.sdp", "x.ffconcat",
]

#: Source strings that name no existing file: each is a missing file (SourceError), nothing else.
PROTOCOL_STRINGS = [
    "concat:/etc/passwd|/etc/hostname", "subfile,,start,0,end,100,,:/etc/passwd", "file:/etc/passwd",
    "pipe:0", "pipe:", "fd:0", "http://127.0.0.1:{port}/x.jpg", "tcp://127.0.0.1:{port}", "udp://127.0.0.1:{port}",
    "data:image/jpeg;base64,/9j/", "cache:/etc/passwd", "async:/etc/passwd", "crypto:/etc/passwd",
    "img_%d.jpg", "img_%03d.png", "/nonexistent/dir/x.jpg",
]


# ---------------------------------------------------------------------------
# The child process of the strace / memory tests
# ---------------------------------------------------------------------------
#
#   python hostile_corpus.py SPEC.json
#
# SPEC: {"warmup": [path...], "cases": [{"path": str} | {"hex": str}, + optional
#        "width", "demux_config", "decode_config"}]}
# Loads each case alone with load_image_batch(strict=False), between two
# marker stat() calls that the strace parser looks for, and prints one JSON
# line per case: outcome, exception class, message, seconds, and the peak RSS
# (VmHWM, reset before each case through /proc/self/clear_refs).

MARK = "/__spdl_hostile_mark__/"


def _vm(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return -1


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child_main(spec_path: str) -> None:
    import json
    import os
    import sys
    import time

    import spdl.io

    spec = json.loads(Path(spec_path).read_text())
    for src in spec.get("warmup", []):  # every lazy initialisation happens before the first marker
        for s in (src, Path(src).read_bytes(), b"junk" * 8, b"#EXTM3U\n#EXTINF:1,\nx\n"):
            try:
                spdl.io.load_image_batch([s], width=8, height=8, strict=False)
            except Exception:
                pass

    def mark(tag: str) -> None:
        try:
            os.stat(MARK + tag)
        except OSError:
            pass

    for i, c in enumerate(spec["cases"]):
        src = bytes.fromhex(c["hex"]) if "hex" in c else c["path"]
        kw = {}
        if c.get("demux_config"):
            kw["demux_config"] = spdl.io.DemuxConfig(**c["demux_config"])
        if c.get("decode_config"):
            kw["decode_config"] = spdl.io.DecodeConfig(**c["decode_config"])
        width = c.get("width", 32)
        can_reset = _reset_peak()
        base = _vm("VmHWM")
        mark(f"begin/{i}")
        t0 = time.perf_counter()
        res: dict = {}
        try:
            buf = spdl.io.load_image_batch([src], width=width, height=width, strict=False, **kw)
            if buf.errors:
                e = buf.errors[0]
                res.update(ok=False, cls=type(e).__name__, msg=str(e), errno=getattr(e, "errno", None),
                           builtins=[b.__name__ for b in (OSError, ValueError, MemoryError) if isinstance(e, b)])
            else:
                res.update(ok=True, shape=list(spdl.io.to_numpy(buf).shape))
        except BaseException as e:  # noqa: BLE001 - reported, the parent decides
            res.update(ok=False, cls=type(e).__name__, msg=str(e), raised=True)
        res["seconds"] = time.perf_counter() - t0
        mark(f"end/{i}")
        res["peak"] = _vm("VmHWM") if can_reset else -1
        res["base"] = base
        sys.stdout.write(json.dumps(res) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    import sys

    child_main(sys.argv[1])
