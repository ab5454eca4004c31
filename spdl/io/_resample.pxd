from libc.stdint cimport int32_t, uint8_t

from spdl.io._geometry cimport Geometry
from spdl.io._status cimport Status
from spdl.io.includes.libavutil cimport AVPixelFormat

cdef struct Resampler:
    uint8_t *rows         # intermediate rows, reused between images
    size_t rows_cap
    int32_t *acc          # accumulators
    size_t acc_cap
    void *kernels         # recent kernels (an spdl_kcache)

cdef void resampler_init(Resampler *s) noexcept nogil
cdef void resampler_free(Resampler *s) noexcept nogil
cdef int reserve(void **p, size_t *cap, size_t need) noexcept nogil
cdef bint resample_fast3() noexcept nogil
cdef void set_use_simd(bint on) noexcept nogil
cdef int resample_into(Resampler *s, const uint8_t *pixels, size_t pitch, int w, int h,
                       int ch_in, int ch_out, double ex, double ey, double ew, double eh,
                       const Geometry *g,
                       AVPixelFormat out_fmt, uint8_t **dst, const int *linesize,
                       Status *err) noexcept nogil
