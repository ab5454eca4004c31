"""Batch image loaders compared against spdl.

Every method has the same signature::

    fn(datas: list[bytes], threads: int = 1, width: int = 224, height: int = 224)
        -> numpy.ndarray  # (N, height, width, 3) uint8, RGB

and the same semantics:

* input is the *encoded bytes* of each file (the harness reads the files
  before timing, so file I/O is never timed; every method decodes from
  memory),
* the image is resized with a bicubic filter, keeping its aspect ratio, to
  the largest size that fits in ``width x height`` ("pad" mode) and placed
  centred on a black canvas,
* ``threads`` > 1 spreads the images of a batch over a
  ``concurrent.futures.ThreadPoolExecutor(threads)`` (one per process,
  reused between calls); each worker thread writes its image straight into
  a preallocated output batch.  With ``threads == 1`` everything runs on the
  calling thread.

The scaled size follows FFmpeg's ``scale=...:force_original_aspect_ratio=
decrease`` rule (rounding to nearest) and the offset is ``(224 - size) // 2``,
so all methods agree on the geometry.

Libraries are imported lazily, inside the methods, so that a worker process
only loads the library it measures (that keeps peak-RSS numbers honest) and
so that this module can be imported from the reference-SPDL virtualenv,
which only has numpy.

``reference`` is the accuracy baseline: full-resolution decode with Pillow
(no DCT scaling), bicubic resize computed in float32 per channel, rounded.
"""

from __future__ import annotations

import asyncio
import inspect
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

WIDTH = 224
HEIGHT = 224


# --------------------------------------------------------------------------
# Shared geometry / batching helpers
# --------------------------------------------------------------------------
def _rescale(a: int, b: int, c: int) -> int:
    """a * b / c rounded to nearest (like FFmpeg's av_rescale)."""
    return (a * b + c // 2) // c


def fit_size(w: int, h: int, width: int = WIDTH, height: int = HEIGHT) -> tuple[int, int]:
    """Largest (w', h') inside width x height with the aspect ratio of (w, h)."""
    sw = min(width, _rescale(height, w, h))
    sh = min(height, _rescale(width, h, w))
    return max(1, sw), max(1, sh)


def pad_offset(sw: int, sh: int, width: int = WIDTH, height: int = HEIGHT) -> tuple[int, int]:
    return (width - sw) // 2, (height - sh) // 2


def place(dst: np.ndarray, img: np.ndarray) -> None:
    """Copy an (h, w, 3) image into the centre of a (H, W, 3) canvas."""
    h, w = img.shape[:2]
    x, y = pad_offset(w, h, dst.shape[1], dst.shape[0])
    dst[y:y + h, x:x + w] = img


_POOLS: dict[int, ThreadPoolExecutor] = {}


def get_pool(threads: int) -> ThreadPoolExecutor:
    """One long-lived pool per thread count (creation is not timed twice)."""
    pool = _POOLS.get(threads)
    if pool is None:
        pool = _POOLS[threads] = ThreadPoolExecutor(max_workers=threads)
    return pool


def _batch(datas, threads, width, height, decode_into: Callable[[bytes, np.ndarray], None]):
    out = np.zeros((len(datas), height, width, 3), dtype=np.uint8)
    if threads <= 1:
        for i, d in enumerate(datas):
            decode_into(d, out[i])
    else:
        def work(i):
            decode_into(datas[i], out[i])
        # list() re-raises the first exception, if any.
        list(get_pool(threads).map(work, range(len(datas))))
    return out


# --------------------------------------------------------------------------
# Pillow
# --------------------------------------------------------------------------
def pillow(datas, threads=1, width=WIDTH, height=HEIGHT):
    """Image.open + convert('RGB') + resize(BICUBIC)."""
    from PIL import Image

    def one(data, dst):
        with Image.open(io.BytesIO(data)) as im:
            im = im.convert("RGB")
            sw, sh = fit_size(im.width, im.height, width, height)
            im = im.resize((sw, sh), Image.BICUBIC)
        place(dst, np.asarray(im))

    return _batch(datas, threads, width, height, one)


def pillow_draft(datas, threads=1, width=WIDTH, height=HEIGHT):
    """As `pillow`, but JPEG DCT-domain downscaling via Image.draft() first.

    draft() picks the largest 1/2, 1/4, 1/8 reduction whose result is still
    at least the requested (scaled) size, so quality stays close to full
    decode.
    """
    from PIL import Image

    def one(data, dst):
        with Image.open(io.BytesIO(data)) as im:
            sw, sh = fit_size(im.width, im.height, width, height)
            im.draft("RGB", (sw, sh))
            im = im.convert("RGB").resize((sw, sh), Image.BICUBIC)
        place(dst, np.asarray(im))

    return _batch(datas, threads, width, height, one)


# --------------------------------------------------------------------------
# OpenCV
# --------------------------------------------------------------------------
def _cv2():
    import cv2

    # Parallelism comes from our pool only; OpenCV's own thread pool would
    # otherwise use every core even in the "1 thread" runs.
    cv2.setNumThreads(1)
    return cv2


def opencv(datas, threads=1, width=WIDTH, height=HEIGHT):
    """cv2.imdecode (full size) + cv2.resize(INTER_CUBIC)."""
    cv2 = _cv2()
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION

    def one(data, dst):
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
        if img is None:
            raise ValueError("cv2.imdecode failed")
        sw, sh = fit_size(img.shape[1], img.shape[0], width, height)
        small = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_CUBIC)
        place(dst, small[:, :, ::-1])  # BGR -> RGB while copying

    return _batch(datas, threads, width, height, one)


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's SOFn marker (cheap header parse)."""
    i, n = 2, len(data)
    while i + 9 < n:
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        seg = (data[i + 2] << 8) | data[i + 3]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h = (data[i + 5] << 8) | data[i + 6]
            w = (data[i + 7] << 8) | data[i + 8]
            return w, h
        i += 2 + seg
    raise ValueError("no SOF marker found")


