# cython: language_level=3
"""The test hooks that need C access; used through spdl.io._testing only.

Nothing in spdl.io imports this module: it reaches into the modules' C
declarations (.pxd) to switch the CPU path's resampler and SIMD passes, build
fake CUDA buffers, copy device memory back, open a library without keeping it,
and set internal bounds. The production modules expose none of this to Python.
"""

from libc.stdint cimport uintptr_t
from libc.string cimport memcpy

from spdl.io._buffer cimport CPUBuffer, parse_dtype
from spdl.io._config import CUDAConfig
from spdl.io._cuda_buffer cimport FREE_PY, CUDABuffer, _set_shape, alloc_cuda_buffer
from spdl.io._cuda_device cimport DeviceScope, check_scope, enter_device, leave_device, mem_get_info
from spdl.io._cuda_lib import _open_library, cuda_major
from spdl.io._cuda_runtime cimport CudaDriverApi, CudaRuntimeApi, cudart, fill_driver, fill_runtime
from spdl.io._nvjpeg_decode cimport JPEG_GPU_OK, JPEG_NO_IMAGE, JPEG_NOT_8BIT_HUFFMAN, JPEG_RGB, JPEG_TRUNCATED
from spdl.io._nvjpeg_decode cimport gpu_check, set_scratch_bounds as _set_scratch
from spdl.io._nvjpeg_lib cimport NppApi, NvjpegApi, fill_npp, fill_nvjpeg
from spdl.io._nvjpeg_lib import open_library
from spdl.io._pinned cimport PINNED_CACHE_SLOTS, cache_sizes, pinned_class, set_cache_bytes
from spdl.io._decode cimport set_jpeg_resampler
from spdl.io._jpeg cimport set_jpeg_region
from spdl.io._resample cimport set_use_simd
from spdl.io._structure cimport JpegMarkers, jpeg_walk_markers
from spdl.io.includes.cuda_runtime cimport *
from spdl.io.includes.dlpack cimport kDLFloat


def fake_cuda_buffer(ptr, shape, dtype="uint8", *, device_index=0, stream=0, free=None,
                     pix_fmt="rgb24"):
    """A CUDABuffer over a given (fake) device pointer, for tests without a GPU.

    ``free(ptr)`` is called once when the buffer goes away (or nothing, if None).
    Nothing CUDA is called unless an export to another stream is asked for.
    """
    cdef CUDABuffer buf = CUDABuffer.__new__(CUDABuffer)
    cdef int itemsize
    cdef int code = parse_dtype(dtype, &itemsize)
    _set_shape(buf, tuple(shape), itemsize, code == kDLFloat)
    if device_index < 0 or stream < 0:
        raise ValueError("device_index and stream must be non-negative")
    buf._device = device_index
    buf._stream = stream
    buf.pix_fmt = pix_fmt
    buf.ptr = ptr
    if ptr and free is not None:
        buf.free_kind = FREE_PY
        buf.free_cb = free
    buf.indices = tuple(range(buf._shape[0]))
    return buf


def alloc_buffer(shape, dtype, device_config, pix_fmt=None):
    """A CUDABuffer from device_config's allocator, without the device check (uninitialized)."""
    if not isinstance(device_config, CUDAConfig):
        raise TypeError(f"device_config must be a CUDAConfig, not {type(device_config).__name__}")
    cdef int itemsize
    cdef int code = parse_dtype(dtype, &itemsize)
    return alloc_cuda_buffer(tuple(shape), itemsize, pix_fmt, device_config, code == kDLFloat)


def cpu_buffer(shape, dtype, data=None, *, pix_fmt="rgb24", crops=None):
    """A CPUBuffer of this shape and dtype (CPUBuffer.allocate, the loaders' allocation).

    data (bytes-like, exactly nbytes long) is copied in byte for byte; without it the
    memory is left uninitialized. crops sets the attribute the loaders set.
    """
    cdef int itemsize
    cdef int code = parse_dtype(dtype, &itemsize)
    cdef CPUBuffer buf = CPUBuffer.allocate(tuple(shape), itemsize, pix_fmt, None, code == kDLFloat)
    cdef const unsigned char[::1] src
    if data is not None:
        src = memoryview(data).cast("B")
        if <size_t>src.shape[0] != buf.nbytes_c():
            raise ValueError(f"data has {src.shape[0]} bytes, the buffer {buf.nbytes_c()}")
        if src.shape[0]:
            memcpy(buf.data, &src[0], src.shape[0])
    buf.crops = crops
    return buf


def create_stream(int device, bint non_blocking=True):
    """A new cudaStream_t (int) on device; destroy it with destroy_stream."""
    cdef const CudaRuntimeApi *rt = cudart()
    cdef cudaStream_t s = NULL
    cdef cudaError_t err = cudaSuccess
    cdef DeviceScope scope
    with nogil:
        if enter_device(rt, device, &scope) == 0:
            err = rt.cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking if non_blocking else 0)
        leave_device(rt, &scope)
    check_scope(&scope, err, "cudaStreamCreateWithFlags")
    return <uintptr_t>s


