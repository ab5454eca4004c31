"""Zero-copy views of buffers in numpy and PyTorch."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import torch  # type: ignore[import-not-found, unused-ignore]  # optional (the torch extra)

    from spdl.io._buffer import CPUBuffer
    from spdl.io._cuda_buffer import CUDABuffer

__all__ = ["to_numpy", "to_torch"]


def to_numpy(
    buffer: CPUBuffer,
) -> np.ndarray[tuple[int, ...], np.dtype[np.uint8 | np.uint16 | np.float16 | np.float32]]:
    """A numpy array viewing a CPUBuffer's memory, without a copy, of the buffer's dtype.

    The array keeps the buffer alive. A CUDABuffer is refused: copy it to the
    host with CuPy or PyTorch first.
    """
    import numpy as np

    if not hasattr(buffer, "__array_interface__"):
        raise TypeError(f"to_numpy needs a CPUBuffer, not {type(buffer).__name__}")
    return np.asarray(buffer)


def to_torch(buffer: CPUBuffer | CUDABuffer) -> torch.Tensor:
    """A torch.Tensor viewing a CPUBuffer's or CUDABuffer's memory, without a copy.

    Its dtype is the buffer's (torch.uint8, torch.uint16, torch.float16 or torch.float32).

    Raises ImportError if PyTorch is not installed.
    """
    try:
        import torch  # type: ignore[import-not-found, unused-ignore]
    except ImportError as e:
        raise ImportError("to_torch needs PyTorch: pip install torch") from e
    return torch.from_dlpack(buffer)
