# cython: language_level=3
"""CPUBuffer: a batch of images in one contiguous, 64-byte aligned allocation."""

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_IsValid, PyCapsule_New, PyCapsule_SetName
from cpython.ref cimport Py_DECREF, Py_INCREF, PyObject
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t, uintptr_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

import operator



cdef extern from "Python.h":
    ctypedef int PyGILState_STATE
    PyGILState_STATE PyGILState_Ensure() noexcept nogil
    void PyGILState_Release(PyGILState_STATE) noexcept nogil
    int Py_IsInitialized() noexcept nogil
    void Py_DecRef(PyObject *o) noexcept nogil

cdef extern from *:
    """
    /* Python 3.13 made Py_IsFinalizing() public and removed _Py_IsFinalizing(). */
    #if PY_VERSION_HEX >= 0x030D0000
    #define spdl_py_is_finalizing() Py_IsFinalizing()
    #else
    #define spdl_py_is_finalizing() _Py_IsFinalizing()
    #endif
    """
    int spdl_py_is_finalizing() noexcept nogil


from spdl.io.includes.dlpack cimport DLManagedTensor, DLTensor, kDLCPU, kDLFloat, kDLUInt


cdef extern from "csrc/hostpool.h" nogil:
    void *spdl_pool_alloc(size_t size)
    void spdl_pool_free(void *ptr)
    size_t spdl_pool_trim()
    void spdl_pool_stats(int *blocks, size_t *nbytes)
    void spdl_pool_hold(unsigned microseconds)


cdef void _pool_free(void *ptr) noexcept nogil:
    spdl_pool_free(ptr)


cdef void release_manager(void *obj) noexcept nogil:
    # Drop a capsule's reference from any thread, at any time. While the
    # interpreter finalizes, PyGILState_Ensure would end or hang the calling
    # thread (as the C API documents), and once it is finalized there is no
    # GIL to take: then the reference is leaked, the process is ending anyway.
    cdef PyGILState_STATE state
    if obj == NULL or not Py_IsInitialized() or spdl_py_is_finalizing():
        return
    state = PyGILState_Ensure()
    Py_DecRef(<PyObject *>obj)
    PyGILState_Release(state)


cdef void dl_deleter(DLManagedTensor *t) noexcept nogil:
    # May run without the GIL (a consumer freeing its tensor on any thread).
    release_manager(t.manager_ctx)
    free(t.dl_tensor.shape)
    free(t)


cdef void dl_capsule_destructor(object capsule) noexcept:
    # Only an unconsumed capsule still carries the name "dltensor".
    if PyCapsule_IsValid(capsule, b"dltensor"):
        t = <DLManagedTensor *>PyCapsule_GetPointer(capsule, b"dltensor")
        t.deleter(t)


cdef object dl_capsule(DLManagedTensor *t, object owner):
    """Wrap t (its shape malloc'ed) in a "dltensor" capsule that keeps owner alive until
    the consumer's deleter runs; frees t when the capsule cannot be made."""
    t.manager_ctx = <void *>owner
    t.deleter = dl_deleter
    return dl_wrap(t, t.dl_tensor.shape, b"dltensor", dl_capsule_destructor, owner)


cdef object dl_wrap(void *t, void *shape, const char *name,
                    void (*destructor)(object) noexcept, object owner):
    """A capsule of the DLPack struct t (its manager_ctx and deleter set to drop a reference
    to owner) that keeps owner alive; frees shape and t when it cannot be made."""
    try:
        cap = PyCapsule_New(t, name, <void (*)(object) noexcept>destructor)
    except BaseException:
        free(shape)
        free(t)
        raise
    Py_INCREF(owner)    # the capsule's reference, dropped by the deleter
    return cap


# What CPUBuffer and CUDABuffer share: the shape, the dtype and the DLPack tensor.

