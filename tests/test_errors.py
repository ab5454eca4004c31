"""Failures: typed exceptions, messages naming the source, strict and non-strict batches."""

from __future__ import annotations

import errno
import pathlib

import numpy as np
import pytest

import spdl.io
from spdl.io import (
    BatchLoadError, ConfigError, DecodeError, FilterError, ImageTooLargeError, SourceError, SpdlIOError,
    UnsupportedFormatError,
)
from _util import np_batch

# name -> (the builtin the error must also be, the spdl class(es) that fit)
BAD = {
    "missing": (OSError, SourceError),
    "directory": (OSError, SourceError),
    "empty": (ValueError, (UnsupportedFormatError, DecodeError)),
    "random": (ValueError, (UnsupportedFormatError, DecodeError)),
    "text": (ValueError, (UnsupportedFormatError, DecodeError)),
}
BYTES_BAD = {
    "empty bytes": (b"", ValueError, (UnsupportedFormatError, DecodeError)),
    "zeros": (b"\0" * 100, ValueError, (UnsupportedFormatError, DecodeError)),
    "JPEG signature only": (b"\xff\xd8\xff" + b"\0" * 50, ValueError, (UnsupportedFormatError, DecodeError)),
    "PNG signature only": (b"\x89PNG\r\n\x1a\n" + b"\0" * 30, ValueError, (UnsupportedFormatError, DecodeError)),
    "text": (b"hello, not an image\n" * 10, ValueError, (UnsupportedFormatError, DecodeError)),
}


def check_error(e, builtin, spdl_cls, source_name):
    assert isinstance(e, SpdlIOError), repr(e)
    assert isinstance(e, builtin), f"{type(e).__name__} is not a {builtin.__name__}"
    assert isinstance(e, spdl_cls), f"{type(e).__name__} is not {spdl_cls}"
    assert e.source == source_name
    assert source_name in str(e), str(e)
    assert e.stage in ("demux", "decode", "filter", "convert", "load")


# ---------------------------------------------------------------------------
# Each bad input through the stage functions
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_path_stages(images, stages, name):
    builtin, cls = BAD[name]
    path = str(images[name])
    with pytest.raises(SpdlIOError) as e:
        stages.load_one(path)
    check_error(e.value, builtin, cls, path)


def test_missing_file_is_enoent(images):
    path = str(images["missing"])
    with pytest.raises(OSError) as e:
        spdl.io.demux_image(path)
    assert e.value.errno == errno.ENOENT
    assert e.value.filename == path


@pytest.mark.parametrize("label", sorted(BYTES_BAD))
def test_bad_bytes_stages(stages, label):
    data, builtin, cls = BYTES_BAD[label]
    with pytest.raises(SpdlIOError) as e:
        stages.load_one(data)
    check_error(e.value, builtin, cls, "bytes")


def test_unsupported_image_format(tmp_path, load):
    """A real image in a format that is not accepted (SVG) is an UnsupportedFormatError."""
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>'
    with pytest.raises(BatchLoadError) as e:
        load([svg], width=8, height=8)
    assert isinstance(e.value.errors[0], UnsupportedFormatError)


# ---------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------


def _mixed(images, as_src):
    """good, bad, good, bad... and the expected (index -> builtin, classes) of the bad ones."""
    srcs, bad = [], {}
    goods = ["jpeg_420", "png_rgb_301x199", "webp_lossy", "gif"]
    for k, name in enumerate(sorted(BAD)):
        srcs.append(as_src(images[goods[k % len(goods)]]))
        bad[len(srcs)] = BAD[name][0], BAD[name][1], name
        # missing files and directories have no bytes: always pass them as paths
        srcs.append(str(images[name]) if name in ("missing", "directory") else as_src(images[name]))
    for label, (data, builtin, cls) in sorted(BYTES_BAD.items()):
        bad[len(srcs)] = builtin, cls, label
        srcs.append(data)
    srcs.append(as_src(images["png_rgba"]))
    return srcs, bad


