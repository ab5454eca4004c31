# cython: language_level=3
"""decode_packets: an image's packet into a decoded frame, filtered and resized as a plan says."""

from libc.stdint cimport int64_t, uint8_t
from libc.string cimport memset

from spdl.io._config import DecodeConfig, config_or_default
from spdl.io._plan import compile_plan
from spdl.io._demux cimport ImagePackets, webp_animated
from spdl.io._status cimport (
    ERR_DECODE, ERR_FORMAT, ERR_NOMEM, ERR_TOO_LARGE, Status, check_consumed, fail, fail_too_large, raise_error,
    status_bind, status_init,
)
from spdl.io._structure cimport gif_check_first_frame, gif_trans_color, jpeg_check_structure
from spdl.io._jpeg cimport (
    JPEG_NOT_HANDLED, jpeg_decode, jpeg_decode_into, jpeg_free, jpeg_init, jpeg_packed_format,
)
from spdl.io._geometry cimport (
    CompiledPlan, Crop, Extent, Geometry, ScaleSpec, compile_plan_spec, crop_extent,
    ext_geometry, extent_of, orient_axes, orient_spec, resolve_crop,
)
from spdl.io._graph cimport filter_graph_frame
from spdl.io._tiff cimport tiff_decode
from spdl.io.includes.libavcodec cimport AV_CODEC_ID_TIFF
from spdl.io._avif cimport avif_decode
from spdl.io.includes.libavcodec cimport AV_CODEC_ID_AV1
from spdl.io._webp cimport webp_anim_decode, webp_decode
from spdl.io._legacy cimport LEGACY_NOT_HANDLED, bmp_decode_frame, dds_decode_frame
from spdl.io.includes.libavcodec cimport AV_CODEC_ID_BMP, AV_CODEC_ID_DDS
from spdl.io._scale cimport (
    Scaler, jpeg2000_full_scale, orient_copy, oriented_format, scale_frame, scale_to_frame,
    scaler_free, scaler_init,
)
from spdl.io.includes.libavcodec cimport (
    AV_CODEC_ID_APNG, AV_CODEC_ID_GEM, AV_CODEC_ID_GIF, AV_CODEC_ID_JPEG2000,
    AV_CODEC_ID_JPEGLS, AV_CODEC_ID_MJPEG,
    AV_CODEC_ID_PHOTOCD,
    AV_CODEC_ID_PNG, AV_CODEC_ID_VBN, AV_CODEC_ID_WEBP, AV_CODEC_PROP_INTRA_ONLY, AVCodec,
    AVCodecDescriptor, avcodec_descriptor_get, AVCodecContext, av_codec_is_decoder, avcodec_alloc_context3,
    avcodec_find_decoder, avcodec_find_decoder_by_name, avcodec_flush_buffers,
    avcodec_free_context, avcodec_open2, avcodec_parameters_to_context, avcodec_receive_frame,
    avcodec_send_packet,
)
from spdl.io.includes.libavutil cimport (
    AVDictionary, AVDictionaryEntry, AV_DICT_IGNORE_SUFFIX, AV_PIX_FMT_GBRP, AV_PIX_FMT_NONE,
    AV_PIX_FMT_RGB24, AVERROR,
    AVERROR_EOF, AVFrame, AVPixelFormat, AVPixFmtDescriptor, AV_PIX_FMT_FLAG_PAL,
    av_dict_copy, av_dict_free, av_dict_get, av_dict_set, av_frame_alloc, av_frame_free,
    av_frame_get_buffer, av_frame_move_ref, av_frame_unref, av_get_pix_fmt_name,
    av_pix_fmt_desc_get,
)

cdef extern from "libavutil/imgutils.h" nogil:
    int av_image_fill_linesizes(int *linesizes, AVPixelFormat pix_fmt, int width)


cdef extern from "<errno.h>":
    int EAGAIN

cdef extern from "libavutil/avutil.h":
    int AVMEDIA_TYPE_VIDEO

cdef extern from "<stdio.h>":
    int snprintf(char *buf, size_t n, const char *fmt, ...) nogil

