# cython: language_level=3
"""convert_frames: decoded frames into one contiguous batch, and the batch layouts.

Which pixel formats batch, and the row shape of each:
  packed formats whose samples are all one size (rgb24, bgr24, rgba, gray,
  gray16le, rgb48, ...): (H, W, C), uint8 or uint16; 16-bit big-endian
  samples (16-bit PNGs decode so) are swapped to the machine's order and the
  batch takes the little-endian name;
  planar formats without chroma subsampling (yuv444p, gbrp, ...): (C, H, W),
  channels in the order of the format's components (gbrp batches as R, G, B
  planes and is named "rgbp");
  8-bit 4:2:0 YUV (yuv420p, yuvj420p) with even width and height:
  (1, H * 3 / 2, W), the I420 layout: the Y plane, then U, then V.
Other subsampled, paletted, bit-packed and float formats do not batch: ask for
a pix_fmt.
"""

from libc.stdint cimport int64_t, uint8_t, uint16_t
from libc.string cimport memcpy

from spdl.io._buffer cimport CPUBuffer
from spdl.io._decode cimport ImageFrames
from spdl.io.includes.libavutil cimport (
    AV_PIX_FMT_FLAG_BE, AV_PIX_FMT_FLAG_BITSTREAM, AV_PIX_FMT_FLAG_FLOAT,
    AV_PIX_FMT_FLAG_HWACCEL, AV_PIX_FMT_FLAG_PAL, AV_PIX_FMT_FLAG_PLANAR, AV_PIX_FMT_GBRP, AVFrame,
    AVPixelFormat, AVPixFmtDescriptor, av_get_pix_fmt_name, av_image_copy_plane,
    av_pix_fmt_desc_get, av_pix_fmt_swap_endianness,
)

from spdl.io._errors import BatchShapeError, UnbatchableFormatError


cdef int frame_layout(AVPixelFormat fmt, Layout *out) noexcept nogil:
    """The batch layout of fmt, or -1 if it does not batch."""
    cdef const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(fmt)
    cdef int c, depth, size
    if d == NULL or d.nb_components == 0:
        return -1
    if d.flags & (AV_PIX_FMT_FLAG_BITSTREAM | AV_PIX_FMT_FLAG_FLOAT | AV_PIX_FMT_FLAG_HWACCEL
                  | AV_PIX_FMT_FLAG_PAL):
        return -1
    depth = d.comp[0].depth
    size = 1 if depth <= 8 else 2
    if depth > 16:
        return -1
    for c in range(d.nb_components):
        if d.comp[c].depth != depth or d.comp[c].shift != 0:
            return -1
    out.channels = d.nb_components
    out.itemsize = size
    out.swap = (d.flags & AV_PIX_FMT_FLAG_BE) != 0 and size == 2
    out.stacked = False
    if d.flags & AV_PIX_FMT_FLAG_PLANAR:
        for c in range(d.nb_components):
            if d.comp[c].step != size or d.comp[c].offset != 0:
                return -1
            out.plane_channel[d.comp[c].plane] = c
        out.planar = True
        if d.log2_chroma_w or d.log2_chroma_h:
            if d.log2_chroma_w != 1 or d.log2_chroma_h != 1 or d.nb_components != 3 or size != 1:
                return -1
            out.stacked = True
    else:
        for c in range(d.nb_components):
            if d.comp[c].plane != 0 or d.comp[c].step != size * d.nb_components:
                return -1
        out.planar = False
    return 0


cdef str batch_pix_fmt_name(AVPixelFormat fmt):
    """The name a batch of fmt reports: FFmpeg's, except gbrp, which batches as R, G, B
    ("rgbp"), and big-endian formats, which batch in the machine's (little-endian) order."""
    cdef const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(fmt)
    if fmt == AV_PIX_FMT_GBRP:
        return "rgbp"
    if d != NULL and d.flags & AV_PIX_FMT_FLAG_BE:
        fmt = av_pix_fmt_swap_endianness(fmt)
    cdef const char *name = av_get_pix_fmt_name(fmt)
    return name.decode() if name != NULL else None


