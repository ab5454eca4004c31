# cython: language_level=3
"""nvJPEG's batched decode of one call's JPEGs: per-device decoders, the choice of what the
GPU decodes, and rounds of bounded scratch.

Where the GPU has a hardware JPEG decoder (A100, A30, H100, ...), the
single-scan images nvjpegDecodeBatchedSupported accepts (asked after a
header-only parse) are decoded by the NVJPEG_BACKEND_HARDWARE handle; the rest
by NVJPEG_BACKEND_GPU_HYBRID. Each group is decoded in rounds whose scratch
(the full-size images, already converted to interleaved RGB/BGR or planar RGB)
stays under a bound (plan_rounds); each round is one nvjpegDecodeBatched call.
If a call fails (one corrupt JPEG fails the whole call), the culprits are
found by halves; those that still fail on the hardware backend join the hybrid
group (decoded after it), those that fail there take the CPU path. nvJPEG's
handles and states may only be used with the device that was current when
they were made (nvJPEG, "Multi-GPU support"): every step runs inside
enter_device / leave_device.
"""

import threading

from libc.limits cimport INT_MAX
from libc.stdint cimport int64_t, uintptr_t
from libc.stdlib cimport calloc, free

from spdl.io.includes.libavcodec cimport AVPacket, av_packet_free

from spdl.io._config import CUDAConfig
from spdl.io._cuda_buffer cimport FREE_CUDA, FREE_NONE, CUDABuffer, alloc_cuda_buffer
from spdl.io._cuda_device cimport DeviceScope, check_scope, enter_device, leave_device, mem_get_info
from spdl.io._cuda_device import check_device
from spdl.io._cuda_runtime cimport CudaRuntimeApi, cuda_error, cudart
from spdl.io._errors import CUDAError
from spdl.io._nvjpeg_lib cimport NvjpegApi, nvjpeg_api
from spdl.io._nvjpeg_lib import load_libraries, status_name
from spdl.io._status cimport Status
from spdl.io._structure cimport JpegMarkers, jpeg_check_markers, jpeg_walk_markers
from spdl.io.includes.cuda_runtime cimport *
from spdl.io.includes.nvjpeg cimport *

cdef const NvjpegApi *_nv = nvjpeg_api()    # filled by load_libraries() before any use


# ---------------------------------------------------------------------------
# One nvJPEG decoder per device

cdef class _Decoder:
    """nvJPEG handles and states for one device; used under `lock`, kept for the process."""

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
                        f"{status_name(st_hy)}", op=op.decode(), code=st_hy)
    d.hardware = "yes" if d.hw != NULL else f"no ({status_name(st_hw)})"
    return d


cdef _Decoder decoder(int device):
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
    load_libraries()
    cdef _Decoder d = decoder(device_index)
    return {"hardware": d.hardware, "hybrid": "yes",
            "strict": "yes" if d.hy_strict and (d.hw == NULL or d.hw_strict) else "no"}


# ---------------------------------------------------------------------------
# The encoded inputs of one call

cdef class _Inputs:
    """The encoded images of one call; kept alive until the GPU has read them."""

    def __cinit__(self, Py_ssize_t n):
        cdef size_t m = n if n > 0 else 1
        self.n = n
        self.data = <const unsigned char **>calloc(m, sizeof(unsigned char *))
        self.length = <size_t *>calloc(m, sizeof(size_t))
        self.width = <int *>calloc(m, sizeof(int))
        self.height = <int *>calloc(m, sizeof(int))
        self.group = <int *>calloc(m, sizeof(int))
        self.decoded = <uintptr_t *>calloc(m, sizeof(uintptr_t))
        self.pkts = <AVPacket **>calloc(m, sizeof(AVPacket *))
        if (self.data == NULL or self.length == NULL or self.width == NULL
                or self.height == NULL or self.group == NULL or self.decoded == NULL
                or self.pkts == NULL):
            raise MemoryError()

    def __dealloc__(self):
        free(self.data)
        free(self.length)
        free(self.width)
        free(self.height)
        free(self.group)
        free(self.decoded)
        if self.pkts != NULL:
            for i in range(self.n):
                av_packet_free(&self.pkts[i])
            free(self.pkts)


