"""The batch loaders: agreement between paths, and pad / crop / stretch geometry."""

from __future__ import annotations

import asyncio
import io
import pathlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

import spdl.io
from _util import diff_stats, np_batch

MIXED = ["jpeg_420", "jpeg_640x480", "png_rgba", "png_palette", "png_gray", "png_gray16", "png_rgb48",
         "webp_lossy", "webp_lossless", "bmp_3x5", "tiff_lzw", "gif", "jpeg_cmyk", "jpeg_1x1",
         "png_rgb_1023x767", "png_150x300"]

DESCS = {
    "pad": dict(width=96, height=80),
    "crop": dict(width=96, height=80, scale_mode="crop"),
    "stretch": dict(width=96, height=80, scale_mode="stretch"),
    "yuv444p": dict(width=96, height=80, pix_fmt="yuv444p"),
    "gray16": dict(width=96, height=80, pix_fmt="gray16"),
    "custom_graph": dict(width=None, height=None, pix_fmt=None,
                         filter_desc="scale=w=64:h=48,hflip,format=pix_fmts=bgr24"),
    "graph_then_plan": dict(width=40, height=40, pix_fmt="rgbp", filter_desc="vflip"),
    "rgbp": dict(width=96, height=80, pix_fmt="rgbp"),
}


def _stage_options(kw):
    """The loader's keyword arguments as decode_packets takes them (its pix_fmt default is None)."""
    return {"pix_fmt": "rgb24", **kw}


@pytest.mark.parametrize("kind", sorted(DESCS))
def test_batch_equals_per_image_stages(images, load, stages, kind):
    """Each row of a batch equals that image loaded alone through the stage functions."""
    kw = DESCS[kind]
    srcs = [str(images[n]) for n in MIXED]
    batch = np_batch(load(srcs, **kw))
    assert batch.shape[0] == len(srcs)
    opts = _stage_options(kw)
    frames = [stages.load_one(s, **opts) for s in srcs]
    for i, f in enumerate(frames):
        one = np_batch(stages.convert([f]))
        np.testing.assert_array_equal(batch[i], one[0], err_msg=f"row {i} ({MIXED[i]}), {kind}")
    np.testing.assert_array_equal(batch, np_batch(stages.convert(frames)))


@pytest.mark.parametrize("kind", ["pad", "crop", "custom_graph"])
def test_bytes_equals_path(images, load, kind):
    kw = DESCS[kind]
    paths = [str(images[n]) for n in MIXED]
    blobs = [pathlib.Path(p).read_bytes() for p in paths]
    np.testing.assert_array_equal(np_batch(load(paths, **kw)), np_batch(load(blobs, **kw)))


def test_source_types(images, load):
    """str, pathlib.Path, bytes, bytearray and memoryview mix in one batch."""
    p = images["jpeg_420"]
    data = p.read_bytes()
    srcs = [str(p), p, data, bytearray(data), memoryview(data)]
    out = np_batch(load(srcs, width=32, height=32))
    for i in range(1, len(srcs)):
        np.testing.assert_array_equal(out[0], out[i], err_msg=f"source #{i}")


@pytest.mark.parametrize("kind", sorted(DESCS))
def test_async_equals_sync(images, kind):
    kw = DESCS[kind]
    srcs = [str(images[n]) for n in MIXED] * 3

    async def main():
        return await spdl.io.async_load_image_batch(srcs, **kw)

    a = np_batch(asyncio.run(main()))
    b = np_batch(spdl.io.load_image_batch(srcs, **kw))
    np.testing.assert_array_equal(a, b)


def _numbered_images(n):
    """n tiny PNGs of distinct solid colours, as bytes; colour of image i encodes i."""
    out = []
    for i in range(n):
        bio = io.BytesIO()
        Image.new("RGB", (17 + i % 5, 13 + i % 3), (i, 255 - i, (7 * i) % 256)).save(bio, "PNG")
        out.append(bio.getvalue())
    return out


