"""Paired intervals, key tokens, effective length and the paired part of `longwin eval --compare`."""

from __future__ import annotations

import json
import math

import pytest
import torch

from longwin.cli import main
from longwin.errors import LongwinError
from longwin.eval import paired
from longwin.eval.tasks.ppl import decode_losses
from longwin.models.key_tokens import KeyTokenRule, key_tokens


def test_paired_difference_matches_the_normal_closed_form():
    a = [1.0, 0.0] * 200  # differences +0.5 / -0.5: mean 0, standard deviation 0.5, n = 400
    diff = paired.score_difference(a, [0.5] * 400)
    half = 1.96 * 0.5 / math.sqrt(400)  # the closed form: mean +- 1.96 sd / sqrt(n)
    assert diff.value == pytest.approx(0.0)
    assert diff.low == pytest.approx(-half, rel=0.15) and diff.high == pytest.approx(half, rel=0.15)


def test_a_constant_shift_in_loss_is_an_exact_ratio_with_no_width():
    torch.manual_seed(0)
    b = [torch.rand(3000) * 5, torch.rand(2000) * 5]
    a = [x + 0.1 for x in b]
    ratio = paired.perplexity_ratio(a, b)
    assert ratio.value == pytest.approx(math.exp(0.1)) and ratio.high - ratio.low < 1e-6  # float32 losses


def test_pairing_makes_the_interval_narrower_than_the_noise_between_documents():
    torch.manual_seed(0)
    docs = [torch.rand(512) * s for s in (1.0, 4.0, 8.0)]  # documents of very different difficulty
    better = [x * 0.95 for x in docs]
    ratio = paired.perplexity_ratio(better, docs)
    assert ratio.high < 1.0, ratio  # 5 % lower loss everywhere is detected despite the spread across documents


def test_key_tokens_are_the_paper_criteria():
    long = torch.tensor([0.1, 3.0, 0.5, 2.5])
    short = torch.tensor([5.0, 6.0, 0.6, 4.4])
    # token 0: gains 4.9 nats and long logp -0.1 -> key; 1: gains 3 but logp -3 < -2; 2: gains 0.1; 3: gains 1.9
    assert key_tokens(long, short).tolist() == [True, False, False, False]
    assert key_tokens(long, short, KeyTokenRule(alpha=1.5, beta=-3.5)).tolist() == [
        True, True, False, True
    ]  # fmt: skip


def test_effective_length_stops_at_the_first_length_that_misses_the_bar():
    assert paired.effective_length({256: 100, 512: 90, 1024: 80, 2048: 90}, 100, True) == 512
    assert paired.effective_length({256: 60, 512: 90}, 100, True) is None
    assert paired.effective_length({256: 10.0, 512: 10.9, 1024: 11.5}, 10.0, False) == 512
    assert paired.in_window_reference({256: 90.0, 512: 70.0, 1024: 0.0}, 512) == 80.0


def _toy_span_text(seed: int = 0) -> tuple[list[int], int, int]:
    """Prose, a random 24-token span, more prose, the span again: (token ids, start of the second span, end)."""
    from transformers import AutoTokenizer

    from longwin.models import model_path

    tokenizer = AutoTokenizer.from_pretrained(model_path("toy"))
    from longwin.data.corpora import load_documents

    prose = tokenizer(load_documents("essays")[0].text[:3000])["input_ids"]  # ordinary prose, not repeated
    span = torch.randint(100, len(tokenizer) - 1, (24,), generator=torch.Generator().manual_seed(seed)).tolist()
    assert len(prose) >= 180
    ids = prose[:90] + span + prose[90:180] + span
    return ids, 90 + 24 + 90, len(ids)


def test_the_second_occurrence_of_a_random_span_is_key_and_prose_is_not(tmp_path):
    """A known answer on the toy (which has induction heads): with 48 tokens of short context the repeated
    span's tokens (all but its first two) become predictable only from the long context."""
    from longwin.eval.model import CausalLMAdapter
    from longwin.eval.options import make_options
    from longwin.eval.tasks.ppl import PerplexityTask
    from longwin.models import load_model

    model, tokenizer = load_model("toy")
    adapter = CausalLMAdapter(model, tokenizer)
    ids, second, end = _toy_span_text()
    task = PerplexityTask(make_options({"short_context": 48, "conventions": ["short"]}), 0)
    long = adapter.token_nll(ids, 1)
    short = task._short(adapter, ids, 0)
    key = key_tokens(long, short)  # position i of `key` is token i + 1
    repeated = key[second + 1 : end - 1]
    prose = key[30:89]
    assert repeated.float().mean() >= 0.9, repeated
    assert prose.float().mean() <= 0.15, prose  # an essay repeats some words of its own too


