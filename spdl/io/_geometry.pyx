# cython: language_level=3
"""The plan in C, and where an image lands: a LoadPlan compiled into one ScaleSpec,
the pad / crop / stretch geometry of FFmpeg's scale, pad and crop filters, the
extent of a decoded frame, and the black padding around the image."""

from libc.stdint cimport int64_t, uint8_t, uint16_t, uint64_t
from libc.math cimport log, lrint
from libc.string cimport memset

from spdl.io._status cimport ERR_FILTER, Status, fail, status_init
from spdl.io.includes.libavutil cimport (
    AV_PIX_FMT_FLAG_ALPHA, AV_PIX_FMT_FLAG_RGB, AV_PIX_FMT_NONE, AV_PIX_FMT_YUVJ411P, AV_PIX_FMT_YUVJ420P,
    AV_PIX_FMT_YUVJ422P, AV_PIX_FMT_YUVJ440P, AV_PIX_FMT_YUVJ444P, AVFrame, AVPixelFormat,
    AVPixFmtDescriptor, av_get_pix_fmt, av_pix_fmt_desc_get,
)
from spdl.io.includes.libswscale cimport (
    SWS_ACCURATE_RND, SWS_AREA, SWS_BICUBIC, SWS_BILINEAR, SWS_FAST_BILINEAR, SWS_LANCZOS,
    SWS_POINT,
)

cdef extern from "<stdio.h>":
    int snprintf(char *buf, size_t n, const char *fmt, ...) nogil

cdef extern from "csrc/crop.h" nogil:
    void spdl_random_resized_crop(uint64_t seed, int64_t index, int iw, int ih, double scale_lo,
                                  double scale_hi, double lr_lo, double lr_hi, int *x, int *y,
                                  int *w, int *h)
    void spdl_center_crop(int iw, int ih, int out_w, int out_h, double fraction, int *x, int *y,
                          int *w, int *h)
    int spdl_draw_flip(uint64_t seed, int64_t index, double p)


_SWS_ALGOS = {
    "fast_bilinear": SWS_FAST_BILINEAR,
    "bilinear": SWS_BILINEAR,
    "bicubic": SWS_BICUBIC,
    "neighbor": SWS_POINT,
    "area": SWS_AREA,
    "lanczos": SWS_LANCZOS,
}


cdef class CompiledPlan:
    pass


cdef CompiledPlan compile_plan_spec(object plan):
    """The C form of a LoadPlan (see spdl.io._plan): one struct, built once per batch."""
    cdef CompiledPlan c = CompiledPlan.__new__(CompiledPlan)
    c.plan = plan
    c.spec.scale_w = plan.width if plan.width is not None else -1
    c.spec.scale_h = plan.height if plan.height is not None else -1
    c.spec.mode = {"pad": MODE_PAD, "crop": MODE_CROP, "stretch": MODE_STRETCH}[plan.scale_mode]
    # Full chroma interpolation (SWS_FULL_CHR_H_INT) would double the cost for no
    # visible gain at these sizes; accurate rounding is nearly free.
    c.spec.sws_flags = _SWS_ALGOS[plan.scale_algo] | SWS_ACCURATE_RND
    c.spec.cubic = plan.scale_algo == "bicubic"
    c.spec.out_fmt = AV_PIX_FMT_NONE
    if plan.pix_fmt is not None:
        c.spec.out_fmt = av_get_pix_fmt(plan.ffmpeg_pix_fmt.encode())
        if c.spec.out_fmt == AV_PIX_FMT_NONE:
            raise ValueError(f"pixel format {plan.pix_fmt!r} is not known to this FFmpeg build")
    c.graph = plan.filter_desc.encode() if plan.filter_desc is not None else None
    c.spec.orient = 1
    _compile_crop(c, plan)
    return c


