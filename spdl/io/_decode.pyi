# The typed face of _decode.pyx (stage 2: packets to a decoded, optionally filtered image).

from spdl.io._config import DecodeConfig
from spdl.io._demux import ImagePackets

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

def decode_packets(
    packets: ImagePackets, *, decode_config: DecodeConfig | None = None, filter_desc: str | None = None
) -> ImageFrames: ...
