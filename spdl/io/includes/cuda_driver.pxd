# The part of the CUDA driver API (cuda.h; the same in CUDA 12 and 13) that spdl.io
# calls: to save and restore the calling thread's current context around its
# work, and to read the driver's CUDA version before choosing the libraries.
#
# libcuda.so.1 comes with the NVIDIA driver (never with a wheel) and is opened
# with dlopen at run time (see spdl/io/_cuda_lib.pyx, _cuda_runtime.pyx); if it cannot be, spdl.io
# falls back to the runtime's cudaGetDevice / cudaSetDevice. As in
# cuda_runtime.pxd: no header is included, each function is a POINTER TYPE
# filled by dlsym, enum-typed values are int. None of these names is a macro
# for a _v2 entry point in cuda.h, so dlsym finds them under these names.

ctypedef int CUresult
ctypedef int CUdevice               # an ordinal (CUdevice_v1)
ctypedef void *CUcontext            # struct CUctx_st *

# CUresult values spdl.io tells apart.
cdef enum:
    CUDA_SUCCESS = 0
    CUDA_ERROR_INVALID_DEVICE = 101

ctypedef CUresult (*cuInit_t)(unsigned int Flags) noexcept nogil
ctypedef CUresult (*cuDeviceGetCount_t)(int *count) noexcept nogil
ctypedef CUresult (*cuDeviceGet_t)(CUdevice *device, int ordinal) noexcept nogil
ctypedef CUresult (*cuDevicePrimaryCtxRetain_t)(CUcontext *pctx, CUdevice dev) noexcept nogil
ctypedef CUresult (*cuCtxGetCurrent_t)(CUcontext *pctx) noexcept nogil
ctypedef CUresult (*cuCtxSetCurrent_t)(CUcontext ctx) noexcept nogil
ctypedef CUresult (*cuGetErrorName_t)(CUresult error, const char **pStr) noexcept nogil
ctypedef CUresult (*cuDriverGetVersion_t)(int *driverVersion) noexcept nogil   # needs no cuInit
