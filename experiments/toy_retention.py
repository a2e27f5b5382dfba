"""Extension without forgetting, on the toy (issue #35): CREAM, PoSE and EndPrompt, each with and without mixed
context windows (a quarter of the examples on the base's own RoPE and positions), against training-free YaRN,
at one budget (the demo's toy recipe: 200 steps at the native 256-token window, YaRN to 2048, s = 8).

Judged on retention first (inside the native window: perplexity, the pass key at depth 100 %, words copied,
each against the base), then on reach (the same at 2048 tokens, against training-free YaRN). Every figure is
paired: the models of one seed see the same prompts and tokens, so differences pool (seed, prompt) items or
token blocks across seeds (`longwin.eval.paired`).

    python experiments/toy_retention.py --work /work/toy_retention --seeds 0,1,2   # resumable
    python experiments/toy_retention.py --work /work/toy_retention --report-only

Writes benchmarks/results/toy_retention/ (report.md; COMMAND.md when it ran the seeds); docs/results.md quotes
report.md (`python experiments/toy_reproduction.py --report-only` after this).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from toy_reproduction_report import HAYSTACK
from toy_reproduction_summary import recorded_settings

from longwin.eval.compare_paired import fmt, ppl_losses
from longwin.eval.paired import Interval, perplexity_ratio, run_cells, score_difference
from longwin.studies.verdicts import said

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "toy_retention"
TRAINED = ["cream", "cream-mixed", "pose", "pose-mixed", "endprompt", "endprompt-mixed"]
METHODS = ["base", "yarn-free", *TRAINED]
NATIVE, TARGET = 256, 2048
LENGTHS = [256, 512, 1024, 2048]
Score = tuple[float, Interval | None]  # a mean score (%) and its paired difference to a reference (points)


def run_seed(work: Path, seed: int, samples: int, steps: int) -> None:
    """Train and evaluate every method of one seed (each model and record is skipped once it exists)."""
    from longwin.eval.loading import load_for_eval
    from longwin.jobs.demo import DemoConfig, evaluate_method, heldout_corpus, train_method

    root = work / f"seed{seed}"
    cfg = DemoConfig(
        out=str(root), model="toy", target_length=TARGET, lengths=LENGTHS, tasks=["passkey", "copy", "ppl"],
        samples=samples, max_steps=steps, seed=seed, rope="yarn", retrieval_fraction=0.0,
    )  # fmt: skip
    heldout = heldout_corpus(cfg, root)
    for name in METHODS:
        out = root / "eval" / name
        if (out / "results.json").is_file():
            continue
        started = time.time()
        model: Any = cfg.model
        if name == "yarn-free":
            model = load_for_eval(cfg.model, rope="yarn", target_length=TARGET)
        elif name != "base":
            train_method(cfg, name, root / "models" / name)
            model = str(root / "models" / name)
        evaluate_method(cfg, name, model, out, heldout)
        print(f"toy_retention: seed {seed} {name} in {time.time() - started:.0f} s", file=sys.stderr, flush=True)


def _items(work: Path, method: str, task: str, length: int, depth: str | None = None) -> dict[tuple, float]:
    """(seed, cell key) -> score of one method's cells at one length (one depth if given), every seed."""
    out = {}
    for folder in sorted(work.glob(f"seed*/eval/{method}")):
        if not (folder / "results.csv").is_file():  # still running
            continue
        for c in run_cells(folder):
            if c["task"] == task and c["length"] == length and (depth is None or c["position"] == depth):
                out[folder.parts[-3], c["key"]] = 100 * float(c["score"])
    return out


def _score(work: Path, a: str, b: str, task: str, length: int, depth: str | None = None) -> Score | None:
    """a's mean score and a − b on the same prompts (points, paired 95 % interval; None when a is b), or None
    when the two share no prompt."""
    xa, xb = _items(work, a, task, length, depth), _items(work, b, task, length, depth)
    shared = sorted(set(xa) & set(xb))
    if not shared:
        return None
    mean = sum(xa[k] for k in shared) / len(shared)
    return mean, None if a == b else score_difference([xa[k] for k in shared], [xb[k] for k in shared])


def _ppl(work: Path, a: str, b: str, length: int) -> Interval | None:
    """a's perplexity over b's on the same tokens, pooled over seeds (paired block bootstrap), or None when the
    two share no tokens."""
    la, lb = [], []
    for seed_dir in sorted(work.glob("seed*")):
        if not all((seed_dir / "eval" / m / "results.csv").is_file() for m in (a, b)):
            continue
        ca = ppl_losses(run_cells(seed_dir / "eval" / a), "chunks", length)
        cb = ppl_losses(run_cells(seed_dir / "eval" / b), "chunks", length)
        for s in sorted(set(ca) & set(cb)):
            if ca[s][0] == cb[s][0]:
                la.append(ca[s][1])
                lb.append(cb[s][1])
    if not la:
        return None
    return perplexity_ratio(la, lb)


