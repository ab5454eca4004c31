# cython: language_level=3
"""JPEG batches decoded on the GPU: nvJPEG's batched decoder, NPP's resize.

    buf = spdl.io.load_image_batch_nvjpeg(srcs, device_config=CUDAConfig(0),
                                          width=224, height=224)

libnvjpeg and libnppc / libnppig are opened with dlopen the first time,
under a lock, once, like libcudart and of the same CUDA major
(_cuda.cuda_major(): 13 from the nvidia-nvjpeg / nvidia-npp wheels, 12 from
the -cu12 ones, or a CUDA toolkit; see _cuda's "Finding and opening the
libraries").

One call:

1. Every source is read (paths honour DemuxConfig.max_file_size) and sniffed:
   a JPEG whose markers say nvJPEG can take it (8-bit Huffman-coded, complete
   up to its end-of-image marker, not RGB-coded: see _jpeg_gpu_check) and that
   nvjpegGetImageInfo accepts (1 or 3 components, a known chroma subsampling,
   at least 2 pixels wide and high - NPP's resize refuses less - and at most
   DecodeConfig.max_pixels) goes to the GPU; anything else - other
   formats, CMYK, RGB-coded or truncated JPEGs, unreadable files, bad headers -
   takes the CPU path (FFmpeg), which decodes it or reports the same error it
   would report in load_image_batch.
2. Where the GPU has a hardware JPEG decoder (A100, A30, H100, ...), the
   single-scan images nvjpegDecodeBatchedSupported accepts (asked after a
   header-only parse) are decoded by the NVJPEG_BACKEND_HARDWARE handle; the
   rest by NVJPEG_BACKEND_GPU_HYBRID. Each group is decoded in rounds whose
   scratch (the full-size images, already converted to interleaved RGB/BGR
   or planar RGB) stays under a bound (_plan_rounds: 256 MiB, or a quarter of
   the free device memory); each round is one nvjpegDecodeBatched call. If a
   call fails (one corrupt JPEG fails the whole call), each of its images is
   tried alone; those that still fail on the hardware backend join the hybrid
   group (decoded after it), those that fail there take the CPU path, so each
   failure is reported for its own input, as load_image_batch reports it. The
   host waits around each hardware call, which does not keep stream order:
   before it when the scratch may be memory queued work still reads, and
   after it before anything reads or frees the scratch (see _decode_round).
3. Each round's images are resized by NPP (nppiResize_8u_C3R_Ctx / _P3R_Ctx)
   into their rows of the output, and the round's scratch is freed (in stream
   order) before the next round: supersampling when shrinking both ways,
   bicubic otherwise, placed as the CPU path places it (scale_mode "pad": fit
   inside width x height keeping the aspect ratio, centred, black borders;
   None: stretch). Rows from the CPU path are copied in from page-locked
   memory (planar rows are transposed into a page-locked block first). An
   image NPP refuses takes the CPU path into its row. The output has a row
   per input; the rows of inputs that failed are dropped at the end (one
   device-to-device copy, only then).

Every step runs with the device's primary context current on the calling
thread (enter_device), which is put back as it was afterwards: nvJPEG's
handles and states may only be used with the device that was current when
they were made (nvJPEG, "Multi-GPU support").

Everything is enqueued on CUDAConfig.stream; the result is valid in that
stream's order.
"""

import asyncio
import functools
import logging
import threading

from libc.limits cimport INT_MAX
from libc.stdint cimport int64_t, uint8_t, uintptr_t
from libc.stdlib cimport calloc, free
from libc.string cimport memchr, memcmp

from spdl.io._buffer cimport CPUBuffer, HostAllocator
from spdl.io._cuda cimport (
    FREE_CUDA, FREE_NONE, CUDABuffer, CudaRuntimeApi, DeviceScope, alloc_cuda_buffer, check_scope, check_then_keep,
    cuda_error, cudart, enter_device, keep_after_error, keep_until_done, leave_device,
)
from spdl.io._error cimport ErrorInfo
from spdl.io._scale cimport MODE_PAD, MODE_STRETCH, Geometry, ScaleSpec, compute_geometry
from spdl.io._source cimport Source, make_source, read_source
from spdl.io._structure cimport jpeg_check_structure, jpeg_skip_entropy
from spdl.io.includes.cuda_runtime cimport *
from spdl.io.includes.libavcodec cimport AVPacket, av_packet_alloc, av_packet_free
from spdl.io.includes.libavutil cimport AV_PIX_FMT_NONE
from spdl.io.includes.npp cimport *
from spdl.io.includes.nvjpeg cimport *

from spdl.io._batch import BatchJob
from spdl.io._config import DEFAULT_MAX_FILE_SIZE, DEFAULT_MAX_PIXELS, CUDAConfig
from spdl.io import _cuda as _cudapy   # library_candidates is looked up at call time
from spdl.io._cuda import CUDAError, CUDAUnavailableError, _open_library, check_device, host_allocator
from spdl.io._errors import BatchLoadError
from spdl.io._filter_desc import get_video_filter_desc

__all__ = ["load_image_batch_nvjpeg", "async_load_image_batch_nvjpeg"]

_log = logging.getLogger("spdl.io")

#: Output pixel formats of the nvJPEG path: packed RGB, packed BGR, planar RGB.
PIX_FMTS = ("rgb24", "bgr24", "rgbp")
SCALE_MODES = ("pad", None)

_STATUS = {
    0: "NVJPEG_STATUS_SUCCESS", 1: "NVJPEG_STATUS_NOT_INITIALIZED",
    2: "NVJPEG_STATUS_INVALID_PARAMETER", 3: "NVJPEG_STATUS_BAD_JPEG",
    4: "NVJPEG_STATUS_JPEG_NOT_SUPPORTED", 5: "NVJPEG_STATUS_ALLOCATOR_FAILURE",
    6: "NVJPEG_STATUS_EXECUTION_FAILED", 7: "NVJPEG_STATUS_ARCH_MISMATCH",
    8: "NVJPEG_STATUS_INTERNAL_ERROR", 9: "NVJPEG_STATUS_IMPLEMENTATION_NOT_SUPPORTED",
    10: "NVJPEG_STATUS_INCOMPLETE_BITSTREAM",
}


def _status_name(int st):
    return _STATUS.get(st, f"nvjpegStatus_t {st}")


# ---------------------------------------------------------------------------
# The libraries

cdef struct NvjpegApi:
    nvjpegGetProperty_t GetProperty
    nvjpegCreateEx_t CreateEx
    nvjpegDestroy_t Destroy
    nvjpegJpegStateCreate_t JpegStateCreate
    nvjpegJpegStateDestroy_t JpegStateDestroy
    nvjpegGetImageInfo_t GetImageInfo
    nvjpegDecodeBatchedInitialize_t DecodeBatchedInitialize
    nvjpegDecodeBatched_t DecodeBatched
    nvjpegJpegStreamCreate_t JpegStreamCreate
    nvjpegJpegStreamDestroy_t JpegStreamDestroy
    nvjpegJpegStreamParse_t JpegStreamParse
    nvjpegDecodeBatchedSupported_t DecodeBatchedSupported

cdef struct NppApi:
    nppGetLibVersion_t GetLibVersion
    nppiResize_8u_C3R_Ctx_t Resize_8u_C3R_Ctx
    nppiResize_8u_P3R_Ctx_t Resize_8u_P3R_Ctx

_HINTS = {
    "nvjpeg": "nvJPEG is needed for GPU decoding",
    "nppc": "NPP is needed to resize on the GPU",
    "nppig": "NPP is needed to resize on the GPU",
}


def _hint(str which, int major):
    return (f"{_HINTS[which]}; install the CUDA {major} libraries with {_cudapy.pip_hint(major)}"
            f"{_cudapy.mixing_note(which, major)}")


cdef NvjpegApi _nv
cdef NppApi _npp
cdef bint _ready = False
_failure = None          # (message, library, tried) of the failed load
_libs = None
_LOCK = threading.Lock()


cdef void *_sym(lib, str name, list missing) except? NULL:
    return <void *><uintptr_t>lib.address(name, missing)


