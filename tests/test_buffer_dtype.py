"""The batch buffers' element types (uint8, uint16, float16, float32) and their crops.

Every export reads the element type from the buffer: numpy's array interface, DLPack (both
capsule versions on CUDA), __cuda_array_interface__, to_numpy / to_torch, and transfer_buffer
(on the fake CUDA libraries of test_cuda.py), which also carries indices, errors and crops.
The buffers are built by spdl.io._testing.cpu_buffer (CPUBuffer.allocate, what the loaders
call) with bytes written in directly, so the reference values do not go through the exports
under test.
"""

from __future__ import annotations

import gc
import sys

import numpy as np
import pytest

import spdl.io
from spdl.io import _testing

from test_cuda import FAKE, _run_on_fake_cuda, _tensor

DTYPES = ["uint8", "uint16", "float16", "float32"]
# DLPack's (type code, bits): kDLUInt = 1, kDLFloat = 2.
DL_TYPE = {"uint8": (1, 8), "uint16": (1, 16), "float16": (2, 16), "float32": (2, 32)}
TYPESTR = {"uint8": "|u1", "uint16": "<u2", "float16": "<f2", "float32": "<f4"}


def _pattern(shape, dtype):
    """Distinct values exact in every dtype (quarters for the floats, some negative)."""
    n = int(np.prod(shape))
    if dtype.startswith("float"):
        return ((np.arange(n) % 2000) * 0.25 - 100.0).astype(dtype).reshape(shape)
    return (np.arange(n) * 7 % np.iinfo(dtype).max).astype(dtype).reshape(shape)


def _buffer(shape, dtype, **kwargs):
    ref = _pattern(shape, dtype)
    return _testing.cpu_buffer(shape, dtype, ref.tobytes(), **kwargs), ref


@pytest.mark.parametrize("dtype", DTYPES)
def test_attributes(dtype):
    buf, _ = _buffer((2, 3, 5, 3), dtype)
    size = np.dtype(dtype).itemsize
    assert buf.dtype == dtype and buf.shape == (2, 3, 5, 3)
    assert buf.nbytes == 2 * 3 * 5 * 3 * size
    assert buf.data_ptr % 64 == 0
    assert buf.indices == (0, 1) and buf.errors == {} and buf.crops is None
    assert repr(buf) == f"CPUBuffer(shape=(2, 3, 5, 3), dtype={dtype}, pix_fmt='rgb24')"


@pytest.mark.parametrize("dtype", DTYPES)
def test_array_interface_is_a_view_of_the_right_type(dtype):
    buf, ref = _buffer((2, 4, 6, 3), dtype)
    ai = buf.__array_interface__
    assert ai["typestr"] == TYPESTR[dtype] == np.dtype(dtype).str
    assert ai["descr"] == [("", TYPESTR[dtype])]
    for a in (np.asarray(buf), spdl.io.to_numpy(buf)):
        assert a.dtype == np.dtype(dtype) and a.shape == ref.shape
        assert a.__array_interface__["data"][0] == buf.data_ptr       # no copy
        assert a.flags["C_CONTIGUOUS"] and a.flags["WRITEABLE"]
        np.testing.assert_array_equal(a, ref)
    a = np.asarray(buf)
    a[1, 2, 3, 1] = 42
    assert spdl.io.to_numpy(buf)[1, 2, 3, 1] == 42                     # the same memory


@pytest.mark.parametrize("dtype", DTYPES)
def test_dlpack_is_a_view_of_the_right_type(dtype):
    buf, ref = _buffer((3, 2, 4, 5), dtype)
    a = np.from_dlpack(buf)
    assert a.dtype == np.dtype(dtype) and a.shape == ref.shape
    assert a.__array_interface__["data"][0] == buf.data_ptr
    assert a.strides == tuple(s * np.dtype(dtype).itemsize for s in (40, 20, 5, 1))
    np.testing.assert_array_equal(a, ref)
    name, mt = _tensor(buf.__dlpack__())
    t = mt.dl_tensor
    assert name == b"dltensor"
    assert (t.dtype.code, t.dtype.bits, t.dtype.lanes) == (*DL_TYPE[dtype], 1)
    assert [t.strides[i] for i in range(4)] == [40, 20, 5, 1]          # in elements


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_float_views_keep_the_buffer_alive(dtype):
    buf, ref = _buffer((4, 8, 8, 3), dtype)
    base = sys.getrefcount(buf)
    a, d = spdl.io.to_numpy(buf), np.from_dlpack(buf)
    assert sys.getrefcount(buf) == base + 2
    del buf
    gc.collect()
    junk = [np.full(ref.size, -1, ref.dtype) for _ in range(20)]   # would reuse a freed block
    np.testing.assert_array_equal(a, ref)
    np.testing.assert_array_equal(d, ref)
    del junk


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_buffer(dtype):
    buf = _testing.cpu_buffer((0, 4, 4, 3), dtype)
    assert buf.nbytes == 0 and buf.data_ptr != 0
    assert np.asarray(buf).dtype == np.dtype(dtype) and np.asarray(buf).shape == (0, 4, 4, 3)
    assert np.from_dlpack(buf).dtype == np.dtype(dtype)


