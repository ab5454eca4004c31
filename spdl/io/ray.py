"""Ray Data: decode images with spdl inside ``Dataset.map_batches``, on every machine.

    import ray, spdl.io.ray

    ds = spdl.io.ray.read_images("/data/train", width=224, height=224, labels="folder")
    for batch in ds.iter_batches(batch_size=256):      # {"key", "label", "pixels"}
        batch["pixels"]                                  # (256, 224, 224, 3) uint8

    # or on a column of encoded images that Ray already holds:
    ds = ray.data.read_parquet(...).map_batches(
        spdl.io.ray.ImageDecoder, fn_constructor_kwargs=dict(width=224, height=224),
        compute=ray.data.ActorPoolStrategy(size=8), batch_format="pyarrow")

Ray schedules, moves and retries the work; spdl only decodes. Nothing here
starts a cluster, a queue or a thread of its own (the loader's ``num_threads``
workers aside).

Failed rows. A row whose image does not load (corrupt, unsupported, a null
value, a missing file) is dropped from the output by default, so every row of
``out_column`` is an image. Pass ``errors_column="error"`` to keep every row
instead: failed rows then hold zeros in ``out_column`` and the reason
(``"DecodeError: ..."``) in the errors column, which is null for rows that
loaded; ``ds.filter(lambda row: row["error"] is None)`` keeps the good ones.

Installed with the ``ray`` extra: ``pip install "pixelbatch[ray]"``.
"""

from __future__ import annotations

import glob
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

import spdl.io
from spdl.io._plan import compile_plan
from spdl.io._types import Source

try:
    import pyarrow as pa
    import ray
    import ray.data
except ImportError as e:  # pragma: no cover - the extra is missing
    raise ImportError(
        f"spdl.io.ray needs Ray Data ({e}): pip install 'pixelbatch[ray]'") from e

__all__ = ["ImageDecoder", "read_images"]

_BINARY_TYPES = (pa.binary(), pa.large_binary())
_STRING_TYPES = (pa.string(), pa.large_string())


