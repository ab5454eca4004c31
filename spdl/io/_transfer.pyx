# cython: language_level=3
"""Host to device: transfer_buffer copies a CPUBuffer into a new CUDABuffer."""

from libc.stdint cimport uintptr_t

from spdl.io._buffer cimport CPUBuffer
from spdl.io._config import CUDAConfig
from spdl.io._cuda_buffer cimport CUDABuffer, alloc_cuda_buffer
from spdl.io._cuda_device cimport DeviceScope, enter_device, leave_device
from spdl.io._cuda_device import check_device
from spdl.io._cuda_runtime cimport CudaRuntimeApi, cudart
from spdl.io._keepalive cimport check_then_keep, reap
from spdl.io.includes.cuda_runtime cimport *
from spdl.io.includes.dlpack cimport kDLFloat

__all__ = ["transfer_buffer"]


def transfer_buffer(buffer, *, device_config):
    """Copy a CPUBuffer to the GPU of device_config; returns a CUDABuffer.

    The CUDABuffer has the CPUBuffer's shape, dtype and pixel format, and its
    ``indices``, ``errors``, ``crops``, ``keys`` and ``labels``.

    The device memory comes from ``device_config.allocator`` (cudaMalloc by
    default). The copy is a cudaMemcpyAsync on ``device_config.stream``: the
    call returns once it is enqueued, and the result is valid in that stream's
    order (see CUDABuffer). The CPUBuffer is kept alive until the copy has
    completed, whatever the caller does with it; writing to it before then
    races with the copy. A page-locked CPUBuffer (one loaded with
    ``device_config``) is copied by DMA, asynchronously; a pageable one may
    make the call wait while the runtime stages it.
    """
    cdef CPUBuffer src
    cdef CUDABuffer out
    cdef const CudaRuntimeApi *rt
    cdef cudaError_t err = cudaSuccess
    cdef DeviceScope scope
    cdef int device
    cdef uintptr_t stream
    cdef size_t n
    if not isinstance(device_config, CUDAConfig):
        raise TypeError(f"device_config must be a CUDAConfig, not {type(device_config).__name__}")
    if not isinstance(buffer, CPUBuffer):
        raise TypeError(f"transfer_buffer needs a CPUBuffer, not {type(buffer).__name__}")
    src = buffer
    check_device(device_config)
    reap(False)
    rt = cudart()
    out = alloc_cuda_buffer(src.shape, src.itemsize, src.pix_fmt, device_config,
                            src.dtype_code == kDLFloat)
    out.indices = src.indices
    out.errors = dict(src.errors)
    out.crops = src.crops
    out.keys = src.keys
    out.labels = src.labels
    n = src.nbytes_c()
    device = device_config.device_index
    stream = device_config.stream
    if n:
        with nogil:
            if enter_device(rt, device, &scope) == 0:
                err = rt.cudaMemcpyAsync(<void *>out.ptr, src.data, n, cudaMemcpyHostToDevice,
                                         <cudaStream_t>stream)
            leave_device(rt, &scope)
        # The copy was enqueued (or may have read part of src before failing): keep src.
        check_then_keep(&scope, err, "cudaMemcpyAsync", f"{n} bytes to cuda:{device}",
                        device, stream, src)
    return out
