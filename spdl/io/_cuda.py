"""The GPU path. Placeholder until the CUDA issue lands: every entry point says no CUDA device."""

from __future__ import annotations

__all__ = ["CUDABuffer", "cuda_available", "check_device", "transfer_buffer"]


class CUDABuffer:
    """A batch in CUDA device memory (not built yet)."""

    def __init__(self, *args, **kwargs):
        raise TypeError("CUDABuffer cannot be created directly")


def cuda_available() -> bool:
    """Whether a CUDA device and the CUDA runtime can be used."""
    return False


def check_device(device_config) -> None:
    raise RuntimeError(
        f"no CUDA device: device_config={device_config!r} needs the CUDA path, "
        "which this build of spdl.io does not have yet")


def transfer_buffer(buffer, *, device_config):
    check_device(device_config)
