from libc.stdint cimport int64_t, uint8_t, uint64_t

from spdl.io._status cimport Status
from spdl.io.includes.libavutil cimport AVFrame, AVPixelFormat, AVPixFmtDescriptor

cdef enum ScaleMode:
    MODE_STRETCH = 0
    MODE_PAD = 1
    MODE_CROP = 2

cdef enum CropKind:
    CROP_NONE = 0         # the plan's scale_mode places the whole image
    CROP_RANDOM = 1       # RandomResizedCrop
    CROP_CENTER = 2       # CenterCrop
    CROP_BOXES = 3        # one box per input

cdef struct CropSpec:
    # The plan's crop and flip (spdl.io._plan.RandomResizedCrop and friends).
    int kind              # a CropKind
    double scale_lo       # CROP_RANDOM: the area fraction's range
    double scale_hi
    double log_ratio_lo   # CROP_RANDOM: the log aspect ratio's range
    double log_ratio_hi
    double fraction       # CROP_CENTER
    const int *boxes      # CROP_BOXES: x, y, w, h per input
    const uint8_t *flips  # one per input, or NULL: flip with probability flip_p
    double flip_p
    Py_ssize_t n          # the inputs boxes and flips cover
    uint64_t seed

cdef struct Crop:
    # What the plan does to one image.
    int x                 # the box resized to the output, in the image's pixels as stored
    int y                 # (what the decoders read)
    int w
    int h
    int vx                # the same box in the image's pixels as viewed (EXIF orientation
    int vy                # applied): what the plan drew and the batch reports
    int vw
    int vh
    bint cropped          # the box fills the output (else the plan's scale_mode places the image)
    bint flip             # mirrored left to right

cdef struct ScaleSpec:
    # The C form of a LoadPlan (spdl.io._plan): what every image becomes.
    int scale_w           # -1: follow the aspect ratio (or no scaling when both are -1)
    int scale_h
    int mode              # a ScaleMode
    int sws_flags
    bint cubic            # bicubic: the JPEG path's own resampler may serve it
    AVPixelFormat out_fmt # AV_PIX_FMT_NONE: keep the decoded format
    CropSpec crop
    int orient            # 1, or the EXIF orientation (2..8) of the image this copy is for:
                          # scale_w/scale_h are then the stored image's (swapped for 5..8) and
                          # the geometry is the one that orient_copy turns into the plan's

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
    double x              # where the part to resize starts in the frame (a crop's corner)
    double y
    double w              # how much of the frame the part fills, in frame pixels: a
    double h              # frame reduced in the DCT ends in a partial pixel (175.5 of 176)
    bint cropped          # the part is a crop box, stretched to the output

cdef class CompiledPlan:
    cdef ScaleSpec spec
    cdef bytes boxes             # what spec.crop's pointers point into
    cdef bytes flips
    cdef bytes graph             # the plan's filter_desc, encoded, or None
    cdef readonly object plan    # the LoadPlan it was built from

cdef CompiledPlan compile_plan_spec(object plan)
cdef int compute_geometry(const ScaleSpec *spec, int iw, int ih, Geometry *g,
                          Status *err) noexcept nogil
cdef void extent_of(const AVFrame *frame, Extent *ext) noexcept nogil
cdef int resolve_crop(const ScaleSpec *spec, Py_ssize_t index, int iw, int ih, Crop *c,
                      Status *err) noexcept nogil
cdef void crop_extent(const Crop *c, Extent *ext) noexcept nogil
cdef int ext_geometry(const ScaleSpec *spec, const Extent *ext, Geometry *g,
                      Status *err) noexcept nogil
cdef void orient_axes(int orient, bint *swap, bint *mx, bint *my) noexcept nogil
cdef void orient_spec(const ScaleSpec *spec, int orient, ScaleSpec *out) noexcept nogil
cdef bint is_yuv(const AVPixFmtDescriptor *d) noexcept nogil
cdef void fill_black(AVPixelFormat fmt, int w, int h, uint8_t **dst,
                     const int *linesize) noexcept nogil
cdef void fill_margins(AVPixelFormat fmt, const Geometry *g, int x0, int y0, int x1, int y1,
                       uint8_t **dst, const int *linesize) noexcept nogil
