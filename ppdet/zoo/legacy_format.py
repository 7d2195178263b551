"""One fluid 1.x persistable variable on disk: a serialized LoDTensor record.

Layout (little-endian, what ``fluid.io.save_persistables`` writes, one file per variable):

    u32 LoDTensor version (0) | u64 lod_level | per level: u64 byte length, u64 offsets
    u32 Tensor version (0) | i32 desc_size | TensorDesc protobuf | raw C-order data

TensorDesc (proto2): field 1 ``data_type`` (varint enum), field 2 ``dims`` (repeated int64, one
``0x10`` tag per dim; the packed form is accepted on read). ``save_combine`` (``__params__``)
writes the same records back to back, in sorted variable-name order, without names.
"""

from __future__ import annotations

import struct

import numpy as np

from ppdet.errors import PpdetError

__all__ = [
    "DTYPES",
    "LegacyError",
    "looks_like_record",
    "parse_record",
    "read_record",
    "serialize_record",
    "split_combined",
]


class LegacyError(PpdetError, RuntimeError):
    """A legacy checkpoint that cannot be converted: one line naming the file/member/variable
    and what to do."""


# VarType.Type -> numpy dtype (framework.proto); BF16 (22) is widened to float32 on read.
DTYPES: dict[int, np.dtype] = {
    0: np.dtype("bool"),
    1: np.dtype("<i2"),
    2: np.dtype("<i4"),
    3: np.dtype("<i8"),
    4: np.dtype("<f2"),
    5: np.dtype("<f4"),
    6: np.dtype("<f8"),
    19: np.dtype("<u8"),
    20: np.dtype("u1"),
    21: np.dtype("i1"),
    22: np.dtype("<u2"),
    23: np.dtype("<c8"),
    24: np.dtype("<c16"),
}
_CODES = {dt: code for code, dt in DTYPES.items() if code != 22}
_BF16 = 22


def _varint(buf: bytes, pos: int, end: int, source: str) -> tuple[int, int]:
    """Decode one protobuf varint at ``pos``; (value as signed int64, next position)."""
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise LegacyError(
                f"{source}: corrupt TensorDesc varint; the file is damaged, fetch it again"
            )
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return (value - (1 << 64) if value >= 1 << 63 else value), pos


def _encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 -> 10-byte two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _parse_desc(buf: bytes, pos: int, end: int, source: str) -> tuple[int, list[int]]:
    """(data_type, dims) from the TensorDesc bytes buf[pos:end]."""
    dtype, dims = None, []
    while pos < end:
        tag, pos = _varint(buf, pos, end, source)
        if tag == 0x08:
            dtype, pos = _varint(buf, pos, end, source)
        elif tag == 0x10:
            dim, pos = _varint(buf, pos, end, source)
            dims.append(dim)
        elif tag == 0x12:  # packed dims
            length, pos = _varint(buf, pos, end, source)
            stop = pos + length
            while pos < stop:
                dim, pos = _varint(buf, pos, stop, source)
                dims.append(dim)
        else:
            raise LegacyError(
                f"{source}: unknown TensorDesc field tag {tag}; not a fluid variable file"
            )
    if dtype is None:
        raise LegacyError(f"{source}: TensorDesc without data_type; not a fluid variable file")
    return dtype, dims


