"""The GPU path: CUDAConfig, the library loader, CUDABuffer's interfaces, nvJPEG.

Most of these run anywhere. The loader is pointed at paths that do not exist
to check its messages; CUDABuffer is built over fake device pointers (nothing
CUDA is touched) to check ``__cuda_array_interface__``, DLPack and freeing;
with a CUDA runtime (12 or 13) installed but no GPU, every entry point must
say "no CUDA device". The tests marked ``gpu`` (tests/_gpu.py: ``@gpu``,
``@needs_runtime``, ``@needs_nvjpeg``) need a CUDA device or the CUDA
libraries and are skipped with the reason where they are missing; with
``SPDL_REQUIRE_GPU=1`` those skips fail (tests/conftest.py). The loader's
search order and its one-major rule are tested with stub libraries in
tests/test_cuda_loader.py, and against the real CUDA 12 / 13 wheels in
tests/test_cuda_wheels.py.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import io
import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import spdl.io
from spdl.io import CUDAConfig
from spdl.io import _cuda_device, _cuda_lib, _cuda_runtime, _keepalive, _nvjpeg_batch, _nvjpeg_decode, _nvjpeg_lib, _pinned, _testing, _transfer

from _gpu import HAVE_GPU, RUNTIME, gpu, needs_nvjpeg, needs_runtime

ROOT = Path(__file__).resolve().parents[1]
#: The folder spdl is imported from (the checkout, or site-packages for an installed wheel).
SPDL_ROOT = Path(spdl.__file__).resolve().parents[1]


def _header_sets():
    """{name: [include dirs]} of each set of CUDA headers here, searched in that order.

    The CUDA 13 wheels share nvidia/cu13/include; the CUDA 12 wheels each have
    nvidia/<component>/include; a toolkit has $CUDA_HOME/include or
    /usr/local/cuda/include.
    """
    import site

    dirs = [Path(d) for d in [*sys.path, *site.getsitepackages()] if d and Path(d).is_dir()]
    sets = {}
    for d in dict.fromkeys(dirs):       # one major's wheels may be spread over several folders
        if (d / "nvidia" / "cu13" / "include").is_dir():
            sets.setdefault("wheels-cu13", []).append(d / "nvidia" / "cu13" / "include")
        cu12 = [d / "nvidia" / m / "include" for m in ("cuda_runtime", "nvjpeg", "npp")]
        sets.setdefault("wheels-cu12", []).extend(i for i in cu12 if i.is_dir())
    sets = {k: v for k, v in sets.items() if v}
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root and (Path(root) / "include" / "cuda_runtime_api.h").is_file():
            sets.setdefault(f"toolkit-{root}", [Path(root) / "include"])
    return sets


def _find_header(incs, name):
    return next((i / name for i in incs if (i / name).is_file()), None)


# ---------------------------------------------------------------------------
# Configuration and argument checks (no CUDA needed)


@pytest.mark.parametrize("kwargs, exc", [
    ({"device_index": -1}, ValueError),
    ({"device_index": True}, ValueError),
    ({"device_index": 1.0}, ValueError),
    ({"device_index": 0, "stream": -1}, ValueError),
    ({"device_index": 0, "stream": "0"}, ValueError),
    ({"device_index": 0, "allocator": (lambda *a: 0,)}, TypeError),
    ({"device_index": 0, "allocator": (1, 2)}, TypeError),
    ({"device_index": 0, "allocator": [lambda *a: 0, lambda p: None]}, TypeError),
])
def test_cuda_config_rejects(kwargs, exc):
    with pytest.raises(exc):
        CUDAConfig(**kwargs)


def test_cuda_config_accepts():
    c = CUDAConfig(1, stream=0x1234, allocator=(lambda n, d, s: 0, lambda p: None))
    assert (c.device_index, c.stream) == (1, 0x1234)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"device_config": 0}, TypeError, "CUDAConfig"),
    ({"device_config": None}, TypeError, "device_config"),
    ({"width": 0}, ValueError, "width"),
    ({"width": 70000}, ValueError, "width"),
    ({"pix_fmt": "yuv420"}, ValueError, "pix_fmt"),
    ({"scale_mode": "fit"}, ValueError, "scale_mode"),
    ({"scale_algo": "cubic"}, ValueError, "scale_algo"),
    ({"strict": 1}, TypeError, "strict"),
])
def test_nvjpeg_arguments_checked_before_cuda(kwargs, exc, match):
    args = {"device_config": CUDAConfig(0), "width": 32, "height": 32}
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        spdl.io.load_image_batch_nvjpeg([b"\xff\xd8\xff"], **args)


def test_nvjpeg_srcs_must_be_a_list():
    with pytest.raises(TypeError, match="list"):
        spdl.io.load_image_batch_nvjpeg(b"\xff\xd8\xff", device_config=CUDAConfig(0),
                                        width=8, height=8)


async def test_async_nvjpeg_arguments_checked():
    with pytest.raises(ValueError, match="pix_fmt"):
        await spdl.io.async_load_image_batch_nvjpeg([b"x"], device_config=CUDAConfig(0),
                                                    width=8, height=8, pix_fmt="rgb")


def test_nvjpeg_takes_the_cpu_loaders_arguments():
    import inspect

    gpu = inspect.signature(spdl.io.load_image_batch_nvjpeg)
    assert gpu == inspect.signature(spdl.io.async_load_image_batch_nvjpeg)
    cpu = inspect.signature(spdl.io.load_image_batch).parameters
    assert list(gpu.parameters) == list(cpu)
    for name, p in gpu.parameters.items():      # the same, but device_config is required
        if name == "device_config":
            assert p.default is inspect.Parameter.empty and cpu[name].default is None
        else:
            assert p == cpu[name]


@pytest.mark.parametrize("kwargs, why", [
    ({}, None),
    ({"pix_fmt": "bgr24", "scale_mode": "stretch", "scale_algo": "lanczos"}, None),
    ({"pix_fmt": "rgbp", "scale_mode": None, "scale_algo": "neighbor"}, None),
    ({"height": None}, "width and height"),
    ({"pix_fmt": "gray"}, "pix_fmt 'gray'"),
    ({"pix_fmt": None}, "pix_fmt None"),
    ({"scale_mode": "crop"}, "scale_mode 'crop'"),
    ({"scale_algo": "area"}, "scale_algo 'area'"),
    ({"filter_desc": "hflip"}, "filter_desc"),
    ({"demux_config": spdl.io.DemuxConfig(format="jpeg_pipe")}, "DemuxConfig.format"),
    ({"decode_config": spdl.io.DecodeConfig(decoder="mjpeg")}, "DecodeConfig.decoder"),
    ({"crop": spdl.io.RandomResizedCrop(), "hflip": 0.5}, None),
    ({"crop": [(0, 0, 8, 8)], "hflip": [True], "pix_fmt": "bgr24"}, None),
    ({"crop": spdl.io.CenterCrop(), "pix_fmt": "rgbp"}, None),
    ({"dtype": "float32", "mean": 0.5, "std": 0.25}, None),
    ({"dtype": "float16"}, None),
    ({"layout": "NCHW", "hflip": True}, None),
    ({"dtype": "float16", "layout": "NCHW", "pix_fmt": "bgr24"}, None),
    ({"dtype": "float32", "pix_fmt": "gray"}, "pix_fmt 'gray'"),
])
def test_nvjpeg_cpu_path_for_what_the_gpu_cannot_do(kwargs, why):
    from spdl.io._plan import compile_plan

    args = {"device_config": CUDAConfig(0), "width": 32, "height": 32, **kwargs}
    reason = _nvjpeg_batch.cpu_reason(compile_plan(**args))
    assert reason == why if why is None else why in reason


def test_nvjpeg_draws_one_seed_per_batch():
    """A plan that crops or flips with seed=None gets one seed for the whole call (its GPU
    rows and its CPU path's rows draw from it); a given seed is kept; other plans keep None."""
    args = {"device_config": CUDAConfig(0), "width": 32, "height": 32}
    a = _nvjpeg_batch._compile({**args, "crop": spdl.io.RandomResizedCrop()})
    b = _nvjpeg_batch._compile({**args, "hflip": 0.5})
    assert a.seed is not None and b.seed is not None and a.seed != b.seed
    assert _nvjpeg_batch._compile({**args, "hflip": True, "seed": 5}).seed == 5
    assert _nvjpeg_batch._compile(args).seed is None


def test_transfer_buffer_argument_types():
    with pytest.raises(TypeError, match="CUDAConfig"):
        spdl.io.transfer_buffer(object(), device_config=0)
    with pytest.raises(TypeError, match="CPUBuffer"):
        _transfer.transfer_buffer(np.zeros(3, np.uint8), device_config=CUDAConfig(0))


def test_load_image_batch_device_config_type():
    with pytest.raises(TypeError, match="CUDAConfig"):
        spdl.io.load_image_batch([b"x"], width=8, height=8, device_config="cuda:0")


# ---------------------------------------------------------------------------
# The library loader


def test_library_candidates_order(monkeypatch, tmp_path):
    """Wheels (every sys.path folder holding nvidia/), $CUDA_HOME, $CUDA_PATH, /usr/local/cuda, soname."""
    site_a, site_b = tmp_path / "a", tmp_path / "b"
    for d in (site_a, site_b):
        (d / "nvidia").mkdir(parents=True)
    monkeypatch.setattr(sys, "path", [str(site_a), str(tmp_path / "no_nvidia"), str(site_b)])
    monkeypatch.setenv("CUDA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CUDA_PATH", str(tmp_path / "path"))
    arch = _cuda_lib._ARCH
    sub = ["lib64", "lib", f"targets/{arch}-linux/lib"]
    c13 = _cuda_lib.library_candidates("nvidia.cuda_runtime", "libcudart.so.13")
    c12 = _cuda_lib.library_candidates("nvidia.cuda_runtime", "libcudart.so.12")
    for soname, c, wheel in (("libcudart.so.13", c13, "nvidia/cu13/lib"),
                             ("libcudart.so.12", c12, "nvidia/cuda_runtime/lib")):
        want = [f"{site_a}/{wheel}/{soname}", f"{site_b}/{wheel}/{soname}"]
        for root in (tmp_path / "home", tmp_path / "path", Path("/usr/local/cuda")):
            want += [f"{root}/{s}/{soname}" for s in sub]
        want.append(soname)
        assert c[:2] == want[:2]                # the wheels first, in sys.path order
        assert [x for x in c if x in want] == want
    assert _cuda_lib.library_candidates("nvidia.npp", "libnppig.so.12")[0] == f"{site_a}/nvidia/npp/lib/libnppig.so.12"
    assert _cuda_lib.library_candidates("nvidia.npp", "libnppig.so.13")[0] == f"{site_a}/nvidia/cu13/lib/libnppig.so.13"


def test_library_candidates_without_wheel():
    c = _cuda_lib.library_candidates("nvidia.no_such_library_xyz", "libxyz.so.1")
    assert c[-1] == "libxyz.so.1"
    c = _cuda_lib.library_candidates("no_such_top_level_pkg_xyz.lib", "libxyz.so.1")
    assert c[-1] == "libxyz.so.1"


def test_open_library_names_library_and_every_path_tried():
    tried = ["/nonexistent/a/libcudart.so.12", "/nonexistent/b/libcudart.so.12",
             "libspdl_no_such_cudart.so.12"]
    with pytest.raises(spdl.io.CUDAUnavailableError) as ei:
        _cuda_lib._open_library("libcudart.so.12", tried, "install the CUDA runtime")
    e = ei.value
    assert isinstance(e, RuntimeError) and isinstance(e, spdl.io.CUDAError)
    assert isinstance(e, spdl.io.SpdlIOError)
    assert e.library == "libcudart.so.12"
    assert e.tried == tuple(tried)
    msg = str(e)
    assert "libcudart.so.12 could not be loaded" in msg
    assert "install the CUDA runtime" in msg
    for p in tried:
        assert p in msg


@pytest.mark.parametrize("major", [13, 12])
@pytest.mark.parametrize("which, stem", [("nvjpeg", "libnvjpeg"), ("nppc", "libnppc"), ("nppig", "libnppig"),
                                         ("nppicc", "libnppicc"), ("nppidei", "libnppidei")])
def test_nvjpeg_npp_loader_names_library(which, stem, major):
    soname = f"{stem}.so.{major}"
    with pytest.raises(spdl.io.CUDAUnavailableError) as ei:
        _testing.probe_nvjpeg_library(which, [f"/nonexistent/{soname}"], major=major)
    assert ei.value.library == soname
    msg = str(ei.value)
    assert soname in msg and f"/nonexistent/{soname}: not found" in msg
    assert f"pip install pixelbatch[cuda{major}]" in msg


def test_loader_rejects_a_library_without_the_symbols():
    # libc loads fine but has no cudaGetDeviceCount: the table cannot be filled. The major is
    # given: without it the probe asks the CUDA runtime, which a machine may not have.
    with pytest.raises(spdl.io.CUDAUnavailableError, match="lacks .*nvjpegCreateEx"):
        _testing.probe_nvjpeg_library("nvjpeg", ["libc.so.6"], major=13)


@needs_nvjpeg
@pytest.mark.parametrize("which", ["nvjpeg", "nppc", "nppig", "nppicc", "nppidei"])
def test_libraries_have_every_symbol(which):
    """nvJPEG and NPP of the runtime's major load and export every function spdl.io calls."""
    path = _testing.probe_nvjpeg_library(which)
    assert path.endswith(f".so.{_cuda_lib.cuda_major()}")


_SUBPROCESS_MISSING_RUNTIME = textwrap.dedent("""
    import asyncio, sys
    import spdl.io
    from spdl.io import CUDAConfig
    from spdl.io import _cuda_device, _cuda_lib, _cuda_runtime, _keepalive, _nvjpeg_batch, _nvjpeg_decode, _nvjpeg_lib, _pinned, _testing, _transfer
    # Make the real loader look only where nothing is.
    _cuda_lib.library_candidates = lambda module, soname: ["/nonexistent/" + soname]
    assert spdl.io.cuda_available() is False
    cfg = CUDAConfig(0)
    calls = {
        "check_device": lambda: _cuda_device.check_device(cfg),
        "host_allocator": lambda: _pinned.host_allocator(cfg),
        "transfer_buffer": lambda: spdl.io.transfer_buffer(spdl.io.CPUBuffer.__new__(spdl.io.CPUBuffer), device_config=cfg),
        "load_image_batch": lambda: spdl.io.load_image_batch([b"x"], width=8, height=8, device_config=cfg),
        "async_load_image_batch": lambda: asyncio.run(spdl.io.async_load_image_batch(
            [b"x"], width=8, height=8, device_config=cfg)),
        "load_image_batch_nvjpeg": lambda: spdl.io.load_image_batch_nvjpeg(
            [b"x"], device_config=cfg, width=8, height=8),
        "async_load_image_batch_nvjpeg": lambda: asyncio.run(spdl.io.async_load_image_batch_nvjpeg(
            [b"x"], device_config=cfg, width=8, height=8)),
    }
    for name, call in calls.items():
        try:
            call()
        except spdl.io.CUDAUnavailableError as e:
            msg = str(e)
            assert e.library in ("libcudart.so.13", "libcudart.so.12"), (name, e.library)
            assert e.library + " could not be loaded" in msg, (name, msg)
            assert "/nonexistent/libcudart.so.12: not found" in msg, (name, msg)
            assert "/nonexistent/libcudart.so.12" in e.tried, (name, e.tried)
            assert "pip install pixelbatch[cuda" in msg, (name, msg)
        else:
            raise AssertionError(name + " did not raise")
    print("OK", len(calls))
""")


def test_every_entry_point_names_the_missing_runtime():
    """Without libcudart (the loader pointed elsewhere), each GPU entry point names it."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", _SUBPROCESS_MISSING_RUNTIME], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "OK 7"


def test_cuda_available_is_a_bool_and_never_raises():
    assert spdl.io.cuda_available() in (True, False)
    assert spdl.io.cuda_available() == HAVE_GPU
    info = _cuda_runtime.runtime_info()
    assert set(info) == {"library", "soname", "cuda_major", "runtime_version", "version", "driver_version",
                         "error", "tried"}


def test_cuda_info_never_raises_and_is_plain_data():
    import json

    info = spdl.io.cuda_info()
    json.dumps(info)
    assert info is not spdl.io.cuda_info()
    for name in ("cudart", "nvjpeg", "nppc", "nppig", "nppicc", "nppidei", "libcuda"):
        lib = info[name]
        assert set(lib) == {"soname", "path", "version", "error", "tried"}, name
        assert (lib["path"] is None) == (lib["error"] is not None) or name == "libcuda", (name, lib)
    assert info["cuda_major"] in (13, 12, None) and info["reason"]
    if info["cudart"]["path"] is not None:
        assert info["cudart"]["soname"] == f"libcudart.so.{info['cuda_major']}"
        assert info["cudart"]["version"].startswith(f"{info['cuda_major']}.")
        assert info["device_count"] == (info["device_count"] or 0) >= 0
    if HAVE_GPU:
        assert info["device_count"] >= 1 and info["device_error"] is None
        assert info["driver_version"] is not None
    else:
        assert info["device_count"] in (0, None) and info["device_error"]


def test_loader_is_loaded_once_under_concurrency():
    results = []

    def load():
        try:
            results.append(_cuda_runtime._load_runtime())
        except spdl.io.CUDAUnavailableError as e:
            results.append(("error", str(e)))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    first = results[0]
    for r in results[1:]:
        assert r is first if not isinstance(first, tuple) else r == first


@pytest.mark.skipif(RUNTIME["library"] is None, reason=RUNTIME["error"] or "")
@pytest.mark.skipif(HAVE_GPU, reason="this machine has a CUDA device")
def test_no_device_every_entry_point_says_no_cuda_device(tmp_path):
    """A CUDA runtime (12 or 13) loads, but there is no GPU: not a GPU test (it needs none)."""
    assert spdl.io.cuda_available() is False
    cfg = CUDAConfig(0)
    buf = spdl.io.load_image_batch([_jpeg_bytes(16, 12)], width=8, height=8)   # a real CPUBuffer
    calls = [
        lambda: _cuda_device.check_device(cfg),
        lambda: _pinned.host_allocator(cfg),
        lambda: spdl.io.transfer_buffer(buf, device_config=cfg),
        lambda: asyncio.run(spdl.io.async_transfer_buffer(buf, device_config=cfg)),
        lambda: spdl.io.load_image_batch([b"x"], width=8, height=8, device_config=cfg),
        lambda: asyncio.run(spdl.io.async_load_image_batch([b"x"], width=8, height=8,
                                                           device_config=cfg)),
        lambda: spdl.io.load_image_batch_nvjpeg([b"x"], device_config=cfg, width=8, height=8),
        lambda: asyncio.run(spdl.io.async_load_image_batch_nvjpeg([b"x"], device_config=cfg,
                                                                  width=8, height=8)),
    ]
    for call in calls:
        with pytest.raises(spdl.io.CUDAUnavailableError, match="^no CUDA device") as ei:
            call()
        assert ei.value.library is None
        assert ei.value.op == "cudaGetDeviceCount"
        assert isinstance(ei.value, RuntimeError)


@needs_runtime
def test_runtime_info_reports_the_runtime():
    info = _cuda_runtime.runtime_info()
    major = info["cuda_major"]
    assert major in (13, 12) and info["library"].endswith(f"libcudart.so.{major}")
    assert major * 1000 <= info["runtime_version"] < (major + 1) * 1000
    assert info["error"] is None


def test_nvjpeg_info_never_raises():
    info = _nvjpeg_lib.nvjpeg_info()
    assert "error" in info
    if info["error"] is None:
        major = _cuda_lib.cuda_major()
        assert info["nvjpeg_version"].startswith(f"{major}.")
        assert info["nvjpeg"].endswith(f".so.{major}") and info["npp"].endswith(f".so.{major}")


def test_driver_api_info_never_raises():
    info = _cuda_device.driver_api_info()
    assert set(info) == {"library", "error"}
    assert (info["library"] is None) != (info["error"] is None)


_SUBPROCESS_MISSING_DRIVER = textwrap.dedent("""
    from spdl.io import _cuda_buffer, _cuda_device, _cuda_lib, _cuda_runtime, _keepalive, _nvjpeg_batch, _nvjpeg_decode, _nvjpeg_lib, _pinned, _testing, _transfer
    _cuda_lib.driver_candidates = lambda: ["/nonexistent/libcuda.so.1"]
    info = _cuda_device.driver_api_info()
    assert info["library"] is None, info
    assert "libcuda.so.1 could not be loaded" in info["error"], info
    assert "/nonexistent/libcuda.so.1" in info["error"], info
    assert _cuda_runtime.runtime_info()["library"] is not None      # the runtime does without it
    print("OK")
""")


@needs_runtime
def test_missing_driver_api_is_not_an_error():
    """Without libcuda.so.1 the runtime still loads; contexts are switched with cudaSetDevice."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", _SUBPROCESS_MISSING_DRIVER], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "OK"


