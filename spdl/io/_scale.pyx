# cython: language_level=3
"""Resizing and pixel conversion of a decoded frame.

scale_frame is the fast path of the loaders: one swscale call, cached between
images, writing straight into the destination (a row of the batch), with the
pad / crop geometry of FFmpeg's scale, pad and crop filters. filter_graph_frame
runs any other filter description through a libavfilter graph.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t
from libc.math cimport lrint
from libc.stdlib cimport calloc, free, realloc
from libc.string cimport memcmp, memcpy, memset

from spdl.io._status cimport ERR_FILTER, ERR_NOMEM, ErrorInfo, fail
from spdl.io.includes.libavfilter cimport (
    AV_BUFFERSRC_FLAG_KEEP_REF, AVFilterContext, AVFilterGraph, AVFilterInOut,
    av_buffersink_get_frame, av_buffersrc_add_frame_flags, avfilter_get_by_name,
    avfilter_graph_alloc, avfilter_graph_config, avfilter_graph_create_filter,
    avfilter_graph_free, avfilter_graph_parse_ptr, avfilter_inout_alloc, avfilter_inout_free,
)
from spdl.io.includes.libavutil cimport (
    AV_PIX_FMT_FLAG_ALPHA, AV_PIX_FMT_FLAG_BITSTREAM, AV_PIX_FMT_FLAG_FLOAT,
    AV_PIX_FMT_FLAG_HWACCEL, AV_PIX_FMT_FLAG_PAL,
    AV_PIX_FMT_FLAG_PLANAR, AV_PIX_FMT_FLAG_RGB, AV_PIX_FMT_NONE, AV_PIX_FMT_RGBA,
    AV_PIX_FMT_BGR24, AV_PIX_FMT_GRAY8, AV_PIX_FMT_RGB24,
    AV_PIX_FMT_YUVJ411P, AV_PIX_FMT_YUVJ420P, AV_PIX_FMT_YUVJ422P, AV_PIX_FMT_YUVJ440P,
    AV_PIX_FMT_YUVJ444P,
    AVCOL_RANGE_JPEG, AVCOL_SPC_BT709, AVFrame, AVPixelFormat, AVPixFmtDescriptor,
    av_frame_alloc, av_frame_free, av_frame_get_buffer, av_frame_unref, av_get_pix_fmt,
    av_image_copy_plane, av_pix_fmt_desc_get, av_strdup,
)
from spdl.io.includes.libswscale cimport (
    SWS_ACCURATE_RND, SWS_AREA, SWS_BICUBIC, SWS_BILINEAR, SWS_CS_DEFAULT, SWS_CS_ITU709,
    SWS_FAST_BILINEAR, SWS_FULL_CHR_H_INT, SWS_LANCZOS, SWS_POINT, SwsContext,
    sws_freeContext, sws_getCachedContext, sws_getCoefficients, sws_getColorspaceDetails,
    sws_scale, sws_setColorspaceDetails,
)

cdef extern from "csrc/resample.h" nogil:
    ctypedef struct spdl_kernel:
        int n
        int taps
        int *start
        short *w
    void spdl_resample_v(const uint8_t *src, ptrdiff_t src_stride, int row_bytes,
                         const spdl_kernel *kv, uint8_t *tmp, int32_t *acc)
    void spdl_resample_packed(const uint8_t *tmp, int tmp_row_bytes, int rows, int cin,
                              int out_ch, const spdl_kernel *kh, int first, uint8_t *dst,
                              ptrdiff_t dst_stride)
    ctypedef struct spdl_kcache:
        pass
    void spdl_kcache_free(spdl_kcache *c)
    const spdl_kernel *spdl_kernel_get(spdl_kcache *c, int in_n, double extent, int out_total,
                                       int out0, int n)
    int spdl_resample_fast3()
    int SPDL_ROW_SLACK
    int spdl_use_avx2

cdef extern from "<stdio.h>":
    int snprintf(char *buf, size_t n, const char *fmt, ...) nogil


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
    return c


cdef inline int64_t _rescale(int64_t a, int64_t b, int64_t c) noexcept nogil:
    # a * b / c rounded to nearest, halves away from zero (av_rescale's default)
    return (a * b + c // 2) // c


cdef inline int _crop_offset(int size, int keep) noexcept nogil:
    """Where FFmpeg's crop filter starts a centred window: lrint((size - keep) / 2)."""
    return <int>lrint((size - keep) / 2.0)


