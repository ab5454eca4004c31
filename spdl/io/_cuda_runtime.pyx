# cython: language_level=3
"""The CUDA runtime's and driver's function tables, filled by dlsym from the libraries
_cuda_lib chose; the error funnel for runtime calls.

libcudart is opened the first time a GPU entry point runs (cudart()), under a
lock, once; libcuda.so.1's table is filled at the same time where the driver
is present (its context calls are used by _cuda_device). Streams:
CUDAConfig.stream is a cudaStream_t as an int; 0 means the legacy default
stream (the runtime functions are the plain, not the _ptsz, entry points).
"""

from spdl.io._cuda_lib cimport _Library, fill_table
from spdl.io._cuda_lib import (
    _LOAD_LOCK, _open_library, candidates, cuda_major, driver_library, mixing_note, pip_hint,
    soname, version_text,
)
from spdl.io._errors import AllocationError, CUDAError, CUDAUnavailableError
from spdl.io.includes.cuda_driver cimport *
from spdl.io.includes.cuda_runtime cimport *


cdef CudaRuntimeApi _rt
cdef bint _rt_ready = False
_rt_failure = None      # (message, library, tried) of the failed load, raised again each time
_rt_lib = None
_rt_major = None


# The functions of each table, in the order of its fields (_cuda_runtime.pxd).
_RUNTIME_FUNCTIONS = (
    "cudaGetDeviceCount", "cudaGetDevice", "cudaSetDevice", "cudaMalloc", "cudaFree",
    "cudaMallocAsync", "cudaFreeAsync", "cudaHostAlloc", "cudaFreeHost", "cudaMemcpyAsync",
    "cudaMemsetAsync", "cudaStreamCreateWithFlags", "cudaStreamDestroy",
    "cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventCreateWithFlags",
    "cudaEventRecord", "cudaEventQuery", "cudaEventSynchronize", "cudaEventDestroy",
    "cudaStreamWaitEvent", "cudaStreamGetFlags", "cudaDeviceGetAttribute",
    "cudaRuntimeGetVersion", "cudaDriverGetVersion", "cudaGetErrorName", "cudaGetErrorString",
    "cudaGetLastError", "cudaMemGetInfo",
)
_DRIVER_FUNCTIONS = (
    "cuInit", "cuDeviceGetCount", "cuDeviceGet", "cuDevicePrimaryCtxRetain", "cuCtxGetCurrent",
    "cuCtxSetCurrent", "cuGetErrorName",
)


cdef int fill_runtime(_Library lib, CudaRuntimeApi *t) except -1:
    return fill_table(lib, <void **>t, sizeof(CudaRuntimeApi), _RUNTIME_FUNCTIONS)


cdef int fill_driver(_Library lib, CudaDriverApi *t) except -1:
    return fill_table(lib, <void **>t, sizeof(CudaDriverApi), _DRIVER_FUNCTIONS)


cdef CudaDriverApi _drv
cdef bint _drv_loaded = False           # libcuda.so.1 opened and the table filled
_drv_lib = None
_drv_failure = None     # why libcuda.so.1 could not be opened or used


def _load_driver_table():
    """Fill the driver API's table from libcuda.so.1 if it opened (_cuda_lib); never raises."""
    global _drv_loaded, _drv_lib, _drv_failure
    lib, _drv_failure = driver_library()
    if lib is None:
        return
    try:
        fill_driver(lib, &_drv)
    except CUDAUnavailableError as e:
        _drv_failure = str(e)
        return
    _drv_lib = lib
    _drv_loaded = True


cdef const CudaDriverApi *cudrv() noexcept nogil:
    return &_drv if _drv_loaded else NULL


def driver_table_info():
    """(libcuda.so.1's path or None, why its table could not be filled or None)."""
    return (_drv_lib.path if _drv_lib is not None else None), _drv_failure


