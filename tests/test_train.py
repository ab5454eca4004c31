"""Training plans (issue 10): crop=, hflip=, seed=, dtype=, mean=/std=, layout= and buf.crops.

Every input is made here, small, in memory (Pillow). References:
- the crop draws: torchvision's RandomResizedCrop algorithm, written below from its
  documentation with numpy's generator, compared by distribution (10,000 draws);
- the pixels: Pillow (full decode, crop, bicubic resize, which antialiases when shrinking);
- float output: numpy applied to the uint8 batch of the same plan and seed;
- JPEG region decode: the same JPEG decoded whole at the crop's scale
  (``_testing.use_jpeg_region(False)``), byte for byte.
The nvJPEG loader's handling of a training plan is checked without a GPU, on the
host-memory fake of the CUDA libraries that tests/test_cuda.py builds. ``load`` (conftest)
runs each test through the sync and the async loader.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

import spdl.io
from spdl.io import CenterCrop, RandomResizedCrop, _testing
from spdl.io._geometry import draw_crop
from spdl.io._plan import compile_plan

from _util import smooth_rgb

# ---------------------------------------------------------------------------
# Inputs: small images of each kind, as bytes


def _encode(arr: np.ndarray, fmt: str, mode: str | None = None, **kw) -> bytes:
    im = Image.fromarray(arr)
    if mode is not None:
        im = im.convert(mode)
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def _make_inputs() -> dict[str, bytes]:
    a = smooth_rgb(160, 120, seed=1)
    odd = smooth_rgb(157, 93, seed=2)
    tiny = smooth_rgb(9, 7, seed=3)
    rgba = np.dstack([a, np.tile(np.linspace(0, 255, 160).astype(np.uint8), (120, 1))])
    return {
        "jpeg420": _encode(a, "JPEG", quality=90, subsampling=2),
        "jpeg422": _encode(a, "JPEG", quality=90, subsampling=1),
        "jpeg444": _encode(a, "JPEG", quality=90, subsampling=0),
        "jpeg420_odd": _encode(odd, "JPEG", quality=90, subsampling=2),
        "jpeg444_odd": _encode(odd, "JPEG", quality=90, subsampling=0),
        "jpeg420_tiny": _encode(tiny, "JPEG", quality=90, subsampling=2),
        "jpeg_progressive": _encode(a, "JPEG", quality=90, progressive=True),
        "jpeg_restart": _encode(odd, "JPEG", quality=90, restart_marker_blocks=3),
        "jpeg_gray": _encode(a, "JPEG", "L", quality=90),
        "jpeg_cmyk": _encode(a, "JPEG", "CMYK", quality=90),
        "png": _encode(a, "PNG"),
        "png_rgba": _encode(rgba, "PNG"),
        "webp": _encode(a, "WEBP", quality=90),
    }


INPUTS = _make_inputs()
#: The JPEGs that take libjpeg's region decode (CMYK goes through FFmpeg).
REGION_JPEGS = ["jpeg420", "jpeg422", "jpeg444", "jpeg420_odd", "jpeg444_odd", "jpeg420_tiny",
                "jpeg_progressive", "jpeg_restart", "jpeg_gray"]
W, H = 48, 40  # the output size of most tests


def _pil(name: str, mode: str = "RGB") -> Image.Image:
    with Image.open(io.BytesIO(INPUTS[name])) as im:
        return im.convert(mode)


def _ref_row(img: Image.Image, box, flip: bool, w: int, h: int) -> np.ndarray:
    """Pillow's row: crop the box from the whole decode, resize (bicubic), flip."""
    x, y, bw, bh = box[:4]
    out = img.crop((x, y, x + bw, y + bh)).resize((w, h), Image.Resampling.BICUBIC)
    if flip:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    a = np.asarray(out)
    return a[..., None] if a.ndim == 2 else a


def _mad(a, b) -> float:
    a, b = np.asarray(a).astype(np.float64), np.asarray(b).astype(np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).mean())


def _load(srcs, **kw):
    return spdl.io.load_image_batch(srcs, **kw)


def _aload(srcs, threads: int | None = None, **kw):
    """The async loader on a loop whose default executor has that many threads."""
    async def main():
        if threads is not None:
            asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(threads))
        return await spdl.io.async_load_image_batch(srcs, **kw)

    return asyncio.run(main())


TRAIN = dict(width=W, height=H, crop=RandomResizedCrop(), hflip=0.5)


# ---------------------------------------------------------------------------
# Determinism


def _batch_srcs():
    names = ["jpeg420", "jpeg444", "png", "webp", "jpeg_gray", "jpeg420_odd", "jpeg_cmyk",
             "jpeg_progressive"]
    return names, [INPUTS[n] for n in names]


