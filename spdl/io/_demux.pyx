# cython: language_level=3
"""demux_image: a source into the one packet of its image.

The common formats (JPEG, PNG, WebP, GIF, TIFF, BMP) are recognised by their
signature and the whole file becomes the packet, with no probing. Anything
else goes through libavformat, reading from memory, restricted to the image
demuxers in IMAGE_DEMUXERS, and with every attempt to open another resource
refused.
"""

from libc.stdint cimport int64_t, uint8_t
from libc.string cimport memcmp, memcpy, memmove, memset

from spdl.io._config import DemuxConfig, config_or_default
from spdl.io._structure cimport (
    JpegMarkers, exif_orientation, jpeg_markers_lack_eoi, jpeg_scans_complete, jpeg_walk_markers, png_lacks_only_iend,
    png_orientation, webp_orientation, webp_strip_metadata,
)
from spdl.io._status cimport (
    ERR_DECODE, ERR_FORMAT, ERR_NOMEM, Status, check_consumed, fail, raise_error, status_init,
)
from spdl.io._tiff cimport bigtiff_orientation, bigtiff_signature
from spdl.io._source cimport Source, make_source, read_source
from spdl.io.includes.libavcodec cimport AV_CODEC_ID_TARGA
from spdl.io._avif cimport avif_brand, avif_orientation, avif_refused
from spdl.io.includes.libavcodec cimport AV_CODEC_ID_AV1
from spdl.io.includes.libavcodec cimport (
    AV_CODEC_ID_BMP, AV_CODEC_ID_DDS, AV_CODEC_ID_GIF, AV_CODEC_ID_JPEGLS, AV_CODEC_ID_MJPEG,
    AV_CODEC_ID_NONE,
    AV_CODEC_ID_PNG, AV_CODEC_ID_TIFF, AV_CODEC_ID_WEBP, avcodec_get_name, avcodec_parameters_alloc,
    avcodec_parameters_copy, avcodec_parameters_free, av_grow_packet, av_packet_alloc, av_packet_free,
    av_packet_move_ref, av_packet_unref, AVPacket,
)
from spdl.io.includes.libavformat cimport (
    AVFMT_FLAG_CUSTOM_IO, AVFormatContext, AVIOContext, AVSEEK_SIZE, av_find_input_format,
    av_read_frame, avformat_alloc_context, avformat_close_input, avformat_open_input,
    avio_alloc_context, avio_context_free,
)
from spdl.io.includes.libavutil cimport (
    AVDictionary, AVERROR, AVERROR_EOF, av_dict_copy, av_dict_free, av_dict_set, av_free, av_malloc,
)

cdef extern from "<errno.h>":
    int EPERM
    int EINVAL

cdef extern from "<stdio.h>":
    int snprintf(char *buf, size_t n, const char *fmt, ...) nogil
    int SEEK_SET
    int SEEK_CUR
    int SEEK_END

cdef extern from "libavutil/avutil.h":
    int AVMEDIA_TYPE_VIDEO

cdef extern from "csrc/bmp_rle.h" nogil:
    size_t bmp_mend(uint8_t *d, size_t n)

cdef extern from "csrc/tga.h" nogil:
    int TGA_NO
    int TGA_SHORT
    int tga_check(const uint8_t *d, size_t n)


#: The demuxers that may read a source: single-image formats only (ico: its largest
#: image). Playlists, concat scripts, SDP, devices, video containers and SVG are not
#: among them.
IMAGE_DEMUXERS = tuple(
    name for name in (
        "apng", "bmp_pipe", "cri_pipe", "dds_pipe", "dpx_pipe", "exr_pipe", "gem_pipe", "gif",
        "gif_pipe", "ico", "j2k_pipe", "jpeg_pipe", "jpegls_pipe", "jpegxl_pipe", "pam_pipe",
        "pbm_pipe", "pcx_pipe", "pfm_pipe", "pgm_pipe", "pgmyuv_pipe", "pgx_pipe", "phm_pipe",
        "photocd_pipe", "pictor_pipe", "png_pipe", "ppm_pipe", "psd_pipe", "qdraw_pipe",
        "qoi_pipe", "sgi_pipe", "sunrast_pipe", "tiff_pipe", "vbn_pipe", "webp_pipe",
        "xbm_pipe", "xpm_pipe", "xwd_pipe",
    )
    if av_find_input_format(name.encode()) != NULL
)
#: An icon file holds one image per size and depth: a few, never hundreds (each is a
#: stream to the ico demuxer).
cdef int MAX_ICO_IMAGES = 256
cdef bytes _WHITELIST = ",".join(IMAGE_DEMUXERS).encode()


