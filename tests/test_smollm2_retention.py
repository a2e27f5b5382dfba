"""The SmolLM2 study's retention-method verdicts on small synthetic records: a method is "worse" only where the
whole paired interval says so, a pair scored on different prompts is not compared, and a missing stage leaves
the verdict unsaid instead of guessing."""

from __future__ import annotations

import json
import math

import pytest
import smollm2_domains
import smollm2_records
import smollm2_retention as ret
import torch

from longwin.eval.tasks.ppl import encode_losses

LENGTHS = (2048, 8192, 16384)
DEPTHS = (0.0, 25.0, 50.0, 75.0, 100.0)


def _write(root, name: str, task: str, rows: list[dict]) -> None:
    folder = root / name / task
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cells.jsonl").write_text("".join(json.dumps({"fingerprint": name, **r}) + "\n" for r in rows))


def _ppl(root, name: str, loss: float, noise: int) -> None:
    """4 documents a length, 1,024 tokens each: the in-domain record (pooled only) and news (per-token losses)."""
    gen = torch.Generator().manual_seed(noise)
    plain, news = [], []
    for n in LENGTHS:
        for doc in range(4):
            key = {"task": "ppl", "key": f"ppl/{n}/last-k/{doc}", "length": n, "position": "last-k", "sample": doc}
            plain.append({**key, "nll": 1024 * loss, "tokens": 1024, "ppl": math.exp(loss)})
            nll = torch.rand(1024, generator=gen) * 0.2 + loss
            news.append({**key, "nll": float(nll.sum()), "tokens": 1024, "ppl": math.exp(float(nll.mean())),
                         "token_nll": encode_losses(nll), "tokens_sha": f"news-{n}-{doc}"})  # fmt: skip
    _write(root, name, "ppl", plain)
    _write(root, name, "oodppl", news)


def _task(root, name: str, task: str, score: float, lengths=LENGTHS, prompts: str = "p") -> None:
    rows = [
        {"task": task, "key": f"{task}/{n}/{d}/{i}", "length": n, "position": str(d), "sample": i,
         "score": score, "whole": float(score == 1.0), "prompt_sha": f"{prompts}-{n}-{d}-{i}", "output": ""}
        for n in lengths for d in DEPTHS for i in range(2)
    ]  # fmt: skip
    _write(root, name, task, rows)


@pytest.fixture
def results(tmp_path, monkeypatch):
    for module in (smollm2_records, smollm2_domains):
        monkeypatch.setattr(module, "RESULTS", tmp_path)
    _ppl(tmp_path, "base", 2.0, 0)
    _task(tmp_path, "base", "passkey", 1.0)
    _task(tmp_path, "base", "copy", 0.6, lengths=LENGTHS[:2])
    _ppl(tmp_path, "yarn-free", 2.05, 1)
    _task(tmp_path, "yarn-free", "passkey", 0.0)
    _task(tmp_path, "yarn-free", "copy", 0.3)
    return tmp_path


def test_a_method_that_keeps_the_window_and_beats_the_free_bar(results):
    _ppl(results, "endprompt-yarn", 2.0, 0)  # the base's losses inside the window, on the same tokens
    _task(results, "endprompt-yarn", "passkey", 1.0)
    _task(results, "endprompt-yarn", "copy", 0.6)
    line = ret.method_verdict("endprompt-yarn")
    assert "news perplexity no measurable difference at 2K, no measurable difference at 8K" in line
    assert "the key right before the question at 2K 2/2 (the base 2/2)" in line
    assert "words copied no measurable difference at 2K" in line
    reach = line.split("Reach")[1]
    assert "news perplexity better" in reach and "words copied better" in reach
    assert "pass keys 10/10" in reach


def test_copying_lost_inside_the_window_is_worse_and_mixed_windows_say_what_they_give_back(results):
    for name, copied in (("cream-yarn", 0.0), ("cream-yarn-mixed", 0.6)):
        _ppl(results, name, 1.9, 2)
        _task(results, name, "passkey", 0.0)
        _task(results, name, "copy", copied)
    assert "words copied worse at 2K, worse at 8K" in ret.method_verdict("cream-yarn")
    mixed = ret.mixed_verdict("cream-yarn-mixed", "cream-yarn")
    assert "news perplexity no measurable difference at 2K" in mixed
    assert "words copied better at 2K (+60.0 [+60.0, +60.0])" in mixed
    assert "the key right before the question at 2K 0/2 against 0/2" in mixed


def test_other_prompts_or_a_missing_stage_leave_the_verdict_unsaid(results):
    _ppl(results, "endprompt-yarn", 2.0, 0)
    _task(results, "endprompt-yarn", "passkey", 1.0)
    _task(results, "endprompt-yarn", "copy", 0.6, prompts="other")
    assert ret.paired_score("endprompt-yarn", "base", "copy", 2048) is None
    assert ret.method_verdict("endprompt-yarn") == ""
    (results / "endprompt-yarn" / "oodppl" / "cells.jsonl").unlink()
    _task(results, "endprompt-yarn", "copy", 0.6)
    assert ret.method_verdict("endprompt-yarn") == ""  # no news record: no retention verdict yet
    section = ret.retention_section()
    assert "| endprompt-yarn | +0.0 % / – |" in section
    assert "not every record is complete yet" in section


def test_nothing_run_says_so(results):
    assert ret.retention_section().startswith("Not measured yet: the stages")


def test_the_temperature_comparison_holds_only_rows_that_differ_in_their_logit_scale():
    """A mixed-window or distilled CREAM-YaRN row shares a scale with `cream-yarn` but differs in training, so it
    must not stand in the by-scale comparison."""
    rows = smollm2_records.yarn_rows(("cream",))
    assert "cream-yarn" in rows and len(rows) >= 3
    assert not any(smollm2_records.ROWS[n].mixed or smollm2_records.ROWS[n].distill for n in rows)
    assert {"cream-yarn-mixed", "cream-yarn-distill"} <= set(smollm2_records.ROWS)
