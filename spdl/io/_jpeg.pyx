# cython: language_level=3
"""The JPEG fast path: libjpeg-turbo, reduced in the DCT.

When the output is smaller than the image, the inverse DCT produces the image
at a reduced size (1/8 .. 1/1, libjpeg-turbo's scaling factors), the smallest
one still at least as large as the scaled output, so the entropy decoding is
all the full-size work left. Two ways on from there:

- jpeg_decode_into: to packed RGB/BGR/RGBA/gray (libjpeg-turbo's own SIMD
  upsampling and colour conversion), then our cubic resampler
  (csrc/resample.h) writes the visible window straight into the output. For
  the bicubic filter into those formats: the loaders' default.
- jpeg_decode: to YUV planes, for swscale to convert and resize (the other
  filters and formats).

CMYK and YCCK images are left to FFmpeg.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy

from spdl.io._error cimport ERR_DECODE, ERR_NOMEM, ERR_TOO_LARGE, ErrorInfo, fail
from spdl.io._scale cimport Extent, Geometry, ScaleSpec, compute_geometry, fill_black
from spdl.io.includes.libavutil cimport (
    AV_PIX_FMT_BGR24, AV_PIX_FMT_GRAY8, AV_PIX_FMT_RGB24, AV_PIX_FMT_RGBA, AV_PIX_FMT_YUVJ411P, AV_PIX_FMT_YUVJ420P, AV_PIX_FMT_YUVJ422P,
    AV_PIX_FMT_YUVJ440P, AV_PIX_FMT_YUVJ444P, AVCOL_RANGE_JPEG, AVCOL_SPC_BT470BG, AVFrame,
    AVPixelFormat, av_frame_get_buffer, av_frame_unref,
)
from spdl.io.includes.turbojpeg cimport (
    TJCS_CMYK, TJCS_YCCK, TJERR_WARNING, TJFLAG_LIMITSCANS, TJSAMP_411, TJSAMP_420,
    TJSAMP_422, TJSAMP_440, TJSAMP_444, TJSAMP_GRAY, tjDecompressHeader3,
    tjDecompressToYUVPlanes, tjDestroy, tjGetErrorCode, tjGetErrorStr2, tjGetScalingFactors,
    tjDecompress2, tjInitDecompress, tjscalingfactor, TJPF_BGR, TJPF_BGRX, TJPF_GRAY, TJPF_RGB,
    TJPF_RGBA, TJPF_RGBX,
)

cdef extern from "csrc/resample.h" nogil:
    ctypedef struct spdl_kernel:
        int n
        int taps
        int *start
        short *w
    int spdl_kernel_make(spdl_kernel *k, int in_n, double extent, int out_total, int out0, int n)
    void spdl_kernel_free(spdl_kernel *k)
    void spdl_resample_v(const uint8_t *src, ptrdiff_t src_stride, int row_bytes,
                         const spdl_kernel *kv, uint8_t *tmp, int32_t *acc)
    void spdl_resample_h(const uint8_t *tmp, int tmp_row_bytes, int rows, int channels,
                         const spdl_kernel *kh, uint8_t *dst, ptrdiff_t dst_stride)
    void spdl_resample_h4(const uint8_t *tmp, int tmp_row_bytes, int rows, int out_ch,
                          const spdl_kernel *kh, uint8_t *dst, ptrdiff_t dst_stride)

cdef extern from "<string.h>" nogil:
    char *strstr(const char *haystack, const char *needle)

cdef extern from "<stdio.h>":
    int snprintf(char *buf, size_t n, const char *fmt, ...) nogil


cdef void jpeg_init(JpegDecoder *j) noexcept nogil:
    j.handle = NULL
    j.pixels = j.tmp = NULL
    j.acc = NULL
    j.pixels_cap = j.tmp_cap = j.acc_cap = 0


cdef void jpeg_free(JpegDecoder *j) noexcept nogil:
    if j.handle != NULL:
        tjDestroy(j.handle)
        j.handle = NULL
    free(j.pixels)
    free(j.tmp)
    free(j.acc)
    jpeg_init(j)


cdef int _reserve(void **p, size_t *cap, size_t need) noexcept nogil:
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


cdef inline int _scaled(int dim, const tjscalingfactor *f) noexcept nogil:
    return (dim * f.num + f.denom - 1) // f.denom


cdef const tjscalingfactor *_pick_factor(int iw, int ih, int need_w, int need_h) noexcept nogil:
    """The smallest scaling factor <= 1 that keeps the image at least need_w x need_h."""
    cdef int n = 0, i
    cdef const tjscalingfactor *f = tjGetScalingFactors(&n)
    cdef const tjscalingfactor *best = NULL
    for i in range(n):
        if f[i].num > f[i].denom:
            continue
        if _scaled(iw, &f[i]) < need_w or _scaled(ih, &f[i]) < need_h:
            continue
        if best == NULL or f[i].num * best.denom < best.num * f[i].denom:
            best = &f[i]
    return best


cdef int _header(JpegDecoder *j, const unsigned char *data, int size, long long max_pixels,
                 int *iw, int *ih, int *subsamp, ErrorInfo *err) noexcept nogil:
    """Read the size; 0, -1 with err set, or JPEG_NOT_HANDLED."""
    cdef int colorspace
    cdef char msg[128]
    if j.handle == NULL:
        j.handle = tjInitDecompress()
        if j.handle == NULL:
            return fail(err, ERR_NOMEM, "decode", "tjInitDecompress", 0, "out of memory")
    if tjDecompressHeader3(j.handle, data, size, iw, ih, subsamp, &colorspace) < 0:
        return JPEG_NOT_HANDLED  # FFmpeg may still make sense of it, or say why not
    if colorspace == TJCS_CMYK or colorspace == TJCS_YCCK:
        return JPEG_NOT_HANDLED
    if <long long>iw[0] * ih[0] > max_pixels:
        snprintf(msg, sizeof(msg), "the image is %dx%d, more than max_pixels (%lld)", iw[0], ih[0],
                 max_pixels)
        return fail(err, ERR_TOO_LARGE, "decode", "tjDecompressHeader3", 0, msg)
    return 0


cdef int _check_decode(JpegDecoder *j, ErrorInfo *err) noexcept nogil:
    """After a failed tjDecompress*: -1 with err set, or 0 for a harmless warning."""
    cdef char msg[200]
    if tjGetErrorCode(j.handle) != TJERR_WARNING:
        snprintf(msg, sizeof(msg), "%s", tjGetErrorStr2(j.handle))
        return fail(err, ERR_DECODE, "decode", "tjDecompress", 0, msg)
    # Warnings are recoverable damage (extraneous bytes ...), except running out of data.
    if strstr(tjGetErrorStr2(j.handle), "Premature end") != NULL:
        return fail(err, ERR_DECODE, "decode", "tjDecompress", 0,
                    "the JPEG data is truncated (premature end of data)")
    return 0


cdef int jpeg_decode(JpegDecoder *j, const unsigned char *data, int size, const ScaleSpec *spec,
                     long long max_pixels, AVFrame *frame, Extent *ext,
                     ErrorInfo *err) noexcept nogil:
    """Decode a JPEG into frame (YUV or gray, full range), reduced in the DCT when spec allows.

    Returns 0, -1 with err set, or JPEG_NOT_HANDLED for images FFmpeg should decode.
    """
    cdef int iw, ih, subsamp, colorspace, ret, w, h
    cdef Geometry g
    cdef ErrorInfo ignored
    cdef const tjscalingfactor *f = NULL
    cdef AVPixelFormat fmt
    cdef char msg[200]
    ret = _header(j, data, size, max_pixels, &iw, &ih, &subsamp, err)
    if ret != 0:
        return ret
    if subsamp == TJSAMP_444:
        fmt = AV_PIX_FMT_YUVJ444P
    elif subsamp == TJSAMP_422:
        fmt = AV_PIX_FMT_YUVJ422P
    elif subsamp == TJSAMP_420:
        fmt = AV_PIX_FMT_YUVJ420P
    elif subsamp == TJSAMP_GRAY:
        fmt = AV_PIX_FMT_GRAY8
    elif subsamp == TJSAMP_440:
        fmt = AV_PIX_FMT_YUVJ440P
    elif subsamp == TJSAMP_411:
        fmt = AV_PIX_FMT_YUVJ411P
    else:
        return JPEG_NOT_HANDLED
    w, h = iw, ih
    ext.orig_w, ext.orig_h = iw, ih
    ext.w, ext.h = iw, ih
    if spec != NULL and compute_geometry(spec, iw, ih, &g, &ignored) == 0:
        f = _pick_factor(iw, ih, g.sw, g.sh)
        if f != NULL:
            w, h = _scaled(iw, f), _scaled(ih, f)
            ext.w = <double>iw * f.num / f.denom
            ext.h = <double>ih * f.num / f.denom
    frame.width, frame.height, frame.format = w, h, fmt
    ret = av_frame_get_buffer(frame, 0)
    if ret < 0:
        return fail(err, ERR_NOMEM, "decode", "av_frame_get_buffer", ret, NULL)
    frame.color_range = AVCOL_RANGE_JPEG
    frame.colorspace = AVCOL_SPC_BT470BG
    # LIMITSCANS: a progressive JPEG with hundreds of scans is refused, not decoded for minutes.
    if tjDecompressToYUVPlanes(j.handle, data, size, frame.data, w, frame.linesize, h,
                               TJFLAG_LIMITSCANS) < 0 and _check_decode(j, err) < 0:
        av_frame_unref(frame)
        return -1
    return 0


cdef bint jpeg_packed_format(AVPixelFormat fmt) noexcept nogil:
    """Whether jpeg_decode_into can write this format."""
    return fmt in (AV_PIX_FMT_RGB24, AV_PIX_FMT_BGR24, AV_PIX_FMT_RGBA, AV_PIX_FMT_GRAY8)


cdef int jpeg_decode_into(JpegDecoder *j, const unsigned char *data, int size,
                          const ScaleSpec *spec, long long max_pixels, AVPixelFormat out_fmt,
                          AVFrame *out, uint8_t **dst, const int *linesize,
                          ErrorInfo *err) noexcept nogil:
    """Decode a JPEG and resample it by spec into out (allocated here) or, if out is NULL, dst.

    Returns 0, -1 with err set, or JPEG_NOT_HANDLED.
    """
    cdef int iw, ih, subsamp, ret, w, h, pf, ch, vx0, vx1, vy0, vy1, col0, col1, i, y
    cdef int pf4, ch_in
    cdef bint resize
    cdef Geometry g
    cdef const tjscalingfactor *f
    cdef double ew, eh
    cdef spdl_kernel kh, kv
    cdef size_t pitch, span
    cdef uint8_t *o
    # pf: the decoder's format when the output is a copy; pf4: when it is resampled
    # (4-byte pixels, so the resampler does a pixel's channels as one vector).
    if out_fmt == AV_PIX_FMT_RGB24:
        pf, pf4, ch = TJPF_RGB, TJPF_RGBX, 3
    elif out_fmt == AV_PIX_FMT_BGR24:
        pf, pf4, ch = TJPF_BGR, TJPF_BGRX, 3
    elif out_fmt == AV_PIX_FMT_RGBA:
        pf, pf4, ch = TJPF_RGBA, TJPF_RGBA, 4
    elif out_fmt == AV_PIX_FMT_GRAY8:
        pf, pf4, ch = TJPF_GRAY, TJPF_GRAY, 1
    else:
        return JPEG_NOT_HANDLED
    ret = _header(j, data, size, max_pixels, &iw, &ih, &subsamp, err)
    if ret != 0:
        return ret
    if compute_geometry(spec, iw, ih, &g, err) < 0:
        return -1
    f = _pick_factor(iw, ih, g.sw, g.sh)
    w, h = (_scaled(iw, f), _scaled(ih, f)) if f != NULL else (iw, ih)
    ew = <double>iw * f.num / f.denom if f != NULL else iw
    eh = <double>ih * f.num / f.denom if f != NULL else ih
    if out != NULL:
        out.width, out.height, out.format = g.out_w, g.out_h, out_fmt
        ret = av_frame_get_buffer(out, 0)
        if ret < 0:
            return fail(err, ERR_NOMEM, "decode", "av_frame_get_buffer", ret, NULL)
        dst, linesize = out.data, out.linesize
    resize = not (w == g.sw and h == g.sh and ew == w and eh == h)
    if resize and ch > 1:
        pf, ch_in = pf4, 4
    else:
        ch_in = ch
    pitch = <size_t>w * ch_in
    if _reserve(<void **>&j.pixels, &j.pixels_cap, pitch * h) < 0:
        return fail(err, ERR_NOMEM, "decode", "malloc", 0, "out of memory")
    if tjDecompress2(j.handle, data, size, j.pixels, w, <int>pitch, h, pf, TJFLAG_LIMITSCANS) < 0:
        if _check_decode(j, err) < 0:
            return -1
    # The part of the scaled image inside the output.
    vx0, vx1 = max(0, -g.ox), min(g.sw, g.out_w - g.ox)
    vy0, vy1 = max(0, -g.oy), min(g.sh, g.out_h - g.oy)
    if vx1 - vx0 < g.out_w or vy1 - vy0 < g.out_h:
        fill_black(out_fmt, g.out_w, g.out_h, dst, linesize)
    if vx1 <= vx0 or vy1 <= vy0:
        return 0
    o = dst[0] + <size_t>(g.oy + vy0) * linesize[0] + <size_t>(g.ox + vx0) * ch
    if not resize:  # copy the window
        span = <size_t>(vx1 - vx0) * ch
        for y in range(vy0, vy1):
            memcpy(o + <size_t>(y - vy0) * linesize[0], j.pixels + y * pitch + <size_t>vx0 * ch, span)
        return 0
    if spdl_kernel_make(&kh, w, ew, g.sw, vx0, vx1 - vx0) < 0:
        return fail(err, ERR_NOMEM, "filter", "resample", 0, "out of memory")
    if spdl_kernel_make(&kv, h, eh, g.sh, vy0, vy1 - vy0) < 0:
        spdl_kernel_free(&kh)
        return fail(err, ERR_NOMEM, "filter", "resample", 0, "out of memory")
    # Only the columns the horizontal kernel reads go through the vertical pass.
    col0, col1 = kh.start[0], kh.start[kh.n - 1] + kh.taps
    for i in range(kh.n):
        kh.start[i] -= col0
    span = <size_t>(col1 - col0) * ch_in
    if (_reserve(<void **>&j.tmp, &j.tmp_cap, span * kv.n) < 0
            or _reserve(<void **>&j.acc, &j.acc_cap, span * sizeof(int32_t)) < 0):
        spdl_kernel_free(&kh)
        spdl_kernel_free(&kv)
        return fail(err, ERR_NOMEM, "filter", "resample", 0, "out of memory")
    spdl_resample_v(j.pixels + <size_t>col0 * ch_in, pitch, <int>span, &kv, j.tmp, j.acc)
    if ch_in == 4:
        spdl_resample_h4(j.tmp, <int>span, kv.n, ch, &kh, o, linesize[0])
    else:
        spdl_resample_h(j.tmp, <int>span, kv.n, ch, &kh, o, linesize[0])
    spdl_kernel_free(&kh)
    spdl_kernel_free(&kv)
    return 0
