/* DirectDraw Surface (DDS): the header parsed, and the variants FFmpeg 5.1's dds decoder
 * gets wrong decoded here, following Microsoft's DDS reference and its "Texture Block
 * Compression in Direct3D 11" (BC1-BC5).
 *
 * FFmpeg 5.1 swaps red and blue for DXGI R8G8B8A8 and B8G8R8A8, swaps red and green for
 * ATI2, and writes a reconstructed normal-map Z into blue for every BC5; it also refuses
 * masks outside its small table. So every uncompressed mask layout, BC1-BC5 and the DXGI
 * formats of the same kinds are decoded here; what FFmpeg gets right or only it knows
 * (L16, palettes, UYVY/YUY2, DXT2/DXT4 premultiplied alpha, RXGB, the GIMP plug-in's
 * YCoCg/alpha-exponent tags) goes to FFmpeg; anything else is refused with its name.
 *
 * Channels: a sample of an n-bit mask becomes round(v * 255 / (2^n - 1)). One-channel
 * data (L8, BC4, R8) is grey, as Pillow and FFmpeg show it; two-channel data (BC5, R8G8)
 * is red and green with blue 0, as Direct3D reads it (and Pillow); an alpha-only surface
 * (A8) is its alpha as grey, as FFmpeg gives it. Only the first surface (the largest mip
 * level, the first face or slice) is read. No allocation here; every read is bounded by
 * the size given. */
#ifndef SPDL_DDS_H
#define SPDL_DDS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { DDS_OWN = 0, DDS_FFMPEG = 1, DDS_REFUSED = -1 };
enum { DDS_RAW = 0, DDS_BC1, DDS_BC2, DDS_BC3, DDS_BC4, DDS_BC5 };

typedef struct {
    int width, height;
    int kind;             /* DDS_RAW, DDS_BC1..DDS_BC5 */
    int channels;         /* of the output: 1 gray8, 3 rgb24, 4 rgba */
    int bpp;              /* DDS_RAW: bits a pixel (8, 16, 24, 32) */
    uint32_t mask[4];     /* DDS_RAW: R, G, B, A masks; an unused one is 0 */
    int grey;             /* DDS_RAW: the R mask (or, alpha-only, the A mask) is grey */
    size_t offset;        /* where the pixel data starts */
    uint64_t data_size;   /* the bytes of the first surface */
} DdsInfo;

static inline uint32_t dds_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#define DDS_TAG(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

/* A DDS file: its magic and header size. */
static inline int dds_sniff(const uint8_t *d, size_t n) {
    return n >= 128 && memcmp(d, "DDS ", 4) == 0 && dds_le32(d + 4) == 124;
}

static void dds_raw(DdsInfo *o, int bpp, uint32_t r, uint32_t g, uint32_t b, uint32_t a,
                    int channels) {
    o->kind = DDS_RAW;
    o->bpp = bpp;
    o->mask[0] = r;
    o->mask[1] = g;
    o->mask[2] = b;
    o->mask[3] = a;
    o->channels = channels;
}

