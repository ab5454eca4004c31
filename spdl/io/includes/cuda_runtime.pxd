# The part of the CUDA 12 runtime API (cuda_runtime_api.h, driver_types.h) that
# spdl.io calls.
#
# libcudart is opened with dlopen at run time (see spdl/io/_cuda_runtime.pyx), so no
# CUDA header is included and nothing CUDA is linked: this file declares the
# types, the constants, and a POINTER TYPE for each function, filled by dlsym.
# Enum-typed parameters are declared as int, which has the same calling
# convention. Values were copied by hand from the CUDA 12 headers.

ctypedef int cudaError_t
ctypedef void *cudaStream_t         # struct CUstream_st *
ctypedef void *cudaEvent_t          # struct CUevent_st *

# cudaError_t values spdl.io tells apart.
cdef enum:
    cudaSuccess = 0
    cudaErrorMemoryAllocation = 2
    cudaErrorInitializationError = 3
    cudaErrorInsufficientDriver = 35
    cudaErrorNoDevice = 100
    cudaErrorInvalidDevice = 101
    cudaErrorNotReady = 600
    cudaErrorNotSupported = 801

# enum cudaMemcpyKind
cdef enum:
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3

# Flags.
cdef enum:
    cudaHostAllocPortable = 0x01      # page-locked memory usable by every CUDA context
    cudaEventBlockingSync = 0x01      # cudaEventSynchronize blocks the thread instead of spinning
    cudaEventDisableTiming = 0x02
    cudaStreamNonBlocking = 0x01

# enum cudaDeviceAttr (the ones NppStreamContext asks for)
cdef enum:
    cudaDevAttrMaxThreadsPerBlock = 1
    cudaDevAttrMaxSharedMemoryPerBlock = 8
    cudaDevAttrMultiProcessorCount = 16
    cudaDevAttrMaxThreadsPerMultiProcessor = 39
    cudaDevAttrComputeCapabilityMajor = 75
    cudaDevAttrComputeCapabilityMinor = 76
    cudaDevAttrMemoryPoolsSupported = 115   # cudaMallocAsync / cudaFreeAsync work on the device

ctypedef cudaError_t (*cudaGetDeviceCount_t)(int *count) noexcept nogil
ctypedef cudaError_t (*cudaGetDevice_t)(int *device) noexcept nogil
ctypedef cudaError_t (*cudaSetDevice_t)(int device) noexcept nogil
ctypedef cudaError_t (*cudaMalloc_t)(void **devPtr, size_t size) noexcept nogil
ctypedef cudaError_t (*cudaFree_t)(void *devPtr) noexcept nogil
ctypedef cudaError_t (*cudaMallocAsync_t)(void **devPtr, size_t size, cudaStream_t hStream) noexcept nogil
ctypedef cudaError_t (*cudaFreeAsync_t)(void *devPtr, cudaStream_t hStream) noexcept nogil
ctypedef cudaError_t (*cudaHostAlloc_t)(void **pHost, size_t size, unsigned int flags) noexcept nogil
ctypedef cudaError_t (*cudaFreeHost_t)(void *ptr) noexcept nogil
ctypedef cudaError_t (*cudaMemcpyAsync_t)(void *dst, const void *src, size_t count, int kind,
                                          cudaStream_t stream) noexcept nogil
ctypedef cudaError_t (*cudaMemsetAsync_t)(void *devPtr, int value, size_t count,
                                          cudaStream_t stream) noexcept nogil
ctypedef cudaError_t (*cudaStreamCreateWithFlags_t)(cudaStream_t *pStream, unsigned int flags) noexcept nogil
ctypedef cudaError_t (*cudaStreamDestroy_t)(cudaStream_t stream) noexcept nogil
ctypedef cudaError_t (*cudaStreamSynchronize_t)(cudaStream_t stream) noexcept nogil
ctypedef cudaError_t (*cudaDeviceSynchronize_t)() noexcept nogil
ctypedef cudaError_t (*cudaEventCreateWithFlags_t)(cudaEvent_t *event, unsigned int flags) noexcept nogil
ctypedef cudaError_t (*cudaEventRecord_t)(cudaEvent_t event, cudaStream_t stream) noexcept nogil
ctypedef cudaError_t (*cudaEventQuery_t)(cudaEvent_t event) noexcept nogil
ctypedef cudaError_t (*cudaEventSynchronize_t)(cudaEvent_t event) noexcept nogil
ctypedef cudaError_t (*cudaEventDestroy_t)(cudaEvent_t event) noexcept nogil
ctypedef cudaError_t (*cudaStreamWaitEvent_t)(cudaStream_t stream, cudaEvent_t event,
                                              unsigned int flags) noexcept nogil
ctypedef cudaError_t (*cudaStreamGetFlags_t)(cudaStream_t hStream, unsigned int *flags) noexcept nogil
ctypedef cudaError_t (*cudaDeviceGetAttribute_t)(int *value, int attr, int device) noexcept nogil
ctypedef cudaError_t (*cudaRuntimeGetVersion_t)(int *runtimeVersion) noexcept nogil
ctypedef cudaError_t (*cudaDriverGetVersion_t)(int *driverVersion) noexcept nogil
ctypedef const char *(*cudaGetErrorName_t)(cudaError_t error) noexcept nogil
ctypedef const char *(*cudaGetErrorString_t)(cudaError_t error) noexcept nogil
ctypedef cudaError_t (*cudaGetLastError_t)() noexcept nogil
ctypedef cudaError_t (*cudaMemGetInfo_t)(size_t *free, size_t *total) noexcept nogil