def _src_name(srcs, i):
    s = srcs[i]
    return str(s) if isinstance(s, (str, pathlib.Path)) else f"bytes #{i}"


def test_strict_names_every_failure(images, load, as_src):
    srcs, bad = _mixed(images, as_src)
    with pytest.raises(BatchLoadError) as e:
        load(srcs, width=32, height=32)
    err = e.value
    assert isinstance(err, SpdlIOError) and isinstance(err, ValueError)
    assert sorted(err.errors) == sorted(bad)
    msg = str(err)
    assert f"{len(bad)} of {len(srcs)}" in msg
    for i, (builtin, cls, label) in bad.items():
        name = _src_name(srcs, i)
        assert name in msg, f"{label}: {name!r} not in the message"
        check_error(err.errors[i], builtin, cls, name)
    assert err.__cause__ is err.errors[min(bad)]


def test_non_strict_returns_good_rows_in_order(images, load, as_src):
    srcs, bad = _mixed(images, as_src)
    buf = load(srcs, width=32, height=32, strict=False)
    good = [i for i in range(len(srcs)) if i not in bad]
    assert buf.indices == tuple(good)
    assert sorted(buf.errors) == sorted(bad)
    for i, (builtin, cls, label) in bad.items():
        check_error(buf.errors[i], builtin, cls, _src_name(srcs, i))
    assert buf.shape == (len(good), 32, 32, 3)
    rows = np_batch(buf)
    for row, i in enumerate(good):
        alone = np_batch(load([srcs[i]], width=32, height=32))[0]
        np.testing.assert_array_equal(rows[row], alone, err_msg=f"row {row} (input {i})")


def test_non_strict_custom_graph(images, load):
    """Non-strict with a libavfilter description (frames kept, assembled at the end)."""
    srcs = [b"junk", str(images["jpeg_420"]), str(images["missing"]), str(images["png_rgb_301x199"])]
    buf = load(srcs, width=None, height=None, pix_fmt=None,
               filter_desc="scale=w=20:h=10,format=pix_fmts=gray", strict=False)
    assert buf.indices == (1, 3)
    assert sorted(buf.errors) == [0, 2]
    assert buf.shape == (2, 10, 20, 1)


@pytest.mark.parametrize("desc", ["default", "format=pix_fmts=rgb24,null"])
def test_non_strict_all_fail(images, load, desc):
    kw = {} if desc == "default" else dict(filter_desc=desc)
    buf = load([b"", str(images["missing"])], width=16, height=16, strict=False, **kw)
    assert buf.shape[0] == 0
    assert buf.indices == ()
    assert sorted(buf.errors) == [0, 1]
    assert np_batch(buf).shape[0] == 0


def test_strict_all_good_has_no_errors(images, load):
    buf = load([str(images["jpeg_420"])] * 3, width=16, height=16)
    assert buf.indices == (0, 1, 2)
    assert buf.errors == {}


# ---------------------------------------------------------------------------
# Truncated and damaged data
# ---------------------------------------------------------------------------


def test_truncated_jpeg(images, load, as_src):
    """A JPEG cut at 50%.

    Either it is a DecodeError (the data is incomplete), or (FFmpeg's own behaviour:
    errors concealed) an image of the right size whose top part - fully present in the
    first half of the file - matches the complete image. Anything else (a crash, a
    wrong size, garbage everywhere) is a bug.
    """
    full = np_batch(load([str(images["jpeg_420"])], width=None, height=None,
                         filter_desc="format=pix_fmts=rgb24"))[0]
    try:
        buf = load([as_src(images["truncated_jpeg"])], width=None, height=None,
                   filter_desc="format=pix_fmts=rgb24")
    except BatchLoadError as e:
        assert isinstance(e.errors[0], DecodeError), repr(e.errors[0])
        assert isinstance(e.errors[0], ValueError)
        return
    out = np_batch(buf)[0]
    assert out.shape == full.shape
    top = full.shape[0] // 4
    assert np.abs(out[:top].astype(int) - full[:top]).mean() < 1.0


