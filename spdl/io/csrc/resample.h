/* Separable image resampling for packed 8-bit images.
 *
 * A Keys cubic kernel (a = -0.5), stretched when shrinking so it also filters
 * out what the smaller image cannot hold, with pixel centres aligned the way
 * FFmpeg's and Pillow's scalers align them. The source extent may be
 * fractional: an image reduced in the DCT ends in a partial pixel, and only
 * the part the image really fills is mapped onto the output.
 *
 * Weights are Q14 fixed point. The vertical pass runs first, over whole rows,
 * in loops the compiler vectorises; the horizontal pass then has only the
 * output rows to do.
 */
#ifndef SPDL_RESAMPLE_H
#define SPDL_RESAMPLE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* AVX2 versions of the passes, compiled for AVX2 whatever the build's baseline
 * and chosen at run time: same arithmetic, same output, about twice the speed. */
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define SPDL_HAVE_AVX2_PATH 1
#include <immintrin.h>
#define SPDL_AVX2 __attribute__((target("avx2")))

static int spdl_cpu_avx2(void)
{
    static int cached = -1;     /* a benign race: every thread computes the same value */
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") ? 1 : 0;
    }
    return cached;
}

/* Set to 0 to force the baseline paths (tests compare the two). */
static int spdl_use_avx2 = 1;
#endif

#define SPDL_Q 14

typedef struct {
    int n;          /* output samples */
    int taps;       /* weights per output sample */
    int *start;     /* first input sample of each output sample */
    int16_t *w;     /* n * taps weights */
} spdl_kernel;

static double spdl_keys_cubic(double x)
{
    const double a = -0.5;
    double near, far;
    x = fabs(x);
    /* both pieces, then a select: the branches would mispredict at every tap */
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    far = x < 2.0 ? far : 0.0;
    return x < 1.0 ? near : far;
}

/* floor and lrint (round half to even) for values well inside int's range, inline:
 * without SSE4.1 the compiler calls libm for each, the main cost of a kernel. */
static inline int spdl_floor(double x)
{
    int i = (int)x;
    return i - (x < (double)i);
}

static inline int spdl_lrint(double x)
{
    int r = spdl_floor(x);
    double frac = x - r;        /* exact */
    if (frac > 0.5 || (frac == 0.5 && (r & 1)))
        r++;                    /* a tie goes to even */
    return r;
}

static void spdl_kernel_free(spdl_kernel *k)
{
    free(k->start);
    free(k->w);
    k->start = NULL;
    k->w = NULL;
}

/* Weights for output samples out0 .. out0 + n - 1 of an output out_total samples
 * long that covers input [origin, origin + extent); in_n input samples exist
 * (in_n >= origin + extent). Only samples under that span are read: a crop's
 * edges are the image's edges, as if it had been cut out first.
 * Returns 0, or -1 when out of memory. */