def opencv_reduced(datas, threads=1, width=WIDTH, height=HEIGHT):
    """cv2.imdecode with IMREAD_REDUCED_COLOR_{2,4,8} + cv2.resize(INTER_CUBIC).

    The largest reduction whose output (ceil(size / r)) still covers the
    scaled target is chosen per image from the JPEG header.  JPEG only.
    """
    cv2 = _cv2()
    ignore = cv2.IMREAD_IGNORE_ORIENTATION
    flags_for = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
                 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}

    def one(data, dst):
        w, h = _jpeg_size(data)
        sw, sh = fit_size(w, h, width, height)
        r = 1
        for cand in (8, 4, 2):
            if -(-w // cand) >= sw and -(-h // cand) >= sh:
                r = cand
                break
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flags_for[r] | ignore)
        if img is None:
            raise ValueError("cv2.imdecode failed")
        small = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_CUBIC)
        place(dst, small[:, :, ::-1])

    return _batch(datas, threads, width, height, one)


# --------------------------------------------------------------------------
# simplejpeg
# --------------------------------------------------------------------------
def simplejpeg(datas, threads=1, width=WIDTH, height=HEIGHT):
    """simplejpeg.decode_jpeg with min_width/min_height (DCT scaling) + cv2.resize."""
    import simplejpeg as sj

    cv2 = _cv2()

    def one(data, dst):
        h, w, _, _ = sj.decode_jpeg_header(data)  # (height, width, ...)
        sw, sh = fit_size(w, h, width, height)
        img = sj.decode_jpeg(data, colorspace="RGB", min_width=sw, min_height=sh)
        small = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_CUBIC)
        place(dst, small)

    return _batch(datas, threads, width, height, one)


# --------------------------------------------------------------------------
# PyTurboJPEG
# --------------------------------------------------------------------------
_TJ = None


def _turbojpeg():
    global _TJ
    if _TJ is None:
        import turbojpeg

        _TJ = (turbojpeg, turbojpeg.TurboJPEG())
    return _TJ