def read_record(
    buf: bytes, offset: int = 0, source: str = "<bytes>"
) -> tuple[np.ndarray, list[list[int]], int]:
    """Parse the record starting at ``buf[offset]``: (array, lod, offset after the record).

    The array is a C-order copy with the stored shape and dtype (BF16 -> float32).
    """
    n = len(buf)

    def take(fmt: str, pos: int) -> tuple:
        size = struct.calcsize(fmt)
        if pos + size > n:
            raise LegacyError(
                f"{source}: truncated record ({n} bytes); the file is damaged, fetch it again"
            )
        return struct.unpack_from(fmt, buf, pos)

    pos = offset
    (version,) = take("<I", pos)
    if version != 0:
        raise LegacyError(
            f"{source}: LoDTensor version {version}, expected 0; not a fluid variable file"
        )
    (levels,) = take("<Q", pos + 4)
    pos += 12
    if levels > 64:
        raise LegacyError(f"{source}: lod_level {levels} is implausible; not a fluid variable file")
    lod = []
    for _ in range(levels):
        (nbytes,) = take("<Q", pos)
        if nbytes % 8 or pos + 8 + nbytes > n:
            raise LegacyError(f"{source}: corrupt LoD level ({nbytes} bytes); the file is damaged")
        lod.append([int(v) for v in np.frombuffer(buf, "<u8", nbytes // 8, pos + 8)])
        pos += 8 + nbytes
    version, desc_size = take("<Ii", pos)
    if version != 0 or desc_size < 0 or pos + 8 + desc_size > n:
        raise LegacyError(
            f"{source}: bad tensor header (version {version}, desc {desc_size} bytes)"
        )
    code, dims = _parse_desc(buf, pos + 8, pos + 8 + desc_size, source)
    pos += 8 + desc_size
    if code not in DTYPES:
        raise LegacyError(
            f"{source}: unsupported data_type {code}; only numeric tensors can be read"
        )
    if any(d < 0 for d in dims):
        raise LegacyError(f"{source}: negative dimension in {dims}; not a stored tensor")
    dtype = DTYPES[code]
    count = int(np.prod(dims, dtype=np.int64)) if dims else 1
    if pos + count * dtype.itemsize > n:
        raise LegacyError(
            f"{source}: truncated data: {dims} {dtype} needs {count * dtype.itemsize} bytes, "
            f"{n - pos} left; the file is damaged, fetch it again"
        )
    array = np.frombuffer(buf, dtype, count, pos).reshape(dims).copy()
    pos += count * dtype.itemsize
    if code == _BF16:  # upper half of a float32
        array = (array.astype("<u4") << 16).view("<f4")
    return array, lod, pos


def parse_record(buf: bytes, source: str = "<bytes>") -> tuple[np.ndarray, list[list[int]]]:
    """Parse one whole variable file: (array, lod); trailing bytes are an error."""
    array, lod, end = read_record(buf, 0, source)
    if end != len(buf):
        raise LegacyError(
            f"{source}: {len(buf) - end} bytes after the tensor data; "
            "not a single fluid variable file"
        )
    return array, lod


def serialize_record(array: np.ndarray, lod: list[list[int]] | None = None) -> bytes:
    """The bytes fluid's ``save`` op writes for ``array`` (and ``lod``)."""
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("<"))  # any byte order is written little-endian
    if code is None:
        raise LegacyError(f"serialize_record: dtype {array.dtype} has no fluid data_type")
    lod = lod or []
    out = [struct.pack("<IQ", 0, len(lod))]
    for level in lod:
        out.append(struct.pack("<Q", 8 * len(level)) + np.asarray(level, "<u8").tobytes())
    desc = (
        b"\x08" + _encode_varint(code) + b"".join(b"\x10" + _encode_varint(d) for d in array.shape)
    )
    out.append(struct.pack("<Ii", 0, len(desc)) + desc)
    out.append(np.ascontiguousarray(array, DTYPES[code]).tobytes())
    return b"".join(out)


def split_combined(
    buf: bytes, names: list[str], source: str = "__params__"
) -> dict[str, np.ndarray]:
    """Split a ``save_combine`` file holding the variables ``names`` (stored in sorted order)."""
    out, pos = {}, 0
    for name in sorted(names):
        out[name], _, pos = read_record(buf, pos, f"{source}[{name}]")
    if pos != len(buf):
        raise LegacyError(
            f"{source}: {len(buf) - pos} bytes left after {len(names)} variables; wrong name list"
        )
    return out


def looks_like_record(head: bytes) -> bool:
    """Whether the first bytes of a file look like a fluid LoDTensor record (cheap sniff)."""
    if len(head) < 16:
        return False
    version, levels = struct.unpack_from("<IQ", head, 0)
    if version != 0 or levels > 8:
        return False
    pos = 12
    for _ in range(levels):
        if pos + 8 > len(head):
            return True  # long LoD: header plausible so far
        (nbytes,) = struct.unpack_from("<Q", head, pos)
        pos += 8 + nbytes
    if pos + 9 > len(head):
        return pos <= len(head)
    version, desc_size = struct.unpack_from("<Ii", head, pos)
    return version == 0 and 0 < desc_size < 1024 and head[pos + 8] == 0x08
