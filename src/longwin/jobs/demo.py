"""The main job on the built-in toy model: evaluate it, extend it 256 → 2048 with each method, compare.

Stages: evaluate the base; for each method fine-tune it (CREAM, PI alone, PoSE, RandPos — all at
the native window, same data, same steps), build and train a SharedLLM, or rescale the RoPE
training-free (YaRN, NTK); evaluate each on the same seeded prompts. Writes OUT/report.md (table +
plots), OUT/results.json and the models under OUT/models/<method>/. A rerun resumes: finished
models and evaluation cells are skipped, an interrupted training continues from its last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from longwin.errors import LongwinError
from longwin.flags import add_config_arguments, config_from_args
from longwin.outputs import check_writable_folder, write_text
from longwin.studies.comparison import retention_table, trained_on, verdicts
from longwin.studies.rows import ModelRow

# the demo's rows beside the base: fine-tuned positions (an empty rope is the demo's --rope), SharedLLM, or the
# base's RoPE rescaled without training
ROWS: dict[str, ModelRow] = {
    "cream": ModelRow("train", scheme="cream", label="CREAM"),
    "pi": ModelRow("train", scheme="none", rope="linear", label="PI only (fine-tuned, contiguous positions)"),
    "pose": ModelRow("train", scheme="pose", label="PoSE"),
    "randpos": ModelRow("train", scheme="randpos", label="RandPos"),
    "yarn": ModelRow("train", scheme="none", rope="yarn", label="YaRN (fine-tuned, contiguous positions)"),
    "sharedllm": ModelRow("train", method="sharedllm", label="SharedLLM (context trees + cross-attention)"),
    "endprompt": ModelRow("train", scheme="endprompt", label="EndPrompt"),
    # mixed context windows (LongRoPE2): a quarter of the examples on the base's own RoPE and positions
    "cream-mixed": ModelRow("train", scheme="cream", mixed="0.25", label="CREAM, mixed context windows"),
    "pose-mixed": ModelRow("train", scheme="pose", mixed="0.25", label="PoSE, mixed context windows"),
    "endprompt-mixed": ModelRow("train", scheme="endprompt", mixed="0.25", label="EndPrompt, mixed context windows"),
    "yarn-free": ModelRow("free", rope="yarn", label="YaRN, training-free"),
    "ntk-free": ModelRow("free", rope="ntk", label="NTK, training-free"),
}
# seconds per training step (batch 8) and per evaluation cell-sample on 2 idle CPU cores (measured on
# the toy), for the first time-left estimate; later estimates rescale them by the time actually spent
_STEP_GUESS = {"positions": 0.43, "sharedllm": 0.45}
_EVAL_GUESS = 0.6


@dataclass
class DemoConfig:
    out: str = field(default="out/demo", metadata={"help": "output folder"})
    model: str = field(default="toy", metadata={"help": "base model"})
    methods: list[str] = field(
        # `pi` (fine-tuned linear PI) is left out of the default to keep the demo inside 10 minutes on 2 cores:
        # it costs about 100 s and on the toy it only fails (docs/results.md has its rows); add it by name
        default_factory=lambda: ["cream", "pose", "yarn", "yarn-free", "sharedllm"],
        metadata={"help": f"methods: {', '.join(ROWS)}"},
    )
    rope: str = field(
        default="yarn",
        metadata={
            "help": "RoPE scaling of CREAM, PoSE and RandPos "
            "(linear PI broke the first toy's exact copying: docs/results-toy-v1.md)"
        },
    )
    target_length: int = field(default=2048, metadata={"min": 2})
    lengths: list[int] = field(default_factory=lambda: [256, 512, 1024, 2048], metadata={"min": 2})
    tasks: list[str] = field(default_factory=lambda: ["passkey", "needle", "kv-retrieval", "copy", "ppl"])
    samples: int = field(default=2, metadata={"min": 1, "help": "samples per evaluation cell"})
    max_steps: int = field(default=200, metadata={"min": 1, "help": "training steps per fine-tuned method"})
    retrieval_fraction: float = field(
        default=0.0,
        metadata={
            "min": 0,
            "max": 1,
            "help": "share of retrieval examples (passkey, kv, lines formats) in the fine-tuning data; above 0 the "
            "report marks those tasks as trained-on",
        },
    )
    quick: bool = field(default=False, metadata={"help": "smoke size: few steps, two lengths, one sample"})
    seed: int = field(default=0, metadata={"min": 0})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file with any of the options below")
    add_config_arguments(parser, DemoConfig)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(DemoConfig, args)
    unknown = sorted(set(cfg.methods) - set(ROWS))
    if unknown:
        raise LongwinError(f"unknown demo method(s) {', '.join(unknown)}; known: {', '.join(ROWS)}")
    if cfg.quick:
        cfg.max_steps, cfg.lengths, cfg.samples = 10, [256, 1024], 1
    check_writable_folder(cfg.out, "--out")
    demo(cfg)
    return 0


class Progress:
    """Stage counter with an estimate of the time left from the stages done so far."""

    def __init__(self, stages: list[tuple[str, float]]) -> None:
        self.stages, self.started, self.done = stages, time.time(), 0
        self.spent_guess = 0.0  # guessed cost of the finished stages, to rescale the guesses of the rest

    def start(self, name: str) -> None:
        elapsed = time.time() - self.started
        left = sum(cost for _, cost in self.stages[self.done :])
        if self.spent_guess > 0:
            left *= elapsed / self.spent_guess
        print(
            f"demo [{self.done + 1}/{len(self.stages)}] {name}  (elapsed {elapsed / 60:.1f} min, "
            f"about {left / 60:.1f} min left)",
            file=sys.stderr,
            flush=True,
        )

    def finish(self) -> None:
        self.spent_guess += self.stages[self.done][1]
        self.done += 1


def _plan(cfg: DemoConfig) -> list[tuple[str, float]]:
    eval_guess = _EVAL_GUESS * len(cfg.tasks) * len(cfg.lengths) * cfg.samples
    stages = [("evaluate base", eval_guess)]
    for name in cfg.methods:
        row = ROWS[name]
        if row.trained:
            stages.append((f"train {name}", _STEP_GUESS[row.method] * cfg.max_steps))
        stages.append((f"evaluate {name}", eval_guess * (2 if row.method == "sharedllm" else 1)))
    return stages


def train_method(cfg: DemoConfig, name: str, out: Path) -> None:
    """Train demo method `name` from its packaged recipe into `out` (resuming an interrupted run)."""
    from longwin.training.config import (
        TRAINER_DEFAULTS,
        load_yaml,
        pop_trainer_values,
        resolve_recipe,
        train_config,
        training_arguments,
    )
    from longwin.training.runner import CARD, latest_complete, train

    if (out / CARD).is_file():
        print(f"demo: {name} already trained ({out}), skipping", file=sys.stderr)
        return
    row = ROWS[name]
    trainer = {
        "max_steps": cfg.max_steps,
        "seed": cfg.seed,
        "output_dir": str(out),
        "save_steps": max(cfg.max_steps // 4, 1),
        "disable_tqdm": True,
        "report_to": "none",
        # continue an interrupted run from its newest complete checkpoint; else start over (a run killed
        # before its first checkpoint leaves nothing worth keeping)
        "resume_from_checkpoint": "true" if latest_complete(out) else None,
    }
    options: dict[str, Any] = {"model": cfg.model, "overwrite_output_dir": not latest_complete(out)}
    if row.method == "sharedllm":  # its recipe's training length and retrieval mix; it reads any length later
        recipe = "sharedllm-toy-2048"
    else:
        recipe = "cream-toy-2048"
        options.update(target_length=cfg.target_length, retrieval_fraction=cfg.retrieval_fraction)
        options["positions"] = {"scheme": row.scheme, "rope": row.rope or cfg.rope}
        if row.mixed:
            options["positions"].update(native_fraction=float(row.mixed), native_rope="original")
    values = load_yaml(resolve_recipe(recipe))
    trainer = {**TRAINER_DEFAULTS, **pop_trainer_values(values), **trainer}
    for key, value in options.items():
        if isinstance(value, dict):
            values[key] = {**values.get(key, {}), **value}
        else:
            values[key] = value
    train(train_config(values), training_arguments(trainer))


def evaluate_method(cfg: DemoConfig, name: str, model: Any, out: Path, heldout: Path) -> dict[str, Any]:
    from longwin.eval import evaluate

    return evaluate(
        model,
        cfg.tasks,
        cfg.lengths,
        out,
        seed=cfg.seed,
        samples=cfg.samples,
        corpus=str(heldout),
        haystack=str(heldout),  # needle, RULER and copy plant their items in text no model was trained on
        sample_spacing=2 * max(cfg.lengths),  # sliding windows cover 2L; the records' samples sit there
        # + `short` (every token with at most half the native window of context): key tokens, in the report's
        # paired tables, separate context use from adaptation
        conventions=["sliding", "chunks", "last-k", "short"],
        short_context=min(cfg.lengths) // 2,
        name=name,
        progress=False,
    )


def heldout_corpus(cfg: DemoConfig, root: Path) -> Path:
    """The documents `longwin train` holds out (same data, fraction and seed): the perplexity text and the
    haystack of every task that plants its item in real text. The toy base's pretraining holds out the same
    documents (`pretrain-toy`: same corpora, fraction and seed), so no model of the demo has read them."""
    from longwin.data.corpora import load_documents, split_documents
    from longwin.data.heldout import whole_rows
    from longwin.methods import CommonOptions

    path = root / "heldout.jsonl"
    if not path.is_file():
        common = CommonOptions()
        _, held = split_documents(load_documents(common.data), common.val_fraction, seed=cfg.seed)
        root.mkdir(parents=True, exist_ok=True)
        write_text(path, "".join(json.dumps(row) + "\n" for row in whole_rows(held)))
    return path


def demo(cfg: DemoConfig) -> Path:
    from longwin.eval import compare_runs
    from longwin.eval.loading import load_for_eval

    root = Path(cfg.out)
    heldout = heldout_corpus(cfg, root)
    progress = Progress(_plan(cfg))
    runs: dict[str, Path] = {}
    cards: dict[str, dict[str, Any]] = {}
    progress.start("evaluate base")
    runs["base"] = root / "eval" / "base"
    evaluate_method(cfg, f"{cfg.model} (base)", cfg.model, runs["base"], heldout)
    progress.finish()
    for name in cfg.methods:
        row = ROWS[name]
        model: Any
        if not row.trained:
            model = load_for_eval(cfg.model, rope=row.rope, target_length=cfg.target_length)
        else:
            folder = root / "models" / name
            progress.start(f"train {name}")
            train_method(cfg, name, folder)
            progress.finish()
            cards[name] = json.loads((folder / "longwin_training.json").read_text())
            model = str(folder)
        progress.start(f"evaluate {name}")
        runs[name] = root / "eval" / name
        evaluate_method(cfg, name, model, runs[name], heldout)
        progress.finish()
    table = compare_runs(list(runs.values()), root / "compare")
    results = {n: json.loads((d / "results.json").read_text()) for n, d in runs.items()}
    minutes = (time.time() - progress.started) / 60
    write_text(
        root / "results.json",
        json.dumps({"config": asdict(cfg), "results": results, "training": cards}, indent=2, default=str) + "\n",
    )
    write_text(
        root / "report.md", report(cfg, table, cards, sorted((root / "compare").glob("*.png")), root, minutes, results)
    )
    print(f"demo: report at {root / 'report.md'} ({minutes:.1f} min)", file=sys.stderr)
    return root


def report(
    cfg: DemoConfig,
    table: str,
    cards: dict[str, dict[str, Any]],
    plots: list[Path],
    root: Path,
    minutes: float,
    results: dict[str, dict[str, Any]],
) -> str:
    methods = "\n".join(
        f"- `{n}`: {ROWS[n].label}" + (f" (RoPE: {ROWS[n].rope or cfg.rope})" if ROWS[n].method != "sharedllm" else "")
        for n in cfg.methods
    )
    training = "\n".join(
        f"| {n} | {c.get('steps')} | {c.get('final_loss', 0) or 0:.3f} | {c.get('train_wall_seconds')} |"
        for n, c in cards.items()
    )
    images = "\n".join(f"![{p.stem}]({p.relative_to(root)})" for p in plots)
    marked = {n: trained_on(c, cfg.tasks) for n, c in cards.items()}
    contaminated = "\n".join(
        f"- `{n}` trained on examples of {', '.join(t)}: its rows for them show what it was "
        f"taught, not an extended window"
        for n, t in marked.items()
        if t
    )
    native = min(cfg.lengths)
    recipe = next((c for n, c in cards.items() if ROWS[n].method == "positions"), {})
    settings = recipe.get("training_arguments", {})
    distill = recipe.get("extend_config", {}).get("positions", {}).get("distill_weight")
    how = f", lr {settings['learning_rate']:g}" if "learning_rate" in settings else ""
    how += f", positional self-distillation weight {distill:g} (`docs/toy-model.md`)" if distill else ""
    return (
        f"# longwin demo: `{cfg.model}` extended to {cfg.target_length} tokens\n\n"
        f"Methods (columns of the table; `base` is the unchanged model):\n{methods}\n\n"
        f"Fine-tuned methods: {cfg.max_steps} steps at the native window on the same data "
        f"({cfg.retrieval_fraction:.0%} retrieval examples{how}), seed {cfg.seed}. "
        f"Evaluation: {', '.join(cfg.tasks)} at {', '.join(map(str, cfg.lengths))} tokens, {cfg.samples} sample(s) "
        f"per cell (depth/position), perplexity on the held-out documents (`heldout.jsonl`), which are also "
        f"the haystack of every task that plants its item in real text.\n\n"
        f"{table}\n\n"
        f"## Trained-on tasks\n\n{contaminated or 'No evaluated task appears in any fine-tuning data.'}\n\n"
        f"## Inside the native window ({native} tokens): what extension must not cost\n\n"
        f"{retention_table(results, native)}\n\n"
        f"## Verdicts (tasks a model was trained on are left out)\n\n"
        f"{chr(10).join(verdicts(results, marked, native, max(cfg.lengths))) or 'No fine-tuned model.'}\n\n"
        f"## Training\n\n| method | steps | final loss | seconds |\n|---|---|---|---|\n{training}\n\n"
        f"## Plots\n\n{images}\n\n"
        f"Wall time of this run: {minutes:.1f} min. Small sample counts: one sample moves an accuracy by "
        f"{100 / max(cfg.samples * 5, 1):.0f} points or more; `docs/results.md` averages seeds.\n"
    )
