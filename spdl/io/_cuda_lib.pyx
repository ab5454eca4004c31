# cython: language_level=3
"""Finding and opening the CUDA libraries, and choosing the CUDA major.

Nothing CUDA is needed to build or import this module (nor any GPU module of
spdl.io): the libraries are opened with dlopen the first time a GPU entry point
runs, under a lock, once. The function tables are filled elsewhere
(_cuda_runtime: libcudart and libcuda; _nvjpeg_lib: nvJPEG and NPP); this
module says which files they come from.
"""

import os
import platform
import site
import sys
import threading

from libc.stdint cimport uintptr_t
from posix.dlfcn cimport RTLD_LOCAL, RTLD_NOW, dlerror, dlopen, dlsym

from spdl.io._errors import CUDAUnavailableError
from spdl.io.includes.cuda_driver cimport CUDA_SUCCESS, CUresult, cuDriverGetVersion_t
from spdl.io.includes.nvml cimport *

# ---------------------------------------------------------------------------
# Finding and opening the libraries
#
# The GPU path needs libcudart (this module), libnvjpeg, libnppc, libnppig, libnppicc and
# libnppidei (_nvjpeg), all of ONE CUDA major, 13 or 12: nvJPEG and NPP each carry their
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
# and whose six libraries are all present and open (dlopen; a set that is
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
    "nppicc": ("nvidia.npp", "libnppicc"),
    "nppidei": ("nvidia.npp", "libnppidei"),
}
_WHEELS = {
    13: "nvidia-cuda-runtime, nvidia-nvjpeg, nvidia-npp 13.x",
    12: "nvidia-cuda-runtime-cu12, nvidia-nvjpeg-cu12, nvidia-npp-cu12",
}
_ARCH = {"aarch64": "sbsa"}.get(platform.machine(), platform.machine())
_SYSTEM_CUDA = ("/usr/local/cuda",)     # where a CUDA toolkit is installed when $CUDA_HOME is not set


def soname(str name, int major):
    """The file name of library ``name`` ("cudart", "nvjpeg", "nppc", "nppig", "nppicc",
    "nppidei") of CUDA ``major``."""
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


def candidates(str name, int major):
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

    cdef void *sym(self, const char *name, list missing):
        cdef void *p = dlsym(self.handle, name)
        if p == NULL:
            missing.append(name.decode())
        return p

    cdef void *optional(self, const char *name):
        return dlsym(self.handle, name)

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


cdef _Library _try_open(str label, paths, list failed):
    """dlopen the first of paths that loads, or None; each path that did not goes to failed as
    (path, why). A path that does not exist is not tried with dlopen ("not found"); a bare
    soname goes to the dynamic loader's search."""
    cdef void *h
    cdef const char *e
    cdef const char *cpath
    cdef bytes b
    cdef _Library lib
    for path in paths:
        path = os.fsdecode(path)
        if os.sep in path and not os.path.exists(path):
            failed.append((path, "not found"))
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
            lib.tried = tuple(p for p, _ in failed)
            return lib
        failed.append((path, e.decode("utf-8", "replace") if e != NULL else "unknown error"))
    return None


cdef int fill_table(_Library lib, void **slots, size_t size, tuple names) except -1:
    """Fill a table of function pointers (a struct of them, size bytes, declared in the order
    of names) by dlsym; CUDAUnavailableError naming every function lib lacks."""
    if size != len(names) * sizeof(void *):
        raise AssertionError(f"a table of {size} bytes for {len(names)} functions")
    missing = []
    for i, name in enumerate(names):
        slots[i] = lib.sym(name.encode(), missing)
    lib.check(missing)
    return 0


def _open_library(str label, candidates, str hint=""):
    """dlopen the first of candidates that loads (see _try_open).

    Raises CUDAUnavailableError naming ``label`` and every path tried, with the
    reason for each.
    """
    failed = []
    lib = _try_open(label, candidates, failed)
    if lib is not None:
        return lib
    detail = "\n".join(f"  {p}: {r}" for p, r in failed)
    raise CUDAUnavailableError(
        f"{label} could not be loaded{': ' + hint if hint else ''}. Tried:\n{detail}",
        library=label, tried=[p for p, _ in failed])


def version_text(int v):
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
    get_name = <nvmlDeviceGetName_t>(<_Library>lib).optional(b"nvmlDeviceGetName")
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


def _open_set(int major, dict paths):
    """dlopen each library of major (the first candidate of each that loads); None if all open,
    else what failed, one line. The libraries stay open: the loaders open them again (dlopen of an
    open library returns it again)."""
    for name in _LIBS:
        failed = []
        if _try_open(soname(name, major), paths[major][name], failed) is None:
            why = [f"{p}: {r}" for p, r in failed if r != "not found"]
            return f"{soname(name, major)} does not open ({'; '.join(why) or 'not found'})"
    return None