def test_row_order_many_images(load):
    """Rows follow input order whatever worker loads them (sizes differ, so the work too)."""
    n = 120
    out = np_batch(load(_numbered_images(n), width=8, height=8, scale_mode="stretch"))
    assert out.shape == (n, 8, 8, 3)
    expected = np.array([(i, 255 - i, (7 * i) % 256) for i in range(n)], np.uint8)
    np.testing.assert_array_equal(out[:, 4, 4, :], expected)


def test_concurrent_async_batches(images):
    srcs = [str(images[n]) for n in MIXED]

    async def main():
        return await asyncio.gather(*[spdl.io.async_load_image_batch(srcs[k:] + srcs[:k], width=40, height=30)
                                      for k in range(6)])

    results = asyncio.run(main())
    ref = np_batch(spdl.io.load_image_batch(srcs, width=40, height=30))
    for k, r in enumerate(results):
        np.testing.assert_array_equal(np_batch(r), np.roll(ref, -k, axis=0))


def test_async_with_single_thread_executor(images):
    """A loop whose default executor has one thread still completes (no deadlock)."""
    srcs = [str(images[n]) for n in MIXED]

    async def main():
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(1))
        return await asyncio.wait_for(spdl.io.async_load_image_batch(srcs, width=40, height=30), 60)

    np.testing.assert_array_equal(np_batch(asyncio.run(main())),
                                  np_batch(spdl.io.load_image_batch(srcs, width=40, height=30)))


def test_async_cancel(images):
    """Cancelling a running async load raises CancelledError promptly and leaves things usable."""
    srcs = [str(images["png_rgb_1023x767"])] * 400

    async def main():
        task = asyncio.ensure_future(spdl.io.async_load_image_batch(srcs, width=512, height=512))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await spdl.io.async_load_image_batch(srcs[:2], width=8, height=8)

    assert asyncio.run(main()).shape == (2, 8, 8, 3)


def test_empty_batch(load):
    buf = load([], width=16, height=8)
    assert buf.shape == (0, 8, 16, 3)
    assert np_batch(buf).shape == (0, 8, 16, 3)
    assert buf.indices == ()
    assert buf.errors == {}


def test_srcs_must_be_a_list(images):
    with pytest.raises(TypeError):
        spdl.io.load_image_batch(str(images["jpeg_420"]), width=8, height=8)
    with pytest.raises(TypeError):
        spdl.io.load_image_batch(images["jpeg_420"].read_bytes(), width=8, height=8)
    with pytest.raises(TypeError):
        spdl.io.load_image_batch([1], width=8, height=8)


# ---------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------


