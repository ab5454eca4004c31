from spdl.io._cuda_lib cimport _Library
from spdl.io.includes.npp cimport *
from spdl.io.includes.nvjpeg cimport *

# The nvJPEG functions spdl.io calls, filled by dlsym (see _nvjpeg_lib.pyx).
cdef struct NvjpegApi:
    nvjpegGetProperty_t GetProperty
    nvjpegCreateEx_t CreateEx
    nvjpegDestroy_t Destroy
    nvjpegJpegStateCreate_t JpegStateCreate
    nvjpegJpegStateDestroy_t JpegStateDestroy
    nvjpegGetImageInfo_t GetImageInfo
    nvjpegDecodeBatchedInitialize_t DecodeBatchedInitialize
    nvjpegDecodeBatched_t DecodeBatched
    nvjpegJpegStreamCreate_t JpegStreamCreate
    nvjpegJpegStreamDestroy_t JpegStreamDestroy
    nvjpegJpegStreamParse_t JpegStreamParse
    # Reads the frame and scan headers only (CUDA 12 and 13 have it): what the hardware
    # backend's nvjpegDecodeBatchedSupported needs.
    nvjpegJpegStreamParseHeader_t JpegStreamParseHeader
    nvjpegDecodeBatchedSupported_t DecodeBatchedSupported

# The NPP functions: libnppc's version, libnppig's resizes and mirror, libnppicc's palette
# look-up and libnppidei's plane copies and conversion (for float and channels-first batches),
# each library's in one run of fields (fill_table fills a run).
cdef struct NppApi:
    nppGetLibVersion_t GetLibVersion
    nppiResize_8u_C3R_Ctx_t Resize_8u_C3R_Ctx
    nppiResize_8u_P3R_Ctx_t Resize_8u_P3R_Ctx
    nppiMirror_8u_C3IR_Ctx_t Mirror_8u_C3IR_Ctx
    nppiLUTPalette_8u32u_C1R_Ctx_t LUTPalette_8u32u_C1R_Ctx
    nppiCopy_8u_C3P3R_Ctx_t Copy_8u_C3P3R_Ctx
    nppiCopy_32f_P3C3R_Ctx_t Copy_32f_P3C3R_Ctx
    nppiCopy_16u_P3C3R_Ctx_t Copy_16u_P3C3R_Ctx
    nppiConvert_32f16u_C1R_Ctx_t Convert_32f16u_C1R_Ctx

# The tables; filled once _load_libraries() has returned.
cdef const NvjpegApi *nvjpeg_api() noexcept nogil
cdef const NppApi *npp_api() noexcept nogil

# Fill a table from an opened library (CUDAUnavailableError naming what it lacks).
cdef int fill_nvjpeg(_Library lib, NvjpegApi *t) except -1
cdef int fill_nppc(_Library lib, NppApi *t) except -1
cdef int fill_nppig(_Library lib, NppApi *t) except -1
cdef int fill_nppicc(_Library lib, NppApi *t) except -1
cdef int fill_nppidei(_Library lib, NppApi *t) except -1
# The fill_* of NPP library which ("nppc", "nppig", "nppicc", "nppidei"); ValueError for another.
cdef int fill_npp(str which, _Library lib, NppApi *t) except -1
