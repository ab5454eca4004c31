from libc.stdint cimport uint8_t

from spdl.io._geometry cimport Extent, Geometry, ScaleSpec
from spdl.io._resample cimport Resampler
from spdl.io._status cimport Status
from spdl.io.includes.libavutil cimport AVFrame, AVPixelFormat
from spdl.io.includes.libswscale cimport SwsContext

cdef struct Scaler:
    SwsContext *sws       # cached between images of the same geometry
    AVFrame *tmp          # scratch image when only part of the scaled frame is kept
    SwsContext *conv_sws  # pixel format conversion (no resizing) before resampling
    AVFrame *conv         # its output
    Resampler rs          # our resampler's scratch
    AVFrame *oriented     # an output in its stored orientation, before orient_copy

cdef void scaler_init(Scaler *s) noexcept nogil
cdef void scaler_free(Scaler *s) noexcept nogil
cdef int scale_frame(Scaler *s, const ScaleSpec *spec, const AVFrame *src, const Extent *ext,
                     const Geometry *g, AVPixelFormat dst_fmt, uint8_t **dst,
                     const int *dst_linesize, Status *err) noexcept nogil
cdef int scale_to_frame(Scaler *s, const ScaleSpec *spec, AVFrame *src, const Extent *ext,
                        AVFrame *out, Status *err) noexcept nogil
cdef int jpeg2000_full_scale(AVFrame *frame, int bits, Status *err) noexcept nogil
cdef AVPixelFormat oriented_format(AVPixelFormat fmt, int orient) noexcept nogil
cdef void orient_copy(const AVFrame *src, int orient, uint8_t **dst,
                      const int *linesize) noexcept nogil
