"""From a dataset to batches: list a source's items, shard, shuffle, batch, and load ahead.

    for buf in spdl.io.iter_image_batches("train/", labels="folder", batch_size=64,
                                          width=224, height=224, shuffle=True, epoch=e):
        x = spdl.io.to_torch(buf); y = buf.labels; ...

A source is listed once into :class:`Item` s (key, label, and a deferred read that
returns what the loader takes: a path, a memoryview of a tar member in the shard's
mmap, an Arrow buffer of a Parquet row). Each rank takes its part (whole shards
when there are enough), shuffled as a pure function of (shuffle_seed, epoch), and
cuts it into batches. A producer thread loads the next batches with the CPU loader
(the thread itself plus ``num_threads - 1`` executor threads decode) and keeps at
most ``prefetch`` of them ready; leaving the loop (``break``, ``close()``, an
exception, a cancelled task) stops it, joins its threads and closes every file.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import glob
import io
import mmap
import os
import sys
import tarfile
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Union, cast

if TYPE_CHECKING:
    import numpy as np

from spdl.io._buffer import CPUBuffer, _label_rows
from spdl.io._config import as_int
from spdl.io._errors import SourceError, SpdlIOError, raise_for_failures
from spdl.io._load import _batch_job, get_num_threads, run_job
from spdl.io._plan import LoadPlan, compile_plan
from spdl.io._types import Source

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from spdl.io._buffer import DatasetBatch

    from spdl.io._types import LoadOptions

__all__ = [
    "IMAGE_EXTENSIONS",
    "Item",
    "ItemList",
    "ImageBatches",
    "list_items",
    "shard_items",
    "batch_items",
    "iter_image_batches",
    "aiter_image_batches",
]

#: The file extensions a directory listing takes as images (lower case, with the dot).
IMAGE_EXTENSIONS: frozenset[str] = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".webp", ".bmp", ".dib", ".gif",
    ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".pnm", ".pam", ".pfm", ".ico", ".cur", ".qoi",
    ".jp2", ".j2k", ".j2c", ".jxl", ".exr", ".dds", ".dpx", ".pcx", ".psd", ".sgi", ".rgb",
    ".ras", ".sun", ".xbm", ".xpm", ".xwd", ".hdr",
})
_TAR_EXTENSIONS = (".tar",)
_PARQUET_EXTENSIONS = (".parquet", ".pq")
#: Open shards (mmaps, Parquet files) a listing keeps before closing the least recent.
_MAX_OPEN = 32

#: A label: a class index, a text, or None.
Label = Union[int, str, None]
#: What the iterators and `list_items` take: a directory, a tar or Parquet path or glob,
#: or a list (of tar or Parquet paths, or of image paths and bytes).
DatasetSource = Union[str, "os.PathLike[str]", Sequence[Source]]
#: ``"folder"`` (a directory), or one label per source (a list).
Labels = Union[str, Sequence[Union[int, str]], None]


@dataclasses.dataclass(frozen=True)
class Item:
    """One image of a dataset, not read yet.

    Attributes:
        key: What names it: the path, ``"shard.tar/member.jpg"``, ``"file.parquet#row"``,
            or ``"bytes #i"`` for the i-th bytes of a list.
        label: Its class index or text, or None.
        read: Returns what the loader takes (a path, or a bytes-like object that stays
            valid while the listing is open); may raise OSError.
        shard: The index of the unit it is stored in (a tar file, a Parquet row group),
            which sharding hands out whole; -1 for a file or a list element.
    """

    key: str
    label: Label
    read: Callable[[], Source] = dataclasses.field(repr=False, compare=False)
    shard: int = -1


class ItemList(list):  # type: ignore[type-arg]
    """A listing: a list of Item, the class names of ``labels="folder"`` (else None),
    and the open shards its reads use, closed by ``close()`` (they reopen if read again)."""

    classes: list[str] | None
    num_shards: int

    def __init__(self, items: list[Item], *, classes: list[str] | None = None,
                 shards: Sequence[_Shard] = (), window: int = 0) -> None:
        super().__init__(items)
        self.classes = classes
        self.num_shards = len(shards)
        self._shards = list(shards)
        # Shuffling keeps reads local: > 0 permutes rows only within windows of this many
        # consecutive shards (Parquet row groups, read whole); 0 permutes freely.
        self._window = window

    def close(self) -> None:
        """Close every file the reads opened."""
        for s in self._shards:
            s.close()

    def trim(self, keep: int = _MAX_OPEN) -> None:
        """Close the least recently used open shards beyond ``keep``."""
        open_ = sorted((s for s in self._shards if s.is_open), key=lambda s: s.last_used)
        for s in open_[:max(0, len(open_) - keep)]:
            s.close()

    def __enter__(self) -> ItemList:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Shard:
    """A file the reads of several items share, opened on first use."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.last_used = 0
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __getstate__(self) -> dict[str, Any]:  # pickled (a Ray task) by path, unopened
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]