cdef extern from "<string.h>" nogil:
    size_t strlen(const char *s)
    int strcmp(const char *a, const char *b)
    char *strncat(char *dest, const char *src, size_t n)


cdef class CompiledDecodeConfig:
    def __dealloc__(self):
        av_dict_free(&self.spec.options)


cdef bint _is_image_decoder(const AVCodec *codec) noexcept nogil:
    """A video decoder whose every frame is an image of its own (intra-only), or one of
    the image codecs FFmpeg does not mark so (PNG, APNG and GIF: the first frame is)."""
    cdef const AVCodecDescriptor *desc = avcodec_descriptor_get(codec.id)
    if desc == NULL or desc.type != AVMEDIA_TYPE_VIDEO:
        return False
    return desc.props & AV_CODEC_PROP_INTRA_ONLY or codec.id in (
        AV_CODEC_ID_PNG, AV_CODEC_ID_APNG, AV_CODEC_ID_GIF, AV_CODEC_ID_PHOTOCD, AV_CODEC_ID_VBN,
        AV_CODEC_ID_GEM)


cdef CompiledDecodeConfig compile_decode_config(object config):
    """Validate a DecodeConfig (or None) and build its C form."""
    config = config_or_default(config, DecodeConfig, "decode_config")
    cdef CompiledDecodeConfig o = CompiledDecodeConfig.__new__(CompiledDecodeConfig)
    o.config = config
    o.spec.codec = NULL
    o.spec.options = NULL
    o.spec.max_pixels = config.max_pixels
    o.spec.apply_orientation = bool(config.apply_orientation)
    if config.decoder is not None:
        o.spec.codec = avcodec_find_decoder_by_name(config.decoder.encode())
        if o.spec.codec == NULL:
            from spdl.io._errors import ConfigError
            raise ConfigError(f"decode: no decoder named {config.decoder!r} in this FFmpeg build",
                              stage="decode")
        if not _is_image_decoder(o.spec.codec):
            from spdl.io._errors import ConfigError
            raise ConfigError(f"decode: {config.decoder!r} is not an image decoder (a video "
                              "decoder of intra-only frames, GIF or APNG)", stage="decode")
    for k, v in (config.decoder_options or {}).items():
        if av_dict_set(&o.spec.options, k.encode(), v.encode(), 0) < 0:
            raise MemoryError()
    return o


cdef void decoder_init(Decoder *dec) noexcept nogil:
    dec.ctx = NULL
    dec.codec = NULL
    jpeg_init(&dec.jpeg)


cdef void _free_ffmpeg(Decoder *dec) noexcept nogil:
    avcodec_free_context(&dec.ctx)
    dec.codec = NULL


cdef void decoder_free(Decoder *dec) noexcept nogil:
    _free_ffmpeg(dec)
    jpeg_free(&dec.jpeg)


cdef int _open(const Demuxed *d, const DecodeSpec *o, const AVCodec *codec, Decoder *dec,
               Status *err) noexcept nogil:
    cdef AVDictionary *options = NULL
    cdef int ret
    cdef long colour
    cdef char value[24]
    _free_ffmpeg(dec)
    dec.ctx = avcodec_alloc_context3(codec)
    if dec.ctx == NULL:
        return fail(err, ERR_NOMEM, "decode", "avcodec_alloc_context3", 0, "out of memory")
    if d.par != NULL:
        ret = avcodec_parameters_to_context(dec.ctx, d.par)
        if ret < 0:
            _free_ffmpeg(dec)
            return fail(err, ERR_DECODE, "decode", "avcodec_parameters_to_context", ret, NULL)
    dec.ctx.opaque = err  # the decoder's log lines go to this status
    dec.ctx.thread_count = 1  # images are decoded in parallel, one per thread
    # FFmpeg checks its padded buffer size (width rounded up to 32 or more), so allow
    # for the padding here and check the image's own size after decoding.
    dec.ctx.max_pixels = o.max_pixels + o.max_pixels // 8 + 65536
    if o.options != NULL and av_dict_copy(&options, o.options, 0) < 0:
        _free_ffmpeg(dec)
        return fail(err, ERR_NOMEM, "decode", "av_dict_copy", 0, "out of memory")
    if codec.id == AV_CODEC_ID_GIF and av_dict_get(options, "trans_color", NULL, 0) == NULL:
        # transparent pixels keep their stored palette colour (FFmpeg's default: white)
        colour = gif_trans_color(d.pkt.data, d.pkt.size)
        if colour >= 0:
            snprintf(value, sizeof(value), "%ld", colour)  # ARGB, alpha 0
            if av_dict_set(&options, "trans_color", value, 0) < 0:
                _free_ffmpeg(dec)
                return fail(err, ERR_NOMEM, "decode", "av_dict_set", 0, "out of memory")
    ret = avcodec_open2(dec.ctx, codec, &options)
    if ret < 0:
        av_dict_free(&options)
        _free_ffmpeg(dec)
        return fail(err, ERR_DECODE, "decode", "avcodec_open2", ret, NULL)
    ret = check_consumed(options, "decoder", codec.name, "decode", "avcodec_open2", err)
    av_dict_free(&options)
    if ret < 0:
        _free_ffmpeg(dec)
        return -1
    dec.codec = codec
    return 0


