"""Datasets to batches: sources, sharding, shuffling, the prefetching iterator and its twin,
num_threads, and CPUBuffer's len() and pickling.

Every input is a small image made here with Pillow: folders, tar shards (WebDataset
layout) and Parquet files (with pyarrow, else those tests skip).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import io
import os
import pickle
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import spdl.io
from spdl.io._dataset import list_items, shard_items

SIZE = dict(width=16, height=12)


def _jpeg(seed: int, fmt: str = "JPEG") -> bytes:
    rng = np.random.default_rng(seed)
    arr = np.clip(rng.normal(128, 40, (20 + seed % 5, 24, 3)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(arr).save(out, fmt)
    return out.getvalue()


def _rows(buf: spdl.io.CPUBuffer) -> np.ndarray:
    return spdl.io.to_numpy(buf).copy()


def _expected(srcs: list) -> np.ndarray:
    return _rows(spdl.io.load_image_batch(srcs, **SIZE))


def _threads() -> int:
    return threading.active_count()


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes (a: 3, b: 2, c/deep: 2 images), a top-level image, a text file."""
    root = tmp_path_factory.mktemp("folder")
    k = 0
    for cls, n in (("a", 3), ("b", 2), ("c/deep", 2)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            (root / cls / f"img{i}.jpg").write_bytes(_jpeg(k))
            k += 1
    (root / "b" / "x.png").write_bytes(_jpeg(50, "PNG"))
    (root / "top.jpg").write_bytes(_jpeg(99))
    (root / "a" / "notes.txt").write_text("not an image")
    return root


def _write_tar(path: Path, samples: list[tuple[str, bytes, dict[str, bytes]]]) -> None:
    with tarfile.open(path, "w") as tf:
        for key, image, extra in samples:
            for name, data in [(f"{key}.jpg", image), *((f"{key}.{e}", d) for e, d in extra.items())]:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """4 shards of 5 samples each, .cls labels (shard 3 has a .txt label on one sample)."""
    root = tmp_path_factory.mktemp("tars")
    paths = []
    for s in range(4):
        samples = []
        for i in range(5):
            n = s * 5 + i
            extra = {"cls": str(n % 3).encode()}
            if s == 3 and i == 0:
                extra = {"txt": b"a cat\n"}
            samples.append((f"sample{n:03d}", _jpeg(n), extra))
        paths.append(root / f"shard-{s}.tar")
        _write_tar(paths[-1], samples)
    return paths


def test_directory_keys_labels_classes(folder: Path) -> None:
    with spdl.io.iter_image_batches(str(folder), labels="folder", batch_size=3, **SIZE) as it:
        batches = list(it)
        assert it.classes == ["a", "b", "c"]
    keys = [k for b in batches for k in b.keys]
    labels = [lab for b in batches for lab in b.labels]
    want = sorted(str(p) for p in folder.rglob("*") if p.suffix in (".jpg", ".png")
                  and p.parent != folder)
    assert keys == want
    assert labels == [{"a": 0, "b": 1, "c": 2}[os.path.relpath(k, folder).split(os.sep)[0]]
                      for k in keys]
    assert [len(b) for b in batches] == [3, 3, 2]
    np.testing.assert_array_equal(np.concatenate([_rows(b) for b in batches]), _expected(keys))
    assert all(b.errors == {} for b in batches)


def test_directory_without_labels(folder: Path) -> None:
    bufs = list(spdl.io.iter_image_batches(folder, batch_size=100, **SIZE))
    assert len(bufs) == 1 and bufs[0].labels is None
    assert str(folder / "top.jpg") in bufs[0].keys and len(bufs[0]) == 9


def test_list_of_paths_and_bytes(folder: Path) -> None:
    paths = sorted(folder.rglob("*.jpg"))[:3]
    srcs = [str(paths[0]), paths[1], paths[2].read_bytes()]
    bufs = list(spdl.io.iter_image_batches(srcs, labels=[1, "two", 3], batch_size=2, **SIZE))
    assert [b.keys for b in bufs] == [(str(paths[0]), str(paths[1])), ("bytes #2",)]
    assert [b.labels for b in bufs] == [(1, "two"), (3,)]
    np.testing.assert_array_equal(np.concatenate([_rows(b) for b in bufs]), _expected(srcs))


def test_tar_shards(shards: list[Path]) -> None:
    glob = str(shards[0].parent / "shard-*.tar")
    with spdl.io.iter_image_batches(glob, batch_size=8, **SIZE) as it:
        bufs = list(it)
    keys = [k for b in bufs for k in b.keys]
    assert keys == [f"{shards[n // 5]}/sample{n:03d}.jpg" for n in range(20)]
    labels = [lab for b in bufs for lab in b.labels]
    assert labels == [n % 3 if n != 15 else "a cat" for n in range(20)]
    want = _expected([_jpeg(n) for n in range(20)])
    np.testing.assert_array_equal(np.concatenate([_rows(b) for b in bufs]), want)
    # one path, and a list of paths
    one = list(spdl.io.iter_image_batches(shards[1], batch_size=5, **SIZE))
    assert one[0].keys[0] == f"{shards[1]}/sample005.jpg"
    two = list(spdl.io.iter_image_batches([str(p) for p in shards[:2]], batch_size=50, **SIZE))
    assert len(two[0]) == 10


def test_tar_members_are_views_of_the_map(shards: list[Path]) -> None:
    items = list_items(str(shards[0]))
    with items:
        view = items[0].read()
        assert isinstance(view, memoryview) and bytes(view) == _jpeg(0)
        view.release()


def test_items_pickle_unopened(shards: list[Path], tmp_path: Path) -> None:
    """An Item travels to another process (a Ray task) by path and offsets, and reads there."""
    with list_items([str(p) for p in shards]) as items:
        items[0].read().release()  # the shard's map is open here; the pickle holds no map
        copy = pickle.loads(pickle.dumps(items[7]))
    assert (copy.key, copy.label) == (items[7].key, items[7].label)
    view = copy.read()
    assert bytes(view) == _jpeg(7)
    view.release()
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"image": [_jpeg(0), _jpeg(1)]}), path)
    with list_items(path) as items:
        assert bytes(pickle.loads(pickle.dumps(items[1])).read()) == _jpeg(1)