cdef class CompiledDemuxConfig:
    def __dealloc__(self):
        av_dict_free(&self.spec.format_options)


cdef CompiledDemuxConfig compile_demux_config(object config):
    """Validate a DemuxConfig (or None) and build its C form."""
    config = config_or_default(config, DemuxConfig, "demux_config")
    cdef CompiledDemuxConfig o = CompiledDemuxConfig.__new__(CompiledDemuxConfig)
    o.config = config
    o.spec.format = NULL
    o.spec.format_options = NULL
    o.spec.buffer_size = config.buffer_size
    o.spec.max_file_size = config.max_file_size
    o.spec.format_whitelist = _WHITELIST
    if config.format is not None:
        if config.format not in IMAGE_DEMUXERS:
            from spdl.io._errors import ConfigError
            raise ConfigError(
                f"demux: format {config.format!r} is not one of the image demuxers of this "
                f"FFmpeg build: {', '.join(IMAGE_DEMUXERS)}", stage="demux")
        o._format = config.format.encode()
        o.spec.format = o._format
    for k, v in (config.format_options or {}).items():
        if av_dict_set(&o.spec.format_options, k.encode(), v.encode(), 0) < 0:
            raise MemoryError()
    return o


cdef bint _jpeg_ls(const uint8_t *d, int n) noexcept nogil:
    """A JPEG whose frame header is SOF55: JPEG-LS (ITU-T T.87), which libjpeg-turbo does not
    read and FFmpeg's jpegls decoder does. The marker segments before the first frame
    header or scan are walked (FF fill bytes skipped)."""
    cdef int pos = 2, m
    while pos + 4 <= n and d[pos] == 0xFF:
        m = d[pos + 1]
        if m == 0xFF:
            pos += 1
            continue
        if m == 0xF7:
            return True
        if m == 0xDA or (0xC0 <= m <= 0xCF and m != 0xC4 and m != 0xC8 and m != 0xCC):
            return False
        pos += 2 + (d[pos + 2] << 8 | d[pos + 3])
    return False


cdef AVCodecID sniff_codec(const uint8_t *d, int n, const char **format) noexcept nogil:
    """The codec of a single-image file known by its signature, and its container format's
    name in format; or NONE."""
    if n >= 3 and d[0] == 0xFF and d[1] == 0xD8 and d[2] == 0xFF:
        if _jpeg_ls(d, n):
            format[0] = "jpegls"
            return AV_CODEC_ID_JPEGLS
        format[0] = "jpeg"
        return AV_CODEC_ID_MJPEG
    if n >= 8 and memcmp(d, b"\x89PNG\r\n\x1a\n", 8) == 0:
        format[0] = "png"
        return AV_CODEC_ID_PNG
    if n >= 16 and memcmp(d, b"RIFF", 4) == 0 and memcmp(d + 8, b"WEBPVP8", 7) == 0:
        format[0] = "webp"
        return AV_CODEC_ID_WEBP
    if n >= 6 and (memcmp(d, b"GIF87a", 6) == 0 or memcmp(d, b"GIF89a", 6) == 0):
        format[0] = "gif"
        return AV_CODEC_ID_GIF
    if n >= 8 and (memcmp(d, b"II*\0", 4) == 0 or memcmp(d, b"MM\0*", 4) == 0):
        format[0] = "tiff"
        return AV_CODEC_ID_TIFF
    if n > 0 and bigtiff_signature(d, <size_t>n):  # libtiff reads it (FFmpeg does not)
        format[0] = "tiff"
        return AV_CODEC_ID_TIFF
    # BITMAPFILEHEADER then a DIB header whose size is one of the known ones
    if (n >= 18 and d[0] == ord('B') and d[1] == ord('M') and d[15] == 0 and d[16] == 0
            and d[17] == 0 and d[14] in (12, 40, 52, 56, 64, 108, 124)):
        format[0] = "bmp"
        return AV_CODEC_ID_BMP
    if n >= 16 and avif_brand(d, <size_t>n):  # an ftyp box listing 'avif' or 'avis'
        format[0] = "avif"
        return AV_CODEC_ID_AV1
    if n >= 128 and memcmp(d, b"DDS |\0\0\0", 8) == 0:  # magic, then the header size (124)
        format[0] = "dds"
        return AV_CODEC_ID_DDS
    return AV_CODEC_ID_NONE


