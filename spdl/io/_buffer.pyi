# The typed face of _buffer.pyx (host memory batches).

from typing import Any, Literal, TypedDict, type_check_only

from typing_extensions import CapsuleType, NotRequired

from spdl.io._errors import SpdlIOError

@type_check_only
class ArrayInterface(TypedDict):
    """``__array_interface__``, version 3 (numpy's array interface protocol)."""

    version: Literal[3]
    shape: tuple[int, ...]
    typestr: str
    data: tuple[int, bool]
    strides: None
    descr: NotRequired[list[tuple[str, str]]]

class HostAllocator:
    """Where a CPUBuffer's memory comes from; built by C code only."""

    @property
    def pinned(self) -> bool: ...
    @property
    def name(self) -> str: ...

class Batch:
    """What CPUBuffer and CUDABuffer share: shape, element type, pixel format, rows, crops."""

    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def dtype(self) -> Literal["uint8", "uint16", "float16", "float32"]: ...
    @property
    def pix_fmt(self) -> str | None: ...
    @property
    def indices(self) -> tuple[int, ...]: ...
    @property
    def errors(self) -> dict[int, SpdlIOError]: ...
    @property
    def crops(self) -> tuple[tuple[int, int, int, int, bool], ...] | None: ...
    @property
    def keys(self) -> tuple[str, ...] | None: ...
    @property
    def labels(self) -> tuple[int | str, ...] | None: ...
    def __len__(self) -> int: ...
    # Each subclass implements these (for its memory); declared once here.
    @property
    def nbytes(self) -> int: ...
    @property
    def data_ptr(self) -> int: ...
    def __dlpack_device__(self) -> tuple[int, int]: ...
    def __dlpack__(
        self,
        *,
        stream: int | None = None,
        max_version: tuple[int, int] | None = None,
        dl_device: tuple[int, int] | None = None,
        copy: bool | None = None,
    ) -> CapsuleType: ...

class CPUBuffer(Batch):
    """A batch of images in host memory; made by the loaders and convert_frames only."""

    def __init__(self, *args: object, **kwargs: object) -> None: ...
    @property
    def pix_fmt(self) -> str: ...
    @property
    def pinned(self) -> bool: ...
    @property
    def __array_interface__(self) -> ArrayInterface: ...
    def __reduce__(self) -> tuple[object, tuple[object, ...]]: ...

@type_check_only
class DatasetBatch(CPUBuffer):
    """A batch of the dataset iterators (spdl.io.iter_image_batches): its rows are named by
    key, and its errors are keyed like keys."""

    @property
    def keys(self) -> tuple[str, ...]: ...
    @property
    def errors(self) -> dict[str, SpdlIOError]: ...  # type: ignore[override]

def _rebuild_cpu_buffer(
    data: bytes,
    shape: tuple[int, ...],
    dtype: str,
    pix_fmt: str,
    indices: object,
    errors: dict[Any, SpdlIOError],
    crops: object,
    keys: object,
    labels: object,
) -> CPUBuffer: ...
def _label_rows(
    buf: Batch, keys: tuple[str, ...], labels: object, errors: dict[Any, SpdlIOError]
) -> None: ...
def _pool_info() -> tuple[int, int]: ...
def _pool_hold(seconds: float) -> None: ...
def _pool_trim() -> int: ...