static int spdl_kernel_make(spdl_kernel *k, int in_n, double origin, double extent,
                            int out_total, int out0, int n)
{
    double scale = extent / out_total;              /* input samples per output sample */
    int first = spdl_floor(origin);                 /* the samples the span touches */
    int last = (int)ceil(origin + extent);
    double stretch = scale > 1.0 ? scale : 1.0;
    double support = 2.0 * stretch;
    int taps = 1;
    int i, t;
    double *w;
    if (last > in_n)
        last = in_n;
    if (first < 0)
        first = 0;
    if (last <= first)
        last = first + 1;
    for (i = 0; i < n; i++) {    /* the widest window any output sample needs */
        double centre = origin + (out0 + i + 0.5) * scale;
        int lo = spdl_floor(centre - support + 0.5);
        int hi = spdl_floor(centre + support + 0.5);
        if (hi - lo > taps)
            taps = hi - lo;
    }
    if (taps > last - first)
        taps = last - first;    /* a kernel cannot use more samples than the span has */
    if ((taps & 1) && taps < in_n)
        taps++;                 /* an even count, for the passes that take taps in pairs */
    k->n = n;
    k->taps = taps;
    k->start = (int *)malloc(sizeof(int) * (n > 0 ? n : 1));
    k->w = (int16_t *)calloc((size_t)(n > 0 ? n : 1) * taps, sizeof(int16_t));
    w = (double *)malloc(sizeof(double) * taps);
    if (!k->start || !k->w || !w) {
        free(w);
        spdl_kernel_free(k);
        return -1;
    }
    for (i = 0; i < n; i++) {
        double centre = origin + (out0 + i + 0.5) * scale;
        int lo = spdl_floor(centre - support + 0.5);
        int hi = spdl_floor(centre + support + 0.5);
        double sum = 0.0;
        int len, q, qsum = 0, big = 0;
        if (lo < first)
            lo = first;
        if (hi > last)
            hi = last;
        if (hi - lo > taps)
            hi = lo + taps;
        if (hi <= lo) {           /* cannot happen for sane sizes; keep the nearest sample */
            lo = (int)centre < last ? (int)centre : last - 1;
            if (lo < first)
                lo = first;
            hi = lo + 1;
        }
        len = hi - lo;
        for (t = 0; t < len; t++) {
            w[t] = spdl_keys_cubic((lo + t + 0.5 - centre) / stretch);
            sum += w[t];
        }
        /* Start so that every tap stays inside the input; unused taps weigh 0. */
        if (lo + taps > in_n) {
            int shift = lo + taps - in_n;
            if (shift > lo)
                shift = lo;
            lo -= shift;
            memmove(w + shift, w, sizeof(double) * len);
            for (t = 0; t < shift; t++)
                w[t] = 0.0;
            len += shift;
        }
        k->start[i] = lo;
        for (t = 0; t < len && t < taps; t++) {
            q = spdl_lrint(w[t] / (sum != 0.0 ? sum : 1.0) * (1 << SPDL_Q));
            k->w[(size_t)i * taps + t] = (int16_t)q;
            qsum += q;
            if (abs(q) > abs(k->w[(size_t)i * taps + big]))
                big = t;
        }
        /* The weights sum to exactly one, so flat areas stay flat. */
        k->w[(size_t)i * taps + big] += (int16_t)((1 << SPDL_Q) - qsum);
    }
    free(w);
    return 0;
}

/* The last kernels made, kept per worker: a dataset's images mostly share a few
 * sizes (ImageNet's 500x375 and 375x500), and a kernel costs as much to make as
 * a third of the vertical pass. */
#define SPDL_KCACHE 8
typedef struct {
    int in_n, out_total, out0, n;
    double origin, extent;
    unsigned used;
    spdl_kernel k;      /* k.w == NULL: an empty slot */
} spdl_kentry;

typedef struct {
    spdl_kentry e[SPDL_KCACHE];
    unsigned tick;
} spdl_kcache;

static void spdl_kcache_free(spdl_kcache *c)
{
    int i;
    for (i = 0; i < SPDL_KCACHE; i++)
        spdl_kernel_free(&c->e[i].k);
}

/* The kernel of spdl_kernel_make's arguments, owned by the cache (valid until the
 * next call), or NULL when out of memory. */
static const spdl_kernel *spdl_kernel_get(spdl_kcache *c, int in_n, double origin,
                                          double extent, int out_total, int out0, int n)
{
    int i, slot = 0;
    spdl_kentry *e;
    for (i = 0; i < SPDL_KCACHE; i++) {
        e = &c->e[i];
        if (e->k.w != NULL && e->in_n == in_n && e->origin == origin && e->extent == extent
                && e->out_total == out_total && e->out0 == out0 && e->n == n) {
            e->used = ++c->tick;
            return &e->k;
        }
        if (c->e[i].k.w == NULL || (c->e[slot].k.w != NULL && c->e[i].used < c->e[slot].used))
            slot = i;   /* an empty slot, else the least recently used */
    }
    e = &c->e[slot];
    spdl_kernel_free(&e->k);
    if (spdl_kernel_make(&e->k, in_n, origin, extent, out_total, out0, n) < 0)
        return NULL;
    e->in_n = in_n;
    e->origin = origin;
    e->extent = extent;
    e->out_total = out_total;
    e->out0 = out0;
    e->n = n;
    e->used = ++c->tick;
    return &e->k;
}

