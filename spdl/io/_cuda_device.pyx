# cython: language_level=3
"""Contexts and devices: the calling thread's current context, the device count and checks.

Every call that touches a device first makes that device's primary context
current on the calling thread and afterwards puts back whatever was current
before (enter_device / leave_device): with the driver API (libcuda.so.1;
cuCtxGetCurrent / cuCtxSetCurrent) the exact previous context is restored,
none included, so a thread that never chose a device (an executor thread, a
DLPack deleter's thread) is left without one and no context is created on
device 0. If libcuda.so.1 cannot be opened, the runtime's cudaGetDevice /
cudaSetDevice are used instead.
"""

import os

from libc.stdlib cimport calloc

from spdl.io._config import CUDAConfig
from spdl.io._cuda_lib import driver_description
from spdl.io._cuda_runtime cimport CudaDriverApi, CudaRuntimeApi, cuda_error, cudart, cudrv, error_name
from spdl.io._cuda_runtime import _load_runtime, driver_table_info, runtime_major, runtime_path
from spdl.io._errors import CUDAError, CUDAUnavailableError
from spdl.io.includes.cuda_driver cimport *
from spdl.io.includes.cuda_runtime cimport *
from spdl.io.includes.pthread cimport *




# ---------------------------------------------------------------------------
# The calling thread's current context: the driver API, if libcuda.so.1 opens
#
# The runtime works on whatever context is current on the calling thread, and
# with none it initializes and binds a primary context itself; cudaSetDevice
# initializes the device's primary context and makes it current (CUDA runtime
# API, "Interactions with the CUDA Driver API"). Restoring a thread's device
# with cudaSetDevice therefore creates a context on device 0 in a thread that
# never chose a device. With the driver API, enter_device saves the current
# context (cuCtxGetCurrent, NULL if none) and binds the device's primary
# context (cuDevicePrimaryCtxRetain, once per device, kept like the runtime
# keeps it); leave_device binds the saved one again (cuCtxSetCurrent, which
# unbinds for NULL). The runtime's own per-thread device is never written.

cdef int _drv_state = 0                 # under _drv_mutex: 0 cuInit not tried yet, 1 usable, -1 not
cdef CUresult _drv_init_error = CUDA_SUCCESS
cdef const char *_drv_init_op = NULL
cdef int _drv_ndev = 0
cdef CUcontext *_drv_primary = NULL     # each device's primary context once retained
cdef pthread_mutex_t _drv_mutex
pthread_mutex_init(&_drv_mutex, NULL)


cdef str _cu_name(CUresult r):
    cdef const char *name = error_name(r, True)
    return name.decode() if name != NULL else f"CUresult {r}"


cdef bint _driver_ready() noexcept nogil:
    """Whether enter_device uses the driver API; the first call initializes it.

    cuInit must come before any other driver call (it may be called again: the
    runtime calls it too); the device count sizes the table of primary contexts.
    """
    global _drv_state, _drv_init_error, _drv_init_op, _drv_ndev, _drv_primary
    cdef CUresult r
    cdef int n = 0
    cdef bint ready
    cdef const CudaDriverApi *drv = cudrv()
    if drv == NULL:
        return False
    pthread_mutex_lock(&_drv_mutex)
    if _drv_state == 0:
        _drv_init_op = "cuInit"
        r = drv.cuInit(0)
        if r == CUDA_SUCCESS:
            _drv_init_op = "cuDeviceGetCount"
            r = drv.cuDeviceGetCount(&n)
        if r == CUDA_SUCCESS:
            _drv_primary = <CUcontext *>calloc(n if n > 0 else 1, sizeof(CUcontext))
            _drv_ndev = n
            _drv_state = 1 if _drv_primary != NULL else -1
        else:
            _drv_init_error = r
            _drv_state = -1
    ready = _drv_state == 1
    pthread_mutex_unlock(&_drv_mutex)
    return ready


