"""get_video_filter_desc: the strings it builds, its validation, and the parse round trip."""

from __future__ import annotations

import itertools

import pytest

import spdl.io
from spdl.io import get_video_filter_desc as gvfd
from spdl.io._filter_desc import PIX_FMTS, SCALE_ALGOS, SimpleFilter, parse_simple_filter


@pytest.mark.parametrize("kwargs,expected", [
    ({}, "format=pix_fmts=rgb24"),
    (dict(pix_fmt=None), None),
    (dict(pix_fmt="gray16"), "format=pix_fmts=gray16le"),
    (dict(pix_fmt="gray8"), "format=pix_fmts=gray"),
    (dict(scale_width=224, scale_height=224),
     "scale=width=224:height=224:flags=bicubic:force_original_aspect_ratio=decrease,"
     "pad=width=224:height=224:x=-1:y=-1:color=black,format=pix_fmts=rgb24"),
    (dict(scale_width=224, scale_height=112, scale_mode="crop", scale_algo="bilinear"),
     "scale=width=224:height=112:flags=bilinear:force_original_aspect_ratio=increase,"
     "crop=w=224:h=112,format=pix_fmts=rgb24"),
    (dict(scale_width=224, scale_height=112, scale_mode=None, pix_fmt="bgr24"),
     "scale=width=224:height=112:flags=bicubic,format=pix_fmts=bgr24"),
    (dict(scale_width=100), "scale=width=100:height=-1:flags=bicubic,format=pix_fmts=rgb24"),
    (dict(scale_height=100, pix_fmt=None), "scale=width=-1:height=100:flags=bicubic"),
    (dict(crop_width=50), "crop=w=50:h=ih,format=pix_fmts=rgb24"),
    (dict(crop_height=50, pix_fmt=None), "crop=w=iw:h=50"),
    (dict(scale_width=64, scale_height=64, crop_width=32, crop_height=30, scale_algo="lanczos"),
     "scale=width=64:height=64:flags=lanczos:force_original_aspect_ratio=decrease,"
     "pad=width=64:height=64:x=-1:y=-1:color=black,crop=w=32:h=30,format=pix_fmts=rgb24"),
    (dict(filter_desc="hflip"), "hflip,format=pix_fmts=rgb24"),
    (dict(scale_width=10, filter_desc="hflip,vflip", pix_fmt="yuv444p"),
     "scale=width=10:height=-1:flags=bicubic,hflip,vflip,format=pix_fmts=yuv444p"),
])
def test_strings(kwargs, expected):
    assert gvfd(**kwargs) == expected


@pytest.mark.parametrize("kwargs", [
    dict(scale_width=0), dict(scale_width=-1), dict(scale_width=True), dict(scale_width=1.5),
    dict(scale_width="224"), dict(scale_height=0), dict(crop_width=0), dict(crop_height=-5),
    dict(scale_algo="cubic"), dict(scale_algo=None), dict(scale_mode="fit"), dict(scale_mode="stretch"),
    dict(pix_fmt="yuv420p"), dict(pix_fmt="RGB24"), dict(pix_fmt=""),
])
def test_validation(kwargs):
    with pytest.raises(ValueError) as e:
        gvfd(**kwargs)
    name = next(iter(kwargs))
    assert name in str(e.value), str(e.value)


def test_every_algo_and_pix_fmt_accepted():
    for algo in SCALE_ALGOS:
        assert f"flags={algo}" in gvfd(scale_width=8, scale_height=8, scale_algo=algo)
    for p, ff in PIX_FMTS.items():
        assert gvfd(pix_fmt=p) == f"format=pix_fmts={ff}"


GRID = list(itertools.product(
    [None, 1, 224],          # scale_width
    [None, 3, 224],          # scale_height
    ["pad", "crop", None],   # scale_mode
    [None, 16],              # crop_width
    [None, 17],              # crop_height
    ["rgb24", "gray16", "yuv444p", None],
    ["area"],
))


@pytest.mark.parametrize("sw,sh,mode,cw,ch,pix_fmt,algo", GRID)
def test_parse_round_trip(sw, sh, mode, cw, ch, pix_fmt, algo):
    desc = gvfd(scale_width=sw, scale_height=sh, scale_mode=mode, crop_width=cw, crop_height=ch,
                pix_fmt=pix_fmt, scale_algo=algo)
    parsed = parse_simple_filter(desc)
    assert parsed is not None, desc
    both = sw is not None and sh is not None
    scaled = sw is not None or sh is not None
    expected = SimpleFilter(
        scale_width=sw, scale_height=sh,
        scale_algo=algo if scaled else "bicubic",
        scale_mode=mode if both else None,
        crop_width=cw, crop_height=ch,
        pix_fmt=PIX_FMTS[pix_fmt] if pix_fmt else None,
    )
    assert parsed == expected, desc


@pytest.mark.parametrize("desc", [
    "hflip", "null", "format=pix_fmts=rgb24,null", "null,format=pix_fmts=rgb24",
    "scale=224:224,format=pix_fmts=rgb24",
    "scale=width=-1:height=-1:flags=bicubic",
    "scale=width=224:height=224:flags=bicubic:force_original_aspect_ratio=decrease",  # pad missing
    "scale=width=224:height=224:flags=bicubic:force_original_aspect_ratio=decrease,"
    "pad=width=200:height=224:x=-1:y=-1:color=black",  # pad size differs
    "scale=width=224:height=224:flags=bicubic:force_original_aspect_ratio=increase,crop=w=200:h=224",
    "scale=width=224:height=224:flags=bicubic:force_original_aspect_ratio=decrease,"
    "pad=width=224:height=224:x=0:y=0:color=black",  # not centred
    "scale=width=224:height=224:flags=bicubic:force_original_aspect_ratio=decrease,"
    "pad=width=224:height=224:x=-1:y=-1:color=white",
    "crop=w=iw:h=ih",
    "format=pix_fmts=yuv420p",
    "format=pix_fmts=rgb24,format=pix_fmts=rgb24",
    "scale=width=224:height=224:flags=bicubic+accurate_rnd",
    " format=pix_fmts=rgb24",
    "",
])
def test_parse_rejects_other_descriptions(desc):
    assert parse_simple_filter(desc) is None


def test_parse_none_is_no_op():
    assert parse_simple_filter(None) == SimpleFilter(scale_mode=None, pix_fmt=None)


def test_none_desc_loads_unfiltered(images):
    """filter_desc=None: the decoded frame, unchanged."""
    buf = spdl.io.load_image_batch([str(images["png_rgb_301x199"])], width=None, height=None, filter_desc=None)
    assert buf.shape == (1, 199, 301, 3)
    assert (spdl.io.to_numpy(buf)[0] == images.arrays["png_rgb_301x199"]).all()


def test_default_filter_is_get_video_filter_desc(images):
    """The loaders' default filter is get_video_filter_desc(width, height, pix_fmt), pad mode."""
    src = [str(images["jpeg_420"]), str(images["png_150x300"])]
    a = spdl.io.to_numpy(spdl.io.load_image_batch(src, width=64, height=48, pix_fmt="bgr24"))
    b = spdl.io.to_numpy(spdl.io.load_image_batch(
        src, width=64, height=48, filter_desc=gvfd(scale_width=64, scale_height=48, pix_fmt="bgr24")))
    assert (a == b).all()
