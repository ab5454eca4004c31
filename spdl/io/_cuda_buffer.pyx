# cython: language_level=3
"""CUDABuffer: a batch in CUDA device memory, its exports (__cuda_array_interface__,
DLPack) and its stream-ordered free.

Streams. All work for a batch is enqueued on CUDAConfig.stream, so a
CUDABuffer is valid in that stream's order. Exports say so:
__cuda_array_interface__ gives the stream (0 is written as 1, the interface's
name for the legacy default stream) and __dlpack__(stream=s) makes the data
ready on the consumer's stream s with an event.
"""

import operator

cimport cython
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_IsValid
from cpython.ref cimport Py_INCREF
from libc.stdint cimport int64_t, intptr_t, uintptr_t
from libc.stdlib cimport free, malloc

from spdl.io._buffer cimport (
    Batch, dl_capsule, dl_wrap, fill_dltensor, release_manager, set_shape, typestr,
)
from spdl.io._cuda_device cimport DeviceScope, check_scope, enter_device, leave_device
from spdl.io._cuda_runtime cimport CudaRuntimeApi, cudart, cudart_loaded
from spdl.io._errors import AllocationError
from spdl.io._keepalive cimport reap
from spdl.io.includes.cuda_runtime cimport *
from spdl.io.includes.dlpack cimport (
    DLManagedTensor, DLManagedTensorVersioned, DLTensor, kDLCUDA, kDLFloat, kDLUInt,
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
    return fill_dltensor(t, <void *>buf.ptr if buf._nbytes else NULL, kDLCUDA, buf._device,
                         buf._shape, buf.ndim, buf.itemsize, buf.dtype_code)


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
        return dl_wrap(tv, tv.dl_tensor.shape, b"dltensor_versioned",
                       _dl_capsule_destructor_versioned, buf)
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


cdef int _order_after_consumers(const CudaRuntimeApi *rt, const uintptr_t *consumers, int n, bint unknown,
                                uintptr_t stream) noexcept nogil:
    """With the buffer's device current: make `stream` wait for the consumers' work.

    Returns 0 when the free may be enqueued on `stream`, -1 when it may not.
    """
    cdef int i
    cdef cudaError_t err = cudaSuccess
    cdef const char *op
    if not unknown:
        for i in range(n):
            err = _stream_wait(rt, stream, consumers[i], &op)
            if err != cudaSuccess:
                rt.cudaGetLastError()
                break
        if err == cudaSuccess:
            return 0
    # An unknown consumer, or a consumer stream that could not be waited on: the device.
    if rt.cudaDeviceSynchronize() != cudaSuccess:
        rt.cudaGetLastError()
        return -1
    return 0


cdef void _cuda_release(int device, uintptr_t stream, uintptr_t ptr, bint pool,
                        const uintptr_t *consumers, int n, bint unknown) noexcept nogil:
    """Free cudaMallocAsync (pool) or cudaMalloc memory after its readers (see above)."""
    cdef DeviceScope scope
    cdef bint freed = False
    cdef const CudaRuntimeApi *rt = cudart_loaded()
    if rt == NULL:
        return
    if enter_device(rt, device, &scope) == 0:
        if _order_after_consumers(rt, consumers, n, unknown, stream) == 0:
            if pool:
                freed = rt.cudaFreeAsync(<void *>ptr, <cudaStream_t>stream) == cudaSuccess
                if not freed:
                    rt.cudaGetLastError()
            if not freed:
                # cudaMalloc memory, or cudaFreeAsync failed: cudaFree once the stream (which
                # waits for the consumers) is done. cudaFree does not wait for the accesses to
                # cudaMallocAsync memory: "callers must ensure that all accesses ... have
                # completed" (cudaFree).
                if rt.cudaStreamSynchronize(<cudaStream_t>stream) == cudaSuccess:
                    if rt.cudaFree(<void *>ptr) != cudaSuccess:
                        rt.cudaGetLastError()
                else:
                    rt.cudaGetLastError()
    leave_device(rt, &scope)


cdef int _order_for_python_free(int device, uintptr_t stream, const uintptr_t *consumers, int n,
                                bint unknown) noexcept nogil:
    """Before CUDAConfig.allocator's free: the buffer's stream waits for the consumers.

    The caller's allocator frees in the order of the stream it allocated on (PyTorch's
    caching allocator does), so this orders the free after them. Returns -1 if that
    could not be done (the memory is then not handed back).
    """
    cdef DeviceScope scope
    cdef int r = -1
    cdef const CudaRuntimeApi *rt = cudart_loaded()
    if n == 0 and not unknown:
        return 0            # no consumer stream: the allocator's own stream order suffices
    if rt == NULL:
        return 0            # no CUDA work of ours can exist (a buffer over fake pointers)
    if enter_device(rt, device, &scope) == 0:
        r = _order_after_consumers(rt, consumers, n, unknown, stream)
    leave_device(rt, &scope)
    return r


cdef int _set_shape(CUDABuffer buf, tuple shape, int itemsize, bint is_float=False) except -1:
    cdef int code = kDLFloat if is_float else kDLUInt
    buf._nbytes = set_shape(buf._shape, &buf.ndim, shape, itemsize, code, "CUDABuffer")
    buf.itemsize = itemsize
    buf.dtype_code = code
    return 0


@cython.no_gc_clear
cdef class CUDABuffer(Batch):
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
        dtype: ``"uint8"``, ``"uint16"``, ``"float16"`` or ``"float32"``.
        pix_fmt: The pixel format of the rows.
        device_index: The CUDA device ordinal.
        stream: The ``cudaStream_t`` (int) the data is ordered on; 0 is the
            legacy default stream.
        indices: The input index of each row.
        errors: ``{input index: exception}`` for the inputs that failed
            (``strict=False``).
        crops: One ``(x, y, w, h, flipped)`` per row, in the source image's
            pixels, for a batch loaded with ``crop=`` or ``hflip=``; else None.
    """

    def __init__(self, *args, **kwargs):
        raise TypeError("CUDABuffer cannot be created directly; use spdl.io.transfer_buffer or the loaders")

    def __cinit__(self):
        self.ptr = 0
        self._nbytes = 0
        self._device = 0
        self._stream = 0
        self.free_kind = FREE_NONE
        self.free_cb = None
        self.nconsumers = 0
        self.unknown_consumer = False
        self.indices = ()

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
            "typestr": typestr(self.itemsize, self.dtype_code),
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
        reap(False)

    def __repr__(self):
        return (f"CUDABuffer(shape={self.shape}, dtype={self.dtype}, pix_fmt={self.pix_fmt!r}, "
                f"device_index={self._device}, stream={self._stream:#x})")


cdef CUDABuffer alloc_cuda_buffer(tuple shape, int itemsize, str pix_fmt, object config,
                                  bint is_float=False):
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
    _set_shape(buf, shape, itemsize, is_float)
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
