"""Still WebP decoded by libwebp, as Pillow, browsers and dwebp decode it (issue 12).

FFmpeg 5.1's WebP decoder gave lossy WebP its own chroma upsampling then swscale's YUV to
RGB: up to 8 levels off libwebp's decode on a smooth 64x48 image, 17 at 37x23, 118 on a
3x5 one. Still WebP (lossy VP8, lossless VP8L, with an ALPH chunk, with EXIF/XMP/ICCP
chunks) now goes to libwebp's advanced API (spdl/io/_webp.pyx webp_decode): rgb24, or
rgba (straight alpha, the stored colour) when the image has alpha, fancy upsampling, one
thread. A forced decoder or decoder options still go to FFmpeg.

References, all EXACT, lossy and lossless alike: Pillow's decode (its wheel bundles
libwebp 1.6.0, the system's is 1.2.4: their decodes are the same), and `dwebp -ppm` /
`-pam` (the system's libwebp; those tests skip without the webp tools). Inputs are made
here with Pillow, and with cwebp/webpmux where named (skipped without them).

Damage: a cut file is a DecodeError naming libwebp's VP8_STATUS_NOT_ENOUGH_DATA, a broken
bitstream one naming VP8_STATUS_BITSTREAM_ERROR; the size is checked against max_pixels
before anything of that size is allocated. Metadata chunks never cost the pixels.
"""

from __future__ import annotations

import io
import struct
import subprocess

import numpy as np
import pytest
from PIL import Image, ImageOps

import spdl.io
from _util import np_batch, smooth_rgb, synth_rgb
from hostile_corpus import webp_vp8l_claiming, webp_vp8x_claiming
from test_webp_anim import _error, _load, _tool  # (the loaders and the tool check of both)

SIZES = [(64, 48), (37, 23), (1, 1), (3, 5), (301, 199)]


