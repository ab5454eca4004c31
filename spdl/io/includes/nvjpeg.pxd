# The part of the nvJPEG API (nvjpeg.h of CUDA 12) that spdl.io calls.
#
# libnvjpeg is opened with dlopen at run time (see spdl/io/_nvjpeg_lib.pyx): this
# file declares types, constants and a POINTER TYPE for each function; no
# header is included. Enum-typed parameters are declared as int (same calling
# convention); allocator parameters, always passed NULL, as void *.

from spdl.io.includes.cuda_runtime cimport cudaStream_t

ctypedef int nvjpegStatus_t
ctypedef void *nvjpegHandle_t       # struct nvjpegHandle *
ctypedef void *nvjpegJpegState_t    # struct nvjpegJpegState *
ctypedef void *nvjpegJpegStream_t   # struct nvjpegJpegStream *

# nvjpegStatus_t
cdef enum:
    NVJPEG_STATUS_SUCCESS = 0
    NVJPEG_STATUS_NOT_INITIALIZED = 1
    NVJPEG_STATUS_INVALID_PARAMETER = 2
    NVJPEG_STATUS_BAD_JPEG = 3
    NVJPEG_STATUS_JPEG_NOT_SUPPORTED = 4
    NVJPEG_STATUS_ALLOCATOR_FAILURE = 5
    NVJPEG_STATUS_EXECUTION_FAILED = 6
    NVJPEG_STATUS_ARCH_MISMATCH = 7
    NVJPEG_STATUS_INTERNAL_ERROR = 8
    NVJPEG_STATUS_IMPLEMENTATION_NOT_SUPPORTED = 9
    NVJPEG_STATUS_INCOMPLETE_BITSTREAM = 10

# nvjpegChromaSubsampling_t
cdef enum:
    NVJPEG_CSS_444 = 0
    NVJPEG_CSS_422 = 1
    NVJPEG_CSS_420 = 2
    NVJPEG_CSS_440 = 3
    NVJPEG_CSS_411 = 4
    NVJPEG_CSS_410 = 5
    NVJPEG_CSS_GRAY = 6
    NVJPEG_CSS_410V = 7
    NVJPEG_CSS_UNKNOWN = -1

# nvjpegOutputFormat_t
cdef enum:
    NVJPEG_OUTPUT_RGB = 3             # planar R, G, B
    NVJPEG_OUTPUT_RGBI = 5            # interleaved RGB
    NVJPEG_OUTPUT_BGRI = 6            # interleaved BGR

# nvjpegBackend_t
cdef enum:
    NVJPEG_BACKEND_DEFAULT = 0
    NVJPEG_BACKEND_HYBRID = 1
    NVJPEG_BACKEND_GPU_HYBRID = 2
    NVJPEG_BACKEND_HARDWARE = 3

cdef enum:
    NVJPEG_MAX_COMPONENT = 4
    NVJPEG_FLAGS_DEFAULT = 0
    NVJPEG_FLAGS_BITSTREAM_STRICT = 4 # error out on a bitstream that does not follow the spec

# libraryPropertyType (library_types.h)
cdef enum:
    MAJOR_VERSION = 0
    MINOR_VERSION = 1
    PATCH_LEVEL = 2

ctypedef struct nvjpegImage_t:
    unsigned char *channel[4]         # NVJPEG_MAX_COMPONENT
    size_t pitch[4]

ctypedef nvjpegStatus_t (*nvjpegGetProperty_t)(int type, int *value) noexcept nogil
ctypedef nvjpegStatus_t (*nvjpegCreateEx_t)(int backend, void *dev_allocator, void *pinned_allocator,
                                            unsigned int flags, nvjpegHandle_t *handle) noexcept nogil
ctypedef nvjpegStatus_t (*nvjpegDestroy_t)(nvjpegHandle_t handle) noexcept nogil
ctypedef nvjpegStatus_t (*nvjpegJpegStateCreate_t)(nvjpegHandle_t handle,
                                                   nvjpegJpegState_t *jpeg_handle) noexcept nogil
ctypedef nvjpegStatus_t (*nvjpegJpegStateDestroy_t)(nvjpegJpegState_t jpeg_handle) noexcept nogil
ctypedef nvjpegStatus_t (*nvjpegGetImageInfo_t)(nvjpegHandle_t handle, const unsigned char *data,
                                                size_t length, int *nComponents, int *subsampling,
                                                int *widths, int *heights) noexcept nogil
ctypedef nvjpegStatus_t (*nvjpegDecodeBatchedInitialize_t)(nvjpegHandle_t handle,
                                                           nvjpegJpegState_t jpeg_handle,
                                                           int batch_size, int max_cpu_threads,
                                                           int output_format) noexcept nogil
ctypedef nvjpegStatus_t (*nvjpegDecodeBatched_t)(nvjpegHandle_t handle, nvjpegJpegState_t jpeg_handle,
                                                 const unsigned char *const *data,
                                                 const size_t *lengths,
                                                 nvjpegImage_t *destinations,
                                                 cudaStream_t stream) noexcept nogil
ctypedef nvjpegStatus_t (*nvjpegJpegStreamCreate_t)(nvjpegHandle_t handle,
                                                    nvjpegJpegStream_t *jpeg_stream) noexcept nogil
ctypedef nvjpegStatus_t (*nvjpegJpegStreamDestroy_t)(nvjpegJpegStream_t jpeg_stream) noexcept nogil
ctypedef nvjpegStatus_t (*nvjpegJpegStreamParse_t)(nvjpegHandle_t handle, const unsigned char *data,
                                                   size_t length, int save_metadata, int save_stream,
                                                   nvjpegJpegStream_t jpeg_stream) noexcept nogil
# Parses the frame and scan headers only, not the entropy-coded data.
ctypedef nvjpegStatus_t (*nvjpegJpegStreamParseHeader_t)(nvjpegHandle_t handle, const unsigned char *data,
                                                         size_t length,
                                                         nvjpegJpegStream_t jpeg_stream) noexcept nogil
ctypedef nvjpegStatus_t (*nvjpegDecodeBatchedSupported_t)(nvjpegHandle_t handle,
                                                          nvjpegJpegStream_t jpeg_stream,
                                                          int *is_supported) noexcept nogil