static inline uint8_t spdl_clip8(int32_t v)
{
    v = (v + (1 << (SPDL_Q - 1))) >> SPDL_Q;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Vertical pass: rows of kv over src (row_bytes each, src_stride apart) into tmp
 * (row_bytes each, packed). acc holds row_bytes int32 (for the portable loop).
 * With SSE2, 8 bytes of two rows at a time, interleaved as 16-bit pairs for
 * one multiply-add (pmaddwd) per 4 outputs. */
static void spdl_resample_v_base(const uint8_t *src, ptrdiff_t src_stride, int row_bytes,
                                 const spdl_kernel *kv, uint8_t *tmp, int32_t *acc)
{
    int y, t, x;
    for (y = 0; y < kv->n; y++) {
        const int16_t *w = kv->w + (size_t)y * kv->taps;
        const uint8_t *base = src + (ptrdiff_t)kv->start[y] * src_stride;
        uint8_t *out = tmp + (size_t)y * row_bytes;
        x = 0;
#if defined(__SSE2__)
        {
            const __m128i zero = _mm_setzero_si128();
            const __m128i round = _mm_set1_epi32(1 << (SPDL_Q - 1));
            for (; x + 8 <= row_bytes; x += 8) {
                __m128i lo = _mm_setzero_si128(), hi = _mm_setzero_si128();
                for (t = 0; t + 1 < kv->taps; t += 2) {
                    __m128i a = _mm_unpacklo_epi8(
                        _mm_loadl_epi64((const __m128i *)(base + (ptrdiff_t)t * src_stride + x)), zero);
                    __m128i b = _mm_unpacklo_epi8(
                        _mm_loadl_epi64((const __m128i *)(base + (ptrdiff_t)(t + 1) * src_stride + x)), zero);
                    int32_t two_w;
                    __m128i wt;
                    memcpy(&two_w, w + t, 4);
                    wt = _mm_set1_epi32(two_w);
                    lo = _mm_add_epi32(lo, _mm_madd_epi16(_mm_unpacklo_epi16(a, b), wt));
                    hi = _mm_add_epi32(hi, _mm_madd_epi16(_mm_unpackhi_epi16(a, b), wt));
                }
                if (t < kv->taps) {
                    __m128i a = _mm_unpacklo_epi8(
                        _mm_loadl_epi64((const __m128i *)(base + (ptrdiff_t)t * src_stride + x)), zero);
                    __m128i wt = _mm_set1_epi32((uint16_t)w[t]);
                    lo = _mm_add_epi32(lo, _mm_madd_epi16(_mm_unpacklo_epi16(a, zero), wt));
                    hi = _mm_add_epi32(hi, _mm_madd_epi16(_mm_unpackhi_epi16(a, zero), wt));
                }
                lo = _mm_srai_epi32(_mm_add_epi32(lo, round), SPDL_Q);
                hi = _mm_srai_epi32(_mm_add_epi32(hi, round), SPDL_Q);
                _mm_storel_epi64((__m128i *)(out + x),
                                 _mm_packus_epi16(_mm_packs_epi32(lo, hi), zero));
            }
        }
#endif
        if (x < row_bytes) {
            int x0 = x;
            const int32_t w0 = w[0];
            for (x = x0; x < row_bytes; x++)
                acc[x] = w0 * base[x];
            for (t = 1; t < kv->taps; t++) {
                const int32_t wt = w[t];
                const uint8_t *row = base + (ptrdiff_t)t * src_stride;
                for (x = x0; x < row_bytes; x++)
                    acc[x] += wt * row[x];
            }
            for (x = x0; x < row_bytes; x++)
                out[x] = spdl_clip8(acc[x]);
        }
    }
}

#if defined(SPDL_HAVE_AVX2_PATH)
/* Weights w[0] and w[1] as one 32-bit value (w[0] in the low half), for pmaddwd. */
static inline int32_t spdl_pair(const int16_t *w)
{
    int32_t two;
    memcpy(&two, w, 4);
    return two;
}

/* One output byte of the vertical pass, for the ends of rows. */
static inline uint8_t spdl_v_one(const uint8_t *base, ptrdiff_t src_stride, const int16_t *w,
                                 int taps)
{
    int32_t a = 0;
    int t;
    for (t = 0; t < taps; t++)
        a += w[t] * base[(ptrdiff_t)t * src_stride];
    return spdl_clip8(a);
}

/* 16 bytes of taps t and t + 1 (row b; NULL for a single tap), weighed into lo (bytes 0-3
 * and 8-11) and hi (4-7, 12-15). */
#define SPDL_V16(ra, rb, wt, lo, hi)                                                        \
    do {                                                                                    \
        __m256i a_ = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(ra)));         \
        __m256i b_ = (rb) ? _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(rb)))    \
                          : _mm256_setzero_si256();                                         \
        lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(a_, b_), wt));    \
        hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(a_, b_), wt));    \
    } while (0)