def test_same_seed_same_bytes_sync_async_and_thread_counts():
    _, srcs = _batch_srcs()
    ref = _load(srcs, seed=1234, **TRAIN)
    ref_bytes = np.asarray(ref).tobytes()
    assert len(ref.crops) == len(srcs)
    for buf in (_load(srcs, seed=1234, **TRAIN),
                _aload(srcs, seed=1234, **TRAIN),
                _aload(srcs, threads=1, seed=1234, **TRAIN),
                _aload(srcs, threads=2, seed=1234, **TRAIN)):
        assert buf.crops == ref.crops
        assert np.asarray(buf).tobytes() == ref_bytes
    other = _load(srcs, seed=1235, **TRAIN)
    assert other.crops != ref.crops


def test_same_seed_same_float_bytes_across_thread_counts(tmp_path):
    names, srcs = _batch_srcs()
    paths = []
    for n, d in zip(names, srcs):
        p = tmp_path / f"{n}.img"
        p.write_bytes(d)
        paths.append(str(p))
    kw = dict(TRAIN, seed=9, dtype="float32", layout="NCHW", mean=(0.485, 0.456, 0.406),
              std=(0.229, 0.224, 0.225))
    one = _aload(srcs, threads=1, **kw)
    two = _aload(paths, threads=2, **kw)
    sync = _load(paths, **kw)
    assert one.crops == two.crops == sync.crops
    assert np.asarray(one).tobytes() == np.asarray(two).tobytes() == np.asarray(sync).tobytes()


def test_draws_depend_on_seed_and_index_only():
    """A row's crop is a function of (seed, its index): the batch's other inputs and
    their number do not move it, and draw_crop gives the same box."""
    a = _load([INPUTS["jpeg420"]] * 3, seed=77, **TRAIN)
    b = _load([INPUTS["jpeg420"]] * 3 + [INPUTS["png"]] * 2, seed=77, **TRAIN)
    assert b.crops[:3] == a.crops
    plan = compile_plan(seed=77, **TRAIN)
    assert tuple(draw_crop(plan, i, 160, 120) for i in range(5)) == b.crops
    # the seed's low 64 bits are what count
    big = compile_plan(seed=77 + (1 << 64), **TRAIN)
    assert draw_crop(big, 2, 160, 120) == draw_crop(plan, 2, 160, 120)


def test_part_of_a_batch_draws_its_inputs_own_crops():
    """A backend that loads a part of the caller's list on the CPU (the nvJPEG loader's
    fallback rows) passes their indices: each row gets its input's draw and per-input box."""
    from spdl.io._load import run_plan

    srcs = [INPUTS["jpeg420"]] * 5
    whole = _load(srcs, seed=5, **TRAIN)
    part = run_plan([srcs[1], srcs[3]], compile_plan(seed=5, **TRAIN), [1, 3])
    assert part.crops == (whole.crops[1], whole.crops[3])
    assert np.asarray(part).tobytes() == np.asarray(whole)[[1, 3]].tobytes()
    boxes = [(0, 0, 10 + i, 10 + i) for i in range(5)]
    plan = compile_plan(width=16, height=16, crop=boxes, hflip=[i % 2 == 1 for i in range(5)])
    part = run_plan([srcs[1], srcs[4]], plan, [1, 4])
    assert part.crops == ((0, 0, 11, 11, True), (0, 0, 14, 14, False))
    with pytest.raises(ValueError, match="do not cover"):
        run_plan([srcs[0]], plan, [7])


def test_seed_none_draws_fresh_crops_that_match_the_pixels(load):
    srcs = [INPUTS["png"]] * 6
    a = load(srcs, seed=None, **TRAIN)
    b = load(srcs, seed=None, **TRAIN)
    assert a.crops != b.crops
    img = _pil("png")
    for buf in (a, b):
        rows = np.asarray(buf)
        for i, c in enumerate(buf.crops):
            assert _mad(rows[i], _ref_row(img, c, c[4], W, H)) < 1.0, (i, c)


# ---------------------------------------------------------------------------
# RandomResizedCrop: the box statistics against torchvision's algorithm


def _tv_fallback(iw, ih, ratio):
    """torchvision's fallback after 10 failed draws: the whole image, narrowed to the
    ratio range, centred (integer division)."""
    r = iw / ih
    if r < min(ratio):
        w = iw
        h = int(round(w / min(ratio)))
    elif r > max(ratio):
        h = ih
        w = int(round(h * max(ratio)))
    else:
        w, h = iw, ih
    return (iw - w) // 2, (ih - h) // 2, w, h


def _tv_get_params(rng, iw, ih, scale, ratio):
    """RandomResizedCrop.get_params as torchvision documents it: up to 10 tries of an area
    uniform in scale * image area and an aspect ratio log-uniform in ratio; sizes
    rounded; the first box that fits is placed uniformly (top first, then left)."""
    area = iw * ih
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(lo, hi))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= iw and 0 < h <= ih:
            y = int(rng.integers(0, ih - h + 1))
            x = int(rng.integers(0, iw - w + 1))
            return x, y, w, h
    return _tv_fallback(iw, ih, ratio)


