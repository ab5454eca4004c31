"""spdl-ingest (spdl.io._cli): shards, failure report, contact sheet, summary, resume, exit codes.

Most tests call ``main(argv)`` in this process; one runs ``python -m spdl.ingest`` and,
when the console script is installed, ``spdl-ingest`` itself.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import spdl.io
from spdl.io import _cli, _shards, _sheet

ROOT = Path(__file__).resolve().parent.parent
SIZE = ["--width", "40", "--height", "32"]


def _card(i: int, w: int, h: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 255 // max(w - 1, 1) + 37 * i) % 256, y * 255 // max(h - 1, 1),
                     np.full_like(x, (i * 53) % 256)], axis=-1).astype(np.uint8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ImageFolder layout: cat/ (5 images), dog/ (6 images and one broken .jpg)."""
    root = tmp_path_factory.mktemp("cli_src")
    k = 0
    for cls, count in (("cat", 5), ("dog", 6)):
        (root / cls).mkdir()
        for j in range(count):
            w, h = 60 + 13 * k, 45 + 7 * (k % 5)
            img = Image.fromarray(_card(k, w, h))
            if k % 3 == 2:
                img.save(root / cls / f"im{j:02d}.png")
            else:
                img.save(root / cls / f"im{j:02d}.jpg", quality=90)
            k += 1
    (root / "dog" / "im03b.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG at all")
    return root


def _paths(folder: Path) -> list[str]:
    """The images in the listing's order: sorted, recursive."""
    exts = (".jpg", ".png")
    return sorted(str(p) for p in folder.rglob("*") if p.suffix in exts)


def _ingest(*argv: str) -> int:
    return _cli.main([*argv])


def _reference(paths: list[str], **kw: object) -> tuple[np.ndarray, list[str]]:
    buf = spdl.io.load_image_batch(paths, width=40, height=32, strict=False, **kw)
    return spdl.io.to_numpy(buf).copy(), [paths[i] for i in buf.indices]


def _read_npz(out: Path) -> tuple[np.ndarray, list[str], list[object]]:
    imgs, keys, labels = [], [], []
    for p in sorted(out.glob("shard-*.npz")):
        with np.load(p, allow_pickle=False) as z:
            imgs.append(z["images"])
            keys += z["keys"].tolist()
            labels += z["labels"].tolist()
    return np.concatenate(imgs), keys, labels


def _read_tar(out: Path) -> tuple[np.ndarray, list[str], list[object]]:
    imgs, keys, labels = [], [], []
    for p in sorted(out.glob("shard-*.tar")):
        with tarfile.open(p) as tf:
            members = {m.name: tf.extractfile(m).read() for m in tf.getmembers()}
        for name in sorted(n for n in members if n.endswith(".npy")):
            base = name[:-4]
            imgs.append(np.load(io.BytesIO(members[name]), allow_pickle=False))
            meta = json.loads(members[base + ".json"])
            keys.append(meta["key"])
            labels.append(int(members[base + ".cls"]) if base + ".cls" in members else -1)
            assert meta["label"] == labels[-1]
    return np.stack(imgs), keys, labels


def _read_parquet(out: Path) -> tuple[np.ndarray, list[str], list[object]]:
    import pyarrow.parquet as pq

    imgs, keys, labels = [], [], []
    for p in sorted(out.glob("shard-*.parquet")):
        t = pq.read_table(p)
        shape = json.loads(t.schema.field("image").metadata[b"spdl.shape"])
        for b in t.column("image").to_pylist():
            imgs.append(np.frombuffer(b, np.uint8).reshape(shape))
        keys += t.column("key").to_pylist()
        labels += t.column("label").to_pylist()
    return np.stack(imgs), keys, labels