cdef int _decode_error(Decoder *dec, const DecodeSpec *o, int ret, const char *op,
                       Status *err) noexcept nogil:
    """Fail for a decoder call that returned ret, and free the decoder (its state is unknown).

    Too large: FFmpeg's image-size check (av_image_check_size2, against the context's
    max_pixels) refused the image for this status, or the context took a size over the limit.
    """
    cdef bint too_large = err.size_refused or (
        dec.ctx != NULL and <long long>dec.ctx.width * dec.ctx.height > o.max_pixels)
    _free_ffmpeg(dec)
    if too_large:
        return fail(err, ERR_TOO_LARGE, "decode", op, ret, "the image is larger than max_pixels")
    return fail(err, ERR_DECODE, "decode", op, ret, NULL)


cdef void _zero_row_padding(AVFrame *frame) noexcept nogil:
    """Zero the bytes after each row's pixels, as FFmpeg's decoders leave them: swscale's
    packed-RGB input reads one pixel past an odd-width row, and what it reads there must
    not be the heap's old bytes (the last column would differ from run to run)."""
    cdef const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(<AVPixelFormat>frame.format)
    cdef int widths[4]
    cdef int p, y, h, planes
    if desc == NULL or av_image_fill_linesizes(widths, <AVPixelFormat>frame.format,
                                               frame.width) < 0:
        return
    planes = 1 if desc.flags & AV_PIX_FMT_FLAG_PAL else 4  # plane 1: the palette
    for p in range(planes):
        if frame.data[p] == NULL or frame.linesize[p] <= widths[p]:
            continue
        h = frame.height  # chroma planes of subsampled formats have fewer rows
        if p == 1 or p == 2:
            h = -((-h) >> desc.log2_chroma_h)
        for y in range(h):
            memset(frame.data[p] + <size_t>y * frame.linesize[p] + widths[p], 0,
                   <size_t>(frame.linesize[p] - widths[p]))


cdef int _own_frame(int ret, const ScaleSpec *spec, Py_ssize_t index, Crop *crop,
                    AVFrame *frame, Extent *ext, Status *err) noexcept nogil:
    """The end of decode_image for a frame one of our own decoders filled (ret: its result)."""
    if ret < 0:
        return ret
    _zero_row_padding(frame)
    extent_of(frame, ext)
    if crop != NULL and resolve_crop(spec, index, frame.width, frame.height, crop, err) < 0:
        av_frame_unref(frame)
        return -1
    return 0


