# Declarations from libavutil, one extern block per header.
from libc.stdint cimport int64_t, uint8_t, uint64_t


cdef extern from "libavutil/error.h" nogil:
    int AVERROR(int e)
    int AVERROR_EOF
    int AVERROR_INVALIDDATA
    int AVERROR_DECODER_NOT_FOUND
    int AVERROR_DEMUXER_NOT_FOUND
    int AVERROR_OPTION_NOT_FOUND
    int AVERROR_PATCHWELCOME
    int AVERROR_UNKNOWN
    int AV_ERROR_MAX_STRING_SIZE
    int av_strerror(int errnum, char *errbuf, size_t errbuf_size)


cdef extern from "libavutil/mem.h" nogil:
    void *av_malloc(size_t size)
    void *av_mallocz(size_t size)
    void av_free(void *ptr)
    void av_freep(void *ptr)
    char *av_strdup(const char *s)


cdef extern from "libavutil/log.h" nogil:
    int AV_LOG_QUIET
    int AV_LOG_PANIC
    int AV_LOG_FATAL
    int AV_LOG_ERROR
    int AV_LOG_WARNING
    int av_log_get_level()
    void av_log_set_level(int level)


cdef extern from "libavutil/dict.h" nogil:
    ctypedef struct AVDictionary:
        pass

    ctypedef struct AVDictionaryEntry:
        char *key
        char *value

    int AV_DICT_IGNORE_SUFFIX
    AVDictionaryEntry *av_dict_get(const AVDictionary *m, const char *key,
                                   const AVDictionaryEntry *prev, int flags)
    int av_dict_set(AVDictionary **pm, const char *key, const char *value, int flags)
    int av_dict_count(const AVDictionary *m)
    int av_dict_copy(AVDictionary **dst, const AVDictionary *src, int flags)
    void av_dict_free(AVDictionary **m)


cdef extern from "libavutil/rational.h" nogil:
    ctypedef struct AVRational:
        int num
        int den


cdef extern from "libavutil/pixfmt.h" nogil:
    cdef enum AVPixelFormat:
        AV_PIX_FMT_NONE
        AV_PIX_FMT_RGB24
        AV_PIX_FMT_BGR24
        AV_PIX_FMT_RGBA
        AV_PIX_FMT_GRAY8
        AV_PIX_FMT_GRAY16
        AV_PIX_FMT_YA8
        AV_PIX_FMT_YA16
        AV_PIX_FMT_RGB48
        AV_PIX_FMT_RGBA64
        AV_PIX_FMT_YUV444P
        AV_PIX_FMT_YUV420P
        AV_PIX_FMT_GBRP
        AV_PIX_FMT_YUVJ420P
        AV_PIX_FMT_YUVJ422P
        AV_PIX_FMT_YUVJ444P
        AV_PIX_FMT_YUVJ440P
        AV_PIX_FMT_YUVJ411P

    cdef enum AVColorRange:
        AVCOL_RANGE_UNSPECIFIED
        AVCOL_RANGE_MPEG
        AVCOL_RANGE_JPEG

    cdef enum AVColorSpace:
        AVCOL_SPC_UNSPECIFIED
        AVCOL_SPC_BT709
        AVCOL_SPC_BT470BG
        AVCOL_SPC_SMPTE170M


cdef extern from "libavutil/pixdesc.h" nogil:
    ctypedef struct AVComponentDescriptor:
        int plane
        int step
        int offset
        int shift
        int depth

    ctypedef struct AVPixFmtDescriptor:
        const char *name
        uint8_t nb_components
        uint8_t log2_chroma_w
        uint8_t log2_chroma_h
        uint64_t flags
        AVComponentDescriptor comp[4]

    int AV_PIX_FMT_FLAG_BE
    int AV_PIX_FMT_FLAG_PAL
    int AV_PIX_FMT_FLAG_BITSTREAM
    int AV_PIX_FMT_FLAG_HWACCEL
    int AV_PIX_FMT_FLAG_PLANAR
    int AV_PIX_FMT_FLAG_RGB
    int AV_PIX_FMT_FLAG_ALPHA
    int AV_PIX_FMT_FLAG_FLOAT

    const AVPixFmtDescriptor *av_pix_fmt_desc_get(AVPixelFormat pix_fmt)
    AVPixelFormat av_get_pix_fmt(const char *name)
    const char *av_get_pix_fmt_name(AVPixelFormat pix_fmt)
    AVPixelFormat av_pix_fmt_swap_endianness(AVPixelFormat pix_fmt)
    int av_get_bits_per_pixel(const AVPixFmtDescriptor *pixdesc)


cdef extern from "libavutil/frame.h" nogil:
    ctypedef struct AVFrame:
        uint8_t *data[8]
        int linesize[8]
        int width
        int height
        int format
        AVColorRange color_range
        AVColorSpace colorspace
        int64_t pts
        AVDictionary *metadata

    AVFrame *av_frame_alloc()
    void av_frame_free(AVFrame **frame)
    void av_frame_unref(AVFrame *frame)
    void av_frame_move_ref(AVFrame *dst, AVFrame *src)
    int av_frame_get_buffer(AVFrame *frame, int align)
    int av_frame_make_writable(AVFrame *frame)


cdef extern from "libavutil/imgutils.h" nogil:
    int av_image_check_size2(unsigned int w, unsigned int h, int64_t max_pixels,
                             AVPixelFormat pix_fmt, int log_offset, void *log_ctx)
    void av_image_copy_plane(uint8_t *dst, int dst_linesize, const uint8_t *src,
                             int src_linesize, int bytewidth, int height)


cdef extern from "libavutil/version.h" nogil:
    unsigned avutil_version()
