"""The content-copy task: the span sits where asked, the cue is its start, the answer its rest, and the
score counts the words copied in order; a model that copies scores 100, one that does not scores 0."""

from __future__ import annotations

import pytest

from longwin.eval import evaluate
from longwin.eval.options import EvalOptions
from longwin.eval.prompting import PromptFormatter
from longwin.eval.tasks import make_task
from longwin.eval.tasks.copy import CUE_WORDS, SPAN_WORDS, first_run, word_pool


@pytest.fixture(scope="module")
def toy_tokenizer():
    """The toy's 2,048-token BPE: a small vocabulary that still writes a few hundred words as one token."""
    from transformers import AutoTokenizer

    from longwin.models import model_path

    return AutoTokenizer.from_pretrained(model_path("toy"))


@pytest.fixture
def built(toy_tokenizer):
    task = make_task("copy", EvalOptions(depths=[0.0, 50.0, 100.0], samples=2), seed=0)
    fmt = PromptFormatter(toy_tokenizer)
    return task, {c.key: (c, task.build(c, fmt)) for c in task.cells([300, 600])}


def test_span_cue_and_answer(built, toy_tokenizer):
    task, cells = built
    for word in task._pool:
        assert len(toy_tokenizer(" " + word, add_special_tokens=False)["input_ids"]) == 1
    for cell, sample in cells.values():
        assert len(sample.prompt.ids) <= cell.length
        assert len(sample.answer) == SPAN_WORDS - CUE_WORDS and set(sample.answer) <= set(task._pool)
        cue = sample.text.rstrip().split("\n\n")[-1].split()
        assert len(cue) == CUE_WORDS
        span = " ".join(cue + sample.answer)
        assert sample.text.count(span) == 1, "the span appears once, in the context"
        assert abs(sample.info["depth_actual"] - float(cell.position)) <= 25  # whole sentences of a short prompt


def test_depth_moves_the_span_and_the_seed_fixes_it(built, toy_tokenizer):
    task, cells = built
    near, far = cells["copy/600/100/0"][1], cells["copy/600/0/0"][1]
    span_at = {
        k: s.text.index(" ".join(s.text.rstrip().split("\n\n")[-1].split())) for k, s in (("near", near), ("far", far))
    }
    assert span_at["far"] < span_at["near"]
    again = make_task("copy", EvalOptions(depths=[0.0, 50.0, 100.0], samples=2), seed=0)
    cell = cells["copy/300/50/1"][0]
    assert again.build(cell, PromptFormatter(toy_tokenizer)).text == cells["copy/300/50/1"][1].text


def test_word_pool_refuses_a_tokenizer_without_enough_single_token_words(tiny_tokenizer):
    from longwin.errors import LongwinError

    with pytest.raises(LongwinError, match="single-token words"):
        word_pool(["Nothing here repeats."], tiny_tokenizer)


def test_first_run_counts_words_in_order():
    assert first_run("Apple river, stone cloud.", ["apple", "river", "stone", "cloud"]) == 4
    assert first_run("apple stone river", ["apple", "river", "stone"]) == 1
    assert first_run("", ["apple"]) == 0


class _Copier:
    """A fake EvalModel that continues the span it finds in the prompt (perfect copying), or not."""

    name = identity = "copier"
    window = position_limit = None

    def __init__(self, tokenizer, copies: bool) -> None:
        self.tokenizer, self.copies = tokenizer, copies

    def memory_needed(self, tokens, cache=True):
        return tokens

    def generate(self, prompts, max_new_tokens):
        outs = []
        for p in prompts:
            text = self.tokenizer.decode(p.ids, skip_special_tokens=True)
            cue = " ".join(text.rstrip().split("\n\n")[-1].split())
            rest = text.split(cue, 1)[1].split(".")[0] if self.copies else " nothing here"
            outs.append(self.tokenizer(rest, add_special_tokens=False)["input_ids"])
        return outs

    def token_nll(self, ids, score_from):
        raise AssertionError("not used")


@pytest.mark.parametrize("copies,expected", [(True, 100.0), (False, 0.0)])
def test_a_copier_scores_100_and_a_non_copier_0(tmp_path, toy_tokenizer, copies, expected):
    results = evaluate(
        _Copier(toy_tokenizer, copies), "copy", [300], tmp_path, depths=[0.0, 100.0], samples=1, progress=False
    )
    assert results["tasks"]["copy"]["overall"] == expected