SPDL_AVX2 static void spdl_resample_v_avx2(const uint8_t *src, ptrdiff_t src_stride,
                                           int row_bytes, const spdl_kernel *kv, uint8_t *tmp)
{
    const __m256i round = _mm256_set1_epi32(1 << (SPDL_Q - 1));
    int y, t, x;
    for (y = 0; y < kv->n; y++) {
        const int16_t *w = kv->w + (size_t)y * kv->taps;
        const uint8_t *base = src + (ptrdiff_t)kv->start[y] * src_stride;
        uint8_t *out = tmp + (size_t)y * row_bytes;
        for (x = 0; x + 32 <= row_bytes; x += 32) {
            __m256i l0 = _mm256_setzero_si256(), h0 = l0, l1 = l0, h1 = l0, v0, v1;
            for (t = 0; t < kv->taps; t += 2) {
                const uint8_t *ra = base + (ptrdiff_t)t * src_stride + x;
                const uint8_t *rb = t + 1 < kv->taps ? ra + src_stride : NULL;
                __m256i wt = _mm256_set1_epi32(t + 1 < kv->taps ? spdl_pair(w + t)
                                                                : (int32_t)(uint16_t)w[t]);
                SPDL_V16(ra, rb, wt, l0, h0);
                SPDL_V16(ra + 16, rb ? rb + 16 : NULL, wt, l1, h1);
            }
            /* words in order within each half, then bytes; the lanes come out as
             * 0-7 16-23 | 8-15 24-31, put right by one permute */
            v0 = _mm256_packs_epi32(_mm256_srai_epi32(_mm256_add_epi32(l0, round), SPDL_Q),
                                    _mm256_srai_epi32(_mm256_add_epi32(h0, round), SPDL_Q));
            v1 = _mm256_packs_epi32(_mm256_srai_epi32(_mm256_add_epi32(l1, round), SPDL_Q),
                                    _mm256_srai_epi32(_mm256_add_epi32(h1, round), SPDL_Q));
            _mm256_storeu_si256((__m256i *)(out + x),
                                _mm256_permute4x64_epi64(_mm256_packus_epi16(v0, v1), 0xD8));
        }
        for (; x + 16 <= row_bytes; x += 16) {
            __m256i l0 = _mm256_setzero_si256(), h0 = l0, v0;
            for (t = 0; t < kv->taps; t += 2) {
                const uint8_t *ra = base + (ptrdiff_t)t * src_stride + x;
                const uint8_t *rb = t + 1 < kv->taps ? ra + src_stride : NULL;
                __m256i wt = _mm256_set1_epi32(t + 1 < kv->taps ? spdl_pair(w + t)
                                                                : (int32_t)(uint16_t)w[t]);
                SPDL_V16(ra, rb, wt, l0, h0);
            }
            v0 = _mm256_packs_epi32(_mm256_srai_epi32(_mm256_add_epi32(l0, round), SPDL_Q),
                                    _mm256_srai_epi32(_mm256_add_epi32(h0, round), SPDL_Q));
            _mm_storeu_si128((__m128i *)(out + x), _mm256_castsi256_si128(
                _mm256_permute4x64_epi64(_mm256_packus_epi16(v0, v0), 0xD8)));
        }
        for (; x < row_bytes; x++)
            out[x] = spdl_v_one(base + x, src_stride, w, kv->taps);
    }
}
#undef SPDL_V16

/* One output pixel of four rows of the AVX2 horizontal pass, before rounding: rows 0
 * and 1 in *a, rows 2 and 3 in *b (one per 128-bit lane), sharing the weights. Taps in
 * fours: a 16-byte load holds the pixels of four taps; a byte shuffle spreads two of
 * them into 16-bit pairs per channel (r0 r1 g0 g1 b0 b1 x0 x1) and one pmaddwd weighs
 * both. Inlined with a constant taps where it can be. */
