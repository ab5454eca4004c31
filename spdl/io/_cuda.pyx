# cython: language_level=3
"""The GPU path: the CUDA runtime opened at run time, page-locked staging, CUDABuffer.

Nothing CUDA is needed to build or import this module. libcudart is opened
with dlopen the first time a GPU entry point runs, under a lock, once; the
function table is filled by dlsym. CUDA 13 and CUDA 12 are both supported,
one major per process: select_cuda() picks the one the driver runs whose
libraries are present, looked for in the CUDA 13 wheels (nvidia/cu13/lib),
the CUDA 12 wheels (nvidia/<component>/lib) in every folder of sys.path,
then under $CUDA_HOME, $CUDA_PATH and /usr/local/cuda, then by soname (see
"Finding and opening the libraries" below).

Streams. CUDAConfig.stream is a cudaStream_t as an int; 0 means the legacy
default stream (the runtime functions are the plain, not the _ptsz, entry
points). All work for a batch is enqueued on that stream, so a CUDABuffer is
valid in that stream's order. Exports say so: __cuda_array_interface__ gives
the stream (0 is written as 1, the interface's name for the legacy default
stream) and __dlpack__(stream=s) makes the data ready on the consumer's stream
s with an event.

Devices and contexts. Every call that touches a device first makes that
device's primary context current on the calling thread and afterwards puts
back whatever was current before (enter_device / leave_device): with the
driver API (libcuda.so.1, opened like libcudart; cuCtxGetCurrent /
cuCtxSetCurrent) the exact previous context is restored, none included, so a
thread that never chose a device (an executor thread, a DLPack deleter's
thread) is left without one and no context is created on device 0. If
libcuda.so.1 cannot be opened, the runtime's cudaGetDevice / cudaSetDevice
are used instead.

Host memory. transfer_buffer copies with cudaMemcpyAsync. The source
(page-locked or not) is kept alive until an event recorded after the copy has
completed: the runtime may read pageable memory after cudaMemcpyAsync returns
too, so both kinds are treated alike. Batches headed for the GPU are decoded
straight into page-locked memory (host_allocator), which makes the copy a
real asynchronous DMA.
"""

import atexit
import logging
import operator
import os
import platform
import site
import sys
import threading

cimport cython
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_IsValid, PyCapsule_New
from cpython.ref cimport Py_INCREF, PyObject
from libc.stdint cimport int32_t, int64_t, intptr_t, uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport calloc, free, malloc
from posix.dlfcn cimport RTLD_LOCAL, RTLD_NOW, dlerror, dlopen, dlsym

from spdl.io._buffer cimport (
    CPUBuffer, HostAllocator, dl_capsule, release_manager,
)
from spdl.io._config import CUDAConfig
from spdl.io._errors import AllocationError, SpdlIOError
from spdl.io.includes.cuda_driver cimport *
from spdl.io.includes.cuda_runtime cimport *
from spdl.io.includes.nvml cimport *

_log = logging.getLogger("spdl.io")

__all__ = [
    "CUDABuffer",
    "CUDAError",
    "CUDAUnavailableError",
    "cuda_available",
    "check_device",
    "host_allocator",
    "transfer_buffer",
]


cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    int pthread_mutex_init(pthread_mutex_t *mutex, const void *attr)
    int pthread_mutex_lock(pthread_mutex_t *mutex)
    int pthread_mutex_unlock(pthread_mutex_t *mutex)


# ---------------------------------------------------------------------------
# Errors

class CUDAError(SpdlIOError, RuntimeError):
    """A call into the CUDA runtime, nvJPEG or NPP failed.

    Attributes:
        op: The call that failed, for example ``"cudaMemcpyAsync"``.
        code: The status it returned (a ``cudaError_t``, ``nvjpegStatus_t`` or
            ``NppStatus``), or None.
    """

    def __init__(self, message, *, op=None, code=None):
        super().__init__(message, stage="cuda")
        self.op = op
        self.code = code


class CUDAUnavailableError(CUDAError):
    """CUDA cannot be used here: a library cannot be loaded, or there is no CUDA device.

    Attributes:
        library: The library that could not be loaded (for example
            ``"libcudart.so.13"``), or None when the libraries loaded but
            there is no usable device (the message starts with "no CUDA device").
        tried: The paths that were tried, in order.
        missing: The functions a library that did load lacks, if that is why.
    """

    def __init__(self, message, *, library=None, tried=(), op=None, code=None, missing=()):
        super().__init__(message, op=op, code=code)
        self.library = library
        self.tried = tuple(tried)
        self.missing = tuple(missing)


# ---------------------------------------------------------------------------
# Finding and opening the libraries
#
# The GPU path needs libcudart (this module), libnvjpeg, libnppc and libnppig
# (_nvjpeg), all of ONE CUDA major, 13 or 12: nvJPEG and NPP each carry their
# own copy of the runtime of their major, NVIDIA supports a toolkit's libraries
# together, and a driver runs only the majors up to its own (a CUDA 12 driver
# cannot run CUDA 13 code). Each library of a major is looked for, in order:
#
#   1. the wheels, in every folder Python imports from (sys.path, then the
#      site-packages folders): CUDA 13 in <dir>/nvidia/cu13/lib/lib*.so.13
#      (nvidia-cuda-runtime, nvidia-nvjpeg, nvidia-npp), CUDA 12 in
#      <dir>/nvidia/<component>/lib/lib*.so.12 (the -cu12 wheels);
#   2. $CUDA_HOME, $CUDA_PATH, then /usr/local/cuda: lib64, lib, targets/<arch>-linux/lib;
#   3. the plain soname: the dynamic loader's own search (LD_LIBRARY_PATH, the ld.so cache).
#
# The major is chosen once (select_cuda), from the driver's CUDA version
# (cuDriverGetVersion in libcuda.so.1, which needs neither the runtime nor
# cuInit), the GPUs' compute capabilities (NVML, libnvidia-ml.so.1, which does
# not initialize CUDA either: CUDA 13 needs 7.5 or newer, MIN_CAPABILITY) and
# the files: the first major (13, then 12) that the driver and every GPU run
# and whose four libraries are all present and open (dlopen; a set that is
# present but does not open gives way to the next); else the first such major
# whose runtime is present (the GPU decoder then names what is missing). Without a driver nothing can run, but the libraries are
# still found and opened, so that cuda_info() reports them and the entry points
# say "no CUDA device" rather than "library missing".

_LOAD_LOCK = threading.RLock()

#: The CUDA majors the GPU path runs on, preferred first.
CUDA_MAJORS = (13, 12)

# Each library: the CUDA 12 wheel's module (its files are in <module path>/lib), the file name stem.
_LIBS = {
    "cudart": ("nvidia.cuda_runtime", "libcudart"),
    "nvjpeg": ("nvidia.nvjpeg", "libnvjpeg"),
    "nppc": ("nvidia.npp", "libnppc"),
    "nppig": ("nvidia.npp", "libnppig"),
}
_WHEELS = {
    13: "nvidia-cuda-runtime, nvidia-nvjpeg, nvidia-npp 13.x",
    12: "nvidia-cuda-runtime-cu12, nvidia-nvjpeg-cu12, nvidia-npp-cu12",
}
_ARCH = {"aarch64": "sbsa"}.get(platform.machine(), platform.machine())
_SYSTEM_CUDA = ("/usr/local/cuda",)     # where a CUDA toolkit is installed when $CUDA_HOME is not set


def soname(str name, int major):
    """The file name of library ``name`` ("cudart", "nvjpeg", "nppc", "nppig") of CUDA ``major``."""
    return f"{_LIBS[name][1]}.so.{major}"


def pip_hint(int major):
    """How to install the CUDA ``major`` libraries, for error messages."""
    return f"`pip install pixelbatch[cuda{major}]` ({_WHEELS[major]})"


def _soname_major(str name):
    tail = name.rpartition(".so.")[2]
    return int(tail) if tail.isdigit() else None


def _python_dirs():
    """Every folder Python imports from, once each, in order: sys.path, then site-packages."""
    dirs = list(sys.path)
    for get in ("getsitepackages", "getusersitepackages"):
        try:
            more = getattr(site, get)()
        except Exception:           # an old virtualenv's site module lacks them
            continue
        dirs += [more] if isinstance(more, str) else list(more)
    out = []
    for d in dirs:
        if isinstance(d, str) and d:
            d = os.path.abspath(d)
            if d not in out and os.path.isdir(d):
                out.append(d)
    return out


def library_candidates(wheel_module, soname):
    """Where to look for a CUDA library file, in order.

    ``soname`` is its file name, for example ``"libcudart.so.13"``;
    ``wheel_module`` the CUDA 12 wheel's module, for example
    ``"nvidia.cuda_runtime"``. See the comment above for the order.
    """
    major = _soname_major(soname)
    out = []
    for d in _python_dirs():
        if not os.path.isdir(os.path.join(d, "nvidia")):
            continue            # no NVIDIA wheel installed there
        if major is not None and major >= 13:
            out.append(os.path.join(d, "nvidia", f"cu{major}", "lib", soname))
        else:
            out.append(os.path.join(d, *wheel_module.split("."), "lib", soname))
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), *_SYSTEM_CUDA):
        if root:
            for sub in ("lib64", "lib", os.path.join("targets", f"{_ARCH}-linux", "lib")):
                out.append(os.path.join(root, sub, soname))
    out.append(soname)
    return list(dict.fromkeys(out))


def _candidates(str name, int major):
    # library_candidates is looked up at call time: tests point it at fake libraries.
    return library_candidates(_LIBS[name][0], soname(name, major))


_ld_cache = None


def _present(str path):
    """Whether path exists: a file, or for a bare soname, a library the dynamic loader would find."""
    if os.sep in path:
        return os.path.isfile(path)
    return _system_has(path)


def _system_has(str name):
    """Whether the dynamic loader's search finds soname name: LD_LIBRARY_PATH, the ld.so cache,
    the default folders."""
    global _ld_cache
    for d in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep):
        if d and os.path.isfile(os.path.join(d, name)):
            return True
    if _ld_cache is None:
        try:
            with open("/etc/ld.so.cache", "rb") as f:
                _ld_cache = f.read()
        except OSError:
            _ld_cache = b""
    # The cache's string table holds each library's full path, NUL-terminated.
    if b"/" + os.fsencode(name) + b"\0" in _ld_cache:
        return True
    return any(os.path.isfile(os.path.join(d, name))
               for d in ("/lib64", "/usr/lib64", f"/lib/{_ARCH}-linux-gnu", f"/usr/lib/{_ARCH}-linux-gnu"))


