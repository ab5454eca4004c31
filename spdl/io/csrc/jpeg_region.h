/* A region of a JPEG, decoded alone: libjpeg's partial decompression.
 *
 * TurboJPEG 2.x decodes whole images only; libjpeg's own API can leave out
 * the columns left and right of a region (jpeg_crop_scanline: no inverse DCT,
 * upsampling or colour conversion for them), skip the rows above it
 * (jpeg_skip_scanlines: entropy decoding only) and stop after its last row
 * (jpeg_abort_decompress: nothing below it is read at all). With the same
 * defaults as TurboJPEG (accurate integer DCT, fancy upsampling), the region
 * holds the pixels a whole decode has there.
 *
 * libjpeg reports errors by calling error_exit, which must not return: here it
 * longjmps back into the call that was running. Warnings are counted; the ones
 * real files carry and that leave the image whole are let through, any other
 * one makes the call return SPDL_JREGION_RETRY, for a decoder that judges
 * damage itself (the caller's FFmpeg path).
 */
#ifndef SPDL_JPEG_REGION_H
#define SPDL_JPEG_REGION_H

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#define SPDL_JREGION_RETRY 1   /* not for this path: decode it another way */
#define SPDL_JREGION_MAX_SCANS 500

typedef struct {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr jerr;
    struct jpeg_progress_mgr progress;
    jmp_buf jump;
    int bad_warning;            /* a warning that may mean damage */
    int code;                   /* the message code of the error (or bad warning) */
    int started;                /* jpeg_start_decompress ran: abort before the next image */
    char message[JMSG_LENGTH_MAX + 64];
} spdl_jregion;

static void spdl_jregion_error_exit(j_common_ptr c)
{
    spdl_jregion *r = (spdl_jregion *)c->client_data;
    r->code = c->err->msg_code;
    c->err->format_message(c, r->message);
    longjmp(r->jump, 1);
}

static void spdl_jregion_emit(j_common_ptr c, int level)
{
    spdl_jregion *r = (spdl_jregion *)c->client_data;
    int code = c->err->msg_code;
    if (level >= 0)
        return;                 /* trace messages */
    c->err->num_warnings++;
    /* The two warnings real files carry that leave the image whole: bytes between
     * markers, and a JFIF version this decoder does not know. */
    if (code == JWRN_EXTRANEOUS_DATA || code == JWRN_JFIF_MAJOR)
        return;
    if (!r->bad_warning) {
        r->bad_warning = 1;
        r->code = code;
        c->err->format_message(c, r->message);
    }
}

static void spdl_jregion_quiet(j_common_ptr c)
{
    (void)c;                    /* messages are kept in r->message, never printed */
}

static void spdl_jregion_progress(j_common_ptr c)
{
    spdl_jregion *r = (spdl_jregion *)c->client_data;
    j_decompress_ptr d = (j_decompress_ptr)c;
    if (d->input_scan_number > SPDL_JREGION_MAX_SCANS) {
        /* a progressive JPEG with hundreds of scans: refused, not decoded for minutes */
        r->code = 0;
        snprintf(r->message, sizeof(r->message),
                 "the progressive JPEG has more than %d scans", SPDL_JREGION_MAX_SCANS);
        longjmp(r->jump, 1);
    }
}

static spdl_jregion *spdl_jregion_new(void)
{
    spdl_jregion *r = (spdl_jregion *)calloc(1, sizeof(spdl_jregion));
    if (r == NULL)
        return NULL;
    r->cinfo.err = jpeg_std_error(&r->jerr);
    r->jerr.error_exit = spdl_jregion_error_exit;
    r->jerr.emit_message = spdl_jregion_emit;
    r->jerr.output_message = spdl_jregion_quiet;
    r->cinfo.client_data = r;
    if (setjmp(r->jump)) {      /* out of memory in jpeg_create_decompress */
        free(r);
        return NULL;
    }
    jpeg_create_decompress(&r->cinfo);
    r->progress.progress_monitor = spdl_jregion_progress;
    r->cinfo.progress = &r->progress;
    return r;
}

static void spdl_jregion_free(spdl_jregion *r)
{
    if (r == NULL)
        return;
    jpeg_destroy_decompress(&r->cinfo);
    free(r);
}

/* Read the header of data: 0 with the size in *w, *h; SPDL_JREGION_RETRY for a
 * colour space this path does not convert (CMYK, YCCK); -1 with r->message set. */
