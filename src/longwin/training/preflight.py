"""Pre-flight checks for the multi-GPU path: what the Trainer or accelerate would refuse only after a 7B model has
loaded (or after hours, at the final save) is refused here first, in one line.

`check_launch` runs before `TrainingArguments` exist (DeepSpeed starts its process group while they are built),
`check_run` before the model loads, `check_model` once it has, before the Trainer wraps it. `env` is the process
environment, where `accelerate launch --config_file` passes its FSDP settings (`FSDP_*` variables).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from importlib import resources
from typing import Any

from longwin.errors import LongwinError
from longwin.training.final_save import zero3_problem

# attn_implementation -> (module it imports, what installs it)
ATTENTION_PACKAGES = {"flash_attention_2": ("flash_attn", "pip install 'longwin[flash-attn]' (builds against CUDA)")}
# report_to backend -> what installs it, where longwin has an extra for it
REPORT_EXTRAS = {"tensorboard": "longwin[tensorboard]"}
_TRUE = {"1", "true", "yes", "y", "on", "t"}
_OFF = {"", "0", "false", "no", "none", "[]"}


def _true(value: Any) -> bool:
    return str(value).strip().lower() in _TRUE


def _on(value: Any) -> bool:
    """Whether a TrainingArguments `fsdp`/`deepspeed` value asks for sharding (`--fsdp false` does not)."""
    return value is not None and value is not False and str(value).strip().lower() not in _OFF


def launched(env: Mapping[str, str]) -> bool:
    """Whether a launcher (torchrun, accelerate launch, deepspeed) started this process."""
    return "WORLD_SIZE" in env or "LOCAL_RANK" in env


def check_launch(values: Mapping[str, Any], env: Mapping[str, str]) -> None:
    """FSDP and DeepSpeed need one process per GPU, started by a launcher, and DeepSpeed needs its package."""
    asked = [flag for flag in ("fsdp", "deepspeed") if _on(values.get(flag))]
    if asked and not launched(env):
        preset = resources.files("longwin") / "recipes" / "presets" / "accelerate-fsdp.yaml"
        raise LongwinError(
            f"--{asked[0]} needs one process per GPU, started by a launcher: accelerate launch --config_file "
            f"{preset} -m longwin train ... (drop --fsdp then), or torchrun --nproc-per-node N -m longwin train ..."
        )
    if "deepspeed" in asked and importlib.util.find_spec("deepspeed") is None:
        raise LongwinError("--deepspeed needs the deepspeed package: pip install 'longwin[deepspeed]'")


def fsdp_settings(targs: Any, env: Mapping[str, str]) -> dict[str, Any] | None:
    """The FSDP options this run gets from `--fsdp`/`--fsdp-config` and from `accelerate launch` (the process
    environment fills what the arguments leave unset, as accelerate's FSDP plugin does); None without FSDP."""
    if not (_on(getattr(targs, "fsdp", None)) or _true(env.get("ACCELERATE_USE_FSDP"))):
        return None
    given = getattr(targs, "fsdp_config", None)
    given = {str(k).removeprefix("fsdp_"): v for k, v in given.items()} if isinstance(given, dict) else {}
    wrap = given.get("transformer_layer_cls_to_wrap") or env.get("FSDP_TRANSFORMER_CLS_TO_WRAP")
    if isinstance(wrap, str):
        wrap = [name.strip() for name in wrap.split(",") if name.strip()]
    checkpointing = given.get("activation_checkpointing", env.get("FSDP_ACTIVATION_CHECKPOINTING", False))
    return {"activation_checkpointing": _true(checkpointing), "transformer_layer_cls_to_wrap": wrap or None}


def check_run(config: Any, targs: Any, env: Mapping[str, str]) -> None:
    """Before the model loads: checkpointing asked twice, a ZeRO-3 final save without weights, a report backend
    or attention kernel not installed."""
    fsdp = fsdp_settings(targs, env)
    gradient = getattr(targs, "activation_checkpointing", None) or getattr(targs, "gradient_checkpointing", False)
    if fsdp and fsdp["activation_checkpointing"] and gradient:
        raise LongwinError(
            "FSDP's activation checkpointing (fsdp_activation_checkpointing in the accelerate config, or "
            "--fsdp-config) and --gradient-checkpointing are both on, which the Trainer refuses: turn one off"
        )
    problem = zero3_problem(targs)
    if problem:
        raise LongwinError(f"{problem}: set it in the DeepSpeed config")
    check_report_to(targs.report_to)
    attention = config.common.attn_implementation
    if attention in ATTENTION_PACKAGES:
        module, install = ATTENTION_PACKAGES[attention]
        if importlib.util.find_spec(module) is None:
            raise LongwinError(
                f"--attn-implementation {attention} needs {module.replace('_', '-')}, which is not installed and "
                f"has no PyPI wheels: {install}, or use --attn-implementation sdpa"
            )


def check_report_to(report_to: Any) -> None:
    """Every `--report-to` backend is installed (the Trainer finds out only once the model is loaded)."""
    from transformers.integrations import get_available_reporting_integrations

    asked = [report_to] if isinstance(report_to, str) else list(report_to or [])
    missing = [name for name in asked if name not in ("none", "all", *get_available_reporting_integrations())]
    if missing:
        install = " ".join(REPORT_EXTRAS.get(name, name) for name in missing)
        raise LongwinError(
            f"--report-to {','.join(missing)}: not installed (pip install '{install}'), or use --report-to none"
        )


def check_model(model: Any, targs: Any, env: Mapping[str, str]) -> None:
    """The FSDP wrap classes name module classes of the loaded model (accelerate fails on one it lacks)."""
    fsdp = fsdp_settings(targs, env)
    wanted = fsdp and fsdp["transformer_layer_cls_to_wrap"]
    if not wanted:
        return  # accelerate wraps the model's own `_no_split_modules`
    present = {type(module).__name__ for module in model.modules()}
    absent = [name for name in wanted if name not in present]
    if absent:
        own = ", ".join(name for name in getattr(model, "_no_split_modules", None) or [] if name in present)
        raise LongwinError(
            f"FSDP is told to wrap {', '.join(absent)}, which {type(model).__name__} has no module of (its "
            f"layers: {own or 'none declared'}): drop fsdp_transformer_layer_cls_to_wrap to wrap the model's own"
        )


def check_trainer(trainer: Any, targs: Any, env: Mapping[str, str]) -> None:
    """FSDP asked for but not running: accelerate drops its FSDP plugin on CPU process groups (`--use-cpu`),
    and the run would silently train as plain DDP with every weight on every rank."""
    if fsdp_settings(targs, env) and not getattr(trainer, "is_fsdp_enabled", False):
        raise LongwinError(
            "FSDP was asked for but the Trainer runs without it (accelerate enables FSDP only on GPU process "
            "groups, not with --use-cpu): run on GPUs, or drop --fsdp / the FSDP accelerate config"
        )
