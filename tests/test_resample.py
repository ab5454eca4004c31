"""The resampler's vector passes against its baseline passes: the same bytes.

The AVX2 passes (chosen at run time where the CPU has AVX2) and the SSE2 /
portable passes compute the same fixed-point sums; only the speed may differ.
On a machine without AVX2 both runs take the baseline and the test still holds.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import spdl.io
from spdl.io._testing import use_simd
from _util import np_batch, synth_rgb


def _sources():
    srcs = []
    for i, (w, h) in enumerate([(485, 426), (333, 500), (97, 61), (1, 7), (640, 17), (50, 50), (301, 199)]):
        arr = synth_rgb(w, h, seed=i)
        for fmt, kw in (("JPEG", dict(quality=90)), ("JPEG", dict(quality=75, progressive=True)), ("PNG", {})):
            b = io.BytesIO()
            Image.fromarray(arr).save(b, fmt, **kw)
            srcs.append(b.getvalue())
    b = io.BytesIO()
    Image.fromarray(np.dstack([synth_rgb(123, 77, seed=9), np.full((77, 123), 200, np.uint8)])).save(b, "PNG")
    srcs.append(b.getvalue())
    return srcs


@pytest.fixture(autouse=True)
def _restore_simd():
    yield
    use_simd(True)


@pytest.mark.parametrize("pix_fmt", ["rgb24", "bgr24", "rgba", "gray"])
@pytest.mark.parametrize("size", [(224, 224), (97, 61), (3, 200), (600, 401), (1, 1)])
def test_vector_passes_match_baseline(pix_fmt, size):
    srcs = _sources()
    w, h = size
    out = {}
    for simd in (False, True):
        use_simd(simd)
        out[simd] = np_batch(spdl.io.load_image_batch(srcs, width=w, height=h, pix_fmt=pix_fmt)).copy()
    assert out[True].shape[0] == len(srcs)
    np.testing.assert_array_equal(out[True], out[False])


@pytest.mark.parametrize("mode", ["crop", None])
def test_vector_passes_match_baseline_crop_and_stretch(mode):
    srcs = _sources()
    kw = dict(crop_width=224, crop_height=224) if mode == "crop" else {}
    desc = spdl.io.get_video_filter_desc(scale_width=256, scale_height=250, scale_mode=mode, **kw)
    out = {}
    for simd in (False, True):
        use_simd(simd)
        out[simd] = np_batch(spdl.io.load_image_batch(srcs, width=None, height=None, filter_desc=desc)).copy()
    np.testing.assert_array_equal(out[True], out[False])


def test_kernel_cache_hits_and_evictions_give_the_same_pixels():
    """A worker keeps its last 8 kernels: a batch mixing 12 sizes (hits, misses and
    evictions, in a shuffled order) equals each image loaded on its own."""
    rng = np.random.default_rng(0)
    sizes = [(300 + 17 * k, 200 + 11 * k) for k in range(12)]
    srcs = []
    for k in rng.permutation(np.repeat(np.arange(12), 3)):
        b = io.BytesIO()
        Image.fromarray(synth_rgb(*sizes[k], seed=int(k))).save(b, "PNG")
        srcs.append(b.getvalue())
    batch = np_batch(spdl.io.load_image_batch(srcs, width=120, height=100))
    for i, src in enumerate(srcs):
        alone = np_batch(spdl.io.load_image_batch([src], width=120, height=100))[0]
        np.testing.assert_array_equal(batch[i], alone, err_msg=f"image {i}")


def test_largest_first_order_keeps_rows_in_input_order():
    """Workers take bytes sources largest first; rows, indices and errors stay in input order."""
    srcs = []
    for i, w in enumerate([40, 400, 90, 700, 10, 250]):
        b = io.BytesIO()
        Image.fromarray(synth_rgb(w, w // 2 + 3, seed=i)).save(b, "PNG")
        srcs.append(b.getvalue())
    srcs.insert(3, b"\xff\xd8 not a jpeg")
    buf = spdl.io.load_image_batch(srcs, width=64, height=48, strict=False)
    assert buf.indices == (0, 1, 2, 4, 5, 6)
    assert list(buf.errors) == [3]
    rows = np_batch(buf)
    for row, k in zip(rows, buf.indices):
        alone = np_batch(spdl.io.load_image_batch([srcs[k]], width=64, height=48))[0]
        np.testing.assert_array_equal(row, alone)