static int spdl_jregion_header(spdl_jregion *r, const unsigned char *data, unsigned long size,
                               int *w, int *h)
{
    if (r->started) {
        jpeg_abort_decompress(&r->cinfo);
        r->started = 0;
    }
    r->bad_warning = 0;
    r->code = 0;
    r->message[0] = 0;
    r->jerr.num_warnings = 0;
    if (setjmp(r->jump)) {
        jpeg_abort_decompress(&r->cinfo);
        return -1;
    }
    jpeg_mem_src(&r->cinfo, data, size);
    if (jpeg_read_header(&r->cinfo, TRUE) != JPEG_HEADER_OK) {
        jpeg_abort_decompress(&r->cinfo);
        snprintf(r->message, sizeof(r->message), "no image in the JPEG data");
        return -1;
    }
    *w = (int)r->cinfo.image_width;
    *h = (int)r->cinfo.image_height;
    if (r->cinfo.jpeg_color_space == JCS_CMYK || r->cinfo.jpeg_color_space == JCS_YCCK) {
        jpeg_abort_decompress(&r->cinfo);
        return SPDL_JREGION_RETRY;
    }
    if (r->bad_warning) {
        jpeg_abort_decompress(&r->cinfo);
        return SPDL_JREGION_RETRY;
    }
    return 0;
}

/* Decode, at the DCT scale num/8, rows [y0, y0 + rows) of the columns from x0, cols
 * wide, of the image whose header was just read, as out_space (a J_COLOR_SPACE of
 * 1, 3 or 4 bytes a pixel: ch). The columns decoded start at *xs (at or left of
 * x0, on an iMCU boundary) and are *ws wide; *alloc(ctx, bytes) gives the buffer
 * for rows x (*ws * ch) bytes, or NULL when out of memory. Returns 0,
 * SPDL_JREGION_RETRY after a warning that may mean damage, or -1 with r->message
 * set (-2: out of memory). */
typedef unsigned char *(*spdl_jregion_alloc)(void *ctx, size_t bytes);

static int spdl_jregion_decode(spdl_jregion *r, int num, int out_space, int ch, int x0, int cols,
                               int y0, int rows, spdl_jregion_alloc alloc, void *ctx, int *xs,
                               int *ws)
{
    JDIMENSION xoff, width;
    JSAMPROW row;
    unsigned char *buf;
    size_t pitch;
    int y;
    if (setjmp(r->jump)) {
        jpeg_abort_decompress(&r->cinfo);
        r->started = 0;
        return -1;
    }
    r->cinfo.scale_num = (unsigned)num;
    r->cinfo.scale_denom = 8;
    r->cinfo.out_color_space = (J_COLOR_SPACE)out_space;
    r->cinfo.dct_method = JDCT_ISLOW;
    r->cinfo.do_fancy_upsampling = TRUE;
    jpeg_start_decompress(&r->cinfo);
    r->started = 1;
    if (r->cinfo.output_components != ch || x0 < 0 || y0 < 0 || cols < 1 || rows < 1
            || (JDIMENSION)(x0 + cols) > r->cinfo.output_width
            || (JDIMENSION)(y0 + rows) > r->cinfo.output_height) {
        jpeg_abort_decompress(&r->cinfo);
        r->started = 0;
        return SPDL_JREGION_RETRY;  /* cannot happen for a region inside the image */
    }
    xoff = (JDIMENSION)x0;
    width = (JDIMENSION)cols;
    if (xoff > 0 || width < r->cinfo.output_width)
        jpeg_crop_scanline(&r->cinfo, &xoff, &width);
    *xs = (int)xoff;
    *ws = (int)width;
    pitch = (size_t)width * ch;
    buf = alloc(ctx, pitch * rows);
    if (buf == NULL) {
        jpeg_abort_decompress(&r->cinfo);
        r->started = 0;
        return -2;
    }
    if (y0 > 0 && jpeg_skip_scanlines(&r->cinfo, (JDIMENSION)y0) != (JDIMENSION)y0) {
        jpeg_abort_decompress(&r->cinfo);
        r->started = 0;
        snprintf(r->message, sizeof(r->message), "the JPEG data ended before its rows");
        return -1;
    }
    for (y = 0; y < rows; y++) {
        row = buf + (size_t)y * pitch;
        if (jpeg_read_scanlines(&r->cinfo, &row, 1) != 1) {
            jpeg_abort_decompress(&r->cinfo);
            r->started = 0;
            snprintf(r->message, sizeof(r->message), "the JPEG data ended before its rows");
            return -1;
        }
    }
    /* The rows below the region are never read. */
    jpeg_abort_decompress(&r->cinfo);
    r->started = 0;
    return r->bad_warning ? SPDL_JREGION_RETRY : 0;
}

#endif
