"""TokenizedCorpus: explicit BOS/EOS, memmap layout, content-keyed cache and atomic writes."""

from __future__ import annotations

import numpy as np
import pytest

from longwin.data.corpora import Document
from longwin.data.tokenized import TokenizedCorpus, cache_key, default_cache_root
from longwin.data.tokenizer import train_bpe_tokenizer
from longwin.errors import LongwinError

DOCS = [
    Document("a", "The grass is green."),
    Document("b", "The pass key is 12345. Remember it. " * 5),
    Document("c", "In the beginning God created the heaven and the earth."),
]


class CountingTokenizer:
    """Delegates to a real tokenizer and counts encode calls (to prove cache hits skip them)."""

    def __init__(self, tokenizer) -> None:
        self._tok, self.calls = tokenizer, 0

    def __getattr__(self, name):
        return getattr(self._tok, name)

    def __len__(self) -> int:
        return len(self._tok)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self._tok(*args, **kwargs)


class FakeSlowTokenizer:
    """No `backend_tokenizer`: exercises the vocab-based fingerprint; ids go past uint16."""

    bos_token_id, eos_token_id = 70_000, 70_001

    def __init__(self, bos: int | None = 70_000) -> None:
        self.bos_token_id = bos

    def __len__(self) -> int:
        return 70_002

    def get_vocab(self) -> dict[str, int]:
        return {"<s>": 70_000, "</s>": 70_001}

    def __call__(self, texts, add_special_tokens=True, verbose=True):
        return {"input_ids": [[69_999] * len(t.split()) for t in texts]}


def test_build_layout_and_accessors(tiny_tokenizer, tmp_path):
    corpus = TokenizedCorpus.build(DOCS, tiny_tokenizer, tmp_path)
    bos, eos = tiny_tokenizer.bos_token_id, tiny_tokenizer.eos_token_id
    expected = [[bos, *tiny_tokenizer(d.text, add_special_tokens=False)["input_ids"], eos] for d in DOCS]
    assert len(corpus) == 3 and corpus.doc_ids == ["a", "b", "c"]
    for i, ids in enumerate(expected):
        assert corpus.doc(i).tolist() == ids
    assert corpus.doc(-1).tolist() == expected[-1]
    assert corpus.tokens.dtype == np.uint16 and isinstance(corpus.tokens, np.memmap)
    assert corpus.lengths.tolist() == [len(x) for x in expected]
    assert corpus.total_tokens == sum(map(len, expected)) == len(corpus.tokens)
    assert corpus.indices_longer_than(len(expected[0])).tolist() == [1, 2]
    assert corpus.indices_longer_than(10_000).tolist() == []
    with pytest.raises(IndexError):
        corpus.doc(3)


def test_bos_eos_flags_do_not_depend_on_the_post_processor(tiny_tokenizer, tmp_path):
    # tiny_tokenizer's post-processor prepends BOS; the corpus must still add exactly what is asked.
    bare = TokenizedCorpus.build(DOCS, tiny_tokenizer, tmp_path, add_bos=False, add_eos=False)
    full = TokenizedCorpus.build(DOCS, tiny_tokenizer, tmp_path)
    assert bare.doc(0).tolist() == tiny_tokenizer(DOCS[0].text, add_special_tokens=False)["input_ids"]
    bos, eos = tiny_tokenizer.bos_token_id, tiny_tokenizer.eos_token_id
    assert full.doc(0).tolist() == [bos, *bare.doc(0).tolist(), eos]
    assert bare.path != full.path


def test_second_build_loads_the_cache_without_tokenizing(tiny_tokenizer, tmp_path):
    first = TokenizedCorpus.build(DOCS, tiny_tokenizer, tmp_path)
    counting = CountingTokenizer(tiny_tokenizer)
    again = TokenizedCorpus.build(iter(DOCS), counting, tmp_path)
    assert counting.calls == 0 and again.path == first.path
    assert again.tokens.tolist() == first.tokens.tolist()
    assert [p.name for p in tmp_path.iterdir()] == [first.path.name]  # no temporary folder left


def test_key_changes_with_docs_tokenizer_and_flags(tiny_tokenizer, tmp_path):
    key = cache_key(DOCS, tiny_tokenizer)
    assert key == cache_key(list(DOCS), tiny_tokenizer)
    assert key != cache_key([*DOCS[:2], Document("c", DOCS[2].text + "!")], tiny_tokenizer)
    assert key != cache_key([*DOCS[:2], Document("d", DOCS[2].text)], tiny_tokenizer)
    assert key != cache_key(DOCS[::-1], tiny_tokenizer)
    assert key != cache_key(DOCS, tiny_tokenizer, add_eos=False)
    other = train_bpe_tokenizer([d.text for d in DOCS] * 5, vocab_size=300)
    assert key != cache_key(DOCS, other)

    counting = CountingTokenizer(tiny_tokenizer)
    TokenizedCorpus.build(DOCS, counting, tmp_path)
    TokenizedCorpus.build(DOCS[:2], counting, tmp_path)
    assert counting.calls == 2 and len(list(tmp_path.iterdir())) == 2


def test_cache_root_from_env(tiny_tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("LONGWIN_CACHE", str(tmp_path / "cache"))
    assert default_cache_root() == tmp_path / "cache" / "tokenized"
    corpus = TokenizedCorpus.build(DOCS[:1], tiny_tokenizer)
    assert corpus.path.parent == tmp_path / "cache" / "tokenized"
    monkeypatch.delenv("LONGWIN_CACHE")
    assert default_cache_root().parts[-3:] == (".cache", "longwin", "tokenized")


def test_large_vocab_uses_uint32_and_slow_fingerprint(tmp_path):
    corpus = TokenizedCorpus.build(DOCS, FakeSlowTokenizer(), tmp_path)
    assert corpus.tokens.dtype == np.uint32
    assert corpus.doc(0).tolist() == [70_000, 69_999, 69_999, 69_999, 69_999, 70_001]


def test_missing_bos_is_a_user_error(tmp_path):
    with pytest.raises(LongwinError, match="no BOS token"):
        TokenizedCorpus.build(DOCS, FakeSlowTokenizer(bos=None), tmp_path)
    assert len(TokenizedCorpus.build(DOCS, FakeSlowTokenizer(bos=None), tmp_path, add_bos=False)) == 3


def test_failed_build_leaves_nothing_behind(tiny_tokenizer, tmp_path):
    class Failing(CountingTokenizer):
        def __call__(self, *args, **kwargs):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        TokenizedCorpus.build(DOCS, Failing(tiny_tokenizer), tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert len(TokenizedCorpus.build(DOCS, tiny_tokenizer, tmp_path)) == 3


def test_empty_corpus(tiny_tokenizer, tmp_path):
    corpus = TokenizedCorpus.build([], tiny_tokenizer, tmp_path)
    assert len(corpus) == 0 and corpus.total_tokens == 0 and corpus.lengths.tolist() == []
