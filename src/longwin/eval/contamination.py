"""Whether an evaluation reads a model's own training text: a haystack or perplexity corpus drawn from a corpus
the model was fine-tuned on. A needle found in text the model was trained on, or a perplexity on it, rewards
adaptation to that text, not context use, so `longwin eval` says so before it runs (the run card `longwin train`
saves beside the model names the data)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from longwin.eval.tasks.base import Task

CARD = "longwin_training.json"
TEXT_SETTINGS = ("haystack", "corpus")  # task settings that name the text a prompt is built from


def training_sources(model_ref: str | Path) -> set[str]:
    """The corpora (built-in names or paths, as given to `--data`) a longwin-trained model folder was trained
    on; empty for any other reference."""
    card = Path(model_ref) / CARD
    if not card.is_file():
        return set()
    data = json.loads(card.read_text()).get("extend_config", {}).get("data", "")
    return {part.strip() for part in str(data).split("+") if part.strip()}


def _same(source: str, trained: str) -> bool:
    if source == trained:
        return True
    return Path(source).exists() and Path(trained).exists() and Path(source).resolve() == Path(trained).resolve()


def training_text_warnings(model_ref: str | Path, tasks: Sequence[Task]) -> list[str]:
    """One line per task setting whose text is part of the model's training data."""
    trained = training_sources(model_ref)
    out = []
    for task in tasks:
        for key in TEXT_SETTINGS:
            source = str(task.settings.get(key, ""))
            if source and any(_same(source, t) for t in trained):
                out.append(
                    f"{task.name}'s {key} {source!r} is training text of {model_ref} (trained on "
                    f"{'+'.join(sorted(trained))}): its scores reward adaptation to that text; pass the held-out "
                    f"documents instead (--{key} <a JSONL of the split's held-out side>)"
                )
    return out
