from libc.stdint cimport uint8_t

from spdl.io._status cimport Status
from spdl.io.includes.libavutil cimport AVFrame

# The first frame of an animated WebP as a viewer shows it (the canvas, the frame at its
# offset, the rest transparent) into frame as rgba, with libwebp's demux API.
cdef int webp_anim_decode(const uint8_t *data, int size, long long max_pixels, AVFrame *frame,
                          Status *err) noexcept nogil
