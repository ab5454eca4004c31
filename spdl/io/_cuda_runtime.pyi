# The typed face of _cuda_runtime.pyx (the runtime's and driver's function tables).

from typing import TypedDict, type_check_only

from spdl.io._cuda_lib import _Library

@type_check_only
class RuntimeInfo(TypedDict):
    library: str | None
    soname: str | None
    cuda_major: int | None
    runtime_version: int | None
    version: str | None
    driver_version: int | None
    error: str | None
    tried: list[str]

def runtime_info() -> RuntimeInfo: ...
def runtime_major() -> int | None: ...
def runtime_path() -> str | None: ...
def driver_table_info() -> tuple[str | None, str | None]: ...
def _load_runtime() -> _Library: ...
