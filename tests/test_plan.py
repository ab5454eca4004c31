"""The load plan: the loaders' arguments compiled once, checked, and never silently dropped."""

from __future__ import annotations

import dataclasses
import inspect
import io

import numpy as np
import pytest
from PIL import Image

import spdl.io
from _util import np_batch
from spdl.io._plan import LoadPlan, compile_plan


def _png(w, h, seed=0):
    a = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    bio = io.BytesIO()
    Image.fromarray(a).save(bio, "PNG")
    return bio.getvalue(), a


def test_plan_is_frozen_and_filled_in():
    plan = compile_plan(width=224, height=224)
    assert isinstance(plan, LoadPlan)
    assert (plan.scale_mode, plan.scale_algo, plan.pix_fmt, plan.strict) == ("pad", "bicubic", "rgb24", True)
    assert plan.demux_config == spdl.io.DemuxConfig() and plan.decode_config == spdl.io.DecodeConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.width = 3  # type: ignore[misc]


@pytest.mark.parametrize("name,value,exc", [
    ("width", 0, ValueError), ("width", -3, ValueError), ("width", 1.5, TypeError), ("width", True, TypeError),
    ("width", "224", TypeError), ("height", 70000, ValueError), ("pix_fmt", "RGB24", ValueError),
    ("pix_fmt", "yuv410p", ValueError), ("scale_mode", "fit", ValueError), ("scale_algo", "cubic", ValueError),
    ("filter_desc", 3, TypeError), ("strict", 1, TypeError), ("strict", "yes", TypeError),
    ("demux_config", {}, TypeError), ("decode_config", spdl.io.DemuxConfig(), TypeError),
    ("device_config", 0, TypeError),
])
def test_bad_argument_is_named(name, value, exc):
    kw = dict(width=8, height=8)
    kw[name] = value
    with pytest.raises(exc) as e:
        compile_plan(**kw)
    assert name in str(e.value)
    with pytest.raises(exc):
        spdl.io.load_image_batch([b"x"], **kw)


def test_numpy_ints_and_str_subclasses_accepted():
    plan = compile_plan(width=np.int64(32), height=np.uint16(16), pix_fmt=np.str_("gray"),
                        scale_mode=np.str_("crop"))
    assert (plan.width, plan.height, plan.pix_fmt, plan.scale_mode) == (32, 16, "gray", "crop")
    assert type(plan.width) is int and type(plan.pix_fmt) is str


def test_aliases():
    assert compile_plan(width=8, height=8, scale_mode=None).scale_mode == "stretch"
    assert compile_plan(width=8, height=8, pix_fmt="gray16le").pix_fmt == "gray16"
    assert compile_plan(width=8, height=8, pix_fmt="gray8").pix_fmt == "gray"


def test_one_signature_for_every_loader():
    """The sync and async loaders show compile_plan's keyword arguments, with one docstring."""
    want = ["srcs", *inspect.signature(compile_plan).parameters]
    for f in (spdl.io.load_image_batch, spdl.io.async_load_image_batch):
        assert list(inspect.signature(f).parameters) == want
        assert "scale_mode" in f.__doc__ and "filter_desc" in f.__doc__


@pytest.mark.parametrize("mode", ["pad", "crop", "stretch"])
@pytest.mark.parametrize("iw,ih,W,H", [(400, 200, 224, 224), (150, 300, 224, 224), (301, 199, 97, 61),
                                       (213, 100, 100, 100), (215, 100, 100, 100), (3, 5, 97, 61)])
