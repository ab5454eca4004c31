# cython: language_level=3
"""TIFF through libtiff: the first image of the file, its stored samples and precision.

The packet is opened from memory (csrc/tiff_io.h: callbacks over our bytes, per-handle
error and warning handlers, libtiff's single-allocation limit). The common layouts are
read strip by strip or tile by tile (TIFFReadEncodedStrip/Tile: every compression this
libtiff has, FillOrder undone by libtiff) and unpacked here, keeping the stored values:

- grey of 8/16 bits -> gray8/gray16, with alpha -> ya8/ya16; 1/2/4 bits -> gray8 at full
  range (v * 255 / max); MinIsWhite inverted;
- RGB of 8/16 bits -> rgb24/rgb48, with alpha -> rgba/rgba64: straight alpha, as every
  other format gives it (unassociated as stored; associated, premultiplied, divided out as
  Pillow does); JPEG-compressed YCbCr through libjpeg's RGB;
- palette of 1..16 bits -> rgb24 through the colour map (16-bit entries >> 8, unless
  every entry is below 256: an 8-bit map, as libtiff takes it), with 8-bit alpha -> rgba;
- CMYK of 8 bits -> rgb24 (rgba with alpha), r = (255 - k) - round(c * (255 - k) / 255),
  the separation Pillow's convert("RGB") uses;

contiguous or planar. The rest libtiff can turn into RGBA (YCbCr without JPEG, old-style
JPEG, LogLuv, ...) goes through TIFFRGBAImage in the stored orientation -> rgba. Float and
signed samples, CIE L*a*b* (libtiff's conversion tints white) and depths neither way
reads are refused with their name.

The Orientation tag is not applied here: the pipeline does (Demuxed.orientation).
"""

from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset

from spdl.io._status cimport ERR_DECODE, ERR_FORMAT, ERR_NOMEM, ERR_TOO_LARGE, Status, fail, fail_too_large
from spdl.io.includes.libavutil cimport (
    AV_PIX_FMT_GRAY8, AV_PIX_FMT_GRAY16, AV_PIX_FMT_RGB24, AV_PIX_FMT_RGB48, AV_PIX_FMT_RGBA,
    AV_PIX_FMT_RGBA64, AV_PIX_FMT_YA8, AV_PIX_FMT_YA16, AVCOL_RANGE_JPEG, AVFrame, AVPixelFormat,
    av_frame_get_buffer, av_frame_unref,
)
from spdl.io.includes.libtiff cimport (
    COMPRESSION_JPEG, EXTRASAMPLE_ASSOCALPHA, EXTRASAMPLE_UNASSALPHA, INKSET_CMYK,
    PHOTOMETRIC_CIELAB, PHOTOMETRIC_ICCLAB, PHOTOMETRIC_ITULAB, PHOTOMETRIC_LOGL, PHOTOMETRIC_LOGLUV, PHOTOMETRIC_MINISBLACK, PHOTOMETRIC_MINISWHITE,
    PHOTOMETRIC_PALETTE, PHOTOMETRIC_RGB, PHOTOMETRIC_SEPARATED, PHOTOMETRIC_YCBCR,
    PLANARCONFIG_SEPARATE, SAMPLEFORMAT_COMPLEXIEEEFP, SAMPLEFORMAT_COMPLEXINT,
    SAMPLEFORMAT_IEEEFP, SAMPLEFORMAT_INT, SAMPLEFORMAT_UINT, SAMPLEFORMAT_VOID, TIFF,
    TIFFTAG_BITSPERSAMPLE, TIFFTAG_COMPRESSION, TIFFTAG_IMAGELENGTH, TIFFTAG_IMAGEWIDTH,
    TIFFTAG_INKSET, TIFFTAG_PHOTOMETRIC, TIFFTAG_PLANARCONFIG, TIFFTAG_ROWSPERSTRIP,
    TIFFTAG_SAMPLEFORMAT, TIFFTAG_SAMPLESPERPIXEL, TIFFTAG_TILELENGTH, TIFFTAG_TILEWIDTH,
    TIFFClose, TIFFCodec, TIFFComputeStrip, TIFFFindCODEC, TIFFIsCODECConfigured, TIFFComputeTile, TIFFGetA, TIFFGetB, TIFFGetG, TIFFGetR,
    TIFFIsTiled, TIFFRGBAImage, TIFFRGBAImageBegin, TIFFRGBAImageEnd, TIFFRGBAImageGet,
    TIFFRGBAImageOK, TIFFReadEncodedStrip, TIFFReadScanline, TIFFReadEncodedTile, TIFFScanlineSize64,
    TIFFStripSize64, TIFFTileRowSize64, TIFFTileSize64, spdl_tiff_colormap,
    spdl_tiff_extrasamples, spdl_tiff_jpeg_rgb, spdl_tiff_open, spdl_tiff_src, spdl_tiff_u16,
    spdl_tiff_u32, tmsize_t,
)

