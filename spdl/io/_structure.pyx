# cython: language_level=3
"""Cheap structural checks of an image's bytes, before a decoder sees them.

Decoders conceal damage: given a JPEG with a frame header and no scan, or a GIF
whose first image stops half way, they return a picture anyway. These walks
over the container's own structure (no pixel decoding, linear in the size)
turn such inputs into a DecodeError, and put a bound on the work a progressive
JPEG may ask for.
"""

from libc.string cimport memchr, memcmp, memmove, memset

from spdl.io._status cimport ERR_DECODE, Status, fail

cdef extern from "<stdio.h>":
    int snprintf(char *buf, size_t n, const char *fmt, ...) nogil

cdef extern from "csrc/jpeg_complete.h" nogil:
    int spdl_jpeg_scans_complete(const unsigned char *data, unsigned long size,
                                 long long max_pixels, long max_memory)

#: The largest JPEG whose missing end-of-image marker is looked into (the default
#: max_pixels), and the coefficient memory libjpeg may use to do it.
cdef long long EOI_CHECK_MAX_PIXELS = 50_000_000
cdef long EOI_CHECK_MAX_MEMORY = 512 * 1024 * 1024

#: A progressive JPEG may ask for at most this many pixel-scans (scans x width x
#: height): 24 MP with 160 scans. Real encoders write about 10 scans.
cdef long long MAX_PIXEL_SCANS = 4_000_000_000


cdef size_t jpeg_skip_entropy(const unsigned char *d, size_t n, size_t pos) noexcept nogil:
    """The position of the first marker at or after pos in entropy-coded data (stuffed
    bytes, restart markers and fill bytes are part of the data), or n."""
    cdef const unsigned char *q
    while pos + 1 < n:
        q = <const unsigned char *>memchr(d + pos, 0xFF, n - pos - 1)
        if q == NULL:
            return n
        pos = <size_t>(q - d)
        if d[pos + 1] == 0x00 or 0xD0 <= d[pos + 1] <= 0xD7 or d[pos + 1] == 0xFF:
            pos += 1
            continue
        return pos
    return pos


cdef void jpeg_walk_markers(const unsigned char *d, size_t n, JpegMarkers *out) noexcept nogil:
    """Walk a JPEG's segments (SOI already seen) by their lengths, skipping each scan's
    entropy-coded data to the next marker; linear in n, no pixel decoding. See JpegMarkers
    for what it records. Bytes where a marker must be are skipped (and set bad)."""
    cdef size_t pos = 2, length
    cdef int m, i
    cdef const unsigned char *seg
    cdef bint cut, exif_seen = False
    memset(out, 0, sizeof(JpegMarkers))
    out.transform = -1
    out.orientation = 1
    while pos + 1 < n:
        if d[pos] != 0xFF:
            out.bad = True
            pos += 1
            continue
        m = d[pos + 1]
        if m == 0xFF:                           # fill byte
            pos += 1
            continue
        if m == 0xD9:                           # EOI
            out.eoi = True
            break
        if 0xD0 <= m <= 0xD7 or m == 0x01 or m == 0x00:    # standalone markers (0x00: not one)
            out.bad = out.bad or m == 0x00
            pos += 2
            continue
        if m == 0xD8:
            out.bad = True
        if pos + 4 > n:                         # the data ends inside the marker's length
            break
        length = (<size_t>d[pos + 2] << 8) | d[pos + 3]
        if length < 2:
            out.bad = True
            break
        cut = length > n - pos - 2
        if cut:
            out.cut_marker = m
        seg = d + pos + 4
        if m == 0xEE and not cut and length >= 14 and memcmp(seg, b"Adobe", 5) == 0:
            out.transform = seg[11]             # "Adobe", version, flags0, flags1, transform
        elif (m == 0xE1 and not cut and not exif_seen and length >= 8
              and memcmp(seg, b"Exif\0\0", 6) == 0):
            exif_seen = True                    # the first Exif segment is the one
            out.orientation = exif_orientation(seg + 6, length - 8)
        elif 0xC0 <= m <= 0xCF and m != 0xC4 and m != 0xC8 and m != 0xCC:
            if out.sof != 0:
                out.bad = out.bad or not cut    # a second frame header
            else:
                out.sof = m
                out.sof_cut = cut
                if pos + 9 <= n:
                    out.height = (d[pos + 5] << 8) | d[pos + 6]
                    out.width = (d[pos + 7] << 8) | d[pos + 8]
                if not cut:
                    if length < 8:
                        out.bad = True
                    else:
                        out.precision = seg[0]
                        out.ncomp = seg[5]
                        for i in range(3):
                            if i < out.ncomp and <size_t>(8 + 3 * i) < length:
                                out.ids[i] = seg[6 + 3 * i]
        pos += 2 + length
        if m == 0xDA:                           # SOS: skip the entropy-coded data
            out.scans += 1
            pos = jpeg_skip_entropy(d, n, pos)


