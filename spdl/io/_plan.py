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
import math
from collections.abc import Sequence
from typing import Literal, TypeAlias, Union

from spdl.io._config import CUDAConfig, DecodeConfig, DemuxConfig, as_int, config_or_default
from spdl.io._errors import check_bool

__all__ = [
    "CenterCrop",
    "RandomResizedCrop",
    "Crop",
    "DTYPES",
    "LAYOUTS",
    "LoadPlan",
    "compile_plan",
    "check_num_threads",
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
DType = Literal["uint8", "float32", "float16"]
Layout = Literal["NHWC", "NCHW"]

#: Element types of the batch: uint8 as decoded, or floats scaled to 0-1 (then
#: normalised by mean and std, when given).
DTYPES: tuple[str, ...] = ("uint8", "float32", "float16")
#: Batch layouts of the packed formats: channels last (as decoded) or first.
LAYOUTS: tuple[str, ...] = ("NHWC", "NCHW")
#: The formats whose batch may be float, NCHW or flipped (packed, 8 bits a sample): channels.
TRAIN_PIX_FMTS = {"rgb24": 3, "bgr24": 3, "rgba": 4, "gray": 1}

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
class RandomResizedCrop:
    """A random part of each image, resized to width x height: torchvision's
    RandomResizedCrop.

    Up to 10 draws of an area (a fraction of the image's, uniform in ``scale``)
    and an aspect ratio (log-uniform in ``ratio``); the first box that fits is
    placed uniformly at random. When none fits, the centred box of the largest
    aspect ratio within ``ratio`` is taken. The draws are a function of the
    loader's ``seed`` and the image's index in the batch only.
    """

    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)

    def __post_init__(self) -> None:
        for name, lo_min in (("scale", 0.0), ("ratio", 0.0)):
            value = getattr(self, name)
            try:
                lo, hi = (float(v) for v in value)
            except (TypeError, ValueError):
                raise TypeError(f"RandomResizedCrop: {name} must be a pair of numbers, "
                                f"got {value!r}") from None
            if not (math.isfinite(lo) and math.isfinite(hi) and lo_min < lo <= hi):
                raise ValueError(f"RandomResizedCrop: {name} must be (lo, hi) with "
                                 f"0 < lo <= hi, got {value!r}")
            if name == "scale" and hi > 1.0:
                raise ValueError(f"RandomResizedCrop: scale must be within (0, 1], got {value!r}")
            object.__setattr__(self, name, (lo, hi))


@dataclasses.dataclass(frozen=True)
class CenterCrop:
    """The centred box of the output's aspect ratio, ``fraction`` of the largest such
    box the image holds, resized to width x height.

    For a square output, ``CenterCrop(0.875)`` is the evaluation transform
    "resize the short side to 256, take the centre 224 x 224".
    """

    fraction: float = 0.875

    def __post_init__(self) -> None:
        if isinstance(self.fraction, bool) or not isinstance(self.fraction, (int, float)):
            raise TypeError(f"CenterCrop: fraction must be a number, got {self.fraction!r}")
        f = float(self.fraction)
        if not (math.isfinite(f) and 0.0 < f <= 1.0):
            raise ValueError(f"CenterCrop: fraction must be within (0, 1], got {self.fraction!r}")
        object.__setattr__(self, "fraction", f)


#: A box in an image's pixels: x, y (top-left), width, height.
Box: TypeAlias = tuple[int, int, int, int]
#: What the ``crop`` argument takes.
Crop: TypeAlias = Union[RandomResizedCrop, CenterCrop, Sequence[Sequence[int]], None]


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
        crop: None, a RandomResizedCrop, a CenterCrop, or one (x, y, w, h) box
            per input.
        hflip: The probability of a horizontal flip (0.0: never), or one bool
            per input.
        seed: The seed of the random draws; None draws a fresh one per batch.
        dtype: ``"uint8"``, ``"float32"`` or ``"float16"``.
        mean, std: Per-channel normalisation of float output, or None.
        layout: ``"NHWC"`` or ``"NCHW"``.
        num_threads: How many workers decode the batch, or None for the
            loader's default (spdl.io.set_num_threads).
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
    crop: RandomResizedCrop | CenterCrop | tuple[Box, ...] | None = None
    hflip: float | tuple[bool, ...] = 0.0
    seed: int | None = None
    dtype: DType = "uint8"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    layout: Layout = "NHWC"
    num_threads: int | None = None

    @property
    def augmented(self) -> bool:
        """Whether images are cropped or flipped (the batch then reports ``crops``)."""
        return self.crop is not None or self.hflip != 0.0

    @property
    def converted(self) -> bool:
        """Whether the batch is not the decoder's uint8 NHWC (float, or channels first)."""
        return self.dtype != "uint8" or self.layout != "NHWC"

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


def _dim(name: str, value: object, limit: int = 65535) -> int | None:
    if value is None:
        return None
    v = as_int(value)
    if v is None:
        raise TypeError(f"{name} must be a positive int or None, not {type(value).__name__}")
    if not 0 < v <= limit:
        raise ValueError(f"{name} must be between 1 and {limit}, got {v}")
    return v


