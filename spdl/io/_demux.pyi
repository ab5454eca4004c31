# The typed face of _demux.pyx (stage 1: a source to its encoded packet).

from spdl.io._config import DemuxConfig
from spdl.io._types import Source

#: The demuxers that may read a source (single-image formats this FFmpeg build has).
IMAGE_DEMUXERS: tuple[str, ...]

class ImagePackets:
    """The encoded data of one image; made by demux_image only."""

    def __init__(self, *args: object, **kwargs: object) -> None: ...
    @property
    def source(self) -> str: ...
    @property
    def codec(self) -> str: ...
    @property
    def format(self) -> str | None: ...
    @property
    def nbytes(self) -> int: ...

def demux_image(src: Source, *, demux_config: DemuxConfig | None = None) -> ImagePackets: ...
