"""Markers for the GPU tests, shared by the test files.

``@gpu``            needs a CUDA device;
``@needs_runtime``  needs the CUDA runtime library (no device);
``@needs_nvjpeg``   needs nvJPEG and NPP of the runtime's CUDA major (no device).

Each marks the test ``gpu`` and skips it with the reason where that is missing;
with ``SPDL_REQUIRE_GPU=1`` the skip fails instead (tests/conftest.py). A test
that needs PyTorch or CuPy with CUDA is marked ``@gpu`` too and skips itself in
its body (``pytest.importorskip``, ``pytest.skip``): under ``SPDL_REQUIRE_GPU=1``
that fails as well. Keep these skips inside tests: a module-level skip has no
test to fail.
"""

from __future__ import annotations

import pytest

import spdl.io
from spdl.io import _cuda_device, _cuda_runtime, _nvjpeg_lib


def _why_no_device():
    try:
        _cuda_device.device_count()
    except spdl.io.CUDAUnavailableError as e:
        return str(e)
    return None


#: Why there is no usable CUDA device here (the GPU entry points' own error), or None.
NO_DEVICE = _why_no_device()
HAVE_GPU = NO_DEVICE is None
RUNTIME = _cuda_runtime.runtime_info()


def _why_no_nvjpeg():
    info = _nvjpeg_lib.nvjpeg_info()
    return info["error"]


def gpu(test):
    """The test needs a CUDA device."""
    return pytest.mark.gpu(pytest.mark.skipif(not HAVE_GPU, reason=NO_DEVICE or "")(test))


def needs_runtime(test):
    """The test needs the CUDA runtime library (loaded, of either major), not a device."""
    return pytest.mark.gpu(pytest.mark.skipif(RUNTIME["library"] is None,
                                              reason=RUNTIME["error"] or "")(test))


def needs_nvjpeg(test):
    """The test needs libnvjpeg, libnppc and libnppig of the runtime's major, not a device."""
    why = _why_no_nvjpeg()
    return pytest.mark.gpu(pytest.mark.skipif(why is not None, reason=why or "")(test))
