/* BMP: the header fields FFmpeg 5.1's bmp decoder refuses a decodable file for, mended in
 * our copy of the file, and RLE4/RLE8 decoded here (FFmpeg's MS RLE decoder logs an error
 * for the end-of-bitmap marker after the last row of every RLE4 file, for a delta past
 * the picture, and writes an absolute run past the row end elsewhere than Pillow).
 *
 * Mended (bmp_mend): bfSize, which readers need not trust, becomes the file's size; a
 * palette shorter than the colours the header declares (biClrUsed 0 meaning 2^bpp, or
 * more than 2^bpp) is declared as long as it is; pixel data that lacks only the last
 * row's padding gets it back (zeros). Truncated pixel data stays truncated (bmp_missing
 * says by how much).
 *
 * RLE (bmp_rle_decode), following Microsoft's BITMAPINFOHEADER compression reference,
 * with Pillow's choices where the format leaves things open: pixels a delta skips, and
 * those after an end-of-bitmap marker, are palette index 0 (FFmpeg's and Pillow's
 * choice); a run past the row's end is cut at the row's end; an absolute run past it
 * continues on the next row (as Pillow); an end-of-line at the start of a row skips
 * that row (as Windows and FFmpeg; Pillow ignores it). Data that ends before the image
 * is full without an end-of-bitmap marker is truncated. No allocation; every read is
 * bounded by the size given. */
#ifndef SPDL_BMP_RLE_H
#define SPDL_BMP_RLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static inline uint32_t bmp_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void bmp_put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* The bytes missing from the uncompressed pixel data of the BMP d (n bytes): 0 when it is
 * complete, or for a compressed or unusable header (the decoder judges those). *row_pad
 * gets the padding bytes of a row, *pixels the image's width times height. */
static uint64_t bmp_missing(const uint8_t *d, size_t n, uint64_t *row_pad, uint64_t *pixels) {
    uint32_t ihsize, off, bpp, comp;
    int32_t w, h;
    uint64_t row, rows, data;
    *row_pad = *pixels = 0;
    if (n < 14 + 40 || d[0] != 'B' || d[1] != 'M')
        return 0;
    ihsize = bmp_le32(d + 14);
    off = bmp_le32(d + 10);
    w = (int32_t)bmp_le32(d + 18);
    h = (int32_t)bmp_le32(d + 22);
    bpp = d[28] | d[29] << 8;
    comp = bmp_le32(d + 30);
    if (ihsize < 40 || ihsize > 124 || off < 14 + ihsize || w <= 0 || h == 0 || h == INT32_MIN)
        return 0;
    if ((comp != 0 && comp != 3)
            || (bpp != 1 && bpp != 4 && bpp != 8 && bpp != 16 && bpp != 24 && bpp != 32))
        return 0;
    row = (((uint64_t)w * bpp + 31) / 32) * 4;
    rows = (uint64_t)(h < 0 ? -(int64_t)h : h);
    data = n > off ? n - off : 0;
    *row_pad = row - ((uint64_t)w * bpp + 7) / 8;
    *pixels = (uint64_t)w * rows;
    return data < row * rows ? row * rows - data : 0;
}

/* Mend the header of the BMP d (n bytes, our own copy) in place; returns the zero bytes
 * to append when only the last row's padding is missing (0 otherwise). */
static size_t bmp_mend(uint8_t *d, size_t n) {
    uint32_t ihsize, off, bpp, comp, used, colours, fit;
    uint64_t missing, pad, pixels;
    if (n < 14 + 40 || d[0] != 'B' || d[1] != 'M')
        return 0;
    ihsize = bmp_le32(d + 14);
    off = bmp_le32(d + 10);
    if (ihsize < 40 || ihsize > 124 || off < 14 + ihsize)
        return 0;
    bmp_put32(d + 2, (uint32_t)(n > 0xffffffffu ? 0xffffffffu : n));
    bpp = d[28] | d[29] << 8;
    comp = bmp_le32(d + 30);
    if (bpp >= 1 && bpp <= 8 && (comp == 0 || comp == 1 || comp == 2)) {
        used = bmp_le32(d + 46);
        colours = used == 0 || used > (1u << bpp) ? 1u << bpp : used;
        fit = (off - 14 - ihsize) / 4;
        if (fit > 0 && colours > fit)
            colours = fit;
        if (colours != used && (used == 0 ? colours != (1u << bpp) : 1))
            bmp_put32(d + 46, colours);
    }
    missing = bmp_missing(d, n, &pad, &pixels);
    return missing <= pad ? (size_t)missing : 0;
}

typedef struct {
    int width, height;      /* height > 0 */
    int top_down;
    int bits;               /* 4 or 8 */
    uint8_t palette[256][3];
    const uint8_t *data;    /* the RLE stream */
    size_t size;
} BmpRle;

enum { BMP_RLE_NO = 0, BMP_RLE_YES = 1 };

/* Whether d (n bytes) is an RLE4/RLE8 BMP decoded here; fills r, or msg when the file is
 * one but cannot be decoded (returns -1). */
