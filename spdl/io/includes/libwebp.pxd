# Declarations from libwebp's decoder (advanced API) and demux API (libwebpdemux), one
# extern block per header. Only what spdl/io/_webp.pyx calls (still and animated WebP).
from libc.stdint cimport uint8_t, uint32_t


cdef extern from "webp/mux_types.h" nogil:
    ctypedef struct WebPData:
        const uint8_t *bytes
        size_t size


cdef extern from "webp/decode.h" nogil:
    ctypedef enum WEBP_CSP_MODE:
        MODE_RGB
        MODE_RGBA

    ctypedef enum VP8StatusCode:
        VP8_STATUS_OK
        VP8_STATUS_OUT_OF_MEMORY
        VP8_STATUS_INVALID_PARAM
        VP8_STATUS_BITSTREAM_ERROR
        VP8_STATUS_UNSUPPORTED_FEATURE
        VP8_STATUS_SUSPENDED
        VP8_STATUS_USER_ABORT
        VP8_STATUS_NOT_ENOUGH_DATA

    ctypedef struct WebPBitstreamFeatures:
        int width
        int height
        int has_alpha
        int has_animation
        int format                          # 0 undefined or mixed, 1 lossy, 2 lossless

    ctypedef struct WebPRGBABuffer:
        uint8_t *rgba
        int stride
        size_t size

    ctypedef union _WebPDecBufferU:        # (anonymous in C: only its member is named here)
        WebPRGBABuffer RGBA

    ctypedef struct WebPDecBuffer:
        WEBP_CSP_MODE colorspace
        int width, height
        int is_external_memory
        _WebPDecBufferU u

    ctypedef struct WebPDecoderOptions:
        int bypass_filtering
        int no_fancy_upsampling
        int use_cropping
        int use_scaling
        int use_threads
        int dithering_strength
        int flip
        int alpha_dithering_strength

    ctypedef struct WebPDecoderConfig:
        WebPBitstreamFeatures input
        WebPDecBuffer output
        WebPDecoderOptions options

    int WebPInitDecoderConfig(WebPDecoderConfig *config)
    VP8StatusCode WebPGetFeatures(const uint8_t *data, size_t data_size,
                                  WebPBitstreamFeatures *features)
    VP8StatusCode WebPDecode(const uint8_t *data, size_t data_size, WebPDecoderConfig *config)
    void WebPFreeDecBuffer(WebPDecBuffer *buffer)


cdef extern from "webp/demux.h" nogil:
    ctypedef enum WebPDemuxState:
        WEBP_DEMUX_PARSE_ERROR
        WEBP_DEMUX_PARSING_HEADER
        WEBP_DEMUX_PARSED_HEADER
        WEBP_DEMUX_DONE

    ctypedef enum WebPFormatFeature:
        WEBP_FF_FORMAT_FLAGS
        WEBP_FF_CANVAS_WIDTH
        WEBP_FF_CANVAS_HEIGHT
        WEBP_FF_FRAME_COUNT

    ctypedef struct WebPDemuxer:
        pass

    WebPDemuxer *WebPDemux(const WebPData *data)
    void WebPDemuxDelete(WebPDemuxer *dmux)
    uint32_t WebPDemuxGetI(const WebPDemuxer *dmux, WebPFormatFeature feature)

    ctypedef struct WebPAnimDecoder:
        pass

    ctypedef struct WebPAnimDecoderOptions:
        WEBP_CSP_MODE color_mode
        int use_threads

    int WebPAnimDecoderOptionsInit(WebPAnimDecoderOptions *dec_options)
    WebPAnimDecoder *WebPAnimDecoderNew(const WebPData *webp_data,
                                        const WebPAnimDecoderOptions *dec_options)
    int WebPAnimDecoderGetNext(WebPAnimDecoder *dec, uint8_t **buf, int *timestamp)
    void WebPAnimDecoderDelete(WebPAnimDecoder *dec)