def _show_score(score: Score | None) -> str:
    if score is None:
        return "–"
    mean, diff = score
    return f"{mean:.0f}" if diff is None else f"{mean:.0f} ({fmt(diff, points=True)})"


def _show_ppl(ratio: Interval | None) -> str:
    return "–" if ratio is None else fmt(ratio)


def _said_score(score: Score | None, lower_is_better: bool = False) -> str:
    return said(None if score is None else score[1], 0.0, lower_is_better)


def verdicts(work: Path) -> list[str]:
    """Per trained method: retention against the base, reach against training-free YaRN; then what mixed
    windows change against the same scheme without them, on the same prompts and tokens."""
    out = []
    for m in TRAINED:
        ppl_in, copy_in = _ppl(work, m, "base", NATIVE), _score(work, m, "base", "copy", NATIVE)
        key_in = _score(work, m, "base", "passkey", NATIVE, "100")
        ppl_out, copy_out = _ppl(work, m, "yarn-free", TARGET), _score(work, m, "yarn-free", "copy", TARGET)
        out.append(
            f"- **{m}:** retention (vs the base at {NATIVE}): perplexity {said(ppl_in, 1.0, True)}, the depth-100 % "
            f"pass key {_said_score(key_in)}, copying {_said_score(copy_in)}; reach (vs training-free YaRN at "
            f"{TARGET}): perplexity {said(ppl_out, 1.0, True)}, copying {_said_score(copy_out)}."
        )
    for m in ("cream", "pose", "endprompt"):
        mixed = f"{m}-mixed"
        parts = [
            f"perplexity at {NATIVE} {_show_ppl(_ppl(work, mixed, m, NATIVE))}, "
            f"at {TARGET} {_show_ppl(_ppl(work, mixed, m, TARGET))}",
            f"copying at {NATIVE} {_show_score(_score(work, mixed, m, 'copy', NATIVE))}",
        ]
        out.append(f"- **Mixed windows under {m}** ({mixed} against {m}): " + "; ".join(parts) + ".")
    return out


def row(work: Path, m: str, ref: str, length: int, key_depth: str | None) -> str:
    """One table row: m's perplexity ratio, pass key (at `key_depth` only, if given) and words copied vs ref."""
    key = _score(work, m, ref, "passkey", length, key_depth)
    copied = _score(work, m, ref, "copy", length)
    ratio = "1" if m == ref else _show_ppl(_ppl(work, m, ref, length))
    return f"| {m} | {ratio} | {_show_score(key)} | {_show_score(copied)} |"


def haystack_note() -> list[str]:
    """A caveat when the record's copy prompts planted their span in training text (runs before issue #32)."""
    if recorded_settings(RESULTS / "COMMAND.md").get("haystack", "essays") == HAYSTACK:
        return []
    return [
        f"**The copy rows of this record plant their span in the essays**, training text of every toy model; the "
        f"harness now plants it in the {HAYSTACK} (issue #32): rerun the command in COMMAND.md.",
        "",
    ]


def tables(work: Path) -> str:
    seeds = len(list(work.glob("seed*/eval/base/results.json")))
    head = "| method | ppl ratio [95 %] | pass key, depth 100 % | words copied |\n|---|---|---|---|"
    retention = [row(work, m, "base", NATIVE, "100") for m in METHODS]
    reach = [row(work, m, "yarn-free", TARGET, None) for m in METHODS[1:]]
    return "\n".join(
        [
            *haystack_note(),
            f"{seeds} seed(s); each cell pools the seeds' prompts (passkey: 2 a depth; copy: 2 a depth x 5 depths) "
            "or tokens (perplexity: the `chunks` convention on held-out documents). Scores are % (mean), with the "
            "difference in points against the reference on the same prompts and its paired 95 % interval; "
            "perplexity is a ratio to the reference's on the same tokens.",
            "",
            f"**Retention** (inside the native window, {NATIVE} tokens; against the base; the pass key at depth "
            "100 % only, the one right before the question):",
            "",
            head,
            *retention,
            "",
            f"**Reach** ({TARGET} tokens, s = 8; against training-free YaRN; pass key over all depths):",
            "",
            head.replace("pass key, depth 100 %", "pass key, all depths"),
            *reach,
            "",
            "**Verdicts** (from the paired intervals above: better / worse when the whole 95 % interval is on one "
            "side):",
            "",
            *verdicts(work),
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="out/toy_retention")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--steps", type=int, default=200, help="training steps of every fine-tuned method")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    work = Path(args.work)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        for seed in (int(s) for s in args.seeds.split(",")):
            run_seed(work, seed, args.samples, args.steps)
        command = "python experiments/toy_retention.py " + shlex.join(sys.argv[1:])
        settings = {**vars(args), "haystack": HAYSTACK}
        (RESULTS / "COMMAND.md").write_text(f"Produced by:\n\n    {command}\n\nSettings: {json.dumps(settings)}\n")
    (RESULTS / "report.md").write_text(tables(work) + "\n")
    print(f"toy_retention: wrote {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
