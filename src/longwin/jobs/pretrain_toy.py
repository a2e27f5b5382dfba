"""Pretrain the built-in toy base model: a small Llama with a 256-token native window.

It learns language from the offline corpora and retrieval (pass keys, key-value lookups, line
registers, repeated spans) inside its window, so that the gap beyond 256 tokens is the only thing
the context-extension methods must close. The result is a stock transformers folder (safetensors +
tokenizer) with a model card; `longwin pretrain-toy --output-dir src/longwin/assets/toy` rebuilds the
checkpoint that ships inside the package.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from longwin.flags import add_config_arguments, config_from_args, to_dict
from longwin.outputs import check_writable_folder, staged_folder


@dataclass
class PretrainToyConfig:
    output_dir: str = field(default="out/toy-base", metadata={"help": "where the model folder is written"})
    checkpoint_dir: str = field(default="out/toy-base-checkpoints", metadata={"help": "Trainer checkpoints (resume)"})
    corpora: str = field(default="essays+kjv", metadata={"help": "natural-text sources ('+'-joined)"})
    val_fraction: float = field(
        default=0.1, metadata={"min": 0, "max": 0.9, "help": "documents held out for perplexity"}
    )
    seed: int = field(default=0, metadata={"min": 0})
    seq_len: int = field(default=256, metadata={"min": 8, "help": "native context window"})
    vocab_size: int = field(default=2048, metadata={"min": 300})
    hidden_size: int = field(default=192, metadata={"min": 1})
    num_layers: int = field(default=4, metadata={"min": 1})
    num_heads: int = field(default=6, metadata={"min": 1})
    intermediate_size: int = field(default=512, metadata={"min": 1})
    rope_theta: float = field(
        default=500000.0,
        metadata={
            "min": 1,
            "help": "RoPE base; 500,000 (as Llama 3) leaves more slowly turning dimensions to match content "
            "200+ tokens back",
        },
    )
    max_steps: int = field(default=1800, metadata={"min": 1})
    batch_size: int = field(default=16, metadata={"min": 1})
    learning_rate: float = field(default=2e-3, metadata={"min": 0})
    warmup_steps: int = field(default=100, metadata={"min": 0})
    weight_decay: float = field(default=0.1, metadata={"min": 0})
    # the recipe of the shipped toy (v3, docs/toy-model.md); --rope-theta 10000 --shuffle-pieces false
    # rebuild v2, and with --induction-weight 0 --random-copy-share 0 --recall-share 0 also, v1
    random_copy_share: float = field(
        default=0.07,
        metadata={
            "min": 0,
            "max": 1,
            "help": "share of examples that repeat a span of random tokens, taken from the natural-text copy share",
        },
    )
    recall_share: float = field(
        default=0.1,
        metadata={
            "min": 0,
            "max": 1,
            "help": "share of examples that repeat a natural passage after unrelated text, "
            "taken from the natural share",
        },
    )
    induction_weight: float = field(
        default=1.0,
        metadata={
            "min": 0,
            "help": "weight of the auxiliary induction-head loss (longwin.methods.induction); 0 turns it off",
        },
    )
    induction_match: int = field(
        default=2,
        metadata={
            "min": 1,
            "help": "tokens the supervised induction head matches "
            "(1: the current token; 2: it and the one before; ...)",
        },
    )
    shuffle_pieces: bool = field(
        default=True,
        metadata={
            "help": "put each window's examples and filler in random order "
            "(false: filler always ends the window, as in v1/v2)"
        },
    )
    threads: int = field(default=0, metadata={"min": 0, "help": "torch CPU threads (0: torch's default)"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file with any of the options below")
    add_config_arguments(parser, PretrainToyConfig)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(PretrainToyConfig, args)
    pretrain(cfg)
    return 0


def build_tokenizer(cfg: PretrainToyConfig, texts: list[str]):
    from longwin.data.tokenizer import train_bpe_tokenizer

    return train_bpe_tokenizer(texts, cfg.vocab_size)


def build_model(cfg: PretrainToyConfig, tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.seq_len,
        rope_theta=cfg.rope_theta,  # type: ignore[call-arg]  # 5.x still takes it (into rope_parameters), untyped
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def pretrain(cfg: PretrainToyConfig) -> Path:
    """Check, build the data and the model from scratch, train (resuming), and land model, tokenizer and card."""
    import torch
    from transformers import set_seed

    from longwin.training.runner import fit

    mix = validated_mix(cfg)  # bad options fail here, before any data or model is built
    check_writable_folder(cfg.output_dir, "--output-dir")
    check_writable_folder(cfg.checkpoint_dir, "--checkpoint-dir")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    set_seed(cfg.seed)
    out = Path(cfg.output_dir)
    started = time.time()
    data = build_data(cfg, mix)
    model = build_model(cfg, data.tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"toy model: {n_params / 1e6:.2f}M parameters, window {cfg.seq_len}, {cfg.max_steps} steps")
    args = toy_training_arguments(cfg)
    trainer = build_trainer(cfg, model, args, data.dataset)
    fit(trainer, args)
    train_seconds = time.time() - started
    model.set_attn_implementation("sdpa")
    card = model_card(cfg, model, trainer, data, n_params, train_seconds)
    with staged_folder(out) as folder:  # model, tokenizer and card land together or not at all
        model.save_pretrained(folder, safe_serialization=True)
        data.tokenizer.save_pretrained(folder)
        (folder / "training.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"saved toy model to {out} after {train_seconds / 60:.1f} min")
    return out


@dataclass
class ToyData:
    """What the pretraining reads: the tokenizer trained on the corpus, the mixed windows, the document split."""

    tokenizer: Any
    dataset: Any
    train_docs: list[Any]
    val_docs: list[Any]


def build_data(cfg: PretrainToyConfig, mix: dict[str, float]) -> ToyData:
    """Split the corpora, train the tokenizer on the training split, and mix natural and synthetic windows."""
    import numpy as np

    from longwin.data import synthetic
    from longwin.data.corpora import load_documents, split_documents
    from longwin.data.pretrain_mix import MixSources, PretrainMixDataset

    train_docs, val_docs = split_documents(load_documents(cfg.corpora), cfg.val_fraction, seed=cfg.seed)
    texts = [d.text for d in train_docs]
    tokenizer = build_tokenizer(cfg, texts)
    natural = [np.asarray(tokenizer(t, add_special_tokens=False)["input_ids"], dtype=np.int32) for t in texts]
    sentences = [s for t in texts for s in synthetic.filler_sentences(t)]
    sources = MixSources(natural=natural, sentences=sentences, words=synthetic.word_list(texts))
    dataset = PretrainMixDataset(
        sources,
        tokenizer,
        seq_len=cfg.seq_len,
        num_windows=cfg.max_steps * cfg.batch_size,
        seed=cfg.seed,
        mix=mix,
        shuffle=cfg.shuffle_pieces,
    )
    return ToyData(tokenizer, dataset, train_docs, val_docs)


def toy_training_arguments(cfg: PretrainToyConfig) -> Any:
    """The toy's fixed optimisation recipe (CPU, cosine, AdamW beta2 0.95), checkpoints in --checkpoint-dir."""
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=cfg.checkpoint_dir,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_steps,
        lr_scheduler_type="cosine",
        weight_decay=cfg.weight_decay,
        adam_beta2=0.95,
        max_grad_norm=1.0,
        logging_steps=50,
        save_steps=300,
        save_total_limit=1,
        report_to=[],
        use_cpu=True,
        seed=cfg.seed,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )


