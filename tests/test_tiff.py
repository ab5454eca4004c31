"""TIFF through libtiff (issue 12): every layout FFmpeg 5.1's decoder got wrong, compared
with Pillow's decode (libtiff too) or with the samples we wrote.

Inputs are made here: Pillow for the colour types (RGB, RGBA, L, LA, palette, CMYK,
1-bit, 16-bit grey, float), libtiff's tiffcp for layouts and compressions (tiles,
strips, LZW/Deflate/PackBits/JPEG/CCITT, FillOrder 2, planar), the ffmpeg CLI for
16-bit RGB(A) and YCbCr, and small writers of our own for what none of them writes
(1/2/4-bit grey, MinIsWhite, associated alpha, 16-bit planar tiles, signed and 12-bit
samples, old-style JPEG, hostile headers). A test that
needs a missing CLI tool skips with the reason.

Tolerances: lossless layouts are exact; JPEG-compressed ones are compared with Pillow
(the same libjpeg does the work: mean abs diff <= 1, max <= 12) and with the source
image (mean abs diff < 8: not black, green or white).
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

import spdl.io
from _util import np_batch, smooth_rgb

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hostile_corpus as hc  # noqa: E402

W, H = 48, 40


def _tool(name):
    if shutil.which(name) is None:
        pytest.skip(f"no {name} CLI (libtiff-tools / ffmpeg) to make this TIFF")


def _tiffcp(src, dst, *args):
    _tool("tiffcp")
    subprocess.run(["tiffcp", *args, str(src), str(dst)], check=True, capture_output=True)
    return dst


def _ffmpeg_raw(dst, raw: np.ndarray, in_fmt, out_fmt):
    _tool("ffmpeg")
    h, w = raw.shape[:2]
    src = dst.with_suffix(".raw")
    src.write_bytes(raw.astype("<u2" if raw.dtype == np.uint16 else "u1").tobytes())
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", in_fmt,
                    "-s", f"{w}x{h}", "-i", str(src), "-pix_fmt", out_fmt, str(dst)], check=True)
    return dst


def _load(path, **kw):
    """The image from its path and from its bytes (asserted equal)."""
    kw.setdefault("width", None)
    kw.setdefault("height", None)
    out = np_batch(spdl.io.load_image_batch([str(path), Path(path).read_bytes()], **kw))
    np.testing.assert_array_equal(out[0], out[1])
    return out[0]


def _decoded_fmt(path):
    return spdl.io.decode_packets(spdl.io.demux_image(str(path))).pix_fmt


def _decode(data, **kw):
    return spdl.io.decode_packets(spdl.io.demux_image(data), **kw)


def _pillow(path, mode):
    with Image.open(path) as im:
        return np.asarray(im.convert(mode))


def _tiff(w, h, strip, *, bps=8, spp=1, photometric=1, compression=1, extra=(),
          sample_format=None, tile=None, next_ifd=0, rows=None):
    """A little-endian TIFF, IFD first, then the data: one strip (or tile), or a list of
    strips, one per plane (planar). What Pillow and tiffcp do not write (odd depths and
    sample formats, 16-bit planar, hostile headers)."""
    planes = strip if isinstance(strip, list) else [strip]
    strip = b"".join(planes)
    entries = [(256, 4, [w]), (257, 4, [h]), (258, 3, [bps] * spp), (259, 3, [compression]),
               (262, 3, [photometric]), (277, 3, [spp]), (284, 3, [2 if len(planes) > 1 else 1])]
    offsets = list(np.cumsum([0] + [len(p) for p in planes[:-1]]))
    if tile is None:
        entries += [(273, 4, offsets), (278, 4, [rows or h]), (279, 4, [len(p) for p in planes])]
    else:
        entries += [(322, 4, [tile[0]]), (323, 4, [tile[1]]), (324, 4, offsets),
                    (325, 4, [len(p) for p in planes])]
    if extra:
        entries.append((338, 3, list(extra)))
    if sample_format is not None:
        entries.append((339, 3, [sample_format] * spp))
    entries.sort()
    ifd_size = 2 + 12 * len(entries) + 4
    blob_len = sum((2 if typ == 3 else 4) * len(v) for _, typ, v in entries
                   if (2 if typ == 3 else 4) * len(v) > 4)
    data_off = 8 + ifd_size + blob_len
    blobs = bytearray()
    packed = []
    for tag, typ, vals in entries:
        if tag in (273, 324):
            vals = [data_off + int(o) for o in vals]
        raw = b"".join(struct.pack("<H" if typ == 3 else "<I", v) for v in vals)
        packed.append((tag, typ, len(vals), raw))
        if len(raw) > 4:
            blobs += raw
    out = bytearray(b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", len(entries)))
    blob_at = 8 + ifd_size
    for tag, typ, count, raw in packed:
        if len(raw) > 4:
            out += struct.pack("<HHII", tag, typ, count, blob_at)
            blob_at += len(raw)
        else:
            out += struct.pack("<HHI", tag, typ, count) + raw.ljust(4, b"\0")
    out += struct.pack("<I", next_ifd) + blobs
    return bytes(out) + strip


def _pack_bits(a, bits):
    """Rows of bits-bit samples, most significant first, each row padded to a byte."""
    rows = []
    for r in a:
        v = 0
        n = 0
        row = bytearray()
        for s in r:
            v = (v << bits) | int(s)
            n += bits
            if n == 8:
                row.append(v)
                v = n = 0
        if n:
            row.append(v << (8 - n))
        rows.append(bytes(row))
    return b"".join(rows)


@pytest.fixture(scope="module")
def src():
    return smooth_rgb(W, H, seed=3)


def _pillow_file(tmp_path, src, mode):
    im = Image.fromarray(src)
    if mode == "RGBA" or mode == "LA":
        alpha = (np.arange(W * H).reshape(H, W) * 7 % 256).astype(np.uint8)
        im = Image.fromarray(np.dstack([src, alpha]), "RGBA")
        im = im.convert(mode)
    elif mode == "P" or mode == "PA":
        im = im.convert("P", palette=Image.ADAPTIVE, colors=64)
        if mode == "PA":
            im = im.convert("PA")
            im.putalpha(Image.fromarray((np.arange(W * H).reshape(H, W) * 5 % 256)
                                        .astype(np.uint8)))
    elif mode != "RGB":
        im = im.convert(mode)
    path = tmp_path / f"{mode}.tif"
    im.save(path)
    return path


# What each colour type decodes to (before any conversion), and how Pillow is asked.
MODES = {"RGB": ("rgb24", "RGB"), "RGBA": ("rgba", "RGBA"), "L": ("gray", "L"),
         "LA": ("ya8", "RGBA"), "P": ("rgb24", "RGB"), "PA": ("rgba", "RGBA"),
         "CMYK": ("rgb24", "RGB"),
         "1": ("gray", "L")}
LAYOUTS = {
    "strip": [], "tiled": ["-t", "-w", "16", "-l", "16"], "lzw": ["-c", "lzw"],
    "lzw_predictor": ["-c", "lzw:2"], "deflate": ["-c", "zip"], "packbits": ["-c", "packbits"],
    "fillorder2": ["-f", "lsb2msb"], "separate": ["-p", "separate"],
    "separate_tiled": ["-p", "separate", "-t", "-w", "16", "-l", "16"], "strips_of_5": ["-r", "5"],
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
def test_lossless_equal_to_pillow(tmp_path, src, mode, layout):
    """Every colour type in every lossless layout: exactly Pillow's pixels (of the file
    tiffcp copied, which Pillow reads in every case), in rgb24, in the mode's own channels
    (gray, rgba), and the format it decodes to."""
    if mode == "1" and layout in ("lzw_predictor", "separate", "separate_tiled"):
        pytest.skip("tiffcp has no predictor and no planar copy for 1-bit samples")
    ref = _pillow_file(tmp_path, src, mode)  # (Pillow cannot read every layout: its source)
    path = ref
    if LAYOUTS[layout]:
        path = _tiffcp(ref, tmp_path / f"{mode}_{layout}.tif", *LAYOUTS[layout])
    fmt, pil_mode = MODES[mode]
    assert _decoded_fmt(path) == fmt
    np.testing.assert_array_equal(_load(path, pix_fmt="rgb24"), _pillow(ref, "RGB"))
    if pil_mode == "RGBA":
        np.testing.assert_array_equal(_load(path, pix_fmt="rgba"), _pillow(ref, "RGBA"))
    if pil_mode == "L":
        np.testing.assert_array_equal(_load(path, pix_fmt="gray")[..., 0], _pillow(ref, "L"))


def test_ccitt_group3_and_4(tmp_path, src):
    """Fax compressions of 1-bit images (MinIsWhite, as fax writers store them)."""
    one = _pillow_file(tmp_path, src, "1")
    for args in (["-c", "g3"], ["-c", "g4"], ["-c", "g4", "-f", "lsb2msb"]):
        path = _tiffcp(one, tmp_path / f"fax_{'_'.join(args)}.tif", *args)
        np.testing.assert_array_equal(_load(path, pix_fmt="gray")[..., 0], _pillow(path, "L"))
    g4 = tmp_path / "pillow_g4.tif"
    Image.open(one).save(g4, compression="group4")
    np.testing.assert_array_equal(_load(g4, pix_fmt="rgb24"), _pillow(g4, "RGB"))


JPEG = {"ycbcr": ("RGB", ["-c", "jpeg"]), "rgb": ("RGB", ["-c", "jpeg:r"]),
        "ycbcr_tiled": ("RGB", ["-c", "jpeg", "-t", "-w", "16", "-l", "16"]),
        "ycbcr_q50_strips": ("RGB", ["-c", "jpeg:50", "-r", "16"]),
        "grey": ("L", ["-c", "jpeg"]), "cmyk": ("CMYK", ["-c", "jpeg"])}


@pytest.mark.parametrize("variant", JPEG)
def test_jpeg_compressed(tmp_path, src, variant):
    """JPEG inside TIFF (black, green or white from FFmpeg 5.1): within 1 mean / 12 max of
    Pillow, and near the source image."""
    mode, args = JPEG[variant]
    path = _tiffcp(_pillow_file(tmp_path, src, mode), tmp_path / f"jpeg_{variant}.tif", *args)
    out = _load(path, pix_fmt="rgb24").astype(int)
    ref = _pillow(path, "RGB").astype(int)
    d = np.abs(out - ref)
    assert d.mean() <= 1 and d.max() <= 12, (variant, d.mean(), d.max())
    orig = _pillow(_pillow_file(tmp_path, src, mode), "RGB").astype(int)
    assert np.abs(out - orig).mean() < 8, variant


def test_sixteen_bit_grey(tmp_path):
    """16-bit grey keeps its samples (gray16) and is full range in 8 bits: 0x1234 -> 18."""
    g = (np.arange(W * H).reshape(H, W) * 977 % 65536).astype(np.uint16)
    g[0, 0] = 0x1234
    path = tmp_path / "g16.tif"
    Image.fromarray(g).save(path)
    for p in (path, _tiffcp(path, tmp_path / "g16_tiled_zip.tif", "-t", "-c", "zip"),
              _tiffcp(path, tmp_path / "g16_lzw2.tif", "-c", "lzw:2")):
        assert _decoded_fmt(p) == "gray16le"
        np.testing.assert_array_equal(_load(p, pix_fmt="gray16")[..., 0], g)
        want = (g.astype(int) * 510 + 65535) // 131070
        np.testing.assert_array_equal(_load(p, pix_fmt="gray")[..., 0], want)
        assert _load(p, pix_fmt="rgb24")[0, 0].tolist() == [18, 18, 18]


@pytest.mark.parametrize("alpha", [False, True])
def test_sixteen_bit_rgb(tmp_path, alpha):
    """16-bit RGB(A) decodes to rgb48/rgba64 (the stored precision); in 8 bits each sample
    is round(v * 255 / 65535), contiguous and planar alike."""
    rng = np.random.default_rng(1)
    a = rng.integers(0, 65536, (H, W, 4 if alpha else 3), np.uint16)
    path = _ffmpeg_raw(tmp_path / "rgb16.tif", a, "rgba64le" if alpha else "rgb48le",
                       "rgba64le" if alpha else "rgb48le")
    want = (a.astype(int) * 510 + 65535) // 131070
    planar = tmp_path / "rgb16_planar.tif"  # (tiffcp copies to planar 8-bit samples only)
    planar.write_bytes(_tiff(W, H, [a[..., c].astype("<u2").tobytes() for c in range(a.shape[2])],
                             bps=16, spp=a.shape[2], photometric=2, extra=[2] if alpha else []))
    # one 64x48 tile a plane, the image in its corner (tiffcp's planar tiles of 16-bit
    # samples come out wrong in every libtiff reader, its own tiff2rgba too)
    tiles = [np.pad(a[..., c], ((0, 48 - H), (0, 64 - W))).astype("<u2").tobytes()
             for c in range(a.shape[2])]
    planar_tiled = tmp_path / "rgb16_planar_tiled.tif"
    planar_tiled.write_bytes(_tiff(W, H, tiles, bps=16, spp=a.shape[2], photometric=2,
                                   extra=[2] if alpha else [], tile=(64, 48)))
    for p in (path, planar, planar_tiled, _tiffcp(planar, tmp_path / "rgb16_zip.tif", "-c", "zip")):
        assert _decoded_fmt(p) == ("rgba64le" if alpha else "rgb48le")
        np.testing.assert_array_equal(_load(p, pix_fmt="rgb24"), want[..., :3])
        if alpha:
            np.testing.assert_array_equal(_load(p, pix_fmt="rgba"), want)


def test_associated_alpha_is_divided_out(tmp_path):
    """Premultiplied (associated) alpha comes out straight, as from every other format and
    Pillow: colour floor(v * 255 / a), clipped, 0 where alpha is 0; unassociated alpha as
    stored. 16-bit: floor(v * 65535 / a), then to 8 bits."""
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (H, W, 4), np.uint8)
    a[0, :3, 3] = [0, 255, 1]
    for extra in (1, 2):
        path = tmp_path / f"extra{extra}.tif"
        path.write_bytes(_tiff(W, H, a.tobytes(), spp=4, photometric=2, extra=[extra]))
        np.testing.assert_array_equal(_load(path, pix_fmt="rgba"), _pillow(path, "RGBA"))
        np.testing.assert_array_equal(_load(path, pix_fmt="rgb24"), _pillow(path, "RGB"))
    b = rng.integers(0, 65536, (H, W, 4), np.uint16)
    b[0, :3, 3] = [0, 65535, 1]
    path = tmp_path / "assoc16.tif"
    path.write_bytes(_tiff(W, H, b.astype("<u2").tobytes(), bps=16, spp=4, photometric=2,
                           extra=[1]))
    al = b[..., 3:].astype(np.int64)
    straight = np.where(al == 0, 0, np.minimum(b[..., :3].astype(np.int64) * 65535 // np.maximum(al, 1), 65535))
    want = (straight * 510 + 65535) // 131070
    np.testing.assert_array_equal(_load(path, pix_fmt="rgb24"), want)


@pytest.mark.parametrize("miniswhite", [False, True])
@pytest.mark.parametrize("bits", [1, 2, 4, 8, 16])
def test_grey_depths(tmp_path, bits, miniswhite):
    """1/2/4-bit grey scales to 0..255 exactly (v * 255 / max); MinIsWhite is inverted;
    FillOrder 2 (tiffcp -f lsb2msb) reads the same."""
    mx = (1 << bits) - 1
    a = (np.arange(W * H).reshape(H, W) * 7919 % (mx + 1)).astype(np.uint16)
    strip = (a.astype("<u2").tobytes() if bits == 16 else
             a.astype(np.uint8).tobytes() if bits == 8 else _pack_bits(a, bits))
    path = tmp_path / f"grey{bits}.tif"
    path.write_bytes(_tiff(W, H, strip, bps=bits, photometric=0 if miniswhite else 1))
    level = (mx - a if miniswhite else a).astype(int)
    want = (level * 510 + mx) // (2 * mx)
    for p in (path, _tiffcp(path, tmp_path / f"grey{bits}_lsb.tif", "-f", "lsb2msb", "-c", "lzw")):
        np.testing.assert_array_equal(_load(p, pix_fmt="gray")[..., 0], want)
    if bits == 16:
        np.testing.assert_array_equal(_load(path, pix_fmt="gray16")[..., 0], level)


def test_ycbcr_without_jpeg_through_libtiff_rgba(tmp_path, src):
    """Subsampled YCbCr of no JPEG (ffmpeg's TIFF encoder writes it): libtiff's RGBA
    reader, equal to Pillow (which uses it too)."""
    for pf in ("yuv420p", "yuv444p"):
        path = _ffmpeg_raw(tmp_path / f"{pf}.tif", src, "rgb24", pf)
        assert _decoded_fmt(path) == "rgba"
        np.testing.assert_array_equal(_load(path, pix_fmt="rgb24"), _pillow(path, "RGB"))


def _old_style_jpeg_tiff(jpg, w, h, sub):
    """An old-style JPEG TIFF (Compression 6) whose JPEGInterchangeFormat is a whole JFIF
    stream, the form libtiff's OJPEG reader takes best (no writer makes these any more)."""
    entries = [(256, 4, [w]), (257, 4, [h]), (258, 3, None), (259, 3, [6]), (262, 3, [6]),
               (273, 4, [-1]), (277, 3, [3]), (278, 4, [h]), (279, 4, [len(jpg)]),
               (513, 4, [-1]), (514, 4, [len(jpg)]), (530, 3, list(sub))]
    ifd_end = 8 + 2 + 12 * len(entries) + 4
    bits = struct.pack("<HHH", 8, 8, 8)
    at = ifd_end + len(bits)
    out = bytearray(b"II*\0" + struct.pack("<IH", 8, len(entries)))
    for tag, typ, vals in entries:
        if vals is None:  # BitsPerSample 8, 8, 8, after the IFD
            out += struct.pack("<HHII", tag, typ, 3, ifd_end)
            continue
        raw = b"".join(struct.pack("<H" if typ == 3 else "<I", at if v == -1 else v)
                       for v in vals)
        out += struct.pack("<HHI", tag, typ, len(vals)) + raw.ljust(4, b"\0")
    return bytes(out + struct.pack("<I", 0) + bits) + jpg


@pytest.mark.parametrize("subsampling", [0, 2])
def test_old_style_jpeg(tmp_path, src, subsampling):
    """Old-style JPEG (solid green from FFmpeg 5.1): libtiff's RGBA reader, equal to
    Pillow's (libtiff's too), and within 3 mean / 24 max of the JPEG decoded on its own
    (libtiff converts YCbCr and upsamples its own way)."""
    b = io.BytesIO()
    Image.fromarray(src).save(b, "JPEG", quality=95, subsampling=subsampling)
    path = tmp_path / "ojpeg.tif"
    path.write_bytes(_old_style_jpeg_tiff(b.getvalue(), W, H, (1, 1) if subsampling == 0
                                          else (2, 2)))
    assert _decoded_fmt(path) == "rgba"
    out = _load(path, pix_fmt="rgb24")
    np.testing.assert_array_equal(out, _pillow(path, "RGB"))
    d = np.abs(out.astype(int) - np.asarray(Image.open(b).convert("RGB")).astype(int))
    assert d.mean() <= 3 and d.max() <= 24, (d.mean(), d.max())


def test_cmyk_is_pillows_rgb(tmp_path):
    """Every CMYK corner and random inks: r = (255 - k) - round(c * (255 - k) / 255), as
    Pillow's convert("RGB")."""
    rng = np.random.default_rng(5)
    c = rng.integers(0, 256, (H, W, 4), np.uint8)
    c[0, :16] = [[x, y, z, k] for x in (0, 255) for y in (0, 255) for z in (0, 255)
                 for k in (0, 255)][:16]
    path = tmp_path / "cmyk.tif"
    Image.fromarray(c, "CMYK").save(path)
    for p in (path, _tiffcp(path, tmp_path / "cmyk_sep.tif", "-p", "separate", "-c", "zip")):
        np.testing.assert_array_equal(_load(p, pix_fmt="rgb24"), _pillow(p, "RGB"))


@pytest.mark.parametrize("what,bps,fmt,msg", [
    ("float", 32, 3, "TIFF with 32-bit float samples is not supported"),
    ("signed", 16, 2, "TIFF with 16-bit signed integer samples is not supported"),
    ("12-bit", 12, None, "TIFF with 12-bit samples is not supported"),
    ("32-bit", 32, None, "TIFF with 32-bit samples is not supported"),
])
def test_refused_variants_name_themselves(what, bps, fmt, msg):
    strip = bytes(W * H * bps // 8)
    with pytest.raises(spdl.io.UnsupportedFormatError, match=msg):
        _decode(_tiff(W, H, strip, bps=bps, sample_format=fmt))


def test_cie_lab_refused():
    """CIE L*a*b* (libtiff's RGBA reader would tint its white yellow): refused by name."""
    b = io.BytesIO()
    Image.new("LAB", (W, H), (255, 0, 0)).save(b, "TIFF")
    with pytest.raises(spdl.io.UnsupportedFormatError, match=r"CIE L\*a\*b\*"):
        _decode(b.getvalue())


def test_unknown_compression_refused():
    with pytest.raises(spdl.io.UnsupportedFormatError, match="scheme 12345"):
        _decode(_tiff(W, H, bytes(W * H), compression=12345))


def test_short_codec_output_is_black_not_old_memory(tmp_path, src):
    """A codec that runs short and only warns (libtiff's JBIG, given 8-bit RGB by tiffcp:
    "Only decoded 259 bytes"): the rest is black, the same on every decode, never what
    the buffer held before."""
    path = _tiffcp(_pillow_file(tmp_path, src, "RGB"), tmp_path / "jbig.tif", "-c", "jbig")
    first = _load(path, pix_fmt="rgb24")
    junk = [bytes([i]) * (W * H * 3 * 4) for i in range(1, 9)]  # heap full of non-zero
    del junk
    np.testing.assert_array_equal(_load(path, pix_fmt="rgb24"), first)
    assert (first[-4:] == 0).all()


def test_pillow_float_refused(tmp_path):
    path = tmp_path / "f.tif"
    Image.fromarray(np.zeros((H, W), np.float32)).save(path)
    with pytest.raises(spdl.io.UnsupportedFormatError, match="32-bit float"):
        _decode(str(path))


@pytest.mark.parametrize("orientation", [3, 5, 6, 8])
def test_oriented_tiled(tmp_path, src, orientation):
    """A tiled TIFF with an Orientation tag: the displayed image (Pillow's exif_transpose)
    by default, the stored one with apply_orientation=False."""
    path = tmp_path / "o.tif"
    Image.fromarray(src).save(path, tiffinfo={274: orientation})
    tiled = _tiffcp(path, tmp_path / "o_tiled.tif", "-t", "-w", "16", "-l", "16", "-c", "zip")
    with Image.open(tiled) as im:
        shown = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    np.testing.assert_array_equal(_load(tiled, pix_fmt="rgb24"), shown)
    np.testing.assert_array_equal(
        _load(tiled, pix_fmt="rgb24", decode_config=spdl.io.DecodeConfig(apply_orientation=False)),
        src)


@pytest.mark.parametrize("order", ["-L", "-B"])
@pytest.mark.parametrize("orientation", [1, 6])
def test_bigtiff(tmp_path, src, order, orientation):
    """BigTIFF (tiffcp -8; FFmpeg 5.1 does not read it): sniffed, decoded, and its first
    IFD's Orientation applied, in either byte order."""
    path = tmp_path / "o.tif"
    Image.fromarray(src).save(path, tiffinfo={274: orientation})
    big = _tiffcp(path, tmp_path / "big.tif", "-8", order, "-t", "-c", "zip")
    assert big.read_bytes()[:4] in (b"II+\0", b"MM\0+")
    with Image.open(path) as im:
        shown = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    np.testing.assert_array_equal(_load(big, pix_fmt="rgb24"), shown)


def test_bigtiff_orientation_reader_on_damaged_headers(tmp_path, src):
    """The BigTIFF Orientation reader on cut and mutated headers: an image or an spdl.io
    error, never a crash."""
    path = tmp_path / "o.tif"
    Image.fromarray(src).save(path, tiffinfo={274: 6})
    data = _tiffcp(path, tmp_path / "big.tif", "-8").read_bytes()
    rng = np.random.default_rng(2)
    cases = [data[:n] for n in range(8, 64)]
    for _ in range(200):
        d = bytearray(data)
        for j in rng.integers(4, min(len(d), 400), 4):
            d[j] = int(rng.integers(0, 256))
        cases.append(bytes(d))
    buf = spdl.io.load_image_batch(cases, width=8, height=8, strict=False)
    assert len(buf.indices) + len(buf.errors) == len(cases)
    assert all(isinstance(e, spdl.io.SpdlIOError) for e in buf.errors.values())


BIG = {"raw": [], "lzw": ["-c", "lzw", "-r", "1100"], "jpeg": ["-c", "jpeg", "-r", "1104"],
       "separate_zip": ["-p", "separate", "-c", "zip", "-r", "2000"]}


@pytest.mark.parametrize("layout", BIG)
def test_one_large_strip_read_by_rows(tmp_path, layout):
    """A strip over 4 MiB (one strip for the whole image, as many writers make) is read a
    row at a time: the same pixels as Pillow's."""
    big = smooth_rgb(1400, 1100, seed=8) if layout != "separate_zip" else smooth_rgb(
        2200, 2000, seed=8)
    path = tmp_path / "big.tif"
    Image.fromarray(big).save(path)
    if BIG[layout]:
        path = _tiffcp(path, tmp_path / f"big_{layout}.tif", *BIG[layout])
    with Image.open(path) as im:  # the strip (a plane's, when separate) is over 4 MiB
        per_row = big.shape[1] * (1 if im.tag_v2.get(284) == 2 else 3)
        assert min(im.tag_v2[278], big.shape[0]) * per_row > 4 << 20
    out = _load(path, pix_fmt="rgb24").astype(int)
    d = np.abs(out - _pillow(path, "RGB").astype(int))
    assert d.max() <= (12 if layout == "jpeg" else 0) and d.mean() <= 1, (d.mean(), d.max())


def test_one_large_strip_cut_or_damaged():
    """The row-at-a-time reading of a large strip fails like the strip reading: cut or
    damaged data is a DecodeError."""
    big = smooth_rgb(1400, 1100, seed=8)
    for data in (_tiff(1400, 1100, big.tobytes(), spp=3, photometric=2), _deflate_tiff(big)):
        with pytest.raises(spdl.io.DecodeError):
            _decode(data[:len(data) // 2])
    with pytest.raises(spdl.io.DecodeError, match="ZIPDecode"):
        _decode(_corrupt_deflate_tiff(big))


def test_resized_like_the_same_pixels_in_png(tmp_path, src):
    """Resizing a tiled TIFF gives what resizing the same pixels from a PNG gives."""
    tiled = _tiffcp(_pillow_file(tmp_path, src, "RGB"), tmp_path / "t.tif", "-t", "-c", "lzw")
    png = tmp_path / "t.png"
    Image.fromarray(src).save(png)
    for kw in (dict(width=31, height=23), dict(width=96, height=80, scale_algo="bilinear")):
        np.testing.assert_array_equal(_load(tiled, pix_fmt="rgb24", **kw),
                                      _load(png, pix_fmt="rgb24", **kw))


def test_multipage_first_page(tmp_path, src):
    path = tmp_path / "pages.tif"
    other = Image.fromarray(smooth_rgb(20, 10, seed=9))
    Image.fromarray(src).save(path, save_all=True, append_images=[other, other])
    np.testing.assert_array_equal(_load(path, pix_fmt="rgb24"), src)


def test_forced_ffmpeg_decoder_still_ffmpeg(tmp_path, src):
    """decoder="tiff" asks for FFmpeg's decoder: it still decodes a plain strip TIFF."""
    path = _pillow_file(tmp_path, src, "RGB")
    out = _load(path, pix_fmt="rgb24", decode_config=spdl.io.DecodeConfig(decoder="tiff"))
    np.testing.assert_array_equal(out, src)


# ---------------------------------------------------------------------------
# Damaged and hostile files: an error, never a crash, a hang or a large allocation
# ---------------------------------------------------------------------------


def _deflate_tiff(a):
    return _tiff(a.shape[1], a.shape[0], zlib.compress(a.tobytes(), 6), spp=3, photometric=2,
                 compression=8)


def _corrupt_deflate_tiff(src):
    """A Deflate TIFF whose strip is damaged just after the zlib header (a damage zlib
    sees: libtiff inflates only as much as the strip needs, so a damage further in may
    decode to other pixels without an error, in every libtiff reader)."""
    data = bytearray(_deflate_tiff(src))
    start = len(data) - len(zlib.compress(src.tobytes(), 6)) + 2
    for i in range(start, start + 40):
        data[i] ^= 0x5A
    return bytes(data)


def test_truncated(src):
    """Cut anywhere (header, IFD, pixel data; uncompressed or Deflate): DecodeError."""
    for data in (_tiff(W, H, src.tobytes(), spp=3, photometric=2), _deflate_tiff(src)):
        for cut in (6, 20, 100, len(data) - len(data) // 3, len(data) - 1):
            with pytest.raises(spdl.io.DecodeError):
                _decode(data[:cut])


def test_corrupt_strip_says_libtiffs_message(src):
    with pytest.raises(spdl.io.DecodeError, match="ZIPDecode"):
        _decode(_corrupt_deflate_tiff(src))


def test_huge_claim_refused_before_allocating():
    """A 100000x100000 header in a 200-byte file: ImageTooLargeError, peak memory flat."""
    data = hc.tiff_claiming(100000, 100000)
    peak_known = hc._reset_peak()
    before = hc._vm("VmRSS")
    with pytest.raises(spdl.io.ImageTooLargeError, match="100000x100000"):
        _decode(data)
    if peak_known:
        assert hc._vm("VmHWM") - before < 64 << 20
    # within max_pixels but with 16 bytes of pixels: the strip is short
    with pytest.raises(spdl.io.DecodeError, match="strip"):
        _decode(hc.tiff_claiming(3000, 2000))


def test_huge_tile_refused():
    """A 16x16 image in one 65536x65536 tile: refused before the tile is allocated."""
    t = time.monotonic()
    with pytest.raises((spdl.io.DecodeError, spdl.io.ImageTooLargeError)):
        _decode(_tiff(16, 16, bytes(64), tile=(65536, 65536)))
    assert time.monotonic() - t < 2


@pytest.mark.parametrize("target", ["self", "back"])
def test_ifd_loop(src, target):
    """IFD chains that loop (to itself, or the second back to the first): the first page,
    at once."""
    base = _tiff(W, H, src.tobytes(), spp=3, photometric=2)
    n = struct.unpack("<H", base[8:10])[0]
    pad = b"\0" * (len(base) % 2)
    nxt = 8 if target == "self" else len(base) + len(pad)
    one = base[:10 + 12 * n] + struct.pack("<I", nxt) + base[14 + 12 * n:] + pad
    if target == "back":  # a copy of the first IFD whose next is the first
        one += base[8:10 + 12 * n] + struct.pack("<I", 8)
    t = time.monotonic()
    np.testing.assert_array_equal(np_batch(spdl.io.load_image_batch([one], width=None,
                                                                    height=None))[0], src)
    assert time.monotonic() - t < 2


def test_mixed_batch_keeps_each_images_message(tmp_path, src):
    """Good and damaged TIFFs decoded on 2 threads at once: each failure carries its own
    libtiff message (handlers are per handle), the good ones their pixels."""
    good = _tiffcp(_pillow_file(tmp_path, src, "RGB"), tmp_path / "g.tif", "-t", "-c", "jpeg")
    corrupt = _corrupt_deflate_tiff(src)
    short = hc.tiff_claiming(30, 20)
    srcs = [str(good), corrupt, good.read_bytes(), short] * 4
    with pytest.raises(spdl.io.BatchLoadError) as e:
        spdl.io.load_image_batch(srcs, width=24, height=20, num_threads=2)
    errs = e.value.errors
    assert sorted(errs) == [i for i in range(16) if i % 4 in (1, 3)]
    for i, err in errs.items():
        assert isinstance(err, spdl.io.DecodeError)
        assert ("ZIPDecode" if i % 4 == 1 else "Read error on strip") in str(err), (i, err)
    out = np_batch(spdl.io.load_image_batch([s for i, s in enumerate(srcs) if i % 4 in (0, 2)],
                                            width=24, height=20, num_threads=2))
    assert all(np.array_equal(out[0], o) for o in out)