def _ks(a, b) -> float:
    """The two-sample Kolmogorov-Smirnov statistic."""
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    v = np.concatenate([a, b])
    return float(np.abs(np.searchsorted(a, v, "right") / len(a)
                        - np.searchsorted(b, v, "right") / len(b)).max())


N_DRAWS = 10_000
# KS critical value for two samples of 10,000 at alpha = 0.001: 1.95 * sqrt(2 / 10000) = 0.028
KS_MAX = 0.03


def _spdl_boxes(iw, ih, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), seed=2024):
    plan = compile_plan(width=W, height=H, crop=RandomResizedCrop(scale, ratio), seed=seed)
    return np.array([draw_crop(plan, i, iw, ih)[:4] for i in range(N_DRAWS)])


def _ref_boxes(iw, ih, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), seed=2024):
    rng = np.random.default_rng(seed)
    return np.array([_tv_get_params(rng, iw, ih, scale, ratio) for _ in range(N_DRAWS)])


@pytest.mark.parametrize("iw, ih, scale, ratio", [
    (500, 375, (0.08, 1.0), (3 / 4, 4 / 3)),
    (375, 500, (0.08, 1.0), (3 / 4, 4 / 3)),
    (640, 360, (0.25, 0.75), (0.5, 2.0)),
])
def test_random_resized_crop_matches_torchvision_statistics(iw, ih, scale, ratio):
    got, ref = _spdl_boxes(iw, ih, scale, ratio), _ref_boxes(iw, ih, scale, ratio)
    for boxes in (got, ref):     # every box inside the image
        x, y, w, h = boxes.T
        assert (x >= 0).all() and (y >= 0).all() and (w >= 1).all() and (h >= 1).all()
        assert (x + w <= iw).all() and (y + h <= ih).all()

    def stats(b):
        x, y, w, h = b.T.astype(float)
        area = w * h / (iw * ih)
        log_aspect = np.log(w / h)
        # placement: where the box's left edge is within its free range (0..1)
        free = (w < iw) & (h < ih)
        px = x[free] / (iw - w[free])
        py = y[free] / (ih - h[free])
        return area, log_aspect, px, py

    g, r = stats(got), stats(ref)
    report = []
    for name, a, b in zip(("area", "log_aspect", "x", "y"), g, r):
        d = _ks(a, b)
        report.append(f"{name}: KS={d:.4f} mean {a.mean():.4f} vs {b.mean():.4f}")
        assert d < KS_MAX, report
    area_g, area_r = g[0], r[0]
    # means within 4 standard errors, quartiles close
    se = area_r.std() / math.sqrt(N_DRAWS)
    assert abs(area_g.mean() - area_r.mean()) < 4 * math.sqrt(2) * se, report
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        assert abs(np.quantile(area_g, q) - np.quantile(area_r, q)) < 0.02, (q, report)
        assert abs(np.quantile(g[1], q) - np.quantile(r[1], q)) < 0.03, (q, report)
    # the aspect stays within the ratio range (up to the rounding of w and h)
    assert g[1].min() > math.log(ratio[0]) - 0.05 and g[1].max() < math.log(ratio[1]) + 0.05