/* The DXGI format of a DX10 header, when it is one decoded here. */
static int dds_dxgi(DdsInfo *o, uint32_t f, char *msg, size_t size) {
    switch (f) {
    case 70: case 71: case 72: o->kind = DDS_BC1; o->channels = 4; return DDS_OWN;
    case 73: case 74: case 75: o->kind = DDS_BC2; o->channels = 4; return DDS_OWN;
    case 76: case 77: case 78: o->kind = DDS_BC3; o->channels = 4; return DDS_OWN;
    case 79: case 80: o->kind = DDS_BC4; o->channels = 1; return DDS_OWN;
    case 82: case 83: o->kind = DDS_BC5; o->channels = 3; return DDS_OWN;
    case 27: case 28: case 29: case 30:  /* R8G8B8A8 */
        dds_raw(o, 32, 0xff, 0xff00, 0xff0000, 0xff000000u, 4);
        return DDS_OWN;
    case 87: case 90: case 91:  /* B8G8R8A8 */
        dds_raw(o, 32, 0xff0000, 0xff00, 0xff, 0xff000000u, 4);
        return DDS_OWN;
    case 88: case 92: case 93:  /* B8G8R8X8 */
        dds_raw(o, 32, 0xff0000, 0xff00, 0xff, 0, 3);
        return DDS_OWN;
    case 85:  /* B5G6R5 */
        dds_raw(o, 16, 0xf800, 0x7e0, 0x1f, 0, 3);
        return DDS_OWN;
    case 86:  /* B5G5R5A1 */
        dds_raw(o, 16, 0x7c00, 0x3e0, 0x1f, 0x8000, 4);
        return DDS_OWN;
    case 115:  /* B4G4R4A4 */
        dds_raw(o, 16, 0xf00, 0xf0, 0xf, 0xf000, 4);
        return DDS_OWN;
    case 24: case 25:  /* R10G10B10A2 */
        dds_raw(o, 32, 0x3ff, 0xffc00, 0x3ff00000, 0xc0000000u, 4);
        return DDS_OWN;
    case 48: case 49: case 50:  /* R8G8 */
        dds_raw(o, 16, 0xff, 0xff00, 0, 0, 3);
        return DDS_OWN;
    case 60: case 61: case 62:  /* R8 */
        dds_raw(o, 8, 0xff, 0, 0, 0, 1);
        o->grey = 1;
        return DDS_OWN;
    case 65:  /* A8 */
        dds_raw(o, 8, 0, 0, 0, 0xff, 1);
        o->grey = 1;
        return DDS_OWN;
    case 81: case 84:
        snprintf(msg, size, "DDS %s SNORM (signed) is not decoded", f == 81 ? "BC4" : "BC5");
        return DDS_REFUSED;
    case 94: case 95: case 96: case 97: case 98: case 99:
        snprintf(msg, size, "DDS %s (DXGI format %u) is not decoded", f < 97 ? "BC6H" : "BC7",
                 (unsigned)f);
        return DDS_REFUSED;
    default:
        snprintf(msg, size, "DDS DXGI format %u is not decoded", (unsigned)f);
        return DDS_REFUSED;
    }
}

static int dds_mask_ok(uint32_t m, int bpp) {
    return bpp == 32 || (m >> bpp) == 0;
}

/* Parse the header of d (n bytes): DDS_OWN (info filled), DDS_FFMPEG, or DDS_REFUSED
 * (msg says why). */