cdef bint _at(const uint8_t *d, int n, int pos, const char *magic, int size) noexcept nogil:
    return n >= pos + size and memcmp(d + pos, magic, size) == 0


cdef bint webp_animated(const uint8_t *d, int n) noexcept nogil:
    """An extended WebP whose VP8X header says it is animated."""
    return _at(d, n, 12, b"VP8X", 4) and n > 20 and d[20] & 0x02


cdef bint _pam_header(const uint8_t *d, int n) noexcept nogil:
    """A PAM: P7, white space, then a header line (a token such as WIDTH, or a comment),
    which FFmpeg 5.1's probe does not take (it wants a digit there, as in P1-P6)."""
    return (n >= 4 and d[0] == 0x50 and d[1] == 0x37 and d[2] in (0x0A, 0x0D, 0x20, 0x09)
            and (0x41 <= d[3] <= 0x5A or d[3] == 0x23))


cdef int _text_start(const uint8_t *d, int n) noexcept nogil:
    """Where text starts after a UTF-8 byte order mark and white space."""
    cdef int i = 3 if _at(d, n, 0, b"\xef\xbb\xbf", 3) else 0
    while i < n and d[i] in (0x20, 0x09, 0x0A, 0x0D):
        i += 1
    return i


cdef bint _ico_header(const uint8_t *d, int n) noexcept nogil:
    """An ICO/CUR directory: reserved 0, type 1 or 2, at least one entry, every entry's
    reserved byte 0 and its data after the directory."""
    cdef int count, i, off
    if n < 22 or d[0] != 0 or d[1] != 0 or d[2] not in (1, 2) or d[3] != 0:
        return False
    count = d[4] | d[5] << 8
    if count == 0 or n < 6 + 16 * count:
        return False
    for i in range(count):
        off = 6 + 16 * i
        if d[off + 3] != 0 or (d[off + 12] | d[off + 13] << 8 | d[off + 14] << 16
                               | <long>d[off + 15] << 24) < 6 + 16 * count:
            return False
    return True


cdef int _ico_largest(const uint8_t *d, int n) noexcept nogil:
    """The directory entry of an ICO/CUR (checked by _ico_header) with the most pixels
    (a size byte of 0 is 256), then the most bits a pixel: the image a viewer shows."""
    cdef int i, off, best = 0
    cdef int64_t score, top = -1
    for i in range(d[4] | d[5] << 8):
        off = 6 + 16 * i
        score = ((d[off] or 256) * (d[off + 1] or 256)) * 64 + (d[off + 6] | d[off + 7] << 8) % 64
        if score > top:
            top, best = score, i
    return best


