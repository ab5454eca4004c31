# cython: language_level=3
"""The JPEG fast path: libjpeg-turbo, reduced in the DCT.

When the output is smaller than the image, the inverse DCT produces the image
at a reduced size (1/8 .. 1/1, libjpeg-turbo's scaling factors), the smallest
one still at least as large as the scaled output, so the entropy decoding is
all the full-size work left. Two ways on from there:

- jpeg_decode_into: to packed RGB/BGR/RGBA/gray (libjpeg-turbo's own SIMD
  upsampling and colour conversion), then the cubic resampler
  (_scale.resample_into) writes the visible window straight into the output. For
  the bicubic filter into those formats: the loaders' default.
- jpeg_decode: to YUV planes, for swscale to convert and resize (the other
  filters and formats).

A crop (a training plan's box) is decoded from its region only: libjpeg's
partial decompression (csrc/jpeg_region.h) at the DCT scale the box allows,
its columns and rows alone, nothing below its last row; the resampler then maps
the box onto the output.

CMYK and YCCK images are left to FFmpeg.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.stdlib cimport free
from libc.string cimport memcpy

from spdl.io._status cimport ERR_DECODE, ERR_NOMEM, Status, fail, fail_too_large
from spdl.io._geometry cimport (
    Crop, Extent, Geometry, ScaleSpec, compute_geometry, crop_extent, ext_geometry, resolve_crop,
)
from spdl.io._resample cimport resample_fast3, resample_into, reserve
from spdl.io._scale cimport Scaler
from spdl.io.includes.libavutil cimport (
    AV_PIX_FMT_BGR24, AV_PIX_FMT_GRAY8, AV_PIX_FMT_NONE, AV_PIX_FMT_RGB24, AV_PIX_FMT_RGBA, AV_PIX_FMT_YUVJ411P, AV_PIX_FMT_YUVJ420P, AV_PIX_FMT_YUVJ422P,
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

cdef extern from "csrc/jpeg_message.h" nogil:
    int spdl_jpeg_message_code(const char *msg)
    int SPDL_JWRN_EXTRANEOUS_DATA, SPDL_JWRN_JFIF_MAJOR, SPDL_JTRC_JFIF_BADTHUMBNAILSIZE

cdef extern from "<stdio.h>":
    int snprintf(char *buf, size_t n, const char *fmt, ...) nogil

cdef extern from "csrc/jpeg_region.h" nogil:
    ctypedef struct spdl_jregion:
        char *message
    ctypedef unsigned char *(*spdl_jregion_alloc)(void *ctx, size_t nbytes) noexcept nogil
    spdl_jregion *spdl_jregion_new()
    void spdl_jregion_free(spdl_jregion *r)
    int spdl_jregion_header(spdl_jregion *r, const unsigned char *data, unsigned long size,
                            int *w, int *h)
    int spdl_jregion_decode(spdl_jregion *r, int num, int out_space, int ch, int x0, int cols,
                            int y0, int rows, spdl_jregion_alloc alloc, void *ctx, int *xs,
                            int *ws)
    int SPDL_JREGION_RETRY
    int JCS_EXT_RGB, JCS_EXT_RGBX, JCS_EXT_BGR, JCS_EXT_BGRX, JCS_EXT_RGBA, JCS_GRAYSCALE

cdef extern from "<math.h>" nogil:
    double floor(double x)
    double ceil(double x)


cdef void jpeg_init(JpegDecoder *j) noexcept nogil:
    j.handle = NULL
    j.pixels = NULL
    j.pixels_cap = 0
    j.region = NULL


cdef void jpeg_free(JpegDecoder *j) noexcept nogil:
    if j.handle != NULL:
        tjDestroy(j.handle)
        j.handle = NULL
    free(j.pixels)
    spdl_jregion_free(<spdl_jregion *>j.region)
    jpeg_init(j)


cdef bint _region_decode = True


cdef void set_jpeg_region(bint on) noexcept nogil:
    """Whether crops are decoded from their region only (else the whole image, at the
    crop's DCT scale); switched by tests and benchmarks only (spdl.io._testing)."""
    global _region_decode
    _region_decode = on


cdef inline int _scaled(int dim, const tjscalingfactor *f) noexcept nogil:
    return (dim * f.num + f.denom - 1) // f.denom


cdef const tjscalingfactor *_pick_factor(int iw, int ih, int need_w, int need_h) noexcept nogil:
    """The smallest of the factors 1/8, 1/4, 1/2 and 1 that keeps the image at least
    need_w x need_h.

    libjpeg-turbo has SIMD inverse DCTs only for these; the others (3/8, 5/8, 3/4,
    7/8) run plain C and decode slower than the full size does (an ImageNet-sized
    image that would take 5/8: 1.11 ms at 5/8, 0.72 ms at 1/1), so a larger image
    and more resampling is the faster way.
    """
    cdef int n = 0, i
    cdef const tjscalingfactor *f = tjGetScalingFactors(&n)
    cdef const tjscalingfactor *best = NULL
    for i in range(n):
        if f[i].num != 1 or f[i].denom > 8:
            continue
        # The image's true extent at this factor, not the rounded-up pixel count,
        # must cover the output (2 px at 5/8 is 1.25 px of image in 2 px).
        if <long long>iw * f[i].num < <long long>need_w * f[i].denom:
            continue
        if <long long>ih * f[i].num < <long long>need_h * f[i].denom:
            continue
        if best == NULL or f[i].num * best.denom < best.num * f[i].denom:
            best = &f[i]
    return best


cdef int _header(JpegDecoder *j, const unsigned char *data, int size, long long max_pixels,
                 int *iw, int *ih, int *subsamp, Status *err) noexcept nogil:
    """Read the size; 0, -1 with err set, or JPEG_NOT_HANDLED."""
    cdef int colorspace
    if j.handle == NULL:
        j.handle = tjInitDecompress()
        if j.handle == NULL:
            return fail(err, ERR_NOMEM, "decode", "tjInitDecompress", 0, "out of memory")
    iw[0] = ih[0] = 0
    # A stream of tables only (no image) "succeeds" without setting the size: check it.
    if (tjDecompressHeader3(j.handle, data, size, iw, ih, subsamp, &colorspace) < 0
            or iw[0] <= 0 or ih[0] <= 0):
        tjDestroy(j.handle)  # nothing of this image may reach the next one
        j.handle = NULL
        return JPEG_NOT_HANDLED  # FFmpeg may still make sense of it, or say why not
    if colorspace == TJCS_CMYK or colorspace == TJCS_YCCK:
        return JPEG_NOT_HANDLED
    if <long long>iw[0] * ih[0] > max_pixels:
        return fail_too_large(err, "tjDecompressHeader3", "the image", iw[0], ih[0], max_pixels)
    return 0


cdef int _after_failure(JpegDecoder *j, Status *err) noexcept nogil:
    """After tjDecompress* returned -1: 0 when only a harmless warning was raised,
    JPEG_NOT_HANDLED to let FFmpeg decode the image (and judge it) after any other
    warning, -1 with err set after a fatal error.

    libjpeg-turbo 2.x reports "warning" whenever one came first, even when a fatal error
    followed and the image is only partly written, so a warning cannot be trusted: the
    image goes to FFmpeg, whose decoder and our checks of its log say what is wrong.
    """
    cdef char msg[200]
    cdef bint warning = tjGetErrorCode(j.handle) == TJERR_WARNING
    snprintf(msg, sizeof(msg), "%s", tjGetErrorStr2(j.handle))
    cdef int code = spdl_jpeg_message_code(msg)  # libjpeg's J_MESSAGE_CODE, or -1
    # The handle remembers that a warning happened and would report it again for the
    # next image: start the next one with a fresh handle.
    tjDestroy(j.handle)
    j.handle = NULL
    if warning:
        # The last message is the warning itself when nothing fatal followed it; these
        # are what real files carry and leave the image whole.
        if (code == SPDL_JWRN_EXTRANEOUS_DATA or code == SPDL_JWRN_JFIF_MAJOR
                or code == SPDL_JTRC_JFIF_BADTHUMBNAILSIZE):
            return 0
        return JPEG_NOT_HANDLED
    return fail(err, ERR_DECODE, "decode", "tjDecompress", code if code > 0 else 0, msg)


cdef AVPixelFormat _planes_format(int subsamp) noexcept nogil:
    """The frame format of tjDecompressToYUVPlanes's output for a subsampling, or NONE."""
    cdef int i
    for i in range(6):
        if _SUBSAMP[i] == subsamp:
            return _PLANES[i]
    return AV_PIX_FMT_NONE


cdef int _SUBSAMP[6]
cdef AVPixelFormat _PLANES[6]
_SUBSAMP[:] = [TJSAMP_444, TJSAMP_422, TJSAMP_420, TJSAMP_GRAY, TJSAMP_440, TJSAMP_411]
_PLANES[:] = [AV_PIX_FMT_YUVJ444P, AV_PIX_FMT_YUVJ422P, AV_PIX_FMT_YUVJ420P, AV_PIX_FMT_GRAY8,
              AV_PIX_FMT_YUVJ440P, AV_PIX_FMT_YUVJ411P]


cdef int jpeg_decode(JpegDecoder *j, const unsigned char *data, int size, const ScaleSpec *spec,
                     long long max_pixels, Py_ssize_t index, Crop *crop, AVFrame *frame,
                     Extent *ext, Status *err) noexcept nogil:
    """Decode a JPEG into frame (YUV or gray, full range), reduced in the DCT when spec allows.
    crop (if not NULL) gets what spec does to image index; a crop box is decoded whole, at
    the scale the box allows.

    Returns 0, -1 with err set, or JPEG_NOT_HANDLED for images FFmpeg should decode.
    """
    cdef int iw, ih, subsamp, colorspace, ret, w, h
    cdef Geometry g
    cdef Status ignored
    cdef const tjscalingfactor *f = NULL
    cdef AVPixelFormat fmt
    cdef char msg[200]
    ret = _header(j, data, size, max_pixels, &iw, &ih, &subsamp, err)
    if ret != 0:
        return ret
    fmt = _planes_format(subsamp)
    if fmt == AV_PIX_FMT_NONE:
        return JPEG_NOT_HANDLED
    w, h = iw, ih
    ext.orig_w, ext.orig_h = iw, ih
    ext.x = ext.y = 0
    ext.w, ext.h = iw, ih
    ext.cropped = False
    if crop != NULL and resolve_crop(spec, index, iw, ih, crop, err) < 0:
        return -1
    if crop != NULL and crop.cropped:
        f = _pick_factor(crop.w, crop.h, spec.scale_w, spec.scale_h)
        if f != NULL:
            w, h = _scaled(iw, f), _scaled(ih, f)
            ext.w = <double>iw * f.num / f.denom
            ext.h = <double>ih * f.num / f.denom
    elif spec != NULL and compute_geometry(spec, iw, ih, &g, &ignored) == 0:
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
        ret = _after_failure(j, err)
        if ret != 0:
            av_frame_unref(frame)
            return ret
    return 0


cdef bint jpeg_packed_format(AVPixelFormat fmt) noexcept nogil:
    """Whether jpeg_decode_into can write this format."""
    return fmt in (AV_PIX_FMT_RGB24, AV_PIX_FMT_BGR24, AV_PIX_FMT_RGBA, AV_PIX_FMT_GRAY8)


cdef unsigned char *_region_buffer(void *ctx, size_t nbytes) noexcept nogil:
    cdef JpegDecoder *j = <JpegDecoder *>ctx
    if reserve(<void **>&j.pixels, &j.pixels_cap, nbytes) < 0:
        return NULL
    return j.pixels


cdef int _decode_region(JpegDecoder *j, const unsigned char *data, int size, int iw, int ih,
                        const tjscalingfactor *f, int space, int ch_in, const Crop *crop,
                        int *xs, int *ys, int *ws, int *hs, Status *err) noexcept nogil:
    """Decode the part of the image under crop's box (and a pixel around it, so that its edge
    pixels are upsampled as in a whole decode) at scale f into j.pixels. Returns 0, -1 with
    err set, or JPEG_NOT_HANDLED."""
    cdef spdl_jregion *r
    cdef int num = 8 * f.num // f.denom
    cdef int ow = _scaled(iw, f), oh = _scaled(ih, f), x0, x1, y0, y1, ret, w2, h2
    if j.region == NULL:
        j.region = spdl_jregion_new()
        if j.region == NULL:
            return fail(err, ERR_NOMEM, "decode", "jpeg_create_decompress", 0, "out of memory")
    r = <spdl_jregion *>j.region
    ret = spdl_jregion_header(r, data, size, &w2, &h2)
    if ret == 0 and (w2 != iw or h2 != ih):
        ret = SPDL_JREGION_RETRY  # TurboJPEG and libjpeg disagree: let FFmpeg judge
    if ret == 0:
        x0 = max(0, <int>floor(crop.x * f.num / <double>f.denom) - 1)
        y0 = max(0, <int>floor(crop.y * f.num / <double>f.denom) - 1)
        x1 = min(ow, <int>ceil((crop.x + crop.w) * f.num / <double>f.denom) + 1)
        y1 = min(oh, <int>ceil((crop.y + crop.h) * f.num / <double>f.denom) + 1)
        ret = spdl_jregion_decode(r, num, space, ch_in, x0, x1 - x0, y0, y1 - y0, _region_buffer,
                                  <void *>j, xs, ws)
        ys[0], hs[0] = y0, y1 - y0
    if ret == SPDL_JREGION_RETRY:
        return JPEG_NOT_HANDLED
    if ret == -2:
        return fail(err, ERR_NOMEM, "decode", "malloc", 0, "out of memory")
    if ret < 0:
        return fail(err, ERR_DECODE, "decode", "jpeg_read_scanlines", 0, r.message)
    return 0


cdef int jpeg_decode_into(JpegDecoder *j, Scaler *scaler, const unsigned char *data, int size,
                          const ScaleSpec *spec, long long max_pixels, Py_ssize_t index,
                          Crop *crop, AVPixelFormat out_fmt, AVFrame *out, uint8_t **dst,
                          const int *linesize, Status *err) noexcept nogil:
    """Decode a JPEG and resample it by spec into out (allocated here) or, if out is NULL, dst;
    crop gets what spec does to image index (a crop box: decoded from its region only).

    Returns 0, -1 with err set, or JPEG_NOT_HANDLED.
    """
    cdef int iw, ih, subsamp, ret, w, h, pf, ch, pf_rs, ch_in, space, xs = 0, ys = 0
    cdef bint resize
    cdef Geometry g
    cdef Extent ext
    cdef const tjscalingfactor *f
    cdef tjscalingfactor one
    cdef size_t pitch
    # pf: the decoder's format when the output is a copy; pf_rs: when it is resampled
    # (RGBX/BGRX where the resampler has vector passes only for 4-byte pixels).
    if out_fmt == AV_PIX_FMT_RGB24:
        pf, pf_rs, ch = TJPF_RGB, (TJPF_RGB if resample_fast3() else TJPF_RGBX), 3
    elif out_fmt == AV_PIX_FMT_BGR24:
        pf, pf_rs, ch = TJPF_BGR, (TJPF_BGR if resample_fast3() else TJPF_BGRX), 3
    elif out_fmt == AV_PIX_FMT_RGBA:
        pf, pf_rs, ch = TJPF_RGBA, TJPF_RGBA, 4
    elif out_fmt == AV_PIX_FMT_GRAY8:
        pf, pf_rs, ch = TJPF_GRAY, TJPF_GRAY, 1
    else:
        return JPEG_NOT_HANDLED
    ret = _header(j, data, size, max_pixels, &iw, &ih, &subsamp, err)
    if ret != 0:
        return ret
    if resolve_crop(spec, index, iw, ih, crop, err) < 0:
        return -1
    ext.orig_w, ext.orig_h = iw, ih
    ext.x = ext.y = 0
    ext.cropped = False
    if crop.cropped:
        f = _pick_factor(crop.w, crop.h, spec.scale_w, spec.scale_h)
    else:
        if compute_geometry(spec, iw, ih, &g, err) < 0:
            return -1
        f = _pick_factor(iw, ih, g.sw, g.sh)
    if f == NULL:
        one.num = one.denom = 1
        f = &one
    w, h = _scaled(iw, f), _scaled(ih, f)
    ext.w = <double>iw * f.num / f.denom
    ext.h = <double>ih * f.num / f.denom
    crop_extent(crop, &ext)
    if ext_geometry(spec, &ext, &g, err) < 0:
        return -1
    resize = not (w == g.sw and h == g.sh and ext.w == w and ext.h == h and not ext.cropped)
    if resize and pf_rs != pf:
        pf, ch_in = pf_rs, 4
    else:
        ch_in = ch
    if ext.cropped and _region_decode:
        space = (JCS_EXT_RGB if pf == TJPF_RGB else JCS_EXT_RGBX if pf == TJPF_RGBX
                 else JCS_EXT_BGR if pf == TJPF_BGR else JCS_EXT_BGRX if pf == TJPF_BGRX
                 else JCS_EXT_RGBA if pf == TJPF_RGBA else JCS_GRAYSCALE)
        ret = _decode_region(j, data, size, iw, ih, f, space, ch_in, crop, &xs, &ys, &w, &h, err)
        if ret != 0:
            return ret
        ext.x -= xs
        ext.y -= ys
        pitch = <size_t>w * ch_in
    else:
        pitch = <size_t>w * ch_in
        if reserve(<void **>&j.pixels, &j.pixels_cap, pitch * h) < 0:
            return fail(err, ERR_NOMEM, "decode", "malloc", 0, "out of memory")
        if tjDecompress2(j.handle, data, size, j.pixels, w, <int>pitch, h, pf,
                         TJFLAG_LIMITSCANS) < 0:
            ret = _after_failure(j, err)
            if ret != 0:
                return ret
    if out != NULL:
        out.width, out.height, out.format = g.out_w, g.out_h, out_fmt
        ret = av_frame_get_buffer(out, 0)
        if ret < 0:
            return fail(err, ERR_NOMEM, "decode", "av_frame_get_buffer", ret, NULL)
        dst, linesize = out.data, out.linesize
    return resample_into(&scaler.rs, j.pixels, pitch, w, h, ch_in, ch, ext.x, ext.y, ext.w, ext.h,
                         &g, out_fmt, dst, linesize, err)