def destroy_stream(int device, uintptr_t stream):
    cdef const CudaRuntimeApi *rt = cudart()
    cdef cudaError_t err = cudaSuccess
    cdef DeviceScope scope
    with nogil:
        if enter_device(rt, device, &scope) == 0:
            err = rt.cudaStreamDestroy(<cudaStream_t>stream)
        leave_device(rt, &scope)
    check_scope(&scope, err, "cudaStreamDestroy")


def to_host(CUDABuffer buf, stream=None):
    """A numpy copy of a CUDABuffer, made in the order of `stream` (default: the buffer's)."""
    import numpy as np

    cdef const CudaRuntimeApi *rt = cudart()
    cdef cudaError_t err = cudaSuccess
    cdef DeviceScope scope
    cdef uintptr_t s = buf._stream if stream is None else stream
    cdef uintptr_t dst
    cdef const char *op = "cudaMemcpyAsync"
    out = np.empty(buf.shape, dtype=buf.dtype)
    if buf._nbytes == 0:
        return out
    dst = out.ctypes.data
    with nogil:
        if enter_device(rt, buf._device, &scope) == 0:
            err = rt.cudaMemcpyAsync(<void *>dst, <const void *>buf.ptr, buf._nbytes,
                                     cudaMemcpyDeviceToHost, <cudaStream_t>s)
            if err == cudaSuccess:
                op = "cudaStreamSynchronize"
                err = rt.cudaStreamSynchronize(<cudaStream_t>s)
        leave_device(rt, &scope)
    check_scope(&scope, err, op.decode(), "device to host")
    return out


def mem_info(int device):
    """(free, total) bytes of device memory, from cudaMemGetInfo (raises if it fails)."""
    cdef size_t fr = 0, tot = 0
    mem_get_info(device, &fr, &tot, True)
    return fr, tot


def probe_library(str which, str path):
    """Open path as "cudart" or "libcuda" and fill a table (not kept); returns the path.

    Raises CUDAUnavailableError (``missing``: the functions it lacks).
    """
    cdef CudaRuntimeApi rt
    cdef CudaDriverApi drv
    if which not in ("cudart", "libcuda"):
        raise ValueError(f"which must be 'cudart' or 'libcuda', got {which!r}")
    lib = _open_library(which, [path])
    if which == "cudart":
        fill_runtime(lib, &rt)
    else:
        fill_driver(lib, &drv)
    return lib.path


def probe_nvjpeg_library(str which, candidates=None, major=None):
    """Open one of "nvjpeg", "nppc", "nppig", "nppicc", "nppidei" (not cached) and check its
    symbols.

    major defaults to the chosen CUDA major, candidates to the usual search.
    Returns the path it loaded; raises CUDAUnavailableError naming the library.
    """
    cdef NvjpegApi nv
    cdef NppApi npp
    lib = open_library(which, major or cuda_major(), candidates)
    if which == "nvjpeg":
        fill_nvjpeg(lib, &nv)
    else:
        fill_npp(which, lib, &npp)
    return lib.path


def set_pinned_cache_bytes(size_t n):
    """Set the most bytes the page-locked cache keeps; returns the old value."""
    return set_cache_bytes(n)


def pinned_cache_sizes():
    """The size classes of the cached page-locked blocks, sorted."""
    cdef size_t sizes[PINNED_CACHE_SLOTS]
    cdef int n = cache_sizes(sizes)
    return sorted(sizes[i] for i in range(n))


def pinned_size_class(size_t n):
    """The bytes a page-locked block for an n-byte batch holds."""
    return pinned_class(n)


def set_scratch_bounds(size_t floor, size_t ceiling):
    """Set the nvJPEG round's scratch bounds (SCRATCH_MIN, SCRATCH_MAX); returns the old pair."""
    cdef size_t old[2]
    _set_scratch(floor, ceiling, old)
    return old[0], old[1]


_JPEG_CHECK = {JPEG_NO_IMAGE: "no image data", JPEG_TRUNCATED: "truncated",
               JPEG_NOT_8BIT_HUFFMAN: "not 8-bit Huffman", JPEG_RGB: "RGB-coded"}


def jpeg_check(data):
    """Why a JPEG would not go to nvJPEG by its markers (a str), or None."""
    cdef const unsigned char[::1] view = memoryview(data).cast("B")
    cdef JpegMarkers m
    if len(view) < 4 or view[0] != 0xFF or view[1] != 0xD8:
        raise ValueError("not a JPEG (no SOI)")
    jpeg_walk_markers(&view[0], len(view), &m)
    return _JPEG_CHECK.get(gpu_check(&m, NULL))


def use_simd(bint on):
    """The CPU resampler's AVX2 passes allowed or not (the same bytes either way)."""
    set_use_simd(on)


def use_jpeg_resampler(bint on):
    """Whether JPEGs take the libjpeg-turbo + resampler path."""
    set_jpeg_resampler(on)


def use_jpeg_region(bint on):
    """Whether JPEG crops are decoded from their region only (True, the default) or whole,
    at the crop's DCT scale (for tests and benchmarks: the two must agree)."""
    set_jpeg_region(on)
