from spdl.io._buffer cimport CPUBuffer
from spdl.io._cuda_buffer cimport CUDABuffer
from spdl.io._geometry cimport Crop
from spdl.io._nvjpeg_decode cimport _Inputs
from spdl.io.includes.npp cimport NppStreamContext

# Clear the output (black borders, with pad) and fill NPP's context for its stream.
cdef int prepare_output(CUDABuffer out, bint pad, NppStreamContext *ctx) except -1
# Resize the GPU-decoded input images (indices) into their rows, each cropped and flipped
# as crops[index] says (crops NULL: neither); [(index, NppStatus, NPP function)] refused.
cdef list resize_into(CUDABuffer out, _Inputs inp, list images, object plan, bint planar,
                      int algo, const Crop *crops, const NppStreamContext *ctx)
# A new buffer holding rows `keep` of out (device to device, on out's stream).
cdef CUDABuffer keep_rows(CUDABuffer out, list keep, object cfg)
# Copy rows (out_row, host_row) of host into out, keeping host alive until done.
cdef int upload_rows(CUDABuffer out, CPUBuffer host, list rows) except -1
# A new buffer holding rows `keep` of out (uint8 packed) as plan's dtype and layout, made on
# out's stream by NPP with the CPU path's tables (exactly its values).
cdef CUDABuffer convert_rows(CUDABuffer src, list keep, object plan, const NppStreamContext *ctx)