def test_broken_file_and_corrupt_tar_member(tmp_path: Path, folder: Path) -> None:
    bad = tmp_path / "dir"
    (bad / "x").mkdir(parents=True)
    for i in range(3):
        (bad / "x" / f"{i}.jpg").write_bytes(_jpeg(i))
    (bad / "x" / "1.jpg").write_bytes(b"\xff\xd8 this is no jpeg")
    [buf] = spdl.io.iter_image_batches(bad, labels="folder", batch_size=3, **SIZE)
    assert buf.keys == (str(bad / "x" / "0.jpg"), str(bad / "x" / "2.jpg"))
    assert buf.labels == (0, 0)
    assert list(buf.errors) == [str(bad / "x" / "1.jpg")]
    assert isinstance(buf.errors[str(bad / "x" / "1.jpg")], spdl.io.SpdlIOError)

    tar = tmp_path / "bad.tar"
    _write_tar(tar, [("a", _jpeg(1), {"cls": b"1"}), ("b", b"garbage" * 20, {"cls": b"2"}),
                     ("c", _jpeg(2), {"cls": b"3"})])
    with tarfile.open(tar) as tf:
        cut = tf.getmember("c.jpg").offset_data + 200
    with tar.open("r+b") as f:  # and a shard cut in the middle of its last image
        f.truncate(cut)
    [buf] = spdl.io.iter_image_batches(tar, batch_size=3, **SIZE)
    assert buf.keys == (f"{tar}/a.jpg",) and buf.labels == (1,)
    assert sorted(buf.errors) == [f"{tar}/b.jpg", f"{tar}/c.jpg"]
    with pytest.raises(spdl.io.BatchLoadError):
        list(spdl.io.iter_image_batches(tar, batch_size=3, strict=True, **SIZE))


def _all_keys(source, **kw) -> list[str]:
    return [k for b in spdl.io.iter_image_batches(source, batch_size=4, **SIZE, **kw) for k in b.keys]


