# cython: language_level=3
"""JPEG batches decoded on the GPU: nvJPEG's batched decoder, NPP's resize.

    buf = spdl.io.load_image_batch_nvjpeg(srcs, device_config=CUDAConfig(0),
                                          width=224, height=224)

The loaders take exactly load_image_batch's keyword arguments (device_config
required), compiled once into a LoadPlan (spdl.io._plan); the steps below take
the plan. One call:

1. read: every source is read (paths honour DemuxConfig.max_file_size);
2. classify: a JPEG whose markers say nvJPEG can take it (8-bit Huffman-coded,
   complete up to its end-of-image marker, not RGB-coded: _nvjpeg_decode.gpu_check)
   and that nvjpegGetImageInfo accepts (1 or 3 components, a known chroma
   subsampling, at least 2 pixels wide and high - NPP's resize refuses less - and
   at most DecodeConfig.max_pixels) goes to the GPU; anything else (other formats,
   CMYK, RGB-coded or truncated JPEGs, unreadable files, bad headers) to the CPU;
3. crop and flip: what the plan does to each of the GPU's images, resolved from
   its header's size as the CPU path resolves it (_geometry.resolve_crop, with the
   batch's one seed); a box outside its image sends the image to the CPU path,
   which fails it with its error;
4. decode and resize: the GPU's images in rounds of bounded scratch
   (_nvjpeg_decode), each resized by NPP into its row of the output
   (_nvjpeg_resize: a crop box is the resize's source ROI, a flipped row is
   mirrored after it); an image nvJPEG or NPP fails falls back to the CPU;
5. the CPU path (spdl.io._load.run_plan with the same plan, into page-locked
   memory) for the rest, which decodes them or reports the same error
   load_image_batch reports; strict raises here;
6. upload the CPU rows and compact: the rows of inputs that failed are dropped
   at the end (one device-to-device copy, only then); buf.crops, when the plan
   crops or flips, holds each row's box and flip (the GPU's from step 3, the
   CPU path's from its batch);
7. dtype and layout: steps 4 to 6 make uint8 packed rows (the CPU rows loaded
   as uint8 too, a quarter of float32's bytes to upload); a plan with a float
   dtype or NCHW gets its batch from them on the GPU (_nvjpeg_resize.convert_rows,
   with the CPU path's own per-channel table, so exactly its values), the
   compaction of step 6 fused into it.

What the GPU cannot do itself takes the CPU path for the whole batch (the plan
is loaded by spdl.io._load.run_plan and transferred): see cpu_reason().

Everything is enqueued on CUDAConfig.stream; the result is valid in that
stream's order.
"""

import asyncio
import dataclasses
import inspect
import logging
import secrets

from libc.stdint cimport int64_t, uintptr_t
from libc.stdlib cimport calloc, free

from spdl.io._buffer cimport CPUBuffer
from spdl.io._cuda_buffer cimport CUDABuffer, alloc_cuda_buffer
from spdl.io._cuda_device cimport DeviceScope, check_scope, enter_device, leave_device
from spdl.io._cuda_device import check_device
from spdl.io._cuda_runtime cimport CudaRuntimeApi, cudart
from spdl.io._geometry cimport CompiledPlan, Crop, compile_plan_spec, resolve_crop
from spdl.io._geometry import check_per_input
from spdl.io._keepalive cimport keep_after_error, keep_until_done
from spdl.io._nvjpeg_decode cimport (
    G_CPU, G_HW, G_HYBRID, _Decoder, _Inputs, classify, decode_round, decoder, scratch_limit,
)
from spdl.io._nvjpeg_decode import plan_rounds
from spdl.io._nvjpeg_lib import load_libraries
from spdl.io._nvjpeg_resize cimport convert_rows, keep_rows, prepare_output, resize_into, upload_rows
from spdl.io._source cimport Source, make_source, read_source
from spdl.io._status cimport Status, status_init
from spdl.io.includes.libavcodec cimport AVPacket, av_packet_alloc
from spdl.io.includes.npp cimport *
from spdl.io.includes.nvjpeg cimport NVJPEG_OUTPUT_BGRI, NVJPEG_OUTPUT_RGB, NVJPEG_OUTPUT_RGBI

