"""The final model is full, stock-loadable weights under every engine, and what could fail while saving it
is tried before the first step.

Under FSDP with sharded state dicts (FSDP2's default) the Trainer's `save_model` writes no weights at all,
and under ZeRO-3 without `stage3_gather_16bit_weights_on_model_save` it writes a DeepSpeed checkpoint
instead: a folder that would look finished and hold no model. So the final save asks FSDP for a full state
dict (checkpoints keep theirs), and the saved folder is checked before the run card marks it finished. A
config or generation config that its own validation refuses at save time, a tokenizer that cannot be
written, or a disk too small for the weights would otherwise be found only after the whole run.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from longwin.errors import LongwinError
from longwin.models.gguf_convert import first_line
from longwin.models.weights import folder_problem
from longwin.serving.reload_check import make_probe, model_type_skip, reference_logits, reload_check

FULL_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
ADAPTER = ("adapter_config.json", "adapter_model.safetensors")


def gather_full_weights(trainer: Any) -> None:
    """Make the Trainer's final `save_model` write full weights under FSDP (rank 0 gathers them)."""
    if getattr(trainer, "is_fsdp_enabled", False):
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")


def saved_model_problem(folder: Path) -> str | None:
    """Why `folder` holds no model that stock transformers (or PEFT, for an adapter) loads, or None."""
    full = any((folder / name).is_file() for name in FULL_WEIGHTS) and (folder / "config.json").is_file()
    adapter = all((folder / name).is_file() for name in ADAPTER)
    if not (full or adapter):
        return f"no weights a stock loader reads (model.safetensors + config.json) in {folder}"
    return folder_problem(folder)


def zero3_problem(targs: Any) -> str | None:
    """Why a DeepSpeed ZeRO-3 run's final save would hold no full weights, or None."""
    config = getattr(targs, "hf_deepspeed_config", None)
    settings = getattr(config, "config", None) or {}
    zero = settings.get("zero_optimization", {})
    if zero.get("stage") == 3 and not zero.get("stage3_gather_16bit_weights_on_model_save", False):
        return "ZeRO-3 without stage3_gather_16bit_weights_on_model_save: true saves no loadable weights"
    return None


def preflight_save(model: Any, tokenizer: Any, out: Path, rank: int = 0) -> dict[str, Any]:
    """Save the config, generation config and tokenizer into a scratch folder of `out`, reload the config and
    compare its RoPE settings, and check the disk has room for the weights: one line if anything fails. On
    rank 0 the untrained model is saved whole and reload-checked too (`serving.reload_check`); its record is
    returned for the run card."""
    from transformers import AutoConfig

    base = getattr(model, "get_base_model", lambda: model)()
    _check_disk(base, out)
    scratch = out / f".preflight-{rank}"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        try:
            base.config.save_pretrained(scratch)
            if getattr(base, "generation_config", None) is not None:
                base.generation_config.save_pretrained(scratch)
            tokenizer.save_pretrained(scratch)
            reloaded = AutoConfig.from_pretrained(scratch)
        except (ValueError, TypeError, OSError, KeyError) as exc:
            raise LongwinError(
                f"the final model could not be saved, so training was not started: {first_line(exc)}"
            ) from None
        _compare_config(base.config, reloaded)
        return _trial_reload(model, base, scratch) if rank == 0 else {"skipped": f"rank {rank}: rank 0 checks"}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _compare_config(mine: Any, reloaded: Any) -> None:
    for key in ("rope_parameters", "rope_scaling", "max_position_embeddings"):
        ours, theirs = getattr(mine, key, None), getattr(reloaded, key, None)
        if ours != theirs:
            raise LongwinError(f"the saved config would change {key} ({ours} -> {theirs}), so training was not started")


def _check_disk(base: Any, out: Path) -> None:
    need = sum(p.numel() * p.element_size() for p in base.parameters())
    free = shutil.disk_usage(out).free
    if free < 1.1 * need:
        raise LongwinError(
            f"the final model needs about {need / 2**30:.1f} GiB but {out} has {free / 2**30:.1f} GiB free"
        )


def _trial_reload(model: Any, base: Any, scratch: Path) -> dict[str, Any]:
    """Save the untrained model whole and reload-check it, before any step is spent on a RoPE config that a
    fresh process would not reproduce."""
    skip = model_type_skip(getattr(base.config, "model_type", None))
    if skip:
        return {"skipped": skip}
    if base is not model:
        return {"skipped": "LoRA: the merged final save is checked"}
    probe = make_probe(base.config)
    reference = reference_logits(base, probe)
    base.save_pretrained(scratch)
    try:
        return reload_check(scratch, reference, probe, base.config, base.dtype)
    except LongwinError as exc:
        raise LongwinError(f"{exc}; training was not started") from None