__attribute__((always_inline)) SPDL_AVX2 static inline void
spdl_h_pixel4_avx2(const uint8_t *const r[4], const int16_t *w, int taps, int cin,
                   __m256i M01, __m256i M23, __m256i *a, __m256i *b)
{
    __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0;
    int t;
    for (t = 0; t < taps; t += 4) {
        __m256i px0 = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(r[0] + cin * t))),
            _mm_loadu_si128((const __m128i *)(r[1] + cin * t)), 1);
        __m256i px1 = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(r[2] + cin * t))),
            _mm_loadu_si128((const __m128i *)(r[3] + cin * t)), 1);
        __m256i w01 = _mm256_set1_epi32(spdl_pair(w + t));
        acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(_mm256_shuffle_epi8(px0, M01), w01));
        acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(_mm256_shuffle_epi8(px1, M01), w01));
        if (t + 2 < taps) {
            __m256i w23 = _mm256_set1_epi32(spdl_pair(w + t + 2));
            acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(_mm256_shuffle_epi8(px0, M23), w23));
            acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(_mm256_shuffle_epi8(px1, M23), w23));
        }
    }
    *a = acc0;
    *b = acc1;
}

/* Horizontal pass over packed pixels of cin (3 or 4) bytes, writing out_ch (3 or 4;
 * 3 from 4 drops the fourth byte) bytes a pixel; kh->taps must be even. Four rows at
 * once with the same weights (past the last row, the last row again, not stored).
 * Reads up to 16 bytes past the last pixel a kernel uses: tmp needs that much slack
 * after its last row. */
SPDL_AVX2 static void spdl_resample_h_avx2(const uint8_t *tmp, int tmp_row_bytes, int rows,
                                           int cin, int out_ch, const spdl_kernel *kh, int first,
                                           uint8_t *dst, ptrdiff_t dst_stride)
{
    const __m128i m01 = cin == 3
        ? _mm_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1)
        : _mm_setr_epi8(0, -1, 4, -1, 1, -1, 5, -1, 2, -1, 6, -1, 3, -1, 7, -1);
    const __m128i m23 = cin == 3
        ? _mm_setr_epi8(6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1)
        : _mm_setr_epi8(8, -1, 12, -1, 9, -1, 13, -1, 10, -1, 14, -1, 11, -1, 15, -1);
    const __m256i M01 = _mm256_broadcastsi128_si256(m01);
    const __m256i M23 = _mm256_broadcastsi128_si256(m23);
    const __m256i round = _mm256_set1_epi32(1 << (SPDL_Q - 1));
    const int taps = kh->taps, n = kh->n;
    int y, x, k;
    for (y = 0; y < rows; y += 4) {
        const int nrow = rows - y < 4 ? rows - y : 4;
        const uint8_t *row[4];
        uint8_t *o0 = dst + (ptrdiff_t)y * dst_stride;
        for (k = 0; k < 4; k++)
            row[k] = tmp + (size_t)(y + (k < nrow ? k : nrow - 1)) * tmp_row_bytes;
        for (x = 0; x < n; x++) {
            const int16_t *w = kh->w + (size_t)x * taps;
            const size_t off = (size_t)(kh->start[x] - first) * cin;
            const uint8_t *p[4] = {row[0] + off, row[1] + off, row[2] + off, row[3] + off};
            __m256i a, b;
            __m128i lo, hi;
            int32_t px[4];
            switch (taps) {     /* the common sizes unrolled */
            case 4: spdl_h_pixel4_avx2(p, w, 4, cin, M01, M23, &a, &b); break;
            case 6: spdl_h_pixel4_avx2(p, w, 6, cin, M01, M23, &a, &b); break;
            case 8: spdl_h_pixel4_avx2(p, w, 8, cin, M01, M23, &a, &b); break;
            default: spdl_h_pixel4_avx2(p, w, taps, cin, M01, M23, &a, &b);
            }
            a = _mm256_srai_epi32(_mm256_add_epi32(a, round), SPDL_Q);
            b = _mm256_srai_epi32(_mm256_add_epi32(b, round), SPDL_Q);
            /* words: rows 0 and 2 in the low lane, 1 and 3 in the high; then bytes */
            a = _mm256_packus_epi16(_mm256_packs_epi32(a, b), a);
            lo = _mm256_castsi256_si128(a);
            hi = _mm256_extracti128_si256(a, 1);
            px[0] = _mm_cvtsi128_si32(lo);
            px[1] = _mm_cvtsi128_si32(hi);
            px[2] = _mm_extract_epi32(lo, 1);
            px[3] = _mm_extract_epi32(hi, 1);
            /* 4 bytes: with 3 channels the 4th is overwritten by the next pixel */
            if (nrow == 4 && (out_ch == 4 || x + 1 < n)) {
                for (k = 0; k < 4; k++)
                    memcpy(o0 + (ptrdiff_t)k * dst_stride + out_ch * x, &px[k], 4);
            } else {
                for (k = 0; k < nrow; k++)
                    memcpy(o0 + (ptrdiff_t)k * dst_stride + out_ch * x, &px[k],
                           out_ch == 4 || x + 1 < n ? 4 : 3);
            }
        }
    }
}
#endif

