# cython: language_level=3
"""Our cubic resampler's glue (the kernels and passes are in csrc/resample.h): a packed
8-bit image resized into the output window that a Geometry gives, with its scratch rows,
accumulators and recent kernels kept in a Resampler between images."""

from libc.stdint cimport int32_t, uint8_t
from libc.stdlib cimport calloc, free, realloc
from libc.string cimport memcpy

from spdl.io._geometry cimport Geometry, fill_black, fill_margins
from spdl.io._status cimport ERR_NOMEM, Status, fail
from spdl.io.includes.libavutil cimport AVPixelFormat

cdef extern from "csrc/resample.h" nogil:
    ctypedef struct spdl_kernel:
        int n
        int taps
        int *start
        short *w
    void spdl_resample_v(const uint8_t *src, ptrdiff_t src_stride, int row_bytes,
                         const spdl_kernel *kv, uint8_t *tmp, int32_t *acc)
    void spdl_resample_packed(const uint8_t *tmp, int tmp_row_bytes, int rows, int cin,
                              int out_ch, const spdl_kernel *kh, int first, uint8_t *dst,
                              ptrdiff_t dst_stride)
    ctypedef struct spdl_kcache:
        pass
    void spdl_kcache_free(spdl_kcache *c)
    const spdl_kernel *spdl_kernel_get(spdl_kcache *c, int in_n, double origin, double extent,
                                       int out_total, int out0, int n)
    int spdl_resample_fast3()
    int SPDL_ROW_SLACK
    int spdl_use_avx2


cdef void resampler_init(Resampler *s) noexcept nogil:
    s.rows = NULL
    s.acc = NULL
    s.rows_cap = s.acc_cap = 0
    s.kernels = NULL


cdef void resampler_free(Resampler *s) noexcept nogil:
    free(s.rows)
    free(s.acc)
    if s.kernels != NULL:
        spdl_kcache_free(<spdl_kcache *>s.kernels)
        free(s.kernels)
    resampler_init(s)


cdef int reserve(void **p, size_t *cap, size_t need) noexcept nogil:
    """Grow the buffer at p to at least need bytes; -1 when out of memory."""
    cdef void *q
    if need <= cap[0]:
        return 0
    q = realloc(p[0], need)
    if q == NULL:
        return -1
    p[0] = q
    cap[0] = need
    return 0


cdef int resample_into(Resampler *s, const uint8_t *pixels, size_t pitch, int w, int h, int ch_in,
                       int ch_out, double ex, double ey, double ew, double eh, const Geometry *g,
                       AVPixelFormat out_fmt, uint8_t **dst, const int *linesize,
                       Status *err) noexcept nogil:
    """Resize the part of a packed 8-bit image (w x h, ch_in bytes a pixel) at (ex, ey), ew x eh
    large, into the output at dst as g places it, with the cubic resampler; ch_out is ch_in,
    or 3 from 4. Only pixels under the part are read (a crop's edges are edges)."""
    cdef int vx0, vx1, vy0, vy1, col0, col1, y
    cdef const spdl_kernel *kh
    cdef const spdl_kernel *kv
    cdef size_t span
    cdef uint8_t *o
    vx0, vx1 = max(0, -g.ox), min(g.sw, g.out_w - g.ox)
    vy0, vy1 = max(0, -g.oy), min(g.sh, g.out_h - g.oy)
    if vx1 <= vx0 or vy1 <= vy0:
        fill_black(out_fmt, g.out_w, g.out_h, dst, linesize)
        return 0
    if vx1 - vx0 < g.out_w or vy1 - vy0 < g.out_h:
        fill_margins(out_fmt, g, g.ox + vx0, g.oy + vy0, g.ox + vx1, g.oy + vy1, dst,
                      linesize)
    o = dst[0] + <size_t>(g.oy + vy0) * linesize[0] + <size_t>(g.ox + vx0) * ch_out
    if (w == g.sw and h == g.sh and ex == 0 and ey == 0 and ew == w and eh == h
            and ch_in == ch_out):  # copy the window
        span = <size_t>(vx1 - vx0) * ch_out
        for y in range(vy0, vy1):
            memcpy(o + <size_t>(y - vy0) * linesize[0], pixels + y * pitch + <size_t>vx0 * ch_in,
                   span)
        return 0
    if s.kernels == NULL:
        s.kernels = calloc(1, sizeof(spdl_kcache))
        if s.kernels == NULL:
            return fail(err, ERR_NOMEM, "filter", "resample", 0, "out of memory")
    kh = spdl_kernel_get(<spdl_kcache *>s.kernels, w, ex, ew, g.sw, vx0, vx1 - vx0)
    if kh == NULL:
        return fail(err, ERR_NOMEM, "filter", "resample", 0, "out of memory")
    kv = spdl_kernel_get(<spdl_kcache *>s.kernels, h, ey, eh, g.sh, vy0, vy1 - vy0)
    # kh was just used, so making kv never evicts it (kv may be kh itself: same kernel)
    if kv == NULL:
        return fail(err, ERR_NOMEM, "filter", "resample", 0, "out of memory")
    # Only the columns the horizontal kernel reads go through the vertical pass.
    col0, col1 = kh.start[0], kh.start[kh.n - 1] + kh.taps
    span = <size_t>(col1 - col0) * ch_in
    if (reserve(<void **>&s.rows, &s.rows_cap, span * kv.n + SPDL_ROW_SLACK) < 0
            or reserve(<void **>&s.acc, &s.acc_cap, span * sizeof(int32_t)) < 0):
        return fail(err, ERR_NOMEM, "filter", "resample", 0, "out of memory")
    spdl_resample_v(pixels + <size_t>col0 * ch_in, pitch, <int>span, kv, s.rows, s.acc)
    spdl_resample_packed(s.rows, <int>span, kv.n, ch_in, ch_out, kh, col0, o, linesize[0])
    return 0


cdef bint resample_fast3() noexcept nogil:
    """Whether 3-byte pixels resample as fast as 4-byte ones (else pad RGB to RGBX)."""
    return spdl_resample_fast3() != 0


cdef void set_use_simd(bint on) noexcept nogil:
    """Whether the resampler may use its AVX2 passes (the baseline passes give the same
    bytes); switched by tests only (spdl.io._testing.use_simd)."""
    global spdl_use_avx2
    spdl_use_avx2 = 1 if on else 0

