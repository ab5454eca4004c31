"""CPUBuffer: array interface, DLPack, zero-copy views and lifetime."""

from __future__ import annotations

import gc
import sys

import numpy as np
import pytest

import spdl.io


@pytest.fixture
def buf(images):
    return spdl.io.load_image_batch([str(images["jpeg_420"]), str(images["png_rgba"])], width=48, height=32)


@pytest.fixture
def buf16(images):
    return spdl.io.load_image_batch([str(images["png_gray16"])], width=48, height=32, pix_fmt="gray16")


def test_attributes(buf, buf16):
    assert buf.shape == (2, 32, 48, 3)
    assert buf.dtype == "uint8"
    assert buf.pix_fmt == "rgb24"
    assert buf.nbytes == 2 * 32 * 48 * 3
    assert buf.indices == (0, 1)
    assert buf.errors == {}
    assert buf.crops is None          # no crop= or hflip=
    assert buf16.dtype == "uint16"
    assert buf16.nbytes == 32 * 48 * 2
    assert "CPUBuffer" in repr(buf)


def test_array_interface(buf, buf16):
    ai = buf.__array_interface__
    assert ai["version"] == 3
    assert ai["shape"] == (2, 32, 48, 3)
    assert ai["typestr"] == "|u1"
    ptr, readonly = ai["data"]
    assert ptr == buf.data_ptr and ptr != 0
    assert readonly is False
    assert ai.get("strides") is None  # C-contiguous
    ai16 = buf16.__array_interface__
    assert ai16["typestr"] == "<u2"
    assert ai16["shape"] == (1, 32, 48, 1)
    # The optional descr (numpy's format), agreeing with typestr.
    assert ai["descr"] == [("", "|u1")] and ai16["descr"] == [("", "<u2")]
    assert np.asarray(buf16).dtype == np.uint16       # numpy reads typestr; descr agrees


def test_dlpack_tensor_shape_and_strides(buf):
    t = np.from_dlpack(buf)
    assert t.shape == buf.shape and t.strides == (32 * 48 * 3, 48 * 3, 3, 1)


def test_aligned(buf, buf16):
    assert buf.data_ptr % 64 == 0
    assert buf16.data_ptr % 64 == 0


def test_to_numpy_is_a_view(buf):
    a = spdl.io.to_numpy(buf)
    b = np.asarray(buf)
    assert a.__array_interface__["data"][0] == buf.data_ptr
    assert b.__array_interface__["data"][0] == buf.data_ptr
    assert a.shape == buf.shape and a.dtype == np.uint8
    assert a.flags["C_CONTIGUOUS"] and a.flags["WRITEABLE"]
    a[0, 0, 0, 0] = 7
    assert b[0, 0, 0, 0] == 7  # the same memory
    a[0, 0, 0, 0] = 9
    assert spdl.io.to_numpy(buf)[0, 0, 0, 0] == 9


def test_numpy_view_keeps_buffer_alive(images):
    buf = spdl.io.load_image_batch([str(images["jpeg_420"])] * 3, width=64, height=64)
    base = sys.getrefcount(buf)
    arr = spdl.io.to_numpy(buf)
    assert sys.getrefcount(buf) == base + 1
    view = arr[1:]
    snapshot = arr.copy()
    ptr = buf.data_ptr
    del buf
    gc.collect()
    # allocate and touch memory that would reuse a freed block
    junk = [np.full(64 * 64 * 3 * 3, 0xAB, np.uint8) for _ in range(20)]
    assert arr.__array_interface__["data"][0] == ptr
    np.testing.assert_array_equal(arr, snapshot)
    np.testing.assert_array_equal(view, snapshot[1:])
    del junk


def test_numpy_refcount_released(images):
    buf = spdl.io.load_image_batch([str(images["jpeg_420"])], width=16, height=16)
    base = sys.getrefcount(buf)
    for _ in range(10):
        a = spdl.io.to_numpy(buf)
        del a
    gc.collect()
    assert sys.getrefcount(buf) == base


def test_dlpack_device(buf):
    assert buf.__dlpack_device__() == (1, 0)


def test_from_dlpack(buf, buf16):
    a = np.from_dlpack(buf)
    assert a.shape == buf.shape and a.dtype == np.uint8
    assert a.__array_interface__["data"][0] == buf.data_ptr
    np.testing.assert_array_equal(a, spdl.io.to_numpy(buf))
    b = np.from_dlpack(buf16)
    assert b.dtype == np.uint16 and b.shape == buf16.shape
    np.testing.assert_array_equal(b, spdl.io.to_numpy(buf16))


def test_dlpack_keeps_buffer_alive(images):
    buf = spdl.io.load_image_batch([str(images["png_rgb_301x199"])], width=64, height=64)
    base = sys.getrefcount(buf)
    a = np.from_dlpack(buf)
    assert sys.getrefcount(buf) == base + 1
    snapshot = a.copy()
    del buf
    gc.collect()
    junk = [np.full(64 * 64 * 3, 0x5A, np.uint8) for _ in range(20)]
    np.testing.assert_array_equal(a, snapshot)
    del junk


def test_dlpack_capsule_unconsumed_releases(buf):
    base = sys.getrefcount(buf)
    for _ in range(10):
        cap = buf.__dlpack__()
        assert sys.getrefcount(buf) == base + 1
        del cap
    gc.collect()
    assert sys.getrefcount(buf) == base


def test_dlpack_consumed_releases(buf):
    base = sys.getrefcount(buf)
    for _ in range(10):
        a = np.from_dlpack(buf)
        del a
    gc.collect()
    assert sys.getrefcount(buf) == base


def test_dlpack_arguments(buf):
    buf.__dlpack__(stream=None)
    buf.__dlpack__(dl_device=(1, 0))
    buf.__dlpack__(copy=False)
    buf.__dlpack__(max_version=(1, 0))
    with pytest.raises(BufferError):
        buf.__dlpack__(stream=1)
    with pytest.raises(BufferError):
        buf.__dlpack__(dl_device=(2, 0))
    with pytest.raises(BufferError):
        buf.__dlpack__(copy=True)


def test_cpubuffer_cannot_be_created():
    with pytest.raises(TypeError):
        spdl.io.CPUBuffer()


def test_empty_buffer_exports(images):
    buf = spdl.io.load_image_batch([b""], width=8, height=8, strict=False)
    assert buf.shape == (0, 8, 8, 3)
    assert buf.data_ptr != 0
    assert spdl.io.to_numpy(buf).shape == (0, 8, 8, 3)
    assert np.from_dlpack(buf).shape == (0, 8, 8, 3)


def test_planar_buffer(images):
    buf = spdl.io.load_image_batch([str(images["jpeg_420"])] * 2, width=20, height=10, pix_fmt="yuv444p")
    a = spdl.io.to_numpy(buf)
    assert a.shape == (2, 3, 10, 20)
    np.testing.assert_array_equal(np.from_dlpack(buf), a)


def test_to_numpy_rejects_other_objects():
    with pytest.raises(TypeError):
        spdl.io.to_numpy(object())


def test_to_torch(buf):
    torch = pytest.importorskip("torch")
    t = spdl.io.to_torch(buf)
    assert tuple(t.shape) == buf.shape
    assert t.dtype == torch.uint8
    assert t.data_ptr() == buf.data_ptr
    np.testing.assert_array_equal(t.numpy(), spdl.io.to_numpy(buf))


def test_to_torch_without_torch(buf):
    try:
        import torch  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError) as e:
            spdl.io.to_torch(buf)
        assert "torch" in str(e.value)
    else:
        pytest.skip("torch is installed")