static int dds_parse(const uint8_t *d, size_t n, DdsInfo *o, char *msg, size_t size) {
    uint32_t pf, fourcc, bpp, gimp, w, h, i;
    uint64_t bw, bh, bytes;
    int ret;
    memset(o, 0, sizeof(*o));
    if (!dds_sniff(d, n)) {
        snprintf(msg, size, "DDS header too short or invalid");
        return DDS_REFUSED;
    }
    h = dds_le32(d + 12);
    w = dds_le32(d + 16);
    if (w == 0 || h == 0 || w > 0x7fffffff || h > 0x7fffffff) {
        snprintf(msg, size, "DDS size %ux%u is invalid", (unsigned)w, (unsigned)h);
        return DDS_REFUSED;
    }
    o->width = (int)w;
    o->height = (int)h;
    gimp = dds_le32(d + 44);
    if (dds_le32(d + 76) != 32) {
        snprintf(msg, size, "DDS pixel format header size %u is not 32", (unsigned)dds_le32(d + 76));
        return DDS_REFUSED;
    }
    pf = dds_le32(d + 80);
    fourcc = dds_le32(d + 84);
    bpp = dds_le32(d + 88);
    o->offset = 128;
    if (gimp == DDS_TAG('A', 'E', 'X', 'P') || gimp == DDS_TAG('Y', 'C', 'G', '1')
            || gimp == DDS_TAG('Y', 'C', 'G', '2'))
        return DDS_FFMPEG;  /* GIMP's YCoCg / alpha-exponent encodings */
    if (pf & 0x4) {  /* DDPF_FOURCC */
        switch (fourcc) {
        case DDS_TAG('D', 'X', 'T', '1'): o->kind = DDS_BC1; o->channels = 4; break;
        case DDS_TAG('D', 'X', 'T', '3'): o->kind = DDS_BC2; o->channels = 4; break;
        case DDS_TAG('D', 'X', 'T', '5'): o->kind = DDS_BC3; o->channels = 4; break;
        case DDS_TAG('A', 'T', 'I', '1'):
        case DDS_TAG('B', 'C', '4', 'U'): o->kind = DDS_BC4; o->channels = 1; break;
        case DDS_TAG('A', 'T', 'I', '2'):  /* the same layout as BC5U (DirectXTex, Pillow) */
        case DDS_TAG('B', 'C', '5', 'U'): o->kind = DDS_BC5; o->channels = 3; break;
        case DDS_TAG('D', 'X', 'T', '2'): case DDS_TAG('D', 'X', 'T', '4'):
        case DDS_TAG('R', 'X', 'G', 'B'): case DDS_TAG('U', 'Y', 'V', 'Y'):
        case DDS_TAG('Y', 'U', 'Y', '2'): case DDS_TAG('P', '8', ' ', ' '):
            return DDS_FFMPEG;
        case DDS_TAG('B', 'C', '4', 'S'): case DDS_TAG('B', 'C', '5', 'S'):
            snprintf(msg, size, "DDS %.4s (signed) is not decoded", (const char *)d + 84);
            return DDS_REFUSED;
        case DDS_TAG('D', 'X', '1', '0'):
            if (n < 148) {
                snprintf(msg, size, "DDS DX10 header truncated");
                return DDS_REFUSED;
            }
            o->offset = 148;
            ret = dds_dxgi(o, dds_le32(d + 128), msg, size);
            if (ret != DDS_OWN)
                return ret;
            break;
        default:
            if (fourcc >= 0x20202020u)
                snprintf(msg, size, "DDS FourCC '%.4s' is not decoded", (const char *)d + 84);
            else
                snprintf(msg, size, "DDS format code %u is not decoded", (unsigned)fourcc);
            return DDS_REFUSED;
        }
    } else if (pf & 0x20) {  /* DDPF_PALETTEINDEXED8 */
        return DDS_FFMPEG;
    } else if (pf & (0x40 | 0x20000 | 0x2)) {  /* DDPF_RGB, DDPF_LUMINANCE, DDPF_ALPHA */
        if (bpp != 8 && bpp != 16 && bpp != 24 && bpp != 32) {
            snprintf(msg, size, "DDS uncompressed pixels of %u bits are not decoded", (unsigned)bpp);
            return DDS_REFUSED;
        }
        for (i = 0; i < 4; i++) {
            o->mask[i] = dds_le32(d + 92 + 4 * i);
            if (!dds_mask_ok(o->mask[i], (int)bpp)) {
                snprintf(msg, size, "DDS channel mask 0x%x is wider than its %u-bit pixels",
                         (unsigned)o->mask[i], (unsigned)bpp);
                return DDS_REFUSED;
            }
        }
        o->kind = DDS_RAW;
        o->bpp = (int)bpp;
        if (!(pf & 0x1))  /* DDPF_ALPHAPIXELS: without it the alpha mask means nothing */
            o->mask[3] = 0;
        if (pf & 0x20000) {  /* luminance in the red mask */
            if (o->mask[0] == 0) {
                snprintf(msg, size, "DDS luminance without a mask");
                return DDS_REFUSED;
            }
            o->mask[1] = o->mask[2] = 0;
            if (bpp == 16 && o->mask[0] == 0xffff && o->mask[3] == 0)
                return DDS_FFMPEG;  /* L16: FFmpeg keeps its 16 bits (gray16) */
            o->grey = 1;
            o->channels = o->mask[3] ? 4 : 1;
        } else if (pf & 0x40) {
            if ((o->mask[0] | o->mask[1] | o->mask[2]) == 0) {
                snprintf(msg, size, "DDS RGB without channel masks");
                return DDS_REFUSED;
            }
            o->channels = o->mask[3] ? 4 : 3;
        } else {  /* alpha only: its alpha as grey */
            o->mask[0] = o->mask[1] = o->mask[2] = 0;
            o->mask[3] = dds_le32(d + 104);
            if (o->mask[3] == 0) {
                snprintf(msg, size, "DDS alpha-only without an alpha mask");
                return DDS_REFUSED;
            }
            o->grey = 1;
            o->channels = 1;
        }
    } else {
        snprintf(msg, size, "DDS pixel format flags 0x%x name no format decoded here",
                 (unsigned)pf);
        return DDS_REFUSED;
    }
    bw = ((uint64_t)w + 3) / 4;
    bh = ((uint64_t)h + 3) / 4;
    switch (o->kind) {
    case DDS_RAW: bytes = (uint64_t)w * h * (uint64_t)(o->bpp / 8); break;
    case DDS_BC1: case DDS_BC4: bytes = bw * bh * 8; break;
    default: bytes = bw * bh * 16; break;
    }
    o->data_size = bytes;
    return DDS_OWN;
}