cdef _compile_crop(CompiledPlan c, object plan):
    """The plan's crop, flip and seed into c.spec.crop (a seed of None: a fresh one)."""
    import array
    import secrets
    from spdl.io._plan import CenterCrop, RandomResizedCrop

    cdef CropSpec *cs = &c.spec.crop
    cs.kind = CROP_NONE
    cs.boxes = NULL
    cs.flips = NULL
    cs.n = -1
    cs.flip_p = 0.0
    cs.seed = plan.seed if plan.seed is not None else secrets.randbits(64)
    crop = plan.crop
    if isinstance(crop, RandomResizedCrop):
        cs.kind = CROP_RANDOM
        cs.scale_lo, cs.scale_hi = crop.scale
        cs.log_ratio_lo, cs.log_ratio_hi = log(crop.ratio[0]), log(crop.ratio[1])
    elif isinstance(crop, CenterCrop):
        cs.kind = CROP_CENTER
        cs.fraction = crop.fraction
    elif crop is not None:
        cs.kind = CROP_BOXES
        c.boxes = array.array("i", [v for box in crop for v in box]).tobytes()
        cs.boxes = <const int *><const char *>c.boxes
        cs.n = len(crop)
    if isinstance(plan.hflip, tuple):
        c.flips = bytes(bytearray(plan.hflip))
        cs.flips = <const uint8_t *><const char *>c.flips
        if cs.n >= 0 and cs.n != len(plan.hflip):
            raise ValueError(f"crop has {cs.n} boxes but hflip {len(plan.hflip)} flags: "
                             "give both one per input")
        cs.n = len(plan.hflip)
    else:
        cs.flip_p = plan.hflip


def check_per_input(CompiledPlan c, Py_ssize_t n, indices=None):
    """Raise ValueError when the plan's per-input boxes or flips do not match n inputs (or,
    for a part of the caller's list, do not cover the inputs' indices there)."""
    cdef Py_ssize_t have = c.spec.crop.n
    what = "crop boxes" if c.spec.crop.kind == CROP_BOXES else "hflip flags"
    if have < 0:
        return
    if indices is None and have != n:
        raise ValueError(f"{have} {what} for {n} inputs: give one per input")
    if indices is not None and any(not 0 <= k < have for k in indices):
        raise ValueError(f"{have} {what} do not cover input indices {max(indices)}")


def draw_crop(plan, Py_ssize_t index, int iw, int ih):
    """The (x, y, w, h, flipped) that plan gives input index, an iw x ih image (its seed
    must be set). What the CPU workers compute, for backends that place crops themselves."""
    cdef CompiledPlan c = compile_plan_spec(plan)
    cdef Crop crop
    cdef Status err
    cdef int ret
    if plan.seed is None:
        raise ValueError("draw_crop needs a plan with a seed")
    status_init(&err, index)
    with nogil:
        ret = resolve_crop(&c.spec, index, iw, ih, &crop, &err)
    if ret < 0:
        raise ValueError(f"input {index}: the crop box lies outside the {iw}x{ih} image")
    return (crop.vx, crop.vy, crop.vw, crop.vh, bool(crop.flip))


# EXIF orientation 1..8 as (swap, mx, my): the viewed image's pixel (x, y) is the stored
# one's (sx, sy), where (u, v) = (y, x) if swap else (x, y), sx = W - 1 - u if mx else u,
# sy = H - 1 - v if my else v (W x H: the stored size).
cdef unsigned char _ORIENT[9]
_ORIENT[:] = [0, 0, 2, 6, 4, 1, 5, 7, 3]   # bit 0: swap, bit 1: mx, bit 2: my


cdef void orient_axes(int orient, bint *swap, bint *mx, bint *my) noexcept nogil:
    cdef int a = _ORIENT[orient] if 1 <= orient <= 8 else 0
    swap[0], mx[0], my[0] = (a & 1) != 0, (a & 2) != 0, (a & 4) != 0


cdef void orient_spec(const ScaleSpec *spec, int orient, ScaleSpec *out) noexcept nogil:
    """out: spec for an image of EXIF orientation orient, in the stored image's terms
    (the output size swapped for 5..8); ext_geometry then mirrors the placement and
    resolve_crop draws boxes in the viewed image."""
    cdef bint swap, mx, my
    out[0] = spec[0]
    out.orient = orient if 1 <= orient <= 8 else 1
    orient_axes(out.orient, &swap, &mx, &my)
    if swap:
        out.scale_w, out.scale_h = spec.scale_h, spec.scale_w