def test_planar_float():
    buf, ref = _buffer((2, 3, 4, 5), "float32", pix_fmt="gbrpf32le")
    assert buf.pix_fmt == "gbrpf32le"
    np.testing.assert_array_equal(np.from_dlpack(buf), ref)


@pytest.mark.parametrize("dtype", DTYPES)
def test_to_torch(dtype):
    torch = pytest.importorskip("torch")
    if dtype == "uint16" and not hasattr(torch, "uint16"):
        pytest.skip("this PyTorch has no uint16")
    buf, ref = _buffer((2, 3, 4, 3), dtype)
    t = spdl.io.to_torch(buf)
    assert t.dtype == getattr(torch, dtype) and tuple(t.shape) == ref.shape
    assert t.data_ptr() == buf.data_ptr
    np.testing.assert_array_equal(t.numpy(), ref)


def test_bad_dtype_and_data_refused():
    with pytest.raises(ValueError, match="dtype must be one of"):
        _testing.cpu_buffer((1, 2, 2, 3), "float64")
    with pytest.raises(ValueError, match="dtype must be one of"):
        _testing.fake_cuda_buffer(FAKE, (1, 2, 2, 3), "int8")
    with pytest.raises(ValueError, match="bytes"):
        _testing.cpu_buffer((1, 2, 2, 3), "float32", bytes(12))


def test_crops_default_set_and_read_only(images):
    loaded = spdl.io.load_image_batch([str(images["jpeg_420"])], width=8, height=8)
    assert loaded.crops is None
    assert _testing.fake_cuda_buffer(FAKE, (1, 2, 2, 3)).crops is None
    crops = ((0, 1, 30, 20, False), (5, 0, 10, 10, True))
    buf, _ = _buffer((2, 4, 4, 3), "float32", crops=crops)
    assert buf.crops is crops
    with pytest.raises(AttributeError):
        buf.crops = ()
    with pytest.raises(AttributeError):
        loaded.crops = crops


# CUDABuffer: the same element types, over a fake device pointer (nothing CUDA is called).


@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_buffer_exports_the_dtype(dtype):
    buf = _testing.fake_cuda_buffer(FAKE, (2, 3, 4, 3), dtype, stream=0x55)
    size = np.dtype(dtype).itemsize
    assert buf.dtype == dtype and buf.nbytes == 72 * size
    assert f"dtype={dtype}" in repr(buf)
    assert buf.__cuda_array_interface__["typestr"] == TYPESTR[dtype]
    for versioned in (False, True):
        cap = buf.__dlpack__(stream=0x55, max_version=(1, 0) if versioned else None)
        name, mt = _tensor(cap, versioned=versioned)
        assert name == (b"dltensor_versioned" if versioned else b"dltensor")
        t = mt.dl_tensor
        assert (t.dtype.code, t.dtype.bits, t.dtype.lanes) == (*DL_TYPE[dtype], 1)
        assert t.data == FAKE and [t.strides[i] for i in range(4)] == [36, 12, 3, 1]


# transfer_buffer on the fake CUDA libraries (host memory posing as device memory).

FAKE_TRANSFER = r"""import asyncio, os, sys
import numpy as np
FAKE = sys.argv[1]
import spdl.io
from spdl.io import CUDAConfig, _testing
_testing.use_libraries(FAKE, driver=os.path.join(FAKE, "drv", "libcuda.so.1"))
assert spdl.io.cuda_available()
crops = ((0, 0, 64, 48, False), (3, 4, 20, 10, True))
for dtype in ("float32", "float16", "uint16", "uint8"):
    n = 2 * 5 * 7 * 3
    if dtype.startswith("float"):
        ref = (np.arange(n) * 0.25 - 20).astype(dtype).reshape(2, 5, 7, 3)
    else:
        ref = (np.arange(n) * 3).astype(dtype).reshape(2, 5, 7, 3)
    for c in (None, crops):
        cpu = _testing.cpu_buffer(ref.shape, dtype, ref.tobytes(), crops=c)
        for g in (spdl.io.transfer_buffer(cpu, device_config=CUDAConfig(1)),
                  asyncio.run(spdl.io.async_transfer_buffer(cpu, device_config=CUDAConfig(1)))):
            assert g.dtype == dtype and g.shape == ref.shape and g.nbytes == ref.nbytes, g
            assert g.device_index == 1 and g.pix_fmt == "rgb24"
            assert g.indices == (0, 1) and g.errors == {} and g.crops == c, (g.indices, g.crops)
            assert g.__cuda_array_interface__["typestr"] == ref.dtype.str
            host = _testing.to_host(g)
            assert host.dtype == ref.dtype
            np.testing.assert_array_equal(host, ref)
print("FAKE TRANSFER OK")
"""


def test_transfer_keeps_dtype_and_crops_on_a_fake_of_cuda(tmp_path):
    r = _run_on_fake_cuda(tmp_path, FAKE_TRANSFER)
    assert r.stdout.strip().endswith("FAKE TRANSFER OK")