/* round(v * 255 / max) of the bits of v under mask m. */
static inline uint8_t dds_channel(uint32_t v, uint32_t m) {
    uint32_t shift = 0, max;
    if (m == 0)
        return 0;
    while (!((m >> shift) & 1))
        shift++;
    max = m >> shift;
    v = (v & m) >> shift;
    return max == 255 ? (uint8_t)v : (uint8_t)(((uint64_t)v * 255 + max / 2) / max);
}

static void dds_decode_raw(const uint8_t *src, const DdsInfo *o, uint8_t *dst, ptrdiff_t stride) {
    int x, y, k, nb = o->bpp / 8, c = o->channels;
    for (y = 0; y < o->height; y++) {
        const uint8_t *s = src + (size_t)y * o->width * nb;
        uint8_t *p = dst + y * stride;
        for (x = 0; x < o->width; x++, s += nb, p += c) {
            uint32_t v = 0;
            for (k = 0; k < nb; k++)
                v |= (uint32_t)s[k] << (8 * k);
            if (o->grey) {
                uint8_t g = dds_channel(v, o->mask[0] ? o->mask[0] : o->mask[3]);
                p[0] = g;
                if (c == 4) {
                    p[1] = p[2] = g;
                    p[3] = dds_channel(v, o->mask[3]);
                }
            } else {
                p[0] = dds_channel(v, o->mask[0]);
                p[1] = dds_channel(v, o->mask[1]);
                p[2] = dds_channel(v, o->mask[2]);
                if (c == 4)
                    p[3] = o->mask[3] ? dds_channel(v, o->mask[3]) : 255;
            }
        }
    }
}

/* The four colours (RGBA) of a BC1 colour block; three and transparent black when
 * color0 <= color1 and the block may have them (BC1 only). */
static void dds_bc1_palette(const uint8_t *b, int bc1, uint8_t pal[4][4]) {
    uint32_t c[2] = {(uint32_t)b[0] | (uint32_t)b[1] << 8, (uint32_t)b[2] | (uint32_t)b[3] << 8};
    int i, k;
    for (i = 0; i < 2; i++) {
        pal[i][0] = (uint8_t)(((c[i] >> 11) * 255 + 15) / 31);
        pal[i][1] = (uint8_t)((((c[i] >> 5) & 63) * 255 + 31) / 63);
        pal[i][2] = (uint8_t)(((c[i] & 31) * 255 + 15) / 31);
        pal[i][3] = 255;
    }
    for (k = 0; k < 3; k++) {
        if (c[0] > c[1] || !bc1) {
            pal[2][k] = (uint8_t)((2 * pal[0][k] + pal[1][k] + 1) / 3);
            pal[3][k] = (uint8_t)((pal[0][k] + 2 * pal[1][k] + 1) / 3);
        } else {
            pal[2][k] = (uint8_t)((pal[0][k] + pal[1][k] + 1) / 2);
            pal[3][k] = 0;
        }
    }
    pal[2][3] = 255;
    pal[3][3] = (c[0] > c[1] || !bc1) ? 255 : 0;
}

