# cython: language_level=3
"""The nvJPEG loader's output: NPP's resize of the decoded images into their rows (placed
as the CPU path places them), the rows from the CPU path copied in, the rows of failed
inputs dropped, and a training plan's float or channels-first batch made from the rows.

NPP: supersampling when shrinking both ways, bicubic otherwise, nearest (an exact copy)
at the same size; scale_mode "pad" fits inside width x height keeping the aspect ratio,
centred, black borders; "stretch" fills the row. A crop box (the plan's crop, resolved
per image as the CPU path resolves it) is the resize's source ROI, stretched over the
whole row; a flipped row is mirrored left to right in place after its resize, borders
included, as the CPU path mirrors its rows.

A plan with dtype float32/float16 or layout "NCHW" gets its batch from these uint8 packed
rows in one more pass on the GPU (convert_rows), with the CPU path's own table
(_layout.compile_output: for each channel and each of the 256 values, (v / 255 - mean) /
std in float32, or that rounded to float16), so every element is exactly the CPU path's.
"""

from libc.stdint cimport uintptr_t
from libc.stdlib cimport calloc, free

from libc.string cimport memcpy

from spdl.io._buffer cimport CPUBuffer
from spdl.io._cuda_buffer cimport CUDABuffer, alloc_cuda_buffer
from spdl.io._cuda_device cimport DeviceScope, check_scope, enter_device, leave_device
from spdl.io._cuda_runtime cimport CudaRuntimeApi, cudart
from spdl.io._geometry cimport Crop
from spdl.io._keepalive cimport check_then_keep
from spdl.io._layout cimport OUT_F16, OUT_F32, OUT_U8, CompiledOutput, compile_output
from spdl.io._nvjpeg_decode cimport _Inputs
from spdl.io._nvjpeg_lib cimport NppApi, npp_api
from spdl.io.includes.cuda_runtime cimport *
from spdl.io.includes.dlpack cimport kDLFloat
from spdl.io.includes.npp cimport *

from spdl.io._errors import CUDAError
from spdl.io._pinned import host_allocator

cdef const NppApi *_npp = npp_api()     # filled by load_libraries() before any use

# The device properties NppStreamContext carries (nppdefs.h), read once per device.
_ATTRS = {}


cdef int _device_attrs(int device, NppStreamContext *ctx) except -1:
    cdef const CudaRuntimeApi *rt
    cdef cudaError_t err = cudaSuccess
    cdef DeviceScope scope
    cdef int v[6]
    cdef int which[6]
    cdef int k
    attrs = _ATTRS.get(device)
    if attrs is None:
        rt = cudart()
        which[:] = [cudaDevAttrMultiProcessorCount, cudaDevAttrMaxThreadsPerMultiProcessor,
                    cudaDevAttrMaxThreadsPerBlock, cudaDevAttrMaxSharedMemoryPerBlock,
                    cudaDevAttrComputeCapabilityMajor, cudaDevAttrComputeCapabilityMinor]
        with nogil:
            if enter_device(rt, device, &scope) == 0:
                for k in range(6):
                    v[k] = 0
                    if err == cudaSuccess:
                        err = rt.cudaDeviceGetAttribute(&v[k], which[k], device)
            leave_device(rt, &scope)
        check_scope(&scope, err, "cudaDeviceGetAttribute", f"cuda:{device}")
        attrs = _ATTRS[device] = tuple(v[k] for k in range(6))
    (ctx.nMultiProcessorCount, ctx.nMaxThreadsPerMultiProcessor, ctx.nMaxThreadsPerBlock, k,
     ctx.nCudaDevAttrComputeCapabilityMajor, ctx.nCudaDevAttrComputeCapabilityMinor) = attrs
    ctx.nSharedMemPerBlock = <size_t>k
    return 0