_clock = iter(range(1, 1 << 62))


class _TarShard(_Shard):
    """A tar file, mapped into memory: a member is a memoryview of the map, no copy."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self._map: mmap.mmap | None = None

    @property
    def is_open(self) -> bool:
        return self._map is not None

    def member(self, offset: int, size: int) -> memoryview:
        with self._lock:
            if self._map is None:
                with open(self.path, "rb") as f:
                    if os.fstat(f.fileno()).st_size == 0:
                        return memoryview(b"")
                    self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            self.last_used = next(_clock)
            return memoryview(self._map)[offset:offset + size]

    def close(self) -> None:
        with self._lock:
            m, self._map = self._map, None
        if m is not None:
            try:
                m.close()
            except BufferError:  # a view is still held somewhere: the map closes with it
                pass


class _ParquetShard(_Shard):
    """A Parquet file whose image column is read one row group at a time (a few kept)."""

    def __init__(self, path: str, column: str = "image", keep: int = 4) -> None:
        super().__init__(path)
        self.column = column
        self.keep = keep
        self._file: Any = None
        self._groups: collections.OrderedDict[int, Any] = collections.OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "column": self.column, "keep": self.keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["column"], state["keep"])  # type: ignore[misc]

    @property
    def is_open(self) -> bool:
        return self._file is not None

    def row(self, group: int, index: int) -> Any:
        with self._lock:
            self.last_used = next(_clock)
            values = self._groups.get(group)
            if values is None:
                if self._file is None:
                    self._file = _parquet().ParquetFile(self.path)
                table = self._file.read_row_group(group, columns=[self.column.split(".")[0]])
                values = _image_values(table.column(0).combine_chunks(), self.column)
                self._groups[group] = values
                while len(self._groups) > self.keep:
                    self._groups.popitem(last=False)
            else:
                self._groups.move_to_end(group)
        value = values[index]
        if not value.is_valid:
            return b""
        return value.as_buffer()  # the Arrow buffer (buffer protocol), no copy

    def close(self) -> None:
        with self._lock:
            f, self._file = self._file, None
            self._groups.clear()
        if f is not None:
            f.close()


def _parquet() -> Any:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        raise ImportError("reading Parquet needs pyarrow: pip install 'pixelbatch[parquet]'") from None
    return pq


def _image_values(array: Any, column: str) -> Any:
    """The binary array of an image column: the column itself, or a struct's ``bytes``
    field (Hugging Face's Image feature: {bytes, path})."""
    import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]

    if pa.types.is_struct(array.type):
        field = column.split(".", 1)[1] if "." in column else "bytes"
        return array.field(field)
    return array


# ---------------------------------------------------------------------------
# Listing
# ---------------------------------------------------------------------------


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _list_directory(root: str, labels: object) -> ItemList:
    if labels not in (None, "folder"):
        raise ValueError(f"labels for a directory must be None or 'folder', got {labels!r}")
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        files.extend(os.path.join(dirpath, f) for f in filenames if _is_image(f))
    files.sort()
    if labels != "folder":
        return ItemList([Item(f, None, functools.partial(_same, f)) for f in files])
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    index = {c: i for i, c in enumerate(classes)}
    items = []
    for f in files:
        top = os.path.relpath(f, root).split(os.sep, 1)
        if len(top) == 2:  # files directly in root belong to no class
            items.append(Item(f, index[top[0]], functools.partial(_same, f)))
    return ItemList(items, classes=classes)


def _same(src: Source) -> Source:
    return src