# ---------------------------------------------------------------------------
# SPDL_REQUIRE_GPU=1: a GPU test that would skip fails instead, saying why

_REQUIRE_GPU_CASES = '''
import pytest

@pytest.mark.gpu
@pytest.mark.skipif(True, reason="no CUDA device: reason A")
def test_skipif():
    pass

@pytest.mark.gpu
def test_skip_in_body():
    pytest.skip("torch has no CUDA device: reason B")

@pytest.mark.gpu
def test_importorskip():
    pytest.importorskip("spdl_no_such_module_c")

@pytest.mark.gpu
@pytest.mark.xfail(reason="expected")
def test_xfail():
    assert False

@pytest.mark.gpu
def test_passes():
    pass

@pytest.mark.skipif(True, reason="needs no GPU: reason D")
def test_plain_skip():
    pass
'''


def _run_pytest(args, cwd, require):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SPDL_ROOT), str(Path(__file__).parent),
                                                       os.environ.get("PYTHONPATH", "")]))
    env.pop("SPDL_REQUIRE_GPU", None)
    if require:
        env["SPDL_REQUIRE_GPU"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *args],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


@pytest.mark.parametrize("require", [False, True])
def test_require_gpu_turns_gpu_skips_into_failures(tmp_path, require):
    """The conftest hook, on a file of its own: only tests marked gpu change, xfail stays."""
    (tmp_path / "test_cases.py").write_text(_REQUIRE_GPU_CASES)
    # Our conftest as a plugin (-p conftest), so that nothing else of the suite is collected.
    r = _run_pytest(["-p", "conftest", "-v", "test_cases.py"], tmp_path, require)
    out = r.stdout + r.stderr
    outcomes = dict(re.findall(r"^test_cases\.py::(\w+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL)", out, re.M))
    if not require:
        assert r.returncode == 0, out
        assert outcomes == {"test_skipif": "SKIPPED", "test_skip_in_body": "SKIPPED",
                            "test_importorskip": "SKIPPED", "test_xfail": "XFAIL", "test_passes": "PASSED",
                            "test_plain_skip": "SKIPPED"}, out
        return
    assert r.returncode == 1, out
    assert outcomes == {"test_skipif": "ERROR",        # skipif is decided in the setup phase
                        "test_skip_in_body": "FAILED", "test_importorskip": "FAILED",
                        "test_xfail": "XFAIL", "test_passes": "PASSED",
                        "test_plain_skip": "SKIPPED"}, out     # a plain skip stays a skip
    assert "reason D" in out
    for reason in ("no CUDA device: reason A", "torch has no CUDA device: reason B", "spdl_no_such_module_c"):
        assert re.search(r"SPDL_REQUIRE_GPU=1: the GPU test \S+ would have been skipped \((setup|call)\): "
                         + ".*" + re.escape(reason), out), (reason, out)


@pytest.mark.skipif(HAVE_GPU, reason="this machine has a CUDA device: the gpu tests run here")
def test_require_gpu_fails_the_gpu_tests_of_this_machine(tmp_path):
    """pytest tests/test_cuda.py -m gpu with SPDL_REQUIRE_GPU=1, here (no GPU): it fails, naming why."""
    test_file = Path(__file__)
    r = _run_pytest(["-m", "gpu", "-q", str(test_file)], test_file.parent, True)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert not re.search(r"^SKIPPED", out, re.M), out          # no gpu test skipped
    failed = re.findall(r"^(?:FAILED|ERROR) \S+::(\S+)", out, re.M)
    assert any(name.startswith("test_nvjpeg_matches_cpu_path") for name in failed), out
    assert "test_no_device_memory_growth_over_1000_batches" in failed, out
    assert out.count("would have been skipped") >= len(failed), out
    assert "no CUDA device" in out or "could not be loaded" in out, out


# ---------------------------------------------------------------------------
# CUDABuffer over a fake device pointer: nothing CUDA is called

FAKE = 0x7F00_0000_1000


def test_cuda_buffer_cannot_be_built_directly():
    with pytest.raises(TypeError):
        spdl.io.CUDABuffer()


@pytest.mark.parametrize("stream, expected", [(0, 1), (1, 1), (2, 2), (0xABCDEF00, 0xABCDEF00)])
def test_cuda_array_interface(stream, expected):
    buf = _testing.fake_cuda_buffer(FAKE, (2, 4, 5, 3), device_index=1, stream=stream)
    cai = buf.__cuda_array_interface__
    assert cai == {
        "version": 3,
        "shape": (2, 4, 5, 3),
        "typestr": "|u1",
        "data": (FAKE, False),
        "strides": None,
        "stream": expected,
    }
    assert cai["stream"] != 0                    # forbidden by the interface
    assert buf.shape == (2, 4, 5, 3) and buf.dtype == "uint8" and buf.nbytes == 120
    assert buf.device_index == 1 and buf.stream == stream and buf.data_ptr == FAKE
    assert "CUDABuffer(shape=(2, 4, 5, 3)" in repr(buf)


def test_cuda_array_interface_uint16_and_planar():
    buf = _testing.fake_cuda_buffer(FAKE, (3, 3, 7, 9), "uint16", pix_fmt="gray16le")
    cai = buf.__cuda_array_interface__
    assert cai["typestr"] == "<u2" and cai["shape"] == (3, 3, 7, 9)
    assert buf.nbytes == 3 * 3 * 7 * 9 * 2


def test_cuda_array_interface_empty():
    buf = _testing.fake_cuda_buffer(0, (0, 4, 4, 3))
    assert buf.__cuda_array_interface__["data"] == (0, False)
    assert buf.nbytes == 0


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class _DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p),
                ("deleter", ctypes.c_void_p)]


class _DLManagedTensorVersioned(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32),
                ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p),
                ("flags", ctypes.c_uint64), ("dl_tensor", _DLTensor)]


_capi = ctypes.pythonapi
_capi.PyCapsule_GetPointer.restype = ctypes.c_void_p
_capi.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_capi.PyCapsule_GetName.restype = ctypes.c_char_p
_capi.PyCapsule_GetName.argtypes = [ctypes.py_object]


def _tensor(capsule, versioned=False):
    name = _capi.PyCapsule_GetName(capsule)
    ptr = _capi.PyCapsule_GetPointer(capsule, name)
    if versioned:
        return name, _DLManagedTensorVersioned.from_address(ptr)
    return name, _DLManagedTensor.from_address(ptr)


def test_dlpack_device_and_capsule():
    buf = _testing.fake_cuda_buffer(FAKE, (2, 3, 4, 3), device_index=3)
    assert buf.__dlpack_device__() == (2, 3)                      # kDLCUDA
    cap = buf.__dlpack__()
    name, mt = _tensor(cap)
    assert name == b"dltensor"
    t = mt.dl_tensor
    assert (t.device.device_type, t.device.device_id) == (2, 3)
    assert t.data == FAKE and t.byte_offset == 0 and t.ndim == 4
    assert (t.dtype.code, t.dtype.bits, t.dtype.lanes) == (1, 8, 1)
    assert [t.shape[i] for i in range(4)] == [2, 3, 4, 3]
    assert [t.strides[i] for i in range(4)] == [36, 12, 3, 1]    # in elements


def test_dlpack_versioned_capsule():
    buf = _testing.fake_cuda_buffer(FAKE, (5, 2, 3, 7), "uint16", device_index=0)
    cap = buf.__dlpack__(max_version=(1, 1))
    name, mt = _tensor(cap, versioned=True)
    assert name == b"dltensor_versioned"
    assert (mt.major, mt.minor, mt.flags) == (1, 0, 0)
    t = mt.dl_tensor
    assert (t.device.device_type, t.dtype.bits) == (2, 16)
    assert [t.shape[i] for i in range(4)] == [5, 2, 3, 7]
    # An old consumer gets the unversioned capsule.
    assert _tensor(buf.__dlpack__(max_version=(0, 8)))[0] == b"dltensor"


def test_dlpack_empty_buffer_has_null_data():
    buf = _testing.fake_cuda_buffer(0, (0, 2, 2, 3))
    cap = buf.__dlpack__()
    _, mt = _tensor(cap)
    assert mt.dl_tensor.data is None and mt.dl_tensor.shape[0] == 0


@pytest.mark.parametrize("kwargs, exc", [
    ({"stream": 0}, ValueError),
    ({"stream": -2}, ValueError),
    ({"stream": "1"}, TypeError),
    ({"dl_device": (1, 0)}, BufferError),
    ({"dl_device": (2, 1)}, BufferError),
    ({"copy": True}, BufferError),
])
def test_dlpack_refusals(kwargs, exc):
    buf = _testing.fake_cuda_buffer(FAKE, (1, 2, 2, 3))
    with pytest.raises(exc):
        buf.__dlpack__(**kwargs)


@pytest.mark.parametrize("stream", [None, 1, -1])
def test_dlpack_same_stream_needs_no_cuda(stream):
    # The buffer is on the legacy default stream; None and 1 name it too, -1 asks for no sync.
    buf = _testing.fake_cuda_buffer(FAKE, (1, 2, 2, 3), stream=0)
    cap = buf.__dlpack__(stream=stream, dl_device=(2, 0), copy=False)
    assert _tensor(cap)[0] == b"dltensor"


@pytest.mark.skipif(HAVE_GPU, reason="this machine has a CUDA device")
def test_dlpack_other_stream_synchronizes_through_cuda():
    """Another stream needs an event: without a device that is a CUDA error, not a silent export."""
    buf = _testing.fake_cuda_buffer(FAKE, (1, 2, 2, 3), stream=0)
    with pytest.raises(spdl.io.CUDAError):
        buf.__dlpack__(stream=0x5555)


def test_free_called_once_on_dealloc():
    freed = []
    buf = _testing.fake_cuda_buffer(FAKE, (1, 2, 2, 3), free=freed.append)
    cai = buf.__cuda_array_interface__        # the interface does not keep it alive
    del cai
    assert freed == []
    del buf
    gc.collect()
    assert freed == [FAKE]


def test_dlpack_capsule_keeps_buffer_alive_until_released():
    freed = []
    buf = _testing.fake_cuda_buffer(FAKE, (1, 2, 2, 3), free=freed.append)
    caps = [buf.__dlpack__(), buf.__dlpack__(max_version=(1, 0))]
    del buf
    gc.collect()
    assert freed == []
    caps.pop()
    assert freed == []
    caps.pop()                                 # unconsumed capsules call the deleter
    gc.collect()
    assert freed == [FAKE]