cdef int prepare_output(CUDABuffer out, bint pad, NppStreamContext *ctx) except -1:
    """Clear the output (black borders, with pad) and fill NPP's context for its stream."""
    cdef const CudaRuntimeApi *rt = cudart()
    cdef uintptr_t stream = out._stream
    cdef int device = out._device
    cdef unsigned int flags = 0
    cdef cudaError_t err = cudaSuccess
    cdef const char *op = "cudaMemsetAsync"
    cdef DeviceScope scope
    _device_attrs(device, ctx)
    with nogil:
        if enter_device(rt, device, &scope) == 0:
            if pad:
                err = rt.cudaMemsetAsync(<void *>out.ptr, 0, out._nbytes, <cudaStream_t>stream)
            # NppStreamContext: the stream, its flags and the device's properties (nppdefs.h).
            ctx.hStream = <cudaStream_t>stream
            ctx.nCudaDeviceId = device
            if err == cudaSuccess:
                op = "cudaStreamGetFlags"
                err = rt.cudaStreamGetFlags(<cudaStream_t>stream, &flags)
            ctx.nStreamFlags = flags
            ctx.nReserved0 = 0
        leave_device(rt, &scope)
    check_scope(&scope, err, op.decode(), f"cuda:{device}")
    return 0


cdef struct _Place:
    Py_ssize_t row         # the input index, which is its row
    int sw, sh, ox, oy     # the scaled size and its top-left corner in the row
    int bx, by, bw, bh     # the source ROI: the crop box, or the whole image
    bint flip              # mirror the row left to right after the resize


