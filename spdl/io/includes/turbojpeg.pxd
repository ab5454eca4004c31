# Declarations from libjpeg-turbo's TurboJPEG API (2.x; 3.x keeps these entry points).

cdef extern from "turbojpeg.h" nogil:
    ctypedef void *tjhandle

    ctypedef struct tjscalingfactor:
        int num
        int denom

    cdef enum TJSAMP:
        TJSAMP_444
        TJSAMP_422
        TJSAMP_420
        TJSAMP_GRAY
        TJSAMP_440
        TJSAMP_411

    cdef enum TJCS:
        TJCS_RGB
        TJCS_YCbCr
        TJCS_GRAY
        TJCS_CMYK
        TJCS_YCCK

    cdef enum TJERR:
        TJERR_WARNING
        TJERR_FATAL

    cdef enum TJPF:
        TJPF_RGB
        TJPF_BGR
        TJPF_RGBX
        TJPF_BGRX
        TJPF_XBGR
        TJPF_XRGB
        TJPF_GRAY
        TJPF_RGBA
        TJPF_BGRA

    int TJFLAG_LIMITSCANS
    int TJFLAG_STOPONWARNING

    tjhandle tjInitDecompress()
    int tjDestroy(tjhandle handle)
    int tjDecompressHeader3(tjhandle handle, const unsigned char *jpegBuf,
                            unsigned long jpegSize, int *width, int *height,
                            int *jpegSubsamp, int *jpegColorspace)
    int tjDecompress2(tjhandle handle, const unsigned char *jpegBuf, unsigned long jpegSize,
                      unsigned char *dstBuf, int width, int pitch, int height, int pixelFormat,
                      int flags)
    int tjDecompressToYUVPlanes(tjhandle handle, const unsigned char *jpegBuf,
                                unsigned long jpegSize, unsigned char **dstPlanes,
                                int width, int *strides, int height, int flags)
    tjscalingfactor *tjGetScalingFactors(int *numScalingFactors)
    char *tjGetErrorStr2(tjhandle handle)
    int tjGetErrorCode(tjhandle handle)
