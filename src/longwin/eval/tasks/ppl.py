"""Perplexity vs context length in three conventions (docs/evaluation-tasks.md#ppl), always named.

The corpus is tokenised once into a stream (documents joined by a blank line). Sample i of every
length ends at the same stream offset, so the tokens scored by `last-k` are identical across
lengths and only the amount of context before them changes. Each window starts with BOS (when the
tokenizer has one) and is `length` tokens long.

- `sliding`: a 2*length span scored with windows of `length` tokens every `stride` tokens; each
  window scores only tokens not scored before (PI / YaRN convention).
- `chunks`: one window of `length` tokens, every token scored (Landmark / LongLoRA convention).
- `last-k`: one window of `length` tokens, only its last K tokens scored (CEPE / SharedLLM).
- `short`: the tokens `chunks` scores, each with at most `short_context` tokens of context (pieces back to
  front, BOS kept in front): the short side of key-token perplexity (`longwin.eval.paired`).
PPL per length = exp(total NLL / total scored tokens) over the samples.

Every cell keeps the loss of each token it scored (`token_nll`: little-endian float32, base64, in token
order), so later measures (key tokens, paired intervals) run from the records with no forward pass.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from longwin.errors import LongwinError
from longwin.eval.haystack import iter_texts
from longwin.eval.model import EvalModel, piecewise_nll
from longwin.eval.plots import save_lines
from longwin.eval.tasks.base import Cell, NllTask

CONVENTIONS = ("sliding", "chunks", "last-k", "short")


class PerplexityTask(NllTask):
    name = "ppl"
    default_samples = 2

    def __init__(self, options, seed) -> None:
        super().__init__(options, seed)
        unknown = [c for c in options.conventions if c not in CONVENTIONS]
        if unknown or not options.conventions:
            raise LongwinError(f"unknown perplexity convention(s) {unknown} (known: {', '.join(CONVENTIONS)})")
        if options.stride < 0 or options.last_k < 1:
            raise LongwinError("--stride must be >= 0 and --last-k >= 1")
        self.conventions = list(dict.fromkeys(options.conventions))
        self.settings = {"corpus": options.corpus or "essays", "stride": options.stride, "last_k": options.last_k}
        if "short" in self.conventions:  # part of the fingerprint only where it changes what is scored
            self.settings["short_context"] = options.short_context
        self._stream: list[int] | None = None
        # sample i ends at stream offset (i + 1) x spacing whatever the grid, so adding a length never moves
        # the tokens another length scores (part of the fingerprint); a corpus shorter than samples x spacing
        # is shared evenly instead, which depends on the corpus and tokenizer only
        self._span = self.settings["span"] = options.sample_spacing
        self._widest = 0

    def _stride(self, length: int) -> int:
        return self.options.stride or max(1, length // 2)

    def _last_k(self, length: int) -> int:
        return min(self.options.last_k, length // 2)

    def _need(self, convention: str, length: int) -> int:
        """Stream tokens one sample of this convention and length covers (at most)."""
        return 2 * length if convention == "sliding" else length

    def cells(self, lengths: Sequence[int]) -> list[Cell]:
        if min(lengths) < 4:
            raise LongwinError("perplexity needs lengths of at least 4 tokens")
        need = self._widest = max(self._need(c, n) for c in self.conventions for n in lengths)
        if need > self._span:
            raise LongwinError(
                f"perplexity windows need {need} tokens before a sample's end but samples are "
                f"--sample-spacing {self._span} apart: use --sample-spacing {need} or more"
            )
        return [Cell(self.name, n, c, s) for n in lengths for c in self.conventions for s in range(self.samples)]

    def _tokens(self, model: EvalModel) -> list[int]:
        if self._stream is None:
            need = self.samples * self._span
            stream: list[int] = []
            for text in iter_texts(self.options.corpus):
                stream.extend(model.tokenizer(text + "\n\n", add_special_tokens=False)["input_ids"])
                if len(stream) >= need:
                    break
            if len(stream) < need:  # a short corpus: the samples share it evenly (still whatever the grid)
                self._span = len(stream) // self.samples
            if self._span < self._widest:
                raise LongwinError(
                    f"corpus {self.settings['corpus']!r} has {len(stream)} tokens; {self.samples} samples of "
                    f"{self._widest}-token windows need {self.samples * self._widest} (use fewer --samples or a "
                    "larger --corpus)"
                )
            self._stream = stream
        return self._stream

    def measure(self, cell: Cell, model: EvalModel) -> dict[str, Any]:
        stream = self._tokens(model)
        end = (cell.sample + 1) * self._span
        bos = model.tokenizer.bos_token_id
        head = [bos] if bos is not None else []
        body = cell.length - len(head)
        segment = stream[end - (2 * body if cell.position == "sliding" else body) : end]
        if cell.position == "sliding":
            losses = []
            stride = self._stride(cell.length)
            starts = list(range(0, len(segment) - body + 1, stride))
            if starts[-1] != len(segment) - body:
                starts.append(len(segment) - body)
            scored_to = 0
            for start in starts:
                window = head + segment[start : start + body]
                first_new = max(scored_to - start, 0) + len(head)
                losses.append(model.token_nll(window, max(first_new, 1)))
                scored_to = start + body
            scored = torch.cat(losses)
        elif cell.position == "short":
            scored = self._short(model, head + segment, len(head))
        else:
            window = head + segment
            score_from = 1 if cell.position == "chunks" else len(window) - self._last_k(cell.length)
            scored = model.token_nll(window, score_from)
        nll, count = float(scored.double().sum()), len(scored)
        return {
            "nll": nll,
            "tokens": count,
            "ppl": math.exp(nll / count),
            "token_nll": encode_losses(scored),
            "tokens_sha": tokens_digest(head + segment, self._describe(cell.position, cell.length)),
            "window_tokens": cell.length,
            "convention": self._describe(cell.position, cell.length),
        }

    def _short(self, model: EvalModel, window: list[int], head: int) -> torch.Tensor:
        """`chunks`' tokens of `window`, each seen with at most `short_context` tokens before it."""
        keep = self.options.short_context

        def piece(end: int) -> tuple[int, torch.Tensor]:
            first = 1 if end <= keep else max(1, end - keep // 2)
            start = max(head, end - (keep - head))
            return first, model.token_nll(window[:head] + window[start:end], first - start + head)

        return piecewise_nll(len(window), 1, piece)

    def _describe(self, convention: str, length: int) -> str:
        if convention == "sliding":
            return f"sliding (window {length}, stride {self._stride(length)}, each token scored once)"
        if convention == "last-k":
            return f"last-k (loss on the last {self._last_k(length)} of {length} tokens)"
        if convention == "short":
            return (
                f"short (the {length}-token window's tokens, each with at most {self.options.short_context} before it)"
            )
        return f"chunks (one {length}-token window, all tokens scored)"

    def _explain(self, convention: str) -> str:
        """The convention for any length L, as recorded in results.json."""
        if convention == "sliding":
            stride = self.options.stride or "L/2"
            return f"windows of L tokens every {stride} tokens over a 2L span, each token scored once (PI/YaRN)"
        if convention == "last-k":
            return f"loss on the last min({self.options.last_k}, L/2) tokens of an L-token window (CEPE/SharedLLM)"
        if convention == "short":
            return f"chunks' tokens, each with at most {self.options.short_context} tokens of context (key tokens)"
        return "one L-token window, every token scored (Landmark/LongLoRA)"

    def summarize(self, rows: list[dict]) -> dict[str, Any]:
        series: dict[str, dict[str, float]] = {}
        for conv in self.conventions:
            at = [r for r in rows if r["position"] == conv]
            series[conv] = {
                str(n): round(
                    math.exp(
                        sum(r["nll"] for r in at if r["length"] == n) / sum(r["tokens"] for r in at if r["length"] == n)
                    ),
                    4,
                )
                for n in sorted({r["length"] for r in at})
            }
        return {
            "metric": "perplexity",
            "higher_is_better": False,
            "series": series,
            "conventions": {c: self._explain(c) for c in self.conventions},
            "corpus": self.settings["corpus"],
        }

    def plots(self, summary: dict[str, Any], rows: list[dict], out_dir: Path, window: int | None) -> list[str]:
        save_lines(
            out_dir / "ppl_vs_length.png",
            summary["series"],
            logy=True,
            vline=window,
            title=f"Perplexity on {summary['corpus']}",
            xlabel="Context length (tokens)",
            ylabel="Perplexity",
        )
        return ["ppl_vs_length.png"]


def tokens_digest(ids: list[int], convention: str) -> str:
    """Which tokens a cell scored, and how: two cells with the same digest scored the same tokens with the same
    context, so their losses can be paired."""
    return hashlib.sha256(json.dumps([convention, ids]).encode()).hexdigest()[:16]


def encode_losses(losses: torch.Tensor) -> str:
    """Per-token losses as compact text for a JSON record: little-endian float32, base64."""
    return base64.b64encode(losses.detach().to(torch.float32).cpu().numpy().astype("<f4").tobytes()).decode()


def decode_losses(text: str) -> torch.Tensor:
    """The per-token losses `encode_losses` wrote."""
    import numpy as np

    return torch.from_numpy(np.frombuffer(base64.b64decode(text), dtype="<f4").copy())