def _runtime_hint(int major):
    return (f"the CUDA runtime is needed for the GPU path; install the CUDA {major} libraries with "
            f"{pip_hint(major)}, or a CUDA {major} toolkit{mixing_note('cudart', major)}")


def _load_runtime():
    """Open libcudart and fill the table, once; later calls return at once or raise the same error."""
    global _rt_ready, _rt_failure, _rt_lib, _rt_major
    if _rt_ready:
        return _rt_lib
    with _LOAD_LOCK:
        if not _rt_ready:
            if _rt_failure is None:
                try:
                    major = cuda_major()
                    lib = _open_library(soname("cudart", major), candidates("cudart", major),
                                        _runtime_hint(major))
                    fill_runtime(lib, &_rt)
                except CUDAUnavailableError as e:
                    _rt_failure = (str(e), e.library, e.tried)
                else:
                    _load_driver_table()
                    _rt_lib = lib
                    _rt_major = major
                    _rt_ready = True
            if _rt_failure is not None:
                msg, library, tried = _rt_failure
                raise CUDAUnavailableError(msg, library=library, tried=tried)
    return _rt_lib


cdef const CudaRuntimeApi *cudart() except NULL:
    if not _rt_ready:
        _load_runtime()
    return &_rt


cdef const CudaRuntimeApi *cudart_loaded() noexcept nogil:
    return &_rt if _rt_ready else NULL


def runtime_major():
    """The CUDA major of the loaded runtime, or None."""
    return _rt_major


def runtime_path():
    """The loaded runtime's path, or None."""
    return _rt_lib.path if _rt_lib is not None else None


def runtime_info():
    """Where libcudart was loaded from and its version, or the reason it could not be.

    Returns a dict: ``{"library": path or None, "soname": its file name (None
    when no major can be used), "cuda_major": 13, 12 or None,
    "runtime_version": int or None, "version": the same as "13.0", or None,
    "driver_version": int or None, "error": str or None, "tried": [the
    candidates that did not load]}``; the versions are CUDA's ints (1000 *
    major + 10 * minor; the driver's is 0 without a driver). Never raises.
    """
    cdef int rv = 0, dv = 0
    out = {"library": None, "soname": None, "cuda_major": None, "runtime_version": None,
           "version": None, "driver_version": None, "error": None, "tried": []}
    try:
        out["soname"] = soname("cudart", cuda_major())
        lib = _load_runtime()
    except CUDAUnavailableError as e:
        out["error"], out["tried"] = str(e), list(e.tried)
        return out
    if _rt.cudaRuntimeGetVersion(&rv) != cudaSuccess:
        _rt.cudaGetLastError()
    if _rt.cudaDriverGetVersion(&dv) != cudaSuccess:
        _rt.cudaGetLastError()
    out.update(library=lib.path, cuda_major=_rt_major, runtime_version=rv, driver_version=dv,
               version=version_text(rv) if rv else None, tried=list(lib.tried))
    return out


cdef const char *error_name(int code, bint driver) noexcept nogil:
    """The name of a cudaError_t (or, if driver, a CUresult), or NULL if unknown; clears the
    runtime's last error."""
    cdef const char *name = NULL
    if driver:
        if not _drv_loaded or _drv.cuGetErrorName(<CUresult>code, &name) != CUDA_SUCCESS:
            return NULL
        return name
    if _rt_ready:
        name = _rt.cudaGetErrorName(<cudaError_t>code)
        _rt.cudaGetLastError()
    return name


cdef object cuda_error(cudaError_t err, str op, str what=None):
    cdef const char *text = _rt.cudaGetErrorString(err)
    cdef const char *name = error_name(err, False)
    msg = (f"{op} failed{' (' + what + ')' if what else ''}: "
           f"{name.decode() if name != NULL else err} ({text.decode() if text != NULL else '?'})")
    if err == cudaErrorMemoryAllocation:
        exc = AllocationError(msg, stage="cuda")
        exc.op, exc.code = op, err
        return exc
    return CUDAError(msg, op=op, code=err)