class ImageDecoder:
    """Decode a column of encoded images (or image paths) into one fixed-size tensor column.

    A callable class for ``Dataset.map_batches``: passed as the class (with
    ``fn_constructor_kwargs`` and an ``ActorPoolStrategy``), Ray builds one per
    actor and calls it on every batch that actor gets; passed as an instance,
    Ray runs it in tasks, which start in Ray's pooled workers at once (what
    read_images does by default). The arguments are checked when it is built.

    Args:
        width, height: The size of every output image.
        column: The input column: encoded images (Arrow binary / Python bytes,
            or Hugging Face's Image struct of ``bytes`` and ``path``), decoded
            from the batch's memory without a copy where Arrow holds them; or
            file paths (strings), read by the loader itself. A bytes
            column is replaced by ``out_column``; a path column stays (it names
            the row).
        out_column: The output column: an (N, H, W, C) tensor (the loader's
            shape for ``pix_fmt``, ``dtype`` and ``layout``), a Ray tensor
            column in Arrow, an ndarray in a numpy batch.
        errors_column: None (default): rows that fail are dropped. A name: every
            row is kept, failed rows hold zeros and their reason in this column.
        num_threads: Workers decoding one batch; default: the CPUs Ray gave the
            actor or task it runs in (``num_cpus`` of ``map_batches``, 1 unless
            set), else the loader's default.
        **options: Any other keyword argument of :func:`spdl.io.load_image_batch`
            (``pix_fmt``, ``scale_mode``, ``crop``, ``dtype``, ...); ``strict``
            is always False here and ``device_config`` is not taken.

    Batches may be ``batch_format="pyarrow"`` (a ``pyarrow.Table``; the output is
    one too) or ``"numpy"`` (a dict of ndarrays; so is the output).
    """

    def __init__(self, width: int | None, height: int | None, *, column: str = "image",
                 out_column: str = "pixels", errors_column: str | None = None,
                 num_threads: int | None = None, **options: Any) -> None:
        if "device_config" in options or "strict" in options:
            bad = "device_config" if "device_config" in options else "strict"
            raise TypeError(f"ImageDecoder does not take {bad}: it decodes on the CPU, "
                            "and failed rows are dropped or reported (errors_column)")
        if out_column == errors_column:
            raise ValueError(f"out_column and errors_column are both {out_column!r}")
        self._options: dict[str, Any] = dict(options, width=width, height=height, strict=False)
        compile_plan(**self._options)  # a bad argument fails here, not on every batch
        self._column = column
        self._out_column = out_column
        self._errors_column = errors_column
        self._num_threads = num_threads  # None: resolved where it runs, on the first batch

    def __call__(self, batch: pa.Table | dict[str, np.ndarray]) -> pa.Table | dict[str, np.ndarray]:
        if isinstance(batch, pa.Table):
            return self._arrow(batch)
        if isinstance(batch, Mapping):
            return self._numpy(batch)
        raise TypeError(f"ImageDecoder takes batch_format='pyarrow' or 'numpy' batches, "
                        f"not {type(batch).__name__}")

    def decode(self, values: Iterable[Any]) -> tuple[np.ndarray, list[int], dict[int, str]]:
        """Decode one column's values: (pixels of the rows that loaded, their row
        indices, {row index: reason} of the rows that did not)."""
        srcs: list[Source] = []
        rows: list[int] = []
        errors: dict[int, str] = {}
        for i, value in enumerate(values):
            src = None if isinstance(value, BaseException) else _as_source(value)
            if isinstance(value, BaseException):
                errors[i] = f"{type(value).__name__}: {value}"
            elif src is None:
                errors[i] = f"no image: the {self._column!r} value is {value!r}"
            else:
                rows.append(i)
                srcs.append(src)
        if self._num_threads is None:
            self._num_threads = _assigned_cpus()
        buf = spdl.io.load_image_batch(srcs, num_threads=self._num_threads, **self._options)
        for i, exc in buf.errors.items():
            errors[rows[i]] = f"{type(exc).__name__}: {exc}"
        return spdl.io.to_numpy(buf), [rows[i] for i in buf.indices], errors

    def _pixels_and_rows(self, n: int, values: Iterable[Any]
                         ) -> tuple[np.ndarray, list[int] | None, list[str | None] | None]:
        # pixels, the input rows they belong to (None: all, in order), the errors column
        pixels, rows, errors = self.decode(values)
        if not errors:
            return pixels, None, ([None] * n if self._errors_column else None)
        if self._errors_column is None:
            return pixels, rows, None
        full = np.zeros((n, *pixels.shape[1:]), dtype=pixels.dtype)
        full[rows] = pixels
        return full, None, [errors.get(i) for i in range(n)]

    def _arrow(self, table: pa.Table) -> pa.Table:
        values = table.column(self._column)
        if values.type not in _STRING_TYPES:
            table = table.drop_columns([self._column])
        return self._attach(table, _arrow_sources(values))

    def _attach(self, table: pa.Table, values: Iterable[Any]) -> pa.Table:
        """table (one row per value) with the decoded values as out_column; failed rows
        dropped or marked."""
        pixels, rows, errors = self._pixels_and_rows(table.num_rows, values)
        if rows is not None:
            table = table.take(pa.array(rows, pa.int64()))
        if errors is not None and self._errors_column is not None:
            table = _put(table, self._errors_column, pa.array(errors, pa.string()))
        return _put(table, self._out_column, _tensor_array(pixels))

    def _numpy(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = batch[self._column]
        n = len(values)
        pixels, rows, errors = self._pixels_and_rows(n, values)
        keep_input = any(isinstance(v, (str, os.PathLike)) for v in values)
        out = {k: v for k, v in batch.items() if k != self._column or keep_input}
        if rows is not None:
            out = {k: np.asarray(v)[rows] for k, v in out.items()}
        if errors is not None and self._errors_column is not None:
            out[self._errors_column] = np.array(errors, dtype=object)
        out[self._out_column] = pixels
        return out


class _TarDecoder(ImageDecoder):
    """map_batches class for read_images: takes rows of tar shard paths and yields, per
    batch_size images of each shard, (key, label, pixels) decoded straight from the
    shard's memory map (no copy of the encoded bytes, none of them in Ray's object store)."""

    def __init__(self, width: int | None, height: int | None, *, batch_size: int,
                 **kwargs: Any) -> None:
        super().__init__(width, height, column="shard", **kwargs)
        self._batch_size = batch_size

    def __call__(self, batch: pa.Table) -> Iterator[pa.Table]:  # type: ignore[override]
        from spdl.io._dataset import list_items

        for shard in batch.column("shard").to_pylist():
            with list_items(shard) as items:
                for i in range(0, len(items), self._batch_size):
                    chunk = items[i:i + self._batch_size]
                    meta = pa.table({"key": pa.array([it.key for it in chunk], pa.string()),
                                     "label": pa.array([it.label for it in chunk])})
                    yield self._attach(meta, [_read(it) for it in chunk])


def read_images(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *,
                width: int | None, height: int | None, labels: str | None = None,
                batch_size: int = 64, concurrency: int | None = None, num_cpus: float = 1,
                errors_column: str | None = None, **options: Any
                ) -> ray.data.Dataset:
    """A Ray Dataset of decoded images from a folder, tar shards, or a list of files.

    Args:
        source: A directory (recursive; image files by extension), a ``.tar``
            shard, a glob of them or a list of shards (WebDataset layout), or a
            list of image paths. Files must be readable at the same path on
            every node (a shared file system); for object stores, read the bytes
            with Ray (``ray.data.read_binary_files``) and map ImageDecoder on them.
        width, height, **options: The loader's arguments (see ImageDecoder).
        labels: ``"folder"`` for a directory: the class index of each file's
            first-level subfolder, in sorted order (column ``label``). Tar
            shards give their ``.cls`` (int) or ``.txt`` (str) members as labels
            (column ``label``, null where a sample has none).
        batch_size: Rows per decoded batch (one Ray block of paths each).
        concurrency: None (default): Ray tasks decode, as many at once as the
            cluster has CPUs for them; they start in a fraction of a second in
            Ray's pooled workers. An int: that many long-lived ImageDecoder actors
            (each keeps its decoder, but a pass waits seconds for them to start:
            worth it only when a pass is long).
        num_cpus: CPUs each task or actor reserves; it decodes with as many threads.
        errors_column: As ImageDecoder's: None drops failed rows.

    Returns:
        A lazy Dataset with columns ``key`` (the file's path, or
        ``"shard.tar/member"``), ``label`` (with labels; always for tar shards),
        the errors column (when asked) and ``pixels`` (N, H, W, C). Ray does not
        keep row order unless ``DataContext.execution_options.preserve_order`` is set.

    The split is by file: one row per image file, one block per ``batch_size``
    of them; a tar shard is one block, opened by the worker that decodes it
    (its members decoded from the shard's memory map, never copied into Ray).
    """
    from spdl.io._dataset import list_items

    decoder: dict[str, Any] = dict(options, width=width, height=height,
                                   errors_column=errors_column, out_column="pixels")
    shards = _tar_shards(source)
    if shards and labels is not None:
        raise ValueError("read_images: tar shards carry their own labels (.cls/.txt); "
                         "labels= is for a directory")
    if shards:
        ds = ray.data.from_items([{"shard": s} for s in shards], override_num_blocks=len(shards))
        return _map(ds, _TarDecoder, dict(decoder, batch_size=batch_size), 1, concurrency,
                    num_cpus)
    if isinstance(source, (str, os.PathLike)) and not os.path.isdir(source):
        raise ValueError(f"read_images: {os.fspath(source)!r} is neither a directory nor tar "
                         "shards (for Parquet: ray.data.read_parquet, then ImageDecoder)")
    with list_items(source, labels=labels) as items:
        if not items:
            raise FileNotFoundError(f"read_images: no images in {source!r}")
        rows = [{"key": it.key, "label": it.label} if labels else {"key": it.key} for it in items]
    ds = ray.data.from_items(rows, override_num_blocks=max(1, math.ceil(len(rows) / batch_size)))
    return _map(ds, ImageDecoder, dict(decoder, column="key"), batch_size, concurrency, num_cpus)


def _map(ds: ray.data.Dataset, cls: type[ImageDecoder], kwargs: dict[str, Any],
         batch_size: int, concurrency: int | None, num_cpus: float) -> ray.data.Dataset:
    """ds.map_batches with a decoder: one built here and shipped to Ray tasks, or a pool of
    `concurrency` actors that build their own. Either way the arguments are checked here."""
    decoder = cls(**kwargs)
    if concurrency is None:
        return ds.map_batches(decoder, batch_size=batch_size, batch_format="pyarrow",
                              num_cpus=num_cpus)
    return ds.map_batches(cls, batch_size=batch_size, batch_format="pyarrow", num_cpus=num_cpus,
                          compute=ray.data.ActorPoolStrategy(size=concurrency),
                          fn_constructor_kwargs=kwargs)


# ---------------------------------------------------------------------------
# Columns in and out
# ---------------------------------------------------------------------------

def _as_source(value: Any) -> Source | None:
    """One column value as a loader source (bytes-like, or a path), or None for a null."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return value
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, Mapping):  # Hugging Face's Image: {"bytes": ..., "path": ...}
        data = value.get("bytes")
        return _as_source(data if data is not None else value.get("path"))
    if isinstance(value, np.ndarray) and value.dtype == np.uint8:
        return np.ascontiguousarray(value).data.cast("B")
    raise TypeError(f"ImageDecoder: a column value must be bytes or a path, not {type(value).__name__}")


def _arrow_sources(column: pa.ChunkedArray) -> list[Any]:
    """The values of an Arrow column: for binary chunks, memoryviews into the chunk's
    data buffer (no copy); None for nulls; other types as Python values."""
    out: list[Any] = []
    for chunk in column.chunks:
        if pa.types.is_struct(chunk.type) and chunk.type.get_field_index("bytes") >= 0:
            # Hugging Face's Image struct: its bytes field (null rows fall back to the path)
            if chunk.field("bytes").null_count == 0 and chunk.null_count == 0:
                chunk = chunk.flatten()[chunk.type.get_field_index("bytes")]
            else:
                out.extend(chunk.to_pylist())
                continue
        if chunk.type not in _BINARY_TYPES:
            out.extend(chunk.to_pylist())
            continue
        _, offsets_buf, data_buf = chunk.buffers()
        width = 8 if chunk.type == pa.large_binary() else 4
        offsets = np.frombuffer(offsets_buf, dtype=f"<i{width}", count=len(chunk) + 1,
                                offset=chunk.offset * width).tolist()
        data = memoryview(data_buf) if data_buf is not None else memoryview(b"")
        valid = chunk.is_valid().to_numpy(zero_copy_only=False) if chunk.null_count else None
        for i in range(len(chunk)):
            out.append(data[offsets[i]:offsets[i + 1]] if valid is None or valid[i] else None)
    return out


def _read(item: Any) -> Any:
    """An Item's source, or the exception reading it raised (a failed row)."""
    try:
        return item.read()
    except OSError as e:
        return e


def _tensor_array(pixels: np.ndarray) -> pa.ExtensionArray:
    """An (N, ...) ndarray as Ray's fixed-shape tensor column (what numpy batches come from)."""
    from ray.data.extensions import ArrowTensorArray

    return ArrowTensorArray.from_numpy(pixels)


def _put(table: pa.Table, name: str, column: pa.Array) -> pa.Table:
    """table with column `name` set to column (replaced, or appended last)."""
    i = table.schema.get_field_index(name)
    if i >= 0:
        return table.set_column(i, name, column)
    return table.append_column(name, column)


def _assigned_cpus() -> int | None:
    """The CPUs Ray gave the calling actor or task, or None outside Ray."""
    if not ray.is_initialized():  # get_runtime_context() would start Ray
        return None
    try:
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    except Exception:  # the driver: nothing assigned
        return None
    return max(1, int(cpus)) if cpus else None


# ---------------------------------------------------------------------------
# Sources: what the dataset's rows are
# ---------------------------------------------------------------------------

def _tar_shards(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """The tar shards a source names (a .tar path, a glob, a list of them), else []."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if os.path.isdir(path):
            return []
        paths = sorted(glob.glob(path)) if glob.has_magic(path) else [path]
        if not paths:
            raise FileNotFoundError(f"read_images: no file matches {path!r}")
    else:
        paths = [os.fspath(p) for p in source]
    if paths and all(p.lower().endswith(".tar") for p in paths):
        return paths
    if any(p.lower().endswith(".tar") for p in paths):
        raise ValueError("read_images: a list mixes tar shards and other files")
    return []
