"""What every training method shares around the HF Trainer: the output folder (never restart over an
earlier run silently, resume only from a complete checkpoint), the fit, and landing the final model so
that a half-written one is never taken for a finished one.

The Trainer writes `checkpoint-N/` in place and `trainer_state.json` last, so a checkpoint is *complete*
when that file parses and every weights/optimizer file in it is whole (`longwin.models.weights`): a
kill during the save, or a full disk, leaves one that fails this test. Such checkpoints are named and
removed before training starts, so neither a resume nor the Trainer's rotation (`save_total_limit`)
ever picks one up. The final model is written to a staging folder and moved in, and the run's card
(`longwin_training.json`) is written last: its presence means "this folder holds a finished model".
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from longwin.errors import LongwinError
from longwin.methods import TrainConfig, TrainParts, get_method
from longwin.methods.base import global_batch
from longwin.models.gguf_convert import first_line
from longwin.models.weights import folder_problem
from longwin.outputs import check_writable_folder, exclusive, move_into, write_text
from longwin.serving.reload_check import make_probe, model_type_skip, reference_logits, reload_check
from longwin.training.final_save import gather_full_weights, preflight_save, saved_model_problem
from longwin.training.preflight import check_model, check_run, check_trainer

CARD = "longwin_training.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_LATEST = {"true", "yes", "latest", "last", "1"}
_NONE = {"", "false", "no", "none", "0"}
_MODEL_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "adapter_model.safetensors",
    "adapter_config.json",
)


def checkpoints(folder: Path) -> list[Path]:
    """`checkpoint-N` folders of `folder`, oldest step first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))]
    return [p for _, p in sorted(found)]


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why `checkpoint` cannot be resumed from (incomplete, corrupt), or None when it is complete."""
    state = checkpoint / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json (the save did not finish)"
    try:
        step = json.loads(state.read_text())["global_step"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        return "trainer_state.json is unreadable (the save did not finish)"
    if not isinstance(step, int):
        return "trainer_state.json has no step"
    return folder_problem(checkpoint)


def latest_complete(folder: Path) -> Path | None:
    """The newest complete checkpoint in `folder`, or None."""
    return next((c for c in reversed(checkpoints(folder)) if checkpoint_problem(c) is None), None)


def holds_run(folder: Path) -> list[str]:
    """What of an earlier training run `folder` holds (checkpoint names, "a saved model"), for messages."""
    found = [c.name for c in checkpoints(folder)]
    if any((folder / name).exists() for name in (CARD, *_MODEL_FILES)):
        found.append("a saved model")
    return found


def plan_run(output_dir: str | Path, resume: Any, overwrite: bool, *, main: bool = True) -> str | None:
    """Check the output folder before any work and return the checkpoint to resume from (None: fresh).

    `resume`: None/"false" (start fresh), "true"/"latest" (the newest complete checkpoint of
    `output_dir`), or a checkpoint path. A fresh start into a folder that holds an earlier run is refused
    unless `overwrite`, which removes that run's checkpoints and model first. Only the `main` process
    removes anything or prints.
    """
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise LongwinError(f"--output-dir {out} is an existing file, not a folder")
    text = "" if resume is None else str(resume).strip()
    if text.lower() in _NONE:
        earlier = holds_run(out)
        if earlier and not overwrite:
            raise LongwinError(
                f"--output-dir {out} already holds a training run ({', '.join(earlier)}): resume it "
                f"with --resume-from-checkpoint true, or start over with --overwrite-output-dir true"
            )
        if earlier and main:
            _remove_run(out)
            print(f"longwin train: starting over in {out} (removed {', '.join(earlier)})", file=sys.stderr)
        return None
    if text.lower() in _LATEST:
        chosen = latest_complete(out)
        if chosen is None:
            raise LongwinError(f"--resume-from-checkpoint {text}: {out} holds no complete checkpoint to resume from")
    else:
        chosen = Path(text)
        if not chosen.is_dir():
            raise LongwinError(f"--resume-from-checkpoint {text}: no such checkpoint folder")
        problem = checkpoint_problem(chosen)
        if problem:
            newest = latest_complete(chosen.parent)
            hint = f"; the newest complete one is {newest}" if newest else ""
            raise LongwinError(f"--resume-from-checkpoint {text} is incomplete or corrupt ({problem}){hint}")
    if main:
        _remove_incomplete(out)
        print(f"longwin train: resuming from {chosen}", file=sys.stderr)
    return str(chosen)


def _remove_incomplete(out: Path) -> None:
    for checkpoint in checkpoints(out):
        problem = checkpoint_problem(checkpoint)
        if problem:
            print(f"longwin train: removing incomplete {checkpoint} ({problem})", file=sys.stderr)
            shutil.rmtree(checkpoint)


def _remove_run(out: Path) -> None:
    for checkpoint in checkpoints(out):
        shutil.rmtree(checkpoint)
    for name in (CARD, *_MODEL_FILES):
        (out / name).unlink(missing_ok=True)


def save_final(
    trainer: Any,
    out: Path,
    save_model: Callable[[Path], None],
    save_extra: Callable[[Path], object],  # its return value is ignored
    card: Callable[[], dict[str, Any]],
    check: Callable[[Path], dict[str, Any]] | None = None,
) -> None:
    """Every rank calls this: `save_model(folder)` (collective under DeepSpeed/FSDP) writes into a staging
    folder inside `out`; the main process adds `save_extra` (the tokenizer), moves it all in, runs `check`
    on the landed folder (the reload check; its record goes into the card as `reload_check`, and its
    `LongwinError` leaves the folder without a card) and writes the card last."""
    staging = out / ".final-staging"
    if trainer.is_world_process_zero():
        shutil.rmtree(staging, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    gather_full_weights(trainer)
    save_model(staging)
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        problem = saved_model_problem(staging)
        if problem:  # never a card over a folder without a model; the checkpoints keep the trained state
            shutil.rmtree(staging, ignore_errors=True)
            raise LongwinError(f"the final save wrote no loadable model ({problem}); {out} is not marked finished")
        save_extra(staging)
        (out / CARD).unlink(missing_ok=True)  # the old card must not vouch for half-moved new files
        move_into(staging, out)
        checked = {} if check is None else {"reload_check": check(out)}
        write_text(out / CARD, json.dumps({**card(), **checked}, indent=2, default=str) + "\n")


def fit(trainer: Any, targs: Any) -> None:
    """`trainer.train`, resuming from `targs.resume_from_checkpoint`; a checkpoint file that is not plain
    tensors (refused by torch's safe loader) is a one-line error, not a traceback."""
    try:
        trainer.train(resume_from_checkpoint=targs.resume_from_checkpoint)
    except pickle.UnpicklingError as exc:
        raise LongwinError(
            f"refused to load {targs.resume_from_checkpoint}: a file in it holds more than plain "
            f"tensors ({first_line(exc)})"
        ) from None


def final_loss(trainer: Any) -> float | None:
    """The last logged training loss; the run's average when it had fewer steps than logging_steps."""
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h] or [h["train_loss"] for h in history if "train_loss" in h]
    return losses[-1] if losses else None


