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
