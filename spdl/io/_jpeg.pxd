from spdl.io._status cimport Status
from spdl.io._geometry cimport Crop, Extent, ScaleSpec
from spdl.io._scale cimport Scaler
from spdl.io.includes.libavutil cimport AVFrame
from spdl.io.includes.turbojpeg cimport tjhandle

cdef enum:
    JPEG_NOT_HANDLED = 1   # not for this path (CMYK, ...): decode with FFmpeg

from libc.stdint cimport uint8_t

from spdl.io.includes.libavutil cimport AVPixelFormat

cdef struct JpegDecoder:
    tjhandle handle        # opened on first use, kept for the next image
    uint8_t *pixels        # the decoded (reduced) image, reused between images
    size_t pixels_cap
    void *region           # libjpeg's decompressor for crops (an spdl_jregion), or NULL

cdef void jpeg_init(JpegDecoder *j) noexcept nogil
cdef void jpeg_free(JpegDecoder *j) noexcept nogil
cdef int jpeg_decode(JpegDecoder *j, const unsigned char *data, int size, const ScaleSpec *spec,
                     long long max_pixels, Py_ssize_t index, Crop *crop, AVFrame *frame,
                     Extent *ext, Status *err) noexcept nogil
cdef bint jpeg_packed_format(AVPixelFormat fmt) noexcept nogil
cdef int jpeg_decode_into(JpegDecoder *j, Scaler *scaler, const unsigned char *data, int size,
                          const ScaleSpec *spec, long long max_pixels, Py_ssize_t index,
                          Crop *crop, AVPixelFormat out_fmt, AVFrame *out, uint8_t **dst,
                          const int *linesize, Status *err) noexcept nogil
cdef void set_jpeg_region(bint on) noexcept nogil
