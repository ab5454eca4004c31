"""Output pixel formats: shape, dtype and values of every pix_fmt, and pix_fmt=None."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import spdl.io
from _util import np_batch

#: 8 known colours x 2 rows
CHART = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255],
                  [128, 128, 128], [10, 200, 90], [250, 5, 130]], np.uint8)


@pytest.fixture(scope="module")
def chart_png():
    bio = io.BytesIO()
    Image.fromarray(np.repeat(CHART[None], 2, axis=0)).save(bio, "PNG")
    return bio.getvalue()


def native(load, src, pix_fmt):
    """Load at native size, converting only the pixel format."""
    return load([src], width=None, height=None, pix_fmt=pix_fmt)


SHAPES = {  # pix_fmt -> (layout, channels, dtype, FFmpeg name)
    "rgb24": ("hwc", 3, np.uint8, "rgb24"),
    "bgr24": ("hwc", 3, np.uint8, "bgr24"),
    "rgba": ("hwc", 4, np.uint8, "rgba"),
    "gray": ("hwc", 1, np.uint8, "gray"),
    "gray8": ("hwc", 1, np.uint8, "gray"),
    "gray16": ("hwc", 1, np.uint16, "gray16le"),
    "gray16le": ("hwc", 1, np.uint16, "gray16le"),
    "yuv444p": ("chw", 3, np.uint8, "yuv444p"),
}


@pytest.mark.parametrize("pix_fmt", sorted(SHAPES))
def test_shape_and_dtype(images, load, as_src, pix_fmt):
    layout, c, dtype, ff_name = SHAPES[pix_fmt]
    srcs = [as_src(images[n]) for n in ("jpeg_420", "png_rgba", "png_gray16", "gif")]
    buf = load(srcs, width=40, height=30, pix_fmt=pix_fmt)
    expected = (4, 30, 40, c) if layout == "hwc" else (4, c, 30, 40)
    assert buf.shape == expected
    assert buf.dtype == np.dtype(dtype).name
    assert buf.pix_fmt == ff_name
    arr = np_batch(buf)
    assert arr.shape == expected and arr.dtype == dtype
    assert arr.flags["C_CONTIGUOUS"]


def test_rgb24_bgr24_rgba_exact(load, chart_png):
    rgb = np_batch(native(load, chart_png, "rgb24"))[0]
    bgr = np_batch(native(load, chart_png, "bgr24"))[0]
    rgba = np_batch(native(load, chart_png, "rgba"))[0]
    np.testing.assert_array_equal(rgb[0], CHART)
    np.testing.assert_array_equal(bgr[0], CHART[:, ::-1])
    np.testing.assert_array_equal(rgba[0, :, :3], CHART)
    assert (rgba[..., 3] == 255).all()


def test_rgba_keeps_alpha(images, load, as_src):
    out = np_batch(native(load, as_src(images["png_rgba"]), "rgba"))[0]
    np.testing.assert_array_equal(out, images.arrays["png_rgba"])


def test_gray_is_full_range_bt601_luma(load, chart_png):
    """gray = 0.299 R + 0.587 G + 0.114 B, full range (black 0, white 255), as Pillow's L."""
    out = np_batch(native(load, chart_png, "gray"))[0, 0, :, 0].astype(int)
    expected = np.asarray(Image.fromarray(CHART[None]).convert("L"))[0].astype(int)
    assert out[0] == 0 and out[1] == 255
    assert np.abs(out - expected).max() <= 1, (out.tolist(), expected.tolist())


def test_gray16_from_8bit_rgb(load, chart_png):
    """gray16 of 8-bit RGB: the same luma on a 16-bit scale (v * 257), to within 1.5 8-bit
    levels (measured: black -> 1, white -> 65277 instead of 65535: swscale's 8->16 bit
    expansion, not v * 257), and order preserved."""
    out = np_batch(native(load, chart_png, "gray16"))[0, 0, :, 0].astype(int)
    luma = CHART.astype(float) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(out - luma * 257).max() <= 1.5 * 257, (out.tolist(), (luma * 257).round().tolist())
    assert (np.argsort(out, kind="stable") == np.argsort(luma, kind="stable")).all()