cdef int _fill_nvjpeg(lib, NvjpegApi *t) except -1:
    missing = []
    t.GetProperty = <nvjpegGetProperty_t>_sym(lib, "nvjpegGetProperty", missing)
    t.CreateEx = <nvjpegCreateEx_t>_sym(lib, "nvjpegCreateEx", missing)
    t.Destroy = <nvjpegDestroy_t>_sym(lib, "nvjpegDestroy", missing)
    t.JpegStateCreate = <nvjpegJpegStateCreate_t>_sym(lib, "nvjpegJpegStateCreate", missing)
    t.JpegStateDestroy = <nvjpegJpegStateDestroy_t>_sym(lib, "nvjpegJpegStateDestroy", missing)
    t.GetImageInfo = <nvjpegGetImageInfo_t>_sym(lib, "nvjpegGetImageInfo", missing)
    t.DecodeBatchedInitialize = <nvjpegDecodeBatchedInitialize_t>_sym(
        lib, "nvjpegDecodeBatchedInitialize", missing)
    t.DecodeBatched = <nvjpegDecodeBatched_t>_sym(lib, "nvjpegDecodeBatched", missing)
    t.JpegStreamCreate = <nvjpegJpegStreamCreate_t>_sym(lib, "nvjpegJpegStreamCreate", missing)
    t.JpegStreamDestroy = <nvjpegJpegStreamDestroy_t>_sym(lib, "nvjpegJpegStreamDestroy", missing)
    t.JpegStreamParse = <nvjpegJpegStreamParse_t>_sym(lib, "nvjpegJpegStreamParse", missing)
    t.DecodeBatchedSupported = <nvjpegDecodeBatchedSupported_t>_sym(
        lib, "nvjpegDecodeBatchedSupported", missing)
    lib.check(missing)
    return 0


cdef int _fill_nppc(lib, NppApi *t) except -1:
    missing = []
    t.GetLibVersion = <nppGetLibVersion_t>_sym(lib, "nppGetLibVersion", missing)
    lib.check(missing)
    return 0


cdef int _fill_nppig(lib, NppApi *t) except -1:
    missing = []
    t.Resize_8u_C3R_Ctx = <nppiResize_8u_C3R_Ctx_t>_sym(lib, "nppiResize_8u_C3R_Ctx", missing)
    t.Resize_8u_P3R_Ctx = <nppiResize_8u_P3R_Ctx_t>_sym(lib, "nppiResize_8u_P3R_Ctx", missing)
    lib.check(missing)
    return 0


def _probe_library(str which, candidates=None, major=None):
    """Internal, for tests: open one of the libraries (not cached) and check its symbols.

    which is "nvjpeg", "nppc" or "nppig"; major defaults to _cuda.cuda_major(),
    candidates to the usual search. Returns the path it loaded; raises
    CUDAUnavailableError naming the library otherwise.
    """
    cdef NvjpegApi nv
    cdef NppApi npp
    if which not in _HINTS:
        raise ValueError(f"which must be 'nvjpeg', 'nppc' or 'nppig', got {which!r}")
    lib = _open(which, major or _cudapy.cuda_major(), candidates)
    if which == "nvjpeg":
        _fill_nvjpeg(lib, &nv)
    elif which == "nppc":
        _fill_nppc(lib, &npp)
    else:
        _fill_nppig(lib, &npp)
    return lib.path


def _load_libraries():
    """Open libnvjpeg, libnppc and libnppig of the runtime's CUDA major and fill the tables, once."""
    global _ready, _failure, _libs
    if _ready:
        return _libs
    with _LOCK:
        if not _ready:
            if _failure is None:
                try:
                    major = _cudapy.cuda_major()
                    nv = _open("nvjpeg", major)
                    _fill_nvjpeg(nv, &_nv)
                    # libnppig needs libnppc: open it first so that its absence is named.
                    nppc = _open("nppc", major)
                    _fill_nppc(nppc, &_npp)
                    nppig = _open("nppig", major)
                    _fill_nppig(nppig, &_npp)
                except CUDAUnavailableError as e:
                    _failure = (str(e), e.library, e.tried)
                else:
                    _libs = (nv, nppc, nppig)
                    _ready = True
            if _failure is not None:
                msg, library, tried = _failure
                raise CUDAUnavailableError(msg, library=library, tried=tried)
    return _libs


def _open(str which, int major, candidates=None):
    name = _cudapy.soname(which, major)
    if candidates is None:
        candidates = _cudapy.library_candidates(_cudapy._LIBS[which][0], name)
    return _open_library(name, candidates, _hint(which, major))


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
        nv, nppc, nppig = _load_libraries()
    except CUDAUnavailableError as e:
        return {"nvjpeg": None, "npp": None, "error": str(e)}
    return {"nvjpeg": nv.path, "nvjpeg_version": _nvjpeg_version(&_nv),
            "npp": nppig.path, "npp_version": _npp_version(&_npp), "error": None}


def library_report(str which):
    """For cuda_info(): library which ("nvjpeg", "nppc" or "nppig") of the chosen CUDA major.

    Opens it on its own (dlopen of an open library returns it again), so each
    library is reported even when another one is missing. Returns ``{"soname",
    "path", "version", "error", "tried"}``; never raises. NPP's version
    (nppGetLibVersion, in libnppc) is that of the whole NPP release: it is
    given for libnppig too.
    """
    cdef NvjpegApi nv
    cdef NppApi npp
    out = {"soname": None, "path": None, "version": None, "error": None, "tried": []}
    try:
        major = _cudapy.cuda_major()
        out["soname"] = _cudapy.soname(which, major)
        lib = _open(which, major)
        out["path"], out["tried"] = lib.path, list(lib.tried)
        if which == "nvjpeg":
            _fill_nvjpeg(lib, &nv)
            out["version"] = _nvjpeg_version(&nv)
        else:
            if which == "nppig":
                _fill_nppig(lib, &npp)
                lib = _open("nppc", major)
            _fill_nppc(lib, &npp)
            out["version"] = _npp_version(&npp)
    except CUDAUnavailableError as e:
        out["error"], out["tried"] = str(e), list(e.tried)
    except Exception as e:      # never raises: report what went wrong
        out["error"] = f"{type(e).__name__}: {e}"
    return out


# ---------------------------------------------------------------------------
# One nvJPEG decoder per device

cdef class _Decoder:
    """nvJPEG handles and states for one device; used under `lock`, kept for the process."""
    cdef int device
    cdef nvjpegHandle_t hw              # NVJPEG_BACKEND_HARDWARE, or NULL
    cdef nvjpegJpegState_t hw_state
    cdef nvjpegJpegStream_t hw_stream   # to ask nvjpegDecodeBatchedSupported
    # nvjpegJpegStreamParseHeader where the library has it (CUDA 12 and 13 do), else NULL:
    # nvjpegJpegStreamParse, which also parses the whole entropy-coded data on the host.
    cdef nvjpegJpegStreamParseHeader_t parse_header
    cdef nvjpegHandle_t hy              # NVJPEG_BACKEND_GPU_HYBRID
    cdef nvjpegJpegState_t hy_state
    # One event per state, recorded after each use of it, so that the hybrid group of a
    # call does not wait for the hardware group just enqueued before it (or the other
    # way round). cudaEventBlockingSync: waiting for one blocks the thread instead of
    # spinning a CPU core.
    cdef cudaEvent_t hw_done, hy_done
    cdef bint hw_used, hy_used          # the event marks the end of the last use of its state
    cdef bint broken                    # a CUDA failure left it unknown whether the states are idle
    cdef bint hw_strict, hy_strict      # made with NVJPEG_FLAGS_BITSTREAM_STRICT
    cdef readonly object lock
    cdef readonly str hardware          # "yes", or why the hardware decoder is not used

    cdef void destroy(self) noexcept nogil:
        # With the device current: the handles belong to it.
        if self.hw_stream != NULL:
            _nv.JpegStreamDestroy(self.hw_stream)
        if self.hw_state != NULL:
            _nv.JpegStateDestroy(self.hw_state)
        if self.hw != NULL:
            _nv.Destroy(self.hw)
        if self.hy_state != NULL:
            _nv.JpegStateDestroy(self.hy_state)
        if self.hy != NULL:
            _nv.Destroy(self.hy)
        self.hw_stream = self.hw_state = self.hw = self.hy_state = self.hy = NULL


_decoders = {}
_decoders_lock = threading.Lock()