/* The vertical pass: rows of kv over src into tmp (see spdl_resample_v_base). */
static void spdl_resample_v(const uint8_t *src, ptrdiff_t src_stride, int row_bytes,
                            const spdl_kernel *kv, uint8_t *tmp, int32_t *acc)
{
#if defined(SPDL_HAVE_AVX2_PATH)
    if (spdl_use_avx2 && spdl_cpu_avx2()) {
        spdl_resample_v_avx2(src, src_stride, row_bytes, kv, tmp);
        return;
    }
#endif
    spdl_resample_v_base(src, src_stride, row_bytes, kv, tmp, acc);
}

/* Horizontal pass over 4-byte pixels (RGBX), writing out_ch (3 or 4) bytes per pixel.
 * With SSE2, two taps at a time: the two pixels' channels are interleaved as 16-bit
 * pairs and one multiply-add (pmaddwd) weighs both. */
static void spdl_resample_h4(const uint8_t *tmp, int tmp_row_bytes, int rows, int out_ch,
                             const spdl_kernel *kh, int first, uint8_t *dst,
                             ptrdiff_t dst_stride)
{
    int y, x, t, c;
    for (y = 0; y < rows; y++) {
        const uint8_t *row = tmp + (size_t)y * tmp_row_bytes;
        uint8_t *out = dst + (ptrdiff_t)y * dst_stride;
        for (x = 0; x < kh->n; x++) {
            const int16_t *w = kh->w + (size_t)x * kh->taps;
            const uint8_t *p = row + (size_t)(kh->start[x] - first) * 4;
            int32_t a[4];
#if defined(__SSE2__)
            const __m128i zero = _mm_setzero_si128();
            __m128i acc = _mm_setzero_si128();
            for (t = 0; t + 1 < kh->taps; t += 2) {
                __m128i px, pair, wt;
                int32_t two_w;
                px = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(p + 4 * t)), zero);
                pair = _mm_unpacklo_epi16(px, _mm_srli_si128(px, 8));  /* r0 r1 g0 g1 ... */
                memcpy(&two_w, w + t, 4);  /* w[t] in the low half, w[t + 1] in the high */
                wt = _mm_set1_epi32(two_w);
                acc = _mm_add_epi32(acc, _mm_madd_epi16(pair, wt));
            }
            if (t < kh->taps) {
                __m128i px;
                int32_t one;
                memcpy(&one, p + 4 * t, 4);
                px = _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(one), zero), zero);
                acc = _mm_add_epi32(acc, _mm_madd_epi16(px, _mm_set1_epi32((uint16_t)w[t])));
            }
            /* round, shift, saturate to 8 bits: four channels in the low 4 bytes */
            acc = _mm_srai_epi32(_mm_add_epi32(acc, _mm_set1_epi32(1 << (SPDL_Q - 1))), SPDL_Q);
            acc = _mm_packus_epi16(_mm_packs_epi32(acc, acc), acc);
            if (out_ch == 4 || x + 1 < kh->n) {
                /* 4 bytes: with 3 channels the 4th is overwritten by the next pixel */
                int32_t px4 = _mm_cvtsi128_si32(acc);
                memcpy(out + out_ch * x, &px4, 4);
            } else {
                int32_t px4 = _mm_cvtsi128_si32(acc);
                memcpy(out + out_ch * x, &px4, 3);
            }
            continue;