def _rescale(a, b, c):
    """av_rescale: a * b / c rounded to nearest, halves away from zero."""
    return (a * b + c // 2) // c


def ffmpeg_crop_offset(scaled, out):
    """Where FFmpeg's crop filter starts a centred crop: x = (in_w - out_w) / 2 evaluated as a
    double and rounded with lrint, i.e. halves to even (56.5 -> 56, 57.5 -> 58). Python's
    round() rounds the same way. (The pad filter, by contrast, uses integer division.)"""
    return round((scaled - out) / 2)


def ffmpeg_fit(iw, ih, W, H, mode):
    """FFmpeg's scale=W:H:force_original_aspect_ratio=... size (5.1 rule, no divisibility)."""
    tw, th = _rescale(H, iw, ih), _rescale(W, ih, iw)
    if mode == "pad":
        return min(tw, W), min(th, H)
    return max(tw, W), max(th, H)


def bright_png(tmp_path, w, h, fmt="png"):
    """A ramp image with no dark pixels (so padding is unambiguous): R ramps along x.

    fmt "jpeg" writes it as a 4:2:0 JPEG instead (spdl decodes JPEGs on their own path).
    """
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([x * 255 // max(w - 1, 1), 120 + y * 100 // max(h - 1, 1),
                  np.full_like(x, 180)], axis=-1).astype(np.uint8)
    path = tmp_path / f"bright.{fmt}"
    if fmt == "jpeg":
        Image.fromarray(a).save(path, quality=95)
    else:
        Image.fromarray(a).save(path)
    return path, a


def black_rows(img):
    return np.where((img == 0).all(axis=(1, 2)))[0]


def black_cols(img):
    return np.where((img == 0).all(axis=(0, 2)))[0]


@pytest.mark.parametrize("iw,ih,W,H", [
    (400, 200, 224, 224),   # the example: scaled h = 112, 56 black rows top and bottom
    (150, 300, 224, 224),   # tall: black columns
    (301, 199, 224, 224),   # odd: h = round(224*199/301) = 148, top 38
    (400, 200, 224, 225),   # odd padding: 56 on top, 57 at the bottom
    (3, 5, 97, 61),
    (1023, 767, 64, 64),
    (1, 1, 7, 5),
    (3000, 2000, 224, 224),  # large JPEGs may be reduced while decoding: geometry must not change
    (1023, 767, 97, 61),
])
@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_pad_geometry(tmp_path, load, as_src, fmt, iw, ih, W, H):
    path, _ = bright_png(tmp_path, iw, ih, fmt)
    out = np_batch(load([as_src(path)], width=W, height=H))[0]
    assert out.shape == (H, W, 3)
    sw, sh = ffmpeg_fit(iw, ih, W, H, "pad")
    x0, y0 = (W - sw) // 2, (H - sh) // 2
    if (iw, ih, W, H) == (400, 200, 224, 224):
        assert (sw, sh, x0, y0) == (224, 112, 0, 56)
    content = out[y0:y0 + sh, x0:x0 + sw]
    # padding is black, exactly where FFmpeg puts it
    expected_black = np.ones((H, W), bool)
    expected_black[y0:y0 + sh, x0:x0 + sw] = False
    assert (out[expected_black] == 0).all()
    # the content is not: G >= 120 everywhere in the source
    assert content[..., 1].min() > 60, "content region has dark pixels: wrong placement"
    np.testing.assert_array_equal(black_rows(out), np.r_[0:y0, y0 + sh:H])
    np.testing.assert_array_equal(black_cols(out), np.r_[0:x0, x0 + sw:W])


@pytest.mark.parametrize("iw,ih,W,H", [(400, 200, 224, 224), (150, 300, 224, 224), (301, 199, 97, 61)])
@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_pad_content_equals_plain_scale(tmp_path, load, fmt, iw, ih, W, H):
    """The content area of a padded image is the image scaled to the fitted size."""
    path, _ = bright_png(tmp_path, iw, ih, fmt)
    sw, sh = ffmpeg_fit(iw, ih, W, H, "pad")
    x0, y0 = (W - sw) // 2, (H - sh) // 2
    padded = np_batch(load([str(path)], width=W, height=H))[0]
    plain = np_batch(load([str(path)], width=sw, height=sh, scale_mode="stretch"))[0]
    np.testing.assert_array_equal(padded[y0:y0 + sh, x0:x0 + sw], plain)


@pytest.mark.parametrize("iw,ih,W,H", [(400, 200, 224, 224), (150, 300, 224, 224), (301, 199, 97, 61),
                                       (640, 480, 100, 100), (3000, 2000, 224, 224)])
@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_crop_geometry(tmp_path, load, as_src, fmt, iw, ih, W, H):
    """crop fills the box (no black) and keeps the centre: R ramps along x, so each output
    column's R tells which source column it came from."""
    path, _ = bright_png(tmp_path, iw, ih, fmt)
    out = np_batch(load([as_src(path)], width=W, height=H, scale_mode="crop"))[0]
    assert out.shape == (H, W, 3)
    assert out[..., 1].min() > 60  # no padding anywhere
    sw, sh = ffmpeg_fit(iw, ih, W, H, "crop")
    ox = ffmpeg_crop_offset(sw, W)
    j = np.arange(W)
    src_x = (j + ox + 0.5) * iw / sw - 0.5
    expected_r = np.clip(src_x, 0, iw - 1) * 255 / (iw - 1)
    interior = slice(3, W - 3)
    # the ramp quantisation (255/(iw-1) per source column) plus 2 levels of rounding
    # (plus 4 for JPEG's own loss)
    tol = 2 + 255 / (iw - 1) + (4 if fmt == "jpeg" else 0)
    err = np.abs(out[H // 2, interior, 0].astype(float) - expected_r[interior])
    assert err.max() <= tol, (err.max(), tol)


@pytest.mark.parametrize("iw,ih,W,H", [(400, 200, 224, 224), (150, 300, 224, 224), (301, 199, 97, 61),
                                       (3, 5, 97, 61), (640, 480, 100, 100)])
def test_crop_equals_centre_of_full_scale(tmp_path, load, iw, ih, W, H):
    """FFmpeg's crop mode is: scale to the covering size, then cut the centre. The result
    must be (nearly) that: same resampling phase and scale factor as the full image."""
    path = tmp_path / "c.png"
    Image.fromarray(np.random.RandomState(iw).randint(0, 256, (ih, iw, 3), dtype=np.uint8)
                    if iw * ih < 100 else bright_png(tmp_path, iw, ih)[1]).save(path)
    sw, sh = ffmpeg_fit(iw, ih, W, H, "crop")
    ox, oy = ffmpeg_crop_offset(sw, W), ffmpeg_crop_offset(sh, H)
    full = np_batch(load([str(path)], width=sw, height=sh, scale_mode="stretch"))[0]
    crop = np_batch(load([str(path)], width=W, height=H, scale_mode="crop"))[0]
    mean, p999, mx = diff_stats(crop, full[oy:oy + H, ox:ox + W])
    assert mx <= 2, f"crop != centre of the full scale: mean={mean:.2f} p99.9={p999} max={mx}"


@pytest.mark.parametrize("iw,ih,expected", [
    (213, 100, (56, 0)),   # covering 213x100, (213-100)/2 = 56.5 -> 56
    (215, 100, (58, 0)),   # 57.5 -> 58
    (100, 213, (0, 56)),
    (100, 215, (0, 58)),
    (214, 100, (57, 0)),
])
def test_crop_offset_rounding(load, iw, ih, expected):
    """crop to 100x100: the window starts where FFmpeg's crop filter starts it. Each source
    column/row is unique (x, y and a mix in R, G, B), so the offset is read off the output
    by matching it against the full covering-size scale."""
    y, x = np.mgrid[0:ih, 0:iw]
    a = np.stack([x % 256, y % 256, (x * 7 + y * 3) % 256], -1).astype(np.uint8)
    bio = io.BytesIO()
    Image.fromarray(a).save(bio, "PNG")
    W = H = 100
    sw, sh = ffmpeg_fit(iw, ih, W, H, "crop")
    assert (ffmpeg_crop_offset(sw, W), ffmpeg_crop_offset(sh, H)) == expected
    full = np_batch(load([bio.getvalue()], width=sw, height=sh, scale_mode="stretch"))[0].astype(int)
    out = np_batch(load([bio.getvalue()], width=W, height=H, scale_mode="crop"))[0].astype(int)
    found = min((np.abs(full[oy:oy + H, ox:ox + W] - out).mean(), ox, oy)
                for ox in range(sw - W + 1) for oy in range(sh - H + 1))
    assert found[1:] == expected and found[0] < 0.5, f"crop window at {found[1:]}, FFmpeg puts it at {expected}"


def test_crop_small_image_reproducer():
    """Minimal reproducer: a 3x5 vertical ramp, crop mode to 97x61. FFmpeg scales it to
    97x162 and keeps rows 50..110: a ramp. The output must not be flat."""
    a = np.repeat(np.array([0, 64, 128, 192, 255], np.uint8)[:, None], 3, axis=1)
    bio = io.BytesIO()
    Image.fromarray(a).save(bio, "PNG")
    col = np_batch(spdl.io.load_image_batch([bio.getvalue()], width=97, height=61, scale_mode="crop",
                                            pix_fmt="gray"))[0, :, 48, 0]
    assert int(col[-1]) - int(col[0]) > 60, f"expected a vertical ramp, got {col.tolist()}"


@pytest.mark.parametrize("iw,ih,W,H", [(400, 200, 224, 224), (3, 5, 97, 61), (3000, 2000, 97, 61)])
@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_stretch_geometry(tmp_path, load, fmt, iw, ih, W, H):
    if fmt == "jpeg" and iw < 8:
        pytest.skip("a 3-pixel ramp does not survive 4:2:0 JPEG; the PNG case covers the geometry")
    path, _ = bright_png(tmp_path, iw, ih, fmt)
    out = np_batch(load([str(path)], width=W, height=H, scale_mode="stretch"))[0]
    assert out.shape == (H, W, 3)
    assert out[..., 1].min() > 60
    # R ramps over the full output width: first column ~0, last ~255
    assert out[H // 2, 0, 0] <= 20 and out[H // 2, -1, 0] >= 235


@pytest.mark.parametrize("w,h,expected", [(64, None, (1, 42, 64, 3)), (None, 50, (1, 50, 76, 3))])
def test_one_dimension_keeps_aspect(images, load, w, h, expected):
    # 301x199: h = round(64*199/301) = 42; w = round(50*301/199) = 76
    out = load([str(images["jpeg_420"])], width=w, height=h)
    assert out.shape == expected


@pytest.mark.parametrize("pix_fmt,pad", [("rgb24", [0, 0, 0]), ("bgr24", [0, 0, 0]), ("rgba", [0, 0, 0, 255]),
                                         ("gray", [0]), ("gray16", [0]), ("yuv444p", [16, 128, 128])])
def test_pad_colour_per_pix_fmt(images, load, pix_fmt, pad):
    """Padding is opaque black in every output format (limited-range black for yuv444p)."""
    out = np_batch(load([str(images["jpeg_400x200"])], width=224, height=224, pix_fmt=pix_fmt))[0]
    if pix_fmt == "yuv444p":
        assert out.shape == (3, 224, 224)
        corner = out[:, :56, :].reshape(3, -1)
        for c in range(3):
            assert (corner[c] == pad[c]).all(), (c, np.unique(corner[c]))
    else:
        assert out.shape[:2] == (224, 224)
        assert (out[:56] == np.array(pad, out.dtype)).all()
        assert (out[168:] == np.array(pad, out.dtype)).all()


# ---------------------------------------------------------------------------
# Native swscale path vs libavfilter
# ---------------------------------------------------------------------------

GEOM_SOURCES = ["png_400x200", "jpeg_400x200", "jpeg_420", "png_gray"]
GEOM_SIZES = [(224, 224), (97, 61)]


# JPEG: the native path decodes with libjpeg-turbo (its chroma upsampling, the same
# pixels as Pillow), resized by the cubic resampler; the libavfilter path gets FFmpeg's
# YUV frames and swscale's chroma and bicubic. They agree on average and part at
# saturated colour edges (measured: mean <= 1.4, p99.9 <= 75).
JPEG_PATHS_TOL = dict(mean=1.5, p999=80)


@pytest.mark.parametrize("name", GEOM_SOURCES)
@pytest.mark.parametrize("mode", ["pad", "crop", None])
@pytest.mark.parametrize("W,H", GEOM_SIZES)
def test_native_vs_libavfilter_same_description(images, name, mode, W, H):
    """The loader's own resize and the description get_video_filter_desc makes for it, run
    through libavfilter, give nearly the same pixels: mean < 1.5, p99.9 < 16."""
    desc = spdl.io.get_video_filter_desc(scale_width=W, scale_height=H, scale_mode=mode)
    native = np_batch(spdl.io.load_image_batch([str(images[name])], width=W, height=H,
                                               scale_mode=mode))
    graph = np_batch(spdl.io.load_image_batch([str(images[name])], width=None, height=None,
                                              pix_fmt=None, filter_desc=desc))
    mean, p999, mx = diff_stats(native, graph)
    tol = JPEG_PATHS_TOL if name.startswith("jpeg") else dict(mean=1.5, p999=16)
    assert mean < tol["mean"] and p999 < tol["p999"], (
        f"{name} {mode} {W}x{H}: native vs libavfilter mean={mean:.3f} p99.9={p999} max={mx}")


@pytest.mark.parametrize("pix_fmt", ["rgb24", "bgr24", "rgba", "gray", "gray16", "yuv444p"])
def test_native_vs_libavfilter_pix_fmts_pad(images, pix_fmt):
    """Pad to 224x224 in each output format: native ~= libavfilter for the same description
    in the content area; the padding is checked by test_pad_colour_per_pix_fmt (FFmpeg 5.1's
    pad filter fills gray/gray16 with limited-range 16/4112, the native path with 0)."""
    src = str(images["png_400x200"])
    desc = spdl.io.get_video_filter_desc(scale_width=224, scale_height=224, pix_fmt=pix_fmt)
    native = np_batch(spdl.io.load_image_batch([src], width=224, height=224, pix_fmt=pix_fmt))[0]
    graph = np_batch(spdl.io.load_image_batch([src], width=None, height=None, pix_fmt=None,
                                              filter_desc=desc))[0]
    assert native.shape == graph.shape and native.dtype == graph.dtype
    if pix_fmt == "yuv444p":
        native, graph = native[:, 56:168], graph[:, 56:168]
    else:
        native, graph = native[56:168], graph[56:168]
    scale = 1 if native.dtype == np.uint8 else 257
    mean, p999, mx = diff_stats(native, graph)
    assert mean < 1.5 * scale and p999 < 16 * scale, (mean, p999, mx)


# ---------------------------------------------------------------------------
# Size mismatches
# ---------------------------------------------------------------------------


def test_convert_frames_different_sizes(images, stages):
    a = stages.load_one(str(images["jpeg_420"]), filter_desc="format=pix_fmts=rgb24")
    b = stages.load_one(str(images["jpeg_640x480"]), filter_desc="format=pix_fmts=rgb24")
    with pytest.raises(ValueError) as e:
        stages.convert([a, b, a])
    msg = str(e.value)
    assert "301x199" in msg and "640x480" in msg, msg


def test_convert_frames_different_pix_fmts(images, stages):
    a = stages.load_one(str(images["jpeg_420"]), filter_desc="format=pix_fmts=rgb24")
    b = stages.load_one(str(images["jpeg_420"]), filter_desc="format=pix_fmts=gray")
    with pytest.raises(ValueError) as e:
        stages.convert([a, b])
    assert "rgb24" in str(e.value) and "gray" in str(e.value)


def test_convert_frames_bad_arguments(images, stages):
    with pytest.raises(ValueError):
        stages.convert([])
    with pytest.raises(TypeError):
        stages.convert([1])


def test_loader_native_size_different_sizes(images, load):
    with pytest.raises(ValueError) as e:
        load([str(images["jpeg_420"]), str(images["png_rgb_640x480"])], width=None, height=None)
    msg = str(e.value)
    assert "301x199" in msg and "640x480" in msg, msg


def test_loader_native_size_same_size(images, load):
    out = load([str(images["jpeg_420"]), str(images["png_rgb_301x199"])], width=None, height=None)
    assert out.shape == (2, 199, 301, 3)


def test_custom_graph_sizes_differ(images, load):
    with pytest.raises(ValueError) as e:
        load([str(images["jpeg_420"]), str(images["png_rgb_640x480"])], width=None, height=None,
             filter_desc="hflip,format=pix_fmts=rgb24")
    assert "301x199" in str(e.value) and "640x480" in str(e.value)


def test_custom_graph_is_applied(images, load):
    src = str(images["png_rgb_301x199"])
    plain = np_batch(load([src], width=None, height=None, filter_desc="format=pix_fmts=rgb24"))[0]
    flipped = np_batch(load([src], width=None, height=None, filter_desc="hflip,format=pix_fmts=rgb24"))[0]
    np.testing.assert_array_equal(flipped, plain[:, ::-1])
    rotated = np_batch(load([src], width=None, height=None, filter_desc="transpose=clock,format=pix_fmts=rgb24"))
    assert rotated.shape == (1, 301, 199, 3)
    np.testing.assert_array_equal(rotated[0], np.rot90(plain, k=-1))


# ---------------------------------------------------------------------------
# No state leaks from one image to the next
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["png_rgb_301x199", "png_rgb_640x480", "jpeg_420", "png_gray", "png_rgba",
                                  "webp_lossy", "gif", "png_gray16"])
@pytest.mark.parametrize("pix_fmt", ["rgb24", "gray16", "yuv444p"])
def test_repeated_source_gives_identical_rows(images, name, pix_fmt):
    """The same image four times in one (sync, one worker) batch: four identical rows, equal
    to the image loaded alone. (Workers reuse decoder and scaler state between images.)"""
    src = str(images[name])
    alone = np_batch(spdl.io.load_image_batch([src], width=96, height=80, pix_fmt=pix_fmt))[0]
    rows = np_batch(spdl.io.load_image_batch([src] * 4, width=96, height=80, pix_fmt=pix_fmt))
    for i in range(4):
        mean, p999, mx = diff_stats(rows[i], alone)
        assert mx == 0, f"row {i} differs from the image loaded alone: mean={mean:.2f} max={mx}"


def test_alternating_sources_give_identical_rows(images):
    """Interleaving formats and sizes (so a worker's cached scaler is rebuilt and reused)
    must not change any image's pixels."""
    names = ["png_rgb_301x199", "jpeg_420", "png_rgb_301x199", "png_gray", "jpeg_420", "png_rgb_640x480",
             "png_rgb_640x480", "webp_lossy", "png_rgb_301x199"]
    srcs = [str(images[n]) for n in names]
    batch = np_batch(spdl.io.load_image_batch(srcs, width=64, height=64))
    for i, s in enumerate(srcs):
        alone = np_batch(spdl.io.load_image_batch([s], width=64, height=64))[0]
        assert diff_stats(batch[i], alone)[2] == 0, f"row {i} ({names[i]})"


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP-lossless", "JPEG"])
def test_batch_of_same_size_images(tmp_path, load, fmt):
    """The common dataset case: many different images of one size and format. Every row
    equals that image loaded alone."""
    from _util import synth_rgb
    srcs = []
    for i in range(6):
        a = synth_rgb(160, 120, seed=100 + i)
        path = tmp_path / f"{i}.img"
        if fmt == "WEBP-lossless":
            Image.fromarray(a).save(path, "WEBP", lossless=True)
        else:
            Image.fromarray(a).save(path, fmt)
        srcs.append(str(path))
    batch = np_batch(load(srcs, width=64, height=64))
    for i, s in enumerate(srcs):
        alone = np_batch(spdl.io.load_image_batch([s], width=64, height=64))[0]
        mean, p999, mx = diff_stats(batch[i], alone)
        assert mx == 0, f"row {i}: mean={mean:.2f} max={mx}"