cdef nvjpegStatus_t _create_handle(int backend, nvjpegHandle_t *handle, bint *strict) noexcept nogil:
    # NVJPEG_FLAGS_BITSTREAM_STRICT: return an error for a bitstream that does
    # not strictly follow the JPEG specification, instead of decoding it anyway
    # (nvJPEG, "nvJPEG Flags"); such an image then takes the CPU path. If the
    # library refuses the flag, the handle is made without it.
    cdef nvjpegStatus_t st = _nv.CreateEx(backend, NULL, NULL, NVJPEG_FLAGS_BITSTREAM_STRICT, handle)
    strict[0] = st == NVJPEG_STATUS_SUCCESS
    if st != NVJPEG_STATUS_SUCCESS:
        handle[0] = NULL
        st = _nv.CreateEx(backend, NULL, NULL, NVJPEG_FLAGS_DEFAULT, handle)
        if st != NVJPEG_STATUS_SUCCESS:
            handle[0] = NULL
    return st


# cudaEventBlockingSync | cudaEventDisableTiming (driver_types.h: 0x01, 0x02).
cdef unsigned int _EVENT_FLAGS = cudaEventBlockingSync | cudaEventDisableTiming


cdef _Decoder _make_decoder(int device):
    cdef const CudaRuntimeApi *rt = cudart()
    cdef _Decoder d = _Decoder.__new__(_Decoder)
    cdef nvjpegStatus_t st_hw = 0, st_hy = 0
    cdef cudaError_t ev_err = cudaSuccess
    cdef const char *op = "nvjpegCreateEx"
    cdef DeviceScope scope
    d.device = device
    d.lock = threading.Lock()
    d.parse_header = <nvjpegJpegStreamParseHeader_t><uintptr_t>_libs[0].address(
        "nvjpegJpegStreamParseHeader", [])
    with nogil:
        # Handles and states belong to the device current when they are made.
        if enter_device(rt, device, &scope) == 0:
            st_hw = _create_handle(NVJPEG_BACKEND_HARDWARE, &d.hw, &d.hw_strict)
            if st_hw == NVJPEG_STATUS_SUCCESS:
                st_hw = _nv.JpegStateCreate(d.hw, &d.hw_state)
                if st_hw == NVJPEG_STATUS_SUCCESS:
                    st_hw = _nv.JpegStreamCreate(d.hw, &d.hw_stream)
                if st_hw != NVJPEG_STATUS_SUCCESS:
                    if d.hw_state != NULL:
                        _nv.JpegStateDestroy(d.hw_state)
                    _nv.Destroy(d.hw)
                    d.hw = d.hw_state = d.hw_stream = NULL
            st_hy = _create_handle(NVJPEG_BACKEND_GPU_HYBRID, &d.hy, &d.hy_strict)
            if st_hy == NVJPEG_STATUS_SUCCESS:
                op = "nvjpegJpegStateCreate"
                st_hy = _nv.JpegStateCreate(d.hy, &d.hy_state)
                if st_hy != NVJPEG_STATUS_SUCCESS:
                    _nv.Destroy(d.hy)
                    d.hy = d.hy_state = NULL
            if st_hy == NVJPEG_STATUS_SUCCESS:
                ev_err = rt.cudaEventCreateWithFlags(&d.hy_done, _EVENT_FLAGS)
                if ev_err == cudaSuccess and d.hw != NULL:
                    ev_err = rt.cudaEventCreateWithFlags(&d.hw_done, _EVENT_FLAGS)
                if ev_err != cudaSuccess:
                    rt.cudaGetLastError()
                    if d.hy_done != NULL and rt.cudaEventDestroy(d.hy_done) != cudaSuccess:
                        rt.cudaGetLastError()
                    d.hy_done = d.hw_done = NULL
            if st_hy != NVJPEG_STATUS_SUCCESS or ev_err != cudaSuccess:
                d.destroy()
        leave_device(rt, &scope)
    check_scope(&scope)
    if st_hy != NVJPEG_STATUS_SUCCESS or ev_err != cudaSuccess:
        if ev_err != cudaSuccess:
            raise cuda_error(ev_err, "cudaEventCreateWithFlags")
        raise CUDAError(f"{op.decode()} (NVJPEG_BACKEND_GPU_HYBRID) failed on cuda:{device}: "
                        f"{_status_name(st_hy)}", op=op.decode(), code=st_hy)
    d.hardware = "yes" if d.hw != NULL else f"no ({_status_name(st_hw)})"
    return d


cdef _Decoder _decoder(int device):
    with _decoders_lock:
        d = _decoders.get(device)
        if d is None:
            d = _decoders[device] = _make_decoder(device)
    return d


def decoder_backends(device_index=0):
    """Which nvJPEG backends decode on a device.

    ``{"hardware": "yes" or why not, "hybrid": "yes", "strict": "yes" or "no"}``;
    strict says whether the handles were made with NVJPEG_FLAGS_BITSTREAM_STRICT.
    """
    check_device(CUDAConfig(device_index))
    _load_libraries()
    cdef _Decoder d = _decoder(device_index)
    return {"hardware": d.hardware, "hybrid": "yes",
            "strict": "yes" if d.hy_strict and (d.hw == NULL or d.hw_strict) else "no"}


# ---------------------------------------------------------------------------
# The encoded inputs of one call

cdef enum:
    G_CPU = 0           # decoded by the CPU path
    G_HW = 1            # the hardware decoder
    G_HYBRID = 2        # the GPU-hybrid decoder


cdef class _Inputs:
    """The encoded images of one call; kept alive until the GPU has read them."""
    cdef Py_ssize_t n
    cdef AVPacket **pkts                # files read into memory (NULL for bytes sources)
    cdef const unsigned char **data
    cdef size_t *length
    cdef int *width
    cdef int *height
    cdef int *group                     # G_*
    cdef uintptr_t *decoded             # the decoded full-size image in device memory
    cdef list sources                   # the Source objects that keep bytes sources alive

    def __cinit__(self, Py_ssize_t n):
        cdef size_t m = n if n > 0 else 1
        self.n = n
        self.pkts = <AVPacket **>calloc(m, sizeof(AVPacket *))
        self.data = <const unsigned char **>calloc(m, sizeof(unsigned char *))
        self.length = <size_t *>calloc(m, sizeof(size_t))
        self.width = <int *>calloc(m, sizeof(int))
        self.height = <int *>calloc(m, sizeof(int))
        self.group = <int *>calloc(m, sizeof(int))
        self.decoded = <uintptr_t *>calloc(m, sizeof(uintptr_t))
        if (self.pkts == NULL or self.data == NULL or self.length == NULL or self.width == NULL
                or self.height == NULL or self.group == NULL or self.decoded == NULL):
            raise MemoryError()

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.pkts != NULL:
            for i in range(self.n):
                av_packet_free(&self.pkts[i])
        free(self.pkts)
        free(self.data)
        free(self.length)
        free(self.width)
        free(self.height)
        free(self.group)
        free(self.decoded)


cdef enum:
    JPEG_GPU_OK = 0
    JPEG_NO_IMAGE = 1           # no frame header or scan, or bytes where a marker must be
    JPEG_TRUNCATED = 2          # the data ends before the end-of-image marker
    JPEG_NOT_8BIT_HUFFMAN = 3   # lossless, arithmetic-coded, or not 8 bits per sample
    JPEG_RGB = 4                # three components coded as RGB, not YCbCr

_JPEG_CHECK = {JPEG_NO_IMAGE: "no image data", JPEG_TRUNCATED: "truncated",
               JPEG_NOT_8BIT_HUFFMAN: "not 8-bit Huffman", JPEG_RGB: "RGB-coded"}


