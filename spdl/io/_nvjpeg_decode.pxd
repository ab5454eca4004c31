from libc.stdint cimport int64_t, uintptr_t

from spdl.io._cuda_buffer cimport CUDABuffer
from spdl.io._structure cimport JpegMarkers
from spdl.io.includes.cuda_runtime cimport cudaEvent_t
from spdl.io.includes.libavcodec cimport AVPacket
from spdl.io.includes.nvjpeg cimport nvjpegHandle_t, nvjpegJpegState_t, nvjpegJpegStream_t

cdef enum:
    G_CPU = 0           # decoded by the CPU path
    G_HW = 1            # the hardware decoder
    G_HYBRID = 2        # the GPU-hybrid decoder

# Why a JPEG's markers keep it from nvJPEG (gpu_check).
cdef enum:
    JPEG_GPU_OK = 0
    JPEG_NO_IMAGE = 1           # no frame header or scan, or bytes where a marker must be
    JPEG_TRUNCATED = 2          # the data ends before the end-of-image marker
    JPEG_NOT_8BIT_HUFFMAN = 3   # lossless, arithmetic-coded, or not 8 bits per sample
    JPEG_RGB = 4                # three components coded as RGB, not YCbCr

cdef class _Decoder:
    cdef int device
    cdef nvjpegHandle_t hw              # NVJPEG_BACKEND_HARDWARE, or NULL
    cdef nvjpegJpegState_t hw_state
    cdef nvjpegJpegStream_t hw_stream   # to ask nvjpegDecodeBatchedSupported
    cdef nvjpegHandle_t hy              # NVJPEG_BACKEND_GPU_HYBRID
    cdef nvjpegJpegState_t hy_state
    # One event per state, recorded after each use of it, so that the hybrid group of a
    # call does not wait for the hardware group just enqueued before it (or the other
    # way round). cudaEventBlockingSync: waiting for one blocks the thread instead of
    # spinning a CPU core.
    cdef cudaEvent_t hw_done, hy_done
    cdef bint hw_used, hy_used          # the event marks the end of the last use of its state
    cdef bint broken                    # a CUDA failure left it unknown whether the states are idle
    cdef bint hw_strict, hy_strict      # made with NVJPEG_FLAGS_BITSTREAM_STRICT
    cdef readonly object lock
    cdef readonly str hardware          # "yes", or why the hardware decoder is not used

    cdef void destroy(self) noexcept nogil

cdef class _Inputs:
    cdef Py_ssize_t n
    cdef const unsigned char **data
    cdef size_t *length
    cdef int *width
    cdef int *height
    cdef int *group                     # G_*
    cdef uintptr_t *decoded             # the decoded full-size image in device memory
    cdef AVPacket **pkts                # the files read (read_source), owned
    cdef list sources                   # what keeps the bytes sources' data alive

# The decoder of a device, made on first use (load_libraries() first).
cdef _Decoder decoder(int device)
# A JPEG_* code for a walk of its markers; the number of complete scans to nscans.
cdef int gpu_check(const JpegMarkers *m, int *nscans) noexcept nogil
# Pick each input's group (G_CPU for what nvJPEG should not take); dec's device current.
cdef void classify(_Decoder dec, _Inputs inp, int64_t max_pixels) noexcept nogil
# The scratch bound of one round for device (see "The scratch of one round").
cdef size_t scratch_limit(int device, bint own_allocator) except 0
# For tests (spdl.io._testing): set SCRATCH_MIN and SCRATCH_MAX, the old pair to old[0:2].
cdef void set_scratch_bounds(size_t floor, size_t ceiling, size_t *old) noexcept nogil
# Decode images idx of group g in one nvjpegDecodeBatched call (see the function).
cdef CUDABuffer decode_round(_Decoder dec, _Inputs inp, int g, list idx, int out_fmt, bint planar,
                             object cfg, list failures)