@pytest.mark.parametrize("iw, ih", [(2000, 20), (20, 2000)])
def test_random_resized_crop_falls_back_when_no_box_fits(iw, ih):
    """No box of the ratio range fits (2000 x 20): every draw is torchvision's fallback,
    the centred box of the nearest ratio."""
    fallback = _tv_fallback(iw, ih, (3 / 4, 4 / 3))
    assert fallback == (((2000 - 27) // 2, 0, 27, 20) if iw > ih else (0, (2000 - 27) // 2, 20, 27))
    got = _spdl_boxes(iw, ih)
    assert (got == np.array(fallback)).all()


def test_random_resized_crop_fallback_rate_matches():
    """An image where most draws fail (500 x 60): the share of fallbacks matches
    torchvision's within sampling error."""
    iw, ih = 500, 60
    fallback = np.array(_tv_fallback(iw, ih, (3 / 4, 4 / 3)))
    got, ref = _spdl_boxes(iw, ih), _ref_boxes(iw, ih)
    rg = (got == fallback).all(axis=1).mean()
    rr = (ref == fallback).all(axis=1).mean()
    assert 0.05 < rr < 0.95, rr    # the case is a mix of both
    se = math.sqrt(rr * (1 - rr) / N_DRAWS)
    assert abs(rg - rr) < 4 * math.sqrt(2) * se, (rg, rr)
    drawn_g, drawn_r = got[~(got == fallback).all(axis=1)], ref[~(ref == fallback).all(axis=1)]
    assert _ks(drawn_g[:, 2] * drawn_g[:, 3], drawn_r[:, 2] * drawn_r[:, 3]) < 0.05


def test_random_resized_crop_square_ratio():
    boxes = _spdl_boxes(300, 200, scale=(0.5, 0.5), ratio=(1.0, 1.0))
    w, h = boxes[:, 2], boxes[:, 3]
    assert (w == h).all()
    assert (w == round(math.sqrt(0.5 * 300 * 200))).all()


# ---------------------------------------------------------------------------
# CenterCrop


@pytest.mark.parametrize("iw, ih, ow, oh, f", [
    (500, 375, 224, 224, 0.875), (375, 500, 224, 224, 0.875), (640, 480, 64, 32, 1.0),
    (640, 480, 32, 64, 0.5), (101, 37, 10, 10, 0.875), (37, 101, 30, 20, 0.3), (7, 5, 3, 3, 1.0),
])
def test_center_crop_box(iw, ih, ow, oh, f):
    plan = compile_plan(width=ow, height=oh, crop=CenterCrop(f), seed=0)
    x, y, w, h, flipped = draw_crop(plan, 3, iw, ih)
    assert not flipped
    assert 0 <= x and 0 <= y and x + w <= iw and y + h <= ih
    # centred (to the nearest pixel)
    assert abs((iw - w) - 2 * x) <= 1 and abs((ih - h) - 2 * y) <= 1
    # the output's aspect ratio, up to rounding each side
    assert abs(w / h - ow / oh) <= (ow / oh) * (1 / h + 1 / w) + 1e-9
    # fraction of the largest box of that aspect ratio
    if iw * oh >= ih * ow:
        big_w, big_h = ih * ow / oh, ih
    else:
        big_w, big_h = iw, iw * oh / ow
    assert abs(w - f * big_w) <= 0.5 + 1e-9 and abs(h - f * big_h) <= 0.5 + 1e-9
    assert draw_crop(plan, 0, iw, ih) == (x, y, w, h, False)     # the same for every index


def test_center_crop_0875_is_resize_256_centre_224():
    """CenterCrop(0.875) to 224 x 224 approximates torchvision's evaluation transform:
    resize the short side to 256, take the centre 224 x 224 (Pillow)."""
    a = smooth_rgb(500, 375, seed=8)
    src = _encode(a, "PNG")
    buf = _load([src], width=224, height=224, crop=CenterCrop(0.875))
    assert buf.crops == ((86, 24, 328, 328, False),)
    im = Image.fromarray(a).resize((round(500 * 256 / 375), 256), Image.Resampling.BICUBIC)
    left, top = int(round((im.width - 224) / 2)), int(round((256 - 224) / 2))
    ref = np.asarray(im.crop((left, top, left + 224, top + 224)))
    assert _mad(np.asarray(buf)[0], ref) < 2.0


# ---------------------------------------------------------------------------
# Explicit boxes against Pillow


BOXES = {
    "interior": (13, 7, 61, 45),
    "right_bottom": (110, 80, 50, 40),         # touches the right and bottom edges of 160 x 120
    "bottom_left_strip": (0, 117, 160, 3),
    "one_px": (77, 33, 1, 1),
    "whole": (0, 0, 160, 120),
    "upscale": (140, 100, 20, 20),
}
KINDS = {  # input, pix_fmt, Pillow mode
    "jpeg420": ("jpeg420", "rgb24", "RGB"),
    "jpeg444": ("jpeg444", "rgb24", "RGB"),
    "jpeg_progressive": ("jpeg_progressive", "rgb24", "RGB"),
    "png": ("png", "rgb24", "RGB"),
    "webp": ("webp", "rgb24", "RGB"),
    "gray_to_rgb": ("jpeg_gray", "rgb24", "RGB"),
    "gray_to_gray": ("jpeg_gray", "gray", "L"),
    "cmyk": ("jpeg_cmyk", "rgb24", "RGB"),
    "rgba": ("png_rgba", "rgba", "RGBA"),
}


@pytest.mark.parametrize("kind", list(KINDS))  # (WebP: libwebp decodes it, as Pillow does)
def test_boxes_against_pillow(load, kind):
    name, pix_fmt, mode = KINDS[kind]
    boxes = list(BOXES.values())
    buf = load([INPUTS[name]] * len(boxes), width=W, height=H, pix_fmt=pix_fmt, crop=boxes)
    assert buf.crops == tuple((*b, False) for b in boxes)
    rows = np.asarray(buf)
    img = _pil(name, mode)
    for i, (what, box) in enumerate(BOXES.items()):
        mad = _mad(rows[i], _ref_row(img, box, False, W, H))
        assert mad <= 2.0, (kind, what, box, mad)
    # a 1 x 1 box is one colour
    one = rows[list(BOXES).index("one_px")]
    assert (one == one[0, 0]).all()


def test_webp_boxes_add_little_to_the_decoders_gap(load):
    """WebP: the crop adds at most 1 to the MAD that the decoders differ by on the whole
    image, and against Pillow's crop + resize of spdl's own whole decode it is within 2."""
    boxes = list(BOXES.values())
    rows = np.asarray(load([INPUTS["webp"]] * len(boxes), width=W, height=H, crop=boxes))
    pil = _pil("webp")
    own = Image.fromarray(np.asarray(_load([INPUTS["webp"]], width=None, height=None))[0])
    gap = _mad(np.asarray(own), np.asarray(pil))
    assert gap < 2.0
    for i, (what, box) in enumerate(BOXES.items()):
        assert _mad(rows[i], _ref_row(pil, box, False, W, H)) <= gap + 1.0, what
        assert _mad(rows[i], _ref_row(own, box, False, W, H)) <= 2.0, what


def test_png_box_of_the_output_size_is_exact(load):
    a = np.asarray(_pil("png"))
    boxes = [(0, 0, W, H), (160 - W, 120 - H, W, H), (37, 11, W, H)]
    buf = load([INPUTS["png"]] * 3, width=W, height=H, crop=boxes, hflip=[False, False, True])
    rows = np.asarray(buf)
    for i, (x, y, w, h) in enumerate(boxes):
        ref = a[y:y + h, x:x + w]
        np.testing.assert_array_equal(rows[i], ref[:, ::-1] if i == 2 else ref)


def test_box_outside_the_image_fails_that_image_only(load):
    srcs = [INPUTS["jpeg420"], INPUTS["png"], INPUTS["jpeg444"], INPUTS["webp"]]
    boxes = [(0, 0, 10, 10), (151, 0, 10, 10), (0, 0, 160, 120), (0, 100, 5, 21)]
    buf = load(srcs, width=W, height=H, crop=boxes, strict=False)
    assert buf.indices == (0, 2)
    assert buf.crops == ((0, 0, 10, 10, False), (0, 0, 160, 120, False))
    assert sorted(buf.errors) == [1, 3]
    for k in (1, 3):
        assert isinstance(buf.errors[k], spdl.io.FilterError), buf.errors[k]
        assert "outside" in str(buf.errors[k])
    assert np.asarray(buf).shape == (2, H, W, 3)
    with pytest.raises(spdl.io.BatchLoadError):
        load(srcs, width=W, height=H, crop=boxes)


@pytest.mark.parametrize("kw", [
    dict(crop=[(0, 0, 5, 5)] * 2),
    dict(crop=[(0, 0, 5, 5)] * 4),
    dict(hflip=[True, False]),
    dict(crop=RandomResizedCrop(), hflip=[True] * 4),
    dict(crop=[(0, 0, 5, 5)] * 3, hflip=[True] * 2),
])
def test_per_input_lists_of_the_wrong_length(load, kw):
    with pytest.raises(ValueError, match="crop|hflip"):
        load([INPUTS["png"]] * 3, width=W, height=H, **kw)


# ---------------------------------------------------------------------------
# Region decode vs whole decode (JPEG)


def _region_case_loads():
    srcs = [INPUTS[n] for n in REGION_JPEGS]
    yield dict(srcs=srcs * 3, seed=5, **TRAIN)
    yield dict(srcs=srcs * 2, seed=6, width=24, height=24, crop=RandomResizedCrop((0.5, 1.0)))
    yield dict(srcs=srcs, width=W, height=H, crop=CenterCrop(0.875), dtype="float32")
    for name in REGION_JPEGS:
        with Image.open(io.BytesIO(INPUTS[name])) as im:
            iw, ih = im.size
        boxes = [(0, 0, iw, ih), (iw - 1, ih - 1, 1, 1), (iw // 3, ih // 3, max(1, iw // 2), 1),
                 (max(0, iw - 17), max(0, ih - 9), min(iw, 17), min(ih, 9)),
                 (1, 3, max(1, iw - 5), max(1, ih - 7)), (0, ih // 2, iw, ih - ih // 2)]
        yield dict(srcs=[INPUTS[name]] * len(boxes), width=W, height=H, crop=boxes,
                   pix_fmt="gray" if name == "jpeg_gray" else "rgb24")
        yield dict(srcs=[INPUTS[name]] * len(boxes), width=7, height=5, crop=boxes, hflip=True)


def test_region_decode_equals_whole_decode():
    for kw in _region_case_loads():
        srcs = kw.pop("srcs")
        region = _load(srcs, **kw)
        try:
            _testing.use_jpeg_region(False)
            whole = _load(srcs, **kw)
        finally:
            _testing.use_jpeg_region(True)
        assert region.crops == whole.crops
        np.testing.assert_array_equal(np.asarray(region), np.asarray(whole), err_msg=str(kw))


# ---------------------------------------------------------------------------
# buf.crops against the pixels, flips


def test_crops_match_the_pixels(load):
    names = ["jpeg420", "jpeg444", "png", "webp", "jpeg420_odd", "jpeg_progressive", "jpeg_cmyk",
             "jpeg_restart"] * 2
    buf = load([INPUTS[n] for n in names], seed=31, **TRAIN)
    rows = np.asarray(buf)
    assert len(buf.crops) == len(names)
    flips = [c[4] for c in buf.crops]
    assert any(flips) and not all(flips)
    for i, (n, c) in enumerate(zip(names, buf.crops)):
        img = _pil(n)
        assert 0 <= c[0] and 0 <= c[1] and c[0] + c[2] <= img.width and c[1] + c[3] <= img.height
        mad = _mad(rows[i], _ref_row(img, c, c[4], W, H))
        assert mad <= 2.0, (i, n, c, mad)
        # the other flip is clearly worse: the flag is the one applied
        assert _mad(rows[i], _ref_row(img, c, not c[4], W, H)) > mad + 1.0, (i, n, c)


def test_hflip_true_mirrors_every_row(load):
    srcs = [INPUTS[n] for n in ("jpeg420", "png", "webp", "jpeg_gray")]
    kw = dict(width=W, height=H, crop=RandomResizedCrop(), seed=3)
    plain = load(srcs, hflip=False, **kw)
    flipped = load(srcs, hflip=True, **kw)
    assert [c[:4] for c in flipped.crops] == [c[:4] for c in plain.crops]
    assert all(c[4] for c in flipped.crops) and not any(c[4] for c in plain.crops)
    np.testing.assert_array_equal(np.asarray(flipped), np.asarray(plain)[:, :, ::-1])


def test_hflip_without_crop_and_per_input(load):
    srcs = [INPUTS["png"]] * 3
    plain = load(srcs, width=W, height=H)
    assert plain.crops is None
    buf = load(srcs, width=W, height=H, hflip=[True, False, True])
    # no crop: the whole image, resized as the plan's scale_mode says
    assert buf.crops == ((0, 0, 160, 120, True), (0, 0, 160, 120, False), (0, 0, 160, 120, True))
    p, b = np.asarray(plain), np.asarray(buf)
    np.testing.assert_array_equal(b[0], p[0][:, ::-1])
    np.testing.assert_array_equal(b[1], p[1])
    np.testing.assert_array_equal(b[2], p[2][:, ::-1])
    never = load(srcs, width=W, height=H, hflip=0.0)
    assert never.crops is None


def test_hflip_probability():
    plan = compile_plan(width=8, height=8, hflip=0.5, seed=11)
    share = np.mean([draw_crop(plan, i, 30, 20)[4] for i in range(N_DRAWS)])
    assert abs(share - 0.5) < 0.02, share
    plan = compile_plan(width=8, height=8, hflip=0.2, seed=11)
    share = np.mean([draw_crop(plan, i, 30, 20)[4] for i in range(N_DRAWS)])
    assert abs(share - 0.2) < 0.02, share
    buf = _load([INPUTS["jpeg420_tiny"]] * 64, width=8, height=8, hflip=0.5, seed=12)
    n = sum(c[4] for c in buf.crops)
    assert 16 <= n <= 48, n
    # the flip draw does not depend on the crop draw
    with_crop = _load([INPUTS["jpeg420_tiny"]] * 64, width=8, height=8, hflip=0.5, seed=12,
                      crop=RandomResizedCrop())
    assert [c[4] for c in with_crop.crops] == [c[4] for c in buf.crops]


# ---------------------------------------------------------------------------
# Float output and NCHW against numpy


FLOAT_CASES = {  # pix_fmt: (input, channels)
    "rgb24": ("jpeg420", 3),
    "gray": ("jpeg_gray", 1),
    "rgba": ("png_rgba", 4),
}


@pytest.mark.parametrize("pix_fmt", list(FLOAT_CASES))
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("norm", [False, True])
def test_float_output_against_numpy(pix_fmt, dtype, layout, norm):
    name, ch = FLOAT_CASES[pix_fmt]
    srcs = [INPUTS[name], INPUTS["png"], INPUTS[name]]
    kw = dict(width=W, height=H, pix_fmt=pix_fmt, crop=RandomResizedCrop(), hflip=0.5, seed=21)
    mean = std = None
    if norm:
        mean, std = [0.485, 0.456, 0.406, 0.5][:ch], [0.229, 0.224, 0.225, 0.25][:ch]
    u8 = _load(srcs, **kw)
    buf = _load(srcs, dtype=dtype, layout=layout, mean=mean, std=std, **kw)
    assert buf.crops == u8.crops
    assert buf.dtype == dtype
    out = np.asarray(buf)
    assert out.dtype == np.dtype(dtype)
    ref = np.asarray(u8).astype(np.float32) / np.float32(255)
    if norm:
        ref = (ref - np.array(mean, np.float32)) / np.array(std, np.float32)
    if layout == "NCHW":
        ref = ref.transpose(0, 3, 1, 2)
    assert out.shape == ref.shape == ((3, H, W, ch) if layout == "NHWC" else (3, ch, H, W))
    if dtype == "float32":
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6)
    else:
        np.testing.assert_array_equal(out, ref.astype(np.float16))


def test_float_scalar_mean_std_apply_to_every_channel():
    kw = dict(width=W, height=H, crop=[(0, 0, 50, 50)], dtype="float32")
    a = np.asarray(_load([INPUTS["png"]], mean=0.5, std=0.25, **kw))
    b = np.asarray(_load([INPUTS["png"]], mean=[0.5] * 3, std=[0.25] * 3, **kw))
    np.testing.assert_array_equal(a, b)
    assert -2.0 <= a.min() and a.max() <= 2.0


@pytest.mark.parametrize("pix_fmt", ["rgb24", "bgr24", "gray", "rgba"])
def test_uint8_nchw_is_nhwc_transposed(load, pix_fmt):
    srcs = [INPUTS["png_rgba"], INPUTS["jpeg444"]]
    kw = dict(width=W, height=H, pix_fmt=pix_fmt, crop=RandomResizedCrop(), hflip=0.5, seed=4)
    nhwc = load(srcs, **kw)
    nchw = load(srcs, layout="NCHW", **kw)
    assert nchw.crops == nhwc.crops
    np.testing.assert_array_equal(np.asarray(nchw), np.asarray(nhwc).transpose(0, 3, 1, 2))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_dlpack_and_torch_give_the_float_dtype(dtype):
    buf = _load([INPUTS["jpeg420"]] * 2, width=W, height=H, crop=CenterCrop(), dtype=dtype,
                layout="NCHW", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    ref = np.asarray(buf)
    dl = np.from_dlpack(buf)
    assert dl.dtype == np.dtype(dtype) and dl.shape == (2, 3, H, W)
    np.testing.assert_array_equal(dl, ref)
    torch = pytest.importorskip("torch")
    t = spdl.io.to_torch(buf)
    assert t.dtype == getattr(torch, dtype) and tuple(t.shape) == (2, 3, H, W)
    np.testing.assert_array_equal(t.numpy(), ref)


# ---------------------------------------------------------------------------
# Argument checks


@pytest.mark.parametrize("kw, exc, match", [
    (dict(width=None, height=None, crop=RandomResizedCrop()), ValueError, "crop needs both"),
    (dict(width=W, height=None, crop=CenterCrop()), ValueError, "crop needs both"),
    (dict(crop=[(0, 0, 4, 4)], filter_desc="hflip"), ValueError, "crop and filter_desc"),
    (dict(hflip=True, pix_fmt="rgbp"), ValueError, "hflip"),
    (dict(hflip=0.5, pix_fmt="yuv420p"), ValueError, "hflip"),
    (dict(hflip=True, width=None, height=None), ValueError, "hflip"),
    (dict(dtype="float32", pix_fmt="yuv444p"), ValueError, "dtype"),
    (dict(layout="NCHW", pix_fmt="yuv420p"), ValueError, "layout"),
    (dict(dtype="float32", pix_fmt="gray16"), ValueError, "dtype"),
    (dict(dtype="float64"), ValueError, "dtype must be one of"),
    (dict(layout="CHW"), ValueError, "layout must be one of"),
    (dict(mean=(0.5, 0.5, 0.5)), ValueError, "mean and std"),
    (dict(std=(0.5, 0.5, 0.5)), ValueError, "mean and std"),
    (dict(dtype="float32", mean=(0.5, 0.5)), ValueError, "mean needs one value per channel"),
    (dict(dtype="float32", pix_fmt="gray", std=(0.5, 0.5, 0.5)), ValueError, "std needs one"),
    (dict(dtype="float32", std=(0.5, 0.0, 0.5)), ValueError, "std must not be zero"),
    (dict(dtype="float32", std="abc"), TypeError, "std"),
    (dict(dtype="float32", mean=(0.5, "x", 0.5)), TypeError, "mean"),
    (dict(dtype="float32", mean=(0.5, float("nan"), 0.5)), ValueError, "mean must be finite"),
    (dict(hflip=1.5), ValueError, "hflip"),
    (dict(hflip=-0.1), ValueError, "hflip"),
    (dict(hflip="yes"), TypeError, "hflip"),
    (dict(hflip=[1, 0]), TypeError, r"hflip\[0\]"),
    (dict(seed="1"), TypeError, "seed"),
    (dict(seed=1.5), TypeError, "seed"),
    (dict(crop="center"), TypeError, "crop"),
    (dict(crop=0.875), TypeError, "crop"),
    (dict(crop=[(0, 0, 4)]), TypeError, r"crop\[0\]"),
    (dict(crop=[(0, 0, 4, 4), (0, 0, 4.5, 4)]), TypeError, r"crop\[1\]"),
    (dict(crop=[(-1, 0, 4, 4)]), ValueError, r"crop\[0\]"),
    (dict(crop=[(0, 0, 0, 4)]), ValueError, r"crop\[0\]"),
    (dict(crop=[(0, 0, 4, 70000)]), ValueError, r"crop\[0\]"),
])
def test_argument_checks(load, kw, exc, match):
    args = dict(width=W, height=H) | kw
    with pytest.raises(exc, match=match):
        load([b"not an image"], **args)


@pytest.mark.parametrize("make, exc, match", [
    (lambda: RandomResizedCrop(scale=(0.5, 0.1)), ValueError, "scale"),
    (lambda: RandomResizedCrop(scale=(0.0, 1.0)), ValueError, "scale"),
    (lambda: RandomResizedCrop(scale=(0.5, 1.5)), ValueError, "scale"),
    (lambda: RandomResizedCrop(scale=(float("nan"), 1.0)), ValueError, "scale"),
    (lambda: RandomResizedCrop(scale=0.5), TypeError, "scale"),
    (lambda: RandomResizedCrop(ratio=(2.0, 1.0)), ValueError, "ratio"),
    (lambda: RandomResizedCrop(ratio=(0.0, 1.0)), ValueError, "ratio"),
    (lambda: RandomResizedCrop(ratio=(1.0,)), TypeError, "ratio"),
    (lambda: RandomResizedCrop(ratio="ab"), TypeError, "ratio"),
    (lambda: CenterCrop(0), ValueError, "fraction"),
    (lambda: CenterCrop(1.5), ValueError, "fraction"),
    (lambda: CenterCrop(float("inf")), ValueError, "fraction"),
    (lambda: CenterCrop("0.5"), TypeError, "fraction"),
    (lambda: CenterCrop(True), TypeError, "fraction"),
])
def test_crop_object_checks(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_crop_objects_are_frozen_values():
    assert RandomResizedCrop() == RandomResizedCrop((0.08, 1), [3 / 4, 4 / 3])
    assert RandomResizedCrop((0.08, 1)).scale == (0.08, 1.0)
    assert CenterCrop(1) == CenterCrop(1.0)
    with pytest.raises(Exception):
        CenterCrop().fraction = 0.5  # type: ignore[misc]


# ---------------------------------------------------------------------------
# The nvJPEG loader, on the host-memory fake of the CUDA libraries (no GPU)

_FAKE_SCRIPT = r"""
import io, json, os, sys
import numpy as np
from PIL import Image
FAKE = sys.argv[1]
import spdl.io
from spdl.io import CUDAConfig, RandomResizedCrop, CenterCrop, _testing
_testing.use_libraries(FAKE, driver=os.path.join(FAKE, "drv", "libcuda.so.1"))

def jpeg(w, h):
    b = io.BytesIO(); Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(b, "JPEG", quality=90)
    return b.getvalue()

srcs = [jpeg(64, 48), jpeg(50, 70), jpeg(33, 33)]
report = []
for kw in [
    dict(width=32, height=24, crop=RandomResizedCrop(), hflip=0.5, seed=5, dtype="float32",
         layout="NCHW", mean=[0.5] * 3, std=[0.25] * 3),
    dict(width=16, height=16, crop=CenterCrop(0.875), dtype="float16"),
    dict(width=16, height=12, crop=[(0, 0, 64, 48), (10, 20, 5, 5), (32, 32, 1, 1)], hflip=True),
]:
    cpu = spdl.io.load_image_batch(srcs, **kw)
    out = spdl.io.load_image_batch_nvjpeg(srcs, device_config=CUDAConfig(1), **kw)
    host = _testing.to_host(out)
    report.append(dict(type=type(out).__name__, dtype=out.dtype, shape=list(out.shape),
                       host_dtype=str(host.dtype), crops=out.crops, cpu_crops=cpu.crops,
                       cpu_shape=list(np.asarray(cpu).shape), lo=float(host.min()),
                       hi=float(host.max()), finite=bool(np.isfinite(host).all())))
print(json.dumps(report))
"""


def test_nvjpeg_loader_takes_a_training_plan_on_the_fake(tmp_path):
    from test_cuda import _run_on_fake_cuda

    r = _run_on_fake_cuda(tmp_path, _FAKE_SCRIPT)
    report = json.loads(r.stdout.strip().splitlines()[-1])
    expect = [("float32", [3, 3, 24, 32], (-2.0, 2.0)), ("float16", [3, 16, 16, 3], (0.0, 1.0)),
              ("uint8", [3, 12, 16, 3], (0, 255))]
    for got, (dtype, shape, (lo, hi)) in zip(report, expect):
        assert got["type"] == "CUDABuffer", got
        assert got["dtype"] == got["host_dtype"] == dtype, got
        assert got["shape"] == got["cpu_shape"] == shape, got
        assert got["crops"] == got["cpu_crops"], got          # the same draws as the CPU path
        assert got["finite"] and lo <= got["lo"] <= got["hi"] <= hi, got
    assert report[2]["crops"] == [[0, 0, 64, 48, True], [10, 20, 5, 5, True], [32, 32, 1, 1, True]]
