from libc.stdint cimport int32_t, uint8_t

from spdl.io._status cimport ErrorInfo
from spdl.io.includes.libavutil cimport AVFrame, AVPixelFormat
from spdl.io.includes.libswscale cimport SwsContext

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

cdef struct Scaler:
    SwsContext *sws       # cached between images of the same geometry
    AVFrame *tmp          # scratch image when only part of the scaled frame is kept
    SwsContext *conv_sws  # pixel format conversion (no resizing) before resampling
    AVFrame *conv         # its output
    uint8_t *rows         # the resampler's intermediate rows, reused between images
    size_t rows_cap
    int32_t *acc          # the resampler's accumulators
    size_t acc_cap
    void *kernels         # the resampler's recent kernels (an spdl_kcache)

cdef class CompiledPlan:
    cdef ScaleSpec spec
    cdef bytes graph             # the plan's filter_desc, encoded, or None
    cdef readonly object plan    # the LoadPlan it was built from

cdef CompiledPlan compile_plan_spec(object plan)
cdef int compute_geometry(const ScaleSpec *spec, int iw, int ih, Geometry *g,
                          ErrorInfo *err) noexcept nogil
cdef void scaler_init(Scaler *s) noexcept nogil
cdef void scaler_free(Scaler *s) noexcept nogil
cdef int reserve(void **p, size_t *cap, size_t need) noexcept nogil
cdef bint resample_fast3() noexcept nogil
cdef int resample_into(Scaler *s, const uint8_t *pixels, size_t pitch, int w, int h, int ch_in,
                       int ch_out, double ew, double eh, const Geometry *g,
                       AVPixelFormat out_fmt, uint8_t **dst, const int *linesize,
                       ErrorInfo *err) noexcept nogil
cdef void fill_black(AVPixelFormat fmt, int w, int h, uint8_t **dst,
                     const int *linesize) noexcept nogil
cdef void extent_of(const AVFrame *frame, Extent *ext) noexcept nogil
cdef int scale_frame(Scaler *s, const ScaleSpec *spec, const AVFrame *src, const Extent *ext,
                     const Geometry *g, AVPixelFormat dst_fmt, uint8_t **dst,
                     const int *dst_linesize, ErrorInfo *err) noexcept nogil
cdef int scale_to_frame(Scaler *s, const ScaleSpec *spec, AVFrame *src, const Extent *ext,
                        AVFrame *out, ErrorInfo *err) noexcept nogil
cdef int filter_graph_frame(const char *desc, AVFrame *src, AVFrame *out,
                            ErrorInfo *err) noexcept nogil
