from libc.stdint cimport int64_t, uint8_t

from spdl.io._status cimport Status
from spdl.io.includes.libavutil cimport AVFrame

cdef int tiff_decode(const uint8_t *data, size_t size, int64_t max_pixels, AVFrame *frame,
                     Status *err) noexcept nogil
cdef bint bigtiff_signature(const uint8_t *d, size_t n) noexcept nogil
cdef int bigtiff_orientation(const uint8_t *d, size_t n) noexcept nogil
