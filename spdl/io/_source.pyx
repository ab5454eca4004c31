# cython: language_level=3
"""Reading a source (a file path or bytes) into one padded packet.

A path is opened as a plain file with open(2), never through an FFmpeg
protocol, so names with colons or percent signs are just file names, and
only regular files are read (a FIFO or a device never blocks).
"""

import os

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from libc.errno cimport EINTR, errno
from libc.stdint cimport int64_t, uint8_t
from libc.string cimport memcpy
from posix.fcntl cimport O_CLOEXEC, O_NONBLOCK, O_RDONLY, open
from posix.stat cimport S_ISREG, fstat, struct_stat
from posix.unistd cimport close, read

from spdl.io._status cimport ERR_FORMAT, ERR_NOMEM, ERR_SOURCE, fail, fail_errno
from spdl.io.includes.libavcodec cimport av_new_packet, av_shrink_packet

cdef extern from "<fcntl.h>":
    int O_NOCTTY

cdef extern from "<limits.h>":
    int INT_MAX

cdef extern from "<stdio.h>":
    int snprintf(char *buf, size_t n, const char *fmt, ...) nogil

cdef enum:
    PADDING = 64  # AV_INPUT_BUFFER_PADDING_SIZE; av_new_packet adds and zeroes it


cdef class Source:
    def __cinit__(self):
        self.has_view = False

    def __dealloc__(self):
        if self.has_view:
            PyBuffer_Release(&self.view)
            self.has_view = False


#: What a source may be, for the messages that reject one.
SOURCE_TYPES = "a path (str, os.PathLike) or a bytes-like object (bytes, bytearray, memoryview)"


cdef Source make_source(object src, str bytes_name):
    """Wrap a path (str, os.PathLike) or a bytes-like object for nogil reading.

    Subclasses count as what they subclass: numpy.str_ is a path, a bytes
    subclass or a numpy uint8 array is data. Raises TypeError for anything else.
    """
    cdef Source s = Source.__new__(Source)
    if isinstance(src, (str, os.PathLike)):
        path = os.fspath(src)
        if isinstance(path, bytes):
            s.path_bytes = bytes(path)
            s.name = os.fsdecode(path)
        else:
            s.path_bytes = os.fsencode(path)
            s.name = str(path)  # the builtin, also for numpy.str_ and other subclasses
        if b"\0" in s.path_bytes:  # no file can have this name: an error for this input only
            s.invalid = "the path contains a NUL byte"
            s.path_bytes = b""
        s.ref.path = s.path_bytes
        s.ref.data = NULL
        s.ref.size = 0
        return s
    try:  # bytes, bytearray, memoryview, a contiguous numpy array ...
        PyObject_GetBuffer(src, &s.view, PyBUF_SIMPLE)
    except (TypeError, BufferError):
        raise TypeError(f"a source must be {SOURCE_TYPES}, not {type(src).__name__}") from None
    s.has_view = True
    s.ref.path = NULL
    s.ref.data = <const uint8_t *>s.view.buf
    s.ref.size = s.view.len
    s.name = bytes_name
    return s


def make_sources(srcs, indices=None):
    """The Source of each item of srcs, for a batch; bytes items are named "bytes #i".

    indices, if given, are the items' indices in the caller's list (the names
    and the messages use them). Raises TypeError naming the index of the first
    item that is not a source, and for a srcs that is one source rather than a
    list of them.
    """
    if isinstance(srcs, (str, bytes, bytearray, memoryview, os.PathLike)):
        raise TypeError(f"srcs must be a list of sources, not a single {type(srcs).__name__}; "
                        "wrap it in a list")
    try:
        items = list(srcs)
    except TypeError:
        raise TypeError(f"srcs must be a list of sources, not {type(srcs).__name__}") from None
    if indices is None:
        indices = range(len(items))
    out = []
    for i, src in zip(indices, items):
        try:
            out.append(make_source(src, f"bytes #{i}"))
        except TypeError:
            raise TypeError(f"srcs[{i}] is a {type(src).__name__}; expected {SOURCE_TYPES}") from None
    return out


cdef int _read_file(const char *path, int64_t max_file_size, AVPacket *pkt,
                    Status *err) noexcept nogil:
    cdef struct_stat st
    cdef char msg[128]
    cdef int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
    if fd < 0:
        return fail_errno(err, "open", errno)
    if fstat(fd, &st) != 0:
        close(fd)
        return fail_errno(err, "fstat", errno)
    if not S_ISREG(st.st_mode):
        close(fd)
        return fail(err, ERR_SOURCE, "demux", "open", 0, "not a regular file")
    if st.st_size > max_file_size or st.st_size > INT_MAX - PADDING:
        close(fd)
        snprintf(msg, sizeof(msg), "file is %lld bytes, more than max_file_size (%lld)",
                 <long long>st.st_size, <long long>max_file_size)
        return fail(err, ERR_SOURCE, "demux", "open", 0, msg)
    cdef int size = <int>st.st_size
    if av_new_packet(pkt, size) < 0:
        close(fd)
        return fail(err, ERR_NOMEM, "demux", "av_new_packet", 0, "out of memory")
    cdef int got = 0
    cdef Py_ssize_t n
    while got < size:
        n = read(fd, pkt.data + got, size - got)
        if n < 0:
            if errno == EINTR:
                continue
            close(fd)
            return fail_errno(err, "read", errno)
        if n == 0:  # the file shrank while we read it
            break
        got += n
    close(fd)
    if got < size:
        av_shrink_packet(pkt, got)
    return 0


cdef int read_source(const SourceRef *src, int64_t max_file_size, AVPacket *pkt,
                     Status *err) noexcept nogil:
    """Fill pkt with the whole source, followed by zeroed padding."""
    if src.path != NULL:
        if _read_file(src.path, max_file_size, pkt, err) < 0:
            return -1
    else:
        if src.size > INT_MAX - PADDING:
            return fail(err, ERR_SOURCE, "demux", "read", 0, "bytes source larger than 2 GiB")
        if av_new_packet(pkt, <int>src.size) < 0:
            return fail(err, ERR_NOMEM, "demux", "av_new_packet", 0, "out of memory")
        if src.size:
            memcpy(pkt.data, src.data, src.size)
    if pkt.size == 0:
        return fail(err, ERR_FORMAT, "demux", "read", 0, "the input is empty")
    return 0
