# Declarations from libavcodec, one extern block per header.
from libc.stdint cimport int64_t, uint8_t

from spdl.io.includes.libavutil cimport AVDictionary, AVFrame, AVPixelFormat


cdef extern from "libavcodec/codec_id.h" nogil:
    cdef enum AVCodecID:
        AV_CODEC_ID_NONE
        AV_CODEC_ID_MJPEG
        AV_CODEC_ID_PNG
        AV_CODEC_ID_BMP
        AV_CODEC_ID_TIFF
        AV_CODEC_ID_GIF
        AV_CODEC_ID_WEBP
        AV_CODEC_ID_APNG
        AV_CODEC_ID_PHOTOCD
        AV_CODEC_ID_VBN
        AV_CODEC_ID_GEM
        AV_CODEC_ID_AV1
        AV_CODEC_ID_JPEG2000
        AV_CODEC_ID_JPEGLS
        AV_CODEC_ID_DDS
        AV_CODEC_ID_TARGA

    const char *avcodec_get_name(AVCodecID id)


cdef extern from "libavcodec/codec_desc.h" nogil:
    int AV_CODEC_PROP_INTRA_ONLY

    ctypedef struct AVCodecDescriptor:
        AVCodecID id
        int type
        const char *name
        int props

    const AVCodecDescriptor *avcodec_descriptor_get(AVCodecID id)


cdef extern from "libavcodec/codec.h" nogil:
    ctypedef struct AVCodec:
        const char *name
        const char *long_name
        int type
        AVCodecID id

    const AVCodec *avcodec_find_decoder(AVCodecID id)
    const AVCodec *avcodec_find_decoder_by_name(const char *name)
    int av_codec_is_decoder(const AVCodec *codec)


cdef extern from "libavcodec/codec_par.h" nogil:
    ctypedef struct AVCodecParameters:
        int codec_type
        AVCodecID codec_id
        int format
        int width
        int height

    AVCodecParameters *avcodec_parameters_alloc()
    void avcodec_parameters_free(AVCodecParameters **par)
    int avcodec_parameters_copy(AVCodecParameters *dst, const AVCodecParameters *src)


cdef extern from "libavcodec/packet.h" nogil:
    ctypedef struct AVBufferRef:
        pass

    ctypedef struct AVPacket:
        AVBufferRef *buf
        uint8_t *data
        int size
        int stream_index
        int flags

    AVPacket *av_packet_alloc()
    void av_packet_free(AVPacket **pkt)
    void av_packet_unref(AVPacket *pkt)
    int av_new_packet(AVPacket *pkt, int size)
    int av_shrink_packet(AVPacket *pkt, int size)
    int av_grow_packet(AVPacket *pkt, int grow_by)
    int av_packet_ref(AVPacket *dst, const AVPacket *src)
    void av_packet_move_ref(AVPacket *dst, AVPacket *src)


cdef extern from "libavcodec/avcodec.h" nogil:
    int AV_INPUT_BUFFER_PADDING_SIZE
    int FF_THREAD_FRAME
    int FF_THREAD_SLICE

    ctypedef struct AVCodecContext:
        const AVCodec *codec
        AVCodecID codec_id
        int width
        int height
        AVPixelFormat pix_fmt
        int thread_count
        int thread_type
        int lowres
        int bits_per_raw_sample
        int64_t max_pixels
        void *opaque                # the caller's: our spdl_status (csrc/status.h)

    AVCodecContext *avcodec_alloc_context3(const AVCodec *codec)
    void avcodec_free_context(AVCodecContext **avctx)
    int avcodec_parameters_to_context(AVCodecContext *codec, const AVCodecParameters *par)
    int avcodec_open2(AVCodecContext *avctx, const AVCodec *codec, AVDictionary **options)
    int avcodec_send_packet(AVCodecContext *avctx, const AVPacket *avpkt)
    int avcodec_receive_frame(AVCodecContext *avctx, AVFrame *frame)
    void avcodec_flush_buffers(AVCodecContext *avctx)
    unsigned avcodec_version()
