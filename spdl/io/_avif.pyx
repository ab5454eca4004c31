# cython: language_level=3
"""AVIF still images: libavif (0.11.1 API; it decodes AV1 with dav1d), from memory.

avif_probe walks the few boxes that say what a file is and how it is shown
(ftyp's brands; meta: pitm, iprp's ipco and ipma), without libavif and without
touching image data: the demuxer uses it to refuse pure image sequences and to
read the primary item's irot/imir as an EXIF orientation, which the pipeline
applies like any other (DecodeConfig(apply_orientation=False) keeps the stored
pixels); avif_decode uses its ispe to refuse an image over max_pixels before
libavif allocates anything.

avif_decode makes one libavif decoder per image (no state is shared between
threads): the primary item only, one thread, Exif and XMP not read, the size
limits from max_pixels, reading the packet in memory (libavif opens nothing
else). Colour is converted by libavif (avifImageYUVToRGB) straight into the
frame: rgb24, or rgb48 above 8 bits, and rgba/rgba64 when the image has alpha
(straight, not premultiplied: the stored colour of every pixel, as the loader
gives everywhere). The clean aperture (clap) is applied; an invalid one is refused
by libavif's default strict checks (a DecodeError naming it), so the fallback here
of decoding the whole image is only for a clap libavif accepts and cannot map.

A DecodeConfig decoder or decoder_options send the file to FFmpeg instead, which
has no AVIF demuxer in 5.1 and fails on it. dav1d writes its own messages on
damaged AV1 data to stderr (libavif 0.11.1 gives no way to route them).
"""

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcmp, memset

from spdl.io._status cimport ERR_DECODE, ERR_NOMEM, Status, fail, fail_too_large
from spdl.io.includes.libavif cimport (
    AVIF_DECODER_SOURCE_PRIMARY_ITEM, AVIF_DEFAULT_IMAGE_SIZE_LIMIT, AVIF_RESULT_OK,
    AVIF_RESULT_OUT_OF_MEMORY, AVIF_RGB_FORMAT_RGB, AVIF_RGB_FORMAT_RGBA, AVIF_TRANSFORM_CLAP,
    avifCropRect, avifCropRectConvertCleanApertureBox, avifDecoder, avifDecoderCreate,
    avifDecoderDestroy, avifDecoderNextImage, avifDecoderParse, avifDecoderSetIOMemory, avifImage,
    avifImageCreateEmpty, avifImageDestroy, avifImageSetViewRect, avifImageYUVToRGB, avifResult,
    avifResultToString, avifRGBImage, avifRGBImageSetDefaults,
)
from spdl.io.includes.libavutil cimport (
    AV_PIX_FMT_RGB24, AV_PIX_FMT_RGB48, AV_PIX_FMT_RGBA, AV_PIX_FMT_RGBA64, AVCOL_RANGE_JPEG,
    AVFrame, av_frame_get_buffer, av_frame_unref,
)

cdef extern from "<stdio.h>":
    int snprintf(char *buf, size_t n, const char *fmt, ...) nogil


cdef inline uint32_t _be16(const uint8_t *p) noexcept nogil:
    return (<uint32_t>p[0] << 8) | p[1]


