from libc.stdint cimport int64_t, intptr_t, uintptr_t

from spdl.io.includes.cuda_driver cimport CUcontext
from spdl.io.includes.cuda_runtime cimport *

# The CUDA runtime functions spdl.io calls, filled by dlsym (see _cuda.pyx).
cdef struct CudaRuntimeApi:
    cudaGetDeviceCount_t cudaGetDeviceCount
    cudaGetDevice_t cudaGetDevice
    cudaSetDevice_t cudaSetDevice
    cudaMalloc_t cudaMalloc
    cudaFree_t cudaFree
    cudaMallocAsync_t cudaMallocAsync
    cudaFreeAsync_t cudaFreeAsync
    cudaHostAlloc_t cudaHostAlloc
    cudaFreeHost_t cudaFreeHost
    cudaMemcpyAsync_t cudaMemcpyAsync
    cudaMemsetAsync_t cudaMemsetAsync
    cudaStreamCreateWithFlags_t cudaStreamCreateWithFlags
    cudaStreamDestroy_t cudaStreamDestroy
    cudaStreamSynchronize_t cudaStreamSynchronize
    cudaDeviceSynchronize_t cudaDeviceSynchronize
    cudaEventCreateWithFlags_t cudaEventCreateWithFlags
    cudaEventRecord_t cudaEventRecord
    cudaEventQuery_t cudaEventQuery
    cudaEventSynchronize_t cudaEventSynchronize
    cudaEventDestroy_t cudaEventDestroy
    cudaStreamWaitEvent_t cudaStreamWaitEvent
    cudaStreamGetFlags_t cudaStreamGetFlags
    cudaDeviceGetAttribute_t cudaDeviceGetAttribute
    cudaRuntimeGetVersion_t cudaRuntimeGetVersion
    cudaDriverGetVersion_t cudaDriverGetVersion
    cudaGetErrorName_t cudaGetErrorName
    cudaGetErrorString_t cudaGetErrorString
    cudaGetLastError_t cudaGetLastError
    cudaMemGetInfo_t cudaMemGetInfo

# How a CUDABuffer's memory goes back. Every kind is ordered after the buffer's stream and
# after the DLPack consumers' streams it was exported to (see CUDABuffer.release).
cdef enum FreeKind:
    FREE_NONE = 0       # nothing to free (empty buffer, or memory owned elsewhere)
    FREE_CUDA = 1       # cudaMalloc memory: cudaFree once the host has waited for the stream
    FREE_PY = 2         # the Python free(ptr) of CUDAConfig.allocator
    FREE_ASYNC = 3      # cudaMallocAsync memory: cudaFreeAsync on the buffer's stream

cdef enum:
    CUDA_MAX_NDIM = 4
    CUDA_MAX_CONSUMERS = 4      # consumer streams remembered per buffer; more count as unknown

cdef class CUDABuffer:
    cdef uintptr_t ptr          # device pointer; 0 only when the buffer is empty
    cdef size_t _nbytes
    cdef int ndim
    cdef int64_t _shape[CUDA_MAX_NDIM]
    cdef int itemsize           # 1 (uint8) or 2 (uint16)
    cdef int _device
    cdef uintptr_t _stream      # CUDAConfig.stream: 0 is the legacy default stream
    cdef int free_kind          # a FreeKind
    cdef object free_cb         # FREE_PY: called once with ptr
    # The streams DLPack consumers named (other than the buffer's own): the free waits
    # for their work. unknown_consumer: one named a stream that cannot be waited on
    # from another thread (2, the per-thread stream; -1, no synchronization wanted), or
    # more than CUDA_MAX_CONSUMERS streams: the free waits for the whole device.
    cdef uintptr_t consumers[CUDA_MAX_CONSUMERS]
    cdef int nconsumers
    cdef bint unknown_consumer
    cdef readonly str pix_fmt
    cdef readonly object indices
    cdef readonly dict errors

    cdef int _ready_on(self, uintptr_t consumer) except -1
    # Remember a DLPack consumer's stream (-1: none given) for the free.
    cdef void _add_consumer(self, intptr_t stream) noexcept
    # Give the memory back now, as the last reference going would (never raises).
    cdef void release(self) noexcept

# The runtime's function table; loads libcudart on first use (raises CUDAUnavailableError).
cdef const CudaRuntimeApi *cudart() except NULL

# What enter_device changed on the calling thread, for leave_device to undo.
cdef struct DeviceScope:
    int device
    bint driver             # the driver API was used: ctx is the context to restore
    CUcontext ctx           # the context current before (may be NULL: none)
    int prev                # without the driver API: the runtime's device before, or -1
    bint changed            # leave_device has something to restore
    int code                # the first failure of enter or leave (a CUresult if driver), or 0
    const char *op          # the call that failed
    bint entering           # the failure was in enter_device (else in leave_device)

# Make device's primary context current on this thread for the work that
# follows, saving what was current; leave_device puts it back exactly (with
# the driver API: the previous context, or none). Both return 0, or -1 after
# recording the failure in the scope (and clearing the runtime's last error);
# call leave_device even after a failed enter_device. Neither raises nor needs the GIL.
cdef int enter_device(const CudaRuntimeApi *rt, int device, DeviceScope *scope) noexcept nogil
cdef int leave_device(const CudaRuntimeApi *rt, DeviceScope *scope) noexcept nogil

# Raise for the first failure of a block run between enter_device and
# leave_device: entering, then the block's own call (err from op), then leaving.
cdef int check_scope(const DeviceScope *scope, cudaError_t err=*, str op=*, str what=*) except -1

# The exception for a failed runtime call (clears the runtime's last error).
cdef object cuda_error(cudaError_t err, str op, str what=*)

# A CUDABuffer of this shape on config's device, allocated by config's allocator. With the
# default allocator the memory comes from cudaMallocAsync on config.stream (and goes back
# with cudaFreeAsync) where the device supports memory pools, else from cudaMalloc. Memory
# from cudaMallocAsync or from a custom allocator (FREE_ASYNC, FREE_PY) is free only in the
# stream's order: queued work may still use it when it is handed out.
cdef CUDABuffer alloc_cuda_buffer(tuple shape, int itemsize, str pix_fmt, object config)

# Keep `keep` alive until the work enqueued so far on `stream` has completed.
cdef int keep_until_done(int device, uintptr_t stream, object keep) except -1

# keep_until_done for a call that is already failing with exc: never raises; a failure
# to park `keep` is attached to exc (a note, or a log record before Python 3.11).
cdef int keep_after_error(int device, uintptr_t stream, object keep, object exc) except -1

# For a block between enter_device and leave_device that enqueued work reading host
# memory `keep`: raise the block's own failure first (check_scope), and keep `keep`
# alive until the stream's work so far is done unless entering the device failed
# (nothing was enqueued then); after a failure too, since work enqueued before it may
# still read `keep`.
cdef int check_then_keep(const DeviceScope *scope, cudaError_t err, str op, str what,
                         int device, uintptr_t stream, object keep) except -1