cdef int decode_image(const Demuxed *d, const DecodeSpec *o, Decoder *dec, const ScaleSpec *spec,
                      Py_ssize_t index, Crop *crop, AVFrame *frame, Extent *ext,
                      Status *err) noexcept nogil:
    """Decode the one image of d into frame, reusing dec's open decoders; ext gets what
    the frame covers of the image, and crop (if not NULL; then spec is not NULL) what
    spec does to input index.

    A JPEG goes to libjpeg-turbo (unless a decoder or decoder options were
    asked for), reduced in the DCT as far as spec (NULL: full size) allows.
    """
    cdef const AVCodec *codec = o.codec
    # our own decoders take the image unless a decoder or decoder options were asked for
    cdef bint own = o.codec == NULL and o.options == NULL
    cdef int ret, bits
    if d.codec_id == AV_CODEC_ID_MJPEG and jpeg_check_structure(d.pkt.data, d.pkt.size, err) < 0:
        return -1
    if d.codec_id == AV_CODEC_ID_JPEGLS and not (
            d.pkt.size >= 4 and d.pkt.data[d.pkt.size - 2] == 0xFF
            and d.pkt.data[d.pkt.size - 1] == 0xD9):
        # FFmpeg's decoder conceals a cut scan; FF D9 cannot occur inside JPEG-LS scan data
        return fail(err, ERR_DECODE, "decode", "jpeg_check_structure", 0,
                    "the JPEG-LS data is truncated (no end-of-image marker)")
    if d.codec_id == AV_CODEC_ID_GIF and gif_check_first_frame(d.pkt.data, d.pkt.size, err) < 0:
        return -1
    if d.codec_id == AV_CODEC_ID_DDS and own:
        ret = dds_decode_frame(d.pkt.data, d.pkt.size, o.max_pixels, frame, err)
        if ret != LEGACY_NOT_HANDLED:  # (FFmpeg's decoder swaps channels of some variants)
            return _own_frame(ret, spec, index, crop, frame, ext, err)
    if d.codec_id == AV_CODEC_ID_BMP and own:
        ret = bmp_decode_frame(d.pkt.data, d.pkt.size, o.max_pixels, frame, err)
        if ret != LEGACY_NOT_HANDLED:  # RLE (FFmpeg's refuses common files), truncation
            return _own_frame(ret, spec, index, crop, frame, ext, err)
    if d.codec_id == AV_CODEC_ID_WEBP and own:
        # libwebp: FFmpeg 5.1 decodes stills only, and upsamples lossy chroma its own way
        if webp_animated(d.pkt.data, d.pkt.size):
            ret = webp_anim_decode(d.pkt.data, d.pkt.size, o.max_pixels, frame, err)
        else:
            ret = webp_decode(d.pkt.data, d.pkt.size, o.max_pixels, frame, err)
        return _own_frame(ret, spec, index, crop, frame, ext, err)
    if d.codec_id == AV_CODEC_ID_AV1 and d.par == NULL and own:
        # an AVIF file, known by its ftyp: libavif reads it whole (FFmpeg has no demuxer for it)
        ret = avif_decode(d.pkt.data, d.pkt.size, o.max_pixels, frame, err)
        return _own_frame(ret, spec, index, crop, frame, ext, err)
    if d.codec_id == AV_CODEC_ID_TIFF and own:
        # libtiff: FFmpeg 5.1's decoder gets tiles, JPEG, FillOrder 2 and palettes wrong
        ret = tiff_decode(d.pkt.data, d.pkt.size, o.max_pixels, frame, err)
        return _own_frame(ret, spec, index, crop, frame, ext, err)
    if d.codec_id == AV_CODEC_ID_MJPEG and own:
        ret = jpeg_decode(&dec.jpeg, d.pkt.data, d.pkt.size, spec, o.max_pixels, index, crop,
                          frame, ext, err)
        if ret != JPEG_NOT_HANDLED:
            return ret
    if codec == NULL:
        codec = avcodec_find_decoder(d.codec_id)
        if codec == NULL:
            return fail(err, ERR_FORMAT, "decode", "avcodec_find_decoder", 0,
                        "no decoder for this codec in this FFmpeg build")
    # A fresh context for every image: decoders keep state between packets (the PNG
    # decoder blends with the last image, MJPEG keeps the last Huffman tables), and an
    # image's pixels must not depend on the one before it.
    if _open(d, o, codec, dec, err) < 0:
        return -1
    ret = avcodec_send_packet(dec.ctx, d.pkt)
    if ret < 0:
        return _decode_error(dec, o, ret, "avcodec_send_packet", err)
    ret = avcodec_receive_frame(dec.ctx, frame)
    if ret == AVERROR(EAGAIN):
        ret = avcodec_send_packet(dec.ctx, NULL)  # drain: the image is all there is
        if ret >= 0:
            ret = avcodec_receive_frame(dec.ctx, frame)
    if ret < 0:
        if ret == AVERROR_EOF or ret == AVERROR(EAGAIN):
            _free_ffmpeg(dec)
            return fail(err, ERR_DECODE, "decode", "avcodec_receive_frame", 0,
                        "the data decoded to no image")
        return _decode_error(dec, o, ret, "avcodec_receive_frame", err)
    bits = dec.ctx.bits_per_raw_sample  # JPEG 2000: its depth, which the frame lacks
    if d.par != NULL:
        _free_ffmpeg(dec)  # opened with a demuxer's parameters: not for the next image
    # Decoders conceal damage and still return a frame; a frame they had to
    # patch up (truncated data, a broken entropy stream) is an error here.
    if <long long>frame.width * frame.height > o.max_pixels:
        av_frame_unref(frame)
        return fail_too_large(err, "avcodec_receive_frame", "the image", frame.width,
                              frame.height, o.max_pixels)
    # (a JPEG without its end-of-image marker was refused by jpeg_check_structure)
    if err.log_errors > 0:  # the decoder logged an error for this image
        av_frame_unref(frame)
        return fail(err, ERR_DECODE, "decode", "avcodec_receive_frame", 0,
                    "the decoder reported damaged data")
    if (codec.id == AV_CODEC_ID_JPEG2000 and strcmp(codec.name, "jpeg2000") == 0
            and jpeg2000_full_scale(frame, bits, err) < 0):
        av_frame_unref(frame)
        return -1
    extent_of(frame, ext)
    if crop != NULL and resolve_crop(spec, index, frame.width, frame.height, crop, err) < 0:
        av_frame_unref(frame)
        return -1
    return 0


