from libc.stdint cimport int64_t

from spdl.io._demux cimport Demuxed
from spdl.io._status cimport Status
from spdl.io._jpeg cimport JpegDecoder
from libc.stdint cimport uint8_t

from spdl.io._geometry cimport Crop, Extent, ScaleSpec
from spdl.io._scale cimport Scaler
from spdl.io.includes.libavcodec cimport AVCodec, AVCodecContext
from spdl.io.includes.libavutil cimport AVDictionary, AVFrame, AVPixelFormat

cdef struct DecodeSpec:
    const AVCodec *codec            # forced decoder, or NULL for the codec's default
    AVDictionary *options           # copied for each open; owned by the caller
    int64_t max_pixels
    bint apply_orientation          # turn images by their EXIF orientation (Demuxed.orientation)

cdef struct Decoder:
    AVCodecContext *ctx             # an open decoder kept for the next image, or NULL
    const AVCodec *codec
    JpegDecoder jpeg                # the libjpeg-turbo path for JPEG

cdef class CompiledDecodeConfig:
    """Owns the C form of a DecodeConfig."""
    cdef DecodeSpec spec
    cdef object config

cdef CompiledDecodeConfig compile_decode_config(object config)
cdef void decoder_init(Decoder *dec) noexcept nogil
cdef void decoder_free(Decoder *dec) noexcept nogil
cdef int decode_image(const Demuxed *d, const DecodeSpec *o, Decoder *dec, const ScaleSpec *spec,
                      Py_ssize_t index, Crop *crop, AVFrame *frame, Extent *ext,
                      Status *err) noexcept nogil

cdef class ImageFrames:
    cdef AVFrame *frame
    cdef readonly str source
cdef void set_jpeg_resampler(bint on) noexcept nogil
cdef int decode_planned(const Demuxed *d, const DecodeSpec *o, Decoder *dec, Scaler *scaler,
                        const ScaleSpec *spec, const char *graph, Py_ssize_t index, Crop *crop,
                        AVFrame *decoded, AVFrame *out, uint8_t **dst, const int *linesize,
                        Status *err) noexcept nogil