cdef int compute_geometry(const ScaleSpec *spec, int iw, int ih, Geometry *g,
                          ErrorInfo *err) noexcept nogil:
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


cdef void scaler_init(Scaler *s) noexcept nogil:
    s.sws = s.conv_sws = NULL
    s.tmp = s.conv = NULL
    s.rows = NULL
    s.acc = NULL
    s.rows_cap = s.acc_cap = 0
    s.kernels = NULL


cdef void scaler_free(Scaler *s) noexcept nogil:
    sws_freeContext(s.sws)
    sws_freeContext(s.conv_sws)
    av_frame_free(&s.tmp)
    av_frame_free(&s.conv)
    free(s.rows)
    free(s.acc)
    if s.kernels != NULL:
        spdl_kcache_free(<spdl_kcache *>s.kernels)
        free(s.kernels)
    scaler_init(s)


cdef int reserve(void **p, size_t *cap, size_t need) noexcept nogil:
    """Grow the buffer at p to at least need bytes; -1 when out of memory."""
    cdef void *q
    if need <= cap[0]:
        return 0
    q = realloc(p[0], need)
    if q == NULL:
        return -1
    p[0] = q
    cap[0] = need
    return 0


cdef int resample_into(Scaler *s, const uint8_t *pixels, size_t pitch, int w, int h, int ch_in,
                       int ch_out, double ew, double eh, const Geometry *g,
                       AVPixelFormat out_fmt, uint8_t **dst, const int *linesize,
                       ErrorInfo *err) noexcept nogil:
    """Resize a packed 8-bit image (w x h, ch_in bytes a pixel, filling ew x eh of it) into
    the output at dst as g places it, with the cubic resampler; ch_out is ch_in, or 3 from 4."""
    cdef int vx0, vx1, vy0, vy1, col0, col1, y
    cdef const spdl_kernel *kh
    cdef const spdl_kernel *kv
    cdef size_t span
    cdef uint8_t *o
    vx0, vx1 = max(0, -g.ox), min(g.sw, g.out_w - g.ox)
    vy0, vy1 = max(0, -g.oy), min(g.sh, g.out_h - g.oy)
    if vx1 <= vx0 or vy1 <= vy0:
        fill_black(out_fmt, g.out_w, g.out_h, dst, linesize)
        return 0
    if vx1 - vx0 < g.out_w or vy1 - vy0 < g.out_h:
        _fill_margins(out_fmt, g, g.ox + vx0, g.oy + vy0, g.ox + vx1, g.oy + vy1, dst,
                      linesize)
    o = dst[0] + <size_t>(g.oy + vy0) * linesize[0] + <size_t>(g.ox + vx0) * ch_out
    if w == g.sw and h == g.sh and ew == w and eh == h and ch_in == ch_out:  # copy the window
        span = <size_t>(vx1 - vx0) * ch_out
        for y in range(vy0, vy1):
            memcpy(o + <size_t>(y - vy0) * linesize[0], pixels + y * pitch + <size_t>vx0 * ch_in,
                   span)
        return 0
    if s.kernels == NULL:
        s.kernels = calloc(1, sizeof(spdl_kcache))
        if s.kernels == NULL:
            return fail(err, ERR_NOMEM, "filter", "resample", 0, "out of memory")
    kh = spdl_kernel_get(<spdl_kcache *>s.kernels, w, ew, g.sw, vx0, vx1 - vx0)
    if kh == NULL:
        return fail(err, ERR_NOMEM, "filter", "resample", 0, "out of memory")
    kv = spdl_kernel_get(<spdl_kcache *>s.kernels, h, eh, g.sh, vy0, vy1 - vy0)
    # kh was just used, so making kv never evicts it (kv may be kh itself: same kernel)
    if kv == NULL:
        return fail(err, ERR_NOMEM, "filter", "resample", 0, "out of memory")
    # Only the columns the horizontal kernel reads go through the vertical pass.
    col0, col1 = kh.start[0], kh.start[kh.n - 1] + kh.taps
    span = <size_t>(col1 - col0) * ch_in
    if (reserve(<void **>&s.rows, &s.rows_cap, span * kv.n + SPDL_ROW_SLACK) < 0
            or reserve(<void **>&s.acc, &s.acc_cap, span * sizeof(int32_t)) < 0):
        return fail(err, ERR_NOMEM, "filter", "resample", 0, "out of memory")
    spdl_resample_v(pixels + <size_t>col0 * ch_in, pitch, <int>span, kv, s.rows, s.acc)
    spdl_resample_packed(s.rows, <int>span, kv.n, ch_in, ch_out, kh, col0, o, linesize[0])
    return 0


