from spdl.io._cuda_lib cimport _Library
from spdl.io.includes.cuda_driver cimport *
from spdl.io.includes.cuda_runtime cimport *

# The CUDA runtime functions spdl.io calls, filled by dlsym (see _cuda_runtime.pyx).
cdef struct CudaRuntimeApi:
    cudaGetDeviceCount_t cudaGetDeviceCount
    cudaGetDevice_t cudaGetDevice
    cudaSetDevice_t cudaSetDevice
    cudaMalloc_t cudaMalloc
    cudaFree_t cudaFree
    cudaMallocAsync_t cudaMallocAsync
    cudaFreeAsync_t cudaFreeAsync
    cudaHostAlloc_t cudaHostAlloc
    cudaFreeHost_t cudaFreeHost
    cudaMemcpyAsync_t cudaMemcpyAsync
    cudaMemsetAsync_t cudaMemsetAsync
    cudaStreamCreateWithFlags_t cudaStreamCreateWithFlags
    cudaStreamDestroy_t cudaStreamDestroy
    cudaStreamSynchronize_t cudaStreamSynchronize
    cudaDeviceSynchronize_t cudaDeviceSynchronize
    cudaEventCreateWithFlags_t cudaEventCreateWithFlags
    cudaEventRecord_t cudaEventRecord
    cudaEventQuery_t cudaEventQuery
    cudaEventSynchronize_t cudaEventSynchronize
    cudaEventDestroy_t cudaEventDestroy
    cudaStreamWaitEvent_t cudaStreamWaitEvent
    cudaStreamGetFlags_t cudaStreamGetFlags
    cudaDeviceGetAttribute_t cudaDeviceGetAttribute
    cudaRuntimeGetVersion_t cudaRuntimeGetVersion
    cudaDriverGetVersion_t cudaDriverGetVersion
    cudaGetErrorName_t cudaGetErrorName
    cudaGetErrorString_t cudaGetErrorString
    cudaGetLastError_t cudaGetLastError
    cudaMemGetInfo_t cudaMemGetInfo

# The driver API functions used to save and restore a thread's context (see _cuda_device.pyx).
cdef struct CudaDriverApi:
    cuInit_t cuInit
    cuDeviceGetCount_t cuDeviceGetCount
    cuDeviceGet_t cuDeviceGet
    cuDevicePrimaryCtxRetain_t cuDevicePrimaryCtxRetain
    cuCtxGetCurrent_t cuCtxGetCurrent
    cuCtxSetCurrent_t cuCtxSetCurrent
    cuGetErrorName_t cuGetErrorName

# Fill a table from an opened library (CUDAUnavailableError naming what it lacks).
cdef int fill_runtime(_Library lib, CudaRuntimeApi *t) except -1
cdef int fill_driver(_Library lib, CudaDriverApi *t) except -1

# The runtime's function table; loads libcudart on first use (raises CUDAUnavailableError).
cdef const CudaRuntimeApi *cudart() except NULL
# The runtime's table if it is loaded, else NULL (for code that runs without the GIL).
cdef const CudaRuntimeApi *cudart_loaded() noexcept nogil
# The driver's table if libcuda.so.1 was loaded with the runtime, else NULL.
cdef const CudaDriverApi *cudrv() noexcept nogil

# The name of a cudaError_t (or a CUresult if driver), or NULL; clears the runtime's last error.
cdef const char *error_name(int code, bint driver) noexcept nogil

# The exception for a failed runtime call (clears the runtime's last error).
cdef object cuda_error(cudaError_t err, str op, str what=*)
