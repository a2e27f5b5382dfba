"""SharedLLM training pieces: parameter groups, the collator, and a few optimizer steps on a tiny model."""

from __future__ import annotations

import pytest
import torch

from conftest import make_tiny_llama
from longwin.errors import LongwinError
from longwin.methods.sharedllm import SharedLLMCollator, SharedLLMForCausalLM, trainable_parameters
from longwin.methods.sharedllm.collator import IGNORE_INDEX

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(layers: int = 3) -> SharedLLMForCausalLM:
    return SharedLLMForCausalLM.from_base(
        make_tiny_llama(layers=layers), num_lower_layers=2, chunk_size=32, tree_height=2, kv_per_node=4
    )


def trainable_names(model: SharedLLMForCausalLM) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_lm_stage_trains_cross_attention_and_the_top_layers_only():
    model = tiny()
    params = trainable_parameters(model, "cross_attn+top")
    names = trainable_names(model)
    assert len(params) == len(names)
    assert {n.split(".")[0] for n in names} == {"cross_attn", "model"}
    assert {n.split(".")[2] for n in names if n.startswith("model.")} == {"2"}  # layer 2 = the only top layer
    assert model.config.share_lower  # bottom layers stay frozen, so the lower model keeps sharing them


def test_cross_attention_mode_and_full_mode():
    model = tiny()
    trainable_parameters(model, "cross_attn")
    assert {n.split(".")[0] for n in trainable_names(model)} == {"cross_attn"}
    trainable_parameters(model, "all")
    names = trainable_names(model)
    assert not model.config.share_lower and not any(n.startswith("lower.") for n in names)
    assert "model.layers.0.self_attn.q_proj.weight" in names and "model.embed_tokens.weight" in names
    with pytest.raises(LongwinError, match="training mode"):
        trainable_parameters(model, "lora")


def test_collator_lm_and_instruction_examples():
    collate = SharedLLMCollator(pad_token_id=0, chunk_size=4)
    batch = collate(
        [
            {"context_ids": list(range(1, 11)), "input_ids": [5, 6, 7]},
            {"context_ids": list(range(1, 5)), "prompt_ids": [8, 9], "response_ids": [10, 11, 12]},
        ]
    )
    assert batch["context_input_ids"].tolist() == [[3, 4, 5, 6, 7, 8, 9, 10], [0, 0, 0, 0, 1, 2, 3, 4]]
    assert batch["context_attention_mask"].tolist() == [[1] * 8, [0] * 4 + [1] * 4]
    assert batch["input_ids"].tolist() == [[5, 6, 7, 0, 0], [8, 9, 10, 11, 12]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1] * 5]
    assert batch["labels"].tolist() == [[5, 6, 7, IGNORE_INDEX, IGNORE_INDEX], [IGNORE_INDEX] * 2 + [10, 11, 12]]
    assert batch["query_length"].tolist() == [0, 2]  # an LM example has no query; a prompt is one
    with pytest.raises(LongwinError, match="input_ids"):
        collate([{"context_ids": [1]}])


def test_loss_decreases_over_a_few_optimizer_steps():
    torch.manual_seed(0)
    model = tiny()
    model.train()
    params = trainable_parameters(model, "cross_attn+top")
    optimizer = torch.optim.AdamW(params, lr=3e-3)
    collate = SharedLLMCollator(pad_token_id=0, chunk_size=32)
    gen = torch.Generator().manual_seed(1)
    examples = []
    for _ in range(2):
        context = torch.randint(3, 320, (70,), generator=gen).tolist()
        examples.append({"context_ids": context, "input_ids": context[-24:] + context[:8]})
    batch = collate(examples)
    frozen_before = model.model.layers[0].self_attn.q_proj.weight.clone()
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.2  # from ln(320) ≈ 5.77: the frozen tied head keeps logits small
    assert torch.equal(model.model.layers[0].self_attn.q_proj.weight, frozen_before)
    assert model.cross_attn[0].o_proj.weight.abs().sum() > 0  # the injection path learned


def _answer_loss_after_training(with_context: bool, steps: int = 150) -> float:
    """Train a tiny SharedLLM to name the one non-filler token of its context (16 candidates)."""
    torch.manual_seed(0)
    model = SharedLLMForCausalLM.from_base(
        make_tiny_llama(layers=3), num_lower_layers=2, chunk_size=16, tree_height=2, kv_per_node=4
    )
    model.train()
    optimizer = torch.optim.AdamW(trainable_parameters(model, "all"), lr=3e-3)
    collate = SharedLLMCollator(pad_token_id=0, chunk_size=16)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        examples = []
        for _ in range(16):
            key = 100 + int(torch.randint(16, (1,), generator=gen))
            context = [5] * 48
            where = int(torch.randint(3, (1,), generator=gen)) * 16
            context[where : where + 16] = [key] * 16
            examples.append({"context_ids": context if with_context else [], "input_ids": [7, 8, 9, key]})
        batch = collate(examples)
        batch["labels"][:, :-1] = IGNORE_INDEX  # score the answer only
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()


def test_the_trees_carry_what_only_the_context_holds():
    """The answer is in the context alone: with the trees the loss goes to ~0, without them it stays at ln 16."""
    assert _answer_loss_after_training(with_context=True) < 0.5
    assert _answer_loss_after_training(with_context=False) > 2.4  # ln 16 = 2.77: the prior is all it can learn