def _choice(name: str, value: object, choices: tuple[str, ...] | dict[str, str]) -> str:
    if isinstance(value, str) and value in choices:
        return choices[value] if isinstance(choices, dict) else str(value)
    names = sorted(choices) if isinstance(choices, dict) else list(choices)
    raise ValueError(f"{name} must be one of {', '.join(map(repr, names))}, got {value!r}")


def _crop(crop: object) -> RandomResizedCrop | CenterCrop | tuple[Box, ...] | None:
    if crop is None or isinstance(crop, (RandomResizedCrop, CenterCrop)):
        return crop
    if isinstance(crop, (str, bytes)) or not isinstance(crop, Sequence):
        raise TypeError("crop must be None, a RandomResizedCrop, a CenterCrop or a sequence of "
                        f"(x, y, w, h) boxes, not {type(crop).__name__}")
    boxes = []
    for i, box in enumerate(crop):
        values = [as_int(v) for v in box] if isinstance(box, Sequence) else []
        if len(values) != 4 or any(v is None for v in values):
            raise TypeError(f"crop[{i}] must be 4 ints (x, y, w, h), got {box!r}")
        x, y, w, h = values
        assert x is not None and y is not None and w is not None and h is not None
        if x < 0 or y < 0 or w < 1 or h < 1 or x + w > 65535 or y + h > 65535:
            raise ValueError(f"crop[{i}] must have x, y >= 0 and w, h >= 1 (within 65535), "
                             f"got {box!r}")
        boxes.append((x, y, w, h))
    return tuple(boxes)


def _hflip(hflip: object) -> float | tuple[bool, ...]:
    if isinstance(hflip, bool):
        return 1.0 if hflip else 0.0
    if isinstance(hflip, (int, float)):
        p = float(hflip)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"hflip must be a bool, a probability in [0, 1] or one bool per "
                             f"input, got {hflip!r}")
        return p
    if isinstance(hflip, Sequence) and not isinstance(hflip, (str, bytes)):
        flags = tuple(hflip)
        for i, f in enumerate(flags):
            if not isinstance(f, bool) and not (hasattr(f, "__bool__") and type(f).__name__ == "bool_"):
                raise TypeError(f"hflip[{i}] must be a bool, got {f!r}")
        return tuple(bool(f) for f in flags)
    raise TypeError(f"hflip must be a bool, a probability or a sequence of bools, not "
                    f"{type(hflip).__name__}")


def _seed(seed: object) -> int | None:
    if seed is None:
        return None
    v = as_int(seed)
    if v is None:
        raise TypeError(f"seed must be an int or None, not {type(seed).__name__}")
    return v & 0xFFFF_FFFF_FFFF_FFFF  # the draws use the seed's low 64 bits


def _per_channel(name: str, value: object, channels: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    values = (value,) if isinstance(value, (int, float)) else value
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a number or a sequence of numbers, not "
                        f"{type(value).__name__}")
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be numbers, got {value!r}") from None
    if len(out) == 1:
        out = out * channels
    if len(out) != channels:
        raise ValueError(f"{name} needs one value per channel ({channels}), got {len(out)}")
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if name == "std" and any(v == 0.0 for v in out):
        raise ValueError(f"std must not be zero, got {value!r}")
    return out


def check_num_threads(num_threads: object) -> int | None:
    """num_threads (how many workers decode a batch: 1 to 1024, or None), checked."""
    return _dim("num_threads", num_threads, 1024)


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
    crop: Crop = None,
    hflip: bool | float | Sequence[bool] = False,
    seed: int | None = None,
    dtype: str = "uint8",
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    layout: str = "NHWC",
    num_threads: int | None = None,
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
    crop, hflip, seed = _crop(crop), _hflip(hflip), _seed(seed)
    num_threads = check_num_threads(num_threads)
    dtype, layout = _choice("dtype", dtype, DTYPES), _choice("layout", layout, LAYOUTS)
    if crop is not None and (width is None or height is None):
        raise ValueError("crop needs both width and height (the crop is resized to width x height)")
    if crop is not None and filter_desc is not None:
        raise ValueError("crop and filter_desc cannot be combined: crop the graph's output "
                         "in the graph, or leave filter_desc out")
    if hflip != 0.0 and (pix_fmt not in TRAIN_PIX_FMTS or width is None or height is None):
        raise ValueError(f"hflip needs width, height and a packed pix_fmt "
                         f"({', '.join(TRAIN_PIX_FMTS)}), got pix_fmt={pix_fmt!r}")
    channels = TRAIN_PIX_FMTS.get(pix_fmt or "", 0)
    if dtype != "uint8" or layout != "NHWC":
        if not channels or width is None or height is None:
            raise ValueError(f"dtype={dtype!r}, layout={layout!r} need width, height and a packed "
                             f"pix_fmt ({', '.join(TRAIN_PIX_FMTS)}), got pix_fmt={pix_fmt!r}")
    if (mean is not None or std is not None) and dtype == "uint8":
        raise ValueError("mean and std apply to float output: pass dtype='float32' or 'float16'")
    mean_t = _per_channel("mean", mean, channels)
    std_t = _per_channel("std", std, channels)
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
        crop=crop,
        hflip=hflip,
        seed=seed,
        dtype=dtype,  # type: ignore[arg-type]
        mean=mean_t,
        std=std_t,
        layout=layout,  # type: ignore[arg-type]
        num_threads=num_threads,
    )