def test_dlpack_consumed_capsule_deleter_runs_without_gil():
    """A consumer renames the capsule and later calls the deleter, maybe from another thread."""
    freed = []
    buf = _testing.fake_cuda_buffer(FAKE, (1, 2, 2, 3), free=freed.append)
    cap = buf.__dlpack__()
    _, mt = _tensor(cap)
    _capi.PyCapsule_SetName.argtypes = [ctypes.py_object, ctypes.c_char_p]
    assert _capi.PyCapsule_SetName(cap, b"used_dltensor") == 0
    deleter = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(mt.deleter)
    addr = ctypes.addressof(mt)
    del cap, buf
    gc.collect()
    assert freed == []                         # the consumer still owns it
    t = threading.Thread(target=deleter, args=(addr,))   # ctypes releases the GIL for the call
    t.start()
    t.join()
    gc.collect()
    assert freed == [FAKE]


_FINALIZE_HELPER_C = r"""
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
typedef void (*deleter_t)(void *);
struct call { deleter_t deleter; void *tensor; };
static void say(const char *s) { size_t n = 0; while (s[n]) n++; if (write(1, s, n) < 0) abort(); }
static void *run(void *arg) {
    struct call *c = arg;
    c->deleter(c->tensor);
    say("deleter returned on a new thread\n");
    return NULL;
}
/* deleter(tensor) on a thread Python has never seen, waited for. */
int call_on_new_thread(deleter_t deleter, void *tensor) {
    struct call c = {deleter, tensor};
    pthread_t t;
    if (pthread_create(&t, NULL, run, &c)) return -1;
    return pthread_join(t, NULL);
}
static struct call later[8];
static int n_later;
static void run_later(void) {
    for (int i = 0; i < n_later; i++) later[i].deleter(later[i].tensor);
    say("deleters returned after finalization\n");
}
/* deleter(tensor) from the C library's exit handlers, after Py_Finalize. */
void call_at_exit(deleter_t deleter, void *tensor) {
    if (n_later == 0) atexit(run_later);
    later[n_later].deleter = deleter;
    later[n_later++].tensor = tensor;
}
"""

_FINALIZE_RUN = textwrap.dedent("""
    import ctypes, io, os, sys
    import numpy as np
    from PIL import Image
    import spdl.io
    from spdl.io import _cuda_buffer, _cuda_device, _cuda_lib, _cuda_runtime, _keepalive, _nvjpeg_batch, _nvjpeg_decode, _nvjpeg_lib, _pinned, _testing, _transfer

    helper = ctypes.CDLL(sys.argv[1])
    helper.call_on_new_thread.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    helper.call_at_exit.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    capi = ctypes.pythonapi
    capi.PyCapsule_GetPointer.restype = ctypes.c_void_p
    capi.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    capi.PyCapsule_SetName.argtypes = [ctypes.py_object, ctypes.c_char_p]

    def consume(buf, versioned):
        # As a consumer does: take the tensor, rename the capsule, call the deleter later.
        name = b"dltensor_versioned" if versioned else b"dltensor"
        cap = buf.__dlpack__(max_version=(1, 0)) if versioned else buf.__dlpack__()
        ptr = capi.PyCapsule_GetPointer(cap, name)
        assert capi.PyCapsule_SetName(cap, b"used_" + name) == 0
        deleter = ctypes.c_void_p.from_address(ptr + (16 if versioned else 56)).value
        return deleter, ptr

    png = io.BytesIO()
    Image.fromarray(np.full((6, 8, 3), 90, np.uint8)).save(png, "PNG")
    cpu = spdl.io.load_image_batch([png.getvalue()], width=4, height=4)
    gpu = _testing.fake_cuda_buffer(0x1000, (1, 2, 2, 3))
    during = [consume(cpu, False), consume(gpu, True)]
    for deleter, tensor in [consume(cpu, False), consume(gpu, True), consume(gpu, False)]:
        helper.call_at_exit(deleter, tensor)

    class AtFinalization:
        # A global of __main__: deleted while the interpreter finalizes.
        def __init__(self):
            self.call, self.is_finalizing, self.write = helper.call_on_new_thread, sys.is_finalizing, os.write
        def __del__(self):
            self.write(1, b"finalizing: %d\\n" % self.is_finalizing())
            for deleter, tensor in during:
                self.call(deleter, tensor)      # ctypes lets the GIL go for the call

    hook, keep = AtFinalization(), during
    del cpu, gpu
    print("main done", flush=True)
""")


def test_dlpack_deleters_are_safe_at_and_after_finalization(tmp_path):
    """A consumer may call the deleter while the interpreter finalizes, or after: no GIL then."""
    import shutil

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    pytest.importorskip("PIL")
    (tmp_path / "helper.c").write_text(_FINALIZE_HELPER_C)
    subprocess.run([cc, "-shared", "-fPIC", "-pthread", "-o", str(tmp_path / "helper.so"),
                    str(tmp_path / "helper.c")], check=True, capture_output=True, timeout=120)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", _FINALIZE_RUN, str(tmp_path / "helper.so")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == [
        "main done", "finalizing: 1", "deleter returned on a new thread",
        "deleter returned on a new thread", "deleters returned after finalization"], r.stdout + r.stderr


def test_free_error_is_reported_not_raised():
    seen = []
    old = sys.unraisablehook
    sys.unraisablehook = lambda u: seen.append(u.exc_value)
    try:
        def bad_free(ptr):
            raise RuntimeError(f"cannot free {ptr:#x}")

        buf = _testing.fake_cuda_buffer(FAKE, (1, 1, 1, 3), free=bad_free)
        del buf
        gc.collect()
    finally:
        sys.unraisablehook = old
    assert len(seen) == 1 and "cannot free" in str(seen[0])


# ---------------------------------------------------------------------------
# Allocator plumbing (the device allocation is only recorded, never used)


def test_custom_allocator_called_and_freed_once():
    calls, freed = [], []

    def alloc(size, device, stream):
        calls.append((size, device, stream))
        return FAKE + 256 * len(calls)

    cfg = CUDAConfig(2, stream=0x77, allocator=(alloc, freed.append))
    buf = _testing.alloc_buffer((4, 8, 8, 3), "uint8", cfg, pix_fmt="rgb24")
    assert calls == [(4 * 8 * 8 * 3, 2, 0x77)]
    assert buf.data_ptr == FAKE + 256 and buf.device_index == 2 and buf.stream == 0x77
    assert buf.__cuda_array_interface__["stream"] == 0x77
    del buf
    gc.collect()
    assert freed == [FAKE + 256]


def test_custom_allocator_not_called_for_empty_batch():
    calls = []
    cfg = CUDAConfig(0, allocator=(lambda *a: calls.append(a) or FAKE, lambda p: calls.append(p)))
    buf = _testing.alloc_buffer((0, 8, 8, 3), "uint8", cfg)
    del buf
    gc.collect()
    assert calls == []


@pytest.mark.parametrize("ret, exc", [(0, spdl.io.AllocationError), ("0x10", TypeError),
                                      (None, TypeError), (-5, ValueError)])
def test_custom_allocator_bad_results(ret, exc):
    freed = []
    cfg = CUDAConfig(0, allocator=(lambda *a: ret, freed.append))
    with pytest.raises(exc):
        _testing.alloc_buffer((1, 2, 2, 3), "uint8", cfg)
    gc.collect()
    assert freed == []                          # nothing was handed out, nothing to give back


def test_allocation_error_is_memory_error():
    cfg = CUDAConfig(0, allocator=(lambda *a: 0, lambda p: None))
    with pytest.raises(MemoryError, match="could not allocate"):
        _testing.alloc_buffer((1, 2, 2, 3), "uint8", cfg)


# ---------------------------------------------------------------------------
# The declarations match the CUDA 12 headers (when the wheels ship them)

def _pxd_enums(path):
    out = {}
    for name, value in re.findall(r"^\s+(\w+) = (-?(?:0x)?[0-9a-fA-F]+)\b", path.read_text(), re.M):
        out[name] = int(value, 0)
    return out


def _header_enums(path):
    """NAME -> value of the enumerators (explicit or implicit) and #defines of a C header."""
    text = re.sub(r"/\*.*?\*/|//[^\n]*", "", path.read_text(errors="replace"), flags=re.S)
    out = {}
    for body in re.findall(r"\benum\b[^{;]*\{([^}]*)\}", text):
        nxt = 0
        for item in body.split(","):
            m = re.fullmatch(r"\s*(\w+)\s*(?:=\s*(.+?))?\s*", item)
            if not m:
                continue
            name, value = m.groups()
            if value is not None:
                try:
                    nxt = int(value, 0)
                except ValueError:
                    nxt = None
            if nxt is not None:
                out.setdefault(name, nxt)
                nxt += 1
    for name, value, shift in re.findall(
            r"^\s*#define\s+(\w+)\s+\(?(0x[0-9a-fA-F]+|\d+)(?:\s*<<\s*(\d+))?\)?\s*$", text, re.M):
        out.setdefault(name, int(value, 0) << int(shift or 0))      # NVJPEG_FLAGS_* are "1<<2"
    return out


_PXD_HEADERS = {
    "cuda_runtime.pxd": ["driver_types.h"],
    "cuda_driver.pxd": ["cuda.h"],
    "nvjpeg.pxd": ["nvjpeg.h", "library_types.h"],
    "npp.pxd": ["nppdefs.h"],
}


def _our_pxd(pxd):
    """Our declarations: beside the imported spdl, else in the checkout these tests are in
    (a wheel ships no .pxd)."""
    for base in (SPDL_ROOT, ROOT):
        if (base / "spdl" / "io" / "includes" / pxd).is_file():
            return base / "spdl" / "io" / "includes" / pxd
    pytest.skip(f"no {pxd} here: the installed wheel ships none and no checkout holds these tests")


@pytest.mark.parametrize("pxd", sorted(_PXD_HEADERS))
def test_constants_match_headers(pxd):
    """Our constants match every set of CUDA headers here (CUDA 13 and CUDA 12 wheels, a toolkit)."""
    ours = _pxd_enums(_our_pxd(pxd))
    ours.pop("NVJPEG_MAX_COMPONENT", None)
    assert ours, pxd
    checked = []
    for name, incs in _header_sets().items():
        paths = [_find_header(incs, h) for h in _PXD_HEADERS[pxd]]
        if None in paths:
            continue
        theirs = {}
        for path in paths:
            theirs.update(_header_enums(path))
        missing = sorted(set(ours) - set(theirs))
        assert not missing, f"not in the headers of {name}: {missing}"
        assert {k: theirs[k] for k in ours} == ours, name
        checked.append(name)
    if not checked:
        pytest.skip(f"no CUDA headers with {', '.join(_PXD_HEADERS[pxd])} here (CUDA wheels or toolkit)")


# The NPP headers that declare the functions npp.pxd has pointer types for.
_NPP_FUNCTION_HEADERS = ["nppi_geometry_transforms.h", "nppi_color_conversion.h",
                         "nppi_data_exchange_and_initialization.h"]
# What a parameter type means to the ABI: NPP's typedefs as C types, its enums (passed as an
# int in npp.pxd), an array parameter as the pointer C passes; const dropped (it changes
# nothing in a call).
_NPP_TYPES = {"Npp8u": "unsigned char", "Npp16u": "unsigned short", "Npp32u": "unsigned int",
              "Npp32f": "float", "NppRoundMode": "int", "NppiAxis": "int",
              "NppiInterpolationMode": "int"}


def _abi_type(param, named):
    """The type of one C parameter ("const Npp8u * const aDst[3]" -> "unsigned char**"), its
    name dropped when named."""
    p = re.sub(r"\bconst\b", " ", param).strip()
    arrays = len(re.findall(r"\[\w*\]", p))
    p = re.sub(r"\[\w*\]", "", p).strip()
    if named:
        p = re.sub(r"\s*\b\w+$", "", p)
    for k, v in _NPP_TYPES.items():
        p = re.sub(rf"\b{k}\b", v, p)
    return re.sub(r"\s+", " ", p.replace("*", " * ")).strip().replace(" *", "*") + "*" * arrays


def test_npp_prototypes_match_headers():
    """Each NPP function pointer type of npp.pxd has the parameters of the real prototype in
    every set of CUDA headers here (CUDA 13 and CUDA 12 wheels, a toolkit): the same count,
    and types the same to the ABI."""
    pxd = _our_pxd("npp.pxd").read_text()
    ours = {name: [_abi_type(a, True) for a in args.split(",")]
            for name, args in re.findall(r"ctypedef NppStatus \(\*(\w+)_t\)\((.*?)\)\s*noexcept nogil",
                                         pxd, re.S)}
    assert {"nppiLUTPalette_8u32u_C1R_Ctx", "nppiCopy_8u_C3P3R_Ctx", "nppiConvert_32f16u_C1R_Ctx",
            "nppiResize_8u_C3R_Ctx"} <= set(ours), sorted(ours)
    checked = []
    for name, incs in _header_sets().items():
        paths = [_find_header(incs, h) for h in _NPP_FUNCTION_HEADERS]
        if None in paths:
            continue
        text = "".join(re.sub(r"/\*.*?\*/|//[^\n]*", "", p.read_text(errors="replace"), flags=re.S)
                       for p in paths)
        for fn, want in ours.items():
            m = re.search(rf"\bNppStatus\s+{fn}\s*\((.*?)\)\s*;", text, re.S)
            assert m, f"{fn} is not declared in the headers of {name}"
            theirs = [_abi_type(a, True) for a in m.group(1).split(",")]
            assert theirs == want, (name, fn, theirs, want)
        checked.append(name)
    if not checked:
        pytest.skip(f"no CUDA headers with {', '.join(_NPP_FUNCTION_HEADERS)} here (CUDA wheels or toolkit)")


_LAYOUT_PYX = '''
# cython: language_level=3
from spdl.io.includes cimport nvjpeg as nv, npp as np_
cdef extern from "nvjpeg.h":
    ctypedef struct real_nvjpegImage_t "nvjpegImage_t":
        unsigned char *channel[4]
        size_t pitch[4]
cdef extern from "nppdefs.h":
    ctypedef struct real_NppiSize "NppiSize":
        int width
        int height
    ctypedef struct real_NppiRect "NppiRect":
        int x
        int y
        int width
        int height
    ctypedef struct real_NppStreamContext "NppStreamContext":
        void *hStream
        int nCudaDeviceId
        int nMultiProcessorCount
        int nMaxThreadsPerMultiProcessor
        int nMaxThreadsPerBlock
        size_t nSharedMemPerBlock
        int nCudaDevAttrComputeCapabilityMajor
        int nCudaDevAttrComputeCapabilityMinor
        unsigned int nStreamFlags
        int nReserved0

def layouts():
    cdef nv.nvjpegImage_t a1
    cdef real_nvjpegImage_t b1
    cdef np_.NppStreamContext a2
    cdef real_NppStreamContext b2
    cdef np_.NppiRect a3
    cdef real_NppiRect b3
    cdef np_.NppiSize a4
    cdef real_NppiSize b4
    return {
        "nvjpegImage_t": ([sizeof(a1), <char*>&a1.pitch[0] - <char*>&a1],
                          [sizeof(b1), <char*>&b1.pitch[0] - <char*>&b1]),
        "NppStreamContext": (
            [sizeof(a2), <char*>&a2.nCudaDeviceId - <char*>&a2,
             <char*>&a2.nMaxThreadsPerBlock - <char*>&a2, <char*>&a2.nSharedMemPerBlock - <char*>&a2,
             <char*>&a2.nCudaDevAttrComputeCapabilityMinor - <char*>&a2,
             <char*>&a2.nStreamFlags - <char*>&a2, <char*>&a2.nReserved0 - <char*>&a2],
            [sizeof(b2), <char*>&b2.nCudaDeviceId - <char*>&b2,
             <char*>&b2.nMaxThreadsPerBlock - <char*>&b2, <char*>&b2.nSharedMemPerBlock - <char*>&b2,
             <char*>&b2.nCudaDevAttrComputeCapabilityMinor - <char*>&b2,
             <char*>&b2.nStreamFlags - <char*>&b2, <char*>&b2.nReserved0 - <char*>&b2]),
        "NppiRect": ([sizeof(a3), <char*>&a3.height - <char*>&a3],
                     [sizeof(b3), <char*>&b3.height - <char*>&b3]),
        "NppiSize": ([sizeof(a4)], [sizeof(b4)]),
    }
'''

