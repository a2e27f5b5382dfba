"""The SmolLM2 study's context-use verdict on small synthetic records: a row that predicts the tokens the far
context makes predictable wins even on the other row's key tokens; a row that only fits the rest does not."""

from __future__ import annotations

import json

import smollm2_keytokens as kt
import torch

from longwin.eval.tasks.ppl import encode_losses

TOKENS = 4096  # 32 blocks of 128 per document


def _write(root, name: str, long: list[torch.Tensor], short: list[torch.Tensor], lengths=(8192, 16384)) -> None:
    folder = root / name / "keyppl"
    folder.mkdir(parents=True)
    rows = []
    for length in lengths:
        for convention, losses in (("chunks", long), ("short", short)):
            for i, nll in enumerate(losses):
                rows.append({"task": "ppl", "key": f"ppl/{length}/{convention}/{i}", "length": length,
                             "position": convention, "sample": i, "fingerprint": name, "tokens": len(nll),
                             "token_nll": encode_losses(nll), "tokens_sha": f"doc{i}-{length}"})  # fmt: skip
    (folder / "cells.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_context_use_beats_adaptation_on_the_other_rows_key_tokens(tmp_path, monkeypatch):
    torch.manual_seed(0)
    far = torch.zeros(TOKENS, dtype=torch.bool)
    far[::16] = True  # 256 tokens a document that only the far context predicts
    docs = [torch.rand(TOKENS) * 2 + 2 for _ in range(3)]
    short = [d.clone() + far * 4.0 for d in docs]  # with 4K of context, the far tokens are hard for every row
    user = [torch.where(far, torch.full_like(d, 0.2), d) for d in docs]  # reads the far context
    fitter = [torch.where(far, torch.full_like(d, 1.0), d * 0.9) for d in docs]  # uses it less, fits the rest
    free = [torch.where(far, torch.full_like(d, 1.5), d) for d in docs]
    monkeypatch.setattr(kt, "RESULTS", tmp_path)
    _write(tmp_path, "cream-yarn", user, short)
    _write(tmp_path, "pose-yarn", user, short)
    _write(tmp_path, "contiguous-yarn", fitter, [s * 0.9 for s in short])
    _write(tmp_path, "yarn-free", free, short)
    line = kt.headline()
    assert "the position layouts use the far context measurably better than contiguous fine-tuning" in line
    assert "which in turn fits the rest tokens (adaptation) better" in line
    key, rest, count = kt.compare("cream-yarn", "contiguous-yarn", 16384, "contiguous-yarn")
    assert count == 3 * 256 and key.high < 1 < rest.low
    assert "cream-yarn lower even on contiguous-yarn's own key tokens" in kt.verdict()


def test_no_records_say_not_measured(tmp_path, monkeypatch):
    monkeypatch.setattr(kt, "RESULTS", tmp_path)
    assert kt.key_token_section().startswith("Not measured yet")
    assert kt.headline() == ""
