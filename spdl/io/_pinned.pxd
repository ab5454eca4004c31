cdef enum:
    PINNED_CACHE_SLOTS = 4

# The size class of an n-byte request (the bytes its block holds), or 0 if too large.
cdef size_t pinned_class(size_t n) noexcept nogil
# For tests (spdl.io._testing): set the most the cache keeps (returns the old value);
# copy the size classes of the cached blocks to sizes (PINNED_CACHE_SLOTS), returns how many.
cdef size_t set_cache_bytes(size_t n) noexcept nogil
cdef int cache_sizes(size_t *sizes) noexcept nogil
