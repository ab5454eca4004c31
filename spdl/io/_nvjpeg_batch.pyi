# The typed face of _nvjpeg_batch.pyx (the nvJPEG batch loaders).

from typing_extensions import Unpack

from spdl.io._config import CUDAConfig
from spdl.io._cuda_buffer import CUDABuffer
from spdl.io._plan import LoadPlan
from spdl.io._types import LoadOptions, Sources

__all__ = ["load_image_batch_nvjpeg", "async_load_image_batch_nvjpeg"]

GPU_PIX_FMTS: tuple[str, ...]
GPU_SCALE_MODES: tuple[str, ...]
GPU_SCALE_ALGOS: dict[str, int]

def cpu_reason(plan: LoadPlan) -> str | None: ...
def load_image_batch_nvjpeg(srcs: Sources, *, device_config: CUDAConfig,
                            **options: Unpack[LoadOptions]) -> CUDABuffer: ...
async def async_load_image_batch_nvjpeg(srcs: Sources, *, device_config: CUDAConfig,
                                        **options: Unpack[LoadOptions]) -> CUDABuffer: ...
