"""Position-scheme fine-tuning (CREAM, PoSE, RandPos, contiguous): train at a short window with position ids
that span the target window, on a model whose RoPE is rescaled for it.

The model is the base with its config's `rope_scaling` set for the target, so the saved folder loads in
stock transformers; the examples carry `position_ids` from the scheme (`longwin.positions`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from longwin import positions
from longwin.errors import LongwinError
from longwin.methods.base import CommonOptions, TrainConfig, TrainParts, global_batch, retrieval_examples
from longwin.methods.lora import LoraOptions, apply_lora, save_lora_model
from longwin.methods.positions.dataset import PositionSchemeDataset
from longwin.methods.positions.mixed_rope import mix_rope
from longwin.methods.positions.options import PositionsOptions


def check_windows(common: CommonOptions, native: int) -> int:
    """The training window, refusing ones above the native window unless explicitly allowed."""
    train_len = common.train_length or native
    if train_len > native and not common.allow_long_train_window:
        raise LongwinError(
            f"--train-length {train_len} is above the native window {native}: that is full-length "
            f"fine-tuning; pass --allow-long-train-window true if you mean it"
        )
    if common.target_length <= native:
        raise LongwinError(f"--target-length {common.target_length} must be above the native window {native}")
    return train_len


def build(config: TrainConfig, targs: Any) -> TrainParts:
    """Check every option before the weights load, then the model, the document pool and the examples."""
    from transformers import default_data_collator

    opts, lora = config.get(PositionsOptions), config.get(LoraOptions)
    scaled, native, train_len = _check_request(config)
    model, tokenizer = _model(config, scaled)
    trainer_class, after_fit = _extra_loss(config, model, targs)
    if opts.native_rope == "original":  # mixed context windows: the replayed share on the base's own RoPE
        from longwin.rope import scale_rope

        unscaled = scale_rope(scaled, "none", config.common.target_length)  # the native frequencies and base
        after_fit = _then(after_fit, mix_rope(model, unscaled))
    pool, dataset = _examples(config, targs, tokenizer, train_len)
    card = {
        "scheme": opts.scheme,
        "scheme_options": opts.scheme_options,
        "rope": opts.rope,
        "rope_options": opts.rope_options,
        "native_window": native,
        "train_length": train_len,
        "native_fraction": opts.native_fraction,
        "native_rope": opts.native_rope,
    }

    def save(trainer: Any, folder: Path) -> None:
        save_lora_model(trainer, folder, lora)

    return TrainParts(
        model,
        tokenizer,
        dataset,
        default_data_collator,
        pool,
        card,
        save_model=save,
        trainer_class=trainer_class,
        after_fit=after_fit,
        causal_lm=True,
    )


def _check_request(config: TrainConfig) -> tuple[Any, int, int]:
    """(the base config with RoPE scaled for the target, the native window, the training window), from the
    config files alone: a bad window, scheme or loss combination fails before any weights load."""
    from transformers import AutoConfig

    from longwin.models import model_path
    from longwin.rope import native_window, scale_rope

    common, opts = config.common, config.get(PositionsOptions)
    base_config = AutoConfig.from_pretrained(model_path(common.model), local_files_only=True)
    native = native_window(base_config)
    train_len = check_windows(common, native)
    scaled = scale_rope(base_config, opts.rope, common.target_length, **opts.rope_options)
    positions.sample(opts.scheme, train_len, common.target_length, seed=0, **opts.scheme_options)
    if opts.native_rope == "original" and not opts.native_fraction:
        raise LongwinError("--native-rope original needs a --native-fraction above 0 (the share it applies to)")
    if opts.distill_weight and opts.induction_weight:
        raise LongwinError("--distill-weight and --induction-weight cannot be combined (each brings its own loss)")
    return scaled, native, train_len


def _model(config: TrainConfig, scaled: Any) -> tuple[Any, Any]:
    """(model, tokenizer): the base loaded with the scaled config, in training mode, LoRA-wrapped when asked."""
    from longwin.models import load_model

    common, lora = config.common, config.get(LoraOptions)
    model, tokenizer = load_model(
        common.model, dtype=common.dtype, attn_implementation=common.attn_implementation, config=scaled
    )
    model.train()
    if lora.enabled:
        model = apply_lora(model, lora)
    return model, tokenizer


def _extra_loss(config: TrainConfig, model: Any, targs: Any) -> tuple[type | None, Any]:
    """(Trainer subclass, after-fit hook) of the optional extra loss: distillation to the unchanged base, or
    induction-head supervision; (None, None) for the plain LM loss."""
    from longwin.models import load_model

    common, opts = config.common, config.get(PositionsOptions)
    trainer_class, after_fit = None, None
    if opts.distill_weight:
        from longwin.methods.distill import distill_trainer

        teacher, _ = load_model(common.model, dtype=common.dtype, attn_implementation=common.attn_implementation)
        trainer_class = distill_trainer(teacher, opts.distill_weight)
    if opts.induction_weight:
        trainer_class = _induction_trainer(model, opts, targs.resume_from_checkpoint)

        def after_fit() -> None:  # back to the requested attention kernel before saving
            getattr(model, "get_base_model", lambda: model)().set_attn_implementation(common.attn_implementation)

    return trainer_class, after_fit


def _examples(config: TrainConfig, targs: Any, tokenizer: Any, train_len: int) -> tuple[Any, PositionSchemeDataset]:
    """(document pool, examples): the corpus tokenized once (rank 0 first), each example a scheme layout."""
    from longwin.data.pool import build_pool

    common, opts = config.common, config.get(PositionsOptions)
    with targs.main_process_first(desc="tokenizing the corpus"):  # the others then read rank 0's token cache
        pool = build_pool(
            common.data,
            tokenizer,
            min_tokens=train_len,
            val_fraction=common.val_fraction,
            seed=targs.seed,
            text_field=common.text_field,
        )
    dataset = PositionSchemeDataset(
        pool,
        opts.scheme,
        train_len=train_len,
        target_len=common.target_length,
        num_samples=targs.max_steps * global_batch(targs),
        seed=targs.seed,
        options=opts.scheme_options,
        retrieval=retrieval_examples(config, tokenizer, pool),
        retrieval_fraction=common.retrieval_fraction,
        native_fraction=opts.native_fraction,
        flag_native=opts.native_rope == "original",
    )
    return pool, dataset


def _then(first: Any, second: Any) -> Any:
    """One after-fit hook running `first` (if any), then `second`."""

    def both() -> None:
        if first:
            first()
        second()

    return both


def _induction_trainer(model: Any, opts: PositionsOptions, resume: str | None) -> type:
    """A Trainer that keeps the induction-head supervision of pretraining on (eager attention: the loss reads
    attention probabilities; the model is saved with the requested kernel again)."""
    from longwin.methods.induction import InductionHeads, InductionSupervision, induction_trainer

    base = getattr(model, "get_base_model", lambda: model)()
    if opts.induction_match > base.config.num_attention_heads:
        raise LongwinError(f"--induction-match must be at most {base.config.num_attention_heads} (one head per token)")
    supervision = InductionSupervision(base.config.hidden_size, InductionHeads(match_len=opts.induction_match))
    if resume:
        supervision.load(resume)
    base.set_attn_implementation("eager")
    return induction_trainer(supervision, opts.induction_weight)
