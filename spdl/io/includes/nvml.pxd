# The part of NVML (nvml.h, libnvidia-ml.so.1) that spdl.io calls: each GPU's compute
# capability, read before the CUDA major is chosen (CUDA 13 runs only on compute
# capability 7.5 and newer). NVML comes with the NVIDIA driver and does not
# initialize CUDA, so reading it keeps the promise that finding the libraries
# creates no CUDA context (fork safety).
#
# Opened with dlopen at run time (see spdl/io/_cuda_lib.pyx, _read_gpus). As in
# cuda_runtime.pxd: no header is included, each function is a POINTER TYPE filled
# by dlsym. nvml.h #defines nvmlInit / nvmlDeviceGetCount / nvmlDeviceGetHandleByIndex
# to these _v2 names, so dlsym must ask for the _v2 names.

ctypedef int nvmlReturn_t
ctypedef void *nvmlDevice_t         # struct nvmlDevice_st *

cdef enum:
    NVML_SUCCESS = 0
    NVML_DEVICE_NAME_V2_BUFFER_SIZE = 96

ctypedef nvmlReturn_t (*nvmlInit_v2_t)() noexcept nogil
ctypedef nvmlReturn_t (*nvmlShutdown_t)() noexcept nogil
ctypedef nvmlReturn_t (*nvmlDeviceGetCount_v2_t)(unsigned int *deviceCount) noexcept nogil
ctypedef nvmlReturn_t (*nvmlDeviceGetHandleByIndex_v2_t)(unsigned int index, nvmlDevice_t *device) noexcept nogil
ctypedef nvmlReturn_t (*nvmlDeviceGetCudaComputeCapability_t)(nvmlDevice_t device, int *major,
                                                               int *minor) noexcept nogil
ctypedef nvmlReturn_t (*nvmlDeviceGetName_t)(nvmlDevice_t device, char *name, unsigned int length) noexcept nogil
ctypedef const char *(*nvmlErrorString_t)(nvmlReturn_t result) noexcept nogil
