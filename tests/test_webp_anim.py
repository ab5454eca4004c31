"""Animated WebP: its first frame as a viewer shows it (issue 12).

FFmpeg 5.1 decodes still WebP only; an animated one (VP8X animation flag) is decoded by
libwebp's animation decoder (spdl/io/_webp.pyx): the canvas's size, the first frame at
its offset, the rest of the canvas transparent, as rgba, then converted like any rgba
image (the alpha policy: rgb24/bgr24/gray are the stored colour, alpha dropped).

Pillow decodes animated WebP with libwebp's same animation decoder, so its first frame is
the reference: exact, lossless and lossy frames alike (Pillow's wheel bundles libwebp
1.6.0, the system's is 1.2.4: their decodes are the same).
Inputs are made here with Pillow, and with webpmux/img2webp/gif2webp when present (those
tests skip without them).

A file cut after its first frame loads that frame (the first frame is all we show, as a
browser shows what has arrived); cut inside the first frame it is a DecodeError.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import struct

import numpy as np
import pytest
from PIL import Image

import spdl.io
from _util import np_batch

LOSSY_TOLERANCE = 0


def _load(srcs, **kw):
    kw.setdefault("width", None)
    kw.setdefault("height", None)
    return np_batch(spdl.io.load_image_batch(srcs, **kw))


def _error(data, **kw):
    kw.setdefault("width", None)
    kw.setdefault("height", None)
    with pytest.raises(spdl.io.BatchLoadError) as e:
        spdl.io.load_image_batch([data], **kw)
    return e.value.errors[0]


def _tool(name):
    if shutil.which(name) is None:
        pytest.skip(f"no {name} CLI (webp tools) to make the input")
    return name


def _frames(w, h, n=3, alpha=True, seed=0):
    """n RGBA frames of smooth content (lossy-friendly) with a transparent hole and a
    half-transparent band, each a little different."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w]
    out = []
    for k in range(n):
        a = np.empty((h, w, 4), np.uint8)
        a[..., 0] = (x * 255 // max(w - 1, 1) + 40 * k) % 256
        a[..., 1] = y * 255 // max(h - 1, 1)
        a[..., 2] = (x + y + 17 * k) % 256
        a[..., 3] = 255
        if alpha:
            a[h // 4: h // 2, w // 4: w // 2, 3] = 0
            a[h // 2: h // 2 + 3, :, 3] = 128
        a[..., :3] = np.clip(a[..., :3].astype(int) + rng.randint(-2, 3, (h, w, 3)), 0, 255)
        out.append(Image.fromarray(a, "RGBA"))
    return out


def _pillow_anim(frames, **kw):
    b = io.BytesIO()
    frames[0].save(b, "WEBP", save_all=True, append_images=frames[1:], duration=80, **kw)
    data = b.getvalue()
    assert data[12:16] == b"VP8X" and data[20] & 0x02, "Pillow wrote no animated WebP"
    return data


def _first(data, mode="RGBA"):
    im = Image.open(io.BytesIO(data))
    assert getattr(im, "n_frames", 1) >= 1
    im.seek(0)
    return np.asarray(im.convert(mode))


def _check(data, tol):
    """Our first frame in rgba and rgb24, bytes and path alike, vs Pillow's."""
    ours = _load([data, data], pix_fmt="rgba")
    ref = _first(data, "RGBA")
    assert ours.shape[1:] == ref.shape
    diff = np.abs(ours[0].astype(int) - ref).max()
    assert diff <= tol, diff
    np.testing.assert_array_equal(ours[0], ours[1])
    rgb = _load([data], pix_fmt="rgb24")[0]
    np.testing.assert_array_equal(rgb, ours[0][..., :3])  # stored colour, alpha dropped
    return ours[0]


@pytest.mark.parametrize("lossless", [True, False], ids=["lossless", "lossy"])
@pytest.mark.parametrize("alpha", [True, False], ids=["alpha", "opaque"])
def test_pillow_animation_first_frame(lossless, alpha):
    data = _pillow_anim(_frames(61, 37, alpha=alpha), lossless=lossless, quality=80)
    out = _check(data, 0 if lossless else LOSSY_TOLERANCE)
    if lossless:  # the visible pixels are the frame's (the encoder may drop hidden colours)
        src = np.asarray(_frames(61, 37, alpha=alpha)[0])
        shown = src[..., 3] > 0
        np.testing.assert_array_equal(out[shown], src[shown])


def test_path_and_async(tmp_path):
    data = _pillow_anim(_frames(20, 16), lossless=True)
    path = tmp_path / "anim.webp"
    path.write_bytes(data)
    import asyncio

    a = _load([str(path)], pix_fmt="rgba")[0]
    b = np_batch(asyncio.run(spdl.io.async_load_image_batch([data], width=None, height=None,
                                                            pix_fmt="rgba")))[0]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, _first(data))


def test_resized_and_in_a_mixed_batch():
    anim = _pillow_anim(_frames(64, 48, alpha=False), lossless=True)
    b = io.BytesIO()
    _frames(64, 48, n=1, alpha=False)[0].save(b, "WEBP", lossless=True)  # a still WebP: FFmpeg's path
    still = b.getvalue()
    out = _load([anim, still, anim], width=32, height=24, pix_fmt="rgba")
    assert out.shape == (3, 24, 32, 4)
    np.testing.assert_array_equal(out[0], out[2])
    # the first frame is the still image's pixels: both paths resize them alike
    np.testing.assert_array_equal(out[0], out[1])


def _webpmux_anim(tmp_path, first, second, offset, blend="+b", dispose=0, lossy=False):
    """A two-frame animation: first at offset (even, as WebP wants), second at 0,0 making
    the canvas second's size."""
    cwebp_args = ["-q", "90"] if lossy else ["-lossless"]
    for name, im in (("a", first), ("b", second)):
        im.save(tmp_path / f"{name}.png")
        subprocess.run([_tool("cwebp"), "-quiet", "-exact", *cwebp_args,
                        str(tmp_path / f"{name}.png"), "-o", str(tmp_path / f"{name}.webp")],
                       check=True)
    out = tmp_path / "anim.webp"
    blend = "" if blend == "+b" else "-b"
    subprocess.run([_tool("webpmux"),
                    "-frame", str(tmp_path / "a.webp"), f"+100+{offset[0]}+{offset[1]}+{dispose}{blend}",
                    "-frame", str(tmp_path / "b.webp"), "+100+0+0+0",
                    "-loop", "0", "-o", str(out)], check=True, capture_output=True)
    return out.read_bytes()


@pytest.mark.parametrize("blend", ["+b", "-b"], ids=["blend", "no-blend"])
@pytest.mark.parametrize("dispose", [0, 1])
@pytest.mark.parametrize("lossy", [False, True], ids=["lossless", "lossy"])
def test_first_frame_smaller_than_canvas(tmp_path, blend, dispose, lossy):
    """The first frame at an offset on a larger canvas: outside it, transparent black
    (the canvas a viewer starts from); inside, the frame's pixels. Pixels of alpha 0
    inside the frame: their stored colour without blending; with blending over the empty
    canvas, libwebp (Pillow too) gives transparent black."""
    first = _frames(20, 14)[0]
    data = _webpmux_anim(tmp_path, first, _frames(50, 40, seed=1)[1], (10, 6), blend, dispose,
                         lossy)
    out = _check(data, LOSSY_TOLERANCE if lossy else 0)
    assert out.shape == (40, 50, 4)
    outside = np.ones((40, 50), bool)
    outside[6:20, 10:30] = False
    assert (out[outside] == 0).all()
    if not lossy:
        inner = out[6:20, 10:30]
        f = np.asarray(first)
        shown = f[..., 3] > 0 if blend == "+b" else np.ones(f.shape[:2], bool)
        np.testing.assert_array_equal(inner[shown], f[shown])


def test_img2webp(tmp_path):
    srcs = []
    for i, im in enumerate(_frames(40, 30, alpha=False)):
        srcs.append(str(tmp_path / f"f{i}.png"))
        im.convert("RGB").save(srcs[-1])
    out = tmp_path / "anim.webp"
    subprocess.run([_tool("img2webp"), "-loop", "0", "-lossy", "-q", "75", *srcs, "-o", str(out)],
                   check=True, capture_output=True)
    data = out.read_bytes()
    if not data[20] & 0x02:
        pytest.skip("img2webp wrote a still image")
    _check(data, LOSSY_TOLERANCE)


def _gif(tmp_path):
    """A 3-frame GIF whose later frames are smaller (gif2webp keeps them as sub-frames)
    and whose first frame has a transparent index."""
    frames = []
    for k in range(3):
        a = np.zeros((30, 40), np.uint8)
        a[:, :] = 1 + k
        a[5:10, 5:30] = 0
        im = Image.fromarray(a, "P")
        im.putpalette([255, 0, 255, 200, 10, 10, 10, 200, 10, 10, 10, 200] + [0] * 756)
        frames.append(im)
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], transparency=0, duration=50,
                   loop=0, disposal=1)
    return path


