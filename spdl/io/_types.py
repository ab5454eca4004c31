"""The types of the public API's arguments, defined once for users and type checkers.

    srcs: list[spdl.io.Source] = ["a.jpg", pathlib.Path("b.png"), open("c.webp", "rb").read()]
    buf = spdl.io.load_image_batch(srcs, width=224, height=224)

The keyword arguments the loaders share are the TypedDicts below, so a function that
passes them on is typed too: ``def load(srcs, **options: Unpack[spdl.io.LoadOptions])``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TypeAlias, TypedDict

from spdl.io._config import DecodeConfig, DemuxConfig
from spdl.io._plan import Crop

__all__ = ["Source", "Sources", "FrameOptions", "LoadOptions"]

#: One image source: a file path, or the encoded image's bytes (any contiguous
#: bytes-like object is accepted at run time; these are the types a checker knows).
Source: TypeAlias = str | os.PathLike[str] | bytes | bytearray | memoryview
#: The sources of one batch, in order: the first argument of the batch loaders.
Sources: TypeAlias = Sequence[Source]


class _Output(TypedDict, total=False):
    # what every decoded image goes through: decoder, filter graph, resize, conversion
    decode_config: DecodeConfig | None
    filter_desc: str | None
    pix_fmt: str | None
    scale_mode: str | None
    scale_algo: str


class _Size(TypedDict):
    width: int | None
    height: int | None


class FrameOptions(_Output, total=False):
    """The keyword arguments of decode_packets (the size is optional there)."""

    width: int | None
    height: int | None


class LoadOptions(_Size, _Output, total=False):
    """The keyword arguments every batch loader takes besides ``device_config``
    (width and height required); see load_image_batch."""

    demux_config: DemuxConfig | None
    strict: bool
    # training batches: what is cut out and mirrored, and the elements' type and order
    crop: Crop
    hflip: bool | float | Sequence[bool]
    seed: int | None
    dtype: str
    mean: float | Sequence[float] | None
    std: float | Sequence[float] | None
    layout: str
    # how many workers decode a batch (None: spdl.io.set_num_threads's default)
    num_threads: int | None
