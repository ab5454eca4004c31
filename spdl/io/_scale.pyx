# cython: language_level=3
"""Resizing and pixel conversion of a decoded frame, as a ScaleSpec says.

scale_frame writes the image into its place in the output (a row of the batch):
RGB and gray frames through our resampler (spdl.io._resample) after an exact
pixel-format shuffle, anything else through one swscale call, cached between
images, told the frame's YUV range and matrix.
"""

from libc.stdint cimport int64_t, uint8_t, uint32_t
from libc.string cimport memcmp, memcpy

from spdl.io._geometry cimport (
    Extent, Geometry, MODE_STRETCH, ScaleSpec, compute_geometry, ext_geometry, extent_of,
    fill_black, fill_margins, is_yuv, orient_axes,
)
from spdl.io._resample cimport resample_into, resampler_free, resampler_init
from spdl.io._status cimport ERR_FILTER, ERR_NOMEM, Status, fail
from spdl.io.includes.libavutil cimport (
    AV_PIX_FMT_FLAG_BE, AV_PIX_FMT_FLAG_BITSTREAM, AV_PIX_FMT_FLAG_FLOAT,
    AV_PIX_FMT_FLAG_HWACCEL, AV_PIX_FMT_FLAG_PAL, AV_PIX_FMT_FLAG_PLANAR, AV_PIX_FMT_FLAG_RGB,
    AV_PIX_FMT_NONE, AV_PIX_FMT_RGBA, AV_PIX_FMT_BGR24, AV_PIX_FMT_GRAY8, AV_PIX_FMT_RGB24,
    AV_PIX_FMT_GRAY16, AV_PIX_FMT_RGB48, AV_PIX_FMT_RGBA64, AV_PIX_FMT_YA8, AV_PIX_FMT_YA16,
    AV_PIX_FMT_YUVJ411P, AV_PIX_FMT_YUVJ420P, AV_PIX_FMT_YUVJ422P, AV_PIX_FMT_YUVJ440P,
    AV_PIX_FMT_YUVJ444P,
    AVCOL_RANGE_JPEG, AVCOL_RANGE_MPEG, AVCOL_SPC_BT709, AVFrame, AVPixelFormat,
    AVComponentDescriptor, AVPixFmtDescriptor, av_frame_alloc, av_frame_free,
    av_frame_get_buffer, av_frame_make_writable, av_frame_unref, av_get_pix_fmt,
    av_get_pix_fmt_name, av_image_copy_plane, av_pix_fmt_desc_get,
)
from spdl.io.includes.libswscale cimport (
    SWS_CS_DEFAULT, SWS_CS_ITU709, SWS_POINT, SwsContext, sws_freeContext, sws_getCachedContext,
    sws_getCoefficients, sws_getColorspaceDetails, sws_scale, sws_setColorspaceDetails,
)


cdef extern from "csrc/orient.h" nogil:
    void spdl_orient_plane(const uint8_t *src, ptrdiff_t sstride, int sw, int sh, uint8_t *dst,
                           ptrdiff_t dstride, int bpp, int swap, int mx, int my)

cdef extern from "<string.h>" nogil:
    size_t strlen(const char *s)
    char *strstr(const char *haystack, const char *needle)


cdef void scaler_init(Scaler *s) noexcept nogil:
    s.sws = s.conv_sws = NULL
    s.tmp = s.conv = s.oriented = NULL
    resampler_init(&s.rs)


cdef void scaler_free(Scaler *s) noexcept nogil:
    sws_freeContext(s.sws)
    sws_freeContext(s.conv_sws)
    av_frame_free(&s.tmp)
    av_frame_free(&s.conv)
    av_frame_free(&s.oriented)
    resampler_free(&s.rs)
    scaler_init(s)


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