def build_trainer(cfg: PretrainToyConfig, model: Any, args: Any, dataset: Any) -> Any:
    """A Trainer, or the induction-supervised one (eager attention, its heads restored on a resume)."""
    from transformers import Trainer

    from longwin.methods.induction import InductionHeads, InductionSupervision, induction_trainer
    from longwin.training.runner import latest_complete, plan_run

    # a rerun continues from the newest complete checkpoint; without one it starts over
    checkpoints = Path(cfg.checkpoint_dir)
    last = plan_run(checkpoints, "latest" if latest_complete(checkpoints) else None, overwrite=True)
    trainer_class = Trainer
    if cfg.induction_weight:
        supervision = InductionSupervision(cfg.hidden_size, InductionHeads(match_len=cfg.induction_match))
        if last:
            supervision.load(last)
        model.set_attn_implementation("eager")  # the auxiliary loss reads attention probabilities
        trainer_class = induction_trainer(supervision, cfg.induction_weight)
    return trainer_class(model=model, args=args, train_dataset=dataset)


def model_card(
    cfg: PretrainToyConfig, model: Any, trainer: Any, data: ToyData, n_params: int, train_seconds: float
) -> dict[str, Any]:
    """training.json: the recipe, the data, the final loss and the induction check (random-span copying)."""
    import torch

    from longwin.methods.induction import copy_accuracy, random_repeats

    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    model.eval()
    copy_top1 = copy_accuracy(model, random_repeats(data.tokenizer, rows=16, span=60, seed=cfg.seed), span=60)
    return {
        "model": "longwin toy base (Llama architecture)",
        "parameters": n_params,
        "native_window": cfg.seq_len,
        "data": {
            "natural": cfg.corpora,
            "train_documents": len(data.train_docs),
            "val_documents": len(data.val_docs),
            "val_document_ids": [d.id for d in data.val_docs],
            "synthetic_mix": dataset_mix(data.dataset),
        },
        "recipe": to_dict(cfg),
        "tokens_seen": cfg.max_steps * cfg.batch_size * cfg.seq_len,
        "final_train_loss": losses[-1] if losses else math.nan,
        "random_span_copy_top1": round(copy_top1, 3),  # induction check: 0 = none, 1 = perfect copying
        "train_wall_seconds": round(train_seconds, 1),
        "torch_threads": torch.get_num_threads(),
    }


def validated_mix(cfg: PretrainToyConfig) -> dict[str, float]:
    """The example mix the options ask for; a one-line error for options that cannot work."""
    from longwin.data.pretrain_mix import DEFAULT_MIX
    from longwin.errors import LongwinError

    if not 1 <= cfg.induction_match <= cfg.num_heads:
        raise LongwinError(f"--induction-match must lie in [1, {cfg.num_heads}] (one look-back head per token)")
    mix = dict(DEFAULT_MIX)
    if not 0 <= cfg.random_copy_share <= mix["copy"]:
        raise LongwinError(f"--random-copy-share must lie in [0, {mix['copy']}] (it is taken from the copy share)")
    if not 0 <= cfg.recall_share <= mix["natural"]:
        raise LongwinError(f"--recall-share must lie in [0, {mix['natural']}] (it is taken from the natural share)")
    if cfg.random_copy_share:
        mix["copy"] -= cfg.random_copy_share
        mix["copy_random"] = cfg.random_copy_share
    if cfg.recall_share:
        mix["natural"] -= cfg.recall_share
        mix["recall"] = cfg.recall_share
    return mix


def dataset_mix(dataset) -> dict[str, float]:
    return {k: round(float(p), 3) for k, p in zip(dataset.kinds, dataset.kind_p)}
