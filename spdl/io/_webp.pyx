# cython: language_level=3
"""WebP decoded by libwebp, the library Pillow, browsers and dwebp decode it with.

webp_decode: a still WebP (lossy VP8, lossless VP8L, either with an ALPH chunk or a
VP8X header and metadata chunks) with libwebp's advanced decoding API. FFmpeg 5.1's
decoder upsampled lossy WebP's chroma its own way (up to 8 levels off libwebp's decode
on a smooth 64x48 image, 17 on a 37x23 one); libwebp's "fancy" upsampling is what a
person sees. The image comes out as rgb24, or rgba (straight alpha, the stored colour)
when its header says it has alpha; its size is checked against max_pixels before
anything of that size is allocated, and libwebp writes straight into the frame.

webp_anim_decode: the first frame of an animated WebP (a VP8X header whose animation
flag is set), with libwebp's demux API: its animation decoder composes the first frame
on the canvas the way a viewer shows it (the canvas size, the frame at its offset, the
rest of the canvas transparent), as rgba. The first frame is all that is read: a file
cut after it, or damaged after it, loads (its first frame), as a browser shows what has
arrived.

A forced decoder or decoder options still go to FFmpeg (spdl/io/_decode.pyx).
"""

from libc.stdint cimport uint8_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcmp, memcpy

from spdl.io._status cimport ERR_DECODE, ERR_FORMAT, ERR_NOMEM, Status, fail, fail_too_large
from spdl.io.includes.libavutil cimport (
    AV_PIX_FMT_RGB24, AV_PIX_FMT_RGBA, AVFrame, av_frame_get_buffer, av_frame_unref,
    av_image_copy_plane,
)
from spdl.io.includes.libwebp cimport (
    MODE_RGB, MODE_RGBA, VP8_STATUS_BITSTREAM_ERROR, VP8_STATUS_NOT_ENOUGH_DATA, VP8_STATUS_OK,
    VP8_STATUS_OUT_OF_MEMORY, VP8_STATUS_UNSUPPORTED_FEATURE, VP8StatusCode, WebPDecode,
    WebPDecoderConfig, WebPFreeDecBuffer, WebPGetFeatures, WebPInitDecoderConfig, WEBP_FF_CANVAS_HEIGHT, WEBP_FF_CANVAS_WIDTH, WebPAnimDecoder,
    WebPAnimDecoderDelete, WebPAnimDecoderGetNext, WebPAnimDecoderNew, WebPAnimDecoderOptions,
    WebPAnimDecoderOptionsInit, WebPData, WebPDemux, WebPDemuxDelete, WebPDemuxer, WebPDemuxGetI,
)

cdef extern from "<stdio.h>":
    int snprintf(char *buf, size_t n, const char *fmt, ...) nogil


cdef const char *_status_name(VP8StatusCode status) noexcept nogil:
    if status == VP8_STATUS_NOT_ENOUGH_DATA:
        return "VP8_STATUS_NOT_ENOUGH_DATA"
    if status == VP8_STATUS_BITSTREAM_ERROR:
        return "VP8_STATUS_BITSTREAM_ERROR"
    if status == VP8_STATUS_UNSUPPORTED_FEATURE:
        return "VP8_STATUS_UNSUPPORTED_FEATURE"
    if status == VP8_STATUS_OUT_OF_MEMORY:
        return "VP8_STATUS_OUT_OF_MEMORY"
    return "an unexpected status"


cdef int _webp_fail(VP8StatusCode status, const char *op, Status *err) noexcept nogil:
    """Fail for libwebp's status from op, naming it."""
    cdef char msg[160]
    cdef int kind = ERR_DECODE
    if status == VP8_STATUS_NOT_ENOUGH_DATA:
        snprintf(msg, sizeof(msg), "the WebP is truncated (libwebp: %s)", _status_name(status))
    elif status == VP8_STATUS_BITSTREAM_ERROR:
        snprintf(msg, sizeof(msg), "the WebP's data is damaged (libwebp: %s)",
                 _status_name(status))
    elif status == VP8_STATUS_UNSUPPORTED_FEATURE:
        kind = ERR_FORMAT
        snprintf(msg, sizeof(msg), "a WebP feature libwebp does not decode (libwebp: %s)",
                 _status_name(status))
    elif status == VP8_STATUS_OUT_OF_MEMORY:
        kind = ERR_NOMEM
        snprintf(msg, sizeof(msg), "out of memory (libwebp: %s)", _status_name(status))
    else:
        snprintf(msg, sizeof(msg), "the WebP does not decode (libwebp: status %d)", <int>status)
    return fail(err, kind, "decode", op, 0, msg)