static int bmp_rle_parse(const uint8_t *d, size_t n, BmpRle *r, char *msg, size_t size) {
    uint32_t ihsize, off, bpp, comp, used, colours, i;
    int32_t w, h;
    if (n < 14 + 40 || d[0] != 'B' || d[1] != 'M')
        return BMP_RLE_NO;
    ihsize = bmp_le32(d + 14);
    if (ihsize < 40 || ihsize > 124)
        return BMP_RLE_NO;
    bpp = d[28] | d[29] << 8;
    comp = bmp_le32(d + 30);
    if (!((comp == 1 && bpp == 8) || (comp == 2 && bpp == 4)))
        return BMP_RLE_NO;
    off = bmp_le32(d + 10);
    w = (int32_t)bmp_le32(d + 18);
    h = (int32_t)bmp_le32(d + 22);
    if (w <= 0 || h == 0 || h == INT32_MIN || (d[26] | d[27] << 8) != 1) {
        snprintf(msg, size, "BMP RLE%u header: size %dx%d or planes invalid", (unsigned)bpp,
                 (int)w, (int)h);
        return -1;
    }
    if (off < 14 + ihsize || off >= n) {
        snprintf(msg, size, "BMP RLE%u: pixel data offset %u outside the file (%zu bytes)",
                 (unsigned)bpp, (unsigned)off, n);
        return -1;
    }
    r->width = w;
    r->height = h < 0 ? -h : h;
    r->top_down = h < 0;
    r->bits = (int)bpp;
    used = bmp_le32(d + 46);
    colours = used == 0 || used > (1u << bpp) ? 1u << bpp : used;
    if (colours > (off - 14 - ihsize) / 4)
        colours = (off - 14 - ihsize) / 4;
    memset(r->palette, 0, sizeof(r->palette));
    for (i = 0; i < colours; i++) {
        const uint8_t *p = d + 14 + ihsize + 4 * i;
        r->palette[i][0] = p[2];
        r->palette[i][1] = p[1];
        r->palette[i][2] = p[0];
    }
    r->data = d + off;
    r->size = n - off;
    return BMP_RLE_YES;
}

/* Write one index at linear position pos (rows in file order) of dst (rgb24). */
static inline void bmp_rle_put(const BmpRle *r, uint8_t *dst, ptrdiff_t stride, uint64_t pos,
                               unsigned v) {
    uint64_t row = pos / (uint64_t)r->width;
    int x = (int)(pos % (uint64_t)r->width);
    int y = r->top_down ? (int)row : r->height - 1 - (int)row;
    uint8_t *p = dst + y * stride + (ptrdiff_t)x * 3;
    p[0] = r->palette[v][0];
    p[1] = r->palette[v][1];
    p[2] = r->palette[v][2];
}

/* Decode into dst (rgb24, rows of stride bytes), which holds palette entry 0 everywhere
 * on return where the stream does not write. 0, or -1 when the data ends before the
 * image is full and no end-of-bitmap marker came. */
static int bmp_rle_decode(const BmpRle *r, uint8_t *dst, ptrdiff_t stride) {
    const uint8_t *s = r->data;
    size_t n = r->size, i = 0;
    uint64_t total = (uint64_t)r->width * r->height, pos = 0, x = 0, k, end;
    int y, c;
    for (y = 0; y < r->height; y++)
        for (c = 0; c < r->width; c++)
            memcpy(dst + y * stride + (ptrdiff_t)c * 3, r->palette[0], 3);
    while (pos < total) {
        unsigned count, value;
        if (n - i < 2)
            return -1;
        count = s[i];
        value = s[i + 1];
        i += 2;
        if (count > 0) {  /* a run, cut at the row's end */
            uint64_t left = x < (uint64_t)r->width ? (uint64_t)r->width - x : 0;
            if (count > left)
                count = (unsigned)left;
            for (k = 0; k < count && pos + k < total; k++) {
                unsigned v = r->bits == 8 ? value : (k & 1) ? (value & 15) : (value >> 4);
                bmp_rle_put(r, dst, stride, pos + k, v);
            }
            pos += count;
            x += count;
        } else if (value == 0) {  /* end of line */
            if (pos % (uint64_t)r->width != 0 || x == 0)
                pos = (pos / (uint64_t)r->width + 1) * (uint64_t)r->width;
            x = 0;
        } else if (value == 1) {  /* end of bitmap */
            return 0;
        } else if (value == 2) {  /* delta: right, then up (down the rows in file order) */
            if (n - i < 2)
                return -1;
            pos += s[i] + (uint64_t)s[i + 1] * r->width;
            x = pos % (uint64_t)r->width;
            i += 2;
        } else {  /* absolute: value pixels, then padding to a 16-bit boundary */
            size_t bytes = r->bits == 8 ? value : (value + 1) / 2;
            if (n - i < bytes)
                return -1;
            end = pos + value < total ? pos + value : total;
            for (k = 0; pos + k < end; k++) {
                unsigned b = s[i + (r->bits == 8 ? k : k / 2)];
                bmp_rle_put(r, dst, stride, pos + k,
                            r->bits == 8 ? b : (k & 1) ? (b & 15) : (b >> 4));
            }
            pos += value;
            x += value;
            i += bytes + (bytes & 1);
            if (i > n)
                i = n;
        }
    }
    return 0;
}

#endif
