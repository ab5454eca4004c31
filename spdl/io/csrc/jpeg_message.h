/* The libjpeg message code of a TurboJPEG error string.
 *
 * TurboJPEG's API hands back only the formatted message of a warning or an error
 * (tjGetErrorCode says no more than warning or fatal); libjpeg itself knows the
 * code (jpeg_error_mgr.msg_code, the J_MESSAGE_CODE values of jerror.h). The code
 * is recovered here by matching the message against jerror.h's own table of
 * formats, compiled in from the header of the libjpeg-turbo we build against (the
 * way libjpeg builds its jpeg_std_message_table), so the caller decides on
 * JWRN_* codes and a reworded message in a later release comes with its header.
 * Without jerror.h every message has code -1 (unknown).
 */
#ifndef SPDL_JPEG_MESSAGE_H
#define SPDL_JPEG_MESSAGE_H

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#if defined(__has_include)
#if __has_include(<jpeglib.h>) && __has_include(<jerror.h>)
#define SPDL_HAVE_JERROR 1
#endif
#endif
#ifndef SPDL_HAVE_JERROR
/* Without the table every libjpeg-turbo warning would be unknown and benign damage would
 * silently take FFmpeg's decoder instead: refuse to build rather than behave differently. */
#error "libjpeg-turbo's jpeglib.h and jerror.h are needed (Debian/Ubuntu: apt-get install libjpeg-dev; or build with SPDL_NATIVE=bundle)"
#endif

#ifdef SPDL_HAVE_JERROR
#include <jpeglib.h>  /* JPEG_LIB_VERSION and the coding options the table depends on */
#include <jerror.h>   /* enum J_MESSAGE_CODE */

/* Two entries come from libjpeg's private jversion.h; they are never warnings. */
#ifndef JVERSION
#define JVERSION "?"
#endif
#ifndef JCOPYRIGHT_SHORT
#define JCOPYRIGHT_SHORT "?"
#endif
#define JMESSAGE(code, string) string,
static const char *const spdl_jpeg_formats[] = {
#include <jerror.h>
    NULL
};

#define SPDL_JWRN_EXTRANEOUS_DATA JWRN_EXTRANEOUS_DATA
#define SPDL_JWRN_JFIF_MAJOR JWRN_JFIF_MAJOR
#define SPDL_JTRC_JFIF_BADTHUMBNAILSIZE JTRC_JFIF_BADTHUMBNAILSIZE
#else
#define SPDL_JWRN_EXTRANEOUS_DATA (-2)
#define SPDL_JWRN_JFIF_MAJOR (-2)
#define SPDL_JTRC_JFIF_BADTHUMBNAILSIZE (-2)
#endif

/* Whether msg is what printf makes of the format f (numbers, strings, %%). */
static int spdl_format_matches(const char *f, const char *m) {
    while (*f) {
        if (*f != '%') {
            if (*f++ != *m++)
                return 0;
            continue;
        }
        f++;
        if (*f == '%') {
            if (*m != '%')
                return 0;
            f++, m++;
            continue;
        }
        while (*f && strchr("-+ #0123456789.lhzjt", *f))
            f++;
        char conv = *f ? *f++ : 0;
        if (conv == 's') {
            for (const char *p = m;; p++) {
                if (spdl_format_matches(f, p))
                    return 1;
                if (!*p)
                    return 0;
            }
        }
        const char *start = m;
        if (*m == '-')
            m++;
        if (conv == 'x' || conv == 'X')
            while (isxdigit((unsigned char)*m))
                m++;
        else
            while (isdigit((unsigned char)*m))
                m++;
        if (m == start)
            return 0;
    }
    return *m == 0;
}

/* The J_MESSAGE_CODE whose format gives msg, or -1. */
static int spdl_jpeg_message_code(const char *msg) {
#ifdef SPDL_HAVE_JERROR
    int i;
    for (i = 0; spdl_jpeg_formats[i] != NULL; i++)
        if (spdl_format_matches(spdl_jpeg_formats[i], msg))
            return i;
#endif
    (void)spdl_format_matches;
    return -1;
}

#endif
