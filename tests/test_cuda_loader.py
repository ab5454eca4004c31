"""The CUDA library search and the one-major rule, against stub libraries (no GPU, no CUDA).

Each case lays out folders the way the CUDA wheels and toolkits do (a
site-packages folder with nvidia/cu13/lib/lib*.so.13 or
nvidia/<component>/lib/lib*.so.12, a $CUDA_HOME tree) holding tiny shared
objects built here with the C compiler: they export every function spdl.io
looks up (the names are read from the built modules), report a version of
their major, and a stub libcuda.so.1 reports the driver's CUDA version. A
fresh process imports spdl.io with those folders on sys.path and says what
select_cuda() chose, what cuda_info() reports and what the GPU entry points
raise. This machine's own CUDA (its Python's wheels, /usr/local/cuda, the
ld.so cache, bare sonames) is kept out of each case. The real wheels are tested in
tests/test_cuda_wheels.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import spdl
import spdl.io
from spdl.io import _cuda_device, _cuda_lib, _cuda_runtime, _nvjpeg_lib, _testing

SPDL_ROOT = Path(spdl.__file__).resolve().parents[1]
WHEEL_DIR = {"cudart": "cuda_runtime", "nvjpeg": "nvjpeg", "nppc": "npp", "nppig": "npp", "nppicc": "npp",
             "nppidei": "npp"}
STEM = {"cudart": "libcudart", "nvjpeg": "libnvjpeg", "nppc": "libnppc", "nppig": "libnppig",
        "nppicc": "libnppicc", "nppidei": "libnppidei"}
ALL = tuple(STEM)
NPP_SET = [n for n in ALL if n != "cudart"]      # nvJPEG and the NPP libraries


def _check(kind, path, major):
    """Open path as library kind and fill spdl.io's table from it; the functions it lacks."""
    try:
        if kind in ("cudart", "libcuda"):
            _testing.probe_library(kind, str(path))
        else:
            _testing.probe_nvjpeg_library(kind, [str(path)], major=major)
    except spdl.io.CUDAUnavailableError as e:
        assert e.missing, str(e)
        return list(e.missing)
    return []