# nvcc's crt/ headers are not in the runtime wheel; the structs checked here need none of them.
_STUB_HOST_DEFINES = "\n".join(f"#define {m}" for m in (
    "__host__", "__device__", "__device_builtin__", "__device_builtin_texture_type__",
    "__device_builtin_surface_type__", "__cudart_builtin__", "CUDARTAPI", "CUDARTAPI_CDECL",
    "__dv(v)", "CUDART_CB", "__builtin_align__(a) __attribute__((aligned(a)))",
    "__align__(n) __attribute__((aligned(n)))", "__inline_hint__", "__location__(a)",
    "__annotate__(a)", "__forceinline__ inline")) + "\n"


@pytest.mark.parametrize("headers", sorted(_header_sets()) or ["none"])
def test_struct_layouts_match_headers(tmp_path, headers):
    """nvjpegImage_t and NppStreamContext (passed by value) laid out as the real headers say."""
    incs = _header_sets().get(headers, [])
    if None in [_find_header(incs, h) for h in ("cuda_runtime_api.h", "nvjpeg.h", "nppdefs.h")]:
        pytest.skip(f"no CUDA runtime, nvJPEG and NPP headers together in {headers}")
    pytest.importorskip("Cython")
    stub = tmp_path / "stub" / "crt"
    stub.mkdir(parents=True)
    (stub / "host_defines.h").write_text(_STUB_HOST_DEFINES)
    (stub / "host_config.h").write_text("\n")
    (tmp_path / "spdl_layout.pyx").write_text(_LAYOUT_PYX)
    (tmp_path / "setup.py").write_text(textwrap.dedent(f"""
        from setuptools import Extension, setup
        from Cython.Build import cythonize
        inc = {[str(tmp_path / "stub")] + [str(i) for i in incs]!r}
        setup(ext_modules=cythonize([Extension("spdl_layout", ["spdl_layout.pyx"], include_dirs=inc)],
                                    include_path={[str(SPDL_ROOT)]!r}, quiet=True))
    """))
    r = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace", "-q"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0 and ("gcc" in r.stderr and "not found" in r.stderr):
        pytest.skip("no C compiler")
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([sys.executable, "-c", "import spdl_layout; print(spdl_layout.layouts())"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    layouts = eval(r.stdout)
    for name, (ours, theirs) in layouts.items():
        assert ours == theirs, name


# ---------------------------------------------------------------------------
# The whole pipeline against a host-memory fake of libcudart / libnvjpeg / NPP
#
# The fake libraries (C, built here with the system compiler) keep "device"
# memory in malloc'd host memory, copy with memcpy, and count the calls; the
# fake nvJPEG "decodes" each JPEG as a constant colour from its size, and the
# fake NPP resizes by nearest neighbour. This exercises, without a GPU, what
# the real libraries cannot show here: the loader filling the tables from
# real shared objects, transfer_buffer and its keep-alive, the page-locked
# block cache, DLPack's stream handoff, freeing through each allocator, and
# the nvJPEG orchestration (grouping, per-image retry, CPU fallback, row
# placement, padding, pixel formats, strict/non-strict, threads). It runs twice:
# with a fake libcuda.so.1 (the driver API saves and restores each thread's
# context; cudaSetDevice is never called) and without one (the fallback to
# cudaGetDevice / cudaSetDevice).

FAKE_CUDA_C = r"""/* A host-memory stand-in for libcudart / libnvjpeg / libnppc / libnppig / libnppicc /
 * libnppidei, for tests on machines without a GPU: "device" memory is malloc'd, copies are
 * memcpy, events are always complete. Built as one shared object per library from this one
 * file (-DFAKE_CUDART, -DFAKE_NVJPEG, ...). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef void (*fake_logger_t)(const char *, const void *, const void *);
static fake_logger_t fake_logger;
EXPORT void fake_set_logger(fake_logger_t f) { fake_logger = f; }
#define FLOG(name, a, b) do { if (fake_logger) fake_logger(name, (const void *)(a), (const void *)(b)); } while (0)

#ifdef FAKE_CUDART

#include <stdio.h>
EXPORT char fake_log[1 << 20];
static size_t fake_log_len;
EXPORT void fake_log_add(const char *name, const void *a, const void *b) {
    if (fake_log_len + 80 < sizeof fake_log)
        fake_log_len += snprintf(fake_log + fake_log_len, 80, "%s:%lx:%lx;", name,
                                 (unsigned long)(uintptr_t)a, (unsigned long)(uintptr_t)b);
}
EXPORT void fake_log_reset(void) { fake_log_len = 0; fake_log[0] = 0; }
EXPORT size_t fake_free_mem = (size_t)1 << 30;
EXPORT int fake_host_calls_with_gil;
static int (*ctx_probe)(void);
EXPORT void fake_set_ctx_probe(int (*f)(void)) { ctx_probe = f; }
static void host_call(const char *name, const void *p) {
    int (*gil)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "PyGILState_Check");
    if (!gil || gil()) fake_host_calls_with_gil++;
    FLOG(name, p, (intptr_t)(ctx_probe ? ctx_probe() : -9));
}
static __thread int current = 0;
EXPORT long fake_counts[32];   /* see the enum below */
enum { C_MALLOC, C_FREE, C_HOSTALLOC, C_FREEHOST, C_MEMCPY, C_MEMSET, C_WAIT, C_RECORD,
       C_DEVSYNC, C_STREAMSYNC, C_EVCREATE, C_EVDESTROY, C_SETDEVICE, C_PAGEABLE_H2D,
       C_MALLOCASYNC, C_FREEASYNC, C_EVSYNC };
EXPORT int fake_fail[32];      /* a call whose counter is set here fails (cudaErrorUnknown) */
#define FAIL_IF_ASKED(c) do { if (fake_fail[c]) return 999; } while (0)
EXPORT int fake_pools = 1;     /* cudaDevAttrMemoryPoolsSupported */
/* 1 from a stream-ordered allocation (cudaMallocAsync, or fake_mark_unsynced from a test's
 * allocator) until the host next waits for the stream or the device: the fake nvJPEG's
 * hardware backend counts the decodes it is asked for while this is set. */
EXPORT int fake_unsynced;
EXPORT void fake_mark_unsynced(void) { fake_unsynced = 1; }
EXPORT unsigned fake_event_flags[4096];   /* the flags of each cudaEventCreateWithFlags */
EXPORT int fake_devcount_error, fake_null_names;
static struct { char *p; size_t n; } pinned[256];       /* live cudaHostAlloc blocks */
static int pinned_block(const void *s, size_t n) {
    for (int i = 0; i < 256; i++)
        if (pinned[i].p && (const char *)s >= pinned[i].p && (const char *)s + n <= pinned[i].p + pinned[i].n)
            return 1;
    return 0;
}
EXPORT int cudaGetDeviceCount(int *n) { if (fake_devcount_error) return fake_devcount_error; *n = 2; return 0; }
EXPORT int cudaGetDevice(int *d) { *d = current; return 0; }
EXPORT int cudaSetDevice(int d) { fake_counts[C_SETDEVICE]++; if (d < 0 || d >= 2) return 101; current = d; return 0; }
/* The live blocks of cudaMalloc / cudaMallocAsync: fake_device_block says whether n bytes at p
 * lie in one (1), in a cudaHostAlloc block (-1) or neither (0: a caller's allocator, or
 * pageable memory); the fake NPP checks that what must be device memory is. */
static struct { char *p; size_t n; } dev_blocks[4096];
static void dev_add(void *p, size_t n) {
    for (int i = 0; p && i < 4096; i++) if (!dev_blocks[i].p) { dev_blocks[i].p = p; dev_blocks[i].n = n; break; }
}
static void dev_del(void *p) { for (int i = 0; i < 4096; i++) if (dev_blocks[i].p == p) dev_blocks[i].p = NULL; }
EXPORT int fake_device_block(const void *s, size_t n) {
    for (int i = 0; i < 4096; i++)
        if (dev_blocks[i].p && (const char *)s >= dev_blocks[i].p && (const char *)s + n <= dev_blocks[i].p + dev_blocks[i].n)
            return 1;
    return pinned_block(s, n) ? -1 : 0;
}
EXPORT int cudaMalloc(void **p, size_t n) { *p = malloc(n); dev_add(*p, n); fake_counts[C_MALLOC]++; return *p ? 0 : 2; }
EXPORT int cudaFree(void *p) { FLOG("free", p, 0); dev_del(p); free(p); fake_counts[C_FREE]++; return 0; }
EXPORT int cudaMallocAsync(void **p, size_t n, void *st) {
    fake_counts[C_MALLOCASYNC]++; *p = malloc(n); dev_add(*p, n); fake_unsynced = 1; FLOG("mallocasync", *p, st); return *p ? 0 : 2;
}
EXPORT int cudaFreeAsync(void *p, void *st) { FLOG("freeasync", p, st); dev_del(p); free(p); fake_counts[C_FREEASYNC]++; return 0; }
EXPORT int cudaHostAlloc(void **p, size_t n, unsigned f) { FAIL_IF_ASKED(C_HOSTALLOC); host_call("hostalloc", 0);
    *p = malloc(n); fake_counts[C_HOSTALLOC]++;
    for (int i = 0; *p && i < 256; i++) if (!pinned[i].p) { pinned[i].p = *p; pinned[i].n = n; break; }
    return *p ? 0 : 2;
}
EXPORT int cudaFreeHost(void *p) { host_call("freehost", p);
    for (int i = 0; i < 256; i++) if (pinned[i].p == p) pinned[i].p = NULL;
    free(p); fake_counts[C_FREEHOST]++; return 0;
}
EXPORT int cudaMemcpyAsync(void *d, const void *s, size_t n, int k, void *st) {
    FAIL_IF_ASKED(C_MEMCPY);
    if (k == 1 && !pinned_block(s, n)) fake_counts[C_PAGEABLE_H2D]++;
    memcpy(d, s, n); fake_counts[C_MEMCPY]++; return 0;
}
EXPORT int cudaMemsetAsync(void *d, int v, size_t n, void *st) { memset(d, v, n); fake_counts[C_MEMSET]++; return 0; }
EXPORT int cudaStreamCreateWithFlags(void **s, unsigned f) { *s = malloc(8); return 0; }
EXPORT int cudaStreamDestroy(void *s) { free(s); return 0; }
EXPORT int cudaStreamSynchronize(void *s) { FLOG("streamsync", 0, s);
    FAIL_IF_ASKED(C_STREAMSYNC); fake_counts[C_STREAMSYNC]++; fake_unsynced = 0; return 0;
}
EXPORT int cudaDeviceSynchronize(void) { FLOG("devsync", 0, 0); fake_counts[C_DEVSYNC]++; fake_unsynced = 0; return 0; }
EXPORT int cudaEventCreateWithFlags(void **e, unsigned f) {
    FAIL_IF_ASKED(C_EVCREATE);
    if (fake_counts[C_EVCREATE] < 4096) fake_event_flags[fake_counts[C_EVCREATE]] = f;
    *e = malloc(8); fake_counts[C_EVCREATE]++; return 0;
}
EXPORT int cudaEventRecord(void *e, void *s) { FLOG("evrec", e, s); fake_counts[C_RECORD]++; return 0; }
EXPORT int cudaEventQuery(void *e) { return 0; }
EXPORT int cudaEventSynchronize(void *e) { FLOG("evsync", e, 0); FAIL_IF_ASKED(C_EVSYNC); fake_counts[C_EVSYNC]++; return 0; }
EXPORT int cudaEventDestroy(void *e) { free(e); fake_counts[C_EVDESTROY]++; return 0; }
EXPORT int cudaStreamWaitEvent(void *s, void *e, unsigned f) { FLOG("wait", e, s); fake_counts[C_WAIT]++; return 0; }
EXPORT int cudaStreamGetFlags(void *s, unsigned *f) { *f = 0; return 0; }
EXPORT int cudaDeviceGetAttribute(int *v, int a, int d) { *v = a == 115 ? fake_pools : 64; return 0; }
EXPORT int cudaRuntimeGetVersion(int *v) { *v = 12000; return 0; }
EXPORT int cudaDriverGetVersion(int *v) { *v = 12000; return 0; }
EXPORT const char *cudaGetErrorName(int e) { return fake_null_names ? NULL : "cudaErrorFake"; }
EXPORT const char *cudaGetErrorString(int e) { return fake_null_names ? NULL : "fake error"; }
EXPORT int cudaGetLastError(void) { return 0; }
EXPORT int cudaMemGetInfo(size_t *f, size_t *t) { *f = fake_free_mem; *t = 1 << 30; return 0; }
#endif

#ifdef FAKE_CUDA_DRIVER
/* libcuda.so.1: one context per thread, two primary contexts, and a caller's own context. */
typedef struct { int device, primary; } ctx_t;
static ctx_t primaries[2] = {{0, 1}, {1, 1}}, user_ctx = {0, 0};
static __thread ctx_t *current_ctx = NULL;
static int inited;
EXPORT long fake_retains[2];     /* cuDevicePrimaryCtxRetain per device */
EXPORT int cuInit(unsigned f) { inited = 1; return 0; }
EXPORT int cuDeviceGetCount(int *n) { if (!inited) return 3; *n = 2; return 0; }
EXPORT int cuDeviceGet(int *d, int ordinal) { if (!inited) return 3; if (ordinal < 0 || ordinal >= 2) return 101; *d = ordinal; return 0; }
EXPORT int cuDevicePrimaryCtxRetain(void **pctx, int dev) {
    if (!inited) return 3; if (dev < 0 || dev >= 2) return 101;
    fake_retains[dev]++; *pctx = &primaries[dev]; return 0;
}
EXPORT int cuCtxGetCurrent(void **pctx) { if (!inited) return 3; *pctx = current_ctx; return 0; }
EXPORT int cuCtxSetCurrent(void *ctx) { if (!inited) return 3; current_ctx = ctx; return 0; }
EXPORT int cuGetErrorName(int e, const char **s) { *s = "CUDA_ERROR_FAKE"; return 0; }
/* For the tests: bind the caller's own context; which one is current (-1 none, -2 the caller's, else the device). */
EXPORT void fake_bind_user_ctx(void) { current_ctx = &user_ctx; }
EXPORT int fake_current(void) { return !current_ctx ? -1 : !current_ctx->primary ? -2 : current_ctx->device; }
#endif

#ifdef FAKE_NVJPEG
typedef struct { unsigned char *channel[4]; size_t pitch[4]; } nvjpegImage_t;
static int fmt_of_batch, batch_size;
EXPORT long fake_nvjpeg_batched_calls;
/* With FAKE_NVJPEG_HW set in the environment there is a hardware backend: it takes every
 * JPEG without a FAKE_NOHW comment, and fails those with a FAKE_HW_FAIL one (which the
 * hybrid backend decodes). A handle is its backend; a JPEG stream, the data parsed last. */
EXPORT long fake_hw_calls, fake_hw_images, fake_hy_images, fake_hw_unsynced;
typedef struct { const unsigned char *d; size_t n; } jstream_t;
static int *rt_unsynced(void) {         /* the fake runtime's fake_unsynced, loaded beside us */
    static int *p;
    Dl_info info;
    char path[4096];
    if (!p && dladdr((void *)rt_unsynced, &info) && info.dli_fname && strlen(info.dli_fname) < 4000) {
        strcpy(path, info.dli_fname);
        char *slash = strrchr(path, '/');
        strcpy(slash ? slash + 1 : path, "libcudart.so.12");
        void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
        if (h) p = (int *)dlsym(h, "fake_unsynced");
    }
    return p;
}
/* width, height, components from the SOF0/SOF2 segment. */
static int sof(const unsigned char *d, size_t n, int *w, int *h, int *nc) {
    size_t i = 2;
    while (i + 9 < n) {
        if (d[i] != 0xFF) return -1;
        unsigned m = d[i + 1], len = (d[i + 2] << 8) | d[i + 3];
        if (m == 0xC0 || m == 0xC1 || m == 0xC2) {
            *h = (d[i + 5] << 8) | d[i + 6]; *w = (d[i + 7] << 8) | d[i + 8]; *nc = d[i + 9];
            return 0;
        }
        i += 2 + len;
    }
    return -1;
}
static int tagged(const unsigned char *d, size_t n, const char *tag) {   /* a COM segment saying tag */
    size_t k = strlen(tag);
    for (size_t i = 0; i + k <= n; i++) if (!memcmp(d + i, tag, k)) return 1;
    return 0;
}
static int marked(const unsigned char *d, size_t n) { return tagged(d, n, "FAKE_FAIL"); }
EXPORT int nvjpegGetProperty(int t, int *v) { *v = t == 0 ? 12 : 0; return 0; }
EXPORT int nvjpegCreateEx(int backend, void *a, void *b, unsigned f, void **h) {
    if (backend == 3 && !getenv("FAKE_NVJPEG_HW"))
        return 7;                          /* no hardware decoder: NVJPEG_STATUS_ARCH_MISMATCH */
    int *handle = malloc(sizeof(int));
    *handle = backend; *h = handle; return 0;
}
EXPORT int nvjpegDestroy(void *h) { free(h); return 0; }
EXPORT int nvjpegJpegStateCreate(void *h, void **s) { *s = malloc(8); return 0; }
EXPORT int nvjpegJpegStateDestroy(void *s) { free(s); return 0; }
EXPORT int nvjpegJpegStreamCreate(void *h, void **s) { *s = calloc(1, sizeof(jstream_t)); return 0; }
EXPORT int nvjpegJpegStreamDestroy(void *s) { free(s); return 0; }

EXPORT long fake_parse_full, fake_parse_header;
EXPORT int nvjpegJpegStreamParseHeader(void *h, const unsigned char *d, size_t n, void *s) {
    fake_parse_header++; ((jstream_t *)s)->d = d; ((jstream_t *)s)->n = n; return 0;
}
EXPORT int nvjpegJpegStreamParse(void *h, const unsigned char *d, size_t n, int a, int b, void *s) { fake_parse_full++;
    ((jstream_t *)s)->d = d; ((jstream_t *)s)->n = n; return 0;
}
EXPORT int nvjpegDecodeBatchedSupported(void *h, void *s, int *r) {
    jstream_t *js = s;
    *r = (*(int *)h == 3 && !tagged(js->d, js->n, "FAKE_NOHW")) ? 0 : 1; return 0;
}
EXPORT int nvjpegGetImageInfo(void *h, const unsigned char *d, size_t n, int *nc, int *css, int *w, int *hh) {
    if (sof(d, n, w, hh, nc)) return 3;
    *css = *nc == 1 ? 6 : 2;
    return 0;
}
EXPORT int nvjpegDecodeBatchedInitialize(void *h, void *s, int bs, int t, int fmt) {
    batch_size = bs; fmt_of_batch = fmt; return 0;
}
/* "Decodes" each image as a constant colour (R, G, B) = (v, v + 1, v + 2), v = 30 + (w + h) % 200,
 * or, with a FAKE_GRADIENT comment, as (x % 256, y % 256, v) at column x, row y (so that crops
 * and flips show); a JPEG with a FAKE_FAIL comment fails the whole call, as a corrupt one fails
 * nvJPEG's. */
EXPORT int nvjpegDecodeBatched(void *h, void *s, const unsigned char *const *data, const size_t *len,
                               nvjpegImage_t *dst, void *stream) {
    int w, hh, nc, j, x, y, c, hw = *(int *)h == 3;
    fake_nvjpeg_batched_calls++; FLOG(hw ? "hwdec" : "hydec", dst[0].channel[0], stream);
    if (hw) {
        int *unsynced = rt_unsynced();
        fake_hw_calls++;
        if (!unsynced || *unsynced) fake_hw_unsynced++;
    }
    for (j = 0; j < batch_size; j++)
        if (marked(data[j], len[j]) || (hw && tagged(data[j], len[j], "FAKE_HW_FAIL"))) return 3;
    if (hw) fake_hw_images += batch_size; else fake_hy_images += batch_size;
    for (j = 0; j < batch_size; j++) {
        if (sof(data[j], len[j], &w, &hh, &nc)) return 3;
        int v = 30 + (w + hh) % 200, grad = tagged(data[j], len[j], "FAKE_GRADIENT");
        for (y = 0; y < hh; y++)
            for (x = 0; x < w; x++)
                for (c = 0; c < 3; c++) {
                    int val = grad ? (c == 0 ? x % 256 : c == 1 ? y % 256 : v) : v + c;
                    int val2 = grad ? (c == 2 ? x % 256 : c == 1 ? y % 256 : v) : v + 2 - c;
                    if (fmt_of_batch == 3)        /* NVJPEG_OUTPUT_RGB, planar */
                        dst[j].channel[c][y * dst[j].pitch[c] + x] = val;
                    else if (fmt_of_batch == 5)   /* RGBI */
                        dst[j].channel[0][y * dst[j].pitch[0] + 3 * x + c] = val;
                    else                          /* BGRI */
                        dst[j].channel[0][y * dst[j].pitch[0] + 3 * x + c] = val2;
                }
    }
    return 0;
}
#endif

#ifdef FAKE_NPPC
typedef struct { int major, minor, build; } NppLibraryVersion;
static const NppLibraryVersion version = {12, 0, 0};
EXPORT const NppLibraryVersion *nppGetLibVersion(void) { return &version; }
#endif

#if defined(FAKE_NPPIG) || defined(FAKE_NPPICC) || defined(FAKE_NPPIDEI)
typedef struct { int width, height; } NppiSize;
typedef struct { int x, y, width, height; } NppiRect;
typedef struct { void *hStream; int nCudaDeviceId, nMultiProcessorCount, nMaxThreadsPerMultiProcessor,
                 nMaxThreadsPerBlock; size_t nSharedMemPerBlock; int major, minor;
                 unsigned nStreamFlags; int nReserved0; } NppStreamContext;
/* Every NPP call of the conversion (libnppicc, libnppidei), in call order: which function
 * (1 LUTPalette_8u32u_C1R, 2 Copy_8u_C3P3R, 3 Copy_32f_P3C3R, 4 Copy_16u_P3C3R,
 * 5 Convert_32f16u_C1R), ROI width and height, source and destination steps in bytes, and
 * the last argument (nBitSize, the round mode, or 0); fake_npp_conv_reset clears. The calls
 * of both libraries go into libnppicc's record (found with dlsym). */
typedef struct { int fn, w, h, sstep, dstep, extra; unsigned table[256]; int table_on_device; } conv_call_t;
#endif

#ifdef FAKE_NPPICC
EXPORT conv_call_t fake_conv[4096];
EXPORT long fake_nconv;
EXPORT void fake_npp_conv_reset(void) { fake_nconv = 0; }
#endif

#if defined(FAKE_NPPICC) || defined(FAKE_NPPIDEI)
#include <math.h>
static void *lib_sym(const char *soname, const char *name) {   /* a symbol of a fake loaded beside us */
    Dl_info info;
    char path[4096];
    if (!dladdr((void *)lib_sym, &info) || !info.dli_fname || strlen(info.dli_fname) > 4000) return NULL;
    strcpy(path, info.dli_fname);
    char *slash = strrchr(path, '/');
    strcpy(slash ? slash + 1 : path, soname);
    void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    return h ? dlsym(h, name) : NULL;
}
static conv_call_t *record_conv(int fn, NppiSize roi, int sstep, int dstep, int extra) {
    conv_call_t *calls = lib_sym("libnppicc.so.12", "fake_conv");
    long *n = lib_sym("libnppicc.so.12", "fake_nconv");
    if (!calls || !n) return NULL;
    conv_call_t *c = *n < 4096 ? &calls[*n] : NULL;
    (*n)++;
    if (c) { c->fn = fn; c->w = roi.width; c->h = roi.height; c->sstep = sstep; c->dstep = dstep; c->extra = extra; }
    return c;
}
static int bad_roi(NppiSize roi, int sstep, int sbytes, int dstep, int dbytes) {
    if (roi.width < 1 || roi.height < 1) return -1000;              /* NPP_SIZE_ERROR territory */
    if (sstep < roi.width * sbytes || dstep < roi.width * dbytes) return -14;    /* NPP_STEP_ERROR */
    return 0;
}
#endif

#ifdef FAKE_NPPICC
/* Each sample's nBitSize low bits index pTable, which must be device memory ("this is a device
 * memory pointer", nppi_color_conversion.h): recorded, and refused in page-locked host memory. */
EXPORT int nppiLUTPalette_8u32u_C1R_Ctx(const unsigned char *src, int sstep, unsigned *dst, int dstep,
                                        NppiSize roi, const unsigned *table, int bits, NppStreamContext ctx) {
    int (*on_device)(const void *, size_t) = lib_sym("libcudart.so.12", "fake_device_block");
    int bad = bad_roi(roi, sstep, 1, dstep, 4);
    if (bad) return bad;
    if (bits < 1 || bits > 8) return -107;                          /* NPP_LUT_PALETTE_BITSIZE_ERROR */
    conv_call_t *c = record_conv(1, roi, sstep, dstep, bits);
    int dev = on_device ? on_device(table, sizeof(unsigned) << bits) : 0;
    if (c) { c->table_on_device = dev; memcpy(c->table, table, sizeof(unsigned) << bits); }
    if (dev < 0) return -1000;          /* page-locked host memory: a kernel cannot read it so */
    for (int y = 0; y < roi.height; y++)
        for (int x = 0; x < roi.width; x++)
            *(unsigned *)((char *)dst + (size_t)y * dstep + 4 * x) = table[src[(size_t)y * sstep + x] & ((1 << bits) - 1)];
    return 0;
}
#endif

#ifdef FAKE_NPPIDEI
EXPORT int nppiCopy_8u_C3P3R_Ctx(const unsigned char *src, int sstep, unsigned char *const dst[3], int dstep,
                                 NppiSize roi, NppStreamContext ctx) {
    int bad = bad_roi(roi, sstep, 3, dstep, 1);
    if (bad) return bad;
    record_conv(2, roi, sstep, dstep, 0);
    for (int y = 0; y < roi.height; y++)
        for (int x = 0; x < roi.width; x++)
            for (int c = 0; c < 3; c++) dst[c][(size_t)y * dstep + x] = src[(size_t)y * sstep + 3 * x + c];
    return 0;
}
static int planar_to_packed(int fn, const void *const src[3], int sstep, void *dst, int dstep, NppiSize roi, int size) {
    int bad = bad_roi(roi, sstep, size, dstep, 3 * size);
    if (bad) return bad;
    record_conv(fn, roi, sstep, dstep, 0);
    for (int y = 0; y < roi.height; y++)
        for (int x = 0; x < roi.width; x++)
            for (int c = 0; c < 3; c++)
                memcpy((char *)dst + (size_t)y * dstep + (3 * x + c) * size, (const char *)src[c] + (size_t)y * sstep + x * size, size);
    return 0;
}
EXPORT int nppiCopy_32f_P3C3R_Ctx(const float *const src[3], int sstep, float *dst, int dstep, NppiSize roi,
                                  NppStreamContext ctx) {
    return planar_to_packed(3, (const void *const *)src, sstep, dst, dstep, roi, 4);
}
EXPORT int nppiCopy_16u_P3C3R_Ctx(const unsigned short *const src[3], int sstep, unsigned short *dst, int dstep,
                                  NppiSize roi, NppStreamContext ctx) {
    return planar_to_packed(4, (const void *const *)src, sstep, dst, dstep, roi, 2);
}
/* Rounded by the mode (0 nearest even, 1 half away from zero, 2 toward zero), saturated. */
EXPORT int nppiConvert_32f16u_C1R_Ctx(const float *src, int sstep, unsigned short *dst, int dstep, NppiSize roi,
                                      int mode, NppStreamContext ctx) {
    int bad = bad_roi(roi, sstep, 4, dstep, 2);
    if (bad) return bad;
    if (mode < 0 || mode > 2) return -1000;
    record_conv(5, roi, sstep, dstep, mode);
    for (int y = 0; y < roi.height; y++)
        for (int x = 0; x < roi.width; x++) {
            float v = *(const float *)((const char *)src + (size_t)y * sstep + 4 * x);
            double r = mode == 0 ? nearbyint(v) : mode == 1 ? round(v) : trunc(v);
            *(unsigned short *)((char *)dst + (size_t)y * dstep + 2 * x) = r < 0 ? 0 : r > 65535 ? 65535 : (unsigned short)r;
        }
    return 0;
}
#endif

#ifdef FAKE_NPPIG
EXPORT long fake_npp_calls, fake_npp_small;
EXPORT int fake_npp_last_interp;
/* Each resize's source ROI and destination size (x, y, w, h, dst w, dst h), and each mirror's
 * (the row's address, step, width, height, axis), in call order; fake_npp_record_reset clears. */
EXPORT int fake_npp_rois[4096][6];
EXPORT long fake_npp_nrois;
EXPORT long long fake_mirrors[4096][5];
EXPORT long fake_nmirrors;
EXPORT void fake_npp_record_reset(void) { fake_npp_nrois = fake_nmirrors = 0; }
static void record_roi(NppiRect sr, NppiSize ds) {
    if (fake_npp_nrois < 4096) {
        int *r = fake_npp_rois[fake_npp_nrois];
        r[0] = sr.x; r[1] = sr.y; r[2] = sr.width; r[3] = sr.height; r[4] = ds.width; r[5] = ds.height;
    }
    fake_npp_nrois++;
}
/* The source ROI must lie inside the source (spdl.io passes only such boxes). */
static int roi_inside(NppiSize ss, NppiRect sr) {
    return sr.x >= 0 && sr.y >= 0 && sr.width >= 1 && sr.height >= 1
           && sr.x + sr.width <= ss.width && sr.y + sr.height <= ss.height;
}
/* As NPP: NPP_SIZE_ERROR for a source under 2 pixels; and, for the tests, a 77x33 source
 * fails as a kernel failure would (NPP_CUDA_KERNEL_EXECUTION_ERROR). */
static int npp_refuses(NppiSize ss) {
    if (ss.width < 2 || ss.height < 2) { fake_npp_small++; return -6; }
    if (ss.width == 77 && ss.height == 33) return -1000;
    return 0;
}
/* Nearest neighbour from the source ROI sr onto the whole ds. */
static void nn(const unsigned char *src, int sstep, NppiRect sr, unsigned char *dst, int dstep,
               NppiSize ds, int px) {
    for (int y = 0; y < ds.height; y++)
        for (int x = 0; x < ds.width; x++)
            memcpy(dst + y * dstep + x * px,
                   src + (sr.y + y * sr.height / ds.height) * sstep + (sr.x + x * sr.width / ds.width) * px, px);
}
EXPORT int nppiResize_8u_C3R_Ctx(const unsigned char *src, int sstep, NppiSize ss, NppiRect sr,
                                 unsigned char *dst, int dstep, NppiSize ds, NppiRect dr, int interp,
                                 NppStreamContext ctx) {
    if (!roi_inside(ss, sr)) return -1000;
    if (dr.x || dr.y || dr.width != ds.width || dr.height != ds.height) return -1000;
    if (sstep < 3 * ss.width || dstep < 3 * ds.width) return -14;
    int refused = npp_refuses(ss);
    if (refused) return refused;
    fake_npp_calls++; FLOG("npp", ctx.hStream, 0); fake_npp_last_interp = interp;
    record_roi(sr, ds);
    nn(src, sstep, sr, dst, dstep, ds, 3);
    return 0;
}
EXPORT int nppiResize_8u_P3R_Ctx(const unsigned char **src, int sstep, NppiSize ss, NppiRect sr,
                                 unsigned char **dst, int dstep, NppiSize ds, NppiRect dr, int interp,
                                 NppStreamContext ctx) {
    if (!roi_inside(ss, sr) || dr.x || dr.y || sstep < ss.width || dstep < ds.width) return -1000;
    int refused = npp_refuses(ss);
    if (refused) return refused;
    fake_npp_calls++; FLOG("npp", ctx.hStream, 0); fake_npp_last_interp = interp;
    record_roi(sr, ds);
    for (int c = 0; c < 3; c++) nn(src[c], sstep, sr, dst[c], dstep, ds, 1);
    return 0;
}
/* In place; spdl.io only asks for left-to-right mirrors (NPP_VERTICAL_AXIS, 1). */
EXPORT int nppiMirror_8u_C3IR_Ctx(unsigned char *p, int step, NppiSize roi, int flip, NppStreamContext ctx) {
    if (flip < 0 || flip > 2 || roi.width < 1 || roi.height < 1) return -1000;
    if (step < 3 * roi.width) return -14;
    if (fake_nmirrors < 4096) {
        long long *m = fake_mirrors[fake_nmirrors];
        m[0] = (long long)(uintptr_t)p; m[1] = step; m[2] = roi.width; m[3] = roi.height; m[4] = flip;
    }
    fake_nmirrors++; FLOG("mirror", p, ctx.hStream);
    if (flip == 1)
        for (int y = 0; y < roi.height; y++)
            for (int x = 0; x < roi.width / 2; x++)
                for (int c = 0; c < 3; c++) {
                    unsigned char *a = p + y * step + 3 * x + c, *b = p + y * step + 3 * (roi.width - 1 - x) + c;
                    unsigned char t = *a; *a = *b; *b = t;
                }
    return 0;
}
#endif
"""

FAKE_RUN = r"""import ctypes, gc, io, sys, os, threading
import numpy as np
FAKE, MODE = sys.argv[1], sys.argv[2]      # MODE: "driver" (a fake libcuda.so.1) or "nodriver"
import spdl.io
from spdl.io import CUDAConfig
from spdl.io import _cuda_device, _cuda_lib, _cuda_runtime, _keepalive, _nvjpeg_batch, _nvjpeg_decode, _nvjpeg_lib, _pinned, _testing, _transfer
DRV = os.path.join(FAKE, "drv" if MODE == "driver" else "nodrv", "libcuda.so.1")
_testing.use_libraries(FAKE, driver=DRV)
rt = ctypes.CDLL(os.path.join(FAKE, "libcudart.so.12"))
counts = (ctypes.c_long * 32).in_dll(rt, "fake_counts")
C_MALLOC, C_FREE, C_HOSTALLOC, C_FREEHOST, C_MEMCPY, C_MEMSET, C_WAIT, C_RECORD, C_DEVSYNC, C_STREAMSYNC, C_EVCREATE, C_EVDESTROY, C_SETDEVICE, C_PAGEABLE_H2D, C_MALLOCASYNC, C_FREEASYNC, C_EVSYNC = range(17)
from PIL import Image

def jpeg(w, h, comment=None, gray=False):
    im = Image.fromarray(np.full((h, w, 3), 128, np.uint8))
    if gray: im = im.convert("L")
    b = io.BytesIO(); im.save(b, "JPEG", quality=90)
    d = b.getvalue()
    if comment:   # insert a COM segment after SOI
        c = comment.encode(); d = d[:2] + b"\xff\xfe" + (len(c) + 2).to_bytes(2, "big") + c + d[2:]
    return d

def png(w, h, v=77):
    b = io.BytesIO(); Image.fromarray(np.full((h, w, 3), v, np.uint8)).save(b, "PNG"); return b.getvalue()

assert spdl.io.cuda_available()
info = _cuda_device.driver_api_info()
if MODE == "driver":
    assert info == {"library": DRV, "error": None}, info
    drv = ctypes.CDLL(DRV)
    retains = (ctypes.c_long * 2).in_dll(drv, "fake_retains")
    seen = {}
    def fresh_thread():
        # A thread that never chose a device: its work on cuda:1 (page-locked staging, the
        # copy, the free on its way out) leaves it without a context, and device 0 is
        # never touched (restoring with cudaSetDevice would have made a context there).
        seen["before"] = drv.fake_current()
        g = spdl.io.load_image_batch([png(30, 20)], width=8, height=8, device_config=CUDAConfig(1))
        seen["after load"] = drv.fake_current()
        del g
        gc.collect()
        seen["after free"] = drv.fake_current()
    def own_context_thread():
        # A thread with a context of its own gets it back, whichever device spdl.io used.
        drv.fake_bind_user_ctx()
        g = spdl.io.load_image_batch([png(30, 20)], width=8, height=8, device_config=CUDAConfig(1))
        o = _nvjpeg_batch.load_image_batch_nvjpeg([jpeg(32, 24)], device_config=CUDAConfig(1), width=8, height=8)
        seen["own"] = drv.fake_current()
        del g, o
        gc.collect()
        seen["own after free"] = drv.fake_current()
    for target in (fresh_thread, own_context_thread):
        t = threading.Thread(target=target)
        t.start()
        t.join()
    assert seen == {"before": -1, "after load": -1, "after free": -1, "own": -2, "own after free": -2}, seen
    assert list(retains) == [0, 1], list(retains)      # each primary context retained once, only cuda:1's
else:
    assert info["library"] is None and "libcuda.so.1 could not be loaded" in info["error"], info
cfg = CUDAConfig(1)
# transfer_buffer from a pageable CPUBuffer
srcs = [jpeg(64, 48), png(30, 20)]
cpu = spdl.io.load_image_batch(srcs, width=32, height=32)
ref = np.asarray(cpu).copy()
g = spdl.io.transfer_buffer(cpu, device_config=cfg)
assert g.device_index == 1 and g.shape == (2, 32, 32, 3) and g.indices == (0, 1)
np.testing.assert_array_equal(_testing.to_host(g), ref)
assert _keepalive.pending_transfers() == 0
# load_image_batch with device_config: pinned staging, cached blocks
h0 = counts[C_HOSTALLOC]
for _ in range(3):
    g2 = spdl.io.load_image_batch(srcs, width=32, height=32, device_config=cfg)
    np.testing.assert_array_equal(_testing.to_host(g2), ref)
    del g2
gc.collect()
assert counts[C_HOSTALLOC] - h0 == 1, counts[C_HOSTALLOC] - h0     # reused from the cache
# DLPack to another stream: event + wait; same stream: none
w0 = counts[C_WAIT]
cap = g.__dlpack__(stream=0x1234); assert counts[C_WAIT] == w0 + 1
cap = g.__dlpack__(stream=1); assert counts[C_WAIT] == w0 + 1
s = _testing.create_stream(0)
gs = spdl.io.transfer_buffer(cpu, device_config=CUDAConfig(0, stream=s))
cap = gs.__dlpack__(stream=s); assert counts[C_WAIT] == w0 + 1
cap = gs.__dlpack__(); assert counts[C_WAIT] == w0 + 2
del cap
# freeing: in stream order (cudaFreeAsync: the fake has memory pools) after the streams the DLPack
# consumers named, without waiting for the whole device
f0, d0 = counts[C_FREE] + counts[C_FREEASYNC], counts[C_DEVSYNC]
del g, gs
gc.collect()
assert counts[C_FREE] + counts[C_FREEASYNC] == f0 + 2 and counts[C_DEVSYNC] == d0, (counts[C_FREE], counts[C_FREEASYNC], counts[C_DEVSYNC], f0, d0)
_testing.destroy_stream(0, s)

# nvJPEG: GPU-decoded rows are the fake's constant colours, placed like the CPU path places them.
def v(w, h): return 30 + (w + h) % 200
batch = [jpeg(400, 100), png(30, 20), jpeg(50, 50, gray=True), jpeg(64, 48, comment="FAKE_FAIL"), b"garbage", jpeg(10, 40)]
m0, c0, pg0 = counts[C_MALLOC], counts[C_FREE], counts[C_PAGEABLE_H2D]
try:
    _nvjpeg_batch.load_image_batch_nvjpeg(batch, device_config=cfg, width=64, height=64)
    raise AssertionError("strict")
except spdl.io.BatchLoadError as e:
    assert set(e.errors) == {4}, e.errors
    assert "bytes #4" in str(e), str(e)
gc.collect()
for pix_fmt in ("rgb24", "bgr24", "rgbp"):
    out = _nvjpeg_batch.load_image_batch_nvjpeg(batch, device_config=cfg, width=64, height=64, pix_fmt=pix_fmt, strict=False)
    assert out.indices == (0, 1, 2, 3, 5) and set(out.errors) == {4}, (out.indices, out.errors)
    assert "bytes #4" in str(out.errors[4])
    a = _testing.to_host(out)
    if pix_fmt == "rgbp":
        assert a.shape == (5, 3, 64, 64); a = a.transpose(0, 2, 3, 1)
    else:
        assert a.shape == (5, 64, 64, 3)
    if pix_fmt == "bgr24": a = a[..., ::-1]
    cpu = np.asarray(spdl.io.load_image_batch([batch[i] for i in (0, 1, 2, 3, 5)], width=64, height=64))
    # 400x100 -> 64x16, centred: rows 24..39
    assert (a[0, :24] == 0).all() and (a[0, 40:] == 0).all(), pix_fmt
    assert (a[0, 24:40] == [v(400, 100), v(400, 100) + 1, v(400, 100) + 2]).all(), pix_fmt
    np.testing.assert_array_equal(a[1], cpu[1])          # PNG: the CPU path
    assert (a[2] == [v(50, 50), v(50, 50) + 1, v(50, 50) + 2]).all()   # 50x50 -> 64x64 fills
    np.testing.assert_array_equal(a[3], cpu[3])          # nvJPEG refused it: the CPU path
    # 10x40 -> 16x64, columns 24..39
    assert (a[4][:, :24] == 0).all() and (a[4][:, 40:] == 0).all() and (a[4][:, 24:40] == [v(10, 40), v(10, 40) + 1, v(10, 40) + 2]).all()
    del out
# The rows decoded on the CPU (the PNG, the JPEG nvJPEG refused) were copied from page-locked
# memory in every pixel format, planar (transposed on the host) included.
assert counts[C_PAGEABLE_H2D] == pg0, counts[C_PAGEABLE_H2D] - pg0
# What nvJPEG should not get takes the CPU path: an RGB-coded JPEG (Adobe transform 0) is
# decoded there; a truncated one fails there, as in load_image_batch.
good = jpeg(64, 48)
rgb_coded = good[:2] + b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00" + good[2:]
batch2 = [rgb_coded, good[:-4], good]     # [:-4]: inside the scan, no EOI
for pix_fmt in ("rgb24", "rgbp"):
    out = _nvjpeg_batch.load_image_batch_nvjpeg(batch2, device_config=cfg, width=64, height=64, pix_fmt=pix_fmt, strict=False)
    assert out.indices == (0, 2) and set(out.errors) == {1}, (out.indices, out.errors)
    assert "truncated" in str(out.errors[1]), str(out.errors[1])
    a = _testing.to_host(out)
    if pix_fmt == "rgbp": a = a.transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(a[0], np.asarray(spdl.io.load_image_batch([rgb_coded], width=64, height=64))[0])
    assert (a[1][8:56] == [v(64, 48), v(64, 48) + 1, v(64, 48) + 2]).all()     # nvJPEG's (the fake's) colour
    del out
out = _nvjpeg_batch.load_image_batch_nvjpeg(batch[:1], device_config=cfg, width=64, height=64, scale_mode=None)
assert (_testing.to_host(out)[0] == [v(400, 100), v(400, 100) + 1, v(400, 100) + 2]).all()
del out
# empty and all-CPU batches
out = _nvjpeg_batch.load_image_batch_nvjpeg([], device_config=cfg, width=8, height=8); assert out.shape == (0, 8, 8, 3)
out = _nvjpeg_batch.load_image_batch_nvjpeg([b"x"], device_config=cfg, width=8, height=8, strict=False); assert out.shape == (0, 8, 8, 3) and set(out.errors) == {0}
del out
gc.collect(); _keepalive.synchronize_transfers()
assert counts[C_MALLOC] - m0 == counts[C_FREE] - c0, (counts[C_MALLOC] - m0, counts[C_FREE] - c0)
# The scratch of the decoded images came from cudaMallocAsync and went back with cudaFreeAsync.
assert counts[C_MALLOCASYNC] > 0 and counts[C_MALLOCASYNC] == counts[C_FREEASYNC], (counts[C_MALLOCASYNC], counts[C_FREEASYNC])

# A caller's allocator owns every device allocation, scratch included.
live = {}
def alloc(n, dev, stream):
    b = ctypes.create_string_buffer(n); live[ctypes.addressof(b)] = b; return ctypes.addressof(b)
def free(p): del live[p]
acfg = CUDAConfig(0, stream=7, allocator=(alloc, free))
m1 = counts[C_MALLOC]
out = _nvjpeg_batch.load_image_batch_nvjpeg(batch, device_config=acfg, width=64, height=64, strict=False)
assert counts[C_MALLOC] == m1 and len(live) == 1 and out.stream == 7
t = spdl.io.load_image_batch(srcs, width=32, height=32, device_config=acfg)
np.testing.assert_array_equal(_testing.to_host(t), ref)
del out, t
gc.collect()
assert live == {}
_keepalive.synchronize_transfers(); _pinned.release_pinned_memory()
assert counts[C_HOSTALLOC] == counts[C_FREEHOST], (counts[C_HOSTALLOC], counts[C_FREEHOST])
# Concurrency: several threads and the async twins on one decoder.
import asyncio
from concurrent.futures import ThreadPoolExecutor
def work(k):
    o = _nvjpeg_batch.load_image_batch_nvjpeg(batch, device_config=cfg, width=32, height=32, strict=False)
    t = spdl.io.load_image_batch(srcs, width=32, height=32, device_config=CUDAConfig(k % 2))
    return o.indices, _testing.to_host(t).sum()
with ThreadPoolExecutor(4) as ex:
    res = list(ex.map(work, range(24)))
assert len({r for r in res}) == 1, res
async def amain():
    a = await spdl.io.async_load_image_batch_nvjpeg(batch, device_config=cfg, width=32, height=32, strict=False)
    b = await spdl.io.async_load_image_batch(srcs, width=32, height=32, device_config=cfg)
    return a.indices, b.shape
assert asyncio.run(amain()) == ((0, 1, 2, 3, 5), (2, 32, 32, 3))
gc.collect(); _keepalive.synchronize_transfers()
assert _keepalive.pending_transfers() == 0
if MODE == "driver":
    assert counts[C_SETDEVICE] == 0, counts[C_SETDEVICE]       # contexts only through the driver API
    assert drv.fake_current() == -1, drv.fake_current()       # the main thread has no context left
else:
    assert counts[C_SETDEVICE] > 0
print("FAKE OK")
"""


FAKE_RUN_REVIEW = r"""import ctypes, gc, io, os, sys
import numpy as np
FAKE = sys.argv[1]
import spdl.io
from spdl.io import CUDAConfig
from spdl.io import _cuda_device, _cuda_lib, _cuda_runtime, _keepalive, _nvjpeg_batch, _nvjpeg_decode, _nvjpeg_lib, _pinned, _testing, _transfer
_testing.use_libraries(FAKE, driver=os.path.join(FAKE, "drv", "libcuda.so.1"))
rt = ctypes.CDLL(os.path.join(FAKE, "libcudart.so.12"))
nvj = ctypes.CDLL(os.path.join(FAKE, "libnvjpeg.so.12"))
npp = ctypes.CDLL(os.path.join(FAKE, "libnppig.so.12"))
counts = (ctypes.c_long * 32).in_dll(rt, "fake_counts")
fail = (ctypes.c_int * 32).in_dll(rt, "fake_fail")
flags = (ctypes.c_uint * 4096).in_dll(rt, "fake_event_flags")
pools = ctypes.c_int.in_dll(rt, "fake_pools")
C_MALLOC, C_FREE, C_HOSTALLOC, C_FREEHOST, C_MEMCPY, C_MEMSET, C_WAIT, C_RECORD, C_DEVSYNC, C_STREAMSYNC, C_EVCREATE, C_EVDESTROY, C_SETDEVICE, C_PAGEABLE_H2D, C_MALLOCASYNC, C_FREEASYNC, C_EVSYNC = range(17)
from PIL import Image

def L(lib, name):
    return ctypes.c_long.in_dll(lib, name).value

def jpeg(w, h, comment=None):
    b = io.BytesIO(); Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(b, "JPEG", quality=90)
    d = b.getvalue()
    if comment:   # a COM segment after SOI
        c = comment.encode(); d = d[:2] + b"\xff\xfe" + (len(c) + 2).to_bytes(2, "big") + c + d[2:]
    return d

def png(w, h):
    b = io.BytesIO(); Image.fromarray(np.full((h, w, 3), 77, np.uint8)).save(b, "PNG"); return b.getvalue()

def colour(w, h):   # what the fake nvJPEG decodes a w x h JPEG to
    v = 30 + (w + h) % 200
    return [v, v + 1, v + 2]

def host(out, pix_fmt="rgb24"):
    a = _testing.to_host(out)
    return a.transpose(0, 2, 3, 1) if pix_fmt == "rgbp" else a

def load(srcs, c, w=32, h=32, **kw):
    return _nvjpeg_batch.load_image_batch_nvjpeg(srcs, device_config=c, width=w, height=h, **kw)

def cpu(srcs, w=32, h=32):
    return np.asarray(spdl.io.load_image_batch(srcs, width=w, height=h))

cfg = CUDAConfig(1)

# One event per nvJPEG state, each with cudaEventBlockingSync | cudaEventDisableTiming.
assert _nvjpeg_decode.decoder_backends(1)["hardware"] == "yes"
made = [flags[k] for k in range(counts[C_EVCREATE])]
assert made == [0x03, 0x03], made

# Images under 2 pixels wide or high (NPP's resize refuses them) take the CPU path.
small = [jpeg(1, 40), jpeg(40, 1), jpeg(2, 2)]
for pix_fmt in ("rgb24", "rgbp"):
    n0 = L(nvj, "fake_hw_images") + L(nvj, "fake_hy_images")
    out = load(small, cfg, 16, 16, pix_fmt=pix_fmt)
    assert L(nvj, "fake_hw_images") + L(nvj, "fake_hy_images") - n0 == 1     # the 2x2 only
    a = host(out, pix_fmt)
    np.testing.assert_array_equal(a[:2], cpu(small[:2], 16, 16))
    assert (a[2] == colour(2, 2)).all()
assert L(npp, "fake_npp_small") == 0

# An image NPP refuses (the fake refuses 77x33) takes the CPU path, into its row.
odd = jpeg(77, 33)
for pix_fmt in ("rgb24", "rgbp"):
    out = load([odd, jpeg(64, 48)], cfg, pix_fmt=pix_fmt)
    assert out.indices == (0, 1) and out.errors == {}
    a = host(out, pix_fmt)
    np.testing.assert_array_equal(a[0], cpu([odd])[0])
    assert (a[1][4:28] == colour(64, 48)).all() and (a[1][:4] == 0).all()
# ... and if the CPU path fails on it too, that is its error, as for any input.
sos = odd.index(b"\xff\xda")
start, end = sos + 2 + int.from_bytes(odd[sos + 2:sos + 4], "big"), odd.rindex(b"\xff\xd9")
bad = odd[:start] + b"\xff\x00" * ((end - start) // 2) + odd[end:]     # all-ones: no Huffman code
assert _testing.jpeg_check(bad) is None                                 # for nvJPEG by its markers
assert set(spdl.io.load_image_batch([bad], width=32, height=32, strict=False).errors) == {0}
for pix_fmt in ("rgb24", "rgbp"):
    out = load([jpeg(64, 48), bad, jpeg(50, 50)], cfg, pix_fmt=pix_fmt, strict=False)
    assert out.indices == (0, 2) and set(out.errors) == {1}, (out.indices, out.errors)
    assert "bytes #1" in str(out.errors[1]), str(out.errors[1])
    a = host(out, pix_fmt)
    assert a.shape == (2, 32, 32, 3)
    assert (a[0][4:28] == colour(64, 48)).all() and (a[1] == colour(50, 50)).all()
try:
    load([jpeg(64, 48), bad], cfg)
    raise AssertionError("strict")
except spdl.io.BatchLoadError as e:
    assert set(e.errors) == {1}, e.errors

# Before the hardware decode, the host waits for the stream when the scratch came from a
# stream-ordered allocator; the scratch of the default allocator comes from cudaMallocAsync
# and goes back with cudaFreeAsync: no cudaDeviceSynchronize during the call.
clean = [jpeg(64, 48), jpeg(50, 50, comment="FAKE_NOHW")]      # one for each backend
KEYS = {"streamsync": C_STREAMSYNC, "devsync": C_DEVSYNC, "malloc": C_MALLOC,
        "mallocasync": C_MALLOCASYNC, "freeasync": C_FREEASYNC}
def call(c):
    before = {k: counts[i] for k, i in KEYS.items()}
    nv = {k: L(nvj, k) for k in ("fake_hw_images", "fake_hy_images", "fake_hw_unsynced", "fake_hw_calls")}
    out = load(clean, c)
    d = {k: counts[i] - before[k] for k, i in KEYS.items()}
    d.update({k: L(nvj, k) - v for k, v in nv.items()})
    assert d["fake_hw_images"] == 1 and d["fake_hy_images"] == 1 and d["fake_hw_calls"] == 1, d
    assert d["fake_hw_unsynced"] == 0, d
    a = host(out)
    assert (a[0][4:28] == colour(64, 48)).all() and (a[1] == colour(50, 50)).all()
    return d
d = call(cfg)
# (the scratch of each backend and the output: cudaMallocAsync; the scratch goes back in the call)
assert (d["streamsync"], d["devsync"], d["malloc"], d["mallocasync"], d["freeasync"]) == (1, 0, 0, 3, 2), d
pools.value = 0                     # no memory pools on the device: cudaMalloc, and each scratch
d = call(cfg)                       # freed after a host wait for the stream, not the whole device
assert (d["streamsync"], d["devsync"], d["malloc"], d["mallocasync"]) == (2, 0, 3, 0), d
pools.value = 1
live = {}
def alloc(n, dev, stream):
    rt.fake_mark_unsynced()         # what a stream-ordered allocator may hand out
    b = ctypes.create_string_buffer(n); live[ctypes.addressof(b)] = b; return ctypes.addressof(b)
def free(p):
    del live[p]
acfg = CUDAConfig(1, stream=7, allocator=(alloc, free))
d = call(acfg)
assert (d["streamsync"], d["malloc"], d["mallocasync"]) == (1, 0, 0), d
gc.collect()
assert live == {}

# An image the hardware backend fails is decoded by the hybrid one, not on the CPU.
hw0, hy0 = L(nvj, "fake_hw_images"), L(nvj, "fake_hy_images")
out = load([jpeg(64, 48, comment="FAKE_HW_FAIL"), jpeg(50, 50)], cfg)
assert (L(nvj, "fake_hw_images") - hw0, L(nvj, "fake_hy_images") - hy0) == (1, 1)
a = host(out)
assert (a[0][4:28] == colour(64, 48)).all() and (a[1] == colour(50, 50)).all()

# The call's own CUDA error is the one raised, even when keeping host memory alive fails after it.
def raises(f, op):
    try:
        f()
    except spdl.io.CUDAError as e:
        assert e.op == op, (e.op, str(e))
        if sys.version_info >= (3, 11):
            assert any("keeping host memory alive" in n for n in e.__notes__), getattr(e, "__notes__", None)
    else:
        raise AssertionError("no error")
rows = spdl.io.load_image_batch([png(30, 20)], width=8, height=8)
fail[C_EVCREATE] = fail[C_STREAMSYNC] = 1
fail[C_MEMCPY] = 1
raises(lambda: spdl.io.transfer_buffer(rows, device_config=cfg), "cudaMemcpyAsync")
raises(lambda: load([png(30, 20)], cfg, 8, 8), "cudaMemcpyAsync")        # a CPU row copied in
fail[C_MEMCPY] = 0
fail[C_EVSYNC] = 1
raises(lambda: load([jpeg(64, 48)], cfg), "cudaEventSynchronize")       # the nvJPEG state's wait
for i in range(32):
    fail[i] = 0
assert (host(load([jpeg(64, 48)], cfg))[0][4:28] == colour(64, 48)).all()    # and it decodes again

# A failed cudaGetDeviceCount whose error has no name (cudaGetErrorName gives NULL).
ctypes.c_int.in_dll(rt, "fake_devcount_error").value = 100
ctypes.c_int.in_dll(rt, "fake_null_names").value = 1
assert spdl.io.cuda_available() is False
try:
    _cuda_device.check_device(cfg)
    raise AssertionError("no error")
except spdl.io.CUDAUnavailableError as e:
    assert "cudaError_t 100" in str(e), str(e)
ctypes.c_int.in_dll(rt, "fake_devcount_error").value = 0
ctypes.c_int.in_dll(rt, "fake_null_names").value = 0

# What the GPU cannot do takes the CPU path for the whole batch (the same plan, then one
# copy): nvJPEG is not called, and the rows are the CPU loader's.
import asyncio
mixed = [jpeg(64, 48), png(30, 20), jpeg(50, 50)]
for kw in ({"scale_mode": "crop"}, {"pix_fmt": "gray"}, {"scale_algo": "area"}, {"filter_desc": "hflip"},
           {"pix_fmt": "rgba", "scale_mode": "stretch"}):
    n0 = L(nvj, "fake_nvjpeg_batched_calls")
    out = load(mixed, cfg, **kw)
    assert L(nvj, "fake_nvjpeg_batched_calls") == n0, kw
    want = np.asarray(spdl.io.load_image_batch(mixed, width=32, height=32, **kw))
    np.testing.assert_array_equal(_testing.to_host(out), want)
    a = asyncio.run(spdl.io.async_load_image_batch_nvjpeg(mixed, device_config=cfg, width=32, height=32, **kw))
    np.testing.assert_array_equal(_testing.to_host(a), want)
    del a
# NPP's interpolation follows scale_algo (bicubic: supersampling when shrinking both ways).
for algo, interp in (("bicubic", 8), ("bilinear", 2), ("neighbor", 1), ("lanczos", 16)):
    load([jpeg(64, 48)], cfg, scale_algo=algo)
    assert ctypes.c_int.in_dll(npp, "fake_npp_last_interp").value == interp, (algo, interp)
# The async twin: the GPU part on the executor, the CPU rows on the loader's workers, strict
# and renumbered errors as in the sync call.
async def both():
    srcs = [jpeg(64, 48), png(30, 20), b"not an image", png(20, 30), jpeg(50, 50)]
    a = await spdl.io.async_load_image_batch_nvjpeg(srcs, device_config=cfg, width=32, height=32, strict=False)
    b = load(srcs, cfg, strict=False)
    assert a.indices == b.indices == (0, 1, 3, 4) and set(a.errors) == {2}
    assert "bytes #2" in str(a.errors[2]), str(a.errors[2])
    np.testing.assert_array_equal(_testing.to_host(a), _testing.to_host(b))
    try:
        await spdl.io.async_load_image_batch_nvjpeg(srcs, device_config=cfg, width=32, height=32)
        raise AssertionError("strict")
    except spdl.io.BatchLoadError as e:
        assert set(e.errors) == {2}, e.errors
asyncio.run(both())

del out
gc.collect(); _keepalive.synchronize_transfers()
assert counts[C_MALLOCASYNC] == counts[C_FREEASYNC], (counts[C_MALLOCASYNC], counts[C_FREEASYNC])
made = [flags[k] for k in range(min(counts[C_EVCREATE], 4096))]
assert made.count(0x03) == 2 and set(made) == {0x02, 0x03}, sorted(set(made))
print("FAKE REVIEW OK")
"""


def _build_fake_cuda(tmp_path):
    import shutil

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    pytest.importorskip("PIL")
    src = tmp_path / "fake_cuda.c"
    src.write_text(FAKE_CUDA_C)
    (tmp_path / "drv").mkdir()
    for macro, soname in (("FAKE_CUDART", "libcudart.so.12"), ("FAKE_NVJPEG", "libnvjpeg.so.12"),
                          ("FAKE_NPPC", "libnppc.so.12"), ("FAKE_NPPIG", "libnppig.so.12"),
                          ("FAKE_NPPICC", "libnppicc.so.12"), ("FAKE_NPPIDEI", "libnppidei.so.12"),
                          ("FAKE_CUDA_DRIVER", "drv/libcuda.so.1")):
        subprocess.run([cc, "-shared", "-fPIC", "-O1", f"-D{macro}", "-o", str(tmp_path / soname),
                        str(src), "-ldl", "-lm"], check=True, capture_output=True, timeout=120)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("FAKE_NVJPEG_HW", None)
    return env


def _run_on_fake_cuda(tmp_path, script, *args, hw=False):
    """Build the fake CUDA libraries into tmp_path, run script (run.py tmp_path *args) against
    them (hw: with a hardware nvJPEG backend), require success; its CompletedProcess."""
    env = _build_fake_cuda(tmp_path)
    if hw:
        env["FAKE_NVJPEG_HW"] = "1"
    (tmp_path / "run.py").write_text(script)
    r = subprocess.run([sys.executable, str(tmp_path / "run.py"), str(tmp_path), *args],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


@pytest.mark.parametrize("mode", ["driver", "nodriver"])
def test_pipeline_on_a_host_memory_fake_of_cuda(tmp_path, mode):
    r = _run_on_fake_cuda(tmp_path, FAKE_RUN, mode)
    assert r.stdout.strip().endswith("FAKE OK")


def test_nvjpeg_hardware_backend_and_failures_on_the_fake(tmp_path):
    """With a (fake) hardware decoder: per-state blocking events, small images and NPP
    refusals on the CPU path, the host wait before the hardware decode into stream-ordered
    scratch, hardware failures retried on the hybrid backend, the call's own error surfacing."""
    r = _run_on_fake_cuda(tmp_path, FAKE_RUN_REVIEW, hw=True)
    assert r.stdout.strip().endswith("FAKE REVIEW OK")


# ---------------------------------------------------------------------------
# Which JPEGs go to nvJPEG, by their markers (no CUDA needed)

def _segments(d):
    """(marker, offset) of each segment of a JPEG up to its first scan."""
    out, pos = [], 2
    while pos + 4 <= len(d):
        out.append((d[pos + 1], pos))
        if d[pos + 1] == 0xDA:
            break
        pos += 2 + int.from_bytes(d[pos + 2:pos + 4], "big")
    return out


def _sof(d):
    return next(off for m, off in _segments(d) if 0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC))


def _with_app14(d, transform):
    """d with an Adobe APP14 segment: "Adobe", version 100, flags0, flags1, transform."""
    return d[:2] + b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00" + bytes([transform]) + d[2:]


def _patched(d, offset, values):
    b = bytearray(d)
    b[offset:offset + len(values)] = values
    return bytes(b)


def test_jpeg_check_sends_rgb_coded_jpegs_to_the_cpu():
    pytest.importorskip("PIL")
    base = _jpeg_bytes(48, 32)
    check = _testing.jpeg_check
    assert check(base) is None
    assert check(_jpeg_bytes(48, 32, gray=True)) is None
    assert check(_jpeg_bytes(48, 32, progressive=True)) is None
    assert check(_with_app14(base, 1)) is None              # Adobe, transform 1: YCbCr
    assert check(_with_app14(base, 0)) == "RGB-coded"       # transform 0: RGB
    assert check(_with_app14(base, 2)) == "RGB-coded"       # not YCbCr either: not for nvJPEG
    sof = _sof(base)
    assert base[sof + 9] == 3
    assert check(_patched(base, sof + 10, b"R\x22\x00G\x11\x01B")) == "RGB-coded"   # ids 'R', 'G', 'B'
    # An Adobe segment inside another segment (an EXIF thumbnail) does not count.
    thumb = _with_app14(_jpeg_bytes(8, 8), 0)
    app1 = b"Exif\x00\x00" + thumb
    assert check(base[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + base[2:]) is None


def test_jpeg_check_pillow_rgb_jpeg():
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 99, np.uint8)).save(out, "JPEG", keep_rgb=True)
    if b"Adobe" not in out.getvalue():
        pytest.skip("this Pillow cannot write an RGB JPEG (keep_rgb)")
    assert _testing.jpeg_check(out.getvalue()) == "RGB-coded"


def test_jpeg_check_sends_truncated_and_unusual_jpegs_to_the_cpu():
    pytest.importorskip("PIL")
    base = _jpeg_bytes(64, 48)
    check = _testing.jpeg_check
    sof = _sof(base)
    assert check(base[:-2]) == "truncated"                  # all but the EOI marker
    assert check(base[:len(base) * 3 // 4]) == "truncated"
    assert check(base + b"\x00" * 16 + b"trailing data") is None   # data after EOI is ignored
    assert check(base[:sof]) == "no image data"             # no frame header
    first_scan = next(off for m, off in _segments(base) if m == 0xDA)
    assert check(base[:first_scan] + b"\xff\xd9") == "no image data"   # no scan
    assert check(base[:sof] + b"junk" + base[sof:]) == "no image data"  # bytes where a marker must be
    assert check(_patched(base, sof + 4, b"\x0c")) == "not 8-bit Huffman"      # 12-bit samples
    assert check(_patched(base, sof + 1, b"\xc3")) == "not 8-bit Huffman"      # lossless
    assert check(_patched(base, sof + 1, b"\xc9")) == "not 8-bit Huffman"      # arithmetic coding
    with pytest.raises(ValueError, match="SOI"):
        check(b"\x89PNG\r\n")


# ---------------------------------------------------------------------------
# With a GPU

def _jpeg_bytes(w, h, seed=0, quality=92, subsampling=2, progressive=False, gray=False):
    from PIL import Image

    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    fx, fy = x / max(w - 1, 1), y / max(h - 1, 1)
    img = np.stack([40 + 180 * fx + 20 * np.sin(6 * fy + seed), 30 + 190 * fy,
                    200 - 75 * (fx + fy)], axis=-1) + rng.normal(0, 3, size=(h, w, 3))
    im = Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    if gray:
        im = im.convert("L")
    out = io.BytesIO()
    im.save(out, "JPEG", quality=quality, subsampling=subsampling, progressive=progressive)
    return out.getvalue()


def _png_bytes(w, h):
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), 77, np.uint8)).save(out, "PNG")
    return out.getvalue()