from spdl.io._errors import raise_for_failures
from spdl.io._load import async_run_plan, async_transfer_buffer, plan_loader, run_plan
from spdl.io._plan import compile_plan
from spdl.io._transfer import transfer_buffer

__all__ = ["load_image_batch_nvjpeg", "async_load_image_batch_nvjpeg"]

_log = logging.getLogger("spdl.io")

#: Output pixel formats nvJPEG writes: packed RGB, packed BGR, planar RGB.
GPU_PIX_FMTS = ("rgb24", "bgr24", "rgbp")
#: scale_mode values NPP places as the CPU path does.
GPU_SCALE_MODES = ("pad", "stretch")
#: scale_algo -> NPP interpolation (0: bicubic, supersampling when shrinking both ways,
#: an exact copy at the same size).
GPU_SCALE_ALGOS = {"bicubic": 0, "bilinear": NPPI_INTER_LINEAR, "fast_bilinear": NPPI_INTER_LINEAR,
                   "neighbor": NPPI_INTER_NN, "lanczos": NPPI_INTER_LANCZOS}


def cpu_reason(plan):
    """Why the plan takes the CPU path for the whole batch, or None (the GPU decodes it)."""
    if plan.width is None or plan.height is None:
        return "width and height are not both given"
    if plan.pix_fmt not in GPU_PIX_FMTS:
        return f"pix_fmt {plan.pix_fmt!r} (nvJPEG writes {', '.join(GPU_PIX_FMTS)})"
    if plan.scale_mode not in GPU_SCALE_MODES:
        return f"scale_mode {plan.scale_mode!r}"
    if plan.scale_algo not in GPU_SCALE_ALGOS:
        return f"scale_algo {plan.scale_algo!r} (NPP maps {', '.join(GPU_SCALE_ALGOS)})"
    if plan.filter_desc is not None:
        return "a filter_desc"
    if plan.demux_config.format is not None:
        return "a DemuxConfig.format"
    if plan.decode_config.decoder is not None or plan.decode_config.decoder_options:
        return "a DecodeConfig.decoder or decoder_options"
    return None


def _gpu_loader(func):
    """load_image_batch's signature and argument list (plan_loader), with device_config required."""
    func = plan_loader(func)
    sig = func.__signature__
    func.__signature__ = sig.replace(parameters=[
        p.replace(default=inspect.Parameter.empty, annotation="CUDAConfig") if p.name == "device_config" else p
        for p in sig.parameters.values()])
    return func


def _compile(options):
    plan = compile_plan(**options)
    if plan.device_config is None:
        raise TypeError("load_image_batch_nvjpeg needs a device_config (a CUDAConfig)")
    if plan.augmented and plan.seed is None:
        # One seed for the batch: the GPU's draws and the CPU path's rows must share it.
        plan = dataclasses.replace(plan, seed=secrets.randbits(64))
    return plan


cdef class _GpuBatch:
    """One call's state between its steps: the GPU part, then the CPU rows, then the result."""
    cdef object plan
    cdef list srcs
    cdef _Decoder dec
    cdef _Inputs inp
    cdef CUDABuffer out
    cdef NppStreamContext ctx
    cdef Py_ssize_t n
    cdef bint planar
    cdef readonly list cpu_idx      # the inputs the CPU path loads (step 5)
    cdef CompiledPlan spec          # the plan in C, for its crops
    cdef Crop *crops                # what the plan does to each input (step 3), or NULL

    def __dealloc__(self):
        free(self.crops)

    cdef object cpu_plan(self):
        # The same plan for the CPU rows, into page-locked memory; strict is applied here.
        # (Its draws and per-input boxes and flips follow the inputs' own indices, cpu_idx.)
        # Its rows are uint8 packed as the GPU's are before step 7, which converts both: the
        # CPU path's float rows are its table applied to these very pixels.
        if self.plan.converted:
            return dataclasses.replace(self.plan, strict=False, dtype="uint8", layout="NHWC",
                                       mean=None, std=None)
        return dataclasses.replace(self.plan, strict=False)