_SPECIAL = {
    "cudart": """
EXPORT int cudaRuntimeGetVersion(int *v) { *v = MAJOR * 1000 + 20; return 0; }
EXPORT int cudaDriverGetVersion(int *v) { *v = 0; return 0; }
EXPORT int cudaGetDeviceCount(int *n) { *n = 0; return 100; }      /* cudaErrorNoDevice */
EXPORT const char *cudaGetErrorName(int e) { return "cudaErrorNoDevice"; }
EXPORT const char *cudaGetErrorString(int e) { return "no CUDA-capable device is detected"; }
EXPORT int cudaGetLastError(void) { return 0; }
""",
    "nvjpeg": """
EXPORT int nvjpegGetProperty(int type, int *v) { *v = type == 0 ? MAJOR : type == 1 ? 1 : 2; return 0; }
""",
    "nppc": """
typedef struct { int major, minor, build; } NppLibraryVersion;
static const NppLibraryVersion version = {MAJOR, 1, 7};
EXPORT const NppLibraryVersion *nppGetLibVersion(void) { return &version; }
""",
    "nppig": "",
    "nppicc": "",
    "nppidei": "",
    "libcuda": """
#include <stdlib.h>
EXPORT int cuDriverGetVersion(int *v) {
    const char *s = getenv("STUB_DRIVER_VERSION"); *v = s ? atoi(s) : 0; return 0;
}
""",
    # NVML: one GPU per entry of $STUB_NVML_CC ("9.0,7.0"), named "Stub GPU <i>".
    "nvml": """
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static int cc[16][2];
static unsigned int count;
static int live;
EXPORT int nvmlInit_v2(void) {
    const char *s = getenv("STUB_NVML_CC");
    count = 0;
    while (s && *s && count < 16) {
        if (sscanf(s, "%d.%d", &cc[count][0], &cc[count][1]) != 2) break;
        count++;
        s = strchr(s, ',');
        if (s) s++;
    }
    live++;
    return 0;
}
EXPORT int nvmlShutdown(void) { live--; return 0; }
EXPORT int nvmlDeviceGetCount_v2(unsigned int *n) { *n = count; return live > 0 ? 0 : 1; }
EXPORT int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **dev) {
    if (i >= count) return 2;
    *dev = (void *)(size_t)(i + 1); return 0;
}
EXPORT int nvmlDeviceGetCudaComputeCapability(void *dev, int *major, int *minor) {
    size_t i = (size_t)dev - 1; *major = cc[i][0]; *minor = cc[i][1]; return 0;
}
EXPORT int nvmlDeviceGetName(void *dev, char *name, unsigned int n) {
    snprintf(name, n, "Stub GPU %d", (int)((size_t)dev - 1)); return 0;
}
""",
}


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    """{(kind, major): path} of the stub libraries; kind is a library name or "libcuda"."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    out = tmp_path_factory.mktemp("stubs")
    libs = {}
    for kind, special in _SPECIAL.items():
        defined = set(re.findall(r"\b(\w+)\(", special))
        for major in ((13, 12) if kind not in ("libcuda", "nvml") else (1,)):
            # Every other function spdl.io looks up returns an error; which ones they are, the
            # loader says (CUDAUnavailableError.missing) until the table fills.
            generic = []
            for _ in range(3):
                src = out / f"{kind}{major}.c"
                src.write_text(f'#define EXPORT __attribute__((visibility("default")))\n#define MAJOR {major}\n'
                               + special + "".join(f"EXPORT int {n}(void) {{ return 999; }}\n" for n in generic))
                so = out / f"{kind}{major}-{len(generic)}.so"
                subprocess.run([cc, "-shared", "-fPIC", "-o", str(so), str(src)], check=True,
                               capture_output=True, timeout=120)
                missing = [n for n in _check(kind, so, major) if n not in defined] if kind != "nvml" else []
                if not missing:
                    break
                generic += missing
            if kind != "nvml":
                assert not _check(kind, so, major), kind
            libs[kind, major] = so
    return libs


def _wheel_site(root: Path, stubs, major, names=ALL):
    """A site-packages folder with the CUDA major wheels' layout, holding the named libraries."""
    for name in names:
        d = root / "nvidia" / ("cu13" if major >= 13 else WHEEL_DIR[name]) / "lib"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(stubs[name, major], d / f"{STEM[name]}.so.{major}")
    return root


def _toolkit(root: Path, stubs, major, sub="lib64", names=ALL):
    d = root / sub
    d.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(stubs[name, major], d / f"{STEM[name]}.so.{major}")
    return root


_PROBE = textwrap.dedent("""
    import json, os, sys
    from spdl.io import _cuda_buffer, _cuda_device, _cuda_lib, _cuda_runtime, _keepalive, _nvjpeg_batch, _nvjpeg_decode, _nvjpeg_lib, _pinned, _testing, _transfer
    import spdl.io
    # Only the case's folders are searched: not this Python's own (a GPU machine has the real
    # wheels there), not /usr/local/cuda, not the bare sonames.
    _cuda_lib._python_dirs = lambda: json.loads(os.environ["STUB_SITES"])
    _cuda_lib._SYSTEM_CUDA = ()
    _search = _cuda_lib.library_candidates
    _cuda_lib.library_candidates = lambda module, soname: [p for p in _search(module, soname) if os.sep in p]
    _cuda_lib.driver_candidates = lambda: [os.environ["STUB_DRIVER"]]
    _cuda_lib.nvml_candidates = lambda: [os.environ["STUB_NVML"]]

    def error(call):
        try:
            call()
        except spdl.io.CUDAUnavailableError as e:
            return {"message": str(e), "library": e.library, "tried": list(e.tried), "op": e.op}
        return None

    sel = _cuda_lib.select_cuda()
    out = {
        "major": sel["major"], "reason": sel["reason"],
        "found": {str(m): v for m, v in sel["found"].items()},
        "info": spdl.io.cuda_info(),
        "runtime_error": error(_cuda_runtime._load_runtime),
        "nvjpeg_error": error(_nvjpeg_lib.load_libraries),
        "check_device": error(lambda: _cuda_device.check_device(spdl.io.CUDAConfig(0))),
        "nvjpeg_call": error(lambda: spdl.io.load_image_batch_nvjpeg(
            [b"x"], device_config=spdl.io.CUDAConfig(0), width=8, height=8)),
    }
    print("PROBE " + json.dumps(out))
""")