def test_truncated_jpeg_is_an_error(images, load):
    """Truncation must be detected: a JPEG without its second half is a DecodeError,
    not a silently half-grey image."""
    with pytest.raises(BatchLoadError) as e:
        load([str(images["truncated_jpeg"])], width=32, height=32)
    assert isinstance(e.value.errors[0], DecodeError)


def _benign(data):
    assert data.endswith(b"\xff\xd9")
    return {
        "trailing garbage": data + b"garbage" * 10,
        "trailing zeros": data + b"\0" * 1000,
        "extraneous bytes before EOI": data[:-2] + b"\0\0" + data[-2:],
    }


@pytest.mark.parametrize("case", ["trailing garbage", "trailing zeros", "extraneous bytes before EOI"])
def test_benign_jpeg_damage_still_loads(images, load, case):
    """What real files often carry (and Pillow accepts) loads, with the same pixels."""
    data = images["jpeg_420"].read_bytes()
    ref = np_batch(load([data], width=None, height=None, filter_desc="format=pix_fmts=rgb24"))
    out = np_batch(load([_benign(data)[case]], width=None, height=None, filter_desc="format=pix_fmts=rgb24"))
    np.testing.assert_array_equal(out, ref)


def test_png_with_trailing_data_loads(images, load):
    data = images["png_rgb_301x199"].read_bytes() + b"junk" * 10
    out = np_batch(load([data], width=None, height=None, filter_desc="format=pix_fmts=rgb24"))[0]
    np.testing.assert_array_equal(out, images.arrays["png_rgb_301x199"])


def test_jpeg_cut_short_is_an_error(images, load):
    # the EOI and the end of the scan's data (EOI alone missing loads: test_fidelity)
    data = images["jpeg_420"].read_bytes()[:-4]
    with pytest.raises(BatchLoadError) as e:
        load([data], width=16, height=16)
    assert isinstance(e.value.errors[0], DecodeError)


@pytest.mark.parametrize("name", ["png_rgb_301x199", "webp_lossy", "webp_lossless", "tiff_lzw", "bmp",
                                  "jpeg_progressive", "jpeg_444"])
@pytest.mark.parametrize("frac", [0.05, 0.5, 0.9])
def test_truncated_other_formats(images, load, name, frac):
    """Cut files of other formats either fail with a DecodeError or (where the decoder
    conceals) give a full-size image - never a crash, never another error type."""
    data = images[name].read_bytes()
    cut = data[: int(len(data) * frac)]
    try:
        buf = load([cut], width=None, height=None, filter_desc="format=pix_fmts=rgb24")
    except BatchLoadError as e:
        assert isinstance(e.errors[0], (DecodeError, UnsupportedFormatError)), repr(e.errors[0])
        return
    assert buf.shape[0] == 1


