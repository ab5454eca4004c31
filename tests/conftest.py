"""Shared fixtures of the spdl.io test suite.

Every input is generated here, deterministically, into a session temporary
directory (Pillow, a tiny pure-Python PNG writer for 16-bit RGB, and the
``ffmpeg`` CLI where useful).  Nothing is mocked: the tests run the real
FFmpeg through spdl.io.

Parametrized helpers:

``load``      runs ``load_image_batch`` (sync) or ``async_load_image_batch``
              (driven by ``asyncio.run``), same arguments, same result.
``as_src``    turns a path into the source form under test: the path itself
              (str), or the file's bytes.
``stages``    demux -> decode -> convert through the sync or the async_ stage
              functions.

GPU tests and ``SPDL_REQUIRE_GPU``: a test marked ``gpu`` (``tests/_gpu.py``'s
``gpu`` and ``needs_runtime`` decorators mark it) needs a CUDA device, or the
CUDA libraries, or a CUDA-enabled PyTorch / CuPy, and skips itself with the
reason where they are missing. With ``SPDL_REQUIRE_GPU=1`` in the environment
such a skip is a failure instead, reporting the reason (the hook below), so a
run on a GPU machine cannot pass by skipping. Skips of unmarked tests (for
example the tests that need *no* device) stay skips.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import spdl.io

from _util import (
    SIZES, gif_palette_frames, smooth_rgb, synth_gray16, synth_rgb, synth_rgb48, write_png16,
)


# ---------------------------------------------------------------------------
# The input files
# ---------------------------------------------------------------------------


class Images(dict):
    """name -> Path of every generated input, plus the arrays they were made from."""

    def __init__(self, root: Path):
        super().__init__()
        self.root = root
        self.arrays: dict[str, np.ndarray] = {}

    def add(self, name: str, path: Path, array: np.ndarray | None = None) -> None:
        self[name] = path
        if array is not None:
            self.arrays[name] = array


def _build_images(root: Path) -> Images:
    imgs = Images(root)

    def p(name):
        return root / name

    # Sizes: PNG (lossless reference), JPEG 4:2:0 (the common case) and JPEG 4:4:4.
    for w, h in SIZES:
        a = synth_rgb(w, h, seed=w * 7 + h)
        Image.fromarray(a).save(p(f"rgb_{w}x{h}.png"))
        imgs.add(f"png_rgb_{w}x{h}", p(f"rgb_{w}x{h}.png"), a)
        Image.fromarray(a).save(p(f"rgb_{w}x{h}.jpg"), quality=90)
        imgs.add(f"jpeg_{w}x{h}", p(f"rgb_{w}x{h}.jpg"), a)
        Image.fromarray(a).save(p(f"rgb444_{w}x{h}.jpg"), quality=90, subsampling=0)
        imgs.add(f"jpeg444_{w}x{h}", p(f"rgb444_{w}x{h}.jpg"), a)

    base = synth_rgb(301, 199, seed=11)
    imgs.arrays["base"] = base
    smooth = smooth_rgb(640, 480, seed=5)
    imgs.arrays["smooth"] = smooth

    # Photo-like (smooth) JPEG / WebP variants
    for name, sub in (("444", 0), ("422", 1), ("420", 2)):
        Image.fromarray(smooth).save(p(f"smooth_{name}.jpg"), quality=90, subsampling=sub)
        imgs.add(f"smooth_jpeg_{name}", p(f"smooth_{name}.jpg"), smooth)
    Image.fromarray(smooth).save(p("smooth_progressive.jpg"), quality=90, progressive=True)
    imgs.add("smooth_jpeg_progressive", p("smooth_progressive.jpg"), smooth)
    Image.fromarray(smooth).convert("L").save(p("smooth_gray.jpg"), quality=90)
    imgs.add("smooth_jpeg_gray", p("smooth_gray.jpg"), smooth)
    Image.fromarray(smooth).convert("CMYK").save(p("smooth_cmyk.jpg"), quality=90)
    imgs.add("smooth_jpeg_cmyk", p("smooth_cmyk.jpg"), smooth)
    Image.fromarray(smooth).save(p("smooth_lossy.webp"), quality=90)
    imgs.add("smooth_webp_lossy", p("smooth_lossy.webp"), smooth)

    # Hard-edge (saturated rectangles) JPEG variants
    for name, sub in (("444", 0), ("422", 1), ("420", 2)):
        Image.fromarray(base).save(p(f"jpeg_{name}.jpg"), quality=90, subsampling=sub)
        imgs.add(f"jpeg_{name}", p(f"jpeg_{name}.jpg"), base)
    Image.fromarray(base).save(p("jpeg_progressive.jpg"), quality=90, progressive=True)
    imgs.add("jpeg_progressive", p("jpeg_progressive.jpg"), base)
    Image.fromarray(base).convert("L").save(p("jpeg_gray.jpg"), quality=90)
    imgs.add("jpeg_gray", p("jpeg_gray.jpg"))
    Image.fromarray(base).convert("CMYK").save(p("jpeg_cmyk.jpg"), quality=90)
    imgs.add("jpeg_cmyk", p("jpeg_cmyk.jpg"))
    # a larger photo-like JPEG for geometry tests
    big = synth_rgb(400, 200, seed=3)
    Image.fromarray(big).save(p("wide_400x200.jpg"), quality=92)
    imgs.add("jpeg_400x200", p("wide_400x200.jpg"), big)
    tall = synth_rgb(150, 300, seed=4)
    Image.fromarray(tall).save(p("tall_150x300.png"))
    imgs.add("png_150x300", p("tall_150x300.png"), tall)
    Image.fromarray(big).save(p("wide_400x200.png"))
    imgs.add("png_400x200", p("wide_400x200.png"), big)

    # PNG variants
    rgba = np.dstack([base, (np.arange(base.shape[1])[None, :] * 255 // 300
                             * np.ones((base.shape[0], 1))).astype(np.uint8)])
    Image.fromarray(rgba).save(p("png_rgba.png"))
    imgs.add("png_rgba", p("png_rgba.png"), rgba)
    Image.fromarray(base).convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(p("png_palette.png"))
    imgs.add("png_palette", p("png_palette.png"))
    Image.fromarray(base).convert("L").save(p("png_gray.png"))
    imgs.add("png_gray", p("png_gray.png"), np.asarray(Image.fromarray(base).convert("L")))
    g16 = synth_gray16(301, 199)
    Image.fromarray(g16).save(p("png_gray16.png"))
    imgs.add("png_gray16", p("png_gray16.png"), g16)
    rgb48 = synth_rgb48(301, 199)
    write_png16(p("png_rgb48.png"), rgb48)
    imgs.add("png_rgb48", p("png_rgb48.png"), rgb48)

    # WebP
    Image.fromarray(base).save(p("webp_lossy.webp"), quality=90)
    imgs.add("webp_lossy", p("webp_lossy.webp"), base)
    Image.fromarray(base).save(p("webp_lossless.webp"), lossless=True)
    imgs.add("webp_lossless", p("webp_lossless.webp"), base)

    # BMP, TIFF
    Image.fromarray(base).save(p("bmp.bmp"))
    imgs.add("bmp", p("bmp.bmp"), base)
    small = synth_rgb(3, 5, seed=5)
    Image.fromarray(small).save(p("bmp_3x5.bmp"))  # rows need padding to 4 bytes
    imgs.add("bmp_3x5", p("bmp_3x5.bmp"), small)
    Image.fromarray(base).save(p("tiff_raw.tif"))
    imgs.add("tiff_raw", p("tiff_raw.tif"), base)
    Image.fromarray(base).save(p("tiff_lzw.tif"), compression="tiff_lzw")
    imgs.add("tiff_lzw", p("tiff_lzw.tif"), base)

    # GIF, 3 frames, exact palette, no transparency
    frames, _ = gif_palette_frames(120, 90)
    frames[0].save(p("anim.gif"), save_all=True, append_images=frames[1:], duration=100, loop=0,
                   optimize=False, disposal=1)
    imgs.add("gif", p("anim.gif"))

    # Error inputs
    jpg = p("jpeg_420.jpg").read_bytes()
    p("truncated.jpg").write_bytes(jpg[: len(jpg) // 2])
    imgs.add("truncated_jpeg", p("truncated.jpg"))
    p("empty.jpg").write_bytes(b"")
    imgs.add("empty", p("empty.jpg"))
    p("random.bin").write_bytes(np.random.RandomState(1).randint(0, 256, 4096, dtype=np.uint8).tobytes())
    imgs.add("random", p("random.bin"))
    p("text.txt").write_text("hello, I am not an image\n" * 20)
    imgs.add("text", p("text.txt"))
    (root / "a_directory.jpg").mkdir()
    imgs.add("directory", root / "a_directory.jpg")
    imgs.add("missing", root / "does_not_exist.jpg")
    return imgs


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> Images:
    return _build_images(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="session")
def ffmpeg_cli():
    exe = shutil.which("ffmpeg")
    if exe is None:
        pytest.skip("ffmpeg CLI not installed")

    def run(*args):
        subprocess.run([exe, "-hide_banner", "-loglevel", "error", "-y", *map(str, args)], check=True)

    return run


# ---------------------------------------------------------------------------
# Parametrized runners: sync / async, path / bytes
# ---------------------------------------------------------------------------


def _sync_load(srcs, **kwargs):
    return spdl.io.load_image_batch(srcs, **kwargs)


def _async_load(srcs, **kwargs):
    async def main():
        return await spdl.io.async_load_image_batch(srcs, **kwargs)

    return asyncio.run(main())


@pytest.fixture(params=["sync", "async"])
def load(request):
    """load(srcs, **kwargs) -> CPUBuffer through the sync or the async batch loader."""
    return _sync_load if request.param == "sync" else _async_load


@pytest.fixture(params=["path", "bytes"])
def as_src(request):
    """as_src(path) -> the source as a str path or as the file's bytes."""
    if request.param == "path":
        return lambda path: str(path)
    return lambda path: Path(path).read_bytes()


