"""Older formats as the person sees them (issue 12): DDS, TGA, BMP.

Every input is written here, byte by byte (struct/numpy), and each result is
compared with the value its specification gives and with Pillow's decode.

DDS: a sample of an n-bit channel mask is round(v * 255 / (2^n - 1)) (Pillow
truncates: 1 below for some 5/6/10-bit values); BC1-BC5 follow Microsoft's block
compression reference: endpoints are exact, interpolated values within 1 of
Pillow (the spec allows decoders that much). BC4 is grey (Pillow and FFmpeg show
it so); BC5 (ATI2, BC5U, DX10 BC5_UNORM alike) is red and green with blue 0.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

import spdl.io
from _util import np_batch


def _load(src, pix_fmt="rgba"):
    return np_batch(spdl.io.load_image_batch([src], width=None, height=None, pix_fmt=pix_fmt))[0]


def _refusal(src):
    with pytest.raises(spdl.io.BatchLoadError) as e:
        spdl.io.load_image_batch([src], width=None, height=None, pix_fmt="rgba")
    return e.value.errors[0]


def _pillow(data, mode="RGBA"):
    return np.asarray(Image.open(io.BytesIO(data)).convert(mode))


# ---------------------------------------------------------------------------
# DDS
# ---------------------------------------------------------------------------

DDPF_ALPHAPIXELS, DDPF_ALPHA, DDPF_FOURCC, DDPF_RGB, DDPF_LUMINANCE = 0x1, 0x2, 0x4, 0x40, 0x20000


def _dds(w, h, pf_flags, *, fourcc=b"\0\0\0\0", bpp=0, masks=(0, 0, 0, 0), data=b"", dxgi=None,
         mipmaps=0):
    """A DDS file: magic, DDS_HEADER (124 bytes, its DDS_PIXELFORMAT inside), the DX10
    header when dxgi is given, then data."""
    flags = 0x1 | 0x2 | 0x4 | 0x1000 | (0x20000 if mipmaps else 0)
    out = struct.pack("<4sIIIIIII44x", b"DDS ", 124, flags, h, w, 0, 0, mipmaps)
    out += struct.pack("<II4sIIIII", 32, pf_flags, fourcc, bpp, *masks)
    out += struct.pack("<IIIII", 0x1000, 0, 0, 0, 0)
    if dxgi is not None:
        out += struct.pack("<IIIII", dxgi, 3, 0, 1, 0)
    return out + data


def _quantise(v, mask):
    """An 8-bit sample stored under mask, and the 8-bit value the spec reads back."""
    shift = (mask & -mask).bit_length() - 1
    mx = mask >> shift
    q = (v.astype(np.int64) * mx + 127) // 255
    return q << shift, (q * 255 * 2 + mx) // (2 * mx)


def _pack_masked(rgba, bpp, masks):
    """(bytes of rgba under masks, the RGBA image the spec says they decode to)."""
    h, w, _ = rgba.shape
    v = np.zeros((h, w), np.int64)
    back = np.zeros_like(rgba)
    for c, m in enumerate(masks):
        if m:
            stored, back[..., c] = _quantise(rgba[..., c], m)
            v |= stored
    raw = np.stack([(v >> (8 * i)) & 0xFF for i in range(bpp // 8)], axis=-1).astype(np.uint8)
    return raw.tobytes(), back


ARGB = (0xFF0000, 0xFF00, 0xFF, 0xFF000000)
ABGR = (0xFF, 0xFF00, 0xFF0000, 0xFF000000)
# name: (flags, bits a pixel, masks, what the image shows: rgba, rgb, grey, grey+alpha)
DDS_RAW = {
    "A8R8G8B8": (DDPF_RGB | DDPF_ALPHAPIXELS, 32, ARGB, "rgba"),
    "X8R8G8B8": (DDPF_RGB, 32, (0xFF0000, 0xFF00, 0xFF, 0), "rgb"),
    "A8B8G8R8": (DDPF_RGB | DDPF_ALPHAPIXELS, 32, ABGR, "rgba"),
    "X8B8G8R8": (DDPF_RGB, 32, (0xFF, 0xFF00, 0xFF0000, 0), "rgb"),
    "R8G8B8": (DDPF_RGB, 24, (0xFF0000, 0xFF00, 0xFF, 0), "rgb"),
    "B8G8R8": (DDPF_RGB, 24, (0xFF, 0xFF00, 0xFF0000, 0), "rgb"),
    "R5G6B5": (DDPF_RGB, 16, (0xF800, 0x7E0, 0x1F, 0), "rgb"),
    "X1R5G5B5": (DDPF_RGB, 16, (0x7C00, 0x3E0, 0x1F, 0), "rgb"),
    "A1R5G5B5": (DDPF_RGB | DDPF_ALPHAPIXELS, 16, (0x7C00, 0x3E0, 0x1F, 0x8000), "rgba"),
    "A4R4G4B4": (DDPF_RGB | DDPF_ALPHAPIXELS, 16, (0xF00, 0xF0, 0xF, 0xF000), "rgba"),
    "A2R10G10B10": (DDPF_RGB | DDPF_ALPHAPIXELS, 32, (0x3FF00000, 0xFFC00, 0x3FF, 0xC0000000),
                    "rgba"),
    "L8": (DDPF_LUMINANCE, 8, (0xFF, 0, 0, 0), "grey"),
    "A8L8": (DDPF_LUMINANCE | DDPF_ALPHAPIXELS, 16, (0xFF, 0, 0, 0xFF00), "greya"),
}


def _expected_view(back, shows):
    if shows == "rgb":
        back[..., 3] = 255
    elif shows == "grey":
        back[..., 1] = back[..., 2] = back[..., 0]
        back[..., 3] = 255
    elif shows == "greya":
        back[..., 1] = back[..., 2] = back[..., 0]
    return back


@pytest.mark.parametrize("name", DDS_RAW)
def test_dds_uncompressed_masks(name):
    """Every mask layout: exactly the spec's values in rgba, rgb24 is the stored colour
    (alpha dropped), and Pillow agrees within its truncation (1)."""
    flags, bpp, masks, shows = DDS_RAW[name]
    rgba = np.random.RandomState(len(name)).randint(0, 256, (7, 9, 4)).astype(np.uint8)
    data, back = _pack_masked(rgba, bpp, masks)
    want = _expected_view(back, shows)
    src = _dds(9, 7, flags, bpp=bpp, masks=masks, data=data)
    got = _load(src)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(_load(src, "rgb24"), want[..., :3])
    peer = _pillow(src)
    assert np.abs(got.astype(int) - peer).max() <= 1


@pytest.mark.parametrize("dxgi,masks,alpha", [
    (28, ABGR, True),   # R8G8B8A8_UNORM (FFmpeg 5.1 swapped red and blue)
    (29, ABGR, True),   # R8G8B8A8_UNORM_SRGB
    (87, ARGB, True),   # B8G8R8A8_UNORM (FFmpeg 5.1 swapped red and blue)
    (88, ARGB, False),  # B8G8R8X8_UNORM
    (85, (0xF800, 0x7E0, 0x1F, 0), False),  # B5G6R5_UNORM
])
def test_dds_dx10_uncompressed(dxgi, masks, alpha):
    rgba = np.random.RandomState(dxgi).randint(0, 256, (5, 6, 4)).astype(np.uint8)
    bpp = 32 if masks[0] > 0xFFFF or masks[2] > 0xFFFF else 16
    data, back = _pack_masked(rgba, bpp, masks)
    if not alpha:
        back[..., 3] = 255
    src = _dds(6, 5, DDPF_FOURCC, fourcc=b"DX10", dxgi=dxgi, data=data)
    np.testing.assert_array_equal(_load(src), back)
    try:
        peer = _pillow(src)
    except (OSError, NotImplementedError):  # Pillow 13 reads only R8G8B8A8 of these
        return
    assert np.abs(back.astype(int) - peer).max() <= 1


def test_dds_l16_keeps_16_bits():
    """16-bit luminance (left to FFmpeg's decoder, which gets it right): gray16 exact."""
    a = np.random.RandomState(5).randint(0, 65536, (3, 5)).astype("<u2")
    src = _dds(5, 3, DDPF_LUMINANCE, bpp=16, masks=(0xFFFF, 0, 0, 0), data=a.tobytes())
    np.testing.assert_array_equal(_load(src, "gray16")[..., 0], a)


def test_dds_alpha_only():
    """An alpha-only surface (DDPF_ALPHA, A8) loads as its alpha in grey, as FFmpeg's
    decoder gives it (Pillow refuses it)."""
    a = np.random.RandomState(4).randint(0, 256, (3, 5)).astype(np.uint8)
    src = _dds(5, 3, DDPF_ALPHA, bpp=8, masks=(0, 0, 0, 0xFF), data=a.tobytes())
    np.testing.assert_array_equal(_load(src, "gray")[..., 0], a)


def _rgb565(r, g, b):
    return (r >> 3) << 11 | (g >> 2) << 5 | b >> 3


def _bc1(c0, c1, idx):
    bits = sum(int(k) << (2 * i) for i, k in enumerate(idx))
    return struct.pack("<HHI", c0, c1, bits)


def _bc4(v0, v1, idx):
    bits = sum(int(k) << (3 * i) for i, k in enumerate(idx))
    return struct.pack("<BB", v0, v1) + bits.to_bytes(6, "little")


def _bc2_alpha(alpha4):
    return struct.pack("<Q", sum(int(a) << (4 * i) for i, a in enumerate(alpha4)))


RED, GREEN, BLUE, WHITE = _rgb565(255, 0, 0), _rgb565(0, 255, 0), _rgb565(0, 0, 255), 0xFFFF


def _blocks_image(w, h, per_block):
    """Place each 4x4 block's 16 values (row-major) into an image of w x h."""
    bw, bh = (w + 3) // 4, (h + 3) // 4
    first = np.asarray(per_block[0])
    img = np.zeros((bh * 4, bw * 4) + first.shape[1:], first.dtype)
    for k, vals in enumerate(per_block):
        by, bx = divmod(k, bw)
        img[by * 4:by * 4 + 4, bx * 4:bx * 4 + 4] = np.asarray(vals).reshape((4, 4) + first.shape[1:])
    return img[:h, :w]


def _bc_case(kind, w=10, h=6, seed=0):
    """(file, the spec's RGBA image) for a BCn texture of endpoint-only indices (exact
    values), and one of random indices (interpolated values) for the Pillow check."""
    rng = np.random.RandomState(seed)
    nblocks = ((w + 3) // 4) * ((h + 3) // 4)
    data, vals = b"", []
    colours = {RED: (255, 0, 0), GREEN: (0, 255, 0), BLUE: (0, 0, 255), WHITE: (255, 255, 255)}
    for k in range(nblocks):
        c0, c1 = [RED, GREEN, BLUE, WHITE][k % 4], [GREEN, BLUE, WHITE, RED][k % 4]
        if c0 < c1:  # 4-colour mode needs c0 > c1 in BC1
            c0, c1 = c1, c0
        i2 = rng.randint(0, 2, 16)
        rgb = np.array([colours[c0] if i == 0 else colours[c1] for i in i2])
        a0, a1 = int(rng.randint(0, 256)), int(rng.randint(0, 256))
        a0, a1 = min(a0, a1), max(a0, a1)  # r0 <= r1: codes 6 and 7 are 0 and 255
        i3 = rng.choice([0, 1, 6, 7], 16)
        av = np.array([a0, a1, 0, 255])[np.searchsorted([0, 1, 6, 7], i3)]
        b1 = _bc1(c0, c1, i2)
        if kind == "BC1":
            data += b1
            vals.append(np.column_stack([rgb, np.full(16, 255)]))
        elif kind == "BC2":
            a4 = rng.randint(0, 16, 16)
            data += _bc2_alpha(a4) + b1
            vals.append(np.column_stack([rgb, a4 * 17]))
        elif kind == "BC3":
            data += _bc4(a0, a1, i3) + b1
            vals.append(np.column_stack([rgb, av]))
        elif kind == "BC4":
            data += _bc4(a0, a1, i3)
            vals.append(np.column_stack([av, av, av, np.full(16, 255)]))
        elif kind == "BC5":
            g0, g1 = sorted(int(x) for x in rng.randint(0, 256, 2))
            j3 = rng.choice([0, 1, 6, 7], 16)
            gv = np.array([g0, g1, 0, 255])[np.searchsorted([0, 1, 6, 7], j3)]
            data += _bc4(a0, a1, i3) + _bc4(g0, g1, j3)
            vals.append(np.column_stack([av, gv, np.zeros(16, int), np.full(16, 255)]))
    return data, _blocks_image(w, h, vals).astype(np.uint8)


def _bc_random(kind, w, h, seed=1):
    """Blocks of random bytes (every mode and interpolated value)."""
    size = {"BC1": 8, "BC4": 8}.get(kind, 16)
    return np.random.RandomState(seed).randint(0, 256, ((w + 3) // 4) * ((h + 3) // 4) * size,
                                               dtype=np.uint8).tobytes()


# (name, FourCC, DXGI format or None, BC kind)
DDS_BC = [
    ("DXT1", b"DXT1", None, "BC1"), ("DXT3", b"DXT3", None, "BC2"), ("DXT5", b"DXT5", None, "BC3"),
    ("ATI1", b"ATI1", None, "BC4"), ("BC4U", b"BC4U", None, "BC4"),
    ("ATI2", b"ATI2", None, "BC5"), ("BC5U", b"BC5U", None, "BC5"),
    ("DX10 BC1_UNORM", b"DX10", 71, "BC1"), ("DX10 BC2_UNORM", b"DX10", 74, "BC2"),
    ("DX10 BC3_UNORM", b"DX10", 77, "BC3"), ("DX10 BC4_UNORM", b"DX10", 80, "BC4"),
    ("DX10 BC5_UNORM", b"DX10", 83, "BC5"),
]


@pytest.mark.parametrize("name,fourcc,dxgi,kind", DDS_BC, ids=[c[0] for c in DDS_BC])
def test_dds_block_compressed(name, fourcc, dxgi, kind):
    """Endpoint values exactly as the spec gives them (10x6: partial blocks at the
    edges), BC5 red and green from its two blocks with blue 0 (ATI2 included), BC4 grey;
    rgb24 is the stored colour; random blocks within 1 of Pillow."""
    data, want = _bc_case(kind)
    src = _dds(10, 6, DDPF_FOURCC, fourcc=fourcc, dxgi=dxgi, data=data)
    np.testing.assert_array_equal(_load(src), want)
    np.testing.assert_array_equal(_load(src, "rgb24"), want[..., :3])
    if kind == "BC4":
        np.testing.assert_array_equal(_load(src, "gray")[..., 0], want[..., 0])
    peer = _pillow(src)
    assert np.abs(_load(src).astype(int) - peer).max() == 0
    src = _dds(12, 8, DDPF_FOURCC, fourcc=fourcc, dxgi=dxgi, data=_bc_random(kind, 12, 8))
    assert np.abs(_load(src).astype(int) - _pillow(src)).max() <= 1


def test_dds_bc5_variants_agree():
    """ATI2, BC5U and DX10 BC5_UNORM are one layout: the same blocks, the same pixels."""
    data = _bc_random("BC5", 16, 8, seed=5)
    got = [_load(_dds(16, 8, DDPF_FOURCC, fourcc=f, dxgi=x, data=data))
           for f, x in [(b"ATI2", None), (b"BC5U", None), (b"DX10", 83)]]
    np.testing.assert_array_equal(got[0], got[1])
    np.testing.assert_array_equal(got[0], got[2])
    assert not got[0][..., 2].any()


def test_dds_bc1_three_colour_mode():
    """color0 <= color1: the third colour is the mean, the fourth transparent black."""
    src = _dds(4, 4, DDPF_FOURCC, fourcc=b"DXT1", data=_bc1(0, WHITE, [0, 1, 2, 3] * 4))
    got = _load(src)
    np.testing.assert_array_equal(got[0], [[0, 0, 0, 255], [255, 255, 255, 255],
                                           [128, 128, 128, 255], [0, 0, 0, 0]])
    assert np.abs(got.astype(int) - _pillow(src)).max() <= 1


def test_dds_mipmaps_and_large():
    """A texture with its mip chain after it: the first (largest) level; 301x300."""
    rgba = np.random.RandomState(3).randint(0, 256, (300, 301, 4)).astype(np.uint8)
    data, back = _pack_masked(rgba, 32, ARGB)
    src = _dds(301, 300, DDPF_RGB | DDPF_ALPHAPIXELS, bpp=32, masks=ARGB,
               data=data + bytes(150 * 151 * 4 + 75 * 76 * 4), mipmaps=3)
    np.testing.assert_array_equal(_load(src), back)


def test_dds_refusals():
    """Truncated data is a DecodeError; variants not decoded are refused by name."""
    data, _ = _bc_case("BC1")
    e = _refusal(_dds(10, 6, DDPF_FOURCC, fourcc=b"DXT1", data=data[:-1]))
    assert isinstance(e, spdl.io.DecodeError) and "truncated" in str(e)
    e = _refusal(_dds(8, 8, DDPF_FOURCC, fourcc=b"BC5S", data=bytes(64)))
    assert isinstance(e, spdl.io.UnsupportedFormatError) and "BC5S" in str(e)
    e = _refusal(_dds(8, 8, DDPF_FOURCC, fourcc=b"DX10", dxgi=98, data=bytes(64)))
    assert "BC7" in str(e)
    e = _refusal(_dds(8, 8, DDPF_FOURCC, fourcc=b"DX10", dxgi=84, data=bytes(64)))
    assert "BC5 SNORM" in str(e)
    e = _refusal(_dds(8, 8, DDPF_RGB, bpp=32, masks=(0, 0, 0, 0), data=bytes(256)))
    assert "without channel masks" in str(e)
    e = _refusal(_dds(1 << 16, 1 << 16, DDPF_FOURCC, fourcc=b"DXT1", data=bytes(64)))
    assert isinstance(e, (spdl.io.DecodeError, spdl.io.ImageTooLargeError))


# ---------------------------------------------------------------------------
# TGA
# ---------------------------------------------------------------------------


def _tga_pixels(img, depth):
    """Stored TGA pixels (h, w, bytes) of an RGBA image (grey or indices when depth 8)."""
    if depth == 8:
        return img[..., None].astype(np.uint8)
    if depth in (15, 16):
        r, g, b = (img[..., i].astype(np.uint16) >> 3 for i in range(3))
        v = (r << 10) | (g << 5) | b | ((img[..., 3] >= 128).astype(np.uint16) << 15)
        return np.stack([v & 0xFF, v >> 8], -1).astype(np.uint8)
    return img[..., [2, 1, 0, 3][:depth // 8]].astype(np.uint8)


def _tga_rle_row(row):
    """One row as RLE packets: runs of equal pixels, raw packets between them."""
    out, i, n = bytearray(), 0, len(row)
    same = [row[k].tobytes() == row[k + 1].tobytes() for k in range(n - 1)] + [False]
    while i < n:
        j = i
        if same[i]:
            while j + 1 < n and j - i < 127 and same[j]:
                j += 1
            out.append(0x80 | (j - i))
            out += row[i].tobytes()
        else:
            while j + 1 < n and j - i < 127 and not same[j + 1 if j + 1 < n else j] and not same[j]:
                j += 1
            out.append(j - i)
            out += row[i:j + 1].tobytes()
        i = j + 1
    return bytes(out)


def _tga(img, depth, *, kind="true", rle=False, top=False, right=False, cmap=None, cmap_bits=24,
         image_id=b"", footer=False):
    """A TGA file: header, image ID, colour map, pixels stored from the origin the
    descriptor names (bit 4 right-to-left, bit 5 top-to-bottom), raw or RLE, and the
    TGA 2.0 footer when asked."""
    h, w = img.shape[:2]
    image_type = {"map": 1, "true": 2, "grey": 3}[kind] + (8 if rle else 0)
    desc = (8 if depth == 32 else 0) | (0x10 if right else 0) | (0x20 if top else 0)
    n_map = 0 if cmap is None else len(cmap)
    out = struct.pack("<BBBHHBHHHHBB", len(image_id), int(cmap is not None), image_type, 0, n_map,
                      cmap_bits if n_map else 0, 0, 0, w, h, depth, desc) + image_id
    if n_map:
        out += _tga_pixels(np.asarray(cmap, np.uint8)[None], cmap_bits)[0].tobytes()
    px = _tga_pixels(img, depth)
    px = px if top else px[::-1]
    px = px[:, ::-1] if right else px
    out += b"".join(_tga_rle_row(r) for r in px) if rle else px.tobytes()
    if footer:
        out += struct.pack("<II", 0, 0) + b"TRUEVISION-XFILE.\0"
    return out


def _expand5(v):
    """A 5-bit sample (v >> 3 of an 8-bit one) as FFmpeg reads it (bit replication)."""
    q = v.astype(np.int64) >> 3
    return ((q << 3) | (q >> 2)).astype(np.uint8)


TGA_KINDS = [("true", 24), ("true", 32), ("true", 16), ("true", 15), ("grey", 8), ("map", 8)]


@pytest.mark.parametrize("kind,depth", TGA_KINDS, ids=[f"{k}{d}" for k, d in TGA_KINDS])
@pytest.mark.parametrize("rle", [False, True], ids=["raw", "rle"])
@pytest.mark.parametrize("top,right", [(False, False), (True, False), (False, True), (True, True)],
                         ids=["bottom-left", "top-left", "bottom-right", "top-right"])
def test_tga(kind, depth, rle, top, right):
    """Every origin, raw and RLE, grey, 15/16/24/32-bit and colour-mapped: the image
    as written (5-bit channels by bit replication), equal to Pillow's (within 1 for
    5-bit channels; Pillow has no 15-bit TGA); 32-bit alpha kept in rgba."""
    rng = np.random.RandomState(depth + 2 * rle + 4 * top + 8 * right)
    rgba = rng.randint(0, 256, (6, 9, 4)).astype(np.uint8)
    rgba[2, 1:7] = rgba[2, 1]  # a run for the RLE coder
    pal = rng.randint(0, 256, (20, 3)).astype(np.uint8)
    idx = rng.randint(0, 20, (6, 9)).astype(np.uint8)
    img = rgba[..., 0] if kind == "grey" else idx if kind == "map" else rgba
    src = _tga(img, depth, kind=kind, rle=rle, top=top, right=right,
               cmap=pal if kind == "map" else None)
    packets = spdl.io.demux_image(src)
    assert (packets.format, packets.codec) == ("tga", "targa")
    got = _load(src, "rgb24")
    if kind == "grey":
        want = np.repeat(img[..., None], 3, -1)
    elif kind == "map":
        want = pal[idx]
    elif depth in (15, 16):
        want = _expand5(rgba[..., :3])
    else:
        want = rgba[..., :3]
    np.testing.assert_array_equal(got, want)
    if depth == 32:
        np.testing.assert_array_equal(_load(src, "rgba"), rgba)
    if depth != 15:
        assert np.abs(got.astype(int) - _pillow(src, "RGB")).max() <= (1 if depth == 16 else 0)


def test_tga_id_footer_and_colour_map_with_alpha():
    rng = np.random.RandomState(7)
    rgba = rng.randint(0, 256, (4, 5, 4)).astype(np.uint8)
    src = _tga(rgba, 24, image_id=b"made by a test", footer=True)
    np.testing.assert_array_equal(_load(src, "rgb24"), rgba[..., :3])
    pal = rng.randint(0, 256, (8, 4)).astype(np.uint8)
    idx = rng.randint(0, 8, (4, 5)).astype(np.uint8)
    src = _tga(idx, 8, kind="map", cmap=pal, cmap_bits=32)
    np.testing.assert_array_equal(_load(src, "rgba"), pal[idx])
    np.testing.assert_array_equal(_load(src, "rgba"), _pillow(src))


@pytest.mark.parametrize("bits", [15, 16, 24, 32])
def test_tga_colour_map_entry_sizes(bits):
    """Colour-map entries of 15/16/24/32 bits (5-bit channels by bit replication),
    and a true-colour image carrying a colour map it does not use."""
    rng = np.random.RandomState(bits)
    idx = rng.randint(0, 20, (4, 6)).astype(np.uint8)
    pal = rng.randint(0, 256, (20, 4)).astype(np.uint8)
    src = _tga(idx, 8, kind="map", cmap=pal, cmap_bits=bits, rle=bits == 16)
    want = _expand5(pal[idx][..., :3]) if bits < 24 else pal[idx][..., :3]
    np.testing.assert_array_equal(_load(src, "rgb24"), want)
    rgba = rng.randint(0, 256, (4, 6, 4)).astype(np.uint8)
    head = struct.pack("<BBBHHBHHHHBB", 0, 1, 2, 0, 20, bits, 0, 0, 6, 4, 24, 0x20)
    src = head + _tga_pixels(pal[None], bits)[0].tobytes() + _tga_pixels(rgba, 24).tobytes()
    np.testing.assert_array_equal(_load(src, "rgb24"), rgba[..., :3])


def test_tga_truncated_and_invalid():
    """Uncompressed pixels cut short: a DecodeError naming TGA; a header with a field
    the spec does not allow is not taken for a TGA at all."""
    src = _tga(np.zeros((8, 8, 4), np.uint8), 24)
    e = _refusal(src[:-10])
    assert isinstance(e, spdl.io.DecodeError) and "TGA" in str(e)
    rle = _tga(np.random.RandomState(0).randint(0, 256, (8, 8, 4)).astype(np.uint8), 24, rle=True)
    assert isinstance(_refusal(rle[:-10]), spdl.io.DecodeError)
    for offset, value in [(2, 4), (1, 2), (16, 12), (17, 0x40), (12, 0), (14, 0)]:
        bad = bytearray(src)
        bad[offset] = value
        if offset in (12, 14):
            bad[offset + 1] = 0
        assert isinstance(_refusal(bytes(bad)), spdl.io.UnsupportedFormatError), offset


def test_random_bytes_are_not_tga():
    """1000 random byte strings (of 18 to 3000 bytes; a third with TGA-like first
    bytes): none is taken for a TGA unless its header is valid, and nothing crashes."""
    rng = np.random.RandomState(12)
    taken = 0
    for i in range(1000):
        data = bytearray(rng.randint(0, 256, int(rng.randint(18, 3000)), dtype=np.uint8).tobytes())
        if i % 3 == 0:  # no ID, no colour map, true colour: closer to a real header
            data[0:3] = b"\x00\x00\x02"
        try:
            packets = spdl.io.demux_image(bytes(data))
        except spdl.io.UnsupportedFormatError:
            continue
        except spdl.io.DecodeError:
            continue
        if packets.format != "tga":
            continue
        taken += 1
        h = struct.unpack_from("<BBBHHBHHHHBB", data)
        assert h[2] in (1, 2, 3, 9, 10, 11) and h[10] in (8, 15, 16, 24, 32) and h[11] < 0x40
        try:
            spdl.io.decode_packets(packets)
        except spdl.io.SpdlIOError:
            pass
    assert taken < 20


@pytest.mark.parametrize("fmt", ["dds-bc3", "dds-raw", "tga-rle", "tga-map", "bmp-rle8",
                                 "bmp-rle4", "bmp-4"])
def test_mutated_headers(fmt):
    """300 copies with random bytes of the header (BMP: anywhere) changed: each decodes
    or is refused with an spdl error; none crashes."""
    rng = np.random.RandomState(len(fmt))
    rgba = rng.randint(0, 256, (9, 13, 4)).astype(np.uint8)
    if fmt == "dds-bc3":
        base = _dds(13, 9, DDPF_FOURCC, fourcc=b"DXT5", data=_bc_random("BC3", 13, 9))
    elif fmt == "dds-raw":
        base = _dds(13, 9, DDPF_RGB | DDPF_ALPHAPIXELS, bpp=32, masks=ARGB,
                    data=_pack_masked(rgba, 32, ARGB)[0])
    elif fmt == "tga-rle":
        base = _tga(rgba, 32, rle=True, right=True)
    elif fmt == "tga-map":
        base = _tga(rgba[..., 0] % 16, 8, kind="map", cmap=rgba[0, :16, :3], rle=True)
    elif fmt == "bmp-4":
        base = _bmp(13, 9, 4, _bmp_rows(rgba[..., 0] % 16, 4), palette=_palette(16))
    else:
        bits = 8 if fmt == "bmp-rle8" else 4
        base = _bmp(13, 9, bits, _rle(rgba[..., 0].astype(int) % (1 << bits), bits), comp=1 if bits == 8 else 2,
                    palette=_palette(1 << bits))
    head = 148 if fmt.startswith("dds") else 18 if fmt.startswith("tga") else len(base)
    decoded = 0
    for _ in range(300):
        data = bytearray(base)
        for _ in range(int(rng.randint(1, 4))):
            data[int(rng.randint(0, head))] = int(rng.randint(0, 256))
        try:
            out = _load(bytes(data))
        except spdl.io.SpdlIOError:
            continue
        decoded += 1
        assert out.ndim == 3
    assert decoded > 0


# ---------------------------------------------------------------------------
# BMP
# ---------------------------------------------------------------------------


def _bmp(w, h, bpp, pixels, *, comp=0, palette=None, clr_used=None, masks=None, bf_size=None,
         size_image=None, top_down=False, gap=b""):
    """A BMP file: BITMAPFILEHEADER, BITMAPINFOHEADER (40 bytes), BITFIELDS masks when
    given, the palette (B, G, R, 0 each), a gap, then the pixel data."""
    pal = b"" if palette is None else b"".join(bytes([b, g, r, 0]) for r, g, b in palette)
    n_pal = 0 if palette is None else len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, w, -h if top_down else h, 1, bpp, comp,
                       len(pixels) if size_image is None else size_image, 2835, 2835,
                       n_pal if clr_used is None else clr_used, 0)
    extra = b"" if masks is None else struct.pack("<III", *masks)
    off = 14 + 40 + len(extra) + len(pal) + len(gap)
    head = struct.pack("<2sIHHI", b"BM", off + len(pixels) if bf_size is None else bf_size, 0, 0,
                       off)
    return head + info + extra + pal + gap + pixels


def _bmp_rows(idx, bpp, top_down=False):
    """Uncompressed rows of an index image, bottom-up unless top_down, each padded to 4."""
    out = b""
    for r in (idx if top_down else idx[::-1]):
        if bpp == 8:
            b = bytes(int(v) for v in r)
        else:
            per = 8 // bpp
            b = bytearray((len(r) + per - 1) // per)
            for i, v in enumerate(r):
                b[i // per] |= int(v) << (8 - bpp * (i % per + 1))
            b = bytes(b)
        out += b + bytes(-len(b) % 4)
    return out


def _rle(idx, bits, *, top_down=False, eob=True):
    """RLE8/RLE4 of an index image: runs of 2 or more as encoded runs, other pixels in
    absolute runs (3 or more) or runs of 1, an end-of-line after every row and an
    end-of-bitmap at the end."""
    out = bytearray()
    for r in (idx if top_down else idx[::-1]):
        r = [int(v) for v in r]
        i = 0
        while i < len(r):
            j = i
            while j + 1 < len(r) and r[j + 1] == r[i] and j - i < 254:
                j += 1
            if j > i:
                out += bytes([j - i + 1, r[i] if bits == 8 else r[i] * 17])
                i = j + 1
                continue
            j = i
            while j + 1 < len(r) and r[j + 1] != r[j] and j - i < 254:
                j += 1
            lit = r[i:j + 1] if j + 1 >= len(r) else r[i:j]
            lit = lit or [r[i]]
            if len(lit) < 3:
                for v in lit:
                    out += bytes([1, v if bits == 8 else v * 17])
            else:
                data = bytes(lit) if bits == 8 else bytes(
                    (lit[k] << 4) | (lit[k + 1] if k + 1 < len(lit) else 0)
                    for k in range(0, len(lit), 2))
                out += bytes([0, len(lit)]) + data + bytes(len(data) % 2)
            i += len(lit)
        out += b"\0\0"
    return bytes(out + (b"\0\1" if eob else b""))


def _palette(n, seed=0):
    return [tuple(int(c) for c in v) for v in np.random.RandomState(seed).randint(0, 256, (n, 3))]


def _pal_image(pal, idx):
    return np.asarray(pal, np.uint8)[np.asarray(idx)]


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("top_down", [False, True], ids=["bottom-up", "top-down"])
@pytest.mark.parametrize("eob", [True, False], ids=["eob", "no-eob"])
def test_bmp_rle(bits, top_down, eob):
    """RLE8/RLE4 with runs and absolute runs (odd lengths: word padding), every row
    ending in an end-of-line, with and without the end-of-bitmap marker (FFmpeg 5.1
    logged an error for RLE4's): the image as written, equal to Pillow's."""
    rng = np.random.RandomState(bits + 2 * top_down + 4 * eob)
    pal = _palette(1 << bits, bits)
    idx = rng.randint(0, 1 << bits, (7, 13))
    idx[1, 2:9] = 3
    idx[4, :] = 5
    src = _bmp(13, 7, bits, _rle(idx, bits, top_down=top_down, eob=eob), comp=1 if bits == 8 else 2,
               palette=pal, top_down=top_down)
    want = _pal_image(pal, idx)
    np.testing.assert_array_equal(_load(src, "rgb24"), want)
    np.testing.assert_array_equal(_pillow(src, "RGB"), want)


def _rle_case(name):
    """(RLE8 stream, expected index image of 8x4 (top row first), Pillow decodes it) for
    the cases the format leaves to the decoder."""
    row = lambda v: bytes([8, v, 0, 0])  # noqa: E731
    full = lambda *vs: np.array([[v] * 8 for v in vs])  # noqa: E731  (bottom row last)
    if name == "delta":  # row 0 (bottom): 2 pixels, skip 3 right and 1 up, 3 pixels there
        stream = bytes([2, 7, 0, 2, 3, 1, 3, 9, 0, 0]) + row(4) + row(5) + b"\0\1"
        want = full(5, 4, 0, 0)
        want[2, 5:8] = 9
        want[3, :2] = 7
        return stream, want, True
    if name == "delta past the picture":  # the skipped pixels are index 0, then the end
        return bytes([8, 7, 0, 0, 0, 2, 0, 200, 1, 1]) + b"\0\1", full(0, 0, 0, 7), True
    if name == "run past the row end":  # cut at the row's end
        return bytes([12, 7, 0, 0]) + row(4) + row(5) + row(6) + b"\0\1", full(6, 5, 4, 7), True
    if name == "absolute past the row end":  # continues on the next row (as Pillow)
        want = full(6, 5, 0, 0)
        want[3] = range(1, 9)
        want[2, :2] = [9, 10]
        return bytes([0, 10, *range(1, 11), 0, 0]) + row(5) + row(6) + b"\0\1", want, True
    if name == "bytes after the end marker":
        return row(4) + row(5) + row(6) + row(7) + b"\0\1" + bytes(10), full(7, 6, 5, 4), True
    if name == "early end marker":  # the rest index 0 (as FFmpeg; Pillow refuses)
        return row(4) + b"\0\1", full(0, 0, 0, 4), False
    raise KeyError(name)


RLE_CASES = ["delta", "delta past the picture", "run past the row end",
             "absolute past the row end", "bytes after the end marker", "early end marker"]


@pytest.mark.parametrize("name", RLE_CASES)
def test_bmp_rle_open_cases(name):
    """What RLE leaves open, decided as documented in csrc/bmp_rle.h: skipped pixels
    are palette index 0; Pillow agrees wherever it decodes."""
    stream, want_idx, pillow = _rle_case(name)
    pal = _palette(256, 3)
    src = _bmp(8, 4, 8, stream, comp=1, palette=pal)
    got = _load(src, "rgb24")
    np.testing.assert_array_equal(got, _pal_image(pal, want_idx))
    if pillow:
        np.testing.assert_array_equal(got, _pillow(src, "RGB"))


def test_bmp_rle_truncated():
    """RLE data that ends before the image is full, with no end marker, and an absolute
    run cut short: DecodeErrors."""
    idx = np.random.RandomState(0).randint(0, 256, (6, 10))
    stream = _rle(idx, 8)
    for cut in (stream[:len(stream) // 2], stream[:5]):
        e = _refusal(_bmp(10, 6, 8, cut, comp=1, palette=_palette(256)))
        assert isinstance(e, spdl.io.DecodeError) and "truncated" in str(e)


BMP_HEADERS = {
    "bfSize too large": dict(bf_size=100000),
    "bfSize 0": dict(bf_size=0),
    "biSizeImage 0": dict(size_image=0),
    "biSizeImage wrong": dict(size_image=7),
    "palette short, biClrUsed 0": dict(clr_used=0),
    "biClrUsed over 2^bpp": dict(clr_used=1000),
    "gap after the palette": dict(gap=b"\xaa" * 22),
    "top-down": dict(top_down=True),
    "last row's padding missing": dict(cut=True),
}


@pytest.mark.parametrize("bpp", [1, 4, 8])
@pytest.mark.parametrize("name", BMP_HEADERS)
def test_bmp_header_variants(name, bpp):
    """Files FFmpeg 5.1 refused ("not enough data", "Declared file size is less than
    header size", "palette doesn't fit", "Incorrect number of colors", "assuming
    missing line alignment"): the image as written, equal to Pillow's."""
    kw = dict(BMP_HEADERS[name])
    cut = kw.pop("cut", 0)
    n_pal = min(1 << bpp, 6)  # a palette shorter than 2^bpp (two colours for 1 bit)
    pal = _palette(n_pal, bpp)
    idx = np.random.RandomState(bpp).randint(0, n_pal, (5, 11))
    rows = _bmp_rows(idx, bpp, top_down=kw.get("top_down", False))
    if cut:  # the padding of the last row (of 2, 6 or 11 bytes)
        rows = rows[:len(rows) - (-((11 * bpp + 7) // 8) % 4)]
    src = _bmp(11, 5, bpp, rows, palette=pal, **kw)
    want = _pal_image(pal, idx)
    np.testing.assert_array_equal(_load(src, "rgb24"), want)
    np.testing.assert_array_equal(_pillow(src, "RGB"), want)


def test_bmp_truncated_pixels():
    """Missing more than the last row's padding: a DecodeError."""
    pal = _palette(16)
    idx = np.random.RandomState(1).randint(0, 16, (5, 11))
    rows = _bmp_rows(idx, 8)
    for cut in (rows[:-5], rows[:20], b""):
        e = _refusal(_bmp(11, 5, 8, cut, palette=pal))
        assert isinstance(e, spdl.io.DecodeError) and "truncated" in str(e)


def _pack_bitfields(rgb, bpp, masks):
    """(bottom-up padded rows of rgb under masks, the RGB the spec reads back)."""
    v = np.zeros(rgb.shape[:2], np.int64)
    back = np.zeros_like(rgb)
    for c, m in enumerate(masks):
        stored, back[..., c] = _quantise(rgb[..., c], m)
        v |= stored
    raw = np.stack([(v >> (8 * i)) & 0xFF for i in range(bpp // 8)], -1).astype(np.uint8)
    rows = b"".join(r.tobytes() + bytes(-r.nbytes % 4) for r in raw[::-1])
    return rows, back


@pytest.mark.parametrize("bpp,masks", [
    (16, (0xF800, 0x7E0, 0x1F)), (16, (0x7C00, 0x3E0, 0x1F)),
    (32, (0xFF0000, 0xFF00, 0xFF)), (32, (0xFF000000, 0xFF0000, 0xFF00)),
])
def test_bmp_bitfields(bpp, masks):
    """16/32-bit BITFIELDS: within 1 of the spec's round(v * 255 / max) (FFmpeg expands
    5/6-bit samples by bit replication) and of Pillow."""
    rgb = np.random.RandomState(bpp).randint(0, 256, (5, 7, 3)).astype(np.uint8)
    rows, back = _pack_bitfields(rgb, bpp, masks)
    src = _bmp(7, 5, bpp, rows, comp=3, masks=masks)
    got = _load(src, "rgb24").astype(int)
    assert np.abs(got - back).max() <= (1 if bpp == 16 else 0)
    assert np.abs(got - _pillow(src, "RGB")).max() <= (1 if bpp == 16 else 0)


def test_mixed_batch_paths_and_bytes(tmp_path):
    """DDS, TGA and BMP (RLE and mended) in one batch on 2 threads, resized: paths and
    bytes give the same pixels, each equal to its own load."""
    rgba = np.random.RandomState(9).randint(0, 256, (12, 16, 4)).astype(np.uint8)
    idx = rgba[..., 0].astype(int) % 16
    datas = [
        _dds(16, 12, DDPF_FOURCC, fourcc=b"ATI2", data=_bc_random("BC5", 16, 12)),
        _dds(16, 12, DDPF_FOURCC, fourcc=b"DX10", dxgi=28, data=rgba.tobytes()),
        _tga(rgba, 32, rle=True, right=True),
        _tga(rgba, 15, top=True, right=True),
        _bmp(16, 12, 4, _rle(idx, 4), comp=2, palette=_palette(16)),
        _bmp(16, 12, 8, _bmp_rows(idx, 8), palette=_palette(16), bf_size=1 << 20, clr_used=0),
    ]
    paths = []
    for i, d in enumerate(datas):
        paths.append(tmp_path / f"img{i}")
        paths[-1].write_bytes(d)
    kw = dict(width=8, height=8, pix_fmt="rgb24", num_threads=2)
    a = np_batch(spdl.io.load_image_batch(datas, **kw))
    b = np_batch(spdl.io.load_image_batch([str(p) for p in paths], **kw))
    np.testing.assert_array_equal(a, b)
    for i, d in enumerate(datas):
        np.testing.assert_array_equal(a[i], np_batch(spdl.io.load_image_batch([d], width=8, height=8,
                                                                                pix_fmt="rgb24"))[0])
