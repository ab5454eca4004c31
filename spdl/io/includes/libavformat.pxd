# Declarations from libavformat, one extern block per header.
from libc.stdint cimport int64_t, uint8_t

from spdl.io.includes.libavcodec cimport AVCodecParameters, AVPacket
from spdl.io.includes.libavutil cimport AVDictionary


cdef extern from "libavformat/avio.h" nogil:
    ctypedef struct AVIOContext:
        unsigned char *buffer

    AVIOContext *avio_alloc_context(
        unsigned char *buffer, int buffer_size, int write_flag, void *opaque,
        int (*read_packet)(void *opaque, uint8_t *buf, int buf_size) noexcept nogil,
        int (*write_packet)(void *opaque, const uint8_t *buf, int buf_size) noexcept nogil,
        int64_t (*seek)(void *opaque, int64_t offset, int whence) noexcept nogil)
    void avio_context_free(AVIOContext **s)
    int AVSEEK_SIZE


cdef extern from "libavformat/avformat.h" nogil:
    int AVFMT_FLAG_CUSTOM_IO
    int AVFMT_NOFILE

    ctypedef struct AVInputFormat:
        const char *name
        const char *long_name
        int flags

    ctypedef struct AVStream:
        int index
        AVCodecParameters *codecpar

    ctypedef struct AVFormatContext

    ctypedef struct AVFormatContext:
        const AVInputFormat *iformat
        AVIOContext *pb
        unsigned int nb_streams
        AVStream **streams
        int flags
        int64_t probesize
        int64_t max_analyze_duration
        char *format_whitelist
        char *codec_whitelist
        char *protocol_whitelist
        int max_streams
        void *opaque                # the caller's: our spdl_status (csrc/status.h)
        int (*io_open)(AVFormatContext *s, AVIOContext **pb, const char *url,
                       int flags, AVDictionary **options) noexcept nogil

    AVFormatContext *avformat_alloc_context()
    void avformat_free_context(AVFormatContext *s)
    const AVInputFormat *av_find_input_format(const char *short_name)
    int avformat_open_input(AVFormatContext **ps, const char *url,
                            const AVInputFormat *fmt, AVDictionary **options)
    int avformat_find_stream_info(AVFormatContext *ic, AVDictionary **options)
    int av_read_frame(AVFormatContext *s, AVPacket *pkt)
    void avformat_close_input(AVFormatContext **s)
    unsigned avformat_version()