cdef int webp_decode(const uint8_t *data, int size, long long max_pixels, AVFrame *frame,
                     Status *err) noexcept nogil:
    """Decode the still WebP data[0:size] into frame (unreferenced): rgb24, or rgba when
    its header says it has alpha (straight, not premultiplied).

    One thread, no scaling or cropping by libwebp (the resampler resizes), fancy
    upsampling (libwebp's default, as dwebp and Pillow decode). The size is checked
    against max_pixels before the frame is allocated; libwebp decodes into the frame."""
    cdef WebPDecoderConfig config
    cdef VP8StatusCode status
    cdef long long width, height
    cdef int ret
    cdef size_t row
    cdef char msg[160]
    if size <= 0:
        return _webp_fail(VP8_STATUS_NOT_ENOUGH_DATA, "WebPGetFeatures", err)
    if not WebPInitDecoderConfig(&config):
        return fail(err, ERR_DECODE, "decode", "WebPInitDecoderConfig", 0,
                    "libwebp's decoder version does not match its header")
    status = WebPGetFeatures(data, <size_t>size, &config.input)
    if status != VP8_STATUS_OK:
        return _webp_fail(status, "WebPGetFeatures", err)
    if config.input.has_animation:          # (the dispatch sends these to webp_anim_decode)
        return fail(err, ERR_FORMAT, "decode", "WebPGetFeatures", 0,
                    "an animated WebP where a still image was expected")
    width, height = config.input.width, config.input.height
    if width <= 0 or height <= 0:
        return _webp_fail(VP8_STATUS_BITSTREAM_ERROR, "WebPGetFeatures", err)
    if width * height > max_pixels:
        return fail_too_large(err, "WebPGetFeatures", "the WebP", width, height, max_pixels)
    frame.width, frame.height = <int>width, <int>height
    frame.format = AV_PIX_FMT_RGBA if config.input.has_alpha else AV_PIX_FMT_RGB24
    ret = av_frame_get_buffer(frame, 0)
    if ret < 0:
        av_frame_unref(frame)
        return fail(err, ERR_NOMEM, "decode", "av_frame_get_buffer", ret, "out of memory")
    config.output.colorspace = MODE_RGBA if config.input.has_alpha else MODE_RGB
    config.output.is_external_memory = 1
    config.output.u.RGBA.rgba = frame.data[0]
    config.output.u.RGBA.stride = frame.linesize[0]
    row = <size_t>width * (4 if config.input.has_alpha else 3)
    config.output.u.RGBA.size = <size_t>frame.linesize[0] * <size_t>(height - 1) + row
    config.options.use_threads = 0          # images are decoded in parallel, one per thread
    config.options.no_fancy_upsampling = 0  # libwebp's default: as dwebp, Pillow, browsers
    config.options.use_scaling = 0
    config.options.use_cropping = 0
    status = WebPDecode(data, <size_t>size, &config)
    WebPFreeDecBuffer(&config.output)       # (frees nothing of external memory)
    if status != VP8_STATUS_OK:
        av_frame_unref(frame)
        return _webp_fail(status, "WebPDecode", err)
    return 0  # (decode_image zeroes the rows' padding)


cdef struct _Chunks:
    int frames              # ANMF chunks that are whole in the data
    size_t first_end        # where the first whole ANMF chunk ends (with its pad byte), or 0
    bint cut                # the data ends before the RIFF size says, or inside a chunk


cdef inline unsigned int _le32(const uint8_t *p) noexcept nogil:
    return p[0] | (<unsigned int>p[1] << 8) | (<unsigned int>p[2] << 16) | (<unsigned int>p[3] << 24)


cdef void _walk(const uint8_t *d, size_t n, _Chunks *out) noexcept nogil:
    """The top-level chunks of a RIFF WebP: its whole ANMF chunks, and whether it is cut."""
    cdef size_t riff_end = <size_t>_le32(d + 4) + 8
    cdef size_t pos = 12, end, size
    out.frames, out.first_end, out.cut = 0, 0, riff_end > n
    end = n if riff_end > n else riff_end
    while pos + 8 <= end:
        size = _le32(d + pos + 4)
        if size > end - pos - 8:
            out.cut = True
            return
        if memcmp(d + pos, b"ANMF", 4) == 0:
            out.frames += 1
            if out.first_end == 0:
                out.first_end = pos + 8 + size + (size & 1)
        pos += 8 + size + (size & 1)
    if pos < end:
        out.cut = True                      # a chunk header cut short