cdef list resize_into(CUDABuffer out, _Inputs inp, list images, object plan, bint planar,
                      int algo, const Crop *crops, const NppStreamContext *ctx):
    """Resize the GPU-decoded input images (indices) into their rows (the output has a row
    per input), placed by plan.geometry (as the CPU path places them); algo is an NPP
    interpolation, or 0 for bicubic (supersampling when shrinking both ways).

    crops (NULL: none) holds what the plan does to each input (resolve_crop): a cropped
    input's box is the source ROI, stretched over the whole row; a flipped input's row is
    mirrored left to right in place after its resize (packed rows only: the plan flips
    only packed formats).

    Returns [(input index, NppStatus, NPP function)] of the images NPP refused (their
    rows are left for the caller to fill); raises CUDAError for a failed CUDA call.
    """
    cdef const CudaRuntimeApi *rt = cudart()
    cdef Py_ssize_t m = len(images), j
    cdef _Place *place
    cdef NppStatus *npp_st
    cdef bint *mirror_failed
    cdef int width = plan.width, height = plan.height
    cdef size_t row_bytes = <size_t>width * height * 3, plane_out = <size_t>width * height, plane_in
    cdef uintptr_t dst, src
    cdef int device = out._device, w, h, interp, c
    cdef DeviceScope scope
    cdef NppStatus st = NPP_NO_ERROR
    cdef const unsigned char *srcp[3]
    cdef unsigned char *dstp[3]
    cdef NppiSize src_size, dst_size, row_size
    cdef NppiRect src_roi, dst_roi
    if m == 0:
        return []
    if planar and crops != NULL:
        for j in range(m):
            if crops[<Py_ssize_t>images[j]].flip:
                raise ValueError("a planar row cannot be flipped")
    place = <_Place *>calloc(m, sizeof(_Place))
    npp_st = <NppStatus *>calloc(m, sizeof(NppStatus))
    mirror_failed = <bint *>calloc(m, sizeof(bint))
    if place == NULL or npp_st == NULL or mirror_failed == NULL:
        free(place)
        free(npp_st)
        free(mirror_failed)
        raise MemoryError()
    for j in range(m):
        i = images[j]
        w, h = inp.width[i], inp.height[i]
        place[j].row = i
        place[j].bx, place[j].by, place[j].bw, place[j].bh = 0, 0, w, h
        if crops != NULL and crops[<Py_ssize_t>i].cropped:
            place[j].bx, place[j].by = crops[<Py_ssize_t>i].x, crops[<Py_ssize_t>i].y
            place[j].bw, place[j].bh = crops[<Py_ssize_t>i].w, crops[<Py_ssize_t>i].h
            place[j].sw, place[j].sh, place[j].ox, place[j].oy = width, height, 0, 0
        else:
            _, _, sw, sh, ox, oy = plan.geometry(w, h)
            place[j].sw, place[j].sh, place[j].ox, place[j].oy = sw, sh, ox, oy
        place[j].flip = crops != NULL and crops[<Py_ssize_t>i].flip
    row_size.width, row_size.height = width, height
    with nogil:
        if enter_device(rt, device, &scope) == 0:
            for j in range(m):
                w = inp.width[place[j].row]
                h = inp.height[place[j].row]
                src = inp.decoded[place[j].row]
                if place[j].sw == place[j].bw and place[j].sh == place[j].bh:
                    interp = NPPI_INTER_NN                    # same size: an exact copy
                elif algo != 0:
                    interp = algo
                elif place[j].sw < place[j].bw and place[j].sh < place[j].bh:
                    interp = NPPI_INTER_SUPER                 # shrinking: area average
                else:
                    interp = NPPI_INTER_CUBIC
                # The source is the whole image (its origin and size), the ROI its part to
                # resize: NPP scales the ROI onto the destination ROI.
                src_size.width, src_size.height = w, h
                src_roi.x, src_roi.y = place[j].bx, place[j].by
                src_roi.width, src_roi.height = place[j].bw, place[j].bh
                dst_size.width, dst_size.height = place[j].sw, place[j].sh
                dst_roi.x, dst_roi.y, dst_roi.width, dst_roi.height = 0, 0, place[j].sw, place[j].sh
                # The destination image is the scaled image's window in the row.
                dst = out.ptr + <size_t>place[j].row * row_bytes
                if planar:
                    plane_in = <size_t>w * h
                    for c in range(3):
                        srcp[c] = <const unsigned char *>(src + c * plane_in)
                        dstp[c] = <unsigned char *>(dst + c * plane_out
                                                    + <size_t>place[j].oy * width + place[j].ox)
                    st = _npp.Resize_8u_P3R_Ctx(srcp, w, src_size, src_roi, dstp, width,
                                                dst_size, dst_roi, interp, ctx[0])
                else:
                    st = _npp.Resize_8u_C3R_Ctx(
                        <const unsigned char *>src, w * 3, src_size, src_roi,
                        <unsigned char *>(dst + (<size_t>place[j].oy * width + place[j].ox) * 3),
                        width * 3, dst_size, dst_roi, interp, ctx[0])
                if st >= 0 and place[j].flip:
                    # The whole row, borders included (a padded image's window moves when
                    # the border is odd), as the CPU path flips its rows.
                    st = _npp.Mirror_8u_C3IR_Ctx(<unsigned char *>dst, width * 3, row_size,
                                                 NPP_VERTICAL_AXIS, ctx[0])
                    mirror_failed[j] = st < 0
                npp_st[j] = st      # < 0: an error, > 0: a warning (the image is resized)
        leave_device(rt, &scope)
    failed = [(place[j].row, npp_st[j],
               "nppiMirror_8u_C3IR_Ctx" if mirror_failed[j]
               else "nppiResize_8u_P3R_Ctx" if planar else "nppiResize_8u_C3R_Ctx")
              for j in range(m) if npp_st[j] < 0]
    free(place)
    free(npp_st)
    free(mirror_failed)
    check_scope(&scope, cudaSuccess, None, f"cuda:{device}")
    return failed