cdef int jpeg_check_structure(const unsigned char *d, int n, Status *err) noexcept nogil:
    """Walk the JPEG markers and check them (jpeg_check_markers)."""
    cdef JpegMarkers m
    jpeg_walk_markers(d, <size_t>n, &m)
    return jpeg_check_markers(&m, err)


cdef int jpeg_check_markers(const JpegMarkers *m, Status *err) noexcept nogil:
    """A frame header, at least one scan and the end-of-image marker must be there, and a
    progressive image may not have more scans than its size justifies."""
    cdef char msg[160]
    if m.sof == 0 or m.scans == 0:
        return fail(err, ERR_DECODE, "decode", "jpeg_check_structure", 0,
                    "the JPEG has no image data (no frame header or no scan)")
    if (m.sof == 0xC2 or m.sof == 0xC6 or m.sof == 0xCA or m.sof == 0xCE) and \
            <long long>m.scans * m.width * m.height > MAX_PIXEL_SCANS:
        snprintf(msg, sizeof(msg), "a progressive %dx%d JPEG with %d scans is more work than "
                 "any real image needs", m.width, m.height, m.scans)
        return fail(err, ERR_DECODE, "decode", "jpeg_check_structure", 0, msg)
    if not m.eoi:
        return fail(err, ERR_DECODE, "decode", "jpeg_check_structure", 0,
                    "the JPEG data is truncated (no end-of-image marker)")
    return 0


cdef bint jpeg_lacks_eoi(const unsigned char *d, int n) noexcept nogil:
    """Whether a JPEG's markers are whole, with a frame header and a scan, and the data
    ends without an end-of-image marker (inside or after the last scan's data)."""
    cdef JpegMarkers m
    jpeg_walk_markers(d, <size_t>n, &m)
    return jpeg_markers_lack_eoi(&m)


cdef bint jpeg_markers_lack_eoi(const JpegMarkers *m) noexcept nogil:
    """jpeg_lacks_eoi on a walk already made."""
    return (m.sof != 0 and not m.sof_cut and m.scans > 0 and not m.eoi and not m.bad
            and m.cut_marker == 0)


cdef bint jpeg_scans_complete(const unsigned char *d, int n) noexcept nogil:
    """Whether the scans of a JPEG that ends in an end-of-image marker are all there, as
    libjpeg reads them (csrc/jpeg_complete.h): no scan runs into the marker, and every
    component is coded to its last bit. Images over EOI_CHECK_MAX_PIXELS are not looked
    into (False)."""
    return spdl_jpeg_scans_complete(d, <unsigned long>n, EOI_CHECK_MAX_PIXELS,
                                    EOI_CHECK_MAX_MEMORY) == 1


cdef int _skip_sub_blocks(const unsigned char *d, int n, int pos) noexcept nogil:
    """The position after a chain of GIF data sub-blocks, or -1 if the data ends first."""
    while pos < n:
        if d[pos] == 0:
            return pos + 1
        pos += 1 + d[pos]
    return -1


cdef int gif_check_first_frame(const unsigned char *d, int n, Status *err) noexcept nogil:
    """The first image of a GIF must be all there: descriptor, tables and every data block."""
    cdef int pos = 13, flags
    if n < 13:
        return fail(err, ERR_DECODE, "decode", "gif_check_first_frame", 0, "the GIF is truncated")
    flags = d[10]
    if flags & 0x80:
        pos += 3 << ((flags & 7) + 1)      # global colour table
    while pos < n:
        if d[pos] == 0x21:                  # extension: label, then sub-blocks
            pos = _skip_sub_blocks(d, n, pos + 2)
            if pos < 0:
                break
        elif d[pos] == 0x2C:                # image descriptor
            if pos + 10 > n:
                break
            flags = d[pos + 9]
            pos += 10
            if flags & 0x80:
                pos += 3 << ((flags & 7) + 1)   # local colour table
            pos = _skip_sub_blocks(d, n, pos + 1)  # after the LZW minimum code size
            if pos < 0:
                break
            return 0
        elif d[pos] == 0x3B:                # trailer before any image
            return fail(err, ERR_DECODE, "decode", "gif_check_first_frame", 0,
                        "the GIF has no image")
        else:
            return fail(err, ERR_DECODE, "decode", "gif_check_first_frame", 0,
                        "the GIF has an unknown block before its first image")
    return fail(err, ERR_DECODE, "decode", "gif_check_first_frame", 0,
                "the GIF is truncated (its first image is incomplete)")