cdef size_t set_shape(int64_t *dst, int *ndim, tuple shape, int itemsize, int code,
                      str what) except? 0:
    cdef size_t n = itemsize
    if dtype_name(itemsize, code) is None:
        raise ValueError(f"no element type of {itemsize} bytes with DLPack type code {code}: "
                         f"a batch holds uint8, uint16, float16 or float32")
    if not 1 <= len(shape) <= MAX_NDIM:
        raise ValueError(f"a {what} has 1 to {MAX_NDIM} dimensions, got shape {shape}")
    for i, d in enumerate(shape):
        d = operator.index(d)
        if d < 0:
            raise ValueError(f"negative dimension in {shape}")
        dst[i] = d
        n *= <size_t>d
    ndim[0] = len(shape)
    return n


cdef tuple shape_tuple(const int64_t *shape, int ndim):
    return tuple(shape[i] for i in range(ndim))


# The four element types: (name, array interface typestr), by (code, itemsize).
cdef dict _DTYPES = {
    (kDLUInt, 1): ("uint8", "|u1"),
    (kDLUInt, 2): ("uint16", "<u2"),
    (kDLFloat, 2): ("float16", "<f2"),
    (kDLFloat, 4): ("float32", "<f4"),
}
cdef dict _BY_NAME = {v[0]: k for k, v in _DTYPES.items()}


cdef str dtype_name(int itemsize, int code):
    """The element type's name, or None for a pair that is none of the four."""
    t = _DTYPES.get((code, itemsize))
    return t[0] if t is not None else None


cdef str typestr(int itemsize, int code):
    return _DTYPES[(code, itemsize)][1]


cdef int parse_dtype(object dtype, int *itemsize) except -1:
    t = _BY_NAME.get(dtype) if isinstance(dtype, str) else None
    if t is None:
        raise ValueError(f"dtype must be one of {', '.join(map(repr, _BY_NAME))}, got {dtype!r}")
    itemsize[0] = t[1]
    return t[0]


cdef int fill_dltensor(DLTensor *t, void *data, int device_type, int device_id,
                       const int64_t *shape, int ndim, int itemsize, int code) except -1:
    cdef int64_t *dims = <int64_t *>malloc(sizeof(int64_t) * 2 * MAX_NDIM)
    cdef int64_t stride = 1
    cdef int i
    if dims == NULL:
        raise MemoryError()
    for i in range(ndim):
        dims[i] = shape[i]
    for i in range(ndim - 1, -1, -1):      # C order, in elements
        dims[MAX_NDIM + i] = stride
        stride *= shape[i]
    t.data = data
    t.device.device_type = device_type
    t.device.device_id = device_id
    t.ndim = ndim
    t.dtype.code = code
    t.dtype.bits = 8 * itemsize
    t.dtype.lanes = 1
    t.shape = dims
    t.strides = dims + MAX_NDIM
    t.byte_offset = 0
    return 0


cdef void *_pool_alloc(void *ctx, size_t size) noexcept nogil:
    return spdl_pool_alloc(size)


def _pool_info():
    """Internal: (blocks, bytes) of freed batch memory kept for reuse."""
    cdef int blocks
    cdef size_t nbytes
    spdl_pool_stats(&blocks, &nbytes)
    return blocks, nbytes


def _pool_hold(double seconds):
    """Internal, for tests: hold the pool's lock for this long (without the GIL)."""
    with nogil:
        spdl_pool_hold(<unsigned>(seconds * 1e6))


def _pool_trim():
    """Internal: release the freed batch memory kept for reuse; returns the bytes released."""
    return spdl_pool_trim()


cdef class HostAllocator:
    """A pair of C functions that allocate and free host memory.

    Built by C code (for example the CUDA module, for page-locked memory: one
    per device, its ctx naming the device); ``alloc`` receives ``ctx``, and
    CPUBuffer calls both without the GIL. The default allocator
    (csrc/hostpool.h) is 64-byte aligned and keeps the last freed large
    blocks (at most two, 512 MiB) for the next batches.
    """

    def __repr__(self):
        return f"HostAllocator({self.name!r}, pinned={self.pinned})"