def _probe(tmp_path, sites, *, driver=None, env=None, gpus=None):
    """Run the probe with sites first on sys.path and the stub driver reporting driver (None: no driver);
    gpus: the compute capabilities NVML reports, "9.0,7.0" (None: no NVML)."""
    e = dict(os.environ)
    for var in ("CUDA_HOME", "CUDA_PATH", "LD_LIBRARY_PATH"):
        e.pop(var, None)
    e.update(env or {})
    e["PYTHONPATH"] = str(SPDL_ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e["STUB_SITES"] = json.dumps([str(s) for s in sites])
    e["STUB_DRIVER"] = str(tmp_path / "no_driver" / "libcuda.so.1")
    if driver is not None:
        e["STUB_DRIVER"] = str(tmp_path / "stub_driver.so")
        e["STUB_DRIVER_VERSION"] = str(driver)
    e["STUB_NVML"] = str(tmp_path / "no_driver" / "libnvidia-ml.so.1")
    if gpus is not None:
        e["STUB_NVML"] = str(tmp_path / "stub_nvml.so")
        e["STUB_NVML_CC"] = gpus
    r = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=e,
                       timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("PROBE "))
    return json.loads(line[len("PROBE "):])


@pytest.fixture
def driver(tmp_path, stubs):
    shutil.copy(stubs["libcuda", 1], tmp_path / "stub_driver.so")
    shutil.copy(stubs["nvml", 1], tmp_path / "stub_nvml.so")


def _paths(out):
    return {n: out["info"][n]["path"] for n in ALL}


def test_driver_13_takes_the_complete_cuda13_set(tmp_path, stubs, driver):
    site = _wheel_site(_wheel_site(tmp_path / "site", stubs, 13), stubs, 12)
    out = _probe(tmp_path, [site], driver=13000)
    assert out["major"] == 13
    assert _paths(out) == {n: f"{site}/nvidia/cu13/lib/{STEM[n]}.so.13" for n in ALL}
    info = out["info"]
    assert info["cuda_major"] == 13 and info["driver_version"] == "13.0"
    assert info["libcuda"]["path"] == str(tmp_path / "stub_driver.so")
    assert info["libcuda"]["version"] == "13.0"
    assert info["cudart"]["version"] == "13.2"
    assert info["nvjpeg"]["version"] == "13.1.2"
    assert info["nppc"]["version"] == info["nppig"]["version"] == "13.1.7"
    assert info["device_count"] == 0
    assert out["runtime_error"] is None and out["nvjpeg_error"] is None
    # No device: every entry point says so, it does not blame a library.
    for call in ("check_device", "nvjpeg_call"):
        e = out[call]
        assert e["message"].startswith("no CUDA device: cudaGetDeviceCount failed with cudaErrorNoDevice")
        assert "the NVIDIA driver runs CUDA 13.0" in e["message"] and e["library"] is None


def test_driver_12_takes_the_cuda12_set(tmp_path, stubs, driver):
    site = _wheel_site(_wheel_site(tmp_path / "site", stubs, 13), stubs, 12)
    out = _probe(tmp_path, [site], driver=12080)
    assert out["major"] == 12
    assert "the NVIDIA driver runs CUDA 12.8" in out["reason"]
    assert _paths(out) == {n: f"{site}/nvidia/{WHEEL_DIR[n]}/lib/{STEM[n]}.so.12" for n in ALL}
    assert out["info"]["nvjpeg"]["version"] == "12.1.2" and out["info"]["driver_version"] == "12.8"