def _list_sources(srcs: Sequence[Any], labels: object) -> ItemList:
    if labels is not None:
        if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence):
            raise TypeError("labels for a list of sources must be a sequence, one per source")
        if len(labels) != len(srcs):
            raise ValueError(f"{len(labels)} labels for {len(srcs)} sources")
    items = []
    for i, src in enumerate(srcs):
        if isinstance(src, (str, os.PathLike)):
            key = os.fspath(src)
            key = key if isinstance(key, str) else os.fsdecode(key)
        elif isinstance(src, (bytes, bytearray, memoryview)) or hasattr(src, "__buffer__") \
                or hasattr(src, "__array_interface__"):
            key = f"bytes #{i}"
        else:
            raise TypeError(f"sources[{i}] is a {type(src).__name__}; expected a path or bytes")
        label = None if labels is None else _label(labels[i])
        items.append(Item(key, label, functools.partial(_same, src)))
    return ItemList(items)


def _label(value: object) -> Label:
    if value is None or isinstance(value, str):
        return value
    v = as_int(value)
    if v is None:
        raise TypeError(f"a label must be an int, a str or None, not {type(value).__name__}")
    return v


def _split_member(name: str) -> tuple[str, str]:
    """WebDataset's grouping: the sample key is the member name up to the first dot of its
    last path component; the rest is the member's extension."""
    head, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (head + "/" + stem if head else stem), ext.lower()


def _decode_label(data: bytes, ext: str) -> Label:
    text = data.decode("utf-8", "replace").strip()
    if ext.endswith("cls"):
        try:
            return int(text)
        except ValueError:
            return text
    return text


def _list_tars(paths: list[str], first_shard: int) -> tuple[list[Item], list[_Shard]]:
    items: list[Item] = []
    shards: list[_Shard] = []
    for n, path in enumerate(paths):
        shard = _TarShard(path)
        shards.append(shard)
        samples: dict[str, dict[str, tarfile.TarInfo]] = {}
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            try:
                tf = tarfile.open(fileobj=f, mode="r:")
            except tarfile.ReadError as e:
                raise SourceError(f"{path}: not an uncompressed tar file ({e})", source=path,
                                  stage="list") from None
            with tf:
                try:
                    for m in tf:
                        if m.isfile():
                            key, ext = _split_member(m.name)
                            samples.setdefault(key, {})[ext] = m
                except tarfile.TarError:
                    pass  # a shard cut short: the members listed so far (cut ones fail to load)
            for key, members in samples.items():
                image = next((members[e] for e in members
                              if "." + e.rsplit(".", 1)[-1] in IMAGE_EXTENSIONS), None)
                if image is None:
                    continue
                label: Label = None
                for ext in ("cls", "txt"):
                    lm = members.get(ext) or next(
                        (v for e, v in members.items() if e.endswith("." + ext)), None)
                    if lm is not None and lm.offset_data + lm.size <= size:
                        f.seek(lm.offset_data)
                        label = _decode_label(f.read(lm.size), ext)
                        break
                end = min(image.offset_data + image.size, size)
                items.append(Item(f"{path}/{image.name}", label,
                                  functools.partial(shard.member, image.offset_data,
                                                    max(0, end - image.offset_data)),
                                  first_shard + n))
    return items, shards


def _list_parquet(paths: list[str], column: str | None, label_column: str | None,
                  first_shard: int) -> tuple[list[Item], list[_Shard]]:
    pq = _parquet()
    items: list[Item] = []
    shards: list[_Shard] = []
    unit = first_shard
    for path in paths:
        pf = pq.ParquetFile(path)
        try:
            names = pf.schema_arrow.names
            col = column or next((c for c in ("image", "img", "jpg", "png") if c in names), None)
            if col is None or col.split(".")[0] not in names:
                raise ValueError(f"{path}: no image column {col or 'image'!r} (columns: "
                                 f"{', '.join(names)}); pass column=")
            lcol = label_column if label_column is not None else (
                "label" if "label" in names else None)
            if lcol is not None and lcol not in names:
                raise ValueError(f"{path}: no label column {lcol!r} (columns: {', '.join(names)})")
            labels = pf.read(columns=[lcol]).column(0).to_pylist() if lcol else None
            shard = _ParquetShard(path, col)
            shards.append(shard)
            row = 0
            for g in range(pf.metadata.num_row_groups):
                for i in range(pf.metadata.row_group(g).num_rows):
                    label = _label(labels[row]) if labels is not None else None
                    items.append(Item(f"{path}#{row}", label,
                                      functools.partial(shard.row, g, i), unit))
                    row += 1
                unit += 1
        finally:
            pf.close()
    return items, shards