def train_runtime(trainer: Any) -> float | None:
    """Seconds the Trainer's own loop took (no model loading or saving): what throughput is measured on."""
    return next((h["train_runtime"] for h in reversed(trainer.state.log_history) if "train_runtime" in h), None)


def train(config: TrainConfig, targs: Any) -> Path:
    """The one training entry point: check the output folder (one writer; no silent restart over an earlier
    run; resume only from a complete checkpoint), let the method build its parts, fit them with the HF Trainer
    and land the model with its tokenizer and card.

    The Trainer does the heavy lifting, so `accelerate launch`, DeepSpeed (`--deepspeed ds.json`) and FSDP
    (`--fsdp ...`) work unchanged."""
    from transformers import Trainer, set_seed

    method = get_method(config.common.method)
    check_run(config, targs, os.environ)
    out = check_writable_folder(targs.output_dir, "--output-dir")
    main = targs.process_index == 0
    with exclusive(out, "longwin train") if main else contextlib.nullcontext():
        targs.resume_from_checkpoint = plan_run(
            out, targs.resume_from_checkpoint, config.common.overwrite_output_dir, main=main
        )
        set_seed(targs.seed)
        started = time.time()
        parts = method.build(config, targs)
        check_model(parts.model, targs, os.environ)
        trial = preflight_save(parts.model, parts.tokenizer, out, targs.process_index)
        print(f"longwin train: {parts.pool.describe()}", file=sys.stderr)
        trainer_class, loss = _trainer_class(config, targs, parts, Trainer)
        parts.card["loss"] = loss
        trainer = trainer_class(
            model=parts.model, args=targs, train_dataset=parts.dataset, data_collator=parts.collator
        )
        check_trainer(trainer, targs, os.environ)
        fit(trainer, targs)
        if parts.after_fit is not None:
            parts.after_fit()
        save = parts.save_model or (lambda trainer, folder: trainer.save_model(str(folder)))
        check = final_reload_check(trainer, parts.model, trial)
        save_final(
            trainer,
            out,
            lambda folder: save(trainer, folder),
            parts.tokenizer.save_pretrained,
            lambda: run_card(config, targs, parts, trainer, time.time() - started),
            check,
        )
    return out


