# cython: language_level=3
"""The page-locked host allocator: batches headed for the GPU are decoded straight into
page-locked memory, which makes the copy to the device a real asynchronous DMA."""

import atexit
import threading

from libc.stdint cimport intptr_t

from spdl.io._buffer cimport HostAllocator
from spdl.io._cuda_device cimport DeviceScope, enter_device, leave_device
from spdl.io._cuda_device import check_device
from spdl.io._cuda_runtime cimport CudaRuntimeApi, cudart_loaded, error_name
from spdl.io._keepalive cimport reap
from spdl.io._keepalive import synchronize_transfers
from spdl.io.includes.cuda_runtime cimport *
from spdl.io.includes.pthread cimport *




# cudaHostAlloc maps and pins pages (slow, milliseconds for a batch) and
# cudaFreeHost may synchronize the device, so freed blocks are kept for reuse:
# at most PINNED_CACHE_SLOTS blocks and PINNED_CACHE_BYTES (1 GiB) in all, the
# oldest let go first; a block larger than that alone is freed at once.
# Requests are rounded up to a size class (pinned_class) and served by the
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


cdef void _pinned_failed(const char *op, const char *what, int code, bint driver) noexcept nogil:
    cdef const char *name = error_name(code, driver)
    if name != NULL:
        snprintf(spdl_pinned_why, sizeof(spdl_pinned_why), "%s failed%s: %s", op, what, name)
    else:
        snprintf(spdl_pinned_why, sizeof(spdl_pinned_why), "%s failed%s: error %d", op, what, code)


cdef size_t set_cache_bytes(size_t n) noexcept nogil:
    global PINNED_CACHE_BYTES
    cdef size_t old = PINNED_CACHE_BYTES
    PINNED_CACHE_BYTES = n
    return old


cdef size_t pinned_class(size_t n) noexcept nogil:
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
    cdef size_t cls = pinned_class(size)
    cdef DeviceScope scope
    cdef cudaError_t err = cudaSuccess
    cdef const CudaRuntimeApi *rt = cudart_loaded()
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
    if enter_device(rt, device, &scope) == 0:
        err = rt.cudaHostAlloc(&base, cls + PINNED_HEADER, cudaHostAllocPortable)
        if err != cudaSuccess:
            _pinned_failed("cudaHostAlloc", "", err, False)
            base = NULL
    else:
        _pinned_failed(scope.op, " (making the allocator's device current)", scope.code, scope.driver)
    leave_device(rt, &scope)
    if base == NULL:
        return NULL
    (<size_t *>base)[0] = cls
    _block_device(base)[0] = device
    return <char *>base + PINNED_HEADER


cdef void _free_block(void *base) noexcept nogil:
    """cudaFreeHost in the primary context of the device the block was allocated for."""
    cdef DeviceScope scope
    cdef const CudaRuntimeApi *rt = cudart_loaded()
    if enter_device(rt, _block_device(base)[0], &scope) == 0:
        if rt.cudaFreeHost(base) != cudaSuccess:
            rt.cudaGetLastError()
    # else the block is leaked: freeing it from another context is not documented to work
    leave_device(rt, &scope)


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
    if cudart_loaded() != NULL:
        with nogil:
            _pinned_release_cache()


cdef int cache_sizes(size_t *sizes) noexcept nogil:
    cdef int i, n
    pthread_mutex_lock(&_pin_mutex)
    n = _pin_count
    for i in range(n):
        sizes[i] = _pin_cache[i].size
    pthread_mutex_unlock(&_pin_mutex)
    return n


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
    reap(False)
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



def _at_exit():
    synchronize_transfers()     # first: the parked page-locked batches come back to the cache
    release_pinned_memory()


atexit.register(_at_exit)