cdef int _read(_Inputs inp, list sources, int64_t max_file_size) except -1:
    """Step 1: the bytes of every source, files read as the CPU path reads them
    (read_source: a regular file only, never blocking, size-capped). A file that cannot
    be read is left for the CPU path, which reads it again and reports why."""
    cdef Source s
    cdef Status ignored
    cdef AVPacket *pkt
    cdef Py_ssize_t i
    cdef int ret
    inp.sources = list(sources)     # the bytes sources' data stays alive with inp
    for i in range(inp.n):
        s = sources[i]
        if s.invalid is not None:
            continue
        if s.ref.path == NULL:
            inp.data[i] = s.ref.data
            inp.length[i] = s.ref.size
            continue
        pkt = inp.pkts[i] = av_packet_alloc()
        if pkt == NULL:
            raise MemoryError()
        with nogil:
            status_init(&ignored, i)
            ret = read_source(&s.ref, max_file_size, pkt, &ignored)
        if ret >= 0:
            inp.data[i] = pkt.data
            inp.length[i] = pkt.size
    return 0


cdef bint _classify(_GpuBatch b) except -1:
    """Step 2: each input's group; whether any goes to the GPU."""
    cdef const CudaRuntimeApi *rt = cudart()
    cdef DeviceScope scope
    cdef int64_t max_pixels = b.plan.decode_config.max_pixels
    cdef Py_ssize_t i
    with nogil:
        if enter_device(rt, b.dec.device, &scope) == 0:
            classify(b.dec, b.inp, max_pixels)
        leave_device(rt, &scope)
    check_scope(&scope)
    for i in range(b.n):
        if b.inp.group[i] != G_CPU:
            return True
    return False


cdef int _resolve_crops(_GpuBatch b) except -1:
    """Step 3: each GPU image's box and flip, from its header's size, as the CPU path
    resolves them for the same input index; a box outside its image sends the image to
    the CPU path (which fails it with the same error)."""
    cdef _Inputs inp = b.inp
    cdef Status st
    cdef Py_ssize_t i
    cdef int ret
    b.crops = <Crop *>calloc(b.n if b.n else 1, sizeof(Crop))
    if b.crops == NULL:
        raise MemoryError()
    for i in range(b.n):
        if inp.group[i] == G_CPU:
            continue
        with nogil:
            status_init(&st, i)
            ret = resolve_crop(&b.spec.spec, i, inp.width[i], inp.height[i], &b.crops[i], &st)
        if ret < 0:
            _log.debug("input %d: its crop box lies outside its %dx%d image; the CPU path "
                       "reports it", i, inp.width[i], inp.height[i])
            inp.group[i] = G_CPU
    return 0


cdef int _decode_and_resize(_GpuBatch b) except -1:
    """Step 4: the GPU's images, hardware group first (what it fails joins the hybrid
    group), in rounds, each resized into its rows before its scratch is freed."""
    cdef _Inputs inp = b.inp
    cdef CUDABuffer buf
    cdef object cfg = b.plan.device_config
    cdef int out_fmt = (NVJPEG_OUTPUT_RGB if b.planar else
                        NVJPEG_OUTPUT_BGRI if b.plan.pix_fmt == "bgr24" else NVJPEG_OUTPUT_RGBI)
    cdef int algo = GPU_SCALE_ALGOS[b.plan.scale_algo]
    cdef size_t limit = scratch_limit(cfg.device_index, cfg.allocator is not None)
    failures = []
    npp_failed = []
    for g in (G_HW, G_HYBRID):
        idx = [i for i in range(b.n) if inp.group[i] == g]
        rounds = plan_rounds([<size_t>inp.width[i] * <size_t>inp.height[i] * 3 for i in idx], limit)
        if idx:
            _log.debug("nvJPEG (%s): %d image(s) in %d round(s) of at most %d bytes",
                       "hardware" if g == G_HW else "GPU hybrid", len(idx), len(rounds), limit)
        for r in rounds:
            ids = [idx[k] for k in r]
            buf = decode_round(b.dec, inp, g, ids, out_fmt, b.planar, cfg, failures)
            try:
                done = [i for i in ids if inp.group[i] == g]
                npp_failed += resize_into(b.out, inp, done, b.plan, b.planar, algo, b.crops, &b.ctx)
            finally:
                buf.release()       # in the stream's order, after the resizes that read it
    for i, why in failures:
        _log.debug("nvJPEG could not decode input %d: %s", i, why)
    for i, st, fn in npp_failed:
        # NPP refused an image (its parameters are checked before; this is not expected):
        # that image alone takes the CPU path, into its row.
        _log.warning("%s failed with NppStatus %d for input %d (%dx%d); decoding it on the CPU",
                     fn, st, i, inp.width[i], inp.height[i])
        inp.group[i] = G_CPU
    return 0


