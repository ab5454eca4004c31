# The typed face of _nvjpeg_lib.pyx (nvJPEG and NPP opened at run time).

from collections.abc import Iterable
from typing import TypedDict, type_check_only

from spdl.io._cuda_lib import _Library

@type_check_only
class LibraryReport(TypedDict):
    soname: str | None
    path: str | None
    version: str | None
    error: str | None
    tried: list[str]

def status_name(st: int) -> str: ...
def load_libraries() -> tuple[_Library, _Library, _Library]: ...
def open_library(which: str, major: int, paths: Iterable[str] | None = None) -> _Library: ...
def nvjpeg_info() -> dict[str, str | None]: ...
def library_report(which: str) -> LibraryReport: ...
