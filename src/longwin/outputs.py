"""Writing outputs so that an interruption, a full disk or a second process never leaves a half-written one.

Every writer of results, reports, cards and model files goes through here:

* `write_text` / `write_bytes`: the file is written beside its destination under a temporary name,
  flushed, and renamed over it, so a reader sees the old file or the new one, never a torn one.
* `staged_folder` / `move_into`: a folder is built under a temporary name and renamed into place when
  complete (or its entries are moved in one by one when the destination already holds other things,
  such as a training run's checkpoints); on an error the temporary folder is removed.
* `exclusive`: one writer per output folder. A second `longwin eval` into the same `--out` (or a second
  `longwin train` into the same `--output-dir`) fails at once with a one-line message instead of
  computing every cell twice. The lock is an OS file lock, so it dies with its process: a killed run
  never leaves a stale lock behind.
* `check_writable_folder`: the one-line refusal of an output path that is an existing file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from longwin.errors import LongwinError

LOCK_FILE = ".longwin.lock"


def check_writable_folder(path: str | Path, what: str) -> Path:
    """`path` as a folder to write into, refusing an existing file in one line (before any work)."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise LongwinError(f"{what} {folder} is an existing file, not a folder")
    for parent in folder.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise LongwinError(f"{what} {folder}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK) and not folder.exists():
                raise LongwinError(f"{what} {folder}: cannot create it, {parent} is not writable")
            break
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        raise LongwinError(f"{what} {folder} is not writable")
    return folder


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically (temporary file beside it, fsync, rename)."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def staged_folder(final: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `final`; when the block ends without error its contents land in
    `final` (`move_into`); on an error the temporary folder is removed and `final` is untouched."""
    target = Path(final)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    try:
        yield tmp
        move_into(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def move_into(staging: Path, final: Path) -> None:
    """Land a complete `staging` folder at `final` (same filesystem): one rename when `final` does not
    exist yet, else entry by entry, each an atomic rename replacing the same-named entry."""
    if not final.exists():
        os.rename(staging, final)
        return
    for item in sorted(staging.iterdir()):
        dest = final / item.name
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        elif item.is_dir() and dest.exists():
            dest.unlink()
        os.replace(item, dest)
    staging.rmdir()


@contextlib.contextmanager
def exclusive(folder: str | Path, what: str) -> Iterator[None]:
    """Hold the write lock of `folder` for the block; fail in one line if another process holds it.

    The lock file is removed when the block ends, and so is a folder created here that the block left
    empty (a run refused on bad input leaves no trace)."""
    path = Path(folder)
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    lock = path / LOCK_FILE
    handle = open(lock, "a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            handle.close()
            raise LongwinError(
                f"another {what} is writing to {path} right now; wait for it to finish or choose another folder"
            ) from None
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)  # while still holding it: a later run starts from a fresh file
    finally:
        handle.close()
        if created and not any(path.iterdir()):
            path.rmdir()