cdef class _Library:
    """A library opened with dlopen. Never closed: function tables point into it."""
    cdef void *handle
    cdef readonly str path
    cdef readonly str label
    cdef readonly tuple tried       # the candidates before it that did not load

    cdef void *sym(self, const char *name, list missing):
        cdef void *p = dlsym(self.handle, name)
        if p == NULL:
            missing.append(name.decode())
        return p

    def address(self, str name, list missing):
        """The address of symbol name (an int), or 0 after appending name to missing."""
        return <uintptr_t>self.sym(name.encode(), missing)

    def check(self, list missing):
        if missing:
            raise CUDAUnavailableError(
                f"{self.path} was loaded but lacks {', '.join(missing)}: it is not the "
                f"library {self.label} that spdl.io needs",
                library=self.label, tried=[*self.tried, self.path], missing=missing)

    def __repr__(self):
        return f"<library {self.label} from {self.path}>"


def _open_library(str label, candidates, str hint=""):
    """dlopen the first of candidates that loads.

    A path that does not exist is not tried with dlopen ("not found"); a bare
    soname goes to the dynamic loader's search. Raises CUDAUnavailableError
    naming ``label`` and every path tried, with the reason for each.
    """
    cdef void *h
    cdef const char *e
    cdef const char *cpath
    cdef bytes b
    cdef _Library lib
    tried = []
    reasons = []
    for path in candidates:
        path = os.fsdecode(path)
        if os.sep in path and not os.path.exists(path):
            tried.append(path)
            reasons.append("not found")
            continue
        b = os.fsencode(path)
        cpath = b
        with nogil:
            h = dlopen(cpath, RTLD_NOW | RTLD_LOCAL)
            e = dlerror() if h == NULL else NULL
        if h != NULL:
            lib = _Library.__new__(_Library)
            lib.handle = h
            lib.path = path
            lib.label = label
            lib.tried = tuple(tried)
            return lib
        tried.append(path)
        reasons.append(e.decode("utf-8", "replace") if e != NULL else "unknown error")
    detail = "\n".join(f"  {p}: {r}" for p, r in zip(tried, reasons))
    raise CUDAUnavailableError(
        f"{label} could not be loaded{': ' + hint if hint else ''}. Tried:\n{detail}",
        library=label, tried=tried)


def _version_text(int v):
    """A CUDA version int (1000 * major + 10 * minor) as "13.0"."""
    return f"{v // 1000}.{v % 1000 // 10}"


_selection = None       # select_cuda()'s dict, made once


def select_cuda():
    """The CUDA major the libraries are loaded for, and why. Made once; never raises.

    Returns a dict: ``major`` (13, 12, or None when no major can be used),
    ``reason`` (a sentence), ``driver_version`` (the driver's CUDA version
    as an int such as 13000, or None without a driver), ``found``
    (``{major: {library: [paths present, in search order]}}``) and, when
    ``major`` is None, ``error`` / ``library`` / ``tried`` for the
    CUDAUnavailableError every GPU entry point raises. ``gpus`` is
    _read_gpus()'s answer (each GPU's compute capability, from NVML), and
    ``unopened`` ``{major: why}`` for the complete sets that did not open.
    """
    global _selection
    if _selection is None:
        with _LOAD_LOCK:
            if _selection is None:
                _selection = _select()
    return _selection


#: The oldest GPU each CUDA major's nvJPEG and NPP run on (compute capability): CUDA 13
#: dropped Maxwell, Pascal and Volta (its libnppig.so.13 holds sm_75 and newer kernels only).
MIN_CAPABILITY = {13: (7, 5), 12: (5, 0)}

_NVML = "libnvidia-ml.so.1"


def nvml_candidates():
    """Where libnvidia-ml.so.1 is looked for: like libcuda.so.1, it comes with the driver."""
    return [_NVML, "/usr/local/nvidia/lib64/libnvidia-ml.so.1", "/usr/lib/wsl/lib/libnvidia-ml.so.1"]


def _read_gpus():
    """Each GPU's name and compute capability from NVML, without initializing CUDA. Never raises.

    Returns ``{"devices": [{"index", "name", "compute_capability": "7.0"}],
    "library": path or None, "error": why not, or None}``. NVML lists every
    GPU of the machine in its own order, whatever CUDA_VISIBLE_DEVICES says.
    """
    cdef nvmlInit_v2_t init
    cdef nvmlShutdown_t shutdown
    cdef nvmlDeviceGetCount_v2_t get_count
    cdef nvmlDeviceGetHandleByIndex_v2_t get_handle
    cdef nvmlDeviceGetCudaComputeCapability_t get_cc
    cdef nvmlDeviceGetName_t get_name
    cdef nvmlDevice_t dev
    cdef nvmlReturn_t r
    cdef unsigned int n = 0, i
    cdef int cc_major = 0, cc_minor = 0
    cdef char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE]
    out = {"devices": [], "library": None, "error": None}
    try:
        lib = _open_library(_NVML, nvml_candidates(), "it comes with the NVIDIA driver")
    except CUDAUnavailableError as e:
        out["error"] = str(e)
        return out
    out["library"] = lib.path
    missing = []
    init = <nvmlInit_v2_t>(<_Library>lib).sym(b"nvmlInit_v2", missing)
    shutdown = <nvmlShutdown_t>(<_Library>lib).sym(b"nvmlShutdown", missing)
    get_count = <nvmlDeviceGetCount_v2_t>(<_Library>lib).sym(b"nvmlDeviceGetCount_v2", missing)
    get_handle = <nvmlDeviceGetHandleByIndex_v2_t>(<_Library>lib).sym(b"nvmlDeviceGetHandleByIndex_v2",
                                                                     missing)
    get_cc = <nvmlDeviceGetCudaComputeCapability_t>(<_Library>lib).sym(
        b"nvmlDeviceGetCudaComputeCapability", missing)
    get_name = <nvmlDeviceGetName_t>dlsym((<_Library>lib).handle, b"nvmlDeviceGetName")  # optional
    if missing:
        out["error"] = f"{lib.path} lacks {', '.join(missing)}"
        return out
    r = init()
    if r != NVML_SUCCESS:
        out["error"] = f"nvmlInit_v2 failed with nvmlReturn_t {r}"
        return out
    try:
        r = get_count(&n)
        if r != NVML_SUCCESS:
            out["error"] = f"nvmlDeviceGetCount_v2 failed with nvmlReturn_t {r}"
            return out
        for i in range(n):
            d = {"index": i, "name": None, "compute_capability": None}
            out["devices"].append(d)
            r = get_handle(i, &dev)
            if r == NVML_SUCCESS:
                if get_name != NULL and get_name(dev, name, sizeof(name)) == NVML_SUCCESS:
                    name[sizeof(name) - 1] = 0
                    d["name"] = name.decode("utf-8", "replace")
                r = get_cc(dev, &cc_major, &cc_minor)
            if r == NVML_SUCCESS:
                d["compute_capability"] = f"{cc_major}.{cc_minor}"
            else:
                out["error"] = f"GPU {i}: the compute capability is unknown (nvmlReturn_t {r})"
    finally:
        shutdown()
    return out


def _capability(str text):
    major, _, minor = text.partition(".")
    return int(major), int(minor)


def _open_set(int major):
    """dlopen each library of major (the first candidate of each that loads); None if all open,
    else what failed, one line. The libraries stay open: the loaders open them again (dlopen of an
    open library returns it again)."""
    for name in _LIBS:
        try:
            _open_library(soname(name, major), _candidates(name, major))
        except CUDAUnavailableError as e:
            failed = [line.strip() for line in str(e).splitlines()[1:] if not line.endswith(": not found")]
            return f"{soname(name, major)} does not open ({'; '.join(failed) or 'not found'})"
    return None


