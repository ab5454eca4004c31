# cython: language_level=3
"""The status funnel: what a stage did to one source, and the exception it becomes.

Each stage fills the Status it is given (kind, code, stage, operation, source
index, detail) and returns -1 on failure, without the GIL. FFmpeg's log lines
reach the status of the context that logged them: the stage points the
context's opaque (AVCodecContext, AVFormatContext, AVFilterGraph) at its
status, and the log callback follows a line's context (and its parents) there.
Lines from a context with no opaque (swscale, or none at all) go to the status
the thread bound with status_bind(), if any. The source's name is attached when
make_error() builds the exception, from the status's index.
"""

from libc.string cimport strerror, strlen, strncat

cdef extern from "<stdio.h>":
    int snprintf(char *buf, size_t n, const char *fmt, ...) nogil

from spdl.io.includes.libavutil cimport (
    AV_DICT_IGNORE_SUFFIX, AVDictionary, AVDictionaryEntry, av_dict_get, av_strerror,
)

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
    #include <libavutil/imgutils.h>
    #include <libavutil/log.h>
    #include <libavcodec/avcodec.h>
    #include <libavformat/avformat.h>
    #include <libavfilter/avfilter.h>
    #include "csrc/status.h"

    /* The receiver of lines from contexts that carry no opaque, set by the stage. */
    static __thread spdl_status *spdl_bound;
    static int spdl_log_print_level = AV_LOG_QUIET;
    /* Classes told apart by identity, found once at install. */
    static const AVClass *spdl_class_imgutils;     /* av_image_check_size2's */
    static const AVClass *spdl_class_graph;        /* AVFilterGraph's */

    /* The status of the context avcl (or of a parent it names), and whether the line
       comes from the image-size check. */
    static spdl_status *spdl_status_of(void *avcl, int *size_check) {
        int depth;
        for (depth = 0; avcl != NULL && depth < 4; depth++) {
            const AVClass *cls = *(const AVClass **)avcl;
            void *opaque = NULL;
            if (cls == NULL)
                return NULL;
            if (cls == spdl_class_imgutils)
                *size_check = 1;
            if (cls == avcodec_get_class()) {
                opaque = ((AVCodecContext *)avcl)->opaque;
            } else if (cls == avformat_get_class()) {
                opaque = ((AVFormatContext *)avcl)->opaque;
            } else if (cls == avfilter_get_class()) {
                AVFilterGraph *g = ((AVFilterContext *)avcl)->graph;
                opaque = g != NULL ? g->opaque : NULL;
            } else if (cls == spdl_class_graph) {
                opaque = ((AVFilterGraph *)avcl)->opaque;
            }
            if (opaque != NULL)
                return ((spdl_status *)opaque)->magic == SPDL_STATUS_MAGIC ? opaque : NULL;
            if (cls->parent_log_context_offset <= 0)
                return NULL;
            avcl = *(void **)((char *)avcl + cls->parent_log_context_offset);
        }
        return NULL;
    }

    static void spdl_status_add_line(spdl_status *st, int level, const char *line, int size_check) {
        if (level <= AV_LOG_ERROR) {
            if (st->log_errors++ == 0)
                snprintf(st->first_error, sizeof(st->first_error), "%s", line);
            if (size_check)
                st->size_refused = 1;
        } else {
            st->log_warnings++;
        }
        if (st->log_len + 2 < sizeof(st->log)) {
            int n = snprintf(st->log + st->log_len, sizeof(st->log) - st->log_len, "%s\\n", line);
            if (n > 0)
                st->log_len += (size_t)n < sizeof(st->log) - st->log_len ? (size_t)n
                               : sizeof(st->log) - st->log_len - 1;
        }
    }

    static void spdl_log_callback(void *avcl, int level, const char *fmt, va_list vl) {
        char line[256];
        int prefix = 0, size_check = 0;
        spdl_status *st;
        va_list copy;
        if (level > AV_LOG_WARNING && level > spdl_log_print_level)
            return;
        va_copy(copy, vl);
        av_log_format_line2(avcl, level, fmt, copy, line, sizeof(line), &prefix);
        va_end(copy);
        if (level <= spdl_log_print_level)
            fputs(line, stderr);
        if (level > AV_LOG_WARNING)
            return;
        line[strcspn(line, "\\n")] = 0;
        st = spdl_status_of(avcl, &size_check);
        if (st == NULL)
            st = spdl_bound;
        if (st != NULL)
            spdl_status_add_line(st, level, line, size_check);
    }

    static void spdl_capture_class(void *avcl, int level, const char *fmt, va_list vl) {
        if (avcl != NULL)
            spdl_class_imgutils = *(const AVClass **)avcl;
    }

    static void spdl_log_install(void) {
        AVFilterGraph *g = avfilter_graph_alloc();
        if (g != NULL) {
            spdl_class_graph = g->av_class;
            avfilter_graph_free(&g);
        }
        /* The size check logs through a context of its own class: provoke it once. */
        av_log_set_callback(spdl_capture_class);
        av_image_check_size2(0, 0, 0, AV_PIX_FMT_NONE, 0, NULL);
        av_log_set_callback(spdl_log_callback);
    }
    static void spdl_status_bind(spdl_status *st) { spdl_bound = st; }
    static void spdl_log_set_print_level(int level) { spdl_log_print_level = level; }
    """
    void spdl_status_bind(Status *st) noexcept nogil
    void spdl_log_install() noexcept nogil
    void spdl_log_set_print_level(int level) noexcept nogil


cdef void status_init(Status *st, Py_ssize_t index) noexcept nogil:
    """Make st ready for the work on the source at index (-1: not in a batch)."""
    st.magic = SPDL_STATUS_MAGIC
    st.kind = ERR_NONE
    st.code = 0
    st.sys_errno = 0
    st.stage = NULL
    st.op = NULL
    st.index = index
    st.detail[0] = 0
    st.log_errors = 0
    st.log_warnings = 0
    st.size_refused = 0
    st.first_error[0] = 0
    st.log_len = 0
    st.log[0] = 0


cdef void status_bind(Status *st) noexcept nogil:
    """Send this thread's log lines from contexts with no opaque to st (NULL: nowhere)
    until the next call. Unbind before st goes out of scope."""
    spdl_status_bind(st)


def set_ffmpeg_log_level(int level):
    """Print FFmpeg's messages at this level or more severe to stderr.

    The default, -8 (AV_LOG_QUIET), prints nothing: errors reach the caller
    in the exceptions instead. 16 is AV_LOG_ERROR, 24 AV_LOG_WARNING.
    """
    spdl_log_set_print_level(level)


spdl_log_install()


class _Cancelled(SpdlIOError):
    pass


cdef int fail(Status *st, int kind, const char *stage, const char *op, int code,
              const char *detail) noexcept nogil:
    """Record a failure in st and return -1. FFmpeg's first error line for st's
    contexts, if any, follows the detail (st must have been through status_init for that)."""
    cdef const char *ff = ""
    st.kind = kind
    st.stage = stage
    st.op = op
    st.code = code
    st.sys_errno = 0
    if st.magic == SPDL_STATUS_MAGIC:
        ff = <const char *>st.first_error
    if detail != NULL and ff[0] != 0:
        snprintf(st.detail, sizeof(st.detail), "%s (FFmpeg: %s)", detail, ff)
    elif detail != NULL:
        snprintf(st.detail, sizeof(st.detail), "%s", detail)
    elif ff[0] != 0:
        snprintf(st.detail, sizeof(st.detail), "%s", ff)
    else:
        st.detail[0] = 0
    return -1


cdef int fail_too_large(Status *st, const char *op, const char *what, long long width,
                        long long height, long long max_pixels) noexcept nogil:
    """Fail as ERR_TOO_LARGE for a what ("the image", "the WebP", ...) of width x height
    pixels, over max_pixels: the one wording of every decoder's size check."""
    cdef char msg[160]
    snprintf(msg, sizeof(msg), "%s is %lldx%lld, larger than max_pixels (%lld)", what, width,
             height, max_pixels)
    return fail(st, ERR_TOO_LARGE, "decode", op, 0, msg)