cdef extern from "<stdio.h>":
    int snprintf(char *buf, size_t n, const char *fmt, ...) nogil


cdef enum Kind:
    KIND_GREY
    KIND_RGB
    KIND_PALETTE
    KIND_CMYK
    KIND_RGBA_IMAGE   # libtiff's TIFFRGBAImage does the conversion


cdef struct Layout:
    int kind
    uint32_t w
    uint32_t h
    int bps                  # bits per stored sample: 1, 2, 4, 8 or 16
    int spp                  # stored samples per pixel
    bint separate            # one plane per sample
    int nout                 # channels written by the unpacker (CMYK: C, M, Y, K[, A])
    int src[5]               # for each of them, the stored sample it comes from
    uint16_t xor16           # 16-bit grey: 0xFFFF inverts MinIsWhite
    uint8_t lut[256]         # grey of up to 8 bits: sample -> 8-bit level (channel 0)
    bint lut_identity        # ... that changes nothing (8-bit MinIsBlack)
    uint8_t *pal             # palette: 3 bytes (r, g, b) per index
    bint alpha               # the output has an alpha channel
    bint associated          # ... stored premultiplied (ExtraSamples 1): divided out here
    AVPixelFormat fmt        # the frame's format


cdef int _fmt_fail(Status *err, const char *what) noexcept nogil:
    return fail(err, ERR_FORMAT, "decode", "tiff_decode", 0, what)


cdef int _refuse(TIFF *tif, Layout *L, uint16_t photometric, uint16_t sfmt,
                 Status *err) noexcept nogil:
    """-1 with err set for what neither path reads (float and signed samples, odd
    depths), else 0."""
    cdef char msg[160]
    cdef const char *what = NULL
    if photometric == PHOTOMETRIC_LOGL or photometric == PHOTOMETRIC_LOGLUV:
        return 0  # float by nature: libtiff's RGBA path maps them
    if sfmt == SAMPLEFORMAT_IEEEFP:
        what = "float"
    elif sfmt == SAMPLEFORMAT_INT:
        what = "signed integer"
    elif sfmt == SAMPLEFORMAT_COMPLEXINT or sfmt == SAMPLEFORMAT_COMPLEXIEEEFP:
        what = "complex"
    elif sfmt != SAMPLEFORMAT_UINT and sfmt != SAMPLEFORMAT_VOID:
        what = "unknown-format"
    if what != NULL:
        snprintf(msg, sizeof(msg), "TIFF with %d-bit %s samples is not supported", L.bps, what)
        return _fmt_fail(err, msg)
    if photometric in (PHOTOMETRIC_CIELAB, PHOTOMETRIC_ICCLAB, PHOTOMETRIC_ITULAB):
        # libtiff's RGBA reader tints white (its D50 reference white shown as sRGB)
        return _fmt_fail(err, "TIFF in CIE L*a*b* colour is not supported")
    if L.bps not in (1, 2, 4, 8, 16):
        snprintf(msg, sizeof(msg), "TIFF with %d-bit samples is not supported", L.bps)
        return _fmt_fail(err, msg)
    if L.spp < 1 or L.spp > 8:
        snprintf(msg, sizeof(msg), "TIFF with %d samples per pixel is not supported", L.spp)
        return _fmt_fail(err, msg)
    return 0


cdef bint _alpha_first_extra(uint16_t n_extra, const uint16_t *types, int base,
                             int spp) noexcept nogil:
    """Whether the sample after the base colour samples is alpha."""
    if spp <= base:
        return False
    if n_extra >= 1 and types != NULL:
        return types[0] == EXTRASAMPLE_ASSOCALPHA or types[0] == EXTRASAMPLE_UNASSALPHA
    return False


