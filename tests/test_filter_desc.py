"""get_video_filter_desc: the strings it builds and its validation; a description runs as written."""

from __future__ import annotations

import pytest

import spdl.io
from _util import diff_stats
from spdl.io import get_video_filter_desc as gvfd
from spdl.io._plan import FFMPEG_PIX_FMTS, PIX_FMTS, SCALE_ALGOS


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
    dict(scale_algo="cubic"), dict(scale_algo=None), dict(scale_mode="fit"),
    dict(pix_fmt="yuv410p"), dict(pix_fmt="RGB24"), dict(pix_fmt=""),
])
def test_validation(kwargs):
    with pytest.raises(ValueError) as e:
        gvfd(**kwargs)
    name = next(iter(kwargs))
    assert name in str(e.value), str(e.value)


def test_every_algo_and_pix_fmt_accepted():
    for algo in SCALE_ALGOS:
        assert f"flags={algo}" in gvfd(scale_width=8, scale_height=8, scale_algo=algo)
    for p, name in PIX_FMTS.items():
        assert gvfd(pix_fmt=p) == f"format=pix_fmts={FFMPEG_PIX_FMTS[name]}"


def test_none_desc_loads_unfiltered(images):
    """filter_desc=None: the decoded frame, unchanged."""
    buf = spdl.io.load_image_batch([str(images["png_rgb_301x199"])], width=None, height=None, filter_desc=None)
    assert buf.shape == (1, 199, 301, 3)
    assert (spdl.io.to_numpy(buf)[0] == images.arrays["png_rgb_301x199"]).all()


def test_description_is_run_as_written(images):
    """A description get_video_filter_desc made is run by libavfilter, never parsed back:
    it gives what the loader's own keyword arguments give, within resampler differences."""
    src = [str(images["jpeg_420"]), str(images["png_150x300"])]
    a = spdl.io.to_numpy(spdl.io.load_image_batch(src, width=64, height=48, pix_fmt="bgr24",
                                                  scale_algo="lanczos"))
    b = spdl.io.to_numpy(spdl.io.load_image_batch(
        src, width=None, height=None, pix_fmt=None,
        filter_desc=gvfd(scale_width=64, scale_height=48, pix_fmt="bgr24", scale_algo="lanczos")))
    assert a.shape == b.shape == (2, 48, 64, 3)
    # PNG: the same swscale call. JPEG: the loader reduces it in the DCT first (the
    # tolerance of test_batch's native-vs-libavfilter tests).
    assert (a[1] == b[1]).all()
    mean, p999, mx = diff_stats(a[:1], b[:1])
    assert mean < 4 and p999 < 80, (mean, p999, mx)
