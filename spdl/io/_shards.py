"""Shard files of fixed-size uint8 rows, written as the rows arrive (spdl-ingest's output).

Each writer takes a shard's rows batch by batch, in order (``add``), straight from the
batch buffer: no copy into a shard-sized array, so writing overlaps decoding and memory
stays at a batch. ``finish`` completes the file. The formats:

- ``npy``: an ``.npz`` (uncompressed zip, zip64) with ``images.npy`` (n, H, W, C) uint8,
  ``keys.npy`` (str) and ``labels.npy`` (int64, -1 for none; or str). The images member
  is streamed with a header sized for the shard's capacity; when inputs failed, the
  header is rewritten in place with the real count (padded to the same length) and the
  member's CRC-32 is the header's combined with the rows' (``crc32_combine``).
- ``webdataset``: a tar with ``<index>.npy``, ``<index>.cls`` (int label) or ``.txt``
  (str label) and ``<index>.json`` ({key, index, label}) per row; ``<index>`` is the
  input's position in the listing (9 digits), so keys are unique across shards.
- ``parquet``: columns ``key`` (string), ``label`` (int64 or string, null for none) and
  ``image`` (fixed_size_binary[H*W*C], the row in C order; the field's and the schema's
  metadata ``spdl.shape`` = [H, W, C]); one row group per batch, uncompressed.
"""

from __future__ import annotations

import io
import json
import struct
import tarfile
import time
import zlib
from collections.abc import Sequence
from typing import Any, BinaryIO

import numpy as np

__all__ = ["crc32_combine", "ShardFile", "NpzShard", "TarShard", "ParquetShard", "SHARD_FILES"]

_CRC_POLY = 0xEDB88320  # CRC-32 (zlib's), bit-reversed: bit 31 is the coefficient of x^0


def _gf2_mulmod(a: int, b: int) -> int:
    """a * b modulo the CRC-32 polynomial, both in the reflected bit order."""
    p = 0
    for bit in range(31, -1, -1):           # a's coefficients of x^0, x^1, ...
        if not a:
            break
        if a & (1 << bit):
            p ^= b
            a ^= 1 << bit
        b = (b >> 1) ^ (_CRC_POLY if b & 1 else 0)   # b *= x
    return p


def _x_pow_8n(n: int) -> int:
    """x^(8n) modulo the polynomial (reflected): appending n zero bytes to a CRC register."""
    result, base = 1 << 31, 1 << 23          # x^0, x^8
    while n:
        if n & 1:
            result = _gf2_mulmod(result, base)
        base = _gf2_mulmod(base, base)
        n >>= 1
    return result


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """zlib.crc32(a + b) from crc1 = zlib.crc32(a), crc2 = zlib.crc32(b) and len(b).

    zlib's CRC is affine in the data, and its pre/post inversions cancel in the sum, so
    crc(a + b) = crc(a) * x^(8 len(b)) + crc(b) over GF(2) modulo the polynomial.
    """
    return _gf2_mulmod(crc1, _x_pow_8n(len2)) ^ crc2