cdef int resolve_crop(const ScaleSpec *spec, Py_ssize_t index, int iw, int ih, Crop *c,
                      Status *err) noexcept nogil:
    """What spec does to input index, an iw x ih image (as stored): its crop box and flip.
    The box is drawn in the viewed image (spec.orient applied: vx..vh) and mapped back to
    the stored pixels (x..h) that the decoders read."""
    cdef const CropSpec *cs = &spec.crop
    cdef char msg[160]
    cdef bint swap = False, mx = False, my = False
    cdef int vw = iw, vh = ih, tw = spec.scale_w, th = spec.scale_h, u, v, lu, lv
    if spec.orient > 1:
        orient_axes(spec.orient, &swap, &mx, &my)
        if swap:
            vw, vh, tw, th = ih, iw, spec.scale_h, spec.scale_w
    c.vx, c.vy, c.vw, c.vh = 0, 0, vw, vh
    c.cropped = cs.kind != CROP_NONE
    if cs.kind == CROP_RANDOM:
        spdl_random_resized_crop(cs.seed, index, vw, vh, cs.scale_lo, cs.scale_hi,
                                 cs.log_ratio_lo, cs.log_ratio_hi, &c.vx, &c.vy, &c.vw, &c.vh)
    elif cs.kind == CROP_CENTER:
        spdl_center_crop(vw, vh, tw, th, cs.fraction, &c.vx, &c.vy, &c.vw, &c.vh)
    elif cs.kind == CROP_BOXES:
        c.vx, c.vy, c.vw, c.vh = cs.boxes[4 * index], cs.boxes[4 * index + 1], cs.boxes[4 * index + 2], cs.boxes[4 * index + 3]
        if <long long>c.vx + c.vw > vw or <long long>c.vy + c.vh > vh:
            snprintf(msg, sizeof(msg), "the crop box (%d, %d, %d, %d) lies outside the %dx%d image",
                     c.vx, c.vy, c.vw, c.vh, vw, vh)
            return fail(err, ERR_FILTER, "filter", "crop", 0, msg)
    u, v, lu, lv = c.vx, c.vy, c.vw, c.vh
    if swap:
        u, v, lu, lv = c.vy, c.vx, c.vh, c.vw
    c.x = iw - (u + lu) if mx else u
    c.y = ih - (v + lv) if my else v
    c.w, c.h = lu, lv
    if cs.flips != NULL:
        c.flip = cs.flips[index] != 0
    else:
        c.flip = spdl_draw_flip(cs.seed, index, cs.flip_p) != 0
    return 0


cdef void crop_extent(const Crop *c, Extent *ext) noexcept nogil:
    """Narrow ext (a whole frame's) to c's box, when c crops: in frame pixels, which a
    frame reduced in the DCT has fewer of than the image."""
    cdef double sx, sy
    if not c.cropped:
        return
    sx = ext.w / ext.orig_w
    sy = ext.h / ext.orig_h
    ext.x, ext.y = c.x * sx, c.y * sy
    ext.w, ext.h = c.w * sx, c.h * sy
    ext.cropped = True


cdef int ext_geometry(const ScaleSpec *spec, const Extent *ext, Geometry *g,
                      Status *err) noexcept nogil:
    """Where the part ext marks lands: a crop box fills the output, stretched; a whole
    image goes where the plan's scale_mode puts it. For an oriented spec (orient_spec):
    in the stored orientation, mirrored so that orient_copy puts it where the plan puts
    the viewed image (padding and crop offsets included)."""
    cdef bint swap, mx, my
    if not ext.cropped:
        if compute_geometry(spec, ext.orig_w, ext.orig_h, g, err) < 0:
            return -1
        if spec.orient > 1:
            orient_axes(spec.orient, &swap, &mx, &my)
            if mx:
                g.ox = g.out_w - (g.ox + g.sw)
            if my:
                g.oy = g.out_h - (g.oy + g.sh)
        return 0
    g.out_w, g.out_h = spec.scale_w, spec.scale_h
    g.sw, g.sh = spec.scale_w, spec.scale_h
    g.ox = g.oy = 0
    return 0


