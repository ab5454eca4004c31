from libc.stdint cimport uint8_t

from spdl.io._status cimport Status
from spdl.io.includes.libavutil cimport AVFrame, AVPixelFormat, AVPixFmtDescriptor

cdef enum ScaleMode:
    MODE_STRETCH = 0
    MODE_PAD = 1
    MODE_CROP = 2

cdef struct ScaleSpec:
    # The C form of a LoadPlan (spdl.io._plan): what every image becomes.
    int scale_w           # -1: follow the aspect ratio (or no scaling when both are -1)
    int scale_h
    int mode              # a ScaleMode
    int sws_flags
    bint cubic            # bicubic: the JPEG path's own resampler may serve it
    AVPixelFormat out_fmt # AV_PIX_FMT_NONE: keep the decoded format

cdef struct Geometry:
    int out_w             # the output image
    int out_h
    int sw                # the scaled image
    int sh
    int ox                # where the scaled image's top-left lands in the output
    int oy

cdef struct Extent:
    int orig_w            # the image's size before any reduction in the decoder
    int orig_h
    double w              # how much of the frame the image fills, in frame pixels: a
    double h              # frame reduced in the DCT ends in a partial pixel (175.5 of 176)

cdef class CompiledPlan:
    cdef ScaleSpec spec
    cdef bytes graph             # the plan's filter_desc, encoded, or None
    cdef readonly object plan    # the LoadPlan it was built from

cdef CompiledPlan compile_plan_spec(object plan)
cdef int compute_geometry(const ScaleSpec *spec, int iw, int ih, Geometry *g,
                          Status *err) noexcept nogil
cdef void extent_of(const AVFrame *frame, Extent *ext) noexcept nogil
cdef bint is_yuv(const AVPixFmtDescriptor *d) noexcept nogil
cdef void fill_black(AVPixelFormat fmt, int w, int h, uint8_t **dst,
                     const int *linesize) noexcept nogil
cdef void fill_margins(AVPixelFormat fmt, const Geometry *g, int x0, int y0, int x1, int y1,
                       uint8_t **dst, const int *linesize) noexcept nogil
