"""Reload a saved model in a fresh process and check it runs extended: the check after every save.

A saved folder can look right and serve wrong: transformers 5.x ignores RoPE fields set on a config after
`from_pretrained` (the rotary frequencies were computed at init), so a model can train at native RoPE
and save a scaled config, or save a config whose scaling fields were dropped. Both load without error.
The check scores a 16-token probe whose positions straddle the extended window (8 tokens at 0.., 8 just
below the target length, so relative distances reach far past the native window) three ways:

* the in-memory model (`reference_logits`, on every rank: a collective under FSDP/ZeRO-3),
* the saved folder loaded by stock `AutoModelForCausalLM.from_pretrained` in a fresh process: must match,
* the same weights with the RoPE reset to native: must differ when the model is meant to be scaled,

and reads `config.json`'s RoPE keys the way serving engines do (`rope_keys.key_problems`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from longwin.errors import LongwinError
from longwin.rope import describe_rope
from longwin.serving.rope_keys import key_problems

PROBE_TOKENS = 16
# max |logit difference| / max |logit|, by the coarser of the in-memory and the saved dtype
_TOLERANCE = {"float32": 1e-3, "float64": 1e-3, "bfloat16": 5e-2, "float16": 5e-2}
# the least RoPE effect (scaled vs native, both float32 from the same weights in the fresh process) that is
# not rounding: a scaling that does nothing gives 0 here; a random tiny model's YaRN x8 gives about 1e-3
MIN_EFFECT = 1e-5


def make_probe(config: Any) -> dict[str, Any]:
    """Random token ids (fixed seed) at positions 0..7 and target-8..target-1 of the scaled window."""
    import torch

    target = max(describe_rope(config)["target_length"], PROBE_TOKENS)
    half = PROBE_TOKENS // 2
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(config.vocab_size, (1, PROBE_TOKENS), generator=generator)
    positions = torch.cat([torch.arange(half), torch.arange(target - half, target)]).unsqueeze(0)
    return {"input_ids": ids, "position_ids": positions}


def reference_logits(model: Any, probe: dict[str, Any]) -> Any:
    """The in-memory model's logits on the probe (call on every rank under sharded engines)."""
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(**{k: v.to(device) for k, v in probe.items()}, use_cache=False)
    finally:
        model.train(was_training)
    return out.logits.float().cpu()


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def skip_reason(folder: Path) -> str | None:
    """Why a stock loader cannot be asked to reload `folder` (adapter only, a longwin-only architecture), or None."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        return "adapter-only folder: serving engines need merged weights (--lora-merge true)"
    return model_type_skip(json.loads(config_file.read_text()).get("model_type"))


def model_type_skip(model_type: str | None) -> str | None:
    """Why a model of this type is not reload-checked (transformers does not know it), or None."""
    from transformers import CONFIG_MAPPING

    # a type registered by a library (longwin's SharedLLM) is in the mapping too, but is not stock
    if model_type is None or model_type not in CONFIG_MAPPING:
        return f"model type {model_type!r} is longwin's own; stock transformers and serving engines cannot load it"
    if not CONFIG_MAPPING[model_type].__module__.startswith("transformers."):
        return f"model type {model_type!r} is longwin's own; stock transformers and serving engines cannot load it"
    return None


def reload_check(folder: Path, reference: Any, probe: dict[str, Any], model_config: Any, model_dtype: Any) -> dict:
    """Reload `folder` in a fresh process and compare its probe logits with `reference`; a one-line
    `LongwinError` if they differ, if they equal the native-RoPE model's while the model is scaled, or if
    `config.json` lacks a RoPE key serving engines read. Returns the record for the run card."""
    reason = skip_reason(folder)
    if reason:
        return {"skipped": reason}
    started = time.time()
    saved = json.loads((folder / "config.json").read_text())
    problems = key_problems(saved)
    if problems:
        raise LongwinError(f"reload check: {folder}/config.json: {problems[0]}")
    scores = _run_child(folder, probe)
    scale = float(reference.abs().max()) or 1.0
    same = float((scores["reloaded"] - reference).abs().max()) / scale
    effect = float((scores["unscaled"] - scores["reloaded"]).abs().max()) / scale
    saved_dtype = saved.get("dtype") or saved.get("torch_dtype") or "float32"
    tolerance = max(_TOLERANCE.get(_dtype_name(model_dtype), 5e-2), _TOLERANCE.get(str(saved_dtype), 5e-2))
    scaled = describe_rope(model_config)["factor"] > 1
    if same > tolerance:
        raise LongwinError(
            f"reload check: {folder} reloaded in a fresh process gives other logits past the native window "
            f"than the model that saved it (max relative difference {same:.2g} > {tolerance:g}): "
            "its saved RoPE config is not the one the model ran with"
        )
    if scaled and effect <= MIN_EFFECT:
        raise LongwinError(
            f"reload check: {folder} gives the same logits as its unscaled base past the native window "
            f"(max relative difference {effect:.2g}): its RoPE scaling does nothing"
        )
    return {
        "passed": True,
        "probe_positions": f"0-{PROBE_TOKENS // 2 - 1} and the last {PROBE_TOKENS // 2} below the target length",
        "max_rel_diff_reloaded": round(same, 8),
        "max_rel_diff_unscaled": round(effect, 8) if scaled else None,
        "tolerance": tolerance,
        "rope_keys": "complete",
        "seconds": round(time.time() - started, 1),
    }


def _run_child(folder: Path, probe: dict[str, Any]) -> dict[str, Any]:
    """Run `reload_child` in a fresh interpreter that imports this same longwin."""
    import torch

    env = dict(os.environ)
    source = str(Path(__file__).resolve().parents[2])  # the folder holding this `longwin` package
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="longwin-reload-") as tmp:
        probe_file, out_file = Path(tmp) / "probe.pt", Path(tmp) / "out.pt"
        torch.save(probe, probe_file)
        command = [sys.executable, "-m", "longwin.serving.reload_child", str(folder), str(probe_file), str(out_file)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
            last = lines[-1] if lines else f"exit code {done.returncode}"
            raise LongwinError(f"reload check: a fresh process could not load {folder} with stock transformers: {last}")
        return dict(torch.load(out_file, weights_only=True))
