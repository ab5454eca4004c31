# cython: language_level=3
"""The batch loader: every image demuxed, decoded and scaled by a pool of workers.

A BatchJob holds the sources, the compiled LoadPlan and, when the plan fixes
the output size and format, the batch itself: each worker takes the next image
index from an atomic counter and, in one nogil block, reads, decodes, filters
(the plan's filter_desc, if any) and scales it straight into its row. A plan
that leaves the size or format to the images keeps one frame per image, and
the batch is assembled when all are done.
"""

import os

from libc.stdint cimport uint8_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memmove

from spdl.io._buffer cimport CPUBuffer, HostAllocator
from spdl.io._layout cimport (
    CompiledOutput, Layout, OUT_F32, OUT_U8, OutSpec, batch_pix_fmt_name, batch_shape, compile_output, copy_frame,
    flip_rows, frame_layout, one_layout, slot_planes, write_converted,
)
from spdl.io._decode cimport (
    CompiledDecodeConfig, Decoder, compile_decode_config, decode_planned, decoder_free, decoder_init,
)
from spdl.io._demux cimport (
    CompiledDemuxConfig, Demuxed, demux_clear, demux_init, compile_demux_config, demux_reset, demux_source,
)
from spdl.io._status cimport (
    ERR_CANCELLED, ERR_NOMEM, ERR_SOURCE, Status, fail, make_error, status_bind, status_init,
)
from spdl.io._errors import raise_for_failures
from spdl.io._geometry cimport Crop, CompiledPlan, ScaleSpec, compile_plan_spec
from spdl.io._geometry import check_per_input
from spdl.io._scale cimport Scaler, scaler_free, scaler_init
from spdl.io._source cimport Source, SourceRef
from spdl.io._source import make_sources
from spdl.io.includes.libavutil cimport (
    AV_PIX_FMT_NONE, AVFrame, AVPixelFormat, av_frame_alloc, av_frame_free, av_frame_unref,
)

cdef extern from *:
    """
    static inline Py_ssize_t spdl_fetch_add(Py_ssize_t *p) {
        return __atomic_fetch_add(p, 1, __ATOMIC_RELAXED);
    }
    static inline int spdl_load_int(const int *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
    static inline void spdl_store_int(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
    static inline void spdl_add_int(int *p, int v) { __atomic_add_fetch(p, v, __ATOMIC_SEQ_CST); }
    """
    Py_ssize_t spdl_fetch_add(Py_ssize_t *p) noexcept nogil
    int spdl_load_int(const int *p) noexcept nogil
    void spdl_store_int(int *p, int v) noexcept nogil
    void spdl_add_int(int *p, int v) noexcept nogil

cdef enum:
    PENDING = 0
    DONE = 1
    FAILED = -1


cdef struct Item:
    SourceRef src
    Status err
    int status
    AVFrame *frame       # the filtered frame, when not written into the batch directly
    Crop crop            # what the plan did to the image


