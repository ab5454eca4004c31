# The part of NPP (nppdefs.h, nppi_geometry_transforms.h, nppi_color_conversion.h,
# nppi_data_exchange_and_initialization.h of CUDA 12 and 13) that spdl.io calls to resize
# (a crop box: the source ROI) and mirror decoded images on the GPU, and to make float or
# channels-first batches of them (a palette look-up per channel, plane copies, a conversion).
#
# libnppig, libnppicc and libnppidei are opened with dlopen at run time (see
# spdl/io/_nvjpeg_lib.pyx): this file declares the structs (NppStreamContext is passed
# BY VALUE, so its layout must match nppdefs.h exactly), constants and function POINTER
# types. An array parameter of the headers (Npp8u * const aDst[3]) is a pointer to its
# first element, as C passes it.

from spdl.io.includes.cuda_runtime cimport cudaStream_t

ctypedef int NppStatus              # < 0: error, 0: success, > 0: warning

cdef enum:
    NPP_NO_ERROR = 0

# NppiInterpolationMode
cdef enum:
    NPPI_INTER_NN = 1
    NPPI_INTER_LINEAR = 2
    NPPI_INTER_CUBIC = 4
    NPPI_INTER_SUPER = 8              # supersampling: downscaling only
    NPPI_INTER_LANCZOS = 16

# NppiAxis: the axis a mirror flips around.
cdef enum:
    NPP_HORIZONTAL_AXIS = 0           # top to bottom
    NPP_VERTICAL_AXIS = 1             # left to right: a horizontal flip

# NppRoundMode (nppdefs.h): round to nearest, ties to even.
cdef enum:
    NPP_RND_NEAR = 0

ctypedef struct NppiSize:
    int width
    int height

ctypedef struct NppiRect:
    int x
    int y
    int width
    int height

ctypedef struct NppStreamContext:
    cudaStream_t hStream
    int nCudaDeviceId
    int nMultiProcessorCount
    int nMaxThreadsPerMultiProcessor
    int nMaxThreadsPerBlock
    size_t nSharedMemPerBlock
    int nCudaDevAttrComputeCapabilityMajor
    int nCudaDevAttrComputeCapabilityMinor
    unsigned int nStreamFlags
    int nReserved0

ctypedef struct NppLibraryVersion:
    int major
    int minor
    int build

ctypedef const NppLibraryVersion *(*nppGetLibVersion_t)() noexcept nogil
ctypedef NppStatus (*nppiResize_8u_C3R_Ctx_t)(const unsigned char *pSrc, int nSrcStep, NppiSize oSrcSize,
                                             NppiRect oSrcRectROI, unsigned char *pDst, int nDstStep,
                                             NppiSize oDstSize, NppiRect oDstRectROI, int eInterpolation,
                                             NppStreamContext nppStreamCtx) noexcept nogil
# pSrc and pDst are host arrays of 3 device plane pointers.
ctypedef NppStatus (*nppiResize_8u_P3R_Ctx_t)(const unsigned char **pSrc, int nSrcStep, NppiSize oSrcSize,
                                             NppiRect oSrcRectROI, unsigned char **pDst, int nDstStep,
                                             NppiSize oDstSize, NppiRect oDstRectROI, int eInterpolation,
                                             NppStreamContext nppStreamCtx) noexcept nogil
# In place; flip is an NppiAxis (an enum: passed as an int).
ctypedef NppStatus (*nppiMirror_8u_C3IR_Ctx_t)(unsigned char *pSrcDst, int nSrcDstStep, NppiSize oROI,
                                              int flip, NppStreamContext nppStreamCtx) noexcept nogil

# nppi_color_conversion.h (libnppicc): each 8-bit sample (its nBitSize low bits) indexes
# pTable, a DEVICE array of 2^nBitSize 32-bit values; nDstStep in bytes (4 a pixel).
ctypedef NppStatus (*nppiLUTPalette_8u32u_C1R_Ctx_t)(const unsigned char *pSrc, int nSrcStep,
                                                    unsigned int *pDst, int nDstStep, NppiSize oSizeROI,
                                                    const unsigned int *pTable, int nBitSize,
                                                    NppStreamContext nppStreamCtx) noexcept nogil
# nppi_data_exchange_and_initialization.h (libnppidei). Packed 3-channel 8-bit to three
# planes (aDst: a host array of 3 device plane pointers, all of step nDstStep).
ctypedef NppStatus (*nppiCopy_8u_C3P3R_Ctx_t)(const unsigned char *pSrc, int nSrcStep,
                                             unsigned char **aDst, int nDstStep, NppiSize oSizeROI,
                                             NppStreamContext nppStreamCtx) noexcept nogil
# Three 32-bit float planes (aSrc: a host array of 3 device pointers) to packed 3-channel.
ctypedef NppStatus (*nppiCopy_32f_P3C3R_Ctx_t)(const float **aSrc, int nSrcStep, float *pDst,
                                              int nDstStep, NppiSize oSizeROI,
                                              NppStreamContext nppStreamCtx) noexcept nogil
# Three 16-bit planes to packed 3-channel.
ctypedef NppStatus (*nppiCopy_16u_P3C3R_Ctx_t)(const unsigned short **aSrc, int nSrcStep,
                                              unsigned short *pDst, int nDstStep, NppiSize oSizeROI,
                                              NppStreamContext nppStreamCtx) noexcept nogil
# 32-bit float to 16-bit unsigned, rounded (eRoundMode: an NppRoundMode, passed as an int)
# and saturated to 0..65535.
ctypedef NppStatus (*nppiConvert_32f16u_C1R_Ctx_t)(const float *pSrc, int nSrcStep, unsigned short *pDst,
                                                  int nDstStep, NppiSize oSizeROI, int eRoundMode,
                                                  NppStreamContext nppStreamCtx) noexcept nogil
