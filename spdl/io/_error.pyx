# cython: language_level=3
"""Turning FFmpeg return codes and nogil failures into typed exceptions."""

from libc.string cimport strerror, strstr

cdef extern from "<stdio.h>":
    int snprintf(char *buf, size_t n, const char *fmt, ...) nogil

from spdl.io.includes.libavutil cimport AVERROR, av_strerror

from spdl.io._errors import (
    AllocationError,
    ConfigError,
    DecodeError,
    FilterError,
    ImageTooLargeError,
    SourceError,
    SpdlIOError,
    UnsupportedFormatError,
)


cdef extern from *:
    """
    #include <stdarg.h>
    #include <stdio.h>
    #include <string.h>
    #include <libavutil/log.h>

    /* FFmpeg logs from the thread that runs the call, so a thread-local buffer
       holds the messages of the image that thread is working on. */
    static __thread char spdl_log_first[256];
    static __thread char spdl_log_all[1024];
    static int spdl_log_print_level = AV_LOG_QUIET;

    static void spdl_log_callback(void *avcl, int level, const char *fmt, va_list vl) {
        char line[256];
        int prefix = 0;
        va_list copy;
        if (level > AV_LOG_WARNING && level > spdl_log_print_level)
            return;
        va_copy(copy, vl);
        av_log_format_line2(avcl, level, fmt, copy, line, sizeof(line), &prefix);
        va_end(copy);
        if (level <= spdl_log_print_level)
            fputs(line, stderr);
        line[strcspn(line, "\\n")] = 0;
        if (level <= AV_LOG_ERROR && spdl_log_first[0] == 0)
            snprintf(spdl_log_first, sizeof(spdl_log_first), "%s", line);
        size_t used = strlen(spdl_log_all);
        if (used + 2 < sizeof(spdl_log_all))
            snprintf(spdl_log_all + used, sizeof(spdl_log_all) - used, "%s\\n", line);
    }
    static void spdl_log_clear(void) { spdl_log_first[0] = 0; spdl_log_all[0] = 0; }
    static const char *spdl_log_get_first(void) { return spdl_log_first; }
    static const char *spdl_log_get_all(void) { return spdl_log_all; }
    static void spdl_log_install(void) { av_log_set_callback(spdl_log_callback); }
    static void spdl_log_set_print_level(int level) { spdl_log_print_level = level; }
    """
    void spdl_log_clear() noexcept nogil
    const char *spdl_log_get_first() noexcept nogil
    const char *spdl_log_get_all() noexcept nogil
    void spdl_log_install() noexcept nogil
    void spdl_log_set_print_level(int level) noexcept nogil


cdef void log_clear() noexcept nogil:
    spdl_log_clear()


cdef const char *log_first_error() noexcept nogil:
    return spdl_log_get_first()


cdef int log_saw(const char *needle) noexcept nogil:
    """Whether a message (error or warning) since log_clear() contains needle."""
    return strstr(spdl_log_get_all(), needle) != NULL


cdef void log_install() noexcept nogil:
    spdl_log_install()


def set_ffmpeg_log_level(int level):
    """Print FFmpeg's messages at this level or more severe to stderr.

    The default, -8 (AV_LOG_QUIET), prints nothing: errors reach the caller
    in the exceptions instead. 16 is AV_LOG_ERROR, 24 AV_LOG_WARNING.
    """
    spdl_log_set_print_level(level)


log_install()


class _Cancelled(SpdlIOError):
    pass


cdef int fail(ErrorInfo *err, int kind, const char *stage, const char *op, int code,
              const char *detail) noexcept nogil:
    err.kind = kind
    err.stage = stage
    err.op = op
    err.code = code
    err.sys_errno = 0
    cdef const char *ff = spdl_log_get_first()
    if detail != NULL and ff[0] != 0:
        snprintf(err.detail, sizeof(err.detail), "%s (FFmpeg: %s)", detail, ff)
    elif detail != NULL:
        snprintf(err.detail, sizeof(err.detail), "%s", detail)
    elif ff[0] != 0:
        snprintf(err.detail, sizeof(err.detail), "%s", ff)
    else:
        err.detail[0] = 0
    return -1


cdef int fail_errno(ErrorInfo *err, const char *op, int sys_errno) noexcept nogil:
    fail(err, ERR_SOURCE, "demux", op, 0, strerror(sys_errno))
    err.sys_errno = sys_errno
    return -1


cdef str av_error_string(int code):
    cdef char buf[128]
    if av_strerror(code, buf, sizeof(buf)) < 0:
        return f"FFmpeg error {code}"
    return buf.decode("utf-8", "replace")


_CLASSES = {
    ERR_SOURCE: SourceError,
    ERR_FORMAT: UnsupportedFormatError,
    ERR_DECODE: DecodeError,
    ERR_FILTER: FilterError,
    ERR_TOO_LARGE: ImageTooLargeError,
    ERR_CONFIG: ConfigError,
    ERR_NOMEM: AllocationError,
    ERR_CANCELLED: _Cancelled,
}


cdef object make_error(const ErrorInfo *err, object source):
    """The exception that describes err; source is a path or "bytes #i"."""
    stage = err.stage.decode() if err.stage != NULL else "load"
    op = err.op.decode() if err.op != NULL else "?"
    reasons = []
    if err.detail[0] != 0:
        reasons.append(err.detail.decode("utf-8", "replace"))
    if err.code < 0 and err.sys_errno == 0:
        reasons.append(av_error_string(err.code))
    reason = "; ".join(reasons) or "unknown error"
    msg = f"{stage}: {op} failed for {source}: {reason}"
    cls = _CLASSES.get(err.kind, DecodeError)
    exc = cls(msg, source=source, stage=stage)
    if err.sys_errno:
        exc.errno = err.sys_errno
        exc.strerror = reason
        exc.filename = source
    return exc


cdef int raise_error(const ErrorInfo *err, object source) except -1:
    raise make_error(err, source)
