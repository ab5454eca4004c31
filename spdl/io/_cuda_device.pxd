from spdl.io._cuda_runtime cimport CudaRuntimeApi
from spdl.io.includes.cuda_driver cimport CUcontext
from spdl.io.includes.cuda_runtime cimport cudaError_t

# What enter_device changed on the calling thread, for leave_device to undo.
cdef struct DeviceScope:
    int device
    bint driver             # the driver API was used: ctx is the context to restore
    CUcontext ctx           # the context current before (may be NULL: none)
    int prev                # without the driver API: the runtime's device before, or -1
    bint changed            # leave_device has something to restore
    int code                # the first failure of enter or leave (a CUresult if driver), or 0
    const char *op          # the call that failed
    bint entering           # the failure was in enter_device (else in leave_device)

# Make device's primary context current on this thread for the work that
# follows, saving what was current; leave_device puts it back exactly (with
# the driver API: the previous context, or none). Both return 0, or -1 after
# recording the failure in the scope (and clearing the runtime's last error);
# call leave_device even after a failed enter_device. Neither raises nor needs the GIL.
cdef int enter_device(const CudaRuntimeApi *rt, int device, DeviceScope *scope) noexcept nogil
cdef int leave_device(const CudaRuntimeApi *rt, DeviceScope *scope) noexcept nogil

# Raise for the first failure of a block run between enter_device and
# leave_device: entering, then the block's own call (err from op), then leaving.
cdef int check_scope(const DeviceScope *scope, cudaError_t err=*, str op=*, str what=*) except -1

# The device's free and total memory (cudaMemGetInfo). Returns 1, or 0 when the call
# failed and not must (then both are 0); raises when the device cannot be entered, or
# the call fails and must.
cdef int mem_get_info(int device, size_t *free_b, size_t *total_b, bint must) except -1
