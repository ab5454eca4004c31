"""The load plan: every loader argument, checked once and compiled into one frozen value.

``compile_plan`` is the only place the loaders' keyword arguments are read. The
:class:`LoadPlan` it returns is the whole contract between the public API and
every backend (the CPU batch, nvJPEG): a backend takes the plan and nothing
else, and the CPU core turns it into one C struct (``_scale.plan_spec``).

A ``filter_desc`` is the escape hatch: it is handed to libavfilter as written,
runs on each decoded image, and the plan's resize and pixel conversion then
apply to the graph's output. It is never parsed back into a plan.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from spdl.io._config import CUDAConfig, DecodeConfig, DemuxConfig, as_int, config_or_default
from spdl.io._errors import check_bool

__all__ = [
    "LoadPlan",
    "compile_plan",
    "PIX_FMTS",
    "SCALE_ALGOS",
    "SCALE_MODES",
    "ScaleMode",
    "ScaleAlgo",
    "PixFmt",
]

ScaleMode = Literal["pad", "crop", "stretch"]
ScaleAlgo = Literal["fast_bilinear", "bilinear", "bicubic", "neighbor", "area", "lanczos"]
PixFmt = Literal["rgb24", "bgr24", "rgba", "gray", "gray16", "yuv444p", "yuv420p", "rgbp"]

#: How an image meets width x height: fit inside and pad with black, fill and crop
#: the overflow (both keep the aspect ratio, centred), or stretch.
SCALE_MODES: tuple[str, ...] = ("pad", "crop", "stretch")
#: Resampling algorithms (swscale's names; bicubic is also our own resampler's).
SCALE_ALGOS: tuple[str, ...] = ("fast_bilinear", "bilinear", "bicubic", "neighbor", "area", "lanczos")
#: Output pixel formats: each name a user may pass, and the plan's canonical name.
PIX_FMTS: dict[str, str] = {
    "rgb24": "rgb24",
    "bgr24": "bgr24",
    "rgba": "rgba",
    "gray": "gray",
    "gray8": "gray",
    "gray16": "gray16",
    "gray16le": "gray16",
    "yuv444p": "yuv444p",
    "yuv420p": "yuv420p",
    "rgbp": "rgbp",
}
#: The FFmpeg pixel format each canonical name is produced in. rgbp is FFmpeg's
#: gbrp with its planes placed in R, G, B order in the batch.
FFMPEG_PIX_FMTS: dict[str, str] = {
    "rgb24": "rgb24",
    "bgr24": "bgr24",
    "rgba": "rgba",
    "gray": "gray",
    "gray16": "gray16le",
    "yuv444p": "yuv444p",
    "yuv420p": "yuv420p",
    "rgbp": "gbrp",
}


@dataclasses.dataclass(frozen=True)
class LoadPlan:
    """What a batch load does, checked: the only input of every backend.

    Attributes:
        width, height: The output size. Both None keeps the decoded size; one
            None follows the aspect ratio of the other.
        scale_mode: ``"pad"``, ``"crop"`` or ``"stretch"`` (used when both
            width and height are given).
        scale_algo: The resampling algorithm.
        pix_fmt: The output pixel format (a canonical name of ``PIX_FMTS``),
            or None to keep the decoded one.
        filter_desc: An FFmpeg filter description run on each decoded image
            before the resize, or None.
        demux_config, decode_config: The stages' configurations (defaults
            filled in).
        device_config: Where the batch goes: None for host memory, or a
            CUDAConfig.
        strict: Whether any failure fails the batch.
    """

    width: int | None
    height: int | None
    scale_mode: ScaleMode
    scale_algo: ScaleAlgo
    pix_fmt: str | None
    filter_desc: str | None
    demux_config: DemuxConfig
    decode_config: DecodeConfig
    device_config: CUDAConfig | None
    strict: bool

    @property
    def fixed_size(self) -> bool:
        """Whether every image comes out width x height (the batch can be allocated first)."""
        return self.width is not None and self.height is not None

    @property
    def ffmpeg_pix_fmt(self) -> str | None:
        """FFmpeg's name of the format the images are converted to, or None."""
        return None if self.pix_fmt is None else FFMPEG_PIX_FMTS[self.pix_fmt]

    def geometry(self, iw: int, ih: int) -> tuple[int, int, int, int, int, int]:
        """Where an iw x ih image lands: ``(out_w, out_h, scaled_w, scaled_h, x, y)``.

        The scaled image's top-left corner is at (x, y) of the output (negative
        when cropped). The C core computes the same numbers (``compute_geometry``);
        backends without it (nvJPEG) use this.
        """
        return _geometry(self.width, self.height, self.scale_mode, iw, ih)


