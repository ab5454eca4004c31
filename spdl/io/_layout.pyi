# The typed face of _convert.pyx (stage 3: decoded images to one batch).

from collections.abc import Iterable

from spdl.io._buffer import CPUBuffer
from spdl.io._decode import ImageFrames

def convert_frames(frames: Iterable[ImageFrames]) -> CPUBuffer: ...
