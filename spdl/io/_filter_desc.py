"""FFmpeg filter descriptions: building them, and refusing unsafe ones.

A filter description is handed to libavfilter as written; nothing here parses
one back. The loaders' own resize and conversion come from keyword arguments
(see spdl.io._plan); :func:`get_video_filter_desc` writes the same request as
FFmpeg text, for the stage API (decode_packets) and for users of FFmpeg.
"""

from __future__ import annotations

import re

from spdl.io._plan import FFMPEG_PIX_FMTS, PIX_FMTS, SCALE_ALGOS

__all__ = [
    "get_video_filter_desc",
    "check_filter_desc",
]

_SCALE_MODES = ("pad", "crop", "stretch", None)


def _check_dim(name: str, v: int | None) -> None:
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
        raise ValueError(f"{name} must be a positive int or None, got {v!r}")


def normalize_pix_fmt(pix_fmt: str | None) -> str | None:
    """Map a user's pixel format name to FFmpeg's, or raise ValueError."""
    if pix_fmt is None:
        return None
    try:
        return FFMPEG_PIX_FMTS[PIX_FMTS[pix_fmt]]
    except (KeyError, TypeError):
        raise ValueError(f"pix_fmt must be one of {sorted(PIX_FMTS)} or None, got {pix_fmt!r}") from None


def get_video_filter_desc(
    *,
    scale_width: int | None = None,
    scale_height: int | None = None,
    scale_algo: str = "bicubic",
    scale_mode: str | None = "pad",
    crop_width: int | None = None,
    crop_height: int | None = None,
    pix_fmt: str | None = "rgb24",
    filter_desc: str | None = None,
) -> str | None:
    """Build an FFmpeg filter description that resizes and converts an image.

    Args:
        scale_width, scale_height: The size to scale to. With only one given,
            the other follows the aspect ratio. With neither, no scaling.
        scale_algo: One of ``fast_bilinear, bilinear, bicubic, neighbor, area,
            lanczos``.
        scale_mode: With both sizes given: ``"pad"`` keeps the aspect ratio,
            fits the image inside the box and pads it, centred, with black;
            ``"crop"`` keeps the aspect ratio, fills the box and crops the
            overflow, centred; ``None`` stretches to the box.
        crop_width, crop_height: After scaling, keep the centred region of
            this size (either may be None to keep that dimension).
        pix_fmt: The output pixel format (see ``PIX_FMTS``), or None to keep
            the decoded one.
        filter_desc: A user's FFmpeg filter chain, applied after scaling and
            cropping and before the pixel format conversion.

    Returns:
        The description, or None if it would do nothing.
    """
    _check_dim("scale_width", scale_width)
    _check_dim("scale_height", scale_height)
    _check_dim("crop_width", crop_width)
    _check_dim("crop_height", crop_height)
    if scale_algo not in SCALE_ALGOS:
        raise ValueError(f"scale_algo must be one of {SCALE_ALGOS}, got {scale_algo!r}")
    if scale_mode not in _SCALE_MODES:
        raise ValueError(f"scale_mode must be 'pad', 'crop', 'stretch' or None, got {scale_mode!r}")
    ff_pix_fmt = normalize_pix_fmt(pix_fmt)

    parts = []
    if scale_width is not None or scale_height is not None:
        w = scale_width if scale_width is not None else -1
        h = scale_height if scale_height is not None else -1
        both = scale_width is not None and scale_height is not None
        scale = f"scale=width={w}:height={h}:flags={scale_algo}"
        if both and scale_mode == "pad":
            parts.append(f"{scale}:force_original_aspect_ratio=decrease")
            parts.append(f"pad=width={w}:height={h}:x=-1:y=-1:color=black")
        elif both and scale_mode == "crop":
            parts.append(f"{scale}:force_original_aspect_ratio=increase")
            parts.append(f"crop=w={w}:h={h}")
        else:
            parts.append(scale)
    if crop_width is not None or crop_height is not None:
        cw = crop_width if crop_width is not None else "iw"
        ch = crop_height if crop_height is not None else "ih"
        parts.append(f"crop=w={cw}:h={ch}")
    if filter_desc:
        parts.append(filter_desc)
    if ff_pix_fmt is not None:
        parts.append(f"format=pix_fmts={ff_pix_fmt}")
    return ",".join(parts) if parts else None


#: Filters that read or write files, open devices or sockets, or load plugins or
#: models, and options that name files. A filter description is the caller's own
#: code, but one that could reach outside the image is refused all the same.
_UNSAFE_WORDS = frozenset("""
    movie amovie sendcmd asendcmd zmq azmq frei0r frei0r_src ladspa lv2 lut1d lut3d
    subtitles ass drawtext sofalizer dnn_processing dnn_classify dnn_detect sr derain
    arnndn libvmaf vmafmotion vidstabdetect vidstabtransform deshake signature psnr ssim
    metadata ametadata ocr find_rect cover_rect removelogo coreimage coreimagesrc
    program_opencl openclsrc lensfun libplacebo hwupload hwmap hwdownload
    psfile fontfile textfile stats_file filename file model kernel
""".split())
_WORD = re.compile(r"[A-Za-z0-9_]+")


def check_filter_desc(desc: str) -> None:
    """Raise FilterError if a filter description names a filter or option that can
    reach outside the image (files, devices, sockets, plugins); see _UNSAFE_WORDS.

    Quotes and backslashes are dropped first, as FFmpeg's parser drops them.
    """
    from spdl.io._errors import FilterError

    plain = desc.replace("\\", "").replace("'", "").replace('"', "")
    bad = sorted({w for w in _WORD.findall(plain) if w.lower() in _UNSAFE_WORDS})
    if bad:
        raise FilterError(
            f"filter: the description names {', '.join(map(repr, bad))}, which can open files, "
            "devices or sockets or load code; spdl.io runs only filters that work on the image",
            stage="filter")