def _expand(source: Any) -> tuple[str, list[str]] | None:
    """("tar" | "parquet", paths) for a tar or Parquet path, glob or list of them; else None."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        path = path if isinstance(path, str) else os.fsdecode(path)
        if os.path.isdir(path):
            return None
        if os.path.exists(path):
            paths = [path]
        elif glob.has_magic(path):
            paths = sorted(glob.glob(path))
            if not paths:
                raise FileNotFoundError(f"no file matches {path!r}")
        else:
            raise FileNotFoundError(f"no such directory or file: {path!r}")
    elif isinstance(source, Sequence) and source and all(
            isinstance(s, (str, os.PathLike)) for s in source):
        paths = [os.fsdecode(os.fspath(s)) for s in source]
    else:
        return None
    lower = [p.lower() for p in paths]
    if all(p.endswith(_TAR_EXTENSIONS) for p in lower):
        return "tar", paths
    if all(p.endswith(_PARQUET_EXTENSIONS) for p in lower):
        return "parquet", paths
    if isinstance(source, (str, os.PathLike)):
        raise ValueError(f"{paths[0]!r} is not a dataset source: pass a directory, tar shards "
                         "(.tar), Parquet files (.parquet) or a list of paths or bytes")
    return None


def list_items(source: DatasetSource, *, labels: Labels = None, column: str | None = None,
               label_column: str | None = None) -> ItemList:
    """List the images of a source, in a fixed order, without reading them.

    Args:
        source: A directory (recursive, files with an IMAGE_EXTENSIONS extension,
            sorted); a tar file, a glob of them or a list of them (WebDataset layout:
            members grouped by the name up to the first dot; the image member, and a
            ``.cls`` (int) or ``.txt`` member as the label); a Parquet file, a glob or
            a list of them (pyarrow); or a list of paths and bytes-like objects.
        labels: For a directory, ``"folder"``: the index of each image's first-level
            subfolder in sorted order (``.classes`` names them; files directly in the
            directory are left out). For a list of sources, one label per source.
        column: The Parquet column with the encoded images: binary, or a struct with a
            ``bytes`` field (Hugging Face's Image); default ``image``. ``"img.bytes"``
            names a struct's field.
        label_column: The Parquet column of labels; default ``label`` when present.

    Returns:
        An ItemList; close it (or use ``with``) to close the shards the reads open.
    """
    kind = _expand(source)
    if kind is None:
        if isinstance(source, (str, os.PathLike)):
            path = os.fsdecode(os.fspath(source))
            if not os.path.isdir(path):
                raise FileNotFoundError(f"no such directory or file: {path!r}")
            return _list_directory(path, labels)
        if isinstance(source, (bytes, bytearray, memoryview)) or not isinstance(source, Sequence):
            raise TypeError(f"source must be a directory, tar or Parquet path(s), or a list of "
                            f"paths or bytes, not {type(source).__name__}")
        return _list_sources(source, labels)
    if labels not in (None,):
        raise ValueError(f"labels={labels!r}: tar shards and Parquet files carry their own labels")
    what, paths = kind
    if what == "tar":
        items, shards = _list_tars(paths, 0)
        return ItemList(items, shards=shards)
    items, shards = _list_parquet(paths, column, label_column, 0)
    n_units = items[-1].shard + 1 if items else 0
    out = ItemList(items, shards=shards, window=4)
    out.num_shards = n_units
    return out


# ---------------------------------------------------------------------------
# Sharding, shuffling, batching: pure functions of their arguments
# ---------------------------------------------------------------------------


def _rng(seed: int, epoch: int, *more: int) -> np.random.Generator:
    import numpy as np  # (not at import: `import spdl.io` stays light)

    return np.random.Generator(np.random.PCG64([seed & (2**64 - 1), epoch & (2**64 - 1), *more]))


def shard_items(items: Sequence[Item], *, rank: int = 0, world_size: int = 1,
                shuffle: bool = False, shuffle_seed: int = 0, epoch: int = 0,
                window: int = 0) -> list[Item]:
    """This rank's items, in the order this epoch reads them.

    Items stored in shards (tar files, Parquet row groups) are handed out as whole shards
    when there are at least ``world_size`` of them; otherwise item by item. Either way the
    ranks' parts are disjoint and together complete. With ``shuffle``, the order (and
    which shards go where) is a permutation drawn from (shuffle_seed, epoch) only, so every
    rank computes the same split; ``window`` > 0 keeps a shuffle within that many
    consecutive shards (reads stay local).
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
    n = len(items)
    units: dict[int, list[int]] = {}
    for i, it in enumerate(items):
        if it.shard >= 0:
            units.setdefault(it.shard, []).append(i)
    import numpy as np

    rng = _rng(shuffle_seed, epoch)
    if n and len(units) >= world_size and all(it.shard >= 0 for it in items):
        order = list(units)
        if shuffle:
            order = [order[k] for k in rng.permutation(len(order))]
        mine = order[rank::world_size]
        if not shuffle:
            return [items[i] for u in mine for i in units[u]]
        out: list[Item] = []
        step = window if window > 0 else len(mine) or 1
        for start in range(0, len(mine), step):
            idx = np.array([i for u in mine[start:start + step] for i in units[u]], dtype=np.int64)
            out.extend(items[i] for i in idx[rng.permutation(len(idx))])
        return out
    perm = rng.permutation(n) if shuffle else np.arange(n)
    return [items[i] for i in perm[rank::world_size]]


