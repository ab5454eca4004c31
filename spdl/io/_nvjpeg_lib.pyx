# cython: language_level=3
"""nvJPEG and NPP opened at run time: their function tables, versions and reports.

libnvjpeg and libnppc / libnppig / libnppicc / libnppidei are opened with dlopen
the first time, under a lock, once, like libcudart and of the same CUDA major (_cuda_lib.cuda_major():
13 from the nvidia-nvjpeg / nvidia-npp wheels, 12 from the -cu12 ones, or a
CUDA toolkit; see _cuda_lib's "Finding and opening the libraries").
"""

import threading

from libc.stdint cimport uintptr_t

from spdl.io._cuda_lib cimport _Library, fill_table
from spdl.io._cuda_lib import _open_library, candidates, cuda_major, mixing_note, pip_hint, soname
from spdl.io._errors import CUDAUnavailableError
from spdl.io.includes.npp cimport *
from spdl.io.includes.nvjpeg cimport *

_STATUS = {
    0: "NVJPEG_STATUS_SUCCESS", 1: "NVJPEG_STATUS_NOT_INITIALIZED",
    2: "NVJPEG_STATUS_INVALID_PARAMETER", 3: "NVJPEG_STATUS_BAD_JPEG",
    4: "NVJPEG_STATUS_JPEG_NOT_SUPPORTED", 5: "NVJPEG_STATUS_ALLOCATOR_FAILURE",
    6: "NVJPEG_STATUS_EXECUTION_FAILED", 7: "NVJPEG_STATUS_ARCH_MISMATCH",
    8: "NVJPEG_STATUS_INTERNAL_ERROR", 9: "NVJPEG_STATUS_IMPLEMENTATION_NOT_SUPPORTED",
    10: "NVJPEG_STATUS_INCOMPLETE_BITSTREAM",
}


def status_name(int st):
    return _STATUS.get(st, f"nvjpegStatus_t {st}")


_HINTS = {
    "nvjpeg": "nvJPEG is needed for GPU decoding",
    "nppc": "NPP is needed to resize on the GPU",
    "nppig": "NPP is needed to resize on the GPU",
    "nppicc": "NPP is needed to make float batches on the GPU",
    "nppidei": "NPP is needed to make float and channels-first batches on the GPU",
}


def _hint(str which, int major):
    return (f"{_HINTS[which]}; install the CUDA {major} libraries with {pip_hint(major)}"
            f"{mixing_note(which, major)}")


cdef NvjpegApi _nv
cdef NppApi _npp
cdef bint _ready = False
_failure = None          # (message, library, tried) of the failed load
_libs = None
_LOCK = threading.Lock()


cdef const NvjpegApi *nvjpeg_api() noexcept nogil:
    return &_nv


cdef const NppApi *npp_api() noexcept nogil:
    return &_npp


# The functions of each table, in the order of its fields (_nvjpeg_lib.pxd); libnppc fills
# NppApi's first field, libnppig, libnppicc and libnppidei the runs after it.
_NVJPEG_FUNCTIONS = (
    "nvjpegGetProperty", "nvjpegCreateEx", "nvjpegDestroy", "nvjpegJpegStateCreate",
    "nvjpegJpegStateDestroy", "nvjpegGetImageInfo", "nvjpegDecodeBatchedInitialize",
    "nvjpegDecodeBatched", "nvjpegJpegStreamCreate", "nvjpegJpegStreamDestroy",
    "nvjpegJpegStreamParse", "nvjpegJpegStreamParseHeader", "nvjpegDecodeBatchedSupported",
)
_NPPIG_FUNCTIONS = (
    "nppiResize_8u_C3R_Ctx", "nppiResize_8u_P3R_Ctx", "nppiMirror_8u_C3IR_Ctx",
)
_NPPICC_FUNCTIONS = ("nppiLUTPalette_8u32u_C1R_Ctx",)
_NPPIDEI_FUNCTIONS = (
    "nppiCopy_8u_C3P3R_Ctx", "nppiCopy_32f_P3C3R_Ctx", "nppiCopy_16u_P3C3R_Ctx",
    "nppiConvert_32f16u_C1R_Ctx",
)


cdef int fill_nvjpeg(_Library lib, NvjpegApi *t) except -1:
    return fill_table(lib, <void **>t, sizeof(NvjpegApi), _NVJPEG_FUNCTIONS)


cdef int fill_nppc(_Library lib, NppApi *t) except -1:
    return fill_table(lib, <void **>&t.GetLibVersion, sizeof(t.GetLibVersion), ("nppGetLibVersion",))


cdef int fill_nppig(_Library lib, NppApi *t) except -1:
    return fill_table(lib, <void **>&t.Resize_8u_C3R_Ctx,
                      <char *>&t.LUTPalette_8u32u_C1R_Ctx - <char *>&t.Resize_8u_C3R_Ctx,
                      _NPPIG_FUNCTIONS)


cdef int fill_nppicc(_Library lib, NppApi *t) except -1:
    return fill_table(lib, <void **>&t.LUTPalette_8u32u_C1R_Ctx,
                      <char *>&t.Copy_8u_C3P3R_Ctx - <char *>&t.LUTPalette_8u32u_C1R_Ctx,
                      _NPPICC_FUNCTIONS)


