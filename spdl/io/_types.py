"""The types of the public API's arguments, defined once for users and type checkers.

    srcs: list[spdl.io.Source] = ["a.jpg", pathlib.Path("b.png"), open("c.webp", "rb").read()]
    buf = spdl.io.load_image_batch(srcs, width=224, height=224)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TypeAlias

__all__ = ["Source", "Sources"]

#: One image source: a file path, or the encoded image's bytes (any contiguous
#: bytes-like object is accepted at run time; these are the types a checker knows).
Source: TypeAlias = str | os.PathLike[str] | bytes | bytearray | memoryview
#: The sources of one batch, in order: the first argument of the batch loaders.
Sources: TypeAlias = Sequence[Source]
