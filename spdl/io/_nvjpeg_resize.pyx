# cython: language_level=3
"""The nvJPEG loader's output: NPP's resize of the decoded images into their rows (placed
as the CPU path places them), the rows from the CPU path copied in, and the rows of failed
inputs dropped.

NPP: supersampling when shrinking both ways, bicubic otherwise, nearest (an exact copy)
at the same size; scale_mode "pad" fits inside width x height keeping the aspect ratio,
centred, black borders; "stretch" fills the row. A crop box (the plan's crop, resolved
per image as the CPU path resolves it) is the resize's source ROI, stretched over the
whole row; a flipped row is mirrored left to right in place after its resize, borders
included, as the CPU path mirrors its rows.
"""

from libc.stdint cimport uintptr_t
from libc.stdlib cimport calloc, free

from spdl.io._buffer cimport CPUBuffer
from spdl.io._cuda_buffer cimport CUDABuffer, alloc_cuda_buffer
from spdl.io._cuda_device cimport DeviceScope, check_scope, enter_device, leave_device
from spdl.io._cuda_runtime cimport CudaRuntimeApi, cudart
from spdl.io._geometry cimport Crop
from spdl.io._keepalive cimport check_then_keep
from spdl.io._nvjpeg_decode cimport _Inputs
from spdl.io._nvjpeg_lib cimport NppApi, npp_api
from spdl.io.includes.cuda_runtime cimport *
from spdl.io.includes.dlpack cimport kDLFloat
from spdl.io.includes.npp cimport *

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