cdef void refusal_message(const uint8_t *d, int n, char *msg, size_t size) noexcept nogil:
    """Why no accepted demuxer opened d: what it looks like by its signature, and why
    that is refused; or, for anything else, that it is no image format this build takes."""
    cdef const char *video = "video containers are not read"
    cdef const char *demuxer = "not among the image demuxers this loader accepts"
    cdef int t = _text_start(d, n)
    if _at(d, n, 4, b"ftyp", 4) and n >= 12:
        if avif_brand(d, <size_t>n):  # (read by libavif unless a demuxer is forced)
            snprintf(msg, size, "looks like AVIF (ftyp %.4s): AVIF is decoded by libavif, "
                     "without a DemuxConfig format or format_options", d + 8)
        elif (_at(d, n, 8, b"hei", 3) or _at(d, n, 8, b"hev", 3) or _at(d, n, 8, b"mif1", 4)
                or _at(d, n, 8, b"msf1", 4)):
            snprintf(msg, size, "looks like HEIF/HEIC (ftyp %.4s): HEIF/HEIC is not supported "
                     "(AVIF is)", d + 8)
        else:
            snprintf(msg, size, "looks like an MP4/QuickTime file (ftyp %.4s): %s", d + 8, video)
    elif _ico_header(d, n):
        snprintf(msg, size, "looks like %s (header 00 00 0%d 00, %d images): the ico demuxer "
                 "is %s", "an ICO icon" if d[2] == 1 else "a CUR cursor", d[2],
                 d[4] | d[5] << 8, demuxer)
    elif _at(d, n, 0, b"\xff\x0a", 2) or _at(d, n, 0, b"\x00\x00\x00\x0cJXL \r\n\x87\n", 12):
        snprintf(msg, size, "looks like JPEG XL (%s): %s",
                 "codestream FF 0A" if d[0] == 0xFF else "JXL container",
                 "its demuxer did not take it" if av_find_input_format("jpegxl_pipe") != NULL
                 else "this build's FFmpeg has no JPEG XL support (libjxl)")
    elif _at(d, n, 0, b"%PDF-", 5):
        snprintf(msg, size, "looks like a PDF document (%%PDF-): documents are not rasterised")
    elif (_at(d, n, t, b"<svg", 4) or _at(d, n, t, b"<?xml", 5)
            or _at(d, n, t, b"<!DOCTYPE svg", 13)):
        snprintf(msg, size, "looks like SVG/XML text (%.5s): vector images are not rasterised",
                 d + t)
    elif _at(d, n, t, b"<!DOCTYPE html", 14) or _at(d, n, t, b"<html", 5):
        snprintf(msg, size, "looks like an HTML page (%.5s): not an image", d + t)
    elif _at(d, n, 0, b"\x1a\x45\xdf\xa3", 4):
        snprintf(msg, size, "looks like a Matroska/WebM file (EBML header): %s", video)
    elif _at(d, n, 0, b"RIFF", 4) and _at(d, n, 8, b"AVI ", 4):
        snprintf(msg, size, "looks like an AVI file (RIFF AVI): %s", video)
    elif _at(d, n, 0, b"FLV\x01", 4):
        snprintf(msg, size, "looks like an FLV file (FLV header): %s", video)
    elif _at(d, n, 0, b"OggS", 4):
        snprintf(msg, size, "looks like an Ogg file (OggS): %s", video)
    elif n > 376 and d[0] == 0x47 and d[188] == 0x47 and d[376] == 0x47:
        snprintf(msg, size, "looks like an MPEG transport stream (sync bytes every 188): %s",
                 video)
    elif _at(d, n, 0, b"\x00\x00\x01\xba", 4):
        snprintf(msg, size, "looks like an MPEG program stream (pack header): %s", video)
    elif _at(d, n, 4, b"moov", 4) or _at(d, n, 4, b"mdat", 4):
        snprintf(msg, size, "looks like a QuickTime file (%.4s atom): %s", d + 4, video)
    else:
        snprintf(msg, size, "not an image format this build accepts")


cdef struct MemReader:
    const uint8_t *data
    int64_t size
    int64_t pos


cdef int _mem_read(void *opaque, uint8_t *buf, int buf_size) noexcept nogil:
    cdef MemReader *r = <MemReader *>opaque
    cdef int64_t n = r.size - r.pos
    if n <= 0:
        return AVERROR_EOF
    if n > buf_size:
        n = buf_size
    memcpy(buf, r.data + r.pos, n)
    r.pos += n
    return <int>n


cdef int64_t _mem_seek(void *opaque, int64_t offset, int whence) noexcept nogil:
    cdef MemReader *r = <MemReader *>opaque
    cdef int64_t pos
    if whence & AVSEEK_SIZE:
        return r.size
    whence &= ~AVSEEK_SIZE
    if whence == SEEK_SET:
        pos = offset
    elif whence == SEEK_CUR:
        pos = r.pos + offset
    elif whence == SEEK_END:
        pos = r.size + offset
    else:
        return AVERROR(EINVAL)
    if pos < 0 or pos > r.size:
        return AVERROR(EINVAL)
    r.pos = pos
    return pos


