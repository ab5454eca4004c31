cdef class _Library:
    cdef void *handle
    cdef readonly str path
    cdef readonly str label
    cdef readonly tuple tried       # the candidates before it that did not load

    # The symbol's address, or NULL after appending its name to missing.
    cdef void *sym(self, const char *name, list missing)
    # The symbol's address, or NULL.
    cdef void *optional(self, const char *name)

# Fill a table of function pointers (a struct of them, size bytes, declared in the order of
# names) by dlsym; CUDAUnavailableError naming every function lib lacks.
cdef int fill_table(_Library lib, void **slots, size_t size, tuple names) except -1
