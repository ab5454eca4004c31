from libc.stdint cimport int64_t, uint8_t

from spdl.io._status cimport Status
from spdl.io.includes.libavutil cimport AVFrame

cdef enum:
    LEGACY_NOT_HANDLED = 1   # not decoded here: the data goes to FFmpeg's decoder

cdef int dds_decode_frame(const uint8_t *data, int size, int64_t max_pixels, AVFrame *frame,
                          Status *err) noexcept nogil
cdef int bmp_decode_frame(const uint8_t *data, int size, int64_t max_pixels, AVFrame *frame,
                          Status *err) noexcept nogil