cdef HostAllocator _DEFAULT = HostAllocator.__new__(HostAllocator)
_DEFAULT.alloc = _pool_alloc
_DEFAULT.free = _pool_free
_DEFAULT.pinned = False
_DEFAULT.name = "host"


cdef class Batch:
    """What a batch is wherever it lives: its shape, element type, pixel format, rows and crops.

    The base of CPUBuffer and CUDABuffer; not made on its own.
    """

    def __cinit__(self):
        self.ndim = 0
        self.itemsize = 1
        self.dtype_code = kDLUInt
        self.errors = {}
        self.crops = None
        self.keys = None
        self.labels = None

    @property
    def shape(self):
        return shape_tuple(self._shape, self.ndim)

    def __len__(self):
        """The number of rows (images)."""
        return self._shape[0] if self.ndim else 0

    @property
    def dtype(self):
        return dtype_name(self.itemsize, self.dtype_code)


cdef class CPUBuffer(Batch):
    """A batch of images in host memory.

    Exposes ``__array_interface__`` (version 3), ``__dlpack__`` and
    ``__dlpack_device__``, so ``numpy.asarray(buf)``, ``torch.from_dlpack(buf)``
    and friends wrap it without a copy and keep it alive.

    Attributes:
        shape: ``(N, H, W, C)`` for packed formats, ``(N, C, H, W)`` for planar.
        dtype: ``"uint8"``, ``"uint16"``, ``"float16"`` or ``"float32"``.
        pix_fmt: FFmpeg's name of the pixel format of the rows.
        indices: For a batch from the loaders, the input index of each row.
        errors: For a batch from the loaders with ``strict=False``,
            ``{input index: exception}`` of the inputs that failed.
        crops: For a batch from the loaders with ``crop=`` or ``hflip=``, one
            ``(x, y, w, h, flipped)`` per row, in the source image's pixels;
            else None.
    """

    def __init__(self, *args, **kwargs):
        raise TypeError("CPUBuffer cannot be created directly; use spdl.io.convert_frames or the loaders")

    def __cinit__(self):
        self.data = NULL
        self.free_fn = NULL
        self.pinned = False

    def __dealloc__(self):
        cdef void *data = self.data
        self.data = NULL
        if data != NULL and self.free_fn != NULL:
            with nogil:     # an allocator's free may be slow (cudaFreeHost, munmap)
                self.free_fn(data)

    @staticmethod
    cdef CPUBuffer allocate(tuple shape, int itemsize, str pix_fmt, HostAllocator allocator=None,
                            bint is_float=False):
        """An uninitialized batch of shape; the elements are unsigned ints of itemsize bytes
        (uint8, uint16), or floats (float16, float32) with is_float."""
        cdef CPUBuffer buf = CPUBuffer.__new__(CPUBuffer)
        cdef const char *why = NULL
        cdef int code = kDLFloat if is_float else kDLUInt
        cdef size_t n = set_shape(buf._shape, &buf.ndim, shape, itemsize, code, "CPUBuffer")
        buf.itemsize = itemsize
        buf.dtype_code = code
        buf.pix_fmt = pix_fmt
        if allocator is None:
            allocator = _DEFAULT
        # Never hand out NULL, even for an empty batch. Without the GIL: an allocator
        # may be slow (cudaHostAlloc pins pages).
        with nogil:
            buf.data = allocator.alloc(allocator.ctx, n if n > 0 else 1)
            if buf.data == NULL and allocator.why != NULL:
                why = allocator.why()
        if buf.data == NULL:
            raise MemoryError(f"cannot allocate {n} bytes ({allocator.name}) for a batch of shape {shape}"
                              + (f": {why.decode('utf-8', 'replace')}" if why != NULL else ""))
        buf.free_fn = allocator.free
        buf.pinned = allocator.pinned
        buf.indices = tuple(range(shape[0])) if shape else ()
        return buf

    cdef size_t nbytes_c(self) noexcept nogil:
        cdef size_t n = self.itemsize
        for i in range(self.ndim):
            n *= <size_t>self._shape[i]
        return n

    cdef size_t row_bytes(self) noexcept nogil:
        cdef size_t n = self.itemsize
        for i in range(1, self.ndim):
            n *= <size_t>self._shape[i]
        return n

    cdef void truncate_rows(self, int64_t n) noexcept nogil:
        self._shape[0] = n

    @property
    def nbytes(self):
        return self.nbytes_c()

    @property
    def data_ptr(self):
        """The address of the first byte."""
        return <uintptr_t>self.data

    @property
    def __array_interface__(self):
        return {
            "version": 3,
            "shape": self.shape,
            "typestr": typestr(self.itemsize, self.dtype_code),
            "descr": [("", typestr(self.itemsize, self.dtype_code))],
            "data": (<uintptr_t>self.data, False),
            "strides": None,
        }

    def __dlpack_device__(self):
        return (kDLCPU, 0)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        if stream is not None and stream != -1:
            raise BufferError("stream must be None for a CPU buffer")
        if dl_device is not None and tuple(dl_device) != (kDLCPU, 0):
            raise BufferError(f"cannot export a CPU buffer to device {dl_device}")
        if copy:
            raise BufferError("copy=True is not supported; the export never copies")
        cdef DLManagedTensor *t = <DLManagedTensor *>malloc(sizeof(DLManagedTensor))
        if t == NULL:
            raise MemoryError()
        try:
            fill_dltensor(&t.dl_tensor, self.data, kDLCPU, 0, self._shape, self.ndim,
                          self.itemsize, self.dtype_code)
        except BaseException:
            free(t)
            raise
        return dl_capsule(t, self)

    def __reduce__(self):
        # Pickled as a copy of the elements (multiprocessing, queues): it unpickles into
        # a new CPUBuffer in ordinary host memory, with the same attributes.
        cdef bytes data = PyBytes_FromStringAndSize(<const char *>self.data, self.nbytes_c())
        return (_rebuild_cpu_buffer, (data, self.shape, self.dtype, self.pix_fmt, self.indices,
                                      self.errors, self.crops, self.keys, self.labels))

    def __repr__(self):
        return f"CPUBuffer(shape={self.shape}, dtype={self.dtype}, pix_fmt={self.pix_fmt!r})"


