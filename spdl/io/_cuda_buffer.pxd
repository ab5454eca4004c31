from libc.stdint cimport intptr_t, uintptr_t

from spdl.io._buffer cimport Batch

# How a CUDABuffer's memory goes back. Every kind is ordered after the buffer's stream and
# after the DLPack consumers' streams it was exported to (see CUDABuffer.release).
cdef enum FreeKind:
    FREE_NONE = 0       # nothing to free (empty buffer, or memory owned elsewhere)
    FREE_CUDA = 1       # cudaMalloc memory: cudaFree once the host has waited for the stream
    FREE_PY = 2         # the Python free(ptr) of CUDAConfig.allocator
    FREE_ASYNC = 3      # cudaMallocAsync memory: cudaFreeAsync on the buffer's stream

cdef enum:
    CUDA_MAX_CONSUMERS = 4      # consumer streams remembered per buffer; more count as unknown

cdef class CUDABuffer(Batch):
    cdef uintptr_t ptr          # device pointer; 0 only when the buffer is empty
    cdef size_t _nbytes
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

    cdef int _ready_on(self, uintptr_t consumer) except -1
    # Remember a DLPack consumer's stream (-1: none given) for the free.
    cdef void _add_consumer(self, intptr_t stream) noexcept
    # Give the memory back now, as the last reference going would (never raises).
    cdef void release(self) noexcept

# A CUDABuffer of this shape and element type (unsigned ints of itemsize bytes, floats with
# is_float) on config's device, allocated by config's allocator. With the
# default allocator the memory comes from cudaMallocAsync on config.stream (and goes back
# with cudaFreeAsync) where the device supports memory pools, else from cudaMalloc. Memory
# from cudaMallocAsync or from a custom allocator (FREE_ASYNC, FREE_PY) is free only in the
# stream's order: queued work may still use it when it is handed out.
cdef CUDABuffer alloc_cuda_buffer(tuple shape, int itemsize, str pix_fmt, object config,
                                  bint is_float=*)

# A CUDABuffer's shape, element type (unsigned ints of itemsize bytes, or floats with
# is_float) and byte count set from shape (ValueError if invalid).
cdef int _set_shape(CUDABuffer buf, tuple shape, int itemsize, bint is_float=*) except -1
