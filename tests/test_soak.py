"""Leak, soak, cancellation and concurrency (issue 5).

- 20,000 loads mixing good and bad inputs (bytes and paths, every format,
  sync and async, strict and not): resident memory stays flat after warm-up.
- Cancelling async_load_image_batch mid-flight: CancelledError, no work left
  running once it is raised, no leak over 50 repetitions.
- Several threads, each with its own event loop, loading the same batch at
  once get exactly what one thread gets.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import spdl.io
from _util import rss_bytes
from spdl.io import BatchLoadError

import hostile_corpus as hc

MB = 1 << 20


def rss() -> int:
    return rss_bytes()  # after releasing the allocator's kept batches (a cache, not a leak)


def _mixed_sources(root: Path) -> list:
    """100 sources: 70 good (64x64, six formats, bytes and paths), 30 bad of many kinds."""
    good = hc.valid_images(64, 64, seed=3)
    kinds = ["jpeg", "jpeg_progressive", "png", "webp_lossy", "webp_lossless", "gif", "tiff", "bmp", "jpeg_cmyk"]
    bad = [
        b"", b"\xff\xd8\xff", b"junk" * 10, good["jpeg"][: len(good["jpeg"]) // 2], good["png"][:300],
        good["webp_lossy"][:100], good["gif"][:200], hc.jpeg_claiming(16000, 16000), hc.png_claiming(12000, 12000),
        hc.gif_claiming(65535, 65535), hc.hls_playlist(["/etc/passwd"]), hc.ffconcat(["/etc/passwd"]),
        hc.png_bad_zlib("garbage"), hc.jpeg_bad_huffman("overfull"), hc.jpeg_scan_bomb(64, 64, 600),
        hc.flip_bits(good["png"], 1, 5, start=40), hc.y4m_video(),
    ]
    (root / "dir.jpg").mkdir(exist_ok=True)
    paths = {}
    for k in kinds:
        p = root / f"good.{k}"
        p.write_bytes(good[k])
        paths[k] = str(p)
    bad_paths = [str(root / "missing.jpg"), str(root / "dir.jpg"), "concat:/etc/passwd|x", "/dev/null"]
    for i, b in enumerate(bad[:4]):
        p = root / f"bad{i}.jpg"
        p.write_bytes(b)
        bad_paths.append(str(p))
    out = []
    for i in range(70):
        k = kinds[i % len(kinds)]
        out.append(paths[k] if i % 3 == 0 else good[k])
    out += bad + bad_paths
    out += bad[: 100 - len(out)]
    rng = np.random.RandomState(0)
    rng.shuffle(out)
    return out[:100]


def test_soak_20000_loads_rss_flat(tmp_path):
    srcs = _mixed_sources(tmp_path)
    assert len(srcs) == 100
    ref = spdl.io.load_image_batch(srcs, width=32, height=32, strict=False)
    n_good = len(ref.indices)
    assert 60 <= n_good < 100
    ref_arr = spdl.io.to_numpy(ref).copy()

    async def aload():
        return await spdl.io.async_load_image_batch(srcs, width=32, height=32, strict=False)

    samples = []
    mismatches = []
    loads = 0
    t0 = time.perf_counter()
    for i in range(200):
        mode = i % 4
        if mode == 0:
            buf = spdl.io.load_image_batch(srcs, width=32, height=32, strict=False)
        elif mode == 1:
            buf = asyncio.run(aload())
        elif mode == 2:
            with pytest.raises(BatchLoadError) as e:
                spdl.io.load_image_batch(srcs, width=32, height=32)
            assert len(e.value.errors) == 100 - n_good
            buf = None
        else:  # the stage functions, one source at a time
            frames = []
            for s in srcs:
                try:
                    frames.append(spdl.io.decode_packets(spdl.io.demux_image(s), filter_desc=spdl.io.get_video_filter_desc(
                        scale_width=32, scale_height=32)))
                except spdl.io.SpdlIOError:
                    pass
            buf = spdl.io.convert_frames(frames)
            assert len(frames) == n_good
        if buf is not None and mode != 3:
            if buf.indices != ref.indices or not np.array_equal(spdl.io.to_numpy(buf), ref_arr):
                mismatches.append(i)
        loads += len(srcs)
        del buf
        if i == 20:
            gc.collect()
            base = rss()
        if i > 20 and i % 20 == 0:
            gc.collect()
            samples.append(rss())
    elapsed = time.perf_counter() - t0
    gc.collect()
    end = rss()
    growth = end - base
    print(f"{loads} loads in {elapsed:.1f} s; RSS after warm-up {base / MB:.1f} MB, end {end / MB:.1f} MB, "
          f"growth {growth / MB:.2f} MB; samples {[round(s / MB, 1) for s in samples]}")
    assert loads >= 20_000
    assert growth < 10 * MB, f"RSS grew {growth / MB:.1f} MB over {loads} loads"
    assert not mismatches, f"{len(mismatches)} of 150 batches differ from the first load of the same sources"


# ---------------------------------------------------------------------------
# Cancellation
# ---------------------------------------------------------------------------


def _cpu_seconds_over(window: float) -> float:
    """CPU time all threads of this process use over the next `window` seconds."""
    c0 = time.process_time()
    time.sleep(window)
    return time.process_time() - c0


def test_cancel_leaves_no_running_work():
    """Once CancelledError is raised, no worker is still decoding: the process goes idle at once."""
    # images that take a while each (~0.1-0.3 s), so a worker is surely mid-image when cancelled
    big = hc.encode(hc.synth(2500, 2500, seed=1), "PNG", compress_level=1)
    t = time.perf_counter()
    spdl.io.load_image_batch([big], width=32, height=32)
    one = time.perf_counter() - t
    srcs = [big] * 8

    async def main():
        task = asyncio.create_task(spdl.io.async_load_image_batch(srcs, width=32, height=32))
        await asyncio.sleep(min(0.05, one / 3))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return _cpu_seconds_over(max(0.3, 2 * one))

    busy = [asyncio.run(main()) for _ in range(3)]
    assert max(busy) < 0.05, (f"worker threads used {max(busy):.2f} s of CPU after the cancelled call returned "
                              f"(one image takes {one:.2f} s): cancellation does not wait for the workers")


def test_cancel_repeatedly_no_leak():
    """50 cancellations mid-flight: CancelledError each time, threads bounded, RSS flat, later loads right."""
    # 3,200 images: far more than any machine decodes within the longest delay (14 ms), so
    # every call is still running when it is cancelled.
    srcs = [hc.encode(hc.synth(256, 256, seed=i), "JPEG") for i in range(8)] * 400
    ref = spdl.io.to_numpy(spdl.io.load_image_batch(srcs[:8], width=32, height=32)).copy()
    threads0 = threading.active_count()

    async def once(delay):
        task = asyncio.create_task(spdl.io.async_load_image_batch(srcs, width=32, height=32))
        await asyncio.sleep(delay)
        task.cancel()
        try:
            await task
            return "finished"
        except asyncio.CancelledError:
            return "cancelled"

    async def main():
        outcomes = []
        base = None
        for i in range(50):
            outcomes.append(await once(0.002 + (i % 5) * 0.003))
            if i == 10:
                gc.collect()
                base = rss()
        gc.collect()
        buf = await spdl.io.async_load_image_batch(srcs[:8], width=32, height=32)
        np.testing.assert_array_equal(spdl.io.to_numpy(buf), ref)
        return outcomes, rss() - base

    outcomes, growth = asyncio.run(main())
    assert outcomes.count("cancelled") >= 45, outcomes
    assert threading.active_count() <= threads0 + (os.cpu_count() or 1) + 5
    assert growth < 10 * MB, f"RSS grew {growth / MB:.1f} MB over 50 cancellations"


# ---------------------------------------------------------------------------
# Concurrency
# ---------------------------------------------------------------------------


def _summary(buf_or_exc):
    if isinstance(buf_or_exc, BaseException):
        return ("raised", type(buf_or_exc).__name__, str(buf_or_exc))
    return (buf_or_exc.indices, {i: (type(e).__name__, str(e)) for i, e in buf_or_exc.errors.items()},
            spdl.io.to_numpy(buf_or_exc).tobytes())


def test_threads_and_event_loops_agree_with_one_thread(tmp_path):
    srcs = _mixed_sources(tmp_path)
    ref = _summary(spdl.io.load_image_batch(srcs, width=48, height=40, strict=False))
    ref_gray = _summary(spdl.io.load_image_batch(srcs, width=24, height=24, pix_fmt="gray", strict=False))
    results: dict[int, list] = {}
    errors = []

    def worker(k):
        async def main():
            out = []
            for r in range(3):
                if (k + r) % 2:
                    out.append(("rgb", _summary(await spdl.io.async_load_image_batch(
                        srcs, width=48, height=40, strict=False))))
                else:
                    out.append(("gray", _summary(spdl.io.load_image_batch(
                        srcs, width=24, height=24, pix_fmt="gray", strict=False))))
            return out

        try:
            results[k] = asyncio.run(main())  # its own event loop in this thread
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
    for k, outs in results.items():
        for kind, summary in outs:
            want = ref if kind == "rgb" else ref_gray
            assert summary[0] == want[0], f"thread {k}: different inputs loaded"
            assert summary[1] == want[1], f"thread {k}: different errors (or messages) than one thread"
            assert summary[2] == want[2], f"thread {k}: different pixels than one thread"