cdef bint _jpeg_resampler = True


cdef void set_jpeg_resampler(bint on) noexcept nogil:
    """Whether JPEGs take the libjpeg-turbo + resampler path; switched by tests and
    benchmarks only (spdl.io._testing.use_jpeg_resampler)."""
    global _jpeg_resampler
    _jpeg_resampler = on


cdef int _resize(Scaler *scaler, const ScaleSpec *spec, AVFrame *src, const Extent *ext,
                 AVFrame *out, uint8_t **dst, const int *linesize, Status *err) noexcept nogil:
    """Resize and convert src as spec says, into out (allocated here) or, when out is
    NULL, into the spec's fixed-size output at dst. A spec that changes nothing moves src."""
    cdef Geometry g
    cdef Extent own
    if ext == NULL:
        extent_of(src, &own)
        ext = &own
    if out != NULL:
        if (spec.scale_w < 0 and spec.scale_h < 0 and ext.w == src.width and ext.h == src.height
                and not ext.cropped
                and (spec.out_fmt == AV_PIX_FMT_NONE or spec.out_fmt == src.format)):
            av_frame_move_ref(out, src)
            return 0
        return scale_to_frame(scaler, spec, src, ext, out, err)
    if ext_geometry(spec, ext, &g, err) < 0:
        return -1
    return scale_frame(scaler, spec, src, ext, &g, spec.out_fmt, dst, linesize, err)


