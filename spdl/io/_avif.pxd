from libc.stdint cimport int64_t, uint8_t, uint32_t

from spdl.io._status cimport Status
from spdl.io.includes.libavutil cimport AVFrame

# What avif_probe reads from an AVIF's boxes (ftyp, meta: pitm, iprp: ipco/ipma),
# without libavif and without reading any image data.
cdef struct AvifInfo:
    bint still              # the ftyp lists 'avif' (a still image's brand)
    bint sequence           # the ftyp lists 'avis' (an image sequence's brand)
    bint primary            # a meta box names a primary item (pitm)
    uint32_t width          # the primary item's ispe, 0 x 0 when it has none
    uint32_t height
    int orientation         # its irot/imir as an EXIF orientation, 1..8

# An ISOBMFF file whose ftyp (the first box) lists 'avif' or 'avis'.
cdef bint avif_brand(const uint8_t *d, size_t n) noexcept nogil
cdef void avif_probe(const uint8_t *d, size_t n, AvifInfo *info) noexcept nogil
# The orientation avif_probe finds (1 when none, or for data that is not AVIF).
cdef int avif_orientation(const uint8_t *d, size_t n) noexcept nogil
# An AVIF image sequence with no still (primary) image: fills msg, returns True.
cdef bint avif_refused(const uint8_t *d, size_t n, char *msg, size_t size) noexcept nogil
# Decode the primary image item of d (from memory) into frame: rgb24/rgba at 8 bits,
# rgb48/rgba64 above; its clean aperture (clap) applied, irot/imir not (the pipeline
# turns the image by avif_orientation).
cdef int avif_decode(const uint8_t *d, size_t n, int64_t max_pixels, AVFrame *frame,
                     Status *err) noexcept nogil