def batch_items(items: Sequence[Item], batch_size: int, drop_last: bool = False) -> list[list[Item]]:
    """items cut into batches of batch_size (the last one shorter unless drop_last)."""
    out = [list(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]
    if drop_last and out and len(out[-1]) < batch_size:
        out.pop()
    return out


# ---------------------------------------------------------------------------
# The iterator
# ---------------------------------------------------------------------------


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = object()
_EMPTY = object()


class _Pass:
    """One pass over the batches: a producer thread loads them into a bounded deque.

    The producer takes a slot before it starts a batch and the consumer gives it back
    when it takes the batch, so at most ``prefetch`` batches are loaded or being loaded
    ahead of the consumer. Nothing here refers to the ImageBatches that made it, so
    dropping that (or the generator) stops the pass.
    """

    def __init__(self, batches: list[list[Item]], plan: LoadPlan, seeds: list[int | None],
                 prefetch: int, threads: int, listing: ItemList, labelled: bool) -> None:
        self._batches = batches
        self._plan = plan
        self._seeds = seeds
        self._prefetch = prefetch
        self._threads = threads
        self._listing = listing
        self._labelled = labelled
        self._ready: collections.deque[Any] = collections.deque()
        self._cond = threading.Condition()
        self._ahead = 0
        self._stop = False
        self._job: Any = None
        self._notify: Callable[[], object] | None = None
        self._executor = (ThreadPoolExecutor(threads - 1, thread_name_prefix="spdl-decode")
                          if threads > 1 else None)
        self._thread = threading.Thread(target=self._produce, name="spdl-batches", daemon=True)
        self._thread.start()

    # -- the producer thread --

    def _produce(self) -> None:
        try:
            for b, items in enumerate(self._batches):
                with self._cond:
                    while self._ahead >= self._prefetch and not self._stop:
                        self._cond.wait()
                    if self._stop:
                        return
                    self._ahead += 1
                buf = self._load(items, self._seeds[b])
                if buf is None:
                    return
                self._push(buf)
                if self._listing.num_shards > _MAX_OPEN:
                    self._listing.trim()
            self._push(_END)
        except BaseException as e:  # handed to the consumer, in order
            self._push(_Failed(e))

    def _load(self, items: list[Item], seed: int | None) -> CPUBuffer | None:
        srcs: list[Any] = []
        pos: list[int] = []  # each source's index in items
        failed: dict[int, SpdlIOError] = {}
        job: Any = None
        try:
            for k, it in enumerate(items):
                try:
                    srcs.append(it.read())
                    pos.append(k)
                except Exception as e:  # OSError, or Arrow's for a bad row group
                    failed[k] = SourceError(f"{it.key}: cannot read: {e}", source=it.key,
                                            stage="read")
            raise_for_failures(failed, len(items), strict=self._plan.strict)
            plan = self._plan if seed is None else dataclasses.replace(self._plan, seed=seed)
            job = _batch_job(srcs, plan, None)
            with self._cond:
                if self._stop:
                    return None
                self._job = job
            try:
                run_job(job, self._threads, self._executor)
            finally:
                with self._cond:
                    self._job = None
            if self._stop:
                return None
            buf: CPUBuffer = job.finish(plan.strict)
        finally:
            job = None  # drops the job's hold on the sources, then the views into tar maps
            for src in srcs:
                if isinstance(src, memoryview):
                    try:
                        src.release()
                    except BufferError:
                        pass
            srcs.clear()
        for i, exc in buf.errors.items():
            failed[pos[i]] = exc
        rows = [items[pos[i]] for i in buf.indices]
        labels = tuple(r.label for r in rows) if self._labelled else None
        errors = {items[k].key: failed[k] for k in sorted(failed)}
        _label_rows(buf, tuple(r.key for r in rows), labels, errors)
        return buf

    def _push(self, value: object) -> None:
        with self._cond:
            self._ready.append(value)
            self._cond.notify_all()
            notify = self._notify
        if notify is not None:
            try:
                notify()
            except RuntimeError:  # the consumer's event loop is closed
                pass

    # -- the consumer --

    def _take(self) -> object:
        # called with the lock held and self._ready not empty
        value = self._ready.popleft()
        if isinstance(value, CPUBuffer):
            self._ahead -= 1
            self._cond.notify_all()
        return value

    def get(self) -> DatasetBatch | None:
        """The next batch (None at the end); blocks until it is loaded."""
        with self._cond:
            while not self._ready and not self._stop:
                self._cond.wait()
            if not self._ready:  # stopped by close() from another thread
                return None
            value = self._take()
        return self._result(value)

    def poll(self) -> object:
        """The next batch, None at the end, or _EMPTY if it is not loaded yet."""
        with self._cond:
            if not self._ready:
                return _EMPTY
            value = self._take()
        return self._result(value)

    def set_notify(self, fn: Callable[[], object] | None) -> None:
        with self._cond:
            self._notify = fn
            ready = bool(self._ready)
        if ready and fn is not None:
            fn()

    def _result(self, value: object) -> DatasetBatch | None:
        if value is _END:
            self.stop()
            return None
        if isinstance(value, _Failed):
            self.stop()
            raise value.exc
        assert isinstance(value, CPUBuffer)
        return cast("DatasetBatch", value)

    def stop(self) -> None:
        """Stop the producer (its batch is cancelled after the images being decoded), join
        it and the decode threads, and close the listing's files."""
        with self._cond:
            self._stop = True
            if self._job is not None:
                self._job.cancel()
            self._cond.notify_all()
            self._notify = None
        if self._thread is not threading.current_thread():
            self._thread.join()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._ready.clear()
        self._listing.close()


class ImageBatches:
    """The batches of a dataset, loaded ahead by a background thread (iter_image_batches).

    ``for buf in batches`` (or ``async for``) runs one pass over this rank's items for the
    epoch set; each pass starts its own producer. ``next(batches)`` continues a pass of its
    own. ``close()`` (also on ``with`` exit and when dropped) stops every pass and closes
    every file. Usable as a ``torch.utils.data.IterableDataset``'s iterable with
    ``DataLoader(batches, batch_size=None, num_workers=0)``; ``set_epoch`` before each pass.

    Attributes:
        classes: The class names of ``labels="folder"``, else None.
        items: This rank's items in this epoch's order.
    """

    def __init__(self, source: DatasetSource, *, batch_size: int, plan: LoadPlan,
                 labels: Labels = None,
                 column: str | None = None, label_column: str | None = None,
                 shuffle: bool = False, shuffle_seed: int = 0, epoch: int = 0, rank: int = 0,
                 world_size: int = 1, drop_last: bool = False, prefetch: int = 2,
                 user_seed: int | None = None) -> None:
        bs = as_int(batch_size)
        if bs is None or bs < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        pf = as_int(prefetch)
        if pf is None or pf < 1:
            raise ValueError(f"prefetch must be an int >= 1, got {prefetch!r}")
        for name, v in (("shuffle_seed", shuffle_seed), ("epoch", epoch), ("rank", rank),
                        ("world_size", world_size)):
            if as_int(v) is None or as_int(v) < 0:  # type: ignore[operator]
                raise ValueError(f"{name} must be an int >= 0, got {v!r}")
        if world_size < 1 or rank >= world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank={rank}, "
                             f"world_size={world_size}")
        if isinstance(plan.crop, tuple) or isinstance(plan.hflip, tuple):
            raise ValueError("the dataset iterators take crop= and hflip= as rules "
                             "(RandomResizedCrop, CenterCrop, a probability), not one value per input")
        if plan.device_config is not None:
            raise ValueError("the dataset iterators load on the CPU; move each batch with "
                             "spdl.io.transfer_buffer")
        self.batch_size = bs
        self.plan = plan
        self.shuffle = bool(shuffle)
        self.shuffle_seed = int(shuffle_seed)
        self.epoch = int(epoch)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.drop_last = bool(drop_last)
        self.prefetch = pf
        self.num_threads = plan.num_threads
        self._user_seed = user_seed
        self._listing = list_items(source, labels=labels, column=column, label_column=label_column)
        self.classes = self._listing.classes
        self._labelled = any(it.label is not None for it in self._listing)
        self._passes: weakref.WeakSet[_Pass] = weakref.WeakSet()
        self._own: Iterator[DatasetBatch] | None = None
        _register_with_torch()

    def set_epoch(self, epoch: int) -> None:
        """The epoch of the next pass (the shuffle and the per-batch seeds follow it)."""
        if as_int(epoch) is None or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
        self.epoch = int(epoch)

    @property
    def items(self) -> list[Item]:
        return shard_items(self._listing, rank=self.rank, world_size=self.world_size,
                           shuffle=self.shuffle, shuffle_seed=self.shuffle_seed,
                           epoch=self.epoch, window=self._listing._window)

    def __len__(self) -> int:
        """The number of batches of a pass."""
        n = len(self.items)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _start(self) -> _Pass:
        batches = batch_items(self.items, self.batch_size, self.drop_last)
        base = self._user_seed if self._user_seed is not None else self.shuffle_seed
        if self.plan.augmented:  # each batch its own draws, a function of (seed, epoch, batch)
            seeds: list[int | None] = [
                int(_rng(base, self.epoch, b).integers(0, 2**63)) for b in range(len(batches))]
        else:
            seeds = [None] * len(batches)
        threads = self.plan.num_threads or get_num_threads()
        p = _Pass(batches, self.plan, seeds, self.prefetch, threads, self._listing,
                  self._labelled)
        self._passes.add(p)
        return p

    def __iter__(self) -> Iterator[DatasetBatch]:
        return _run(self._start(), self)

    def __next__(self) -> DatasetBatch:
        if self._own is None:
            self._own = _run(self._start(), None)  # no reference back: dropping self stops it
        try:
            return next(self._own)
        except StopIteration:
            self._own = None
            raise

    def __aiter__(self) -> AsyncIterator[DatasetBatch]:
        return _arun(self._start(), self)

    def close(self) -> None:
        """Stop every pass (threads joined) and close every file."""
        if self._own is not None:
            own, self._own = self._own, None
            own.close()  # type: ignore[attr-defined]
        for p in list(self._passes):
            p.stop()
        self._listing.close()

    def __enter__(self) -> ImageBatches:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> ImageBatches:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return (f"ImageBatches({len(self._listing)} items, batch_size={self.batch_size}, "
                f"rank={self.rank}/{self.world_size}, epoch={self.epoch})")


