"""Is a weights file whole? Cheap structural checks that catch a file cut short by a kill or a full disk.

A safetensors file is an 8-byte header length, a JSON header with each tensor's byte range, then the
data: it is whole when its size is exactly header + the end of the last range. A torch `.bin`/`.pt`
file is a zip archive, whose central directory sits at the very end: a truncated one has none.
A sharded checkpoint's index names its shard files, which must all be present and whole.
Nothing is loaded or unpickled.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

_MAX_HEADER = 100 * 1024 * 1024  # the safetensors format's own bound on the header size


def safetensors_problem(path: Path) -> str | None:
    """Why `path` is not a whole safetensors file, or None when it is."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return "shorter than a safetensors header"
        (header_len,) = struct.unpack("<Q", head)
        if header_len > min(_MAX_HEADER, size - 8):
            return "header length past the end of the file (truncated or not safetensors)"
        try:
            header = json.loads(f.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return "unreadable safetensors header"
    if not isinstance(header, dict):
        return "unreadable safetensors header"
    ends = [
        int(v["data_offsets"][1])
        for k, v in header.items()
        if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v
    ]
    expected = 8 + header_len + max(ends, default=0)
    if size != expected:
        return f"{size} bytes where its header describes {expected} (truncated)"
    return None


def zip_problem(path: Path) -> str | None:
    """Why `path` is not a whole torch zip archive, or None when it is."""
    return None if zipfile.is_zipfile(path) else "not a whole torch archive (truncated?)"


def _index_problem(path: Path) -> str | None:
    try:
        weight_map = json.loads(path.read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        return "unreadable shard index"
    for shard in sorted(set(weight_map.values())):
        problem = file_problem(path.parent / shard)
        if problem:
            return f"shard {shard}: {problem}"
    return None


def file_problem(path: Path) -> str | None:
    """Why the weights file `path` is unusable (missing, truncated), or None."""
    if not path.is_file():
        return "missing"
    if path.name.endswith(".index.json"):
        return _index_problem(path)
    if path.suffix == ".safetensors":
        return safetensors_problem(path)
    if path.suffix in (".bin", ".pt", ".pth"):
        return zip_problem(path)
    return None


def folder_problem(folder: Path, names: tuple[str, ...] | None = None) -> str | None:
    """The first problem among the weights files in `folder` (all `*.safetensors`, `*.bin`, `*.pt` and
    shard indexes, or only `names`), as `"<file>: <why>"`, or None when every one is whole."""
    if names is None:
        files = sorted(
            p for pattern in ("*.safetensors", "*.bin", "*.pt", "*.index.json") for p in folder.glob(pattern)
        )
    else:
        files = [folder / n for n in names if (folder / n).exists()]
    for path in files:
        problem = file_problem(path)
        if problem:
            return f"{path.name}: {problem}"
    return None