def _select():
    _load_driver()
    dv = _drv_version
    # Every candidate, looked for once: {major: {library: [paths]}} and which are present.
    paths = {m: {name: candidates(name, m) for name in _LIBS} for m in CUDA_MAJORS}
    present = {p: _present(p) for m in paths for ps in paths[m].values() for p in ps}
    found = {m: {name: [p for p in ps if present[p]] for name, ps in paths[m].items()}
             for m in CUDA_MAJORS}
    if dv > 0:
        runnable = [m for m in CUDA_MAJORS if dv >= m * 1000]
        driver = f"the NVIDIA driver runs CUDA {version_text(dv)}"
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
            failed = _open_set(m, paths)
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
        tried = [p for m in (runnable or CUDA_MAJORS) for p in paths[m]["cudart"]]
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
        detail = "\n".join(f"  {p}: {'present' if present[p] else 'not found'}" for p in tried)
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
# libcuda.so.1: the driver's CUDA version (select_cuda) and the driver API (_cuda_runtime)

_CUDA_DRIVER = "libcuda.so.1"
_drv_tried = False      # _load_driver ran
_drv_lib = None         # the opened libcuda.so.1, or None
_drv_failure = None     # why it could not be opened
cdef int _drv_version = 0               # cuDriverGetVersion, 0 if unknown
_drv_version_error = None               # why the version is unknown
_drv_version_tried = []                 # the candidates that did not load


def driver_candidates():
    """Where libcuda.so.1 is looked for. It comes with the NVIDIA driver, never with a wheel:
    the dynamic loader's search, then the folders containers mount the driver into."""
    return [_CUDA_DRIVER, "/usr/local/nvidia/lib64/libcuda.so.1", "/usr/lib/wsl/lib/libcuda.so.1"]


def _load_driver():
    """Open libcuda.so.1 and read the driver's CUDA version, once; never raises.

    cuDriverGetVersion needs no cuInit: nothing is initialized here, so finding
    and loading the libraries (cuda_info's paths, runtime_info,
    driver_api_info) does not initialize CUDA in a process that may fork. CUDA
    is initialized by the first runtime call that needs the driver: the
    cudaGetDeviceCount of cuda_available() / check_device(), which every GPU
    entry point runs first; cuInit follows at the first enter_device.
    """
    global _drv_lib, _drv_failure, _drv_tried, _drv_version, _drv_version_error, _drv_version_tried
    cdef cuDriverGetVersion_t get_version
    cdef int v = 0
    cdef CUresult r
    with _LOAD_LOCK:
        if _drv_tried:
            return
        _drv_tried = True
        try:
            lib = _open_library(_CUDA_DRIVER, driver_candidates(), "it comes with the NVIDIA driver")
        except CUDAUnavailableError as e:
            _drv_failure = _drv_version_error = str(e)
            _drv_version_tried = list(e.tried)
            return
        _drv_lib = lib
        _drv_version_tried = list(lib.tried)
        get_version = <cuDriverGetVersion_t>(<_Library>lib).optional(b"cuDriverGetVersion")
        if get_version == NULL:
            _drv_version_error = f"{lib.path} has no cuDriverGetVersion"
        else:
            r = get_version(&v)
            if r == CUDA_SUCCESS and v > 0:
                _drv_version = v
            else:
                _drv_version_error = f"cuDriverGetVersion failed with CUresult {r}"


def driver_library():
    """(the opened libcuda.so.1 or None, why it could not be opened or None)."""
    _load_driver()
    return _drv_lib, _drv_failure


def driver_info():
    """libcuda.so.1 and the driver's CUDA version, without initializing CUDA. Never raises.

    Returns ``{"library": path or None, "version": int (13000 for 13.0) or
    None, "error": why the version is unknown, or None, "tried": the
    candidates that did not load}``.
    """
    _load_driver()
    return {"library": _drv_lib.path if _drv_lib is not None else None,
            "version": _drv_version or None, "error": _drv_version_error,
            "tried": list(_drv_version_tried)}


def driver_description(int runtime_dv=0):
    """The driver, in words, for a "no CUDA device" message (runtime_dv: cudaDriverGetVersion)."""
    dv = runtime_dv or _drv_version
    if dv:
        return f"the NVIDIA driver runs CUDA {version_text(dv)}"
    if _drv_lib is None:
        return "no NVIDIA driver (libcuda.so.1 is not installed)"
    return f"no usable NVIDIA driver ({_drv_lib.path}: {_drv_version_error})"