#: The GPU path decodes with nvJPEG (its IDCT and chroma upsampling) and
#: resizes with NPP (supersampling when shrinking); the CPU path with FFmpeg /
#: libjpeg-turbo and swscale bicubic. On smooth photo-like content the two
#: agree within this mean absolute difference per channel value (0..255) ...
TOL_MEAN = 3.0
#: ... and 99% of the values within this.
TOL_P99 = 16


def _srcs():
    return ([_jpeg_bytes(320, 240, 1), _jpeg_bytes(200, 300, 2, subsampling=0),
             _jpeg_bytes(640, 480, 3, progressive=True), _jpeg_bytes(97, 61, 4, subsampling=1),
             _jpeg_bytes(150, 150, 5, gray=True)])


@gpu
@pytest.mark.parametrize("pix_fmt", ["rgb24", "bgr24", "rgbp"])
def test_nvjpeg_matches_cpu_path(pix_fmt):
    srcs = _srcs()
    cfg = CUDAConfig(0)
    buf = spdl.io.load_image_batch_nvjpeg(srcs, device_config=cfg, width=96, height=64,
                                          pix_fmt=pix_fmt)
    assert isinstance(buf, spdl.io.CUDABuffer)
    assert buf.pix_fmt == pix_fmt and buf.indices == tuple(range(len(srcs)))
    got = _testing.to_host(buf)
    cpu = np.asarray(spdl.io.load_image_batch(
        srcs, width=96, height=64, pix_fmt="bgr24" if pix_fmt == "bgr24" else "rgb24"))
    if pix_fmt == "rgbp":
        assert got.shape == (5, 3, 64, 96)
        got = got.transpose(0, 2, 3, 1)
    else:
        assert got.shape == (5, 64, 96, 3)
    diff = np.abs(got.astype(np.int16) - cpu.astype(np.int16))
    assert diff.mean() < TOL_MEAN, diff.mean()
    assert np.percentile(diff, 99) <= TOL_P99