cdef int _jpeg_gpu_check(const unsigned char *d, size_t n, int *nscans) noexcept nogil:
    """Whether the markers of a JPEG (SOI already seen) say it is one for nvJPEG: a JPEG_* code.

    The number of scans goes to nscans (if not NULL).

    nvJPEG decodes 8-bit Huffman-coded JPEGs (baseline, extended, progressive)
    and converts three components from YCbCr. Not for it, so for the CPU path,
    which decodes them or reports their error as load_image_batch does:
    - an RGB-coded image: three components with an Adobe APP14 segment whose
      transform is not 1 (0 means RGB), or with component ids 'R', 'G', 'B'
      (libjpeg's and FFmpeg's signs of RGB; nvJPEG documents neither);
    - a truncated one (no EOI after the scans), which nvJPEG might decode into
      whatever it makes of the missing data where the CPU path reports an error;
    - anything else than SOF0/1/2 at 8 bits.
    Walks the segments by their lengths and skips each scan's entropy-coded data
    to the next marker; linear in n, no pixel decoding.
    """
    cdef size_t pos = 2, length
    cdef int m, sof = 0, precision = 0, ncomp = 0, transform = -1, scans = 0, i
    cdef unsigned char ids[3]
    cdef const unsigned char *seg
    cdef bint eoi = False
    ids[0] = ids[1] = ids[2] = 0
    while pos + 1 < n:
        if d[pos] != 0xFF:
            return JPEG_NO_IMAGE
        m = d[pos + 1]
        if m == 0xFF:                           # fill byte
            pos += 1
            continue
        if m == 0xD9:                           # EOI
            eoi = True
            break
        if 0xD0 <= m <= 0xD7 or m == 0x01:      # standalone markers
            pos += 2
            continue
        if m == 0x00 or m == 0xD8:
            return JPEG_NO_IMAGE
        if pos + 4 > n:
            break
        length = (<size_t>d[pos + 2] << 8) | d[pos + 3]
        if length < 2:
            return JPEG_NO_IMAGE
        if length > n - pos - 2:
            break
        seg = d + pos + 4
        length -= 2
        if m == 0xEE and length >= 12 and memcmp(seg, b"Adobe", 5) == 0:
            transform = seg[11]                 # "Adobe", version, flags0, flags1, transform
        elif 0xC0 <= m <= 0xCF and m != 0xC4 and m != 0xC8 and m != 0xCC:
            if sof != 0 or length < 6:
                return JPEG_NO_IMAGE
            sof = m
            precision = seg[0]
            ncomp = seg[5]
            for i in range(3):
                if i < ncomp and <size_t>(6 + 3 * i) < length:
                    ids[i] = seg[6 + 3 * i]
        pos += 4 + length
        if m == 0xDA:                           # SOS: skip the entropy-coded data
            scans += 1
            pos = jpeg_skip_entropy(d, n, pos)
    if nscans != NULL:
        nscans[0] = scans
    if sof == 0 or scans == 0:
        return JPEG_NO_IMAGE
    if not eoi:
        return JPEG_TRUNCATED
    if (sof != 0xC0 and sof != 0xC1 and sof != 0xC2) or precision != 8:
        return JPEG_NOT_8BIT_HUFFMAN
    if ncomp == 3 and ((transform >= 0 and transform != 1)
                       or (ids[0] == 0x52 and ids[1] == 0x47 and ids[2] == 0x42)):
        return JPEG_RGB
    return JPEG_GPU_OK


def _jpeg_check(data):
    """Internal, for tests: why a JPEG would not go to nvJPEG by its markers (a str), or None."""
    cdef const unsigned char[::1] view = memoryview(data).cast("B")
    cdef int r
    if len(view) < 4 or view[0] != 0xFF or view[1] != 0xD8:
        raise ValueError("not a JPEG (no SOI)")
    r = _jpeg_gpu_check(&view[0], len(view), NULL)
    return _JPEG_CHECK.get(r)


cdef void _classify(_Decoder dec, _Inputs inp, int64_t max_pixels) noexcept nogil:
    """Pick the decoder of each image (G_CPU for anything nvJPEG should not take).

    Call with dec's device current (enter_device): the nvJPEG handles used
    here belong to it.
    """
    cdef Py_ssize_t i
    cdef const unsigned char *d
    cdef int nc, css, supported, scans = 0
    cdef nvjpegStatus_t st
    cdef int ws[4]
    cdef int hs[4]
    cdef ErrorInfo err
    for i in range(inp.n):
        inp.group[i] = G_CPU
        d = inp.data[i]
        if d == NULL or inp.length[i] < 4 or d[0] != 0xFF or d[1] != 0xD8 or d[2] != 0xFF:
            continue
        # What the CPU path would refuse (no scan, too many progressive scans) it also
        # reports, and what nvJPEG should not decode (see _jpeg_gpu_check) it decodes.
        if inp.length[i] > <size_t>INT_MAX or jpeg_check_structure(d, <int>inp.length[i], &err) < 0:
            continue
        if _jpeg_gpu_check(d, inp.length[i], &scans) != JPEG_GPU_OK:
            continue
        nc = 0
        css = NVJPEG_CSS_UNKNOWN
        ws[0] = hs[0] = 0
        if _nv.GetImageInfo(dec.hy, d, inp.length[i], &nc, &css, ws, hs) != NVJPEG_STATUS_SUCCESS:
            continue
        if (nc != 1 and nc != 3) or css == NVJPEG_CSS_UNKNOWN:
            continue
        # NPP's resize refuses a source narrower or shorter than 2 pixels (NPP_SIZE_ERROR,
        # nppi_geometry_transforms.h): such an image is decoded and scaled on the CPU.
        if ws[0] < 2 or hs[0] < 2 or <int64_t>ws[0] * hs[0] > max_pixels:
            continue
        inp.width[i] = ws[0]
        inp.height[i] = hs[0]
        inp.group[i] = G_HYBRID
        # The hardware backend "supports baseline JPEG bitstream with single scan" (nvjpeg.h,
        # NVJPEG_BACKEND_HARDWARE); nvjpegDecodeBatchedSupported says which images it takes.
        # It needs the headers only: NVIDIA's own hardware-decode sample (CUDALibrarySamples,
        # nvJPEG/nvJPEG-Decoder/nvjpegDecoder.cpp) asks it after nvjpegJpegStreamParseHeader,
        # which reads the frame and scan headers, not the entropy-coded data that
        # nvjpegJpegStreamParse also walks. What a header parse cannot see, the number of
        # scans, _jpeg_gpu_check has counted: only single-scan images are offered.
        if dec.hw != NULL and scans == 1:
            supported = -1      # nvjpegDecodeBatchedSupported sets 0 when the handle can decode it
            if dec.parse_header != NULL:
                st = dec.parse_header(dec.hw, d, inp.length[i], dec.hw_stream)
            else:
                st = _nv.JpegStreamParse(dec.hw, d, inp.length[i], 0, 0, dec.hw_stream)
            if (st == NVJPEG_STATUS_SUCCESS
                    and _nv.DecodeBatchedSupported(dec.hw, dec.hw_stream, &supported) == NVJPEG_STATUS_SUCCESS
                    and supported == 0):
                inp.group[i] = G_HW


# The scratch of one round (the decoded full-size images) is at most SCRATCH_MAX bytes,
# or a quarter of the device's free memory if less (cudaMemGetInfo), but never less than
# SCRATCH_MIN: with PyTorch in the process its caching allocator holds most of the memory,
# "free" is small, and rounds of one image would lose the batched decode (one call, one
# host wait per image; the hybrid backend decodes on the GPU only in batches of more than
# 50). With CUDAConfig.allocator set, the scratch comes from that allocator's cache, which
# cudaMemGetInfo does not count: the free-memory term is skipped. An image larger than the
# limit is decoded alone. A group of images larger in total is decoded in several rounds,
# each resized into the output and its scratch freed before the next.
cdef size_t SCRATCH_MAX = 256 << 20
cdef size_t SCRATCH_MIN = 64 << 20
cdef size_t SCRATCH_ALIGN = 256


def _set_scratch_bounds(size_t floor, size_t ceiling):
    """Internal, for tests: set SCRATCH_MIN and SCRATCH_MAX; returns the old pair."""
    global SCRATCH_MIN, SCRATCH_MAX
    old = (SCRATCH_MIN, SCRATCH_MAX)
    SCRATCH_MIN, SCRATCH_MAX = floor, ceiling
    return old


cdef size_t _round_limit(size_t free_b, bint known) noexcept nogil:
    cdef size_t limit = SCRATCH_MAX
    if known and free_b // 4 < limit:
        limit = free_b // 4
    if limit < SCRATCH_MIN:
        limit = SCRATCH_MIN
    return limit if limit > 0 else 1


cdef inline size_t _aligned(size_t n) noexcept nogil:
    return (n + SCRATCH_ALIGN - 1) & ~(SCRATCH_ALIGN - 1)


def _plan_rounds(sizes, size_t limit):
    """Split images of these decoded sizes (bytes), in order, into rounds.

    Returns a list of lists of positions in ``sizes``. Every image is in one
    round, in order; a round holds consecutive images whose sizes, each rounded
    up to 256 bytes, add up to at most ``limit``, or a single image larger than
    ``limit``. So a round's scratch is at most ``max(limit, largest image)``.
    """
    rounds = []
    cur = []
    cdef size_t total = 0, a
    for k, n in enumerate(sizes):
        a = _aligned(n)
        if cur and total + a > limit:
            rounds.append(cur)
            cur = []
            total = 0
        cur.append(k)
        total += a
    if cur:
        rounds.append(cur)
    return rounds