cdef int _refuse_open(AVFormatContext *s, AVIOContext **pb, const char *url, int flags,
                      AVDictionary **options) noexcept nogil:
    # A demuxer asked to open another resource (a playlist entry, a sibling file).
    return AVERROR(EPERM)


cdef int demux_init(Demuxed *d) noexcept nogil:
    d.par = NULL
    d.codec_id = AV_CODEC_ID_NONE
    d.format = NULL
    d.orientation = 1
    d.pkt = av_packet_alloc()
    return 0 if d.pkt != NULL else -1


cdef void demux_clear(Demuxed *d) noexcept nogil:
    av_packet_free(&d.pkt)
    avcodec_parameters_free(&d.par)


cdef void demux_reset(Demuxed *d) noexcept nogil:
    """Make d ready for the next source, keeping its packet allocation."""
    av_packet_unref(d.pkt)
    avcodec_parameters_free(&d.par)
    d.codec_id = AV_CODEC_ID_NONE
    d.format = NULL
    d.orientation = 1


cdef int _orientation(AVCodecID codec_id, const uint8_t *d, int n) noexcept nogil:
    """The EXIF orientation an image's data carries (1 when none, or for other formats)."""
    cdef JpegMarkers m
    if codec_id == AV_CODEC_ID_MJPEG and n >= 4 and d[0] == 0xFF and d[1] == 0xD8:
        jpeg_walk_markers(d, <size_t>n, &m)
        return m.orientation
    if codec_id == AV_CODEC_ID_WEBP:
        return webp_orientation(d, n)
    if codec_id == AV_CODEC_ID_PNG and n >= 8 and memcmp(d, b"\x89PNG\r\n\x1a\n", 8) == 0:
        return png_orientation(d, n)
    if codec_id == AV_CODEC_ID_AV1:  # the primary item's irot/imir
        return avif_orientation(d, <size_t>n)
    if codec_id == AV_CODEC_ID_TIFF and n > 0 and bigtiff_signature(d, <size_t>n):
        return bigtiff_orientation(d, <size_t>n)
    if codec_id == AV_CODEC_ID_TIFF and n > 0:
        # the file is a TIFF structure: IFD0's Orientation tag, of the image FFmpeg decodes
        # (its decoder does not apply it)
        return exif_orientation(d, <size_t>n)
    return 1