def _register_with_torch() -> None:
    """Make ImageBatches a virtual torch IterableDataset when PyTorch is already imported,
    so DataLoader(batches, batch_size=None) iterates it (torch is never imported here)."""
    data = sys.modules.get("torch.utils.data")
    base = getattr(data, "IterableDataset", None)
    if base is not None and hasattr(base, "register") and not issubclass(ImageBatches, base):
        base.register(ImageBatches)


def _run(p: _Pass, owner: ImageBatches | None) -> Iterator[DatasetBatch]:
    # owner: kept alive while the pass runs (`for b in iter_image_batches(...)` holds only this)
    try:
        while True:
            buf = p.get()
            if buf is None:
                return
            yield buf
    finally:
        p.stop()


async def _arun(p: _Pass, owner: ImageBatches) -> AsyncIterator[DatasetBatch]:
    loop = asyncio.get_running_loop()
    event = asyncio.Event()
    p.set_notify(functools.partial(loop.call_soon_threadsafe, event.set))
    try:
        while True:
            value = p.poll()
            if value is _EMPTY:
                await event.wait()
                event.clear()
                continue
            if value is None:
                return
            yield cast("DatasetBatch", value)
    finally:
        p.stop()


def _make(source: DatasetSource, batch_size: int, labels: Labels, column: str | None,
          label_column: str | None, shuffle: bool, shuffle_seed: int, epoch: int, rank: int,
          world_size: int, drop_last: bool, prefetch: int, options: dict[str, Any]) -> ImageBatches:
    options.setdefault("strict", False)
    user_seed = options.pop("seed", None)
    plan = compile_plan(**options)
    return ImageBatches(source, batch_size=batch_size, plan=plan, labels=labels, column=column,
                        label_column=label_column, shuffle=shuffle, shuffle_seed=shuffle_seed,
                        epoch=epoch, rank=rank, world_size=world_size, drop_last=drop_last,
                        prefetch=prefetch, user_seed=user_seed)


