from libc.stdint cimport uint8_t

from spdl.io._status cimport Status
from spdl.io.includes.libavutil cimport AVFrame

# A still WebP (VP8, VP8L, with ALPH or metadata chunks) into frame as rgb24, or rgba when
# it has alpha, with libwebp's advanced decoding API (fancy upsampling, one thread).
cdef int webp_decode(const uint8_t *data, int size, long long max_pixels, AVFrame *frame,
                     Status *err) noexcept nogil

# The first frame of an animated WebP as a viewer shows it (the canvas, the frame at its
# offset, the rest transparent) into frame as rgba, with libwebp's demux API.
cdef int webp_anim_decode(const uint8_t *data, int size, long long max_pixels, AVFrame *frame,
                          Status *err) noexcept nogil
