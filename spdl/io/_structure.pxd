from spdl.io._status cimport Status

# What jpeg_walk_markers finds in a JPEG's marker stream.
cdef struct JpegMarkers:
    int sof                 # the first frame header's marker (0xC0..0xCF but C4, C8, CC), or 0
    bint sof_cut            # the data ends inside that frame header
    int width, height       # from it (0 if the data ends before them)
    int precision, ncomp    # from it when it is complete, else 0
    unsigned char ids[3]    # its first three component ids
    int transform           # the Adobe APP14 segment's colour transform, or -1
    int scans               # start-of-scan segments (the last may be the cut one)
    int cut_marker          # the marker of the segment the data ends inside (after its length), or 0
    bint eoi                # an end-of-image marker follows the last scan
    bint bad                # bytes where a marker must be, a second frame header, a bad length
    int orientation         # the EXIF orientation of the first Exif APP1 segment (1..8), else 1

cdef size_t jpeg_skip_entropy(const unsigned char *d, size_t n, size_t pos) noexcept nogil
# The one JPEG marker walker: used by jpeg_check_structure (the CPU path) and by the
# nvJPEG loader's choice of what the GPU decodes.
cdef void jpeg_walk_markers(const unsigned char *d, size_t n, JpegMarkers *out) noexcept nogil
# The CPU path's structure check (a DecodeError in err, -1) on a walk, or on the bytes.
cdef int jpeg_check_markers(const JpegMarkers *m, Status *err) noexcept nogil
cdef int jpeg_check_structure(const unsigned char *d, int n, Status *err) noexcept nogil
cdef int gif_check_first_frame(const unsigned char *d, int n, Status *err) noexcept nogil
# The colour for FFmpeg's GIF trans_color option: the first image's transparent index's
# stored colour (0xRRGGBB), or -1 to leave the decoder's default.
cdef long gif_trans_color(const unsigned char *d, int n) noexcept nogil
# The EXIF orientation (tag 0x0112 of IFD0, 1..8) of a TIFF structure (EXIF data after
# its "Exif\0\0" prefix); 1 when absent or malformed. Reads nothing outside tiff[0:n].
cdef int exif_orientation(const unsigned char *tiff, size_t n) noexcept nogil
# The orientation of a WebP's EXIF chunk, and of a PNG's eXIf chunk (1 when none).
cdef int webp_orientation(const unsigned char *d, int n) noexcept nogil
cdef int png_orientation(const unsigned char *d, int n) noexcept nogil
# Remove an extended WebP's EXIF and XMP chunks in place; returns the new size.
cdef int webp_strip_metadata(unsigned char *d, int n) noexcept nogil
# A PNG whose chunks are complete and whose IEND trailer alone is missing.
cdef bint png_lacks_only_iend(const unsigned char *d, int n) noexcept nogil
# A JPEG whose markers are whole and whose end-of-image marker is missing; and whether
# the scans of one ending in that marker are complete (libjpeg reads them to tell).
cdef bint jpeg_lacks_eoi(const unsigned char *d, int n) noexcept nogil
cdef bint jpeg_markers_lack_eoi(const JpegMarkers *m) noexcept nogil
cdef bint jpeg_scans_complete(const unsigned char *d, int n) noexcept nogil