def test_no_driver_still_finds_and_loads_the_libraries(tmp_path, stubs):
    site = _wheel_site(_wheel_site(tmp_path / "site", stubs, 13), stubs, 12)
    out = _probe(tmp_path, [site], driver=None)
    assert out["major"] == 13 and "no NVIDIA driver" in out["reason"]
    assert all(p.endswith(".so.13") for p in _paths(out).values())
    info = out["info"]
    assert info["driver_version"] is None and info["libcuda"]["path"] is None
    assert str(tmp_path / "no_driver" / "libcuda.so.1") in info["libcuda"]["error"]
    assert out["runtime_error"] is None and out["nvjpeg_error"] is None
    e = out["nvjpeg_call"]
    assert e["message"].startswith("no CUDA device") and e["library"] is None
    assert "no NVIDIA driver" in e["message"]


def test_an_incomplete_cuda13_set_is_passed_over_for_a_complete_cuda12_one(tmp_path, stubs, driver):
    # The CUDA 13 runtime alone (as PyTorch's wheels install it) and the whole CUDA 12 set.
    site = _wheel_site(_wheel_site(tmp_path / "site", stubs, 13, ["cudart"]), stubs, 12)
    out = _probe(tmp_path, [site], driver=13000)
    assert out["major"] == 12
    assert ("CUDA 13 lacks libnvjpeg.so.13, libnppc.so.13, libnppig.so.13, libnppicc.so.13, "
            "libnppidei.so.13" in out["reason"]), out["reason"]
    assert all(p.endswith(".so.12") for p in _paths(out).values())


def test_never_mixes_majors(tmp_path, stubs, driver):
    """The CUDA 13 runtime with only CUDA 12 nvJPEG / NPP: the runtime loads, the decoder says why not."""
    site = _wheel_site(_wheel_site(tmp_path / "site", stubs, 13, ["cudart"]), stubs, 12,
                       NPP_SET)
    out = _probe(tmp_path, [site], driver=13000)
    assert out["major"] == 13 and out["runtime_error"] is None
    e = out["nvjpeg_error"]
    assert e["library"] == "libnvjpeg.so.13"
    msg = e["message"]
    assert "libnvjpeg.so.13 could not be loaded" in msg and "pip install pixelbatch[cuda13]" in msg
    assert f"libnvjpeg.so.12 is present ({site}/nvidia/nvjpeg/lib/libnvjpeg.so.12)" in msg
    assert "the libraries of one CUDA major must be used together" in msg
    assert f"{site}/nvidia/cu13/lib/libnvjpeg.so.13: not found" in msg
    info = out["info"]
    assert info["cudart"]["path"].endswith(".so.13")
    for n in NPP_SET:
        assert info[n]["path"] is None and info[n]["soname"] == f"{STEM[n]}.so.13"
        assert f"{site}/nvidia/cu13/lib/{STEM[n]}.so.13" in info[n]["tried"]
    # The GPU decoder's own entry point reports the device first (there is none).
    assert out["nvjpeg_call"]["message"].startswith("no CUDA device")


def test_a_driver_too_old_for_the_libraries(tmp_path, stubs, driver):
    site = _wheel_site(tmp_path / "site", stubs, 13)
    out = _probe(tmp_path, [site], driver=12040)
    assert out["major"] is None
    for key in ("runtime_error", "check_device", "nvjpeg_error", "nvjpeg_call"):
        e = out[key]
        assert e["library"] == "libcudart.so.12", key
        assert "the NVIDIA driver runs CUDA 12.4, too old for the CUDA runtime found here" in e["message"]
        assert f"{site}/nvidia/cu13/lib/libcudart.so.13" in e["message"]
        assert "pip install pixelbatch[cuda12]" in e["message"]
    info = out["info"]
    assert info["cuda_major"] is None and info["driver_version"] == "12.4"
    assert info["device_count"] is None and "too old" in info["device_error"]


