"""Tokenize a corpus once and reuse it: token ids in one memory-mapped file, cached by content.

Long-context training and evaluation re-read the same million-token corpora many times;
tokenizing them is slow and holding them as Python lists is wasteful. `TokenizedCorpus.build`
stores every document's ids back to back in a flat uint16/uint32 file (plus offsets and ids) under
a key derived from the tokenizer and the documents, so a rerun maps the file instead of
re-tokenizing, and any change to either produces a new entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from longwin.data.corpora import Document
from longwin.errors import LongwinError

_FORMAT = 1
_BATCH_DOCS = 16
_PROGRESS_MIN_CHARS = 2_000_000


def default_cache_root() -> Path:
    """`$LONGWIN_CACHE/tokenized`, else `~/.cache/longwin/tokenized`."""
    base = os.environ.get("LONGWIN_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "longwin") / "tokenized"


def _tokenizer_fingerprint(tokenizer) -> str:
    """What fixes the ids a tokenizer produces: its full serialisation when it is a fast
    tokenizer, else its class and vocabulary; plus the BOS/EOS ids this module adds."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        body = backend.to_str()
    else:
        body = type(tokenizer).__name__ + json.dumps(sorted(tokenizer.get_vocab().items()))
    return f"{body}\nbos={tokenizer.bos_token_id}\neos={tokenizer.eos_token_id}"


def cache_key(docs: Iterable[Document], tokenizer, *, add_bos: bool = True, add_eos: bool = True) -> str:
    """sha256 over the format version, tokenizer fingerprint, flags and each (id, text hash)."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": _FORMAT, "bos": add_bos, "eos": add_eos}).encode())
    h.update(hashlib.sha256(_tokenizer_fingerprint(tokenizer).encode()).digest())
    for doc in docs:
        h.update(hashlib.sha256(doc.id.encode()).digest())
        h.update(hashlib.sha256(doc.text.encode()).digest())
    return h.hexdigest()


def _token_dtype(tokenizer) -> np.dtype:
    return np.dtype(np.uint16 if len(tokenizer) <= 2**16 else np.uint32)


class TokenizedCorpus:
    """All documents' token ids concatenated in one read-only memmap, with per-document offsets."""

    def __init__(self, path: Path) -> None:
        """Open a finished cache entry (see `build`)."""
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        self.path = path
        self._doc_ids: list[str] = meta["doc_ids"]
        self._offsets = np.load(path / "offsets.npy")
        total = int(self._offsets[-1])
        dtype = np.dtype(meta["dtype"])
        self._tokens = (
            np.memmap(path / "tokens.bin", dtype=dtype, mode="r", shape=(total,)) if total else np.zeros(0, dtype=dtype)
        )

    @classmethod
    def build(
        cls,
        docs: Iterable[Document],
        tokenizer,
        cache_dir: str | Path | None = None,
        *,
        add_bos: bool = True,
        add_eos: bool = True,
    ) -> TokenizedCorpus:
        """Load the cached tokenization of `docs`, or tokenize and cache it first.

        BOS/EOS are added here (not by the tokenizer's post-processor) so every tokenizer
        yields `[bos] + ids + [eos]` the same way. `cache_dir` replaces the cache root.
        """
        docs = list(docs)
        if add_bos and tokenizer.bos_token_id is None:
            raise LongwinError("tokenizer has no BOS token; pass add_bos=False")
        if add_eos and tokenizer.eos_token_id is None:
            raise LongwinError("tokenizer has no EOS token; pass add_eos=False")
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root()
        path = root / cache_key(docs, tokenizer, add_bos=add_bos, add_eos=add_eos)
        if not path.exists():
            root.mkdir(parents=True, exist_ok=True)
            _write(docs, tokenizer, path, add_bos=add_bos, add_eos=add_eos)
        return cls(path)

    def __len__(self) -> int:
        return len(self._doc_ids)

    def doc(self, i: int) -> np.ndarray:
        """Token ids of document `i` (a read-only view into the memmap)."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"document index {i} out of range for {len(self)} documents")
        i %= len(self)
        return self._tokens[self._offsets[i] : self._offsets[i + 1]]

    @property
    def tokens(self) -> np.ndarray:
        """All token ids, document after document."""
        return self._tokens

    @property
    def doc_ids(self) -> list[str]:
        return list(self._doc_ids)

    @property
    def lengths(self) -> np.ndarray:
        """Token count of each document (BOS/EOS included)."""
        return np.diff(self._offsets)

    @property
    def total_tokens(self) -> int:
        return int(self._offsets[-1])

    def indices_longer_than(self, n: int) -> np.ndarray:
        """Indices of documents with more than `n` tokens (e.g. those that fill an n-token window)."""
        return np.flatnonzero(self.lengths > n)


def _write(docs: list[Document], tokenizer, path: Path, *, add_bos: bool, add_eos: bool) -> None:
    """Tokenize in batches into a temporary folder, then move it into place atomically."""
    dtype = _token_dtype(tokenizer)
    prefix = [tokenizer.bos_token_id] if add_bos else []
    suffix = [tokenizer.eos_token_id] if add_eos else []
    offsets = [0]
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=path.parent))
    try:
        show = sum(len(d.text) for d in docs) >= _PROGRESS_MIN_CHARS
        bar = tqdm(total=len(docs), desc="tokenizing", unit="doc", disable=not show)
        with open(tmp / "tokens.bin", "wb") as out, bar:
            for start in range(0, len(docs), _BATCH_DOCS):
                batch = docs[start : start + _BATCH_DOCS]
                texts = [d.text for d in batch]
                # verbose=False: long documents are the point here, not a model-length mistake
                encoded = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
                for ids in encoded:
                    out.write(np.asarray(prefix + list(ids) + suffix, dtype=dtype).tobytes())
                    offsets.append(offsets[-1] + len(prefix) + len(ids) + len(suffix))
                bar.update(len(batch))
        np.save(tmp / "offsets.npy", np.asarray(offsets, dtype=np.int64))
        meta = {"format": _FORMAT, "dtype": dtype.name, "doc_ids": [d.id for d in docs]}
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        try:
            os.replace(tmp, path)
        except OSError:
            if not path.exists():  # a concurrent build may have won the race; else it is a real error
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