cdef long gif_trans_color(const unsigned char *d, int n) noexcept nogil:
    """The colour (0xRRGGBB) for FFmpeg's GIF decoder to give the pixels of the first
    image's transparent index and the screen around that image: the index's stored colour
    in the colour table the image uses (black for an index past its end); with no
    transparent index and no global colour table (so no background colour), black.
    -1: leave the decoder's own choice (no transparent index: the background colour),
    or the image descriptor is not all there.

    FFmpeg's decoder puts its trans_color option (transparent white by default) in those
    pixels; given this colour, they are the stored palette colour, as Pillow gives."""
    cdef int pos = 13, trans = -1
    cdef long table = 13, entries = 0
    if n < 13:
        return -1
    if d[10] & 0x80:
        entries = 2 << (d[10] & 7)
        pos += <int>(3 * entries)
    while pos < n:
        if d[pos] == 0x21:                  # extension: a graphic control one sets the index
            if pos + 7 < n and d[pos + 1] == 0xF9 and d[pos + 2] == 4:
                trans = d[pos + 6] if d[pos + 3] & 1 else -1
            pos = _skip_sub_blocks(d, n, pos + 2)
            if pos < 0:
                return -1
        elif d[pos] == 0x2C and pos + 10 <= n:
            if trans < 0:
                return -1 if d[10] & 0x80 else 0
            if d[pos + 9] & 0x80:           # its own colour table
                table, entries = pos + 10, 2 << (d[pos + 9] & 7)
            if trans >= entries or table + 3 * trans + 3 > n:
                return 0
            table += 3 * trans
            return (<long>d[table] << 16) | (<long>d[table + 1] << 8) | d[table + 2]
        else:
            return -1
    return -1


cdef inline unsigned int _le32(const unsigned char *p) noexcept nogil:
    return p[0] | (<unsigned int>p[1] << 8) | (<unsigned int>p[2] << 16) | (<unsigned int>p[3] << 24)


cdef inline void _put_le32(unsigned char *p, unsigned int v) noexcept nogil:
    p[0], p[1], p[2], p[3] = v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF, v >> 24


cdef int webp_strip_metadata(unsigned char *d, int n) noexcept nogil:
    """Remove the EXIF and XMP chunks of an extended (VP8X) WebP in place, and their flags;
    the new size (n when there is nothing to remove or the chunks do not add up).

    The decoder parses an EXIF chunk and reports a malformed one (a "JPEG-style"
    Exif\\0\\0 prefix, say, which cameras write) as an error although the picture is
    whole. Metadata never costs the pixels: the decoder does not see it."""
    cdef unsigned int riff_end, size, total
    cdef int pos = 12, end
    cdef bint removed = False
    if n < 30 or memcmp(d, b"RIFF", 4) != 0 or memcmp(d + 8, b"WEBPVP8X", 8) != 0:
        return n
    riff_end = _le32(d + 4) + 8
    if riff_end > <unsigned int>n or riff_end < 30:
        return n
    end = <int>riff_end
    while pos + 8 <= end:
        size = _le32(d + pos + 4)
        if size > <unsigned int>(end - pos - 8):
            return n                                   # a chunk runs past the end: leave it
        total = 8 + size + (size & 1)
        if total > <unsigned int>(end - pos):
            total = <unsigned int>(end - pos)          # an odd last chunk without its pad byte
        if memcmp(d + pos, b"EXIF", 4) == 0 or memcmp(d + pos, b"XMP ", 4) == 0:
            memmove(d + pos, d + pos + total, <size_t>(n - pos - <int>total))
            end -= <int>total
            n -= <int>total
            removed = True
        else:
            pos += <int>total
    if removed:
        _put_le32(d + 4, <unsigned int>(end - 8))
        d[20] &= ~(0x08 | 0x04)                        # VP8X flags: no EXIF, no XMP
    return n


cdef inline unsigned int _be32(const unsigned char *p) noexcept nogil:
    return (<unsigned int>p[0] << 24) | (<unsigned int>p[1] << 16) | (<unsigned int>p[2] << 8) | p[3]


