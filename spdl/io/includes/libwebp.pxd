# Declarations from libwebp's demux API (libwebpdemux) and the types it uses, one
# extern block per header. Only what the animated WebP path (spdl/io/_webp.pyx) calls.
from libc.stdint cimport uint8_t, uint32_t


cdef extern from "webp/mux_types.h" nogil:
    ctypedef struct WebPData:
        const uint8_t *bytes
        size_t size


cdef extern from "webp/decode.h" nogil:
    ctypedef enum WEBP_CSP_MODE:
        MODE_RGBA


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