cdef size_t _scratch_limit(int device, bint own_allocator) except 0:
    """The round limit: SCRATCH_MAX, or a quarter of the device's free memory if that is less
    (not with the caller's allocator), at least SCRATCH_MIN (see above)."""
    cdef const CudaRuntimeApi *rt = cudart()
    cdef size_t free_b = 0, total_b = 0
    cdef bint known = False
    cdef cudaError_t err = cudaSuccess
    cdef DeviceScope scope
    if own_allocator:
        return _round_limit(0, False)
    with nogil:
        if enter_device(rt, device, &scope) == 0:
            err = rt.cudaMemGetInfo(&free_b, &total_b)
            if err != cudaSuccess:
                rt.cudaGetLastError()       # not fatal: the fixed bound applies
            else:
                known = True
        leave_device(rt, &scope)
    check_scope(&scope)
    return _round_limit(free_b, known)


cdef CUDABuffer _decode_round(_Decoder dec, _Inputs inp, int g, list idx, int out_fmt, bint planar,
                              object cfg, list failures):
    """Decode images idx (all of group g) at full size with one nvjpegDecodeBatched call.

    Returns the scratch buffer holding them (inp.decoded points into it). If
    the call fails (one corrupt image fails the whole call), the culprits are
    found by halves (each failed range decoded again as two batches). Those that still fail move on: from G_HW to G_HYBRID (decode
    G_HW first), from G_HYBRID to G_CPU; the failures are appended to
    failures, for diagnostics. When it returns, the hardware backend's writes
    have completed (see below); the GPU-hybrid backend's are ordered on the
    stream.
    """
    cdef const CudaRuntimeApi *rt = cudart()
    cdef Py_ssize_t i, j, k = len(idx)
    cdef size_t total = 0, size, plane
    cdef CUDABuffer scratch
    cdef nvjpegImage_t *dest = NULL
    cdef const unsigned char **data = NULL
    cdef size_t *length = NULL
    cdef int *status = NULL
    cdef Py_ssize_t *pending = NULL     # the failed ranges still to split: (lo, hi) pairs
    cdef Py_ssize_t top, lo, hi, mid, a, b, half
    cdef int one
    cdef bint stop
    cdef nvjpegHandle_t handle = dec.hw if g == G_HW else dec.hy
    cdef nvjpegJpegState_t state = dec.hw_state if g == G_HW else dec.hy_state
    cdef cudaEvent_t done = dec.hw_done if g == G_HW else dec.hy_done
    cdef bint used = dec.hw_used if g == G_HW else dec.hy_used
    cdef bint hw = g == G_HW
    cdef bint drain, unfinished = False
    cdef uintptr_t stream = cfg.stream
    cdef uintptr_t base
    cdef nvjpegStatus_t st = NVJPEG_STATUS_SUCCESS
    cdef cudaError_t err = cudaSuccess, rec
    cdef const char *op = "cudaEventSynchronize"
    cdef DeviceScope scope
    cdef int c
    if dec.broken:
        raise CUDAError(f"the nvJPEG decoder of cuda:{dec.device} is unusable: an earlier CUDA "
                        "failure left its state possibly in use", op="cudaEventRecord")
    offsets = []
    for i in idx:
        offsets.append(total)
        size = <size_t>inp.width[i] * <size_t>inp.height[i] * 3
        total += _aligned(size)                         # keep every image 256-byte aligned
    scratch = alloc_cuda_buffer((total,), 1, None, cfg)
    # The hardware backend does not keep the documented stream order. nvjpeg.h says of
    # nvjpegDecodeBatched's stream: "CUDA stream where to submit all GPU work", so work
    # queued on the stream before the call would run first and work queued after it
    # would see its results. On H100 with nvJPEG 12.3 to 13.2 the hardware backend writes
    # its destinations when it is called, while work queued before it still runs
    # (torchcodec PR #1634, torchvision PR #9606); a cudaStreamWaitEvent does not order
    # it, a host wait does.
    # 1. Before the call: memory from a stream-ordered allocator (cudaMallocAsync, a
    #    caching allocator such as PyTorch's) is only free in the stream's order from
    #    the allocation on: it may be a block just freed on this stream that queued
    #    kernels still read (the resizes of this call's previous round, for one), and
    #    the allocator may have added waits on other streams' work before it. So the
    #    host waits until everything enqueued on the stream so far has run. Memory from
    #    cudaMalloc needs no wait: nothing enqueued can still use it.
    # 2. After the call: since the backend does not keep the order at its start, the
    #    order at its end (NPP reading the scratch, cudaFreeAsync giving it back to the
    #    pool, the state's event) is not taken from the stream either. The host waits
    #    for the call's work before anything reads or frees the scratch:
    #    cudaEventSynchronize on the state's event recorded after the call, which
    #    "waits until the completion of all work currently captured in event"
    #    (cuda_runtime_api.h), i.e. all the GPU work the call submitted to the stream,
    #    which is the most the documentation lets anyone wait for. The event is made
    #    with cudaEventBlockingSync, so the thread sleeps.
    drain = hw and scratch.free_kind != FREE_CUDA
    dest = <nvjpegImage_t *>calloc(k, sizeof(nvjpegImage_t))
    data = <const unsigned char **>calloc(k, sizeof(unsigned char *))
    length = <size_t *>calloc(k, sizeof(size_t))
    status = <int *>calloc(k, sizeof(int))
    pending = <Py_ssize_t *>calloc(2 * k, sizeof(Py_ssize_t))   # the ranges are disjoint: at most k
    try:
        if dest == NULL or data == NULL or length == NULL or status == NULL or pending == NULL:
            raise MemoryError()
        for j in range(k):
            i = idx[j]
            base = scratch.ptr + <size_t>offsets[j]
            inp.decoded[i] = base
            data[j] = inp.data[i]
            length[j] = inp.length[i]
            if planar:
                plane = <size_t>inp.width[i] * <size_t>inp.height[i]
                for c in range(3):
                    dest[j].channel[c] = <unsigned char *>(base + c * plane)
                    dest[j].pitch[c] = inp.width[i]
            else:
                dest[j].channel[0] = <unsigned char *>base
                dest[j].pitch[0] = <size_t>inp.width[i] * 3
        with nogil:
            if enter_device(rt, dec.device, &scope) == 0:
                # The state's page-locked staging buffers may still be read by the last
                # decode's copies, on this stream or another: wait before reusing them
                # (as NVIDIA's samples and torchvision do). If that wait fails, whether
                # they are idle is unknown: nothing is decoded.
                if used:
                    err = rt.cudaEventSynchronize(done)
                    if err != cudaSuccess:
                        rt.cudaGetLastError()
                if err == cudaSuccess and drain:
                    op = "cudaStreamSynchronize"
                    err = rt.cudaStreamSynchronize(<cudaStream_t>stream)
                    if err != cudaSuccess:
                        rt.cudaGetLastError()
                if err == cudaSuccess:
                    # nvJPEG and NPP carry their own (static) CUDA runtime: their failures
                    # leave nothing in this runtime's last error.
                    unfinished = hw
                    st = _nv.DecodeBatchedInitialize(handle, state, <int>k, 1, out_fmt)
                    if st == NVJPEG_STATUS_SUCCESS:
                        st = _nv.DecodeBatched(handle, state, data, length, dest, <cudaStream_t>stream)
                    for j in range(k):
                        status[j] = st
                    if st != NVJPEG_STATUS_SUCCESS and k > 1:
                        # Find the culprits by halves: a failed range is split and each
                        # half decoded again as one batch, so one corrupt image among k
                        # costs about 2 * log2(k) more calls, not k. An image keeps the
                        # call's status until a batch holding it succeeds, or it fails
                        # alone (its own status). Before each call: after a failed batch
                        # the state must be initialized again, and no batched decode may be
                        # running when it is (nvJPEG, nvjpegDecodeBatchedInitialize); the
                        # synchronization also keeps the hardware backend's writes after
                        # the stream's queued work (see drain).
                        pending[0] = 0
                        pending[1] = k
                        top = 1
                        stop = False
                        while top > 0 and not stop:
                            top -= 1
                            lo = pending[2 * top]
                            hi = pending[2 * top + 1]
                            mid = lo + (hi - lo) // 2
                            for half in range(2):
                                a = lo if half == 0 else mid
                                b = mid if half == 0 else hi
                                op = "cudaStreamSynchronize"
                                err = rt.cudaStreamSynchronize(<cudaStream_t>stream)
                                if err != cudaSuccess:      # raised below
                                    rt.cudaGetLastError()
                                    stop = True
                                    break
                                one = _nv.DecodeBatchedInitialize(handle, state, <int>(b - a), 1, out_fmt)
                                if one == NVJPEG_STATUS_SUCCESS:
                                    one = _nv.DecodeBatched(handle, state, &data[a], &length[a],
                                                            &dest[a], <cudaStream_t>stream)
                                if one == NVJPEG_STATUS_SUCCESS:
                                    for j in range(a, b):
                                        status[j] = NVJPEG_STATUS_SUCCESS
                                elif b - a == 1:
                                    status[a] = one
                                else:
                                    pending[2 * top] = a
                                    pending[2 * top + 1] = b
                                    top += 1
                    # Mark where this use of the state ends; for the hardware backend, wait
                    # for it here (2. above). If no event can be recorded, wait for the
                    # stream instead; if even that fails, the state may still be in use and
                    # this decoder is not used again.
                    rec = rt.cudaEventRecord(done, <cudaStream_t>stream)
                    if rec == cudaSuccess:
                        used = True
                        if hw:
                            rec = rt.cudaEventSynchronize(done)
                            if rec == cudaSuccess:
                                unfinished = False
                            else:
                                rt.cudaGetLastError()
                                if err == cudaSuccess:
                                    err = rec
                                    op = "cudaEventSynchronize"
                    else:
                        rt.cudaGetLastError()
                        used = False
                        rec = rt.cudaStreamSynchronize(<cudaStream_t>stream)
                        if rec == cudaSuccess:
                            unfinished = False
                        else:
                            rt.cudaGetLastError()
                            dec.broken = True
                            if err == cudaSuccess:
                                err = rec
                                op = "cudaStreamSynchronize"
            leave_device(rt, &scope)
        if g == G_HW:
            dec.hw_used = used
        else:
            dec.hy_used = used
        if unfinished:
            # The hardware backend's writes may still be running: this scratch is never
            # handed back (leaked rather than reused under a writer), nor is the state.
            dec.broken = True
            scratch.free_kind = FREE_NONE
        check_scope(&scope, err, op.decode(), f"nvJPEG on cuda:{dec.device}")
        for j in range(k):
            if status[j] != NVJPEG_STATUS_SUCCESS:
                i = idx[j]
                failures.append((i, f"nvjpegDecodeBatched ({'hardware' if hw else 'GPU hybrid'}) "
                                    f"failed with {_status_name(status[j])}; "
                                    f"{'trying the GPU-hybrid backend' if hw else 'taking the CPU path'}"))
                # An image the hardware backend fails may still decode with the hybrid
                # one, which runs next.
                inp.group[i] = G_HYBRID if hw else G_CPU
                inp.decoded[i] = 0
    except BaseException:
        scratch.release()       # in the stream's order, after whatever was enqueued
        raise
    finally:
        free(dest)
        free(data)
        free(length)
        free(status)
        free(pending)
    return scratch