def _rebuild_cpu_buffer(bytes data, tuple shape, str dtype, str pix_fmt, indices, dict errors,
                        crops, keys, labels):
    """Internal: the CPUBuffer a pickle holds (CPUBuffer.__reduce__)."""
    cdef int itemsize
    cdef int code = parse_dtype(dtype, &itemsize)
    cdef CPUBuffer buf = CPUBuffer.allocate(shape, itemsize, pix_fmt, None, code == kDLFloat)
    if <size_t>len(data) != buf.nbytes_c():
        raise ValueError(f"a pickled CPUBuffer of shape {shape} ({dtype}) holds {len(data)} bytes, "
                         f"not {buf.nbytes_c()}")
    if len(data):
        memcpy(buf.data, <const char *>data, len(data))
    buf.indices = indices
    buf.errors = errors
    buf.crops = crops
    buf.keys = keys
    buf.labels = labels
    return buf


def _label_rows(Batch buf, tuple keys, labels, dict errors):
    """Internal (the dataset iterators): name a batch's rows by key and label, and key its
    errors like keys."""
    if len(keys) != len(buf):
        raise ValueError(f"{len(keys)} keys for a batch of {len(buf)} rows")
    if labels is not None and len(labels) != len(keys):
        raise ValueError(f"{len(labels)} labels for {len(keys)} rows")
    buf.keys = keys
    buf.labels = None if labels is None else tuple(labels)
    buf.errors = errors