def test_gray16_from_8bit_gray_is_v_times_257(images, load):
    out = np_batch(native(load, str(images["png_gray"]), "gray16"))[0, ..., 0]
    np.testing.assert_array_equal(out, images.arrays["png_gray"].astype(np.uint16) * 257)


def test_gray16_keeps_16bit_values(images, load, as_src):
    """A 16-bit gray PNG comes out unchanged, low bytes included."""
    out = np_batch(native(load, as_src(images["png_gray16"]), "gray16"))[0, ..., 0]
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, images.arrays["png_gray16"])
    assert (out % 257 != 0).mean() > 0.9  # really 16-bit data, not 8-bit scaled up


def test_gray16_resized_keeps_16bit_precision(images, load):
    out = np_batch(load([str(images["png_gray16"])], width=64, height=64, pix_fmt="gray16"))
    assert out.dtype == np.uint16
    content = out[0, 11:53]  # 301x199 -> 64x42 padded: rows 11..52
    assert (content % 257 != 0).mean() > 0.5


def test_gray16_from_rgb48_is_16bit_luma(images, load):
    """rgb48 -> gray16: BT.601 luma computed at 16 bits (measured max error 5.6 / 65535)."""
    out = np_batch(native(load, str(images["png_rgb48"]), "gray16"))[0, ..., 0].astype(float)
    a = images.arrays["png_rgb48"].astype(float)
    luma = a @ np.array([0.299, 0.587, 0.114])
    assert np.abs(out - luma).max() <= 32  # an eighth of an 8-bit level


def test_gray8_from_gray16(images, load):
    out = np_batch(native(load, str(images["png_gray16"]), "gray"))[0, ..., 0].astype(int)
    assert np.abs(out - images.arrays["png_gray16"] / 257.0).max() < 1.0 + 1e-9


def test_yuv444p_is_limited_range_bt601(load, chart_png):
    buf = native(load, chart_png, "yuv444p")
    out = np_batch(buf)[0]
    assert out.shape == (3, 2, 8)
    r, g, b = (CHART[:, i].astype(float) for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    cb = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    cr = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    for plane, exp in zip(out[:, 0, :].astype(int), (y, cb, cr)):
        assert np.abs(plane - exp).max() <= 1, (plane.tolist(), exp.round(1).tolist())
    assert out[0, 0, 0] == 16 and out[0, 0, 1] == 235  # black and white luma


def test_yuv444p_planes_of_a_jpeg(images, load):
    """yuv444p of a 4:4:4 JPEG: planar (N, 3, H, W), luma close to limited-range BT.601 of
    the decoded RGB."""
    src = str(images["jpeg_444"])
    yuv = np_batch(native(load, src, "yuv444p"))[0].astype(float)
    rgb = np_batch(native(load, src, "rgb24"))[0].astype(float)
    assert yuv.shape == (3, 199, 301)
    y = 16 + (rgb @ np.array([65.481, 128.553, 24.966])) / 255
    assert np.abs(yuv[0] - y).mean() < 1.0


@pytest.mark.parametrize("alias,name", [("gray8", "gray"), ("gray16le", "gray16")])
def test_aliases(images, load, alias, name):
    a = np_batch(load([str(images["jpeg_420"])], width=50, height=50, pix_fmt=alias))
    b = np_batch(load([str(images["jpeg_420"])], width=50, height=50, pix_fmt=name))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("pix_fmt", ["yuv410p", "RGB24", "rgb", "nv12", "", 3])
def test_unknown_pix_fmt(images, load, pix_fmt):
    with pytest.raises(ValueError) as e:
        load([str(images["jpeg_420"])], width=8, height=8, pix_fmt=pix_fmt)
    assert "rgb24" in str(e.value)  # lists the allowed ones


# ---------------------------------------------------------------------------
# pix_fmt=None: as decoded, where that batches
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,shape", [
    ("png_rgb_301x199", (1, 199, 301, 3)),
    ("png_rgba", (1, 199, 301, 4)),
    ("png_gray", (1, 199, 301, 1)),
    ("bmp", (1, 199, 301, 3)),
    ("tiff_raw", (1, 199, 301, 3)),
    ("jpeg_gray", (1, 199, 301, 1)),
    ("jpeg_444", (1, 3, 199, 301)),      # planar YUV 4:4:4
    ("webp_lossless", (1, 199, 301, 3)),  # libwebp: rgb24, no alpha in the image
    ("gif", (1, 90, 120, 4)),
])
def test_none_keeps_decoded_format(images, load, as_src, name, shape):
    buf = load([as_src(images[name])], width=None, height=None, pix_fmt=None)
    assert buf.shape == shape
    assert buf.dtype == "uint8"