def pyturbojpeg(datas, threads=1, width=WIDTH, height=HEIGHT):
    """PyTurboJPEG decode with the smallest scaling_factor still >= target, + cv2.resize."""
    tjmod, tj = _turbojpeg()
    cv2 = _cv2()
    # Smallest factors first.
    factors = sorted(tj.scaling_factors, key=lambda f: f[0] / f[1])

    def one(data, dst):
        w, h, _, _ = tj.decode_header(data)
        sw, sh = fit_size(w, h, width, height)
        factor = (1, 1)
        for num, den in factors:
            if num >= den:
                break
            if -(-w * num // den) >= sw and -(-h * num // den) >= sh:
                factor = (num, den)
                break
        img = tj.decode(data, pixel_format=tjmod.TJPF_RGB,
                        scaling_factor=None if factor == (1, 1) else factor)
        small = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_CUBIC)
        place(dst, small)

    return _batch(datas, threads, width, height, one)


# --------------------------------------------------------------------------
# PyAV
# --------------------------------------------------------------------------
def pyav(datas, threads=1, width=WIDTH, height=HEIGHT):
    """av.open(BytesIO) + decode + frame.reformat(size, rgb24, BICUBIC), then pad."""
    import av

    def one(data, dst):
        with av.open(io.BytesIO(data), mode="r") as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1  # parallelism is ours
            frame = next(container.decode(stream))
            sw, sh = fit_size(frame.width, frame.height, width, height)
            rgb = frame.reformat(width=sw, height=sh, format="rgb24",
                                 interpolation="BICUBIC").to_ndarray()
        place(dst, rgb)

    return _batch(datas, threads, width, height, one)


# --------------------------------------------------------------------------
# spdl (this repository)
# --------------------------------------------------------------------------
_THREAD_KWARGS = ("num_threads", "threads", "max_workers", "concurrency")


def _ours_thread_kwargs(fn, threads) -> tuple[dict, str]:
    """How to hand the thread count to our load_image_batch, if it takes one."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}, "threads: library default (signature not introspectable)"
    for name in _THREAD_KWARGS:
        if name in params:
            return {name: threads}, f"threads passed as {name}="
    if "executor" in params:
        return {"executor": get_pool(threads)}, "threads via executor="
    return {}, "threads: library default (no thread argument)"


def ours(datas, threads=1, width=WIDTH, height=HEIGHT):
    """spdl.io.load_image_batch(srcs, width=, height=) -> spdl.io.to_numpy."""
    import spdl.io

    kwargs, _ = _ours_thread_kwargs(spdl.io.load_image_batch, threads)
    buf = spdl.io.load_image_batch(datas, width=width, height=height, **kwargs)
    return np.asarray(spdl.io.to_numpy(buf))


def ours_async(datas, threads=1, width=WIDTH, height=HEIGHT):
    """asyncio.run(spdl.io.async_load_image_batch(...)) with a ThreadPoolExecutor(threads)
    installed as the event loop's default executor."""
    import spdl.io

    async def main():
        loop = asyncio.get_running_loop()
        # asyncio.run() shuts the default executor down on exit, so each call
        # gets its own (thread start-up is ~0.1 ms, negligible per batch).
        loop.set_default_executor(ThreadPoolExecutor(max_workers=threads))
        return await spdl.io.async_load_image_batch(datas, width=width, height=height)

    buf = asyncio.run(main())
    return np.asarray(spdl.io.to_numpy(buf))


def ours_note(method: str, threads: int) -> str:
    if method == "ours":
        import spdl.io

        return _ours_thread_kwargs(spdl.io.load_image_batch, threads)[1]
    if method == "ours_async":
        return "default executor = ThreadPoolExecutor(threads)"
    return ""


# --------------------------------------------------------------------------
# Reference SPDL (Meta's spdl-io from PyPI; runs in its own virtualenv)
# --------------------------------------------------------------------------
def _ref_filter_desc(width, height):
    import spdl.io

    return spdl.io.get_video_filter_desc(
        scale_width=width, scale_height=height, scale_algo="bicubic",
        scale_mode="pad", pix_fmt="rgb24")