cdef int webp_anim_decode(const uint8_t *data, int size, long long max_pixels, AVFrame *frame,
                          Status *err) noexcept nogil:
    """Decode the first frame of the animated WebP data[0:size] (its VP8X animation flag
    is set) into frame (unreferenced), as rgba of the canvas's size.

    The canvas's size is checked against max_pixels before anything of its size is
    allocated. A file that ends, or is damaged, after its first frame gives that frame:
    the demuxer then reads a copy of the file up to the end of the first frame."""
    cdef _Chunks chunks
    cdef WebPData webp
    cdef WebPDemuxer *demux
    cdef WebPAnimDecoderOptions options
    cdef WebPAnimDecoder *dec
    cdef uint8_t *head = NULL
    cdef uint8_t *canvas = NULL
    cdef long long width, height
    cdef int timestamp, ret
    cdef char msg[160]
    if size < 30:
        return fail(err, ERR_DECODE, "decode", "WebPDemux", 0, "the animated WebP is truncated")
    _walk(data, <size_t>size, &chunks)
    if chunks.frames == 0:
        if chunks.cut:
            return fail(err, ERR_DECODE, "decode", "WebPDemux", 0,
                        "the animated WebP is truncated before the end of its first frame")
        return fail(err, ERR_FORMAT, "decode", "WebPDemux", 0,
                    "an animated WebP with no frames (no ANMF chunk): nothing to show")
    webp.bytes, webp.size = data, <size_t>size
    demux = WebPDemux(&webp)
    if demux == NULL:
        # cut or damaged after its first frame: the file up to the end of that frame,
        # with the RIFF size saying so
        head = <uint8_t *>calloc(chunks.first_end, 1)
        if head == NULL:
            return fail(err, ERR_NOMEM, "decode", "calloc", 0, "out of memory")
        memcpy(head, data, min(chunks.first_end, <size_t>size))
        head[4], head[5], head[6], head[7] = ((chunks.first_end - 8) & 0xFF,
                                              ((chunks.first_end - 8) >> 8) & 0xFF,
                                              ((chunks.first_end - 8) >> 16) & 0xFF,
                                              ((chunks.first_end - 8) >> 24) & 0xFF)
        webp.bytes, webp.size = head, chunks.first_end
        demux = WebPDemux(&webp)
        if demux == NULL:
            free(head)
            return fail(err, ERR_DECODE, "decode", "WebPDemux", 0,
                        "the animated WebP's chunks are damaged")
    width = WebPDemuxGetI(demux, WEBP_FF_CANVAS_WIDTH)
    height = WebPDemuxGetI(demux, WEBP_FF_CANVAS_HEIGHT)
    WebPDemuxDelete(demux)
    if width * height > max_pixels:
        free(head)
        return fail_too_large(err, "WebPDemux", "the animated WebP's canvas", width, height,
                              max_pixels)
    WebPAnimDecoderOptionsInit(&options)
    options.color_mode = MODE_RGBA          # stored colour and alpha, not premultiplied
    options.use_threads = 0                 # images are decoded in parallel, one per thread
    dec = WebPAnimDecoderNew(&webp, &options)
    if dec == NULL:
        free(head)
        return fail(err, ERR_DECODE, "decode", "WebPAnimDecoderNew", 0,
                    "libwebp could not set up the animation decoder")
    if not WebPAnimDecoderGetNext(dec, &canvas, &timestamp):
        WebPAnimDecoderDelete(dec)
        free(head)
        return fail(err, ERR_DECODE, "decode", "WebPAnimDecoderGetNext", 0,
                    "the animated WebP's first frame does not decode")
    frame.width, frame.height, frame.format = <int>width, <int>height, AV_PIX_FMT_RGBA
    ret = av_frame_get_buffer(frame, 0)
    if ret < 0:
        WebPAnimDecoderDelete(dec)
        free(head)
        av_frame_unref(frame)
        return fail(err, ERR_NOMEM, "decode", "av_frame_get_buffer", ret, "out of memory")
    av_image_copy_plane(frame.data[0], frame.linesize[0], canvas, <int>width * 4,
                        <int>width * 4, <int>height)
    WebPAnimDecoderDelete(dec)              # owns canvas
    free(head)
    return 0
