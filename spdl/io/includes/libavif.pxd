# Declarations from libavif 0.11.1's avif.h (the fields and calls 0.11.1 has; later
# releases keep them).
from libc.stdint cimport uint8_t, uint32_t


cdef extern from "avif/avif.h" nogil:
    ctypedef int avifBool

    uint32_t AVIF_DEFAULT_IMAGE_SIZE_LIMIT
    uint32_t AVIF_DEFAULT_IMAGE_DIMENSION_LIMIT

    ctypedef enum avifResult:
        AVIF_RESULT_OK
        AVIF_RESULT_OUT_OF_MEMORY

    const char *avifResultToString(avifResult result)

    ctypedef enum avifPixelFormat:
        AVIF_PIXEL_FORMAT_NONE
        AVIF_PIXEL_FORMAT_YUV444
        AVIF_PIXEL_FORMAT_YUV422
        AVIF_PIXEL_FORMAT_YUV420
        AVIF_PIXEL_FORMAT_YUV400

    ctypedef struct avifDiagnostics:
        char error[256]

    ctypedef uint32_t avifTransformFlags
    cdef enum:
        AVIF_TRANSFORM_CLAP
        AVIF_TRANSFORM_IROT
        AVIF_TRANSFORM_IMIR

    ctypedef struct avifCleanApertureBox:
        pass

    ctypedef struct avifCropRect:
        uint32_t x
        uint32_t y
        uint32_t width
        uint32_t height

    avifBool avifCropRectConvertCleanApertureBox(avifCropRect *cropRect,
                                                 const avifCleanApertureBox *clap,
                                                 uint32_t imageW, uint32_t imageH,
                                                 avifPixelFormat yuvFormat,
                                                 avifDiagnostics *diag)

    ctypedef struct avifImage:
        uint32_t width
        uint32_t height
        uint32_t depth
        avifPixelFormat yuvFormat
        uint8_t *alphaPlane
        avifTransformFlags transformFlags
        avifCleanApertureBox clap

    avifImage *avifImageCreateEmpty()
    void avifImageDestroy(avifImage *image)
    avifResult avifImageSetViewRect(avifImage *dstImage, const avifImage *srcImage,
                                    const avifCropRect *rect)

    ctypedef enum avifRGBFormat:
        AVIF_RGB_FORMAT_RGB
        AVIF_RGB_FORMAT_RGBA

    ctypedef struct avifRGBImage:
        uint32_t width
        uint32_t height
        uint32_t depth
        avifRGBFormat format
        uint8_t *pixels
        uint32_t rowBytes

    void avifRGBImageSetDefaults(avifRGBImage *rgb, const avifImage *image)
    avifResult avifImageYUVToRGB(const avifImage *image, avifRGBImage *rgb)

    ctypedef enum avifDecoderSource:
        AVIF_DECODER_SOURCE_PRIMARY_ITEM

    ctypedef struct avifDecoder:
        int maxThreads
        avifDecoderSource requestedSource
        avifBool ignoreExif
        avifBool ignoreXMP
        uint32_t imageSizeLimit
        uint32_t imageDimensionLimit
        uint32_t imageCountLimit
        avifImage *image
        avifBool alphaPresent
        avifDiagnostics diag

    avifDecoder *avifDecoderCreate()
    void avifDecoderDestroy(avifDecoder *decoder)
    avifResult avifDecoderSetIOMemory(avifDecoder *decoder, const uint8_t *data, size_t size)
    avifResult avifDecoderParse(avifDecoder *decoder)
    avifResult avifDecoderNextImage(avifDecoder *decoder)