def test_python_geometry_matches_the_core(mode, iw, ih, W, H):
    """LoadPlan.geometry (used by backends without the C core) places the image where the
    CPU core does: a white image on black padding shows the placement."""
    bio = io.BytesIO()
    Image.new("RGB", (iw, ih), (255, 255, 255)).save(bio, "PNG")
    out = np_batch(spdl.io.load_image_batch([bio.getvalue()], width=W, height=H, scale_mode=mode,
                                            scale_algo="neighbor"))[0]
    ow, oh, sw, sh, x, y = compile_plan(width=W, height=H, scale_mode=mode).geometry(iw, ih)
    assert (ow, oh) == (W, H) == (out.shape[1], out.shape[0])
    lit = out[..., 0] > 127
    rows, cols = np.flatnonzero(lit.any(1)), np.flatnonzero(lit.any(0))
    assert (rows[0], rows[-1] + 1) == (max(y, 0), min(y + sh, H))
    assert (cols[0], cols[-1] + 1) == (max(x, 0), min(x + sw, W))


def test_filter_desc_then_the_plan():
    """filter_desc runs first; width, height and pix_fmt then apply to its output (nothing is
    dropped: the user's pix_fmt and size are what come back)."""
    data, a = _png(64, 48)
    out = spdl.io.load_image_batch([data], width=32, height=24, pix_fmt="gray", filter_desc="hflip")
    assert out.shape == (1, 24, 32, 1) and out.pix_fmt == "gray"
    ref = spdl.io.load_image_batch([_encode(a[:, ::-1])],
                                   width=32, height=24, pix_fmt="gray")
    np.testing.assert_array_equal(np_batch(out), np_batch(ref))
    # the graph's output as it is
    raw = spdl.io.load_image_batch([data], width=None, height=None, pix_fmt=None,
                                   filter_desc="scale=w=20:h=10,format=pix_fmts=gray")
    assert raw.shape == (1, 10, 20, 1)


def _encode(a):
    bio = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a)).save(bio, "PNG")
    return bio.getvalue()


def test_equivalent_strings_are_all_run():
    """Any spelling of a filter is run by libavfilter: "scale=224:224" and the long form give
    the same pixels (no string takes a different path for how it is written)."""
    data, _ = _png(100, 80)
    kw = dict(width=None, height=None, pix_fmt=None)
    short = np_batch(spdl.io.load_image_batch([data], filter_desc="scale=50:40", **kw))
    long = np_batch(spdl.io.load_image_batch([data], filter_desc="scale=width=50:height=40", **kw))
    assert short.shape == (1, 40, 50, 3)
    np.testing.assert_array_equal(short, long)


@pytest.mark.parametrize("src_kind", ["png", "jpeg"])
@pytest.mark.parametrize("kw", [dict(width=64, height=64), dict(width=None, height=None),
                                dict(width=50, height=30, scale_mode="crop"),
                                dict(width=50, height=30, filter_desc="vflip")])
def test_rgbp_is_rgb24_in_planes(src_kind, kw):
    """pix_fmt="rgbp" is planar RGB (N, 3, H, W): exactly the rgb24 batch, transposed."""
    _, a = _png(77, 53, seed=3)
    bio = io.BytesIO()
    Image.fromarray(a).save(bio, "PNG" if src_kind == "png" else "JPEG")
    packed = spdl.io.load_image_batch([bio.getvalue()] * 2, **kw)
    planar = spdl.io.load_image_batch([bio.getvalue()] * 2, pix_fmt="rgbp", **kw)
    assert planar.pix_fmt == "rgbp" and planar.shape[1] == 3
    np.testing.assert_array_equal(np_batch(planar).transpose(0, 2, 3, 1), np_batch(packed))


def test_decode_packets_takes_the_plan_keywords():
    data, _ = _png(64, 48)
    frames = spdl.io.decode_packets(spdl.io.demux_image(data), width=32, height=32, scale_mode="crop",
                                    pix_fmt="gray")
    assert (frames.width, frames.height, frames.pix_fmt) == (32, 32, "gray")
    row = np_batch(spdl.io.convert_frames([frames]))
    batch = np_batch(spdl.io.load_image_batch([data], width=32, height=32, scale_mode="crop", pix_fmt="gray"))
    np.testing.assert_array_equal(row, batch)


# ---------------------------------------------------------------------------
# Layouts found missing by porting Meta SPDL's image tests
# ---------------------------------------------------------------------------


