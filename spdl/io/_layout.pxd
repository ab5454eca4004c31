from libc.stdint cimport uint8_t

from spdl.io._buffer cimport CPUBuffer
from spdl.io.includes.libavutil cimport AVFrame, AVPixelFormat

cdef struct Layout:
    bint planar        # rows are (C, H, W); else (H, W, C)
    int channels
    int itemsize       # bytes per sample: 1 or 2
    int plane_channel[4]  # planar: the batch channel each of the frame's planes fills
    bint stacked       # 4:2:0 YUV: one (H * 3 / 2, W) plane, Y then U then V (I420)
    bint swap          # big-endian 16-bit samples, swapped to the machine's order

cdef enum OutType:
    OUT_U8 = 0
    OUT_F32 = 1
    OUT_F16 = 2

cdef struct OutSpec:
    # What a training plan makes of each packed 8-bit image on its way into the batch.
    int dtype             # an OutType
    bint nchw             # channels first
    int channels
    const void *lut       # OUT_F32: float[channels][256]; OUT_F16: uint16 (half bits)

cdef class CompiledOutput:
    cdef OutSpec spec
    cdef bytes lut                 # what spec.lut points into

cdef CompiledOutput compile_output(object plan)
cdef void flip_rows(uint8_t *data, int linesize, int w, int h, int ch) noexcept nogil
cdef void write_converted(const OutSpec *o, const uint8_t *src, size_t pitch, int w, int h,
                          bint flip, uint8_t *dst) noexcept nogil
cdef int frame_layout(AVPixelFormat fmt, Layout *out) noexcept nogil
cdef str batch_pix_fmt_name(AVPixelFormat fmt)
cdef object batch_shape(int n, const Layout *lay, int w, int h)
cdef str layout_size_error(const Layout *lay, int w, int h)
cdef int one_layout(dict groups, Layout *lay, int *w, int *h, int *fmt) except -1
cdef void slot_planes(CPUBuffer buf, Py_ssize_t i, const Layout *lay, int w, int h,
                      uint8_t **dst, int *linesize) noexcept nogil
cdef void copy_frame(const AVFrame *f, const Layout *lay, uint8_t **dst,
                     const int *linesize) noexcept nogil