def _select():
    _load_driver()
    dv = _drv_version
    found = {m: {name: [p for p in _candidates(name, m) if _present(p)] for name in _LIBS}
             for m in CUDA_MAJORS}
    if dv > 0:
        runnable = [m for m in CUDA_MAJORS if dv >= m * 1000]
        driver = f"the NVIDIA driver runs CUDA {_version_text(dv)}"
    else:
        runnable = list(CUDA_MAJORS)
        driver = "no NVIDIA driver was found"
    # A GPU older than a major supports: that major's nvJPEG and NPP have no kernels for it.
    gpus = _read_gpus()
    known = [d for d in gpus["devices"] if d["compute_capability"]]
    oldest = min(known, key=lambda d: _capability(d["compute_capability"])) if known else None
    too_old = {}            # major -> why the GPUs here cannot run it
    if oldest is not None:
        for m in list(runnable):
            need = MIN_CAPABILITY[m]
            if _capability(oldest["compute_capability"]) < need:
                runnable.remove(m)
                too_old[m] = (f"GPU {oldest['index']} ({oldest['name'] or 'unnamed'}) has compute "
                              f"capability {oldest['compute_capability']}, older than CUDA {m} "
                              f"supports ({need[0]}.{need[1]} or newer)")

    def lacks(m):
        return ", ".join(soname(n, m) for n, paths in found[m].items() if not paths)

    sel = {"major": None, "driver_version": dv or None, "found": found,
           "error": None, "library": None, "tried": (), "gpus": gpus, "unopened": {}}
    notes = [f"not CUDA {m}: {why}" for m, why in too_old.items() if any(found[m].values())]
    # A complete set that does not load (a wrong-architecture or truncated wheel, a glibc
    # too old for it) gives way to the next complete one.
    complete = []
    for m in runnable:
        if all(found[m].values()):
            failed = _open_set(m)
            if failed is None:
                complete.append(m)
            else:
                sel["unopened"][m] = failed
                notes.append(f"not CUDA {m}: its libraries are present but {failed}")
    partial = [m for m in runnable if found[m]["cudart"]]
    if complete:
        m = sel["major"] = complete[0]
        sel["reason"] = f"CUDA {m}: its cudart, nvJPEG and NPP are all present; {driver}"
        if m != runnable[0] and runnable[0] not in sel["unopened"]:
            sel["reason"] += f" (CUDA {runnable[0]} lacks {lacks(runnable[0])})"
    elif partial:
        m = sel["major"] = partial[0]
        sel["reason"] = (f"CUDA {m}: {driver}; no major has all of cudart, nvJPEG and NPP"
                         + (f", CUDA {m} lacks {lacks(m)}" if lacks(m) else ""))
    else:
        want = runnable[0] if runnable else CUDA_MAJORS[-1]
        tried = [p for m in (runnable or CUDA_MAJORS) for p in _candidates("cudart", m)]
        too_new = [p for m in CUDA_MAJORS if m not in runnable and m not in too_old
                   for p in found[m]["cudart"]]
        gpu_old = [p for m in too_old for p in found[m]["cudart"]]
        if not runnable and too_old:
            why = (f"{'; '.join(too_old.values())}, and no CUDA major the driver and the GPU run "
                   f"is usable")
        elif not runnable:
            why = (f"{driver}, and the GPU path needs CUDA {' or '.join(map(str, CUDA_MAJORS))} "
                   f"(an R525 or newer driver; R580 or newer for CUDA 13)")
        elif gpu_old:
            why = (f"{too_old[max(too_old)]} (found {', '.join(gpu_old)}); install the CUDA {want} "
                   f"libraries with {pip_hint(want)}")
        elif too_new:
            why = (f"{driver}, too old for the CUDA runtime found here ({', '.join(too_new)}); "
                   f"install the CUDA {want} libraries with {pip_hint(want)}, or a newer driver")
        else:
            others = " or ".join(pip_hint(m) for m in runnable[1:])
            why = (f"no CUDA runtime was found ({driver}). The GPU path needs the CUDA runtime, "
                   f"nvJPEG and NPP of one CUDA major: install them with {pip_hint(want)}"
                   + (f", or {others}" if others else ""))
        sel["reason"] = why
        sel["library"] = soname("cudart", want)
        sel["tried"] = tuple(tried)
        detail = "\n".join(f"  {p}: {'present' if _present(p) else 'not found'}" for p in tried)
        sel["error"] = f"{sel['library']} could not be loaded: {why}. Looked for:\n{detail}"
    if notes and sel["major"] is not None:
        sel["reason"] += "; " + "; ".join(notes)
    return sel


def cuda_major():
    """The CUDA major (13 or 12) whose libraries spdl.io loads; CUDAUnavailableError if none can be used."""
    sel = select_cuda()
    if sel["major"] is None:
        raise CUDAUnavailableError(sel["error"], library=sel["library"], tried=sel["tried"])
    return sel["major"]


def mixing_note(str name, int major):
    """Where library ``name`` of the other majors is, if anywhere, for an error about ``major``."""
    sel = select_cuda()
    others = [f"{soname(name, m)} is present ({sel['found'][m][name][0]})"
              for m in CUDA_MAJORS if m != major and sel["found"].get(m, {}).get(name)]
    if not others:
        return ""
    return (f"; {', '.join(others)}, but the libraries of one CUDA major must be used together and "
            f"this process uses CUDA {major} ({sel['reason']})")


# ---------------------------------------------------------------------------
# The runtime's function table

cdef CudaRuntimeApi _rt
cdef bint _rt_ready = False
_rt_failure = None      # (message, library, tried) of the failed load, raised again each time
_rt_lib = None
_rt_major = None


cdef int _fill_runtime(_Library lib, CudaRuntimeApi *t) except -1:
    missing = []
    t.cudaGetDeviceCount = <cudaGetDeviceCount_t>lib.sym(b"cudaGetDeviceCount", missing)
    t.cudaGetDevice = <cudaGetDevice_t>lib.sym(b"cudaGetDevice", missing)
    t.cudaSetDevice = <cudaSetDevice_t>lib.sym(b"cudaSetDevice", missing)
    t.cudaMalloc = <cudaMalloc_t>lib.sym(b"cudaMalloc", missing)
    t.cudaFree = <cudaFree_t>lib.sym(b"cudaFree", missing)
    t.cudaMallocAsync = <cudaMallocAsync_t>lib.sym(b"cudaMallocAsync", missing)
    t.cudaFreeAsync = <cudaFreeAsync_t>lib.sym(b"cudaFreeAsync", missing)
    t.cudaHostAlloc = <cudaHostAlloc_t>lib.sym(b"cudaHostAlloc", missing)
    t.cudaFreeHost = <cudaFreeHost_t>lib.sym(b"cudaFreeHost", missing)
    t.cudaMemcpyAsync = <cudaMemcpyAsync_t>lib.sym(b"cudaMemcpyAsync", missing)
    t.cudaMemsetAsync = <cudaMemsetAsync_t>lib.sym(b"cudaMemsetAsync", missing)
    t.cudaStreamCreateWithFlags = <cudaStreamCreateWithFlags_t>lib.sym(b"cudaStreamCreateWithFlags", missing)
    t.cudaStreamDestroy = <cudaStreamDestroy_t>lib.sym(b"cudaStreamDestroy", missing)
    t.cudaStreamSynchronize = <cudaStreamSynchronize_t>lib.sym(b"cudaStreamSynchronize", missing)
    t.cudaDeviceSynchronize = <cudaDeviceSynchronize_t>lib.sym(b"cudaDeviceSynchronize", missing)
    t.cudaEventCreateWithFlags = <cudaEventCreateWithFlags_t>lib.sym(b"cudaEventCreateWithFlags", missing)
    t.cudaEventRecord = <cudaEventRecord_t>lib.sym(b"cudaEventRecord", missing)
    t.cudaEventQuery = <cudaEventQuery_t>lib.sym(b"cudaEventQuery", missing)
    t.cudaEventSynchronize = <cudaEventSynchronize_t>lib.sym(b"cudaEventSynchronize", missing)
    t.cudaEventDestroy = <cudaEventDestroy_t>lib.sym(b"cudaEventDestroy", missing)
    t.cudaStreamWaitEvent = <cudaStreamWaitEvent_t>lib.sym(b"cudaStreamWaitEvent", missing)
    t.cudaStreamGetFlags = <cudaStreamGetFlags_t>lib.sym(b"cudaStreamGetFlags", missing)
    t.cudaDeviceGetAttribute = <cudaDeviceGetAttribute_t>lib.sym(b"cudaDeviceGetAttribute", missing)
    t.cudaRuntimeGetVersion = <cudaRuntimeGetVersion_t>lib.sym(b"cudaRuntimeGetVersion", missing)
    t.cudaDriverGetVersion = <cudaDriverGetVersion_t>lib.sym(b"cudaDriverGetVersion", missing)
    t.cudaGetErrorName = <cudaGetErrorName_t>lib.sym(b"cudaGetErrorName", missing)
    t.cudaGetErrorString = <cudaGetErrorString_t>lib.sym(b"cudaGetErrorString", missing)
    t.cudaGetLastError = <cudaGetLastError_t>lib.sym(b"cudaGetLastError", missing)
    t.cudaMemGetInfo = <cudaMemGetInfo_t>lib.sym(b"cudaMemGetInfo", missing)
    lib.check(missing)
    return 0


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
                    lib = _open_library(soname("cudart", major), _candidates("cudart", major),
                                        _runtime_hint(major))
                    _fill_runtime(lib, &_rt)
                except CUDAUnavailableError as e:
                    _rt_failure = (str(e), e.library, e.tried)
                else:
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


def runtime_info():
    """Where libcudart was loaded from and its version, or the reason it could not be.

    Returns a dict: ``{"library": path or None, "cuda_major": 13, 12 or None,
    "runtime_version": int or None, "driver_version": int or None, "error":
    str or None}``; the versions are CUDA's ints (1000 * major + 10 *
    minor; the driver's is 0 without a driver). Never raises.
    """
    cdef int rv = 0, dv = 0
    try:
        lib = _load_runtime()
    except CUDAUnavailableError as e:
        return {"library": None, "cuda_major": None, "runtime_version": None, "driver_version": None,
                "error": str(e)}
    if _rt.cudaRuntimeGetVersion(&rv) != cudaSuccess:
        _rt.cudaGetLastError()
    if _rt.cudaDriverGetVersion(&dv) != cudaSuccess:
        _rt.cudaGetLastError()
    return {"library": lib.path, "cuda_major": _rt_major, "runtime_version": rv, "driver_version": dv,
            "error": None}


def runtime_report():
    """For cuda_info(): libcudart's ``{"soname", "path", "version", "error", "tried"}``. Never raises."""
    cdef int rv = 0
    out = {"soname": None, "path": None, "version": None, "error": None, "tried": []}
    try:
        major = cuda_major()
        out["soname"] = soname("cudart", major)
        lib = _load_runtime()
    except CUDAUnavailableError as e:
        out["error"], out["tried"] = str(e), list(e.tried)
        return out
    out["path"], out["tried"] = lib.path, list(lib.tried)
    if _rt.cudaRuntimeGetVersion(&rv) == cudaSuccess:
        out["version"] = _version_text(rv)
    else:
        _rt.cudaGetLastError()
    return out


cdef object cuda_error(cudaError_t err, str op, str what=None):
    cdef const char *name = _rt.cudaGetErrorName(err)
    cdef const char *text = _rt.cudaGetErrorString(err)
    _rt.cudaGetLastError()
    msg = (f"{op} failed{' (' + what + ')' if what else ''}: "
           f"{name.decode() if name != NULL else err} ({text.decode() if text != NULL else '?'})")
    if err == cudaErrorMemoryAllocation:
        exc = AllocationError(msg, stage="cuda")
        exc.op, exc.code = op, err
        return exc
    return CUDAError(msg, op=op, code=err)


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

cdef struct CudaDriverApi:
    cuInit_t cuInit
    cuDeviceGetCount_t cuDeviceGetCount
    cuDeviceGet_t cuDeviceGet
    cuDevicePrimaryCtxRetain_t cuDevicePrimaryCtxRetain
    cuCtxGetCurrent_t cuCtxGetCurrent
    cuCtxSetCurrent_t cuCtxSetCurrent
    cuGetErrorName_t cuGetErrorName