def ref_spdl(datas, threads=1, width=WIDTH, height=HEIGHT):
    """spdl-io (PyPI): demux_image + decode_packets(filter_desc) per image on a
    ThreadPoolExecutor(threads), then convert_frames(list) -> to_numpy."""
    import spdl.io

    desc = _ref_filter_desc(width, height)

    def one(data):
        return spdl.io.decode_packets(spdl.io.demux_image(data), filter_desc=desc)

    if threads <= 1:
        frames = [one(d) for d in datas]
    else:
        frames = list(get_pool(threads).map(one, datas))
    buf = spdl.io.convert_frames(frames)
    return np.asarray(spdl.io.to_numpy(buf))


def ref_spdl_batch(datas, threads=1, width=WIDTH, height=HEIGHT):
    """spdl-io (PyPI): load_image_batch(srcs, width=, height=) (decodes serially)."""
    import spdl.io

    buf = spdl.io.load_image_batch(datas, width=width, height=height)
    return np.asarray(spdl.io.to_numpy(buf))


# --------------------------------------------------------------------------
# Accuracy reference
# --------------------------------------------------------------------------
def reference(datas, threads=1, width=WIDTH, height=HEIGHT):
    """Full decode with Pillow, bicubic resize in float32 per channel, rounded."""
    from PIL import Image

    def one(data, dst):
        with Image.open(io.BytesIO(data)) as im:
            im = im.convert("RGB")
            sw, sh = fit_size(im.width, im.height, width, height)
            arr = np.asarray(im, dtype=np.float32)
        chans = [np.asarray(Image.fromarray(np.ascontiguousarray(arr[:, :, c]), mode="F")
                            .resize((sw, sh), Image.BICUBIC)) for c in range(3)]
        out = np.clip(np.rint(np.stack(chans, axis=-1)), 0, 255).astype(np.uint8)
        place(dst, out)

    return _batch(datas, threads, width, height, one)


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Method:
    name: str
    fn: Callable
    modules: tuple[str, ...]          # what must import for the method to run
    formats: tuple[str, ...] = ("jpeg", "png")
    venv: str = "bench"               # "bench" or "ref"
    threaded: bool = True             # False: ignores the thread count
    label: str = field(default="")


METHODS: dict[str, Method] = {m.name: m for m in [
    Method("ours", ours, ("spdl.io",), label="spdl (ours) load_image_batch"),
    Method("ours_async", ours_async, ("spdl.io",), label="spdl (ours) async_load_image_batch"),
    Method("ref_spdl", ref_spdl, ("spdl.io",), venv="ref",
           label="spdl-io PyPI: demux+decode per image, convert_frames"),
    Method("ref_spdl_batch", ref_spdl_batch, ("spdl.io",), venv="ref", threaded=False,
           label="spdl-io PyPI: load_image_batch (serial)"),
    Method("pillow", pillow, ("PIL.Image",), label="Pillow"),
    Method("pillow_draft", pillow_draft, ("PIL.Image",), formats=("jpeg",),
           label="Pillow + draft()"),
    Method("opencv", opencv, ("cv2",), label="OpenCV imdecode"),
    Method("opencv_reduced", opencv_reduced, ("cv2",), formats=("jpeg",),
           label="OpenCV IMREAD_REDUCED_*"),
    Method("simplejpeg", simplejpeg, ("simplejpeg", "cv2"), formats=("jpeg",),
           label="simplejpeg (DCT scaling) + cv2.resize"),
    Method("pyturbojpeg", pyturbojpeg, ("turbojpeg", "cv2"), formats=("jpeg",),
           label="PyTurboJPEG (scaling_factor) + cv2.resize"),
    Method("pyav", pyav, ("av",), label="PyAV reformat"),
]}

REFERENCE = Method("reference", reference, ("PIL.Image",), label="Pillow float32 reference")


def get_method(name: str) -> Method:
    if name == "reference":
        return REFERENCE
    return METHODS[name]
