from libc.stdint cimport int64_t

from spdl.io.includes.dlpack cimport DLManagedTensor, DLTensor

# Both are called without the GIL (CPUBuffer releases it around them).
ctypedef void (*free_fn_t)(void *ptr) noexcept nogil
ctypedef void *(*alloc_fn_t)(void *ctx, size_t size) noexcept nogil
# Why the calling thread's last alloc returned NULL ("cudaHostAlloc failed: ..."), or NULL.
ctypedef const char *(*why_fn_t)() noexcept nogil

cdef class HostAllocator:
    """Where a CPUBuffer's memory comes from (for example page-locked memory)."""
    cdef alloc_fn_t alloc
    cdef free_fn_t free
    cdef void *ctx              # passed to alloc (the page-locked allocator's device)
    cdef why_fn_t why           # optional: the cause of a failed alloc, for the error message
    cdef readonly bint pinned
    cdef readonly str name

cdef enum:
    MAX_NDIM = 4

# What CPUBuffer and CUDABuffer share: the shape, the element type, the pixel format,
# which input each row is and what was cropped from it (the properties shape and dtype are
# Batch's). The element type is the pair (dtype_code, itemsize): uint8 (kDLUInt, 1),
# uint16 (kDLUInt, 2), float16 (kDLFloat, 2) or float32 (kDLFloat, 4); set_shape checks it.
cdef class Batch:
    cdef int ndim
    cdef int64_t _shape[MAX_NDIM]
    cdef int itemsize           # bytes per element: 1, 2 or 4
    cdef int dtype_code         # DLPack's type code: kDLUInt or kDLFloat
    cdef readonly str pix_fmt
    cdef readonly object indices
    cdef readonly dict errors
    # For a batch from the loaders with crop= or hflip=: a tuple with one
    # (x, y, w, h, flipped) per row, in the source image's pixels; else None.
    cdef readonly object crops
    # For a batch from the dataset iterators: each row's key (path, "shard.tar/member",
    # "file.parquet#row") and label (None when the source has none); else None.
    cdef readonly object keys
    cdef readonly object labels

cdef class CPUBuffer(Batch):
    cdef void *data             # never NULL once built
    cdef free_fn_t free_fn      # releases data; NULL if owner keeps it alive
    cdef object owner           # optional Python object that owns data
    cdef readonly bint pinned

    @staticmethod
    cdef CPUBuffer allocate(tuple shape, int itemsize, str pix_fmt, HostAllocator allocator=*,
                            bint is_float=*)

    cdef size_t nbytes_c(self) noexcept nogil
    cdef size_t row_bytes(self) noexcept nogil
    cdef void truncate_rows(self, int64_t n) noexcept nogil

# The unversioned DLPack export, shared with CUDABuffer: the deleter drops the
# reference in manager_ctx and frees the shape array and the struct.
cdef void dl_deleter(DLManagedTensor *t) noexcept nogil
# Drops a capsule's reference to its owner from any thread; leaks it while the
# interpreter finalizes (shared with CUDABuffer's versioned deleter).
cdef void release_manager(void *obj) noexcept nogil
cdef void dl_capsule_destructor(object capsule) noexcept
# A "dltensor" capsule of t that keeps owner alive (t is freed if it cannot be made).
cdef object dl_capsule(DLManagedTensor *t, object owner)
# The capsule of any DLPack struct (unversioned or versioned) whose deleter drops owner.
cdef object dl_wrap(void *t, void *shape, const char *name,
                    void (*destructor)(object) noexcept, object owner)

# What CPUBuffer and CUDABuffer share (one implementation of their shape, dtype and DLPack
# tensor). set_shape fills dst[:ndim] from shape (1 to MAX_NDIM non-negative dims, and
# (itemsize, code) one of the four element types; ValueError otherwise) and returns the
# byte count.
cdef size_t set_shape(int64_t *dst, int *ndim, tuple shape, int itemsize, int code,
                      str what) except? 0
cdef tuple shape_tuple(const int64_t *shape, int ndim)
# "uint8", "uint16", "float16" or "float32".
cdef str dtype_name(int itemsize, int code)
# The array interfaces' typestr: "|u1", "<u2", "<f2" or "<f4".
cdef str typestr(int itemsize, int code)
# The element type named dtype ("uint8", "uint16", "float16", "float32"): returns its
# code and sets *itemsize; ValueError for any other name.
cdef int parse_dtype(object dtype, int *itemsize) except -1
# Fill a DLTensor (C order, strides in elements); its shape and strides are one malloc
# block at t.shape, freed by the deleters with free(t.shape).
cdef int fill_dltensor(DLTensor *t, void *data, int device_type, int device_id,
                       const int64_t *shape, int ndim, int itemsize, int code) except -1