cdef CudaDriverApi _drv
cdef bint _drv_loaded = False           # libcuda.so.1 opened and the table filled
cdef int _drv_state = 0                 # under _drv_mutex: 0 cuInit not tried yet, 1 usable, -1 not
cdef CUresult _drv_init_error = CUDA_SUCCESS
cdef const char *_drv_init_op = NULL
cdef int _drv_ndev = 0
cdef CUcontext *_drv_primary = NULL     # each device's primary context once retained
cdef pthread_mutex_t _drv_mutex
pthread_mutex_init(&_drv_mutex, NULL)
_drv_lib = None
_drv_failure = None     # why libcuda.so.1 could not be opened or used
_drv_tried = False      # _load_driver ran
cdef int _drv_version = 0               # cuDriverGetVersion, 0 if unknown
_drv_version_path = None                # the libcuda.so.1 the version came from
_drv_version_error = None               # why the version is unknown
_drv_version_tried = []                 # the candidates that did not load

_CUDA_DRIVER = "libcuda.so.1"


def driver_candidates():
    """Where libcuda.so.1 is looked for. It comes with the NVIDIA driver, never with a wheel:
    the dynamic loader's search, then the folders containers mount the driver into."""
    return [_CUDA_DRIVER, "/usr/local/nvidia/lib64/libcuda.so.1", "/usr/lib/wsl/lib/libcuda.so.1"]


def _probe_library(str which, str path):
    """Internal, for tests: open path as "cudart" or "libcuda" and fill a table (not kept).

    Returns the path; raises CUDAUnavailableError (``missing``: the functions it lacks).
    """
    cdef CudaRuntimeApi rt
    cdef CudaDriverApi drv
    lib = _open_library(which, [path])
    if which == "cudart":
        _fill_runtime(lib, &rt)
    elif which == "libcuda":
        _fill_driver(lib, &drv)
    else:
        raise ValueError(f"which must be 'cudart' or 'libcuda', got {which!r}")
    return lib.path


cdef int _fill_driver(_Library lib, CudaDriverApi *t) except -1:
    missing = []
    t.cuInit = <cuInit_t>lib.sym(b"cuInit", missing)
    t.cuDeviceGetCount = <cuDeviceGetCount_t>lib.sym(b"cuDeviceGetCount", missing)
    t.cuDeviceGet = <cuDeviceGet_t>lib.sym(b"cuDeviceGet", missing)
    t.cuDevicePrimaryCtxRetain = <cuDevicePrimaryCtxRetain_t>lib.sym(b"cuDevicePrimaryCtxRetain", missing)
    t.cuCtxGetCurrent = <cuCtxGetCurrent_t>lib.sym(b"cuCtxGetCurrent", missing)
    t.cuCtxSetCurrent = <cuCtxSetCurrent_t>lib.sym(b"cuCtxSetCurrent", missing)
    t.cuGetErrorName = <cuGetErrorName_t>lib.sym(b"cuGetErrorName", missing)
    lib.check(missing)
    return 0


cdef str _cu_name(CUresult r):
    cdef const char *name = NULL
    if _drv_loaded and _drv.cuGetErrorName(r, &name) == CUDA_SUCCESS and name != NULL:
        return name.decode()
    return f"CUresult {r}"


def _load_driver():
    """Open libcuda.so.1, once, under _LOAD_LOCK; never raises.

    Reads the driver's CUDA version (cuDriverGetVersion needs no cuInit) for
    select_cuda(), and fills the table enter_device uses. Nothing is
    initialized here, so finding and loading the libraries (cuda_info's
    paths, runtime_info, driver_api_info) does not initialize CUDA in a
    process that may fork. CUDA is initialized by the first runtime call that
    needs the driver: the cudaGetDeviceCount of cuda_available() /
    check_device(), which every GPU entry point runs first. cuInit here
    follows at the first enter_device.
    """
    global _drv_loaded, _drv_lib, _drv_failure, _drv_tried, _drv_version, _drv_version_path
    global _drv_version_error, _drv_version_tried
    cdef cuDriverGetVersion_t get_version
    cdef int v = 0
    cdef CUresult r
    if _drv_tried:
        return
    _drv_tried = True
    try:
        lib = _open_library(_CUDA_DRIVER, driver_candidates(), "it comes with the NVIDIA driver")
    except CUDAUnavailableError as e:
        _drv_failure = _drv_version_error = str(e)
        _drv_version_tried = list(e.tried)
        return
    _drv_version_path = lib.path
    _drv_version_tried = list(lib.tried)
    get_version = <cuDriverGetVersion_t>dlsym((<_Library>lib).handle, b"cuDriverGetVersion")
    if get_version == NULL:
        _drv_version_error = f"{lib.path} has no cuDriverGetVersion"
    else:
        r = get_version(&v)
        if r == CUDA_SUCCESS and v > 0:
            _drv_version = v
        else:
            _drv_version_error = f"cuDriverGetVersion failed with CUresult {r}"
    try:
        _fill_driver(lib, &_drv)
    except CUDAUnavailableError as e:
        _drv_failure = str(e)
        return
    _drv_lib = lib
    _drv_loaded = True


def driver_info():
    """libcuda.so.1 and the driver's CUDA version, without initializing CUDA. Never raises.

    Returns ``{"library": path or None, "version": int (13000 for 13.0) or
    None, "error": why the version is unknown, or None, "tried": the
    candidates that did not load}``.
    """
    with _LOAD_LOCK:
        _load_driver()
    return {"library": _drv_version_path, "version": _drv_version or None, "error": _drv_version_error,
            "tried": list(_drv_version_tried)}


cdef bint _driver_ready() noexcept nogil:
    """Whether enter_device uses the driver API; the first call initializes it.

    cuInit must come before any other driver call (it may be called again: the
    runtime calls it too); the device count sizes the table of primary contexts.
    """
    global _drv_state, _drv_init_error, _drv_init_op, _drv_ndev, _drv_primary
    cdef CUresult r
    cdef int n = 0
    cdef bint ready
    if not _drv_loaded:
        return False
    pthread_mutex_lock(&_drv_mutex)
    if _drv_state == 0:
        _drv_init_op = "cuInit"
        r = _drv.cuInit(0)
        if r == CUDA_SUCCESS:
            _drv_init_op = "cuDeviceGetCount"
            r = _drv.cuDeviceGetCount(&n)
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
    if not _drv_loaded:
        return {"library": None, "error": _drv_failure}
    with nogil:
        pthread_mutex_lock(&_drv_mutex)
        state = _drv_state
        pthread_mutex_unlock(&_drv_mutex)
    if state < 0:
        if _drv_init_error == CUDA_SUCCESS:
            return {"library": None, "error": f"{_drv_lib.path} loaded, but out of memory"}
        return {"library": None, "error": f"{_drv_lib.path} loaded, but {_drv_init_op.decode()} "
                                          f"failed with {_cu_name(_drv_init_error)}"}
    return {"library": _drv_lib.path, "error": None}


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
        res[0] = _drv.cuDeviceGet(&dev, device)
        if res[0] == CUDA_SUCCESS:
            res[0] = _drv.cuDevicePrimaryCtxRetain(&ctx, dev)
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
        r = _drv.cuCtxGetCurrent(&s.ctx)
        if r != CUDA_SUCCESS:
            return _scope_fail(s, r, "cuCtxGetCurrent", True)
        ctx = _primary_ctx(device, &r)
        if ctx == NULL:
            return _scope_fail(s, r, "cuDevicePrimaryCtxRetain", True)
        if ctx == s.ctx:
            return 0
        r = _drv.cuCtxSetCurrent(ctx)
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
        r = _drv.cuCtxSetCurrent(s.ctx)
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

def _device_count():
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
        dv = dv or _drv_version
        if dv:
            driver = f"the NVIDIA driver runs CUDA {_version_text(dv)}"
        elif _drv_version_path is None:
            driver = "no NVIDIA driver (libcuda.so.1 is not installed)"
        else:
            driver = f"no usable NVIDIA driver ({_drv_version_path}: {_drv_version_error})"
        raise CUDAUnavailableError(
            f"no CUDA device: cudaGetDeviceCount failed with {name} ({text}); {driver}; the CUDA "
            f"{_rt_major} runtime {_rt_lib.path} loaded", op="cudaGetDeviceCount", code=err)
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
        return _device_count() > 0
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
    n = _device_count()
    if device_config.device_index >= n:
        raise CUDAUnavailableError(
            f"no CUDA device with index {device_config.device_index}: {n} device(s) visible",
            op="cudaGetDeviceCount", code=cudaErrorInvalidDevice)


def _mem_get_info(int device):
    """(free, total) bytes of device memory, from cudaMemGetInfo."""
    cdef const CudaRuntimeApi *rt = cudart()
    cdef size_t fr = 0, tot = 0
    cdef DeviceScope scope
    cdef cudaError_t err = cudaSuccess
    with nogil:
        if enter_device(rt, device, &scope) == 0:
            err = rt.cudaMemGetInfo(&fr, &tot)
        leave_device(rt, &scope)
    check_scope(&scope, err, "cudaMemGetInfo")
    return fr, tot


# ---------------------------------------------------------------------------
# Page-locked host memory

# cudaHostAlloc maps and pins pages (slow, milliseconds for a batch) and
# cudaFreeHost may synchronize the device, so freed blocks are kept for reuse:
# at most PINNED_CACHE_SLOTS blocks and PINNED_CACHE_BYTES (1 GiB) in all, the
# oldest let go first; a block larger than that alone is freed at once.
# Requests are rounded up to a size class (_pinned_class) and served by the
# smallest cached block of their class or larger, up to twice the class
# (best fit), so batches of nearby sizes (the nvJPEG path's CPU fallback, whose
# row count varies per call) reuse blocks instead of missing and evicting. A block comes back here only when its CPUBuffer dies,
# and a CPUBuffer that a transfer reads is kept alive until the copy has
# completed (keep_until_done), so a cached block is never being read by the GPU.
#
# Page-locked memory belongs to the context current when cudaHostAlloc runs
# (cudaHostAllocPortable: "considered as pinned memory by all CUDA contexts,
# not just the one that performed the allocation", cuda_runtime_api.h), and a
# thread with no context would get the runtime's default one (device 0's). So
# the device is a property of the allocator object: host_allocator(cfg) returns
# the HostAllocator of cfg's device, whose ctx is that device, and every
# cudaHostAlloc and cudaFreeHost runs inside enter_device / leave_device for it
# (the block's device is kept in its header), on whatever thread allocates or
# frees; no thread-local state decides it. With cudaHostAllocPortable any
# device can copy from a block, so a cached block serves batches for any device.
#
# Neither call ever runs with the GIL held: CPUBuffer releases the GIL around
# its allocator's alloc and free (_buffer.pyx), and release_pinned_memory frees
# the cache in a nogil block.