/* The eight values of a BC4 block (BC3's alpha, BC5's red and green). */
static void dds_bc4_palette(const uint8_t *b, uint8_t v[8]) {
    int k, r0 = b[0], r1 = b[1];
    v[0] = (uint8_t)r0;
    v[1] = (uint8_t)r1;
    if (r0 > r1) {
        for (k = 2; k < 8; k++)
            v[k] = (uint8_t)(((8 - k) * r0 + (k - 1) * r1 + 3) / 7);
    } else {
        for (k = 2; k < 6; k++)
            v[k] = (uint8_t)(((6 - k) * r0 + (k - 1) * r1 + 2) / 5);
        v[6] = 0;
        v[7] = 255;
    }
}

static inline int dds_bc4_index(const uint8_t *b, int i) {
    uint64_t bits = 0;
    int k;
    for (k = 0; k < 6; k++)
        bits |= (uint64_t)b[2 + k] << (8 * k);
    return (int)((bits >> (3 * i)) & 7);
}

static void dds_decode_bc(const uint8_t *src, const DdsInfo *o, uint8_t *dst, ptrdiff_t stride) {
    int bw = o->width / 4 + (o->width % 4 != 0), bh = o->height / 4 + (o->height % 4 != 0);
    int c = o->channels;
    int block = (o->kind == DDS_BC1 || o->kind == DDS_BC4) ? 8 : 16;
    int bx, by, i;
    uint8_t pal[4][4], va[8], vb[8];
    for (by = 0; by < bh; by++) {
        for (bx = 0; bx < bw; bx++) {
            const uint8_t *b = src + ((size_t)by * bw + bx) * block;
            const uint8_t *colour = b + (o->kind == DDS_BC1 ? 0 : 8);
            if (o->kind <= DDS_BC3)
                dds_bc1_palette(colour, o->kind == DDS_BC1, pal);
            if (o->kind == DDS_BC3 || o->kind == DDS_BC4 || o->kind == DDS_BC5)
                dds_bc4_palette(b, va);
            if (o->kind == DDS_BC5)
                dds_bc4_palette(b + 8, vb);
            for (i = 0; i < 16; i++) {
                int x = bx * 4 + (i & 3), y = by * 4 + (i >> 2);
                uint8_t *p;
                if (x >= o->width || y >= o->height)
                    continue;
                p = dst + y * stride + (ptrdiff_t)x * c;
                if (o->kind <= DDS_BC3) {
                    const uint8_t *q = pal[(colour[4 + (i >> 2)] >> (2 * (i & 3))) & 3];
                    p[0] = q[0];
                    p[1] = q[1];
                    p[2] = q[2];
                    p[3] = q[3];
                    if (o->kind == DDS_BC2)
                        p[3] = (uint8_t)(((b[i >> 1] >> (4 * (i & 1))) & 15) * 17);
                    else if (o->kind == DDS_BC3)
                        p[3] = va[dds_bc4_index(b, i)];
                } else if (o->kind == DDS_BC4) {
                    p[0] = va[dds_bc4_index(b, i)];
                } else {
                    p[0] = va[dds_bc4_index(b, i)];
                    p[1] = vb[dds_bc4_index(b + 8, i)];
                    p[2] = 0;
                }
            }
        }
    }
}

/* Decode the first surface of d (checked by dds_parse: DDS_OWN, with data_size bytes
 * after offset) into dst, rows of stride bytes of width * channels. */
static void dds_decode(const uint8_t *d, const DdsInfo *o, uint8_t *dst, ptrdiff_t stride) {
    if (o->kind == DDS_RAW)
        dds_decode_raw(d + o->offset, o, dst, stride);
    else
        dds_decode_bc(d + o->offset, o, dst, stride);
}

#endif