#else
            a[0] = a[1] = a[2] = a[3] = 0;
            for (t = 0; t < kh->taps; t++)
                for (c = 0; c < 4; c++)
                    a[c] += w[t] * p[4 * t + c];
#endif
            for (c = 0; c < out_ch; c++)
                out[out_ch * x + c] = spdl_clip8(a[c]);
        }
    }
}

/* Horizontal pass over rows of tmp (channels bytes per pixel) into dst. */
static void spdl_resample_h(const uint8_t *tmp, int tmp_row_bytes, int rows, int channels,
                            const spdl_kernel *kh, int first, uint8_t *dst, ptrdiff_t dst_stride)
{
    int y, x, t, c;
    for (y = 0; y < rows; y++) {
        const uint8_t *row = tmp + (size_t)y * tmp_row_bytes;
        uint8_t *out = dst + (ptrdiff_t)y * dst_stride;
        for (x = 0; x < kh->n; x++) {
            const int16_t *w = kh->w + (size_t)x * kh->taps;
            const uint8_t *p = row + (size_t)(kh->start[x] - first) * channels;
            int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            switch (channels) {
            case 1:
                for (t = 0; t < kh->taps; t++)
                    a0 += w[t] * p[t];
                out[x] = spdl_clip8(a0);
                break;
            case 3:
                for (t = 0; t < kh->taps; t++) {
                    a0 += w[t] * p[3 * t];
                    a1 += w[t] * p[3 * t + 1];
                    a2 += w[t] * p[3 * t + 2];
                }
                out[3 * x] = spdl_clip8(a0);
                out[3 * x + 1] = spdl_clip8(a1);
                out[3 * x + 2] = spdl_clip8(a2);
                break;
            case 4:
                for (t = 0; t < kh->taps; t++) {
                    a0 += w[t] * p[4 * t];
                    a1 += w[t] * p[4 * t + 1];
                    a2 += w[t] * p[4 * t + 2];
                    a3 += w[t] * p[4 * t + 3];
                }
                out[4 * x] = spdl_clip8(a0);
                out[4 * x + 1] = spdl_clip8(a1);
                out[4 * x + 2] = spdl_clip8(a2);
                out[4 * x + 3] = spdl_clip8(a3);
                break;
            default:
                for (c = 0; c < channels; c++) {
                    a0 = 0;
                    for (t = 0; t < kh->taps; t++)
                        a0 += w[t] * p[channels * t + c];
                    out[channels * x + c] = spdl_clip8(a0);
                }
            }
        }
    }
}

/* Whether 3-byte pixels take a vectorised horizontal pass (else callers pad to 4). */
static int spdl_resample_fast3(void)
{
#if defined(SPDL_HAVE_AVX2_PATH)
    return spdl_use_avx2 && spdl_cpu_avx2();
#else
    return 0;
#endif
}

/* The horizontal pass over rows of tmp (cin bytes a pixel, starting at input pixel
 * first) into dst (out_ch bytes a pixel: cin, or 3 from 4). tmp needs SPDL_ROW_SLACK
 * bytes after its last row. */
#define SPDL_ROW_SLACK 32
static void spdl_resample_packed(const uint8_t *tmp, int tmp_row_bytes, int rows, int cin,
                                 int out_ch, const spdl_kernel *kh, int first, uint8_t *dst,
                                 ptrdiff_t dst_stride)
{
#if defined(SPDL_HAVE_AVX2_PATH)
    if ((cin == 3 || cin == 4) && !(kh->taps & 1) && spdl_use_avx2 && spdl_cpu_avx2()) {
        spdl_resample_h_avx2(tmp, tmp_row_bytes, rows, cin, out_ch, kh, first, dst, dst_stride);
        return;
    }
#endif
    if (cin == 4)
        spdl_resample_h4(tmp, tmp_row_bytes, rows, out_ch, kh, first, dst, dst_stride);
    else
        spdl_resample_h(tmp, tmp_row_bytes, rows, cin, kh, first, dst, dst_stride);
}

#endif