def test_adding_a_length_never_moves_the_tokens_another_length_scores(tmp_path):
    def cells(lengths: str) -> dict:
        out = tmp_path / lengths.replace(",", "-")
        args = ["--model", "toy", "--task", "ppl", "--lengths", lengths, "--samples", "2", "--corpus", "kjv"]
        assert (
            main(["eval", *args, "--conventions", "chunks,last-k,sliding", "--progress", "false", "--out", str(out)])
            == 0
        )
        rows = [json.loads(line) for line in (out / "cells.jsonl").read_text().splitlines()]
        return {(c["length"], c["position"], c["sample"]): (c["tokens_sha"], c["nll"]) for c in rows}

    short, long = cells("128,256"), cells("128,256,2048")
    assert short and all(long[key] == value for key, value in short.items())


def test_compare_pairs_same_tokens_and_marks_different_ones(tmp_path, capsys):
    common = ["--task", "ppl", "--conventions", "chunks,short", "--short-context", "64", "--samples", "2",
              "--progress", "false", "--corpus", "kjv"]  # fmt: skip
    runs = {
        "base": ["--model", "toy", "--lengths", "256,512"],
        "yarn": ["--model", "toy", "--rope", "yarn", "--target-length", "1024", "--lengths", "256,512"],
        "grid": ["--model", "toy", "--lengths", "256,512,1024"],  # a longer grid: the same tokens at 256 and 512
        "spaced": ["--model", "toy", "--lengths", "256,512", "--sample-spacing", "4096"],  # other tokens
    }
    for name, args in runs.items():
        assert main(["eval", *args, *common, "--out", str(tmp_path / name)]) == 0
    cells = [json.loads(line) for line in (tmp_path / "base" / "cells.jsonl").read_text().splitlines()]
    assert all(len(decode_losses(c["token_nll"])) == c["tokens"] and c["tokens_sha"] for c in cells)
    capsys.readouterr()
    assert main(["eval", "--compare", *(str(tmp_path / n) for n in runs), "--out", str(tmp_path / "cmp")]) == 0
    text = (tmp_path / "cmp" / "compare.md").read_text()
    yarn_rows = [line for line in text.splitlines() if line.startswith("| chunks | 256 | yarn |")]
    assert yarn_rows and "[" in yarn_rows[0]
    assert "| chunks | 256 | spaced | different tokens: not paired |" in text
    assert "| chunks | 512 | grid | 1.000 [1.000, 1.000] |" in text
    assert "| chunks | 256 | grid | 1.000 [no interval: 4 blocks] |" in text  # 2 samples x 2 blocks: too few
    assert "Key-token and rest-token perplexity" in text and "Effective length" in text


def test_sparse_kept_tokens_are_resampled_in_position_blocks():
    torch.manual_seed(0)
    b = [torch.rand(4096) * 4 for _ in range(2)]
    a = [x - 0.5 for x in b]
    keep = [torch.zeros(4096, dtype=torch.bool) for _ in range(2)]
    for m in keep:
        m[::256] = True  # 16 kept tokens a sample, each in its own 128-position block
    ratio = paired.perplexity_ratio(a, b, keep=keep)
    assert ratio.units == 32 and ratio.bounded
    assert ratio.value == pytest.approx(math.exp(-0.5), rel=1e-5)
    few = [torch.zeros(4096, dtype=torch.bool) for _ in range(2)]
    few[0][:3] = True  # three kept tokens in one block: no honest interval
    thin = paired.perplexity_ratio(a, b, keep=few)
    assert thin.units == 1 and not thin.bounded and thin.value == pytest.approx(math.exp(-0.5), rel=1e-5)
    with pytest.raises(LongwinError, match="same tokens"):
        paired.perplexity_ratio(a, b, keep=[keep[0][:10], keep[1]])