READERS = {"npy": _read_npz, "webdataset": _read_tar, "parquet": _read_parquet}


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_folder_with_broken_file(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _ingest(str(folder), str(out), *SIZE, "--shard-size", "5", "--labels", "folder",
                   "--quiet") == 0
    assert sorted(p.name for p in out.glob("shard-*")) == [f"shard-0000{k}.npz" for k in range(3)]
    lines = (out / "failures.jsonl").read_text().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    assert rec["key"] == str(folder / "dog" / "im03b.jpg")
    assert rec["stage"] in ("demux", "decode") and rec["error"] and rec["reason"]
    assert rec["shard"] == 1 and rec["index"] == 9   # cat/ 0-4, dog/im00..im03.png 5-8
    with Image.open(out / "contact_sheet.png") as im:
        sheet = np.asarray(im.convert("RGB"))
    # 12 inputs, 12 targets, 11 tiles (the broken input's target takes the next row):
    # 4 columns of 40 x 32 tiles 4 pixels apart, 3 bands.
    assert sheet.shape == (3 * 36 + 4, 4 * 44 + 4, 3)
    s = _summary(out)
    assert (s["images_ok"], s["images_failed"], s["items"], s["complete"]) == (11, 1, 12, True)
    assert s["shards"] == [f"shard-0000{k}.npz" for k in range(3)]
    assert s["seconds"] > 0 and s["images_per_s"] > 0 and s["arguments"]["width"] == 40
    manifest = json.loads((out / "progress.json").read_text())
    assert [sh["items"] for sh in manifest["shards"]] == [[0, 5], [5, 10], [10, 12]]
    assert [sh["ok"] for sh in manifest["shards"]] == [5, 4, 2]
    assert not list(out.glob(".*tmp*"))
    imgs, keys, labels = _read_npz(out)
    assert labels == [0] * 5 + [1] * 6
    ref, ref_keys = _reference(_paths(folder))
    assert keys == ref_keys
    np.testing.assert_array_equal(imgs, ref)
    np.testing.assert_array_equal(sheet[4:36, 4:44], ref[0])
    np.testing.assert_array_equal(sheet[4 + 2 * 36:4 + 2 * 36 + 32, 4 + 2 * 44:4 + 2 * 44 + 40], ref[10])
    assert s["contact_sheet"]["keys"] == ref_keys


@pytest.mark.parametrize("fmt", ["npy", "webdataset", "parquet"])
def test_format_round_trip(fmt: str, folder: Path, tmp_path: Path) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    out = tmp_path / "out"
    assert _ingest(str(folder), str(out), *SIZE, "--format", fmt, "--shard-size", "4",
                   "--labels", "folder", "--crop", "center:0.875", "--batch-size", "3",
                   "--threads", "2", "--quiet") == 0
    imgs, keys, labels = READERS[fmt](out)
    ref, ref_keys = _reference(_paths(folder), crop=spdl.io.CenterCrop(0.875))
    assert imgs.shape == (11, 32, 40, 3) and imgs.dtype == np.uint8
    np.testing.assert_array_equal(imgs, ref)
    assert keys == ref_keys
    assert labels == [0] * 5 + [1] * 6
    assert len(list(out.glob(f"shard-*{_cli.FORMATS[fmt]}"))) == 3


@pytest.mark.parametrize("pix_fmt", ["gray", "bgr24", "rgba"])
def test_pix_fmt(pix_fmt: str, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _ingest(str(folder), str(out), *SIZE, "--pix-fmt", pix_fmt, "--scale-mode", "crop",
                   "--quiet") == 0
    imgs, keys, _ = _read_npz(out)
    ref, ref_keys = _reference(_paths(folder), pix_fmt=pix_fmt, scale_mode="crop")
    np.testing.assert_array_equal(imgs, ref)
    assert (out / "contact_sheet.png").is_file()


def test_resume_skips_finished_shards(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [str(folder), str(out), *SIZE, "--shard-size", "4", "--labels", "folder", "--quiet"]
    assert _ingest(*args, "--max-shards", "1") == 0
    first = out / "shard-00000.npz"
    st = first.stat()
    s = _summary(out)
    assert not s["complete"] and s["shards"] == ["shard-00000.npz"]
    assert not (out / "shard-00001.npz").exists()
    assert _ingest(*args, "--max-shards", "1") == 0           # one more
    assert (out / "shard-00001.npz").exists() and not (out / "shard-00002.npz").exists()
    assert _ingest(*args) == 0                                # the rest
    st2 = first.stat()
    assert (st2.st_ino, st2.st_mtime_ns, st2.st_size) == (st.st_ino, st.st_mtime_ns, st.st_size)
    s = _summary(out)
    assert s["complete"] and (s["images_ok"], s["images_failed"]) == (11, 1)
    assert s["this_run"]["shards_resumed"] == 2 and s["this_run"]["items"] == 4
    assert len((out / "failures.jsonl").read_text().splitlines()) == 1
    imgs, keys, labels = _read_npz(out)
    ref, ref_keys = _reference(_paths(folder))
    np.testing.assert_array_equal(imgs, ref)
    assert keys == ref_keys and labels == [0] * 5 + [1] * 6
    # A finished run again: nothing is rewritten.
    assert _ingest(*args) == 0
    assert first.stat().st_mtime_ns == st.st_mtime_ns


def test_resume_drops_an_unfinished_shard(folder: Path, tmp_path: Path) -> None:
    """A run killed mid-shard leaves a temp file and failure lines of shards not in
    progress.json; a resumed run removes both and redoes those shards."""
    out = tmp_path / "out"
    args = [str(folder), str(out), *SIZE, "--shard-size", "4", "--quiet"]
    assert _ingest(*args) == 0                                # shard 2 holds the broken file
    manifest = json.loads((out / "progress.json").read_text())
    manifest["shards"] = manifest["shards"][:1]              # as if killed before shard 1's entry
    manifest["complete"] = False
    (out / "progress.json").write_text(json.dumps(manifest))
    (out / ".shard-00001.npz.tmp-99999").write_bytes(b"partial")
    st0 = (out / "shard-00000.npz").stat()
    assert _ingest(*args) == 0
    assert not list(out.glob(".*tmp*"))
    assert (out / "shard-00000.npz").stat().st_mtime_ns == st0.st_mtime_ns
    assert len((out / "failures.jsonl").read_text().splitlines()) == 1
    s = _summary(out)
    assert (s["images_ok"], s["images_failed"], s["this_run"]["shards_written"]) == (11, 1, 2)


def test_resume_with_other_arguments_fails(folder: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert _ingest(str(folder), str(out), *SIZE, "--max-shards", "1", "--shard-size", "4",
                   "--quiet") == 0
    capsys.readouterr()
    assert _ingest(str(folder), str(out), "--width", "48", "--height", "32", "--shard-size", "4",
                   "--quiet") == 2
    err = capsys.readouterr().err
    assert "other arguments" in err and "width: 40 before, 48 now" in err


@pytest.mark.parametrize("argv, needle", [
    (["--width", "0", "--height", "32"], "--width"),
    (["--width", "40"], "--height"),
    (["--width", "40", "--height", "32", "--crop", "random"], "--crop"),
    (["--width", "40", "--height", "32", "--crop", "center:1.5"], "--crop"),
    (["--width", "40", "--height", "32", "--format", "zip"], "--format"),
    (["--width", "40", "--height", "32", "--pix-fmt", "yuv420p"], "--pix-fmt"),
    (["--width", "40", "--height", "32", "--shard-size", "-3"], "--shard-size"),
])
def test_bad_arguments_exit_2(argv: list[str], needle: str, folder: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        _ingest(str(folder), str(tmp_path / "out"), *argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "usage: spdl-ingest" in err and needle in err
    assert not (tmp_path / "out").exists()


def test_run_failures_exit_1(folder: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert _ingest(str(tmp_path / "nowhere"), str(tmp_path / "out"), *SIZE, "--quiet") == 1
    assert "source missing" in capsys.readouterr().err
    assert _ingest(str(tmp_path / "none-*.tar"), str(tmp_path / "out"), *SIZE, "--quiet") == 1
    assert "source missing" in capsys.readouterr().err
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert _ingest(str(folder), str(afile), *SIZE, "--quiet") == 1
    assert "OUT" in capsys.readouterr().err
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    assert _ingest(str(folder), str(full), *SIZE, "--quiet") == 1
    assert "not empty" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _ingest(str(empty), str(tmp_path / "out2"), *SIZE, "--quiet") == 1
    assert "no images" in capsys.readouterr().err


def test_tar_shards(folder: Path, tmp_path: Path) -> None:
    """WebDataset tar shards in (a quoted glob), labels from .cls members."""
    paths = _paths(folder)
    for s in range(2):
        with tarfile.open(tmp_path / f"src-{s}.tar", "w") as tf:
            for k, p in enumerate(paths[s * 6:(s + 1) * 6]):
                base = f"sample{s * 6 + k:03d}"
                tf.add(p, arcname=base + Path(p).suffix)
                cls = f"{1 if '/dog/' in p else 0}".encode()
                info = tarfile.TarInfo(base + ".cls")
                info.size = len(cls)
                tf.addfile(info, io.BytesIO(cls))
    out = tmp_path / "out"
    assert _ingest(str(tmp_path / "src-*.tar"), str(out), *SIZE, "--shard-size", "5",
                   "--quiet") == 0
    imgs, keys, labels = _read_npz(out)
    ref, ref_keys = _reference(paths)
    np.testing.assert_array_equal(imgs, ref)
    assert len(keys) == 11 and all(".tar/" in k for k in keys)
    assert labels == [0] * 5 + [1] * 6
    rec = json.loads((out / "failures.jsonl").read_text())
    assert rec["key"].endswith("src-1.tar/sample009.jpg")


def test_parquet_source(folder: Path, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    paths = _paths(folder)
    data = [Path(p).read_bytes() for p in paths]
    pq.write_table(pa.table({"image": data}), tmp_path / "src.parquet")
    out = tmp_path / "out"
    assert _ingest(str(tmp_path / "src.parquet"), str(out), *SIZE, "--quiet") == 0
    imgs, keys, _ = _read_npz(out)
    ref, _ = _reference(paths)
    np.testing.assert_array_equal(imgs, ref)
    assert len(keys) == 11
    assert len((out / "failures.jsonl").read_text().splitlines()) == 1


def test_progress_without_tqdm(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)   # import tqdm raises ImportError
    assert _ingest(str(folder), str(tmp_path / "out"), *SIZE) == 0
    err = capsys.readouterr().err
    assert "img/s" in err and "1 failed" in err and "12/12" in err


def test_png_writer_is_read_by_pillow() -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)
    with Image.open(io.BytesIO(_sheet.png_bytes(rgb))) as im:
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), rgb)


def test_python_m_entry_point(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "spdl.ingest", str(folder), str(out), *SIZE],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "done: 11 images in 1 shards, 1 failed" in r.stderr
    assert (out / "shard-00000.npz").is_file()
    r = subprocess.run([sys.executable, "-m", "spdl.ingest", "--help"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--shard-size" in r.stdout


def test_console_script(folder: Path, tmp_path: Path) -> None:
    from importlib.metadata import entry_points

    # The installed package's entry points (the wheel check has no pyproject.toml); an
    # editable install made before the script was declared lacks it until reinstalled.
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    if "spdl-ingest" not in scripts and (ROOT / "pyproject.toml").is_file():
        assert 'spdl-ingest = "spdl.io._cli:main"' in (ROOT / "pyproject.toml").read_text()
        pytest.skip("spdl-ingest is declared but not installed here (reinstall the package)")
    assert scripts["spdl-ingest"] == "spdl.io._cli:main"
    exe = shutil.which("spdl-ingest", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("spdl-ingest is not installed in this environment (reinstall the package)")
    r = subprocess.run([exe, str(folder), str(tmp_path / "out"), *SIZE, "--quiet"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_crc32_combine() -> None:
    import zlib

    rng = np.random.default_rng(2)
    for _ in range(100):
        a = rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes()
        b = rng.integers(0, 256, int(rng.integers(0, 5000)), dtype=np.uint8).tobytes()
        assert _shards.crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


@pytest.mark.parametrize("fmt", ["npy", "webdataset", "parquet"])
@pytest.mark.parametrize("counts", [(), (3,), (2, 0, 4)])
def test_shard_files(fmt: str, counts: tuple[int, ...], tmp_path: Path) -> None:
    """Rows added in pieces (fewer than the capacity: failed inputs) read back whole; the
    .npz is a valid zip (every CRC checked)."""
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    rng = np.random.default_rng(3)
    shape = (5, 7, 3)
    rows = rng.integers(0, 256, (sum(counts), *shape), dtype=np.uint8)
    cls = _shards.SHARD_FILES[fmt]
    path = tmp_path / f"shard-00000{cls.suffix}"
    with open(path, "wb") as f:
        shard = cls(f, shape, 12, "int")
        k = 0
        for c in counts:
            idx = list(range(k, k + c))
            shard.add(rows[k:k + c], [f"key{i}" for i in idx], [i % 3 for i in idx], idx)
            k += c
        shard.finish()
    if fmt == "npy":
        import zipfile

        with zipfile.ZipFile(path) as z:
            assert z.testzip() is None
    imgs, keys, labels = READERS[fmt](tmp_path) if counts else (rows, [], [])
    if fmt == "npy" and not counts:
        with np.load(path) as z:
            imgs, keys, labels = z["images"], z["keys"].tolist(), z["labels"].tolist()
    np.testing.assert_array_equal(imgs.reshape(rows.shape), rows)
    assert keys == [f"key{i}" for i in range(len(rows))]
    assert labels == [i % 3 for i in range(len(rows))]


def test_all_inputs_fail(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"bad{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    out = tmp_path / "out"
    assert _ingest(str(src), str(out), *SIZE, "--shard-size", "2", "--quiet") == 0
    with np.load(out / "shard-00000.npz") as z:
        assert z["images"].shape == (0, 32, 40, 3) and z["keys"].shape == (0,)
    assert len((out / "failures.jsonl").read_text().splitlines()) == 3
    s = _summary(out)
    assert (s["images_ok"], s["images_failed"], s["contact_sheet"]) == (0, 3, None)
    assert not (out / "contact_sheet.png").exists()


def test_interrupt_then_resume(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C in the middle of shard 1: exit 130, shard 0 kept, no temp file; the same
    command then writes shards 1 and 2 only."""
    out = tmp_path / "out"
    args = [str(folder), str(out), *SIZE, "--shard-size", "4", "--batch-size", "2", "--quiet"]
    add = _cli._Assembler.add

    def interrupted(self: _cli._Assembler, buf: object) -> None:
        if self.pos >= 6:
            raise KeyboardInterrupt
        add(self, buf)

    monkeypatch.setattr(_cli._Assembler, "add", interrupted)
    assert _ingest(*args) == 130
    assert "interrupted" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["failures.jsonl", "progress.json",
                                                     "shard-00000.npz"]
    st = (out / "shard-00000.npz").stat()
    monkeypatch.setattr(_cli._Assembler, "add", add)
    assert _ingest(*args) == 0
    assert (out / "shard-00000.npz").stat().st_mtime_ns == st.st_mtime_ns
    s = _summary(out)
    assert s["this_run"]["shards_resumed"] == 1 and s["this_run"]["items"] == 8
    imgs, keys, _ = _read_npz(out)
    ref, ref_keys = _reference(_paths(folder))
    np.testing.assert_array_equal(imgs, ref)