@gpu
@pytest.mark.parametrize("kw", [
    {"crop": spdl.io.RandomResizedCrop(), "hflip": 0.5, "seed": 3},
    {"crop": [(10, 5, 90, 60), (0, 0, 200, 300), (300, 200, 120, 80), (20, 0, 40, 61), (0, 0, 150, 150)],
     "hflip": [True, False, True, False, True]},
    {"crop": spdl.io.CenterCrop(0.875), "pix_fmt": "rgbp"},
    {"hflip": True},
])
def test_nvjpeg_crop_and_flip_match_cpu_path(kw):
    """crop= and hflip= on the GPU: the CPU path's boxes and flips (buf.crops equal), and
    pixels within the resamplers' tolerance of the CPU path's."""
    srcs = _srcs()
    buf = spdl.io.load_image_batch_nvjpeg(srcs, device_config=CUDAConfig(0), width=96, height=64, **kw)
    cpu = spdl.io.load_image_batch(srcs, width=96, height=64, **kw)
    assert buf.indices == cpu.indices == tuple(range(len(srcs)))
    assert buf.crops == cpu.crops, (buf.crops, cpu.crops)
    diff = np.abs(_testing.to_host(buf).astype(np.int16) - np.asarray(cpu).astype(np.int16))
    assert diff.mean() < TOL_MEAN, diff.mean()
    assert np.percentile(diff, 99) <= TOL_P99