def test_corrupted_middle_does_not_crash(images, load):
    """Bytes flipped in the middle of each format: an error or an image, never a crash."""
    rng = np.random.RandomState(0)
    for name in ["jpeg_420", "png_rgb_301x199", "webp_lossy", "gif", "tiff_lzw", "bmp", "webp_lossless"]:
        data = bytearray(images[name].read_bytes())
        for _ in range(5):
            d = bytearray(data)
            pos = rng.randint(len(d) // 4, len(d))
            d[pos:pos + 16] = rng.randint(0, 256, 16, dtype=np.uint8).tobytes()
            buf = load([bytes(d)], width=32, height=32, strict=False)
            assert buf.shape[0] + len(buf.errors) == 1
            for err in buf.errors.values():
                assert isinstance(err, SpdlIOError) and isinstance(err, ValueError), repr(err)


# ---------------------------------------------------------------------------
# Limits, filters, configs
# ---------------------------------------------------------------------------


def test_max_pixels(images, load, stages):
    cfg = spdl.io.DecodeConfig(max_pixels=1000)
    with pytest.raises(ImageTooLargeError) as e:
        stages.load_one(str(images["png_rgb_301x199"]), decode_config=cfg)
    assert isinstance(e.value, MemoryError)
    with pytest.raises(BatchLoadError) as e:
        load([str(images["jpeg_420"]), str(images["png_rgb_3x5"])], width=8, height=8, decode_config=cfg)
    assert sorted(e.value.errors) == [0]
    assert isinstance(e.value.errors[0], ImageTooLargeError)
    assert str(images["jpeg_420"]) in str(e.value)


def test_max_pixels_allows_exact_size(images, load):
    buf = load([str(images["png_rgb_301x199"])], width=8, height=8,
               decode_config=spdl.io.DecodeConfig(max_pixels=301 * 199))
    assert buf.shape[0] == 1


def test_max_file_size(images, load):
    path = str(images["png_rgb_301x199"])
    with pytest.raises(SourceError) as e:
        spdl.io.demux_image(path, demux_config=spdl.io.DemuxConfig(max_file_size=100))
    assert isinstance(e.value, OSError)
    assert "max_file_size" in str(e.value) and path in str(e.value)
    with pytest.raises(BatchLoadError) as e:
        load([path], width=8, height=8, demux_config=spdl.io.DemuxConfig(max_file_size=100))
    assert isinstance(e.value.errors[0], SourceError)


def test_error_message_does_not_carry_a_previous_error(images):
    """An error's FFmpeg detail must come from this call, not from an earlier failure
    on the same thread (FFmpeg's log is captured per thread)."""
    with pytest.raises(DecodeError):
        spdl.io.decode_packets(spdl.io.demux_image(b"\x89PNG\r\n\x1a\n" + b"\0" * 30))
    with pytest.raises(ImageTooLargeError):
        spdl.io.decode_packets(spdl.io.demux_image(str(images["png_rgb_301x199"])),
                               decode_config=spdl.io.DecodeConfig(max_pixels=10))
    with pytest.raises(SourceError) as e:
        spdl.io.demux_image(str(images["missing"]))
    assert "max pixel" not in str(e.value) and "Picture size" not in str(e.value), str(e.value)
    with pytest.raises(SourceError) as e:
        spdl.io.demux_image(str(images["png_rgb_301x199"]), demux_config=spdl.io.DemuxConfig(max_file_size=10))
    assert "max pixel" not in str(e.value) and "Picture size" not in str(e.value), str(e.value)


@pytest.mark.parametrize("desc", ["bogusfilter", "scale=w=abc", "format=pix_fmts=nopixfmt", "crop=w=100000:h=1"])
def test_bad_filter_description(images, load, stages, desc):
    with pytest.raises(FilterError) as e:
        stages.load_one(str(images["jpeg_420"]), filter_desc=desc)
    assert isinstance(e.value, ValueError)
    with pytest.raises(BatchLoadError) as e:
        load([str(images["jpeg_420"])], width=None, height=None, filter_desc=desc)
    assert isinstance(e.value.errors[0], FilterError)


def test_filter_desc_type(images, load):
    with pytest.raises(TypeError):
        load([str(images["jpeg_420"])], width=8, height=8, filter_desc=3)


def test_decoder_options_unknown(images, load, stages):
    cfg = spdl.io.DecodeConfig(decoder_options={"bogus": "1", "also_bogus": "2"})
    with pytest.raises(ConfigError) as e:
        stages.load_one(str(images["jpeg_420"]), decode_config=cfg)
    assert isinstance(e.value, ValueError)
    assert "bogus" in str(e.value) and "also_bogus" in str(e.value)
    with pytest.raises((ConfigError, BatchLoadError)) as e:
        load([str(images["jpeg_420"])], width=8, height=8, decode_config=cfg)
    errs = e.value.errors.values() if isinstance(e.value, BatchLoadError) else [e.value]
    for err in errs:
        assert isinstance(err, ConfigError) and "bogus" in str(err)


def test_decoder_options_known(images, load):
    """A real decoder option is consumed (mjpeg's lowres halves the size)."""
    cfg = spdl.io.DecodeConfig(decoder="mjpeg", decoder_options={"lowres": "1"})
    out = load([str(images["jpeg_640x480"])], width=None, height=None, decode_config=cfg,
               filter_desc="format=pix_fmts=rgb24")
    assert out.shape == (1, 240, 320, 3)


def test_format_options_unknown(images, load, stages):
    cfg = spdl.io.DemuxConfig(format_options={"bogus": "1"})
    with pytest.raises(ConfigError) as e:
        stages.load_one(str(images["jpeg_420"]), demux_config=cfg)
    assert "bogus" in str(e.value)
    with pytest.raises((ConfigError, BatchLoadError)) as e:
        load([str(images["jpeg_420"])], width=8, height=8, demux_config=cfg)
    errs = e.value.errors.values() if isinstance(e.value, BatchLoadError) else [e.value]
    for err in errs:
        assert isinstance(err, ConfigError) and "bogus" in str(err)


@pytest.mark.parametrize("fmt", ["mov", "concat", "hls", "nonexistent"])
def test_format_not_an_image_demuxer(images, fmt):
    with pytest.raises(ConfigError) as e:
        spdl.io.demux_image(str(images["jpeg_420"]), demux_config=spdl.io.DemuxConfig(format=fmt))
    assert fmt in str(e.value)


def test_decoder_unknown(images):
    with pytest.raises(ConfigError) as e:
        spdl.io.decode_packets(spdl.io.demux_image(str(images["jpeg_420"])),
                               decode_config=spdl.io.DecodeConfig(decoder="nope"))
    assert "nope" in str(e.value)


def test_wrong_decoder_for_data(images):
    with pytest.raises(DecodeError):
        spdl.io.decode_packets(spdl.io.demux_image(str(images["jpeg_420"])),
                               decode_config=spdl.io.DecodeConfig(decoder="png"))


def test_forced_demuxer(images):
    pk = spdl.io.demux_image(str(images["jpeg_420"]), demux_config=spdl.io.DemuxConfig(format="jpeg_pipe"))
    assert pk.codec == "mjpeg"
    frames = spdl.io.decode_packets(pk, filter_desc="format=pix_fmts=rgb24")
    assert (frames.width, frames.height) == (301, 199)


def test_path_with_special_characters(images, tmp_path, load):
    """Paths are plain file names: colons, percent signs, spaces, non-ASCII."""
    data = images["jpeg_420"].read_bytes()
    names = ["a:b.jpg", "100%.jpg", "file:x.jpg", "with space.jpg", "ünï©ødé.jpg", "concat:x|y.jpg"]
    paths = []
    for n in names:
        (tmp_path / n).write_bytes(data)
        paths.append(str(tmp_path / n))
    out = np_batch(load(paths, width=16, height=16))
    assert out.shape[0] == len(names)
    assert (out == out[0]).all()
    with pytest.raises(BatchLoadError) as e:
        load([str(tmp_path / "missing:%d.jpg")], width=16, height=16)
    assert isinstance(e.value.errors[0], SourceError)


def test_path_with_nul_byte(load):
    with pytest.raises(ValueError):
        load(["a\0b.jpg"], width=8, height=8)


def test_fifo_does_not_block(tmp_path, load):
    import os
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    with pytest.raises(BatchLoadError) as e:
        load([str(fifo)], width=8, height=8)
    assert isinstance(e.value.errors[0], SourceError)


def test_objects_cannot_be_created_directly():
    for cls in (spdl.io.CPUBuffer, spdl.io.ImagePackets, spdl.io.ImageFrames):
        with pytest.raises(TypeError):
            cls()


def test_stage_argument_types(images):
    with pytest.raises(TypeError):
        spdl.io.decode_packets(b"not packets")
    with pytest.raises(TypeError):
        spdl.io.demux_image(12)
    with pytest.raises(TypeError):
        spdl.io.demux_image(str(images["jpeg_420"]), demux_config={})
    with pytest.raises(TypeError):
        spdl.io.decode_packets(spdl.io.demux_image(str(images["jpeg_420"])), decode_config={})


# ---------------------------------------------------------------------------
# The exception classes and the batch-finishing rule every loader shares
# ---------------------------------------------------------------------------


def test_batch_load_error_message_is_bounded():
    from spdl.io._errors import MAX_LISTED_FAILURES
    n = 20_000
    errors = {i: DecodeError(f"bytes #{i}: corrupt " + "x" * 2000, source=f"bytes #{i}") for i in range(n)}
    err = BatchLoadError(errors, n)
    msg = str(err)
    assert msg.startswith(f"{n} of {n} images failed to load:")
    assert "bytes #0:" in msg and f"bytes #{MAX_LISTED_FAILURES - 1}:" in msg
    assert f"bytes #{MAX_LISTED_FAILURES}:" not in msg
    assert f"... and {n - MAX_LISTED_FAILURES} more" in msg
    assert len(msg) < 8000
    assert len(err.errors) == n and err.total == n


def test_batch_load_error_lists_by_index():
    errors = {5: DecodeError("five"), 2: DecodeError("two")}
    msg = str(BatchLoadError(errors, 9))
    assert msg.index("[2] two") < msg.index("[5] five")
    assert "more" not in msg


def test_raise_for_failures():
    from spdl.io._errors import raise_for_failures
    raise_for_failures({}, 3)
    raise_for_failures({1: DecodeError("x")}, 3, strict=False)
    errs = {2: DecodeError("two"), 1: DecodeError("one")}
    with pytest.raises(BatchLoadError) as e:
        raise_for_failures(errs, 3)
    assert e.value.__cause__ is errs[1]
    cfg = ConfigError("options not consumed")
    for strict in (True, False):
        with pytest.raises(ConfigError) as e:
            raise_for_failures({0: DecodeError("x"), 1: cfg}, 3, strict=strict)
        assert e.value is cfg


def test_batch_layout_errors_are_spdl_and_value_errors():
    for cls in (spdl.io.BatchShapeError, spdl.io.UnbatchableFormatError):
        assert issubclass(cls, SpdlIOError) and issubclass(cls, ValueError)


def test_cuda_errors_live_with_the_others():
    from spdl.io import _errors
    assert issubclass(_errors.CUDAError, SpdlIOError) and issubclass(_errors.CUDAError, RuntimeError)
    e = _errors.CUDAUnavailableError("no CUDA device", library="libcudart.so.13", tried=["a"])
    assert e.stage == "cuda" and e.tried == ("a",) and e.missing == () and e.op is None


def test_check_bool():
    from spdl.io._errors import check_bool
    assert check_bool("strict", True) is True
    assert check_bool("strict", np.bool_(False)) is False
    for bad in (1, 0, "yes", None, np.int64(1)):
        with pytest.raises(TypeError, match="strict must be a bool"):
            check_bool("strict", bad)


# ---------------------------------------------------------------------------
# Sources and integers: subclasses count as what they subclass
# ---------------------------------------------------------------------------


class _StrSub(str):
    pass


class _BytesSub(bytes):
    pass


class _FsPath:
    def __init__(self, p):
        self.p = p

    def __fspath__(self):
        return self.p


def _source_kinds(path):
    data = pathlib.Path(path).read_bytes()
    return {
        "str": str(path), "numpy.str_": np.str_(str(path)), "str subclass": _StrSub(str(path)),
        "Path": pathlib.Path(path), "PathLike": _FsPath(str(path)),
        "PathLike of bytes": _FsPath(str(path).encode()), "bytes": data,
        "bytes subclass": _BytesSub(data), "bytearray": bytearray(data),
        "memoryview": memoryview(data), "numpy uint8": np.frombuffer(data, np.uint8),
    }


def test_every_source_kind_demuxes(images):
    want = spdl.io.demux_image(str(images["jpeg_420"])).nbytes
    for kind, src in _source_kinds(images["jpeg_420"]).items():
        p = spdl.io.demux_image(src)
        assert p.nbytes == want, kind
        assert type(p.source) is str, kind


def test_every_source_kind_loads(images, load):
    kinds = _source_kinds(images["jpeg_420"])
    want = np_batch(load([str(images["jpeg_420"])], width=16, height=16))
    out = np_batch(load(list(kinds.values()), width=16, height=16))
    assert out.shape[0] == len(kinds)
    for row, kind in enumerate(kinds):
        assert (out[row] == want[0]).all(), kind


def test_make_sources_names_the_bad_index(images):
    from spdl.io._source import make_sources
    good = str(images["jpeg_420"])
    assert len(make_sources([good, b"x", np.str_(good)])) == 3
    with pytest.raises(TypeError, match=r"srcs\[3\] is a float; expected a path"):
        make_sources([good, good, good, 1.5])
    with pytest.raises(TypeError, match=r"srcs\[7\] is a NoneType"):
        make_sources([None], indices=[7])
    for single in (good, b"abc", pathlib.Path(good)):
        with pytest.raises(TypeError, match="srcs must be a list of sources"):
            make_sources(single)
    with pytest.raises(TypeError, match="srcs must be a list"):
        make_sources(3)


def test_numpy_integers_are_ints():
    c = spdl.io.DecodeConfig(max_pixels=np.int64(1000))
    assert c.max_pixels == 1000 and type(c.max_pixels) is int
    d = spdl.io.DemuxConfig(buffer_size=np.uint32(4096), max_file_size=np.int32(10_000))
    assert (d.buffer_size, d.max_file_size) == (4096, 10_000) and type(d.buffer_size) is int

    class IntSub(int):
        pass

    assert spdl.io.DecodeConfig(max_pixels=IntSub(7)).max_pixels == 7
    g = spdl.io.CUDAConfig(np.int16(1), stream=np.uint64(0))
    assert (g.device_index, g.stream) == (1, 0) and type(g.device_index) is int
    for bad in (True, np.bool_(True), 1.0, "5", np.float32(5)):
        with pytest.raises(ValueError, match="max_pixels must be a positive int"):
            spdl.io.DecodeConfig(max_pixels=bad)
    with pytest.raises(ValueError, match="device_index must be a non-negative int"):
        spdl.io.CUDAConfig(np.int64(-1))


# ---------------------------------------------------------------------------
# The status funnel: FFmpeg's lines reach the status of the context that logged them
# ---------------------------------------------------------------------------


def test_filter_reason_reaches_each_image(images, load):
    """libavfilter's own line (naming the filter) is in each image's error, from its graph."""
    src = str(images["png_rgb_301x199"])
    with pytest.raises(BatchLoadError) as e:
        load([src, src], width=None, height=None, pix_fmt=None, filter_desc="nosuchfilter")
    assert sorted(e.value.errors) == [0, 1]
    for err in e.value.errors.values():
        assert isinstance(err, FilterError) and "nosuchfilter" in str(err), str(err)


def test_jpeg_cut_short_names_the_cause(images, load, stages):
    data = images["jpeg_420"].read_bytes()[:-4]
    with pytest.raises(DecodeError, match="no end-of-image marker"):
        stages.load_one(data)
    buf = load([data, images["jpeg_420"].read_bytes()], width=16, height=16, strict=False)
    assert buf.indices == (1,) and "no end-of-image marker" in str(buf.errors[0])


@pytest.mark.parametrize("fmt", ["TIFF", "PNG", "BMP", "WEBP", "GIF"])
def test_too_large_by_the_decoders_size_check(stages, fmt):
    """An image FFmpeg's own size check refuses (av_image_check_size2, seen by the status of
    the decoder that logged it) is an ImageTooLargeError, whatever FFmpeg's words."""
    import io

    from PIL import Image

    b = io.BytesIO()
    Image.new("RGB", (400, 300)).save(b, fmt)
    with pytest.raises(ImageTooLargeError, match="larger than max_pixels"):
        stages.load_one(b.getvalue(), decode_config=spdl.io.DecodeConfig(max_pixels=100))
