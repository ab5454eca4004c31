"""The typed face of spdl.io, checked the way a user's type checker sees it.

mypy --strict checks examples/typed_example.py against spdl.io as an installed,
typed package (py.typed and the .pyi stubs of the Cython modules): the loaders must
return CPUBuffer or CUDABuffer, never Any. A second snippet holds deliberate mistakes,
each of which mypy must reject, so a check that accepts everything cannot pass.

Without mypy the tests skip, unless CI is set (then they fail): CI cannot pass by
skipping them. This is the CI hook: .ci/run runs ./run test.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "typed_example.py"

# Each line ending in "# E" must get a mypy error; no other line may.
MISTAKES = """\
from pathlib import Path

import spdl.io
from spdl.io import CPUBuffer, CUDABuffer, CUDAConfig

spdl.io.load_image_batch([1, 2], width=8, height=8)  # E
spdl.io.load_image_batch(["a.jpg", 3.5], width=8, height=8)  # E
spdl.io.demux_image(7)  # E
spdl.io.decode_packets(b"not packets")  # E
spdl.io.convert_frames([b"not frames"])  # E
spdl.io.load_image_batch([Path("a.jpg")], width="8", height=8)  # E
gpu: CPUBuffer = spdl.io.load_image_batch(["a.jpg"], width=8, height=8, device_config=CUDAConfig(0))  # E
cpu: CUDABuffer = spdl.io.load_image_batch(["a.jpg"], width=8, height=8)  # E
spdl.io.to_numpy(cpu)  # E
shape: tuple[int, ...] = spdl.io.load_image_batch([b""], width=8, height=8).shape
"""


def _ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def _mypy_env() -> dict[str, str]:
    """The environment for mypy and stubtest; skips, or fails with CI set, without mypy."""
    if importlib.util.find_spec("mypy") is None:
        if _ci():
            pytest.fail("CI is set but mypy is not installed: pip install -e '.[test]'")
        pytest.skip("mypy is not installed (pip install 'mypy>=1.8'); with CI set this fails")
    spec = importlib.util.find_spec("spdl")
    assert spec is not None and spec.submodule_search_locations, "spdl is not importable"
    # The folder holding the spdl that Python imports: site-packages for a wheel, the
    # checkout for an editable install (whose import hook mypy cannot follow). mypy takes it
    # as installed-package path (PYTHONPATH), so spdl is read through py.typed and the stubs,
    # as a user's mypy reads it, and spdl's own internals are not what is checked here.
    where = str(Path(list(spec.submodule_search_locations)[0]).parent)
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [where, os.environ.get("PYTHONPATH")])))


def _mypy(tmp_path: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    env = _mypy_env()
    cache = Path(tempfile.gettempdir()) / f"spdl-mypy-cache-{sys.version_info[0]}{sys.version_info[1]}"
    cmd = [sys.executable, "-m", "mypy", "--strict", "--python-executable", sys.executable,
           "--cache-dir", str(cache), "--no-color-output", "--show-error-codes",
           *map(str, files)]
    # From tmp_path: nothing in the working directory may stand in for the package.
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def test_typed_example_passes_mypy_strict(tmp_path: Path) -> None:
    assert EXAMPLE.exists(), f"{EXAMPLE} is missing"
    r = _mypy(tmp_path, EXAMPLE)
    assert r.returncode == 0, f"mypy --strict {EXAMPLE.name} failed:\n{r.stdout}{r.stderr}"


def test_mypy_rejects_the_deliberate_mistakes(tmp_path: Path) -> None:
    snippet = tmp_path / "mistakes.py"
    snippet.write_text(MISTAKES)
    r = _mypy(tmp_path, snippet)
    out = r.stdout + r.stderr
    errors = {int(m.group(1)) for m in re.finditer(r"^[^\n]*mistakes\.py:(\d+): error:", out, re.M)}
    marked = {i for i, line in enumerate(MISTAKES.splitlines(), 1) if line.endswith("# E")}
    assert r.returncode == 1, f"mypy did not report the mistakes:\n{out}"
    assert marked - errors == set(), f"mypy accepted lines {sorted(marked - errors)}:\n{out}"
    assert errors - marked == set(), f"mypy rejected correct lines {sorted(errors - marked)}:\n{out}"


# The special members a class's typed face must give too (the buffer protocols).
PROTOCOL_MEMBERS = ("__array_interface__", "__cuda_array_interface__", "__dlpack__", "__dlpack_device__")


def test_public_api_has_no_any(tmp_path: Path) -> None:
    """Every name spdl.io exports, and every public member of its classes, has a type
    without Any (an async function's Coroutine[Any, Any, T] aside: that is Python's own);
    a member the stubs lack is an error too."""
    import inspect

    import spdl.io

    names = []
    for name in spdl.io.__all__:
        names.append(name)
        obj = getattr(spdl.io, name)
        if inspect.isclass(obj) and obj.__module__.startswith("spdl."):
            names += [f"{name}.{a}" for a in sorted(vars(obj))
                      if not a.startswith("_") or a in PROTOCOL_MEMBERS]
    if importlib.util.find_spec("torch") is None:
        names.remove("to_torch")  # torch.Tensor is Any to a checker without torch
    snippet = tmp_path / "public.py"
    snippet.write_text("import spdl.io\n" + "".join(f"reveal_type(spdl.io.{n})\n" for n in names))
    r = _mypy(tmp_path, snippet)
    out = r.stdout + r.stderr
    revealed = dict(re.findall(r"public\.py:(\d+): note: Revealed type is \"(.*)\"$", out, re.M))
    assert r.returncode == 0 and len(revealed) == len(names), f"mypy:\n{out}"
    with_any = [f"{names[int(line) - 2]}: {t}" for line, t in revealed.items()
                if "Any" in re.sub(r"Coroutine\[Any, Any, ", "Coroutine[", t)]
    assert not with_any, "Any in the public API:\n" + "\n".join(with_any)


def test_stubs_match_the_modules(tmp_path: Path) -> None:
    """mypy's stubtest: every .pyi of spdl.io against its module as built (a member added to
    a Cython class, or a changed signature, must reach the stub)."""
    import spdl.io

    folder = Path(spdl.io.__file__).parent
    modules = sorted(f"spdl.io.{p.stem}" for p in folder.glob("*.pyi"))
    assert modules, f"no stubs in {folder}"
    env = _mypy_env()
    allow = Path(__file__).with_name("stubtest_allowlist.txt")
    cmd = [sys.executable, "-m", "mypy.stubtest", "--mypy-config-file", os.devnull,
           "--ignore-unused-allowlist", "--allowlist", str(allow)]
    # A cdef class is a disjoint base (PEP 800); the stubs do not say so, as a mypy older
    # than the check (the test extra's lower bound) does not know @disjoint_base.
    helptext = subprocess.run([*cmd[:3], "--help"], capture_output=True, text=True).stdout
    if "--ignore-disjoint-bases" in helptext:
        cmd.append("--ignore-disjoint-bases")
    r = subprocess.run([*cmd, *modules],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"stubtest {' '.join(modules)}:\n{r.stdout}{r.stderr}"


def test_typed_example_runs() -> None:
    """The example is a working program, not only a typing fixture."""
    r = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{EXAMPLE.name} failed:\n{r.stdout}{r.stderr}"
    assert "cpu:" in r.stdout and "async:" in r.stdout