cdef bint resample_fast3() noexcept nogil:
    """Whether 3-byte pixels resample as fast as 4-byte ones (else pad RGB to RGBX)."""
    return spdl_resample_fast3() != 0


def _use_simd(bint on):
    """Internal, for tests: whether the resampler may use its AVX2 passes (the baseline
    passes give the same bytes)."""
    global spdl_use_avx2
    spdl_use_avx2 = 1 if on else 0


cdef int _packed8_channels(AVPixelFormat fmt) noexcept nogil:
    """Bytes a pixel of the packed 8-bit formats the resampler takes, or 0."""
    if fmt == AV_PIX_FMT_RGB24 or fmt == AV_PIX_FMT_BGR24:
        return 3
    if fmt == AV_PIX_FMT_RGBA:
        return 4
    if fmt == AV_PIX_FMT_GRAY8:
        return 1
    return 0


cdef bint _rgb_or_gray8(const AVPixFmtDescriptor *d) noexcept nogil:
    """RGB, paletted or gray, at most 8 bits a sample: converts to the output format exactly."""
    if d.comp[0].depth > 8 or d.flags & (AV_PIX_FMT_FLAG_FLOAT | AV_PIX_FMT_FLAG_HWACCEL):
        return False
    return d.flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL) or d.nb_components <= 2


cdef int _resample_frame(Scaler *s, const AVFrame *src, const Extent *ext, const Geometry *g,
                         AVPixelFormat dst_fmt, uint8_t **dst, const int *dst_linesize,
                         ErrorInfo *err) noexcept nogil:
    """The resampler for an RGB or gray frame: convert the pixel format at the source size
    if needed (an exact shuffle), then resize into dst."""
    cdef const AVFrame *from_ = src
    cdef int ret
    cdef int ch = _packed8_channels(dst_fmt)
    if src.format != dst_fmt:
        if s.conv == NULL:
            s.conv = av_frame_alloc()
            if s.conv == NULL:
                return fail(err, ERR_NOMEM, "filter", "av_frame_alloc", 0, "out of memory")
        if s.conv.width != src.width or s.conv.height != src.height or s.conv.format != dst_fmt:
            av_frame_unref(s.conv)
            s.conv.width, s.conv.height, s.conv.format = src.width, src.height, dst_fmt
            ret = av_frame_get_buffer(s.conv, 0)
            if ret < 0:
                return fail(err, ERR_NOMEM, "filter", "av_frame_get_buffer", ret, NULL)
        s.conv_sws = sws_getCachedContext(s.conv_sws, src.width, src.height,
                                          <AVPixelFormat>src.format, src.width, src.height,
                                          dst_fmt, SWS_POINT, NULL, NULL, NULL)
        if s.conv_sws == NULL:
            return fail(err, ERR_FILTER, "filter", "sws_getCachedContext", 0,
                        "swscale cannot convert between these formats")
        ret = sws_scale(s.conv_sws, <const uint8_t * const *>src.data, src.linesize, 0,
                        src.height, s.conv.data, s.conv.linesize)
        if ret <= 0:
            return fail(err, ERR_FILTER, "filter", "sws_scale", ret, NULL)
        from_ = s.conv
    return resample_into(s, from_.data[0], from_.linesize[0], from_.width, from_.height, ch, ch,
                         ext.w if ext != NULL else from_.width,
                         ext.h if ext != NULL else from_.height, g, dst_fmt, dst, dst_linesize, err)


cdef inline bint _is_yuv(const AVPixFmtDescriptor *d) noexcept nogil:
    return not (d.flags & AV_PIX_FMT_FLAG_RGB) and d.nb_components >= 3