cdef int _demux_with_libavformat(AVPacket *data, const DemuxSpec *opts, Demuxed *out,
                                 Status *err) noexcept nogil:
    """Read the first video packet of data with an image demuxer."""
    cdef MemReader reader
    reader.data = data.data
    reader.size = data.size
    reader.pos = 0
    cdef AVFormatContext *fmt = avformat_alloc_context()
    cdef AVDictionary *options = NULL
    cdef unsigned char *iobuf = NULL
    cdef AVIOContext *io = NULL
    cdef int ret, i, video = -1
    cdef char msg[200]
    if fmt == NULL:
        return fail(err, ERR_NOMEM, "demux", "avformat_alloc_context", 0, "out of memory")
    iobuf = <unsigned char *>av_malloc(opts.buffer_size)
    if iobuf != NULL:
        io = avio_alloc_context(iobuf, opts.buffer_size, 0, &reader, _mem_read, NULL, _mem_seek)
    if io == NULL:
        av_free(iobuf)
        avformat_close_input(&fmt)
        return fail(err, ERR_NOMEM, "demux", "avio_alloc_context", 0, "out of memory")
    fmt.pb = io
    fmt.opaque = err  # the demuxer's log lines go to this status
    fmt.flags |= AVFMT_FLAG_CUSTOM_IO
    fmt.io_open = _refuse_open
    ret = 0
    if opts.format_options != NULL:
        ret = av_dict_copy(&options, opts.format_options, 0)
    if ret >= 0:
        ret = av_dict_set(&options, "format_whitelist", opts.format_whitelist, 0)
    if ret >= 0:
        ret = av_dict_set(&options, "protocol_whitelist", "none", 0)
    if ret < 0:
        av_dict_free(&options)
        _free_io(&io)
        avformat_close_input(&fmt)
        return fail(err, ERR_NOMEM, "demux", "av_dict_set", ret, NULL)
    if (data.size >= 6 and data.data[0] == 0 and data.data[1] == 0 and data.data[2] in (1, 2)
            and data.data[3] == 0 and (data.data[4] | data.data[5] << 8) > MAX_ICO_IMAGES):
        av_dict_free(&options)
        _free_io(&io)
        avformat_close_input(&fmt)
        return fail(err, ERR_FORMAT, "demux", "avformat_open_input", 0,
                    "looks like an ICO/CUR with more images than any icon has (over 256)")
    # A cursor is an icon whose type field is 2, which FFmpeg's icon probe does not take;
    # nor does its PAM probe take a PAM.
    ret = avformat_open_input(&fmt, NULL,
                              av_find_input_format(opts.format) if opts.format != NULL
                              else av_find_input_format("ico") if _ico_header(data.data, data.size)
                              else av_find_input_format("pam_pipe")
                              if _pam_header(data.data, data.size) else NULL, &options)
    if ret < 0:
        av_dict_free(&options)
        _free_io(&io)  # fmt was freed by avformat_open_input
        refusal_message(data.data, data.size, msg, sizeof(msg))
        return fail(err, ERR_FORMAT, "demux", "avformat_open_input", ret, msg)
    ret = check_consumed(options, "demuxer", fmt.iformat.name, "demux", "avformat_open_input", err)
    av_dict_free(&options)
    if ret < 0:
        avformat_close_input(&fmt)
        _free_io(&io)
        return -1
    if memcmp(fmt.iformat.name, b"ico", 4) == 0:
        video = _ico_largest(data.data, data.size)  # stream i is entry i of the directory
        if video >= <int>fmt.nb_streams:
            video = -1
    else:
        for i in range(<int>fmt.nb_streams):
            if fmt.streams[i].codecpar.codec_type == AVMEDIA_TYPE_VIDEO:
                video = i
                break
    if video < 0:
        avformat_close_input(&fmt)
        _free_io(&io)
        return fail(err, ERR_FORMAT, "demux", "avformat_open_input", 0, "no image stream")
    while True:
        ret = av_read_frame(fmt, out.pkt)
        if ret < 0 or out.pkt.stream_index == video:
            break
        av_packet_unref(out.pkt)
    if ret >= 0:
        out.par = avcodec_parameters_alloc()
        if out.par == NULL or avcodec_parameters_copy(out.par, fmt.streams[video].codecpar) < 0:
            ret = -1
            fail(err, ERR_NOMEM, "demux", "avcodec_parameters_copy", 0, "out of memory")
        else:
            out.codec_id = out.par.codec_id
            out.format = fmt.iformat.name  # static string in libavformat
    else:
        fail(err, ERR_DECODE if ret != AVERROR_EOF else ERR_FORMAT, "demux", "av_read_frame",
             ret, "no image data")
    avformat_close_input(&fmt)
    _free_io(&io)
    return 0 if ret >= 0 else -1


cdef void _free_io(AVIOContext **io) noexcept nogil:
    if io[0] != NULL:
        av_free(io[0].buffer)  # may differ from the one we allocated; it is the current one
        avio_context_free(io)


cdef const unsigned char *_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # an empty chunk and its CRC


cdef const unsigned char *_EOI = b"\xff\xd9"


cdef const unsigned char *_ZEROS = b"\0\0\0\0"


cdef int _append(AVPacket *pkt, const unsigned char *data, int size, Status *err) noexcept nogil:
    """Append size bytes to our copy of the source, in pkt."""
    if av_grow_packet(pkt, size) < 0:
        return fail(err, ERR_NOMEM, "demux", "av_grow_packet", 0, "out of memory")
    memcpy(pkt.data + pkt.size - size, data, size)
    return 0


cdef void _shrink(AVPacket *pkt, int size) noexcept nogil:
    """Cut pkt's data to size, zeroing what was after it (the padding the decoders read)."""
    if size < pkt.size:
        memset(pkt.data + size, 0, <size_t>(pkt.size - size))
        pkt.size = size