cdef int _planar_rgb(const Demuxed *d, const DecodeSpec *o, Decoder *dec, Scaler *scaler,
                     const ScaleSpec *spec, const char *graph, Py_ssize_t index, Crop *crop,
                     AVFrame *decoded, AVFrame *out, uint8_t **dst, const int *linesize,
                     Status *err) noexcept nogil:
    """decode_planned for planar RGB (gbrp): the packed rgb24 path, then split into planes,
    so that a planar batch holds exactly the pixels of a packed one."""
    cdef ScaleSpec packed = spec[0]
    cdef AVFrame *rgb = av_frame_alloc()
    cdef uint8_t *planes[3]
    cdef int pitch[3]
    cdef int ret, x, y, c
    cdef const uint8_t *row
    if rgb == NULL:
        return fail(err, ERR_NOMEM, "filter", "av_frame_alloc", 0, NULL)
    packed.out_fmt = AV_PIX_FMT_RGB24
    ret = decode_planned(d, o, dec, scaler, &packed, graph, index, crop, decoded, rgb, NULL, NULL,
                         err)
    if ret >= 0 and out != NULL:
        out.width, out.height, out.format = rgb.width, rgb.height, AV_PIX_FMT_GBRP
        ret = av_frame_get_buffer(out, 0)
        if ret < 0:
            ret = fail(err, ERR_NOMEM, "filter", "av_frame_get_buffer", ret, NULL)
        dst, linesize = out.data, out.linesize
    if ret >= 0:
        # gbrp's planes are G, B, R
        planes[0], planes[1], planes[2] = dst[2], dst[0], dst[1]
        pitch[0], pitch[1], pitch[2] = linesize[2], linesize[0], linesize[1]
        for y in range(rgb.height):
            row = rgb.data[0] + <size_t>y * rgb.linesize[0]
            for c in range(3):
                for x in range(rgb.width):
                    planes[c][<size_t>y * pitch[c] + x] = row[3 * x + c]
    av_frame_free(&rgb)
    return ret


cdef int decode_planned(const Demuxed *d, const DecodeSpec *o, Decoder *dec, Scaler *scaler,
                        const ScaleSpec *spec, const char *graph, Py_ssize_t index, Crop *crop,
                        AVFrame *decoded, AVFrame *out, uint8_t **dst, const int *linesize,
                        Status *err) noexcept nogil:
    """Decode d (input index), run it through the libavfilter graph (if not NULL), then
    crop, resize and convert it as spec says: into out (allocated here), or, when out is
    NULL, into the spec's fixed-size output at dst. crop gets what was done (the box and
    whether the caller is to flip the result). decoded is scratch, unreferenced on return.

    Without a graph, a JPEG headed for a packed 8-bit format with the bicubic filter
    takes the libjpeg-turbo path and our resampler, reduced in the DCT as far as the
    output size allows; everything else decodes to a frame that swscale converts.
    """
    cdef int orient = d.orientation if o.apply_orientation else 1
    if spec.out_fmt == AV_PIX_FMT_GBRP:
        return _planar_rgb(d, o, dec, scaler, spec, graph, index, crop, decoded, out, dst,
                           linesize, err)
    if 2 <= orient <= 8:
        return _oriented(d, o, dec, scaler, spec, graph, index, crop, decoded, out, dst, linesize,
                         orient, err)
    return _decode_planned(d, o, dec, scaler, spec, graph, index, crop, decoded, out, dst,
                           linesize, err)


