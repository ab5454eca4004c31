# The part of NPP (nppdefs.h, nppi_geometry_transforms.h of CUDA 12) that
# spdl.io calls to resize decoded images on the GPU.
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
