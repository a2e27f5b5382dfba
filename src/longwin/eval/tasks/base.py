"""What a task is: a grid of cells, a prompt per cell, a score per output, a summary and plots.

A cell is one (task, length, position, sample) point; its key is what resume and results use.
Each cell's random content is seeded from (seed, task, length, sample) and its placement from the
position alone, so a cell's prompt never depends on which other cells run, or in which order.
"""

from __future__ import annotations

import hashlib
import random
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

from longwin.eval.model import EvalModel, Prompt
from longwin.eval.options import EvalOptions
from longwin.eval.plots import save_heatmap, save_lines
from longwin.eval.prompting import PromptFormatter


@dataclass(frozen=True)
class Cell:
    task: str
    length: int
    position: str
    sample: int

    @property
    def key(self) -> str:
        return f"{self.task}/{self.length}/{self.position}/{self.sample}"


@dataclass
class Sample:
    """A built prompt with what is needed to score the model's answer."""

    prompt: Prompt
    text: str
    answer: Any
    max_new_tokens: int
    info: dict[str, Any] = field(default_factory=dict)  # extra columns for the results row


def rng_for(seed: int, *parts: Any) -> random.Random:
    """A `random.Random` fixed by the seed and the parts, identical on every machine and run."""
    digest = hashlib.sha256("|".join(map(str, (seed, *parts))).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def fmt_pos(value: float) -> str:
    """25.0 -> "25", 12.5 -> "12.5": stable position labels for keys and tables."""
    return f"{value:g}"


def pct(values: Iterable[float]) -> float:
    values = list(values)
    return round(100 * mean(values), 2) if values else float("nan")


def means_by_length(rows: Sequence[dict], value: str = "score") -> dict[str, float]:
    """Unrounded mean of `value` (x100) per length, lengths in increasing order."""
    lengths = sorted({r["length"] for r in rows})
    return {str(n): 100 * mean(r[value] for r in rows if r["length"] == n) for n in lengths}


def by_length(rows: Sequence[dict], value: str = "score") -> dict[str, float]:
    """Mean of `value` (x100, 2 decimals) per length."""
    return {n: round(v, 2) for n, v in means_by_length(rows, value).items()}


def average_series(series: Sequence[dict[str, float]]) -> dict[str, float]:
    """Per length, the mean over the series that have that length (2 decimals)."""
    lengths = sorted({n for s in series for n in s}, key=int)
    return {n: round(mean(s[n] for s in series if n in s), 2) for n in lengths}


def by_length_position(rows: Sequence[dict], value: str = "score") -> dict[str, dict[str, float]]:
    """Mean of `value` (x100) per length, then per position in first-seen order."""
    out: dict[str, dict[str, float]] = {}
    for n in sorted({r["length"] for r in rows}):
        at = [r for r in rows if r["length"] == n]
        positions = list(dict.fromkeys(r["position"] for r in at))
        out[str(n)] = {p: pct(r[value] for r in at if r["position"] == p) for p in positions}
    return out


class Task(ABC):
    """Base of all tasks. `settings` holds every resolved option that changes prompts or scores:
    it goes into the fingerprint, so changing one never reuses stale cells on resume."""

    name: str = ""
    kind: str = "generate"  # or "nll"
    default_samples: int = 1
    default_new_tokens: int = 0

    def __init__(self, options: EvalOptions, seed: int) -> None:
        self.options = options
        self.seed = seed
        self.samples = options.samples or self.default_samples
        self.max_new_tokens = options.max_new_tokens or self.default_new_tokens
        self.settings: dict[str, Any] = {"max_new_tokens": self.max_new_tokens}

    @abstractmethod
    def cells(self, lengths: Sequence[int]) -> list[Cell]:
        """Every cell of the grid, in run order."""

    @abstractmethod
    def summarize(self, rows: list[dict]) -> dict[str, Any]:
        """Aggregate finished rows: `metric`, `higher_is_better`, `series` {name: {length: value}}."""

    def plots(self, summary: dict[str, Any], rows: list[dict], out_dir: Path, window: int | None) -> list[str]:
        """Write PNGs into out_dir and return their file names."""
        return []


class GenerationTask(Task):
    """A task scored on greedy generations; rows carry `score` in [0, 1]."""

    @abstractmethod
    def build(self, cell: Cell, fmt: PromptFormatter) -> Sample:
        """The cell's prompt, sized to at most `cell.length` tokens."""

    @abstractmethod
    def score(self, sample: Sample, output: str) -> dict[str, float]:
        """Scores of one decoded output; `score` is the primary one."""

    def summarize(self, rows: list[dict]) -> dict[str, Any]:
        return {
            "metric": "accuracy (%)",
            "higher_is_better": True,
            "series": {"accuracy": by_length(rows)},
            "by_position": by_length_position(rows),
            "overall": pct(r["score"] for r in rows),
        }


class DepthTask(GenerationTask):
    """A generation task whose grid is length x depth (where in the context the evidence sits) x sample."""

    def __init__(self, options: EvalOptions, seed: int) -> None:
        super().__init__(options, seed)
        self.depths = list(options.depths)
        self.settings["depths"] = self.depths
        self._guess: dict[int, int] = {}  # last filler size per length: where the next prompt's search starts

    def cells(self, lengths: Sequence[int]) -> list[Cell]:
        return [Cell(self.name, n, fmt_pos(d), s) for n in lengths for d in self.depths for s in range(self.samples)]

    plot_title, plot_ylabel, heatmap_title = "", "Accuracy (%)", ""

    def plots(self, summary: dict[str, Any], rows: list[dict], out_dir: Path, window: int | None) -> list[str]:
        """Accuracy against length, and a depth x length heatmap, when the task names its titles."""
        if not self.plot_title:
            return []
        stem = self.name.replace("-", "_")
        save_lines(
            out_dir / f"{stem}_accuracy.png",
            summary["series"],
            title=self.plot_title,
            xlabel="Prompt length (tokens)",
            ylabel=self.plot_ylabel,
            vline=window,
        )
        save_heatmap(
            out_dir / f"{stem}_heatmap.png",
            summary["by_position"],
            rows=[fmt_pos(d) for d in self.depths],
            cols=list(summary["series"]["accuracy"]),
            title=f"{self.heatmap_title} (overall {summary['overall']:.1f}%)",
        )
        return [f"{stem}_accuracy.png", f"{stem}_heatmap.png"]


class NllTask(Task):
    """A task measured with token log-likelihoods (perplexity)."""

    kind = "nll"

    @abstractmethod
    def measure(self, cell: Cell, model: EvalModel) -> dict[str, Any]:
        """Row fields for one cell: at least `nll`, `tokens` and `window_tokens`."""
