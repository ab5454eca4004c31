from spdl.io._error cimport ErrorInfo
from spdl.io._scale cimport Extent, ScaleSpec
from spdl.io.includes.libavutil cimport AVFrame
from spdl.io.includes.turbojpeg cimport tjhandle

cdef enum:
    JPEG_NOT_HANDLED = 1   # not for this path (CMYK, ...): decode with FFmpeg

cdef struct JpegDecoder:
    tjhandle handle        # opened on first use, kept for the next image

cdef void jpeg_init(JpegDecoder *j) noexcept nogil
cdef void jpeg_free(JpegDecoder *j) noexcept nogil
cdef int jpeg_decode(JpegDecoder *j, const unsigned char *data, int size, const ScaleSpec *spec,
                     long long max_pixels, AVFrame *frame, Extent *ext,
                     ErrorInfo *err) noexcept nogil
