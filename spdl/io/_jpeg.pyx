# cython: language_level=3
"""The JPEG fast path: libjpeg-turbo decodes straight to YUV planes, scaled in the DCT.

When the output is smaller than the image, the inverse DCT produces the image
at a reduced size (1/8 .. 1/1, libjpeg-turbo's scaling factors), the smallest
one still at least as large as the scaled output, so the entropy decoding is
all the full-size work left; swscale then converts and resizes the small YUV
image. CMYK and YCCK images are left to FFmpeg.
"""

from libc.stdint cimport int64_t

from spdl.io._error cimport ERR_DECODE, ERR_NOMEM, ERR_TOO_LARGE, ErrorInfo, fail
from spdl.io._scale cimport Extent, Geometry, ScaleSpec, compute_geometry
from spdl.io.includes.libavutil cimport (
    AV_PIX_FMT_GRAY8, AV_PIX_FMT_YUVJ411P, AV_PIX_FMT_YUVJ420P, AV_PIX_FMT_YUVJ422P,
    AV_PIX_FMT_YUVJ440P, AV_PIX_FMT_YUVJ444P, AVCOL_RANGE_JPEG, AVCOL_SPC_BT470BG, AVFrame,
    AVPixelFormat, av_frame_get_buffer, av_frame_unref,
)
from spdl.io.includes.turbojpeg cimport (
    TJCS_CMYK, TJCS_YCCK, TJERR_WARNING, TJFLAG_LIMITSCANS, TJSAMP_411, TJSAMP_420,
    TJSAMP_422, TJSAMP_440, TJSAMP_444, TJSAMP_GRAY, tjDecompressHeader3,
    tjDecompressToYUVPlanes, tjDestroy, tjGetErrorCode, tjGetErrorStr2, tjGetScalingFactors,
    tjInitDecompress, tjscalingfactor,
)

cdef extern from "<string.h>" nogil:
    char *strstr(const char *haystack, const char *needle)

cdef extern from "<stdio.h>":
    int snprintf(char *buf, size_t n, const char *fmt, ...) nogil


cdef void jpeg_init(JpegDecoder *j) noexcept nogil:
    j.handle = NULL


cdef void jpeg_free(JpegDecoder *j) noexcept nogil:
    if j.handle != NULL:
        tjDestroy(j.handle)
        j.handle = NULL


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
    if j.handle == NULL:
        j.handle = tjInitDecompress()
        if j.handle == NULL:
            return fail(err, ERR_NOMEM, "decode", "tjInitDecompress", 0, "out of memory")
    if tjDecompressHeader3(j.handle, data, size, &iw, &ih, &subsamp, &colorspace) < 0:
        return JPEG_NOT_HANDLED  # FFmpeg may still make sense of it, or say why not
    if colorspace == TJCS_CMYK or colorspace == TJCS_YCCK:
        return JPEG_NOT_HANDLED
    if <long long>iw * ih > max_pixels:
        snprintf(msg, sizeof(msg), "the image is %dx%d, more than max_pixels (%lld)", iw, ih,
                 max_pixels)
        return fail(err, ERR_TOO_LARGE, "decode", "tjDecompressHeader3", 0, msg)
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
                               TJFLAG_LIMITSCANS) < 0:
        if tjGetErrorCode(j.handle) != TJERR_WARNING:
            snprintf(msg, sizeof(msg), "%s", tjGetErrorStr2(j.handle))
            av_frame_unref(frame)
            return fail(err, ERR_DECODE, "decode", "tjDecompressToYUVPlanes", 0, msg)
        # Warnings are recoverable damage (extraneous bytes ...), except running out of data.
        if strstr(tjGetErrorStr2(j.handle), "Premature end") != NULL:
            av_frame_unref(frame)
            return fail(err, ERR_DECODE, "decode", "tjDecompressToYUVPlanes", 0,
                        "the JPEG data is truncated (premature end of data)")
    return 0
