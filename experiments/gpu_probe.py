"""The GPU plan's probe: the card's measured bf16 matmul rate, a timed `longwin train` of the plan's first row
(the GPU training path itself, before the real run), and timed forwards and decoding steps at every evaluated
length, from which `gpu_plan.steps_for` fits the run into its deadline."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpu_payload import Plan


def _bf16_tflops(device: str) -> float:
    import torch

    n = 8192 if device == "cuda" else 512
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    start, reps = time.perf_counter(), 10
    for _ in range(reps):
        a @ b
    sync()
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e12


def probe_measure(plan: Plan, work: Path, env: dict[str, str], train_argv: Callable[..., list[str]]) -> None:
    """`work/probe.json`: the measured bf16 matmul rate, the model's shape, and a timed `longwin train` of the
    plan's first row (the GPU path itself, on a randomly initialised twin of the model for a GGUF plan)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    folder = work / "config" if plan.gguf else None
    config = AutoConfig.from_pretrained(folder) if folder else AutoConfig.from_pretrained(_toy())
    model_ref = plan.model
    if folder:
        saved = work / "probe-model"
        if not (saved / "config.json").is_file():
            shutil.copytree(folder, saved, dirs_exist_ok=True)
            AutoModelForCausalLM.from_config(config).save_pretrained(saved)
        model_ref = str(saved)
    twin = AutoModelForCausalLM.from_config(config)  # the model's shape; random weights time the same
    params = sum(p.numel() for p in twin.parameters())
    tied = getattr(config, "tie_word_embeddings", False)
    matmul = params - (0 if tied else config.vocab_size * config.hidden_size)
    start = time.perf_counter()
    argv = train_argv(plan, "cream", model_ref, plan.probe_steps, work / "train.jsonl", work / "probe-train")
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        (work / "probe-train.log").write_text(done.stdout + done.stderr)
        raise SystemExit(f"gpu plan: the probe's training failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    card = json.loads((work / "probe-train" / "longwin_training.json").read_text())
    step_s = card["train_runtime"] / plan.probe_steps
    probe = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "bf16_tflops": float(f"{_bf16_tflops(device):.4g}"),  # 4 significant digits: a CPU's rate is < 0.01
        "matmul_params": matmul,
        "layers": config.num_hidden_layers,
        "width": config.hidden_size,
        "step_s": round(step_s, 4),
        "load_s": round(wall - card["train_runtime"], 1),
        "eval_s": round(_eval_estimate(plan, twin, device, wall - card["train_runtime"]), 1),
    }
    (work / "probe.json").write_text(json.dumps(probe, indent=2) + "\n")
    print(json.dumps(probe), flush=True)


def _eval_estimate(plan: Plan, model: Any, device: str, load_s: float) -> float:
    """Seconds one model's evaluation takes, from timed forwards of `model` (bf16, SDPA, batch 1) at every
    evaluated length and 40 timed decoding steps: each length's perplexity windows and generation cells."""
    import torch

    model = model.to(device=device, dtype=torch.bfloat16).eval()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    cells = 2 * len(plan.depths) * plan.samples  # passkey and copy
    total = load_s
    with torch.inference_mode():
        for n in plan.lengths:
            ids = torch.randint(0, model.config.vocab_size, (1, n), device=device)
            sync()
            start = time.perf_counter()
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
            sync()
            forward = time.perf_counter() - start
            step, cache = ids[:, -1:], out.past_key_values
            start = time.perf_counter()
            for _ in range(40):
                cache = model(input_ids=step, past_key_values=cache, use_cache=True).past_key_values
            sync()
            decode = time.perf_counter() - start
            total += forward * (2 * plan.samples + cells) + decode * cells / plan.eval_batch
    return total


def _toy() -> Path:
    from longwin.models import model_path

    return model_path("toy")