cdef int gpu_check(const JpegMarkers *m, int *nscans) noexcept nogil:
    """Whether a JPEG's markers (jpeg_walk_markers) say it is one for nvJPEG: a JPEG_* code.

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
    """
    # A segment the data ends inside does not count: its scan is not there.
    cdef int scans = m.scans - (1 if m.cut_marker == 0xDA else 0)
    if nscans != NULL:
        nscans[0] = scans
    if m.bad or m.sof == 0 or m.sof_cut or scans == 0:
        return JPEG_NO_IMAGE
    if not m.eoi:
        return JPEG_TRUNCATED
    if (m.sof != 0xC0 and m.sof != 0xC1 and m.sof != 0xC2) or m.precision != 8:
        return JPEG_NOT_8BIT_HUFFMAN
    if m.ncomp == 3 and ((m.transform >= 0 and m.transform != 1)
                         or (m.ids[0] == 0x52 and m.ids[1] == 0x47 and m.ids[2] == 0x42)):
        return JPEG_RGB
    return JPEG_GPU_OK


cdef void classify(_Decoder dec, _Inputs inp, int64_t max_pixels) noexcept nogil:
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
    cdef Status err
    cdef JpegMarkers m
    for i in range(inp.n):
        inp.group[i] = G_CPU
        d = inp.data[i]
        if d == NULL or inp.length[i] < 4 or d[0] != 0xFF or d[1] != 0xD8 or d[2] != 0xFF:
            continue
        # What the CPU path would refuse (no scan, too many progressive scans) it also
        # reports, and what nvJPEG should not decode (see gpu_check) it decodes: one walk
        # of the markers answers both.
        if inp.length[i] > <size_t>INT_MAX:
            continue
        jpeg_walk_markers(d, inp.length[i], &m)
        # (an EXIF-oriented image is turned on the CPU path, so both paths agree)
        if (jpeg_check_markers(&m, &err) < 0 or gpu_check(&m, &scans) != JPEG_GPU_OK
                or m.orientation != 1):
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
        # scans, gpu_check has counted: only single-scan images are offered.
        if dec.hw != NULL and scans == 1:
            supported = -1      # nvjpegDecodeBatchedSupported sets 0 when the handle can decode it
            st = _nv.JpegStreamParseHeader(dec.hw, d, inp.length[i], dec.hw_stream)
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


cdef void set_scratch_bounds(size_t floor, size_t ceiling, size_t *old) noexcept nogil:
    global SCRATCH_MIN, SCRATCH_MAX
    old[0], old[1] = SCRATCH_MIN, SCRATCH_MAX
    SCRATCH_MIN, SCRATCH_MAX = floor, ceiling


cdef size_t _round_limit(size_t free_b, bint known) noexcept nogil:
    cdef size_t limit = SCRATCH_MAX
    if known and free_b // 4 < limit:
        limit = free_b // 4
    if limit < SCRATCH_MIN:
        limit = SCRATCH_MIN
    return limit if limit > 0 else 1


cdef inline size_t _aligned(size_t n) noexcept nogil:
    return (n + SCRATCH_ALIGN - 1) & ~(SCRATCH_ALIGN - 1)


def plan_rounds(sizes, size_t limit):
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


cdef size_t scratch_limit(int device, bint own_allocator) except 0:
    """The round limit: SCRATCH_MAX, or a quarter of the device's free memory if that is less
    (not with the caller's allocator), at least SCRATCH_MIN (see above)."""
    cdef size_t free_b = 0, total_b = 0
    cdef bint known
    if own_allocator:
        return _round_limit(0, False)
    # A failed cudaMemGetInfo is not fatal: the fixed bound applies.
    known = mem_get_info(device, &free_b, &total_b, False) == 1
    return _round_limit(free_b, known)


cdef CUDABuffer decode_round(_Decoder dec, _Inputs inp, int g, list idx, int out_fmt, bint planar,
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
                                    f"failed with {status_name(status[j])}; "
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