cdef bint png_lacks_only_iend(const unsigned char *d, int n) noexcept nogil:
    """Whether a PNG's chunks are all there, image data included, and only the IEND
    trailer is missing (the data ends exactly where a chunk ends). Browsers show such a
    file; the decoder reports the missing trailer as damage. A file cut inside a chunk,
    or before any image data, is not this."""
    cdef int pos = 8
    cdef unsigned int length
    cdef bint idat = False
    while pos + 12 <= n:
        length = _be32(d + pos)
        if length > <unsigned int>(n - pos - 12):
            return False                               # cut inside this chunk
        if memcmp(d + pos + 4, b"IEND", 4) == 0:
            return False
        if memcmp(d + pos + 4, b"IDAT", 4) == 0 or memcmp(d + pos + 4, b"fdAT", 4) == 0:
            idat = True
        pos += 12 + <int>length
    return idat and pos == n



cdef inline unsigned int _rd16(const unsigned char *p, bint le) noexcept nogil:
    return (p[0] | (<unsigned int>p[1] << 8)) if le else ((<unsigned int>p[0] << 8) | p[1])


cdef inline unsigned int _rd32(const unsigned char *p, bint le) noexcept nogil:
    if le:
        return p[0] | (<unsigned int>p[1] << 8) | (<unsigned int>p[2] << 16) | (<unsigned int>p[3] << 24)
    return (<unsigned int>p[0] << 24) | (<unsigned int>p[1] << 16) | (<unsigned int>p[2] << 8) | p[3]


cdef int exif_orientation(const unsigned char *tiff, size_t n) noexcept nogil:
    """The Orientation tag (0x0112, one SHORT of 1..8) of IFD0 of a TIFF structure:
    byte order "II" or "MM", 42, IFD0's offset, its entry count, 12-byte entries. Every
    read is checked against n; nothing but IFD0 is visited (no offsets followed, so no
    loops); anything malformed, absent or out of range is 1."""
    cdef bint le
    cdef size_t ifd, count, i, e
    cdef unsigned int v
    if tiff == NULL or n < 8:
        return 1
    if tiff[0] == 0x49 and tiff[1] == 0x49:
        le = True
    elif tiff[0] == 0x4D and tiff[1] == 0x4D:
        le = False
    else:
        return 1
    if _rd16(tiff + 2, le) != 42:
        return 1
    ifd = _rd32(tiff + 4, le)
    if ifd < 8 or ifd > n - 2:
        return 1
    count = _rd16(tiff + ifd, le)
    for i in range(count):
        e = ifd + 2 + 12 * i
        if e + 12 > n:
            return 1
        if _rd16(tiff + e, le) != 0x0112:
            continue
        if _rd16(tiff + e + 2, le) != 3 or _rd32(tiff + e + 4, le) != 1:
            return 1                           # not one SHORT
        v = _rd16(tiff + e + 8, le)
        return <int>v if 1 <= v <= 8 else 1
    return 1


cdef int _exif_payload_orientation(const unsigned char *p, size_t n) noexcept nogil:
    """A WebP EXIF / PNG eXIf payload: a TIFF structure, or one after a JPEG-style
    "Exif\0\0" prefix (which some writers put there)."""
    if n >= 6 and memcmp(p, b"Exif\0\0", 6) == 0:
        return exif_orientation(p + 6, n - 6)
    return exif_orientation(p, n)


cdef int webp_orientation(const unsigned char *d, int n) noexcept nogil:
    """The orientation in an extended (VP8X) WebP's EXIF chunk; 1 when none or malformed.
    Chunks are walked by their sizes within the RIFF size and n."""
    cdef unsigned int riff_end, size
    cdef size_t pos = 12, end
    if n < 30 or memcmp(d, b"RIFF", 4) != 0 or memcmp(d + 8, b"WEBPVP8X", 8) != 0:
        return 1
    riff_end = _le32(d + 4)
    end = <size_t>n if riff_end > <unsigned int>(n - 8) else <size_t>riff_end + 8
    while pos + 8 <= end:
        size = _le32(d + pos + 4)
        if size > end - pos - 8:
            return 1
        if memcmp(d + pos, b"EXIF", 4) == 0:
            return _exif_payload_orientation(d + pos + 8, size)
        pos += 8 + <size_t>size + (size & 1)
    return 1


cdef int png_orientation(const unsigned char *d, int n) noexcept nogil:
    """The orientation in a PNG's eXIf chunk (before IDAT per the PNG spec; taken anywhere
    before IEND); 1 when none or malformed."""
    cdef size_t pos = 8
    cdef unsigned int length
    if n < 8:
        return 1
    while pos + 12 <= <size_t>n:
        length = _be32(d + pos)
        if length > <size_t>n - pos - 12:
            return 1
        if memcmp(d + pos + 4, b"eXIf", 4) == 0:
            return _exif_payload_orientation(d + pos + 8, length)
        if memcmp(d + pos + 4, b"IEND", 4) == 0:
            return 1
        pos += 12 + <size_t>length
    return 1
