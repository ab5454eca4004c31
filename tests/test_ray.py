"""spdl.io.ray on a local Ray cluster: the same arrays as load_image_batch, keys kept,
broken files dropped (or reported with errors_column), both batch formats.

Skipped when Ray Data is not installed (the ``ray`` extra; CI's ``test`` extra has it).
One two-CPU cluster serves the whole module: Ray takes seconds to start.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import spdl.io
from _util import synth_rgb

ray = pytest.importorskip("ray", reason="Ray Data is not installed (pip install 'pixelbatch[ray]')")
pytest.importorskip("ray.data")
pa = pytest.importorskip("pyarrow")
import spdl.io.ray as spdl_ray  # noqa: E402

W, H = 40, 32
BROKEN = b"\xff\xd8\xff\xe0 not really a JPEG"


def _encode(i: int) -> tuple[str, bytes]:
    """The i-th test image: a JPEG or a PNG of a size of its own."""
    img = Image.fromarray(synth_rgb(50 + 13 * i, 30 + 7 * i, seed=i))
    fmt, ext = (("JPEG", "jpg"), ("PNG", "png"))[i % 2]
    out = io.BytesIO()
    img.save(out, format=fmt)
    return ext, out.getvalue()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/{cat,dog}/img_<i>.<ext>, 10 images, and root/dog/broken.jpg."""
    root = tmp_path_factory.mktemp("ray_images")
    for i in range(10):
        ext, data = _encode(i)
        d = root / ("cat", "dog")[i % 3 == 0]
        d.mkdir(exist_ok=True)
        (d / f"img_{i}.{ext}").write_bytes(data)
    (root / "dog" / "broken.jpg").write_bytes(BROKEN)
    return root


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _local(srcs, **options) -> dict:
    """{index: pixels} of the sources that load, from the plain loader."""
    buf = spdl.io.load_image_batch(srcs, width=W, height=H, strict=False, **options)
    return dict(zip(buf.indices, spdl.io.to_numpy(buf)))


def _rows(ds) -> dict:
    """{key: row} of a dataset's rows."""
    return {row["key"]: row for row in ds.take_all()}


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------
# ImageDecoder on its own (no cluster): Arrow offsets, nulls, errors column
# ---------------------------------------------------------------------------

def test_decoder_arrow_sliced_chunks():
    """Binary values come from the data buffer at the chunk's own offsets: a sliced,
    two-chunk column with a null gives each row its own image."""
    blobs = [_encode(i)[1] for i in range(6)]
    chunks = [pa.array(blobs[:3] + [None], pa.binary()), pa.array(blobs[3:], pa.large_binary())]
    table = pa.table({"key": pa.array([f"k{i}" for i in range(7)]),
                      "image": pa.chunked_array([chunks[0], chunks[1].cast(pa.binary())])})
    table = table.slice(1)  # k1 k2 k3 (null) k4 k5 k6: images 1 2 - 3 4 5
    out = spdl_ray.ImageDecoder(W, H)(table)
    assert out.column_names == ["key", "pixels"]
    assert out.column("key").to_pylist() == ["k1", "k2", "k4", "k5", "k6"]
    want = _local(blobs[1:])
    got = out.column("pixels").combine_chunks().to_numpy()
    assert got.shape == (5, H, W, 3)
    np.testing.assert_array_equal(got, np.stack([want[i] for i in range(5)]))


def test_decoder_hugging_face_struct():
    """Hugging Face's Image column (struct of bytes and path) decodes from its bytes field,
    in Arrow and as numpy rows of dicts."""
    blobs = [_encode(i)[1] for i in range(3)]
    images = pa.array([{"bytes": b, "path": f"{i}.jpg"} for i, b in enumerate(blobs)])
    want = np.stack(list(_local(blobs).values()))
    out = spdl_ray.ImageDecoder(W, H)(pa.table({"image": images}))
    np.testing.assert_array_equal(out.column("pixels").combine_chunks().to_numpy(), want)
    out = spdl_ray.ImageDecoder(W, H)({"image": np.array(images.to_pylist(), dtype=object)})
    np.testing.assert_array_equal(out["pixels"], want)