@pytest.mark.parametrize("kind", ["folder", "tar"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_sharding_disjoint_and_complete(kind: str, shuffle: bool, folder: Path,
                                        shards: list[Path]) -> None:
    source = folder if kind == "folder" else [str(p) for p in shards]
    everything = sorted(_all_keys(source))
    for world_size in (1, 2, 3, 5):
        parts = [_all_keys(source, rank=r, world_size=world_size, shuffle=shuffle,
                           shuffle_seed=7, epoch=1) for r in range(world_size)]
        joined = [k for p in parts for k in p]
        assert sorted(joined) == everything, world_size
        assert len(set(joined)) == len(joined)
        if kind == "tar" and world_size <= 4:  # whole shards per rank
            for p in parts:
                assert len({k.rsplit("/", 1)[0] for k in p}) == len(p) // 5


def test_shuffle_is_a_function_of_seed_and_epoch(folder: Path, shards: list[Path]) -> None:
    for source in (folder, [str(p) for p in shards]):
        a = _all_keys(source, shuffle=True, shuffle_seed=3, epoch=0)
        assert a == _all_keys(source, shuffle=True, shuffle_seed=3, epoch=0)
        assert a != _all_keys(source, shuffle=True, shuffle_seed=3, epoch=1)
        assert a != _all_keys(source, shuffle=True, shuffle_seed=4, epoch=0)
        assert sorted(a) == sorted(_all_keys(source))
    items = list_items(folder)
    assert shard_items(items, shuffle=True, shuffle_seed=1, epoch=2) == \
        shard_items(list_items(folder), shuffle=True, shuffle_seed=1, epoch=2)


def test_set_epoch_and_len(folder: Path) -> None:
    it = spdl.io.iter_image_batches(folder, batch_size=4, shuffle=True, **SIZE)
    assert len(it) == 3
    first = [b.keys for b in it]
    it.set_epoch(1)
    second = [b.keys for b in it]
    assert first != second and len(first) == len(second) == 3
    assert len(spdl.io.iter_image_batches(folder, batch_size=4, drop_last=True, **SIZE)) == 2
    it.close()


def test_crops_differ_per_batch_and_repeat_per_epoch(folder: Path) -> None:
    kw = dict(batch_size=2, crop=spdl.io.RandomResizedCrop(), hflip=0.5, **SIZE)
    a = [b.crops for b in spdl.io.iter_image_batches([folder / "a" / "img0.jpg"] * 4, **kw)]
    b = [b.crops for b in spdl.io.iter_image_batches([folder / "a" / "img0.jpg"] * 4, **kw)]
    assert a == b and a[0] != a[1]


@pytest.mark.parametrize("how", ["break", "close", "with", "exception"])
def test_leaving_early_releases_threads_and_files(how: str, shards: list[Path]) -> None:
    gc.collect()
    threads, fds = _threads(), _fds()
    source = [str(p) for p in shards]
    kw = dict(batch_size=2, prefetch=2, num_threads=2, **SIZE)
    if how == "break":
        for i, _ in enumerate(spdl.io.iter_image_batches(source, **kw)):
            assert _threads() > threads
            if i == 1:
                break
    elif how == "close":
        it = spdl.io.iter_image_batches(source, **kw)
        next(it)
        it.close()
    elif how == "with":
        with spdl.io.iter_image_batches(source, **kw) as it:
            for _ in it:
                break
    else:
        with pytest.raises(KeyError):
            for _ in spdl.io.iter_image_batches(source, **kw):
                raise KeyError("stop")
    assert _threads() == threads
    assert _fds() == fds


def test_async_twin_and_cancellation(shards: list[Path]) -> None:
    source = [str(p) for p in shards]
    want = [b.keys for b in spdl.io.iter_image_batches(source, batch_size=6, **SIZE)]

    async def collect() -> list:
        out = []
        async with spdl.io.aiter_image_batches(source, batch_size=6, **SIZE) as it:
            async for b in it:
                out.append(b.keys)
        return out

    assert asyncio.run(collect()) == want
    gc.collect()
    threads, fds = _threads(), _fds()

    async def cancelled() -> None:
        started = asyncio.Event()

        async def consume() -> None:
            async for _ in spdl.io.aiter_image_batches(source, batch_size=1, prefetch=1, **SIZE):
                started.set()
                await asyncio.sleep(10)

        task = asyncio.create_task(consume())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled())
    assert _threads() == threads and _fds() == fds


def test_cancelled_while_waiting_for_a_batch(tmp_path: Path) -> None:
    """A task cancelled while it awaits a batch stops the producer before it returns."""
    big = tmp_path / "big.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (480, 640, 3), np.uint8)).save(big)
    gc.collect()
    threads = _threads()

    async def main() -> None:
        async def consume() -> None:
            async for _ in spdl.io.aiter_image_batches([big] * 400, batch_size=200,
                                                       num_threads=1, **SIZE):
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)  # inside the first batch (~2 s of decoding)
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - t0 < 1.0  # the batch was cancelled, not finished
        assert _threads() == threads

    asyncio.run(main())