def _rescale(a: int, b: int, c: int) -> int:
    # a * b / c rounded to nearest, halves away from zero (FFmpeg's av_rescale)
    return (a * b + c // 2) // c


def _geometry(width: int | None, height: int | None, mode: str, iw: int,
              ih: int) -> tuple[int, int, int, int, int, int]:
    w, h = width, height
    if w is None and h is None:
        w, h = iw, ih
    elif w is None:
        assert h is not None
        w = _rescale(h, iw, ih)
    elif h is None:
        h = _rescale(w, ih, iw)
    elif mode != "stretch":
        tw, th = _rescale(h, iw, ih), _rescale(w, ih, iw)
        w, h = (min(tw, w), min(th, h)) if mode == "pad" else (max(tw, w), max(th, h))
    sw, sh = max(w, 1), max(h, 1)
    if mode == "stretch" or width is None or height is None:
        return sw, sh, sw, sh, 0, 0
    # pad centres with integer division, crop with round-half-even, as FFmpeg's
    # pad and crop filters do
    x = (width - sw) // 2 if sw <= width else -round((sw - width) / 2)
    y = (height - sh) // 2 if sh <= height else -round((sh - height) / 2)
    return width, height, sw, sh, x, y


def _dim(name: str, value: object) -> int | None:
    if value is None:
        return None
    v = as_int(value)
    if v is None:
        raise TypeError(f"{name} must be a positive int or None, not {type(value).__name__}")
    if not 0 < v <= 65535:
        raise ValueError(f"{name} must be between 1 and 65535, got {v}")
    return v


def _choice(name: str, value: object, choices: tuple[str, ...] | dict[str, str]) -> str:
    if isinstance(value, str) and value in choices:
        return choices[value] if isinstance(choices, dict) else str(value)
    names = sorted(choices) if isinstance(choices, dict) else list(choices)
    raise ValueError(f"{name} must be one of {', '.join(map(repr, names))}, got {value!r}")


def compile_plan(
    *,
    width: int | None,
    height: int | None,
    pix_fmt: str | None = "rgb24",
    scale_mode: str | None = "pad",
    scale_algo: str = "bicubic",
    demux_config: DemuxConfig | None = None,
    decode_config: DecodeConfig | None = None,
    filter_desc: str | None = None,
    device_config: CUDAConfig | None = None,
    strict: bool = True,
) -> LoadPlan:
    """Check the loaders' keyword arguments and compile them into a LoadPlan.

    Raises TypeError or ValueError naming the argument at fault.
    """
    from spdl.io._filter_desc import check_filter_desc

    if scale_mode is None:
        scale_mode = "stretch"
    demux_config = config_or_default(demux_config, DemuxConfig, "demux_config")
    decode_config = config_or_default(decode_config, DecodeConfig, "decode_config")
    if device_config is not None and not isinstance(device_config, CUDAConfig):
        raise TypeError(f"device_config must be a CUDAConfig or None, not {type(device_config).__name__}")
    if filter_desc is not None:
        if not isinstance(filter_desc, str):
            raise TypeError(f"filter_desc must be a str or None, not {type(filter_desc).__name__}")
        filter_desc = str(filter_desc)
        check_filter_desc(filter_desc)
        if not filter_desc.strip():
            filter_desc = None
    strict = check_bool("strict", strict)
    width, height = _dim("width", width), _dim("height", height)
    pix_fmt = None if pix_fmt is None else _choice("pix_fmt", pix_fmt, PIX_FMTS)
    if pix_fmt == "yuv420p" and ((width or 0) % 2 or (height or 0) % 2):
        raise ValueError(f"pix_fmt='yuv420p' needs an even width and height, got {width}x{height}")
    return LoadPlan(
        width=width,
        height=height,
        scale_mode=_choice("scale_mode", scale_mode, SCALE_MODES),  # type: ignore[arg-type]
        scale_algo=_choice("scale_algo", scale_algo, SCALE_ALGOS),  # type: ignore[arg-type]
        pix_fmt=pix_fmt,
        filter_desc=filter_desc,
        demux_config=demux_config,
        decode_config=decode_config,
        device_config=device_config,
        strict=strict,
    )