@pytest.mark.parametrize("lossy", [False, True], ids=["lossless", "lossy"])
def test_gif2webp(tmp_path, lossy):
    out = tmp_path / "anim.webp"
    subprocess.run([_tool("gif2webp"), "-quiet", *(["-lossy"] if lossy else []),
                    str(_gif(tmp_path)), "-o", str(out)], check=True)
    data = out.read_bytes()
    assert data[20] & 0x02
    _check(data, LOSSY_TOLERANCE if lossy else 0)


def test_exif_orientation_applies(tmp_path):
    """An EXIF chunk in an animated WebP turns its first frame as it turns a still."""
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _pillow_anim(_frames(30, 20), lossless=True, exif=exif.tobytes())
    assert b"EXIF" in data
    stored = _load([data], pix_fmt="rgba",
                   decode_config=spdl.io.DecodeConfig(apply_orientation=False))[0]
    np.testing.assert_array_equal(stored, _first(data))
    shown = _load([data], pix_fmt="rgba")[0]
    np.testing.assert_array_equal(shown, np.rot90(stored, k=-1))  # 6: turn 90 clockwise
    rgb = _load([data], pix_fmt="rgb24")[0]
    np.testing.assert_array_equal(rgb, shown[..., :3])


def _riff(chunks):
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _chunk(tag, payload):
    return tag + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) & 1)


