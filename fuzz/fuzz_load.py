"""Fuzz spdl.io: demux + decode + convert of arbitrary bytes (atheris / libFuzzer).

    python fuzz/fuzz_load.py [libFuzzer flags] CORPUS_DIR [SEED_DIR ...]

The first byte of an input chooses what is done with the rest:
  bits 0-1  the entry point: 0 load_image_batch (sync), 1 the stage functions
            with the simple filter, 2 the stage functions with a libavfilter
            graph, 3 async_load_image_batch on two copies (worker reuse)
  bits 2-4  the output pixel format (rgb24, bgr24, rgba, gray, gray16, yuv444p); 6 and 7
            make entry points 0 and 3 load a training plan instead (6: rgb24 with a random
            resized crop, a random flip, float32 NCHW; 7: gray with a centre crop, always
            flipped, float16): the region-only JPEG decoder, crops, flips and float rows
  bits 5-7  the output size and scale mode
A crash is a process crash, a hang (libFuzzer -timeout), more memory than
-rss_limit_mb, or any exception that is not a spdl.io error (SpdlIOError,
which BatchLoadError is too). fuzz/run.sh runs it; fuzz/README.md explains.
"""

from __future__ import annotations

import asyncio
import os
import sys

import atheris

with atheris.instrument_imports(include=["spdl"]):
    import spdl.io
    from spdl.io import SpdlIOError

#: SPDL_FUZZ_CHECK_REPEAT=0 skips the "same input, same rows" check (to explore past a known bug).
CHECK_REPEAT = os.environ.get("SPDL_FUZZ_CHECK_REPEAT", "1") != "0"

PIX_FMTS = ["rgb24", "bgr24", "rgba", "gray", "gray16", "yuv444p", "rgb24", "gray"]
SIZES = [(32, 32, "pad"), (17, 9, "pad"), (32, 32, "crop"), (7, 29, None), (64, 48, "pad"), (1, 1, "pad"),
         (33, 21, "crop"), (16, None, None)]
GRAPHS = ["format=pix_fmts=rgb24,scale=24:24", "scale=13:7,format=pix_fmts=gray",
          "crop=iw/2:ih/2,scale=16:16,format=pix_fmts=rgba", "hflip,vflip,scale=8:8,format=pix_fmts=yuv444p",
          "transpose=1,scale=20:10,format=pix_fmts=bgr24", "pad=iw+2:ih+2,scale=9:9,format=pix_fmts=gray16le",
          "scale=32:-2,crop=32:16,format=pix_fmts=rgb24", "format=pix_fmts=gray,scale=4:4"]


def _check(buf, n):
    arr = spdl.io.to_numpy(buf)
    assert arr.shape[0] == len(buf.indices) <= n, (arr.shape, buf.indices)
    assert set(buf.indices).isdisjoint(buf.errors), (buf.indices, buf.errors)
    assert len(buf.indices) + len(buf.errors) == n
    for e in buf.errors.values():
        assert isinstance(e, SpdlIOError), repr(e)
    arr.sum()  # touch every byte (under ASan: catches reads of freed rows)


def _train(kind: int, w: int | None, h: int | None) -> dict:
    """The training keywords of pix_fmt selector kind (6 or 7), or {} for the others."""
    if kind < 6 or w is None or h is None:
        return {}
    if kind == 6:
        return dict(crop=spdl.io.RandomResizedCrop(), hflip=0.5, seed=7, dtype="float32",
                    mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.4), layout="NCHW")
    return dict(crop=spdl.io.CenterCrop(0.8), hflip=True, dtype="float16")


def run(data: bytes) -> None:
    if len(data) < 2:
        return
    sel, payload = data[0], bytes(data[1:])
    mode = sel & 3
    pix_fmt = PIX_FMTS[(sel >> 2) & 7]
    w, h, scale_mode = SIZES[(sel >> 5) & 7]
    train = _train((sel >> 2) & 7, w, h)
    try:
        if mode == 0:
            buf = spdl.io.load_image_batch([payload], width=w, height=h, pix_fmt=pix_fmt, strict=False,
                                           **train)
            _check(buf, 1)
        elif mode == 1:
            desc = spdl.io.get_video_filter_desc(scale_width=w, scale_height=h, scale_mode=scale_mode,
                                                 pix_fmt=pix_fmt)
            frames = spdl.io.decode_packets(spdl.io.demux_image(payload), filter_desc=desc)
            spdl.io.to_numpy(spdl.io.convert_frames([frames, frames])).sum()
        elif mode == 2:
            desc = GRAPHS[(sel >> 2) & 7]
            frames = spdl.io.decode_packets(spdl.io.demux_image(payload), filter_desc=desc)
            spdl.io.to_numpy(spdl.io.convert_frames([frames])).sum()
        else:
            async def go():
                return await spdl.io.async_load_image_batch([payload, payload, b"", payload], width=w, height=h,
                                                           pix_fmt=pix_fmt, strict=False,
                                                           **(train if "seed" not in train else {}))
            buf = asyncio.run(go())
            _check(buf, 4)
            if CHECK_REPEAT and len(buf.indices) == 3:  # the same input three times: the same rows
                arr = spdl.io.to_numpy(buf)
                assert (arr[0] == arr[1]).all() and (arr[0] == arr[2]).all(), "rows of one input differ"
    except SpdlIOError:
        pass


def main():
    atheris.Setup(sys.argv, run)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