def driver_api_info():
    """Whether the driver API (libcuda.so.1) saves and restores contexts. Never raises.

    Returns ``{"library": path or None, "error": why not, or None}``. Loads the
    runtime first (library is None if it cannot load); the driver API is
    initialized by the first GPU call, which may still find it unusable.
    """
    cdef int state
    try:
        _load_runtime()
    except CUDAUnavailableError as e:
        return {"library": None, "error": f"the CUDA runtime is not loaded: {e}"}
    path, failure = driver_table_info()
    if path is None:
        return {"library": None, "error": failure}
    with nogil:
        pthread_mutex_lock(&_drv_mutex)
        state = _drv_state
        pthread_mutex_unlock(&_drv_mutex)
    if state < 0:
        if _drv_init_error == CUDA_SUCCESS:
            return {"library": None, "error": f"{path} loaded, but out of memory"}
        return {"library": None, "error": f"{path} loaded, but {_drv_init_op.decode()} "
                                          f"failed with {_cu_name(_drv_init_error)}"}
    return {"library": path, "error": None}


cdef CUcontext _primary_ctx(int device, CUresult *res) noexcept nogil:
    """Device's primary context, retained the first time and kept for the process."""
    cdef CUcontext ctx = NULL
    cdef CUdevice dev = 0
    if device < 0 or device >= _drv_ndev:
        res[0] = CUDA_ERROR_INVALID_DEVICE
        return NULL
    res[0] = CUDA_SUCCESS
    pthread_mutex_lock(&_drv_mutex)
    ctx = _drv_primary[device]
    if ctx == NULL:
        res[0] = cudrv().cuDeviceGet(&dev, device)
        if res[0] == CUDA_SUCCESS:
            res[0] = cudrv().cuDevicePrimaryCtxRetain(&ctx, dev)
        if res[0] == CUDA_SUCCESS:
            _drv_primary[device] = ctx
        else:
            ctx = NULL
    pthread_mutex_unlock(&_drv_mutex)
    return ctx


cdef int _scope_fail(DeviceScope *s, int code, const char *op, bint entering) noexcept nogil:
    if s.code == 0:
        s.code = code
        s.op = op
        s.entering = entering
    return -1


cdef int enter_device(const CudaRuntimeApi *rt, int device, DeviceScope *s) noexcept nogil:
    cdef CUresult r
    cdef CUcontext ctx
    cdef cudaError_t err
    cdef int cur = -1
    s.device = device
    s.driver = _driver_ready()
    s.ctx = NULL
    s.prev = -1
    s.changed = False
    s.code = 0
    s.op = NULL
    s.entering = False
    if s.driver:
        r = cudrv().cuCtxGetCurrent(&s.ctx)
        if r != CUDA_SUCCESS:
            return _scope_fail(s, r, "cuCtxGetCurrent", True)
        ctx = _primary_ctx(device, &r)
        if ctx == NULL:
            return _scope_fail(s, r, "cuDevicePrimaryCtxRetain", True)
        if ctx == s.ctx:
            return 0
        r = cudrv().cuCtxSetCurrent(ctx)
        if r != CUDA_SUCCESS:
            return _scope_fail(s, r, "cuCtxSetCurrent", True)
        s.changed = True
        return 0
    # No driver API: the runtime's device, given back with cudaSetDevice (which
    # makes a context on the previous device if it has none yet).
    if rt.cudaGetDevice(&cur) != cudaSuccess:
        rt.cudaGetLastError()
        cur = -1
    if cur == device:
        return 0
    s.prev = cur
    s.changed = True
    err = rt.cudaSetDevice(device)
    if err != cudaSuccess:
        rt.cudaGetLastError()
        return _scope_fail(s, err, "cudaSetDevice", True)
    return 0


cdef int leave_device(const CudaRuntimeApi *rt, DeviceScope *s) noexcept nogil:
    cdef CUresult r
    cdef cudaError_t err
    if not s.changed:
        return 0
    s.changed = False
    if s.driver:
        r = cudrv().cuCtxSetCurrent(s.ctx)
        if r != CUDA_SUCCESS:
            return _scope_fail(s, r, "cuCtxSetCurrent", False)
        return 0
    if s.prev >= 0:
        err = rt.cudaSetDevice(s.prev)
        if err != cudaSuccess:
            rt.cudaGetLastError()
            return _scope_fail(s, err, "cudaSetDevice", False)
    return 0


