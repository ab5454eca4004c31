/* The status of one stage's work on one source: what failed, where, and the
 * library messages logged for it.
 *
 * Each stage fills the status it is given (see _status.pyx): the kind of failure,
 * a code (an AVERROR, an errno, a libjpeg-turbo message code), the stage and the
 * operation, the source's index in its batch, and a short detail. FFmpeg's log
 * lines reach the status of the context that logged them: a context's opaque
 * (AVCodecContext, AVFormatContext, AVFilterGraph) points at its status, and the
 * log callback follows it there. Nothing is read from per-thread state afterwards.
 */
#ifndef SPDL_STATUS_H
#define SPDL_STATUS_H

#include <stddef.h>

#define SPDL_STATUS_MAGIC 0x53544154u  /* "STAT": set by status_init, checked by the log callback */

typedef struct spdl_status {
    unsigned int magic;      /* first, so a foreign opaque is told apart at the lowest risk */
    int kind;                /* an ErrorKind; 0 while nothing failed */
    int code;                /* an AVERROR (negative), a library's message code, or 0 */
    int sys_errno;           /* errno of a failed system call, or 0 */
    const char *stage;       /* "demux", "decode", "filter", "convert", "load" */
    const char *op;          /* the call that failed, e.g. "avcodec_send_packet" */
    Py_ssize_t index;        /* the source's index in its batch, or -1 */
    char detail[256];        /* our own words on the failure, may be empty */
    /* FFmpeg's messages for the contexts working for this status */
    int log_errors;          /* lines at AV_LOG_ERROR or more severe */
    int log_warnings;        /* lines at AV_LOG_WARNING */
    int size_refused;        /* av_image_check_size2 refused the image's size */
    char first_error[200];   /* the first line at AV_LOG_ERROR or more severe */
    size_t log_len;
    char log[768];           /* every error and warning line, as far as it fits */
} spdl_status;

#endif
