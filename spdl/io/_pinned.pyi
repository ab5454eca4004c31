# The typed face of _pinned.pyx (the page-locked host allocator).

from spdl.io._buffer import HostAllocator
from spdl.io._config import CUDAConfig

def host_allocator(device_config: CUDAConfig) -> HostAllocator: ...
def release_pinned_memory() -> None: ...