def test_none_values(images, load):
    """pix_fmt=None holds the decoded samples unchanged."""
    rgb = np_batch(load([str(images["png_rgb_301x199"])], width=None, height=None, pix_fmt=None))[0]
    np.testing.assert_array_equal(rgb, images.arrays["png_rgb_301x199"])
    gray = np_batch(load([str(images["png_gray"])], width=None, height=None, pix_fmt=None))[0, ..., 0]
    np.testing.assert_array_equal(gray, images.arrays["png_gray"])
    bmp = load([str(images["bmp"])], width=None, height=None, pix_fmt=None)
    arr = np_batch(bmp)[0]
    order = {"bgr24": [2, 1, 0], "rgb24": [0, 1, 2]}[bmp.pix_fmt]
    np.testing.assert_array_equal(arr[..., order], images.arrays["bmp"])
    # YUV 4:4:4 JPEG: the planes are the JPEG's own Y, Cb, Cr (Pillow's draft mode gives them)
    yuv = np_batch(load([str(images["jpeg_444"])], width=None, height=None, pix_fmt=None))[0].astype(int)
    with Image.open(images["jpeg_444"]) as im:
        im.draft("YCbCr", im.size)
        ref = np.asarray(im).astype(int)
    for c in range(3):
        assert np.abs(yuv[c] - ref[..., c]).max() <= 2


def test_none_resized(images, load):
    """pix_fmt=None with a size: resized, still in the decoded format."""
    buf = load([str(images["png_rgba"]), str(images["png_rgba"])], width=64, height=48, pix_fmt=None)
    assert buf.shape == (2, 48, 64, 4)
    assert buf.pix_fmt == "rgba"
    arr = np_batch(buf)
    assert (arr[:, :3, :, :] == np.array([0, 0, 0, 255], np.uint8)).all()  # padding: opaque black


@pytest.mark.parametrize("name", ["jpeg_422", "png_palette"])
@pytest.mark.parametrize("size", [(None, None), (64, 48)])
def test_none_that_does_not_batch(images, load, name, size):
    """4:2:2 YUV and paletted frames do not batch: a ValueError (UnbatchableFormatError, or a
    BatchLoadError when a resize cannot write the format) that says which format."""
    with pytest.raises(ValueError) as e:
        load([str(images[name])], width=size[0], height=size[1], pix_fmt=None)
    msg = str(e.value)
    assert any(f in msg for f in ("yuv", "pal8")), msg


def test_none_odd_420_does_not_batch(images, load):
    """4:2:0 at an odd size has no I420 layout: the error says so."""
    with pytest.raises(spdl.io.UnbatchableFormatError, match="301x199 is odd"):
        load([str(images["jpeg_420"])], width=None, height=None, pix_fmt=None)


@pytest.mark.parametrize("name,shape,pix_fmt", [
    ("jpeg_420", (1, 1, 72, 64), "yuvj420p"),
    ("png_gray16", (1, 48, 64, 1), "gray16le"),
    ("png_rgb48", (1, 48, 64, 3), "rgb48le"),
])
def test_none_that_batches(images, load, name, shape, pix_fmt):
    """8-bit 4:2:0 batches as I420 planes; 16-bit big-endian samples in the machine's order."""
    buf = load([str(images[name])], width=64, height=48, pix_fmt=None)
    assert (buf.shape, buf.pix_fmt) == (shape, pix_fmt)


def test_none_mixed_formats(images, load):
    with pytest.raises(ValueError) as e:
        load([str(images["png_rgb_301x199"]), str(images["png_gray"])], width=None, height=None, pix_fmt=None)
    assert "rgb24" in str(e.value) and "gray" in str(e.value)