def final_reload_check(trainer: Any, model: Any, trial: dict[str, Any]) -> Callable[[Path], dict[str, Any]]:
    """The trained model's probe logits, taken on every rank now (a collective under FSDP/ZeRO-3), and the
    check rank 0 runs on the landed folder with them (`serving.reload_check`)."""
    base = getattr(model, "get_base_model", lambda: model)()
    if model_type_skip(getattr(base.config, "model_type", None)):
        return lambda folder: {"preflight": trial, "final": {"skipped": trial.get("skipped", "")}}
    probe = make_probe(base.config)
    reference = reference_logits(trainer.model_wrapped, probe)
    dtype = next(model.parameters()).dtype
    bf16, fp16 = (bool(getattr(trainer.args, name, False)) for name in ("bf16", "fp16"))
    if bf16 or fp16:  # the reference ran under the Trainer's mixed-precision autocast
        import torch

        dtype = torch.bfloat16 if bf16 else torch.float16

    def check(folder: Path) -> dict[str, Any]:
        try:
            final = reload_check(folder, reference, probe, base.config, dtype)
        except LongwinError as exc:
            raise LongwinError(f"{exc}; {folder} holds the weights but is not marked finished") from None
        return {"preflight": trial, "final": final}

    return check


def _trainer_class(config: TrainConfig, targs: Any, parts: TrainParts, default: type) -> tuple[type, str]:
    """The method's Trainer if it brings one; else the chunked-loss Trainer where it applies (the run card
    says which loss ran and, if not the chunked one, why)."""
    from longwin.training.chunked_loss import ChunkedLossTrainer, chunked_loss_refusal

    if parts.trainer_class is not None:
        return parts.trainer_class, f"{parts.trainer_class.__name__}'s"
    if not parts.causal_lm:
        return default, "the model's"
    if not config.common.chunked_loss:
        return default, "the model's (--chunked-loss false)"
    refusal = chunked_loss_refusal(parts.model, targs)
    if refusal:
        return default, f"the model's ({refusal})"
    return ChunkedLossTrainer, "chunked"


def run_card(config: TrainConfig, targs: Any, parts: TrainParts, trainer: Any, seconds: float) -> dict[str, Any]:
    """`longwin_training.json`: what was trained, from what, how, and how it went."""
    common = config.common
    return {
        "method": common.method,
        **parts.card,
        "base_model": common.model,
        "target_length": common.target_length,
        "data": parts.pool.describe(),
        "retrieval_fraction": common.retrieval_fraction,
        "steps": trainer.state.global_step,
        "global_batch": global_batch(targs),
        "final_loss": final_loss(trainer),
        "train_runtime": train_runtime(trainer),
        "train_wall_seconds": round(seconds, 1),
        "extend_config": config.to_dict(),
        "training_arguments": {k: v for k, v in targs.to_dict().items() if not k.startswith("_")},
        "command": " ".join(sys.argv),
    }
