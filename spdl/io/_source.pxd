from libc.stdint cimport int64_t, uint8_t

from spdl.io._status cimport Status
from spdl.io.includes.libavcodec cimport AVPacket

cdef struct SourceRef:
    const char *path        # file system encoded path, or NULL for bytes
    const uint8_t *data     # bytes data when path is NULL
    Py_ssize_t size

cdef class Source:
    """Keeps a source alive while nogil code reads it."""
    cdef SourceRef ref
    cdef bytes path_bytes
    cdef Py_buffer view
    cdef bint has_view
    cdef readonly str name
    cdef readonly str invalid   # why this source cannot be read at all, or None

cdef Source make_source(object src, str bytes_name)
cdef int read_source(const SourceRef *src, int64_t max_file_size, AVPacket *pkt,
                     Status *err) noexcept nogil
