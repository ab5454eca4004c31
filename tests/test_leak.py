"""No memory growth over many loads, good and bad.

RSS (from /proc/self/statm) is measured after a warm-up and again after 2,000
loads; growth must stay under 20 MB. The inputs are chosen so that leaking
anything per load shows: a decoded 320x240 frame is ~115-230 kB, so leaking one
frame per load would be > 200 MB; leaking an encoded packet (~10-20 kB)
would be 20-40 MB.
"""

from __future__ import annotations

import asyncio
import gc
import io
import sys

import numpy as np
import pytest
from PIL import Image

import spdl.io
from _util import rss_bytes, smooth_rgb

LIMIT = 20 * 1024 * 1024


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("leak")
    a = smooth_rgb(320, 240, seed=9)

    def enc(fmt, **kw):
        bio = io.BytesIO()
        Image.fromarray(a).save(bio, fmt, **kw)
        return bio.getvalue()

    jpeg = enc("JPEG", quality=90)
    png = enc("PNG")
    (root / "a.png").write_bytes(png)
    return {
        "jpeg": jpeg,
        "jpeg444": enc("JPEG", quality=90, subsampling=0),
        "png_path": str(root / "a.png"),
        "webp": enc("WEBP", quality=80),
        "truncated": jpeg[: len(jpeg) // 2],
        "garbage": np.random.RandomState(0).randint(0, 256, 5000, dtype=np.uint8).tobytes(),
        "missing": str(root / "missing.jpg"),
        "jpeg_sig": b"\xff\xd8\xff" + b"\0" * 50,
        "png_sig": png[:200],
    }


def _one_round(inp, i):
    """A few loads covering the paths: batch (direct rows / libavfilter / non-strict),
    stage functions, and errors raised from each stage."""
    k = i % 8
    if k == 0:
        spdl.io.load_image_batch([inp["jpeg"], inp["png_path"], inp["webp"]], width=64, height=64)
    elif k == 1:
        spdl.io.load_image_batch([inp["jpeg444"], inp["truncated"], inp["garbage"], inp["missing"],
                                  inp["jpeg_sig"], inp["png_sig"], inp["jpeg"]],
                                 width=32, height=32, strict=False)
    elif k == 2:
        try:
            spdl.io.load_image_batch([inp["jpeg"], inp["garbage"]], width=32, height=32)
        except spdl.io.BatchLoadError:
            pass
    elif k == 3:
        spdl.io.load_image_batch([inp["jpeg"], inp["png_path"]], width=None, height=None,
                                 filter_desc="scale=w=48:h=40,hflip,format=pix_fmts=gray")
    elif k == 4:
        f = spdl.io.decode_packets(spdl.io.demux_image(inp["jpeg"]),
                                   filter_desc="format=pix_fmts=rgb24")
        buf = spdl.io.convert_frames([f, f])
        a = np.from_dlpack(buf)
        cap = buf.__dlpack__()
        del a, cap
    elif k == 5:
        for bad in ("garbage", "missing", "jpeg_sig"):
            try:
                spdl.io.decode_packets(spdl.io.demux_image(inp[bad]))
            except spdl.io.SpdlIOError:
                pass
        try:
            spdl.io.decode_packets(spdl.io.demux_image(inp["jpeg"]),
                                   decode_config=spdl.io.DecodeConfig(decoder_options={"bogus": "1"}))
        except spdl.io.SpdlIOError:
            pass
    elif k == 6:
        spdl.io.load_image_batch([inp["png_path"], inp["jpeg"]], width=40, height=40, pix_fmt="yuv444p")
        try:
            spdl.io.load_image_batch([inp["jpeg"]], width=8, height=8,
                                     decode_config=spdl.io.DecodeConfig(max_pixels=100))
        except spdl.io.BatchLoadError:
            pass
    else:
        try:
            spdl.io.load_image_batch([inp["png_path"]], width=None, height=None, filter_desc="nosuchfilter")
        except spdl.io.BatchLoadError:
            pass
        spdl.io.load_image_batch([inp["webp"]], width=50, height=30,
                                 scale_mode="crop", pix_fmt="gray16")


def test_rss_stable_over_2000_loads(inputs):
    for i in range(200):  # warm-up: allocator pools, codec tables, caches
        _one_round(inputs, i)
    gc.collect()
    before = rss_bytes()
    for i in range(2000):
        _one_round(inputs, i)
    gc.collect()
    grown = rss_bytes() - before
    assert grown < LIMIT, f"RSS grew by {grown / 2**20:.1f} MB over 2000 loads"


def test_rss_stable_async(inputs):
    srcs = [inputs["jpeg"], inputs["garbage"], inputs["png_path"], inputs["truncated"], inputs["webp"]] * 4

    async def main(n):
        for _ in range(n):
            await spdl.io.async_load_image_batch(srcs, width=64, height=64, strict=False)

    asyncio.run(main(30))
    gc.collect()
    before = rss_bytes()
    asyncio.run(main(300))
    gc.collect()
    grown = rss_bytes() - before
    assert grown < LIMIT, f"RSS grew by {grown / 2**20:.1f} MB over 300 async batches"


def test_buffers_and_views_freed(inputs):
    """A batch is freed when its last view goes, including views made through DLPack."""
    srcs = [inputs["jpeg"]] * 8  # 8 x 256x256x3 = 1.5 MB per batch
    for _ in range(20):
        spdl.io.to_numpy(spdl.io.load_image_batch(srcs, width=256, height=256))
    gc.collect()
    before = rss_bytes()
    for _ in range(300):  # would be 450 MB if batches leaked
        buf = spdl.io.load_image_batch(srcs, width=256, height=256)
        a = spdl.io.to_numpy(buf)
        b = np.from_dlpack(buf)
        c = a[2:4]
        del buf, a, b, c
    gc.collect()
    assert rss_bytes() - before < LIMIT


def test_errors_release_their_sources(inputs):
    """Once a BatchLoadError is gone, nothing keeps the batch's sources alive."""
    before_refs = sys.getrefcount(inputs["jpeg"])
    for _ in range(50):
        try:
            spdl.io.load_image_batch([inputs["jpeg"], inputs["garbage"]], width=16, height=16)
        except spdl.io.BatchLoadError as e:
            err = e
    del err
    gc.collect()
    after = sys.getrefcount(inputs["jpeg"])
    holders = [type(r).__name__ for r in gc.get_referrers(inputs["jpeg"])]
    assert after == before_refs, f"the source bytes gained references, held by: {holders}"
