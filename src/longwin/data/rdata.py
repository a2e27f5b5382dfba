"""Read data objects from an R lazy-load database (`.rdb` + `.rdx`) without R installed.

Debian's R data packages (e.g. r-cran-janeaustenr) keep their datasets in such a database. The
`.rdx` index is a gzip-compressed R serialisation of `list(variables=, references=, compressed=)`,
where each variable maps to `c(offset, length)` in the `.rdb`; each `.rdb` record is a 4-byte
big-endian size, (for bzip2/xz) a one-byte method, then a compressed R serialisation. Only the XDR
format and the value types that plain data use are decoded: character, logical, integer and
double vectors, lists, pairlists (attributes) and symbols.
"""

from __future__ import annotations

import builtins
import bz2
import lzma
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

_SYM, _LIST, _CHAR, _LGL, _INT, _REAL, _STR, _VEC, _EXPR = 1, 2, 9, 10, 13, 14, 16, 19, 20
_NIL, _REF = 254, 255
_HAS_ATTR, _HAS_TAG = 1 << 9, 1 << 10
_LATIN1 = 1 << 2
_NA_INT = -(2**31)


class _XdrReader:
    """Walks one XDR serialisation; symbols go to a reference table so later REFSXPs resolve."""

    refs: list[object]

    def __init__(self, data: bytes) -> None:
        if data[:2] != b"X\n":
            raise ValueError("not an R XDR serialisation (expected header 'X\\n')")
        self.data, self.pos, self.refs = data, 2, []
        version = self.int()
        self.pos += 8  # writer's and minimum reader's R versions
        if version == 3:
            encoding_length = self.int()
            self.pos += encoding_length  # skip the native encoding name
        elif version != 2:
            raise ValueError(f"unsupported R serialisation version {version}")

    def int(self) -> int:
        (value,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return value

    def length(self) -> builtins.int:
        n = self.int()
        if n == -1:  # long vector: upper and lower 32 bits follow
            n = (self.int() << 32) | (self.int() & 0xFFFFFFFF)
        return n

    def item(self) -> object:
        return self.item_with(self.int())

    def item_with(self, flags: builtins.int) -> object:
        kind = flags & 0xFF
        if kind == _NIL:
            return None
        if kind == _REF:
            index = flags >> 8 or self.int()
            return self.refs[index - 1]
        if kind == _SYM:
            name = self.item()
            self.refs.append(name)
            return name
        if kind == _LIST:
            return self.pairlist(flags)
        if kind == _CHAR:
            return self.charsxp(flags)
        if kind in (_LGL, _INT):
            n = self.length()
            values = struct.unpack_from(f">{n}i", self.data, self.pos)
            self.pos += 4 * n
            value: object = [None if v == _NA_INT else (bool(v) if kind == _LGL else v) for v in values]
        elif kind == _REAL:
            n = self.length()
            value = list(struct.unpack_from(f">{n}d", self.data, self.pos))
            self.pos += 8 * n
        elif kind in (_STR, _VEC, _EXPR):
            value = [self.item() for _ in range(self.length())]
        else:
            raise ValueError(f"unsupported R object type {kind}")
        if flags & _HAS_ATTR:
            names = dict(cast("list[tuple[Any, Any]]", self.item())).get("names")
            if kind == _VEC and names:
                return dict(zip(names, cast("list[object]", value)))
        return value

    def charsxp(self, flags: builtins.int) -> str | None:
        n = self.int()
        if n == -1:
            return None  # NA_character_
        raw = self.data[self.pos : self.pos + n]
        self.pos += n
        return raw.decode("latin-1" if (flags >> 12) & _LATIN1 else "utf-8", errors="replace")

    def pairlist(self, flags: builtins.int) -> list[tuple[object, object]]:
        """A pairlist as (tag, value) pairs; read in a loop since R chains them through CDR."""
        items = []
        while True:
            if flags & _HAS_ATTR:
                self.item()
            tag = self.item() if flags & _HAS_TAG else None
            items.append((tag, self.item()))
            flags = self.int()
            if flags & 0xFF == _NIL:
                return items
            if flags & 0xFF != _LIST:
                raise ValueError("dotted pairlists are not supported")


def unserialize(data: bytes) -> object:
    """Decode an uncompressed R XDR serialisation into Python lists / dicts / scalars.

    Vectors become lists (NA → None), a list with a `names` attribute becomes a dict, a pairlist
    becomes a list of (tag, value) pairs; other attributes are dropped.
    """
    return _XdrReader(data).item()


def _decompress_record(record: bytes, method: int) -> bytes:
    """One `.rdb` record: 4-byte size, then zlib (method 1) or a typed bzip2/xz/raw payload."""
    if method == 1:
        return zlib.decompress(record[4:])
    if method in (2, 3):
        kind, payload = record[4:5], record[5:]
        if kind == b"2":
            return bz2.decompress(payload)
        if kind == b"X":
            return lzma.decompress(payload)
        if kind == b"0":
            return payload
        if kind == b"Z":
            return zlib.decompress(payload)
        raise ValueError(f"unknown .rdb compression byte {kind!r}")
    return record


def read_lazyload_db(rdb: Path) -> Iterator[tuple[str, object]]:
    """Yield (name, value) for each variable of the lazy-load database `rdb` (next to its `.rdx`)."""
    index_bytes = Path(rdb).with_suffix(".rdx").read_bytes()
    if index_bytes[:2] != b"X\n":
        index_bytes = zlib.decompress(index_bytes, wbits=zlib.MAX_WBITS | 32)  # gzip or zlib
    index = unserialize(index_bytes)
    if not isinstance(index, dict) or not isinstance(index.get("variables"), dict):
        raise ValueError(f"{rdb}: index is not a lazy-load index")
    compressed = (index.get("compressed") or [True])[0]
    method = int(compressed) if compressed is not None else 1
    with open(rdb, "rb") as f:
        for name, (offset, size) in index["variables"].items():
            f.seek(int(offset))
            yield name, unserialize(_decompress_record(f.read(int(size)), method))
