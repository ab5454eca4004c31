# The typed face of _cuda_device.pyx (contexts and devices).

from typing import TypedDict, type_check_only

from spdl.io._config import CUDAConfig

@type_check_only
class DriverApiInfo(TypedDict):
    library: str | None
    error: str | None

def cuda_available() -> bool: ...
def check_device(device_config: CUDAConfig) -> None: ...
def device_count() -> int: ...
def driver_api_info() -> DriverApiInfo: ...