def iter_image_batches(source: DatasetSource, *, batch_size: int, labels: Labels = None,
                       column: str | None = None, label_column: str | None = None,
                       shuffle: bool = False, shuffle_seed: int = 0, epoch: int = 0,
                       rank: int = 0, world_size: int = 1, drop_last: bool = False,
                       prefetch: int = 2, **options: Unpack[LoadOptions]) -> ImageBatches:
    """Iterate a dataset in batches, loaded ahead by a background thread.

    Args:
        source: A directory, tar shard(s) (a path, glob or list), Parquet file(s), or a
            list of paths and bytes; see :func:`spdl.io._dataset.list_items`.
        batch_size: Images per batch (the last one shorter unless ``drop_last``).
        labels: ``"folder"`` for a directory (class index of the first-level subfolder,
            sorted; ``.classes`` names them), one label per source for a list.
        column, label_column: Parquet's image column (default ``image``: binary or a
            {bytes, path} struct) and label column (default ``label`` when present).
        shuffle, shuffle_seed, epoch: The order is a permutation drawn from
            (shuffle_seed, epoch) only; call ``set_epoch`` between passes.
        rank, world_size: This process's disjoint part (whole shards when there are at
            least world_size; together the ranks cover every item once).
        drop_last: Leave out a last, shorter batch.
        prefetch: Batches loaded ahead (at most; >= 1).
        **options: The loader's keyword arguments (width, height required; see
            load_image_batch), with ``strict=False`` by default: a failed image is in the
            batch's ``errors`` under its key. ``num_threads`` workers decode each batch
            (default spdl.io.get_num_threads()). ``seed`` (default ``shuffle_seed``)
            seeds the crop and flip draws, per batch with (epoch, batch index).

    Returns:
        An ImageBatches: iterate it (``for``/``async for``), ``close()`` it or use it in
        ``with``. Each batch is a CPUBuffer whose ``keys``, ``labels`` (None when the
        source has none) and ``errors`` ({key: exception}) name its rows.
    """
    return _make(source, batch_size, labels, column, label_column, shuffle, shuffle_seed, epoch,
                 rank, world_size, drop_last, prefetch, dict(options))


def aiter_image_batches(source: DatasetSource, *, batch_size: int, labels: Labels = None,
                        column: str | None = None, label_column: str | None = None,
                        shuffle: bool = False, shuffle_seed: int = 0, epoch: int = 0,
                        rank: int = 0, world_size: int = 1, drop_last: bool = False,
                        prefetch: int = 2, **options: Unpack[LoadOptions]) -> ImageBatches:
    """:func:`iter_image_batches` for ``async for``: waiting for a batch never blocks the
    event loop, and cancelling the task (or leaving the loop and closing) stops the
    producer and closes every file. Same arguments."""
    return _make(source, batch_size, labels, column, label_column, shuffle, shuffle_seed, epoch,
                 rank, world_size, drop_last, prefetch, dict(options))