cdef enum:
    PINNED_HEADER = 64          # the block's size and device live here; keeps the data 64-byte aligned
    PINNED_CACHE_SLOTS = 4

cdef size_t PINNED_CACHE_BYTES = 1 << 30    # the most the cache keeps, in bytes (size classes)

cdef size_t PINNED_PAGE = 4096
cdef size_t PINNED_STEP = 2 << 20   # 2 MiB

cdef struct PinnedBlock:
    void *base
    size_t size                 # the block's size class (bytes after the header)

cdef pthread_mutex_t _pin_mutex
cdef PinnedBlock _pin_cache[PINNED_CACHE_SLOTS]
cdef int _pin_count = 0
cdef size_t _pin_bytes = 0      # the sizes of the cached blocks, added up
pthread_mutex_init(&_pin_mutex, NULL)

# Why the calling thread's last page-locked allocation failed, for CPUBuffer's MemoryError.
cdef extern from *:
    """
    static __thread char spdl_pinned_why[256];
    """
    char spdl_pinned_why[256]

cdef extern from "<stdio.h>" nogil:
    int snprintf(char *s, size_t n, const char *fmt, ...)


cdef const char *_pinned_why() noexcept nogil:
    return spdl_pinned_why if spdl_pinned_why[0] != 0 else NULL


cdef void _pinned_failed(const char *op, const char *what, int code, const char *name) noexcept nogil:
    if name != NULL:
        snprintf(spdl_pinned_why, sizeof(spdl_pinned_why), "%s failed%s: %s", op, what, name)
    else:
        snprintf(spdl_pinned_why, sizeof(spdl_pinned_why), "%s failed%s: error %d", op, what, code)


def _set_pinned_cache_bytes(size_t n):
    """Internal, for tests: set PINNED_CACHE_BYTES; returns the old value."""
    global PINNED_CACHE_BYTES
    old = PINNED_CACHE_BYTES
    PINNED_CACHE_BYTES = n
    return old


cdef size_t _pinned_class(size_t n) noexcept nogil:
    """The size class of an n-byte request, or 0 if n is too large to allocate.

    Up to 2 MiB: the next power of two, at least 4 KiB. Above: the next
    multiple of 2 MiB. So a block is never more than 2 MiB larger than the
    request, and (above 4 KiB) less than twice its size.
    """
    cdef size_t c = PINNED_PAGE
    if n > <size_t>-1 - PINNED_STEP - PINNED_HEADER:
        return 0
    if n > PINNED_STEP:
        return (n + PINNED_STEP - 1) // PINNED_STEP * PINNED_STEP
    while c < n:
        c <<= 1
    return c


def _pinned_size_class(size_t n):
    """Internal, for tests: the bytes a page-locked block for an n-byte batch holds."""
    return _pinned_class(n)


cdef inline int *_block_device(void *base) noexcept nogil:
    return <int *>(<char *>base + sizeof(size_t))


cdef void *_pin_take(int i) noexcept nogil:
    """Under _pin_mutex: remove cache entry i, keeping the others oldest first; its base."""
    global _pin_count, _pin_bytes
    cdef void *base = _pin_cache[i].base
    cdef int j
    _pin_bytes -= _pin_cache[i].size
    for j in range(i + 1, _pin_count):
        _pin_cache[j - 1] = _pin_cache[j]
    _pin_count -= 1
    return base


cdef void *_pinned_alloc(void *ctx, size_t size) noexcept nogil:
    # ctx is the allocator's device (host_allocator); called without the GIL.
    cdef void *base = NULL
    cdef int i, best = -1, device = <int><intptr_t>ctx
    cdef size_t cls = _pinned_class(size)
    cdef DeviceScope scope
    cdef cudaError_t err = cudaSuccess
    cdef const char *name = NULL
    spdl_pinned_why[0] = 0
    if cls == 0:
        snprintf(spdl_pinned_why, sizeof(spdl_pinned_why), "too large for a page-locked block")
        return NULL
    pthread_mutex_lock(&_pin_mutex)
    for i in range(_pin_count):         # the smallest block of the class or larger, up to 2x
        if (_pin_cache[i].size >= cls and _pin_cache[i].size // 2 <= cls
                and (best < 0 or _pin_cache[i].size < _pin_cache[best].size)):
            best = i
    if best >= 0:
        base = _pin_take(best)
    pthread_mutex_unlock(&_pin_mutex)
    if base != NULL:
        return <char *>base + PINNED_HEADER
    if enter_device(&_rt, device, &scope) == 0:
        err = _rt.cudaHostAlloc(&base, cls + PINNED_HEADER, cudaHostAllocPortable)
        if err != cudaSuccess:
            name = _rt.cudaGetErrorName(err)
            _pinned_failed("cudaHostAlloc", "", err, name)
            _rt.cudaGetLastError()
            base = NULL
    else:
        if scope.driver and _drv_loaded and _drv.cuGetErrorName(scope.code, &name) != CUDA_SUCCESS:
            name = NULL
        elif not scope.driver:
            name = _rt.cudaGetErrorName(<cudaError_t>scope.code)
            _rt.cudaGetLastError()
        _pinned_failed(scope.op, " (making the allocator's device current)", scope.code, name)
    leave_device(&_rt, &scope)
    if base == NULL:
        return NULL
    (<size_t *>base)[0] = cls
    _block_device(base)[0] = device
    return <char *>base + PINNED_HEADER


cdef void _free_block(void *base) noexcept nogil:
    """cudaFreeHost in the primary context of the device the block was allocated for."""
    cdef DeviceScope scope
    if enter_device(&_rt, _block_device(base)[0], &scope) == 0:
        if _rt.cudaFreeHost(base) != cudaSuccess:
            _rt.cudaGetLastError()
    # else the block is leaked: freeing it from another context is not documented to work
    leave_device(&_rt, &scope)


cdef void _pinned_free(void *p) noexcept nogil:
    # Called without the GIL (CPUBuffer's dealloc releases it).
    global _pin_count, _pin_bytes
    cdef void *base = <char *>p - PINNED_HEADER
    cdef size_t size = (<size_t *>base)[0]
    cdef void *evict[PINNED_CACHE_SLOTS]
    cdef int i, n = 0
    if size > PINNED_CACHE_BYTES:               # larger than the whole cache: not kept
        _free_block(base)
        return
    pthread_mutex_lock(&_pin_mutex)
    # Full, by count or by bytes: let the oldest go.
    while _pin_count > 0 and (_pin_count == PINNED_CACHE_SLOTS or _pin_bytes + size > PINNED_CACHE_BYTES):
        evict[n] = _pin_take(0)
        n += 1
    _pin_cache[_pin_count].base = base
    _pin_cache[_pin_count].size = size
    _pin_count += 1
    _pin_bytes += size
    pthread_mutex_unlock(&_pin_mutex)
    for i in range(n):
        _free_block(evict[i])


cdef void _pinned_release_cache() noexcept nogil:
    global _pin_count, _pin_bytes
    cdef int i, n
    cdef PinnedBlock blocks[PINNED_CACHE_SLOTS]
    pthread_mutex_lock(&_pin_mutex)
    n = _pin_count
    for i in range(n):
        blocks[i] = _pin_cache[i]
    _pin_count = 0
    _pin_bytes = 0
    pthread_mutex_unlock(&_pin_mutex)
    for i in range(n):
        _free_block(blocks[i].base)


def release_pinned_memory():
    """Give the cached page-locked blocks back to CUDA (cudaFreeHost)."""
    if _rt_ready:
        with nogil:
            _pinned_release_cache()


def _pinned_cache_sizes():
    """Internal, for tests: the size classes of the cached page-locked blocks."""
    cdef int i, n
    cdef size_t sizes[PINNED_CACHE_SLOTS]
    with nogil:
        pthread_mutex_lock(&_pin_mutex)
        n = _pin_count
        for i in range(n):
            sizes[i] = _pin_cache[i].size
        pthread_mutex_unlock(&_pin_mutex)
    return sorted(sizes[i] for i in range(n))


_PINNED = {}            # device index -> its HostAllocator
_PINNED_LOCK = threading.Lock()


def host_allocator(device_config):
    """The HostAllocator of page-locked memory for batches headed to device_config's GPU.

    cudaHostAlloc with cudaHostAllocPortable, so any device (and CUDA context)
    can copy from it. Its blocks are allocated and freed in the primary
    context of device_config's device, on whatever thread does it (the
    thread's own context is restored after each). Freed blocks are cached, by
    size class, for the next batches (release_pinned_memory empties the
    cache). Raises like check_device.
    """
    cdef HostAllocator a
    cdef int device
    check_device(device_config)
    _reap(False)
    device = device_config.device_index
    with _PINNED_LOCK:
        a = _PINNED.get(device)
        if a is None:
            a = HostAllocator.__new__(HostAllocator)
            a.alloc = _pinned_alloc
            a.free = _pinned_free
            a.why = _pinned_why
            a.ctx = <void *><intptr_t>device
            a.pinned = True
            a.name = f"cudaHostAlloc (cuda:{device})"
            _PINNED[device] = a
    return a


# ---------------------------------------------------------------------------
# Keeping host memory alive while the GPU reads it

cdef class _Pending:
    cdef cudaEvent_t event
    cdef int device
    cdef object keep


_inflight = []                  # _Pending, oldest first
_inflight_lock = threading.Lock()
# Host memory the GPU may still read when a CUDA failure made it impossible to
# tell when it is done (the device could not be entered, the stream could not
# be waited on): never released, rather than freed under a running copy.
_stranded = []


