# The error funnel: nogil code records a failure in an ErrorInfo and returns -1;
# code holding the GIL turns it into a typed exception with raise_error().

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

cdef struct ErrorInfo:
    int kind          # an ErrorKind
    int code          # an AVERROR code (negative), or 0
    int sys_errno     # errno for ERR_SOURCE, or 0
    const char *stage # "demux", "decode", "filter", "convert"
    const char *op    # the call that failed, e.g. "avcodec_send_packet"
    char detail[256]  # extra text, may be empty

cdef int fail(ErrorInfo *err, int kind, const char *stage, const char *op, int code,
              const char *detail) noexcept nogil
cdef int fail_errno(ErrorInfo *err, const char *op, int sys_errno) noexcept nogil
cdef object make_error(const ErrorInfo *err, object source)
cdef int raise_error(const ErrorInfo *err, object source) except -1
cdef str av_error_string(int code)

# FFmpeg's log, captured per thread: the first error message since log_clear().
cdef void log_clear() noexcept nogil
cdef const char *log_first_error() noexcept nogil
cdef int log_saw(const char *needle) noexcept nogil
cdef void log_install() noexcept nogil
