"""The main job on the built-in toy model: evaluate it, extend it 256 → 2048, compare methods.

Runs on a CPU in minutes: evaluates the toy base, fine-tunes one model per method (CREAM and the
position-interpolation-only baseline by default) and evaluates each, then writes OUT/report.md,
OUT/results.json and the models under OUT/models/<method>/. Rerunning resumes: finished models and
finished evaluation cells are skipped.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from longwin.config import add_config_arguments, config_from_args
from longwin.errors import LongwinError

# method name -> (position scheme, RoPE method); all fine-tuned at the native window
METHODS: dict[str, tuple[str, str]] = {
    "cream": ("cream", "linear"),
    "pi": ("none", "linear"),
    "pose": ("pose", "linear"),
    "randpos": ("randpos", "linear"),
}


@dataclass
class DemoConfig:
    out: str = field(default="out/demo", metadata={"help": "output folder"})
    model: str = field(default="toy", metadata={"help": "base model"})
    methods: list[str] = field(default_factory=lambda: ["cream", "pi"], metadata={
        "help": f"methods to train: {', '.join(METHODS)}"})
    target_length: int = 2048
    lengths: list[int] = field(default_factory=lambda: [256, 512, 1024, 2048])
    tasks: list[str] = field(default_factory=lambda: ["passkey"])
    samples: int = 4
    max_steps: int = 300
    quick: bool = field(default=False, metadata={"help": "smoke size: few steps, two lengths, one sample"})
    seed: int = 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file with any of the options below")
    add_config_arguments(parser, DemoConfig)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(DemoConfig, args)
    unknown = sorted(set(cfg.methods) - set(METHODS))
    if unknown:
        raise LongwinError(f"unknown demo method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    if cfg.quick:
        cfg.max_steps, cfg.lengths, cfg.samples = 30, [256, 1024], 1
    demo(cfg)
    return 0


def _train(cfg: DemoConfig, method: str, out: Path) -> None:
    from longwin.cli import main

    if (out / "model.safetensors").is_file():
        print(f"demo: {method} model already trained ({out}), skipping")
        return
    scheme, rope = METHODS[method]
    code = main(["train", "--config", "cream-toy-2048", "--model", cfg.model, "--scheme", scheme, "--rope", rope,
                 "--target-length", str(cfg.target_length), "--max-steps", str(cfg.max_steps),
                 "--seed", str(cfg.seed), "--output-dir", str(out), "--save-steps", str(max(cfg.max_steps // 3, 1)),
                 "--disable-tqdm", "true"])
    if code:
        raise LongwinError(f"training {method} failed (exit {code})")


def demo(cfg: DemoConfig) -> Path:
    from longwin.eval import compare_runs, evaluate

    root = Path(cfg.out)
    started = time.time()
    runs: dict[str, Path] = {}
    steps = ["base"] + list(cfg.methods)
    for i, name in enumerate(steps, 1):
        print(f"demo [{i}/{len(steps)}] {name}  (elapsed {(time.time() - started) / 60:.1f} min)")
        model_ref = cfg.model
        if name != "base":
            model_ref = str(root / "models" / name)
            _train(cfg, name, Path(model_ref))
        runs[name] = root / "eval" / name
        evaluate(model_ref, cfg.tasks, cfg.lengths, runs[name], seed=cfg.seed, samples=cfg.samples)
    table = compare_runs([runs[n] for n in steps], root / "compare")
    results = {n: json.loads((runs[n] / "results.json").read_text()) for n in steps}
    (root / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    minutes = (time.time() - started) / 60
    (root / "report.md").write_text(
        f"# longwin demo: {cfg.model} extended to {cfg.target_length} tokens\n\n"
        f"Methods: {', '.join(cfg.methods)} ({cfg.max_steps} steps each, fine-tuned at the native window). "
        f"Tasks: {', '.join(cfg.tasks)}; {cfg.samples} sample(s) per cell; seed {cfg.seed}.\n\n"
        f"{table}\n\nPlots: `compare/`. Wall time of this run: {minutes:.1f} min.\n"
    )
    print(f"demo: report at {root / 'report.md'} ({minutes:.1f} min)")
    return root
