# cython: language_level=3
"""Keeping host memory alive while the GPU reads it.

transfer_buffer and the nvJPEG loader copy with cudaMemcpyAsync, and nvJPEG
reads the encoded bytes from host memory. The source (page-locked or not) is
kept alive until an event recorded after the work has completed: the runtime
may read pageable memory after cudaMemcpyAsync returns too, so both kinds are
treated alike.
"""

import logging
import threading

from libc.stdint cimport uintptr_t

from spdl.io._cuda_device cimport DeviceScope, check_scope, enter_device, leave_device
from spdl.io._cuda_runtime cimport CudaRuntimeApi, cudart, cudart_loaded
from spdl.io.includes.cuda_runtime cimport *

_log = logging.getLogger("spdl.io")


cdef class _Pending:
    cdef cudaEvent_t event
    cdef int device
    cdef object keep


_inflight = []                  # _Pending, oldest first
_inflight_lock = threading.Lock()
# Host memory the GPU may still read when a CUDA failure made it impossible to
# tell when it is done (the device could not be entered, the stream could not
# be waited on): never released, rather than freed under a running copy.
_stranded = []


cdef int keep_until_done(int device, uintptr_t stream, object keep) except -1:
    """Keep `keep` alive until the work enqueued so far on `stream` has run.

    Records an event on the stream and parks `keep` with it; entries whose
    event has completed are dropped by later calls (_reap). If no event can be
    recorded, waits for the stream here instead.
    """
    cdef const CudaRuntimeApi *rt = cudart()
    cdef cudaEvent_t ev = NULL
    cdef cudaError_t err = cudaSuccess, err2 = cudaSuccess
    cdef DeviceScope scope
    cdef _Pending p
    reap(False)  # drop what earlier calls parked and is done: the list stays bounded
    with nogil:
        if enter_device(rt, device, &scope) == 0:
            err = rt.cudaEventCreateWithFlags(&ev, cudaEventDisableTiming)
            if err == cudaSuccess:
                err = rt.cudaEventRecord(ev, <cudaStream_t>stream)
                if err != cudaSuccess:
                    if rt.cudaEventDestroy(ev) != cudaSuccess:
                        rt.cudaGetLastError()
                    ev = NULL
            if ev == NULL:
                rt.cudaGetLastError()
                err2 = rt.cudaStreamSynchronize(<cudaStream_t>stream)
                if err2 != cudaSuccess:
                    rt.cudaGetLastError()
        leave_device(rt, &scope)
    if ev != NULL:
        p = _Pending.__new__(_Pending)
        p.event = ev
        p.device = device
        p.keep = keep
        with _inflight_lock:
            _inflight.append(p)
    elif (scope.code != 0 and scope.entering) or err2 != cudaSuccess:
        _stranded.append(keep)
    check_scope(&scope, err2, "cudaStreamSynchronize", "waiting for a copy from host memory")
    return 0


cdef int keep_after_error(int device, uintptr_t stream, object keep, object exc) except -1:
    # keep_until_done has already made `keep` safe when it raises (parked with its event,
    # or kept forever): only its error is left to report, without hiding exc's.
    try:
        keep_until_done(device, stream, keep)
    except Exception as e:
        note = f"and then keeping host memory alive for the GPU failed too: {type(e).__name__}: {e}"
        if hasattr(exc, "add_note"):
            exc.add_note(note)
        else:
            _log.warning("%s (after: %s)", note, exc)
    return 0


cdef int check_then_keep(const DeviceScope *scope, cudaError_t err, str op, str what,
                         int device, uintptr_t stream, object keep) except -1:
    cdef bint enqueued = not (scope.code != 0 and scope.entering)
    try:
        check_scope(scope, err, op, what)
    except BaseException as e:
        if enqueued:
            keep_after_error(device, stream, keep, e)
        raise
    if enqueued:
        keep_until_done(device, stream, keep)
    return 0


cdef int reap(bint wait) except -1:
    """Drop what keep_until_done parked once its event has completed (all of it if wait)."""
    cdef _Pending p
    cdef cudaError_t err
    cdef DeviceScope scope
    cdef const CudaRuntimeApi *rt = cudart_loaded()
    if rt == NULL or not _inflight:
        return 0
    done = []
    with _inflight_lock:
        still = []
        for p in _inflight:
            with nogil:
                err = cudaErrorNotReady         # if the device cannot be entered: look again later
                if enter_device(rt, p.device, &scope) == 0:
                    err = rt.cudaEventSynchronize(p.event) if wait else rt.cudaEventQuery(p.event)
                    if err != cudaErrorNotReady:
                        # Done, or the context failed (then no more work runs either).
                        if rt.cudaEventDestroy(p.event) != cudaSuccess:
                            rt.cudaGetLastError()
                    if err != cudaSuccess and err != cudaErrorNotReady:
                        rt.cudaGetLastError()
                leave_device(rt, &scope)
            if err == cudaErrorNotReady:
                still.append(p)
            else:
                done.append(p)
        _inflight[:] = still
    # The parked objects (page-locked batches) are freed here, outside the lock.
    del done
    return 0


def pending_transfers():
    """How many host buffers are still kept alive for copies that may be running."""
    reap(False)
    return len(_inflight)


def synchronize_transfers():
    """Wait for every copy from host memory, and release the host buffers they used."""
    reap(True)
