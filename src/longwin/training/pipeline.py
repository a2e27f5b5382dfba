"""`longwin train`: documents → position-scheme examples → HF Trainer → a plain transformers folder.

The Trainer does the heavy lifting, so `accelerate launch`, DeepSpeed (`--deepspeed ds.json`) and
FSDP (`--fsdp ...`) work unchanged; we only decide which tokens sit at which positions.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

from longwin.config import to_dict
from longwin.errors import LongwinError
from longwin.outputs import check_writable_folder, exclusive
from longwin.training.config import ExtendConfig
from longwin.training.runner import final_loss, fit, plan_run, save_final


def train(ext: ExtendConfig, targs) -> Path:
    """Check the output folder (one writer; no silent restart over an earlier run; resume only from a
    complete checkpoint), then train with the method's pipeline."""
    out = check_writable_folder(targs.output_dir, "--output-dir")
    main = targs.process_index == 0
    with exclusive(out, "longwin train") if main else contextlib.nullcontext():
        targs.resume_from_checkpoint = plan_run(out, targs.resume_from_checkpoint, ext.overwrite_output_dir, main=main)
        if ext.method == "sharedllm":
            from longwin.training.sharedllm_stage import train_sharedllm

            return train_sharedllm(ext, targs)
        return _train_positions(ext, targs)


def _train_positions(ext: ExtendConfig, targs) -> Path:
    from transformers import Trainer, default_data_collator, set_seed

    from longwin.data.retrieval_docs import RetrievalExamples
    from longwin.training.data import PositionSchemeDataset, build_pool
    from longwin.training.setup import prepare

    set_seed(targs.seed)
    started = time.time()
    prep = prepare(ext)
    pool = build_pool(
        ext.data,
        prep.tokenizer,
        min_tokens=prep.train_length,
        val_fraction=ext.val_fraction,
        seed=targs.seed,
        text_field=ext.text_field,
    )
    print(f"longwin train: {pool.describe()}", file=sys.stderr)
    retrieval = None
    if ext.retrieval_fraction > 0:
        retrieval = RetrievalExamples(prep.tokenizer, pool.stream, pool.texts(prep.tokenizer), ext.retrieval_kinds)
    global_batch = targs.per_device_train_batch_size * targs.gradient_accumulation_steps * targs.world_size
    dataset = PositionSchemeDataset(
        pool,
        ext.scheme,
        train_len=prep.train_length,
        target_len=ext.target_length,
        num_samples=targs.max_steps * global_batch,
        seed=targs.seed,
        options=ext.scheme_options,
        retrieval=retrieval,
        retrieval_fraction=ext.retrieval_fraction,
        native_fraction=ext.native_fraction,
    )
    trainer_class = Trainer
    if ext.induction_weight:
        trainer_class = _induction_trainer(prep.model, ext, targs.resume_from_checkpoint)
    trainer = trainer_class(model=prep.model, args=targs, train_dataset=dataset, data_collator=default_data_collator)
    fit(trainer, targs)
    if ext.induction_weight:  # back to the requested attention kernel before saving
        getattr(prep.model, "get_base_model", lambda: prep.model)().set_attn_implementation(ext.attn_implementation)
    out = Path(targs.output_dir)
    save_final(
        trainer,
        out,
        lambda folder: save_model(trainer, ext, folder),
        prep.tokenizer.save_pretrained,
        lambda: card(ext, targs, prep, pool, trainer, time.time() - started),
    )
    return out


def _induction_trainer(model, ext: ExtendConfig, resume: str | None):
    """A Trainer that keeps the induction-head supervision of pretraining on (eager attention: the loss reads
    attention probabilities; the model is saved with SDPA again)."""
    from longwin.training.induction import InductionHeads, InductionSupervision, induction_trainer

    base = getattr(model, "get_base_model", lambda: model)()
    if ext.induction_match > base.config.num_attention_heads:
        raise LongwinError(f"--induction-match must be at most {base.config.num_attention_heads} (one head per token)")
    supervision = InductionSupervision(base.config.hidden_size, InductionHeads(match_len=ext.induction_match))
    if resume:
        supervision.load(resume)
    base.set_attn_implementation("eager")
    return induction_trainer(supervision, ext.induction_weight)


def save_model(trainer, ext: ExtendConfig, folder: Path) -> None:
    """A folder stock transformers loads: merged LoRA by default, else the adapter alone."""
    if ext.lora and ext.merge_lora:
        if trainer.is_world_process_zero():
            merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
            merged.save_pretrained(folder, safe_serialization=True)
    else:
        trainer.save_model(str(folder))


def card(ext: ExtendConfig, targs, prep, pool, trainer, seconds: float) -> dict:
    return {
        "method": ext.method,
        "scheme": ext.scheme,
        "scheme_options": ext.scheme_options,
        "rope": ext.rope,
        "rope_options": ext.rope_options,
        "base_model": ext.model,
        "native_window": prep.native_window,
        "train_length": prep.train_length,
        "target_length": ext.target_length,
        "data": pool.describe(),
        "retrieval_fraction": ext.retrieval_fraction,
        "steps": trainer.state.global_step,
        "final_loss": final_loss(trainer),
        "train_wall_seconds": round(seconds, 1),
        "extend_config": to_dict(ext),
        "training_arguments": {k: v for k, v in targs.to_dict().items() if not k.startswith("_")},
        "command": " ".join(sys.argv),
    }