cdef int _as_tga(AVPacket *raw, Demuxed *out, Status *err) noexcept nogil:
    """A file no signature nor demuxer took: a TGA image if its header says so strictly
    (csrc/tga.h; the format has no magic number), the whole file its packet; else the
    refusal in err stands (-1)."""
    cdef int kind = tga_check(raw.data, <size_t>raw.size)
    if kind == TGA_NO:
        return -1
    status_init(err, err.index)
    if kind == TGA_SHORT:
        return fail(err, ERR_DECODE, "demux", "tga_check", 0, "looks like a TGA image, "
                    "truncated: the file is shorter than its pixels")
    av_packet_unref(out.pkt)
    av_packet_move_ref(out.pkt, raw)
    if out.pkt.data[16] == 15 and out.pkt.data[17] & 0x10:
        # FFmpeg 5.1 mirrors right-to-left rows of 16 bits, not of 15: the same layout
        out.pkt.data[16] = 16
    out.codec_id = AV_CODEC_ID_TARGA
    out.format = "tga"
    return 0


cdef extern from "csrc/pnm.h" nogil:
    ctypedef struct PnmHeader:
        size_t maxval_at
        size_t maxval_end
        size_t data_at
    bint pnm_maxval_span(const uint8_t *d, size_t n, PnmHeader *h)
    void pnm_rescale(uint8_t *d, size_t n, const PnmHeader *h)


cdef int _pnm_to_maxval_255(AVPacket *pkt, Status *err) noexcept nogil:
    """A binary PGM/PPM/PAM of maxval below 255: its samples rescaled to round(v*255/maxval)
    and its maxval made 255, in our copy (FFmpeg 5.1's decoder wraps white to 0 at maxval
    250 and 254, and rounds down below)."""
    cdef PnmHeader h
    cdef int old, delta, size = pkt.size
    if not pnm_maxval_span(pkt.data, <size_t>size, &h):
        return 0
    pnm_rescale(pkt.data, <size_t>size, &h)
    old = <int>(h.maxval_end - h.maxval_at)
    delta = 3 - old
    if delta > 0 and av_grow_packet(pkt, delta) < 0:
        return fail(err, ERR_NOMEM, "demux", "av_grow_packet", 0, "out of memory")
    memmove(pkt.data + h.maxval_end + delta, pkt.data + h.maxval_end,
            <size_t>(size - <int>h.maxval_end))
    memcpy(pkt.data + h.maxval_at, b"255", 3)
    if delta < 0:
        _shrink(pkt, size + delta)
    return 0


