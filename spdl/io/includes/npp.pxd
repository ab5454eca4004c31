# The part of NPP (nppdefs.h, nppi_geometry_transforms.h of CUDA 12 and 13) that
# spdl.io calls to resize (a crop box: the source ROI) and mirror decoded images on the GPU.
#
# libnppig is opened with dlopen at run time (see spdl/io/_nvjpeg_lib.pyx): this
# file declares the structs (NppStreamContext is passed BY VALUE, so its layout
# must match nppdefs.h exactly), constants and function POINTER types.

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