@gpu
def test_nvjpeg_resize_geometry_pad_and_stretch():
    src = [_jpeg_bytes(400, 100, 7)]              # 4:1 into a square: black bands above and below
    cfg = CUDAConfig(0)
    pad = _testing.to_host(spdl.io.load_image_batch_nvjpeg(src, device_config=cfg, width=64, height=64))
    assert pad.shape == (1, 64, 64, 3)
    assert pad[0, :20].max() == 0 and pad[0, -20:].max() == 0 and pad[0, 30:34].mean() > 20
    stretch = _testing.to_host(spdl.io.load_image_batch_nvjpeg(src, device_config=cfg, width=64,
                                                              height=64, scale_mode=None))
    assert stretch[0, :20].mean() > 20


@gpu
def test_nvjpeg_non_jpeg_and_corrupt_inputs():
    good = _jpeg_bytes(64, 48, 9)
    corrupt = good[:200] + bytes(len(good) - 200)     # a valid header, garbage entropy data
    cfg = CUDAConfig(0)
    with pytest.raises(spdl.io.BatchLoadError) as ei:
        spdl.io.load_image_batch_nvjpeg([good, b"not an image", good], device_config=cfg,
                                        width=32, height=32)
    assert set(ei.value.errors) == {1} and "bytes #1" in str(ei.value)
    buf = spdl.io.load_image_batch_nvjpeg([good, b"not an image", _png_bytes(40, 30), good],
                                          device_config=cfg, width=32, height=32, strict=False)
    assert buf.indices == (0, 2, 3) and set(buf.errors) == {1}
    assert _testing.to_host(buf)[1].max() == 77          # the PNG, decoded on the CPU path
    # A corrupt JPEG (no end-of-image marker) takes the CPU path and fails there, as in
    # load_image_batch; the next batch decodes.
    with pytest.raises(spdl.io.BatchLoadError) as ei:
        spdl.io.load_image_batch_nvjpeg([good, corrupt], device_config=cfg, width=32, height=32)
    assert set(ei.value.errors) == {1}
    again = _testing.to_host(spdl.io.load_image_batch_nvjpeg([good] * 4, device_config=cfg,
                                                           width=32, height=32))
    assert again.shape == (4, 32, 32, 3) and again.mean() > 10