cdef CUDABuffer keep_rows(CUDABuffer out, list keep, object cfg):
    """A new buffer holding rows `keep` of out, copied on out's stream (device to device)."""
    cdef const CudaRuntimeApi *rt = cudart()
    cdef Py_ssize_t m = len(keep), j
    cdef size_t row_bytes = out._nbytes // <size_t>out._shape[0]
    cdef CUDABuffer dst = alloc_cuda_buffer((m,) + out.shape[1:], out.itemsize, out.pix_fmt, cfg,
                                            out.dtype_code == kDLFloat)
    cdef Py_ssize_t *src_row = <Py_ssize_t *>calloc(m if m else 1, sizeof(Py_ssize_t))
    cdef uintptr_t stream = out._stream
    cdef DeviceScope scope
    cdef cudaError_t err = cudaSuccess
    if src_row == NULL:
        raise MemoryError()
    for j in range(m):
        src_row[j] = keep[j]
    with nogil:
        if enter_device(rt, out._device, &scope) == 0:
            j = 0
            while err == cudaSuccess and j < m:
                err = rt.cudaMemcpyAsync(<void *>(dst.ptr + <size_t>j * row_bytes),
                                         <const void *>(out.ptr + <size_t>src_row[j] * row_bytes),
                                         row_bytes, cudaMemcpyDeviceToDevice, <cudaStream_t>stream)
                j += 1
        leave_device(rt, &scope)
    free(src_row)
    check_scope(&scope, err, "cudaMemcpyAsync", f"keeping {m} rows on cuda:{out._device}")
    return dst     # out is freed by its allocator once its last reference goes, in its order


cdef int upload_rows(CUDABuffer out, CPUBuffer host, list rows) except -1:
    """Copy rows (out_row, host_row) of the host batch into out, keeping host alive until done."""
    cdef const CudaRuntimeApi *rt = cudart()
    cdef Py_ssize_t m = len(rows), j
    cdef size_t row_bytes = out._nbytes // <size_t>out._shape[0]
    cdef uintptr_t base = <uintptr_t>host.data
    cdef uintptr_t stream = out._stream
    cdef DeviceScope scope
    cdef cudaError_t err = cudaSuccess
    if host.row_bytes() != row_bytes:
        raise AssertionError("the host rows do not match the output rows")
    cdef Py_ssize_t *dst_row = <Py_ssize_t *>calloc(m if m else 1, sizeof(Py_ssize_t))
    cdef Py_ssize_t *src_row = <Py_ssize_t *>calloc(m if m else 1, sizeof(Py_ssize_t))
    if dst_row == NULL or src_row == NULL:
        free(dst_row)
        free(src_row)
        raise MemoryError()
    for j in range(m):
        dst_row[j], src_row[j] = rows[j]
    with nogil:
        if enter_device(rt, out._device, &scope) == 0:
            j = 0
            while err == cudaSuccess and j < m:
                err = rt.cudaMemcpyAsync(<void *>(out.ptr + <size_t>dst_row[j] * row_bytes),
                                         <const void *>(base + <size_t>src_row[j] * row_bytes),
                                         row_bytes, cudaMemcpyHostToDevice, <cudaStream_t>stream)
                j += 1
        leave_device(rt, &scope)
    free(dst_row)
    free(src_row)
    # Even after a failure, copies already enqueued may still read host: it is kept
    # alive either way, and the copy's own error is the one raised.
    check_then_keep(&scope, err, "cudaMemcpyAsync", f"rows decoded on the CPU to cuda:{out._device}",
                    out._device, stream, host)
    return 0


# ---------------------------------------------------------------------------
# Float and channels-first batches (a plan's dtype and layout)

cdef size_t _ALIGN = 256           # each part of the conversion's scratch starts 256-byte aligned


cdef inline size_t _up(size_t n) noexcept nogil:
    return (n + _ALIGN - 1) & ~(_ALIGN - 1)