# ---------------------------------------------------------------------------
# Loading

def _check_args(device_config, width, height, pix_fmt, scale_mode, strict):
    if not isinstance(device_config, CUDAConfig):
        raise TypeError(f"device_config must be a CUDAConfig, not {type(device_config).__name__}")
    for name, v in (("width", width), ("height", height)):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= 65535:
            raise ValueError(f"{name} must be an int in 1..65535, got {v!r}")
    if pix_fmt not in PIX_FMTS:
        raise ValueError(f"pix_fmt must be one of {PIX_FMTS} for the nvJPEG path, got {pix_fmt!r}")
    if scale_mode not in SCALE_MODES:
        raise ValueError(f"scale_mode must be 'pad' or None for the nvJPEG path, got {scale_mode!r}")


def _renumbered(e, int k, int i):
    """The CPU path names bytes inputs by their index in the list it was given; use ours."""
    old, new = f"bytes #{k}", f"bytes #{i}"
    if k == i or getattr(e, "source", None) != old:
        return e
    msg = str(e).replace(f" {old}:", f" {new}:", 1)
    try:
        out = type(e)(msg, source=new, stage=e.stage)
    except TypeError:
        return e
    for attr in ("errno", "strerror"):
        if getattr(e, attr, None) is not None:
            setattr(out, attr, getattr(e, attr))
    out.__cause__ = e.__cause__
    return out


def load_image_batch_nvjpeg(
    srcs,
    *,
    device_config,
    width,
    height,
    pix_fmt="rgb24",
    scale_mode="pad",
    demux_config=None,
    decode_config=None,
    strict=True,
):
    """Decode a batch of JPEGs on the GPU with nvJPEG and resize it there.

    Args:
        srcs: File paths (str, os.PathLike) or bytes-like objects. Inputs that
            are not JPEGs nvJPEG can decode (PNG, CMYK JPEG, ...) take the CPU
            path and are copied in.
        device_config: A CUDAConfig: the device, the stream the work is
            enqueued on, and the allocator of the device memory.
        width, height: The size of every image in the batch.
        pix_fmt: ``"rgb24"`` or ``"bgr24"`` (N, H, W, 3), or ``"rgbp"``,
            planar RGB (N, 3, H, W). All uint8.
        scale_mode: ``"pad"`` (default, as the CPU loaders): fit inside
            width x height keeping the aspect ratio, centred on black.
            ``None``: stretch to width x height.
        demux_config: DemuxConfig; its ``max_file_size`` applies. With a
            ``format`` set, every input takes the CPU path.
        decode_config: DecodeConfig; its ``max_pixels`` applies. With a
            ``decoder`` or ``decoder_options`` set, every input takes the CPU path.
        strict: As in load_image_batch: if True any failure raises
            BatchLoadError naming every failed input; if False the batch holds
            the images that loaded, in input order, with ``indices`` and
            ``errors``.

    Returns:
        CUDABuffer on ``device_config``'s device, valid in the order of its stream.

    Raises:
        CUDAUnavailableError: no CUDA device, or libcudart / libnvjpeg /
            libnppc / libnppig cannot be loaded (the message names it).
    """
    _check_args(device_config, width, height, pix_fmt, scale_mode, strict)
    if isinstance(srcs, (str, bytes, bytearray, memoryview)) or not hasattr(srcs, "__len__"):
        raise TypeError("srcs must be a list of paths or bytes-like objects")
    srcs = list(srcs)
    sources = [make_source(s, f"bytes #{i}") for i, s in enumerate(srcs)]
    check_device(device_config)
    _load_libraries()
    dec = _decoder(device_config.device_index)
    return _load(dec, srcs, sources, device_config, width, height, pix_fmt, scale_mode,
                 demux_config, decode_config, strict)


async def async_load_image_batch_nvjpeg(
    srcs,
    *,
    device_config,
    width,
    height,
    pix_fmt="rgb24",
    scale_mode="pad",
    demux_config=None,
    decode_config=None,
    strict=True,
):
    """:func:`load_image_batch_nvjpeg` on the running loop's executor."""
    _check_args(device_config, width, height, pix_fmt, scale_mode, strict)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(
        load_image_batch_nvjpeg, srcs, device_config=device_config, width=width, height=height,
        pix_fmt=pix_fmt, scale_mode=scale_mode, demux_config=demux_config,
        decode_config=decode_config, strict=strict))