def _start(srcs, plan):
    """Steps 1 to 4, in the calling thread: the GPU part of the batch."""
    cdef _GpuBatch b = _GpuBatch.__new__(_GpuBatch)
    cdef object cfg = plan.device_config
    cdef Py_ssize_t n
    if isinstance(srcs, (str, bytes, bytearray, memoryview)) or not hasattr(srcs, "__len__"):
        raise TypeError("srcs must be a list of paths or bytes-like objects")
    b.srcs = list(srcs)
    sources = [make_source(s, f"bytes #{i}") for i, s in enumerate(b.srcs)]
    b.plan = plan
    b.spec = compile_plan_spec(plan)
    check_per_input(b.spec, len(sources))      # as the CPU path checks it, before any work
    check_device(cfg)
    load_libraries()
    b.dec = decoder(cfg.device_index)
    b.n = n = len(sources)
    b.inp = _Inputs(n)
    b.planar = plan.pix_fmt == "rgbp"
    w, h = plan.width, plan.height
    # The output has a row per input, in input order (the rows of inputs that fail are
    # dropped at the end): each GPU round is resized into it before the next. For a float
    # or NCHW plan these are uint8 packed rows, converted at the end (step 7).
    b.out = alloc_cuda_buffer((n, 3, h, w) if b.planar else (n, h, w, 3), 1, plan.pix_fmt, cfg)
    if n:
        prepare_output(b.out, plan.scale_mode == "pad", &b.ctx)
        _read(b.inp, sources, plan.demux_config.max_file_size)
        with b.dec.lock:
            if _classify(b):
                try:
                    if plan.augmented:
                        _resolve_crops(b)
                    _decode_and_resize(b)
                except BaseException as e:
                    keep_after_error(cfg.device_index, cfg.stream, b.inp, e)
                    raise
                # nvJPEG may read the encoded bytes until its work on the stream is done.
                keep_until_done(cfg.device_index, cfg.stream, b.inp)
    b.cpu_idx = [i for i in range(n) if b.inp.group[i] == G_CPU]
    return b


def _cpu_part(_GpuBatch b):
    """The sources, plan and source indices of step 5 (the CPU path), or None when the GPU
    took every input."""
    if not b.cpu_idx:
        return None
    return [b.srcs[i] for i in b.cpu_idx], b.cpu_plan(), b.cpu_idx


cdef tuple _crop_of(const Crop *c):
    return (c.x, c.y, c.w, c.h, bool(c.flip))