def _top_chunks(data):
    pos, out = 12, []
    while pos + 8 <= len(data):
        size = struct.unpack("<I", data[pos + 4: pos + 8])[0]
        out.append((data[pos: pos + 4], pos, 8 + size + (size & 1)))
        pos += 8 + size + (size & 1)
    return out


def test_zero_frames_refused():
    vp8x = _chunk(b"VP8X", bytes([0x02, 0, 0, 0]) + (15).to_bytes(3, "little") * 2)
    anim = _chunk(b"ANIM", b"\0\0\0\0\0\0")
    e = _error(_riff([vp8x, anim]))
    assert isinstance(e, spdl.io.UnsupportedFormatError), e
    assert "no frames" in str(e)


def test_huge_canvas_is_too_large():
    """The canvas size is checked before libwebp allocates a canvas of it."""
    data = bytearray(_pillow_anim(_frames(16, 16), lossless=True))
    data[24:27] = (16383).to_bytes(3, "little")   # 16384 x 16384 canvas, frames unchanged
    data[27:30] = (16383).to_bytes(3, "little")
    e = _error(bytes(data))
    assert isinstance(e, spdl.io.ImageTooLargeError), e
    small = _pillow_anim(_frames(16, 16), lossless=True)
    e = _error(small, decode_config=spdl.io.DecodeConfig(max_pixels=255))
    assert isinstance(e, spdl.io.ImageTooLargeError), e
    assert _load([small], decode_config=spdl.io.DecodeConfig(max_pixels=256)).shape[1:3] == (16, 16)