cdef object batch_shape(int n, const Layout *lay, int w, int h):
    if lay.stacked:
        return (n, 1, h + h // 2, w)
    if lay.planar:
        return (n, lay.channels, h, w)
    return (n, h, w, lay.channels)


cdef str layout_size_error(const Layout *lay, int w, int h):
    """Why a w x h image does not fit the layout, or None."""
    if lay.stacked and (w % 2 or h % 2):
        return f"{w}x{h} is odd: 4:2:0 YUV batches only with an even width and height"
    return None


cdef void slot_planes(CPUBuffer buf, Py_ssize_t i, const Layout *lay, int w, int h,
                      uint8_t **dst, int *linesize) noexcept nogil:
    """Plane pointers and line sizes of row i of buf, for writing a w x h image, in the
    order of the frame's planes."""
    cdef uint8_t *base = <uint8_t *>buf.data + <size_t>i * buf.row_bytes()
    cdef size_t plane = <size_t>w * h * lay.itemsize
    cdef int p
    for p in range(4):
        dst[p] = NULL
        linesize[p] = 0
    if lay.stacked:
        dst[0], linesize[0] = base, w
        dst[1], linesize[1] = base + plane, w // 2
        dst[2], linesize[2] = base + plane + plane // 4, w // 2
    elif lay.planar:
        for p in range(lay.channels):
            dst[p] = base + lay.plane_channel[p] * plane
            linesize[p] = w * lay.itemsize
    else:
        dst[0] = base
        linesize[0] = w * lay.itemsize * lay.channels


cdef void _swap16(uint8_t *row, int nbytes) noexcept nogil:
    cdef int k
    cdef uint8_t t
    for k in range(0, nbytes - 1, 2):
        t = row[k]
        row[k] = row[k + 1]
        row[k + 1] = t


cdef void copy_frame(const AVFrame *f, const Layout *lay, uint8_t **dst,
                     const int *linesize) noexcept nogil:
    """Copy frame f into the planes at dst (in the frame's plane order, as slot_planes gives)."""
    cdef int p, y, nplanes = lay.channels if lay.planar else 1
    cdef int shift, rows, nbytes
    for p in range(nplanes):
        shift = 1 if lay.stacked and p > 0 else 0
        nbytes = linesize[p] if not lay.planar else (f.width >> shift) * lay.itemsize
        rows = f.height >> shift
        av_image_copy_plane(dst[p], linesize[p], f.data[p], f.linesize[p], nbytes, rows)
        if lay.swap:
            for y in range(rows):
                _swap16(dst[p] + <size_t>y * linesize[p], nbytes)


cdef int one_layout(dict groups, Layout *lay, int *w, int *h, int *fmt) except -1:
    """The layout of a batch of images grouped as {(width, height, AVPixelFormat): [input
    indices]}: BatchShapeError if there is more than one group, UnbatchableFormatError if
    the format has no batch layout or the size does not fit it."""
    if len(groups) > 1:
        desc = "; ".join(
            f"{gw}x{gh} {batch_pix_fmt_name(<AVPixelFormat>gf)} at inputs {idx[:5]}"
            f"{'...' if len(idx) > 5 else ''}" for (gw, gh, gf), idx in groups.items())
        raise BatchShapeError(f"the images differ in size or pixel format: {desc}; give width, "
                              "height and pix_fmt to make them one", stage="convert")
    (w[0], h[0], fmt[0]), = groups
    if frame_layout(<AVPixelFormat>fmt[0], lay) < 0:
        raise UnbatchableFormatError(
            f"pixel format {batch_pix_fmt_name(<AVPixelFormat>fmt[0])!r} does not batch; ask for "
            "one of rgb24, bgr24, rgba, gray, gray16, yuv444p, yuv420p, rgbp", stage="convert")
    why = layout_size_error(lay, w[0], h[0])
    if why is not None:
        raise UnbatchableFormatError(why, stage="convert")
    return 0


def convert_frames(frames):
    """Copy decoded frames into one contiguous batch.

    Args:
        frames: A list of ImageFrames of one size and pixel format.

    Returns:
        CPUBuffer of shape (N, H, W, C) for packed formats, (N, C, H, W) for
        planar ones, (N, 1, H * 3 / 2, W) for 4:2:0 YUV.

    Raises:
        BatchShapeError: the frames differ in size or format.
        UnbatchableFormatError: the format does not batch.
    """
    frames = list(frames)
    cdef ImageFrames f
    cdef Layout lay
    cdef int w = 0, h = 0, fmt = -1, i, n = len(frames)
    cdef uint8_t *dst[4]
    cdef int linesize[4]
    for i, obj in enumerate(frames):
        if not isinstance(obj, ImageFrames):
            raise TypeError(f"frames[{i}] is {type(obj).__name__}, not ImageFrames")
    if n == 0:
        raise ValueError("convert_frames needs at least one frame")
    groups = {}
    for i in range(n):
        f = frames[i]
        groups.setdefault((f.frame.width, f.frame.height, f.frame.format), []).append(i)
    one_layout(groups, &lay, &w, &h, &fmt)
    cdef CPUBuffer buf = CPUBuffer.allocate(batch_shape(n, &lay, w, h), lay.itemsize,
                                            batch_pix_fmt_name(<AVPixelFormat>fmt))
    for i in range(n):
        f = frames[i]
        with nogil:
            slot_planes(buf, i, &lay, w, h, dst, linesize)
            copy_frame(f.frame, &lay, dst, linesize)
    return buf


# The output of training plans: float elements, channels first, flips.

cdef class CompiledOutput:
    pass


cdef CompiledOutput compile_output(object plan):
    """The plan's dtype, layout, mean and std as an OutSpec. A float sample is a table
    lookup: (v / 255 - mean) / std for each of the 256 values, computed in float32 as
    torchvision's ToDtype + Normalize compute it, and rounded to float16 for float16."""
    cdef CompiledOutput c = CompiledOutput.__new__(CompiledOutput)
    from spdl.io._plan import TRAIN_PIX_FMTS

    channels = TRAIN_PIX_FMTS.get(plan.pix_fmt, 0)
    c.spec.dtype = {"uint8": OUT_U8, "float32": OUT_F32, "float16": OUT_F16}[plan.dtype]
    c.spec.nchw = plan.layout == "NCHW"
    c.spec.channels = channels
    c.spec.lut = NULL
    if c.spec.dtype != OUT_U8:
        import numpy as np

        v = np.arange(256, dtype=np.float32) / np.float32(255)
        mean = np.array(plan.mean or (0.0,) * channels, dtype=np.float32)
        std = np.array(plan.std or (1.0,) * channels, dtype=np.float32)
        lut = (v[None, :] - mean[:, None]) / std[:, None]
        c.lut = lut.astype(np.float16 if c.spec.dtype == OUT_F16 else np.float32).tobytes()
        c.spec.lut = <const char *>c.lut
    return c


cdef void flip_rows(uint8_t *data, int linesize, int w, int h, int ch) noexcept nogil:
    """Mirror a packed w x h image (ch bytes a pixel) left to right, in place."""
    cdef int y, x, k
    cdef uint8_t t
    cdef uint8_t *row
    cdef uint8_t *a
    cdef uint8_t *b
    for y in range(h):
        row = data + <size_t>y * linesize
        for x in range(w // 2):
            a = row + x * ch
            b = row + (w - 1 - x) * ch
            for k in range(ch):
                t = a[k]
                a[k] = b[k]
                b[k] = t


cdef void write_converted(const OutSpec *o, const uint8_t *src, size_t pitch, int w, int h,
                          bint flip, uint8_t *dst) noexcept nogil:
    """Write the packed 8-bit w x h image at src (pitch bytes a row) into one row of the batch
    at dst as o says, mirrored if flip: each pixel read once, each element written once."""
    cdef int C = o.channels, x, y, c, xs, step
    cdef const uint8_t *row
    cdef const float *lf = <const float *>o.lut
    cdef const uint16_t *lh = <const uint16_t *>o.lut
    cdef float *df = <float *>dst
    cdef uint16_t *dh = <uint16_t *>dst
    cdef size_t plane = <size_t>w * h, at
    for y in range(h):
        row = src + <size_t>y * pitch
        xs = (w - 1) * C if flip else 0
        step = -C if flip else C
        if o.nchw:
            at = <size_t>y * w
            for c in range(C):
                if o.dtype == OUT_F32:
                    for x in range(w):
                        df[c * plane + at + x] = lf[c * 256 + row[xs + x * step + c]]
                elif o.dtype == OUT_F16:
                    for x in range(w):
                        dh[c * plane + at + x] = lh[c * 256 + row[xs + x * step + c]]
                else:
                    for x in range(w):
                        dst[c * plane + at + x] = row[xs + x * step + c]
        else:
            at = <size_t>y * w * C
            if o.dtype == OUT_F32:
                for x in range(w):
                    for c in range(C):
                        df[at + x * C + c] = lf[c * 256 + row[xs + x * step + c]]
            elif o.dtype == OUT_F16:
                for x in range(w):
                    for c in range(C):
                        dh[at + x * C + c] = lh[c * 256 + row[xs + x * step + c]]
            elif not flip:
                memcpy(dst + at, row, <size_t>w * C)
            else:
                for x in range(w):
                    for c in range(C):
                        dst[at + x * C + c] = row[xs + x * step + c]