def npy_header(shape: tuple[int, ...], length: int | None = None) -> bytes:
    """A version 1.0 .npy header for a C-order uint8 array, padded to ``length`` bytes
    (default: numpy's own padding, a multiple of 64)."""
    text = "{'descr': '|u1', 'fortran_order': False, 'shape': (%s), }" % (
        "".join(f"{d}, " for d in shape).rstrip(" ") if len(shape) == 1
        else ", ".join(str(d) for d in shape))
    if length is None:
        length = -(-(10 + len(text) + 1) // 64) * 64
    pad = length - 10 - len(text) - 1
    if pad < 0:
        raise ValueError(f"an .npy header for {shape} does not fit in {length} bytes")
    body = (text + " " * pad + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body


class ShardFile:
    """One shard being written to an open binary file (its temporary name)."""

    suffix = ""

    def __init__(self, f: BinaryIO, shape: tuple[int, int, int], capacity: int,
                 label_kind: str) -> None:
        self.f = f
        self.shape = shape
        self.capacity = capacity
        self.label_kind = label_kind
        self.count = 0
        self.begin()

    def begin(self) -> None:
        """Write what comes before the rows."""

    def add(self, rows: np.ndarray, keys: Sequence[str], labels: Sequence[Any],
            indices: Sequence[int]) -> None:
        """Append rows (n, H, W, C) uint8 C-contiguous, their keys, labels and listing indices."""
        raise NotImplementedError

    def finish(self) -> None:
        """Complete the file (the caller closes and renames it)."""
        raise NotImplementedError

    def _labels_array(self, labels: Sequence[Any]) -> np.ndarray:
        if self.label_kind == "str":
            return np.array(["" if v is None else str(v) for v in labels], dtype=str)
        return np.array([-1 if v is None else int(v) for v in labels], dtype=np.int64)


# --- .npz: a zip64 archive written by hand, so the images member can be streamed --------

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_ZIP64_EXTRA_LOCAL = struct.Struct("<HHQQ")
_ZIP64_EXTRA_CENTRAL = struct.Struct("<HHQQQ")
_ZIP64_EOCD = struct.Struct("<IQHHIIQQQQ")
_ZIP64_LOCATOR = struct.Struct("<IIQI")
_EOCD = struct.Struct("<IHHHHIIH")
_ZIP_VERSION = 45  # zip64


def _dos_time() -> tuple[int, int]:
    t = time.localtime()
    return ((t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2),
            ((max(t.tm_year, 1980) - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday)


class _ZipWriter:
    """Stored (uncompressed) members with zip64 sizes, to a seekable file."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.entries: list[tuple[bytes, int, int, int]] = []  # name, offset, crc, size
        self.dos_time, self.dos_date = _dos_time()

    def begin(self, name: str) -> int:
        """Write a member's local header (CRC and size to be patched); its offset."""
        offset = self.f.tell()
        raw = name.encode("ascii")
        self.f.write(_LOCAL.pack(0x04034B50, _ZIP_VERSION, 0, 0, self.dos_time, self.dos_date,
                                 0, 0xFFFFFFFF, 0xFFFFFFFF, len(raw), _ZIP64_EXTRA_LOCAL.size))
        self.f.write(raw)
        self.f.write(_ZIP64_EXTRA_LOCAL.pack(1, 16, 0, 0))
        return offset

    def end(self, name: str, offset: int, crc: int, size: int) -> None:
        """Patch the member's local header with its CRC and size; record it."""
        here = self.f.tell()
        raw = name.encode("ascii")
        self.f.seek(offset + 14)
        self.f.write(struct.pack("<I", crc))
        self.f.seek(offset + _LOCAL.size + len(raw) + 4)
        self.f.write(struct.pack("<QQ", size, size))
        self.f.seek(here)
        self.entries.append((raw, offset, crc, size))

    def write_member(self, name: str, data: bytes) -> None:
        offset = self.begin(name)
        self.f.write(data)
        self.end(name, offset, zlib.crc32(data), len(data))

    def close(self) -> None:
        """The central directory, the zip64 end records and the end record."""
        cd_offset = self.f.tell()
        for raw, offset, crc, size in self.entries:
            self.f.write(_CENTRAL.pack(
                0x02014B50, _ZIP_VERSION, _ZIP_VERSION, 0, 0, self.dos_time, self.dos_date, crc,
                0xFFFFFFFF, 0xFFFFFFFF, len(raw), _ZIP64_EXTRA_CENTRAL.size, 0, 0, 0, 0o644 << 16,
                0xFFFFFFFF))
            self.f.write(raw)
            self.f.write(_ZIP64_EXTRA_CENTRAL.pack(1, 24, size, size, offset))
        cd_size = self.f.tell() - cd_offset
        eocd64 = self.f.tell()
        n = len(self.entries)
        self.f.write(_ZIP64_EOCD.pack(0x06064B50, _ZIP64_EOCD.size - 12, _ZIP_VERSION,
                                      _ZIP_VERSION, 0, 0, n, n, cd_size, cd_offset))
        self.f.write(_ZIP64_LOCATOR.pack(0x07064B50, 0, eocd64, 1))
        self.f.write(_EOCD.pack(0x06054B50, 0, 0, min(n, 0xFFFF), min(n, 0xFFFF),
                                min(cd_size, 0xFFFFFFFF), min(cd_offset, 0xFFFFFFFF), 0))


class NpzShard(ShardFile):
    suffix = ".npz"

    def begin(self) -> None:
        self.zip = _ZipWriter(self.f)
        self.keys: list[str] = []
        self.labels: list[Any] = []
        self.offset = self.zip.begin("images.npy")
        self.header_at = self.f.tell()
        self.header_len = len(npy_header((self.capacity, *self.shape)))
        self.f.write(b"\0" * self.header_len)   # written at the end, with the count
        self.crc = 0                        # of the rows alone
        self.nbytes = 0

    def add(self, rows: np.ndarray, keys: Sequence[str], labels: Sequence[Any],
            indices: Sequence[int]) -> None:
        if not len(rows):
            return
        data = np.ascontiguousarray(rows).data.cast("B")
        self.f.write(data)
        self.crc = zlib.crc32(data, self.crc)
        self.nbytes += len(data)
        self.count += len(rows)
        self.keys.extend(keys)
        self.labels.extend(labels)

    def finish(self) -> None:
        header = npy_header((self.count, *self.shape), self.header_len)
        end = self.f.tell()
        self.f.seek(self.header_at)
        self.f.write(header)
        self.f.seek(end)
        crc = crc32_combine(zlib.crc32(header), self.crc, self.nbytes)
        self.zip.end("images.npy", self.offset, crc, len(header) + self.nbytes)
        keys = np.array(self.keys, dtype=str) if self.keys else np.zeros(0, "<U1")
        for name, arr in (("keys.npy", keys), ("labels.npy", self._labels_array(self.labels))):
            buf = io.BytesIO()
            np.save(buf, arr, allow_pickle=False)
            self.zip.write_member(name, buf.getvalue())
        self.zip.close()


# --- tar, WebDataset layout --------------------------------------------------------------


class TarShard(ShardFile):
    suffix = ".tar"

    def begin(self) -> None:
        self.header = npy_header(self.shape)
        self.mtime = int(time.time())

    def _member(self, name: str, parts: Sequence[bytes | memoryview]) -> None:
        size = sum(len(p) for p in parts)
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, self.mtime, 0o644
        self.f.write(info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict"))
        for p in parts:
            self.f.write(p)
        if size % tarfile.BLOCKSIZE:
            self.f.write(b"\0" * (tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE))

    def add(self, rows: np.ndarray, keys: Sequence[str], labels: Sequence[Any],
            indices: Sequence[int]) -> None:
        ext = ".cls" if self.label_kind == "int" else ".txt"
        for row, key, label, index in zip(rows, keys, labels, indices):
            base = f"{index:09d}"
            self._member(base + ".npy", (self.header, np.ascontiguousarray(row).data.cast("B")))
            if label is not None:
                self._member(base + ext, (str(label).encode(),))
            meta = {"key": key, "index": index, "label": label}
            self._member(base + ".json", (json.dumps(meta, ensure_ascii=False).encode(),))
        self.count += len(rows)

    def finish(self) -> None:
        self.f.write(b"\0" * (2 * tarfile.BLOCKSIZE))   # the end-of-archive blocks


# --- Parquet ------------------------------------------------------------------------------


class ParquetShard(ShardFile):
    suffix = ".parquet"

    def begin(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        meta = {b"spdl.shape": json.dumps(list(self.shape)).encode(), b"spdl.dtype": b"uint8"}
        self.image_type = pa.binary(int(np.prod(self.shape)))
        self.label_type = pa.string() if self.label_kind == "str" else pa.int64()
        self.schema = pa.schema([pa.field("key", pa.string()), pa.field("label", self.label_type),
                                 pa.field("image", self.image_type, metadata=meta)],
                                metadata=meta)
        self.writer = pq.ParquetWriter(self.f, self.schema, compression="none")

    def add(self, rows: np.ndarray, keys: Sequence[str], labels: Sequence[Any],
            indices: Sequence[int]) -> None:
        pa = self.pa
        n = len(rows)
        image = pa.FixedSizeBinaryArray.from_buffers(self.image_type, n,
                                                     [None, pa.py_buffer(rows)])
        values = [None if v is None else (str(v) if self.label_kind == "str" else int(v))
                  for v in labels]
        table = pa.Table.from_arrays(
            [pa.array(list(keys), pa.string()), pa.array(values, self.label_type), image],
            schema=self.schema)
        self.writer.write_table(table)
        self.count += n

    def finish(self) -> None:
        if self.count == 0:   # a shard whose inputs all failed: an empty table, same schema
            self.writer.write_table(self.schema.empty_table())
        self.writer.close()


SHARD_FILES: dict[str, type[ShardFile]] = {
    "npy": NpzShard, "webdataset": TarShard, "parquet": ParquetShard}