cdef int _conv_frame(Scaler *s, const AVFrame *src, AVPixelFormat fmt,
                     Status *err) noexcept nogil:
    """Make s.conv a frame of src's size in fmt (kept between images of one shape)."""
    cdef int ret
    if s.conv == NULL:
        s.conv = av_frame_alloc()
        if s.conv == NULL:
            return fail(err, ERR_NOMEM, "filter", "av_frame_alloc", 0, "out of memory")
    if s.conv.width != src.width or s.conv.height != src.height or s.conv.format != fmt:
        av_frame_unref(s.conv)
        s.conv.width, s.conv.height, s.conv.format = src.width, src.height, fmt
        ret = av_frame_get_buffer(s.conv, 0)
        if ret < 0:
            return fail(err, ERR_NOMEM, "filter", "av_frame_get_buffer", ret, NULL)
    return 0


cdef inline bint _is_gray(const AVPixFmtDescriptor *d) noexcept nogil:
    """Grey, with or without alpha: one luma component and no chroma."""
    return not d.flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_HWACCEL
                          | AV_PIX_FMT_FLAG_BITSTREAM) and d.nb_components <= 2


cdef bint _wide(const AVPixFmtDescriptor *d) noexcept nogil:
    """Integer grey or RGB (and alpha) of 9 to 16 bits in 16-bit words, packed or planar:
    gray9..gray16, ya16, rgb48, bgr48, rgba64, bgra64, gbrp9..gbrp16, gbrap10..gbrap16."""
    cdef int c
    if d.flags & (AV_PIX_FMT_FLAG_FLOAT | AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_HWACCEL
                  | AV_PIX_FMT_FLAG_BITSTREAM):
        return False
    if not 8 < d.comp[0].depth <= 16:
        return False
    for c in range(d.nb_components):
        if d.comp[c].depth != d.comp[0].depth or d.comp[c].step != (
                2 if d.flags & AV_PIX_FMT_FLAG_PLANAR else 2 * d.nb_components):
            return False
    return _is_gray(d) or (d.flags & AV_PIX_FMT_FLAG_RGB and d.nb_components >= 3)