class _Counted(os.PathLike):
    """A path that counts how often the loader asks for it."""

    reads = 0

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __fspath__(self) -> str:
        _Counted.reads += 1
        return self.path


def test_prefetch_is_bounded(folder: Path) -> None:
    srcs = [_Counted(folder / "a" / "img0.jpg") for _ in range(12)]
    it = spdl.io.iter_image_batches(srcs, batch_size=1, prefetch=2, num_threads=1, **SIZE)
    _Counted.reads = 0
    worst = 0
    for taken, _ in enumerate(it, 1):
        time.sleep(0.1)  # a slow consumer: the producer runs ahead, as far as allowed
        worst = max(worst, _Counted.reads - taken)
    assert worst == 2  # prefetch batches ahead, never more
    assert _Counted.reads == 12


def test_num_threads(folder: Path) -> None:
    srcs = [folder / "a" / "img0.jpg"] * 24
    seen: set[str] = set()
    for _ in spdl.io.iter_image_batches(srcs, batch_size=12, num_threads=3, **SIZE):
        seen |= {t.name for t in threading.enumerate() if t.name.startswith("spdl-decode")}
    assert 1 <= len(seen) <= 2  # 2 executor threads + the producer's own

    with pytest.raises(ValueError, match="num_threads"):
        spdl.io.load_image_batch(srcs, num_threads=0, **SIZE)
    with pytest.raises(TypeError, match="num_threads"):
        spdl.io.load_image_batch(srcs, num_threads=1.5, **SIZE)  # type: ignore[arg-type]
    np.testing.assert_array_equal(_rows(spdl.io.load_image_batch(srcs, num_threads=3, **SIZE)),
                                  _expected(srcs))

    class Counting(concurrent.futures.ThreadPoolExecutor):
        submitted = 0

        def submit(self, *a, **k):  # type: ignore[no-untyped-def, override]
            Counting.submitted += 1
            return super().submit(*a, **k)

    async def run(**kw) -> int:
        Counting.submitted = 0
        ex = Counting(8)
        asyncio.get_running_loop().set_default_executor(ex)
        await spdl.io.async_load_image_batch(srcs, **kw, **SIZE)
        return Counting.submitted

    assert asyncio.run(run(num_threads=3)) == 3
    spdl.io.set_num_threads(2)
    try:
        assert spdl.io.get_num_threads() == 2
        assert asyncio.run(run()) == 2
    finally:
        spdl.io.set_num_threads(None)
    assert spdl.io.get_num_threads() == len(os.sched_getaffinity(0))


