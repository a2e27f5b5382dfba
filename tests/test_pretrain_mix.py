"""The toy pretraining mix: fixed-length windows, deterministic per index, whole retrieval examples."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

from conftest import _TEXT
from longwin.data import synthetic
from longwin.data.pretrain_mix import MixSources, PretrainMixDataset


@pytest.fixture(scope="module")
def mix(tiny_tokenizer):
    plain = [t for t in _TEXT if "pass key" not in t]  # natural text must not contain pass keys itself
    texts = [" ".join(plain[i : i + 25]) for i in range(0, 100, 25)]
    natural = [np.asarray(tiny_tokenizer(t, add_special_tokens=False)["input_ids"], dtype=np.int32) for t in texts]
    sources = MixSources(natural, [s for t in texts for s in synthetic.filler_sentences(t)], synthetic.word_list(texts))
    return PretrainMixDataset(sources, tiny_tokenizer, seq_len=128, num_windows=40, seed=7)


def test_windows_have_fixed_length_start_with_bos_and_are_deterministic(mix, tiny_tokenizer):
    for i in range(len(mix)):
        item = mix[i]
        assert item["input_ids"].shape == (128,) and item["input_ids"][0] == tiny_tokenizer.bos_token_id
        assert item["input_ids"].tolist() == item["labels"].tolist() == mix.window(i)
    assert mix.window(3) != mix.window(4)


def test_passkey_examples_are_whole_and_answer_their_own_key(mix, tiny_tokenizer):
    text = "".join(tiny_tokenizer.decode(mix.window(i)) for i in range(len(mix)))
    asked = re.findall(
        r"The pass key is (\d+)\. Remember it\.(?:.|\n)*?What is the pass key\? The pass key is (\d+)\.", text
    )
    assert asked, "no complete passkey example in 40 windows"
    assert all(stored == answered for stored, answered in asked)


@pytest.mark.parametrize("kind", sorted(synthetic.GENERATORS))
def test_generators_grow_with_units(kind):
    fn, pool = synthetic.GENERATORS[kind]
    items = {
        "grass": synthetic.GRASS_SENTENCES,
        "sentences": [f"Sentence number {i} is here." for i in range(50)],
        "words": [f"word{c}" for c in "abcdefghij"],
    }[pool]
    assert len(fn(random.Random(0), items, 10)) > len(fn(random.Random(0), items, 2))


def test_random_copy_examples_repeat_a_span_of_regular_tokens(mix, tiny_tokenizer):
    rng = random.Random(3)
    for room in (30, 80, 127):
        ex = mix._example("copy_random", rng, room)
        half = len(ex) // 2
        assert len(ex) <= room and ex[:half] == ex[half:] and half >= 8
        assert min(ex) > max(tiny_tokenizer.all_special_ids)


def test_recall_examples_repeat_a_passage_after_unrelated_text(mix):
    rng = random.Random(5)
    assert mix._example("recall", rng, 20) is None  # no room for two passages and a gap
    for room in (40, 80, 127):
        for _ in range(20):
            ex = mix._example("recall", rng, room)
            assert len(ex) <= room
            # the example ends with its passage; the same passage occurs earlier, at least 8 tokens before
            found = [
                n
                for n in range(8, min(48, room // 4) + 1)
                if any(ex[s : s + n] == ex[-n:] for s in range(len(ex) - 2 * n - 8 + 1))
            ]
            assert found, ex


def test_shuffled_windows_reorder_the_same_pieces_so_examples_can_close_a_window(mix, tiny_tokenizer):
    plain = PretrainMixDataset(mix.sources, tiny_tokenizer, seq_len=128, num_windows=40, seed=7, shuffle=False)
    eos = tiny_tokenizer.eos_token_id
    for i in range(len(mix)):
        assert sorted(mix.window(i)) == sorted(plain.window(i)) and mix.window(i)[0] == plain.window(i)[0]
    assert any(mix.window(i) != plain.window(i) for i in range(len(mix)))
    # rendered examples end with EOS; unshuffled, the last piece is almost always the natural filler
    closed = lambda ds: sum(ds.window(i)[-1] == eos for i in range(len(ds)))  # noqa: E731
    assert closed(mix) >= closed(plain) + 5, (closed(plain), closed(mix))