def test_decoder_numpy_errors_column():
    blobs = [_encode(0)[1], BROKEN, _encode(1)[1]]
    batch = {"key": np.array(["a", "b", "c"], dtype=object), "image": np.array(blobs, dtype=object)}
    out = spdl_ray.ImageDecoder(W, H, errors_column="error")(batch)
    assert sorted(out) == ["error", "key", "pixels"]
    assert list(out["key"]) == ["a", "b", "c"]
    assert out["error"][0] is None and out["error"][2] is None
    assert "Error" in out["error"][1]
    want = _local(blobs)
    np.testing.assert_array_equal(out["pixels"][[0, 2]], np.stack([want[0], want[2]]))
    assert not out["pixels"][1].any()


def test_decoder_refuses_bad_arguments():
    with pytest.raises(ValueError, match="scale_mode"):
        spdl_ray.ImageDecoder(W, H, scale_mode="squash")
    with pytest.raises(TypeError, match="strict"):
        spdl_ray.ImageDecoder(W, H, strict=True)


# ---------------------------------------------------------------------------
# On the cluster
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("batch_format", ["pyarrow", "numpy"])
def test_map_batches_same_arrays(cluster, folder, batch_format):
    paths = _images(folder)
    items = [{"key": p.name, "image": p.read_bytes()} for p in paths]
    ds = ray.data.from_items(items, override_num_blocks=3).map_batches(
        spdl_ray.ImageDecoder, fn_constructor_kwargs=dict(width=W, height=H, pix_fmt="bgr24"),
        batch_size=4, batch_format=batch_format,
        compute=ray.data.ActorPoolStrategy(size=2))
    rows = _rows(ds)
    want = _local([it["image"] for it in items], pix_fmt="bgr24")
    assert sorted(rows) == sorted(paths[i].name for i in want)  # broken.jpg dropped
    assert "broken.jpg" not in rows
    for i, pixels in want.items():
        row = rows[paths[i].name]
        assert set(row) == {"key", "pixels"}
        np.testing.assert_array_equal(row["pixels"], pixels)


def test_read_images_folder(cluster, folder):
    ds = spdl_ray.read_images(folder, width=W, height=H, labels="folder", batch_size=4)
    rows = _rows(ds)
    paths = [str(p) for p in _images(folder)]
    want = _local(paths)
    assert sorted(rows) == sorted(paths[i] for i in want)
    assert len(rows) == len(paths) - 1
    for i, pixels in want.items():
        row = rows[paths[i]]
        assert row["label"] == (0 if "/cat/" in paths[i] else 1)
        np.testing.assert_array_equal(row["pixels"], pixels)


def test_read_images_list_errors_column(cluster, folder):
    paths = [str(p) for p in _images(folder)] + [str(folder / "missing.jpg")]
    # concurrency=1: the actor pool (the other read_images tests run Ray tasks)
    ds = spdl_ray.read_images(paths, width=W, height=H, scale_mode="stretch", batch_size=5,
                              errors_column="error", concurrency=1)
    rows = _rows(ds)
    assert sorted(rows) == sorted(paths)
    want = _local(paths, scale_mode="stretch")
    for i, p in enumerate(paths):
        if i in want:
            assert rows[p]["error"] is None
            np.testing.assert_array_equal(rows[p]["pixels"], want[i])
        else:
            assert rows[p]["error"], p
            assert not rows[p]["pixels"].any()
    assert {p for p in paths if rows[p]["error"]} == {str(folder / "dog" / "broken.jpg"),
                                                      str(folder / "missing.jpg")}


def test_read_images_tar_shards(cluster, folder, tmp_path):
    pytest.importorskip("spdl.io._dataset", reason="tar shards are listed by spdl.io._dataset")
    blobs = {}
    for s in range(2):
        with tarfile.open(tmp_path / f"shard-{s}.tar", "w") as tar:
            for j in range(3):
                i = 3 * s + j
                ext, data = _encode(i)
                members = {f"{i:04d}.{ext}": data, f"{i:04d}.cls": str(i % 2).encode()}
                if i == 4:
                    members = {f"{i:04d}.jpg": BROKEN}
                for name, payload in members.items():
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
                blobs[f"{tmp_path / f'shard-{s}.tar'}/{next(iter(members))}"] = (i, next(iter(members.values())))
    rows = _rows(spdl_ray.read_images(str(tmp_path / "shard-*.tar"), width=W, height=H))
    keys = list(blobs)
    want = _local([blobs[k][1] for k in keys])
    assert sorted(rows) == sorted(keys[i] for i in want)
    for i, pixels in want.items():
        row = rows[keys[i]]
        assert row["label"] == blobs[keys[i]][0] % 2
        np.testing.assert_array_equal(row["pixels"], pixels)
