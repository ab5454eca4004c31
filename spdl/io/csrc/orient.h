/* EXIF orientation as a copy: one plane of an image decoded in its stored
 * orientation, written into the viewed orientation.
 *
 * The viewed pixel (x, y) is the stored pixel (sx, sy), where
 * (u, v) = swap ? (y, x) : (x, y), sx = mx ? sw - 1 - u : u, sy = my ? sh - 1 - v : v
 * (sw x sh: the stored plane; the viewed plane is sh x sw when swap).
 * Transposes go in 16 x 16 tiles so that both sides stay in cache.
 */
#ifndef SPDL_ORIENT_H
#define SPDL_ORIENT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* One tile of a transpose: dst rows y0..y1, columns x0..x1, a pixel of BPP bytes. */
#define SPDL_ORIENT_TILE(BPP)                                                          \
    for (y = ty; y < y1; y++) {                                                        \
        const uint8_t *sp = src + (ptrdiff_t)(mx ? sw - 1 - y : y) * (BPP)            \
                            + (ptrdiff_t)(my ? sh - 1 - tx : tx) * sstride;            \
        uint8_t *d = dst + (ptrdiff_t)y * dstride + (ptrdiff_t)tx * (BPP);            \
        for (x = tx; x < x1; x++, sp += step, d += (BPP))                              \
            memcpy(d, sp, (BPP));                                                      \
    }

static void spdl_orient_plane(const uint8_t *src, ptrdiff_t sstride, int sw, int sh,
                              uint8_t *dst, ptrdiff_t dstride, int bpp, int swap, int mx,
                              int my)
{
    int dw = swap ? sh : sw, dh = swap ? sw : sh;
    int x, y, tx, ty, x1, y1, k;
    ptrdiff_t step = my ? -sstride : sstride;
    if (!swap) {
        for (y = 0; y < dh; y++) {
            const uint8_t *s = src + (ptrdiff_t)(my ? sh - 1 - y : y) * sstride;
            uint8_t *d = dst + (ptrdiff_t)y * dstride;
            if (!mx) {
                memcpy(d, s, (size_t)dw * bpp);
                continue;
            }
            s += (ptrdiff_t)(sw - 1) * bpp;
            for (x = 0; x < dw; x++, s -= bpp, d += bpp)
                for (k = 0; k < bpp; k++)
                    d[k] = s[k];
        }
        return;
    }
    /* dst(x, y) = src(sx(y), sy(x)): a row of dst is a column of src */
    for (ty = 0; ty < dh; ty += 16) {
        y1 = ty + 16 < dh ? ty + 16 : dh;
        for (tx = 0; tx < dw; tx += 16) {
            x1 = tx + 16 < dw ? tx + 16 : dw;
            switch (bpp) {
            case 1: SPDL_ORIENT_TILE(1) break;
            case 2: SPDL_ORIENT_TILE(2) break;
            case 3: SPDL_ORIENT_TILE(3) break;
            case 4: SPDL_ORIENT_TILE(4) break;
            default:
                for (y = ty; y < y1; y++) {
                    const uint8_t *sp = src + (ptrdiff_t)(mx ? sw - 1 - y : y) * bpp
                                        + (ptrdiff_t)(my ? sh - 1 - tx : tx) * sstride;
                    uint8_t *d = dst + (ptrdiff_t)y * dstride + (ptrdiff_t)tx * bpp;
                    for (x = tx; x < x1; x++, sp += step, d += bpp)
                        memcpy(d, sp, (size_t)bpp);
                }
            }
        }
    }
}

#endif