cdef inline uint8_t _level(const uint8_t *p, const AVComponentDescriptor *c, bint be,
                           unsigned int mx) noexcept nogil:
    """round(v * 255 / m) of the 16-bit word at p (m is odd: never a tie)."""
    cdef unsigned int v = (<unsigned int>p[0] << 8 | p[1]) if be else (
        <unsigned int>p[1] << 8 | p[0])
    return <uint8_t>((((v >> c.shift) & mx) * 510 + mx) // (2 * mx))


cdef int _wide_to_packed8(Scaler *s, const AVFrame *src, const AVPixFmtDescriptor *d,
                          AVPixelFormat dst_fmt, Status *err) noexcept nogil:
    """Convert a 9-16 bit grey or RGB frame (_wide) into s.conv in a packed 8-bit format
    (gray from grey only, rgb24, bgr24, rgba), each sample v of maximum m = 2**depth - 1
    becoming round(v * 255 / m): full range, exactly (swscale truncates grey, took it for
    limited-range luma, and sends 16-bit RGB through YUV, 2 levels off)."""
    cdef int ch = _packed8_channels(dst_fmt)
    cdef int x, y, c
    cdef unsigned int mx = (1u << d.comp[0].depth) - 1
    cdef bint be = d.flags & AV_PIX_FMT_FLAG_BE
    cdef int nc = d.nb_components
    cdef int alpha = nc - 1 if nc == 2 or nc == 4 else -1
    cdef int r = 2 if dst_fmt == AV_PIX_FMT_BGR24 else 0  # where red goes
    cdef const uint8_t *px[4]
    cdef uint8_t *out
    if _conv_frame(s, src, dst_fmt, err) < 0:
        return -1
    for y in range(src.height):
        for c in range(nc):
            px[c] = (src.data[d.comp[c].plane] + <int64_t>y * src.linesize[d.comp[c].plane]
                     + d.comp[c].offset)
        out = s.conv.data[0] + <int64_t>y * s.conv.linesize[0]
        for x in range(src.width):
            out[r] = _level(px[0] + x * d.comp[0].step, &d.comp[0], be, mx)
            if ch >= 3:
                if nc >= 3:
                    out[1] = _level(px[1] + x * d.comp[1].step, &d.comp[1], be, mx)
                    out[2 - r] = _level(px[2] + x * d.comp[2].step, &d.comp[2], be, mx)
                else:
                    out[1] = out[2 - r] = out[r]
            if ch == 4:
                out[3] = (_level(px[alpha] + x * d.comp[alpha].step, &d.comp[alpha], be, mx)
                          if alpha >= 0 else 255)
            out += ch
    return 0


cdef int _pal8_to_gray8(Scaler *s, const AVFrame *src, Status *err) noexcept nogil:
    """A paletted frame to gray in s.conv: each palette colour's BT.601 luma, rounded
    (round(.299 R + .587 G + .114 B), as the RGB path gives within 1), so a grey palette
    gives its own levels exactly (swscale's palette-to-luma table was 1 off)."""
    cdef uint8_t lut[256]
    cdef const uint32_t *pal = <const uint32_t *>src.data[1]
    cdef int i, x, y
    cdef const uint8_t *row
    cdef uint8_t *out
    if _conv_frame(s, src, AV_PIX_FMT_GRAY8, err) < 0:
        return -1
    for i in range(256):  # ARGB in native words
        lut[i] = <uint8_t>(((pal[i] >> 16 & 255) * 299 + (pal[i] >> 8 & 255) * 587
                            + (pal[i] & 255) * 114 + 500) // 1000)
    for y in range(src.height):
        row = src.data[0] + <int64_t>y * src.linesize[0]
        out = s.conv.data[0] + <int64_t>y * s.conv.linesize[0]
        for x in range(src.width):
            out[x] = lut[row[x]]
    return 0


cdef int jpeg2000_full_scale(AVFrame *frame, int bits, Status *err) noexcept nogil:
    """Make the samples of a JPEG 2000 image of `bits` bits per sample span their words.

    FFmpeg 5.1's decoder stores a b-bit image in 8- or 16-bit words unscaled: v << (8 - b)
    in gray8, ya8, rgb24 and rgba when b < 8, v << (16 - b) in gray16, rgb48 and rgba64,
    and v itself in ya16, when 8 < b < 16; the frame does not say b. Each sample becomes
    round(v * w / m) in place (m = 2**b - 1, w the word's maximum), so white is white;
    for 16-bit words the 8-bit outputs then get round(v * 255 / m) exactly (w / 255 = 257
    is odd, so rounding twice is rounding once)."""
    cdef AVPixelFormat fmt = <AVPixelFormat>frame.format
    cdef int word, ch, shift, x, y, n, ret
    cdef unsigned int m, w
    cdef uint8_t *p8
    cdef unsigned short *p16
    if fmt in (AV_PIX_FMT_GRAY8, AV_PIX_FMT_YA8, AV_PIX_FMT_RGB24, AV_PIX_FMT_RGBA):
        word = 8
    elif fmt in (AV_PIX_FMT_GRAY16, AV_PIX_FMT_YA16, AV_PIX_FMT_RGB48, AV_PIX_FMT_RGBA64):
        word = 16
    else:
        return 0  # planar YUV keeps its own depth in its pixel format
    if bits <= 0 or bits >= word or (word == 16 and bits <= 8):
        return 0
    ch = av_pix_fmt_desc_get(fmt).nb_components
    shift = 0 if fmt == AV_PIX_FMT_YA16 else word - bits
    m = (1u << bits) - 1
    w = (1u << word) - 1
    ret = av_frame_make_writable(frame)
    if ret < 0:
        return fail(err, ERR_NOMEM, "decode", "av_frame_make_writable", ret, NULL)
    n = frame.width * ch
    for y in range(frame.height):
        if word == 8:
            p8 = frame.data[0] + <int64_t>y * frame.linesize[0]
            for x in range(n):
                p8[x] = <uint8_t>((((p8[x] >> shift) & m) * 2 * w + m) // (2 * m))
        else:
            p16 = <unsigned short *>(frame.data[0] + <int64_t>y * frame.linesize[0])
            for x in range(n):
                p16[x] = <unsigned short>((((p16[x] >> shift) & m) * 2 * w + m) // (2 * m))
    return 0


cdef int _resample_frame(Scaler *s, const AVFrame *src, const Extent *ext, const Geometry *g,
                         AVPixelFormat dst_fmt, uint8_t **dst, const int *dst_linesize,
                         Status *err) noexcept nogil:
    """The resampler for an RGB or gray frame: convert the pixel format at the source size
    if needed (an exact shuffle), then resize into dst."""
    cdef const AVFrame *from_ = src
    cdef int ret
    cdef int ch = _packed8_channels(dst_fmt)
    if src.format != dst_fmt:
        if _conv_frame(s, src, dst_fmt, err) < 0:
            return -1
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
    return resample_into(&s.rs, from_.data[0], from_.linesize[0], from_.width, from_.height, ch, ch,
                         ext.x if ext != NULL else 0, ext.y if ext != NULL else 0,
                         ext.w if ext != NULL else from_.width,
                         ext.h if ext != NULL else from_.height, g, dst_fmt, dst, dst_linesize, err)


cdef void _plane_offsets(const AVPixFmtDescriptor *d, int x, int y, int64_t *off,
                         const int *linesize) noexcept nogil:
    """Byte offset of pixel (x, y) in each plane of a format that is not paletted or bit-packed."""
    cdef int p, c, hs, vs
    for p in range(4):
        off[p] = 0
    for c in range(d.nb_components):
        p = d.comp[c].plane
        hs = vs = 0
        if is_yuv(d) and (c == 1 or c == 2):
            hs, vs = d.log2_chroma_w, d.log2_chroma_h
        off[p] = <int64_t>(y >> vs) * linesize[p] + <int64_t>(x >> hs) * d.comp[c].step


cdef int _set_colorspace(SwsContext *sws, const AVFrame *src) noexcept nogil:
    """Give swscale the frame's YUV range and matrix.

    A context is cached between images, so the details an earlier frame asked for
    must not stay: every call states what this frame needs (full range for yuvj*
    formats and frames that say so, limited otherwise; grey, which has no chroma and
    comes from image formats (PGM, PNG, TIFF, JPEG 2000 leave the range unset), is full
    range unless the frame says limited; BT.709 or BT.601), and changes the context
    only when it differs (setting details re-initialises tables).
    """
    cdef int *inv_table
    cdef int *table
    cdef int src_range, dst_range, brightness, contrast, saturation
    cdef const int *want_table
    cdef int want_range
    cdef AVPixelFormat fmt = <AVPixelFormat>src.format
    cdef const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(fmt)
    if sws_getColorspaceDetails(sws, &inv_table, &src_range, &table, &dst_range,
                                &brightness, &contrast, &saturation) < 0:
        return 0  # not a YUV conversion
    if d != NULL and _is_gray(d):
        want_range = 0 if src.color_range == AVCOL_RANGE_MPEG else 1
    else:
        want_range = 1 if (src.color_range == AVCOL_RANGE_JPEG or fmt in (
            AV_PIX_FMT_YUVJ420P, AV_PIX_FMT_YUVJ422P, AV_PIX_FMT_YUVJ444P, AV_PIX_FMT_YUVJ440P,
            AV_PIX_FMT_YUVJ411P)) else 0
    want_table = sws_getCoefficients(SWS_CS_ITU709 if src.colorspace == AVCOL_SPC_BT709
                                     else SWS_CS_DEFAULT)
    if want_range == src_range and memcmp(want_table, inv_table, 4 * sizeof(int)) == 0:
        return 0
    return sws_setColorspaceDetails(sws, want_table, want_range, table, dst_range,
                                    brightness, contrast, saturation)


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
        if is_yuv(d) and (c == 1 or c == 2):
            hs, vs = d.log2_chroma_w, d.log2_chroma_h
        if d.flags & AV_PIX_FMT_FLAG_PLANAR or d.nb_components == 1:
            av_image_copy_plane(dst[p] + doff[p], dst_linesize[p], from_.data[p] + soff[p],
                                from_.linesize[p], (-((-w) >> hs)) * d.comp[c].step, -((-h) >> vs))
        else:  # packed: one plane holds every component
            av_image_copy_plane(dst[0] + doff[0], dst_linesize[0], from_.data[0] + soff[0],
                                from_.linesize[0], w * d.comp[0].step, h)
            return


cdef void _crop_view(const AVPixFmtDescriptor *d, const AVFrame *src, const Extent *ext,
                     AVFrame *view) noexcept nogil:
    """view: the pixels of src under ext's box (a shallow copy: it points into src)."""
    cdef int64_t off[4]
    cdef int p, x, y, x1, y1
    cdef int ax = 1 << d.log2_chroma_w if is_yuv(d) else 1
    cdef int ay = 1 << d.log2_chroma_h if is_yuv(d) else 1
    x = <int>(ext.x + 0.5) // ax * ax
    y = <int>(ext.y + 0.5) // ay * ay
    x1 = min(src.width, <int>(ext.x + ext.w + 0.5))
    y1 = min(src.height, <int>(ext.y + ext.h + 0.5))
    view[0] = src[0]
    _plane_offsets(d, x, y, off, src.linesize)
    for p in range(4):
        if src.data[p] != NULL:
            view.data[p] = src.data[p] + off[p]
    view.width = max(1, x1 - x)
    view.height = max(1, y1 - y)


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
                     const int *dst_linesize, Status *err) noexcept nogil:
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
    cdef AVFrame view
    if sd == NULL or dd == NULL or sd.flags & AV_PIX_FMT_FLAG_HWACCEL:
        return fail(err, ERR_FILTER, "filter", "sws_scale", 0, "unsupported pixel format")
    if (_packed8_channels(dst_fmt) and _wide(sd) and src.color_range != AVCOL_RANGE_MPEG
            and (_is_gray(sd) or dst_fmt != AV_PIX_FMT_GRAY8)):
        # 9-16 bit grey (full range) or RGB to 8 bits, rounded; then as an 8-bit frame
        if _wide_to_packed8(s, src, sd, dst_fmt, err) < 0:
            return -1
        src, sd = s.conv, dd
    elif dst_fmt == AV_PIX_FMT_GRAY8 and sd.flags & AV_PIX_FMT_FLAG_PAL and src.data[1] != NULL:
        if _pal8_to_gray8(s, src, err) < 0:
            return -1
        src, sd = s.conv, dd
    # RGB and gray go through the cubic resampler (swscale's RGB input path is slow, and
    # in FFmpeg 5.1 gets the last column of some small outputs wrong).
    if spec.cubic and _packed8_channels(dst_fmt) and _rgb_or_gray8(sd):
        return _resample_frame(s, src, ext, g, dst_fmt, dst, dst_linesize, err)
    if ext != NULL and ext.cropped:
        # swscale takes whole frames: a view of the box, its corner and size rounded to
        # whole pixels (and its corner to whole chroma samples)
        _crop_view(sd, src, ext, &view)
        src = &view
        ew, eh = view.width, view.height
    fw = max(g.sw, <int>(g.sw * src.width / ew + 0.5))
    fh = max(g.sh, <int>(g.sh * src.height / eh + 0.5))
    # The part of the scaled image inside the output.
    vx0, vx1 = max(0, -g.ox), min(g.sw, g.out_w - g.ox)
    vy0, vy1 = max(0, -g.oy), min(g.sh, g.out_h - g.oy)
    if vx1 - vx0 < g.out_w or vy1 - vy0 < g.out_h:
        fill_black(dst_fmt, g.out_w, g.out_h, dst, dst_linesize)
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
                        AVFrame *out, Status *err) noexcept nogil:
    """Scale src into a new frame out (unreferenced on entry)."""
    cdef Geometry g
    cdef int ret
    cdef Extent own
    cdef AVPixelFormat fmt = spec.out_fmt if spec.out_fmt != AV_PIX_FMT_NONE else <AVPixelFormat>src.format
    if ext == NULL:
        extent_of(src, &own)
        ext = &own
    if ext_geometry(spec, ext, &g, err) < 0:
        return -1
    out.width, out.height, out.format = g.out_w, g.out_h, fmt
    ret = av_frame_get_buffer(out, 0)
    if ret < 0:
        return fail(err, ERR_NOMEM, "filter", "av_frame_get_buffer", ret, NULL)
    return scale_frame(s, spec, src, ext, &g, fmt, out.data, out.linesize, err)



cdef AVPixelFormat oriented_format(AVPixelFormat fmt, int orient) noexcept nogil:
    """The format of a frame of fmt turned by EXIF orientation orient: fmt, or for a
    transpose of chroma subsampled unequally, the transposed subsampling (yuv422p and
    yuv440p, in every depth FFmpeg has both); AV_PIX_FMT_NONE when there is none or the
    format's pixels are not whole bytes."""
    cdef const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(fmt)
    cdef const AVPixFmtDescriptor *t
    cdef bint swap, mx, my
    cdef char name[64]
    cdef const char *n
    cdef char *at
    cdef AVPixelFormat out
    if d == NULL or d.flags & (AV_PIX_FMT_FLAG_BITSTREAM | AV_PIX_FMT_FLAG_HWACCEL):
        return AV_PIX_FMT_NONE
    orient_axes(orient, &swap, &mx, &my)
    if not swap or not is_yuv(d) or d.log2_chroma_w == d.log2_chroma_h:
        return fmt
    n = av_get_pix_fmt_name(fmt)
    if n == NULL or strlen(n) >= sizeof(name):
        return AV_PIX_FMT_NONE
    memcpy(name, n, strlen(n) + 1)
    at = strstr(name, "422")
    if at != NULL:
        at[1], at[2] = ord('4'), ord('0')
    else:
        at = strstr(name, "440")
        if at == NULL:
            return AV_PIX_FMT_NONE
        at[1], at[2] = ord('2'), ord('2')
    out = av_get_pix_fmt(name)
    t = av_pix_fmt_desc_get(out)
    if (t == NULL or t.log2_chroma_w != d.log2_chroma_h or t.log2_chroma_h != d.log2_chroma_w
            or t.comp[0].depth != d.comp[0].depth or t.nb_components != d.nb_components):
        return AV_PIX_FMT_NONE
    return out


cdef void orient_copy(const AVFrame *src, int orient, uint8_t **dst,
                      const int *linesize) noexcept nogil:
    """Write src, an image in its stored orientation, into dst turned by EXIF orientation
    orient (dst: oriented_format's format, src's size transposed for 5..8), plane by plane."""
    cdef const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(<AVPixelFormat>src.format)
    cdef bint swap, mx, my
    cdef int p, c, hs, vs, bpp
    cdef bint found
    orient_axes(orient, &swap, &mx, &my)
    for p in range(4):
        if src.data[p] == NULL or dst[p] == NULL:
            continue
        if d.flags & AV_PIX_FMT_FLAG_PAL and p == 1:
            memcpy(dst[1], src.data[1], 1024)        # the palette
            continue
        found = False
        hs = vs = bpp = 0
        for c in range(d.nb_components):
            if d.comp[c].plane == p:
                found = True
                bpp = d.comp[c].step
                if is_yuv(d) and (c == 1 or c == 2):
                    hs, vs = d.log2_chroma_w, d.log2_chroma_h
                break
        if not found:
            continue
        spdl_orient_plane(src.data[p], src.linesize[p], -((-src.width) >> hs),
                          -((-src.height) >> vs), dst[p], linesize[p], bpp, swap, mx, my)
