# Declarations from libtiff 4.5 (tiff.h, tiffio.h) and our memory source (csrc/tiff_io.h).
# Only API present in 4.5.0: the wheels bundle a 4.5.x.

from libc.stdint cimport int32_t, int64_t, uint16_t, uint32_t, uint64_t

cdef extern from "tiff.h" nogil:
    enum:
        TIFFTAG_IMAGEWIDTH
        TIFFTAG_IMAGELENGTH
        TIFFTAG_BITSPERSAMPLE
        TIFFTAG_COMPRESSION
        TIFFTAG_PHOTOMETRIC
        TIFFTAG_SAMPLESPERPIXEL
        TIFFTAG_ROWSPERSTRIP
        TIFFTAG_PLANARCONFIG
        TIFFTAG_TILEWIDTH
        TIFFTAG_TILELENGTH
        TIFFTAG_INKSET
        TIFFTAG_SAMPLEFORMAT
        COMPRESSION_JPEG
        COMPRESSION_OJPEG
        PHOTOMETRIC_MINISWHITE
        PHOTOMETRIC_MINISBLACK
        PHOTOMETRIC_RGB
        PHOTOMETRIC_PALETTE
        PHOTOMETRIC_SEPARATED
        PHOTOMETRIC_YCBCR
        PHOTOMETRIC_CIELAB
        PHOTOMETRIC_ICCLAB
        PHOTOMETRIC_ITULAB
        PHOTOMETRIC_LOGL
        PHOTOMETRIC_LOGLUV
        PLANARCONFIG_CONTIG
        PLANARCONFIG_SEPARATE
        INKSET_CMYK
        EXTRASAMPLE_ASSOCALPHA
        EXTRASAMPLE_UNASSALPHA
        SAMPLEFORMAT_UINT
        SAMPLEFORMAT_INT
        SAMPLEFORMAT_IEEEFP
        SAMPLEFORMAT_VOID
        SAMPLEFORMAT_COMPLEXINT
        SAMPLEFORMAT_COMPLEXIEEEFP

cdef extern from "tiffio.h" nogil:
    ctypedef struct TIFF:
        pass
    ctypedef int64_t tmsize_t

    ctypedef struct TIFFRGBAImage:
        TIFF *tif
        int stoponerr
        uint32_t width
        uint32_t height
        uint16_t orientation
        uint16_t req_orientation

    ctypedef struct TIFFCodec:
        char *name
        uint16_t scheme

    void TIFFClose(TIFF *tif)
    int TIFFIsCODECConfigured(uint16_t scheme)
    const TIFFCodec *TIFFFindCODEC(uint16_t scheme)
    int TIFFIsTiled(TIFF *tif)
    uint64_t TIFFScanlineSize64(TIFF *tif)
    uint64_t TIFFStripSize64(TIFF *tif)
    uint64_t TIFFTileSize64(TIFF *tif)
    uint64_t TIFFTileRowSize64(TIFF *tif)
    uint32_t TIFFComputeStrip(TIFF *tif, uint32_t row, uint16_t sample)
    uint32_t TIFFNumberOfStrips(TIFF *tif)
    uint32_t TIFFComputeTile(TIFF *tif, uint32_t x, uint32_t y, uint32_t z, uint16_t sample)
    uint32_t TIFFNumberOfTiles(TIFF *tif)
    tmsize_t TIFFReadEncodedStrip(TIFF *tif, uint32_t strip, void *buf, tmsize_t size)
    tmsize_t TIFFReadEncodedTile(TIFF *tif, uint32_t tile, void *buf, tmsize_t size)
    int TIFFReadScanline(TIFF *tif, void *buf, uint32_t row, uint16_t sample)
    int TIFFRGBAImageOK(TIFF *tif, char *emsg)
    int TIFFRGBAImageBegin(TIFFRGBAImage *img, TIFF *tif, int stop, char *emsg)
    int TIFFRGBAImageGet(TIFFRGBAImage *img, uint32_t *raster, uint32_t w, uint32_t h)
    void TIFFRGBAImageEnd(TIFFRGBAImage *img)
    int TIFFGetR(uint32_t abgr)
    int TIFFGetG(uint32_t abgr)
    int TIFFGetB(uint32_t abgr)
    int TIFFGetA(uint32_t abgr)

cdef extern from "csrc/tiff_io.h" nogil:
    ctypedef struct spdl_tiff_src:
        const unsigned char *data
        uint64_t size
        uint64_t pos
        int errors
        int warnings
        char message[200]

    TIFF *spdl_tiff_open(spdl_tiff_src *src, tmsize_t max_alloc)
    int spdl_tiff_u16(TIFF *tif, uint32_t tag, uint16_t *v)
    int spdl_tiff_u32(TIFF *tif, uint32_t tag, uint32_t *v)
    int spdl_tiff_extrasamples(TIFF *tif, uint16_t *n, const uint16_t **types)
    int spdl_tiff_colormap(TIFF *tif, const uint16_t **r, const uint16_t **g, const uint16_t **b)
    int spdl_tiff_jpeg_rgb(TIFF *tif)
