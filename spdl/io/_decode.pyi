# The typed face of _decode.pyx (stage 2: packets to a decoded, filtered, resized image).

from typing_extensions import Unpack

from spdl.io._demux import ImagePackets
from spdl.io._types import FrameOptions

class ImageFrames:
    """One decoded image; made by decode_packets only."""

    def __init__(self, *args: object, **kwargs: object) -> None: ...
    @property
    def source(self) -> str: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def pix_fmt(self) -> str | None: ...

def decode_packets(packets: ImagePackets, **options: Unpack[FrameOptions]) -> ImageFrames: ...