def test_yuv420p_is_i420_planes():
    """pix_fmt="yuv420p": (N, 1, H * 3 / 2, W), Y then U then V, as FFmpeg converts."""
    import av

    y, x = np.mgrid[0:48, 0:64]
    a = np.stack([x * 4, y * 5, (x + y) * 2], -1).astype(np.uint8)  # smooth: chroma filters agree
    data = _encode(a)
    out = np_batch(spdl.io.load_image_batch([data, data], width=None, height=None, pix_fmt="yuv420p"))
    assert out.shape == (2, 1, 72, 64) and out.dtype == np.uint8
    ref = av.VideoFrame.from_ndarray(a, format="rgb24").reformat(format="yuv420p", interpolation="BICUBIC")
    y, u, v = (np.frombuffer(bytes(p), np.uint8).reshape(p.height, p.line_size)[:, :p.width] for p in ref.planes)
    i420 = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(72, 64)
    diff = np.abs(out[0, 0].astype(int) - i420)
    assert diff[:48].max() <= 1 and diff.max() <= 2, (diff[:48].max(), diff.max())
    resized = spdl.io.load_image_batch([data], width=32, height=32, pix_fmt="yuv420p")
    assert resized.shape == (1, 1, 48, 32)


def test_native_jpeg_batches_as_i420():
    """pix_fmt=None: a 4:2:0 JPEG batches in its decoded YUV, as planes; the Y plane is
    the luma PyAV's decoder gives, within IDCT rounding."""
    import av

    _, a = _png(64, 48, seed=6)
    bio = io.BytesIO()
    Image.fromarray(a).save(bio, "JPEG", quality=90)
    out = spdl.io.load_image_batch([bio.getvalue()], width=None, height=None, pix_fmt=None)
    assert out.shape == (1, 1, 72, 64) and out.pix_fmt == "yuvj420p"
    with av.open(io.BytesIO(bio.getvalue())) as c:
        frame = next(c.decode(video=0))
    y = frame.to_ndarray(format="gray")
    assert np.abs(np_batch(out)[0, 0, :48].astype(int) - y).max() <= 2


def test_yuv420p_needs_even_sizes():
    with pytest.raises(ValueError, match="even"):
        compile_plan(width=31, height=32, pix_fmt="yuv420p")
    data, _ = _png(33, 20)
    with pytest.raises(spdl.io.UnbatchableFormatError, match="odd"):
        spdl.io.load_image_batch([data], width=None, height=None, pix_fmt="yuv420p")


def test_16bit_big_endian_png_native():
    """A 16-bit PNG (big-endian samples) with pix_fmt=None: uint16 in the machine's order,
    exact."""
    import av

    a16 = np.random.default_rng(7).integers(0, 65536, (20, 30, 3)).astype(np.uint16)
    bio = io.BytesIO()
    with av.open(bio, "w", format="image2pipe") as c:
        s = c.add_stream("png", rate=1)
        s.width, s.height, s.pix_fmt = 30, 20, "rgb48be"
        for pkt in [*s.encode(av.VideoFrame.from_ndarray(a16, format="rgb48le")), *s.encode()]:
            c.mux(pkt)
    out = spdl.io.load_image_batch([bio.getvalue()], width=None, height=None, pix_fmt=None)
    assert out.pix_fmt == "rgb48le" and out.shape == (1, 20, 30, 3)
    np.testing.assert_array_equal(np_batch(out)[0], a16)


def test_frame_metadata():
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "hello")
    bio = io.BytesIO()
    Image.new("RGB", (8, 8)).save(bio, "PNG", pnginfo=info)
    frames = spdl.io.decode_packets(spdl.io.demux_image(bio.getvalue()))
    assert frames.metadata == {"Title": "hello"}
    _, a = _png(8, 8)
    assert spdl.io.decode_packets(spdl.io.demux_image(_encode(a))).metadata == {}