cdef object _load(_Decoder dec, list srcs, list sources, object cfg, int width, int height,
                  str pix_fmt, object scale_mode, object demux_config, object decode_config,
                  bint strict):
    cdef const CudaRuntimeApi *rt = cudart()
    cdef Py_ssize_t n = len(sources), i
    cdef _Inputs inp = _Inputs(n)
    cdef Source s
    cdef ErrorInfo einfo
    cdef AVPacket *pkt
    cdef int ret, g
    cdef DeviceScope scope
    cdef CUDABuffer out, buf
    cdef HostAllocator pinned
    cdef NppStreamContext ctx
    cdef bint planar = pix_fmt == "rgbp"
    cdef bint pad = scale_mode == "pad"
    cdef int out_fmt = (NVJPEG_OUTPUT_RGB if planar else
                        NVJPEG_OUTPUT_BGRI if pix_fmt == "bgr24" else NVJPEG_OUTPUT_RGBI)
    cdef int64_t max_file_size = (demux_config.max_file_size if demux_config is not None
                                  else DEFAULT_MAX_FILE_SIZE)
    cdef int64_t max_pixels = (decode_config.max_pixels if decode_config is not None
                               else DEFAULT_MAX_PIXELS)
    cdef int device = cfg.device_index
    cdef uintptr_t stream = cfg.stream
    cdef bint attempted = False
    cdef size_t limit
    ffmpeg_only = ((demux_config is not None and demux_config.format is not None) or
                   (decode_config is not None and (decode_config.decoder is not None
                                                   or decode_config.decoder_options)))
    inp.sources = sources

    # 1. Read the inputs.
    if not ffmpeg_only:
        for i in range(n):
            s = sources[i]
            if s.ref.path == NULL:
                inp.data[i] = s.ref.data
                inp.length[i] = s.ref.size
                continue
            pkt = av_packet_alloc()
            if pkt == NULL:
                raise MemoryError()
            inp.pkts[i] = pkt
            with nogil:
                ret = read_source(&s.ref, max_file_size, pkt, &einfo)
            if ret >= 0:
                inp.data[i] = pkt.data
                inp.length[i] = pkt.size

    # The output has a row per input, in input order (the rows of inputs that fail
    # are dropped at the end): each GPU round is resized into it before the next.
    if planar:
        out = alloc_cuda_buffer((n, 3, height, width), 1, pix_fmt, cfg)
    else:
        out = alloc_cuda_buffer((n, height, width, 3), 1, pix_fmt, cfg)
    if n:
        _prepare_output(out, pad, &ctx)

    # 2. Sniff the JPEGs and decode those for nvJPEG on the GPU, in rounds of bounded
    # scratch (_plan_rounds), each resized by NPP into its rows.
    failures = []
    npp_failed = []
    if not ffmpeg_only and n:
        with dec.lock:
            with nogil:
                if enter_device(rt, dec.device, &scope) == 0:
                    _classify(dec, inp, max_pixels)
                leave_device(rt, &scope)
            check_scope(&scope)
            for i in range(n):
                if inp.group[i] != G_CPU:
                    attempted = True
                    break
            if attempted:
                try:
                    limit = _scratch_limit(device, cfg.allocator is not None)
                    # The hardware group first: the images it fails move to the hybrid group.
                    for g in (G_HW, G_HYBRID):
                        idx = [i for i in range(n) if inp.group[i] == g]
                        rounds = _plan_rounds([<size_t>inp.width[i] * <size_t>inp.height[i] * 3
                                               for i in idx], limit)
                        if idx:
                            _log.debug("nvJPEG (%s): %d image(s) in %d round(s) of at most %d bytes",
                                       "hardware" if g == G_HW else "GPU hybrid", len(idx),
                                       len(rounds), limit)
                        for r in rounds:
                            ids = [idx[k] for k in r]
                            buf = _decode_round(dec, inp, g, ids, out_fmt, planar, cfg, failures)
                            try:
                                done = [i for i in ids if inp.group[i] == g]
                                npp_failed += _resize_into(out, inp, done, width, height,
                                                           planar, pad, &ctx)
                            finally:
                                # In the stream's order, after the resizes that read it.
                                buf.release()
                except BaseException as e:
                    keep_after_error(device, stream, inp, e)
                    raise
                # nvJPEG may read the encoded bytes until its work on the stream is done.
                keep_until_done(device, stream, inp)

    for i, why in failures:
        _log.debug("nvJPEG could not decode input %d: %s", i, why)
    for i, st in npp_failed:
        # NPP refused an image (its parameters are checked before; this is not expected):
        # that image alone takes the CPU path, into its row.
        _log.warning("nppiResize_8u_%s_Ctx failed with NppStatus %d for input %d (%dx%d); "
                     "decoding it on the CPU", "P3R" if planar else "C3R", st, i,
                     inp.width[i], inp.height[i])
        inp.group[i] = G_CPU

    # 3. The CPU path for everything else, copied into its rows.
    errors = {}
    cpu_idx = [i for i in range(n) if inp.group[i] == G_CPU]
    if cpu_idx:
        desc = get_video_filter_desc(scale_width=width, scale_height=height,
                                     scale_mode=scale_mode,
                                     pix_fmt="bgr24" if pix_fmt == "bgr24" else "rgb24")
        pinned = host_allocator(cfg)
        host, rows, errors = _cpu_decode(srcs, cpu_idx, demux_config, decode_config, desc,
                                         pinned, planar)
        errors = dict(sorted(errors.items()))
        if strict and errors:
            raise BatchLoadError(errors, n) from next(iter(errors.values()))
        if rows:
            _upload_rows(out, host, list(rows.items()))
    if errors:
        keep = [i for i in range(n) if i not in errors]
        out = _keep_rows(out, keep, cfg)
        out.indices = tuple(keep)
    else:
        out.indices = tuple(range(n))
    out.errors = errors
    return out


cdef tuple _cpu_decode(list srcs, list idx, object demux_config, object decode_config,
                       object desc, HostAllocator pinned, bint planar):
    """The CPU path for inputs idx: (host rows, {input index: host row}, {input index: error}).

    The rows are in page-locked memory (the copies to the device are DMA,
    asynchronous); planar rows are transposed into a page-locked block too,
    so that the copies stay asynchronous (from pageable memory the runtime
    stages them and the call may wait).
    """
    cdef CPUBuffer cpu_buf, host
    cdef Py_ssize_t r
    job = BatchJob([srcs[i] for i in idx], demux_config, decode_config, desc, pinned)
    job.run_worker()
    cpu_buf = job.finish(False)
    errors = {}
    for k, e in cpu_buf.errors.items():
        errors[idx[k]] = _renumbered(e, k, idx[k])
    rows = {}
    for r, k in enumerate(cpu_buf.indices):
        rows[idx[k]] = r
    host = cpu_buf
    if planar and rows:
        import numpy as np

        nrows, h, w = cpu_buf.shape[0], cpu_buf.shape[1], cpu_buf.shape[2]
        try:
            host = CPUBuffer.allocate((nrows, 3, h, w), 1, "rgbp", pinned)
        except MemoryError:
            host = CPUBuffer.allocate((nrows, 3, h, w), 1, "rgbp")   # pageable, still correct
        np.asarray(host)[...] = np.asarray(cpu_buf).transpose(0, 3, 1, 2)
    return host, rows, errors


cdef int _prepare_output(CUDABuffer out, bint pad, NppStreamContext *ctx) except -1:
    """Clear the output (black borders, with pad) and fill NPP's context for its stream."""
    cdef const CudaRuntimeApi *rt = cudart()
    cdef uintptr_t stream = out._stream
    cdef int device = out._device, smem = 0
    cdef unsigned int flags = 0
    cdef cudaError_t err = cudaSuccess
    cdef const char *op = "cudaMemsetAsync"
    cdef DeviceScope scope
    with nogil:
        if enter_device(rt, device, &scope) == 0:
            if pad:
                err = rt.cudaMemsetAsync(<void *>out.ptr, 0, out._nbytes, <cudaStream_t>stream)
            # NppStreamContext: the stream and the device's properties (nppdefs.h).
            ctx.hStream = <cudaStream_t>stream
            ctx.nCudaDeviceId = device
            ctx.nMultiProcessorCount = ctx.nMaxThreadsPerMultiProcessor = ctx.nMaxThreadsPerBlock = 0
            ctx.nCudaDevAttrComputeCapabilityMajor = ctx.nCudaDevAttrComputeCapabilityMinor = 0
            ctx.nSharedMemPerBlock = 0
            if err == cudaSuccess:
                op = "cudaDeviceGetAttribute"
                err = rt.cudaDeviceGetAttribute(&ctx.nMultiProcessorCount, cudaDevAttrMultiProcessorCount,
                                                device)
            if err == cudaSuccess:
                err = rt.cudaDeviceGetAttribute(&ctx.nMaxThreadsPerMultiProcessor,
                                                cudaDevAttrMaxThreadsPerMultiProcessor, device)
            if err == cudaSuccess:
                err = rt.cudaDeviceGetAttribute(&ctx.nMaxThreadsPerBlock, cudaDevAttrMaxThreadsPerBlock,
                                                device)
            if err == cudaSuccess:
                err = rt.cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlock, device)
                ctx.nSharedMemPerBlock = <size_t>smem
            if err == cudaSuccess:
                err = rt.cudaDeviceGetAttribute(&ctx.nCudaDevAttrComputeCapabilityMajor,
                                                cudaDevAttrComputeCapabilityMajor, device)
            if err == cudaSuccess:
                err = rt.cudaDeviceGetAttribute(&ctx.nCudaDevAttrComputeCapabilityMinor,
                                                cudaDevAttrComputeCapabilityMinor, device)
            if err == cudaSuccess:
                op = "cudaStreamGetFlags"
                err = rt.cudaStreamGetFlags(<cudaStream_t>stream, &flags)
            ctx.nStreamFlags = flags
            ctx.nReserved0 = 0
        leave_device(rt, &scope)
    check_scope(&scope, err, op.decode(), f"cuda:{device}")
    return 0