cdef bint _associated(uint16_t n_extra, const uint16_t *types) noexcept nogil:
    return n_extra >= 1 and types != NULL and types[0] == EXTRASAMPLE_ASSOCALPHA


cdef int _palette(TIFF *tif, Layout *L, Status *err) noexcept nogil:
    """L.pal from the colour map: 16-bit entries >> 8 (an 8-bit map, every entry below 256,
    as libtiff's RGBA reader takes it)."""
    cdef const uint16_t *r
    cdef const uint16_t *g
    cdef const uint16_t *b
    cdef size_t n = <size_t>1 << L.bps, i
    cdef int shift = 0
    if not spdl_tiff_colormap(tif, &r, &g, &b):
        return fail(err, ERR_DECODE, "decode", "TIFFGetField", 0,
                    "palette TIFF without a colour map")
    L.pal = <uint8_t *>malloc(3 * n)
    if L.pal == NULL:
        return fail(err, ERR_NOMEM, "decode", "malloc", 0, "out of memory")
    for i in range(n):
        if r[i] >= 256 or g[i] >= 256 or b[i] >= 256:
            shift = 8
            break
    for i in range(n):
        L.pal[3 * i] = <uint8_t>(r[i] >> shift)
        L.pal[3 * i + 1] = <uint8_t>(g[i] >> shift)
        L.pal[3 * i + 2] = <uint8_t>(b[i] >> shift)
    return 0