cdef int demux_source(const SourceRef *src, const DemuxSpec *opts, Demuxed *out,
                      Status *err) noexcept nogil:
    """Fill out (initialised by demux_init) with the image's packet."""
    cdef AVPacket *raw
    cdef int ret
    cdef JpegMarkers m
    cdef size_t pad
    cdef char avif_msg[200]
    out.orientation = 1
    if read_source(src, opts.max_file_size, out.pkt, err) < 0:
        return -1
    if opts.format == NULL and opts.format_options == NULL:
        out.codec_id = sniff_codec(out.pkt.data, out.pkt.size, &out.format)
        if out.codec_id == AV_CODEC_ID_AV1 and avif_refused(out.pkt.data, out.pkt.size, avif_msg,
                                                            sizeof(avif_msg)):
            return fail(err, ERR_FORMAT, "demux", "sniff", 0, avif_msg)
        if out.codec_id == AV_CODEC_ID_MJPEG:
            jpeg_walk_markers(out.pkt.data, <size_t>out.pkt.size, &m)  # one walk for both
            out.orientation = m.orientation
        elif out.codec_id != AV_CODEC_ID_NONE:
            out.orientation = _orientation(out.codec_id, out.pkt.data, out.pkt.size)
        if out.codec_id == AV_CODEC_ID_WEBP:
            # our own copy of the source: metadata the decoder would misjudge goes (the
            # orientation was read above)
            _shrink(out.pkt, webp_strip_metadata(out.pkt.data, out.pkt.size))
        elif out.codec_id == AV_CODEC_ID_PNG and png_lacks_only_iend(out.pkt.data, out.pkt.size):
            # complete image data, trailer missing: give the decoder the trailer
            if _append(out.pkt, _IEND, 12, err) < 0:
                return -1
        elif out.codec_id == AV_CODEC_ID_MJPEG and jpeg_markers_lack_eoi(&m):
            # the end-of-image marker missing: with it, libjpeg says whether every scan is
            # there; if not, the data goes as it came, and is refused as truncated
            if _append(out.pkt, _EOI, 2, err) < 0:
                return -1
            if not jpeg_scans_complete(out.pkt.data, out.pkt.size):
                _shrink(out.pkt, out.pkt.size - 2)
        elif out.codec_id == AV_CODEC_ID_BMP:
            # header fields FFmpeg refuses decodable files for, mended in our copy; only
            # the last row's padding missing: given back (at most 3 bytes)
            pad = bmp_mend(out.pkt.data, <size_t>out.pkt.size)
            if pad > 0 and _append(out.pkt, _ZEROS, <int>pad, err) < 0:
                return -1
        if out.codec_id != AV_CODEC_ID_NONE:
            return 0
    if opts.format == NULL and _pnm_to_maxval_255(out.pkt, err) < 0:
        return -1
    raw = av_packet_alloc()
    if raw == NULL:
        return fail(err, ERR_NOMEM, "demux", "av_packet_alloc", 0, "out of memory")
    # The raw file moves to raw; the demuxer's packet lands in out.pkt.
    av_packet_move_ref(raw, out.pkt)
    ret = _demux_with_libavformat(raw, opts, out, err)
    if ret < 0 and err.kind == ERR_FORMAT and opts.format == NULL:
        ret = _as_tga(raw, out, err)
    av_packet_free(&raw)
    if ret >= 0:
        out.orientation = _orientation(out.codec_id, out.pkt.data, out.pkt.size)
    return ret


cdef class ImagePackets:
    """The encoded data of one image, as demuxed from its source.

    Made by :func:`demux_image`; cannot be created directly.
    """

    def __init__(self, *args, **kwargs):
        raise TypeError("ImagePackets cannot be created directly; use spdl.io.demux_image")

    def __cinit__(self):
        if demux_init(&self.d) < 0:
            raise MemoryError()

    def __dealloc__(self):
        demux_clear(&self.d)

    @property
    def codec(self):
        """The codec's FFmpeg name, for example ``"mjpeg"`` or ``"png"``."""
        return avcodec_get_name(self.d.codec_id).decode()

    @property
    def format(self):
        """The container format: ``"jpeg"``, ``"png"`` ... or a demuxer's name."""
        return self.d.format.decode() if self.d.format != NULL else None

    @property
    def nbytes(self):
        """The size of the encoded data."""
        return self.d.pkt.size

    def __repr__(self):
        return f"ImagePackets(source={self.source!r}, codec={self.codec!r}, nbytes={self.nbytes})"


def demux_image(src, *, demux_config=None):
    """Read one image source into its encoded packet.

    Args:
        src: A file path (str or os.PathLike) or a bytes-like object holding
            the encoded image.
        demux_config: A :class:`DemuxConfig`, or None for the defaults.

    Returns:
        ImagePackets.

    Raises:
        SourceError: the file cannot be read, is not a regular file, or is
            larger than ``demux_config.max_file_size``.
        UnsupportedFormatError: the data is not an accepted image format.
    """
    cdef CompiledDemuxConfig o = compile_demux_config(demux_config)
    cdef Source s = make_source(src, "bytes")
    cdef ImagePackets p = ImagePackets.__new__(ImagePackets)
    cdef Status err
    cdef int ret
    p.source = s.name
    if s.invalid is not None:
        from spdl.io._errors import SourceError
        raise SourceError(f"demux: open failed for {s.name!r}: {s.invalid}", source=s.name,
                          stage="demux")
    status_init(&err, -1)
    with nogil:
        ret = demux_source(&s.ref, &o.spec, &p.d, &err)
    if ret < 0:
        raise_error(&err, s.name)
    return p