@gpu
def test_nvjpeg_handles_are_strict():
    assert _nvjpeg_decode.decoder_backends(0)["strict"] == "yes"


@gpu
def test_nvjpeg_rgb_coded_and_truncated_jpegs_take_the_cpu_path():
    good = _jpeg_bytes(64, 48, 3)
    rgb_coded = _with_app14(good, 0)
    cfg = CUDAConfig(0)
    buf = spdl.io.load_image_batch_nvjpeg([rgb_coded, good[:-4], good], device_config=cfg,
                                          width=32, height=32, strict=False)
    assert buf.indices == (0, 2) and set(buf.errors) == {1}
    cpu = np.asarray(spdl.io.load_image_batch([rgb_coded], width=32, height=32))
    np.testing.assert_array_equal(_testing.to_host(buf)[0], cpu[0])     # decoded by the CPU path


@gpu
def test_calls_leave_the_thread_context_as_it_was():
    """A worker thread without a CUDA context has none after loading, copying and freeing."""
    if _cuda_device.driver_api_info()["library"] is None:
        pytest.skip(f"no driver API: {_cuda_device.driver_api_info()['error']}")
    libcuda = ctypes.CDLL("libcuda.so.1")
    seen = []

    def current():
        ctx = ctypes.c_void_p()
        assert libcuda.cuCtxGetCurrent(ctypes.byref(ctx)) == 0
        return ctx.value

    def work():
        seen.append(current())
        cfg = CUDAConfig(spdl.io._cuda_device.device_count() - 1)      # the last device
        buf = spdl.io.load_image_batch_nvjpeg([_jpeg_bytes(64, 48), _png_bytes(20, 10)],
                                              device_config=cfg, width=32, height=32)
        t = spdl.io.load_image_batch([_png_bytes(20, 10)], width=8, height=8, device_config=cfg)
        seen.append(current())
        buf.synchronize()
        del buf, t
        gc.collect()
        seen.append(current())

    th = threading.Thread(target=work)
    th.start()
    th.join()
    assert seen == [None, None, None]


@gpu
def test_transfer_buffer_round_trip_and_pinned_staging():
    cfg = CUDAConfig(0)
    srcs = [_jpeg_bytes(64, 48, s) for s in range(3)]
    cpu = np.asarray(spdl.io.load_image_batch(srcs, width=32, height=32))
    buf = spdl.io.load_image_batch(srcs, width=32, height=32, device_config=cfg)
    assert isinstance(buf, spdl.io.CUDABuffer) and buf.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(_testing.to_host(buf), cpu)
    pinned = spdl.io.load_image_batch(srcs, width=32, height=32)
    assert not pinned.pinned
    buf2 = spdl.io.transfer_buffer(pinned, device_config=cfg)     # pageable source
    del pinned                                                      # kept alive until the copy ran
    np.testing.assert_array_equal(_testing.to_host(buf2), cpu)
    _keepalive.synchronize_transfers()
    assert _keepalive.pending_transfers() == 0


@gpu
async def test_async_loaders_return_cuda_buffers():
    cfg = CUDAConfig(0)
    srcs = [_jpeg_bytes(64, 48, s) for s in range(4)]
    a = await spdl.io.async_load_image_batch(srcs, width=32, height=32, device_config=cfg)
    b = await spdl.io.async_load_image_batch_nvjpeg(srcs, device_config=cfg, width=32, height=32)
    assert isinstance(a, spdl.io.CUDABuffer) and isinstance(b, spdl.io.CUDABuffer)
    assert a.shape == b.shape == (4, 32, 32, 3)


@gpu
def test_non_default_stream_ordering():
    stream = _testing.create_stream(0)
    try:
        cfg = CUDAConfig(0, stream=stream)
        srcs = [_jpeg_bytes(640, 480, s) for s in range(8)]
        expected = _testing.to_host(spdl.io.load_image_batch_nvjpeg(srcs, device_config=CUDAConfig(0),
                                                                  width=224, height=224))
        for _ in range(5):
            # Handed to the legacy default stream through DLPack: an event orders the read.
            buf = spdl.io.load_image_batch_nvjpeg(srcs, device_config=cfg, width=224, height=224)
            assert buf.stream == stream
            assert buf.__cuda_array_interface__["stream"] == stream
            buf.__dlpack__(stream=1)
            np.testing.assert_array_equal(_testing.to_host(buf, 0), expected)
            # Read on the stream it was made on, with no host synchronization in between.
            buf = spdl.io.load_image_batch_nvjpeg(srcs, device_config=cfg, width=224, height=224)
            np.testing.assert_array_equal(_testing.to_host(buf, stream), expected)
            t = spdl.io.load_image_batch(srcs, width=224, height=224, device_config=cfg)
            assert t.stream == stream and _testing.to_host(t, stream).shape == (8, 224, 224, 3)
    finally:
        _testing.destroy_stream(0, stream)


@gpu
def test_pytorch_allocator_and_to_torch():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device")
    cfg = CUDAConfig(0, stream=torch.cuda.current_stream(0).cuda_stream,
                     allocator=(torch.cuda.caching_allocator_alloc, torch.cuda.caching_allocator_delete))
    srcs = [_jpeg_bytes(128, 96, s) for s in range(4)]
    before = torch.cuda.memory_allocated(0)
    buf = spdl.io.load_image_batch_nvjpeg(srcs, device_config=cfg, width=64, height=64)
    assert torch.cuda.memory_allocated(0) > before
    t = spdl.io.to_torch(buf)
    assert t.is_cuda and t.shape == (4, 64, 64, 3) and t.dtype == torch.uint8
    assert t.data_ptr() == buf.data_ptr
    ref = np.asarray(spdl.io.load_image_batch(srcs, width=64, height=64))
    assert np.abs(t.cpu().numpy().astype(int) - ref).mean() < TOL_MEAN
    del t, buf
    gc.collect()
    assert torch.cuda.memory_allocated(0) == before


@gpu
def test_cupy_asarray_without_copy():
    cupy = pytest.importorskip("cupy")
    buf = spdl.io.load_image_batch_nvjpeg([_jpeg_bytes(64, 48)], device_config=CUDAConfig(0),
                                          width=32, height=32)
    a = cupy.asarray(buf)
    assert a.data.ptr == buf.data_ptr and a.shape == (1, 32, 32, 3)


@gpu
def test_no_device_memory_growth_over_1000_batches():
    cfg = CUDAConfig(0)
    srcs = [_jpeg_bytes(320, 240, s) for s in range(4)]
    for _ in range(20):                          # warm up: nvJPEG's buffers, caches
        spdl.io.load_image_batch_nvjpeg(srcs, device_config=cfg, width=64, height=64)
    gc.collect()
    _keepalive.synchronize_transfers()
    free0, _ = _testing.mem_info(0)
    for _ in range(1000):
        buf = spdl.io.load_image_batch_nvjpeg(srcs, device_config=cfg, width=64, height=64)
        del buf
    gc.collect()
    _keepalive.synchronize_transfers()
    free1, _ = _testing.mem_info(0)
    assert free0 - free1 < 32 << 20, (free0, free1)
    assert _keepalive.pending_transfers() == 0
