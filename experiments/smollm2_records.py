"""The SmolLM2 study's committed records read back: cells, pooled perplexity by length, task hits, and the
logit scale of a YaRN row's attention temperature."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

from smollm2_plan import LENGTHS, MODEL, PPL_DOCS, RESULTS, ROWS, TARGET

from longwin.studies.records import read_cells
from longwin.studies.rows import ModelRow
from longwin.studies.tables import at_length

Cell = dict[str, Any]
# what counts as a success in a by-depth cell: the key found (passkey), the span copied whole (copy; `copy-essays`:
# the earlier copy records, whose haystack was the essays, training text of every fine-tuned row)
SUCCESS: dict[str, Callable[[Cell], float]] = {
    "passkey": lambda r: r["score"],
    "copy": lambda r: r["whole"],
    "copy-essays": lambda r: r["whole"],
}


def cells(name: str, task: str) -> list[Cell]:
    """The finished cells of row `name`'s `task` record ([] until it is run)."""
    return read_cells(RESULTS / name / task)


def ppl_by_length(name: str, task: str = "ppl") -> dict[int, tuple[float, tuple[float, float]]]:
    """Length -> (perplexity over all scored tokens, (min, max) over documents), from the in-domain `ppl`
    record or the out-of-domain `oodppl` one."""
    rows = cells(name, task)
    out = {}
    for n in LENGTHS:
        at = at_length(rows, n)
        if len(at) < PPL_DOCS:
            continue
        nll, tokens = sum(r["nll"] for r in at), sum(r["tokens"] for r in at)
        per_doc = [r["ppl"] for r in at]
        out[n] = (math.exp(nll / tokens), (min(per_doc), max(per_doc)))
    return out


def hits(name: str, task: str, length: int, depths: tuple[float, ...] | None = None) -> tuple[float, int]:
    """(successes, cells) of a task record at one length (passkey: found; copy: span copied whole)."""
    rows = at_length(cells(name, task), length, depths)
    return sum(SUCCESS[task](r) for r in rows), len(rows)


def word_share(name: str, length: int, task: str = "copy") -> float:
    """Mean share (%) of a copy span's words a model reproduced at one length (`task`: the copy record read)."""
    rows = [r["score"] for r in at_length(cells(name, task), length)]
    return 100 * sum(rows) / max(1, len(rows))


def last_key(name: str) -> tuple[float, int]:
    """(found, cells) of the pass key right before the question (depth 100 %) at 2K, inside the base's window."""
    return hits(name, "passkey", 2048, (100.0,))


def contiguous_twin(name: str) -> str:
    """The study's contiguous fine-tuning with the same RoPE and RoPE options as `name`, or ''."""
    mine = ROWS[name]
    return next(
        (
            n
            for n, m in ROWS.items()
            if m.trained and m.scheme == "none" and (m.rope, m.rope_options) == (mine.rope, mine.rope_options)
        ),
        "",
    )


@functools.cache
def logit_scale(row: ModelRow) -> float:
    """The factor every attention logit of a `yarn` row is multiplied by: the square of the attention scaling
    transformers' own YaRN init computes for the scaled config (its default 0.1 ln s + 1, or the row's
    `attention_factor`)."""
    from transformers import AutoConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    from longwin.flags import parse_options
    from longwin.models import model_path
    from longwin.rope import scale_rope

    config = scale_rope(
        AutoConfig.from_pretrained(model_path(MODEL)), row.rope, TARGET, **parse_options(row.rope_options)
    )
    _, scaling = ROPE_INIT_FUNCTIONS["yarn"](config, "cpu")
    return float(scaling) ** 2


def yarn_rows(schemes: tuple[str, ...]) -> list[str]:
    """The YaRN rows of the given schemes ("" = training-free) that differ only in their logit scale (neither
    distilled nor mixed-window), highest logit scale first."""
    named = [n for n, m in ROWS.items() if m.rope == "yarn" and m.scheme in schemes and not (m.distill or m.mixed)]
    return sorted(named, key=lambda n: (ROWS[n].scheme, -logit_scale(ROWS[n])))
