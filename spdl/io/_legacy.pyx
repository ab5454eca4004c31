# cython: language_level=3
"""Older image formats FFmpeg 5.1 decodes wrong: the variants decoded here.

DDS (csrc/dds.h): every uncompressed mask layout, BC1-BC5 and the DXGI formats of
the same kinds; the rest goes to FFmpeg's dds decoder or is refused by name.
BMP RLE4/RLE8 (csrc/bmp_rle.h): FFmpeg's MS RLE decoder refuses common files and
places absolute runs past a row's end elsewhere than Pillow.
"""

from libc.stdint cimport int64_t, uint8_t, uint64_t

from spdl.io._status cimport ERR_DECODE, ERR_FORMAT, ERR_NOMEM, Status, fail, fail_too_large
from spdl.io.includes.libavutil cimport (
    AV_PIX_FMT_GRAY8, AV_PIX_FMT_RGB24, AV_PIX_FMT_RGBA, AVFrame, av_frame_get_buffer,
    av_frame_unref,
)

cdef extern from "<stdio.h>":
    int snprintf(char *buf, size_t n, const char *fmt, ...) nogil

cdef extern from "csrc/dds.h" nogil:
    int DDS_OWN
    int DDS_FFMPEG
    ctypedef struct DdsInfo:
        int width
        int height
        int channels
        size_t offset
        unsigned long long data_size
    int dds_parse(const uint8_t *d, size_t n, DdsInfo *o, char *msg, size_t size)
    void dds_decode(const uint8_t *d, const DdsInfo *o, uint8_t *dst, ptrdiff_t stride)


cdef int _frame(AVFrame *frame, int width, int height, int channels, int64_t max_pixels,
                const char *what, Status *err) noexcept nogil:
    """Allocate frame for a width x height image of 1 (gray8), 3 (rgb24) or 4 (rgba)
    channels, after checking its size against max_pixels."""
    cdef int ret
    if <int64_t>width * height > max_pixels:
        return fail_too_large(err, what, "the image", width, height, max_pixels)
    frame.width, frame.height = width, height
    frame.format = (AV_PIX_FMT_GRAY8 if channels == 1 else AV_PIX_FMT_RGB24 if channels == 3
                    else AV_PIX_FMT_RGBA)
    ret = av_frame_get_buffer(frame, 0)
    if ret < 0:
        return fail(err, ERR_NOMEM, "decode", "av_frame_get_buffer", ret, NULL)
    return 0


cdef int dds_decode_frame(const uint8_t *data, int size, int64_t max_pixels, AVFrame *frame,
                          Status *err) noexcept nogil:
    """Decode a DDS file into frame (gray8, rgb24 or rgba), or return LEGACY_NOT_HANDLED
    for the variants FFmpeg's decoder is left to."""
    cdef DdsInfo info
    cdef char msg[160]
    cdef int ret = dds_parse(data, <size_t>size, &info, msg, sizeof(msg))
    if ret == DDS_FFMPEG:
        return LEGACY_NOT_HANDLED
    if ret != DDS_OWN:
        return fail(err, ERR_FORMAT, "decode", "dds_parse", 0, msg)
    if <unsigned long long>size - info.offset < info.data_size:
        snprintf(msg, sizeof(msg), "DDS data truncated: %lld bytes of pixels, %lld needed",
                 <long long>(size - <int>info.offset), <long long>info.data_size)
        return fail(err, ERR_DECODE, "decode", "dds_decode", 0, msg)
    if _frame(frame, info.width, info.height, info.channels, max_pixels, "dds_decode", err) < 0:
        return -1
    dds_decode(data, &info, frame.data[0], frame.linesize[0])
    return 0


cdef extern from "csrc/bmp_rle.h" nogil:
    int BMP_RLE_YES
    ctypedef struct BmpRle:
        int width
        int height
    uint64_t bmp_missing(const uint8_t *d, size_t n, uint64_t *row_pad, uint64_t *pixels)
    int bmp_rle_parse(const uint8_t *d, size_t n, BmpRle *r, char *msg, size_t size)
    int bmp_rle_decode(const BmpRle *r, uint8_t *dst, ptrdiff_t stride)


cdef int bmp_decode_frame(const uint8_t *data, int size, int64_t max_pixels, AVFrame *frame,
                          Status *err) noexcept nogil:
    """Decode an RLE4/RLE8 BMP into frame (rgb24); refuse an uncompressed one whose pixel
    data is cut short (when within max_pixels: over it, FFmpeg's decoder says too large);
    return LEGACY_NOT_HANDLED for any other BMP (FFmpeg's decoder)."""
    cdef BmpRle rle
    cdef char msg[160]
    cdef uint64_t missing, pad, pixels
    cdef int ret = bmp_rle_parse(data, <size_t>size, &rle, msg, sizeof(msg))
    if ret == 0:
        missing = bmp_missing(data, <size_t>size, &pad, &pixels)
        if missing == 0 or pixels > <uint64_t>max_pixels:
            return LEGACY_NOT_HANDLED
        snprintf(msg, sizeof(msg), "BMP pixel data truncated: %llu bytes of its rows missing",
                 missing)
        return fail(err, ERR_DECODE, "decode", "bmp_decode", 0, msg)
    if ret < 0:
        return fail(err, ERR_DECODE, "decode", "bmp_rle_parse", 0, msg)
    if _frame(frame, rle.width, rle.height, 3, max_pixels, "bmp_rle_decode", err) < 0:
        return -1
    if bmp_rle_decode(&rle, frame.data[0], frame.linesize[0]) < 0:
        av_frame_unref(frame)
        return fail(err, ERR_DECODE, "decode", "bmp_rle_decode", 0, "BMP RLE data truncated: "
                    "it ends before the image is full, without an end-of-bitmap marker")
    return 0
