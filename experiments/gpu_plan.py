"""The GPU plan: SmolLM2-135M, 8K -> 32K, in one short GPU lease, every record packed as it finishes.

CREAM-YaRN, PoSE-YaRN and contiguous-YaRN (scheme none) trained at one equal budget (same steps, data, lr,
seed), training-free YaRN and the base; perplexity at 2K/8K/16K/32K (`chunks` with per-token losses kept,
and `last-k` as the CPU study scores it), passkey and content copy by depth (5 samples a depth); training
throughput in tokens/s and as a share of the card's bf16 matmul rate measured in the same run.

The device gets at most 64 MiB a call, the working tree included, and the model's GGUF alone is 98 MB, so
`carry` splits the payload into parts that each fit beside the tree (checked here, before anything is sent):

  here:                python experiments/gpu_plan.py carry            # .gpu/1 .gpu/2 .gpu/3 + sizes
  here, just before:   python experiments/gpu_plan.py verify           # each call's part + today's tree
  call 1 (carry .gpu/1)  python3 experiments/gpu_plan.py probe         # machine, matmul peak, timed steps
  call 2 (carry .gpu/2)  python3 experiments/gpu_plan.py unpack
  call 3 (carry .gpu/3)  python3 experiments/gpu_plan.py run --deadline 500

Send the calls back to back (the machine goes back 30 s after a call). `run` needs every part on the
machine and says in one line which is missing; it does not need the probe's output (it probes itself when
there is none). Records: $OUT/gpu_plan.tgz, $OUT/status.json, $OUT/run.log. `--plan toy` is the CPU
rehearsal of the same code at tiny size (tests/test_gpu_plan.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from gpu_jobs import Job, pack, run_jobs, status  # noqa: E402
from gpu_payload import PLANS, Plan, carry, gather_parts, join_model, verify  # noqa: E402
from gpu_probe import probe_measure  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PACKED = ["plan.json", "probe.json", "logs", "eval", "models/*/longwin_training.json", "throughput.json"]
ROWS = ("cream", "pose", "contiguous")  # trained rows, by position scheme
SCHEME = {"cream": "cream", "pose": "pose", "contiguous": "none"}


def lw(*args: str) -> list[str]:
    return [sys.executable, "-m", "longwin.cli", *args]


def train_argv(plan: Plan, row: str, model: str, steps: int, data: Path, out: Path) -> list[str]:
    """One row's `longwin train` command: every row the same but for the position scheme."""
    rope = ["--rope-options", plan.rope_options] if plan.rope_options else []
    return lw(
        "train", "--model", model, "--scheme", SCHEME[row], "--rope", plan.rope, *rope,
        "--target-length", str(plan.target), "--train-length", str(plan.train_length), "--data", str(data),
        "--max-steps", str(steps), "--per-device-train-batch-size", str(plan.batch),
        "--gradient-accumulation-steps", "1", "--dtype", "float32", "--bf16", "true", "--use-cpu", str(plan.cpu),
        "--gradient-checkpointing", "false", "--learning-rate", "5e-5", "--warmup-steps", str(min(5, steps // 2)),
        "--lr-scheduler-type", "cosine", "--logging-steps", "5", "--save-steps", "100000", "--seed", "0",
        "--report-to", "none", "--disable-tqdm", "true", "--output-dir", str(out), "--overwrite-output-dir", "true",
    )  # fmt: skip


def eval_argv(plan: Plan, ref: list[str], heldout: Path, out: Path) -> list[str]:
    depths = ",".join(str(d) for d in plan.depths)
    return lw(
        "eval", *ref, "--task", "ppl,passkey,copy", "--corpus", str(heldout), "--haystack", str(heldout),
        "--lengths", ",".join(map(str, plan.lengths)), "--samples", str(plan.samples), "--depths", depths,
        "--conventions", "chunks,short,last-k", "--short-context", str(plan.short_context), "--last-k",
        str(plan.last_k), "--sample-spacing", str(plan.target), "--dtype", "bfloat16",
        "--attn-implementation", "sdpa", "--progress", "false", "--batch-size", str(plan.eval_batch),
        "--seed", "0", *plan.eval_extra, "--out", str(out),
    )  # fmt: skip


def steps_for(plan: Plan, probe: dict, budget: float) -> tuple[int, float]:
    """Equal steps for every trained row and the projected seconds of the whole run, fitted into `budget`:
    the trainings run one after another, the evaluations `plan.parallel` at a time beside them."""
    if plan.fixed_steps:
        steps = plan.fixed_steps
    else:
        evals = probe["eval_s"] * (2 + len(ROWS)) / plan.parallel
        room = budget - plan.setup_s - len(ROWS) * probe["load_s"] - evals
        steps = int(max(plan.min_steps, min(plan.max_steps, room / (len(ROWS) * probe["step_s"]))))
    train = len(ROWS) * (probe["load_s"] + steps * probe["step_s"])
    projected = plan.setup_s + train + probe["eval_s"] * 2 / plan.parallel + probe["eval_s"]
    return steps, round(projected, 1)


def jobs_for(plan: Plan, model: str, steps: int, work: Path) -> list[Job]:
    data, heldout = work / "train.jsonl", work / "heldout.jsonl"
    rope = ["--rope-options", plan.rope_options] if plan.rope_options else []
    jobs = [Job(f"train-{r}", train_argv(plan, r, model, steps, data, work / "models" / r), lane="train") for r in ROWS]
    refs = {
        "base": ["--model", model],
        "yarn-free": ["--model", model, "--rope", plan.rope, *rope, "--target-length", str(plan.target)],
        **{r: ["--model", str(work / "models" / r)] for r in ROWS},
    }
    for name, ref in refs.items():  # the first training runs alone: its throughput is the clean one
        after = (f"train-{name}",) if name in ROWS else ("train-cream",)
        jobs.append(Job(f"eval-{name}", eval_argv(plan, ref, heldout, work / "eval" / name), after=after))
    return jobs


def throughput(plan: Plan, work: Path, probe: dict) -> dict:
    """Tokens/s of each training (the Trainer's own runtime) and that as a share of the measured bf16 rate,
    at 6 x (matmul parameters) + 6 x layers x width x window FLOPs a token (forward and backward, causal)."""
    rows = {}
    for row in ROWS:
        card = work / "models" / row / "longwin_training.json"
        if not card.is_file():
            continue
        info = json.loads(card.read_text())
        tokens = info["steps"] * plan.batch * plan.train_length
        per_s = tokens / info["train_runtime"] if info.get("train_runtime") else None
        flops = 6 * probe["matmul_params"] + 6 * probe["layers"] * probe["width"] * plan.train_length
        share = per_s * flops / (probe["bf16_tflops"] * 1e12) if per_s else None
        rows[row] = {"steps": info["steps"], "tokens": tokens, "tokens_per_s": per_s, "peak_share": share}
    return {"flops_per_token": "6 P + 6 L d T", "bf16_tflops_measured": probe["bf16_tflops"], "rows": rows}


def run(plan: Plan, carried: Path, work: Path, out: Path, deadline_s: float) -> int:
    t0 = time.monotonic()
    deadline = t0 + deadline_s
    log = (out / "run.log").open("a")

    def say(line: str) -> None:
        stamped = f"[{time.monotonic() - t0:6.1f} s] {line}"
        print(stamped, flush=True)
        log.write(stamped + "\n")
        log.flush()

    gather_parts(carried, work)  # one-line error when a part is missing
    model = join_model(plan, work)
    env = {**os.environ, "PYTHONPATH": f"{work / 'site'}:{ROOT / 'src'}", "LONGWIN_CACHE": str(work / "cache")}
    env.update(PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    probe_file = work / "probe.json"
    if not probe_file.is_file():
        probe_measure(plan, work, env, train_argv)
    probe = json.loads(probe_file.read_text())
    steps, projected = steps_for(plan, probe, deadline_s - (time.monotonic() - t0))
    info = {"plan": asdict(plan), "steps": steps, "projected_s": projected, "deadline_s": deadline_s}
    (work / "plan.json").write_text(json.dumps(info, indent=2) + "\n")
    say(f"probe {probe}")
    say(f"{steps} steps a row; projected {projected} s of {deadline_s} s")
    jobs = jobs_for(plan, model, steps, work)

    def packed(jobs: list[Job]) -> None:
        (work / "throughput.json").write_text(json.dumps(throughput(plan, work, probe), indent=2) + "\n")
        pack(work, out, PACKED, {"jobs": status(jobs), "elapsed_s": round(time.monotonic() - t0, 1), **info})

    run_jobs(jobs, deadline=deadline, parallel=plan.parallel, logs=work / "logs", env=env, on_change=packed, say=say)
    failed = [j.name for j in jobs if j.state != "done"]
    say(f"total {time.monotonic() - t0:.0f} s; " + (f"not done: {', '.join(failed)}" if failed else "all done"))
    for job in (j for j in jobs if j.state == "failed"):  # the reason, in the call's own output
        say(f"{job.name}: " + " | ".join((work / "logs" / f"{job.name}.log").read_text().strip().splitlines()[-3:]))
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["carry", "verify", "probe", "unpack", "run"])
    parser.add_argument("--plan", choices=sorted(PLANS), default="smollm2")
    parser.add_argument("--carried", type=Path, default=ROOT / ".gpu", help="where the carried parts are")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("GPU_WORK", "/root/gpu-plan")))
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-plan-out")))
    parser.add_argument("--deadline", type=float, default=500.0, help="seconds for `run`, everything included")
    parser.add_argument("--rope-options", default=None, help="e.g. attention_factor=1.0 (docs/rope.md)")
    args = parser.parse_args()
    plan = PLANS[args.plan]
    if args.rope_options is not None:
        plan.rope_options = args.rope_options
    if args.stage == "carry":
        return carry(plan, args.carried, ROOT)
    if args.stage == "verify":
        return verify(args.carried, ROOT)
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.stage == "run":
        return run(plan, args.carried, args.work, args.out, args.deadline)
    gather_parts(args.carried, args.work, complete=False)
    if args.stage == "probe":
        env = {**os.environ, "PYTHONPATH": f"{args.work / 'site'}:{ROOT / 'src'}"}
        env["LONGWIN_CACHE"] = str(args.work / "cache")
        probe_measure(plan, args.work, env, train_argv)
        shutil.copy(args.work / "probe.json", args.out / "probe.json")
    if shutil.which("nvidia-smi"):
        subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv"], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