class _SyncStages:
    name = "sync"

    def demux(self, src, **kw):
        return spdl.io.demux_image(src, **kw)

    def decode(self, packets, **kw):
        return spdl.io.decode_packets(packets, **kw)

    def convert(self, frames):
        return spdl.io.convert_frames(frames)

    def load_one(self, src, *, demux_config=None, **decode_options):
        return self.decode(self.demux(src, demux_config=demux_config), **decode_options)


class _AsyncStages(_SyncStages):
    name = "async"

    def demux(self, src, **kw):
        return asyncio.run(spdl.io.async_demux_image(src, **kw))

    def decode(self, packets, **kw):
        return asyncio.run(spdl.io.async_decode_packets(packets, **kw))

    def convert(self, frames):
        return asyncio.run(spdl.io.async_convert_frames(frames))


@pytest.fixture(params=["sync", "async"])
def stages(request):
    return _SyncStages() if request.param == "sync" else _AsyncStages()


# ---------------------------------------------------------------------------
# GPU tests: marked, and with SPDL_REQUIRE_GPU=1 never silently skipped
# ---------------------------------------------------------------------------


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "gpu: needs a CUDA device or the CUDA libraries; with SPDL_REQUIRE_GPU=1 "
                   "a skip of it fails instead")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if (rep.skipped and os.environ.get("SPDL_REQUIRE_GPU", "") not in ("", "0")
            and item.get_closest_marker("gpu") is not None and not hasattr(rep, "wasxfail")):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        reason = reason.removeprefix("Skipped: ")
        rep.outcome = "failed"
        rep.longrepr = (f"SPDL_REQUIRE_GPU=1: the GPU test {item.nodeid} would have been skipped "
                        f"({rep.when}): {reason}")