cdef int _oriented(const Demuxed *d, const DecodeSpec *o, Decoder *dec, Scaler *scaler,
                   const ScaleSpec *spec, const char *graph, Py_ssize_t index, Crop *crop,
                   AVFrame *decoded, AVFrame *out, uint8_t **dst, const int *linesize,
                   int orient, Status *err) noexcept nogil:
    """decode_planned for an image of EXIF orientation orient (2..8): the plan (its size,
    placement and crop boxes in the viewed image) turned into the stored orientation
    (orient_spec), the image decoded, cropped and resized as it is stored into a scratch
    image of the output's size, which orient_copy then turns into dst or out: one copy
    of the output's pixels, whatever the source's size."""
    cdef ScaleSpec local
    cdef AVFrame *tmp
    cdef AVPixelFormat fmt
    cdef bint swap, mx, my
    cdef int ret
    orient_spec(spec, orient, &local)
    orient_axes(orient, &swap, &mx, &my)
    if out == NULL:  # the plan's fixed size and format
        if scaler.oriented == NULL:
            scaler.oriented = av_frame_alloc()
            if scaler.oriented == NULL:
                return fail(err, ERR_NOMEM, "filter", "av_frame_alloc", 0, NULL)
        tmp = scaler.oriented
        if (tmp.width != local.scale_w or tmp.height != local.scale_h
                or tmp.format != spec.out_fmt):
            av_frame_unref(tmp)
            tmp.width, tmp.height, tmp.format = local.scale_w, local.scale_h, spec.out_fmt
            ret = av_frame_get_buffer(tmp, 0)
            if ret < 0:
                return fail(err, ERR_NOMEM, "filter", "av_frame_get_buffer", ret, NULL)
        ret = _decode_planned(d, o, dec, scaler, &local, graph, index, crop, decoded, NULL,
                              tmp.data, tmp.linesize, err)
        if ret >= 0:
            orient_copy(tmp, orient, dst, linesize)
        return ret
    tmp = av_frame_alloc()
    if tmp == NULL:
        return fail(err, ERR_NOMEM, "filter", "av_frame_alloc", 0, NULL)
    ret = _decode_planned(d, o, dec, scaler, &local, graph, index, crop, decoded, tmp, NULL,
                          NULL, err)
    if ret >= 0:
        fmt = oriented_format(<AVPixelFormat>tmp.format, orient)
        if fmt == AV_PIX_FMT_NONE:
            ret = fail(err, ERR_FORMAT, "filter", "orient", 0,
                       "this pixel format cannot be turned by the EXIF orientation: give a "
                       "pix_fmt, or DecodeConfig(apply_orientation=False)")
    if ret >= 0:
        out.width, out.height = (tmp.height, tmp.width) if swap else (tmp.width, tmp.height)
        out.format = fmt
        ret = av_frame_get_buffer(out, 0)
        if ret < 0:
            ret = fail(err, ERR_NOMEM, "filter", "av_frame_get_buffer", ret, NULL)
    if ret >= 0:
        out.color_range, out.colorspace = tmp.color_range, tmp.colorspace
        orient_copy(tmp, orient, out.data, out.linesize)
        if tmp.metadata != NULL and av_dict_copy(&out.metadata, tmp.metadata, 0) < 0:
            av_frame_unref(out)
            ret = fail(err, ERR_NOMEM, "filter", "av_dict_copy", 0, NULL)
    av_frame_free(&tmp)
    return ret


cdef int _decode_planned(const Demuxed *d, const DecodeSpec *o, Decoder *dec, Scaler *scaler,
                         const ScaleSpec *spec, const char *graph, Py_ssize_t index, Crop *crop,
                         AVFrame *decoded, AVFrame *out, uint8_t **dst, const int *linesize,
                         Status *err) noexcept nogil:
    """decode_planned in the image's stored orientation (spec: orient_spec's, or the plan's)."""
    cdef AVFrame *filtered
    cdef Extent ext       # what the decoded frame covers (a DCT-reduced one ends in a partial pixel)
    cdef int ret
    if graph != NULL:  # (a plan never crops a graph's output, so only the flip is drawn)
        ret = decode_image(d, o, dec, NULL, index, NULL, decoded, &ext, err)
        if ret < 0:
            return ret
        filtered = av_frame_alloc()
        if filtered == NULL:
            ret = fail(err, ERR_NOMEM, "filter", "av_frame_alloc", 0, NULL)
        else:
            ret = filter_graph_frame(graph, decoded, filtered, err)
        av_frame_unref(decoded)
        if ret >= 0:
            ret = resolve_crop(spec, index, filtered.width, filtered.height, crop, err)
        if ret >= 0:
            ret = _resize(scaler, spec, filtered, NULL, out, dst, linesize, err)
        av_frame_free(&filtered)
        return ret
    if (_jpeg_resampler and spec.cubic and d.codec_id == AV_CODEC_ID_MJPEG and o.codec == NULL
            and o.options == NULL and jpeg_packed_format(spec.out_fmt)):
        if jpeg_check_structure(d.pkt.data, d.pkt.size, err) < 0:
            return -1
        ret = jpeg_decode_into(&dec.jpeg, scaler, d.pkt.data, d.pkt.size, spec, o.max_pixels,
                               index, crop, spec.out_fmt, out, dst, linesize, err)
        if ret != JPEG_NOT_HANDLED:
            return ret
        status_init(err, err.index)  # FFmpeg decodes it afresh
    ret = decode_image(d, o, dec, spec, index, crop, decoded, &ext, err)
    if ret >= 0:
        crop_extent(crop, &ext)
        ret = _resize(scaler, spec, decoded, &ext, out, dst, linesize, err)
    av_frame_unref(decoded)
    return ret