cdef int keep_until_done(int device, uintptr_t stream, object keep) except -1:
    """Keep `keep` alive until the work enqueued so far on `stream` has run.

    Records an event on the stream and parks `keep` with it; entries whose
    event has completed are dropped by later calls (_reap). If no event can be
    recorded, waits for the stream here instead.
    """
    cdef const CudaRuntimeApi *rt = cudart()
    cdef cudaEvent_t ev = NULL
    cdef cudaError_t err = cudaSuccess, err2 = cudaSuccess
    cdef DeviceScope scope
    cdef _Pending p
    _reap(False)  # drop what earlier calls parked and is done: the list stays bounded
    with nogil:
        if enter_device(rt, device, &scope) == 0:
            err = rt.cudaEventCreateWithFlags(&ev, cudaEventDisableTiming)
            if err == cudaSuccess:
                err = rt.cudaEventRecord(ev, <cudaStream_t>stream)
                if err != cudaSuccess:
                    if rt.cudaEventDestroy(ev) != cudaSuccess:
                        rt.cudaGetLastError()
                    ev = NULL
            if ev == NULL:
                rt.cudaGetLastError()
                err2 = rt.cudaStreamSynchronize(<cudaStream_t>stream)
                if err2 != cudaSuccess:
                    rt.cudaGetLastError()
        leave_device(rt, &scope)
    if ev != NULL:
        p = _Pending.__new__(_Pending)
        p.event = ev
        p.device = device
        p.keep = keep
        with _inflight_lock:
            _inflight.append(p)
    elif (scope.code != 0 and scope.entering) or err2 != cudaSuccess:
        _stranded.append(keep)
    check_scope(&scope, err2, "cudaStreamSynchronize", "waiting for a copy from host memory")
    return 0


cdef int keep_after_error(int device, uintptr_t stream, object keep, object exc) except -1:
    # keep_until_done has already made `keep` safe when it raises (parked with its event,
    # or kept forever): only its error is left to report, without hiding exc's.
    try:
        keep_until_done(device, stream, keep)
    except Exception as e:
        note = f"and then keeping host memory alive for the GPU failed too: {type(e).__name__}: {e}"
        if hasattr(exc, "add_note"):
            exc.add_note(note)
        else:
            _log.warning("%s (after: %s)", note, exc)
    return 0


cdef int check_then_keep(const DeviceScope *scope, cudaError_t err, str op, str what,
                         int device, uintptr_t stream, object keep) except -1:
    cdef bint enqueued = not (scope.code != 0 and scope.entering)
    try:
        check_scope(scope, err, op, what)
    except BaseException as e:
        if enqueued:
            keep_after_error(device, stream, keep, e)
        raise
    if enqueued:
        keep_until_done(device, stream, keep)
    return 0


cdef int _reap(bint wait) except -1:
    """Drop what keep_until_done parked once its event has completed (all of it if wait)."""
    cdef _Pending p
    cdef cudaError_t err
    cdef DeviceScope scope
    if not _rt_ready or not _inflight:
        return 0
    done = []
    with _inflight_lock:
        still = []
        for p in _inflight:
            with nogil:
                err = cudaErrorNotReady         # if the device cannot be entered: look again later
                if enter_device(&_rt, p.device, &scope) == 0:
                    err = _rt.cudaEventSynchronize(p.event) if wait else _rt.cudaEventQuery(p.event)
                    if err != cudaErrorNotReady:
                        # Done, or the context failed (then no more work runs either).
                        if _rt.cudaEventDestroy(p.event) != cudaSuccess:
                            _rt.cudaGetLastError()
                    if err != cudaSuccess and err != cudaErrorNotReady:
                        _rt.cudaGetLastError()
                leave_device(&_rt, &scope)
            if err == cudaErrorNotReady:
                still.append(p)
            else:
                done.append(p)
        _inflight[:] = still
    # The parked objects (page-locked batches) are freed here, outside the lock.
    del done
    return 0


def pending_transfers():
    """How many host buffers are still kept alive for copies that may be running."""
    _reap(False)
    return len(_inflight)


def synchronize_transfers():
    """Wait for every copy from host memory, and release the host buffers they used."""
    _reap(True)


def _at_exit():
    synchronize_transfers()
    release_pinned_memory()


atexit.register(_at_exit)


# ---------------------------------------------------------------------------
# CUDABuffer

from spdl.io.includes.dlpack cimport (
    DLManagedTensor, DLManagedTensorVersioned, DLTensor, kDLCUDA, kDLUInt,
)


cdef void _dl_deleter_versioned(DLManagedTensorVersioned *t) noexcept nogil:
    # May run without the GIL (a consumer freeing its tensor on any thread).
    release_manager(t.manager_ctx)
    free(t.dl_tensor.shape)
    free(t)


cdef void _dl_capsule_destructor_versioned(object capsule) noexcept:
    cdef DLManagedTensorVersioned *t
    if PyCapsule_IsValid(capsule, b"dltensor_versioned"):
        t = <DLManagedTensorVersioned *>PyCapsule_GetPointer(capsule, b"dltensor_versioned")
        t.deleter(t)


cdef int _fill_dltensor(CUDABuffer buf, DLTensor *t) except -1:
    cdef int64_t *shape = <int64_t *>malloc(sizeof(int64_t) * 2 * CUDA_MAX_NDIM)
    cdef int64_t stride = 1
    cdef int i
    if shape == NULL:
        raise MemoryError()
    for i in range(buf.ndim):
        shape[i] = buf._shape[i]
    for i in range(buf.ndim - 1, -1, -1):      # C order, in elements
        shape[CUDA_MAX_NDIM + i] = stride
        stride *= buf._shape[i]
    t.data = <void *>buf.ptr if buf._nbytes else NULL
    t.device.device_type = kDLCUDA
    t.device.device_id = buf._device
    t.ndim = buf.ndim
    t.dtype.code = kDLUInt
    t.dtype.bits = 8 * buf.itemsize
    t.dtype.lanes = 1
    t.shape = shape
    t.strides = shape + CUDA_MAX_NDIM
    t.byte_offset = 0
    return 0


cdef object _export_dlpack(CUDABuffer buf, bint versioned):
    cdef DLManagedTensor *t
    cdef DLManagedTensorVersioned *tv
    if versioned:
        tv = <DLManagedTensorVersioned *>malloc(sizeof(DLManagedTensorVersioned))
        if tv == NULL:
            raise MemoryError()
        try:
            _fill_dltensor(buf, &tv.dl_tensor)
        except BaseException:
            free(tv)
            raise
        tv.version.major = 1
        tv.version.minor = 0
        tv.flags = 0
        tv.manager_ctx = <void *>buf
        tv.deleter = _dl_deleter_versioned
        try:
            cap = PyCapsule_New(tv, b"dltensor_versioned",
                                <void (*)(object) noexcept>_dl_capsule_destructor_versioned)
        except BaseException:
            free(tv.dl_tensor.shape)
            free(tv)
            raise
        Py_INCREF(buf)      # the capsule's reference, dropped by the deleter
        return cap
    t = <DLManagedTensor *>malloc(sizeof(DLManagedTensor))
    if t == NULL:
        raise MemoryError()
    try:
        _fill_dltensor(buf, &t.dl_tensor)
    except BaseException:
        free(t)
        raise
    return dl_capsule(t, buf)


# Freeing device memory
#
# The last reference to a CUDABuffer may go on any thread (a DLPack deleter's),
# while work that reads the memory is still queued: on the buffer's stream, and
# on the streams of consumers. Nothing waits for the whole device unless a
# consumer's stream is unknown:
# - Work on the buffer's stream: cudaFreeAsync on that stream "inserts a free
#   operation into hStream. The allocation must not be accessed after stream
#   execution reaches the free" (cuda_runtime_api.h), so the free follows it.
#   For cudaMalloc memory (no memory pools), the host waits for that stream
#   (cudaStreamSynchronize) and then calls cudaFree.
# - DLPack consumers that named their stream (__dlpack__(stream=s)): at the free
#   an event is recorded on s ("captures in event the contents of stream at the
#   time of this call", cudaEventRecord) and the buffer's stream waits for it
#   (cudaStreamWaitEvent) before the free: the free follows every piece of work
#   the consumer enqueued on s before it dropped its reference. s must still be
#   a valid stream then (the consumer uses its data on it until then).
# - Consumers that gave no stream we can wait on from here (DLPack stream -1 or 2,
#   the per-thread stream of some other thread; more than CUDA_MAX_CONSUMERS
#   streams): the host waits for the whole device first (cudaDeviceSynchronize).
# - __cuda_array_interface__ consumers: the interface (version 3) requires a
#   consumer to synchronize on the exported stream and to "ensure that no
#   computation can take place in the provided stream until its operations in its
#   own choice of stream have taken place" (or to enqueue its work on that stream,
#   or not return before its work is done), so work of a conforming consumer is
#   ahead of the free on the buffer's stream. The interface also requires the
#   exported stream to outlive the object: CUDAConfig.stream must stay valid until
#   the last buffer made on it is freed (the legacy default stream always is).
# If any of this fails (and even the device wait fails), the memory is leaked rather
# than freed under a reader or in the wrong context.

cdef cudaError_t _stream_wait(const CudaRuntimeApi *rt, uintptr_t waiter, uintptr_t waited,
                              const char **op) noexcept nogil:
    """With the device current: make stream `waiter` wait for the work enqueued on `waited`
    so far, through an event. On failure *op names the call that failed."""
    cdef cudaEvent_t ev = NULL
    op[0] = "cudaEventCreateWithFlags"
    cdef cudaError_t err = rt.cudaEventCreateWithFlags(&ev, cudaEventDisableTiming)
    if err != cudaSuccess:
        return err
    op[0] = "cudaEventRecord"
    err = rt.cudaEventRecord(ev, <cudaStream_t>waited)
    if err == cudaSuccess:
        op[0] = "cudaStreamWaitEvent"
        err = rt.cudaStreamWaitEvent(<cudaStream_t>waiter, ev, 0)
    # Allowed before the wait completes: "resources will automatically be released
    # asynchronously at completion" (cudaEventDestroy).
    if rt.cudaEventDestroy(ev) != cudaSuccess:
        rt.cudaGetLastError()
    return err


