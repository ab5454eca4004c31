"""DemuxConfig / DecodeConfig / CUDAConfig validation, and CUDA on a machine without it."""

from __future__ import annotations

import asyncio
import dataclasses
import types

import numpy as np
import pytest

import spdl.io
from spdl.io import CUDAConfig, DecodeConfig, DemuxConfig
from _util import np_batch


def test_demux_defaults():
    c = DemuxConfig()
    assert c.format is None and c.format_options is None
    assert c.buffer_size > 0 and c.max_file_size > 0


@pytest.mark.parametrize("kwargs,exc", [
    (dict(format=3), TypeError),
    (dict(format_options=[("a", "b")]), TypeError),
    (dict(format_options="a=b"), TypeError),
    (dict(format_options={1: "a"}), TypeError),
    (dict(buffer_size=0), ValueError),
    (dict(buffer_size=-1), ValueError),
    (dict(buffer_size=1.5), ValueError),
    (dict(buffer_size=True), ValueError),
    (dict(buffer_size="4096"), ValueError),
    (dict(max_file_size=0), ValueError),
    (dict(max_file_size=None), ValueError),
])
def test_demux_invalid(kwargs, exc):
    with pytest.raises(exc) as e:
        DemuxConfig(**kwargs)
    assert next(iter(kwargs)) in str(e.value)


def test_demux_options_normalised_and_copied():
    opts = {"pattern_type": "none", "n": 3}
    c = DemuxConfig(format_options=opts)
    assert c.format_options == {"pattern_type": "none", "n": "3"}
    opts["x"] = "y"
    assert "x" not in c.format_options
    c2 = DemuxConfig(format_options=types.MappingProxyType({"a": "b"}))
    assert c2.format_options == {"a": "b"}


@pytest.mark.parametrize("cls,kwargs", [(DemuxConfig, {}), (DecodeConfig, {}), (CUDAConfig, dict(device_index=0))])
def test_frozen(cls, kwargs):
    c = cls(**kwargs)
    field = dataclasses.fields(c)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(c, field, None)


def test_decode_defaults():
    c = DecodeConfig()
    assert c.decoder is None and c.decoder_options is None and c.max_pixels > 0


@pytest.mark.parametrize("kwargs,exc", [
    (dict(decoder=1), TypeError),
    (dict(decoder_options="lowres=1"), TypeError),
    (dict(decoder_options={2: "1"}), TypeError),
    (dict(max_pixels=0), ValueError),
    (dict(max_pixels=-10), ValueError),
    (dict(max_pixels=1e6), ValueError),
    (dict(max_pixels=False), ValueError),
])
def test_decode_invalid(kwargs, exc):
    with pytest.raises(exc) as e:
        DecodeConfig(**kwargs)
    assert next(iter(kwargs)) in str(e.value)


def test_decode_options_normalised():
    assert DecodeConfig(decoder_options={"lowres": 1}).decoder_options == {"lowres": "1"}


@pytest.mark.parametrize("kwargs,exc", [
    (dict(device_index=-1), ValueError),
    (dict(device_index=True), ValueError),
    (dict(device_index="0"), ValueError),
    (dict(device_index=0.0), ValueError),
    (dict(device_index=0, stream=-1), ValueError),
    (dict(device_index=0, stream=None), ValueError),
    (dict(device_index=0, allocator=(1, 2)), TypeError),
    (dict(device_index=0, allocator=[print, print]), TypeError),
    (dict(device_index=0, allocator=(print,)), TypeError),
])
def test_cuda_config_invalid(kwargs, exc):
    with pytest.raises(exc):
        CUDAConfig(**kwargs)


def test_cuda_config_valid():
    c = CUDAConfig(1, stream=12345, allocator=(lambda size, dev, stream: 0, lambda ptr: None))
    assert c.device_index == 1 and c.stream == 12345


def test_configs_must_be_config_objects(images, load):
    src = [str(images["jpeg_420"])]
    with pytest.raises(TypeError):
        load(src, width=8, height=8, demux_config={"format": "jpeg_pipe"})
    with pytest.raises(TypeError):
        load(src, width=8, height=8, decode_config={"max_pixels": 10})
    with pytest.raises(TypeError):
        load(src, width=8, height=8, device_config="cuda:0")
    with pytest.raises(TypeError):
        load(src, width=8, height=8, device_config=0)


def test_demux_config_paths_agree(images, load):
    """Forcing the demuxer (libavformat, tiny I/O buffer) gives the same pixels as the
    signature-sniffing fast path."""
    src = [str(images["jpeg_420"]), str(images["png_rgb_301x199"])]
    ref = np_batch(load(src, width=40, height=40))
    a = np_batch(load(src[:1], width=40, height=40, demux_config=DemuxConfig(format="jpeg_pipe", buffer_size=7)))
    b = np_batch(load(src[1:], width=40, height=40, demux_config=DemuxConfig(format="png_pipe", buffer_size=100)))
    np.testing.assert_array_equal(ref[0], a[0])
    np.testing.assert_array_equal(ref[1], b[0])


def test_image_demuxers_listed():
    assert "jpeg_pipe" in spdl.io.IMAGE_DEMUXERS and "png_pipe" in spdl.io.IMAGE_DEMUXERS
    for risky in ("concat", "hls", "image2", "mov", "matroska", "mpegts", "sdp", "svg_pipe"):
        assert risky not in spdl.io.IMAGE_DEMUXERS


# ---------------------------------------------------------------------------
# CUDA on this (GPU-less) machine
# ---------------------------------------------------------------------------


@pytest.fixture
def no_cuda():
    if spdl.io.cuda_available():
        pytest.skip("a CUDA device is available here")


def test_cuda_not_available(no_cuda):
    assert spdl.io.cuda_available() is False


def test_load_with_cuda_device_raises_clearly(images, load, no_cuda):
    with pytest.raises(Exception) as e:
        load([str(images["jpeg_420"])], width=8, height=8, device_config=CUDAConfig(0))
    assert "CUDA" in str(e.value), str(e.value)
    assert not isinstance(e.value, (TypeError, AttributeError, ImportError, NameError))


def test_cuda_error_raised_before_work(images, no_cuda):
    """A CUDA request fails up front: bad sources in the same call are not even read."""
    with pytest.raises(Exception) as e:
        spdl.io.load_image_batch([str(images["missing"])], width=8, height=8, device_config=CUDAConfig(0))
    assert "CUDA" in str(e.value)
    assert not isinstance(e.value, spdl.io.BatchLoadError)


def test_transfer_buffer_raises_clearly(images, no_cuda):
    buf = spdl.io.load_image_batch([str(images["jpeg_420"])], width=8, height=8)
    with pytest.raises(Exception) as e:
        spdl.io.transfer_buffer(buf, device_config=CUDAConfig(0))
    assert "CUDA" in str(e.value)

    async def main():
        return await spdl.io.async_transfer_buffer(buf, device_config=CUDAConfig(0))

    with pytest.raises(Exception) as e:
        asyncio.run(main())
    assert "CUDA" in str(e.value)