cdef class ImageFrames:
    """One decoded image. Made by :func:`decode_packets`; cannot be created directly."""

    def __init__(self, *args, **kwargs):
        raise TypeError("ImageFrames cannot be created directly; use spdl.io.decode_packets")

    def __cinit__(self):
        self.frame = av_frame_alloc()
        if self.frame == NULL:
            raise MemoryError()

    def __dealloc__(self):
        av_frame_free(&self.frame)

    @property
    def width(self):
        return self.frame.width

    @property
    def height(self):
        return self.frame.height

    @property
    def pix_fmt(self):
        """FFmpeg's name of the pixel format, for example ``"rgb24"``."""
        name = av_get_pix_fmt_name(<AVPixelFormat>self.frame.format)
        return name.decode() if name != NULL else None

    @property
    def metadata(self):
        """The metadata the decoder attached to the image (FFmpeg's frame metadata: PNG
        text chunks, for example), as a dict of str to str; empty if none."""
        cdef const AVDictionaryEntry *e = NULL
        out = {}
        while True:
            e = av_dict_get(self.frame.metadata, "", e, AV_DICT_IGNORE_SUFFIX)
            if e == NULL:
                return out
            out[e.key.decode(errors="replace")] = e.value.decode(errors="replace")

    def __repr__(self):
        return (f"ImageFrames(source={self.source!r}, width={self.width}, height={self.height}, "
                f"pix_fmt={self.pix_fmt!r})")


def decode_packets(packets, *, decode_config=None, filter_desc=None, width=None, height=None,
                   pix_fmt=None, scale_mode="pad", scale_algo="bicubic"):
    """Decode the image in packets, then filter, resize and convert it.

    Args:
        packets: ImagePackets from :func:`demux_image`.
        decode_config: A :class:`DecodeConfig`, or None for the defaults.
        filter_desc: An FFmpeg filter description run by libavfilter on the
            decoded image, or None.
        width, height, pix_fmt, scale_mode, scale_algo: As in
            :func:`load_image_batch`, applied after filter_desc; the defaults
            keep the image's size and pixel format.

    Returns:
        ImageFrames.
    """
    if not isinstance(packets, ImagePackets):
        raise TypeError(f"packets must be ImagePackets, not {type(packets).__name__}")
    plan = compile_plan(width=width, height=height, pix_fmt=pix_fmt, scale_mode=scale_mode,
                        scale_algo=scale_algo, decode_config=decode_config, filter_desc=filter_desc)
    cdef ImagePackets p = <ImagePackets>packets
    cdef CompiledPlan c = compile_plan_spec(plan)
    cdef CompiledDecodeConfig o = compile_decode_config(plan.decode_config)
    cdef ImageFrames out = ImageFrames.__new__(ImageFrames)
    cdef Decoder dec
    cdef Scaler scaler
    cdef Crop crop
    cdef AVFrame *decoded = av_frame_alloc()
    cdef Status err
    cdef int ret
    cdef const char *graph = NULL
    if decoded == NULL:
        raise MemoryError()
    if c.graph is not None:
        graph = c.graph
    out.source = p.source
    decoder_init(&dec)
    scaler_init(&scaler)
    status_init(&err, -1)
    with nogil:
        status_bind(&err)  # lines of contexts with no status of their own (swscale)
        ret = decode_planned(&p.d, &o.spec, &dec, &scaler, &c.spec, graph, 0, &crop, decoded,
                             out.frame, NULL, NULL, &err)
        status_bind(NULL)
        decoder_free(&dec)
        scaler_free(&scaler)
        av_frame_free(&decoded)
    if ret < 0:
        raise_error(&err, p.source)
    return out