cdef object _scope_error(const DeviceScope *s):
    op = s.op.decode()
    doing = (f"making cuda:{s.device} current" if s.entering
             else "giving the calling thread its CUDA context back")
    if s.driver:
        return CUDAError(f"{op} failed ({doing}): {_cu_name(s.code)}", op=op, code=s.code)
    return cuda_error(s.code, op, doing)


cdef int check_scope(const DeviceScope *s, cudaError_t err=cudaSuccess, str op=None,
                     str what=None) except -1:
    if s.code != 0 and s.entering:
        raise _scope_error(s)
    if err != cudaSuccess:
        raise cuda_error(err, op, what)
    if s.code != 0:
        raise _scope_error(s)
    return 0


# ---------------------------------------------------------------------------
# Devices

def device_count():
    """How many CUDA devices the runtime sees; CUDAUnavailableError (no CUDA device) if none."""
    cdef const CudaRuntimeApi *rt = cudart()
    cdef int n = 0, dv = 0
    cdef cudaError_t err
    cdef const char *cname
    cdef const char *ctext
    with nogil:
        err = rt.cudaGetDeviceCount(&n)
    if err != cudaSuccess:
        cname = rt.cudaGetErrorName(err)
        ctext = rt.cudaGetErrorString(err)
        name = cname.decode() if cname != NULL else f"cudaError_t {err}"
        text = ctext.decode() if ctext != NULL else "?"
        rt.cudaGetLastError()
        if rt.cudaDriverGetVersion(&dv) != cudaSuccess:
            rt.cudaGetLastError()
        driver = driver_description(dv)
        raise CUDAUnavailableError(
            f"no CUDA device: cudaGetDeviceCount failed with {name} ({text}); {driver}; the CUDA "
            f"{runtime_major()} runtime {runtime_path()} loaded", op="cudaGetDeviceCount", code=err)
    if n <= 0:
        raise CUDAUnavailableError(
            "no CUDA device: the CUDA runtime sees no GPU "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')})",
            op="cudaGetDeviceCount", code=cudaErrorNoDevice)
    return n


def cuda_available():
    """Whether the GPU path can run: libcudart loads and sees at least one CUDA device.

    Never raises. The nvJPEG and NPP libraries are checked when
    load_image_batch_nvjpeg first runs.

    This initializes CUDA in the calling process (cudaGetDeviceCount
    initializes the runtime and the driver): a process forked afterwards
    cannot use CUDA. Call it in the worker processes, or start them with
    the "spawn" or "forkserver" method.
    """
    try:
        return device_count() > 0
    except CUDAUnavailableError:
        return False


def check_device(device_config):
    """Raise unless device_config names a usable CUDA device.

    TypeError if device_config is not a CUDAConfig; CUDAUnavailableError when
    the CUDA runtime cannot be loaded (naming the library and the paths
    tried) or there is no such device (the message starts with "no CUDA device").
    Like cuda_available(), it initializes CUDA in the calling process.
    """
    if not isinstance(device_config, CUDAConfig):
        raise TypeError(f"device_config must be a CUDAConfig, not {type(device_config).__name__}")
    n = device_count()
    if device_config.device_index >= n:
        raise CUDAUnavailableError(
            f"no CUDA device with index {device_config.device_index}: {n} device(s) visible",
            op="cudaGetDeviceCount", code=cudaErrorInvalidDevice)


cdef int mem_get_info(int device, size_t *free_b, size_t *total_b, bint must) except -1:
    cdef const CudaRuntimeApi *rt = cudart()
    cdef DeviceScope scope
    cdef cudaError_t err = cudaSuccess
    free_b[0] = total_b[0] = 0
    with nogil:
        if enter_device(rt, device, &scope) == 0:
            err = rt.cudaMemGetInfo(free_b, total_b)
            if err != cudaSuccess and not must:
                rt.cudaGetLastError()
        leave_device(rt, &scope)
    if must:
        check_scope(&scope, err, "cudaMemGetInfo")
        return 1
    check_scope(&scope)
    return 1 if err == cudaSuccess else 0
