/* Binary PGM/PPM/PAM of a maxval below 255, rescaled to maxval 255 in our copy of the file.
 *
 * FFmpeg 5.1's pnm decoder scales such 8-bit samples with an arithmetic that wraps white to
 * 0 at maxval 250 and 254 and rounds down elsewhere (maxval 100: 1 level off in a third of
 * the samples). Rewriting the samples as round(v * 255 / maxval) (a sample above maxval
 * counts as maxval) and the header's maxval as 255 leaves the decoder an identity copy.
 *
 * pnm_maxval_span finds the maxval of a binary P5/P6 header (white space and # comments
 * between its four tokens, one white-space byte before the data) or of a P7 header (lines
 * of "TOKEN value", ENDHDR), bounds-checked against n. pnm_rescale then rescales the
 * samples present (a short file stays short: the decoder refuses it as before).
 */
#ifndef SPDL_PNM_H
#define SPDL_PNM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    size_t maxval_at, maxval_end;  /* the maxval's digits: [maxval_at, maxval_end) */
    size_t data_at;                /* the first sample byte */
    uint64_t samples;              /* width * height * channels */
    unsigned maxval;
} PnmHeader;

static int pnm_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
                                         c == '\v' || c == '\f'; }

/* the next decimal token at *pos (after white space and comments); -1 if none */
static long long pnm_number(const uint8_t *d, size_t n, size_t *pos, size_t *start) {
    size_t i = *pos;
    long long v = 0;
    for (;;) {
        while (i < n && pnm_space(d[i])) i++;
        if (i < n && d[i] == '#') {
            while (i < n && d[i] != '\n' && d[i] != '\r') i++;
            continue;
        }
        break;
    }
    if (i >= n || d[i] < '0' || d[i] > '9') return -1;
    *start = i;
    while (i < n && d[i] >= '0' && d[i] <= '9') {
        if (v > 100000000) return -1;
        v = v * 10 + (d[i] - '0');
        i++;
    }
    *pos = i;
    return v;
}

/* P7: the value after "KEY " on a header line; the line's end goes to *pos */
static int pnm_pam_header(const uint8_t *d, size_t n, PnmHeader *h) {
    size_t i = 3, s, e;
    long long w = -1, ht = -1, depth = -1, maxval = -1, v;
    while (i < n) {
        size_t line = i, end = i;
        while (end < n && d[end] != '\n') end++;
        if (end >= n) return 0;
        if (end - line >= 6 && memcmp(d + line, "ENDHDR", 6) == 0) {
            if (w <= 0 || ht <= 0 || depth <= 0 || depth > 4 || maxval <= 0) return 0;
            h->data_at = end + 1;
            h->samples = (uint64_t)w * (uint64_t)ht * (uint64_t)depth;
            h->maxval = (unsigned)maxval;
            return 1;
        }
        if (d[line] != '#') {
            size_t k = line;
            while (k < end && !pnm_space(d[k])) k++;
            size_t key_len = k - line;
            size_t p = k;
            v = pnm_number(d, end, &p, &s);
            e = p;
            if (key_len == 5 && memcmp(d + line, "WIDTH", 5) == 0) w = v;
            else if (key_len == 6 && memcmp(d + line, "HEIGHT", 6) == 0) ht = v;
            else if (key_len == 5 && memcmp(d + line, "DEPTH", 5) == 0) depth = v;
            else if (key_len == 6 && memcmp(d + line, "MAXVAL", 6) == 0) {
                maxval = v;
                if (v > 0) { h->maxval_at = s; h->maxval_end = e; }
            }
        }
        i = end + 1;
    }
    return 0;
}

/* 1 and h filled when d is a binary P5/P6/P7 whose maxval is 1..254, else 0 */
static int pnm_maxval_span(const uint8_t *d, size_t n, PnmHeader *h) {
    size_t pos = 2, s;
    long long w, ht, maxval;
    if (n < 3 || d[0] != 'P' || !pnm_space(d[2])) return 0;
    if (d[1] == '7') {
        /* (maxval 1 may be BLACKANDWHITE, a 1-bit layout: left as it is) */
        if (!pnm_pam_header(d, n, h)) return 0;
        return h->maxval >= 2 && h->maxval < 255;
    }
    if (d[1] != '5' && d[1] != '6') return 0;
    w = pnm_number(d, n, &pos, &s);
    ht = pnm_number(d, n, &pos, &s);
    maxval = pnm_number(d, n, &pos, &s);
    if (w <= 0 || ht <= 0 || maxval < 1 || maxval >= 255 || pos >= n || !pnm_space(d[pos]))
        return 0;
    h->maxval_at = s;
    h->maxval_end = pos;
    h->data_at = pos + 1;
    h->samples = (uint64_t)w * (uint64_t)ht * (d[1] == '6' ? 3u : 1u);
    h->maxval = (unsigned)maxval;
    return 1;
}

/* rescale the samples present after h->data_at (d's header not yet rewritten) */
static void pnm_rescale(uint8_t *d, size_t n, const PnmHeader *h) {
    uint8_t table[256];
    unsigned m = h->maxval, v;
    size_t i, count = n - h->data_at;
    for (v = 0; v < 256; v++)
        table[v] = (uint8_t)(((v > m ? m : v) * 255u + m / 2) / m);
    if ((uint64_t)count > h->samples) count = (size_t)h->samples;
    for (i = 0; i < count; i++)
        d[h->data_at + i] = table[d[h->data_at + i]];
}

#endif
