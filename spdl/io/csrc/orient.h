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

static inline void spdl_px_copy(uint8_t *d, const uint8_t *s, int bpp)
{
    switch (bpp) {
    case 1: d[0] = s[0]; break;
    case 2: memcpy(d, s, 2); break;
    case 3: d[0] = s[0]; d[1] = s[1]; d[2] = s[2]; break;
    case 4: memcpy(d, s, 4); break;
    default: memcpy(d, s, (size_t)bpp);
    }
}

static void spdl_orient_plane(const uint8_t *src, ptrdiff_t sstride, int sw, int sh,
                              uint8_t *dst, ptrdiff_t dstride, int bpp, int swap, int mx,
                              int my)
{
    int dw = swap ? sh : sw, dh = swap ? sw : sh;
    int x, y, tx, ty, x1, y1;
    if (!swap) {
        for (y = 0; y < dh; y++) {
            const uint8_t *s = src + (ptrdiff_t)(my ? sh - 1 - y : y) * sstride;
            uint8_t *d = dst + (ptrdiff_t)y * dstride;
            if (!mx) {
                memcpy(d, s, (size_t)dw * bpp);
                continue;
            }
            for (x = 0; x < dw; x++)
                spdl_px_copy(d + (ptrdiff_t)x * bpp, s + (ptrdiff_t)(sw - 1 - x) * bpp, bpp);
        }
        return;
    }
    /* dst(x, y) = src(sx(y), sy(x)): a row of dst is a column of src */
    for (ty = 0; ty < dh; ty += 16) {
        y1 = ty + 16 < dh ? ty + 16 : dh;
        for (tx = 0; tx < dw; tx += 16) {
            x1 = tx + 16 < dw ? tx + 16 : dw;
            for (y = ty; y < y1; y++) {
                const uint8_t *col = src + (ptrdiff_t)(mx ? sw - 1 - y : y) * bpp;
                uint8_t *d = dst + (ptrdiff_t)y * dstride;
                for (x = tx; x < x1; x++)
                    spdl_px_copy(d + (ptrdiff_t)x * bpp,
                                 col + (ptrdiff_t)(my ? sh - 1 - x : x) * sstride, bpp);
            }
        }
    }
}

#endif
