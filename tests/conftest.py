"""Shared fixtures: a tiny BPE tokenizer and tiny Llama models built from a config (no downloads). The
experiment scripts (`experiments/`) are importable by name from every test: their folder is on sys.path."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from longwin.data.tokenizer import train_bpe_tokenizer

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
if str(EXPERIMENTS) not in sys.path:
    sys.path.insert(0, str(EXPERIMENTS))

_TEXT = [
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.",
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them.",
    "The pass key is 12345. Remember it. 12345 is the pass key. What is the pass key?",
    "Extract the value corresponding to the specified key in the JSON object below.",
    "line grotesque-classmate: REGISTER_CONTENT is <42527>. Tell me what is the number.",
    "In the beginning God created the heaven and the earth. And the earth was without form.",
    "How to start a startup: you need three things, good people, something customers want, and little money.",
] * 20


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A 320-token byte-level BPE trained on a few sentences (digits split one per token)."""
    return train_bpe_tokenizer(_TEXT, vocab_size=320)


def make_tiny_llama(
    vocab_size: int = 320,
    *,
    max_position_embeddings: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    hidden: int = 32,
    seed: int = 0,
    attn_implementation: str = "sdpa",
) -> LlamaForCausalLM:
    """A randomly initialised GQA Llama small enough for unit tests."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    config._attn_implementation = attn_implementation
    return LlamaForCausalLM(config).eval()


# Tiny configs of every registered family (longwin.models.families): 2 layers, width 32, 4 heads of 8 (2 KV heads),
# window 64, and logit scales far from 1 so that a loss which ignores them is visibly wrong.
_TINY_COMMON = dict(
    vocab_size=320,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=8,
    max_position_embeddings=64,
    initializer_range=0.2,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)
_TINY_EXTRA: dict[str, dict] = {
    "gemma2": dict(final_logit_softcapping=2.0, query_pre_attn_scalar=8),
    "gemma3_text": dict(final_logit_softcapping=2.0, query_pre_attn_scalar=8, sliding_window=16),
    "phi3": dict(original_max_position_embeddings=64),
    "granite": dict(logits_scaling=4.0, embedding_multiplier=2.0, residual_multiplier=0.5, attention_multiplier=0.2),
    "cohere": dict(logit_scale=0.25),
    "falcon_h1": dict(
        lm_head_multiplier=3.0, mamba_d_ssm=32, mamba_n_heads=4, mamba_d_head=8, mamba_d_state=8, mamba_chunk_size=16
    ),
}
_TINY_GPT2 = dict(vocab_size=320, n_embd=32, n_layer=2, n_head=4, n_positions=64, initializer_range=0.2,
                  bos_token_id=1, eos_token_id=2, pad_token_id=0)  # fmt: skip


def tiny_family_config(family):
    """A tiny config of a registered `longwin.models.families.Family`."""
    import transformers

    options = _TINY_GPT2 if family.model_type == "gpt2" else {**_TINY_COMMON, **_TINY_EXTRA.get(family.model_type, {})}
    return getattr(transformers, family.config_class)(**options)


def make_tiny_family(family, seed: int = 0, config=None):
    """A randomly initialised tiny model of `family` (from `config`, default `tiny_family_config`), in eval mode."""
    import transformers

    torch.manual_seed(seed)
    return getattr(transformers, family.model_class)(config or tiny_family_config(family)).eval()


def bf16_step_dtypes(trainer_class: type, watched: LlamaForCausalLM, data: list, out: str, **trainer_kwargs) -> set:
    """Run one `trainer_class` step under `bf16=True` on the CPU and return the dtypes the first attention
    layer of `watched` (the trained model or a helper model such as a teacher) computed its queries in."""
    from transformers import TrainingArguments

    seen: set = set()
    watched.model.layers[0].self_attn.q_proj.register_forward_hook(lambda mod, args, out: seen.add(out.dtype))
    args = TrainingArguments(
        output_dir=out, bf16=True, use_cpu=True, max_steps=1, per_device_train_batch_size=2,
        report_to="none", save_strategy="no", disable_tqdm=True,
    )  # fmt: skip
    trainer_class(args=args, train_dataset=data, **trainer_kwargs).train()
    return seen


@pytest.fixture
def tiny_llama():
    return make_tiny_llama()


@pytest.fixture(scope="module")
def one_thread():
    """The CPU is shared with long training runs; tiny models gain nothing from more threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_setup(tmp_path, tiny_tokenizer):
    """(model folder, corpus JSONL): a tiny saved Llama (window 64) and ten documents plus a short one."""
    model_dir = tmp_path / "base"
    make_tiny_llama(max_position_embeddings=64).save_pretrained(model_dir)
    tiny_tokenizer.save_pretrained(model_dir)
    rng = random.Random(0)
    corpus = tmp_path / "corpus.jsonl"
    with corpus.open("w") as f:
        for i in range(10):
            f.write(json.dumps({"id": f"d{i}", "text": " ".join(rng.choice(_TEXT) for _ in range(30))}) + "\n")
        f.write(json.dumps({"id": "short", "text": "too short"}) + "\n")
    return model_dir, corpus