def test_a_driver_older_than_cuda12(tmp_path, stubs, driver):
    site = _wheel_site(_wheel_site(tmp_path / "site", stubs, 13), stubs, 12)
    out = _probe(tmp_path, [site], driver=11080)
    assert out["major"] is None
    assert "the NVIDIA driver runs CUDA 11.8" in out["runtime_error"]["message"]
    assert "needs CUDA 13 or 12" in out["runtime_error"]["message"]


def test_libraries_split_over_several_sys_path_folders(tmp_path, stubs, driver):
    # As on a machine whose Python has the runtime wheel and a --target folder has the rest.
    empty = tmp_path / "empty"
    empty.mkdir()
    rt = _wheel_site(tmp_path / "rt", stubs, 13, ["cudart"])
    rest = _wheel_site(tmp_path / "rest", stubs, 13, NPP_SET)
    out = _probe(tmp_path, [empty, rest, rt], driver=13000)
    assert out["major"] == 13
    assert out["info"]["cudart"]["path"] == f"{rt}/nvidia/cu13/lib/libcudart.so.13"
    for n in NPP_SET:
        assert out["info"][n]["path"] == f"{rest}/nvidia/cu13/lib/{STEM[n]}.so.13"
    assert out["runtime_error"] is None and out["nvjpeg_error"] is None


def test_wheels_before_cuda_home_before_cuda_path(tmp_path, stubs, driver):
    home = _toolkit(tmp_path / "home", stubs, 12, "targets/x86_64-linux/lib")
    path = _toolkit(tmp_path / "path", stubs, 12, "lib64")
    env = {"CUDA_HOME": str(home), "CUDA_PATH": str(path)}
    out = _probe(tmp_path, [], driver=12080, env=env)
    assert out["major"] == 12
    assert out["info"]["cudart"]["path"] == f"{home}/targets/x86_64-linux/lib/libcudart.so.12"
    assert f"{home}/lib64/libcudart.so.12" in out["info"]["cudart"]["tried"]
    out = _probe(tmp_path, [], driver=12080, env={"CUDA_PATH": str(path)})
    assert out["info"]["nppig"]["path"] == f"{path}/lib64/libnppig.so.12"
    site = _wheel_site(tmp_path / "site", stubs, 12)
    out = _probe(tmp_path, [site], driver=12080, env=env)
    assert all(p.startswith(str(site)) for p in _paths(out).values())


def test_nothing_found_names_every_path_and_the_pip_command(tmp_path, stubs):
    site = tmp_path / "site"
    (site / "nvidia").mkdir(parents=True)
    out = _probe(tmp_path, [site], driver=None, env={"CUDA_HOME": str(tmp_path / "home")})
    assert out["major"] is None
    e = out["check_device"]
    assert e["library"] == "libcudart.so.13"
    msg = e["message"]
    assert msg.startswith("libcudart.so.13 could not be loaded: no CUDA runtime was found")
    assert "pip install pixelbatch[cuda13]" in msg and "pip install pixelbatch[cuda12]" in msg
    for p in (f"{site}/nvidia/cu13/lib/libcudart.so.13", f"{site}/nvidia/cuda_runtime/lib/libcudart.so.12",
              f"{tmp_path}/home/lib64/libcudart.so.13", f"{tmp_path}/home/lib/libcudart.so.12"):
        assert f"{p}: not found" in msg
        assert p in e["tried"]
    assert out["info"]["cudart"]["path"] is None and out["info"]["cudart"]["error"] == msg


def test_gpus_new_enough_for_cuda13_take_it_and_cuda_info_lists_them(tmp_path, stubs, driver):
    site = _wheel_site(_wheel_site(tmp_path / "site", stubs, 13), stubs, 12)
    out = _probe(tmp_path, [site], driver=13000, gpus="9.0,7.5")
    assert out["major"] == 13 and "not CUDA" not in out["reason"]
    assert out["info"]["devices"] == [
        {"index": 0, "name": "Stub GPU 0", "compute_capability": "9.0"},
        {"index": 1, "name": "Stub GPU 1", "compute_capability": "7.5"}]
    assert out["info"]["nvml"] == {"path": str(tmp_path / "stub_nvml.so"), "error": None}