cdef int _order_after_consumers(const uintptr_t *consumers, int n, bint unknown,
                                uintptr_t stream) noexcept nogil:
    """With the buffer's device current: make `stream` wait for the consumers' work.

    Returns 0 when the free may be enqueued on `stream`, -1 when it may not.
    """
    cdef int i
    cdef cudaError_t err = cudaSuccess
    cdef const char *op
    if not unknown:
        for i in range(n):
            err = _stream_wait(&_rt, stream, consumers[i], &op)
            if err != cudaSuccess:
                _rt.cudaGetLastError()
                break
        if err == cudaSuccess:
            return 0
    # An unknown consumer, or a consumer stream that could not be waited on: the device.
    if _rt.cudaDeviceSynchronize() != cudaSuccess:
        _rt.cudaGetLastError()
        return -1
    return 0


cdef void _cuda_release(int device, uintptr_t stream, uintptr_t ptr, bint pool,
                        const uintptr_t *consumers, int n, bint unknown) noexcept nogil:
    """Free cudaMallocAsync (pool) or cudaMalloc memory after its readers (see above)."""
    cdef DeviceScope scope
    cdef bint freed = False
    if not _rt_ready:
        return
    if enter_device(&_rt, device, &scope) == 0:
        if _order_after_consumers(consumers, n, unknown, stream) == 0:
            if pool:
                freed = _rt.cudaFreeAsync(<void *>ptr, <cudaStream_t>stream) == cudaSuccess
                if not freed:
                    _rt.cudaGetLastError()
            if not freed:
                # cudaMalloc memory, or cudaFreeAsync failed: cudaFree once the stream (which
                # waits for the consumers) is done. cudaFree does not wait for the accesses to
                # cudaMallocAsync memory: "callers must ensure that all accesses ... have
                # completed" (cudaFree).
                if _rt.cudaStreamSynchronize(<cudaStream_t>stream) == cudaSuccess:
                    if _rt.cudaFree(<void *>ptr) != cudaSuccess:
                        _rt.cudaGetLastError()
                else:
                    _rt.cudaGetLastError()
    leave_device(&_rt, &scope)


cdef int _order_for_python_free(int device, uintptr_t stream, const uintptr_t *consumers, int n,
                                bint unknown) noexcept nogil:
    """Before CUDAConfig.allocator's free: the buffer's stream waits for the consumers.

    The caller's allocator frees in the order of the stream it allocated on (PyTorch's
    caching allocator does), so this orders the free after them. Returns -1 if that
    could not be done (the memory is then not handed back).
    """
    cdef DeviceScope scope
    cdef int r = -1
    if n == 0 and not unknown:
        return 0            # no consumer stream: the allocator's own stream order suffices
    if not _rt_ready:
        return 0            # no CUDA work of ours can exist (a buffer over fake pointers)
    if enter_device(&_rt, device, &scope) == 0:
        r = _order_after_consumers(consumers, n, unknown, stream)
    leave_device(&_rt, &scope)
    return r


cdef int _set_shape(CUDABuffer buf, tuple shape, int itemsize) except -1:
    cdef size_t n = itemsize
    if itemsize not in (1, 2):
        raise ValueError(f"itemsize must be 1 or 2, got {itemsize}")
    if not 1 <= len(shape) <= CUDA_MAX_NDIM:
        raise ValueError(f"a CUDABuffer has 1 to {CUDA_MAX_NDIM} dimensions, got shape {shape}")
    for i, d in enumerate(shape):
        d = operator.index(d)
        if d < 0:
            raise ValueError(f"negative dimension in {shape}")
        buf._shape[i] = d
        n *= <size_t>d
    buf.ndim = len(shape)
    buf.itemsize = itemsize
    buf._nbytes = n
    return 0


@cython.no_gc_clear
cdef class CUDABuffer:
    """A batch of images in CUDA device memory.

    Exposes ``__cuda_array_interface__`` (version 3, with the stream),
    ``__dlpack__`` and ``__dlpack_device__``, so ``cupy.asarray(buf)``,
    ``torch.from_dlpack(buf)`` (or ``spdl.io.to_torch(buf)``) wrap it without a
    copy and keep it alive. The data is valid in the order of ``stream``: work
    on that stream sees it; exports to another stream wait for it there.

    The memory is returned to the allocator it came from when the last
    reference goes, in stream order: after the work enqueued on ``stream``
    and on the streams that DLPack consumers named (``cudaFreeAsync`` on
    ``stream``, or ``cudaFree`` once the host has waited for ``stream`` where
    the device has no memory pools; ``CUDAConfig.allocator``'s free after
    ``stream`` waits for the consumers). A DLPack consumer that names no
    stream (``stream=-1``) or the per-thread default stream makes the free
    wait for the whole device. ``__cuda_array_interface__`` consumers follow
    the interface's rule: their work on other streams is ordered into
    ``stream``. ``stream`` must stay valid until the buffer is freed.

    Attributes:
        shape: ``(N, H, W, C)`` for packed formats, ``(N, C, H, W)`` for planar.
        dtype: ``"uint8"`` or ``"uint16"``.
        pix_fmt: The pixel format of the rows.
        device_index: The CUDA device ordinal.
        stream: The ``cudaStream_t`` (int) the data is ordered on; 0 is the
            legacy default stream.
        indices: The input index of each row.
        errors: ``{input index: exception}`` for the inputs that failed
            (``strict=False``).
    """

    def __init__(self, *args, **kwargs):
        raise TypeError("CUDABuffer cannot be created directly; use spdl.io.transfer_buffer or the loaders")

    def __cinit__(self):
        self.ptr = 0
        self._nbytes = 0
        self.ndim = 0
        self.itemsize = 1
        self._device = 0
        self._stream = 0
        self.free_kind = FREE_NONE
        self.free_cb = None
        self.nconsumers = 0
        self.unknown_consumer = False
        self.indices = ()
        self.errors = {}

    def __dealloc__(self):
        self.release()

    cdef void release(self) noexcept:
        cdef uintptr_t p = self.ptr
        cdef int kind = self.free_kind
        cdef int ordered
        self.ptr = 0
        self._nbytes = 0
        self.free_kind = FREE_NONE
        if p == 0:
            return
        # After the work on the buffer's stream and on its consumers' streams (see
        # "Freeing device memory"); the waits run without the GIL.
        if kind == FREE_CUDA or kind == FREE_ASYNC:
            with nogil:
                _cuda_release(self._device, self._stream, p, kind == FREE_ASYNC,
                              self.consumers, self.nconsumers, self.unknown_consumer)
        elif kind == FREE_PY:
            cb, self.free_cb = self.free_cb, None
            with nogil:
                ordered = _order_for_python_free(self._device, self._stream, self.consumers,
                                                 self.nconsumers, self.unknown_consumer)
            if ordered == 0:
                cb(p)   # an exception here is reported through sys.unraisablehook

    @property
    def shape(self):
        return tuple(self._shape[i] for i in range(self.ndim))

    @property
    def dtype(self):
        return "uint8" if self.itemsize == 1 else "uint16"

    @property
    def nbytes(self):
        return self._nbytes

    @property
    def data_ptr(self):
        """The device address of the first byte (0 for an empty buffer)."""
        return self.ptr

    @property
    def device_index(self):
        return self._device

    @property
    def stream(self):
        return self._stream

    @property
    def __cuda_array_interface__(self):
        return {
            "version": 3,
            "shape": self.shape,
            "typestr": "|u1" if self.itemsize == 1 else "<u2",
            "data": (self.ptr if self._nbytes else 0, False),
            "strides": None,
            # The interface forbids 0: the legacy default stream is 1.
            "stream": self._stream if self._stream != 0 else 1,
        }

    def __dlpack_device__(self):
        return (kDLCUDA, self._device)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        """Export as a DLPack capsule, ready for use on the consumer's ``stream``.

        ``stream`` follows the array API: None or 1 is the legacy default
        stream, 2 the per-thread default stream, any other positive int a
        ``cudaStream_t``; -1 asks for no synchronization; 0 is refused. When
        the consumer's stream is not this buffer's, an event is recorded on
        this buffer's stream and the consumer's stream waits for it; the
        consumer's stream is remembered, and the memory is freed only after
        the work the consumer enqueued on it (that stream must still be valid
        when the last reference goes). With ``max_version >= (1, 0)`` the
        capsule is a versioned (DLPack 1.0) one.
        """
        cdef uintptr_t consumer
        if dl_device is not None:
            dev = tuple(dl_device)
            if len(dev) != 2 or int(dev[0]) != kDLCUDA or int(dev[1]) != self._device:
                raise BufferError(f"a CUDABuffer on cuda:{self._device} cannot be exported to "
                                  f"device {dl_device}: only to ({kDLCUDA}, {self._device}), without a copy")
        if copy:
            raise BufferError("copy=True is not supported: a CUDABuffer is exported without a copy")
        if stream is None:
            consumer = 1
        else:
            if isinstance(stream, bool) or not isinstance(stream, int):
                raise TypeError(f"stream must be an int or None, not {type(stream).__name__}")
            if stream == 0:
                raise ValueError("stream=0 is ambiguous for CUDA (DLPack): use 1 for the legacy "
                                 "default stream, 2 for the per-thread one")
            if stream < -1:
                raise ValueError(f"invalid stream {stream}")
            consumer = <uintptr_t>stream if stream != -1 else 0
        if consumer != 0:
            self._ready_on(consumer)
        self._add_consumer(-1 if stream == -1 else <intptr_t>consumer)
        versioned = False
        if max_version is not None:
            versioned = int(max_version[0]) >= 1
        return _export_dlpack(self, versioned)

    cdef void _add_consumer(self, intptr_t stream) noexcept:
        """Remember a DLPack consumer's stream for the free (-1: not given)."""
        cdef uintptr_t ours = self._stream if self._stream != 0 else 1
        cdef int i
        if self._nbytes == 0 or (stream >= 0 and <uintptr_t>stream == ours):
            return
        if stream < 0 or stream == 2 or self.nconsumers == CUDA_MAX_CONSUMERS:
            # No stream, or the per-thread default stream of the consumer's thread,
            # which another thread cannot name: the free waits for the device.
            self.unknown_consumer = True
            return
        for i in range(self.nconsumers):
            if self.consumers[i] == <uintptr_t>stream:
                return
        self.consumers[self.nconsumers] = <uintptr_t>stream
        self.nconsumers += 1

    cdef int _ready_on(self, uintptr_t consumer) except -1:
        """Make the data ready for work on the consumer stream."""
        cdef uintptr_t ours = self._stream if self._stream != 0 else 1
        cdef const CudaRuntimeApi *rt
        cdef cudaError_t err = cudaSuccess
        cdef const char *op = "cudaEventCreateWithFlags"
        cdef DeviceScope scope
        if consumer == ours or self._nbytes == 0:
            return 0
        rt = cudart()
        with nogil:
            if enter_device(rt, self._device, &scope) == 0:
                err = _stream_wait(rt, consumer, self._stream, &op)
            leave_device(rt, &scope)
        check_scope(&scope, err, op.decode(), f"making the data ready on stream {consumer:#x}")
        return 0

    def synchronize(self):
        """Wait until the work that produced this buffer (all of its stream) is done."""
        cdef const CudaRuntimeApi *rt = cudart()
        cdef cudaError_t err = cudaSuccess
        cdef DeviceScope scope
        with nogil:
            if enter_device(rt, self._device, &scope) == 0:
                err = rt.cudaStreamSynchronize(<cudaStream_t>self._stream)
            leave_device(rt, &scope)
        check_scope(&scope, err, "cudaStreamSynchronize")
        _reap(False)

    def __repr__(self):
        return (f"CUDABuffer(shape={self.shape}, dtype={self.dtype}, pix_fmt={self.pix_fmt!r}, "
                f"device_index={self._device}, stream={self._stream:#x})")


