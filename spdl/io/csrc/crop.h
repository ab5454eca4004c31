/* The random draws of training crops: a pure function of (seed, image index).
 *
 * Each image gets streams of its own, derived from the seed and its index with
 * SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
 * generators", 2014), so a draw depends on nothing else: not on the thread that
 * decodes the image, the order the images run in, or the backend. Stream 0 draws
 * the crop box, stream 1 the flip, so the flip does not depend on how many tries
 * the box took.
 */
#ifndef SPDL_CROP_H
#define SPDL_CROP_H

#include <math.h>
#include <stdint.h>

typedef struct {
    uint64_t state;
} spdl_rng;

static inline uint64_t spdl_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline void spdl_rng_init(spdl_rng *r, uint64_t seed, int64_t index, int stream)
{
    r->state = spdl_mix64(seed ^ spdl_mix64((uint64_t)index * 2u + (uint64_t)stream
                                            + 0x9E3779B97F4A7C15ULL));
}

/* Uniform in [0, 1), 53 bits. */
static inline double spdl_rng_uniform(spdl_rng *r)
{
    r->state += 0x9E3779B97F4A7C15ULL;
    return (double)(spdl_mix64(r->state) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform integer in [0, n), n >= 1. */
static inline int spdl_rng_below(spdl_rng *r, int n)
{
    int v = (int)(spdl_rng_uniform(r) * n);
    return v < n ? v : n - 1;
}

/* torchvision's RandomResizedCrop.get_params: up to 10 draws of an area fraction
 * (uniform in [scale_lo, scale_hi]) and a log aspect ratio (uniform in [lr_lo, lr_hi]);
 * the first box that fits is placed uniformly. Else the centred box of the image,
 * narrowed to the ratio range. Sizes round half to even, as Python's round(). */
static void spdl_random_resized_crop(uint64_t seed, int64_t index, int iw, int ih,
                                     double scale_lo, double scale_hi, double lr_lo,
                                     double lr_hi, int *x, int *y, int *w, int *h)
{
    spdl_rng r;
    double area = (double)iw * ih, target, aspect, in_ratio;
    double ratio_lo = exp(lr_lo), ratio_hi = exp(lr_hi);
    int t, cw, ch;
    spdl_rng_init(&r, seed, index, 0);
    for (t = 0; t < 10; t++) {
        target = area * (scale_lo + (scale_hi - scale_lo) * spdl_rng_uniform(&r));
        aspect = exp(lr_lo + (lr_hi - lr_lo) * spdl_rng_uniform(&r));
        cw = (int)nearbyint(sqrt(target * aspect));
        ch = (int)nearbyint(sqrt(target / aspect));
        if (cw > 0 && cw <= iw && ch > 0 && ch <= ih) {
            *y = spdl_rng_below(&r, ih - ch + 1);
            *x = spdl_rng_below(&r, iw - cw + 1);
            *w = cw;
            *h = ch;
            return;
        }
    }
    in_ratio = (double)iw / ih;
    if (in_ratio < ratio_lo) {
        cw = iw;
        ch = (int)nearbyint(cw / ratio_lo);
    } else if (in_ratio > ratio_hi) {
        ch = ih;
        cw = (int)nearbyint(ch * ratio_hi);
    } else {
        cw = iw;
        ch = ih;
    }
    if (cw < 1) cw = 1;
    if (ch < 1) ch = 1;
    if (cw > iw) cw = iw;
    if (ch > ih) ch = ih;
    *w = cw;
    *h = ch;
    *x = (iw - cw) / 2;
    *y = (ih - ch) / 2;
}

/* The centred box of aspect out_w : out_h, fraction of the largest one inside the image. */
static void spdl_center_crop(int iw, int ih, int out_w, int out_h, double fraction, int *x,
                             int *y, int *w, int *h)
{
    double bw, bh;
    int cw, ch;
    if ((double)iw * out_h >= (double)ih * out_w) {   /* the image is wider: full height */
        bh = ih;
        bw = (double)ih * out_w / out_h;
    } else {
        bw = iw;
        bh = (double)iw * out_h / out_w;
    }
    cw = (int)nearbyint(bw * fraction);
    ch = (int)nearbyint(bh * fraction);
    if (cw < 1) cw = 1;
    if (ch < 1) ch = 1;
    if (cw > iw) cw = iw;
    if (ch > ih) ch = ih;
    *w = cw;
    *h = ch;
    *x = (int)nearbyint((iw - cw) / 2.0);
    *y = (int)nearbyint((ih - ch) / 2.0);
}

/* Whether to flip image index, with probability p. */
static int spdl_draw_flip(uint64_t seed, int64_t index, double p)
{
    spdl_rng r;
    if (p <= 0.0)
        return 0;
    if (p >= 1.0)
        return 1;
    spdl_rng_init(&r, seed, index, 1);
    return spdl_rng_uniform(&r) < p;
}

#endif