def test_no_nvml_no_capability_rule(tmp_path, stubs, driver):
    site = _wheel_site(_wheel_site(tmp_path / "site", stubs, 13), stubs, 12)
    out = _probe(tmp_path, [site], driver=13000)
    assert out["major"] == 13
    assert out["info"]["devices"] == [] and "libnvidia-ml.so.1" in out["info"]["nvml"]["error"]


def test_a_gpu_older_than_cuda13_supports_gets_cuda12(tmp_path, stubs, driver):
    """A Volta GPU beside a Hopper one, an R580 driver (CUDA 13.0), both sets installed."""
    site = _wheel_site(_wheel_site(tmp_path / "site", stubs, 13), stubs, 12)
    out = _probe(tmp_path, [site], driver=13000, gpus="9.0,7.0")
    assert out["major"] == 12
    assert ("not CUDA 13: GPU 1 (Stub GPU 1) has compute capability 7.0, older than CUDA 13 "
            "supports (7.5 or newer)") in out["reason"]
    assert all(p.endswith(".so.12") for p in _paths(out).values())
    assert out["info"]["devices"][1]["compute_capability"] == "7.0"
    assert out["runtime_error"] is None and out["nvjpeg_error"] is None


def test_a_gpu_older_than_cuda13_with_only_cuda13_says_install_cuda12(tmp_path, stubs, driver):
    site = _wheel_site(tmp_path / "site", stubs, 13)
    out = _probe(tmp_path, [site], driver=13000, gpus="6.0")
    assert out["major"] is None
    for key in ("runtime_error", "check_device", "nvjpeg_error"):
        msg = out[key]["message"]
        assert "GPU 0 (Stub GPU 0) has compute capability 6.0, older than CUDA 13 supports" in msg, key
        assert f"{site}/nvidia/cu13/lib/libcudart.so.13" in msg and "pip install pixelbatch[cuda12]" in msg
        assert out[key]["library"] == "libcudart.so.12"


@pytest.mark.parametrize("broken", ["cudart", "nvjpeg", "nppig", "nppidei"])
def test_a_cuda13_set_that_does_not_open_gives_way_to_cuda12(tmp_path, stubs, driver, broken):
    """A present but unloadable file (a truncated or wrong-architecture wheel) is not chosen."""
    site = _wheel_site(_wheel_site(tmp_path / "site", stubs, 13), stubs, 12)
    bad = site / "nvidia" / "cu13" / "lib" / f"{STEM[broken]}.so.13"
    bad.write_bytes(b"\x7fELF not really a library")
    out = _probe(tmp_path, [site], driver=13000)
    assert out["major"] == 12
    assert f"not CUDA 13: its libraries are present but {STEM[broken]}.so.13 does not open ({bad}: " \
        in out["reason"]
    assert all(p.endswith(".so.12") for p in _paths(out).values())
    assert out["info"]["reason"] == out["reason"]
    assert out["runtime_error"] is None and out["nvjpeg_error"] is None
    assert out["nvjpeg_call"]["message"].startswith("no CUDA device")


def test_no_set_opens_names_the_dlopen_error(tmp_path, stubs, driver):
    site = _wheel_site(tmp_path / "site", stubs, 13)
    bad = site / "nvidia" / "cu13" / "lib" / "libcudart.so.13"
    bad.write_bytes(b"garbage")
    out = _probe(tmp_path, [site], driver=13000)
    assert out["major"] == 13          # nothing else: the runtime's own error says why
    assert "libcudart.so.13 does not open" in out["reason"]
    e = out["runtime_error"]
    assert e["library"] == "libcudart.so.13" and f"{bad}: " in e["message"]
    assert f"{bad}: not found" not in e["message"]