def default_workers():
    """How many workers a batch uses: the CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


cdef class BatchJob:
    """One batch being loaded. Internal: built by load_image_batch."""

    cdef Item *items
    cdef Py_ssize_t *order      # the order the workers take the images in
    cdef Py_ssize_t *caller     # each source's index in the caller's list: what crops are
                                # drawn for and per-input boxes and flips are looked up by
    cdef Py_ssize_t n
    cdef Py_ssize_t next_index
    cdef int cancelled
    cdef int running            # workers inside run_worker
    cdef list sources
    cdef CompiledDemuxConfig demux
    cdef CompiledDecodeConfig decode
    cdef CompiledPlan plan
    cdef CompiledOutput output  # float elements, channels first
    cdef bint augmented         # the plan crops or flips: the batch reports crops
    cdef bint converted         # rows are written through output (else as decoded: uint8 HWC)
    cdef bint direct            # rows are written straight into buf
    cdef CPUBuffer buf
    cdef Layout lay
    cdef int out_w, out_h
    cdef AVPixelFormat out_fmt
    cdef HostAllocator allocator

    def __cinit__(self):
        self.items = NULL
        self.order = NULL
        self.caller = NULL
        self.n = 0

    def __dealloc__(self):
        if self.items != NULL:
            for i in range(self.n):
                av_frame_free(&self.items[i].frame)
            free(self.items)
        free(self.order)
        free(self.caller)

    def __init__(self, srcs, plan, HostAllocator allocator=None, indices=None):
        """srcs loaded as plan says; indices, if given, are the sources' indices in the
        caller's list, which names bytes sources in errors ("bytes #i")."""
        cdef Source s
        cdef Py_ssize_t i
        if isinstance(srcs, (str, bytes, bytearray, memoryview)) or not hasattr(srcs, "__len__"):
            raise TypeError("srcs must be a list of paths or bytes-like objects")
        self.allocator = allocator
        self.plan = compile_plan_spec(plan)
        self.output = compile_output(plan)
        self.augmented = plan.augmented
        self.converted = plan.converted
        self.demux = compile_demux_config(plan.demux_config)
        self.decode = compile_decode_config(plan.decode_config)
        self.sources = make_sources(srcs, indices)
        self.n = len(self.sources)
        self.items = <Item *>calloc(self.n if self.n else 1, sizeof(Item))
        self.order = <Py_ssize_t *>malloc((self.n if self.n else 1) * sizeof(Py_ssize_t))
        self.caller = <Py_ssize_t *>malloc((self.n if self.n else 1) * sizeof(Py_ssize_t))
        if self.items == NULL or self.order == NULL or self.caller == NULL:
            raise MemoryError()
        for i, k in enumerate(indices if indices is not None else range(self.n)):
            self.caller[i] = k
        check_per_input(self.plan, self.n, indices)
        # Largest first, so no worker is left with a big image at the end while the
        # others idle (bytes sources: their size is known; paths keep their order,
        # a stat per file would cost more than it saves on slow file systems).
        by_size = sorted(range(self.n), key=lambda k: -(<Source>self.sources[k]).ref.size
                         if (<Source>self.sources[k]).ref.path == NULL else 0)
        for i in range(self.n):
            self.order[i] = by_size[i]
        for i in range(self.n):
            s = self.sources[i]
            status_init(&self.items[i].err, i)
            self.items[i].src = s.ref
            if s.invalid is not None:
                fail(&self.items[i].err, ERR_SOURCE, "demux", "open", 0, s.invalid.encode())
                self.items[i].status = FAILED
        self.direct = False
        self._allocate_direct()

    cdef _allocate_direct(self):
        """Allocate the batch up front when the plan gives every image one size and format."""
        sp = &self.plan.spec
        if (sp.out_fmt == AV_PIX_FMT_NONE or sp.scale_w < 0 or sp.scale_h < 0
                or frame_layout(sp.out_fmt, &self.lay) < 0):
            return
        self.out_w, self.out_h, self.out_fmt = sp.scale_w, sp.scale_h, sp.out_fmt
        name = batch_pix_fmt_name(sp.out_fmt)
        cdef const OutSpec *o = &self.output.spec
        cdef int itemsize = 1 if o.dtype == OUT_U8 else 4 if o.dtype == OUT_F32 else 2
        cdef object ch = o.channels
        if self.converted:
            shape = ((self.n, ch, self.out_h, self.out_w) if o.nchw
                     else (self.n, self.out_h, self.out_w, ch))
            self.buf = CPUBuffer.allocate(shape, itemsize, name, self.allocator, o.dtype != OUT_U8)
        else:
            self.buf = CPUBuffer.allocate(batch_shape(self.n, &self.lay, self.out_w, self.out_h),
                                          self.lay.itemsize, name, self.allocator)
        self.direct = True

    def __len__(self):
        return self.n

    def cancel(self):
        """Stop the workers after the images they are working on."""
        spdl_store_int(&self.cancelled, 1)

    @property
    def running(self):
        """How many workers are inside run_worker."""
        return spdl_load_int(&self.running)

    def run_worker(self):
        """Work on images until none is left. Several threads may call this at once."""
        cdef Demuxed d
        cdef Decoder dec
        cdef Scaler scaler
        cdef AVFrame *decoded = av_frame_alloc()
        cdef Item *item
        cdef Py_ssize_t i
        cdef int ret
        cdef uint8_t *dst[4]
        cdef int linesize[4]
        cdef const char *graph = NULL
        cdef const ScaleSpec *sp = &self.plan.spec
        cdef uint8_t *scratch = NULL  # a converted row's uint8 HWC image
        cdef uint8_t *sdst[4]
        cdef int slines[4]
        cdef int pitch = 0
        if self.plan.graph is not None:
            graph = self.plan.graph
        if self.converted and self.direct:
            pitch = self.out_w * self.output.spec.channels
            scratch = <uint8_t *>malloc(<size_t>pitch * self.out_h + 64)
            if scratch == NULL:
                raise MemoryError()
        sdst[0], sdst[1], sdst[2], sdst[3] = scratch, NULL, NULL, NULL
        slines[0], slines[1], slines[2], slines[3] = pitch, 0, 0, 0
        if decoded == NULL or demux_init(&d) < 0:
            av_frame_free(&decoded)
            free(scratch)
            raise MemoryError()
        decoder_init(&dec)
        scaler_init(&scaler)
        spdl_add_int(&self.running, 1)
        with nogil:
            while not spdl_load_int(&self.cancelled):
                i = spdl_fetch_add(&self.next_index)
                if i >= self.n:
                    break
                i = self.order[i]
                item = &self.items[i]
                if item.status != PENDING:  # failed before it started (an impossible path)
                    continue
                status_init(&item.err, i)
                status_bind(&item.err)  # lines of contexts with no status of their own
                ret = demux_source(&item.src, &self.demux.spec, &d, &item.err)
                if ret >= 0 and self.direct:
                    slot_planes(self.buf, i, &self.lay, self.out_w, self.out_h, dst, linesize)
                    if scratch != NULL:  # the image, then its conversion into the row
                        ret = decode_planned(&d, &self.decode.spec, &dec, &scaler, sp, graph,
                                             self.caller[i],
                                             &item.crop, decoded, NULL, sdst, slines,
                                             &item.err)
                        if ret >= 0:
                            write_converted(&self.output.spec, scratch, pitch, self.out_w,
                                            self.out_h, item.crop.flip,
                                            <uint8_t *>self.buf.data + i * self.buf.row_bytes())
                    else:
                        ret = decode_planned(&d, &self.decode.spec, &dec, &scaler, sp, graph,
                                             self.caller[i], &item.crop, decoded, NULL, dst,
                                             linesize, &item.err)
                        if ret >= 0 and item.crop.flip:
                            flip_rows(dst[0], linesize[0], self.out_w, self.out_h,
                                      self.lay.channels * self.lay.itemsize)
                elif ret >= 0:
                    item.frame = av_frame_alloc()
                    if item.frame == NULL:
                        ret = fail(&item.err, ERR_NOMEM, "filter", "av_frame_alloc", 0, NULL)
                    else:
                        ret = decode_planned(&d, &self.decode.spec, &dec, &scaler, sp, graph,
                                             self.caller[i], &item.crop, decoded, item.frame,
                                             NULL, NULL, &item.err)
                item.status = DONE if ret >= 0 else FAILED
                demux_reset(&d)
                av_frame_unref(decoded)
            status_bind(NULL)
            decoder_free(&dec)
            scaler_free(&scaler)
            demux_clear(&d)
            av_frame_free(&decoded)
            free(scratch)
            spdl_add_int(&self.running, -1)

    def finish(self, bint strict):
        """The batch of the images that loaded; raises BatchLoadError if strict and any failed."""
        cdef Source s
        cdef Py_ssize_t i, j, row
        cdef CPUBuffer buf
        cdef size_t row_bytes
        errors = {}
        good = []
        for i in range(self.n):
            if self.items[i].status == DONE:
                good.append(i)
            else:
                s = self.sources[i]
                if self.items[i].status == PENDING:
                    fail(&self.items[i].err, ERR_CANCELLED, "load", "load_image_batch", 0,
                         "the batch was cancelled")
                errors[i] = make_error(&self.items[i].err, s.name)
        raise_for_failures(errors, self.n, strict=strict)
        if self.direct:
            buf = self.buf
            if errors:  # close the gaps, keeping input order
                row_bytes = buf.row_bytes()
                for row, j in enumerate(good):
                    if row != j:
                        memmove(<uint8_t *>buf.data + row * row_bytes,
                                <uint8_t *>buf.data + j * row_bytes, row_bytes)
                buf.truncate_rows(len(good))
        else:
            buf = self._assemble(good)
        buf.indices = tuple(good)
        buf.errors = errors
        if self.augmented:
            buf.crops = tuple((self.items[i].crop.vx, self.items[i].crop.vy, self.items[i].crop.vw,
                               self.items[i].crop.vh, bool(self.items[i].crop.flip)) for i in good)
        return buf

    cdef CPUBuffer _assemble(self, list good):
        cdef AVFrame *f
        cdef Layout lay
        cdef uint8_t *dst[4]
        cdef int linesize[4]
        cdef int w = 0, h = 0, fmt = AV_PIX_FMT_NONE
        cdef Py_ssize_t row, i
        groups = {}
        for i in good:
            f = self.items[i].frame
            groups.setdefault((f.width, f.height, f.format), []).append(i)
        if groups:
            one_layout(groups, &lay, &w, &h, &fmt)
            name = batch_pix_fmt_name(<AVPixelFormat>fmt)
        elif self.plan.spec.out_fmt != AV_PIX_FMT_NONE:  # nothing loaded: an empty batch
            fmt = self.plan.spec.out_fmt                  # of the requested format
            frame_layout(<AVPixelFormat>fmt, &lay)
            name = batch_pix_fmt_name(<AVPixelFormat>fmt)
        else:
            lay.planar, lay.stacked, lay.channels, lay.itemsize = False, False, 3, 1
            name = "rgb24"
        cdef CPUBuffer buf = CPUBuffer.allocate(batch_shape(len(good), &lay, w, h), lay.itemsize,
                                                name, self.allocator)
        for row, i in enumerate(good):
            f = self.items[i].frame
            with nogil:
                slot_planes(buf, row, &lay, w, h, dst, linesize)
                copy_frame(f, &lay, dst, linesize)
            av_frame_free(&self.items[i].frame)
        return buf