cdef int _plan(TIFF *tif, Layout *L, Status *err) noexcept nogil:
    """Fill L from the directory's tags: the kind, the samples read and the format."""
    cdef uint16_t photometric = 0, planar = 1, sfmt = SAMPLEFORMAT_UINT, compression = 1
    cdef uint16_t v16 = 0, inkset = INKSET_CMYK, n_extra = 0
    cdef const uint16_t *extra = NULL
    cdef const TIFFCodec *codec
    cdef const char *name
    cdef char msg[160]
    cdef int i, mx
    if not spdl_tiff_u16(tif, TIFFTAG_BITSPERSAMPLE, &v16):
        v16 = 1
    L.bps = v16
    if not spdl_tiff_u16(tif, TIFFTAG_SAMPLESPERPIXEL, &v16):
        v16 = 1
    L.spp = v16
    spdl_tiff_u16(tif, TIFFTAG_PLANARCONFIG, &planar)
    spdl_tiff_u16(tif, TIFFTAG_SAMPLEFORMAT, &sfmt)
    spdl_tiff_u16(tif, TIFFTAG_COMPRESSION, &compression)
    spdl_tiff_u16(tif, TIFFTAG_INKSET, &inkset)
    spdl_tiff_extrasamples(tif, &n_extra, &extra)
    if not spdl_tiff_u16(tif, TIFFTAG_PHOTOMETRIC, &photometric):
        return fail(err, ERR_DECODE, "decode", "TIFFGetField", 0,
                    "TIFF without a PhotometricInterpretation")
    if _refuse(tif, L, photometric, sfmt, err) < 0:
        return -1
    if not TIFFIsCODECConfigured(compression):
        codec = TIFFFindCODEC(compression)
        name = "an unknown method"
        if codec != NULL and codec.name != NULL:
            name = codec.name
        snprintf(msg, sizeof(msg), "TIFF compressed with %s (scheme %u) is not supported by "
                 "this build's libtiff", name, <unsigned int>compression)
        return _fmt_fail(err, msg)
    L.separate = planar == PLANARCONFIG_SEPARATE and L.spp > 1
    L.xor16 = 0
    L.lut_identity = False
    L.alpha = False
    L.associated = False
    L.pal = NULL
    L.kind = KIND_RGBA_IMAGE
    if (photometric == PHOTOMETRIC_YCBCR and compression == COMPRESSION_JPEG and not L.separate
            and L.bps == 8 and L.spp >= 3):
        # libjpeg converts to RGB (and upsamples) as it decodes
        if not spdl_tiff_jpeg_rgb(tif):
            return fail(err, ERR_DECODE, "decode", "TIFFSetField", 0,
                        "cannot read JPEG-compressed YCbCr as RGB")
        photometric = PHOTOMETRIC_RGB
    if photometric == PHOTOMETRIC_MINISBLACK or photometric == PHOTOMETRIC_MINISWHITE:
        if L.bps >= 8 or L.spp == 1:
            L.kind = KIND_GREY
            L.alpha = L.bps >= 8 and _alpha_first_extra(n_extra, extra, 1, L.spp)
            L.associated = L.alpha and _associated(n_extra, extra)
            L.nout = 2 if L.alpha else 1
            L.src[0], L.src[1] = 0, 1
            if L.bps == 16:
                L.fmt = AV_PIX_FMT_YA16 if L.alpha else AV_PIX_FMT_GRAY16
                L.xor16 = 0xFFFF if photometric == PHOTOMETRIC_MINISWHITE else 0
            else:
                L.fmt = AV_PIX_FMT_YA8 if L.alpha else AV_PIX_FMT_GRAY8
                L.lut_identity = L.bps == 8 and photometric == PHOTOMETRIC_MINISBLACK
                mx = (1 << L.bps) - 1
                for i in range(mx + 1):
                    v16 = mx - i if photometric == PHOTOMETRIC_MINISWHITE else i
                    L.lut[i] = <uint8_t>((v16 * 510 + mx) // (2 * mx))
    elif photometric == PHOTOMETRIC_RGB and L.spp >= 3 and L.bps >= 8:
        L.kind = KIND_RGB
        # four samples and no ExtraSamples tag: the fourth is alpha (as libtiff reads it)
        L.alpha = _alpha_first_extra(n_extra, extra, 3, L.spp) or (L.spp == 4 and n_extra == 0)
        L.associated = L.alpha and _associated(n_extra, extra)
        L.nout = 4 if L.alpha else 3
        for i in range(4):
            L.src[i] = i
        if L.bps == 16:
            L.fmt = AV_PIX_FMT_RGBA64 if L.alpha else AV_PIX_FMT_RGB48
        else:
            L.fmt = AV_PIX_FMT_RGBA if L.alpha else AV_PIX_FMT_RGB24
    elif photometric == PHOTOMETRIC_PALETTE and (L.spp == 1 or L.bps == 8):
        L.kind = KIND_PALETTE
        L.alpha = _alpha_first_extra(n_extra, extra, 1, L.spp)
        L.nout = 4 if L.alpha else 3
        L.src[0] = 0
        L.fmt = AV_PIX_FMT_RGBA if L.alpha else AV_PIX_FMT_RGB24
        if _palette(tif, L, err) < 0:
            return -1
    elif (photometric == PHOTOMETRIC_SEPARATED and inkset == INKSET_CMYK and L.bps == 8
            and L.spp >= 4):
        L.kind = KIND_CMYK
        L.alpha = _alpha_first_extra(n_extra, extra, 4, L.spp)
        L.nout = 5 if L.alpha else 4
        for i in range(5):
            L.src[i] = i
        L.fmt = AV_PIX_FMT_RGBA if L.alpha else AV_PIX_FMT_RGB24
    if L.kind == KIND_RGBA_IMAGE:
        L.fmt = AV_PIX_FMT_RGBA
    return 0


cdef inline uint32_t _sample(const uint8_t *row, int bps, size_t i) noexcept nogil:
    """Sample i of a row of bps-bit samples (most significant bits first)."""
    cdef size_t bit
    if bps == 8:
        return row[i]
    if bps == 16:
        return (<const uint16_t *>row)[i]
    bit = i * bps
    return (row[bit >> 3] >> (8 - bps - (bit & 7))) & ((1 << bps) - 1)


cdef void _unpack(const Layout *L, const uint8_t *chunk, size_t rowbytes, int plane,
                  uint32_t x0, uint32_t y0, uint32_t cw, uint32_t ch, uint8_t *dst,
                  size_t linesize) noexcept nogil:
    """Write a decoded strip or tile (cw x ch pixels at x0, y0; plane: the sample it holds
    when separate) into dst, L.nout channels a pixel."""
    cdef uint32_t x, y
    cdef int c, stride = 1 if L.separate else L.spp, off
    cdef uint32_t v
    cdef const uint8_t *srow
    cdef uint8_t *orow
    cdef uint16_t *orow16
    cdef int nout = L.nout
    cdef bint grey8 = L.kind == KIND_GREY and L.bps <= 8 and not L.lut_identity
    for y in range(ch):
        srow = chunk + <size_t>y * rowbytes
        orow = dst + <size_t>(y0 + y) * linesize
        if L.kind == KIND_PALETTE:  # index (then alpha, 8 bits) -> r, g, b (, a)
            orow += <size_t>x0 * nout
            if plane == 0:
                for x in range(cw):
                    v = _sample(srow, L.bps, <size_t>x * stride)
                    memcpy(orow + <size_t>x * nout, L.pal + 3 * v, 3)
            if nout == 4 and (plane == 1 or not L.separate):
                off = 0 if L.separate else 1
                for x in range(cw):
                    orow[<size_t>x * 4 + 3] = srow[<size_t>x * stride + off]
            continue
        if not L.separate and stride == nout and not grey8 and L.xor16 == 0:
            # stored as output: RGB(A) of 8 or 16 bits, CMYK
            memcpy(orow + <size_t>x0 * nout * (L.bps // 8), srow, <size_t>cw * nout * (L.bps // 8))
            continue
        for c in range(nout):
            if L.separate:
                if L.src[c] != plane:
                    continue
                off = 0
            else:
                off = L.src[c]
            if L.bps == 16:
                orow16 = <uint16_t *>orow + <size_t>x0 * nout
                v = L.xor16 if c == 0 else 0
                for x in range(cw):
                    orow16[<size_t>x * nout + c] = \
                        (<const uint16_t *>srow)[<size_t>x * stride + off] ^ v
            elif c == 0 and grey8:
                for x in range(cw):
                    orow[(<size_t>x0 + x) * nout] = L.lut[_sample(srow, L.bps,
                                                                  <size_t>x * stride + off)]
            else:
                for x in range(cw):
                    orow[(<size_t>x0 + x) * nout + c] = srow[<size_t>x * stride + off]


cdef void _unpremultiply(const Layout *L, AVFrame *frame) noexcept nogil:
    """Associated (premultiplied) alpha to the straight alpha of every other rgba and ya
    output: colour = floor(v * max / a), clipped; a pixel of alpha 0 is all 0 (as Pillow
    reads such a TIFF)."""
    cdef uint32_t x, y, v
    cdef int c, n = L.nout
    cdef uint8_t *p
    cdef uint16_t *q
    cdef uint32_t a
    for y in range(L.h):
        p = frame.data[0] + <size_t>y * frame.linesize[0]
        q = <uint16_t *>p
        for x in range(L.w):
            if L.bps == 16:
                a = q[n - 1]
                if a != 65535:
                    for c in range(n - 1):
                        v = 0 if a == 0 else <uint32_t>(q[c] * <uint64_t>65535 // a)
                        q[c] = <uint16_t>min(v, 65535)
                q += n
            else:
                a = p[n - 1]
                if a != 255:
                    for c in range(n - 1):
                        v = 0 if a == 0 else p[c] * 255 // a
                        p[c] = <uint8_t>min(v, 255)
                p += n


cdef inline uint8_t _muldiv255(uint32_t a, uint32_t b) noexcept nogil:
    """round(a * b / 255) for a, b in 0..255 (a half never occurs)."""
    return <uint8_t>((a * b + 127) // 255)


cdef void _cmyk_to_rgb(const Layout *L, const uint8_t *cmyk, AVFrame *frame) noexcept nogil:
    cdef uint32_t x, y
    cdef const uint8_t *s
    cdef uint8_t *o
    cdef uint32_t nk
    cdef int n = L.nout, no = 4 if L.alpha else 3
    for y in range(L.h):
        s = cmyk + <size_t>y * L.w * n
        o = frame.data[0] + <size_t>y * frame.linesize[0]
        for x in range(L.w):
            nk = 255 - s[3]
            o[0] = <uint8_t>(nk - _muldiv255(s[0], nk))
            o[1] = <uint8_t>(nk - _muldiv255(s[1], nk))
            o[2] = <uint8_t>(nk - _muldiv255(s[2], nk))
            if no == 4:
                o[3] = s[4]
            s += n
            o += no


cdef const char *_said(const spdl_tiff_src *src, const char *fallback) noexcept nogil:
    """libtiff's first error for src, or fallback when it said nothing."""
    if src.message[0] != 0:
        return <const char *>src.message
    return fallback


cdef int _read_error(spdl_tiff_src *src, const char *op, const char *fallback,
                     Status *err) noexcept nogil:
    return fail(err, ERR_DECODE, "decode", op, 0, _said(src, fallback))


# Strips larger than this are read a row at a time (TIFFReadScanline), so that a file of
# one large strip (what many writers make) costs one row of memory beside the frame.
cdef enum:
    _ROWS_ABOVE = 4 << 20


cdef int _read_rows(TIFF *tif, const Layout *L, spdl_tiff_src *src, uint64_t rowbytes,
                    int planes, uint8_t *dst, size_t linesize, Status *err) noexcept nogil:
    """_read_chunks for large strips: every row of every plane in order."""
    cdef uint8_t *buf = <uint8_t *>malloc(rowbytes)
    cdef uint32_t y
    cdef int plane
    if buf == NULL:
        return fail(err, ERR_NOMEM, "decode", "malloc", 0, "out of memory")
    for plane in range(planes):
        for y in range(L.h):
            memset(buf, 0, rowbytes)
            if TIFFReadScanline(tif, buf, y, plane) < 0 or src.errors > 0:
                free(buf)
                return _read_error(src, "TIFFReadScanline", "cannot read the TIFF's pixels", err)
            _unpack(L, buf, rowbytes, plane, 0, y, L.w, 1, dst, linesize)
    free(buf)
    return 0


cdef int _read_chunks(TIFF *tif, const Layout *L, spdl_tiff_src *src, uint64_t max_alloc,
                      uint8_t *dst, size_t linesize, Status *err) noexcept nogil:
    """Read every strip or tile of every plane and unpack it into dst."""
    cdef bint tiled = TIFFIsTiled(tif) != 0
    cdef uint32_t tw = L.w, th = 0, x, y, cw, chh, idx
    cdef uint64_t size, rowbytes, need
    cdef int plane, planes = L.spp if L.separate else 1
    cdef tmsize_t n
    cdef uint8_t *buf
    cdef char msg[160]
    if tiled:
        if not spdl_tiff_u32(tif, TIFFTAG_TILEWIDTH, &tw) or not spdl_tiff_u32(
                tif, TIFFTAG_TILELENGTH, &th) or tw == 0 or th == 0:
            return fail(err, ERR_DECODE, "decode", "TIFFGetField", 0, "TIFF tile size missing")
        size = TIFFTileSize64(tif)
        rowbytes = TIFFTileRowSize64(tif)
    else:
        if not spdl_tiff_u32(tif, TIFFTAG_ROWSPERSTRIP, &th) or th == 0 or th > L.h:
            th = L.h
        size = TIFFStripSize64(tif)
        rowbytes = TIFFScanlineSize64(tif)
    # the unpacker reads th rows of rowbytes, each holding tw samples
    need = (<uint64_t>tw * (L.spp if not L.separate else 1) * L.bps + 7) // 8
    if size == 0 or rowbytes < need or size // rowbytes < th:
        return fail(err, ERR_DECODE, "decode", "TIFFStripSize", 0,
                    _said(src, "inconsistent TIFF strip or tile size"))
    # a tile far larger than the image (a hostile header) is refused before allocating it
    if tiled and <uint64_t>tw * th > 4 * <uint64_t>L.w * L.h + (1 << 22):
        snprintf(msg, sizeof(msg), "a TIFF tile of %ux%u is far larger than the %ux%u image",
                 tw, th, L.w, L.h)
        return fail(err, ERR_DECODE, "decode", "TIFFTileSize", 0, msg)
    if not tiled and size > _ROWS_ABOVE:
        return _read_rows(tif, L, src, rowbytes, planes, dst, linesize, err)
    if size > max_alloc:
        snprintf(msg, sizeof(msg), "a TIFF %s of %llu bytes is more than this image allows",
                 "tile" if tiled else "strip", <unsigned long long>size)
        return fail(err, ERR_TOO_LARGE, "decode", "TIFFStripSize", 0, msg)
    buf = <uint8_t *>malloc(size)
    if buf == NULL:
        return fail(err, ERR_NOMEM, "decode", "malloc", 0, "out of memory")
    for plane in range(planes):
        y = 0
        while y < L.h:
            chh = min(th, L.h - y)
            x = 0
            while x < L.w:
                cw = min(tw, L.w - x)
                # a codec that runs short of data may only warn (JBIG) and leave the rest
                # of the buffer as it was: that rest is black, never old memory
                memset(buf, 0, size)
                if tiled:
                    idx = TIFFComputeTile(tif, x, y, 0, plane)
                    n = TIFFReadEncodedTile(tif, idx, buf, <tmsize_t>size)
                else:
                    idx = TIFFComputeStrip(tif, y, plane)
                    n = TIFFReadEncodedStrip(tif, idx, buf, <tmsize_t>size)
                if n < 0 or src.errors > 0:
                    free(buf)
                    return _read_error(src, "TIFFReadEncodedTile" if tiled else
                                       "TIFFReadEncodedStrip", "cannot read the TIFF's pixels",
                                       err)
                if <uint64_t>n < (chh - 1) * rowbytes + need:
                    free(buf)
                    snprintf(msg, sizeof(msg), "TIFF %s %u decoded to %lld bytes, short of %llu",
                             "tile" if tiled else "strip", idx, <long long>n,
                             <unsigned long long>((chh - 1) * rowbytes + need))
                    return fail(err, ERR_DECODE, "decode", "TIFFReadEncodedStrip", 0, msg)
                _unpack(L, buf, rowbytes, plane, x, y, cw, chh, dst, linesize)
                x += tw
            y += th
    free(buf)
    return 0


cdef int _read_rgba_image(TIFF *tif, Layout *L, spdl_tiff_src *src, AVFrame *frame,
                          Status *err) noexcept nogil:
    """libtiff's own conversion to RGBA, in the stored orientation."""
    cdef TIFFRGBAImage img
    cdef char emsg[1024]
    cdef char msg[256]
    cdef uint32_t *raster
    cdef uint32_t x, y, p
    cdef uint8_t *o
    cdef int ok
    emsg[0] = 0
    if not TIFFRGBAImageOK(tif, emsg) or not TIFFRGBAImageBegin(&img, tif, 1, emsg):
        snprintf(msg, sizeof(msg), "this TIFF is not supported (libtiff: %s)", emsg)
        return _fmt_fail(err, msg)
    img.req_orientation = img.orientation  # no flip here: the pipeline orients
    raster = <uint32_t *>calloc(<size_t>L.w * L.h, 4)
    if raster == NULL:
        TIFFRGBAImageEnd(&img)
        return fail(err, ERR_NOMEM, "decode", "malloc", 0, "out of memory")
    ok = TIFFRGBAImageGet(&img, raster, L.w, L.h)
    TIFFRGBAImageEnd(&img)
    if not ok or src.errors > 0:
        free(raster)
        return _read_error(src, "TIFFRGBAImageGet", "cannot read the TIFF's pixels", err)
    for y in range(L.h):
        o = frame.data[0] + <size_t>y * frame.linesize[0]
        for x in range(L.w):
            p = raster[<size_t>y * L.w + x]
            o[0] = TIFFGetR(p)
            o[1] = TIFFGetG(p)
            o[2] = TIFFGetB(p)
            o[3] = TIFFGetA(p)
            o += 4
    free(raster)
    return 0


cdef int _decode(TIFF *tif, spdl_tiff_src *src, Layout *L, int64_t max_pixels, uint64_t max_alloc,
                 AVFrame *frame, Status *err) noexcept nogil:
    cdef char msg[160]
    cdef uint8_t *cmyk = NULL
    cdef int ret
    if (not spdl_tiff_u32(tif, TIFFTAG_IMAGEWIDTH, &L.w)
            or not spdl_tiff_u32(tif, TIFFTAG_IMAGELENGTH, &L.h) or L.w == 0 or L.h == 0):
        return fail(err, ERR_DECODE, "decode", "TIFFGetField", 0, "TIFF without an image size")
    if <int64_t>L.w * L.h > max_pixels:
        return fail_too_large(err, "tiff_decode", "the image", L.w, L.h, max_pixels)
    if L.w > 0x7FFFFFFF // 8 or L.h > 0x7FFFFFFF:
        return _fmt_fail(err, "the TIFF is too wide for a frame")
    if _plan(tif, L, err) < 0:
        return -1
    frame.width, frame.height, frame.format = L.w, L.h, L.fmt
    ret = av_frame_get_buffer(frame, 0)
    if ret < 0:
        return fail(err, ERR_NOMEM, "decode", "av_frame_get_buffer", ret, NULL)
    if L.kind == KIND_GREY:
        frame.color_range = AVCOL_RANGE_JPEG  # grey is full range
    # what libtiff said while reading the directory does not count against the pixels
    src.errors = 0
    src.message[0] = 0
    if L.kind == KIND_RGBA_IMAGE:
        ret = _read_rgba_image(tif, L, src, frame, err)
    elif L.kind == KIND_CMYK:
        cmyk = <uint8_t *>malloc(<size_t>L.w * L.h * L.nout)
        if cmyk == NULL:
            ret = fail(err, ERR_NOMEM, "decode", "malloc", 0, "out of memory")
        else:
            ret = _read_chunks(tif, L, src, max_alloc, cmyk, <size_t>L.w * L.nout, err)
            if ret >= 0:
                _cmyk_to_rgb(L, cmyk, frame)
            free(cmyk)
    else:
        ret = _read_chunks(tif, L, src, max_alloc, frame.data[0], frame.linesize[0], err)
        if ret >= 0 and L.associated:
            _unpremultiply(L, frame)
    if ret < 0:
        av_frame_unref(frame)
    return ret


cdef int tiff_decode(const uint8_t *data, size_t size, int64_t max_pixels, AVFrame *frame,
                     Status *err) noexcept nogil:
    """Decode the first image of the TIFF in data into frame (allocated here); 0, or -1
    with err set."""
    cdef spdl_tiff_src src
    cdef Layout L
    cdef TIFF *tif
    cdef int ret
    # every allocation, libtiff's and ours: at most what the largest image allowed needs
    # (8 bytes a pixel), and some room for tables
    cdef uint64_t max_alloc = <uint64_t>max_pixels * 8 + (16 << 20)
    if max_alloc > <uint64_t>1 << 46:
        max_alloc = <uint64_t>1 << 46
    src.data = data
    src.size = size
    src.pos = 0
    src.errors = 0
    src.warnings = 0
    src.message[0] = 0
    L.pal = NULL
    tif = spdl_tiff_open(&src, <tmsize_t>max_alloc)
    if tif == NULL:
        return fail(err, ERR_DECODE, "decode", "TIFFClientOpen", 0,
                    _said(&src, "libtiff cannot read this TIFF"))
    ret = _decode(tif, &src, &L, max_pixels, max_alloc, frame, err)
    TIFFClose(tif)
    free(L.pal)
    return ret


cdef uint64_t _rd(const uint8_t *p, int nbytes, bint le) noexcept nogil:
    cdef uint64_t v = 0
    cdef int i
    for i in range(nbytes):
        v |= <uint64_t>p[i if le else nbytes - 1 - i] << (8 * i)
    return v


cdef bint bigtiff_signature(const uint8_t *d, size_t n) noexcept nogil:
    """Whether d starts a BigTIFF: "II" 43 or "MM" 43, offsets of 8 bytes."""
    if n < 16:
        return False
    if not ((d[0] == 0x49 and d[1] == 0x49) or (d[0] == 0x4D and d[1] == 0x4D)):
        return False
    cdef bint le = d[0] == 0x49
    return _rd(d + 2, 2, le) == 43 and _rd(d + 4, 2, le) == 8 and _rd(d + 6, 2, le) == 0


cdef int bigtiff_orientation(const uint8_t *d, size_t n) noexcept nogil:
    """The Orientation tag (one SHORT of 1..8) of a BigTIFF's first IFD (8-byte count,
    20-byte entries), as exif_orientation reads a classic TIFF's: every read checked
    against n, nothing but IFD0 visited; anything malformed, absent or out of range is 1."""
    cdef bint le
    cdef uint64_t ifd, count, i, e, v
    if not bigtiff_signature(d, n):
        return 1
    le = d[0] == 0x49
    ifd = _rd(d + 8, 8, le)
    if ifd < 16 or ifd > n - 8:
        return 1
    count = _rd(d + ifd, 8, le)
    for i in range(min(count, (n - ifd - 8) // 20 + 1)):
        e = ifd + 8 + 20 * i
        if e + 20 > n:
            return 1
        if _rd(d + e, 2, le) != 0x0112:
            continue
        if _rd(d + e + 2, 2, le) != 3 or _rd(d + e + 4, 8, le) != 1:
            return 1                           # not one SHORT
        v = _rd(d + e + 12, 2, le)
        return <int>v if 1 <= v <= 8 else 1
    return 1