cdef int fail_errno(Status *st, const char *op, int sys_errno) noexcept nogil:
    fail(st, ERR_SOURCE, "demux", op, 0, strerror(sys_errno))
    st.sys_errno = sys_errno
    return -1


cdef int check_consumed(AVDictionary *left, const char *what, const char *name,
                        const char *stage, const char *op, Status *st) noexcept nogil:
    """0 if left (the options a library did not take) is empty; else fail with ERR_CONFIG
    naming them: "options not consumed by <what> '<name>': a b"."""
    cdef const AVDictionaryEntry *e = av_dict_get(left, "", NULL, AV_DICT_IGNORE_SUFFIX)
    cdef char msg[256]
    if e == NULL:
        return 0
    snprintf(msg, sizeof(msg), "options not consumed by %s '%s':", what, name)
    while e != NULL:
        strncat(msg, " ", sizeof(msg) - strlen(msg) - 1)
        strncat(msg, e.key, sizeof(msg) - strlen(msg) - 1)
        e = av_dict_get(left, "", e, AV_DICT_IGNORE_SUFFIX)
    return fail(st, ERR_CONFIG, stage, op, 0, msg)


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


cdef object make_error(const Status *st, object source):
    """The exception that describes st.

    source is the source's name (a path, or "bytes #i"), or the names of the
    whole batch, of which st.index picks the one.
    """
    name = source if isinstance(source, str) or st.index < 0 else source[st.index]
    stage = st.stage.decode() if st.stage != NULL else "load"
    op = st.op.decode() if st.op != NULL else "?"
    reasons = []
    if st.detail[0] != 0:
        reasons.append((<const char *>st.detail).decode("utf-8", "replace"))
    if st.code < 0 and st.sys_errno == 0:
        reasons.append(av_error_string(st.code))
    reason = "; ".join(reasons) or "unknown error"
    msg = f"{stage}: {op} failed for {name}: {reason}"
    cls = _CLASSES.get(st.kind, DecodeError)
    exc = cls(msg, source=name, stage=stage)
    if st.sys_errno:
        exc.errno = st.sys_errno
        exc.strerror = reason
        exc.filename = name
    return exc


cdef int raise_error(const Status *st, object source) except -1:
    raise make_error(st, source)
