# The status funnel: every stage records what happened to one source in a Status
# (csrc/status.h) and returns -1 on failure; code holding the GIL turns the status
# into a typed exception with make_error(), naming the source at that moment.

from spdl.io.includes.libavutil cimport AVDictionary

cdef enum ErrorKind:
    ERR_NONE = 0
    ERR_SOURCE        # SourceError (OSError)
    ERR_FORMAT        # UnsupportedFormatError (ValueError)
    ERR_DECODE        # DecodeError (ValueError)
    ERR_FILTER        # FilterError (ValueError)
    ERR_TOO_LARGE     # ImageTooLargeError (MemoryError)
    ERR_NOMEM         # MemoryError
    ERR_CONFIG        # ValueError: an option was not consumed, an unknown decoder ...
    ERR_CANCELLED     # the batch was cancelled before this image ran

cdef extern from "csrc/status.h":
    unsigned int SPDL_STATUS_MAGIC
    ctypedef struct Status "spdl_status":
        unsigned int magic
        int kind
        int code
        int sys_errno
        const char *stage
        const char *op
        Py_ssize_t index
        char detail[256]
        int log_errors
        int log_warnings
        int size_refused
        char first_error[200]
        size_t log_len
        char log[768]


cdef void status_init(Status *st, Py_ssize_t index) noexcept nogil
cdef void status_bind(Status *st) noexcept nogil
cdef int fail(Status *st, int kind, const char *stage, const char *op, int code,
              const char *detail) noexcept nogil
cdef int fail_errno(Status *st, const char *op, int sys_errno) noexcept nogil
cdef int fail_too_large(Status *st, const char *op, const char *what, long long width,
                        long long height, long long max_pixels) noexcept nogil
cdef int check_consumed(AVDictionary *left, const char *what, const char *name,
                        const char *stage, const char *op, Status *st) noexcept nogil
cdef object make_error(const Status *st, object source)
cdef int raise_error(const Status *st, object source) except -1
cdef str av_error_string(int code)
