# The typed face of _transfer.pyx (host to device).

from spdl.io._buffer import CPUBuffer
from spdl.io._config import CUDAConfig
from spdl.io._cuda_buffer import CUDABuffer

__all__ = ["transfer_buffer"]

def transfer_buffer(buffer: CPUBuffer, *, device_config: CUDAConfig) -> CUDABuffer: ...