cdef CUDABuffer alloc_cuda_buffer(tuple shape, int itemsize, str pix_fmt, object config):
    cdef CUDABuffer buf = CUDABuffer.__new__(CUDABuffer)
    cdef const CudaRuntimeApi *rt
    cdef void *p = NULL
    cdef cudaError_t err = cudaSuccess
    cdef DeviceScope scope
    cdef int device = config.device_index
    cdef uintptr_t stream = config.stream
    cdef int pools = 0
    cdef bint from_pool = False
    cdef size_t n
    _set_shape(buf, shape, itemsize)
    buf._device = device
    buf._stream = stream
    buf.pix_fmt = pix_fmt
    n = buf._nbytes
    if n == 0:
        return buf
    if config.allocator is None:
        rt = cudart()
        with nogil:
            if enter_device(rt, device, &scope) == 0:
                # The stream-ordered allocator, where the device has memory pools
                # (cudaDevAttrMemoryPoolsSupported): its cudaFreeAsync needs no host wait
                # (see "Freeing device memory"). Else, or if the pool cannot grow, cudaMalloc.
                if rt.cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported,
                                             device) != cudaSuccess:
                    rt.cudaGetLastError()
                    pools = 0
                if pools:
                    err = rt.cudaMallocAsync(&p, n, <cudaStream_t>stream)
                    if err == cudaSuccess and p != NULL:
                        from_pool = True
                    else:
                        rt.cudaGetLastError()
                        p = NULL
                        err = cudaSuccess
                if not from_pool:
                    err = rt.cudaMalloc(&p, n)
            leave_device(rt, &scope)
        if err == cudaSuccess and p != NULL:
            buf.ptr = <uintptr_t>p      # owned from here: freed even if the check below raises
            buf.free_kind = FREE_ASYNC if from_pool else FREE_CUDA
        check_scope(&scope, err, "cudaMalloc", f"{n} bytes on cuda:{device} for shape {shape}")
        return buf
    alloc, free_fn = config.allocator
    ptr = alloc(n, device, config.stream)
    try:
        ptr = operator.index(ptr)
    except TypeError:
        raise TypeError(f"CUDAConfig.allocator's alloc must return the device pointer as an int, "
                        f"got {type(ptr).__name__}") from None
    if ptr == 0:
        raise AllocationError(f"CUDAConfig.allocator could not allocate {n} bytes on cuda:{device} "
                              f"for shape {shape}", stage="cuda")
    if ptr < 0 or ptr > <uintptr_t>-1:
        raise ValueError(f"CUDAConfig.allocator's alloc returned an invalid pointer {ptr}")
    buf.ptr = <uintptr_t>ptr
    buf.free_kind = FREE_PY
    buf.free_cb = free_fn
    return buf


def _alloc_buffer(shape, dtype, device_config, pix_fmt=None):
    """Internal: a CUDABuffer from device_config's allocator, without the device check.

    For tests of the allocator plumbing; the memory is uninitialized.
    """
    if not isinstance(device_config, CUDAConfig):
        raise TypeError(f"device_config must be a CUDAConfig, not {type(device_config).__name__}")
    return alloc_cuda_buffer(tuple(shape), _itemsize(dtype), pix_fmt, device_config)


def _itemsize(dtype):
    if dtype == "uint8":
        return 1
    if dtype == "uint16":
        return 2
    raise ValueError(f"dtype must be 'uint8' or 'uint16', got {dtype!r}")


def _fake_cuda_buffer(ptr, shape, dtype="uint8", *, device_index=0, stream=0, free=None,
                      pix_fmt="rgb24"):
    """Internal, for tests without a GPU: a CUDABuffer over a given (fake) device pointer.

    ``free(ptr)`` is called once when the buffer goes away (or nothing, if None).
    Nothing CUDA is called unless an export to another stream is asked for.
    """
    cdef CUDABuffer buf = CUDABuffer.__new__(CUDABuffer)
    _set_shape(buf, tuple(shape), _itemsize(dtype))
    if device_index < 0 or stream < 0:
        raise ValueError("device_index and stream must be non-negative")
    buf._device = device_index
    buf._stream = stream
    buf.pix_fmt = pix_fmt
    buf.ptr = ptr
    if ptr and free is not None:
        buf.free_kind = FREE_PY
        buf.free_cb = free
    buf.indices = tuple(range(buf._shape[0]))
    return buf


# ---------------------------------------------------------------------------
# Internal helpers for tests and benchmarks that run without CuPy or PyTorch

def _create_stream(int device, bint non_blocking=True):
    """A new cudaStream_t (int) on device; destroy it with _destroy_stream."""
    cdef const CudaRuntimeApi *rt = cudart()
    cdef cudaStream_t s = NULL
    cdef cudaError_t err = cudaSuccess
    cdef DeviceScope scope
    with nogil:
        if enter_device(rt, device, &scope) == 0:
            err = rt.cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking if non_blocking else 0)
        leave_device(rt, &scope)
    check_scope(&scope, err, "cudaStreamCreateWithFlags")
    return <uintptr_t>s


def _destroy_stream(int device, uintptr_t stream):
    cdef const CudaRuntimeApi *rt = cudart()
    cdef cudaError_t err = cudaSuccess
    cdef DeviceScope scope
    with nogil:
        if enter_device(rt, device, &scope) == 0:
            err = rt.cudaStreamDestroy(<cudaStream_t>stream)
        leave_device(rt, &scope)
    check_scope(&scope, err, "cudaStreamDestroy")


def _to_host(CUDABuffer buf, stream=None):
    """A numpy copy of a CUDABuffer, made in the order of `stream` (default: the buffer's)."""
    import numpy as np

    cdef const CudaRuntimeApi *rt = cudart()
    cdef cudaError_t err = cudaSuccess
    cdef DeviceScope scope
    cdef uintptr_t s = buf._stream if stream is None else stream
    cdef uintptr_t dst
    cdef const char *op = "cudaMemcpyAsync"
    out = np.empty(buf.shape, dtype=buf.dtype)
    if buf._nbytes == 0:
        return out
    dst = out.ctypes.data
    with nogil:
        if enter_device(rt, buf._device, &scope) == 0:
            err = rt.cudaMemcpyAsync(<void *>dst, <const void *>buf.ptr, buf._nbytes,
                                     cudaMemcpyDeviceToHost, <cudaStream_t>s)
            if err == cudaSuccess:
                op = "cudaStreamSynchronize"
                err = rt.cudaStreamSynchronize(<cudaStream_t>s)
        leave_device(rt, &scope)
    check_scope(&scope, err, op.decode(), "device to host")
    return out


# ---------------------------------------------------------------------------
# Host to device

def transfer_buffer(buffer, *, device_config):
    """Copy a CPUBuffer to the GPU of device_config; returns a CUDABuffer.

    The device memory comes from ``device_config.allocator`` (cudaMalloc by
    default). The copy is a cudaMemcpyAsync on ``device_config.stream``: the
    call returns once it is enqueued, and the result is valid in that stream's
    order (see CUDABuffer). The CPUBuffer is kept alive until the copy has
    completed, whatever the caller does with it; writing to it before then
    races with the copy. A page-locked CPUBuffer (one loaded with
    ``device_config``) is copied by DMA, asynchronously; a pageable one may
    make the call wait while the runtime stages it.
    """
    cdef CPUBuffer src
    cdef CUDABuffer out
    cdef const CudaRuntimeApi *rt
    cdef cudaError_t err = cudaSuccess
    cdef DeviceScope scope
    cdef int device
    cdef uintptr_t stream
    cdef size_t n
    if not isinstance(device_config, CUDAConfig):
        raise TypeError(f"device_config must be a CUDAConfig, not {type(device_config).__name__}")
    if not isinstance(buffer, CPUBuffer):
        raise TypeError(f"transfer_buffer needs a CPUBuffer, not {type(buffer).__name__}")
    src = buffer
    check_device(device_config)
    _reap(False)
    rt = cudart()
    out = alloc_cuda_buffer(src.shape, src.itemsize, src.pix_fmt, device_config)
    out.indices = src.indices
    out.errors = dict(src.errors)
    n = src.nbytes_c()
    device = device_config.device_index
    stream = device_config.stream
    if n:
        with nogil:
            if enter_device(rt, device, &scope) == 0:
                err = rt.cudaMemcpyAsync(<void *>out.ptr, src.data, n, cudaMemcpyHostToDevice,
                                         <cudaStream_t>stream)
            leave_device(rt, &scope)
        # The copy was enqueued (or may have read part of src before failing): keep src.
        check_then_keep(&scope, err, "cudaMemcpyAsync", f"{n} bytes to cuda:{device}",
                        device, stream, src)
    return out