cdef void _plane_offsets(const AVPixFmtDescriptor *d, int x, int y, int64_t *off,
                         const int *linesize) noexcept nogil:
    """Byte offset of pixel (x, y) in each plane of a format that is not paletted or bit-packed."""
    cdef int p, c, hs, vs
    for p in range(4):
        off[p] = 0
    for c in range(d.nb_components):
        p = d.comp[c].plane
        hs = vs = 0
        if _is_yuv(d) and (c == 1 or c == 2):
            hs, vs = d.log2_chroma_w, d.log2_chroma_h
        off[p] = <int64_t>(y >> vs) * linesize[p] + <int64_t>(x >> hs) * d.comp[c].step


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
        elif _is_yuv(d):
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


cdef void _fill_margins(AVPixelFormat fmt, const Geometry *g, int x0, int y0, int x1, int y1,
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


cdef int _set_colorspace(SwsContext *sws, const AVFrame *src) noexcept nogil:
    """Give swscale the frame's YUV range and matrix.

    A context is cached between images, so the details an earlier frame asked for
    must not stay: every call states what this frame needs (full range for yuvj*
    formats and frames that say so, limited otherwise; BT.709 or BT.601), and
    changes the context only when it differs (setting details re-initialises tables).
    """
    cdef int *inv_table
    cdef int *table
    cdef int src_range, dst_range, brightness, contrast, saturation
    cdef const int *want_table
    cdef int want_range
    cdef AVPixelFormat fmt = <AVPixelFormat>src.format
    if sws_getColorspaceDetails(sws, &inv_table, &src_range, &table, &dst_range,
                                &brightness, &contrast, &saturation) < 0:
        return 0  # not a YUV conversion
    want_range = 1 if (src.color_range == AVCOL_RANGE_JPEG or fmt in (
        AV_PIX_FMT_YUVJ420P, AV_PIX_FMT_YUVJ422P, AV_PIX_FMT_YUVJ444P, AV_PIX_FMT_YUVJ440P,
        AV_PIX_FMT_YUVJ411P)) else 0
    want_table = sws_getCoefficients(SWS_CS_ITU709 if src.colorspace == AVCOL_SPC_BT709
                                     else SWS_CS_DEFAULT)
    if want_range == src_range and memcmp(want_table, inv_table, 4 * sizeof(int)) == 0:
        return 0
    return sws_setColorspaceDetails(sws, want_table, want_range, table, dst_range,
                                    brightness, contrast, saturation)


cdef void extent_of(const AVFrame *frame, Extent *ext) noexcept nogil:
    """The extent of a frame decoded at full size."""
    ext.orig_w, ext.orig_h = frame.width, frame.height
    ext.w, ext.h = frame.width, frame.height


cdef void _copy_window(const AVPixFmtDescriptor *d, const AVFrame *from_, int x, int y, int w,
                       int h, uint8_t **dst, const int *dst_linesize, int dx, int dy) noexcept nogil:
    """Copy the w x h window at (x, y) of from_ to (dx, dy) of dst (same format)."""
    cdef int64_t soff[4]
    cdef int64_t doff[4]
    cdef int c, p, hs, vs
    cdef bint done[4]
    _plane_offsets(d, x, y, soff, from_.linesize)
    _plane_offsets(d, dx, dy, doff, dst_linesize)
    for p in range(4):
        done[p] = False
    for c in range(d.nb_components):
        p = d.comp[c].plane
        if done[p]:
            continue
        done[p] = True
        hs = vs = 0
        if _is_yuv(d) and (c == 1 or c == 2):
            hs, vs = d.log2_chroma_w, d.log2_chroma_h
        if d.flags & AV_PIX_FMT_FLAG_PLANAR or d.nb_components == 1:
            av_image_copy_plane(dst[p] + doff[p], dst_linesize[p], from_.data[p] + soff[p],
                                from_.linesize[p], (-((-w) >> hs)) * d.comp[c].step, -((-h) >> vs))
        else:  # packed: one plane holds every component
            av_image_copy_plane(dst[0] + doff[0], dst_linesize[0], from_.data[0] + soff[0],
                                from_.linesize[0], w * d.comp[0].step, h)
            return


cdef inline bint _aligned(uint8_t **dst, const int *linesize) noexcept nogil:
    """Whether swscale may write to dst directly: its SIMD output stages assume rows
    16-byte aligned (with tight rows, narrow images came out wrong at the right edge)."""
    cdef int p
    for p in range(4):
        if dst[p] != NULL and (linesize[p] % 16 or (<size_t>dst[p]) % 16):
            return False
    return True


cdef int scale_frame(Scaler *s, const ScaleSpec *spec, const AVFrame *src, const Extent *ext,
                     const Geometry *g, AVPixelFormat dst_fmt, uint8_t **dst,
                     const int *dst_linesize, ErrorInfo *err) noexcept nogil:
    """Scale src into the out_w x out_h image at dst, padding with black as g says.

    g comes from the image's original size (ext.orig_w x ext.orig_h). The frame
    is scaled whole, to fw x fh, of which the image part is g.sw x g.sh (more
    than that only when the frame ends in a partial pixel); when all of it is
    inside the output it goes straight to dst, else through a scratch image.
    """
    cdef const AVPixFmtDescriptor *sd = av_pix_fmt_desc_get(<AVPixelFormat>src.format)
    cdef const AVPixFmtDescriptor *dd = av_pix_fmt_desc_get(dst_fmt)
    cdef int vx0, vx1, vy0, vy1, fw, fh, p, ret
    cdef int64_t doff[4]
    cdef uint8_t *dp[4]
    cdef double ew = ext.w if ext != NULL else src.width
    cdef double eh = ext.h if ext != NULL else src.height
    if sd == NULL or dd == NULL or sd.flags & AV_PIX_FMT_FLAG_HWACCEL:
        return fail(err, ERR_FILTER, "filter", "sws_scale", 0, "unsupported pixel format")
    # RGB and gray go through the cubic resampler (swscale's RGB input path is slow, and
    # in FFmpeg 5.1 gets the last column of some small outputs wrong).
    if spec.cubic and _packed8_channels(dst_fmt) and _rgb_or_gray8(sd):
        return _resample_frame(s, src, ext, g, dst_fmt, dst, dst_linesize, err)
    fw = max(g.sw, <int>(g.sw * src.width / ew + 0.5))
    fh = max(g.sh, <int>(g.sh * src.height / eh + 0.5))
    # The part of the scaled image inside the output.
    vx0, vx1 = max(0, -g.ox), min(g.sw, g.out_w - g.ox)
    vy0, vy1 = max(0, -g.oy), min(g.sh, g.out_h - g.oy)
    if vx1 - vx0 < g.out_w or vy1 - vy0 < g.out_h:
        _fill_black(dst_fmt, dd, g.out_w, g.out_h, dst, dst_linesize)
    if vx1 <= vx0 or vy1 <= vy0:
        return 0
    s.sws = sws_getCachedContext(s.sws, src.width, src.height, <AVPixelFormat>src.format,
                                 fw, fh, dst_fmt, spec.sws_flags, NULL, NULL, NULL)
    if s.sws == NULL:
        return fail(err, ERR_FILTER, "filter", "sws_getCachedContext", 0,
                    "swscale cannot convert between these formats or sizes")
    _set_colorspace(s.sws, src)
    if vx0 == 0 and vy0 == 0 and vx1 == fw and vy1 == fh and _aligned(dst, dst_linesize):
        _plane_offsets(dd, g.ox, g.oy, doff, dst_linesize)
        for p in range(4):
            dp[p] = dst[p] + doff[p] if dst[p] != NULL else NULL
        ret = sws_scale(s.sws, <const uint8_t * const *>src.data, src.linesize, 0, src.height,
                        dp, dst_linesize)
        if ret <= 0:
            return fail(err, ERR_FILTER, "filter", "sws_scale", ret, NULL)
        return 0
    if s.tmp == NULL:
        s.tmp = av_frame_alloc()
        if s.tmp == NULL:
            return fail(err, ERR_NOMEM, "filter", "av_frame_alloc", 0, "out of memory")
    if s.tmp.width != fw or s.tmp.height != fh or s.tmp.format != dst_fmt:
        av_frame_unref(s.tmp)
        s.tmp.width, s.tmp.height, s.tmp.format = fw, fh, dst_fmt
        ret = av_frame_get_buffer(s.tmp, 0)
        if ret < 0:
            return fail(err, ERR_NOMEM, "filter", "av_frame_get_buffer", ret, NULL)
    ret = sws_scale(s.sws, <const uint8_t * const *>src.data, src.linesize, 0, src.height,
                    s.tmp.data, s.tmp.linesize)
    if ret <= 0:
        return fail(err, ERR_FILTER, "filter", "sws_scale", ret, NULL)
    _copy_window(dd, s.tmp, vx0, vy0, vx1 - vx0, vy1 - vy0, dst, dst_linesize,
                 g.ox + vx0, g.oy + vy0)
    return 0


cdef int scale_to_frame(Scaler *s, const ScaleSpec *spec, AVFrame *src, const Extent *ext,
                        AVFrame *out, ErrorInfo *err) noexcept nogil:
    """Scale src into a new frame out (unreferenced on entry)."""
    cdef Geometry g
    cdef int ret
    cdef Extent own
    cdef AVPixelFormat fmt = spec.out_fmt if spec.out_fmt != AV_PIX_FMT_NONE else <AVPixelFormat>src.format
    if ext == NULL:
        extent_of(src, &own)
        ext = &own
    if compute_geometry(spec, ext.orig_w, ext.orig_h, &g, err) < 0:
        return -1
    out.width, out.height, out.format = g.out_w, g.out_h, fmt
    ret = av_frame_get_buffer(out, 0)
    if ret < 0:
        return fail(err, ERR_NOMEM, "filter", "av_frame_get_buffer", ret, NULL)
    return scale_frame(s, spec, src, ext, &g, fmt, out.data, out.linesize, err)


cdef int filter_graph_frame(const char *desc, AVFrame *src, AVFrame *out,
                            ErrorInfo *err) noexcept nogil:
    """Run src through the libavfilter graph desc; the one output frame lands in out."""
    cdef AVFilterGraph *graph = avfilter_graph_alloc()
    cdef AVFilterContext *bsrc = NULL
    cdef AVFilterContext *bsink = NULL
    cdef AVFilterInOut *outputs = avfilter_inout_alloc()
    cdef AVFilterInOut *inputs = avfilter_inout_alloc()
    cdef char args[256]
    cdef int ret = 0
    cdef const char *op = "avfilter_graph_alloc"
    if graph == NULL or outputs == NULL or inputs == NULL:
        ret = -12
    if ret >= 0:
        graph.opaque = err  # the filters' log lines go to this status
        graph.nb_threads = 1
        snprintf(args, sizeof(args), "video_size=%dx%d:pix_fmt=%d:time_base=1/1:pixel_aspect=1/1",
                 src.width, src.height, src.format)
        op = "avfilter_graph_create_filter"
        ret = avfilter_graph_create_filter(&bsrc, avfilter_get_by_name("buffer"), "in", args,
                                           NULL, graph)
    if ret >= 0:
        ret = avfilter_graph_create_filter(&bsink, avfilter_get_by_name("buffersink"), "out",
                                           NULL, NULL, graph)
    if ret >= 0:
        outputs.name = av_strdup("in")
        outputs.filter_ctx = bsrc
        outputs.pad_idx = 0
        outputs.next = NULL
        inputs.name = av_strdup("out")
        inputs.filter_ctx = bsink
        inputs.pad_idx = 0
        inputs.next = NULL
        op = "avfilter_graph_parse_ptr"
        ret = avfilter_graph_parse_ptr(graph, desc, &inputs, &outputs, graph)  # logs to graph's status
    if ret >= 0:
        op = "avfilter_graph_config"
        ret = avfilter_graph_config(graph, NULL)
    if ret >= 0:
        op = "av_buffersrc_add_frame_flags"
        ret = av_buffersrc_add_frame_flags(bsrc, src, AV_BUFFERSRC_FLAG_KEEP_REF)
    if ret >= 0:
        ret = av_buffersrc_add_frame_flags(bsrc, NULL, 0)
    if ret >= 0:
        op = "av_buffersink_get_frame"
        ret = av_buffersink_get_frame(bsink, out)
    avfilter_inout_free(&inputs)
    avfilter_inout_free(&outputs)
    avfilter_graph_free(&graph)
    if ret < 0:
        return fail(err, ERR_FILTER, "filter", op, ret, NULL)
    return 0
