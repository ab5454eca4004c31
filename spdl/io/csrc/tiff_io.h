/* libtiff over one packet in memory, with per-handle messages.
 *
 * The TIFF is opened with TIFFClientOpenExt on callbacks that read, seek and map a
 * byte range we own (nothing else is ever opened), and with TIFFOpenOptions whose
 * error and warning handlers write into this struct: no global handler, so images
 * decode on many threads at once and each one's messages stay its own.
 */
#ifndef SPDL_TIFF_IO_H
#define SPDL_TIFF_IO_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <tiffio.h>

typedef struct spdl_tiff_src {
    const unsigned char *data;
    uint64_t size;
    uint64_t pos;
    int errors;           /* calls of the error handler */
    int warnings;         /* calls of the warning handler */
    char message[200];    /* the first error, "module: text" */
} spdl_tiff_src;

static tmsize_t spdl_tiff_read(thandle_t h, void *buf, tmsize_t n)
{
    spdl_tiff_src *s = (spdl_tiff_src *)h;
    uint64_t left;
    if (n <= 0 || s->pos >= s->size)
        return 0;
    left = s->size - s->pos;
    if ((uint64_t)n > left)
        n = (tmsize_t)left;
    memcpy(buf, s->data + s->pos, (size_t)n);
    s->pos += (uint64_t)n;
    return n;
}

static tmsize_t spdl_tiff_write(thandle_t h, void *buf, tmsize_t n)
{
    (void)h; (void)buf; (void)n;
    return -1;  /* opened for reading only */
}

static toff_t spdl_tiff_seek(thandle_t h, toff_t off, int whence)
{
    spdl_tiff_src *s = (spdl_tiff_src *)h;
    uint64_t base;
    switch (whence) {
    case SEEK_SET: base = 0; break;
    case SEEK_CUR: base = s->pos; break;
    case SEEK_END: base = s->size; break;
    default: return (toff_t)-1;
    }
    if (off > UINT64_MAX - base)
        return (toff_t)-1;
    s->pos = base + off;  /* past the end is allowed; reads there return nothing */
    return (toff_t)s->pos;
}

static int spdl_tiff_close(thandle_t h)
{
    (void)h;
    return 0;
}

static toff_t spdl_tiff_size(thandle_t h)
{
    return (toff_t)((spdl_tiff_src *)h)->size;
}

static int spdl_tiff_map(thandle_t h, void **base, toff_t *size)
{
    spdl_tiff_src *s = (spdl_tiff_src *)h;
    *base = (void *)s->data;  /* libtiff only reads through a read-only open's map */
    *size = (toff_t)s->size;
    return 1;
}

static void spdl_tiff_unmap(thandle_t h, void *base, toff_t size)
{
    (void)h; (void)base; (void)size;
}

static int spdl_tiff_on_error(TIFF *tif, void *user, const char *module, const char *fmt,
                              va_list ap)
{
    spdl_tiff_src *s = (spdl_tiff_src *)user;
    size_t n = 0;
    (void)tif;
    if (s->errors++ == 0) {
        if (module != NULL && module[0] != '\0')
            n = (size_t)snprintf(s->message, sizeof(s->message), "%s: ", module);
        if (n < sizeof(s->message))
            vsnprintf(s->message + n, sizeof(s->message) - n, fmt, ap);
    }
    return 1;  /* handled: libtiff's global handler (stderr) is not called */
}

static int spdl_tiff_on_warning(TIFF *tif, void *user, const char *module, const char *fmt,
                                va_list ap)
{
    (void)tif; (void)module; (void)fmt; (void)ap;
    ((spdl_tiff_src *)user)->warnings++;  /* warnings never cost the pixels */
    return 1;
}

/* Open src's bytes; NULL (with src->message) when libtiff cannot read its first
 * directory. max_alloc bounds every single allocation libtiff makes for it. */
static TIFF *spdl_tiff_open(spdl_tiff_src *src, tmsize_t max_alloc)
{
    TIFF *tif;
    TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
    if (opts == NULL) {
        snprintf(src->message, sizeof(src->message), "out of memory");
        return NULL;
    }
    TIFFOpenOptionsSetErrorHandlerExtR(opts, spdl_tiff_on_error, src);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, spdl_tiff_on_warning, src);
    TIFFOpenOptionsSetMaxSingleMemAlloc(opts, max_alloc);
    tif = TIFFClientOpenExt("memory", "r", (thandle_t)src, spdl_tiff_read, spdl_tiff_write,
                            spdl_tiff_seek, spdl_tiff_close, spdl_tiff_size, spdl_tiff_map,
                            spdl_tiff_unmap, opts);
    TIFFOpenOptionsFree(opts);  /* the handle keeps its own copy */
    return tif;
}

/* libtiff's typed varargs getters, wrapped so that Cython passes the right types. */
static int spdl_tiff_u16(TIFF *tif, uint32_t tag, uint16_t *v)
{
    return TIFFGetFieldDefaulted(tif, tag, v);
}

static int spdl_tiff_u32(TIFF *tif, uint32_t tag, uint32_t *v)
{
    return TIFFGetFieldDefaulted(tif, tag, v);
}

static int spdl_tiff_extrasamples(TIFF *tif, uint16_t *n, const uint16_t **types)
{
    uint16_t *t = NULL;
    int ok = TIFFGetFieldDefaulted(tif, TIFFTAG_EXTRASAMPLES, n, &t);
    *types = t;
    if (!ok)
        *n = 0;
    return ok;
}

static int spdl_tiff_colormap(TIFF *tif, const uint16_t **r, const uint16_t **g,
                              const uint16_t **b)
{
    uint16_t *rr = NULL, *gg = NULL, *bb = NULL;
    int ok = TIFFGetField(tif, TIFFTAG_COLORMAP, &rr, &gg, &bb);
    *r = rr; *g = gg; *b = bb;
    return ok && rr != NULL && gg != NULL && bb != NULL;
}

static int spdl_tiff_jpeg_rgb(TIFF *tif)
{
    return TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
}

#endif
