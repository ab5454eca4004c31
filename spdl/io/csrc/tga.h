/* Truevision TGA: recognised by its header alone (the format has no magic number),
 * strictly, and only after every format with a signature was ruled out. FFmpeg's targa
 * decoder then decodes it.
 *
 * A header is taken when every field is one the TGA 2.0 specification allows and that
 * FFmpeg's decoder reads: colour-map type 0 or 1 (1 for the colour-mapped image types,
 * with a length and an entry size of 15, 16, 24 or 32 bits; 0 with an empty map),
 * image type 1, 2, 3 (raw) or 9, 10, 11 (RLE), a pixel depth the type allows (8 for
 * colour-mapped and grey, 15, 16, 24 or 32 for true colour), at most 8 alpha bits,
 * interleaving 0, width and height over 0, and the file long enough for the header, the
 * image ID, the colour map and the pixels (the RLE packets walked for that). A TGA 2.0 footer
 * ("TRUEVISION-XFILE.\0"), when present, must point inside the file. */
#ifndef SPDL_TGA_H
#define SPDL_TGA_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { TGA_NO = 0, TGA_YES = 1, TGA_SHORT = 2 };

/* Whether the RLE packets in d (n bytes) cover pixels pixels of size bytes each (FFmpeg's
 * decoder leaves the rest of the image unwritten when a raw packet is cut short). */
static int tga_rle_complete(const uint8_t *d, size_t n, uint64_t pixels, unsigned size) {
    size_t pos = 0;
    while (pixels > 0) {
        unsigned count;
        uint64_t bytes;
        if (pos >= n)
            return 0;
        count = (d[pos] & 0x7F) + 1u;
        bytes = (d[pos] & 0x80) ? size : (uint64_t)count * size;
        pos++;
        if (bytes > n - pos)
            return 0;
        pos += (size_t)bytes;
        pixels = count >= pixels ? 0 : pixels - count;
    }
    return 1;
}

/* TGA_YES: a TGA header over a file of n bytes; TGA_SHORT: a valid header whose file is
 * too short for its pixels (truncated); TGA_NO: anything else. */
static int tga_check(const uint8_t *d, size_t n) {
    unsigned id_len, map_type, type, map_first, map_len, map_bits, w, h, depth, desc;
    uint64_t need;
    if (n < 18)
        return TGA_NO;
    id_len = d[0];
    map_type = d[1];
    type = d[2];
    map_first = d[3] | d[4] << 8;
    map_len = d[5] | d[6] << 8;
    map_bits = d[7];
    w = d[12] | d[13] << 8;
    h = d[14] | d[15] << 8;
    depth = d[16];
    desc = d[17];
    if (w == 0 || h == 0 || (desc & 0xC0) || (desc & 0x0F) > 8)
        return TGA_NO;
    switch (type) {
    case 1: case 9:
        if (map_type != 1 || depth != 8)
            return TGA_NO;
        break;
    case 2: case 10:
        if (depth != 15 && depth != 16 && depth != 24 && depth != 32)
            return TGA_NO;
        break;
    case 3: case 11:
        if (depth != 8)
            return TGA_NO;
        break;
    default:
        return TGA_NO;
    }
    if (map_type == 1) {
        if (map_len == 0 || (map_bits != 15 && map_bits != 16 && map_bits != 24 && map_bits != 32))
            return TGA_NO;
        if ((type == 1 || type == 9) && map_first + map_len > 256)
            return TGA_NO;
    } else if (map_type != 0 || map_first != 0 || map_len != 0) {
        return TGA_NO;
    }
    need = 18 + (uint64_t)id_len + (uint64_t)map_len * ((map_bits + 7) / 8) * (map_type == 1);
    if (n >= 26 + 18 && memcmp(d + n - 18, "TRUEVISION-XFILE.\0", 18) == 0) {
        uint32_t ext = d[n - 26] | d[n - 25] << 8 | d[n - 24] << 16 | (uint32_t)d[n - 23] << 24;
        uint32_t dev = d[n - 22] | d[n - 21] << 8 | d[n - 20] << 16 | (uint32_t)d[n - 19] << 24;
        if ((ext != 0 && (ext < need || ext >= n - 26)) || (dev != 0 && (dev < need || dev >= n - 26)))
            return TGA_NO;
        n -= 26;
    }
    if (n <= need)
        return TGA_NO;
    if (type < 9 && n < need + (uint64_t)w * h * ((depth + 7) / 8))
        return TGA_SHORT;
    if (type >= 9 && !tga_rle_complete(d + need, n - need, (uint64_t)w * h, (depth + 7) / 8))
        return TGA_SHORT;
    return TGA_YES;
}

#endif
