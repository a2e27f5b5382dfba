"""The serving record's report: perplexity past the native window from per-token losses, and its tables."""

from __future__ import annotations

import json
import math

import pytest
import serving_report
import torch

from longwin.eval.tasks.ppl import encode_losses


def test_past_native_scores_only_the_tokens_at_or_beyond_the_native_window():
    # a 12-token window scoring its last 11 tokens (positions 1..11); native window 8: positions 8..11
    nll = [0.0] * 7 + [1.0, 2.0, 3.0, 4.0]
    assert serving_report.past_native(nll, 12, 8) == pytest.approx(math.exp(2.5))
    assert serving_report.past_native(nll[-5:], 12, 8) == pytest.approx(math.exp(2.5))  # last-k scoring
    assert serving_report.past_native(nll, 8, 8) is None  # nothing past the window


def test_the_table_pairs_each_llama_cpp_row_with_the_transformers_cell_of_the_same_tokens(tmp_path, monkeypatch):
    monkeypatch.setattr(serving_report, "RESULTS", tmp_path)
    monkeypatch.setattr(serving_report, "ROOT", tmp_path)
    monkeypatch.setattr(serving_report, "NATIVE", 4)
    theirs, ours = torch.tensor([1.0] * 3 + [2.0] * 4), torch.tensor([1.0] * 3 + [3.0] * 4)
    (tmp_path / "base" / "ppl").mkdir(parents=True)
    cell = {"task": "ppl", "tokens_sha": "abc", "token_nll": encode_losses(theirs)}
    other = {"task": "ppl", "tokens_sha": "zzz", "token_nll": encode_losses(ours)}  # other tokens: not paired
    (tmp_path / "base" / "ppl" / "cells.jsonl").write_text(json.dumps(other) + "\n" + json.dumps(cell) + "\n")
    row = {"name": "base", "outtype": "f16", "length": 8, "sample": 0, "tokens_sha": "abc", "ppl_transformers": 2.0,
           "ppl_llama_cpp": 2.5, "rel_diff": 0.25, "token_nll": encode_losses(ours)}  # fmt: skip
    (tmp_path / "base" / "cells.jsonl").write_text(json.dumps(row) + "\n")
    line = serving_report.ppl_table().splitlines()[-1]
    assert line.endswith(f"| +25.000 % | {math.exp(2):.4f} | {math.exp(3):.4f} |")
    assert serving_report.signed(-0.0001) == "0.000" and serving_report.signed(-0.02) == "-0.020"