cdef list _resize_into(CUDABuffer out, _Inputs inp, list images, int width, int height,
                       bint planar, bint pad, const NppStreamContext *ctx):
    """Resize the GPU-decoded input images (indices) into their rows (the output has a row
    per input).

    Returns [(input index, NppStatus)] of the images NPP refused (their rows
    are left for the caller to fill); raises CUDAError for a failed CUDA call.
    """
    cdef const CudaRuntimeApi *rt = cudart()
    cdef Py_ssize_t m = len(images), j
    cdef Py_ssize_t *img
    cdef NppStatus *npp_st
    cdef size_t row_bytes = <size_t>width * height * 3, plane_out = <size_t>width * height, plane_in
    cdef uintptr_t dst, src
    cdef int device = out._device, w, h, interp, c
    cdef DeviceScope scope
    cdef NppStatus st = NPP_NO_ERROR
    cdef ScaleSpec spec
    cdef Geometry geo
    cdef ErrorInfo einfo
    cdef const unsigned char *srcp[3]
    cdef unsigned char *dstp[3]
    cdef NppiSize src_size, dst_size
    cdef NppiRect src_roi, dst_roi
    if m == 0:
        return []
    img = <Py_ssize_t *>calloc(m, sizeof(Py_ssize_t))
    npp_st = <NppStatus *>calloc(m, sizeof(NppStatus))
    if img == NULL or npp_st == NULL:
        free(img)
        free(npp_st)
        raise MemoryError()
    for j in range(m):
        img[j] = images[j]
    spec.scale_w = width
    spec.scale_h = height
    spec.mode = MODE_PAD if pad else MODE_STRETCH
    spec.crop_w = -1
    spec.crop_h = -1
    spec.sws_flags = 0
    spec.cubic = False          # not read by compute_geometry; set so nothing is left undefined
    spec.out_fmt = AV_PIX_FMT_NONE
    with nogil:
        if enter_device(rt, device, &scope) == 0:
            for j in range(m):
                w = inp.width[img[j]]
                h = inp.height[img[j]]
                src = inp.decoded[img[j]]
                compute_geometry(&spec, w, h, &geo, &einfo)   # cannot fail: 2 <= size <= 65535
                if geo.sw == w and geo.sh == h:
                    interp = NPPI_INTER_NN                    # same size: an exact copy
                elif geo.sw < w and geo.sh < h:
                    interp = NPPI_INTER_SUPER                 # shrinking: area average
                else:
                    interp = NPPI_INTER_CUBIC
                src_size.width, src_size.height = w, h
                src_roi.x, src_roi.y, src_roi.width, src_roi.height = 0, 0, w, h
                dst_size.width, dst_size.height = geo.sw, geo.sh
                dst_roi.x, dst_roi.y, dst_roi.width, dst_roi.height = 0, 0, geo.sw, geo.sh
                # The destination image is the scaled image's window in the row.
                dst = out.ptr + <size_t>img[j] * row_bytes
                if planar:
                    plane_in = <size_t>w * h
                    for c in range(3):
                        srcp[c] = <const unsigned char *>(src + c * plane_in)
                        dstp[c] = <unsigned char *>(dst + c * plane_out
                                                    + <size_t>geo.oy * width + geo.ox)
                    st = _npp.Resize_8u_P3R_Ctx(srcp, w, src_size, src_roi, dstp, width,
                                                dst_size, dst_roi, interp, ctx[0])
                else:
                    st = _npp.Resize_8u_C3R_Ctx(
                        <const unsigned char *>src, w * 3, src_size, src_roi,
                        <unsigned char *>(dst + (<size_t>geo.oy * width + geo.ox) * 3), width * 3,
                        dst_size, dst_roi, interp, ctx[0])
                npp_st[j] = st      # < 0: an error, > 0: a warning (the image is resized)
        leave_device(rt, &scope)
    failed = [(img[j], npp_st[j]) for j in range(m) if npp_st[j] < 0]
    free(img)
    free(npp_st)
    check_scope(&scope, cudaSuccess, None, f"cuda:{device}")
    return failed


cdef CUDABuffer _keep_rows(CUDABuffer out, list keep, object cfg):
    """A new buffer holding rows `keep` of out, copied on out's stream (device to device)."""
    cdef const CudaRuntimeApi *rt = cudart()
    cdef Py_ssize_t m = len(keep), j
    cdef size_t row_bytes = out._nbytes // <size_t>out._shape[0]
    cdef CUDABuffer dst = alloc_cuda_buffer((m,) + out.shape[1:], 1, out.pix_fmt, cfg)
    cdef Py_ssize_t *src_row = <Py_ssize_t *>calloc(m if m else 1, sizeof(Py_ssize_t))
    cdef uintptr_t stream = out._stream
    cdef DeviceScope scope
    cdef cudaError_t err = cudaSuccess
    if src_row == NULL:
        raise MemoryError()
    for j in range(m):
        src_row[j] = keep[j]
    with nogil:
        if enter_device(rt, out._device, &scope) == 0:
            j = 0
            while err == cudaSuccess and j < m:
                err = rt.cudaMemcpyAsync(<void *>(dst.ptr + <size_t>j * row_bytes),
                                         <const void *>(out.ptr + <size_t>src_row[j] * row_bytes),
                                         row_bytes, cudaMemcpyDeviceToDevice, <cudaStream_t>stream)
                j += 1
        leave_device(rt, &scope)
    free(src_row)
    check_scope(&scope, err, "cudaMemcpyAsync", f"keeping {m} rows on cuda:{out._device}")
    return dst     # out is freed by its allocator once its last reference goes, in its order


cdef int _upload_rows(CUDABuffer out, CPUBuffer host, list rows) except -1:
    """Copy rows (out_row, host_row) of the host batch into out, keeping host alive until done."""
    cdef const CudaRuntimeApi *rt = cudart()
    cdef Py_ssize_t m = len(rows), j
    cdef size_t row_bytes = out._nbytes // <size_t>out._shape[0]
    cdef uintptr_t base = <uintptr_t>host.data
    cdef uintptr_t stream = out._stream
    cdef DeviceScope scope
    cdef cudaError_t err = cudaSuccess
    if host.row_bytes() != row_bytes:
        raise AssertionError("the host rows do not match the output rows")
    cdef Py_ssize_t *dst_row = <Py_ssize_t *>calloc(m if m else 1, sizeof(Py_ssize_t))
    cdef Py_ssize_t *src_row = <Py_ssize_t *>calloc(m if m else 1, sizeof(Py_ssize_t))
    if dst_row == NULL or src_row == NULL:
        free(dst_row)
        free(src_row)
        raise MemoryError()
    for j in range(m):
        dst_row[j], src_row[j] = rows[j]
    with nogil:
        if enter_device(rt, out._device, &scope) == 0:
            j = 0
            while err == cudaSuccess and j < m:
                err = rt.cudaMemcpyAsync(<void *>(out.ptr + <size_t>dst_row[j] * row_bytes),
                                         <const void *>(base + <size_t>src_row[j] * row_bytes),
                                         row_bytes, cudaMemcpyHostToDevice, <cudaStream_t>stream)
                j += 1
        leave_device(rt, &scope)
    free(dst_row)
    free(src_row)
    # Even after a failure, copies already enqueued may still read host: it is kept
    # alive either way, and the copy's own error is the one raised.
    check_then_keep(&scope, err, "cudaMemcpyAsync", f"rows decoded on the CPU to cuda:{out._device}",
                    out._device, stream, host)
    return 0