cdef inline uint32_t _be32(const uint8_t *p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef struct Box:
    const uint8_t *type
    size_t body             # where its contents start
    size_t end              # where it ends: the next box


cdef bint _box(const uint8_t *d, size_t pos, size_t end, Box *b) noexcept nogil:
    """The box at pos of a list of boxes ending at end; False when no whole box is there."""
    cdef uint64_t size
    cdef size_t head = 8
    if pos > end or end - pos < 8:
        return False
    size = _be32(d + pos)
    if size == 1:  # a 64-bit size follows the type
        if end - pos < 16:
            return False
        size = (<uint64_t>_be32(d + pos + 8) << 32) | _be32(d + pos + 12)
        head = 16
    elif size == 0:  # to the end of the enclosing box
        size = end - pos
    if size < head or size > end - pos:
        return False
    b.type = d + pos + 4
    b.body = pos + head
    b.end = pos + <size_t>size
    return True


cdef bint _find(const uint8_t *d, size_t pos, size_t end, const char *type, Box *b) noexcept nogil:
    """The first box of the given type in the list at pos..end."""
    while _box(d, pos, end, b):
        if memcmp(b.type, type, 4) == 0:
            return True
        pos = b.end
    return False


cdef bint _brands(const uint8_t *d, size_t n, AvifInfo *info) noexcept nogil:
    """Fill info's brands from d's ftyp, which must be the first box; False if there is none."""
    cdef Box ftyp
    cdef size_t off
    if not _box(d, 0, n, &ftyp) or memcmp(ftyp.type, b"ftyp", 4) != 0 or ftyp.end - ftyp.body < 8:
        return False
    off = ftyp.body
    while ftyp.end - off >= 4:  # the major brand, the minor version, the compatible brands
        if off != ftyp.body + 4:
            if memcmp(d + off, b"avif", 4) == 0:
                info.still = True
            elif memcmp(d + off, b"avis", 4) == 0:
                info.sequence = True
        off += 4
    return True


# irot's angle (0..3, anticlockwise quarter turns) then imir's mirror, as the EXIF
# orientation of the same transform: [no imir, imir mode 0 (top <-> bottom), imir
# mode 1 (left <-> right)][angle]. HEIF applies irot before imir.
cdef int[3][4] _ORIENTATION = [[1, 8, 3, 6], [4, 5, 2, 7], [2, 7, 4, 5]]


cdef void _properties(const uint8_t *d, size_t n, const Box *iprp, uint32_t item,
                      AvifInfo *info) noexcept nogil:
    """The item's ispe, irot and imir, from the ipma associations and the ipco list."""
    cdef uint8_t wanted[4096]  # a bit per property index (1..32767)
    cdef Box b, ipco
    cdef size_t p, pos
    cdef uint32_t count, i, j, nassoc, id, index, k
    cdef int version, psize, idsize, angle = 0, mirror = -1
    cdef bint found = False
    if not _find(d, iprp.body, iprp.end, b"ipco", &ipco):
        return
    memset(wanted, 0, sizeof(wanted))
    pos = iprp.body
    while not found and _find(d, pos, iprp.end, b"ipma", &b):
        pos = b.end
        if b.end - b.body < 8:
            continue
        version = d[b.body]
        psize = 2 if d[b.body + 3] & 1 else 1
        idsize = 2 if version < 1 else 4
        count = _be32(d + b.body + 4)
        p = b.body + 8
        i = 0
        while i < count and b.end - p >= <size_t>idsize + 1:  # each entry takes 3+ bytes
            id = _be16(d + p) if idsize == 2 else _be32(d + p)
            nassoc = d[p + idsize]
            p += idsize + 1
            if b.end - p < nassoc * psize:
                break
            if id == item:
                for j in range(nassoc):
                    index = (_be16(d + p + j * 2) & 0x7FFF) if psize == 2 else d[p + j] & 0x7F
                    wanted[index >> 3] |= 1 << (index & 7)
                found = True
                break
            p += nassoc * psize
            i += 1
    if not found:
        return
    k = 1  # property indices count from 1
    pos = ipco.body
    while k < 32768 and _box(d, pos, ipco.end, &b):
        if wanted[k >> 3] & (1 << (k & 7)):
            if memcmp(b.type, b"ispe", 4) == 0 and b.end - b.body >= 12:
                info.width = _be32(d + b.body + 4)
                info.height = _be32(d + b.body + 8)
            elif memcmp(b.type, b"irot", 4) == 0 and b.end > b.body:
                angle = d[b.body] & 3
            elif memcmp(b.type, b"imir", 4) == 0 and b.end > b.body:
                mirror = d[b.body] & 1
        pos = b.end
        k += 1
    info.orientation = _ORIENTATION[mirror + 1][angle]


cdef void avif_probe(const uint8_t *d, size_t n, AvifInfo *info) noexcept nogil:
    cdef Box meta, b
    cdef size_t pos
    cdef uint32_t primary = 0
    cdef bint iprp = False
    cdef Box iprp_box
    memset(info, 0, sizeof(AvifInfo))
    info.orientation = 1
    if not _brands(d, n, info):
        return
    pos = 0
    if not _find(d, pos, n, b"meta", &meta) or meta.end - meta.body < 4:
        return
    pos = meta.body + 4  # a full box: version and flags
    while _box(d, pos, meta.end, &b):
        if memcmp(b.type, b"pitm", 4) == 0 and b.end - b.body >= 6:
            if d[b.body] == 0:
                primary = _be16(d + b.body + 4)
                info.primary = True
            elif b.end - b.body >= 8:
                primary = _be32(d + b.body + 4)
                info.primary = True
        elif memcmp(b.type, b"iprp", 4) == 0 and not iprp:
            iprp_box = b
            iprp = True
        pos = b.end
    if info.primary and iprp:
        _properties(d, n, &iprp_box, primary, info)


cdef bint avif_brand(const uint8_t *d, size_t n) noexcept nogil:
    cdef AvifInfo info
    memset(&info, 0, sizeof(AvifInfo))
    return _brands(d, n, &info) and (info.still or info.sequence)


cdef int avif_orientation(const uint8_t *d, size_t n) noexcept nogil:
    cdef AvifInfo info
    avif_probe(d, n, &info)
    return info.orientation


cdef bint avif_refused(const uint8_t *d, size_t n, char *msg, size_t size) noexcept nogil:
    cdef AvifInfo info
    avif_probe(d, n, &info)
    if info.sequence and not info.primary:
        snprintf(msg, size, "AVIF image sequence: only still AVIF images are decoded (ftyp "
                 "'avis' and no primary image item)")
        return True
    return False


cdef int _libavif_error(avifDecoder *dec, avifResult r, const char *op,
                        Status *err) noexcept nogil:
    """Fail with libavif's result and its diagnostic message."""
    cdef char msg[256]
    if dec.diag.error[0] != 0:
        snprintf(msg, sizeof(msg), "%s: %.200s", avifResultToString(r), dec.diag.error)
    else:
        snprintf(msg, sizeof(msg), "%s", avifResultToString(r))
    return fail(err, ERR_NOMEM if r == AVIF_RESULT_OUT_OF_MEMORY else ERR_DECODE, "decode", op,
                <int>r, msg)


cdef int _convert(avifDecoder *dec, int64_t max_pixels, AVFrame *frame,
                  Status *err) noexcept nogil:
    """The decoded image (its clean aperture, when valid) into frame, by libavif."""
    cdef avifImage *image = dec.image
    cdef avifImage *view = NULL
    cdef avifCropRect rect
    cdef avifRGBImage rgb
    cdef avifResult r
    cdef bint alpha = image.alphaPlane != NULL
    cdef int ret
    if <int64_t>image.width * image.height > max_pixels:  # the AV1 data's own size
        return fail_too_large(err, "avifDecoderNextImage", "the image", image.width,
                              image.height, max_pixels)
    if (image.transformFlags & AVIF_TRANSFORM_CLAP and avifCropRectConvertCleanApertureBox(
            &rect, &image.clap, image.width, image.height, image.yuvFormat, &dec.diag)):
        view = avifImageCreateEmpty()
        if view == NULL:
            return fail(err, ERR_NOMEM, "decode", "avifImageCreateEmpty", 0, "out of memory")
        r = avifImageSetViewRect(view, image, &rect)
        if r != AVIF_RESULT_OK:
            avifImageDestroy(view)
            return _libavif_error(dec, r, "avifImageSetViewRect", err)
        image = view
    avifRGBImageSetDefaults(&rgb, image)
    rgb.depth = 8 if image.depth <= 8 else 16
    rgb.format = AVIF_RGB_FORMAT_RGBA if alpha else AVIF_RGB_FORMAT_RGB
    frame.width, frame.height = image.width, image.height
    frame.format = ((AV_PIX_FMT_RGBA if alpha else AV_PIX_FMT_RGB24) if rgb.depth == 8
                    else (AV_PIX_FMT_RGBA64 if alpha else AV_PIX_FMT_RGB48))
    ret = av_frame_get_buffer(frame, 0)
    if ret < 0:
        if view != NULL:
            avifImageDestroy(view)
        return fail(err, ERR_NOMEM, "decode", "av_frame_get_buffer", ret, NULL)
    frame.color_range = AVCOL_RANGE_JPEG
    rgb.pixels = frame.data[0]
    rgb.rowBytes = frame.linesize[0]
    r = avifImageYUVToRGB(image, &rgb)
    if view != NULL:
        avifImageDestroy(view)  # a view: the pixels stay the decoder's
    if r != AVIF_RESULT_OK:
        av_frame_unref(frame)
        return _libavif_error(dec, r, "avifImageYUVToRGB", err)
    return 0


cdef int avif_decode(const uint8_t *d, size_t n, int64_t max_pixels, AVFrame *frame,
                     Status *err) noexcept nogil:
    cdef AvifInfo info
    cdef avifDecoder *dec
    cdef avifResult r
    cdef int ret
    avif_probe(d, n, &info)
    if <int64_t>info.width * info.height > max_pixels:  # the header's size, before libavif
        return fail_too_large(err, "avif_probe", "the image", info.width, info.height,
                              max_pixels)
    dec = avifDecoderCreate()
    if dec == NULL:
        return fail(err, ERR_NOMEM, "decode", "avifDecoderCreate", 0, "out of memory")
    dec.maxThreads = 1  # images are decoded in parallel, one per thread
    dec.requestedSource = AVIF_DECODER_SOURCE_PRIMARY_ITEM
    dec.ignoreExif = True
    dec.ignoreXMP = True
    # every item's ispe (parse) and the AV1 frame (dav1d's frame_size_limit) are held to
    # this; libavif takes no more than its default
    dec.imageSizeLimit = <uint32_t>(max_pixels if max_pixels < AVIF_DEFAULT_IMAGE_SIZE_LIMIT
                                    else AVIF_DEFAULT_IMAGE_SIZE_LIMIT)
    dec.imageCountLimit = 1
    r = avifDecoderSetIOMemory(dec, d, n)
    if r == AVIF_RESULT_OK:
        r = avifDecoderParse(dec)
        if r != AVIF_RESULT_OK:
            ret = _libavif_error(dec, r, "avifDecoderParse", err)
        elif <int64_t>dec.image.width * dec.image.height > max_pixels:
            ret = fail_too_large(err, "avifDecoderParse", "the image", dec.image.width,
                                 dec.image.height, max_pixels)
        else:
            r = avifDecoderNextImage(dec)
            if r != AVIF_RESULT_OK:
                ret = _libavif_error(dec, r, "avifDecoderNextImage", err)
            else:
                ret = _convert(dec, max_pixels, frame, err)
    else:
        ret = _libavif_error(dec, r, "avifDecoderSetIOMemory", err)
    avifDecoderDestroy(dec)
    return ret
