# The typed face of _layout.pyx (the batch layouts; stage 3: decoded images to one batch).

from collections.abc import Iterable

from spdl.io._buffer import CPUBuffer
from spdl.io._decode import ImageFrames

def convert_frames(frames: Iterable[ImageFrames]) -> CPUBuffer: ...