cdef int fill_nppidei(_Library lib, NppApi *t) except -1:
    return fill_table(lib, <void **>&t.Copy_8u_C3P3R_Ctx,
                      sizeof(NppApi) - (<char *>&t.Copy_8u_C3P3R_Ctx - <char *>t), _NPPIDEI_FUNCTIONS)


cdef int fill_npp(str which, _Library lib, NppApi *t) except -1:
    """Fill t's run of NPP library which ("nppc", "nppig", "nppicc" or "nppidei") from lib."""
    if which == "nppc":
        return fill_nppc(lib, t)
    if which == "nppig":
        return fill_nppig(lib, t)
    if which == "nppicc":
        return fill_nppicc(lib, t)
    if which == "nppidei":
        return fill_nppidei(lib, t)
    raise ValueError(f"not an NPP library: {which!r}")


def load_libraries():
    """Open libnvjpeg, libnppc, libnppig, libnppicc and libnppidei of the runtime's CUDA major
    and fill the tables, once."""
    global _ready, _failure, _libs
    if _ready:
        return _libs
    with _LOCK:
        if not _ready:
            if _failure is None:
                try:
                    major = cuda_major()
                    nv = open_library("nvjpeg", major)
                    fill_nvjpeg(nv, &_nv)
                    # The other NPP libraries need libnppc: open it first so that its
                    # absence is named.
                    nppc = open_library("nppc", major)
                    fill_nppc(nppc, &_npp)
                    nppig = open_library("nppig", major)
                    fill_nppig(nppig, &_npp)
                    nppicc = open_library("nppicc", major)
                    fill_nppicc(nppicc, &_npp)
                    nppidei = open_library("nppidei", major)
                    fill_nppidei(nppidei, &_npp)
                except CUDAUnavailableError as e:
                    _failure = (str(e), e.library, e.tried)
                else:
                    _libs = (nv, nppc, nppig, nppicc, nppidei)
                    _ready = True
            if _failure is not None:
                msg, library, tried = _failure
                raise CUDAUnavailableError(msg, library=library, tried=tried)
    return _libs


def open_library(str which, int major, paths=None):
    """Open library which ("nvjpeg", "nppc", "nppig", "nppicc" or "nppidei") of major, from
    paths (default: the usual search, _cuda_lib.candidates); CUDAUnavailableError naming it
    otherwise."""
    if which not in _HINTS:
        raise ValueError(f"which must be one of {', '.join(map(repr, _HINTS))}, got {which!r}")
    return _open_library(soname(which, major), candidates(which, major) if paths is None else paths,
                         _hint(which, major))


cdef str _nvjpeg_version(NvjpegApi *t):
    cdef int major = 0, minor = 0, patch = 0
    if (t.GetProperty(MAJOR_VERSION, &major) == NVJPEG_STATUS_SUCCESS
            and t.GetProperty(MINOR_VERSION, &minor) == NVJPEG_STATUS_SUCCESS
            and t.GetProperty(PATCH_LEVEL, &patch) == NVJPEG_STATUS_SUCCESS):
        return f"{major}.{minor}.{patch}"
    return None


cdef str _npp_version(NppApi *t):
    cdef const NppLibraryVersion *v = t.GetLibVersion()
    return f"{v.major}.{v.minor}.{v.build}" if v != NULL else None


def nvjpeg_info():
    """The nvJPEG and NPP libraries in use and their versions, or why they cannot load. Never raises."""
    try:
        nv, nppc, nppig, _, _ = load_libraries()
    except CUDAUnavailableError as e:
        return {"nvjpeg": None, "npp": None, "error": str(e)}
    return {"nvjpeg": nv.path, "nvjpeg_version": _nvjpeg_version(&_nv),
            "npp": nppig.path, "npp_version": _npp_version(&_npp), "error": None}


def library_report(str which):
    """For cuda_info(): library which ("nvjpeg", "nppc", "nppig", "nppicc" or "nppidei") of
    the chosen CUDA major.

    Opens it on its own (dlopen of an open library returns it again), so each
    library is reported even when another one is missing. Returns ``{"soname",
    "path", "version", "error", "tried"}``; never raises. NPP's version
    (nppGetLibVersion, in libnppc) is that of the whole NPP release: it is
    given for the other NPP libraries too.
    """
    cdef NvjpegApi nv
    cdef NppApi npp
    out = {"soname": None, "path": None, "version": None, "error": None, "tried": []}
    try:
        major = cuda_major()
        out["soname"] = soname(which, major)
        lib = open_library(which, major)
        out["path"], out["tried"] = lib.path, list(lib.tried)
        if which == "nvjpeg":
            fill_nvjpeg(lib, &nv)
            out["version"] = _nvjpeg_version(&nv)
        else:
            if which != "nppc":
                fill_npp(which, lib, &npp)
                lib = open_library("nppc", major)
            fill_nppc(lib, &npp)
            out["version"] = _npp_version(&npp)
    except CUDAUnavailableError as e:
        out["error"], out["tried"] = str(e), list(e.tried)
    except Exception as e:      # never raises: report what went wrong
        out["error"] = f"{type(e).__name__}: {e}"
    return out


