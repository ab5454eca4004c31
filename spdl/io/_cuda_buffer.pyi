# The typed face of _cuda_buffer.pyx (device memory batches).

from typing import Literal, TypedDict, type_check_only

from spdl.io._buffer import Batch

@type_check_only
class CUDAArrayInterface(TypedDict):
    """``__cuda_array_interface__``, version 3 (with the stream; 1 is the legacy default)."""

    version: Literal[3]
    shape: tuple[int, ...]
    typestr: str
    data: tuple[int, bool]
    strides: None
    stream: int

class CUDABuffer(Batch):
    """A batch of images in CUDA device memory; made by the loaders and transfer_buffer only."""

    def __init__(self, *args: object, **kwargs: object) -> None: ...
    @property
    def device_index(self) -> int: ...
    @property
    def stream(self) -> int: ...
    @property
    def __cuda_array_interface__(self) -> CUDAArrayInterface: ...
    def synchronize(self) -> None: ...
