"""Retrieval examples on sampled position ids: evidence inside one run, question and answer at the end."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import _TEXT
from longwin import positions
from longwin.data.retrieval_docs import KINDS, RetrievalExamples, runs
from longwin.errors import LongwinError

TEXT_IDS = list(range(5, 300)) * 20


def natural(rng: random.Random, length: int) -> list[int]:
    start = rng.randrange(len(TEXT_IDS) - length)
    return TEXT_IDS[start : start + length]


@pytest.fixture(scope="module")
def examples(tiny_tokenizer):
    return RetrievalExamples(tiny_tokenizer, natural, _TEXT)


def find(seq: list[int], part: list[int]) -> list[int]:
    return [i for i in range(len(seq) - len(part) + 1) if seq[i : i + len(part)] == part]


def test_runs_splits_at_gaps():
    assert runs(torch.tensor([0, 1, 2, 7, 8, 20])) == [(0, 3), (3, 5), (5, 6)]
    assert runs(torch.arange(5)) == [(0, 5)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    scheme=st.sampled_from(["cream", "pose", "randpos", "none"]),
    seed=st.integers(0, 2**32),
    kind=st.sampled_from(KINDS),
)
def test_evidence_precedes_the_question_inside_one_run(examples, scheme, seed, kind):
    train_len, target_len = 128, 1024
    position_ids = positions.sample(scheme, train_len, target_len, seed=seed)
    rng = random.Random(seed)
    pieces = examples.pieces(kind, random.Random(seed), target_len)
    ids = examples._place(pieces, rng, position_ids)
    if ids is None:  # only when no run before the question's place can hold the evidence
        qa, spans = pieces.question + pieces.answer, runs(position_ids)
        fits = [i for i, (s, e) in enumerate(spans) if e - s >= len(qa)]
        if not fits:
            spans, fits = [(0, train_len)], [0]
        q_start = spans[fits[-1]][1] - len(qa)
        assert all(min(e, q_start) - s < len(pieces.evidence) for s, e in spans[: fits[-1] + 1])
        return
    tokens = ids.tolist()
    assert len(tokens) == train_len
    qa = pieces.question + pieces.answer
    q_at = max(find(tokens, qa))
    spans = runs(position_ids)
    long_enough = [(s, e) for s, e in spans if e - s >= len(qa)]
    if long_enough:  # the question and answer end the last run that holds them
        assert q_at + len(qa) == long_enough[-1][1]
    else:
        assert q_at + len(qa) == train_len
    hits = [i for i in find(tokens, pieces.evidence) if i + len(pieces.evidence) <= q_at]
    assert hits, "evidence missing before the question"
    at = hits[0]
    if long_enough:  # inside one run of consecutive positions
        assert any(s <= at and at + len(pieces.evidence) <= e for s, e in spans)


def test_filler_is_indexed_by_position(examples):
    """Outside evidence, intro and question, the token at slot i is the filler at position_ids[i]."""
    position_ids = positions.sample("cream", 128, 1024, seed=3)
    pieces = examples.pieces("passkey_text", random.Random(0), 1024)
    tokens = examples._place(pieces, random.Random(1), position_ids).tolist()
    agree = sum(t == pieces.filler[p] for t, p in zip(tokens, position_ids.tolist()))
    assert agree >= 128 - len(pieces.intro) - len(pieces.evidence) - len(pieces.question) - len(pieces.answer)


def test_build_is_deterministic_and_covers_kinds(examples):
    position_ids = positions.sample("cream", 128, 1024, seed=0)
    a = examples.build(random.Random(7), position_ids, 1024)
    b = examples.build(random.Random(7), position_ids, 1024)
    assert torch.equal(a[0], b[0]) and a[1] == b[1]
    assert len({tuple(examples.build(random.Random(s), position_ids, 1024)[0].tolist()[:12]) for s in range(20)}) > 1


@pytest.mark.parametrize("kind", ["passkey_grass", "lines"])
def test_evidence_by_keeps_the_evidence_in_the_context(examples, kind):
    """SharedLLM's use: one contiguous span, evidence in its first 192 slots, answer the last tokens."""
    for seed in range(20):
        pieces = examples.pieces(kind, random.Random(seed), 256)
        ids = examples._place(pieces, random.Random(seed), torch.arange(256), evidence_by=192).tolist()
        assert ids[-len(pieces.answer) :] == pieces.answer
        assert find(ids[:192], pieces.evidence), "evidence not inside the context"


def test_unknown_kind_is_a_clear_error(tiny_tokenizer):
    with pytest.raises(LongwinError, match="unknown retrieval kind"):
        RetrievalExamples(tiny_tokenizer, natural, _TEXT, ["passkey", "nope"])


def test_dataset_mixes_retrieval_examples_at_the_requested_share(tiny_tokenizer, tmp_path):
    import json

    from longwin.data.pool import build_pool
    from longwin.methods.positions.dataset import PositionSchemeDataset

    corpus = tmp_path / "c.jsonl"
    rng = random.Random(0)
    text = [t for t in _TEXT if "pass key" not in t]  # so the marker below only comes from retrieval examples
    corpus.write_text(
        "".join(
            json.dumps({"id": str(i), "text": " ".join(rng.choice(text) for _ in range(40))}) + "\n" for i in range(6)
        )
    )
    pool = build_pool(str(corpus), tiny_tokenizer, min_tokens=128, val_fraction=0, seed=0)
    retrieval = RetrievalExamples(tiny_tokenizer, pool.stream, pool.texts(tiny_tokenizer), ["passkey_grass"])
    data = PositionSchemeDataset(
        pool,
        "cream",
        train_len=128,
        target_len=1024,
        num_samples=200,
        seed=0,
        retrieval=retrieval,
        retrieval_fraction=0.5,
    )
    marker = tiny_tokenizer("What is the pass key?", add_special_tokens=False)["input_ids"]
    share = sum(bool(find(data[i]["input_ids"].tolist(), marker)) for i in range(200)) / 200
    assert 0.38 <= share <= 0.62
    item = data[0]
    assert item["input_ids"].shape == item["position_ids"].shape == (128,)
    assert torch.equal(item["input_ids"], item["labels"])
    with pytest.raises(LongwinError, match="between 0 and 1"):
        PositionSchemeDataset(
            pool,
            "cream",
            train_len=128,
            target_len=1024,
            num_samples=1,
            seed=0,
            retrieval=retrieval,
            retrieval_fraction=1.5,
        )


def test_native_fraction_keeps_that_share_on_contiguous_positions(tiny_tokenizer, tmp_path):
    import json

    from longwin.data.pool import build_pool
    from longwin.methods.positions.dataset import PositionSchemeDataset

    corpus = tmp_path / "c.jsonl"
    rng = random.Random(0)
    corpus.write_text(
        "".join(
            json.dumps({"id": str(i), "text": " ".join(rng.choice(_TEXT) for _ in range(40))}) + "\n" for i in range(6)
        )
    )
    pool = build_pool(str(corpus), tiny_tokenizer, min_tokens=128, val_fraction=0, seed=0)
    native = torch.arange(128)

    def share(fraction: float) -> float:
        data = PositionSchemeDataset(
            pool, "cream", train_len=128, target_len=1024, num_samples=200, seed=0, native_fraction=fraction
        )
        return sum(torch.equal(data[i]["position_ids"], native) for i in range(200)) / 200

    assert share(0.0) == 0.0 and share(1.0) == 1.0
    assert 0.38 <= share(0.5) <= 0.62
