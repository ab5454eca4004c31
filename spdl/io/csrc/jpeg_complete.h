/* Whether a JPEG's scans are all there: libjpeg reads them and says.
 *
 * A JPEG whose end-of-image marker alone is missing is shown by browsers; one cut
 * inside its entropy-coded data, or between the scans of a progressive image, is
 * damaged. Only the decoder knows where a scan's data should end, so libjpeg reads
 * the scans (buffered-image mode: entropy decoding into the coefficient buffer, no
 * inverse DCT) of data that ends in an EOI, and the scans are complete when
 * - no warning but the harmless ones came (running into the EOI inside a scan is
 *   JWRN_HIT_MARKER, "premature end of data segment"; data ending with no EOI is
 *   JWRN_JPEG_EOF), and
 * - every component was in a scan (sequential), or every coefficient of every
 *   component was refined to its last bit (progressive: libjpeg's coef_bits all 0).
 * The error manager, the warning filter and the bound on the number of scans are
 * the region decoder's (jpeg_region.h); the coefficient buffer is bounded here.
 */
#ifndef SPDL_JPEG_COMPLETE_H
#define SPDL_JPEG_COMPLETE_H

/* the region decoder's other functions are not used here */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "jpeg_region.h"
#pragma GCC diagnostic pop

/* 1 when the scans of data (size bytes, ending in an EOI) are complete; 0 when they
 * are not, or when the image is larger than max_pixels or needs more than max_memory
 * bytes of coefficients to tell. */
static int spdl_jpeg_scans_complete(const unsigned char *data, unsigned long size,
                                    long long max_pixels, long max_memory)
{
    spdl_jregion *r = spdl_jregion_new();
    unsigned char seen[MAX_COMPONENTS];
    int ci, k, ret;
    volatile int complete = 0;
    if (r == NULL)
        return 0;
    memset(seen, 0, sizeof(seen));
    if (setjmp(r->jump))
        goto done;              /* an error: not complete */
    r->cinfo.mem->max_memory_to_use = max_memory;
    jpeg_mem_src(&r->cinfo, data, size);
    if (jpeg_read_header(&r->cinfo, TRUE) != JPEG_HEADER_OK
            || (long long)r->cinfo.image_width * r->cinfo.image_height > max_pixels)
        goto done;
    r->cinfo.buffered_image = TRUE;
    jpeg_start_decompress(&r->cinfo);   /* reads up to the first scan's data */
    for (;;) {
        if (r->bad_warning)
            goto done;
        for (k = 0; k < r->cinfo.comps_in_scan; k++)
            seen[r->cinfo.cur_comp_info[k]->component_index] = 1;
        do {
            ret = jpeg_consume_input(&r->cinfo);
        } while (ret == JPEG_ROW_COMPLETED || ret == JPEG_SCAN_COMPLETED);
        if (r->bad_warning || ret == JPEG_SUSPENDED)
            goto done;
        if (ret == JPEG_REACHED_EOI)
            break;
        /* JPEG_REACHED_SOS: the next scan's header is read */
    }
    for (ci = 0; ci < r->cinfo.num_components; ci++) {
        if (!seen[ci])
            goto done;
        if (r->cinfo.progressive_mode)
            for (k = 0; k < DCTSIZE2; k++)
                if (r->cinfo.coef_bits[ci][k] != 0)
                    goto done;
    }
    complete = 1;
done:
    spdl_jregion_free(r);   /* jpeg_destroy_decompress: whatever state it is in */
    return complete;
}

#endif
