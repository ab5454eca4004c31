# cython: language_level=3
"""convert_frames: decoded frames into one contiguous batch.

Which pixel formats batch, and the row shape of each:
  packed formats whose samples are all one size (rgb24, bgr24, rgba, gray,
  gray16le, ...): (H, W, C), uint8 or uint16;
  planar formats without chroma subsampling (yuv444p, gbrp, ...): (C, H, W),
  channels in the order of the format's components (gbrp batches as R, G, B
  planes and is named "rgbp").
Subsampled (yuv420p ...), paletted, bit-packed, big-endian and float formats
do not batch: ask for a pix_fmt.
"""

from libc.stdint cimport int64_t, uint8_t

from spdl.io._buffer cimport CPUBuffer
from spdl.io._decode cimport ImageFrames
from spdl.io.includes.libavutil cimport (
    AV_PIX_FMT_FLAG_BE, AV_PIX_FMT_FLAG_BITSTREAM, AV_PIX_FMT_FLAG_FLOAT,
    AV_PIX_FMT_FLAG_HWACCEL, AV_PIX_FMT_FLAG_PAL, AV_PIX_FMT_FLAG_PLANAR, AV_PIX_FMT_GBRP, AVFrame, AVPixelFormat,
    AVPixFmtDescriptor, av_get_pix_fmt_name, av_image_copy_plane, av_pix_fmt_desc_get,
)


cdef int frame_layout(AVPixelFormat fmt, Layout *out) noexcept nogil:
    """The batch layout of fmt, or -1 if it does not batch."""
    cdef const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(fmt)
    cdef int c, depth, size
    if d == NULL or d.nb_components == 0:
        return -1
    if d.flags & (AV_PIX_FMT_FLAG_BE | AV_PIX_FMT_FLAG_BITSTREAM | AV_PIX_FMT_FLAG_FLOAT
                  | AV_PIX_FMT_FLAG_HWACCEL | AV_PIX_FMT_FLAG_PAL):
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
    if d.flags & AV_PIX_FMT_FLAG_PLANAR:
        if d.log2_chroma_w or d.log2_chroma_h:
            return -1
        for c in range(d.nb_components):
            if d.comp[c].step != size or d.comp[c].offset != 0:
                return -1
            out.plane_channel[d.comp[c].plane] = c
        out.planar = True
    else:
        for c in range(d.nb_components):
            if d.comp[c].plane != 0 or d.comp[c].step != size * d.nb_components:
                return -1
        out.planar = False
    return 0


cdef str batch_pix_fmt_name(AVPixelFormat fmt):
    """The name a batch of fmt reports: FFmpeg's, except gbrp, which batches as R, G, B."""
    if fmt == AV_PIX_FMT_GBRP:
        return "rgbp"
    cdef const char *name = av_get_pix_fmt_name(fmt)
    return name.decode() if name != NULL else None


cdef object batch_shape(int n, const Layout *lay, int w, int h):
    if lay.planar:
        return (n, lay.channels, h, w)
    return (n, h, w, lay.channels)


cdef void slot_planes(CPUBuffer buf, Py_ssize_t i, const Layout *lay, int w, int h,
                      uint8_t **dst, int *linesize) noexcept nogil:
    """Plane pointers and line sizes of row i of buf, for writing a w x h image."""
    cdef uint8_t *base = <uint8_t *>buf.data + <size_t>i * buf.row_bytes()
    cdef size_t plane = <size_t>w * h * lay.itemsize
    cdef int p
    for p in range(4):
        dst[p] = NULL
        linesize[p] = 0
    if lay.planar:
        for p in range(lay.channels):
            dst[p] = base + lay.plane_channel[p] * plane
            linesize[p] = w * lay.itemsize
    else:
        dst[0] = base
        linesize[0] = w * lay.itemsize * lay.channels


cdef void copy_frame(const AVFrame *f, const Layout *lay, uint8_t **dst,
                     const int *linesize) noexcept nogil:
    """Copy frame f into the planes at dst (in the frame's plane order, as slot_planes gives)."""
    cdef int p
    if lay.planar:
        for p in range(lay.channels):
            av_image_copy_plane(dst[p], linesize[p], f.data[p], f.linesize[p],
                                f.width * lay.itemsize, f.height)
    else:
        av_image_copy_plane(dst[0], linesize[0], f.data[0], f.linesize[0],
                            linesize[0], f.height)


def convert_frames(frames):
    """Copy decoded frames into one contiguous batch.

    Args:
        frames: A list of ImageFrames of one size and pixel format.

    Returns:
        CPUBuffer of shape (N, H, W, C) for packed formats or (N, C, H, W)
        for planar ones.

    Raises:
        ValueError: the frames differ in size or format, or the format does
            not batch.
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
    sizes = {}
    for i in range(n):
        f = frames[i]
        sizes.setdefault((f.frame.width, f.frame.height, f.pix_fmt), []).append(i)
    if len(sizes) > 1:
        desc = "; ".join(f"{w}x{h} {fmt_name} at {idx[:5]}{'...' if len(idx) > 5 else ''}"
                         for (w, h, fmt_name), idx in sizes.items())
        raise ValueError(f"convert_frames: frames differ in size or pixel format: {desc}; "
                         "resize them to one size (width/height or filter_desc)")
    f = frames[0]
    w, h, fmt = f.frame.width, f.frame.height, f.frame.format
    if frame_layout(<AVPixelFormat>fmt, &lay) < 0:
        raise ValueError(f"convert_frames: pixel format {f.pix_fmt!r} does not batch; "
                         "ask for one of rgb24, bgr24, rgba, gray, gray16, yuv444p, rgbp")
    cdef CPUBuffer buf = CPUBuffer.allocate(batch_shape(n, &lay, w, h), lay.itemsize,
                                            batch_pix_fmt_name(<AVPixelFormat>fmt))
    for i in range(n):
        f = frames[i]
        with nogil:
            slot_planes(buf, i, &lay, w, h, dst, linesize)
            copy_frame(f.frame, &lay, dst, linesize)
    return buf