cdef CPUBuffer _device_table(object plan, int dtype, object cfg):
    """The CPU path's per-channel table of the plan (compile_output), as NPP's palette look-up
    takes it: 3 x 256 32-bit entries in page-locked memory, to copy to the device.

    float32: the float32 values' bits. float16: each float16 value's 16 bits as an integer
    (0..65535) in a float32, which the look-up writes and nppiConvert_32f16u_C1R_Ctx then
    turns into those 16 bits exactly (an integer below 2^24 is exact in a float32; the
    conversion only rounds fractions and saturates outside 0..65535)."""
    import numpy as np

    cdef CompiledOutput c = compile_output(plan)
    if dtype == OUT_F16:
        table = np.frombuffer(c.lut, np.uint16).astype(np.float32)
    else:
        table = np.frombuffer(c.lut, np.float32)
    if table.size != 3 * 256:
        raise AssertionError(f"a table of {table.size} entries for 3 channels")
    cdef bytes data = table.tobytes()
    cdef CPUBuffer host = CPUBuffer.allocate((3 * 256,), 4, None, host_allocator(cfg), True)
    memcpy(host.data, <const char *>data, 3 * 256 * 4)
    return host


cdef CUDABuffer convert_rows(CUDABuffer src, list keep, object plan, const NppStreamContext *ctx):
    """A new buffer holding rows `keep` of src (uint8, packed (n, height, width, 3) in the
    plan's channel order) as the plan's dtype and layout, made on src's stream.

    Each row: its three channels split into planes (nppiCopy_8u_C3P3R_Ctx; for uint8
    NCHW, straight into the row), each plane looked up in its channel's table
    (nppiLUTPalette_8u32u_C1R_Ctx, the table in device memory) into float32 planes (for
    float32 NCHW, straight into the row), then for float32 NHWC the planes interleaved
    (nppiCopy_32f_P3C3R_Ctx), for float16 the looked-up 16-bit patterns made 16-bit
    (nppiConvert_32f16u_C1R_Ctx) and, for NHWC, interleaved (nppiCopy_16u_P3C3R_Ctx).
    Raises CUDAError for a failed CUDA or NPP call.
    """
    cdef const CudaRuntimeApi *rt = cudart()
    cdef object cfg = plan.device_config
    cdef int dtype = {"uint8": OUT_U8, "float32": OUT_F32, "float16": OUT_F16}[plan.dtype]
    cdef bint nchw = plan.layout == "NCHW"
    cdef int w = plan.width, h = plan.height
    cdef int itemsize = 1 if dtype == OUT_U8 else 4 if dtype == OUT_F32 else 2
    cdef Py_ssize_t m = len(keep), r
    cdef size_t plane = <size_t>w * h, row_in = plane * 3, row_out = plane * 3 * itemsize
    cdef tuple shape
    if nchw:
        shape = (m, 3, h, w)
    else:
        shape = (m, h, w, 3)
    cdef CUDABuffer dst = alloc_cuda_buffer(shape, itemsize, src.pix_fmt, cfg, dtype != OUT_U8)
    cdef CUDABuffer scratch = None
    cdef CPUBuffer table = None
    cdef Py_ssize_t *rows = NULL
    cdef uintptr_t stream = src._stream, tab = 0, u8 = 0, f32 = 0, u16 = 0, s_row, d_row
    cdef size_t total = 0
    cdef int device = src._device, c
    cdef DeviceScope scope
    cdef cudaError_t err = cudaSuccess
    cdef NppStatus st = NPP_NO_ERROR
    cdef const char *fn = NULL
    cdef NppiSize roi, tall
    cdef unsigned char *u_planes[3]
    cdef const unsigned char *u_src[3]
    cdef unsigned int *lut_dst[3]
    cdef const float *f_planes[3]
    cdef const unsigned short *h_planes[3]
    if m == 0:
        return dst
    if src._nbytes != <size_t>src._shape[0] * row_in or src.itemsize != 1:
        raise AssertionError("the rows to convert are not uint8 width x height x 3")
    # The scratch: the tables, the uint8 planes, the float32 planes, the 16-bit planes.
    if dtype != OUT_U8:
        table = _device_table(plan, dtype, cfg)
        total = _up(3 * 256 * 4)
    if dtype != OUT_U8 or not nchw:
        u8 = total
        total += _up(row_in)
    if dtype != OUT_U8 and not (dtype == OUT_F32 and nchw):
        f32 = total
        total += _up(row_in * 4)
    if dtype == OUT_F16 and not nchw:
        u16 = total
        total += _up(row_in * 2)
    rows = <Py_ssize_t *>calloc(m, sizeof(Py_ssize_t))
    if rows == NULL:
        raise MemoryError()
    for r in range(m):
        rows[r] = keep[r]
    if total:
        scratch = alloc_cuda_buffer((total,), 1, None, cfg)
        tab, u8, f32, u16 = scratch.ptr, scratch.ptr + u8, scratch.ptr + f32, scratch.ptr + u16
    roi.width, roi.height = w, h
    tall.width, tall.height = w, 3 * h         # three planes one after the other
    try:
        with nogil:
            if enter_device(rt, device, &scope) == 0:
                if table is not None:
                    err = rt.cudaMemcpyAsync(<void *>tab, <const void *>table.data, 3 * 256 * 4,
                                             cudaMemcpyHostToDevice, <cudaStream_t>stream)
                r = 0
                while err == cudaSuccess and st >= 0 and r < m:
                    s_row = src.ptr + <size_t>rows[r] * row_in
                    d_row = dst.ptr + <size_t>r * row_out
                    for c in range(3):
                        u_planes[c] = <unsigned char *>((d_row if dtype == OUT_U8 else u8) + c * plane)
                        u_src[c] = u_planes[c]
                        lut_dst[c] = <unsigned int *>((d_row if dtype == OUT_F32 and nchw else f32)
                                                      + c * plane * 4)
                        f_planes[c] = <const float *>lut_dst[c]
                        h_planes[c] = <const unsigned short *>(u16 + c * plane * 2)
                    fn = "nppiCopy_8u_C3P3R_Ctx"
                    st = _npp.Copy_8u_C3P3R_Ctx(<const unsigned char *>s_row, w * 3, u_planes, w,
                                                roi, ctx[0])
                    c = 0
                    while dtype != OUT_U8 and st >= 0 and c < 3:
                        fn = "nppiLUTPalette_8u32u_C1R_Ctx"
                        st = _npp.LUTPalette_8u32u_C1R_Ctx(
                            u_src[c], w, lut_dst[c], w * 4, roi,
                            <const unsigned int *>(tab + c * 256 * 4), 8, ctx[0])
                        c += 1
                    if st >= 0 and dtype == OUT_F32 and not nchw:
                        fn = "nppiCopy_32f_P3C3R_Ctx"
                        st = _npp.Copy_32f_P3C3R_Ctx(f_planes, w * 4, <float *>d_row, w * 12, roi,
                                                     ctx[0])
                    elif st >= 0 and dtype == OUT_F16:
                        fn = "nppiConvert_32f16u_C1R_Ctx"
                        st = _npp.Convert_32f16u_C1R_Ctx(
                            f_planes[0], w * 4, <unsigned short *>(d_row if nchw else u16), w * 2,
                            tall, NPP_RND_NEAR, ctx[0])
                        if st >= 0 and not nchw:
                            fn = "nppiCopy_16u_P3C3R_Ctx"
                            st = _npp.Copy_16u_P3C3R_Ctx(h_planes, w * 2, <unsigned short *>d_row,
                                                         w * 6, roi, ctx[0])
                    r += 1
            leave_device(rt, &scope)
        # The table is read by the copy enqueued above: kept until the stream gets past it.
        if table is not None:
            check_then_keep(&scope, err, "cudaMemcpyAsync", f"the dtype table to cuda:{device}",
                            device, stream, table)
        else:
            check_scope(&scope, err, "cudaMemcpyAsync", f"cuda:{device}")
        if st < 0:
            raise CUDAError(f"{fn.decode()} failed with NppStatus {st} making the {plan.dtype} "
                            f"{plan.layout} batch on cuda:{device}", op=fn.decode(), code=st)
    finally:
        free(rows)
        if scratch is not None:
            scratch.release()       # in the stream's order, after the calls that use it
    return dst