cdef inline int64_t _rescale(int64_t a, int64_t b, int64_t c) noexcept nogil:
    # a * b / c rounded to nearest, halves away from zero (av_rescale's default)
    return (a * b + c // 2) // c


cdef inline int _crop_offset(int size, int keep) noexcept nogil:
    """Where FFmpeg's crop filter starts a centred window: lrint((size - keep) / 2)."""
    return <int>lrint((size - keep) / 2.0)


cdef int compute_geometry(const ScaleSpec *spec, int iw, int ih, Geometry *g,
                          Status *err) noexcept nogil:
    """Where the source lands in the output, as FFmpeg's scale/pad/crop place it."""
    cdef int64_t w = spec.scale_w, h = spec.scale_h, tw, th
    cdef char msg[128]
    if w < 0 and h < 0:
        w, h = iw, ih
    elif w < 0:
        w = _rescale(h, iw, ih)
    elif h < 0:
        h = _rescale(w, ih, iw)
    elif spec.mode != MODE_STRETCH:
        tw = _rescale(h, iw, ih)
        th = _rescale(w, ih, iw)
        if spec.mode == MODE_PAD:
            w, h = min(tw, w), min(th, h)
        else:
            w, h = max(tw, w), max(th, h)
    if w < 1:
        w = 1
    if h < 1:
        h = 1
    if w > 65535 or h > 65535:
        snprintf(msg, sizeof(msg), "scaled size %lldx%lld is too large", <long long>w, <long long>h)
        return fail(err, ERR_FILTER, "filter", "scale", 0, msg)
    g.sw, g.sh = <int>w, <int>h
    g.out_w, g.out_h = g.sw, g.sh
    g.ox = g.oy = 0
    if spec.mode != MODE_STRETCH and spec.scale_w > 0 and spec.scale_h > 0:
        g.out_w, g.out_h = spec.scale_w, spec.scale_h
        # pad centres with integer division, crop with lrint (halves to even), as
        # FFmpeg's pad and crop filters do
        g.ox = (g.out_w - g.sw) // 2 if g.sw <= g.out_w else -_crop_offset(g.sw, g.out_w)
        g.oy = (g.out_h - g.sh) // 2 if g.sh <= g.out_h else -_crop_offset(g.sh, g.out_h)
    return 0


cdef bint is_yuv(const AVPixFmtDescriptor *d) noexcept nogil:
    return not (d.flags & AV_PIX_FMT_FLAG_RGB) and d.nb_components >= 3


cdef void _fill_black(AVPixelFormat fmt, const AVPixFmtDescriptor *d, int w, int h,
                      uint8_t **dst, const int *linesize) noexcept nogil:
    """Fill a w x h image with opaque black, as FFmpeg's pad filter does."""
    cdef int p, c, x, y, hs, vs, pw, ph, value, nplanes = 0
    cdef bint full_range = fmt in (AV_PIX_FMT_YUVJ420P, AV_PIX_FMT_YUVJ422P, AV_PIX_FMT_YUVJ444P,
                                   AV_PIX_FMT_YUVJ440P, AV_PIX_FMT_YUVJ411P)
    cdef uint8_t *row
    cdef int step
    for c in range(d.nb_components):
        nplanes = max(nplanes, d.comp[c].plane + 1)
    if nplanes == 1:  # packed RGB(A) or gray: zeros, then opaque alpha
        step = d.comp[0].step
        for y in range(h):
            row = dst[0] + <int64_t>y * linesize[0]
            memset(row, 0, <size_t>w * step)
            if d.flags & AV_PIX_FMT_FLAG_ALPHA and d.nb_components == 4 and d.comp[3].depth == 8:
                for x in range(w):
                    row[x * step + d.comp[3].offset] = 0xFF
        return
    for c in range(d.nb_components):
        p = d.comp[c].plane
        hs = vs = value = 0
        if c == 3:
            value = (1 << d.comp[c].depth) - 1
        elif is_yuv(d):
            if c == 0:
                value = 0 if full_range else 16 << (d.comp[c].depth - 8)
            else:
                value = 128 << (d.comp[c].depth - 8)
                hs, vs = d.log2_chroma_w, d.log2_chroma_h
        pw = -((-w) >> hs)
        ph = -((-h) >> vs)
        for y in range(ph):
            row = dst[p] + <int64_t>y * linesize[p]
            if d.comp[c].depth <= 8:
                memset(row, value, pw)
            else:
                for x in range(pw):
                    (<uint16_t *>row)[x] = value


cdef void fill_black(AVPixelFormat fmt, int w, int h, uint8_t **dst,
                     const int *linesize) noexcept nogil:
    _fill_black(fmt, av_pix_fmt_desc_get(fmt), w, h, dst, linesize)


cdef void fill_margins(AVPixelFormat fmt, const Geometry *g, int x0, int y0, int x1, int y1,
                        uint8_t **dst, const int *linesize) noexcept nogil:
    """Fill the output of a packed format black outside the window [x0, x1) x [y0, y1),
    which the image then covers: each byte is written once."""
    cdef const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(fmt)
    cdef int step = d.comp[0].step
    cdef int y
    cdef uint8_t *row[1]
    for y in range(g.out_h):
        row[0] = dst[0] + <int64_t>y * linesize[0]
        if y < y0 or y >= y1:
            _fill_black(fmt, d, g.out_w, 1, row, linesize)
            continue
        if x0 > 0:
            _fill_black(fmt, d, x0, 1, row, linesize)
        if x1 < g.out_w:
            row[0] = row[0] + <int64_t>x1 * step
            _fill_black(fmt, d, g.out_w - x1, 1, row, linesize)


cdef void extent_of(const AVFrame *frame, Extent *ext) noexcept nogil:
    """The extent of a frame decoded at full size."""
    ext.orig_w, ext.orig_h = frame.width, frame.height
    ext.x = ext.y = 0
    ext.w, ext.h = frame.width, frame.height
    ext.cropped = False

