"""Switches and probes that exist for tests: not an API, not used by spdl.io itself.

Every test hook of the package is reached from here, so that production
modules carry none: the ones that need C access live in the Cython module
``_testing_hooks`` (the production modules give it cdef setters only).

``cpu_buffer`` builds a CPUBuffer of any shape and dtype, with given bytes.

GPU hooks (they work against the fake CUDA libraries of tests/test_cuda.py too):
``fake_cuda_buffer``, ``alloc_buffer``, ``to_host``, ``create_stream``,
``destroy_stream``, ``mem_info``, ``probe_library``, ``probe_nvjpeg_library``,
``set_pinned_cache_bytes``, ``pinned_cache_sizes``, ``pinned_size_class``,
``set_scratch_bounds``, ``jpeg_check``, ``plan_rounds``; ``use_libraries``
points the library search at a folder (fake or real libraries).
"""

from __future__ import annotations

import os

from spdl.io._testing_hooks import (
    alloc_buffer,
    cpu_buffer,
    create_stream,
    destroy_stream,
    fake_cuda_buffer,
    jpeg_check,
    mem_info,
    pinned_cache_sizes,
    pinned_size_class,
    probe_library,
    probe_nvjpeg_library,
    set_pinned_cache_bytes,
    set_scratch_bounds,
    to_host,
    use_jpeg_resampler,
    use_jpeg_region,
    use_simd,
)
from spdl.io._nvjpeg_decode import plan_rounds

__all__ = [
    "alloc_buffer",
    "cpu_buffer",
    "create_stream",
    "destroy_stream",
    "fake_cuda_buffer",
    "jpeg_check",
    "mem_info",
    "pinned_cache_sizes",
    "pinned_size_class",
    "plan_rounds",
    "probe_library",
    "probe_nvjpeg_library",
    "set_pinned_cache_bytes",
    "set_scratch_bounds",
    "to_host",
    "use_jpeg_resampler",
    "use_jpeg_region",
    "use_libraries",
    "use_simd",
]


def use_libraries(folder: str, *, driver: str | None = None, nvml: str | None = None) -> None:
    """Look for every CUDA library (by its soname) in folder only, libcuda.so.1 at driver and
    libnvidia-ml.so.1 at nvml (when given). Call before the first GPU call of the process."""
    from spdl.io import _cuda_lib

    _cuda_lib.library_candidates = lambda wheel_module, soname: [os.path.join(folder, soname)]
    if driver is not None:
        _cuda_lib.driver_candidates = lambda: [driver]
    if nvml is not None:
        _cuda_lib.nvml_candidates = lambda: [nvml]