def _finish(_GpuBatch b, CPUBuffer host):
    """Steps 6 and 7, after the CPU path loaded host (or None): strict, the CPU rows,
    compaction, and a float or NCHW plan's conversion."""
    cdef CUDABuffer out = b.out
    cdef Py_ssize_t i
    errors = {}
    rows = []
    crops = {}
    if b.plan.augmented:
        for i in range(b.n):
            if b.inp.group[i] != G_CPU:
                crops[i] = _crop_of(&b.crops[i])
    if host is not None:
        # The host batch's rows and errors are numbered by position in cpu_idx.
        index = b.cpu_idx.__getitem__
        errors = {index(k): e for k, e in sorted(host.errors.items())}
        raise_for_failures(errors, b.n, strict=b.plan.strict)
        rows = [(index(k), r) for r, k in enumerate(host.indices)]
        if host.crops is not None:
            for r, k in enumerate(host.indices):
                crops[index(k)] = host.crops[r]
        if rows:
            upload_rows(out, host, rows)
    keep = [i for i in range(b.n) if i not in errors]
    if b.plan.converted:
        out = convert_rows(out, keep, b.plan, &b.ctx)
    elif errors:
        out = keep_rows(out, keep, b.plan.device_config)
    out.indices = tuple(keep)
    out.errors = errors
    if b.plan.augmented:
        out.crops = tuple(crops[i] for i in keep)
    return out


@_gpu_loader
def load_image_batch_nvjpeg(srcs, **options):
    """Decode a batch of JPEGs on the GPU with nvJPEG and resize it there with NPP.

    ``device_config`` is required; the result is a CUDABuffer on its device,
    valid in the order of its stream. Inputs nvJPEG should not decode (PNG,
    CMYK, RGB-coded or truncated JPEGs, ...) take the CPU path (as
    load_image_batch loads them, into page-locked memory) and are copied into
    their rows. The whole batch takes the CPU path, then one copy to the
    device, when the GPU cannot do what is asked: ``width`` or ``height``
    None, a ``pix_fmt`` other than ``rgb24``, ``bgr24`` or ``rgbp``,
    ``scale_mode="crop"``, ``scale_algo="area"``, a ``filter_desc``, a
    ``DemuxConfig.format``, or a ``DecodeConfig.decoder`` or
    ``decoder_options``. NPP resizes with ``scale_algo`` mapped to its own
    interpolation (bicubic: supersampling when shrinking both ways; bilinear
    and fast_bilinear: linear; neighbor; lanczos), so pixels differ slightly
    from the CPU path's.

    ``crop`` and ``hflip`` run on the GPU: each image's box and flip are
    drawn as the CPU path draws them (the same ``seed`` and input index give
    the same box; a ``seed`` of None is drawn once for the batch), the box is
    NPP's source region, stretched to width x height, and a flipped row is
    mirrored by NPP. ``buf.crops`` reports them as load_image_batch does.

    ``dtype`` (``"float32"``, ``"float16"``, with ``mean`` and ``std``) and
    ``layout="NCHW"`` are made on the GPU too, from the uint8 rows (the CPU
    path's rows among them), with the CPU path's per-channel table: the same
    uint8 pixels give exactly load_image_batch's values.

    Raises CUDAUnavailableError when there is no CUDA device, or libcudart,
    libnvjpeg, libnppc, libnppig, libnppicc or libnppidei cannot be loaded
    (the message names it).
    """
    plan = _compile(options)
    why = cpu_reason(plan)
    if why is not None:
        _log.debug("load_image_batch_nvjpeg: the CPU path for the batch: %s", why)
        return transfer_buffer(run_plan(srcs, plan), device_config=plan.device_config)
    b = _start(srcs, plan)
    cpu = _cpu_part(b)
    return _finish(b, run_plan(*cpu) if cpu is not None else None)


@_gpu_loader
async def async_load_image_batch_nvjpeg(srcs, **options):
    """:func:`load_image_batch_nvjpeg` with the GPU steps on the running loop's executor and
    the CPU path on the loader's workers (as :func:`async_load_image_batch`)."""
    plan = _compile(options)
    why = cpu_reason(plan)
    if why is not None:
        _log.debug("async_load_image_batch_nvjpeg: the CPU path for the batch: %s", why)
        return await async_transfer_buffer(await async_run_plan(srcs, plan),
                                           device_config=plan.device_config)
    loop = asyncio.get_running_loop()
    b = await loop.run_in_executor(None, _start, srcs, plan)
    cpu = _cpu_part(b)
    host = await async_run_plan(*cpu) if cpu is not None else None
    return await loop.run_in_executor(None, _finish, b, host)
