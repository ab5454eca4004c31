"""examples/train_loop.py (the README's training loop) runs, with PyTorch and without it."""

import pathlib
import subprocess
import sys

import pytest

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "train_loop.py"


def _run(block_torch: bool) -> str:
    code = ("import sys, runpy\n"
            + ("sys.modules['torch'] = None\n" if block_torch else "")
            + f"runpy.run_path({str(EXAMPLE)!r}, run_name='__main__')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_example_trains_without_torch():
    out = _run(block_torch=True)
    steps = [line for line in out.splitlines() if line.startswith("step ")]
    assert len(steps) == 12
    assert all("(32, 3, 64, 64) float32" in line for line in steps)
    assert "images/s including training" in out


def test_example_trains_with_torch():
    pytest.importorskip("torch")
    out = _run(block_torch=False)
    assert out.count("torch.float32") == 12