def _image(w, h, alpha, seed=0, smooth=True):
    """Photo-like content; with alpha: opaque, transparent and half-transparent areas."""
    a = (smooth_rgb if smooth else synth_rgb)(w, h, seed=seed)
    if not alpha:
        return Image.fromarray(a, "RGB")
    y, x = np.mgrid[0:h, 0:w]
    al = np.where((x + 2 * y) % 7 == 0, 0, np.where(x < w // 2, 255, 100)).astype(np.uint8)
    return Image.fromarray(np.dstack([a, al]), "RGBA")


def _webp(im, lossless, **kw):
    b = io.BytesIO()
    im.save(b, "WEBP", lossless=lossless, quality=80, exact=True, **kw)
    return b.getvalue()


def _pillow(data, mode):
    return np.asarray(Image.open(io.BytesIO(data)).convert(mode))


def _read_pnm(path):
    """A PPM (P6) or PAM (P7, RGB_ALPHA) as dwebp writes it."""
    data = path.read_bytes()
    if data[:2] == b"P6":
        return np.asarray(Image.open(path).convert("RGB"))
    end = data.index(b"ENDHDR\n") + len(b"ENDHDR\n")
    head = dict(line.split(b" ", 1) for line in data[3:end].split(b"\n") if b" " in line)
    w, h, d = int(head[b"WIDTH"]), int(head[b"HEIGHT"]), int(head[b"DEPTH"])
    return np.frombuffer(data[end:end + w * h * d], np.uint8).reshape(h, w, d)


def _dwebp(tmp_path, data, alpha):
    src, out = tmp_path / "in.webp", tmp_path / ("out.pam" if alpha else "out.ppm")
    src.write_bytes(data)
    subprocess.run([_tool("dwebp"), "-quiet", str(src), "-pam" if alpha else "-ppm", "-o",
                    str(out)], check=True)
    return _read_pnm(out)


# ---------------------------------------------------------------------------
# Pixels: exact against Pillow and dwebp
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("w,h", SIZES)
@pytest.mark.parametrize("alpha", [False, True], ids=["opaque", "alpha"])
@pytest.mark.parametrize("lossless", [False, True], ids=["lossy", "lossless"])
def test_equal_to_pillow(w, h, alpha, lossless):
    data = _webp(_image(w, h, alpha), lossless)
    for pix_fmt, mode in (("rgb24", "RGB"), ("rgba", "RGBA"), ("bgr24", "RGB")):
        ours = _load([data], pix_fmt=pix_fmt)[0]
        ref = _pillow(data, mode)
        np.testing.assert_array_equal(ours, ref[..., ::-1] if pix_fmt == "bgr24" else ref,
                                      err_msg=pix_fmt)


@pytest.mark.parametrize("alpha", [False, True], ids=["opaque", "alpha"])
@pytest.mark.parametrize("lossless", [False, True], ids=["lossy", "lossless"])
def test_decoded_format_follows_alpha(alpha, lossless):
    """pix_fmt=None: rgb24 for an image without alpha, rgba with it (alpha as stored)."""
    im = _image(37, 23, alpha)
    data = _webp(im, lossless)
    out = _load([data], pix_fmt=None)[0]
    assert out.shape == (23, 37, 4 if alpha else 3)
    if alpha:
        np.testing.assert_array_equal(out[..., 3], np.asarray(im)[..., 3])


@pytest.mark.parametrize("w,h", [(64, 48), (37, 23), (3, 5)])
@pytest.mark.parametrize("alpha", [False, True], ids=["opaque", "alpha"])
@pytest.mark.parametrize("lossless", [False, True], ids=["lossy", "lossless"])
def test_equal_to_dwebp(tmp_path, w, h, alpha, lossless):
    data = _webp(_image(w, h, alpha, seed=1), lossless)
    ref = _dwebp(tmp_path, data, alpha)
    np.testing.assert_array_equal(_load([data], pix_fmt="rgba" if alpha else "rgb24")[0], ref)


@pytest.mark.parametrize("args", [["-q", "80"], ["-q", "30", "-sharp_yuv"], ["-lossless"],
                                  ["-q", "75", "-alpha_q", "50"], ["-near_lossless", "60"]],
                         ids=["q80", "q30-sharp", "lossless", "alpha-q50", "near-lossless"])
def test_cwebp_files_equal_to_dwebp(tmp_path, args):
    """Files cwebp writes (its own encoder settings), decoded equal to dwebp's decode."""
    im = _image(97, 61, "-alpha_q" in args, seed=2, smooth=False)
    png, webp = tmp_path / "in.png", tmp_path / "out.webp"
    im.save(png)
    subprocess.run([_tool("cwebp"), "-quiet", *args, str(png), "-o", str(webp)], check=True)
    data = webp.read_bytes()
    alpha = im.mode == "RGBA"
    ref = _dwebp(tmp_path, data, alpha)
    np.testing.assert_array_equal(_load([data], pix_fmt="rgba" if alpha else "rgb24")[0], ref)
    np.testing.assert_array_equal(_load([str(webp)], pix_fmt="rgba" if alpha else "rgb24")[0],
                                  ref)


def test_paths_bytes_and_stages_agree(tmp_path, load, stages):
    data = _webp(_image(37, 23, True), False)
    path = tmp_path / "a.webp"
    path.write_bytes(data)
    ref = _pillow(data, "RGBA")
    for src in (str(path), data):
        np.testing.assert_array_equal(
            np_batch(load([src], width=None, height=None, pix_fmt="rgba"))[0], ref)
    frames = stages.load_one(data)
    assert (frames.width, frames.height, frames.pix_fmt) == (37, 23, "rgba")


def test_resized_like_the_native_decode():
    """At 224x224 the resampler resizes libwebp's RGB: the same as resizing the native
    decode (a batch of mixed WebPs with 2 threads, equal to one by one)."""
    datas = [_webp(_image(500, 375, a, seed=s), ll) for s, (a, ll) in
             enumerate([(False, False), (True, False), (False, True), (True, True)])]
    batch = _load(datas, width=224, height=224, pix_fmt="rgb24", num_threads=2)
    assert batch.shape == (4, 224, 224, 3)
    for i, d in enumerate(datas):
        np.testing.assert_array_equal(_load([d], width=224, height=224, pix_fmt="rgb24")[0],
                                      batch[i])
    # the same pixels as the native decode run through the same resize
    native = _load([datas[0]], pix_fmt="rgb24")[0]
    png = io.BytesIO()
    Image.fromarray(native).save(png, "PNG")
    np.testing.assert_array_equal(_load([png.getvalue()], width=224, height=224)[0], batch[0])


@pytest.mark.parametrize("pix_fmt", ["rgb24", "rgba", "gray", "yuv444p"])
@pytest.mark.parametrize("alpha", [False, True], ids=["opaque", "alpha"])
def test_lossless_equals_the_same_png_in_every_output(pix_fmt, alpha):
    """A lossless WebP (still or animated) and a PNG of the same pixels give the same
    batch, resized to an odd-width source's 96x80 and repeated: swscale reads a pixel past
    an odd width, which is zero padding in our frames as in FFmpeg's (stale heap before)."""
    im = _image(301, 199, alpha, smooth=False)
    png = io.BytesIO()
    im.save(png, "PNG")
    anim = io.BytesIO()
    im.save(anim, "WEBP", lossless=True, exact=True, save_all=True, append_images=[im])
    srcs = [png.getvalue(), _webp(im, True)]
    if not alpha:  # (Pillow's animation encoder changes the colour under alpha 0)
        srcs.append(anim.getvalue())
    kw = dict(width=96, height=80, pix_fmt=pix_fmt)
    first = _load(srcs * 2, **kw)
    for k in range(1, 2 * len(srcs)):
        np.testing.assert_array_equal(first[k], first[0], err_msg=str(k))
    np.testing.assert_array_equal(_load(srcs[1:2], **kw)[0], first[0])


def test_forced_decoder_goes_to_ffmpeg():
    """DecodeConfig(decoder="webp") keeps FFmpeg's decoder (its own chroma upsampling)."""
    data = _webp(_image(37, 23, False), False)
    ours = _load([data])[0].astype(int)
    ffmpeg = _load([data], decode_config=spdl.io.DecodeConfig(decoder="webp"))[0].astype(int)
    np.testing.assert_array_equal(ours, _pillow(data, "RGB"))
    assert np.abs(ours - ffmpeg).max() > 0  # FFmpeg's decode, not libwebp's


# ---------------------------------------------------------------------------
# Metadata chunks and orientation
# ---------------------------------------------------------------------------


def _exif(orientation, prefix=True):
    e = Image.Exif()
    e[0x0112] = orientation
    raw = e.tobytes()
    return raw if prefix else raw[6:] if raw.startswith(b"Exif\0\0") else raw


def _icc():
    try:
        from PIL import ImageCms
    except ImportError:
        pytest.skip("Pillow without ImageCms")
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize("alpha", [False, True], ids=["opaque", "alpha"])
@pytest.mark.parametrize("lossless", [False, True], ids=["lossy", "lossless"])
@pytest.mark.parametrize("meta", ["exif", "exif-bad", "xmp", "icc", "all"])
def test_metadata_chunks_keep_the_pixels(alpha, lossless, meta):
    im = _image(37, 23, alpha)
    kw = {"exif": {"exif": _exif(1)}, "exif-bad": {"exif": b"Exif\0\0" + b"\xff" * 30},
          "xmp": {"xmp": b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>"}, "icc": {"icc_profile": _icc()},
          "all": {"exif": _exif(1, prefix=False), "xmp": b"<x/>", "icc_profile": _icc()}}[meta]
    plain, data = _webp(im, lossless), _webp(im, lossless, **kw)
    assert data[12:16] == b"VP8X" and len(data) > len(plain)
    mode = "RGBA" if alpha else "RGB"
    ours = _load([data], pix_fmt=mode.lower() if alpha else "rgb24")[0]
    np.testing.assert_array_equal(ours, _pillow(data, mode))
    np.testing.assert_array_equal(ours, _load([plain], pix_fmt="rgba" if alpha else "rgb24")[0])


def test_webpmux_chunks_keep_the_pixels(tmp_path):
    """EXIF, XMP and ICCP chunks added by webpmux (not Pillow) to a lossy WebP with alpha."""
    mux = _tool("webpmux")
    data = _webp(_image(64, 48, True), False)
    src = tmp_path / "a.webp"
    src.write_bytes(data)
    for name, payload in (("exif", _exif(1, prefix=False)), ("xmp", b"<x/>"), ("icc", _icc())):
        (tmp_path / name).write_bytes(payload)
    cur = src
    for name in ("exif", "xmp", "icc"):
        nxt = tmp_path / f"{name}.webp"
        subprocess.run([mux, "-set", name, str(tmp_path / name), str(cur), "-o", str(nxt)],
                       check=True, capture_output=True)
        cur = nxt
    out = cur.read_bytes()
    assert b"EXIF" in out and b"XMP " in out and b"ICCP" in out
    np.testing.assert_array_equal(_load([str(cur)], pix_fmt="rgba")[0], _pillow(data, "RGBA"))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("lossless", [False, True], ids=["lossy", "lossless"])
def test_orientation_as_displayed(orientation, lossless):
    """The EXIF orientation applied: equal to Pillow's exif_transpose of its decode; with
    apply_orientation=False the stored pixels."""
    data = _webp(_image(37, 23, False), lossless, exif=_exif(orientation))
    shown = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    np.testing.assert_array_equal(_load([data])[0], shown)
    stored = _load([data], decode_config=spdl.io.DecodeConfig(apply_orientation=False))[0]
    np.testing.assert_array_equal(stored, _pillow(data, "RGB"))


# ---------------------------------------------------------------------------
# Damage and limits
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [False, True], ids=["opaque", "alpha"])
@pytest.mark.parametrize("lossless", [False, True], ids=["lossy", "lossless"])
def test_cut_is_a_decode_error_naming_libwebp(alpha, lossless):
    data = _webp(_image(40, 30, alpha), lossless)
    for n in range(20, len(data), max(1, len(data) // 60)):
        e = _error(data[:n])
        assert isinstance(e, spdl.io.DecodeError), (n, e)
        assert "VP8_STATUS_NOT_ENOUGH_DATA" in str(e) and "truncated" in str(e), (n, e)


def test_broken_bitstream_is_a_decode_error_naming_libwebp():
    data = bytearray(_webp(_image(40, 30, False), False))
    at = data.index(b"\x9d\x01\x2a")     # the VP8 key frame's start code
    data[at] = 0
    e = _error(bytes(data))
    assert isinstance(e, spdl.io.DecodeError) and "VP8_STATUS_BITSTREAM_ERROR" in str(e), e
    # a VP8X canvas of another size than the image in it
    e = _error(webp_vp8x_claiming(3, 3))
    assert isinstance(e, spdl.io.DecodeError) and "VP8_STATUS_BITSTREAM_ERROR" in str(e), e


def test_mutated_files_load_or_fail_cleanly():
    """300 WebPs with random bytes changed: each loads or fails with an spdl.io error."""
    rng = np.random.RandomState(7)
    seeds = [_webp(_image(24, 16, a), ll) for a in (False, True) for ll in (False, True)]
    for k in range(300):
        d = bytearray(seeds[k % 4])
        for _ in range(rng.randint(1, 4)):
            d[rng.randint(12, len(d))] = rng.randint(0, 256)
        buf = spdl.io.load_image_batch([bytes(d)], width=8, height=8, strict=False)
        assert len(buf.indices) + len(buf.errors) == 1
        for e in buf.errors.values():
            assert isinstance(e, spdl.io.SpdlIOError), repr(e)


def _vp8x_around_vp8l(w, h):
    """An extended WebP whose canvas and lossless image both claim w x h, with no data."""
    inner = webp_vp8l_claiming(w, h)[12:]
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00" * 4 + (w - 1).to_bytes(3, "little") \
        + (h - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x + inner
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("make", [lambda: webp_vp8l_claiming(16384, 16384),
                                  lambda: _vp8x_around_vp8l(12000, 12000)],
                         ids=["vp8l", "vp8x"])
def test_too_large_before_allocating(make):
    """Refused from the header (libwebp's own limits are 16384 each, 2^32 in all)."""
    e = _error(make())
    assert isinstance(e, spdl.io.ImageTooLargeError) and "larger than max_pixels" in str(e), e


def test_max_pixels_is_the_image_size():
    data = _webp(_image(37, 23, False), False)
    assert _load([data], decode_config=spdl.io.DecodeConfig(max_pixels=37 * 23)).shape[1:3] \
        == (23, 37)
    e = _error(data, decode_config=spdl.io.DecodeConfig(max_pixels=37 * 23 - 1))
    assert isinstance(e, spdl.io.ImageTooLargeError) and "37x23" in str(e), e


def test_trailing_bytes_after_the_riff_are_ignored():
    data = _webp(_image(37, 23, True), False)
    np.testing.assert_array_equal(_load([data + b"\0junk" * 10], pix_fmt="rgba")[0],
                                  _pillow(data, "RGBA"))