def test_cpu_buffer_len_and_pickle(folder: Path) -> None:
    [buf] = spdl.io.iter_image_batches(folder, labels="folder", batch_size=20,
                                       crop=spdl.io.CenterCrop(), **SIZE)
    assert len(buf) == buf.shape[0] == 8
    copy = pickle.loads(pickle.dumps(buf))
    assert isinstance(copy, spdl.io.CPUBuffer) and copy.data_ptr != buf.data_ptr
    np.testing.assert_array_equal(_rows(copy), _rows(buf))
    for attr in ("shape", "dtype", "pix_fmt", "indices", "crops", "keys", "labels"):
        assert getattr(copy, attr) == getattr(buf, attr), attr
    f = spdl.io.load_image_batch([folder / "top.jpg", b"bad"], strict=False, dtype="float32",
                                 layout="NCHW", **SIZE)
    g = pickle.loads(pickle.dumps(f))
    assert g.dtype == "float32" and g.shape == f.shape and len(g) == 1
    assert type(g.errors[1]) is type(f.errors[1]) and str(g.errors[1]) == str(f.errors[1])
    np.testing.assert_array_equal(_rows(g), _rows(f))


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    images = [_jpeg(n) for n in range(7)]
    images[3] = b"broken"
    plain = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"image": images, "label": list(range(7))}), plain, row_group_size=3)
    [buf] = spdl.io.iter_image_batches(plain, batch_size=10, **SIZE)
    assert buf.keys == tuple(f"{plain}#{i}" for i in (0, 1, 2, 4, 5, 6))
    assert buf.labels == (0, 1, 2, 4, 5, 6)
    assert list(buf.errors) == [f"{plain}#3"]
    np.testing.assert_array_equal(_rows(buf), _expected([images[i] for i in (0, 1, 2, 4, 5, 6)]))
    # Hugging Face's Image feature: a struct of bytes and path; a chosen column
    hf = tmp_path / "hf.parquet"
    struct = [{"bytes": b, "path": f"{i}.jpg"} for i, b in enumerate(images)]
    pq.write_table(pa.table({"img": struct, "y": [str(i) for i in range(7)]}), hf, row_group_size=2)
    bufs = list(spdl.io.iter_image_batches(hf, column="img", label_column="y", batch_size=4, **SIZE))
    assert [k for b in bufs for k in b.keys] == [f"{hf}#{i}" for i in (0, 1, 2, 4, 5, 6)]
    assert [lab for b in bufs for lab in b.labels] == ["0", "1", "2", "4", "5", "6"]
    # row groups are the shards: disjoint and complete across ranks, shuffled
    keys = [[k for b in spdl.io.iter_image_batches(hf, column="img", batch_size=3, rank=r,
                                                   world_size=2, shuffle=True, **SIZE)
             for k in (*b.keys, *b.errors)] for r in range(2)]
    assert sorted(keys[0] + keys[1]) == sorted(f"{hf}#{i}" for i in range(7))
    assert not set(keys[0]) & set(keys[1])


def test_torch_iterable_dataset(folder: Path) -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, IterableDataset

    class Images(IterableDataset):  # type: ignore[type-arg]
        def __init__(self) -> None:
            self.batches = spdl.io.iter_image_batches(folder, labels="folder", batch_size=4,
                                                      shuffle=True, **SIZE)

        def __iter__(self):  # type: ignore[no-untyped-def]
            for buf in self.batches:
                yield spdl.io.to_torch(buf), torch.tensor(buf.labels)

    loader = DataLoader(Images(), batch_size=None, num_workers=0)
    seen = 0
    for x, y in loader:
        assert x.shape[1:] == (12, 16, 3) and x.shape[0] == y.shape[0]
        seen += len(y)
    assert seen == 8
    # the iterator itself, straight into DataLoader
    direct = DataLoader(spdl.io.iter_image_batches(folder, batch_size=4, **SIZE),  # type: ignore[arg-type]
                        batch_size=None, num_workers=0, collate_fn=spdl.io.to_torch)
    assert sum(len(x) for x in direct) == 9


def test_argument_checks(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        spdl.io.iter_image_batches(folder, batch_size=0, **SIZE)
    with pytest.raises(ValueError, match="prefetch"):
        spdl.io.iter_image_batches(folder, batch_size=1, prefetch=0, **SIZE)
    with pytest.raises(ValueError, match="rank"):
        spdl.io.iter_image_batches(folder, batch_size=1, rank=2, world_size=2, **SIZE)
    with pytest.raises(ValueError, match="labels"):
        spdl.io.iter_image_batches(folder, batch_size=1, labels="nope", **SIZE)
    with pytest.raises(ValueError, match="one value per input"):
        spdl.io.iter_image_batches(folder, batch_size=1, hflip=[True], **SIZE)
    with pytest.raises(FileNotFoundError):
        spdl.io.iter_image_batches(tmp_path / "missing", batch_size=1, **SIZE)
    with pytest.raises(ValueError, match="not a dataset source"):
        spdl.io.iter_image_batches(folder / "top.jpg", batch_size=1, **SIZE)
    (tmp_path / "x.tar").write_bytes(b"not a tar" * 100)
    with pytest.raises(spdl.io.SourceError, match="tar"):
        spdl.io.iter_image_batches(tmp_path / "x.tar", batch_size=1, **SIZE)
