from libc.stdint cimport int64_t, uint8_t

from spdl.io._status cimport Status
from spdl.io._source cimport SourceRef
from spdl.io.includes.libavcodec cimport AVCodecID, AVCodecParameters, AVPacket
from spdl.io.includes.libavutil cimport AVDictionary

cdef struct DemuxSpec:
    const char *format              # a demuxer name, or NULL to detect
    AVDictionary *format_options    # copied for each use; owned by the caller
    int buffer_size
    int64_t max_file_size
    const char *format_whitelist    # demuxers allowed when probing

cdef struct Demuxed:
    AVPacket *pkt                   # the image's one packet, padded; owned
    AVCodecParameters *par          # from a demuxer, or NULL when detected by signature
    AVCodecID codec_id
    const char *format              # static name of the container format
    int orientation                 # EXIF orientation (JPEG APP1, WebP EXIF, PNG eXIf), 1..8

cdef class CompiledDemuxConfig:
    """Owns the C form of a DemuxConfig."""
    cdef DemuxSpec spec
    cdef bytes _format
    cdef object config

cdef CompiledDemuxConfig compile_demux_config(object config)
cdef int demux_init(Demuxed *d) noexcept nogil
# An extended WebP whose VP8X header says it is animated (decoded by spdl/io/_webp.pyx).
cdef bint webp_animated(const uint8_t *d, int n) noexcept nogil
cdef void demux_clear(Demuxed *d) noexcept nogil
cdef void demux_reset(Demuxed *d) noexcept nogil
cdef int demux_source(const SourceRef *src, const DemuxSpec *opts, Demuxed *out,
                      Status *err) noexcept nogil

cdef class ImagePackets:
    cdef Demuxed d
    cdef readonly str source