def test_truncated_after_first_frame_loads_it():
    """Decided: the first frame is all we show, so a file cut after it (inside the second
    frame, or with the second frame missing) loads that frame, like a browser shows what
    has arrived."""
    data = _pillow_anim(_frames(24, 18), lossless=True)
    full = _load([data], pix_fmt="rgba")[0]
    anmf = [(pos, size) for tag, pos, size in _top_chunks(data) if tag == b"ANMF"]
    assert len(anmf) == 3
    end1 = anmf[0][0] + anmf[0][1]
    for cut in (end1, end1 + 5, end1 + 40, anmf[1][0] + anmf[1][1] - 1, len(data) - 1):
        np.testing.assert_array_equal(_load([data[:cut]], pix_fmt="rgba")[0], full)


def test_truncated_in_first_frame_is_refused():
    data = _pillow_anim(_frames(24, 18), lossless=True)
    anmf = [(pos, size) for tag, pos, size in _top_chunks(data) if tag == b"ANMF"]
    end1 = anmf[0][0] + anmf[0][1]
    for cut in (30, anmf[0][0] + 4, anmf[0][0] + 30, end1 - 2):
        e = _error(data[:cut])
        assert isinstance(e, spdl.io.DecodeError), (cut, e)


def test_damaged_first_frame_is_refused():
    data = bytearray(_pillow_anim(_frames(24, 18), lossless=True))
    pos, size = [(p, s) for tag, p, s in _top_chunks(bytes(data)) if tag == b"ANMF"][0]
    # the frame's image data (after ANMF's 16-byte header and the VP8L chunk header)
    start = pos + 8 + 16 + 8
    data[start: pos + size] = b"\xff" * (pos + size - start)
    e = _error(bytes(data))
    assert isinstance(e, spdl.io.DecodeError), e


def test_ffmpeg_decoder_forced_does_not_take_it():
    """An animated WebP is decoded by libwebp unless a decoder is forced: FFmpeg 5.1's
    WebP decoder then refuses it (it has no animation support), never wrong pixels."""
    data = _pillow_anim(_frames(16, 16), lossless=True)
    with pytest.raises(spdl.io.BatchLoadError):
        spdl.io.load_image_batch([data], width=None, height=None,
                                 decode_config=spdl.io.DecodeConfig(decoder="webp"))


def test_mutated_files_never_crash():
    """Hostile input: byte changes in the headers and chunk sizes, and cuts, of a small
    animated WebP either load (canvas size) or fail with an spdl.io error; never a crash,
    and never more than max_pixels allocated for a canvas."""
    base = _pillow_anim(_frames(12, 10), lossless=True)
    lossy = _pillow_anim(_frames(12, 10), quality=50)
    rng = np.random.RandomState(12)
    cfg = spdl.io.DecodeConfig(max_pixels=1 << 20)
    srcs = []
    for data in (base, lossy):
        for _ in range(150):
            d = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                pos = rng.randint(0, min(len(d), 96)) if rng.rand() < 0.7 else rng.randint(0, len(d))
                d[pos] = rng.randint(0, 256)
            if rng.rand() < 0.3:
                d = d[:rng.randint(12, len(d))]
            srcs.append(bytes(d))
    out = spdl.io.load_image_batch(srcs, width=8, height=8, decode_config=cfg, strict=False)
    assert len(out.indices) + len(out.errors) == len(srcs)
    for e in out.errors.values():
        assert isinstance(e, spdl.io.SpdlIOError), e
