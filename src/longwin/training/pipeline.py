"""`longwin train`: documents → position-scheme examples → HF Trainer → a plain transformers folder.

The Trainer does the heavy lifting, so `accelerate launch`, DeepSpeed (`--deepspeed ds.json`) and
FSDP (`--fsdp ...`) work unchanged; we only decide which tokens sit at which positions.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from longwin.config import to_dict
from longwin.errors import LongwinError
from longwin.training.config import ExtendConfig


def train(ext: ExtendConfig, targs) -> Path:
    from transformers import Trainer, default_data_collator, set_seed

    from longwin.data.retrieval_docs import RetrievalExamples
    from longwin.training.data import PositionSchemeDataset, build_pool
    from longwin.training.setup import prepare

    if ext.method == "sharedllm":
        from longwin.training.sharedllm_stage import train_sharedllm

        return train_sharedllm(ext, targs)
    if targs.max_steps <= 0:
        raise LongwinError("--max-steps must be positive (examples are drawn per step)")
    set_seed(targs.seed)
    started = time.time()
    prep = prepare(ext)
    pool = build_pool(ext.data, prep.tokenizer, min_tokens=prep.train_length, val_fraction=ext.val_fraction,
                      seed=targs.seed, text_field=ext.text_field)
    print(f"longwin train: {pool.describe()}", file=sys.stderr)
    retrieval = None
    if ext.retrieval_fraction > 0:
        retrieval = RetrievalExamples(prep.tokenizer, pool.stream, pool.texts(prep.tokenizer), ext.retrieval_kinds)
    global_batch = targs.per_device_train_batch_size * targs.gradient_accumulation_steps * targs.world_size
    dataset = PositionSchemeDataset(pool, ext.scheme, train_len=prep.train_length, target_len=ext.target_length,
                                    num_samples=targs.max_steps * global_batch, seed=targs.seed,
                                    options=ext.scheme_options, retrieval=retrieval,
                                    retrieval_fraction=ext.retrieval_fraction)
    trainer = Trainer(model=prep.model, args=targs, train_dataset=dataset, data_collator=default_data_collator)
    trainer.train(resume_from_checkpoint=targs.resume_from_checkpoint)
    out = Path(targs.output_dir)
    save(trainer, prep, ext, out)
    if trainer.is_world_process_zero():
        write_card(out, ext, targs, prep, pool, trainer, time.time() - started)
    return out


def save(trainer, prep, ext: ExtendConfig, out: Path) -> None:
    """A folder stock transformers loads: merged LoRA by default, else the adapter alone."""
    if ext.lora and ext.merge_lora:
        if trainer.is_world_process_zero():
            merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
            merged.save_pretrained(out, safe_serialization=True)
    else:
        trainer.save_model(str(out))
    if trainer.is_world_process_zero():
        prep.tokenizer.save_pretrained(out)


def final_loss(trainer) -> float | None:
    """The last logged training loss; the run's average when it had fewer steps than logging_steps."""
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h] or [h["train_loss"] for h in history if "train_loss" in h]
    return losses[-1] if losses else None


def write_card(out: Path, ext: ExtendConfig, targs, prep, pool, trainer, seconds: float) -> None:
    card = {
        "method": ext.method, "scheme": ext.scheme, "scheme_options": ext.scheme_options, "rope": ext.rope,
        "rope_options": ext.rope_options,
        "base_model": ext.model, "native_window": prep.native_window, "train_length": prep.train_length,
        "target_length": ext.target_length, "data": pool.describe(),
        "retrieval_fraction": ext.retrieval_fraction,
        "steps": trainer.state.global_step, "final_loss": final_loss(trainer),
        "train_wall_seconds": round(seconds, 1), "extend_config": to_dict(ext),
        "training_arguments": {k: v for k, v in targs.to_dict().items() if not k.startswith("_")},
        "command": " ".join(sys.argv),
    }
    (out / "longwin_training.json").write_text(json.dumps(card, indent=2, default=str) + "\n")
