from libc.stdint cimport uintptr_t

from spdl.io._cuda_device cimport DeviceScope
from spdl.io.includes.cuda_runtime cimport cudaError_t

# Keep `keep` alive until the work enqueued so far on `stream` has completed.
cdef int keep_until_done(int device, uintptr_t stream, object keep) except -1

# keep_until_done for a call that is already failing with exc: never raises; a failure
# to park `keep` is attached to exc (a note, or a log record before Python 3.11).
cdef int keep_after_error(int device, uintptr_t stream, object keep, object exc) except -1

# For a block between enter_device and leave_device that enqueued work reading host
# memory `keep`: raise the block's own failure first (check_scope), and keep `keep`
# alive until the stream's work so far is done unless entering the device failed
# (nothing was enqueued then); after a failure too, since work enqueued before it may
# still read `keep`.
cdef int check_then_keep(const DeviceScope *scope, cudaError_t err, str op, str what,
                         int device, uintptr_t stream, object keep) except -1

# Drop what keep_until_done parked once its event has completed (all of it if wait).
cdef int reap(bint wait) except -1
